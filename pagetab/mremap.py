"""mremap(2), as mm/mremap.c of Linux 6.17+, top to bottom.

do_mremap checks its arguments (check_mremap_params), then either resizes
in place (mremap_at: shrink, or expand_vma_in_place), or moves: mremap_to
for MREMAP_FIXED / MREMAP_DONTUNMAP, remap_move for a pure MREMAP_FIXED
move spanning several VMAs, and move_vma for each VMA moved (copy_vma,
move_page_tables in the Cython engine, then unmapping the source). A whole
VMA moved into a hole, the common case, is one C call
(_mremap.mremap_whole_vma): the same result without the general VMA
bookkeeping. Every error is raised before anything changes, except where
the kernel itself fails part way.
"""

from __future__ import annotations

import errno
import time

from . import _move
from ._mremap import mremap_whole_vma
from ._tables import PageTables
from .argcheck import U64, as_uint
from .constants import MREMAP_DONTUNMAP, MREMAP_FIXED, MREMAP_MAYMOVE
from .mm_types import VM_UFFD_FLAGS, MmStruct, Vma
from .stats import MoveStats
from .userfaultfd import mremap_userfaultfd_prep, vma_has_uffd_without_event_remap
from .vma import (
    Freed,
    do_vmi_munmap,
    find_vma,
    free_window,
    get_unmapped_area,
    insert_vma,
    is_free,
    merge_around,
    overlapping,
    prev_end,
)

__all__ = ["do_mremap", "move_vma"]

CALL = "mremap"
#: where the engine's record (move_stats as int64 words) counts the PTE
#: tables it freed early
_FREED_EARLY = _move.MOVE_DTYPE.fields["tables_freed_early"][1] // 8  # type: ignore[index]


def _error(code: int, what: str) -> OSError:
    return OSError(code, f"{CALL}: {what}")


