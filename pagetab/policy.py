"""Kernel policies for move_page_tables.

A policy names how mremap moves page tables: which whole-entry moves exist,
whether misaligned moves are realigned, and when TLB flushes happen
relative to the page-table locks. Presets reproduce kernel versions and the
proposals of the October 2018 linux-mm review of Joel Fernandes' "fast
mremap" patch. Policies change costs and safety, never the resulting
mapping, except for the page-table shape a PTE-by-PTE policy leaves under a
MREMAP_DONTUNMAP source (an emptied PTE table where table-moving policies
leave none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .argcheck import check_bool, check_int

__all__ = ["DEFAULT_POLICY", "FLUSH_MODES", "UFFD_MOVE_RULES", "Policy", "policies", "policy"]

#: When moved entries are flushed, and so what the PMD lock covers:
#: "extent": per move_ptes extent and per whole-entry move, under the
#: page-table locks (flush_tlb_range for each, as Linux since 4.19/5.0);
#: "table": the PMD lock taken once per PMD table page, every movable
#: entry in it moved, one flush, then the unlock (the review thread's
#: batched proposal); "end": once at the end of move_page_tables, after
#: the locks are released (Linux before 4.19, unsafe: CVE-2018-18281).
FLUSH_MODES = ("extent", "table", "end")
#: Policy.uffd_move: none, Linux 6.8's rules, 6.9 and later's
UFFD_MOVE_RULES = ("", "6.8", "6.9")


def _choice(default: Any, *, engine: bool = False, choices: tuple[str, ...] = (),
            minimum: int | None = None) -> Any:  # fmt: skip
    """A Policy field: ``engine`` when the move engine reads it (it crosses
    into C under its own name, as a field of _move.pxd's mremap_config),
    with its valid ``choices`` (a str) or ``minimum`` (an int)."""
    return field(default=default,
                 metadata={"engine": engine, "choices": choices, "minimum": minimum})  # fmt: skip


@dataclass(frozen=True)
class Policy:
    """How the kernel moves page tables: one field per choice it made.

    Build a custom one with ``Policy("name", move_pmd=True, ...)``, or
    from a preset with ``policy("linux-6.8").replace(...)``. Every field
    is checked on construction (TypeError for a wrong type, ValueError
    naming the field and its valid values).
    """

    name: str
    """The policy's name (a preset's is the kernel it follows)."""
    description: str = ""
    """What it does, in a line or two."""
    source: str = ""
    """The commit, release or mailing-list thread it follows."""
    move_pmd: bool = _choice(False, engine=True)
    """CONFIG_HAVE_MOVE_PMD: whole PTE tables (PMD entries) move when the
    extent is a full PMD_SIZE and the destination entry is empty
    (move_normal_pmd, 2c91bd4a4e2e, 5.0)."""
    move_pud: bool = _choice(False, engine=True)
    """CONFIG_HAVE_MOVE_PUD: whole PMD tables (PUD entries) move likewise
    (move_normal_pud, c49dd3401802, 5.11)."""
    realign: bool = _choice(False, engine=True)
    """try_realign_addr(PMD_MASK) (af8ca1c14906, 6.8)."""
    flush: str = _choice("extent", engine=True, choices=FLUSH_MODES)
    """One of FLUSH_MODES."""
    dirty_flush_under_lock: bool = _choice(False, engine=True)
    """With flush="end" only: the pre-4.19 rule (5d1904204c99) that a moved
    *dirty* present entry is flushed under the old lock."""
    pte_extent_limit: int = _choice(0, engine=True, minimum=0)
    """LATENCY_LIMIT in pages: move_ptes moves at most this many entries per
    call (64 until Mel Gorman's 2018 "mremap: Remove LATENCY_LIMIT from
    mremap to reduce the number of TLB shootdowns"); 0, none."""
    flush_lazy: bool = _choice(False)
    """x86: the flushes reach CPUs of mm_cpumask in lazy TLB mode too.
    flush_tlb_range passes freed_tables since 3ef938c35035 (Linux 6.15,
    also in stable trees), so native_flush_tlb_multi IPIs every CPU of the
    mask; before it should_flush_tlb skipped lazy CPUs (145f573b89a6,
    4.20), which catch up when they next load the mm. (Linux 4.19 with
    PCID sends lazy CPUs to init_mm at once, so they get no IPI either;
    4.9's lazy CPUs took one IPI and left the mm: modelled as none.)"""
    flush_freed_lazy: bool = _choice(False)
    """x86: a flush of freed page tables (tlb_finish_mmu after
    free_pgtables, freed_tables set) reaches lazy CPUs of mm_cpumask too:
    native_flush_tlb_multi skips none of them then, since a lazy CPU's
    page walker may still hold a freed table (145f573b89a6, 4.20, which
    added the skipping). Before 4.20, modelled as ``flush_lazy`` says."""
    contpte: bool = _choice(False, engine=True)
    """arm64: user mappings get the contiguous bit (PTE_CONT) on every
    naturally aligned block of CONT_PTES entries mapping one folio ("arm64/mm:
    wire up PTE_CONT for user mappings", Linux 6.9, arch/arm64/mm/contpte.c):
    faults and set_ptes write it directly, a single-entry change of a block
    first unfolds it (contpte_convert: clear, TLBI of the block, repaint), a
    single write completing a block folds it. No effect on other arches."""
    pte_batch: bool = _choice(False, engine=True)
    """move_ptes moves the PTEs of one large folio as a batch
    (mremap_folio_pte_batch, f822a9a81a31, Linux 6.17): one
    get_and_clear_full_ptes and one set_ptes, so a contiguous block is
    neither unfolded at the source nor folded entry by entry at the
    destination. From 0b5be138ce00 (6.17) only where pte_batch_hint says so:
    a PTE_CONT entry on arm64, never on x86."""
    pte_batch_every_pte: bool = _choice(False, engine=True)
    """With ``pte_batch``: mremap_folio_pte_batch looks up the folio of every
    present PTE it is called for (vm_normal_folio, a struct page in the
    vmemmap that a page-table move otherwise never reads: cold), not only
    where pte_batch_hint > 1: f822a9a81a31 as merged for 6.17-rc1, before
    0b5be138ce00 (Lorenzo Stoakes, "mm/mremap: avoid expensive folio lookup
    on mremap folio pte batch", <20250807185819.199865-1-lorenzo.stoakes@oracle.com>,
    6.17-rc2). Counted in ``folio_lookups``. Its batches over a large folio
    without PTE_CONT (x86's mTHP) are not modelled: only the lookups."""
    uffd_move_batch: bool = _choice(False)
    """UFFDIO_MOVE moves a batch of present small folios under one take of
    the PTE locks and the anon_vma lock and flushes it once, up to a PMD
    boundary, a hole, a zero-page PTE or a large folio, instead of one
    ptep_clear_flush per page (50944692052b "userfaultfd: opportunistic
    TLB-flush batching for present pages in MOVE", Lokesh Gidra,
    <20250816191123.3601561-1-lokeshgidra@google.com>, Linux 6.18).
    Needs uffd_move="6.9"."""
    uffd_move_anon_vma_lock: bool = _choice(True)
    """UFFDIO_MOVE takes the source folio's anon_vma lock for write around
    the move of each present folio (move_pages_pte, per page or per batch,
    and move_pages_huge_pmd), besides the folio lock. From cc22b9978509
    ("mm/userfaultfd: don't lock anon_vma when performing UFFDIO_MOVE",
    Linux 6.19; rmap walks hold the folio lock since 95b34d66480b) the
    folio lock alone serializes against them, in both paths (the context
    of move_pages_huge_pmd in <20260226113233.3987674-15-usama.arif@linux.dev>
    unlocks the PTLs and then the folio)."""
    batched_pending_check: bool = _choice(False)
    """move_ptes, zap_pte_range and change_pte_range call
    flush_tlb_batched_pending, which completes a flush reclaim deferred for
    this mm before they change its entries (3ea277194daa "mm, mprotect:
    flush TLB if potentially racing with a parallel reclaim leaving stale
    TLB entries", Mel Gorman, Linux 4.13). Before, such a batch stayed
    pending through them."""
    batched_unmap_arm64: bool = _choice(False)
    """arm64 reclaim defers its unmap flushes (ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH:
    43b3dfdd0455 "arm64: support batched/deferred tlb shootdown during page
    reclamation/migration", Linux 6.6), so a batch can be pending
    (``AddressSpace.tlb_flush_batched``). x86 has since Linux 4.3."""
    batched_unmap_riscv: bool = _choice(False)
    """riscv likewise (54d7431af73e "riscv: Add support for
    BATCHED_UNMAP_TLB_FLUSH", Linux 6.8)."""
    batched_pending_flush_mm: bool = _choice(False)
    """flush_tlb_batched_pending, which move_ptes calls under its PTE locks
    (and zap_pte_range and change_pte_range), flushes the whole mm
    (flush_tlb_mm) when reclaim left a deferred flush of it pending
    (``AddressSpace.tlb_flush_batched``) on arm64 too: 4b634918384c
    ("arm64/mm: Close theoretical race where stale TLB entry remains
    valid", Linux 6.16), then a9e056de661c (6.17: the generic code calls
    flush_tlb_mm). Before, arm64's arch_flush_tlb_batched_pending was a
    DSB ISH alone; x86's and riscv's were always flush_tlb_mm
    (``FlushRules.batched_pending_barrier``)."""
    contpte_bbml2_elide: bool = _choice(False, engine=True)
    """arm64: contpte_convert skips its break-before-make TLBI and DSB on a
    CPU with BBML2 and no conflict aborts (``Arch.bbml2_noabort``):
    83bbd6be7d17 "arm64/mm: Elide tlbi in contpte_convert() under BBML2",
    Linux 6.17. No effect elsewhere."""
    multi_vma_move: bool = _choice(False)
    """A pure move (MREMAP_FIXED, old_size == new_size) may span several
    VMAs and the gaps between them, each VMA moved in turn, the gaps kept
    (remap_move, d23cb648e365 "mm/mremap: permit mremap() move of multiple
    VMAs", Linux 6.17); before, a range past its VMA's end is EFAULT. Not
    for a VMA registered with a userfaultfd (vma_multi_allowed: its notify
    drops mmap_lock): such a VMA first in a range that goes on past its end
    is EFAULT before anything moves, and later in a range EFAULT after the
    VMAs before it have moved, which stay moved (d50dabff4d1f "mm/mremap:
    catch invalid multi VMA moves earlier"). File VMAs whose
    get_unmapped_area is custom are refused too; pagetab's files are
    regular files (none, or thp_get_unmapped_area: allowed)."""
    uffd_table_move_check: bool = _choice(False)
    """mremap moves no whole PTE or PMD table (move_normal_pmd/pud refuse) of
    a VMA registered with a userfaultfd that lacks UFFD_FEATURE_EVENT_REMAP,
    so that move_ptes can clear uffd-wp bits (0cef0bb836e3 "mm: clear uffd-wp
    PTE/PMD state on mremap()", January 2025, Cc stable; both VMAs checked
    since its 2025 follow-up)."""
    uffd_move: str = _choice("", choices=UFFD_MOVE_RULES)
    """Which UFFDIO_MOVE the kernel has: "" none (before Linux 6.8:
    UFFDIO_API refuses UFFD_FEATURE_MOVE); "6.8" (adef440691ba, under
    mmap_lock: a missing or shared VMA is EINVAL, a zero-page PTE or the
    huge zero page EBUSY, 5d4747a6cc8e); "6.9" (per-VMA locks: a missing VMA
    is ENOENT; zero-page PTEs move, eb1521dad8f3)."""
    split_zeropage: bool = _choice(False)
    """Splitting an anonymous large folio maps each subpage no store ever
    wrote to the shared zero page (RMP_USE_SHARED_ZEROPAGE, b1f202060afe
    "mm: remap unused subpages to shared zeropage when splitting isolated
    thp", Linux 6.12). In pagetab only UFFDIO_MOVE splits folios."""
    fault_around_whole_folio: bool = _choice(False)
    """A read fault's fault-around (filemap_map_pages) maps a large
    page-cache folio it reaches whole, not only the part inside its
    window, where the folio lies inside the VMA, inside one PTE table and
    wholly below the file's last page (357b92761d94 "mm/filemap: map
    entire large folio faultaround", Kiryl Shutsemau, Linux 6.18; its
    i_size test from 74207de2ba10, per folio since
    <20251120161411.859078-1-kirill@shutemov.name>). In this machine's
    6.18 kernel: one read fault in a file written by one large write(2)
    mapped 32 pages against a 16-page window."""
    finish_fault_whole_folio: bool = _choice(False)
    """finish_fault maps a file page's whole large folio, not the page
    alone: a fault fault-around did not serve (a page read in cold, no
    fault-around) or a shared write fault, where the folio lies inside the
    VMA and one PTE table, below DIV_ROUND_UP(i_size), every entry it
    covers is none and the VMA has no userfaultfd (19773df031bc "mm/fault:
    try to map the entire file folio in finish_fault()", Linux 6.18; the
    i_size test from 74207de2ba10). Before, only shmem mapped a folio whole
    there."""
    pt_reclaim: bool = _choice(False)
    """MADV_DONTNEED frees each PTE table whose whole span it zapped once
    the table holds no entry (CONFIG_PT_RECLAIM, default y, mm/pt_reclaim.c:
    6375e95f381e "mm: pgtable: reclaim empty PTE page in
    madvise(MADV_DONTNEED)", Qi Zheng, Linux 6.14); the flush that ends the
    call then has freed_tables set. Only where the arch supports it
    (``Arch.supports_pt_reclaim``: x86-64 alone up to 6.18, 4817f70c25b6).
    PMD tables are never freed so."""
    per_vma_locks: bool = _choice(False)
    """Page faults first try the faulting VMA's own lock
    (``lock_vma_under_rcu``, mm/memory.c; 5e31275cc997 "mm: add per-VMA lock
    and helper functions to control it", Linux 6.4) and take mmap_lock only
    when the VMA is write-locked, as mremap's ``vma_start_write`` does to the
    VMAs it changes. Before, every fault took mmap_lock for read and waited
    out any mremap, which holds it for write. Only the concurrent model
    (``pagetab.contention``) reads it."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Policy.name must be a non-empty str")
        for f in dataclasses.fields(self):
            value, what = getattr(self, f.name), f"Policy.{f.name}"
            if f.type == "bool":
                check_bool(what, value)
            elif f.type == "int":
                check_int(what, value, f.metadata.get("minimum"))
            elif not isinstance(value, str):
                raise TypeError(f"{what} must be a str, not {type(value).__name__}")
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, "
                                 f"not {value!r}")  # fmt: skip
        if self.uffd_move_batch and self.uffd_move != "6.9":
            raise ValueError('Policy: uffd_move_batch needs uffd_move="6.9"')
        if self.dirty_flush_under_lock and self.flush != "end":
            raise ValueError('Policy: dirty_flush_under_lock applies to flush="end" only '
                             "(other modes flush every moved entry under the lock)")  # fmt: skip
        if self.flush == "table" and not self.move_pmd:
            raise ValueError('Policy: flush="table" batches whole-PMD moves; needs move_pmd')

    @property
    def flush_under_lock(self) -> bool:
        """Whether flushes happen before the page-table locks are released."""
        return self.flush != "end"

    @property
    def batch_pmd_lock(self) -> bool:
        """Whether the PMD lock is held once per PMD table page (flush="table")."""
        return self.flush == "table"

    @property
    def safe(self) -> bool:
        """Whether every moved present entry is flushed before its locks drop."""
        return self.flush_under_lock

    def engine_fields(self) -> dict[str, Any]:
        """The fields the move engine reads, by name (mremap_config's)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get("engine")}  # fmt: skip

    def replace(self, **changes: Any) -> Policy:
        """A copy with fields replaced (checked again); ValueError naming an
        unknown field and the valid ones."""
        valid = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(valid))
        if unknown:
            raise ValueError(f"unknown Policy field(s) {unknown}; valid: {valid}")
        return dataclasses.replace(self, **changes)


# Each preset is its predecessor with what its kernel changed, and that
# change's commit.
LINUX_4_9 = Policy(
    "linux-4.9",
    "PTE moves only, at most LATENCY_LIMIT (64 pages) per move_ptes call; one "
    "flush_tlb_range of the whole range at the end, after the locks are released",
    "mm/mremap.c as of v4.9: move_page_tables with LATENCY_LIMIT (64 * PAGE_SIZE) and "
    "need_flush; the baseline of Joel Fernandes' 2018 'fast mremap' measurements (arm64, "
    "Linux 4.9 by his later mails)",
    flush="end", pte_extent_limit=64,
)  # fmt: skip
LINUX_4_18 = LINUX_4_9.replace(
    name="linux-4.18",
    description="PTE moves only (THP leaves move whole); dirty entries flushed under the old "
    "lock, the rest once at the end after the locks are released",
    source="mm/mremap.c as of v4.18; 5d1904204c99 (dirty flush); before CVE-2018-18281; "
    "3ea277194daa (4.13: flush_tlb_batched_pending)",
    pte_extent_limit=0, dirty_flush_under_lock=True, batched_pending_check=True,
)  # fmt: skip
LINUX_4_19 = LINUX_4_18.replace(
    name="linux-4.19",
    description="PTE moves only, flush_tlb_range per extent while both PTE locks are held",
    source="eb66ae030829 mremap: properly flush TLB before releasing the page (CVE-2018-18281)",
    flush="extent", dirty_flush_under_lock=False,
)  # fmt: skip
FAST_MREMAP_V2 = LINUX_4_18.replace(
    name="fast-mremap-v2",
    description="the 2018 patch as posted: move_normal_pmd, one flush at the end after the "
    "locks are released (PTE moves keep the pre-4.19 rule)",
    source="Joel Fernandes, '[PATCH 2/4] mm: speed up mremap by 500x on large regions (v2)', "
    "linux-mm 12 Oct 2018, <20181013013200.206928-3-joel@joelfernandes.org>",
    move_pmd=True,
)  # fmt: skip
LINUX_5_0 = LINUX_4_19.replace(
    name="linux-5.0",
    description="move_normal_pmd; flush_tlb_range per moved PMD under both PMD locks",
    source="2c91bd4a4e2e mm: speed up mremap by 20x on large regions; 145f573b89a6 "
    "(4.20: freed page tables flushed on lazy CPUs too)",
    move_pmd=True, flush_freed_lazy=True,
)  # fmt: skip
LINUX_5_11 = LINUX_5_0.replace(
    name="linux-5.11",
    description="plus move_normal_pud (HAVE_MOVE_PUD), get_extent, move_pgt_entry",
    source="c49dd3401802 mm: speedup mremap on 1GB or larger regions",
    move_pud=True,
)  # fmt: skip
LINUX_6_8 = LINUX_5_11.replace(
    name="linux-6.8",
    description="plus try_realign_addr: mutually misaligned addresses aligned down to PMD",
    source="af8ca1c14906 mm/mremap: optimize the start addresses in move_page_tables(); "
    "adef440691ba (UFFDIO_MOVE, 6.8); 5e31275cc997 (per-VMA locks, 6.4); 43b3dfdd0455 and "
    "54d7431af73e (arm64 and riscv defer reclaim's flushes, 6.6 and 6.8)",
    realign=True, uffd_move="6.8", per_vma_locks=True, batched_unmap_arm64=True,
    batched_unmap_riscv=True,
)  # fmt: skip
LINUX_6_16 = LINUX_6_8.replace(
    name="linux-6.16",
    description="plus arm64 contiguous PTEs for user mappings (6.9) and flushes that reach "
    "lazy CPUs (x86, 6.15); move_ptes still moves and clears entry by entry, "
    "unfolding each contiguous source block and refolding each destination block",
    source="arch/arm64/mm/contpte.c ('arm64/mm: wire up PTE_CONT for user mappings', 6.9); "
    "3ef938c35035 x86/mm: flush_tlb_range passes freed_tables (6.15); 0cef0bb836e3 "
    "(no whole-table moves for userfaultfd VMAs without EVENT_REMAP); b1f202060afe "
    "(a folio split maps never-written subpages to the zero page, 6.12); eb1521dad8f3 "
    "(UFFDIO_MOVE under per-VMA locks, 6.9); 4b634918384c (arm64: a pending reclaim flush "
    "is flush_tlb_mm in move_ptes, 6.16); 6375e95f381e (MADV_DONTNEED frees the empty PTE "
    "tables it zapped whole, 6.14)",
    flush_lazy=True, contpte=True, uffd_table_move_check=True, uffd_move="6.9",
    split_zeropage=True, batched_pending_flush_mm=True, pt_reclaim=True,
)  # fmt: skip
LINUX_6_17 = LINUX_6_16.replace(
    name="linux-6.17",
    description="plus mremap_folio_pte_batch: the PTEs of a large folio move as one batch "
    "(get_and_clear_full_ptes, set_ptes), contiguous blocks move without unfolding",
    source="f822a9a81a31 mm: optimize mremap() by PTE batching (Dev Jain, "
    "<20250610035043.75448-1-dev.jain@arm.com>); 0b5be138ce00 (batch only where "
    "pte_batch_hint > 1); unchanged in this path in 6.18 but for 04d1c9d60c6e (a "
    "batch stops where the write bit differs, which it never does inside one VMA here); "
    "d23cb648e365 and d50dabff4d1f (a pure move spans several VMAs, not uffd-armed ones); "
    "83bbd6be7d17 (no BBM TLBI in contpte_convert on BBML2-noabort CPUs)",
    pte_batch=True, multi_vma_move=True, contpte_bbml2_elide=True,
)  # fmt: skip
LINUX_6_17_RC1 = LINUX_6_17.replace(
    name="linux-6.17-rc1",
    description="linux-6.17 as f822a9a81a31 was merged, before 0b5be138ce00: "
    "mremap_folio_pte_batch looks up the folio (vm_normal_folio) of every present PTE it "
    "moves, a cold struct page read per PTE (the stress-ng bigheap regression)",
    source="f822a9a81a31 mm: optimize mremap() by PTE batching; the regression: kernel test "
    "robot <202508071609.4e743d7c-lkp@intel.com>; fixed in 6.17-rc2 by 0b5be138ce00 "
    "<20250807185819.199865-1-lorenzo.stoakes@oracle.com>",
    pte_batch_every_pte=True,
)  # fmt: skip
LINUX_6_18 = LINUX_6_17.replace(
    name="linux-6.18",
    description="plus UFFDIO_MOVE's flush batching: a batch of present small folios in one "
    "page table moved under one take of the locks and flushed once, instead of one "
    "ptep_clear_flush per page; read faults map a large page-cache folio whole",
    source="50944692052b userfaultfd: opportunistic TLB-flush batching for present pages in "
    "MOVE (Lokesh Gidra, <20250816191123.3601561-1-lokeshgidra@google.com>, in 6.18: "
    "not in 6.17, which NVIDIA's 6.17 tree backports it to; mm-stable before the 6.18 "
    "merge window); 357b92761d94 and 19773df031bc (fault-around and finish_fault map "
    "whole large file folios, seen on this machine's 6.18)",
    uffd_move_batch=True, fault_around_whole_folio=True, finish_fault_whole_folio=True,
)  # fmt: skip
LINUX_6_19 = LINUX_6_18.replace(
    name="linux-6.19",
    description="plus UFFDIO_MOVE without the anon_vma lock: the folio lock alone guards "
    "each moved folio against rmap walks",
    source="cc22b9978509 mm/userfaultfd: don't lock anon_vma when performing UFFDIO_MOVE "
    "(Lokesh Gidra, <20250923071019.775806-3-lokeshgidra@google.com>, 6.19); the rest of "
    "6.19 and 7.0-7.3 changes nothing a move does here (docs/guide/policies.md)",
    uffd_move_anon_vma_lock=False,
)  # fmt: skip
BATCHED_PTL = LINUX_6_8.replace(
    name="batched-ptl",
    description="review-thread proposal on top of linux-6.8: one PMD lock per PMD table page, "
    "all movable entries moved, one flush, then unlock; PTE extents inside take "
    "the PTE lock nested and flush before dropping it",
    source="proposed by Joel Fernandes <20181025020907.GA13560@joelaf.mtv.corp.google.com>, "
    "reviewed by Kirill Shutemov <20181025101900.phqnqpoju5t2gar5@kshutemo-mobl1> "
    "(linux-mm, Oct 2018); never merged",
    flush="table",
)  # fmt: skip

_PRESETS = (LINUX_4_9, LINUX_4_18, LINUX_4_19, FAST_MREMAP_V2, LINUX_5_0, LINUX_5_11,
            LINUX_6_8, LINUX_6_16, LINUX_6_17_RC1, LINUX_6_17, LINUX_6_18, LINUX_6_19,
            BATCHED_PTL)  # fmt: skip
_REGISTRY = {p.name: p for p in _PRESETS}
#: the policy everything runs under unless told otherwise: the newest
#: mainline kernel's preset (the last "linux-*" one), so that a new user
#: simulates the kernel they are likely to run
DEFAULT_POLICY = [p.name for p in _PRESETS if p.name.startswith("linux-")][-1]


def policies() -> list[str]:
    """Names of the preset policies, oldest first."""
    return list(_REGISTRY)


def policy(name: str | Policy) -> Policy:
    """The preset called ``name`` (a Policy passes through unchanged)."""
    if isinstance(name, Policy):
        return name
    if not isinstance(name, str):
        raise TypeError(f"policy must be a name (str) or a Policy, not {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(_REGISTRY)}") from None
