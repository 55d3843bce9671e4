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
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _move, _tables, _tlb
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
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    ZERO_FRAME,
)
from .cost import access_cost
from .policy import Policy
from .policy import policy as _policy
from .stats import AccessStats, MoveStats
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
#: frames() answers at most this many pages at once (a 2 GiB array)
MAX_FRAMES = 1 << 28


def _make_tlbs(a: Arch, cpus: int) -> _tlb.Tlbs:
    """The per-CPU TLBs and flush rules of an arch profile."""
    classes = {"pte": 0, "pmd": 1, "pud": 2}
    arrays = [(t.level, t.sets, t.ways, sum(1 << classes[h] for h in t.holds))
              for t in a.tlb.arrays]  # fmt: skip
    shifts = [a.page_shift, a.pmd.shift, a.pud.shift]
    f = a.flush
    return _tlb.Tlbs(cpus, arrays, shifts, a.pmd.shift, a.tlb.pwc_entries, f.kind,
                     f.x86_ceiling, f.x86_invlpgb, f.arm_max_dvm_ops, f.arm_legacy_limit,
                     f.arm_range, f.ppc_tlbie_ceiling, f.ppc_tlbiel_ceiling, f.ppc_thp)  # fmt: skip


def _address_array(addrs: Any) -> npt.NDArray[np.uint64]:
    """A contiguous uint64 array of addresses; TypeError/ValueError otherwise."""
    if isinstance(addrs, (str, bytes)):
        raise TypeError("access: addrs must be an array of integer addresses")
    arr = np.asarray(addrs)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"access: addrs must be one-dimensional, not {arr.ndim}-D")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"access: addrs must hold integers, not {arr.dtype}")
    if arr.dtype.kind == "i" and (arr < 0).any():
        raise ValueError("access: addresses must be >= 0")
    return np.ascontiguousarray(arr, dtype=np.uint64)


def _registered_archs() -> list[str]:
    from .arch import archs

    return archs()


_VMA_START = operator.attrgetter("start")
_VMA_END = operator.attrgetter("end")


