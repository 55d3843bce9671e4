"""What one mremap did: MoveStats, the record behind ``mm.last_move``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _move
from ._flush import Tlbs
from ._move import MOVE_DTYPE
from .cost import collateral_cost, collateral_cost_range, move_cost, move_cost_range
from .timeline import MoveTrace, concat

__all__ = [
    "COUNTER_INFO",
    "COUNTER_NAMES",
    "LOCK_CLASSES",
    "LOCK_INFO",
    "OP_INFO",
    "OP_NAMES",
    "AccessStats",
    "CounterInfo",
    "MoveStats",
]

if TYPE_CHECKING:
    from .arch import Arch


# Every name below comes from the engine's C struct move_stats (_move.pxd).
#: the scalar counters of a move, in the struct's order
def _names(dtype: np.dtype[Any]) -> tuple[str, ...]:
    return tuple(dtype.names or ())


COUNTER_NAMES = tuple(n for n in _names(MOVE_DTYPE) if MOVE_DTYPE[n].names is None)
#: the lock classes (fields of lock_classes)
LOCK_CLASSES = _names(MOVE_DTYPE["lock_acquired"])
#: the flush operations (fields of FlushOps)
OP_NAMES = _names(MOVE_DTYPE["flush_ops"])


@dataclass(frozen=True)
class CounterInfo:
    """What a counter counts: its unit and a one-line description."""

    unit: str
    """What it counts in ("entries", "tables", "calls", "instructions", ...)."""
    description: str
    """What it counts, in a line."""


# The meaning of each field of the C structs above, in one place (the
# structs' fields name them only; a test requires an entry for each field).
#: each scalar counter of move_stats (``COUNTER_NAMES``)
COUNTER_INFO: dict[str, CounterInfo] = {n: CounterInfo(u, d) for n, u, d in (
    ("ptes_moved", "entries", "PTEs moved by move_ptes"),
    ("move_ptes_calls", "calls", "move_ptes calls (one per PTE extent)"),
    ("normal_pmds_moved", "tables", "move_normal_pmd: PTE tables moved whole by one PMD entry"),
    ("huge_pmds_moved", "entries", "move_huge_pmd: THP (PMD leaf) entries moved"),
    ("normal_puds_moved", "tables", "move_normal_pud: PMD tables moved whole by one PUD entry"),
    ("huge_puds_moved", "entries", "move_huge_pud: PUD leaf entries moved"),
    ("huge_pmds_split", "entries", "split_huge_pmd on the old side (a THP moved PTE by PTE)"),
    ("huge_puds_split", "entries", "PUD leaves split (never in Linux)"),
    ("pte_batches", "batches", "mremap_folio_pte_batch batches of more than one PTE"),
    ("folio_lookups", "lookups", "vm_normal_folio lookups by mremap_folio_pte_batch (a cold "
     "struct page read each)"),
    ("ptes_batched", "entries", "PTEs those batches moved"),
    ("contpte_unfolds", "blocks", "arm64 contiguous PTE blocks unfolded (contpte_convert)"),
    ("contpte_folds", "blocks", "arm64 contiguous PTE blocks folded (contpte_convert)"),
    ("whole_moves_refused", "entries",
     "whole-table moves refused because the destination entry was populated"),
    ("tables_allocated", "tables", "page-table pages allocated"),
    ("tables_freed_early", "tables", "emptied old PTE tables released during the move"),
    ("flush_calls", "calls", "move_page_tables' own flush_tlb_range calls"),
    ("flush_pages", "pages", "pages those flush calls covered"),
    ("unmap_flushes", "flushes",
     "flushes of the call's unmaps afterwards (tlb_finish_mmu: pages zapped or tables freed)"),
    ("flush_unlocked", "flushes", "flushes issued with no page-table lock held"),
    ("batched_pending_flushes", "flushes",
     "flush_tlb_batched_pending calls that found reclaim's deferred flush pending and did it"),
    ("unsafe_entries", "entries",
     "moved present entries unflushed when their page-table lock dropped (CVE-2018-18281)"),
    ("unsafe_windows", "entries",
     "stale TLB entries some CPU held for those at the moment the lock dropped"),
)}  # fmt: skip
#: each flush operation of FlushOps (``OP_NAMES``)
OP_INFO: dict[str, CounterInfo] = {n: CounterInfo(u, d) for n, u, d in (
    ("flush_calls", "calls", "flushes the flush rule ran, from any caller (contpte_convert's "
     "too)"),
    ("flush_pages", "pages", "pages they covered"),
    ("full_flush", "flushes", "x86 full flushes (CR3 write) on the calling CPU"),
    ("invlpg", "instructions", "x86 INVLPG on the calling CPU"),
    ("invlpg_flush", "calls", "x86 flushes that took the INVLPG loop on the calling CPU"),
    ("ipi", "IPIs", "x86 synchronous flush IPIs to other CPUs"),
    ("lazy_skipped", "IPIs", "x86 flush IPIs not sent to a lazy CPU of mm_cpumask"),
    ("remote_full_flush", "flushes", "full flushes on one remote CPU (they run in parallel)"),
    ("remote_invlpg", "instructions", "INVLPGs on one remote CPU"),
    ("invlpgb", "instructions", "AMD INVLPGB broadcasts"),
    ("tlbsync", "instructions", "AMD TLBSYNC after INVLPGB broadcasts"),
    ("tlbi_page", "instructions", "arm64 TLBI VAE1IS (one page)"),
    ("tlbi_range", "instructions", "arm64 TLBI RVAE1IS (a range)"),
    ("tlbi_asid", "instructions", "arm64 TLBI ASIDE1IS (flush_tlb_mm)"),
    ("dsb", "instructions", "arm64 DSB ISHST / DSB ISH"),
    ("tlbie", "instructions", "ppc64 global tlbie (per page)"),
    ("tlbiel", "instructions", "ppc64 local tlbiel (per page)"),
    ("pid_flush", "flushes", "ppc64 whole-PID flushes (RIC_FLUSH_ALL)"),
    ("pwc_flush", "flushes", "ppc64 page-walk-cache flushes (RIC_FLUSH_PWC)"),
    ("tlbie_sync", "sequences", "ppc64 eieio; tlbsync; ptesync after global tlbie"),
    ("collateral_entries", "entries",
     "valid TLB entries outside the range destroyed by full, ASID or PID flushes"),
    ("invalidated_entries", "entries", "valid TLB entries inside the range invalidated"),
    ("sfence_vma", "instructions", "riscv sfence.vma addr, asid (one page) on the calling hart"),
    ("sfence_vma_asid", "instructions", "riscv sfence.vma x0, asid on the calling hart"),
    ("remote_sfence_vma", "instructions", "riscv sfence.vma (one page) on one remote hart"),
    ("remote_sfence_vma_asid", "instructions", "riscv sfence.vma x0, asid on one remote hart"),
    ("sbi_rfence", "calls", "riscv SBI remote fence calls (sbi_remote_sfence_vma_asid)"),
    ("sinval_vma", "instructions", "riscv Svinval sinval.vma (one page) on the calling hart"),
    ("svinval_fences", "pairs",
     "riscv sfence.w.inval + sfence.inval.ir pairs around them on the calling hart"),
    ("remote_sinval_vma", "instructions", "riscv sinval.vma (one page) on one remote hart"),
    ("remote_svinval_fences", "pairs", "riscv Svinval fence pairs on one remote hart"),
)}  # fmt: skip
#: each lock class of lock_classes (``LOCK_CLASSES``): acquisitions
LOCK_INFO: dict[str, CounterInfo] = {n: CounterInfo("acquisitions", d) for n, d in (
    ("ptl_pte", "split PTE lock (the ptlock of one PTE table)"),
    ("ptl_pmd", "split PMD lock (the ptlock of one PMD table)"),
    ("page_table_lock", "mm->page_table_lock"),
    ("rmap", "anon_vma lock and i_mmap_rwsem, each (take_rmap_locks)"),
)}  # fmt: skip
# The engine hands a record over as int64 words (every field is an int64):
# where each field lies in them comes from the dtype, i.e. from the struct.
_WORDS = MOVE_DTYPE.itemsize // 8
_FIELDS: dict[str, Any] = dict(MOVE_DTYPE.fields or {})
_AT = {n: _FIELDS[n][1] // 8 for n in COUNTER_NAMES}
_ZERO = np.zeros(_WORDS, dtype=np.int64)
_ZERO.flags.writeable = False
# the words of lock_max_hold: combined by max when moves add up
_HOLD_AT = _FIELDS["lock_max_hold"][1] // 8
_HOLD = slice(_HOLD_AT, _HOLD_AT + len(LOCK_CLASSES))
#: the trace event kind of the unmap's flush (tlb_finish_mmu)
_FINISH = _move.EVENT_KINDS.index("finish")
#: and of a pending reclaim flush done (flush_tlb_batched_pending)
_BATCHED = _move.EVENT_KINDS.index("batched")


@dataclass(eq=False)
class MoveStats:
    """Counters of one mremap call (summed over every VMA it moved).

    Names follow mm/mremap.c: ``normal_pmds_moved`` counts move_normal_pmd
    (a whole PTE table moved by one PMD entry), ``huge_pmds_moved``
    move_huge_pmd (THP leaves), ``normal_puds_moved`` move_normal_pud,
    ``ptes_moved`` entries moved by move_ptes, ``move_ptes_calls`` its
    calls. ``flush_calls`` and ``flush_pages`` count move_page_tables'
    flush_tlb_range calls and the pages they cover; ``unmap_flushes`` the
    flushes of the call's unmaps afterwards (tlb_finish_mmu once the old
    range's tables are freed, or a range unmapped held pages: the
    kernel's tlb:tlb_flush events of the call are the sum of the two);
    ``flush_unlocked`` the moves' flushes issued with no page-table lock
    held; ``batched_pending_flushes`` the flush_tlb_batched_pending calls
    that found reclaim's deferred flush of the mm pending
    (``AddressSpace.tlb_flush_batched``) and did it (in move_ptes, or in the
    unmaps' zap_pte_range). ``unsafe_entries`` counts moved present leaf
    entries (a huge leaf once) whose page-table lock was released before a
    flush covering their old address: the CVE-2018-18281 race.
    ``unsafe_windows`` counts what made those dangerous: the stale TLB
    entries for them that some CPU actually held at the moment each lock
    was released. ``flush_ops`` are the architecture's instructions behind
    the flushes (INVLPG, full flushes, IPIs; TLBI, DSB; tlbie, ...),
    ``estimated_ns`` their price with the rest of the move, by category in
    ``breakdown``, and ``estimated_ns_range`` its interval (every event
    priced at the low, then the high end of its cost's range);
    ``collateral_ns`` (and ``collateral_ns_range``) the later refills of
    other mappings' TLB entries that full or ASID flushes destroyed
    (``flush_ops["collateral_entries"]``). ``lock_acquired`` and
    ``lock_max_hold`` (entries moved under one hold) are keyed by lock
    class. The counters are the fields of the engine's C struct
    ``move_stats`` (``COUNTER_NAMES``); ``record`` is that struct itself.
    """

    arch: str
    """The arch profile's name."""
    policy: str
    """The kernel policy's name."""
    old_addr: int
    """The call's old_address."""
    new_addr: int
    """Where the range is after the call: its return value (``old_addr`` when
    it resized in place)."""
    old_len: int
    """The call's old_size (bytes)."""
    new_len: int
    """The call's new_size (bytes)."""
    moved_bytes: int = 0
    """Bytes move_page_tables moved, over every VMA (0 for an in-place resize)."""
    realigned: bool = False
    """Whether try_realign_addr aligned a move's addresses down to their PMD."""
    tables_freed: int = 0
    """Page-table pages freed during the call (tables)."""
    page_table_bytes_before: int = 0
    """Page-table memory before the call (bytes, as mm_pgtables_bytes)."""
    page_table_bytes_after: int = 0
    """Page-table memory after the call (bytes)."""
    wall_ns: int = 0
    """The simulator's wall time for the call (ns; varies from run to run)."""
    profile: Arch | None = field(default=None, repr=False)
    """The arch profile that prices the move (``estimated_ns``, ``trace``); None:
    not priced."""
    pte_table_bytes: int = field(default=0, repr=False)
    """Bytes of a PTE table: nearly all tables a move allocates are PTE tables."""
    _words: npt.NDArray[np.int64] = field(default_factory=lambda: _ZERO, repr=False)
    _traces: list[Any] = field(default_factory=list, repr=False)

    @property
    def peak_page_table_bytes(self) -> int:
        """The most page-table memory the call held: the kernel frees no
        table during move_page_tables, so the start plus every table the
        move allocated (or the end, if more)."""
        allocated = int(self._words.item(_AT["tables_allocated"]))
        return max(self.page_table_bytes_before + allocated * self.pte_table_bytes,
                   self.page_table_bytes_after)  # fmt: skip

    def add(self, words: npt.NDArray[np.int64], trace: Any = None) -> None:
        """Accumulate one move_page_tables record (its int64 words) and,
        if the move was traced, its trace (events, flush operations)."""
        if trace is not None:
            self._traces.append(trace)
        if self._words is _ZERO:  # the common case: one call, nothing to add to
            self._words = words
            return
        total = self._words + words
        total[_HOLD] = np.maximum(self._words[_HOLD], words[_HOLD])
        self._words = total

    def add_flush(self, tlbs: Tlbs, caller: int, lo: int, hi: int, stride_shift: int,
                  freed_tables: bool, traced: bool = False) -> None:  # fmt: skip
        """Issue and count a flush the call makes outside its moves:
        unmap_region's tlb_finish_mmu, once the old range's tables were
        freed (``freed_tables``) or a range it unmapped held pages. It
        counts in ``unmap_flushes``, its operations in ``flush_ops``, priced
        as the engine's flushes are, and with ``traced`` (the space traces
        its moves) it is the trace's next event, of kind "finish"."""
        if self._words is _ZERO:
            self._words = np.zeros(_WORDS, dtype=np.int64)
        row = _move.finish_flush(tlbs, caller, lo, hi, stride_shift, freed_tables, self._words,
                                 traced)  # fmt: skip
        if row is not None:
            self._trace_flush(_FINISH, stride_shift, lo, hi, row)

    def add_batched_pending(self, tlbs: Tlbs, caller: int, traced: bool = False) -> None:
        """Issue and count the flush_tlb_batched_pending of the call's
        unmaps (zap_pte_range) when reclaim's deferred flush of the mm is
        pending: ``batched_pending_flushes``, its operations in
        ``flush_ops``, a trace event of kind "batched"."""
        if self._words is _ZERO:
            self._words = np.zeros(_WORDS, dtype=np.int64)
        row = _move.finish_flush(tlbs, caller, 0, 0, tlbs.page_shift, False, self._words,
                                 traced, batched=True)  # fmt: skip
        if row is not None:
            # the whole mm, or nothing where it is a barrier alone (a DSB)
            hi = 0 if tlbs.batched_pending_barrier else _move.MM_FLUSH_END
            self._trace_flush(_BATCHED, tlbs.page_shift, 0, hi, row)

    def _trace_flush(self, kind: int, stride_shift: int, lo: int, hi: int,
                     row: npt.NDArray[np.int64]) -> None:  # fmt: skip
        """Append a flush the call made outside its moves to its trace: one
        event of ``kind`` over [lo, hi) and its operations ``row``."""
        ev = np.zeros(1, dtype=_move.EVENT_DTYPE)
        ev["kind"] = kind
        ev["entries"] = stride_shift
        ev["lo"], ev["hi"] = lo, hi
        self._traces.append((ev, row.reshape(1, -1)))

    def drop_trace(self) -> None:
        """Forget the traced events (a long PTE-by-PTE move's are tens of
        MB) once they have been read."""
        self._traces.clear()

    @property
    def trace(self) -> MoveTrace | None:
        """The move step by step, priced (``timeline.MoveTrace``), when the
        space traced it (``AddressSpace.trace_moves``); else None."""
        if not self._traces or self.profile is None:
            return None
        return concat(self._traces, self.profile)

    @property
    def record(self) -> npt.NDArray[np.void]:
        """The counters as a numpy record of the engine's struct (a copy)."""
        r: npt.NDArray[np.void] = self._words.copy().view(MOVE_DTYPE)
        return r

    def _counters(self) -> dict[str, int]:
        words = self._words.tolist()
        return {n: words[i] for n, i in _AT.items()}

    def counter(self, name: str) -> int:
        """The counter called ``name`` (as the attribute of that name)."""
        return int(self._words.item(_AT[name]))

    def __getattr__(self, name: str) -> int:
        # the scalar counters, by their struct field names
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return int(self._words.item(_AT[name]))
        except KeyError:
            raise AttributeError(f"MoveStats has no attribute {name!r}") from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(COUNTER_NAMES))

    def _nested(self, name: str) -> dict[str, int]:
        sub = MOVE_DTYPE[name]
        at = _FIELDS[name][1] // 8
        return dict(
            zip(_names(sub), self._words[at : at + sub.itemsize // 8].tolist(), strict=True)
        )

    @property
    def lock_acquired(self) -> dict[str, int]:
        """Acquisitions per lock class."""
        return self._nested("lock_acquired")

    @property
    def lock_max_hold(self) -> dict[str, int]:
        """Longest hold per lock class, in entries moved under it."""
        return self._nested("lock_max_hold")

    @property
    def flush_ops(self) -> dict[str, int]:
        """The architecture's flush operations, by name."""
        return self._nested("flush_ops")

    @property
    def moved(self) -> bool:
        """Whether page tables moved (False for in-place resizes)."""
        return self.old_addr != self.new_addr

    @property
    def safe(self) -> bool:
        """No moved entry outlived its lock unflushed."""
        return self.unsafe_entries == 0

    def _arch(self) -> Arch:
        if self.profile is None:
            raise ValueError("no arch profile to price this move with")
        return self.profile

    def _costs(self) -> tuple[float, dict[str, float]]:
        return move_cost(self._arch(), self)

    @property
    def estimated_ns(self) -> float:
        """Estimated kernel time of the call, from the arch's cost table."""
        return self._costs()[0]

    @property
    def estimated_ns_range(self) -> tuple[float, float]:
        """(low, high) of ``estimated_ns``: every event priced at the low end
        of its cost's range, then at the high end."""
        return move_cost_range(self._arch(), self)

    @property
    def breakdown(self) -> dict[str, float]:
        """``estimated_ns`` by category."""
        return self._costs()[1]

    @property
    def collateral_ns(self) -> float:
        """Later refills of other mappings' TLB entries the flushes destroyed."""
        return collateral_cost(self._arch(), self.flush_ops["collateral_entries"])

    @property
    def collateral_ns_range(self) -> tuple[float, float]:
        """(low, high) of ``collateral_ns``."""
        return collateral_cost_range(self._arch(), self.flush_ops["collateral_entries"])

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON and tables)."""
        d: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if k.startswith("_") or k in ("profile", "pte_table_bytes"):
                continue
            d[k] = v
            if k == "page_table_bytes_after":
                d["peak_page_table_bytes"] = self.peak_page_table_bytes
        d.update(self._counters())
        d.update(lock_acquired=self.lock_acquired, lock_max_hold=self.lock_max_hold,
                 flush_ops=self.flush_ops)  # fmt: skip
        if self.profile is not None:
            total, breakdown = self._costs()
            low, high = self.estimated_ns_range
            clow, chigh = self.collateral_ns_range
            d.update(estimated_ns=total, estimated_ns_low=low, estimated_ns_high=high,
                     breakdown=breakdown, collateral_ns=self.collateral_ns,
                     collateral_ns_low=clow, collateral_ns_high=chigh)  # fmt: skip
        return d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MoveStats):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass
class AccessStats:
    """What ``mm.access`` did: TLB hits per level, walks, faults, and time."""

    cpu: int
    """The CPU that made the accesses."""
    write: bool
    """Whether they were writes."""
    accesses: int = 0
    """Accesses made: one per address."""
    l1_hits: int = 0
    """Accesses that hit the first-level TLB."""
    l2_hits: int = 0
    """Accesses that missed it and hit the second level."""
    walks: int = 0
    """Hardware page walks (an access that faults walks again after the fault)."""
    walk_steps: int = 0
    """Page-table levels those walks read (one on a page-walk-cache hit)."""
    pwc_hits: int = 0
    """Walks that hit the page-walk cache (the PMD entry's pointer to its PTE
    table) and read the PTE alone."""
    faults: int = 0
    """Page faults taken (copy-on-write ones included)."""
    cow_faults: int = 0
    """Of ``faults``, copy-on-write ones: a write to the zero page or a read-only
    private page (each with its ptep_clear_flush)."""
    huge_faults: int = 0
    """Of ``faults``, those in a range where the VMA may map a PMD-sized THP."""
    segv: int = 0
    """Accesses skipped with SIGSEGV or SIGBUS: unmapped, inaccessible, or past
    the end of a file or shared object."""
    flush_ops: dict[str, int] = field(default_factory=dict)
    """The arch's flush instructions behind the copy-on-write faults' flushes
    (``pt.OP_INFO``)."""
    estimated_ns: float = 0.0
    """The accesses' estimated time, from the arch's cost table (ns)."""
    breakdown: dict[str, float] = field(default_factory=dict)
    """``estimated_ns`` by category ("tlb hits", "page walks", "faults", the
    arch's flush categories; ns)."""
    wall_ns: int = 0
    """The simulator's wall time for the accesses (ns; varies from run to run)."""
    estimated_ns_range: tuple[float, float] = (0.0, 0.0)
    """(low, high) of ``estimated_ns``: every event at each end of its cost's
    range (ns)."""

    @property
    def misses(self) -> int:
        """Accesses that missed every TLB level."""
        return self.accesses - self.l1_hits - self.l2_hits
