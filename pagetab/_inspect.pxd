# cython: language_level=3
"""Reading the store: frames, counts, translations, its invariants (see _inspect.pyx)."""

from libc.stdint cimport int64_t, uint64_t

from pagetab._pgtable cimport pgtables

cdef object frames(pgtables *pt, uint64_t start, uint64_t end, bint with_orders)
cdef int64_t count_mapped(pgtables *pt, uint64_t start, uint64_t end) noexcept nogil
cdef object entry(pgtables *pt, uint64_t addr)
cdef int64_t translate(pgtables *pt, uint64_t addr) noexcept nogil
cdef list check(pgtables *pt)
