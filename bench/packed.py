"""Print the packed-table figures: 16 TiB on this machine, a uniform 1 TiB
move against the kernel's estimated time, and dense work against the
previous main, all in one run.

1. 16 TiB on x86-64 (no THP), in a fresh process: read-populated, moved
   on the PTE path (to 4 KiB past a PMD boundary) and then on the PMD path
   (the same offset in the PMD, another in the PUD: move_normal_pmd but
   for the two end tables); then write-populated over its zero pages and
   moved both ways again. Each step's wall time, the kernel's time for
   the move as the model estimates it, the store's PTE and PMD tables
   (how many of each are packed), and the process's peak RSS. Target:
   peak RSS under 8 GiB.
2. 1 TiB write-populated, moved on the PTE path as ``bench/move_speed.py``
   moves it (linux-4.19, 4 KiB off; 4 CPUs with warm TLBs): the median
   wall time of a simulated move against the kernel's time the model
   estimates for it. Target: at most 0.01x.
3. Dense, non-uniform work, this tree against ``--baseline`` (a git
   revision: its tree is built once under /tmp), in alternating fresh
   processes: 8 M random writes over 64 GiB (faults into tables that
   end up all different), a PTE-path move of the 64 GiB, 20 M random
   reads of it. Target: each phase's median within 5% of the baseline's.

Usage: python bench/packed.py [--tib 16] [--baseline bbc0b63] [--rounds 5]
       [--skip-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BIG = r"""
import json, resource, sys, time
import pagetab as pt
T = 1 << 40
tib = int(sys.argv[1])
size = tib * T
mm = pt.AddressSpace("x86-64", thp="never")
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED | pt.MAP_NORESERVE
MOVE = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
PMD, PUD = 2 << 20, 1 << 30
at = mm.mmap(size, addr=16 * T, flags=FIX)
# (start, PTE-path destination, PMD-path destination): each PTE-path move
# changes the offset in the PMD, each PMD-path move keeps it
plan = [(pt.MADV_POPULATE_READ, 48 * T + 4096, 80 * T + PMD + 4096),
        (pt.MADV_POPULATE_WRITE, 16 * T + 8192, 48 * T + PMD + 8192)]
