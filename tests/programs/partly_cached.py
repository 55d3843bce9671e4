"""A file mapping whose page cache is partly evicted, for recording.

The program writes a file of 40 pages and 100 bytes, a page per write(2)
so that its page cache holds small folios, which posix_fadvise can drop
one by one (tests/programs/large_folios.py makes large ones). It syncs
the file, drops pages 10-19 and 30-39 from the page cache (posix_fadvise
DONTNEED), maps the whole file (a length that is not a multiple of the
page size) and reads its first and 25th pages. Each read fault maps
around it only the pages the page cache holds (mm/filemap.c
filemap_map_pages), so a replay is exact only if it knows which file was
mapped and what of it was cached. The program exits without unmapping,
so its mapping is in the recording's VMAs at exit.

Usage: python partly_cached.py FILE
"""

import mmap
import os
import sys

PAGE = mmap.PAGESIZE
path = sys.argv[1]
size = 40 * PAGE + 100
data = os.urandom(size)
with open(path, "wb", buffering=0) as f:
    for off in range(0, size, PAGE):
        f.write(data[off : off + PAGE])
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDONLY)
for first in (10, 30):
    os.posix_fadvise(fd, first * PAGE, 10 * PAGE, os.POSIX_FADV_DONTNEED)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
total = m[0] + m[25 * PAGE]
os.close(fd)
os._exit(0 if total >= 0 else 1)  # no munmap: the mapping is there at exit
