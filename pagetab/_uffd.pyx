# cython: language_level=3
"""UFFDIO_MOVE below the VMA checks (mm/userfaultfd.c move_pages's loop,
move_pages_pte, move_present_pte(s), move_zeropage_pte; mm/huge_memory.c
move_pages_huge_pmd, split_huge_pmd; split_folio's remap).

``move_calls`` makes one or many UFFDIO_MOVE calls (their VMAs checked by
``userfaultfd.py``); each walks its range PMD by PMD as the kernel's
move_pages() does (``move_range``), allocating tables, moving whole THPs or
splitting them, and moving PTEs, without Python objects and with the GIL
released. It flushes as the policy
says: one ptep_clear_flush per moved page (6.8-6.17), or one
flush_tlb_range per batch of present small folios within a page table
(50944692052b "userfaultfd: opportunistic TLB-flush batching for present
pages in MOVE", Linux 6.18; <20250816191123.3601561-1-lokeshgidra@google.com>).
A large folio stops it: ``userfaultfd.py`` finds the folio's pages through
the VMAs (the rmap walk) and ``split_folio`` splits it, then the move goes on.
With ``trace`` it records its events as mremap's engine does (``_move``'s
``event_log``): each double_pt_lock (both PTE tables' locks, or both PMD
tables' for a THP) and its unlock, the folio and anon_vma locks of each
run as one rmap-class lock event counting them (its ``entries``), the
pages moved under it with their folio lookups, each flush with its
operations, each split_huge_pmd.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from pagetab._flush cimport FlushOps, Tlbs, tlb_flush_range
from pagetab._move cimport (
    EV_ENTRY, EV_FLUSH, EV_LOCK, EV_PTES, EV_SPLIT, EV_UNLOCK, HPAGE_PMD, LK_PMD, LK_PTE,
    LK_RMAP, LOCK_ID_PMD, LOCK_ID_PTE, LOCK_ID_RMAP, LOCK_ID_SHIFT, event_log, log_arrays,
    log_event, log_flush, log_free,
)
from pagetab._tlb cimport tlb_count_range
from pagetab._huge_memory cimport split_huge_pmd
from pagetab._persist cimport is_written, mark_written
from pagetab._pgtable cimport (
    ADDR_SHIFT, E_CONT, E_DIRTY, E_LEAF, E_ORDER, E_ORDER_SHIFT, E_PRESENT, E_READ,
    E_SOFTDIRTY, E_WRITE, E_ZERO, pgtables, pt_walk,
)
from pagetab._tables cimport PageTables

import errno as _errno

# What a move did; the field names are the names Python sees.
cdef struct uffd_move_stats:
    int64_t ptes_moved           # present PTEs moved (move_present_pte)
    int64_t zero_ptes_moved      # zero-page PTEs moved (move_zeropage_pte, 6.9+)
    int64_t holes                # src holes counted as moved (UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)
    int64_t huge_pmds_moved      # move_pages_huge_pmd
    int64_t huge_pmds_split      # split_huge_pmd of a THP the move could not take whole
    int64_t folios_split         # large folios split (split_folio) before their PTEs moved
    int64_t zero_remaps          # split_folio: never-written subpages mapped to the zero page
    int64_t pte_locks            # double_pt_lock: both PTE locks per moved entry, or per batch
    int64_t folio_locks          # folio_lock (trylock in a batch) per moved page
    int64_t anon_vma_locks       # anon_vma_lock_write per moved page, or per batch
    int64_t flush_calls          # ptep_clear_flush / flush_tlb_range calls
    int64_t unsafe_windows       # translations of moved pages still cached when the PTE locks dropped
    FlushOps flush_ops           # the arch's flush instructions


# The call's mode and the policy's rules, crossing into C once per move_calls.
cdef struct uffd_move_rules:
    bint allow_holes             # UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
    bint batch                   # 6.18's batched move_present_ptes (Policy.uffd_move_batch)
    bint move_zero               # zero pages move (6.9+), else EBUSY
    bint anon_vma_lock           # anon_vma_lock_write per move (Policy.uffd_move_anon_vma_lock)


cdef uint64_t ID_PTE = (<uint64_t>LOCK_ID_PTE) << LOCK_ID_SHIFT
cdef uint64_t ID_PMD = (<uint64_t>LOCK_ID_PMD) << LOCK_ID_SHIFT
cdef uint64_t ID_RMAP = (<uint64_t>LOCK_ID_RMAP) << LOCK_ID_SHIFT


cdef inline void flush(Tlbs tlbs, int caller, uint64_t start, uint64_t end, int shift,
                       uffd_move_stats *st, event_log *g) noexcept nogil:
    cdef FlushOps before = st.flush_ops
    st.flush_calls += 1
    tlb_flush_range(&tlbs.rule, &tlbs.s, &st.flush_ops, caller, start, end, shift)
    if g != NULL and g.on:
        log_flush(g, EV_FLUSH, start, end, shift, &st.flush_ops, &before)


cdef inline void flush_run(Tlbs tlbs, int caller, uint64_t lo, uint64_t hi, int shift,
                           uffd_move_stats *st, event_log *g) noexcept nogil:
    """The batch's one flush under the locks, then the locks drop."""
    flush(tlbs, caller, lo, hi, shift, st, g)
    st.unsafe_windows += tlb_count_range(&tlbs.s, lo, hi)


