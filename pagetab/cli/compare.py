"""``pagetab compare`` (the default): every policy on a few sizes and archs."""

from __future__ import annotations

import argparse

from .. import experiment
from . import _options
from ._moves import add_move_arguments, check_moves, move_kwargs, results_table, unsafe_status
from ._output import Progress, print_json, write_outputs
from ._registry import subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_move_arguments(parser, size="1G,64G", arch=_options.DEFAULT_ARCHS, policy=None)
    _options.add_outputs(parser)


@subcommand(
    "compare",
    help="every policy on a few sizes and archs",
    description="Move the same region under each policy on each arch and size: counts, "
    "flushes, unsafe windows, estimated kernel time and its ratio to a baseline policy.",
    section="simulate",
    arguments=_arguments,
    default=True,
)
def run(args: argparse.Namespace) -> int:
    """Compare the policies; with more than one CPU, price each move with
    one CPU too (published measurements were made so)."""
    check_moves(args)
    prog = Progress(args.progress, "moving")
    single = None
    try:
        grid = (args.size, args.arch, args.policy)
        res = experiment.compare(*grid, baseline=args.baseline, progress=prog, **move_kwargs(args))
        if args.cpus > 1:
            single = experiment.compare(
                *grid, baseline=args.baseline, **{**move_kwargs(args), "cpus": 1}
            )
    finally:
        prog.close()
    rows = res.rows()  # with the table's "1 CPU us" column, in every output
    if single is not None:
        for row, r in zip(rows, single, strict=True):
            row["estimated_ns_1cpu"] = r.estimated_ns
    if args.json:
        print_json(rows)
    else:
        results_table(
            res,
            f"{args.populate}-populated, source {args.src_align} aligned, "
            f"destination {args.dst_align} aligned, {args.cpus} CPUs in "
            "mm_cpumask (1 CPU us: the same move with one)",
            single,
        )
    return write_outputs(res, args, rows) or unsafe_status(args, res)
