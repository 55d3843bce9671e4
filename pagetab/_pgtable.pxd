# cython: language_level=3
"""The packed page-table store: row pools, the entry layout, the walkers.

Mirrors include/linux/pgtable.h (pgd_offset .. pte_offset: ``pt_walk``,
the point walker), mm/pagewalk.c (``walk_page_range``, the range walker:
``struct mm_walk_ops`` with per-level callbacks and ``mm_walk.private``
for each walk's state), the page-table page allocator (pud_alloc/
pmd_alloc/pte_alloc, pte_free, mm_pgtables_bytes: ``alloc_row``,
``free_row``) and arm64's contpte tests. Every other page-table module
(_memory, _mprotect, _huge_memory, _inspect, _persist, the move engine)
works on a ``pgtables`` through these.

Entry layout (one uint64 per entry, every level; documented once here):

    bit 0   E_PRESENT   pte_present()/pmd_present(): something is mapped
    bit 1   E_WRITE     hardware write permission
    bit 2   E_READ      accessible (cleared for PROT_NONE, as _PAGE_PROTNONE)
    bit 3   E_DIRTY     written since mapped
    bit 4   E_SOFTDIRTY set when mremap moves the entry (move_soft_dirty_pte,
                        move_soft_dirty_pmd) and UFFDIO_MOVE a page or THP
    bit 5   E_LEAF      above the PTE level: a huge leaf, not a table pointer
    bit 6   E_ZERO      maps the (huge) zero page; frame field is 0
    bit 7   E_CONT      arm64 PTE_CONT: one of a contiguous block of PTEs
    bits 8-11 E_ORDER   a PTE-level leaf's folio order (0: a small folio; a
                        large folio of order o has 1 << o frames from a
                        multiple of 1 << o on, so its head is the frame id
                        rounded down)
    bits 12-63          frame id of a leaf, or the row of the child table

A table pointer is E_PRESENT | row << 12 (and never E_LEAF). Zero is none.

Packed PTE tables. A PTE table whose entries follow one rule is held as a
descriptor of two words instead of a row (the kernel keeps every entry; a
simulator need not): its pointer at the PMD level is E_PRESENT | E_PACKED
| index << 12, the index into ``pgtables.packed``. Entry i of the table is

    tmpl + ((i * step) << 12)   for lo <= i < hi,   none elsewhere

(uint64 arithmetic, wrapping: ``tmpl`` is the entry index 0 would have).
step 0 with E_ZERO is a run of zero-page PTEs, step 1 a run of frames
n, n+1, ... with one set of flags (one folio order), lo == hi (both words
0) an empty table. A packed table counts as one PTE table everywhere
(mm_pgtables_bytes, the limit, live and peak rows). ``pt_walk`` down to a
PTE expands it into a row first (``expand_packed``); ``pt_read`` and the
range walker's ``packed_range`` callbacks read and change descriptors
without expanding. ``pgtables.pack`` off (PAGETAB_PACK=0) makes none.

Packed PMD tables. A PMD table whose entries are packed PTE tables of one
rule is held as a descriptor of two words too: its pointer one level up
(the PUD level, nlev - 3) is E_PRESENT | E_PACKED | index << 12, the
index into ``pgtables.packed_pmd``. PMD entries [lo, hi) each point to a
packed PTE table, none elsewhere; word 1 is lo | hi << 16 | step << 32,
plus PD_EMPTY when every one of those PTE tables is empty. Without it
each is full (entries [0, nent)) and PTE i of PMD entry j is

    tmpl + (((j * nent + i) * step) << 12)

(the PTE tables' runs make one run across the PMD table: a populated GiB
of zero pages, or of consecutive frames). Both words 0: a PMD table with
no entry. A packed PMD table counts as one PMD table and hi - lo PTE
tables (``packed_pmd_ptes``). ``pt_walk`` below it expands it into a row
of packed PTE tables first (``expand_packed_pmd``); ``pt_read``,
``pt_walk_read`` and walks that only read (``mm_walk_ops.reads_only``)
read it in place; ``try_pack_pmd`` packs a row again (after populate, a
zap or change_prot walk, each PUD extent of a move).
"""

from libc.stdint cimport int8_t, int64_t, uint8_t, uint64_t

