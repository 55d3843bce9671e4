"""The simulated process's memory as data (include/linux/mm_types.h).

``MmStruct`` plays struct mm_struct: the VMAs, the page tables, the TLBs
of the CPUs that run it, the kernel policy with its compiled move-engine
configuration, the userfaultfds, and the CPU making system calls. ``Vma``
plays vm_area_struct and ``Shm`` the shmem object behind a shared anonymous
mapping. The kernel's files (vma.py, memory.py, userfaultfd.py, mremap.py,
persist.py) operate on an MmStruct as mm/*.c operate on mm_struct;
``AddressSpace`` (space.py) is the locked facade above it. Nothing here
checks a system call's arguments: the facade does, once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from . import _flush, _move, _tables, _tlb
from .arch import Arch
from .arch import arch as lookup_arch
from .argcheck import check_int
from .constants import PROT_EXEC, PROT_READ, PROT_WRITE
from .policy import Policy
from .policy import policy as lookup_policy
from .stats import MoveStats

__all__ = [
    "MAX_CPUS",
    "THP_MODES",
    "THP_SIZE_MODES",
    "VM_HUGEPAGE",
    "VM_NOHUGEPAGE",
    "VM_UFFD_FLAGS",
    "VM_UFFD_MISSING",
    "VM_UFFD_WP",
    "MmStruct",
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
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP

#: /sys/kernel/mm/transparent_hugepage/enabled
THP_MODES = ("always", "madvise", "never")
#: a size's hugepages-<size>kB/enabled (mm/huge_memory.c anon_enabled_store)
THP_SIZE_MODES = ("always", "inherit", "madvise", "never")
#: CPUs a space may have: the TLB state's cpumask width (_tlb.pxd MAX_TLB_CPUS)
MAX_CPUS: int = _tlb.MAX_TLB_CPUS

_ids = itertools.count(1)


def new_anon_vma() -> int:
    """A fresh anon_vma identity (anon_vma_prepare)."""
    return next(_ids)


class Shm:
    """A shmem object: the pages of a MAP_SHARED|MAP_ANONYMOUS mapping.

    ``frames[i]`` is the frame holding page ``i`` of the object, or -1 if
    that page was never touched. Every mapping of the object (including
    those made by mremap with old_size 0) sees the same frames.
    """

    __slots__ = ("frames", "id")

    def __init__(self, pages: int) -> None:
        self.id = next(_ids)
        self.frames = np.full(pages, -1, dtype=np.int64)

    def __repr__(self) -> str:
        return f"Shm(id={self.id}, pages={self.frames.size})"


@dataclass(slots=True)
class Vma:
    """A vm_area_struct: [start, end) with its flags, object and offset."""

    start: int
    end: int
    prot: int
    shared: bool
    flags: int = 0  # VM_HUGEPAGE / VM_NOHUGEPAGE / VM_UFFD_*
    pgoff: int = 0  # vm_pgoff, in pages
    anon_vma: int | None = None  # anon_vma identity, set at the first anon fault
    shm: Shm | None = None
    uffd: int = 0  # vm_userfaultfd_ctx: the registered userfaultfd's id, 0 none

    def copy(self) -> Vma:
        """A new Vma with the same fields (vm_area_dup)."""
        return Vma(self.start, self.end, self.prot, self.shared, self.flags, self.pgoff,
                   self.anon_vma, self.shm, self.uffd)  # fmt: skip

    def pages(self, page_shift: int) -> int:
        """Its length in pages (vma_pages)."""
        return (self.end - self.start) >> page_shift

    def pgoff_at(self, addr: int, page_shift: int) -> int:
        """vm_pgoff of ``addr`` inside this VMA (linear_page_index)."""
        return self.pgoff + ((addr - self.start) >> page_shift)

    def object_end(self, page_shift: int) -> int:
        """The address past the last page of its shmem object (shared VMAs):
        faults beyond it are SIGBUS."""
        assert self.shm is not None
        return self.start + ((self.shm.frames.size - self.pgoff) << page_shift)

    def info(self) -> VmaInfo:
        """A read-only snapshot."""
        return VmaInfo(self.start, self.end, self.prot, self.shared,
                       bool(self.flags & VM_HUGEPAGE), bool(self.flags & VM_NOHUGEPAGE),
                       self.pgoff, self.uffd)  # fmt: skip


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
        return f"{self.start:012x}-{self.end:012x} {perms} {self.pgoff:08x}"


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


class MmStruct:
    """A simulated mm_struct (see the module docstring); ``mm_alloc``
    makes one from checked parameters."""

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
        #: mmap_lock: held by every operation on the mm (AddressSpace takes
        #: it for each public call; userfaultfd ioctls take it themselves)
        self.mmap_lock = threading.RLock()
        self.arch = arch
        self.cpus = cpus
        self.thp = thp
        #: hugepages-<size>kB/enabled for every anonymous THP size
        self.thp_sizes = dict(thp_sizes)
        self.max_map_count = max_map_count
        self.page_shift = arch.page_shift
        self.page_size = arch.page_size
        self.pmd_mask = arch.pmd_size - 1
        #: nearly all tables a move allocates are PTE tables
        self.pte_table_bytes = arch.levels[-1].table_bytes
        self.tables = _tables.PageTables(
            [lv.shift for lv in arch.levels], [lv.entries for lv in arch.levels]
        )
        self.page_table_limit: int | None = None
        self.set_page_table_limit(page_table_limit)
        #: the VMAs, sorted by address (mm_mt; a process has few)
        self.vmas: list[Vma] = []
        #: the userfaultfds by id (a VMA's ``uffd`` names one)
        self.userfaultfds: dict[int, UserfaultfdCtx] = {}
        self.last_move: MoveStats | None = None
        #: record every mremap step by step (``last_move.trace``)
        self.trace_moves = False
        rule = _flush.rule_class(arch.flush.rule)(arch.flush.params())
        self.tlbs = _flush.Tlbs(cpus, arch.tlb_geometry(), rule)
        self.policy = policy
        #: the move engine's control: the policy's mremap_config, compiled once
        self.pmc: _move.PagetableMoveControl
        self.set_policy(policy)
        #: the CPU that makes system calls (it runs the process: in mm_cpumask)
        self.cpu = 0
        self.switch_mm(0)

    def set_policy(self, p: Policy) -> None:
        """Run under kernel policy ``p`` from now on: its move-engine
        configuration crosses into C once, here."""
        self.pmc = _move.PagetableMoveControl(mremap_config(self.arch, p))
        self.tlbs.ipi_lazy = p.flush_lazy
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
