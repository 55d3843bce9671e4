"""Published mremap measurements, simulated next to the published numbers.

``reproduce_2018``: the findings of the 2018 fast-mremap thread as ratios.
Each case moves a write-populated 1 GiB region once per policy or
alignment, single-threaded and right after populating it as the published
measurements were, and takes the ratio of the estimated kernel times.
``reproduce_published``: every published timing in pagetab/data/published.json
(with its source, hardware, kernel and samples), as absolute times, under
each ISA's default profile and under each device of the cross-device model
(pagetab.device_model; the arm64 and ppc64 defaults are priced as one of
those devices, ``arch.DEFAULT_DEVICES``). ``published_ratios``: every ratio
of two timings of one device beside the default profile's, with the
profile's reason where they disagree.
"""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .arch import DEFAULT_DEVICES, Arch, devices
from .arch import arch as _arch
from .constants import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    UFFD_FEATURE_MOVE,
    UFFDIO_REGISTER_MODE_MISSING,
)
from .costs_data import RATIO_NOTES
from .experiment import move_stats
from .space import AddressSpace
from .stats import MoveStats

__all__ = [
    "Anchor",
    "Finding",
    "LoopIteration",
    "Published",
    "Ratio",
    "cold_ns",
    "mremap_folio_loop",
    "published_entries",
    "published_ratios",
    "published_us",
    "reproduce_2018",
    "reproduce_anchors",
    "reproduce_published",
    "uffd_move_shares",
]

GIB = 1 << 30


@dataclass(frozen=True)
class Finding:
    """One published ratio and its simulated counterpart."""

    case: str
    arch: str
    slow: str  # what the ratio divides: slow / fast
    fast: str
    simulated: float
    published: float | None  # None: the source states it qualitatively
    claim: str
    source: str

    @property
    def error(self) -> float | None:
        """simulated / published - 1 (None where nothing numeric was published)."""
        return None if self.published is None else self.simulated / self.published - 1


def _move_ns(arch: str | Arch, policy: str, dst_offset: int) -> float:
    """Estimated ns of one single-CPU move of 1 GiB of written pages from a
    PUD boundary to ``dst_offset`` past another, timed as the published
    moves were: once, right after populating (``cold_ns``)."""
    st = move_stats(GIB, arch, policy, dst_align=dst_offset, cpus=1, touch=0)
    return st.estimated_ns + cold_ns(_arch(arch), st, GIB)


def _ratio(arch: str | Arch, slow: tuple[str, int], fast: tuple[str, int]) -> float:
    return _move_ns(arch, *slow) / _move_ns(arch, *fast)


def reproduce_2018() -> list[Finding]:
    """Simulate every finding of the 2018 thread (the ratios of c49dd3401802
    and its series are ``published_ratios``)."""
    x86 = _arch("x86-64")
    pmd = x86.pmd_size
    out = [
        Finding("x86-64 1 GiB, PTE moves vs PMD moves (2018)", "x86-64",
                "linux-4.19", "linux-5.0",
                _ratio("x86-64", ("linux-4.19", pmd), ("linux-5.0", pmd)), 3.5e-3 / 152e-6,
                "about 23x", "2c91bd4a4e2e: 3.45-3.52 ms before, 145-159 us after"),
        Finding("x86-64 1 GiB, PTE moves vs PMD moves (test host, 6.18)", "x86-64",
                "linux-4.19", "linux-5.0",
                _ratio("x86-64", ("linux-4.19", pmd), ("linux-5.0", pmd)), 3.8e-3 / 112e-6,
                "about 34x", "project's Linux 6.18 x86-64 test host, 1 GiB zero-page region, "
                "one run: 3.8 ms vs 112 us; re-measure: pagetab host --size 1G"),
        Finding("arm64 Linux 4.9 flush rule: per-PMD flush", "arm64-4k-linux-4.9",
                "linux-4.19", "linux-5.0",
                _ratio("arm64-4k-linux-4.9", ("linux-4.19", pmd), ("linux-5.0", pmd)), None,
                "the per-PMD flush (512 TLBIs) negates most of the benefit (small ratio)",
                "Joel Fernandes, linux-mm 26 Oct 2018, "
                "<20181026211148.GA140716@joelaf.mtv.corp.google.com>; HAVE_MOVE_PMD for "
                "arm64 only in 5.10 (45544eee9606)"),
        Finding("arm64 Linux 4.9 flush rule: one flush at the end", "arm64-4k-linux-4.9",
                "linux-4.19", "fast-mremap-v2",
                _ratio("arm64-4k-linux-4.9", ("linux-4.19", pmd), ("fast-mremap-v2", pmd)),
                500.0, "about 500x", "Joel Fernandes, '[PATCH 2/4] mm: speed up mremap by 500x "
                "on large regions (v2)', linux-mm 12 Oct 2018, "
                "<20181013013200.206928-3-joel@joelfernandes.org>"),
        Finding("arm64 with range TLBI: per-PMD flush", "arm64-4k-tlbirange",
                "linux-4.19", "linux-5.0",
                _ratio("arm64-4k-tlbirange", ("linux-4.19", pmd), ("linux-5.0", pmd)), None,
                "per-PMD flushes are cheap again (one range TLBI, not 512 per-page ones: a "
                "ratio many times the 4.9 rule's)", "FEAT_TLBIRANGE, Linux 5.7+"),
    ]  # fmt: skip
    return out


