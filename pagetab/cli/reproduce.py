"""``pagetab reproduce``: the 2018 review thread's findings and the
published timings, each beside its simulation."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from ..reproduce import reproduce_2018, reproduce_published
from ._options import add_format
from ._output import interval, print_json, table
from ._registry import subcommand


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _error(x: float | None) -> str:
    return "-" if x is None else f"{x:+.0%}"


def _format(parser: argparse.ArgumentParser) -> None:
    add_format(parser, csv=False)


@subcommand(
    "reproduce",
    help="the 2018 review thread's findings beside the published numbers",
    description="List the 2018 review thread's findings and the published timings, each "
    "beside the simulator's figure and its error.",
    section="data",
    arguments=_format,
)
def run(args: argparse.Namespace) -> int:
    """Print the findings, then the published timings."""
    found = reproduce_2018()
    published = reproduce_published()
    if args.json:
        print_json(
            {
                "findings": [{**asdict(f), "error": f.error} for f in found],
                "published": [{**asdict(p), "error": p.error} for p in published],
            }
        )
        return 0
    rows = [
        [
            f.case,
            f"{f.simulated:.1f}x",
            "-" if f.published is None else f"{f.published:.0f}x",
            _error(f.error),
            f"{f.claim} [{f.source}]",
        ]
        for f in found
    ]
    table(None, ["case", "simulated", "published", "error", "claim [source]"], rows, left=[4])
    rows = [
        [
            p.id,
            p.profile,
            p.path,
            _us(p.published_us),
            interval(p.low_us, p.high_us, ",.0f"),
            _us(p.simulated_us),
            interval(p.simulated_low_us, p.simulated_high_us, ",.1f"),
            _error(p.error),
            "fitted" if p.fitted else ("predicted" if p.simulated_us is not None else "-"),
            p.simulated_as,
        ]
        for p in published
    ]
    table(
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
