# cython: language_level=3
"""The move engine: move_page_tables as in mm/mremap.c.

Every lock acquisition, entry move and TLB flush is recorded in the C
``move_stats`` struct (_move.pxd); the inner loops hold no Python objects
and run without the GIL. Safety is measured, not assumed: each moved present entry is kept
in a pending segment, tagged with the page-table locks held when it moved,
until a flush covering its old address clears it; releasing one of those
locks first turns the segment into ``unsafe_windows`` (CVE-2018-18281).
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

cimport numpy as cnp

import numpy as np

from pagetab._flush cimport (
    FlushOps, Tlbs, flush_mm_end, flush_rule, flush_tlb_batched_pending, tlb_flush_gather,
    tlb_flush_range,
)
from pagetab._huge_memory cimport split_huge_pmd
from pagetab._pgtable cimport (
    ACTION_CONTINUE, ADDR_SHIFT, E_CONT, E_DIRTY, E_LEAF, E_ORDER, E_ORDER_SHIFT, E_PACKED,
    E_PRESENT, E_SOFTDIRTY, E_ZERO, PD_EMPTY, alloc_row, block_foldable, count_entries, d_count,
    d_get, d_hi, d_lo, d_set, d_step, desc_of, expand_packed, expand_packed_pmd, free_pte_table,
    is_packed, mm_walk, mm_walk_ops, new_pte_table, pgtables, pool_index, pool_row, pt_walk,
    pte_table_empty, same_folio_next, try_pack_pmd, walk_page_table,
)
from pagetab._tables cimport PageTables
from pagetab._tlb cimport (
    TlbSnapshot, TlbState, tlb_count_range, tlb_snapshot_build, tlb_snapshot_count,
    tlb_snapshot_free,
)

cnp.import_array()

cdef extern from *:
    int __builtin_ctz(unsigned int x) nogil

# (the lock classes LK_* and the event kinds EV_* are in _move.pxd)
cdef enum:
    MAX_HELD = 8

#: the names of move_event.kind's values
EVENT_KINDS = ("lock", "unlock", "ptes", "entry", "flush", "convert", "split", "finish",
               "batched")
#: the kinds that flush: each has a row of flush operations (its ``what``)
FLUSH_KINDS = ("flush", "convert", "finish", "batched")
#: the end of flush_tlb_mm's range (a "batched" event's hi)
MM_FLUSH_END = flush_mm_end()
#: move_event.what of an "entry" event: the pgt_entry moved
PGT_ENTRIES = ("NORMAL_PMD", "HPAGE_PMD", "NORMAL_PUD", "HPAGE_PUD")

#: Policy.flush -> flush_mode
FLUSH_MODE = {"extent": FL_EXTENT, "table": FL_TABLE, "end": FL_END}

cdef move_stats _layout
#: the record of one move: its numpy dtype is the C struct move_stats itself
MOVE_DTYPE = np.asarray(<move_stats[:1]>(&_layout)).dtype
# every field is an int64, so a record travels as int64 words (copying a
# nested structured array is slow; its int64 view is not)
assert sizeof(move_stats) % sizeof(int64_t) == 0
cdef cnp.npy_intp MOVE_WORDS = sizeof(move_stats) // sizeof(int64_t)
cdef move_event _ev_layout
#: a traced move's events: the C struct move_event
EVENT_DTYPE = np.asarray(<move_event[:1]>(&_ev_layout)).dtype
cdef cnp.npy_intp OPS_WORDS = sizeof(FlushOps) // sizeof(int64_t)

cdef uint64_t ID_PTE = (<uint64_t>LOCK_ID_PTE) << LOCK_ID_SHIFT
cdef uint64_t ID_PMD = (<uint64_t>LOCK_ID_PMD) << LOCK_ID_SHIFT
cdef uint64_t ID_RMAP = (<uint64_t>LOCK_ID_RMAP) << LOCK_ID_SHIFT
# the file's i_mmap_rwsem: the rmap class's second lock (take_rmap_locks
# takes it when the VMA has a vm_file)
cdef uint64_t ID_IMMAP = ((<uint64_t>LOCK_ID_RMAP) << LOCK_ID_SHIFT) | 1
cdef uint64_t ID_MM = LOCK_ID_MM


cdef struct Held:
    uint64_t id
    int cls
    int64_t entries                  # entries moved during this hold


cdef struct Segment:
    # moved present entries awaiting a flush of [lo, hi)
    uint64_t lo
    uint64_t hi
    int64_t count                    # -1: count lazily from (level, row)
    int level
    int64_t row
    unsigned mask                    # held-lock slots (page-table locks) at move time


cdef struct Ctx:
    mremap_config cfg                # the space's geometry and policy
    bint batch                       # cfg.flush == FL_TABLE
    # from pagetable_move_control
    bint need_rmap_locks
    bint has_anon
    bint has_file
    uint64_t free_lo
    uint64_t free_hi
    Held held[MAX_HELD]
    unsigned heldmask                # bit k: held[k] is a held lock
    unsigned rmapmask                # the bits of the rmap locks held (anon_vma, i_mmap)
    Segment *segs
    int64_t nsegs
    int64_t segs_cap
    int64_t uncounted                # segments whose count is still -1
    bint need_flush
    bint oom
    move_stats c
    TlbState *tlb                    # NULL: no TLB model
    const flush_rule *rule
    TlbSnapshot snap                 # the TLBs since the last flush, once counted twice
    int counts_since_flush
    int caller                       # the CPU running mremap
    bint no_table_moves              # uffd without EVENT_REMAP: no move_normal_pmd/pud
    # the trace (move_page_tables(..., trace=True)): events, and the flush
    # operations of each flush and contpte_convert
    event_log log


# ----------------------------------------------------------------------
# the trace

cdef move_event* log_event(event_log *g, int64_t kind, int64_t what, int64_t entries,
                           uint64_t lo, uint64_t hi) noexcept nogil:
    """Append an event; NULL (recording stops, the call goes on) when out of
    memory."""
    cdef move_event *ne
    cdef move_event *e
    if g.nev == g.ev_cap:
        ne = <move_event*>realloc(g.ev, (g.ev_cap * 2 + 64) * sizeof(move_event))
        if ne == NULL:
            g.on = False
            g.lost = True
            return NULL
        g.ev = ne
        g.ev_cap = g.ev_cap * 2 + 64
    e = &g.ev[g.nev]
    g.nev += 1
    e.kind = kind
    e.what = what
    e.entries = entries
    e.lo = lo
    e.hi = hi
    return e


cdef void log_flush(event_log *g, int64_t kind, uint64_t lo, uint64_t hi, int stride_shift,
                    const FlushOps *now, const FlushOps *before) noexcept nogil:
    """A flush event with the operations it issued (``now`` less
    ``before``) and its stride (in ``entries``: the concurrent model
    replays the flush on the other CPUs' TLBs)."""
    cdef FlushOps *nf
    cdef int64_t i
    cdef move_event *e
    if not g.on:
        return
    if g.nfops == g.fops_cap:
        nf = <FlushOps*>realloc(g.fops, (g.fops_cap * 2 + 16) * sizeof(FlushOps))
        if nf == NULL:
            g.on = False
            g.lost = True
            return
        g.fops = nf
        g.fops_cap = g.fops_cap * 2 + 16
    for i in range(OPS_WORDS):
        (<int64_t*>&g.fops[g.nfops])[i] = (<const int64_t*>now)[i] - (<const int64_t*>before)[i]
    e = log_event(g, kind, g.nfops, stride_shift, lo, hi)
    if e != NULL:
        g.nfops += 1


cdef object log_arrays(event_log *g):
    """(events as EVENT_DTYPE, flush operations as int64 rows in FlushOps'
    order), or None when nothing was recorded or the memory ran out."""
    cdef cnp.npy_intp dims[2]
    if not g.on:
        return None
    events = np.empty(g.nev, dtype=EVENT_DTYPE)
    if g.nev:
        memcpy(cnp.PyArray_DATA(events), g.ev, g.nev * sizeof(move_event))
    dims[0] = g.nfops
    dims[1] = OPS_WORDS
    ops = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INT64, 0)
    if g.nfops:
        memcpy(cnp.PyArray_DATA(ops), g.fops, g.nfops * sizeof(FlushOps))
    return events, ops


