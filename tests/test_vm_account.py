"""VM_ACCOUNT and VM_NORESERVE are vm_flags: VMAs that differ in them do not
merge (mm/vma.c is_mergeable_vma compares vm_flags). Each case runs on this
machine's kernel too, and the VMA boundaries must agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import pagetab as pt

P = 4096
R, RW = pt.PROT_READ, pt.PROT_READ | pt.PROT_WRITE
PA = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS
#: (name, steps): ("mmap", page, pages, prot, extra flags), ("mprotect", page,
#: pages, prot), ("write", page)
CASES = [
    ("read-only beside a never-written writable one made read-only: merge",
     [("mmap", 0, 2, R, 0), ("mmap", 2, 2, RW, 0), ("mprotect", 2, 2, R)]),
    ("the same after a write (anon_vma, charged): no merge",
     [("mmap", 0, 2, R, 0), ("mmap", 2, 2, RW, 0), ("write", 2), ("mprotect", 2, 2, R)]),
    ("MAP_NORESERVE beside a charged mapping: no merge",
     [("mmap", 0, 2, RW, pt.MAP_NORESERVE), ("mmap", 2, 2, RW, 0)]),
    ("read-only made writable is charged, and merges with a charged neighbour",
     [("mmap", 0, 2, R, 0), ("mmap", 2, 2, RW, 0), ("mprotect", 0, 2, RW)]),
    ("MAP_NORESERVE made read-only and writable again stays uncharged",
     [("mmap", 0, 2, RW, pt.MAP_NORESERVE), ("mprotect", 0, 2, R), ("mprotect", 0, 2, RW),
      ("mmap", 2, 2, RW, pt.MAP_NORESERVE)]),
]  # fmt: skip

#: the start of each child program: libc's mmap, munmap and mprotect
LIBC = r"""
import ctypes, json, os, sys, tempfile
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long)
libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
P = 4096
"""

FILE_CHILD = (
    LIBC
    + r"""
fd, path = tempfile.mkstemp(dir="/dev/shm")
try:
    os.write(fd, bytes(64 * P))
    base = libc.mmap(None, 8 * P, 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE
    libc.mprotect(base + 2 * P, P, 3)
    libc.mprotect(base + 2 * P, P, 1)
    print([[(int(x, 16) - base) // P for x in line.split()[0].split("-")]
           for line in open("/proc/self/maps") if path in line])
finally:
    os.unlink(path)
"""
)

CHILD = (
    LIBC
    + r"""
out = []
for steps in json.loads(sys.stdin.read()):
    # a 64-page hole, guarded by PROT_NONE pages either side
    base = libc.mmap(None, 66 * P, 0, 0x22, -1, 0) + P
    libc.munmap(base, 64 * P)
    for s in steps:
        if s[0] == "mmap":
            r = libc.mmap(base + s[1] * P, s[2] * P, s[3], 0x22 | 0x100000 | s[4], -1, 0)
            assert r == base + s[1] * P, ctypes.get_errno()
        elif s[0] == "mprotect":
            assert libc.mprotect(base + s[1] * P, s[2] * P, s[3]) == 0
        else:
            ctypes.c_char.from_address(base + s[1] * P).value = b"x"
    vmas = []
    for line in open("/proc/self/maps"):
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if base <= lo < base + 64 * P:
            vmas.append([(lo - base) // P, (hi - base) // P])
    out.append(vmas)
print(json.dumps(out))
"""
)


def simulate(steps: list[tuple]) -> list[list[int]]:
    mm = pt.AddressSpace("x86-64", cpus=1)
    base = 1 << 30
    for s in steps:
        if s[0] == "mmap":
            mm.mmap(s[2] * P, addr=base + s[1] * P, prot=s[3], flags=PA | pt.MAP_FIXED | s[4])
        elif s[0] == "mprotect":
            mm.mprotect(base + s[1] * P, s[2] * P, s[3])
        else:
            mm.access([base + s[1] * P], write=True)
    return [[(v.start - base) // P, (v.end - base) // P] for v in mm.vmas()]


@pytest.mark.parametrize(("name", "steps"), CASES, ids=[c[0][:40] for c in CASES])
def test_vm_account_merges(name: str, steps: list[tuple]) -> None:
    want = {CASES[0][0]: [[0, 4]], CASES[1][0]: [[0, 2], [2, 4]], CASES[2][0]: [[0, 2], [2, 4]],
            CASES[3][0]: [[0, 4]], CASES[4][0]: [[0, 4]]}[name]  # fmt: skip
    assert simulate(steps) == want


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
def test_the_kernel_merges_the_same_way() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps([s for _, s in CASES]),
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    kernel = json.loads(proc.stdout)
    assert kernel == [simulate(steps) for _, steps in CASES]


def test_a_private_file_mapping_keeps_its_charge(tmp_path: object) -> None:
    # made writable and read-only again, a file VMA stays apart: only a
    # never-faulted anonymous VMA drops VM_ACCOUNT
    mm = pt.AddressSpace("x86-64", cpus=1)
    f = pt.File("f", 64 * P)
    base = 1 << 30
    mm.mmap(8 * P, addr=base, prot=R, flags=pt.MAP_PRIVATE | pt.MAP_FIXED, file=f)
    mm.mprotect(base + 2 * P, P, RW)
    mm.mprotect(base + 2 * P, P, R)
    got = [[(v.start - base) // P, (v.end - base) // P] for v in mm.vmas()]
    assert got == [[0, 2], [2, 3], [3, 8]]
    if sys.platform.startswith("linux") and os.path.isdir("/dev/shm"):
        out = subprocess.run([sys.executable, "-c", FILE_CHILD], capture_output=True, text=True,
                             timeout=60, check=True).stdout  # fmt: skip
        assert json.loads(out) == got
