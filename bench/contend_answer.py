"""The 2018 review's trade-off, asked of the concurrent model: batch the
page-table lock over a PMD table and flush once, or flush per PMD under
short lock holds; who pays, the mover or the other threads?

For each arch and size, 1..16 application threads (on CPUs 1..T, the mover
on CPU 0) run through the whole move (``through_move``) back-to-back
operations of ``--op-ns`` of their own work and one memory access each
(``work_ns``): an operation's latency is what a request served by that
thread would see, a flush IPI landing in it included:

* ``read outside``: random reads of a 4 MiB working set in a populated
  region the move leaves alone (the other threads of a GC'd process);
* ``read inside``: random reads of the first 4 MiB of the moved region at
  its old addresses (a thread racing the move);
* ``fault``: first writes to a fresh region (an allocating thread);
* ``fault beside`` (at ``--beside-size``, 512 MiB, so that half the moved
  region's PMD table is left): first writes to a fresh VMA in that other
  half, whose PTE-table installs take the PMD lock the mover holds while it
  moves the table's entries: the threads the lock's hold time reaches.

Each policy moves the region PUD-aligned to PMD-aligned (whole-PMD moves
where the policy has them). Prints, per arch, size and workload, the
mover's time and the worst thread's p99 during the move at each thread
count, which policy wins each (the unsafe fast-mremap-v2 shown, never
counted as a winner), and the thread count where the winner on p99
changes (the crossover), with a plot of both against threads.

Usage: python bench/contend_answer.py [--sizes 1G,64G] [--threads 1,2,4,8,16]
       [--op-ns 1000] [--csv FILE] [--plot PNG] [--markdown]

The README's plot and table: --plot docs/contend.png --markdown (72 s here).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from typing import Any

import numpy as np

import pagetab as pt
from pagetab import _contend, contention
from pagetab.units import format_size, parse_size, parse_sizes

MIB = 1 << 20
POLICIES = ("linux-4.19", "linux-5.0", "linux-6.8", "batched-ptl", "fast-mremap-v2")
ARCHS = ("x86-64", "arm64-4k")
UPPER = _contend.bucket_upper_ns()


def workloads(op_ns: float) -> dict[str, pt.ThreadSpec]:
    """The three kinds of thread, each running through the whole move."""
    kw: dict[str, Any] = {"accesses": 1, "work_ns": op_ns, "through_move": True}
    return {
        "read outside": pt.ThreadSpec("outside", "read", span=4 * MIB, **kw),
        "read inside": pt.ThreadSpec("inside", "read", span=4 * MIB, **kw),
        "fault": pt.ThreadSpec("fresh", "write", **kw),
    }


def sweep(a: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (arch, size, workload, threads, policy) run, as flat rows; the
    faults beside the moved region at ``--beside-size`` only."""
    rows = []
    jobs = list(itertools.product(a.archs, a.sizes, workloads(a.op_ns).items(), a.threads))
    jobs += list(itertools.product(a.archs, [a.beside_size], beside(a.op_ns).items(),
                                   a.threads))  # fmt: skip
    for i, (arch, size, (name, spec), n) in enumerate(jobs):
        t0 = time.perf_counter()
        runs = [pt.run_concurrent(size, arch, pol, [spec] * n, region_size=1 << 30)
                for pol in POLICIES]  # fmt: skip
        for pol, r, p99w in zip(POLICIES, runs, window_p99(runs), strict=True):
            rows.append({
                "arch": arch, "size": size, "workload": name, "threads": n, "policy": pol,
                "safe": r.safe, "mover_ns": r.estimated_ns, "p99_ns": r.worst("p99"),
                "p99_window_ns": p99w,
                "max_ns": r.worst("max"), "stall_ns": r.stall_ns, "cpu_ns": r.cpu_ns,
                "ipis": sum(t.stats["ipis"] for t in r.threads),
                "blocked_ns": sum(t.stats["blocked_ns"] for t in r.threads),
                "ptl_waits": sum(t.stats["ptl_waits"] for t in r.threads),
                "ptl_wait_ns": sum(t.stats["ptl_wait_ns"] for t in r.threads),
                "unsafe_hits": r.unsafe_hits,
            })  # fmt: skip
        print(f"[{i + 1}/{len(jobs)}] {arch} {format_size(size)} {name} x{n}: "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)  # fmt: skip
    return rows


def beside(op_ns: float) -> dict[str, pt.ThreadSpec]:
    """Threads faulting in a fresh VMA in the rest of the moved region's
    last PMD table: the faults that install its PTE tables take the PMD
    lock the mover holds while it moves that table's entries."""
    return {"fault beside": pt.ThreadSpec("beside", "write", accesses=1, work_ns=op_ns,
                                          through_move=True)}  # fmt: skip


