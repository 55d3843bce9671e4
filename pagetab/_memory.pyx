# cython: language_level=3
"""mm/memory.c on the store: the fault path (do_anonymous_page with
alloc_anon_folio's mTHP order, shmem faults, and mm/huge_memory.c's
do_huge_pmd_anonymous_page and do_huge_zero_wp_pmd), unmap_page_range
(zap) and free_pgtables. The access path (_access) faults one page at a
time through ``populate_vma_page_range``; MADV_POPULATE_* and MAP_POPULATE
a range (``PageTables.populate``).
"""

from libc.stdint cimport int64_t, uint64_t

from pagetab._huge_memory cimport split_huge_pmd
from pagetab._pgtable cimport (
    ADDR_SHIFT, E_CONT, E_DIRTY, E_LEAF, E_ORDER_SHIFT, E_PRESENT, E_READ, E_WRITE, E_ZERO,
    alloc_frames, alloc_row, efr, free_row_clean, pgtables, pt_index, pt_walk, row_empty,
    row_ptr, unfold_edges,
)


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



cdef uint64_t populate_vma_page_range(pgtables *pt, uint64_t start, uint64_t end, const fault_ctx *ctx,
                       int64_t *installed) noexcept nogil:
    """Fault in every page of [start, end); returns the address reached.

    The returned address is ``end`` on success and the first page that
    could not be populated (out of table memory) otherwise; pages before
    it stay populated, as with Linux's MADV_POPULATE_*.
    """
    cdef int pmd = pt.nlev - 2, pte = pt.nlev - 1
    cdef uint64_t pmd_size = <uint64_t>1 << pt.shift[pmd]
    cdef int pshift = pt.shift[pte]
    cdef uint64_t npages_huge = pmd_size >> pshift
    cdef uint64_t addr = start, next_, haddr, e, f, pgoff, nf, wflags, n
    cdef uint64_t *slot
    cdef uint64_t *t
    cdef int reached, i, i0, i1, j, b, o
    cdef int64_t row
    cdef int mode = ctx.mode
    cdef bint write = mode != MODE_READ
    cdef bint prot_write = ctx.prot_write
    cdef uint64_t base_flags = E_PRESENT
    if ctx.prot_read or prot_write:
        base_flags |= E_READ
    while addr < end:
        haddr = addr & ~(pmd_size - 1)
        next_ = haddr + pmd_size
        if next_ > end or next_ == 0:
            next_ = end
        slot = pt_walk(pt, addr, 0, 0, pmd, True, &reached, NULL, NULL)
        if slot == NULL:
            return addr
        if reached < pmd:
            # a huge PUD leaf maps it already (never created by faults)
            addr = next_
            continue
        e = slot[0]
        if e & E_LEAF:
            if write and (e & E_ZERO) and mode == MODE_WRITE:
                # do_huge_zero_wp_pmd: a write to the huge zero page
                # gets a fresh THP
                slot[0] = (base_flags | E_LEAF | E_DIRTY | (E_WRITE if prot_write else 0)
                           | (alloc_frames(pt, npages_huge) << ADDR_SHIFT))
                installed[0] += npages_huge
            elif write:
                slot[0] = e | E_DIRTY
            addr = next_
            continue
        if e == 0 and mode != MODE_SHARED and haddr >= ctx.thp_lo \
                and haddr + pmd_size <= ctx.thp_hi and ctx.thp_hi > ctx.thp_lo:
            # do_huge_pmd_anonymous_page
            if write:
                slot[0] = (base_flags | E_LEAF | E_DIRTY | (E_WRITE if prot_write else 0)
                           | (alloc_frames(pt, npages_huge) << ADDR_SHIFT))
            else:
                slot[0] = base_flags | E_LEAF | E_ZERO
            installed[0] += npages_huge
            addr = next_
            continue
        if e == 0:
            row = alloc_row(pt, pte)
            if row < 0:
                return addr
            slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
        else:
            row = <int64_t>efr(e)
        t = row_ptr(pt, pte, row)
        i0 = pt_index(pt, pte, addr)
        i1 = i0 + <int>((next_ - addr) >> pshift)
        if mode == MODE_READ:
            nf = 0
            for i in range(i0, i1):
                if t[i] == 0:
                    t[i] = base_flags | E_ZERO
                    nf += 1
            installed[0] += <int64_t>nf
        elif mode == MODE_WRITE:
            # locals, not pt->next_frame: stores through t may alias it
            nf = pt.next_frame
            wflags = base_flags | E_DIRTY | (E_WRITE if prot_write else 0)
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
                    installed[0] += <int64_t>n
                    i = b + <int>n
                    continue
                if e == 0 or (e & E_ZERO):
                    t[i] = wflags | (nf << ADDR_SHIFT)
                    nf += 1
                    installed[0] += 1
                else:
                    t[i] = e | E_DIRTY
                i += 1
            pt.next_frame = nf
        else:
            pgoff = ctx.shm_first + ((addr - start) >> pshift)
            for i in range(i0, i1):
                e = t[i]
                if e == 0:
                    f = <uint64_t>ctx.shm[pgoff]
                    if ctx.shm[pgoff] < 0:
                        f = pt.next_frame
                        pt.next_frame += 1
                        ctx.shm[pgoff] = <int64_t>f
                    t[i] = base_flags | (f << ADDR_SHIFT)
                    installed[0] += 1
                    e = t[i]
                if write:
                    t[i] = e | E_DIRTY | (E_WRITE if prot_write else 0)
                pgoff += 1
        addr = next_
    return end


