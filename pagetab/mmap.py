"""mmap(2) and munmap(2) (mm/mmap.c ``do_mmap``, ``__vm_munmap``).

Anonymous memory, private (its pages faulted in on first touch) or shared
(a shmem object behind it), and regular files (``mm_types.File``),
MAP_PRIVATE or MAP_SHARED, whose pages come from the file's page cache.
Every argument is checked before anything changes; MAP_FIXED unmaps what
lies in the way first.
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
    MAP_NORESERVE,
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
from .mm_types import VM_ACCOUNT, VM_NORESERVE, File, MmStruct, Shm, Vma
from .vma import do_vmi_munmap, find_vma, get_unmapped_area, insert_vma, is_free

__all__ = ["do_mmap", "vm_munmap"]

#: include/linux/fs.h MAX_LFS_FILESIZE on 64-bit: LLONG_MAX
_MAX_LFS_FILESIZE = (1 << 63) - 1

_UNSUPPORTED_MAP = {
    MAP_GROWSDOWN: "MAP_GROWSDOWN (stack VMAs)",
    MAP_LOCKED: "MAP_LOCKED (mlock)",
    MAP_HUGETLB: "MAP_HUGETLB (hugetlbfs)",
}


def do_mmap(mm: MmStruct, length: int, addr: int | None, prot: int, flags: int,
            file: File | None = None, offset: int = 0) -> int:  # fmt: skip
    """mmap(2) on ``mm`` of anonymous memory, or of ``file`` from byte
    ``offset`` on (flags without MAP_ANONYMOUS); returns the address.

    Raises OSError with Linux's errno: EINVAL (zero length, bad flags,
    unaligned MAP_FIXED address, unaligned offset), EBADF (no file without
    MAP_ANONYMOUS), EACCES (MAP_SHARED with PROT_WRITE of a read-only
    file), EOVERFLOW (offset + length past the largest page offset),
    ENOMEM (no room, too many mappings), EEXIST (MAP_FIXED_NOREPLACE over
    a mapping), EPERM (below mmap_min_addr).
    """
    call = "mmap"
    length = as_uint("length", length, call)
    hint = 0 if addr is None else as_uint("addr", addr, call)
    prot = as_uint("prot", prot, call)
    flags = as_uint("flags", flags, call)
    offset = as_uint("offset", offset, call)
    if file is not None and not isinstance(file, File):
        raise TypeError(f"{call}: file must be a pagetab File, not {type(file).__name__}")
    if file is not None and flags & MAP_ANONYMOUS:
        # the kernel ignores fd with MAP_ANONYMOUS; a File given with it is a mistake
        raise ValueError(f"{call}: a file mapping takes flags without MAP_ANONYMOUS")
    a = mm.arch
    if offset & (mm.page_size - 1):
        # the mmap system call (ksys_mmap_pgoff's callers): offset_in_page
        raise sys_error(errno.EINVAL, call, f"offset {offset:#x} is not page aligned")
    if length == 0:
        raise sys_error(errno.EINVAL, call, "length must be > 0")
    mtype = flags & MAP_TYPE
    if mtype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise sys_error(
            errno.EINVAL,
            call,
            "flags must include exactly one of MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE",
        )
    if not flags & MAP_ANONYMOUS and file is None:
        # ksys_mmap_pgoff: fget(fd) fails
        raise sys_error(errno.EBADF, call, "no file to map: give file= or flags with MAP_ANONYMOUS")
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
    pgoff = offset >> mm.page_shift
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
        # __get_unmapped_area: THP alignment for anonymous memory (a file's
        # own get_unmapped_area is not simulated)
        thp_align = not shared and file is None and hint == 0 and plen % a.pmd_size == 0
        found = get_unmapped_area(mm, plen, hint, thp_align)
        if found is None:
            raise sys_error(errno.ENOMEM, call, "no free range large enough")
        start = found
    end = start + plen
    if file is not None:
        # do_mmap checks the file after choosing the address (its errors
        # come after ENOMEM, EPERM and EEXIST), before anything changes
        if offset >= _MAX_LFS_FILESIZE or plen > _MAX_LFS_FILESIZE - offset:
            # file_mmap_ok: a regular file's offsets end at MAX_LFS_FILESIZE
            raise sys_error(errno.EOVERFLOW, call, "offset + length past the largest file offset")
        if shared and prot & PROT_WRITE and not file.writable:
            # MAP_SHARED: PROT_WRITE needs FMODE_WRITE
            raise sys_error(errno.EACCES, call, f"file {file.name!r} is not open for writing")
        # ValueError if another space holds it; binding it here changes nothing visible
        file.attach(mm.tables, mm.page_shift)
    if fixed:
        do_vmi_munmap(mm, start, end)
    # VM_NORESERVE for MAP_NORESERVE (overcommit not "never"); VM_ACCOUNT
    # for a private writable mapping without it (do_mmap, accountable_mapping)
    vm_flags = VM_NORESERVE if flags & MAP_NORESERVE else 0
    if not shared and prot & PROT_WRITE and not vm_flags:
        vm_flags |= VM_ACCOUNT
    if file is not None:
        v = Vma(start, end, prot, shared, vm_flags, pgoff=pgoff, file=file)
    elif shared:
        v = Vma(start, end, prot, True, vm_flags, pgoff=0, shm=Shm(plen >> mm.page_shift))
    else:
        v = Vma(start, end, prot, False, vm_flags, pgoff=start >> mm.page_shift)
    insert_vma(mm, v)
    if flags & MAP_POPULATE and prot & (PROT_READ | PROT_WRITE):
        # mm_populate: write faults for private writable mappings (of a
        # file too: each page copied, as populate_vma_page_range asks
        # FOLL_WRITE when VM_WRITE without VM_SHARED); its errors are
        # ignored, as Linux ignores them (pages past a file's end stay
        # unmapped)
        vma = find_vma(mm, start)
        assert vma is not None
        stop = end if vma.file is None else min(end, vma.object_end(mm.page_shift))
        if stop > start:
            populate_vma(mm, vma, start, stop, bool(prot & PROT_WRITE) and not shared)
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
