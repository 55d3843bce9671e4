# cython: language_level=3
"""TLB flush rules: how each architecture family turns flush_tlb_range into
instructions on the TLB arrays of _tlb.

A rule is a C struct holding a function pointer and its family's
parameters (the shape of numpy's bitgen_t): the move engine and the access
path call ``tlb_flush_range`` and never know which family runs. Each
family is one module, _flush_<family>.pyx: its parameter struct, its
function and its ``FlushRule`` subclass, which registers itself; its
Python parameters and prices are its dataclass in pagetab/flush.py.
Nothing here, nor in _tlb, _access or _move, changes for a new family
(but new instructions, which are new fields of ``FlushOps``).
"""

from libc.stdint cimport int64_t, uint64_t

from pagetab._tlb cimport TlbArrays, TlbState


# What the flushes did. The field names are the names Python sees
# (MoveStats.flush_ops, AccessStats.flush_ops): keep them the kernel's or
# the instruction's name.
cdef struct FlushOps:
    # each field's unit and meaning: OP_INFO in pagetab/stats.py
    int64_t flush_calls
    int64_t flush_pages
    int64_t full_flush
    int64_t invlpg
    int64_t invlpg_flush
    int64_t ipi
    int64_t lazy_skipped
    int64_t remote_full_flush
    int64_t remote_invlpg
    int64_t invlpgb
    int64_t tlbsync
    int64_t tlbi_page
    int64_t tlbi_range
    int64_t tlbi_asid
    int64_t dsb
    int64_t tlbie
    int64_t tlbiel
    int64_t pid_flush
    int64_t pwc_flush
    int64_t tlbie_sync
    int64_t collateral_entries
    int64_t invalidated_entries
    int64_t sfence_vma
    int64_t sfence_vma_asid
    int64_t remote_sfence_vma
    int64_t remote_sfence_vma_asid
    int64_t sbi_rfence
    int64_t sinval_vma
    int64_t svinval_fences
    int64_t remote_sinval_vma
    int64_t remote_svinval_fences


# A family's parameters, opaque here: its own module (_flush_<family>.pyx)
# declares the struct and casts ``flush_rule.p`` to it.
cdef enum:
    FLUSH_PARAMS_WORDS = 8       # int64 words: the largest family's struct fits (params_fit checks)


cdef struct flush_rule:
    # flush_tlb_range of this family, after the common bookkeeping
    void (*flush_range)(const flush_rule *r, TlbState *s, FlushOps *ops, int caller,
                        uint64_t start, uint64_t end, int stride_shift) noexcept nogil
    int64_t p[FLUSH_PARAMS_WORDS]


# what the families share: a flush of every CPU, an invalidation of a
# range on every CPU, and the check that a family's struct fits
cdef void flush_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end) noexcept nogil
cdef void invalidate_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end,
                              int stride_shift) noexcept nogil
cdef void params_fit(size_t size, str name) except *


cdef inline void tlb_flush_range(const flush_rule *r, TlbState *s, FlushOps *ops, int caller,
                                 uint64_t start, uint64_t end, int stride_shift) noexcept nogil:
    """flush_tlb_range(vma, start, end) issued from CPU ``caller``."""
    if end <= start:
        return
    ops.flush_calls += 1
    ops.flush_pages += <int64_t>((end - start) >> s.page_shift)
    r.flush_range(r, s, ops, caller, start, end, stride_shift)


cdef inline void tlb_flush_gather(const flush_rule *r, TlbState *s, FlushOps *ops, int caller,
                                  uint64_t start, uint64_t end, int stride_shift,
                                  bint freed_tables) noexcept nogil:
    """tlb_flush of an mmu_gather: tlb_flush_range, told whether page tables
    were freed (``freed_tables``), which each family reads from the state
    while it runs."""
    s.freed_tables = freed_tables
    tlb_flush_range(r, s, ops, caller, start, end, stride_shift)
    s.freed_tables = False


# flush_tlb_mm's range: [0, this), above every user address of every profile
# (a function: a C enum is an int)
cdef inline uint64_t flush_mm_end() noexcept nogil:
    return (<uint64_t>1) << 57


cdef inline bint flush_tlb_batched_pending(const flush_rule *r, TlbState *s, FlushOps *ops,
                                           int caller) noexcept nogil:
    """mm/rmap.c flush_tlb_batched_pending(mm): when reclaim left a
    deferred flush of this mm pending (``tlb_flush_batched``), flush the
    whole mm (flush_tlb_mm: x86 passes freed_tables, reaching lazy CPUs
    too), or, where the arch's hook is a barrier alone, a DSB; either way
    the batch is done. Returns whether one was pending."""
    if not (s.tlb_flush_batched and s.batched_pending_call):
        return False
    s.tlb_flush_batched = False
    if s.batched_pending_barrier:
        ops.dsb += 1
        return True
    s.freed_tables = True
    ops.flush_calls += 1
    r.flush_range(r, s, ops, caller, 0, flush_mm_end(), s.page_shift)
    s.freed_tables = False
    return True


cdef class FlushRule:
    """One family's flush_tlb_range and its parameters (see subclasses)."""
    cdef flush_rule r


cdef class Tlbs(TlbArrays):
    """The TLBs of every CPU of one mm with their architecture's flush rule."""
    cdef flush_rule rule
    cdef readonly FlushRule flush
    cdef int check_flush(self, int caller, int stride_shift) except -1
