"""The real kernel as an oracle: run operations in a child process.

``run_ops(ops)`` executes mmap/munmap/mprotect/mremap/madvise/write
operations inside a reserved window of a fresh child process on the host
kernel and returns each operation's result and the final state of every
page of the window. Offsets are relative to the window, which starts at a
PUD (1 GiB) boundary, so alignments are the same as in a simulated space.
A crash or hang of the child raises OracleError; it never hangs the caller.

Operations (tuples):
  ("mmap", off, length, prot, flags)      flags get MAP_FIXED_NOREPLACE unless
                                          they hold MAP_FIXED
  ("munmap", off, length)
  ("mprotect", off, length, prot)
  ("mremap", off, old_size, new_size, flags, new_off)
  ("madvise", off, length, advice)
  ("write", off, value)                   store a 64-bit value (a tag)
  ("uffd_register", off, length, mode)    UFFDIO_REGISTER on the process's
                                          userfaultfd (made on first use,
                                          UFFDIO_API with UFFD_FEATURE_MOVE)
  ("uffd_move", dst_off, src_off, length, mode)
                                          UFFDIO_MOVE; an error's result is
                                          ("err", errno, move field)
  ("uffd_copy", dst_off, src_off, length, mode)
                                          UFFDIO_COPY; ("ok", copy field) or
                                          ("err", errno, copy field)
  ("uffd_zeropage", off, length, mode)    UFFDIO_ZEROPAGE, likewise
  ("file", index, size, writable[, disk]) create temp file ``index`` on tmpfs
                                          (/dev/shm: small folios, no I/O),
                                          or with ``disk`` 1 in /var/tmp (a
                                          disk filesystem: not shmem, so
                                          userfaultfd refuses it), of ``size``
                                          zero bytes written with write(), so
                                          every page is cached; open it
                                          read-write or read-only
  ("mmap_file", off, length, prot, flags, index, offset)
                                          mmap it (MAP_FIXED_NOREPLACE as mmap)
  ("read", off)                           read 8 bytes through /proc/self/mem
                                          (a GUP read fault, fault-around
                                          included); the result is the value
  ("fork",)                               fork(2): the ops after it run in the
                                          child (with a userfaultfd of its own),
                                          whose state is reported; the parent
                                          waits for it and leaves
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from . import host

__all__ = ["FramedPageState", "OracleError", "PageState", "run_ops"]

_CHILD = r"""
import array, ctypes, ctypes.util, errno, json, os, struct, sys
req = json.loads(sys.stdin.read())
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
uffd = []
def get_uffd():
    # userfaultfd(O_CLOEXEC | O_NONBLOCK), then UFFDIO_API asking for UFFD_FEATURE_MOVE
    if not uffd:
        fd = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "userfaultfd")
        api = ctypes.create_string_buffer(struct.pack("QQQ", 0xAA, 1 << 16, 0))
        if libc.ioctl(fd, 0xC018AA3F, api):
            raise OSError(ctypes.get_errno(), "UFFDIO_API")
        uffd.append(fd)
    return uffd[0]
