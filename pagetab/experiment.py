"""Experiments: one move, a policy comparison, and sweeps.

``run_move`` maps a region, populates it, lets ``cpus`` CPUs touch it (so
they are in mm_cpumask with its translations in their TLBs), moves it with
mremap(MAYMOVE|FIXED) and returns a ``MoveResult``. ``compare`` runs that
over sizes x archs x policies in this process; ``sweep`` runs the same grid
on any ``concurrent.futures.Executor`` (a process pool by default, or e.g.
``dask.distributed.Client(...).get_executor()`` for a cluster). Both return
``Results``: a plain-text table, CSV, JSON, a pandas DataFrame, a plot.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields
from typing import Any

from .arch import Arch, archs
from .constants import (
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
)
from .cost import move_cost, move_cost_range
from .parallel import check_executor, run_jobs
from .plot import plot_breakdown, plot_results
from .policy import DEFAULT_POLICY, Policy, policies
from .results import Compared, flat_row
from .scenario import MoveSetup
from .stats import COUNTER_NAMES, MoveStats
from .units import format_size

__all__ = [
    "MoveResult",
    "Results",
    "compare",
    "move_stats",
    "run_move",
    "run_setup",
    "sweep",
    "validate_jobs",
]


@dataclass
class MoveResult:
    """One simulated move: what it did, what it would cost, whether it is
    safe (``run_move`` makes one).

    Each count and time has its unit and meaning in ``pt.COUNTER_INFO``,
    ``pt.OP_INFO`` and ``pt.LOCK_INFO``; ``Results.columns()`` gives them
    for the flat records of ``row()``.
    """

    arch: str
    """The arch profile's name (``pt.archs()``)."""
    policy: str
    """The kernel policy's name (``pt.policies()``)."""
    size: int
    """Bytes moved."""
    populate: str
    """What the region held: "write", "read", "thp", "sparse" or a mix
    such as "write:0.5,thp:0.5"."""
    src_align: str
    """Where the source starts within its PUD: "pud", "pmd", "page" or bytes."""
    dst_align: str
    """Where the destination starts within its PUD, likewise."""
    cpus: int
    """CPUs in mm_cpumask (CPU 0 makes the call)."""
    lazy_cpus: int
    """Of ``cpus``, how many were in lazy TLB mode during the move."""
    sim_wall_ns: int
    """The simulator's wall time for the mremap call (ns; varies from run to run)."""
    setup_wall_ns: int
    """The simulator's wall time to set the move up (ns)."""
    estimated_ns: float
    """The kernel's estimated time of the call (ns)."""
    estimated_ns_range: tuple[float, float]
    """(low, high) of ``estimated_ns``: every event priced at the low, then
    the high end of its cost's range (ns)."""
    breakdown: dict[str, float]
    """``estimated_ns`` by category ("entry moves", "tlb flush", "ipi", ...; ns)."""
    counters: dict[str, int]
    """What move_page_tables did (``pt.COUNTER_INFO``: ptes_moved,
    normal_pmds_moved, flush_calls, ...)."""
    flush_ops: dict[str, int]
    """The arch's flush instructions behind the flushes (``pt.OP_INFO``)."""
    lock_acquired: dict[str, int]
    """Acquisitions per lock class (``pt.LOCK_INFO``)."""
    unsafe_entries: int
    """Moved present entries whose page-table lock dropped before a flush
    covering their old address (CVE-2018-18281)."""
    unsafe_windows: int
    """Stale TLB entries some CPU held for those at that moment."""
    peak_page_table_bytes: int
    """The most page-table memory the call held (bytes)."""
    page_table_bytes_before: int
    """Page-table memory before the call (bytes)."""
    ratio: float | None = field(default=None)
    """The baseline policy's estimated time over this one's (set by
    ``Results``; above 1: faster than the baseline)."""

    @property
    def safe(self) -> bool:
        """No moved entry outlived its page-table lock unflushed."""
        return self.unsafe_entries == 0

    def row(self) -> dict[str, Any]:
        """A flat dict of scalars (one CSV row); the range as
        ``estimated_ns_low`` and ``estimated_ns_high``."""
        return {**flat_row(self), "safe": self.safe}

    def plot(self, path: str | os.PathLike[str] | None = None, title: str | None = None,
             ax: Any = None) -> Any:  # fmt: skip
        """The estimate by category (``breakdown``), a bar each, the whole
        estimate and its range in the title, on ``ax`` (a new figure if
        None), written to ``path`` if given (its extension names the
        format). Returns the matplotlib Axes. Needs matplotlib."""
        return plot_breakdown(self, path, title, ax)


