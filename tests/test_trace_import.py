"""trace_import: strace's and perf trace's text into pagetab traces.

The real-output tests run strace (and perf trace, as root) on a small
program that reports the addresses it got, so the imported arguments are
checked against the program's own values, not against the parser.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pagetab import constants as C
from pagetab.trace_import import import_perf_trace, import_strace
from pagetab.tracefile import TraceReader

HOST = {"kernel": "test", "arch": "x86_64", "cpu_model": None, "page_size": 4096,
        "thp": None, "thp_sizes": {}, "cpus": 2}  # fmt: skip
P = 4096


def events(path: Path) -> list[dict[str, Any]]:
    return list(TraceReader(path))


def sys_events(evs: list[dict[str, Any]], nr: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["k"] == "sys" and e["nr"] == nr]


def strace_text(text: str, tmp_path: Path, **kw: Any) -> list[dict[str, Any]]:
    out = tmp_path / "t.trace.gz"
    n = import_strace(io.StringIO(textwrap.dedent(text)), out, host=HOST, **kw)
    evs = events(out)
    assert n == len(evs)
    return evs


def test_uffdio_numbers_are_the_headers_iowr() -> None:
    # include/uapi/asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr
    def iowr(nr: int, words: int, read_only: bool = False) -> int:
        return (2 if read_only else 3) << 30 | (8 * words) << 16 | 0xAA << 8 | nr

    assert C.UFFDIO_API == iowr(0x3F, 3) == 0xC018AA3F
    assert C.UFFDIO_REGISTER == iowr(0x00, 4)
    assert C.UFFDIO_UNREGISTER == iowr(0x01, 2, read_only=True)
    assert C.UFFDIO_WAKE == iowr(0x02, 2, read_only=True)
    assert C.UFFDIO_COPY == iowr(0x03, 5)
    assert C.UFFDIO_ZEROPAGE == iowr(0x04, 4)
    assert C.UFFDIO_MOVE == iowr(0x05, 5) == 0xC028AA05
    assert C.UFFDIO_WRITEPROTECT == iowr(0x06, 3)
    assert C.UFFDIO_CONTINUE == iowr(0x07, 4)
    assert C.UFFDIO_POISON == iowr(0x08, 4)
    assert C.UFFD_FEATURE_EVENT_REMAP == 1 << 2 and C.UFFD_FEATURE_MOVE == 1 << 16


# -- strace, written samples -------------------------------------------------

SAMPLE = """\
    100  1700000000.000100 execve("/usr/bin/prog", ["prog"], 0x7ffd0000 /* 3 vars */) = 0 <0.000200>
    100  1700000000.000500 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000 <0.000012>
    100  1700000000.000600 write(1, "hello\\n", 6) = 6 <0.000003>
    100  1700000000.000700 mmap(0x7f0000100000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory) <0.000004>
    100  1700000000.000800 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, exit_signal=0, stack=0x7e0000000000, stack_size=0x800000} => {parent_tid=[101]}, 88) = 101 <0.000030>
    100  1700000000.000900 mremap(0x7f0000000000, 8192, 16384, MREMAP_MAYMOVE <unfinished ...>
    101  1700000000.000910 munmap(0x7e0000000000, 4096 <unfinished ...>
    100  1700000000.001000 <... mremap resumed>) = 0x7f0000200000 <0.000100>
    101  1700000000.001010 <... munmap resumed>) = 0 <0.000100>
    101  1700000000.001100 madvise(0x7f0000200000, 4096, MADV_DONTNEED) = 0 <0.000005>
    101  1700000000.001200 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---
    100  1700000000.001300 userfaultfd(O_CLOEXEC|O_NONBLOCK) = 3 <0.000008>
    100  1700000000.001400 ioctl(3, UFFDIO_API, {api=0xaa, features=UFFD_FEATURE_MOVE => features=UFFD_FEATURE_MOVE|0x1, ioctls=1<<_UFFDIO_REGISTER}) = 0 <0.000002>
    100  1700000000.001500 ioctl(3, UFFDIO_REGISTER, {range={start=0x7f0000200000, len=0x4000}, mode=UFFDIO_REGISTER_MODE_MISSING} => {ioctls=1<<_UFFDIO_WAKE}) = 0 <0.000004>
    100  1700000000.001600 ioctl(3, UFFDIO_MOVE, {dst=0x7f0000200000, src=0x7f0000300000, len=4096, mode=UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES} => {move=4096}) = 0 <0.000006>
    100  1700000000.001700 ioctl(3, _IOC(_IOC_READ|_IOC_WRITE, 0xaa, 0x5, 0x28), 0x7ffd1000) = -1 EEXIST (File exists) <0.000003>
    100  1700000000.001750 ioctl(1, TCGETS, {c_iflag=ICRNL}) = 0 <0.000002>
    101  1700000000.001800 exit(0)                 = ?
    101  1700000000.001900 +++ exited with 0 +++
    100  1700000000.002000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f00000a10) = 102 <0.000300>
    102  1700000000.002500 munmap(0x7f0000200000, 16384) = 0 <0.000010>
    102  1700000000.002600 +++ killed by SIGSEGV (core dumped) +++
    100  1700000000.003000 exit_group(0)           = ?
    100  1700000000.003100 +++ exited with 0 +++
