"""Map the zero page over a PMD-aligned anonymous region (no THP) and
madvise(MADV_DONTNEED) it: no folio fills the mmu_gather, but on kernels
that reclaim empty PTE tables (CONFIG_PT_RECLAIM, x86-64 from 6.14) each
table zapped whole is freed into the gather's table batch, which flushes
when full (pagetab.mmu_gather).

Usage: python zero_zap.py [MiB]
"""

import sys

from _libc import MiB, check, fixed_area, libc

MADV_DONTNEED, MADV_NOHUGEPAGE, MADV_POPULATE_READ = 4, 15, 22
size = (int(sys.argv[1]) if len(sys.argv) > 1 else 64) * MiB
start = fixed_area(size)
check(libc.madvise(start, size, MADV_NOHUGEPAGE) == 0, "madvise")
check(libc.madvise(start, size, MADV_POPULATE_READ) == 0, "madvise")
check(libc.madvise(start, size, MADV_DONTNEED) == 0, "madvise")
