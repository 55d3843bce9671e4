"""move_page_tables: counts, policies, locks and measured safety."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from helpers import ALL_ARCHS, results

import pagetab as pt

K, M, G = 1 << 10, 1 << 20, 1 << 30
MM = Callable[..., pt.AddressSpace]
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
FIXED = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED

SRC, DST = 1 << 44, 1 << 45
SAFE = [p for p in pt.policies() if pt.policy(p).safe]
UNSAFE = [p for p in pt.policies() if not pt.policy(p).safe]


def bases(mm: pt.AddressSpace) -> tuple[int, int]:
    """SRC and DST, or, in an address space too small for them (riscv64
    Sv39's 256 GiB), 64 and 128 GiB."""
    return (SRC, DST) if mm.arch.task_size > 2 * DST else (1 << 36, 1 << 37)


def move(mm: pt.AddressSpace, size: int, src_off: int = 0, dst_off: int = 0,
         advice: int = pt.MADV_POPULATE_WRITE,
         touch: tuple[int, ...] = ()) -> pt.MoveStats:  # fmt: skip
    """Map, populate, optionally access from CPUs ``touch``, and move."""
    src, dst = bases(mm)
    src, dst = src + src_off, dst + dst_off
    mm.mmap(size, addr=src, flags=FIX)
    mm.madvise(src, size, advice)
    pages = np.arange(src, src + size, mm.page_size, dtype=np.uint64)
    for cpu in touch:
        mm.access(pages, cpu=cpu)
    f = mm.frames(src, size)
    assert mm.mremap(src, size, size, FIXED, dst) == dst
    assert np.array_equal(mm.frames(dst, size), f)
    assert mm.find_vma(src) is None
    st = mm.last_move
    assert st is not None
    return st


# the kernel's arithmetic for 1 GiB on x86-64 since 2c91bd4a4e2e: 512 move_normal_pmd
# calls, each flushing its PMD_SIZE range under the old and new PMD locks
def test_pmd_aligned_linux_5_0(make_mm: MM) -> None:
    st = move(make_mm(policy="linux-5.0"), G, 2 * M, 2 * M)
    assert (st.normal_pmds_moved, st.ptes_moved, st.flush_calls) == (512, 0, 512)
    assert st.flush_pages == 512 * 512
    assert st.lock_acquired["ptl_pmd"] == 2 * 512  # old and new PMD table locks
    assert st.lock_acquired["rmap"] == 512  # move_pgt_entry takes the anon_vma lock
    assert st.unsafe_windows == 0 and st.flush_unlocked == 0


def test_misaligned_by_4k_moves_every_pte(make_mm: MM) -> None:
    st = move(make_mm(policy="linux-5.0"), G, 4 * K, 0)
    assert st.ptes_moved == 262144 and st.normal_pmds_moved == 0
    # extents alternate 4 KiB and 2 MiB - 4 KiB: one move_ptes and flush each
    assert st.move_ptes_calls == st.flush_calls == 1024
    assert st.lock_max_hold["ptl_pte"] == 511


def test_pud_aligned_linux_5_11(make_mm: MM) -> None:
    st = move(make_mm(policy="linux-5.11"), G)
    assert (st.normal_puds_moved, st.normal_pmds_moved, st.ptes_moved) == (1, 0, 0)
    assert st.flush_calls == 1 and st.flush_pages == G // 4096
    assert st.lock_acquired["page_table_lock"] == 1  # pud_lock


def test_pud_aligned_linux_5_0_moves_pmds(make_mm: MM) -> None:
    st = move(make_mm(policy="linux-5.0"), G)
    assert (st.normal_puds_moved, st.normal_pmds_moved) == (0, 512)


def test_pte_only_policies_move_ptes(make_mm: MM) -> None:
    for name in ("linux-4.18", "linux-4.19"):
        st = move(make_mm(policy=name), 64 * M, 2 * M, 2 * M)
        assert st.ptes_moved == 64 * M // 4096 and st.normal_pmds_moved == 0


@pytest.mark.parametrize("arch_name", ALL_ARCHS)
def test_policies_never_change_the_mapping(make_mm: MM, arch_name: str) -> None:
    a = pt.arch(arch_name)
    pmd = a.pmd_size
    size = 6 * pmd
    layouts = []
    for name in pt.policies():
        mm = make_mm(arch_name, policy=name, thp="madvise")
        src_base, dst_base = bases(mm)
        src = src_base + pmd // 2  # mutually misaligned by half a PMD: realign helps
        mm.mmap(size, addr=src, flags=FIX)
        # 4K pages and zero-page PTEs first, then THPs: one VMA throughout
        mm.madvise(src + 3 * pmd, pmd, pt.MADV_POPULATE_READ)
        mm.madvise(src + 4 * pmd, a.page_size * 3, pt.MADV_POPULATE_WRITE)
        mm.madvise(src, size, pt.MADV_HUGEPAGE)
        mm.madvise(src + pmd // 2, 2 * pmd, pt.MADV_POPULATE_WRITE)  # THPs
        before = mm.frames(src, size)
        mm.mremap(src, size, size, FIXED, dst_base + pmd // 2)
        after = mm.frames(dst_base + pmd // 2, size)
        assert np.array_equal(before, after), name
        layouts.append((after.tobytes(), tuple(mm.vmas()), mm.page_table_bytes))
    assert all(x[:2] == layouts[0][:2] for x in layouts)


@pytest.mark.parametrize("arch_name", ALL_ARCHS)
@pytest.mark.parametrize("name", SAFE)
def test_safe_presets_have_no_unsafe_windows(make_mm: MM, arch_name: str, name: str) -> None:
    a = pt.arch(arch_name)
    for off in (0, a.page_size):
        mm = make_mm(arch_name, policy=name, cpus=3)
        st = move(mm, 4 * a.pmd_size, 0, off, pt.MADV_POPULATE_READ, touch=(0, 1, 2))
        assert st.unsafe_windows == 0 and st.unsafe_entries == 0 and st.flush_unlocked == 0


@pytest.mark.parametrize("arch_name", ALL_ARCHS)
@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_presets_report_windows(make_mm: MM, arch_name: str, name: str) -> None:
    a = pt.arch(arch_name)
    mm = make_mm(arch_name, policy=name, cpus=3)
    st = move(mm, 4 * a.pmd_size, 0, 0, pt.MADV_POPULATE_READ, touch=(0, 1, 2))
    # every moved (clean, zero-page) entry waited for the final flush
    assert st.unsafe_entries == 4 * a.pmd_size // a.page_size
    assert st.flush_unlocked == 1
    # and the CPUs that touched the region still cached some of them
    assert 0 < st.unsafe_windows <= 3 * sum(t.entries for t in a.tlb.arrays)
    # the final flush leaves nothing stale
    assert mm.tlbs.count_range(SRC, SRC + 4 * a.pmd_size) == 0


@pytest.mark.parametrize("arch_name", ["x86-64", "arm64-4k", "arm64-64k", "ppc64-radix-64k"])
def test_unsafe_windows_count_exactly_the_cached_entries(make_mm: MM, arch_name: str) -> None:
    # fast-mremap-v2 flushes once, at the end: nothing touches the TLBs while
    # it moves, so the stale entries its lock releases find (counted from a
    # snapshot after the first scan) are all the cached entries of the range
    a = pt.arch(arch_name)
    mm = make_mm(arch_name, policy="fast-mremap-v2", cpus=3, thp="never")
    size = 16 * a.pmd_size
    mm.mmap(size, addr=SRC, flags=FIX)
    mm.madvise(SRC, size, pt.MADV_POPULATE_WRITE)
    rng = np.random.default_rng(5)
    for cpu in range(3):
        mm.access(SRC + rng.integers(0, size, 3000, dtype=np.uint64), cpu=cpu)
    cached = mm.tlbs.count_range(SRC, SRC + size)
    mm.mremap(SRC, size, size, FIXED, DST)
    assert mm.last_move is not None and cached > 0
    assert mm.last_move.unsafe_windows == cached


def test_unsafe_windows_need_cached_translations(make_mm: MM) -> None:
    st = move(make_mm(policy="linux-4.18"), 4 * M, advice=pt.MADV_POPULATE_READ)
    assert st.unsafe_entries == 1024 and st.unsafe_windows == 0  # no CPU cached any


def test_linux_4_18_dirty_ptes_flush_under_the_old_lock_only(make_mm: MM) -> None:
    # dirty entries force a flush under the old PTE lock, but the new one was
    # already dropped: still a window (the reason eb66ae030829 holds both)
    st = move(make_mm(policy="linux-4.18"), 4 * M)
    assert st.flush_unlocked == 0 and st.unsafe_entries == 1024
    same = make_mm(pt.arch("x86-64").replace(split_pte_lock=False), policy="linux-4.18")
    st = move(same, 4 * M)  # one lock (mm->page_table_lock) for both tables
    assert st.unsafe_entries == 0
    assert st.lock_acquired["page_table_lock"] == 2 and st.lock_acquired["ptl_pte"] == 0


def test_split_lock_configuration_decides_the_lock(make_mm: MM) -> None:
    nosplit = pt.arch("arm64-4k").replace(split_pmd_lock=False)
    st = move(make_mm(nosplit, policy="linux-5.0"), 8 * M)  # pmd_lockptr: mm->page_table_lock
    assert st.lock_acquired["ptl_pmd"] == 0 and st.lock_acquired["page_table_lock"] == 4
    st = move(make_mm("arm64-4k", policy="linux-5.0"), 8 * M)
    assert st.lock_acquired["ptl_pmd"] == 8
    # PPC_BOOK3S_64 selects ARCH_ENABLE_SPLIT_PMD_PTLOCK
    st = move(make_mm("ppc64-radix-64k", policy="linux-5.0"), 8 * M)
    assert st.lock_acquired["ptl_pmd"] == 8 and st.lock_acquired["page_table_lock"] == 0


def test_thp_moves_whole_when_aligned(make_mm: MM) -> None:
    mm = make_mm(thp="always", policy="linux-4.19")
    st = move(mm, 8 * M)
    assert st.huge_pmds_moved == 4 and st.ptes_moved == 0 and st.huge_pmds_split == 0


def test_whole_move_refused_when_destination_populated(make_mm: MM) -> None:
    mm = make_mm(policy="linux-5.0")
    mm.mmap(4 * M, addr=SRC, flags=FIX)
    mm.madvise(SRC, 4 * M, pt.MADV_POPULATE_WRITE)
    # the destination PMD still has a (now empty) PTE table: DONTNEED keeps it
    mm.mmap(4 * M, addr=DST, flags=FIX)
    mm.madvise(DST, 4 * M, pt.MADV_POPULATE_WRITE)
    mm.madvise(DST, 4 * M, pt.MADV_DONTNEED)
    mm.munmap(DST, 2 * M)  # frees [DST, DST+2M)'s table; [DST+2M, +4M) keeps a VMA
    mm.mremap(SRC, 2 * M, 2 * M, FIXED, DST)
    st = mm.last_move
    assert st is not None and st.normal_pmds_moved == 1


def test_realign_moves_whole_pmds(make_mm: MM) -> None:
    off = 4 * K
    size = 64 * M - off
    st_old = move(make_mm(policy="linux-5.11"), size, off, off)
    st_new = move(make_mm(policy="linux-6.8"), size, off, off)
    assert st_old.normal_pmds_moved == 31 and st_old.ptes_moved == 511  # [4K, 2M) by PTE
    assert st_new.realigned and st_new.normal_pmds_moved == 32 and st_new.ptes_moved == 0


def test_realign_refused_with_a_mapping_below(make_mm: MM) -> None:
    mm = make_mm(policy="linux-6.8")
    mm.mmap(4 * K, addr=SRC, flags=FIX)  # occupies the PMD below the source
    st = move(mm, 8 * M - 4 * K, 4 * K, 4 * K)
    assert not st.realigned and st.ptes_moved > 0


def test_arm64_64k_pud_move_moves_a_pgd_entry(make_mm: MM) -> None:
    mm = make_mm("arm64-64k", policy="linux-5.11")
    tb = 4 << 40
    mm.mmap(tb, addr=tb, flags=FIX)
    for off in (0, 3 << 30, tb - (1 << 16)):
        mm.madvise(tb + off, 1 << 16, pt.MADV_POPULATE_WRITE)
    f = mm.frames(tb, tb)
    mm.mremap(tb, tb, tb, FIXED, 3 * tb)
    st = mm.last_move
    assert st is not None and st.normal_puds_moved == 1 and st.normal_pmds_moved == 0
    assert np.array_equal(mm.frames(3 * tb, tb), f)
    assert mm.tables.live_rows()[0] == 1  # one pgd; the moved entry points to its pmd table


def test_batched_ptl_flushes_once_per_table(make_mm: MM) -> None:
    st = move(make_mm(policy="batched-ptl"), G, 2 * M, 2 * M)
    assert st.normal_pmds_moved == 512 and st.unsafe_windows == 0
    assert st.flush_calls == 2  # the range spans two PMD tables
    assert st.lock_acquired["ptl_pmd"] == 4 and st.lock_max_hold["ptl_pmd"] == 511


def test_batched_ptl_mixed_table_drops_to_pte_moves(make_mm: MM) -> None:
    mm = make_mm(policy="batched-ptl")
    mm.mmap(8 * M, addr=SRC, flags=FIX)
    mm.madvise(SRC, 8 * M, pt.MADV_POPULATE_READ)
    mm.mmap(2 * M, addr=DST + 2 * M, flags=FIX)  # keeps one destination PMD busy
    mm.madvise(DST + 2 * M, 4 * K, pt.MADV_POPULATE_READ)
    mm.madvise(DST + 2 * M, 4 * K, pt.MADV_DONTNEED)
    mm.munmap(DST + 2 * M, 2 * M)  # its table is freed: the PMD is free again
    f = mm.frames(SRC, 8 * M)
    mm.mremap(SRC, 8 * M, 8 * M, FIXED, DST + 4 * K)  # misaligned: all PTE moves
    st = mm.last_move
    assert st is not None and st.ptes_moved == 2048 and st.unsafe_windows == 0
    assert np.array_equal(mm.frames(DST + 4 * K, 8 * M), f)


def test_custom_policy(make_mm: MM) -> None:
    p = pt.Policy("pmd-at-end", move_pmd=True, flush="end")
    assert not p.flush_under_lock and not p.batch_pmd_lock and not p.safe
    st = move(make_mm(policy=p), 4 * M, 2 * M, 2 * M)
    assert st.policy == "pmd-at-end" and st.flush_calls == 1 and st.unsafe_entries == 1024
    with pytest.raises(ValueError, match="flush"):
        pt.Policy("x", flush="sometimes")
    with pytest.raises(ValueError, match="batch"):
        pt.Policy("x", flush="table")
    with pytest.raises(TypeError, match="unexpected keyword"):
        pt.Policy("x", flush_under_lock=False)  # implied by flush, not a field
    with pytest.raises(ValueError, match="dirty_flush_under_lock"):
        pt.Policy("x", dirty_flush_under_lock=True)
    with pytest.raises(ValueError, match="unknown Policy field"):
        pt.policy("linux-5.0").replace(bogus=1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        pt.Policy("x", flush_later=True)


# 1 GiB of written 4K pages on x86-64, one CPU, moved along each path; the
# event counts below are derived from the kernel's rules, not read back:
# - PTE path (source 4K past a PMD boundary): move_ptes extents alternate
#   511 and 1 pages, 1024 calls, each under the old and new PTE locks and
#   flushed alone: 512 one-page flushes (INVLPG) and 512 of 511 pages
#   (above the 33-page ceiling: a full flush). The destination needs a PUD
#   table (a new PGD entry), a PMD table and 512 PTE tables.
# - PMD path (both 2 MiB past a PUD boundary): 512 PTE tables move by their
#   PMD entries, each under two PMD locks and the anon_vma lock, each with
#   a 512-page flush (a full flush); a PUD table and two PMD tables (the
#   range crosses a 1 GiB boundary).
# - PUD path (both PUD aligned, linux-5.11): one PMD table moves by its PUD
#   entry under page_table_lock and the anon_vma lock, one full flush; a
#   PUD table.
# Then the source's unmap frees the emptied tables, and tlb_finish_mmu
# flushes them once (free_pgd_range: each freed table adds a page at its
# PMD-, PUD- or PGD-aligned address; tlb_get_unmap_shift: the stride of
# the lowest level cleared). The source's PUD table (a PGD entry of its
# own) is always freed, at the PGD-aligned source base:
# - PTE path: PTE tables freed, [base, base + 1 GiB + 4 KiB) at 2 MiB
#   stride, 512 strides: above the ceiling, a full flush;
# - PMD path: two PMD tables, [base, base + 1 GiB + 4 KiB) at 1 GiB
#   stride: INVLPG at base and base + 1 GiB;
# - PUD path: the PUD table alone, [base, base + 4 KiB) at 512 GiB
#   stride: one INVLPG.
# No other CPU is in mm_cpumask: no IPI.
PATHS = {
    "pte": ("linux-5.0", 4 * K, 0, {"ptes": 262144, "tables": 514, "ptl": 2048, "rmap": 0,
                                    "flushes": 1024 + 1, "invlpg": 512, "invlpg_flush": 512,
                                    "full": 512 + 1}),
    "pmd": ("linux-5.0", 2 * M, 2 * M, {"pmds": 512, "tables": 3, "ptl": 1024, "rmap": 512,
                                        "flushes": 512 + 1, "full": 512, "invlpg": 2,
                                        "invlpg_flush": 1}),
    "pud": ("linux-5.11", 0, 0, {"puds": 1, "tables": 1, "ptl": 1, "rmap": 1, "flushes": 1 + 1,
                                 "full": 1, "invlpg": 1, "invlpg_flush": 1}),
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(PATHS))
def test_breakdown_prices_the_events_of_each_path(make_mm: MM, path: str) -> None:
    name, src_off, dst_off, n = PATHS[path]
    c = pt.arch("x86-64").cost
    st = move(make_mm(policy=name), G, src_off, dst_off)
    expected = {
        "syscall": c("mremap_call"),
        "entry moves": n.get("ptes", 0) * c("pte_move") + n.get("pmds", 0) * c("pmd_move")
        + n.get("puds", 0) * c("pud_move"),
        "folio lookups": 0.0,  # linux-6.8 looks up no folio
        "table alloc": n["tables"] * c("table_alloc"),
        "locks": n["ptl"] * c("ptl_lock") + n["rmap"] * c("rmap_lock"),
        "tlb flush": n["flushes"] * c("flush_call") + n.get("invlpg", 0) * c("invlpg")
        + n.get("invlpg_flush", 0) * c("invlpg_flush") + n["full"] * c("full_flush"),
        "ipi": 0.0,
    }  # fmt: skip
    assert st.breakdown == pytest.approx(expected)
    assert st.estimated_ns == pytest.approx(sum(expected.values()))


@pytest.mark.parametrize("path", sorted(PATHS))
def test_interval_prices_the_events_at_each_end_of_their_ranges(make_mm: MM, path: str) -> None:
    # the same counts derived by hand, every event priced at the low end of
    # its cost's range, then at the high end
    name, src_off, dst_off, n = PATHS[path]
    costs = pt.arch("x86-64").costs
    st = move(make_mm(policy=name), G, src_off, dst_off)

    def priced(end: str) -> float:
        def c(event: str) -> float:
            value: float = getattr(costs[event], end)
            return value

        return (c("mremap_call") + n.get("ptes", 0) * c("pte_move")
                + n.get("pmds", 0) * c("pmd_move") + n.get("puds", 0) * c("pud_move")
                + n["tables"] * c("table_alloc") + n["ptl"] * c("ptl_lock")
                + n["rmap"] * c("rmap_lock") + n["flushes"] * c("flush_call")
                + n.get("invlpg", 0) * c("invlpg") + n["full"] * c("full_flush")
                + n.get("invlpg_flush", 0) * c("invlpg_flush"))  # fmt: skip

    low, high = st.estimated_ns_range
    assert (low, high) == pytest.approx((priced("low"), priced("high")))
    assert priced("ns") == pytest.approx(st.estimated_ns)
    assert low < st.estimated_ns < high
    d = st.as_dict()
    assert (d["estimated_ns_low"], d["estimated_ns_high"]) == (low, high)


def test_page_tables_freed_after_move(make_mm: MM) -> None:
    mm = make_mm(policy="linux-4.19")
    st = move(mm, 64 * M, 4 * K, 0)
    # one PMD table and 32 PTE tables at the destination, nothing at the source
    assert mm.page_table_bytes == (32 + 1 + 1) * 4096
    assert st.peak_page_table_bytes >= st.page_table_bytes_before + 32 * 4096


def test_huge_pud_leaf_moves_whole_or_splits(make_mm: MM) -> None:
    for off, whole in ((0, True), (2 * M, False)):
        mm = make_mm(policy="linux-5.11")
        mm.mmap(G, addr=SRC, flags=FIX)
        head = mm.tables.set_leaf(1, SRC)  # a PUD-sized leaf (DAX-like)
        mm.mm_struct.vmas[0].anon_vma = 1
        f = mm.frames(SRC, G)
        assert f[0] == head and (np.diff(f) == 1).all()
        mm.mremap(SRC, G, G, FIXED, DST + off)
        st = mm.last_move
        assert st is not None
        assert st.huge_puds_moved == (1 if whole else 0)
        assert st.huge_puds_split == (0 if whole else 1)
        assert st.huge_pmds_moved == (0 if whole else 512)  # PMD aligned: the pieces move
        assert np.array_equal(mm.frames(DST + off, G), f)
        mm.mm_struct.vmas[0].anon_vma = None


def test_demo_compares_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    from pagetab.cli import main

    assert main(["--size", "1G", "--arch", "x86-64", "--json"]) == 0
    rows = results(capsys.readouterr().out)
    assert [r["policy"] for r in rows] == pt.policies()
    assert any(not r["safe"] for r in rows) and rows[1]["ratio"] == 1.0


def test_every_engine_counter_reaches_users_by_name(make_mm: MM) -> None:
    # the names come from the engine's C struct: each field of the record is
    # an attribute of MoveStats and a key of as_dict, with the record's value
    from pagetab.stats import COUNTER_NAMES, LOCK_CLASSES, OP_NAMES

    st = move(make_mm(policy="linux-4.19", cpus=2), 4 * M, 4 * K, 0)
    rec = st.record[0]
    d = st.as_dict()
    assert "ptes_moved" in COUNTER_NAMES and "unsafe_windows" in COUNTER_NAMES
    for name in COUNTER_NAMES:
        assert getattr(st, name) == int(rec[name]) == d[name]
    # 4 MiB of 4K pages, source 4K past a PMD boundary, destination on one:
    # extents of 2M-4K, 4K, 2M-4K and 4K (each ends at the nearer boundary)
    assert st.ptes_moved == 1024 and st.move_ptes_calls == 4
    assert list(st.lock_acquired) == list(LOCK_CLASSES) == list(d["lock_acquired"])
    assert list(st.flush_ops) == list(OP_NAMES)
    # the four move_ptes flushes, then the unmap's (the freed tables)
    assert (st.flush_calls, st.unmap_flushes, st.flush_ops["flush_calls"]) == (4, 1, 5)
    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        _ = st.bogus


@pytest.mark.parametrize("name", ["linux-4.19", "linux-5.0"])
def test_dontunmap_source_faults_follow_the_table_left(make_mm: MM, name: str) -> None:
    # the named policy difference tests/test_state_machine.py allows: moving
    # PTEs one by one leaves the emptied PTE table under the still-mapped
    # source, so a fault there is a 4K fault; moving the table leaves the
    # PMD none, and the fault installs a THP (MADV_HUGEPAGE given after the
    # 4K pages were populated)
    mm = make_mm("x86-64", thp="madvise", policy=name)
    mm.mmap(4 * M, addr=SRC, flags=FIX)
    mm.madvise(SRC, 4 * M, pt.MADV_POPULATE_WRITE)
    mm.madvise(SRC, 4 * M, pt.MADV_HUGEPAGE)
    mm.mremap(SRC, 4 * M, 4 * M, FIXED | pt.MREMAP_DONTUNMAP, DST)
    mm.access([SRC + 4096], write=True)
    present = int((mm.frames(SRC, 2 * M) >= 0).sum())
    assert present == (512 if pt.policy(name).move_pmd else 1)


def test_linux_4_9_moves_latency_limit_extents_and_flushes_once(make_mm: MM) -> None:
    # v4.9 move_page_tables: at most LATENCY_LIMIT (64 pages) per move_ptes,
    # each under its two PTE locks, no flush inside, one flush_tlb_range of
    # the whole range after the loop (no lock held): 1 GiB of 4K pages is
    # 4096 calls, 8192 PTE-lock acquisitions and one flush, and every moved
    # present entry outlives its lock unflushed
    st = move(make_mm(policy="linux-4.9"), G)
    assert st.ptes_moved == 262144 and st.move_ptes_calls == 4096
    assert st.normal_pmds_moved == 0 and st.normal_puds_moved == 0
    assert st.lock_acquired == {"ptl_pte": 8192, "ptl_pmd": 0, "page_table_lock": 0, "rmap": 0}
    assert st.lock_max_hold["ptl_pte"] == 64
    assert st.flush_calls == 1 and st.flush_unlocked == 1 and st.flush_pages == 262144
    assert st.unsafe_entries == 262144 and not st.safe
    # a misaligned move: the limit applies inside each extent, and an emptied
    # old table freed early ends its extent (get_old_pmd finds none)
    st = move(make_mm(policy="linux-4.9"), 4 * M, 4 * K, 0)
    assert st.ptes_moved == 1024
    # extents of 2M-4K, 4K, 2M-4K, 4K, each cut into 64-page calls: 8+1+8+1
    assert st.move_ptes_calls == 18
    with pytest.raises(ValueError, match="pte_extent_limit"):
        pt.Policy("x", pte_extent_limit=-1)


def test_mremap_folio_pte_batch_looks_up_folios_as_the_kernel_did() -> None:
    # f822a9a81a31 (linux-6.17-rc1): vm_normal_folio for every present PTE
    # mremap_folio_pte_batch is called on, except an extent's last (max_nr
    # 1); 0b5be138ce00 (linux-6.17): only where pte_batch_hint > 1, never
    # on x86. 64 MiB moved 4 KiB off a PMD boundary: 32 PMDs, each split
    # into extents of 511 and 1 pages
    from pagetab.experiment import move_stats

    def lookups(arch: str, policy: str) -> int:
        st = move_stats(64 << 20, arch, policy, dst_align=4096, cpus=1, touch=0)
        return int(st.folio_lookups)

    assert lookups("x86-64", "linux-6.17-rc1") == 16384 - 64
    assert lookups("x86-64", "linux-6.17") == 0
    assert lookups("x86-64", "linux-6.16") == 0
    assert lookups("arm64-4k", "linux-6.17-rc1") == 16384 - 64
    st = move_stats(64 << 20, "x86-64", "linux-6.17-rc1", dst_align=4096, cpus=1, touch=0)
    priced = st.breakdown["folio lookups"]
    assert priced == pytest.approx(st.folio_lookups * st.profile.cost("folio_lookup"))


def test_uffd_move_looks_up_each_moved_folio() -> None:
    mm = pt.AddressSpace("x86-64", policy="linux-6.18", thp="never")
    src = mm.mmap(1 << 20, 1 << 40, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    dst = mm.mmap(1 << 20, (1 << 40) + (1 << 30),
                  flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)  # fmt: skip
    mm.madvise(src, 1 << 20, pt.MADV_POPULATE_WRITE)
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    u.register(dst, 1 << 20, pt.UFFDIO_REGISTER_MODE_MISSING)
    u.move(dst, src, 1 << 20)
    st = u.last_move
    assert st is not None and st.counters["folio_locks"] == 256
    assert st.breakdown["folio lookups"] == pytest.approx(256 * mm.arch.cost("folio_lookup"))


def test_a_contpte_batch_looks_up_no_folio_at_an_extents_last_pte() -> None:
    # 0b5be138ce00 (linux-6.17): mremap_folio_pte_batch returns at max_nr ==
    # 1 before vm_normal_folio. 2 MiB of 64K folios moved from 4 KiB past a
    # PMD boundary to a PUD boundary: extents of 511 pages (a block's last
    # 15, then 31 whole blocks: 32 batches, a lookup each) and 1 page (the
    # first of a block: pte_batch_hint 16, but max_nr 1: no lookup)
    mm = pt.AddressSpace("arm64-4k", policy="linux-6.17", thp_sizes={64 << 10: "always"})
    base = mm.mmap(4 << 20, 1 << 40, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.access(np.arange(base, base + (4 << 20), 4096, dtype=np.uint64), write=True)
    mm.mremap(base + 4096, 2 << 20, 2 << 20, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, 1 << 41)
    st = mm.last_move
    assert st is not None and st.ptes_moved == 512 and st.move_ptes_calls == 2
    assert st.pte_batches == 32 and st.folio_lookups == 32
