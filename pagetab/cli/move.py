"""``pagetab move``: one move in detail."""

from __future__ import annotations

import argparse

from .. import experiment
from ..policy import DEFAULT_POLICY
from ..units import format_ns, format_ns_range, format_size
from . import _options
from ._moves import add_move_arguments, check_moves, move_kwargs, unsafe_status
from ._output import Progress, print_csv, print_json, save_plot, say, table
from ._registry import subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_move_arguments(parser, size="1G", arch="x86-64", policy=DEFAULT_POLICY)
    _options.add_plot(parser, "the estimate by category, with its range")
    _options.add_progress(parser)


@subcommand(
    "move",
    help="one move in detail: counts, locks, flush instructions, cost",
    description="One mremap(MAYMOVE|FIXED) of a populated region: entries moved per level, "
    "locks, flush instructions, estimated time by category, safety.",
    section="simulate",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Make the one move and print what it did and cost."""
    check_moves(args)
    prog = Progress(args.progress, f"populating {format_size(args.size)}, then moving it")
    try:
        r = experiment.run_move(args.size, arch=args.arch, policy=args.policy, progress=prog,
                                **move_kwargs(args))  # fmt: skip
    finally:
        prog.close()
    if save_plot(r, args.plot):
        return 1
    if args.json:
        print_json(r.row())
        return unsafe_status(args, [r])
    if args.format == "csv":
        print_csv([r.row()])
        return unsafe_status(args, [r])
    say(
        f"{r.arch}, {r.policy}, {format_size(r.size)}, {r.populate}-populated, source "
        f"{r.src_align} aligned, destination {r.dst_align} aligned, {r.cpus} CPUs"
    )
    low, high = r.estimated_ns_range
    rows = [[k, v] for k, v in r.counters.items()]
    rows += [
        ["locks acquired", r.lock_acquired],
        ["flush ops", {k: v for k, v in r.flush_ops.items() if v}],
        ["estimated", format_ns(r.estimated_ns)],
        ["estimated range", format_ns_range(low, high)],
        ["breakdown (ns)", {k: round(v) for k, v in r.breakdown.items() if v}],
        ["peak page tables", f"{r.peak_page_table_bytes} bytes"],
        ["simulated in", f"{r.sim_wall_ns / 1e6:.2f} ms"],
        ["safe", "yes" if r.safe else "NO: UNSAFE"],
    ]
    table(None, ["", ""], rows, right_from=2)
    return unsafe_status(args, [r])
