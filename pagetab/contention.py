"""What the other threads of a process pay while one of its threads moves
page tables: the concurrent model.

``run_concurrent`` builds an address space, moves a region with mremap
(traced: ``AddressSpace.trace_moves``) from CPU 0 while application threads
run access streams on CPUs 1..T, and replays both in time order in C
(``_contend``): the threads' accesses go through their own TLBs, walk the
page tables as they stood at that moment, fault and wait for mmap_lock or
the VMA's lock where the kernel's fault path would (``Policy.per_vma_locks``,
Linux 6.4), spin on the page-table locks the mover holds (a fault beside the
moved range, in a table the move covers), and take the mover's flushes at
the times it issued them: the arch's flush rule removes their entries and,
where it sends IPIs, each receiving CPU runs the handler (``ipi_handler``
cost) then, inside an access or between two, and the mover waits until
every handler is done (flush_tlb_mm_range is synchronous), however little
its ``ipi`` cost says the send takes.
The same streams are run once more without the move; the difference is
what the move cost each thread (``stall_ns``) and the TLB refills it
caused.

The mover is mremap, or any other call that flushes what it changes
(``mover``): madvise(MADV_DONTNEED), munmap or mprotect(PROT_READ) of the
region, laid out page table by page table by ``mmu_gather.gather_trace``
(the store is not changed: the threads walk the tables as they stood, and
an entry the call has reached is gone, or read-only). Each holds
mmap_lock as the kernel does: mremap and mprotect for write throughout,
write-locking the VMA; munmap for write until it has detached the VMA,
then for read while it zaps (mm/vma.c ``vms_complete_munmap_vmas``); madvise
for read, or since 6.17 the VMA's lock for read (a6fde7add78d). A zap's
stale TLB entries are never unsafe (the mmu_gather frees nothing before its
flush). UFFDIO_MOVE (``mover="uffdio_move"``) moves the region into a
registered destination VMA in C, traced as mremap is (its double_pt_lock
holds, folio and anon_vma locks, flushes: per page before 6.18, per batch
from 6.18), under both VMAs' read locks, leaving the source VMA empty as
MREMAP_DONTUNMAP does.

Faults are priced by the arch's ``fault``/``cow_fault`` costs. A fault
with no VMA to take it counts as ``segv`` at the price of a fault: on the
old range after its extent moved (without MREMAP_DONTUNMAP), on a range
munmap detached, and a write to a range mprotect made read-only.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from . import _contend, _flush, _move
from .arch import Arch
from .argcheck import check_bool, check_int
from .constants import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    UFFD_FEATURE_MOVE,
    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
    UFFDIO_REGISTER_MODE_MISSING,
)
from .cost import flush_op_events, untraced_cost
from .mm_types import MAX_CPUS
from .mmu_gather import gather_trace
from .policy import DEFAULT_POLICY, Policy, policies
from .policy import policy as policy_of
from .results import Compared
from .scenario import MoveSetup, populate_region, region_bases
from .timeline import EVENT_KINDS, FLUSH_KINDS, LOCK_CLASSES, MoveTrace
from .units import format_size

__all__ = [
    "MOVERS",
    "OPS",
    "PATTERNS",
    "PLACES",
    "ContendResult",
    "ContendResults",
    "ThreadResult",
    "ThreadSpec",
    "compare_concurrent",
    "run_concurrent",
]

#: where a thread's accesses go: the moved region (its old addresses), a
#: populated region the move leaves alone, a fresh one (first touches fault),
#: or a fresh one after the moved region, in the rest of its last PUD (its
#: PMD table is the moved region's: the faults installing its PTE tables take
#: the PMD lock the mover takes), a PMD away so that it is a VMA of its own
PLACES = ("inside", "outside", "fresh", "beside")
#: the places the run starts unpopulated: first touches fault, no warm-up
UNPOPULATED = ("fresh", "beside")
OPS = ("read", "write")
PATTERNS = ("random", "sequential")
#: the latency percentiles reported
PERCENTILES = (50.0, 99.0, 99.9)
#: the calls that can be the mover: what each does to the region
#: (``_contend.region_fate``), how it holds mmap_lock (``_contend.mover_lock``), and
#: whether it write-locks the region's VMA (vma_start_write)
_FATE, _LOCK = _contend.region_fate, _contend.mover_lock
MOVERS = {
    "mremap": (int(_FATE.FATE_MOVED), int(_LOCK.LOCK_WRITE), True),
    "madvise": (int(_FATE.FATE_ZAPPED), int(_LOCK.LOCK_READ), False),
    "munmap": (int(_FATE.FATE_UNMAPPED), int(_LOCK.LOCK_DOWNGRADE), True),
    "mprotect": (int(_FATE.FATE_PROTECTED), int(_LOCK.LOCK_WRITE), True),
    # the pages moved, the source VMA kept (as MREMAP_DONTUNMAP leaves it);
    # both VMAs' locks for read (uffd_move_lock) or mmap_lock for read
    "uffdio_move": (int(_FATE.FATE_MOVED), int(_LOCK.LOCK_READ), False),
}
_KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
_BUCKET_UPPER = _contend.bucket_upper_ns()


@dataclass(frozen=True)
class ThreadSpec:
    """One application thread: where it accesses, how, and how often."""

    where: str = "outside"
    """Where its accesses go, one of PLACES."""
    op: str = "read"
    """Whether it reads or writes: one of OPS."""
    pattern: str = "random"
    """How it picks its addresses: one of PATTERNS ("sequential" steps by
    ``stride``)."""
    accesses: int = 100_000
    """Accesses it makes, at least (counted from the run's start, time 0; the
    move starts at ``move_at_ns``)."""
    through_move: bool = False
    """Whether it also goes on until mremap returns: a thread that runs through the
    whole move (every flush reaches it), however long the move takes."""
    think_ns: float = 0.0
    """Time between one access's end and its next (ns)."""
    work_ns: float = 0.0
    """The program's own work inside each access, part of its latency (what a
    timed access spends in its timer: a flush IPI landing in it counts; ns)."""
    stride: int = 0
    """Sequential: bytes between accesses (0: one page)."""
    span: int = 0
    """Bytes of its region it touches, from the start (0: all of it)."""

    def __post_init__(self) -> None:
        for name, valid in (("where", PLACES), ("op", OPS), ("pattern", PATTERNS)):
            value = getattr(self, name)
            if value not in valid:
                raise ValueError(f"ThreadSpec.{name} must be one of {', '.join(valid)}, "
                                 f"not {value!r}")  # fmt: skip
        check_int("ThreadSpec.accesses", self.accesses, 0, 1 << 40)
        check_bool("ThreadSpec.through_move", self.through_move)
        check_int("ThreadSpec.stride", self.stride, 0, 1 << 40)
        check_int("ThreadSpec.span", self.span, 0, 1 << 50)
        for name in ("think_ns", "work_ns"):
            t = getattr(self, name)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 1e15:
                raise ValueError(f"ThreadSpec.{name} must be a number in [0, 1e15), not {t!r}")


