"""mm/mmu_gather.c with the page-table walks that feed it: a zap
(mm/memory.c ``zap_pte_range``, ``zap_huge_pmd``) or a protection change
(mm/mprotect.c ``change_pte_range``, ``change_huge_pmd``) laid out in time,
page table by page table, for the concurrent model's movers other than
mremap (``contention.run_concurrent(mover=...)``).

The store is read, not changed: what each page table holds decides the
call's events, in the kernel's order.

* Each PTE table the range covers is one hold of its lock
  (``pte_offset_map_lock``), and each huge PMD one hold of the PMD table's
  lock, during which its entries are cleared (``zap_pte``) or made
  read-only (``prot_pte``, and ``prot_folio`` for each batch of one
  folio's PTEs: since 6.17 change_pte_range looks up every present
  entry's folio, which the zero page has none of).
* A zap gathers each freed folio in the mmu_gather's batches: one slot per
  small folio or PMD folio, two for a run of PTEs of one large folio
  (``encode_nr_pages``); the zero page takes none. When the batches
  are full, ``zap_pte_range`` stops, flushes under the lock
  (``tlb_flush_mmu_tlbonly``), drops it, frees the gathered folios
  (``tlb_flush_mmu``) and takes the lock again for the rest of the table.
* munmap's ``free_pgtables`` then frees the tables the range alone used,
  and MADV_DONTNEED frees each PTE table it emptied whole where
  ``Policy.pt_reclaim`` and the arch allow; each joins the mmu_gather's
  table batch (509 with 4 KiB pages), which flushes when full
  (``tlb_remove_table``) and empties at every flush of the folios.
* ``tlb_finish_mmu`` flushes what is left and frees its folios; a
  protection change flushes once (x86: ``tlb_finish_mmu``, as x86 merges
  VMAs' gathers; elsewhere ``tlb_end_vma``), on x86 and powerpc only the
  entries that were writable (``FlushRules.pte_needs_flush_writable``),
  and off x86 each huge PMD once more under its lock
  (``FlushRules.pmdp_invalidate_flushes``).

A flush covers the range cleared since the previous one
(``__tlb_reset_range``), at page stride unless only PMDs were cleared
(``tlb_get_unmap_shift``); its operations come from the arch's rule on the
space's TLBs, priced as every flush is (``cost.flush_ops_cost``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _contend, _flush, _move
from .arch import Arch
from .cost import flush_ops_cost
from .mm_types import MmStruct
from .vma import free_window

__all__ = ["GATHER_CALLS", "GatherTrace", "gather_slots", "gather_trace"]

#: the calls traced here: each one's per-call cost, and whether it frees
#: what it clears (a zap) or changes its protection
GATHER_CALLS = {"madvise": ("madvise_call", True), "munmap": ("munmap_call", True),
                "mprotect": ("mprotect_call", False)}  # fmt: skip
#: include/asm-generic/tlb.h: the on-stack batch's slots (MMU_GATHER_BUNDLE)
MMU_GATHER_BUNDLE = 8
#: include/asm-generic/tlb.h: MAX_GATHER_BATCH_COUNT's bound on the pages
#: gathered (10000UL / MAX_GATHER_BATCH)
_GATHER_BOUND = 10000
#: sizeof(struct mmu_gather_batch) before its encoded_pages[] (next, nr, max)
_BATCH_HEADER = 16
#: sizeof(struct mmu_table_batch) before its tables[] (rcu_head, nr, padding)
_TABLE_BATCH_HEADER = 24


def table_batch(page_size: int) -> int:
    """Page tables an mmu_gather's table batch holds (MAX_TABLE_BATCH: a
    page of pointers after struct mmu_table_batch's rcu_head and nr); the
    last one added flushes it (mm/mmu_gather.c ``tlb_remove_table``)."""
    return (page_size - _TABLE_BATCH_HEADER) // 8


def _tables_freed(mm: MmStruct, lo: int, hi: int) -> int:
    """The page tables free_pgtables releases once [lo, hi) is unmapped:
    each PTE table (then PMD table) whose whole span lies inside the
    window no other VMA shares (``vma.free_window``) and meets [lo, hi)."""
    a = mm.arch
    floor, ceiling = free_window(mm, lo, hi)
    pte, pmd = len(a.levels) - 1, len(a.levels) - 2
    n = 0
    for span, level in ((a.pmd_size, pte), (a.pud_size, pmd)):
        first = max(-(-floor // span) * span, lo // span * span)
        last = min(ceiling // span * span, -(-hi // span) * span)
        for c in range(first, last, span):
            if mm.tables.entry(c)[0] >= level:  # a table of that level there
                n += 1
    return n


def gather_slots(page_size: int) -> int:
    """Slots an mmu_gather fills before a zap must flush and free: the
    on-stack batch and MAX_GATHER_BATCH_COUNT page-sized batches of
    MAX_GATHER_BATCH, each taken as full one slot short of its end
    (``__tlb_remove_folio_pages_size`` keeps room for a page and its
    nr_pages; mm/mmu_gather.c ``tlb_next_batch``)."""
    per_batch = (page_size - _BATCH_HEADER) // 8
    return (MMU_GATHER_BUNDLE - 1) + (_GATHER_BOUND // per_batch) * (per_batch - 1)


@dataclass
class GatherTrace:
    """One call's events on the mover's CPU, as ``_contend.simulate`` takes
    them: times in ns from the first page table (``call_ns`` after entry)."""

    call: str
    """"madvise" (MADV_DONTNEED), "munmap" or "mprotect" (to PROT_READ)."""
    call_ns: float
    """The call's own cost before its first page table: entry, VMA lookup
    (and for munmap, detaching the VMAs before mmap_lock is downgraded)."""
    end_ns: float
    """When its last event ends (the last folios freed, or the last flush)."""
    ext_lo: npt.NDArray[np.uint64]
    """Each hold's cleared range (sorted, disjoint): start."""
    ext_hi: npt.NDArray[np.uint64]
    """... end."""
    ext_at: npt.NDArray[np.float64]
    """... when its entries were cleared (the hold's end)."""
    fl_at: npt.NDArray[np.float64]
    """Each flush's start."""
    fl_lo: npt.NDArray[np.uint64]
    """... the range it covers: start."""
    fl_hi: npt.NDArray[np.uint64]
    """... end."""
    fl_stride: npt.NDArray[np.int64]
    """... its stride shift."""
    fl_freed: npt.NDArray[np.uint8]
    """... 1 where tables were freed since the previous flush (freed_tables)."""
    fl_ops: npt.NDArray[np.int64]
    """... its operations in the call alone, a row of ``_flush.OP_NAMES``
    each."""
    holds: npt.NDArray[Any]
    """The page-table lock holds (``_contend.HOLD_DTYPE``, sorted by key
    and start)."""
    counts: dict[str, int] = field(default_factory=dict)
    """entries (cleared or changed), folio_lookups (a protection change's),
    folios_freed, pmd_folios_freed, tables (holds), flushes, forced_flushes
    (mid-zap, batches full), tables_freed (munmap's free_pgtables, or
    MADV_DONTNEED's reclaim) and table_flushes (the table batch full)."""

    @property
    def total_ns(self) -> float:
        """The call's estimate: its own cost and its events (ns)."""
        return self.call_ns + self.end_ns