cdef void log_free(event_log *g) noexcept nogil:
    free(g.ev)
    free(g.fops)
    g.ev = NULL
    g.fops = NULL


cdef inline move_event* trace(Ctx *x, int64_t kind, int64_t what, int64_t entries,
                              uint64_t lo, uint64_t hi) noexcept nogil:
    """Append an event when tracing (else NULL). Only the test is inline:
    the lock and move steps that call it stay small enough to inline."""
    if not x.log.on:
        return NULL
    return log_event(&x.log, kind, what, entries, lo, hi)


cdef inline void trace_flush(Ctx *x, int64_t kind, uint64_t lo, uint64_t hi, int stride_shift,
                             const FlushOps *before) noexcept nogil:
    """A flush event of the move (see log_flush)."""
    log_flush(&x.log, kind, lo, hi, stride_shift, &x.c.flush_ops, before)


# ----------------------------------------------------------------------
# locks

cdef inline int lock_class(uint64_t id) noexcept nogil:
    if id == ID_MM:
        return LK_MM
    if id == ID_RMAP or id == ID_IMMAP:
        return LK_RMAP
    return LK_PTE if (id >> LOCK_ID_SHIFT) == LOCK_ID_PTE else LK_PMD


cdef inline uint64_t pte_lockptr(Ctx *x, int64_t row) noexcept nogil:
    return (ID_PTE | <uint64_t>row) if x.cfg.split_pte else ID_MM


cdef inline int64_t pte_table_id(uint64_t pmdval) noexcept nogil:
    """Which PTE table the PMD entry ``pmdval`` points to, for its lock:
    its row, or its packed table's index with bit 60 set (packed tables
    and rows are numbered apart)."""
    return <int64_t>((pmdval >> ADDR_SHIFT) | ((<uint64_t>1 << 60) if is_packed(pmdval) else 0))


cdef inline uint64_t pmd_lockptr(Ctx *x, int64_t row) noexcept nogil:
    return (ID_PMD | <uint64_t>row) if x.cfg.split_pmd else ID_MM


cdef inline int held_slot(Ctx *x, uint64_t id) noexcept nogil:
    cdef unsigned m = x.heldmask
    cdef int k
    while m:
        k = __builtin_ctz(m)
        if x.held[k].id == id:
            return k
        m &= m - 1
    return -1


cdef inline bint spin_lock(Ctx *x, uint64_t id) noexcept nogil:
    """Take ``id`` unless it is already held (it can be: the PTE lock is
    mm->page_table_lock without split locks). Returns whether it was taken."""
    cdef int k
    if held_slot(x, id) >= 0 or x.heldmask == (1u << MAX_HELD) - 1:
        return False
    k = __builtin_ctz(~x.heldmask)
    x.heldmask |= 1u << k
    x.held[k].id = id
    x.held[k].cls = lock_class(id)
    x.held[k].entries = 0
    if id == ID_RMAP or id == ID_IMMAP:
        x.rmapmask |= 1u << k
    (<int64_t*>&x.c.lock_acquired)[x.held[k].cls] += 1
    trace(x, EV_LOCK, x.held[k].cls, 0, id, 0)
    return True


cdef int present_huge(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                      uint64_t next) noexcept nogil:
    """A present huge leaf counts once."""
    if slot[0] & E_PRESENT:
        (<int64_t*>walk.private)[0] += 1
    walk.action = ACTION_CONTINUE
    return 0


cdef int present_ptes(mm_walk *walk, uint64_t *t, int i0, int i1, uint64_t addr,
                      uint64_t next) noexcept nogil:
    (<int64_t*>walk.private)[0] += count_entries(t, i0, i1, E_PRESENT)
    return 0


cdef int present_packed(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                        uint64_t addr, uint64_t next) noexcept nogil:
    (<int64_t*>walk.private)[0] += d_count(d, i0, i1, E_PRESENT)
    return 0


cdef mm_walk_ops PRESENT_OPS = mm_walk_ops(
    pud_leaf=present_huge, pmd_leaf=present_huge, pte_range=present_ptes, pte_hole=NULL,
    post_table=NULL, packed_range=present_packed, repack=False, reads_only=True)


cdef int64_t count_present(pgtables *pt, int lev, int64_t row) noexcept nogil:
    """Present leaf entries in a moved table and below (a huge leaf counts
    once), wherever the table is mapped now; a PTE or PMD table's ``row``
    below 0 is the packed table -1 - row."""
    cdef int64_t total = 0
    cdef int pte = pt.nlev - 1
    cdef const uint64_t *d
    if lev == pte and row < 0:
        return d_count(pool_row(&pt.packed, -1 - row), 0, pt.pools[pte].nent, E_PRESENT)
    if lev == pte - 1 and row < 0:
        # a packed PMD table: all its PTEs present, or none
        d = pool_row(&pt.packed_pmd, -1 - row)
        if (d[1] & PD_EMPTY) or not (d[0] & E_PRESENT):
            return 0
        return <int64_t>(d_hi(d) - d_lo(d)) * pt.pools[pte].nent
    walk_page_table(pt, lev, row, &PRESENT_OPS, &total)
    return total


cdef inline void spin_unlock(pgtables *pt, Ctx *x, uint64_t id) noexcept nogil:
    """Release ``id``; pending moved entries it protected become unsafe."""
    cdef int k = held_slot(x, id)
    cdef unsigned bit
    cdef Held *h
    cdef int64_t *max_hold = <int64_t*>&x.c.lock_max_hold
    if k < 0:
        return
    h = &x.held[k]
    trace(x, EV_UNLOCK, h.cls, h.entries, id, 0)
    if h.entries > max_hold[h.cls]:
        max_hold[h.cls] = h.entries
    bit = 1u << k
    x.heldmask &= ~bit
    if x.rmapmask & bit:
        x.rmapmask &= ~bit
    elif x.nsegs:
        release_segments(pt, x, bit)


cdef void release_segments(pgtables *pt, Ctx *x, unsigned bit) noexcept nogil:
    """The pending moved entries under the lock ``bit`` just released become
    unsafe (out of line: spin_unlock stays small enough to inline)."""
    cdef int64_t i, j = 0
    for i in range(x.nsegs):
        if x.segs[i].mask & bit:
            if x.segs[i].count < 0:
                x.segs[i].count = count_present(pt, x.segs[i].level, x.segs[i].row)
                x.uncounted -= 1
            x.c.unsafe_entries += x.segs[i].count
            # stale translations actually cached on some CPU right now
            x.c.unsafe_windows += count_stale(x, x.segs[i].lo, x.segs[i].hi)
        else:
            x.segs[j] = x.segs[i]
            j += 1
    x.nsegs = j


cdef inline void moved(Ctx *x, int64_t entries, uint64_t lo, uint64_t hi, int64_t present,
                int level, int64_t row) noexcept nogil:
    """Record entries moved under the locks held now."""
    cdef unsigned m = x.heldmask
    cdef unsigned mask = x.heldmask & ~x.rmapmask
    cdef Segment *ns
    while m:
        x.held[__builtin_ctz(m)].entries += entries
        m &= m - 1
    if present == 0:
        return
    if x.nsegs == x.segs_cap:
        ns = <Segment*>realloc(x.segs, (x.segs_cap * 2 + 16) * sizeof(Segment))
        if ns == NULL:
            x.oom = True
            return
        x.segs = ns
        x.segs_cap = x.segs_cap * 2 + 16
    x.segs[x.nsegs].lo = lo
    x.segs[x.nsegs].hi = hi
    x.segs[x.nsegs].count = present
    if present < 0:
        x.uncounted += 1
    x.segs[x.nsegs].level = level
    x.segs[x.nsegs].row = row
    x.segs[x.nsegs].mask = mask
    x.nsegs += 1


