"""Page faults (mm/memory.c, mm/huge_memory.c, mm/shmem.c, mm/gup.c).

Anonymous faults map the zero page on reads and a fresh frame on writes,
a PMD-sized THP where the VMA allows one (thp_vma_allowable_order); shared
anonymous memory faults in pages of its shmem object. ``access`` runs a
batch of addresses through the TLBs and the page walk of _access.pyx and
handles here the faults the C loop hands back (shared memory).
"""

from __future__ import annotations

import errno
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _access, _tables
from .constants import PROT_NONE, PROT_READ, PROT_WRITE
from .cost import access_cost, access_cost_range
from .mm_types import VM_HUGEPAGE, VM_NOHUGEPAGE, VM_UFFD_MISSING, MmStruct, Vma, new_anon_vma
from .stats import AccessStats
from .vma import find_vma

__all__ = ["access", "fault_orders", "faultin_range", "populate_vma", "thp_orders"]


def thp_orders(mm: MmStruct, v: Vma) -> int:
    """__thp_vma_allowable_orders for an anonymous fault in ``v``: bit o set
    where folios of order o may be allocated. A size's "always" allows it,
    "madvise" in a MADV_HUGEPAGE VMA, "inherit" where the top-level
    ``enabled`` would (always, or madvise in a MADV_HUGEPAGE VMA);
    VM_NOHUGEPAGE and shared memory (shmem_enabled=never) allow none."""
    if v.shared or v.flags & VM_NOHUGEPAGE:
        return 0
    advised = bool(v.flags & VM_HUGEPAGE)
    inherit = mm.thp == "always" or (advised and mm.thp != "never")
    orders = 0
    for size, mode in mm.thp_sizes.items():
        if mode == "always" or (mode == "madvise" and advised) or (mode == "inherit" and inherit):
            orders |= 1 << (size.bit_length() - 1 - mm.page_shift)
    return orders


def _pmd_order(mm: MmStruct) -> int:
    return mm.arch.pmd_size.bit_length() - 1 - mm.page_shift


def fault_orders(mm: MmStruct, v: Vma) -> tuple[int, int, int]:
    """What thp_orders allows a fault in ``v``, split as the fault path uses
    it: (thp_lo, thp_hi), the range where PMD THPs may be installed ((0, 0)
    when the PMD order is not allowed), and the orders below the PMD's that
    alloc_anon_folio may use."""
    orders, pmd = thp_orders(mm, v), _pmd_order(mm)
    lo, hi = (v.start, v.end) if orders >> pmd & 1 else (0, 0)
    return lo, hi, orders & ((1 << pmd) - 1)


_UFFD_MISSING = (
    "a fault in a userfaultfd MISSING-mode range is delivered to its handler "
    "thread, which pagetab does not simulate (WP-mode ranges fault as usual)"
)


def populate_vma(mm: MmStruct, v: Vma, start: int, end: int, write: bool) -> int:
    """Fault in [start, end) of ``v``. Returns the address reached (less
    than ``end`` when page-table memory ran out)."""
    if v.flags & VM_UFFD_MISSING:
        raise NotImplementedError(_UFFD_MISSING)
    lo, hi, pte_orders = fault_orders(mm, v)
    if v.shared:
        assert v.shm is not None
        reached, _ = mm.tables.populate(
            start,
            end,
            _tables.POP_SHARED,
            bool(v.prot & PROT_READ),
            bool(v.prot & PROT_WRITE) and write,
            0,
            0,
            v.shm.frames,
            v.pgoff_at(start, mm.page_shift),
        )
        return int(reached)
    pmd = mm.arch.pmd_size
    block = start & ~(pmd - 1)
    if block < lo:
        block += pmd
    touches_thp = hi > lo and block < end and block + pmd <= hi
    if v.anon_vma is None and (write or touches_thp):
        v.anon_vma = new_anon_vma()  # anon_vma_prepare on the first anon fault
    mode = _tables.POP_WRITE if write else _tables.POP_READ
    reached, _ = mm.tables.populate(
        start, end, mode, bool(v.prot & PROT_READ), bool(v.prot & PROT_WRITE), lo, hi,
        orders=pte_orders, vm_start=v.start, vm_end=v.end,
    )  # fmt: skip
    return int(reached)


