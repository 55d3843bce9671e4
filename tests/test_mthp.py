"""Multi-size THP (Linux 6.8+): per-size settings, alloc_anon_folio's
choice of folio, folios() and what partial unmaps and moves leave."""

from __future__ import annotations

from pathlib import Path

import pytest

import pagetab as pt

K, M = 1 << 10, 1 << 20
FIXED = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
BASE = 1 << 40


def sizes(mm: pt.AddressSpace, addr: int, length: int) -> list[tuple[int, int, int]]:
    """(offset, bytes mapped, folio size) of each folio run."""
    return [(f.addr - addr, f.length, f.size) for f in mm.folios(addr, length)]


def test_defaults_are_the_kernels() -> None:
    mm = pt.AddressSpace("x86-64")
    assert mm.thp_sizes == {16 * K: "never", 32 * K: "never", 64 * K: "never",
                            128 * K: "never", 256 * K: "never", 512 * K: "never",
                            1024 * K: "never", 2048 * K: "inherit"}  # fmt: skip
    # 64K pages: orders 2 up to the 512M PMD
    assert min(pt.AddressSpace("arm64-64k").thp_sizes) == 256 * K


def test_write_fault_maps_the_largest_folio_that_fits() -> None:
    mm = pt.AddressSpace("x86-64", thp_sizes={16 * K: "always", 64 * K: "always"})
    mm.mmap(100 * K, BASE + 4 * K, flags=FIXED)  # [4K, 104K)
    mm.access([BASE + 4 * K], write=True)  # 16K block [0, 16K) leaves the VMA: one page
    mm.access([BASE + 70 * K], write=True)  # 64K block [64K, 128K) leaves it: 16K [64K, 80K)
    mm.access([BASE + 20 * K], write=True)  # 16K [16K, 32K); 64K [0, 64K) leaves the VMA
    assert sizes(mm, BASE + 4 * K, 100 * K) == [(0, 4 * K, 4 * K), (12 * K, 16 * K, 16 * K),
                                                (60 * K, 16 * K, 16 * K)]  # fmt: skip
    # a present page (here the zero page) in the block rules out the order
    mm.mmap(128 * K, BASE + M, flags=FIXED)
    mm.access([BASE + M + 8 * K])  # read: the zero page
    mm.access([BASE + M + 40 * K], write=True)
    assert sizes(mm, BASE + M, 128 * K) == [(32 * K, 16 * K, 16 * K)]
    mm.access([BASE + M + 64 * K], write=True)
    assert sizes(mm, BASE + M + 64 * K, 64 * K) == [(0, 64 * K, 64 * K)]
    # a write to the zero page copies one small page (do_wp_page)
    mm.access([BASE + M + 8 * K], write=True)
    assert (8 * K, 4 * K, 4 * K) in sizes(mm, BASE + M, 64 * K)
    mm.check()


@pytest.mark.parametrize(("top", "mode", "advised", "large"), [
    ("never", "always", False, True), ("never", "madvise", True, True),
    ("never", "madvise", False, False), ("never", "inherit", True, False),
    ("madvise", "inherit", True, True), ("madvise", "inherit", False, False),
    ("always", "inherit", False, True), ("always", "never", True, False),
])  # fmt: skip
def test_which_setting_allows_a_size(top: str, mode: str, advised: bool, large: bool) -> None:
    mm = pt.AddressSpace("x86-64", thp=top, thp_sizes={64 * K: mode, 2048 * K: "never"})
    mm.mmap(64 * K, BASE, flags=FIXED)
    if advised:
        mm.madvise(BASE, 64 * K, pt.MADV_HUGEPAGE)
    mm.madvise(BASE, 64 * K, pt.MADV_POPULATE_WRITE)
    assert {f.size for f in mm.folios(BASE, 64 * K)} == ({64 * K} if large else {4 * K})
    mm.madvise(BASE, 64 * K, pt.MADV_DONTNEED)
    mm.madvise(BASE, 64 * K, pt.MADV_NOHUGEPAGE)  # vetoes every size
    mm.madvise(BASE, 64 * K, pt.MADV_POPULATE_WRITE)
    assert {f.size for f in mm.folios(BASE, 64 * K)} == {4 * K}