vp, sz, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
libc.mmap.restype = vp
libc.mmap.argtypes = (vp, sz, i, i, i, ctypes.c_long)
libc.munmap.argtypes = (vp, sz)
libc.mprotect.argtypes = (vp, sz, i)
libc.madvise.argtypes = (vp, sz, i)
libc.mremap.restype = vp
libc.mremap.argtypes = (vp, sz, sz, i, vp)
FAIL = ctypes.c_void_p(-1).value
page = os.sysconf("SC_PAGE_SIZE")
win, align = req["window"], 1 << 30
# reserve a free, aligned window, then give it back: ops map into it. The
# hint puts it far below mmap_base, where the runtime's own later mappings
# (top-down from mmap_base) do not land in it while the ops run; 1 << 46,
# not 1 << 44: under AddressSanitizer (CI's sanitizer step preloads it into
# this child too) 1 << 44 lies inside its shadow memory, the hint is
# ignored and the window falls near mmap_base, among the runtime's mappings
p = libc.mmap(1 << 46, win + align, 0, 0x22 | 0x4000, -1, 0)
base = (p + align - 1) & ~(align - 1)
libc.munmap(p, win + align)
memfd = os.open("/proc/self/mem", os.O_RDONLY)
res = []
files = {}
tempfile = __import__("tempfile")
tmpdir = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
disktmp = tempfile.mkdtemp(dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
for op in req["ops"]:
    kind, a = op[0], op[1:]
    ctypes.set_errno(0)
    if kind == "mmap":
        off, length, prot, flags = a
        if not flags & 0x10:
            flags |= 0x100000
        r = libc.mmap(base + off, length, prot, flags, -1, 0)
        res.append(["err", ctypes.get_errno()] if r == FAIL else ["ok", r - base])
    elif kind == "munmap":
        r = libc.munmap(base + a[0], a[1])
        res.append(["err", ctypes.get_errno()] if r else ["ok", 0])
    elif kind == "mprotect":
        r = libc.mprotect(base + a[0], a[1], a[2])
        res.append(["err", ctypes.get_errno()] if r else ["ok", 0])
    elif kind == "madvise":
        r = libc.madvise(base + a[0], a[1], a[2])
        res.append(["err", ctypes.get_errno()] if r else ["ok", 0])
    elif kind == "mremap":
        off, old, new, flags, noff = a
        r = libc.mremap(base + off, old, new, flags, base + noff)
        res.append(["err", ctypes.get_errno()] if r == FAIL else ["ok", r - base])
    elif kind == "uffd_register":
        buf = ctypes.create_string_buffer(struct.pack("QQQQ", base + a[0], a[1], a[2], 0))
        r = libc.ioctl(get_uffd(), 0xC020AA00, buf)
        res.append(["err", ctypes.get_errno()] if r else ["ok", 0])
    elif kind in ("uffd_move", "uffd_copy"):
        # struct uffdio_move and uffdio_copy: dst, src, len, mode, then the
        # bytes done (or -errno) written back
        buf = ctypes.create_string_buffer(struct.pack("QQQQq", base + a[0], base + a[1], a[2],
                                                      a[3], 0))
        r = libc.ioctl(get_uffd(), 0xC028AA05 if kind == "uffd_move" else 0xC028AA03, buf)
        done = struct.unpack("QQQQq", buf.raw[:40])[4]
        res.append(["err", ctypes.get_errno(), done] if r else ["ok", done])
    elif kind == "uffd_zeropage":
        buf = ctypes.create_string_buffer(struct.pack("QQQq", base + a[0], a[1], a[2], 0))
        r = libc.ioctl(get_uffd(), 0xC020AA04, buf)
        done = struct.unpack("QQQq", buf.raw[:32])[3]
        res.append(["err", ctypes.get_errno(), done] if r else ["ok", done])
    elif kind == "file":
        idx, size, writable = a[:3]
        path = os.path.join(disktmp if a[3:] and a[3] else tmpdir, str(idx))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, bytes(size))
        if not writable:
            os.close(fd)
            fd = os.open(path, os.O_RDONLY)
        files[idx] = fd
        os.unlink(path)
        res.append(["ok", 0])
    elif kind == "mmap_file":
        off, length, prot, flags, idx, offset = a
        if not flags & 0x10:
            flags |= 0x100000
        r = libc.mmap(base + off, length, prot, flags, files[idx], offset)
        res.append(["err", ctypes.get_errno()] if r == FAIL else ["ok", r - base])
    elif kind == "read":
        try:
            res.append(["ok", int.from_bytes(os.pread(memfd, 8, base + a[0]), "little")])
        except OSError as e:
            res.append(["err", e.errno])
    elif kind == "write":
        with open("/proc/self/mem", "r+b", buffering=0) as m:
            m.seek(base + a[0])
            try:
                m.write(int(a[1]).to_bytes(8, "little"))
                res.append(["ok", 0])
            except OSError as e:
                res.append(["err", e.errno])
    elif kind == "clear_refs":
        # soft-dirty bits and VM_SOFTDIRTY cleared (fs/proc/task_mmu.c
        # CLEAR_REFS_SOFT_DIRTY): pagemap's bit 55 then shows writes and moves
        with open("/proc/self/clear_refs", "w") as f:
            f.write("4")
        res.append(["ok", 0])
    elif kind == "fork":
        sys.stdout.flush()
        child = os.fork()
        if child:
            os._exit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
        memfd = os.open("/proc/self/mem", os.O_RDONLY)  # the child's own
        uffd.clear()  # the parent's userfaultfd: not the child's
        res.append(["ok", 0])
    else:
        res.append(["err", errno.EINVAL])
