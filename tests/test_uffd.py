"""userfaultfd registration and UFFDIO_MOVE (pagetab.userfaultfd), against
the kernel's rules and, where it runs, this machine's kernel."""

from __future__ import annotations

import errno
import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from oracle_diff import (
    compare,
    random_fill_ops,
    random_multi_vma_uffd_ops,
    random_uffd_ops,
    simulate,
)

import pagetab as pt
from pagetab import host, oracle
from pagetab.userfaultfd import UffdMoveError

K, M = 4096, 1 << 20
PMD = 2 * M
FIXED = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
SRC, DST = 1 << 40, (1 << 40) + (1 << 30)
WP = pt.UFFDIO_REGISTER_MODE_WP
HOLES = pt.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
OK, WHY = host.available()


def pair(length: int = 16 * K, policy: str = "linux-6.17", populate: int | None = None,
         thp: str = "never") -> tuple[pt.AddressSpace, pt.userfaultfd.Userfaultfd]:  # fmt: skip
    mm = pt.AddressSpace("x86-64", policy=policy, thp=thp)
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(length, SRC, flags=FIXED)
    mm.mmap(length, DST, flags=FIXED)
    if populate is not None:
        mm.madvise(SRC, length, populate)
    u.register(DST, length, WP)
    return mm, u


def test_move_carries_the_pages() -> None:
    mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
    frames = mm.frames(SRC, 16 * K)
    assert u.move(DST, SRC, 16 * K) == 16 * K
    assert (mm.frames(DST, 16 * K) == frames).all() and (mm.frames(SRC, 16 * K) == -1).all()
    st = u.last_move
    assert st is not None and st.counters["ptes_moved"] == 16
    # the moved PTEs are dirty and writable, and no stale translation is left
    assert mm.tables.entry(DST)[1] & pt._tables.WRITE
    assert mm.tlbs.count_range(SRC, SRC + 16 * K) == 0
    mm.check()


def test_zero_page_moves_and_holes() -> None:
    mm, u = pair(populate=pt.MADV_POPULATE_READ)
    assert u.move(DST, SRC, 8 * K) == 8 * K
    assert u.last_move is not None and u.last_move.counters["zero_ptes_moved"] == 8
    # src holes: ENOENT before anything moved, or counted with ALLOW_SRC_HOLES
    mm.munmap(SRC + 8 * K, 8 * K)
    mm.mmap(8 * K, SRC + 8 * K, flags=FIXED)
    with pytest.raises(UffdMoveError) as e:
        u.move(DST + 8 * K, SRC + 8 * K, 8 * K)
    assert e.value.errno == errno.ENOENT and e.value.move == -errno.ENOENT
    assert u.move(DST + 8 * K, SRC + 8 * K, 8 * K, HOLES) == 8 * K


def test_partial_move_is_eagain_with_the_bytes_moved() -> None:
    mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
    mm.access([DST + 3 * K], write=True)  # the destination's fourth page is populated
    with pytest.raises(UffdMoveError) as e:
        u.move(DST, SRC, 16 * K)
    assert e.value.errno == errno.EAGAIN and e.value.move == 3 * K
    with pytest.raises(UffdMoveError) as e:
        u.move(DST + 3 * K, SRC + 3 * K, K)
    assert e.value.errno == errno.EEXIST and e.value.move == -errno.EEXIST


@pytest.mark.parametrize(("why", "call", "code"), [
    ("unaligned", lambda mm, u: u.move(DST + 1, SRC, K), errno.EINVAL),
    ("empty", lambda mm, u: u.move(DST, SRC, 0), errno.EINVAL),
    ("bad mode", lambda mm, u: u.move(DST, SRC, K, 4), errno.EINVAL),
    ("no dst VMA", lambda mm, u: u.move(DST + M, SRC, K), errno.ENOENT),
    ("no src VMA", lambda mm, u: u.move(DST, SRC + M, K), errno.ENOENT),
    ("past the src VMA", lambda mm, u: u.move(DST, SRC + 8 * K, 16 * K), errno.EINVAL),
    ("dst unregistered", lambda mm, u: u.move(SRC, DST, K), errno.EINVAL),
])  # fmt: skip
def test_errors(why: str, call: object, code: int) -> None:
    mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
    before = mm.frames(SRC, 16 * K)
    with pytest.raises(UffdMoveError) as e:
        call(mm, u)  # type: ignore[operator]
    assert e.value.errno == code, why
    assert (mm.frames(SRC, 16 * K) == before).all()


def test_registration_splits_and_merges_vmas() -> None:
    mm = pt.AddressSpace("x86-64")
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(16 * K, SRC, flags=FIXED)
    u.register(SRC + 4 * K, 4 * K, WP)
    assert [(v.start - SRC, v.uffd) for v in mm.vmas()] == [(0, 0), (4 * K, 1), (8 * K, 0)]
    u.unregister(SRC, 16 * K)
    assert [(v.start - SRC, v.uffd) for v in mm.vmas()] == [(0, 0)]
    with pytest.raises(OSError) as e:
        u.register(SRC, 4 * K, 0)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        u.register(SRC + M, 4 * K, WP)  # nothing mapped
    assert e.value.errno == errno.EINVAL
    u.register(SRC, 4 * K, WP)
    other = mm.userfaultfd()
    with pytest.raises(OSError) as e:
        other.register(SRC, 4 * K, WP)
    assert e.value.errno == errno.EBUSY
    with pytest.raises(NotImplementedError):
        mm.userfaultfd(1 << 0)  # UFFD_FEATURE_PAGEFAULT_FLAG_WP: not simulated


