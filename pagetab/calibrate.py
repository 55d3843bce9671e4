"""Fit the x86-64 cost profile to this machine's kernel.

``calibrate()`` times real mremap calls on a small matrix (PTE, PMD and PUD
paths, 64 MiB to 4 GiB, zero-page regions), simulates each case to get its
event counts, and fits four per-event costs by least squares: the per-call
cost (``mremap_call``) and the cost of moving one PTE, one PMD and one PUD
(``pte_move``, ``pmd_move``, ``pud_move``). Lock and TLB-flush costs keep
their sourced values and are subtracted first, so the fit only explains
what they do not. With ``cpus`` > 1 it then times moves with ``cpus - 1``
other threads of the process spinning on the other CPUs (so every flush
must reach them by IPI), simulates them with ``cpus`` CPUs in mm_cpumask,
and fits the cost of one flush IPI (``ipi``: the sender's wait for one
remote CPU's flush, as pagetab counts IPIs per remote CPU per flush), with
the single-CPU costs just fitted. Training and held-out cases are measured
together in rounds (``ROUNDS``), round-robin, so host drift during a run
(this shared VM's speed wanders by tens of percent over seconds) biases
neither the fit against the check nor one case against another; only the
training cases enter the fit. Two figures are measured, not fitted: an
mremap that resizes in place (``mremap_resize_call``: it moves no page
table, and does none of a move's VMA work), and the cold-call curve (what a
call pays after its thread faulted N bytes of fresh memory: ``cold_call``,
which the replay of a recorded program applies). The result is a JSON file that
``pt.arch("x86-64", calibration=path)`` loads (``arch.load_calibration``,
also here as ``load``); ``validate()`` re-checks a file later.
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import host
from .arch import CALIBRATED_COSTS, MEASURED_COSTS, Arch
from .arch import arch as _arch
from .arch import load_calibration as load
from .constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MREMAP_FIXED, MREMAP_MAYMOVE
from .contention import SLOW_GAP_NS, ThreadSpec, run_concurrent
from .cost import move_cost
from .scenario import MoveSetup
from .stats import MoveStats

__all__ = [
    "FITTED",
    "MEASURED",
    "MOVE_COSTS",
    "Case",
    "calibrate",
    "load",
    "load_file",
    "measure_cold",
    "refit",
    "validate",
]

MIB, GIB = 1 << 20, 1 << 30
#: the move's own costs: what a device fit may set
MOVE_COSTS = CALIBRATED_COSTS[:4]
#: what the single-CPU host fit sets: the move's costs and, from the PTE-path
#: cases whose destination splits each extent in two (one INVLPG-path flush
#: per PMD of 1 page at a 4K offset, of 16 pages at 64K, none at 1M), the
#: per-call cost of an INVLPG-path flush (large where the MMU is
#: paravirtualized, as on the test host) and of one INVLPG
FITTED = (*MOVE_COSTS, "invlpg_flush", "invlpg")
#: what the fit with other CPUs running the mm sets: the sender's wait per
#: flush IPI, and the receiver's handler from a reading thread's slow reads
REMOTE_FITTED = ("ipi", "ipi_handler")
#: what the host measures directly, not by a fit: an mremap that resizes in
#: place: the cold-call measurement's warm in-place growth ("cold_call")
MEASURED = MEASURED_COSTS
assert set(FITTED) | set(REMOTE_FITTED) | set(MEASURED) == set(CALIBRATED_COSTS)


@dataclass(frozen=True)
class Case:
    """One measured move: size, destination offset from a PUD boundary, population."""

    size: int
    dst_offset: int
    populate: str = "zero"

    @property
    def label(self) -> str:
        names = {0: "pud", 2 * MIB: "pmd", MIB: "1m", 64 * 1024: "64k", 4096: "4k"}
        off = names.get(self.dst_offset, hex(self.dst_offset))
        return f"{self.size // MIB}M {off} {self.populate}"


TRAINING = [Case(s, o) for s in (64 * MIB, 256 * MIB, GIB, 4 * GIB) for o in (4096, 2 * MIB)] + [
    Case(256 * MIB, MIB), Case(GIB, MIB), Case(256 * MIB, 64 * 1024), Case(GIB, 64 * 1024),
    Case(GIB, 0), Case(2 * GIB, 0), Case(4 * GIB, 0)]  # fmt: skip
HELD_OUT = [Case(128 * MIB, 4096), Case(512 * MIB, MIB), Case(512 * MIB, 64 * 1024),
            Case(2 * GIB, 2 * MIB), Case(8 * GIB, 2 * MIB), Case(3 * GIB, 0),
            Case(64 * MIB, 4096, "write"), Case(64 * MIB, 2 * MIB, "write")]  # fmt: skip
#: with other CPUs running the mm: one PTE-path and one PMD-path size
#: (a flush per extent, one per PMD) train the IPI cost; other sizes,
#: alignments and populations of both, and the PUD path (never trained),
#: check it
REMOTE_TRAINING = [Case(256 * MIB, 4096), Case(GIB, 2 * MIB)]
REMOTE_HELD_OUT = [Case(GIB, 4096), Case(512 * MIB, MIB), Case(512 * MIB, 64 * 1024),
                   Case(64 * MIB, 4096, "write"),
                   Case(2 * GIB, 2 * MIB), Case(64 * MIB, 2 * MIB, "write"), Case(GIB, 0),
                   Case(4 * GIB, 0)]  # fmt: skip


def simulate(case: Case, profile: Arch, cpus: int = 1) -> MoveStats:
    """The case in an AddressSpace (linux-6.8, ``cpus`` CPUs running the
    process, none touching the region), laid out as ``host.measure_move``
    lays it out on the host: source and destination in one window, the
    process's other mappings just above it. Which page tables the source's
    unmap frees, and so its flush, depends on that. Its MoveStats."""
    populate = "write" if case.populate == "write" else "read"
    setup = MoveSetup(case.size, profile, "linux-6.8", populate, src_align=0,
                      dst_align=case.dst_offset, cpus=cpus, touch=0)  # fmt: skip
    mm, _ = setup.prepare()
    base = setup.src  # PUD aligned: the window's base
    s, d, length = host.move_layout(case.size, 0, case.dst_offset)
    mm.mmap(profile.page_size, addr=base + length, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    mm.mremap(base + s, case.size, case.size, MREMAP_MAYMOVE | MREMAP_FIXED, base + d)
    assert mm.last_move is not None
    return mm.last_move


def measure(case: Case, repeats: int, threads: int = 1) -> float:
    """Median ns of the real move (PUD and PMD moves take microseconds and
    vary more: more repeats), with ``threads - 1`` other threads spinning."""
    if case.dst_offset % (2 * MIB) == 0:
        repeats = max(repeats, 21)
    return host.measure_move(case.size, case.populate, "pud", case.dst_offset, repeats=repeats,
                             verify=False, threads=threads).median_ns  # fmt: skip


#: rounds of measurements: each round times every case once (``repeats``
#: moves), and a case's figure is the median of its rounds' medians, so slow
#: drift of the host (clock, neighbours) spreads over all cases alike
#: instead of biasing whichever ran last
ROUNDS = 5


def measure_samples(keys: list[tuple[Case, int]], repeats: int, rounds: int = ROUNDS,
                    progress: Callable[[int, int], None] | None = None,
                    ) -> dict[tuple[Case, int], list[float]]:  # fmt: skip
    """Each (case, threads) in ``keys`` measured round-robin, ``rounds``
    times over all of them in turn: its ns in each round
    (``progress(done, total)`` after each measurement, if given)."""
    samples: dict[tuple[Case, int], list[float]] = {k: [] for k in keys}
    done, total = 0, rounds * len(samples)
    for _ in range(rounds):
        for c, t in samples:
            samples[c, t].append(measure(c, repeats, t))
            done += 1
            if progress is not None:
                progress(done, total)
    return samples


def measure_rounds(keys: list[tuple[Case, int]], repeats: int, rounds: int = ROUNDS,
                   progress: Callable[[int, int], None] | None = None,
                   ) -> dict[tuple[Case, int], float]:  # fmt: skip
    """Median ns of each (case, threads) in ``keys`` over its rounds
    (``measure_samples``)."""
    return {k: statistics.median(v)
            for k, v in measure_samples(keys, repeats, rounds, progress).items()}  # fmt: skip


#: a fitted cost whose per-round fits span more than this factor (highest
#: over lowest), or that fits 0 ns in some rounds and not in others, is
#: unstable, if that span moves some measured case by more than
#: UNSTABLE_SHARE of its time: one figure would mislead (this PVM guest's
#: flush IPI was fitted 0 ns in one run and 8.5-10 us in the next two); a
#: span of a few ns on a cost a case pays a few times is noise, not a regime
UNSTABLE_FACTOR = 2.0
UNSTABLE_SHARE = 0.10


def spread(samples: dict[tuple[Case, int], list[float]], training: list[Case],
           check: list[Case], remote: dict[str, Any],
           remote_cases: tuple[list[Case], list[Case]] | None) -> dict[str, Any]:  # fmt: skip
    """Each fitted cost fitted again on each round's measurements alone:
    ``{cost: {"rounds": [...], "low": ..., "high": ..., "unstable": bool,
    "why": ...}}``. A cost is unstable when its round fits span more than
    ``UNSTABLE_FACTOR`` (or some rounds fit it to 0 and others not: two
    regimes, whose shares ``why`` gives) and that span moves some fitted
    case's time by more than ``UNSTABLE_SHARE``."""
    n = min(len(v) for v in samples.values())
    per_round: dict[str, list[float]] = {}
    for r in range(n):
        times = {k: v[r] for k, v in samples.items()}
        # (the reader is measured once, not per round: its handler uncapped
        # here, the same in every round; the headline fit caps it)
        got = _fitted(training, check, times, dict(remote), remote_cases, math.inf)["costs"]
        for k, v in got.items():
            per_round.setdefault(k, []).append(float(v))
    # how often each fitted case pays each cost, and its measured time
    base = _arch("x86-64")
    fitted_cases = [(c, 1) for c in training]
    if remote_cases is not None:
        fitted_cases += [(c, remote["cpus"]) for c in remote_cases[0]]
    paid = []
    for c, cpus in fitted_cases:
        st = simulate(c, base, cpus)
        paid.append((_events(st) | {"ipi": st.flush_ops["ipi"]},
                     statistics.median(samples[c, cpus])))  # fmt: skip
    out: dict[str, Any] = {}
    for k, vals in per_round.items():
        low, high = min(vals), max(vals)
        zero = sum(v < 1.0 for v in vals)  # under a ns: nothing (least squares' crumbs)
        moves = max((ev.get(k, 0.0) * (high - low) / max(t, 1.0) for ev, t in paid), default=0.0)
        unstable = moves > UNSTABLE_SHARE and (
            0 < zero < len(vals) or (low >= 1.0 and high / low > UNSTABLE_FACTOR)
        )
        if unstable and 0 < zero < len(vals):
            why = (f"two regimes: {zero} of {len(vals)} rounds fit 0 ns, the others "
                   f"{min(v for v in vals if v >= 1.0):.0f}-{high:.0f} ns")  # fmt: skip
        elif unstable:
            why = f"round fits span {low:.0f}-{high:.0f} ns ({high / low:.1f}x)"
        else:
            why = f"round fits within {low:.0f}-{high:.0f} ns"
        why += f"; at most {moves:.0%} of a case's time"
        out[k] = {"rounds": vals, "low": low, "high": high, "unstable": unstable, "why": why}
    return out


