# cython: language_level=3
"""mremap(2)'s common case in C (mm/mremap.c): one whole VMA moved into a hole.

A pure MREMAP_MAYMOVE|MREMAP_FIXED move of exactly one VMA to a free range
that no VMA touches: check_mremap_params passes, copy_vma cannot merge (so
no rmap locks), move_page_tables runs, and the source is unmapped
(unmap_region: zap, free_pgtables, tlb_finish_mmu's flush). This is what
moving collectors and realloc do; here it is one C call, its record kept
as the engine's struct until ``last_move`` is read. Every other call, and
this one when a userfaultfd, a pending reclaim flush, a page-table limit,
a trace or try_realign_addr is involved, takes the general path in
mremap.py, which gives the same result (tests/test_fast_paths.py checks
that) and raises every error.
"""

from libc.stdint cimport int64_t, uint64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from pagetab._flush cimport Tlbs, tlb_flush_gather
from pagetab._memory cimport free_pgtables, freed_tables, zap_page_range
from pagetab._mm_types cimport mm_struct, pending_move, vm_area_struct
from pagetab._move cimport PagetableMoveControl, move_stats, move_tables
from pagetab._pgtable cimport bytes_below_root, pgtables
from pagetab._tables cimport PageTables
from pagetab._tables import NO_TABLE_MEMORY

from pagetab.constants import MREMAP_FIXED, MREMAP_MAYMOVE

cdef uint64_t FIXED_MOVE = MREMAP_MAYMOVE | MREMAP_FIXED
cdef uint64_t NO_CEILING = <uint64_t>-1


