"""``pagetab record``: run a command and record its memory-management calls
and faults on this machine's kernel."""

from __future__ import annotations

import argparse
import sys

from ..record import RecordError, check_recording, record
from . import _options
from ._output import Progress
from ._registry import UsageError, subcommand


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the trace to write (gzip JSON Lines; docs/trace-format.md)",
    )
    parser.add_argument(
        "--buffer-kb",
        type=int,
        default=65536,
        help="tracefs ring buffer per CPU in KiB (default 65536)",
    )
    _options.add_progress(parser)
    parser.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        metavar="-- CMD [ARGS...]",
        help="the command to run and record",
    )


@subcommand(
    "record",
    help="run a command and record its mmap/mremap/munmap/mprotect/madvise/brk/userfaultfd "
    "calls, page faults and TLB flushes on this machine's kernel",
    description="Runs CMD and writes a pagetab trace of every thread of every process it "
    "starts: each memory-management system call with its arguments, result, CPU and the "
    "kernel's own time in it, userfaultfd ioctls' structures, user page faults, x86 "
    "tlb:tlb_flush and mmap_lock events, and each process's VMAs and present pages at exec "
    "and at exit. Through a tracefs instance filtered by pid (needs root and x86-64); "
    "replay the trace with pagetab replay.",
    section="host",
    arguments=_arguments,
)
def run(args: argparse.Namespace) -> int:
    """Record the command; exit with its exit status."""
    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("record: give the command after --, e.g. pagetab record -o t.gz -- ls")
    if args.buffer_kb < 64:
        raise UsageError(f"record: --buffer-kb must be at least 64, not {args.buffer_kb}")
    try:
        check_recording()
    except RecordError as e:
        print(f"pagetab record: {e}", file=sys.stderr)
        return 1
    prog = Progress(args.progress, "converting")
    try:
        res = record(command, args.output, buffer_kb=args.buffer_kb, progress=prog)
    except OSError as e:
        print(f"pagetab {e.strerror or e}", file=sys.stderr)
        return 127
    finally:
        prog.close()
    lost = f", {res.lost} LOST (raise --buffer-kb)" if res.lost else ""
    print(
        f"pagetab record: {res.events} events in {args.output}{lost}; "
        f"{command[0]} exited with {res.exit_code}",
        file=sys.stderr,
    )
    return res.exit_code
