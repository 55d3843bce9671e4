"""pagetab's trace format: a program's memory-management calls and faults.

A trace is gzip-compressed JSON Lines, read and written as a stream, so a
trace of millions of events never has to be in memory at once
(docs/trace-format.md describes it field by field):

- line 1, the header: ``{"format": "pagetab-trace", "version": 1, ...}``
  with what the trace was recorded on (``host``: kernel, arch, CPU model,
  page size, THP settings, CPU count), how (``source``: ``tracefs``,
  ``strace``, ``perf-trace``; ``timing``: ``kernel`` when each call's time
  is the kernel's own, ``ptrace`` when a tracer stopped the program around
  each call) and the command;
- one event per line, each with its kind ``k``, time ``t`` (ns since the
  trace began), process ``pid`` (the thread group), thread ``tid`` and
  ``cpu`` (null where unknown);
- the footer, ``{"k": "end", "events": N, "lost": L}``: its absence means
  the trace was cut short, and reading it is an error.

Event kinds (``KINDS``): ``sys`` (a system call: ``nr`` its name, ``a`` its
arguments, ``r`` the kernel's return value, negative errno on failure,
``d`` the kernel's time in the call in ns or null, ``mem`` the words of
the structure an ioctl's argument points to, where recorded), ``fault``
(``a`` the address, ``w`` 1 for a write, ``u`` 1 for a user-mode fault),
``tlb`` (x86 ``tlb:tlb_flush``: ``reason`` and ``pages``, -1 for all),
``lock`` (mmap_lock: ``ev`` start/acquired/released, ``write``),
``fork`` (``child``, ``thread``: a new thread rather than a process),
``maps`` (the process's VMAs, ``when`` exec or exit, each
``[start, end, perms, offset, path]``; at exit also ``present``, the runs
``[start, end)`` of present pages) and ``exit`` (``code``).
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

FORMAT = "pagetab-trace"
#: the version this module writes; it reads every version up to it
VERSION = 1
KINDS = ("sys", "fault", "tlb", "lock", "fork", "maps", "exit")
SOURCES = ("tracefs", "strace", "perf-trace")
TIMINGS = ("kernel", "ptrace", "none")
#: the keys each kind of event must have (beyond k, t, pid, tid, cpu)
REQUIRED: dict[str, tuple[str, ...]] = {
    "sys": ("nr", "a", "r"),
    "fault": ("a", "w"),
    "tlb": ("reason", "pages"),
    "lock": ("ev", "write"),
    "fork": ("child", "thread"),
    "maps": ("when", "vmas"),
    "exit": ("code",),
}
COMMON = ("t", "pid", "tid")
HOST_KEYS = ("kernel", "arch", "cpu_model", "page_size", "thp", "thp_sizes", "cpus")


@dataclass
class Header:
    """What a trace was recorded on and how."""

    source: str
    """What made it (``SOURCES``): "tracefs" (``pagetab record``), "strace" or
    "perf-trace" (imported)."""
    timing: str
    """Whose the calls' times are (``TIMINGS``): "kernel" (the kernel's own),
    "ptrace" (a tracer stopped the program around each call) or "none"."""
    command: list[str]
    """The recorded command line."""
    host: dict[str, Any]
    """The machine it was recorded on (``HOST_KEYS``: kernel, arch, cpu_model,
    page_size, thp, thp_sizes, cpus; ``host_info``)."""
    version: int = VERSION
    """The trace format's version."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The header's other keys (``pagetab record``'s clock, uprobe_ioctl,
    uprobe_at)."""

    def as_dict(self) -> dict[str, Any]:
        """The header line's JSON object."""
        return {"format": FORMAT, "version": self.version, "source": self.source,
                "timing": self.timing, "command": self.command, "host": self.host,
                **self.extra}  # fmt: skip


def host_info() -> dict[str, Any]:
    """This machine as a trace header records it (Linux; fields that cannot
    be read are null)."""

    def read(path: str) -> str | None:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return None

    def selected(text: str | None) -> str | None:
        # "always [madvise] never" -> "madvise"
        if text is None or "[" not in text:
            return text
        return text.split("[", 1)[1].split("]", 1)[0]

    model = None
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    sizes: dict[str, str | None] = {}
    base = "/sys/kernel/mm/transparent_hugepage"
    if os.path.isdir(base):
        for d in sorted(os.listdir(base)):
            if d.startswith("hugepages-") and d.endswith("kB"):
                sizes[str(int(d[10:-2]) * 1024)] = selected(read(f"{base}/{d}/enabled"))
    u = os.uname()
    return {"kernel": u.release, "arch": u.machine, "cpu_model": model,
            "page_size": os.sysconf("SC_PAGE_SIZE"), "thp": selected(read(f"{base}/enabled")),
            "thp_sizes": sizes, "cpus": os.cpu_count()}  # fmt: skip