cdef inline int64_t count_stale(Ctx *x, uint64_t lo, uint64_t hi) noexcept nogil:
    """tlb_count_range: a scan of every CPU's TLBs, or, from the second count
    since the last flush on (nothing changes the TLBs in between), binary
    searches in a snapshot (policies that flush once at the end count once
    per PMD: thousands of scans otherwise)."""
    x.counts_since_flush += 1
    if not x.snap.ready and x.counts_since_flush >= 2:
        tlb_snapshot_build(x.tlb, &x.snap)  # on failure: scan
    if x.snap.ready:
        return tlb_snapshot_count(x.tlb, &x.snap, lo, hi)
    return tlb_count_range(x.tlb, lo, hi)


cdef inline void flush_tlb_range(Ctx *x, uint64_t start, uint64_t end,
                                 int stride_shift) noexcept nogil:
    """flush_tlb_range(vma, start, end) (flush_pmd/pud_tlb_range with a huge
    stride): runs the arch's rules on the TLBs and clears the pending entries
    it covers."""
    cdef int64_t i, j = 0
    cdef FlushOps before
    if x.log.on:
        before = x.c.flush_ops
    tlb_flush_range(x.rule, x.tlb, &x.c.flush_ops, x.caller, start, end, stride_shift)
    if x.snap.ready:  # (most flushes: none built; no cross-module call)
        tlb_snapshot_free(&x.snap)
    x.counts_since_flush = 0
    trace_flush(x, EV_FLUSH, start, end, stride_shift, &before)
    x.c.flush_calls += 1
    x.c.flush_pages += <int64_t>((end - start) >> x.cfg.page_shift)
    if not (x.heldmask & ~x.rmapmask):
        x.c.flush_unlocked += 1
    if x.nsegs == 1 and x.segs[0].lo >= start and x.segs[0].hi <= end:
        x.uncounted -= x.segs[0].count < 0
        x.nsegs = 0
        return
    for i in range(x.nsegs):
        if not (x.segs[i].lo >= start and x.segs[i].hi <= end):
            x.segs[j] = x.segs[i]
            j += 1
        elif x.segs[i].count < 0:
            x.uncounted -= 1
    x.nsegs = j


cdef void count_pending(pgtables *pt, Ctx *x) noexcept nogil:
    """Count the pending segments still counted lazily, now: their (level,
    row) names a table that re-packing may renumber (the moved table stays
    as it is until the move ends, so the count is the same)."""
    cdef int64_t i
    if x.uncounted == 0:
        return
    for i in range(x.nsegs):
        if x.segs[i].count < 0:
            x.segs[i].count = count_present(pt, x.segs[i].level, x.segs[i].row)
    x.uncounted = 0


# ----------------------------------------------------------------------
# walks (get_old_pud, alloc_new_pud, get_old_pmd, alloc_new_pmd)

cdef uint64_t* get_entry(pgtables *pt, Ctx *x, uint64_t addr, int target, bint alloc,
                         int64_t *row_out) noexcept nogil:
    """The slot at level ``target`` for ``addr`` and the row holding it.

    Without ``alloc``: NULL when the path or the slot itself is none (as
    get_old_pud/get_old_pmd). With ``alloc``: allocates missing tables (as
    alloc_new_pud/alloc_new_pmd); NULL when allocation fails. NULL also for
    a huge leaf above ``target`` (not reachable for anonymous memory).
    """
    cdef int reached
    cdef uint64_t *slot = pt_walk(pt, addr, 0, 0, target, alloc, &reached, row_out,
                                  &x.c.tables_allocated)
    if slot == NULL:
        x.oom = True
        return NULL
    if reached != target or (not alloc and slot[0] == 0):
        return NULL
    return slot


cdef inline uint64_t* slot_of(pgtables *pt, int lev, int64_t row, uint64_t addr) noexcept nogil:
    return pool_row(&pt.pools[lev], row) + pool_index(&pt.pools[lev], pt.shift[lev], addr)


cdef inline uint64_t get_extent(uint64_t old_addr, uint64_t old_end, uint64_t new_addr,
                                uint64_t size) noexcept nogil:
    cdef uint64_t mask = ~(size - 1)
    cdef uint64_t nxt = (old_addr + size) & mask
    cdef uint64_t extent = nxt - old_addr
    if extent > old_end - old_addr:
        extent = old_end - old_addr
    nxt = (new_addr + size) & mask
    if extent > nxt - new_addr:
        extent = nxt - new_addr
    return extent


# ----------------------------------------------------------------------
# whole-entry moves (move_pgt_entry)

cdef inline void unlock_pair(pgtables *pt, Ctx *x, bint took_new, uint64_t new_ptl,
                             bint took_old, uint64_t old_ptl) noexcept nogil:
    """Drop the new page-table lock, then the old one (those this step took)."""
    if took_new:
        spin_unlock(pt, x, new_ptl)
    if took_old:
        spin_unlock(pt, x, old_ptl)


cdef inline void finish_entry_move(pgtables *pt, Ctx *x, uint64_t old_ptl, uint64_t new_ptl,
                            bint took_old, bint took_new, uint64_t old_addr,
                            uint64_t size, bint present, bint dirty,
                            bint leaf, int stride) noexcept nogil:
    """Flush and unlock after one whole-entry move, per the policy.

    Not called for PMD entries under batched-ptl (the batch flushes and
    unlocks); its PUD moves flush per entry like linux-5.11.
    """
    if x.cfg.flush != FL_END:
        if present:
            flush_tlb_range(x, old_addr, old_addr + size, stride)
        unlock_pair(pt, x, took_new, new_ptl, took_old, old_ptl)
    else:
        # pre-4.19 move_huge_pmd: new lock dropped, then a dirty leaf forces
        # the flush under the old lock; otherwise it waits for the end
        if took_new and new_ptl != old_ptl:
            spin_unlock(pt, x, new_ptl)
        if leaf and dirty and x.cfg.dirty_flush_under_lock:
            flush_tlb_range(x, old_addr, old_addr + size, stride)
        elif present:
            x.need_flush = True
        if took_old:
            spin_unlock(pt, x, old_ptl)


cdef inline int take_rmap_locks(Ctx *x) noexcept nogil:
    """take_rmap_locks: the file's i_mmap_rwsem (a VMA with a vm_file),
    then the anon_vma's lock (one with an anon_vma). Returns what it took:
    bit 0 i_mmap, bit 1 anon_vma (a lock held already is not taken again)."""
    cdef int took = 0
    if x.has_file and spin_lock(x, ID_IMMAP):
        took |= 1
    if x.has_anon and spin_lock(x, ID_RMAP):
        took |= 2
    return took


cdef inline void drop_rmap_locks(pgtables *pt, Ctx *x, int took) noexcept nogil:
    """drop_rmap_locks: the anon_vma's lock, then i_mmap_rwsem (those
    ``take_rmap_locks`` took)."""
    if took & 2:
        spin_unlock(pt, x, ID_RMAP)
    if took & 1:
        spin_unlock(pt, x, ID_IMMAP)


cdef inline bint should_take_rmap_locks(Ctx *x, pgt_entry entry) noexcept nogil:
    """Whole page tables always take the rmap locks; huge leaves only when
    the move needs them (mm/mremap.c should_take_rmap_locks)."""
    if entry == NORMAL_PMD or entry == NORMAL_PUD:
        return True
    return x.need_rmap_locks


