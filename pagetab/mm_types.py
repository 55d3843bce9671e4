"""The simulated process's memory as data (include/linux/mm_types.h).

``MmStruct`` plays struct mm_struct: the VMAs, the page tables, the TLBs
of the CPUs that run it, the kernel policy with its compiled move-engine
configuration, the userfaultfds, and the CPU making system calls. ``Vma``
plays vm_area_struct; ``PageCache`` an object's pages (struct
address_space), with its two kinds: ``Shm``, the shmem object behind a
shared anonymous mapping, and ``File``, a regular file's inode and page
cache behind a file mapping. The kernel's files (vma.py, memory.py, userfaultfd.py, mremap.py,
persist.py) operate on an MmStruct as mm/*.c operate on mm_struct;
``AddressSpace`` (space.py) is the locked facade above it. Nothing here
checks a system call's arguments: the facade does, once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from . import _flush, _move, _tables, _tlb
from ._mm_types import mm_struct, vm_area_struct
from .arch import Arch
from .arch import arch as lookup_arch
from .argcheck import check_int
from .constants import PROT_EXEC, PROT_READ, PROT_WRITE
from .policy import Policy
from .policy import policy as lookup_policy

__all__ = [
    "FAULT_AROUND_BYTES",
    "MAX_CPUS",
    "THP_MODES",
    "THP_SIZE_MODES",
    "VM_ACCOUNT",
    "VM_HUGEPAGE",
    "VM_NOHUGEPAGE",
    "VM_NORESERVE",
    "VM_UFFD_FLAGS",
    "VM_UFFD_MISSING",
    "VM_UFFD_WP",
    "File",
    "MmStruct",
    "PageCache",
    "Shm",
    "UserfaultfdCtx",
    "Vma",
    "VmaInfo",
    "check_thp_size",
    "mm_alloc",
    "mremap_config",
    "new_anon_vma",
]

#: vm_flags bits pagetab keeps besides the protection (include/linux/mm.h)
VM_UFFD_MISSING = 0x00000200
VM_UFFD_WP = 0x00001000
#: a private writable mapping charged to the commit (mm/mmap.c
#: accountable_mapping); MAP_NORESERVE's mappings are not (VM_NORESERVE).
#: Both are vm_flags, so VMAs that differ in them do not merge.
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP

#: /sys/kernel/mm/transparent_hugepage/enabled
THP_MODES = ("always", "madvise", "never")
#: a size's hugepages-<size>kB/enabled (mm/huge_memory.c anon_enabled_store)
THP_SIZE_MODES = ("always", "inherit", "madvise", "never")
#: CPUs a space may have: the TLB state's cpumask width (_tlb.pxd MAX_TLB_CPUS)
MAX_CPUS: int = _tlb.MAX_TLB_CPUS

#: mm/memory.c fault_around_bytes: a read fault in a file VMA maps this much
#: around it (rounded down to a power of two, at least one page)
FAULT_AROUND_BYTES = 65536

_ids = itertools.count(1)


def new_anon_vma() -> int:
    """A fresh anon_vma identity (anon_vma_prepare)."""
    return next(_ids)


class PageCache:
    """An object's pages (struct address_space's page cache): ``frames[i]``
    is the frame holding page ``i`` of the object, or -1 if that page was
    never brought in (it gets a frame on first use). Every mapping of the
    object sees the same frames; ``frames.size`` pages lie below its end
    (a fault past them is SIGBUS). Its two kinds are ``Shm`` and ``File``.
    """

    __slots__ = ("frames", "id")

    def __init__(self, pages: int) -> None:
        self.id = next(_ids)
        self.frames = np.full(pages, -1, dtype=np.int64)


class Shm(PageCache):
    """A shmem object: the pages of a MAP_SHARED|MAP_ANONYMOUS mapping
    (including those made by mremap with old_size 0)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Shm(id={self.id}, pages={self.frames.size})"


