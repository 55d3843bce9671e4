"""Per-architecture TLB sizes, flush rules and event costs, with sources.

Every number carries its source next to it. "test host" figures are
single runs of the real kernel on the project's Linux 6.18 x86-64 test
host (a shared 2-core virtual machine) over zero-page regions; pagetab.host
re-measures them: ``pagetab host --size 1G`` (also 16G, 256G) for mremap,
``python bench/scale.py 256`` (kernel column) for MADV_POPULATE_READ. The
host is shared and a later run differed (docs' native table, 1 GiB: PTE
path 2.5 ms, PMD path 130 us, PUD path 3 us; populate about 440 ns per
page), so re-measure before leaning on one figure. "assumption" marks a
figure no public measurement was found for: it is stated once, never
tuned to reproduce a published ratio.

Every figure also carries a range, ``low`` to ``high``, stated in its
source: a test-host figure spans the other runs of the same measurement
recorded in this repository (the later run above, the docs' tables (guide/host-kernel.md))
put through the same derivation, and at least +-20% (the run-to-run
spread on the shared host); a published figure spans the published range
(hot to cold cycles, at the clock the source assumes); an "assumption"
spans x0.5 to x2 of its figure ("assumption band x0.5-x2"), and a
test-host figure borrowed by another arch spans x0.5 of its x86-64 low to
x2 of its high. The ranges price each estimate's interval
(``pagetab.cost.move_cost_range``); they leave ``ns`` and every estimate
as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["COSTS", "TLBS", "Cost", "TlbArraySpec", "TlbSpec"]


@dataclass(frozen=True)
class Cost:
    """Nanoseconds per event, where the figure comes from, and its range:
    ``low <= ns <= high`` (ns), how far the figure may be off; ``source``
    says what the range rests on. Without ``low``/``high`` the range is the
    figure alone."""

    ns: float
    """The figure (ns per event)."""
    source: str
    """Where the figure and its range come from."""
    low: float = math.nan
    """The low end of its range (ns); not given: the figure itself (a range
    of one point)."""
    high: float = math.nan
    """The high end of its range (ns); not given: the figure itself."""

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, float) and math.isnan(v) and not isinstance(self.ns, bool):
                object.__setattr__(self, name, self.ns)
        for name in ("ns", "low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"cost {name} must be a finite number >= 0, not {v!r}")
        if not 0 <= self.low <= self.ns <= self.high:
            raise ValueError(
                f"cost range must be 0 <= low <= ns <= high (and so each >= 0), not "
                f"low={self.low!r}, ns={self.ns!r}, high={self.high!r}"
            )

    @property
    def range(self) -> tuple[float, float]:
        """(low, high) in ns."""
        return (self.low, self.high)

    @property
    def relative_width(self) -> float:
        """(high - low) / ns: how wide the range is for its figure (0 for a 0 ns figure)."""
        return (self.high - self.low) / self.ns if self.ns else 0.0


@dataclass(frozen=True)
class TlbArraySpec:
    """One set-associative TLB array: level 1 or 2, sets x ways, and the
    leaf sizes it holds (names of levels: "pte", "pmd", "pud"; "cont": an
    arm64 contiguous block of PTEs cached as one entry)."""

    level: int
    """Its TLB level: 1 or 2."""
    sets: int
    """Its sets (1: fully associative)."""
    ways: int
    """Entries per set (ways)."""
    holds: tuple[str, ...]
    """The leaf sizes it holds: "pte", "pmd", "pud", "cont"."""

    @property
    def entries(self) -> int:
        """Entries the array holds: sets times ways."""
        return self.sets * self.ways


@dataclass(frozen=True)
class TlbSpec:
    """A core's data TLBs, its optional page-walk cache, and the source."""

    arrays: tuple[TlbArraySpec, ...]
    """Its TLB arrays, of either level (at most 8)."""
    source: str
    """Where the sizes come from."""
    pwc_entries: int = 0
    """Entries of the page-walk cache, per CPU (PMD entries' pointers to PTE
    tables); 0: none."""


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
        (TlbArraySpec(1, 1, 48, (*_ALL, "cont")), TlbArraySpec(2, 256, 5, (*_ALL, "cont"))),
        "Arm Neoverse N1 Core Technical Reference Manual (Cortex-A76 class): L1 data TLB 48 "
        "entries fully associative, L2 TLB 1280 entries 5-way, all page sizes; a block of "
        "PTEs with the contiguous bit is cached as one entry of the block's size (Arm ARM, "
        "'the Contiguous bit')",
    ),
    "ppc64": TlbSpec(
        (TlbArraySpec(1, 1, 64, _ALL), TlbArraySpec(2, 256, 4, _ALL)),
        "POWER9 Processor User's Manual (IBM): 64-entry fully associative D-ERAT, 1024-entry "
        "4-way TLB (sizes as recalled from the manual; not re-checked in this repository)",
    ),
    "riscv64": TlbSpec(
        (TlbArraySpec(1, 1, 32, _ALL),),
        "SiFive U54 (Microchip PolarFire SoC MSS documentation, MMU section): data "
        "address-translation cache fully associative, 32 entries, 4K pages, 2M megapages "
        "and 1G gigapages; no second-level TLB. Used for Sv48/Sv57 too: no TLB sizes of "
        "an Sv48/Sv57 core were found (an assumption there)",
    ),
}