def thread_specs(threads: int | ThreadSpec | Mapping[str, Any] | Iterable[Any]) -> list[ThreadSpec]:
    """``threads`` as a list of ThreadSpec: a count (that many default
    threads), one spec, a dict of ThreadSpec fields, or a list of those."""
    if isinstance(threads, bool):
        raise TypeError("threads must be a count, a ThreadSpec, a dict or a list of them")
    if isinstance(threads, int):
        check_int("threads", threads, 1, 255)
        return [ThreadSpec() for _ in range(threads)]
    if isinstance(threads, ThreadSpec):
        return [threads]
    if isinstance(threads, Mapping):
        return [_spec(threads)]
    if isinstance(threads, Iterable) and not isinstance(threads, str):
        out = [t if isinstance(t, ThreadSpec) else _spec(t) for t in threads]
        if not 1 <= len(out) <= 255:
            raise ValueError(f"threads: 1..255 threads, not {len(out)}")
        return out
    raise TypeError(f"threads must be a count, a ThreadSpec, a dict or a list of them, not "
                    f"{type(threads).__name__}")  # fmt: skip


def _spec(d: Any) -> ThreadSpec:
    if not isinstance(d, Mapping):
        raise TypeError(f"a thread must be a ThreadSpec or a dict, not {type(d).__name__}")
    valid = {f.name for f in fields(ThreadSpec)}
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ValueError(f"unknown ThreadSpec field(s) {unknown}; valid: {sorted(valid)}")
    return ThreadSpec(**d)


#: a read slower than its thread's median by more than this held something
#: the median read does not: a flush IPI's handler, a preemption (on the test
#: host the two groups lie apart, 0.06-0.4 us and 9 us, with almost nothing
#: between them)
SLOW_GAP_NS = 1000.0


def slow_reads(hist: np.ndarray[Any, Any], above_ns: float) -> tuple[float, float]:
    """The share of a latency histogram's accesses in buckets wholly above
    ``above_ns``, and their median (NaN when there are none): the reads
    that held a flush IPI's handler, apart from the rest, however few they
    are (a p99 shows them only while they are over 1% of the reads)."""
    lower = np.concatenate(([0], _BUCKET_UPPER[:-1]))
    tail = np.where(lower >= above_ns, hist, 0)
    total = int(hist.sum())
    if not tail.sum() or not total:
        return 0.0, float("nan")
    return float(tail.sum()) / total, percentiles(tail)["p50"]


def percentiles(hist: np.ndarray[Any, Any], max_ns: float = math.inf) -> dict[str, float]:
    """p50, p99, p99.9 of a latency histogram (buckets 1 ns wide below 64 ns,
    within 3% above), NaN when it is empty. Each is interpolated in the
    bucket holding its rank, linearly between the bucket's bounds by the
    rank's place among the bucket's samples, and is never above ``max_ns``,
    the largest latency seen (a bucket's upper bound can be)."""
    total = int(hist.sum())
    out = {}
    cum = np.cumsum(hist)
    last = len(_BUCKET_UPPER) - 1
    for q in PERCENTILES:
        key = f"p{q:g}"
        if not total:
            out[key] = float("nan")
            continue
        rank = q / 100 * total
        i = min(int(np.searchsorted(cum, rank, side="left")), last)
        lo = float(_BUCKET_UPPER[i - 1]) if i else 0.0
        before = float(cum[i - 1]) if i else 0.0
        within = (rank - before) / float(hist[i]) if hist[i] else 1.0
        out[key] = min(lo + within * (float(_BUCKET_UPPER[i]) - lo), max_ns)
    return out