cdef inline void lock2(event_log *g, int cls, uint64_t src_id, uint64_t dst_id) noexcept nogil:
    """double_pt_lock (or both PMD locks): two lock events, as ``pte_locks``
    counts two (the kernel takes them in address order, and one lock when
    both tables share it)."""
    if g.on:
        log_event(g, EV_LOCK, cls, 0, src_id, 0)
        log_event(g, EV_LOCK, cls, 0, dst_id, 0)


cdef inline void unlock2(event_log *g, int cls, uint64_t src_id, uint64_t dst_id,
                         int64_t entries) noexcept nogil:
    if g.on:
        log_event(g, EV_UNLOCK, cls, entries, dst_id, 0)
        log_event(g, EV_UNLOCK, cls, entries, src_id, 0)


cdef inline void rmap_locks(event_log *g, int64_t n) noexcept nogil:
    """The run's folio locks and anon_vma locks, ``n`` in all: one lock
    event of the rmap class counting them (each priced as rmap_lock)."""
    if g.on and n:
        log_event(g, EV_LOCK, LK_RMAP, n, ID_RMAP, 0)
        log_event(g, EV_UNLOCK, LK_RMAP, 0, ID_RMAP, 0)


cdef inline void moved_run(Tlbs tlbs, int caller, uint64_t lo, uint64_t hi, int shift,
                           int64_t lookups, int64_t locks, uint64_t sid, uint64_t did,
                           uffd_move_stats *st, event_log *g) noexcept nogil:
    """A run of pages moved under both PTE locks (taken by the caller), with
    ``lookups`` folio lookups and ``locks`` folio locks taken under them (a
    batch's folio_trylock of each page after its first): the pages, the
    flush, the unlock."""
    cdef int64_t n = <int64_t>((hi - lo) >> shift)
    rmap_locks(g, locks)
    if g.on:
        log_event(g, EV_PTES, lookups, n, lo, hi)
    flush_run(tlbs, caller, lo, hi, shift, st, g)
    unlock2(g, LK_PTE, sid, did, n)


cdef enum:
    # move_pages_pte's result when the source page belongs to a large folio:
    # split_folio first (the kernel splits and retries)
    _NEED_SPLIT = -1

NEED_SPLIT = _NEED_SPLIT


