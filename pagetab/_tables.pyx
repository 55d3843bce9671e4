# cython: language_level=3
"""The page tables of one mm as a Python object (no kernel file).

``PageTables`` owns the store (``pgtables``, ``_pgtable.pxd``) and is what
Python holds (``mm.tables``); each method hands its range to the module
that mirrors the kernel's file: faults, zap and free_pgtables to
``_memory`` (mm/memory.c), change_protection to ``_mprotect``
(mm/mprotect.c), splits and DAX-like leaves to ``_huge_memory``
(mm/huge_memory.c), frames and counts to ``_inspect``
(fs/proc/task_mmu.c), page contents and save/load to ``_persist``. The
C-level modules (_access, the move engines) pass ``&tables.pgt`` down.
"""

import os

cimport numpy as cnp
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

from pagetab cimport _huge_memory, _inspect, _memory, _mprotect, _persist
from pagetab._memory cimport (
    MODE_FILE_COW, MODE_FILE_READ, MODE_READ, MODE_SHARED, MODE_WRITE, fault_ctx,
)
from pagetab._pgtable cimport (
    ADDR_SHIFT, E_CONT, E_DIRTY, E_LEAF, E_ORDER, E_ORDER_SHIFT, E_PRESENT, E_READ,
    E_SOFTDIRTY, E_WRITE, E_ZERO, MAX_LEVELS, bytes_below_root, clear_cont, live_tables,
    pgtables_init, pgtables_release, repack_pmds, row_ptr,
)

cnp.import_array()

# Exported so Python code and tests name bits the same way the C code does.
PRESENT = E_PRESENT
WRITE = E_WRITE
READ = E_READ
DIRTY = E_DIRTY
SOFTDIRTY = E_SOFTDIRTY
LEAF = E_LEAF
ZERO = E_ZERO
CONT = E_CONT
ORDER_SHIFT = E_ORDER_SHIFT
ORDER = E_ORDER
FRAME_SHIFT = ADDR_SHIFT

#: the error of a zap, change_prot or unmap that found no table memory
NO_TABLE_MEMORY = ("no page-table memory (the limit, or malloc) to split a huge page or "
                   "expand a packed table")

#: populate() faults this much (1 GiB) between two checks for a signal
cdef int POPULATE_CHUNK_SHIFT = 30

# populate() modes
POP_READ = MODE_READ
POP_WRITE = MODE_WRITE
POP_SHARED = MODE_SHARED
POP_FILE_READ = MODE_FILE_READ
POP_FILE_COW = MODE_FILE_COW


def packing_default():
    """Whether new stores pack uniform PTE and PMD tables: ``PAGETAB_PACK``
    in the environment, ``0`` for no (the switch that keeps packed and unpacked
    stores comparable); anything else, or unset, for yes."""
    value = os.environ.get("PAGETAB_PACK", "1")
    if value not in ("0", "1"):
        raise ValueError(f"PAGETAB_PACK must be 0 or 1, not {value!r}")
    return value == "1"


