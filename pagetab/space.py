"""AddressSpace: the simulated mm (DESIGN.md layer 6).

VMAs are kept here in Python (a sorted list; a process has few); every
per-entry operation is delegated to the Cython page-table store. Each
system call validates all of its arguments before it changes anything, so
an error leaves the space exactly as it was; where Linux itself stops part
way and keeps what it did (mprotect over a hole, MADV_POPULATE_* at the
first page it cannot fault, madvise over a hole), pagetab does the same.
"""

from __future__ import annotations

import bisect
import errno
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _tables
from .arch import Arch
from .arch import arch as _arch
from .constants import (
    DEFAULT_MAX_MAP_COUNT,
    MADV_DONTNEED,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
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
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    ZERO_FRAME,
)
from .vma import VM_HUGEPAGE, VM_NOHUGEPAGE, Shm, Vma, VmaInfo, can_merge, new_anon_vma

__all__ = ["AddressSpace", "InvariantError"]

THP_MODES = ("always", "madvise", "never")
_KNOWN_MADV = {
    0: "MADV_NORMAL",
    1: "MADV_RANDOM",
    2: "MADV_SEQUENTIAL",
    3: "MADV_WILLNEED",
    8: "MADV_FREE",
    9: "MADV_REMOVE",
    10: "MADV_DONTFORK",
    11: "MADV_DOFORK",
    12: "MADV_MERGEABLE",
    13: "MADV_UNMERGEABLE",
    16: "MADV_DONTDUMP",
    17: "MADV_DODUMP",
    18: "MADV_WIPEONFORK",
    19: "MADV_KEEPONFORK",
    20: "MADV_COLD",
    21: "MADV_PAGEOUT",
    24: "MADV_DONTNEED_LOCKED",
    25: "MADV_COLLAPSE",
}
_UNSUPPORTED_MAP = {
    MAP_GROWSDOWN: "MAP_GROWSDOWN (stack VMAs)",
    MAP_LOCKED: "MAP_LOCKED (mlock)",
    MAP_HUGETLB: "MAP_HUGETLB (hugetlbfs)",
}
U64 = 1 << 64


class InvariantError(AssertionError):
    """AddressSpace.check() found the simulated state inconsistent."""


def _sys_error(code: int, call: str, what: str) -> OSError:
    return OSError(code, f"{call}: {what}")


def as_uint(name: str, value: Any, call: str) -> int:
    """An unsigned long argument: TypeError for non-integers, ValueError if
    negative or wider than 64 bits."""
    if isinstance(value, bool):
        raise TypeError(f"{call}: {name} must be an int, not bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{call}: {name} must be an int, not {type(value).__name__}") from None
    if v < 0:
        raise ValueError(f"{call}: {name} must be >= 0, not {v}")
    if v >= U64:
        raise ValueError(f"{call}: {name} must fit in 64 bits, not {v:#x}")
    return v


