"""The VMA list of an mm (mm/vma.c and mm/mmap.c).

A VMA (``mm_types.Vma``) carries what Linux's merge rules look at
(vm_flags, the backing object, vm_pgoff, the anon_vma) so that
``can_merge`` is is_mergeable_vma plus is_mergeable_anon_vma plus pgoff
contiguity, as in mm/vma.c. The list operations are module functions
taking the mm, as the kernel's do.
"""

from __future__ import annotations

import bisect
import errno
import operator
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .argcheck import U64
from .constants import ZERO_FRAME
from .mm_types import MmStruct, Vma
from .stats import MoveStats

__all__ = [
    "InvariantError",
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
    "validate_mm",
    "walk_ptes",
]


def can_merge(a: Vma, b: Vma, page_shift: int) -> bool:
    """Whether b, starting where a ends, merges into a (mm/vma.c rules)."""
    if a.end != b.start or a.prot != b.prot or a.shared != b.shared or a.flags != b.flags:
        return False
    # is_mergeable_vma: the same vm_file (and shmem object);
    # is_mergeable_vm_userfaultfd_ctx
    if a.shm is not b.shm or a.file is not b.file or a.uffd != b.uffd:
        return False
    if a.pgoff + a.pages(page_shift) != b.pgoff:
        return False
    # is_mergeable_anon_vma: one without anon_vma merges with anything
    return a.anon_vma is None or b.anon_vma is None or a.anon_vma == b.anon_vma


# ----------------------------------------------------------------------
# The VMA list of an mm (mm/vma.c, mm/mmap.c). VMAs are kept in Python, in
# a list sorted by address (a process has few); page-table work is
# delegated to the Cython store.

_VMA_START = operator.attrgetter("start")
_VMA_END = operator.attrgetter("end")


def index_after(mm: MmStruct, addr: int) -> int:
    """Index of the first VMA whose end is > addr (the find_vma walk)."""
    return bisect.bisect_right(mm.vmas, addr, key=_VMA_END)


def find_vma(mm: MmStruct, addr: int) -> Vma | None:
    """The VMA containing ``addr``, or None."""
    vs = mm.vmas
    i = bisect.bisect_right(vs, addr, key=_VMA_END)
    if i < len(vs) and vs[i].start <= addr:
        return vs[i]
    return None


def prev_end(mm: MmStruct, addr: int) -> int:
    """The end of the last VMA ending at or below ``addr`` (0 if none): where
    the gap below ``addr`` starts."""
    i = index_after(mm, addr)
    return mm.vmas[i - 1].end if i > 0 else 0


def overlapping(mm: MmStruct, start: int, end: int) -> Iterator[Vma]:
    """The VMAs intersecting [start, end), in order (for_each_vma_range)."""
    vs = mm.vmas
    i = index_after(mm, start)
    while i < len(vs) and vs[i].start < end:
        yield vs[i]
        i += 1


def is_free(mm: MmStruct, start: int, end: int) -> bool:
    """Whether no VMA intersects [start, end) (!find_vma_intersection)."""
    return next(overlapping(mm, start, end), None) is None


def split_vma(mm: MmStruct, addr: int) -> None:
    """__split_vma at ``addr`` if a VMA straddles it (splits a THP there too).

    OSError(ENOMEM) if the huge page there cannot be split for lack of
    page-table memory (the VMA list is left as it was).
    """
    vs = mm.vmas
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


def merge_around(mm: MmStruct, start: int, end: int) -> None:
    """Merge mergeable neighbours among the VMAs touching [start, end]."""
    vs = mm.vmas
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


def insert_vma(mm: MmStruct, v: Vma) -> None:
    """Link ``v`` into the list and merge it with its neighbours (vma_link + vma_merge)."""
    vs = mm.vmas
    vs.insert(bisect.bisect_left(vs, v.start, key=_VMA_START), v)
    merge_around(mm, v.start, v.end)


#: what free_pgtables freed, as the mmu_gather records it: (lo, hi, stride shift)
Freed = tuple[int, int, int]


