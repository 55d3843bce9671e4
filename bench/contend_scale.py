"""The concurrent model's scale target: a 64 GiB move with 16 simulated
threads each making 1 M accesses (random reads of a 1 GiB region beside
the moved one), in under 10 s, in at most 1.5x the memory of the plain
move.

Each case runs in its own process (peak RSS is per process): the plain
move (``run_move``, the same region, population and alignment) and the
concurrent run (``run_concurrent``: the traced move, then the threads
replayed with the move and once more without it). Prints the wall times
(median of ``--repeats``), the peak RSS of each and their ratio.

Usage: python bench/contend_scale.py [--gib 64] [--threads 16] [--accesses 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

GIB = 1 << 30


def child(kind: str, gib: int, threads: int, accesses: int, align: str) -> None:
    import pagetab as pt

    t0 = time.perf_counter()
    if kind == "plain":
        pt.run_move(gib * GIB, "x86-64", "linux-6.8", dst_align=align, cpus=threads + 1,
                    touch=0)  # fmt: skip
        extra = {}
    else:
        spec = pt.ThreadSpec("outside", "read", accesses=accesses)
        # the threads work in a 1 GiB region of their own beside the moved
        # one: the comparison is of the model's memory, not of a second heap
        r = pt.run_concurrent(gib * GIB, "x86-64", "linux-6.8", [spec] * threads,
                              dst_align=align, region_size=GIB)  # fmt: skip
        extra = {"accesses": sum(t.stats["accesses"] for t in r.threads),
                 "flushes": r.flushes, "mover_ms": r.estimated_ns / 1e6}  # fmt: skip
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall_s": wall, "rss": rss, **extra}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=int, default=64)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--accesses", type=int, default=1_000_000)
    p.add_argument("--align", default="page", help="dst alignment: page (PTE path), pmd, pud")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.gib, a.threads, a.accesses, a.align)
        return
    runs: dict[str, list[dict[str, float]]] = {"plain": [], "concurrent": []}
    for _ in range(a.repeats):
        for kind in runs:
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--gib", str(a.gib),
                                  "--threads", str(a.threads), "--accesses", str(a.accesses),
                                  "--align", a.align], capture_output=True, text=True,
                                 check=True)  # fmt: skip
            runs[kind].append(json.loads(out.stdout))
    plain, conc = runs["plain"], runs["concurrent"]
    pw = statistics.median(r["wall_s"] for r in plain)
    cw = statistics.median(r["wall_s"] for r in conc)
    prss = statistics.median(r["rss"] for r in plain)
    crss = statistics.median(r["rss"] for r in conc)
    print(
        f"{a.gib} GiB move (dst {a.align}-aligned, x86-64, linux-6.8), {a.threads} threads x "
        f"{a.accesses:,} accesses, median of {a.repeats}:"
    )
    print(f"  plain move:      {pw:6.2f} s, peak RSS {prss / GIB:5.2f} GiB")
    print(
        f"  concurrent run:  {cw:6.2f} s, peak RSS {crss / GIB:5.2f} GiB "
        f"({conc[0]['accesses']:,} accesses, {conc[0]['flushes']:,} flushes, "
        f"mover {conc[0]['mover_ms']:.1f} ms simulated)"
    )
    print(
        f"  target: under 10 s: {'met' if cw < 10 else 'MISSED'} ({cw:.2f} s); memory within "
        f"1.5x: {'met' if crss <= 1.5 * prss else 'MISSED'} ({crss / prss:.2f}x)"
    )


if __name__ == "__main__":
    main()
