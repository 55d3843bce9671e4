"""mmap(2) and munmap(2) (mm/mmap.c ``do_mmap``, ``__vm_munmap``).

Anonymous memory only: private (its pages faulted in on first touch) or
shared (a shmem object behind it). Every argument is checked before
anything changes; MAP_FIXED unmaps what lies in the way first.
"""

from __future__ import annotations

import errno

from .argcheck import U64, as_uint, sys_error
from .constants import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_SYNC,
    MAP_TYPE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)
from .memory import populate_vma
from .mm_types import MmStruct, Shm, Vma
from .vma import do_vmi_munmap, find_vma, get_unmapped_area, insert_vma, is_free

__all__ = ["do_mmap", "vm_munmap"]

_UNSUPPORTED_MAP = {
    MAP_GROWSDOWN: "MAP_GROWSDOWN (stack VMAs)",
    MAP_LOCKED: "MAP_LOCKED (mlock)",
    MAP_HUGETLB: "MAP_HUGETLB (hugetlbfs)",
}


def do_mmap(mm: MmStruct, length: int, addr: int | None, prot: int, flags: int) -> int:
    """mmap(2) of anonymous memory on ``mm``; returns the address.

    Raises OSError with Linux's errno: EINVAL (zero length, bad flags,
    unaligned MAP_FIXED address), ENOMEM (no room, too many mappings),
    EEXIST (MAP_FIXED_NOREPLACE over a mapping), EPERM (below
    mmap_min_addr).
    """
    call = "mmap"
    length = as_uint("length", length, call)
    hint = 0 if addr is None else as_uint("addr", addr, call)
    prot = as_uint("prot", prot, call)
    flags = as_uint("flags", flags, call)
    a = mm.arch
    if length == 0:
        raise sys_error(errno.EINVAL, call, "length must be > 0")
    mtype = flags & MAP_TYPE
    if mtype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise sys_error(
            errno.EINVAL,
            call,
            "flags must include exactly one of MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE",
        )
    if not flags & MAP_ANONYMOUS:
        raise sys_error(
            errno.EBADF, call, "pagetab maps anonymous memory only: flags need MAP_ANONYMOUS"
        )
    for bit, what in _UNSUPPORTED_MAP.items():
        if flags & bit:
            raise NotImplementedError(f"{call}: {what} is not simulated")
    if mtype == MAP_SHARED_VALIDATE and flags & MAP_SYNC:
        raise sys_error(errno.EOPNOTSUPP, call, "MAP_SYNC needs a DAX file")
    shared = mtype != MAP_PRIVATE
    prot &= PROT_READ | PROT_WRITE | PROT_EXEC
    plen = mm.page_align(length)
    if plen >= U64 or plen > a.task_size:
        raise sys_error(errno.ENOMEM, call, f"length {length:#x} exceeds the address space")
    fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
    if len(mm.vmas) > mm.max_map_count:
        raise sys_error(errno.ENOMEM, call, "vm.max_map_count reached")
    if fixed:
        if not mm.page_aligned(hint):
            raise sys_error(errno.EINVAL, call, f"MAP_FIXED addr {hint:#x} is not aligned")
        if hint > a.task_size - plen:
            raise sys_error(errno.ENOMEM, call, "range is outside the address space")
        if hint < a.mmap_min_addr:
            raise sys_error(errno.EPERM, call, "addr is below vm.mmap_min_addr")
        if flags & MAP_FIXED_NOREPLACE and not is_free(mm, hint, hint + plen):
            raise sys_error(errno.EEXIST, call, "MAP_FIXED_NOREPLACE range is mapped")
        start = hint
    else:
        hint &= ~(mm.page_size - 1)
        if hint and hint < a.mmap_min_addr:
            hint = mm.page_align(a.mmap_min_addr)
        thp_align = not shared and hint == 0 and plen % a.pmd_size == 0
        found = get_unmapped_area(mm, plen, hint, thp_align)
        if found is None:
            raise sys_error(errno.ENOMEM, call, "no free range large enough")
        start = found
    end = start + plen
    if fixed:
        do_vmi_munmap(mm, start, end)
    if shared:
        v = Vma(start, end, prot, True, pgoff=0, shm=Shm(plen >> mm.page_shift))
    else:
        v = Vma(start, end, prot, False, pgoff=start >> mm.page_shift)
    insert_vma(mm, v)
    if flags & MAP_POPULATE and prot & (PROT_READ | PROT_WRITE):
        # mm_populate: write faults for private writable mappings; its
        # errors are ignored, as Linux ignores them
        vma = find_vma(mm, start)
        assert vma is not None
        populate_vma(mm, vma, start, end, bool(prot & PROT_WRITE) and not shared)
    return start


def vm_munmap(mm: MmStruct, addr: int, length: int) -> None:
    """munmap(2): unmap [addr, addr + length); frees emptied page tables."""
    call = "munmap"
    addr = as_uint("addr", addr, call)
    length = as_uint("length", length, call)
    if not mm.page_aligned(addr):
        raise sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
    if length == 0:
        raise sys_error(errno.EINVAL, call, "length must be > 0")
    plen = mm.page_align(length)
    if plen > mm.arch.task_size or addr > mm.arch.task_size - plen:
        raise sys_error(errno.EINVAL, call, "range is outside the address space")
    do_vmi_munmap(mm, addr, addr + plen)
