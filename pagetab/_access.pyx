# cython: language_level=3
"""The access path: TLB lookups, the hardware page walk, and page faults.

``access`` runs a batch of addresses from one CPU through its TLBs (as
the MMU would), walks the page tables on a miss (with a page-walk cache
where the arch has one) and takes the faults handle_mm_fault would take:
the zero page on reads, a fresh frame (or a THP) on writes, copy-on-write
of the zero page with its ptep_clear_flush. Faults in shared memory and
file VMAs return to Python (page caches live there), after the flush of a
private file page's copy-on-write.
"""

from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memset

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals

from pagetab._flush cimport FlushOps, Tlbs, flush_rule, tlb_flush_range
from pagetab._memory cimport MODE_READ, MODE_WRITE, fault_ctx, populate_vma_page_range
from pagetab._persist cimport mark_written
from pagetab._pgtable cimport (
    ADDR_SHIFT, E_DIRTY, E_LEAF, E_READ, E_WRITE, E_ZERO, desc_of, is_packed, leaf_class,
    packed_entry, packed_pmd_entry, pgtables, pool_index, pool_row, pt_read, pt_walk,
    pt_walk_read,
)
from pagetab._tables cimport PageTables
from pagetab._tlb cimport (
    CLS_CONT, GEN_MASK, TLB_RUNNING, VALID, TlbState, caches_huge, insert_inline, invalidate_va, lookup_level,
    tag_valid, tlb_insert_level,
)

cnp.import_array()

cdef extern from *:
    void __builtin_prefetch(const void *p) nogil


cdef struct AccessCounters:
    int64_t accesses
    int64_t l1_hits
    int64_t l2_hits
    int64_t walks
    int64_t walk_steps
    int64_t pwc_hits
    int64_t faults
    int64_t cow_faults
    int64_t huge_faults
    int64_t segv


#: accesses between two checks for a signal (Ctrl-C): about 50 ms of them
cdef int64_t ACCESS_CHUNK = 1 << 20

# VmaTable.shared: 0 the C loop faults it; HAND_BACK its faults go to
# Python (shared memory, userfaultfd MISSING ranges, file VMAs);
# HAND_BACK_COW as HAND_BACK, and a write to a clean (page-cache) page is
# a copy-on-write whose flush is taken here first (MAP_PRIVATE files)
cpdef enum:
    HAND_BACK = 1
    HAND_BACK_COW = 2


cdef struct VmaTable:
    int64_t n
    uint64_t *start
    uint64_t *end
    int64_t *prot
    uint64_t *thp_lo
    uint64_t *thp_hi
    uint64_t *orders
    int64_t *shared
    uint8_t *touched


cdef int64_t find_vma(VmaTable *v, uint64_t addr) noexcept nogil:
    cdef int64_t lo = 0, hi = v.n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if v.end[mid] <= addr:
            lo = mid + 1
        else:
            hi = mid
    if lo < v.n and v.start[lo] <= addr:
        return lo
    return -1


cdef inline int walk_leaf(pgtables *pt, TlbState *s, int cpu, uint64_t addr, uint64_t e,
                   int reached, uint64_t *entry, int *steps, AccessCounters *c) noexcept nogil:
    """The hardware page walk; ``e``/``reached`` are pt_read's answer for
    ``addr``. Returns the leaf's size class (-1: none)."""
    cdef int w, victim = 0, pte = pt.nlev - 1
    cdef uint64_t key, best = 0xffffffff
    cdef bint pwc_hit = False
    if s.pwc_ways:
        key = VALID | ((s.gen[cpu] & GEN_MASK) << 48) | (addr >> s.pmd_shift)
        for w in range(s.pwc_ways):
            if s.pwc_tag[cpu * s.pwc_ways + w] == key:
                pwc_hit = True
                s.clock[cpu] += 1
                s.pwc_lru[cpu * s.pwc_ways + w] = s.clock[cpu]
                break
    entry[0] = e
    if pwc_hit:
        steps[0] = 1
        c.pwc_hits += 1
    else:
        steps[0] = reached + 1
        if s.pwc_ways and reached == pte:
            # cache the pmd-level pointer to this PTE table
            for w in range(s.pwc_ways):
                if not tag_valid(s, cpu, s.pwc_tag[cpu * s.pwc_ways + w]):
                    victim = w
                    break
                if s.pwc_lru[cpu * s.pwc_ways + w] < best:
                    best = s.pwc_lru[cpu * s.pwc_ways + w]
                    victim = w
            s.clock[cpu] += 1
            s.pwc_tag[cpu * s.pwc_ways + victim] = key
            s.pwc_used[cpu] = 1
            s.pwc_lru[cpu * s.pwc_ways + victim] = s.clock[cpu]
    return leaf_class(e, reached, pte, CLS_CONT if s.nclass > CLS_CONT else 0)


