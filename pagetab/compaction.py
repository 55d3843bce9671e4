"""One compaction cycle of a userfaultfd garbage collector, as Android's ART
runs it (runtime/gc/collector/mark_compact.cc), simulated and priced.

The cycle, at the kernel's level:

1. ``mremap(moving, size, size, MREMAP_MAYMOVE | MREMAP_FIXED |
   MREMAP_DONTUNMAP, from)``: the heap's pages go to the from-space; the
   moving space stays mapped, empty (KernelPrepareRangeForUffd);
2. UFFDIO_REGISTER of the moving space (MISSING mode: a mutator touching a
   page not yet compacted faults to the GC, not simulated here);
3. the live pages go back into the moving space with UFFDIO_MOVE, slid
   down over the dead ones (sliding compaction), in the GC's order (ART's
   CompactMovingSpace walks from the highest address down), one ioctl per
   run of pages contiguous in both spaces (MapMovingSpacePages: "a
   contiguous range that can be mapped with single ioctl").

The heap's layout is two numbers: the live fraction and the mean length of
a run of live pages (objects that live together sit together); runs and
gaps are geometric, drawn from ``seed``, so the same layout can be replayed
on this machine's kernel (``host.measure_gc_cycle``). ART builds each
compacted page in a from-space page before it moves it; that copy is user
time and not priced, and neither is releasing the from-space afterwards
(MADV_DONTNEED): what is priced is the kernel's part of steps 1 and 3.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arch import Arch
from .argcheck import check_int
from .constants import (
    MADV_NOHUGEPAGE,
    MADV_POPULATE_WRITE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    UFFD_FEATURE_MOVE,
    UFFDIO_REGISTER_MODE_MISSING,
)
from .plot import plot_bars
from .policy import Policy, policies
from .policy import policy as _policy
from .results import Compared, flat_row
from .scenario import MoveSetup
from .space import AddressSpace
from .units import format_size
from .userfaultfd import UffdMoveStats

__all__ = ["ORDERS", "GcResult", "GcResults", "compare_gc", "gc_moves", "run_gc"]

#: the order the GC moves runs in: ART's (highest address first), or ascending
ORDERS = ("reverse", "forward")
MIB = 1 << 20


def gc_moves(pages: int, live: float = 0.5, run_pages: float = 16.0,
             ioctl_pages: int | None = None, order: str = "reverse",
             seed: int = 0) -> np.ndarray[Any, np.dtype[np.int64]]:  # fmt: skip
    """The UFFDIO_MOVE calls of one cycle over a heap of ``pages`` pages:
    rows of (from-space page, moving-space page, pages), in call order.

    Live runs are drawn with mean length ``run_pages`` and dead gaps with
    mean ``run_pages * (1 - live) / live`` (both geometric, a gap may be
    empty), so about ``live`` of the pages are live; each live page slides
    down to the number of live pages below it. A run (drawn runs with no
    gap between them are one) is one call, cut into calls of at most
    ``ioctl_pages`` pages if given (1: one call per page)."""
    check_int("pages", pages, 1)
    if isinstance(live, bool) or not isinstance(live, int | float) or not 0 < live <= 1:
        raise ValueError(f"live must be a fraction in (0, 1], not {live!r}")
    if isinstance(run_pages, bool) or not isinstance(run_pages, int | float) or run_pages < 1:
        raise ValueError(f"run_pages must be a number >= 1, not {run_pages!r}")
    if ioctl_pages is not None:
        check_int("ioctl_pages", ioctl_pages, 1)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    gap_mean = run_pages * (1 - live) / live
    n = int(pages / (run_pages + gap_mean)) * 2 + 16
    runs = rng.geometric(1 / run_pages, n).astype(np.int64)
    gaps = (rng.geometric(1 / (gap_mean + 1), n) - 1).astype(np.int64) if live < 1 else \
        np.zeros(n, dtype=np.int64)  # fmt: skip
    # a gap, then a run, and so on, until the heap ends
    ends = np.cumsum(gaps + runs)
    starts = ends - runs
    keep = starts < pages
    starts, runs = starts[keep], np.minimum(runs[keep], pages - starts[keep])
    if not len(starts):  # a small heap, all of it dead
        return np.zeros((0, 3), dtype=np.int64)
    # runs a gap of 0 pages apart are one run: one call moves them
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1] + runs[:-1]])
    starts, runs = starts[first], np.add.reduceat(runs, first)
    dst = np.cumsum(runs) - runs
    if ioctl_pages is not None:
        # cut each run into calls of at most ioctl_pages
        parts = -(-runs // ioctl_pages)
        first = np.repeat(np.cumsum(parts) - parts, parts)
        k = np.arange(parts.sum()) - first
        starts = np.repeat(starts, parts) + k * ioctl_pages
        dst = np.repeat(dst, parts) + k * ioctl_pages
        runs = np.minimum(ioctl_pages, np.repeat(runs, parts) - k * ioctl_pages)
    out = np.stack([starts, dst, runs], axis=1).astype(np.int64)
    return np.ascontiguousarray(out[::-1] if order == "reverse" else out)


@dataclass
class GcResult:
    """One simulated compaction cycle: what the kernel did and its price."""

    arch: str
    """The arch profile's name (``pt.archs()``)."""
    policy: str
    """The kernel policy's name (``pt.policies()``)."""
    size: int
    """The heap's size (bytes)."""
    live: float
    """The fraction of the heap's pages that are live (as asked for)."""
    run_pages: float
    """The mean length of a run of live pages (pages)."""
    order: str
    """The order the GC moves runs in (``ORDERS``): "reverse" (ART's, highest
    address first) or "forward"."""
    cpus: int
    """CPUs running the process (CPU 0, the GC thread, makes the calls)."""
    heap_pages: int
    """The heap's size in pages."""
    pages_moved: int
    """Live pages UFFDIO_MOVE moved back into the moving space."""
    ioctls: int
    """UFFDIO_MOVE calls made."""
    mremap_ns: float
    """Estimated kernel time of the mremap(MREMAP_DONTUNMAP) (ns)."""
    uffd_move_ns: float
    """Estimated kernel time of all the UFFDIO_MOVE calls (ns)."""
    uffd_move_ns_range: tuple[float, float]
    """(low, high) of ``uffd_move_ns`` (ns)."""
    estimated_ns: float
    """Estimated kernel time of the cycle: ``mremap_ns`` + ``uffd_move_ns`` (ns)."""
    estimated_ns_range: tuple[float, float]
    """(low, high) of ``estimated_ns`` (ns)."""
    breakdown: dict[str, float]
    """UFFDIO_MOVE's time by category ("syscall", "entry moves", "locks", and
    the arch's flush categories; ns)."""
    counters: dict[str, int]
    """What the UFFDIO_MOVE calls did, summed (the fields of _uffd.pyx's
    uffd_move_stats: ptes_moved, folio_locks, flush_calls, ...)."""
    flush_ops: dict[str, int]
    """The arch's flush instructions behind the UFFDIO_MOVE calls' flushes
    (``pt.OP_INFO``)."""
    sim_wall_ns: int
    """Wall time of the simulated cycle (mremap, registration and moves; ns)."""
    ratio: float | None = field(default=None)
    """Estimated time of the baseline policy / this one (set by ``GcResults``)."""

    @property
    def ns_per_mb(self) -> float:
        """Estimated kernel time per MiB moved (nan when nothing moved)."""
        if not self.pages_moved:
            return float("nan")
        return self.estimated_ns * MIB / (self.pages_moved * (self.size // self.heap_pages))

    @property
    def flush_ns(self) -> float:
        """UFFDIO_MOVE's flush time: the flush instructions and the IPIs."""
        return sum(v for k, v in self.breakdown.items() if k not in _NOT_FLUSH)

    def row(self) -> dict[str, Any]:
        """A flat dict of scalars (one CSV row), as ``MoveResult.row``."""
        return {**flat_row(self), "ns_per_mb": self.ns_per_mb, "flush_ns": self.flush_ns}


_NOT_FLUSH = ("syscall", "entry moves", "folio lookups", "locks")


def run_gc(size: int = 256 * MIB, arch: str | Arch = "x86-64", policy: str | Policy = "linux-6.18",
           live: float = 0.5, run_pages: float = 16.0, order: str = "reverse",
           ioctl_pages: int | None = None, cpus: int = 4, touch: int = 4096, seed: int = 0,
           **arch_overrides: Any) -> GcResult:  # fmt: skip
    """Simulate one compaction cycle of a ``size``-byte heap of written base
    pages (``gc_moves`` gives the calls) on ``cpus`` CPUs running the
    process, each having touched ``touch`` random heap pages (their TLBs
    hold them, so flushes reach them). ``arch_overrides`` as in
    ``run_move``."""
    check_int("touch", touch, 0, 1 << 26)
    # the heap's checks and place are every move's: PUD-aligned, moved to
    # a PUD-aligned space (the GC's own population and touches follow)
    setup = MoveSetup(size, arch, policy, "write", "pud", "pud", cpus, touch=touch, seed=seed,
                      arch_overrides=arch_overrides)  # fmt: skip
    a, pol, moving, space = setup.profile, setup.pol, setup.src, setup.dst
    if not pol.uffd_move:
        with_move = [p for p in policies() if _policy(p).uffd_move]
        raise ValueError(f"policy {pol.name!r} has no UFFDIO_MOVE (Linux 6.8+); "
                         f"valid: {', '.join(with_move)} or a Policy with uffd_move")  # fmt: skip
    pages = size >> a.page_shift
    moves = gc_moves(pages, live, run_pages, ioctl_pages, order, seed)
    mm = AddressSpace(a, cpus=cpus, policy=pol, thp="madvise")
    mm.mmap(size, addr=moving, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    mm.madvise(moving, size, MADV_NOHUGEPAGE)
    mm.madvise(moving, size, MADV_POPULATE_WRITE)
    rng = np.random.default_rng(seed)
    for cpu in range(cpus):
        mm.switch_mm(cpu)  # a mutator thread ran there: in mm_cpumask
        if touch:
            offs = rng.integers(0, pages, touch, dtype=np.uint64) << np.uint64(a.page_shift)
            mm.access(np.uint64(moving) + offs, cpu=cpu)
    mm.switch_mm(0)  # the GC thread makes the calls
    t0 = time.perf_counter_ns()
    mm.mremap(moving, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, space)
    assert mm.last_move is not None
    remap = mm.last_move
    u = mm.userfaultfd(UFFD_FEATURE_MOVE)
    u.register(moving, size, UFFDIO_REGISTER_MODE_MISSING)
    shift = np.uint64(a.page_shift)
    calls = np.stack([np.uint64(moving) + (moves[:, 1].astype(np.uint64) << shift),
                      np.uint64(space) + (moves[:, 0].astype(np.uint64) << shift),
                      moves[:, 2].astype(np.uint64) << shift], axis=1)  # fmt: skip
    u.move_many(calls)
    st = u.last_move or UffdMoveStats()  # none when no page is live
    wall = time.perf_counter_ns() - t0
    r_low, r_high = remap.estimated_ns_range
    return GcResult(
        arch=a.name, policy=pol.name, size=size, live=float(live),
        run_pages=float(run_pages), order=order, cpus=cpus, heap_pages=pages,
        pages_moved=int(moves[:, 2].sum()), ioctls=len(moves),
        mremap_ns=remap.estimated_ns, uffd_move_ns=st.estimated_ns,
        uffd_move_ns_range=st.estimated_ns_range,
        estimated_ns=remap.estimated_ns + st.estimated_ns,
        estimated_ns_range=(r_low + st.estimated_ns_range[0], r_high + st.estimated_ns_range[1]),
        breakdown=st.breakdown, counters=st.counters, flush_ops=st.flush_ops, sim_wall_ns=wall,
    )  # fmt: skip


def _heap_key(r: GcResult) -> tuple[Any, ...]:
    """What makes two cycles the same but for the policy: the arch and the
    calls made (the heap, its layout and the call size decide them)."""
    return (r.arch, r.size, r.live, r.run_pages, r.order, r.cpus, r.ioctls, r.pages_moved)


class GcResults(Compared[GcResult]):
    """GcResults with each one's ratio to a baseline policy (the baseline's
    estimated time over its own, same arch and heap: above 1 is faster);
    ``compare_gc`` returns one.

    A sequence of ``GcResult`` (index it, iterate it, ``len``), in the order
    given.

    Parameters
    ----------
    items
        The cycles.
    baseline
        The policy each ratio is to (None: no ratios).

    ``baseline``, the records, files, DataFrame, units, table and plot
    (``rows``, ``to_csv``, ...): as ``Compared``.
    """

    def __init__(self, items: Iterable[GcResult], baseline: str | None = "linux-6.17") -> None:
        super().__init__(items, baseline, _heap_key)

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The summary table as text cells: (header, one row per cycle)."""
        head = ["arch", "policy", "ioctls", "pages", "flushes", "moves us", "lookups us",
                "locks us", "flush us", "mremap us", "est. us", "est. range us", "us/MiB",
                f"vs {self.baseline}", "sim ms"]  # fmt: skip
        rows = []
        for r in self:
            low, high = r.estimated_ns_range
            rows.append([
                r.arch, r.policy, str(r.ioctls), str(r.pages_moved),
                str(r.counters.get("flush_calls", 0)),
                f"{r.breakdown.get('entry moves', 0) / 1e3:.1f}",
                f"{r.breakdown.get('folio lookups', 0) / 1e3:.1f}",
                f"{r.breakdown.get('locks', 0) / 1e3:.1f}", f"{r.flush_ns / 1e3:.1f}",
                f"{r.mremap_ns / 1e3:.1f}", f"{r.estimated_ns / 1e3:.1f}",
                f"{low / 1e3:.1f}-{high / 1e3:.1f}", f"{r.ns_per_mb / 1e3:.2f}",
                "-" if r.ratio is None else f"{r.ratio:.2f}x", f"{r.sim_wall_ns / 1e6:.1f}",
            ])  # fmt: skip
        return head, rows

    def columns(self) -> dict[str, dict[str, str]]:
        """As ``Compared.columns``; the counters are UFFDIO_MOVE's
        (move_pages), not mremap's, whatever their names share."""
        out = super().columns()
        names = {k for r in self for k in r.counters}
        for k in names & set(out):
            what = k.replace("_", " ")
            out[k] = {"unit": out[k]["unit"], "description": f"UFFDIO_MOVE (move_pages): {what}"}
        return out

    def plot(self, path: str | os.PathLike[str] | None = None, title: str | None = None,
             ax: Any = None) -> Any:  # fmt: skip
        """Each cycle's estimated time (mremap and the UFFDIO_MOVEs), a bar
        per arch and policy with its range, on ``ax`` (a new figure if
        None), written to ``path`` if given (its extension names the
        format). Returns the matplotlib Axes. Needs matplotlib."""
        archs = sorted({r.arch for r in self})
        sizes = sorted({r.size for r in self})
        return plot_bars(
            [r.policy if len(archs) == 1 else f"{r.arch} {r.policy}" for r in self],
            [r.estimated_ns / 1e3 for r in self],
            [tuple(x / 1e3 for x in r.estimated_ns_range) for r in self],
            [False] * len(self), "estimated time of the compaction cycle (µs)",
            title or (f"a GC's compaction cycle by policy: {', '.join(archs)}, "
                      f"{', '.join(format_size(n) for n in sizes)} heap"),
            path, ax,
        )  # fmt: skip


def compare_gc(size: int = 256 * MIB, archs: Sequence[str | Arch] = ("x86-64", "arm64-4k"),
               policies: Sequence[str] = ("linux-6.8", "linux-6.17", "linux-6.18"),
               baseline: str | None = "linux-6.17",
               progress: Callable[[int, int], None] | None = None,
               **kwargs: Any) -> GcResults:  # fmt: skip
    """``run_gc`` for every arch and policy on the same heap (``kwargs``:
    run_gc's other arguments); ``progress(done, total)`` after each."""
    jobs = [(a, p) for a in archs for p in policies]
    out = []
    for i, (a, p) in enumerate(jobs):
        out.append(run_gc(size, a, p, **kwargs))
        if progress is not None:
            progress(i + 1, len(jobs))
    return GcResults(out, baseline)
