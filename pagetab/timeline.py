"""A traced move as a timeline: the move engine's events in the order it
made them, each priced by the arch's costs.

With ``AddressSpace.trace_moves`` set, every mremap records what
move_page_tables did step by step (``_move.EVENT_DTYPE``): each page-table
lock taken and released (with the entries moved during the hold), each run
of PTEs moved by move_ptes, each whole entry moved by move_pgt_entry, each
split_huge_pmd, each flush_tlb_range and arm64 contpte_convert with the
flush instructions it issued. ``MoveTrace`` prices them one by one, as ``cost.move_cost`` prices
the totals (each event at the price of the counter that counts it, from
``cost.MOVE_EVENTS`` and ``cost.LOCK_EVENTS``), and lays them end to end
on the mover's CPU: when each lock was held, when each flush was issued
and what it sent to the other CPUs. The mover's own time only; what the
other CPUs pay is the concurrent model's. The system call's entry and the
page-table allocations (``cost.UNTRACED``) are not events: the timeline
starts at the first lock, ``MoveTrace.untraced_ns`` after the call's
entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _move
from .arch import Arch
from .cost import ENTRY_COUNTERS, LOCK_EVENTS, flush_ops_cost, unit_price

__all__ = ["EVENT_KINDS", "FLUSH_KINDS", "Flush", "LockHold", "MoveTrace"]

#: move_event.kind's names (the C enum's order)
EVENT_KINDS: tuple[str, ...] = _move.EVENT_KINDS
#: the kinds of event that flush (a move's flush_tlb_range, arm64's
#: contpte_convert, the unmap's tlb_finish_mmu), each with a row of operations
FLUSH_KINDS: tuple[str, ...] = _move.FLUSH_KINDS
#: the flush operations' names: the fields of the C struct FlushOps
OP_NAMES: tuple[str, ...] = tuple(_move.MOVE_DTYPE["flush_ops"].names or ())
#: lock classes by move_event.what: the fields of the C struct lock_classes
LOCK_CLASSES: tuple[str, ...] = tuple(_move.MOVE_DTYPE["lock_acquired"].names or ())
_KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
_FLUSHING = [_KIND[k] for k in FLUSH_KINDS]
#: move_pgt_entry's entry types by move_event.what of an "entry" event
PGT_ENTRIES: tuple[str, ...] = _move.PGT_ENTRIES


class LockHold(NamedTuple):
    """One page-table (or rmap) lock hold on the mover's timeline."""

    lock_class: str  #: "ptl_pte", "ptl_pmd", "page_table_lock" or "rmap"
    lock_id: int  #: which lock of the class (the engine's id)
    start_ns: float  #: taken (the acquisition's end)
    end_ns: float  #: released
    entries: int  #: entries moved while it was held


class Flush(NamedTuple):
    """One flush (or contpte_convert) on the mover's timeline."""

    #: one of FLUSH_KINDS: "flush", "convert", "finish" (the unmap's) or
    #: "batched" (flush_tlb_batched_pending: reclaim's deferred flush)
    kind: str
    start_ns: float
    end_ns: float
    lo: int  #: the flushed range's start
    hi: int  #: and end
    ops: dict[str, int]  #: the flush instructions it issued (only those it did)
    locks_held: int  #: page-table locks held while it ran (0: unlocked)


