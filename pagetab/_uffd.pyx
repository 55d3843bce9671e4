# cython: language_level=3
"""UFFDIO_MOVE's per-entry work (mm/userfaultfd.c move_pages_pte,
move_present_pte, move_zeropage_pte; mm/huge_memory.c move_pages_huge_pmd).

``userfaultfd.py`` walks the range PMD by PMD as move_pages() does and calls
these for the entries; they move entries without Python objects, with the
GIL released, and flush as the policy says: one ptep_clear_flush per moved
page (Linux 6.8), or one flush_tlb_range per run of present pages within a
page table (the 2025 batching, <20250816191123.3601561-1-lokeshgidra@google.com>).
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from pagetab._flush cimport FlushOps, Tlbs, tlb_flush_range
from pagetab._tlb cimport tlb_count_range
from pagetab._tables cimport (
    ADDR_SHIFT, E_CONT, E_DIRTY, E_LEAF, E_ORDER, E_ORDER_SHIFT, E_PRESENT, E_READ,
    E_SOFTDIRTY, E_WRITE, E_ZERO, PageTables, pt_walk,
)

import errno as _errno

# What a move did; the field names are the names Python sees.
cdef struct uffd_move_stats:
    int64_t ptes_moved           # present PTEs moved (move_present_pte)
    int64_t zero_ptes_moved      # zero-page PTEs moved (move_zeropage_pte, 6.9+)
    int64_t holes                # src holes counted as moved (UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)
    int64_t huge_pmds_moved      # move_pages_huge_pmd
    int64_t huge_pmds_split      # split_huge_pmd of a THP the move could not take whole
    int64_t folios_split         # large folios split (split_folio) before their PTEs moved
    int64_t pte_locks            # double_pt_lock: both PTE locks per moved entry
    int64_t folio_locks          # folio_lock per moved page (one per folio for a batch)
    int64_t anon_vma_locks       # anon_vma_lock_write per moved folio
    int64_t flush_calls          # ptep_clear_flush / flush_tlb_range calls
    int64_t unsafe_windows       # translations of moved pages still cached when the PTE locks dropped
    FlushOps flush_ops           # the arch's flush instructions


cdef inline void flush(Tlbs tlbs, int caller, uint64_t start, uint64_t end, int shift,
                       uffd_move_stats *st) noexcept nogil:
    st.flush_calls += 1
    tlb_flush_range(&tlbs.rule, &tlbs.s, &st.flush_ops, caller, start, end, shift)


cdef inline void flush_run(Tlbs tlbs, int caller, uint64_t lo, uint64_t hi, int shift,
                           uffd_move_stats *st) noexcept nogil:
    """The batch's one flush under the locks, then the locks drop."""
    flush(tlbs, caller, lo, hi, shift, st)
    st.unsafe_windows += tlb_count_range(&tlbs.s, lo, hi)


cdef inline void split_folio_ptes(uint64_t *t, int64_t nent, int64_t k) noexcept nogil:
    """split_folio of the large folio mapped at ``t[k]``: every PTE of this
    table that maps one of its pages becomes a small folio's (the folio's
    other pages, if mapped elsewhere, are not searched for)."""
    cdef uint64_t e = t[k]
    cdef uint64_t o = (e & E_ORDER) >> E_ORDER_SHIFT
    cdef uint64_t head = (e >> ADDR_SHIFT) >> o
    cdef int64_t j
    for j in range(nent):
        if (t[j] & E_PRESENT) and not (t[j] & E_ZERO) and (t[j] & E_ORDER) == (e & E_ORDER) \
                and ((t[j] >> ADDR_SHIFT) >> o) == head:
            t[j] &= ~(<uint64_t>(E_ORDER | E_CONT))