def measure_cold(rounds: int = 21) -> dict[str, Any]:
    """The cold-call measurement a calibration file records under
    "cold_call" (``Arch.cold_call``, ``cold_pte`` and ``cold_resize`` read
    it): the median ns of an mremap call, of a written PTE-path move of
    ``host.COLD_MOVE`` bytes and of an in-place growth, after its thread
    faulted each of
    ``host.COLD_SIZES`` bytes (``host.measure_cold``). Measured, not
    fitted: the replay of a recorded program adds it to each call by the
    bytes the program faulted since its previous call, and the recorded
    programs, never measured here, check it."""
    m = host.measure_cold(host.COLD_SIZES, rounds)
    return {"call": "mremap moving an empty 2 MiB VMA", "rounds": rounds,
            "date": datetime.date.today().isoformat(),
            "faulted_bytes": list(m["call"]), "median_ns": list(m["call"].values()),
            "move": f"mremap moving {host.COLD_MOVE >> 20} MiB written, 4 KiB off (PTE path)",
            "move_ptes": host.COLD_MOVE // host.PAGE,
            "move_median_ns": list(m["move"].values()),
            "resize": "mremap growing an empty 2 MiB VMA by 64 KiB in place",
            "resize_median_ns": list(m["resize"].values())}  # fmt: skip