cdef int move_pages_pte(pgtables *pt, Tlbs tlbs, int caller, uint64_t dst, uint64_t src,
                        int64_t npages, const uffd_move_rules *ru, uffd_move_stats *st,
                        int64_t *done, event_log *g) noexcept nogil:
    """Move up to ``npages`` PTEs from ``src`` to ``dst`` (each inside one
    PTE table, which exists), in order; ``done`` gets the pages done.

    Returns 0, or the reason it stopped: EEXIST where the destination PTE
    is not none (checked first), ENOENT at a source hole without
    ``ru.allow_holes`` (with it the hole counts as moved), EBUSY at a
    zero-page PTE before 6.9 (``ru.move_zero`` false), NEED_SPLIT at a page
    of a large folio. A moved present PTE is made afresh from the
    destination's protection, writable, dirty and soft-dirty: before
    75cb1cca2c88 (6.15) pte_mkdirty(pte_mkwrite(mk_pte(...))), x86's
    pte_mkdirty setting soft-dirty too; since, pte_mksoft_dirty and dirty
    where the source was, which every present anonymous page here is. A
    moved zero-page PTE is neither (move_zeropage_pte).

    Per page (``ru.batch`` false): both PTE locks, the folio lock, the
    anon_vma lock (``ru.anon_vma_lock``: until 6.19's cc22b9978509) and a
    ptep_clear_flush for each. Batched (6.18
    move_present_ptes): the locks of the first page held for the batch, a
    folio_trylock per page, one flush_tlb_range before the PTE locks drop;
    a hole, a zero-page PTE, a large folio or the table's end ends it."""
    cdef int pte = pt.nlev - 1
    cdef int shift = pt.shift[pte]
    cdef int reached, sreached
    cdef int64_t drow = 0, srow = 0
    cdef uint64_t *d = pt_walk(pt, dst, 0, 0, pte, False, &reached, &drow, NULL)
    cdef uint64_t *s = pt_walk(pt, src, 0, 0, pte, False, &sreached, &srow, NULL)
    cdef uint64_t sid = ID_PTE | <uint64_t>srow, did = ID_PTE | <uint64_t>drow
    cdef int64_t k = 0, run_start = -1
    cdef uint64_t e
    cdef int err = 0
    done[0] = 0
    if d == NULL or s == NULL:  # a packed table could not be expanded
        return _ENOMEM
    if reached != pte or sreached != pte:  # no PTE table (the caller made both)
        return _EINVAL
    while k < npages:
        if d[k] != 0:
            err = _EEXIST
            break
        e = s[k]
        if e == 0 or (e & E_ZERO) or (e & E_ORDER):
            # each ends a batch
            if run_start >= 0:
                moved_run(tlbs, caller, src + (<uint64_t>run_start << shift),
                          src + (<uint64_t>k << shift), shift, k - run_start,
                          k - run_start - 1, sid, did, st, g)
                run_start = -1
        if e == 0:
            if not ru.allow_holes:
                err = _ENOENT
                break
            st.holes += 1
            k += 1
            continue
        if e & E_ZERO:
            if not ru.move_zero:
                err = _EBUSY
                break
            # move_zeropage_pte: a zero-page PTE with the destination's
            # protection, the source cleared by ptep_clear_flush
            st.pte_locks += 2
            lock2(g, LK_PTE, sid, did)
            d[k] = E_PRESENT | E_READ | E_ZERO
            s[k] = 0
            moved_run(tlbs, caller, src + (<uint64_t>k << shift),
                      src + (<uint64_t>(k + 1) << shift), shift, 0, 0, sid, did, st, g)
            st.zero_ptes_moved += 1
            k += 1
            continue
        if e & E_ORDER:
            err = _NEED_SPLIT
            break
        # move_present_pte under both PTE locks, the folio and anon_vma locked
        st.folio_locks += 1
        if not ru.batch or run_start < 0:
            st.pte_locks += 2
            # move_pages_pte: folio_lock and anon_vma_lock_write, then
            # double_pt_lock (move_present_ptes)
            rmap_locks(g, 1 + ru.anon_vma_lock)
            lock2(g, LK_PTE, sid, did)
            if ru.anon_vma_lock:  # (6.8-6.18; cc22b9978509 dropped it)
                st.anon_vma_locks += 1
        d[k] = (e & ~(<uint64_t>E_CONT)) | E_READ | E_WRITE | E_DIRTY | E_SOFTDIRTY
        s[k] = 0
        st.ptes_moved += 1
        if ru.batch:
            if run_start < 0:
                run_start = k
        else:
            # ptep_clear_flush, then double_pt_unlock
            moved_run(tlbs, caller, src + (<uint64_t>k << shift),
                      src + (<uint64_t>(k + 1) << shift), shift, 1, 0, sid, did, st, g)
        k += 1
    if run_start >= 0:
        moved_run(tlbs, caller, src + (<uint64_t>run_start << shift),
                  src + (<uint64_t>k << shift), shift, k - run_start, k - run_start - 1, sid,
                  did, st, g)
    done[0] = k
    return err


