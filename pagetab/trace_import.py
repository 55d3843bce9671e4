"""Convert the text of ``strace`` and ``perf trace`` into a pagetab trace.

Users often already have these outputs; this module turns their
memory-management calls into the events of :mod:`pagetab.tracefile`
(``sys``, ``fork``, ``exit``). Only these system calls are kept
(``KEPT``): mmap, munmap, mremap, mprotect, madvise, brk, userfaultfd,
ioctl (userfaultfd's ioctls only: a command whose type byte is
``UFFDIO``), openat, close, dup, dup2, dup3, clone, clone3, fork, vfork,
execve, exit and exit_group. Other calls, and lines that are not calls
(the program's own output, signals, tracer messages), are skipped; a line
of a kept call that cannot be read is a ValueError naming its line number
and text, and so is an unknown flag name.

Arguments (``a``) are the integers the kernel received, decoded from the
tracer's symbols with :mod:`pagetab.constants` (Linux's values, x86-64).
Where the tracer printed what a pointer points to instead of the pointer
(a path, a struct), its slot is null: ``path`` holds a printed path and
``mem`` the input words of a userfaultfd ioctl's struct. ``r`` is the
return value, the negative errno on failure, null where the call did not
return (``= ?``). Events are written in the order of their start times
(a call split by ``<unfinished ...>`` is written once, whole, where it
began); ``t`` is ns since the first line's time, ``d`` the call's
duration in ns as the tracer printed it.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from . import constants as C
from .tracefile import Header, TraceWriter, host_info

#: the system calls an import keeps (x86-64 names)
KEPT = frozenset(("mmap", "munmap", "mremap", "mprotect", "madvise", "brk", "userfaultfd",
                  "ioctl", "openat", "close", "dup", "dup2", "dup3", "clone", "clone3",
                  "fork", "vfork", "execve", "exit", "exit_group"))  # fmt: skip

#: each kept call's arguments, by the kernel's names (its SYSCALL_DEFINE
#: parameters, which are also the fields of tracefs's sys_enter_* events
#: that ``perf trace`` prints)
ARG_NAMES: dict[str, tuple[str, ...]] = {
    "mmap": ("addr", "len", "prot", "flags", "fd", "off"),
    "munmap": ("addr", "len"),
    "mremap": ("addr", "old_len", "new_len", "flags", "new_addr"),
    "mprotect": ("start", "len", "prot"),
    "madvise": ("start", "len_in", "behavior"),
    "brk": ("brk",),
    "userfaultfd": ("flags",),
    "ioctl": ("fd", "cmd", "arg"),
    "openat": ("dfd", "filename", "flags", "mode"),
    "close": ("fd",),
    "dup": ("fildes",),
    "dup2": ("oldfd", "newfd"),
    "dup3": ("oldfd", "newfd", "flags"),
    "clone": ("clone_flags", "newsp", "parent_tidptr", "child_tidptr", "tls"),
    "clone3": ("uargs", "size"),
    "fork": (),
    "vfork": (),
    "execve": ("filename", "argv", "envp"),
    "exit": ("error_code",),
    "exit_group": ("error_code",),
}

#: the prefix of the symbols an argument takes, for ``perf trace``, which
#: prints them without it (``prot: READ|WRITE``)
_PREFIX = {("mmap", "prot"): "PROT_", ("mprotect", "prot"): "PROT_",
           ("mmap", "flags"): "MAP_", ("mremap", "flags"): "MREMAP_",
           ("madvise", "behavior"): "MADV_", ("clone", "clone_flags"): "CLONE_",
           ("openat", "flags"): "O_", ("dup3", "flags"): "O_", ("userfaultfd", "flags"): "O_",
           ("openat", "dfd"): "AT_FD"}  # fmt: skip

#: a userfaultfd ioctl's struct: the input words, in struct order, by the
#: field names strace prints (include/uapi/linux/userfaultfd.h)
UFFD_STRUCTS: dict[int, tuple[str, ...]] = {
    C.UFFDIO_API: ("api", "features"),
    C.UFFDIO_REGISTER: ("range.start", "range.len", "mode"),
    C.UFFDIO_UNREGISTER: ("start", "len"),
    C.UFFDIO_WAKE: ("start", "len"),
    C.UFFDIO_COPY: ("dst", "src", "len", "mode"),
    C.UFFDIO_ZEROPAGE: ("range.start", "range.len", "mode"),
    C.UFFDIO_MOVE: ("dst", "src", "len", "mode"),
    C.UFFDIO_WRITEPROTECT: ("range.start", "range.len", "mode"),
    C.UFFDIO_CONTINUE: ("range.start", "range.len", "mode"),
    C.UFFDIO_POISON: ("range.start", "range.len", "mode"),
}

# every symbol a flag argument may be spelled with: Linux's names from
# pagetab.constants (values that are not plain ints are left out)
_SKIP_PREFIXES = ("MADV_NAMES", "MAP_HUGE_SHIFT", "MAP_TYPE", "DEFAULT_", "ZERO_", "NO_")
SYMBOLS: dict[str, int] = {
    name: value
    for name, value in vars(C).items()
    if name.isupper() and isinstance(value, int) and not name.startswith(_SKIP_PREFIXES)
}
SYMBOLS.update(C.SIGNALS)
SYMBOLS["NULL"] = 0

_IOC_DIRS = {"_IOC_NONE": 0, "NONE": 0, "_IOC_WRITE": 1, "WRITE": 1, "_IOC_READ": 2, "READ": 2}


def ioc(direction: int, kind: int, nr: int, size: int) -> int:
    """An ioctl number as include/uapi/asm-generic/ioctl.h's ``_IOC``
    makes it (x86-64: ``dir << 30 | size << 16 | type << 8 | nr``).

    Parameters
    ----------
    direction : int
        ``_IOC_NONE`` 0, ``_IOC_WRITE`` 1, ``_IOC_READ`` 2 or both (3).
    kind : int
        The type byte (``UFFDIO`` is 0xAA).
    nr : int
        The command's number within its type.
    size : int
        The size of the struct the argument points to, in bytes.

    Returns
    -------
    int
        The command as the kernel receives it.
    """
    return direction << 30 | size << 16 | kind << 8 | nr


class _LineError(ValueError):
    """A problem with one line; the importer adds its number and text."""


def _split(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside brackets and quotes, without
    ``/* comments */``; the pieces stripped."""
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i : j + 1])
            i = j + 1
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            out.append("".join(cur).strip())
            cur = []
            i += len(sep)
            continue
        cur.append(c)
        i += 1
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


