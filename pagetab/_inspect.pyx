# cython: language_level=3
"""Reading the store, as fs/proc/task_mmu.c reads a process's page tables:
the frame and folio order of every page of a range (pagemap_read's
pagemap_pmd_range and pagemap_pte_hole), the pages mapped (smaps' Rss),
one address's translation; and the store's own structural invariants
(``check``, no kernel file: what a saved state must satisfy to load).
"""

cimport numpy as cnp
from libc.stdint cimport int8_t, int64_t, uint64_t

import numpy as np

from pagetab._pgtable cimport (
    E_LEAF, E_ORDER, E_ORDER_SHIFT, E_PRESENT, E_ZERO, efr, pgtables, pt_index, pt_walk,
    row_empty, row_ptr,
)

cnp.import_array()


cdef void frames_range(pgtables *pt, uint64_t start, uint64_t end, int64_t *out,
                  int8_t *orders) noexcept nogil:
    """Frame id per page into ``out`` and, if ``orders`` is not NULL,
    the order of the folio mapping it (-1 none; the zero page 0)."""
    cdef int pte = pt.nlev - 1
    cdef int pshift = pt.shift[pte]
    cdef uint64_t addr = start, size, next_, e, f
    cdef uint64_t *slot
    cdef int reached
    cdef int8_t o
    cdef int64_t k = 0, n, j
    while addr < end:
        slot = pt_walk(pt, addr, 0, 0, pte, False, &reached, NULL, NULL)
        size = <uint64_t>1 << pt.shift[reached]
        next_ = (addr & ~(size - 1)) + size
        if next_ > end or next_ == 0:
            next_ = end
        n = <int64_t>((next_ - addr) >> pshift)
        e = slot[0]
        if reached < pte and not (e & E_LEAF):
            # hole above the PTE level
            for j in range(n):
                out[k] = -1
                if orders != NULL:
                    orders[k] = -1
                k += 1
        elif reached < pte:
            f = 0 if (e & E_ZERO) else efr(e) + ((addr & (size - 1)) >> pshift)
            o = <int8_t>(pt.shift[reached] - pshift)
            for j in range(n):
                out[k] = <int64_t>f
                if orders != NULL:
                    orders[k] = o
                k += 1
                if not (e & E_ZERO):
                    f += 1
        else:
            # a whole PTE-table stretch: read the row directly
            while addr < next_:
                e = slot[0]
                out[k] = -1 if e == 0 else <int64_t>efr(e)
                if orders != NULL:
                    orders[k] = -1 if e == 0 else <int8_t>((e & E_ORDER) >> E_ORDER_SHIFT)
                k += 1
                slot += 1
                addr += <uint64_t>1 << pshift
        addr = next_


cdef object frames(pgtables *pt, uint64_t start, uint64_t end, bint with_orders):
    """Frame id per base page of [start, end) (-1 none, 0 zero page) and,
    ``with_orders``, the (frames, orders) pair of ``PageTables.folio_orders``."""
    n = (end - start) >> pt.shift[pt.nlev - 1] if end > start else 0
    out = np.empty(n, dtype=np.int64)
    orders = np.empty(n if with_orders else 0, dtype=np.int8)
    cdef int64_t[::1] v = out
    cdef int8_t[::1] ov = orders
    if n:
        with nogil:
            frames_range(pt, start, end, &v[0], &ov[0] if with_orders else NULL)
    return (out, orders) if with_orders else out


cdef int64_t count_range(pgtables *pt, int lev, int64_t row, uint64_t base, uint64_t s,
                    uint64_t e) noexcept nogil:
    cdef uint64_t *t = row_ptr(pt, lev, row)
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo, hi, ent
    cdef int i, i0, i1
    cdef int pte = pt.nlev - 1
    cdef int64_t n = 0
    i0 = pt_index(pt, lev, s)
    i1 = pt_index(pt, lev, e - 1) + 1
    for i in range(i0, i1):
        ent = t[i]
        if ent == 0:
            continue
        if lev == pte:
            n += 1
            continue
        lo = base + i * size
        hi = lo + size
        if s > lo:
            lo = s
        if e < hi or hi == 0:
            hi = e
        if ent & E_LEAF:
            n += <int64_t>((hi - lo) >> pt.shift[pte])
        else:
            n += count_range(pt, lev + 1, <int64_t>efr(ent), base + i * size, lo, hi)
    return n


