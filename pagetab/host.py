"""The real kernel beside the simulator.

``measure_move`` maps an anonymous region in a reserved window of this very
process, populates it, and times ``mremap(MAYMOVE|FIXED)`` on the host
kernel with CLOCK_MONOTONIC around the syscall alone (C in csrc/probe.c),
moving the region back and forth ``repeats`` times and verifying every page
after each move. Linux only: ``available()`` says why not elsewhere.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import re
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# setup.py builds the probe on Linux only: elsewhere the import fails and
# available() says why (every function that uses _probe checks it first)
_PROBE_ERROR = ""
try:
    from . import _probe
except ImportError as e:  # pragma: no cover - built on Linux
    _PROBE_ERROR = str(e)

__all__ = [
    "HostGc",
    "HostMove",
    "available",
    "check_fits",
    "dontneed_tables_freed",
    "measure_access",
    "measure_cold",
    "measure_gc_cycle",
    "measure_move",
    "measure_populate",
    "measure_unmap",
    "mem_available",
    "offset",
    "pinnable_cpus",
    "populate_tables",
    "uffd_available",
    "uffd_move_batched",
]

GIB = 1 << 30
MIB = 1 << 20
#: this machine's base page (the probe's unit: gc_cycle's moves are in pages)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PMD = 2 << 20
PUD = 1 << 30
_ALIGN = {"pud": 0, "pmd": PMD, "1m": 1 << 20, "4k": 4096, "page": 4096}
_POPULATE = ("none", "zero", "write", "thp")


def available() -> tuple[bool, str]:
    """(True, "") if the host probe can run here, else (False, the reason)."""
    if not sys.platform.startswith("linux"):
        return False, f"the host probe needs Linux, not {sys.platform}"
    if platform.machine() not in ("x86_64", "aarch64", "ppc64le"):
        return False, f"unknown machine {platform.machine()}"
    if not os.path.exists("/proc/self/status") or not os.path.exists("/proc/vmstat"):
        return False, "no /proc (VmPTE and vmstat counters are needed)"
    if _PROBE_ERROR:  # pragma: no cover - built on Linux
        return False, f"the probe extension is not built: {_PROBE_ERROR}"
    return True, ""


def offset(align: str | int) -> int:
    """Byte offset from a PUD boundary for an alignment name or a number."""
    if isinstance(align, bool):
        raise TypeError("align must be a name or an int")
    if isinstance(align, int):
        if align < 0 or align % 4096:
            raise ValueError(f"align offset must be a non-negative multiple of 4096, not {align}")
        return align
    try:
        return _ALIGN[align]
    except (KeyError, TypeError):
        raise ValueError(f"align must be one of {', '.join(_ALIGN)} or an int, "
                         f"not {align!r}") from None  # fmt: skip


@dataclass
class HostMove:
    """Timings of real mremap calls on this machine."""

    size: int
    populate: str
    src_offset: int
    dst_offset: int
    times_ns: list[int] = field(default_factory=list)
    vmpte_kb: int = -1  # VmPTE with the region populated
    thp_split_pmd: int = 0  # /proc/vmstat delta over all the moves
    pages_checked: int = 0
    bad_pages: int = 0
    threads: int = 1  # the mover and threads - 1 spinning on other CPUs

    @property
    def median_ns(self) -> float:
        return float(statistics.median(self.times_ns))

    @property
    def min_ns(self) -> int:
        return min(self.times_ns)

    @property
    def per_unit(self) -> dict[str, float]:
        """Median ns per 4K page, per PMD_SIZE and per PUD_SIZE of the region."""
        m = self.median_ns
        return {"per_page_ns": m / (self.size / 4096), "per_pmd_ns": m / (self.size / PMD),
                "per_pud_ns": m / max(self.size / PUD, 1)}  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "median_ns": self.median_ns, "min_ns": self.min_ns,
                **self.per_unit}  # fmt: skip


def _check(size: int, populate: str, repeats: int) -> None:
    ok, why = available()
    if not ok:
        raise NotImplementedError(f"host probe unavailable: {why}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError("size must be an int")
    if size <= 0 or size % PMD:
        raise ValueError(f"size must be a positive multiple of 2 MiB, not {size}")
    if populate not in _POPULATE:
        raise ValueError(f"populate must be one of {', '.join(_POPULATE)}, not {populate!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError("repeats must be an int >= 1")
    if populate in ("write", "thp") and size > 4 * GIB:
        raise ValueError("populate='write'/'thp' allocates real memory: at most 4 GiB")
    check_fits(size, populate)


def mem_available() -> int:
    """Bytes of memory this machine can give without swapping
    (/proc/meminfo MemAvailable), or 0 where it does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def check_fits(size: int, populate: str) -> None:
    """ValueError unless a ``size``-byte region populated so fits in this
    machine's available memory with room to spare (half of it): written
    pages cost themselves, zero-page ones their page tables (8 bytes per
    page, and the simulator beside the kernel builds as many)."""
    if populate == "none":
        return
    need = size if populate in ("write", "thp") else 2 * (size // PAGE) * 8
    avail = mem_available()
    if avail and need > avail // 2:
        what = "its pages" if populate in ("write", "thp") else \
            "its page tables, in the kernel and in the simulator"  # fmt: skip
        raise ValueError(f"a {size >> 30} GiB region needs {need / GIB:.1f} GiB for {what}; "
                         f"this machine has {avail / GIB:.1f} GiB available (at most half of "
                         "it is used)")  # fmt: skip


def pinnable_cpus() -> list[int]:
    """The CPUs this process may run on (and so pin threads to)."""
    return sorted(os.sched_getaffinity(0))


def _check_threads(threads: int) -> list[int]:
    """The CPUs for a mover and ``threads - 1`` spinners; ValueError saying
    why when this machine cannot give each its own CPU."""
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, not {type(threads).__name__}")
    cpus = pinnable_cpus()
    if not 1 <= threads <= len(cpus):
        raise ValueError(
            f"threads must be in 1..{len(cpus)}: this process may run on "
            f"{len(cpus)} CPU(s) ({cpus}), one thread each, not {threads}"
        )
    return cpus[:threads]


def measure_move(size: int, populate: str = "zero", src_align: str | int = "pud",
                 dst_align: str | int = "pud", repeats: int = 5,
                 verify: bool = True, threads: int = 1) -> HostMove:  # fmt: skip
    """Time ``repeats`` real mremap(MAYMOVE|FIXED) calls of one region.

    The region is mapped ``src_align`` past a PUD boundary and moved to
    ``dst_align`` past another, then back, and so on. ``populate``: "zero"
    (MADV_NOHUGEPAGE + MADV_POPULATE_READ: the zero page, no memory),
    "write" (a tag written into every 4K page), "thp" (MADV_HUGEPAGE, then
    written), "none". ``threads`` > 1 pins the mover to one CPU and runs
    ``threads - 1`` other threads of this process spinning on other CPUs,
    so the mm is live there and every flush of the move must reach them
    (ValueError when there are not that many CPUs to pin to).
    """
    _check(size, populate, repeats)
    cpus = _check_threads(threads)
    if threads == 1:
        return _measure_move(size, populate, src_align, dst_align, repeats, verify)
    saved = os.sched_getaffinity(0)
    _probe.pin_self(cpus[0])
    try:
        _probe.spin_start(cpus[1:])
        try:
            out = _measure_move(size, populate, src_align, dst_align, repeats, verify)
        finally:
            _probe.spin_stop()
    finally:
        os.sched_setaffinity(0, saved)
    out.threads = threads
    return out


def move_layout(size: int, so: int, do: int) -> tuple[int, int, int]:
    """Where measure_move puts a move of ``size`` bytes in the window it
    reserves, from the window's PUD-aligned base: (source, destination,
    the window's length). Each half holds the region and two PUDs of slack,
    the source ``so`` and the destination ``do`` past a PUD boundary. The
    window comes top-down from the mmap area: the process's other mappings
    lie just above it, in the same upper page tables."""
    span = size + 2 * PUD
    return so, span + do, 2 * span


def _measure_move(size: int, populate: str, src_align: str | int, dst_align: str | int,
                  repeats: int, verify: bool) -> HostMove:  # fmt: skip
    so, do = offset(src_align), offset(dst_align)
    s, d, length = move_layout(size, so, do)
    base = _probe.reserve(length, PUD)
    src, dst = base + s, base + d
    _probe.map_region(src, size, populate)
    out = HostMove(size, populate, so, do, vmpte_kb=_probe.status_kb("VmPTE"))
    split0 = _probe.vmstat("thp_split_pmd")
    at, other = src, dst
    try:
        for _ in range(repeats):
            out.times_ns.append(int(_probe.move(at, other, size)))
            at, other = other, at
            if verify:
                bad, checked = _probe.verify(at, size, src, populate)
                out.bad_pages += int(bad)
                out.pages_checked += int(checked)
    finally:
        _munmap(at, size)
    out.thp_split_pmd = _probe.vmstat("thp_split_pmd") - split0
    return out


#: what measure_cold faults before a timed call, by default (bytes)
COLD_SIZES = (0, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20)


#: the written region measure_cold moves PTE by PTE (16384 PTEs)
COLD_MOVE = 64 << 20


def measure_cold(faulted: tuple[int, ...] = COLD_SIZES,
                 rounds: int = 21) -> dict[str, dict[int, float]]:  # fmt: skip
    """Median ns of mremap calls made right after this thread faulted each
    of ``faulted`` bytes of fresh anonymous memory (one write per page, as
    a program filling new memory between its calls does; 0: right after
    the same call, warm): what a call pays for the caches and TLBs the
    faults and their page zeroing took from it. "call" moves an empty
    2 MiB VMA (no page tables: the call's own work only); "move" moves a
    written ``COLD_MOVE`` region misaligned by 4 KiB (PTE by PTE: its
    page tables are cold too); "resize" grows an empty 2 MiB VMA by 64 KiB
    in place (and shrinks it back, untimed). Sizes and the three are
    measured round-robin, ``rounds`` times, so drift spreads over them
    alike."""
    ok, why = available()
    if not ok:
        raise NotImplementedError(f"host probe unavailable: {why}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, not {rounds!r}")
    for n in faulted:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n % PAGE:
            raise ValueError(f"faulted sizes must be multiples of {PAGE} >= 0, not {n!r}")
    regions = {}
    for what, size, populate, do in (("call", PMD, "none", PMD), ("move", COLD_MOVE, "write",
                                                                  PAGE)):  # fmt: skip
        s, d, length = move_layout(size, 0, do)
        base = _probe.reserve(length, PUD)
        _probe.map_region(base + s, size, populate)
        regions[what] = [base + s, base + d, size]
    grow = 64 << 10
    s, d, length = move_layout(PMD, 0, 0)
    rbase = _probe.reserve(length, PUD)
    _probe.map_region(rbase + s, PMD, "none")
    regions["resize"] = [rbase + s, rbase + s, PMD]
    samples: dict[str, dict[int, list[int]]] = {w: {n: [] for n in faulted} for w in regions}
    try:
        for _ in range(rounds):
            # the round's fresh buffers are unmapped together after it: an
            # munmap between two samples would be one more thing the next
            # call pays for, which a program filling memory does not do
            bufs = []
            for n in faulted:
                for what, r in regions.items():
                    buf = mmap.mmap(-1, n) if n else None
                    if buf is not None:
                        bufs.append(buf)
                        pages = np.frombuffer(buf, dtype=np.uint8)
                        pages[::PAGE] = 1  # a write fault on each page
                        del pages
                    elif what == "resize":  # warm: right after the same call
                        _probe.resize(r[0], PMD, PMD + grow)
                        _probe.resize(r[0], PMD + grow, PMD)
                    else:
                        _probe.move(r[0], r[1], r[2])
                        r[0], r[1] = r[1], r[0]
                    if what == "resize":
                        samples[what][n].append(int(_probe.resize(r[0], PMD, PMD + grow)))
                        _probe.resize(r[0], PMD + grow, PMD)
                    else:
                        samples[what][n].append(int(_probe.move(r[0], r[1], r[2])))
                        r[0], r[1] = r[1], r[0]
            for buf in bufs:
                buf.close()
    finally:
        for r in regions.values():
            _munmap(r[0], r[2])
    return {w: {n: float(statistics.median(v)) for n, v in by.items()}
            for w, by in samples.items()}  # fmt: skip


def measure_populate(size: int, repeats: int = 3) -> list[int]:
    """ns of MADV_POPULATE_READ (the zero page) over fresh ``size`` regions."""
    _check(size, "zero", repeats)
    return [populate_tables(size)[0] for _ in range(repeats)]


def populate_tables(size: int) -> tuple[int, int]:
    """(ns, bytes) of one MADV_POPULATE_READ (the zero page, no THP) of a
    fresh PUD-aligned ``size``-byte region: its time, and the page tables
    it made the kernel allocate (the growth of VmPTE, which counts every
    level's tables)."""
    _check(size, "zero", 1)
    before = _probe.status_kb("VmPTE")
    base = _probe.reserve(size + PUD, PUD)
    _probe.map_region(base, size, "none")
    try:
        ns = int(_probe.populate_read(base, size))
        grown = _probe.status_kb("VmPTE") - before
    finally:
        _munmap(base, size)
    return ns, grown * 1024


def measure_access(size: int, offsets: Any, repeats: int = 3) -> list[int]:
    """ns of one pass of byte reads at ``offsets`` (a sequence of ints in
    [0, size)) over a zero-page region of ``size`` bytes, PUD aligned and
    populated with MADV_POPULATE_READ first (so no read faults): the host
    TLBs and page walks, as ``AddressSpace.access`` simulates them."""
    _check(size, "zero", repeats)
    offs = np.ascontiguousarray(offsets, dtype=np.uint64)
    base = _probe.reserve(size + PUD, PUD)
    _probe.map_region(base, size, "zero")
    try:
        return [int(_probe.access(base, size, offs)) for _ in range(repeats)]
    finally:
        _munmap(base, size)


#: the calls ``measure_unmap`` times, as the concurrent model's movers name them
UNMAP_CALLS = ("madvise", "mprotect", "munmap")


def measure_unmap(call: str, size: int, populate: str = "write", repeats: int = 3) -> list[int]:
    """ns of one ``call`` ("madvise": MADV_DONTNEED, "mprotect": to PROT_READ,
    "munmap") of a fresh PUD-aligned ``size``-byte region populated as
    ``populate`` ("none", "zero", "write" or "thp"), once per repeat, each on a
    region of its own (C in csrc/probe.c ``probe_unmap_call``)."""
    if call not in UNMAP_CALLS:
        raise ValueError(f"call must be one of {', '.join(UNMAP_CALLS)}, not {call!r}")
    _check(size, populate, repeats)
    out = []
    for _ in range(repeats):
        base = _probe.reserve(size + PUD, PUD)
        _probe.map_region(base, size, populate)
        unmapped = False
        try:
            out.append(int(_probe.unmap_call(call, base, size)))
            unmapped = call == "munmap"
        finally:
            if not unmapped:
                _munmap(base, size)
    return out


def dontneed_tables_freed(size: int, lo: int, hi: int) -> int:
    """Bytes of page tables (VmPTE) the kernel frees when madvise
    (MADV_DONTNEED) zaps [lo, hi) of a fresh PUD-aligned region of ``size``
    bytes of written 4 KiB pages: its empty PTE tables where the kernel
    reclaims them (CONFIG_PT_RECLAIM), else 0."""
    _check(size, "write", 1)
    if not 0 <= lo < hi <= size or (lo | hi) % PAGE:
        raise ValueError(f"lo and hi must be page-aligned, 0 <= lo < hi <= size, not {lo}, {hi}")
    base = _probe.reserve(size + PUD, PUD)
    _probe.map_region(base, size, "write")
    try:
        before = _probe.status_kb("VmPTE")
        _probe.unmap_call("madvise", base + lo, hi - lo)
        return (before - _probe.status_kb("VmPTE")) * 1024
    finally:
        _munmap(base, size)


def _munmap(addr: int, size: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    if libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size)) != 0:
        raise OSError(ctypes.get_errno(), "munmap failed")