def _warm_up() -> None:
    """A first move pays for cold caches and clock ramp-up: do it unmeasured."""
    measure(Case(256 * MIB, 4096), 3)


def _events(st: MoveStats) -> dict[str, float]:
    """How many times a move paid each fitted cost."""
    return {"mremap_call": 1.0, "pte_move": st.ptes_moved,
            "pmd_move": st.normal_pmds_moved + st.huge_pmds_moved,
            "pud_move": st.normal_puds_moved + st.huge_puds_moved,
            "invlpg_flush": st.flush_ops["invlpg_flush"],
            "invlpg": st.flush_ops["invlpg"] + st.flush_ops["remote_invlpg"]}  # fmt: skip


def _fit(rows: list[tuple[MoveStats, float]], base: Arch,
         keys: tuple[str, ...] = FITTED) -> dict[str, float]:  # fmt: skip
    """Least squares for the costs ``keys`` given everything else the model
    prices (the other fitted events at ``base``'s costs)."""
    a, y = [], []
    for st, measured in rows:
        total, _ = move_cost(base, st)
        ev = _events(st)
        fitted_now = sum(ev[k] * base.cost(k) for k in keys)
        a.append([ev[k] for k in keys])
        y.append(measured - (total - fitted_now))
    # weight by 1/measured: relative error matters, small cases too
    w = np.array([1.0 / max(m, 1.0) for _, m in rows])
    coef, *_ = np.linalg.lstsq(np.array(a) * w[:, None], np.array(y) * w, rcond=None)
    return {k: max(float(v), 0.0) for k, v in zip(keys, coef, strict=True)}


