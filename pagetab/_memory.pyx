# cython: language_level=3
"""mm/memory.c on the store: the fault path (do_anonymous_page with
alloc_anon_folio's mTHP order, shmem faults, file faults (do_read_fault's
page-cache page, do_cow_fault / wp_page_copy's private copy), and mm/huge_memory.c's
do_huge_pmd_anonymous_page and do_huge_zero_wp_pmd), unmap_page_range
(zap) and free_pgtables, each a set of callbacks on the store's walker
(``walk_page_range``). The access path (_access) faults one page at a
time through ``populate_vma_page_range``; MADV_POPULATE_* and MAP_POPULATE
a range (``PageTables.populate``).
"""

from libc.errno cimport ENOMEM
from libc.stdint cimport int64_t, uint64_t

from pagetab._huge_memory cimport split_huge_pmd
from pagetab._pgtable cimport (
    ACTION_AGAIN, ACTION_CONTINUE, ADDR_SHIFT, E_CONT, E_DIRTY, E_LEAF, E_ORDER_SHIFT, E_PRESENT,
    E_FLAGS, E_READ, E_WRITE, E_ZERO, WALK_EXPAND, alloc_frames, alloc_row, covers, d_count, d_get,
    d_hi, d_lo, d_set, d_step, efr, expand_packed, free_pte_table, free_row_clean, mm_walk,
    mm_walk_ops, new_pte_table, pgtables, pte_table_empty, row_empty, unfold_edges,
    walk_page_range,
)


# ----------------------------------------------------------------------
# faults

cdef inline int anon_folio_order(const uint64_t *t, int i, uint64_t addr, int pshift,
                                 const fault_ctx *ctx) noexcept nogil:
    """alloc_anon_folio's order for a write fault on the none PTE ``t[i]``
    mapping ``addr``: the highest order of ``ctx.orders`` whose naturally
    aligned block lies inside the VMA (thp_vma_suitable_orders) and has
    only none PTEs (pte_range_none); 0 for a small folio."""
    cdef int o, j, b, n
    cdef uint64_t size, block
    o = 63
    while o >= 2:
        if ctx.orders & (<uint64_t>1 << o):
            size = <uint64_t>1 << (o + pshift)
            block = addr & ~(size - 1)
            if block >= ctx.vm_start and block + size <= ctx.vm_end:
                n = 1 << o
                b = i & ~(n - 1)
                for j in range(b, b + n):
                    if t[j] != 0:
                        break
                else:
                    return o
        o -= 1
    return 0


cdef struct fault_walk:
    const fault_ctx *ctx
    uint64_t start            # the range's first page (MODE_SHARED: shm[shm_first])
    uint64_t stopped          # the first page not populated: a table could not be had
    int64_t *installed        # pages newly mapped
    uint64_t base_flags       # E_PRESENT, and E_READ unless PROT_NONE
    bint write                # a write fault (MODE_WRITE, MODE_SHARED, MODE_FILE_COW)


cdef inline uint64_t new_thp(pgtables *pt, fault_walk *fw) noexcept nogil:
    """A PMD leaf of fresh frames, written (do_huge_pmd_anonymous_page's
    folio, or do_huge_zero_wp_pmd's copy of the huge zero page)."""
    cdef int pmd = pt.nlev - 2
    cdef uint64_t npages = <uint64_t>1 << (pt.shift[pmd] - pt.shift[pmd + 1])
    fw.installed[0] += <int64_t>npages
    return (fw.base_flags | E_LEAF | E_DIRTY | (E_WRITE if fw.ctx.prot_write else 0)
            | (alloc_frames(pt, npages) << ADDR_SHIFT))


cdef int fault_hole(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                    uint64_t next) noexcept nogil:
    """A none entry on the way: a PMD THP where the VMA allows one
    (do_huge_pmd_anonymous_page: the huge zero page on a read), else a
    table to fault into (__pud_alloc, __pmd_alloc, __pte_alloc)."""
    cdef fault_walk *fw = <fault_walk*>walk.private
    cdef pgtables *pt = walk.pt
    cdef const fault_ctx *ctx = fw.ctx
    cdef int pmd = pt.nlev - 2
    cdef uint64_t pmd_size = <uint64_t>1 << pt.shift[pmd]
    cdef uint64_t haddr = addr & ~(pmd_size - 1)
    cdef int64_t row
    if lev == pmd and ctx.mode <= MODE_WRITE and haddr >= ctx.thp_lo \
            and haddr + pmd_size <= ctx.thp_hi and ctx.thp_hi > ctx.thp_lo:
        if fw.write:
            slot[0] = new_thp(pt, fw)
        else:
            slot[0] = fw.base_flags | E_LEAF | E_ZERO
            fw.installed[0] += <int64_t>(pmd_size >> pt.shift[pmd + 1])
        return 0
    if lev == pmd:
        if new_pte_table(pt, slot, True) < 0:
            fw.stopped = addr
            return -ENOMEM
    else:
        row = alloc_row(pt, lev + 1)
        if row < 0:
            fw.stopped = addr
            return -ENOMEM
        slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
    walk.action = ACTION_AGAIN
    return 0