def _close_paren(text: str, start: int) -> int:
    """The index of the ``)`` that closes the ``(`` at ``start``, -1 if none."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)")
_DECORATED = re.compile(r"(-?\d+)<.*>")  # strace -y / perf: 3</dev/null>
_HUGE = re.compile(r"MAP_HUGE_(\d+)([KMG])B")
_SHIFT = re.compile(r"(\d+)\s*<<\s*(\d+)")


def _number(text: str) -> int | None:
    """An integer literal as strace and perf print them (hex, decimal,
    octal with a leading 0), None if ``text`` is not one."""
    if not _NUMBER.fullmatch(text):
        return None
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if body.startswith(("0x", "0X")):
        v = int(body, 16)
    elif len(body) > 1 and body.startswith("0"):
        try:
            v = int(body, 8)
        except ValueError:
            raise _LineError(f"{text!r} is not a number") from None
    else:
        v = int(body)
    return -v if neg else v


def _symbol(name: str, prefix: str) -> int:
    """One name of a flag set: Linux's symbol, with perf's missing prefix."""
    for cand in (prefix + name, name) if prefix else (name,):
        if cand in SYMBOLS:
            return SYMBOLS[cand]
        m = _HUGE.fullmatch(cand)
        if m:
            size = int(m.group(1)) << {"K": 10, "M": 20, "G": 30}[m.group(2)]
            return (size.bit_length() - 1) << C.MAP_HUGE_SHIFT
    raise _LineError(f"unknown flag name {name!r}")


def _value(text: str, prefix: str = "") -> int | None:
    """An argument's integer: a number, ``NULL``, a flag set
    (``PROT_READ|PROT_WRITE``, ``MAP_PRIVATE|0x40``, ``1<<_UFFDIO_API``),
    an ioctl number (``_IOC(...)``, perf's ``(READ|WRITE, 0xaa, 0x5, 0x28)``);
    None for what stands for memory the tracer read (a string, an array,
    a struct)."""
    text = text.strip()
    m = _DECORATED.fullmatch(text)
    if m:
        text = m.group(1)
    if not text:
        raise _LineError("an empty argument")
    if text[0] in '"[{~' or text.startswith("@"):
        return None
    v = _number(text)
    if v is not None:
        return v
    if text.startswith("_IOC(") or (text.startswith("(") and text.endswith(")")):
        inner = text[text.index("(") + 1 : -1]
        parts = _split(inner)
        if len(parts) != 4:
            raise _LineError(f"cannot read the ioctl number {text!r}")
        d = 0
        for p in parts[0].split("|"):
            if p.strip() not in _IOC_DIRS:
                raise _LineError(f"unknown ioctl direction {p.strip()!r} in {text!r}")
            d |= _IOC_DIRS[p.strip()]
        nums = [_number(p) for p in parts[1:]]
        if any(x is None for x in nums):
            raise _LineError(f"cannot read the ioctl number {text!r}")
        return ioc(d, *nums)  # type: ignore[arg-type]
    total = 0
    for part in text.split("|"):
        part = part.strip()
        v = _number(part)
        if v is None:
            s = _SHIFT.fullmatch(part)
            if s:
                v = int(s.group(1)) << int(s.group(2))
            else:
                v = _symbol(part, prefix)
        total |= v
    return total


def _fields(text: str) -> dict[str, str]:
    """A struct strace printed, ``{a=1, b={c=2}}``, its input side (before
    ``=>``) as ``{"a": "1", "b.c": "2"}``."""
    text = _split(text, "=>")[0]  # {in} => {out}
    if not (text.startswith("{") and text.endswith("}")):
        raise _LineError(f"{text!r} is not a struct")
    inner = _split(text[1:-1], "=>")[0]
    out: dict[str, str] = {}
    for item in _split(inner):
        name, eq, val = item.partition("=")
        if not eq:
            continue
        val = val.strip()
        if val.startswith("{"):
            for k, v in _fields(val).items():
                out[f"{name.strip()}.{k}"] = v
        else:
            out[name.strip()] = val
    return out


_RET = re.compile(
    r"=\s*(?P<val>\?|-?(?:0x[0-9a-fA-F]+|\d+))?(?:<[^>]*>)?"
    r"(?:\s+(?P<err>E[A-Z0-9_]+)\b)?(?:\s+\(errno (?P<errno>\d+)\))?(?:\s+\(.*\))?\s*"
    r"(?:<(?P<dur>\d+(?:\.\d+)?)>)?\s*$"
)


def _ret(text: str) -> tuple[int | None, int | None]:
    """``= 0x7f.. <0.000012>``, ``= -1 ENOMEM (...)``, ``= ?`` as (r, d):
    the return value (-errno on failure, None for ``?``) and the duration
    in ns (None if not printed)."""
    m = _RET.fullmatch(text.strip())
    if m is None:
        raise _LineError(f"cannot read the return value {text.strip()!r}")
    val, err = m.group("val"), m.group("err")
    d = None if m.group("dur") is None else int(Decimal(m.group("dur")) * 1_000_000_000)
    if err is not None or m.group("errno") is not None:
        if err is not None and err not in C.ERRNO:
            raise _LineError(f"unknown errno name {err!r}")
        return -(C.ERRNO[err] if err is not None else int(m.group("errno"))), d
    if val is None or val == "?":
        return None, d
    return _number(val), d


def _lines(src: str | os.PathLike[str] | IO[str]) -> Iterator[tuple[int, str]]:
    if isinstance(src, (str, os.PathLike)):
        with open(src, encoding="utf-8", errors="replace") as f:
            yield from enumerate(f, 1)
    else:
        yield from enumerate(src, 1)


class _Importer:
    """What both formats share: the pid of each thread, the calls begun and
    not yet ended, and the events held until every call that began before
    them has been written (so they leave in start-time order)."""

    def __init__(self, writer: TraceWriter, root: int | None) -> None:
        self.w = writer
        self.tgid: dict[int, int] = {} if root is None else {root: root}
        self.t0: int | None = None
        self.pending: dict[int, dict[str, Any]] = {}  # tid -> the call begun
        self.held: list[tuple[int, int, int, dict[str, Any]]] = []
        self.seq = 0
        self.latest = 0

    #: how far behind the latest time an event is held (ns): perf's lines
    #: from different CPUs can be slightly out of order
    WINDOW = 1_000_000_000

    def time(self, ns: int) -> int:
        if self.t0 is None:
            self.t0 = ns
        self.latest = max(self.latest, ns - self.t0)
        return ns - self.t0

    def hold(self, t: int, order: int, tid: int, ev: dict[str, Any]) -> None:
        self.seq += 1
        heapq.heappush(self.held, (t, order, self.seq, {"tid": tid, **ev}))

    def release(self, everything: bool = False) -> None:
        first = min(((p["t"], p["line"]) for p in self.pending.values()), default=None)
        while self.held and (everything or (
                self.held[0][0] <= self.latest - self.WINDOW
                and (first is None or self.held[0][:2] < first))):  # fmt: skip
            t, _, _, ev = heapq.heappop(self.held)
            tid = ev.pop("tid")
            pid = self.tgid.get(tid, tid)
            self.w.write({"k": ev.pop("k"), "t": t, "pid": pid, "tid": tid, "cpu": None, **ev})

    def call(self, tid: int, name: str, args: list[int | None], r: int | None, d: int | None,
             t: int, line: int, extra: dict[str, Any], thread: bool | None) -> None:  # fmt: skip
        """A whole call: its sys event, and fork for a new child."""
        ev: dict[str, Any] = {"k": "sys", "nr": name, "a": args, "r": r, "d": d, **extra}
        self.hold(t, line, tid, ev)
        if name in ("clone", "clone3", "fork", "vfork") and r is not None and r > 0:
            if thread:
                self.tgid[r] = self.tgid.get(tid, tid)
            else:
                self.tgid.setdefault(r, r)
            end = t + (d or 0)
            self.hold(end, line, tid, {"k": "fork", "child": r, "thread": thread})
        self.release()

    def exit(self, tid: int, t: int, line: int, code: int, extra: dict[str, Any]) -> None:
        self.hold(t, line, tid, {"k": "exit", "code": code, **extra})
        self.release()

    def abandon(self, tid: int) -> None:
        """The call ``tid`` began never returns (the thread exited in it, or
        the trace stops): written with r null."""
        p = self.pending.pop(tid, None)
        if p is None:
            return
        try:
            a, extra, thread = p["parse"]()
        except _NotKept:
            return
        self.call(tid, p["name"], a, None, None, p["t"], p["line"], extra, thread)

    def finish(self) -> None:
        """The end of the input: every call still begun is abandoned."""
        for tid in list(self.pending):
            self.abandon(tid)
        self.release(everything=True)


def _ioctl_cmd(text: str) -> int:
    """An ioctl's command; _NotKept unless it is userfaultfd's."""
    try:
        cmd = _value(text)
    except _LineError:
        if text.strip().startswith("UFFDIO"):
            raise
        raise _NotKept from None  # another driver's ioctl (TCGETS, ...)
    if cmd is None or (cmd >> 8) & 0xFF != C.UFFDIO:
        raise _NotKept
    return cmd


def _strace_args(name: str, text: str) -> tuple[list[int | None], dict[str, Any], bool | None]:
    """A kept call's argument text as strace printed it: (a, extra keys,
    CLONE_THREAD for a clone); None for an ioctl that is not userfaultfd's."""
    items = _split(text)
    extra: dict[str, Any] = {}
    thread: bool | None = None
    if name == "ioctl":
        if len(items) < 2:
            raise _LineError("ioctl needs a fd and a command")
        cmd = _ioctl_cmd(items[1])
        fd = _value(items[0])
        a: list[int | None] = [fd, cmd]
        if len(items) > 2:
            arg = items[2]
            if arg.startswith("{"):
                fields = _fields(arg)
                names = UFFD_STRUCTS.get(cmd)
                if names is None:
                    raise _LineError(f"no struct layout known for ioctl {cmd:#x}")
                missing = [n for n in names if n not in fields]
                if missing:
                    raise _LineError(f"the struct lacks {', '.join(missing)}")
                extra["mem"] = [_value(fields[n]) for n in names]
                a.append(None)
            else:
                a.append(_value(arg))
        return a, extra, None
    if name == "clone3":
        if not items or not items[0].startswith("{"):
            raise _LineError("clone3's argument is not a struct")
        fields = _fields(items[0])
        # struct clone_args (include/uapi/linux/sched.h): the words strace
        # leaves out are 0
        order = ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
                 "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")  # fmt: skip
        words = [_value(fields[k]) if k in fields else 0 for k in order]
        extra["mem"] = words
        flags = words[0] or 0
        thread = bool(flags & C.CLONE_THREAD)
        return [None, *[_value(x) for x in items[1:]]], extra, thread
    if name == "clone":
        # strace prints clone's arguments by name, in its own order
        fields = {}
        for item in items:
            k, eq, v = item.partition("=")
            if not eq:
                raise _LineError(f"clone argument {item!r} has no name")
            fields[k.strip()] = v.strip()
        slots = {"flags": 0, "child_stack": 1, "parent_tid": 2, "parent_tidptr": 2,
                 "child_tidptr": 3, "child_tid": 3, "tls": 4, "newtls": 4}  # fmt: skip
        a = [0, 0, 0, 0, 0]
        for k, v in fields.items():
            if k not in slots:
                raise _LineError(f"unknown clone argument {k!r}")
            a[slots[k]] = _value(v) if not v.startswith("[") else None
        thread = bool((a[0] or 0) & C.CLONE_THREAD)
        return a, extra, thread
    values = [_value(x) for x in items]
    if name in ("openat", "execve") and items:
        idx = 1 if name == "openat" else 0
        if len(items) > idx and items[idx].startswith('"'):
            extra["path"] = _unquote(items[idx])
    if name == "mremap" and len(values) == 4:
        values.append(0)  # strace leaves out new_addr where the flags ignore it
    want = len(ARG_NAMES[name])
    if name == "openat" and len(values) == 3:
        values.append(0)  # no mode without O_CREAT/O_TMPFILE
    if len(values) != want:
        raise _LineError(f"{name} takes {want} arguments, the line has {len(values)}")
    if name in ("fork", "vfork"):
        thread = False
    return values, extra, thread