def _fit_ipi(rows: list[tuple[MoveStats, float]], profile: Arch) -> float:
    """Least squares (weighted by 1/measured) for the cost of one flush IPI,
    everything else priced by ``profile``."""
    num = den = 0.0
    for st, measured in rows:
        ipis = st.flush_ops["ipi"]
        _, br = move_cost(profile, st)
        rest = sum(v for k, v in br.items() if k != "ipi")
        w = 1.0 / max(measured, 1.0) ** 2
        num += w * ipis * (measured - rest)
        den += w * ipis * ipis
    if den == 0:
        raise ValueError("the remote cases sent no IPI: nothing to fit")
    return max(num / den, 0.0)


#: the reading thread's case: a PTE-path move of this many bytes (a flush
#: per PMD extent leaves the reader free between them: each of its slow reads
#: holds one handler) while a thread reads a region of READER_SIZE
READER_MOVE = 256 * MIB
READER_SIZE = 4 * MIB


def measure_reader(repeats: int = ROUNDS) -> dict[str, Any]:
    """A reading thread's latency on the other CPU during ``READER_MOVE``
    PTE-path moves (``host.measure_contend``), medians over ``repeats``
    moves: its p50 and p99 read, and its slow reads' share and median (ns;
    those over p50 by ``SLOW_GAP_NS``: ``slow_ns`` is None without any,
    and the percentiles too where the reader made no read during a move)."""
    h = host.measure_contend(READER_MOVE, "page", READER_SIZE, repeats=repeats)
    case = {"move": f"{READER_MOVE >> 20} MiB zero-page, PTE path", "size": READER_MOVE,
            "reader_size": READER_SIZE, "repeats": repeats}  # fmt: skip
    if not any(len(x) for x in h.latencies_ns):  # a reader kept off its CPU throughout
        return {**case, "p50_ns": None, "p99_ns": None, "slow_share": 0.0, "slow_ns": None}
    share, slow = h.slow_reads(SLOW_GAP_NS)
    return {**case, "p50_ns": h.percentile(50), "p99_ns": h.percentile(99), "slow_share": share,
            "slow_ns": None if math.isnan(slow) else slow}  # fmt: skip


