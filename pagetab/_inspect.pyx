# cython: language_level=3
"""Reading the store, as fs/proc/task_mmu.c reads a process's page tables:
the frame and folio order of every page of a range (pagemap_read's
pagemap_pmd_range and pagemap_pte_hole), the pages mapped (smaps' Rss),
both callbacks on the store's walker (``walk_page_range``); one address's
translation; and the store's own structural invariants
(``check``, no kernel file: what a saved state must satisfy to load).
"""

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int8_t, int64_t, uint64_t

import numpy as np

from pagetab._pgtable cimport (
    ACTION_CONTINUE, ADDR_SHIFT, E_FLAGS, Pool, E_LEAF, E_ORDER, E_ORDER_SHIFT, E_PACKED, E_PRESENT,
    E_ZERO, PD_EMPTY, count_entries, d_count, d_get, d_hi, d_lo, d_step, efr, is_packed, mm_walk,
    mm_walk_ops, pgtables, pmd_desc_pte, pool_row, pt_read, row_empty, row_ptr, walk_page_range,
)

cnp.import_array()


cdef struct frames_walk:
    uint64_t start            # out[0] is the page at start
    int64_t n                 # pages in out
    int64_t *out              # frame id per page
    int8_t *orders            # folio order per page, or NULL


cdef inline int64_t page_index(mm_walk *walk, uint64_t addr) noexcept nogil:
    return <int64_t>((addr - (<frames_walk*>walk.private).start) >> walk.pt.shift[walk.pt.nlev - 1])


cdef int frames_hole(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                     uint64_t next) noexcept nogil:
    """pagemap_pte_hole: no table below, no page mapped."""
    cdef frames_walk *fw = <frames_walk*>walk.private
    cdef int64_t k = page_index(walk, addr)
    cdef int64_t j, n = <int64_t>((next - addr) >> walk.pt.shift[walk.pt.nlev - 1])
    for j in range(k, k + n):
        fw.out[j] = -1
        if fw.orders != NULL:
            fw.orders[j] = -1
    return 0


cdef int frames_huge(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                     uint64_t next) noexcept nogil:
    """pagemap_pmd_range on a huge leaf: its frames, page after page (the
    huge zero page: frame 0 throughout), the level's order."""
    cdef frames_walk *fw = <frames_walk*>walk.private
    cdef pgtables *pt = walk.pt
    cdef uint64_t e = slot[0], f
    cdef int pshift = pt.shift[pt.nlev - 1]
    cdef int8_t o = <int8_t>(pt.shift[lev] - pshift)
    cdef int64_t j, k = page_index(walk, addr), n = <int64_t>((next - addr) >> pshift)
    f = 0 if (e & E_ZERO) else efr(e) + ((addr & ((<uint64_t>1 << pt.shift[lev]) - 1)) >> pshift)
    for j in range(k, k + n):
        fw.out[j] = <int64_t>f
        if fw.orders != NULL:
            fw.orders[j] = o
        if not (e & E_ZERO):
            f += 1
    walk.action = ACTION_CONTINUE
    return 0


cdef int frames_ptes(mm_walk *walk, uint64_t *t, int i0, int i1, uint64_t addr,
                     uint64_t next) noexcept nogil:
    """pagemap_pmd_range's PTE loop: each PTE's frame and folio order."""
    cdef frames_walk *fw = <frames_walk*>walk.private
    cdef int64_t k = page_index(walk, addr)
    cdef uint64_t e
    cdef int i
    if k + (i1 - i0) > fw.n:
        i1 = i0 + <int>(fw.n - k)  # a range not page aligned at its end
    for i in range(i0, i1):
        e = t[i]
        fw.out[k] = -1 if e == 0 else <int64_t>efr(e)
        if fw.orders != NULL:
            fw.orders[k] = -1 if e == 0 else <int8_t>((e & E_ORDER) >> E_ORDER_SHIFT)
        k += 1
    return 0


cdef int frames_packed(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                       uint64_t addr, uint64_t next) noexcept nogil:
    """frames_ptes on a packed table, read from its descriptor."""
    cdef frames_walk *fw = <frames_walk*>walk.private
    cdef int64_t k = page_index(walk, addr)
    cdef uint64_t e
    cdef int i
    if k + (i1 - i0) > fw.n:
        i1 = i0 + <int>(fw.n - k)
    for i in range(i0, i1):
        e = d_get(d, i)
        fw.out[k] = -1 if e == 0 else <int64_t>efr(e)
        if fw.orders != NULL:
            fw.orders[k] = -1 if e == 0 else <int8_t>((e & E_ORDER) >> E_ORDER_SHIFT)
        k += 1
    return 0


cdef mm_walk_ops FRAMES_OPS = mm_walk_ops(
    pud_leaf=frames_huge, pmd_leaf=frames_huge, pte_range=frames_ptes, pte_hole=frames_hole,
    post_table=NULL, packed_range=frames_packed, repack=False, reads_only=True)