@dataclass(frozen=True)
class Published:
    """One published timing and, where pagetab can simulate it, its
    simulated counterpart (a single-CPU move, source PUD aligned) under one
    cost profile: the arch profile as shipped, or a device of
    pagetab.device_model (``fitted``: the device that measured it)."""

    id: str
    profile: str  # the arch profile the simulation priced with (name@device)
    arch: str  # as the source states it
    kernel: str
    path: str
    operation: str
    published_us: float | None  # the mean, or the mean of the samples
    low_us: float | None
    high_us: float | None
    runs: int | None
    simulated_us: float | None
    simulated_as: str  # "arch / policy / destination alignment", or why not
    fitted: bool  # priced as the device that measured it (its factors fitted to it)
    source: str
    #: the simulated time's interval: every event at each end of its cost's range
    simulated_low_us: float | None = None
    simulated_high_us: float | None = None

    @property
    def error(self) -> float | None:
        """simulated / published - 1, where both exist."""
        if self.simulated_us is None or not self.published_us:
            return None
        return self.simulated_us / self.published_us - 1


def published_entries() -> list[dict[str, Any]]:
    """The entries of the shipped data file pagetab/data/published.json."""
    text = resources.files("pagetab").joinpath("data/published.json").read_text("utf-8")
    data = json.loads(text)
    if data.get("format") != "pagetab-published" or data.get("version") != 1:
        raise ValueError("pagetab/data/published.json: not a version 1 pagetab-published file")
    entries: list[dict[str, Any]] = data["entries"]
    return entries


def _source(e: dict[str, Any]) -> str:
    s = e["source"]
    ref = s.get("commit") or s.get("message_id") or ""
    return f"{s.get('subject', '')}; {ref}".strip("; ")


def published_us(e: dict[str, Any]) -> float | None:
    """An entry's published time in us: its stated value, else the mean of
    its samples (None for a figure that is not a time)."""
    samples = e.get("samples_us") or []
    value = e.get("value_us")
    if value is None and samples:
        value = statistics.fmean(samples)
    return None if value is None else float(value)


def cold_ns(prof: Arch, st: MoveStats, populated: int) -> float:
    """What a move timed once right after populating ``populated`` bytes
    pays for cold caches, as published mremap timings are taken
    (kselftest's mremap_test): the profile's cold call and its per-PTE
    carry-over (``Arch.cold_call_ns``, ``cold_pte_ns``; 0 for a profile
    without a cold-call curve)."""
    return prof.cold_call_ns(populated) + st.ptes_moved * prof.cold_pte_ns(populated)


def reproduce_published() -> list[Published]:
    """Every entry of the data file, with its simulated time where pagetab
    simulates that move: once with the arch profile as shipped and once per
    shipped device of its family (``fitted`` where that is the device that
    measured it; pagetab.device_model fitted its shared factors to every
    entry, so the held-out predictions are ``device_model.validate``'s)."""
    out = []
    for e in published_entries():
        samples = e.get("samples_us") or []
        value = published_us(e)
        low = e.get("low_us", min(samples) if samples else None)
        high = e.get("high_us", max(samples) if samples else None)
        sim = e.get("simulate")
        common = (e["arch"], e["kernel"], e["path"], e["operation"], value, low, high,
                  e.get("runs"))  # fmt: skip
        if sim is None:
            out.append(Published(e["id"], "-", *common, None,
                                 f"not simulated: {e['not_simulated']}", False,
                                 _source(e)))  # fmt: skip
            continue
        how = f"{sim['policy']} / destination {sim['dst_align']} aligned"
        for device in [None, *devices(sim["arch"])]:
            prof = _arch(sim["arch"], device=device)
            st = move_stats(e["size_bytes"], prof, sim["policy"], dst_align=sim["dst_align"],
                            cpus=1, touch=0)  # fmt: skip
            # priced as the device that measured it (a default profile is
            # its family's DEFAULT_DEVICES device)
            priced_as = device or DEFAULT_DEVICES.get(prof.flush.family)
            fitted = priced_as == sim.get("device")
            cold = cold_ns(prof, st, e["size_bytes"])
            lo_ns, hi_ns = st.estimated_ns_range
            out.append(Published(e["id"], prof.name, *common, (st.estimated_ns + cold) / 1e3,
                                 how, fitted, _source(e), (lo_ns + cold) / 1e3,
                                 (hi_ns + cold) / 1e3))  # fmt: skip
    return out


