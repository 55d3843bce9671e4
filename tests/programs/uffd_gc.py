"""A small compacting garbage collector's memory-management calls, for
recording: the pattern of ART's userfaultfd GC (runtime/gc/collector/
mark_compact.cc) at the system-call level, plus a card-marking mprotect
storm and madvise(MADV_DONTNEED) of freed space.

Each cycle: mremap(MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP) moves the
heap's pages to a from-space, leaving the heap mapped and empty;
UFFDIO_REGISTER(MISSING) arms it; UFFDIO_MOVE moves the live pages back,
compacted to the heap's start; munmap drops the from-space. Needs Linux 6.8+
(UFFDIO_MOVE) and permission to use userfaultfd.

Usage: python uffd_gc.py [heap MiB] [cycles]
"""

import ctypes
import mmap
import sys

from _libc import (
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_R,
    PROT_RW,
    MiB,
    check,
    fixed_area,
    libc,
)

PAGE = mmap.PAGESIZE
heap_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 16
cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 3
HEAP = heap_mb * MiB

MADV_DONTNEED = 4
# include/uapi/linux/userfaultfd.h
UFFDIO_API, UFFDIO_REGISTER, UFFDIO_MOVE = 0xC018AA3F, 0xC020AA00, 0xC028AA05
UFFD_API, UFFD_FEATURE_MOVE, MODE_MISSING, ALLOW_SRC_HOLES = 0xAA, 1 << 16, 1, 2
NR_USERFAULTFD = 323


heap = fixed_area(HEAP)
from_space = fixed_area(HEAP)
libc.munmap(from_space, HEAP)  # keep its address: the from-space goes there
ctypes.memset(heap, 1, HEAP)  # allocate: every heap page written

fd = libc.syscall(NR_USERFAULTFD, 0o2000000 | 0o4000)  # O_CLOEXEC | O_NONBLOCK
check(fd >= 0, "userfaultfd")
api = (ctypes.c_uint64 * 3)(UFFD_API, UFFD_FEATURE_MOVE, 0)
check(libc.ioctl(fd, UFFDIO_API, api) == 0, "UFFDIO_API")

pages = HEAP // PAGE
for cycle in range(cycles):
    # card marking: write-protect the old generation page by page, then open it
    for i in range(0, pages // 4, 8):
        libc.mprotect(heap + i * PAGE, 8 * PAGE, PROT_R)
    libc.mprotect(heap, pages // 4 * PAGE, PROT_RW)
    # pause: the heap's pages to the from-space; the heap stays mapped, empty
    r = libc.mremap(heap, HEAP, HEAP, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, from_space)
    check(r == from_space, "mremap")
    reg = (ctypes.c_uint64 * 4)(heap, HEAP, MODE_MISSING, 0)
    check(libc.ioctl(fd, UFFDIO_REGISTER, reg) == 0, "UFFDIO_REGISTER")
    # compaction: every other run of live pages moves down to the heap's start
    dst = heap
    run = 4 << cycle  # pages per live run
    for src_page in range(0, pages, 2 * run):
        mv = (ctypes.c_uint64 * 5)(
            dst, from_space + src_page * PAGE, run * PAGE, ALLOW_SRC_HOLES, 0
        )
        check(libc.ioctl(fd, UFFDIO_MOVE, mv) == 0, "UFFDIO_MOVE")
        dst += run * PAGE
    unreg = (ctypes.c_uint64 * 2)(heap, HEAP)
    check(libc.ioctl(fd, 0x8010AA01, unreg) == 0, "UFFDIO_UNREGISTER")
    libc.munmap(from_space, HEAP)
    # the free tail: given back, then reused by new allocations
    libc.madvise(dst, heap + HEAP - dst, MADV_DONTNEED)
    ctypes.memset(dst, 2, (heap + HEAP - dst) // 2)