def unmap_region(mm: MmStruct, start: int, end: int, floor: int, ceiling: int,
                 freed_before: Freed | None = None,
                 st: MoveStats | None = None) -> None:  # fmt: skip
    """unmap_region on a range no VMA maps any more: zap it, free_pgtables
    within [floor, ceiling), then tlb_finish_mmu's one flush.

    The flush covers the zapped range at page stride; when only page
    tables were freed, their addresses at the stride of the lowest level
    freed (tlb_get_unmap_shift), ``freed_before`` included (tables the
    move engine already released, which the kernel frees here). None when
    nothing was zapped or freed. An mremap's unmaps count theirs into its
    record ``st``.
    """
    zapped = walk_ptes(mm, mm.tables.zap, start, end, st=st)
    freed = _union(mm.tables.free_pgtables(start, end, floor, ceiling), freed_before)
    if zapped:
        lo, hi, shift = start, end, mm.page_shift
        if freed is not None:
            lo, hi = min(lo, freed[0]), max(hi, freed[1])
    elif freed is not None:
        lo, hi, shift = freed
    else:
        return
    if st is None:
        mm.tlbs.flush_range(mm.cpu, lo, hi, shift, freed is not None)
    else:
        st.add_flush(mm.tlbs, mm.cpu, lo, hi, shift, freed is not None, mm.trace_moves)


def walk_ptes(mm: MmStruct, walk: Callable[..., int], *args: Any,
              st: MoveStats | None = None) -> int:  # fmt: skip
    """``walk(*args)``, a walk of the page tables that changes entries
    (``mm.tables.zap``, ``mm.tables.change_prot``), with the
    flush_tlb_batched_pending its zap_pte_range or change_pte_range makes
    in the kernel: when reclaim's deferred flush of the mm is pending and
    the walk met a PTE table, it is done (counted into an mremap's record
    ``st``), even if the walk then fails (the kernel had done it before).
    Returns what ``walk`` returns."""
    tlbs = mm.tlbs
    if not (tlbs.tlb_flush_batched and tlbs.batched_pending_call):
        return walk(*args)  # the common case: nothing pending
    visited = mm.tables.pte_tables_visited
    try:
        return walk(*args)
    finally:
        if mm.tables.pte_tables_visited != visited:
            if st is None:
                tlbs.flush_tlb_batched_pending(mm.cpu)
            else:
                st.add_batched_pending(tlbs, mm.cpu, mm.trace_moves)


def _union(a: Freed | None, b: Freed | None) -> Freed | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2])


def do_vmi_munmap(mm: MmStruct, start: int, end: int, freed_before: Freed | None = None,
                  st: MoveStats | None = None) -> None:  # fmt: skip
    """Unmap an aligned, validated range: split, unlink, zap, free tables,
    flush (``unmap_region``: an mremap's unmaps count into its ``st``)."""
    if is_free(mm, start, end):
        return
    split_vma(mm, start)
    split_vma(mm, end)
    vs = mm.vmas
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
    unmap_region(mm, first, last, floor, ceiling, freed_before, st)


def free_window(mm: MmStruct, start: int, end: int) -> tuple[int, int]:
    """[floor, ceiling) that free_pgtables will use once [start, end) is
    unmapped: tables wholly inside may be released as soon as emptied."""
    vs = mm.vmas
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


def _topdown(mm: MmStruct, length: int, high: int) -> int | None:
    """unmapped_area_topdown: the highest gap below ``high`` fitting
    ``length``; returns its top - length, or None."""
    low = max(mm.arch.mmap_min_addr, mm.page_size)
    gap_end = high
    for v in reversed(mm.vmas):
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


def _bottomup(mm: MmStruct, length: int, high: int) -> int | None:
    """unmapped_area: the lowest gap fitting ``length`` below ``high``."""
    addr = max(mm.arch.mmap_min_addr, mm.page_size)
    for v in mm.vmas:
        if v.start >= addr + length:
            break
        addr = max(addr, v.end)
    return addr if addr + length <= high else None


def get_unmapped_area(mm: MmStruct, length: int, hint: int, thp_align: bool) -> int | None:
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