def reader_slow_ns(profile: Arch, reader: dict[str, Any], handler: float) -> float:
    """The model's median slow read (over p50 by ``SLOW_GAP_NS``) in the
    reading thread's case with ``ipi_handler`` = ``handler``, each read
    wrapped in the host reader's timer (``work_ns``: its median read)."""
    spec = ThreadSpec("outside", "read", accesses=1, through_move=True,
                      work_ns=float(reader["p50_ns"]))  # fmt: skip
    r = run_concurrent(int(reader["size"]), profile, "linux-6.18", [spec], cpus=2,
                       populate="read", dst_align="page", region_size=int(reader["reader_size"]),
                       ipi_handler=handler)  # fmt: skip
    return r.threads[0].slow_reads()[1]


def fit_handler(profile: Arch, reader: dict[str, Any]) -> float | None:
    """``ipi_handler`` from the reading thread's slow reads (each holds one
    handler): the model's slow read is linear in the handler's cost with
    slope 1, so one simulation places it. None where the host's reader had
    no slow read (no handler seen), or the model none to place."""
    if reader.get("slow_ns") is None:
        return None
    h0 = max(profile.cost("ipi_handler"), 2 * SLOW_GAP_NS)  # its reads must show as slow
    model = reader_slow_ns(profile, reader, h0)
    return None if math.isnan(model) else max(h0 + float(reader["slow_ns"]) - model, 0.0)


def _report(profile: Arch, cases: list[Case], times: dict[tuple[Case, int], float],
            cpus: int) -> list[dict[str, Any]]:  # fmt: skip
    """Predicted (by ``profile``) vs measured for each case with ``cpus``."""
    out = []
    for c in cases:
        measured = times[c, cpus]
        predicted = move_cost(profile, simulate(c, profile, cpus))[0]
        label = c.label if cpus == 1 else f"{c.label} {cpus}cpu"
        out.append({"case": label, "measured_ns": measured, "predicted_ns": predicted,
                    "error": predicted / measured - 1})  # fmt: skip
    return out