cdef enum:
    E_PRESENT = 1
    E_WRITE = 2
    E_READ = 4
    E_DIRTY = 8
    E_SOFTDIRTY = 16
    E_LEAF = 32
    E_ZERO = 64
    E_CONT = 128
    E_ORDER_SHIFT = 8
    E_ORDER = 0xf00
    E_FLAGS = 0xfff
    E_PACKED = 0x800         # a pointer to a packed PTE table (at the PMD level) or
                             # packed PMD table (at the PUD level)
    ADDR_SHIFT = 12
    MAX_LEVELS = 5

cdef extern from *:
    """
    /* word 1 of a packed PMD table's descriptor: its PTE tables are empty */
    #define PD_EMPTY (((unsigned long long)1) << 40)
    """
    const uint64_t PD_EMPTY

cdef struct Pool:
    # Rows of one level. Rows live in fixed-size calloc'd chunks, so growing
    # never copies or moves an existing row; freed rows go on a stack.
    int nent                 # entries per table (row width)
    int chunk_shift          # rows per chunk = 1 << chunk_shift
    uint64_t **chunks
    int64_t nchunks
    int64_t chunks_cap
    int64_t hw               # rows ever handed out (high water)
    int64_t live             # rows in use
    int64_t peak             # highest live
    int64_t *freelist
    int64_t nfree
    int64_t free_cap
    int64_t *fail_in         # the store's allocation-failure countdown (NULL: none)


cdef inline uint64_t* pool_row(Pool *p, int64_t row) noexcept nogil:
    """The entries of one row (inlined into every module that cimports this)."""
    return p.chunks[row >> p.chunk_shift] + (row & ((1 << p.chunk_shift) - 1)) * p.nent


cdef inline int pool_index(Pool *p, int shift, uint64_t addr) noexcept nogil:
    """The index of ``addr`` in a table of this pool whose entries map 1 << shift."""
    return <int>((addr >> shift) & <uint64_t>(p.nent - 1))


cdef struct pgtables:
    # The page tables of one mm (owned by _tables.PageTables)
    int nlev
    int shift[MAX_LEVELS]
    Pool pools[MAX_LEVELS]
    uint64_t next_frame
    int64_t limit_bytes          # 0: unlimited (page_table_limit)
    int64_t tables_freed
    Pool packed                  # packed PTE tables: (tmpl, lo | hi << 16 | step << 32)
    bint pack                    # new PTE tables start packed (PAGETAB_PACK)
    int64_t packed_expanded      # packed tables expanded into rows
    Pool packed_pmd              # packed PMD tables: (tmpl, lo | hi << 16 | step << 32 | PD_EMPTY)
    int64_t packed_pmd_ptes      # PTE tables the packed PMD tables hold
    int64_t packed_pmd_expanded  # packed PMD tables expanded into rows
    int cont_ptes                # arm64 contpte: PTEs per block folded by faults; 0 none
    int64_t contpte_unfolds      # blocks unfolded by zap and change_prot
    int64_t pte_tables_visited   # PTE tables zap and change_prot walked (each calls
                                 # flush_tlb_batched_pending in the kernel)
    # Page contents as far as the kernel looks at them: bit f set once a
    # store wrote frame f (a fault alone leaves a page zero-filled). A
    # folio split maps never-written subpages to the shared zero page
    # (b1f202060afe, 6.12). written_lost: the bitmap could not grow, or a
    # save without it was loaded: every frame counts as written.
    uint8_t *written
    uint64_t written_bytes
    bint written_lost
    # a testing aid (PageTables.fail_allocation): when n > 0, the n-th row or
    # descriptor taken from any pool fails as a failed malloc would; 0: none
    int64_t fail_in


