"""Results, and the one place they are written out: flat records, CSV,
JSON and tables.

``Compared`` is the base of every result collection (``Results``,
``ContendResults``, ``GcResults``): its items' ratios to a baseline policy,
their flat records (``flat_row``), CSV and JSON (``csv_text``,
``json_text``), a pandas DataFrame, and the summary table
(``render_table``, the same renderer the command line prints with).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import shlex
import sys
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any, Protocol, TypeVar

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._version import __version__
from .stats import COUNTER_INFO, LOCK_INFO, OP_INFO, CounterInfo
from .tracefile import host_info

__all__ = [
    "ROW_PREFIX",
    "SCHEMA",
    "Compared",
    "column_info",
    "columns",
    "csv_text",
    "document",
    "flat_row",
    "json_text",
    "markdown_table",
    "metadata",
    "render_table",
    "rich_table",
    "write_text",
]


class _Result(Protocol):
    ratio: float | None

    @property
    def policy(self) -> str: ...

    @property
    def estimated_ns(self) -> float: ...

    def row(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Result)


#: the prefixes of a flat row's columns from each dict field
ROW_PREFIX = {"breakdown": "ns_", "flush_ops": "op_", "lock_acquired": "lock_"}


def flat_row(result: Any) -> dict[str, Any]:
    """A result dataclass as a flat dict of scalars: an ``estimated_ns_range``
    as ``estimated_ns_low`` and ``estimated_ns_high``, each dict field's
    items as columns (prefixed per ROW_PREFIX, spaces as underscores)."""
    d: dict[str, Any] = {}
    for k, v in asdict(result).items():
        if k == "estimated_ns_range":
            d["estimated_ns_low"], d["estimated_ns_high"] = v
        elif isinstance(v, dict):
            prefix = ROW_PREFIX.get(k, "")
            d.update({prefix + kk.replace(" ", "_"): vv for kk, vv in v.items()})
        else:
            d[k] = v
    return d


#: the schema of a results document (``document``); bumped when a key
#: changes meaning or goes away, not when one is added
SCHEMA = "pagetab-results/1"

#: columns every kind of result may have, by name (the counters' are in stats)
_COLUMNS: dict[str, CounterInfo] = {n: CounterInfo(u, d) for n, u, d in (
    ("size", "bytes", "bytes moved"),
    ("cpus", "CPUs", "CPUs that ran the process (in mm_cpumask)"),
    ("estimated_ns", "ns", "the kernel's estimated time"),
    ("estimated_ns_low", "ns", "the estimate with every event priced at its range's low end"),
    ("estimated_ns_high", "ns", "the estimate with every event priced at its range's high end"),
    ("estimated_ns_1cpu", "ns", "the same move's estimate with one CPU in mm_cpumask"),
    ("ratio", "x", "the baseline policy's estimated time over this one's (above 1: faster)"),
    ("sim_wall_ns", "ns", "the simulator's own wall time (varies from run to run)"),
    ("setup_wall_ns", "ns", "the simulator's wall time to set the move up (varies)"),
    ("peak_page_table_bytes", "bytes", "the most page-table memory the call held"),
    ("page_table_bytes_before", "bytes", "page-table memory before the call"),
    ("safe", "bool", "every moved entry was flushed before its page-table lock dropped"),
    ("ns_per_mb", "ns/MiB", "a GC cycle's estimated kernel time per MiB moved"),
    ("flush_ns", "ns", "UFFDIO_MOVE's flush time: the flush instructions and the IPIs"),
)}  # fmt: skip


def column_info(key: str) -> CounterInfo | None:
    """The unit and description of a flat row's column ``key``: a move
    counter, a flush operation (``op_``), a lock class (``lock_``), an
    estimate's category (``ns_``), a known column, or by its suffix (``_ns``
    nanoseconds, ``_bytes`` bytes); None where nothing is known."""
    if key in _COLUMNS:
        return _COLUMNS[key]
    if key in COUNTER_INFO:
        return COUNTER_INFO[key]
    for prefix, table in (("op_", OP_INFO), ("lock_", LOCK_INFO)):
        if key.startswith(prefix) and key[len(prefix) :] in table:
            return table[key[len(prefix) :]]
    if key.startswith(ROW_PREFIX["breakdown"]):
        return CounterInfo("ns", f"estimated time in {key[3:].replace('_', ' ')}")
    if key.endswith("_ns"):
        return CounterInfo("ns", "")
    if key.endswith("_bytes"):
        return CounterInfo("bytes", "")
    return None


def columns(rows: Any) -> dict[str, dict[str, str]]:
    """``{column: {"unit": ..., "description": ...}}`` for the columns of
    ``rows`` (flat dicts, or a list of them) that ``column_info`` knows."""
    keys = (rows.keys() if isinstance(rows, dict)
            else dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r)
            if isinstance(rows, list) else ())  # fmt: skip
    out = {}
    for k in keys:
        info = column_info(k)
        if info is not None:
            out[k] = {"unit": info.unit, "description": info.description}
    return out


def metadata(command: Sequence[str] | None = None) -> dict[str, Any]:
    """What made a results document: the schema, pagetab's version, the
    command line (when given) and the host it ran on."""
    meta: dict[str, Any] = {"schema": SCHEMA, "pagetab": __version__}
    if command is not None:
        meta["command"] = list(command)
    host = host_info()
    meta["host"] = {k: host[k] for k in ("kernel", "arch", "cpu_model", "cpus")}
    return meta


def document(data: Any, command: Sequence[str] | None = None,
             cols: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:  # fmt: skip
    """``data`` (records, or what a subcommand reports) as a results
    document: ``meta`` (``metadata``), ``columns`` (units and descriptions
    of the records' columns: ``cols``, or ``columns(data)``) and ``results``."""
    return {"meta": metadata(command), "columns": columns(data) if cols is None else cols,
            "results": data}  # fmt: skip


def csv_text(rows: Sequence[dict[str, Any]], command: Sequence[str] | None = None) -> str:
    """Records as CSV text: one column per key, in the order keys first
    appear. With ``command`` (a command line), ``#`` comment lines first
    give ``metadata`` and each known column's unit (pandas:
    ``read_csv(path, comment="#")``)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    if command is not None:
        meta = metadata(command)
        host = meta["host"]
        units = columns(list(rows))
        command = shlex.join(meta["command"]).replace("\n", "\\n")  # one line, as typed
        buf.write(f"# {meta['schema']}, pagetab {meta['pagetab']}\n"
                  f"# command: {command}\n"
                  f"# host: {host['kernel']} {host['arch']}, {host['cpu_model']}, "
                  f"{host['cpus']} CPUs\n")  # fmt: skip
        if units:
            buf.write("# units: " + ", ".join(f"{k}={v['unit']}" for k, v in units.items())
                      + "\n")  # fmt: skip
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def json_text(data: Any) -> str:
    """``data`` as indented JSON text (``str`` of what JSON lacks): a NaN or
    infinite number, which JSON has no literal for, is null."""
    return json.dumps(_finite(data), indent=1, default=str, allow_nan=False) + "\n"


def _finite(x: Any) -> Any:
    """``x`` with every non-finite float in it replaced by None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def rich_table(
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    right_from: int = 1,
    left: Sequence[int] = (),
    bad: Sequence[bool] = (),
) -> Table:
    """The table, as a rich Table (a terminal prints it coloured).

    Parameters
    ----------
    head:
        The column headings.
    rows:
        The cells, one sequence per row (shown with ``str``).
    title:
        The line above the table, or None.
    right_from:
        Columns from this index on are right-justified (numbers) ...
    left:
        ... except these, which stay left-justified.
    bad:
        Per row: print it in bold red.
    """
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for i, h in enumerate(head):
        # fold, never ellipsis: a cell too wide for the terminal wraps, and no
        # number loses a digit
        t.add_column(escape(h), justify="right" if i >= right_from and i not in left else "left",
                     overflow="fold")  # fmt: skip
    for i, r in enumerate(rows):
        t.add_row(*[escape(str(c)) for c in r],
                  style="bold red" if i < len(bad) and bad[i] else None)  # fmt: skip
    return t


def render_table(head: Sequence[str], rows: Sequence[Sequence[Any]], **kwargs: Any) -> str:
    """``rich_table(head, rows, **kwargs)`` as plain text: unwrapped and
    without trailing blanks (so that it diffs and greps)."""
    plain = Console(highlight=False, width=100_000, no_color=True, file=io.StringIO())
    with plain.capture() as cap:
        plain.print(rich_table(head, rows, **kwargs))
    return "\n".join(line.rstrip() for line in cap.get().splitlines()).strip("\n")


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   title: str | None = None, right_from: int = 1,
                   left: Sequence[int] = ()) -> str:  # fmt: skip
    """A GitHub-flavoured Markdown table of text cells (columns from
    ``right_from`` on right-aligned, but those in ``left``), after
    ``title`` as a paragraph."""

    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = [f"{title}", ""] if title else []
    lines.append("| " + " | ".join(cell(h) or " " for h in head) + " |")
    lines.append("|" + "|".join("---:" if i >= right_from and i not in left else ":---"
                                for i in range(len(head))) + "|")  # fmt: skip
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def write_text(text: str, path: str | os.PathLike[str] | None) -> str:
    """``text``, also written to ``path`` when one is given ("-": standard
    output, as command-line tools take it)."""
    if path is not None and os.fspath(path) == "-":
        sys.stdout.write(text)
    elif path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