_X86_MEASURED = "measured on the project's Linux 6.18 x86-64 test host, one run"
_AS_X86 = "assumption: the x86-64 test-host figure; no per-event measurement of this arch"
_SPREAD = "at least +-20%, the run-to-run spread on the shared host"


def _assumed(ns: float, source: str) -> Cost:
    """A figure resting on an assumption: x0.5 to x2, said in its source."""
    return Cost(ns, f"{source}; assumption band x0.5-x2", ns * 0.5, ns * 2)


def _as_x86(c: Cost) -> Cost:
    """An x86-64 test-host figure borrowed by another arch: its x86-64 range
    widened by the assumption band (half its low, twice its high)."""
    return Cost(c.ns, f"{_AS_X86}; assumption band x0.5-x2 of its x86-64 range "
                f"{c.low:g}-{c.high:g} ns", c.low * 0.5, c.high * 2)  # fmt: skip


# The ranges of the test-host figures put each other recorded run of the same
# path through the figure's own derivation (the other events priced alike):
# per-call, pte, pmd = figure + (run - figure's run) / events in the run.
_COMMON = {
    "mremap_call": Cost(4800, f"{_X86_MEASURED}: 1 GiB zero-page PUD-aligned move 5 us, less "
                        "one PUD move; re-measure: pagetab host --size 1G (move-pud); range "
                        "2800-6800 ns: the other 1 GiB PUD-path runs recorded (3 us in the "
                        "docs' native table, 4-7 us in its calibration runs), "
                        f"{_SPREAD}", 2800, 6800),
    "mremap_resize_call": Cost(300, f"{_X86_MEASURED} (2026-12-06): an empty 2 MiB anonymous "
                               "VMA grown by 64 KiB in place, warm, the median of the host "
                               "probe's 25 runs that day; an mremap that moves no page table "
                               "(the call, vma_merge_extend); re-measure: pagetab calibrate; "
                               "range 280-891 ns: those runs (this VM's speed changed by 3x "
                               f"between them), {_SPREAD}", 280, 891),
    "pte_move": Cost(13.5, f"{_X86_MEASURED}: 1 GiB zero-page region misaligned by 4 KiB, "
                     "3.8 ms for 262144 PTEs, less the per-extent flushes and locks; "
                     "re-measure: pagetab host --size 1G (move-pte); range 8.5-16.2 ns: "
                     "the later runs recorded, 2.5 ms above and 2.5-3.0 ms per GiB in the "
                     "docs' native table (8.5-10.4 ns), "
                     f"{_SPREAD}", 8.5, 16.2),
    "pmd_move": Cost(15, f"{_X86_MEASURED}: 1 GiB zero-page PMD-aligned 112 us, ~210 ns per "
                     "PMD with its flush, less the flush, two PMD locks and the rmap lock; "
                     "re-measure: pagetab host --size 1G (move-pmd); range 12-50.2 ns: the "
                     "later runs recorded, 130 us above and 127.5-130 us per GiB in the "
                     f"docs' native table (45.3-50.2 ns), {_SPREAD}", 12, 50.2),
    "pud_move": Cost(15, f"{_X86_MEASURED}: 256 GiB zero-page PUD-aligned 49 us, ~200 ns per "
                     "PUD with its flush, less the flush, page_table_lock and the rmap lock; "
                     "re-measure: pagetab host --size 256G (move-pud); range 0-18 ns: "
                     "the slopes between PUD-path runs recorded (1, 16 and 64 GiB: 3, 6 and 15 "
                     "us in the docs' native table; 1 GiB 5 us to 256 GiB 49 us) put a PUD "
                     "with its flush at 172.5-200 ns, -12.5 to 15 ns after the same "
                     f"subtractions (0 at least), {_SPREAD}", 0, 18),
    "uffd_move_call": Cost(900, f"{_X86_MEASURED}: 65536 UFFDIO_MOVE calls of one written "
                           "4K page each, 82.8 ms (1264 ns a call), less the page's move, "
                           "folio lookup, locks and flush as priced here (about 350 ns); "
                           "re-measure: "
                           "pagetab host --gc (per-page calls); range 600-1500 ns, "
                           f"{_SPREAD}", 600, 1500),
    # the concurrent model's other movers (pagetab/mmu_gather.py), fitted by
    # bench/unmap_costs.py (7 interleaved rounds, shuffled; medians), which
    # prints the other sizes and calls held out; ranges: its three runs
    "madvise_call": Cost(410, f"{_X86_MEASURED} (2026-12-07): madvise(MADV_DONTNEED) of an "
                         "empty 2 MiB VMA; re-measure: python bench/unmap_costs.py; range "
                         f"215-500 ns: its runs, {_SPREAD}", 215, 500),
    "munmap_call": Cost(913, f"{_X86_MEASURED} (2026-12-07): munmap of an empty 2 MiB VMA "
                        "(detaching and freeing the VMA, the downgrade of mmap_lock); "
                        "re-measure: python bench/unmap_costs.py; range 447-913 ns: its runs, "
                        f"{_SPREAD}", 447, 913),
    "mprotect_call": Cost(355, f"{_X86_MEASURED} (2026-12-07): mprotect(PROT_READ) of an "
                          "empty 2 MiB VMA; re-measure: python bench/unmap_costs.py; range "
                          f"253-450 ns: its runs, {_SPREAD}", 253, 450),
    "zap_pte": Cost(11.1, f"{_X86_MEASURED} (2026-12-07): madvise(MADV_DONTNEED) of 256 MiB of "
                    "zero-page PTEs (727 us) less the call, the table locks and the flush, per "
                    "PTE (zap_present_ptes clears it; the zero page frees nothing); "
                    "re-measure: python bench/unmap_costs.py; range 11.1-12.2 ns: its runs, "
                    f"{_SPREAD}", 11.1, 12.2),
    "folio_free": Cost(82.2, f"{_X86_MEASURED} (2026-12-07): madvise(MADV_DONTNEED) of 256 MiB "
                       "of written 4 KiB pages (6.11 ms) less the zero-page figure's parts, per "
                       "folio (vm_normal_folio, the rmap and refcount drops, the free after "
                       "the gather's flush); re-measure: python bench/unmap_costs.py; range "
                       f"73-126 ns: its runs, {_SPREAD}", 73, 126),
    "pmd_folio_free": Cost(4828, f"{_X86_MEASURED} (2026-12-07): madvise(MADV_DONTNEED) of "
                           "256 MiB of PMD THPs (621 us) over its 128 (zap_huge_pmd, the "
                           "deferred split queue, the order-9 free); re-measure: python "
                           f"bench/unmap_costs.py; range 4150-4828 ns: its runs, {_SPREAD}",
                           4150, 4828),
    "prot_pte": Cost(18.3, f"{_X86_MEASURED} (2026-12-07): mprotect(PROT_READ) of 256 MiB of "
                     "zero-page PTEs (1.20 ms) less the call and the table locks, per PTE "
                     "(change_pte_range's modify_prot_start/commit); re-measure: python "
                     f"bench/unmap_costs.py; range 17-19 ns: its runs, {_SPREAD}", 17, 19),
    "prot_folio": Cost(21.8, f"{_X86_MEASURED} (2026-12-07): mprotect(PROT_READ) of 256 MiB of "
                       "written 4 KiB pages (2.63 ms) less the zero-page figure's parts, per "
                       "folio batch (since 6.17 change_pte_range calls vm_normal_folio for "
                       "every present entry, and the zero page returns before reading a "
                       "struct page; these struct pages are warm, just populated); "
                       "re-measure: python bench/unmap_costs.py; range 13-24 ns: its runs, "
                       f"{_SPREAD}", 13, 24),
    "table_alloc": _assumed(100, "assumption: page allocation plus clear_page of one table "
                            "page"),
    "folio_lookup": _assumed(90, "assumption: vm_normal_folio's read of a struct page in "
                             "the vmemmap, which a page-table move otherwise never touches: one "
                             "cache miss to DRAM (~90 ns on a current server core); Lorenzo "
                             "Stoakes on f822a9a81a31's regression: 'accessing memory that is "
                             "not yet in a cache line (and perhaps may even cause a main memory "
                             "fetch)', <20250807185819.199865-1-lorenzo.stoakes@oracle.com>"),
    "split_huge_pmd": _assumed(350, "assumption: table_alloc plus 512 PTE writes (~0.5 ns "
                               "each)"),
    "ptl_lock": _assumed(10, "assumption: uncontended spin_lock + spin_unlock, two atomics"),
    "rmap_lock": _assumed(25, "assumption: uncontended anon_vma down_write + up_write"),
    "flush_call": _assumed(30, "assumption: flush_tlb_range bookkeeping (tlb_gen, "
                           "mm_cpumask)"),
    "tlb_l1_hit": Cost(0, "part of the load-to-use latency; range 0-0 ns: nothing beyond the "
                       "load itself", 0, 0),
    "tlb_l2_hit": _assumed(3, "assumption: ~9 cycles second-level TLB hit at 3 GHz"),
    "walk_step": _assumed(10, "assumption: one page-table load that hits the data caches"),
    "fault": Cost(300, f"{_X86_MEASURED}: MADV_POPULATE_READ of 256 GiB in 20 s, 300 ns per "
                  "page; re-measure: python bench/scale.py 256 (kernel s); range 240-450 ns: "
                  "the docs' native-table populate runs, 434-449 ns per page, "
                  f"{_SPREAD}", 240, 450),
    "cow_fault": _assumed(400, "assumption: a fresh page, clear_page and the PTE update"),
}  # fmt: skip
_BORROWED = ("mremap_call", "mremap_resize_call", "uffd_move_call", "pte_move", "pmd_move",
             "pud_move", "fault", "madvise_call", "munmap_call", "mprotect_call", "zap_pte",
             "folio_free", "pmd_folio_free", "prot_pte", "prot_folio")  # fmt: skip

