"""Kernel policies for move_page_tables (DESIGN.md layer 2).

A policy names how mremap moves page tables: which whole-entry moves exist,
when TLB flushes happen relative to the page-table locks, and whether the
PMD lock is batched per table page. Presets reproduce kernel versions and
the proposals of the 2018 "fast mremap" review thread (shared/DOMAIN.md
section 1). Policies change costs and safety, never the resulting mapping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["FLUSH_MODES", "Policy", "policies", "policy"]

#: When moved entries are flushed:
#: "extent": per move_ptes extent and per whole-entry move (flush_tlb_range
#: for each, as Linux since 4.19/5.0); "table": once per PMD table page
#: (batched-ptl); "end": once at the end of move_page_tables.
FLUSH_MODES = ("extent", "table", "end")


@dataclass(frozen=True)
class Policy:
    """How move_page_tables behaves.

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
    flush_under_lock:
        whether the flush happens before the page-table locks are released.
        With flush="end" it is False: the single flush comes after.
    dirty_flush_under_lock:
        pre-4.19 rule (5d1904204c99): a moved *dirty* present entry forces a
        flush under the old lock even when the policy defers flushes.
    batch_pmd_lock:
        the review thread's proposal: take the PMD lock once per PMD table
        page, move every movable entry in it, flush once, then unlock.
    """

    name: str
    description: str = ""
    source: str = ""
    move_pmd: bool = False
    move_pud: bool = False
    realign: bool = False
    flush: str = "extent"
    flush_under_lock: bool = True
    dirty_flush_under_lock: bool = False
    batch_pmd_lock: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Policy.name must be a non-empty str")
        for f in ("move_pmd", "move_pud", "realign", "flush_under_lock",
                  "dirty_flush_under_lock", "batch_pmd_lock"):  # fmt: skip
            if not isinstance(getattr(self, f), bool):
                raise TypeError(f"Policy.{f} must be a bool, not {getattr(self, f)!r}")
        if self.flush not in FLUSH_MODES:
            raise ValueError(f"Policy.flush must be one of {', '.join(FLUSH_MODES)}, "
                             f"not {self.flush!r}")  # fmt: skip
        if (self.flush == "table") != self.batch_pmd_lock:
            raise ValueError('Policy: flush="table" goes with batch_pmd_lock=True and only then')
        if self.flush == "end" and self.flush_under_lock:
            raise ValueError('Policy: flush="end" happens after the locks are released; '
                             "set flush_under_lock=False")  # fmt: skip
        if self.flush != "end" and not self.flush_under_lock:
            raise NotImplementedError(
                "Policy: per-extent or per-table flushes after the lock release are not "
                'modelled; use flush="end" for a deferred flush'
            )
        if self.batch_pmd_lock and not self.move_pmd:
            raise ValueError("Policy: batch_pmd_lock batches whole-PMD moves; needs move_pmd")

    @property
    def safe(self) -> bool:
        """Whether every moved present entry is flushed before its locks drop."""
        return self.flush_under_lock

    def replace(self, **overrides: Any) -> Policy:
        """A copy with fields replaced (validated again)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown Policy field(s) {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **overrides)


_PRESETS = (
    Policy(
        "linux-4.18",
        "PTE moves only (THP leaves move whole); dirty entries flushed under the old "
        "lock, the rest once at the end after the locks are released",
        "mm/mremap.c as of v4.18; 5d1904204c99 (dirty flush); before CVE-2018-18281",
        flush="end", flush_under_lock=False, dirty_flush_under_lock=True,
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
        "Joel Fernandes, 'mm: speed up mremap by 500x on large regions' v2, linux-mm, "
        "Oct 2018",
        move_pmd=True, flush="end", flush_under_lock=False, dirty_flush_under_lock=True,
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
        move_pmd=True, move_pud=True, realign=True,
    ),
    Policy(
        "batched-ptl",
        "review-thread proposal on top of linux-6.8: one PMD lock per PMD table page, "
        "all movable entries moved, one flush, then unlock; PTE extents inside take "
        "the PTE lock nested and flush before dropping it",
        "linux-mm review of 'mm: speed up mremap by 500x on large regions', Oct 2018",
        move_pmd=True, move_pud=True, realign=True, flush="table", batch_pmd_lock=True,
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
