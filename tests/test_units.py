"""Sizes as written on the command line and in tables (pagetab.units)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagetab.units import MAX_SIZE, format_size, iter_sizes, parse_size, parse_sizes

K, M, G, T = 1 << 10, 1 << 20, 1 << 30, 1 << 40


def test_parse_and_format() -> None:
    assert [parse_size(t) for t in ("4K", "2m", "1GB", "1T", "8192", " 3g ")] == [
        4 * K, 2 * M, G, T, 8192, 3 * G]  # fmt: skip
    # K, KB and KiB alike: every unit binary
    assert [parse_size(t) for t in ("1GiB", "1gib", "4KiB", "4KB", "2MiB")] == [
        G, G, 4 * K, 4 * K, 2 * M]  # fmt: skip
    assert [format_size(n) for n in (G, 4 * K, 3 << 29, 4097, 2 * T)] == [
        "1G", "4K", "1536M", "4097", "2T"]  # fmt: skip
    assert list(iter_sizes(G, 5 * G)) == [G, 2 * G, 4 * G]
    assert parse_sizes("1G..8G") == [G, 2 * G, 4 * G, 8 * G]
    assert parse_sizes("4K,1G..2G,4K") == [4 * K, G, 2 * G]


@pytest.mark.parametrize(
    ("text", "message"),
    [("1Q", "bad size"), ("", "empty item"), ("-4K", "> 0"), ("0", "> 0"),
     ("2000T", "larger than 1024T"), ("8G..1G", "runs backwards"), ("1G,,2G", "empty item"),
     ("2M..6M", "not to 6M"), ("1Gi", "bad size")],
)  # fmt: skip
def test_bad_sizes_raise_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sizes(text)


@given(st.integers(1, MAX_SIZE))
def test_format_then_parse_is_identity(n: int) -> None:
    assert parse_size(format_size(n)) == n
