"""``python -m pagetab`` / ``pagetab``: compare kernel policies on one move.

Maps and write-populates a region, reads every page of it from 4 CPUs (so
their TLBs hold it), moves it with mremap(MAYMOVE|FIXED) under every preset
policy (PMD-aligned and misaligned by one page), and prints what each did:
entries moved, TLB flushes, unsafe entries and the stale TLB entries
behind them, the estimated kernel time, and the simulation's own wall
time. The full command line is tracked in issue 6.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import pagetab as pt

FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED


def compare(arch: str, gib: int, misalign: bool) -> list[pt.MoveStats]:
    """Move a write-populated region under every preset; one MoveStats each."""
    a = pt.arch(arch)
    size = gib << 30
    src = 1 << 44
    dst = (1 << 45) + (a.page_size if misalign else a.pmd_size)
    out = []
    pages = np.arange(src, src + size, a.page_size, dtype=np.uint64)
    for name in pt.policies():
        mm = pt.AddressSpace(arch, cpus=4, policy=name)
        mm.mmap(size, addr=src, flags=FIX)
        mm.madvise(src, size, pt.MADV_POPULATE_WRITE)
        for cpu in range(4):
            mm.access(pages, cpu=cpu)
        mm.mremap(src, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, dst)
        assert mm.last_move is not None
        out.append(mm.last_move)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; returns the process exit code."""
    p = argparse.ArgumentParser(prog="pagetab", description=__doc__)
    p.add_argument("--arch", default="x86-64", choices=pt.archs())
    p.add_argument("--gib", type=int, default=1, help="region size in GiB (default 1)")
    args = p.parse_args(argv)
    if not 1 <= args.gib <= 1024:
        p.error("--gib must be in 1..1024")
    for misalign in (False, True):
        where = "misaligned by one page" if misalign else "PMD aligned"
        print(f"\n{args.arch}, {args.gib} GiB write-populated, destination {where}")
        print(f"{'policy':16} {'ptes':>9} {'pmds':>6} {'puds':>5} {'flushes':>8} {'unsafe':>8} "
              f"{'stale TLB':>9} {'est. us':>9} {'vs 4.19':>8} {'sim ms':>7}")  # fmt: skip
        results = compare(args.arch, args.gib, misalign)
        base = next(st.estimated_ns for st in results if st.policy == "linux-4.19")
        for st in results:
            flag = "  UNSAFE" if st.unsafe_entries else ""
            print(f"{st.policy:16} {st.ptes_moved:>9} {st.normal_pmds_moved:>6} "
                  f"{st.normal_puds_moved:>5} {st.flush_calls:>8} {st.unsafe_entries:>8} "
                  f"{st.unsafe_windows:>9} {st.estimated_ns / 1e3:>9.1f} "
                  f"{base / st.estimated_ns:>7.1f}x {st.wall_ns / 1e6:>7.2f}{flag}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