class TraceWriter:
    """Writes a trace as a stream: ``with TraceWriter(path, header) as w:
    w.write({...})``. The footer is written on a clean close only, so a
    trace whose writer died is recognisably cut short.

    Parameters
    ----------
    path
        The file to write (gzip-compressed JSON Lines; replaced if it exists).
    header
        What the trace was recorded on and how: its first line.

    Attributes
    ----------
    path : str
        As given, as a str.
    events : int
        Events written so far (the footer's count).
    lost : int
        Events the recording lost, for the footer (set it before closing; 0
        by default).
    """

    def __init__(self, path: str | os.PathLike[str], header: Header) -> None:
        self.path = os.fspath(path)
        self.events = 0
        self.lost = 0
        self._f: IO[bytes] = io.BufferedWriter(gzip.open(self.path, "wb", compresslevel=6))
        self._f.write(orjson.dumps(header.as_dict()) + b"\n")

    def write(self, event: Mapping[str, Any]) -> None:
        """Append one event (a dict with ``k`` and the keys of its kind)."""
        self._f.write(orjson.dumps(event) + b"\n")
        self.events += 1

    def close(self) -> None:
        """Write the footer and close."""
        if self._f.closed:
            return
        self._f.write(orjson.dumps({"k": "end", "events": self.events, "lost": self.lost}) + b"\n")
        self._f.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self._f.close()  # no footer: the trace is marked incomplete


class TraceReader:
    """A trace read as a stream. ``header`` is read on opening; iterating
    yields each event as a dict, checked, in file order, and raises
    ValueError naming the line where the trace is corrupt, of an unknown
    version or kind, or cut short (no footer).

    Parameters
    ----------
    path
        The trace file (ValueError if its first line is not a valid header).

    Attributes
    ----------
    path : str
        As given, as a str.
    header : Header
        The trace's header.
    lost : int
        Events the recording lost, as the footer says (0 until an iteration
        reaches it).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.lost = 0
        with self._open() as f:
            first = self._line(f, 1)
        if first is None:
            raise ValueError(f"{self.path}: empty file, not a {FORMAT} trace")
        self.header = self._header(first)

    def _open(self) -> IO[bytes]:
        return io.BufferedReader(gzip.open(self.path, "rb"), 1 << 16)

    def _line(self, f: IO[bytes], n: int) -> dict[str, Any] | None:
        try:
            text = f.readline()
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise ValueError(f"{self.path}: line {n}: unreadable ({e})") from None
        if not text:
            return None
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"{self.path}: line {n}: not JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{self.path}: line {n}: not a JSON object")
        return obj

    def _header(self, obj: dict[str, Any]) -> Header:
        if obj.get("format") != FORMAT:
            raise ValueError(f"{self.path}: line 1: not a {FORMAT} trace")
        version = obj.get("version")
        if not isinstance(version, int) or not 1 <= version <= VERSION:
            raise ValueError(f"{self.path}: line 1: version {version!r}; this pagetab "
                             f"reads versions 1 to {VERSION}")  # fmt: skip
        for key, choices in (("source", SOURCES), ("timing", TIMINGS)):
            if obj.get(key) not in choices:
                raise ValueError(f"{self.path}: line 1: {key} {obj.get(key)!r} is not "
                                 f"one of {', '.join(choices)}")  # fmt: skip
        host = obj.get("host")
        if not isinstance(host, dict) or any(k not in host for k in HOST_KEYS):
            raise ValueError(f"{self.path}: line 1: host must give {', '.join(HOST_KEYS)}")
        known = {"format", "version", "source", "timing", "command", "host"}
        return Header(obj["source"], obj["timing"], list(obj.get("command") or []), host,
                      version, {k: v for k, v in obj.items() if k not in known})  # fmt: skip

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self._open() as f:
            self._line(f, 1)
            n = 1
            count = 0
            while True:
                n += 1
                ev = self._line(f, n)
                if ev is None:
                    raise ValueError(f"{self.path}: line {n}: the trace ends without its "
                                     "footer (cut short?)")  # fmt: skip
                kind = ev.get("k")
                if kind == "end":
                    if ev.get("events") != count:
                        said = ev.get("events")
                        raise ValueError(f"{self.path}: line {n}: the footer counts "
                                         f"{said} events, the file has {count}")  # fmt: skip
                    self.lost = int(ev.get("lost") or 0)
                    if self._line(f, n + 1) is not None:
                        raise ValueError(f"{self.path}: line {n + 1}: data after the footer")
                    return
                need = REQUIRED.get(kind)  # type: ignore[arg-type]
                if need is None:
                    raise ValueError(f"{self.path}: line {n}: unknown event kind {kind!r}; "
                                     f"kinds: {', '.join(KINDS)}")  # fmt: skip
                missing = [k for k in COMMON + need if k not in ev]
                if missing:
                    raise ValueError(f"{self.path}: line {n}: {kind} event lacks "
                                     f"{', '.join(missing)}")  # fmt: skip
                count += 1
                yield ev


def read_trace(path: str | os.PathLike[str]) -> TraceReader:
    """Open a trace for streaming (see TraceReader)."""
    return TraceReader(path)
