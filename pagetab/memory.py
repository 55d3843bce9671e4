"""Page faults (mm/memory.c, mm/huge_memory.c, mm/shmem.c, mm/filemap.c,
mm/gup.c).

Anonymous faults map the zero page on reads and a fresh frame on writes,
a PMD-sized THP where the VMA allows one (thp_vma_allowable_order); shared
anonymous memory faults in pages of its shmem object. File VMAs map their
file's page-cache frames: read faults read-only, with the pages around the
fault (do_fault_around, ``fault_around``); write faults in a MAP_SHARED
one make the page writable, in a MAP_PRIVATE one map a private copy
(do_cow_fault, wp_page_copy). ``access`` runs a batch of addresses through
the TLBs and the page walk of _access.pyx and handles here the faults the
C loop hands back (shared memory, file VMAs).
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
from .mm_types import (
    VM_HUGEPAGE,
    VM_NOHUGEPAGE,
    VM_UFFD_MISSING,
    VM_UFFD_WP,
    File,
    MmStruct,
    Vma,
    new_anon_vma,
)
from .stats import AccessStats
from .vma import find_vma

__all__ = [
    "access",
    "fault_around",
    "fault_around_pages",
    "fault_around_window",
    "fault_orders",
    "faultin_range",
    "populate_vma",
    "thp_orders",
]


def thp_orders(mm: MmStruct, v: Vma) -> int:
    """__thp_vma_allowable_orders for an anonymous fault in ``v``: bit o set
    where folios of order o may be allocated. A size's "always" allows it,
    "madvise" in a MADV_HUGEPAGE VMA, "inherit" where the top-level
    ``enabled`` would (always, or madvise in a MADV_HUGEPAGE VMA);
    VM_NOHUGEPAGE and shared memory (shmem_enabled=never) allow none, and
    so do file VMAs: a regular file is PMD-mapped only from a PMD-sized
    folio in its page cache (filemap_map_pages -> filemap_map_pmd,
    do_set_pmd), which pagetab's page caches do not hold (``File.set_folios``
    names smaller large folios)."""
    if v.shared or v.file is not None or v.flags & VM_NOHUGEPAGE:
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
    if v.file is not None:
        return _populate_file(mm, v, start, end, write)
    if v.shm is not None and not write:
        return _populate_shm_read(mm, v, start, end)
    lo, hi, pte_orders = fault_orders(mm, v)
    if v.shared:
        return _populate_shm(mm, v, start, end, write)
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


def fault_around_pages(mm: MmStruct) -> int:
    """fault_around_pages: ``mm.fault_around_bytes`` rounded down to a power
    of two, in pages, at least 1 (mm/memory.c fault_around_bytes_set)."""
    b = mm.fault_around_bytes
    return max((1 << (b.bit_length() - 1) if b else 0) >> mm.page_shift, 1)


def fault_around_window(mm: MmStruct, v: Vma, addr: int) -> tuple[int, int]:
    """[lo, hi): the pages a read fault at ``addr`` in the file VMA ``v``
    maps (mm/memory.c do_fault_around, then filemap_map_pages).

    The fault_around_pages-aligned block of PTEs around the fault, clipped
    to the VMA and to its PTE table, then to the file's last page
    (filemap_map_pages' end_pgoff). Only the faulting page when
    should_fault_around says no (fault_around_pages 1, or a VMA registered
    for userfaultfd WP: uffd_disable_fault_around).
    """
    ps = mm.page_shift
    page = addr & ~(mm.page_size - 1)
    nr = fault_around_pages(mm)
    if nr <= 1 or v.flags & VM_UFFD_WP:
        return page, page + mm.page_size
    ptrs = mm.arch.pmd_size >> ps  # PTRS_PER_PTE
    pte_off = (page >> ps) & (ptrs - 1)
    vma_off = (page - v.start) >> ps
    # from_pte: the block's start, clamped to the VMA; to_pte (exclusive
    # here): nr_pages on, clamped to the PTE table and to the VMA
    from_pte = max(pte_off & ~(nr - 1), pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr, ptrs, pte_off + v.pages(ps) - vma_off)
    table = page & ~(mm.arch.pmd_size - 1)
    lo, hi = table + (from_pte << ps), table + (to_pte << ps)
    return lo, min(hi, v.object_end(ps))


def fault_around(mm: MmStruct, v: Vma, addr: int) -> int:
    """A read fault at ``addr`` (below the object's end) in ``v``, a file
    or shared-memory VMA: do_read_fault, which maps ``fault_around_window``
    from the page cache, read-only, where nothing is mapped yet.

    filemap_map_pages maps only the pages in the page cache (uptodate): of
    a file, ``File.cached`` says which (None: all of them, pagetab doing no
    I/O); of a shmem object (shmem_vm_ops maps pages the same way), those
    it holds. A faulting page it did not map is read in (__do_fault: the
    whole folio it belongs to; shmem_fault adds a new page to the object)
    and cached from then, and finish_fault maps it (``_finish_fault``).
    Returns the address reached: past ``addr``'s page, or at or below it
    when page-table memory ran out.
    """
    lo, hi = fault_around_window(mm, v, addr)
    page = addr & ~(mm.page_size - 1)
    f = v.file
    if v.shm is not None:
        got = _populate_shm(mm, v, page, page + mm.page_size, False)
        if got > page and _map_cached(mm, v, lo, hi) < hi:
            return page  # out of page-table memory in the window
        return got
    assert f is not None
    ps = mm.page_shift
    first, here = v.pgoff_at(lo, ps), v.pgoff_at(page, ps)
    last = first + ((hi - lo) >> ps)
    _refuse_pmd_folios(mm, f, min(first, here), max(last, here + 1))  # before any change
    if hi - lo > mm.page_size:  # should_fault_around: do_fault_around maps the window
        cached = (np.ones(last - first, dtype=np.bool_) if f.cached is None
                  else f.cached[first:last])  # fmt: skip
        for s, e in _runs(cached):
            start, end = lo + (s << ps), lo + (e << ps)
            if _map_file_pages(mm, v, start, end) < end:
                break  # out of page-table memory: the rest of the window stays unmapped
        else:
            _map_whole_folios(mm, v, first, last)
        if mm.tables.frames(page, page + mm.page_size)[0] >= 0:
            return page + mm.page_size  # VM_FAULT_NOPAGE: fault-around mapped it
        if f.cached is None or f.cached[here]:
            return page  # its run was cut short: out of page-table memory
    # __do_fault: filemap_fault reads the page in, with the folio it is part of
    start, end = _finish_fault(mm, v, page, _read_in(f, here))
    got = _map_file_pages(mm, v, start, end)
    return page + mm.page_size if got > page else page


def _folios_meeting(f: File, first: int, last: int) -> list[tuple[int, int]]:
    """The large folios ``File.set_folios`` named that meet page indices
    [first, last): those ending after first and starting before last."""
    if f.folios is None:
        return []
    i = int(np.searchsorted(f.folios[:, 1], first, side="right"))
    j = int(np.searchsorted(f.folios[:, 0], last, side="left"))
    return [(lo, hi) for lo, hi in f.folios[i:j].tolist()]


def _read_in(f: File, index: int) -> tuple[int, int]:
    """filemap_fault reading page ``index`` of ``f`` in: the page indices
    ``[lo, hi)`` of its folio (a large one, else the page), cached from then."""
    got = _folios_meeting(f, index, index + 1)
    lo, hi = got[0] if got else (index, index + 1)
    if f.cached is not None and index < f.cached.size:
        f.cached[lo:hi] = True
    return lo, hi


def _refuse_pmd_folios(mm: MmStruct, f: File, first: int, last: int) -> None:
    """NotImplementedError if a PMD-sized page-cache folio meets page
    indices [first, last): the kernel may map it with one PMD
    (filemap_map_pmd, finish_fault's do_set_pmd), which pagetab's file
    mappings do not model."""
    pmd_pages = mm.arch.pmd_size >> mm.page_shift
    if any(hi - lo >= pmd_pages for lo, hi in _folios_meeting(f, first, last)):
        raise NotImplementedError(
            "a PMD-sized page-cache folio: the kernel may map it with one PMD "
            "(filemap_map_pmd, do_set_pmd), which pagetab's file mappings do not model"
        )


def _folio_span(mm: MmStruct, v: Vma, folio: tuple[int, int]) -> tuple[int, int] | None:
    """[start, end): where the folio of page indices ``folio`` lies in
    ``v``, if it lies inside ``v`` and inside one PTE table (both whole-folio
    rules, folio_within_vma and the PMD test); None otherwise."""
    ps = mm.page_shift
    start = v.start + ((folio[0] - v.pgoff) << ps)
    end = start + ((folio[1] - folio[0]) << ps)
    table = ~(mm.arch.pmd_size - 1)
    if start < v.start or end > v.end or start & table != (end - 1) & table:
        return None
    return start, end


def _finish_fault(mm: MmStruct, v: Vma, page: int, folio: tuple[int, int]) -> tuple[int, int]:
    """[start, end): what finish_fault maps for a fault at ``page`` in the
    file VMA ``v`` whose page-cache folio is ``folio`` (page indices): the
    whole folio (19773df031bc, Linux 6.18: ``Policy.finish_fault_whole_folio``)
    where it lies inside ``v`` and inside one PTE table, wholly below the
    file's end (``DIV_ROUND_UP(i_size) >= folio_next_index``: one page laxer
    than fault-around's test), every entry it covers is none, and ``v``
    has no userfaultfd; else the page alone."""
    single = (page, page + mm.page_size)
    f = v.file
    assert f is not None
    if folio[1] - folio[0] < 2 or not mm.policy.finish_fault_whole_folio \
            or v.flags & (VM_UFFD_MISSING | VM_UFFD_WP):  # fmt: skip
        return single
    span = _folio_span(mm, v, folio)
    pages = (f.size + mm.page_size - 1) >> mm.page_shift
    if span is None or folio[1] > pages:
        return single
    if (mm.tables.frames(*span) >= 0).any():
        return single  # !pte_range_none: the fallback maps the page alone
    return span


def _shared_write_fault(mm: MmStruct, v: Vma, page: int) -> int:
    """A write fault at ``page`` in the shared file VMA ``v``
    (do_shared_fault): the page read in with its folio, then finish_fault
    maps it writable, with the rest of its folio where ``_finish_fault``
    says so. Returns the address reached."""
    f = v.file
    assert f is not None
    here = v.pgoff_at(page, mm.page_shift)
    _refuse_pmd_folios(mm, f, here, here + 1)
    start, end = _finish_fault(mm, v, page, _read_in(f, here))
    got = populate_vma(mm, v, start, end, True)
    return got if got <= page else max(got, page + mm.page_size)


def _map_whole_folios(mm: MmStruct, v: Vma, first: int, last: int) -> None:
    """filemap_map_folio_range's whole-folio case: each cached large folio
    of ``v``'s file that meets page indices [first, last) (the window) is
    mapped whole where it lies inside ``v``, inside one PTE table and
    wholly below the file's last page (i_size: SIGBUS beyond it must
    stay); none PTEs only, as the window's own pages. Nothing before
    ``Policy.fault_around_whole_folio``, or with small folios only."""
    f = v.file
    assert f is not None
    if not mm.policy.fault_around_whole_folio:
        return
    file_end = ((f.size + mm.page_size - 1) >> mm.page_shift) - 1  # the last page's index
    for flo, fhi in _folios_meeting(f, first, last):
        if f.cached is not None and not f.cached[flo:fhi].all():
            continue  # not uptodate whole: next_uptodate_folio skips it
        span = _folio_span(mm, v, (flo, fhi))
        if fhi > file_end or span is None:
            continue
        if _map_file_pages(mm, v, *span) < span[1]:
            return  # out of page-table memory


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The runs ``[s, e)`` of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _map_file_pages(mm: MmStruct, v: Vma, start: int, end: int) -> int:
    """Map [start, end) of the file or shared-memory VMA ``v`` read-only
    from its page cache (none PTEs only; a page the object lacks is added
    to it); returns the address reached."""
    cache = v.cache
    assert cache is not None
    reached, _ = mm.tables.populate(
        start, end, _tables.POP_FILE_READ, bool(v.prot & PROT_READ), False, 0, 0,
        cache.frames, v.pgoff_at(start, mm.page_shift),
    )  # fmt: skip
    return int(reached)


def _map_cached(mm: MmStruct, v: Vma, lo: int, hi: int) -> int:
    """Map, read-only where nothing is mapped, the pages of [lo, hi) that
    the shared-memory VMA ``v``'s object holds (filemap_map_pages on a
    shmem object); returns ``hi``, or where page-table memory ran out."""
    assert v.shm is not None
    first = v.pgoff_at(lo, mm.page_shift)
    for s, e in _runs(v.shm.frames[first : first + ((hi - lo) >> mm.page_shift)] >= 0):
        start, end = lo + (s << mm.page_shift), lo + (e << mm.page_shift)
        got = _map_file_pages(mm, v, start, end)
        if got < end:
            return got
    return hi


def _populate_shm(mm: MmStruct, v: Vma, start: int, end: int, write: bool) -> int:
    """shmem_fault over [start, end) of the shared-memory VMA ``v``: the
    object's pages (new ones where it has none), writable on a write."""
    assert v.shm is not None
    reached, _ = mm.tables.populate(
        start, end, _tables.POP_SHARED, bool(v.prot & PROT_READ),
        bool(v.prot & PROT_WRITE) and write, 0, 0, v.shm.frames,
        v.pgoff_at(start, mm.page_shift),
    )  # fmt: skip
    return int(reached)


def _populate_shm_read(mm: MmStruct, v: Vma, start: int, end: int) -> int:
    """populate_vma's read faults in shared memory: each page of [start,
    end) not mapped faults (GUP), bringing it in, and each fault maps the
    pages the object holds in its fault-around window; a window with no
    fault stays as it was."""
    nr = fault_around_pages(mm)
    if nr <= 1 or v.flags & VM_UFFD_WP:
        return _populate_shm(mm, v, start, end, False)
    ps = mm.page_shift
    holes = np.flatnonzero(mm.tables.frames(start, end) < 0)
    windows = sorted({fault_around_window(mm, v, start + (int(i) << ps)) for i in holes})
    reached = _populate_shm(mm, v, start, end, False)
    for lo, hi in windows:
        got = _map_cached(mm, v, lo, hi)
        if got < hi:
            return min(reached, max(got, start))
    return reached


def _populate_file(mm: MmStruct, v: Vma, start: int, end: int, write: bool) -> int:
    """populate_vma for a file VMA; [start, end) lies below the file's end."""
    assert v.file is not None
    ps = mm.page_shift
    if write:
        if v.shared:
            # do_shared_fault: the page cache's page, made writable and dirty
            mode = _tables.POP_SHARED
        else:
            # do_cow_fault: a private copy of each page
            mode = _tables.POP_FILE_COW
            if v.anon_vma is None:
                v.anon_vma = new_anon_vma()  # anon_vma_prepare: the copy is anonymous
        reached, _ = mm.tables.populate(
            start, end, mode, bool(v.prot & PROT_READ), bool(v.prot & PROT_WRITE), 0, 0,
            v.file.frames, v.pgoff_at(start, ps),
        )  # fmt: skip
        return int(reached)
    nr = fault_around_pages(mm)
    if nr <= 1 or v.flags & VM_UFFD_WP:
        return _map_file_pages(mm, v, start, end)
    # GUP faults each page not mapped yet, in order, and each read fault
    # maps its window: every fault-around block with a hole in [start,
    # end) gets mapped whole (clipped as fault_around_window clips)
    block = nr << ps
    first = start & ~(block - 1)
    last = (end + block - 1) & ~(block - 1)
    holes = np.zeros((last - first) >> ps, dtype=bool)
    holes[(start - first) >> ps : (end - first) >> ps] = (
        mm.tables.frames(start, end) < 0
    )  # fmt: skip
    todo = np.asarray(holes.reshape(-1, nr).any(axis=1), dtype=bool)
    obj_end = v.object_end(ps)
    i, n = 0, todo.size
    while i < n:
        if not todo[i]:
            i += 1
            continue
        j = i
        while j < n and todo[j]:
            j += 1
        lo = max(first + i * block, v.start)
        hi = min(first + j * block, v.end, obj_end)
        got = _map_file_pages(mm, v, lo, hi)
        if got < hi:
            return max(min(got, end), start)
        i = j
    return end


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
        if v.cache is not None:
            # pages past the end of the shmem object or file: SIGBUS, so EFAULT
            obj_end = v.object_end(mm.page_shift)
            if reach >= obj_end:
                what = "shared object" if v.file is None else "end of its file"
                raise OSError(errno.EFAULT, f"{call}: {reach:#x} is past the {what}")
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
        # faults the C loop hands back to Python: shmem, userfaultfd MISSING
        # ranges, file VMAs (a private one's copy-on-write flushed in C first)
        "shared": np.array([_hand_back(v) for v in vs], dtype=np.int64),
        "touched": np.zeros(len(vs), dtype=np.uint8),
    }


