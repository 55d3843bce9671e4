# cython: language_level=3
"""mm/mprotect.c on the store: change_protection sets the access bits of
the present leaves in a range for a new protection (change_pte_range,
change_huge_pmd), splitting huge leaves it covers only partly and
unfolding/refolding arm64's contiguous blocks at its edges; callbacks on
the store's walker (``walk_page_range``).
"""

from libc.errno cimport ENOMEM
from libc.stdint cimport int64_t, uint64_t

from pagetab._huge_memory cimport split_huge_pmd
from pagetab._pgtable cimport (
    ACTION_CONTINUE, E_CONT, E_DIRTY, E_LEAF, E_ORDER, E_READ, E_WRITE, E_ZERO, WALK_EXPAND,
    covers, d_hi, d_lo, d_set, d_step, fold_blocks, mm_walk, mm_walk_ops, pgtables, unfold_edges,
    walk_page_range,
)


cdef struct prot_walk:
    bint readable
    bint writable
    bint shared
    int64_t pages             # present leaves changed


cdef inline uint64_t new_prot(const prot_walk *pw, uint64_t ent) noexcept nogil:
    """A present leaf's entry under the new protection."""
    ent &= ~(<uint64_t>(E_READ | E_WRITE))
    if pw.readable or pw.writable:
        ent |= E_READ
    # the zero page is never writable; shared pages become writable at
    # once only when already dirty (wp fault later)
    if pw.writable and not (ent & E_ZERO) and (not pw.shared or (ent & E_DIRTY)):
        ent |= E_WRITE
    return ent


cdef int change_huge(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                     uint64_t next) noexcept nogil:
    """change_pmd_range/change_pud_range on a huge leaf: one the range
    covers whole changes as one (change_huge_pmd); one it covers in part
    is split first and its table walked."""
    cdef prot_walk *pw = <prot_walk*>walk.private
    if not covers(walk.pt, lev, addr, next):
        return 0 if split_huge_pmd(walk.pt, lev, slot) >= 0 else -ENOMEM
    slot[0] = new_prot(pw, slot[0])
    pw.pages += 1
    walk.action = ACTION_CONTINUE
    return 0


cdef int change_pte_range(mm_walk *walk, uint64_t *t, int i0, int i1, uint64_t addr,
                          uint64_t next) noexcept nogil:
    """change_pte_range: the present PTEs, contiguous blocks cut by the
    range unfolded before and blocks it completes folded after."""
    cdef prot_walk *pw = <prot_walk*>walk.private
    cdef int64_t pages = 0
    cdef int i
    walk.pt.pte_tables_visited += 1
    unfold_edges(walk.pt, t, i0, i1)
    for i in range(i0, i1):
        if t[i] != 0:
            t[i] = new_prot(pw, t[i])
            pages += 1
    fold_blocks(walk.pt, t, i0, i1)
    pw.pages += pages
    return 0


cdef int change_packed(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                       uint64_t addr, uint64_t next) noexcept nogil:
    """change_pte_range on a packed table whose run the range covers whole
    or misses (new_prot changes flags only: the run stays one); a run cut
    by the range, or one contiguous blocks could fold in, expands."""
    cdef prot_walk *pw = <prot_walk*>walk.private
    cdef int lo = d_lo(d), hi = d_hi(d)
    if d[1] and (i0 < hi and i1 > lo) and not (i0 <= lo and i1 >= hi):
        return WALK_EXPAND
    if walk.pt.cont_ptes and (d[0] & (E_CONT | E_ORDER)):
        return WALK_EXPAND
    walk.pt.pte_tables_visited += 1
    if d[1] and i0 <= lo and i1 >= hi:
        d_set(d, new_prot(pw, d[0]), lo, hi, d_step(d))
        pw.pages += hi - lo
    return 0


cdef mm_walk_ops PROT_OPS = mm_walk_ops(
    pud_leaf=change_huge, pmd_leaf=change_huge, pte_range=change_pte_range, pte_hole=NULL,
    post_table=NULL, packed_range=change_packed, repack=True, reads_only=False)


cdef int64_t change_protection(pgtables *pt, uint64_t start, uint64_t end, bint readable,
                               bint writable, bint shared) noexcept nogil:
    """change_protection over [start, end): the present leaves it changed,
    or -1 if a split could not allocate its table."""
    cdef prot_walk pw
    pw.readable = readable
    pw.writable = writable
    pw.shared = shared
    pw.pages = 0
    if walk_page_range(pt, start, end, &PROT_OPS, &pw, NULL):
        return -1
    return pw.pages