cdef inline bint move_pgt_entry(pgtables *pt, Ctx *x, pgt_entry entry, uint64_t *old_slot,
                                int64_t old_row, uint64_t *new_slot, int64_t new_row,
                                uint64_t old_addr) noexcept nogil:
    """move_normal_pmd / move_huge_pmd / move_normal_pud / move_huge_pud."""
    cdef uint64_t old_ptl, new_ptl, e
    cdef bint took_old = False, took_new = False
    cdef int took_rmap = 0
    cdef bint normal = entry == NORMAL_PMD or entry == NORMAL_PUD
    cdef int lev = x.cfg.pmd if entry == NORMAL_PMD or entry == HPAGE_PMD else x.cfg.pud
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    if new_slot[0] != 0:
        # "The destination pmd shouldn't be established"
        x.c.whole_moves_refused += 1
        return False
    if should_take_rmap_locks(x, entry):
        took_rmap = take_rmap_locks(x)
    if lev == x.cfg.pmd:
        old_ptl = pmd_lockptr(x, old_row)
        new_ptl = pmd_lockptr(x, new_row)
    else:
        old_ptl = ID_MM           # pud_lock is mm->page_table_lock
        new_ptl = ID_MM
    if not x.batch or lev != x.cfg.pmd:
        took_old = spin_lock(x, old_ptl)
        took_new = spin_lock(x, new_ptl)
    e = old_slot[0]
    old_slot[0] = 0
    if not normal and lev == x.cfg.pmd:
        e |= E_SOFTDIRTY          # move_huge_pmd: move_soft_dirty_pmd
    new_slot[0] = e
    if lev == x.cfg.pmd:
        if normal:
            x.c.normal_pmds_moved += 1
        else:
            x.c.huge_pmds_moved += 1
    elif normal:
        x.c.normal_puds_moved += 1
    else:
        x.c.huge_puds_moved += 1
    trace(x, EV_ENTRY, <int64_t>entry, 1, old_addr, old_addr + size)
    if normal:
        moved(x, 1, old_addr, old_addr + size, -1, lev + 1,
              (-1 - <int64_t>(e >> ADDR_SHIFT)) if is_packed(e) else <int64_t>(e >> ADDR_SHIFT))
    else:
        moved(x, 1, old_addr, old_addr + size, 1 if e & E_PRESENT else 0, 0, 0)
    if not x.batch or lev != x.cfg.pmd:
        # move_normal_* flush with flush_tlb_range; huge leaves with
        # flush_pmd_tlb_range / flush_pud_tlb_range (a huge stride)
        finish_entry_move(pt, x, old_ptl, new_ptl, took_old, took_new, old_addr, size,
                          (e & E_PRESENT) != 0, (e & E_DIRTY) != 0, not normal,
                          x.cfg.page_shift if normal else pt.shift[lev])
    if took_rmap:
        drop_rmap_locks(pt, x, took_rmap)
    return True


# ----------------------------------------------------------------------
# move_ptes

cdef inline void contpte_convert(Ctx *x, uint64_t *t, int64_t b, uint64_t addr, bint fold,
                                 bint set_cont) noexcept nogil:
    """arm64 contpte_convert on the block of ``t`` from index ``b`` mapping
    ``addr``: clear its entries, flush the block (__flush_tlb_range, one
    TLBI per page), repaint them with PTE_CONT set or cleared."""
    cdef int64_t j, n = x.cfg.cont_ptes
    cdef uint64_t size = <uint64_t>n << x.cfg.page_shift
    cdef FlushOps before
    if x.log.on:
        before = x.c.flush_ops
    if fold:
        x.c.contpte_folds += 1
    else:
        x.c.contpte_unfolds += 1
    if not (x.cfg.bbml2_noabort and x.cfg.contpte_bbml2_elide):
        # break-before-make; a CPU with BBML2 and no conflict aborts skips it
        # (83bbd6be7d17): the caller's flush of what it changed follows
        tlb_flush_range(x.rule, x.tlb, &x.c.flush_ops, x.caller, addr, addr + size,
                        x.cfg.page_shift)
        if x.snap.ready:  # (most flushes: none built; no cross-module call)
            tlb_snapshot_free(&x.snap)
        x.counts_since_flush = 0
        trace_flush(x, EV_CONVERT, addr, addr + size, x.cfg.page_shift, &before)
    for j in range(b, b + n):
        if t[j]:
            t[j] = (t[j] | E_CONT) if set_cont else (t[j] & ~(<uint64_t>E_CONT))


cdef void batched_pending(Ctx *x) noexcept nogil:
    """flush_tlb_batched_pending(mm) under the PTE locks, before the entries
    move: reclaim's deferred flush of this mm, done now (out of line: it is
    rare)."""
    cdef FlushOps before
    if x.log.on:
        before = x.c.flush_ops
    if not flush_tlb_batched_pending(x.rule, x.tlb, &x.c.flush_ops, x.caller):
        return  # (a kernel before 4.13 never calls it)
    x.c.batched_pending_flushes += 1
    if x.snap.ready:
        tlb_snapshot_free(&x.snap)
    x.counts_since_flush = 0
    if x.tlb.batched_pending_barrier:  # a DSB: nothing invalidated (an empty range)
        trace_flush(x, EV_BATCHED, 0, 0, x.cfg.page_shift, &before)
        return
    x.nsegs = 0  # every moved entry's stale translation went with the mm's
    x.uncounted = 0
    trace_flush(x, EV_BATCHED, 0, flush_mm_end(), x.cfg.page_shift, &before)


cdef inline void try_fold(Ctx *x, uint64_t *n, int64_t k, int64_t nidx0,
                          uint64_t new_addr) noexcept nogil:
    """contpte_try_fold after a single set_pte_at of ``n[k]``: when it is the
    last entry of its block, the block folds if block_foldable."""
    cdef int64_t c = x.cfg.cont_ptes
    cdef int64_t b = k - (c - 1)  # may be < 0: the block starts before the extent, in the same table
    if (nidx0 + k) % c == c - 1 and block_foldable(n, b, <int>c):
        contpte_convert(x, n, b, new_addr + (<uint64_t>b << x.cfg.page_shift), True, True)


cdef inline void move_pte(uint64_t *o, uint64_t *n, int64_t k, int64_t *npresent,
                          int64_t *ndirty) noexcept nogil:
    """One entry of move_ptes: get_and_clear the old, set the new."""
    cdef uint64_t e = o[k]
    if e & E_PRESENT:
        npresent[0] += 1
        if e & E_DIRTY:
            ndirty[0] += 1
    n[k] = e | E_SOFTDIRTY           # move_soft_dirty_pte
    o[k] = 0                         # get_and_clear


cdef struct packed_plan:
    # move_ptes of packed tables, worked out before the locks are taken:
    # each table's run afterwards, and what the per-entry loop would count
    uint64_t src_tmpl
    uint64_t dst_tmpl
    uint64_t src_step
    uint64_t dst_step
    int src_lo
    int src_hi
    int dst_lo
    int dst_hi
    int64_t nmoved
    int64_t npresent
    int64_t ndirty
    bint last_present


cdef inline bint never_folds(uint64_t tmpl, int64_t c) noexcept nogil:
    """Whether a run of ``tmpl`` entries is outside contpte's reach: none
    folded, and none that could fold (the zero page, or folios smaller
    than a block: block_foldable). Its entries then move as with no
    contiguous blocks at all, and the packed move stands for the loop."""
    return not (tmpl & E_CONT) and ((tmpl & E_ZERO) != 0
                                    or (<int64_t>1 << ((tmpl & E_ORDER) >> E_ORDER_SHIFT)) < c)


