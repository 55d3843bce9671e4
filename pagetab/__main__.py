"""``python -m pagetab`` / ``pagetab``: compare kernel policies on one move.

Subcommands: ``archs``, ``policies``, ``move``, ``reproduce``, and
``compare`` (the default), which maps and write-populates a region,
reads every page of it from 4 CPUs (so their TLBs hold it), moves it with
mremap(MAYMOVE|FIXED) under every preset policy (PMD-aligned and misaligned
by one page), and prints what each did: entries moved, TLB flushes, unsafe
entries and the stale TLB entries behind them, the estimated kernel time,
and the simulation's own wall time. ``calibrate`` fits the x86-64 costs to
this machine's kernel; ``host`` times the real kernel beside the simulator.
The full command line is tracked in issue 6.
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


def _compare(args: argparse.Namespace) -> int:
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


def _host_unavailable(command: str) -> bool:
    """Say so (exit status 1 follows) when the host probe cannot run here."""
    from pagetab import host

    ok, why = host.available()
    if not ok:
        print(f"pagetab {command}: the host probe is unavailable: {why}", file=sys.stderr)
    return not ok


def _calibrate(args: argparse.Namespace) -> int:
    from pagetab import calibrate

    if _host_unavailable("calibrate"):
        return 1
    calibrate.calibrate(args.out, repeats=args.repeats)
    print(f"wrote {args.out}; held-out check:")
    calibrate.validate(pt.arch("x86-64", calibration=args.out), repeats=args.repeats)
    return 0


def _host(args: argparse.Namespace) -> int:
    from pagetab.native import PATHS, compare_move

    if _host_unavailable("host"):
        return 1
    print(f"this kernel, {args.gib} GiB zero-page region, mremap(MAYMOVE|FIXED), median:")
    for group in PATHS:
        c = compare_move(group, args.gib << 30, args.repeats)
        assert c.native_ns is not None and c.ratio is not None
        print(f"  {group:9} native {c.native_ns / 1e3:>10.1f} us   simulated "
              f"{c.sim_ns / 1e3:>10.1f} us   ({c.ratio:.2f}x)")  # fmt: skip
    return 0


def parse_size(text: str) -> int:
    """Bytes from "4K", "2M", "1G", "1T" or a plain number (argparse type)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b")
    mult = units.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    try:
        n = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 4K, 2M, 1G, 1T") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"size must be > 0, not {text!r}")
    return n * mult


def _archs(args: argparse.Namespace) -> int:
    for name in pt.archs():
        a = pt.arch(name)
        print(f"{name:20} {a.description}")
    return 0


def _policies(args: argparse.Namespace) -> int:
    for name in pt.policies():
        p = pt.policy(name)
        print(f"{name:16} {p.description}\n{'':16} source: {p.source}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from pagetab.reproduce import reproduce_2018

    print(f"{'case':58} {'simulated':>10} {'published':>10} {'error':>8}  claim [source]")
    for f in reproduce_2018():
        pub = "-" if f.published is None else f"{f.published:.0f}x"
        err = "-" if f.error is None else f"{f.error:+.0%}"
        print(f"{f.case:58} {f.simulated:>9.1f}x {pub:>10} {err:>8}  {f.claim} [{f.source}]")
    return 0


def _move(args: argparse.Namespace) -> int:
    import json

    a = pt.arch(args.arch)
    offset = {"pud": 0, "pmd": a.pmd_size, "page": a.page_size}[args.align]
    mm = pt.AddressSpace(a, cpus=args.cpus, policy=args.policy,
                         thp="always" if args.populate == "thp" else "madvise")  # fmt: skip
    src = 1 << 44
    if args.size % a.page_size:
        print(f"pagetab move: --size must be a multiple of {a.page_size}", file=sys.stderr)
        return 2
    mm.mmap(args.size, addr=src, flags=FIX)
    advice = pt.MADV_POPULATE_READ if args.populate == "read" else pt.MADV_POPULATE_WRITE
    mm.madvise(src, args.size, advice)
    mm.mremap(src, args.size, args.size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, (1 << 45) + offset)
    st = mm.last_move
    assert st is not None
    if args.json:
        print(json.dumps(st.as_dict(), indent=1, default=str))
        return 0
    print(f"{a.name}, {st.policy}, {args.size:#x} bytes, {args.populate}-populated, "
          f"destination {args.align} aligned")  # fmt: skip
    for k in ("ptes_moved", "normal_pmds_moved", "huge_pmds_moved", "normal_puds_moved",
              "huge_pmds_split", "flush_calls", "unsafe_entries", "unsafe_windows"):  # fmt: skip
        print(f"  {k:18} {getattr(st, k)}")
    print(f"  {'locks':18} {st.lock_acquired}")
    print(f"  {'flush ops':18} { {k: v for k, v in st.flush_ops.items() if v} }")
    print(f"  {'estimated':18} {st.estimated_ns / 1e3:.1f} us {st.breakdown}")
    print(f"  {'simulated in':18} {st.wall_ns / 1e6:.2f} ms")
    return 1 if st.unsafe_entries and args.fail_unsafe else 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the process exit code (2 on bad usage)."""
    try:
        return _main(argv)
    except BrokenPipeError:  # `pagetab archs | head`
        sys.stderr.close()
        return 0


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog="pagetab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command")
    cmp_ = sub.add_parser("compare", help="compare every policy on one move (the default)")
    for q in (p, cmp_):
        q.add_argument("--arch", default="x86-64", choices=pt.archs())
        q.add_argument("--gib", type=int, default=1, help="region size in GiB (default 1)")
    cal = sub.add_parser("calibrate", help="fit the x86-64 costs to this machine's kernel")
    cal.add_argument("--out", default="pagetab-calibration.json", help="file to write")
    cal.add_argument("--repeats", type=int, default=5)
    h = sub.add_parser("host", help="time the real kernel's moves beside the simulator")
    h.add_argument("--gib", type=int, default=1)
    h.add_argument("--repeats", type=int, default=5)
    sub.add_parser("archs", help="list the architecture profiles")
    sub.add_parser("policies", help="list the kernel policies with their sources")
    sub.add_parser("reproduce", help="the 2018 findings beside the published numbers")
    mv = sub.add_parser("move", help="one move: counts, locks, flushes, estimated time")
    mv.add_argument("--arch", default="x86-64", choices=pt.archs())
    mv.add_argument("--policy", default="linux-6.8", choices=pt.policies())
    mv.add_argument("--size", type=parse_size, default=1 << 30, help="e.g. 4K, 2M, 1G, 64G")
    mv.add_argument("--align", default="pmd", choices=("pud", "pmd", "page"),
                    help="destination alignment (the source is PUD aligned)")  # fmt: skip
    mv.add_argument("--populate", default="write", choices=("write", "read", "thp"))
    mv.add_argument("--cpus", type=int, default=1, choices=range(1, 257), metavar="1..256")
    mv.add_argument("--json", action="store_true", help="print the MoveStats as JSON")
    mv.add_argument("--fail-unsafe", action="store_true", help="exit 1 if the move is unsafe")
    args = p.parse_args(argv)
    if not 1 <= getattr(args, "gib", 1) <= 1024:
        p.error("--gib must be in 1..1024")
    if getattr(args, "repeats", 1) < 1:
        p.error("--repeats must be >= 1")
    if args.command == "calibrate":
        return _calibrate(args)
    if args.command == "host":
        return _host(args)
    commands = {"archs": _archs, "policies": _policies, "reproduce": _reproduce, "move": _move}
    if args.command in commands:
        return commands[args.command](args)
    return _compare(args)


if __name__ == "__main__":
    sys.exit(main())
