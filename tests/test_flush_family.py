"""A flush family is declared once, and its declaration prices it everywhere.

A toy family registers itself: x86's C rule, but its INVLPGs (on the calling
CPU and in each receiver's handler) priced by an event of its own. The move's
estimate and breakdown, the traced move's timeline and the concurrent model's
receivers must all see that price, with nothing edited but the family's
declaration and the profile's cost table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

import pagetab as pt
from pagetab.flush import X86Flush, flush_families

G = 1 << 30
#: how much dearer the toy's INVLPG is than x86's
EXTRA_NS = 1000.0


@dataclasses.dataclass(frozen=True)
class ToyFlush(X86Flush):
    """x86's rule with its INVLPGs priced as "toy_invlpg"."""

    family: ClassVar[str] = "toy-x86"
    rule: ClassVar[str] = "x86"
    op_costs: ClassVar[Mapping[str, str]] = MappingProxyType(
        {**X86Flush.op_costs, "invlpg": "toy_invlpg", "remote_invlpg": "toy_invlpg"}
    )
    remote_ops: ClassVar[Mapping[str, str]] = MappingProxyType(
        {**X86Flush.remote_ops, "remote_invlpg": "toy_invlpg"}
    )


def profiles() -> tuple[pt.Arch, pt.Arch]:
    base = pt.arch("x86-64")
    invlpg = base.costs["invlpg"]
    toy_cost = pt.Cost(invlpg.ns + EXTRA_NS, "test: x86's INVLPG plus 1 us")
    toy = base.replace(name="x86-64-toy", flush=ToyFlush(),
                       costs={**base.costs, "toy_invlpg": toy_cost})  # fmt: skip
    return base, toy


def test_the_family_registers_itself() -> None:
    assert flush_families()["toy-x86"] is ToyFlush
    assert ToyFlush.rule == "x86" and X86Flush.rule == "x86"


def test_its_price_reaches_the_estimate_breakdown_and_timeline() -> None:
    base, toy = profiles()
    # a PTE-path move of 16 pages: one flush under the INVLPG ceiling, 2 CPUs
    runs = []
    for a in (base, toy):
        mm = pt.AddressSpace(a, cpus=2)
        mm.trace_moves = True
        src = mm.mmap(8 << 20)
        mm.madvise(src, 8 << 20, pt.MADV_POPULATE_WRITE)
        mm.access([src], cpu=1)
        dst = mm.mmap(16 << 20)
        mm.mremap(src, 16 << 12, 16 << 12, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, dst + 4096)
        assert mm.last_move is not None
        runs.append(mm.last_move)
    st0, st1 = runs
    ops = st1.flush_ops
    assert ops == st0.flush_ops and ops["invlpg"] > 0 and ops["remote_invlpg"] > 0
    extra = (ops["invlpg"] + ops["remote_invlpg"]) * EXTRA_NS
    assert st1.breakdown["tlb flush"] - st0.breakdown["tlb flush"] == extra
    assert st1.estimated_ns - st0.estimated_ns == extra
    t0, t1 = st0.trace, st1.trace
    assert t0 is not None and t1 is not None
    assert t1.total_ns - t0.total_ns == extra


def test_its_receivers_pay_its_price_in_the_concurrent_model() -> None:
    base, toy = profiles()
    got = []
    for a in (base, toy):
        # a 16-page PTE-path move: one flush of 16 INVLPGs, then the
        # unmap's of the emptied PTE table (one INVLPG at PMD stride), an
        # IPI each to the thread, which runs through the move
        spec = {"where": "outside", "accesses": 10, "through_move": True, "think_ns": 50.0}
        r = pt.run_concurrent(16 << 12, arch=a, policy="linux-6.8", dst_align="page",
                              region_size=2 << 20, threads=[spec], seed=1)  # fmt: skip
        got.append(r.threads[0].stats)
    before, after = got
    assert after["ipis"] == before["ipis"] == 2
    # the IPIs' handlers ran the flushes' 16 + 1 INVLPGs at the toy's price
    assert after["ipi_ns"] - before["ipi_ns"] == (16 + 1) * EXTRA_NS
