"""The ``pagetab`` command (also ``python -m pagetab``): what does this
move cost, on which arch, under which policy, and is it safe?

Subcommands (``pagetab SUBCOMMAND --help`` for each):

  compare     every policy on a few sizes and archs (the default)
  sweep       a size range x archs x policies in parallel; CSV, JSON, a plot
  move        one move in detail: counts, locks, flush instructions, cost
  archs       the architecture profiles
  policies    the kernel policies with their commits
  reproduce   the 2018 review thread's findings beside the published numbers
  contend     what the process's other threads pay while one thread moves
  host        the real kernel's moves on this machine beside the simulator
  calibrate   fit the x86-64 costs to this machine's kernel

Sizes take 4K/2M/1G/1T suffixes, lists (1G,64G) and doubling ranges
(1G..256G). Exit status: 0 success, 1 failure (an unsafe move with
--fail-unsafe, no host probe, a missing optional library, an output file
that cannot be written; or an internal error, a bug: --debug prints its
traceback), 2 bad usage.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import platform
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Any, NoReturn, TypeVar

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from . import calibrate, compaction, contention, experiment, host
from ._version import __version__
from .arch import arch, archs, devices
from .experiment import Results, validate_jobs
from .native import PATHS, compare_gc_cycle, compare_move
from .policy import policies, policy
from .reproduce import reproduce_2018, reproduce_published
from .scenario import ALIGNS, parse_populate
from .units import format_size, parse_size, parse_sizes

DEFAULT_SIZES = "1G,64G"
DEFAULT_ARCHS = "x86-64,arm64-4k"
HOST_UNIT = 2 << 20  # the host probe moves whole PMDs


class UsageError(Exception):
    """A command-line value that argparse cannot check alone (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ----------------------------------------------------------------------
# argument types


T = TypeVar("T")


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError becomes the usage error."""

    def typed(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    typed.__name__ = parse.__name__
    return typed


_size, _sizes = _arg(parse_size), _arg(parse_sizes)


def _names(valid: Callable[[], list[str]], what: str) -> Callable[[str], list[str]]:
    """A comma list of names (or "all"), each checked against ``valid()``."""

    def parse(text: str) -> list[str]:
        if text == "all":
            return valid()
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in valid()]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)}; valid: all, {', '.join(valid())}"
            )
        return names

    return parse


def _populate(text: str) -> str:
    try:
        parse_populate(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _bounded(convert: Callable[[str], T], ok: Callable[[T], bool], what: str,
             kind: str) -> Callable[[str], T]:  # fmt: skip
    """An argparse type: ``convert`` the text, then require ``ok``."""

    def parse(text: str) -> T:
        try:
            x = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not ok(x):
            raise argparse.ArgumentTypeError(f"must be {what}, not {x}")
        return x

    return parse


_positive = _bounded(int, lambda n: n >= 1, ">= 1", "an integer")
_fraction = _bounded(float, lambda x: 0 < x <= 1, "a fraction in (0, 1]", "a number")
_at_least_one = _bounded(float, lambda x: x >= 1, ">= 1", "a number")


def _host_size(text: str) -> int:
    n = parse_size(text)
    if n % HOST_UNIT:
        raise argparse.ArgumentTypeError(f"must be a multiple of 2M, not {text!r}")
    return n


def _cpus(text: str) -> int:
    n = _positive(text)
    if n > 256:
        raise argparse.ArgumentTypeError(f"must be in 1..256, not {n}")
    return n


# ----------------------------------------------------------------------
# output


def _table(
    title: str | None,
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    right_from: int = 1,
    bad: Sequence[bool] = (),
    left: Sequence[int] = (),
) -> None:
    """A rich table: coloured on a terminal; plain, unwrapped and without
    trailing blanks when piped or redirected (so that it diffs and greps)."""
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for i, h in enumerate(head):
        t.add_column(escape(h), justify="right" if i >= right_from and i not in left else "left")
    for i, r in enumerate(rows):
        t.add_row(
            *[escape(str(c)) for c in r], style="bold red" if i < len(bad) and bad[i] else None
        )
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(t)
        return
    plain = Console(highlight=False, width=1000, no_color=True, file=io.StringIO())
    with plain.capture() as cap:
        plain.print(t)
    text = "\n".join(line.rstrip() for line in cap.get().splitlines())
    print(text.strip("\n"))


def _json(data: Any) -> None:
    print(json.dumps(data, indent=1, default=str))


def _interval(low: float | None, high: float | None, fmt: str = ".1f") -> str:
    """The interval as "low-high" in ``fmt``, or "-" where there is none."""
    return "-" if low is None or high is None else f"{low:{fmt}}-{high:{fmt}}"


def _results_table(res: Results, title: str, single: Results | None = None) -> None:
    head, rows = res.cells()
    if single is not None:
        # the same moves with one CPU in mm_cpumask, as published
        # measurements were made, beside the multi-CPU estimate and its range
        one = {(r.arch, r.size, r.policy): r.estimated_ns for r in single}
        at = head.index("est. range us") + 1
        head.insert(at, "1 CPU us")
        for row, r in zip(rows, res, strict=True):
            row.insert(at, f"{one[(r.arch, r.size, r.policy)] / 1e3:.1f}")
    _table(title, head, rows, right_from=3, bad=[not r.safe for r in res])


class _Progress:
    """A rich progress bar (on a terminal, or when asked), as a callback."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar: Any = None
        if enabled:
            self.bar = Progress(console=_stderr_console(), transient=True)
            self.task = self.bar.add_task(label, total=None)
            self.bar.start()

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _stderr_console() -> Any:
    return Console(stderr=True)


def _write_outputs(res: Results | contention.ContendResults, args: argparse.Namespace) -> int:
    if args.csv:
        res.to_csv(args.csv)
    if getattr(args, "json_out", None):
        res.to_json(args.json_out)
    if getattr(args, "plot", None):
        try:
            res.plot(args.plot)
        except ImportError as e:
            print(f"pagetab: {e}", file=sys.stderr)
            return 1
    return 0


# ----------------------------------------------------------------------
# subcommands


def _run_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "populate": args.populate,
        "src_align": args.src_align,
        "dst_align": args.align,
        "cpus": args.cpus,
    }