cdef int fault_pmd(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                   uint64_t next) noexcept nogil:
    """A huge PMD leaf: dirtied by a write, and a write to the huge zero
    page gets a fresh THP (do_huge_zero_wp_pmd). (A huge PUD maps its
    range already: with no pud_leaf, the walk passes it by.)"""
    cdef fault_walk *fw = <fault_walk*>walk.private
    cdef uint64_t e = slot[0]
    if fw.write and (e & E_ZERO) and fw.ctx.mode == MODE_WRITE:
        slot[0] = new_thp(walk.pt, fw)
    elif fw.write:
        slot[0] = e | E_DIRTY
    walk.action = ACTION_CONTINUE
    return 0


cdef inline uint64_t page_cache_frame(pgtables *pt, const fault_ctx *ctx,
                                      uint64_t pgoff) noexcept nogil:
    """The frame of page ``pgoff`` of the object, given one on first use
    (filemap_fault / shmem_fault finding or adding the folio)."""
    if ctx.shm[pgoff] < 0:
        ctx.shm[pgoff] = <int64_t>pt.next_frame
        pt.next_frame += 1
    return <uint64_t>ctx.shm[pgoff]


cdef int fault_ptes(mm_walk *walk, uint64_t *t, int i0, int i1, uint64_t addr,
                    uint64_t next) noexcept nogil:
    """The PTEs of one table: the zero page on a read fault; on a write a
    fresh frame per none or zero-page PTE (do_anonymous_page, the COW of
    the zero page) or a large folio (alloc_anon_folio); in shared memory
    the shmem object's frame (shmem_fault), allocated on first use; in a
    file VMA the page cache's frame, read-only (do_read_fault's
    finish_fault / filemap_map_pages), or on a write in a private one a
    fresh copy (do_cow_fault; wp_page_copy for a page-cache page mapped
    already, which is never dirty through a private mapping)."""
    cdef fault_walk *fw = <fault_walk*>walk.private
    cdef pgtables *pt = walk.pt
    cdef const fault_ctx *ctx = fw.ctx
    cdef int pshift = pt.shift[pt.nlev - 1]
    cdef uint64_t haddr = addr & ~((<uint64_t>1 << pt.shift[pt.nlev - 2]) - 1)
    cdef uint64_t base_flags = fw.base_flags, e, f, nf, wflags, n, pgoff
    cdef int i, j, b, o
    if ctx.mode == MODE_READ:
        nf = 0
        for i in range(i0, i1):
            if t[i] == 0:
                t[i] = base_flags | E_ZERO
                nf += 1
        fw.installed[0] += <int64_t>nf
    elif ctx.mode == MODE_WRITE:
        # locals, not pt->next_frame: stores through t may alias it
        nf = pt.next_frame
        wflags = base_flags | E_DIRTY | (E_WRITE if ctx.prot_write else 0)
        i = i0
        while i < i1:
            e = t[i]
            o = 0
            if e == 0 and ctx.orders:
                o = anon_folio_order(t, i, haddr + (<uint64_t>i << pshift), pshift, ctx)
            if o:
                # alloc_anon_folio: one folio of 1 << o frames (from
                # a multiple of 1 << o) mapped by set_ptes over its
                # naturally aligned block, pages before i included
                n = <uint64_t>1 << o
                b = i & ~<int>(n - 1)
                nf = (nf + n - 1) & ~(n - 1)
                # set_ptes (contpte_set_ptes): whole aligned blocks
                # of one folio get PTE_CONT directly
                f = E_CONT if (pt.cont_ptes and n >= <uint64_t>pt.cont_ptes) else 0
                for j in range(<int>n):
                    t[b + j] = wflags | f | (<uint64_t>o << E_ORDER_SHIFT) \
                        | ((nf + <uint64_t>j) << ADDR_SHIFT)
                nf += n
                fw.installed[0] += <int64_t>n
                i = b + <int>n
                continue
            if e == 0 or (e & E_ZERO):
                t[i] = wflags | (nf << ADDR_SHIFT)
                nf += 1
                fw.installed[0] += 1
            else:
                t[i] = e | E_DIRTY
            i += 1
        pt.next_frame = nf
    elif ctx.mode == MODE_FILE_READ:
        pgoff = ctx.shm_first + ((addr - fw.start) >> pshift)
        for i in range(i0, i1):
            if t[i] == 0:
                t[i] = base_flags | (page_cache_frame(pt, ctx, pgoff) << ADDR_SHIFT)
                fw.installed[0] += 1
            pgoff += 1
    elif ctx.mode == MODE_FILE_COW:
        pgoff = ctx.shm_first + ((addr - fw.start) >> pshift)
        wflags = base_flags | E_DIRTY | (E_WRITE if ctx.prot_write else 0)
        for i in range(i0, i1):
            e = t[i]
            if e == 0 or not (e & E_DIRTY):
                # the page is read from the page cache to be copied
                page_cache_frame(pt, ctx, pgoff)
                t[i] = wflags | (pt.next_frame << ADDR_SHIFT)
                pt.next_frame += 1
                fw.installed[0] += 1
            else:
                # already this mapping's own copy: wp_page_reuse
                t[i] = e | E_DIRTY | (E_WRITE if ctx.prot_write else 0)
            pgoff += 1
    else:
        pgoff = ctx.shm_first + ((addr - fw.start) >> pshift)
        for i in range(i0, i1):
            e = t[i]
            if e == 0:
                f = <uint64_t>ctx.shm[pgoff]
                if ctx.shm[pgoff] < 0:
                    f = pt.next_frame
                    pt.next_frame += 1
                    ctx.shm[pgoff] = <int64_t>f
                t[i] = base_flags | (f << ADDR_SHIFT)
                fw.installed[0] += 1
                e = t[i]
            if fw.write:
                t[i] = e | E_DIRTY | (E_WRITE if ctx.prot_write else 0)
            pgoff += 1
    return 0