def window_p99(runs: list[pt.ContendResult]) -> list[float]:
    """Each run's worst thread p99 over the same window of work, the
    longest of the runs' moves: a thread's operations during its run's move
    and, where that move was shorter, as many undisturbed operations (at its
    median without the move) as fill the window. (The p99 over each move
    alone compares a 60 us move with a 1 s one: any IPI per hundred
    operations reaches it.)"""
    window = max(r.estimated_ns for r in runs)
    out = []
    for r in runs:
        worst = 0.0
        for t in r.threads:
            h = t.histogram_during.copy()
            base = t.baseline_latency_ns["p50"]
            if base > 0:
                i = min(int(np.searchsorted(UPPER, base, side="right")), len(h) - 1)
                h[i] += int((window - r.estimated_ns) / base)
            worst = max(worst, contention.percentiles(h)["p99"])
        out.append(worst)
    return out


def winner(rows: list[dict[str, Any]], key: str) -> str:
    """The safe policy with the lowest ``key`` (ties: all of them)."""
    safe = [r for r in rows if r["safe"]]
    best = min(r[key] for r in safe)
    return "=".join(r["policy"] for r in safe if r[key] <= best * 1.005)


def summarise(rows: list[dict[str, Any]], a: argparse.Namespace) -> None:
    """Per setup: each policy's mover time and p99 at the smallest and
    largest thread count, the winners, and where the p99 winner changes."""
    lo, hi = min(a.threads), max(a.threads)
    head = ["arch, size", "threads' work", "policy", f"mover ms x{hi}", f"p99* ns x{lo}",
            f"p99* ns x{hi}", f"stall ms x{hi}", f"IPIs x{hi}"]  # fmt: skip
    print("  ".join(head))
    verdicts = []
    for arch, size, name in dict.fromkeys((r["arch"], r["size"], r["workload"]) for r in rows):
        setup = [r for r in rows if (r["arch"], r["size"], r["workload"]) == (arch, size, name)]
        by_n = {n: [r for r in setup if r["threads"] == n] for n in a.threads}
        for pol in POLICIES:
            one = next(r for r in by_n[lo] if r["policy"] == pol)
            many = next(r for r in by_n[hi] if r["policy"] == pol)
            cells = [f"{arch}, {format_size(size)}", name,
                     pol + ("" if one["safe"] else " (UNSAFE)"), f"{many['mover_ns'] / 1e6:.3f}",
                     f"{one['p99_window_ns']:.0f}", f"{many['p99_window_ns']:.0f}",
                     f"{many['stall_ns'] / 1e6:.2f}", f"{many['ipis']:,}"]  # fmt: skip
            print("  ".join(cells))
        parts = [f"{arch} {format_size(size)} {name}:"]
        for key, what in (("mover_ns", "mover"), ("p99_window_ns", "threads' p99"),
                          ("max_ns", "longest pause"), ("stall_ns", "threads' stall")):  # fmt: skip
            wins = {n: winner(by_n[n], key) for n in a.threads}
            changes = [n for prev, n in itertools.pairwise(a.threads) if wins[n] != wins[prev]]
            parts.append(f"{what}: {wins[lo]}" + (
                "".join(f", {wins[n]} from x{n}" for n in changes) if changes
                else f" (x{lo}..x{hi})"))  # fmt: skip
        verdicts.append(" ".join(parts[:1]) + " " + "; ".join(parts[1:]))
    print()
    for v in verdicts:
        print(v)


def ms(ns: float) -> str:
    """A duration for the table: ms from 1 ms, us below."""
    if ns >= 1e8:
        return f"{ns / 1e6:,.0f} ms"
    return f"{ns / 1e6:.3g} ms" if ns >= 1e6 else f"{ns / 1e3:.3g} us"


def answer_table(rows: list[dict[str, Any]], a: argparse.Namespace) -> None:
    """The README's table (markdown): per arch, size and policy, the
    mover's time with the fewest and the most threads, the readers' worst
    p99 and summed stall, the faulting threads' longest pause and stall."""
    lo, hi = min(a.threads), max(a.threads)
    print(f"| arch, size | policy | mover, {lo} / {hi} threads | {hi} readers: worst p99*, stall "
          f"| {hi} faulting: longest pause, stall |\n|---|---|---|---|---|")  # fmt: skip
    for arch, size, pol in itertools.product(a.archs, a.sizes, POLICIES):
        one, many, fault = (next(r for r in rows if (r["arch"], r["size"], r["policy"],
                                                     r["workload"], r["threads"]) == k)
                            for k in ((arch, size, pol, "read outside", lo),
                                      (arch, size, pol, "read outside", hi),
                                      (arch, size, pol, "fault", hi)))  # fmt: skip
        name = pol if one["safe"] else f"{pol} (UNSAFE)"
        print(f"| {arch}, {format_size(size)} | {name} | {ms(one['mover_ns'])} / "
              f"{ms(many['mover_ns'])} | {many['p99_window_ns']:,.0f} ns, {ms(many['stall_ns'])} | "
              f"{ms(fault['max_ns'])}, {ms(fault['stall_ns'])} |")  # fmt: skip


