# cython: language_level=3
"""The hot fields of an mm and of a VMA as C data (include/linux/mm_types.h).

``mm_struct`` and ``vm_area_struct`` are the typed bases of mm_types.MmStruct
and mm_types.Vma: Python reads and writes their fields as attributes, and
the C paths (_mremap) read them without a dictionary lookup. The last
mremap's record may be held here as the engine's C struct, made into a
MoveStats only when someone reads ``last_move``.
"""

from libc.stdint cimport int64_t, uint64_t

from pagetab._flush cimport Tlbs
from pagetab._move cimport PagetableMoveControl, move_stats
from pagetab._tables cimport PageTables


cdef class vm_area_struct:
    cdef public uint64_t start
    cdef public uint64_t end
    cdef public int prot
    cdef public bint shared
    cdef public uint64_t flags           # VM_HUGEPAGE / VM_NOHUGEPAGE / VM_UFFD_* / VM_ACCOUNT ...
    cdef public uint64_t pgoff           # vm_pgoff, in pages
    cdef public object anon_vma          # anon_vma identity (None until the first anon fault)
    cdef public object shm               # the shmem object of a shared anonymous mapping
    cdef public int64_t uffd             # vm_userfaultfd_ctx: the userfaultfd's id, 0 none
    cdef public object file              # vm_file


# The record of an mremap done in C, as MoveStats' constructor takes it.
cdef struct pending_move:
    uint64_t old_addr
    uint64_t new_addr
    uint64_t length
    uint64_t moved_bytes
    int64_t tables_freed
    int64_t page_table_bytes_before
    int64_t page_table_bytes_after
    int64_t wall_ns
    move_stats rec


cdef class mm_struct:
    # set once, from the arch
    cdef readonly object arch
    cdef readonly int page_shift
    cdef readonly uint64_t page_size
    cdef readonly uint64_t pmd_mask
    cdef readonly uint64_t task_size
    cdef readonly uint64_t mmap_min_addr
    cdef readonly int64_t pte_table_bytes
    cdef readonly PageTables tables
    cdef readonly Tlbs tlbs
    # the state the kernel's files change
    cdef public list vmas                # sorted by address (mm_mt)
    cdef public object policy
    cdef public PagetableMoveControl pmc # the policy's engine config, compiled once
    cdef public int cpu                  # the CPU making system calls
    cdef public bint trace_moves         # record every mremap step by step
    cdef public int64_t max_map_count
    cdef public object page_table_limit  # bytes, or None
    # last_move: a MoveStats, or the C record of a move not yet read
    cdef object _last_move
    cdef bint move_pending
    cdef object pending_policy
    cdef pending_move pending