cdef int fault_packed(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                      uint64_t addr, uint64_t next) noexcept nogil:
    """fault_packed_run, else the table expanded here: a failure stops the
    populate at ``addr``, as a table that could not be had does."""
    cdef int rc = fault_packed_run(walk, d, i0, i1)
    if rc != WALK_EXPAND:
        return rc
    if expand_packed(walk.pt, slot) < 0:
        (<fault_walk*>walk.private).stopped = addr
        return -ENOMEM
    return WALK_EXPAND


cdef int fault_packed_run(mm_walk *walk, uint64_t *d, int i0, int i1) noexcept nogil:
    """fault_ptes on a packed table, where the result is one run again: a
    read fault's zero pages joining a run of them, a write fault's fresh
    order-0 frames over none and zero-page entries (consecutive frames,
    as fault_ptes hands them out), or entries a fault leaves as they are.
    Anything else expands the table."""
    cdef fault_walk *fw = <fault_walk*>walk.private
    cdef const fault_ctx *ctx = fw.ctx
    cdef pgtables *pt = walk.pt
    cdef int lo = d_lo(d), hi = d_hi(d)
    cdef bint empty = d[1] == 0
    cdef uint64_t z, wflags, nf
    if ctx.mode == MODE_READ:
        z = fw.base_flags | E_ZERO
        if empty:
            d_set(d, z, i0, i1, 0)
            fw.installed[0] += i1 - i0
            return 0
        if i0 >= lo and i1 <= hi:
            return 0  # no none entry in the range
        if d[0] == z and d_step(d) == 0 and i0 <= hi and i1 >= lo:
            if i0 < lo:
                lo, fw.installed[0] = i0, fw.installed[0] + (lo - i0)
            if i1 > hi:
                hi, fw.installed[0] = i1, fw.installed[0] + (i1 - hi)
            d_set(d, z, lo, hi, 0)
            return 0
        return WALK_EXPAND
    if ctx.mode == MODE_WRITE and ctx.orders == 0:
        wflags = fw.base_flags | E_DIRTY | (E_WRITE if ctx.prot_write else 0)
        if empty or (d_step(d) == 0 and (d[0] & E_ZERO) and lo >= i0 and hi <= i1):
            nf = pt.next_frame
            d_set(d, wflags + ((nf - <uint64_t>i0) << ADDR_SHIFT), i0, i1, 1)
            pt.next_frame = nf + <uint64_t>(i1 - i0)
            fw.installed[0] += i1 - i0
            return 0
        if i0 >= lo and i1 <= hi and (d[0] & E_DIRTY) and not (d[0] & E_ZERO):
            return 0  # every entry already e | E_DIRTY
        if i0 == hi and d_step(d) == 1 and (d[0] & E_FLAGS) == wflags \
                and (d_get(d, hi - 1) >> ADDR_SHIFT) + 1 == pt.next_frame:
            # the next page of a run whose frames were the last handed out
            d_set(d, d[0], lo, i1, 1)
            pt.next_frame += <uint64_t>(i1 - i0)
            fw.installed[0] += i1 - i0
            return 0
    return WALK_EXPAND