"""  # noqa: E501


def test_strace_sample(tmp_path: Path) -> None:
    evs = strace_text(SAMPLE, tmp_path, command=["prog"])
    header = TraceReader(tmp_path / "t.trace.gz").header
    assert (header.source, header.timing, header.command) == ("strace", "ptrace", ["prog"])
    assert header.host == HOST
    # write and the tty ioctl are skipped; the signal line too
    assert [e["nr"] if e["k"] == "sys" else e["k"] for e in evs] == [
        "execve", "mmap", "mmap", "clone3", "fork", "mremap", "munmap", "madvise",
        "userfaultfd", "ioctl", "ioctl", "ioctl", "ioctl", "exit", "exit", "clone", "fork",
        "munmap", "exit", "exit_group", "exit"]  # fmt: skip
    execve, mmap, bad = evs[0], evs[1], evs[2]
    assert execve["t"] == 0 and execve["path"] == "/usr/bin/prog"
    assert execve["a"] == [None, None, 0x7FFD0000] and execve["d"] == 200_000
    assert mmap == {"k": "sys", "t": 400_000, "pid": 100, "tid": 100, "cpu": None,
                    "nr": "mmap", "a": [0, 8192, 3, 0x22, -1, 0], "r": 0x7F0000000000,
                    "d": 12_000}  # fmt: skip
    assert bad["r"] == -12 and bad["a"][3] == C.MAP_PRIVATE | C.MAP_FIXED | C.MAP_ANONYMOUS
    clone3, fork = evs[3], evs[4]
    assert clone3["a"] == [None, 88] and clone3["r"] == 101
    assert clone3["mem"][0] & C.CLONE_THREAD and clone3["mem"][5] == 0x7E0000000000
    assert fork == {"k": "fork", "t": 730_000, "pid": 100, "tid": 100, "cpu": None,
                    "child": 101, "thread": True}  # fmt: skip
    mremap, munmap = evs[5], evs[6]
    # joined, at the time each began, the result of the resumed half
    assert (mremap["t"], mremap["tid"], mremap["d"]) == (800_000, 100, 100_000)
    assert mremap["r"] == 0x7F0000200000
    assert mremap["a"] == [0x7F0000000000, 8192, 16384, C.MREMAP_MAYMOVE, 0]
    assert (munmap["t"], munmap["pid"], munmap["tid"]) == (810_000, 100, 101)
    assert munmap["a"] == [0x7E0000000000, 4096]
    assert evs[7]["a"] == [mremap["r"], 4096, C.MADV_DONTNEED] and evs[7]["pid"] == 100
    assert evs[8]["a"] == [C.O_CLOEXEC | C.O_NONBLOCK] and evs[8]["r"] == 3
    api, reg, move, raw = evs[9:13]
    assert api["a"] == [3, C.UFFDIO_API, None] and api["mem"] == [0xAA, C.UFFD_FEATURE_MOVE]
    assert reg["a"][1] == C.UFFDIO_REGISTER
    assert reg["mem"] == [0x7F0000200000, 0x4000, C.UFFDIO_REGISTER_MODE_MISSING]
    assert move["a"] == [3, C.UFFDIO_MOVE, None]
    assert move["mem"] == [mremap["r"], 0x7F0000300000, 4096, C.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES]
    assert raw["a"] == [3, C.UFFDIO_MOVE, 0x7FFD1000] and "mem" not in raw and raw["r"] == -17
    thread_exit, exit_ev = evs[13], evs[14]
    assert (thread_exit["nr"], thread_exit["r"], thread_exit["d"]) == ("exit", None, None)
    assert exit_ev == {"k": "exit", "t": 1_800_000, "pid": 100, "tid": 101, "cpu": None, "code": 0}
    clone, fork2, child_unmap, killed = evs[15:19]
    assert clone["a"] == [C.CLONE_CHILD_CLEARTID | C.CLONE_CHILD_SETTID | C.SIGNALS["SIGCHLD"],
                          0, 0, 0x7F00000A10, 0]  # fmt: skip
    assert (fork2["child"], fork2["thread"]) == (102, False)
    assert (child_unmap["pid"], child_unmap["tid"]) == (102, 102)
    assert killed["code"] == 128 + 11 and killed["signal"] == 11 and killed["pid"] == 102
    assert evs[-1]["k"] == "exit" and evs[-1]["code"] == 0 and evs[-1]["pid"] == 100
    assert [e["t"] for e in evs] == sorted(e["t"] for e in evs)


def test_strace_pid_prefix_and_no_prefix(tmp_path: Path) -> None:
    # strace -f to stderr: the root's lines have no pid until a child exists
    text = """\
        strace: Process 7 attached
        1700000000.000000 mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) = 0x1000000 <0.000010>
        1700000000.000010 fork()                = 8 <0.000100>
        [pid     8] 1700000000.000200 brk(NULL) = 0x5000 <0.000001>
        [pid     7] 1700000000.000300 munmap(0x1000000, 4096 <unfinished ...>
        [pid     8] 1700000000.000310 mprotect(0x5000, 4096, PROT_READ|PROT_EXEC) = 0 <0.000002>
        [pid     7] 1700000000.000400 <... munmap resumed>) = 0 <0.000100>
        some output of the program
    """  # noqa: E501
    evs = strace_text(text, tmp_path, pid=7)
    assert [(e.get("nr", e["k"]), e["pid"], e["tid"]) for e in evs] == [
        ("mmap", 7, 7), ("fork", 7, 7), ("fork", 7, 7), ("brk", 8, 8), ("munmap", 7, 7),
        ("mprotect", 8, 8)]  # fmt: skip
    assert evs[0]["a"][3] == C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_NORESERVE
    assert evs[2]["child"] == 8 and evs[2]["thread"] is False
    assert evs[5]["a"] == [0x5000, 4096, C.PROT_READ | C.PROT_EXEC]


def test_strace_symbols(tmp_path: Path) -> None:
    text = """\
        1.000000 mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB, -1, 0) = 0x200000 <0.000010>
        1.000001 mremap(0x200000, 2097152, 2097152, MREMAP_MAYMOVE|MREMAP_FIXED|MREMAP_DONTUNMAP, 0x400000) = 0x400000 <0.000010>
        1.000002 openat(AT_FDCWD, "/dev/userfaultfd", O_RDWR|O_CLOEXEC) = 4 <0.000010>
        1.000003 openat(AT_FDCWD, "/tmp/x", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 5</tmp/x> <0.000010>
        1.000004 mmap(NULL, 4096, PROT_READ, MAP_SHARED, 5</tmp/x>, 0x1000) = 0x7f00 <0.000010>
        1.000005 dup3(5, 9, O_CLOEXEC) = 9 <0.000010>
        1.000006 close(5) = 0 <0.000010>
        1.000007 madvise(0x400000, 2097152, 0x19 /* MADV_??? */) = -1 EINVAL (Invalid argument) <0.000010>
    """  # noqa: E501
    evs = strace_text(text, tmp_path, pid=1)
    assert evs[0]["a"][3] == C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_HUGETLB | 21 << 26
    assert evs[1]["a"] == [0x200000, 2 << 20, 2 << 20, 7, 0x400000]
    assert evs[2]["a"] == [C.AT_FDCWD, None, C.O_RDWR | C.O_CLOEXEC, 0]
    assert evs[2]["path"] == "/dev/userfaultfd"
    assert evs[3]["a"] == [-100, None, 0o1101, 0o644] and evs[3]["r"] == 5
    assert evs[4]["a"] == [0, 4096, 1, 1, 5, 0x1000]
    assert evs[5]["a"] == [5, 9, C.O_CLOEXEC]
    assert evs[7]["a"][2] == 25 and evs[7]["r"] == -22


@pytest.mark.parametrize(
    "line, message",
    [
        ("1.0 mmap(NULL, 4096, PROT_READ|PROT_BOGUS, MAP_PRIVATE, -1, 0) = 0x1000 <0.1>",
         "unknown flag name 'PROT_BOGUS'"),
        ("1.0 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, -1, 0) = banana <0.1>",
         "cannot read the return value"),
        ("1.0 munmap(0x1000, 4096, 7, 8) = 0 <0.1>", "munmap takes 2 arguments"),
        ("1.0 mmap(NULL, 4096, PROT_READ", "arguments do not end"),
        ("1.0 munmap(0x1000, 4096) = -1 EWHATEVER (No) <0.1>", "unknown errno name"),
        ("mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, -1, 0) = 0x1000", "no timestamp"),
        ("1.0 <... munmap resumed>) = 0 <0.1>", "munmap resumes without having begun"),
        ("1.0 ioctl(3, UFFDIO_MOVE, {dst=0x1000, src=0x2000, len=4096}) = 0", "lacks mode"),
        ("1.0 ioctl(3, UFFDIO_FROB, 0x1000) = 0", "unknown flag name 'UFFDIO_FROB'"),
    ],
)  # fmt: skip
def test_strace_bad_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    text = "1.0 getpid() = 1 <0.1>\n1.0 frobnicate(1, 2 +++ not a call\n" + line + "\n"
    with pytest.raises(ValueError, match="line 3: ") as e:
        import_strace(io.StringIO(text), tmp_path / "t.gz", host=HOST, pid=1)
    assert message in str(e.value) and line.strip() in str(e.value)


def test_strace_unfinished_at_the_end(tmp_path: Path) -> None:
    text = """\
        5 1.000000 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>
        6 1.000100 exit_group(1 <unfinished ...>
        6 1.000200 +++ exited with 1 +++
    """
    evs = strace_text(text, tmp_path)
    assert [(e.get("nr", e["k"]), e["tid"], e.get("r")) for e in evs] == [
        ("mmap", 5, None), ("exit_group", 6, None), ("exit", 6, None)]  # fmt: skip
    assert evs[0]["a"] == [0, 4096, 1, 0x22, -1, 0] and evs[1]["a"] == [1]


# -- perf trace, written samples ----------------------------------------------

PERF = """\
         ? (         ): prog/500  ... [continued]: execve())                                           = 0
     0.036 ( 0.015 ms): prog/500 brk()                                                                 = 0x556393bfb000
     0.526 ( 0.019 ms): prog/500 mmap(len: 8192, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)           = 0x7ffb47882000
     0.567 ( 0.016 ms): prog/500 access(filename: 0x478b62a0, mode: R)                                 = -1 ENOENT (No such file or directory)
     0.599 ( 0.017 ms): prog/500 openat(dfd: CWD, filename: 0x478b50b1, flags: RDONLY|CLOEXEC)         = 3
     0.659 ( 0.016 ms): prog/500 mmap(len: 34547, prot: READ, flags: PRIVATE, fd: 3)                   = 0x7ffb47879000
     0.902 ( 0.018 ms): prog/500 mmap(addr: 0x7ffb476bd000, len: 1400832, prot: READ|EXEC, flags: PRIVATE|FIXED|DENYWRITE, fd: 3, off: 0x26000) = 0x7ffb476bd000
     1.000 ( 0.016 ms): prog/500 ioctl(fd: 1, cmd: TCGETS, arg: 0x7ffc0000)                            = -1 ENOTTY (Inappropriate ioctl for device)
     1.100 ( 0.016 ms): prog/500 ioctl(fd: 4<anon_inode:[userfaultfd]>, cmd: (READ|WRITE, 0xaa, 0x5, 0x28), arg: 0x7f566daff450) = 0
     1.200 ( 0.165 ms): prog/500 mremap(addr: 0x7ffb47882000, old_len: 8192, new_len: 16384, flags: MAYMOVE) = 0x7fc137491000
     1.300 ( 0.030 ms): prog/500 madvise(start: 0x7fc137491000, len_in: 4096, behavior: MADV_DONTNEED) = 0
         ? (         ): :502/502  ... [continued]: clone())                                            =
     1.400 (         ): prog/500 clone(clone_flags: VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID, newsp: 0x7f00) ...
     1.500 ( 0.019 ms): :502/502 munmap(addr: 0x7fc137491000, len: 4096)                             = 0
     1.451 (         ): :502/502 exit()                                                                = ?
     1.400 ( 0.050 ms): prog/500  ... [continued]: clone())                                            = 502 (prog)
