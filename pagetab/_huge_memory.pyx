# cython: language_level=3
"""mm/huge_memory.c on the store: splitting a huge leaf into a table
(__split_huge_pmd, __split_huge_pud), the split at a VMA boundary
(split_huge_pmd_address from vma_adjust_trans_huge), and a huge leaf
installed whole (vmf_insert_pfn_pud's DAX leaf). zap (_memory),
change_protection (_mprotect) and both move engines split through here.
"""

from libc.stdint cimport int64_t, uint64_t

from pagetab._pgtable cimport (
    ADDR_SHIFT, E_CONT, E_DIRTY, E_FLAGS, E_LEAF, E_ORDER_SHIFT, E_PRESENT, E_READ, E_WRITE,
    E_PACKED, E_SOFTDIRTY, E_ZERO, alloc_frames, alloc_packed, alloc_row, d_set, efr, pgtables,
    pool_row, pt_walk, pt_walk_read, row_ptr,
)


cdef int64_t split_huge_pmd(pgtables *pt, int lev, uint64_t *slot) noexcept nogil:
    """__split_huge_pmd: replace a huge leaf by a table of smaller leaves.

    The new table maps the same frames (head + i) with the same flags; a
    huge zero page becomes zero-page entries. A PTE table is one run: in
    a store that packs, it is made packed. Returns 0, or -1 when no table
    can be had.
    """
    cdef uint64_t e = slot[0]
    cdef int64_t row
    cdef uint64_t *t
    cdef uint64_t flags, base, step
    cdef int i, n = pt.pools[lev + 1].nent
    cdef bint packed = pt.pack and lev + 1 == pt.nlev - 1
    row = alloc_packed(pt) if packed else alloc_row(pt, lev + 1)
    if row < 0:
        return -1
    flags = e & E_FLAGS
    base = efr(e)
    step = 0 if (e & E_ZERO) else (<uint64_t>1 << (pt.shift[lev + 1] - pt.shift[pt.nlev - 1]))
    if lev + 1 == pt.nlev - 1:
        flags &= ~(<uint64_t>E_LEAF)
        if e & E_ZERO:
            # __split_huge_zero_page_pmd: fresh zero-page PTEs, not soft-dirty
            flags &= ~(<uint64_t>E_SOFTDIRTY)
        else:
            # __split_huge_pmd: the PTEs map the same (still large) folio,
            # written by one set_ptes (contiguous blocks where folded)
            flags |= <uint64_t>(pt.shift[lev] - pt.shift[lev + 1]) << E_ORDER_SHIFT
            if pt.cont_ptes:
                flags |= E_CONT
    if packed:
        d_set(pool_row(&pt.packed, row), flags | (base << ADDR_SHIFT), 0, n, step)
        slot[0] = E_PRESENT | E_PACKED | (<uint64_t>row << ADDR_SHIFT)
        return 0
    t = row_ptr(pt, lev + 1, row)
    for i in range(n):
        t[i] = flags | ((base + i * step) << ADDR_SHIFT)
    slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
    return 0


cdef bint split_huge_pmd_address(pgtables *pt, uint64_t addr) noexcept nogil:
    """Split any huge leaf that straddles ``addr`` (vma_adjust_trans_huge).

    Returns False if a split could not allocate its table.
    """
    cdef int l, reached
    cdef uint64_t *slot
    cdef uint64_t size
    for l in range(pt.nlev - 1):
        # down to the PMD level at most: a PTE table (packed or not) has no
        # leaf to split, nor has a packed PMD table
        slot = pt_walk_read(pt, addr, pt.nlev - 2, &reached)
        if slot[0] == 0 or not (slot[0] & E_LEAF):
            return True
        size = <uint64_t>1 << pt.shift[reached]
        if addr & (size - 1) == 0:
            return True
        if split_huge_pmd(pt, reached, slot) < 0:
            return False
    return True


cdef object set_leaf(pgtables *pt, int level, uint64_t addr, bint writable):
    """Install a huge leaf of fresh frames at ``level`` for ``addr``, as
    vmf_insert_pfn_pud installs a DAX leaf (faults never make one).

    The slot must be empty and ``addr`` aligned to the level. Returns the
    head frame id.
    """
    cdef int reached
    cdef uint64_t *slot
    cdef uint64_t size, head
    if not 0 < level < pt.nlev - 1:
        raise ValueError(f"level must be in 1..{pt.nlev - 2} (a level above the PTEs)")
    size = <uint64_t>1 << pt.shift[level]
    if addr & (size - 1):
        raise ValueError(f"addr {addr:#x} is not aligned to {size:#x}")
    slot = pt_walk(pt, addr, 0, 0, level, True, &reached, NULL, NULL)
    if slot == NULL:
        raise MemoryError("cannot allocate page tables")
    if reached != level or slot[0] != 0:
        raise ValueError(f"the level-{level} entry for {addr:#x} is not empty")
    head = alloc_frames(pt, size >> pt.shift[pt.nlev - 1])
    slot[0] = (E_PRESENT | E_READ | E_LEAF | E_DIRTY | (E_WRITE if writable else 0)
               | (head << ADDR_SHIFT))
    return head
