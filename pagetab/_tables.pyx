# cython: language_level=3
"""The packed page-table store.

Every level of the tree has a :c:type:`Pool` of table pages ("rows") of
``nent`` uint64 entries each. The entry layout is documented once, in
``_tables.pxd``. All per-entry work runs in ``nogil`` C loops; Python only
passes ranges in and gets counts or numpy arrays back.
"""

cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from libc.stdint cimport int8_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset

import numpy as np

cdef extern from "pt_alloc.h":
    void *pt_chunk_alloc(size_t nbytes) nogil
    void pt_chunk_free(void *p, size_t nbytes) nogil

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

# populate() modes
POP_READ = MODE_READ
POP_WRITE = MODE_WRITE
POP_SHARED = MODE_SHARED

cdef uint64_t FRAME_MASK = ~(<uint64_t>E_FLAGS)

# Target bytes per chunk of rows: large enough that a 256 GiB region needs
# only a few hundred chunks, small enough to waste little on tiny spaces.
cdef int64_t CHUNK_BYTES = 4 << 20


cdef inline int anon_folio_order(const uint64_t *t, int i, uint64_t addr, int pshift,
                                 const fault_ctx *ctx) noexcept nogil:
    """alloc_anon_folio's order for a write fault on the none PTE ``t[i]``
    mapping ``addr``: the highest order of ``ctx.orders`` whose naturally
    aligned block lies inside the VMA (thp_vma_suitable_orders) and has
    only none PTEs (pte_range_none); 0 for a small folio."""
    cdef int o, j, b, n
    cdef uint64_t size, block
    o = 63
    while o >= 2:
        if ctx.orders & (<uint64_t>1 << o):
            size = <uint64_t>1 << (o + pshift)
            block = addr & ~(size - 1)
            if block >= ctx.vm_start and block + size <= ctx.vm_end:
                n = 1 << o
                b = i & ~(n - 1)
                for j in range(b, b + n):
                    if t[j] != 0:
                        break
                else:
                    return o
        o -= 1
    return 0


cdef inline uint64_t efr(uint64_t e) noexcept nogil:
    """The frame id (leaf) or child row (table pointer) of an entry."""
    return e >> ADDR_SHIFT