def _compare(args: argparse.Namespace) -> int:
    prog = _Progress(args.progress, "moving")
    single = None
    try:
        res = experiment.compare(
            args.size,
            args.arch,
            args.policy,
            baseline=args.baseline,
            progress=prog,
            **_run_kwargs(args),
        )
        if args.cpus > 1:
            single = experiment.compare(
                args.size, args.arch, args.policy, baseline=args.baseline,
                **{**_run_kwargs(args), "cpus": 1},
            )  # fmt: skip
    finally:
        prog.close()
    if args.json:
        rows = res.rows()
        if single is not None:
            for row, r in zip(rows, single, strict=True):
                row["estimated_ns_1cpu"] = r.estimated_ns
        _json(rows)
    else:
        _results_table(
            res,
            f"{args.populate}-populated, source {args.src_align} aligned, "
            f"destination {args.align} aligned, {args.cpus} CPUs in "
            "mm_cpumask (1 CPU us: the same move with one)",
            single,
        )
    status = _write_outputs(res, args)
    return status or (1 if args.fail_unsafe and any(not r.safe for r in res) else 0)


def _sweep(args: argparse.Namespace) -> int:
    executor = None
    if args.jobs:
        executor = ProcessPoolExecutor(max_workers=args.jobs)
    prog = _Progress(
        args.progress, f"sweep of {len(args.size) * len(args.arch) * len(args.policy)}"
    )
    try:
        res = experiment.sweep(
            args.size,
            args.arch,
            args.policy,
            executor=executor,
            baseline=args.baseline,
            progress=prog,
            **_run_kwargs(args),
        )
    finally:
        prog.close()
        if executor is not None:
            executor.shutdown()
    if args.json:
        _json(res.rows())
    elif not args.quiet:
        _results_table(res, f"sweep: {len(res)} moves")
    status = _write_outputs(res, args)
    return status or (1 if args.fail_unsafe and any(not r.safe for r in res) else 0)