@dataclass
class MoveTrace:
    """The events of one traced mremap (all its move_page_tables calls) or
    UFFDIO_MOVE (all its move_calls), in order, with each event's price and
    the time its end falls at."""

    #: the events, an array of the C struct move_event (``_move.EVENT_DTYPE``)
    events: npt.NDArray[np.void]
    #: one row per event of FLUSH_KINDS (its ``what``), columns OP_NAMES
    flush_ops: npt.NDArray[np.int64]
    arch: Arch
    #: ns each event takes on the mover's CPU, and where it ends (cumulative)
    durations_ns: npt.NDArray[np.float64] = field(init=False, repr=False)
    end_ns: npt.NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # every event priced by the counter that counts it (cost.MOVE_EVENTS,
        # cost.LOCK_EVENTS): the same prices as the move's estimate
        price = self.arch.cost
        ev = self.events
        kind, what, entries = ev["kind"], ev["what"], ev["entries"]
        d = np.zeros(len(ev), dtype=np.float64)
        counts = np.bincount(kind.astype(np.int64), minlength=len(EVENT_KINDS))

        def priced(k: str) -> bool:
            return bool(counts[_KIND[k]])  # a profile may lack the events it never makes

        if priced("lock"):
            lock_ns = np.array([price(LOCK_EVENTS[c]) for c in LOCK_CLASSES])
            m = kind == _KIND["lock"]
            # a lock event's entries: the locks it stands for (UFFDIO_MOVE's
            # folio and anon_vma locks of a run, counted in one), 0 for one
            d[m] = lock_ns[what[m]] * np.maximum(entries[m], 1)
        if priced("ptes"):
            m = kind == _KIND["ptes"]
            # a ptes event's what: the folio lookups among its entries
            d[m] = entries[m] * unit_price(price, "ptes_moved") + what[m] * unit_price(
                price, "folio_lookups"
            )
        if priced("entry"):
            entry_ns = np.array([unit_price(price, ENTRY_COUNTERS[e]) for e in PGT_ENTRIES])
            m = kind == _KIND["entry"]
            d[m] = entry_ns[what[m]]
        flush_ns = np.array([sum(flush_ops_cost(self.arch, price, dict(zip(
            OP_NAMES, row.tolist(), strict=True))).values()) for row in self.flush_ops],
            dtype=np.float64)  # fmt: skip
        m = np.isin(kind, _FLUSHING)
        d[m] = flush_ns[what[m]] if len(flush_ns) else 0.0
        if priced("convert"):
            d[kind == _KIND["convert"]] += unit_price(price, "contpte_folds")
        if priced("split"):
            # its flush is the next event
            d[kind == _KIND["split"]] = unit_price(price, "huge_pmds_split")
        self.durations_ns = d
        self.end_ns = np.cumsum(d)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def total_ns(self) -> float:
        """The mover's time over all the events."""
        return float(self.end_ns[-1]) if len(self.end_ns) else 0.0

    def kinds(self) -> list[str]:
        """Each event's kind, by name."""
        return [EVENT_KINDS[k] for k in self.events["kind"].tolist()]

    def lock_holds(self) -> list[LockHold]:
        """Every lock hold, in the order they were taken."""
        out: list[LockHold] = []
        open_: dict[int, int] = {}  # lock id -> its hold's index in out
        ev, end = self.events, self.end_ns
        for i, (k, w, n, lo) in enumerate(zip(ev["kind"].tolist(), ev["what"].tolist(),
                                              ev["entries"].tolist(), ev["lo"].tolist(),
                                              strict=True)):  # fmt: skip
            if k == _KIND["lock"]:
                open_[lo] = len(out)
                out.append(LockHold(LOCK_CLASSES[w], lo, float(end[i]), float("nan"), 0))
            elif k == _KIND["unlock"] and lo in open_:
                j = open_.pop(lo)
                h = out[j]
                out[j] = LockHold(h.lock_class, h.lock_id, h.start_ns, float(end[i]), n)
        return out

    def flushes(self) -> list[Flush]:
        """Every flush, contpte_convert and the unmap's flush, with what it
        issued and how many page-table locks were held as it ran."""
        out = []
        held = 0
        ev, end, dur = self.events, self.end_ns, self.durations_ns
        for i, (k, w, lo, hi) in enumerate(zip(ev["kind"].tolist(), ev["what"].tolist(),
                                               ev["lo"].tolist(), ev["hi"].tolist(),
                                               strict=True)):  # fmt: skip
            # w: the lock class of a lock event, the flush record of a flush
            if k == _KIND["lock"] and LOCK_CLASSES[w] != "rmap":
                held += 1
            elif k == _KIND["unlock"] and LOCK_CLASSES[w] != "rmap":
                held -= 1
            elif k in _FLUSHING:
                ops = {n: v for n, v in zip(OP_NAMES, self.flush_ops[w].tolist(), strict=True)
                       if v}  # fmt: skip
                out.append(Flush(EVENT_KINDS[k], float(end[i] - dur[i]), float(end[i]), lo, hi,
                                 ops, held))  # fmt: skip
        return out

    def summary(self) -> dict[str, Any]:
        """Counts per kind and the total, for a quick look."""
        counts = np.bincount(self.events["kind"].astype(np.int64), minlength=len(EVENT_KINDS))
        return {**dict(zip(EVENT_KINDS, counts.tolist(), strict=True)), "total_ns": self.total_ns}


def concat(parts: list[tuple[npt.NDArray[np.void], npt.NDArray[np.int64]]],
           arch: Arch) -> MoveTrace:  # fmt: skip
    """One MoveTrace of several move_page_tables calls' traces, in order
    (each call's flush rows renumbered after the previous calls')."""
    evs, ops = [], []
    base = 0
    for events, rows in parts:
        e = events
        if base:  # renumbered in a copy (the first call's need not be: no copy of it)
            e = events.copy()
            m = np.isin(e["kind"], _FLUSHING)
            e["what"][m] += base
        base += len(rows)
        evs.append(e)
        ops.append(rows)
    if len(evs) == 1:
        events = evs[0].view()  # read-only: the move's own record stays as it was
        events.flags.writeable = False
    else:
        events = np.concatenate(evs) if evs else np.empty(0, dtype=_move.EVENT_DTYPE)
    flush_ops = np.concatenate(ops) if ops else np.empty((0, len(OP_NAMES)), dtype=np.int64)
    return MoveTrace(events, flush_ops, arch)