def _unquote(text: str) -> str:
    body = text.split('"', 1)[1].rsplit('"', 1)[0]
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return body


class _NotKept(Exception):
    """A call of a kept name that is not about memory (a tty ioctl)."""


_STRACE = re.compile(
    r"^(?:\[pid\s+(?P<pid1>\d+)\]\s*|(?P<pid2>\d+)\s+)?"
    r"(?:(?P<ts>\d+\.\d+|\d\d:\d\d:\d\d(?:\.\d+)?)\s+)?(?P<body>.*?)\s*$"
)
_CALL = re.compile(r"(?P<name>[a-z_0-9]+)\(")
_RESUMED = re.compile(r"<\.\.\. (?P<name>[a-z_0-9]+) resumed>\s?(?P<rest>.*)$")
_UNFINISHED = re.compile(r"\s*<unfinished \.\.\.>$")
_EXITED = re.compile(r"\+\+\+ exited with (?P<code>\d+) \+\+\+$")
_KILLED = re.compile(r"\+\+\+ killed by (?P<sig>SIG[A-Z0-9]+)(?: \(core dumped\))? \+\+\+$")


def _strace_time(ts: str) -> int:
    if ":" in ts:  # -tt: the time of day
        h, m, s = ts.split(":")
        return (int(h) * 3600 + int(m) * 60) * 1_000_000_000 + int(Decimal(s) * 1_000_000_000)
    return int(Decimal(ts) * 1_000_000_000)