cdef mm_walk_ops FAULT_OPS = mm_walk_ops(
    pud_leaf=NULL, pmd_leaf=fault_pmd, pte_range=fault_ptes, pte_hole=fault_hole,
    post_table=NULL, packed_range=fault_packed, repack=False, reads_only=False)


cdef uint64_t populate_vma_page_range(pgtables *pt, uint64_t start, uint64_t end,
                                      const fault_ctx *ctx, int64_t *installed) noexcept nogil:
    """Fault in every page of [start, end), adding the pages it maps to
    ``installed``; returns the address reached.

    The returned address is ``end`` on success and the first page that
    could not be populated (out of table memory) otherwise; pages before
    it stay populated, as with Linux's MADV_POPULATE_*.
    """
    cdef fault_walk fw
    fw.ctx = ctx
    fw.start = start
    fw.stopped = end
    fw.installed = installed
    fw.base_flags = E_PRESENT | (E_READ if ctx.prot_read or ctx.prot_write else 0)
    fw.write = ctx.mode != MODE_READ and ctx.mode != MODE_FILE_READ
    cdef uint64_t failed_at = end
    if walk_page_range(pt, start, end, &FAULT_OPS, &fw, &failed_at):
        # a callback's failure, or the walker's (a packed PMD table)
        return fw.stopped if fw.stopped < failed_at else failed_at
    return end


# ----------------------------------------------------------------------
# unmap_page_range (zap) and free_pgtables

cdef int zap_huge(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                  uint64_t next) noexcept nogil:
    """zap_pmd_range/zap_pud_range on a huge leaf: one the range covers
    whole is cleared (zap_huge_pmd), one it covers in part is split first
    (__split_huge_pmd) and its table walked."""
    cdef pgtables *pt = walk.pt
    if covers(pt, lev, addr, next):
        slot[0] = 0
        (<int64_t*>walk.private)[0] += <int64_t>(
            (<uint64_t>1 << pt.shift[lev]) >> pt.shift[pt.nlev - 1])
        walk.action = ACTION_CONTINUE
        return 0
    return 0 if split_huge_pmd(pt, lev, slot) >= 0 else -ENOMEM


cdef int zap_pte_range(mm_walk *walk, uint64_t *t, int i0, int i1, uint64_t addr,
                       uint64_t next) noexcept nogil:
    """zap_pte_range: clear the PTEs (contiguous blocks cut by the range
    unfolded first)."""
    cdef int64_t pages = 0
    cdef int i
    walk.pt.pte_tables_visited += 1
    unfold_edges(walk.pt, t, i0, i1)
    for i in range(i0, i1):
        if t[i] != 0:
            t[i] = 0
            pages += 1
    (<int64_t*>walk.private)[0] += pages
    return 0


cdef int zap_packed(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                    uint64_t addr, uint64_t next) noexcept nogil:
    """zap_pte_range on a packed table whose run the range cuts at most
    at one end (a contiguous block cut by the range, or a run cut in two,
    expands the table)."""
    cdef pgtables *pt = walk.pt
    cdef int lo = d_lo(d), hi = d_hi(d), c = pt.cont_ptes
    if (d[0] & E_CONT) and c and (i0 % c or i1 % c) or (lo < i0 and i1 < hi):
        return WALK_EXPAND
    pt.pte_tables_visited += 1
    (<int64_t*>walk.private)[0] += d_count(d, i0, i1, ~(<uint64_t>0))
    if i0 <= lo and i1 >= hi:
        d_set(d, 0, 0, 0, 0)
    elif i0 <= lo and i1 > lo:
        d_set(d, d[0], i1, hi, d_step(d))
    elif i1 >= hi and i0 < hi:
        d_set(d, d[0], lo, i0, d_step(d))
    return 0