cdef bint plan_packed_move(pgtables *pt, uint64_t oval, uint64_t nval, int64_t oidx0,
                           int64_t nidx0, int64_t npte, packed_plan *p) noexcept nogil:
    """Whether moving entries [oidx0, oidx0 + npte) of the packed table
    ``oval`` (packed: the caller has seen it) to [nidx0, ...) of the table
    ``nval``, when that is packed, leaves each one
    run (the source's cut at one end at most, the destination's empty or
    joined end to end by the same rule), and if so the plan ``p``. Each
    moved entry is the old one with soft-dirty set (move_soft_dirty_pte)."""
    cdef uint64_t *sd
    cdef uint64_t *dd
    cdef int64_t slo, shi, a, b
    cdef uint64_t t
    if not is_packed(nval):
        return False
    sd = desc_of(pt, oval)
    dd = desc_of(pt, nval)
    slo = d_lo(sd)
    shi = d_hi(sd)
    a = slo if slo > oidx0 else oidx0
    b = shi if shi < oidx0 + npte else oidx0 + npte
    p.src_tmpl, p.src_lo, p.src_hi, p.src_step = sd[0], <int>slo, <int>shi, d_step(sd)
    p.dst_tmpl, p.dst_lo, p.dst_hi, p.dst_step = dd[0], d_lo(dd), d_hi(dd), d_step(dd)
    p.nmoved = p.npresent = p.ndirty = 0
    p.last_present = False
    if sd[1] == 0 or a >= b:
        return True  # no entry to move
    if a > slo and b < shi:
        return False
    if a == slo and b == shi:
        p.src_lo = p.src_hi = 0
    elif a == slo:
        p.src_lo = <int>b
    else:
        p.src_hi = <int>a
    t = (sd[0] | E_SOFTDIRTY) - ((<uint64_t>((nidx0 - oidx0) * <int64_t>p.src_step)) << ADDR_SHIFT)
    a += nidx0 - oidx0
    b += nidx0 - oidx0
    if dd[1] == 0:
        p.dst_tmpl, p.dst_lo, p.dst_hi, p.dst_step = t, <int>a, <int>b, p.src_step
    elif p.dst_step != p.src_step or dd[0] != t:
        return False
    elif b == p.dst_lo:
        p.dst_lo = <int>a
    elif a == p.dst_hi:
        p.dst_hi = <int>b
    else:
        return False
    p.nmoved = b - a
    if sd[0] & E_PRESENT:
        p.npresent = p.nmoved
        p.ndirty = p.nmoved if sd[0] & E_DIRTY else 0
        p.last_present = slo <= oidx0 + npte - 1 < shi
    return True


cdef int move_ptes(pgtables *pt, Ctx *x, uint64_t *old_pmd, uint64_t *new_pmd,
                   uint64_t old_addr, uint64_t new_addr, uint64_t extent) noexcept nogil:
    """move_ptes: one extent's PTEs from the old table to the new. Returns
    0, or -1 when a packed table could not be expanded (out of memory)."""
    cdef int64_t old_row, new_row
    cdef uint64_t *o = NULL
    cdef uint64_t *n = NULL
    cdef int64_t k, npte = <int64_t>(extent >> x.cfg.page_shift)
    cdef int64_t nmoved = 0, npresent = 0, ndirty = 0, nlookups = 0
    cdef int64_t c = x.cfg.cont_ptes, nr, j, b, oidx0, nidx0
    # f822a9a81a31 before 0b5be138ce00: vm_normal_folio for every present PTE
    # mremap_folio_pte_batch is called on (not the extent's last: max_nr 1)
    cdef bint every = x.cfg.pte_batch and x.cfg.pte_batch_every_pte
    cdef uint64_t e, f
    cdef uint64_t old_ptl, new_ptl
    cdef bint took_old, took_new, packed
    cdef int took_rmap = 0
    cdef uint64_t tbl_lo
    cdef packed_plan plan
    # the extent's first entries' indexes in their tables (contpte blocks
    # are aligned in the table, and may start before the extent)
    oidx0 = pool_index(&pt.pools[x.cfg.pte], pt.shift[x.cfg.pte], old_addr)
    nidx0 = pool_index(&pt.pools[x.cfg.pte], pt.shift[x.cfg.pte], new_addr)
    # packed tables whose runs stay runs move in O(1); else both become rows
    # (not within one table: the source's cut and the destination's join
    # would be two writes of one descriptor)
    packed = is_packed(old_pmd[0]) and old_pmd[0] != new_pmd[0] \
        and (c == 0 or never_folds(desc_of(pt, old_pmd[0])[0], c)) \
        and plan_packed_move(pt, old_pmd[0], new_pmd[0], oidx0, nidx0, npte, &plan)
    if not packed:
        if (is_packed(old_pmd[0]) and expand_packed(pt, old_pmd) < 0) \
                or (is_packed(new_pmd[0]) and expand_packed(pt, new_pmd) < 0):
            x.oom = True
            return -1
        o = slot_of(pt, x.cfg.pte, <int64_t>(old_pmd[0] >> ADDR_SHIFT), old_addr)
        n = slot_of(pt, x.cfg.pte, <int64_t>(new_pmd[0] >> ADDR_SHIFT), new_addr)
    old_row = pte_table_id(old_pmd[0])
    new_row = pte_table_id(new_pmd[0])
    old_ptl = pte_lockptr(x, old_row)
    new_ptl = pte_lockptr(x, new_row)
    x.c.move_ptes_calls += 1
    if x.need_rmap_locks:
        took_rmap = take_rmap_locks(x)
    took_old = spin_lock(x, old_ptl)
    took_new = spin_lock(x, new_ptl)
    if x.tlb.tlb_flush_batched and x.tlb.batched_pending_call:
        batched_pending(x)
    if packed:
        d_set(desc_of(pt, old_pmd[0]), plan.src_tmpl, plan.src_lo, plan.src_hi, plan.src_step)
        d_set(desc_of(pt, new_pmd[0]), plan.dst_tmpl, plan.dst_lo, plan.dst_hi, plan.dst_step)
        nmoved, npresent, ndirty = plan.nmoved, plan.npresent, plan.ndirty
        if every:
            nlookups = npresent - (1 if plan.last_present else 0)
        k = npte
    elif c == 0:
        # no contiguous blocks: the plain loop (kept apart: it is the hot one)
        if every:
            nlookups = -1 if o[npte - 1] & E_PRESENT else 0
        for k in range(npte):
            if o[k]:
                move_pte(o, n, k, &npresent, &ndirty)
                nmoved += 1
        if every:
            nlookups += npresent
        k = npte
    else:
        k = 0
    while k < npte:
        e = o[k]
        if e == 0:
            k += 1
            continue
        if c and (e & E_CONT) and x.cfg.pte_batch and (oidx0 + k) % c != c - 1:
            # mremap_folio_pte_batch where pte_batch_hint > 1 (not a block's
            # last entry): the folio's PTEs from here, within the extent;
            # folio_pte_batch does not ignore PTE_CONT, so the batch also
            # ends where the contiguous run does
            nr = 1
            while k + nr < npte and same_folio_next(o[k + nr - 1], o[k + nr]) \
                    and not ((o[k + nr - 1] ^ o[k + nr]) & E_CONT):
                nr += 1
            # get_and_clear_full_ptes unfolds only the blocks it covers partly
            b = (oidx0 + k) - (oidx0 + k) % c - oidx0
            if (oidx0 + k) % c and (o[k] & E_CONT):
                contpte_convert(x, o, b, old_addr + (<uint64_t>(b) << x.cfg.page_shift),
                                False, False)
            b = (oidx0 + k + nr - 1) - (oidx0 + k + nr - 1) % c - oidx0
            if (oidx0 + k + nr) % c and (o[k + nr - 1] & E_CONT):
                contpte_convert(x, o, b, old_addr + (<uint64_t>(b) << x.cfg.page_shift),
                                False, False)
            if k < npte - 1:
                nlookups += 1  # pte_batch_hint > 1 and max_nr > 1: the folio looked up
            if nr > 1:
                x.c.pte_batches += 1
                x.c.ptes_batched += nr
            for j in range(k, k + nr):
                f = o[j]
                npresent += 1
                if f & E_DIRTY:
                    ndirty += 1
                # set_ptes (contpte_set_ptes): PTE_CONT on each block whose
                # address and frames are both aligned and fully written
                n[j] = (f & ~(<uint64_t>E_CONT)) | E_SOFTDIRTY
                o[j] = 0
            for j in range(k, k + nr):
                if (nidx0 + j) % c == 0 and j + c <= k + nr \
                        and (n[j] >> ADDR_SHIFT) % <uint64_t>c == 0:
                    for b in range(j, j + c):
                        n[b] |= E_CONT
            nmoved += nr
            k += nr
            continue
        if every and (e & E_PRESENT) and k < npte - 1:
            nlookups += 1
        if c and (e & E_CONT):
            # ptep_get_and_clear on one entry of a block: contpte_try_unfold
            b = (oidx0 + k) - (oidx0 + k) % c - oidx0
            contpte_convert(x, o, b, old_addr + (<uint64_t>(b) << x.cfg.page_shift),
                            False, False)
        move_pte(o, n, k, &npresent, &ndirty)
        nmoved += 1
        if c:
            try_fold(x, n, k, nidx0, new_addr)  # set_pte_at: contpte_try_fold
        k += 1
    x.c.ptes_moved += nmoved
    x.c.folio_lookups += nlookups
    # a ptes event's "what": the folio lookups among its entries
    trace(x, EV_PTES, nlookups, nmoved, old_addr, old_addr + extent)
    moved(x, nmoved, old_addr, old_addr + extent, npresent, 0, 0)
    if x.cfg.flush == FL_END:
        if took_new and new_ptl != old_ptl:
            spin_unlock(pt, x, new_ptl)
        if ndirty and x.cfg.dirty_flush_under_lock:
            flush_tlb_range(x, old_addr, old_addr + extent, x.cfg.page_shift)
        elif npresent:
            x.need_flush = True
        if took_old:
            spin_unlock(pt, x, old_ptl)
    else:
        # since eb66ae030829: flush while both PTE locks are held (the
        # batched policy too: its PTE extents flush before the PTE lock drops)
        if npresent:
            flush_tlb_range(x, old_addr, old_addr + extent, x.cfg.page_shift)
        unlock_pair(pt, x, took_new, new_ptl, took_old, old_ptl)
    if took_rmap:
        drop_rmap_locks(pt, x, took_rmap)
    # An emptied old table that free_pgtables will free after the move is
    # released now, so the simulator's memory stays near one copy of the
    # tables (the kernel's own accounting is reported separately).
    tbl_lo = old_addr & ~(x.cfg.pmd_size - 1)
    if x.free_hi > x.free_lo and tbl_lo >= x.free_lo and tbl_lo + x.cfg.pmd_size <= x.free_hi \
            and pte_table_empty(pt, old_pmd[0]):
        free_pte_table(pt, old_pmd)
        x.c.tables_freed_early += 1
    return 0