cdef int pgtables_init(pgtables *pt, int nlev, const int *shifts, const int *nents) noexcept nogil
cdef void pgtables_release(pgtables *pt) noexcept nogil
cdef int64_t alloc_row(pgtables *pt, int lev) noexcept nogil
cdef void free_row(pgtables *pt, int lev, int64_t row) noexcept nogil
cdef void free_row_clean(pgtables *pt, int lev, int64_t row) noexcept nogil
cdef int64_t bytes_below_root(pgtables *pt) noexcept nogil
cdef size_t chunk_bytes(pgtables *pt, int lev) noexcept nogil
cdef void unfold_edges(pgtables *pt, uint64_t *t, int i0, int i1) noexcept nogil
cdef void fold_blocks(pgtables *pt, uint64_t *t, int i0, int i1) noexcept nogil
cdef void clear_cont(pgtables *pt) noexcept nogil
cdef int64_t alloc_packed(pgtables *pt) noexcept nogil
cdef int64_t pool_take(Pool *p) noexcept nogil
cdef int64_t expand_packed(pgtables *pt, uint64_t *slot) noexcept nogil
cdef int new_pte_table(pgtables *pt, uint64_t *slot, bint packed) noexcept nogil
cdef void free_pte_table(pgtables *pt, uint64_t *slot) noexcept nogil
cdef int64_t live_tables(pgtables *pt, int lev) noexcept nogil
cdef void try_pack(pgtables *pt, uint64_t *slot) noexcept nogil
cdef int64_t expand_packed_pmd(pgtables *pt, uint64_t *slot) noexcept nogil
cdef void try_pack_pmd(pgtables *pt, uint64_t *slot) noexcept nogil
cdef void repack_pmds(pgtables *pt, uint64_t start, uint64_t end) noexcept nogil


# ----------------------------------------------------------------------
# packed PTE tables (see the layout above)

cdef inline bint is_packed(uint64_t e) noexcept nogil:
    """Whether the PMD-level entry ``e`` points to a packed PTE table."""
    return (e & (E_PACKED | E_LEAF | E_PRESENT)) == (E_PACKED | E_PRESENT)


cdef inline uint64_t* desc_of(pgtables *pt, uint64_t e) noexcept nogil:
    """The descriptor the packed pointer ``e`` points to."""
    return pool_row(&pt.packed, <int64_t>(e >> ADDR_SHIFT))


cdef inline int d_lo(const uint64_t *d) noexcept nogil:
    return <int>(d[1] & 0xffff)


cdef inline int d_hi(const uint64_t *d) noexcept nogil:
    return <int>((d[1] >> 16) & 0xffff)


cdef inline uint64_t d_step(const uint64_t *d) noexcept nogil:
    return (d[1] >> 32) & 0xff


cdef inline uint64_t d_get(const uint64_t *d, int i) noexcept nogil:
    """Entry ``i`` of a packed table."""
    if i < d_lo(d) or i >= d_hi(d):
        return 0
    return d[0] + ((<uint64_t>i * d_step(d)) << ADDR_SHIFT)


cdef inline uint64_t packed_entry(pgtables *pt, uint64_t pmdval, uint64_t addr) noexcept nogil:
    """The PTE for ``addr`` in the packed table the PMD entry ``pmdval`` points to."""
    cdef int pte = pt.nlev - 1
    return d_get(desc_of(pt, pmdval), pool_index(&pt.pools[pte], pt.shift[pte], addr))


cdef inline void d_set(uint64_t *d, uint64_t tmpl, int lo, int hi, uint64_t step) noexcept nogil:
    """Make ``d`` the run [lo, hi) of ``tmpl`` by ``step`` (empty: both words 0)."""
    if lo >= hi:
        d[0] = 0
        d[1] = 0
    else:
        d[0] = tmpl
        d[1] = <uint64_t>lo | (<uint64_t>hi << 16) | (step << 32)


cdef inline int64_t d_count(const uint64_t *d, int i0, int i1, uint64_t mask) noexcept nogil:
    """count_entries on a packed table: the entries of [i0, i1) with a bit
    of ``mask`` (every entry of the run has the template's flags)."""
    cdef int lo = d_lo(d), hi = d_hi(d)
    if lo < i0:
        lo = i0
    if hi > i1:
        hi = i1
    if hi <= lo:
        return 0
    if (mask & ~(<uint64_t>E_FLAGS)) == 0 and (d[0] & mask) == 0:
        return 0
    return hi - lo


cdef inline void d_fill(const uint64_t *d, uint64_t *t, int nent) noexcept nogil:
    """Write the entries of a packed table into the row ``t``."""
    cdef int i, hi = d_hi(d)
    cdef uint64_t e = 0, step = d_step(d) << ADDR_SHIFT
    for i in range(d_lo(d)):
        t[i] = 0
    if d_hi(d) > d_lo(d):
        e = d_get(d, d_lo(d))
    for i in range(d_lo(d), hi):
        t[i] = e
        e += step
    for i in range(hi, nent):
        t[i] = 0


cdef inline uint64_t efr(uint64_t e) noexcept nogil:
    """The frame id (leaf) or child row (table pointer) of an entry."""
    return e >> ADDR_SHIFT


