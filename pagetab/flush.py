"""The architecture families' TLB flush rules, as parameters.

Each family is one frozen dataclass naming its kernel rule, its parameters
(the fields of its C parameter struct in _flush_<family>.pyx) and which
cost event prices each flush instruction it issues, on the calling CPU and
on the CPUs it reaches. An ``Arch`` holds one of these; the mm turns it
into the C rule once (``_flush.rule_class(rules.rule)(rules.params())``).

Adding a family: a subclass here, its C module _flush_<family>.pyx, a
profile in arch.py and its cost events in costs_data.py;
docs/architecture.md walks through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from .argcheck import check_bool, check_int

__all__ = [
    "Arm64Flush",
    "FlushRules",
    "Ppc64RadixFlush",
    "RiscvFlush",
    "X86Flush",
    "flush_families",
]


_FAMILIES: dict[str, type[FlushRules]] = {}


@dataclass(frozen=True)
class FlushRules:
    """Base of the families' flush rules: everything about a family that is
    not its C code is declared here, in its subclass, once.

    ``family`` is its name (a subclass registers itself under it);
    ``rule`` names the C rule that runs it (``_flush.rule_class``; by
    default the family's own name). ``op_costs`` maps each flush operation
    the rule counts on the calling CPU to the cost event that prices it
    (one CPU's share: remote CPUs flush in parallel): ``cost.py`` and the
    timeline price a flush from it. ``remote_ops`` maps each operation a
    receiving CPU runs in its flush handler to its cost event, and
    ``interrupts`` names the operations that interrupt the receiving CPUs
    (besides ``ipi``, which every family that sends IPIs counts): the
    concurrent model prices a receiver's handler from these two. Operations
    listed nowhere (flush_calls and ipi are priced by every family's
    ``flush_call`` and ``ipi`` events; flush_pages, collateral_entries,
    invalidated_entries) are counts, not time.
    """

    family: ClassVar[str] = ""
    """The family's name, which the subclass registers under."""
    rule: ClassVar[str] = ""
    """The C rule that runs it (``_flush.rule_class``); by default ``family``."""
    op_costs: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The cost event of each flush operation counted on the calling CPU."""
    remote_ops: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The cost event of each operation a receiving CPU runs in its handler."""
    interrupts: ClassVar[tuple[str, ...]] = ()
    """The operations that interrupt the receiving CPUs."""
    batched_unmap: ClassVar[str | None] = ""
    """Whether the kernel defers reclaim's unmap flushes on this family
    (ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH), so that flush_tlb_batched_pending
    can find one pending (``AddressSpace.tlb_flush_batched``): None never,
    "" in every kernel pagetab has a preset for, else the Policy field that
    says whether the policy's kernel does."""
    batched_pending_barrier: ClassVar[bool] = False
    """Whether its arch_flush_tlb_batched_pending was a barrier alone before
    Policy.batched_pending_flush_mm (arm64's DSB ISH)."""
    pte_needs_flush_writable: ClassVar[bool] = False
    """Whether a protection change flushes only the entries it takes a right
    from, so that making a zero-page entry read-only flushes nothing (the
    arch's own pte_needs_flush: x86, powerpc book3s); elsewhere every
    changed present entry joins the flush (include/asm-generic/tlb.h)."""
    pmdp_invalidate_flushes: ClassVar[bool] = True
    """Whether change_huge_pmd's pmdp_invalidate_ad flushes the PMD at once,
    under its lock (mm/pgtable-generic.c pmdp_invalidate); x86 defines its
    own, which does not (arch/x86/mm/pgtable.c: "No flush is necessary")."""
    source: str = ""
    """The kernel code the rule follows."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family in _FAMILIES:
            raise TypeError(f"flush family {cls.family!r} is already {_FAMILIES[cls.family]}")
        if "rule" not in vars(cls):
            cls.rule = cls.family
        _FAMILIES[cls.family] = cls

    def params(self) -> dict[str, Any]:
        """The family's C parameter struct, as a dict (every field but source)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "source"}  # fmt: skip


@dataclass(frozen=True)
class X86Flush(FlushRules):
    """arch/x86/mm/tlb.c flush_tlb_mm_range: INVLPG per page (per stride)
    up to ``ceiling`` pages (tlb_single_page_flush_ceiling), else a full
    flush; the other CPUs of mm_cpumask through synchronous IPIs, or with
    ``invlpgb`` AMD INVLPGB broadcasts and one TLBSYNC for an mm with a
    global ASID: one running on ``global_asid_cpus`` CPUs or more
    (consider_global_asid: mm_active_cpus_exceeds(mm, 3), Rik van Riel's
    INVLPGB series, Linux 6.15, <20250211210823.242681-1-riel@surriel.com>;
    the kernel samples this now and then and keeps the ASID, pagetab
    decides at each flush)."""

    family: ClassVar[str] = "x86"
    pte_needs_flush_writable: ClassVar[bool] = True
    pmdp_invalidate_flushes: ClassVar[bool] = False
    op_costs: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "full_flush": "full_flush",
            "invlpg": "invlpg",
            "invlpg_flush": "invlpg_flush",
            "remote_full_flush": "full_flush",
            "remote_invlpg": "invlpg",
            "invlpgb": "invlpgb",
            "tlbsync": "tlbsync",
        }
    )
    # flush_tlb_func on each CPU the IPI reaches
    remote_ops: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"remote_invlpg": "invlpg", "remote_full_flush": "full_flush"}
    )
    interrupts: ClassVar[tuple[str, ...]] = ("ipi",)
    ceiling: int = 33
    invlpgb: bool = False
    global_asid_cpus: int = 4

    def __post_init__(self) -> None:
        check_int("X86Flush.ceiling", self.ceiling, 0)
        check_bool("X86Flush.invlpgb", self.invlpgb)
        check_int("X86Flush.global_asid_cpus", self.global_asid_cpus, 1, 256)


