"""Print issue 3's speed figures: simulated mremap of a populated region.

For each path (PTE: linux-4.19 misaligned by 4 KiB; PMD: linux-5.0 PMD
aligned; PUD: linux-5.11 PUD aligned) the region is populated once and
moved back and forth ``--repeats`` times; the median wall time of one
mremap call is compared with the real kernel's median on these machines
(shared/DOMAIN.md section 6). The TLB model is on, with 4 CPUs in
mm_cpumask (each has run 4096 random accesses). Each path runs in its own
process so peak RSS is its own. Usage: python bench/move_speed.py [--gib 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, statistics, sys
from pagetab.native import PingPong
gib, policy, off, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# write-populated; 4 CPUs run the process (mm_cpumask), each with a warm TLB
pp = PingPong(gib << 30, off, policy, cpus=4, write=True, touch=4)
mm = pp.mm
tables = mm.page_table_bytes
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
times = pp.times(repeats)
st = mm.last_move
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"median_ns": statistics.median(times), "min_ns": min(times),
                  "est_ns": st.estimated_ns,
                  "tables": tables, "rss_growth": rss1 - rss0,
                  "ptes": st.ptes_moved, "pmds": st.normal_pmds_moved,
                  "puds": st.normal_puds_moved, "unsafe": st.unsafe_windows}))
"""

# shared/DOMAIN.md section 6: the real kernel on these machines, median
KERNEL_NS = {
    "pte": {1: 3.8e6, 16: 59e6, 256: 1.0e9},
    "pmd": {1: 112e3, 16: 1.76e6, 256: 27e6},
    "pud": {1: 5e3, 16: 11e3, 256: 49e3},
}
PATHS = {"pte": ("linux-4.19", 4096), "pmd": ("linux-5.0", 2 << 20), "pud": ("linux-5.11", 0)}
# issue 3's targets for 256 GiB
TARGET_NS = {"pte": 0.25e9, "pmd": 7e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gib", type=int, nargs="+", default=[256])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    print(f"{'path':4} {'size':>6} {'median':>11} {'min':>11} {'kernel':>10} {'ratio':>7} "
          f"{'target':>9} {'move RSS / tables':>18} {'estimated':>11}")  # fmt: skip
    for gib in args.gib:
        for path, (policy, off) in PATHS.items():
            out = subprocess.check_output(
                [sys.executable, "-c", CHILD, str(gib), policy, str(off), str(args.repeats)]
            )
            r = json.loads(out)
            kern = KERNEL_NS[path].get(gib)
            ratio = f"{r['median_ns'] / kern:.3f}x" if kern else "-"
            target = TARGET_NS.get(path) if gib == 256 else None
            ok = "" if target is None else ("ok" if r["median_ns"] <= target else "MISSED")
            mem = (r["tables"] + max(r["rss_growth"], 0)) / r["tables"]
            print(f"{path:4} {gib:>5}G {r['median_ns'] / 1e6:>9.3f}ms {r['min_ns'] / 1e6:>9.3f}ms "
                  f"{(kern or 0) / 1e6:>8.3f}ms {ratio:>7} {ok:>9} {mem:>17.2f}x "
                  f"{r['est_ns'] / 1e6:>9.3f}ms")  # fmt: skip


if __name__ == "__main__":
    main()