cdef inline uint64_t* row_ptr(pgtables *pt, int lev, int64_t row) noexcept nogil:
    return pool_row(&pt.pools[lev], row)


cdef inline int pt_index(pgtables *pt, int lev, uint64_t addr) noexcept nogil:
    """The index of ``addr`` in a table of level ``lev``."""
    return pool_index(&pt.pools[lev], pt.shift[lev], addr)


cdef inline uint64_t alloc_frames(pgtables *pt, uint64_t n) noexcept nogil:
    """The head of ``n`` (a power of two) fresh frames from a multiple of
    ``n`` on, as the buddy allocator aligns a folio: the folio of a
    frame is then the frame id rounded down to its size."""
    cdef uint64_t head = (pt.next_frame + n - 1) & ~(n - 1)
    pt.next_frame = head + n
    return head


cdef inline uint64_t* pt_walk(pgtables *pt, uint64_t addr, int lev, int64_t row, int target,
                              bint alloc, int *reached, int64_t *row_out,
                              int64_t *allocated) noexcept nogil:
    """The page-table walker every module uses (pgd_offset .. pte_offset).

    Walks from table ``row`` of level ``lev`` towards level ``target`` for
    ``addr`` and returns the slot it stopped at, ``reached`` set to that
    slot's level: ``target``, or earlier at a none entry (when not
    allocating) or a huge leaf, and ``row_out`` (if not NULL) to the row
    holding that slot. With ``alloc`` missing tables are allocated
    on the way (pud_alloc/pmd_alloc/pte_alloc), each counted in
    ``allocated`` if it is not NULL; NULL if an allocation fails. A
    packed PTE table on the way to the PTE level is expanded into a row
    (NULL, ``reached`` the PMD level, if that fails), as is a packed PMD
    table on the way below the PUD level.
    """
    cdef uint64_t *slot
    cdef int64_t child
    while True:
        slot = pool_row(&pt.pools[lev], row) + pool_index(&pt.pools[lev], pt.shift[lev], addr)
        if lev >= target:
            reached[0] = lev
            if row_out != NULL:
                row_out[0] = row
            return slot
        if slot[0] == 0:
            if not alloc:
                reached[0] = lev
                if row_out != NULL:
                    row_out[0] = row
                return slot
            child = alloc_row(pt, lev + 1)
            if child < 0:
                return NULL
            if allocated != NULL:
                allocated[0] += 1
            slot[0] = E_PRESENT | (<uint64_t>child << ADDR_SHIFT)
        elif slot[0] & E_LEAF:
            reached[0] = lev
            if row_out != NULL:
                row_out[0] = row
            return slot
        elif slot[0] & E_PACKED:
            # a packed PTE or PMD table: the caller gets a slot it may write
            if (expand_packed(pt, slot) if lev == pt.nlev - 2
                    else expand_packed_pmd(pt, slot)) < 0:
                reached[0] = lev
                return NULL
        row = <int64_t>(slot[0] >> ADDR_SHIFT)
        lev += 1


cdef inline uint64_t packed_pmd_entry(pgtables *pt, uint64_t pudval, uint64_t addr,
                                      int *reached) noexcept nogil:
    """The PTE for ``addr`` below the packed PMD table the PUD-level entry
    ``pudval`` points to, ``reached`` set as a walk of rows would set it:
    the PMD level at a none PMD entry, else the PTE level."""
    cdef int pte = pt.nlev - 1
    cdef const uint64_t *d = pool_row(&pt.packed_pmd, <int64_t>(pudval >> ADDR_SHIFT))
    cdef int j = pool_index(&pt.pools[pte - 1], pt.shift[pte - 1], addr)
    cdef uint64_t g
    if j < d_lo(d) or j >= d_hi(d):
        reached[0] = pte - 1
        return 0
    reached[0] = pte
    if d[1] & PD_EMPTY:
        return 0
    g = (<uint64_t>j * <uint64_t>pt.pools[pte].nent
         + <uint64_t>pool_index(&pt.pools[pte], pt.shift[pte], addr))
    return d[0] + ((g * d_step(d)) << ADDR_SHIFT)


cdef inline void pmd_desc_pte(pgtables *pt, const uint64_t *pd, int j,
                              uint64_t *out) noexcept nogil:
    """The descriptor of the packed PTE table at entry ``j`` (inside the
    run) of the packed PMD table ``pd``."""
    cdef int n = pt.pools[pt.nlev - 1].nent
    cdef uint64_t step = d_step(pd)
    if pd[1] & PD_EMPTY:
        out[0] = 0
        out[1] = 0
    else:
        d_set(out, pd[0] + ((<uint64_t>j * <uint64_t>n * step) << ADDR_SHIFT), 0, n, step)


