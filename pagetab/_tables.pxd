# cython: language_level=3
"""The Python face of the page-table store (see _tables.pyx)."""

from pagetab._pgtable cimport pgtables


cdef class PageTables:
    cdef pgtables pgt