cdef int move_range(pgtables *pt, Tlbs tlbs, int caller, uint64_t dst, uint64_t src,
                    uint64_t length, const uffd_move_rules *ru, uffd_move_stats *st,
                    uint64_t *moved, event_log *g) noexcept nogil:
    """move_pages()' loop from the PMD lookups down, over [src, src + length)
    (VMAs already checked); ``moved`` gets the bytes moved. Returns 0 when
    everything moved, an errno, or NEED_SPLIT at a page of a large folio
    (at ``src`` + moved).

    Per PMD extent, as the kernel: a missing source PMD table is ENOENT
    (allocated with ALLOW_SRC_HOLES), the destination's is allocated
    (ENOMEM when table memory runs out), a THP at the destination is
    EEXIST; a source THP moves whole (move_pages_huge_pmd) when both
    addresses are PMD aligned, a whole PMD remains and the destination
    PMD is none, and is split (split_huge_pmd) otherwise; the huge zero
    page is EBUSY before 6.9."""
    cdef int pmd = pt.nlev - 2, pte = pt.nlev - 1
    cdef int pshift = pt.shift[pte]
    cdef uint64_t pmd_size = <uint64_t>1 << pt.shift[pmd]
    cdef uint64_t end = src + length, e, base, n
    cdef uint64_t *sl
    cdef uint64_t *dl
    cdef int reached, dreached, err = 0
    cdef int64_t done, srow = 0, drow = 0
    moved[0] = 0
    while src < end:
        sl = pt_walk(pt, src, 0, 0, pmd, False, &reached, NULL, NULL)
        if sl == NULL:  # a packed PMD table that could not be expanded
            return _ENOMEM
        if reached < pmd and (sl[0] & E_LEAF):
            # a PUD leaf: hugetlb or DAX, never an anonymous VMA's
            return _EINVAL
        if reached < pmd:  # mm_find_pmd: no PMD table
            if not ru.allow_holes:
                return _ENOENT
            if pt_walk(pt, src, 0, 0, pmd, True, &reached, NULL, NULL) == NULL:
                return _ENOMEM
        dl = pt_walk(pt, dst, 0, 0, pmd, True, &dreached, NULL, NULL)  # mm_alloc_pmd
        if dl == NULL:
            return _ENOMEM
        if dreached != pmd or (dl[0] & E_LEAF):  # a THP at the destination
            return _EEXIST
        sl = pt_walk(pt, src, 0, 0, pmd, False, &reached, &srow, NULL)
        if sl == NULL:
            return _ENOMEM
        e = sl[0]
        if reached == pmd and (e & E_LEAF):  # a THP, or the huge zero page
            if not ru.move_zero and (e & E_ZERO):
                return _EBUSY
            if (src | dst) & (pmd_size - 1) or end - src < pmd_size or dl[0] != 0:
                # split_huge_pmd, then this address again (its folio is
                # split by move_pages_pte)
                if split_huge_pmd(pt, pmd, sl) < 0:
                    return _ENOMEM
                st.huge_pmds_split += 1
                base = src & ~(pmd_size - 1)
                if g.on:
                    log_event(g, EV_SPLIT, 0, 0, base, base + pmd_size)
                flush(tlbs, caller, base, base + pmd_size, pt.shift[pmd], st, g)
                continue
            # move_pages_huge_pmd: pmdp_huge_clear_flush under both PMD
            # locks; the THP is made afresh at dst, dirty (pmd_mkdirty: soft-
            # dirty too) and writable; the huge zero page afresh, neither
            pt_walk(pt, dst, 0, 0, pmd, False, &dreached, &drow, NULL)
            if not (e & E_ZERO):
                rmap_locks(g, 1 + ru.anon_vma_lock)
            lock2(g, LK_PMD, ID_PMD | <uint64_t>srow, ID_PMD | <uint64_t>drow)
            if g.on:
                # its struct page read: one folio lookup, in the ptes event's
                # what (the move of the entry itself is the entry event)
                if not (e & E_ZERO):
                    log_event(g, EV_PTES, 1, 0, src, src)
                log_event(g, EV_ENTRY, HPAGE_PMD, 1, src, src + pmd_size)
            if not (e & E_ZERO):
                dl[0] = e | E_READ | E_WRITE | E_DIRTY | E_SOFTDIRTY
            else:  # mk_huge_pmd
                dl[0] = e & ~(<uint64_t>E_SOFTDIRTY)
            sl[0] = 0
            st.huge_pmds_moved += 1
            st.pte_locks += 2
            if not (e & E_ZERO):
                st.folio_locks += 1
                if ru.anon_vma_lock:
                    st.anon_vma_locks += 1
            flush_run(tlbs, caller, src, src + pmd_size, pt.shift[pmd], st, g)
            unlock2(g, LK_PMD, ID_PMD | <uint64_t>srow, ID_PMD | <uint64_t>drow, 1)
            src += pmd_size
            dst += pmd_size
            moved[0] += pmd_size
            continue
        if reached == pmd and e == 0 and not ru.allow_holes:  # no PTE table
            return _ENOENT
        if pt_walk(pt, src, 0, 0, pte, True, &reached, NULL, NULL) == NULL \
                or pt_walk(pt, dst, 0, 0, pte, True, &dreached, NULL, NULL) == NULL:
            return _ENOMEM
        n = pmd_size - (src & (pmd_size - 1))
        if pmd_size - (dst & (pmd_size - 1)) < n:
            n = pmd_size - (dst & (pmd_size - 1))
        if end - src < n:
            n = end - src
        err = move_pages_pte(pt, tlbs, caller, dst, src, <int64_t>(n >> pshift), ru, st,
                             &done, g)
        src += <uint64_t>done << pshift
        dst += <uint64_t>done << pshift
        moved[0] += <uint64_t>done << pshift
        if err:
            return err
    return 0