cdef inline uint64_t pt_read(pgtables *pt, uint64_t addr, int target,
                             int *reached) noexcept nogil:
    """The entry ``pt_walk(pt, addr, 0, 0, target, False, ...)`` would
    return the slot of, read without expanding a packed table: for
    lookups that never write (the hardware walk, translate, entry). A
    packed PMD table stops a walk to its own PMD level at the pointer to
    it (no PMD entry is stored to return)."""
    cdef int lev = 0
    cdef int64_t row = 0
    cdef uint64_t e
    while True:
        e = pool_row(&pt.pools[lev], row)[pool_index(&pt.pools[lev], pt.shift[lev], addr)]
        if lev >= target or e == 0 or (e & E_LEAF):
            reached[0] = lev
            return e
        if e & E_PACKED:
            if lev == pt.nlev - 2:
                reached[0] = lev + 1
                return packed_entry(pt, e, addr)
            if target == pt.nlev - 1:
                return packed_pmd_entry(pt, e, addr, reached)
            reached[0] = lev
            return e
        row = <int64_t>(e >> ADDR_SHIFT)
        lev += 1


cdef inline uint64_t* pt_walk_read(pgtables *pt, uint64_t addr, int target,
                                   int *reached) noexcept nogil:
    """``pt_walk`` without allocating or expanding, for readers: the slot
    at level ``target``, or the none entry, huge leaf or pointer to a
    packed table (PTE or PMD) the walk stopped at."""
    cdef int lev = 0
    cdef int64_t row = 0
    cdef uint64_t *slot
    while True:
        slot = pool_row(&pt.pools[lev], row) + pool_index(&pt.pools[lev], pt.shift[lev], addr)
        if lev >= target or slot[0] == 0 or (slot[0] & (E_LEAF | E_PACKED)):
            reached[0] = lev
            return slot
        row = <int64_t>(slot[0] >> ADDR_SHIFT)
        lev += 1


cdef inline int leaf_class(uint64_t e, int reached, int pte, int cont_class) noexcept nogil:
    """The TLB size class of the entry ``e`` a walk stopped at, at level
    ``reached`` (``pte``: the PTE level): 0 for a page, ``cont_class`` for
    a PTE of a contiguous block (the block is one TLB entry; 0 where the
    TLB has no such class), 1 for a PMD leaf, 2 for a PUD leaf; -1 when
    there is no leaf."""
    if e == 0 or not (e & E_PRESENT):
        return -1
    if reached == pte:
        return cont_class if e & E_CONT else 0
    if e & E_LEAF:
        return pte - reached
    return -1


cdef inline bint same_folio_next(uint64_t a, uint64_t b) noexcept nogil:
    """Whether PTE ``b`` maps the page after ``a``'s in the same large folio
    with the same bits but accessed/dirty/soft-dirty/cont (folio_pte_batch)."""
    cdef uint64_t ign = E_DIRTY | E_SOFTDIRTY | E_CONT
    cdef uint64_t o = (a & E_ORDER) >> E_ORDER_SHIFT
    return (b & E_PRESENT) and ((a ^ b) & (<uint64_t>E_FLAGS) & ~ign) == 0 \
        and (b >> ADDR_SHIFT) == (a >> ADDR_SHIFT) + 1 \
        and ((b >> ADDR_SHIFT) >> o) == ((a >> ADDR_SHIFT) >> o)


cdef inline bint block_foldable(const uint64_t *t, int64_t b, int c) noexcept nogil:
    """__contpte_try_fold's test for the ``c`` PTEs from ``t[b]`` (a naturally
    aligned block): not folded yet, and mapping one folio that covers the
    block, page after page from a block-aligned frame, with the same bits
    (accessed/dirty/soft-dirty aside)."""
    cdef uint64_t e = t[b]
    cdef int64_t j
    if not (e & E_PRESENT) or (e & (E_CONT | E_ZERO)):
        return False
    if (<uint64_t>1 << ((e & E_ORDER) >> E_ORDER_SHIFT)) < <uint64_t>c \
            or (e >> ADDR_SHIFT) % <uint64_t>c:
        return False
    for j in range(b, b + c - 1):
        if not same_folio_next(t[j], t[j + 1]) or ((t[j] ^ t[j + 1]) & E_CONT):
            return False
    return True


