"""Record a program's memory-management calls and faults on the real kernel.

``record(["python3", "-c", "..."], "run.ptrace.gz")`` runs the command and
writes a pagetab trace (``tracefile``) of every thread of every process it
starts:

- the memory-management system calls (``SYSCALLS``), from the
  ``raw_syscalls:sys_enter``/``sys_exit`` tracepoints: arguments, result,
  thread, CPU and the kernel's own time in the call (exit minus entry);
- the structure a userfaultfd ioctl points to (UFFDIO_MOVE's dst, src, len,
  mode, ...), from a uprobe on the C library's ``ioctl``: tracepoints do
  not read user memory, and this kernel has no kprobes;
- user page faults (``exceptions:page_fault_user``) and kernel-mode faults
  on user addresses (``page_fault_kernel``: copy_to_user and friends),
  x86's ``tlb:tlb_flush`` and the ``mmap_lock`` events;
- each process's VMAs (``/proc/PID/maps``) right after exec and at exit,
  and at exit its present pages (``/proc/PID/pagemap``).

The events come from a tracefs instance of its own, filtered by pid (with
``event-fork``, so children are followed), on the ``x86-tsc`` clock: the
default clocks print microseconds, and an mremap call takes about one.
Two ``trace_marker`` writes pair the TSC with CLOCK_MONOTONIC, to convert.
The program runs under ptrace only to be stopped after exec and at exit
(``PTRACE_O_TRACEEXEC``/``TRACEEXIT``/``TRACECLONE``), never at its system
calls, so its times are not distorted the way strace's are.

Needs Linux on x86-64, root (tracefs, uprobes, ptrace of the program) and
tracefs; ``check_recording`` says what is missing.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .constants import UFFDIO
from .tracefile import Header, TraceWriter, host_info

TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
#: x86-64 system call numbers recorded (arch/x86/entry/syscalls/syscall_64.tbl)
SYSCALLS: dict[int, str] = {
    2: "open", 3: "close", 9: "mmap", 10: "mprotect", 11: "munmap", 12: "brk",
    16: "ioctl", 25: "mremap", 28: "madvise", 32: "dup", 33: "dup2", 56: "clone",
    57: "fork", 58: "vfork", 59: "execve", 60: "exit", 231: "exit_group",
    257: "openat", 292: "dup3", 322: "execveat", 323: "userfaultfd", 435: "clone3",
}  # fmt: skip
#: exceptions:page_fault_* error_code bits (arch/x86/include/asm/trap_pf.h)
X86_PF_WRITE = 1 << 1
X86_PF_USER = 1 << 2
#: the end of x86-64's user address space (4-level paging)
USER_END = 1 << 47
#: the fault and flush tracepoints recorded beside the system calls
EVENTS = ("exceptions/page_fault_user", "exceptions/page_fault_kernel", "tlb/tlb_flush",
          "mmap_lock/mmap_lock_start_locking", "mmap_lock/mmap_lock_acquire_returned",
          "mmap_lock/mmap_lock_released")  # fmt: skip

PTRACE_TRACEME, PTRACE_CONT, PTRACE_SETOPTIONS = 0, 7, 0x4200
PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK, PTRACE_O_TRACECLONE = 0x2, 0x4, 0x8
PTRACE_O_TRACEEXEC, PTRACE_O_TRACEEXIT = 0x10, 0x40
PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE = 1, 2, 3
PTRACE_EVENT_EXEC, PTRACE_EVENT_EXIT = 4, 6
PTRACE_GETEVENTMSG = 0x4201
WALL = 0x40000000  # __WALL: wait for threads too

_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<tid>\d+)\s+\(\s*(?P<pid>\d+|-+)\)\s+\[(?P<cpu>\d+)\]\s+\S+\s+"
    r"(?P<ts>\d+):\s+(?P<ev>[\w]+):\s?(?P<body>.*)$"
)
_ENTER = re.compile(r"NR (\d+) \(([0-9a-f, ]*)\)")
_EXIT = re.compile(r"NR (\d+) = (-?\d+)")
_FAULT = re.compile(r"address=(0x[0-9a-f]+|\S+) ip=\S+ error_code=(0x[0-9a-f]+)")
_TLB = re.compile(r"pages:(-?\d+) reason:.*\((\d+)\)")
_LOCK = re.compile(r"write=(true|false)(?: success=(true|false))?")
_UPROBE = re.compile(r"cmd=(0x[0-9a-f]+) m0=(0x[0-9a-f]+) m1=(0x[0-9a-f]+) "
                     r"m2=(0x[0-9a-f]+) m3=(0x[0-9a-f]+)")  # fmt: skip
_LOCK_EV = {"mmap_lock_start_locking": "start", "mmap_lock_acquire_returned": "acquired",
            "mmap_lock_released": "released"}  # fmt: skip


class RecordError(RuntimeError):
    """Recording cannot run here; the message says what it needs."""


@dataclass
class RecordResult:
    """What ``record`` did."""

    path: str
    """The trace file written."""
    exit_code: int
    """The command's exit status (128 + signal if a signal killed it)."""
    events: int
    """Events written to the trace (the footer's count)."""
    lost: int
    """Events the kernel dropped (ring buffer overruns); 0 in a complete trace."""
    wall_ns: int
    """The whole recording: setup, the command, converting the trace (ns)."""
    run_ns: int
    """The command alone, from its exec to its last exit (ns)."""


