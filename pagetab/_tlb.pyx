# cython: language_level=3
"""Per-CPU TLBs, page walks, and the architectures' flush rules.

Each CPU has the set-associative arrays of its arch profile (L1 data TLB
and second-level TLB, each holding some leaf sizes), LRU replacement, and
an optional page-walk cache. Entries carry the CPU's flush generation, so a
full (CR3) or ASID/PID flush is one increment, as the kernel's tlb_gen.
``tlb_flush_range`` applies flush_tlb_range's per-architecture rules
(arch/x86/mm/tlb.c, arch/arm64/include/asm/tlbflush.h,
arch/powerpc/mm/book3s64/radix_tlb.c) and counts every operation.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from pagetab._tables cimport (
    ADDR_SHIFT, E_DIRTY, E_LEAF, E_PRESENT, E_READ, E_WRITE, E_ZERO, MODE_READ, MODE_WRITE,
    PageTables, pool_index, pool_row,
)

cnp.import_array()

cdef extern from *:
    void __builtin_prefetch(const void *p) nogil
    int __builtin_ctzll(unsigned long long x) nogil

OP_NAMES = (
    "flush_calls", "flush_pages", "full_flush", "invlpg", "ipi", "remote_full_flush",
    "remote_invlpg", "invlpgb", "tlbsync", "tlbi_page", "tlbi_range", "tlbi_asid", "dsb",
    "tlbie", "tlbiel", "pid_flush", "pwc_flush", "tlbie_sync", "collateral_entries",
    "invalidated_entries",
)
KINDS = {"x86": FR_X86, "arm64": FR_ARM64, "ppc64": FR_PPC64}

cdef uint64_t VALID = (<uint64_t>1) << 63
cdef uint64_t GEN_MASK = 0x7fff
cdef uint64_t KEY_MASK = ((<uint64_t>1) << 48) - 1
cdef uint64_t F_WRITABLE = (<uint64_t>1) << 63
cdef uint64_t F_ZERO = (<uint64_t>1) << 62
cdef uint64_t F_FRAME = ((<uint64_t>1) << 62) - 1


# ----------------------------------------------------------------------
# entries

cdef inline uint64_t make_tag(TlbState *s, int cpu, uint64_t addr, int cls) noexcept nogil:
    return VALID | ((s.gen[cpu] & GEN_MASK) << 48) | ((addr >> s.class_shift[cls]) << 2) | cls


cdef inline bint tag_valid(TlbState *s, int cpu, uint64_t tag) noexcept nogil:
    return (tag & VALID) != 0 and ((tag >> 48) & GEN_MASK) == (s.gen[cpu] & GEN_MASK)


cdef inline uint64_t tag_base(TlbState *s, uint64_t tag, uint64_t *size) noexcept nogil:
    cdef int cls = <int>(tag & 3)
    size[0] = (<uint64_t>1) << s.class_shift[cls]
    return ((tag & KEY_MASK) >> 2) << s.class_shift[cls]


# Sets of at most 16 ways keep true LRU order as a packed list of way
# numbers (MRU in the low nibble): O(1) touch and victim selection.
cdef uint64_t ONES = 0x1111111111111111
cdef uint64_t HIGHS = 0x8888888888888888


cdef inline int nibble_pos(uint64_t order, int w) noexcept nogil:
    cdef uint64_t x = order ^ (ONES * <uint64_t>w)
    cdef uint64_t t = (x - ONES) & ~x & HIGHS
    return __builtin_ctzll(t) >> 2


cdef inline uint64_t low_mask(int nibbles) noexcept nogil:
    return ((<uint64_t>1) << (4 * nibbles)) - 1 if nibbles < 16 else 0xffffffffffffffff


cdef inline uint64_t order_to_front(uint64_t order, int w) noexcept nogil:
    cdef int p = nibble_pos(order, w)
    cdef uint64_t low = order & low_mask(p)
    cdef uint64_t high = order & ~low_mask(p + 1)
    return high | (low << 4) | <uint64_t>w


cdef inline uint64_t order_to_back(uint64_t order, int w, int ways) noexcept nogil:
    cdef int p = nibble_pos(order, w)
    cdef uint64_t low = order & low_mask(p)
    cdef uint64_t rest = (order & low_mask(ways) & ~low_mask(p + 1)) >> 4
    return low | rest | ((<uint64_t>w) << (4 * (ways - 1)))


cdef inline int64_t set_of(TlbArray *a, int64_t base) noexcept nogil:
    """The set number of the set starting at entry ``base`` (no division:
    ``mul`` is the precomputed reciprocal of ways, exact for these sizes)."""
    return <int64_t>((<uint64_t>base * a.recip) >> 40)


cdef inline void touch_way(TlbState *s, TlbArray *a, int cpu, int64_t base, int w) noexcept nogil:
    """Make way ``w`` of the set at ``base`` the most recently used."""
    cdef int64_t setno
    if a.order != NULL:
        setno = set_of(a, base)
        a.order[setno] = order_to_front(a.order[setno], w)
    else:
        s.clock[cpu] += 1
        a.lru[base + w] = s.clock[cpu]


cdef inline void demote_way(TlbArray *a, int64_t base, int w) noexcept nogil:
    """An invalidated way becomes the next victim."""
    cdef int64_t setno
    if a.order != NULL:
        setno = set_of(a, base)
        a.order[setno] = order_to_back(a.order[setno], w, a.ways)
    else:
        a.lru[base + w] = 0


cdef inline int32_t* ccount(TlbState *s, int cpu, int arr, int cls) noexcept nogil:
    return &s.ccount[(cpu * MAX_ARRAYS + arr) * MAX_CLASSES + cls]


cdef inline int64_t array_slot(TlbState *s, TlbArray *a, int cpu, uint64_t addr,
                               int cls) noexcept nogil:
    cdef uint64_t vpn = addr >> s.class_shift[cls]
    cdef int64_t setidx = <int64_t>(vpn & ((<uint64_t>1 << a.sets_shift) - 1))
    return ((<int64_t>cpu << a.sets_shift) + setidx) * a.ways


cdef inline int probe_array(TlbState *s, int cpu, int i, int c, uint64_t addr, bint write,
                            uint64_t genbits, uint64_t *frame, bint *writable) noexcept nogil:
    """Probe array ``i`` for a size-class ``c`` entry of ``addr``: the class
    on a hit, -1 on a miss, -2 when it is read-only and this is a write."""
    cdef TlbArray *a = &s.arrays[i]
    cdef uint64_t key = genbits | ((addr >> s.class_shift[c]) << 2) | c
    cdef int64_t base = array_slot(s, a, cpu, addr, c)
    cdef uint64_t *tags = &a.tag[base]
    cdef uint64_t f
    cdef int w
    for w in range(a.ways):
        if tags[w] == key:
            f = a.frame[base + w]
            if write and not (f & F_WRITABLE):
                return -2
            touch_way(s, a, cpu, base, w)
            writable[0] = (f & F_WRITABLE) != 0
            if f & F_ZERO:
                frame[0] = 0
            else:
                frame[0] = (f & F_FRAME) + ((addr & (((<uint64_t>1) << s.class_shift[c]) - 1))
                                            >> s.page_shift)
            return c
    return -1


cdef inline int lookup_inline(TlbState *s, int cpu, int level, uint64_t addr, bint write,
                              uint64_t *frame, bint *writable) noexcept nogil:
    """Probe the level-``level`` arrays. Returns the size class hit, -1 on a
    miss, -2 when the entry is read-only and this is a write."""
    cdef int p, i, c, r
    cdef uint64_t genbits = VALID | ((s.gen[cpu] & GEN_MASK) << 48)
    for p in range(s.nprobe[level]):
        i = s.probe_arr[level][p]
        c = s.probe_cls[level][p]
        if ccount(s, cpu, i, c)[0] == 0:
            continue
        r = probe_array(s, cpu, i, c, addr, write, genbits, frame, writable)
        if r != -1:
            return r
    return -1


cdef inline int lookup_base(TlbState *s, int cpu, int level, uint64_t addr, bint write,
                            uint64_t *frame, bint *writable) noexcept nogil:
    """lookup_inline when the CPU caches no huge-page entry: base-page
    entries live only in the level's base-page fill array."""
    cdef int i = s.fill_arr[level][0]
    if i < 0:
        return -1
    return probe_array(s, cpu, i, 0, addr, write, VALID | ((s.gen[cpu] & GEN_MASK) << 48),
                       frame, writable)