# ----------------------------------------------------------------------
# move_page_tables

cdef int64_t ensure_table(pgtables *pt, Ctx *x, uint64_t *slot, int lev,
                          bint packed) noexcept nogil:
    """The row of the level-``lev`` table ``slot`` points to, allocating it
    if ``slot`` is empty (pmd_alloc / pte_alloc; a PTE table packed when
    ``packed``: new_pte_table). -1 if allocation fails; a PTE table's row
    is not returned (0: it may be packed)."""
    cdef int64_t row = 0
    if slot[0] != 0:
        return <int64_t>(slot[0] >> ADDR_SHIFT) if lev != x.cfg.pte else 0
    if lev == x.cfg.pte:
        if new_pte_table(pt, slot, packed) < 0:
            row = -1
    else:
        row = alloc_row(pt, lev)
        if row >= 0:
            slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
    if row < 0:
        x.oom = True
        return -1
    x.c.tables_allocated += 1
    return row


cdef int pmd_step(pgtables *pt, Ctx *x, uint64_t *old_pud, uint64_t *new_pud,
                  uint64_t old_addr, uint64_t new_addr,
                  uint64_t extent) noexcept nogil:
    """One PMD extent of the loop (the code after get_extent(NORMAL_PMD)).

    ``old_pud``/``new_pud`` are the pud slots above old_addr/new_addr (the
    walk down to them is shared by every PMD extent of one PUD extent).
    Returns 0 to continue, -1 to break (allocation failed).
    """
    cdef int64_t old_row, new_row
    cdef uint64_t *old_pmd
    cdef uint64_t *new_pmd
    cdef uint64_t done, step, limit
    # get_old_pmd
    if old_pud[0] == 0 or (old_pud[0] & E_LEAF):
        return 0
    old_row = <int64_t>(old_pud[0] >> ADDR_SHIFT)
    old_pmd = slot_of(pt, x.cfg.pmd, old_row, old_addr)
    if old_pmd[0] == 0:
        return 0
    new_row = ensure_table(pt, x, new_pud, x.cfg.pmd, False)  # alloc_new_pmd
    if new_row < 0:
        return -1
    new_pmd = slot_of(pt, x.cfg.pmd, new_row, new_addr)
    if old_pmd[0] & E_LEAF:
        if extent == x.cfg.pmd_size and move_pgt_entry(pt, x, HPAGE_PMD, old_pmd, old_row, new_pmd,
                                                    new_row, old_addr):
            return 0
        if split_huge_pmd(pt, x.cfg.pmd, old_pmd) < 0:     # split_huge_pmd
            x.oom = True
            return -1
        x.c.huge_pmds_split += 1
        x.c.tables_allocated += 1
        trace(x, EV_SPLIT, x.cfg.pmd, 1, old_addr & ~(x.cfg.pmd_size - 1),
              (old_addr & ~(x.cfg.pmd_size - 1)) + x.cfg.pmd_size)
        # __split_huge_pmd_locked: pmdp_invalidate flushes the huge entry
        flush_tlb_range(x, old_addr & ~(x.cfg.pmd_size - 1),
                        (old_addr & ~(x.cfg.pmd_size - 1)) + x.cfg.pmd_size, pt.shift[x.cfg.pmd])
    elif x.cfg.move_pmd and not x.no_table_moves and extent == x.cfg.pmd_size:
        if move_pgt_entry(pt, x, NORMAL_PMD, old_pmd, old_row, new_pmd, new_row, old_addr):
            return 0
    if old_pmd[0] == 0:
        return 0
    # pte_alloc: packed only for a packed source (a row's entries would
    # expand it at once)
    if ensure_table(pt, x, new_pmd, x.cfg.pte, is_packed(old_pmd[0])) < 0:
        return -1
    limit = x.cfg.pte_extent_limit << x.cfg.page_shift
    if limit == 0 or extent <= limit:
        return move_ptes(pt, x, old_pmd, new_pmd, old_addr, new_addr, extent)
    # before 4.18 (LATENCY_LIMIT, removed by Mel Gorman's "mremap: Remove
    # LATENCY_LIMIT from mremap to reduce the number of TLB shootdowns"):
    # at most LATENCY_LIMIT bytes per move_ptes, each a loop iteration
    done = 0
    while done < extent:
        if old_pmd[0] == 0:
            break  # the old table was emptied and freed: get_old_pmd finds none
        step = extent - done if extent - done < limit else limit
        if move_ptes(pt, x, old_pmd, new_pmd, old_addr + done, new_addr + done, step) < 0:
            return -1
        done += step
    return 0


cdef int pmd_loop(pgtables *pt, Ctx *x, uint64_t *old_pud, uint64_t *new_pud,
                  uint64_t old_addr, uint64_t new_addr,
                  uint64_t end, uint64_t *done) noexcept nogil:
    """The PMD extents inside one PUD extent (one kernel iteration each);
    ``done`` follows the old address moved up to (pmc_progress)."""
    cdef uint64_t extent
    while old_addr < end:
        extent = get_extent(old_addr, end, new_addr, x.cfg.pmd_size)
        if pmd_step(pt, x, old_pud, new_pud, old_addr, new_addr, extent) < 0:
            return -1
        old_addr += extent
        new_addr += extent
        done[0] = old_addr
    return 0