COSTS = {
    "x86-64": {
        **_COMMON,
        "full_flush": Cost(120, "__flush_tlb() (CR3 write) 251 hot / 366 cold cycles: Ingo "
                           "Molnar, 'Re: [PATCH 0/3] TLB flush multiple pages per IPI v5', "
                           "linux-mm 8 Jun 2015, <20150608200308.GA16978@gmail.com>; "
                           "assumption: 366 cycles at 3 GHz; range 84-122 ns: the published "
                           "251-366 cycles at 3 GHz", 84, 122),
        "invlpg": Cost(100, "arch/x86/mm/tlb.c, above tlb_single_page_flush_ceiling: 'Each "
                       "single flush is about 100 ns' (a5102476a24b); Ingo Molnar: "
                       "__flush_tlb_one() 237 hot / 883 cold cycles, "
                       "<20150608200308.GA16978@gmail.com>; range 79-294 ns: the published "
                       "237-883 cycles at 3 GHz", 79, 294),
        "invlpg_flush": Cost(0, "assumption: on bare metal an INVLPG-path flush costs its "
                             "flush_call and its INVLPGs, nothing per call beyond them; range "
                             "0-2000 ns: where the MMU is paravirtualized each such flush "
                             "traps to the hypervisor (the project's 6.18 test host, a PVM "
                             "guest, measures about 2 us: pagetab calibrate fits it)", 0, 2000),
        "ipi": _assumed(1500, "assumption: synchronous flush IPI to one CPU with its ack; "
                        "published shootdowns take microseconds (N. Amit, 'Optimizing the "
                        "TLB Shootdown Algorithm with Page Access Tracking', USENIX ATC "
                        "2017)"),
        "ipi_handler": _assumed(1000, "assumption: a flush IPI on the receiving CPU, beyond its "
                                "own INVLPGs or full flush: interrupt entry and exit and "
                                "flush_tlb_func's bookkeeping; paid by that CPU's thread "
                                "(pagetab.contention), not by the sender. Fitted on a "
                                "2-CPU PVM guest (kernel 6.18) from a reader thread's p99 - "
                                "p50 during PTE-path moves: 1.9-2.0 us "
                                "(bench/contend_host.py --fit), where the paravirtualized "
                                "interrupt path costs more than bare metal"),
        "invlpgb": _assumed(100, "assumption: as INVLPG; no public per-instruction figure"),
        "tlbsync": _assumed(500, "assumption: TLBSYNC waits for every broadcast to complete"),
    },
    "arm64": {
        **{k: _as_x86(v) if k in _BORROWED else v for k, v in _COMMON.items()},
        "tlbi_page": _assumed(25, "assumption: issue cost of one TLBI; completion is paid in "
                              "DSB ISH"),
        "tlbi_range": _assumed(25, "assumption: as tlbi_page"),
        "tlbi_asid": _assumed(25, "assumption: as tlbi_page"),
        "dsb": _assumed(160, "c320dbb7c80d arm64/mm: Elide TLB flush in certain pte "
                        "protection transitions: mprotect PROT_NONE->RW 3.2 -> 2.85 us without "
                        "the flush; assumption: one page (DSB ISHST; TLBI; DSB ISH), ~350 ns "
                        "split over the two DSBs (one difference of two means, no spread "
                        "published)"),
        "contpte_convert": _assumed(40, "assumption: arch/arm64/mm/contpte.c contpte_convert "
                                    "clears and repaints CONT_PTES (16) entries, gathering "
                                    "their access/dirty bits, ~1 ns per entry write; its TLBIs "
                                    "are priced as flush operations"),
    },
    "riscv64": {
        **{k: _as_x86(v) if k in _BORROWED else v for k, v in _COMMON.items()},
        "sfence_vma": _assumed(20, "assumption: one sfence.vma of one page and ASID"),
        "sfence_vma_asid": _assumed(50, "assumption: sfence.vma of a whole ASID"),
        "sbi_rfence": _assumed(5000, "assumption: an SBI ecall into M-mode firmware that "
                               "IPIs the other harts and waits for their fences"),
        "ipi": _assumed(1500, "assumption: as x86's synchronous flush IPI"),
        "ipi_handler": _assumed(1000, "assumption: as x86's flush IPI handler"),
        "sinval_vma": _assumed(5, "assumption: Svinval's sinval.vma only invalidates; "
                               "ordering is paid once in the fences around a run of them"),
        "svinval_fences": _assumed(40, "assumption: sfence.w.inval and sfence.inval.ir, as two "
                                   "sfence.vma"),
    },
    "ppc64": {
        **{k: _as_x86(v) if k in _BORROWED else v for k, v in _COMMON.items()},
        "tlbie": _assumed(100, "assumption: one global tlbie broadcast"),
        "tlbiel": _assumed(20, "assumption: local tlbiel, no fabric broadcast"),
        "pid_flush": _assumed(300, "assumption: RIC_FLUSH_ALL for the PID"),
        "pwc_flush": _assumed(100, "assumption: RIC_FLUSH_PWC"),
        "tlbie_sync": _assumed(500, "assumption: eieio; tlbsync; ptesync waits for the "
                               "fabric"),
    },
}  # fmt: skip

