# cython: language_level=3
"""The powerpc64 radix family's flush_tlb_range.

arch/powerpc/mm/book3s64/radix_tlb.c: __radix__flush_tlb_range.
It counts every instruction the kernel would issue and applies its effect
to the TLB arrays. ``Ppc64RadixRule`` registers itself as the C rule ``ppc64``
(``_flush.FLUSH_RULES``); its parameters are ``pagetab.flush``'s
dataclass of the family.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from pagetab._flush cimport (
    FlushOps, FlushRule, flush_all_cpus, flush_rule, invalidate_all_cpus, params_fit,
)
from pagetab._tlb cimport TlbState, flush_all_cpu, flush_pwc_cpu, invalidate_range_cpu

from pagetab._flush import register_rule


cdef struct ppc64_params:
    int tlbie_ceiling            # tlb_single_page_flush_ceiling (global)
    int tlbiel_ceiling           # tlb_local_single_page_flush_ceiling
    bint thp                     # CONFIG_TRANSPARENT_HUGEPAGE: also flush 2M sizes


cdef void flush_ppc64(const flush_rule *r, TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                      int stride_shift) noexcept nogil:
    """__radix__flush_tlb_range: local (tlbiel) when only this CPU uses the
    mm, else global tlbie; whole-PID flush past the ceiling (33 global, 256
    local); a page-walk-cache flush for ranges of PMD_SIZE or more; THP
    kernels also flush the 2M size; global tlbies end with eieio; tlbsync;
    ptesync."""
    cdef ppc64_params p
    memcpy(&p, r.p, sizeof(p))  # the rule's opaque words, read as this family's struct
    cdef uint64_t nr_pages = (end - start) >> stride_shift
    cdef bint local = True, flush_pid, flush_pwc = False
    cdef uint64_t pmd = (<uint64_t>1) << s.pmd_shift, hstart, hend
    cdef int cpu
    for cpu in range(s.ncpu):
        if s.cpumask[cpu] and cpu != caller:
            local = False
    flush_pid = nr_pages > <uint64_t>(p.tlbiel_ceiling if local else p.tlbie_ceiling)
    if not flush_pid and ((end - start) >= pmd or s.freed_tables):
        # radix__tlb_flush: freed tables take the page-walk cache too
        # (radix__flush_tlb_pwc_range_psize)
        flush_pwc = True
    if flush_pid:
        ops.pid_flush += 1
        if local:
            flush_all_cpu(s, caller, start, end, &ops.invalidated_entries, &ops.collateral_entries)
        else:
            flush_all_cpus(s, ops, start, end)
        return
    if flush_pwc:
        ops.pwc_flush += 1
    if local:
        ops.tlbiel += <int64_t>nr_pages
    else:
        ops.tlbie += <int64_t>nr_pages
    if p.thp and stride_shift == s.page_shift:
        hstart = (start + pmd - 1) & ~(pmd - 1)
        hend = end & ~(pmd - 1)
        if hstart < hend:
            if local:
                ops.tlbiel += <int64_t>((hend - hstart) >> s.pmd_shift)
            else:
                ops.tlbie += <int64_t>((hend - hstart) >> s.pmd_shift)
    if not local:
        ops.tlbie_sync += 1
    for cpu in range(s.ncpu):
        if cpu == caller or (not local and s.cpumask[cpu]):
            ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)
            if flush_pwc:
                flush_pwc_cpu(s, cpu)


cdef class Ppc64RadixRule(FlushRule):
    """powerpc64 radix: tlbie/tlbiel per page, PID and PWC flushes."""

    def __init__(self, ppc64_params params):
        self.r.flush_range = flush_ppc64
        memcpy(self.r.p, &params, sizeof(params))

    def params(self):
        cdef ppc64_params p
        memcpy(&p, self.r.p, sizeof(p))
        return p


params_fit(sizeof(ppc64_params), "ppc64_params")
register_rule("ppc64", Ppc64RadixRule)
