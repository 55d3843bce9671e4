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
import warnings
from dataclasses import dataclass
from typing import Any

from .argcheck import check_bool, check_int

__all__ = ["FLUSH_MODES", "UFFD_MOVE_RULES", "Policy", "policies", "policy"]

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

# keyword arguments of earlier versions, now implied by ``flush``
_LEGACY = {
    "flush_under_lock": lambda flush: flush != "end",
    "batch_pmd_lock": lambda flush: flush == "table",
}


@dataclass(frozen=True, init=False)
class Policy:
    """How move_page_tables behaves: one field per choice the kernel made.

    Attributes
    ----------
    move_pmd, move_pud:
        CONFIG_HAVE_MOVE_PMD / CONFIG_HAVE_MOVE_PUD: whole PTE tables (PMD
        entries) or PMD tables (PUD entries) move when the extent is a full
        PMD_SIZE / PUD_SIZE and the destination entry is empty.
    realign:
        try_realign_addr(PMD_MASK) (af8ca1c14906).
    flush:
        one of FLUSH_MODES.
    dirty_flush_under_lock:
        with flush="end" only: the pre-4.19 rule (5d1904204c99) that a
        moved *dirty* present entry is flushed under the old lock.
    pte_extent_limit:
        LATENCY_LIMIT in pages: move_ptes moves at most this many entries
        per call (64 until Mel Gorman's 2018 "mremap: Remove LATENCY_LIMIT
        from mremap to reduce the number of TLB shootdowns"); 0, none.
    flush_lazy:
        x86: the flushes reach CPUs of mm_cpumask in lazy TLB mode too.
        flush_tlb_range passes freed_tables since 3ef938c35035 (Linux 6.15,
        also in stable trees), so native_flush_tlb_multi IPIs every CPU
        of the mask; before it should_flush_tlb skipped lazy CPUs
        (145f573b89a6, 4.20), which catch up when they next load the mm.
        (Linux 4.19 with PCID sends lazy CPUs to init_mm at once, so they
        get no IPI either; 4.9's lazy CPUs took one IPI and left the mm:
        modelled as none.)
    contpte:
        arm64: user mappings get the contiguous bit (PTE_CONT) on every
        naturally aligned block of CONT_PTES entries mapping one folio
        ("arm64/mm: wire up PTE_CONT for user mappings", Linux 6.9,
        arch/arm64/mm/contpte.c): faults and set_ptes write it directly, a
        single-entry change of a block first unfolds it (contpte_convert:
        clear, TLBI of the block, repaint), a single write completing a
        block folds it. No effect on other arches.
    uffd_move:
        which UFFDIO_MOVE the kernel has: "" none (before Linux 6.8:
        UFFDIO_API refuses UFFD_FEATURE_MOVE); "6.8" (adef440691ba, under
        mmap_lock: a missing or shared VMA is EINVAL, a zero-page PTE or
        the huge zero page EBUSY, 5d4747a6cc8e); "6.9" (per-VMA locks: a
        missing VMA is ENOENT; zero-page PTEs move, eb1521dad8f3).
    uffd_table_move_check:
        mremap moves no whole PTE or PMD table (move_normal_pmd/pud refuse)
        of a VMA registered with a userfaultfd that lacks
        UFFD_FEATURE_EVENT_REMAP, so that move_ptes can clear uffd-wp bits
        (0cef0bb836e3 "mm: clear uffd-wp PTE/PMD state on mremap()", January
        2025, Cc stable; both VMAs checked since its 2025 follow-up).
    uffd_move_batch:
        UFFDIO_MOVE moves a batch of present small folios under one take
        of the PTE locks and the anon_vma lock and flushes it once, up to
        a PMD boundary, a hole, a zero-page PTE or a large folio, instead
        of one ptep_clear_flush per page (50944692052b "userfaultfd:
        opportunistic TLB-flush batching for present pages in MOVE", Lokesh
        Gidra, <20250816191123.3601561-1-lokeshgidra@google.com>, Linux 6.18).
    split_zeropage:
        splitting an anonymous large folio maps each subpage no store ever
        wrote to the shared zero page (RMP_USE_SHARED_ZEROPAGE,
        b1f202060afe "mm: remap unused subpages to shared zeropage when
        splitting isolated thp", Linux 6.12). In pagetab only UFFDIO_MOVE
        splits folios.
    pte_batch:
        move_ptes moves the PTEs of one large folio as a batch
        (mremap_folio_pte_batch, f822a9a81a31, Linux 6.17): one
        get_and_clear_full_ptes and one set_ptes, so a contiguous block is
        neither unfolded at the source nor folded entry by entry at the
        destination. From 0b5be138ce00 (6.17) only where pte_batch_hint
        says so: a PTE_CONT entry on arm64, never on x86.
    per_vma_locks:
        page faults first try the faulting VMA's own lock
        (``lock_vma_under_rcu``, mm/memory.c; 5e31275cc997 "mm: add per-VMA
        lock and helper functions to control it", Linux 6.4) and take
        mmap_lock only when the VMA is write-locked, as mremap's
        ``vma_start_write`` does to the VMAs it changes. Before, every fault
        took mmap_lock for read and waited out any mremap, which holds it
        for write. Only the concurrent model (``pagetab.contention``) reads it.

    ``flush_under_lock`` and ``batch_pmd_lock`` are read-only properties
    implied by ``flush``; as keyword arguments they are accepted when they
    agree with it, with a DeprecationWarning.
    """

    name: str
    description: str = ""
    source: str = ""
    move_pmd: bool = False
    move_pud: bool = False
    realign: bool = False
    flush: str = "extent"
    dirty_flush_under_lock: bool = False
    pte_extent_limit: int = 0
    flush_lazy: bool = False
    contpte: bool = False
    pte_batch: bool = False
    uffd_move_batch: bool = False
    uffd_table_move_check: bool = False
    uffd_move: str = ""
    split_zeropage: bool = False
    per_vma_locks: bool = False

    def __init__(
        self,
        name: str,
        description: str = "",
        source: str = "",
        move_pmd: bool = False,
        move_pud: bool = False,
        realign: bool = False,
        flush: str = "extent",
        dirty_flush_under_lock: bool = False,
        pte_extent_limit: int = 0,
        flush_lazy: bool = False,
        contpte: bool = False,
        pte_batch: bool = False,
        uffd_move_batch: bool = False,
        uffd_table_move_check: bool = False,
        uffd_move: str = "",
        split_zeropage: bool = False,
        per_vma_locks: bool = False,
        **legacy: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Policy.name must be a non-empty str")
        for what, text in (("description", description), ("source", source)):
            if not isinstance(text, str):
                raise TypeError(f"Policy.{what} must be a str, not {type(text).__name__}")
        for what, flag in (("move_pmd", move_pmd), ("move_pud", move_pud), ("realign", realign),
                           ("dirty_flush_under_lock", dirty_flush_under_lock),
                           ("flush_lazy", flush_lazy), ("contpte", contpte),
                           ("pte_batch", pte_batch),
                           ("uffd_move_batch", uffd_move_batch),
                           ("uffd_table_move_check", uffd_table_move_check),
                           ("split_zeropage", split_zeropage),
                           ("per_vma_locks", per_vma_locks)):  # fmt: skip
            check_bool(f"Policy.{what}", flag)
        if uffd_move not in UFFD_MOVE_RULES:
            raise ValueError(f"Policy.uffd_move must be one of {UFFD_MOVE_RULES}, "
                             f"not {uffd_move!r}")  # fmt: skip
        if uffd_move_batch and uffd_move != "6.9":
            raise ValueError('Policy: uffd_move_batch needs uffd_move="6.9"')
        if flush not in FLUSH_MODES:
            raise ValueError(f"Policy.flush must be one of {', '.join(FLUSH_MODES)}, "
                             f"not {flush!r}")  # fmt: skip
        unknown = sorted(set(legacy) - set(_LEGACY))
        if unknown:
            raise TypeError(f"Policy got unknown keyword argument(s) {unknown}")
        for f, v in legacy.items():
            check_bool(f"Policy.{f}", v)
            if v != _LEGACY[f](flush):
                if f == "flush_under_lock" and not v:
                    raise NotImplementedError(
                        "Policy: per-extent or per-table flushes after the lock release are "
                        'not modelled; use flush="end" for a deferred flush'
                    )
                raise ValueError(f'Policy: {f}={v} contradicts flush="{flush}" (flush="end" '
                                 'flushes after the locks, flush="table" batches the PMD '
                                 "lock, flush=\"extent\" does neither)")  # fmt: skip
            warnings.warn(f"Policy({f}=...) is implied by flush={flush!r}; drop the argument",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
        if dirty_flush_under_lock and flush != "end":
            raise ValueError('Policy: dirty_flush_under_lock applies to flush="end" only '
                             "(other modes flush every moved entry under the lock)")  # fmt: skip
        check_int("Policy.pte_extent_limit", pte_extent_limit, 0)
        if flush == "table" and not move_pmd:
            raise ValueError('Policy: flush="table" batches whole-PMD moves; needs move_pmd')
        values: dict[str, object] = {
            "name": name, "description": description, "source": source, "move_pmd": move_pmd,
            "move_pud": move_pud, "realign": realign, "flush": flush,
            "dirty_flush_under_lock": dirty_flush_under_lock,
            "pte_extent_limit": pte_extent_limit, "flush_lazy": flush_lazy,
            "contpte": contpte, "pte_batch": pte_batch, "uffd_move_batch": uffd_move_batch,
            "uffd_table_move_check": uffd_table_move_check, "uffd_move": uffd_move,
            "split_zeropage": split_zeropage, "per_vma_locks": per_vma_locks,
        }  # fmt: skip
        for field_name, value in values.items():
            object.__setattr__(self, field_name, value)

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

    def replace(self, **overrides: Any) -> Policy:
        """A copy with fields replaced (validated again)."""
        valid = {f.name for f in dataclasses.fields(self)} | set(_LEGACY)
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown Policy field(s) {unknown}; valid: {sorted(valid)}")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.update(overrides)
        return Policy(**fields)


_PRESETS = (
    Policy(
        "linux-4.9",
        "PTE moves only, at most LATENCY_LIMIT (64 pages) per move_ptes call; one "
        "flush_tlb_range of the whole range at the end, after the locks are released",
        "mm/mremap.c as of v4.9: move_page_tables with LATENCY_LIMIT (64 * PAGE_SIZE) and "
        "need_flush; the baseline of Joel Fernandes' 2018 'fast mremap' measurements (arm64, "
        "Linux 4.9 by his later mails)",
        flush="end", pte_extent_limit=64,
    ),
    Policy(
        "linux-4.18",
        "PTE moves only (THP leaves move whole); dirty entries flushed under the old "
        "lock, the rest once at the end after the locks are released",
        "mm/mremap.c as of v4.18; 5d1904204c99 (dirty flush); before CVE-2018-18281",
        flush="end", dirty_flush_under_lock=True,
    ),
    Policy(
        "linux-4.19",
        "PTE moves only, flush_tlb_range per extent while both PTE locks are held",
        "eb66ae030829 mremap: properly flush TLB before releasing the page (CVE-2018-18281)",
    ),
    Policy(
        "fast-mremap-v2",
        "the 2018 patch as posted: move_normal_pmd, one flush at the end after the "
        "locks are released (PTE moves keep the pre-4.19 rule)",
        "Joel Fernandes, '[PATCH 2/4] mm: speed up mremap by 500x on large regions (v2)', "
        "linux-mm 12 Oct 2018, <20181013013200.206928-3-joel@joelfernandes.org>",
        move_pmd=True, flush="end", dirty_flush_under_lock=True,
    ),
    Policy(
        "linux-5.0",
        "move_normal_pmd; flush_tlb_range per moved PMD under both PMD locks",
        "2c91bd4a4e2e mm: speed up mremap by 20x on large regions",
        move_pmd=True,
    ),
    Policy(
        "linux-5.11",
        "plus move_normal_pud (HAVE_MOVE_PUD), get_extent, move_pgt_entry",
        "c49dd3401802 mm: speedup mremap on 1GB or larger regions",
        move_pmd=True, move_pud=True,
    ),
    Policy(
        "linux-6.8",
        "plus try_realign_addr: mutually misaligned addresses aligned down to PMD",
        "af8ca1c14906 mm/mremap: optimize the start addresses in move_page_tables()",
        move_pmd=True, move_pud=True, realign=True, uffd_move="6.8", per_vma_locks=True,
    ),
    Policy(
        "linux-6.16",
        "plus arm64 contiguous PTEs for user mappings (6.9) and flushes that reach "
        "lazy CPUs (x86, 6.15); move_ptes still moves and clears entry by entry, "
        "unfolding each contiguous source block and refolding each destination block",
        "arch/arm64/mm/contpte.c ('arm64/mm: wire up PTE_CONT for user mappings', 6.9); "
        "3ef938c35035 x86/mm: flush_tlb_range passes freed_tables (6.15); 0cef0bb836e3 "
        "(no whole-table moves for userfaultfd VMAs without EVENT_REMAP); b1f202060afe "
        "(a folio split maps never-written subpages to the zero page, 6.12)",
        move_pmd=True, move_pud=True, realign=True, flush_lazy=True, contpte=True,
        uffd_table_move_check=True, uffd_move="6.9", split_zeropage=True,
        per_vma_locks=True,
    ),
    Policy(
        "linux-6.17",
        "plus mremap_folio_pte_batch: the PTEs of a large folio move as one batch "
        "(get_and_clear_full_ptes, set_ptes), contiguous blocks move without unfolding",
        "f822a9a81a31 mm: optimize mremap() by PTE batching (Dev Jain, "
        "<20250610035043.75448-1-dev.jain@arm.com>); 0b5be138ce00 (batch only where "
        "pte_batch_hint > 1); unchanged in this path in 6.18 but for 04d1c9d60c6e (a "
        "batch stops where the write bit differs, which it never does inside one VMA here)",
        move_pmd=True, move_pud=True, realign=True, flush_lazy=True, contpte=True,
        pte_batch=True, uffd_table_move_check=True, uffd_move="6.9", split_zeropage=True,
        per_vma_locks=True,
    ),
    Policy(
        "linux-6.18",
        "plus UFFDIO_MOVE's flush batching: a batch of present small folios in one page "
        "table moved under one take of the locks and flushed once, instead of one "
        "ptep_clear_flush per page",
        "50944692052b userfaultfd: opportunistic TLB-flush batching for present pages in "
        "MOVE (Lokesh Gidra, <20250816191123.3601561-1-lokeshgidra@google.com>, in 6.18: "
        "not in 6.17, which NVIDIA's 6.17 tree backports it to; mm-stable before the 6.18 "
        "merge window)",
        move_pmd=True, move_pud=True, realign=True, flush_lazy=True, contpte=True,
        pte_batch=True, uffd_move_batch=True, uffd_table_move_check=True, uffd_move="6.9",
        split_zeropage=True, per_vma_locks=True,
    ),
    Policy(
        "batched-ptl",
        "review-thread proposal on top of linux-6.8: one PMD lock per PMD table page, "
        "all movable entries moved, one flush, then unlock; PTE extents inside take "
        "the PTE lock nested and flush before dropping it",
        "proposed by Joel Fernandes <20181025020907.GA13560@joelaf.mtv.corp.google.com>, "
        "reviewed by Kirill Shutemov <20181025101900.phqnqpoju5t2gar5@kshutemo-mobl1> "
        "(linux-mm, Oct 2018); never merged",
        move_pmd=True, move_pud=True, realign=True, flush="table", uffd_move="6.8",
        per_vma_locks=True,
    ),
)  # fmt: skip
_REGISTRY = {p.name: p for p in _PRESETS}


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
