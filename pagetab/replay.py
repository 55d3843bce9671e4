"""Replay a recorded program on any architecture, kernel policy and CPU count.

``replay(trace, arch=..., policy=...)`` rebuilds each recorded process's
address space (``tracefile``) call by call and fault by fault:

- a process starts from the VMAs and present pages its trace recorded right
  after exec (the kernel made them while loading the program, before any
  system call could be traced);
- each thread runs on its own CPU (thread ``i`` on CPU ``i % cpus``), so a
  move's flushes reach the CPUs that ran the process;
- where the recording kernel chose an address (mmap without MAP_FIXED,
  mremap that moved without MREMAP_FIXED), the replay asks for that same
  address (MAP_FIXED_NOREPLACE, MREMAP_FIXED): the kernel's choice depends
  on ASLR and on mappings a trace does not show, and a move's cost depends
  on its destination's alignment. Every such request is counted
  (``ReplayResult.translated``);
- each user fault, and each kernel-mode fault on a user address (the
  kernel writing a buffer), is an access from the thread's CPU;
- a stack fault below ``[stack]`` grows it, as ``expand_stack`` does.

Every call's result is compared with the recorded one, and at each
process's exit its VMAs and present pages with those the kernel had; every
difference is listed in ``ReplayResult.differences``, never hidden. Calls
pagetab does not simulate (some madvise advice, UFFDIO_CONTINUE, ...) are
counted in ``skipped`` with the reason, and a later difference they cause
is listed too.
"""

from __future__ import annotations

import errno
import heapq
import os
import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .arch import Arch
from .arch import arch as resolve_arch
from .argcheck import check_int
from .constants import (
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_NONBLOCK,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_STACK,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    UFFDIO_API,
    UFFDIO_COPY,
    UFFDIO_MOVE,
    UFFDIO_REGISTER,
    UFFDIO_REGISTER_MODE_MISSING,
    UFFDIO_REGISTER_MODE_WP,
    UFFDIO_UNREGISTER,
    UFFDIO_ZEROPAGE,
)
from .contention import ContendResult, ThreadSpec, run_concurrent
from .fork import file_copies
from .mm_types import MAX_CPUS, File, new_anon_vma
from .parallel import check_executor, run_jobs
from .plot import plot_calls, plot_cumulative, save_figure
from .policy import Policy
from .policy import policies as all_policies
from .policy import policy as resolve_policy
from .results import Compared
from .space import AddressSpace
from .stats import COUNTER_NAMES
from .trace_layout import SPAN_SHIFT, Layout, addresses, spans
from .tracefile import TraceReader, read_trace
from .userfaultfd import FEATURES, Userfaultfd
from .vma import find_vma

#: mmap flags that change nothing pagetab simulates: MAP_DENYWRITE,
#: MAP_EXECUTABLE, MAP_NONBLOCK, MAP_STACK (6.7+ makes a stack VM_NOHUGEPAGE:
#: not modelled)
IGNORED_MAP_FLAGS = MAP_DENYWRITE | MAP_EXECUTABLE | MAP_NONBLOCK | MAP_STACK
#: special mappings: their present pages are the kernel's (vvar, vdso)
SPECIAL = ("[vvar]", "[vdso]", "[vvar_vclock]", "[vsyscall]", "[uprobes]")
#: stack_guard_gap: how far below [stack] a fault still grows it (mm/mmap.c)
STACK_GUARD_GAP = 256 << 12
ENDS = ("exit", "exit_group")
#: the tlb:tlb_flush reason of a flush the calling CPU does for its own mm:
#: TLB_LOCAL_MM_SHOOTDOWN (arch/x86/mm/tlb.c flush_tlb_func traces it once per
#: flush_tlb_mm_range on the initiating CPU; TLB_LOCAL_SHOOTDOWN is mm NULL,
#: a kernel range)
LOCAL_FLUSH_REASONS = ("3",)
#: Chrome trace: the recorded kernel time of CPU n's calls is on track n + this
KERNEL_TRACK = 1000
#: clone(2) flags (include/uapi/linux/sched.h): a child that shares the mm
CLONE_VM = 0x00000100
#: events of processes not known yet kept for a fork the trace has not shown
#: yet (a child runs before its parent's clone returns), at most
EARLY_EVENTS = 1 << 16


@dataclass
class ReplayedCall:
    """One system call, as recorded and as replayed."""

    t: int
    """When the call began (ns since the trace began)."""
    pid: int
    """The process that made it (the thread group)."""
    tid: int
    """The thread that made it."""
    cpu: int
    """The simulated CPU it ran on (thread ``i`` of its process on CPU ``i % cpus``)."""
    name: str
    """The system call's x86-64 name ("mmap", "mremap", "ioctl", ...)."""
    args: list[int]
    """Its arguments as recorded (0 where the trace has none: a path or a
    structure)."""
    recorded: int
    """The kernel's return value (negative errno on failure)."""
    replayed: int
    """pagetab's, in the same convention."""
    recorded_ns: int | None
    """The kernel's time in the call (ns), where the trace has it."""
    estimated_ns: float | None
    """pagetab's estimate of the call (ns); None where pagetab prices no cost."""
    counters: dict[str, int] = field(default_factory=dict)
    """What a priced call did: an mremap's counters that are not 0 (with
    ``tables_freed``), a UFFDIO_MOVE's; empty for other calls."""
    translated: str = ""
    """What the replay asked for instead of the recorded call, if anything."""
    recorded_flushes: int | None = None
    """The kernel's own flushes (x86 tlb:tlb_flush, local reasons) during the
    call; None where the trace has no flush events."""
    cold_ns: float = 0.0
    """Of ``estimated_ns``, what the call paid for the caches and TLBs the
    thread's faults since its previous call took (``Arch.cold_call_ns``)."""

    @property
    def simulated_flushes(self) -> int:
        """pagetab's flushes of the call, to set beside ``recorded_flushes``:
        its moves' flush_tlb_range calls and its unmaps' (tlb_finish_mmu)."""
        return simulated_flushes(self.counters)


def simulated_flushes(counters: Mapping[str, int]) -> int:
    """The flushes a call's ``counters`` record: the moves' flush_tlb_range
    calls (``flush_calls``), the unmaps' (``unmap_flushes``) and reclaim's
    deferred flush done by flush_tlb_batched_pending
    (``batched_pending_flushes``)."""
    return sum(int(counters.get(k, 0))
               for k in ("flush_calls", "unmap_flushes", "batched_pending_flushes"))  # fmt: skip


@dataclass
class Difference:
    """A result of the replay that differs from the recording."""

    t: int
    """When (ns since the trace began): the call's start, or the process's exit."""
    pid: int
    """The process."""
    what: str
    """What differs: "<kind> result" (a call's return value), "VMAs at exit",
    "present anonymous pages at exit" or "present file pages at exit"."""
    recorded: Any
    """The kernel's side: the call's return value; at exit, text: the first VMA
    ranges only the kernel or only pagetab has, or the pages present."""
    replayed: Any
    """pagetab's side: its return value; at exit, how many VMAs it has, or text:
    the pages present."""


@dataclass
class KindTotal:
    """Totals over the calls of one kind (mremap, UFFDIO_MOVE, ...)."""

    calls: int = 0
    """Calls of the kind replayed."""
    estimated_ns: float = 0.0
    """pagetab's estimate of the priced ones, their cold part included (ns)."""
    recorded_ns: int = 0
    """The kernel's time in those of the calls that pagetab prices (ns)."""
    priced: int = 0
    """Calls pagetab priced (the others have no estimate)."""
    counters: Counter[str] = field(default_factory=Counter)
    """The priced calls' counters, summed (``ReplayedCall.counters``)."""
    recorded_flushes: int | None = None
    """Flushes of the priced calls, the kernel's: tlb:tlb_flush on the calling
    thread, local reasons (None without flush events)."""
    simulated_flushes: int = 0
    """pagetab's flushes of the priced calls (``simulated_flushes``: the moves',
    the unmaps' and pending reclaim ones)."""
    cold_ns: float = 0.0
    """Of ``estimated_ns``, the cold-call part (``ReplayedCall.cold_ns``)."""


