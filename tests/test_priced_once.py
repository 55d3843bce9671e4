"""Each event of a move is priced in one place (cost.MOVE_EVENTS,
cost.LOCK_EVENTS, the flush family's op costs): the estimate, its breakdown
and the timeline sum the same priced events, and what the trace does not
hold (the system call, the tables allocated) is priced by the same table."""

from __future__ import annotations

import pytest

import pagetab as pt
from pagetab.cost import untraced_cost


def traced(arch: pt.Arch | str, policy: str, dst: str, thp: bool = False) -> pt.MoveStats:
    mm = pt.AddressSpace(arch, cpus=3, policy=policy)
    mm.trace_moves = True
    pmd = mm.arch.pmd_size
    size = 4 * pmd
    src = mm.mmap(size, addr=1 << 40, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    if thp:  # 4K pages in the upper half, then THPs in the lower (one VMA throughout)
        mm.madvise(src + size // 2, size // 2, pt.MADV_POPULATE_WRITE)
        mm.madvise(src, size, pt.MADV_HUGEPAGE)
    mm.madvise(src, size, pt.MADV_POPULATE_WRITE)
    mm.access([src, src + size - mm.page_size], cpu=1)
    mm.access([src + size // 2], cpu=2)
    off = mm.page_size if dst == "page" else pmd
    mm.mremap(src, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, (1 << 41) + off)
    assert mm.last_move is not None
    return mm.last_move


CASES = [(a, p, dst, thp) for a in ("x86-64", "arm64-4k", "ppc64-radix-64k", "riscv64-sv48-svinval")
         for p in ("linux-4.9", "linux-6.18", "batched-ptl")
         for dst in ("page", "pmd") for thp in (False, True)]  # fmt: skip


@pytest.mark.parametrize(("arch", "policy", "dst", "thp"), CASES)
def test_the_timeline_and_the_untraced_part_add_up_to_the_estimate(
    arch: str, policy: str, dst: str, thp: bool
) -> None:
    st = traced(arch, policy, dst, thp)
    trace = st.trace
    assert trace is not None and len(trace)
    a = pt.arch(arch)
    assert trace.total_ns + untraced_cost(a, st) == pytest.approx(st.estimated_ns, rel=1e-12)


@pytest.mark.parametrize(("event", "dst"), [("pte_move", "page"), ("ptl_lock", "page"),
                                            ("pmd_move", "pmd"), ("flush_call", "page"),
                                            ("split_huge_pmd", "page"),
                                            ("table_alloc", "page")])  # fmt: skip
def test_one_price_moves_the_estimate_and_the_timeline_alike(event: str, dst: str) -> None:
    base = pt.arch("x86-64")
    dearer = base.with_costs(**{event: base.cost(event) + 1000.0})
    got = []
    for a in (base, dearer):
        st = traced(a, "linux-6.18", dst, thp=True)
        assert st.trace is not None
        got.append((st.estimated_ns, st.trace.total_ns, untraced_cost(a, st)))
    (e0, t0, u0), (e1, t1, u1) = got
    assert e1 > e0
    assert (t1 - t0) + (u1 - u0) == pytest.approx(e1 - e0, rel=1e-12)
