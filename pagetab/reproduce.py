"""Published mremap measurements, simulated next to the published numbers.

``reproduce_2018``: the findings of the 2018 fast-mremap thread and of
c49dd3401802 as ratios. Each case moves a write-populated 1 GiB region once
per policy or alignment, single-threaded as the published measurements
were, and takes the ratio of the estimated kernel times.
``reproduce_published``: every published timing in pagetab/data/published.json
(with its source, hardware, kernel and samples), as absolute times. Costs
come from the arch profiles' tables (pagetab/costs_data.py), never tuned
to these figures.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from .arch import Arch, device_doc, devices
from .arch import arch as _arch
from .constants import MAP_ANONYMOUS, MAP_PRIVATE, MREMAP_FIXED, MREMAP_MAYMOVE
from .experiment import move_stats
from .space import AddressSpace

__all__ = [
    "Finding",
    "LoopIteration",
    "Published",
    "mremap_folio_loop",
    "published_entries",
    "published_us",
    "reproduce_2018",
    "reproduce_published",
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
    PUD boundary to ``dst_offset`` past another."""
    return move_stats(GIB, arch, policy, dst_align=dst_offset, cpus=1, touch=0).estimated_ns


def _ratio(arch: str | Arch, slow: tuple[str, int], fast: tuple[str, int]) -> float:
    return _move_ns(arch, *slow) / _move_ns(arch, *fast)


def reproduce_2018() -> list[Finding]:
    """Simulate every finding of the 2018 thread and of c49dd3401802."""
    x86 = _arch("x86-64")
    pmd = x86.pmd_size
    page = x86.page_size
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
                "per-PMD flushes are cheap again (large ratio)", "FEAT_TLBIRANGE, Linux 5.7+"),
        Finding("arm64 linux-5.11 1 GiB: PMD moves vs PTE moves", "arm64-4k",
                "PTE path", "PMD path",
                _ratio("arm64-4k", ("linux-5.11", page), ("linux-5.11", pmd)), 8.0,
                "about 8x", "c49dd3401802"),
        Finding("arm64 linux-5.11 1 GiB: PUD moves vs PMD moves", "arm64-4k",
                "PMD path", "PUD path",
                _ratio("arm64-4k", ("linux-5.11", pmd), ("linux-5.11", 0)), 19.0,
                "about 19x", "c49dd3401802"),
        Finding("arm64 linux-5.11 1 GiB: PUD moves vs PTE moves", "arm64-4k",
                "PTE path", "PUD path",
                _ratio("arm64-4k", ("linux-5.11", page), ("linux-5.11", 0)), 150.0,
                "about 150x", "c49dd3401802"),
        Finding("x86-64 1 GiB: PUD moves vs PMD moves", "x86-64",
                "PMD path", "PUD path",
                _ratio("x86-64", ("linux-5.0", 0), ("linux-5.11", 0)), 205.7215 / 15.594,
                "about 13x", "Kalesh Singh, x86: mremap speedup - Enable HAVE_MOVE_PUD "
                "(means of 10 runs, 205.7 vs 15.6 us)"),
    ]  # fmt: skip
    out += _device_findings(page, pmd)
    return out


def _device_findings(page: int, pmd: int) -> list[Finding]:
    """The published ratios under the device calibrations: each device on
    the figures it was fitted to (so they hold by construction: the check
    is that the model's structure lets one cost table say all of them),
    and the 2020 arm64 device predicting the 2018 one's ratio (never fitted)."""
    a20 = _arch("arm64-4k", device="kalesh2020-arm64-5.4")
    a20_49 = _arch("arm64-4k-linux-4.9", device="kalesh2020-arm64-5.4")
    a18 = _arch("arm64-4k-linux-4.9", device="joel2018-arm64-4.9")
    x20 = _arch("x86-64", device="kalesh2020-x86-5.4")
    c49 = "c49dd3401802 and 45544eee9606 (Kalesh Singh, means of 10 runs)"
    joel = "Joel Fernandes, 2018 fast-mremap postings, 3 runs each way"
    return [
        Finding(f"{a20.name}: PMD moves vs PTE moves (fitted)", a20.name, "PTE path",
                "PMD path", _ratio(a20, ("linux-4.19", pmd), ("linux-5.0", pmd)),
                9100.8854 / 1134.3126, "about 8x", c49),
        Finding(f"{a20.name}: PUD moves vs PMD moves (fitted)", a20.name, "PMD path",
                "PUD path", _ratio(a20, ("linux-5.0", pmd), ("linux-5.11", 0)),
                1134.3126 / 59.3957, "about 19x", c49),
        Finding(f"{a20.name}: PUD moves vs PTE moves (fitted)", a20.name, "PTE path",
                "PUD path", _ratio(a20, ("linux-4.19", pmd), ("linux-5.11", 0)),
                9100.8854 / 59.3957, "about 150x", c49),
        Finding(f"{x20.name}: PUD moves vs PMD moves (fitted)", x20.name, "PMD path",
                "PUD path", _ratio(x20, ("linux-5.0", 0), ("linux-5.11", 0)),
                205.7215 / 15.594, "about 13x", c49),
        Finding(f"{a18.name}: one flush at the end (fitted)", a18.name, "linux-4.9",
                "fast-mremap-v2", _ratio(a18, ("linux-4.9", pmd), ("fast-mremap-v2", pmd)),
                202071.5477 / 392.5177, "about 500x", joel),
        Finding(f"{a20_49.name}: one flush at the end (2020 costs predict 2018)", a20_49.name,
                "linux-4.9", "fast-mremap-v2",
                _ratio(a20_49, ("linux-4.9", pmd), ("fast-mremap-v2", pmd)),
                202071.5477 / 392.5177, "about 500x", f"{joel}; predicted, not fitted"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Published:
    """One published timing and, where pagetab can simulate it, its
    simulated counterpart (a single-CPU move, source PUD aligned) under one
    cost profile: the arch profile as shipped, or a device calibration
    (fitted to this very source when ``fitted``, else a cross-source
    prediction)."""

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
    fitted: bool  # whether this source was used to fit the costs it is simulated with
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


def reproduce_published() -> list[Published]:
    """Every entry of the data file, with its simulated time where pagetab
    simulates that move: once with the arch profile as shipped and once per
    shipped device calibration of that profile (``fitted`` where the device
    was fitted to this entry, a cross-source prediction otherwise)."""
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
            fitted = device is not None and e["id"] in device_doc(device)["device"]["fitted_to"]
            lo_ns, hi_ns = st.estimated_ns_range
            out.append(Published(e["id"], prof.name, *common, st.estimated_ns / 1e3, how,
                                 fitted, _source(e), lo_ns / 1e3, hi_ns / 1e3))  # fmt: skip
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
