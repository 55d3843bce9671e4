"""AddressSpace: the simulated mm, a facade over the kernel's files.

VMAs are kept in Python (a sorted list; a process has few) and every
per-entry operation is delegated to the Cython page-table store. The work
lives in modules named after the kernel files they follow: vma.py
(mm/vma.c, mm/mmap.c: the VMA list, get_unmapped_area), memory.py (faults,
access), mremap.py (mm/mremap.c), persist.py (save/load). This module keeps
the facade, mmap/munmap/mprotect/madvise and the invariant check.

Each system call validates all of its arguments before it changes
anything, so an error leaves the space exactly as it was; where Linux
itself stops part way and keeps what it did (mprotect over a hole,
MADV_POPULATE_* at the first page it cannot fault, madvise over a hole),
pagetab does the same.
"""

from __future__ import annotations

import errno
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from . import _flush, _move, _tables, memory, mremap, persist, userfaultfd
from .arch import Arch
from .arch import arch as _arch
from .argcheck import U64, as_uint, check_bool, check_int
from .constants import (
    DEFAULT_MAX_MAP_COUNT,
    MADV_DONTNEED,
    MADV_HUGEPAGE,
    MADV_NAMES,
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
    UFFD_FEATURE_MOVE,
    ZERO_FRAME,
)
from .memory import faultin_range, populate_vma
from .policy import Policy
from .policy import policy as _policy
from .stats import AccessStats, MoveStats
from .userfaultfd import Userfaultfd
from .vma import (
    VM_HUGEPAGE,
    VM_NOHUGEPAGE,
    Shm,
    Vma,
    VmaInfo,
    can_merge,
    do_vmi_munmap,
    find_vma,
    get_unmapped_area,
    insert_vma,
    is_free,
    merge_around,
    overlapping,
    split_vma,
)

__all__ = ["AddressSpace", "FolioMapping", "InvariantError"]


class FolioMapping(NamedTuple):
    """Pages of a range mapped by one folio (``AddressSpace.folios``)."""

    addr: int  #: the first address
    length: int  #: bytes mapped here (consecutive pages of the folio)
    size: int  #: the folio's size in bytes
    head: int  #: the folio's first frame id


THP_MODES = ("always", "madvise", "never")
#: a size's hugepages-<size>kB/enabled (mm/huge_memory.c anon_enabled_store)
THP_SIZE_MODES = ("always", "inherit", "madvise", "never")
_UNSUPPORTED_MAP = {
    MAP_GROWSDOWN: "MAP_GROWSDOWN (stack VMAs)",
    MAP_LOCKED: "MAP_LOCKED (mlock)",
    MAP_HUGETLB: "MAP_HUGETLB (hugetlbfs)",
}
#: frames() answers at most this many pages at once (a 2 GiB array)
MAX_FRAMES = 1 << 28
#: folios() looks at most this many pages at once (its numpy work takes
#: some ten temporaries of 8 bytes per page)
MAX_FOLIO_PAGES = 1 << 22


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


class InvariantError(AssertionError):
    """AddressSpace.check() found the simulated state inconsistent."""


def _sys_error(code: int, call: str, what: str) -> OSError:
    return OSError(code, f"{call}: {what}")


_F = TypeVar("_F", bound=Callable[..., Any])
_C = TypeVar("_C", bound=type)


