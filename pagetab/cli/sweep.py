"""``pagetab sweep``: a size range x archs x policies in worker processes."""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor

from .. import experiment
from . import _argtypes, _options
from ._moves import add_move_arguments, check_moves, move_kwargs, results_table, unsafe_status
from ._output import Progress, print_json, write_outputs
from ._registry import subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_move_arguments(parser, size="1G..256G", arch=_options.DEFAULT_ARCHS, policy=None)
    _options.add_outputs(parser)
    parser.add_argument(
        "--jobs",
        type=_argtypes.positive,
        help="worker processes, at most one per move and per CPU (default: one per CPU)",
    )
    parser.add_argument("--quiet", action="store_true", help="no table on stdout")


@subcommand(
    "sweep",
    help="a size range x archs x policies in parallel; CSV, JSON, a plot",
    description="Run every configuration in worker processes and write the results (CSV, "
    "JSON) and a log-log plot of estimated time against size.",
    section="simulate",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Run the grid in ``--jobs`` worker processes."""
    check_moves(args)
    moves = len(args.size) * len(args.arch) * len(args.policy)
    # no more workers than moves to run, nor than CPUs to run them on
    jobs = min(args.jobs, moves, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1) if args.jobs else 0  # fmt: skip
    executor = ProcessPoolExecutor(max_workers=jobs) if jobs else None
    prog = Progress(args.progress, f"sweep of {moves}")
    try:
        res = experiment.sweep(
            args.size,
            args.arch,
            args.policy,
            executor=executor,
            baseline=args.baseline,
            progress=prog,
            **move_kwargs(args),
        )
    finally:
        prog.close()
        if executor is not None:
            executor.shutdown()
    if args.json:
        print_json(res.rows())
    elif not args.quiet:
        results_table(res, f"sweep: {len(res)} moves")
    return write_outputs(res, args) or unsafe_status(args, res)