cdef int64_t zap_range(pgtables *pt, int lev, int64_t row, uint64_t base, uint64_t s, uint64_t e,
                  int64_t *pages) noexcept nogil:
    """Clear leaves in [s, e) below ``row``; splits partial huge leaves.

    Returns 0, or -1 if a split could not allocate its table.
    """
    cdef uint64_t *t = row_ptr(pt, lev, row)
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo, hi, ent
    cdef int i, i0, i1
    cdef int pte = pt.nlev - 1
    i0 = pt_index(pt, lev, s)
    i1 = pt_index(pt, lev, e - 1) + 1
    if lev == pte:
        unfold_edges(pt, t, i0, i1)
    for i in range(i0, i1):
        ent = t[i]
        if ent == 0:
            continue
        if lev == pte:
            t[i] = 0
            pages[0] += 1
            continue
        lo = base + i * size
        hi = lo + size
        if ent & E_LEAF:
            if s <= lo and (hi <= e or hi == 0):
                t[i] = 0
                pages[0] += size >> pt.shift[pte]
                continue
            if split_huge_pmd(pt, lev, &t[i]) < 0:
                return -1
            ent = t[i]
        if zap_range(pt, lev + 1, <int64_t>efr(ent), lo, s if s > lo else lo,
                     e if (e < hi or hi == 0) else hi, pages) < 0:
            return -1
    return 0


cdef int zap_page_range(pgtables *pt, uint64_t start, uint64_t end, int64_t *pages) noexcept nogil:
    """unmap_page_range: clear every leaf in [start, end), adding the pages
    cleared to ``pages``. Returns 0, or -1 if a split could not allocate."""
    if end <= start:
        return 0
    return <int>zap_range(pt, 0, 0, 0, start, end, pages)


cdef void free_range(pgtables *pt, int lev, int64_t row, uint64_t base, uint64_t s, uint64_t e,
                      uint64_t floor, uint64_t ceiling) noexcept nogil:
    cdef uint64_t *t = row_ptr(pt, lev, row)
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo, hi, ent
    cdef int i, i0, i1
    cdef int64_t child
    i0 = pt_index(pt, lev, s)
    i1 = pt_index(pt, lev, e - 1) + 1
    for i in range(i0, i1):
        ent = t[i]
        if ent == 0 or (ent & E_LEAF):
            continue
        lo = base + i * size
        hi = lo + size
        child = <int64_t>efr(ent)
        if lev + 1 < pt.nlev - 1:
            free_range(pt, lev + 1, child, lo, s if s > lo else lo,
                             e if (e < hi or hi == 0) else hi, floor, ceiling)
        # free_pgd_range frees a table when no VMA may use any of its
        # span: the span lies within [floor, ceiling); ceiling 0 = top
        if lo >= floor and (ceiling == 0 or (hi != 0 and hi <= ceiling)):
            if row_empty(pt, lev + 1, child):
                free_row_clean(pt, lev + 1, child)
                t[i] = 0


cdef void free_pgtables(pgtables *pt, uint64_t start, uint64_t end, uint64_t floor,
                        uint64_t ceiling) noexcept nogil:
    """free_pgtables: free the tables reachable from [start, end) whose whole
    span lies in [floor, ceiling) (ceiling 0 means the top of the space)."""
    if end > start:
        free_range(pt, 0, 0, 0, start, end, floor, ceiling)