def tracefs_path(mount: bool = True) -> str:
    """Where tracefs is, mounting it at /sys/kernel/tracing if ``mount``
    and it is not mounted (as root). Raises RecordError naming what is
    missing."""
    for p in TRACEFS:
        if os.path.exists(os.path.join(p, "instances")):
            return p
    if mount and os.path.isdir(TRACEFS[0]) and os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"nodev", TRACEFS[0].encode(), b"tracefs", 0, None) == 0:
            return TRACEFS[0]
        why = os.strerror(ctypes.get_errno())
        raise RecordError(f"cannot mount tracefs at {TRACEFS[0]}: {why}")
    raise RecordError(f"tracefs is not mounted (mount -t tracefs nodev {TRACEFS[0]})")


def check_recording() -> str:
    """Check that ``record`` can run here; return the tracefs path.

    Raises
    ------
    RecordError
        Not Linux on x86-64, not root, or no tracefs: the message says which.
    """
    if sys.platform != "linux":
        raise RecordError(f"recording needs Linux's tracefs; this is {sys.platform}")
    machine = os.uname().machine
    if machine != "x86_64":
        raise RecordError(f"recording reads x86-64 system call numbers; this host is {machine}")
    if os.geteuid() != 0:
        raise RecordError("recording needs root: tracefs instances, a uprobe on the C "
                          "library's ioctl and ptrace of the command (run it with sudo, or "
                          "record with strace -f -ttt -T and import that)")  # fmt: skip
    return tracefs_path()


def _write(path: str, text: str, append: bool = False) -> None:
    # os.open: Python's open(path, "a") seeks, which tracefs's files refuse
    fd = os.open(path, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _libc_ioctl() -> tuple[str, int] | None:
    """The C library file and the file offset of its ioctl, for a uprobe:
    found in this process's own mappings (the command is assumed to use
    the same C library)."""
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.ioctl, ctypes.c_void_p).value
    if addr is None:
        return None
    for lo, hi, _, offset, path, _ in read_maps(os.getpid()):
        if lo <= addr < hi and path:
            return path, addr - lo + offset
    return None


def read_maps(pid: int) -> list[list[Any]]:
    """/proc/PID/maps as ``[start, end, perms, offset, path, i_size]`` rows
    (``i_size``: a file's size now, for fault-around's end of file; null
    for anonymous and special mappings, or a file that is gone)."""
    rows: list[list[Any]] = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].strip() if len(parts) > 5 else ""
            rows.append([lo, hi, parts[1], int(parts[2], 16), path, _size(path)])
    return rows


