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
from types import MappingProxyType
from typing import Any

from .arch import Arch

__all__ = [
    "ENTRY_COUNTERS",
    "LOCK_EVENTS",
    "MOVE_EVENTS",
    "ONLY_WHERE_COUNTED",
    "UNTRACED",
    "access_cost",
    "access_cost_range",
    "collateral_cost",
    "collateral_cost_range",
    "flush_cost",
    "flush_cost_range",
    "flush_ops_cost",
    "move_cost",
    "move_cost_range",
    "uffd_move_cost",
    "uffd_move_cost_range",
    "unit_price",
    "untraced_cost",
]

#: ns per event: ``Arch.cost`` or one end of ``Arch.cost_range``
Price = Callable[[str], float]


def _ends(arch: Arch) -> tuple[Price, Price]:
    """Price every event at the low end of its range, and at the high end."""
    return (lambda e: arch.cost_range(e)[0]), (lambda e: arch.cost_range(e)[1])


#: Each priced count of a move, once: counter (a field of the engine's
#: move_stats) -> (cost event, breakdown category). ``move_cost`` sums them
#: over a move's counters; ``MoveTrace`` prices each traced event by the row
#: of the counter that counts it (``ENTRY_COUNTERS``). The events of
#: ``ONLY_WHERE_COUNTED`` are priced only where they happened, as only the
#: profiles that make them (arm64's) have their cost.
MOVE_EVENTS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "ptes_moved": ("pte_move", "entry moves"),
    "normal_pmds_moved": ("pmd_move", "entry moves"),
    "huge_pmds_moved": ("pmd_move", "entry moves"),
    "normal_puds_moved": ("pud_move", "entry moves"),
    "huge_puds_moved": ("pud_move", "entry moves"),
    "huge_pmds_split": ("split_huge_pmd", "entry moves"),
    "huge_puds_split": ("split_huge_pmd", "entry moves"),
    "contpte_folds": ("contpte_convert", "entry moves"),
    "contpte_unfolds": ("contpte_convert", "entry moves"),
    "folio_lookups": ("folio_lookup", "folio lookups"),
    "tables_allocated": ("table_alloc", "table alloc"),
})  # fmt: skip
ONLY_WHERE_COUNTED = frozenset({"contpte_convert"})
#: a lock acquisition's cost event, per lock class (move_stats.lock_acquired);
#: the rmap class counts each anon_vma lock and each file's i_mmap_rwsem
#: that take_rmap_locks takes, both an uncontended down_write + up_write of
#: a rw_semaphore, so one price serves both
LOCK_EVENTS: Mapping[str, str] = MappingProxyType({
    "ptl_pte": "ptl_lock", "ptl_pmd": "ptl_lock", "page_table_lock": "ptl_lock",
    "rmap": "rmap_lock",
})  # fmt: skip
#: the counter of each whole-entry move, by move_pgt_entry's entry type
ENTRY_COUNTERS: Mapping[str, str] = MappingProxyType({
    "NORMAL_PMD": "normal_pmds_moved", "HPAGE_PMD": "huge_pmds_moved",
    "NORMAL_PUD": "normal_puds_moved", "HPAGE_PUD": "huge_puds_moved",
})  # fmt: skip
#: what a traced move's events hold of the priced counts; the rest (the
#: system call, the tables allocated) precede the first event
UNTRACED = ("syscall", "table alloc")


def unit_price(price: Price, counter: str) -> float:
    """The price of one count of ``counter`` (a MOVE_EVENTS row)."""
    return price(MOVE_EVENTS[counter][0])


def flush_op_events(arch: Arch) -> dict[str, str]:
    """The event each flush operation the flushing CPU pays is priced by:
    the call, the family's own operations (``arch.flush.op_costs``) and the
    IPI (its wait per receiver)."""
    return {"flush_calls": "flush_call", **arch.flush.op_costs, "ipi": "ipi"}


def flush_ops_cost(arch: Arch, price: Price, ops: Mapping[str, int]) -> dict[str, float]:
    """{"tlb flush": ..., "ipi": ...} ns of flush operations ``ops``, each
    priced by its event (``flush_op_events``)."""
    events = flush_op_events(arch)
    flush = ops.get("flush_calls", 0) * price(events["flush_calls"])
    for op, event in events.items():
        n = ops.get(op, 0)
        if n and op not in ("flush_calls", "ipi"):
            flush += n * price(event)
    ipis = ops.get("ipi", 0)
    return {"tlb flush": flush, "ipi": ipis * price(events["ipi"]) if ipis else 0.0}


def flush_cost(arch: Arch, ops: Mapping[str, int]) -> dict[str, float]:
    """Nanoseconds of flush operations: {"tlb flush": ..., "ipi": ...}.

    Each operation is priced by the event its family names in
    ``arch.flush.op_costs`` (remote work runs in parallel on every remote
    CPU, so one CPU's share is counted and priced).
    """
    return flush_ops_cost(arch, arch.cost, ops)


def flush_cost_range(arch: Arch, ops: Mapping[str, int]) -> tuple[float, float]:
    """(low, high) ns of ``flush_cost``'s total ("tlb flush" + "ipi")."""
    low, high = _ends(arch)
    return (sum(flush_ops_cost(arch, low, ops).values()),
            sum(flush_ops_cost(arch, high, ops).values()))  # fmt: skip


def _move(arch: Arch, price: Price, st: Any, calls: int) -> dict[str, float]:
    # a call that moved nothing (a resize in place) does none of a move's
    # VMA work (copy_vma, the source's unmap): its own, cheaper price
    call = "mremap_call" if st.moved else "mremap_resize_call"
    out: dict[str, float] = {"syscall": calls * price(call), "entry moves": 0,
                             "folio lookups": 0, "table alloc": 0, "locks": 0}  # fmt: skip
    for counter, (event, category) in MOVE_EVENTS.items():
        n = getattr(st, counter)
        if event in ONLY_WHERE_COUNTED:
            out[category] += n * price(event) if n else 0.0
        else:
            out[category] += n * price(event)
    for cls, n in st.lock_acquired.items():
        out["locks"] += n * price(LOCK_EVENTS[cls])
    return {**out, **flush_ops_cost(arch, price, st.flush_ops)}


def move_cost(arch: Arch, st: Any, calls: int = 1) -> tuple[float, dict[str, float]]:
    """(total ns, breakdown) of one mremap's MoveStats on ``arch``."""
    breakdown = _move(arch, arch.cost, st, calls)
    return sum(breakdown.values()), breakdown


def untraced_cost(arch: Arch, st: Any, calls: int = 1) -> float:
    """ns of the move's priced counts that its trace holds no event for
    (the UNTRACED categories): where its traced events start after the
    call's entry, so that they and these add up to ``move_cost``."""
    breakdown = _move(arch, arch.cost, st, calls)
    return sum(breakdown[k] for k in UNTRACED)


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
        **flush_ops_cost(arch, price, ops),
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
        # move_pages_pte looks up the folio of each present page it moves
        # (folio_locks; move_pages_huge_pmd reads a moved THP's struct page too)
        "folio lookups": c.get("folio_locks", 0) * price("folio_lookup"),
        "locks": c.get("pte_locks", 0) * price("ptl_lock")
        + (c.get("folio_locks", 0) + c.get("anon_vma_locks", 0)) * price("rmap_lock"),
        **flush_ops_cost(arch, price, ops),
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