def run_move(
    size: int,
    arch: str | Arch = "x86-64",
    policy: str | Policy = DEFAULT_POLICY,
    populate: str | Mapping[str, float] = "write",
    src_align: str | int = "pud",
    dst_align: str | int = "pmd",
    cpus: int = 4,
    touch: int = 4096,
    seed: int = 0,
    lazy_cpus: int = 0,
    progress: Callable[[int, int], None] | None = None,
    **arch_overrides: Any,
) -> MoveResult:
    """Populate a ``size``-byte region, touch it from ``cpus`` CPUs
    (``touch`` random pages each), and move it with mremap(MAYMOVE|FIXED).
    ``progress(done, size)``, if given, follows the populating (most of a
    large move's time); the results do not depend on it.

    ``cpus``: the CPUs of mm_cpumask (CPU 0 makes the call), each having
    run the process, whether or not it touches the region, as the other
    threads of a process do. By default all of them are running it while
    it moves; ``lazy_cpus`` of them (the last ones) are in lazy TLB mode
    instead (a kernel thread or idle, the mm still loaded;
    ``AddressSpace.switch_out``). On x86 a lazy CPU gets mremap's flush
    IPIs only under a policy with ``flush_lazy`` (flush_tlb_range passes
    freed_tables since 3ef938c35035, Linux 6.15); before it,
    should_flush_tlb skipped lazy CPUs (145f573b89a6, 4.20). A CPU that
    ran the process and switched to another one has left mm_cpumask and
    is not counted in ``cpus``.

    ``src_align``/``dst_align``: "pud", "pmd", "page" or a byte offset past a
    PUD boundary. ``arch_overrides``: Arch fields (``Arch.replace``) or
    event costs in ns (``Arch.with_costs``), e.g. ``ipi=2000``. The
    arguments make a ``scenario.MoveSetup``; ``run_setup`` takes one.
    """
    return run_setup(MoveSetup(size, arch, policy, populate, src_align, dst_align, cpus, touch,
                               seed, lazy_cpus, arch_overrides), progress)  # fmt: skip


def move_stats(*args: Any, **kwargs: Any) -> MoveStats:
    """The same move as ``run_move`` (the same arguments); its MoveStats (to
    price one move under several cost tables, as calibration does)."""
    return _moved(_setup(*args, **kwargs))[0]


def run_setup(setup: MoveSetup, progress: Callable[[int, int], None] | None = None) -> MoveResult:
    """``run_move`` of a ``MoveSetup``."""
    st, elapsed = _moved(setup, progress)
    return _result(st, setup, elapsed)


def _moved(
    setup: MoveSetup, progress: Callable[[int, int], None] | None = None
) -> tuple[MoveStats, int]:
    """Set up and move: (stats, setup ns)."""
    mm, elapsed = setup.prepare(progress)
    mm.mremap(setup.src, setup.size, setup.size, MREMAP_MAYMOVE | MREMAP_FIXED, setup.dst)
    assert mm.last_move is not None
    return mm.last_move, elapsed


def _result(st: MoveStats, setup: MoveSetup, elapsed: int) -> MoveResult:
    a = setup.profile
    ns, breakdown = move_cost(a, st)  # once: the properties would price it each time
    low, high = move_cost_range(a, st)
    return MoveResult(
        arch=a.name,
        policy=st.policy,
        size=setup.size,
        populate=setup.populate_label,
        src_align=str(setup.src_align),
        dst_align=str(setup.dst_align),
        cpus=setup.cpus,
        lazy_cpus=setup.lazy_cpus,
        sim_wall_ns=st.wall_ns,
        setup_wall_ns=elapsed,
        estimated_ns=ns,
        estimated_ns_range=(low, high),
        breakdown=breakdown,
        counters={k: int(getattr(st, k)) for k in COUNTER_NAMES},
        flush_ops=st.flush_ops,
        lock_acquired=st.lock_acquired,
        unsafe_entries=st.unsafe_entries,
        unsafe_windows=st.unsafe_windows,
        peak_page_table_bytes=st.peak_page_table_bytes,
        page_table_bytes_before=st.page_table_bytes_before,
    )


# ----------------------------------------------------------------------
# many moves


