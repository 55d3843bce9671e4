"""UFFDIO_MOVE's targets, printed from one run on this machine.

1. Speed: one UFFDIO_MOVE of 1 GiB of written 4K pages (after the
   mremap(MREMAP_DONTUNMAP) that empties the destination), on this kernel
   and simulated (x86-64, the policy of this kernel's version), interleaved
   round by round, medians; target: simulated under 0.25x the kernel.
2. The batched flush's saving (linux-6.18, 50944692052b) over per-page
   ptep_clear_flush (linux-6.17) on x86-64 and arm64-4k, with its
   breakdown, for the default compaction cycle (256 MiB heap, 50% live in
   runs of 16 pages, 4 CPUs running the process) and for the 1 GiB move;
   beside the patch's published figures (over 40% of move_pages_pte() in
   ptep_clear_flush before it; GC compaction time cut by over 50%).
3. The compaction cycle on this kernel beside its estimate, with the error
   (``pagetab host --gc``).

Usage: python bench/uffd_targets.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import pagetab as pt
from pagetab import host
from pagetab.compaction import run_gc
from pagetab.native import compare_gc_cycle

GIB = 1 << 30
PUD = 1 << 30


def sim_move_1g(policy: str) -> tuple[int, pt.userfaultfd.UffdMoveStats]:
    """Wall ns of one simulated UFFDIO_MOVE of 1 GiB, and its record."""
    mm = pt.AddressSpace("x86-64", policy=policy, thp="never")
    heap, space = 1 << 44, (1 << 44) + 2 * GIB
    mm.mmap(GIB, heap, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(heap, GIB, pt.MADV_POPULATE_WRITE)
    mm.mremap(heap, GIB, GIB, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED | pt.MREMAP_DONTUNMAP, space)
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    u.register(heap, GIB, pt.UFFDIO_REGISTER_MODE_MISSING)
    t0 = time.perf_counter_ns()
    u.move(heap, space, GIB)
    ns = time.perf_counter_ns() - t0
    assert u.last_move is not None
    return ns, u.last_move


def speed(rounds: int) -> None:
    policy = "linux-6.18" if host.uffd_move_batched() else "linux-6.17"
    ok, why = host.uffd_available()
    print(f"1. one UFFDIO_MOVE of 1 GiB of written 4K pages, x86-64 {policy}, "
          f"median of {rounds} interleaved rounds")  # fmt: skip
    sims, natives = [], []
    for _ in range(rounds):
        sims.append(sim_move_1g(policy)[0])
        if ok:
            natives.append(host.measure_gc_cycle(GIB, [[0, 0, GIB // 4096]], 1).moves_ns[0])
    s = statistics.median(sims) / 1e6
    if not ok:
        print(f"   simulated {s:.2f} ms; this kernel cannot run it: {why}")
        return
    n = statistics.median(natives) / 1e6
    print(f"   kernel {n:.2f} ms, simulated {s:.2f} ms: {s / n:.3f}x "
          f"({'ok' if s < 0.25 * n else 'MISSED'}, target < 0.25x)")  # fmt: skip


def saving() -> None:
    print("2. the batched flush (linux-6.18) against one flush per page (linux-6.17)")
    print(f"   {'case':26} {'arch':9} {'per-page us':>12} {'batched us':>11} {'saving':>7}  "
          f"{'flush share before':>18}  breakdown per-page -> batched (us)")  # fmt: skip
    cases = {
        "compaction, 4 CPUs": lambda a, p: run_gc(arch=a, policy=p),
        "compaction, 1 CPU": lambda a, p: run_gc(arch=a, policy=p, cpus=1, touch=0),
    }
    for name, run in cases.items():
        for a in ("x86-64", "arm64-4k"):
            before, after = run(a, "linux-6.17"), run(a, "linux-6.18")
            flush_share = before.flush_ns / before.uffd_move_ns
            parts = ", ".join(f"{k} {before.breakdown[k] / 1e3:.0f}->{after.breakdown[k] / 1e3:.0f}"
                              for k in before.breakdown if before.breakdown[k])  # fmt: skip
            print(f"   {name:26} {a:9} {before.uffd_move_ns / 1e3:>12.0f} "
                  f"{after.uffd_move_ns / 1e3:>11.0f} "
                  f"{1 - after.uffd_move_ns / before.uffd_move_ns:>7.0%}  {flush_share:>18.0%}  "
                  f"{parts}")  # fmt: skip
    print(
        "   published (arm64 Android, 50944692052b's message): over 40% of move_pages_pte() "
        "in ptep_clear_flush before; GC compaction time cut by over 50%"
    )


def cycle(rounds: int) -> None:
    if not host.uffd_available()[0]:
        print("3. the compaction cycle on this kernel: userfaultfd unavailable here")
        return
    print(f"3. the compaction cycle (256 MiB heap) on this kernel beside its estimate, "
          f"median of {rounds}")  # fmt: skip
    for what, ip in (("one call per run", None), ("one call per page", 1)):
        c = compare_gc_cycle(256 << 20, ioctl_pages=ip, repeats=rounds)
        low, high = c.est_moves_range
        print(f"   {what:18} {c.ioctls:6} calls: kernel {(c.native_moves_ns or 0) / 1e3:8.0f} us, "
              f"estimated {c.est_moves_ns / 1e3:8.0f} us ({low / 1e3:.0f}-{high / 1e3:.0f}), "
              f"error {(c.error or 0):+.0%}; simulated in {c.sim_ns / 1e3:.0f} us "
              f"({c.ratio or 0:.2f}x the kernel)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"this kernel: {platform.release()}, UFFDIO_MOVE "
          f"{'batched (6.18+)' if host.uffd_move_batched() else 'per page'}")  # fmt: skip
    speed(args.rounds)
    saving()
    cycle(args.rounds)


if __name__ == "__main__":
    main()