#: the faults of each thread ``concurrent`` remembers: where it works lately
RECENT_FAULTS = 4096


@dataclass
class ThreadedMove:
    """A replayed call that moved or changed pages while other threads of
    its process existed, and what they paid for it (``replay(...,
    concurrent=N)``): an mremap or a UFFDIO_MOVE that moved pages, or a
    madvise(MADV_DONTNEED), munmap or mprotect to read-only over present
    pages (``call``: the concurrent model's ``mover``).

    The concurrent model (``run_concurrent``) runs the same call: ``size``
    bytes with ``present`` pages written, the source (and an mremap's
    destination) at the recorded one's offset within its PUD (the same PTE,
    PMD or PUD path), from the caller's CPU, while each other thread reads
    at random ``inside`` the range (one of its last RECENT_FAULTS faults
    fell there) or ``outside`` it (in a region of its own). A trace shows
    where a thread first touched memory, not where it reads later:
    ``places`` is that guess, and ``result`` the model's answer to it.
    """

    t: int  #: when the call began (ns from the trace's start)
    pid: int
    tid: int
    old_addr: int
    new_addr: int
    size: int  #: bytes moved
    present: int  #: pages present in them
    places: tuple[str, ...]  #: each other thread's place, "inside" or "outside"
    result: ContendResult | None = None
    call: str = "mremap"  #: the call: a key of ``contention.MOVERS``

    def row(self) -> dict[str, Any]:
        """One flat record: the move, then the model's (``ContendResult.row``)."""
        out: dict[str, Any] = {"t_ms": self.t / 1e6, "pid": self.pid, "tid": self.tid,
                               "call": self.call,
                               "old_addr": self.old_addr, "new_addr": self.new_addr,
                               "size": self.size, "present": self.present,
                               "places": ",".join(self.places)}  # fmt: skip
        if self.result is not None:
            out.update({f"model_{k}": v for k, v in self.result.row().items()
                        if k not in ("arch", "policy", "size", "mover")})  # fmt: skip
        return out


@dataclass
class ReplayResult:
    """What a replay did and how it compares with the recording."""

    trace: str
    """The trace's path, as given."""
    arch: str
    """The arch profile's name (``pt.archs()``)."""
    policy: str
    """The kernel policy's name (``pt.policies()``)."""
    cpus: int
    """CPUs of the simulated machine."""
    calls: list[ReplayedCall]
    """Every replayed system call, in order (only with ``keep_calls``)."""
    kinds: dict[str, KindTotal]
    """Totals per call kind ("mremap", "UFFDIO_MOVE", "mmap", ...)."""
    regions: Counter[str]
    """Estimated ns per region: the recorded path of the VMA a priced call
    acted on, "[heap]", "[stack]" or "anon"."""
    differences: list[Difference]
    """Every result that differs from the recording, in order (none: ``exact``)."""
    skipped: Counter[str]
    """What was not replayed, counted by reason (calls and processes pagetab
    does not simulate)."""
    translated: Counter[str]
    """What the replay did instead of what was recorded, counted by note
    (addresses the kernel chose, asked for; stack growth; ...)."""
    faults: int
    """Fault events replayed (user and kernel-mode, each an access)."""
    recorded_flushes: Counter[str]
    """Recorded x86 tlb:tlb_flush events by reason."""
    processes: int
    """Processes replayed."""
    events: int
    """Trace events read (the header and footer aside)."""
    comparable: bool = True
    """Whether the recorded times compare with the estimates: the replay's
    arch is the recording host's, and the times are the kernel's own
    (tracefs), not a ptrace-stopped program's (strace)."""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    """Chrome trace events of the calls, lock holds and flushes (``timeline``)."""
    cold_priced: bool = False
    """Whether calls paid a cold price: the arch's calibration measured one
    (``Arch.cold_call``)."""
    ratio: float | None = None
    """The baseline policy's estimate over this one's (``compare_replay``)."""
    concurrent: list[ThreadedMove] = field(default_factory=list)
    """The largest moves made while other threads existed, with what the
    concurrent model says those threads paid (``concurrent``)."""

    @property
    def estimated_ns(self) -> float:
        """pagetab's estimate of all the priced calls (ns)."""
        return sum(k.estimated_ns for k in self.kinds.values())

    @property
    def recorded_ns(self) -> int:
        """The kernel's recorded time in the priced calls (ns)."""
        return sum(k.recorded_ns for k in self.kinds.values())

    @property
    def simulated_flushes(self) -> int:
        """pagetab's flushes over the priced calls (``simulated_flushes``)."""
        return sum(k.simulated_flushes for k in self.kinds.values())

    def row(self) -> dict[str, Any]:
        """One flat record: the setup, exactness, and the priced calls'
        estimate beside the kernel's time (where comparable)."""
        rec = self.recorded_ns if self.comparable else None
        row = {"trace": os.path.basename(self.trace), "arch": self.arch, "policy": self.policy,
               "cpus": self.cpus, "exact": self.exact, "differences": len(self.differences),
               "events": self.events, "faults": self.faults,
               "priced_calls": sum(k.priced for k in self.kinds.values()),
               "estimated_us": self.estimated_ns / 1e3,
               "recorded_us": None if rec is None else rec / 1e3,
               "error_pct": (self.estimated_ns - rec) / rec * 100 if rec else None}  # fmt: skip
        for kind in ("mremap", "UFFDIO_MOVE"):
            k = self.kinds.get(kind)
            row[f"{kind}_calls"] = k.calls if k else 0
            row[f"{kind}_estimated_us"] = k.estimated_ns / 1e3 if k else 0.0
        row["ratio"] = self.ratio
        return row

    @property
    def exact(self) -> bool:
        """Whether every checked result matched the recording."""
        return not self.differences

    def errors(self, kind: str = "mremap") -> list[float]:
        """Per-call relative error of the estimate against the recorded
        kernel time, for the kept calls of ``kind`` (needs ``keep_calls``)."""
        return [(c.estimated_ns - c.recorded_ns) / c.recorded_ns for c in self.calls
                if _kind(c) == kind and c.estimated_ns is not None and c.recorded_ns]  # fmt: skip

    def chrome_trace(self) -> dict[str, Any]:
        """The replay's timeline as Chrome trace-event JSON (opens in
        Perfetto and chrome://tracing): one track per simulated CPU with
        each priced call at its recorded start and its estimated length,
        the page-table lock holds and flushes inside each mremap, and
        beside each CPU a track of the recorded kernel time of the same
        calls. Needs ``replay(..., timeline=True)``."""
        if not self.timeline:
            raise ValueError("chrome_trace: replay with timeline=True to keep the timeline")
        meta: list[dict[str, Any]] = []
        seen: set[tuple[int, int]] = set()
        for e in self.timeline:
            key = (e["pid"], e["tid"])
            if key not in seen:
                seen.add(key)
                name = (f"CPU {e['tid']} ({self.arch}, {self.policy})" if e["tid"] < KERNEL_TRACK
                        else f"CPU {e['tid'] - KERNEL_TRACK}: recorded kernel time")  # fmt: skip
                meta.append({"ph": "M", "name": "thread_name", "pid": e["pid"], "tid": e["tid"],
                             "args": {"name": name}})  # fmt: skip
        other = {"trace": self.trace, "arch": self.arch, "policy": self.policy}
        return {"traceEvents": meta + self.timeline, "displayTimeUnit": "ns", "otherData": other}

    def write_chrome_trace(self, path: str | os.PathLike[str]) -> None:
        """Write ``chrome_trace()`` to ``path`` (JSON)."""
        with open(path, "wb") as f:
            f.write(orjson.dumps(self.chrome_trace()))

    def plot(self, what: str = "calls", ax: Any = None,
             path: str | os.PathLike[str] | None = None) -> Any:  # fmt: skip
        """Plot the priced calls (needs ``keep_calls``).

        Parameters
        ----------
        what
            ``"calls"``: each call's estimate against the kernel's recorded
            time (log-log, with a +-25% band; needs comparable times);
            ``"cumulative"``: the running total of the estimates, and of
            the recorded times where comparable, over the run.
        ax
            A matplotlib Axes to draw on (a new figure if None).
        path
            Also save the figure there (its format from the extension).

        Returns
        -------
        matplotlib.axes.Axes
        """
        if what not in ("calls", "cumulative"):
            raise ValueError(f"what must be 'calls' or 'cumulative', not {what!r}")
        calls = [c for c in self.calls if c.estimated_ns is not None]
        if not calls:
            raise ValueError("plot: no priced calls kept (replay with keep_calls=True)")
        title = f"{os.path.basename(self.trace)} on {self.arch} under {self.policy}"
        if what == "calls":
            if not self.comparable:
                raise ValueError("plot: the recorded times are not the kernel's on this arch")
            rows = [c for c in calls if c.recorded_ns]
            ax = plot_calls([c.recorded_ns or 0 for c in rows],
                            [c.estimated_ns or 0.0 for c in rows], [_kind(c) for c in rows],
                            title, ax)  # fmt: skip
        else:
            series = {"pagetab's estimate": [c.estimated_ns or 0.0 for c in calls]}
            if self.comparable:
                series["the kernel's recorded time"] = [c.recorded_ns or 0 for c in calls]
            ax = plot_cumulative([c.t for c in calls], series, title, ax)
        if path is not None:
            ax.figure.tight_layout()
            save_figure(ax.figure, path)
        return ax

    def summary(self) -> list[dict[str, Any]]:
        """One row per call kind: calls, estimated and recorded time, and
        the error of the total."""
        rows = []
        for kind, k in sorted(self.kinds.items()):
            err = ((k.estimated_ns - k.recorded_ns) / k.recorded_ns * 100
                   if k.priced and k.recorded_ns and self.comparable else None)  # fmt: skip
            errs = self.errors(kind) if self.comparable else []
            rows.append({"kind": kind, "calls": k.calls, "priced": k.priced,
                         "estimated_us": k.estimated_ns / 1e3 if k.priced else None,
                         "cold_us": k.cold_ns / 1e3 if k.priced and self.cold_priced
                         else None,
                         "recorded_us": k.recorded_ns / 1e3 if k.priced and self.comparable
                         else None,
                         "total_error_pct": err,
                         "median_error_pct": (statistics.median(errs) * 100
                                              if errs else None),
                         "kernel_flushes": k.recorded_flushes if k.priced else None,
                         "pagetab_flushes": k.simulated_flushes if k.priced else None})  # fmt: skip
        return rows


