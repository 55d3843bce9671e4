"""Counters to estimated nanoseconds, and the interval around each estimate.

Every event a move or an access records is priced with its arch profile's
cost table (``Arch.costs``; each figure names its source in
pagetab/costs_data.py). The breakdown keeps the categories apart so that a
kernel developer sees where the time goes. Each ``*_cost`` function has a
``*_cost_range`` twin: the same sum with every event priced at the low end
of its range, and at the high end (``Cost.low``, ``Cost.high``), as
(low ns, high ns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .arch import Arch

__all__ = [
    "access_cost",
    "access_cost_range",
    "collateral_cost",
    "collateral_cost_range",
    "flush_cost",
    "flush_cost_range",
    "move_cost",
    "move_cost_range",
    "uffd_move_cost",
    "uffd_move_cost_range",
]

#: ns per event: ``Arch.cost`` or one end of ``Arch.cost_range``
Price = Callable[[str], float]


def _ends(arch: Arch) -> tuple[Price, Price]:
    """Price every event at the low end of its range, and at the high end."""
    return (lambda e: arch.cost_range(e)[0]), (lambda e: arch.cost_range(e)[1])


def _flush(arch: Arch, price: Price, ops: Mapping[str, int]) -> dict[str, float]:
    flush = ops.get("flush_calls", 0) * price("flush_call")
    for op, event in arch.flush.op_costs.items():
        n = ops.get(op, 0)
        if n:
            flush += n * price(event)
    ipis = ops.get("ipi", 0)
    return {"tlb flush": flush, "ipi": ipis * price("ipi") if ipis else 0.0}


def flush_cost(arch: Arch, ops: Mapping[str, int]) -> dict[str, float]:
    """Nanoseconds of flush operations: {"tlb flush": ..., "ipi": ...}.

    Each operation is priced by the event its family names in
    ``arch.flush.op_costs`` (remote work runs in parallel on every remote
    CPU, so one CPU's share is counted and priced).
    """
    return _flush(arch, arch.cost, ops)


def flush_cost_range(arch: Arch, ops: Mapping[str, int]) -> tuple[float, float]:
    """(low, high) ns of ``flush_cost``'s total ("tlb flush" + "ipi")."""
    low, high = _ends(arch)
    return sum(_flush(arch, low, ops).values()), sum(_flush(arch, high, ops).values())


def _converts(st: Any, price: Price) -> float:
    """arm64 contpte_convert: the entries cleared and repainted (its TLBIs
    are among the flush operations); priced only where it happened, as
    only arm64 profiles have the cost."""
    n = st.contpte_folds + st.contpte_unfolds
    return n * price("contpte_convert") if n else 0.0


def _move(arch: Arch, price: Price, st: Any, calls: int) -> dict[str, float]:
    locks = st.lock_acquired
    return {
        "syscall": calls * price("mremap_call"),
        "entry moves": (
            st.ptes_moved * price("pte_move")
            + (st.normal_pmds_moved + st.huge_pmds_moved) * price("pmd_move")
            + (st.normal_puds_moved + st.huge_puds_moved) * price("pud_move")
            + (st.huge_pmds_split + st.huge_puds_split) * price("split_huge_pmd")
            + _converts(st, price)
        ),
        "table alloc": st.tables_allocated * price("table_alloc"),
        "locks": (
            (locks.get("ptl_pte", 0) + locks.get("ptl_pmd", 0) + locks.get("page_table_lock", 0))
            * price("ptl_lock")
            + locks.get("rmap", 0) * price("rmap_lock")
        ),
        **_flush(arch, price, st.flush_ops),
    }


def move_cost(arch: Arch, st: Any, calls: int = 1) -> tuple[float, dict[str, float]]:
    """(total ns, breakdown) of one mremap's MoveStats on ``arch``."""
    breakdown = _move(arch, arch.cost, st, calls)
    return sum(breakdown.values()), breakdown


def move_cost_range(arch: Arch, st: Any, calls: int = 1) -> tuple[float, float]:
    """(low, high) ns of ``move_cost``'s total: every event at its low, at its high."""
    low, high = _ends(arch)
    return sum(_move(arch, low, st, calls).values()), sum(_move(arch, high, st, calls).values())


def _collateral(arch: Arch, price: Price, entries: int) -> float:
    return entries * len(arch.levels) * price("walk_step")


def collateral_cost(arch: Arch, entries: int) -> float:
    """Later refills of TLB entries a flush destroyed outside its range:
    one full page walk each."""
    return _collateral(arch, arch.cost, entries)


def collateral_cost_range(arch: Arch, entries: int) -> tuple[float, float]:
    """(low, high) ns of ``collateral_cost``."""
    low, high = _ends(arch)
    return _collateral(arch, low, entries), _collateral(arch, high, entries)


def _access(arch: Arch, price: Price, c: Mapping[str, int],
            ops: Mapping[str, int]) -> dict[str, float]:  # fmt: skip
    return {
        "tlb hits": c["l1_hits"] * price("tlb_l1_hit") + c["l2_hits"] * price("tlb_l2_hit"),
        "page walks": c["walk_steps"] * price("walk_step"),
        "faults": c["faults"] * price("fault") + c["cow_faults"] * price("cow_fault"),
        **_flush(arch, price, ops),
    }


def access_cost(arch: Arch, c: Mapping[str, int],
                ops: Mapping[str, int]) -> tuple[float, dict[str, float]]:  # fmt: skip
    """(total ns, breakdown) of an access run's counters."""
    breakdown = _access(arch, arch.cost, c, ops)
    return sum(breakdown.values()), breakdown


def access_cost_range(arch: Arch, c: Mapping[str, int],
                      ops: Mapping[str, int]) -> tuple[float, float]:  # fmt: skip
    """(low, high) ns of ``access_cost``'s total."""
    low, high = _ends(arch)
    return sum(_access(arch, low, c, ops).values()), sum(_access(arch, high, c, ops).values())


def _uffd(arch: Arch, price: Price, c: Mapping[str, int], ops: Mapping[str, int],
          calls: int) -> dict[str, float]:  # fmt: skip
    # the folio lock priced as an uncontended sleeping lock (rmap_lock's
    # figure, an assumption)
    return {
        "syscall": calls * price("uffd_move_call"),
        "entry moves": (c.get("ptes_moved", 0) + c.get("zero_ptes_moved", 0)) * price("pte_move")
        + c.get("huge_pmds_moved", 0) * price("pmd_move")
        + (c.get("folios_split", 0) + c.get("huge_pmds_split", 0)) * price("split_huge_pmd"),
        "locks": c.get("pte_locks", 0) * price("ptl_lock")
        + (c.get("folio_locks", 0) + c.get("anon_vma_locks", 0)) * price("rmap_lock"),
        **_flush(arch, price, ops),
    }


def uffd_move_cost(arch: Arch, c: Mapping[str, int], ops: Mapping[str, int],
                   calls: int = 1) -> tuple[float, dict[str, float]]:  # fmt: skip
    """(total ns, breakdown) of the counters and flush operations of
    ``calls`` UFFDIO_MOVE calls."""
    breakdown = _uffd(arch, arch.cost, c, ops, calls)
    return sum(breakdown.values()), breakdown


def uffd_move_cost_range(arch: Arch, c: Mapping[str, int], ops: Mapping[str, int],
                         calls: int = 1) -> tuple[float, float]:  # fmt: skip
    """(low, high) ns of ``uffd_move_cost``'s total."""
    low, high = _ends(arch)
    return (sum(_uffd(arch, low, c, ops, calls).values()),
            sum(_uffd(arch, high, c, ops, calls).values()))  # fmt: skip