@dataclass
class ThreadResult:
    """One thread's run: its counters (the C struct thread_stats), latency
    percentiles over all its accesses and over those issued while the move
    ran, and what the move cost it against the same stream without it."""

    spec: ThreadSpec
    """The thread as asked for."""
    cpu: int
    """The CPU it ran on (1..T: the mover has CPU 0)."""
    stats: dict[str, float]
    """Its counters, by the fields of the C struct thread_stats (accesses,
    during_move, walks, faults, blocked, ipis, stale_hits, busy_ns, ...)."""
    latency_ns: dict[str, float]
    """p50, p99, p99.9, max over all accesses (ns)."""
    latency_during_ns: dict[str, float]
    """The same, accesses issued during the move (ns)."""
    baseline_latency_ns: dict[str, float]
    """The same, all accesses, without the move (ns)."""
    stall_ns: float
    """Its accesses' extra time because of the move: its busy time with the
    move less without (ns)."""
    refills_caused: int
    """TLB refills (walks) beyond the run without the move."""
    histogram: np.ndarray[Any, Any] = field(repr=False)
    """Latencies of all accesses: a count per bucket (buckets 1 ns wide below
    64 ns, within 3% above)."""
    histogram_during: np.ndarray[Any, Any] = field(repr=False)
    """The same, accesses issued during the move."""

    def slow_reads(self, gap_ns: float = SLOW_GAP_NS) -> tuple[float, float]:
        """The share of the accesses issued during the move that are slower
        than their median by more than ``gap_ns``, and their median (NaN
        without any), as ``host.HostContend.slow_reads`` reads the host's."""
        return slow_reads(self.histogram_during, self.latency_during_ns["p50"] + gap_ns)

    def row(self) -> dict[str, Any]:
        """A flat record."""
        return {"where": self.spec.where, "op": self.spec.op, "pattern": self.spec.pattern,
                "cpu": self.cpu, **self.stats,
                **{f"{k}_ns": v for k, v in self.latency_ns.items()},
                **{f"during_{k}_ns": v for k, v in self.latency_during_ns.items()},
                **{f"baseline_{k}_ns": v for k, v in self.baseline_latency_ns.items()},
                "stall_ns": self.stall_ns, "refills_caused": self.refills_caused}  # fmt: skip


@dataclass
class ContendResult:
    """One move with its concurrent threads."""

    arch: str
    """The arch profile's name (``pt.archs()``)."""
    policy: str
    """The kernel policy's name (``pt.policies()``)."""
    size: int
    """Bytes moved."""
    populate: str
    """What the moved region held: "write", "read", "thp", "sparse" or a mix
    such as "write:0.5,thp:0.5"."""
    dst_align: str
    """Where the destination starts within its PUD: "pud", "pmd", "page" or bytes."""
    cpus: int
    """CPUs running the process (the mover on CPU 0, the threads on 1..T; by
    default T + 1)."""
    locking: str
    """How the threads' faults lock: "per-vma" (Linux 6.4+) or "mmap_lock"."""
    safe: bool
    """Whether the policy flushes every moved entry before its lock drops."""
    seed: int
    """The seed the run's random choices come from (same seed, same numbers)."""
    move_alone_ns: float
    """The mover's estimate with nobody else running (ns)."""
    mover_wait_ns: float
    """The mover's wait for mmap_lock at its start (ns)."""
    mover_ipi_wait_ns: float
    """Its flushes' extra wait for receiving CPUs still in an earlier IPI's
    handler (ns)."""
    mover_flush_change_ns: float
    """Its flushes as they ran less as in the move alone (ns; negative where
    a thread asleep on a lock left its CPU lazy, so a flush skipped it)."""
    estimated_ns: float
    """The mover's elapsed time, its wait included (ns)."""
    flushes: int
    """The mover's flushes, each replayed on the threads' TLBs."""
    ipis_sent: int
    """Flush IPIs the mover's flushes sent."""
    threads: list[ThreadResult]
    """Each thread's run, in the order given."""
    sim_wall_ns: int
    """The simulator's wall time for the whole run: setup, the move and both
    replays (ns; varies from run to run)."""
    ratio: float | None = None
    """The baseline's mover time over this one's (set by ``ContendResults``)."""
    src_align: str = "pud"
    """Where the source starts within its PUD: "pud", "pmd", "page" or bytes."""
    mover: str = "mremap"
    """The call that moved or changed the region: a key of MOVERS."""

    @property
    def stall_ns(self) -> float:
        """The threads' extra time because of the move, summed."""
        return sum(t.stall_ns for t in self.threads)

    @property
    def cpu_ns(self) -> float:
        """All CPUs' time spent because of the move: the mover's and the
        threads' stalls."""
        return self.estimated_ns + self.stall_ns

    @property
    def unsafe_hits(self) -> int:
        """Accesses through a stale TLB entry after the lock covering the
        entry was dropped (possible only under an unsafe policy)."""
        return sum(int(t.stats["unsafe_hits"]) for t in self.threads)

    def worst(self, key: str = "p99", during: bool = True) -> float:
        """The highest ``key`` latency ("p50", "p99", "p99.9", "max") of any
        thread, over accesses issued during the move (or all)."""
        vals = [(t.latency_during_ns if during else t.latency_ns)[key] for t in self.threads]
        vals = [v for v in vals if v == v]
        return max(vals) if vals else float("nan")

    def row(self) -> dict[str, Any]:
        """A flat record (the threads summed or at their worst)."""
        tot = {k: sum(t.stats[k] for t in self.threads)
               for k in ("accesses", "during_move", "walks", "faults", "segv", "blocked",
                         "ipis", "stale_hits", "unsafe_hits", "blocked_ns", "ipi_ns",
                         "ptl_waits", "ptl_wait_ns")}  # fmt: skip
        return {
            "arch": self.arch, "policy": self.policy, "mover": self.mover, "size": self.size,
            "populate": self.populate, "src_align": self.src_align,
            "dst_align": self.dst_align, "cpus": self.cpus,
            "threads": len(self.threads),
            "where": ",".join(sorted({t.spec.where for t in self.threads})),
            "locking": self.locking, "safe": self.safe, "seed": self.seed,
            "move_alone_ns": self.move_alone_ns, "mover_wait_ns": self.mover_wait_ns,
            "mover_ipi_wait_ns": self.mover_ipi_wait_ns,
            "mover_flush_change_ns": self.mover_flush_change_ns,
            "mover_ns": self.estimated_ns, "flushes": self.flushes, "ipis_sent": self.ipis_sent,
            **tot, "stall_ns": self.stall_ns, "cpu_ns": self.cpu_ns,
            "refills_caused": sum(t.refills_caused for t in self.threads),
            **{f"worst_{k}_ns": self.worst(k) for k in ("p50", "p99", "p99.9", "max")},
            "ratio": self.ratio, "sim_wall_ns": self.sim_wall_ns,
        }  # fmt: skip


