# cython: language_level=3
"""Page contents and saving the store (see _persist.pyx)."""

from libc.stdint cimport uint64_t

from pagetab._pgtable cimport pgtables

cdef void mark_written(pgtables *pt, uint64_t frame) noexcept nogil
cdef bint is_written(pgtables *pt, uint64_t frame) noexcept nogil
cdef object written_frames(pgtables *pt)
cdef object write_frames(pgtables *pt, frames)
cdef dict dump(pgtables *pt)
cdef object restore(pgtables *pt, data)