cdef int64_t count_mapped(pgtables *pt, uint64_t start, uint64_t end) noexcept nogil:
    """Base pages mapped (present leaves) in [start, end)."""
    return count_range(pt, 0, 0, 0, start, end) if end > start else 0


cdef object entry(pgtables *pt, uint64_t addr):
    """(level, raw entry) of the deepest entry mapping ``addr``."""
    cdef int reached
    cdef uint64_t *slot = pt_walk(pt, addr, 0, 0, pt.nlev - 1, False, &reached, NULL, NULL)
    return reached, slot[0]


cdef int64_t translate(pgtables *pt, uint64_t addr) noexcept nogil:
    """Frame id of the base page holding ``addr``: -1 none, 0 zero page."""
    cdef int reached
    cdef uint64_t *slot = pt_walk(pt, addr, 0, 0, pt.nlev - 1, False, &reached, NULL, NULL)
    cdef uint64_t e = slot[0]
    cdef uint64_t size = <uint64_t>1 << pt.shift[reached]
    if e == 0 or (reached < pt.nlev - 1 and not (e & E_LEAF)):
        return -1
    if e & E_ZERO:
        return 0
    return <int64_t>(efr(e) + ((addr & (size - 1)) >> pt.shift[pt.nlev - 1]))


cdef list check(pgtables *pt):
    """Structural invariants; returns a list of problems (empty if sound).

    Every row below the high-water mark is either on the free list
    exactly once, or referenced exactly once from a present table entry
    of the level above (row 0 of level 0 is the pgd); free rows are
    zero; pointers stay inside the pool.
    """
    problems = []
    cdef int l, i
    cdef int64_t r, hw
    cdef uint64_t e
    cdef uint64_t *t
    refs = [np.zeros(pt.pools[l].hw, dtype=np.int64) for l in range(pt.nlev)]
    cdef int64_t[::1] rv
    refs[0][0] = 1
    for l in range(pt.nlev - 1):
        rv = refs[l + 1]
        hw = pt.pools[l + 1].hw
        for r in range(pt.pools[l].hw):
            if refs[l][r] == 0:
                continue
            t = row_ptr(pt, l, r)
            for i in range(pt.pools[l].nent):
                e = t[i]
                if e == 0 or (e & E_LEAF):
                    continue
                if not (e & E_PRESENT):
                    problems.append(f"level {l} row {r} entry {i}: non-present {e:#x}")
                    continue
                if <int64_t>efr(e) >= hw:
                    problems.append(f"level {l} row {r} entry {i}: row {efr(e)} out of pool")
                    continue
                rv[efr(e)] += 1
    for l in range(pt.nlev):
        free_rows = np.array([pt.pools[l].freelist[k] for k in range(pt.pools[l].nfree)],
                             dtype=np.int64)
        ref = refs[l]
        owner = ref.copy()
        np.add.at(owner, free_rows, 1)
        bad = np.flatnonzero(owner != 1)
        if bad.size:
            problems.append(f"level {l}: rows {bad[:8].tolist()} referenced or freed "
                            f"{owner[bad[:8]].tolist()} times (must be once)")
        if int(np.count_nonzero(ref)) != pt.pools[l].live:
            problems.append(f"level {l}: {np.count_nonzero(ref)} rows reachable but "
                            f"{pt.pools[l].live} live")
        for r in free_rows[:64]:
            if not row_empty(pt, l, r):
                problems.append(f"level {l}: free row {r} is not zero")
    return problems
