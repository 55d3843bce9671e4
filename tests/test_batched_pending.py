"""flush_tlb_batched_pending: reclaim's deferred flush of an mm, done by the
next move_ptes (or zap or change_prot walking a PTE table), as a whole-mm
flush (flush_tlb_mm), or a DSB alone on arm64 before 4b634918384c (6.16).

pagetab does not reclaim: ``AddressSpace.tlb_flush_batched`` sets the
state. Counts below are derived by hand from the kernel's code: x86's
flush_tlb_mm is flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL, 0, true), a full
flush here and one IPI (a full flush there) to each other CPU of
mm_cpumask; arm64's is DSB ISHST, TLBI ASIDE1IS, DSB ISH.
"""

from __future__ import annotations

import numpy as np
import pytest

import pagetab as pt

K, M = 1 << 10, 1 << 20
FIXED = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
BASE = 1 << 40
ELSEWHERE = BASE + (8 << 30)  # a page CPU 1 uses, far from the moves
FLAGS = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED


def space(arch: str = "x86-64", policy: str = "linux-6.18") -> pt.AddressSpace:
    """16 KiB written at BASE, one page at ELSEWHERE that CPU 1 has read."""
    mm = pt.AddressSpace(arch, cpus=2, policy=policy)
    mm.mmap(16 * K, BASE, flags=FIXED)
    mm.madvise(BASE, 16 * K, pt.MADV_POPULATE_WRITE)
    mm.mmap(4 * K, ELSEWHERE, flags=FIXED)
    mm.access(np.array([ELSEWHERE], dtype=np.uint64), cpu=1)
    return mm


def move(mm: pt.AddressSpace, pending: bool) -> pt.MoveStats:
    """16 KiB moved PTE by PTE (one move_ptes), with reclaim's flush pending or not."""
    mm.tlb_flush_batched = pending
    mm.mremap(BASE, 16 * K, 16 * K, FLAGS, BASE + (1 << 30) + 4 * K)
    assert mm.last_move is not None
    return mm.last_move


def test_x86_move_ptes_flushes_the_whole_mm_once() -> None:
    plain, pending = space(), space()
    a, b = move(plain, False), move(pending, True)
    assert (a.batched_pending_flushes, b.batched_pending_flushes) == (0, 1)
    extra = {k: b.flush_ops[k] - a.flush_ops[k] for k in a.flush_ops}
    assert {k: v for k, v in extra.items()
            if v and k not in ("invalidated_entries", "collateral_entries")} == {
        "flush_calls": 1, "full_flush": 1, "ipi": 1, "remote_full_flush": 1}  # fmt: skip
    # the move's own INVLPGs leave CPU 1's entries elsewhere; the mm flush does not
    assert plain.tlbs.valid_entries(1) > 0 and pending.tlbs.valid_entries(1) == 0
    assert not pending.tlb_flush_batched  # done: the batch is flushed
    pending.mremap(BASE + (1 << 30) + 4 * K, 16 * K, 16 * K, FLAGS, BASE)  # back: nothing pending
    assert pending.last_move is not None and pending.last_move.batched_pending_flushes == 0
    # priced: its bookkeeping, the full flush here and the one on CPU 1
    # that the sender waits for, and the IPI
    x86 = pt.arch("x86-64")
    assert b.estimated_ns - a.estimated_ns == pytest.approx(
        x86.cost("flush_call") + 2 * x86.cost("full_flush") + x86.cost("ipi")
    )


def test_the_trace_holds_the_pending_flush() -> None:
    mm = space()
    mm.trace_moves = True
    st = move(mm, True)
    assert st.trace is not None
    kinds = [f.kind for f in st.trace.flushes()]
    assert kinds.count("batched") == 1 and kinds.index("batched") == 0
    b = st.breakdown
    assert st.trace.total_ns == pytest.approx(st.estimated_ns - b["syscall"] - b["table alloc"])


