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


def test_durations_take_the_unit_that_fits() -> None:
    # `move --size 1T` printed "estimated 6187754.6 us"
    from pagetab.units import format_ns, format_ns_range

    assert [format_ns(x) for x in (2532423400.0, 6187754600.0, 1_234_567.0, 4800, 12.4)] == [
        "2.532 s", "6.188 s", "1.23 ms", "4.8 us", "12 ns"]  # fmt: skip
    assert format_ns(12_345_678_000_000.0) == "12,345.678 s"
    assert format_ns_range(1293737300.0, 4951702400.0) == "1.294-4.952 s"
    assert format_ns_range(800.0, 2500.0) == "0.8-2.5 us"