def import_strace(
    src: str | os.PathLike[str] | IO[str],
    out: str | os.PathLike[str],
    host: dict[str, Any] | None = None,
    command: Iterable[str] | None = None,
    pid: int | None = None,
) -> int:
    """Convert ``strace -f -ttt -T`` output into a pagetab trace.

    Reads what ``strace -f -ttt -T -o FILE PROGRAM`` writes (also without
    ``-f``, with ``-tt``, with ``-e trace=memory,...``, with ``-y``, or to
    stderr with ``[pid N]`` prefixes). ``<unfinished ...>`` and
    ``<... NAME resumed>`` halves are joined per thread; clone, clone3,
    fork and vfork that return a child also give a ``fork`` event,
    ``+++ exited with N +++`` an ``exit`` event (``+++ killed by SIG +++``:
    code 128 + the signal, and ``signal``); signals (``--- SIG... ---``)
    and strace's own messages are skipped.

    strace stops the program with ptrace at every call's entry and exit, so
    its times are distorted (each call is slowed by two context switches
    to the tracer, and the gaps between calls grow): the header says
    ``timing: "ptrace"``, and ``d`` (from ``-T``) is the time between the
    two stops, not the kernel's time in the call.

    Parameters
    ----------
    src : path or text stream
        strace's output.
    out : path
        The trace to write (gzip JSON Lines, see :mod:`pagetab.tracefile`).
    host : dict, optional
        The machine the trace was recorded on, as
        :func:`pagetab.tracefile.host_info` gives it (the default: this
        machine's, right only if strace ran here).
    command : iterable of str, optional
        The traced command, for the header.
    pid : int, optional
        The traced process, for the lines strace prints without a pid
        (without ``-f``, or before a second process exists when writing to
        stderr); by default the first line's pid, or 0 if it has none.

    Returns
    -------
    int
        The number of events written.

    Raises
    ------
    ValueError
        A kept call's line cannot be read (its number and text are given),
        a flag or errno name is unknown, a line of a kept call has no
        timestamp (strace ran without ``-ttt``/``-tt``), or a call resumes
        without having begun.
    """
    header = Header(
        "strace", "ptrace", list(command or []), host if host is not None else host_info()
    )
    with TraceWriter(out, header) as w:
        imp = _Importer(w, pid)
        root = pid
        for n, raw in _lines(src):
            text = raw.rstrip("\n")
            try:
                root = _strace_line(imp, n, text, root)
            except _LineError as e:
                raise ValueError(f"line {n}: {e}: {text.strip()!r}") from None
        imp.finish()
        return w.events


