"""Time one 1 GiB PUD-path mremap call through the public API, beside the kernel's.

A write-populated 1 GiB region on x86-64 (one CPU, linux-6.8) moved back
and forth between two PUD-aligned addresses: one PUD entry moves, so the
call is bookkeeping. Prints the minimum and the median over ``--repeats``
rounds of the mean of 1000 calls, for the locked facade (``mm.mremap``,
the loop's own Python overhead included), ``pagetab.mremap.do_mremap``
called directly (the same work without the space's lock), and this
machine's kernel doing the same move (pagetab.host: a 1 GiB zero-page
region, each mremap timed in C around the syscall; the median of 1000
calls), the three interleaved round by round so that all see the same
machine. Target: the facade's call no slower than the kernel's.

Usage: python bench/mremap_call.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import pagetab as pt
from pagetab import host
from pagetab.mremap import do_mremap

G = 1 << 30
A, B = 1 << 40, 1 << 41


def per_call_us(call: Callable[[int, int], object], n: int = 1000) -> float:
    """Mean microseconds of ``n`` back-and-forth calls."""
    t0 = time.perf_counter_ns()
    for i in range(n):
        if i % 2 == 0:
            call(A, B)
        else:
            call(B, A)
    return (time.perf_counter_ns() - t0) / n / 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    mm = pt.AddressSpace("x86-64", cpus=1, policy="linux-6.8")
    mm.mmap(G, addr=A, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(A, G, pt.MADV_POPULATE_WRITE)
    flags = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
    native_ok, why = host.available()
    facade, direct, kernel = [], [], []
    for _ in range(args.repeats):  # interleaved: all see the same machine
        facade.append(per_call_us(lambda s, d: mm.mremap(s, G, G, flags, d)))
        direct.append(per_call_us(lambda s, d: do_mremap(mm.mm_struct, s, G, G, flags, d)))
        if native_ok:
            kernel.append(host.measure_move(G, "zero", "pud", "pud", repeats=1000,
                                            verify=False).median_ns / 1e3)  # fmt: skip
    assert mm.last_move is not None and mm.last_move.normal_puds_moved == 1
    print(f"1 GiB PUD-path mremap call, x86-64, {args.repeats} rounds of 1000 calls")
    rows = [("mm.mremap (locked)", facade), ("do_mremap (no lock)", direct)]
    rows += [("kernel (this machine)", kernel)] if kernel else []
    for name, xs in rows:
        print(f"{name:22} min {min(xs):6.2f} us  median {statistics.median(xs):6.2f} us")
    if not kernel:
        print(f"kernel: not measured ({why})")
        return
    ratio = statistics.median(facade) / statistics.median(kernel)
    verdict = "ok" if ratio <= 1 else "MISSED"
    print(f"facade / kernel (medians): {ratio:.2f}x  (target <= 1.00x: {verdict})")


if __name__ == "__main__":
    main()