#: how near a profile's ratio must come to a published one to agree
RATIO_AGREEMENT = 0.15


@dataclass(frozen=True)
class Ratio:
    """Two published timings of one device, as a ratio, beside the same
    ratio priced by the default profile of the device's ISA."""

    device: str
    """The device that measured both."""
    slow: str
    """The published entry divided (the slower)."""
    fast: str
    """The published entry it is divided by."""
    profile: str
    """The default profile that priced both (the first entry's arch)."""
    published: float
    """slow / fast as published."""
    simulated: float
    """slow / fast as the profile prices the published experiments."""
    note: str | None
    """The profile's cited reason where the two disagree (``costs_data.RATIO_NOTES``)."""

    @property
    def error(self) -> float:
        """simulated / published - 1."""
        return self.simulated / self.published - 1

    @property
    def agrees(self) -> bool:
        """Within ``RATIO_AGREEMENT`` of the published ratio."""
        return abs(self.error) <= RATIO_AGREEMENT


def published_ratios() -> list[Ratio]:
    """Every ratio of two published timings of one device (each pair, the
    slower over the faster), and the same ratio under the ISA's default
    profile (``arch.DEFAULT_DEVICES``: as shipped), with its note."""
    rows = [r for r in reproduce_published() if r.simulated_us and "@" not in r.profile]
    by_id = {e["id"]: e for e in published_entries()}
    out = []
    for a, b in itertools.combinations(rows, 2):
        dev = by_id[a.id]["simulate"].get("device")
        if dev is None or dev != by_id[b.id]["simulate"].get("device"):
            continue
        slow, fast = (a, b) if a.published_us >= b.published_us else (b, a)  # type: ignore[operator]
        assert slow.published_us and fast.published_us and fast.simulated_us and slow.simulated_us
        family = _arch(slow.profile).flush.family
        out.append(Ratio(dev, slow.id, fast.id, slow.profile,
                         slow.published_us / fast.published_us,
                         slow.simulated_us / fast.simulated_us,
                         RATIO_NOTES.get(family, {}).get((slow.id, fast.id))))  # fmt: skip
    return out


@dataclass(frozen=True)
class LoopIteration:
    """One iteration of Dev Jain's mremap test loop (f822a9a81a31's cover
    letter, <20250610035043.75448-1-dev.jain@arm.com>), as simulated."""

    policy: str
    fault_ns: float  # the write faults of the memset (one folio each)
    mremap_ns: float  # the mremap call
    faults: int
    pte_batches: int
    contpte_unfolds: int
    contpte_folds: int
    tlbi: int  # TLBIs the mremap issued

    @property
    def priced_ns(self) -> float:
        """What pagetab prices of the iteration: the faults and the mremap
        (mmap, munmap and memset's stores have no cost in its tables)."""
        return self.fault_ns + self.mremap_ns


def mremap_folio_loop(policy: str, arch: str | Arch = "arm64-4k", size: int = 1 << 20,
                      folio: int = 64 << 10) -> LoopIteration:  # fmt: skip
    """One iteration of the loop: mmap ``size`` of anonymous memory at 1 GiB,
    write every page (its ``folio``-sized folios fault in whole), mremap it
    (MAYMOVE|FIXED) to its end, munmap it."""
    mm = AddressSpace(arch, policy=policy, thp_sizes={folio: "always"})
    a = mm.mmap(size, 1 << 30, flags=MAP_PRIVATE | MAP_ANONYMOUS)
    st = mm.access(np.arange(a, a + size, mm.page_size, dtype=np.uint64), write=True)
    mm.mremap(a, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, a + size)
    mv = mm.last_move
    assert mv is not None
    mm.munmap(a + size, size)
    return LoopIteration(
        policy,
        st.breakdown.get("faults", 0.0),
        mv.estimated_ns,
        st.faults,
        mv.pte_batches,
        mv.contpte_unfolds,
        mv.contpte_folds,
        mv.flush_ops.get("tlbi_page", 0) + mv.flush_ops.get("tlbi_range", 0),
    )


