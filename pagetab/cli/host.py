"""``pagetab host``: this machine's kernel moving memory, beside the simulator."""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import asdict

from .. import host
from ..native import PATHS, compare_gc_cycle, compare_move
from ..units import format_size
from . import _argtypes, _options
from ._output import host_unavailable, interval, print_json, table
from ._registry import subcommand

HOST_UNIT = 2 << 20  # the host probe moves whole PMDs


def _host_size(text: str) -> int:
    n = _argtypes.size(text)
    if n % HOST_UNIT:
        raise argparse.ArgumentTypeError(f"must be a multiple of 2M, not {text!r}")
    try:
        host.check_fits(n, "zero")  # the probe's zero-page regions
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return n


def _arguments(parser: argparse.ArgumentParser) -> None:
    _options.add_size(
        parser,
        "1G",
        many=False,
        what="region size, a multiple of 2M",
        parse=_host_size,
        example="e.g. 2M, 1G",
    )
    _options.add_repeats(parser)
    parser.add_argument(
        "--gc",
        action="store_true",
        help="a userfaultfd GC's compaction cycle (mremap DONTUNMAP, then UFFDIO_MOVE) "
        "instead of the mremap paths",
    )
    _options.add_format(parser, csv=False)


@subcommand(
    "host",
    help="the real kernel's moves on this machine beside the simulator",
    description="Time mremap on this machine's kernel (PTE, PMD and PUD paths), or with --gc "
    "a userfaultfd GC's compaction cycle, beside the simulated move.",
    section="host",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Measure and simulate (exit 1 without the host probe)."""
    if host_unavailable("host"):
        return 1
    if args.gc:
        return _gc_cycle(args)
    res = [compare_move(group, args.size, args.repeats) for group in PATHS]
    if args.json:
        print_json([{**asdict(c), "ratio": c.ratio} for c in res])
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
    table(
        f"this kernel, {format_size(args.size)} zero-page region, mremap(MAYMOVE|FIXED), "
        f"median of {args.repeats}",
        ["path", "native us", "simulated us", "sim/native"],
        rows,
    )
    return 0


def _gc_cycle(args: argparse.Namespace) -> int:
    """``--gc``: one compaction cycle, one UFFDIO_MOVE per run and per page."""
    ok, why = host.uffd_available()
    if not ok:
        print(f"pagetab host: the GC cycle needs userfaultfd: {why}", file=sys.stderr)
        return 1
    res = {
        what: compare_gc_cycle(args.size, ioctl_pages=ip, repeats=args.repeats)
        for what, ip in (("one call per run", None), ("one call per page", 1))
    }
    if args.json:
        print_json(
            [{"calls": k, **asdict(c), "error": c.error, "ratio": c.ratio} for k, c in res.items()]
        )
        return 0
    batched = host.uffd_move_batched()
    rows = []
    for what, c in res.items():
        rows.append(
            [
                what,
                str(c.ioctls),
                f"{(c.native_moves_ns or 0) / 1e3:.0f}",
                f"{c.est_moves_ns / 1e3:.0f}",
                interval(c.est_moves_range[0] / 1e3, c.est_moves_range[1] / 1e3, ".0f"),
                f"{(c.error or 0) * 100:+.0f}%",
                f"{(c.native_mremap_ns or 0) / 1e3:.0f}",
                f"{c.est_mremap_ns / 1e3:.0f}",
                f"{c.sim_ns / 1e3:.0f}",
                f"{c.ratio or 0:.2f}x",
            ]
        )
    table(
        f"this kernel ({platform.release()}: UFFDIO_MOVE "
        f"{'batches flushes, 6.18+' if batched else 'flushes every page, before 6.18'}), "
        f"one compaction cycle of a {format_size(args.size)} heap, 50% live in runs of 16 "
        f"pages, beside x86-64 under {next(iter(res.values())).policy}, "
        f"median of {args.repeats}",
        [
            "calls",
            "ioctls",
            "native us",
            "estimated us",
            "est. range us",
            "error",
            "native mremap us",
            "est. mremap us",
            "simulated us",
            "sim/native",
        ],
        rows,
    )
    return 0
