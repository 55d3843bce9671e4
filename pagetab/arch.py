"""Architecture profiles: page-table geometry and layout, TLBs, flush rules, costs.

Each profile is a frozen dataclass; ``arch(name)`` looks one up and
``Arch.replace(**overrides)`` makes a variant. Geometry follows the kernel
headers named in each profile's ``source``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import statistics
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

from .costs_data import COSTS, TLBS, Cost, TlbArraySpec, TlbSpec
from .flush import Arm64Flush, FlushRules, Ppc64RadixFlush, RiscvFlush, X86Flush, flush_families

__all__ = [
    "Arch",
    "Arm64Flush",
    "CalibrationWarning",
    "Cost",
    "FlushRules",
    "Level",
    "Ppc64RadixFlush",
    "TlbArraySpec",
    "TlbSpec",
    "X86Flush",
    "arch",
    "archs",
    "device_doc",
    "devices",
    "load_device",
]

_X86_DEFAULT = X86Flush()


@dataclass(frozen=True)
class Level:
    """One level of the page-table tree.

    ``shift`` is the address shift of the entries at this level (an entry
    maps ``1 << shift`` bytes); ``entries`` is PTRS_PER_<LEVEL>; ``huge``
    says whether an entry here may be a huge leaf (a block mapping).
    """

    name: str
    """The level's name: "pgd", "p4d", "pud", "pmd" or "pte"."""
    shift: int
    """The address shift of its entries (an entry maps ``1 << shift`` bytes)."""
    entries: int
    """PTRS_PER_<LEVEL>: entries per table."""
    huge: bool = False
    """Whether an entry here may be a huge leaf (a block mapping)."""

    @property
    def size(self) -> int:
        """Bytes mapped by one entry at this level (e.g. PMD_SIZE)."""
        return 1 << self.shift

    @property
    def table_bytes(self) -> int:
        """Bytes of one table page at this level."""
        return self.entries * 8


