"""Counters to estimated nanoseconds.

Every event a move or an access records is priced with its arch profile's
cost table (``Arch.costs``; each figure names its source in
pagetab/costs_data.py). The breakdown keeps the categories apart so that a
kernel developer sees where the time goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .arch import Arch

__all__ = ["access_cost", "collateral_cost", "flush_cost", "move_cost"]


def flush_cost(arch: Arch, ops: Mapping[str, int]) -> dict[str, float]:
    """Nanoseconds of flush operations: {"tlb flush": ..., "ipi": ...}.

    Each operation is priced by the event its family names in
    ``arch.flush.op_costs`` (remote work runs in parallel on every remote
    CPU, so one CPU's share is counted and priced).
    """
    flush = ops.get("flush_calls", 0) * arch.cost("flush_call")
    for op, event in arch.flush.op_costs.items():
        n = ops.get(op, 0)
        if n:
            flush += n * arch.cost(event)
    ipis = ops.get("ipi", 0)
    return {"tlb flush": flush, "ipi": ipis * arch.cost("ipi") if ipis else 0.0}


def move_cost(arch: Arch, st: Any, calls: int = 1) -> tuple[float, dict[str, float]]:
    """(total ns, breakdown) of one mremap's MoveStats on ``arch``."""
    locks = st.lock_acquired
    breakdown = {
        "syscall": calls * arch.cost("mremap_call"),
        "entry moves": (
            st.ptes_moved * arch.cost("pte_move")
            + (st.normal_pmds_moved + st.huge_pmds_moved) * arch.cost("pmd_move")
            + (st.normal_puds_moved + st.huge_puds_moved) * arch.cost("pud_move")
            + (st.huge_pmds_split + st.huge_puds_split) * arch.cost("split_huge_pmd")
        ),
        "table alloc": st.tables_allocated * arch.cost("table_alloc"),
        "locks": (
            (locks.get("ptl_pte", 0) + locks.get("ptl_pmd", 0) + locks.get("page_table_lock", 0))
            * arch.cost("ptl_lock")
            + locks.get("rmap", 0) * arch.cost("rmap_lock")
        ),
        **flush_cost(arch, st.flush_ops),
    }
    return sum(breakdown.values()), breakdown


def collateral_cost(arch: Arch, entries: int) -> float:
    """Later refills of TLB entries a flush destroyed outside its range:
    one full page walk each."""
    return entries * len(arch.levels) * arch.cost("walk_step")


def access_cost(arch: Arch, c: Mapping[str, int],
                ops: Mapping[str, int]) -> tuple[float, dict[str, float]]:  # fmt: skip
    """(total ns, breakdown) of an access run's counters."""
    breakdown = {
        "tlb hits": c["l1_hits"] * arch.cost("tlb_l1_hit") + c["l2_hits"] * arch.cost("tlb_l2_hit"),
        "page walks": c["walk_steps"] * arch.cost("walk_step"),
        "faults": c["faults"] * arch.cost("fault") + c["cow_faults"] * arch.cost("cow_fault"),
        **flush_cost(arch, ops),
    }
    return sum(breakdown.values()), breakdown
