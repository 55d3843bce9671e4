"""Per-architecture TLB sizes, flush rules and event costs, with sources.

Every number carries its source next to it. "measured here" means the
real kernel on these machines (shared/DOMAIN.md section 6); "assumption"
marks a figure no public measurement was found for: it is stated once,
never tuned to reproduce a published ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COSTS", "TLBS", "Cost", "TlbArraySpec", "TlbSpec"]


@dataclass(frozen=True)
class Cost:
    """Nanoseconds per event, and where the figure comes from."""

    ns: float
    source: str


@dataclass(frozen=True)
class TlbArraySpec:
    """One set-associative TLB array: level 1 or 2, sets x ways, and the
    leaf sizes it holds (names of levels: "pte", "pmd", "pud")."""

    level: int
    sets: int
    ways: int
    holds: tuple[str, ...]

    @property
    def entries(self) -> int:
        return self.sets * self.ways


@dataclass(frozen=True)
class TlbSpec:
    """A core's data TLBs, its optional page-walk cache, and the source."""

    arrays: tuple[TlbArraySpec, ...]
    source: str
    pwc_entries: int = 0


_ALL = ("pte", "pmd", "pud")

TLBS = {
    "x86-64": TlbSpec(
        (
            TlbArraySpec(1, 16, 4, ("pte",)),
            TlbArraySpec(1, 8, 4, ("pmd",)),
            TlbArraySpec(1, 1, 4, ("pud",)),
            TlbArraySpec(2, 128, 12, ("pte", "pmd")),
            TlbArraySpec(2, 4, 4, ("pud",)),
        ),
        "Intel 64 and IA-32 Architectures Optimization Reference Manual, Skylake server "
        "microarchitecture TLB parameters: DTLB 64x4K 4-way, 32x2M 4-way, 4x1G; STLB 1536 "
        "4K/2M 12-way, 16x1G 4-way",
    ),
    "arm64": TlbSpec(
        (TlbArraySpec(1, 1, 48, _ALL), TlbArraySpec(2, 256, 5, _ALL)),
        "Arm Neoverse N1 Core Technical Reference Manual (Cortex-A76 class): L1 data TLB 48 "
        "entries fully associative, L2 TLB 1280 entries 5-way, all page sizes",
    ),
    "ppc64": TlbSpec(
        (TlbArraySpec(1, 1, 64, _ALL), TlbArraySpec(2, 256, 4, _ALL)),
        "POWER9 Processor User's Manual (IBM): 64-entry fully associative D-ERAT, 1024-entry "
        "4-way TLB (sizes as recalled from the manual; not re-checked in this repository)",
    ),
}

_X86_MEASURED = "measured here (shared/DOMAIN.md section 6)"
_AS_X86 = "assumption: as measured on x86-64 here; no measurement of this arch available"

_COMMON = {
    "mremap_call": Cost(4800, f"{_X86_MEASURED}: 1 GiB PUD-aligned move 5 us, less one PUD move"),
    "pte_move": Cost(13.5, f"{_X86_MEASURED}: 3.8 ms for 262144 PTEs, less the per-extent "
                     "flushes and locks"),
    "pmd_move": Cost(15, f"{_X86_MEASURED}: ~210 ns per PMD with its flush, less the flush, "
                     "two PMD locks and the rmap lock"),
    "pud_move": Cost(15, f"{_X86_MEASURED}: ~200 ns per PUD with its flush, less the flush, "
                     "page_table_lock and the rmap lock"),
    "table_alloc": Cost(100, "assumption: page allocation plus clear_page of one table page"),
    "split_huge_pmd": Cost(350, "assumption: table_alloc plus 512 PTE writes (~0.5 ns each)"),
    "ptl_lock": Cost(10, "assumption: uncontended spin_lock + spin_unlock, two atomics"),
    "rmap_lock": Cost(25, "assumption: uncontended anon_vma down_write + up_write"),
    "flush_call": Cost(30, "assumption: flush_tlb_range bookkeeping (tlb_gen, mm_cpumask)"),
    "tlb_l1_hit": Cost(0, "part of the load-to-use latency"),
    "tlb_l2_hit": Cost(3, "assumption: ~9 cycles second-level TLB hit at 3 GHz"),
    "walk_step": Cost(10, "assumption: one page-table load that hits the data caches"),
    "fault": Cost(300, f"{_X86_MEASURED}: 256 GiB read-faulted in 20 s, 300 ns per page"),
    "cow_fault": Cost(400, "assumption: a fresh page, clear_page and the PTE update"),
}  # fmt: skip

COSTS = {
    "x86-64": {
        **_COMMON,
        "full_flush": Cost(120, "366 cycles at 3 GHz: full flush, Ingo Molnar on linux-mm 2015 "
                           "(shared/DOMAIN.md section 4)"),
        "invlpg": Cost(100, "INVLPG ~100 ns (237-883 cycles), arch/x86/mm/tlb.c comment and "
                       "Ingo Molnar 2015 (shared/DOMAIN.md section 4)"),
        "ipi": Cost(1500, "assumption: synchronous flush IPI to one CPU with its ack; published "
                    "shootdowns take microseconds (Amit, USENIX ATC 2017)"),
        "invlpgb": Cost(100, "assumption: as INVLPG; no public per-instruction figure"),
        "tlbsync": Cost(500, "assumption: TLBSYNC waits for every broadcast to complete"),
    },
    "arm64": {
        **{k: Cost(v.ns, _AS_X86) if k in ("mremap_call", "pte_move", "pmd_move", "pud_move",
                                            "fault") else v for k, v in _COMMON.items()},
        "tlbi_page": Cost(25, "assumption: issue cost of one TLBI; completion is paid in DSB ISH"),
        "tlbi_range": Cost(25, "assumption: as tlbi_page"),
        "tlbi_asid": Cost(25, "assumption: as tlbi_page"),
        "dsb": Cost(160, "c320dbb7c80d (arm64/mm: elide TLB flush ...): dropping a one-page flush "
                    "(DSB ISHST; TLBI; DSB ISH) saved ~350 ns; split over the two DSBs"),
    },
    "ppc64": {
        **{k: Cost(v.ns, _AS_X86) if k in ("mremap_call", "pte_move", "pmd_move", "pud_move",
                                            "fault") else v for k, v in _COMMON.items()},
        "tlbie": Cost(100, "assumption: one global tlbie broadcast"),
        "tlbiel": Cost(20, "assumption: local tlbiel, no fabric broadcast"),
        "pid_flush": Cost(300, "assumption: RIC_FLUSH_ALL for the PID"),
        "pwc_flush": Cost(100, "assumption: RIC_FLUSH_PWC"),
        "tlbie_sync": Cost(500, "assumption: eieio; tlbsync; ptesync waits for the fabric"),
    },
}  # fmt: skip
