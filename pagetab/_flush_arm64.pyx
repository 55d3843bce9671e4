# cython: language_level=3
"""The arm64 family's flush_tlb_range.

arch/arm64/include/asm/tlbflush.h: __flush_tlb_range, __flush_tlb_range_op
(FEAT_TLBIRANGE) and __flush_tlb_range_limit_excess; broadcast TLBIs, no
IPIs.
It counts every instruction the kernel would issue and applies its effect
to the TLB arrays. ``Arm64Rule`` registers itself as the C rule ``arm64``
(``_flush.FLUSH_RULES``); its parameters are ``pagetab.flush``'s
dataclass of the family.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from pagetab._flush cimport (
    FlushOps, FlushRule, flush_all_cpus, flush_rule, invalidate_all_cpus, params_fit,
)
from pagetab._tlb cimport TlbState

from pagetab._flush import register_rule


cdef struct arm64_params:
    int max_dvm_ops              # MAX_DVM_OPS (PTRS_PER_PTE)
    int legacy_limit             # Linux 4.9 MAX_TLB_RANGE in pages; 0: the current rule
    bint range                   # FEAT_TLBIRANGE

# arch/arm64/include/asm/tlbflush.h: the pages one range TLBI of (num,
# scale) covers (__TLBI_RANGE_PAGES), and the most one can (MAX_TLBI_RANGE_PAGES)
cdef inline int64_t tlbi_range_pages(int num, int scale) noexcept nogil:
    return (<int64_t>num + 1) << (5 * scale + 1)


cdef enum:
    MAX_TLBI_RANGE_PAGES = (31 + 1) << (5 * 3 + 1)



cdef void flush_arm64(const flush_rule *r, TlbState *s, FlushOps *ops, int caller,
                      uint64_t start, uint64_t end, int stride_shift) noexcept nogil:
    """__flush_tlb_range: broadcast TLBIs (no IPIs) between DSB ISHST and
    DSB ISH; flush_tlb_mm (TLBI ASIDE1IS) past MAX_DVM_OPS without range
    TLBI; with FEAT_TLBIRANGE, (scale, num) range operations as
    __flush_tlb_range_op. The Linux 4.9 rule: per-page TLBIs (4K stride)
    up to MAX_TLB_RANGE pages, else flush_tlb_mm."""
    cdef arm64_params p
    memcpy(&p, r.p, sizeof(p))  # the rule's opaque words, read as this family's struct
    cdef uint64_t stride = (<uint64_t>1) << stride_shift
    cdef uint64_t pages, npages, addr
    cdef int scale, num
    cdef int64_t chunk
    if p.legacy_limit:
        pages = (end - start) >> s.page_shift
        if pages > <uint64_t>p.legacy_limit:
            ops.dsb += 2
            ops.tlbi_asid += 1
            flush_all_cpus(s, ops, start, end)
            return
        ops.dsb += 2
        ops.tlbi_page += <int64_t>pages
        invalidate_all_cpus(s, ops, start, end, s.page_shift)
        return
    start = start & ~(stride - 1)
    end = (end + stride - 1) & ~(stride - 1)
    pages = (end - start) >> s.page_shift
    # __flush_tlb_range_limit_excess
    if (not p.range and (end - start) >= <uint64_t>p.max_dvm_ops * stride) \
            or pages > MAX_TLBI_RANGE_PAGES:
        ops.dsb += 2
        ops.tlbi_asid += 1
        flush_all_cpus(s, ops, start, end)
        return
    ops.dsb += 2
    if not p.range:
        ops.tlbi_page += <int64_t>((end - start) >> stride_shift)
    else:
        # __flush_tlb_range_op: largest scale first
        npages = pages
        addr = start
        scale = 3
        while npages > 0:
            if npages == 1 or stride_shift != s.page_shift:
                ops.tlbi_page += 1
                npages -= stride >> s.page_shift
                continue
            chunk = <int64_t>npages
            if chunk > tlbi_range_pages(31, scale):
                chunk = tlbi_range_pages(31, scale)
            num = <int>((chunk >> (5 * scale + 1)) - 1)
            if num >= 0:
                ops.tlbi_range += 1
                npages -= (<uint64_t>(num + 1)) << (5 * scale + 1)
            scale -= 1
    invalidate_all_cpus(s, ops, start, end, stride_shift)


cdef class Arm64Rule(FlushRule):
    """arm64: broadcast TLBIs between DSBs, ASID flush past MAX_DVM_OPS."""

    def __init__(self, arm64_params params):
        self.r.flush_range = flush_arm64
        memcpy(self.r.p, &params, sizeof(params))

    def params(self):
        cdef arm64_params p
        memcpy(&p, self.r.p, sizeof(p))
        return p


params_fit(sizeof(arm64_params), "arm64_params")
register_rule("arm64", Arm64Rule)
