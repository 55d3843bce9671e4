"""What one mremap did: MoveStats, the record behind ``mm.last_move``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["AccessStats", "MoveStats"]

_COUNTERS = (
    "ptes_moved", "move_ptes_calls", "normal_pmds_moved", "huge_pmds_moved",
    "normal_puds_moved", "huge_puds_moved", "huge_pmds_split", "huge_puds_split",
    "whole_moves_refused",
    "tables_allocated", "tables_freed_early", "flush_calls", "flush_pages", "flush_unlocked",
    "unsafe_entries", "unsafe_windows",
)  # fmt: skip


@dataclass
class MoveStats:
    """Counters of one mremap call (summed over every VMA it moved).

    Names follow mm/mremap.c: ``normal_pmds_moved`` counts move_normal_pmd
    (a whole PTE table moved by one PMD entry), ``huge_pmds_moved``
    move_huge_pmd (THP leaves), ``normal_puds_moved`` move_normal_pud,
    ``ptes_moved`` entries moved by move_ptes. ``flush_calls`` and
    ``flush_pages`` count flush_tlb_range calls and the pages they cover;
    ``flush_unlocked`` those issued with no page-table lock held.
    ``unsafe_entries`` counts moved present leaf entries (a huge leaf once)
    whose page-table lock was released before a flush covering their old
    address: the CVE-2018-18281 race. ``unsafe_windows`` counts what made
    those dangerous: the stale TLB entries for them that some CPU actually
    held at the moment each lock was released. ``flush_ops`` are the
    architecture's instructions behind the flushes (INVLPG, full flushes,
    IPIs; TLBI, DSB; tlbie, ...), ``estimated_ns`` their price with the
    rest of the move, by category in ``breakdown``; ``collateral_ns`` the
    later refills of other mappings' TLB entries that full or ASID flushes
    destroyed (``flush_ops["collateral_entries"]``). ``lock_acquired`` and
    ``lock_max_hold`` (entries moved under one hold) are keyed by lock
    class: ptl_pte, ptl_pmd, page_table_lock, rmap.
    """

    arch: str
    policy: str
    old_addr: int
    new_addr: int
    old_len: int
    new_len: int
    moved_bytes: int = 0
    realigned: bool = False
    ptes_moved: int = 0
    move_ptes_calls: int = 0
    normal_pmds_moved: int = 0
    huge_pmds_moved: int = 0
    normal_puds_moved: int = 0
    huge_puds_moved: int = 0
    huge_pmds_split: int = 0
    huge_puds_split: int = 0
    whole_moves_refused: int = 0
    tables_allocated: int = 0
    tables_freed_early: int = 0
    tables_freed: int = 0
    flush_calls: int = 0
    flush_pages: int = 0
    flush_unlocked: int = 0
    unsafe_entries: int = 0
    unsafe_windows: int = 0
    flush_ops: dict[str, int] = field(default_factory=dict)
    lock_acquired: dict[str, int] = field(default_factory=dict)
    lock_max_hold: dict[str, int] = field(default_factory=dict)
    page_table_bytes_before: int = 0
    page_table_bytes_after: int = 0
    peak_page_table_bytes: int = 0
    estimated_ns: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    collateral_ns: float = 0.0
    wall_ns: int = 0

    def add(self, counters: dict[str, Any]) -> None:
        """Accumulate the counters one move_page_tables call returned."""
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + int(counters[name]))
        for key, val in counters["lock_acquired"].items():
            self.lock_acquired[key] = self.lock_acquired.get(key, 0) + int(val)
        for key, val in counters["lock_max_hold"].items():
            self.lock_max_hold[key] = max(self.lock_max_hold.get(key, 0), int(val))
        for key, val in counters["flush_ops"].items():
            self.flush_ops[key] = self.flush_ops.get(key, 0) + int(val)

    @property
    def moved(self) -> bool:
        """Whether page tables moved (False for in-place resizes)."""
        return self.old_addr != self.new_addr

    @property
    def safe(self) -> bool:
        """No moved entry outlived its lock unflushed."""
        return self.unsafe_windows == 0

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON and tables)."""
        from dataclasses import asdict

        return asdict(self)


@dataclass
class AccessStats:
    """What ``mm.access`` did: TLB hits per level, walks, faults, and time."""

    cpu: int
    write: bool
    accesses: int = 0
    l1_hits: int = 0
    l2_hits: int = 0
    walks: int = 0
    walk_steps: int = 0
    pwc_hits: int = 0
    faults: int = 0
    cow_faults: int = 0
    huge_faults: int = 0
    segv: int = 0
    flush_ops: dict[str, int] = field(default_factory=dict)
    estimated_ns: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    wall_ns: int = 0

    @property
    def misses(self) -> int:
        """Accesses that missed every TLB level."""
        return self.accesses - self.l1_hits - self.l2_hits