#: Why Kalesh Singh's arm64 ratios are off on the arm64 profiles (priced as
#: his device): one reason for his three ratios
_KALESH_ARM64 = (
    "Kalesh Singh's three figures carry two free factors of pagetab.device_model (his "
    "device's speed and the arm64 flush factor, which only his figures inform), so his "
    "memory factor is tied to his speed; his 1 GiB PUD-path figure (59 us) is mostly the "
    "cold call after populating the region, which the fit then prices low, and his PTE "
    "path high (bench/fit_devices.py prints the fit). A second arm64 device with per-PMD "
    "flushes, or more figures of his, would free the memory factor"
)
#: Why Aneesh Kumar's ppc64 PTE-path ratios are off on the ppc64 profile
_ANEESH_PPC64 = (
    "Aneesh Kumar's PMD- and PUD-aligned figures are one move (split PTE locks keep the "
    "PUD path off), so his two distinct figures carry one free factor, his speed; the "
    "ppc64 flush instructions, which only his figures would inform, keep their assumed "
    "prices, and the shared per-PTE cost fitted across every device leaves his PTE path "
    "high against his PMD path"
)

#: Each ISA's published ratios (two timings of one device, pagetab.reproduce
#: ``published_ratios``) that its default profile does not reproduce within
#: 15%, with the reason: (slower entry, faster entry) -> why.
RATIO_NOTES: dict[str, dict[tuple[str, str], str]] = {
    "arm64": {
        ("joel2018-arm64-1g-pte-before", "joel2018-arm64-1g-pmd-after-noperpmdflush"):
        "Joel Fernandes' 2018 arm64 device (Linux 4.9) paid about 770 ns per entry moved "
        "at either level (202 ms for 262,144 PTEs, 393 us for 512 PMDs without their "
        "flushes). The arm64 profiles are priced as Kalesh Singh's 2020 device (Linux 5.4), "
        "and no factor of pagetab.device_model (speed, memory, ISA flush) makes a PMD entry "
        "cost what a PTE entry costs (bench/fit_devices.py prints the misses)",
        ("kalesh2020-arm64-1g-pte", "kalesh2020-arm64-1g-pmd"): _KALESH_ARM64,
        ("kalesh2020-arm64-1g-pte", "kalesh2020-arm64-1g-pud"): _KALESH_ARM64,
        ("kalesh2020-arm64-1g-pmd", "kalesh2020-arm64-1g-pud"): _KALESH_ARM64,
    },
    "ppc64": {
        ("aneesh2021-ppc64-1g-ptealigned", "aneesh2021-ppc64-1g-pmdaligned"): _ANEESH_PPC64,
        ("aneesh2021-ppc64-1g-ptealigned", "aneesh2021-ppc64-1g-pudaligned"): _ANEESH_PPC64,
    },
    "x86": {
        ("joel2018-x86-1g-pte-before", "joel2018-x86-1g-pmd-after"):
        "the x86-64 profile is the sourced table (single runs on the test host, Linux "
        "6.18, a PVM guest) and its cold call, where a PMD move's flush costs less against "
        "its PTE work than "
        "on Joel Fernandes' 2018 machine: pagetab.device_model prices the x86 flush "
        "instructions above their sourced prices (the device joel2018-x86: "
        "bench/fit_devices.py prints its factors); pagetab calibrate re-measures the host",
        ("kalesh2020-x86-1g-pmd", "kalesh2020-x86-1g-pud"):
        "a published move is timed once right after its region is populated, and Kalesh "
        "Singh's 1 GiB PUD-path figure (15.6 us) is mostly that cold call; the x86-64 "
        "profile prices it at the test host's measured cold call (20 us after populating "
        "1 GiB) and his PMD path at the test host's sourced costs, while his machine paid "
        "less for the cold call and more for each PMD's flush. The device "
        "kalesh2020-x86-5.4, which scales both (pagetab.device_model), comes much closer",
    },
}  # fmt: skip