cdef object frames(pgtables *pt, uint64_t start, uint64_t end, bint with_orders):
    """Frame id per base page of [start, end) (-1 none, 0 zero page) and,
    ``with_orders``, the (frames, orders) pair of ``PageTables.folio_orders``."""
    n = (end - start) >> pt.shift[pt.nlev - 1] if end > start else 0
    out = np.empty(n, dtype=np.int64)
    orders = np.empty(n if with_orders else 0, dtype=np.int8)
    cdef int64_t[::1] v = out
    cdef int8_t[::1] ov = orders
    cdef frames_walk fw
    if n:
        fw.start = start
        fw.n = n
        fw.out = &v[0]
        fw.orders = &ov[0] if with_orders else NULL
        with nogil:
            walk_page_range(pt, start, end, &FRAMES_OPS, &fw, NULL)
    return (out, orders) if with_orders else out


cdef int count_huge(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                    uint64_t next) noexcept nogil:
    """smaps_pmd_entry: a huge leaf's pages in the range."""
    (<int64_t*>walk.private)[0] += <int64_t>((next - addr) >> walk.pt.shift[walk.pt.nlev - 1])
    walk.action = ACTION_CONTINUE
    return 0


cdef int count_ptes(mm_walk *walk, uint64_t *t, int i0, int i1, uint64_t addr,
                    uint64_t next) noexcept nogil:
    """smaps_pte_range: the mapped PTEs (every one not none)."""
    (<int64_t*>walk.private)[0] += count_entries(t, i0, i1, ~(<uint64_t>0))
    return 0


cdef int count_packed(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                      uint64_t addr, uint64_t next) noexcept nogil:
    (<int64_t*>walk.private)[0] += d_count(d, i0, i1, ~(<uint64_t>0))
    return 0


cdef mm_walk_ops COUNT_OPS = mm_walk_ops(
    pud_leaf=count_huge, pmd_leaf=count_huge, pte_range=count_ptes, pte_hole=NULL,
    post_table=NULL, packed_range=count_packed, repack=False, reads_only=True)


cdef int64_t count_mapped(pgtables *pt, uint64_t start, uint64_t end) noexcept nogil:
    """Base pages mapped (present leaves) in [start, end)."""
    cdef int64_t n = 0
    walk_page_range(pt, start, end, &COUNT_OPS, &n, NULL)
    return n


cdef object entry(pgtables *pt, uint64_t addr):
    """(level, raw entry) of the deepest entry mapping ``addr``."""
    cdef int reached
    cdef uint64_t e = pt_read(pt, addr, pt.nlev - 1, &reached)
    return reached, e


cdef int64_t translate(pgtables *pt, uint64_t addr) noexcept nogil:
    """Frame id of the base page holding ``addr``: -1 none, 0 zero page."""
    cdef int reached
    cdef uint64_t e = pt_read(pt, addr, pt.nlev - 1, &reached)
    cdef uint64_t size = <uint64_t>1 << pt.shift[reached]
    if e == 0 or (reached < pt.nlev - 1 and not (e & E_LEAF)):
        return -1
    if e & E_ZERO:
        return 0
    return <int64_t>(efr(e) + ((addr & (size - 1)) >> pt.shift[pt.nlev - 1]))


#: check() looks for Ctrl-C once per this many rows, plus one (some 80 ms of
#: descriptors)
cdef int64_t SIGNAL_ROWS = (1 << 16) - 1


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
    packed_refs = np.zeros(pt.packed.hw, dtype=np.int64)
    cdef int64_t[::1] pv = packed_refs
    pmd_refs = np.zeros(pt.packed_pmd.hw, dtype=np.int64)
    cdef int64_t[::1] ppv = pmd_refs
    cdef int64_t held = 0
    for l in range(pt.nlev - 1):
        rv = refs[l + 1]
        hw = pt.pools[l + 1].hw
        for r in range(pt.pools[l].hw):
            if not r & (SIGNAL_ROWS >> 6):  # a row is 512 entries
                PyErr_CheckSignals()  # Ctrl-C: millions of rows at many TiB
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
                if e & E_PACKED:
                    if l == pt.nlev - 3:
                        if <int64_t>efr(e) >= pt.packed_pmd.hw:
                            problems.append(f"level {l} row {r} entry {i}: packed PMD table "
                                            f"{efr(e)} out of pool")
                        else:
                            ppv[efr(e)] += 1
                    elif l != pt.nlev - 2:
                        problems.append(f"level {l} row {r} entry {i}: packed above the PUDs")
                    elif <int64_t>efr(e) >= pt.packed.hw:
                        problems.append(f"level {l} row {r} entry {i}: packed table {efr(e)} "
                                        "out of pool")
                    else:
                        pv[efr(e)] += 1
                    continue
                if <int64_t>efr(e) >= hw:
                    problems.append(f"level {l} row {r} entry {i}: row {efr(e)} out of pool")
                    continue
                rv[efr(e)] += 1
    for l in range(pt.nlev):
        free_rows = ownership(&pt.pools[l], refs[l], f"level {l}: rows", problems)
        for r in free_rows[:64]:
            if not row_empty(pt, l, r):
                problems.append(f"level {l}: free row {r} is not zero")
    ownership(&pt.packed, packed_refs, "packed tables", problems)
    ownership(&pt.packed_pmd, pmd_refs, "packed PMD tables", problems)
    for r in range(pt.packed_pmd.hw):
        why = pmd_descriptor_problem(pt, pool_row(&pt.packed_pmd, r), ppv[r] == 0)
        if why:
            problems.append(f"packed PMD table {r}: {why}")
        elif ppv[r]:
            held += d_hi(pool_row(&pt.packed_pmd, r)) - d_lo(pool_row(&pt.packed_pmd, r))
    if held != pt.packed_pmd_ptes:
        problems.append(f"packed PMD tables hold {held} PTE tables, "
                        f"counted {pt.packed_pmd_ptes}")
    for r in range(pt.packed.hw):
        if not r & SIGNAL_ROWS:
            PyErr_CheckSignals()  # Ctrl-C: 8 M descriptors (10 s) at 16 TiB
        why = descriptor_problem(pt, pool_row(&pt.packed, r), pv[r] == 0)
        if why:
            problems.append(f"packed table {r}: {why}")
            if len(problems) > 64:
                break
    return problems


