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
from .constants import (
    MADV_POPULATE_READ,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
)
from .space import AddressSpace

__all__ = ["PATHS", "Comparison", "compare_move", "compare_populate", "sim_move_times"]

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


def sim_move_times(size: int, dst_offset: int, repeats: int, policy: str = "linux-6.8",
                   arch: str = "x86-64") -> list[int]:  # fmt: skip
    """Wall ns of ``repeats`` simulated back-and-forth moves of a zero-page region."""
    mm = AddressSpace(arch, cpus=1, policy=policy)
    src, dst = 1 << 44, (1 << 45) + dst_offset
    mm.mmap(size, addr=src, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    mm.madvise(src, size, MADV_POPULATE_READ)
    times = []
    at, other = src, dst
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        mm.mremap(at, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, other)
        times.append(time.perf_counter_ns() - t0)
        at, other = other, at
    return times


def compare_move(group: str, size: int, repeats: int = 5) -> Comparison:
    """One path at one size: simulated and (where possible) native medians."""
    off = PATHS[group]
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
