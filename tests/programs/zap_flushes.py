"""Write every page of a PMD-aligned anonymous region (no THP) and
madvise(MADV_DONTNEED) it; write it again and mprotect(PROT_READ) it;
munmap it. The kernel's flushes during each call are what
pagetab.mmu_gather lays out for the concurrent model's movers.

Usage: python zap_flushes.py [MiB]
"""

import ctypes
import sys

from _libc import PROT_R, MiB, check, fixed_area, libc

MADV_DONTNEED, MADV_NOHUGEPAGE = 4, 15
size = (int(sys.argv[1]) if len(sys.argv) > 1 else 64) * MiB
start = fixed_area(size)
check(libc.madvise(start, size, MADV_NOHUGEPAGE) == 0, "madvise")
buf = (ctypes.c_char * size).from_address(start)
for i in range(0, size, 4096):
    buf[i] = b"\x01"
check(libc.madvise(start, size, MADV_DONTNEED) == 0, "madvise")
for i in range(0, size, 4096):
    buf[i] = b"\x01"
check(libc.mprotect(start, size, PROT_R) == 0, "mprotect")
check(libc.munmap(start, size) == 0, "munmap")
