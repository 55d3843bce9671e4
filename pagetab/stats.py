"""What one mremap did: MoveStats, the record behind ``mm.last_move``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._move import COUNTER_NAMES, LOCK_CLASSES
from ._tlb import OP_NAMES

__all__ = ["AccessStats", "MoveStats"]

if TYPE_CHECKING:
    from .arch import Arch


class _Counters:
    """The move_page_tables counters of a MoveStats, by name."""

    _c: Sequence[int]

    @property
    def ptes_moved(self) -> int:
        """PTEs moved by move_ptes"""
        return self._c[0]

    @property
    def move_ptes_calls(self) -> int:
        """move_ptes calls (one per PTE extent)"""
        return self._c[1]

    @property
    def normal_pmds_moved(self) -> int:
        """move_normal_pmd: PTE tables moved whole"""
        return self._c[2]

    @property
    def huge_pmds_moved(self) -> int:
        """move_huge_pmd: THP leaves moved"""
        return self._c[3]

    @property
    def normal_puds_moved(self) -> int:
        """move_normal_pud: PMD tables moved whole"""
        return self._c[4]

    @property
    def huge_puds_moved(self) -> int:
        """move_huge_pud: PUD leaves moved"""
        return self._c[5]

    @property
    def huge_pmds_split(self) -> int:
        """split_huge_pmd on the old side"""
        return self._c[6]

    @property
    def huge_puds_split(self) -> int:
        """PUD leaves split (never in Linux; see _move.pyx)"""
        return self._c[7]

    @property
    def whole_moves_refused(self) -> int:
        """whole moves refused: destination entry populated"""
        return self._c[8]

    @property
    def tables_allocated(self) -> int:
        """page-table pages allocated"""
        return self._c[9]

    @property
    def tables_freed_early(self) -> int:
        """emptied old PTE tables released during the move"""
        return self._c[10]

    @property
    def flush_calls(self) -> int:
        """flush_tlb_range calls"""
        return self._c[11]

    @property
    def flush_pages(self) -> int:
        """pages those calls covered"""
        return self._c[12]

    @property
    def flush_unlocked(self) -> int:
        """flushes issued with no page-table lock held"""
        return self._c[13]

    @property
    def unsafe_entries(self) -> int:
        """moved present entries unflushed when a lock dropped"""
        return self._c[14]

    @property
    def unsafe_windows(self) -> int:
        """stale TLB entries for them at that moment"""
        return self._c[15]


@dataclass
class MoveStats(_Counters):
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
    tables_freed: int = 0
    page_table_bytes_before: int = 0
    page_table_bytes_after: int = 0
    peak_page_table_bytes: int = 0
    wall_ns: int = 0
    profile: Arch | None = field(default=None, repr=False, compare=False)
    _moves: int = field(default=0, repr=False)
    # zeros until the first add (shared, immutable: cheap to create)
    _c: Sequence[int] = field(default=(0,) * len(COUNTER_NAMES), repr=False)
    _acq: Sequence[int] = field(default=(0,) * len(LOCK_CLASSES), repr=False)
    _hold: Sequence[int] = field(default=(0,) * len(LOCK_CLASSES), repr=False)
    _ops: Sequence[int] = field(default=(0,) * len(OP_NAMES), repr=False)

    def add(self, counters: tuple[int, ...], acquired: tuple[int, ...],
            held: tuple[int, ...], ops: tuple[int, ...]) -> None:  # fmt: skip
        """Accumulate what one move_page_tables call returned."""
        if not self._moves:  # the common case: one call, nothing to add to
            self._c, self._acq, self._hold, self._ops = counters, acquired, held, ops
            self._moves = 1
            return
        self._moves += 1
        self._c = [a + b for a, b in zip(self._c, counters, strict=True)]
        self._acq = [a + b for a, b in zip(self._acq, acquired, strict=True)]
        self._hold = [max(a, b) for a, b in zip(self._hold, held, strict=True)]
        self._ops = [a + b for a, b in zip(self._ops, ops, strict=True)]

    @property
    def lock_acquired(self) -> dict[str, int]:
        return dict(zip(LOCK_CLASSES, self._acq, strict=True))

    @property
    def lock_max_hold(self) -> dict[str, int]:
        return dict(zip(LOCK_CLASSES, self._hold, strict=True))

    @property
    def flush_ops(self) -> dict[str, int]:
        return dict(zip(OP_NAMES, self._ops, strict=True))

    @property
    def moved(self) -> bool:
        """Whether page tables moved (False for in-place resizes)."""
        return self.old_addr != self.new_addr

    @property
    def safe(self) -> bool:
        """No moved entry outlived its lock unflushed."""
        return self.unsafe_entries == 0

    def _costs(self) -> tuple[float, dict[str, float]]:
        from .cost import move_cost

        if self.profile is None:
            raise ValueError("no arch profile to price this move with")
        return move_cost(self.profile, self)

    @property
    def estimated_ns(self) -> float:
        """Estimated kernel time of the call, from the arch's cost table."""
        return self._costs()[0]

    @property
    def breakdown(self) -> dict[str, float]:
        """``estimated_ns`` by category."""
        return self._costs()[1]

    @property
    def collateral_ns(self) -> float:
        """Later refills of other mappings' TLB entries the flushes destroyed."""
        from .cost import collateral_cost

        if self.profile is None:
            raise ValueError("no arch profile to price this move with")
        return collateral_cost(self.profile, self._ops[OP_NAMES.index("collateral_entries")])

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON and tables)."""
        d = {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "profile"}
        d.update(zip(COUNTER_NAMES, self._c, strict=True))
        d.update(lock_acquired=self.lock_acquired, lock_max_hold=self.lock_max_hold,
                 flush_ops=self.flush_ops)  # fmt: skip
        if self.profile is not None:
            d.update(estimated_ns=self.estimated_ns, breakdown=self.breakdown,
                     collateral_ns=self.collateral_ns)  # fmt: skip
        return d


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