cdef mm_walk_ops ZAP_OPS = mm_walk_ops(
    pud_leaf=zap_huge, pmd_leaf=zap_huge, pte_range=zap_pte_range, pte_hole=NULL,
    post_table=NULL, packed_range=zap_packed, repack=True, reads_only=False)


cdef int zap_page_range(pgtables *pt, uint64_t start, uint64_t end, int64_t *pages) noexcept nogil:
    """unmap_page_range: clear every leaf in [start, end), adding the pages
    cleared to ``pages``. Returns 0, or -1 if a split could not allocate."""
    return -1 if walk_page_range(pt, start, end, &ZAP_OPS, pages, NULL) else 0


cdef struct free_walk:
    uint64_t floor
    uint64_t ceiling
    freed_tables *freed
    bint pte_only                # PTE tables alone (reclaim_pt)


cdef int free_table(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                    uint64_t next) noexcept nogil:
    """After the walk below ``slot``: free_pgd_range frees the table when
    no VMA may use any of its span (the span lies within [floor,
    ceiling); ceiling 0 = top) and it is empty."""
    cdef free_walk *fw = <free_walk*>walk.private
    cdef pgtables *pt = walk.pt
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo = addr & ~(size - 1), hi = lo + size
    cdef int64_t child = <int64_t>efr(slot[0])
    cdef uint64_t page = <uint64_t>1 << pt.shift[pt.nlev - 1]
    cdef bint ptes = lev == pt.nlev - 2
    if fw.pte_only and not ptes:
        return 0
    if lo >= fw.floor and (fw.ceiling == 0 or (hi != 0 and hi <= fw.ceiling)):
        if pte_table_empty(pt, slot[0]) if ptes else row_empty(pt, lev + 1, child):
            if ptes:
                free_pte_table(pt, slot)
            else:
                free_row_clean(pt, lev + 1, child)
                slot[0] = 0
            # pte_free_tlb / pmd_free_tlb: the gather's range takes a page
            # at the table's address; the lowest level freed sets the stride
            if fw.freed.shift == 0 or lo < fw.freed.lo:
                fw.freed.lo = lo
            if lo + page > fw.freed.hi:
                fw.freed.hi = lo + page
            if fw.freed.shift == 0 or pt.shift[lev] < fw.freed.shift:
                fw.freed.shift = pt.shift[lev]
    return 0


# no pte_range: PTE tables are freed whole, never walked
cdef mm_walk_ops FREE_OPS = mm_walk_ops(
    pud_leaf=NULL, pmd_leaf=NULL, pte_range=NULL, pte_hole=NULL, post_table=free_table,
    packed_range=NULL, repack=False, reads_only=False)


cdef void free_pgtables(pgtables *pt, uint64_t start, uint64_t end, uint64_t floor,
                        uint64_t ceiling, freed_tables *freed) noexcept nogil:
    """free_pgtables: free the tables reachable from [start, end) whose whole
    span lies in [floor, ceiling) (ceiling 0 means the top of the space),
    widening ``freed`` by what it frees. (A packed PMD table is expanded to
    be walked; one that cannot be, malloc failing, stays: a leak of
    tables, as a full free list leaks a row, never a corruption.)"""
    cdef free_walk fw
    fw.floor = floor
    fw.ceiling = ceiling
    fw.freed = freed
    fw.pte_only = False
    walk_page_range(pt, start, end, &FREE_OPS, &fw, NULL)


cdef void reclaim_pt(pgtables *pt, uint64_t start, uint64_t end,
                     freed_tables *freed) noexcept nogil:
    """MADV_DONTNEED's page-table reclaim after its zap (CONFIG_PT_RECLAIM,
    mm/pt_reclaim.c, 6375e95f381e, Linux 6.14): each PTE table whose whole
    span lies in [start, end) and that holds no entry is freed
    (pte_free_tlb), widening ``freed``; PMD tables never are."""
    cdef free_walk fw
    fw.floor = start
    fw.ceiling = end
    fw.freed = freed
    fw.pte_only = True
    walk_page_range(pt, start, end, &FREE_OPS, &fw, NULL)
