"""The cost targets, printed from one script, each with its figures and a verdict.

1. Every published figure a device calibration was fitted to is reproduced
   within 15% (absolute, the mean).
2. Every held-out host case with another CPU running the mm is predicted
   within 20%: ``calibrate(cpus=2)`` fits on its training cases and checks
   the held-out ones measured in the same rounds; ``--runs`` independent
   calibrations, each printed (needs the host probe and two pinnable CPUs).
3. Every qualitative claim of the sources holds in the simulation (the
   conditions are stated beside each claim).
4. The published value lies inside the simulated interval for every fitted
   figure.

Usage: python bench/targets.py [--runs 3] [--repeats 5] [--no-host]
Exit status 0 when every target checked is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

import pagetab as pt
from pagetab import calibrate, host
from pagetab.experiment import move_stats
from pagetab.reproduce import reproduce_published

GIB = 1 << 30
console = Console(width=160)


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]NOT met[/red]"


def fitted_figures() -> tuple[bool, bool]:
    """Targets 1 and 4: the figures each device was fitted to."""
    rows = [r for r in reproduce_published() if r.fitted]
    t = Table(title="published figures under the device fitted to them (targets 1 and 4)")
    for col in ("id", "priced with", "published us", "simulated us", "error", "sim. range us",
                "inside"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("id", "priced with") else "right")
    ok1 = ok4 = True
    for r in rows:
        assert r.error is not None and r.published_us is not None
        assert r.simulated_low_us is not None and r.simulated_high_us is not None
        inside = r.simulated_low_us <= r.published_us <= r.simulated_high_us
        ok1 &= abs(r.error) <= 0.15
        ok4 &= inside
        t.add_row(r.id, r.profile, f"{r.published_us:,.1f}", f"{r.simulated_us:,.1f}",
                  f"{r.error:+.1%}", f"{r.simulated_low_us:,.1f}-{r.simulated_high_us:,.1f}",
                  "yes" if inside else "NO")  # fmt: skip
    console.print(t)
    console.print(f"target 1 (every fitted figure within 15%, {len(rows)} figures): {verdict(ok1)}")
    console.print(f"target 4 (published inside the simulated interval): {verdict(ok4)}\n")
    return ok1, ok4


def ratio(profile: pt.Arch, slow: tuple[str, int], fast: tuple[str, int]) -> float:
    """Estimated single-CPU time of one 1 GiB move of written pages under
    ``slow`` (policy, destination offset) over the same under ``fast``."""

    def ns(policy: str, dst: int) -> float:
        return move_stats(GIB, profile, policy, dst_align=dst, cpus=1, touch=0).estimated_ns

    return ns(*slow) / ns(*fast)


def claims() -> bool:
    """Target 3: each source's qualitative claim as a stated condition."""
    pmd = 2 << 20
    a49 = pt.arch("arm64-4k-linux-4.9")
    a49dev = pt.arch("arm64-4k-linux-4.9", device="joel2018-arm64-4.9")
    x86 = pt.arch("x86-64")
    tlbirange = pt.arch("arm64-4k-tlbirange")
    a20 = pt.arch("arm64-4k", device="kalesh2020-arm64-5.4")
    x20 = pt.arch("x86-64", device="kalesh2020-x86-5.4")
    a20_shipped = pt.arch("arm64-4k")

    def near(value: float, claimed: float) -> bool:
        return abs(value / claimed - 1) <= 0.15

    pte_pmd = ("linux-4.19", pmd), ("linux-5.0", pmd)
    # (claim, profile, simulated ratio, condition, holds, decides): the claims
    # are about devices, so the calibrated profile of the device that made
    # one decides it where there is one; shipped ISA profiles (arm64
    # instruction costs are assumptions) are shown beside them
    rows: list[tuple[str, str, float, str, bool, bool]] = []
    for prof in (a49dev, a49):
        per_pmd = ratio(prof, *pte_pmd)
        at_end = ratio(prof, ("linux-4.9", pmd), ("fast-mremap-v2", pmd))
        rows.append(("per-PMD flushing negates most of the benefit on arm64 4.9", prof.name,
                     per_pmd, f"PTE/PMD-path ratio < 10% of one-flush-at-the-end's "
                     f"{at_end:.0f}x", per_pmd < 0.1 * at_end, prof is a49dev))  # fmt: skip
    x = ratio(x86, *pte_pmd)
    rows.append(("... but not on x86", x86.name, x, "PTE/PMD-path ratio > 10x", x > 10, True))
    r = ratio(tlbirange, *pte_pmd)
    rows.append(("range TLBI makes per-PMD flushes cheap", tlbirange.name, r,
                 "PTE/PMD-path ratio > 10x", r > 10, True))  # fmt: skip
    published = (
        ("PUD moves ~19x over PMD moves on arm64", ("linux-5.0", pmd), ("linux-5.11", 0), 19.0),
        ("PUD moves ~150x over PTE moves on arm64", ("linux-4.19", pmd), ("linux-5.11", 0),
         150.0),
        ("PMD moves ~8x over PTE moves on arm64", ("linux-4.19", pmd), ("linux-5.0", pmd), 8.0),
    )  # fmt: skip
    for claim, slow, fast, claimed in published:
        for prof in (a20, a20_shipped):
            v = ratio(prof, slow, fast)
            rows.append((claim, prof.name, v, f"within 15% of {claimed:.0f}x", near(v, claimed),
                         prof is a20))  # fmt: skip
    for prof in (x20, x86):
        v = ratio(prof, ("linux-5.0", 0), ("linux-5.11", 0))
        rows.append(("PUD moves ~13x over PMD moves on x86", prof.name, v, "within 15% of 13x",
                     near(v, 13.0), prof is x20))  # fmt: skip
    t = Table(title="qualitative claims of the sources (target 3): single-CPU 1 GiB moves")
    for col in ("claim", "priced with", "simulated", "condition", "holds", "decides"):
        t.add_column(col, justify="right" if col == "simulated" else "left")
    for claim, prof_name, value, cond, ok, decides in rows:
        t.add_row(claim, prof_name, f"{value:.1f}x", cond, "yes" if ok else "NO",
                  "yes" if decides else "shown")  # fmt: skip
    console.print(t)
    ok = all(holds for *_, holds, decides in rows if decides)
    console.print(
        "target 3 (every claim holds on the profile of the device that made it; "
        f"shipped ISA profiles shown for comparison): {verdict(ok)}\n"
    )
    return ok


