"""``pagetab calibrate``: fit the x86-64 costs to this machine's kernel."""

from __future__ import annotations

import argparse
import sys

from .. import calibrate
from . import _argtypes, _options
from ._output import Progress, host_unavailable
from ._registry import subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None,
                        help="file to write (default: pagetab-calibration.json; with --refit, "
                        "the file refitted)")  # fmt: skip
    parser.add_argument("--refit", metavar="FILE", default=None,
                        help="fit FILE's own measurements again under the current model "
                        "(after a change to what a move does); needs no host probe")  # fmt: skip
    _options.add_repeats(parser)
    # real CPUs of this machine, not simulated ones: no 256 limit
    parser.add_argument(
        "--cpus",
        type=_argtypes.positive,
        default=1,
        help="also fit the flush IPI cost with this many CPUs running the process "
        "(the mover and cpus-1 spinning threads, each pinned)",
    )
    _options.add_progress(parser)


@subcommand(
    "calibrate",
    help="fit the x86-64 costs to this machine's kernel",
    description="Measure the host kernel on a small matrix, fit the x86-64 costs, write a "
    "calibration file, check it on held-out cases.",
    section="host",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Measure, fit and write the calibration file (exit 1 without the host
    probe), or refit a file's measurements (--refit)."""
    if args.refit is not None:
        out = args.out or args.refit
        try:
            data = calibrate.refit(args.refit, out)
        except (ValueError, OSError) as e:
            print(f"pagetab calibrate: {e}", file=sys.stderr)
            return 1
        print(f"wrote {out} (the measurements of {data['date']} on {data['kernel']}, "
              "refitted; only the training cases fitted)")  # fmt: skip
        return 0
    if host_unavailable("calibrate"):
        return 1
    out = args.out or "pagetab-calibration.json"
    prog = Progress(args.progress, "measuring this kernel")
    try:
        calibrate.calibrate(out, repeats=args.repeats, cpus=args.cpus, progress=prog)
    finally:
        prog.close()
    print(
        f"wrote {out} (training and held-out cases measured in the same "
        f"{calibrate.ROUNDS} rounds; only the training cases fitted)"
    )
    return 0