class File(PageCache):
    """A regular file, as mmap sees it: its name, its size in bytes
    (i_size) and its page cache, shared by every mapping of it.

    Parameters
    ----------
    name : str
        What /proc/PID/maps shows for its mappings (``VmaInfo.file``).
    size : int
        i_size in bytes. Pages from ``ceil(size / page size)`` on lie past
        its end: touching one is SIGBUS (EFAULT for MADV_POPULATE_*).
    writable : bool
        Opened read-write (FMODE_WRITE): only then may it be mapped
        MAP_SHARED with PROT_WRITE (else mmap and mprotect fail with
        EACCES, as the kernel's do_mmap and mprotect_fixup do).

    Notes
    -----
    pagetab does no I/O: every page of the file below its end counts as
    cached (uptodate in the page cache), so fault-around maps all of its
    window, unless ``set_cached`` says which pages are. The page cache
    holds small folios unless ``set_folios`` names large ones, which
    fault-around may map whole (``Policy.fault_around_whole_folio``).
    A page's frame is handed out by the page tables of the address
    space that first maps the file, so a File belongs to one
    ``AddressSpace`` (mapping it in another raises ValueError).
    """

    __slots__ = ("cached", "folios", "name", "owner", "size", "writable")

    def __init__(self, name: str, size: int, writable: bool = False) -> None:
        if not isinstance(name, str):
            raise TypeError(f"File name must be a str, not {type(name).__name__}")
        check_int("size", size, 0)
        if not isinstance(writable, bool):
            raise TypeError(f"writable must be a bool, not {type(writable).__name__}")
        super().__init__(0)
        self.name = name
        self.size = size
        self.writable = writable
        #: the page tables whose frame ids ``frames`` holds (None until mapped)
        self.owner: object | None = None
        #: which pages are in the page cache (uptodate), what fault-around
        #: maps; None: all of them. A page read by a fault is cached from then.
        self.cached: npt.NDArray[np.bool_] | None = None
        #: the large folios of the page cache, rows ``[lo, hi)`` of page
        #: indices in order (None: small folios only)
        self.folios: npt.NDArray[np.int64] | None = None

    def set_cached(self, runs: Iterable[tuple[int, int]] | None, page_shift: int) -> None:
        """Say which pages are in the page cache: ``runs`` of page indices
        ``[lo, hi)`` (a recording's mincore of the file), or None for all.

        Parameters
        ----------
        runs
            Runs of cached pages, or None (every page below the end cached).
        page_shift
            The page size's log2, to size the map.
        """
        if runs is None:
            self.cached = None
            return
        pages = (self.size + (1 << page_shift) - 1) >> page_shift
        cached = np.zeros(pages, dtype=np.bool_)
        for lo, hi in runs:
            check_int("cached run start", lo, 0, pages)
            check_int("cached run end", hi, lo, pages)
            cached[lo:hi] = True
        self.cached = cached

    def set_folios(self, runs: Iterable[tuple[int, int]] | None, page_shift: int) -> None:
        """Say which of the page cache's folios are large: ``runs`` of page
        indices ``[lo, hi)``, one per folio (a recording's
        /proc/kpageflags of the pages mapped at exit), or None for small
        folios only.

        Parameters
        ----------
        runs
            One run per large folio: 2**order pages, naturally aligned
            (lo a multiple of hi - lo, as the page cache places folios),
            not overlapping, below the file's end.
        page_shift
            The page size's log2, to find the file's end.

        Raises
        ------
        ValueError
            A run that is not a naturally aligned power of two of at least
            2 pages, overlaps another or lies past the end.
        """
        if runs is None:
            self.folios = None
            return
        pages = (self.size + (1 << page_shift) - 1) >> page_shift
        rows = []
        for lo, hi in runs:
            rows.append((int(check_int("folio start", lo, 0, pages)),
                         int(check_int("folio end", hi, 0, pages))))  # fmt: skip
        rows.sort()
        end = 0
        for lo, hi in rows:
            n = hi - lo
            if n < 2 or n & (n - 1) or lo % n:
                raise ValueError(f"folio [{lo}, {hi}) must be 2**order >= 2 pages starting "
                                 f"at a multiple of its size")  # fmt: skip
            if lo < end:
                raise ValueError(f"folio [{lo}, {hi}) overlaps the one before it")
            end = hi
        self.folios = np.array(rows, dtype=np.int64).reshape(-1, 2)

    def attach(self, owner: object, page_shift: int) -> None:
        """Bind the page cache to ``owner`` (an mm's page tables) with pages
        of ``1 << page_shift`` bytes, at its first mapping; ValueError if
        another space's page tables hold it."""
        if self.owner is None:
            self.owner = owner
            pages = (self.size + (1 << page_shift) - 1) >> page_shift
            self.frames = np.full(pages, -1, dtype=np.int64)
        elif self.owner is not owner:
            raise ValueError(f"File {self.name!r} is mapped in another AddressSpace: "
                             "its page cache holds that space's frames")  # fmt: skip

    def __repr__(self) -> str:
        return (f"File({self.name!r}, size={self.size}, writable={self.writable}, "
                f"id={self.id})")  # fmt: skip