cdef class PageTables:
    """Page tables of one mm: a tree of ``len(shifts)`` levels.

    ``shifts[l]`` is the address shift of level ``l`` (pgd first) and
    ``nents[l]`` its entries per table. Row 0 of level 0 is the pgd.
    ``pack``: whether new PTE tables start packed and uniform PTE and PMD
    tables are held as descriptors (``_pgtable.pxd``); None takes
    ``PAGETAB_PACK`` from the environment (``0`` turns packing off; on by
    default). Packing changes
    no result, only the simulator's memory and time.
    """

    def __cinit__(self, shifts, nents, int64_t limit_bytes=0, pack=None):
        cdef int sh[MAX_LEVELS]
        cdef int ne[MAX_LEVELS]
        cdef int l
        if len(shifts) != len(nents) or not 2 <= len(shifts) <= MAX_LEVELS:
            raise ValueError("shifts and nents: 2 to 5 levels, same length")
        for l in range(len(shifts)):
            sh[l] = shifts[l]
            ne[l] = nents[l]
            # (indexes: a power of two; a descriptor's run bounds: 16 bits)
            if not 2 <= ne[l] <= 1 << 15 or ne[l] & (ne[l] - 1):
                raise ValueError(f"nents[{l}] must be a power of two in 2..32768, not {ne[l]}")
        if pgtables_init(&self.pgt, len(shifts), sh, ne) < 0:
            raise MemoryError("cannot allocate the pgd")
        self.pgt.limit_bytes = limit_bytes
        self.pgt.pack = packing_default() if pack is None else bool(pack)

    def __dealloc__(self):
        pgtables_release(&self.pgt)

    # ------------------------------------------------------------------
    # faults, zap, free_pgtables (_memory); protection (_mprotect); splits

    def populate(self, uint64_t start, uint64_t end, int mode, bint prot_read, bint prot_write,
                 uint64_t thp_lo=0, uint64_t thp_hi=0, shm=None, uint64_t shm_first=0, *,
                 uint64_t orders=0, uint64_t vm_start=0, uint64_t vm_end=0):
        """Fault in [start, end). Returns (address reached, pages installed).

        The address reached is ``end``, or the first page that could not be
        populated (out of table memory); pages before it stay populated, as
        with Linux's MADV_POPULATE_*. ``shm`` (an int64 array of frame ids
        per page, -1 where none yet) is required for POP_SHARED and the
        file modes (POP_FILE_READ: the object's frames mapped read-only;
        POP_FILE_COW: a private copy of each page not copied yet);
        ``shm_first`` is the index of ``start`` in it. Huge leaves are
        installed for PMD-aligned ranges inside [thp_lo, thp_hi) whose PMD
        entry is empty. A write fault on a none PTE maps a large folio of
        the highest order of ``orders`` (bit o: order o) whose aligned block
        lies in [vm_start, vm_end) and is all none, as alloc_anon_folio.
        """
        cdef int64_t[::1] shm_view
        cdef fault_ctx ctx
        cdef int64_t installed = 0
        cdef uint64_t reached, lo, hi
        cdef uint64_t step = (<uint64_t>1) << POPULATE_CHUNK_SHIFT
        cdef pgtables *pt = &self.pgt
        memset(&ctx, 0, sizeof(ctx))
        if mode == MODE_SHARED or mode == MODE_FILE_READ or mode == MODE_FILE_COW:
            shm_view = shm
            npages = (end - start) >> pt.shift[pt.nlev - 1]
            if shm_first + npages > <uint64_t>shm_view.shape[0]:
                raise ValueError("shm array too short for the range")
            ctx.shm = &shm_view[0]
        elif mode != MODE_READ and mode != MODE_WRITE:
            raise ValueError("mode must be POP_READ, POP_WRITE, POP_SHARED, POP_FILE_READ or "
                             f"POP_FILE_COW, not {mode}")
        if orders >> (pt.shift[pt.nlev - 2] - pt.shift[pt.nlev - 1]):
            raise ValueError(f"orders {orders:#x} has orders at or above the PMD's")
        ctx.mode = mode
        ctx.prot_read = prot_read
        ctx.prot_write = prot_write
        ctx.thp_lo = thp_lo
        ctx.thp_hi = thp_hi
        ctx.shm_first = shm_first
        ctx.orders = orders
        ctx.vm_start = vm_start
        ctx.vm_end = vm_end
        # a GiB at a time (aligned, so no THP or folio block is cut), Ctrl-C
        # (any signal's handler) checked between them: pages faulted stay,
        # as MADV_POPULATE_* interrupted leaves them
        lo = start
        reached = start
        while lo < end:
            if lo != start:
                PyErr_CheckSignals()
            hi = min(end, (lo | (step - 1)) + 1)
            ctx.shm_first = shm_first + ((lo - start) >> pt.shift[pt.nlev - 1])
            with nogil:
                reached = _memory.populate_vma_page_range(pt, lo, hi, &ctx, &installed)
                repack_pmds(pt, lo, reached)  # a uniform PMD table packed, as populated
            if reached != hi:
                break  # out of page-table memory
            lo = hi
        return reached, installed

    def zap(self, uint64_t start, uint64_t end):
        """unmap_page_range: clear every leaf in [start, end). Returns pages cleared."""
        cdef int64_t pages = 0
        cdef int rc
        with nogil:
            rc = _memory.zap_page_range(&self.pgt, start, end, &pages)
        if rc < 0:
            raise MemoryError(NO_TABLE_MEMORY)
        return pages

    def free_pgtables(self, uint64_t start, uint64_t end, uint64_t floor, uint64_t ceiling):
        """free_pgtables: free the tables reachable from [start, end) whose whole
        span lies in [floor, ceiling) (ceiling 0 means the top of the space).
        Returns what the mmu_gather records of the frees, (lo, hi, stride
        shift), or None when it freed nothing."""
        cdef _memory.freed_tables freed
        freed.lo = freed.hi = 0
        freed.shift = 0
        with nogil:
            _memory.free_pgtables(&self.pgt, start, end, floor, ceiling, &freed)
        return (freed.lo, freed.hi, freed.shift) if freed.shift else None

    def reclaim_pt(self, uint64_t start, uint64_t end):
        """MADV_DONTNEED's reclaim of the empty PTE tables whose whole span
        lies in [start, end) (after its zap). Returns what the mmu_gather
        records of the frees, (lo, hi, stride shift), or None."""
        cdef _memory.freed_tables freed
        freed.lo = freed.hi = 0
        freed.shift = 0
        with nogil:
            _memory.reclaim_pt(&self.pgt, start, end, &freed)
        return (freed.lo, freed.hi, freed.shift) if freed.shift else None

    def change_prot(self, uint64_t start, uint64_t end, bint readable, bint writable,
                    bint shared):
        """change_protection over [start, end): set the access bits of present
        leaves for the new protection (huge leaves partly covered are split).
        Returns the present leaves it changed (the caller flushes the TLBs
        when there are any, as change_protection does)."""
        cdef int64_t rc
        with nogil:
            rc = _mprotect.change_protection(&self.pgt, start, end, readable, writable, shared)
        if rc < 0:
            raise MemoryError(NO_TABLE_MEMORY)
        return rc

    def split_at(self, uint64_t addr):
        """Split any huge leaf that straddles ``addr`` (vma_adjust_trans_huge).

        Returns False if a split could not allocate its table.
        """
        return _huge_memory.split_huge_pmd_address(&self.pgt, addr)

    def set_leaf(self, int level, uint64_t addr, bint writable=True):
        """Install a huge leaf of fresh frames at ``level`` for ``addr``.

        For mappings faults never make (a PUD-sized DAX or hugetlb-like
        leaf): the slot must be empty and ``addr`` aligned to the level.
        Returns the head frame id.
        """
        return _huge_memory.set_leaf(&self.pgt, level, addr, writable)

    def clear_cont(self):
        """Clear PTE_CONT on every PTE (no contiguous block stays folded)."""
        with nogil:
            clear_cont(&self.pgt)

    # ------------------------------------------------------------------
    # page contents and save/load (_persist)

    def written_frames(self):
        """The frames a store has written, ascending (a numpy int64 array):
        every frame ever allocated when the bitmap is lost (it could not
        grow, or a save without it was loaded)."""
        return _persist.written_frames(&self.pgt)

    def write_frames(self, frames):
        """Mark ``frames`` written, as stores to them would."""
        _persist.write_frames(&self.pgt, frames)

    def dump(self):
        """The store as plain arrays: per level ``rows<l>`` (every row ever
        handed out, hw x nent) and ``free<l>`` (the free list); ``next_frame``;
        ``written`` (one bit per frame a store wrote) and ``written_lost``."""
        return _persist.dump(&self.pgt)

    def restore(self, data):
        """Load what dump() returned into this fresh store (same geometry).

        Raises ValueError naming what does not fit; the result is checked
        structurally (check()).
        """
        _persist.restore(&self.pgt, data)

    # ------------------------------------------------------------------
    # inspection (_inspect)

    def frames(self, uint64_t start, uint64_t end):
        """Frame id per base page of [start, end): -1 none, 0 zero page."""
        return _inspect.frames(&self.pgt, start, end, False)

    def folio_orders(self, uint64_t start, uint64_t end):
        """(frame id, folio order) per base page of [start, end): frames as
        ``frames``; the order of the folio mapping the page, -1 where none
        (a huge leaf's order is its level's, the huge zero page's too; the
        zero page's 0)."""
        return _inspect.frames(&self.pgt, start, end, True)

    def entry(self, uint64_t addr):
        """(level, raw entry) of the deepest entry mapping ``addr``."""
        return _inspect.entry(&self.pgt, addr)

    def translate(self, uint64_t addr):
        """Frame id of the base page holding ``addr``: -1 none, 0 zero page."""
        return _inspect.translate(&self.pgt, addr)

    def count_mapped(self, uint64_t start, uint64_t end):
        """Base pages mapped (present leaves) in [start, end)."""
        cdef int64_t n
        with nogil:
            n = _inspect.count_mapped(&self.pgt, start, end)
        return n

    def check(self):
        """Structural invariants; returns a list of problems (empty if sound).

        Every row below the high-water mark is either on the free list
        exactly once, or referenced exactly once from a present table entry
        of the level above (row 0 of level 0 is the pgd); free rows are
        zero; pointers stay inside the pool.
        """
        return _inspect.check(&self.pgt)

    def table(self, int level, int64_t row):
        """A read-only zero-copy numpy view of one table page."""
        if not 0 <= level < self.pgt.nlev:
            raise ValueError(f"level must be in 0..{self.pgt.nlev - 1}, not {level}")
        if not 0 <= row < self.pgt.pools[level].hw:
            raise ValueError(f"row {row} was never allocated at level {level}")
        cdef cnp.npy_intp dims[1]
        dims[0] = self.pgt.pools[level].nent
        arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_UINT64,
                                            <void*>row_ptr(&self.pgt, level, row))
        Py_INCREF(self)
        cnp.PyArray_SetBaseObject(arr, self)
        arr.flags.writeable = False
        return arr

    # ------------------------------------------------------------------
    # the store's figures

    @property
    def levels(self):
        return self.pgt.nlev

    def live_rows(self):
        """Tables in use per level (level 0 is the pgd; packed PTE tables count)."""
        return [live_tables(&self.pgt, l) for l in range(self.pgt.nlev)]

    def peak_rows(self):
        """The most tables in use at once per level, as ``live_rows`` counts them."""
        return [self.pgt.pools[l].peak for l in range(self.pgt.nlev)]

    @property
    def pack(self):
        """Whether new PTE tables start packed."""
        return self.pgt.pack

    @property
    def packed_tables(self):
        """PTE tables held packed now, on their own or in a packed PMD table
        (the rest of ``live_rows()[-1]`` are rows)."""
        return self.pgt.packed.live + self.pgt.packed_pmd_ptes

    @property
    def packed_pmd_tables(self):
        """PMD tables held packed now (the rest of ``live_rows()[-2]`` are rows)."""
        return self.pgt.packed_pmd.live

    @property
    def packed_pmd_expanded(self):
        """Packed PMD tables expanded into rows so far."""
        return self.pgt.packed_pmd_expanded

    @property
    def packed_expanded(self):
        """Packed PTE tables expanded into rows so far (a change no descriptor
        could hold)."""
        return self.pgt.packed_expanded

    @property
    def table_bytes(self):
        """Bytes of tables below the pgd, as the kernel's mm_pgtables_bytes."""
        return bytes_below_root(&self.pgt)

    @property
    def reserved_bytes(self):
        """Bytes of row storage allocated (chunks), used or free."""
        cdef int64_t b = 0
        for l in range(self.pgt.nlev):
            b += self.pgt.pools[l].nchunks * (<int64_t>1 << self.pgt.pools[l].chunk_shift) \
                * self.pgt.pools[l].nent * 8
        b += self.pgt.packed.nchunks * (<int64_t>1 << self.pgt.packed.chunk_shift) \
            * self.pgt.packed.nent * 8
        return b + self.pgt.packed_pmd.nchunks \
            * (<int64_t>1 << self.pgt.packed_pmd.chunk_shift) * self.pgt.packed_pmd.nent * 8

    @property
    def next_frame(self):
        return self.pgt.next_frame

    @property
    def limit_bytes(self):
        return self.pgt.limit_bytes

    @limit_bytes.setter
    def limit_bytes(self, int64_t v):
        if v < 0:
            raise ValueError("limit_bytes must be >= 0")
        self.pgt.limit_bytes = v

    @property
    def freed_total(self):
        """Tables freed since creation (or since restore())."""
        return self.pgt.tables_freed

    def fail_allocation(self, int64_t n):
        """A testing aid: make the ``n``-th table row or descriptor taken
        from now on fail, as a failed malloc would (1: the next one; 0:
        none), so that the out-of-memory paths can be driven. Returns
        nothing; the countdown stops after the failure."""
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        self.pgt.fail_in = n

    @property
    def cont_ptes(self):
        """arm64 contpte: PTEs per block that faults fold; 0 none."""
        return self.pgt.cont_ptes

    @cont_ptes.setter
    def cont_ptes(self, int v):
        self.pgt.cont_ptes = v

    @property
    def pte_tables_visited(self):
        """PTE tables zap and change_prot walked so far (each visit is a
        flush_tlb_batched_pending in the kernel's zap_pte_range and
        change_pte_range)."""
        return self.pgt.pte_tables_visited

    @property
    def contpte_unfolds(self):
        """Blocks unfolded by zap and change_prot."""
        return self.pgt.contpte_unfolds

    @contpte_unfolds.setter
    def contpte_unfolds(self, int64_t v):
        self.pgt.contpte_unfolds = v