def _move(args: argparse.Namespace) -> int:
    r = experiment.run_move(
        args.size,
        arch=args.arch,
        policy=args.policy,
        populate=args.populate,
        src_align=args.src_align,
        dst_align=args.align,
        cpus=args.cpus,
    )
    if args.json:
        _json(r.row())
    else:
        print(
            f"{r.arch}, {r.policy}, {format_size(r.size)}, {r.populate}-populated, source "
            f"{r.src_align} aligned, destination {r.dst_align} aligned, {r.cpus} CPUs"
        )
        low, high = r.estimated_ns_range
        rows = [[k, v] for k, v in r.counters.items()]
        rows += [
            ["locks acquired", r.lock_acquired],
            ["flush ops", {k: v for k, v in r.flush_ops.items() if v}],
            ["estimated", f"{r.estimated_ns / 1e3:.1f} us"],
            ["estimated range", f"{_interval(low / 1e3, high / 1e3)} us"],
            ["breakdown (ns)", {k: round(v) for k, v in r.breakdown.items() if v}],
            ["peak page tables", f"{r.peak_page_table_bytes} bytes"],
            ["simulated in", f"{r.sim_wall_ns / 1e6:.2f} ms"],
            ["safe", "yes" if r.safe else "NO: UNSAFE"],
        ]
        _table(None, ["", ""], rows, right_from=2)
    return 1 if args.fail_unsafe and not r.safe else 0


def _listing(what: str, names: list[str], get: Callable[[str], Any],
             args: argparse.Namespace) -> int:  # fmt: skip
    """pagetab archs / policies: name, description and source of each."""
    rows = [[n, get(n).description, get(n).source] for n in names]
    if args.json:
        _json([{"name": n, "description": d, "source": s} for n, d, s in rows])
    else:
        _table(None, [what, "description", "source"], rows, right_from=3)
    return 0


def _archs(args: argparse.Namespace) -> int:
    code = _listing("arch", archs(), arch, args)
    if not args.json:
        rows = [[name, text] for name, text in devices().items()]
        _table("device calibrations (--device; fitted to published measurements)",
               ["device", "arch: description"], rows, right_from=2)  # fmt: skip
    return code


def _policies(args: argparse.Namespace) -> int:
    return _listing("policy", policies(), policy, args)


def _reproduce(args: argparse.Namespace) -> int:
    found = reproduce_2018()
    published = reproduce_published()
    if args.json:
        _json({"findings": [{**asdict(f), "error": f.error} for f in found],
               "published": [{**asdict(p), "error": p.error} for p in published]})  # fmt: skip
        return 0
    rows = [
        [
            f.case,
            f"{f.simulated:.1f}x",
            "-" if f.published is None else f"{f.published:.0f}x",
            "-" if f.error is None else f"{f.error:+.0%}",
            f"{f.claim} [{f.source}]",
        ]
        for f in found
    ]
    _table(None, ["case", "simulated", "published", "error", "claim [source]"], rows, left=[4])

    def us(x: float | None) -> str:
        return "-" if x is None else f"{x:,.1f}"

    rows = [
        [
            p.id,
            p.profile,
            p.path,
            us(p.published_us),
            "-" if p.low_us is None else f"{p.low_us:,.0f}-{p.high_us:,.0f}",
            us(p.simulated_us),
            _interval(p.simulated_low_us, p.simulated_high_us, ",.1f"),
            "-" if p.error is None else f"{p.error:+.0%}",
            "fitted" if p.fitted else ("predicted" if p.simulated_us is not None else "-"),
            p.simulated_as,
        ]
        for p in published
    ]
    _table(
        "published timings (us): each simulated single-CPU with the arch profile as shipped "
        "and with each device calibration of it; 'fitted': the device was fitted to this "
        "figure, 'predicted': it was not (a cross-source prediction)",
        [
            "id",
            "priced with",
            "path",
            "published",
            "range",
            "simulated",
            "sim. range",
            "error",
            "use",
            "simulated as",
        ],
        rows,
        left=[1, 2, 9],
    )
    return 0


