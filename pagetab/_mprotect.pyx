# cython: language_level=3
"""mm/mprotect.c on the store: change_protection sets the access bits of
the present leaves in a range for a new protection (change_pte_range,
change_huge_pmd), splitting huge leaves it covers only partly and
unfolding/refolding arm64's contiguous blocks at its edges.
"""

from libc.stdint cimport int64_t, uint64_t

from pagetab._huge_memory cimport split_huge_pmd
from pagetab._pgtable cimport (
    E_DIRTY, E_LEAF, E_READ, E_WRITE, E_ZERO, efr, fold_blocks, pgtables, pt_index, row_ptr,
    unfold_edges,
)


cdef int64_t change_prot(pgtables *pt, int lev, int64_t row, uint64_t base, uint64_t s, uint64_t e,
                          bint readable, bint writable, bint shared) noexcept nogil:
    cdef uint64_t *t = row_ptr(pt, lev, row)
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo, hi, ent
    cdef int i, i0, i1
    cdef int64_t pages = 0, sub
    i0 = pt_index(pt, lev, s)
    i1 = pt_index(pt, lev, e - 1) + 1
    if lev == pt.nlev - 1:
        unfold_edges(pt, t, i0, i1)
    for i in range(i0, i1):
        ent = t[i]
        if ent == 0:
            continue
        lo = base + i * size
        hi = lo + size
        if lev != pt.nlev - 1 and (ent & E_LEAF) and not (s <= lo and (hi <= e or hi == 0)):
            if split_huge_pmd(pt, lev, &t[i]) < 0:
                return -1
            ent = t[i]
        if lev == pt.nlev - 1 or (ent & E_LEAF):
            ent &= ~(<uint64_t>(E_READ | E_WRITE))
            if readable or writable:
                ent |= E_READ
            # the zero page is never writable; shared pages become
            # writable at once only when already dirty (wp fault later)
            if writable and not (ent & E_ZERO) and (not shared or (ent & E_DIRTY)):
                ent |= E_WRITE
            t[i] = ent
            pages += 1
            continue
        sub = change_prot(pt, lev + 1, <int64_t>efr(ent), lo, s if s > lo else lo,
                                e if (e < hi or hi == 0) else hi, readable, writable, shared)
        if sub < 0:
            return -1
        pages += sub
    if lev == pt.nlev - 1:
        fold_blocks(pt, t, i0, i1)
    return pages


cdef int64_t change_protection(pgtables *pt, uint64_t start, uint64_t end, bint readable,
                               bint writable, bint shared) noexcept nogil:
    """change_protection over [start, end): the present leaves it changed,
    or -1 if a split could not allocate its table."""
    if end <= start:
        return 0
    return change_prot(pt, 0, 0, 0, start, end, readable, writable, shared)
