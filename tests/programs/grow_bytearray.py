"""CPython growing a bytearray 64 KiB at a time: past glibc's mmap
threshold every realloc of the buffer is an mremap(MREMAP_MAYMOVE).

Usage: python grow_bytearray.py [steps]
"""

import sys

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
b = bytearray()
for _ in range(steps):
    b += bytes(65536)
