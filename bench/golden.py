"""Every result a refactoring must leave unchanged, as one JSON document.

Prints (or writes with ``-o``) the default comparison's records, ``pagetab
reproduce --json``, a fixed grid of ``run_concurrent`` and ``run_gc`` runs,
one traced move's counters and events, and a set of random userfaultfd and
mremap scenarios' outcomes and final pages, with every wall-time field
masked. Two builds agree when the outputs are byte-identical:

    python bench/golden.py --check bench/golden.json.gz

prints ``identical`` (exit 0) or the first paths that differ (exit 1).
``bench/golden.json.gz`` was the output of da5820b, the commit before the
redesign of the upper layers began, until the source's unmap after a move
gained tlb_finish_mmu's flush of the freed page tables (the commit that
adds ``unmap_flushes``), which moved results on purpose and re-generated
it, as did the commit that confined moves of several VMAs to 6.17 and
later (``Policy.multi_vma_move``), and the one that added linux-6.19 and
the counter ``batched_pending_flushes`` (new rows and a new zero column;
no value changed), and the one that interpolated the concurrent model's
latency percentiles and capped them at the maximum (only the p50, p99
and p99.9 figures changed), and the one that priced the arm64 and ppc64
profiles as published devices through the cross-device model (only
arm64 and ppc64 figures changed, and ``reproduce``), and the one that
priced the folio lookup of UFFDIO_MOVE and of linux-6.17-rc1's mremap
(new rows and columns; UFFDIO_MOVE's estimates changed), and the one
that gave x86-64 and riscv64 the test host's cold-call curves (only the
published x86 timings of ``reproduce`` changed), and the one that let
the concurrent model's mover be madvise, munmap or mprotect (a new
column ``mover``, "mremap" in every row; no value changed), and the one
that packed uniform PTE tables, and the one that let arm64's packed
runs contpte cannot reach move packed too (each time only the ids of
PTE-table locks in the traced moves' lock events changed: an id names a
table, and packed tables are numbered apart from rows; with
``PAGETAB_PACK=0`` the output is still identical to bbc0b63's file),
and the one that left a thread asleep on mmap_lock in lazy TLB mode in
the concurrent model (a new column ``mover_flush_change_ns``; only the
linux-4.9 run whose threads sleep through the move changed: its flushes
skip their CPUs, so its mover and their waits shortened), and the one
that gave the oracle's page states a soft-dirty field (each state one
field longer, -1; nothing else changed, checked by dropping it), and
the one that corrected the INVLPGB anchor's stale "not simulated" text
(only that string changed), and the one that packed uniform PMD tables
(only the ids of PMD-table locks in the traced moves' lock events
changed: an id names a PMD table's row, and a packed PMD table expanded
for a move takes a fresh one);
re-generate it (``-o``) only with a
change meant to move results, and say so in that commit.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import gzip
import io
import itertools
import json
import os
import random
import sys
from typing import Any

import pagetab as pt
from pagetab import cli

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import oracle_diff

MIB = 1 << 20


def masked(x: Any) -> Any:
    """``x`` with the value of every key naming a wall time replaced by None."""
    if isinstance(x, dict):
        return {k: None if "wall" in k else masked(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [masked(v) for v in x]
    return x


def cli_json(*argv: str) -> Any:
    """The results of what ``pagetab ARGV`` prints as JSON (without the
    document's metadata, which names this host)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(list(argv))
    assert not code, f"pagetab {' '.join(argv)} exited {code}"
    return json.loads(buf.getvalue())["results"]


def concurrent_grid() -> list[dict[str, Any]]:
    """A fixed grid of the concurrent model: paths, archs, policies, places."""
    rows = []
    for arch in ("x86-64", "arm64-4k"):
        for policy in ("linux-4.9", "linux-6.8", "linux-6.18", "batched-ptl"):
            for dst in ("page", "pmd"):
                for where, fresh in (("outside", False), ("inside", False), ("beside", True)):
                    spec = {"where": where, "accesses": 300, "pattern": "random"}
                    r = pt.run_concurrent(64 * MIB, arch=arch, policy=policy,
                                          threads=[spec, spec], dst_align=dst,
                                          fresh_vma=fresh, seed=7)  # fmt: skip
                    rows.append(r.row())
                    rows.append([t.row() for t in r.threads])
    return rows


def gc_grid() -> list[dict[str, Any]]:
    """``compare_gc`` on a small heap, and one run per live fraction."""
    rows = pt.compare_gc(size=16 * MIB).rows()
    for live in (0.1, 0.5, 0.9):
        rows.append(pt.run_gc(size=16 * MIB, live=live, seed=3).row())
    return rows


def traced_move() -> dict[str, Any]:
    """One traced PTE-path move on each arch: its counters and events."""
    out = {}
    for arch in pt.archs():
        mm = pt.AddressSpace(arch, cpus=3, policy="linux-6.18")
        mm.trace_moves = True
        size = 8 * mm.arch.pmd_size
        src = mm.mmap(size)
        mm.madvise(src, size, pt.MADV_POPULATE_WRITE)
        mm.access([src, src + size - mm.page_size], cpu=1)
        mm.access([src + size // 2], cpu=2)
        dst = mm.mmap(size + 2 * mm.arch.pmd_size)
        mm.mremap(src, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, dst + mm.page_size)
        st = mm.last_move
        assert st is not None
        trace = st.trace
        assert trace is not None
        out[arch] = {"stats": st.as_dict(),
                     "events": [list(map(int, e)) for e in trace.events.tolist()],
                     "flush_ops": trace.flush_ops.tolist(),
                     "end_ns": trace.end_ns.tolist()}  # fmt: skip
    return out


def scenarios(n: int) -> list[Any]:
    """Random userfaultfd and mremap sequences: each call's outcome and the
    window's pages at the end, under three policies."""
    out = []
    window = 16 * MIB
    for seed in range(n):
        rng = random.Random(seed)
        ops = oracle_diff.random_uffd_ops(rng, window) if seed % 2 else \
            oracle_diff.random_ops(rng, window, 12)  # fmt: skip
        for policy in ("linux-6.8", "linux-6.16", "linux-6.18"):
            results, states = oracle_diff.simulate(ops, window, policy, folios=True)
            pages = [dataclasses.astuple(s) for s in states if s.present]
            out.append({"seed": seed, "policy": policy, "results": results, "pages": pages})
    return out


def golden() -> dict[str, Any]:
    """Everything, masked."""
    return masked({
        "compare": cli_json("compare", "--json"),
        "reproduce": cli_json("reproduce", "--json"),
        "concurrent": concurrent_grid(),
        "gc": gc_grid(),
        "traced_move": traced_move(),
        "scenarios": scenarios(60),
    })  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", help="write here (gzip if it ends in .gz), not stdout")
    p.add_argument("--check", metavar="FILE", help="compare with FILE (JSON, or gzip'd JSON)")
    args = p.parse_args()
    text = json.dumps(golden(), indent=0, sort_keys=True, default=repr) + "\n"
    if args.check:
        with (gzip.open if args.check.endswith(".gz") else open)(args.check, "rt") as f:
            want = f.read()
        if want == text:
            print("identical")
            return
        diff = difflib.unified_diff(want.splitlines(), text.splitlines(), args.check, "now",
                                    lineterm="", n=8)  # fmt: skip
        print("\n".join(itertools.islice(diff, 200)))
        sys.exit(1)
    if args.output:
        with (gzip.open if args.output.endswith(".gz") else open)(args.output, "wt") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
