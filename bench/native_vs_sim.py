"""Print the simulated/native ratio table (populate, moves, access) from one run.

Zero-page regions (MADV_POPULATE_READ, as pagetab.host measures), x86-64, one
CPU, linux-6.8 policy against this machine's kernel; medians of
``--repeats`` back-and-forth moves. Targets: at most 0.25x native on the
PTE and PMD paths and on populate, at most 2x on the PUD path; the access
group (random reads over a zero-page region, one CPU) has no target.
Usage: python bench/native_vs_sim.py [--gib 1 16 64] [--repeats 5]
       python bench/native_vs_sim.py --from-json out.json   (after
       pytest bench/test_bench_native.py --benchmark-json out.json)
"""

from __future__ import annotations

import argparse
import json

from pagetab import host
from pagetab.native import PATHS, Comparison, compare_access, compare_move, compare_populate

TARGET = {"populate": 0.25, "move-pte": 0.25, "move-pmd": 0.25, "move-pud": 2.0, "access": None}


def header() -> None:
    print(f"{'group':9} {'size':>6} {'simulated':>12} {'native':>12} {'ratio':>8} {'target':>7}")


def row(c: Comparison) -> None:
    """One line of the table; the target column says ok or MISSED."""
    native = "-" if c.native_ns is None else f"{c.native_ns / 1e6:.3f}ms"
    ratio = "-" if c.ratio is None else f"{c.ratio:.3f}x"
    target = TARGET[c.group]
    mark = "" if c.ratio is None or target is None else ("ok" if c.ratio <= target else "MISSED")
    print(f"{c.group:9} {c.size >> 30:>5}G {c.sim_ns / 1e6:>10.3f}ms {native:>12} {ratio:>8} "
          f"{mark:>7}")  # fmt: skip


def from_benchmark_json(path: str) -> list[Comparison]:
    """The comparisons test_bench_native.py stored in extra_info."""
    with open(path) as f:
        data = json.load(f)
    out = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "sim_ns" in info:
            out.append(Comparison(b["group"], info["size"], info["sim_ns"], info["native_ns"]))
    order = [*TARGET]
    return sorted(out, key=lambda c: (c.size, order.index(c.group)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gib", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--accesses", type=int, default=1_000_000,
                   help="random reads in the access group")  # fmt: skip
    p.add_argument("--from-json", metavar="FILE",
                   help="print the table from a pytest --benchmark-json file of "
                        "bench/test_bench_native.py instead of measuring")  # fmt: skip
    args = p.parse_args()
    if args.from_json:
        header()
        for c in from_benchmark_json(args.from_json):
            row(c)
        return
    ok, why = host.available()
    if not ok:
        print(f"host probe unavailable ({why}): simulated times only")
    rows = []
    header()
    for gib in args.gib:
        size = gib << 30
        results = [compare_populate(size, min(args.repeats, 3))]
        results += [compare_move(g, size, args.repeats) for g in PATHS]
        results.append(compare_access(size, args.accesses, min(args.repeats, 3)))
        for c in results:
            row(c)
            rows.append({"group": c.group, "gib": gib, "sim_ns": c.sim_ns,
                         "native_ns": c.native_ns, "ratio": c.ratio})  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