class Results(Compared[MoveResult]):
    """MoveResults with each one's ratio to a baseline policy (the baseline's
    estimated time over its own, same arch, size and setup: above 1 is
    faster than the baseline); ``compare`` and ``sweep`` return one.

    A sequence of ``MoveResult`` (index it, iterate it, ``len``), ordered by
    arch, size, setup and policy.

    Parameters
    ----------
    items
        The moves.
    baseline
        The policy each ratio is to (None: no ratios).

    ``baseline``, the records, files, DataFrame, units, table and plot
    (``rows``, ``to_csv``, ...): as ``Compared``.
    """

    def __init__(self, items: Iterable[MoveResult], baseline: str | None = "linux-4.19") -> None:
        super().__init__(sorted(items, key=_order), baseline, _setup_key)

    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The summary table as text cells: (header, one row per move);
        "est. range us" is the estimate's interval (low-high); the last
        column says "ok" or "UNSAFE"."""
        head = ["arch", "size", "policy", "ptes", "pmds", "puds", "flushes", "unsafe",
                "stale TLB", "est. us", "est. range us", f"vs {self.baseline}", "sim ms",
                "safe"]  # fmt: skip
        rows = []
        for r in self:
            c = r.counters
            low, high = r.estimated_ns_range
            rows.append([
                r.arch, format_size(r.size), r.policy, str(c["ptes_moved"]),
                str(c["normal_pmds_moved"] + c["huge_pmds_moved"]),
                str(c["normal_puds_moved"]), str(c["flush_calls"]), str(r.unsafe_entries),
                str(r.unsafe_windows), f"{r.estimated_ns / 1e3:.1f}",
                f"{low / 1e3:.1f}-{high / 1e3:.1f}",
                "-" if r.ratio is None else f"{r.ratio:.1f}x", f"{r.sim_wall_ns / 1e6:.2f}",
                "ok" if r.safe else "UNSAFE",
            ])  # fmt: skip
        return head, rows

    def plot(self, path: str | os.PathLike[str] | None = None, title: str | None = None,
             ax: Any = None) -> Any:  # fmt: skip
        """Log-log estimated kernel time against region size, one line per
        arch and policy, on ``ax`` (a new figure if None), written to
        ``path`` if given (its extension names the format: .png, .pdf,
        .svg, ...). Returns the matplotlib Axes. Needs matplotlib."""
        return plot_results(self, path, title, ax)


def _order(r: MoveResult) -> tuple[Any, ...]:
    pols = policies()
    pi = pols.index(r.policy) if r.policy in pols else len(pols)
    return (r.arch, r.size, r.populate, r.src_align, r.dst_align, r.cpus, pi, r.policy)


def _setup_key(r: MoveResult) -> tuple[Any, ...]:
    return (r.arch, r.size, r.populate, r.src_align, r.dst_align, r.cpus)


def _grid(
    sizes: Iterable[int] | int,
    archs_: Iterable[str | Arch] | str | Arch,
    policies_: Iterable[str] | str,
) -> list[tuple[int, str | Arch, str]]:
    sz = [sizes] if isinstance(sizes, int) else list(sizes)
    ar: list[str | Arch] = (
        list(archs())
        if archs_ == "all"
        else [archs_]
        if isinstance(archs_, (str, Arch))
        else list(archs_)
    )
    po = (
        policies()
        if policies_ == "all"
        else [policies_]
        if isinstance(policies_, str)
        else list(policies_)
    )
    for name, got in (("sizes", sz), ("archs", ar), ("policies", po)):
        if not got:
            raise ValueError(f"{name} must not be empty")
    return list(itertools.product(sz, ar, po))


def compare(
    sizes: Iterable[int] | int = (1 << 30, 64 << 30),
    archs: Iterable[str | Arch] | str | Arch = ("x86-64", "arm64-4k"),
    policies: Iterable[str] | str = "all",
    baseline: str | None = "linux-4.19",
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> Results:
    """``run_move`` for every size x arch x policy, one after another in
    this process; ``kwargs`` go to every run_move. ``progress(done, total)``
    is called after each."""
    grid = _grid(sizes, archs, policies)
    out = []
    for i, (size, a, p) in enumerate(grid):
        out.append(run_move(size, arch=a, policy=p, **kwargs))
        if progress is not None:
            progress(i + 1, len(grid))
    return Results(out, baseline)


def _run_one(job: tuple[int, str | Arch, str, dict[str, Any]]) -> MoveResult:
    size, a, p, kwargs = job
    return run_move(size, arch=a, policy=p, **kwargs)


def sweep(
    sizes: Iterable[int] | int,
    archs: Iterable[str | Arch] | str | Arch = "x86-64",
    policies: Iterable[str] | str = "all",
    executor: Executor | None = None,
    baseline: str | None = "linux-4.19",
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> Results:
    """``run_move`` for every size x arch x policy in parallel.

    ``executor``: any ``concurrent.futures.Executor``; None makes a process
    pool with one worker per CPU (closed afterwards). For a cluster, pass
    ``dask.distributed.Client(address).get_executor()``. Arguments are
    validated here, before anything is submitted; the first failing run's
    exception is raised.
    """
    check_executor(executor)
    grid = _grid(sizes, archs, policies)
    jobs = [(s, a, p, dict(kwargs)) for s, a, p in grid]
    validate_jobs(jobs)
    results = run_jobs(_run_one, jobs, executor, progress)
    return Results(results, baseline)


def validate_jobs(jobs: Sequence[tuple[int, str | Arch, str, dict[str, Any]]]) -> None:
    """Check every configuration cheaply (a MoveSetup each, nothing
    populated) so that a typo fails at once instead of in a worker."""
    for size, a, p, kw in jobs:
        _setup(size, a, p, **kw)


def _setup(*args: Any, **kwargs: Any) -> MoveSetup:
    """A MoveSetup from ``run_move``'s arguments: keywords that are not its
    fields are arch overrides."""
    given: dict[str, Any] = {k: v for k, v in kwargs.items() if k in _SETUP_FIELDS}
    given["arch_overrides"] = {k: v for k, v in kwargs.items() if k not in _SETUP_FIELDS}
    return MoveSetup(*args, **given)


#: MoveSetup's own arguments; any other keyword is an arch override
_SETUP_FIELDS = {f.name for f in fields(MoveSetup) if f.init} - {"arch_overrides"}