def _strace_line(imp: _Importer, n: int, text: str, root: int | None) -> int | None:
    """One line of strace's output into ``imp``; returns the root pid."""
    m = _STRACE.match(text)
    if m is None:
        return root
    body = m.group("body")
    if not body or body.startswith(("---", "strace: ")):
        return root
    lead = m.group("pid1") or m.group("pid2")
    if lead is not None:
        tid = int(lead)
        if root is None:
            root = tid
            imp.tgid.setdefault(tid, tid)
    else:
        if root is None:
            root = 0
            imp.tgid.setdefault(0, 0)
        tid = root
    resumed = _RESUMED.match(body)
    call = _CALL.match(body)
    name = resumed.group("name") if resumed else call.group("name") if call else None
    exited = _EXITED.match(body) or _KILLED.match(body)
    if name not in KEPT and not exited:
        return root  # another call, or not a call (the program's output)
    if m.group("ts") is None:
        raise _LineError("no timestamp (run strace with -ttt)")
    t = imp.time(_strace_time(m.group("ts")))
    if exited:
        imp.abandon(tid)
        if exited.re is _EXITED:
            imp.exit(tid, t, n, int(exited.group("code")), {})
        else:
            sig = exited.group("sig")
            if sig not in C.SIGNALS:
                raise _LineError(f"unknown signal {sig!r}")
            imp.exit(tid, t, n, 128 + C.SIGNALS[sig], {"signal": C.SIGNALS[sig]})
        imp.release()
        return root
    assert name is not None
    if resumed:
        p = imp.pending.pop(tid, None)
        if p is None or p["name"] != name:
            raise _LineError(f"{name} resumes without having begun in thread {tid}")
        whole = p["text"] + resumed.group("rest")
        t, n = p["t"], p["line"]
    else:
        whole = body[len(name) + 1 :]
        u = _UNFINISHED.search(whole)
        if u is not None:
            if tid in imp.pending:
                raise _LineError(f"thread {tid} begins {name} inside {imp.pending[tid]['name']}")
            begun = whole[: u.start()]
            imp.pending[tid] = {
                "name": name,
                "text": begun,
                "t": t,
                "line": n,
                "parse": lambda: _strace_args(name, begun.rstrip(", ")),
            }
            return root
    close = _close_paren("(" + whole, 0)
    if close < 0:
        raise _LineError(f"{name}'s arguments do not end")
    args_text = whole[: close - 1]
    try:
        args, extra, thread = _strace_args(name, args_text)
    except _NotKept:
        imp.release()
        return root
    r, d = _ret(whole[close:])
    imp.call(tid, name, args, r, d, t, n, extra, thread)
    return root


