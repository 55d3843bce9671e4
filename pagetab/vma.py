"""VMAs and the shared-memory objects behind MAP_SHARED mappings.

A VMA here carries what Linux's merge rules look at (vm_flags, the backing
object, vm_pgoff, the anon_vma) so that ``can_merge`` is is_mergeable_vma
plus is_mergeable_anon_vma plus pgoff contiguity, as in mm/vma.c.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .constants import PROT_EXEC, PROT_READ, PROT_WRITE

__all__ = ["VM_HUGEPAGE", "VM_NOHUGEPAGE", "Shm", "Vma", "VmaInfo"]

#: vm_flags bits pagetab keeps besides the protection (include/linux/mm.h)
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000

_ids = itertools.count(1)


class Shm:
    """A shmem object: the pages of a MAP_SHARED|MAP_ANONYMOUS mapping.

    ``frames[i]`` is the frame holding page ``i`` of the object, or -1 if
    that page was never touched. Every mapping of the object (including
    those made by mremap with old_size 0) sees the same frames.
    """

    __slots__ = ("frames", "id")

    def __init__(self, pages: int) -> None:
        self.id = next(_ids)
        self.frames = np.full(pages, -1, dtype=np.int64)

    def __repr__(self) -> str:
        return f"Shm(id={self.id}, pages={self.frames.size})"


@dataclass(slots=True)
class Vma:
    """A vm_area_struct: [start, end) with its flags, object and offset."""

    start: int
    end: int
    prot: int
    shared: bool
    flags: int = 0  # VM_HUGEPAGE / VM_NOHUGEPAGE
    pgoff: int = 0  # vm_pgoff, in pages
    anon_vma: int | None = None  # anon_vma identity, set at the first anon fault
    shm: Shm | None = None

    def copy(self) -> Vma:
        return Vma(
            self.start,
            self.end,
            self.prot,
            self.shared,
            self.flags,
            self.pgoff,
            self.anon_vma,
            self.shm,
        )

    def pages(self, page_shift: int) -> int:
        return (self.end - self.start) >> page_shift

    def pgoff_at(self, addr: int, page_shift: int) -> int:
        """vm_pgoff of ``addr`` inside this VMA (linear_page_index)."""
        return self.pgoff + ((addr - self.start) >> page_shift)

    def object_end(self, page_shift: int) -> int:
        """The address past the last page of its shmem object (shared VMAs):
        faults beyond it are SIGBUS."""
        assert self.shm is not None
        return self.start + ((self.shm.frames.size - self.pgoff) << page_shift)

    def info(self) -> VmaInfo:
        return VmaInfo(
            self.start,
            self.end,
            self.prot,
            self.shared,
            bool(self.flags & VM_HUGEPAGE),
            bool(self.flags & VM_NOHUGEPAGE),
            self.pgoff,
        )


def can_merge(a: Vma, b: Vma, page_shift: int) -> bool:
    """Whether b, starting where a ends, merges into a (mm/vma.c rules)."""
    if a.end != b.start or a.prot != b.prot or a.shared != b.shared or a.flags != b.flags:
        return False
    if a.shm is not b.shm:
        return False
    if a.pgoff + a.pages(page_shift) != b.pgoff:
        return False
    # is_mergeable_anon_vma: one without anon_vma merges with anything
    return a.anon_vma is None or b.anon_vma is None or a.anon_vma == b.anon_vma


def new_anon_vma() -> int:
    """A fresh anon_vma identity (anon_vma_prepare)."""
    return next(_ids)


@dataclass(frozen=True, slots=True)
class VmaInfo:
    """A read-only snapshot of one VMA, as /proc/PID/maps would show it."""

    start: int
    end: int
    prot: int
    shared: bool
    hugepage: bool
    nohugepage: bool
    pgoff: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        perms = "".join(
            c if self.prot & bit else "-"
            for c, bit in (("r", PROT_READ), ("w", PROT_WRITE), ("x", PROT_EXEC))
        )
        perms += "s" if self.shared else "p"
        return f"{self.start:012x}-{self.end:012x} {perms} {self.pgoff:08x}"
