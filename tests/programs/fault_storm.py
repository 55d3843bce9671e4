"""Many page faults: a 64 MiB private anonymous mapping written page by page, given
back with madvise(MADV_DONTNEED) and written again, ``rounds`` times (16384
faults a round).

Usage: python fault_storm.py [rounds]
"""

import mmap
import sys

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 16
SIZE = 64 << 20
PAGE = mmap.PAGESIZE
m = mmap.mmap(-1, SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for _ in range(rounds):
    for off in range(0, SIZE, PAGE):
        m[off] = 1
    m.madvise(mmap.MADV_DONTNEED)