_PERF = re.compile(
    r"^\s*(?P<time>\d+(?:\.\d+)?|\?)\s+\(\s*(?:(?P<dur>\d+(?:\.\d+)?)\s*ms)?\s*\):\s+"
    r"(?P<comm>.*?)/(?P<tid>\d+)\s+(?P<body>.*?)\s*$"
)
_CONTINUED = re.compile(r"\.\.\. \[continued\]: (?P<name>[a-z_0-9]+)\(\)\)\s*(?P<ret>.*)$")
_LOST = re.compile(r"LOST (?P<n>\d+) events!")


def _perf_args(name: str, text: str) -> tuple[list[int | None], dict[str, Any], bool | None]:
    """``perf trace``'s ``name: value, ...``: the arguments in the kernel's
    order, with the ones perf leaves out (zero) as 0."""
    names = ARG_NAMES[name]
    vals: dict[str, int | None] = {}
    extra: dict[str, Any] = {}
    for item in _split(text):
        k, colon, v = item.partition(":")
        k = k.strip()
        if not colon or k not in names:
            raise _LineError(f"unknown {name} argument {item!r}")
        v = v.strip()
        if name == "ioctl" and k == "cmd":
            vals[k] = _ioctl_cmd(v)
        elif v.startswith('"'):
            extra["path"] = _unquote(v)
            vals[k] = None
        else:
            vals[k] = _value(v, _PREFIX.get((name, k), ""))
    a = [vals.get(k, 0) for k in names]
    if name == "mmap" and "fd" not in vals and (a[3] or 0) & C.MAP_ANONYMOUS:
        # perf's mmap flags beautifier masks fd and offset of an anonymous
        # map (tools/perf/trace/beauty/mmap.c); the kernel ignores them
        a[4] = -1
    thread: bool | None = None
    if name == "clone":
        thread = bool((a[0] or 0) & C.CLONE_THREAD)
    elif name in ("fork", "vfork"):
        thread = False
    if name == "ioctl" and "cmd" not in vals:
        raise _NotKept  # cmd 0 is no userfaultfd ioctl
    return a, extra, thread