cdef inline int lookup_level(TlbState *s, int cpu, int level, uint64_t addr, bint write,
                             bint base_only, uint64_t *frame, bint *writable) noexcept nogil:
    """lookup_base while the CPU caches base pages only, else lookup_inline."""
    if base_only:
        return lookup_base(s, cpu, level, addr, write, frame, writable)
    return lookup_inline(s, cpu, level, addr, write, frame, writable)


cdef inline bint caches_huge(TlbState *s, int cpu) noexcept nogil:
    """Whether any array of ``cpu`` holds an entry of a huge size class."""
    cdef int i, c
    for i in range(s.narrays):
        for c in range(1, s.nclass):
            if ccount(s, cpu, i, c)[0]:
                return True
    return False


cdef inline void insert_array(TlbState *s, int arr, int cpu, uint64_t addr, int cls,
                       uint64_t fbits) noexcept nogil:
    """Fill one array: the way holding nothing current, else the LRU way."""
    cdef TlbArray *a = &s.arrays[arr]
    cdef uint64_t vpn = addr >> s.class_shift[cls]
    cdef int64_t setno = (<int64_t>cpu << a.sets_shift) + <int64_t>(
        vpn & ((<uint64_t>1 << a.sets_shift) - 1))
    cdef int ways = a.ways
    cdef int64_t base = setno * ways
    cdef int w, victim = 0
    cdef uint64_t best = 0xffffffffffffffff, score, order
    cdef uint64_t genbits = VALID | ((s.gen[cpu] & GEN_MASK) << 48)
    cdef uint64_t cur = genbits >> 48
    cdef uint64_t *tags = &a.tag[base]
    cdef uint32_t *lru
    if a.order != NULL:
        # the LRU way (invalidated ways were moved there, stale ones are
        # taken as they come: all ways go stale together at a full flush)
        # becomes the MRU: the packed order rotates by one nibble
        order = a.order[setno]
        victim = <int>((order >> (4 * (ways - 1))) & 15)
        best = 1 if (tags[victim] >> 48) == cur else 0
        a.order[setno] = ((order << 4) & low_mask(ways)) | <uint64_t>victim
    else:
        lru = &a.lru[base]
        for w in range(ways):
            # a stale or empty way scores 0 and wins at once
            score = lru[w] + (<uint64_t>1) if (tags[w] >> 48) == cur else 0
            if score < best:
                best = score
                victim = w
                if score == 0:
                    break
        touch_way(s, a, cpu, base, victim)
    if best != 0:
        ccount(s, cpu, arr, <int>(tags[victim] & 3))[0] -= 1
    else:
        s.valid[cpu] += 1
    ccount(s, cpu, arr, cls)[0] += 1
    tags[victim] = genbits | (vpn << 2) | <uint64_t>cls
    a.frame[base + victim] = fbits


