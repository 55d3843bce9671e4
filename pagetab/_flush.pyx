# cython: language_level=3
"""What every family's flush_tlb_range shares (see _flush.pxd): the rule
base class and its registry, the flushes of every CPU, and ``Tlbs`` (the
TLB arrays of one mm with its arch's rule). The families themselves are
the modules _flush_x86, _flush_arm64, _flush_ppc64 and _flush_riscv.
"""

import importlib

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from pagetab._tlb cimport TlbState, flush_all_cpu, invalidate_range_cpu, tlb_cpu_cached


cdef void flush_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end) noexcept nogil:
    """A full/ASID/PID flush on every CPU, counting what it destroys."""
    cdef int cpu
    for cpu in range(s.ncpu):
        if tlb_cpu_cached(s, cpu):
            flush_all_cpu(s, cpu, start, end, &ops.invalidated_entries, &ops.collateral_entries)


cdef void invalidate_all_cpus(TlbState *s, FlushOps *ops, uint64_t start, uint64_t end,
                              int stride_shift) noexcept nogil:
    """Per-address invalidation of [start, end) on every CPU (broadcast TLBIs)."""
    cdef int cpu
    for cpu in range(s.ncpu):
        if s.valid[cpu] > 0:
            ops.invalidated_entries += invalidate_range_cpu(s, cpu, start, end, stride_shift)


# ----------------------------------------------------------------------
# the rules as Python objects: one class per family

cdef class FlushRule:
    """Base of the families' rules; ``FLUSH_RULES`` maps a family to its class."""

    def __cinit__(self, *args, **kwargs):
        memset(&self.r, 0, sizeof(flush_rule))

    def params(self):
        """This rule's parameters (its family's C struct, as a dict)."""
        raise NotImplementedError("FlushRule is abstract: use a family's class")


#: C rule name (pagetab.flush classes' ``rule``) -> rule class: each family's
#: module (_flush_<rule>.pyx) registers its class as it is imported
FLUSH_RULES = {}


def register_rule(str name, cls):
    """Register ``cls`` (a FlushRule subclass) as the C rule ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, FlushRule)):
        raise TypeError(f"register_rule: {cls!r} is not a FlushRule subclass")
    if name in FLUSH_RULES and FLUSH_RULES[name] is not cls:
        raise ValueError(f"register_rule: {name!r} is already {FLUSH_RULES[name]}")
    FLUSH_RULES[name] = cls


def rule_class(str name):
    """The rule class registered as ``name``, importing its module
    (pagetab._flush_<name>) the first time; ValueError if there is none."""
    if name not in FLUSH_RULES:
        try:
            importlib.import_module(f"pagetab._flush_{name}")
        except ModuleNotFoundError:
            raise ValueError(f"no flush rule {name!r}: no module pagetab._flush_{name}") from None
    return FLUSH_RULES[name]


cdef void params_fit(size_t size, str name) except *:
    """ImportError unless a family's parameter struct fits flush_rule.p."""
    if size > sizeof(int64_t) * FLUSH_PARAMS_WORDS:
        raise ImportError(f"{name} ({size} bytes) does not fit flush_rule.p: raise "
                          "FLUSH_PARAMS_WORDS in _flush.pxd")


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

    def flush_range(self, int caller, uint64_t start, uint64_t end, int stride_shift=-1,
                    bint freed_tables=False):
        """flush_tlb_range from ``caller``; returns the operations it took.
        ``freed_tables``: tlb_finish_mmu's flush after page tables were
        freed (the mmu_gather's freed_tables), which each family treats in
        its own way (x86 IPIs lazy CPUs, riscv flushes the mm, powerpc
        flushes the page-walk cache)."""
        cdef FlushOps ops
        if stride_shift < 0:
            stride_shift = self.s.page_shift
        self.check_flush(caller, stride_shift)
        memset(&ops, 0, sizeof(FlushOps))
        tlb_flush_gather(&self.rule, &self.s, &ops, caller, start, end, stride_shift, freed_tables)
        return ops

    def flush_tlb_batched_pending(self, int caller):
        """flush_tlb_batched_pending from ``caller`` (zap_pte_range and
        change_pte_range call it too): the operations it took, or None when
        no deferred flush was pending."""
        cdef FlushOps ops
        self.check_flush(caller, self.s.page_shift)
        memset(&ops, 0, sizeof(FlushOps))
        if not flush_tlb_batched_pending(&self.rule, &self.s, &ops, caller):
            return None
        return ops

    cdef int check_flush(self, int caller, int stride_shift) except -1:
        """ValueError unless ``caller`` is a CPU here and ``stride_shift`` a
        stride from the page size up."""
        if not 0 <= caller < self.s.ncpu:
            raise ValueError(f"caller must be in 0..{self.s.ncpu - 1}, not {caller}")
        if not self.s.page_shift <= stride_shift < 64:
            raise ValueError(f"stride_shift must be in {self.s.page_shift}..63, not {stride_shift}")
        return 0