#: the call kinds of userfaultfd's ioctls, by command
UFFDIO_KINDS = {UFFDIO_MOVE: "UFFDIO_MOVE", UFFDIO_REGISTER: "UFFDIO_REGISTER",
                UFFDIO_UNREGISTER: "UFFDIO_UNREGISTER", UFFDIO_API: "UFFDIO_API",
                UFFDIO_COPY: "UFFDIO_COPY", UFFDIO_ZEROPAGE: "UFFDIO_ZEROPAGE"}  # fmt: skip


def _kind(c: ReplayedCall) -> str:
    if c.name == "ioctl":
        return UFFDIO_KINDS.get(c.args[1] if len(c.args) > 1 else -1, "ioctl")
    return c.name


class _Process:
    """One recorded process's simulated address space and bookkeeping."""

    def __init__(self, pid: int, mm: AddressSpace, file_info: dict[str, dict[str, Any]],
                 translated: Counter[str]) -> None:  # fmt: skip
        self.pid = pid
        #: the replay's translations, counted (``ReplayResult.translated``)
        self.translated = translated
        self.mm = mm
        self.cpu_of: dict[int, int] = {}
        self.uffd_fds: set[int] = set()
        self.uffds: dict[int, Userfaultfd] = {}
        self.brk: int | None = None
        self.names: list[tuple[int, int, str]] = []  # recorded [start, end) -> name
        #: the files mapped, by path (their page caches are shared)
        self.files: dict[str, File] = {}
        #: what the recording knows of each file: i_size, cached page runs
        self.file_info = file_info
        #: open file descriptors: each a holder of the File it maps, shared by
        #: its dups, made at its first mmap (the trace has no path for an fd)
        self.fds: dict[int, list[File | None]] = {}
        self.opened = 0
        #: the threads known so far (created or seen)
        self.threads: set[int] = set()

    def file(self, path: str, size: int) -> File:
        """The File at ``path`` (one per path, as one inode's page cache;
        a new one if ``size`` outgrows the one there)."""
        f = self.files.get(path)
        if f is None or f.size < size:
            f = self.files[path] = File(path, size, writable=True)
            info = self.file_info.get(path)
            if info is not None and info.get("cached") is not None:
                f.set_cached([(lo, hi) for lo, hi in info["cached"]], self.mm.page_shift)
            if info is not None and info.get("folios"):
                table = self.mm.arch.pmd_size >> self.mm.page_shift
                runs = [(lo, hi) for lo, hi in info["folios"] if hi - lo < table]
                if len(runs) < len(info["folios"]):
                    self.translated["a PMD-sized page-cache folio as small folios "
                                    "(filemap_map_pmd is not modelled)"] += 1  # fmt: skip
                f.set_folios(runs, self.mm.page_shift)
        return f

    def cpu(self, tid: int) -> int:
        if tid not in self.cpu_of:
            self.cpu_of[tid] = len(self.cpu_of) % self.mm.cpus
        return self.cpu_of[tid]

    def region(self, addr: int) -> str:
        for lo, hi, name in self.names:
            if lo <= addr < hi:
                return name or "anon"
        return "anon"


def _prot(perms: str) -> int:
    return ((PROT_READ if perms[0] == "r" else 0) | (PROT_WRITE if perms[1] == "w" else 0)
            | (PROT_EXEC if perms[2] == "x" else 0))  # fmt: skip


def _ret(e: OSError) -> int:
    return -(e.errno or errno.EINVAL)


def _errno(call: Callable[..., Any], *args: Any) -> int:
    """0 if ``call(*args)`` succeeds, else -errno as the kernel returns it."""
    try:
        call(*args)
    except OSError as e:
        return _ret(e)
    return 0


