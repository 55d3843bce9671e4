"""Differential testing against the real kernel (pagetab.oracle.run_ops).

Seeded random sequences of mmap/munmap/mprotect/mremap/madvise/writes over
an 8 MiB window run on this machine's kernel in a child process and on
AddressSpace("x86-64"); every result or errno and the final state of every
page (mapped and its protection, present, zero page, which written page's
content is where) must agree. Documented kernel-version differences the
simulator follows (Linux 6.9+ EINVAL from MADV_POPULATE_* on inaccessible
VMAs; Linux 6.17+ multi-VMA MREMAP_FIXED moves) are modelled, not skipped.
"""

from __future__ import annotations

import os
import random

import pytest
from oracle_diff import compare, random_ops, simulate

import pagetab as pt
from pagetab import host
from pagetab.oracle import OracleError, run_ops

OK, WHY = host.available()
pytestmark = pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
WINDOW = 8 << 20
SEQUENCES = 500


@pytest.mark.parametrize("chunk", range(10))
def test_random_sequences_agree_with_the_kernel(chunk: int) -> None:
    per = SEQUENCES // 10
    for seed in range(chunk * per, (chunk + 1) * per):
        ops = random_ops(random.Random(seed), WINDOW, 14, fork=seed % 2 == 1)
        diff = compare(ops, WINDOW)
        assert diff is None, f"seed {seed}: {diff}"


def test_selftest_style_moves_agree() -> None:
    pmd, k4 = 2 << 20, 4096
    anon = 0x22  # MAP_PRIVATE | MAP_ANONYMOUS
    cases = [
        [("mmap", 0, pmd, 3, anon), ("madvise", 0, pmd, 23), ("mremap", 0, pmd, pmd, 3, 2 * pmd)],
        [("mmap", k4, pmd, 3, anon), ("madvise", k4, pmd, 23),
         ("mremap", k4, pmd, pmd, 3, 3 * pmd)],
        [("mmap", 0, 4 * k4, 3, anon), ("mremap", 0, 4 * k4, 4 * k4, 3, 2 * k4)],  # overlap
        [("mmap", 0, 4 * k4, 3, anon), ("mremap", 0, 4 * k4, 8 * k4, 0, 0)],  # expand
        [("mmap", 0, 4 * k4, 3, 0x21), ("write", 0, 5), ("mremap", 0, 4 * k4, 4 * k4, 7, pmd)],
    ]  # fmt: skip
    for ops in cases:
        assert compare(ops, WINDOW) is None, ops


def test_oracle_reports_bad_requests() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        run_ops([("exec",)])
    with pytest.raises(TypeError):
        run_ops([("munmap", 0, "x")])
    with pytest.raises(ValueError, match="window"):
        run_ops([], window=4096)
    assert issubclass(OracleError, RuntimeError)


#: hugepages-<size>kB/enabled set for the opt-in multi-size THP run
MTHP_SIZES = {16: "always", 32: "madvise", 64: "always", 128: "inherit"}
MTHP_SEQUENCES = 300


@pytest.mark.skipif(os.environ.get("PAGETAB_MTHP_HOST") != "1",
                    reason="changes the machine's THP settings while it runs: opt in with "
                    "PAGETAB_MTHP_HOST=1 (root)")  # fmt: skip
def test_random_sequences_with_multi_size_thp_agree_with_the_kernel() -> None:
    # sysfs is machine-wide: set the sizes, run, put every size back
    root = "/sys/kernel/mm/transparent_hugepage"
    saved = {kb: open(f"{root}/hugepages-{kb}kB/enabled").read() for kb in MTHP_SIZES}
    try:
        for kb, mode in MTHP_SIZES.items():
            with open(f"{root}/hugepages-{kb}kB/enabled", "w") as f:
                f.write(mode)
        orders: set[int] = set()
        for seed in range(MTHP_SEQUENCES):
            rng = random.Random(10_000 + seed)
            ops = random_ops(rng, WINDOW, 14)
            # more of what decides a folio's size: MADV_HUGEPAGE (the
            # "madvise" and "inherit" sizes) and write faults
            for _ in range(4):
                at = rng.randrange(len(ops) + 1)
                off = rng.randrange(0, WINDOW, 4096)
                ops.insert(at, ("write", off, rng.getrandbits(63) | 1) if rng.random() < 0.6
                           else ("madvise", off & ~0xFFFF, 0x40000, 14))  # fmt: skip
            diff = compare(ops, WINDOW, folios=True)
            assert diff is None, f"seed {seed}: {diff}"
            _, states = simulate(ops, WINDOW, folios=True)
            orders |= {s.folio_order for s in states if s.present and not s.zero}
        assert {0, 2, 4} <= orders  # small, 16K and 64K folios were mapped
    finally:
        for kb, text in saved.items():
            with open(f"{root}/hugepages-{kb}kB/enabled", "w") as f:
                f.write(text[text.index("[") + 1 : text.index("]")])


def test_fork_agrees_with_the_kernel() -> None:
    # what fork copies (private mappings with an anon_vma: written) and what
    # the child faults in again (untouched, shared, file mappings, a file
    # mapping with one copied page), then the child's own calls
    k4, m2 = 4096, 2 << 20
    rw, anon = pt.PROT_READ | pt.PROT_WRITE, pt.MAP_ANONYMOUS
    priv, shared = pt.MAP_PRIVATE, pt.MAP_SHARED
    base = [("file", 0, 16 * k4, 1), ("mmap", 0, m2, rw, priv | anon),
            ("madvise", 0, m2, pt.MADV_POPULATE_WRITE),
            ("mmap", m2, m2, rw, priv | anon),
            ("mmap", 2 * m2, 32 * k4, rw, shared | anon), ("write", 2 * m2 + k4, 7),
            ("mmap_file", 3 * m2, 16 * k4, pt.PROT_READ, priv, 0, 0), ("read", 3 * m2),
            ("mmap_file", 3 * m2 + m2 // 2, 16 * k4, rw, priv, 0, 0),
            ("read", 3 * m2 + m2 // 2), ("write", 3 * m2 + m2 // 2 + 4 * k4, 9)]  # fmt: skip
    after = [
        [],
        [("write", m2 + 8 * k4, 3), ("read", 2 * m2 + 2 * k4), ("read", 3 * m2 + 8 * k4)],
        [("mremap", 0, m2, m2, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, 4 * m2 + k4),
         ("munmap", 2 * m2, 8 * k4), ("madvise", 3 * m2 + m2 // 2, 16 * k4, pt.MADV_DONTNEED)],
    ]  # fmt: skip
    for tail in after:
        ops = [*base, ("fork",), *tail]
        assert compare(ops, WINDOW) is None, ops