cdef inline int64_t count_entries(const uint64_t *t, int i0, int i1, uint64_t mask) noexcept nogil:
    """The entries of ``t[i0:i1]`` with a bit of ``mask`` set."""
    cdef int64_t n = 0
    cdef int i
    for i in range(i0, i1):
        if t[i] & mask:
            n += 1
    return n


cdef inline bint row_empty(pgtables *pt, int lev, int64_t row) noexcept nogil:
    """Whether table ``row`` of level ``lev`` has no entry at all."""
    cdef uint64_t *t = pool_row(&pt.pools[lev], row)
    cdef int i
    for i in range(pt.pools[lev].nent):
        if t[i]:
            return False
    return True


cdef inline bint pte_table_empty(pgtables *pt, uint64_t e) noexcept nogil:
    """Whether the PTE table the PMD-level pointer ``e`` points to holds no entry."""
    if is_packed(e):
        return desc_of(pt, e)[1] == 0
    return row_empty(pt, pt.nlev - 1, <int64_t>efr(e))


# ----------------------------------------------------------------------
# The range walker (mm/pagewalk.c): every range operation on the store is
# a set of callbacks on walk_page_range, not a walk of its own

cdef enum:
    ACTION_SUBTREE = 0     # go on below the entry (the default)
    ACTION_CONTINUE = 1    # the callback dealt with the entry: do not descend
    ACTION_AGAIN = 2       # the callback changed the entry: look at it again
    WALK_EXPAND = 1        # packed_range: expand the table, give it to pte_range

cdef struct mm_walk

# [addr, next) is the part of the entry's span inside the walked range;
# a callback returns 0 to go on, or an error that ends the walk and is
# walk_page_range's result
ctypedef int (*walk_entry_fn)(mm_walk *walk, int lev, uint64_t *slot, uint64_t addr,
                              uint64_t next) noexcept nogil
ctypedef int (*walk_ptes_fn)(mm_walk *walk, uint64_t *pte, int i0, int i1, uint64_t addr,
                             uint64_t next) noexcept nogil
# a packed PTE table's descriptor ``d`` (its pointer in ``*slot``): the
# callback reads or rewrites the descriptor for entries [i0, i1), or
# returns WALK_EXPAND to have the table expanded (unless it expanded it
# itself, to say where a failure stopped it) and given to pte_range
ctypedef int (*walk_packed_fn)(mm_walk *walk, uint64_t *slot, uint64_t *d, int i0, int i1,
                               uint64_t addr, uint64_t next) noexcept nogil

cdef struct mm_walk_ops:
    # NULL callbacks are skipped. The kernel's pud_entry and pmd_entry see
    # table entries too; no walk here needs them, so the leaf callbacks see
    # leaves only and the walker goes down tables by itself
    walk_entry_fn pud_leaf    # a huge leaf above the PMD level (pud_leaf(); at the pgd or
                              # p4d level too, as ``lev`` says); may set walk.action, and
                              # split the leaf to have its new table walked
    walk_entry_fn pmd_leaf    # a huge PMD leaf (pmd_leaf(), pmd_trans_huge()); as pud_leaf
    walk_ptes_fn pte_range    # the PTEs pte[i0:i1] of one table, mapping [addr, next): the
                              # kernel's pte_entry for a whole table at once, so that the
                              # per-entry loop stays one C loop (as zap_pte_range's)
    walk_entry_fn pte_hole    # a none entry above the PTEs: may fill *slot (install a table
                              # or a leaf) and set ACTION_AGAIN to have it walked
    walk_entry_fn post_table  # after the walk below a table pointer (post-order: a table
                              # whose entries are all gone can be freed here)
    walk_packed_fn packed_range  # a packed PTE table (NULL: expanded for pte_range)
    bint repack               # after pte_range over a whole table: pack it if it is one run;
                              # after the walk below a PMD table: pack that if it is uniform
    bint reads_only           # no callback writes: a packed PMD table is read in place, its
                              # PTE tables given to packed_range (or made rows on the side
                              # for pte_range) and its none entries to pte_hole (a walk
                              # with a post_table has it expanded all the same)