def test_whole_table_moves_do_not_call_it_but_a_zap_and_mprotect_do() -> None:
    # move_normal_pmd flushes its PMD with flush_tlb_range and never calls
    # flush_tlb_batched_pending: the batch stays pending
    mm = pt.AddressSpace("x86-64", cpus=2, policy="linux-6.18")
    mm.mmap(2 * M, BASE, flags=FIXED)
    mm.madvise(BASE, 2 * M, pt.MADV_POPULATE_WRITE)
    mm.tlb_flush_batched = True
    mm.mremap(BASE, 2 * M, 2 * M, FLAGS, BASE + (1 << 30))
    assert mm.last_move is not None and mm.last_move.normal_pmds_moved == 1
    assert mm.last_move.batched_pending_flushes == 0 and mm.tlb_flush_batched
    # an munmap that zaps no PTE table (nothing mapped there) leaves it
    mm.mmap(2 * M, BASE + (4 << 30), flags=FIXED)
    mm.munmap(BASE + (4 << 30), 2 * M)
    assert mm.tlb_flush_batched
    # zap_pte_range does it
    mm.munmap(BASE + (1 << 30), 4 * K)
    assert not mm.tlb_flush_batched
    # and change_pte_range
    mm.tlb_flush_batched = True
    mm.mprotect(BASE + (1 << 30) + 4 * K, 4 * K, pt.PROT_READ)
    assert not mm.tlb_flush_batched


@pytest.mark.parametrize(("policy", "ops"), [
    ("linux-6.8", {"dsb": 1}),  # arch_flush_tlb_batched_pending: dsb(ish) alone
    ("linux-6.16", {"flush_calls": 1, "tlbi_asid": 1, "dsb": 2}),  # 4b634918384c: flush_tlb_mm
])  # fmt: skip
def test_arm64_a_barrier_until_6_16_then_flush_tlb_mm(policy: str, ops: dict[str, int]) -> None:
    plain, pending = space("arm64-4k", policy), space("arm64-4k", policy)
    a, b = move(plain, False), move(pending, True)
    assert b.batched_pending_flushes == 1 and not pending.tlb_flush_batched
    extra = {k: b.flush_ops[k] - a.flush_ops[k] for k in a.flush_ops}
    assert {k: v for k, v in extra.items()
            if v and k not in ("invalidated_entries", "collateral_entries")} == ops  # fmt: skip
    # a barrier invalidates nothing: CPU 1 keeps its entries
    kept = plain.tlbs.valid_entries(1)
    assert kept > 0 and pending.tlbs.valid_entries(1) == (kept if policy == "linux-6.8" else 0)


def test_riscv_flush_tlb_mm_is_one_sbi_fence() -> None:
    # another hart runs the mm: one SBI remote fence of the whole ASID
    plain, pending = space("riscv64-sv48"), space("riscv64-sv48")
    a, b = move(plain, False), move(pending, True)
    assert b.batched_pending_flushes == 1
    assert b.flush_ops["sbi_rfence"] == a.flush_ops["sbi_rfence"] + 1
    assert b.flush_ops["flush_calls"] == a.flush_ops["flush_calls"] + 1


def test_bad_state_is_refused() -> None:
    mm = pt.AddressSpace("ppc64-radix-64k", cpus=2)
    with pytest.raises(ValueError, match="ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH"):
        mm.tlb_flush_batched = True
    assert not mm.tlb_flush_batched
    mm.tlb_flush_batched = False  # clearing is always fine
    with pytest.raises(TypeError, match="tlb_flush_batched"):
        space().tlb_flush_batched = 1  # type: ignore[assignment]


def test_madvise_dontneed_does_it_too() -> None:
    mm = space()
    mm.tlb_flush_batched = True
    mm.madvise(BASE, 16 * K, pt.MADV_DONTNEED)  # zap_pte_range walks the PTE table
    assert not mm.tlb_flush_batched and mm.tlbs.valid_entries(1) == 0


def test_kernels_that_cannot_have_a_pending_batch() -> None:
    # arm64 defers reclaim's flushes from 6.6 (43b3dfdd0455), riscv from 6.8
    for arch in ("arm64-4k", "riscv64-sv48"):
        mm = space(arch, "linux-5.11")
        with pytest.raises(ValueError, match="batched_unmap_"):
            mm.tlb_flush_batched = True
        assert not mm.tlb_flush_batched
    # x86 defers them in 4.9 already, but nothing calls
    # flush_tlb_batched_pending before 4.13 (3ea277194daa): the batch stays
    mm = space("x86-64", "linux-4.9")
    st = move(mm, True)
    assert st.batched_pending_flushes == 0 and mm.tlb_flush_batched
    assert move(space("x86-64", "linux-4.18"), True).batched_pending_flushes == 1
