# cython: language_level=3
"""Per-CPU TLB arrays: the TLB layer, below the flush rules (_flush) and
the access path (_access).

The state is a plain C struct (``TlbState``) so that the move engine and
the access loop work on it without Python objects. Entries are tagged with
the CPU's flush generation (as the kernel's tlb_gen), so a full or ASID
flush is one increment. The lookup and fill functions are ``inline`` here
so that the access loop in _access.pyx compiles them into its own loop.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from *:
    """
    #define PT_TLB_VALID ((uint64_t)1 << 63)
    #define PT_TLB_GEN_MASK ((uint64_t)0x7fff)
    #define PT_TLB_KEY_MASK (((uint64_t)1 << 48) - 1)
    #define PT_TLB_F_WRITABLE ((uint64_t)1 << 63)
    #define PT_TLB_F_ZERO ((uint64_t)1 << 62)
    #define PT_TLB_F_FRAME (((uint64_t)1 << 62) - 1)
    #define PT_TLB_ONES ((uint64_t)0x1111111111111111ULL)
    #define PT_TLB_HIGHS ((uint64_t)0x8888888888888888ULL)
    """
    # tag: VALID | generation << 48 | vpn << 2 | size class
    const uint64_t VALID "PT_TLB_VALID"
    const uint64_t GEN_MASK "PT_TLB_GEN_MASK"
    const uint64_t KEY_MASK "PT_TLB_KEY_MASK"
    # frame word: writable, zero page, frame id of the entry's first base page
    const uint64_t F_WRITABLE "PT_TLB_F_WRITABLE"
    const uint64_t F_ZERO "PT_TLB_F_ZERO"
    const uint64_t F_FRAME "PT_TLB_F_FRAME"
    const uint64_t ONES "PT_TLB_ONES"
    const uint64_t HIGHS "PT_TLB_HIGHS"
    int __builtin_ctzll(unsigned long long x) nogil

cdef enum:
    MAX_ARRAYS = 8
    MAX_CLASSES = 4          # base page, PMD leaf, PUD leaf, contiguous PTE block
    CLS_CONT = 3             # the contiguous-block class (arm64 PTE_CONT)

# A CPU of mm_cpumask (cpu_tlbstate.is_lazy, arch/x86/mm/tlb.c): running
# the mm, in lazy TLB mode with it still loaded, or lazy and then sent to
# init_mm by a flush (Linux 4.19 with PCID; 4.9: the IPI'd lazy CPU leaves)
cdef enum lazy_state:
    TLB_RUNNING = 0
    TLB_LAZY = 1
    TLB_LAZY_LEFT = 2

# CPUs a TLB state holds (the width of its mm_cpumask); Python reads it as
# _tlb.MAX_TLB_CPUS
cpdef enum:
    MAX_TLB_CPUS = 256


# The geometry of one CPU's TLBs, given once when the TLBs are built.
cdef struct tlb_array_spec:
    int level                # 1 (L1 data TLB) or 2 (second level)
    int sets
    int ways
    unsigned classes         # bit c: holds leaves of size class c


cdef struct tlb_geometry:
    int narrays
    tlb_array_spec arrays[MAX_ARRAYS]
    int nclass
    int class_shift[MAX_CLASSES]     # address shift of each size class
    int pmd_shift
    int pwc_ways                     # page-walk cache entries (0: none)


cdef struct TlbArray:
    int level
    int sets_shift
    int ways
    unsigned classes
    uint64_t *tag            # [cpu][set][way]; 0 = empty
    uint64_t *frame          # frame id of the base page at the entry's start, bit 63 = writable
    uint32_t *lru                    # ways > 16: LRU stamps per way
    uint64_t *order                  # ways <= 16: per set, way numbers MRU first (4 bits each)
    uint64_t recip                   # ceil(2^40 / ways), to divide by ways


cdef struct TlbState:
    int ncpu
    int narrays
    TlbArray arrays[MAX_ARRAYS]
    int nclass
    int class_shift[MAX_CLASSES]
    int page_shift
    int pmd_shift
    uint64_t gen[MAX_TLB_CPUS]       # current generation per CPU
    uint32_t clock[MAX_TLB_CPUS]     # LRU clock per CPU
    int64_t valid[MAX_TLB_CPUS]      # valid entries per CPU (upper bound)
    uint8_t cpumask[MAX_TLB_CPUS]    # mm_cpumask
    uint8_t lazy[MAX_TLB_CPUS]       # in mm_cpumask: a lazy_state
    bint ipi_lazy                    # flushes IPI lazy CPUs too (x86 freed_tables flushes)
    bint freed_ipi_lazy              # x86: flushes of freed page tables IPI lazy CPUs too
    bint freed_tables                # the flush running is of freed page tables (the mmu_gather's
                                     # freed_tables): set by Tlbs.flush_range for its duration
    bint tlb_flush_batched           # mm->tlb_flush_batched: reclaim unmapped pages of this mm and
                                     # deferred their flush (set_tlb_ubc_flush_pending), not yet done
    bint batched_pending_call        # the kernel calls flush_tlb_batched_pending (4.13+)
    bint batched_pending_barrier     # flush_tlb_batched_pending is a barrier alone (arm64's
                                     # arch_flush_tlb_batched_pending before 4b634918384c)
    int32_t *ccount                  # [cpu][array][class] valid entries, to skip empty probes
    int nprobe[3]                    # per TLB level: the (array, class) pairs to probe
    int probe_arr[3][MAX_ARRAYS * MAX_CLASSES]
    int probe_cls[3][MAX_ARRAYS * MAX_CLASSES]
    int fill_arr[3][MAX_CLASSES]     # per TLB level and size class: the array filled, or -1
    int64_t probe_cost               # tags compared to invalidate one address
    int64_t entries_per_cpu
    # page-walk cache: fully associative, caches pmd-level table pointers
    int pwc_ways
    uint64_t *pwc_tag                # [cpu][way]
    uint32_t *pwc_lru
    uint8_t pwc_used[MAX_TLB_CPUS]   # a page-walk-cache entry filled since the last full flush


# A frozen, sorted copy of every CPU's valid entry addresses per size class,
# for counting entries in many ranges while the TLBs do not change (the
# move engine between two flushes): O(log n) per range instead of a scan.
cdef struct TlbSnapshot:
    uint64_t *base[MAX_CLASSES]      # sorted entry start addresses
    int64_t n[MAX_CLASSES]
    bint ready


# Whether a CPU caches anything a flush would destroy: a TLB entry, or a
# page-walk-cache entry since its last full flush. The flush rules test it
# before calling across modules (most flushes of a move find nothing).
cdef inline bint tlb_cpu_cached(TlbState *s, int cpu) noexcept nogil:
    return s.valid[cpu] > 0 or s.pwc_used[cpu]


# invalidation (used by the flush rules and the access path)
cdef int64_t invalidate_va(TlbState *s, int cpu, uint64_t addr) noexcept nogil
cdef int64_t scan_cpu(TlbState *s, int cpu, uint64_t lo, uint64_t hi, bint clear,
                      int64_t *outside) noexcept nogil
cdef int64_t invalidate_range_cpu(TlbState *s, int cpu, uint64_t start, uint64_t end,
                                  int stride_shift) noexcept nogil
cdef void flush_all_cpu(TlbState *s, int cpu, uint64_t start, uint64_t end,
                        int64_t *inside, int64_t *outside) noexcept nogil
cdef void flush_pwc_cpu(TlbState *s, int cpu) noexcept nogil
cdef int64_t tlb_count_range(TlbState *s, uint64_t lo, uint64_t hi) noexcept nogil
cdef int tlb_snapshot_build(TlbState *s, TlbSnapshot *snap) noexcept nogil
cdef int64_t tlb_snapshot_count(TlbState *s, TlbSnapshot *snap, uint64_t lo,
                                uint64_t hi) noexcept nogil
cdef void tlb_snapshot_free(TlbSnapshot *snap) noexcept nogil


cdef class TlbArrays:
    """The TLB arrays of every CPU of one mm (no flush rule: see _flush.Tlbs)."""
    cdef TlbState s


# ----------------------------------------------------------------------
# entries (inline: the access loop compiles these into itself)

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
    ``recip`` is the precomputed reciprocal of ways, exact for these sizes)."""
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
