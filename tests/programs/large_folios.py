"""A file whose page cache holds large folios, for recording.

The program writes a file of 100 pages and 100 bytes in one write(2), so
that ext4 and xfs cache it in large folios, then maps it twice, reading a
page of each mapping. Since 6.18 a read fault's fault-around maps a large
folio it reaches whole where the folio lies inside the VMA and inside one
PTE table (mm/filemap.c filemap_map_folio_range): the first mapping, of
the whole file, gets whole folios; the second, of pages 8-47, cuts the
first folio at its start and gets only its fault-around window. A third,
shared and writable, takes one write fault, whose finish_fault maps the
written page's folio whole (mm/memory.c). The program exits without
unmapping, so the mappings are in the recording's VMAs at exit.

Usage: python large_folios.py FILE
"""

import mmap
import os
import sys

PAGE = mmap.PAGESIZE
path = sys.argv[1]
size = 100 * PAGE + 100
with open(path, "wb", buffering=0) as f:
    f.write(os.urandom(size))
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDWR)
whole = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
part = mmap.mmap(fd, 40 * PAGE, mmap.MAP_SHARED, mmap.PROT_READ, offset=8 * PAGE)
total = whole[0] + whole[70 * PAGE] + part[20 * PAGE]
# a write fault in a shared writable mapping: finish_fault maps the folio whole
written = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
written[70 * PAGE] = 1
os.close(fd)
os._exit(0 if total >= 0 else 1)  # no munmap: the mappings are there at exit
