"""mprotect(2) (mm/mprotect.c ``do_mprotect_pkey``)."""

from __future__ import annotations

import errno

from .argcheck import U64, as_uint, sys_error
from .constants import PROT_EXEC, PROT_NONE, PROT_READ, PROT_WRITE
from .mm_types import VM_ACCOUNT, VM_NORESERVE, MmStruct
from .vma import find_vma, merge_around, overlapping, split_vma, walk_ptes

__all__ = ["do_mprotect_pkey"]


def do_mprotect_pkey(mm: MmStruct, addr: int, length: int, prot: int) -> None:
    """mprotect(2). ENOMEM if part of the range is unmapped; as in Linux,
    the VMAs before the first hole keep their new protection."""
    call = "mprotect"
    addr = as_uint("addr", addr, call)
    length = as_uint("length", length, call)
    prot = as_uint("prot", prot, call)
    if not mm.page_aligned(addr):
        raise sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        raise sys_error(
            errno.EINVAL, call, f"prot {prot:#x} has bits other than PROT_READ|WRITE|EXEC"
        )
    if length == 0:
        return
    end = addr + mm.page_align(length)
    if end >= U64 or end > mm.arch.task_size:
        raise sys_error(errno.ENOMEM, call, "range is outside the address space")
    first = find_vma(mm, addr)
    if first is None:
        raise sys_error(errno.ENOMEM, call, f"nothing is mapped at {addr:#x}")
    # apply up to the first hole, then report it
    reach = addr
    for v in overlapping(mm, addr, end):
        if v.start > reach:
            break
        reach = v.end
    stop = min(reach, end)
    denied = None
    if prot & PROT_WRITE:
        for v in overlapping(mm, addr, stop):
            if v.shared and v.file is not None and not v.file.writable:
                # no VM_MAYWRITE (do_mmap drops it for a shared mapping of a
                # file not open for writing): EACCES at this VMA, those
                # before it changed (do_mprotect_pkey's loop)
                denied = max(v.start, addr)
                stop = denied
                break
    split_vma(mm, addr)
    split_vma(mm, stop)
    for v in list(overlapping(mm, addr, stop)):
        # mprotect_fixup: a private mapping made writable is charged
        # (VM_ACCOUNT); one made read-only keeps its charge, unless it is
        # anonymous and never faulted (no anon_vma)
        if prot & PROT_WRITE:
            if not v.prot & PROT_WRITE and not v.shared \
                    and not v.flags & (VM_ACCOUNT | VM_NORESERVE):  # fmt: skip
                v.flags |= VM_ACCOUNT
        elif v.flags & VM_ACCOUNT and v.file is None and v.shm is None \
                and v.anon_vma is None:  # fmt: skip
            v.flags &= ~VM_ACCOUNT
        v.prot = prot
        # pages of shared memory become writable at once only when dirty;
        # so do those of a private file mapping (its own copies are dirty,
        # the page cache's pages stay read-only for COW)
        only_dirty = v.shared or v.file is not None
        if walk_ptes(mm, mm.tables.change_prot, v.start, v.end, prot != PROT_NONE,
                     bool(prot & PROT_WRITE), only_dirty):  # fmt: skip
            # change_protection flushes the range when it changed entries
            mm.tlbs.flush_range(mm.cpu, v.start, v.end)
    merge_around(mm, addr, stop)
    if denied is not None:
        raise sys_error(errno.EACCES, call, f"the file mapped at {denied:#x} is read-only")
    if stop < end:
        raise sys_error(errno.ENOMEM, call, f"range has a hole at {stop:#x}")