def calibrate(path: str | Path, repeats: int = 5, cases: list[Case] | None = None,
              verbose: bool = True, cpus: int = 1, held_out: list[Case] | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure, fit and write the calibration file; returns its contents
    (``progress(done, total)`` follows the measurements, if given).

    The training cases (``cases``, default ``TRAINING``) and the held-out
    ones (``held_out``, default ``HELD_OUT``; ``[]`` for none) are measured
    together, round-robin, so the held-out check sees the machine the fit
    saw; only the training cases enter the fit. ``cpus`` > 1 also fits
    ``ipi`` from moves with other threads running (``REMOTE_TRAINING``) and
    checks it on ``REMOTE_HELD_OUT`` in the same rounds (where this machine
    cannot pin that many threads, it says why and calibrates the
    single-CPU costs only). The file records every case: "fit" and
    "held_out", and under "remote" the same with ``cpus`` CPUs."""
    ok, why = host.available()
    if not ok:
        raise NotImplementedError(f"calibration needs the host probe: {why}")
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise ValueError(f"cpus must be an int >= 1, not {cpus!r}")
    training = cases or TRAINING
    check = HELD_OUT if held_out is None else held_out
    remote: dict[str, Any] = {"cpus": cpus}
    keys = [(c, 1) for c in training + check]
    if cpus > 1:
        try:
            host.measure_move(2 * MIB, "none", repeats=1, verify=False, threads=cpus)
        except (ValueError, OSError) as e:
            remote["skipped"] = f"cannot run {cpus} pinned threads here: {e}"
            if verbose:
                print(f"remote flushes not calibrated: {remote['skipped']}")
        else:
            keys += [(c, cpus) for c in REMOTE_TRAINING + REMOTE_HELD_OUT]
    _warm_up()
    samples = measure_samples(keys, repeats, progress=progress)
    if len(keys) > len(training + check):  # the remote cases run: the reader too
        remote["reader"] = measure_reader()
    times = {k: statistics.median(v) for k, v in samples.items()}
    cold = measure_cold()
    remote_cases = (REMOTE_TRAINING, REMOTE_HELD_OUT) if "skipped" not in remote and cpus > 1 \
        else None  # fmt: skip
    sp = spread(samples, training, check, remote, remote_cases)
    data = {
        "arch": "x86-64",
        "host": platform.node(),
        "kernel": platform.release(),
        "date": datetime.date.today().isoformat(),
        "rounds": ROUNDS,
        **_fitted(training, check, times, remote, remote_cases, _sync_wait(sp)),
        "spread": sp,
        "cold_call": cold,
    }
    # each case's measurement in each round, so that refit can redo the spread
    lists = [training, check, *(remote_cases or ([], []))]
    for (rows, n), cases_ in zip(_row_groups(data), lists, strict=True):
        for row, case in zip(rows, cases_, strict=True):
            row["rounds_ns"] = samples[case, n]
    data["costs"].update(_measured(data))
    Path(path).write_text(json.dumps(data, indent=1))
    _show(data, verbose)
    return data


def _sync_wait(sp: dict[str, Any]) -> float | None:
    """The sender's wait per flush IPI in its synchronous regime: the
    highest of ``ipi``'s round fits (rounds that fit 0 ns are this host's
    other regime, where the flush did not wait), None without a spread."""
    return float(sp["ipi"]["high"]) if "ipi" in sp else None


def _fitted(training: list[Case], check: list[Case], times: dict[tuple[Case, int], float],
            remote: dict[str, Any], remote_cases: tuple[list[Case], list[Case]] | None,
            sync_wait: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The fit of measured ``times`` under the model as it is: the costs,
    and every case predicted beside its measurement ("fit", "held_out",
    and in ``remote`` those with ``remote["cpus"]`` CPUs). ``ipi_handler``
    is at most ``sync_wait`` or the ``ipi`` fitted here, whichever is
    higher (``math.inf``: not capped)."""
    base = _arch("x86-64")
    costs = _fit([(simulate(c, base), times[c, 1]) for c in training], base)
    fitted = base.with_costs(**costs)
    report = _report(fitted, training, times, 1)
    checked = _report(fitted, check, times, 1)
    if remote_cases is not None:
        cpus = remote["cpus"]
        rrows = [(simulate(c, fitted, cpus), times[c, cpus]) for c in remote_cases[0]]
        costs["ipi"] = _fit_ipi(rrows, fitted)
        fitted = fitted.with_costs(ipi=costs["ipi"])
        # a copy: spread() fits each round with this dict shared
        reader = dict(remote["reader"]) if remote.get("reader") else None
        # None: no slow read, no handler seen: the profile's own is kept, not fitted
        h = fit_handler(fitted, reader) if reader is not None else None
        if reader is not None:
            remote["reader"] = reader
            reader["beyond_ipi_ns"] = 0.0
        if reader is not None and h is not None:
            # the sender waits for each receiver's handler (flush_tlb_mm_range:
            # on_each_cpu_cond_mask with wait, arch/x86/mm/tlb.c), so slow
            # reads beyond its wait in its synchronous rounds were no handler
            # it waited for (a flush to a preempted vCPU is deferred,
            # kvm_flush_tlb_multi in arch/x86/kernel/kvm.c, and such a vCPU's
            # reads stall anyway): capped there, the rest kept and warned about
            cap = costs["ipi"] if sync_wait is None else max(costs["ipi"], sync_wait)
            reader["beyond_ipi_ns"] = max(h - cap, 0.0)
            costs["ipi_handler"] = min(h, cap)
            fitted = fitted.with_costs(ipi_handler=costs["ipi_handler"])
            slow = reader_slow_ns(fitted, reader, costs["ipi_handler"])
            reader["predicted_slow_ns"] = None if math.isnan(slow) else slow
        remote["fit"] = _report(fitted, remote_cases[0], times, cpus)
        remote["held_out"] = _report(fitted, remote_cases[1], times, cpus)
    return {"costs": costs, "fit": report, "held_out": checked, "remote": remote}


