"""``python -m pagetab`` / ``pagetab``: a short demonstration run.

Maps and populates a region, moves it with mremap, and prints what
happened. The full command-line interface is tracked in issue 6.
"""

from __future__ import annotations

import argparse
import sys
import time

import pagetab as pt


def main(argv: list[str] | None = None) -> int:
    """Run the demonstration; returns the process exit code."""
    p = argparse.ArgumentParser(prog="pagetab", description=__doc__)
    p.add_argument("--arch", default="x86-64", choices=pt.archs())
    p.add_argument("--gib", type=int, default=16, help="region size in GiB (default 16)")
    args = p.parse_args(argv)
    if args.gib <= 0:
        p.error("--gib must be > 0")
    mm = pt.AddressSpace(args.arch)
    size = args.gib << 30
    t0 = time.perf_counter()
    addr = mm.mmap(size)
    mm.madvise(addr, size, pt.MADV_POPULATE_WRITE)
    t1 = time.perf_counter()
    print(
        f"{args.arch}: mapped and write-populated {args.gib} GiB at {addr:#x} "
        f"in {(t1 - t0) * 1e3:.1f} ms"
    )
    print(
        f"  page tables: {mm.page_table_bytes / 1024:.0f} kB "
        f"({mm.page_table_bytes / 1024 / args.gib:.0f} kB per GiB), rows per level "
        f"{mm.tables.live_rows()}"
    )
    for v in mm.vmas():
        print("  ", v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
