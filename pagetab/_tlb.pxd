# cython: language_level=3
"""Per-CPU TLBs and the architectures' TLB flush rules (DESIGN.md layer 4).

The state is a plain C struct (``TlbState``) so that the move engine can
flush without Python objects. Entries are tagged with the CPU's flush
generation (as the kernel's tlb_gen), so a full or ASID flush is O(1).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef enum:
    MAX_ARRAYS = 8
    MAX_CLASSES = 3          # base page, PMD leaf, PUD leaf
    MAX_TLB_CPUS = 256

# flush rule kinds
cdef enum:
    FR_X86 = 0
    FR_ARM64 = 1
    FR_PPC64 = 2

# flush operation counters (indices into FlushOps.n)
cdef enum:
    OP_CALLS = 0             # flush_tlb_range calls
    OP_PAGES = 1             # pages the calls covered
    OP_FULL = 2              # x86 full flush (CR3 write) on the calling CPU
    OP_INVLPG = 3            # x86 INVLPG on the calling CPU
    OP_IPI = 4               # x86 synchronous flush IPIs to other CPUs
    OP_REMOTE_FULL = 5       # full flushes on one remote CPU (they run in parallel)
    OP_REMOTE_INVLPG = 6     # INVLPGs on one remote CPU
    OP_INVLPGB = 7           # AMD INVLPGB broadcasts
    OP_TLBSYNC = 8
    OP_TLBI_PAGE = 9         # arm64 TLBI VAE1IS
    OP_TLBI_RANGE = 10       # arm64 TLBI RVAE1IS
    OP_TLBI_ASID = 11        # arm64 TLBI ASIDE1IS (flush_tlb_mm)
    OP_DSB = 12              # arm64 DSB ISHST / DSB ISH
    OP_TLBIE = 13            # ppc64 global tlbie (per page)
    OP_TLBIEL = 14           # ppc64 local tlbiel (per page)
    OP_PID_FLUSH = 15        # ppc64 whole-PID flush (RIC_FLUSH_ALL)
    OP_PWC_FLUSH = 16        # ppc64 page-walk-cache flush (RIC_FLUSH_PWC)
    OP_SYNC = 17             # ppc64 eieio; tlbsync; ptesync after global tlbie
    OP_COLLATERAL = 18       # valid entries outside the range destroyed by full/ASID/PID flushes
    OP_INVALIDATED = 19      # valid entries inside the range invalidated
    NOPS = 20


cdef struct FlushOps:
    int64_t n[NOPS]


cdef struct TlbArray:
    int level                # 1 (L1 data TLB) or 2 (second level)
    int sets_shift
    int ways
    unsigned classes         # bit c: holds leaves of size class c
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
    int class_shift[MAX_CLASSES]     # address shift of each size class
    int page_shift
    int pmd_shift
    uint64_t gen[MAX_TLB_CPUS]       # current generation per CPU
    uint32_t clock[MAX_TLB_CPUS]     # LRU clock per CPU
    int64_t valid[MAX_TLB_CPUS]      # valid entries per CPU (upper bound)
    uint8_t cpumask[MAX_TLB_CPUS]    # mm_cpumask
    int32_t *ccount                  # [cpu][array][class] valid entries, to skip empty probes
    int nprobe[3]                    # per TLB level: the (array, class) pairs to probe
    int probe_arr[3][24]
    int probe_cls[3][24]
    int fill_arr[3][MAX_CLASSES]     # per TLB level and size class: the array filled, or -1
    int64_t probe_cost               # tags compared to invalidate one address
    int64_t entries_per_cpu
    # page-walk cache: fully associative, caches pmd-level table pointers
    int pwc_ways
    uint64_t *pwc_tag                # [cpu][way]
    uint32_t *pwc_lru
    # flush rules
    int kind
    int x86_ceiling                  # tlb_single_page_flush_ceiling
    bint x86_invlpgb
    int arm_max_dvm_ops              # MAX_DVM_OPS (PTRS_PER_PTE), 0 = legacy rule
    int arm_legacy_limit             # Linux 4.9 MAX_TLB_RANGE in pages
    bint arm_range                   # FEAT_TLBIRANGE
    int ppc_tlbie_ceiling
    int ppc_tlbiel_ceiling
    bint ppc_thp                     # CONFIG_TRANSPARENT_HUGEPAGE: also flush 2M sizes


cdef void tlb_flush_range(TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                          int stride_shift) noexcept nogil
cdef int64_t tlb_count_range(TlbState *s, uint64_t lo, uint64_t hi) noexcept nogil


# A frozen, sorted copy of every CPU's valid entry addresses per size class,
# for counting entries in many ranges while the TLBs do not change (the
# move engine between two flushes): O(log n) per range instead of a scan.
cdef struct TlbSnapshot:
    uint64_t *base[MAX_CLASSES]      # sorted entry start addresses
    int64_t n[MAX_CLASSES]
    bint ready

cdef int tlb_snapshot_build(TlbState *s, TlbSnapshot *snap) noexcept nogil
cdef int64_t tlb_snapshot_count(TlbState *s, TlbSnapshot *snap, uint64_t lo,
                                uint64_t hi) noexcept nogil
cdef void tlb_snapshot_free(TlbSnapshot *snap) noexcept nogil


cdef class Tlbs:
    cdef TlbState s
    cdef object _owner_arrays
