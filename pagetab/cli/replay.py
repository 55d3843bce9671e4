"""``pagetab replay``: replay a recorded trace under each arch and policy."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Any

from ..plot import save_figure
from ..replay import ReplayResult, compare_replay, replay
from . import _argtypes, _options
from ._output import Progress, print_json, say, table, write_rows
from ._registry import UsageError, subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "trace",
        metavar="FILE",
        nargs="+",
        help="traces written by pagetab record or pagetab import (example:NAME for one "
        "shipped with pagetab: example:grow_bytearray, example:uffd_gc, "
        "example:threaded_moves, example:fork_child); with several "
        "(or several archs or policies) they replay in parallel",
    )
    _options.add_arch(parser, ["x86-64"])
    _options.add_policy(parser, ["linux-6.18"])
    _options.add_cpus(parser, None, shown="the recording host's CPU count")
    _options.add_device(parser)
    _options.add_calibration(parser)
    parser.add_argument(
        "--translate",
        action="store_true",
        help="replay a trace of another page size with its byte ranges as recorded, or one "
        "whose addresses lie past the arch's address space with its regions moved into it "
        "(offsets within each GiB kept)",
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="also print each priced call: the kernel's recorded time beside the estimate, "
        "the error, and the flushes of both",
    )
    parser.add_argument(
        "--concurrent",
        type=int,
        default=0,
        metavar="N",
        help="run the concurrent model on the N largest mremap moves made while the process "
        "had other threads, and print what those threads paid (default 0: none)",
    )
    parser.add_argument(
        "--differences",
        type=int,
        default=10,
        metavar="N",
        help="print at most N differences from the recording (default 10)",
    )
    parser.add_argument(
        "--chrome-trace",
        metavar="FILE",
        help="also write the timeline (calls, lock holds, flushes per CPU) as "
        "Chrome trace-event JSON, for Perfetto; one arch and policy only",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        type=_argtypes.plot_path,
        help="also plot each priced call's estimate against the kernel's time "
        "and the cumulative time over the run (.png, .pdf, .svg, ...: the extension names "
        "the format); one arch and policy only",
    )
    _options.add_format(parser)
    _options.add_outputs(parser, plot=None)


@subcommand(
    "replay",
    help="replay a recorded program under each arch and policy: every call's cost, "
    "and every difference from the recording",
    description="Rebuilds each recorded process call by call and fault by fault (one CPU "
    "per thread) under each --arch and --policy, prices its mremap and UFFDIO_MOVE calls, "
    "prints totals per call kind beside the kernel's recorded time, and lists every result, "
    "VMA or present page that differs from the recording (exit status 1 if any does).",
    section="simulate",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Replay each trace under each arch x policy and print the totals."""
    args.trace = [_options.shipped_file(t, "replay") for t in args.trace]
    args.calibration = _options.calibration_file(args.calibration)
    jobs = len(args.trace) * len(args.arch) * len(args.policy)
    if args.concurrent < 0:
        raise UsageError(f"replay: --concurrent must be >= 0, not {args.concurrent}")
    for opt in ("chrome_trace", "plot", "concurrent"):
        if getattr(args, opt) and jobs > 1:
            flag = "--" + opt.replace("_", "-")
            raise UsageError(f"replay: {flag} needs one trace, one --arch and one --policy")
    if jobs > 1 and len(args.trace) > 1:
        return _many(args)
    args.trace = args.trace[0]
    rows = []
    status = 0
    for arch in args.arch:
        for pol in args.policy:
            res = _replay(args, arch, pol)
            if res is None:
                return 1
            if args.chrome_trace:
                res.write_chrome_trace(args.chrome_trace)
            if args.plot:
                _plot(res, args.plot)
            for row in res.summary():
                rows.append({"arch": res.arch, "policy": res.policy, **row})
            if not res.exact:
                status = 1
            if not args.json:
                _print_differences(res, args.differences)
                if args.calls:
                    _print_calls(res)
                if args.concurrent:
                    _print_concurrent(res)
    write_rows(rows, args)
    if args.json:
        print_json(rows)
        return status
    head = ["arch", "policy", "call", "calls", "est. us", "cold us", "kernel us", "total err %",
            "median err %", "flushes kernel/pagetab"]  # fmt: skip
    priced = [r for r in rows if r["priced"]]
    cells = [[r["arch"], r["policy"], r["kind"], r["calls"], _f(r["estimated_us"]),
              _f(r["cold_us"]), _f(r["recorded_us"]), _f(r["total_error_pct"]),
              _f(r["median_error_pct"]), _flushes(r)] for r in priced]  # fmt: skip
    name = os.path.basename(args.trace)
    table(f"replay of {name}: the priced calls (cold us: of the estimate, what the calls pay "
          "after the faults before them, by the profile's cold-call curve; kernel us: their "
          "recorded kernel time; flushes: tlb:tlb_flush on the calling CPU during them, and "
          "pagetab's)",
          head, cells, right_from=3)  # fmt: skip
    others = sorted({(r["kind"], r["calls"]) for r in rows if not r["priced"]})
    say("calls replayed without a price: " + ", ".join(f"{k} {n}" for k, n in others))
    return status


