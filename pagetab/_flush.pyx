# cython: language_level=3
"""The architecture families' flush_tlb_range rules (see _flush.pxd).

Each rule follows its kernel's code: arch/x86/mm/tlb.c (flush_tlb_mm_range,
broadcast_tlb_flush), arch/arm64/include/asm/tlbflush.h (__flush_tlb_range,
__flush_tlb_range_op), arch/powerpc/mm/book3s64/radix_tlb.c
(__radix__flush_tlb_range). It counts every instruction it would issue and
applies its effect to the TLB arrays.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from pagetab._tlb cimport (
    TLB_LAZY, TLB_LAZY_LEFT, TLB_RUNNING, TlbState, flush_all_cpu, flush_pwc_cpu,
    invalidate_range_cpu,
)


cdef void flush_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end) noexcept nogil:
    """A full/ASID/PID flush on every CPU, counting what it destroys."""
    cdef int cpu
    for cpu in range(s.ncpu):
        flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)


cdef void invalidate_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end,
                              int stride_shift) noexcept nogil:
    """Per-address invalidation of [start, end) on every CPU (broadcast TLBIs)."""
    cdef int cpu
    for cpu in range(s.ncpu):
        ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)


cdef void flush_x86(const flush_rule *r, TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
                    int stride_shift) noexcept nogil:
    """flush_tlb_mm_range: INVLPG per stride up to the ceiling, else a full
    flush; the same on every other CPU of mm_cpumask through an IPI, or,
    on the INVLPGB variant for an mm with a global ASID (one running on
    ``global_asid_cpus`` CPUs or more), INVLPGB broadcasts and one TLBSYNC."""
    cdef uint64_t pages = (end - start) >> stride_shift
    cdef bint full = pages > <uint64_t>r.p.x86.ceiling
    cdef int cpu, running = 0
    cdef bint first_remote = True
    if r.p.x86.invlpgb:
        # consider_global_asid: mm_active_cpus_exceeds(mm, 3) counts the
        # CPUs of mm_cpumask running the mm, lazy ones not
        for cpu in range(s.ncpu):
            if cpu == caller or (s.cpumask[cpu] and s.lazy[cpu] == TLB_RUNNING):
                running += 1
    if r.p.x86.invlpgb and running >= r.p.x86.global_asid_cpus:
        if full:
            ops.invlpgb += 1
        else:
            ops.invlpgb += <int64_t>pages
        ops.tlbsync += 1
        for cpu in range(s.ncpu):
            if s.cpumask[cpu] or cpu == caller:
                if full:
                    flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)
                else:
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
        elif s.lazy[cpu] == TLB_LAZY and not s.ipi_lazy:
            # native_flush_tlb_multi: should_flush_tlb skips a lazy CPU
            # (145f573b89a6, 4.20); it flushes when it next loads the mm
            # (switch_mm_irqs_off sees the newer tlb_gen)
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
        if full:
            flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)
        else:
            ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)


cdef void flush_arm64(const flush_rule *r, TlbState *s, FlushOps *ops, int caller,
                      uint64_t start, uint64_t end, int stride_shift) noexcept nogil:
    """__flush_tlb_range: broadcast TLBIs (no IPIs) between DSB ISHST and
    DSB ISH; flush_tlb_mm (TLBI ASIDE1IS) past MAX_DVM_OPS without range
    TLBI; with FEAT_TLBIRANGE, (scale, num) range operations as
    __flush_tlb_range_op. The Linux 4.9 rule: per-page TLBIs (4K stride)
    up to MAX_TLB_RANGE pages, else flush_tlb_mm."""
    cdef uint64_t stride = (<uint64_t>1) << stride_shift
    cdef uint64_t pages, npages, addr
    cdef int scale, num
    cdef int64_t chunk
    if r.p.arm64.legacy_limit:
        pages = (end - start) >> s.page_shift
        if pages > <uint64_t>r.p.arm64.legacy_limit:
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
    if (not r.p.arm64.range and (end - start) >= <uint64_t>r.p.arm64.max_dvm_ops * stride) \
            or pages > MAX_TLBI_RANGE_PAGES:
        ops.dsb += 2
        ops.tlbi_asid += 1
        flush_all_cpus(s, ops, start, end)
        return
    ops.dsb += 2
    if not r.p.arm64.range:
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


cdef void flush_ppc64(const flush_rule *r, TlbState *s, FlushOps *ops, int caller, uint64_t start, uint64_t end,
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
    flush_pid = nr_pages > <uint64_t>(r.p.ppc64.tlbiel_ceiling if local else r.p.ppc64.tlbie_ceiling)
    if not flush_pid and (end - start) >= pmd:
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
    if r.p.ppc64.thp and stride_shift == s.page_shift:
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


cdef inline void riscv_local(const flush_rule *r, TlbState *s, FlushOps *ops, int cpu,
                             bint remote, uint64_t start, uint64_t end,
                             int stride_shift) noexcept nogil:
    """local_flush_tlb_range_asid on one hart: sfence.vma per stride up to
    tlb_flush_all_threshold strides, else for the whole ASID."""
    cdef uint64_t stride = (<uint64_t>1) << stride_shift
    cdef uint64_t n = (end - start + stride - 1) >> stride_shift
    if n > <uint64_t>r.p.riscv.threshold:
        if remote:
            ops.remote_sfence_vma_asid += 1
        else:
            ops.sfence_vma_asid += 1
        flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)
        return
    if r.p.riscv.svinval:
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
    cdef int cpu
    cdef bint others = False, first_remote = True
    cdef FlushOps scratch                # other remote harts' instructions, not counted
    for cpu in range(s.ncpu):
        if s.cpumask[cpu] and cpu != caller:
            others = True
            break
    if not others:
        riscv_local(r, s, ops, caller, False, start, end, stride_shift)
        return
    if r.p.riscv.sbi:
        ops.sbi_rfence += 1
        for cpu in range(s.ncpu):
            if s.cpumask[cpu] or cpu == caller:
                if end - start > <uint64_t>r.p.riscv.sbi_flush_limit:
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


# ----------------------------------------------------------------------
# the rules as Python objects: one class per family

cdef class FlushRule:
    """Base of the families' rules; ``FLUSH_RULES`` maps a family to its class."""

    def __cinit__(self, *args, **kwargs):
        memset(&self.r, 0, sizeof(flush_rule))

    def params(self):
        """This rule's parameters (its family's C struct, as a dict)."""
        raise NotImplementedError("FlushRule is abstract: use a family's class")