cdef object ownership(Pool *p, refs, str what, list problems):
    """Every row of ``p`` referenced once (``refs``) or on the free list
    once, and as many referenced as live; returns the free list."""
    free_rows = np.array([p.freelist[k] for k in range(p.nfree)], dtype=np.int64)
    owner = refs.copy()
    np.add.at(owner, free_rows, 1)
    bad = np.flatnonzero(owner != 1)
    if bad.size:
        problems.append(f"{what} {bad[:8].tolist()} referenced or freed "
                        f"{owner[bad[:8]].tolist()} times (must be once)")
    if int(np.count_nonzero(refs)) != p.live:
        problems.append(f"{what}: {np.count_nonzero(refs)} reachable but {p.live} live")
    return free_rows


cdef str pmd_descriptor_problem(pgtables *pt, const uint64_t *d, bint free_):
    """Why ``d`` is not a packed PMD table's descriptor ('' when it is):
    its run of PMD entries inside the table, and either PD_EMPTY with no
    template, or a full PTE run from each entry that
    ``descriptor_problem`` accepts as one run across the table."""
    cdef int lo = d_lo(d), hi = d_hi(d), nent = pt.pools[pt.nlev - 2].nent
    cdef uint64_t first[2]
    cdef uint64_t last[2]
    if free_ or d[1] == 0:
        return "" if d[0] == 0 and d[1] == 0 else (
            "free but not zero" if free_ else "an empty table with a template")
    if (d[1] & ~PD_EMPTY) >> 40 or d_step(d) > 1:
        return f"bad step or stray bits ({d[1]:#x})"
    if not lo < hi <= nent:
        return f"run [{lo}, {hi}) outside a table of {nent} entries"
    if d[1] & PD_EMPTY:
        return "" if d[0] == 0 and d_step(d) == 0 else "empty PTE tables with a template"
    # its first and last PTE tables, each a run descriptor_problem accepts,
    # and the frames between them rising (no wrap)
    pmd_desc_pte(pt, d, lo, first)
    pmd_desc_pte(pt, d, hi - 1, last)
    why = descriptor_problem(pt, first, False) or descriptor_problem(pt, last, False)
    if why:
        return why
    if d_step(d) and (d_get(last, 0) >> ADDR_SHIFT) < (d_get(first, 0) >> ADDR_SHIFT):
        return "frames wrap around"
    return ""


cdef str descriptor_problem(pgtables *pt, const uint64_t *d, bint free_):
    """Why the descriptor ``d`` is not one a packed PTE table can hold
    ('' when it is): its run inside the table, step 0 or 1, every entry
    of the run not none and not a table pointer, frames of a step-1 run
    consecutive below the frame counter and not the zero page."""
    cdef int lo = d_lo(d), hi = d_hi(d), nent = pt.pools[pt.nlev - 1].nent
    cdef uint64_t step = d_step(d), first, last
    if free_:
        return "" if d[0] == 0 and d[1] == 0 else "free but not zero"
    if d[1] == 0:
        return "" if d[0] == 0 else "an empty run with a template"
    if d[1] >> 40 or step > 1:
        return f"bad step or stray bits ({d[1]:#x})"
    if not lo < hi <= nent:
        return f"run [{lo}, {hi}) outside a table of {nent} entries"
    if not (d[0] & E_FLAGS) or (d[0] & E_LEAF):
        return f"template {d[0]:#x} has no flags or a leaf/table bit"
    if step == 0 and not (d[0] & E_ZERO):
        return "a step-0 run that is not the zero page"
    if step == 1:
        first = d_get(d, lo) >> ADDR_SHIFT
        last = d_get(d, hi - 1) >> ADDR_SHIFT
        if d[0] & E_ZERO or first == 0 or last < first or last >= pt.next_frame:
            return f"frames {first}..{last} not consecutive below {pt.next_frame}"
    return ""