def step(name, t0, est=None):
    t = mm.mm_struct.tables
    print(json.dumps({"step": name, "seconds": time.perf_counter() - t0,
                      "kernel_s": est, "tables": t.live_rows()[-1], "packed": t.packed_tables,
                      "expanded": t.packed_expanded, "pmds": t.live_rows()[-2],
                      "packed_pmds": t.packed_pmd_tables,
                      "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)}),
          flush=True)
for advice, pte_dst, pmd_dst in plan:
    kind = "read" if advice == pt.MADV_POPULATE_READ else "write"
    t0 = time.perf_counter()
    mm.madvise(at, size, advice)
    step(f"{kind}-populate", t0)
    for path, dst in (("PTE", pte_dst), ("PMD", pmd_dst)):
        t0 = time.perf_counter()
        at = mm.mremap(at, size, size, MOVE, dst)
        step(f"{kind} {path}-path move", t0, mm.last_move.estimated_ns / 1e9)
"""

UNIFORM = r"""
import json, statistics, sys
from pagetab.native import PingPong
pp = PingPong(1 << 40, 4096, "linux-4.19", cpus=4, write=True, touch=4)
times = pp.times(int(sys.argv[1]))
st = pp.mm.last_move
print(json.dumps({"median_ns": statistics.median(times), "est_ns": st.estimated_ns,
                  "ptes": st.ptes_moved, "expanded": pp.mm.mm_struct.tables.packed_expanded}))
"""

DENSE = r"""
import json, time
import numpy as np
import pagetab as pt
G = 1 << 30
size = 64 * G
mm = pt.AddressSpace("x86-64", thp="never")
a = mm.mmap(size, addr=1 << 44, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
rng = np.random.default_rng(7)
writes = a + rng.integers(0, size, 8_000_000, dtype=np.uint64)
out = {}
t0 = time.perf_counter()
mm.access(writes, write=True)
out["writes"] = time.perf_counter() - t0
t0 = time.perf_counter()
b = mm.mremap(a, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, (1 << 45) + 4096)
out["move"] = time.perf_counter() - t0
reads = b + rng.integers(0, size, 20_000_000, dtype=np.uint64)
t0 = time.perf_counter()
mm.access(reads)
out["reads"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def child(code: str, *args: str, tree: Path = REPO) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("PAGETAB_PACK", None)
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=tree,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def baseline_tree(rev: str) -> Path:
    """The tree of ``rev``, extracted and built once under /tmp."""
    sha = subprocess.check_output(["git", "-C", str(REPO), "rev-parse", "--short", rev],
                                  text=True).strip()  # fmt: skip
    tree = Path(f"/tmp/pagetab-baseline-{sha}")
    if not (tree / ".built").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        print(f"building {rev} ({sha}) in {tree} ...", flush=True)
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                       check=True, capture_output=True)  # fmt: skip
        (tree / ".built").touch()
    return tree


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tib", type=int, default=16)
    p.add_argument("--baseline", default="bbc0b63", help="the revision dense work is compared with")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--parts", default="123", help="which of the three parts to run")
    args = p.parse_args()

    if "1" in args.parts:
        big(args.tib)
    if "2" in args.parts:
        uniform()
    if "3" in args.parts and not args.skip_baseline:
        dense(args.baseline, args.rounds)


def big(tib: int) -> None:
    print(f"1. {tib} TiB, x86-64, no THP (target: peak RSS under 8 GiB)")
    print(f"{'step':<22} {'wall s':>8} {'kernel s (est.)':>16} {'PTE tables':>11} "
          f"{'packed':>10} {'expanded':>9} {'PMD tables':>11} {'packed':>7} "
          f"{'peak RSS GiB':>13}")  # fmt: skip
    peak = 0.0
    for r in child(BIG, str(tib)):
        est = f"{r['kernel_s']:.1f}" if r["kernel_s"] is not None else "-"
        print(
            f"{r['step']:<22} {r['seconds']:>8.2f} {est:>16} {r['tables']:>11,} "
            f"{r['packed']:>10,} {r['expanded']:>9,} {r['pmds']:>11,} {r['packed_pmds']:>7,} "
            f"{r['rss_gib']:>13.2f}",
            flush=True,
        )
        peak = max(peak, r["rss_gib"])
    print(f"peak RSS {peak:.2f} GiB: {'met' if peak < 8 else 'MISSED'} (under 8 GiB)\n")


def uniform() -> None:
    r = child(UNIFORM, "3")[0]
    ratio = r["median_ns"] / r["est_ns"]
    print("2. 1 TiB written, PTE path (linux-4.19, 4 KiB off), median of 3 moves")
    print(f"simulated {r['median_ns'] / 1e6:.1f} ms, kernel (est.) {r['est_ns'] / 1e6:.0f} ms: "
          f"{ratio:.4f}x, {'met' if ratio <= 0.01 else 'MISSED'} (at most 0.01x); "
          f"{r['ptes']:,} PTEs moved, {r['expanded']} tables expanded\n")  # fmt: skip


def dense(rev: str, rounds: int) -> None:
    base = baseline_tree(rev)
    print(
        f"3. dense work, {rounds} alternating rounds against {rev} (target: each phase within 5%)"
    )
    runs: dict[str, list[dict]] = {"base": [], "this": []}
    for i in range(rounds):
        for name, tree in (("base", base), ("this", REPO))[:: 1 if i % 2 == 0 else -1]:
            runs[name].append(child(DENSE, tree=tree)[0])
        print(f"  round {i + 1}/{rounds} done", flush=True)
    print(f"{'phase':<8} {rev + ' s':>12} {'this s':>8} {'change':>8}")
    for phase, what in (("writes", "8 M random writes"), ("move", "PTE-path move"),
                        ("reads", "20 M random reads")):  # fmt: skip
        b = statistics.median(x[phase] for x in runs["base"])
        t = statistics.median(x[phase] for x in runs["this"])
        verdict = "met" if t <= b * 1.05 else "MISSED"
        print(f"{phase:<8} {b:>12.3f} {t:>8.3f} {t / b - 1:>+8.1%}  {what}: {verdict}")


if __name__ == "__main__":
    main()