def _locked(fn: _F) -> _F:
    @functools.wraps(fn)
    def call(self: AddressSpace, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return fn(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def _serialized(cls: _C) -> _C:
    """Make every public method and property of ``cls`` hold the space's
    lock: one operation at a time on one space, whichever thread calls it
    (the Cython loops release the GIL, so without it two calls could change
    the same tables at once). Calls on different spaces still run in
    parallel."""
    for name, attr in list(vars(cls).items()):
        if name.startswith("_") or isinstance(attr, (classmethod, staticmethod)):
            continue
        if isinstance(attr, property):
            setattr(cls, name, property(
                _locked(attr.fget) if attr.fget else None,
                _locked(attr.fset) if attr.fset else None,
                None,
                attr.__doc__,
            ))  # fmt: skip
        elif callable(attr):
            setattr(cls, name, _locked(attr))
    return cls


@_serialized
class AddressSpace:
    """A simulated process address space (an mm_struct).

    Thread-safe per space: each public operation holds ``lock`` (an
    RLock), so calls from several Python threads on one space run one at a
    time; hold ``with mm.lock:`` to make several calls one atomic step.
    Simulated CPUs are the ``cpu`` argument of ``access``, not Python
    threads.

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
    thp_sizes:
        Multi-size THP (Linux 6.8+): {folio size in bytes:
        hugepages-<size>kB/enabled}, "always", "inherit" (follow ``thp``),
        "madvise" or "never", for the sizes ``thp_sizes`` lists (orders 2
        up to the PMD's: 16K-2M on 4K pages). Sizes not given keep the
        kernel's defaults: the PMD size "inherit", the others "never".
        Anonymous write faults then map the largest allowed folio that
        fits (alloc_anon_folio); ``folios`` shows them.
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
        thp_sizes: Mapping[int, str] | None = None,
    ) -> None:
        #: held by every public operation (see the class docstring)
        self.lock = threading.RLock()
        self.arch: Arch = _arch(arch)
        pol = _policy(policy)
        check_int("cpus", cpus, 1, 256)
        if thp not in THP_MODES:
            raise ValueError(f"thp must be one of {', '.join(THP_MODES)}, not {thp!r}")
        check_int("max_map_count", max_map_count, 1)
        if page_table_limit is not None:
            check_int("page_table_limit", page_table_limit, 1)
        self.cpus = cpus
        self.thp = thp
        pmd_order = self.arch.pmd_size.bit_length() - 1 - self.arch.page_shift
        # THP_ORDERS_ALL_ANON: orders 2 up to the PMD's
        sizes = [self.arch.page_size << o for o in range(2, pmd_order + 1)]
        self._thp_sizes = {sz: "inherit" if sz == self.arch.pmd_size else "never" for sz in sizes}
        for sz, mode in (thp_sizes or {}).items():
            self._check_thp_size(sz, mode)
        for sz, mode in (thp_sizes or {}).items():
            self._thp_sizes[sz] = mode
        self.max_map_count = max_map_count
        a = self.arch
        self.page_shift = a.page_shift
        self.page_size = a.page_size
        self.tables = _tables.PageTables(
            [lv.shift for lv in a.levels], [lv.entries for lv in a.levels]
        )
        if page_table_limit is not None:
            self.tables.limit_bytes = page_table_limit
        self.page_table_limit = page_table_limit
        self._vmas: list[Vma] = []
        self._userfaultfds: dict[int, Userfaultfd] = {}
        self.last_move: MoveStats | None = None
        #: record every mremap step by step (``last_move.trace``: each lock
        #: hold, each run of entries moved, each flush, priced in order); off
        #: by default, as a 256 GiB PTE-path move makes about 800,000 events
        self.trace_moves = False
        self._pmd_mask = a.pmd_size - 1
        # nearly all tables a move allocates are PTE tables
        self._pte_table_bytes = a.levels[-1].table_bytes
        rule = _flush.FLUSH_RULES[a.flush.family](a.flush.params())
        self.tlbs = _flush.Tlbs(cpus, a.tlb_geometry(), rule)
        self.policy = pol  # builds the move control (see the setter)
        #: the CPU that makes system calls (it runs the process: in mm_cpumask)
        self.cpu = 0
        self.tlbs.set_cpu(0)

    @property
    def policy(self) -> Policy:
        """How mremap moves page tables; may be changed between calls."""
        return self._policy

    @policy.setter
    def policy(self, value: str | Policy) -> None:
        p = _policy(value)
        # the engine's configuration crosses into C once per policy
        self._pmc = _move.PagetableMoveControl(mremap.mremap_config(self.arch, p))
        self.tlbs.ipi_lazy = p.flush_lazy
        # faults and splits fold contiguous blocks from now on (entries
        # already written keep their bit)
        if not p.contpte and self.tables.cont_ptes:
            self.tables.clear_cont()  # no block stays folded under a kernel without contpte
            for cpu in self.tlbs.cpumask():
                self.tlbs.flush_all(cpu)
        self.tables.cont_ptes = self.arch.cont_ptes if p.contpte else 0
        self._policy = p

    @property
    def thp_sizes(self) -> dict[int, str]:
        """hugepages-<size>kB/enabled for every anonymous THP size (a copy)."""
        return dict(self._thp_sizes)

    def set_thp_size(self, size: int, mode: str) -> None:
        """Write ``mode`` to hugepages-<size>kB/enabled (``size`` in bytes)."""
        self._check_thp_size(size, mode)
        self._thp_sizes[size] = mode

    def _check_thp_size(self, size: Any, mode: Any) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size not in self._thp_sizes:
            valid = ", ".join(f"{s >> 10}K" for s in self._thp_sizes)
            raise ValueError(f"thp_sizes: no anonymous THP size {size!r} on {self.arch.name} "
                             f"(give the size in bytes, one of {valid})")  # fmt: skip
        if mode not in THP_SIZE_MODES:
            raise ValueError(f"thp_sizes: {size >> 10}K must be one of "
                             f"{', '.join(THP_SIZE_MODES)}, not {mode!r}")  # fmt: skip

    # ------------------------------------------------------------------
    # helpers

    def _page_align(self, n: int) -> int:
        return (n + self.page_size - 1) & ~(self.page_size - 1)

    def _aligned(self, n: int) -> bool:
        return n & (self.page_size - 1) == 0

    def find_vma(self, addr: int) -> Vma | None:
        """The VMA containing ``addr``, or None."""
        return find_vma(self, addr)

    def get_unmapped_area(self, length: int, hint: int, thp_align: bool) -> int | None:
        """Where a non-fixed mapping of ``length`` goes (None: no room)."""
        return get_unmapped_area(self, length, hint, thp_align)

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
            if flags & MAP_FIXED_NOREPLACE and not is_free(self, hint, hint + plen):
                raise _sys_error(errno.EEXIST, call, "MAP_FIXED_NOREPLACE range is mapped")
            start = hint
        else:
            hint &= ~(self.page_size - 1)
            if hint and hint < a.mmap_min_addr:
                hint = self._page_align(a.mmap_min_addr)
            thp_align = not shared and hint == 0 and plen % a.pmd_size == 0
            found = get_unmapped_area(self, plen, hint, thp_align)
            if found is None:
                raise _sys_error(errno.ENOMEM, call, "no free range large enough")
            start = found
        end = start + plen
        if fixed:
            do_vmi_munmap(self, start, end)
        if shared:
            v = Vma(start, end, prot, True, pgoff=0, shm=Shm(plen >> self.page_shift))
        else:
            v = Vma(start, end, prot, False, pgoff=start >> self.page_shift)
        insert_vma(self, v)
        if flags & MAP_POPULATE and prot & (PROT_READ | PROT_WRITE):
            # mm_populate: write faults for private writable mappings; its
            # errors are ignored, as Linux ignores them
            vma = find_vma(self, start)
            assert vma is not None
            populate_vma(self, vma, start, end, bool(prot & PROT_WRITE) and not shared)
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
        do_vmi_munmap(self, addr, addr + plen)

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
        first = find_vma(self, addr)
        if first is None:
            raise _sys_error(errno.ENOMEM, call, f"nothing is mapped at {addr:#x}")
        # apply up to the first hole, then report it (do_mprotect_pkey)
        reach = addr
        for v in overlapping(self, addr, end):
            if v.start > reach:
                break
            reach = v.end
        stop = min(reach, end)
        split_vma(self, addr)
        split_vma(self, stop)
        for v in list(overlapping(self, addr, stop)):
            v.prot = prot
            if self.tables.change_prot(
                v.start, v.end, prot != PROT_NONE, bool(prot & PROT_WRITE), v.shared
            ):
                # change_protection flushes the range when it changed entries
                self.tlbs.flush_range(self.cpu, v.start, v.end)
        merge_around(self, addr, stop)
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
            if advice in MADV_NAMES:
                raise NotImplementedError(f"{call}: {MADV_NAMES[advice]} is not simulated")
            raise _sys_error(errno.EINVAL, call, f"unknown advice {advice}")
        if not self._aligned(addr):
            raise _sys_error(errno.EINVAL, call, f"addr {addr:#x} is not page aligned")
        end = addr + self._page_align(length)
        if end >= U64:
            raise _sys_error(errno.EINVAL, call, "range wraps around")
        if length == 0:
            return
        if advice in (MADV_POPULATE_READ, MADV_POPULATE_WRITE):
            faultin_range(self, addr, end, advice == MADV_POPULATE_WRITE)
            return
        covered = 0
        if advice == MADV_DONTNEED:
            for v in list(overlapping(self, addr, end)):
                s, e = max(v.start, addr), min(v.end, end)
                if self.tables.zap(s, e):
                    self.tlbs.flush_range(self.cpu, s, e)
                covered += e - s
        else:
            split_vma(self, addr)
            split_vma(self, end)
            for v in list(overlapping(self, addr, end)):
                if advice == MADV_HUGEPAGE:
                    v.flags = (v.flags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE
                else:
                    v.flags = (v.flags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE
                covered += v.end - v.start
            merge_around(self, addr, end)
        if covered != end - addr:
            raise _sys_error(errno.ENOMEM, call, "part of the range is not mapped")

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
        return mremap.do_mremap(self, old_addr, old_size, new_size, flags, new_addr)

    # ------------------------------------------------------------------
    # TLBs and accesses

    @property
    def mm_cpumask(self) -> list[int]:
        """The CPUs that have run this process."""
        return list(self.tlbs.cpumask())

    def userfaultfd(self, features: int = 0) -> Userfaultfd:
        """userfaultfd(2) and UFFDIO_API: a userfaultfd of this process with
        ``features`` (UFFD_FEATURE_MOVE, UFFD_FEATURE_EVENT_REMAP; others
        are not simulated); register ranges and move pages through it."""
        check_int("userfaultfd: features", features, 0)
        if features & ~userfaultfd.FEATURES:
            raise NotImplementedError(
                f"userfaultfd: features {features & ~userfaultfd.FEATURES:#x} are not "
                "simulated (UFFD_FEATURE_MOVE and UFFD_FEATURE_EVENT_REMAP are)"
            )
        if features & UFFD_FEATURE_MOVE and not self.policy.uffd_move:
            raise OSError(errno.EINVAL, f"UFFDIO_API: no UFFD_FEATURE_MOVE under "
                          f"{self.policy.name} (UFFDIO_MOVE is Linux 6.8+)")  # fmt: skip
        ident = max(self._userfaultfds, default=0) + 1
        ctx = Userfaultfd(self, ident, features)
        self._userfaultfds[ident] = ctx
        return ctx

    @property
    def userfaultfds(self) -> list[Userfaultfd]:
        """This space's userfaultfds, oldest first (after ``load``, the
        saved ones)."""
        return list(self._userfaultfds.values())

    @property
    def lazy_cpus(self) -> list[int]:
        """The CPUs of mm_cpumask in lazy TLB mode (see ``switch_out``)."""
        return list(self.tlbs.lazy_cpus())

    def switch_out(self, cpu: int, lazy: bool = True) -> None:
        """CPU ``cpu`` stops running this process until its next ``access``.

        ``lazy``: it runs a kernel thread or idles with the mm still loaded
        (lazy TLB mode): it stays in mm_cpumask, and whether a flush IPIs
        it is the policy's ``flush_lazy`` (x86; a skipped CPU flushes when
        it loads the mm again, here at once, without an IPI). Otherwise it
        switches to another process and leaves mm_cpumask: Linux up to 6.13
        clears its bit then; 6.14+ (209954cbc7d0) keeps a stale bit until a
        flush IPI or the once-a-second trim (6db2526c1d69) clears it, which
        pagetab does at once. Its TLB entries for this mm are flushed when
        it returns (here at once). The CPU making the system calls
        (``mm.cpu``) cannot be switched out.
        """
        check_int("switch_out: cpu", cpu, 0, self.cpus - 1)
        check_bool("switch_out: lazy", lazy)
        if cpu == self.cpu:
            raise ValueError(f"switch_out: cpu {cpu} makes the system calls (mm.cpu)")
        if cpu not in self.tlbs.cpumask():
            raise ValueError(f"switch_out: cpu {cpu} is not running this process "
                             f"(mm_cpumask {self.tlbs.cpumask()})")  # fmt: skip
        if lazy:
            self.tlbs.set_cpu(cpu, True, lazy=True)
        else:
            self.tlbs.set_cpu(cpu, False)
            self.tlbs.flush_all(cpu)

    def access(self, addrs: Any, cpu: int = 0, write: bool = False) -> AccessStats:
        """Access each address of ``addrs`` from ``cpu`` (which joins mm_cpumask).

        Every access looks up that CPU's TLBs (L1, then the second level),
        walks the page tables on a miss, and takes page faults as the kernel
        would: the first touch populates (the zero page on reads, a fresh
        frame on writes, a THP where enabled), a write to the zero page
        copies it (and flushes the old translation). Accesses to unmapped or
        inaccessible addresses count as ``segv`` and are skipped.
        """
        check_int("access: cpu", cpu, 0, self.cpus - 1)
        check_bool("access: write", write)
        return memory.access(self, _address_array(addrs), cpu, write)

    # ------------------------------------------------------------------
    # inspection

    def _inspected(self, call: str, addr: Any, length: Any, most: int) -> tuple[int, int]:
        """(addr, length) checked for an inspection call of at most ``most`` pages."""
        addr = as_uint("addr", addr, call)
        length = as_uint("length", length, call)
        if not self._aligned(addr) or not self._aligned(length):
            raise ValueError(f"{call}: addr and length must be multiples of {self.page_size}")
        if addr + length > self.arch.task_size:
            raise ValueError(f"{call}: range ends past the address space")
        if length >> self.page_shift > most:
            raise ValueError(f"{call}: at most {most} pages per call; ask in pieces")
        return addr, length

    def frames(self, addr: int, length: int) -> npt.NDArray[np.int64]:
        """Frame id per base page of [addr, addr + length): -1 not present,
        ZERO_FRAME for the zero page, else the frame id."""
        addr, length = self._inspected("frames", addr, length, MAX_FRAMES)
        result: npt.NDArray[np.int64] = self.tables.frames(addr, addr + length)
        return result

    def folios(self, addr: int, length: int) -> list[FolioMapping]:
        """The folios mapping [addr, addr + length), in address order: one
        ``FolioMapping`` per run of pages that map consecutive pages of
        one folio (a PMD THP, a PTE-mapped large folio from mTHP or a split
        THP, or a small folio). The zero page is not reported."""
        addr, length = self._inspected("folios", addr, length, MAX_FOLIO_PAGES)
        frames, orders = self.tables.folio_orders(addr, addr + length)
        mapped = (orders >= 0) & (frames != ZERO_FRAME)
        head = frames & ~((np.int64(1) << orders.astype(np.int64).clip(0)) - 1)
        # a run starts where the previous page is unmapped or of another
        # folio, or maps a page of it that is not the one before
        start = mapped.copy()
        start[1:] &= ~(mapped[:-1] & (head[1:] == head[:-1]) & (frames[1:] == frames[:-1] + 1))
        starts = np.flatnonzero(start)
        # a run ends at the next run's start or the next unmapped page
        bounds = np.append(np.union1d(starts, np.flatnonzero(~mapped)), len(frames))
        ends = bounds[np.searchsorted(bounds, starts, side="right")]
        ps = self.page_size
        return [FolioMapping(addr + int(i) * ps, int(j - i) * ps, ps << int(orders[i]),
                             int(head[i])) for i, j in zip(starts, ends, strict=True)]  # fmt: skip

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

    SAVE_VERSION = persist.SAVE_VERSION

    def save(self, path: Any) -> None:
        """Write the whole simulated state to a numpy ``.npz`` file.

        Page tables, VMAs, shared-memory objects and frame numbering are
        saved exactly; TLBs are not (a loaded space starts with cold TLBs
        and CPU 0 in mm_cpumask). Only registered arch profiles and policy
        presets can be saved by name.
        """
        persist.save(self, path)

    @classmethod
    def load(cls, path: Any) -> AddressSpace:
        """An AddressSpace from a file written by ``save``; ValueError if the
        file is not one, or is inconsistent."""
        return persist.load(cls, path)

    def __repr__(self) -> str:
        return (
            f"AddressSpace(arch={self.arch.name!r}, vmas={len(self._vmas)}, "
            f"page_table_bytes={self.page_table_bytes})"
        )