def uffd_available() -> tuple[bool, str]:
    """(True, "") if this process can use userfaultfd with UFFDIO_MOVE here:
    Linux 6.8+, and userfaultfd(2) allowed (as root, CAP_SYS_PTRACE, or
    user-mode-only where vm.unprivileged_userfaultfd is 0), else (False,
    the reason)."""
    ok, why = available()
    if not ok:
        return False, why
    code = _probe.uffd_check()
    if code:
        why = f"{os.strerror(code)} (Linux {platform.release()}; MOVE needs 6.8+)"
        return False, f"userfaultfd with UFFD_FEATURE_MOVE refused: {why}"
    return True, ""


def uffd_move_batched(release: str | None = None) -> bool:
    """Whether this kernel (or ``release``, e.g. "6.18.1") batches UFFDIO_MOVE's
    flushes: 6.18 and later (50944692052b), by the version alone (a vendor
    kernel may carry a backport: NVIDIA's 6.17 does)."""
    m = re.match(r"(\d+)\.(\d+)(\D|$)", release or platform.release())
    if m is None:
        return False
    major, minor = int(m.group(1)), int(m.group(2))
    # a release candidate of 6.18 carries it too (merged in its merge window)
    return (major, minor) >= (6, 18)


@dataclass
class HostGc:
    """Timings of real compaction cycles (pagetab.compaction) on this machine."""

    size: int
    pages_moved: int
    ioctls: int
    mremap_ns: list[int] = field(default_factory=list)
    moves_ns: list[int] = field(default_factory=list)
    #: moved pages whose contents were not the ones written at their source
    bad_pages: int = 0
    release: str = field(default_factory=platform.release)

    @property
    def median_moves_ns(self) -> float:
        """Median time of all UFFDIO_MOVE calls of one cycle."""
        return float(statistics.median(self.moves_ns))

    @property
    def median_mremap_ns(self) -> float:
        """Median time of the cycle's mremap(MREMAP_DONTUNMAP)."""
        return float(statistics.median(self.mremap_ns))

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "median_moves_ns": self.median_moves_ns,
                "median_mremap_ns": self.median_mremap_ns,
                "batched": uffd_move_batched(self.release)}  # fmt: skip


