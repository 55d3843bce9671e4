"""``pagetab contend``: what the process's other threads pay while one
thread moves."""

from __future__ import annotations

import argparse
import itertools

from .. import contention
from . import _argtypes, _options
from ._output import Progress, print_json, table, write_outputs
from ._registry import UsageError, subcommand

#: what each mover does to the region, for the table's title
_DONE = {"mremap": "moved", "uffdio_move": "moved", "madvise": "zapped (MADV_DONTNEED)",
         "munmap": "unmapped", "mprotect": "write-protected"}  # fmt: skip


def _arguments(parser: argparse.ArgumentParser) -> None:
    _options.add_size(parser, "1G", many=True)
    _options.add_arch(parser, _options.DEFAULT_ARCHS)
    _options.add_calibration(parser)
    _options.add_policy(
        parser, ["linux-4.19", "fast-mremap-v2", "linux-5.0", "linux-6.8", "batched-ptl"]
    )
    _options.add_baseline(parser, "linux-4.19")
    parser.add_argument(
        "--threads", type=_argtypes.positive, default=1, help="application threads (default 1)"
    )
    parser.add_argument(
        "--where",
        choices=contention.PLACES,
        default="outside",
        help="the moved region (its old addresses), another populated region, "
        "or a fresh one whose first touches fault (default outside)",
    )
    parser.add_argument(
        "--op", choices=contention.OPS, default="read", help="what each access does (default read)"
    )
    parser.add_argument(
        "--pattern",
        choices=contention.PATTERNS,
        default="random",
        help="random pages of its region, or one after another (default random)",
    )
    parser.add_argument(
        "--accesses",
        type=_argtypes.positive,
        default=100_000,
        help="accesses per thread (default 100000)",
    )
    parser.add_argument(
        "--through-move",
        action="store_true",
        help="each thread goes on past --accesses until mremap returns, so every flush reaches it",
    )
    parser.add_argument(
        "--think-ns",
        type=_argtypes.non_negative,
        default=0.0,
        help="ns between one access and the next (default 0)",
    )
    parser.add_argument(
        "--span",
        type=_argtypes.size,
        default=0,
        help="bytes of the region each thread touches (default: all of it)",
    )
    _options.add_alignment(parser, source=True)
    _options.add_populate(parser)
    _options.add_cpus(parser, None, shown="threads + 1")
    parser.add_argument(
        "--move-at-ns",
        type=_argtypes.non_negative,
        default=0.0,
        help="when the mover makes its call (default 0)",
    )
    parser.add_argument("--dontunmap", action="store_true", help="move with MREMAP_DONTUNMAP")
    parser.add_argument(
        "--mover",
        choices=tuple(contention.MOVERS),
        default="mremap",
        help="the call the mover makes on the region: mremap or UFFDIO_MOVE (into a "
        "registered destination), or madvise (MADV_DONTNEED), munmap or mprotect (PROT_READ) "
        "of it (default mremap)",
    )
    parser.add_argument(
        "--seed",
        type=_argtypes.bounded(int, lambda n: n >= 0, ">= 0", "an integer"),
        default=0,
        help="of the threads' random accesses: the same seed, the same numbers (default 0)",
    )
    _options.add_format(parser)
    _options.add_outputs(
        parser, plot="the threads' access latency during the move, a complementary CDF per run"
    )


@subcommand(
    "contend",
    help="what the process's other threads pay while one thread moves",
    description="Move a region with mremap from CPU 0 while application threads access "
    "memory on the other CPUs: their stalls (faults waiting for mmap_lock or the VMA's lock, "
    "flush IPIs), the TLB refills the move causes, their latency percentiles and the mover's "
    "own time, under each policy.",
    section="simulate",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Run each arch, size and policy with the same threads."""
    _options.priced_archs(args)
    spec = contention.ThreadSpec(
        args.where,
        args.op,
        args.pattern,
        args.accesses,
        through_move=args.through_move,
        think_ns=args.think_ns,
        span=args.span,
    )
    jobs = list(itertools.product(args.arch, args.size, args.policy))
    prog = Progress(args.progress, "simulating")
    items = []
    try:
        for i, (a, size, pol) in enumerate(jobs):
            items.append(
                contention.run_concurrent(
                    size,
                    a,
                    pol,
                    [spec] * args.threads,
                    cpus=args.cpus,
                    src_align=args.src_align,
                    dst_align=args.dst_align,
                    populate=args.populate,
                    move_at_ns=args.move_at_ns,
                    dontunmap=args.dontunmap,
                    seed=args.seed,
                    mover=args.mover,
                )
            )
            prog(i + 1, len(jobs))
    except ValueError as e:
        # the combination is the user's (threads beyond --cpus, a span beyond the region)
        raise UsageError(str(e)) from None
    finally:
        prog.close()
    res = contention.ContendResults(items, args.baseline)
    if write_outputs(res, args):
        return 1
    if args.json:
        print_json(res.rows())
        return 0
    head, cells = res.cells()
    call = args.mover
    table(
        f"{call} from CPU 0 while {args.threads} thread(s) on CPUs 1..{args.threads} make "
        f"{args.accesses} {args.pattern} {args.op}s each"
        f"{f' (and on until {call} returns)' if args.through_move else ''} {args.where} "
        f"the {_DONE[call]} region "
        f"(stall: the threads' extra time; refills: TLB refills the move caused; p99 and max: "
        "the worst thread's accesses issued during the move; CPU: mover + stalls)",
        head,
        cells,
        right_from=3 if all(r.mover == "mremap" for r in res) else 4,
        bad=[not r.safe for r in res],
    )
    return 0