def _accumulate(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + int(v)


class InvariantError(AssertionError):
    """AddressSpace.check() found the simulated state inconsistent."""


def _sys_error(code: int, call: str, what: str) -> OSError:
    return OSError(code, f"{call}: {what}")


def as_uint(name: str, value: Any, call: str) -> int:
    """An unsigned long argument: TypeError for non-integers, ValueError if
    negative or wider than 64 bits."""
    if type(value) is int and 0 <= value < U64:
        return value  # the common case, checked first because mremap is hot
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
        CPUs of the machine (1..256), each with its own TLBs. A CPU joins
        mm_cpumask when it runs the process: CPU 0 (which makes the system
        calls) from the start, others at their first ``access``.
    thp:
        /sys/kernel/mm/transparent_hugepage/enabled: "always", "madvise"
        or "never". Shared anonymous memory follows shmem_enabled=never.
    max_map_count:
        vm.max_map_count.
    policy:
        How mremap moves page tables: a preset name (``pagetab.policies()``)
        or a ``Policy``. Can be changed between calls (``mm.policy = ...``).
    page_table_limit:
        Bytes of page tables (below the pgd) the space may use; an operation
        that needs more fails with OSError(ENOMEM) as the kernel's would,
        and a failed move puts back the entries it had moved.
    """

    def __init__(
        self,
        arch: str | Arch = "x86-64",
        cpus: int = 1,
        thp: str = "madvise",
        max_map_count: int = DEFAULT_MAX_MAP_COUNT,
        policy: str | Policy = "linux-6.8",
        page_table_limit: int | None = None,
    ) -> None:
        self.arch: Arch = _arch(arch)
        self.policy: Policy = _policy(policy)
        if isinstance(cpus, bool) or not isinstance(cpus, int):
            raise TypeError(f"cpus must be an int, not {type(cpus).__name__}")
        if not 1 <= cpus <= 256:
            raise ValueError(f"cpus must be in 1..256, not {cpus}")
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
        if page_table_limit is not None:
            if isinstance(page_table_limit, bool) or not isinstance(page_table_limit, int):
                raise TypeError("page_table_limit must be an int or None")
            if page_table_limit <= 0:
                raise ValueError(f"page_table_limit must be > 0, not {page_table_limit}")
            self.tables.limit_bytes = page_table_limit
        self.page_table_limit = page_table_limit
        self._vmas: list[Vma] = []
        self.last_move: MoveStats | None = None
        # tests turn this off to check the fast paths against the general ones
        self._fast_paths = True
        self._pmd_mask = a.pmd_size - 1
        # nearly all tables a move allocates are PTE tables
        self._pte_table_bytes = a.levels[-1].table_bytes
        self.tlbs = _make_tlbs(a, cpus)
        #: the CPU that makes system calls (it runs the process: in mm_cpumask)
        self.cpu = 0
        self.tlbs.set_cpu(0)

    # ------------------------------------------------------------------
    # helpers

    def _page_align(self, n: int) -> int:
        return (n + self.page_size - 1) & ~(self.page_size - 1)

    def _aligned(self, n: int) -> bool:
        return n & (self.page_size - 1) == 0

    def _index_after(self, addr: int) -> int:
        """Index of the first VMA whose end is > addr (find_vma)."""
        return bisect.bisect_right(self._vmas, addr, key=_VMA_END)

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
            self._merge_around(addr, addr)  # undo a split made just before
            raise _sys_error(errno.ENOMEM, "split", "no page-table memory to split a huge page")
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
        i = bisect.bisect_left(self._vmas, v.start, key=_VMA_START)
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
        if self._is_free(start, end):
            return
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
        self._zap_and_free(first, last, floor, ceiling)

    def _zap_and_free(self, start: int, end: int, floor: int, ceiling: int) -> None:
        """unmap_region on a range no VMA maps any more: zap it (flushing
        what was present), then free_pgtables within [floor, ceiling)."""
        if self.tables.zap(start, end):
            self._flush_tlb(start, end)
        self.tables.free_pgtables(start, end, floor, ceiling)

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
                if self.tables.zap(s, e):
                    self._flush_tlb(s, e)
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
                # __get_user_pages with FOLL_MADV_POPULATE: check_vma_flags
                # failing is EINVAL (EFAULT is kept for SIGBUS/SIGSEGV)
                raise _sys_error(
                    errno.EINVAL, call, f"cannot {'write' if write else 'read'}-fault {reach:#x}"
                )
            stop = min(v.end, end)
            if v.shm is not None:
                # pages past the end of the shmem object: SIGBUS, so EFAULT
                obj_end = v.object_end(self.page_shift)
                if reach >= obj_end:
                    raise _sys_error(errno.EFAULT, call, f"{reach:#x} is past the shared object")
                stop = min(stop, obj_end)
            got = self._populate_vma(v, reach, stop, write)
            if got < stop:
                raise _sys_error(errno.ENOMEM, call, f"out of page-table memory at {got:#x}")
            reach = stop

    # ------------------------------------------------------------------
    # mremap (mm/mremap.c)

    def mremap(
        self,
        old_addr: int,
        old_size: int,
        new_size: int,
        flags: int = 0,
        new_addr: int | None = None,
    ) -> int:
        """mremap(2): resize and/or move a mapping; returns the new address.

        Follows do_mremap as of Linux 6.17+: shrink in place; grow in place
        when the range ends at its VMA's end and the space after is free;
        otherwise move (needs MREMAP_MAYMOVE). MREMAP_FIXED unmaps whatever
        is at ``new_addr``; MREMAP_DONTUNMAP leaves the source mapped (empty
        for private memory). A pure MREMAP_FIXED move (old_size == new_size)
        may span several VMAs and gaps, which it keeps. ``old_size`` 0 on a
        shared mapping maps the same pages a second time. Page tables move
        under ``self.policy``; ``self.last_move`` records what it did.
        """
        call = "mremap"
        addr = as_uint("old_addr", old_addr, call)
        old_size = as_uint("old_size", old_size, call)
        new_size = as_uint("new_size", new_size, call)
        flags = as_uint("flags", flags, call)
        na = 0 if new_addr is None else as_uint("new_addr", new_addr, call)
        a = self.arch
        # check_mremap_params
        if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
            raise _sys_error(errno.EINVAL, call, f"unknown flags {flags:#x}")
        mask = self.page_size - 1
        if addr & mask:
            raise _sys_error(errno.EINVAL, call, f"old_addr {addr:#x} is not page aligned")
        old_len = ((old_size + mask) & ~mask) % U64
        new_len = ((new_size + mask) & ~mask) % U64
        if new_len == 0:
            raise _sys_error(errno.EINVAL, call, "new_size must be > 0")
        if new_len > a.task_size:
            raise _sys_error(errno.EINVAL, call, "new_size exceeds the address space")
        implies_new = bool(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))
        if implies_new:
            if na > a.task_size - new_len:
                raise _sys_error(errno.EINVAL, call, "new range is outside the address space")
            if na & mask:
                raise _sys_error(errno.EINVAL, call, f"new_addr {na:#x} is not page aligned")
            if not flags & MREMAP_MAYMOVE:
                raise _sys_error(
                    errno.EINVAL, call, "MREMAP_FIXED and MREMAP_DONTUNMAP need MREMAP_MAYMOVE"
                )
            if flags & MREMAP_DONTUNMAP and old_len != new_len:
                raise _sys_error(errno.EINVAL, call, "MREMAP_DONTUNMAP cannot resize")
            if addr + old_len > na and na + new_len > addr:
                raise _sys_error(errno.EINVAL, call, "old and new ranges overlap")
        # check_map_count_against_split_early (and prep_move_vma's check,
        # done here so that no error comes after a change)
        if len(self._vmas) + 4 > self.max_map_count:
            raise _sys_error(errno.ENOMEM, call, "too close to vm.max_map_count")
        t0 = time.perf_counter_ns()
        tables = self.tables
        before = tables.table_bytes
        freed0 = tables.freed_total
        st = MoveStats(a.name, self.policy.name, addr, addr, old_len, new_len,
                       page_table_bytes_before=before, profile=a)  # fmt: skip
        if (
            flags == MREMAP_MAYMOVE | MREMAP_FIXED
            and old_len == new_len
            and self._whole_vma_into_hole(addr, old_len, na)
        ):
            result = self._move_whole_vma(addr, old_len, na, st)
        elif flags & MREMAP_FIXED and old_len == new_len:
            result = self._remap_move(addr, old_len, na, flags, st)
        else:
            vma = self.find_vma(addr)
            if vma is None:
                raise _sys_error(errno.EFAULT, call, f"nothing is mapped at {addr:#x}")
            self._check_prep_vma(vma, addr, old_len, new_len, flags)
            if implies_new:
                result = self._mremap_to(addr, old_len, new_len, flags, na, st)
            else:
                result = self._mremap_at(vma, addr, old_len, new_len, flags, st)
        st.new_addr = result
        st.page_table_bytes_after = after = tables.table_bytes
        # the kernel frees no table during move_page_tables: its peak is the
        # start plus every table the move allocated
        st.peak_page_table_bytes = max(before + st.tables_allocated * self._pte_table_bytes, after)
        st.tables_freed = tables.freed_total - freed0
        st.wall_ns = time.perf_counter_ns() - t0
        self.last_move = st
        return result

    def _check_prep_vma(self, vma: Vma, addr: int, old_len: int, new_len: int,
                        flags: int) -> None:  # fmt: skip
        call = "mremap"
        expand = new_len > old_len
        if not expand and not flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
            return
        if old_len == 0 and not vma.shared:
            raise _sys_error(errno.EINVAL, call, "old_size 0 duplicates only shared mappings")
        span = new_len if new_len < old_len else old_len
        if span > vma.end - addr:
            raise _sys_error(errno.EFAULT, call, "range runs past the end of its mapping")

    def _whole_vma_into_hole(self, addr: int, length: int, new_addr: int) -> bool:
        """Whether [addr, addr + length) is exactly one VMA and the target
        range is free with no VMA touching it, so that nothing splits or
        merges: the common case _move_whole_vma takes without the general
        path's bookkeeping (same result; tests compare the two)."""
        if not self._fast_paths:
            return False
        vs = self._vmas
        i = self._index_after(addr)
        if i == len(vs) or vs[i].start != addr or vs[i].end != addr + length:
            return False
        j = self._index_after(new_addr)
        end = new_addr + length
        return (j == len(vs) or vs[j].start > end) and (j == 0 or vs[j - 1].end < new_addr)

    def _move_whole_vma(self, addr: int, length: int, new_addr: int, st: MoveStats) -> int:
        """move_vma of a whole VMA into a hole (see _whole_vma_into_hole):
        copy_vma cannot merge, so no rmap locks; then the source is unmapped.
        The Vma object itself moves, as nothing else refers to it."""
        vs = self._vmas
        i = self._index_after(addr)
        vma = vs[i]
        end, new_end = addr + length, new_addr + length
        # free_pgtables' floor and ceiling for the source once the new VMA
        # exists: the nearest VMA ends around it, the new one included
        floor = vs[i - 1].end if i > 0 else 0
        ceiling = vs[i + 1].start if i + 1 < len(vs) else 0
        if floor < new_end <= addr:
            floor = new_end
        if end <= new_addr and (ceiling == 0 or new_addr < ceiling):
            ceiling = new_addr
        old_start, new_start = self._realign(st, addr, new_addr, length)
        free_lo = free_hi = 0
        if self.page_table_limit is None:
            free_lo, free_hi = floor, ceiling or U64 - 1
        has_anon = vma.anon_vma is not None
        moved = self._move_counted(st, old_start, new_start, length, addr, False, has_anon,
                                   free_lo, free_hi)  # fmt: skip
        if moved < length:
            # copy_vma_and_data's error path: move back, free the new range's tables
            self._move_tables(new_addr, addr, moved, new_addr, True, has_anon, 0, 0)
            j = self._index_after(new_addr)
            self._zap_and_free(new_addr, new_end, vs[j - 1].end if j > 0 else 0,
                               vs[j].start if j < len(vs) else 0)  # fmt: skip
            raise _sys_error(errno.ENOMEM, "mremap", "out of memory for page tables")
        del vs[i]
        vma.start, vma.end = new_addr, new_end
        if not vma.shared and vma.anon_vma is None:
            vma.pgoff = new_addr >> self.page_shift  # copy_vma: unfaulted anon
        vs.insert(self._index_after(new_addr), vma)
        self._zap_and_free(addr, end, floor, ceiling)  # do_vmi_munmap of the source
        return new_addr

    def _remap_move(self, start: int, length: int, new_addr: int, flags: int,
                    st: MoveStats) -> int:  # fmt: skip
        """remap_move: a pure MREMAP_FIXED move over every VMA in the range,
        keeping the gaps between them."""
        end = start + length
        pieces = [(max(v.start, start), min(v.end, end)) for v in self._overlapping(start, end)]
        if not pieces or pieces[0][0] > start:
            raise _sys_error(errno.EFAULT, "mremap", f"nothing is mapped at {start:#x}")
        target = new_addr
        last_end = pieces[0][0]
        result = new_addr
        for i, (lo, hi) in enumerate(pieces):
            target += lo - last_end if i else 0
            last_end = hi
            got = self._mremap_to(lo, hi - lo, hi - lo, flags, target, st)
            if i == 0:
                result = got
            target = got + (hi - lo)
        return result

    def _mremap_to(self, addr: int, old_len: int, new_len: int, flags: int, na: int,
                   st: MoveStats) -> int:  # fmt: skip
        if flags & MREMAP_FIXED:
            self._unmap_range(na, na + new_len)
        if new_len < old_len:
            self._unmap_range(addr + new_len, addr + old_len)
            old_len = new_len
        vma = self.find_vma(addr)
        if vma is None:
            # mremap_to: unmapping the target removed the source (old_size 0
            # with new_addr == old_addr); the kernel fails here, target unmapped
            raise _sys_error(errno.EFAULT, "mremap", f"{addr:#x} was unmapped as the target")
        if not flags & MREMAP_FIXED:
            found = self.get_unmapped_area(new_len, na, False)
            if found is None:
                raise _sys_error(errno.ENOMEM, "mremap", "no free range for the new mapping")
            na = found
        return self._move_vma(vma, addr, old_len, new_len, na, flags, st)

    def _mremap_at(self, vma: Vma, addr: int, old_len: int, new_len: int, flags: int,
                   st: MoveStats) -> int:  # fmt: skip
        call = "mremap"
        if new_len == old_len:
            return addr
        if new_len < old_len:
            self._unmap_range(addr + new_len, addr + old_len)
            return addr
        delta = new_len - old_len
        if (
            vma.end - addr == old_len
            and vma.end + delta <= self.arch.task_size
            and self._is_free(vma.end, vma.end + delta)
        ):
            # expand_vma_in_place (vma_merge_extend)
            old_end = vma.end
            vma.end += delta
            self._merge_around(old_end, vma.end)
            return addr
        if not flags & MREMAP_MAYMOVE:
            raise _sys_error(errno.ENOMEM, call, "cannot grow in place and MREMAP_MAYMOVE is off")
        thp_align = not vma.shared and new_len % self.arch.pmd_size == 0
        found = self.get_unmapped_area(new_len, 0, thp_align)
        if found is None:
            raise _sys_error(errno.ENOMEM, call, "no free range for the moved mapping")
        return self._move_vma(vma, addr, old_len, new_len, found, flags, st)

    def _move_vma(self, vma: Vma, addr: int, old_len: int, new_len: int, new_addr: int,
                  flags: int, st: MoveStats) -> int:  # fmt: skip
        """move_vma: copy_vma, move_page_tables, then unmap the source."""
        new = vma.copy()
        new.start, new.end = new_addr, new_addr + new_len
        new.pgoff = vma.pgoff_at(addr, self.page_shift)
        if not vma.shared and vma.anon_vma is None:
            new.pgoff = new_addr >> self.page_shift  # copy_vma: unfaulted anon
        self._insert(new)
        new_vma = self.find_vma(new_addr)
        assert new_vma is not None
        merged = new_vma.start != new_addr or new_vma.end != new_addr + new_len
        need_rmap_locks = merged and new_vma.pgoff <= vma.pgoff
        old_start, new_start = addr, new_addr
        if vma.start == addr and new_vma.start == new_addr:
            old_start, new_start = self._realign(st, addr, new_addr, old_len)
        dontunmap = bool(flags & MREMAP_DONTUNMAP)
        free_lo = free_hi = 0
        if not dontunmap and self.page_table_limit is None:
            # under a limit the old tables stay until the end, so that a
            # failed move can always move its entries back (as the kernel)
            free_lo, free_hi = self._free_window(addr, addr + old_len)
        moved = self._move_counted(st, old_start, new_start, old_len, addr, need_rmap_locks,
                                   vma.anon_vma is not None, free_lo, free_hi)  # fmt: skip
        if moved < old_len:
            # copy_vma_and_data's error path: move back, unmap the new range
            self._move_tables(new_addr, addr, moved, new_addr, True,
                              vma.anon_vma is not None, 0, 0)  # fmt: skip
            self._unmap_range(new_addr, new_addr + new_len)
            raise _sys_error(errno.ENOMEM, "mremap", "out of memory for page tables")
        if dontunmap:
            src = self.find_vma(addr)
            if (
                src is not None
                and src.start == addr
                and src.end == addr + old_len
                and not src.shared
            ):
                src.anon_vma = None  # dontunmap_complete: unlink_anon_vmas
                self._merge_around(src.start, src.end)
        elif old_len:
            self._unmap_range(addr, addr + old_len)
        return new_addr

    def _move_tables(self, old: int, new: int, length: int, orig: int, need_rmap_locks: bool,
                     has_anon: bool, free_lo: int, free_hi: int) -> tuple[Any, ...]:  # fmt: skip
        """move_page_tables under this space's arch and policy."""
        a, pol = self.arch, self.policy
        return _move.move_page_tables(
            self.tables, old, new, length, orig, a.split_pte_lock, a.split_pmd_lock,
            pol.move_pmd, pol.move_pud, pol.flush, pol.dirty_flush_under_lock,
            pol.batch_pmd_lock, need_rmap_locks, has_anon, free_lo, free_hi, self.tlbs, self.cpu,
        )  # fmt: skip

    def _move_counted(self, st: MoveStats, old: int, new: int, length: int, orig: int,
                      need_rmap_locks: bool, has_anon: bool, free_lo: int,
                      free_hi: int) -> int:  # fmt: skip
        """_move_tables, its counters added to ``st``; the bytes it moved."""
        moved, counters, acquired, held, ops = self._move_tables(
            old, new, length, orig, need_rmap_locks, has_anon, free_lo, free_hi
        )
        st.add(counters, acquired, held, ops)
        st.moved_bytes += moved
        return int(moved)

    def _realign(self, st: MoveStats, addr: int, new_addr: int, length: int) -> tuple[int, int]:
        """try_realign_addr: the start addresses move_page_tables gets, the
        PMD below each when the policy realigns and can_realign_addr(PMD_MASK)
        holds for a move whose old and new VMAs start at the two addresses."""
        mask = self._pmd_mask
        old_align = addr & mask
        if (
            not old_align  # checked first: mremap is hot and most moves are aligned
            or not self.policy.realign
            or length < mask + 1 - old_align
            or old_align != new_addr & mask
            or not all(self._is_free(at & ~mask, at) for at in (addr, new_addr))
        ):
            return addr, new_addr
        st.realigned = True
        return addr & ~mask, new_addr & ~mask

    def _free_window(self, start: int, end: int) -> tuple[int, int]:
        """[floor, ceiling) that free_pgtables will use once [start, end) is
        unmapped: tables wholly inside may be released as soon as emptied."""
        vs = self._vmas
        i = self._index_after(start)  # the first VMA ending after start
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

    # ------------------------------------------------------------------
    # TLBs and accesses

    def _flush_tlb(self, start: int, end: int) -> None:
        """The flush that follows a zap or a protection change."""
        self.tlbs.flush_range(self.cpu, start, end)

    @property
    def mm_cpumask(self) -> list[int]:
        """The CPUs that have run this process."""
        return list(self.tlbs.cpumask())

    def access(self, addrs: Any, cpu: int = 0, write: bool = False) -> AccessStats:
        """Access each address of ``addrs`` from ``cpu`` (which joins mm_cpumask).

        Every access looks up that CPU's TLBs (L1, then the second level),
        walks the page tables on a miss, and takes page faults as the kernel
        would: the first touch populates (the zero page on reads, a fresh
        frame on writes, a THP where enabled), a write to the zero page
        copies it (and flushes the old translation). Accesses to unmapped or
        inaccessible addresses count as ``segv`` and are skipped.
        """
        if isinstance(cpu, bool) or not isinstance(cpu, int):
            raise TypeError(f"access: cpu must be an int, not {type(cpu).__name__}")
        if not 0 <= cpu < self.cpus:
            raise ValueError(f"access: cpu must be in 0..{self.cpus - 1}, not {cpu}")
        if not isinstance(write, bool):
            raise TypeError("access: write must be a bool")
        arr = _address_array(addrs)
        t0 = time.perf_counter_ns()
        table = self._vma_table()
        total: dict[str, int] = {}
        ops: dict[str, int] = {}
        i = 0
        n = int(arr.size)
        while True:
            stop, c, o = self.tlbs.access(self.tables, arr, cpu, write, table, i)
            _accumulate(total, c)
            _accumulate(ops, o)
            if stop < 0:
                raise MemoryError(f"access: out of page-table memory at {int(arr[-1 - stop]):#x}")
            if stop >= n:
                break
            # a fault in shared memory: shmem_fault, here in Python
            addr = int(arr[stop])
            v = self.find_vma(addr)
            assert v is not None and v.shm is not None
            page = addr & ~(self.page_size - 1)
            if page >= v.object_end(self.page_shift):
                total["segv"] = total.get("segv", 0) + 1  # SIGBUS past the object
                total["accesses"] = total.get("accesses", 0) + 1
                i = stop + 1
                continue
            if self._populate_vma(v, page, page + self.page_size, write) <= page:
                raise MemoryError(f"access: out of page-table memory at {addr:#x}")
            total["faults"] = total.get("faults", 0) + 1
            i = stop
        for idx in np.flatnonzero(table["touched"]):
            v = self._vmas[int(idx)]
            if v.anon_vma is None:
                v.anon_vma = new_anon_vma()
        ns, breakdown = access_cost(self.arch, total, ops)
        return AccessStats(cpu=cpu, write=write, flush_ops=ops, estimated_ns=ns,
                           breakdown=breakdown, wall_ns=time.perf_counter_ns() - t0,
                           **total)  # fmt: skip

    def _vma_table(self) -> dict[str, npt.NDArray[Any]]:
        """The VMAs as arrays for the C fault path."""
        vs = self._vmas
        windows = [self._thp_window(v) for v in vs]
        return {
            "start": np.array([v.start for v in vs], dtype=np.uint64),
            "end": np.array([v.end for v in vs], dtype=np.uint64),
            "prot": np.array([v.prot for v in vs], dtype=np.int64),
            "thp_lo": np.array([w[0] for w in windows], dtype=np.uint64),
            "thp_hi": np.array([w[1] for w in windows], dtype=np.uint64),
            "shared": np.array([v.shared for v in vs], dtype=np.int64),
            "touched": np.zeros(len(vs), dtype=np.uint8),
        }

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
        if length >> self.page_shift > MAX_FRAMES:
            raise ValueError(f"{call}: at most {MAX_FRAMES} pages per call; ask in pieces")
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

    def _populated_chunks(self, v: Vma) -> Iterator[tuple[int, npt.NDArray[np.int64]]]:
        """(start, frames) of the PUD-sized pieces of ``v`` that map anything:
        bounded memory however large the VMA."""
        step = self.arch.pud_size
        lo = v.start
        while lo < v.end:
            hi = min((lo & ~(step - 1)) + step, v.end)
            if self.tables.count_mapped(lo, hi):
                yield lo, self.tables.frames(lo, hi)
            lo = hi

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
            for lo, f in self._populated_chunks(v):
                inside += int(np.count_nonzero(f >= 0))
                if v.shared:
                    assert v.shm is not None
                    first = v.pgoff_at(lo, self.page_shift)
                    want = v.shm.frames[first : first + f.size]
                    beyond = f[want.size :]
                    bad = (f[: want.size] >= 0) & (f[: want.size] != want)
                    if bad.any() or (beyond >= 0).any():
                        problems.append(
                            f"shared VMA {v.start:#x}: entries disagree with its object"
                        )
                else:
                    private.append(f[f > ZERO_FRAME])
        seen_shm = {id(v.shm): v.shm for v in self._vmas if v.shm is not None}
        for s in seen_shm.values():
            assert s is not None
            shm_frames.append(s.frames[s.frames >= 0])
        if total != inside:
            problems.append(f"{total - inside} mapped pages lie outside every VMA")
        # the allocator hands out frames from next_frame on: one already
        # mapped there would be mapped twice by a later fault
        top = max((int(f.max()) for f in (*private, *shm_frames) if f.size), default=-1)
        if top >= self.tables.next_frame:
            problems.append(f"frame {top} is mapped but not below the next frame to allocate "
                            f"({self.tables.next_frame})")  # fmt: skip
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

    # ------------------------------------------------------------------
    # save and load

    SAVE_VERSION = 1

    def save(self, path: Any) -> None:
        """Write the whole simulated state to a numpy ``.npz`` file.

        Page tables, VMAs, shared-memory objects and frame numbering are
        saved exactly; TLBs are not (a loaded space starts with cold TLBs
        and CPU 0 in mm_cpumask). Only registered arch profiles and policy
        presets can be saved by name.
        """
        registered = _arch(self.arch.name) if self.arch.name in _registered_archs() else None
        if registered is None or registered != self.arch or registered.costs != self.arch.costs:
            raise NotImplementedError(f"save: arch {self.arch.name!r} is not a registered "
                                      "profile (custom profiles cannot be saved yet)")  # fmt: skip
        from .policy import policies as _policies
        from .policy import policy as _lookup

        if self.policy.name not in _policies() or _lookup(self.policy.name) != self.policy:
            raise NotImplementedError(f"save: policy {self.policy.name!r} is not a preset")
        shms = list({id(v.shm): v.shm for v in self._vmas if v.shm is not None}.values())
        index = {id(x): i for i, x in enumerate(shms)}
        vs = self._vmas
        meta = {"format": "pagetab", "version": self.SAVE_VERSION, "arch": self.arch.name,
                "policy": self.policy.name, "thp": self.thp, "cpus": self.cpus,
                "max_map_count": self.max_map_count, "page_table_limit": self.page_table_limit,
                "cpu": self.cpu}  # fmt: skip
        import json

        arrays: dict[str, Any] = {f"tables_{k}": v for k, v in self.tables.dump().items()}
        arrays["vma"] = np.array(
            [[v.start, v.end, v.prot, v.shared, v.flags, v.pgoff,
              -1 if v.anon_vma is None else v.anon_vma,
              -1 if v.shm is None else index[id(v.shm)]] for v in vs],
            dtype=np.int64).reshape(-1, 8)  # fmt: skip
        for i, x in enumerate(shms):
            arrays[f"shm{i}"] = x.frames
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Any) -> AddressSpace:
        """An AddressSpace from a file written by ``save``; ValueError if the
        file is not one, or is inconsistent."""
        import json
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ValueError(f"load: {path} is not a pagetab save file ({e})") from None
        try:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != "pagetab":
                raise ValueError("not a pagetab save file")
            if meta.get("version") != cls.SAVE_VERSION:
                raise ValueError(f"save format version {meta.get('version')} is not supported")
            mm = cls(meta["arch"], cpus=meta["cpus"], thp=meta["thp"],
                     max_map_count=meta["max_map_count"], policy=meta["policy"],
                     page_table_limit=meta["page_table_limit"])  # fmt: skip
            mm.tables.restore({k[len("tables_"):]: v for k, v in data.items()
                               if k.startswith("tables_")})  # fmt: skip
            shms: dict[int, Shm] = {}
            for row in np.asarray(data["vma"], dtype=np.int64).reshape(-1, 8).tolist():
                start, end, prot, shared, flags, pgoff, anon, shm = row
                obj = None
                if shm != -1:
                    if shm not in shms:
                        frames = np.asarray(data[f"shm{shm}"], dtype=np.int64)
                        shms[shm] = Shm(frames.size)
                        shms[shm].frames[:] = frames
                    obj = shms[shm]
                mm._vmas.append(Vma(start, end, prot, bool(shared), flags, pgoff,
                                    None if anon == -1 else anon, obj))  # fmt: skip
            mm.cpu = int(meta.get("cpu", 0))
            mm.tlbs.set_cpu(mm.cpu)
            mm.check()
        except (KeyError, TypeError, InvariantError, ValueError, IndexError) as e:
            raise ValueError(f"load: {path} is corrupted or foreign: {e}") from None
        return mm

    def __repr__(self) -> str:
        return (
            f"AddressSpace(arch={self.arch.name!r}, vmas={len(self._vmas)}, "
            f"page_table_bytes={self.page_table_bytes})"
        )