class Vma(vm_area_struct):
    """A vm_area_struct: [start, end) with its flags, object and offset.

    Its fields, typed in C (_mm_types.pxd) so that mremap's C path reads
    them directly: ``start``, ``end``, ``prot``, ``shared``, ``flags``
    (VM_HUGEPAGE / VM_NOHUGEPAGE / VM_UFFD_* / VM_ACCOUNT / VM_NORESERVE),
    ``pgoff`` (vm_pgoff, in pages), ``anon_vma`` (its identity, set at the
    first anonymous fault, else None), ``shm`` (the shmem object of a
    shared anonymous mapping), ``uffd`` (vm_userfaultfd_ctx: the registered
    userfaultfd's id, 0 none) and ``file`` (vm_file: a file mapping's
    file; ``pgoff`` counts in it).
    """

    __slots__ = ()
    shm: Shm | None
    file: File | None

    def as_tuple(self) -> tuple[Any, ...]:
        """Its fields in order (what equality compares)."""
        return (self.start, self.end, self.prot, self.shared, self.flags, self.pgoff,
                self.anon_vma, self.shm, self.uffd, self.file)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vma):
            return NotImplemented
        return self.as_tuple() == other.as_tuple()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    def __repr__(self) -> str:
        names = ("start", "end", "prot", "shared", "flags", "pgoff", "anon_vma", "shm", "uffd",
                 "file")  # fmt: skip
        pairs = zip(names, self.as_tuple(), strict=True)
        return f"Vma({', '.join(f'{k}={v!r}' for k, v in pairs)})"

    def copy(self) -> Vma:
        """A new Vma with the same fields (vm_area_dup)."""
        return Vma(*self.as_tuple())

    @property
    def cache(self) -> PageCache | None:
        """The page cache its faults take pages from: its shmem object or
        its file (None for anonymous memory)."""
        return self.shm if self.shm is not None else self.file

    @property
    def anonymous(self) -> bool:
        """vma_is_anonymous: private anonymous memory (no object behind it)."""
        return self.shm is None and self.file is None

    def pages(self, page_shift: int) -> int:
        """Its length in pages (vma_pages)."""
        return (self.end - self.start) >> page_shift

    def pgoff_at(self, addr: int, page_shift: int) -> int:
        """vm_pgoff of ``addr`` inside this VMA (linear_page_index)."""
        return self.pgoff + ((addr - self.start) >> page_shift)

    def object_end(self, page_shift: int) -> int:
        """The address past the last page of its object (shmem object or
        file; VMAs with a ``cache``): faults beyond it are SIGBUS. May lie
        below ``start`` when the whole VMA is past the file's end."""
        cache = self.cache
        assert cache is not None
        return self.start + ((cache.frames.size - self.pgoff) << page_shift)

    def info(self) -> VmaInfo:
        """A read-only snapshot."""
        return VmaInfo(self.start, self.end, self.prot, self.shared,
                       bool(self.flags & VM_HUGEPAGE), bool(self.flags & VM_NOHUGEPAGE),
                       self.pgoff, self.uffd,
                       None if self.file is None else self.file.name)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VmaInfo:
    """A read-only snapshot of one VMA, as /proc/PID/maps would show it."""

    start: int
    end: int
    prot: int
    shared: bool
    hugepage: bool
    nohugepage: bool
    pgoff: int
    uffd: int = 0  # the userfaultfd the VMA is registered with, 0 none
    file: str | None = None  # the mapped file's name (None: anonymous memory)

    @property
    def length(self) -> int:
        """end - start."""
        return self.end - self.start

    def __str__(self) -> str:
        perms = "".join(
            c if self.prot & bit else "-"
            for c, bit in (("r", PROT_READ), ("w", PROT_WRITE), ("x", PROT_EXEC))
        )
        perms += "s" if self.shared else "p"
        line = f"{self.start:012x}-{self.end:012x} {perms} {self.pgoff:08x}"
        return line if self.file is None else f"{line} {self.file}"


