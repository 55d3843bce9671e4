# cython: language_level=3
"""The move engine's boundary: its configuration and its record.

``mremap_config`` (arch geometry and policy) crosses into C once per
address space; ``pagetable_move_control`` carries one move, as the
kernel's struct of that name in mm/mremap.c; ``move_stats`` is what a move
did. Python reads ``move_stats`` as a numpy record whose dtype is derived
from this struct (MOVE_DTYPE), so its field names are the names users see
(``mm.last_move.ptes_moved``): add a counter here and it appears there.
"""

from libc.stdint cimport int64_t, uint64_t

from pagetab._flush cimport FlushOps, Tlbs
from pagetab._tables cimport PageTables


# when moved entries are flushed (Policy.flush)
cdef enum flush_mode:
    FL_EXTENT = 0        # per move_ptes extent and per whole-entry move
    FL_TABLE = 1         # once per PMD table page, under its lock (batched-ptl)
    FL_END = 2           # once at the end, after the locks are released


# A lock's identity, in the engine's trace (move_event.lo of a lock event)
# and in the concurrent model's keys: the class in the bits from
# LOCK_ID_SHIFT up, then which lock of the class (the engine: the table's
# row; the concurrent model: the address >> the table's span); the one
# mm->page_table_lock is LOCK_ID_MM. Python reads them as _move.LOCK_ID_*.
cpdef enum:
    LOCK_ID_SHIFT = 62
    LOCK_ID_MM = 1               # mm->page_table_lock (every lock when not split)
    LOCK_ID_PTE = 1              # class: a split PTE table lock
    LOCK_ID_PMD = 2              # class: a split PMD table lock
    LOCK_ID_RMAP = 3             # class: the anon_vma lock (id 0) and i_mmap_rwsem (id 1)


# move_pgt_entry's entry types (mm/mremap.c)
cdef enum pgt_entry:
    NORMAL_PMD
    HPAGE_PMD
    NORMAL_PUD
    HPAGE_PUD


cdef struct mremap_config:
    # geometry: level indices of the pte, pmd and pud (pgd on 3-level arm64-64k)
    int pte
    int pmd
    int pud
    int page_shift
    uint64_t pmd_size
    uint64_t pud_size
    bint split_pte               # USE_SPLIT_PTE_PTLOCKS
    bint split_pmd               # USE_SPLIT_PMD_PTLOCKS
    int cont_ptes                # arm64 contpte: PTEs per contiguous block (0 when contpte is off)
    bint bbml2_noabort           # arm64 CPU with BBML2 and no conflict aborts (ARM64_HAS_BBML2_NOABORT)
    # the policy's engine fields: each named as its Policy field (policy.py,
    # which documents them; tests/test_policy.py checks the names)
    bint move_pmd
    bint move_pud
    bint realign
    int flush                    # a flush_mode
    bint dirty_flush_under_lock
    uint64_t pte_extent_limit    # in pages; 0: none
    bint contpte
    bint pte_batch
    bint pte_batch_every_pte
    bint contpte_bbml2_elide


# Lock statistics, one field per lock class.
cdef struct lock_classes:
    # each field's unit and meaning: LOCK_INFO in pagetab/stats.py
    int64_t ptl_pte
    int64_t ptl_pmd
    int64_t page_table_lock
    int64_t rmap


cdef struct move_stats:
    # each field's unit and meaning: COUNTER_INFO in pagetab/stats.py
    int64_t ptes_moved
    int64_t move_ptes_calls
    int64_t normal_pmds_moved
    int64_t huge_pmds_moved
    int64_t normal_puds_moved
    int64_t huge_puds_moved
    int64_t huge_pmds_split
    int64_t huge_puds_split
    int64_t pte_batches
    int64_t folio_lookups
    int64_t ptes_batched
    int64_t contpte_unfolds
    int64_t contpte_folds
    int64_t whole_moves_refused
    int64_t tables_allocated
    int64_t tables_freed_early
    int64_t flush_calls
    int64_t flush_pages
    int64_t unmap_flushes
    int64_t flush_unlocked
    int64_t batched_pending_flushes
    int64_t unsafe_entries
    int64_t unsafe_windows
    lock_classes lock_acquired
    lock_classes lock_max_hold
    FlushOps flush_ops


# One event of a traced move, in the order the engine made them
# (move_page_tables(..., trace=True)); Python reads them as a numpy record
# array whose dtype is this struct (EVENT_DTYPE).
cdef struct move_event:
    int64_t kind                 # an EV_* of _move.pyx (EVENT_KINDS names them)
    int64_t what                 # lock class (lock, unlock); pgt_entry (entry); flush record (flush, convert); folio lookups (ptes)
    int64_t entries              # entries moved (ptes, entry); during the hold (unlock); stride shift (flush, convert); locks it stands for, 0 for one (lock)
    uint64_t lo                  # old-address range (ptes, entry, flush, convert); the lock's id (lock, unlock)
    uint64_t hi


# move_event kinds, in _move.EVENT_KINDS' order
cdef enum:
    EV_LOCK = 0
    EV_UNLOCK = 1
    EV_PTES = 2
    EV_ENTRY = 3
    EV_FLUSH = 4
    EV_CONVERT = 5
    EV_SPLIT = 6
    EV_FINISH = 7      # the unmap's tlb_finish_mmu flush after the moves (stats.add_flush)
    EV_BATCHED = 8     # flush_tlb_batched_pending in move_ptes: reclaim's deferred flush

# lock classes: indices into a lock_classes struct, in its field order
cdef enum:
    LK_PTE = 0
    LK_PMD = 1
    LK_MM = 2
    LK_RMAP = 3


# A traced call's events in order, and the flush operations of each of its
# flush events (the row its ``what`` names): what move_page_tables(...,
# trace=True) and UFFDIO_MOVE's move_calls(..., trace=True) record.
cdef struct event_log:
    bint on                      # recording (off: not asked for, or out of memory)
    bint lost                    # ran out of memory: nothing is returned
    move_event *ev
    int64_t nev
    int64_t ev_cap
    FlushOps *fops
    int64_t nfops
    int64_t fops_cap

cdef move_event* log_event(event_log *g, int64_t kind, int64_t what, int64_t entries,
                           uint64_t lo, uint64_t hi) noexcept nogil
cdef void log_flush(event_log *g, int64_t kind, uint64_t lo, uint64_t hi, int stride_shift,
                    const FlushOps *now, const FlushOps *before) noexcept nogil
cdef object log_arrays(event_log *g)
cdef void log_free(event_log *g) noexcept nogil


cdef class PagetableMoveControl:
    """One move, as the kernel's struct pagetable_move_control."""
    cdef mremap_config cfg
    cdef public uint64_t old_addr
    cdef public uint64_t new_addr
    cdef public uint64_t old_end
    cdef public uint64_t len_in
    cdef public bint need_rmap_locks
    cdef public bint has_anon
    cdef public bint has_file
    cdef public uint64_t free_lo
    cdef public uint64_t free_hi
    cdef public int caller
    cdef public bint uffd_no_table_moves
    cdef void begin(self, uint64_t old_addr, uint64_t new_addr, uint64_t len_in,
                    bint need_rmap_locks, bint has_anon, int caller, uint64_t free_lo,
                    uint64_t free_hi, bint uffd_no_table_moves, bint has_file) noexcept


cdef object move_tables(PageTables tables, Tlbs tlbs, PagetableMoveControl pmc, bint trace,
                        move_stats *rec, uint64_t *moved)
