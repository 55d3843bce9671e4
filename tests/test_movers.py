"""The concurrent model's movers other than mremap: madvise(MADV_DONTNEED),
munmap and mprotect(PROT_READ) laid out by pagetab.mmu_gather, checked
against the real zap and protection change, against this kernel's own
flushes, and replayed against application threads; UFFDIO_MOVE traced in
C as mremap is."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import PROGRAMS, needs_recording

import pagetab as pt
from pagetab.contention import ThreadSpec
from pagetab.mmu_gather import gather_slots, gather_trace, table_batch
from pagetab.timeline import LOCK_CLASSES

MIB = 1 << 20
BASE = 1 << 40
FLAGS = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED


def space(size: int, pops: list[str], arch: str = "x86-64") -> pt.AddressSpace:
    """A space with one VMA at BASE whose equal parts are populated as
    ``pops`` ("write", "read", "thp", "none")."""
    s = pt.AddressSpace(arch, cpus=2, thp="madvise")
    s.mmap(size, addr=BASE, flags=FLAGS)
    part = size // len(pops)
    for i, p in enumerate(pops):
        lo = BASE + i * part
        if p == "thp":
            s.madvise(lo, part, pt.MADV_HUGEPAGE)
        if p != "none":
            s.madvise(lo, part, pt.MADV_POPULATE_READ if p == "read" else pt.MADV_POPULATE_WRITE)
    return s


def test_an_mmu_gather_holds_the_kernels_count_of_pages() -> None:
    # include/asm-generic/tlb.h: 8 on-stack slots, then 19 batches of 510
    # (4 KiB pages) or 1 of 8190 (64 KiB pages), each full one slot early
    assert gather_slots(4096) == 7 + 19 * 509
    assert gather_slots(65536) == 7 + 1 * 8189
    # MAX_TABLE_BATCH: a page of pointers after an rcu_head and a counter
    assert table_batch(4096) == 509


@pytest.mark.parametrize("call", ["madvise", "munmap", "mprotect"])
@pytest.mark.parametrize("lo_page, hi_page", [(0, 0), (3, 7), (512, 1)])
def test_the_trace_clears_what_the_kernel_path_clears(call: str, lo_page: int,
                                                      hi_page: int) -> None:  # fmt: skip
    # a mixed VMA, the range cut at pages inside tables: the trace's entries
    # are what the simulated call itself clears or write-protects
    size = 32 * MIB
    s = space(size, ["write", "read", "thp", "none"])
    lo, hi = BASE + lo_page * 4096, BASE + size - hi_page * 4096
    g = gather_trace(s.mm_struct, call, lo, hi)
    before = s.frames(lo, hi - lo)
    huge = 4  # the THP quarter's PMDs: one entry each
    if call == "mprotect":
        s.mprotect(lo, hi - lo, pt.PROT_READ)
        # every present entry changed: still there, none writable now
        after = [s.mm_struct.tables.entry(a) for a in range(lo, hi, 4096)]
        assert all(e == 0 or not e & 2 for _, e in after)  # E_WRITE
        assert g.counts["entries"] == int((s.frames(lo, hi - lo) >= 0).sum()) - 511 * huge
    else:
        (s.madvise(lo, hi - lo, pt.MADV_DONTNEED) if call == "madvise"
         else s.munmap(lo, hi - lo))  # fmt: skip
        cleared = (before >= 0) & (s.frames(lo, hi - lo) < 0)
        assert cleared.sum() == (before >= 0).sum()  # the call cleared them all
        assert g.counts["entries"] == int(cleared.sum()) - 511 * huge
        assert g.counts["folios_freed"] == int((cleared & (before > 0)).sum()) - 512 * huge
        assert g.counts["pmd_folios_freed"] == huge
    # the extents are disjoint, in order, inside the range, one per hold
    assert (g.ext_lo[1:] >= g.ext_hi[:-1]).all()
    assert g.ext_lo[0] >= lo and g.ext_hi[-1] <= hi
    assert len(g.ext_lo) == len(g.holds) == g.counts["tables"]
    assert g.total_ns > g.call_ns > 0


def test_a_full_gather_flushes_and_frees_in_the_middle_of_a_table() -> None:
    size = 64 * MIB
    s = space(size, ["write"])
    g = gather_trace(s.mm_struct, "madvise", BASE, BASE + size)
    pages = size // 4096
    cap = gather_slots(4096)
    assert g.counts["forced_flushes"] == pages // cap
    assert g.counts["flushes"] == pages // cap + 1
    # the table the batches filled in is held twice: before and after the flush
    assert g.counts["tables"] == size // (2 * MIB) + pages // cap
    # each flush covers what was cleared since the previous one
    assert g.fl_lo[0] == BASE and g.fl_hi[0] == BASE + cap * 4096
    assert g.fl_lo[1] == BASE + cap * 4096
    # zero pages take no slot: no flush before the end
    z = gather_trace(space(size, ["read"]).mm_struct, "madvise", BASE, BASE + size)
    assert z.counts["flushes"] == 1 and z.counts["forced_flushes"] == 0


def test_mprotect_flushes_as_each_arch_does() -> None:
    # x86 and powerpc flush only the entries that were writable, and a THP
    # with the rest; arm64 (and riscv) every changed entry, and each THP at
    # once under its lock (pmdp_invalidate) besides
    for arch, zero, thp in (("x86-64", 0, 1), ("arm64-4k", 1, 9), ("riscv64-sv48", 1, 9)):
        g = gather_trace(space(16 * MIB, ["read"], arch).mm_struct, "mprotect", BASE,
                         BASE + 16 * MIB)  # fmt: skip
        assert g.counts["flushes"] == zero, arch
        g = gather_trace(space(16 * MIB, ["thp"], arch).mm_struct, "mprotect", BASE,
                         BASE + 16 * MIB)  # fmt: skip
        assert g.counts["flushes"] == thp, arch
    g = gather_trace(space(64 * MIB, ["read"], "ppc64-radix-64k").mm_struct, "mprotect", BASE,
                     BASE + 64 * MIB)  # fmt: skip
    assert g.counts["flushes"] == 0


def test_mprotect_flushes_only_what_was_writable() -> None:
    size = 8 * MIB
    g = gather_trace(space(size, ["read"]).mm_struct, "mprotect", BASE, BASE + size)
    assert g.counts["flushes"] == 0  # the zero page is mapped read-only already
    g = gather_trace(space(size, ["read", "write"]).mm_struct, "mprotect", BASE, BASE + size)
    assert g.counts["flushes"] == 1
    assert (int(g.fl_lo[0]), int(g.fl_hi[0])) == (BASE + size // 2, BASE + size)


@needs_recording
@pytest.mark.parametrize("mib", [36, 256, 1018])
def test_each_call_flushes_as_often_as_the_kernel(tmp_path: Path, mib: int) -> None:
    # the kernel's tlb:tlb_flush events during each call of the program, one
    # per flush on the calling CPU (36 MiB: fewer pages than a gather
    # holds; 256 MiB: six times more; 1018 MiB: munmap frees 509 PTE tables
    # and its PMD table, and the full table batch flushes once more)
    from pagetab.record import record
    from pagetab.replay import LOCAL_FLUSH_REASONS
    from pagetab.tracefile import read_trace

    out = tmp_path / "zap.ptrace.gz"
    res = record([sys.executable, str(PROGRAMS / "zap_flushes.py"), str(mib)], out)
    assert res.exit_code == 0 and res.lost == 0
    size = mib * MIB
    kernel = {e["nr"]: sum(int(e.get("tlb", {}).get(r, 0)) for r in LOCAL_FLUSH_REASONS)
              for e in read_trace(out)
              if e["k"] == "sys" and e["nr"] in ("madvise", "mprotect", "munmap")
              and e["a"][1] == size
              and (e["nr"] != "madvise" or e["a"][2] == pt.MADV_DONTNEED)}  # fmt: skip
    s = space(size, ["write"])
    sim = {call: gather_trace(s.mm_struct, call, BASE, BASE + size).counts["flushes"]
           for call in ("madvise", "mprotect", "munmap")}  # fmt: skip
    assert kernel == sim
    assert sim["madvise"] == {36: 1, 256: 7, 1018: 27}[mib]
    assert sim["munmap"] == sim["madvise"] + (mib == 1018)


@needs_recording
@pytest.mark.parametrize("mib", [1016, 1020])
def test_a_full_table_batch_flushes_as_the_kernel_does(tmp_path: Path, mib: int) -> None:
    # MADV_DONTNEED of zero pages gathers no folio, but each PTE table it
    # empties whole is freed (CONFIG_PT_RECLAIM) into the table batch:
    # 508 tables fit, the 509th flushes
    import platform

    from pagetab.record import record
    from pagetab.replay import LOCAL_FLUSH_REASONS
    from pagetab.tracefile import read_trace

    release = tuple(int(x) for x in platform.release().split(".")[:2])
    if release < (6, 14):
        pytest.skip("CONFIG_PT_RECLAIM: x86-64 kernels from 6.14")
    out = tmp_path / "zero.ptrace.gz"
    res = record([sys.executable, str(PROGRAMS / "zero_zap.py"), str(mib)], out)
    assert res.exit_code == 0 and res.lost == 0
    size = mib * MIB
    [kernel] = [sum(int(e.get("tlb", {}).get(r, 0)) for r in LOCAL_FLUSH_REASONS)
                for e in read_trace(out) if e["k"] == "sys" and e["nr"] == "madvise"
                and e["a"][1] == size and e["a"][2] == pt.MADV_DONTNEED]  # fmt: skip
    g = gather_trace(space(size, ["read"]).mm_struct, "madvise", BASE, BASE + size)
    assert g.counts["flushes"] == kernel == (1 if mib == 1016 else 2)
    assert g.counts["tables_freed"] == size // (2 * MIB)


def run(mover: str, spec: ThreadSpec, policy: str = "linux-6.8", **kw: object) -> pt.ContendResult:
    return pt.run_concurrent(64 * MIB, "x86-64", policy, [spec], cpus=2, mover=mover, **kw)


READER = ThreadSpec("inside", "read", accesses=1, through_move=True, think_ns=200.0)
WRITER = ThreadSpec("inside", "write", accesses=1, through_move=True, think_ns=200.0)


def test_after_madvise_a_reader_faults_in_new_pages_without_waiting() -> None:
    for policy in ("linux-5.0", "linux-6.8"):  # mmap_lock or the VMA's lock, for read
        r = run("madvise", READER, policy)
        t = r.threads[0].stats
        assert t["faults"] > 0 and t["segv"] == 0 and t["blocked"] == 0
        # until its flush reaches the reader, a cleared page still hits: never unsafely
        assert t["stale_hits"] > 0 and t["unsafe_hits"] == 0
        assert r.mover_wait_ns == 0 and r.flushes == 64 * MIB // 4096 // gather_slots(4096) + 1


def test_munmap_leaves_no_vma_and_holds_mmap_lock_for_write_only_until_it_zaps() -> None:
    r = run("munmap", READER)
    t = r.threads[0].stats
    assert t["segv"] > 0 and t["faults"] == 0
    # a fresh region's faults under mmap_lock (no per-VMA locks): those that
    # meet munmap wait only until the downgrade, mprotect's until it returns
    fresh = ThreadSpec("fresh", "write", accesses=1, through_move=True, think_ns=200.0)
    um = run("munmap", fresh, "linux-5.0", move_at_ns=1000.0)
    mp = run("mprotect", fresh, "linux-5.0", move_at_ns=1000.0)
    assert um.threads[0].stats["blocked"] == mp.threads[0].stats["blocked"] == 1
    call = pt.arch("x86-64").cost("munmap_call")
    assert 0 < um.threads[0].stats["blocked_ns"] <= call
    assert mp.threads[0].stats["blocked_ns"] > 0.5 * mp.move_alone_ns > 10 * call


def test_after_mprotect_writes_fault_and_reads_do_not() -> None:
    # a writer whose few pages stay in its TLB: its writes hit the writable
    # entries until mprotect's flush, then fault and find no write right
    few = ThreadSpec("inside", "write", accesses=1, through_move=True, think_ns=200.0,
                     span=64 * 1024)  # fmt: skip
    w = run("mprotect", few, populate="write").threads[0].stats
    rd = run("mprotect", READER, populate="write").threads[0].stats
    assert w["segv"] > 0 and w["stale_hits"] > 0 and w["unsafe_hits"] == 0
    assert rd["segv"] == 0 and rd["faults"] == 0 and rd["stale_hits"] == 0


def test_the_mover_is_priced_by_its_trace() -> None:
    s = space(64 * MIB, ["write"])
    s.access(np.array([BASE], dtype=np.uint64), cpu=1)  # both CPUs in mm_cpumask, as the run's
    for mover in ("madvise", "munmap", "mprotect"):
        g = gather_trace(s.mm_struct, mover, BASE, BASE + 64 * MIB)
        r = run(mover, ThreadSpec("outside", accesses=10), populate="write")
        assert r.move_alone_ns == pytest.approx(g.total_ns)
        assert r.mover == mover and r.row()["mover"] == mover


def test_bad_movers_are_refused() -> None:
    with pytest.raises(ValueError, match="mover must be one of mremap, madvise, munmap, "
                       "mprotect, uffdio_move, not 'madvice'"):  # fmt: skip
        pt.run_concurrent(64 * MIB, mover="madvice")
    with pytest.raises(ValueError, match="dontunmap is an mremap flag"):
        pt.run_concurrent(64 * MIB, mover="madvise", dontunmap=True)
    with pytest.raises(ValueError, match="needs a policy with UFFDIO_MOVE"):
        pt.run_concurrent(64 * MIB, "x86-64", "linux-5.11", mover="uffdio_move")
    with pytest.raises(ValueError, match="call must be one of madvise, munmap, mprotect"):
        gather_trace(space(4 * MIB, ["write"]).mm_struct, "mremap", BASE, BASE + 4 * MIB)
    assert np.isfinite(run("madvise", READER).estimated_ns)


# -- UFFDIO_MOVE ---------------------------------------------------------------------


def uffd_moved(policy: str, pops: list[str], size: int = 16 * MIB) -> pt.userfaultfd.UffdMoveStats:
    """A traced UFFDIO_MOVE of a region populated as ``pops`` into a
    registered destination."""
    s = space(size, pops)
    s.policy = policy
    dst = BASE + (1 << 30)
    s.mmap(size, addr=dst, flags=FLAGS)
    u = s.userfaultfd(pt.UFFD_FEATURE_MOVE)
    u.register(dst, size, pt.UFFDIO_REGISTER_MODE_MISSING)
    s.trace_moves = True
    u.move(dst, BASE, size, pt.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)
    assert u.last_move is not None and u.last_move.trace is not None
    return u.last_move


@pytest.mark.parametrize("policy", ["linux-6.8", "linux-6.16", "linux-6.18", "linux-6.19"])
@pytest.mark.parametrize("pops", [["write", "read", "write", "none"], ["thp"]])
def test_a_traced_uffdio_move_holds_every_priced_event(policy: str, pops: list[str]) -> None:
    # written pages, zero pages, holes, THPs: the trace's events are the
    # counters, at the counters' prices (all but the ioctl's own)
    if policy == "linux-6.8" and "read" in pops:
        pops = ["write", "write"]  # (6.8 refuses zero pages: EBUSY)
    st = uffd_moved(policy, pops)
    tr, c = st.trace, st.counters
    assert tr is not None
    assert tr.total_ns + st.breakdown["syscall"] == pytest.approx(st.estimated_ns)
    kinds = np.array(tr.kinds())
    ev = tr.events
    assert (kinds == "flush").sum() == c["flush_calls"]
    rmap_class = LOCK_CLASSES.index("rmap")
    ptl = (kinds == "lock") & (ev["what"] != rmap_class)
    assert ptl.sum() == c["pte_locks"]
    rmap = (kinds == "lock") & (ev["what"] == rmap_class)
    assert ev["entries"][rmap].sum() == c["folio_locks"] + c["anon_vma_locks"]
    ptes = kinds == "ptes"
    assert ev["entries"][ptes].sum() == c["ptes_moved"] + c["zero_ptes_moved"]
    assert ev["what"][ptes].sum() == c["folio_locks"]
    # each flush before its run's locks drop: between every page-table
    # lock and its unlock a flush (the concurrent model then sees no
    # unsafe hit)
    held, flushed = 0, False
    for k, what in zip(kinds.tolist(), ev["what"].tolist(), strict=True):
        if what == rmap_class and k in ("lock", "unlock"):
            continue
        if k == "lock":
            held, flushed = held + 1, False if held == 0 else flushed
        elif k == "flush":
            flushed = flushed or held > 0
        elif k == "unlock":
            assert flushed, "a page-table lock dropped before its run's flush"
            held -= 1
    assert held == 0


def test_uffdio_move_flushes_per_page_before_6_18_and_per_batch_from_it() -> None:
    old, new = uffd_moved("linux-6.17", ["write"]), uffd_moved("linux-6.18", ["write"])
    pages = 16 * MIB // 4096
    assert old.counters["flush_calls"] == pages
    assert new.counters["flush_calls"] == 16 * MIB // (2 * MIB)  # one per PTE table
    assert new.trace is not None and old.trace is not None
    assert new.trace.total_ns < old.trace.total_ns


def test_uffdio_move_as_the_mover() -> None:
    for policy in ("linux-6.17", "linux-6.18"):
        r = run("uffdio_move", READER, policy, populate="write")
        t = r.threads[0].stats
        # the source VMA stays: a read after its page moved faults in a new
        # page, never SIGSEGV, and waits for no lock (both VMAs read-locked)
        assert t["faults"] > 0 and t["segv"] == 0 and t["blocked"] == 0
        assert t["unsafe_hits"] == 0 and r.mover_wait_ns == 0
        assert r.mover == "uffdio_move"
        # priced as the call itself is
        st = uffd_moved(policy, ["write"], 64 * MIB)
        assert r.flushes == st.counters["flush_calls"]


# -- MADV_DONTNEED's page-table reclaim ------------------------------------------------


@pytest.mark.parametrize(("lo", "hi"), [(MIB, 63 * MIB), (0, 64 * MIB), (4096, 64 * MIB - 4096),
                                        (3 * MIB, 4 * MIB)])  # fmt: skip
def test_dontneed_frees_the_pte_tables_it_empties_as_this_kernel_does(lo: int, hi: int) -> None:
    import platform

    from pagetab import host

    ok, why = host.available()
    if not ok:
        pytest.skip(why)
    release = tuple(int(x) for x in platform.release().split(".")[:2])
    if platform.machine() != "x86_64" or release < (6, 14):
        pytest.skip("CONFIG_PT_RECLAIM: x86-64 kernels from 6.14")
    kernel = host.dontneed_tables_freed(64 * MIB, lo, hi)
    s = space(64 * MIB, ["write"])
    before = s.page_table_bytes
    s.madvise(BASE + lo, hi - lo, pt.MADV_DONTNEED)
    assert before - s.page_table_bytes == kernel
    assert kernel == (hi // (2 * MIB) - -(-lo // (2 * MIB))) * 4096  # the whole tables only


def test_dontneed_reclaims_tables_only_where_policy_and_arch_say() -> None:
    for arch, policy, reclaims in (("x86-64", "linux-6.18", True), ("x86-64", "linux-6.8", False),
                                   ("arm64-4k", "linux-6.18", False)):  # fmt: skip
        s = space(8 * MIB, ["write"], arch)
        s.policy = policy
        before = s.page_table_bytes
        s.madvise(BASE, 8 * MIB, pt.MADV_DONTNEED)
        assert (s.page_table_bytes < before) == reclaims, (arch, policy)
        # a later fault there allocates the table again
        s.madvise(BASE, 8 * MIB, pt.MADV_POPULATE_WRITE)
        assert s.page_table_bytes == before
        s.check()


def test_a_forced_flush_never_splits_a_large_folio_s_run() -> None:
    # 512 MiB of 64 KiB folios: 8192 runs of 2 slots each, so the batches
    # fill inside a table, at the end of a run (folio_pte_batch zaps it whole)
    s = pt.AddressSpace("x86-64", cpus=1, thp="never", thp_sizes={65536: "always"})
    s.mmap(512 * MIB, addr=BASE, flags=FLAGS)
    s.madvise(BASE, 512 * MIB, pt.MADV_POPULATE_WRITE)
    g = gather_trace(s.mm_struct, "madvise", BASE, BASE + 512 * MIB)
    assert g.counts["folios_freed"] == 512 * MIB // 65536
    assert g.counts["forced_flushes"] == 1 and g.counts["tables"] == 512 // 2 + 1
    assert all((int(x) - BASE) % 65536 == 0 for x in np.concatenate((g.ext_lo, g.ext_hi)))


def test_a_munmap_that_frees_no_table_flushes_no_freed_tables() -> None:
    s = space(4 * MIB, ["write"])
    g = gather_trace(s.mm_struct, "munmap", BASE + MIB, BASE + 2 * MIB)
    assert g.counts["tables_freed"] == 0 and g.fl_freed.tolist() == [0]
    g = gather_trace(s.mm_struct, "munmap", BASE, BASE + 4 * MIB)
    assert g.counts["tables_freed"] > 0 and g.fl_freed.tolist() == [1]


def test_pages_a_thread_faulted_in_are_cleared_with_the_rest() -> None:
    # a writer on zero pages faults each page it writes (a copy-on-write)
    # before the call; munmap still makes its later writes SIGSEGV, madvise
    # makes them fault again
    few = ThreadSpec("inside", "write", accesses=20_000, think_ns=200.0, span=64 * 1024)
    kw = {"populate": "read", "move_at_ns": 200_000.0, "warmup": False}
    t = run("munmap", few, **kw).threads[0].stats
    assert t["faults"] == 16 and t["segv"] > 0
    t = run("madvise", few, **kw).threads[0].stats
    assert t["faults"] == 32 and t["segv"] == 0  # each of its 16 pages twice


def test_uffdio_move_moves_what_is_there() -> None:
    # holes and zero pages too (ALLOW_SRC_HOLES, as a GC moves)
    for pop in ("write:0.5", "read"):
        r = run("uffdio_move", READER, "linux-6.18", populate=pop)
        assert r.flushes > 0 and r.threads[0].stats["unsafe_hits"] == 0
