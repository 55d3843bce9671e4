"""Simulated and native runs of the same operation, side by side.

Used by the native-vs-simulated benchmarks (bench/) and tests: the same
region size, population and alignments, moved back and forth on the host
kernel (pagetab.host) and in an AddressSpace under the policy matching the
host kernel (linux-6.8 and later behave alike for these moves).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from . import host
from .compaction import gc_moves, run_gc
from .constants import (
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
)
from .space import AddressSpace
from .stats import MoveStats

__all__ = [
    "PATHS",
    "Comparison",
    "GcComparison",
    "PingPong",
    "compare_access",
    "compare_gc_cycle",
    "compare_move",
    "compare_populate",
    "sim_move_times",
]

#: path name -> destination offset from a PUD boundary (the source is PUD aligned)
PATHS = {"move-pte": 4096, "move-pmd": 2 << 20, "move-pud": 0}


@dataclass
class Comparison:
    """Median wall times of one operation, simulated and native."""

    group: str
    size: int
    sim_ns: float
    native_ns: float | None  # None: the host cannot run it

    @property
    def ratio(self) -> float | None:
        """simulated / native (below 1: the simulation is faster)."""
        return None if self.native_ns is None else self.sim_ns / self.native_ns


class PingPong:
    """A populated region moved back and forth with mremap(MAYMOVE|FIXED).

    The source is PUD aligned, the destination ``dst_offset`` past a PUD
    boundary. ``write``: written pages, else the zero page. ``touch``: that
    many CPUs first read 4096 random pages each (mm_cpumask, warm TLBs).
    ``thp_sizes``: as AddressSpace's (large folios where written).
    """

    def __init__(self, size: int, dst_offset: int, policy: str = "linux-6.8",
                 arch: str = "x86-64", cpus: int = 1, write: bool = False,
                 touch: int = 0, thp_sizes: dict[int, str] | None = None) -> None:  # fmt: skip
        self.size = size
        self.mm = AddressSpace(arch, cpus=cpus, policy=policy, thp_sizes=thp_sizes)
        self.at, self.other = 1 << 44, (1 << 45) + dst_offset
        self.mm.mmap(size, addr=self.at, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        self.mm.madvise(self.at, size, MADV_POPULATE_WRITE if write else MADV_POPULATE_READ)
        rng = np.random.default_rng(1)
        for cpu in range(touch):
            self.mm.access(self.at + rng.integers(0, size, 4096, dtype=np.uint64), cpu=cpu)

    def move(self) -> MoveStats:
        """One move to the other address; its MoveStats."""
        self.mm.mremap(self.at, self.size, self.size, MREMAP_MAYMOVE | MREMAP_FIXED, self.other)
        self.at, self.other = self.other, self.at
        assert self.mm.last_move is not None
        return self.mm.last_move

    def times(self, repeats: int) -> list[int]:
        """Wall ns of ``repeats`` moves."""
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            self.move()
            out.append(time.perf_counter_ns() - t0)
        return out


def sim_move_times(size: int, dst_offset: int, repeats: int, policy: str = "linux-6.8",
                   arch: str = "x86-64") -> list[int]:  # fmt: skip
    """Wall ns of ``repeats`` simulated back-and-forth moves of a zero-page region."""
    return PingPong(size, dst_offset, policy, arch).times(repeats)


#: PUD- and PMD-path moves take microseconds to milliseconds on both sides,
#: where a shared machine's jitter is as large as the move: both sides
#: repeat at least this often (cheap at these durations)
MIN_REPEATS = {"move-pud": 51, "move-pmd": 21}


def compare_move(group: str, size: int, repeats: int = 5) -> Comparison:
    """One path at one size: simulated and (where possible) native medians
    (the PUD and PMD paths at least MIN_REPEATS times on each side)."""
    off = PATHS[group]
    repeats = max(repeats, MIN_REPEATS.get(group, 1))
    sim = statistics.median(sim_move_times(size, off, repeats))
    native = None
    if host.available()[0]:
        native = host.measure_move(size, "zero", "pud", off, repeats=repeats,
                                   verify=False).median_ns  # fmt: skip
    return Comparison(group, size, float(sim), native)


def compare_populate(size: int, repeats: int = 3) -> Comparison:
    """MADV_POPULATE_READ of a fresh region: simulated and native medians."""
    times = []
    for _ in range(repeats):
        mm = AddressSpace("x86-64", cpus=1)
        a = mm.mmap(size, addr=1 << 44, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        t0 = time.perf_counter_ns()
        mm.madvise(a, size, MADV_POPULATE_READ)
        times.append(time.perf_counter_ns() - t0)
    native = None
    if host.available()[0]:
        native = float(np.median(host.measure_populate(size, repeats)))
    return Comparison("populate", size, float(statistics.median(times)), native)


def compare_access(size: int, n: int = 1_000_000, repeats: int = 3) -> Comparison:
    """``n`` random reads over a zero-page region of ``size`` bytes: simulated
    (``AddressSpace.access`` on one CPU, TLBs and walks) and native (byte
    loads at the same offsets on the host), median wall times of one pass."""
    offs = np.random.default_rng(2).integers(0, size, n, dtype=np.uint64)
    mm = AddressSpace("x86-64", cpus=1)
    a = mm.mmap(size, addr=1 << 44, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    mm.madvise(a, size, MADV_POPULATE_READ)
    addrs = offs + np.uint64(a)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        mm.access(addrs)
        times.append(time.perf_counter_ns() - t0)
    native = None
    if host.available()[0]:
        native = float(np.median(host.measure_access(size, offs, repeats)))
    return Comparison("access", size, float(statistics.median(times)), native)


@dataclass
class GcComparison:
    """One compaction cycle on this kernel and in the simulator (x86-64,
    under the policy of this kernel's version): the kernel's measured time
    beside the simulator's estimate of it, and the simulator's own speed."""

    size: int
    ioctls: int
    pages_moved: int
    policy: str
    #: measured medians on this kernel (None: it cannot run userfaultfd)
    native_mremap_ns: float | None
    native_moves_ns: float | None
    #: the simulator's estimates of the same
    est_mremap_ns: float
    est_moves_ns: float
    est_moves_range: tuple[float, float]
    #: median wall time of a simulated cycle
    sim_ns: float

    @property
    def error(self) -> float | None:
        """(estimated - measured) / measured for the UFFDIO_MOVE calls."""
        if not self.native_moves_ns:
            return None
        return (self.est_moves_ns - self.native_moves_ns) / self.native_moves_ns

    @property
    def ratio(self) -> float | None:
        """Simulated wall time / the kernel's time for the cycle."""
        if self.native_moves_ns is None or self.native_mremap_ns is None:
            return None
        return self.sim_ns / (self.native_moves_ns + self.native_mremap_ns)


def compare_gc_cycle(size: int, live: float = 0.5, run_pages: float = 16.0,
                     ioctl_pages: int | None = None, repeats: int = 3,
                     seed: int = 0) -> GcComparison:  # fmt: skip
    """The same compaction cycle (``compaction.gc_moves``) measured on this
    kernel and simulated on x86-64 with one CPU, as the probe runs it,
    under linux-6.18 where this kernel batches UFFDIO_MOVE's flushes
    (``host.uffd_move_batched``), linux-6.17 where it does not."""
    policy = "linux-6.18" if host.uffd_move_batched() else "linux-6.17"
    moves = gc_moves(size // host.PAGE, live, run_pages, ioctl_pages, "reverse", seed)
    sims = [run_gc(size, "x86-64", policy, live, run_pages, "reverse", ioctl_pages, cpus=1,
                   touch=0, seed=seed) for _ in range(repeats)]  # fmt: skip
    sim = sims[0]
    native_mremap = native_moves = None
    if host.uffd_available()[0]:
        h = host.measure_gc_cycle(size, moves, repeats)
        if h.bad_pages:
            raise RuntimeError(f"the kernel's cycle moved {h.bad_pages} pages wrong")
        native_mremap, native_moves = h.median_mremap_ns, h.median_moves_ns
    return GcComparison(size, sim.ioctls, sim.pages_moved, policy, native_mremap, native_moves,
                        sim.mremap_ns, sim.uffd_move_ns, sim.uffd_move_ns_range,
                        float(statistics.median(s.sim_wall_ns for s in sims)))  # fmt: skip