def refit(path: str | Path, out: str | Path | None = None, verbose: bool = True) -> dict[str, Any]:
    """Fit a calibration file's own measurements again under the model as
    it is now (after a change to what a move does, such as a new flush):
    the same cases, measured on the same host, re-simulated and re-fitted,
    with no host needed. Writes ``out`` (default: ``path`` itself) and
    returns its contents; ``refitted`` records the date."""
    data = load_file(path)
    times: dict[tuple[Case, int], float] = {}
    samples: dict[tuple[Case, int], list[float]] = {}
    remote = {k: v for k, v in data["remote"].items() if k not in ("fit", "held_out")}
    picked: list[list[Case]] = []
    groups = _row_groups(data)
    for rows, n in groups:
        picked.append(_cases_of(rows, n, path))
        for row, case in zip(rows, picked[-1], strict=True):
            times[case, n] = float(row["measured_ns"])
            if row.get("rounds_ns"):
                samples[case, n] = [float(x) for x in row["rounds_ns"]]
    remote_cases = (picked[2], picked[3]) if picked[2] else None
    old_rows = [rows for rows, _ in groups]
    if len(samples) == len(times):  # every case has its rounds: the spread again
        data["spread"] = spread(samples, picked[0], picked[1], remote, remote_cases)
    data.update(_fitted(picked[0], picked[1], times, remote, remote_cases,
                        _sync_wait(data.get("spread") or {})))  # fmt: skip
    for rows, new in zip(old_rows, (r for r, _ in _row_groups(data)), strict=True):
        for was, row in zip(rows, new, strict=True):
            if "rounds_ns" in was:
                row["rounds_ns"] = was["rounds_ns"]
    data["costs"].update(_measured(data))  # measured, not fitted: kept as they are
    data["refitted"] = datetime.date.today().isoformat()
    Path(out or path).write_text(json.dumps(data, indent=1))
    _show(data, verbose)
    return data


def _row_groups(data: dict[str, Any]) -> list[tuple[list[dict[str, Any]], int]]:
    """A calibration document's case rows, each group with its CPU count:
    fit, held out, and the remote fit and held out."""
    cpus = int(data["remote"].get("cpus", 1))
    return [(data["fit"], 1), (data["held_out"], 1), (data["remote"].get("fit", []), cpus),
            (data["remote"].get("held_out", []), cpus)]  # fmt: skip


def _cases_of(rows: list[dict[str, Any]], n: int, path: str | Path) -> list[Case]:
    """The Cases that ``rows`` (measured with ``n`` CPUs) name; ValueError
    naming ``path`` for a case calibrate does not measure."""
    cases = {c.label: c for c in TRAINING + HELD_OUT + REMOTE_TRAINING + REMOTE_HELD_OUT}
    out = []
    for row in rows:
        label = row["case"] if n == 1 else row["case"].removesuffix(f" {n}cpu")
        if label not in cases:
            raise ValueError(f"{path}: case {row['case']!r} is not one calibrate measures")
        out.append(cases[label])
    return out