cdef class PageTables:
    """Page tables of one mm: a tree of ``len(shifts)`` levels.

    ``shifts[l]`` is the address shift of level ``l`` (pgd first) and
    ``nents[l]`` its entries per table. Row 0 of level 0 is the pgd.
    """

    def __cinit__(self, shifts, nents, int64_t limit_bytes=0):
        cdef int l, rows_shift
        cdef int64_t row_bytes
        if len(shifts) != len(nents) or not 2 <= len(shifts) <= MAX_LEVELS:
            raise ValueError("shifts and nents: 2 to 5 levels, same length")
        self.nlev = len(shifts)
        memset(self.pools, 0, sizeof(self.pools))
        for l in range(self.nlev):
            self.shift[l] = shifts[l]
            self.pools[l].nent = nents[l]
            row_bytes = <int64_t>nents[l] * 8
            rows_shift = 0
            while (row_bytes << (rows_shift + 1)) <= CHUNK_BYTES:
                rows_shift += 1
            self.pools[l].chunk_shift = rows_shift
        self.next_frame = 1          # frame 0 is ZERO_FRAME
        self.limit_bytes = 0
        if self.alloc_row(0) != 0:
            raise MemoryError("cannot allocate the pgd")
        self.limit_bytes = limit_bytes

    def __dealloc__(self):
        cdef int l
        cdef int64_t c
        for l in range(self.nlev):
            for c in range(self.pools[l].nchunks):
                pt_chunk_free(self.pools[l].chunks[c], self.chunk_bytes(l))
            free(self.pools[l].chunks)
            free(self.pools[l].freelist)
        free(self.written)

    # ------------------------------------------------------------------
    # rows

    cdef inline uint64_t* row_ptr(self, int lev, int64_t row) noexcept nogil:
        return pool_row(&self.pools[lev], row)

    cdef size_t chunk_bytes(self, int lev) noexcept nogil:
        return <size_t>((<int64_t>1 << self.pools[lev].chunk_shift) * self.pools[lev].nent * 8)

    cdef int64_t bytes_below_root(self) noexcept nogil:
        cdef int64_t b = 0
        cdef int l
        for l in range(1, self.nlev):
            b += self.pools[l].live * self.pools[l].nent * 8
        return b

    cdef int64_t alloc_row(self, int lev) noexcept nogil:
        """A zeroed row of level ``lev``, or -1 (out of memory or over limit)."""
        cdef Pool *p = &self.pools[lev]
        cdef int64_t row, ncap
        cdef uint64_t **nchunks
        cdef uint64_t *chunk
        if self.limit_bytes and self.bytes_below_root() + p.nent * 8 > self.limit_bytes:
            return -1
        if p.nfree:
            p.nfree -= 1
            row = p.freelist[p.nfree]
        else:
            row = p.hw
            if (row >> p.chunk_shift) >= p.nchunks:
                if p.nchunks == p.chunks_cap:
                    ncap = p.chunks_cap * 2 if p.chunks_cap else 16
                    nchunks = <uint64_t**>realloc(p.chunks, ncap * sizeof(uint64_t*))
                    if nchunks == NULL:
                        return -1
                    p.chunks = nchunks
                    p.chunks_cap = ncap
                chunk = <uint64_t*>pt_chunk_alloc(self.chunk_bytes(lev))
                if chunk == NULL:
                    return -1
                p.chunks[p.nchunks] = chunk
                p.nchunks += 1
            p.hw += 1
        p.live += 1
        if p.live > p.peak:
            p.peak = p.live
        return row

    cdef void free_row(self, int lev, int64_t row) noexcept nogil:
        memset(self.row_ptr(lev, row), 0, self.pools[lev].nent * 8)
        self.free_row_clean(lev, row)

    cdef void free_row_clean(self, int lev, int64_t row) noexcept nogil:
        """Free a row the caller has seen to be all zero."""
        cdef Pool *p = &self.pools[lev]
        cdef int64_t ncap
        cdef int64_t *nf
        if p.nfree == p.free_cap:
            ncap = p.free_cap * 2 if p.free_cap else 64
            nf = <int64_t*>realloc(p.freelist, ncap * sizeof(int64_t))
            if nf == NULL:
                # Cannot record it: leave the row allocated (leaks a row,
                # never corrupts). Only under real malloc failure.
                return
            p.freelist = nf
            p.free_cap = ncap
        p.freelist[p.nfree] = row
        p.nfree += 1
        p.live -= 1
        self.tables_freed += 1

    cdef void unfold_edges(self, uint64_t *t, int i0, int i1) noexcept nogil:
        """A change to entries [i0, i1) of PTE table ``t``: each contiguous
        block it covers only partly is unfolded first (PTE_CONT cleared on
        all its entries: contpte_try_unfold, and the batched operations'
        first and last blocks); blocks covered whole keep the bit."""
        cdef int c = self.cont_ptes, b, j, k
        cdef int edges[2]
        if c == 0:
            return
        edges[0] = i0
        edges[1] = i1 - 1
        for k in range(2):
            b = edges[k] & ~(c - 1)
            if (b < i0 or b + c > i1) and (t[edges[k]] & E_CONT):
                self.contpte_unfolds += 1
                for j in range(b, b + c):
                    t[j] &= ~(<uint64_t>E_CONT)

    cdef void fold_blocks(self, uint64_t *t, int i0, int i1) noexcept nogil:
        """After entries [i0, i1) of PTE table ``t`` were rewritten one by
        one: where one of them is the last entry of its block, the whole
        block (entries before i0 included) folds if it maps one folio's
        consecutive pages with the same bits (contpte_try_fold at a
        single set_pte_at, Linux 6.9+)."""
        cdef int c = self.cont_ptes, b, j
        if c == 0:
            return
        b = (i0 & ~(c - 1))
        while b + c <= i1:  # a block whose last entry the range wrote
            if block_foldable(t, b, c):
                for j in range(b, b + c):
                    t[j] |= E_CONT
            b += c

    cdef inline uint64_t alloc_frames(self, uint64_t n) noexcept nogil:
        """The head of ``n`` (a power of two) fresh frames from a multiple of
        ``n`` on, as the buddy allocator aligns a folio: the folio of a
        frame is then the frame id rounded down to its size."""
        cdef uint64_t head = (self.next_frame + n - 1) & ~(n - 1)
        self.next_frame = head + n
        return head

    cdef inline int index(self, int lev, uint64_t addr) noexcept nogil:
        return pool_index(&self.pools[lev], self.shift[lev], addr)

    cdef int64_t split_leaf(self, int lev, uint64_t *slot) noexcept nogil:
        """__split_huge_pmd: replace a huge leaf by a table of smaller leaves.

        The new table maps the same frames (head + i) with the same flags; a
        huge zero page becomes zero-page entries. Returns the new row or -1.
        """
        cdef uint64_t e = slot[0]
        cdef int64_t row = self.alloc_row(lev + 1)
        cdef uint64_t *t
        cdef uint64_t flags, base, step
        cdef int i, n
        if row < 0:
            return -1
        t = self.row_ptr(lev + 1, row)
        n = self.pools[lev + 1].nent
        flags = e & E_FLAGS
        base = efr(e)
        step = 0 if (e & E_ZERO) else (<uint64_t>1 << (self.shift[lev + 1] - self.shift[self.nlev - 1]))
        if lev + 1 == self.nlev - 1:
            flags &= ~(<uint64_t>E_LEAF)
            if not (e & E_ZERO):
                # __split_huge_pmd: the PTEs map the same (still large) folio,
                # written by one set_ptes (contiguous blocks where folded)
                flags |= <uint64_t>(self.shift[lev] - self.shift[lev + 1]) << E_ORDER_SHIFT
                if self.cont_ptes:
                    flags |= E_CONT
        for i in range(n):
            t[i] = flags | ((base + i * step) << ADDR_SHIFT)
        slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
        return row

    # ------------------------------------------------------------------
    # page contents: written or still zero-filled

    cdef void mark_written(self, uint64_t frame) noexcept nogil:
        """A store wrote ``frame`` (grows the bitmap; if it cannot, every
        frame counts as written from then on)."""
        cdef uint64_t need = (frame >> 3) + 1, n
        cdef uint8_t *w
        if need > self.written_bytes:
            n = self.written_bytes * 2
            if n < need:
                n = need
            if n < 4096:
                n = 4096
            w = <uint8_t*>realloc(self.written, n)
            if w == NULL:
                self.written_lost = True
                return
            memset(w + self.written_bytes, 0, n - self.written_bytes)
            self.written = w
            self.written_bytes = n
        self.written[frame >> 3] |= <uint8_t>(1 << (frame & 7))

    cdef bint is_written(self, uint64_t frame) noexcept nogil:
        if self.written_lost:
            return True
        if (frame >> 3) >= self.written_bytes:
            return False
        return (self.written[frame >> 3] >> (frame & 7)) & 1

    def written_frames(self):
        """The frames a store has written, ascending (a numpy int64 array):
        every frame ever allocated when the bitmap is lost (it could not
        grow, or a save without it was loaded)."""
        cdef cnp.npy_intp n = <cnp.npy_intp>self.written_bytes
        if self.written_lost:
            return np.arange(1, self.next_frame, dtype=np.int64)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        bits = np.unpackbits(np.frombuffer((<char*>self.written)[:n], dtype=np.uint8),
                             bitorder="little")
        return np.flatnonzero(bits).astype(np.int64)

    def write_frames(self, frames):
        """Mark ``frames`` written, as stores to them would."""
        cdef int64_t[::1] fs = np.ascontiguousarray(frames, dtype=np.int64)
        cdef int64_t i
        for i in range(fs.shape[0]):
            if fs[i] <= 0 or <uint64_t>fs[i] >= self.next_frame:
                raise ValueError(f"frame {fs[i]} was never allocated (1..{self.next_frame - 1})")
        for i in range(fs.shape[0]):
            self.mark_written(<uint64_t>fs[i])

    def _written_bitmap(self):
        """The bitmap itself (a copy, uint8), for dump: one bit per frame."""
        return np.frombuffer((<char*>self.written)[:self.written_bytes], dtype=np.uint8).copy() \
            if self.written_bytes else np.zeros(0, dtype=np.uint8)

    def _restore_written(self, bitmap, bint lost):
        """Load what ``_written_bitmap`` gave (ValueError if a bit names a
        frame never allocated, or the zero page)."""
        cdef const uint8_t[::1] b = np.ascontiguousarray(bitmap, dtype=np.uint8)
        cdef uint8_t *w
        set_ = np.flatnonzero(np.unpackbits(np.asarray(b), bitorder="little"))
        if set_.size and (set_.min() == 0 or <uint64_t>set_.max() >= self.next_frame):
            raise ValueError("the written-page bitmap names frames never allocated")
        if b.shape[0]:
            w = <uint8_t*>realloc(self.written, b.shape[0])
            if w == NULL:
                raise MemoryError()
            memcpy(w, &b[0], b.shape[0])
            self.written = w
            self.written_bytes = b.shape[0]
        self.written_lost = lost

    # ------------------------------------------------------------------
    # populate (the fault path of MADV_POPULATE_*, MAP_POPULATE, access)

    cdef uint64_t _populate(self, uint64_t start, uint64_t end, const fault_ctx *ctx,
                           int64_t *installed) noexcept nogil:
        """Fault in every page of [start, end); returns the address reached.

        The returned address is ``end`` on success and the first page that
        could not be populated (out of table memory) otherwise; pages before
        it stay populated, as with Linux's MADV_POPULATE_*.
        """
        cdef int pmd = self.nlev - 2, pte = self.nlev - 1
        cdef uint64_t pmd_size = <uint64_t>1 << self.shift[pmd]
        cdef int pshift = self.shift[pte]
        cdef uint64_t npages_huge = pmd_size >> pshift
        cdef uint64_t addr = start, next_, haddr, e, f, pgoff, nf, wflags, n
        cdef uint64_t *slot
        cdef uint64_t *t
        cdef int reached, i, i0, i1, j, b, o
        cdef int64_t row
        cdef int mode = ctx.mode
        cdef bint write = mode != MODE_READ
        cdef bint prot_write = ctx.prot_write
        cdef uint64_t base_flags = E_PRESENT
        if ctx.prot_read or prot_write:
            base_flags |= E_READ
        while addr < end:
            haddr = addr & ~(pmd_size - 1)
            next_ = haddr + pmd_size
            if next_ > end or next_ == 0:
                next_ = end
            slot = pt_walk(self, addr, 0, 0, pmd, True, &reached, NULL, NULL)
            if slot == NULL:
                return addr
            if reached < pmd:
                # a huge PUD leaf maps it already (never created by faults)
                addr = next_
                continue
            e = slot[0]
            if e & E_LEAF:
                if write and (e & E_ZERO) and mode == MODE_WRITE:
                    # do_huge_zero_wp_pmd: a write to the huge zero page
                    # gets a fresh THP
                    slot[0] = (base_flags | E_LEAF | E_DIRTY | (E_WRITE if prot_write else 0)
                               | (self.alloc_frames(npages_huge) << ADDR_SHIFT))
                    installed[0] += npages_huge
                elif write:
                    slot[0] = e | E_DIRTY
                addr = next_
                continue
            if e == 0 and mode != MODE_SHARED and haddr >= ctx.thp_lo \
                    and haddr + pmd_size <= ctx.thp_hi and ctx.thp_hi > ctx.thp_lo:
                # do_huge_pmd_anonymous_page
                if write:
                    slot[0] = (base_flags | E_LEAF | E_DIRTY | (E_WRITE if prot_write else 0)
                               | (self.alloc_frames(npages_huge) << ADDR_SHIFT))
                else:
                    slot[0] = base_flags | E_LEAF | E_ZERO
                installed[0] += npages_huge
                addr = next_
                continue
            if e == 0:
                row = self.alloc_row(pte)
                if row < 0:
                    return addr
                slot[0] = E_PRESENT | (<uint64_t>row << ADDR_SHIFT)
            else:
                row = <int64_t>efr(e)
            t = self.row_ptr(pte, row)
            i0 = self.index(pte, addr)
            i1 = i0 + <int>((next_ - addr) >> pshift)
            if mode == MODE_READ:
                nf = 0
                for i in range(i0, i1):
                    if t[i] == 0:
                        t[i] = base_flags | E_ZERO
                        nf += 1
                installed[0] += <int64_t>nf
            elif mode == MODE_WRITE:
                # locals, not self->next_frame: stores through t may alias it
                nf = self.next_frame
                wflags = base_flags | E_DIRTY | (E_WRITE if prot_write else 0)
                i = i0
                while i < i1:
                    e = t[i]
                    o = 0
                    if e == 0 and ctx.orders:
                        o = anon_folio_order(t, i, haddr + (<uint64_t>i << pshift), pshift, ctx)
                    if o:
                        # alloc_anon_folio: one folio of 1 << o frames (from
                        # a multiple of 1 << o) mapped by set_ptes over its
                        # naturally aligned block, pages before i included
                        n = <uint64_t>1 << o
                        b = i & ~<int>(n - 1)
                        nf = (nf + n - 1) & ~(n - 1)
                        # set_ptes (contpte_set_ptes): whole aligned blocks
                        # of one folio get PTE_CONT directly
                        f = E_CONT if (self.cont_ptes and n >= <uint64_t>self.cont_ptes) else 0
                        for j in range(<int>n):
                            t[b + j] = wflags | f | (<uint64_t>o << E_ORDER_SHIFT) \
                                | ((nf + <uint64_t>j) << ADDR_SHIFT)
                        nf += n
                        installed[0] += <int64_t>n
                        i = b + <int>n
                        continue
                    if e == 0 or (e & E_ZERO):
                        t[i] = wflags | (nf << ADDR_SHIFT)
                        nf += 1
                        installed[0] += 1
                    else:
                        t[i] = e | E_DIRTY
                    i += 1
                self.next_frame = nf
            else:
                pgoff = ctx.shm_first + ((addr - start) >> pshift)
                for i in range(i0, i1):
                    e = t[i]
                    if e == 0:
                        f = <uint64_t>ctx.shm[pgoff]
                        if ctx.shm[pgoff] < 0:
                            f = self.next_frame
                            self.next_frame += 1
                            ctx.shm[pgoff] = <int64_t>f
                        t[i] = base_flags | (f << ADDR_SHIFT)
                        installed[0] += 1
                        e = t[i]
                    if write:
                        t[i] = e | E_DIRTY | (E_WRITE if prot_write else 0)
                    pgoff += 1
            addr = next_
        return end

    def populate(self, uint64_t start, uint64_t end, int mode, bint prot_read, bint prot_write,
                 uint64_t thp_lo=0, uint64_t thp_hi=0, shm=None, uint64_t shm_first=0, *,
                 uint64_t orders=0, uint64_t vm_start=0, uint64_t vm_end=0):
        """Fault in [start, end). Returns (address reached, pages installed).

        ``shm`` (an int64 array of frame ids per page, -1 where none yet) is
        required for POP_SHARED; ``shm_first`` is the index of ``start`` in it.
        Huge leaves are installed for PMD-aligned ranges inside
        [thp_lo, thp_hi) whose PMD entry is empty. A write fault on a none
        PTE maps a large folio of the highest order of ``orders`` (bit o:
        order o) whose aligned block lies in [vm_start, vm_end) and is all
        none, as alloc_anon_folio.
        """
        cdef int64_t[::1] shm_view
        cdef fault_ctx ctx
        cdef int64_t installed = 0
        cdef uint64_t reached
        memset(&ctx, 0, sizeof(ctx))
        if mode == MODE_SHARED:
            shm_view = shm
            npages = (end - start) >> self.shift[self.nlev - 1]
            if shm_first + npages > <uint64_t>shm_view.shape[0]:
                raise ValueError("shm array too short for the range")
            ctx.shm = &shm_view[0]
        elif mode != MODE_READ and mode != MODE_WRITE:
            raise ValueError(f"mode must be POP_READ, POP_WRITE or POP_SHARED, not {mode}")
        if orders >> (self.shift[self.nlev - 2] - self.shift[self.nlev - 1]):
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
        with nogil:
            reached = self._populate(start, end, &ctx, &installed)
        return reached, installed

    # ------------------------------------------------------------------
    # zap (unmap_page_range) and free_pgtables

    cdef int64_t _zap(self, int lev, int64_t row, uint64_t base, uint64_t s, uint64_t e,
                      int64_t *pages) noexcept nogil:
        """Clear leaves in [s, e) below ``row``; splits partial huge leaves.

        Returns 0, or -1 if a split could not allocate its table.
        """
        cdef uint64_t *t = self.row_ptr(lev, row)
        cdef uint64_t size = <uint64_t>1 << self.shift[lev]
        cdef uint64_t lo, hi, ent
        cdef int i, i0, i1
        cdef int pte = self.nlev - 1
        i0 = self.index(lev, s)
        i1 = self.index(lev, e - 1) + 1
        if lev == pte:
            self.unfold_edges(t, i0, i1)
        for i in range(i0, i1):
            ent = t[i]
            if ent == 0:
                continue
            if lev == pte:
                t[i] = 0
                pages[0] += 1
                continue
            lo = base + i * size
            hi = lo + size
            if ent & E_LEAF:
                if s <= lo and (hi <= e or hi == 0):
                    t[i] = 0
                    pages[0] += size >> self.shift[pte]
                    continue
                if self.split_leaf(lev, &t[i]) < 0:
                    return -1
                ent = t[i]
            if self._zap(lev + 1, <int64_t>efr(ent), lo, s if s > lo else lo,
                         e if (e < hi or hi == 0) else hi, pages) < 0:
                return -1
        return 0

    def zap(self, uint64_t start, uint64_t end):
        """unmap_page_range: clear every leaf in [start, end). Returns pages cleared."""
        cdef int64_t pages = 0
        cdef int64_t rc
        if end <= start:
            return 0
        with nogil:
            rc = self._zap(0, 0, 0, start, end, &pages)
        if rc < 0:
            raise MemoryError("page-table limit reached while splitting a huge page")
        return pages

    cdef void _free_range(self, int lev, int64_t row, uint64_t base, uint64_t s, uint64_t e,
                          uint64_t floor, uint64_t ceiling) noexcept nogil:
        cdef uint64_t *t = self.row_ptr(lev, row)
        cdef uint64_t size = <uint64_t>1 << self.shift[lev]
        cdef uint64_t lo, hi, ent
        cdef int i, i0, i1
        cdef int64_t child
        i0 = self.index(lev, s)
        i1 = self.index(lev, e - 1) + 1
        for i in range(i0, i1):
            ent = t[i]
            if ent == 0 or (ent & E_LEAF):
                continue
            lo = base + i * size
            hi = lo + size
            child = <int64_t>efr(ent)
            if lev + 1 < self.nlev - 1:
                self._free_range(lev + 1, child, lo, s if s > lo else lo,
                                 e if (e < hi or hi == 0) else hi, floor, ceiling)
            # free_pgd_range frees a table when no VMA may use any of its
            # span: the span lies within [floor, ceiling); ceiling 0 = top
            if lo >= floor and (ceiling == 0 or (hi != 0 and hi <= ceiling)):
                if row_empty(self, lev + 1, child):
                    self.free_row_clean(lev + 1, child)
                    t[i] = 0

    def free_pgtables(self, uint64_t start, uint64_t end, uint64_t floor, uint64_t ceiling):
        """free_pgtables: free the tables reachable from [start, end) whose whole
        span lies in [floor, ceiling) (ceiling 0 means the top of the space)."""
        if end <= start:
            return
        with nogil:
            self._free_range(0, 0, 0, start, end, floor, ceiling)

    # ------------------------------------------------------------------
    # protection (change_protection)

    cdef int64_t _change_prot(self, int lev, int64_t row, uint64_t base, uint64_t s, uint64_t e,
                              bint readable, bint writable, bint shared) noexcept nogil:
        cdef uint64_t *t = self.row_ptr(lev, row)
        cdef uint64_t size = <uint64_t>1 << self.shift[lev]
        cdef uint64_t lo, hi, ent
        cdef int i, i0, i1
        cdef int64_t pages = 0, sub
        i0 = self.index(lev, s)
        i1 = self.index(lev, e - 1) + 1
        if lev == self.nlev - 1:
            self.unfold_edges(t, i0, i1)
        for i in range(i0, i1):
            ent = t[i]
            if ent == 0:
                continue
            lo = base + i * size
            hi = lo + size
            if lev != self.nlev - 1 and (ent & E_LEAF) and not (s <= lo and (hi <= e or hi == 0)):
                if self.split_leaf(lev, &t[i]) < 0:
                    return -1
                ent = t[i]
            if lev == self.nlev - 1 or (ent & E_LEAF):
                ent &= ~(<uint64_t>(E_READ | E_WRITE))
                if readable or writable:
                    ent |= E_READ
                # the zero page is never writable; shared pages become
                # writable at once only when already dirty (wp fault later)
                if writable and not (ent & E_ZERO) and (not shared or (ent & E_DIRTY)):
                    ent |= E_WRITE
                t[i] = ent
                pages += 1
                continue
            sub = self._change_prot(lev + 1, <int64_t>efr(ent), lo, s if s > lo else lo,
                                    e if (e < hi or hi == 0) else hi, readable, writable, shared)
            if sub < 0:
                return -1
            pages += sub
        if lev == self.nlev - 1:
            self.fold_blocks(t, i0, i1)
        return pages

    def change_prot(self, uint64_t start, uint64_t end, bint readable, bint writable,
                    bint shared):
        """change_protection over [start, end): set the access bits of present
        leaves for the new protection (huge leaves partly covered are split).
        Returns the present leaves it changed (the caller flushes the TLBs
        when there are any, as change_protection does)."""
        cdef int64_t rc
        if end <= start:
            return 0
        with nogil:
            rc = self._change_prot(0, 0, 0, start, end, readable, writable, shared)
        if rc < 0:
            raise MemoryError("page-table limit reached while splitting a huge page")
        return rc

    def split_at(self, uint64_t addr):
        """Split any huge leaf that straddles ``addr`` (vma_adjust_trans_huge).

        Returns False if a split could not allocate its table.
        """
        cdef int l, reached
        cdef uint64_t *slot
        cdef uint64_t size
        for l in range(self.nlev - 1):
            slot = pt_walk(self, addr, 0, 0, self.nlev - 1, False, &reached, NULL, NULL)
            if reached == self.nlev - 1 or slot[0] == 0 or not (slot[0] & E_LEAF):
                return True
            size = <uint64_t>1 << self.shift[reached]
            if addr & (size - 1) == 0:
                return True
            if self.split_leaf(reached, slot) < 0:
                return False
        return True

    def set_leaf(self, int level, uint64_t addr, bint writable=True):
        """Install a huge leaf of fresh frames at ``level`` for ``addr``.

        For mappings faults never make (a PUD-sized DAX or hugetlb-like
        leaf): the slot must be empty and ``addr`` aligned to the level.
        Returns the head frame id.
        """
        cdef int reached
        cdef uint64_t *slot
        cdef uint64_t size, head
        if not 0 < level < self.nlev - 1:
            raise ValueError(f"level must be in 1..{self.nlev - 2} (a level above the PTEs)")
        size = <uint64_t>1 << self.shift[level]
        if addr & (size - 1):
            raise ValueError(f"addr {addr:#x} is not aligned to {size:#x}")
        slot = pt_walk(self, addr, 0, 0, level, True, &reached, NULL, NULL)
        if slot == NULL:
            raise MemoryError("cannot allocate page tables")
        if reached != level or slot[0] != 0:
            raise ValueError(f"the level-{level} entry for {addr:#x} is not empty")
        head = self.alloc_frames(size >> self.shift[self.nlev - 1])
        slot[0] = (E_PRESENT | E_READ | E_LEAF | E_DIRTY | (E_WRITE if writable else 0)
                   | (head << ADDR_SHIFT))
        return head

    # ------------------------------------------------------------------
    # save and load

    def dump(self):
        """The store as plain arrays: per level ``rows<l>`` (every row ever
        handed out, hw x nent) and ``free<l>`` (the free list); ``next_frame``;
        ``written`` (one bit per frame a store wrote) and ``written_lost``."""
        cdef int l
        cdef int64_t r
        cdef uint64_t[:, ::1] v
        out = {"next_frame": np.array([self.next_frame], dtype=np.uint64),
               "written": self._written_bitmap(),
               "written_lost": np.array([self.written_lost]),
               "nent": np.array([self.pools[l].nent for l in range(self.nlev)], dtype=np.int64),
               "shift": np.array([self.shift[l] for l in range(self.nlev)], dtype=np.int64)}
        for l in range(self.nlev):
            rows = np.empty((self.pools[l].hw, self.pools[l].nent), dtype=np.uint64)
            v = rows
            for r in range(self.pools[l].hw):
                memcpy(&v[r, 0], self.row_ptr(l, r), self.pools[l].nent * 8)
            out[f"rows{l}"] = rows
            out[f"free{l}"] = np.array([self.pools[l].freelist[k]
                                        for k in range(self.pools[l].nfree)], dtype=np.int64)
        return out

    def restore(self, data):
        """Load what dump() returned into this fresh store (same geometry).

        Raises ValueError naming what does not fit; the result is checked
        structurally (check()).
        """
        cdef int l
        cdef int64_t r, hw, k, ncap
        cdef uint64_t[:, ::1] v
        cdef int64_t *nf
        if self.pools[0].hw != 1 or any(self.pools[l].live for l in range(1, self.nlev)):
            raise ValueError("restore needs a fresh store")
        nent = np.asarray(data["nent"])
        shift = np.asarray(data["shift"])
        if nent.tolist() != [self.pools[l].nent for l in range(self.nlev)] or \
                shift.tolist() != [self.shift[l] for l in range(self.nlev)]:
            raise ValueError("saved tables have another geometry")
        limit = self.limit_bytes
        self.limit_bytes = 0
        try:
            for l in range(self.nlev):
                rows = np.ascontiguousarray(data[f"rows{l}"], dtype=np.uint64)
                free_rows = np.asarray(data[f"free{l}"], dtype=np.int64)
                if rows.ndim != 2 or rows.shape[1] != self.pools[l].nent or rows.shape[0] < (l == 0):
                    raise ValueError(f"level {l}: rows have the wrong shape {rows.shape}")
                hw = rows.shape[0]
                if free_rows.ndim != 1 or ((free_rows < 0) | (free_rows >= hw)).any() or \
                        np.unique(free_rows).size != free_rows.size or (l == 0 and 0 in free_rows):
                    raise ValueError(f"level {l}: bad free list")
                while self.pools[l].hw < hw:
                    if self.alloc_row(l) < 0:
                        raise MemoryError("cannot allocate the saved tables")
                v = rows
                for r in range(hw):
                    memcpy(self.row_ptr(l, r), &v[r, 0], self.pools[l].nent * 8)
                ncap = max(64, free_rows.size)
                nf = <int64_t*>realloc(self.pools[l].freelist, ncap * sizeof(int64_t))
                if nf == NULL:
                    raise MemoryError()
                self.pools[l].freelist = nf
                self.pools[l].free_cap = ncap
                for k in range(free_rows.size):
                    nf[k] = free_rows[k]
                self.pools[l].nfree = free_rows.size
                self.pools[l].live = hw - free_rows.size
                self.pools[l].peak = self.pools[l].live
            self.next_frame = int(np.asarray(data["next_frame"])[0])
            if "written" in data:
                self._restore_written(data["written"], bool(np.asarray(data["written_lost"])[0]))
            else:
                # a save from before page contents were tracked: nothing says
                # which pages are zero-filled, so every one counts as written
                self.written_lost = True
        finally:
            self.limit_bytes = limit
        self.tables_freed = 0
        problems = self.check()
        if problems:
            raise ValueError("saved page tables are inconsistent: " + "; ".join(problems[:3]))

    # ------------------------------------------------------------------
    # inspection

    cdef void _frames(self, uint64_t start, uint64_t end, int64_t *out,
                      int8_t *orders) noexcept nogil:
        """Frame id per page into ``out`` and, if ``orders`` is not NULL,
        the order of the folio mapping it (-1 none; the zero page 0)."""
        cdef int pte = self.nlev - 1
        cdef int pshift = self.shift[pte]
        cdef uint64_t addr = start, size, next_, e, f
        cdef uint64_t *slot
        cdef int reached
        cdef int8_t o
        cdef int64_t k = 0, n, j
        while addr < end:
            slot = pt_walk(self, addr, 0, 0, pte, False, &reached, NULL, NULL)
            size = <uint64_t>1 << self.shift[reached]
            next_ = (addr & ~(size - 1)) + size
            if next_ > end or next_ == 0:
                next_ = end
            n = <int64_t>((next_ - addr) >> pshift)
            e = slot[0]
            if reached < pte and not (e & E_LEAF):
                # hole above the PTE level
                for j in range(n):
                    out[k] = -1
                    if orders != NULL:
                        orders[k] = -1
                    k += 1
            elif reached < pte:
                f = 0 if (e & E_ZERO) else efr(e) + ((addr & (size - 1)) >> pshift)
                o = <int8_t>(self.shift[reached] - pshift)
                for j in range(n):
                    out[k] = <int64_t>f
                    if orders != NULL:
                        orders[k] = o
                    k += 1
                    if not (e & E_ZERO):
                        f += 1
            else:
                # a whole PTE-table stretch: read the row directly
                while addr < next_:
                    e = slot[0]
                    out[k] = -1 if e == 0 else <int64_t>efr(e)
                    if orders != NULL:
                        orders[k] = -1 if e == 0 else <int8_t>((e & E_ORDER) >> E_ORDER_SHIFT)
                    k += 1
                    slot += 1
                    addr += <uint64_t>1 << pshift
            addr = next_

    def frames(self, uint64_t start, uint64_t end):
        """Frame id per base page of [start, end): -1 none, 0 zero page."""
        n = (end - start) >> self.shift[self.nlev - 1] if end > start else 0
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] v = out
        if n:
            with nogil:
                self._frames(start, end, &v[0], NULL)
        return out

    def folio_orders(self, uint64_t start, uint64_t end):
        """(frame id, folio order) per base page of [start, end): frames as
        ``frames``; the order of the folio mapping the page, -1 where none
        (a huge leaf's order is its level's, the huge zero page's too; the
        zero page's 0)."""
        n = (end - start) >> self.shift[self.nlev - 1] if end > start else 0
        out = np.empty(n, dtype=np.int64)
        orders = np.empty(n, dtype=np.int8)
        cdef int64_t[::1] v = out
        cdef int8_t[::1] ov = orders
        if n:
            with nogil:
                self._frames(start, end, &v[0], &ov[0])
        return out, orders

    def clear_cont(self):
        """Clear PTE_CONT on every PTE (no contiguous block stays folded)."""
        cdef int pte = self.nlev - 1
        cdef int64_t row, n = self.pools[pte].hw
        cdef int i, nent = self.pools[pte].nent
        cdef uint64_t *t
        with nogil:
            for row in range(n):
                t = self.row_ptr(pte, row)
                for i in range(nent):
                    t[i] &= ~(<uint64_t>E_CONT)

    def entry(self, uint64_t addr):
        """(level, raw entry) of the deepest entry mapping ``addr``."""
        cdef int reached
        cdef uint64_t *slot = pt_walk(self, addr, 0, 0, self.nlev - 1, False, &reached, NULL, NULL)
        return reached, slot[0]

    def translate(self, uint64_t addr):
        """Frame id of the base page holding ``addr``: -1 none, 0 zero page."""
        cdef int reached
        cdef uint64_t *slot = pt_walk(self, addr, 0, 0, self.nlev - 1, False, &reached, NULL, NULL)
        cdef uint64_t e = slot[0]
        cdef uint64_t size = <uint64_t>1 << self.shift[reached]
        if e == 0 or (reached < self.nlev - 1 and not (e & E_LEAF)):
            return -1
        if e & E_ZERO:
            return 0
        return <int64_t>(efr(e) + ((addr & (size - 1)) >> self.shift[self.nlev - 1]))

    def table(self, int level, int64_t row):
        """A read-only zero-copy numpy view of one table page."""
        if not 0 <= level < self.nlev:
            raise ValueError(f"level must be in 0..{self.nlev - 1}, not {level}")
        if not 0 <= row < self.pools[level].hw:
            raise ValueError(f"row {row} was never allocated at level {level}")
        cdef cnp.npy_intp dims[1]
        dims[0] = self.pools[level].nent
        arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_UINT64,
                                            <void*>self.row_ptr(level, row))
        Py_INCREF(self)
        cnp.PyArray_SetBaseObject(arr, self)
        arr.flags.writeable = False
        return arr

    @property
    def levels(self):
        return self.nlev

    def live_rows(self):
        """Rows in use per level (level 0 is the pgd)."""
        return [self.pools[l].live for l in range(self.nlev)]

    def peak_rows(self):
        return [self.pools[l].peak for l in range(self.nlev)]

    @property
    def table_bytes(self):
        """Bytes of tables below the pgd, as the kernel's mm_pgtables_bytes."""
        return self.bytes_below_root()

    @property
    def reserved_bytes(self):
        """Bytes of row storage allocated (chunks), used or free."""
        cdef int64_t b = 0
        for l in range(self.nlev):
            b += self.pools[l].nchunks * (<int64_t>1 << self.pools[l].chunk_shift) \
                * self.pools[l].nent * 8
        return b

    @property
    def next_frame(self):
        return self.next_frame

    @property
    def limit_bytes(self):
        return self.limit_bytes

    @limit_bytes.setter
    def limit_bytes(self, int64_t v):
        if v < 0:
            raise ValueError("limit_bytes must be >= 0")
        self.limit_bytes = v

    @property
    def freed_total(self):
        """Tables freed since creation (or since restore())."""
        return self.tables_freed

    cdef int64_t _count(self, int lev, int64_t row, uint64_t base, uint64_t s,
                        uint64_t e) noexcept nogil:
        cdef uint64_t *t = self.row_ptr(lev, row)
        cdef uint64_t size = <uint64_t>1 << self.shift[lev]
        cdef uint64_t lo, hi, ent
        cdef int i, i0, i1
        cdef int pte = self.nlev - 1
        cdef int64_t n = 0
        i0 = self.index(lev, s)
        i1 = self.index(lev, e - 1) + 1
        for i in range(i0, i1):
            ent = t[i]
            if ent == 0:
                continue
            if lev == pte:
                n += 1
                continue
            lo = base + i * size
            hi = lo + size
            if s > lo:
                lo = s
            if e < hi or hi == 0:
                hi = e
            if ent & E_LEAF:
                n += <int64_t>((hi - lo) >> self.shift[pte])
            else:
                n += self._count(lev + 1, <int64_t>efr(ent), base + i * size, lo, hi)
        return n

    def count_mapped(self, uint64_t start, uint64_t end):
        """Base pages mapped (present leaves) in [start, end)."""
        cdef int64_t n = 0
        if end > start:
            with nogil:
                n = self._count(0, 0, 0, start, end)
        return n

    def check(self):
        """Structural invariants; returns a list of problems (empty if sound).

        Every row below the high-water mark is either on the free list
        exactly once, or referenced exactly once from a present table entry
        of the level above (row 0 of level 0 is the pgd); free rows are
        zero; pointers stay inside the pool.
        """
        problems = []
        cdef int l, i
        cdef int64_t r, hw
        cdef uint64_t e
        cdef uint64_t *t
        refs = [np.zeros(self.pools[l].hw, dtype=np.int64) for l in range(self.nlev)]
        cdef int64_t[::1] rv
        refs[0][0] = 1
        for l in range(self.nlev - 1):
            rv = refs[l + 1]
            hw = self.pools[l + 1].hw
            for r in range(self.pools[l].hw):
                if refs[l][r] == 0:
                    continue
                t = self.row_ptr(l, r)
                for i in range(self.pools[l].nent):
                    e = t[i]
                    if e == 0 or (e & E_LEAF):
                        continue
                    if not (e & E_PRESENT):
                        problems.append(f"level {l} row {r} entry {i}: non-present {e:#x}")
                        continue
                    if <int64_t>efr(e) >= hw:
                        problems.append(f"level {l} row {r} entry {i}: row {efr(e)} out of pool")
                        continue
                    rv[efr(e)] += 1
        for l in range(self.nlev):
            free_rows = np.array([self.pools[l].freelist[k] for k in range(self.pools[l].nfree)],
                                 dtype=np.int64)
            ref = refs[l]
            owner = ref.copy()
            np.add.at(owner, free_rows, 1)
            bad = np.flatnonzero(owner != 1)
            if bad.size:
                problems.append(f"level {l}: rows {bad[:8].tolist()} referenced or freed "
                                f"{owner[bad[:8]].tolist()} times (must be once)")
            if int(np.count_nonzero(ref)) != self.pools[l].live:
                problems.append(f"level {l}: {np.count_nonzero(ref)} rows reachable but "
                                f"{self.pools[l].live} live")
            for r in free_rows[:64]:
                if not row_empty(self, l, r):
                    problems.append(f"level {l}: free row {r} is not zero")
        return problems