def _setup_key(r: ContendResult) -> tuple[Any, ...]:
    return (r.arch, r.mover, r.size, r.populate, r.src_align, r.dst_align, r.cpus,
            tuple(t.spec for t in r.threads), r.seed)  # fmt: skip


def _order(r: ContendResult) -> tuple[Any, ...]:
    pols = policies()
    return (r.arch, r.mover, r.size, r.populate, r.dst_align, r.cpus, len(r.threads),
            pols.index(r.policy) if r.policy in pols else len(pols), r.policy)  # fmt: skip


class ContendResults(Compared[ContendResult]):
    """ContendResults with each one's ratio to a baseline policy (the
    baseline's mover time over its own, same setup and threads);
    ``compare_concurrent`` returns one.

    A sequence of ``ContendResult`` (index it, iterate it, ``len``), ordered
    by arch, size, setup, number of threads and policy.

    Parameters
    ----------
    items
        The runs.
    baseline
        The policy each ratio is to (None: no ratios).

    ``baseline``, the records, files, DataFrame, units, table and plot
    (``rows``, ``to_csv``, ...): as ``Compared``.
    """

    def __init__(self, items: Iterable[ContendResult], baseline: str | None = "linux-4.19") -> None:
        super().__init__(sorted(items, key=_order), baseline, _setup_key)

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The summary table as text cells: (header, one row per run). p99
        and max are the worst thread's, over its accesses during the move."""
        head = ["arch", "size", "policy", "threads", "locking", "mover us", "wait us",
                "flushes", "IPIs", "stall us", "blocked", "refills", "p99 ns", "max ns",
                "CPU us", "unsafe hits", f"vs {self.baseline}", "sim ms"]  # fmt: skip
        rows = []
        # the mover's column where a run's mover is not mremap
        movers = any(r.mover != "mremap" for r in self)
        if movers:
            head.insert(2, "mover")
        for r in self:
            row = r.row()
            rows.append([
                r.arch, format_size(r.size), *([r.mover] if movers else []), r.policy,
                f"{len(r.threads)}x{row['where']}", r.locking,
                f"{r.estimated_ns / 1e3:.1f}", f"{r.mover_wait_ns / 1e3:.1f}", str(r.flushes),
                str(row["ipis"]), f"{r.stall_ns / 1e3:.1f}", str(row["blocked"]),
                str(row["refills_caused"]), f"{r.worst('p99'):.0f}",
                f"{r.worst('max'):.0f}", f"{r.cpu_ns / 1e3:.1f}",
                str(r.unsafe_hits) + ("" if r.safe else " UNSAFE"),
                "-" if r.ratio is None else f"{r.ratio:.2f}x", f"{r.sim_wall_ns / 1e6:.1f}",
            ])  # fmt: skip
        return head, rows

    def plot(self, path: str | os.PathLike[str] | None = None, title: str | None = None,
             ax: Any = None) -> Any:  # fmt: skip
        """The latency distribution of each run's threads during the move
        (one complementary CDF per policy, log-log), on ``ax`` (a new
        figure if None), written to ``path`` if given (its extension names
        the format). Returns the matplotlib Axes. Needs matplotlib."""
        from .plot import plot_latency  # lazy: matplotlib is optional

        return plot_latency(self, path, title, ax)


