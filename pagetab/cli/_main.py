"""``main``: parse the command line, run the subcommand, turn what went
wrong into the exit status (0 ok, 1 failure, 2 bad usage)."""

from __future__ import annotations

import sys
import traceback
import warnings
from typing import TextIO

from ._output import begin
from ._parser import build_parser
from ._registry import UsageError, registered

__all__ = ["main"]

# the top-level parser's own options; any other option first means the
# default subcommand
_TOP_LEVEL = ("-h", "--help", "--version")


def main(argv: list[str] | None = None) -> int:
    """The ``pagetab`` command.

    Parameters
    ----------
    argv:
        The arguments after the program's name (default ``sys.argv[1:]``).
        Options first (or nothing) run the default subcommand.

    Returns
    -------
    int
        The exit status: 0 success, 1 failure, 2 bad usage (argparse's own
        usage errors and ``--help`` raise SystemExit instead).
    """
    try:
        return _main(argv)
    except BrokenPipeError:  # `pagetab archs | head`
        sys.stderr.close()
        return 0


def _joined_negatives(args: list[str]) -> list[str]:
    """``--opt -1G`` as ``--opt=-1G``: argparse reads a word like -1G as an
    option (and says "expected one argument"), so that the option's own
    check says what is wrong with the value."""
    out: list[str] = []
    for word in args:
        if out and out[-1].startswith("--") and "=" not in out[-1] \
                and word[:1] == "-" and word[1:2].isdigit():  # fmt: skip
            out[-1] = f"{out[-1]}={word}"
        else:
            out.append(word)
    return out


def _main(argv: list[str] | None) -> int:
    args_list = _joined_negatives(list(sys.argv[1:] if argv is None else argv))
    p = build_parser()
    # any other first word must be a subcommand (argparse names the valid ones)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in _TOP_LEVEL):
        args_list.insert(0, next(s.name for s in registered() if s.default))
    args = p.parse_args(args_list)
    begin(args, args_list)
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    run = {s.name: s.run for s in registered()}[args.command]

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:  # fmt: skip
        print(f"pagetab {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show  # one line, not a source location
            return run(args)
    except UsageError as e:
        print(f"pagetab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # main() ends quietly: `pagetab archs | head`
    except (OSError, MemoryError) as e:
        # a simulated call failed (e.g. more memory than the simulator's
        # frame limit) or an output file could not be written
        print(f"pagetab {args.command}: failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        # the arguments were valid: this is a bug, never a usage error
        if args.debug:
            traceback.print_exc()
        else:
            what = " ".join(str(e).split())
            print(
                f"pagetab {args.command}: internal error: {type(e).__name__}: {what} "
                "(a bug; --debug prints the traceback)",
                file=sys.stderr,
            )
        return 1
