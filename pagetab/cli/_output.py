"""What the subcommands print and write: tables, JSON, result files, a
progress bar, and the one line that says the host probe cannot run."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress as _Bar
from rich.table import Table

from .. import contention, host
from ..experiment import Results

__all__ = [
    "Progress",
    "host_unavailable",
    "interval",
    "listing",
    "print_json",
    "table",
    "write_outputs",
    "write_rows",
]


def table(
    title: str | None,
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    right_from: int = 1,
    bad: Sequence[bool] = (),
    left: Sequence[int] = (),
) -> None:
    """Print a rich table: coloured on a terminal; plain, unwrapped and
    without trailing blanks when piped or redirected (so that it diffs and
    greps).

    Parameters
    ----------
    title:
        The line above the table, or None.
    head:
        The column headings.
    rows:
        The cells, one sequence per row (printed with ``str``).
    right_from:
        Columns from this index on are right-justified (numbers) ...
    bad:
        ... rows whose flag here is true are printed in bold red ...
    left:
        ... except the columns listed here, which stay left-justified.
    """
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for i, h in enumerate(head):
        t.add_column(escape(h), justify="right" if i >= right_from and i not in left else "left")
    for i, r in enumerate(rows):
        t.add_row(
            *[escape(str(c)) for c in r], style="bold red" if i < len(bad) and bad[i] else None
        )
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(t)
        return
    plain = Console(highlight=False, width=1000, no_color=True, file=io.StringIO())
    with plain.capture() as cap:
        plain.print(t)
    text = "\n".join(line.rstrip() for line in cap.get().splitlines())
    print(text.strip("\n"))


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (``str`` for what JSON lacks)."""
    print(json.dumps(data, indent=1, default=str))


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
    if as_json:
        print_json([{"name": n, "description": d, "source": s} for n, d, s in rows])
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
            self.bar = _Bar(console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(label, total=None)
            self.bar.start()

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``."""
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self.bar is not None:
            self.bar.stop()


def write_outputs(res: Results | contention.ContendResults, args: argparse.Namespace) -> int:
    """Write the files ``--csv``, ``--json-out`` and ``--plot`` ask for.

    Returns
    -------
    int
        1 if the plot needs matplotlib and it is missing, else 0.
    """
    if args.csv:
        res.to_csv(args.csv)
    if getattr(args, "json_out", None):
        res.to_json(args.json_out)
    if getattr(args, "plot", None):
        try:
            res.plot(args.plot)
        except ImportError as e:
            print(f"pagetab: {e}", file=sys.stderr)
            return 1
    return 0


def write_rows(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Write ``rows`` (dicts) to the files ``--csv`` and ``--json-out`` name,
    for results that have no ``to_csv``/``to_json`` of their own."""
    if args.csv:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        with open(args.csv, "w") as f:
            f.write(buf.getvalue())
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(json.dumps(rows, indent=1, default=str) + "\n")


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
