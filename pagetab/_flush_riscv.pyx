# cython: language_level=3
"""The riscv family's flush_tlb_range.

arch/riscv/mm/tlbflush.c: __flush_tlb_range, local_flush_tlb_range_asid;
remote harts through SBI remote fences or IPIs; the proposed Svinval path.
It counts every instruction the kernel would issue and applies its effect
to the TLB arrays. ``RiscvRule`` registers itself as the C rule ``riscv``
(``_flush.FLUSH_RULES``); its parameters are ``pagetab.flush``'s
dataclass of the family.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy, memset

from pagetab._flush cimport (
    FlushOps, FlushRule, flush_all_cpus, flush_rule, invalidate_all_cpus, params_fit,
)
from pagetab._tlb cimport TlbState, flush_all_cpu, invalidate_range_cpu

from pagetab._flush import register_rule


cdef struct riscv_params:
    int threshold                # tlb_flush_all_threshold
    bint sbi                     # remote harts through SBI remote fences, not IPIs
    int sbi_flush_limit          # the SBI firmware's range-flush limit in bytes
    bint svinval                 # Svinval: sinval.vma between sfence.w.inval and sfence.inval.ir


cdef inline void riscv_local(const flush_rule *r, TlbState *s, FlushOps *ops, int cpu,
                             bint remote, uint64_t start, uint64_t end,
                             int stride_shift) noexcept nogil:
    """local_flush_tlb_range_asid on one hart: sfence.vma per stride up to
    tlb_flush_all_threshold strides, else for the whole ASID."""
    cdef riscv_params p
    memcpy(&p, r.p, sizeof(p))  # the rule's opaque words, read as this family's struct
    cdef uint64_t stride = (<uint64_t>1) << stride_shift
    # strides, rounded up (without overflow: flush_tlb_mm's range is all of it)
    cdef uint64_t n = ((end - start) >> stride_shift) + (((end - start) & (stride - 1)) != 0)
    if n > <uint64_t>p.threshold:
        if remote:
            ops.remote_sfence_vma_asid += 1
        else:
            ops.sfence_vma_asid += 1
        flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)
        return
    if p.svinval:
        # the proposed Svinval path: sfence.w.inval, sinval.vma per stride,
        # sfence.inval.ir
        if remote:
            ops.remote_sinval_vma += <int64_t>n
            ops.remote_svinval_fences += 1
        else:
            ops.sinval_vma += <int64_t>n
            ops.svinval_fences += 1
    elif remote:
        ops.remote_sfence_vma += <int64_t>n
    else:
        ops.sfence_vma += <int64_t>n
    ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)


cdef void flush_riscv(const flush_rule *r, TlbState *s, FlushOps *ops, int caller,
                      uint64_t start, uint64_t end, int stride_shift) noexcept nogil:
    """arch/riscv/mm/tlbflush.c __flush_tlb_range: the local flush alone when
    no other hart of mm_cpumask; else one SBI remote fence for all of them
    (riscv_use_sbi_for_rfence; the firmware flushes the whole ASID on each
    hart above its range-flush limit), or IPIs running the local flush on
    each hart (on_each_cpu_mask, the caller included)."""
    cdef riscv_params p
    memcpy(&p, r.p, sizeof(p))  # the rule's opaque words, read as this family's struct
    cdef int cpu
    cdef bint others = False, first_remote = True
    cdef FlushOps scratch                # other remote harts' instructions, not counted
    if s.freed_tables:
        # tlb_flush: freed page tables flush the whole mm (flush_tlb_mm:
        # the range 0 .. FLUSH_TLB_MAX_SIZE)
        start, end = 0, <uint64_t>0xffffffffffffffff
    for cpu in range(s.ncpu):
        if s.cpumask[cpu] and cpu != caller:
            others = True
            break
    if not others:
        riscv_local(r, s, ops, caller, False, start, end, stride_shift)
        return
    if p.sbi:
        ops.sbi_rfence += 1
        for cpu in range(s.ncpu):
            if s.cpumask[cpu] or cpu == caller:
                if end - start > <uint64_t>p.sbi_flush_limit:
                    flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries,
                                  &ops.collateral_entries)
                else:
                    ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end,
                                                                    stride_shift)
        return
    for cpu in range(s.ncpu):
        if cpu == caller:
            riscv_local(r, s, ops, cpu, False, start, end, stride_shift)
        elif s.cpumask[cpu]:
            ops.ipi += 1
            if first_remote:
                # remote harts flush in parallel: count one hart's work
                riscv_local(r, s, ops, cpu, True, start, end, stride_shift)
                first_remote = False
            else:
                memset(&scratch, 0, sizeof(FlushOps))
                riscv_local(r, s, &scratch, cpu, True, start, end, stride_shift)
                ops.invalidated_entries += scratch.invalidated_entries
                ops.collateral_entries += scratch.collateral_entries


cdef class RiscvRule(FlushRule):
    """riscv: sfence.vma per page up to a threshold, SBI remote fences or IPIs."""

    def __init__(self, riscv_params params):
        self.r.flush_range = flush_riscv
        memcpy(self.r.p, &params, sizeof(params))

    def params(self):
        cdef riscv_params p
        memcpy(&p, self.r.p, sizeof(p))
        return p


params_fit(sizeof(riscv_params), "riscv_params")
register_rule("riscv", RiscvRule)
