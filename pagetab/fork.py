"""fork(2)'s copy of an address space (kernel/fork.c and mm/mmap.c dup_mmap).

The child gets every VMA of its parent (vm_area_dup), each with an
anon_vma of its own where the parent's had one (anon_vma_fork). Page
tables are copied only where copy_page_range finds something to copy
(mm/memory.c vma_needs_copy): VMAs with an anon_vma, i.e. private
mappings written since they were made. File mappings and shared memory
without one start empty in the child, which faults their pages in from the
page cache again. A VMA registered with a userfaultfd loses its
registration (dup_userfaultfd: pagetab has no UFFD_FEATURE_EVENT_FORK),
and the child has no userfaultfd.

Not simulated: the copy-on-write sharing itself. The kernel write-protects
the private pages both processes now map (copy_present_pte) and flushes
the parent's TLBs (dup_mmap's flush_tlb_mm); pagetab keeps each process's
entries as they were, so a later write in either is an ordinary access
rather than a write-protect fault. Which pages are present, in both, is
exact at the fork. Nor is sharing after it: each process has its own copy
of a shmem object's and a file's page cache (a space's frames are its own),
so a page one of them brings into a shared object later is not in the
other's cache.
"""

from __future__ import annotations

from .mm_types import VM_UFFD_FLAGS, File, MmStruct, PageCache, Shm, mm_alloc, new_anon_vma

__all__ = ["dup_mmap", "file_copies"]


def dup_mmap(mm: MmStruct) -> MmStruct:
    """The child's mm after fork: see the module docstring."""
    child = mm_alloc(mm.arch, mm.cpus, mm.thp, mm.max_map_count, mm.policy,
                     mm.page_table_limit, mm.thp_sizes)  # fmt: skip
    child.fault_around_bytes = mm.fault_around_bytes
    child.tables.restore(mm.tables.dump())  # every table, then what is not copied goes
    caches: dict[int, PageCache] = {}
    for v in mm.vmas:
        c = v.copy()
        if v.anon_vma is not None:
            c.anon_vma = new_anon_vma()
        if v.uffd:
            c.uffd = 0
            c.flags &= ~VM_UFFD_FLAGS
        if v.shm is not None:
            c.shm = _copy_cache(v.shm, caches, child)  # type: ignore[assignment]
        if v.file is not None:
            c.file = _copy_cache(v.file, caches, child)  # type: ignore[assignment]
        child.vmas.append(c)
    # !vma_needs_copy: copy_page_range copies nothing for a VMA without an
    # anon_vma. Its entries go, and the tables that only such VMAs use: each
    # run of them is freed between the copied VMAs around it (a table two
    # neighbours in a run share is freed too)
    vs = mm.vmas
    i = 0
    while i < len(vs):
        if vs[i].anon_vma is not None:
            i += 1
            continue
        j = i
        while j < len(vs) and vs[j].anon_vma is None:
            child.tables.zap(vs[j].start, vs[j].end)
            j += 1
        floor = vs[i - 1].end if i else 0
        ceiling = vs[j].start if j < len(vs) else 0
        child.tables.free_pgtables(vs[i].start, vs[j - 1].end, floor, ceiling)
        i = j
    return child


def _copy_cache(cache: PageCache, caches: dict[int, PageCache], child: MmStruct) -> PageCache:
    """The child's view of a shmem object or file: the same pages, numbered
    as the child's copied tables number them (one copy per object)."""
    got = caches.get(id(cache))
    if got is not None:
        return got
    if isinstance(cache, File):
        f = File(cache.name, cache.size, cache.writable)
        f.cached = None if cache.cached is None else cache.cached.copy()
        f.folios = cache.folios  # read only: set_folios replaces it whole
        f.attach(child.tables, child.page_shift)
        f.frames[:] = cache.frames
        got = f
    else:
        assert isinstance(cache, Shm)
        got = Shm(cache.frames.size)
        got.frames[:] = cache.frames
    caches[id(cache)] = got
    return got


def file_copies(parent: MmStruct, child: MmStruct) -> dict[int, File]:
    """The child's copy of each File the parent's VMAs map, by the
    ``id`` of the parent's (``child`` is ``dup_mmap(parent)``, before
    either changed): what a caller holding the parent's Files maps in the
    child instead."""
    pairs = zip(parent.vmas, child.vmas, strict=True)
    return {id(v.file): c.file for v, c in pairs if v.file is not None and c.file is not None}
