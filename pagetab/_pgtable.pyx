# cython: language_level=3
"""The packed page-table store: row pools per level, and contpte blocks.

Every level of the tree has a :c:type:`Pool` of table pages ("rows") of
``nent`` uint64 entries each; ``pgtables`` (``_pgtable.pxd``) holds them
with the geometry, the frame counter and the page-content bitmap. This
module allocates and frees rows (pud_alloc/pmd_alloc/pte_alloc and
pte_free, with mm_pgtables_bytes's limit) and keeps arm64's contiguous
blocks (arch/arm64/mm/contpte.c: contpte_try_unfold, contpte_try_fold).
The entry layout is documented once, in ``_pgtable.pxd``.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

cdef extern from "pt_alloc.h":
    void *pt_chunk_alloc(size_t nbytes) nogil
    void pt_chunk_free(void *p, size_t nbytes) nogil

# Target bytes per chunk of rows: large enough that a 256 GiB region needs
# only a few hundred chunks, small enough to waste little on tiny spaces.
cdef int64_t CHUNK_BYTES = 4 << 20


cdef int pgtables_init(pgtables *pt, int nlev, const int *shifts, const int *nents) noexcept nogil:
    """Set up an empty store of ``nlev`` levels (pgd first) and allocate
    its pgd (row 0 of level 0). Returns 0, or -1 if the pgd cannot be had."""
    cdef int l, rows_shift
    cdef int64_t row_bytes
    memset(pt, 0, sizeof(pgtables))
    pt.nlev = nlev
    for l in range(nlev):
        pt.shift[l] = shifts[l]
        pt.pools[l].nent = nents[l]
        row_bytes = <int64_t>nents[l] * 8
        rows_shift = 0
        while (row_bytes << (rows_shift + 1)) <= CHUNK_BYTES:
            rows_shift += 1
        pt.pools[l].chunk_shift = rows_shift
    pt.next_frame = 1          # frame 0 is ZERO_FRAME
    return 0 if alloc_row(pt, 0) == 0 else -1


cdef void pgtables_release(pgtables *pt) noexcept nogil:
    """Free every chunk, free list and the page-content bitmap."""
    cdef int l
    cdef int64_t c
    for l in range(pt.nlev):
        for c in range(pt.pools[l].nchunks):
            pt_chunk_free(pt.pools[l].chunks[c], chunk_bytes(pt, l))
        free(pt.pools[l].chunks)
        free(pt.pools[l].freelist)
    free(pt.written)
    memset(pt, 0, sizeof(pgtables))


cdef size_t chunk_bytes(pgtables *pt, int lev) noexcept nogil:
    return <size_t>((<int64_t>1 << pt.pools[lev].chunk_shift) * pt.pools[lev].nent * 8)


cdef int64_t bytes_below_root(pgtables *pt) noexcept nogil:
    cdef int64_t b = 0
    cdef int l
    for l in range(1, pt.nlev):
        b += pt.pools[l].live * pt.pools[l].nent * 8
    return b


cdef int64_t alloc_row(pgtables *pt, int lev) noexcept nogil:
    """A zeroed row of level ``lev``, or -1 (out of memory or over limit)."""
    cdef Pool *p = &pt.pools[lev]
    cdef int64_t row, ncap
    cdef uint64_t **nchunks
    cdef uint64_t *chunk
    if pt.limit_bytes and bytes_below_root(pt) + p.nent * 8 > pt.limit_bytes:
        return -1
    if p.nfree:
        p.nfree -= 1
        row = p.freelist[p.nfree]
    else:
        row = p.hw
        if (row >> p.chunk_shift) >= p.nchunks:
            if p.nchunks == p.chunks_cap:
                ncap = p.chunks_cap * 2 if p.chunks_cap else 16
                nchunks = <uint64_t**>realloc(p.chunks, ncap * sizeof(uint64_t*))
                if nchunks == NULL:
                    return -1
                p.chunks = nchunks
                p.chunks_cap = ncap
            chunk = <uint64_t*>pt_chunk_alloc(chunk_bytes(pt, lev))
            if chunk == NULL:
                return -1
            p.chunks[p.nchunks] = chunk
            p.nchunks += 1
        p.hw += 1
    p.live += 1
    if p.live > p.peak:
        p.peak = p.live
    return row


cdef void free_row(pgtables *pt, int lev, int64_t row) noexcept nogil:
    memset(row_ptr(pt, lev, row), 0, pt.pools[lev].nent * 8)
    free_row_clean(pt, lev, row)


cdef void free_row_clean(pgtables *pt, int lev, int64_t row) noexcept nogil:
    """Free a row the caller has seen to be all zero."""
    cdef Pool *p = &pt.pools[lev]
    cdef int64_t ncap
    cdef int64_t *nf
    if p.nfree == p.free_cap:
        ncap = p.free_cap * 2 if p.free_cap else 64
        nf = <int64_t*>realloc(p.freelist, ncap * sizeof(int64_t))
        if nf == NULL:
            # Cannot record it: leave the row allocated (leaks a row,
            # never corrupts). Only under real malloc failure.
            return
        p.freelist = nf
        p.free_cap = ncap
    p.freelist[p.nfree] = row
    p.nfree += 1
    p.live -= 1
    pt.tables_freed += 1


# ----------------------------------------------------------------------
# contiguous blocks (arm64 contpte)

cdef void unfold_edges(pgtables *pt, uint64_t *t, int i0, int i1) noexcept nogil:
    """A change to entries [i0, i1) of PTE table ``t``: each contiguous
    block it covers only partly is unfolded first (PTE_CONT cleared on
    all its entries: contpte_try_unfold, and the batched operations'
    first and last blocks); blocks covered whole keep the bit."""
    cdef int c = pt.cont_ptes, b, j, k
    cdef int edges[2]
    if c == 0:
        return
    edges[0] = i0
    edges[1] = i1 - 1
    for k in range(2):
        b = edges[k] & ~(c - 1)
        if (b < i0 or b + c > i1) and (t[edges[k]] & E_CONT):
            pt.contpte_unfolds += 1
            for j in range(b, b + c):
                t[j] &= ~(<uint64_t>E_CONT)


cdef void fold_blocks(pgtables *pt, uint64_t *t, int i0, int i1) noexcept nogil:
    """After entries [i0, i1) of PTE table ``t`` were rewritten one by
    one: where one of them is the last entry of its block, the whole
    block (entries before i0 included) folds if it maps one folio's
    consecutive pages with the same bits (contpte_try_fold at a
    single set_pte_at, Linux 6.9+)."""
    cdef int c = pt.cont_ptes, b, j
    if c == 0:
        return
    b = (i0 & ~(c - 1))
    while b + c <= i1:  # a block whose last entry the range wrote
        if block_foldable(t, b, c):
            for j in range(b, b + c):
                t[j] |= E_CONT
        b += c


cdef void clear_cont(pgtables *pt) noexcept nogil:
    """Clear PTE_CONT on every PTE (no contiguous block stays folded)."""
    cdef int pte = pt.nlev - 1
    cdef int64_t row, n = pt.pools[pte].hw
    cdef int i, nent = pt.pools[pte].nent
    cdef uint64_t *t
    for row in range(n):
        t = row_ptr(pt, pte, row)
        for i in range(nent):
            t[i] &= ~(<uint64_t>E_CONT)
