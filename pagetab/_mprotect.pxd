# cython: language_level=3
"""mm/mprotect.c on the store: change_protection (see _mprotect.pyx)."""

from libc.stdint cimport int64_t, uint64_t

from pagetab._pgtable cimport pgtables

cdef int64_t change_protection(pgtables *pt, uint64_t start, uint64_t end, bint readable,
                               bint writable, bint shared) noexcept nogil