cdef inline void tlb_insert_level(TlbState *s, int cpu, int level, uint64_t addr, int cls,
                           uint64_t frame, bint writable) noexcept nogil:
    """Fill the first level-``level`` array that holds this leaf size."""
    cdef int i
    cdef uint64_t head = addr & ~(((<uint64_t>1) << s.class_shift[cls]) - 1)
    cdef uint64_t fbits
    if frame == 0:
        fbits = F_ZERO | (F_WRITABLE if writable else 0)
    else:
        fbits = (frame - ((addr - head) >> s.page_shift)) | (F_WRITABLE if writable else 0)
    i = s.fill_arr[level][cls]
    if i >= 0:
        insert_array(s, i, cpu, head, cls, fbits)


cdef inline void insert_inline(TlbState *s, int cpu, uint64_t addr, int cls, uint64_t frame,
                               bint writable) noexcept nogil:
    """Fill the first array of each TLB level that holds this leaf size."""
    tlb_insert_level(s, cpu, 1, addr, cls, frame, writable)
    tlb_insert_level(s, cpu, 2, addr, cls, frame, writable)


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
        if s.pwc_ways:
            memset(&s.pwc_tag[cpu * s.pwc_ways], 0, s.pwc_ways * sizeof(uint64_t))
        return n
    addr = start
    while addr < end:
        n += invalidate_va(s, cpu, addr)
        addr += (<uint64_t>1) << stride_shift
    return n


cdef inline void flush_all_cpu(TlbState *s, FlushOps *ops, int cpu, uint64_t start,
                        uint64_t end) noexcept nogil:
    """A full / ASID / PID flush of one CPU: O(1) by generation, after
    counting what it destroys inside and outside the flushed range."""
    cdef int64_t outside = 0
    cdef TlbArray *a
    cdef int i
    if s.valid[cpu] <= 0 and s.pwc_ways == 0:
        return  # nothing cached: nothing to invalidate
    if s.valid[cpu] > 0 and ops != NULL:
        ops.n[OP_INVALIDATED] += scan_cpu(s, cpu, start, end, False, &outside)
        ops.n[OP_COLLATERAL] += outside
    s.gen[cpu] += 1
    s.valid[cpu] = 0
    memset(ccount(s, cpu, 0, 0), 0, MAX_ARRAYS * MAX_CLASSES * sizeof(int32_t))
    if (s.gen[cpu] & GEN_MASK) == 0:
        # generation wrapped: old tags would look current again, clear them
        for i in range(s.narrays):
            a = &s.arrays[i]
            memset(&a.tag[(<int64_t>cpu << a.sets_shift) * a.ways], 0,
                   ((<int64_t>1 << a.sets_shift) * a.ways) * sizeof(uint64_t))
        if s.pwc_ways:
            memset(&s.pwc_tag[cpu * s.pwc_ways], 0, s.pwc_ways * sizeof(uint64_t))