def do_mremap(
    mm: MmStruct, addr: int, old_size: int, new_size: int, flags: int, new_addr: int | None
) -> int:
    """mremap(2) on ``mm``; returns the new address, sets ``mm.last_move``."""
    result = mremap_whole_vma(mm, addr, old_size, new_size, flags, new_addr)
    if result is not None:
        return result
    na = 0 if new_addr is None else new_addr
    if not (type(addr) is type(old_size) is type(new_size) is type(flags) is type(na) is int
            and 0 <= min(addr, old_size, new_size, flags, na)
            and max(addr, old_size, new_size, flags, na) < U64):  # fmt: skip
        # not five plain unsigned longs: say which argument is wrong
        addr = as_uint("old_addr", addr, CALL)
        old_size = as_uint("old_size", old_size, CALL)
        new_size = as_uint("new_size", new_size, CALL)
        flags = as_uint("flags", flags, CALL)
        na = 0 if new_addr is None else as_uint("new_addr", new_addr, CALL)
    a = mm.arch
    # check_mremap_params
    if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
        raise _error(errno.EINVAL, f"unknown flags {flags:#x}")
    mask = mm.page_size - 1
    if addr & mask:
        raise _error(errno.EINVAL, f"old_addr {addr:#x} is not page aligned")
    old_len = ((old_size + mask) & ~mask) % U64
    new_len = ((new_size + mask) & ~mask) % U64
    if new_len == 0:
        raise _error(errno.EINVAL, "new_size must be > 0")
    if new_len > a.task_size:
        raise _error(errno.EINVAL, "new_size exceeds the address space")
    implies_new = bool(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
    if implies_new:
        if na > a.task_size - new_len:
            raise _error(errno.EINVAL, "new range is outside the address space")
        if na & mask:
            raise _error(errno.EINVAL, f"new_addr {na:#x} is not page aligned")
        if not flags & MREMAP_MAYMOVE:
            raise _error(errno.EINVAL, "MREMAP_FIXED and MREMAP_DONTUNMAP need MREMAP_MAYMOVE")
        if flags & MREMAP_DONTUNMAP and old_len != new_len:
            raise _error(errno.EINVAL, "MREMAP_DONTUNMAP cannot resize")
        if addr + old_len > na and na + new_len > addr:
            raise _error(errno.EINVAL, "old and new ranges overlap")
    # check_map_count_against_split_early (and prep_move_vma's check, done
    # here so that no error comes after a change)
    if len(mm.vmas) + 4 > mm.max_map_count:
        raise _error(errno.ENOMEM, "too close to vm.max_map_count")
    t0 = time.perf_counter_ns()
    tables = mm.tables
    before = tables.table_bytes
    freed0 = tables.freed_total
    st = MoveStats(a.name, mm.policy.name, addr, addr, old_len, new_len,
                   page_table_bytes_before=before, profile=a)  # fmt: skip
    if flags & MREMAP_FIXED and old_len == new_len and mm.policy.multi_vma_move:
        done: list[int] = []
        try:
            result = remap_move(mm, addr, old_len, na, flags, st, done)
        except OSError:
            if done:  # the VMAs moved before the error stay moved: say so
                _finish(mm, st, done[0], tables, freed0, t0)
            raise
    else:
        vma = find_vma(mm, addr)
        if vma is None:
            raise _error(errno.EFAULT, f"nothing is mapped at {addr:#x}")
        check_prep_vma(vma, addr, old_len, new_len, flags)
        if implies_new:
            result = mremap_to(mm, addr, old_len, new_len, flags, na, st)
        else:
            result = mremap_at(mm, vma, addr, old_len, new_len, flags, st)
    _finish(mm, st, result, tables, freed0, t0)
    return result


def _finish(mm: MmStruct, st: MoveStats, result: int, tables: PageTables, freed0: int,
            t0: int) -> None:  # fmt: skip
    """The call's record, complete: ``mm.last_move``."""
    st.new_addr = result
    st.page_table_bytes_after = tables.table_bytes
    st.pte_table_bytes = mm.pte_table_bytes
    st.tables_freed = tables.freed_total - freed0
    st.wall_ns = time.perf_counter_ns() - t0
    mm.last_move = st


def check_prep_vma(vma: Vma, addr: int, old_len: int, new_len: int, flags: int) -> None:
    """The checks of vma_to_resize / mremap_to on the source VMA."""
    expand = new_len > old_len
    if not expand and not flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return
    if old_len == 0 and not vma.shared:
        raise _error(errno.EINVAL, "old_size 0 duplicates only shared mappings")
    span = new_len if new_len < old_len else old_len
    if span > vma.end - addr:
        raise _error(errno.EFAULT, "range runs past the end of its mapping")


def remap_move(mm: MmStruct, start: int, length: int, new_addr: int, flags: int,
               st: MoveStats, done: list[int] | None = None) -> int:  # fmt: skip
    """remap_move: a pure MREMAP_FIXED move over every VMA in the range,
    keeping the gaps between them. A VMA vma_multi_allowed refuses may only
    be moved alone: first in a range that goes on past it, it is EFAULT
    before anything moves; later, EFAULT with the VMAs before it moved.
    ``done`` gets the new address of each VMA moved (they stay moved when a
    later one fails)."""
    end = start + length
    vmas = list(overlapping(mm, start, end))
    pieces = [(max(v.start, start), min(v.end, end)) for v in vmas]
    if not pieces or pieces[0][0] > start:
        raise _error(errno.EFAULT, f"nothing is mapped at {start:#x}")
    allowed = [vma_multi_allowed(v) for v in vmas]  # before any VMA moves or merges
    target = new_addr
    last_end = pieces[0][0]
    result = new_addr
    for i, (lo, hi) in enumerate(pieces):
        if not allowed[i] and (i or vmas[0].end < end):
            raise _error(errno.EFAULT, f"the VMA at {lo:#x} is registered with a userfaultfd: "
                         "it moves only alone")  # fmt: skip
        target += lo - last_end if i else 0
        last_end = hi
        got = mremap_to(mm, lo, hi - lo, hi - lo, flags, target, st)
        if done is not None:
            done.append(got)
        if i == 0:
            result = got
        target = got + (hi - lo)
    return result


def vma_multi_allowed(vma: Vma) -> bool:
    """vma_multi_allowed: whether a move of several VMAs may include
    ``vma`` (not a userfaultfd-armed one; pagetab's files are regular
    files, whose get_unmapped_area honours MREMAP_FIXED)."""
    return not vma.flags & VM_UFFD_FLAGS


def mremap_to(mm: MmStruct, addr: int, old_len: int, new_len: int, flags: int, na: int,
              st: MoveStats) -> int:  # fmt: skip
    """mremap_to: move to ``na`` (MREMAP_FIXED unmaps it first) or, with
    MREMAP_DONTUNMAP alone, to wherever get_unmapped_area puts it."""
    if flags & MREMAP_FIXED:
        do_vmi_munmap(mm, na, na + new_len, st=st)
    if new_len < old_len:
        do_vmi_munmap(mm, addr + new_len, addr + old_len, st=st)
        old_len = new_len
    vma = find_vma(mm, addr)
    if vma is None:
        # unmapping the target removed the source (old_size 0 with
        # new_addr == old_addr): the kernel fails here, target unmapped
        raise _error(errno.EFAULT, f"{addr:#x} was unmapped as the target")
    if flags & MREMAP_FIXED and na < mm.arch.mmap_min_addr:
        # vrm_set_new_addr: get_unmapped_area(MAP_FIXED) asks security_mmap_addr,
        # which refuses an unprivileged process (cap_mmap_addr), as mmap does
        raise _error(errno.EPERM, f"new_addr {na:#x} is below vm.mmap_min_addr")
    if not flags & MREMAP_FIXED:
        found = get_unmapped_area(mm, new_len, na, False)
        if found is None:
            raise _error(errno.ENOMEM, "no free range for the new mapping")
        na = found
    return move_vma(mm, vma, addr, old_len, new_len, na, flags, st)


def mremap_at(mm: MmStruct, vma: Vma, addr: int, old_len: int, new_len: int, flags: int,
              st: MoveStats) -> int:  # fmt: skip
    """mremap_at: shrink or grow in place, else move (MREMAP_MAYMOVE)."""
    if new_len == old_len:
        return addr
    if new_len < old_len:
        do_vmi_munmap(mm, addr + new_len, addr + old_len, st=st)
        return addr
    delta = new_len - old_len
    if (
        vma.end - addr == old_len
        and vma.end + delta <= mm.arch.task_size
        and is_free(mm, vma.end, vma.end + delta)
    ):
        # expand_vma_in_place (vma_merge_extend)
        old_end = vma.end
        vma.end += delta
        merge_around(mm, old_end, vma.end)
        return addr
    if not flags & MREMAP_MAYMOVE:
        raise _error(errno.ENOMEM, "cannot grow in place and MREMAP_MAYMOVE is off")
    thp_align = vma.anonymous and new_len % mm.arch.pmd_size == 0
    found = get_unmapped_area(mm, new_len, 0, thp_align)
    if found is None:
        raise _error(errno.ENOMEM, "no free range for the moved mapping")
    return move_vma(mm, vma, addr, old_len, new_len, found, flags, st)


def move_vma(mm: MmStruct, vma: Vma, addr: int, old_len: int, new_len: int, new_addr: int,
             flags: int, st: MoveStats) -> int:  # fmt: skip
    """move_vma: copy_vma, move_page_tables, then unmap the source."""
    new = vma.copy()
    new.start, new.end = new_addr, new_addr + new_len
    new.pgoff = vma.pgoff_at(addr, mm.page_shift)
    if vma.anonymous and vma.anon_vma is None:
        new.pgoff = new_addr >> mm.page_shift  # copy_vma: unfaulted anon
    insert_vma(mm, new)
    new_vma = find_vma(mm, new_addr)
    assert new_vma is not None
    merged = new_vma.start != new_addr or new_vma.end != new_addr + new_len
    dontunmap = bool(flags & MREMAP_DONTUNMAP)
    free_lo = free_hi = 0
    if not dontunmap and mm.page_table_limit is None:
        # under a limit the old tables stay until the end, so that a
        # failed move can always move its entries back (as the kernel)
        free_lo, free_hi = free_window(mm, addr, addr + old_len)
    mm.pmc.start(addr, new_addr, old_len, need_rmap_locks=merged and new_vma.pgoff <= vma.pgoff,
                  has_anon=vma.anon_vma is not None, caller=mm.cpu, free_lo=free_lo,
                  free_hi=free_hi,
                  uffd_no_table_moves=_uffd_without_remap(mm, vma, new_vma),
                  has_file=vma.file is not None)  # fmt: skip
    if vma.start == addr and new_vma.start == new_addr:
        _try_realign(mm, st)
    moved, freed_n = _move_page_tables(mm, st)
    if moved < old_len:
        # copy_vma_and_data's error path: move back, unmap the new range
        _move_back(mm, new_addr, addr, moved, vma.anon_vma is not None, vma.file is not None)
        do_vmi_munmap(mm, new_addr, new_addr + new_len)
        raise _error(errno.ENOMEM, "out of memory for page tables")
    if new_vma.uffd:
        mremap_userfaultfd_prep(mm, new_vma, addr, new_addr, old_len)
        merge_around(mm, new_vma.start, new_vma.end)
    if dontunmap:
        src = find_vma(mm, addr)
        if src is not None and src.start == addr and src.end == addr + old_len and not src.shared:
            # dontunmap_complete: unlink_anon_vmas (a private file VMA's too:
            # its copies moved; the source refaults from the page cache)
            src.anon_vma = None
            merge_around(mm, src.start, src.end)
    elif old_len:
        freed = _freed_early(mm, freed_n, addr, old_len, free_lo, free_hi)
        do_vmi_munmap(mm, addr, addr + old_len, freed, st)
    return new_addr


def _freed_early(mm: MmStruct, n: int, addr: int, length: int, free_lo: int,
                 free_hi: int) -> Freed | None:  # fmt: skip
    """What the kernel's free_pgtables would record of the ``n`` PTE tables
    the engine released during the move (it frees the old range's emptied
    tables at once, to keep one copy of the tables in memory): from the
    first to the last table span of [addr, addr + length) inside
    [free_lo, free_hi), at PMD stride."""
    if n <= 0:
        return None
    pmd = mm.arch.pmd_size
    first = max(addr & ~(pmd - 1), (free_lo + pmd - 1) & ~(pmd - 1))
    last = min((addr + length - 1) & ~(pmd - 1), (free_hi & ~(pmd - 1)) - pmd)
    return first, last + mm.page_size, pmd.bit_length() - 1


def _uffd_without_remap(mm: MmStruct, old: Vma, new: Vma) -> bool:
    """!uffd_supports_page_table_move(): the policy checks it and either VMA
    has a userfaultfd without UFFD_FEATURE_EVENT_REMAP."""
    return mm.policy.uffd_table_move_check and (
        vma_has_uffd_without_event_remap(mm, old) or vma_has_uffd_without_event_remap(mm, new)
    )


def _try_realign(mm: MmStruct, st: MoveStats) -> None:
    """try_realign_addr for a move whose old and new VMAs start at the
    control's addresses (the engine applies the rule)."""
    pmc = mm.pmc
    old, new = pmc.old_addr, pmc.new_addr
    if old & mm.pmd_mask:  # aligned moves, most of them, need no VMA lookup
        if pmc.try_realign_addr(old, prev_end(mm, old), new, prev_end(mm, new)):
            st.realigned = True


def _move_page_tables(mm: MmStruct, st: MoveStats) -> tuple[int, int]:
    """move_page_tables with ``mm.pmc`` set up; adds its record to ``st``
    and returns the bytes it moved and the PTE tables it freed early."""
    moved, rec, trace = _move.move_page_tables(mm.tables, mm.tlbs, mm.pmc, mm.trace_moves)
    st.add(rec, trace)
    st.moved_bytes += moved
    return int(moved), rec.item(_FREED_EARLY)


def _move_back(mm: MmStruct, old: int, new: int, length: int, has_anon: bool,
               has_file: bool) -> None:  # fmt: skip
    """The reverse move_page_tables of a failed move (need_rmap_locks, no
    early freeing); its counters are not the call's."""
    mm.pmc.start(old, new, length, need_rmap_locks=True, has_anon=has_anon, caller=mm.cpu,
                  has_file=has_file)  # fmt: skip
    _move.move_page_tables(mm.tables, mm.tlbs, mm.pmc)