class UserfaultfdCtx(Protocol):
    """What the mm keeps of a userfaultfd (struct userfaultfd_ctx): the
    fields mremap and save/load read. ``userfaultfd.Userfaultfd`` is one."""

    id: int
    features: int
    #: remap events queued and not yet read (from, to, len)
    pending_events: list[tuple[int, int, int]]


def mremap_config(a: Arch, p: Policy) -> dict[str, Any]:
    """The move engine's ``mremap_config`` struct (_move.pxd): the arch's
    geometry, and every engine field of the policy under its own name
    (``Policy.engine_fields``; ``flush`` as its ``flush_mode`` number)."""
    pte = len(a.levels) - 1
    geometry = {
        "pte": pte,
        "pmd": pte - 1,
        "pud": a.pud_level,
        "page_shift": a.page_shift,
        "pmd_size": a.pmd_size,
        "pud_size": a.pud_size,
        "split_pte": a.split_pte_lock,
        "split_pmd": a.split_pmd_lock,
        "cont_ptes": a.cont_ptes,
        "bbml2_noabort": a.bbml2_noabort,
    }
    choices = p.engine_fields()
    choices["flush"] = _move.FLUSH_MODE[p.flush]
    return {**geometry, **choices}


def mm_alloc(
    arch: str | Arch,
    cpus: int,
    thp: str,
    max_map_count: int,
    policy: str | Policy,
    page_table_limit: int | None,
    thp_sizes: Mapping[int, str] | None,
) -> MmStruct:
    """A new, empty mm (mm_alloc): the parameters of ``AddressSpace``,
    checked (TypeError/ValueError naming the parameter) and resolved."""
    a = lookup_arch(arch)
    pol = lookup_policy(policy)
    check_int("cpus", cpus, 1, MAX_CPUS)
    if thp not in THP_MODES:
        raise ValueError(f"thp must be one of {', '.join(THP_MODES)}, not {thp!r}")
    check_int("max_map_count", max_map_count, 1)
    if page_table_limit is not None:
        check_int("page_table_limit", page_table_limit, 1)
    pmd_order = a.pmd_size.bit_length() - 1 - a.page_shift
    # THP_ORDERS_ALL_ANON: orders 2 up to the PMD's; by default the PMD
    # size follows ``thp`` and the others are off
    sizes = {a.page_size << o: "never" for o in range(2, pmd_order + 1)}
    sizes[a.pmd_size] = "inherit"
    for size, mode in (thp_sizes or {}).items():
        check_thp_size(sizes, a, size, mode)
    sizes.update(thp_sizes or {})
    return MmStruct(a, cpus, thp, sizes, max_map_count, pol, page_table_limit)


def check_thp_size(sizes: Mapping[int, str], a: Arch, size: Any, mode: Any) -> None:
    """ValueError unless ``size`` is one of ``sizes`` (bytes) and ``mode``
    one of THP_SIZE_MODES."""
    if isinstance(size, bool) or not isinstance(size, int) or size not in sizes:
        valid = ", ".join(f"{s >> 10}K" for s in sizes)
        raise ValueError(f"thp_sizes: no anonymous THP size {size!r} on {a.name} "
                         f"(give the size in bytes, one of {valid})")  # fmt: skip
    if mode not in THP_SIZE_MODES:
        raise ValueError(f"thp_sizes: {size >> 10}K must be one of "
                         f"{', '.join(THP_SIZE_MODES)}, not {mode!r}")  # fmt: skip