def beside_table(rows: list[dict[str, Any]], a: argparse.Namespace) -> None:
    """The README's second table (markdown): the faults beside the moved
    region, per arch and policy, with the fewest and the most threads."""
    lo, hi = min(a.threads), max(a.threads)
    print(f"| arch, {format_size(a.beside_size)} moved | policy | longest pause, {lo} / {hi} "
          f"threads | PMD-lock waits, {hi} threads: count, mean | stall, {hi} threads |\n"
          "|---|---|---|---|---|")  # fmt: skip
    for arch, pol in itertools.product(a.archs, POLICIES):
        one, many = (next(r for r in rows if (r["arch"], r["policy"], r["workload"],
                                              r["threads"]) == (arch, pol, "fault beside", n))
                     for n in (lo, hi))  # fmt: skip
        name = pol if one["safe"] else f"{pol} (UNSAFE)"
        mean = many["ptl_wait_ns"] / many["ptl_waits"] if many["ptl_waits"] else 0.0
        print(f"| {arch} | {name} | {ms(one['max_ns'])} / {ms(many['max_ns'])} | "
              f"{many['ptl_waits']:,}, {ms(mean)} | {ms(many['stall_ns'])} |")  # fmt: skip


def plot(rows: list[dict[str, Any]], a: argparse.Namespace, path: str) -> None:
    """Mover time, the worst thread's p99 and the threads' summed stall
    against threads, per arch and size, one line per policy (the
    read-outside workload)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pagetab.plot import plain_log_ticks

    setups = list(itertools.product(a.archs, a.sizes))
    metrics = (("mover_ns", 1e6, "mover's time (ms)"),
               ("p99_window_ns", 1, "worst thread's p99, same window (ns)"),
               ("stall_ns", 1e6, "threads' stall, summed (ms)"))  # fmt: skip
    fig, axes = plt.subplots(len(metrics), len(setups), figsize=(4 * len(setups), 9),
                             squeeze=False)  # fmt: skip
    for c, (arch, size) in enumerate(setups):
        for pol in POLICIES:
            pts = sorted((r["threads"], r) for r in rows
                         if (r["arch"], r["size"], r["policy"], r["workload"])
                         == (arch, size, pol, "read outside"))  # fmt: skip
            style = ":" if pol == "fast-mremap-v2" else "-"
            label = pol + (" (UNSAFE)" if pol == "fast-mremap-v2" else "")
            for row, (key, scale, _) in enumerate(metrics):
                axes[row][c].plot([n for n, _ in pts], [max(r[key] / scale, 1e-4) for _, r in pts],
                                  style, marker="o", label=label)  # fmt: skip
        axes[0][c].set_title(f"{arch}, {format_size(size)}")
        for row, (_, _, ylabel) in enumerate(metrics):
            ax = axes[row][c]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            plain_log_ticks(ax.yaxis)  # 1,055, not 1.055x10^3
            plain_log_ticks(ax.xaxis)
            ax.set_xlabel("threads reading outside the moved region")
            if c == 0:
                ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"mremap (PMD-aligned) with T threads running {a.op_ns:g} ns operations, one "
                 "read each (pagetab concurrent model)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=parse_sizes, default=[1 << 30, 64 << 30])
    p.add_argument("--archs", type=lambda s: s.split(","), default=list(ARCHS))
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 2, 4, 8, 16])  # fmt: skip
    p.add_argument(
        "--op-ns",
        type=float,
        default=1000.0,
        help="each operation's own work, besides its one access (default 1000)",
    )
    p.add_argument("--beside-size", type=parse_size, default=512 << 20,
                   help="the moved size for the faults beside it (default 512M)")  # fmt: skip
    p.add_argument("--csv", help="write every run's row here")
    p.add_argument("--plot", help="write the plot here (PNG)")
    p.add_argument("--markdown", action="store_true", help="also the README's table (markdown)")
    a = p.parse_args()
    t0 = time.perf_counter()
    rows = sweep(a)
    summarise(rows, a)
    if a.markdown:
        print()
        answer_table(rows, a)
        print()
        beside_table(rows, a)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if a.plot:
        plot(rows, a, a.plot)
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