LOST 3 events!
     2.000 ( 0.016 ms): prog/500 munmap(addr: 0xffffffffffffffff, len: 131072)                         = -1 EINVAL (Invalid argument)
     2.100 (         ): prog/500 exit_group()                                                          = ?
"""  # noqa: E501


def test_perf_sample(tmp_path: Path) -> None:
    out = tmp_path / "p.trace.gz"
    n = import_perf_trace(io.StringIO(PERF), out, host=HOST, command=["prog"])
    reader = TraceReader(out)
    evs = list(reader)
    assert n == len(evs) and reader.lost == 3
    assert (reader.header.source, reader.header.timing) == ("perf-trace", "kernel")
    kinds = [e["nr"] if e["k"] == "sys" else e["k"] for e in evs]
    assert kinds == ["brk", "mmap", "openat", "mmap", "mmap", "ioctl", "mremap", "madvise",
                     "clone", "fork", "exit", "exit", "munmap", "munmap", "exit_group",
                     "exit"]  # fmt: skip
    brk, mmap = evs[0], evs[1]
    assert (brk["t"], brk["a"], brk["r"], brk["d"]) == (0, [0], 0x556393BFB000, 15_000)
    # perf leaves out zero arguments and an anonymous map's fd and offset
    assert mmap["a"] == [0, 8192, 3, 0x22, -1, 0] and mmap["t"] == 490_000
    assert evs[2]["a"] == [C.AT_FDCWD, 0x478B50B1, C.O_RDONLY | C.O_CLOEXEC, 0]
    assert evs[3]["a"] == [0, 34547, 1, 2, 3, 0]
    assert evs[4]["a"] == [0x7FFB476BD000, 1400832, 5, 0x812, 3, 0x26000]
    assert evs[5]["a"] == [4, C.UFFDIO_MOVE, 0x7F566DAFF450] and "mem" not in evs[5]
    assert evs[6]["a"] == [mmap["r"], 8192, 16384, 1, 0] and evs[6]["d"] == 165_000
    assert evs[7]["a"] == [evs[6]["r"], 4096, C.MADV_DONTNEED]
    clone, fork = evs[8], evs[9]
    assert clone["a"][0] & C.CLONE_THREAD and clone["a"][1] == 0x7F00 and clone["r"] == 502
    assert clone["t"] == 1_364_000 and clone["d"] == 50_000
    assert (fork["child"], fork["thread"], fork["t"]) == (502, True, 1_414_000)
    # the thread's lines were printed before its creation's end: held, and
    # given the process's pid
    assert [(e["pid"], e["tid"]) for e in evs[10:13]] == [(500, 502)] * 3
    assert evs[11] == {"k": "exit", "t": 1_415_000, "pid": 500, "tid": 502, "cpu": None,
                       "code": 0}  # fmt: skip
    assert evs[13]["r"] == -22 and evs[-1]["code"] == 0
    assert [e["t"] for e in evs] == sorted(e["t"] for e in evs)


def test_perf_bad_lines(tmp_path: Path) -> None:
    bad = "     0.5 ( 0.01 ms): p/1 mmap(len: 8192, prot: READ|SOMETIMES) = 0x1000\n"
    with pytest.raises(ValueError, match=r"line 2: unknown flag name 'SOMETIMES'.*p/1 mmap"):
        import_perf_trace(io.StringIO(PERF.splitlines(True)[1] + bad), tmp_path / "x", host=HOST)
    bad = "     0.5 ( 0.01 ms): p/1 munmap(addr: 0x1000, length: 4096) = 0\n"
    with pytest.raises(ValueError, match=r"line 1: unknown munmap argument 'length: 4096'"):
        import_perf_trace(io.StringIO(bad), tmp_path / "x", host=HOST)


# -- real output, produced here -----------------------------------------------

PROGRAM = r"""
import ctypes, json, os, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
vp, sz = ctypes.c_void_p, ctypes.c_size_t
libc.mmap.restype = vp
libc.mmap.argtypes = [vp, sz, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mremap.restype = vp
libc.mremap.argtypes = [vp, sz, sz, ctypes.c_int, vp]
libc.munmap.argtypes = [vp, sz]
libc.madvise.argtypes = [vp, sz, ctypes.c_int]
libc.syscall.restype = ctypes.c_long
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, vp]
P = 4096
got = {}
a = libc.mmap(None, 16 * P, 3, 0x22, -1, 0)
libc.madvise(a, 4 * P, 4)
b = libc.mremap(a, 16 * P, 32 * P, 1, None)
libc.munmap(b, 32 * P)
got.update(a=a, b=b)
got["bad"] = libc.mmap(None, 1 << 62, 3, 0x22, -1, 0)
uffd = libc.syscall(323, 0o2000000)
got["uffd"] = uffd
if uffd >= 0:
    api = (ctypes.c_uint64 * 3)(0xAA, 0, 0)
    got["api"] = libc.ioctl(uffd, 0xC018AA3F, api)
    dst = libc.mmap(None, 4 * P, 3, 0x22, -1, 0)
    reg = (ctypes.c_uint64 * 4)(dst, 4 * P, 1, 0)
    got["register"] = libc.ioctl(uffd, 0xC020AA00, reg)
    got["dst"] = dst
    os.close(uffd)
