# cython: language_level=3
"""mm/memory.c on the store: faults, zap, free_pgtables (see _memory.pyx)."""

from libc.stdint cimport int64_t, uint64_t

from pagetab._pgtable cimport pgtables

cdef enum:
    MODE_READ = 0      # private read fault: the zero page (huge zero page for THP)
    MODE_WRITE = 1     # private write fault: a fresh frame per page (COW of zero)
    MODE_SHARED = 2    # shared memory (shmem, MAP_SHARED file): frames come from the object
    MODE_FILE_READ = 3 # read fault in a file VMA: the page cache's frame, mapped read-only
    MODE_FILE_COW = 4  # write fault in a MAP_PRIVATE file VMA: a fresh anonymous copy


cdef struct fault_ctx:
    # One fault's context (the VMA's part of struct vm_fault), built once per
    # VMA by the caller.
    int mode                 # MODE_*
    bint prot_read
    bint prot_write
    uint64_t thp_lo          # PMD THPs may be installed in [thp_lo, thp_hi)
    uint64_t thp_hi
    uint64_t vm_start        # the VMA: alloc_anon_folio's folio must fit in it
    uint64_t vm_end
    uint64_t orders          # bit o set: PTE-mapped anonymous folios of order o allowed (mTHP)
    int64_t *shm             # MODE_SHARED, MODE_FILE_*: frame id per page of the object
                             # (shmem object or file's page cache)
    uint64_t shm_first       # the index of the range's first page in shm


cdef uint64_t populate_vma_page_range(pgtables *pt, uint64_t start, uint64_t end,
                                      const fault_ctx *ctx, int64_t *installed) noexcept nogil
cdef int zap_page_range(pgtables *pt, uint64_t start, uint64_t end, int64_t *pages) noexcept nogil
# What free_pgtables freed, as the mmu_gather records it (pte_free_tlb and
# pmd_free_tlb widen the range by one page at each freed table's address and
# set cleared_pmds / cleared_puds): the range and tlb_get_unmap_shift's
# stride, the span of the lowest level whose table was freed (0: none freed).
cdef struct freed_tables:
    uint64_t lo
    uint64_t hi
    int shift


cdef void free_pgtables(pgtables *pt, uint64_t start, uint64_t end, uint64_t floor,
                        uint64_t ceiling, freed_tables *freed) noexcept nogil
cdef void reclaim_pt(pgtables *pt, uint64_t start, uint64_t end,
                     freed_tables *freed) noexcept nogil

