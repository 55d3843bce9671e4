"""Print issue 2's scale figures: populate 256 GiB on x86-64.

Each size runs in a fresh child process so that its peak RSS is its own.
Usage: python bench/scale.py [GIB ...]   (default: 1 16 64 256)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

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

KERNEL_KB_PER_GIB = 2056
KERNEL_READ_FAULT_256G_S = 20.0  # shared/DOMAIN.md section 6


def main() -> None:
    sizes = [int(x) for x in sys.argv[1:]] or [1, 16, 64, 256]
    print(f"{'size':>8} {'median s':>9} {'kB/GiB':>8} {'vs kernel':>9} {'peak RSS MiB':>12}")
    for gib in sizes:
        runs = [
            json.loads(subprocess.check_output([sys.executable, "-c", CHILD, str(gib)]))
            for _ in range(3)
        ]
        secs = statistics.median(r["seconds"] for r in runs)
        kbg = runs[0]["pt_bytes"] / 1024 / gib
        rss = max(r["rss_kb"] for r in runs) / 1024
        print(
            f"{gib:>6}G {secs:>9.3f} {kbg:>8.1f} {kbg / KERNEL_KB_PER_GIB - 1:>+8.2%} {rss:>12.0f}"
        )
        if gib == 256:
            print(
                f"  256 GiB: {secs:.3f} s (target < 2 s; the kernel read-faulted it in "
                f"{KERNEL_READ_FAULT_256G_S:.0f} s, {KERNEL_READ_FAULT_256G_S / secs:.0f}x)"
            )


if __name__ == "__main__":
    main()