def _size(path: str) -> int | None:
    if not path.startswith("/"):
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def page_cache_runs(path: str, page_size: int) -> list[list[int]] | None:
    """The runs ``[lo, hi)`` of the file's pages in the page cache now
    (mincore(2) of a mapping of it, which faults nothing in); None if the
    file cannot be opened or mapped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)  # fmt: skip
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return []
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            pages = (size + page_size - 1) // page_size
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(addr, size, vec) != 0:
                return None
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    resident = np.frombuffer(bytes(vec), dtype=np.uint8) & 1
    edges = np.flatnonzero(np.diff(np.concatenate(([0], resident, [0]))))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]


def file_info(
    vmas: list[list[Any]], page_size: int, folios: dict[str, list[list[int]]] | None = None
) -> dict[str, dict[str, Any]]:
    """Each file ``vmas`` map: its size, its pages in the page cache and,
    where ``folios`` knows them, its large folios."""
    out: dict[str, dict[str, Any]] = {}
    for row in vmas:
        path = row[4]
        if path.startswith("/") and path not in out:
            out[path] = {"i_size": row[5], "cached": page_cache_runs(path, page_size)}
            if folios and folios.get(path):
                out[path]["folios"] = folios[path]
    return out


#: /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h)
KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 15, 16


def page_cache_folios(
    pid: int, vmas: list[list[Any]], page_size: int
) -> dict[str, list[list[int]]]:
    """The large page-cache folios of the files process ``pid`` maps, as
    runs ``[lo, hi)`` of page indices: each compound head page it maps
    (/proc/PID/pagemap's frame numbers, root only; /proc/kpageflags) and
    the tail frames after it, whether mapped or not (a folio mapped in part
    has its whole size). {} where either file cannot be read."""
    out: dict[str, set[tuple[int, int]]] = {}
    try:
        pm = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    except OSError:
        return {}
    try:
        kf = os.open("/proc/kpageflags", os.O_RDONLY)
    except OSError:
        os.close(pm)
        return {}

    def flags(first: int, n: int) -> npt.NDArray[np.uint64]:
        """The kpageflags words of frames first..first+n-1 (one read)."""
        data = os.pread(kf, n * 8, first * 8)
        return np.frombuffer(data[: len(data) // 8 * 8], dtype=np.uint64)

    try:
        for lo, hi, _, off, path, *_ in vmas:
            if not path.startswith("/") or hi > USER_END:
                continue
            for base, words in _pagemap_chunks(pm, lo, hi, page_size):
                # present (bit 63) file pages (bit 61) with their frame (bits 0-54)
                idx = np.flatnonzero((words >> np.uint64(63)) & (words >> np.uint64(61)) & 1)
                pfn = (words[idx] & np.uint64((1 << 55) - 1)).astype(np.int64)
                idx, pfn = idx[pfn > 0], pfn[pfn > 0]
                # the flags of each run of consecutive frames, one read per run
                cuts = np.flatnonzero(np.diff(pfn) != 1) + 1
                for run_i, run_p in zip(np.split(idx, cuts), np.split(pfn, cuts), strict=True):
                    if not run_p.size:
                        continue
                    fl = flags(int(run_p[0]), run_p.size)
                    heads = np.flatnonzero((fl >> np.uint64(KPF_COMPOUND_HEAD)) & 1)
                    for h in heads.tolist():
                        head_pfn = int(run_p[h])
                        # its tails: the frames after it flagged tail (at most a PMD's)
                        after = flags(head_pfn + 1, 511)
                        not_tail = np.flatnonzero(~(after >> np.uint64(KPF_COMPOUND_TAIL)) & 1)
                        size = 1 + int(not_tail[0] if not_tail.size else after.size)
                        first = off // page_size + (base - lo) // page_size + int(run_i[h])
                        if size >= 2 and not size & (size - 1) and not first % size \
                                and not head_pfn % size:  # fmt: skip
                            out.setdefault(path, set()).add((first, first + size))
    except OSError:
        return {}
    finally:
        os.close(pm)
        os.close(kf)
    return {p: [list(r) for r in sorted(runs)] for p, runs in out.items()}


def file_of(vmas: list[list[Any]], addr: int, length: int, offset: int,
            page_size: int) -> list[Any] | None:  # fmt: skip
    """The VMA row of ``vmas`` that a file mmap of [addr, addr + length) at
    ``offset`` made, if one is still there: inside the range (its length
    rounded up to ``page_size``, as do_mmap does), with the matching file
    offset."""
    end = addr + (length + page_size - 1) // page_size * page_size
    for row in vmas:
        lo, hi, _, off, path = row[:5]
        if path.startswith("/") and addr <= lo and hi <= end \
                and off == offset + (lo - addr):  # fmt: skip
            return row
    return None


def present_runs(pid: int, maps: list[list[Any]], page_size: int) -> list[list[int]]:
    """The runs ``[start, end, file]`` of present pages in ``maps``, from
    /proc/PID/pagemap (bit 63 present; bit 61 a file page or shared
    anonymous, 0 for a private anonymous page)."""
    runs: list[list[int]] = []
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for lo, hi, *_ in maps:
            if hi > USER_END:
                continue  # [vsyscall]: not in the page tables pagemap walks
            chunks = _pagemap_chunks(fd, lo, hi, page_size)
            while True:
                try:
                    base, words = next(chunks)
                except (StopIteration, OSError):
                    break  # (an unreadable range: what was read stands)
                # 0 absent, 1 present anonymous, 2 present file
                state = (words >> np.uint64(63)) * (1 + ((words >> np.uint64(61)) & 1))
                state = state.astype(np.int8)
                edges = np.flatnonzero(np.diff(np.concatenate(([0], state, [0]))))
                for s, e in itertools.pairwise(edges):
                    kind = int(state[s])
                    if kind == 0:
                        continue
                    a, b = base + int(s) * page_size, base + int(e) * page_size
                    if runs and runs[-1][1] == a and runs[-1][2] == kind - 1:
                        runs[-1][1] = b
                    else:
                        runs.append([a, b, kind - 1])
    finally:
        os.close(fd)
    return runs


def _pagemap_chunks(fd: int, lo: int, hi: int,
                    page_size: int) -> Iterator[tuple[int, npt.NDArray[np.uint64]]]:  # fmt: skip
    """/proc/PID/pagemap's words (open as ``fd``) for [lo, hi), a chunk of
    up to 2 MiB of them at a time: (the chunk's first address, its words)."""
    chunk = 1 << 18  # pages per read
    for base in range(lo, hi, chunk * page_size):
        n = min(chunk, (hi - base) // page_size)
        data = os.pread(fd, n * 8, base // page_size * 8)
        yield base, np.frombuffer(data[: len(data) // 8 * 8], dtype=np.uint64)


class _Parser:
    """Turns tracefs text lines into trace events (pairs system call entry
    and exit per thread, attaches ioctl structures, converts TSC to ns)."""

    def __init__(self, writer: TraceWriter, uprobe: str, page_size: int) -> None:
        self.w = writer
        self.uprobe = uprobe
        self.page_size = page_size
        self.enter: dict[int, tuple[int, int, list[int], int]] = {}
        self.mem: dict[int, tuple[int, list[int]]] = {}
        #: each process's VMAs at exit (paths of its file mappings)
        self.exit_vmas: dict[int, list[list[Any]]] = {}
        #: tlb:tlb_flush events by reason on each thread inside its current call
        self.in_call: dict[int, dict[str, int]] = {}
        self.t0: int | None = None
        self.scale = 1.0
        #: events known by their monotonic time (maps at exec), written in order
        self.pending: list[dict[str, Any]] = []

    def set_clock(self, sync: list[tuple[int, int]]) -> None:
        (c0, m0), (c1, m1) = sync[0], sync[-1]
        self.scale = (m1 - m0) / (c1 - c0) if c1 > c0 else 1.0
        self.t0 = c0

    def ns(self, tsc: int) -> int:
        assert self.t0 is not None
        return round((tsc - self.t0) * self.scale)

    def line(self, text: str) -> None:
        m = _LINE.match(text)
        if m is None:
            return
        ev, body = m["ev"], m["body"]
        ts = int(m["ts"])
        tid = int(m["tid"])
        pid = int(m["pid"]) if m["pid"].isdigit() else tid
        cpu = int(m["cpu"])
        base = {"t": self.ns(ts), "pid": pid, "tid": tid, "cpu": cpu}
        while self.pending and self.pending[0]["t"] <= base["t"]:
            self.w.write(self.pending.pop(0))
        if ev == "sys_enter":
            e = _ENTER.match(body)
            if e and int(e[1]) in SYSCALLS:
                args = [int(x, 16) for x in e[2].split(", ")] if e[2] else []
                nr = int(e[1])
                if SYSCALLS[nr] in ("exit", "exit_group"):
                    self.w.write({"k": "sys", **base, "nr": SYSCALLS[nr], "a": args[:1],
                                  "r": None, "d": None})  # fmt: skip
                    return
                self.enter[tid] = (ts, nr, args, cpu)
                self.in_call[tid] = {}
        elif ev == "sys_exit":
            e = _EXIT.match(body)
            start = self.enter.pop(tid, None)
            if e is None or start is None or start[1] != int(e[1]):
                return  # an exit without its entry: a new thread's return from clone
            t_in, nr, args, cpu_in = start
            flushes = self.in_call.pop(tid, {})
            name = SYSCALLS[nr]
            out: dict[str, Any] = {"k": "sys", "t": self.ns(t_in), "pid": pid, "tid": tid,
                                   "cpu": cpu_in, "nr": name, "a": _signed_args(name, args),
                                   "r": int(e[2]), "d": self.ns(ts) - self.ns(t_in)}  # fmt: skip
            if name == "mmap" and out["r"] >= 0 and len(args) > 5 and args[4] < 1 << 31:
                # a file mapping: its path and size, from the VMAs at exit
                row = file_of(
                    self.exit_vmas.get(pid, []), out["r"], args[1], args[5], self.page_size
                )
                if row is not None:
                    out["file"] = {"path": row[4], "i_size": row[5]}
            if name == "ioctl":
                if len(args) < 2 or (args[1] >> 8) & 0xFF != UFFDIO:
                    return  # not a userfaultfd ioctl
                got = self.mem.pop(tid, None)
                if got is not None and got[0] == args[1]:
                    out["mem"] = got[1]
            if cpu != cpu_in:
                out["cpu_exit"] = cpu
            if flushes:
                out["tlb"] = flushes
            self.w.write(out)
        elif ev in ("page_fault_user", "page_fault_kernel"):
            e = _FAULT.match(body)
            if e is None or not e[1].startswith("0x"):
                return
            addr, code = int(e[1], 16), int(e[2], 16)
            if addr >= USER_END:
                return
            self.w.write({"k": "fault", **base, "a": addr, "w": int(bool(code & X86_PF_WRITE)),
                          "u": int(ev == "page_fault_user")})  # fmt: skip
        elif ev == "tlb_flush":
            e = _TLB.match(body)
            if e is not None:
                self.w.write({"k": "tlb", **base, "reason": int(e[2]), "pages": int(e[1])})
                if tid in self.in_call:
                    n = self.in_call[tid]
                    n[e[2]] = n.get(e[2], 0) + 1
        elif ev in _LOCK_EV:
            e = _LOCK.search(body)
            if e is not None:
                rec = {"k": "lock", **base, "ev": _LOCK_EV[ev], "write": e[1] == "true"}
                if e[2] is not None:
                    rec["ok"] = e[2] == "true"
                self.w.write(rec)
        elif ev == self.uprobe:
            e = _UPROBE.search(body)
            if e is not None:
                self.mem[tid] = (int(e[1], 16), [int(e[i], 16) for i in range(2, 6)])


def _signed_args(name: str, args: list[int]) -> list[int]:
    """Arguments that are C ints shown signed (mmap's fd -1)."""
    if name == "mmap" and len(args) > 4 and args[4] >= 1 << 31:
        args = list(args)
        args[4] = ctypes.c_int32(args[4] & 0xFFFFFFFF).value
    return args


class _Instance:
    """A tracefs instance of our own, set up for the recording and removed
    afterwards (with the uprobe)."""

    def __init__(self, root: str, buffer_kb: int) -> None:
        self.root = root
        self.name = f"pagetab-{os.getpid()}"
        self.dir = os.path.join(root, "instances", self.name)
        self.group = f"pagetab_{os.getpid()}"
        self.uprobe = ""
        #: the probed file and offset (the trace header's ``uprobe_at``)
        self.uprobe_at: list[Any] | None = None
        _remove_stale(root)
        os.mkdir(self.dir)
        try:
            _write(self.path("tracing_on"), "0")
            _write(self.path("trace_clock"), "x86-tsc")
            _write(self.path("buffer_size_kb"), str(buffer_kb))
            for opt in ("record-tgid", "event-fork"):
                _write(self.path("options", opt), "1")
            ids = " || ".join(f"id == {n}" for n in SYSCALLS)
            for ev in ("sys_enter", "sys_exit"):
                _write(self.path("events", "raw_syscalls", ev, "filter"), ids)
                _write(self.path("events", "raw_syscalls", ev, "enable"), "1")
            for ev in EVENTS:
                p = self.path("events", *ev.split("/"), "enable")
                if os.path.exists(p):
                    _write(p, "1")
            self._add_uprobe()
        except BaseException:
            self.remove()
            raise

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def _add_uprobe(self) -> None:
        where = _libc_ioctl()
        if where is None:
            return
        lib, off = where
        spec = (f"p:{self.group}/uffdio {lib}:{off:#x} cmd=%si:x32 m0=+0(%dx):x64 "
                "m1=+8(%dx):x64 m2=+16(%dx):x64 m3=+24(%dx):x64")  # fmt: skip
        try:
            _write(os.path.join(self.root, "uprobe_events"), spec + "\n", append=True)
            # every ioctl of the C library: tracefs filters cannot compare a
            # masked field, so _Parser keeps userfaultfd's (type UFFDIO)
            _write(self.path("events", self.group, "uffdio", "enable"), "1")
            self.uprobe = "uffdio"
            self.uprobe_at = [lib, off]
        except OSError:
            # no uprobes: ioctls are recorded without their structures
            self._remove_uprobe()

    def marker(self) -> None:
        _write(
            self.path("trace_marker"), f"pagetab_sync {time.clock_gettime_ns(time.CLOCK_MONOTONIC)}"
        )

    def lost(self) -> int:
        n = 0
        for cpu in os.listdir(self.path("per_cpu")):
            with open(self.path("per_cpu", cpu, "stats")) as f:
                for line in f:
                    if line.startswith(("overrun:", "dropped events:")):
                        n += int(line.split(":")[1])
        return n

    def remove(self) -> None:
        try:
            _write(self.path("tracing_on"), "0")
            for ev in ("sys_enter", "sys_exit"):
                _write(self.path("events", "raw_syscalls", ev, "enable"), "0")
            for ev in EVENTS:
                p = self.path("events", *ev.split("/"), "enable")
                if os.path.exists(p):
                    _write(p, "0")
            if os.path.exists(self.path("events", self.group)):
                _write(self.path("events", self.group, "uffdio", "enable"), "0")
        except OSError:
            pass
        self._remove_uprobe()
        try:
            os.rmdir(self.dir)
        except OSError:
            pass

    def _remove_uprobe(self) -> None:
        self.uprobe = ""
        if os.path.exists(os.path.join(self.root, "events", self.group)):
            try:
                _write(os.path.join(self.root, "uprobe_events"), f"-:{self.group}/uffdio\n",
                       append=True)  # fmt: skip
            except OSError:
                pass


def _remove_stale(root: str) -> None:
    """Remove the instances and uprobes of recorders that died (killed
    before they could clean up): named after a pid that is gone."""
    for name in os.listdir(os.path.join(root, "instances")):
        if name.startswith("pagetab-") and not os.path.exists(f"/proc/{name[8:]}"):
            try:
                os.rmdir(os.path.join(root, "instances", name))
            except OSError:
                pass
    try:
        with open(os.path.join(root, "uprobe_events")) as f:
            probes = f.read().split()
    except OSError:
        return
    for word in probes:
        if word.startswith("p:pagetab_"):
            group = word[2:].split("/")[0]
            if not os.path.exists(f"/proc/{group[8:]}"):
                try:
                    _write(os.path.join(root, "uprobe_events"), f"-:{word[2:]}\n", append=True)
                except OSError:
                    pass


class _Drain(threading.Thread):
    """Copies trace_pipe to a temporary file while the command runs, so the
    ring buffer does not overflow; parsing waits until the end."""

    def __init__(self, pipe: str, sink: Any) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        self.sink = sink
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                data = b""
            if data:
                self.sink.write(data)
            elif self.stop.is_set():
                break
            else:
                time.sleep(0.02)
        os.close(self.fd)


def _ptrace(libc: Any, req: int, pid: int, addr: int, data: int) -> int:
    return int(libc.ptrace(ctypes.c_long(req), ctypes.c_long(pid), ctypes.c_void_p(addr),
                           ctypes.c_void_p(data)))  # fmt: skip


def _start(command: Sequence[str]) -> int:
    """Fork the command under ptrace (PTRACE_TRACEME): it stops after its
    exec. Raises FileNotFoundError/PermissionError if it cannot start."""
    libc = ctypes.CDLL(None, use_errno=True)
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: no Python beyond exec
        try:
            os.close(rfd)
            libc.ptrace(PTRACE_TRACEME, 0, None, None)
            os.execvp(command[0], list(command))
        except OSError as e:
            os.write(wfd, str(e.errno or errno.ENOENT).encode())
        finally:
            os._exit(127)
    os.close(wfd)
    failed = os.read(rfd, 16)
    os.close(rfd)
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        raise OSError(code, f"record: cannot start {command[0]!r}: {os.strerror(code)} "
                      "(exit status 127)", command[0])  # fmt: skip
    return pid


def record(
    command: Sequence[str],
    out: str | os.PathLike[str],
    *,
    buffer_kb: int = 65536,
    progress: Callable[[int], None] | None = None,
) -> RecordResult:
    """Run ``command`` and record its memory-management calls and faults.

    Parameters
    ----------
    command
        The program and its arguments, run as a child (not through a shell).
    out
        The trace file to write (a pagetab trace, gzip JSON Lines).
    buffer_kb
        tracefs ring buffer per CPU, in KiB; a trace whose buffer overflowed
        says how many events it lost.
    progress
        Called with the number of events written so far while the trace is
        converted, for a progress display.

    Returns
    -------
    RecordResult
        The command's exit status, the events written and lost.

    Raises
    ------
    RecordError
        Recording cannot run here (not root, no tracefs, not x86-64).
    OSError
        The command cannot start (its errno; a shell would exit 127).
    """
    if not command or not all(isinstance(c, str) for c in command):
        raise TypeError("command must be a non-empty list of strings")
    if isinstance(buffer_kb, bool) or not isinstance(buffer_kb, int) or buffer_kb < 64:
        raise ValueError(f"buffer_kb must be an int >= 64, not {buffer_kb!r}")
    root = check_recording()
    t_start = time.perf_counter_ns()
    inst = _Instance(root, buffer_kb)
    raw = tempfile.TemporaryFile()
    snapshots: dict[int, dict[str, Any]] = {}
    exec_maps: list[dict[str, Any]] = []
    code = 0
    page = os.sysconf("SC_PAGE_SIZE")
    libc = ctypes.CDLL(None, use_errno=True)
    drain: _Drain | None = None
    try:
        pid = _start(command)
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            raise OSError(errno.ECHILD, f"record: {command[0]!r} ended before its exec")
        drain = _Drain(inst.path("trace_pipe"), raw)
        drain.start()
        _write(inst.path("set_event_pid"), str(pid))
        _write(inst.path("tracing_on"), "1")
        inst.marker()  # (writes to trace_marker fail with EBADF while tracing is off)
        vmas = read_maps(pid)
        exec_maps.append({"pid": pid, "mono": time.clock_gettime_ns(time.CLOCK_MONOTONIC),
                          "vmas": vmas, "present": present_runs(pid, vmas, page)})  # fmt: skip
        opts = (PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE
                | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT)  # fmt: skip
        _ptrace(libc, PTRACE_SETOPTIONS, pid, 0, opts)
        t_run = time.perf_counter_ns()
        _ptrace(libc, PTRACE_CONT, pid, 0, 0)
        seen = {pid}
        # the traced tree's tasks not yet gone: waitpid(-1) below would block
        # for ever on the caller's other children once they are all gone
        alive = {pid}
        while alive:
            try:
                tid, status = os.waitpid(-1, WALL)
            except ChildProcessError:
                break
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                alive.discard(tid)
                if tid == pid:
                    code = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                            else 128 + os.WTERMSIG(status))  # fmt: skip
                continue
            alive.add(tid)
            if not os.WIFSTOPPED(status):
                continue
            sig, event = os.WSTOPSIG(status), status >> 16
            inject = 0
            if event == PTRACE_EVENT_EXEC:
                tgid = _tgid(tid)
                vmas = read_maps(tgid)
                exec_maps.append({"pid": tgid, "mono": time.clock_gettime_ns(
                    time.CLOCK_MONOTONIC), "vmas": vmas,
                    "present": present_runs(tgid, vmas, page)})  # fmt: skip
            elif event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE):
                child = ctypes.c_ulong()
                if _ptrace(libc, PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(child)) == 0:
                    alive.add(int(child.value))  # traced from birth: it will stop
            elif event == PTRACE_EVENT_EXIT:
                tgid = _tgid(tid)
                try:
                    vmas = read_maps(tgid)
                    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                    snapshots[tgid] = {"pid": tgid, "tid": tid, "vmas": vmas, "mono": now,
                                       "present": present_runs(tgid, vmas, page),
                                       "files": file_info(vmas, page, page_cache_folios(
                                           tgid, vmas, page))}  # fmt: skip
                except OSError:
                    pass
            elif event == 0:
                if tid not in seen and sig == signal.SIGSTOP:
                    seen.add(tid)  # a new child's first stop
                elif sig != signal.SIGTRAP:
                    inject = sig
            seen.add(tid)
            _ptrace(libc, PTRACE_CONT, tid, 0, inject)
        run_ns = time.perf_counter_ns() - t_run
        inst.marker()
        time.sleep(0.05)
        _write(inst.path("tracing_on"), "0")
        drain.stop.set()
        drain.join()
        lost = inst.lost()
    except BaseException:
        _kill_all()
        if drain is not None:
            drain.stop.set()
            drain.join()
        inst.remove()
        raise
    uprobe, uprobe_at = inst.uprobe, inst.uprobe_at
    inst.remove()
    host = host_info()
    extra: dict[str, Any] = {"clock": "x86-tsc", "uprobe_ioctl": bool(uprobe)}
    if uprobe and uprobe_at is not None:
        extra["uprobe_at"] = uprobe_at
    header = Header("tracefs", "kernel", list(command), host, extra=extra)
    written = _convert(raw, out, header, uprobe, exec_maps, snapshots, lost, pid, code, progress)
    return RecordResult(os.fspath(out), code, written, lost, time.perf_counter_ns() - t_start,
                        run_ns)  # fmt: skip


def _tgid(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


def _kill_all() -> None:
    """Kill what is left of the traced tree (after Ctrl-C or an error): the
    tasks this process traces, then reap each of them (and nothing else)."""
    me = f"TracerPid:\t{os.getpid()}\n"
    traced = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/status") as f:
                    if me in f.read():
                        traced.append(int(p))
            except OSError:
                pass
    for pid in traced:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in traced:
        try:
            os.waitpid(pid, WALL)
        except ChildProcessError:
            pass


def _convert(raw: Any, out: str | os.PathLike[str], header: Header, uprobe: str,
             exec_maps: list[dict[str, Any]], snapshots: dict[int, dict[str, Any]],
             lost: int, root: int, code: int,
             progress: Callable[[int], None] | None) -> int:  # fmt: skip
    """The drained tracefs text as a pagetab trace."""
    raw.seek(0)
    lines = (b.decode("utf-8", "replace") for b in raw)
    sync: list[tuple[int, int]] = []
    with TraceWriter(out, header) as w:
        w.lost = lost
        parser = _Parser(w, uprobe, int(header.host["page_size"]))
        parser.exit_vmas = {pid: snap["vmas"] for pid, snap in snapshots.items()}
        # the clock pairs first: the two pagetab_sync markers
        for text in lines:
            if "tracing_mark_write: pagetab_sync" in text:
                m = _LINE.match(text)
                if m is not None:
                    sync.append((int(m["ts"]), int(text.rsplit(" ", 1)[1])))
        if len(sync) < 2:
            raise RecordError("record: the trace lacks its clock markers")
        parser.set_clock(sync)
        mono0 = sync[0][1]
        # the files each process maps, sized and with their cached pages at
        # exit (a superset of what was cached when it ran), known from its exec
        parser.pending = [{"k": "maps", "t": s["mono"] - mono0, "pid": s["pid"],
                           "tid": s["pid"], "cpu": None, "when": "exec", "vmas": s["vmas"],
                           "present": s["present"],
                           "files": snapshots.get(s["pid"], {}).get("files", {})}
                          for s in sorted(exec_maps, key=lambda s: s["mono"])]  # fmt: skip
        raw.seek(0)
        for i, b in enumerate(raw):
            parser.line(b.decode("utf-8", "replace"))
            if progress is not None and i % 65536 == 0:
                progress(w.events)
        for ev in parser.pending:
            w.write(ev)
        for snap in snapshots.values():
            w.write({"k": "maps", "t": snap["mono"] - mono0, "pid": snap["pid"],
                     "tid": snap["tid"], "cpu": None, "when": "exit", "vmas": snap["vmas"],
                     "present": snap["present"]})  # fmt: skip
        end = sync[-1][1] - mono0
        w.write({"k": "exit", "t": end, "pid": root, "tid": root, "cpu": None, "code": code})
        return w.events