def _many(args: argparse.Namespace) -> int:
    """Several traces: replayed in parallel (compare_replay), one row each."""
    prog = Progress(args.progress, "replaying")
    baseline = "linux-6.18" if "linux-6.18" in args.policy else args.policy[0]
    try:
        res = compare_replay(args.trace, args.arch, args.policy, baseline=baseline,
                             cpus=args.cpus, device=args.device, calibration=args.calibration,
                             translate=args.translate, progress=prog)  # fmt: skip
    except (ValueError, OSError) as e:
        print(f"pagetab replay: {e}", file=sys.stderr)
        return 1
    finally:
        prog.close()
    write_rows(res.rows(), args)
    if args.json:
        print_json(res.rows())
    else:
        for r in res:
            _print_differences(r, args.differences)
        head, cells = res.cells()
        table(
            "replays (est. us: pagetab's estimate of the priced calls; kernel us: their "
            "recorded time, on the recording host's arch)",
            head,
            cells,
            right_from=3,
        )
    return 0 if all(r.exact for r in res) else 1


def _replay(args: argparse.Namespace, arch: str, pol: str) -> ReplayResult | None:
    """One replay, with a progress bar; None (said on stderr) if the trace is bad."""
    prog = Progress(args.progress, f"replaying on {arch} under {pol}")
    try:
        return replay(args.trace, arch, pol, args.cpus, device=args.device,
                               calibration=args.calibration, keep_calls=True,
                               translate=args.translate, timeline=bool(args.chrome_trace),
                               concurrent=args.concurrent, progress=prog)  # fmt: skip
    except (ValueError, OSError) as e:
        print(f"pagetab replay: {e}", file=sys.stderr)
        return None
    finally:
        prog.close()


def _plot(res: ReplayResult, path: str) -> None:
    """The calls against the kernel's times (where comparable) beside the
    cumulative time, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = 2 if res.comparable else 1
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5.5), dpi=110, squeeze=False)
    if res.comparable:
        res.plot("calls", ax=axes[0][0])
    res.plot("cumulative", ax=axes[0][-1])
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _print_calls(res: ReplayResult) -> None:
    """Each priced call, in order."""
    head = ["ms", "cpu", "call", "bytes", "moved", "kernel us", "est. us", "cold us", "err %",
            "flushes kernel/pagetab"]  # fmt: skip
    rows = []
    for c in res.calls:
        if c.estimated_ns is None:
            continue
        size = c.args[2] if c.name == "mremap" else c.counters.get("bytes_moved", 0)
        moved = "yes" if c.name == "mremap" and c.replayed not in (c.args[0], -1) else "-"
        rec = c.recorded_ns if res.comparable else None
        err = (c.estimated_ns - rec) / rec * 100 if rec else None
        k = "-" if c.recorded_flushes is None else str(c.recorded_flushes)
        rows.append([f"{c.t / 1e6:.3f}", str(c.cpu), c.name, f"{size:,}", moved,
                     _f(None if rec is None else rec / 1e3), _f(c.estimated_ns / 1e3),
                     _f(c.cold_ns / 1e3 if res.cold_priced else None), _f(err),
                     f"{k}/{c.simulated_flushes}"])  # fmt: skip
    table(f"{res.arch} {res.policy}: each priced call", head, rows, right_from=3)


def _print_concurrent(res: ReplayResult) -> None:
    """What the other threads paid for the largest moves (the concurrent model)."""
    if not res.concurrent:
        say(f"{res.arch} {res.policy}: no move was made while the process had other threads")
        return
    head = ["ms", "pid", "call", "bytes", "present", "src offset", "dst offset", "threads",
            "mover us",
            "IPIs",
            "p99 ns", "max ns", "stall us"]  # fmt: skip
    rows = []
    for m in res.concurrent:
        r = m.result
        assert r is not None
        where = ", ".join(f"{n}x{w}" for w, n in sorted(Counter(m.places).items()))
        rows.append([f"{m.t / 1e6:.3f}", str(m.pid), m.call, f"{m.size:,}", f"{m.present:,}",
                     f"{int(r.src_align):#x}",
                     f"{int(r.dst_align):#x}" if m.call in ("mremap", "uffdio_move") else "-",
                     where,
                     _f(r.estimated_ns / 1e3), str(r.ipis_sent), _f(r.worst("p99")),
                     _f(r.worst("max")), _f(r.stall_ns / 1e3)])  # fmt: skip
    table(f"{res.arch} {res.policy}: what the process's other threads paid for its largest "
          "moves and unmaps (the concurrent model: mremap, UFFDIO_MOVE, madvise(MADV_DONTNEED), "
          "munmap or mprotect to read-only; source and destination at their recorded offsets "
          "within a PUD; each thread reads at random inside the range if its "
          "recent faults fell there, else outside it; p99 and max: the worst thread's "
          "accesses during the call; stall: the threads' extra time)",
          head, rows, right_from=3)  # fmt: skip


def _flushes(r: dict[str, Any]) -> str:
    k = "-" if r["kernel_flushes"] is None else f"{r['kernel_flushes']:,}"
    return f"{k}/{r['pagetab_flushes']:,}"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _print_differences(res: ReplayResult, limit: int) -> None:
    what = "exact" if res.exact else f"{len(res.differences)} difference(s)"
    say(
        f"{res.arch} {res.policy}: {res.processes} process(es), {res.events} events, "
        f"{res.faults} faults: {what}"
    )
    for d in res.differences[:limit]:
        say(
            f"  pid {d.pid} t={d.t / 1e6:.3f} ms: {d.what}: recorded {d.recorded}, "
            f"replayed {d.replayed}"
        )
    for why, n in res.skipped.most_common():
        say(f"  not simulated ({n}x): {why}")
    for why, n in res.translated.most_common():
        say(f"  translated ({n}x): {why}")
