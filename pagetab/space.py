"""AddressSpace: the simulated process, a thin locked facade over its mm.

The state is an ``mm_types.MmStruct`` (``space.mm_struct``), and the work
lives in modules named after the kernel files they follow, each operating
on the mm as data: mmap.py, mprotect.py, madvise.py, mremap.py, vma.py
(mm/vma.c: the VMA list, get_unmapped_area, validate_mm), memory.py
(faults, access), userfaultfd.py, persist.py (save/load). This module keeps
the facade: one lock per space, and the inspection calls.

Each system call validates all of its arguments before it changes
anything, so an error leaves the space exactly as it was; where Linux
itself stops part way and keeps what it did (mprotect over a hole,
MADV_POPULATE_* at the first page it cannot fault, madvise over a hole),
pagetab does the same.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from . import fork, madvise, memory, mmap, mprotect, mremap, persist, userfaultfd
from .arch import Arch
from .argcheck import as_uint, check_bool, check_int
from .constants import (
    DEFAULT_MAX_MAP_COUNT,
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    ZERO_FRAME,
)
from .mm_types import (
    FAULT_AROUND_BYTES,
    File,
    MmStruct,
    Vma,
    VmaInfo,
    check_thp_size,
    mm_alloc,
)
from .policy import DEFAULT_POLICY, Policy
from .policy import policy as lookup_policy
from .stats import AccessStats, MoveStats
from .userfaultfd import Userfaultfd
from .vma import find_vma, get_unmapped_area, validate_mm

__all__ = ["AddressSpace", "FolioMapping"]


class FolioMapping(NamedTuple):
    """Pages of a range mapped by one folio (``AddressSpace.folios``)."""

    addr: int  #: the first address
    length: int  #: bytes mapped here (consecutive pages of the folio)
    size: int  #: the folio's size in bytes
    head: int  #: the folio's first frame id


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


_F = TypeVar("_F", bound=Callable[..., Any])
_C = TypeVar("_C", bound=type)


def _locked(fn: _F) -> _F:
    @functools.wraps(fn)
    def call(self: AddressSpace, *args: Any, **kwargs: Any) -> Any:
        with self.mm_struct.mmap_lock:
            return fn(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def _takes_lock(fn: _F) -> _F:
    """Mark a method that holds the space's lock itself (a hot call that
    ``_serialized`` should not wrap a second time)."""
    fn.__pagetab_locked__ = True  # type: ignore[attr-defined]
    return fn


def _serialized(cls: _C) -> _C:
    """Make every public method and property of ``cls`` hold the space's
    lock: one operation at a time on one space, whichever thread calls it
    (the Cython loops release the GIL, so without it two calls could change
    the same tables at once). Calls on different spaces still run in
    parallel."""
    for name, attr in list(vars(cls).items()):
        if name.startswith("_") or isinstance(attr, (classmethod, staticmethod)) \
                or getattr(attr, "__pagetab_locked__", False):  # fmt: skip
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
    """A simulated process address space (an mm_struct, ``mm_struct``).

    Thread-safe per space: each public operation holds ``lock`` (the mm's
    mmap_lock, an RLock), so calls from several Python threads on one space
    run one at a time; hold ``with mm.lock:`` to make several calls one
    atomic step. Simulated CPUs are the ``cpu`` argument of ``access``, not
    Python threads.

    Parameters
    ----------
    arch:
        An architecture profile name (see ``pagetab.archs()``) or an Arch.
    cpus:
        CPUs of the machine (1..256), each with its own TLBs. A CPU joins
        mm_cpumask when it runs the process: CPU 0 (which makes the system
        calls) from the start, others at their first ``access`` or
        ``switch_mm``.
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
        The kernel policy (default ``DEFAULT_POLICY``, the newest mainline
        preset): how mremap moves page tables: a preset name (``pagetab.policies()``)
        or a ``Policy``. Can be changed between calls (``mm.policy = ...``).
    page_table_limit:
        Bytes of page tables (below the pgd) the space may use; an operation
        that needs more fails with OSError(ENOMEM) as the kernel's would,
        and a failed move puts back the entries it had moved.
    fault_around_bytes:
        /sys/kernel/debug/fault_around_bytes (default 65536): a read fault
        in a file mapping also maps the pages of the aligned window of this
        size around it (do_fault_around), within its VMA and PTE table and
        below the file's end. Rounded down to a power of two; a page or
        less turns fault-around off.
    """

    def __init__(
        self,
        arch: str | Arch = "x86-64",
        cpus: int = 1,
        thp: str = "madvise",
        max_map_count: int = DEFAULT_MAX_MAP_COUNT,
        policy: str | Policy = DEFAULT_POLICY,
        page_table_limit: int | None = None,
        thp_sizes: Mapping[int, str] | None = None,
        fault_around_bytes: int = FAULT_AROUND_BYTES,
    ) -> None:
        #: the mm itself, as data: what the kernel-file modules operate on
        self.mm_struct: MmStruct = mm_alloc(arch, cpus, thp, max_map_count, policy,
                                            page_table_limit, thp_sizes)  # fmt: skip
        self.fault_around_bytes = fault_around_bytes

    @classmethod
    def _over(cls, mm: MmStruct) -> AddressSpace:
        """The facade over an existing mm (a loaded one)."""
        space = cls.__new__(cls)
        space.mm_struct = mm
        return space

    # the mm's fields, read through the facade

    @property
    def lock(self) -> threading.RLock:
        """The mm's mmap_lock: held by every public operation."""
        return self.mm_struct.mmap_lock

    @property
    def arch(self) -> Arch:
        """The architecture profile."""
        return self.mm_struct.arch

    @property
    def cpus(self) -> int:
        """CPUs of the machine."""
        return self.mm_struct.cpus

    @property
    def cpu(self) -> int:
        """The CPU that makes the system calls (in mm_cpumask)."""
        return self.mm_struct.cpu

    @property
    def thp(self) -> str:
        """transparent_hugepage/enabled."""
        return self.mm_struct.thp

    @property
    def max_map_count(self) -> int:
        """vm.max_map_count."""
        return self.mm_struct.max_map_count

    @property
    def page_size(self) -> int:
        """Bytes per base page."""
        return self.mm_struct.page_size

    @property
    def page_shift(self) -> int:
        """log2 of page_size."""
        return self.mm_struct.page_shift

    @property
    def tables(self) -> Any:
        """The page-table store (``_tables.PageTables``)."""
        return self.mm_struct.tables

    @property
    def tlbs(self) -> Any:
        """The CPUs' TLBs and the arch's flush rule (``_flush.Tlbs``)."""
        return self.mm_struct.tlbs

    @property
    def last_move(self) -> MoveStats | None:
        """What the last mremap did (None before the first)."""
        return self.mm_struct.last_move

    @property
    def trace_moves(self) -> bool:
        """Record every mremap step by step (``last_move.trace``: each lock
        hold, each run of entries moved, each flush, priced in order); off by
        default, as a 256 GiB PTE-path move makes about 800,000 events."""
        return self.mm_struct.trace_moves

    @trace_moves.setter
    def trace_moves(self, on: bool) -> None:
        self.mm_struct.trace_moves = check_bool("trace_moves", on)

    @property
    def fault_around_bytes(self) -> int:
        """fault_around_bytes (see the class parameters)."""
        return self.mm_struct.fault_around_bytes

    @fault_around_bytes.setter
    def fault_around_bytes(self, value: int) -> None:
        # fault_around_bytes_set: at most a PTE table's span (PTRS_PER_PTE pages)
        check_int("fault_around_bytes", value, 0, self.arch.pmd_size)
        self.mm_struct.fault_around_bytes = value

    @property
    def page_table_limit(self) -> int | None:
        """Bytes of page tables the space may use (None: no limit)."""
        return self.mm_struct.page_table_limit

    @page_table_limit.setter
    def page_table_limit(self, limit: int | None) -> None:
        if limit is not None:
            check_int("page_table_limit", limit, 1)
        self.mm_struct.set_page_table_limit(limit)

    @property
    def policy(self) -> Policy:
        """How mremap moves page tables; may be changed between calls."""
        return self.mm_struct.policy

    @policy.setter
    def policy(self, value: str | Policy) -> None:
        self.mm_struct.set_policy(lookup_policy(value))

    @property
    def thp_sizes(self) -> dict[int, str]:
        """hugepages-<size>kB/enabled for every anonymous THP size (a copy)."""
        return dict(self.mm_struct.thp_sizes)

    def set_thp_size(self, size: int, mode: str) -> None:
        """Write ``mode`` to hugepages-<size>kB/enabled (``size`` in bytes)."""
        sizes = self.mm_struct.thp_sizes
        check_thp_size(sizes, self.arch, size, mode)
        sizes[size] = mode

    def find_vma(self, addr: int) -> Vma | None:
        """The VMA containing ``addr``, or None."""
        return find_vma(self.mm_struct, addr)

    def get_unmapped_area(self, length: int, hint: int, thp_align: bool) -> int | None:
        """Where a non-fixed mapping of ``length`` goes (None: no room)."""
        return get_unmapped_area(self.mm_struct, length, hint, thp_align)

    # ------------------------------------------------------------------
    # system calls

    def mmap(
        self,
        length: int,
        addr: int | None = None,
        prot: int = PROT_READ | PROT_WRITE,
        flags: int = MAP_PRIVATE | MAP_ANONYMOUS,
        file: File | None = None,
        offset: int = 0,
    ) -> int:
        """mmap(2) of anonymous memory or of a file; returns the address.

        Parameters
        ----------
        length : int
            Bytes to map (rounded up to pages).
        addr : int or None
            A hint, or with MAP_FIXED / MAP_FIXED_NOREPLACE the address.
        prot : int
            PROT_READ, PROT_WRITE, PROT_EXEC or PROT_NONE.
        flags : int
            One of MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, with
            MAP_ANONYMOUS for anonymous memory (else ``file`` is mapped),
            MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_POPULATE.
        file : File or None
            The file to map, for flags without MAP_ANONYMOUS: MAP_PRIVATE
            maps its page cache read-only and copies a page at its first
            write; MAP_SHARED maps the page cache itself. Pages past the
            file's end are SIGBUS. No THP is used for file mappings.
        offset : int
            Where in the file the mapping starts, in bytes (page aligned);
            ``VmaInfo.pgoff`` is it in pages.

        Returns
        -------
        int
            The mapping's address.

        Raises
        ------
        OSError
            With Linux's errno: EINVAL (zero length, bad flags, unaligned
            MAP_FIXED address or offset), EBADF (no ``file`` without
            MAP_ANONYMOUS), EACCES (MAP_SHARED with PROT_WRITE of a File
            not ``writable``), EOVERFLOW (offset + length past the largest
            file offset), ENOMEM (no room, too many mappings), EEXIST
            (MAP_FIXED_NOREPLACE over a mapping), EPERM (below
            mmap_min_addr).
        ValueError
            ``file`` with MAP_ANONYMOUS, or a File another space maps.
        """
        return mmap.do_mmap(self.mm_struct, length, addr, prot, flags, file, offset)

    def munmap(self, addr: int, length: int) -> None:
        """munmap(2): unmap [addr, addr + length); frees emptied page tables."""
        mmap.vm_munmap(self.mm_struct, addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2). ENOMEM if part of the range is unmapped; as in Linux,
        the VMAs before the first hole keep their new protection."""
        mprotect.do_mprotect_pkey(self.mm_struct, addr, length, prot)

    def madvise(self, addr: int, length: int, advice: int) -> None:
        """madvise(2): MADV_POPULATE_READ/WRITE, MADV_HUGEPAGE/NOHUGEPAGE,
        MADV_DONTNEED. Other advice raises NotImplementedError."""
        madvise.do_madvise(self.mm_struct, addr, length, advice)

    @_takes_lock
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
        mm = self.mm_struct
        with mm.mmap_lock:
            return mremap.do_mremap(mm, old_addr, old_size, new_size, flags, new_addr)

    def fork(self) -> AddressSpace:
        """fork(2): the child process's address space, a copy of this one as
        dup_mmap makes it. Every VMA is copied; page tables only where the
        kernel copies them (private mappings written since they were made),
        so the child faults file and shared pages in again; userfaultfd
        registrations are not inherited. The copy-on-write sharing itself
        is not simulated (see ``pagetab.fork``): which pages are present is
        exact, but a later write in either space is an ordinary access.
        """
        return self._over(fork.dup_mmap(self.mm_struct))

    def userfaultfd(self, features: int = 0) -> Userfaultfd:
        """userfaultfd(2) and UFFDIO_API: a userfaultfd of this process with
        ``features`` (UFFD_FEATURE_MOVE, UFFD_FEATURE_EVENT_REMAP; others
        are not simulated); register ranges and move pages through it."""
        return userfaultfd.new_userfaultfd(self.mm_struct, features)

    @property
    def userfaultfds(self) -> list[Userfaultfd]:
        """This space's userfaultfds, oldest first (after ``load``, the
        saved ones)."""
        return [u for u in self.mm_struct.userfaultfds.values() if isinstance(u, Userfaultfd)]

    # ------------------------------------------------------------------
    # CPUs, TLBs and accesses

    @property
    def mm_cpumask(self) -> list[int]:
        """The CPUs that have run this process."""
        return list(self.mm_struct.tlbs.cpumask())

    @property
    def lazy_cpus(self) -> list[int]:
        """The CPUs of mm_cpumask in lazy TLB mode (see ``switch_out``)."""
        return list(self.mm_struct.tlbs.lazy_cpus())

    @property
    def tlb_flush_batched(self) -> bool:
        """Whether reclaim has unmapped pages of this process and deferred
        their TLB flush (try_to_unmap with TTU_BATCH_FLUSH:
        set_tlb_ubc_flush_pending sets mm->tlb_flush_batched). pagetab does
        not reclaim: a scenario sets it. The next move_ptes (or zap or
        mprotect walking a PTE table) calls flush_tlb_batched_pending,
        which flushes the whole mm (a DSB alone on arm64 before
        ``Policy.batched_pending_flush_mm``) and clears it: the move counts
        ``batched_pending_flushes``. Before Linux 4.13
        (``Policy.batched_pending_check``) it stays pending through them.
        ValueError where the kernel never defers those flushes (powerpc;
        arm64 before 6.6 and riscv before 6.8: ``FlushRules.batched_unmap``).
        Like the TLBs, it is not saved."""
        return bool(self.mm_struct.tlbs.tlb_flush_batched)

    @tlb_flush_batched.setter
    def tlb_flush_batched(self, pending: bool) -> None:
        check_bool("tlb_flush_batched", pending)
        rule = self.arch.flush.batched_unmap
        if pending and rule is None:
            raise ValueError(f"tlb_flush_batched: {self.arch.name}'s kernel flushes reclaim's "
                             "unmaps at once (no ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH)")  # fmt: skip
        if pending and rule and not getattr(self.policy, rule):
            raise ValueError(f"tlb_flush_batched: under {self.policy.name} the "
                             f"{self.arch.flush.family} kernel flushes reclaim's unmaps at "
                             f"once (Policy.{rule} is off)")  # fmt: skip
        self.mm_struct.tlbs.tlb_flush_batched = pending

    def switch_mm(self, cpu: int) -> None:
        """CPU ``cpu`` runs this process from now on (a thread of it is
        scheduled there): it joins mm_cpumask, or leaves lazy TLB mode,
        without accessing anything."""
        check_int("switch_mm: cpu", cpu, 0, self.cpus - 1)
        self.mm_struct.switch_mm(cpu)

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
        mm = self.mm_struct
        if cpu == mm.cpu:
            raise ValueError(f"switch_out: cpu {cpu} makes the system calls (mm.cpu)")
        if cpu not in mm.tlbs.cpumask():
            raise ValueError(f"switch_out: cpu {cpu} is not running this process "
                             f"(mm_cpumask {mm.tlbs.cpumask()})")  # fmt: skip
        if lazy:
            mm.enter_lazy_tlb(cpu)
        else:
            mm.leave_mm(cpu)

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
        return memory.access(self.mm_struct, _address_array(addrs), cpu, write)

    # ------------------------------------------------------------------
    # inspection

    def _inspected(self, call: str, addr: Any, length: Any, most: int) -> tuple[int, int]:
        """(addr, length) checked for an inspection call of at most ``most`` pages."""
        mm = self.mm_struct
        addr = as_uint("addr", addr, call)
        length = as_uint("length", length, call)
        if not mm.page_aligned(addr) or not mm.page_aligned(length):
            raise ValueError(f"{call}: addr and length must be multiples of {mm.page_size}")
        if addr + length > mm.arch.task_size:
            raise ValueError(f"{call}: range ends past the address space")
        if length >> mm.page_shift > most:
            raise ValueError(f"{call}: at most {most} pages per call; ask in pieces")
        return addr, length

    def frames(self, addr: int, length: int) -> npt.NDArray[np.int64]:
        """Frame id per base page of [addr, addr + length): -1 not present,
        ZERO_FRAME for the zero page, else the frame id."""
        addr, length = self._inspected("frames", addr, length, MAX_FRAMES)
        result: npt.NDArray[np.int64] = self.mm_struct.tables.frames(addr, addr + length)
        return result

    def folios(self, addr: int, length: int) -> list[FolioMapping]:
        """The folios mapping [addr, addr + length), in address order: one
        ``FolioMapping`` per run of pages that map consecutive pages of
        one folio (a PMD THP, a PTE-mapped large folio from mTHP or a split
        THP, or a small folio). The zero page is not reported."""
        addr, length = self._inspected("folios", addr, length, MAX_FOLIO_PAGES)
        frames, orders = self.mm_struct.tables.folio_orders(addr, addr + length)
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
        f = int(self.mm_struct.tables.translate(addr))
        return None if f < 0 else f

    def vmas(self) -> list[VmaInfo]:
        """Snapshots of the VMAs, in address order."""
        return [v.info() for v in self.mm_struct.vmas]

    @property
    def page_table_bytes(self) -> int:
        """Bytes of page tables below the pgd (the kernel's VmPTE)."""
        return int(self.mm_struct.tables.table_bytes)

    @property
    def rss_pages(self) -> int:
        """Base pages mapped (present), zero page included."""
        mm = self.mm_struct
        return sum(mm.tables.count_mapped(v.start, v.end) for v in mm.vmas)

    def check(self) -> None:
        """Verify every invariant; raise InvariantError listing what is wrong."""
        validate_mm(self.mm_struct)

    # ------------------------------------------------------------------
    # save and load

    SAVE_VERSION = persist.SAVE_VERSION

    def save(self, path: Any) -> None:
        """Write the whole simulated state to ``path`` exactly (a numpy
        ``.npz`` archive, whatever the name says), or to a writable binary
        file object.

        Page tables, VMAs, shared-memory objects and frame numbering are
        saved exactly; TLBs are not (a loaded space starts with cold TLBs
        and CPU 0 in mm_cpumask). Only registered arch profiles and policy
        presets can be saved by name.
        """
        persist.save(self.mm_struct, path)

    @classmethod
    def load(cls, path: Any) -> AddressSpace:
        """An AddressSpace from a file written by ``save``;
        FileNotFoundError if there is none, ValueError if it is not one or
        is inconsistent."""
        return cls._over(persist.load(path, validate_mm))

    def __repr__(self) -> str:
        return (
            f"AddressSpace(arch={self.arch.name!r}, vmas={len(self.mm_struct.vmas)}, "
            f"page_table_bytes={self.page_table_bytes})"
        )
