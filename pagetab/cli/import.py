"""``pagetab import``: turn strace or perf trace output into a pagetab trace."""

from __future__ import annotations

import argparse
import sys

from .. import trace_import
from ._registry import UsageError, subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="FILE", help="the tracer's text output ('-': stdin)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="the pagetab trace to write")  # fmt: skip
    parser.add_argument("--from", dest="tool", choices=("strace", "perf"), default="strace",
                        help="what wrote FILE: strace -f -ttt -T, or perf trace "
                        "(default strace)")  # fmt: skip
    parser.add_argument("--pid", type=int,
                        help="the traced root's pid, where strace's first lines do not "
                        "show it")  # fmt: skip


@subcommand(
    "import",
    help="turn strace -f -ttt -T or perf trace output into a pagetab trace",
    description="Reads the text strace or perf trace wrote, keeps the memory-management "
    "calls (mmap, mremap, munmap, mprotect, madvise, brk, userfaultfd and its ioctls, clone, "
    "execve, exit) and writes a pagetab trace that pagetab replay reads. strace's times are "
    "ptrace-distorted (the trace says so); neither tool gives the VMAs the program started "
    "with, so a replay starts from an empty address space.",
    section="host",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Convert the file; exit 1 (with the line) if it cannot be read."""
    src = sys.stdin if args.source == "-" else args.source
    try:
        if args.tool == "strace":
            n = trace_import.import_strace(src, args.output, pid=args.pid)
        else:
            if args.pid is not None:
                raise UsageError("import: --pid applies to strace output only")
            n = trace_import.import_perf_trace(src, args.output)
    except (ValueError, OSError) as e:
        print(f"pagetab import: {e}", file=sys.stderr)
        return 1
    print(f"pagetab import: {n} events in {args.output}", file=sys.stderr)
    return 0
