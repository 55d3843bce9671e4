# cython: language_level=3
"""The x86 family's flush_tlb_range.

arch/x86/mm/tlb.c: flush_tlb_mm_range, native_flush_tlb_multi (IPIs to
the other CPUs of mm_cpumask, lazy ones per should_flush_tlb) and
broadcast_tlb_flush (INVLPGB).
It counts every instruction the kernel would issue and applies its effect
to the TLB arrays. ``X86Rule`` registers itself as the C rule ``x86``
(``_flush.FLUSH_RULES``); its parameters are ``pagetab.flush``'s
dataclass of the family.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from pagetab._flush cimport (
    FlushOps, FlushRule, flush_all_cpus, flush_rule, invalidate_all_cpus, params_fit,
)
from pagetab._tlb cimport (
    TLB_LAZY, TLB_LAZY_LEFT, TLB_RUNNING, TlbState, flush_all_cpu, invalidate_range_cpu,
    tlb_cpu_cached,
)

from pagetab._flush import register_rule


cdef struct x86_params:
    int ceiling                  # tlb_single_page_flush_ceiling
    bint invlpgb                 # AMD INVLPGB broadcasts instead of IPIs
    int global_asid_cpus         # ... for an mm running on at least this many CPUs


cdef void flush_x86(const flush_rule *r, TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                    int stride_shift) noexcept nogil:
    """flush_tlb_mm_range: INVLPG per stride up to the ceiling, else a full
    flush; the same on every other CPU of mm_cpumask through an IPI, or,
    on the INVLPGB variant for an mm with a global ASID (one running on
    ``global_asid_cpus`` CPUs or more), INVLPGB broadcasts and one TLBSYNC."""
    cdef x86_params p
    memcpy(&p, r.p, sizeof(p))  # the rule's opaque words, read as this family's struct
    # flush_tlb_mm_range judges (end - start) >> stride_shift against the
    # ceiling; flush_tlb_func then issues INVLPG at each stride from start
    # while below end: one more for a range not a whole number of strides
    # (tlb_finish_mmu's range of freed tables, a page past the last one)
    cdef uint64_t pages = (end - start) >> stride_shift
    cdef bint full = pages > <uint64_t>p.ceiling
    if (end - start) & ((<uint64_t>1 << stride_shift) - 1):
        pages += 1
    cdef int cpu, running = 0
    cdef bint first_remote = True
    if p.invlpgb:
        # consider_global_asid: mm_active_cpus_exceeds(mm, 3) counts the
        # CPUs of mm_cpumask running the mm, lazy ones not
        for cpu in range(s.ncpu):
            if cpu == caller or (s.cpumask[cpu] and s.lazy[cpu] == TLB_RUNNING):
                running += 1
    if p.invlpgb and running >= p.global_asid_cpus:
        if full:
            ops.invlpgb += 1
        else:
            ops.invlpgb += <int64_t>pages
        ops.tlbsync += 1
        for cpu in range(s.ncpu):
            if s.cpumask[cpu] or cpu == caller:
                if full:
                    if tlb_cpu_cached(s, cpu):
                        flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries,
                                      &ops.collateral_entries)  # fmt: skip
                elif s.valid[cpu] > 0:
                    ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)
        return
    for cpu in range(s.ncpu):
        if cpu != caller and not s.cpumask[cpu]:
            continue
        if cpu == caller:
            if full:
                ops.full_flush += 1
            else:
                ops.invlpg += <int64_t>pages
                ops.invlpg_flush += 1
        elif s.lazy[cpu] == TLB_LAZY and not (s.ipi_lazy or (s.freed_tables and s.freed_ipi_lazy)):
            # native_flush_tlb_multi: should_flush_tlb skips a lazy CPU
            # (145f573b89a6, 4.20), unless page tables were freed; it
            # flushes when it next loads the mm (switch_mm_irqs_off sees the
            # newer tlb_gen)
            ops.lazy_skipped += 1
        else:
            ops.ipi += 1
            if s.lazy[cpu] == TLB_LAZY:
                # flush_tlb_func on a lazy CPU leaves lazy mode for init_mm;
                # its mm_cpumask bit stays (6.14+, 209954cbc7d0) until the
                # next IPI finds another mm loaded and clears it
                s.lazy[cpu] = TLB_LAZY_LEFT
            elif s.lazy[cpu] == TLB_LAZY_LEFT:
                s.lazy[cpu] = TLB_RUNNING
                s.cpumask[cpu] = 0
            if first_remote:
                # remote CPUs flush in parallel: count one CPU's work
                if full:
                    ops.remote_full_flush += 1
                else:
                    ops.remote_invlpg += <int64_t>pages
                first_remote = False
        # (a CPU with nothing cached has nothing to lose: no call across modules)
        if full:
            if tlb_cpu_cached(s, cpu):
                flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)
        elif s.valid[cpu] > 0:
            ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)


cdef class X86Rule(FlushRule):
    """x86: INVLPG up to the ceiling, full flushes above, IPIs or INVLPGB."""

    def __init__(self, x86_params params):
        self.r.flush_range = flush_x86
        memcpy(self.r.p, &params, sizeof(params))

    def params(self):
        cdef x86_params p
        memcpy(&p, self.r.p, sizeof(p))
        return p


params_fit(sizeof(x86_params), "x86_params")
register_rule("x86", X86Rule)