@dataclass(frozen=True)
class Arch:
    """A CPU architecture and kernel configuration as pagetab simulates it.

    ``levels`` run from the top (pgd) to the bottom (pte). Where the kernel
    folds a level (arm64 with 64K pages folds the pud into the pgd),
    ``pud_level`` names the level that plays the pud's part in
    move_page_tables.
    """

    name: str
    """The profile's name (``pt.archs()``)."""
    description: str
    """What it is, in a line."""
    page_shift: int
    """PAGE_SHIFT: log2 of the page size."""
    levels: tuple[Level, ...]
    """The page-table levels, from the top (pgd) to the bottom (pte)."""
    task_size: int
    """TASK_SIZE_MAX: the highest user address + 1."""
    map_window: int
    """DEFAULT_MAP_WINDOW: mmap's top without a high hint."""
    mmap_min_addr: int = 65536
    """vm.mmap_min_addr (its default)."""
    stack_gap: int = 128 << 20
    """MIN_GAP: mmap_base = map_window - MIN_GAP (no ASLR; bytes)."""
    split_pte_lock: bool = True
    """USE_SPLIT_PTE_PTLOCKS (NR_CPUS >= 4): a lock per PTE table, else
    mm->page_table_lock."""
    split_pmd_lock: bool = True
    """ARCH_ENABLE_SPLIT_PMD_PTLOCK: a lock per PMD table, else
    mm->page_table_lock."""
    supports_pt_reclaim: bool = False
    """ARCH_SUPPORTS_PT_RECLAIM: MADV_DONTNEED may free the PTE tables it
    empties (``Policy.pt_reclaim``); x86-64 alone up to Linux 6.18
    (4817f70c25b6)."""
    cont_ptes: int = 0
    """arm64 CONT_PTES: PTEs per contiguous block (PTE_CONT) where the kernel
    folds user mappings (CONFIG_ARM64_CONTPTE, Linux 6.9+); 0: none."""
    bbml2_noabort: bool = False
    """arm64 CPU feature ARM64_HAS_BBML2_NOABORT (break-before-make level 2
    with no conflict aborts; 5aa4b625762e allows Cortex-X4 and Neoverse-V3):
    a kernel with Policy.contpte_bbml2_elide skips the TLBI of
    contpte_convert on it."""
    source: str = ""
    """The kernel headers and documents the geometry follows."""
    tlb: TlbSpec = TLBS["x86-64"]
    """A core's TLBs and page-walk cache."""
    flush: FlushRules = _X86_DEFAULT
    """The TLB flush rule of the arch's family, with its parameters."""
    costs: dict[str, Cost] = field(default_factory=dict, compare=False, hash=False)
    """The cost of each event, by name (``cost``, ``cost_range``)."""
    cold_call: tuple[tuple[int, float], ...] = field(default=(), compare=False, hash=False)
    """What a system call pays beyond its warm cost once its thread has
    faulted N bytes of fresh memory since its previous call (the caches and
    TLBs the faults and their page zeroing took): (N, extra ns) at the sizes
    ``host.measure_cold`` measured, increasing N; empty where nothing was
    measured (only a host calibration measures it)."""
    cold_pte: tuple[tuple[int, float], ...] = field(default=(), compare=False, hash=False)
    """Likewise, the extra ns per PTE a move carries over in ``cold_call``'s
    state (its page tables cold too): (N, extra ns per PTE moved)."""
    cold_resize: tuple[tuple[int, float], ...] = field(default=(), compare=False, hash=False)
    """Likewise, the extra ns of an mremap that moves nothing (a resize in
    place, a shorter path than a move's): (N, extra ns)."""

    def __post_init__(self) -> None:
        if not 2 <= len(self.levels) <= 5:
            raise ValueError(f"{self.name}: 2 to 5 levels, not {len(self.levels)}")
        if self.levels[-1].shift != self.page_shift:
            raise ValueError(f"{self.name}: the pte level's shift must equal page_shift")
        for upper, lower in zip(self.levels, self.levels[1:], strict=False):
            if upper.shift <= lower.shift:
                raise ValueError(f"{self.name}: level shifts must decrease")
            if lower.entries & (lower.entries - 1) or lower.entries <= 0:
                raise ValueError(f"{self.name}: {lower.name} entries must be a power of two")
            if 1 << (upper.shift - lower.shift) != lower.entries:
                raise ValueError(
                    f"{self.name}: {lower.name} has {lower.entries} entries but the "
                    f"{upper.name} entry spans {1 << (upper.shift - lower.shift)}"
                )
        if self.task_size > 1 << (self.levels[0].shift + _log2(self.levels[0].entries)):
            raise ValueError(f"{self.name}: task_size exceeds what the tables can map")
        if not self.mmap_min_addr <= self.map_window <= self.task_size:
            raise ValueError(f"{self.name}: need mmap_min_addr <= map_window <= task_size")
        if not isinstance(self.flush, FlushRules) or self.flush.family not in flush_families():
            raise ValueError(f"{self.name}: flush must be one of "
                             f"{', '.join(c.__name__ for c in flush_families().values())}, "
                             f"not {self.flush!r}")  # fmt: skip
        for event, c in self.costs.items():
            if not isinstance(c, Cost):
                raise ValueError(f"{self.name}: cost {event} must be a Cost, not {c!r}")
        events = {*self.flush.op_costs.values(), *self.flush.remote_ops.values()}
        missing = sorted(e for e in events if e not in self.costs)
        if self.costs and missing:
            raise ValueError(f"{self.name}: no cost for flush event(s) {missing}")
        if self.levels[-2].shift - self.page_shift > 15:
            # a PTE's folio order has 4 bits (_pgtable.pxd E_ORDER)
            raise ValueError(f"{self.name}: PMD order {self.levels[-2].shift - self.page_shift} "
                             "above 15 is not supported")  # fmt: skip
        names = {lv.name for lv in self.levels} | {"pud", "cont"}
        for arr in self.tlb.arrays:
            bad = set(arr.holds) - {"pte", "pmd", "pud", "cont"}
            if bad or not set(arr.holds) <= names:
                raise ValueError(f"{self.name}: TLB array holds unknown sizes {arr.holds}")

    def cost(self, event: str) -> float:
        """Nanoseconds per ``event`` (see ``costs``); KeyError names the valid ones."""
        return self._cost(event).ns

    def cold_call_ns(self, faulted: int) -> float:
        """The extra ns of a system call whose thread faulted ``faulted``
        bytes since its previous call (``cold_call``): linear in log2 of the
        bytes between the measured sizes, linear from 0 below the first,
        the last measured value above the last (never extrapolated); 0
        without a measurement."""
        return _cold(self.cold_call, faulted)

    def cold_pte_ns(self, faulted: int) -> float:
        """The extra ns per PTE a move carries over after ``faulted`` bytes
        (``cold_pte``), interpolated as ``cold_call_ns``."""
        return _cold(self.cold_pte, faulted)

    def cold_resize_ns(self, faulted: int) -> float:
        """The extra ns of an mremap that moves nothing after ``faulted``
        bytes (``cold_resize``; ``cold_call``'s where none was measured)."""
        return _cold(self.cold_resize or self.cold_call, faulted)

    def cost_range(self, event: str) -> tuple[float, float]:
        """(low, high) nanoseconds per ``event``: the range its source states."""
        return self._cost(event).range

    def _cost(self, event: str) -> Cost:
        try:
            return self.costs[event]
        except KeyError:
            raise KeyError(
                f"{self.name} has no cost for {event!r}; it has {sorted(self.costs)}"
            ) from None

    def with_costs(self, **ns: float | tuple[float, float, float]) -> Arch:
        """A variant with some event costs replaced (source: "override"); a
        plain number is exact (low == high == ns), a (low, ns, high) tuple
        gives its range."""
        return self.replace_costs(ns, "override")

    def replace_costs(self, ns: Mapping[str, Any], source: str) -> Arch:
        """A variant with the costs in ``ns`` replaced, credited to ``source``:
        each a number of ns (its range is that number alone) or a
        (low, ns, high) tuple; ValueError names the event of a bad one."""
        unknown = sorted(set(ns) - set(self.costs))
        if unknown:
            raise ValueError(f"unknown cost event(s) {unknown}; valid: {sorted(self.costs)}")
        costs = dict(self.costs)
        for k, v in ns.items():
            costs[k] = _override(k, v, source)
        return self.replace(costs=costs)

    # geometry -----------------------------------------------------------
    @property
    def page_size(self) -> int:
        """PAGE_SIZE in bytes."""
        return 1 << self.page_shift

    @property
    def pmd(self) -> Level:
        """The pmd level (the one whose entries point to PTE tables)."""
        return self.levels[-2]

    @property
    def pud_level(self) -> int:
        """Index in ``levels`` of the level that moves as a pud."""
        return len(self.levels) - 3

    @property
    def pud(self) -> Level:
        """The pud level (the pgd itself where the pud is folded)."""
        return self.levels[self.pud_level]

    @cached_property
    def pmd_size(self) -> int:
        """PMD_SIZE (and HPAGE_PMD_SIZE) in bytes."""
        return self.pmd.size

    @cached_property
    def pud_size(self) -> int:
        """PUD_SIZE in bytes."""
        return self.pud.size

    @property
    def mmap_base(self) -> int:
        """Where top-down mmap placement starts (no randomisation)."""
        return self.map_window - self.stack_gap

    def level(self, name: str) -> Level:
        """The level called ``name`` (pgd, p4d, pud, pmd, pte)."""
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise ValueError(
            f"{self.name} has no level {name!r}; it has {[lv.name for lv in self.levels]}"
        )

    def tlb_geometry(self) -> dict[str, Any]:
        """This profile's TLBs as the C struct tlb_geometry (_tlb.pxd) takes them."""
        # class 3: a contiguous block of cont_ptes PTEs as one entry (arm64)
        classes = {"pte": 0, "pmd": 1, "pud": 2, "cont": 3}
        # without an array that holds it, a contiguous block is cached page by page
        held = any("cont" in t.holds for t in self.tlb.arrays)
        nclass = 4 if self.cont_ptes and held else 3
        arrays = [
            {"level": t.level, "sets": t.sets, "ways": t.ways,
             "classes": sum(1 << classes[h] for h in t.holds if classes[h] < nclass)}
            for t in self.tlb.arrays
        ]  # fmt: skip
        if len(arrays) > 8:
            raise ValueError(f"{self.name}: at most 8 TLB arrays, not {len(arrays)}")
        pad = {"level": 0, "sets": 0, "ways": 0, "classes": 0}
        return {
            "narrays": len(arrays),
            "arrays": arrays + [pad] * (8 - len(arrays)),
            "nclass": nclass,
            "class_shift": [
                self.page_shift,
                self.pmd.shift,
                self.pud.shift,
                self.page_shift + _log2(max(self.cont_ptes, 1)),
            ],
            "pmd_shift": self.pmd.shift,
            "pwc_ways": self.tlb.pwc_entries,
        }

    def replace(self, **overrides: Any) -> Arch:
        """A copy with fields replaced, e.g. ``arch('arm64-4k').replace(name='x')``."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown Arch field(s) {unknown}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **overrides)


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _override(event: str, v: Any, source: str) -> Cost:
    """The Cost of ``event`` given as ns or as a (low, ns, high) tuple."""
    if _number(v):
        low = ns = high = float(v)
        if ns < 0:
            raise ValueError(f"cost {event} must be a number >= 0, not {v!r}")
    elif isinstance(v, tuple) and len(v) == 3 and all(_number(x) for x in v):
        low, ns, high = (float(x) for x in v)
    else:
        raise ValueError(f"cost {event} must be a number >= 0 or a (low, ns, high) tuple, "
                         f"not {v!r}")  # fmt: skip
    try:
        return Cost(ns, source, low, high)
    except ValueError as e:
        raise ValueError(f"cost {event}: {e}") from None


def _levels(spec: list[tuple[str, int, int, bool]]) -> tuple[Level, ...]:
    return tuple(Level(n, s, e, h) for n, s, e, h in spec)


_X86_LEVELS = [
    ("pgd", 39, 512, False),
    ("pud", 30, 512, True),
    ("pmd", 21, 512, True),
    ("pte", 12, 512, False),
]

_X86_FLUSH = X86Flush(source="arch/x86/mm/tlb.c flush_tlb_mm_range")
_RISCV_FLUSH = RiscvFlush(source="arch/riscv/mm/tlbflush.c __flush_tlb_range")
_ARM64_FLUSH = Arm64Flush(source="arch/arm64/include/asm/tlbflush.h __flush_tlb_range")


def _arm64(name: str, description: str, page_shift: int,
           levels: list[tuple[str, int, int, bool]]) -> Arch:  # fmt: skip
    """An arm64 VA_BITS=48 profile (Neoverse N1 class TLBs)."""
    return Arch(
        name=name,
        description=description,
        page_shift=page_shift,
        levels=_levels(levels),
        task_size=1 << 48,
        map_window=1 << 48,
        # CONT_PTE_SHIFT: 4 + PAGE_SHIFT (4K), 7 + PAGE_SHIFT (16K), 5 + PAGE_SHIFT (64K)
        cont_ptes={12: 16, 14: 128, 16: 32}[page_shift],
        source="arch/arm64/include/asm/pgtable-hwdef.h (CONT_PTES); "
        "Documentation/arch/arm64/memory.rst",
        tlb=TLBS["arm64"],
        flush=_ARM64_FLUSH,
        costs=COSTS["arm64"],
    )


def _riscv(name: str, description: str, levels: list[tuple[str, int, int, bool]],
           task_size: int, map_window: int) -> Arch:  # fmt: skip
    """A riscv64 profile (4K pages; pud, pmd and pgd entries may be leaves)."""
    return Arch(
        name=name,
        description=description,
        page_shift=12,
        levels=_levels([(n, sh, e, sh in (21, 30)) for n, sh, e, _ in levels]),
        task_size=task_size,
        map_window=map_window,
        source="RISC-V privileged specification (Sv39/Sv48/Sv57); "
        "arch/riscv/include/asm/pgtable.h (TASK_SIZE, DEFAULT_MAP_WINDOW)",
        tlb=TLBS["riscv64"],
        flush=_RISCV_FLUSH,
        costs=COSTS["riscv64"],
    )


_REGISTRY: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            name="x86-64",
            supports_pt_reclaim=True,
            description="x86-64, 4-level paging, 4K pages",
            page_shift=12,
            levels=_levels(_X86_LEVELS),
            task_size=(1 << 47) - 4096,
            map_window=(1 << 47) - 4096,
            source="arch/x86/include/asm/pgtable_64_types.h; arch/x86/include/asm/page_64_types.h",
            tlb=TLBS["x86-64"],
            flush=_X86_FLUSH,
            costs=COSTS["x86-64"],
        ),
        Arch(
            name="x86-64-la57",
            supports_pt_reclaim=True,
            description="x86-64, 5-level paging (LA57), 4K pages",
            page_shift=12,
            levels=_levels([("pgd", 48, 512, False), ("p4d", 39, 512, False), *_X86_LEVELS[1:]]),
            task_size=(1 << 56) - 4096,
            map_window=(1 << 47) - 4096,
            source="arch/x86/include/asm/pgtable_64_types.h (CONFIG_X86_5LEVEL)",
            tlb=TLBS["x86-64"],
            flush=_X86_FLUSH,
            costs=COSTS["x86-64"],
        ),
        _arm64("arm64-4k", "arm64, 4K granule, VA_BITS=48, 4 levels", 12, _X86_LEVELS),
        _arm64(
            "arm64-16k",
            "arm64, 16K granule, VA_BITS=48, 4 levels (pgd has 2 entries)",
            14,
            [
                ("pgd", 47, 2, False),
                ("pud", 36, 2048, False),
                ("pmd", 25, 2048, True),
                ("pte", 14, 2048, False),
            ],
        ),
        _arm64(
            "arm64-64k",
            "arm64, 64K granule, VA_BITS=48, 3 levels (pud folded into pgd)",
            16,
            [("pgd", 42, 64, False), ("pmd", 29, 8192, True), ("pte", 16, 8192, False)],
        ),
        Arch(
            name="ppc64-radix-64k",
            description="powerpc64 radix MMU, 64K pages, index bits 13/9/9/5",
            page_shift=16,
            levels=_levels(
                [
                    ("pgd", 39, 8192, False),
                    ("pud", 30, 512, True),
                    ("pmd", 21, 512, True),
                    ("pte", 16, 32, False),
                ]
            ),
            task_size=1 << 52,
            map_window=1 << 47,
            # PPC_BOOK3S_64 selects ARCH_ENABLE_SPLIT_PMD_PTLOCK
            # (arch/powerpc/platforms/Kconfig.cputype): split PMD locks
            split_pmd_lock=True,
            source="arch/powerpc/include/asm/book3s/64/radix-64k.h; asm/task_size_64.h; "
            "arch/powerpc/platforms/Kconfig.cputype (ARCH_ENABLE_SPLIT_PMD_PTLOCK)",
            tlb=TLBS["ppc64"],
            flush=Ppc64RadixFlush(source="arch/powerpc/mm/book3s64/radix_tlb.c"),
            costs=COSTS["ppc64"],
        ),
        *(
            _riscv(name, description, levels, task, window)
            for name, description, levels, task, window in (
                ("riscv64-sv39", "riscv64 Sv39, 3 levels, 4K pages (the pud folded into the pgd)",
                 [("pgd", 30, 512, True), *_X86_LEVELS[2:]], 1 << 38, 1 << 38),
                ("riscv64-sv48", "riscv64 Sv48, 4 levels, 4K pages", _X86_LEVELS, 1 << 47,
                 1 << 47),
                ("riscv64-sv57", "riscv64 Sv57, 5 levels, 4K pages",
                 [("pgd", 48, 512, False), ("p4d", 39, 512, False), *_X86_LEVELS[1:]],
                 1 << 56, 1 << 47),
            )
        ),
    )
}  # fmt: skip


def _variants() -> None:
    """Registered variants of the base profiles: x86-64 with INVLPGB, arm64 with
    Linux 4.9's flush rule, arm64 on a BBML2-noabort CPU, arm64 with
    FEAT_TLBIRANGE, riscv with flush IPIs or Svinval, and arm64 16K/64K with
    their MAX_DVM_OPS (each flush rule's ``source`` names its kernel code)."""
    x86, a4k = _REGISTRY["x86-64"], _REGISTRY["arm64-4k"]
    for v in (
        x86.replace(
            name="x86-64-invlpgb",
            description="x86-64 with AMD INVLPGB broadcast invalidation instead of IPIs "
            "for a process running on 4 or more CPUs (a global ASID)",
            flush=X86Flush(invlpgb=True,
                           source="arch/x86/mm/tlb.c broadcast_tlb_flush (INVLPGB) for an mm "
                           "with a global ASID (consider_global_asid: running on 4+ CPUs)"),
        ),
        a4k.replace(
            name="arm64-4k-linux-4.9",
            description="arm64 4K as on Linux 4.9: per-page TLBI up to MAX_TLB_RANGE (1024 "
            "pages), no range TLBI",
            flush=Arm64Flush(legacy_limit=1024,
                             source="v4.9 arch/arm64/include/asm/tlbflush.h __flush_tlb_range: "
                             "MAX_TLB_RANGE = 1024 pages"),
        ),
        a4k.replace(
            name="arm64-4k-bbml2",
            description="arm64 4K on a CPU with BBML2 and no conflict aborts (Neoverse-V3, "
            "Cortex-X4) and FEAT_TLBIRANGE: from Linux 6.17 contpte_convert issues no TLBI",
            bbml2_noabort=True,
            flush=Arm64Flush(range=True,
                             source="arch/arm64/include/asm/tlbflush.h __flush_tlb_range_op; "
                             "arch/arm64/mm/contpte.c contpte_convert (83bbd6be7d17)"),
        ),
        a4k.replace(
            name="arm64-4k-tlbirange",
            description="arm64 4K with FEAT_TLBIRANGE (TLBI RVAE1IS range operations)",
            flush=Arm64Flush(range=True,
                             source="arch/arm64/include/asm/tlbflush.h __flush_tlb_range_op"),
        ),
    ):  # fmt: skip
        _REGISTRY[v.name] = v
    sv48 = _REGISTRY["riscv64-sv48"]
    _REGISTRY["riscv64-sv48-ipi"] = sv48.replace(
        name="riscv64-sv48-ipi",
        description="riscv64 Sv48 whose kernel sends flush IPIs to the other harts instead "
        "of SBI remote fences (riscv_use_sbi_for_rfence false: an IMSIC/ACLINT platform)",
        flush=RiscvFlush(sbi=False, source="arch/riscv/mm/tlbflush.c __flush_tlb_range "
                         "(on_each_cpu_mask)"),
    )  # fmt: skip
    _REGISTRY["riscv64-sv48-svinval"] = sv48.replace(
        name="riscv64-sv48-svinval",
        description="riscv64 Sv48 with the proposed Svinval flush path: sinval.vma per page "
        "between sfence.w.inval and sfence.inval.ir (a posted patch, not in mainline)",
        flush=RiscvFlush(svinval=True, source="Mayuresh Chitale, '[PATCH v6 1/1] riscv: mm: "
                         "Add support for Svinval extension', "
                         "<20240609112103.285190-2-mchitale@ventanamicro.com>"),
    )  # fmt: skip
    for name in ("arm64-16k", "arm64-64k"):
        a = _REGISTRY[name]
        # MAX_DVM_OPS is PTRS_PER_PTE (Will Deacon, "arm64: tlbi: Set MAX_TLBI_OPS to
        # PTRS_PER_PTE"; renamed MAX_DVM_OPS by ec1c3b9ff160)
        _REGISTRY[name] = a.replace(
            flush=Arm64Flush(max_dvm_ops=a.levels[-1].entries, source=_ARM64_FLUSH.source)
        )


_variants()


def _default_devices() -> None:
    """Price each family's built-in profiles as its DEFAULT_DEVICES device;
    the others (x86-64, whose sourced table is the test host's, and riscv64,
    which borrows it) get the test host's cold-call curves as measured."""
    text = resources.files("pagetab").joinpath(HOST_COLD).read_text("utf-8")
    curves = _cold_call(json.loads(text)["cold_call"])
    for name, a in list(_REGISTRY.items()):
        device = DEFAULT_DEVICES.get(a.flush.family)
        if device is not None:
            _REGISTRY[name] = apply_device(a, device_doc(device), f"device {device}")
        else:
            _REGISTRY[name] = a.replace(cold_call=curves[0], cold_pte=curves[1],
                                        cold_resize=curves[2])  # fmt: skip


def archs() -> list[str]:
    """Names of the built-in architecture profiles."""
    return list(_REGISTRY)


def arch(name: str | Arch, calibration: str | None = None, device: str | None = None) -> Arch:
    """The profile called ``name`` (an ``Arch`` passes through unchanged).

    ``calibration``: a file written by ``pagetab calibrate`` whose costs
    replace the profile's (``load_calibration``). ``device``: a shipped
    device calibration fitted to published measurements (``devices()``).
    """
    if isinstance(name, Arch):
        a = name
    elif not isinstance(name, str):
        raise TypeError(f"arch must be a name (str) or an Arch, not {type(name).__name__}")
    else:
        try:
            a = _REGISTRY[name]
        except KeyError:
            raise ValueError(f"unknown arch {name!r}; valid: {', '.join(_REGISTRY)}") from None
    if calibration is not None and device is not None:
        raise ValueError("arch: give a calibration file or a device, not both")
    if calibration is not None:
        a = load_calibration(a, calibration)
    if device is not None:
        if not isinstance(device, str):
            raise TypeError(f"device must be a str, not {type(device).__name__}")
        a = load_device(a, device)
    return a


#: the costs a calibration file may set (``ipi`` only by a fit with other CPUs
#: running; ``invlpg_flush`` and ``invlpg`` only on x86; ``mremap_resize_call``
#: measured directly)
CALIBRATED_COSTS = ("mremap_call", "pte_move", "pmd_move", "pud_move", "invlpg_flush", "invlpg",
                    "ipi", "ipi_handler", "mremap_resize_call")  # fmt: skip
#: those of them a calibration measures directly rather than fits
MEASURED_COSTS = ("mremap_resize_call",)


#: the range of a calibrated cost when its file records no fit residuals
CALIBRATION_BAND = 0.15


def _apply_calibration(base: Arch, data: Any, where: str, source: str) -> Arch:
    """``base`` with the costs of a calibration document (checked). Each
    cost's range is +-(median |error|) of the fit that set it (the
    document's "fit" cases for the single-CPU costs, "remote" "fit" for
    ``ipi``), or +-15% (``CALIBRATION_BAND``) where it records no residual
    (no fit cases, or a fit with as many figures as costs)."""
    if not isinstance(data, dict) or not isinstance(data.get("costs"), dict):
        raise ValueError(f"{where}: not a pagetab calibration file")
    if data.get("arch") != base.name:
        raise ValueError(f"{where}: calibrated for {data.get('arch')!r}, not {base.name!r}")
    costs = data["costs"]
    unknown = set(costs) - set(CALIBRATED_COSTS)
    if unknown:
        raise ValueError(f"{where}: unknown costs {sorted(unknown)}")
    remote = data.get("remote")
    fit_of = {"ipi": remote.get("fit") if isinstance(remote, dict) else None}
    other_cpus = {"ipi", "ipi_handler"}  # fitted with other CPUs running the mm
    fitted = base
    measured = set(MEASURED_COSTS)
    try:
        spread = _spread(data.get("spread"))
        groups = (set(costs) - other_cpus - measured, set(costs) & {"ipi"},
                  set(costs) & {"ipi_handler"}, set(costs) & measured)  # fmt: skip
        for group in map(sorted, groups):
            if not group:
                continue
            if group[0] in measured:  # no fit residual speaks for it
                band, why = CALIBRATION_BAND, f"+-{CALIBRATION_BAND:.0%}: measured, not fitted"
            elif group[0] == "ipi_handler":  # one reading thread's case: no residual
                band, why = CALIBRATION_BAND, (f"+-{CALIBRATION_BAND:.0%}: fitted to one "
                                               "reading thread's slow reads")  # fmt: skip
                reader = remote.get("reader") if isinstance(remote, dict) else None
                beyond = (reader or {}).get("beyond_ipi_ns", 0.0)
                if beyond:
                    why += (f"; capped at the sender's wait, {beyond:.0f} ns of those reads "
                            "beyond it")  # fmt: skip
                    warnings.warn(f"{where}: ipi_handler is capped at the sender's wait per "
                                  f"flush IPI, {beyond:.0f} ns below that host's reading "
                                  "thread's slow reads: a reading thread's p99 is "
                                  "under-predicted", CalibrationWarning, stacklevel=2)  # fmt: skip
            else:
                band, why = _fit_band(fit_of.get(group[0], data.get("fit")))
            # each cost's range also spans its fits round by round, where recorded
            values = {k: _widened(_banded(costs[k], band), spread.get(k)) for k in group}
            steady = {k: v for k, v in values.items() if not spread.get(k, {}).get("unstable")}
            if steady:
                fitted = fitted.replace_costs(steady, f"{source}; range {why}")
            for k in sorted(set(values) - set(steady)):
                sp = spread[k]
                fitted = fitted.replace_costs(
                    {k: values[k]}, f"{source}; UNSTABLE on that host ({sp['why']}): range "
                    f"{sp['low']:.0f}-{sp['high']:.0f} ns, its fits round by round")  # fmt: skip
                warnings.warn(f"{where}: {k} was unstable on the host it was calibrated on "
                              f"({sp['why']}); estimates with it carry its range "
                              f"{sp['low']:.0f}-{sp['high']:.0f} ns", CalibrationWarning,
                              stacklevel=2)  # fmt: skip
        # the file's own cold-call measurement, or none: a built-in profile's
        # curves are the test host's, not the calibrated host's
        call, pte, resize = _cold_call(data["cold_call"]) if "cold_call" in data else ((), (), ())
        fitted = fitted.replace(cold_call=call, cold_pte=pte, cold_resize=resize)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return fitted


#: a cold curve: (bytes faulted, extra ns) at each measured size
Curve = tuple[tuple[int, float], ...]


def _cold(curve: Curve, faulted: int) -> float:
    """A cold curve (N bytes faulted, extra ns) at ``faulted`` bytes: linear
    in log2 of the bytes between its sizes, linear from 0 below the first,
    its last value above the last; 0 for an empty curve."""
    pts = [(n, ns) for n, ns in curve if n > 0]
    if not pts or faulted <= 0:
        return 0.0
    if faulted <= pts[0][0]:
        return pts[0][1] * faulted / pts[0][0]
    if faulted >= pts[-1][0]:
        return pts[-1][1]
    (n0, y0), (n1, y1) = next((p, q) for p, q in itertools.pairwise(pts)
                              if faulted <= q[0])  # fmt: skip
    t = math.log2(faulted / n0) / math.log2(n1 / n0)
    return y0 + t * (y1 - y0)


def _cold_call(doc: Any) -> tuple[Curve, Curve, Curve]:
    """A calibration's "cold_call" measurement (``calibrate.measure_cold``)
    as ``Arch.cold_call`` (each size's call median less the warm one, never
    below 0), ``Arch.cold_pte`` (the move's extra beyond the call's, per PTE
    it moved; empty where the file has no moves) and ``Arch.cold_resize``
    (the in-place growth's, likewise; empty where it has none)."""
    try:
        sizes = [int(n) for n in doc["faulted_bytes"]]
        medians = [float(ns) for ns in doc["median_ns"]]
    except (TypeError, KeyError, ValueError):
        raise ValueError("cold_call needs lists faulted_bytes and median_ns") from None
    if len(sizes) != len(medians) or not sizes or sizes[0] != 0 \
            or any(b <= a for a, b in itertools.pairwise(sizes)) \
            or not all(math.isfinite(m) and m >= 0 for m in medians):  # fmt: skip
        raise ValueError("cold_call: faulted_bytes must rise from 0, one finite median_ns each")
    call = tuple((n, max(m - medians[0], 0.0)) for n, m in zip(sizes, medians, strict=True))
    resize: Curve = ()
    if "resize_median_ns" in doc:
        try:
            rs = [float(ns) for ns in doc["resize_median_ns"]]
        except (TypeError, ValueError):
            raise ValueError("cold_call: resize_median_ns must be numbers") from None
        if len(rs) != len(sizes) or not all(math.isfinite(m) for m in rs):
            raise ValueError("cold_call: one finite resize_median_ns per size")
        resize = tuple((n, max(m - rs[0], 0.0)) for n, m in zip(sizes, rs, strict=True))
    if "move_median_ns" not in doc:
        return call, (), resize
    try:
        moves = [float(ns) for ns in doc["move_median_ns"]]
        ptes = int(doc["move_ptes"])
    except (TypeError, KeyError, ValueError):
        raise ValueError("cold_call: move_median_ns needs move_ptes") from None
    if len(moves) != len(sizes) or ptes <= 0 or not all(math.isfinite(m) for m in moves):
        raise ValueError("cold_call: one finite move_median_ns per size, move_ptes > 0")
    # a move's extra beyond its call's, per PTE
    pte = tuple((n, max(mv - moves[0] - extra, 0.0) / ptes)
                for (n, extra), mv in zip(call, moves, strict=True))  # fmt: skip
    return call, pte, resize


def load_calibration(base: Arch, path: str | os.PathLike[str]) -> Arch:
    """``base`` with the costs of a file written by ``pagetab calibrate``
    (their sources name the host, kernel and date it was fitted on).

    Each cost's range is +-(median |error|) of the fit that set it (the
    file's "fit" cases for the single-CPU costs, "remote" "fit" for
    ``ipi``), or +-15% (``CALIBRATION_BAND``) where the file has none."""
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a pagetab calibration file ({e})") from None
    source = (
        f"calibrated on {data.get('host')} ({data.get('kernel')}, {data.get('date')})"
        if isinstance(data, dict)
        else ""
    )
    fitted = _apply_calibration(base, data, str(path), source)
    return fitted.replace(name=f"{base.name}@calibrated")


@functools.cache
def _device_texts() -> dict[str, str]:
    """The shipped device files' text, read once (they never change)."""
    root = resources.files("pagetab").joinpath("data/devices")
    return {p.name[: -len(".json")]: p.read_text("utf-8") for p in sorted(root.iterdir(),
            key=lambda p: p.name) if p.name.endswith(".json")}  # fmt: skip


def device_doc(device: str) -> dict[str, Any]:
    """The shipped device calibration ``device`` (a fresh copy); ValueError
    listing the valid devices if there is none of that name."""
    texts = _device_texts()
    if device not in texts:
        raise ValueError(f"unknown device {device!r}; valid: {', '.join(sorted(texts))}")
    doc: dict[str, Any] = json.loads(texts[device])
    return doc


def devices(of: str | Arch | None = None) -> dict[str, str]:
    """The shipped device calibrations, name -> description: each a device
    of published measurements, priced by the cross-device model
    (``pagetab/data/devices``), for the arch profile ``of`` (any profile of
    the device's family) or all."""
    out = {}
    family = None if of is None else (of if isinstance(of, Arch) else arch(of)).flush.family
    for name in sorted(_device_texts()):
        data = device_doc(name)
        if family is None or _REGISTRY[data["arch"]].flush.family == family:
            out[name] = f"{data['arch']}: {data['device']['description']}"
    return out


#: the sourced costs of each flush family's profiles (costs_data), before
#: any device's factors
SOURCED_COSTS: Mapping[str, Mapping[str, Cost]] = {
    "x86": COSTS["x86-64"], "arm64": COSTS["arm64"], "ppc64": COSTS["ppc64"],
    "riscv": COSTS["riscv64"]}  # fmt: skip
#: the device whose factors price each family's built-in profiles: the one
#: whose published figures cover the most paths, on the most recent kernel
#: (x86-64 keeps its sourced table, single runs on the test host; riscv64 has no published
#: figure, so its profiles keep their sourced costs)
DEFAULT_DEVICES = {"arm64": "kalesh2020-arm64-5.4", "ppc64": "aneesh2021-ppc64"}
#: the test host's calibration (the recording VM's), whose cold-call
#: measurement prices a cold call on every built-in profile
HOST_COLD = "data/traces/host-calibration.json"
#: the costs the device's memory factor scales (a cache miss, not the core)
MEMORY_EVENTS = frozenset({"folio_lookup"})
#: the cross-device model's factor of each move cost (pagetab.device_model)
MOVE_FACTORS = {"mremap_call": "k_call", "mremap_resize_call": "k_call",
                "pte_move": "k_pte", "pmd_move": "k_pmd", "pud_move": "k_pud"}  # fmt: skip


def cost_group(a: Arch, event: str) -> str:
    """The cross-device model's group of ``event`` on ``a``: "flush" (a flush
    instruction of its family, flush_call, ipi: the ISA's flush factor), one
    of MOVE_FACTORS (the device's speed times that shared factor), "memory"
    (MEMORY_EVENTS: the device's memory factor) or "work" (the device's
    speed)."""
    if event in MOVE_FACTORS:
        return MOVE_FACTORS[event]
    if event in MEMORY_EVENTS:
        return "memory"
    if event in set(a.flush.op_costs.values()) | {"flush_call", "ipi"}:
        return "flush"
    return "work"


def _device_factor(a: Arch, event: str, factors: Mapping[str, float]) -> float:
    group = cost_group(a, event)
    if group in ("flush", "memory"):
        return factors[group]
    return factors["speed"] * (factors[group] if group != "work" else 1.0)


def apply_device(base: Arch, doc: Mapping[str, Any], where: str) -> Arch:
    """``base`` priced as the device of ``doc`` (a device document of
    pagetab/data/devices): every sourced cost of its family times the
    device's factor for it (``cost_group``), its range likewise, and the
    document's cold-call measurement (the test host's) times its memory
    factor; ValueError naming ``where`` for a malformed
    document."""
    factors = doc.get("factors")
    names = ("speed", "memory", "flush", *sorted(set(MOVE_FACTORS.values())))
    if not isinstance(factors, dict) or not all(
            _number(factors.get(k)) and 0 < factors[k] < math.inf for k in names):  # fmt: skip
        raise ValueError(f"{where}: needs factors {', '.join(names)} (finite, > 0)")
    sourced = SOURCED_COSTS[base.flush.family]
    name = doc.get("device", {}).get("name", where)
    costs = {}
    for e, c in sourced.items():
        f = _device_factor(base, e, factors)
        costs[e] = Cost(c.ns * f, f"{c.source}; x{f:.3g} for the device {name} "
                        f"({cost_group(base, e)} factor of pagetab.device_model)",
                        c.low * f, c.high * f)  # fmt: skip
    try:
        curves = _cold_call(doc.get("cold_call"))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    call, pte, resize = (tuple((n, ns * factors["memory"]) for n, ns in c) for c in curves)
    return base.replace(costs=costs, cold_call=call, cold_pte=pte, cold_resize=resize)


def load_device(base: Arch, device: str) -> Arch:
    """``base`` with the costs of the shipped device ``device`` (for base's
    family: any profile of it, e.g. arm64-4k-linux-4.9 with an arm64
    device); ValueError listing the valid devices otherwise."""
    data = device_doc(device)
    if _REGISTRY[data["arch"]].flush.family != base.flush.family:
        valid = ", ".join(devices(base)) or "none"
        raise ValueError(f"device {device} is for {_REGISTRY[data['arch']].flush.family} "
                         f"profiles, not {base.name}; valid: {valid}")  # fmt: skip
    return apply_device(base, data, f"device {device}").replace(name=f"{base.name}@{device}")


def _fit_band(fit: Any) -> tuple[float, str]:
    """(relative half-width, what it is) from a calibration fit's cases."""
    errors = []
    if isinstance(fit, list):
        errors = [abs(r["error"]) for r in fit
                  if isinstance(r, dict) and _number(r.get("error"))
                  and math.isfinite(r["error"])]  # fmt: skip
    m = statistics.median(errors) if errors else 0.0
    if m <= 1e-9:
        # no residual to measure the fit by (none recorded, or exactly determined)
        return CALIBRATION_BAND, f"+-{CALIBRATION_BAND:.0%}: the fit records no residual"
    return m, f"+-{m:.1%}: the median |error| of the fit's {len(errors)} cases"


class CalibrationWarning(UserWarning):
    """A calibration file's cost was unstable on the host it was measured
    on (``calibrate.spread``): its estimates carry the whole range."""


def _spread(doc: Any) -> dict[str, dict[str, Any]]:
    """A calibration document's "spread" (each fitted cost's fits round by
    round: low, high, unstable, why), checked; {} where it has none."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError('"spread" must be an object of costs')
    for k, sp in doc.items():
        ok = isinstance(sp, dict) and all(_number(sp.get(x)) and sp[x] >= 0
                                          for x in ("low", "high"))  # fmt: skip
        if not ok or sp["low"] > sp["high"] or not isinstance(sp.get("unstable", False), bool):
            raise ValueError(f'"spread" of {k!r} needs low <= high (ns, >= 0) and a bool '
                             '"unstable"')  # fmt: skip
    return doc


def _widened(value: Any, spread: dict[str, Any] | None) -> Any:
    """A banded cost (low, ns, high) widened to span ``spread``'s low-high."""
    if spread is None or not isinstance(value, tuple):
        return value
    low, ns, high = value
    return (min(low, float(spread["low"]), ns), ns, max(high, float(spread["high"]), ns))


def _banded(ns: Any, band: float) -> Any:
    """``ns`` as (low, ns, high) +-``band`` (low at least 0); anything but
    a number as it is, for replace_costs to refuse by name."""
    if not _number(ns) or not math.isfinite(ns) or ns < 0:
        return ns
    return (max(ns * (1 - band), 0.0), ns, ns * (1 + band))


_default_devices()