class MmStruct(mm_struct):
    """A simulated mm_struct (see the module docstring); ``mm_alloc``
    makes one from checked parameters. The fields the C paths read are
    typed in its base (_mm_types.pxd): ``arch``, ``page_shift``,
    ``page_size``, ``pmd_mask``, ``task_size``, ``mmap_min_addr``,
    ``pte_table_bytes``, ``tables``, ``tlbs``, ``vmas`` (sorted by
    address: mm_mt; a process has few), ``policy``, ``pmc``, ``cpu``,
    ``trace_moves`` (record every mremap step by step:
    ``last_move.trace``), ``max_map_count``, ``page_table_limit`` and
    ``last_move``."""

    vmas: list[Vma]

    def __init__(
        self,
        arch: Arch,
        cpus: int,
        thp: str,
        thp_sizes: Mapping[int, str],
        max_map_count: int,
        policy: Policy,
        page_table_limit: int | None,
    ) -> None:
        rule = _flush.rule_class(arch.flush.rule)(arch.flush.params())
        levels = arch.levels
        tables = _tables.PageTables([lv.shift for lv in levels], [lv.entries for lv in levels])
        super().__init__(arch, tables, _flush.Tlbs(cpus, arch.tlb_geometry(), rule))
        #: mmap_lock: held by every operation on the mm (AddressSpace takes
        #: it for each public call; userfaultfd ioctls take it themselves)
        self.mmap_lock = threading.RLock()
        self.cpus = cpus
        self.thp = thp
        #: hugepages-<size>kB/enabled for every anonymous THP size
        self.thp_sizes = dict(thp_sizes)
        self.max_map_count = max_map_count
        self.set_page_table_limit(page_table_limit)
        #: the userfaultfds by id (a VMA's ``uffd`` names one)
        self.userfaultfds: dict[int, UserfaultfdCtx] = {}
        #: fault_around_bytes (mm/memory.c): the window a read fault in a
        #: file VMA maps (``memory.fault_around``)
        self.fault_around_bytes = FAULT_AROUND_BYTES
        self.set_policy(policy)
        #: the CPU that makes system calls (it runs the process: in mm_cpumask)
        self.cpu = 0
        self.switch_mm(0)

    def set_policy(self, p: Policy) -> None:
        """Run under kernel policy ``p`` from now on: its move-engine
        configuration crosses into C once, here."""
        self.pmc = _move.PagetableMoveControl(mremap_config(self.arch, p))
        self.tlbs.ipi_lazy = p.flush_lazy
        self.tlbs.freed_ipi_lazy = p.flush_freed_lazy
        self.tlbs.batched_pending_call = p.batched_pending_check
        self.tlbs.batched_pending_barrier = (self.arch.flush.batched_pending_barrier
                                             and not p.batched_pending_flush_mm)  # fmt: skip
        # faults and splits fold contiguous blocks from now on (entries
        # already written keep their bit)
        if not p.contpte and self.tables.cont_ptes:
            self.tables.clear_cont()  # no block stays folded under a kernel without contpte
            for cpu in self.tlbs.cpumask():
                self.tlbs.flush_all(cpu)
        self.tables.cont_ptes = self.arch.cont_ptes if p.contpte else 0
        self.policy = p

    def page_align(self, n: int) -> int:
        """PAGE_ALIGN: ``n`` rounded up to a page."""
        return (n + self.page_size - 1) & ~(self.page_size - 1)

    def page_aligned(self, n: int) -> bool:
        """PAGE_ALIGNED: whether ``n`` is a multiple of the page size."""
        return n & (self.page_size - 1) == 0

    def set_page_table_limit(self, limit: int | None) -> None:
        """Bytes of page tables the mm may use (None: no limit)."""
        self.page_table_limit = limit
        self.tables.limit_bytes = 0 if limit is None else limit

    # which CPUs run the mm (switch_mm, enter_lazy_tlb, leaving it)

    def switch_mm(self, cpu: int) -> None:
        """``cpu`` runs this mm: it joins mm_cpumask (leaving lazy TLB mode)."""
        self.tlbs.set_cpu(cpu)

    def enter_lazy_tlb(self, cpu: int) -> None:
        """``cpu`` runs a kernel thread or idles with this mm still loaded."""
        self.tlbs.set_cpu(cpu, True, lazy=True)

    def leave_mm(self, cpu: int) -> None:
        """``cpu`` switches to another process: it leaves mm_cpumask, and its
        TLB entries for this mm are gone when it comes back."""
        self.tlbs.set_cpu(cpu, False)
        self.tlbs.flush_all(cpu)