def thread():
    x = libc.mmap(None, P, 3, 0x22, -1, 0)
    libc.munmap(x, P)
    got["tmap"] = x
    got["tid"] = threading.get_native_id()
t = threading.Thread(target=thread)
t.start()
t.join()
pid = os.fork()
if pid == 0:
    os._exit(3)
os.waitpid(pid, 0)
got["child"] = pid
got["pid"] = os.getpid()
print(json.dumps(got))
"""


def check_real(evs: list[dict[str, Any]], got: dict[str, Any], strace: bool) -> None:
    mmaps = [e for e in sys_events(evs, "mmap") if e["r"] == got["a"]]
    assert mmaps and mmaps[-1]["a"] == [0, 16 * P, 3, 0x22, -1, 0]
    assert mmaps[-1]["pid"] == mmaps[-1]["tid"] == got["pid"]
    madv = [e for e in sys_events(evs, "madvise") if e["a"][0] == got["a"]]
    assert madv[0]["a"] == [got["a"], 4 * P, C.MADV_DONTNEED] and madv[0]["r"] == 0
    (mremap,) = sys_events(evs, "mremap")
    assert mremap["a"] == [got["a"], 16 * P, 32 * P, C.MREMAP_MAYMOVE, 0]
    assert mremap["r"] == got["b"]
    unmaps = [e for e in sys_events(evs, "munmap") if e["a"][0] == got["b"]]
    assert unmaps[0]["a"] == [got["b"], 32 * P] and unmaps[0]["r"] == 0
    bad = [e for e in sys_events(evs, "mmap") if e["a"][1] == 1 << 62]
    assert bad[0]["r"] == -C.ERRNO["ENOMEM"] and got["bad"] == 2**64 - 1
    if got["uffd"] >= 0:
        (uffd,) = sys_events(evs, "userfaultfd")
        assert uffd["a"] == [C.O_CLOEXEC] and uffd["r"] == got["uffd"]
        ioctls = sys_events(evs, "ioctl")
        assert [e["a"][:2] for e in ioctls] == [[got["uffd"], C.UFFDIO_API],
                                                [got["uffd"], C.UFFDIO_REGISTER]]  # fmt: skip
        if strace:  # strace prints the structs, perf the pointers
            assert ioctls[0]["mem"] == [0xAA, 0]
            assert ioctls[1]["mem"] == [got["dst"], 4 * P, C.UFFDIO_REGISTER_MODE_MISSING]
    tmap = [e for e in sys_events(evs, "mmap") if e["r"] == got["tmap"]]
    assert tmap[-1]["tid"] == got["tid"]
    if strace:  # strace reads clone3's flags: the thread is in the process
        assert tmap[-1]["pid"] == got["pid"]
    forks = [e for e in evs if e["k"] == "fork"]
    assert [(f["child"], f["pid"]) for f in forks] == [(got["tid"], got["pid"]),
                                                       (got["child"], got["pid"])]  # fmt: skip
    assert forks[1]["thread"] is False
    if strace:
        assert forks[0]["thread"] is True
    child_exit = [e for e in evs if e["k"] == "exit" and e["tid"] == got["child"]]
    assert child_exit[0]["code"] == 3 and child_exit[0]["pid"] == got["child"]
    assert [e["t"] for e in evs] == sorted(e["t"] for e in evs)
    assert all(e["t"] >= 0 for e in evs)
    assert all(e["d"] is None or e["d"] >= 0 for e in evs if e["k"] == "sys")


def test_real_strace(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("no strace")
    probe = subprocess.run([strace, "-o", os.devnull, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode()[:200]}")
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    log = tmp_path / "strace.txt"
    run = subprocess.run([strace, "-f", "-ttt", "-T", "-o", str(log), sys.executable, str(prog)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    got = json.loads(run.stdout)
    out = tmp_path / "s.trace.gz"
    n = import_strace(log, out, command=[sys.executable, str(prog)])
    evs = events(out)
    assert n == len(evs)
    assert evs[0]["nr"] == "execve" and evs[0]["t"] == 0 and evs[0]["pid"] == got["pid"]
    check_real(evs, got, strace=True)
    # the same with -e trace=memory,... (fewer calls, the same values)
    log2 = tmp_path / "strace2.txt"
    trace = "trace=memory,userfaultfd,ioctl,clone,clone3,fork,exit,exit_group,execve"
    run = subprocess.run([strace, "-f", "-ttt", "-T", "-e", trace, "-o", str(log2),
                          sys.executable, str(prog)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    got = json.loads(run.stdout)
    import_strace(log2, out)
    check_real(events(out), got, strace=True)


def test_real_perf_trace(tmp_path: Path) -> None:
    perf = shutil.which("perf")
    if perf is None:
        pytest.skip("no perf")
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    log = tmp_path / "perf.txt"
    calls = ",".join(sorted(("mmap", "munmap", "mremap", "madvise", "userfaultfd", "ioctl",
                             "clone", "clone3", "exit", "exit_group")))  # fmt: skip
    run = subprocess.run([perf, "trace", "-e", calls, "-o", str(log), sys.executable, str(prog)],
                         capture_output=True, text=True)  # fmt: skip
    if run.returncode != 0 or not run.stdout.strip():
        pytest.skip(f"perf trace cannot run here: {run.stderr[:200]}")
    got = json.loads(run.stdout)
    out = tmp_path / "p.trace.gz"
    n = import_perf_trace(log, out)
    evs = events(out)
    assert n == len(evs)
    check_real(evs, got, strace=False)
