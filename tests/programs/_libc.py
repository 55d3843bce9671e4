"""What the recorded test programs share: the C library's memory calls
through ctypes, their constants, and a PMD-aligned anonymous area. (A
program run as a script finds this beside it.)"""

import ctypes

MiB = 1 << 20
PROT_RW, PROT_R = 3, 1
MAP_PA = 0x02 | 0x20  # MAP_PRIVATE | MAP_ANONYMOUS
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
FAILED = ctypes.c_void_p(-1).value

libc = ctypes.CDLL(None, use_errno=True)
_p, _n, _i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
libc.mmap.restype = _p
libc.mmap.argtypes = (_p, _n, _i, _i, _i, ctypes.c_long)
libc.mremap.restype = _p
libc.mremap.argtypes = (_p, _n, _n, _i, _p)
libc.munmap.argtypes = (_p, _n)
libc.mprotect.argtypes = (_p, _n, _i)
libc.madvise.argtypes = (_p, _n, _i)
libc.ioctl.argtypes = (_i, ctypes.c_ulong, _p)
libc.syscall.restype = ctypes.c_long


def check(ok, what):
    """OSError with the C library's errno unless ``ok``."""
    if not ok:
        raise OSError(ctypes.get_errno(), what)


def fixed_area(length):
    """A PMD-aligned anonymous area of ``length`` bytes (heap spaces are
    aligned, as ART's)."""
    raw = libc.mmap(None, length + 2 * MiB, PROT_RW, MAP_PA, -1, 0)
    check(raw not in (None, FAILED), "mmap")
    start = (raw + 2 * MiB - 1) & ~(2 * MiB - 1)
    if start > raw:
        libc.munmap(raw, start - raw)
    libc.munmap(start + length, raw + length + 2 * MiB - start - length)
    return start
