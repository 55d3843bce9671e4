# cython: language_level=3
"""The packed page-table store: row pools per level, and contpte blocks.

Every level of the tree has a :c:type:`Pool` of table pages ("rows") of
``nent`` uint64 entries each; ``pgtables`` (``_pgtable.pxd``) holds them
with the geometry, the frame counter and the page-content bitmap. This
module allocates and frees rows (pud_alloc/pmd_alloc/pte_alloc and
pte_free, with mm_pgtables_bytes's limit), walks ranges of the tree with
per-level callbacks (mm/pagewalk.c's ``walk_page_range``: faults, zap,
free_pgtables, change_protection and the inspection walks are callbacks
on it) and keeps arm64's contiguous blocks (arch/arm64/mm/contpte.c:
contpte_try_unfold, contpte_try_fold).
The entry layout is documented once, in ``_pgtable.pxd``.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
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
    pt.packed.nent = 2
    pt.packed.chunk_shift = 18  # 4 MiB of descriptors per chunk
    pt.packed_pmd.nent = 2
    pt.packed_pmd.chunk_shift = 12  # 64 KiB: 4096 GiB of packed PMD tables per chunk
    for l in range(nlev):
        pt.pools[l].fail_in = &pt.fail_in
    pt.packed.fail_in = &pt.fail_in
    pt.packed_pmd.fail_in = &pt.fail_in
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
    for c in range(pt.packed.nchunks):
        pt_chunk_free(pt.packed.chunks[c], pool_chunk_bytes(&pt.packed))
    free(pt.packed.chunks)
    free(pt.packed.freelist)
    for c in range(pt.packed_pmd.nchunks):
        pt_chunk_free(pt.packed_pmd.chunks[c], pool_chunk_bytes(&pt.packed_pmd))
    free(pt.packed_pmd.chunks)
    free(pt.packed_pmd.freelist)
    free(pt.written)
    memset(pt, 0, sizeof(pgtables))


cdef inline size_t pool_chunk_bytes(Pool *p) noexcept nogil:
    return <size_t>((<int64_t>1 << p.chunk_shift) * p.nent * 8)


cdef size_t chunk_bytes(pgtables *pt, int lev) noexcept nogil:
    return pool_chunk_bytes(&pt.pools[lev])


cdef int64_t live_tables(pgtables *pt, int lev) noexcept nogil:
    """Tables of level ``lev`` in use: rows, and packed tables too (a
    packed PMD table counts once at the PMD level, and once per PTE table
    it holds at the PTE level)."""
    if lev == pt.nlev - 1:
        return pt.pools[lev].live + pt.packed.live + pt.packed_pmd_ptes
    if lev == pt.nlev - 2:
        return pt.pools[lev].live + pt.packed_pmd.live
    return pt.pools[lev].live


cdef int64_t bytes_below_root(pgtables *pt) noexcept nogil:
    cdef int64_t b = 0
    cdef int l
    for l in range(1, pt.nlev):
        b += live_tables(pt, l) * pt.pools[l].nent * 8
    return b


cdef int64_t pool_take(Pool *p) noexcept nogil:
    """A row of ``p`` (zero when it was never used or freed clean), or -1."""
    cdef int64_t row, ncap
    cdef uint64_t **nchunks
    cdef uint64_t *chunk
    if p.fail_in != NULL and p.fail_in[0] > 0:
        p.fail_in[0] -= 1
        if p.fail_in[0] == 0:
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
            chunk = <uint64_t*>pt_chunk_alloc(pool_chunk_bytes(p))
            if chunk == NULL:
                return -1
            p.chunks[p.nchunks] = chunk
            p.nchunks += 1
        p.hw += 1
    p.live += 1
    return row


cdef bint pool_reserve_free(Pool *p, int64_t n) noexcept nogil:
    """Room on ``p``'s free list for ``n`` more rows, so that as many
    ``pool_put`` calls cannot fail (False if it cannot be had)."""
    cdef int64_t ncap
    cdef int64_t *nf
    if p.nfree + n <= p.free_cap:
        return True
    ncap = p.free_cap * 2
    if ncap < p.nfree + n:
        ncap = p.nfree + n
    if ncap < 64:
        ncap = 64
    nf = <int64_t*>realloc(p.freelist, ncap * sizeof(int64_t))
    if nf == NULL:
        return False
    p.freelist = nf
    p.free_cap = ncap
    return True


cdef bint pool_put(Pool *p, int64_t row) noexcept nogil:
    """Return a zeroed row to ``p``; False if the free list cannot grow
    (the row then stays allocated: leaks a row, never corrupts; only under
    real malloc failure)."""
    cdef int64_t ncap
    cdef int64_t *nf
    if p.nfree == p.free_cap:
        ncap = p.free_cap * 2 if p.free_cap else 64
        nf = <int64_t*>realloc(p.freelist, ncap * sizeof(int64_t))
        if nf == NULL:
            return False
        p.freelist = nf
        p.free_cap = ncap
    p.freelist[p.nfree] = row
    p.nfree += 1
    p.live -= 1
    return True


cdef inline bint over_limit(pgtables *pt, int lev) noexcept nogil:
    """Whether one more table of level ``lev`` would pass page_table_limit."""
    return pt.limit_bytes and bytes_below_root(pt) + pt.pools[lev].nent * 8 > pt.limit_bytes


cdef inline void note_peak(pgtables *pt, int lev) noexcept nogil:
    cdef int64_t n = live_tables(pt, lev)
    if n > pt.pools[lev].peak:
        pt.pools[lev].peak = n


cdef int64_t alloc_row(pgtables *pt, int lev) noexcept nogil:
    """A zeroed row of level ``lev``, or -1 (out of memory or over limit)."""
    cdef int64_t row
    if over_limit(pt, lev):
        return -1
    row = pool_take(&pt.pools[lev])
    if row >= 0:
        note_peak(pt, lev)
    return row


cdef void free_row(pgtables *pt, int lev, int64_t row) noexcept nogil:
    memset(row_ptr(pt, lev, row), 0, pt.pools[lev].nent * 8)
    free_row_clean(pt, lev, row)


cdef void free_row_clean(pgtables *pt, int lev, int64_t row) noexcept nogil:
    """Free a row the caller has seen to be all zero."""
    if pool_put(&pt.pools[lev], row):
        pt.tables_freed += 1


# ----------------------------------------------------------------------
# packed PTE tables (the layout: _pgtable.pxd)

cdef int64_t alloc_packed(pgtables *pt) noexcept nogil:
    """An empty packed PTE table (counted as a PTE table against the
    limit), or -1."""
    cdef int pte = pt.nlev - 1
    cdef int64_t d
    if over_limit(pt, pte):
        return -1
    d = pool_take(&pt.packed)
    if d >= 0:
        note_peak(pt, pte)
    return d


cdef int new_pte_table(pgtables *pt, uint64_t *slot, bint packed) noexcept nogil:
    """pte_alloc into the none PMD entry ``*slot``: an empty PTE table,
    packed when ``packed`` and the store packs (a caller about to fill it
    entry by entry asks for a row). 0, or -1 (out of memory or over limit)."""
    cdef int64_t r
    if pt.pack and packed:
        r = alloc_packed(pt)
        if r < 0:
            return -1
        slot[0] = E_PRESENT | E_PACKED | (<uint64_t>r << ADDR_SHIFT)
        return 0
    r = alloc_row(pt, pt.nlev - 1)
    if r < 0:
        return -1
    slot[0] = E_PRESENT | (<uint64_t>r << ADDR_SHIFT)
    return 0


cdef int64_t expand_packed(pgtables *pt, uint64_t *slot) noexcept nogil:
    """Turn the packed PTE table ``*slot`` points to into a row holding the
    same entries (the first change it cannot describe); returns the row,
    or -1 when no row can be had (the table stays packed). The count of
    PTE tables does not change."""
    cdef int pte = pt.nlev - 1
    cdef int64_t d = <int64_t>efr(slot[0])
    cdef int64_t row = pool_take(&pt.pools[pte])
    cdef uint64_t *dp
    if row < 0:
        return -1
    dp = pool_row(&pt.packed, d)
    if dp[1]:  # (a row from the pool is zero already)
        d_fill(dp, row_ptr(pt, pte, row), pt.pools[pte].nent)
    if not pool_put(&pt.packed, d):
        memset(row_ptr(pt, pte, row), 0, pt.pools[pte].nent * 8)  # free rows are zero
        pool_put(&pt.pools[pte], row)
        return -1
    dp[0] = 0
    dp[1] = 0
    slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
    pt.packed_expanded += 1
    return row


cdef inline int used_span(const uint64_t *t, int n, int *hi) noexcept nogil:
    """The first entry of the row ``t`` (``n`` entries) that is not none, and
    in ``hi`` one past the last ([n, n) when all are none)."""
    cdef int lo = 0
    while lo < n and t[lo] == 0:
        lo += 1
    hi[0] = n
    while hi[0] > lo and t[hi[0] - 1] == 0:
        hi[0] -= 1
    return lo


cdef void try_pack(pgtables *pt, uint64_t *slot) noexcept nogil:
    """Re-pack the PTE table row ``*slot`` points to when its entries are
    one run again (all none, zero-page PTEs, consecutive frames with one
    set of flags): the row goes back to its pool, the count of PTE tables
    stays. Leaves it a row when not, or when no descriptor can be had."""
    cdef int pte = pt.nlev - 1, n = pt.pools[pte].nent, lo = 0, hi, i
    cdef int64_t row = <int64_t>efr(slot[0]), d
    cdef uint64_t *t = row_ptr(pt, pte, row)
    cdef uint64_t tmpl = 0, step = 0, e
    lo = used_span(t, n, &hi)
    if hi > lo:
        step = 0 if (t[lo] & E_ZERO) else 1
        tmpl = t[lo] - ((<uint64_t>lo * step) << ADDR_SHIFT)
        e = t[lo]
        for i in range(lo, hi):
            if t[i] != e:
                return
            e += step << ADDR_SHIFT
    d = pool_take(&pt.packed)
    if d < 0:
        return
    d_set(pool_row(&pt.packed, d), tmpl, lo, hi, step)
    if hi > lo:
        memset(t + lo, 0, (hi - lo) * 8)  # (none elsewhere already)
    if not pool_put(&pt.pools[pte], row):
        d_fill(pool_row(&pt.packed, d), t, n)  # (cannot free the row: it stays)
        pool_row(&pt.packed, d)[0] = 0
        pool_row(&pt.packed, d)[1] = 0
        pool_put(&pt.packed, d)
        return
    slot[0] = E_PRESENT | E_PACKED | (<uint64_t>d << ADDR_SHIFT)


cdef void free_pte_table(pgtables *pt, uint64_t *slot) noexcept nogil:
    """pte_free: free the empty PTE table ``*slot`` points to (packed or a
    row) and clear the PMD entry."""
    cdef uint64_t e = slot[0]
    if is_packed(e):
        if pool_put(&pt.packed, <int64_t>efr(e)):
            pt.tables_freed += 1
    else:
        free_row_clean(pt, pt.nlev - 1, <int64_t>efr(e))
    slot[0] = 0


# ----------------------------------------------------------------------
# packed PMD tables (the layout: _pgtable.pxd)

cdef void put_packed_ptes(pgtables *pt, uint64_t *t, int lo, int hi) noexcept nogil:
    """Give back the packed PTE tables entries [lo, hi) of the PMD row ``t``
    point to, clearing the entries (room on the free list reserved)."""
    cdef int j
    cdef uint64_t *d
    for j in range(lo, hi):
        d = desc_of(pt, t[j])
        d[0] = 0
        d[1] = 0
        pool_put(&pt.packed, <int64_t>efr(t[j]))
        t[j] = 0


cdef int64_t expand_packed_pmd(pgtables *pt, uint64_t *slot) noexcept nogil:
    """Turn the packed PMD table ``*slot`` points to into a row of packed
    PTE tables holding the same entries; returns the row, or -1 when the
    row or the descriptors cannot be had (the table stays packed). The
    counts of tables do not change."""
    cdef int pmd = pt.nlev - 2, j
    cdef int64_t di = <int64_t>efr(slot[0]), row, dj
    cdef uint64_t *pd = pool_row(&pt.packed_pmd, di)
    cdef int lo = d_lo(pd), hi = d_hi(pd)
    cdef uint64_t *t
    if not (pool_reserve_free(&pt.packed_pmd, 1) and pool_reserve_free(&pt.packed, hi - lo)
            and pool_reserve_free(&pt.pools[pmd], 1)):
        return -1
    row = pool_take(&pt.pools[pmd])
    if row < 0:
        return -1
    t = row_ptr(pt, pmd, row)
    for j in range(lo, hi):
        dj = pool_take(&pt.packed)
        if dj < 0:
            put_packed_ptes(pt, t, lo, j)  # give back what was taken (room reserved)
            pool_put(&pt.pools[pmd], row)
            return -1
        pmd_desc_pte(pt, pd, j, pool_row(&pt.packed, dj))
        t[j] = E_PRESENT | E_PACKED | (<uint64_t>dj << ADDR_SHIFT)
    pd[0] = 0
    pd[1] = 0
    pool_put(&pt.packed_pmd, di)
    pt.packed_pmd_ptes -= hi - lo
    pt.packed_pmd_expanded += 1
    slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
    return row


cdef void try_pack_pmd(pgtables *pt, uint64_t *slot) noexcept nogil:
    """Pack the PMD table row ``*slot`` points to when it is uniform: no
    entry, or entries [lo, hi) (none elsewhere) that are packed PTE tables
    all empty, or all full and one run across the table. The counts of
    tables do not change. Leaves it a row when not, or when a descriptor
    cannot be had."""
    cdef int pmd = pt.nlev - 2, pte = pt.nlev - 1
    cdef int n = pt.pools[pmd].nent, lo = 0, hi, j
    cdef uint64_t np_ = <uint64_t>pt.pools[pte].nent
    cdef int64_t row = <int64_t>efr(slot[0]), di
    cdef uint64_t *t = row_ptr(pt, pmd, row)
    cdef uint64_t *d
    cdef uint64_t *pd
    cdef uint64_t tmpl = 0, step = 0, w1 = 0
    cdef bint empty = False
    lo = used_span(t, n, &hi)
    if hi > lo:
        if not is_packed(t[lo]):
            return
        d = desc_of(pt, t[lo])
        empty = d[1] == 0
        if not empty:
            if d_lo(d) != 0 or <uint64_t>d_hi(d) != np_:
                return
            step = d_step(d)
            tmpl = d[0] - ((<uint64_t>lo * np_ * step) << ADDR_SHIFT)
            w1 = d[1]
        for j in range(lo, hi):
            if not is_packed(t[j]):
                return
            d = desc_of(pt, t[j])
            if empty:
                if d[1] != 0:
                    return
            elif d[1] != w1 or d[0] != tmpl + ((<uint64_t>j * np_ * step) << ADDR_SHIFT):
                return
    if not (pool_reserve_free(&pt.packed, hi - lo) and pool_reserve_free(&pt.pools[pmd], 1)):
        return
    di = pool_take(&pt.packed_pmd)
    if di < 0:
        return
    pd = pool_row(&pt.packed_pmd, di)
    if hi > lo:
        pd[0] = tmpl
        pd[1] = <uint64_t>lo | (<uint64_t>hi << 16) | (step << 32) | (PD_EMPTY if empty else 0)
    put_packed_ptes(pt, t, lo, hi)
    pool_put(&pt.pools[pmd], row)
    pt.packed_pmd_ptes += hi - lo
    slot[0] = E_PRESENT | E_PACKED | (<uint64_t>di << ADDR_SHIFT)


cdef void repack_pmds(pgtables *pt, uint64_t start, uint64_t end) noexcept nogil:
    """``try_pack_pmd`` on every PMD table (a row) that maps part of
    [start, end), when the store packs."""
    cdef int pud = pt.nlev - 3, reached
    cdef uint64_t size, a = start
    cdef uint64_t *slot
    if not pt.pack or pud < 0:
        return
    size = <uint64_t>1 << pt.shift[pud]
    while a < end:
        slot = pt_walk_read(pt, a, pud, &reached)
        if reached == pud and slot[0] != 0 and not (slot[0] & (E_LEAF | E_PACKED)):
            try_pack_pmd(pt, slot)
        a = (a | (size - 1)) + 1
        if a == 0:
            break  # the top of the space


# ----------------------------------------------------------------------
# the range walker (mm/pagewalk.c)

cdef inline int next_used(const uint64_t *t, int i, int i1) noexcept nogil:
    """The first entry from ``t[i]`` on that is not none (``i1`` if none
    is): a walk with no pte_hole skips an unmapped range's tables in one
    tight loop."""
    while i < i1 and t[i] == 0:
        i += 1
    return i


cdef int walk_table(mm_walk *walk, int lev, int64_t row, uint64_t base, uint64_t start,
                    uint64_t end) noexcept nogil:
    """walk_pgd_range .. walk_pmd_range in one: the entries of table ``row``
    of level ``lev`` above the PTEs (whose entry 0 maps ``base``) that
    [start, end) covers, in address order, each child table walked before
    the next entry (its PTE tables by ``walk_ptes``). ``end`` is never 0:
    the range ends below 2**64."""
    cdef pgtables *pt = walk.pt
    cdef const mm_walk_ops *ops = walk.ops
    cdef int pte = pt.nlev - 1
    cdef uint64_t *t = row_ptr(pt, lev, row)
    cdef int i = pt_index(pt, lev, start), i1 = pt_index(pt, lev, end - 1) + 1
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo, hi, addr, next_, e
    cdef walk_entry_fn leaf_fn = ops.pmd_leaf if lev == pte - 1 else ops.pud_leaf
    cdef walk_entry_fn hole_fn = ops.pte_hole
    cdef int err, action
    while True:
        if hole_fn == NULL:
            i = next_used(t, i, i1)
        if i >= i1:
            break
        lo = base + <uint64_t>i * size
        hi = lo + size
        addr = start if start > lo else lo
        next_ = end if (end < hi or hi == 0) else hi
        if t[i] == 0:
            walk.action = ACTION_CONTINUE
            err = hole_fn(walk, lev, &t[i], addr, next_)
            if err:
                return err
            if walk.action != ACTION_AGAIN:
                i += 1
            continue
        action = ACTION_SUBTREE
        if t[i] & E_LEAF and leaf_fn != NULL:
            walk.action = ACTION_SUBTREE
            err = leaf_fn(walk, lev, &t[i], addr, next_)
            if err:
                return err
            action = walk.action  # the walk below may change walk.action
            if action == ACTION_AGAIN:
                continue
        e = t[i]
        # a table, perhaps one the callback made by splitting a huge leaf
        if action == ACTION_SUBTREE and e != 0 and not (e & E_LEAF):
            if lev + 1 < pte:
                if e & E_PACKED:
                    # a packed PMD table: read in place, or made a row to write
                    if ops.reads_only and ops.post_table == NULL:
                        err = walk_packed_pmd(walk, e, lo, addr, next_)
                        if err:
                            return err
                        i += 1
                        continue
                    if expand_packed_pmd(pt, &t[i]) < 0:
                        walk.failed_at = addr
                        return -12  # ENOMEM
                    e = t[i]
                err = walk_table(walk, lev + 1, <int64_t>efr(e), lo, addr, next_)
                if err == 0 and ops.repack and pt.pack and lev + 2 == pte \
                        and t[i] != 0 and not (t[i] & (E_LEAF | E_PACKED)):
                    try_pack_pmd(pt, &t[i])
            else:
                err = walk_ptes(walk, &t[i], addr, next_)
            if err:
                return err
            if ops.post_table != NULL:
                err = ops.post_table(walk, lev, &t[i], addr, next_)
                if err:
                    return err
        i += 1
    return 0


cdef int walk_packed_pmd(mm_walk *walk, uint64_t pudval, uint64_t base, uint64_t start,
                         uint64_t end) noexcept nogil:
    """walk_pmd_range on the packed PMD table ``pudval`` points to (whose
    entry 0 maps ``base``), for a walk that only reads: each PTE table
    [start, end) covers to ``packed_range`` as its descriptor (or to
    ``pte_range`` as a row made on the side), each none entry to
    ``pte_hole``, as walk_table gives the entries of a row."""
    cdef pgtables *pt = walk.pt
    cdef const mm_walk_ops *ops = walk.ops
    cdef int pmd = pt.nlev - 2, pte = pt.nlev - 1, nent = pt.pools[pte].nent
    cdef const uint64_t *pd = pool_row(&pt.packed_pmd, <int64_t>efr(pudval))
    cdef int j = pt_index(pt, pmd, start), j1 = pt_index(pt, pmd, end - 1) + 1
    cdef uint64_t size = <uint64_t>1 << pt.shift[pmd]
    cdef uint64_t lo, hi, addr, next_
    cdef uint64_t d[2]
    cdef uint64_t stand_in
    cdef uint64_t *row = NULL
    cdef int rc = 0
    while j < j1 and rc == 0:
        lo = base + <uint64_t>j * size
        hi = lo + size
        addr = start if start > lo else lo
        next_ = end if (end < hi or hi == 0) else hi
        if j < d_lo(pd) or j >= d_hi(pd):
            stand_in = 0
            if ops.pte_hole != NULL:
                rc = ops.pte_hole(walk, pmd, &stand_in, addr, next_)
            j += 1
            continue
        pmd_desc_pte(pt, pd, j, d)
        stand_in = E_PRESENT | E_PACKED  # (a reader's callback does not follow it)
        rc = WALK_EXPAND
        if ops.packed_range != NULL:
            rc = ops.packed_range(walk, &stand_in, d, pt_index(pt, pte, addr),
                                  pt_index(pt, pte, next_ - 1) + 1, addr, next_)
        if rc == WALK_EXPAND:
            rc = 0
            if ops.pte_range != NULL:
                if row == NULL:
                    row = <uint64_t*>malloc(nent * sizeof(uint64_t))
                    if row == NULL:
                        return -12  # ENOMEM
                d_fill(d, row, nent)
                rc = ops.pte_range(walk, row, pt_index(pt, pte, addr),
                                   pt_index(pt, pte, next_ - 1) + 1, addr, next_)
        j += 1
    free(row)
    return rc


cdef int walk_page_table(pgtables *pt, int lev, int64_t row, const mm_walk_ops *ops,
                         void *private) noexcept nogil:
    """The walk of all of table ``row`` of level ``lev`` (1 or below),
    wherever it is mapped: addresses count from 0 at its first entry (a
    PTE table here is a row, never a packed one; for walks that only read:
    a PTE table's own PMD entry is not at hand to re-pack it)."""
    cdef mm_walk walk
    walk.ops = ops
    walk.pt = pt
    walk.private = private
    walk.action = ACTION_SUBTREE
    cdef uint64_t ptr = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
    if lev == pt.nlev - 1:
        return walk_ptes(&walk, &ptr, 0, <uint64_t>1 << pt.shift[lev - 1])
    return walk_table(&walk, lev, row, 0, 0, <uint64_t>1 << pt.shift[lev - 1])


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
    for row in range(pt.packed.hw):
        pool_row(&pt.packed, row)[0] &= ~(<uint64_t>E_CONT)
    for row in range(pt.packed_pmd.hw):
        pool_row(&pt.packed_pmd, row)[0] &= ~(<uint64_t>E_CONT)