def _chunks(mm: MmStruct, lo: int, hi: int) -> list[tuple[int, int, str, Any, Any]]:
    """The page tables under [lo, hi) in address order: (start, end, kind,
    frames, orders) with kind "pte" (a PTE table), "pmd" (a huge PMD), or
    "pud" (a huge PUD); ranges without a table are left out."""
    a = mm.arch
    pte, pmd_level = len(a.levels) - 1, len(a.levels) - 2
    span = a.pmd_size
    out: list[tuple[int, int, str, Any, Any]] = []
    c = lo
    while c < hi:
        table_end = min((c // span + 1) * span, hi)
        level, raw = mm.tables.entry(c)
        if level == pte:
            f, o = mm.tables.folio_orders(c, table_end)
            out.append((c, table_end, "pte", f, o))
        elif raw:
            # a huge leaf (zap_huge_pmd / zap_huge_pud): the whole leaf
            size = 1 << a.levels[level].shift
            leaf_end = min((c // size + 1) * size, hi)
            f, o = mm.tables.folio_orders(c, c + a.page_size)
            out.append((c, leaf_end, "pmd" if level == pmd_level else "pud", f, o))
            table_end = leaf_end
        else:
            size = 1 << a.levels[level].shift
            table_end = min((c // size + 1) * size, hi)
        c = table_end
    return out


def gather_trace(mm: MmStruct, call: str, lo: int, hi: int, cpu: int = 0,
                 arch: Arch | None = None) -> GatherTrace:  # fmt: skip
    """The events of ``call`` over [lo, hi) of ``mm`` (a range inside one
    VMA), priced by ``arch`` (default ``mm.arch``, whose geometry it must
    have): see the module docstring. The flushes are issued on ``mm.tlbs``
    from ``cpu`` to learn their operations (its TLBs and counters change);
    the page tables do not."""
    if call not in GATHER_CALLS:
        raise ValueError(f"call must be one of {', '.join(GATHER_CALLS)}, not {call!r}")
    a = mm.arch if arch is None else arch
    price = a.cost
    call_cost, zap = GATHER_CALLS[call]
    entry_ns = price("zap_pte" if zap else "prot_pte")
    lookup_ns = 0.0 if zap else price("prot_folio")
    lock_ns = price("ptl_lock")
    cap = gather_slots(a.page_size)
    pmd_shift, pud_shift = a.pmd_size.bit_length() - 1, a.pud_size.bit_length() - 1
    pmd_order = pmd_shift - a.page_shift
    keys = {"pte": (_move.LOCK_ID_PTE << _move.LOCK_ID_SHIFT, pmd_shift, a.split_pte_lock),
            "pmd": (_move.LOCK_ID_PMD << _move.LOCK_ID_SHIFT, pud_shift, a.split_pmd_lock),
            "pud": (0, 0, False)}  # fmt: skip
    t = 0.0
    ext: list[tuple[int, int, float]] = []
    holds: list[tuple[int, float, float]] = []
    flushes: list[tuple[float, int, int, int, int]] = []
    fl_ops: list[list[int]] = []
    counts = dict.fromkeys(("entries", "folio_lookups", "folios_freed", "pmd_folios_freed",
                            "tables", "flushes", "forced_flushes", "table_flushes",
                            "tables_freed"), 0)  # fmt: skip
    # the gather: its range since the last flush, what it cleared, its slots
    g: dict[str, Any] = {"lo": None, "hi": 0, "ptes": False, "tables": False, "slots": 0,
                         "small": 0, "pmd": 0, "batch_tables": 0}  # fmt: skip
    # MADV_DONTNEED frees the PTE tables it empties whole (CONFIG_PT_RECLAIM)
    reclaim = call == "madvise" and mm.policy.pt_reclaim and a.supports_pt_reclaim
    per_batch = table_batch(a.page_size)

    def issue(lo_: int, hi_: int, shift: int, freed: bool) -> None:
        """One flush_tlb_range now: its operations priced on the timeline."""
        nonlocal t
        ops = mm.tlbs.flush_range(cpu, lo_, hi_, shift, freed)
        flushes.append((t, lo_, hi_, shift, int(freed)))
        fl_ops.append([ops.get(n, 0) for n in _flush.OP_NAMES])
        t += sum(flush_ops_cost(a, price, ops).values())
        counts["flushes"] += 1

    def flush() -> None:
        """tlb_flush_mmu_tlbonly: the range since the last one, freed_tables
        where tables were freed since (munmap's: the whole range)."""
        freed = g["tables"]
        if g["lo"] is not None or g["tables"]:
            # tlb_get_unmap_shift: pte_free_tlb clears PMDs, not PTEs
            shift = a.page_shift if g["ptes"] else pmd_shift
            lo_, hi_ = (lo, hi) if freed and (call == "munmap" or g["lo"] is None) \
                else (g["lo"], g["hi"])  # fmt: skip
            issue(lo_, hi_, shift, freed)
        g["lo"], g["hi"], g["ptes"], g["tables"] = None, 0, False, False

    def table_freed() -> None:
        """pte_free_tlb: the table joins the table batch, which flushes
        when full (tlb_remove_table -> tlb_table_flush)."""
        g["tables"] = True
        g["batch_tables"] += 1
        counts["tables_freed"] += 1
        if g["batch_tables"] == per_batch:
            counts["table_flushes"] += 1
            flush()
            g["batch_tables"] = 0

    def free() -> None:
        """tlb_flush_mmu_free: the gathered folios, and the table batch."""
        nonlocal t
        g["batch_tables"] = 0
        t += g["small"] * price("folio_free") + g["pmd"] * price("pmd_folio_free")
        counts["folios_freed"] += g["small"]
        counts["pmd_folios_freed"] += g["pmd"]
        g["slots"] = g["small"] = g["pmd"] = 0

    def hold(kind: str, s: int, e: int, entries: int, lookups: int = 0) -> None:
        nonlocal t
        tag, shift, split = keys[kind]
        key = (tag | (s >> shift)) if split else _move.LOCK_ID_MM
        start = t
        t += lock_ns + entries * entry_ns + lookups * lookup_ns
        counts["folio_lookups"] += lookups
        holds.append((key, start, t))
        ext.append((s, e, t))
        counts["tables"] += 1
        counts["entries"] += entries

    def gathered(s: int, e: int, ptes: bool) -> None:
        g["lo"] = s if g["lo"] is None else min(g["lo"], s)
        g["hi"] = max(g["hi"], e)
        g["ptes"] = g["ptes"] or ptes

    def gathered_ptes(base: int, mask: npt.NDArray[np.bool_]) -> None:
        """The PTEs ``mask`` marks from ``base`` widen the gather's range."""
        idx = np.flatnonzero(mask)
        if len(idx):
            gathered(base + int(idx[0]) * a.page_size, base + (int(idx[-1]) + 1) * a.page_size,
                     True)  # fmt: skip

    writable_only = a.flush.pte_needs_flush_writable
    for s, e, kind, frames, orders in _chunks(mm, lo, hi):
        if kind != "pte":
            huge_zero = bool(frames[0] == 0)
            hold(kind, s, e, 1)
            if not zap:
                if a.flush.pmdp_invalidate_flushes:
                    # pmdp_invalidate: flush_pmd_tlb_range under the PMD lock
                    issue(s, e, pmd_shift, False)
                    holds[-1] = (holds[-1][0], holds[-1][1], t)
                if not (huge_zero and writable_only):
                    gathered(s, e, False)
                continue
            gathered(s, e, False)
            if not huge_zero:
                # tlb_remove_page_size: one slot (nr_pages 1), after the unlock
                g["pmd"] += 1
                g["slots"] += 1
                if g["slots"] >= cap:
                    # tlb_remove_page_size: flush and free at once
                    counts["forced_flushes"] += 1
                    flush()
                    free()
            continue
        present = orders >= 0
        # the first page of each run of one folio's pages (the zero page
        # is no folio): folio_pte_batch's batches
        normal = present & (frames != 0)
        order = np.where(normal, orders, -1).astype(np.int64)
        head = frames >> np.clip(order, 0, None)
        first = normal.copy()
        first[1:] &= ~(normal[:-1] & (head[1:] == head[:-1]))
        if not zap:
            # change_pte_range: each entry changed, each batch's folio
            # looked up (vm_normal_folio, which the zero page skips)
            hold("pte", s, e, int(present.sum()), int(first.sum()))
            # the pages it must flush: every changed one, or where the arch
            # says so the writable ones alone (pte_needs_flush: the zero
            # page is mapped read-only already)
            gathered_ptes(s, normal if writable_only else present)
            continue
        # slots: one per small folio's page, two per run of a large folio's
        # pages (the first page of each run in this table), none for the zero page
        slot = np.where(first, np.where(order > 0, 2, 1), 0)
        # each folio freed once, at its run's first page here
        cum = np.cumsum(slot)
        # where each page's run ends: the next run's first page, or a page
        # of no folio
        bounds = np.flatnonzero(first | ~normal)
        run_end = np.append(bounds, len(frames))[np.searchsorted(bounds, np.arange(len(frames)),
                                                                 side="right")]  # fmt: skip
        i0 = 0
        n_pages = len(frames)
        while i0 < n_pages:
            room = cap - g["slots"]
            # the entry at which the batches fill, if any, in this table
            full = int(np.searchsorted(cum - (cum[i0 - 1] if i0 else 0), room, side="left"))
            # zap_present_ptes zaps a folio's run whole (folio_pte_batch)
            # before force_flush breaks the loop: the part ends at the end
            # of the run whose first page filled the batches
            stop = n_pages if full >= n_pages else int(run_end[full])
            seg = slice(i0, stop)
            hold("pte", s + i0 * a.page_size, s + stop * a.page_size,
                 int(present[seg].sum()))  # fmt: skip
            gathered_ptes(s + i0 * a.page_size, present[seg])
            g["slots"] += int(slot[seg].sum())
            # folios freed: a PMD-order one (a PTE-mapped THP) as a PMD
            # folio, any smaller one as a folio
            pmd_sized = order[seg] >= pmd_order
            g["pmd"] += int((first[seg] & pmd_sized).sum())
            g["small"] += int((first[seg] & ~pmd_sized).sum())
            if stop < n_pages or g["slots"] >= cap:
                # force_flush: tlb_flush_mmu_tlbonly under the lock (the
                # hold ends after it), the frees after the unlock
                counts["forced_flushes"] += 1
                flush()
                holds[-1] = (holds[-1][0], holds[-1][1], t)
                free()
            i0 = stop
        if reclaim and e - s == a.pmd_size:
            table_freed()  # zapped whole: empty now
    if call == "munmap":
        # free_pgtables, after the zap's flushes drained the table batch
        for _ in range(_tables_freed(mm, lo, hi)):
            table_freed()
    flush()
    free()
    holds.sort()
    out = np.zeros(len(holds), dtype=_contend.HOLD_DTYPE)
    if holds:
        out["key"], out["start"], out["end"] = (np.array(c) for c in zip(*holds, strict=True))
    ext.sort()
    return GatherTrace(
        call=call, call_ns=price(call_cost), end_ns=t,
        ext_lo=np.array([x[0] for x in ext], dtype=np.uint64),
        ext_hi=np.array([x[1] for x in ext], dtype=np.uint64),
        ext_at=np.array([x[2] for x in ext], dtype=np.float64),
        fl_at=np.array([f[0] for f in flushes], dtype=np.float64),
        fl_lo=np.array([f[1] for f in flushes], dtype=np.uint64),
        fl_hi=np.array([f[2] for f in flushes], dtype=np.uint64),
        fl_stride=np.array([f[3] for f in flushes], dtype=np.int64),
        fl_freed=np.array([f[4] for f in flushes], dtype=np.uint8),
        fl_ops=np.array(fl_ops, dtype=np.int64).reshape(len(fl_ops), len(_flush.OP_NAMES)),
        holds=out, counts=counts,
    )  # fmt: skip
