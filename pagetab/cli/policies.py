"""``pagetab policies``: the kernel policies with their sources."""

from __future__ import annotations

import argparse

from ..policy import policies, policy
from ._options import add_format
from ._output import listing
from ._registry import subcommand


@subcommand(
    "policies",
    help="the kernel policies with their sources",
    description="List the kernel policies with their sources (the commits that made each choice).",
    section="data",
    arguments=add_format,
)
def run(args: argparse.Namespace) -> int:
    """List the policies."""
    listing("policy", policies(), policy, args.json)
    return 0