def import_perf_trace(
    src: str | os.PathLike[str] | IO[str],
    out: str | os.PathLike[str],
    host: dict[str, Any] | None = None,
    command: Iterable[str] | None = None,
) -> int:
    """Convert ``perf trace`` output into a pagetab trace.

    Reads the lines ``perf trace -o FILE PROGRAM`` writes (also with
    ``-T`` and ``-e mmap,munmap,...``)::

        0.526 ( 0.019 ms): true/4745 mmap(len: 8192, prot: READ|WRITE,
        flags: PRIVATE|ANONYMOUS) = 0x7ffb47882000

    (one line)
    perf prints arguments by name and leaves out those that are zero
    (they are 0 here) and an anonymous mmap's fd and offset (fd is -1
    here); a call split by other threads' events is printed begun
    (``... ``) and later ``... [continued]: NAME())``, joined here per
    thread, and a continued half without its beginning (a new child's
    return from clone, the execve that started tracing) is skipped.
    ``LOST N events!`` counts into the footer's ``lost``.

    perf trace reads the kernel's syscall tracepoints without stopping the
    program, so ``d`` is the kernel's time in the call (``timing:
    "kernel"``), in perf's microsecond resolution. perf prints each thread's
    id but not its process: a thread is given its parent's pid when a
    traced ``clone`` with ``CLONE_THREAD`` created it; clone3 passes its
    flags in memory perf does not print, so a clone3 child's ``fork``
    event has ``thread`` null and the child is its own pid. ioctl's struct
    (``mem``) is not printed either.

    Parameters
    ----------
    src : path or text stream
        perf trace's output.
    out : path
        The trace to write.
    host : dict, optional
        The recording machine (default :func:`pagetab.tracefile.host_info`).
    command : iterable of str, optional
        The traced command, for the header.

    Returns
    -------
    int
        The number of events written.

    Raises
    ------
    ValueError
        A kept call's line cannot be read (its number and text are given),
        or a flag or errno name is unknown.
    """
    header = Header("perf-trace", "kernel", list(command or []),
                    host if host is not None else host_info())  # fmt: skip
    with TraceWriter(out, header) as w:
        imp = _Importer(w, None)
        for n, raw in _lines(src):
            text = raw.rstrip("\n")
            try:
                _perf_line(imp, n, text)
            except _LineError as e:
                raise ValueError(f"line {n}: {e}: {text.strip()!r}") from None
        imp.finish()
        return w.events


