"""Print the access-speed figure: random accesses over a populated 64 GiB
region on x86-64, one CPU. Target: at least 20 million accesses/s.

Usage: python bench/access_speed.py [--gib 64] [--n 20000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import pagetab as pt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gib", type=int, default=64)
    p.add_argument("--n", type=int, default=20_000_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    size = args.gib << 30
    mm = pt.AddressSpace("x86-64", cpus=1)
    a = mm.mmap(size, addr=1 << 44, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
    rng = np.random.default_rng(0)
    addrs = a + rng.integers(0, size, args.n, dtype=np.uint64)
    rates = []
    st = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        st = mm.access(addrs)
        rates.append(args.n / (time.perf_counter() - t0))
    assert st is not None
    print(f"{args.gib} GiB populated, {args.n:,} random accesses, {args.repeats} runs")
    med = statistics.median(rates) / 1e6
    print(f"median {med:.1f} M accesses/s (min {min(rates) / 1e6:.1f}, "
          f"max {max(rates) / 1e6:.1f}); target >= 20")  # fmt: skip
    print(f"last run: L1 hits {st.l1_hits:,}, L2 hits {st.l2_hits:,}, walks {st.walks:,}, "
          f"faults {st.faults:,}, estimated {st.estimated_ns / 1e6:.1f} ms simulated")  # fmt: skip


if __name__ == "__main__":
    main()
