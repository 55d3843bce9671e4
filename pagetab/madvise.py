"""madvise(2) (mm/madvise.c ``do_madvise``): MADV_POPULATE_READ/WRITE,
MADV_HUGEPAGE/NOHUGEPAGE and MADV_DONTNEED; other advice raises
NotImplementedError."""

from __future__ import annotations

import errno

from .argcheck import U64, as_uint, sys_error
from .constants import (
    MADV_DONTNEED,
    MADV_HUGEPAGE,
    MADV_NAMES,
    MADV_NOHUGEPAGE,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
)
from .memory import faultin_range
from .mm_types import VM_HUGEPAGE, VM_NOHUGEPAGE, MmStruct
from .vma import merge_around, overlapping, split_vma, walk_ptes

__all__ = ["do_madvise"]

_SUPPORTED = (MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_READ,
              MADV_POPULATE_WRITE)  # fmt: skip


def do_madvise(mm: MmStruct, addr: int, length: int, advice: int) -> None:
    """madvise(2) on ``mm`` (see the module docstring). ENOMEM when part of
    the range is unmapped, after advising the rest, as Linux does."""
    call = "madvise"
    addr = as_uint("addr", addr, call)
    length = as_uint("length", length, call)
    advice = as_uint("advice", advice, call)
    if advice not in _SUPPORTED:
        if advice in MADV_NAMES:
            raise NotImplementedError(f"{call}: {MADV_NAMES[advice]} is not simulated")
        raise sys_error(errno.EINVAL, call, f"unknown advice {advice}")
    if not mm.page_aligned(addr):
        raise sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
    end = addr + mm.page_align(length)
    if end >= U64:
        raise sys_error(errno.EINVAL, call, "range wraps around")
    if length == 0:
        return
    if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
        faultin_range(mm, addr, end, advice == MADV_POPULATE_WRITE)
        return
    covered = 0
    if advice == MADV_DONTNEED:
        reclaim = mm.policy.pt_reclaim and mm.arch.supports_pt_reclaim
        for v in list(overlapping(mm, addr, end)):
            s, e = max(v.start, addr), min(v.end, end)
            zapped = walk_ptes(mm, mm.tables.zap, s, e)
            # zap_pte_range's reclaim of the tables it emptied whole
            # (CONFIG_PT_RECLAIM); their frees widen the gather's flush
            freed = mm.tables.reclaim_pt(s, e) if reclaim else None
            if zapped or freed is not None:
                lo, hi = (s, e) if freed is None else (min(s, freed[0]), max(e, freed[1]))
                mm.tlbs.flush_range(mm.cpu, lo, hi, mm.page_shift, freed is not None)
            covered += e - s
    else:
        split_vma(mm, addr)
        split_vma(mm, end)
        for v in list(overlapping(mm, addr, end)):
            if advice == MADV_HUGEPAGE:
                v.flags = (v.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE
            else:
                v.flags = (v.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE
            covered += v.end - v.start
        merge_around(mm, addr, end)
    if covered != end - addr:
        raise sys_error(errno.ENOMEM, call, "part of the range is not mapped")
