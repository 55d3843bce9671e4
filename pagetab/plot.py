"""Plots of experiment results (matplotlib, an optional dependency)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .policy import policies
from .units import format_size

__all__ = [
    "PLOT_FORMATS",
    "check_plot_path",
    "plain_log_ticks",
    "plot_bars",
    "plot_breakdown",
    "plot_latency",
    "plot_results",
    "save_figure",
]

#: the file formats a plot is written in, by extension (matplotlib's
#: savefig formats; tests/test_plot.py checks each against matplotlib)
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """``path``'s format, from its extension; ValueError naming the valid
    ones if it has none of them (a .txt was written as PNG data)."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise ValueError(f"plot file {os.fspath(path)!r}: the extension must be one of "
                         f"{', '.join('.' + f for f in PLOT_FORMATS)}")  # fmt: skip
    return ext


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` in the format its extension names."""
    fig.savefig(os.fspath(path), format=check_plot_path(path))


def _size_label(n: float, _pos: Any = None) -> str:
    return format_size(int(n))


def _number(x: float, _pos: Any = None) -> str:
    """A tick label as a plain number: thousands separated, up to four
    significant digits (never matplotlib's ``1.055×10³``)."""
    if x == 0:
        return "0"
    if abs(x) >= 1:
        return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return f"{x:.4g}"


def plain_log_ticks(axis: Any) -> None:
    """Plain numbers on a log axis, major and minor ticks alike."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_formatter(FuncFormatter(_number))
    # minor ticks labelled only where a decade has too few majors to read
    lo, hi = sorted(axis.get_view_interval())
    if lo > 0 and hi / lo < 100:
        axis.set_minor_locator(LogLocator(subs=(2, 5)))
        axis.set_minor_formatter(FuncFormatter(_number))
    else:
        axis.set_minor_formatter(NullFormatter())


def _policy_order(name: str) -> int:
    names = policies()
    return names.index(name) if name in names else len(names)


def plot_results(results: Iterable[Any], path: str | os.PathLike[str] | None = None,
                 title: str | None = None, ax: Any = None) -> Any:  # fmt: skip
    """Log-log estimated kernel time against region size: one line per arch
    and policy (unsafe points marked with a red x). Draws on ``ax`` (a new
    figure if None), writes it to ``path`` if given (the format its
    extension names) and returns the Axes."""
    if path is not None:
        check_plot_path(path)
    results = list(results)
    sizes = sorted({r.size for r in results})
    if len(sizes) == 1:
        # one size: nothing to draw a line along; a bar per arch and policy
        archs = sorted({r.arch for r in results})
        ordered = sorted(results, key=lambda r: (r.arch, _policy_order(r.policy)))
        return plot_bars(
            [r.policy if len(archs) == 1 else f"{r.arch} {r.policy}" for r in ordered],
            [r.estimated_ns / 1e3 for r in ordered],
            [tuple(x / 1e3 for x in r.estimated_ns_range) for r in ordered],
            [not r.safe for r in ordered],
            "estimated kernel time of the mremap call (µs)",
            title or f"mremap cost by policy: {', '.join(archs)}, {format_size(sizes[0])}",
            path,
            ax,
        )
    ours = ax is None
    plt = _pyplot(ours and path is not None)  # (to show, the caller's backend)
    from matplotlib.ticker import FuncFormatter

    series: dict[tuple[str, str], list[tuple[int, float, bool, float, float]]] = {}
    for r in results:
        low, high = r.estimated_ns_range
        series.setdefault((r.arch, r.policy), []).append(
            (r.size, r.estimated_ns, r.safe, low, high)
        )
    archs = sorted({a for a, _ in series})
    pols = list(dict.fromkeys(p for _, p in sorted(series, key=lambda k: _policy_order(k[1]))))
    if ax is None:
        _, ax = plt.subplots(figsize=(11.5, 6), dpi=110)
    # colour and marker name the policy, the line style the arch: policies
    # with equal costs draw on top of each other but stay distinguishable
    styles = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "v", "D", "P", "X", "*", "h"]
    cmap = _colours(plt, len(pols))
    bad_x: list[int] = []
    bad_y: list[float] = []
    for (a, pol), pts in sorted(series.items(), key=lambda kv: (kv[0][0], pols.index(kv[0][1]))):
        pts.sort()
        xs = [p[0] for p in pts]
        ys = [p[1] / 1e3 for p in pts]
        k = pols.index(pol)
        ax.plot(
            xs,
            ys,
            styles[archs.index(a) % len(styles)],
            marker=markers[k % len(markers)],
            markersize=5,
            color=cmap(k),
            alpha=0.85,
            label=pol if len(archs) == 1 else f"{a} {pol}",
        )
        # the estimate's interval: every event at its cost range's low, then high end
        ax.fill_between(xs, [p[3] / 1e3 for p in pts], [p[4] / 1e3 for p in pts],
                        color=cmap(k), alpha=0.08, linewidth=0)  # fmt: skip
        bad_x += [p[0] for p in pts if not p[2]]
        bad_y += [y for p, y in zip(pts, ys, strict=True) if not p[2]]
    if bad_x:
        ax.plot(
            bad_x,
            bad_y,
            "x",
            color="red",
            markersize=11,
            mew=2,
            label="unsafe: stale TLB entries outlive the lock",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_size_label))
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("region size (bytes, log scale)")
    ax.set_ylabel("estimated kernel time of the mremap call (µs, log scale; band: its range)")
    span = f"{format_size(sizes[0])} to {format_size(sizes[-1])}"
    ax.set_title(title or f"mremap cost by policy: {', '.join(archs)}, {span}")
    ax.grid(True, which="both", alpha=0.3)
    # beside the axes, not over the lines; policies with equal costs share a line
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        title="lines that coincide cost the same",
        title_fontsize=8,
    )
    _finish(plt, ax, path, ours)
    return ax


def plot_bars(labels: list[str], values: list[float], ranges: list[tuple[float, ...]],
              unsafe: list[bool], xlabel: str, title: str,
              path: str | os.PathLike[str] | None = None, ax: Any = None) -> Any:  # fmt: skip
    """One horizontal bar per label (its value, with its ``ranges``
    interval as an error bar; an unsafe one hatched and red-edged), on
    ``ax`` (a new figure if None), written to ``path`` if given. Returns
    the Axes."""
    if path is not None:
        check_plot_path(path)
    ours = ax is None
    plt = _pyplot(ours and path is not None)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 1.2 + 0.35 * len(labels)), dpi=110)
    cmap = _colours(plt, len(labels))
    ys = list(range(len(labels)))[::-1]
    lows = [v - r[0] for v, r in zip(values, ranges, strict=True)]
    highs = [r[-1] - v for v, r in zip(values, ranges, strict=True)]
    bars = ax.barh(ys, values, color=[cmap(k) for k in range(len(labels))],
                   xerr=[lows, highs], capsize=3, error_kw={"elinewidth": 1})  # fmt: skip
    for bar, bad in zip(bars, unsafe, strict=True):
        if bad:
            bar.set_hatch("//")
            bar.set_edgecolor("red")
    for y, v in zip(ys, values, strict=True):
        ax.annotate(_number(v), (v, y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(
        ys, [lab + (" (UNSAFE)" if bad else "") for lab, bad in zip(labels, unsafe, strict=True)]
    )
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(_number))
    ax.set_xlabel(xlabel + ", the error bar its range")
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    _finish(plt, ax, path, ours)
    return ax


def plot_breakdown(result: Any, path: str | os.PathLike[str] | None = None,
                   title: str | None = None, ax: Any = None) -> Any:  # fmt: skip
    """One move's estimated time by category (``MoveResult.breakdown``),
    a bar each, with the whole estimate and its range in the title."""
    items = [(k, v / 1e3) for k, v in result.breakdown.items() if v]
    low, high = result.estimated_ns_range
    return plot_bars(
        [k for k, _ in items], [v for _, v in items], [(v, v) for _, v in items],
        [False] * len(items), "estimated time (µs)",
        title or (f"{result.arch} {result.policy}, {format_size(result.size)}: "
                  f"{_number(result.estimated_ns / 1e3)} µs "
                  f"({_number(low / 1e3)}-{_number(high / 1e3)})"
                  + ("" if result.safe else ", UNSAFE")),
        path, ax,
    )  # fmt: skip


def _finish(plt: Any, ax: Any, path: str | os.PathLike[str] | None, ours: bool) -> None:
    """Lay the figure out and write it to ``path`` if given; a figure of
    ours written to a file is closed (pyplot would keep every one open), a
    caller's, or one to show, stays."""
    fig = ax.figure
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
        if ours:
            plt.close(fig)


def _colours(plt: Any, n: int) -> Any:
    """``n`` distinct colours by index (tab10, or tab20 beyond ten: eleven
    policies drew linux-4.9 and batched-ptl both blue)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return lambda k: cmap(k % cmap.N)


def plot_latency(results: Iterable[Any], path: str | os.PathLike[str] | None = None,
                 title: str | None = None, ax: Any = None) -> Any:  # fmt: skip
    """The other threads' access latency while the move ran: one
    complementary CDF per run (the fraction of accesses slower than x,
    log-log), all its threads together; unsafe policies dashed. Draws on
    ``ax`` (a new figure if None), writes it to ``path`` if given and
    returns the Axes."""
    if path is not None:
        check_plot_path(path)
    results = list(results)
    ours = ax is None
    plt = _pyplot(ours and path is not None)  # (to show, the caller's backend)
    import numpy as np

    from ._contend import bucket_upper_ns

    upper = bucket_upper_ns()
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    cmap = _colours(plt, len(results))
    for k, r in enumerate(results):
        h = np.sum([t.histogram_during for t in r.threads], axis=0)
        n = int(h.sum())
        if not n:
            continue
        slower = 1.0 - np.cumsum(h) / n
        keep = slower > 0
        ax.step(upper[keep], slower[keep], where="post", color=cmap(k),
                linestyle="-" if r.safe else "--",
                label=f"{r.arch} {r.policy} {format_size(r.size)} ({len(r.threads)} threads)"
                + ("" if r.safe else " UNSAFE"))  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("access latency during the move (ns)")
    ax.set_ylabel("fraction of accesses slower")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "What the other threads see while one thread moves page tables")
    _finish(plt, ax, path, ours)
    return ax


def _pyplot(agg: bool) -> Any:
    """pyplot; with ``agg`` on the file backend (a figure of our own: an
    ``ax`` the caller gives keeps the caller's backend, as in a notebook)."""
    try:  # lazy: matplotlib is an optional extra
        import matplotlib

        if agg:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'pagetab[plot]'") from e
    return plt


def plot_calls(
    recorded_ns: Iterable[float],
    estimated_ns: Iterable[float],
    kinds: Iterable[str],
    title: str,
    ax: Any = None,
) -> Any:
    """Each call's estimated time against the kernel's recorded time
    (log-log; one colour per call kind; the diagonal and a +-25% band).
    Draws on ``ax`` (a new figure if None) and returns it."""
    plt = _pyplot(ax is None)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 6), dpi=110)
    rec, est, kind = list(recorded_ns), list(estimated_ns), list(kinds)
    for i, k in enumerate(sorted(set(kind))):
        xs = [r for r, kk in zip(rec, kind, strict=True) if kk == k]
        ys = [e for e, kk in zip(est, kind, strict=True) if kk == k]
        ax.scatter([x / 1e3 for x in xs], [y / 1e3 for y in ys], s=14, alpha=0.7,
                   color=plt.get_cmap("tab10")(i), label=f"{k} ({len(xs)})")  # fmt: skip
    if rec:
        lo = min(min(rec), min(est)) / 1e3 / 1.5
        hi = max(max(rec), max(est)) / 1e3 * 1.5
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, label="estimate = kernel")
        ax.fill_between([lo, hi], [lo * 0.75, hi * 0.75], [lo * 1.25, hi * 1.25],
                        color="grey", alpha=0.15, label="within 25%")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.set_xlabel("the kernel's recorded time in the call (us)")
    ax.set_ylabel("pagetab's estimate (us)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return ax


def plot_cumulative(
    t_ns: Iterable[float],
    series: Mapping[str, Iterable[float]],
    title: str,
    ax: Any = None,
) -> Any:
    """Cumulative time over a run: for each series (a label and each call's
    ns, at the calls' times ``t_ns``), the running total in ms against the
    run's time in ms. Draws on ``ax`` (a new figure if None), returns it."""
    plt = _pyplot(ax is None)
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5), dpi=110)
    t = np.asarray(list(t_ns), dtype=np.float64) / 1e6
    for label, ns in series.items():
        ax.step(t, np.cumsum(np.asarray(list(ns), dtype=np.float64)) / 1e3, where="post",
                label=label)  # fmt: skip
    ax.set_xlabel("time in the run (ms)")
    ax.set_ylabel("cumulative time in the calls (us)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return ax