# the zero page's PFN, from a fresh read-faulted page
z = libc.mmap(None, page, 1, 0x22, -1, 0)
libc.madvise(z, page, 22)
fd = os.open("/proc/self/pagemap", os.O_RDONLY)
zero_pfn = int.from_bytes(os.pread(fd, 8, (z // page) * 8), "little") & ((1 << 55) - 1)
# the huge zero page's PFNs, from a read-faulted MADV_HUGEPAGE PMD (the 4K
# zero page again where THP is off)
h = libc.mmap(None, 4 << 20, 1, 0x22, -1, 0)
ha = (h + (2 << 20) - 1) & ~((2 << 20) - 1)
libc.madvise(ha, 2 << 20, 14)
libc.madvise(ha, 2 << 20, 22)
huge_zero = int.from_bytes(os.pread(fd, 8, (ha // page) * 8), "little") & ((1 << 55) - 1)
if huge_zero == zero_pfn:
    huge_zero = -1 << 60
maps = []
for line in open("/proc/self/maps"):
    rng, perms = line.split()[:2]
    lo, hi = (int(x, 16) for x in rng.split("-"))
    if hi > base and lo < base + win:
        prot = (perms[0] == "r") | (perms[1] == "w") << 1 | (perms[2] == "x") << 2
        maps.append([max(lo, base) - base, min(hi, base + win) - base, prot])
n = win // page
e = array.array("Q")
e.frombytes(os.pread(fd, n * 8, (base // page) * 8))
present = [k for k, v in enumerate(e) if v >> 63]
mem = os.open("/proc/self/mem", os.O_RDONLY)
tags = [int.from_bytes(os.pread(mem, 8, base + k * page), "little") for k in present]
def is_zero(v):
    pfn = v & ((1 << 55) - 1)
    return zero_pfn != 0 and (pfn == zero_pfn or huge_zero <= pfn < huge_zero + (2 << 20) // page)
zero = [int(is_zero(e[k])) for k in present]
orders = []
if req.get("folios"):
    # /proc/kpageflags: KPF_COMPOUND_HEAD (15), KPF_COMPOUND_TAIL (16); a
    # compound page (folio) is naturally aligned in physical memory
    kf = os.open("/proc/kpageflags", os.O_RDONLY)
    def kflags(pfn):
        return int.from_bytes(os.pread(kf, 8, pfn * 8), "little")
    for k in present:
        pfn = e[k] & ((1 << 55) - 1)
        f, order = kflags(pfn), 0
        if f & (3 << 15):
            head = pfn
            while not kflags(head) >> 15 & 1:
                head -= 1
            n = 1
            while kflags(head + n) >> 16 & 1:
                n += 1
            order = n.bit_length() - 1
        orders.append(order)
pfns = [e[k] & ((1 << 55) - 1) for k in present] if req.get("frames") else []
soft = [int(e[k] >> 55 & 1) for k in present] if req.get("soft_dirty") else []
os.rmdir(tmpdir)
os.rmdir(disktmp)
print(json.dumps({"results": res, "maps": maps, "present": present, "zero": zero,
                  "tags": tags, "page": page, "orders": orders, "pfns": pfns,
                  "soft": soft}))
"""


class OracleError(RuntimeError):
    """The child process running the operations crashed or hung."""


@dataclass(frozen=True)
class PageState:
    """One page of the window: ``prot`` -1 when unmapped; ``present``;
    ``zero`` when it maps the zero page; ``tag`` its first 8 bytes;
    ``folio_order`` the order of the folio it maps (from /proc/kpageflags;
    -1 when not asked for or not present); ``soft_dirty`` pagemap's bit 55
    (its PTE soft-dirty, or its VMA's VM_SOFTDIRTY: a "clear_refs" op
    clears both; -1 when not asked for or not present)."""

    prot: int
    present: bool
    zero: bool
    tag: int
    folio_order: int = -1
    soft_dirty: int = -1


@dataclass(frozen=True)
class FramedPageState(PageState):
    """A PageState with ``frame``, the page frame it maps (its PFN; -1 when
    not present): what ``run_ops(..., frames=True)`` returns, so that which
    pages share a frame can be compared."""

    frame: int = -1


def run_ops(ops: list[tuple[Any, ...]], window: int = 4 << 30, timeout: float = 60.0,
            folios: bool = False, frames: bool = False,
            soft_dirty: bool = False) -> tuple[list[tuple[Any, ...]], list[PageState]]:  # fmt: skip
    """Run ``ops`` on the host kernel; (results, per-page state of the window).

    A result is ("ok", value) with addresses relative to the window, or
    ("err", errno). ``folios`` also reads each present page's folio order
    (root: /proc/kpageflags); ``frames`` its PFN (root: pagemap shows PFNs
    to CAP_SYS_ADMIN only); ``soft_dirty`` its soft-dirty bit (after a
    ("clear_refs",) op, the writes and moves since).
    """
    ok, why = host.available()
    if not ok:
        raise NotImplementedError(f"host oracle unavailable: {why}")
    if window <= 0 or window % (1 << 21):
        raise ValueError("window must be a positive multiple of 2 MiB")
    for op in ops:
        if not op or op[0] not in ("mmap", "munmap", "mprotect", "mremap", "madvise", "write",
                                   "uffd_register", "uffd_move", "uffd_copy", "uffd_zeropage",
                                   "file", "mmap_file", "read", "fork",
                                   "clear_refs"):  # fmt: skip
            raise ValueError(f"unknown operation {op!r}")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in op[1:]):
            raise TypeError(f"operation arguments must be ints: {op!r}")
    req = json.dumps({"window": window, "ops": [list(op) for op in ops], "folios": folios,
                      "frames": frames, "soft_dirty": soft_dirty})  # fmt: skip
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD], input=req, text=True,
                              capture_output=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise OracleError(f"the oracle child hung for {timeout} s") from e
    if proc.returncode != 0:
        raise OracleError(f"the oracle child died ({proc.returncode}): {proc.stderr[-500:]}")
    out = json.loads(proc.stdout)
    page = out["page"]
    prot = [-1] * (window // page)
    for lo, hi, p in out["maps"]:
        for k in range(lo // page, hi // page):
            prot[k] = p
    cls = FramedPageState if frames else PageState
    states = [cls(p, False, False, 0) for p in prot]
    orders = out["orders"] or [-1] * len(out["present"])
    pfns = out["pfns"] or [-1] * len(out["present"])
    soft = out["soft"] or [-1] * len(out["present"])
    for k, z, tag, o, f, sd in zip(out["present"], out["zero"], out["tags"], orders, pfns, soft,
                                   strict=True):  # fmt: skip
        page_state = PageState(prot[k], True, bool(z), int(tag), int(o), int(sd))
        states[k] = (FramedPageState(**vars(page_state), frame=int(f)) if frames
                     else page_state)  # fmt: skip
    results = [(r[0], *(int(x) for x in r[1:])) for r in out["results"]]
    return results, states
