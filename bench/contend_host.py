"""The concurrent model beside this machine's kernel: mremap on one CPU
while another thread of the process times random reads of a 4 MiB region
on the other CPU, for the PTE, PMD and PUD paths at 1 and 16 GiB.

Host: ``host.measure_contend`` (csrc/probe.c ``probe_contend``): the
mover's mremap time and the latency of every read the reader started while
it ran (two CLOCK_MONOTONIC reads around each). Simulated:
``run_concurrent`` on x86-64 under linux-6.18 (this kernel's rules), two
CPUs, a zero-page region, one thread making as many random reads of a
4 MiB region as the host's reader did, spread over the host's move time
(``think_ns``). Prints the mover's time and the reader's p50/p99/max both
ways, with the errors (simulated / measured). The simulated latency has no
timer in it: the host's p50 is the floor of its measurement (timer and a
read), so the excess of p99 over p50 is printed too.

Usage: python bench/contend_host.py [--sizes 1G,16G] [--repeats 5] [--calibration FILE]
"""

from __future__ import annotations

import argparse
import statistics

import pagetab as pt
from pagetab import host
from pagetab.units import format_size, parse_sizes

MIB = 1 << 20
PATHS = {"PTE": "page", "PMD": "pmd", "PUD": "pud"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=parse_sizes, default=[1 << 30, 16 << 30])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calibration", help="a pagetab calibrate file for the x86-64 costs")
    a = p.parse_args()
    ok, why = host.available()
    if not ok or len(host.pinnable_cpus()) < 2:
        raise SystemExit(f"needs the host probe and two CPUs: {why or 'one CPU'}")
    arch = pt.arch("x86-64", calibration=a.calibration) if a.calibration else "x86-64"
    head = (
        f"{'path':4} {'size':>5}  {'mover ms host':>13} {'sim':>8} {'err':>6}  "
        f"{'p50 ns host':>11} {'sim':>5}  {'p99 ns host':>11} {'sim':>6} {'ratio':>6}  "
        f"{'p99-p50 host':>12} {'sim':>6} {'ratio':>6}  {'max us host':>11} {'sim':>7}"
    )
    print(head)
    for size in a.sizes:
        for name, align in PATHS.items():
            h = host.measure_contend(size, align, 4 * MIB, repeats=a.repeats)
            reads = int(statistics.median(len(x) for x in h.latencies_ns))
            spec = pt.ThreadSpec("outside", "read", accesses=max(reads, 1),
                                 think_ns=h.median_mover_ns / max(reads, 1))  # fmt: skip
            r = pt.run_concurrent(size, arch, "linux-6.18", [spec], cpus=2, populate="read",
                                  dst_align=align, region_size=4 * MIB)  # fmt: skip
            t = r.threads[0]
            hp50, hp99 = h.percentile(50), h.percentile(99)
            hmax = statistics.median(float(x.max()) for x in h.latencies_ns if len(x))
            sp50, sp99 = t.latency_during_ns["p50"], t.latency_during_ns["p99"]
            excess = (sp99 - sp50) / max(hp99 - hp50, 1)
            print(
                f"{name:4} {format_size(size):>5}  {h.median_mover_ns / 1e6:13.3f} "
                f"{r.estimated_ns / 1e6:8.3f} {r.estimated_ns / h.median_mover_ns - 1:+6.0%}  "
                f"{hp50:11.0f} {sp50:5.0f}  {hp99:11.0f} {sp99:6.0f} {sp99 / hp99:6.2f}  "
                f"{hp99 - hp50:12.0f} {sp99 - sp50:6.0f} {excess:6.2f}"
                f"  {hmax / 1e3:11.1f} {t.latency_during_ns['max'] / 1e3:7.1f}"
            )


if __name__ == "__main__":
    main()
