# cython: language_level=3
"""mm/huge_memory.c on the store: splitting huge leaves (see _huge_memory.pyx)."""

from libc.stdint cimport int64_t, uint64_t

from pagetab._pgtable cimport pgtables

cdef int64_t split_huge_pmd(pgtables *pt, int lev, uint64_t *slot) noexcept nogil
cdef bint split_huge_pmd_address(pgtables *pt, uint64_t addr) noexcept nogil
cdef object set_leaf(pgtables *pt, int level, uint64_t addr, bint writable)
