"""Print the simulated/native ratio table of issue 5 from one run.

Zero-page regions (as shared/DOMAIN.md section 6 measured), x86-64, one
CPU, linux-6.8 policy against this machine's kernel; medians of
``--repeats`` back-and-forth moves. Targets: at most 0.25x native on the
PTE and PMD paths and on populate, at most 2x on the PUD path.
Usage: python bench/native_vs_sim.py [--gib 1 16 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json

from pagetab import host
from pagetab.native import PATHS, compare_move, compare_populate

TARGET = {"populate": 0.25, "move-pte": 0.25, "move-pmd": 0.25, "move-pud": 2.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gib", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args()
    ok, why = host.available()
    if not ok:
        print(f"host probe unavailable ({why}): simulated times only")
    rows = []
    print(f"{'group':9} {'size':>6} {'simulated':>12} {'native':>12} {'ratio':>8} {'target':>7}")
    for gib in args.gib:
        size = gib << 30
        results = [compare_populate(size, min(args.repeats, 3))]
        results += [compare_move(g, size, args.repeats) for g in PATHS]
        for c in results:
            native = "-" if c.native_ns is None else f"{c.native_ns / 1e6:.3f}ms"
            ratio = "-" if c.ratio is None else f"{c.ratio:.3f}x"
            ok_mark = "" if c.ratio is None else ("ok" if c.ratio <= TARGET[c.group] else "MISSED")
            print(f"{c.group:9} {gib:>5}G {c.sim_ns / 1e6:>10.3f}ms {native:>12} {ratio:>8} "
                  f"{ok_mark:>7}")  # fmt: skip
            rows.append({"group": c.group, "gib": gib, "sim_ns": c.sim_ns,
                         "native_ns": c.native_ns, "ratio": c.ratio})  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
