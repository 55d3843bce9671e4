"""What the subcommands print and write: tables, JSON, result files, a
progress bar, and the one line that says the host probe cannot run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import Progress as _Bar

from .. import compaction, contention, host
from ..experiment import Results
from ..results import (
    csv_text,
    document,
    json_text,
    markdown_table,
    render_table,
    rich_table,
    write_text,
)

__all__ = [
    "Progress",
    "begin",
    "host_unavailable",
    "interval",
    "listing",
    "print_csv",
    "print_json",
    "save_plot",
    "say",
    "table",
    "write_outputs",
    "write_rows",
]


class _Run:
    """The running subcommand's ``--format`` and command line (``begin``)."""

    format = "table"
    argv: list[str] | None = None


def begin(args: argparse.Namespace, argv: list[str]) -> None:
    """Note the subcommand's output format and command line (``argv``, the
    words after the program's name) for what it prints and writes."""
    _Run.format = getattr(args, "format", "table")
    _Run.argv = ["pagetab", *argv]
    args.json = _Run.format == "json"


def table(
    title: str | None,
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    right_from: int = 1,
    bad: Sequence[bool] = (),
    left: Sequence[int] = (),
) -> None:
    """Print a table (``results.rich_table``): coloured on a terminal;
    plain, unwrapped and without trailing blanks when piped or redirected
    (``results.render_table``, so that it diffs and greps); a Markdown
    table under ``--format markdown``; nothing under csv or json, which
    print the records instead."""
    if _Run.format == "markdown":
        print(markdown_table(head, rows, title=title, right_from=right_from, left=left) + "\n")
        return
    if _Run.format != "table":
        return
    style: dict[str, Any] = {"title": title, "right_from": right_from, "left": left, "bad": bad}
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(rich_table(head, rows, **style))
        return
    print(render_table(head, rows, **style))


def say(text: str) -> None:
    """Print a line of the report around the tables (not under csv or json)."""
    if _Run.format in ("table", "markdown"):
        print(text)


def print_json(data: Any, cols: dict[str, dict[str, str]] | None = None) -> None:
    """Print ``data`` as a results document (``results.document``: the
    command line, host and version, the columns' units and descriptions
    (``cols``, or what ``results.columns`` knows), then ``data``) in
    indented JSON."""
    print(json_text(document(data, _Run.argv, cols)), end="")


def print_csv(rows: list[dict[str, Any]]) -> None:
    """Print records as CSV, metadata first in ``#`` lines (``--format csv``)."""
    print(csv_text(rows, _Run.argv), end="")


def interval(low: float | None, high: float | None, fmt: str = ".1f") -> str:
    """The interval as "low-high" in ``fmt``, or "-" where there is none."""
    return "-" if low is None or high is None else f"{low:{fmt}}-{high:{fmt}}"


def listing(what: str, names: list[str], get: Callable[[str], Any], as_json: bool) -> None:
    """Print name, description and source of each of ``names``.

    Parameters
    ----------
    what:
        The first column's heading ("arch", "policy").
    names:
        What to list.
    get:
        A name to its object, which has ``description`` and ``source``.
    as_json:
        Print JSON instead of a table.
    """
    rows = [[n, get(n).description, get(n).source] for n in names]
    records = [{"name": n, "description": d, "source": s} for n, d, s in rows]
    if as_json:
        print_json(records)
    elif _Run.format == "csv":
        print_csv(records)
    else:
        table(None, [what, "description", "source"], rows, right_from=3)


class Progress:
    """A rich progress bar on stderr (when ``enabled``), as a callback.

    Parameters
    ----------
    enabled:
        Draw the bar (``--progress``; by default on a terminal); otherwise
        the callback does nothing.
    label:
        The bar's label.
    """

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar: Any = None
        if enabled:
            # stdout stays stdout: a report printed while the bar runs must
            # reach a redirected stdout (rich would send it to the bar's stderr)
            self.bar = _Bar(console=Console(stderr=True), transient=True,
                            redirect_stdout=False, redirect_stderr=False)  # fmt: skip
            self.task = self.bar.add_task(label, total=None)
            self.bar.start()

    def __call__(self, done: int, total: int | None = None) -> None:
        """Show ``done`` of ``total`` (None: a count with no end known)."""
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self.bar is not None:
            self.bar.stop()


def write_outputs(res: Results | contention.ContendResults | compaction.GcResults,
                  args: argparse.Namespace,
                  rows: list[dict[str, Any]] | None = None) -> int:  # fmt: skip
    """Write the files ``--csv``, ``--json-out`` and ``--plot`` ask for:
    ``rows`` (default ``res.rows()``: a subcommand may add the columns its
    table shows) and the plot of ``res``.

    Returns
    -------
    int
        1 if the plot needs matplotlib and it is missing, else 0.
    """
    write_rows(res.rows() if rows is None else rows, args, res.columns())
    return save_plot(res, getattr(args, "plot", None))


def save_plot(res: Any, path: str | None) -> int:
    """``res.plot(path)`` if a path is given; 1 (and why, on stderr) if it
    needs matplotlib and it is missing, else 0."""
    if path:
        try:
            res.plot(path)
        except ImportError as e:
            print(f"pagetab: {e}", file=sys.stderr)
            return 1
    return 0


def write_rows(rows: list[dict[str, Any]], args: argparse.Namespace,
               cols: dict[str, dict[str, str]] | None = None) -> None:  # fmt: skip
    """Write ``rows`` (dicts) to the files ``--csv`` and ``--json-out`` name
    (CSV with its metadata in ``#`` lines, JSON as a results document), and
    print them as CSV under ``--format csv``."""
    if getattr(args, "format", None) == "csv":
        print_csv(rows)
    if getattr(args, "csv", None):
        write_text(csv_text(rows, _Run.argv), args.csv)
    if getattr(args, "json_out", None):
        write_text(json_text(document(rows, _Run.argv, cols)), args.json_out)


def host_unavailable(command: str) -> bool:
    """Whether the host probe cannot run here; if so, say why on stderr
    (the subcommand then exits 1).

    Parameters
    ----------
    command:
        The subcommand, for the message.
    """
    ok, why = host.available()
    if not ok:
        print(f"pagetab {command}: the host probe is unavailable: {why}", file=sys.stderr)
    return not ok