cdef int batch_pmds(pgtables *pt, Ctx *x, uint64_t *old_pud, uint64_t *new_pud,
                    uint64_t old_addr, uint64_t new_addr,
                    uint64_t span, uint64_t *done) noexcept nogil:
    """batched-ptl: one PUD extent (one old and one new PMD table) under one
    hold of the PMD locks, one flush for every whole-entry move in it."""
    cdef int64_t old_row, new_row
    cdef uint64_t old_ptl, new_ptl, end = old_addr + span, extent, lo = 0, hi = 0
    cdef bint took_old, took_new, any_whole = False
    cdef int took_rmap = 0
    cdef int64_t before
    cdef int rc = 0
    if old_pud[0] == 0 or (old_pud[0] & E_LEAF):
        return 0
    old_row = <int64_t>(old_pud[0] >> ADDR_SHIFT)
    # allocate the new PMD table before taking the lock
    new_row = ensure_table(pt, x, new_pud, x.cfg.pmd, False)
    if new_row < 0:
        return -1
    old_ptl = pmd_lockptr(x, old_row)
    new_ptl = pmd_lockptr(x, new_row)
    took_rmap = take_rmap_locks(x)
    took_old = spin_lock(x, old_ptl)
    took_new = spin_lock(x, new_ptl)
    while old_addr < end:
        extent = get_extent(old_addr, end, new_addr, x.cfg.pmd_size)
        before = x.c.normal_pmds_moved + x.c.huge_pmds_moved
        if pmd_step(pt, x, old_pud, new_pud, old_addr, new_addr, extent) < 0:
            rc = -1
            break
        done[0] = old_addr + extent
        if x.c.normal_pmds_moved + x.c.huge_pmds_moved != before:
            if not any_whole:
                lo = old_addr
            any_whole = True
            hi = old_addr + extent
        old_addr += extent
        new_addr += extent
    if any_whole:
        flush_tlb_range(x, lo, hi, x.cfg.page_shift)
    unlock_pair(pt, x, took_new, new_ptl, took_old, old_ptl)
    if took_rmap:
        drop_rmap_locks(pt, x, took_rmap)
    return rc


cdef inline void repack_pud(pgtables *pt, uint64_t *slot) noexcept nogil:
    """try_pack_pmd on the PMD table ``*slot`` points to, if it is a row."""
    if slot[0] != 0 and not (slot[0] & (E_LEAF | E_PACKED)):
        try_pack_pmd(pt, slot)


cdef uint64_t _move_page_tables(pgtables *pt, Ctx *x, uint64_t old_addr, uint64_t new_addr,
                                uint64_t old_end) noexcept nogil:
    """The loop of move_page_tables; returns where it stopped (old side)."""
    cdef uint64_t extent, done
    cdef int64_t old_row, new_row
    cdef uint64_t *old_pud
    cdef uint64_t *new_pud
    cdef int rc
    while old_addr < old_end:
        extent = get_extent(old_addr, old_end, new_addr, x.cfg.pud_size)
        old_pud = get_entry(pt, x, old_addr, x.cfg.pud, False, &old_row)
        if old_pud != NULL:
            new_pud = get_entry(pt, x, new_addr, x.cfg.pud, True, &new_row)
            if new_pud == NULL:
                break
            if old_pud[0] & E_LEAF:
                if extent == x.cfg.pud_size and move_pgt_entry(pt, x, HPAGE_PUD, old_pud, old_row,
                                                           new_pud, new_row, old_addr):
                    old_addr += extent
                    new_addr += extent
                    continue
                # Linux never gets here (DAX refuses unaligned moves of PUD
                # leaves); split it as split_huge_pmd would rather than drop it
                if split_huge_pmd(pt, x.cfg.pud, old_pud) < 0:
                    x.oom = True
                    break
                x.c.huge_puds_split += 1
                x.c.tables_allocated += 1
                trace(x, EV_SPLIT, x.cfg.pud, 1, old_addr, old_addr + x.cfg.pud_size)
                flush_tlb_range(x, old_addr, old_addr + x.cfg.pud_size, pt.shift[x.cfg.pud])
            elif x.cfg.move_pud and not x.no_table_moves and extent == x.cfg.pud_size:
                if move_pgt_entry(pt, x, NORMAL_PUD, old_pud, old_row, new_pud, new_row,
                                  old_addr):
                    old_addr += extent
                    new_addr += extent
                    continue
            done = old_addr
            # the PMD extents below write the PMD tables: packed ones become rows
            if (is_packed(old_pud[0]) and expand_packed_pmd(pt, old_pud) < 0) \
                    or (is_packed(new_pud[0]) and expand_packed_pmd(pt, new_pud) < 0):
                x.oom = True
                return done
            if x.batch:
                rc = batch_pmds(pt, x, old_pud, new_pud, old_addr, new_addr, extent, &done)
            else:
                rc = pmd_loop(pt, x, old_pud, new_pud, old_addr, new_addr, old_addr + extent,
                              &done)
            if pt.pack:
                # and are packed again where they are uniform now
                count_pending(pt, x)
                repack_pud(pt, old_pud)
                repack_pud(pt, new_pud)
            if rc < 0:
                return done
        old_addr += extent
        new_addr += extent
    return old_addr


# ----------------------------------------------------------------------
# the Python boundary

cdef class PagetableMoveControl:
    """One move, as the kernel's struct pagetable_move_control, and the
    space's ``mremap_config`` (arch geometry and policy), fixed at
    construction: ``PagetableMoveControl(config)`` with ``config`` a dict of
    mremap_config's fields (see _move.pxd), converted to the struct once.

    Per move, ``start`` sets ``old_addr``, ``new_addr``, ``len_in`` (and
    ``old_end`` from them), ``need_rmap_locks``, ``has_anon``, ``caller``
    (the CPU running mremap), ``has_file``, ``free_lo`` and ``free_hi`` (a window where
    emptied old PTE tables may be freed at once).
    """

    def __init__(self, config):
        cdef mremap_config cfg = config
        if not 0 <= cfg.pud < cfg.pmd < cfg.pte < 5:
            raise ValueError("mremap_config: need pud < pmd < pte level indices within 5 levels")
        if cfg.flush not in (FL_EXTENT, FL_TABLE, FL_END):
            raise ValueError(f"mremap_config: flush must be one of {sorted(FLUSH_MODE.values())}")
        if cfg.pmd_size == 0 or cfg.pmd_size & (cfg.pmd_size - 1) or \
                cfg.pud_size & (cfg.pud_size - 1) or cfg.pud_size <= cfg.pmd_size:
            raise ValueError("mremap_config: pmd_size and pud_size must be powers of two, pud larger")
        if not cfg.contpte:
            cfg.cont_ptes = 0  # the engine folds no block: read cont_ptes alone
        self.cfg = cfg

    @property
    def config(self):
        """The mremap_config this control was built with."""
        return self.cfg

    def start(self, uint64_t old_addr, uint64_t new_addr, uint64_t len_in, *,
              bint need_rmap_locks, bint has_anon, int caller, uint64_t free_lo=0,
              uint64_t free_hi=0, bint uffd_no_table_moves=False, bint has_file=False):
        """Begin a move of ``len_in`` bytes from ``old_addr`` to ``new_addr``
        (PAGETABLE_MOVE_CONTROL), setting every per-move field at once.
        ``uffd_no_table_moves``: uffd_supports_page_table_move() is false
        (a VMA registered with a userfaultfd without UFFD_FEATURE_EVENT_REMAP,
        0cef0bb836e3): move_normal_pmd/pud refuse, entries move one by one.
        ``has_file``: the VMA maps a file, so take_rmap_locks takes its
        i_mmap_rwsem too (``has_anon``: its anon_vma's lock)."""
        self.begin(old_addr, new_addr, len_in, need_rmap_locks, has_anon, caller, free_lo,
                   free_hi, uffd_no_table_moves, has_file)

    cdef void begin(self, uint64_t old_addr, uint64_t new_addr, uint64_t len_in,
                    bint need_rmap_locks, bint has_anon, int caller, uint64_t free_lo,
                    uint64_t free_hi, bint uffd_no_table_moves, bint has_file) noexcept:
        """``start``, for C callers."""
        self.uffd_no_table_moves = uffd_no_table_moves
        self.old_addr = old_addr
        self.new_addr = new_addr
        self.len_in = len_in
        self.old_end = old_addr + len_in
        self.need_rmap_locks = need_rmap_locks
        self.has_anon = has_anon
        self.has_file = has_file
        self.caller = caller
        self.free_lo = free_lo
        self.free_hi = free_hi

    def try_realign_addr(self, uint64_t old_vma_start, uint64_t old_prev_end,
                         uint64_t new_vma_start, uint64_t new_prev_end):
        """try_realign_addr(pmc, PMD_MASK) (af8ca1c14906): align old_addr
        and new_addr down to their PMD when they are mutually misaligned by
        the same offset, the move spans past the next PMD boundary, both
        VMAs start at them, and no mapping lies between each PMD boundary
        and its VMA (``*_prev_end``: the end of the VMA below, 0 if none).
        Returns whether it realigned."""
        cdef uint64_t mask = self.cfg.pmd_size - 1
        cdef uint64_t old_align = self.old_addr & mask
        if not self.cfg.realign or not old_align:
            return False
        # can_realign_addr
        if self.len_in < mask + 1 - old_align or old_align != (self.new_addr & mask):
            return False
        # can_align_down, for the old and the new VMA
        if old_vma_start != self.old_addr or new_vma_start != self.new_addr:
            return False
        if old_prev_end > (self.old_addr & ~mask) or new_prev_end > (self.new_addr & ~mask):
            return False
        self.old_addr &= ~mask
        self.new_addr &= ~mask
        return True