class Compared(Sequence[R]):
    """Results of one experiment under several policies, each with its ratio
    to a baseline policy: the baseline's estimated time over its own, for
    the same ``key`` (the same setup but for the policy); above 1 is
    faster than the baseline. The base of ``Results``, ``GcResults`` and
    ``ContendResults``: what they share is documented here.

    Parameters
    ----------
    items
        The results (each with ``policy``, ``estimated_ns``, ``ratio`` and
        ``row()``).
    baseline
        The policy each ratio is to (None: no ratios).
    key
        A result's setup without its policy: results with equal keys are
        compared.

    Attributes
    ----------
    baseline : str or None
        As given.
    """

    def __init__(self, items: Iterable[R], baseline: str | None,
                 key: Callable[[R], tuple[Any, ...]]) -> None:  # fmt: skip
        if baseline is not None and not isinstance(baseline, str):
            raise TypeError(f"baseline must be a policy name or None, not {baseline!r}")
        self._items = list(items)
        self.baseline = baseline
        base = {key(r): r.estimated_ns for r in self._items if r.policy == baseline}
        for r in self._items:
            b = base.get(key(r))
            r.ratio = None if b is None or not r.estimated_ns else b / r.estimated_ns

    def __getitem__(self, i: Any) -> Any:
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per result (the CSV and JSON records)."""
        return [r.row() for r in self._items]

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """CSV text (also written to ``path`` if given)."""
        return write_text(csv_text(self.rows()), path)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text, a list of records (also written to ``path`` if given)."""
        return write_text(json_text(self.rows()), path)

    def columns(self) -> dict[str, dict[str, str]]:
        """The unit and description of each column of ``rows()`` that
        pagetab knows (``results.column_info``): counters, flush
        operations, lock classes, times and sizes."""
        return columns(self.rows())

    def to_pandas(self) -> Any:
        """A pandas DataFrame (pandas is optional: ImportError says how to get it)."""
        try:
            import pandas as pd  # lazy: pandas is an optional extra
        except ImportError as e:
            raise ImportError("to_pandas needs pandas: pip install pandas") from e
        return pd.DataFrame(self.rows())

    @abstractmethod
    def cells(self) -> tuple[list[str], list[list[str]]]:
        """The summary table as text cells: (header, one row per result)."""

    def table(self) -> str:
        """The summary table as plain text (``render_table``: the first three
        columns, the names, left; the numbers right)."""
        head, rows = self.cells()
        return render_table(head, rows, right_from=3)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        """The class, the count and the baseline, then the summary table (a
        notebook cell or the REPL shows it)."""
        return (f"{type(self).__name__}({len(self)} results, baseline={self.baseline!r})\n"
                f"{self.table()}")  # fmt: skip

    def _repr_html_(self) -> str:
        """The summary table as HTML, for notebooks (Jupyter calls this)."""
        head, rows = self.cells()
        cell = "<td style='text-align:{}'>{}</td>"
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(cell.format("left" if i < 3 else "right", html.escape(str(c)))
                             for i, c in enumerate(r)) + "</tr>"
            for r in rows
        )  # fmt: skip
        caption = f"{type(self).__name__}: {len(self)} results, baseline {self.baseline}"
        return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{th}</tr></thead>"
                f"<tbody>{body}</tbody></table>")  # fmt: skip