cdef inline uint64_t leaf_frame(pgtables *pt, uint64_t e, int level, uint64_t addr) noexcept nogil:
    """The frame of ``addr``'s page in the leaf ``e`` at ``level``: a PTE
    (of a contiguous block too) maps exactly its page, a huge leaf its
    head frame and the pages after it."""
    cdef int sh = pt.shift[level]
    if e & E_ZERO:
        return 0
    return (e >> ADDR_SHIFT) + ((addr & (((<uint64_t>1) << sh) - 1)) >> pt.shift[pt.nlev - 1])


cdef inline void flush_counters(AccessCounters *c, int64_t accesses, int64_t l1_hits,
                                int64_t l2_hits, int64_t walks, int64_t walk_steps) noexcept nogil:
    c.accesses += accesses
    c.l1_hits += l1_hits
    c.l2_hits += l2_hits
    c.walks += walks
    c.walk_steps += walk_steps


cdef int64_t access_loop(pgtables *pt, TlbState *s, const flush_rule *rule, VmaTable *v,
                         int cpu, uint64_t *addrs, int64_t n, int64_t i0, bint write,
                         AccessCounters *c, FlushOps *ops) noexcept nogil:
    """Run accesses from index i0; returns n, or the index of an access
    whose fault needs Python (a shared mapping) or -1-i on out of memory."""
    cdef int64_t i, vi
    cdef uint64_t addr, frame, e, page
    cdef int cls, steps, tries
    cdef int64_t installed
    cdef fault_ctx ctx
    cdef uint64_t psize = (<uint64_t>1) << s.page_shift
    cdef uint64_t pmd = (<uint64_t>1) << s.pmd_shift
    cdef bint wp, writable
    cdef int reached
    cdef uint64_t *slot
    # software pipelining in two stages: access i + 2D walks down to its
    # pmd entry (prefetched), access i + D continues to its pte (prefetched),
    # access i finds both in cache. A fault changes the tables, so walks
    # computed before it are redone.
    cdef uint64_t *ring_slot[64]
    cdef int ring_reached[64]
    # RING: a power of two above 2 * D (an entry lives from stage A to use)
    cdef int64_t RING = 64, D = 16, j, k, stale_before = i0 + 2 * D
    cdef int upper = pt.nlev - 2
    cdef uint64_t *pmd_row[64]
    cdef uint64_t pmd_key[64]
    cdef uint64_t ckey, ci
    memset(pmd_key, 0, sizeof(pmd_key))
    # hot counters live in registers; written back at the end
    cdef int64_t l1_hits = 0, l2_hits = 0, walks = 0, walk_steps = 0
    # while this CPU caches base pages only (the common case), lookups probe
    # one array per level; the first huge entry filled ends it
    cdef bint base_only = not caches_huge(s, cpu)
    for i in range(i0, n):
        j = i + 2 * D
        if j < n:
            k = j & (RING - 1)
            # the PMD table of this address, remembered per PUD entry (the
            # simulator's own walk cache; rows never move or get freed here)
            ckey = (addrs[j] >> pt.shift[upper - 1]) + 1
            ci = ckey & 63
            if pmd_key[ci] == ckey:
                ring_slot[k] = pmd_row[ci] + pool_index(&pt.pools[upper], pt.shift[upper],
                                                        addrs[j])
                ring_reached[k] = upper
            else:
                ring_slot[k] = pt_walk_read(pt, addrs[j], upper, &ring_reached[k])
                if ring_reached[k] == upper:
                    pmd_key[ci] = ckey
                    pmd_row[ci] = ring_slot[k] - pool_index(&pt.pools[upper], pt.shift[upper],
                                                            addrs[j])
            __builtin_prefetch(ring_slot[k])
        j = i + D
        if j < n and j >= i0 + 2 * D:
            k = j & (RING - 1)
            # (a packed PTE or PMD table is read at use: its descriptor, prefetched)
            if ring_reached[k] == upper and is_packed(ring_slot[k][0]):
                __builtin_prefetch(desc_of(pt, ring_slot[k][0]))
            elif ring_reached[k] == upper - 1 and is_packed(ring_slot[k][0]):
                __builtin_prefetch(pool_row(&pt.packed_pmd,
                                            <int64_t>(ring_slot[k][0] >> ADDR_SHIFT)))
            elif ring_reached[k] == upper and ring_slot[k][0] != 0 \
                    and not (ring_slot[k][0] & E_LEAF):
                ring_slot[k] = pt_walk(pt, addrs[j], upper + 1,
                                       <int64_t>(ring_slot[k][0] >> ADDR_SHIFT), upper + 1,
                                       False, &ring_reached[k], NULL, NULL)
                __builtin_prefetch(ring_slot[k])
        addr = addrs[i]
        cls = lookup_level(s, cpu, 1, addr, write, base_only, &frame, &writable)
        if cls >= 0:
            l1_hits += 1
            if write:
                mark_written(pt, frame)
            continue
        wp = cls == -2
        if not wp:
            cls = lookup_level(s, cpu, 2, addr, write, base_only, &frame, &writable)
            if cls >= 0:
                l2_hits += 1
                tlb_insert_level(s, cpu, 1, addr, cls, frame, writable)
                if write:
                    mark_written(pt, frame)
                continue
            wp = cls == -2
        if wp:
            # a write through a read-only entry: drop it (spurious fault fix-up)
            invalidate_va(s, cpu, addr)
        tries = 0
        while True:
            walks += 1
            if tries == 0 and i >= stale_before:
                slot = ring_slot[i & (RING - 1)]
                reached = ring_reached[i & (RING - 1)]
                e = slot[0]
                if reached == upper and is_packed(e):
                    e = packed_entry(pt, e, addr)
                    reached = upper + 1
                elif reached == upper - 1 and is_packed(e):
                    e = packed_pmd_entry(pt, e, addr, &reached)
            else:
                e = pt_read(pt, addr, pt.nlev - 1, &reached)
            cls = walk_leaf(pt, s, cpu, addr, e, reached, &e, &steps, c)
            walk_steps += steps
            if cls >= 0 and (e & E_READ) and (not write or (e & E_WRITE)):
                frame = leaf_frame(pt, e, reached, addr)
                insert_inline(s, cpu, addr, cls, frame, (e & E_WRITE) != 0)
                if write:
                    mark_written(pt, frame)
                if cls > 0:
                    base_only = False
                break
            # page fault: handle_mm_fault
            vi = find_vma(v, addr)
            if vi < 0 or v.prot[vi] == 0 or (write and not (v.prot[vi] & 2)) or tries:
                c.segv += 1
                break
            if v.shared[vi]:
                if v.shared[vi] == HAND_BACK_COW and write and cls >= 0 \
                        and not (e & E_DIRTY):
                    # a write to the page cache's read-only page in a private
                    # file mapping: wp_page_copy's ptep_clear_flush, here;
                    # Python maps the copy
                    c.cow_faults += 1
                    tlb_flush_range(rule, s, ops, cpu, addr & ~(psize - 1),
                                    (addr & ~(psize - 1)) + psize, s.page_shift)
                flush_counters(c, i - i0, l1_hits, l2_hits, walks, walk_steps)
                return i
            page = addr & ~(psize - 1)
            if cls >= 0:
                # write to the zero page or a read-only private page: COW,
                # ptep_clear_flush (flush_tlb_page) before the new frame
                c.cow_faults += 1
                if cls == 0 or cls == CLS_CONT:
                    tlb_flush_range(rule, s, ops, cpu, page, page + psize, s.page_shift)
                else:
                    tlb_flush_range(rule, s, ops, cpu, addr & ~(pmd - 1),
                                    (addr & ~(pmd - 1)) + pmd, s.class_shift[cls])
            installed = 0
            memset(&ctx, 0, sizeof(ctx))
            ctx.mode = MODE_WRITE if write else MODE_READ
            ctx.prot_read = (v.prot[vi] & 1) != 0
            ctx.prot_write = (v.prot[vi] & 2) != 0
            ctx.thp_lo = v.thp_lo[vi]
            ctx.thp_hi = v.thp_hi[vi]
            ctx.vm_start = v.start[vi]
            ctx.vm_end = v.end[vi]
            ctx.orders = v.orders[vi]
            if populate_vma_page_range(pt, page, page + psize, &ctx, &installed) < page + psize:
                flush_counters(c, i - i0, l1_hits, l2_hits, walks, walk_steps)
                return -1 - i
            c.faults += 1
            stale_before = i + 2 * D + 1
            if v.thp_hi[vi] > v.thp_lo[vi] and (addr & ~(pmd - 1)) >= v.thp_lo[vi] \
                    and (addr & ~(pmd - 1)) + pmd <= v.thp_hi[vi]:
                c.huge_faults += 1
                v.touched[vi] = 1
            if write:
                v.touched[vi] = 1
            tries += 1
    flush_counters(c, n - i0, l1_hits, l2_hits, walks, walk_steps)
    return n


