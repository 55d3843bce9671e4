"""``pagetab archs``: the architecture profiles and the device calibrations."""

from __future__ import annotations

import argparse

from ..arch import arch, archs, devices
from ._options import add_format
from ._output import listing, table
from ._registry import subcommand


@subcommand(
    "archs",
    help="the architecture profiles",
    description="List the architecture profiles, and the device calibrations --device takes.",
    section="data",
    arguments=add_format,
)
def run(args: argparse.Namespace) -> int:
    """List the profiles; in a table, the device calibrations below."""
    listing("arch", archs(), arch, args.json)
    if not args.json:
        rows = [[name, text] for name, text in devices().items()]
        table(
            "device calibrations (--device; fitted to published measurements)",
            ["device", "arch: description"],
            rows,
            right_from=2,
        )
    return 0