cdef inline int64_t monotonic_ns() noexcept nogil:
    """time.perf_counter_ns (CLOCK_MONOTONIC on Linux), as the general path times."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline Py_ssize_t index_after(list vs, uint64_t addr) noexcept:
    """Index of the first VMA whose end is > addr (vma.index_after)."""
    cdef Py_ssize_t lo = 0, hi = len(vs), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if (<vm_area_struct>vs[mid]).end <= addr:
            lo = mid + 1
        else:
            hi = mid
    return lo


def mremap_whole_vma(mm_struct mm not None, addr, old_size, new_size, flags, new_addr):
    """do_mremap of one whole VMA into a hole (see the module docstring).

    Returns the new address, or None when the call is not that case: the
    caller then runs the general path, which checks the arguments again
    and raises any error. Nothing has changed when it returns None.
    """
    cdef uint64_t a, o, n, f, na, mask, length
    cdef list vs = mm.vmas
    cdef Py_ssize_t i, j, nv = len(vs)
    cdef vm_area_struct vma
    if type(addr) is not int or type(old_size) is not int or type(new_size) is not int \
            or type(flags) is not int or type(new_addr) is not int:
        return None
    try:
        a, o, n, f, na = addr, old_size, new_size, flags, new_addr
    except OverflowError:
        return None
    # check_mremap_params, as far as this case goes
    mask = mm.page_size - 1
    length = (o + mask) & ~mask
    if f != FIXED_MOVE or length != (n + mask) & ~mask or length == 0 \
            or length > mm.task_size or na > mm.task_size - length \
            or (a | na) & mask or na < mm.mmap_min_addr or a > NO_CEILING - length \
            or (a + length > na and na + length > a) or nv + 4 > mm.max_map_count:
        return None
    # what the general path handles: try_realign_addr, a pending reclaim
    # flush, a page-table limit (a move may fail part way), tracing
    if a & mm.pmd_mask or mm.tlbs.s.tlb_flush_batched or mm.trace_moves \
            or mm.page_table_limit is not None:
        return None
    # exactly one VMA, not registered with a userfaultfd, moved into a
    # hole no VMA touches (so that nothing splits or merges)
    i = index_after(vs, a)
    if i == nv:
        return None
    vma = <vm_area_struct>vs[i]
    if vma.start != a or vma.end != a + length or vma.uffd:
        return None
    j = index_after(vs, na)
    if not ((j == nv or (<vm_area_struct>vs[j]).start > na + length)
            and (j == 0 or (<vm_area_struct>vs[j - 1]).end < na)):
        return None
    move_whole_vma(mm, i, vma, a, length, na)
    return na


cdef void move_whole_vma(mm_struct mm, Py_ssize_t i, vm_area_struct vma, uint64_t addr,
                         uint64_t length, uint64_t new_addr) except *:
    """move_vma of ``vma`` (``mm.vmas[i]``) into the hole at ``new_addr``,
    then do_vmi_munmap of the source; the record into ``mm.pending``."""
    cdef list vs = mm.vmas
    cdef Py_ssize_t nv = len(vs)
    cdef PageTables tables = mm.tables
    cdef pgtables *pt = &tables.pgt
    cdef Tlbs tlbs = mm.tlbs
    cdef pending_move q
    cdef pending_move *p = &q  # into mm.pending once the move is done
    cdef uint64_t end = addr + length, new_end = new_addr + length
    cdef uint64_t floor, ceiling, moved, lo, hi
    cdef int64_t zapped = 0
    cdef int shift, rc
    cdef freed_tables freed
    cdef bint has_freed
    cdef int64_t t0 = monotonic_ns(), freed0 = pt.tables_freed
    p.page_table_bytes_before = bytes_below_root(pt)
    # free_pgtables' floor and ceiling for the source once the new VMA
    # exists: the nearest VMA ends around it, the new one included
    floor = (<vm_area_struct>vs[i - 1]).end if i > 0 else 0
    ceiling = (<vm_area_struct>vs[i + 1]).start if i + 1 < nv else 0
    if floor < new_end <= addr:
        floor = new_end
    if end <= new_addr and (ceiling == 0 or new_addr < ceiling):
        ceiling = new_addr
    mm.pmc.begin(addr, new_addr, length, False, vma.anon_vma is not None, mm.cpu, floor,
                 ceiling if ceiling else NO_CEILING, False, vma.file is not None)
    move_tables(tables, tlbs, mm.pmc, False, &p.rec, &moved)
    if moved < length:  # only a page-table limit stops a move, and there is none
        raise MemoryError("move_page_tables stopped part way with no page-table limit")
    # the VMA itself moves: nothing else refers to it
    del vs[i]
    vma.start = new_addr
    vma.end = new_end
    if vma.shm is None and vma.file is None and vma.anon_vma is None:
        vma.pgoff = new_addr >> mm.page_shift  # copy_vma: unfaulted anon
    vs.insert(index_after(vs, new_addr), vma)
    # unmap_region of the source: zap, free_pgtables (with the PTE tables
    # the engine released at once, which the kernel frees here), one flush
    with nogil:
        rc = zap_page_range(pt, addr, end, &zapped)
        freed.lo = freed.hi = 0
        freed.shift = 0
        free_pgtables(pt, addr, end, floor, ceiling, &freed)
    if rc < 0:
        raise MemoryError(NO_TABLE_MEMORY)
    has_freed = freed.shift != 0
    if p.rec.tables_freed_early > 0:
        # _freed_early: the released tables' span, at PMD stride
        lo = addr & ~mm.pmd_mask
        if lo < ((floor + mm.pmd_mask) & ~mm.pmd_mask):
            lo = (floor + mm.pmd_mask) & ~mm.pmd_mask
        hi = (end - 1) & ~mm.pmd_mask
        if hi > ((ceiling if ceiling else NO_CEILING) & ~mm.pmd_mask) - (mm.pmd_mask + 1):
            hi = ((ceiling if ceiling else NO_CEILING) & ~mm.pmd_mask) - (mm.pmd_mask + 1)
        hi += mm.page_size
        shift = 63 - __builtin_clzll(mm.pmd_mask + 1)
        if has_freed:
            freed.lo = min(freed.lo, lo)
            freed.hi = max(freed.hi, hi)
            freed.shift = min(freed.shift, shift)
        else:
            freed.lo, freed.hi, freed.shift = lo, hi, shift
            has_freed = True
    if zapped:
        lo, hi, shift = addr, end, mm.page_shift
        if has_freed:
            lo, hi = min(lo, freed.lo), max(hi, freed.hi)
    elif has_freed:
        lo, hi, shift = freed.lo, freed.hi, freed.shift
    if zapped or has_freed:
        tlb_flush_gather(&tlbs.rule, &tlbs.s, &p.rec.flush_ops, mm.cpu, lo, hi, shift,
                         has_freed)
        p.rec.unmap_flushes += 1
    p.old_addr = addr
    p.new_addr = new_addr
    p.length = length
    p.moved_bytes = moved
    p.tables_freed = pt.tables_freed - freed0
    p.page_table_bytes_after = bytes_below_root(pt)
    mm.pending = q
    mm.pending_policy = mm.policy
    mm.move_pending = True
    mm.pending.wall_ns = monotonic_ns() - t0


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil
