"""What compare, sweep and move share: their options, the check of them
against each arch before any work, and the results table."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable
from typing import Any

from ..experiment import MoveResult, Results, validate_jobs
from . import _options
from ._output import table
from ._registry import UsageError

__all__ = ["add_move_arguments", "check_moves", "move_kwargs", "results_table", "unsafe_status"]


def add_move_arguments(
    parser: argparse.ArgumentParser,
    *,
    size: str,
    arch: str | list[str],
    policy: str | list[str] | None,
) -> None:
    """The options of a move: what to move, where, how populated, priced how.

    Parameters
    ----------
    parser:
        The subcommand's parser.
    size, arch, policy:
        The defaults of ``--size``, ``--arch`` and ``--policy``: a str for
        one move (``move``), a list (None for all policies) for a grid,
        which takes ``--baseline`` too.
    """
    many = not isinstance(arch, str)
    _options.add_size(parser, size, many=many)
    _options.add_arch(parser, arch)
    _options.add_policy(parser, policy)
    if many:
        _options.add_baseline(parser, "linux-4.19")
    _options.add_device(parser)
    _options.add_calibration(parser)
    _options.add_populate(parser)
    _options.add_alignment(parser, source=True)
    _options.add_cpus(parser, 4)
    _options.add_format(parser)
    _options.add_fail_unsafe(parser)


def move_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``pagetab.run_move`` that the options set."""
    return {
        "populate": args.populate,
        "src_align": args.src_align,
        "dst_align": args.dst_align,
        "cpus": args.cpus,
    }


def check_moves(args: argparse.Namespace) -> None:
    """Check what argparse cannot alone, before any work: each size against
    each chosen arch's page size (the same checks sweep makes); with
    ``--device`` or ``--calibration``, replace ``args.arch`` by the archs
    priced with it.

    Raises
    ------
    UsageError
        If a configuration cannot run. An error after this is not the
        user's: ``main`` reports it as an internal error.
    """
    _options.priced_archs(args)  # with --device or --calibration: the archs priced so
    listed = [v if isinstance(v, list) else [v] for v in (args.size, args.arch, args.policy)]
    jobs = [(s, a, p, move_kwargs(args)) for s, a, p in itertools.product(*listed)]
    try:
        validate_jobs(jobs)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def results_table(res: Results, title: str, single: Results | None = None) -> None:
    """Print ``res`` as a table (unsafe moves in red).

    Parameters
    ----------
    res:
        The moves.
    title:
        The line above the table.
    single:
        The same moves with one CPU in mm_cpumask, shown beside ``res``'s
        estimate and its range (published measurements were made so).
    """
    head, rows = res.cells()
    if single is not None:
        one = {(r.arch, r.size, r.policy): r.estimated_ns for r in single}
        at = head.index("est. range us") + 1
        head.insert(at, "1 CPU us")
        for row, r in zip(rows, res, strict=True):
            row.insert(at, f"{one[(r.arch, r.size, r.policy)] / 1e3:.1f}")
    table(title, head, rows, right_from=3, bad=[not r.safe for r in res])


def unsafe_status(args: argparse.Namespace, moves: Iterable[MoveResult]) -> int:
    """The exit status ``--fail-unsafe`` asks for: 1 if any move is unsafe."""
    return 1 if args.fail_unsafe and any(not r.safe for r in moves) else 0
