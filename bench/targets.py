"""The cost targets, printed from one script, each with its figures and a verdict.

1. Every published figure held out from the cross-device model
   (pagetab.device_model: left out alone, and with its whole source) is
   predicted within 2x on its own ISA, the device's factors stated.
2. Every held-out host case with another CPU running the mm is predicted
   within 20%: ``calibrate(cpus=2)`` fits on its training cases and checks
   the held-out ones measured in the same rounds; ``--runs`` independent
   calibrations, each printed (needs the host probe and two pinnable CPUs).
3. Every qualitative claim of the sources holds in the simulation (the
   conditions are stated beside each claim), and every ratio of two
   published timings of one device agrees with its ISA's default profile
   within 15% or the profile says why not.
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
from pagetab import calibrate, device_model, host
from pagetab.experiment import move_stats
from pagetab.reproduce import published_ratios, reproduce_published

GIB = 1 << 30
console = Console(width=160)


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]NOT met[/red]"


def held_out() -> bool:
    """Target 1: the cross-device model's held-out predictions."""
    t = Table(title="published figures held out from the cross-device model (target 1)")
    for col in ("figure", "held out", "published us", "predicted us", "error", "speed",
                "memory", "flush", "within 2x"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("figure", "held out") else "right")
    preds = [p for p in device_model.validate() if p.mode != "fit"]
    for p in preds:
        t.add_row(p.id, p.mode, f"{p.measured_us:,.1f}", f"{p.predicted_us:,.1f}",
                  f"{p.error:+.1%}", f"x{p.speed:.3g}", f"x{p.memory:.3g}", f"x{p.flush:.3g}",
                  "yes" if p.within_target else "NO")  # fmt: skip
    console.print(t)
    ok = [p for p in preds if p.within_target]
    by_isa = {
        isa: f"{sum(p.within_target for p in preds if p.isa == isa)} of "
        f"{sum(p.isa == isa for p in preds)}"
        for isa in sorted({p.isa for p in preds})
    }
    console.print(f"target 1 (every held-out figure within 2x): {len(ok)} of {len(preds)} "
                  f"({', '.join(f'{k} {v}' for k, v in by_isa.items())}): "
                  f"{verdict(len(ok) == len(preds))}\n")  # fmt: skip
    return len(ok) == len(preds)


def fitted_figures() -> bool:
    """Target 4: the figures each device was fitted to, inside their intervals."""
    rows = [r for r in reproduce_published() if r.fitted]
    t = Table(title="published figures under the device fitted to them (target 4)")
    for col in ("id", "priced with", "published us", "simulated us", "error", "sim. range us",
                "inside"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("id", "priced with") else "right")
    ok4 = True
    for r in rows:
        assert r.error is not None and r.published_us is not None
        assert r.simulated_low_us is not None and r.simulated_high_us is not None
        inside = r.simulated_low_us <= r.published_us <= r.simulated_high_us
        ok4 &= inside
        t.add_row(r.id, r.profile, f"{r.published_us:,.1f}", f"{r.simulated_us:,.1f}",
                  f"{r.error:+.1%}", f"{r.simulated_low_us:,.1f}-{r.simulated_high_us:,.1f}",
                  "yes" if inside else "NO")  # fmt: skip
    console.print(t)
    console.print(f"target 4 (published inside the simulated interval): {verdict(ok4)}\n")
    return ok4


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
    r, r49 = ratio(tlbirange, *pte_pmd), ratio(a49, *pte_pmd)
    rows.append(("range TLBI makes per-PMD flushes cheap", tlbirange.name, r,
                 f"PTE/PMD-path ratio > 5x the 4.9 rule's {r49:.1f}x", r > 5 * r49,
                 True))  # fmt: skip
    t = Table(title="qualitative claims of the sources (target 3): single-CPU 1 GiB moves")
    for col in ("claim", "priced with", "simulated", "condition", "holds", "decides"):
        t.add_column(col, justify="right" if col == "simulated" else "left")
    for claim, prof_name, value, cond, ok, decides in rows:
        t.add_row(claim, prof_name, f"{value:.1f}x", cond, "yes" if ok else "NO",
                  "yes" if decides else "shown")  # fmt: skip
    console.print(t)
    ok = all(holds for *_, holds, decides in rows if decides)
    t = Table(title="ratios of two published timings of one device under the ISA's default "
              "profile (target 3)")  # fmt: skip
    for col in ("slower", "faster", "priced with", "published", "simulated", "agrees",
                "or the profile's reason"):  # fmt: skip
        t.add_column(col, justify="right" if col in ("published", "simulated") else "left")
    ratios = published_ratios()
    for r in ratios:
        t.add_row(r.slow, r.fast, r.profile, f"{r.published:.1f}x", f"{r.simulated:.1f}x",
                  "yes" if r.agrees else "NO", r.note or "")  # fmt: skip
    console.print(t)
    ok_ratios = all(r.agrees or r.note for r in ratios)
    console.print(
        "target 3 (every claim holds on the profile of the device that made it; every ratio "
        f"agrees within 15% or says why not): {verdict(ok and ok_ratios)}\n"
    )
    return ok and ok_ratios


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
    ok1 = held_out()
    ok4 = fitted_figures()
    ok3 = claims()
    ok2 = True if args.no_host else remote(args.runs, args.repeats)
    return 0 if ok1 and ok2 and ok3 and ok4 else 1


if __name__ == "__main__":
    sys.exit(main())