def _host_unavailable(command: str) -> bool:
    """Say so (exit status 1 follows) when the host probe cannot run here."""
    ok, why = host.available()
    if not ok:
        print(f"pagetab {command}: the host probe is unavailable: {why}", file=sys.stderr)
    return not ok


def _calibrate(args: argparse.Namespace) -> int:
    if _host_unavailable("calibrate"):
        return 1
    calibrate.calibrate(args.out, repeats=args.repeats, cpus=args.cpus)
    print(
        f"wrote {args.out} (training and held-out cases measured in the same "
        f"{calibrate.ROUNDS} rounds; only the training cases fitted)"
    )
    return 0


def _host(args: argparse.Namespace) -> int:
    if _host_unavailable("host"):
        return 1
    if args.gc:
        return _host_gc(args)
    res = [compare_move(group, args.size, args.repeats) for group in PATHS]
    if args.json:
        _json([{**asdict(c), "ratio": c.ratio} for c in res])
        return 0
    rows = [
        [
            c.group,
            f"{(c.native_ns or 0) / 1e3:.1f}",
            f"{c.sim_ns / 1e3:.1f}",
            f"{c.ratio or 0:.2f}x",
        ]
        for c in res
    ]
    _table(
        f"this kernel, {format_size(args.size)} zero-page region, mremap(MAYMOVE|FIXED), "
        f"median of {args.repeats}",
        ["path", "native us", "simulated us", "sim/native"],
        rows,
    )
    return 0


def _gc(args: argparse.Namespace) -> int:
    prog = _Progress(args.progress, "compacting")
    try:
        res = compaction.compare_gc(
            args.size, args.arch, args.policy, baseline=args.baseline, progress=prog,
            live=args.live, run_pages=args.run_pages, order=args.order,
            ioctl_pages=args.ioctl_pages, cpus=args.cpus,
        )  # fmt: skip
    finally:
        prog.close()
    rows = res.rows()
    if args.csv or args.json_out:
        _write_rows(rows, args)
    if args.json:
        _json(rows)
        return 0
    head, cells = res.cells()
    one = res[0]
    calls = "one UFFDIO_MOVE per run" if args.ioctl_pages is None else (
        f"UFFDIO_MOVE calls of at most {args.ioctl_pages} pages")  # fmt: skip
    _table(
        f"one compaction cycle: {format_size(args.size)} heap of 4K pages, "
        f"{args.live:.0%} live in runs of {args.run_pages:g} pages on average, "
        f"{one.pages_moved} pages moved back in {args.order} order, {calls}, "
        f"{args.cpus} CPUs running the process (flush us: UFFDIO_MOVE's flushes and IPIs; "
        "est. us adds the mremap(MREMAP_DONTUNMAP) before)",
        head, cells, right_from=2,
    )  # fmt: skip
    return 0


def _contend(args: argparse.Namespace) -> int:
    spec = contention.ThreadSpec(args.where, args.op, args.pattern, args.accesses,
                                 through_move=args.through_move, think_ns=args.think_ns,
                                 span=args.span)  # fmt: skip
    jobs = list(itertools.product(args.arch, args.size, args.policy))
    prog = _Progress(args.progress, "simulating")
    items = []
    try:
        for i, (a, size, pol) in enumerate(jobs):
            items.append(contention.run_concurrent(
                size, a, pol, [spec] * args.threads, cpus=args.cpus, dst_align=args.dst_align,
                populate=args.populate, move_at_ns=args.move_at_ns, dontunmap=args.dontunmap,
                seed=args.seed))  # fmt: skip
            prog(i + 1, len(jobs))
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        prog.close()
    res = contention.ContendResults(items, args.baseline)
    if _write_outputs(res, args):
        return 1
    if args.json:
        _json(res.rows())
        return 0
    head, cells = res.cells()
    _table(
        f"mremap from CPU 0 while {args.threads} thread(s) on CPUs 1..{args.threads} make "
        f"{args.accesses} {args.pattern} {args.op}s each"
        f"{' (and on until mremap returns)' if args.through_move else ''} {args.where} "
        "the moved region "
        f"(stall: the threads' extra time; refills: TLB refills the move caused; p99 and max: "
        "the worst thread's accesses issued during the move; CPU: mover + stalls)",
        head, cells, right_from=3, bad=[not r.safe for r in res],
    )  # fmt: skip
    return 0