@dataclass(frozen=True)
class Anchor:
    """One published figure that is not the time of one move, and what the
    simulator predicts for it (it is never fitted to these)."""

    id: str
    """The published entry (pagetab/data/published.json)."""
    quantity: str
    """What is compared."""
    relation: str
    """How the source states it: "~" (about), ">" (over), "<" (under)."""
    published: float
    """The published figure (a ratio or a share)."""
    simulated: float | None
    """The simulator's (None: not predicted, ``how`` says why)."""
    how: str
    """What was simulated, or why nothing was."""

    @property
    def error(self) -> float | None:
        """simulated / published - 1 (for "~" figures)."""
        if self.simulated is None or self.relation != "~":
            return None
        return self.simulated / self.published - 1

    @property
    def holds(self) -> bool | None:
        """A ">" or "<" figure: whether the simulated value is on its side;
        a "~" one: within ``RATIO_AGREEMENT``; None: not predicted."""
        if self.simulated is None:
            return None
        if self.relation == ">":
            return self.simulated > self.published
        if self.relation == "<":
            return self.simulated < self.published
        return abs(self.simulated / self.published - 1) <= RATIO_AGREEMENT


def uffd_move_shares(policy: str, arch: str | Arch = "arm64-4k",
                     size: int = 2 << 20) -> dict[str, float]:  # fmt: skip
    """Each part's share of move_pages_pte's time (the estimate less the
    ioctl's own cost) in one UFFDIO_MOVE of ``size`` bytes of written small
    pages to an empty destination, on ``arch`` under ``policy``."""
    mm = AddressSpace(arch, policy=policy, thp="never", cpus=1)
    src = mm.mmap(size, 1 << 40, flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    dst = mm.mmap(size, (1 << 40) + (1 << 30), flags=MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    mm.access(np.arange(src, src + size, mm.page_size, dtype=np.uint64), write=True)
    u = mm.userfaultfd(UFFD_FEATURE_MOVE)
    u.register(dst, size, UFFDIO_REGISTER_MODE_MISSING)
    u.move(dst, src, size)
    assert u.last_move is not None
    parts = {k: v for k, v in u.last_move.breakdown.items() if k != "syscall"}
    total = sum(parts.values())
    return {k: v / total for k, v in parts.items()}


def reproduce_anchors() -> list[Anchor]:
    """The published figures that are not one move's time, predicted where
    pagetab can (the default profiles, as shipped), each with its entry."""
    before, after = (mremap_folio_loop(p) for p in ("linux-6.16", "linux-6.17"))
    per_page, batched = uffd_move_shares("linux-6.17"), uffd_move_shares("linux-6.18")

    def bigheap(policy: str) -> float:
        return move_stats(64 << 20, "x86-64", policy, dst_align=4096, cpus=1,
                          touch=0).estimated_ns  # fmt: skip

    return [
        Anchor("devjain2025-arm64-1m-64k-folios-loop", "loop time, after / before", "~",
               1.2 / 1.9, after.priced_ns / before.priced_ns,
               "mremap_folio_loop on arm64-4k, linux-6.16 against linux-6.17: the faults and "
               "the mremap of one iteration (mmap, munmap and the memset's stores are not "
               "priced)"),
        Anchor("lokesh2025-uffd-move-flush-share", "ptep_clear_flush share of "
               "move_pages_pte, per-page flushes", ">", 0.40, per_page["tlb flush"],
               "one UFFDIO_MOVE of 2 MiB of written small pages, arm64-4k, linux-6.17"),
        Anchor("lokesh2025-uffd-move-flush-share", "vm_normal_folio share of "
               "move_pages_pte, per-page flushes", "~", 0.20, per_page["folio lookups"],
               "the same move: its folio lookups (pagetab's folio_lookup, a cache miss)"),
        Anchor("lokesh2025-uffd-move-flush-share", "vm_normal_folio share of "
               "move_pages_pte, batched flushes", ">", 0.70, batched["folio lookups"],
               "the same move under linux-6.18 (50944692052b)"),
        Anchor("stoakes2025-bigheap-realloc-raptorlake", "realloc rate, fixed / before", "~",
               138_701 / 143_857, bigheap("linux-6.16") / bigheap("linux-6.17"),
               "a 64 MiB PTE-path move on x86-64, linux-6.17 against linux-6.16: after "
               "0b5be138ce00 x86 looks up no folio (pte_batch_hint is 1), so the move is "
               "what it was"),
        Anchor("stoakes2025-bigheap-realloc-raptorlake", "realloc rate, regressed / before",
               "~", 81_503 / 143_857, None,
               "not predicted: the PTEs each realloc call moves are not published (linux-6.17-"
               "rc1 adds one folio_lookup per PTE moved: pagetab move --policy "
               "linux-6.17-rc1 prices it)"),
    ]  # fmt: skip
