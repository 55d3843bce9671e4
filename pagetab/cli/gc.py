"""``pagetab gc``: a userfaultfd garbage collector's compaction cycle under
each policy."""

from __future__ import annotations

import argparse

from .. import compaction
from ..arch import arch
from ..policy import policies, policy
from ..units import format_size
from . import _argtypes, _options
from ._output import Progress, print_json, table, write_outputs
from ._registry import UsageError, subcommand


def _uffd_policies() -> list[str]:
    return [p for p in policies() if policy(p).uffd_move]


def _arguments(parser: argparse.ArgumentParser) -> None:
    _options.add_size(parser, "256M", many=False, what="heap size, a multiple of the page size")
    _options.add_arch(parser, _options.DEFAULT_ARCHS)
    _options.add_calibration(parser)
    _options.add_policy(
        parser,
        ["linux-6.8", "linux-6.17", "linux-6.18"],
        valid=_uffd_policies,
        what="policies with UFFDIO_MOVE",
    )
    _options.add_baseline(parser, "linux-6.17")
    parser.add_argument(
        "--live", type=_argtypes.fraction, default=0.5, help="live fraction (default 0.5)"
    )
    parser.add_argument(
        "--run-pages",
        type=_argtypes.at_least_one,
        default=16.0,
        help="mean pages per run of live pages (default 16)",
    )
    parser.add_argument(
        "--order",
        choices=compaction.ORDERS,
        default="reverse",
        help="the GC's order (default reverse, as ART)",
    )
    parser.add_argument(
        "--ioctl-pages",
        type=_argtypes.positive,
        help="at most this many pages per UFFDIO_MOVE (default: one call per run)",
    )
    _options.add_cpus(parser, 4)
    _options.add_format(parser)
    _options.add_outputs(parser, plot="each cycle's estimated time by policy, with its range")


@subcommand(
    "gc",
    help="a userfaultfd GC's compaction cycle under each policy",
    description="One compaction cycle as Android's ART runs it: the heap moved aside with "
    "mremap(MREMAP_DONTUNMAP), its live pages moved back with UFFDIO_MOVE in the GC's "
    "order; the kernel's estimated time, flushes and time per MiB moved under each policy "
    "and arch.",
    section="simulate",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Simulate the cycle under each policy and arch."""
    _options.priced_archs(args)
    for name in args.arch:
        a = arch(name)
        if args.size % a.page_size:
            raise UsageError(f"--size {format_size(args.size)} is not a multiple of "
                             f"{a.name}'s {format_size(a.page_size)} page")  # fmt: skip
    prog = Progress(args.progress, "compacting")
    try:
        res = compaction.compare_gc(
            args.size,
            args.arch,
            args.policy,
            baseline=args.baseline,
            progress=prog,
            live=args.live,
            run_pages=args.run_pages,
            order=args.order,
            ioctl_pages=args.ioctl_pages,
            cpus=args.cpus,
        )
    finally:
        prog.close()
    rows = res.rows()
    if write_outputs(res, args, rows):
        return 1
    if args.json:
        print_json(rows, res.columns())
        return 0
    head, cells = res.cells()
    calls = (
        "one UFFDIO_MOVE per run"
        if args.ioctl_pages is None
        else f"UFFDIO_MOVE calls of at most {args.ioctl_pages} pages"
    )
    table(
        f"one compaction cycle: {format_size(args.size)} heap of 4K pages, "
        f"{args.live:.0%} live in runs of {args.run_pages:g} pages on average, "
        f"{res[0].pages_moved} pages moved back in {args.order} order, {calls}, "
        f"{args.cpus} CPUs running the process (flush us: UFFDIO_MOVE's flushes and IPIs; "
        "est. us adds the mremap(MREMAP_DONTUNMAP) before)",
        head,
        cells,
        right_from=2,
    )
    return 0
