"""A process that forks without exec, for recording: the child starts from
a copy of its parent's address space (kernel/fork.c dup_mmap).

The parent maps and writes an anonymous region (its pages are copied into
the child), maps a second one it never touches (nothing to copy), and a
shared anonymous one it writes half of (the child maps it again from the
shmem object, fault by fault). The child writes more of each, moves the
first with mremap and unmaps part of the second, then exits without
cleanup; the parent waits for it, moves its own copy elsewhere and exits.

Usage: python fork_child.py [MiB]
"""

import mmap
import os
import sys

MiB = 1 << 20
size = (int(sys.argv[1]) if len(sys.argv) > 1 else 4) * MiB
PAGE = mmap.PAGESIZE

written = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
untouched = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
shared = mmap.mmap(-1, size, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
for off in range(0, size, PAGE):
    written[off] = 1
for off in range(0, size // 2, PAGE):
    shared[off] = 1

pid = os.fork()
if pid == 0:
    for off in range(0, size, 2 * PAGE):
        untouched[off] = 2  # the child's own pages
    for off in range(size // 2, size, PAGE):
        shared[off] = 2
    written.resize(2 * size)  # mremap(MREMAP_MAYMOVE): the copied pages move
    untouched.madvise(mmap.MADV_DONTNEED, 0, size // 4)
    os._exit(0)
os.waitpid(pid, 0)
written.resize(2 * size)