class AddressSpace:
    """A simulated process address space (an mm_struct).

    Parameters
    ----------
    arch:
        An architecture profile name (see ``pagetab.archs()``) or an Arch.
    cpus:
        CPUs the process may run on (threads).
    thp:
        /sys/kernel/mm/transparent_hugepage/enabled: "always", "madvise"
        or "never". Shared anonymous memory follows shmem_enabled=never.
    max_map_count:
        vm.max_map_count.
    """

    def __init__(
        self,
        arch: str | Arch = "x86-64",
        cpus: int = 1,
        thp: str = "madvise",
        max_map_count: int = DEFAULT_MAX_MAP_COUNT,
    ) -> None:
        self.arch: Arch = _arch(arch)
        if isinstance(cpus, bool) or not isinstance(cpus, int):
            raise TypeError(f"cpus must be an int, not {type(cpus).__name__}")
        if not 1 <= cpus <= 4096:
            raise ValueError(f"cpus must be in 1..4096, not {cpus}")
        if thp not in THP_MODES:
            raise ValueError(f"thp must be one of {', '.join(THP_MODES)}, not {thp!r}")
        if isinstance(max_map_count, bool) or not isinstance(max_map_count, int):
            raise TypeError("max_map_count must be an int")
        if max_map_count < 1:
            raise ValueError(f"max_map_count must be >= 1, not {max_map_count}")
        self.cpus = cpus
        self.thp = thp
        self.max_map_count = max_map_count
        a = self.arch
        self.page_shift = a.page_shift
        self.page_size = a.page_size
        self.tables = _tables.PageTables(
            [lv.shift for lv in a.levels], [lv.entries for lv in a.levels]
        )
        self._vmas: list[Vma] = []

    # ------------------------------------------------------------------
    # helpers

    def _page_align(self, n: int) -> int:
        return (n + self.page_size - 1) & ~(self.page_size - 1)

    def _aligned(self, n: int) -> bool:
        return n & (self.page_size - 1) == 0

    def _index_after(self, addr: int) -> int:
        """Index of the first VMA whose end is > addr (find_vma)."""
        lo, hi = 0, len(self._vmas)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._vmas[mid].end <= addr:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find_vma(self, addr: int) -> Vma | None:
        """The VMA containing ``addr``, or None."""
        i = self._index_after(addr)
        if i < len(self._vmas) and self._vmas[i].start <= addr:
            return self._vmas[i]
        return None

    def _overlapping(self, start: int, end: int) -> Iterator[Vma]:
        i = self._index_after(start)
        while i < len(self._vmas) and self._vmas[i].start < end:
            yield self._vmas[i]
            i += 1

    def _is_free(self, start: int, end: int) -> bool:
        return next(self._overlapping(start, end), None) is None

    def _split(self, addr: int) -> None:
        """__split_vma at ``addr`` if a VMA straddles it (splits a THP there too)."""
        i = self._index_after(addr)
        if i == len(self._vmas):
            return
        v = self._vmas[i]
        if not v.start < addr < v.end:
            return
        if not self.tables.split_at(addr):
            raise MemoryError("cannot split a huge page: page-table memory exhausted")
        hi = v.copy()
        hi.pgoff = v.pgoff_at(addr, self.page_shift)
        hi.start = addr
        v.end = addr
        self._vmas.insert(i + 1, hi)

    def _merge_around(self, start: int, end: int) -> None:
        """Merge mergeable neighbours among the VMAs touching [start, end]."""
        i = max(self._index_after(start) - 1, 0)
        while i + 1 < len(self._vmas) and self._vmas[i].start <= end:
            a, b = self._vmas[i], self._vmas[i + 1]
            if can_merge(a, b, self.page_shift):
                a.end = b.end
                if a.anon_vma is None:
                    a.anon_vma = b.anon_vma
                del self._vmas[i + 1]
            else:
                i += 1

    def _insert(self, v: Vma) -> None:
        i = bisect.bisect_left([x.start for x in self._vmas], v.start)
        self._vmas.insert(i, v)
        self._merge_around(v.start, v.end)

    def _thp_window(self, v: Vma) -> tuple[int, int]:
        """The range where faults may install PMD THPs (thp_vma_allowable_order)."""
        if v.shared or self.thp == "never" or v.flags & VM_NOHUGEPAGE:
            return 0, 0
        if self.thp == "madvise" and not v.flags & VM_HUGEPAGE:
            return 0, 0
        return v.start, v.end

    def _populate_vma(self, v: Vma, start: int, end: int, write: bool) -> int:
        """Fault in [start, end) of ``v``. Returns the address reached."""
        lo, hi = self._thp_window(v)
        if v.shared:
            assert v.shm is not None
            reached, _ = self.tables.populate(
                start,
                end,
                _tables.POP_SHARED,
                bool(v.prot & PROT_READ),
                bool(v.prot & PROT_WRITE) and write,
                0,
                0,
                v.shm.frames,
                v.pgoff_at(start, self.page_shift),
            )
            return int(reached)
        pmd = self.arch.pmd_size
        block = start & ~(pmd - 1)
        if block < lo:
            block += pmd
        touches_thp = hi > lo and block < end and block + pmd <= hi
        if v.anon_vma is None and (write or touches_thp):
            v.anon_vma = new_anon_vma()  # anon_vma_prepare on the first anon fault
        mode = _tables.POP_WRITE if write else _tables.POP_READ
        reached, _ = self.tables.populate(
            start, end, mode, bool(v.prot & PROT_READ), bool(v.prot & PROT_WRITE), lo, hi
        )
        return int(reached)

    def _unmap_range(self, start: int, end: int) -> None:
        """do_vmi_munmap on an aligned, validated range: split, zap, free tables."""
        self._split(start)
        self._split(end)
        i = self._index_after(start)
        j = i
        while j < len(self._vmas) and self._vmas[j].start < end:
            j += 1
        if i == j:
            return
        first, last = self._vmas[i].start, self._vmas[j - 1].end
        del self._vmas[i:j]
        floor = self._vmas[i - 1].end if i > 0 else 0
        ceiling = self._vmas[i].start if i < len(self._vmas) else 0
        self.tables.zap(first, last)
        self.tables.free_pgtables(first, last, floor, ceiling)

    # ------------------------------------------------------------------
    # address selection (mm/mmap.c, arch_get_unmapped_area_topdown)

    def _topdown(self, length: int, high: int, align: int = 0) -> int | None:
        """unmapped_area_topdown: the highest gap below ``high`` fitting
        ``length``; returns its top - length, or None."""
        low = max(self.arch.mmap_min_addr, self.page_size)
        gap_end = high
        for v in reversed(self._vmas):
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

    def _bottomup(self, length: int, high: int) -> int | None:
        addr = max(self.arch.mmap_min_addr, self.page_size)
        for v in self._vmas:
            if v.start >= addr + length:
                break
            addr = max(addr, v.end)
        return addr if addr + length <= high else None

    def get_unmapped_area(self, length: int, hint: int, thp_align: bool) -> int | None:
        """Where a non-fixed mapping of ``length`` goes (None: no room)."""
        a = self.arch
        mmap_end = a.task_size if hint > a.map_window else a.map_window
        if hint:
            if (
                hint + length <= mmap_end
                and hint >= a.mmap_min_addr
                and self._is_free(hint, hint + length)
            ):
                return hint
        base = a.mmap_base if mmap_end == a.map_window else mmap_end - a.stack_gap
        if thp_align:
            # __thp_get_unmapped_area: search for len + PMD_SIZE, then align
            pmd = a.pmd_size
            ret = self._topdown(length + pmd, base) or self._bottomup(length + pmd, mmap_end)
            if ret is not None:
                off_sub = (-ret) & (pmd - 1)
                return ret + pmd if off_sub == 0 else ret + off_sub
        ret = self._topdown(length, base)
        if ret is None:
            ret = self._bottomup(length, mmap_end)
        return ret

    # ------------------------------------------------------------------
    # system calls

    def mmap(
        self,
        length: int,
        addr: int | None = None,
        prot: int = PROT_READ | PROT_WRITE,
        flags: int = MAP_PRIVATE | MAP_ANONYMOUS,
    ) -> int:
        """mmap(2) of anonymous memory; returns the address.

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
        a = self.arch
        if length == 0:
            raise _sys_error(errno.EINVAL, call, "length must be > 0")
        mtype = flags & MAP_TYPE
        if mtype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
            raise _sys_error(
                errno.EINVAL,
                call,
                "flags must include exactly one of MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE",
            )
        if not flags & MAP_ANONYMOUS:
            raise _sys_error(
                errno.EBADF, call, "pagetab maps anonymous memory only: flags need MAP_ANONYMOUS"
            )
        for bit, what in _UNSUPPORTED_MAP.items():
            if flags & bit:
                raise NotImplementedError(f"{call}: {what} is not simulated")
        if mtype == MAP_SHARED_VALIDATE and flags & MAP_SYNC:
            raise _sys_error(errno.EOPNOTSUPP, call, "MAP_SYNC needs a DAX file")
        shared = mtype != MAP_PRIVATE
        prot &= PROT_READ | PROT_WRITE | PROT_EXEC
        plen = self._page_align(length)
        if plen >= U64 or plen > a.task_size:
            raise _sys_error(errno.ENOMEM, call, f"length {length:#x} exceeds the address space")
        fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
        if len(self._vmas) > self.max_map_count:
            raise _sys_error(errno.ENOMEM, call, "vm.max_map_count reached")
        if fixed:
            if not self._aligned(hint):
                raise _sys_error(errno.EINVAL, call, f"MAP_FIXED addr {hint:#x} is not aligned")
            if hint > a.task_size - plen:
                raise _sys_error(errno.ENOMEM, call, "range is outside the address space")
            if hint < a.mmap_min_addr:
                raise _sys_error(errno.EPERM, call, "addr is below vm.mmap_min_addr")
            if flags & MAP_FIXED_NOREPLACE and not self._is_free(hint, hint + plen):
                raise _sys_error(errno.EEXIST, call, "MAP_FIXED_NOREPLACE range is mapped")
            start = hint
        else:
            hint &= ~(self.page_size - 1)
            if hint and hint < a.mmap_min_addr:
                hint = self._page_align(a.mmap_min_addr)
            thp_align = not shared and hint == 0 and plen % a.pmd_size == 0
            found = self.get_unmapped_area(plen, hint, thp_align)
            if found is None:
                raise _sys_error(errno.ENOMEM, call, "no free range large enough")
            start = found
        end = start + plen
        if fixed:
            self._unmap_range(start, end)
        if shared:
            v = Vma(start, end, prot, True, pgoff=0, shm=Shm(plen >> self.page_shift))
        else:
            v = Vma(start, end, prot, False, pgoff=start >> self.page_shift)
        self._insert(v)
        if flags & MAP_POPULATE and prot & (PROT_READ | PROT_WRITE):
            # mm_populate: write faults for private writable mappings; its
            # errors are ignored, as Linux ignores them
            vma = self.find_vma(start)
            assert vma is not None
            self._populate_vma(vma, start, end, bool(prot & PROT_WRITE) and not shared)
        return start

    def munmap(self, addr: int, length: int) -> None:
        """munmap(2): unmap [addr, addr + length); frees emptied page tables."""
        call = "munmap"
        addr = as_uint("addr", addr, call)
        length = as_uint("length", length, call)
        if not self._aligned(addr):
            raise _sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
        if length == 0:
            raise _sys_error(errno.EINVAL, call, "length must be > 0")
        plen = self._page_align(length)
        if plen > self.arch.task_size or addr > self.arch.task_size - plen:
            raise _sys_error(errno.EINVAL, call, "range is outside the address space")
        self._unmap_range(addr, addr + plen)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2). ENOMEM if part of the range is unmapped; as in Linux,
        the VMAs before the first hole keep their new protection."""
        call = "mprotect"
        addr = as_uint("addr", addr, call)
        length = as_uint("length", length, call)
        prot = as_uint("prot", prot, call)
        if not self._aligned(addr):
            raise _sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
        if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
            raise _sys_error(
                errno.EINVAL, call, f"prot {prot:#x} has bits other than PROT_READ|WRITE|EXEC"
            )
        if length == 0:
            return
        end = addr + self._page_align(length)
        if end >= U64 or end > self.arch.task_size:
            raise _sys_error(errno.ENOMEM, call, "range is outside the address space")
        first = self.find_vma(addr)
        if first is None:
            raise _sys_error(errno.ENOMEM, call, f"nothing is mapped at {addr:#x}")
        # apply up to the first hole, then report it (do_mprotect_pkey)
        reach = addr
        for v in self._overlapping(addr, end):
            if v.start > reach:
                break
            reach = v.end
        stop = min(reach, end)
        self._split(addr)
        self._split(stop)
        for v in list(self._overlapping(addr, stop)):
            v.prot = prot
            self.tables.change_prot(
                v.start, v.end, prot != PROT_NONE, bool(prot & PROT_WRITE), v.shared
            )
        self._merge_around(addr, stop)
        if stop < end:
            raise _sys_error(errno.ENOMEM, call, f"range has a hole at {stop:#x}")

    def madvise(self, addr: int, length: int, advice: int) -> None:
        """madvise(2): MADV_POPULATE_READ/WRITE, MADV_HUGEPAGE/NOHUGEPAGE,
        MADV_DONTNEED. Other advice raises NotImplementedError."""
        call = "madvise"
        addr = as_uint("addr", addr, call)
        length = as_uint("length", length, call)
        advice = as_uint("advice", advice, call)
        supported = (
            MADV_DONTNEED,
            MADV_HUGEPAGE,
            MADV_NOHUGEPAGE,
            MADV_POPULATE_READ,
            MADV_POPULATE_WRITE,
        )
        if advice not in supported:
            if advice in _KNOWN_MADV:
                raise NotImplementedError(f"{call}: {_KNOWN_MADV[advice]} is not simulated")
            raise _sys_error(errno.EINVAL, call, f"unknown advice {advice}")
        if not self._aligned(addr):
            raise _sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
        end = addr + self._page_align(length)
        if end >= U64:
            raise _sys_error(errno.EINVAL, call, "range wraps around")
        if length == 0:
            return
        if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
            self._madvise_populate(addr, end, advice == MADV_POPULATE_WRITE)
            return
        covered = 0
        if advice == MADV_DONTNEED:
            for v in list(self._overlapping(addr, end)):
                s, e = max(v.start, addr), min(v.end, end)
                self.tables.zap(s, e)
                covered += e - s
        else:
            self._split(addr)
            self._split(end)
            for v in list(self._overlapping(addr, end)):
                if advice == MADV_HUGEPAGE:
                    v.flags = (v.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE
                else:
                    v.flags = (v.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE
                covered += v.end - v.start
            self._merge_around(addr, end)
        if covered != end - addr:
            raise _sys_error(errno.ENOMEM, call, "part of the range is not mapped")

    def _madvise_populate(self, addr: int, end: int, write: bool) -> None:
        call = "madvise"
        reach = addr
        while reach < end:
            v = self.find_vma(reach)
            if v is None:
                raise _sys_error(errno.ENOMEM, call, f"nothing is mapped at {reach:#x}")
            if v.prot == PROT_NONE or (write and not v.prot & PROT_WRITE):
                raise _sys_error(
                    errno.EFAULT, call, f"cannot {'write' if write else 'read'}-fault {reach:#x}"
                )
            stop = min(v.end, end)
            got = self._populate_vma(v, reach, stop, write)
            if got < stop:
                raise _sys_error(errno.ENOMEM, call, f"out of page-table memory at {got:#x}")
            reach = stop

    # ------------------------------------------------------------------
    # inspection

    def frames(self, addr: int, length: int) -> npt.NDArray[np.int64]:
        """Frame id per base page of [addr, addr + length): -1 not present,
        ZERO_FRAME for the zero page, else the frame id."""
        call = "frames"
        addr = as_uint("addr", addr, call)
        length = as_uint("length", length, call)
        if not self._aligned(addr) or not self._aligned(length):
            raise ValueError(f"{call}: addr and length must be multiples of {self.page_size}")
        if addr + length > self.arch.task_size:
            raise ValueError(f"{call}: range ends past the address space")
        result: npt.NDArray[np.int64] = self.tables.frames(addr, addr + length)
        return result

    def translate(self, addr: int) -> int | None:
        """Frame id mapping ``addr`` (ZERO_FRAME for the zero page), or None."""
        addr = as_uint("addr", addr, "translate")
        if addr >= self.arch.task_size:
            return None
        f = int(self.tables.translate(addr))
        return None if f < 0 else f

    def vmas(self) -> list[VmaInfo]:
        """Snapshots of the VMAs, in address order."""
        return [v.info() for v in self._vmas]

    @property
    def page_table_bytes(self) -> int:
        """Bytes of page tables below the pgd (the kernel's VmPTE)."""
        return int(self.tables.table_bytes)

    @property
    def rss_pages(self) -> int:
        """Base pages mapped (present), zero page included."""
        return sum(self.tables.count_mapped(v.start, v.end) for v in self._vmas)

    def check(self) -> None:
        """Verify every invariant; raise InvariantError listing what is wrong."""
        problems: list[str] = list(self.tables.check())
        ps = self.page_shift
        prev: Vma | None = None
        for v in self._vmas:
            if v.start >= v.end or not self._aligned(v.start) or not self._aligned(v.end):
                problems.append(f"bad VMA bounds {v.start:#x}-{v.end:#x}")
            if v.start < self.arch.mmap_min_addr or v.end > self.arch.task_size:
                problems.append(f"VMA {v.start:#x}-{v.end:#x} outside the address space")
            if prev is not None:
                if prev.end > v.start:
                    problems.append(f"VMAs overlap or are unsorted at {v.start:#x}")
                elif can_merge(prev, v, ps):
                    problems.append(f"VMAs at {prev.start:#x} and {v.start:#x} should be merged")
            if v.shared != (v.shm is not None):
                problems.append(f"VMA {v.start:#x}: shared flag and shm object disagree")
            prev = v
        total = self.tables.count_mapped(0, self.arch.task_size)
        inside = 0
        private: list[npt.NDArray[np.int64]] = []
        shm_frames: list[npt.NDArray[np.int64]] = []
        for v in self._vmas:
            f = self.tables.frames(v.start, v.end)
            inside += int(np.count_nonzero(f >= 0))
            if v.shared:
                assert v.shm is not None
                want = v.shm.frames[v.pgoff : v.pgoff + f.size]
                bad = (f >= 0) & (f != want)
                if want.size != f.size or bad.any():
                    problems.append(f"shared VMA {v.start:#x}: entries disagree with its object")
            else:
                private.append(f[f > ZERO_FRAME])
        seen_shm = {id(v.shm): v.shm for v in self._vmas if v.shm is not None}
        for s in seen_shm.values():
            assert s is not None
            shm_frames.append(s.frames[s.frames >= 0])
        if total != inside:
            problems.append(f"{total - inside} mapped pages lie outside every VMA")
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

    def __repr__(self) -> str:
        return (
            f"AddressSpace(arch={self.arch.name!r}, vmas={len(self._vmas)}, "
            f"page_table_bytes={self.page_table_bytes})"
        )
