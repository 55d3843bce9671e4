"""Print the speed of simulated mremap of a populated region beside the
real kernel's, both measured in this run.

For each path (PTE: linux-4.19 misaligned by 4 KiB; PMD: linux-5.0 PMD
aligned; PUD: linux-5.11 PUD aligned) the region is populated once and
moved back and forth ``--repeats`` times; the median wall time of one
simulated mremap call is set beside the median of this machine's kernel
moving a region of the same size between the same alignments (host
probe, zero-page region: a written 256 GiB region would need 256 GiB of
memory; the kernel moves zero-page and written PTEs alike). The TLB model
is on, with 4 CPUs in mm_cpumask (each has run 4096 random accesses).
Each simulated path runs in its own process so peak RSS is its own.
The target column judges the ratio at 256 GiB; without the host probe the
kernel column is "-" and there is no verdict.
Usage: python bench/move_speed.py [--gib 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from pagetab import host
from pagetab.native import MIN_REPEATS

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

PATHS = {"pte": ("linux-4.19", 4096), "pmd": ("linux-5.0", 2 << 20), "pud": ("linux-5.11", 0)}
#: the targets, for 256 GiB regions: the simulated move takes at most a
#: quarter of the kernel's on the PTE and PMD paths (the PUD path, a few
#: microseconds on both sides, has none)
TARGET_RATIO = {"pte": 0.25, "pmd": 0.25}
TARGET_GIB = 256


def kernel_ns(gib: int, path: str, repeats: int) -> float | None:
    """Median ns of the host kernel's move on ``path``, or None without the probe."""
    if not host.available()[0]:
        return None
    # microsecond moves jitter with the shared machine: repeat them more
    repeats = max(repeats, MIN_REPEATS.get(f"move-{path}", 1))
    off = PATHS[path][1]
    return host.measure_move(gib << 30, "zero", "pud", off, repeats=repeats,
                             verify=False).median_ns  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gib", type=int, nargs="+", default=[256])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    ok, why = host.available()
    if not ok:
        print(f"host probe unavailable ({why}): simulated times only")
    print(f"{'path':4} {'size':>6} {'median':>11} {'min':>11} {'kernel':>11} {'ratio':>7} "
          f"{'target':>7} {'move RSS / tables':>18} {'estimated':>11}")  # fmt: skip
    for gib in args.gib:
        for path, (policy, off) in PATHS.items():
            out = subprocess.check_output(
                [sys.executable, "-c", CHILD, str(gib), policy, str(off), str(args.repeats)]
            )
            r = json.loads(out)
            # after the child has exited: the two never share the cores
            kern = kernel_ns(gib, path, args.repeats)
            ratio = None if kern is None else r["median_ns"] / kern
            target = TARGET_RATIO.get(path) if gib == TARGET_GIB else None
            verdict = ""
            if ratio is not None and target is not None:
                verdict = "ok" if ratio <= target else "MISSED"
            mem = (r["tables"] + max(r["rss_growth"], 0)) / r["tables"]
            kern_text = "-" if kern is None else f"{kern / 1e6:.3f}ms"
            ratio_text = "-" if ratio is None else f"{ratio:.3f}x"
            print(f"{path:4} {gib:>5}G {r['median_ns'] / 1e6:>9.3f}ms {r['min_ns'] / 1e6:>9.3f}ms "
                  f"{kern_text:>11} {ratio_text:>7} {verdict:>7} {mem:>17.2f}x "
                  f"{r['est_ns'] / 1e6:>9.3f}ms")  # fmt: skip


if __name__ == "__main__":
    main()
