# cython: language_level=3
"""Per-CPU TLB arrays: lookup, fill, invalidation, counting.

Each CPU has the set-associative arrays of its arch profile (L1 data TLB
and second-level TLB, each holding some leaf sizes), LRU replacement, and
an optional page-walk cache. The flush rules that decide which of these
operations a flush_tlb_range performs live in _flush.pyx; the access path
that fills the arrays lives in _access.pyx.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort
from libc.string cimport memset


# ----------------------------------------------------------------------
# invalidation

cdef int64_t invalidate_va(TlbState *s, int cpu, uint64_t addr) noexcept nogil:
    """INVLPG / TLBI VAE1IS / tlbie for one address on one CPU: every entry
    of any size mapping ``addr``, and the walk-cache entry above it."""
    cdef int i, c, w
    cdef TlbArray *a
    cdef int64_t base, n = 0
    cdef uint64_t key
    if s.valid[cpu] <= 0:
        return 0
    for i in range(s.narrays):
        a = &s.arrays[i]
        for c in range(s.nclass):
            if not (a.classes >> c) & 1 or ccount(s, cpu, i, c)[0] == 0:
                continue
            key = make_tag(s, cpu, addr, c)
            base = array_slot(s, a, cpu, addr, c)
            for w in range(a.ways):
                if a.tag[base + w] == key:
                    a.tag[base + w] = 0
                    demote_way(a, base, w)
                    s.valid[cpu] -= 1
                    ccount(s, cpu, i, c)[0] -= 1
                    n += 1
    if s.pwc_ways:
        key = VALID | ((s.gen[cpu] & GEN_MASK) << 48) | (addr >> s.pmd_shift)
        for w in range(s.pwc_ways):
            if s.pwc_tag[cpu * s.pwc_ways + w] == key:
                s.pwc_tag[cpu * s.pwc_ways + w] = 0
    return n


cdef int64_t scan_cpu(TlbState *s, int cpu, uint64_t lo, uint64_t hi, bint clear,
                      int64_t *outside) noexcept nogil:
    """Valid entries of one CPU overlapping [lo, hi); optionally clear them.
    ``outside`` (if not NULL) gets the valid entries outside the range."""
    cdef int i
    cdef int64_t k, n, inside = 0, out = 0
    cdef TlbArray *a
    cdef uint64_t t, base, size
    if s.valid[cpu] <= 0:
        return 0
    for i in range(s.narrays):
        a = &s.arrays[i]
        n = (<int64_t>1 << a.sets_shift) * a.ways
        for k in range(<int64_t>cpu * n, <int64_t>cpu * n + n):
            t = a.tag[k]
            if not tag_valid(s, cpu, t):
                continue
            base = tag_base(s, t, &size)
            if base < hi and base + size > lo:
                inside += 1
                if clear:
                    a.tag[k] = 0
                    demote_way(a, k - (k % a.ways), <int>(k % a.ways))
                    s.valid[cpu] -= 1
                    ccount(s, cpu, i, <int>(t & 3))[0] -= 1
            else:
                out += 1
    if outside != NULL:
        outside[0] += out
    return inside


cdef int64_t invalidate_range_cpu(TlbState *s, int cpu, uint64_t start, uint64_t end,
                                  int stride_shift) noexcept nogil:
    """Per-page invalidation of [start, end) by ``stride`` on one CPU; scans
    the arrays instead when that is cheaper (same result)."""
    cdef uint64_t addr, npages = (end - start) >> stride_shift
    cdef int64_t n = 0
    if s.valid[cpu] <= 0:
        return 0
    if npages * <uint64_t>s.probe_cost > <uint64_t>s.entries_per_cpu:
        # same result, fewer tag compares
        n = scan_cpu(s, cpu, start, end, True, NULL)
        flush_pwc_cpu(s, cpu)
        return n
    addr = start
    while addr < end:
        n += invalidate_va(s, cpu, addr)
        addr += (<uint64_t>1) << stride_shift
    return n



cdef void flush_pwc_cpu(TlbState *s, int cpu) noexcept nogil:
    """Drop every page-walk-cache entry of one CPU."""
    if s.pwc_ways:
        memset(&s.pwc_tag[cpu * s.pwc_ways], 0, s.pwc_ways * sizeof(uint64_t))


cdef void flush_all_cpu(TlbState *s, int cpu, uint64_t start, uint64_t end,
                        int64_t *inside, int64_t *outside) noexcept nogil:
    """A full / ASID / PID flush of one CPU: O(1) by generation. If
    ``inside`` is not NULL, first counts the valid entries it destroys in
    [start, end) there and those outside the range in ``outside``."""
    cdef TlbArray *a
    cdef int i
    if not tlb_cpu_cached(s, cpu):
        return  # nothing cached: nothing to invalidate
    if s.valid[cpu] > 0 and inside != NULL:
        inside[0] += scan_cpu(s, cpu, start, end, False, outside)
    s.gen[cpu] += 1
    s.valid[cpu] = 0
    s.pwc_used[cpu] = 0  # the new generation leaves every cached walk stale
    memset(ccount(s, cpu, 0, 0), 0, MAX_ARRAYS * MAX_CLASSES * sizeof(int32_t))
    if (s.gen[cpu] & GEN_MASK) == 0:
        # generation wrapped: old tags would look current again, clear them
        for i in range(s.narrays):
            a = &s.arrays[i]
            memset(&a.tag[(<int64_t>cpu << a.sets_shift) * a.ways], 0,
                   ((<int64_t>1 << a.sets_shift) * a.ways) * sizeof(uint64_t))
        flush_pwc_cpu(s, cpu)


# ----------------------------------------------------------------------
# counting and snapshots

cdef int64_t tlb_count_range(TlbState *s, uint64_t lo, uint64_t hi) noexcept nogil:
    """Valid entries on any CPU translating an address in [lo, hi)."""
    cdef int cpu
    cdef int64_t n = 0
    for cpu in range(s.ncpu):
        n += scan_cpu(s, cpu, lo, hi, False, NULL)
    return n


cdef int cmp_u64(const void *a, const void *b) noexcept nogil:
    cdef uint64_t x = (<const uint64_t*>a)[0], y = (<const uint64_t*>b)[0]
    return (x > y) - (x < y)


cdef int tlb_snapshot_build(TlbState *s, TlbSnapshot *snap) noexcept nogil:
    """Fill ``snap`` from the TLBs as they are now; -1 if out of memory
    (then the caller scans instead)."""
    cdef int cpu, i, c
    cdef int64_t k, n, cap = 0
    cdef TlbArray *a
    cdef uint64_t t, size
    tlb_snapshot_free(snap)
    for i in range(s.narrays):
        cap += (<int64_t>1 << s.arrays[i].sets_shift) * s.arrays[i].ways
    cap *= s.ncpu
    for c in range(s.nclass):
        snap.base[c] = <uint64_t*>malloc(max(cap, 1) * sizeof(uint64_t))
        if snap.base[c] == NULL:
            snapshot_release(snap)
            return -1
    for cpu in range(s.ncpu):
        if s.valid[cpu] <= 0:
            continue
        for i in range(s.narrays):
            a = &s.arrays[i]
            n = (<int64_t>1 << a.sets_shift) * a.ways
            for k in range(<int64_t>cpu * n, <int64_t>cpu * n + n):
                t = a.tag[k]
                if tag_valid(s, cpu, t):
                    c = <int>(t & 3)
                    snap.base[c][snap.n[c]] = tag_base(s, t, &size)
                    snap.n[c] += 1
    for c in range(s.nclass):
        qsort(snap.base[c], snap.n[c], sizeof(uint64_t), cmp_u64)
    snap.ready = True
    return 0


cdef inline int64_t lower_bound(uint64_t *v, int64_t n, uint64_t x) noexcept nogil:
    cdef int64_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if v[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int64_t tlb_snapshot_count(TlbState *s, TlbSnapshot *snap, uint64_t lo,
                                uint64_t hi) noexcept nogil:
    """What tlb_count_range(s, lo, hi) returned when ``snap`` was built: an
    entry of size S (its start S-aligned) overlaps [lo, hi) iff its start is
    in [lo rounded down to S, hi)."""
    cdef int c
    cdef int64_t total = 0
    cdef uint64_t first
    for c in range(s.nclass):
        if snap.n[c]:
            first = lo & ~(((<uint64_t>1) << s.class_shift[c]) - 1)
            total += lower_bound(snap.base[c], snap.n[c], hi) - \
                lower_bound(snap.base[c], snap.n[c], first)
    return total


cdef void snapshot_release(TlbSnapshot *snap) noexcept nogil:
    cdef int c
    for c in range(MAX_CLASSES):
        if snap.base[c] != NULL:
            free(snap.base[c])
            snap.base[c] = NULL
        snap.n[c] = 0
    snap.ready = False


cdef void tlb_snapshot_free(TlbSnapshot *snap) noexcept nogil:
    # every flush calls this and most find nothing built; a failed build
    # releases what it took, so only a ready snapshot holds memory
    if snap.ready:
        snapshot_release(snap)


# ----------------------------------------------------------------------
# the Python object

cdef class TlbArrays:
    """The TLB arrays of every CPU of one mm.

    ``geometry`` is a ``tlb_geometry`` (see _tlb.pxd) as a dict: the arrays
    (level, sets, ways, size-class bitmask: bit 0 base pages, bit 1 PMD
    leaves, bit 2 PUD leaves, bit 3 arm64 contiguous PTE blocks), the size
    classes' address shifts, the PMD shift and the page-walk-cache size. It
    crosses into C once, here.
    """

    def __cinit__(self, int ncpu, geometry, *args, **kwargs):
        cdef tlb_geometry g
        cdef tlb_array_spec sp
        cdef int i, c, lvl
        cdef int64_t total, k
        cdef TlbArray *a
        memset(&self.s, 0, sizeof(TlbState))
        if not 1 <= ncpu <= MAX_TLB_CPUS:
            raise ValueError(f"ncpu must be in 1..{MAX_TLB_CPUS}, not {ncpu}")
        g = geometry
        if not 1 <= g.narrays <= MAX_ARRAYS:
            raise ValueError(f"1 to {MAX_ARRAYS} TLB arrays")
        if not 1 <= g.nclass <= MAX_CLASSES:
            raise ValueError(f"1 to {MAX_CLASSES} size classes")
        if g.pwc_ways < 0 or g.pwc_ways > 64:
            raise ValueError(f"pwc_ways must be in 0..64, not {g.pwc_ways}")
        self.s.ncpu = ncpu
        self.s.nclass = g.nclass
        for i in range(g.nclass):
            self.s.class_shift[i] = g.class_shift[i]
        self.s.page_shift = g.class_shift[0]
        self.s.pmd_shift = g.pmd_shift
        self.s.narrays = g.narrays
        for i in range(g.narrays):
            sp = g.arrays[i]
            if sp.level not in (1, 2) or sp.sets < 1 or sp.sets & (sp.sets - 1) \
                    or not 1 <= sp.ways <= 64:
                raise ValueError(f"bad TLB array {sp}")
            a = &self.s.arrays[i]
            a.level = sp.level
            a.sets_shift = int(sp.sets).bit_length() - 1
            a.ways = sp.ways
            a.classes = sp.classes
            self.s.entries_per_cpu += sp.sets * sp.ways
            self.s.probe_cost += sp.ways * bin(sp.classes & ((1 << g.nclass) - 1)).count("1")
            total = <int64_t>ncpu * sp.sets * sp.ways
            if total >= (1 << 30):
                raise ValueError("TLB too large")
            a.tag = <uint64_t*>calloc(total, sizeof(uint64_t))
            a.frame = <uint64_t*>calloc(total, sizeof(uint64_t))
            a.lru = <uint32_t*>calloc(total, sizeof(uint32_t))
            if not (a.tag and a.frame and a.lru):
                raise MemoryError()
            # ceil(2^40 / ways): exact division of multiples of ways below 2^24
            a.recip = ((1 << 40) + sp.ways - 1) // sp.ways
            if sp.ways <= 16:
                a.order = <uint64_t*>calloc(<int64_t>ncpu * sp.sets, sizeof(uint64_t))
                if not a.order:
                    raise MemoryError()
                ident = sum(w << (4 * w) for w in range(sp.ways))
                for k in range(<int64_t>ncpu * sp.sets):
                    a.order[k] = ident
        for lvl in range(3):
            for c in range(MAX_CLASSES):
                self.s.fill_arr[lvl][c] = -1
        for i in range(self.s.narrays):
            for c in range(self.s.nclass):
                if (self.s.arrays[i].classes >> c) & 1:
                    lvl = self.s.arrays[i].level
                    if self.s.fill_arr[lvl][c] < 0:
                        self.s.fill_arr[lvl][c] = i
                    self.s.probe_arr[lvl][self.s.nprobe[lvl]] = i
                    self.s.probe_cls[lvl][self.s.nprobe[lvl]] = c
                    self.s.nprobe[lvl] += 1
        self.s.ccount = <int32_t*>calloc(ncpu * MAX_ARRAYS * MAX_CLASSES, sizeof(int32_t))
        if not self.s.ccount:
            raise MemoryError()
        self.s.pwc_ways = g.pwc_ways
        if g.pwc_ways:
            self.s.pwc_tag = <uint64_t*>calloc(ncpu * g.pwc_ways, sizeof(uint64_t))
            self.s.pwc_lru = <uint32_t*>calloc(ncpu * g.pwc_ways, sizeof(uint32_t))
            if not (self.s.pwc_tag and self.s.pwc_lru):
                raise MemoryError()
        for i in range(ncpu):
            self.s.gen[i] = 1

    def __dealloc__(self):
        cdef int i
        for i in range(self.s.narrays):
            free(self.s.arrays[i].tag)
            free(self.s.arrays[i].frame)
            free(self.s.arrays[i].lru)
            free(self.s.arrays[i].order)
        free(self.s.pwc_tag)
        free(self.s.pwc_lru)
        free(self.s.ccount)

    @property
    def ncpu(self):
        return self.s.ncpu

    def cpumask(self):
        """mm_cpumask: the CPUs that have run this mm."""
        return [i for i in range(self.s.ncpu) if self.s.cpumask[i]]

    def set_cpu(self, int cpu, bint on=True, bint lazy=False):
        """Add ``cpu`` to mm_cpumask, running the mm (``lazy``: in lazy TLB
        mode, the mm still loaded under a kernel thread or idle), or remove
        it with ``on=False``."""
        if not 0 <= cpu < self.s.ncpu:
            raise ValueError(f"cpu must be in 0..{self.s.ncpu - 1}, not {cpu}")
        self.s.cpumask[cpu] = on
        self.s.lazy[cpu] = TLB_LAZY if on and lazy else TLB_RUNNING

    def lazy_cpus(self):
        """The CPUs of mm_cpumask in lazy TLB mode."""
        return [i for i in range(self.s.ncpu) if self.s.cpumask[i] and self.s.lazy[i] == TLB_LAZY]

    @property
    def ipi_lazy(self):
        """Whether flushes IPI lazy CPUs too (set from the policy)."""
        return bool(self.s.ipi_lazy)

    @ipi_lazy.setter
    def ipi_lazy(self, bint value):
        self.s.ipi_lazy = value

    @property
    def freed_ipi_lazy(self):
        """Whether flushes of freed page tables IPI lazy CPUs (set from the policy)."""
        return bool(self.s.freed_ipi_lazy)

    @freed_ipi_lazy.setter
    def freed_ipi_lazy(self, bint value):
        self.s.freed_ipi_lazy = value

    @property
    def page_shift(self):
        """PAGE_SHIFT of the TLBs' architecture."""
        return self.s.page_shift

    @property
    def tlb_flush_batched(self):
        """Whether reclaim's deferred flush of this mm is pending
        (mm->tlb_flush_batched); the next flush_tlb_batched_pending does it."""
        return bool(self.s.tlb_flush_batched)

    @tlb_flush_batched.setter
    def tlb_flush_batched(self, bint value):
        self.s.tlb_flush_batched = value

    @property
    def batched_pending_call(self):
        """Whether the kernel calls flush_tlb_batched_pending at all (set
        from the policy)."""
        return bool(self.s.batched_pending_call)

    @batched_pending_call.setter
    def batched_pending_call(self, bint value):
        self.s.batched_pending_call = value

    @property
    def batched_pending_barrier(self):
        """Whether flush_tlb_batched_pending is a barrier alone (set from the
        arch and the policy)."""
        return bool(self.s.batched_pending_barrier)

    @batched_pending_barrier.setter
    def batched_pending_barrier(self, bint value):
        self.s.batched_pending_barrier = value

    def flush_all(self, int cpu):
        """Flush one CPU's TLB (as a context switch to another mm would)."""
        if not 0 <= cpu < self.s.ncpu:
            raise ValueError(f"cpu must be in 0..{self.s.ncpu - 1}, not {cpu}")
        flush_all_cpu(&self.s, cpu, 0, 0, NULL, NULL)

    def count_range(self, uint64_t lo, uint64_t hi):
        """Valid entries on any CPU for addresses in [lo, hi)."""
        return tlb_count_range(&self.s, lo, hi)

    def valid_entries(self, int cpu):
        """Entries of one CPU that can still hit."""
        if not 0 <= cpu < self.s.ncpu:
            raise ValueError(f"cpu must be in 0..{self.s.ncpu - 1}, not {cpu}")
        return scan_cpu(&self.s, cpu, 0, <uint64_t>0xffffffffffffffff, False, NULL)

    def lookup(self, int cpu, uint64_t addr):
        """(level hit, frame) for ``addr`` on ``cpu`` without faulting; (0, None) on a miss."""
        cdef uint64_t frame = 0
        cdef int lvl, cls
        cdef bint writable
        if not 0 <= cpu < self.s.ncpu:
            raise ValueError(f"cpu must be in 0..{self.s.ncpu - 1}, not {cpu}")
        for lvl in (1, 2):
            cls = lookup_inline(&self.s, cpu, lvl, addr, False, &frame, &writable)
            if cls >= 0:
                return lvl, frame
        return 0, None