cdef inline void count_invalidated(FlushOps *ops, int64_t n) noexcept nogil:
    if ops != NULL:
        ops.n[OP_INVALIDATED] += n


# ----------------------------------------------------------------------
# flush rules

cdef void flush_x86(TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                    int stride_shift) noexcept nogil:
    """flush_tlb_mm_range: INVLPG per stride up to the ceiling, else a full
    flush; the same on every other CPU of mm_cpumask through an IPI, or
    INVLPGB broadcasts and one TLBSYNC on the INVLPGB variant."""
    cdef uint64_t pages = (end - start) >> stride_shift
    cdef bint full = pages > <uint64_t>s.x86_ceiling
    cdef int cpu
    cdef bint first_remote = True
    if s.x86_invlpgb:
        if full:
            ops.n[OP_INVLPGB] += 1
        else:
            ops.n[OP_INVLPGB] += <int64_t>pages
        ops.n[OP_TLBSYNC] += 1
        for cpu in range(s.ncpu):
            if s.cpumask[cpu] or cpu == caller:
                if full:
                    flush_all_cpu(s, ops, cpu, start, end)
                else:
                    count_invalidated(ops, invalidate_range_cpu(s, cpu, start, end, stride_shift))
        return
    for cpu in range(s.ncpu):
        if cpu != caller and not s.cpumask[cpu]:
            continue
        if cpu == caller:
            if full:
                ops.n[OP_FULL] += 1
            else:
                ops.n[OP_INVLPG] += <int64_t>pages
        else:
            ops.n[OP_IPI] += 1
            if first_remote:
                # remote CPUs flush in parallel: count one CPU's work
                if full:
                    ops.n[OP_REMOTE_FULL] += 1
                else:
                    ops.n[OP_REMOTE_INVLPG] += <int64_t>pages
                first_remote = False
        if full:
            flush_all_cpu(s, ops, cpu, start, end)
        else:
            count_invalidated(ops, invalidate_range_cpu(s, cpu, start, end, stride_shift))


cdef void flush_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end) noexcept nogil:
    cdef int cpu
    for cpu in range(s.ncpu):
        flush_all_cpu(s, ops, cpu, start, end)


cdef void invalidate_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end,
                              int stride_shift) noexcept nogil:
    cdef int cpu
    for cpu in range(s.ncpu):
        count_invalidated(ops, invalidate_range_cpu(s, cpu, start, end, stride_shift))


cdef void flush_arm64(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end,
                      int stride_shift) noexcept nogil:
    """__flush_tlb_range: broadcast TLBIs (no IPIs) between DSB ISHST and
    DSB ISH; flush_tlb_mm (TLBI ASIDE1IS) past MAX_DVM_OPS without range
    TLBI; with FEAT_TLBIRANGE, (scale, num) range operations as
    __flush_tlb_range_op. The Linux 4.9 rule: per-page TLBIs (4K stride)
    up to MAX_TLB_RANGE pages, else flush_tlb_mm."""
    cdef uint64_t stride = (<uint64_t>1) << stride_shift
    cdef uint64_t pages, npages, addr
    cdef int scale, num
    cdef int64_t chunk
    if s.arm_legacy_limit:
        pages = (end - start) >> s.page_shift
        if pages > <uint64_t>s.arm_legacy_limit:
            ops.n[OP_DSB] += 2
            ops.n[OP_TLBI_ASID] += 1
            flush_all_cpus(s, ops, start, end)
            return
        ops.n[OP_DSB] += 2
        ops.n[OP_TLBI_PAGE] += <int64_t>pages
        invalidate_all_cpus(s, ops, start, end, s.page_shift)
        return
    start = start & ~(stride - 1)
    end = (end + stride - 1) & ~(stride - 1)
    pages = (end - start) >> s.page_shift
    # __flush_tlb_range_limit_excess
    if (not s.arm_range and (end - start) >= <uint64_t>s.arm_max_dvm_ops * stride) \
            or pages > ((<uint64_t>31 + 1) << (5 * 3 + 1)):
        ops.n[OP_DSB] += 2
        ops.n[OP_TLBI_ASID] += 1
        flush_all_cpus(s, ops, start, end)
        return
    ops.n[OP_DSB] += 2
    if not s.arm_range:
        ops.n[OP_TLBI_PAGE] += <int64_t>((end - start) >> stride_shift)
    else:
        # __flush_tlb_range_op: largest scale first
        npages = pages
        addr = start
        scale = 3
        while npages > 0:
            if npages == 1 or stride_shift != s.page_shift:
                ops.n[OP_TLBI_PAGE] += 1
                npages -= stride >> s.page_shift
                continue
            chunk = <int64_t>npages
            if chunk > ((31 + 1) << (5 * scale + 1)):
                chunk = (31 + 1) << (5 * scale + 1)
            num = <int>((chunk >> (5 * scale + 1)) - 1)
            if num >= 0:
                ops.n[OP_TLBI_RANGE] += 1
                npages -= (<uint64_t>(num + 1)) << (5 * scale + 1)
            scale -= 1
    invalidate_all_cpus(s, ops, start, end, stride_shift)