def test_partial_unmap_and_move_keep_the_folio() -> None:
    mm = pt.AddressSpace("x86-64", thp_sizes={64 * K: "always"})
    mm.mmap(128 * K, BASE, flags=FIXED)
    mm.madvise(BASE, 128 * K, pt.MADV_POPULATE_WRITE)
    head = mm.folios(BASE, 64 * K)[0].head
    mm.munmap(BASE + 16 * K, 8 * K)
    mm.madvise(BASE + 40 * K, 4 * K, pt.MADV_DONTNEED)
    # the remainder stays PTE-mapped into the same folio (the split is
    # deferred to reclaim, which pagetab does not simulate)
    got = mm.folios(BASE, 64 * K)
    assert [(f.addr - BASE, f.length, f.size, f.head) for f in got] == [
        (0, 16 * K, 64 * K, head), (24 * K, 16 * K, 64 * K, head),
        (44 * K, 20 * K, 64 * K, head)]  # fmt: skip
    # mremap moves the PTEs: the folio follows them, even to an unaligned place
    mm.mremap(BASE + 64 * K, 64 * K, 64 * K, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED,
              BASE + M + 4 * K)  # fmt: skip
    (moved,) = mm.folios(BASE + M + 4 * K, 64 * K)
    assert (moved.length, moved.size) == (64 * K, 64 * K)
    mm.check()


def test_split_thp_is_pte_mapped_remainder() -> None:
    mm = pt.AddressSpace("x86-64", thp="always")
    mm.mmap(2 * M, BASE, flags=FIXED)
    mm.madvise(BASE, 2 * M, pt.MADV_POPULATE_WRITE)
    assert sizes(mm, BASE, 2 * M) == [(0, 2 * M, 2 * M)]
    mm.munmap(BASE + M, 4 * K)  # __split_huge_pmd
    assert sizes(mm, BASE, 2 * M) == [(0, M, 2 * M), (M + 4 * K, M - 4 * K, 2 * M)]


def test_saved_space_keeps_settings_and_folios(tmp_path: Path) -> None:
    mm = pt.AddressSpace("x86-64", thp_sizes={32 * K: "madvise"})
    mm.mmap(64 * K, BASE, flags=FIXED)
    mm.madvise(BASE, 64 * K, pt.MADV_HUGEPAGE)
    mm.madvise(BASE, 64 * K, pt.MADV_POPULATE_WRITE)
    mm.save(tmp_path / "s.npz")
    back = pt.AddressSpace.load(tmp_path / "s.npz")
    assert back.thp_sizes == mm.thp_sizes
    assert back.folios(BASE, 64 * K) == mm.folios(BASE, 64 * K)
    assert {f.size for f in back.folios(BASE, 64 * K)} == {32 * K}


def test_bad_settings_name_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="16K, 32K"):
        pt.AddressSpace("x86-64", thp_sizes={8 * K: "always"})
    with pytest.raises(ValueError, match="always, inherit, madvise, never"):
        pt.AddressSpace("x86-64", thp_sizes={64 * K: "sometimes"})
    mm = pt.AddressSpace("x86-64")
    with pytest.raises(ValueError, match="no anonymous THP size"):
        mm.set_thp_size(True, "always")  # type: ignore[arg-type]
    assert mm.thp_sizes[64 * K] == "never"
    mm.set_thp_size(64 * K, "always")
    assert mm.thp_sizes[64 * K] == "always"


def test_folios_asks_for_pieces() -> None:
    mm = pt.AddressSpace("x86-64")
    with pytest.raises(ValueError, match="ask in pieces"):
        mm.folios(0, (pt.space.MAX_FOLIO_PAGES + 1) * 4096)
    with pytest.raises(ValueError, match="multiples"):
        mm.folios(1, 4096)