def move_calls(PageTables tables not None, Tlbs tlbs not None, int caller,
               const uint64_t[:, ::1] calls, int64_t first, uint64_t offset, int64_t stop,
               dict rules not None, bint trace=False):
    """UFFDIO_MOVE calls ``first`` .. ``stop - 1`` of ``calls`` (rows of dst,
    src, len; VMAs checked by the caller), the first from ``offset`` bytes
    into it. Returns (call index, bytes of it done, reason, stats, trace):
    the index is ``stop`` and the reason 0 when every call moved
    everything; otherwise the call that stopped, with an errno or
    NEED_SPLIT (a large folio at its src + bytes done: split it and call
    again from there). The trace is None, or with ``trace`` (events as
    _move.EVENT_DTYPE, flush operations as int64 rows in FlushOps' order),
    as move_page_tables returns it. ``rules``: the fields of
    ``uffd_move_rules`` (the call's mode and the policy's rules)."""
    cdef uffd_move_rules ru = rules
    cdef uffd_move_stats st
    cdef pgtables *pt = &tables.pgt
    cdef int64_t i = first
    cdef uint64_t moved = 0
    cdef int err = 0
    cdef int pshift = pt.shift[pt.nlev - 1]
    cdef event_log g
    memset(&st, 0, sizeof(st))
    memset(&g, 0, sizeof(g))
    if calls.shape[1] != 3 or not 0 <= first <= stop <= calls.shape[0]:
        raise ValueError("move_calls: calls must be rows of (dst, src, len), first <= stop")
    for i in range(first, stop):
        if calls[i, 2] > (<uint64_t>1 << 63) or calls[i, 0] + calls[i, 2] < calls[i, 0] \
                or calls[i, 1] + calls[i, 2] < calls[i, 1] or (i == first and offset > calls[i, 2]):
            raise ValueError(f"move_calls: call {i} wraps around")
        if (calls[i, 0] | calls[i, 1] | calls[i, 2] | offset) & ((<uint64_t>1 << pshift) - 1):
            raise ValueError(f"move_calls: call {i} is not page aligned")
    i = first
    g.on = trace
    try:
        with nogil:
            while i < stop:
                err = move_range(pt, tlbs, caller, calls[i, 0] + offset, calls[i, 1] + offset,
                                 calls[i, 2] - offset, &ru, &st, &moved, &g)
                if err:
                    offset += moved
                    break
                offset = 0
                i += 1
        logged = log_arrays(&g) if trace else None
    finally:
        log_free(&g)
    return i, offset, err, st, logged