cdef void flush_ppc64(TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                      int stride_shift) noexcept nogil:
    """__radix__flush_tlb_range: local (tlbiel) when only this CPU uses the
    mm, else global tlbie; whole-PID flush past the ceiling (33 global, 256
    local); a page-walk-cache flush for ranges of PMD_SIZE or more; THP
    kernels also flush the 2M size; global tlbies end with eieio; tlbsync;
    ptesync."""
    cdef uint64_t nr_pages = (end - start) >> stride_shift
    cdef bint local = True, flush_pid, flush_pwc = False
    cdef uint64_t pmd = (<uint64_t>1) << s.pmd_shift, hstart, hend
    cdef int cpu
    for cpu in range(s.ncpu):
        if s.cpumask[cpu] and cpu != caller:
            local = False
    flush_pid = nr_pages > <uint64_t>(s.ppc_tlbiel_ceiling if local else s.ppc_tlbie_ceiling)
    if not flush_pid and (end - start) >= pmd:
        flush_pwc = True
    if flush_pid:
        ops.n[OP_PID_FLUSH] += 1
        if local:
            flush_all_cpu(s, ops, caller, start, end)
        else:
            flush_all_cpus(s, ops, start, end)
        return
    if flush_pwc:
        ops.n[OP_PWC_FLUSH] += 1
    ops.n[OP_TLBIEL if local else OP_TLBIE] += <int64_t>nr_pages
    if s.ppc_thp and stride_shift == s.page_shift:
        hstart = (start + pmd - 1) & ~(pmd - 1)
        hend = end & ~(pmd - 1)
        if hstart < hend:
            ops.n[OP_TLBIEL if local else OP_TLBIE] += <int64_t>((hend - hstart) >> s.pmd_shift)
    if not local:
        ops.n[OP_SYNC] += 1
    for cpu in range(s.ncpu):
        if cpu == caller or (not local and s.cpumask[cpu]):
            count_invalidated(ops, invalidate_range_cpu(s, cpu, start, end, stride_shift))
            if flush_pwc and s.pwc_ways:
                memset(&s.pwc_tag[cpu * s.pwc_ways], 0, s.pwc_ways * sizeof(uint64_t))


cdef void tlb_flush_range(TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                          int stride_shift) noexcept nogil:
    """flush_tlb_range(vma, start, end) issued from CPU ``caller``."""
    if end <= start:
        return
    ops.n[OP_CALLS] += 1
    ops.n[OP_PAGES] += <int64_t>((end - start) >> s.page_shift)
    if s.kind == FR_X86:
        flush_x86(s, ops, caller, start, end, stride_shift)
    elif s.kind == FR_ARM64:
        flush_arm64(s, ops, start, end, stride_shift)
    else:
        flush_ppc64(s, ops, caller, start, end, stride_shift)


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
            tlb_snapshot_free(snap)
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


cdef void tlb_snapshot_free(TlbSnapshot *snap) noexcept nogil:
    cdef int c
    for c in range(MAX_CLASSES):
        free(snap.base[c])
        snap.base[c] = NULL
        snap.n[c] = 0
    snap.ready = False


cdef dict ops_dict(FlushOps *ops):
    return {OP_NAMES[i]: ops.n[i] for i in range(NOPS)}


# ----------------------------------------------------------------------
# access simulation

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


cdef struct VmaTable:
    int64_t n
    uint64_t *start
    uint64_t *end
    int64_t *prot
    uint64_t *thp_lo
    uint64_t *thp_hi
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


