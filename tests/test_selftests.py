"""Scenarios of tools/testing/selftests/mm/mremap_test.c and
mremap_dontunmap.c, asserting what the selftests assert, on AddressSpace and
(where the host probe runs) identically on the real kernel."""

from __future__ import annotations

import errno

import pytest
from oracle_diff import compare, simulate

from pagetab import host

K, M, G = 1 << 10, 1 << 20, 1 << 30
RW, PRIV, SHARED = 3, 0x22, 0x21
FIXED_MOVE, DONTUNMAP = 3, 5  # MREMAP_MAYMOVE|MREMAP_FIXED, MAYMOVE|DONTUNMAP
OK, WHY = host.available()

# mremap_test.c "run_mremap_test" cases: (size, source offset, destination offset)
# from a PUD boundary, named as the selftest names its alignments
MOVES = [
    (8 * K, 0, G + 4 * K),  # PTE-aligned to PTE-aligned
    (2 * M, M, G + 4 * K),  # 1MB-aligned to PTE-aligned
    (2 * M, M, G + M),  # 1MB to 1MB
    (4 * M, 2 * M, G + 4 * K),  # PMD to PTE
    (4 * M, 2 * M, G + M),  # PMD to 1MB
    (4 * M, 2 * M, G + 2 * M),  # PMD to PMD
    (G, 0, 2 * G + 4 * K),  # PUD to PTE
    (G, 0, 2 * G + M),  # PUD to 1MB
    (G, 0, 2 * G + 2 * M),  # PUD to PMD
    (G, 0, 2 * G),  # PUD to PUD
]


def tagged(size: int, src: int) -> list[tuple[int, ...]]:
    """Map, then write a tag into the first, a middle and the last page."""
    return [("mmap", src, size, RW, PRIV), ("write", src, 11),
            ("write", src + size // 2, 22), ("write", src + size - 4096, 33)]  # fmt: skip


@pytest.mark.parametrize(("size", "src", "dst"), MOVES)
def test_moves_keep_the_data(size: int, src: int, dst: int) -> None:
    window = 4 * G if size >= G else G + 8 * M
    ops = [*tagged(size, src), ("mremap", src, size, size, FIXED_MOVE, dst)]
    res, pages = simulate(ops, window)
    assert res[-1] == ("ok", dst)
    tags = {k * 4096: p.tag for k, p in enumerate(pages) if p.present}
    assert tags == {dst: 11, dst + size // 2: 22, dst + size - 4096: 33}
    assert all(p.prot == -1 for p in pages[src // 4096 : (src + size) // 4096])
    if OK and size <= 4 * M:  # the PUD cases need 1 GiB of real pages
        assert compare(ops, window) is None


@pytest.mark.parametrize(("ops", "code"), [
    ([("mmap", 0, 16 * K, RW, PRIV), ("mremap", 0, 16 * K, 16 * K, FIXED_MOVE, 8 * K)],
     errno.EINVAL),  # overlapping
    ([("mmap", 0, 16 * K, RW, PRIV), ("mremap", 0, 16 * K, 16 * K, FIXED_MOVE, M + K)],
     errno.EINVAL),  # destination misaligned (1KB)
    ([("mmap", K, 16 * K, RW, PRIV | 0x10)], errno.EINVAL),  # source misaligned: no mapping
])  # fmt: skip
def test_expected_failures(ops: list[tuple[int, ...]], code: int) -> None:
    res, _ = simulate(ops, 4 * M)
    assert res[-1] == ("err", code)
    if OK:
        assert compare(ops, 4 * M) is None


def test_expand_merge() -> None:
    # mremap_expand_merge: 3 pages, unmap the middle, grow the first by one:
    # it must grow in place and merge with the third into one VMA
    ops = [("mmap", 0, 12 * K, RW, PRIV), ("munmap", 4 * K, 4 * K),
           ("mremap", 0, 4 * K, 8 * K, 0, 0)]  # fmt: skip
    res, pages = simulate(ops, 4 * M)
    assert res[-1] == ("ok", 0) and [p.prot for p in pages[:4]] == [RW, RW, RW, -1]
    if OK:
        assert compare(ops, 4 * M) is None


def test_move_within_range() -> None:
    # "mremap move within range": move part of a VMA into a free stretch
    ops = [*tagged(8 * M, 0), ("munmap", 4 * M, 4 * M),
           ("mremap", 0, 2 * M, 2 * M, FIXED_MOVE, 5 * M)]  # fmt: skip
    res, pages = simulate(ops, 16 * M)
    assert res[-1] == ("ok", 5 * M) and pages[(5 * M) // 4096].tag == 11
    if OK:
        assert compare(ops, 16 * M) is None


@pytest.mark.parametrize("kind", [PRIV, SHARED])
def test_dontunmap(kind: int) -> None:
    # mremap_dontunmap.c: the source stays mapped; private memory is empty
    # there afterwards, shared memory still shows the data
    ops = [("mmap", 0, 64 * K, RW, kind), ("write", 0, 7), ("write", 60 * K, 9),
           ("mremap", 0, 64 * K, 64 * K, DONTUNMAP | 2, 2 * M),
           ("mmap", 4 * M, 64 * K, RW, kind), ("write", 4 * M, 5),
           ("mremap", 4 * M, 64 * K, 64 * K, DONTUNMAP | 2, 6 * M)]  # fmt: skip
    res, pages = simulate(ops, 8 * M)
    assert res[3] == ("ok", 2 * M) and res[6] == ("ok", 6 * M)
    assert pages[0].prot == RW and pages[(2 * M) // 4096].tag == 7
    if kind == PRIV:
        assert not pages[0].present
    if OK:
        assert compare(ops, 8 * M) is None