def _measured(data: dict[str, Any]) -> dict[str, float]:
    """The MEASURED costs of a calibration document, from its measurements."""
    cold = data.get("cold_call") or {}
    resize = cold.get("resize_median_ns")
    return {"mremap_resize_call": float(resize[0])} if resize else {}


def load_file(path: str | Path) -> dict[str, Any]:
    """A calibration file's document (ValueError naming the file if it is
    not one)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable calibration file ({e})") from e
    if not isinstance(data, dict) or not {"costs", "fit", "held_out", "remote"} <= set(data):
        raise ValueError(f"{path}: not a calibration file (needs costs, fit, held_out, remote)")
    return data


def _show(data: dict[str, Any], verbose: bool) -> None:
    """Print a calibration's cases, predicted beside measured."""
    if not verbose:
        return
    remote, cpus = data["remote"], data["remote"].get("cpus", 1)
    _print(data["fit"], "fit")
    if data["held_out"]:
        _print(data["held_out"], "held out")
    if "fit" in remote:
        _print(remote["fit"], f"fit, {cpus} CPUs")
        _print(remote["held_out"], f"held out, {cpus} CPUs")
    beyond = (remote.get("reader") or {}).get("beyond_ipi_ns", 0.0)
    if beyond > 0:
        print(f"WARNING: the reading thread's slow reads exceed the sender's wait per flush "
              f"IPI (its highest round fit) by {beyond:.0f} ns: no synchronous handler "
              "explains that (a deferred flush to a preempted vCPU?); ipi_handler is capped "
              "at that wait, so the model under-predicts a reading thread's p99 on this "
              "host")  # fmt: skip
    for k, sp in (data.get("spread") or {}).items():
        if sp.get("unstable"):
            print(f"WARNING: {k} is unstable on this host ({sp['why']}): the file gives "
                  f"its range {sp['low']:.0f}-{sp['high']:.0f} ns, which every estimate "
                  "made with it carries")  # fmt: skip
    cold = data.get("cold_call")
    if cold:
        warm = cold["median_ns"][0]
        print(f"cold call: {cold['call']}, median after faulting N bytes (extra over warm)")
        for n, ns in zip(cold["faulted_bytes"], cold["median_ns"], strict=True):
            print(f"  {n >> 10:>8} KiB {ns / 1e3:>8.2f}us {(ns - warm) / 1e3:>+8.2f}us")


def validate(profile: Arch, repeats: int = 5, cases: list[Case] | None = None,
             verbose: bool = True, cpus: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    """Predicted vs measured on held-out cases (other sizes, alignments,
    written pages); with ``cpus`` > 1, moves with ``cpus - 1`` other
    threads running (PTE, PMD and PUD paths). For checking a calibration
    file later (``calibrate`` checks its own fit on the held-out cases in
    the same rounds)."""
    _warm_up()
    held_out = cases or (HELD_OUT if cpus == 1 else REMOTE_HELD_OUT)
    report = _report(profile, held_out, measure_rounds([(c, cpus) for c in held_out], repeats),
                     cpus)  # fmt: skip
    if verbose:
        _print(report, "held out" if cpus == 1 else f"held out, {cpus} CPUs")
    return report


def _print(report: list[dict[str, Any]], title: str) -> None:
    print(f"{title}: {'case':18} {'measured':>12} {'predicted':>12} {'error':>8}")
    for r in report:
        print(f"{'':{len(title) + 2}}{r['case']:18} {r['measured_ns'] / 1e3:>10.1f}us "
              f"{r['predicted_ns'] / 1e3:>10.1f}us {r['error']:>+8.1%}")  # fmt: skip
    errs = [abs(r["error"]) for r in report]
    print(f"{'':{len(title) + 2}}median |error| {statistics.median(errs):.1%}, "
          f"max {max(errs):.1%}")  # fmt: skip