cdef inline uint64_t* walk_inline(PageTables pt, uint64_t addr, int *reached) noexcept nogil:
    """pt.walk(addr, pte, alloc=False) without the method call."""
    return walk_from(pt, addr, 0, 0, pt.nlev - 1, reached)


cdef inline uint64_t* walk_from(PageTables pt, uint64_t addr, int l, int64_t row, int last,
                                int *reached) noexcept nogil:
    """Walk from table ``row`` of level ``l`` down to level ``last`` at most;
    stops at a none entry or a huge leaf."""
    cdef uint64_t *slot
    while True:
        slot = pool_row(&pt.pools[l], row) + pool_index(&pt.pools[l], pt.shift[l], addr)
        if l >= last or slot[0] == 0 or (slot[0] & E_LEAF):
            reached[0] = l
            return slot
        row = <int64_t>(slot[0] >> ADDR_SHIFT)
        l += 1


cdef inline int walk_leaf(PageTables pt, TlbState *s, int cpu, uint64_t addr, uint64_t *slot,
                   int reached, uint64_t *entry, int *steps, AccessCounters *c) noexcept nogil:
    """The hardware page walk; ``slot``/``reached`` are walk_inline's answer
    for ``addr``. Returns the leaf's size class (-1: none)."""
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
    entry[0] = slot[0]
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
            s.pwc_lru[cpu * s.pwc_ways + victim] = s.clock[cpu]
    if slot[0] == 0 or not (slot[0] & E_PRESENT):
        return -1
    if reached == pte:
        return 0
    if slot[0] & E_LEAF:
        return pte - reached
    return -1


cdef inline uint64_t leaf_frame(PageTables pt, uint64_t e, int cls, uint64_t addr) noexcept nogil:
    cdef int sh = pt.shift[pt.nlev - 1 - cls]
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


cdef int64_t access_loop(PageTables pt, TlbState *s, VmaTable *v, int cpu, uint64_t *addrs,
                         int64_t n, int64_t i0, bint write, AccessCounters *c,
                         FlushOps *ops) noexcept nogil:
    """Run accesses from index i0; returns n, or the index of an access
    whose fault needs Python (a shared mapping) or -1-i on out of memory."""
    cdef int64_t i, vi
    cdef uint64_t addr, frame, e, page
    cdef int cls, steps, tries
    cdef int64_t installed
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
                ring_slot[k] = walk_from(pt, addrs[j], 0, 0, upper, &ring_reached[k])
                if ring_reached[k] == upper:
                    pmd_key[ci] = ckey
                    pmd_row[ci] = ring_slot[k] - pool_index(&pt.pools[upper], pt.shift[upper],
                                                            addrs[j])
            __builtin_prefetch(ring_slot[k])
        j = i + D
        if j < n and j >= i0 + 2 * D:
            k = j & (RING - 1)
            if ring_reached[k] == upper and ring_slot[k][0] != 0 \
                    and not (ring_slot[k][0] & E_LEAF):
                ring_slot[k] = walk_from(pt, addrs[j], upper + 1,
                                         <int64_t>(ring_slot[k][0] >> ADDR_SHIFT), upper + 1,
                                         &ring_reached[k])
                __builtin_prefetch(ring_slot[k])
        addr = addrs[i]
        cls = lookup_level(s, cpu, 1, addr, write, base_only, &frame, &writable)
        if cls >= 0:
            l1_hits += 1
            continue
        wp = cls == -2
        if not wp:
            cls = lookup_level(s, cpu, 2, addr, write, base_only, &frame, &writable)
            if cls >= 0:
                l2_hits += 1
                tlb_insert_level(s, cpu, 1, addr, cls, frame, writable)
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
            else:
                slot = walk_inline(pt, addr, &reached)
            cls = walk_leaf(pt, s, cpu, addr, slot, reached, &e, &steps, c)
            walk_steps += steps
            if cls >= 0 and (e & E_READ) and (not write or (e & E_WRITE)):
                insert_inline(s, cpu, addr, cls, leaf_frame(pt, e, cls, addr), (e & E_WRITE) != 0)
                if cls > 0:
                    base_only = False
                break
            # page fault: handle_mm_fault
            vi = find_vma(v, addr)
            if vi < 0 or v.prot[vi] == 0 or (write and not (v.prot[vi] & 2)) or tries:
                c.segv += 1
                break
            if v.shared[vi]:
                flush_counters(c, i - i0, l1_hits, l2_hits, walks, walk_steps)
                return i
            page = addr & ~(psize - 1)
            if cls >= 0:
                # write to the zero page or a read-only private page: COW,
                # ptep_clear_flush (flush_tlb_page) before the new frame
                c.cow_faults += 1
                tlb_flush_range(s, ops, cpu, page if cls == 0 else addr & ~(pmd - 1),
                                page + psize if cls == 0 else (addr & ~(pmd - 1)) + pmd,
                                s.class_shift[cls])
            installed = 0
            if pt._populate(page, page + psize, MODE_WRITE if write else MODE_READ,
                            (v.prot[vi] & 1) != 0, (v.prot[vi] & 2) != 0, v.thp_lo[vi],
                            v.thp_hi[vi], NULL, 0, &installed) < page + psize:
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


