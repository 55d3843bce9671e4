"""VMAs, the shared-memory objects behind MAP_SHARED mappings, and the VMA
list of an mm (mm/vma.c and mm/mmap.c).

A VMA here carries what Linux's merge rules look at (vm_flags, the backing
object, vm_pgoff, the anon_vma) so that ``can_merge`` is is_mergeable_vma
plus is_mergeable_anon_vma plus pgoff contiguity, as in mm/vma.c. The list
operations are module functions taking the mm, as the kernel's do.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .argcheck import U64
from .constants import PROT_EXEC, PROT_READ, PROT_WRITE

if TYPE_CHECKING:
    from .space import AddressSpace

__all__ = [
    "VM_HUGEPAGE",
    "VM_NOHUGEPAGE",
    "VM_UFFD_FLAGS",
    "VM_UFFD_MISSING",
    "VM_UFFD_WP",
    "Shm",
    "Vma",
    "VmaInfo",
    "can_merge",
    "do_vmi_munmap",
    "find_vma",
    "get_unmapped_area",
    "insert_vma",
    "is_free",
    "merge_around",
    "overlapping",
    "split_vma",
    "unmap_region",
]

#: vm_flags bits pagetab keeps besides the protection (include/linux/mm.h)
VM_UFFD_MISSING = 0x00000200
VM_UFFD_WP = 0x00001000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP

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
    flags: int = 0  # VM_HUGEPAGE / VM_NOHUGEPAGE / VM_UFFD_*
    pgoff: int = 0  # vm_pgoff, in pages
    anon_vma: int | None = None  # anon_vma identity, set at the first anon fault
    shm: Shm | None = None
    uffd: int = 0  # vm_userfaultfd_ctx: the registered userfaultfd's id, 0 none

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
            self.uffd,
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
            self.uffd,
        )


def can_merge(a: Vma, b: Vma, page_shift: int) -> bool:
    """Whether b, starting where a ends, merges into a (mm/vma.c rules)."""
    if a.end != b.start or a.prot != b.prot or a.shared != b.shared or a.flags != b.flags:
        return False
    if a.shm is not b.shm or a.uffd != b.uffd:  # is_mergeable_vm_userfaultfd_ctx
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
    uffd: int = 0  # the userfaultfd the VMA is registered with, 0 none

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


# ----------------------------------------------------------------------
# The VMA list of an mm (mm/vma.c, mm/mmap.c). VMAs are kept in Python, in
# a list sorted by address (a process has few); page-table work is
# delegated to the Cython store.

_VMA_START = operator.attrgetter("start")
_VMA_END = operator.attrgetter("end")


def index_after(mm: AddressSpace, addr: int) -> int:
    """Index of the first VMA whose end is > addr (the find_vma walk)."""
    return bisect.bisect_right(mm._vmas, addr, key=_VMA_END)


def find_vma(mm: AddressSpace, addr: int) -> Vma | None:
    """The VMA containing ``addr``, or None."""
    vs = mm._vmas
    i = bisect.bisect_right(vs, addr, key=_VMA_END)
    if i < len(vs) and vs[i].start <= addr:
        return vs[i]
    return None


def prev_end(mm: AddressSpace, addr: int) -> int:
    """The end of the last VMA ending at or below ``addr`` (0 if none): where
    the gap below ``addr`` starts."""
    i = index_after(mm, addr)
    return mm._vmas[i - 1].end if i > 0 else 0


def overlapping(mm: AddressSpace, start: int, end: int) -> Iterator[Vma]:
    """The VMAs intersecting [start, end), in order (for_each_vma_range)."""
    vs = mm._vmas
    i = index_after(mm, start)
    while i < len(vs) and vs[i].start < end:
        yield vs[i]
        i += 1


def is_free(mm: AddressSpace, start: int, end: int) -> bool:
    """Whether no VMA intersects [start, end) (!find_vma_intersection)."""
    return next(overlapping(mm, start, end), None) is None


def split_vma(mm: AddressSpace, addr: int) -> None:
    """__split_vma at ``addr`` if a VMA straddles it (splits a THP there too).

    OSError(ENOMEM) if the huge page there cannot be split for lack of
    page-table memory (the VMA list is left as it was).
    """
    vs = mm._vmas
    i = index_after(mm, addr)
    if i == len(vs):
        return
    v = vs[i]
    if not v.start < addr < v.end:
        return
    if not mm.tables.split_at(addr):
        merge_around(mm, addr, addr)  # undo a split made just before
        raise OSError(errno.ENOMEM, "split: no page-table memory to split a huge page")
    hi = v.copy()
    hi.pgoff = v.pgoff_at(addr, mm.page_shift)
    hi.start = addr
    v.end = addr
    vs.insert(i + 1, hi)


def merge_around(mm: AddressSpace, start: int, end: int) -> None:
    """Merge mergeable neighbours among the VMAs touching [start, end]."""
    vs = mm._vmas
    i = max(index_after(mm, start) - 1, 0)
    while i + 1 < len(vs) and vs[i].start <= end:
        a, b = vs[i], vs[i + 1]
        if can_merge(a, b, mm.page_shift):
            a.end = b.end
            if a.anon_vma is None:
                a.anon_vma = b.anon_vma
            del vs[i + 1]
        else:
            i += 1


def insert_vma(mm: AddressSpace, v: Vma) -> None:
    """Link ``v`` into the list and merge it with its neighbours (vma_link + vma_merge)."""
    vs = mm._vmas
    vs.insert(bisect.bisect_left(vs, v.start, key=_VMA_START), v)
    merge_around(mm, v.start, v.end)


def unmap_region(mm: AddressSpace, start: int, end: int, floor: int, ceiling: int) -> None:
    """unmap_region on a range no VMA maps any more: zap it (flushing what
    was present), then free_pgtables within [floor, ceiling)."""
    if mm.tables.zap(start, end):
        mm.tlbs.flush_range(mm.cpu, start, end)
    mm.tables.free_pgtables(start, end, floor, ceiling)


def do_vmi_munmap(mm: AddressSpace, start: int, end: int) -> None:
    """Unmap an aligned, validated range: split, unlink, zap, free tables."""
    if is_free(mm, start, end):
        return
    split_vma(mm, start)
    split_vma(mm, end)
    vs = mm._vmas
    i = index_after(mm, start)
    j = i
    while j < len(vs) and vs[j].start < end:
        j += 1
    if i == j:
        return
    first, last = vs[i].start, vs[j - 1].end
    del vs[i:j]
    floor = vs[i - 1].end if i > 0 else 0
    ceiling = vs[i].start if i < len(vs) else 0
    unmap_region(mm, first, last, floor, ceiling)


def free_window(mm: AddressSpace, start: int, end: int) -> tuple[int, int]:
    """[floor, ceiling) that free_pgtables will use once [start, end) is
    unmapped: tables wholly inside may be released as soon as emptied."""
    vs = mm._vmas
    i = index_after(mm, start)  # the first VMA ending after start
    if i < len(vs) and vs[i].start < start:
        floor = start  # a VMA keeps the part below start
    else:
        floor = vs[i - 1].end if i > 0 else 0
    k = bisect.bisect_left(vs, end, key=_VMA_START)  # the first VMA starting at or after end
    if k > 0 and vs[k - 1].end > end:
        ceiling = end  # a VMA keeps the part above end
    else:
        ceiling = vs[k].start if k < len(vs) else U64 - 1
    return floor, ceiling


# ----------------------------------------------------------------------
# address selection (mm/mmap.c, arch_get_unmapped_area_topdown)


def _topdown(mm: AddressSpace, length: int, high: int) -> int | None:
    """unmapped_area_topdown: the highest gap below ``high`` fitting
    ``length``; returns its top - length, or None."""
    low = max(mm.arch.mmap_min_addr, mm.page_size)
    gap_end = high
    for v in reversed(mm._vmas):
        if v.start >= high:
            gap_end = min(gap_end, high)
            continue
        gap_start = max(v.end, low)
        if gap_end >= gap_start + length:
            return gap_end - length
        gap_end = v.start
    if gap_end >= low + length:
        return gap_end - length
    return None


def _bottomup(mm: AddressSpace, length: int, high: int) -> int | None:
    """unmapped_area: the lowest gap fitting ``length`` below ``high``."""
    addr = max(mm.arch.mmap_min_addr, mm.page_size)
    for v in mm._vmas:
        if v.start >= addr + length:
            break
        addr = max(addr, v.end)
    return addr if addr + length <= high else None


def get_unmapped_area(mm: AddressSpace, length: int, hint: int, thp_align: bool) -> int | None:
    """Where a non-fixed mapping of ``length`` goes (None: no room)."""
    a = mm.arch
    mmap_end = a.task_size if hint > a.map_window else a.map_window
    if hint:
        if (
            hint + length <= mmap_end
            and hint >= a.mmap_min_addr
            and is_free(mm, hint, hint + length)
        ):
            return hint
    base = a.mmap_base if mmap_end == a.map_window else mmap_end - a.stack_gap
    if thp_align:
        # __thp_get_unmapped_area: search for len + PMD_SIZE, then align
        pmd = a.pmd_size
        ret = _topdown(mm, length + pmd, base) or _bottomup(mm, length + pmd, mmap_end)
        if ret is not None:
            off_sub = (-ret) & (pmd - 1)
            return ret + pmd if off_sub == 0 else ret + off_sub
    ret = _topdown(mm, length, base)
    if ret is None:
        ret = _bottomup(mm, length, mmap_end)
    return ret
