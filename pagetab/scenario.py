"""What an experiment sets up before the call it measures, written once.

``MoveSetup`` is one move's setup: the arch (with any overrides), the
policy, the region's size and how it is populated, where the source and
destination lie, the CPUs that ran the process (and how many of them are
lazy), and the accesses they made. ``run_move``, ``move_stats``,
``compare``, ``sweep`` (experiment.py), ``run_concurrent``
(contention.py: the mover's side) and ``run_gc`` (compaction.py: the
heap's checks and place) are built on it; the last two add regions and
populations of their own with its pieces (``region_bases``,
``populate_region``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arch import Arch, arch, archs
from .argcheck import check_int, is_int
from .constants import (
    MADV_HUGEPAGE,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
)
from .mm_types import MAX_CPUS
from .policy import DEFAULT_POLICY, Policy, policy
from .space import AddressSpace
from .units import format_size

__all__ = [
    "ALIGNS",
    "MAX_TOUCH",
    "POPULATE_KINDS",
    "MoveSetup",
    "align_offset",
    "parse_populate",
    "populate_region",
    "region_bases",
    "resolve_arch",
    "touch_addresses",
]

#: how a region is populated before the move: written 4K pages, the zero
#: page (read faults), THPs (MADV_HUGEPAGE, then written), or one written
#: page in every 16 (tables exist, mostly empty)
POPULATE_KINDS = ("write", "read", "thp", "sparse")
#: named alignments: the offset past a PUD boundary
ALIGNS = ("pud", "pmd", "page")
SPARSE_STRIDE = 16
MAX_TOUCH = 1 << 26  # accesses per CPU before the move
SRC_BASE, DST_BASE = 1 << 44, 1 << 45


def region_bases(a: Arch) -> tuple[int, int]:
    """Where a run's source and destination regions start (PUD aligned):
    16 and 32 TiB, or, in a smaller address space (riscv64 Sv39's 256 GiB),
    its first PUD and its middle."""
    if a.task_size >= 2 * DST_BASE:
        return SRC_BASE, DST_BASE
    return a.pud_size, (a.task_size // 2) & ~(a.pud_size - 1)


def parse_populate(populate: str | Mapping[str, float]) -> dict[str, float]:
    """``"write"`` or a mix such as ``{"write": 0.5, "thp": 0.25}`` (fractions
    of the region, in that order from its start; the rest stays unpopulated)
    as a dict of fractions. A string "write:0.5,thp:0.25" is accepted too."""
    if isinstance(populate, str):
        if ":" not in populate:
            mix: dict[str, float] = {populate: 1.0}
        else:
            mix = {}
            for part in populate.split(","):
                name, _, text = part.partition(":")
                try:
                    mix[name.strip()] = float(text)
                except ValueError:
                    raise ValueError(f"populate: bad fraction in {part!r}") from None
    elif isinstance(populate, Mapping):
        mix = dict(populate)
    else:
        raise TypeError(f"populate must be a str or a mapping, not {type(populate).__name__}")
    for kind, frac in mix.items():
        if kind not in POPULATE_KINDS:
            raise ValueError(
                f"populate kind must be one of {', '.join(POPULATE_KINDS)}, not {kind!r}"
            )
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ValueError(f"populate fraction of {kind!r} must be in (0, 1], not {frac!r}")
    if not mix or sum(mix.values()) > 1 + 1e-9:
        raise ValueError(f"populate fractions must sum to at most 1, not {mix}")
    return mix


def align_offset(a: Arch, align: str | int, name: str) -> int:
    """The offset past a PUD boundary that ``align`` names ("pud", "pmd",
    "page", or bytes); ValueError naming ``name`` otherwise."""
    if isinstance(align, str):
        table = {"pud": 0, "pmd": a.pmd_size, "page": a.page_size}
        if align not in table:
            raise ValueError(f"{name} must be one of {', '.join(ALIGNS)} or bytes, not {align!r}")
        return table[align]
    if isinstance(align, bool) or not isinstance(align, int):
        raise TypeError(f"{name} must be a str or an int, not {type(align).__name__}")
    if align < 0 or align % a.page_size or align >= a.pud_size:
        raise ValueError(
            f"{name} must be a multiple of {a.page_size} in [0, PUD_SIZE), not {align}"
        )
    return align


def resolve_arch(name: str | Arch, overrides: Mapping[str, Any]) -> Arch:
    """The arch with Arch fields and/or event costs (in ns) overridden."""
    a = arch(name)
    fields = {k: v for k, v in overrides.items() if k not in a.costs}
    costs = {k: v for k, v in overrides.items() if k in a.costs}
    valid = {f.name for f in dataclasses.fields(a)}
    unknown = sorted(set(fields) - valid)
    if unknown:
        # a keyword argument no call took: say which, and what it could be
        elsewhere = {k: [n for n in archs() if k in arch(n).costs] for k in unknown}
        others = [f"{k} is a cost event of {', '.join(ns)}, not of {a.name}"
                  for k, ns in elsewhere.items() if ns]  # fmt: skip
        raise ValueError("; ".join(others) if others else
                         f"unknown keyword argument(s) {unknown}: not an argument of this "
                         f"call, nor an Arch field ({sorted(valid)}) or a cost event of "
                         f"{a.name} ({sorted(a.costs)}) to override")  # fmt: skip
    if fields:
        a = a.replace(**fields)
    return a.replace_costs(costs, "override") if costs else a


def populate_region(
    mm: AddressSpace,
    start: int,
    size: int,
    mix: Mapping[str, float],
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[int, int, str]]:
    """Populate consecutive parts of the region, PMD rounded, in mix order;
    returns the parts as (start, length, kind).

    The region stays one VMA, as a move of several needs Linux 6.17: the
    4K parts are populated first, then MADV_HUGEPAGE on the whole region
    and the THP parts (so later faults in its unpopulated rest map THPs).
    ``progress(done, size)``, if given, is called as the bytes populated
    grow: each part is then populated a PUD-aligned piece at a time, in the
    same order, to the same page tables."""
    pmd = mm.arch.pmd_size
    at, end = start, start + size
    parts = []
    for kind, frac in mix.items():
        length = min(-(-int(size * frac) // pmd) * pmd, end - at)
        if length <= 0:
            break
        parts.append((at, length, kind))
        at += length
    done = 0
    for at, length, kind in sorted(parts, key=lambda p: p[2] == "thp"):
        if kind == "thp":  # (one at most: the mix's kinds are its keys)
            mm.madvise(start, size, MADV_HUGEPAGE)  # the whole VMA: no split
        if kind == "sparse":
            stride = SPARSE_STRIDE * mm.page_size
            mm.access(np.arange(at, at + length, stride, dtype=np.uint64), write=True)
            done += length
            if progress is not None:
                progress(done, size)
            continue
        advice = MADV_POPULATE_READ if kind == "read" else MADV_POPULATE_WRITE
        if progress is None:
            mm.madvise(at, length, advice)
            continue
        # pieces ending on PUD boundaries, about a hundredth of the region each
        piece = max(mm.arch.pud_size, -(-size // 100 // mm.arch.pud_size) * mm.arch.pud_size)
        lo = at
        while lo < at + length:
            hi = min(at + length, (lo // piece + 1) * piece)
            mm.madvise(lo, hi - lo, advice)
            done += hi - lo
            progress(done, size)
            lo = hi
    if progress is not None and done < size:
        progress(size, size)  # the rest of the region stays empty: done
    return parts


def touch_addresses(
    mm: AddressSpace, parts: Sequence[tuple[int, int, str]], rng: np.random.Generator, n: int
) -> np.ndarray[Any, Any]:
    """``n`` random addresses of populated pages only (a touch must not
    fault pages in and change what the experiment moves)."""
    lengths = np.array([p[1] for p in parts], dtype=np.float64)
    which = rng.choice(len(parts), size=n, p=lengths / lengths.sum())
    starts = np.array([p[0] for p in parts], dtype=np.uint64)[which]
    lens = np.array([p[1] for p in parts], dtype=np.uint64)[which]
    offs = (rng.random(n) * lens).astype(np.uint64)
    sparse = np.array([p[2] == "sparse" for p in parts])[which]
    stride = np.uint64(SPARSE_STRIDE * mm.page_size)
    offs[sparse] -= offs[sparse] % stride
    return starts + offs


@dataclass(frozen=True)
class MoveSetup:
    """One move's setup, checked on construction (TypeError/ValueError
    naming the argument and what it may be).

    The fields are ``run_move``'s parameters (see there); ``arch`` and
    ``policy`` may be names or objects, ``arch_overrides`` Arch fields or
    event costs in ns. ``profile``, ``pol`` and ``mix`` are the resolved
    arch, policy and populate mix; ``src`` and ``dst`` the addresses.
    """

    size: int
    arch: str | Arch = "x86-64"
    policy: str | Policy = DEFAULT_POLICY
    populate: str | Mapping[str, float] = "write"
    src_align: str | int = "pud"
    dst_align: str | int = "pmd"
    cpus: int = 4
    touch: int = 4096
    seed: int = 0
    lazy_cpus: int = 0
    arch_overrides: Mapping[str, Any] = field(default_factory=dict)
    profile: Arch = field(init=False, repr=False, compare=False)
    pol: Policy = field(init=False, repr=False, compare=False)
    mix: dict[str, float] = field(init=False, repr=False, compare=False)
    src: int = field(init=False, repr=False, compare=False)
    dst: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        a = resolve_arch(self.arch, self.arch_overrides)
        size, cpus, lazy = self.size, self.cpus, self.lazy_cpus
        if not is_int(size):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        size = int(size)  # (a numpy integer too)
        if size <= 0 or size % a.page_size:
            raise ValueError(f"size must be a positive multiple of {a.page_size}, not {size}")
        touch = self.touch
        if not is_int(touch) or not 0 <= touch <= MAX_TOUCH:
            raise ValueError(f"touch must be an int in 0..{MAX_TOUCH}, not {touch!r}")
        seed = self.seed
        if not is_int(seed) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, not {seed!r}")
        cpus = check_int("cpus", cpus, 1, MAX_CPUS)
        if not is_int(lazy) or not 0 <= lazy < cpus:
            raise ValueError(f"lazy_cpus must be an int in 0..cpus-1 ({cpus - 1}): CPU 0 "
                             f"makes the call, not {lazy!r}")  # fmt: skip
        mix = parse_populate(self.populate)
        src_base, dst_base = region_bases(a)
        if size + a.pud_size > dst_base - src_base:
            raise ValueError(f"size {format_size(size)} does not fit twice in {a.name}'s "
                             f"{format_size(a.task_size)} address space")  # fmt: skip
        src = src_base + align_offset(a, self.src_align, "src_align")
        dst = dst_base + align_offset(a, self.dst_align, "dst_align")
        pol = policy(self.policy)
        for name, value in (("profile", a), ("pol", pol), ("mix", mix), ("src", src),
                            ("dst", dst), ("size", size), ("cpus", cpus), ("touch", int(touch)),
                            ("seed", int(seed)), ("lazy_cpus", int(lazy))):  # fmt: skip
            object.__setattr__(self, name, value)

    @property
    def populate_label(self) -> str:
        """The mix as the results name it ("write", "write:0.5,thp:0.25")."""
        return ",".join(k if v == 1 else f"{k}:{v:g}" for k, v in self.mix.items())

    def prepare(
        self, progress: Callable[[int, int], None] | None = None
    ) -> tuple[AddressSpace, int]:
        """A space set up for the move, and the ns it took: the source
        mapped and populated (``progress(done, size)`` as it goes, if
        given), every CPU having run the process and touched ``touch`` of
        its populated pages, the last ``lazy_cpus`` lazy."""
        t0 = time.perf_counter_ns()
        mm = AddressSpace(self.profile, cpus=self.cpus, policy=self.pol, thp="madvise")
        mm.mmap(self.size, addr=self.src, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        parts = populate_region(mm, self.src, self.size, self.mix, progress)
        rng = np.random.default_rng(self.seed)
        for cpu in range(self.cpus):
            mm.switch_mm(cpu)  # it runs the process: in mm_cpumask
            if self.touch and parts:
                mm.access(touch_addresses(mm, parts, rng, self.touch), cpu=cpu)
        for cpu in range(self.cpus - self.lazy_cpus, self.cpus):
            mm.switch_out(cpu, lazy=True)
        return mm, time.perf_counter_ns() - t0