def move_page_tables(PageTables tables not None, Tlbs tlbs not None,
                     PagetableMoveControl pmc not None, bint trace=False):
    """Move the entries of [pmc.old_addr, pmc.old_end) to pmc.new_addr.

    Returns (bytes moved, as pmc_progress, the move's record, the trace):
    the record is the C struct move_stats as an int64 array
    (``.view(MOVE_DTYPE)`` names it); the trace is None, or with ``trace``
    the events in order (an EVENT_DTYPE array) and the flush operations of
    each flush and contpte_convert event (an int64 array, one row each,
    columns in FlushOps' order); None too when the trace ran out of memory
    (the move itself goes on).
    """
    cdef move_stats c
    cdef uint64_t moved
    events = move_tables(tables, tlbs, pmc, trace, &c, &moved)
    rec = cnp.PyArray_EMPTY(1, &MOVE_WORDS, cnp.NPY_INT64, 0)
    memcpy(cnp.PyArray_DATA(rec), &c, sizeof(move_stats))
    return moved, rec, events


cdef object move_tables(PageTables tables, Tlbs tlbs, PagetableMoveControl pmc, bint trace,
                        move_stats *rec, uint64_t *moved):
    """move_page_tables for C callers: the record into ``rec``, the bytes
    moved into ``moved``; returns the trace (see move_page_tables)."""
    cdef Ctx x
    cdef pgtables *pt = &tables.pgt
    cdef mremap_config *cfg = &pmc.cfg
    cdef uint64_t old_end = pmc.old_end, reached, old_addr = pmc.old_addr
    cdef uint64_t length = pmc.len_in
    cdef uint64_t orig_old_addr = old_end - length
    if pt.nlev != cfg.pte + 1 or pt.shift[cfg.pte] != cfg.page_shift \
            or (<uint64_t>1) << pt.shift[cfg.pmd] != cfg.pmd_size:
        raise ValueError("move_page_tables: the page tables do not match the control's geometry")
    if not 0 <= pmc.caller < tlbs.s.ncpu:
        raise ValueError(f"caller must be in 0..{tlbs.s.ncpu - 1}, not {pmc.caller}")
    if old_addr > orig_old_addr or orig_old_addr - old_addr >= cfg.pmd_size \
            or old_end < orig_old_addr:
        raise ValueError("move_page_tables: old_addr must lie in the PMD below the move's start")
    memset(&x, 0, sizeof(Ctx))
    x.cfg = cfg[0]
    x.batch = cfg.flush == FL_TABLE
    x.need_rmap_locks = pmc.need_rmap_locks
    x.no_table_moves = pmc.uffd_no_table_moves
    x.has_anon = pmc.has_anon
    x.has_file = pmc.has_file
    x.free_lo = pmc.free_lo
    x.free_hi = pmc.free_hi
    x.tlb = &tlbs.s
    x.rule = &tlbs.rule
    x.caller = pmc.caller
    x.log.on = trace
    x.segs_cap = 64
    x.segs = <Segment*>malloc(x.segs_cap * sizeof(Segment))
    if x.segs == NULL:
        raise MemoryError()
    logged = None
    try:
        with nogil:
            reached = old_addr
            if length:
                reached = _move_page_tables(pt, &x, old_addr, pmc.new_addr, old_end)
                if x.need_flush:
                    # flush_tlb_range(vma, old_end - len, old_addr) after unlocking
                    flush_tlb_range(&x, orig_old_addr, reached, x.cfg.page_shift)
        if trace:
            logged = log_arrays(&x.log)
    finally:
        free(x.segs)
        log_free(&x.log)
        tlb_snapshot_free(&x.snap)
    if x.oom and reached >= old_end:
        raise MemoryError("out of memory while tracking moved entries")
    rec[0] = x.c
    moved[0] = reached - orig_old_addr if reached > orig_old_addr else 0
    if moved[0] > length:
        moved[0] = length
    return logged


def finish_flush(Tlbs tlbs not None, int caller, uint64_t lo, uint64_t hi, int stride_shift,
                 bint freed_tables, cnp.ndarray words not None, bint trace=False,
                 bint batched=False):
    """tlb_finish_mmu's flush of an mremap's unmap, counted into the call's
    record ``words`` (a writable int64 array of MOVE_WORDS words, as
    move_page_tables returns): its operations into ``flush_ops``, one more
    ``unmap_flushes``. ``freed_tables``: page tables were freed (the
    mmu_gather's freed_tables). With ``batched``, instead, zap_pte_range's
    flush_tlb_batched_pending (one more ``batched_pending_flushes`` if one
    was pending; ``lo``, ``hi``, ``freed_tables`` unused). Returns, with
    ``trace``, the operations it issued (an int64 row in FlushOps' order),
    else None."""
    cdef move_stats *c
    cdef FlushOps before
    cdef cnp.npy_intp n = OPS_WORDS
    cdef int i
    if cnp.PyArray_TYPE(words) != cnp.NPY_INT64 or cnp.PyArray_SIZE(words) != MOVE_WORDS \
            or not cnp.PyArray_ISCARRAY(words):  # (C-contiguous, aligned, writeable)
        raise ValueError("finish_flush: words must be a writable move record (MOVE_WORDS int64)")
    tlbs.check_flush(caller, stride_shift)
    c = <move_stats*>cnp.PyArray_DATA(words)
    before = c.flush_ops
    if batched:
        if flush_tlb_batched_pending(&tlbs.rule, &tlbs.s, &c.flush_ops, caller):
            c.batched_pending_flushes += 1
    else:
        tlb_flush_gather(&tlbs.rule, &tlbs.s, &c.flush_ops, caller, lo, hi, stride_shift,
                         freed_tables)
        c.unmap_flushes += 1
    if not trace:
        return None
    row = cnp.PyArray_EMPTY(1, &n, cnp.NPY_INT64, 0)
    for i in range(OPS_WORDS):
        (<int64_t*>cnp.PyArray_DATA(row))[i] = (<int64_t*>&c.flush_ops)[i] - \
            (<int64_t*>&before)[i]
    return row