def measure_gc_cycle(size: int, moves: Any, repeats: int = 3) -> HostGc:
    """Run ``repeats`` compaction cycles on this kernel: a fresh heap of
    ``size`` bytes of written pages (``PAGE``, this machine's base page),
    mremap(MAYMOVE|FIXED|DONTUNMAP) of it to a from-space, UFFDIO_REGISTER
    (MISSING) of the emptied heap, then one UFFDIO_MOVE per row of
    ``moves`` (from-space page, heap page, pages: ``compaction.gc_moves``),
    every moved page checked afterwards."""
    _check(size, "write", repeats)
    ok, why = uffd_available()
    if not ok:
        raise NotImplementedError(f"host userfaultfd unavailable: {why}")
    runs = np.ascontiguousarray(moves, dtype=np.int64)
    pages = size // PAGE
    if runs.ndim != 2 or runs.shape[1] != 3:
        raise ValueError(f"moves must be rows of (from page, heap page, pages), not {runs.shape}")
    if runs.size and (
        runs.min() < 0
        or (runs[:, 0] + runs[:, 2]).max() > pages
        or (runs[:, 1] + runs[:, 2]).max() > pages
        or runs[:, 2].min() < 1
    ):
        raise ValueError(f"moves must stay inside the {pages}-page heap")  # fmt: skip
    out = HostGc(size, int(runs[:, 2].sum()), len(runs))
    for _ in range(repeats):
        base = _probe.reserve(2 * (size + PUD), PUD)
        heap, space = base, base + size + PUD
        _probe.map_region(heap, size, "write")
        try:
            remap, moved, bad = _probe.gc_cycle(heap, space, size, runs)
        finally:
            _munmap(space, size)
            _munmap(heap, size)
        out.mremap_ns.append(int(remap))
        out.moves_ns.append(int(moved))
        out.bad_pages += int(bad)
    return out