def run_concurrent(
    size: int,
    arch: str | Arch = "x86-64",
    policy: str | Policy = DEFAULT_POLICY,
    threads: int | ThreadSpec | Mapping[str, Any] | Iterable[Any] = 1,
    cpus: int | None = None,
    populate: str | Mapping[str, float] = "write",
    dst_align: str | int = "pmd",
    region_size: int | None = None,
    move_at_ns: float = 0.0,
    warmup: bool = True,
    dontunmap: bool = False,
    seed: int = 0,
    fresh_vma: bool = False,
    mover: str = "mremap",
    src_align: str | int = "pud",
    **arch_overrides: Any,
) -> ContendResult:
    """Move ``size`` bytes (``src_align`` source, PUD-aligned by default;
    ``dst_align`` destination: "pud" for whole-PUD moves, "pmd" for
    whole-PMD, "page" for PTE by PTE, or bytes past a PUD boundary, as
    each is for ``move``) from CPU 0 at ``move_at_ns`` while ``threads``
    run on CPUs 1..T.

    ``cpus`` (default T + 1) CPUs run the process; ``region_size`` (default
    ``size``) sizes the "outside" and "fresh" regions. With ``warmup`` each
    thread first fills its TLBs from its own stream (not recorded; the fresh
    and beside regions excepted). ``dontunmap`` moves with MREMAP_DONTUNMAP: the old
    range stays mapped, empty, and a thread's fault there maps a new page
    once mremap returns. With ``fresh_vma`` the "fresh" and "beside"
    regions are new mappings nothing has written to: their first write
    fault prepares the VMA's anon_vma, which needs mmap_lock even under
    per-VMA locks (mm/memory.c ``__vmf_anon_prepare``), so it waits for
    mremap; without it they belong to a VMA already in use (a heap's
    untouched pages). ``mover`` is the call: "mremap", "uffdio_move" (into
    a destination registered with a userfaultfd, placed as mremap's), or
    "madvise" (MADV_DONTNEED), "munmap" or "mprotect" (PROT_READ) of the
    source region (``dst_align`` is the moves' alone, ``dontunmap``
    mremap's; see the module docstring). Same ``seed``, same numbers.
    """
    if mover not in MOVERS:
        raise ValueError(f"mover must be one of {', '.join(MOVERS)}, not {mover!r}")
    if dontunmap and mover != "mremap":
        raise ValueError(f"dontunmap is an mremap flag; mover is {mover!r}")
    fate, mmap_lock, vma_write = MOVERS[mover]
    if mover == "uffdio_move" and not policy_of(policy).uffd_move:
        raise ValueError(f"mover 'uffdio_move' needs a policy with UFFDIO_MOVE (Linux 6.8 and "
                         f"later); {policy_of(policy).name} has none")  # fmt: skip
    t0 = time.perf_counter_ns()
    specs = thread_specs(threads)
    if cpus is None:
        cpus = len(specs) + 1
    check_int("cpus", cpus, 2, MAX_CPUS)
    check_int("seed", seed, 0, (1 << 63) - 1)
    # the mover's side, checked and placed as every move's, the CPUs having
    # run the process (no touches: the threads' warm-up fills their TLBs)
    setup = MoveSetup(size, arch, policy, populate, src_align, dst_align, cpus, touch=0, seed=seed,
                      arch_overrides=arch_overrides)  # fmt: skip
    a, pol, mix, src, dst = setup.profile, setup.pol, setup.mix, setup.src, setup.dst
    if len(specs) > cpus - 1:
        raise ValueError(f"threads: {len(specs)} threads need {len(specs) + 1} CPUs (the "
                         f"mover has CPU 0); cpus is {cpus}")  # fmt: skip
    rsize = size if region_size is None else region_size
    check_int("region_size", rsize, a.page_size, 1 << 50)
    if rsize % a.pmd_size:
        raise ValueError(f"region_size must be a multiple of {a.pmd_size}, not {rsize}")
    if isinstance(move_at_ns, bool) or not isinstance(move_at_ns, (int, float)) \
            or not 0 <= move_at_ns < 1e15:  # fmt: skip
        raise ValueError(f"move_at_ns must be a number in [0, 1e15), not {move_at_ns!r}")
    check_bool("warmup", warmup)
    check_bool("dontunmap", dontunmap)
    check_bool("fresh_vma", fresh_vma)
    # the rest of the last PUD but a PMD's gap (adjacent, the two VMAs would
    # merge into one that mremap write-locks whole)
    # the rest of the PUD the source ends in, past a PMD's gap (an offset
    # source: of the PUD its end lies in)
    src_end = src + size
    beside = max(-(-src_end // a.pud_size) * a.pud_size - src_end - a.pmd_size, 0)
    for i, s in enumerate(specs):
        if s.where == "beside" and not beside:
            raise ValueError(f"threads[{i}].where 'beside' needs a size that leaves room in its "
                             f"last {format_size(a.pud_size)} (PUD); {format_size(size)} "
                             "fills it")  # fmt: skip
        room = size if s.where == "inside" else beside if s.where == "beside" else rsize
        if s.span > room:
            raise ValueError(f"threads[{i}].span {format_size(s.span)} is past its "
                             f"{s.where!r} region ({format_size(room)})")  # fmt: skip
        if s.through_move and s.think_ns + s.work_ns <= 0 and a.cost("tlb_l1_hit") <= 0:
            raise ValueError(f"threads[{i}].through_move needs think_ns or work_ns > 0 when a "
                             "TLB hit costs nothing: its accesses would take no time")  # fmt: skip
    dst_base = region_bases(a)[1]
    gap = -(-(size + a.pud_size) // a.pud_size) * a.pud_size
    places = {"inside": src, "outside": src + gap, "fresh": src + gap + rsize + a.pud_size,
              "beside": src + size + a.pmd_size}  # fmt: skip
    if places["fresh"] + rsize > dst_base or dst + size > a.task_size:
        raise ValueError(f"size {format_size(size)} and region_size {format_size(rsize)} do "
                         f"not fit in {a.name}'s address space")  # fmt: skip

    mm = setup.prepare()[0]
    flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    used = {s.where for s in specs}
    if "outside" in used:
        mm.mmap(rsize, addr=places["outside"], flags=flags)
        populate_region(mm, places["outside"], rsize, mix)
    if "beside" in used:
        mm.mmap(beside, addr=places["beside"], flags=flags)
    huge_faults = "thp" in mix
    if mover in ("mremap", "uffdio_move"):
        mm.trace_moves = True
        if mover == "mremap":
            mm.mremap(src, size, size, MREMAP_MAYMOVE | MREMAP_FIXED
                      | (MREMAP_DONTUNMAP if dontunmap else 0), dst)  # fmt: skip
            st = mm.last_move
            assert st is not None and st.trace is not None
            trace: MoveTrace = st.trace
            alone = st.estimated_ns
            events_at = untraced_cost(a, st)
            # read once: the arrays below hold it (a 64 GiB PTE-by-PTE
            # move's events are tens of MB)
            st.drop_trace()
        else:
            mm.mmap(size, addr=dst, flags=flags)
            u = mm.userfaultfd(UFFD_FEATURE_MOVE)
            u.register(dst, size, UFFDIO_REGISTER_MODE_MISSING)
            # a GC moves what is there (ART: ALLOW_SRC_HOLES)
            u.move(dst, src, size, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)
            ust = u.last_move
            assert ust is not None and ust.trace is not None
            trace = ust.trace
            ust.trace = None
            alone = ust.estimated_ns
            # the ioctl's own cost: the trace holds the rest
            events_at = alone - trace.total_ns
        ext_lo, ext_hi, ext_moved, ext_unlocked = _extents(trace)
        fl_at, fl_lo, fl_hi, fl_stride, fl_freed, fl_ops = _flushes(trace)
        holds = _holds(trace, dst - src, a)
        del trace  # all in the arrays above now: freed before the replays
    else:
        g = gather_trace(mm.mm_struct, mover, src, src + size)
        alone, events_at = g.total_ns, g.call_ns
        ext_lo, ext_hi, ext_moved = g.ext_lo, g.ext_hi, g.ext_at
        # a zap frees nothing before its flush: no stale hit is unsafe
        ext_unlocked = np.full(len(ext_lo), np.inf)
        fl_at, fl_lo, fl_hi, fl_stride, fl_freed, fl_ops = (g.fl_at, g.fl_lo, g.fl_hi,
                                                            g.fl_stride, g.fl_freed,
                                                            g.fl_ops)  # fmt: skip
        holds = g.holds

    lens = {"inside": size, "outside": rsize, "fresh": rsize, "beside": beside}
    kept = [p for p in PLACES if p in used]  # regions: those the threads use
    regions = np.zeros(len(kept), dtype=_contend.REGION_DTYPE)
    for i, where in enumerate(kept):
        r = regions[i]
        r["lo"] = places[where]
        r["hi"] = places[where] + lens[where]
        r["delta"] = dst - src if where == "inside" and fate == int(_FATE.FATE_MOVED) else 0
        r["fate"] = fate if where == "inside" else int(_FATE.FATE_KEPT)
        r["vma_locked"] = where == "inside" and vma_write
        # an anon_vma: prepared by writes (a zero-page population prepares none)
        r["anon_vma"] = (not fresh_vma if where in UNPOPULATED
                         else any(k in mix for k in ("write", "thp")))  # fmt: skip
        huge = huge_faults and where in UNPOPULATED
        r["fault_shift"] = a.pmd_size.bit_length() - 1 if huge else a.page_shift
    th = np.zeros(len(specs), dtype=_contend.THREAD_SPEC_DTYPE)
    for i, s in enumerate(specs):
        th[i] = (i + 1, s.op == "write", PATTERNS.index(s.pattern), kept.index(s.where),
                 s.accesses, s.through_move, s.stride or a.page_size, s.span,
                 s.think_ns, s.work_ns)  # fmt: skip
    cfg = {
        "nthreads": len(specs), "nregions": len(regions), "mover_cpu": 0,
        # (UFFDIO_MOVE leaves the source VMA, empty, as MREMAP_DONTUNMAP does)
        "per_vma_locks": pol.per_vma_locks, "dontunmap": dontunmap or mover == "uffdio_move",
        "moving": True,
        "mmap_lock": mmap_lock,
        "split_pte": a.split_pte_lock, "split_pmd": a.split_pmd_lock,
        "move_at_ns": float(move_at_ns), "move_ns": alone,
        "events_at_ns": events_at,
        "tlb_l1_hit": a.cost("tlb_l1_hit"), "tlb_l2_hit": a.cost("tlb_l2_hit"),
        "walk_step": a.cost("walk_step"), "fault": a.cost("fault"),
        "write_fault": a.cost("cow_fault"), "segv": a.cost("fault"),
        "ipi_handler": a.costs["ipi_handler"].ns if "ipi_handler" in a.costs else 0.0,
        "ipi_send": a.costs["ipi"].ns if "ipi" in a.costs else 0.0,
        "seed": seed,
    }  # fmt: skip
    # no extents and no flushes: the runs without a move
    u64, f64 = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.float64)
    no_move = (u64, u64, f64, f64, f64, u64, u64, np.empty(0, dtype=np.int64),
               np.empty(0, dtype=np.uint8), np.empty((0, len(_flush.OP_NAMES)), dtype=np.int64),
               np.empty(0, dtype=_contend.HOLD_DTYPE))  # fmt: skip
    prices = flush_costs(a)

    def replay(moving: bool, th: np.ndarray[Any, Any]) -> tuple[Any, Any, Any]:
        tlbs = _flush.Tlbs(cpus, a.tlb_geometry(), mm.tlbs.flush)
        tlbs.ipi_lazy, tlbs.freed_ipi_lazy = mm.tlbs.ipi_lazy, mm.tlbs.freed_ipi_lazy
        for cpu in range(cpus):
            tlbs.set_cpu(cpu)
        if warmup:
            warm = th.copy()
            warm["accesses"] = [0 if s.where in UNPOPULATED else _warm(a) for s in specs]
            _contend.simulate(mm.tables, tlbs, {**cfg, "moving": False, "seed": seed + 1},
                              warm, regions, *no_move, *prices)  # fmt: skip
        if not moving:
            return _contend.simulate(mm.tables, tlbs, {**cfg, "moving": False}, th, regions,
                                     *no_move, *prices)  # fmt: skip
        return _contend.simulate(mm.tables, tlbs, cfg, th, regions, ext_lo, ext_hi, ext_moved,
                                 ext_unlocked, fl_at, fl_lo, fl_hi, fl_stride, fl_freed,
                                 fl_ops, holds, *prices)  # fmt: skip

    stats, hist, res = replay(True, th)
    # without the move: the same streams, as many accesses as each made with it
    same = th.copy()
    same["accesses"] = stats["accesses"]
    same["through_move"] = 0
    bstats, bhist, _ = replay(False, same)
    results = []
    for i, s in enumerate(specs):
        row = {k: stats[i][k].item() for k in _contend.THREAD_DTYPE.names or ()}
        results.append(ThreadResult(
            spec=s, cpu=i + 1, stats=row,
            latency_ns={**percentiles(hist[i, 0], row["max_ns"]), "max": row["max_ns"]},
            latency_during_ns={**percentiles(hist[i, 1], row["max_during_ns"]),
                               "max": row["max_during_ns"]},
            baseline_latency_ns={**percentiles(bhist[i, 0], float(bstats[i]["max_ns"])),
                                 "max": float(bstats[i]["max_ns"])},
            stall_ns=row["busy_ns"] - float(bstats[i]["busy_ns"]),
            refills_caused=int(row["walks"] - bstats[i]["walks"]),
            histogram=hist[i, 0].copy(), histogram_during=hist[i, 1].copy(),
        ))  # fmt: skip
    start, end = float(res["mover_start_ns"]), float(res["mover_end_ns"])
    return ContendResult(
        arch=a.name, policy=pol.name, size=size,
        populate=",".join(k if v == 1 else f"{k}:{v:g}" for k, v in mix.items()),
        src_align=str(src_align), dst_align=str(dst_align), cpus=cpus,
        locking="per-vma" if pol.per_vma_locks else "mmap_lock", safe=pol.safe, seed=seed,
        move_alone_ns=alone, mover_wait_ns=start - move_at_ns,
        mover_ipi_wait_ns=float(res["mover_ipi_wait_ns"]),
        mover_flush_change_ns=float(res["mover_flush_change_ns"]), estimated_ns=end - move_at_ns,
        flushes=int(res["flushes"]), ipis_sent=int(res["ipis_sent"]), threads=results,
        sim_wall_ns=time.perf_counter_ns() - t0, mover=mover,
    )  # fmt: skip


def flush_costs(a: Arch) -> tuple[np.ndarray[Any, Any], ...]:
    """What a flush costs each CPU it reaches, from the arch's flush family
    (``FlushRules.remote_ops`` and ``interrupts``), per flush operation in
    ``_flush.OP_NAMES`` order: (ns per operation run in the receiver's
    handler, 1 where the operation interrupts the receivers, and ns the
    flushing CPU pays per operation, as the estimate prices it:
    ``cost.flush_op_events``)."""
    names = _flush.OP_NAMES
    remote = np.zeros(len(names), dtype=np.float64)
    interrupts = np.zeros(len(names), dtype=np.uint8)
    sender = np.zeros(len(names), dtype=np.float64)
    for op, event in a.flush.remote_ops.items():
        remote[names.index(op)] = a.costs[event].ns if event in a.costs else 0.0
    for op in a.flush.interrupts:
        interrupts[names.index(op)] = 1
    for op, event in flush_op_events(a).items():
        sender[names.index(op)] = a.costs[event].ns if event in a.costs else 0.0
    return remote, interrupts, sender


def _warm(a: Arch) -> int:
    """Accesses that fill a CPU's TLBs: twice their entries."""
    return 2 * sum(int(x["sets"]) * int(x["ways"]) for x in a.tlb_geometry()["arrays"])


def _extents(trace: MoveTrace) -> tuple[np.ndarray[Any, Any], ...]:
    """The moved extents sorted by old address: (lo, hi, when each moved,
    when the first page-table lock released after it dropped), ns from the
    first traced event."""
    ev = trace.events
    kind = ev["kind"]
    moved = np.flatnonzero(np.isin(kind, (_KIND["ptes"], _KIND["entry"])))
    rmap = LOCK_CLASSES.index("rmap")
    unlocks = np.flatnonzero((kind == _KIND["unlock"]) & (ev["what"] != rmap))
    nxt = np.searchsorted(unlocks, moved, side="right")
    unl = np.where(nxt < len(unlocks),
                   trace.end_ns[unlocks[np.minimum(nxt, max(len(unlocks) - 1, 0))]]
                   if len(unlocks) else np.inf, np.inf)  # fmt: skip
    lo, hi = ev["lo"][moved], ev["hi"][moved]
    order = np.argsort(lo, kind="stable")
    return (np.ascontiguousarray(lo[order], dtype=np.uint64),
            np.ascontiguousarray(hi[order], dtype=np.uint64),
            np.ascontiguousarray(trace.end_ns[moved][order], dtype=np.float64),
            np.ascontiguousarray(np.asarray(unl, dtype=np.float64)[order]))  # fmt: skip


def _flushes(trace: MoveTrace) -> tuple[np.ndarray[Any, Any], ...]:
    """The flushes in order: (start ns, lo, hi, stride shift, whether it
    flushes as freed page tables do: the unmap's, and flush_tlb_mm of a
    pending reclaim batch, which x86 issues with freed_tables; its
    operations in the move alone, a row of ``_flush.OP_NAMES`` each)."""
    ev = trace.events
    m = np.isin(ev["kind"], [_KIND[k] for k in FLUSH_KINDS])
    return (np.ascontiguousarray(trace.end_ns[m] - trace.durations_ns[m], dtype=np.float64),
            np.ascontiguousarray(ev["lo"][m], dtype=np.uint64),
            np.ascontiguousarray(ev["hi"][m], dtype=np.uint64),
            np.ascontiguousarray(ev["entries"][m], dtype=np.int64),
            np.ascontiguousarray(np.isin(ev["kind"][m], [_KIND["finish"], _KIND["batched"]]),
                                 dtype=np.uint8),
            np.ascontiguousarray(trace.flush_ops[ev["what"][m]], dtype=np.int64))  # fmt: skip


def _holds(trace: MoveTrace, delta: int, a: Arch) -> np.ndarray[Any, Any]:
    """The mover's page-table lock holds by the tables they cover
    (``_contend.HOLD_DTYPE``, sorted, merged per key): a hold covers the old
    and the new table of the entries moved under it (the old and the new
    lock are held together), keyed by address as ``_contend`` keys a
    fault's lock; mm->page_table_lock (and every lock without split locks)
    is one key. Vectorized: a 64 GiB PTE-by-PTE move has 10^5 holds."""
    ev, end = trace.events, trace.end_ns
    kind, what = ev["kind"], ev["what"]
    lockish = what != LOCK_CLASSES.index("rmap")
    takes = np.flatnonzero((kind == _KIND["lock"]) & lockish)
    drops = np.flatnonzero((kind == _KIND["unlock"]) & lockish)
    if not len(takes) or len(takes) != len(drops):
        return np.empty(0, dtype=_contend.HOLD_DTYPE)
    # holds of one lock never nest: its k-th take pairs with its k-th drop
    t = takes[np.lexsort((takes, ev["lo"][takes]))]
    d = drops[np.lexsort((drops, ev["lo"][drops]))]
    moved = np.flatnonzero(np.isin(kind, (_KIND["ptes"], _KIND["entry"])))
    first = np.searchsorted(moved, t, side="right")
    last = np.searchsorted(moved, d, side="left")
    some = last > first  # holds with entries moved under them
    t, d, first, last = t[some], d[some], first[some], last[some]
    if not len(t):
        return np.empty(0, dtype=_contend.HOLD_DTYPE)
    mlo, mhi = ev["lo"][moved], ev["hi"][moved]
    del moved
    if (np.diff(mlo.astype(np.int64)) >= 0).all():
        # the move went up the old range: a hold's first entry is its lowest
        lo, hi = mlo[first], np.maximum.accumulate(mhi)[last - 1]
    else:
        lo = np.array([mlo[f:e].min() for f, e in zip(first, last, strict=True)], np.uint64)
        hi = np.array([mhi[f:e].max() for f, e in zip(first, last, strict=True)], np.uint64)
    del mlo, mhi, first, last
    cls = what[d]
    sh = np.zeros(len(d), dtype=np.uint64)
    tag = np.full(len(d), _move.LOCK_ID_MM, dtype=np.uint64)
    for name, span, code in (("ptl_pte", a.pmd_size, _move.LOCK_ID_PTE),
                             ("ptl_pmd", a.pud_size, _move.LOCK_ID_PMD)):  # fmt: skip
        m = cls == LOCK_CLASSES.index(name)
        sh[m] = span.bit_length() - 1
        tag[m] = np.uint64(code << _move.LOCK_ID_SHIFT)
    del cls
    split = tag != _move.LOCK_ID_MM
    off = np.uint64(delta % (1 << 64))
    old_lo, old_hi, new_lo, new_hi = (
        np.where(split, tag | (x >> sh), tag)
        for x in (lo, hi - np.uint64(1), lo + off, hi - np.uint64(1) + off)
    )
    # a hold's entries sit in one old and one new table but where they
    # straddle two (the tables the rows beyond the first two name)
    two_old, two_new = old_hi != old_lo, new_hi != new_lo
    keys = np.concatenate((old_lo, new_lo, old_hi[two_old], new_hi[two_new]))
    t0, t1 = end[t], end[d]
    start = np.concatenate((t0, t0, t0[two_old], t0[two_new]))
    stop = np.concatenate((t1, t1, t1[two_old], t1[two_new]))
    del old_lo, old_hi, new_lo, new_hi, lo, hi, tag, sh, t0, t1, two_old, two_new, split
    order = np.lexsort((start, keys))
    keys, start, stop = keys[order], start[order], stop[order]
    del order
    # merge overlapping holds of one key: a running end per key (keys ranked
    # and offset by more than any time, so one running maximum serves all)
    rank = np.cumsum(np.r_[0, keys[1:] != keys[:-1]]).astype(np.float64)
    big = float(stop.max()) + 1.0
    run = np.maximum.accumulate(stop + rank * big)
    group = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1])
                                 | (start[1:] + rank[1:] * big > run[:-1])])  # fmt: skip
    del rank, run
    out = np.empty(len(group), dtype=_contend.HOLD_DTYPE)
    out["key"] = keys[group]
    out["start"] = start[group]
    out["end"] = np.maximum.reduceat(stop, group)
    return out


def compare_concurrent(
    size: int,
    arch: str | Arch = "x86-64",
    policies: Sequence[str] = (
        "linux-4.19",
        "fast-mremap-v2",
        "linux-5.0",
        "linux-6.8",
        "batched-ptl",
    ),
    threads: int | ThreadSpec | Mapping[str, Any] | Iterable[Any] = 1,
    baseline: str | None = "linux-4.19",
    **kwargs: Any,
) -> ContendResults:
    """``run_concurrent`` under each policy (same setup, threads and seed)."""
    if isinstance(policies, str):
        raise TypeError("policies must be a sequence of policy names, not one str")
    return ContendResults([run_concurrent(size, arch, p, threads, **kwargs) for p in policies],
                          baseline)  # fmt: skip