cdef class X86Rule(FlushRule):
    """x86: INVLPG up to the ceiling, full flushes above, IPIs or INVLPGB."""

    def __init__(self, x86_params params):
        self.r.flush_range = flush_x86
        self.r.p.x86 = params

    def params(self):
        return self.r.p.x86


cdef class Arm64Rule(FlushRule):
    """arm64: broadcast TLBIs between DSBs, ASID flush past MAX_DVM_OPS."""

    def __init__(self, arm64_params params):
        self.r.flush_range = flush_arm64
        self.r.p.arm64 = params

    def params(self):
        return self.r.p.arm64


cdef class Ppc64RadixRule(FlushRule):
    """powerpc64 radix: tlbie/tlbiel per page, PID and PWC flushes."""

    def __init__(self, ppc64_params params):
        self.r.flush_range = flush_ppc64
        self.r.p.ppc64 = params

    def params(self):
        return self.r.p.ppc64


cdef class RiscvRule(FlushRule):
    """riscv: sfence.vma per page up to a threshold, SBI remote fences or IPIs."""

    def __init__(self, riscv_params params):
        self.r.flush_range = flush_riscv
        self.r.p.riscv = params

    def params(self):
        return self.r.p.riscv


#: family name (pagetab.flush classes' ``family``) -> rule class
FLUSH_RULES = {"x86": X86Rule, "arm64": Arm64Rule, "ppc64": Ppc64RadixRule, "riscv": RiscvRule}

cdef FlushOps _ops_layout
#: the flush operation counters, in the order of the C struct
OP_NAMES = tuple(_ops_layout)


cdef class Tlbs(TlbArrays):
    """The TLBs of every CPU of one mm and the flush rule of its arch.

    ``Tlbs(ncpu, geometry, rule)``: ``geometry`` as for TlbArrays, ``rule``
    a FlushRule (its C struct is copied once, here).
    """

    def __init__(self, int ncpu, geometry, FlushRule rule not None):
        self.rule = rule.r
        self.flush = rule

    def flush_range(self, int caller, uint64_t start, uint64_t end, int stride_shift=-1):
        """flush_tlb_range from ``caller``; returns the operations it took."""
        cdef FlushOps ops
        if not 0 <= caller < self.s.ncpu:
            raise ValueError(f"caller must be in 0..{self.s.ncpu - 1}, not {caller}")
        if stride_shift < 0:
            stride_shift = self.s.page_shift
        if not self.s.page_shift <= stride_shift < 64:
            raise ValueError(f"stride_shift must be in {self.s.page_shift}..63, not {stride_shift}")
        memset(&ops, 0, sizeof(FlushOps))
        tlb_flush_range(&self.rule, &self.s, &ops, caller, start, end, stride_shift)
        return ops