def _write_rows(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    if args.csv:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        with open(args.csv, "w") as f:
            f.write(buf.getvalue())
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(json.dumps(rows, indent=1, default=str) + "\n")


def _host_gc(args: argparse.Namespace) -> int:
    ok, why = host.uffd_available()
    if not ok:
        print(f"pagetab host: the GC cycle needs userfaultfd: {why}", file=sys.stderr)
        return 1
    res = {what: compare_gc_cycle(args.size, ioctl_pages=ip, repeats=args.repeats)
           for what, ip in (("one call per run", None), ("one call per page", 1))}  # fmt: skip
    if args.json:
        _json([{"calls": k, **asdict(c), "error": c.error, "ratio": c.ratio}
               for k, c in res.items()])  # fmt: skip
        return 0
    batched = host.uffd_move_batched()
    rows = []
    for what, c in res.items():
        rows.append([
            what, str(c.ioctls), f"{(c.native_moves_ns or 0) / 1e3:.0f}",
            f"{c.est_moves_ns / 1e3:.0f}", _interval(c.est_moves_range[0] / 1e3,
                                                      c.est_moves_range[1] / 1e3, ".0f"),
            f"{(c.error or 0) * 100:+.0f}%", f"{(c.native_mremap_ns or 0) / 1e3:.0f}",
            f"{c.est_mremap_ns / 1e3:.0f}", f"{c.sim_ns / 1e3:.0f}", f"{c.ratio or 0:.2f}x",
        ])  # fmt: skip
    _table(
        f"this kernel ({platform.release()}: UFFDIO_MOVE "
        f"{'batches flushes, 6.18+' if batched else 'flushes every page, before 6.18'}), "
        f"one compaction cycle of a {format_size(args.size)} heap, 50% live in runs of 16 "
        f"pages, beside x86-64 under {next(iter(res.values())).policy}, "
        f"median of {args.repeats}",
        ["calls", "ioctls", "native us", "estimated us", "est. range us", "error",
         "native mremap us", "est. mremap us", "simulated us", "sim/native"],
        rows,
    )  # fmt: skip
    return 0


# ----------------------------------------------------------------------
# the parser


def _move_options(q: argparse.ArgumentParser, sizes: bool) -> None:
    """Options shared by compare, sweep and move."""
    q.add_argument(
        "--device",
        choices=sorted(devices()),
        help="price with a device calibration fitted to published measurements "
        "(pagetab archs lists them; applies to the archs it was fitted for and their variants)",
    )
    if sizes:
        q.add_argument(
            "--arch",
            type=_names(archs, "arch"),
            default=DEFAULT_ARCHS.split(","),
            help=f"comma list or 'all' (default {DEFAULT_ARCHS})",
        )
        q.add_argument(
            "--policy",
            type=_names(policies, "policy"),
            default=policies(),
            help="comma list or 'all' (the default)",
        )
        q.add_argument(
            "--baseline",
            default="linux-4.19",
            choices=policies(),
            help="the policy ratios are taken against (default linux-4.19)",
        )
    q.add_argument(
        "--populate",
        type=_populate,
        default="write",
        help="write, read (zero page), thp, sparse (1 page in 16 written), or a mix "
        "such as write:0.5,thp:0.5 (default write)",
    )
    q.add_argument(
        "--align",
        default="pmd",
        choices=ALIGNS,
        help="destination alignment (default pmd; pud for PUD moves)",
    )
    q.add_argument(
        "--src-align", default="pud", choices=ALIGNS, help="source alignment (default pud)"
    )
    q.add_argument(
        "--cpus",
        type=_cpus,
        default=4,
        metavar="1..256",
        help="CPUs that ran the process and hold its translations (default 4)",
    )
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--fail-unsafe", action="store_true", help="exit 1 if any move is unsafe")


def _outputs(q: argparse.ArgumentParser, plot: bool = True) -> None:
    q.add_argument("--csv", metavar="FILE", help="also write the results as CSV")
    q.add_argument("--json-out", metavar="FILE", help="also write the results as JSON")
    if plot:
        q.add_argument("--plot", metavar="PNG", help="also plot estimated time against size")
    q.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The pagetab command line."""
    p = _Parser(
        prog="pagetab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"pagetab {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="SUBCOMMAND")
    c = sub.add_parser(
        "compare",
        help="every policy on a few sizes and archs (the default)",
        description="Move the same region under each policy on each arch and "
        "size: counts, flushes, unsafe windows, estimated kernel "
        "time and its ratio to a baseline policy.",
    )
    c.add_argument(
        "--size",
        type=_sizes,
        default=parse_sizes(DEFAULT_SIZES),
        help=f"sizes, e.g. 1G,64G or 1G..256G (default {DEFAULT_SIZES})",
    )
    _move_options(c, sizes=True)
    _outputs(c)
    s = sub.add_parser(
        "sweep",
        help="a size range x archs x policies in parallel",
        description="Run every configuration in worker processes and write "
        "the results (CSV, JSON) and a log-log plot of estimated "
        "time against size.",
    )
    s.add_argument(
        "--size",
        type=_sizes,
        default=parse_sizes("1G..256G"),
        help="sizes, e.g. 1G..256G (the default) or 4K,2M,1G",
    )
    _move_options(s, sizes=True)
    _outputs(s)
    s.add_argument("--jobs", type=_positive, help="worker processes (default: one per CPU)")
    s.add_argument("--quiet", action="store_true", help="no table on stdout")
    m = sub.add_parser(
        "move",
        help="one move in detail",
        description="One mremap(MAYMOVE|FIXED) of a populated region: entries "
        "moved per level, locks, flush instructions, estimated "
        "time by category, safety.",
    )
    m.add_argument("--arch", default="x86-64", choices=archs())
    m.add_argument("--policy", default="linux-6.8", choices=policies())
    m.add_argument("--size", type=_size, default=1 << 30, help="e.g. 4K, 2M, 1G, 64G")
    _move_options(m, sizes=False)
    g = sub.add_parser(
        "gc",
        help="a userfaultfd GC's compaction cycle under each policy",
        description="One compaction cycle as Android's ART runs it: the heap "
        "moved aside with mremap(MREMAP_DONTUNMAP), its live pages moved back "
        "with UFFDIO_MOVE in the GC's order; the kernel's estimated time, "
        "flushes and time per MiB moved under each policy and arch.",
    )
    g.add_argument("--size", type=_size, default=256 << 20, help="heap size (default 256M)")
    g.add_argument(
        "--arch",
        type=_names(archs, "arch"),
        default=["x86-64", "arm64-4k"],
        help="comma list or 'all' (default x86-64,arm64-4k)",
    )
    g.add_argument(
        "--policy",
        type=_names(lambda: [p for p in policies() if policy(p).uffd_move], "policy"),
        default=["linux-6.8", "linux-6.17", "linux-6.18"],
        help="comma list or 'all' of the policies with UFFDIO_MOVE "
        "(default linux-6.8,linux-6.17,linux-6.18)",
    )
    g.add_argument(
        "--baseline",
        default="linux-6.17",
        choices=policies(),
        help="the policy ratios are taken against (default linux-6.17)",
    )
    g.add_argument("--live", type=_fraction, default=0.5, help="live fraction (default 0.5)")
    g.add_argument(
        "--run-pages",
        type=_at_least_one,
        default=16.0,
        help="mean pages per run of live pages (default 16)",
    )
    g.add_argument("--order", choices=compaction.ORDERS, default="reverse",
                   help="the GC's order (default reverse, as ART)")  # fmt: skip
    g.add_argument(
        "--ioctl-pages",
        type=_positive,
        help="at most this many pages per UFFDIO_MOVE (default: one call per run)",
    )
    g.add_argument("--cpus", type=_cpus, default=4,
                   help="CPUs running the process (default 4)")  # fmt: skip
    g.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _outputs(g, plot=False)
    ct = sub.add_parser(
        "contend",
        help="what the process's other threads pay while one thread moves",
        description="Move a region with mremap from CPU 0 while application threads "
        "access memory on the other CPUs: their stalls (faults waiting for mmap_lock or "
        "the VMA's lock, flush IPIs), the TLB refills the move causes, their latency "
        "percentiles and the mover's own time, under each policy.",
    )
    ct.add_argument("--size", type=_sizes, default=[1 << 30], help="region size(s) (default 1G)")
    ct.add_argument("--arch", type=_names(archs, "arch"), default=["x86-64", "arm64-4k"],
                    help="comma list or 'all' (default x86-64,arm64-4k)")  # fmt: skip
    ct.add_argument("--policy", type=_names(policies, "policy"),
                    default=["linux-4.19", "fast-mremap-v2", "linux-5.0", "linux-6.8",
                             "batched-ptl"],
                    help="comma list or 'all' (default linux-4.19,fast-mremap-v2,linux-5.0,"
                    "linux-6.8,batched-ptl)")  # fmt: skip
    ct.add_argument("--baseline", default="linux-4.19", choices=policies(),
                    help="the policy the mover's time is compared with")  # fmt: skip
    ct.add_argument("--threads", type=_positive, default=1, help="application threads (default 1)")
    ct.add_argument("--where", choices=contention.PLACES, default="outside",
                    help="the moved region (its old addresses), another populated region, or "
                    "a fresh one whose first touches fault (default outside)")  # fmt: skip
    ct.add_argument("--op", choices=contention.OPS, default="read")
    ct.add_argument("--pattern", choices=contention.PATTERNS, default="random")
    ct.add_argument("--accesses", type=_positive, default=100_000,
                    help="accesses per thread (default 100000)")  # fmt: skip
    ct.add_argument("--through-move", action="store_true",
                    help="each thread goes on past --accesses until mremap returns, so every "
                    "flush reaches it")  # fmt: skip
    ct.add_argument(
        "--think-ns",
        type=_bounded(float, lambda x: x >= 0, ">= 0", "a number"),
        default=0.0,
        help="ns between one access and the next (default 0)",
    )
    ct.add_argument(
        "--span",
        type=_size,
        default=0,
        help="bytes of the region each thread touches (default: all of it)",
    )
    ct.add_argument("--dst-align", choices=ALIGNS, default="pmd",
                    help="destination alignment: pud, pmd (whole-table moves where the policy "
                    "has them) or page (PTE by PTE) (default pmd)")  # fmt: skip
    ct.add_argument("--populate", type=_populate, default="write",
                    help="how the regions are populated (default write)")  # fmt: skip
    ct.add_argument("--cpus", type=_cpus, help="CPUs running the process (default threads + 1)")
    ct.add_argument(
        "--move-at-ns",
        type=_bounded(float, lambda x: x >= 0, ">= 0", "a number"),
        default=0.0,
        help="when the mover calls mremap (default 0)",
    )
    ct.add_argument("--dontunmap", action="store_true", help="move with MREMAP_DONTUNMAP")
    ct.add_argument("--seed", type=_bounded(int, lambda n: n >= 0, ">= 0", "an integer"),
                    default=0)  # fmt: skip
    ct.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _outputs(ct)
    for name, text in (
        ("archs", "the architecture profiles"),
        ("policies", "the kernel policies with their sources"),
        ("reproduce", "the 2018 findings beside the published numbers"),
    ):
        q = sub.add_parser(name, help=text, description=f"List {text}.")
        q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    h = sub.add_parser(
        "host",
        help="the real kernel's moves beside the simulator",
        description="Time mremap on this machine's kernel (PTE, PMD and PUD "
        "paths) beside the simulated move.",
    )
    h.add_argument(
        "--size",
        type=_host_size,
        default=1 << 30,
        help="region size, a multiple of 2M (default 1G)",
    )
    h.add_argument("--repeats", type=_positive, default=5)
    h.add_argument(
        "--gc",
        action="store_true",
        help="a userfaultfd GC's compaction cycle (mremap DONTUNMAP, then UFFDIO_MOVE) "
        "instead of the mremap paths",
    )
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cal = sub.add_parser(
        "calibrate",
        help="fit the x86-64 costs to this machine's kernel",
        description="Measure the host kernel on a small matrix, fit the "
        "x86-64 costs, write a calibration file, check it on "
        "held-out cases.",
    )
    cal.add_argument("--out", default="pagetab-calibration.json", help="file to write")
    cal.add_argument("--repeats", type=_positive, default=5)
    cal.add_argument(
        "--cpus",
        type=_positive,
        default=1,
        help="also fit the flush IPI cost with this many CPUs running the process "
        "(the mover and cpus-1 spinning threads, each pinned)",
    )
    for q in sub.choices.values():
        q.add_argument(
            "--debug", action="store_true", help="print the traceback of an internal error"
        )
    return p


def _check_usage(args: argparse.Namespace) -> None:
    """What argparse cannot check alone, before any work: each size against
    each chosen arch's page size (the same checks sweep makes). An error
    after this is not the user's: it is reported as an internal error."""
    if args.command not in ("compare", "sweep", "move"):
        return
    if args.device is not None:
        # the chosen archs priced with the device's costs
        names = args.arch if isinstance(args.arch, list) else [args.arch]
        try:
            priced = [arch(n, device=args.device) for n in names]
        except ValueError as e:
            raise UsageError(f"--device {args.device}: {e}") from None
        args.arch = priced if isinstance(args.arch, list) else priced[0]
    listed = [v if isinstance(v, list) else [v] for v in (args.size, args.arch, args.policy)]
    jobs = [(s, a, p, _run_kwargs(args)) for s, a, p in itertools.product(*listed)]
    try:
        validate_jobs(jobs)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the process exit code (2 on bad usage)."""
    try:
        return _main(argv)
    except BrokenPipeError:  # `pagetab archs | head`
        sys.stderr.close()
        return 0


def _main(argv: list[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    p = build_parser()
    # options first (or nothing) means the default subcommand; any other
    # first word must be a subcommand (argparse names the valid ones)
    if not args_list or (
        args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "compare")
    args = p.parse_args(args_list)
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    run: dict[str, Callable[[argparse.Namespace], int]] = {
        "compare": _compare,
        "sweep": _sweep,
        "move": _move,
        "archs": _archs,
        "policies": _policies,
        "reproduce": _reproduce,
        "host": _host,
        "gc": _gc,
        "contend": _contend,
        "calibrate": _calibrate,
    }
    try:
        _check_usage(args)
        return run[args.command](args)
    except UsageError as e:
        print(f"pagetab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # main() ends quietly: `pagetab archs | head`
    except (OSError, MemoryError) as e:
        # a simulated call failed (e.g. more memory than the simulator's
        # frame limit) or an output file could not be written
        print(f"pagetab {args.command}: failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        # the arguments were valid: this is a bug, never a usage error
        if args.debug:
            traceback.print_exc()
        else:
            what = " ".join(str(e).split())
            print(f"pagetab {args.command}: internal error: {type(e).__name__}: {what} "
                  "(a bug; --debug prints the traceback)", file=sys.stderr)  # fmt: skip
        return 1
