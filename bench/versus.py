"""This tree's speed beside earlier commits', measured in one run, interleaved.

Each revision given is built from git into its own directory (``pip
install --no-deps --target``, an isolated build) and every figure is
measured in a fresh process per revision, round after round, so that all
of them see the same machine. The figures (the median over the rounds of
each round's median):

- ``pmd64``: a write-populated 64 GiB region moved on the PMD path
  (linux-5.0, PMD-aligned destination; 4 CPUs in mm_cpumask with warm
  TLBs), ms per mremap call;
- ``pte64``: the same on the PTE path (linux-4.19, destination 4 KiB past
  a PMD boundary), ms;
- ``access``: 20 M random reads over a populated 64 GiB region, one CPU,
  millions of accesses per second;
- ``pud1``: one 1 GiB PUD-path mremap call (linux-6.8), us; and beside it
  this machine's kernel making the same call (the host probe, zero-page
  region), when the probe can run.

Usage: python bench/versus.py [--rev d8eb50a --rev da5820b] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, statistics, sys, time
import numpy as np
import pagetab as pt
from pagetab.native import PingPong
what, n = sys.argv[1], int(sys.argv[2])
G = 1 << 30
if what in ("pmd64", "pte64"):
    policy, off = ("linux-5.0", 2 << 20) if what == "pmd64" else ("linux-4.19", 4096)
    pp = PingPong(64 * G, off, policy, cpus=4, write=True, touch=4)
    out = statistics.median(pp.times(n)) / 1e6
elif what == "access":
    mm = pt.AddressSpace("x86-64", cpus=1)
    a = mm.mmap(64 * G)
    mm.madvise(a, 64 * G, pt.MADV_POPULATE_READ)
    addrs = a + np.random.default_rng(0).integers(0, 64 * G, 20_000_000, dtype=np.uint64)
    runs = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        mm.access(addrs)
        runs.append(len(addrs) / ((time.perf_counter_ns() - t0) / 1e9) / 1e6)
    out = statistics.median(runs)
else:
    A, B = 1 << 40, 1 << 41
    mm = pt.AddressSpace("x86-64", cpus=1, policy="linux-6.8")
    mm.mmap(G, addr=A, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(A, G, pt.MADV_POPULATE_WRITE)
    flags = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
    runs = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        for i in range(500):
            mm.mremap(A, G, G, flags, B)
            mm.mremap(B, G, G, flags, A)
        runs.append((time.perf_counter_ns() - t0) / 1000 / 1e3)
    assert mm.last_move.normal_puds_moved == 1
    out = statistics.median(runs)
print(json.dumps(out))
"""

KERNEL = r"""
import json
from pagetab import host
print(json.dumps(host.measure_move(1 << 30, "zero", "pud", 0, repeats=201,
                                   verify=False).median_ns / 1e3))
"""

FIGURES = {"pmd64": ("ms", 3), "pte64": ("ms", 1), "access": ("M/s", 3), "pud1": ("us", 7)}


def build(rev: str, root: str, into: str) -> str:
    """``rev`` of the repository at ``root``, built and installed under ``into``."""
    src = os.path.join(into, f"src-{rev}")
    target = os.path.join(into, f"lib-{rev}")
    if rev == "HEAD+":  # the working tree as it is
        src = root
    else:
        subprocess.run(["git", "-C", root, "worktree", "add", "--detach", "-f", src, rev],
                       check=True, capture_output=True)  # fmt: skip
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        target, src], check=True)  # fmt: skip
    finally:
        if src != root:
            subprocess.run(["git", "-C", root, "worktree", "remove", "--force", src],
                           check=False, capture_output=True)  # fmt: skip
    return target


def measure(lib: str, what: str, n: int) -> float:
    """One figure from the build installed at ``lib``, in a fresh process."""
    # one OpenBLAS thread: the simulator does no BLAS work, and OpenBLAS's
    # idle threads spin on this 2-core machine after numpy's first call
    env = {**os.environ, "PYTHONPATH": lib, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.check_output([sys.executable, "-c", CHILD, what, str(n)], env=env,
                                  cwd=tempfile.gettempdir())  # fmt: skip
    return float(json.loads(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", action="append", help="a revision to compare (repeatable); "
                   "default d8eb50a and da5820b")  # fmt: skip
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", choices=list(FIGURES), action="append")
    args = p.parse_args()
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    revs = [*(args.rev or ["d8eb50a", "da5820b"]), "HEAD+"]
    figures = args.only or list(FIGURES)
    with tempfile.TemporaryDirectory() as tmp:
        libs = {}
        for rev in revs:
            print(f"building {rev} ...", file=sys.stderr, flush=True)
            libs[rev] = build(rev, root, tmp)
        got: dict[tuple[str, str], list[float]] = {}
        kernel: list[float] = []
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            for what in figures:
                for rev in revs:
                    got.setdefault((what, rev), []).append(
                        measure(libs[rev], what, FIGURES[what][1])
                    )
                if what == "pud1":
                    try:
                        kernel.append(float(json.loads(subprocess.check_output(
                            [sys.executable, "-c", KERNEL], env={**os.environ,
                            "PYTHONPATH": libs["HEAD+"]}, stderr=subprocess.DEVNULL))))  # fmt: skip
                    except subprocess.CalledProcessError:
                        pass  # no host probe here
    names = [("this tree" if r == "HEAD+" else r) for r in revs]
    print(f"{'figure':8} {'unit':4} " + " ".join(f"{n:>10}" for n in names) + "  kernel")
    for what in figures:
        unit = FIGURES[what][0]
        cells = [f"{statistics.median(got[what, r]):10.3f}" for r in revs]
        k = f"{statistics.median(kernel):7.2f}" if what == "pud1" and kernel else "      -"
        print(f"{what:8} {unit:4} " + " ".join(cells) + " " + k)
    print(
        f"(median of {args.rounds} interleaved rounds; each round a fresh process per "
        "revision and figure)"
    )


if __name__ == "__main__":
    main()