class Replayer:
    """Replays one trace (see ``replay``)."""

    def __init__(self, reader: TraceReader, a: Arch, policy: str | Policy, cpus: int,
                 thp: str | None, keep_calls: bool, translate: bool,
                 timeline: bool = False, concurrent: int = 0) -> None:  # fmt: skip
        h = reader.header.host
        self.reader = reader
        self.arch = a
        if h.get("page_size") != a.page_size and not translate:
            raise ValueError(f"replay: the trace was recorded with {h.get('page_size')}-byte "
                             f"pages and {a.name} has {a.page_size}-byte pages; pass "
                             "translate=True to replay its byte ranges as they are")  # fmt: skip
        rec_arch = {"x86_64": "x86-64", "aarch64": "arm64"}.get(str(h.get("arch")), h.get("arch"))
        self.cross = not a.name.startswith(str(rec_arch))
        self.policy = policy
        self.cpus = cpus
        self.thp = thp if thp is not None else (h.get("thp") or "madvise")
        self.has_flushes = reader.header.source == "tracefs" and h.get("arch") == "x86_64"
        if self.thp not in ("always", "madvise", "never"):
            raise ValueError(f"replay: thp {self.thp!r} is not one of always, madvise, never")
        self.keep = keep_calls
        self.timeline: list[dict[str, Any]] | None = [] if timeline else None
        self.procs: dict[int, _Process] = {}
        self.calls: list[ReplayedCall] = []
        self.kinds: dict[str, KindTotal] = {}
        self.regions: Counter[str] = Counter()
        self.differences: list[Difference] = []
        self.skipped: Counter[str] = Counter()
        self.translated: Counter[str] = Counter()
        self.recorded_flushes: Counter[str] = Counter()
        self.faults = 0
        self.events = 0
        self.pending: list[tuple[_Process, int, int, bool]] = []  # faults to run in a batch
        #: faults of each thread since its previous system call (its next
        #: priced call pays ``Arch.cold_call_ns`` of their bytes)
        self.faulted: Counter[int] = Counter()
        self.fault_bytes = int(h.get("page_size") or a.page_size)
        self.unknown_pids: set[int] = set()
        #: a trace without exec-time VMAs: each process starts empty
        self.imported = reader.header.source != "tracefs"
        #: processes forked (not threads): their address space is a copy
        self.forked: set[int] = set()
        #: where the recording's addresses go in a smaller address space
        #: (``translate``), or None: they are used as recorded
        self.layout: Layout | None = None
        #: the recorder's uprobe (path, file offset), where the trace says
        at = reader.header.extra.get("uprobe_at")
        self.uprobe: tuple[str, int] | None = (str(at[0]), int(at[1])) if at else None
        #: events of pids not known yet, in order, for the fork that makes them
        self.early: dict[int, list[dict[str, Any]]] = {}
        self.early_n = 0
        #: how many of the largest threaded moves to run the concurrent model on
        self.concurrent = concurrent
        #: each thread's last faults (only with ``concurrent``)
        self.recent: dict[int, deque[int]] = {}
        #: the largest threaded moves so far: (bytes, -sequence, move), a min-heap
        self.threaded: list[tuple[int, int, ThreadedMove]] = []

    # -- processes -------------------------------------------------------
    def new_process(self, ev: dict[str, Any]) -> None:
        pid = int(ev["pid"])
        self.early_n -= len(self.early.pop(pid, []))  # before its exec: another image
        mm = AddressSpace(self.arch, cpus=self.cpus, thp=self.thp, policy=self.policy)
        mm.trace_moves = self.timeline is not None
        p = self.procs[pid] = _Process(pid, mm, dict(ev.get("files") or {}), self.translated)
        for row in ev["vmas"]:
            lo, hi, perms, off, path = row[:5]
            if hi > self.arch.task_size or path == "[vsyscall]":
                continue
            p.names.append((lo, hi, path))
            flags = (MAP_SHARED if perms[3] == "s" else MAP_PRIVATE) | MAP_FIXED
            if path.startswith("/"):
                size = row[5] if len(row) > 5 and row[5] is not None else off + hi - lo
                f = p.file(path, size)
                p.mm.mmap(hi - lo, addr=lo, prot=_prot(perms), flags=flags, file=f, offset=off)
            else:
                p.mm.mmap(hi - lo, addr=lo, prot=_prot(perms), flags=flags | MAP_ANONYMOUS)
        self.populate(p, ev.get("present") or [])

    def populate(self, p: _Process, runs: Iterable[list[int]]) -> None:
        """Pages the kernel made present before the trace began, exactly
        those (no fault-around): written (anonymous, as pagemap's file bit
        says; a private file page the loader wrote is a copy) or read."""
        around = p.mm.fault_around_bytes
        p.mm.fault_around_bytes = 0
        try:
            for run in runs:
                lo, hi = run[0], run[1]
                write = len(run) < 3 or not run[2]
                addrs = np.arange(lo, hi, self.arch.page_size, dtype=np.uint64)
                v = p.mm.find_vma(lo)
                if v is None or not v.prot & PROT_WRITE:
                    write = False
                if addrs.size:
                    p.mm.access(addrs, cpu=0, write=write)
        finally:
            p.mm.fault_around_bytes = around

    # -- events ----------------------------------------------------------
    def event(self, ev: dict[str, Any]) -> None:
        self.events += 1
        self.dispatch(ev if self.layout is None else self.layout.translate_event(ev))

    def dispatch(self, ev: dict[str, Any]) -> None:
        kind = ev["k"]
        pid = int(ev["pid"])
        if kind == "maps":
            self.flush_faults()
            if ev["when"] == "exec":
                self.new_process(ev)
            else:
                self.check_exit(ev)
            return
        p = self.procs.get(pid)
        if p is None and self.imported and kind in ("sys", "fault") and pid not in self.forked:
            # strace and perf do not give the VMAs a program starts with
            self.new_process({"pid": pid, "vmas": [], "present": []})
            self.translated["process started from an empty address space (imported trace)"] += 1
            p = self.procs[pid]
        if kind == "fork" and not ev.get("thread"):
            self.forked.add(int(ev["child"]))
        if p is None:
            if kind in ("sys", "fault", "tlb"):
                if self.early_n < EARLY_EVENTS and not self.imported:
                    self.early.setdefault(pid, []).append(ev)
                    self.early_n += 1
                elif kind != "tlb":
                    self.unknown_pids.add(pid)
            return
        if self.concurrent:
            if kind == "fork" and ev.get("thread"):
                p.threads.add(int(ev["child"]))
            if kind == "sys" and ev["nr"] == "exit":
                # a thread that exited pays for no later move
                p.threads.discard(int(ev["tid"]))
                self.recent.pop(int(ev["tid"]), None)
            elif kind in ("sys", "fault"):
                p.threads.add(int(ev["tid"]))
            if kind == "fault":
                self.recent.setdefault(int(ev["tid"]), deque(maxlen=RECENT_FAULTS)).append(
                    int(ev["a"])
                )
        if kind == "fault":
            self.faults += 1
            self.faulted[int(ev["tid"])] += 1
            self.pending.append((p, p.cpu(int(ev["tid"])), int(ev["a"]), bool(ev["w"])))
            return
        if kind == "tlb":
            self.recorded_flushes[str(ev["reason"])] += 1
            return
        if kind != "sys":
            return
        self.flush_faults()
        self.syscall(p, ev)

    def flush_faults(self) -> None:
        """Run the pending faults, batched by process, CPU and direction."""
        i = 0
        q = self.pending
        while i < len(q):
            p, cpu, _, write = q[i]
            j = i
            while j < len(q) and q[j][0] is p and q[j][1] == cpu and q[j][3] == write:
                j += 1
            addrs = [a for _, _, a, _ in q[i:j]]
            for a in addrs:
                self.grow_stack(p, a)
            p.mm.access(np.array(addrs, dtype=np.uint64), cpu=cpu, write=write)
            i = j
        q.clear()

    def grow_stack(self, p: _Process, addr: int) -> None:
        """expand_stack: a fault in the gap just below [stack] extends it."""
        if p.mm.find_vma(addr) is not None:
            return
        page = addr & ~(self.arch.page_size - 1)
        for lo, _, name in p.names:
            if name == "[stack]":
                v = p.mm.find_vma(lo)
                if v is not None and page < v.start and v.start - page <= STACK_GUARD_GAP:
                    p.mm.mmap(v.start - page, addr=page, prot=v.prot,
                              flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)  # fmt: skip
                    self.translated["stack growth (expand_stack) as a fixed mapping"] += 1

    def syscall(self, p: _Process, ev: dict[str, Any]) -> None:
        name = ev["nr"]
        a = [int(x) if x is not None else 0 for x in ev["a"]]  # None: a path or struct
        r = ev["r"]
        tid = int(ev["tid"])
        cpu = p.cpu(tid)
        faulted = self.faulted.pop(tid, 0) * self.fault_bytes
        if name in ENDS or r is None:
            return
        r = int(r)
        handler = getattr(self, f"sys_{name}", None)
        if handler is None:
            return  # open, close, dup, clone, execve: bookkeeping the trace needs no more of
        p.mm.switch_mm(cpu)
        out = handler(p, a, r, ev)
        if out is None:
            return
        replayed, est, counters, note, kind, region_addr = out
        cold = 0.0
        if est is not None and kind == "mremap" and replayed == a[0]:
            cold = self.arch.cold_resize_ns(faulted)  # in place: a resize's shorter path
        elif est is not None:  # the call's, and its moved PTEs' (their tables cold too)
            cold = self.arch.cold_call_ns(faulted) \
                + counters.get("ptes_moved", 0) * self.arch.cold_pte_ns(faulted)  # fmt: skip
        if est is not None:
            est += cold
        rec_flushes = None
        if self.has_flushes:
            tlb = ev.get("tlb") or {}
            rec_flushes = sum(int(tlb.get(reason, 0)) for reason in LOCAL_FLUSH_REASONS)
        if replayed != r:
            self.differences.append(Difference(int(ev["t"]), p.pid, f"{kind} result", r,
                                               replayed))  # fmt: skip
        k = self.kinds.setdefault(kind, KindTotal())
        k.calls += 1
        if est is not None:
            k.priced += 1
            k.estimated_ns += est
            k.cold_ns += cold
            if ev.get("d") is not None:
                k.recorded_ns += int(ev["d"])
            k.counters.update(counters)
            k.simulated_flushes += simulated_flushes(counters)
            if rec_flushes is not None:
                k.recorded_flushes = (k.recorded_flushes or 0) + rec_flushes
            self.regions[p.region(region_addr)] += est
        if note:
            self.translated[note] += 1
        if self.timeline is not None and est is not None:
            self.add_timeline(p, ev, cpu, kind, est, counters)
        if self.keep:
            self.calls.append(ReplayedCall(int(ev["t"]), p.pid, tid, cpu, name, a, r, replayed,
                                           ev.get("d"), est, dict(counters), note,
                                           rec_flushes, cold))  # fmt: skip

    def add_timeline(self, p: _Process, ev: dict[str, Any], cpu: int, kind: str, est: float,
                     counters: dict[str, int]) -> None:  # fmt: skip
        """The call's Chrome trace events: its span on its CPU, the recorded
        kernel time beside it, and a traced mremap's lock holds and flushes."""
        assert self.timeline is not None
        t0 = int(ev["t"]) / 1e3  # Chrome traces count in us
        tl = self.timeline
        args = {"estimated_ns": est, **counters}
        tl.append({"name": kind, "cat": "call", "ph": "X", "ts": t0, "dur": est / 1e3,
                   "pid": p.pid, "tid": cpu, "args": args})  # fmt: skip
        if ev.get("d") is not None and self.cross is False:
            tl.append({"name": kind, "cat": "recorded", "ph": "X", "ts": t0,
                       "dur": int(ev["d"]) / 1e3, "pid": p.pid, "tid": KERNEL_TRACK + cpu,
                       "args": {"recorded_ns": int(ev["d"])}})  # fmt: skip
        st = p.mm.last_move
        if kind != "mremap" or st is None:
            return
        trace = st.trace
        if trace is None:
            return
        for h in trace.lock_holds():
            tl.append({"name": h.lock_class, "cat": "lock", "ph": "X",
                       "ts": t0 + h.start_ns / 1e3, "dur": max(h.end_ns - h.start_ns, 0) / 1e3,
                       "pid": p.pid, "tid": cpu, "args": {"entries": h.entries}})  # fmt: skip
        for f in trace.flushes():
            tl.append({"name": f.kind, "cat": "flush", "ph": "X", "ts": t0 + f.start_ns / 1e3,
                       "dur": (f.end_ns - f.start_ns) / 1e3, "pid": p.pid, "tid": cpu,
                       "args": {"range": f"{f.lo:#x}-{f.hi:#x}", "locks_held": f.locks_held,
                                **f.ops}})  # fmt: skip
        st.drop_trace()

    # -- system calls: each returns (replayed result, estimate, counters,
    #    translation note, kind, address for the region) or None ----------
    Out = tuple[int, float | None, dict[str, int], str, str, int] | None

    def sys_mmap(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        addr, length, prot, flags, fd = a[0], a[1], a[2], a[3], a[4]
        note = ""
        flags &= ~IGNORED_MAP_FLAGS
        if flags & MAP_GROWSDOWN:
            flags &= ~MAP_GROWSDOWN
            note = "MAP_GROWSDOWN mapped without growth"
        file = None
        if not flags & MAP_ANONYMOUS:
            file = self.file_for(p, fd, ev.get("file"), a[5] + length)
        if r >= 0 and not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            addr, flags = r, flags | MAP_FIXED_NOREPLACE
            note = note or "address chosen by the kernel, asked for (MAP_FIXED_NOREPLACE)"
        try:
            got = p.mm.mmap(length, addr=addr, prot=prot, flags=flags, file=file,
                            offset=a[5] if file is not None else 0)  # fmt: skip
        except OSError as e:
            got = _ret(e)
        except NotImplementedError as e:
            self.skipped[str(e)] += 1
            return None
        if r >= 0:
            self.name_range(p, r, length, ev)
        if got >= 0 and file is not None and not flags & MAP_SHARED:
            self.uprobe_mmap(p, got, length, file.name, a[5])
        return got, None, {}, note, "mmap", max(got, 0)

    def uprobe_mmap(self, p: _Process, start: int, length: int, path: str, offset: int) -> None:
        """The recorder's uprobe on the C library's ioctl (the trace header's
        ``uprobe_at``): mapping the file over the probed offset installs the
        breakpoint (kernel/events/uprobes.c uprobe_mmap), a forced write
        whose copy gives the VMA an anon_vma, which a later split keeps and
        fork's vma_needs_copy looks at."""
        if self.uprobe is None or path != self.uprobe[0]:
            return
        if not offset <= self.uprobe[1] < offset + length:
            return
        v = find_vma(p.mm.mm_struct, start)
        if v is not None and v.anon_vma is None:
            v.anon_vma = new_anon_vma()
            self.translated["the recorder's uprobe: its breakpoint's copy gives the C "
                            "library's mapping an anon_vma"] += 1  # fmt: skip

    def file_for(self, p: _Process, fd: int, known: dict[str, Any] | None, end: int) -> File:
        """The File an mmap of ``fd`` up to byte ``end`` maps: by the path
        the recording found for it (a mapping still there at exit), else
        the one this fd was given at an earlier mmap, else a new one whose
        size is the mapping's end (no EOF inside it)."""
        holder = p.fds.setdefault(fd, [None])
        if known is not None:
            size = known.get("i_size")
            holder[0] = p.file(str(known["path"]), end if size is None else int(size))
        f = holder[0]
        if f is None or f.size < end:
            p.opened += 1
            name = f.name if f is not None else f"<fd {fd}, open #{p.opened}>"
            f = holder[0] = p.file(name, end)
            self.translated["a file whose path or size the trace lacks"] += 1
        return f

    def name_range(self, p: _Process, start: int, length: int, ev: dict[str, Any]) -> None:
        known = ev.get("file")
        name = str(known["path"]) if known else "anon"
        p.names = [(lo, hi, n) for lo, hi, n in p.names if hi <= start or lo >= start + length]
        p.names.append((start, start + length, name))

    def sys_clone(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        """clone: a new process (no CLONE_VM) starts from a copy of this one;
        a thread, or a child sharing the mm until its exec, changes nothing."""
        if r > 0 and not a[0] & CLONE_VM:
            self.fork_process(p, r)
        return None

    def sys_fork(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        if r > 0:
            self.fork_process(p, r)
        return None

    def fork_process(self, p: _Process, pid: int) -> None:
        """Process ``pid`` begins as fork leaves it (``AddressSpace.fork``),
        with its parent's open files; then the events it made before its
        parent's clone returned are replayed. A child that exec'd before
        its parent's clone returned (its exec maps came first) is left as it
        is: its address space is its own."""
        if pid in self.procs:
            return
        mm = p.mm.fork()
        mm.trace_moves = self.timeline is not None
        c = self.procs[pid] = _Process(pid, mm, p.file_info, self.translated)
        c.names = list(p.names)
        c.brk = p.brk
        # the child's copies of the files its VMAs map, and its fds: the
        # same open files (dups stay shared), each holding the child's copy
        copies = file_copies(p.mm.mm_struct, mm.mm_struct)
        c.files = {path: copies[id(f)] for path, f in p.files.items() if id(f) in copies}
        holders: dict[int, list[File | None]] = {}
        for fd, h in p.fds.items():
            if id(h) not in holders:
                holders[id(h)] = [None if h[0] is None else copies.get(id(h[0]))]
            c.fds[fd] = holders[id(h)]
        c.opened = p.opened
        self.forked.add(pid)
        self.translated["fork: the child's copy-on-write sharing with its parent (pages "
                        "present exactly; writes are ordinary accesses)"] += 1  # fmt: skip
        early = self.early.pop(pid, [])
        self.early_n -= len(early)
        for ev in early:
            self.dispatch(ev)

    def sys_openat(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        if r >= 0:
            p.fds[r] = [None]  # a new open file: a new File at its first mmap
        return None

    sys_open = sys_openat

    def sys_close(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        if r == 0:
            p.fds.pop(a[0], None)
        return None

    def sys_dup(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        if r >= 0:
            p.fds[r] = p.fds.setdefault(a[0], [None])  # the same open file
        return None

    sys_dup2 = sys_dup
    sys_dup3 = sys_dup

    def sys_munmap(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        present = self.present_before(p, ev, a[0], a[1])
        got = _errno(p.mm.munmap, a[0], a[1])
        self.keep_call(p, ev, got, "munmap", a[0], a[1], present)
        return got, None, {}, "", "munmap", a[0]

    def sys_mprotect(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        prot = a[2] & (PROT_READ | PROT_WRITE | PROT_EXEC)
        # the concurrent model's mprotect makes pages read-only
        present = self.present_before(p, ev, a[0], a[1]) if prot & ~PROT_EXEC == PROT_READ else 0
        got = _errno(p.mm.mprotect, a[0], a[1], prot)
        self.keep_call(p, ev, got, "mprotect", a[0], a[1], present)
        return got, None, {}, "", "mprotect", a[0]

    def sys_madvise(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        present = self.present_before(p, ev, a[0], a[1]) if a[2] == MADV_DONTNEED else 0
        try:
            got = _errno(p.mm.madvise, a[0], a[1], a[2])
        except NotImplementedError as e:
            self.skipped[str(e)] += 1
            return None
        self.keep_call(p, ev, got, "madvise", a[0], a[1], present)
        return got, None, {}, "", "madvise", a[0]

    def present_before(self, p: _Process, ev: dict[str, Any], addr: int, length: int) -> int:
        """Pages present in [addr, addr + length) before a call that may
        clear them (0 where the concurrent model would not keep the call,
        ``wants_threaded``, or for a range no call could take: unaligned,
        empty or past the arch's task size)."""
        ps = self.arch.page_size
        end = addr + -(-length // ps) * ps
        if addr % ps or not 0 < length or end > self.arch.task_size \
                or not self.wants_threaded(p, int(ev["tid"]), end - addr):  # fmt: skip
            return 0
        return int(p.mm.mm_struct.tables.count_mapped(addr, end))

    def wants_threaded(self, p: _Process, tid: int, size: int) -> bool:
        """Whether a call of ``size`` bytes by ``tid`` would be kept for the
        concurrent model: other threads of the process exist and it is
        among the ``concurrent`` largest."""
        h = self.threaded
        return bool(self.concurrent and p.threads - {tid}
                    and not (len(h) == self.concurrent and size <= h[0][0]))  # fmt: skip

    def keep_call(self, p: _Process, ev: dict[str, Any], got: int, call: str, addr: int,
                  length: int, present: int) -> None:  # fmt: skip
        """A call that succeeded over ``present`` pages, for the concurrent model."""
        if got == 0 and present:
            ps = self.arch.page_size
            self.keep_threaded(p, ev, addr, addr, -(-length // ps) * ps, call, present)

    def sys_brk(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        """brk: the heap VMA grows or shrinks to the kernel's new break (the
        initial break is brk(0)'s answer, which the trace has)."""
        ps = self.arch.page_size
        if p.brk is None:
            p.brk = r
            return None
        old, new = -(-p.brk // ps) * ps, -(-r // ps) * ps
        try:
            if new > old:
                p.mm.mmap(new - old, addr=old, prot=PROT_READ | PROT_WRITE,
                          flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE)  # fmt: skip
                p.names.append((old, new, "[heap]"))
            elif new < old:
                p.mm.munmap(new, old - new)
            got = r
        except OSError:
            got = p.brk  # brk returns the old break on failure
        p.brk = got
        return got, None, {}, "brk as mmap/munmap of the heap's end", "brk", old

    def sys_mremap(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        old, olen, nlen, flags, new = a[0], a[1], a[2], a[3], a[4]
        note = ""
        if r >= 0 and r != old and not flags & MREMAP_FIXED and flags & MREMAP_MAYMOVE:
            flags |= MREMAP_FIXED
            new = r
            note = "destination chosen by the kernel, asked for (MREMAP_FIXED)"
        try:
            got = p.mm.mremap(old, olen, nlen, flags, new if flags & MREMAP_FIXED else None)
        except OSError as e:
            return _ret(e), None, {}, note, "mremap", old
        st = p.mm.last_move
        assert st is not None
        region = p.region(old)
        if got >= 0:
            p.names = [(lo, hi, n) for lo, hi, n in p.names if hi <= got or lo >= got + nlen]
            p.names.append((got, got + nlen, region))
        counters = {n: st.counter(n) for n in COUNTER_NAMES if st.counter(n)}
        if st.tables_freed:
            counters["tables_freed"] = st.tables_freed
        moved = int(st.moved_bytes)
        if got != old and moved and self.wants_threaded(p, int(ev["tid"]), moved):
            present = int(p.mm.mm_struct.tables.count_mapped(got, got + moved))
            self.keep_threaded(p, ev, old, got, moved, "mremap", present)
        return got, float(st.estimated_ns), counters, note, "mremap", old

    def keep_threaded(self, p: _Process, ev: dict[str, Any], old: int, new: int,
                      size: int, call: str, present: int) -> None:  # fmt: skip
        """Keep the call (``present`` pages over ``size`` bytes from ``old``;
        an mremap's to ``new``) for the concurrent model if other threads of
        the process exist and it is among the ``concurrent`` largest."""
        tid = int(ev["tid"])
        if not present or not self.wants_threaded(p, tid, size):
            return  # nothing moved, nothing flushed: nobody pays
        others = sorted(p.threads - {tid})
        h = self.threaded
        places = tuple("inside" if any(old <= x < old + size for x in self.recent.get(t, ()))
                       else "outside" for t in others)  # fmt: skip
        move = ThreadedMove(int(ev["t"]), p.pid, tid, old, new, size, present, places,
                            call=call)  # fmt: skip
        item = (size, -self.events, move)
        if len(h) < self.concurrent:
            heapq.heappush(h, item)
        else:
            heapq.heapreplace(h, item)

    def run_concurrent(self) -> list[ThreadedMove]:
        """The kept moves, in time order, each with its ``run_concurrent``."""
        moves = sorted((m for _, _, m in self.threaded), key=lambda m: m.t)
        a = self.arch
        for m in moves:
            threads = [ThreadSpec(where=w) for w in m.places[: MAX_CPUS - 1]]
            pages = m.size // a.page_size
            m.result = run_concurrent(
                m.size, a, self.policy, threads=threads,
                cpus=min(MAX_CPUS, max(self.cpus, len(threads) + 1)),
                populate={"write": min(1.0, m.present / pages)},
                src_align=m.old_addr % a.pud_size, dst_align=m.new_addr % a.pud_size,
                region_size=-(-m.size // a.pmd_size) * a.pmd_size, mover=m.call)  # fmt: skip
        return moves

    def sys_userfaultfd(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        if r >= 0:
            p.uffd_fds.add(r)
        return None

    def sys_ioctl(self, p: _Process, a: list[int], r: int, ev: dict[str, Any]) -> Out:
        fd, cmd = a[0], a[1]
        if fd not in p.uffd_fds:
            return None
        mem = ev.get("mem")
        if mem is None:
            self.skipped["userfaultfd ioctl without its structure (no uprobe)"] += 1
            return None
        if cmd == UFFDIO_API:
            if r == 0:
                asked = int(mem[1])
                if asked & ~FEATURES:
                    self.skipped[f"userfaultfd features {asked & ~FEATURES:#x} are not "
                                 "simulated"] += 1  # fmt: skip
                p.uffds[fd] = p.mm.userfaultfd(features=asked & FEATURES)
            return None
        u = p.uffds.get(fd)
        if u is None:
            self.skipped["userfaultfd ioctl before UFFDIO_API"] += 1
            return None
        if cmd == UFFDIO_REGISTER:
            mode = int(mem[2]) & (UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)
            got = _errno(u.register, int(mem[0]), int(mem[1]), mode)
            return got, None, {}, "", "UFFDIO_REGISTER", int(mem[0])
        if cmd == UFFDIO_UNREGISTER:
            got = _errno(u.unregister, int(mem[0]), int(mem[1]))
            return got, None, {}, "", "UFFDIO_UNREGISTER", int(mem[0])
        if cmd == UFFDIO_MOVE:
            dst, src, length, mode = (int(x) for x in mem[:4])
            got = _errno(u.move, dst, src, length, mode)  # UffdMoveError is an OSError
            st = u.last_move
            est = float(st.estimated_ns) if st is not None else None
            counters = dict(st.counters) if st is not None else {}
            if self.concurrent and got == 0:
                ps, pmd = self.arch.page_size, self.arch.pmd_size
                moved = (counters.get("ptes_moved", 0) + counters.get("zero_ptes_moved", 0)
                         + counters.get("huge_pmds_moved", 0) * (pmd // ps))  # fmt: skip
                if moved:
                    self.keep_threaded(p, ev, src, dst, length, "uffdio_move", moved)
            return got, est, counters, "", "UFFDIO_MOVE", src
        if cmd in (UFFDIO_COPY, UFFDIO_ZEROPAGE):
            # fills: results and pages replayed, not priced
            try:
                if cmd == UFFDIO_COPY:
                    dst = int(mem[0])
                    got = _errno(u.copy, dst, int(mem[1]), int(mem[2]), int(mem[3]))
                else:
                    dst = int(mem[0])
                    got = _errno(u.zeropage, dst, int(mem[1]), int(mem[2]))
            except NotImplementedError as e:
                self.skipped[str(e)] += 1
                return None
            return got, None, {}, "", UFFDIO_KINDS[cmd], dst
        self.skipped[f"userfaultfd ioctl {cmd:#x} is not simulated"] += 1
        return None

    # -- the end ---------------------------------------------------------
    def check_exit(self, ev: dict[str, Any]) -> None:
        """Compare the simulated VMAs and present pages with the kernel's."""
        p = self.procs.get(int(ev["pid"]))
        if p is None:
            return
        t = int(ev["t"])
        ps = self.arch.page_size
        want = [(lo, hi, perms[:3]) for lo, hi, perms, _, path, *_ in ev["vmas"]
                if path not in SPECIAL and hi <= self.arch.task_size]  # fmt: skip
        have = []
        for v in p.mm.vmas():
            perms = ("r" if v.prot & PROT_READ else "-") + ("w" if v.prot & PROT_WRITE else "-") \
                + ("x" if v.prot & PROT_EXEC else "-")  # fmt: skip
            have.append((v.start, v.end, perms))
        special = [(lo, hi) for lo, hi, _, _, path, *_ in ev["vmas"] if path in SPECIAL]
        have = [h for h in have if not any(lo <= h[0] < hi for lo, hi in special)]
        if sorted(want) != sorted(have):
            self.differences.append(Difference(t, p.pid, "VMAs at exit", _diff(want, have),
                                               len(have)))  # fmt: skip
        rec = _runs_set([(r[0], r[1]) for r in ev.get("present") or []], ps)
        sim: set[int] = set()
        for lo, hi, _ in have:
            f = p.mm.frames(lo, hi - lo)
            sim.update(int(x) for x in lo // ps + np.flatnonzero(f >= 0))
        skip: set[int] = set()
        for lo, hi in special:
            skip.update(range(lo // ps, hi // ps))
        rec -= skip
        # file pages apart: which of them the kernel maps also depends on its
        # page cache's folios and readahead marks, which no trace shows
        files = [(lo // ps, hi // ps) for lo, hi, _, _, path, *_ in ev["vmas"]
                 if path.startswith("/")]  # fmt: skip

        def is_file(pg: int) -> bool:
            return any(lo <= pg < hi for lo, hi in files)

        for what, keep in (("present anonymous pages at exit", False),
                           ("present file pages at exit", True)):  # fmt: skip
            r = {pg for pg in rec if is_file(pg) == keep}
            s = {pg for pg in sim if is_file(pg) == keep}
            if r != s:
                only_k, only_s = sorted(r - s), sorted(s - r)
                self.differences.append(Difference(
                    t, p.pid, what,
                    f"{len(r)} present, {len(only_k)} not in pagetab (first "
                    f"{_pages(only_k, ps)})",
                    f"{len(s)} present, {len(only_s)} not in the kernel (first "
                    f"{_pages(only_s, ps)})"))  # fmt: skip

    def result(self, path: str) -> ReplayResult:
        concurrent = self.run_concurrent() if self.concurrent else []
        left = {pid for pid, evs in self.early.items() if any(e["k"] != "tlb" for e in evs)}
        for pid in sorted(self.unknown_pids | left):
            self.skipped[f"pid {pid}: neither its exec nor a fork the replay can copy is in "
                         "the trace (clone3 keeps its flags in a struct the trace lacks; "
                         "vfork shares its parent's mm until exec)"] += 1  # fmt: skip
        return ReplayResult(path, self.arch.name,
                            self.policy if isinstance(self.policy, str) else self.policy.name,
                            self.cpus, self.calls, self.kinds, self.regions, self.differences,
                            self.skipped, self.translated, self.faults, self.recorded_flushes,
                            len(self.procs), self.events,
                            not self.cross and self.reader.header.timing == "kernel",
                            self.timeline or [], bool(self.arch.cold_call),
                            concurrent=concurrent)  # fmt: skip


def _diff(want: list[tuple[int, int, str]], have: list[tuple[int, int, str]]) -> str:
    w, h = set(want), set(have)
    only_k = sorted(w - h)[:3]
    only_s = sorted(h - w)[:3]
    return f"kernel only: {_ranges(only_k)}; pagetab only: {_ranges(only_s)}"


def _ranges(rs: list[tuple[int, int, str]]) -> str:
    return ", ".join(f"{lo:#x}-{hi:#x} {p}" for lo, hi, p in rs) or "none"


def _runs_set(runs: list[tuple[int, int]], ps: int) -> set[int]:
    out: set[int] = set()
    for lo, hi in runs:
        out.update(range(lo // ps, hi // ps))
    return out


def _pages(pages: list[int], ps: int) -> str:
    return ", ".join(f"{x * ps:#x}" for x in pages[:3]) or "none"


#: recordings shipped with pagetab (``pagetab/data/traces``), made on a 2-CPU
#: x86-64 VM under Linux 6.18 with the programs of ``tests/programs``, and
#: that VM's calibration (``pagetab calibrate``) as ``host-calibration.json``
TRACES = Path(__file__).parent / "data" / "traces"


def example_traces() -> list[str]:
    """Names of the recordings shipped with pagetab (``example_trace``)."""
    return sorted(p.name.removesuffix(".ptrace.gz") for p in TRACES.glob("*.ptrace.gz"))


def example_trace(name: str) -> str:
    """The path of a shipped recording: ``grow_bytearray`` (CPython growing
    a bytearray: glibc realloc's mremap), ``uffd_gc`` (a userfaultfd GC's
    compaction cycles), ``threaded_moves`` (a thread moving 16 MiB while two
    others run: for ``concurrent``), ``fork_child`` (a process forking
    without exec), or ``host-calibration`` (the recording VM's
    calibration file)."""
    names = [*example_traces(), "host-calibration"]
    if name not in names:
        raise ValueError(f"unknown example trace {name!r}; valid: {', '.join(names)}")
    if name == "host-calibration":
        return str(TRACES / "host-calibration.json")
    return str(TRACES / f"{name}.ptrace.gz")


class ReplayResults(Compared[ReplayResult]):
    """Replays of traces under several archs and policies, each with its
    ratio to a baseline policy (the baseline's estimate over its own, same
    trace and arch: above 1 is faster). ``compare_replay`` makes them.

    A sequence of ``ReplayResult`` (index it, iterate it, ``len``), in the
    order given.

    Parameters
    ----------
    items
        The replays.
    baseline
        The policy each ratio is to (None: no ratios).

    ``baseline``, the records, files, DataFrame, units and table
    (``rows``, ``to_csv``, ...): as ``Compared``.
    """

    def __init__(self, items: Iterable[ReplayResult], baseline: str | None = "linux-6.18") -> None:
        super().__init__(items, baseline, lambda r: (r.trace, r.arch))

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The summary table as text cells: (header, one row per replay)."""
        head = ["trace", "arch", "policy", "exact", "priced calls", "est. us", "kernel us",
                "error %", f"vs {self.baseline}"]  # fmt: skip
        rows = []
        for r in self:
            d = r.row()
            rows.append([d["trace"], d["arch"], d["policy"],
                         "yes" if r.exact else f"no ({len(r.differences)})",
                         str(d["priced_calls"]), f"{d['estimated_us']:,.1f}",
                         "-" if d["recorded_us"] is None else f"{d['recorded_us']:,.1f}",
                         "-" if d["error_pct"] is None else f"{d['error_pct']:+.1f}",
                         "-" if r.ratio is None else f"{r.ratio:.2f}x"])  # fmt: skip
        return head, rows


def _replay_job(job: tuple[str, str | Arch, str, dict[str, Any]]) -> ReplayResult:
    trace, a, p, kw = job
    return replay(trace, a, p, **kw)


def compare_replay(
    traces: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    archs: Iterable[str | Arch] | str | Arch = "x86-64",
    policies: Iterable[str] | str = ("linux-6.8", "linux-6.18"),
    baseline: str | None = "linux-6.18",
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> ReplayResults:
    """``replay`` of every trace x arch x policy, in parallel.

    Parameters
    ----------
    traces
        One trace or several.
    archs, policies
        The architecture profiles and kernel policies to replay under (a
        name, a list, or "all" for policies).
    baseline
        The policy each result's ``ratio`` is taken against (one of
        ``policies``), or None.
    executor
        Any ``concurrent.futures.Executor`` (for a Dask cluster,
        ``dask.distributed.Client(address).get_executor()``); None runs a
        single replay here, several in a process pool with one worker per
        CPU.
    progress
        Called with (done, total) as replays finish.
    **kwargs
        Passed to each ``replay``; ``keep_calls`` defaults to False, so
        that only totals travel back.

    Returns
    -------
    ReplayResults

    Raises
    ------
    ValueError
        A trace's header, an arch, a policy or the baseline is wrong
        (checked before anything is submitted).
    """
    paths = [traces] if isinstance(traces, (str, os.PathLike)) else list(traces)
    arch_list = [archs] if isinstance(archs, (str, Arch)) else list(archs)
    pols = policy_names(policies)
    if baseline is not None and baseline not in pols:
        raise ValueError(f"baseline {baseline!r} is not among the policies {pols}")
    for path in paths:
        read_trace(path)  # the header, checked
    for a in arch_list:
        resolve_arch(a)
    kwargs.setdefault("keep_calls", False)
    jobs = [(os.fspath(t), a, p, dict(kwargs)) for t in paths for a in arch_list for p in pols]
    check_executor(executor)
    if executor is None and len(jobs) == 1:
        return ReplayResults([_replay_job(jobs[0])], baseline)
    return ReplayResults(run_jobs(_replay_job, jobs, executor, progress), baseline)


#: the top of the user address space of a recording host, by its uname -m
#: (x86-64's TASK_SIZE_MAX, a page below 128 TiB; 48-bit arm64's 256 TiB)
RECORDED_TOP = {"x86_64": (1 << 47) - 4096, "aarch64": 1 << 48}


def _layout(trace: str | os.PathLike[str], reader: TraceReader, a: Arch,
            translate: bool) -> Layout | None:  # fmt: skip
    """Where the trace's addresses go on ``a`` when its space is smaller
    than the recording's (a pass over the trace first), or None when they
    fit as recorded. ValueError when they do not and ``translate`` is off,
    or do not fit even moved."""
    if a.task_size >= RECORDED_TOP.get(str(reader.header.host.get("arch")), 1 << 57):
        return None  # no address of the recording can lie past the arch's space
    used: set[int] = set()
    top = 0
    for ev in read_trace(trace):
        used.update(spans(ev))
        top = max(top, max(addresses(ev), default=0))
    if top < a.task_size:
        return None
    if not translate:
        raise ValueError(f"replay: the trace maps up to {top:#x}, past {a.name}'s "
                         f"{a.task_size >> SPAN_SHIFT} GiB address space; pass translate=True "
                         "(--translate) to move its mappings into it (each keeps its offset "
                         "within its GiB, so its moves keep their alignments)")  # fmt: skip
    return Layout(used, a.task_size - a.mmap_min_addr)


def policy_names(policies: Iterable[str] | str) -> list[str]:
    """Policy names: one, a list, or "all"; each checked."""
    if isinstance(policies, str):
        return all_policies() if policies == "all" else [resolve_policy(policies).name]
    return [resolve_policy(p).name for p in policies]


def replay(
    trace: str | os.PathLike[str],
    arch: str | Arch = "x86-64",
    policy: str | Policy = "linux-6.18",
    cpus: int | None = None,
    *,
    thp: str | None = None,
    calibration: str | None = None,
    device: str | None = None,
    keep_calls: bool = True,
    translate: bool = False,
    timeline: bool = False,
    concurrent: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay a recorded trace on ``arch`` under ``policy``.

    Parameters
    ----------
    trace
        A pagetab trace (``pagetab record``, or imported strace output).
    arch, policy
        The architecture profile and kernel policy to replay under.
    cpus
        CPUs of the simulated machine; default: the recording host's count
        (at least 2), at most ``MAX_CPUS``. Each recorded thread runs on
        one of them, in turn.
    thp
        Transparent huge pages' mode; default: the recording host's.
    calibration, device
        Costs from ``pagetab calibrate`` or a shipped device (``arch``).
    keep_calls
        Keep every replayed call in ``calls`` (memory grows with the trace;
        totals never do).
    translate
        Replay a trace from another page size with its byte ranges as they
        are (each call keeps its addresses; pages are the target's), and one
        whose addresses lie past the target's address space (riscv64 Sv39's
        256 GiB) with its regions moved into it (``trace_layout``: each
        address keeps its offset within its GiB, so moves keep their
        alignments; the gaps between regions shrink).
    timeline
        Keep the calls', lock holds' and flushes' timeline for
        ``ReplayResult.chrome_trace`` (memory grows with the trace).
    concurrent
        Run the concurrent model (``run_concurrent``) on this many of the
        largest mremap moves made while the process had other threads:
        what those threads paid (``ReplayResult.concurrent``, see
        ``ThreadedMove``). 0: none.
    progress
        Called with the number of events replayed so far, now and then.

    Returns
    -------
    ReplayResult

    Raises
    ------
    ValueError
        A corrupt or truncated trace (naming the line), another page size
        without ``translate``, unknown arch or policy.
    """
    reader = read_trace(trace)
    a = resolve_arch(arch, calibration=calibration, device=device)
    if cpus is None:
        cpus = min(MAX_CPUS, max(2, int(reader.header.host.get("cpus") or 1)))
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
        raise ValueError(f"cpus must be an int from 1 to {MAX_CPUS}, not {cpus!r}")
    check_int("concurrent", concurrent, 0, 1 << 20)
    rp = Replayer(reader, a, policy, cpus, thp, keep_calls, translate, timeline, concurrent)
    rp.layout = _layout(trace, reader, a, translate)
    if rp.layout is not None:
        rp.translated[f"a run of the recording's GiBs moved into {a.name}'s "
                      f"{a.task_size >> SPAN_SHIFT} GiB (offsets in each GiB kept)"] = len(
            rp.layout.starts)  # fmt: skip
    for i, ev in enumerate(reader):
        rp.event(ev)
        if progress is not None and i % 16384 == 0:
            progress(i)
    rp.flush_faults()
    return rp.result(os.fspath(trace))
