"""The costs of the concurrent model's other movers, fitted and held out on
this machine's kernel in one run.

madvise(MADV_DONTNEED), munmap and mprotect(PROT_READ) of fresh
anonymous regions (empty, zero-page, written 4 KiB pages, PMD THPs; 2 MiB
to 1 GiB) are timed on this kernel (``host.measure_unmap``), round by
round, interleaved. Each cost of ``pagetab.mmu_gather`` is fitted on one
case, in order (what it alone leaves unexplained, over its count):

* madvise_call, munmap_call, mprotect_call: the empty 2 MiB VMA;
* zap_pte: madvise of 256 MiB of zero-page PTEs;
* folio_free: madvise of 256 MiB written pages;
* pmd_folio_free: madvise of 256 MiB of THPs;
* prot_pte: mprotect of 256 MiB of zero-page PTEs;
* prot_folio: mprotect of 256 MiB written pages.

Every other case is held out: 1 GiB, every munmap but the empty one (its
zap priced by madvise's costs), mprotect of THPs. Printed:
each case's kernel median, the estimate with the fitted costs and with the
shipped ones (``costs_data``), and their errors.

Usage: python bench/unmap_costs.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import random
import statistics

import pagetab as pt
from pagetab import host
from pagetab.mmu_gather import gather_trace

MIB = 1 << 20
GIB = 1 << 30
BASE = 1 << 40
#: (cost fitted, the case it is fitted on), in the order they are fitted
FITS = [
    ("madvise_call", ("madvise", "none", 2 * MIB)),
    ("munmap_call", ("munmap", "none", 2 * MIB)),
    ("mprotect_call", ("mprotect", "none", 2 * MIB)),
    ("zap_pte", ("madvise", "zero", 256 * MIB)),
    ("folio_free", ("madvise", "write", 256 * MIB)),
    ("pmd_folio_free", ("madvise", "thp", 256 * MIB)),
    ("prot_pte", ("mprotect", "zero", 256 * MIB)),
    ("prot_folio", ("mprotect", "write", 256 * MIB)),
]
HELD_OUT = [(call, pop, size)
            for call in ("madvise", "munmap", "mprotect")
            for pop in ("zero", "write", "thp")
            for size in (256 * MIB, GIB)]  # fmt: skip
CASES = [c for _, c in FITS] + [c for c in HELD_OUT if c not in {c for _, c in FITS}]


def space(pop: str, size: int) -> pt.AddressSpace:
    """A simulated space with the case's region at BASE."""
    s = pt.AddressSpace("x86-64", cpus=1, thp="madvise")
    s.mmap(size, addr=BASE, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    if pop == "thp":
        s.madvise(BASE, size, pt.MADV_HUGEPAGE)
    if pop != "none":
        s.madvise(BASE, size, pt.MADV_POPULATE_READ if pop == "zero" else pt.MADV_POPULATE_WRITE)
    return s


def estimate(case: tuple[str, str, int], a: pt.Arch) -> float:
    """The case's estimate under ``a``'s costs (ns)."""
    call, pop, size = case
    return gather_trace(space(pop, size).mm_struct, call, BASE, BASE + size, arch=a).total_ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    ok, why = host.available()
    if not ok:
        raise SystemExit(f"the host probe is unavailable: {why}")
    runs: dict[tuple[str, str, int], list[int]] = {c: [] for c in CASES}
    rng = random.Random(0)
    for _ in range(args.rounds):
        # each round in its own order (a case's neighbours change the
        # caches it starts with); an empty VMA's call twice, the second
        # kept: the first pays for the case before it (a cold call)
        for c in rng.sample(CASES, len(CASES)):
            runs[c].append(host.measure_unmap(c[0], c[2], c[1], 2 if c[1] == "none" else 1)[-1])
    kernel = {c: float(statistics.median(v)) for c, v in runs.items()}
    shipped = pt.arch("x86-64")
    fitted = shipped
    print(f"fitted on this kernel ({args.rounds} interleaved rounds, medians):")
    print(f"{'cost':16} {'fitted ns':>10} {'shipped ns':>11}  case")
    for name, case in FITS:
        zero = estimate(case, fitted.with_costs(**{name: 0.0}))
        one = estimate(case, fitted.with_costs(**{name: 1.0}))
        value = max((kernel[case] - zero) / (one - zero), 0.0)
        fitted = fitted.with_costs(**{name: value})
        print(
            f"{name:16} {value:10.1f} {shipped.cost(name):11.1f}  "
            f"{case[0]} {case[1]} {case[2] // MIB} MiB: {kernel[case] / 1e3:.1f} us"
        )
    print("\nheld out (not fitted on):")
    print(
        f"{'call':9} {'pages':6} {'size':>6} {'kernel us':>10} {'fitted us':>10} "
        f"{'error':>7} {'shipped us':>11} {'error':>7}"
    )
    errs = []
    for c in HELD_OUT:
        if c in {case for _, case in FITS}:
            continue
        f, s = estimate(c, fitted), estimate(c, shipped)
        k = kernel[c]
        errs.append(abs(f / k - 1))
        print(
            f"{c[0]:9} {c[1]:6} {c[2] // MIB:5}M {k / 1e3:10.1f} {f / 1e3:10.1f} "
            f"{f / k - 1:+7.1%} {s / 1e3:11.1f} {s / k - 1:+7.1%}"
        )
    within = sum(e <= 0.25 for e in errs)
    print(
        f"\nheld out within 25% (fitted costs): {within}/{len(errs)}; median |error| "
        f"{statistics.median(errs):.1%}"
    )


if __name__ == "__main__":
    main()