def split_folio(PageTables tables not None, Tlbs tlbs not None, int caller,
                const uint64_t[::1] addrs, uint64_t head, int order, bint zero_unused):
    """split_folio of the large folio of ``1 << order`` frames from ``head``,
    whose pages may be mapped at ``addrs`` (the rmap walk's candidates):
    each PTE there mapping one of them becomes a small folio's (its
    contiguous bit cleared), or, with ``zero_unused`` (b1f202060afe, 6.12),
    the shared zero page where no store ever wrote the page. The folio's
    mappings are unmapped and flushed before the remap (unmap_folio), one
    flush over the range the pages span. Returns the stats."""
    cdef uffd_move_stats st
    cdef pgtables *pt = &tables.pgt
    cdef int pte = pt.nlev - 1, reached
    cdef int64_t i, n = addrs.shape[0]
    cdef uint64_t *slot
    cdef uint64_t e, f, lo = <uint64_t>-1, hi = 0, last = <uint64_t>1 << order
    memset(&st, 0, sizeof(st))
    if not 0 < order < 16 or head & (last - 1):
        raise ValueError(f"split_folio: no folio of order {order} at frame {head}")
    cdef bint oom = False
    with nogil:
        # packed tables expanded first: a failure changes no entry
        for i in range(n):
            if pt_walk(pt, addrs[i], 0, 0, pte, False, &reached, NULL, NULL) == NULL:
                oom = True
                break
    if oom:
        raise MemoryError("split_folio: no memory to expand a packed page table")
    with nogil:
        for i in range(n):
            slot = pt_walk(pt, addrs[i], 0, 0, pte, False, &reached, NULL, NULL)
            if reached != pte:
                continue
            e = slot[0]
            f = e >> ADDR_SHIFT
            if not (e & E_PRESENT) or (e & E_ZERO) or f < head or f >= head + last \
                    or ((e & E_ORDER) >> E_ORDER_SHIFT) != <uint64_t>order:
                continue
            if zero_unused and not is_written(pt, f):
                slot[0] = E_PRESENT | E_ZERO | (e & (E_READ | E_SOFTDIRTY))
                st.zero_remaps += 1
            else:
                slot[0] = e & ~(<uint64_t>(E_ORDER | E_CONT))
            if addrs[i] < lo:
                lo = addrs[i]
            if addrs[i] > hi:
                hi = addrs[i]
        if hi >= lo:
            st.folios_split = 1
            flush(tlbs, caller, lo, hi + (<uint64_t>1 << pt.shift[pte]), pt.shift[pte], &st, NULL)
    return st


cdef int _EEXIST = _errno.EEXIST
cdef int _ENOENT = _errno.ENOENT
cdef int _EBUSY = _errno.EBUSY
cdef int _ENOMEM = _errno.ENOMEM
cdef int _EINVAL = _errno.EINVAL


def mfill_pte(PageTables tables not None, uint64_t addr, bint zeropage, bint readable,
              bint writable, int64_t src_a=-1, int64_t src_b=-1):
    """One page of mfill_atomic at ``addr`` (mm/userfaultfd.c): the PMD and
    PTE tables allocated as needed, then mfill_atomic_pte_zeropage (the
    zero page, read-only) or mfill_atomic_pte_copy (a fresh order-0 page,
    dirty, writable with VM_WRITE; it holds a store's data when the source
    frame ``src_a``, or ``src_b`` where an unaligned source spans two, was
    written; -1: none). Returns (0 or an errno: EEXIST where a PTE or a
    THP is already there, ENOMEM where table memory ran out; the frame
    installed, or -1)."""
    cdef pgtables *pt = &tables.pgt
    cdef int pmd = pt.nlev - 2, pte = pt.nlev - 1
    cdef int reached
    cdef uint64_t *slot = pt_walk(pt, addr, 0, 0, pmd, True, &reached, NULL, NULL)
    cdef uint64_t f
    if slot == NULL:
        return _ENOMEM, -1
    if reached != pmd or (slot[0] & E_LEAF):  # the dst_pmd is a THP: be strict
        return _EEXIST, -1
    slot = pt_walk(pt, addr, 0, 0, pte, True, &reached, NULL, NULL)
    if slot == NULL:
        return _ENOMEM, -1
    if slot[0] != 0:  # mfill_atomic_install_pte: !pte_none
        return _EEXIST, -1
    if zeropage:
        slot[0] = E_PRESENT | (E_READ if readable else 0) | E_ZERO
        return 0, 0
    f = pt.next_frame
    pt.next_frame += 1
    slot[0] = E_PRESENT | (E_READ if readable else 0) | E_DIRTY | (E_WRITE if writable else 0) \
        | (f << ADDR_SHIFT)
    if (src_a > 0 and is_written(pt, <uint64_t>src_a)) \
            or (src_b > 0 and is_written(pt, <uint64_t>src_b)):
        mark_written(pt, f)
    return 0, <int64_t>f