@dataclass
class HostContend:
    """Real mremap calls timed while another thread of the process times
    its reads or faults (``measure_contend``)."""

    size: int
    dst_offset: int
    reader_size: int
    mode: str = "read"  #: "read", "fault" or "fault-new"
    where: str = "outside"  #: "outside" or "beside"
    mover_ns: list[int] = field(default_factory=list)
    #: each repeat's read latencies (ns), the reads the reader started while mremap ran
    latencies_ns: list[npt.NDArray[np.int64]] = field(default_factory=list)

    @property
    def median_mover_ns(self) -> float:
        """The median of the mremap times."""
        return float(statistics.median(self.mover_ns))

    def percentile(self, q: float) -> float:
        """The median over repeats of each repeat's ``q``-th percentile read
        latency (ns): the smallest latency at or above which ``q``% of the
        reads fall (nearest rank, as ``contention.percentiles`` reads the
        model's histograms: with a hundred reads, p99 is the slowest but
        one)."""
        return float(statistics.median(float(np.percentile(x, q, method="inverted_cdf"))
                                       for x in self.latencies_ns if len(x)))  # fmt: skip

    def slow_reads(self, gap_ns: float) -> tuple[float, float]:
        """The median over repeats of the share of reads slower than their
        repeat's median by more than ``gap_ns``, and of those reads' median
        latency (ns; NaN where no repeat has one)."""
        shares, medians = [], []
        for x in self.latencies_ns:
            if len(x):
                slow = x[x > float(np.median(x)) + gap_ns]
                shares.append(len(slow) / len(x))
                if len(slow):
                    medians.append(float(np.median(slow)))
        if not shares:
            return 0.0, float("nan")
        return (float(statistics.median(shares)),
                float(statistics.median(medians)) if medians else float("nan"))  # fmt: skip


