# cython: language_level=3
"""The typed bases of mm_types.MmStruct and mm_types.Vma (see _mm_types.pxd)."""

cimport numpy as cnp
from libc.string cimport memcpy

from pagetab.stats import MoveStats

cnp.import_array()

cdef cnp.npy_intp MOVE_WORDS = sizeof(move_stats) // sizeof(int64_t)


cdef class vm_area_struct:
    """A vm_area_struct's fields (mm_types.Vma adds its methods)."""

    def __init__(self, uint64_t start, uint64_t end, int prot, bint shared, uint64_t flags=0,
                 uint64_t pgoff=0, anon_vma=None, shm=None, int64_t uffd=0, file=None):
        self.start = start
        self.end = end
        self.prot = prot
        self.shared = shared
        self.flags = flags
        self.pgoff = pgoff
        self.anon_vma = anon_vma
        self.shm = shm
        self.uffd = uffd
        self.file = file


cdef class mm_struct:
    """An mm_struct's hot fields (mm_types.MmStruct adds the rest)."""

    def __init__(self, arch, PageTables tables not None, Tlbs tlbs not None):
        self.arch = arch
        self.page_shift = arch.page_shift
        self.page_size = arch.page_size
        self.pmd_mask = arch.pmd_size - 1
        self.task_size = arch.task_size
        self.mmap_min_addr = arch.mmap_min_addr
        # nearly all tables a move allocates are PTE tables
        levels = arch.levels
        self.pte_table_bytes = levels[len(levels) - 1].table_bytes  # (no wraparound here)
        self.tables = tables
        self.tlbs = tlbs
        self.vmas = []
        self.page_table_limit = None

    @property
    def last_move(self):
        """The record of the last mremap (a MoveStats), or None."""
        cdef cnp.ndarray words
        cdef pending_move *p
        if self.move_pending:
            p = &self.pending
            st = MoveStats(self.arch.name, self.pending_policy.name, p.old_addr, p.new_addr,
                           p.length, p.length, moved_bytes=p.moved_bytes,
                           tables_freed=p.tables_freed,
                           page_table_bytes_before=p.page_table_bytes_before,
                           page_table_bytes_after=p.page_table_bytes_after, wall_ns=p.wall_ns,
                           profile=self.arch, pte_table_bytes=self.pte_table_bytes)
            words = cnp.PyArray_EMPTY(1, &MOVE_WORDS, cnp.NPY_INT64, 0)
            memcpy(cnp.PyArray_DATA(words), &p.rec, sizeof(move_stats))
            st.add(words)
            self._last_move = st
            self.move_pending = False
            self.pending_policy = None
        return self._last_move

    @last_move.setter
    def last_move(self, st):
        self._last_move = st
        self.move_pending = False
        self.pending_policy = None