# ----------------------------------------------------------------------
# validate_mm (mm/vma.c, CONFIG_DEBUG_VM_MAPLE_TREE): the whole mm checked


class InvariantError(AssertionError):
    """validate_mm (``AddressSpace.check``) found the simulated state inconsistent."""


def _populated_chunks(mm: MmStruct, v: Vma) -> Iterator[tuple[int, npt.NDArray[np.int64]]]:
    """(start, frames) of the PUD-sized pieces of ``v`` that map anything:
    bounded memory however large the VMA."""
    step = mm.arch.pud_size
    lo = v.start
    while lo < v.end:
        hi = min((lo & ~(step - 1)) + step, v.end)
        if mm.tables.count_mapped(lo, hi):
            yield lo, mm.tables.frames(lo, hi)
        lo = hi


def validate_mm(mm: MmStruct) -> None:
    """Verify every invariant of ``mm``; raise InvariantError listing what is wrong."""
    problems: list[str] = list(mm.tables.check())
    ps = mm.page_shift
    prev: Vma | None = None
    for v in mm.vmas:
        if v.start >= v.end or not mm.page_aligned(v.start) or not mm.page_aligned(v.end):
            problems.append(f"bad VMA bounds {v.start:#x}-{v.end:#x}")
        if v.start < mm.arch.mmap_min_addr or v.end > mm.arch.task_size:
            problems.append(f"VMA {v.start:#x}-{v.end:#x} outside the address space")
        if prev is not None:
            if prev.end > v.start:
                problems.append(f"VMAs overlap or are unsorted at {v.start:#x}")
            elif can_merge(prev, v, ps):
                problems.append(f"VMAs at {prev.start:#x} and {v.start:#x} should be merged")
        if v.shm is not None and (not v.shared or v.file is not None):
            problems.append(f"VMA {v.start:#x}: a shmem object behind a private or file VMA")
        if v.shared and v.cache is None:
            problems.append(f"VMA {v.start:#x}: shared without a shmem object or file")
        prev = v
    total = mm.tables.count_mapped(0, mm.arch.task_size)
    inside = 0
    private: list[npt.NDArray[np.int64]] = []
    shm_frames: list[npt.NDArray[np.int64]] = []
    for v in mm.vmas:
        for lo, f in _populated_chunks(mm, v):
            inside += int(np.count_nonzero(f >= 0))
            cache = v.cache
            if cache is None:
                private.append(f[f > ZERO_FRAME])
                continue
            first = max(v.pgoff_at(lo, mm.page_shift), 0)
            want = cache.frames[first : first + f.size]
            beyond = f[want.size :]
            mapped = f[: want.size] >= 0
            other = mapped & (f[: want.size] != want)
            if v.shared and (other.any() or (beyond >= 0).any()):
                problems.append(f"shared VMA {v.start:#x}: entries disagree with its object")
            elif not v.shared:
                if (beyond >= 0).any():
                    problems.append(f"file VMA {v.start:#x}: pages mapped past its file's end")
                # a private file VMA maps its page cache's frames or its own copies
                private.append(f[: want.size][other])
    seen_shm = {id(c): c for v in mm.vmas if (c := v.cache) is not None}
    for s in seen_shm.values():
        assert s is not None
        shm_frames.append(s.frames[s.frames >= 0])
    if total != inside:
        problems.append(f"{total - inside} mapped pages lie outside every VMA")
    # the allocator hands out frames from next_frame on: one already
    # mapped there would be mapped twice by a later fault
    top = max((int(f.max()) for f in (*private, *shm_frames) if f.size), default=-1)
    if top >= mm.tables.next_frame:
        problems.append(f"frame {top} is mapped but not below the next frame to allocate "
                        f"({mm.tables.next_frame})")  # fmt: skip
    if private:
        allp = np.concatenate(private)
        uniq = np.unique(allp)
        if uniq.size != allp.size:
            problems.append(f"{allp.size - uniq.size} private frames are mapped twice")
        if shm_frames:
            alls = np.concatenate(shm_frames)
            if np.intersect1d(uniq, alls).size:
                problems.append("a private mapping maps a shared object's frame")
    if problems:
        raise InvariantError("; ".join(problems))