def faultin_range(mm: MmStruct, addr: int, end: int, write: bool) -> None:
    """madvise_populate: fault in [addr, end) VMA by VMA, stopping at the
    first page that cannot be faulted, with the errno Linux gives there
    (what was faulted before it stays, as in Linux)."""
    call = "madvise"
    reach = addr
    while reach < end:
        v = find_vma(mm, reach)
        if v is None:
            raise OSError(errno.ENOMEM, f"{call}: nothing is mapped at {reach:#x}")
        if v.prot == PROT_NONE or (write and not v.prot & PROT_WRITE):
            # __get_user_pages with FOLL_MADV_POPULATE: check_vma_flags
            # failing is EINVAL (EFAULT is kept for SIGBUS/SIGSEGV)
            raise OSError(
                errno.EINVAL, f"{call}: cannot {'write' if write else 'read'}-fault {reach:#x}"
            )
        stop = min(v.end, end)
        if v.shm is not None:
            # pages past the end of the shmem object: SIGBUS, so EFAULT
            obj_end = v.object_end(mm.page_shift)
            if reach >= obj_end:
                raise OSError(errno.EFAULT, f"{call}: {reach:#x} is past the shared object")
            stop = min(stop, obj_end)
        got = populate_vma(mm, v, reach, stop, write)
        if got < stop:
            raise OSError(errno.ENOMEM, f"{call}: out of page-table memory at {got:#x}")
        reach = stop


def _vma_table(mm: MmStruct) -> dict[str, npt.NDArray[Any]]:
    """The VMAs as arrays for the C fault path."""
    vs = mm.vmas
    faults = [fault_orders(mm, v) for v in vs]
    return {
        "start": np.array([v.start for v in vs], dtype=np.uint64),
        "end": np.array([v.end for v in vs], dtype=np.uint64),
        "prot": np.array([v.prot for v in vs], dtype=np.int64),
        "thp_lo": np.array([f[0] for f in faults], dtype=np.uint64),
        "thp_hi": np.array([f[1] for f in faults], dtype=np.uint64),
        "orders": np.array([f[2] for f in faults], dtype=np.uint64),
        # faults the C loop hands back to Python: shmem, and userfaultfd MISSING ranges
        "shared": np.array(
            [v.shared or bool(v.flags & VM_UFFD_MISSING) for v in vs], dtype=np.int64
        ),
        "touched": np.zeros(len(vs), dtype=np.uint8),
    }


def _accumulate(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + int(v)


def access(mm: MmStruct, arr: npt.NDArray[np.uint64], cpu: int, write: bool) -> AccessStats:
    """Run the validated addresses ``arr`` from ``cpu`` (see AddressSpace.access)."""
    t0 = time.perf_counter_ns()
    table = _vma_table(mm)
    total: dict[str, int] = {}
    ops: dict[str, int] = {}
    i = 0
    n = int(arr.size)
    while True:
        stop, c, o = _access.access(mm.tlbs, mm.tables, arr, cpu, write, table, i)
        _accumulate(total, c)
        _accumulate(ops, o)
        if stop < 0:
            raise MemoryError(f"access: out of page-table memory at {int(arr[-1 - stop]):#x}")
        if stop >= n:
            break
        # a fault in shared memory: shmem_fault, here in Python
        addr = int(arr[stop])
        v = find_vma(mm, addr)
        assert v is not None
        if v.flags & VM_UFFD_MISSING:
            raise NotImplementedError(_UFFD_MISSING)
        assert v.shm is not None
        page = addr & ~(mm.page_size - 1)
        if page >= v.object_end(mm.page_shift):
            total["segv"] = total.get("segv", 0) + 1  # SIGBUS past the object
            total["accesses"] = total.get("accesses", 0) + 1
            i = stop + 1
            continue
        if populate_vma(mm, v, page, page + mm.page_size, write) <= page:
            raise MemoryError(f"access: out of page-table memory at {addr:#x}")
        total["faults"] = total.get("faults", 0) + 1
        i = stop
    for idx in np.flatnonzero(table["touched"]):
        v = mm.vmas[int(idx)]
        if v.anon_vma is None:
            v.anon_vma = new_anon_vma()
    ns, breakdown = access_cost(mm.arch, total, ops)
    return AccessStats(cpu=cpu, write=write, flush_ops=ops, estimated_ns=ns,
                       breakdown=breakdown, wall_ns=time.perf_counter_ns() - t0,
                       estimated_ns_range=access_cost_range(mm.arch, total, ops),
                       **total)  # fmt: skip
