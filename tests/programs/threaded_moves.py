"""A program whose main thread moves a region while two other threads run,
for recording: what the other threads of a process pay for its mremap.

The main thread maps a PMD-aligned region, writes its first half and moves
it back and forth between two PMD-aligned places (whole-PMD moves), then
between a PMD-aligned and a page-offset place (PTE by PTE). One thread
first writes the region's second half (it faults inside what moves), then
reads pages of it until the moves start; the other writes and then reads
a buffer of its own (it faults only outside). Both run until the moves are
done; ctypes drops the GIL in each mremap, so they run meanwhile.

Usage: python threaded_moves.py [region MiB] [moves]
"""

import ctypes
import mmap
import random
import sys
import threading

from _libc import MREMAP_FIXED, MREMAP_MAYMOVE, MiB, check, fixed_area, libc

PAGE = mmap.PAGESIZE
size = (int(sys.argv[1]) if len(sys.argv) > 1 else 16) * MiB
moves = int(sys.argv[2]) if len(sys.argv) > 2 else 8

region = fixed_area(size)
# room for a page-offset place too; kept mapped so that nothing else is
# put there (MREMAP_FIXED unmaps what it moves over)
other = fixed_area(size + 2 * MiB)
ctypes.memset(region, 1, size // 2)

half_written = threading.Event()
done = threading.Event()


def inside():
    ctypes.memset(region + size // 2, 2, size // 2)  # faults inside the region
    half_written.set()
    done.wait()


def outside():
    buf = bytearray(8 * MiB)  # its own buffer: faults outside
    rng = random.Random(1)
    n = 0
    while not done.is_set():
        for _ in range(4096):
            n += buf[rng.randrange(len(buf))]


threads = [threading.Thread(target=inside), threading.Thread(target=outside)]
for t in threads:
    t.start()
half_written.wait()
at = region
try:
    for i in range(moves):
        # to the other place and back: whole PMDs, then PTE by PTE
        dst = region if at != region else other + (PAGE if i >= moves // 2 else 0)
        got = libc.mremap(at, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
        check(got == dst, "mremap")
        at = dst
finally:
    done.set()
for t in threads:
    t.join()
libc.munmap(at, size)