def measure_contend(size: int, dst_align: str | int = "pmd", reader_size: int = 4 * MIB,
                    repeats: int = 5, warm_ns: int = 5_000_000, mode: str = "read",
                    where: str = "outside") -> HostContend:  # fmt: skip
    """Time ``repeats`` real mremap(MAYMOVE|FIXED) calls of a zero-page
    region (PUD-aligned source, ``dst_align`` destination) on one CPU while
    a thread pinned to another CPU times each access (CLOCK_MONOTONIC
    around it): ``mode`` "read" reads random words of a written
    ``reader_size`` region; "fault" writes the first word of each page of a
    fresh one (no THP) in turn, a page fault each, its VMA's anon_vma
    prepared by a write before the move; "fault-new" the same in a VMA
    nothing has touched (its first fault needs mmap_lock: mm/memory.c
    __vmf_anon_prepare). ``where`` "outside" puts
    that region away from the move; "beside" (faults only) puts it after
    the moved region, in the rest of its last PMD table, 2 MiB away so that
    it is a VMA of its own (adjacent, the two would merge and mremap would
    write-lock both): ``size`` must leave room there, and ``reader_size``
    is what is left. Needs two CPUs (ValueError otherwise)."""
    _check(size, "zero", repeats)
    cpus = _check_threads(2)
    if mode not in _probe.CONTEND_MODES:
        raise ValueError(f"mode must be one of {', '.join(_probe.CONTEND_MODES)}, not {mode!r}")
    if where not in ("outside", "beside"):
        raise ValueError(f"where must be one of outside, beside, not {where!r}")
    if where == "beside":
        if mode == "read":
            raise ValueError("where 'beside' needs a fault mode (a fresh region)")
        reader_size = -(-size // PUD) * PUD - size - PMD
        if reader_size <= 0:
            raise ValueError(f"where 'beside' needs a size that leaves room in its last PUD, "
                             f"not {size}")  # fmt: skip
    if reader_size <= 0 or reader_size % PMD or reader_size > GIB:
        raise ValueError(f"reader_size must be a multiple of 2 MiB up to 1 GiB, not {reader_size}")
    so, do = 0, offset(dst_align)
    out = HostContend(size, do, reader_size, mode, where)
    saved = os.sched_getaffinity(0)
    try:
        for _ in range(repeats):
            s, d, length = move_layout(size, so, do)
            base = _probe.reserve(length + reader_size + PUD, PUD)
            src, dst = base + s, base + d
            rlo = src + size + PMD if where == "beside" else base + length
            _probe.map_region(src, size, "zero")
            _probe.map_region(rlo, reader_size, "write" if mode == "read" else "fresh")
            lat = np.zeros(8 << 20, dtype=np.int64)
            try:
                ns, n, _over = _probe.contend(src, dst, size, cpus[0], cpus[1], rlo,
                                              reader_size, warm_ns, lat, mode)  # fmt: skip
            finally:
                for a, ln in ((src, size), (dst, size), (rlo, reader_size)):
                    _munmap(a, ln)
            out.mover_ns.append(int(ns))
            out.latencies_ns.append(lat[:n].copy())
    finally:
        os.sched_setaffinity(0, saved)
    return out