cdef struct mm_walk:
    const mm_walk_ops *ops
    pgtables *pt
    void *private             # the walk's own state, for its callbacks
    int action                # ACTION_*, set by pud_leaf, pmd_leaf or pte_hole
    uint64_t failed_at        # where the walker itself ran out of memory (expanding a
                              # packed PMD table); its error then is -ENOMEM


cdef int walk_table(mm_walk *walk, int lev, int64_t row, uint64_t base, uint64_t start,
                    uint64_t end) noexcept nogil
cdef int walk_page_table(pgtables *pt, int lev, int64_t row, const mm_walk_ops *ops,
                         void *private) noexcept nogil


cdef inline bint covers(pgtables *pt, int lev, uint64_t addr, uint64_t next) noexcept nogil:
    """Whether [addr, next), a walk's part of an entry of level ``lev``, is
    all of the entry's span (one ending at the top of the space counts
    whole): a huge leaf there goes as one, else it is split first."""
    cdef uint64_t size = <uint64_t>1 << pt.shift[lev]
    cdef uint64_t lo = addr & ~(size - 1)
    return addr == lo and (next == lo + size or lo + size == 0)


cdef inline int walk_ptes(mm_walk *walk, uint64_t *slot, uint64_t start,
                          uint64_t end) noexcept nogil:
    """walk_pte_range: the PTEs of the table ``*slot`` points to that
    [start, end) covers, to ``ops.pte_range`` in one call (if there is
    one); a packed table to ``ops.packed_range``, or expanded first."""
    cdef pgtables *pt = walk.pt
    cdef int pte = pt.nlev - 1, rc
    cdef int i0 = pt_index(pt, pte, start), i1 = pt_index(pt, pte, end - 1) + 1
    if slot[0] & E_PACKED:
        if walk.ops.packed_range != NULL:
            rc = walk.ops.packed_range(walk, slot, desc_of(pt, slot[0]), i0, i1, start, end)
            if rc != WALK_EXPAND:
                return rc
        if walk.ops.pte_range == NULL:
            return 0
        if (slot[0] & E_PACKED) and expand_packed(pt, slot) < 0:
            return -12  # ENOMEM
    if walk.ops.pte_range == NULL:
        return 0
    rc = walk.ops.pte_range(walk, row_ptr(pt, pte, <int64_t>efr(slot[0])), i0, i1, start, end)
    if rc == 0 and walk.ops.repack and pt.pack and i0 == 0 and i1 == pt.pools[pte].nent:
        try_pack(pt, slot)  # (the callback went over every entry already)
    return rc


cdef inline int walk_page_range(pgtables *pt, uint64_t start, uint64_t end,
                                const mm_walk_ops *ops, void *private,
                                uint64_t *failed_at) noexcept nogil:
    """walk_page_range: walk [start, end) from the pgd with ``ops``, each
    callback given ``private`` as ``walk.private``. Returns 0, or the
    first error a callback returned (the walk stops there), or -ENOMEM
    where the walker could not expand a packed PMD table to walk it for
    writing (then ``failed_at``, if not NULL, is set to where). An empty
    range walks nothing (the kernel's -EINVAL: every caller here would
    ignore it). Inline: the walk's entry and its way down are compiled
    into each walk's module."""
    cdef mm_walk walk
    cdef int lev = 0, pte = pt.nlev - 1, i
    cdef int64_t row = 0
    cdef uint64_t base = 0, e
    cdef uint64_t *slot
    if end <= start:
        return 0
    walk.ops = ops
    walk.pt = pt
    walk.private = private
    walk.action = ACTION_SUBTREE
    walk.failed_at = end
    # While the range lies inside one table entry, and that is a table,
    # go straight down to it (as pt_walk does; nothing is called at a
    # table entry but post_table): a fault's page goes to its PTE table
    if ops.post_table == NULL:
        while lev < pte:
            i = pt_index(pt, lev, start)
            slot = row_ptr(pt, lev, row) + i
            e = slot[0]
            if i != pt_index(pt, lev, end - 1) or e == 0 or (e & E_LEAF) \
                    or (lev < pte - 1 and (e & E_PACKED)):
                break  # (a packed PMD table: walk_table reads or expands it)
            if lev == pte - 1:
                return walk_ptes(&walk, slot, start, end)
            base += <uint64_t>i << pt.shift[lev]
            row = <int64_t>efr(e)
            lev += 1
    i = walk_table(&walk, lev, row, base, start, end)
    if failed_at != NULL:
        failed_at[0] = walk.failed_at
    return i