def remote(runs: int, repeats: int) -> bool:
    """Target 2: held-out moves with another CPU running the mm."""
    ok, why = host.available()
    if not ok or len(host.pinnable_cpus()) < 2:
        console.print(f"target 2 not checked: host probe: {why or 'fewer than two CPUs to pin'}")
        return True
    met = []
    worst: list[float] = []
    for run in range(1, runs + 1):
        with tempfile.TemporaryDirectory() as d:
            data = calibrate.calibrate(Path(d) / "cal.json", repeats=repeats, cpus=2,
                                       verbose=False)  # fmt: skip
        if "held_out" not in data["remote"]:
            console.print(f"target 2 not checked: {data['remote'].get('skipped')}")
            return False
        t = Table(
            title=f"run {run}: held out, 2 CPUs running the mm (ipi fitted: "
            f"{data['costs']['ipi']:.0f} ns); single-CPU held out: median "
            f"|error| {statistics.median(abs(r['error']) for r in data['held_out']):.1%}"
        )
        for col in ("case", "measured us", "predicted us", "error"):
            t.add_column(col, justify="left" if col == "case" else "right")
        for r in data["remote"]["held_out"]:
            m, q = r["measured_ns"] / 1e3, r["predicted_ns"] / 1e3
            t.add_row(r["case"], f"{m:,.1f}", f"{q:,.1f}", f"{r['error']:+.1%}")
        console.print(t)
        errs = [abs(r["error"]) for r in data["remote"]["held_out"]]
        worst.append(max(errs))
        met.append(max(errs) <= 0.20)
    console.print(
        f"target 2 (every held-out case with another CPU within 20%): met in "
        f"{sum(met)} of {runs} runs; worst case per run: "
        f"{', '.join(f'{w:.1%}' for w in worst)}: {verdict(all(met))}\n"
    )
    return all(met)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="independent host calibrations")
    p.add_argument("--repeats", type=int, default=5, help="moves per case per round")
    p.add_argument("--no-host", action="store_true", help="skip target 2 (the host kernel)")
    args = p.parse_args()
    ok1, ok4 = fitted_figures()
    ok3 = claims()
    ok2 = True if args.no_host else remote(args.runs, args.repeats)
    return 0 if ok1 and ok2 and ok3 and ok4 else 1


if __name__ == "__main__":
    sys.exit(main())