def _hand_back(v: Vma) -> int:
    """The access loop's ``shared`` word for ``v`` (_access.HAND_BACK*)."""
    if v.file is not None and not v.shared:
        return _access.HAND_BACK_COW
    if v.shared or v.file is not None or v.flags & VM_UFFD_MISSING:
        return _access.HAND_BACK
    return 0


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
    handed = -1  # the access whose fault was handled here last
    try:
        while True:
            stop, c, o = _access.access(mm.tlbs, mm.tables, arr, cpu, write, table, i)
            _accumulate(total, c)
            _accumulate(ops, o)
            if stop < 0:
                raise MemoryError(f"access: out of page-table memory at {int(arr[-1 - stop]):#x}")
            if stop >= n:
                break
            # a fault in shared memory or a file VMA (shmem_fault,
            # filemap_fault), here in Python
            addr = int(arr[stop])
            if stop == handed:
                # handled once already: it would loop for ever
                raise RuntimeError(f"access: the fault at {addr:#x} did not map the page")
            handed = stop
            v = find_vma(mm, addr)
            assert v is not None
            if v.flags & VM_UFFD_MISSING:
                raise NotImplementedError(_UFFD_MISSING)
            assert v.cache is not None
            page = addr & ~(mm.page_size - 1)
            if page >= v.object_end(mm.page_shift):
                total["segv"] = total.get("segv", 0) + 1  # SIGBUS past the object
                total["accesses"] = total.get("accesses", 0) + 1
                i = stop + 1
                continue
            if not write:
                got = fault_around(mm, v, page)  # do_read_fault
            elif v.shared and v.file is not None:
                got = _shared_write_fault(mm, v, page)  # do_shared_fault
            else:
                got = populate_vma(mm, v, page, page + mm.page_size, write)
            if got <= page:
                raise MemoryError(f"access: out of page-table memory at {addr:#x}")
            total["faults"] = total.get("faults", 0) + 1
            i = stop
    finally:
        # (also when a fault or a signal stops the loop: what it wrote stays
        # written, in a VMA with an anon_vma, as the kernel's faults leave it)
        for idx in np.flatnonzero(table["touched"]):
            v = mm.vmas[int(idx)]
            if v.anon_vma is None:
                v.anon_vma = new_anon_vma()
    ns, breakdown = access_cost(mm.arch, total, ops)
    return AccessStats(cpu=cpu, write=write, flush_ops=ops, estimated_ns=ns,
                       breakdown=breakdown, wall_ns=time.perf_counter_ns() - t0,
                       estimated_ns_range=access_cost_range(mm.arch, total, ops),
                       **total)  # fmt: skip