def access(Tlbs tlbs not None, PageTables tables not None, cnp.ndarray addrs, int cpu, bint write,
           vmas, int64_t start=0):
    """Run ``addrs`` (uint64, contiguous) from index ``start`` on ``cpu``.

    ``vmas`` holds the VMAs as arrays (start, end, prot, thp_lo, thp_hi,
    orders, shared, touched). Returns (stopped_at, counters, flush ops): stopped_at
    is len(addrs), the index of an access whose fault needs Python (shared
    memory), or -1-i when the page tables ran out of memory at access i.
    Counters and flush ops are dicts named by their C structs' fields.
    """
    cdef AccessCounters c
    cdef FlushOps ops
    cdef VmaTable v
    cdef pgtables *pt = &tables.pgt
    cdef TlbState *s = &tlbs.s
    cdef uint64_t[::1] a = addrs
    cdef uint64_t[::1] vs = vmas["start"]
    cdef uint64_t[::1] ve = vmas["end"]
    cdef int64_t[::1] vp = vmas["prot"]
    cdef uint64_t[::1] vl = vmas["thp_lo"]
    cdef uint64_t[::1] vh = vmas["thp_hi"]
    cdef uint64_t[::1] vo = vmas["orders"]
    cdef int64_t[::1] vsh = vmas["shared"]
    cdef uint8_t[::1] vt = vmas["touched"]
    cdef int64_t n = a.shape[0], r, end
    if not 0 <= cpu < s.ncpu:
        raise ValueError(f"cpu must be in 0..{s.ncpu - 1}, not {cpu}")
    if not (vs.shape[0] == ve.shape[0] == vp.shape[0] == vl.shape[0] == vh.shape[0]
            == vo.shape[0] == vsh.shape[0] == vt.shape[0]):
        raise ValueError("vmas: every array must have one entry per VMA")
    if not 0 <= start <= n:
        raise ValueError(f"start must be in 0..{n}, not {start}")
    memset(&c, 0, sizeof(AccessCounters))
    memset(&ops, 0, sizeof(FlushOps))
    v.n = vs.shape[0]
    if v.n:
        v.start = &vs[0]
        v.end = &ve[0]
        v.prot = &vp[0]
        v.thp_lo = &vl[0]
        v.thp_hi = &vh[0]
        v.orders = &vo[0]
        v.shared = &vsh[0]
        v.touched = &vt[0]
    s.cpumask[cpu] = 1
    s.lazy[cpu] = TLB_RUNNING  # it runs the mm again
    r = start
    while r < n:
        # in chunks, Ctrl-C (any signal's handler) checked between them
        if r != start:
            PyErr_CheckSignals()
        end = min(n, r + ACCESS_CHUNK)
        with nogil:
            r = access_loop(pt, s, &tlbs.rule, &v, cpu, &a[0], end, r, write, &c, &ops)
        if r != end:
            break  # a fault for Python, or out of page-table memory
    return r, c, ops
