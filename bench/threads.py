"""Two address spaces populated from two Python threads run in parallel.

The Cython loops release the GIL and each space has its own lock, so two
threads each populating their own space should take about half the time of
one thread populating both (on a machine with two free cores). Prints the
medians of both ways and their ratio.

Usage: python bench/threads.py [--gib 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import pagetab as pt


def populate(mm: pt.AddressSpace, size: int) -> None:
    a = mm.mmap(size)
    mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
    mm.munmap(a, size)


def one_thread(spaces: list[pt.AddressSpace], size: int) -> float:
    t0 = time.perf_counter()
    for mm in spaces:
        populate(mm, size)
    return time.perf_counter() - t0


def two_threads(spaces: list[pt.AddressSpace], size: int) -> float:
    threads = [threading.Thread(target=populate, args=(mm, size)) for mm in spaces]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--gib", type=int, default=16, help="GiB populated per space")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    size = args.gib << 30
    spaces = [pt.AddressSpace("x86-64"), pt.AddressSpace("x86-64")]
    serial, parallel = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine
        serial.append(one_thread(spaces, size))
        parallel.append(two_threads(spaces, size))
    s, q = statistics.median(serial), statistics.median(parallel)
    print(f"two spaces of {args.gib} GiB each, MADV_POPULATE_WRITE, {args.repeats} runs")
    print(f"one thread, both spaces:  median {s * 1e3:8.1f} ms")
    print(f"two threads, one each:    median {q * 1e3:8.1f} ms")
    print(f"speed-up {s / q:.2f}x (2.0x is two cores fully used)")


if __name__ == "__main__":
    main()