cdef class Tlbs:
    """The TLBs of every CPU of one mm, with its flush rules.

    ``arrays`` is a list of (level, sets, ways, classes) with ``classes`` a
    bitmask of leaf size classes (bit 0 base pages, bit 1 PMD leaves, bit 2
    PUD leaves); ``class_shifts`` their address shifts.
    """

    def __cinit__(self, int ncpu, arrays, class_shifts, int pmd_shift, int pwc_ways=0,
                  str kind="x86", int x86_ceiling=33, bint x86_invlpgb=False,
                  int arm_max_dvm_ops=512, int arm_legacy_limit=0, bint arm_range=False,
                  int ppc_tlbie_ceiling=33, int ppc_tlbiel_ceiling=256, bint ppc_thp=True):
        cdef int i, c, lvl, sets, ways
        cdef int64_t total
        memset(&self.s, 0, sizeof(TlbState))
        if not 1 <= ncpu <= MAX_TLB_CPUS:
            raise ValueError(f"ncpu must be in 1..{MAX_TLB_CPUS}, not {ncpu}")
        if not 1 <= len(arrays) <= MAX_ARRAYS:
            raise ValueError(f"1 to {MAX_ARRAYS} TLB arrays")
        if not 1 <= len(class_shifts) <= MAX_CLASSES:
            raise ValueError(f"1 to {MAX_CLASSES} size classes")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.s.ncpu = ncpu
        self.s.nclass = len(class_shifts)
        for i in range(self.s.nclass):
            self.s.class_shift[i] = class_shifts[i]
        self.s.page_shift = class_shifts[0]
        self.s.pmd_shift = pmd_shift
        self.s.narrays = len(arrays)
        for i, (level, sets, ways, classes) in enumerate(arrays):
            if level not in (1, 2) or sets < 1 or sets & (sets - 1) or not 1 <= ways <= 64:
                raise ValueError(f"bad TLB array {(level, sets, ways, classes)}")
            self.s.arrays[i].level = level
            self.s.arrays[i].sets_shift = sets.bit_length() - 1
            self.s.arrays[i].ways = ways
            self.s.arrays[i].classes = classes
            self.s.entries_per_cpu += sets * ways
            self.s.probe_cost += ways * bin(classes & ((1 << len(class_shifts)) - 1)).count("1")
            total = <int64_t>ncpu * sets * ways
            self.s.arrays[i].tag = <uint64_t*>calloc(total, sizeof(uint64_t))
            self.s.arrays[i].frame = <uint64_t*>calloc(total, sizeof(uint64_t))
            self.s.arrays[i].lru = <uint32_t*>calloc(total, sizeof(uint32_t))
            if not (self.s.arrays[i].tag and self.s.arrays[i].frame and self.s.arrays[i].lru):
                raise MemoryError()
            # ceil(2^40 / ways): exact division of multiples of ways below 2^24
            self.s.arrays[i].recip = ((1 << 40) + ways - 1) // ways
            if total >= (1 << 30):
                raise ValueError("TLB too large")
            if ways <= 16:
                self.s.arrays[i].order = <uint64_t*>calloc(<int64_t>ncpu * sets, sizeof(uint64_t))
                if not self.s.arrays[i].order:
                    raise MemoryError()
                ident = sum(w << (4 * w) for w in range(ways))
                for k in range(<int64_t>ncpu * sets):
                    self.s.arrays[i].order[k] = ident
        for lvl in range(3):
            for c in range(MAX_CLASSES):
                self.s.fill_arr[lvl][c] = -1
        for i in range(self.s.narrays):
            for c in range(self.s.nclass):
                if (self.s.arrays[i].classes >> c) & 1:
                    if self.s.fill_arr[self.s.arrays[i].level][c] < 0:
                        self.s.fill_arr[self.s.arrays[i].level][c] = i
                    lvl = self.s.arrays[i].level
                    self.s.probe_arr[lvl][self.s.nprobe[lvl]] = i
                    self.s.probe_cls[lvl][self.s.nprobe[lvl]] = c
                    self.s.nprobe[lvl] += 1
        self.s.ccount = <int32_t*>calloc(ncpu * MAX_ARRAYS * MAX_CLASSES, sizeof(int32_t))
        if not self.s.ccount:
            raise MemoryError()
        self.s.pwc_ways = pwc_ways
        if pwc_ways:
            self.s.pwc_tag = <uint64_t*>calloc(ncpu * pwc_ways, sizeof(uint64_t))
            self.s.pwc_lru = <uint32_t*>calloc(ncpu * pwc_ways, sizeof(uint32_t))
            if not (self.s.pwc_tag and self.s.pwc_lru):
                raise MemoryError()
        for i in range(ncpu):
            self.s.gen[i] = 1
        self.s.kind = KINDS[kind]
        self.s.x86_ceiling = x86_ceiling
        self.s.x86_invlpgb = x86_invlpgb
        self.s.arm_max_dvm_ops = arm_max_dvm_ops
        self.s.arm_legacy_limit = arm_legacy_limit
        self.s.arm_range = arm_range
        self.s.ppc_tlbie_ceiling = ppc_tlbie_ceiling
        self.s.ppc_tlbiel_ceiling = ppc_tlbiel_ceiling
        self.s.ppc_thp = ppc_thp

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

    def set_cpu(self, int cpu, bint on=True):
        if not 0 <= cpu < self.s.ncpu:
            raise ValueError(f"cpu must be in 0..{self.s.ncpu - 1}, not {cpu}")
        self.s.cpumask[cpu] = on

    def flush_range(self, int caller, uint64_t start, uint64_t end, int stride_shift=-1):
        """flush_tlb_range from ``caller``; returns the operations it took."""
        cdef FlushOps ops
        if not 0 <= caller < self.s.ncpu:
            raise ValueError(f"caller must be in 0..{self.s.ncpu - 1}")
        if stride_shift < 0:
            stride_shift = self.s.page_shift
        memset(&ops, 0, sizeof(FlushOps))
        tlb_flush_range(&self.s, &ops, caller, start, end, stride_shift)
        return ops_dict(&ops)

    def flush_all(self, int cpu):
        """Flush one CPU's TLB (as a context switch to another mm would)."""
        flush_all_cpu(&self.s, NULL, cpu, 0, 0)

    def count_range(self, uint64_t lo, uint64_t hi):
        """Valid entries on any CPU for addresses in [lo, hi)."""
        return tlb_count_range(&self.s, lo, hi)

    def valid_entries(self, int cpu):
        """Entries of one CPU that can still hit."""
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

    def access(self, PageTables pt, cnp.ndarray addrs, int cpu, bint write, vmas,
               int64_t start=0):
        """Run ``addrs`` from ``start``. Returns (stopped_at, counters, ops)."""
        cdef AccessCounters c
        cdef FlushOps ops
        cdef VmaTable v
        cdef uint64_t[::1] a = addrs
        cdef uint64_t[::1] vs = vmas["start"]
        cdef uint64_t[::1] ve = vmas["end"]
        cdef int64_t[::1] vp = vmas["prot"]
        cdef uint64_t[::1] vl = vmas["thp_lo"]
        cdef uint64_t[::1] vh = vmas["thp_hi"]
        cdef int64_t[::1] vsh = vmas["shared"]
        cdef uint8_t[::1] vt = vmas["touched"]
        cdef int64_t n = a.shape[0], r
        if not 0 <= cpu < self.s.ncpu:
            raise ValueError(f"cpu must be in 0..{self.s.ncpu - 1}, not {cpu}")
        memset(&c, 0, sizeof(AccessCounters))
        memset(&ops, 0, sizeof(FlushOps))
        v.n = vs.shape[0]
        if v.n:
            v.start = &vs[0]
            v.end = &ve[0]
            v.prot = &vp[0]
            v.thp_lo = &vl[0]
            v.thp_hi = &vh[0]
            v.shared = &vsh[0]
            v.touched = &vt[0]
        self.s.cpumask[cpu] = 1
        r = n
        if n > start:
            with nogil:
                r = access_loop(pt, &self.s, &v, cpu, &a[0], n, start, write, &c, &ops)
        counters = {
            "accesses": c.accesses, "l1_hits": c.l1_hits, "l2_hits": c.l2_hits,
            "walks": c.walks, "walk_steps": c.walk_steps, "pwc_hits": c.pwc_hits,
            "faults": c.faults, "cow_faults": c.cow_faults, "huge_faults": c.huge_faults,
            "segv": c.segv,
        }
        return r, counters, ops_dict(&ops)