def move_pages_pte(PageTables pt not None, Tlbs tlbs not None, int caller, uint64_t dst,
                   uint64_t src, int64_t npages, bint allow_holes, bint batch, bint move_zero):
    """Move ``npages`` PTEs from ``src`` to ``dst``, both inside one PTE table
    each (the caller's extent), in order, stopping at the first error.

    Returns (pages done, errno or 0, stats): EEXIST where the destination
    PTE is not none (checked first), ENOENT at a source hole without
    ``allow_holes`` (with it the hole counts as moved), EBUSY at a
    zero-page PTE before 6.9 (``move_zero`` false). Moved present PTEs
    become dirty and writable (pte_mkdirty(pte_mkwrite(mk_pte(page,
    dst_vma->vm_page_prot)))); a large folio is split first."""
    cdef uffd_move_stats st
    cdef int reached
    cdef int pte = pt.nlev - 1
    cdef int shift = pt.shift[pte]
    cdef int64_t nent = pt.pools[pte].nent
    cdef uint64_t *d
    cdef uint64_t *s
    cdef int64_t k = 0, run_start = -1, i0
    cdef uint64_t e
    cdef int err = 0
    memset(&st, 0, sizeof(st))
    d = pt_walk(pt, dst, 0, 0, pte, False, &reached, NULL, NULL)
    if reached != pte:
        raise ValueError("move_pages_pte: no destination PTE table")
    s = pt_walk(pt, src, 0, 0, pte, False, &reached, NULL, NULL)
    if reached != pte:
        raise ValueError("move_pages_pte: no source PTE table")
    i0 = <int64_t>((src >> shift) & <uint64_t>(nent - 1))
    if npages < 0 or i0 + npages > nent \
            or <int64_t>((dst >> shift) & <uint64_t>(nent - 1)) + npages > nent:
        raise ValueError("move_pages_pte: the range leaves a page table")
    with nogil:
        while k < npages:
            if d[k] != 0:
                err = _EEXIST
                break
            e = s[k]
            if e == 0:
                if not allow_holes:
                    err = _ENOENT
                    break
                st.holes += 1
                if run_start >= 0:
                    flush_run(tlbs, caller, src + (<uint64_t>run_start << shift),
                              src + (<uint64_t>k << shift), shift, &st)
                    run_start = -1
                k += 1
                continue
            if e & E_ZERO:
                if not move_zero:
                    err = _EBUSY
                    break
                # move_zeropage_pte: a zero-page PTE with the destination's
                # protection, and the source cleared and flushed
                if run_start >= 0:
                    flush_run(tlbs, caller, src + (<uint64_t>run_start << shift),
                              src + (<uint64_t>k << shift), shift, &st)
                    run_start = -1
                st.pte_locks += 2
                d[k] = E_PRESENT | E_READ | E_ZERO
                s[k] = 0
                flush_run(tlbs, caller, src + (<uint64_t>k << shift),
                          src + (<uint64_t>(k + 1) << shift), shift, &st)
                st.zero_ptes_moved += 1
                k += 1
                continue
            if e & E_ORDER:
                split_folio_ptes(s - i0, nent, i0 + k)
                st.folios_split += 1
                e = s[k]
            # move_present_pte under both PTE locks, the folio and anon_vma locked
            st.pte_locks += 2
            st.folio_locks += 1
            st.anon_vma_locks += 1
            d[k] = (e & ~(<uint64_t>(E_CONT | E_SOFTDIRTY))) | E_READ | E_WRITE | E_DIRTY
            s[k] = 0
            st.ptes_moved += 1
            if batch:
                if run_start < 0:
                    run_start = k
            else:
                flush(tlbs, caller, src + (<uint64_t>k << shift),
                      src + (<uint64_t>(k + 1) << shift), shift, &st)
                # double_pt_unlock: any CPU still caching the old translation?
                st.unsafe_windows += tlb_count_range(&tlbs.s, src + (<uint64_t>k << shift),
                                                     src + (<uint64_t>(k + 1) << shift))
            k += 1
        if run_start >= 0:
            flush_run(tlbs, caller, src + (<uint64_t>run_start << shift),
                      src + (<uint64_t>k << shift), shift, &st)
    return k, err, st


def move_pages_huge_pmd(PageTables pt not None, Tlbs tlbs not None, int caller, uint64_t dst,
                        uint64_t src):
    """Move the PMD leaf (a THP or the huge zero page) at ``src`` to the empty
    PMD slot at ``dst`` (both PMD aligned): the THP becomes dirty and
    writable there, the source is cleared and flushed
    (pmdp_huge_clear_flush). Returns the stats."""
    cdef uffd_move_stats st
    cdef int reached
    cdef int pmd = pt.nlev - 2
    cdef uint64_t *s
    cdef uint64_t *d
    cdef uint64_t e
    memset(&st, 0, sizeof(st))
    s = pt_walk(pt, src, 0, 0, pmd, False, &reached, NULL, NULL)
    if reached != pmd or not (s[0] & E_LEAF):
        raise ValueError("move_pages_huge_pmd: no PMD leaf at the source")
    d = pt_walk(pt, dst, 0, 0, pmd, False, &reached, NULL, NULL)
    if reached != pmd or d[0] != 0:
        raise ValueError("move_pages_huge_pmd: the destination PMD slot is not empty")
    e = s[0]
    d[0] = e if (e & E_ZERO) else (e | E_READ | E_WRITE | E_DIRTY)
    s[0] = 0
    st.huge_pmds_moved += 1
    st.pte_locks += 2
    if not (e & E_ZERO):
        st.folio_locks += 1
        st.anon_vma_locks += 1
    with nogil:
        flush_run(tlbs, caller, src, src + (<uint64_t>1 << pt.shift[pmd]), pt.shift[pmd], &st)
    return st


def split_huge_pmd(PageTables pt not None, Tlbs tlbs not None, int caller, uint64_t addr):
    """split_huge_pmd of the PMD leaf mapping ``addr`` (its PTEs map the same
    folio; the huge entry is flushed, as pmdp_invalidate does). Returns the
    stats, or None when table memory runs out; no split where there is no
    PMD leaf."""
    cdef int reached
    cdef int pmd = pt.nlev - 2
    cdef uffd_move_stats st
    cdef uint64_t *slot = pt_walk(pt, addr, 0, 0, pmd, False, &reached, NULL, NULL)
    cdef uint64_t size = <uint64_t>1 << pt.shift[pmd]
    memset(&st, 0, sizeof(st))
    if reached != pmd or not (slot[0] & E_LEAF):
        return st
    if pt.split_leaf(pmd, slot) < 0:
        return None
    st.huge_pmds_split = 1
    with nogil:
        flush(tlbs, caller, addr & ~(size - 1), (addr & ~(size - 1)) + size, pt.shift[pmd], &st)
    return st


def alloc_table(PageTables pt not None, uint64_t addr, int level):
    """Allocate the tables down to ``level`` for ``addr`` (mm_alloc_pmd,
    __pte_alloc) where missing; False when table memory runs out. Stops,
    True, at a huge leaf above ``level``."""
    cdef int reached
    if not 0 < level < pt.nlev:
        raise ValueError(f"level must be in 1..{pt.nlev - 1}, not {level}")
    return pt_walk(pt, addr, 0, 0, level, True, &reached, NULL, NULL) != NULL


cdef int _EEXIST = _errno.EEXIST
cdef int _ENOENT = _errno.ENOENT
cdef int _EBUSY = _errno.EBUSY