def test_missing_mode_faults_are_not_simulated() -> None:
    mm = pt.AddressSpace("x86-64")
    u = mm.userfaultfd()
    mm.mmap(16 * K, SRC, flags=FIXED)
    u.register(SRC, 16 * K, pt.UFFDIO_REGISTER_MODE_MISSING)
    with pytest.raises(NotImplementedError, match="handler"):
        mm.access([SRC], write=True)
    with pytest.raises(NotImplementedError, match="handler"):
        mm.madvise(SRC, 4 * K, pt.MADV_POPULATE_WRITE)


def _bits(mm: pt.AddressSpace, addr: int) -> tuple[bool, bool]:
    """(dirty, soft-dirty) of the entry mapping ``addr``."""
    e = mm.tables.entry(addr)[1]
    return bool(e & pt._tables.DIRTY), bool(e & pt._tables.SOFTDIRTY)


@pytest.mark.parametrize("policy", ["linux-6.8", "linux-6.18"])
def test_moved_entries_are_dirty_and_soft_dirty_as_the_kernel_makes_them(policy: str) -> None:
    # move_present_pte(s): pte_mkdirty (x86's sets soft-dirty too; 6.15's
    # 75cb1cca2c88 marks it soft-dirty itself); move_pages_huge_pmd:
    # pmd_mkdirty; move_zeropage_pte and the huge zero page: made afresh,
    # neither, whatever the source was (an mremap made these soft-dirty:
    # move_soft_dirty_pte, move_soft_dirty_pmd)
    new = policy == "linux-6.18"
    mm = pt.AddressSpace("x86-64", policy=policy, thp="madvise")
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    thp, small, zeros, hzero = SRC, SRC + 2 * M + 64 * K, SRC + 2 * M + 2 * 64 * K, SRC + 4 * M
    mm.mmap(2 * M, thp, flags=FIXED)
    mm.madvise(thp, 2 * M, pt.MADV_HUGEPAGE)
    mm.madvise(thp, 2 * M, pt.MADV_POPULATE_WRITE)
    mm.mmap(8 * K, small, flags=FIXED)
    mm.madvise(small, 8 * K, pt.MADV_POPULATE_WRITE)
    staging = SRC + 8 * (1 << 30)
    mm.mmap(8 * K, staging, flags=FIXED)
    mm.madvise(staging, 8 * K, pt.MADV_POPULATE_READ)
    mm.mmap(2 * M, staging + 2 * M, flags=FIXED)
    mm.madvise(staging + 2 * M, 2 * M, pt.MADV_HUGEPAGE)
    mm.madvise(staging + 2 * M, 2 * M, pt.MADV_POPULATE_READ)
    for at, n, to in ((staging, 8 * K, zeros), (staging + 2 * M, 2 * M, hzero)):
        assert mm.mremap(at, n, n, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, to) == to
    assert _bits(mm, thp) == _bits(mm, small) == (True, False)  # not soft-dirty yet
    assert _bits(mm, zeros) == _bits(mm, hzero) == (False, True)
    assert mm.tables.entry(thp)[0] == mm.tables.entry(hzero)[0] == 2
    mm.mmap(8 * M, DST, flags=FIXED)
    u.register(DST, 8 * M, pt.UFFDIO_REGISTER_MODE_MISSING)
    assert u.move(DST, thp, 2 * M) == 2 * M
    assert mm.tables.entry(DST)[0] == 2 and _bits(mm, DST) == (True, True)
    assert u.move(DST + 2 * M, small, 8 * K) == 8 * K
    assert _bits(mm, DST + 2 * M) == _bits(mm, DST + 2 * M + K) == (True, True)
    if not new:  # 6.8 moves no zero page: EBUSY
        for dst, src_, n in ((DST + 2 * M + 8 * K, zeros, 8 * K), (DST + 4 * M, hzero, 2 * M)):
            with pytest.raises(UffdMoveError, match="EBUSY"):
                u.move(dst, src_, n)
        return
    assert u.move(DST + 2 * M + 8 * K, zeros, 8 * K) == 8 * K
    assert u.move(DST + 4 * M, hzero, 2 * M) == 2 * M
    for a in (DST + 2 * M + 8 * K, DST + 2 * M + 12 * K, DST + 4 * M):
        assert mm.translate(a) == 0 and _bits(mm, a) == (False, False)
    assert mm.tables.entry(DST + 4 * M)[0] == 2
    mm.check()


@pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
def test_moved_pages_are_soft_dirty_as_on_this_kernel() -> None:
    # pagemap's bit 55 after clear_refs: a page UFFDIO_MOVE moved is
    # soft-dirty, a moved zero page is not; the model under linux-6.18 the
    # same. Needs CONFIG_MEM_SOFT_DIRTY, which a kernel shows
    # by marking a page written after clear_refs
    probe = [("mmap", 0, 4 * K, 3, 0x32), ("clear_refs",), ("write", 0, 1)]
    _, st = oracle.run_ops(probe, window=2 * M, soft_dirty=True)
    if st[0].soft_dirty != 1:
        pytest.skip("this kernel has no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is not set)")
    ops = [("mmap", 0, 16 * K, 3, 0x32)]
    ops += [("write", k * K, k + 1) for k in range(8)]
    ops += [("read", k * K) for k in range(8, 16)]
    ops += [("mmap", 2 * M, 16 * K, 3, 0x32), ("uffd_register", 2 * M, 16 * K, 1),
            ("clear_refs",), ("uffd_move", 2 * M, 0, 16 * K, 0)]  # fmt: skip
    res, st = oracle.run_ops(ops, window=4 * M, soft_dirty=True)
    assert res[-1] == ("ok", 16 * K)
    host_bits = [st[(2 * M + k * K) // K].soft_dirty for k in range(16)]
    mm = pt.AddressSpace("x86-64", policy="linux-6.18")
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(16 * K, SRC, flags=FIXED)
    mm.madvise(SRC, 8 * K, pt.MADV_POPULATE_WRITE)
    mm.madvise(SRC + 8 * K, 8 * K, pt.MADV_POPULATE_READ)
    mm.mmap(16 * K, DST, flags=FIXED)
    u.register(DST, 16 * K, pt.UFFDIO_REGISTER_MODE_MISSING)
    u.move(DST, SRC, 16 * K)
    assert host_bits == [int(_bits(mm, DST + k * K)[1]) for k in range(16)]


def test_thp_moves_whole_when_aligned_else_splits() -> None:
    for dst_off, pmds, splits in ((0, 1, 0), (4 * K, 0, 1)):
        mm = pt.AddressSpace("x86-64", thp="always")
        u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
        mm.mmap(PMD, SRC, flags=FIXED)
        mm.mmap(PMD + 8 * K, DST, flags=FIXED)
        mm.madvise(SRC, PMD, pt.MADV_POPULATE_WRITE)
        # data in every page: a zero-filled one a split maps to the zero
        # page (6.12+, split_zeropage), which would not keep its frame
        mm.access(np.arange(SRC, SRC + PMD, K, dtype=np.uint64), write=True)
        u.register(DST, PMD + 8 * K, WP)
        frames = mm.frames(SRC, PMD)
        assert u.move(DST + dst_off, SRC, PMD) == PMD
        st = u.last_move
        assert st is not None
        assert (st.counters["huge_pmds_moved"], st.counters.get("huge_pmds_split", 0)) == (
            pmds,
            splits,
        )
        assert (mm.frames(DST + dst_off, PMD) == frames).all()
        mm.check()


def test_mremap_keeps_the_registration_only_with_remap_events() -> None:
    for features, kept in ((pt.UFFD_FEATURE_MOVE, 0),
                           (pt.UFFD_FEATURE_MOVE | pt.UFFD_FEATURE_EVENT_REMAP, 1)):  # fmt: skip
        mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
        u.features = features
        mm.mremap(DST, 16 * K, 16 * K, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, DST + M)
        assert mm.find_vma(DST + M).uffd == kept  # type: ignore[union-attr]
        if kept:
            # until the handler reads the remap event, UFFDIO_MOVE fails
            with pytest.raises(UffdMoveError) as e:
                u.move(DST + M, SRC, 4 * K)
            assert e.value.errno == errno.EAGAIN
            assert u.read_events() == [(DST, DST + M, 16 * K)]
            assert u.move(DST + M, SRC, 4 * K) == 4 * K


@pytest.mark.parametrize(("policy", "flushes"), [("linux-6.17", 15), ("linux-6.18", 2)])
def test_flush_per_page_or_per_run(policy: str, flushes: int) -> None:
    mm, u = pair(policy=policy, populate=pt.MADV_POPULATE_WRITE)
    mm.madvise(SRC + 8 * K, K, pt.MADV_DONTNEED)  # a hole splits the run in two
    assert u.move(DST, SRC, 16 * K, HOLES) == 16 * K
    st = u.last_move
    assert st is not None
    assert st.counters["flush_calls"] == flushes and st.counters["ptes_moved"] == 15
    low, high = st.estimated_ns_range
    assert low < st.estimated_ns < high and st.breakdown["tlb flush"] > 0


def test_batching_makes_a_large_move_cheaper_on_x86_and_arm64() -> None:
    # 2 MiB of written 4K pages, misaligned so the PTE path runs
    for arch in ("x86-64", "arm64-4k"):
        ns = {}
        for policy in ("linux-6.17", "linux-6.18"):
            mm = pt.AddressSpace(arch, policy=policy, thp="never")
            u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
            mm.mmap(PMD, SRC, flags=FIXED)
            mm.mmap(PMD + 2 * K, DST, flags=FIXED)
            mm.madvise(SRC, PMD, pt.MADV_POPULATE_WRITE)
            u.register(DST, PMD + 2 * K, WP)
            u.move(DST + K, SRC, PMD)
            assert u.last_move is not None
            ns[policy] = u.last_move.breakdown["tlb flush"]
        # one flush per page (512) against one per run in each page table (2)
        assert ns["linux-6.18"] < ns["linux-6.17"] / 10, arch


def test_a_batch_takes_the_locks_once() -> None:
    # 6.18's move_present_ptes: both PTE locks and the anon_vma lock once
    # per batch, a folio_trylock per page; 6.17: all of them per page
    # 6.19 (cc22b9978509): the folio lock alone, no anon_vma lock
    for policy, pte_locks, anon_vma_locks in (("linux-6.17", 32, 16), ("linux-6.18", 2, 1),
                                              ("linux-6.19", 2, 0)):  # fmt: skip
        _, u = pair(policy=policy, populate=pt.MADV_POPULATE_WRITE)
        u.move(DST, SRC, 16 * K)
        assert u.last_move is not None
        c = u.last_move.counters
        assert (c["pte_locks"], c["anon_vma_locks"], c["folio_locks"]) == (
            pte_locks,
            anon_vma_locks,
            16,
        ), policy


def test_a_thp_moves_without_the_anon_vma_lock_from_6_19() -> None:
    # move_pages_huge_pmd: folio lock and anon_vma lock (6.8-6.18), the folio
    # lock alone from 6.19; the same pages either way, one rmap_lock less
    got = {}
    for policy in ("linux-6.18", "linux-6.19"):
        mm = pt.AddressSpace("x86-64", policy=policy, thp="always")
        u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
        mm.mmap(PMD, SRC, flags=FIXED)
        mm.mmap(PMD, DST, flags=FIXED)
        mm.madvise(SRC, PMD, pt.MADV_POPULATE_WRITE)
        u.register(DST, PMD, WP)
        frames = mm.frames(SRC, PMD)
        u.move(DST, SRC, PMD)
        assert u.last_move is not None
        c = u.last_move.counters
        assert c["huge_pmds_moved"] == 1 and c["folio_locks"] == 1
        assert (mm.frames(DST, PMD) == frames).all()
        got[policy] = (c["anon_vma_locks"], u.last_move.estimated_ns)
    assert got["linux-6.18"][0] == 1 and got["linux-6.19"][0] == 0
    rmap_lock = pt.arch("x86-64").cost("rmap_lock")
    assert got["linux-6.18"][1] - got["linux-6.19"][1] == pytest.approx(rmap_lock)


def written_thp(policy: str) -> tuple[pt.AddressSpace, pt.userfaultfd.Userfaultfd]:
    """A THP with three pages written by stores, the rest zero-filled."""
    mm = pt.AddressSpace("x86-64", policy=policy, thp="always")
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(PMD, SRC, flags=FIXED)
    mm.mmap(PMD, DST, flags=FIXED)
    mm.access(np.array([SRC, SRC + 5 * K, SRC + PMD - K], dtype=np.uint64), write=True)
    assert mm.folios(SRC, PMD)[0].size == PMD
    u.register(DST, PMD, WP)
    return mm, u


def test_splitting_a_written_thp_maps_its_unwritten_pages_to_the_zero_page() -> None:
    # b1f202060afe (6.12): a misaligned move splits the PMD, then the folio;
    # the 509 pages no store wrote become zero-page PTEs, moved one by one
    mm, u = written_thp("linux-6.18")
    frames = mm.frames(SRC, PMD)
    assert u.move(DST + K, SRC, PMD - K) == PMD - K
    c = u.last_move.counters if u.last_move else {}
    assert (c["huge_pmds_split"], c["folios_split"], c["zero_remaps"]) == (1, 1, 509)
    assert (c["ptes_moved"], c["zero_ptes_moved"]) == (2, 509)
    moved = mm.frames(DST + K, PMD - K)
    assert moved[0] == frames[0] and moved[5] == frames[5]
    assert (np.delete(moved, [0, 5]) == pt.ZERO_FRAME).all()
    last = SRC + PMD - K  # not moved: a small folio now
    assert mm.frames(last, K)[0] == frames[-1] and [f.size for f in mm.folios(last, K)] == [K]
    # before 6.12 the split keeps every page
    mm, u = written_thp("linux-6.8")
    u.move(DST + K, SRC, PMD - K)
    c = u.last_move.counters if u.last_move else {}
    assert (c["zero_remaps"], c["ptes_moved"], c["zero_ptes_moved"]) == (0, 511, 0)


def test_a_folio_split_reaches_its_pages_in_other_vmas() -> None:
    # a 64K folio whose second half mremap carried elsewhere: the rmap walk
    # finds both halves, so both become small folios
    mm = pt.AddressSpace("x86-64", policy="linux-6.18", thp="never", thp_sizes={64 * K: "always"})
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(64 * K, SRC, flags=FIXED)
    mm.access(np.arange(SRC, SRC + 64 * K, K, dtype=np.uint64), write=True)
    away = SRC + 256 * M
    mm.mremap(SRC + 32 * K, 32 * K, 32 * K, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, away)
    assert [f.size for f in mm.folios(away, 32 * K)] == [64 * K]
    mm.mmap(16 * K, DST, flags=FIXED)
    u.register(DST, 16 * K, WP)
    assert u.move(DST, SRC, 16 * K) == 16 * K
    assert u.last_move is not None and u.last_move.counters["folios_split"] == 1
    assert {f.size for f in mm.folios(away, 32 * K)} == {K}
    assert {f.size for f in mm.folios(SRC + 16 * K, 16 * K)} == {K}
    mm.check()


@pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
@pytest.mark.parametrize("dst_off", [0, K, 16 * K])
def test_a_written_thp_split_agrees_with_the_kernel(dst_off: int) -> None:
    rw, anon = pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    ops = [("mmap", 0, PMD, rw, anon), ("madvise", 0, PMD, pt.MADV_HUGEPAGE),
           ("write", 0, 7), ("write", 77 * K, 9), ("write", PMD - K, 11),
           ("mmap", 2 * PMD, 2 * PMD, rw, anon), ("uffd_register", 2 * PMD, 2 * PMD, WP),
           ("uffd_move", 2 * PMD + dst_off, 4 * K, PMD - 4 * K, 0)]  # fmt: skip
    assert compare(ops, 8 << 20) is None


@pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
@pytest.mark.parametrize("chunk", range(6))
def test_random_uffd_sequences_agree_with_the_kernel(chunk: int) -> None:
    # userfaultfd works for root (CAP_SYS_PTRACE): every result, errno, move
    # field and page state must agree; 300 sequences in all
    outcomes: Counter[tuple[str, int]] = Counter()
    for seed in range(chunk * 50, chunk * 50 + 50):
        ops = random_uffd_ops(random.Random(seed), 8 << 20)
        diff = compare(ops, 8 << 20)
        assert diff is None, f"seed {seed}: {diff}"
        res, _ = simulate(ops, 8 << 20)
        for op, r in zip(ops, res, strict=True):
            if op[0] == "uffd_move":
                outcomes[(r[0], r[1] if r[0] == "err" else 0)] += 1
    # the sequences moved pages, and stopped part way, on every error kind
    assert outcomes[("ok", 0)] > 0 and outcomes[("err", errno.EINVAL)] > 0
    assert outcomes[("err", errno.ENOENT)] + outcomes[("err", errno.EEXIST)] > 0


def test_access_after_move_sees_the_moved_page() -> None:
    mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
    mm.access(np.array([SRC], dtype=np.uint64), cpu=0)  # a cached translation
    u.move(DST, SRC, 16 * K)
    assert mm.access([SRC]).segv == 0  # the source is still mapped (a hole): it faults in
    assert mm.translate(SRC) not in (None, -1)


def test_a_pud_leaf_at_the_source_is_refused() -> None:
    # hugetlb or DAX, never an anonymous VMA's: the move stops, nothing
    # outside the leaf's level is touched
    mm, u = pair(length=1 << 30)
    mm.tables.set_leaf(len(mm.arch.levels) - 3, SRC)
    before = mm.tables.entry(SRC)
    with pytest.raises(UffdMoveError) as e:
        u.move(DST, SRC, 16 * K, HOLES)
    assert e.value.errno == errno.EINVAL and mm.tables.entry(SRC) == before


def test_a_registered_space_saves_and_loads(tmp_path: object) -> None:
    # registrations, features and a queued remap event come back; the
    # loaded space's userfaultfd moves pages as the saved one would
    mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
    other = mm.userfaultfd(pt.UFFD_FEATURE_MOVE | pt.UFFD_FEATURE_EVENT_REMAP)
    mm.mmap(16 * K, SRC + M, flags=FIXED)
    other.register(SRC + M, 16 * K, WP)
    mm.mremap(SRC + M, 16 * K, 16 * K, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, DST + M)
    mm.save(f"{tmp_path}/s.npz")
    back = pt.AddressSpace.load(f"{tmp_path}/s.npz")
    back.check()
    assert [(x.id, x.features, x.pending_events) for x in back.userfaultfds] == [
        (u.id, u.features, []),
        (other.id, other.features, [(SRC + M, DST + M, 16 * K)]),
    ]
    assert [v.uffd for v in back.mm_struct.vmas] == [v.uffd for v in mm.mm_struct.vmas]
    for fd in (u, back.userfaultfds[0]):
        assert fd.move(DST, SRC, 16 * K) == 16 * K
    assert (back.frames(DST, 16 * K) == mm.frames(DST, 16 * K)).all()
    with pytest.raises(UffdMoveError) as e:  # the event is still unread
        back.userfaultfds[1].move(DST + M + 16 * K, SRC, K)
    assert e.value.errno == errno.EAGAIN
    assert back.userfaultfd().id == 3  # new ones follow the loaded ids


from helpers import snapshot  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_junk = st.one_of(st.integers(-2, 1 << 65), st.none(), st.text(max_size=2), st.booleans(),
                  st.sampled_from([DST, SRC, DST + K, SRC + K, 16 * K, K, 0, 2, 3]))  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(["move", "register", "unregister"]), data=st.data())
def test_any_arguments_give_a_clean_error_or_work(call: str, data: st.DataObject) -> None:
    mm, u = pair(populate=pt.MADV_POPULATE_WRITE)
    # the destination's anon_vma exists already: a move that fails after
    # anon_vma_prepare(dst_vma) keeps it, as the kernel does
    mm.access([DST], write=True)
    mm.madvise(DST, K, pt.MADV_DONTNEED)
    n = {"move": 4, "register": 3, "unregister": 2}[call]
    args = data.draw(st.lists(_junk, min_size=n, max_size=n))
    before = snapshot(mm)
    try:
        getattr(u, call)(*args)
    except UffdMoveError as e:
        # a move that stopped part way keeps what it moved, as the kernel
        if e.errno != errno.EAGAIN:
            assert snapshot(mm) == before
    except (OSError, TypeError, ValueError):
        assert snapshot(mm) == before
    mm.check()


@pytest.mark.parametrize("policy", ["linux-6.17", "linux-6.18"])
def test_no_stale_translation_when_the_locks_drop(policy: str) -> None:
    # both flush under the PTE locks: the unsafe-window count is measured on
    # the TLBs (two CPUs cache every source page first) and must be zero
    mm = pt.AddressSpace("x86-64", cpus=2, policy=policy, thp="never")
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(64 * K, SRC, flags=FIXED)
    mm.mmap(64 * K, DST, flags=FIXED)
    mm.madvise(SRC, 64 * K, pt.MADV_POPULATE_WRITE)
    u.register(DST, 64 * K, WP)
    pages = np.arange(SRC, SRC + 64 * K, K, dtype=np.uint64)
    for cpu in (0, 1):
        mm.access(pages, cpu=cpu)
    assert mm.tlbs.count_range(SRC, SRC + 64 * K) >= 2 * 64  # every page, on both CPUs
    u.move(DST, SRC, 64 * K)
    st = u.last_move
    assert st is not None and st.counters["unsafe_windows"] == 0
    assert st.flush_ops["ipi"] == (64 if policy == "linux-6.17" else 1)


@pytest.mark.parametrize(("features", "policy", "pmds"), [
    (pt.UFFD_FEATURE_MOVE, "linux-6.17", 0),  # 0cef0bb836e3: PTE by PTE
    (pt.UFFD_FEATURE_MOVE | pt.UFFD_FEATURE_EVENT_REMAP, "linux-6.17", 2),
    (pt.UFFD_FEATURE_MOVE, "linux-6.8", 2),  # before the rule
])  # fmt: skip
def test_mremap_of_a_registered_vma_moves_no_table_without_remap_events(
    features: int, policy: str, pmds: int
) -> None:
    mm = pt.AddressSpace("x86-64", policy=policy, thp="never")
    u = mm.userfaultfd(features)
    mm.mmap(2 * PMD, SRC, flags=FIXED)
    mm.madvise(SRC, 2 * PMD, pt.MADV_POPULATE_WRITE)
    u.register(SRC, 2 * PMD, WP)
    mm.mremap(SRC, 2 * PMD, 2 * PMD, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, DST)
    st = mm.last_move
    assert st is not None
    assert (st.normal_pmds_moved, st.ptes_moved) == (pmds, 0 if pmds else 1024)


def test_kernels_before_6_8_have_no_uffdio_move() -> None:
    mm = pt.AddressSpace("x86-64", policy="linux-5.11")
    with pytest.raises(OSError) as e:
        mm.userfaultfd(pt.UFFD_FEATURE_MOVE)  # UFFDIO_API refuses the feature
    assert e.value.errno == errno.EINVAL
    u = mm.userfaultfd()
    mm.mmap(16 * K, SRC, flags=FIXED)
    with pytest.raises(UffdMoveError) as e:
        u.move(SRC, SRC, K)
    assert e.value.errno == errno.EINVAL


def test_linux_6_8_rules_differ_from_6_9() -> None:
    # 6.8 (adef440691ba, 5d4747a6cc8e): a missing VMA is EINVAL, and the
    # zero page (a PTE, or the huge zero page) is EBUSY; 6.9 moves them
    for policy, missing, zero_ok in (("linux-6.8", errno.EINVAL, False),
                                     ("linux-6.17", errno.ENOENT, True)):  # fmt: skip
        mm, u = pair(policy=policy, populate=pt.MADV_POPULATE_READ)
        with pytest.raises(UffdMoveError) as e:
            u.move(DST + M, SRC, K)
        assert e.value.errno == missing, policy
        if zero_ok:
            assert u.move(DST, SRC, 16 * K) == 16 * K
        else:
            with pytest.raises(UffdMoveError) as e:
                u.move(DST, SRC, 16 * K)
            assert e.value.errno == errno.EBUSY and e.value.move == -errno.EBUSY
    mm = pt.AddressSpace("x86-64", policy="linux-6.8", thp="always")
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    mm.mmap(PMD, SRC, flags=FIXED)
    mm.mmap(PMD, DST, flags=FIXED)
    mm.madvise(SRC, PMD, pt.MADV_POPULATE_READ)  # the huge zero page
    u.register(DST, PMD, WP)
    with pytest.raises(UffdMoveError) as e:
        u.move(DST, SRC, PMD)
    assert e.value.errno == errno.EBUSY


def two_spaces(seed: int) -> list[tuple[pt.AddressSpace, pt.userfaultfd.Userfaultfd]]:
    """Two identical spaces: a source with written pages, the zero page,
    holes and a THP, a destination registered in part."""
    out = []
    for _ in range(2):
        rng = random.Random(seed)
        mm = pt.AddressSpace("x86-64", policy="linux-6.18", thp="madvise")
        u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
        mm.mmap(2 * PMD, SRC, flags=FIXED)
        mm.madvise(SRC, 2 * PMD, pt.MADV_HUGEPAGE if rng.random() < 0.5 else pt.MADV_NOHUGEPAGE)
        mm.madvise(SRC, 2 * PMD, rng.choice([pt.MADV_POPULATE_WRITE, pt.MADV_POPULATE_READ]))
        mm.madvise(SRC + PMD + 64 * K, 64 * K, pt.MADV_DONTNEED)
        mm.mmap(2 * PMD, DST, flags=FIXED)
        u.register(DST, 2 * PMD if rng.random() < 0.8 else PMD, WP)
        if rng.random() < 0.3:
            mm.access([DST + rng.randrange(0, 2 * PMD, K)], write=True)
        out.append((mm, u))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_move_many_is_the_calls_one_by_one(seed: int) -> None:
    # the same calls through move_many and through move: the same pages,
    # counters and first error, with the calls before it complete
    (m1, u1), (m2, u2) = two_spaces(seed)
    rng = random.Random(seed + 1000)
    calls = []
    for _ in range(rng.randrange(1, 12)):
        ln = rng.choice([K, 16 * K, 64 * K, PMD])
        off = rng.randrange(0, 2 * PMD - ln + 1, K)
        calls.append((DST + rng.choice([off, off, rng.randrange(0, 2 * PMD - ln + 1, K)]),
                      SRC + off, ln))  # fmt: skip
    mode = rng.choice([0, HOLES])
    counters: Counter[str] = Counter()
    one_by_one: tuple[int, int] | None = None
    for i, (d, s, ln) in enumerate(calls):
        try:
            u1.move(d, s, ln, mode)
        except UffdMoveError as e:
            one_by_one = (i, e.errno or 0)
            break
        finally:
            if u1.last_move is not None:
                counters.update(u1.last_move.counters)
            u1.last_move = None
    try:
        moved = u2.move_many(np.array(calls, dtype=np.uint64), mode)
        assert one_by_one is None and moved == sum(c[2] for c in calls)
    except UffdMoveError as e:
        assert one_by_one == (e.calls_done, e.errno)
        assert e.bytes_before == sum(c[2] for c in calls[: e.calls_done])
    assert (m1.frames(SRC, 2 * PMD) == m2.frames(SRC, 2 * PMD)).all()
    assert (m1.frames(DST, 2 * PMD) == m2.frames(DST, 2 * PMD)).all()
    if u2.last_move is not None:
        assert {k: v for k, v in counters.items() if v} == {
            k: v for k, v in u2.last_move.counters.items() if v
        }
    m2.check()


def test_move_many_checks_its_argument() -> None:
    _, u = pair(populate=pt.MADV_POPULATE_WRITE)
    with pytest.raises(ValueError, match="rows of"):
        u.move_many([DST, SRC, K])
    with pytest.raises(ValueError, match="rows of"):
        u.move_many([[DST, SRC, 1.5]])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        u.move_many([[DST, SRC, -1]])
    assert u.move_many(np.zeros((0, 3), dtype=np.uint64)) == 0


@pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
def test_multi_vma_moves_over_registered_vmas_agree_with_the_kernel() -> None:
    # remap_move's vma_multi_allowed (d23cb648e365, d50dabff4d1f): a
    # registered VMA moves only alone; first in a longer range, EFAULT
    # before anything moves; later, EFAULT with the VMAs before it moved.
    # Every result, errno and page must agree, over 200 sequences
    outcomes: Counter[str] = Counter()
    for seed in range(200):
        ops = random_multi_vma_uffd_ops(random.Random(seed), 8 << 20)
        diff = compare(ops, 8 << 20)
        assert diff is None, f"seed {seed}: {diff}"
        res, _ = simulate(ops, 8 << 20)
        i = next(k for k, op in enumerate(ops) if op[0] == "mremap")
        # the writes after it, one where each VMA would have moved to
        moved = any(r[0] == "ok" for r in res[i + 1 :])
        outcomes[f"{res[i][0]} {res[i][1] if res[i][0] == 'err' else ''} {moved}"] += 1
    # every rule was reached: moves that went through, refusals before any
    # move and refusals after one
    assert outcomes["ok  True"] > 0, outcomes
    assert outcomes[f"err {errno.EFAULT} False"] > 0, outcomes
    assert outcomes[f"err {errno.EFAULT} True"] > 0, outcomes


@pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
def test_fills_agree_with_the_kernel() -> None:
    # UFFDIO_COPY and UFFDIO_ZEROPAGE (mfill_atomic): 200 random sequences
    # of sources, destinations of each protection and registration, pages
    # already there, partial fills, unaligned sources, overlaps and bad
    # modes; every result (with the copy field), errno and page must agree
    outcomes: Counter[str] = Counter()
    for seed in range(200):
        ops = random_fill_ops(random.Random(seed), 4 << 20)
        diff = compare(ops, 4 << 20)
        assert diff is None, (seed, diff)
        results, _ = simulate(ops, 4 << 20)
        for op, r in zip(ops, results, strict=True):
            if op[0] in ("uffd_copy", "uffd_zeropage"):
                outcomes[
                    f"{op[0]} {r[0]} {errno.errorcode.get(r[1], '') if r[0] == 'err' else ''}"
                ] += 1
    # the sequences reach every outcome the rules have
    for kind in ("uffd_copy", "uffd_zeropage"):
        for what in ("ok ", "err ENOENT", "err EINVAL", "err EEXIST", "err EAGAIN"):
            assert outcomes[f"{kind} {what}"] > 0, (kind, what, outcomes)
    assert outcomes["uffd_copy err EFAULT"] > 0


def fill_space(
    prot: int = pt.PROT_READ | pt.PROT_WRITE, mode: int = pt.UFFDIO_REGISTER_MODE_MISSING
) -> tuple[pt.AddressSpace, Any]:
    """A written source page at SRC, an empty registered destination at DST."""
    mm = pt.AddressSpace("x86-64", policy="linux-6.18")
    u = mm.userfaultfd(0)
    mm.mmap(16 * K, SRC, flags=FIXED)
    mm.access(np.array([SRC], dtype=np.uint64), write=True)
    mm.mmap(16 * K, DST, prot=prot, flags=FIXED)
    u.register(DST, 16 * K, mode)
    return mm, u


def test_copy_fills_fresh_pages_with_the_source_s_data() -> None:
    mm, u = fill_space()
    src = mm.translate(SRC)
    assert u.copy(DST, SRC, 2 * K) == 2 * K
    a, b = mm.translate(DST), mm.translate(DST + K)
    # fresh frames (never the source's), the first holding a store's data,
    # the second the zero-filled copy of a page never written (read-faulted
    # in at the source: the zero page there now)
    assert a not in (None, src) and b not in (None, src, pt.ZERO_FRAME)
    written = set(mm.tables.written_frames().tolist())
    assert a in written and b not in written
    assert mm.translate(SRC + K) == pt.ZERO_FRAME
    # a page already there: EEXIST with nothing filled; a partial fill: EAGAIN
    with pytest.raises(pt.userfaultfd.UffdFillError) as e:
        u.copy(DST, SRC, K)
    assert (e.value.errno, e.value.copy) == (errno.EEXIST, -errno.EEXIST)
    with pytest.raises(pt.userfaultfd.UffdFillError) as e:
        u.zeropage(DST + 15 * K, 2 * K)  # the VMA ends after one page: ENOENT, nothing
    assert (e.value.errno, e.value.copy) == (errno.ENOENT, -errno.ENOENT)
    with pytest.raises(pt.userfaultfd.UffdFillError) as e:
        u.copy(DST + K, SRC, 2 * K)  # DST + K exists: stops at once
    assert e.value.errno == errno.EEXIST
    assert u.zeropage(DST + 2 * K, K) == K and mm.translate(DST + 2 * K) == pt.ZERO_FRAME
    mm.check()


def test_a_fill_s_entries_follow_the_vma_s_protection() -> None:
    # read-only: the copy is mapped read-only (dirty); PROT_NONE: mapped, inaccessible
    for prot in (pt.PROT_READ, pt.PROT_NONE):
        mm, u = fill_space(prot)
        u.copy(DST, SRC, K)
        _, e = mm.tables.entry(DST)
        assert e & 1 and not e & 2 and bool(e & 4) == (prot == pt.PROT_READ) and e & 8


def test_bad_fills_change_nothing() -> None:
    mm, u = fill_space(mode=pt.UFFDIO_REGISTER_MODE_MISSING)
    before = mm.frames(DST, 16 * K).copy(), mm.frames(SRC, 16 * K).copy()
    bad: list[tuple[Any, int, int]] = [
        (lambda: u.copy(DST, SRC, K, 4), errno.EINVAL, 0),  # unknown mode bit
        (lambda: u.copy(DST, SRC, K, pt.UFFDIO_COPY_MODE_WP), errno.EINVAL, -errno.EINVAL),
        (lambda: u.copy(DST + 8, SRC, K), errno.EINVAL, 0),  # dst unaligned
        (lambda: u.copy(DST, SRC, 0), errno.EINVAL, 0),
        (lambda: u.zeropage(DST, K, 2), errno.EINVAL, 0),  # no WP mode for it
        (lambda: u.copy(SRC + K, SRC, K), errno.ENOENT, -errno.ENOENT),  # not registered
        (lambda: u.copy(DST, DST + (1 << 30), K), errno.EFAULT, -errno.EFAULT),
    ]
    for call, code, field_ in bad:
        with pytest.raises(pt.userfaultfd.UffdFillError) as e:
            call()
        assert (e.value.errno, e.value.copy) == (code, field_)
    with pytest.raises(TypeError, match="len"):
        u.copy(DST, SRC, "4096")  # type: ignore[arg-type]
    # a source page that only a userfault could bring in: refused up front
    with pytest.raises(NotImplementedError, match="userfault"):
        u.copy(DST + K, DST, K)
    shared = pt.AddressSpace("x86-64")
    shm = shared.userfaultfd(0)
    shared.mmap(16 * K, DST, flags=pt.MAP_SHARED | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    shm.register(DST, 16 * K, pt.UFFDIO_REGISTER_MODE_MISSING)
    with pytest.raises(NotImplementedError, match="shmem"):
        shm.zeropage(DST, K)
    assert (mm.frames(DST, 16 * K) == before[0]).all()
    assert (mm.frames(SRC, 16 * K) == before[1]).all()