@dataclass(frozen=True)
class Arm64Flush(FlushRules):
    """arch/arm64/include/asm/tlbflush.h __flush_tlb_range: broadcast TLBIs
    between DSB ISHST and DSB ISH; flush_tlb_mm (TLBI ASIDE1IS) from
    ``max_dvm_ops`` strides on (MAX_DVM_OPS = PTRS_PER_PTE) unless ``range``
    (FEAT_TLBIRANGE, __flush_tlb_range_op). ``legacy_limit`` > 0 is Linux
    4.9's rule: per-page TLBIs up to MAX_TLB_RANGE pages, else flush_tlb_mm."""

    family: ClassVar[str] = "arm64"
    # arch_tlbbatch_should_defer since 43b3dfdd0455 (6.6); the hook a DSB ISH
    batched_unmap: ClassVar[str | None] = "batched_unmap_arm64"
    batched_pending_barrier: ClassVar[bool] = True
    op_costs: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "tlbi_page": "tlbi_page",
            "tlbi_range": "tlbi_range",
            "tlbi_asid": "tlbi_asid",
            "dsb": "dsb",
        }
    )
    max_dvm_ops: int = 512
    legacy_limit: int = 0
    range: bool = False

    def __post_init__(self) -> None:
        check_int("Arm64Flush.max_dvm_ops", self.max_dvm_ops, 1)
        check_int("Arm64Flush.legacy_limit", self.legacy_limit, 0)
        check_bool("Arm64Flush.range", self.range)


@dataclass(frozen=True)
class Ppc64RadixFlush(FlushRules):
    """arch/powerpc/mm/book3s64/radix_tlb.c __radix__flush_tlb_range: tlbiel
    (local) when only this CPU uses the mm, else global tlbie, per page up
    to the ceilings; a whole-PID flush past them; a page-walk-cache flush
    for ranges of PMD_SIZE or more; ``thp`` kernels also flush the 2M size;
    global tlbies end with eieio; tlbsync; ptesync."""

    family: ClassVar[str] = "ppc64"
    pte_needs_flush_writable: ClassVar[bool] = True
    # no ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH: reclaim flushes at once
    batched_unmap: ClassVar[str | None] = None
    op_costs: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "tlbie": "tlbie",
            "tlbiel": "tlbiel",
            "pid_flush": "pid_flush",
            "pwc_flush": "pwc_flush",
            "tlbie_sync": "tlbie_sync",
        }
    )
    tlbie_ceiling: int = 33
    tlbiel_ceiling: int = 256
    thp: bool = True

    def __post_init__(self) -> None:
        check_int("Ppc64RadixFlush.tlbie_ceiling", self.tlbie_ceiling, 0)
        check_int("Ppc64RadixFlush.tlbiel_ceiling", self.tlbiel_ceiling, 0)
        check_bool("Ppc64RadixFlush.thp", self.thp)


@dataclass(frozen=True)
class RiscvFlush(FlushRules):
    """arch/riscv/mm/tlbflush.c __flush_tlb_range: sfence.vma per stride up
    to ``threshold`` strides (tlb_flush_all_threshold), else for the whole
    ASID; when other harts of mm_cpumask run the mm, one SBI remote fence
    (``sbi``, riscv_use_sbi_for_rfence: the firmware flushes the whole ASID
    on each hart above ``sbi_flush_limit`` bytes: OpenSBI's
    tlb_range_flush_limit, one 4K page by default as recalled, not verified
    against OpenSBI's source here) or IPIs running the local flush on every
    hart. ``svinval``: the proposed Svinval path (Mayuresh Chitale, "[PATCH
    v6 1/1] riscv: mm: Add support for Svinval extension",
    <20240609112103.285190-2-mchitale@ventanamicro.com>; not in mainline
    tlbflush.c as read at 038ac18a): below the threshold, sinval.vma per
    stride between one sfence.w.inval and one sfence.inval.ir."""

    family: ClassVar[str] = "riscv"
    batched_unmap: ClassVar[str | None] = "batched_unmap_riscv"
    op_costs: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "sfence_vma": "sfence_vma",
            "sfence_vma_asid": "sfence_vma_asid",
            "remote_sfence_vma": "sfence_vma",
            "remote_sfence_vma_asid": "sfence_vma_asid",
            "sbi_rfence": "sbi_rfence",
            "sinval_vma": "sinval_vma",
            "svinval_fences": "svinval_fences",
            "remote_sinval_vma": "sinval_vma",
            "remote_svinval_fences": "svinval_fences",
        }
    )
    # the local flush each remote hart runs, from an IPI or the SBI firmware
    remote_ops: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "remote_sfence_vma": "sfence_vma",
            "remote_sfence_vma_asid": "sfence_vma_asid",
            "remote_sinval_vma": "sinval_vma",
            "remote_svinval_fences": "svinval_fences",
        }
    )
    interrupts: ClassVar[tuple[str, ...]] = ("ipi", "sbi_rfence")
    threshold: int = 64
    sbi: bool = True
    sbi_flush_limit: int = 4096
    svinval: bool = False

    def __post_init__(self) -> None:
        check_int("RiscvFlush.threshold", self.threshold, 0)
        check_bool("RiscvFlush.sbi", self.sbi)
        check_int("RiscvFlush.sbi_flush_limit", self.sbi_flush_limit, 0, (1 << 31) - 1)
        check_bool("RiscvFlush.svinval", self.svinval)


def flush_families() -> dict[str, type[FlushRules]]:
    """The families with a rule, by name (every subclass registers itself)."""
    return dict(_FAMILIES)