def _perf_line(imp: _Importer, n: int, text: str) -> None:
    lost = _LOST.search(text)
    if lost:
        imp.w.lost += int(lost.group("n"))
        return
    m = _PERF.match(text)
    if m is None:
        return
    tid = int(m.group("tid"))
    body = m.group("body")
    cont = _CONTINUED.match(body)
    call = _CALL.match(body)
    name = cont.group("name") if cont else call.group("name") if call else None
    if name not in KEPT:
        return
    assert name is not None
    dur = m.group("dur")
    d = None if dur is None else int(Decimal(dur) * 1_000_000)
    if cont:
        p = imp.pending.pop(tid, None)
        if p is None:
            return  # begun before tracing, or a child's return from clone
        if p["name"] != name:
            raise _LineError(f"{name} continues {p['name']} in thread {tid}")
        r, _ = _ret(cont.group("ret"))
        imp.call(tid, name, p["a"], r, d, p["t"], p["line"], p["extra"], p["thread"])
        _perf_exit(imp, tid, name, p["a"], p["t"], p["line"])
        return
    if m.group("time") == "?":
        raise _LineError("a call without its time")
    try:
        t = imp.time(int(Decimal(m.group("time")) * 1_000_000))
    except InvalidOperation:
        raise _LineError("cannot read the time") from None
    rest = body[len(name) :]
    close = _close_paren(rest, 0)
    if close < 0:
        raise _LineError(f"{name}'s arguments do not end")
    try:
        args, extra, thread = _perf_args(name, rest[1:close])
    except _NotKept:
        return
    tail = rest[close + 1 :].strip()
    if tail == "...":
        if tid in imp.pending:
            raise _LineError(f"thread {tid} begins {name} inside {imp.pending[tid]['name']}")
        imp.pending[tid] = {"name": name, "a": args, "t": t, "line": n, "extra": extra,
                            "thread": thread, "parse": lambda: (args, extra, thread)}  # fmt: skip
        return
    r, _ = _ret(tail)
    imp.call(tid, name, args, r, d, t, n, extra, thread)
    _perf_exit(imp, tid, name, args, t, n)


def _perf_exit(imp: _Importer, tid: int, name: str, args: list[int | None], t: int,
               line: int) -> None:  # fmt: skip
    """perf prints no exit lines: exit and exit_group give the exit event."""
    if name in ("exit", "exit_group"):
        imp.exit(tid, t, line, (args[0] or 0) & 0xFF, {})
