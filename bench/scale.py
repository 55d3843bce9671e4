"""Print the scale figures: populate up to 256 GiB on x86-64, beside the
real kernel populating the same size in this run.

The simulated side is mmap + MADV_POPULATE_WRITE, median of 3, each in a
fresh child process so that its peak RSS is its own (target: 256 GiB in
under 2 s). The kernel side (host probe, once per size) is
MADV_POPULATE_READ of a zero-page region of the same size: its time, and
the page tables it allocated (VmPTE growth), which the simulator's page
tables per GiB are compared with (4K pages: one PTE table per 2 MiB either
way). Without the host probe the kernel columns are "-".
Usage: python bench/scale.py [GIB ...]   (default: 1 16 64 256)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from pagetab import host

CHILD = r"""
import json, resource, sys, time
import pagetab as pt
gib = int(sys.argv[1])
size = gib << 30
t0 = time.perf_counter()
mm = pt.AddressSpace("x86-64")
a = mm.mmap(size)
mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "pt_bytes": mm.page_table_bytes,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    sizes = [int(x) for x in sys.argv[1:]] or [1, 16, 64, 256]
    ok, why = host.available()
    if not ok:
        print(f"host probe unavailable ({why}): simulated figures only")
    print(f"{'size':>8} {'median s':>9} {'kB/GiB':>8} {'kernel s':>9} {'kernel kB/GiB':>13} "
          f"{'tables vs kernel':>16} {'peak RSS MiB':>12}")  # fmt: skip
    for gib in sizes:
        runs = [
            json.loads(subprocess.check_output([sys.executable, "-c", CHILD, str(gib)]))
            for _ in range(3)
        ]
        secs = statistics.median(r["seconds"] for r in runs)
        kbg = runs[0]["pt_bytes"] / 1024 / gib
        rss = max(r["rss_kb"] for r in runs) / 1024
        k_secs = k_kbg_text = diff = "-"
        if ok:
            ns, tables = host.populate_tables(gib << 30)
            k_kbg = tables / 1024 / gib
            k_secs, k_kbg_text, diff = f"{ns / 1e9:.3f}", f"{k_kbg:.1f}", f"{kbg / k_kbg - 1:+.2%}"
        print(f"{gib:>6}G {secs:>9.3f} {kbg:>8.1f} {k_secs:>9} {k_kbg_text:>13} {diff:>16} "
              f"{rss:>12.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
