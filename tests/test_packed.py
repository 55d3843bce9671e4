"""Packed PTE tables change nothing but the simulator's memory and time.

A hypothesis state machine drives the same random operations through two
spaces of one arch and policy, one packing uniform PTE tables and one not
(``PAGETAB_PACK``), and requires at every step the same results and
errnos, frames, folio orders, VMAs, page-table counts, move counters and
estimates, access counters and store soundness. The unit tests below pin
what packing must achieve: a uniform region's tables stay packed through
populate, moves (PMD and PTE paths, aligned or not), zap and mprotect; a
change no descriptor holds expands a table; bad saved descriptors are
refused and saves without them load.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import pagetab as pt
from pagetab import _tables

BASE = 1 << 40
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
MOVE = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
ARCHS = [
    "x86-64",
    "x86-64-la57",
    "arm64-4k",
    "arm64-16k",
    "riscv64-sv48",
    "ppc64-radix-64k",
    "arm64-64k",
]
#: table-moving, PTE-by-PTE (4.18), LATENCY_LIMIT's extents (4.9), batched
POLICIES = ["linux-6.18", "linux-4.9", "linux-4.18", "linux-5.11", "batched-ptl"]


@contextmanager
def packing(on: bool) -> Iterator[None]:
    """PAGETAB_PACK set to ``on`` while new stores are made."""
    old = os.environ.get("PAGETAB_PACK")
    os.environ["PAGETAB_PACK"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["PAGETAB_PACK"]
        else:
            os.environ["PAGETAB_PACK"] = old


def space(on: bool, arch: str = "x86-64", **kw: Any) -> pt.AddressSpace:
    with packing(on):
        return pt.AddressSpace(arch, **kw)


def _move_record(mm: pt.AddressSpace) -> dict[str, Any] | None:
    m = mm.last_move
    if m is None:
        return None
    d = m.as_dict()
    d.pop("wall_ns", None)
    return d


class PackedAgrees(RuleBasedStateMachine):
    """One space packs, the other does not: they must not differ."""

    @initialize(
        arch=st.sampled_from(ARCHS),
        policy=st.sampled_from(POLICIES),
        thp=st.sampled_from(["never", "madvise"]),
        mthp=st.sampled_from([{}, {4: "always"}, {2: "always", 5: "always"}]),
    )
    def setup(self, arch: str, policy: str, thp: str, mthp: dict[int, str]) -> None:
        # large folios too (contpte blocks fold on arm64 from order 4 on)
        a = pt.arch(arch)
        sizes = {a.page_size << o: m for o, m in mthp.items() if a.page_size << o < a.pmd_size}
        self.spaces = [space(on, arch, cpus=2, thp=thp, policy=policy, thp_sizes=sizes)
                       for on in (True, False)]  # fmt: skip
        self.page, self.pmd = a.page_size, a.pmd_size
        self.window = 16 * self.pmd
        # three PMDs into a PUD: a packed PMD table's run starts past entry 0
        self.base = BASE + 3 * self.pmd

    def _addr(self, data: st.DataObject) -> int:
        # page-aligned, often table-aligned: runs that start and end at
        # table boundaries are what packing holds
        unit = data.draw(st.sampled_from([self.page, self.pmd, self.pmd // 2]))
        return self.base + data.draw(st.integers(0, self.window // unit - 1)) * unit

    def _len(self, data: st.DataObject) -> int:
        unit = data.draw(st.sampled_from([self.page, self.pmd]))
        return data.draw(st.integers(1, 6)) * unit

    def _all(self, call: str, *args: Any, **kw: Any) -> None:
        outcomes = []
        for mm in self.spaces:
            try:
                r = getattr(mm, call)(*args, **kw)
                outcomes.append(("ok", asdict(r) if hasattr(r, "__dataclass_fields__") else r))
            except OSError as e:
                outcomes.append(("errno", e.errno))
        if outcomes[0][0] == "ok" and isinstance(outcomes[0][1], dict):
            for o in outcomes:
                o[1].pop("wall_ns", None)
        assert outcomes[0] == outcomes[1], (call, args, outcomes)

    @rule(data=st.data(), prot=st.sampled_from([pt.PROT_READ | pt.PROT_WRITE, pt.PROT_READ]))
    def mmap(self, data: st.DataObject, prot: int) -> None:
        self._all("mmap", self._len(data), self._addr(data), prot, FIX)

    @rule(
        data=st.data(),
        advice=st.sampled_from(
            [pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE, pt.MADV_DONTNEED, pt.MADV_HUGEPAGE]
        ),
    )
    def madvise(self, data: st.DataObject, advice: int) -> None:
        self._all("madvise", self._addr(data), self._len(data), advice)

    @rule(write=st.booleans())
    def populate_window(self, write: bool) -> None:
        # the whole window mapped afresh and populated: its PMD table is
        # uniform (packed) until a later step breaks it
        self._all("mmap", self.window, self.base, pt.PROT_READ | pt.PROT_WRITE, FIX)
        self._all("madvise", self.base, self.window,
                  pt.MADV_POPULATE_WRITE if write else pt.MADV_POPULATE_READ)  # fmt: skip

    @rule(data=st.data(), write=st.booleans(), sequential=st.booleans())
    def access(self, data: st.DataObject, write: bool, sequential: bool) -> None:
        start = self._addr(data)
        n = data.draw(st.integers(1, 3 * self.pmd // self.page))
        if sequential:
            addrs = start + np.arange(n, dtype=np.uint64) * np.uint64(self.page)
        else:
            seed = data.draw(st.integers(0, 2**16))
            offs = np.random.default_rng(seed).integers(0, self.window // self.page, n)
            addrs = np.uint64(self.base) + offs.astype(np.uint64) * np.uint64(self.page)
        self._all("access", addrs, 0, write)

    @rule(
        data=st.data(),
        prot=st.sampled_from([pt.PROT_READ, pt.PROT_READ | pt.PROT_WRITE, pt.PROT_NONE]),
    )
    def mprotect(self, data: st.DataObject, prot: int) -> None:
        self._all("mprotect", self._addr(data), self._len(data), prot)

    @rule(data=st.data())
    def munmap(self, data: st.DataObject) -> None:
        self._all("munmap", self._addr(data), self._len(data))

    @rule(data=st.data(), shift=st.sampled_from([0, 1, 7]))
    def mremap(self, data: st.DataObject, shift: int) -> None:
        # to a table boundary, or off one by ``shift`` pages (the PTE path)
        src, length = self._addr(data), self._len(data)
        dst = self.base + 2 * self.window + data.draw(st.integers(0, 8)) * self.pmd
        self._all("mremap", src, length, length, MOVE, dst + shift * self.page)
        # and back, so later steps see it in the window again
        self._all("mremap", dst + shift * self.page, length, length, MOVE, src)

    @rule(data=st.data(), dontunmap=st.booleans())
    def mremap_in_window(self, data: st.DataObject, dontunmap: bool) -> None:
        # to anywhere in the window: next to the source, in its own table
        length = self._len(data)
        flags = MOVE | (pt.MREMAP_DONTUNMAP if dontunmap else 0)
        self._all("mremap", self._addr(data), length, length, flags, self._addr(data))

    @rule(data=st.data(), write=st.booleans(), shift=st.sampled_from([0, 1]))
    def fault_run_then_move(self, data: st.DataObject, write: bool, shift: int) -> None:
        # a run that ends inside its table (a few pages faulted in order),
        # moved: the source's run is cut, or emptied, part of the way
        start = self._addr(data)
        n = data.draw(st.integers(1, 40))
        self._all("mmap", self.pmd, start & ~(self.pmd - 1),
                  pt.PROT_READ | pt.PROT_WRITE, FIX)  # fmt: skip
        self._all("access", start + np.arange(n, dtype=np.uint64) * np.uint64(self.page), 0,
                  write)  # fmt: skip
        dst = self.base + 2 * self.window + shift * self.page
        self._all("mremap", start & ~(self.pmd - 1), self.pmd, self.pmd, MOVE, dst)
        self._all("mremap", dst, self.pmd, self.pmd, MOVE, start & ~(self.pmd - 1))

    @rule(data=st.data(), holes=st.booleans())
    def uffdio_move(self, data: st.DataObject, holes: bool) -> None:
        # UFFDIO_MOVE into a registered range (it expands packed tables)
        src, length = self._addr(data), self._len(data)
        dst = self.base + 2 * self.window + data.draw(st.integers(0, 8)) * self.page
        self._all("mmap", length, dst, pt.PROT_READ | pt.PROT_WRITE, FIX)
        outcomes = []
        mode = pt.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES if holes else 0
        for mm in self.spaces:
            u = mm.userfaultfd()
            u.register(dst, length, pt.UFFDIO_REGISTER_MODE_MISSING)
            try:
                outcomes.append(("ok", u.move(dst, src, length, mode)))
            except OSError as e:
                outcomes.append(("errno", e.errno))
        assert outcomes[0] == outcomes[1], outcomes
        self._all("munmap", dst, length)

    @rule(write=st.booleans())
    def fork(self, write: bool) -> None:
        # the child's tables are a copy (dump and restore, descriptors too)
        a, b = (mm.fork() for mm in self.spaces)
        n = 3 * self.window
        assert np.array_equal(a.frames(self.base, n), b.frames(self.base, n))
        assert a.mm_struct.tables.live_rows() == b.mm_struct.tables.live_rows()
        addrs = np.uint64(self.base) + np.arange(0, self.window, 7 * self.page, dtype=np.uint64)
        sa, sb = a.access(addrs, write=write), b.access(addrs, write=write)
        assert (sa.faults, sa.segv, sa.walks) == (sb.faults, sb.segv, sb.walks)
        assert np.array_equal(a.frames(self.base, n), b.frames(self.base, n))
        a.check()

    @invariant()
    def agree(self) -> None:
        a, b = self.spaces
        lo, n = self.base, 3 * self.window
        assert np.array_equal(a.frames(lo, n), b.frames(lo, n))
        fa = a.mm_struct.tables.folio_orders(lo, lo + n)
        fb = b.mm_struct.tables.folio_orders(lo, lo + n)
        assert np.array_equal(fa[1], fb[1])
        assert a.vmas() == b.vmas()
        # raw entries (PTE_CONT, soft-dirty, order) at a page in 13
        ta, tb = a.mm_struct.tables, b.mm_struct.tables
        for addr in range(lo, lo + n, 13 * self.page):
            assert ta.entry(addr) == tb.entry(addr), hex(addr)
        assert a.mm_struct.tables.live_rows() == b.mm_struct.tables.live_rows()
        assert a.mm_struct.tables.peak_rows() == b.mm_struct.tables.peak_rows()
        assert a.page_table_bytes == b.page_table_bytes
        assert a.rss_pages == b.rss_pages
        assert _move_record(a) == _move_record(b)
        assert a.mm_struct.tables.pte_tables_visited == b.mm_struct.tables.pte_tables_visited
        assert a.mm_struct.tables.freed_total == b.mm_struct.tables.freed_total
        assert b.mm_struct.tables.packed_tables == 0
        ta = a.mm_struct.tables
        event(
            f"packed tables: {'some' if ta.packed_tables else 'none'}; "
            f"expanded: {'some' if ta.packed_expanded else 'none'}"
        )
        event(
            f"packed PMD tables: {'some' if ta.packed_pmd_tables else 'none'}; "
            f"expanded: {'some' if ta.packed_pmd_expanded else 'none'}"
        )
        for mm in self.spaces:
            mm.check()


PackedAgrees.TestCase.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
test_packed_agrees_with_unpacked = PackedAgrees.TestCase


# ----------------------------------------------------------------------
# what packing must achieve

G = 1 << 30


def _populated(advice: int, size: int = G, on: bool = True) -> tuple[pt.AddressSpace, int]:
    mm = space(on, thp="never")
    a = mm.mmap(size + 2 * (2 << 20))
    a = (a + (2 << 20) - 1) & ~((2 << 20) - 1)
    mm.madvise(a, size, advice)
    return mm, a


@pytest.mark.parametrize("advice", [pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE])
def test_populated_region_is_packed(advice: int) -> None:
    mm, a = _populated(advice)
    t = mm.mm_struct.tables
    assert t.live_rows()[-1] == G >> 21 and t.packed_tables == G >> 21
    assert t.packed_expanded == 0
    # and its PMD tables (one per GiB it reaches into) are packed too
    assert t.packed_pmd_tables == t.live_rows()[-2] == ((a + G - 1) >> 30) - (a >> 30) + 1
    # and reads the same as an unpacked store
    ref, b = _populated(advice, on=False)
    assert np.array_equal(mm.frames(a, G), ref.frames(b, G))
    assert mm.page_table_bytes == ref.page_table_bytes


@pytest.mark.parametrize("shift", [0, 4096, 7 * 4096, 1 << 20])
@pytest.mark.parametrize("advice", [pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE])
def test_moves_keep_tables_packed(advice: int, shift: int) -> None:
    mm, a = _populated(advice, 256 << 20)
    before = mm.frames(a, 256 << 20)
    dst = mm.mmap(512 << 20)
    mm.munmap(dst, 512 << 20)
    dst = ((dst + (2 << 20) - 1) & ~((2 << 20) - 1)) + shift
    got = mm.mremap(a, 256 << 20, 256 << 20, MOVE, dst)
    t = mm.mm_struct.tables
    assert np.array_equal(mm.frames(got, 256 << 20), before)
    assert t.packed_expanded == 0
    assert t.packed_tables == t.live_rows()[-1] == (128 if shift == 0 else 129)
    assert mm.last_move.ptes_moved == (0 if shift == 0 else 65536)


def _pair(advice: int, size: int, policy: str = "linux-6.18") -> list[pt.AddressSpace]:
    """A packing and a non-packing space, [BASE, BASE + size) populated."""
    out = []
    for on in (True, False):
        mm = space(on, thp="never", policy=policy)
        mm.mmap(size, addr=BASE, flags=FIX)
        mm.madvise(BASE, size, advice)
        out.append(mm)
    return out


def _same(a: pt.AddressSpace, b: pt.AddressSpace, lo: int, size: int) -> None:
    assert np.array_equal(a.frames(lo, size), b.frames(lo, size))
    ta, tb = a.mm_struct.tables, b.mm_struct.tables
    assert ta.live_rows() == tb.live_rows() and ta.peak_rows() == tb.peak_rows()
    assert ta.check() == [] and tb.check() == []


@pytest.mark.parametrize("advice", [pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE])
def test_reads_and_tlb_fills_leave_a_packed_pmd_table_packed(advice: int) -> None:
    mm, ref = _pair(advice, G)
    t = mm.mm_struct.tables
    assert t.packed_pmd_tables == 1 and t.live_rows()[-2] == 1
    rng = np.random.default_rng(7)
    addrs = np.uint64(BASE) + rng.integers(0, G // 4096, 50_000).astype(np.uint64) * np.uint64(4096)
    got = [m.access(addrs) for m in (mm, ref)]
    walks = [(g.walks, g.walk_steps, g.faults) for g in got]
    assert walks[0] == walks[1]
    some = [int(x) for x in addrs[:100]]
    assert [mm.translate(x) for x in some] == [ref.translate(x) for x in some]
    assert mm.rss_pages == ref.rss_pages == G // 4096
    assert t.packed_pmd_tables == 1 and t.packed_pmd_expanded == 0
    _same(mm, ref, BASE, G)


@pytest.mark.parametrize(("policy", "shift"), [
    ("linux-6.18", 0), ("linux-6.18", 2 << 20), ("linux-4.18", 0), ("batched-ptl", 0),
    ("linux-4.9", 0)])  # fmt: skip
def test_moves_keep_pmd_tables_packed(policy: str, shift: int) -> None:
    """The PMD path (whole PUD entries, or PMD entries into a PMD table
    whose GiB is not the source's) and the PTE path (4.18's aligned moves)
    land packed PMD tables, and change nothing else."""
    pair = _pair(pt.MADV_POPULATE_WRITE, 256 << 20, policy)
    for mm in pair:
        mm.mremap(BASE, 256 << 20, 256 << 20, MOVE, BASE + 4 * G + shift)
    mm, ref = pair
    t = mm.mm_struct.tables
    assert _move_record(mm) == _move_record(ref)
    assert t.packed_pmd_tables == t.live_rows()[-2] and t.packed_expanded == 0
    assert t.packed_pmd_tables >= 1
    _same(mm, ref, BASE + 4 * G + shift, 256 << 20)


def test_whole_pud_move_carries_a_packed_pmd_table() -> None:
    pair = _pair(pt.MADV_POPULATE_READ, G)
    for mm in pair:
        mm.mremap(BASE, G, G, MOVE, BASE + 4 * G)
    mm, ref = pair
    assert mm.last_move.normal_puds_moved == 1 and _move_record(mm) == _move_record(ref)
    assert mm.mm_struct.tables.packed_pmd_expanded == 0
    _same(mm, ref, BASE + 4 * G, G)


def test_a_write_expands_one_pmd_table_and_one_pte_table() -> None:
    mm, ref = _pair(pt.MADV_POPULATE_READ, 64 << 20)
    for m in (mm, ref):
        m.access([BASE + 5 * 4096], write=True)  # a COW in a packed PMD table
    t = mm.mm_struct.tables
    assert (t.packed_pmd_expanded, t.packed_expanded, t.packed_pmd_tables) == (1, 1, 0)
    assert t.packed_tables == 31
    _same(mm, ref, BASE, 64 << 20)


def test_dontneed_leaves_a_packed_pmd_table_of_empty_tables() -> None:
    """Before PT_RECLAIM (6.16) MADV_DONTNEED keeps the emptied PTE tables:
    a PMD table of empty ones is packed too (PD_EMPTY), and fills again."""
    mm, ref = _pair(pt.MADV_POPULATE_WRITE, 64 << 20, "linux-6.8")
    for m in (mm, ref):
        m.madvise(BASE, 64 << 20, pt.MADV_DONTNEED)
    t = mm.mm_struct.tables
    assert (t.packed_pmd_tables, t.packed_tables, t.live_rows()[-1]) == (1, 32, 32)
    assert mm.rss_pages == 0
    _same(mm, ref, BASE, 64 << 20)
    for m in (mm, ref):
        m.madvise(BASE, 64 << 20, pt.MADV_POPULATE_READ)
    assert t.packed_pmd_tables == 1
    _same(mm, ref, BASE, 64 << 20)


def test_policy_without_pmd_moves_packs_too() -> None:
    """linux-4.18 moves PTE by PTE (no move_normal_pmd on x86 then)."""
    mm = space(True, thp="never", policy="linux-4.18")
    a = mm.mmap(64 << 20, addr=BASE, flags=FIX)
    mm.madvise(a, 64 << 20, pt.MADV_POPULATE_WRITE)
    mm.mremap(a, 64 << 20, 64 << 20, MOVE, BASE + G)
    assert mm.last_move.ptes_moved == 16384
    assert mm.mm_struct.tables.packed_expanded == 0


def test_move_within_one_table() -> None:
    """The source's cut and the destination's join in one table (found by
    a second read): the table expands, and both ends are right."""
    out = []
    for on in (True, False):
        mm = space(on, thp="never")
        a = mm.mmap(4 << 20, addr=BASE, flags=FIX)
        mm.madvise(a, 16 * 4096, pt.MADV_POPULATE_READ)
        # to the next table: a packed run of soft-dirty zero-page PTEs
        b = mm.mremap(a, 16 * 4096, 16 * 4096, MOVE, a + (2 << 20))
        mm.mremap(b, 8 * 4096, 8 * 4096, MOVE | pt.MREMAP_DONTUNMAP, b + 16 * 4096)
        out.append(mm.frames(b, 24 * 4096))
    assert out[0].tolist() == out[1].tolist() == [-1] * 8 + [0] * 16


def test_change_no_descriptor_holds_expands_one_table() -> None:
    mm, a = _populated(pt.MADV_POPULATE_READ, 64 << 20)
    t = mm.mm_struct.tables
    mm.access([a + 5 * 4096], write=True)  # a COW in the middle of a zero-page run
    assert t.packed_expanded == 1 and t.packed_tables == 31
    ref, b = _populated(pt.MADV_POPULATE_READ, 64 << 20, on=False)
    ref.access([b + 5 * 4096], write=True)
    assert np.array_equal(mm.frames(a, 64 << 20), ref.frames(b, 64 << 20))


def test_zap_and_mprotect_of_whole_runs_stay_packed() -> None:
    mm, a = _populated(pt.MADV_POPULATE_WRITE, 64 << 20)
    t = mm.mm_struct.tables
    mm.mprotect(a, 32 << 20, pt.PROT_READ)
    mm.madvise(a + (32 << 20), 1 << 20, pt.MADV_DONTNEED)  # the first half of a table
    assert t.packed_expanded == 0
    assert mm.rss_pages == (64 << 20) // 4096 - 256


def test_sequential_faults_extend_a_run() -> None:
    mm = space(True, thp="never")
    a = mm.mmap(8 << 20, addr=BASE, flags=FIX)
    mm.access(a + np.arange(2048, dtype=np.uint64) * np.uint64(4096), write=True)
    t = mm.mm_struct.tables
    assert t.packed_tables == 4 and t.packed_expanded == 0


def test_bad_descriptor_refused_and_old_saves_load(tmp_path: Any) -> None:
    mm, a = space(True, thp="never"), BASE
    mm.mmap(18 << 20, addr=a, flags=FIX)
    mm.madvise(a, 16 << 20, pt.MADV_POPULATE_WRITE)
    # a page after a gap: the PMD table is not uniform, its PTE tables stay
    mm.madvise(a + (16 << 20) + 4096, 4096, pt.MADV_POPULATE_WRITE)
    data = mm.mm_struct.tables.dump()
    assert data["packed"].shape[0] == 9 and mm.mm_struct.tables.packed_pmd_tables == 0
    fresh = space(True).mm_struct.tables
    fresh.restore(data)
    assert fresh.check() == []
    for word, value, why in ((1, np.uint64(600 << 16), "outside a table"),
                             (1, np.uint64((1 << 32) * 3 | 1 << 16), "step"),
                             (0, np.uint64(7 << 12), "no flags")):  # fmt: skip
        bad = {k: v.copy() for k, v in data.items()}
        bad["packed"][2, word] = value
        with pytest.raises(ValueError, match=why):
            space(True).mm_struct.tables.restore(bad)
    # a save from before packed tables: the same store as rows
    rows = space(False, thp="never")
    b = rows.mmap(18 << 20, addr=a, flags=FIX)
    rows.madvise(b, 16 << 20, pt.MADV_POPULATE_WRITE)
    rows.madvise(b + (16 << 20) + 4096, 4096, pt.MADV_POPULATE_WRITE)
    old = {k: v for k, v in rows.mm_struct.tables.dump().items() if not k.startswith("packed")}
    loaded = space(True).mm_struct.tables
    loaded.restore(old)
    assert np.array_equal(loaded.frames(a, a + (18 << 20)), mm.frames(a, 18 << 20))
    assert loaded.packed_tables == 0


def test_bad_pmd_descriptor_refused_and_saves_without_them_load() -> None:
    mm, a = _populated(pt.MADV_POPULATE_WRITE, 16 << 20)
    t = mm.mm_struct.tables
    data = t.dump()
    assert t.packed_pmd_tables == 1 and data["packed_pmd"].shape[0] == 1
    fresh = space(True).mm_struct.tables
    fresh.restore(data)
    assert fresh.check() == [] and fresh.packed_tables == 8 and fresh.packed_pmd_tables == 1
    assert np.array_equal(fresh.frames(a, a + (16 << 20)), mm.frames(a, 16 << 20))
    empty = np.uint64(1 << 40)  # PD_EMPTY
    for word, value, why in ((1, np.uint64(600 << 16), "outside a table"),
                             (1, np.uint64((1 << 32) * 3 | 8 << 16), "step"),
                             (1, np.uint64(1 << 41 | 8 << 16), "stray bits"),
                             (1, empty | np.uint64(8 << 16), "empty PTE tables with a template"),
                             (0, np.uint64(7 << 12), "no flags")):  # fmt: skip
        bad = {k: v.copy() for k, v in data.items()}
        bad["packed_pmd"][0, word] = value
        with pytest.raises(ValueError, match=why):
            space(True).mm_struct.tables.restore(bad)


def test_a_version_5_file_loads_with_pmd_rows(tmp_path: Any) -> None:
    """A save from before packed PMD tables (format 5): the PMD table a
    version 5 save holds, a row of packed PTE tables, loads as it was."""
    mm, a, data = _rows_of(16 << 20)
    mm.save(tmp_path / "v6.npz")
    with np.load(tmp_path / "v6.npz") as z:
        old = {k: z[k] for k in z.files if not k.startswith("tables_")}
    old.update({f"tables_{k}": v for k, v in data.items() if not k.startswith("packed_pmd")})
    old["meta"] = np.array(json.dumps({**json.loads(str(old["meta"])), "version": 5}))
    np.savez(tmp_path / "v5.npz", **old)
    with packing(True):
        back = pt.AddressSpace.load(tmp_path / "v5.npz")
    t = back.mm_struct.tables
    assert t.packed_pmd_tables == 0 and t.packed_tables == 8 and t.live_rows()[-2] == 1
    assert np.array_equal(back.frames(a, 16 << 20), mm.frames(a, 16 << 20))
    back.madvise(a, 16 << 20, pt.MADV_DONTNEED)  # and it goes on
    back.check()


def _rows_of(size: int) -> tuple[pt.AddressSpace, int, dict[str, Any]]:
    """A space holding ``size`` bytes write-populated where ``_populated``
    puts them (one packed PMD table), and a dump() of it as a version 5
    save holds it: the PMD table a row of packed PTE tables."""
    mm, a = _populated(pt.MADV_POPULATE_WRITE, size)
    t = mm.mm_struct.tables
    data = t.dump()
    pud = int(t.table(0, 0)[(a >> 39) & 511]) >> 12
    slot = (a >> 30) & 511
    pd = data["packed_pmd"][int(t.table(1, pud)[slot]) >> 12]
    lo, hi, step = int(pd[1]) & 0xFFFF, (int(pd[1]) >> 16) & 0xFFFF, (int(pd[1]) >> 32) & 0xFF
    # the PMD row the descriptor stands for: PTE descriptors appended
    pmd = np.zeros((1, 512), dtype=np.uint64)
    base = data["packed"].shape[0]
    descs = np.zeros((hi - lo, 2), dtype=np.uint64)
    for j in range(lo, hi):
        descs[j - lo] = ((int(pd[0]) + ((j * 512 * step) << 12)) % (1 << 64),
                         512 << 16 | step << 32)  # fmt: skip
        pmd[0, j] = 1 | 0x800 | ((base + j - lo) << 12)
    free = set(data["packed_free"].tolist())
    data["packed"] = np.concatenate([data["packed"], descs])
    data["packed_free"] = np.array(sorted(free), dtype=np.int64)
    data["rows2"] = np.concatenate([data["rows2"], pmd])
    rows1 = data["rows1"].copy()
    rows1[pud, slot] = 1 | ((data["rows2"].shape[0] - 1) << 12)
    data["rows1"] = rows1
    return mm, a, data


def test_a_version_4_file_loads_as_rows(tmp_path: Any) -> None:
    """A save from before packed tables (format 4: no descriptors)."""
    mm, a = _populated(pt.MADV_POPULATE_WRITE, 8 << 20, on=False)
    mm.save(tmp_path / "v5.npz")
    with np.load(tmp_path / "v5.npz") as z:
        data = {k: z[k] for k in z.files if not k.startswith("tables_packed")}
    data["meta"] = np.array(json.dumps({**json.loads(str(data["meta"])), "version": 4}))
    np.savez(tmp_path / "v4.npz", **data)
    with packing(True):
        old = pt.AddressSpace.load(tmp_path / "v4.npz")
    assert np.array_equal(old.frames(a, 8 << 20), mm.frames(a, 8 << 20))
    assert old.mm_struct.tables.packed_tables == 0
    old.madvise(a + 4096, 4096, pt.MADV_POPULATE_READ)  # and it goes on
    old.check()


def test_save_load_round_trip_keeps_packing(tmp_path: Any) -> None:
    mm, a = _populated(pt.MADV_POPULATE_READ, 64 << 20)
    mm.save(tmp_path / "s.npz")
    back = pt.AddressSpace.load(tmp_path / "s.npz")
    assert back.mm_struct.tables.packed_tables == 32
    assert np.array_equal(back.frames(a, 64 << 20), mm.frames(a, 64 << 20))


def test_pack_switch_is_checked() -> None:
    with packing(True):
        os.environ["PAGETAB_PACK"] = "yes"
        with pytest.raises(ValueError, match="PAGETAB_PACK must be 0 or 1"):
            _tables.PageTables([39, 30, 21, 12], [512] * 4)


def test_a_row_emptied_whole_packs_again() -> None:
    """try_pack: MADV_DONTNEED of a whole expanded table, under a policy
    that keeps emptied tables (no PT_RECLAIM before 6.16)."""
    mm = space(True, thp="never", policy="linux-6.8")
    a = mm.mmap(4 << 20, addr=BASE, flags=FIX)
    mm.madvise(a, 4 << 20, pt.MADV_POPULATE_READ)
    mm.access([a + 3 * 4096], write=True)
    t = mm.mm_struct.tables
    assert (t.packed_tables, t.packed_expanded) == (1, 1)
    mm.madvise(a, 2 << 20, pt.MADV_DONTNEED)
    assert t.packed_tables == 2 and t.live_rows()[-1] == 2
    assert mm.rss_pages == 512


def test_a_split_thp_is_a_packed_table() -> None:
    out = []
    for on in (True, False):
        mm = space(on, thp="always")
        a = mm.mmap(2 << 20, addr=BASE, flags=FIX)
        mm.madvise(a, 2 << 20, pt.MADV_POPULATE_WRITE)
        mm.munmap(a + (1 << 20), 1 << 20)  # splits the THP, zaps its upper half
        t = mm.mm_struct.tables
        out.append((mm.frames(a, 1 << 20).tolist(), [str(f) for f in mm.folios(a, 1 << 20)],
                    t.live_rows(), t.packed_tables, t.packed_expanded))  # fmt: skip
    assert out[0][:3] == out[1][:3]
    assert out[0][3:] == (1, 0) and out[1][3:] == (0, 0)


@pytest.mark.parametrize("shift", [0, 4096, 16 * 4096])
def test_contiguous_blocks_move_as_with_rows(shift: int) -> None:
    """arm64 contpte: a split THP's packed run is PTE_CONT throughout; moved
    off its blocks' alignment the blocks unfold (and fold again where they
    land aligned), so such a run never takes the packed move."""
    out = []
    for on in (True, False):
        mm = space(on, "arm64-4k", thp="always", policy="linux-6.18")
        a = mm.mmap(2 << 20, addr=BASE, flags=FIX)
        mm.madvise(a, 2 << 20, pt.MADV_POPULATE_WRITE)
        b = mm.mremap(a, 1 << 20, 1 << 20, MOVE, BASE + G + shift)  # splits the THP
        t = mm.mm_struct.tables
        out.append(([t.entry(p) for p in range(b, b + (1 << 20), 4096)],
                    _move_record(mm), t.contpte_unfolds))  # fmt: skip
    assert out[0] == out[1]


def _op_in_a_packed_pmd_table(mm: pt.AddressSpace, op: str) -> None:
    if op == "write fault":
        mm.access([BASE + (5 << 20) + 3 * 4096], write=True)
    elif op == "populate":
        mm.madvise(BASE + (3 << 20), 4 * 4096, pt.MADV_POPULATE_WRITE)
    elif op == "mprotect":
        mm.mprotect(BASE + (3 << 20), 4 * 4096, pt.PROT_READ)
    elif op == "move":
        mm.mremap(BASE + (2 << 20), 4 << 20, 4 << 20, MOVE, BASE + 2 * G + 4096)
    elif op == "uffdio_move":
        mm.mmap(4 << 20, addr=BASE + 2 * G, flags=FIX)
        u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
        u.register(BASE + 2 * G, 4 << 20, pt.UFFDIO_REGISTER_MODE_MISSING)
        u.move(BASE + 2 * G, BASE + (2 << 20), 4 << 20, 0)
    else:
        mm.munmap(BASE + (2 << 20), 4 << 20)


@pytest.mark.parametrize(
    "op", ["write fault", "populate", "mprotect", "move", "uffdio_move", "munmap"]
)
def test_out_of_memory_in_a_packed_pmd_table_leaves_a_sound_store(op: str) -> None:
    """Every allocation an operation on a packed PMD table makes, failed in
    turn (the first expands the PMD table: a row and a descriptor per PTE
    table): the call fails cleanly or succeeds, the store stays sound, and
    no page outside the range it names changes."""
    size = 64 << 20
    failed = 0
    for n in range(1, 48):
        mm = space(True, thp="never")
        mm.mmap(size, addr=BASE, flags=FIX)
        mm.madvise(BASE, size, pt.MADV_POPULATE_READ)
        t = mm.mm_struct.tables
        assert t.packed_pmd_tables == 1
        before = mm.frames(BASE, size)
        t.fail_allocation(n)
        try:
            _op_in_a_packed_pmd_table(mm, op)
            if op in ("write fault", "populate"):  # it did what it said it did
                at = BASE + (5 << 20) + 3 * 4096 if op == "write fault" else BASE + (3 << 20)
                assert (mm.frames(at, 4096) > 0).all(), (op, n)
        except (OSError, MemoryError) as e:
            # (EAGAIN: UFFDIO_MOVE moved part of the range before it failed)
            assert not isinstance(e, OSError) or e.errno in (errno.ENOMEM, errno.EAGAIN), e
            failed += 1
        t.fail_allocation(0)
        assert t.check() == [], (op, n)
        after = mm.frames(BASE, size)
        keep = np.ones(size // 4096, dtype=bool)
        keep[(2 << 20) // 4096 : (6 << 20) // 4096] = False  # the ranges the ops name
        assert np.array_equal(before[keep], after[keep]), (op, n)
    assert failed  # (the sweep reached the failure paths)


@pytest.mark.parametrize(
    "arch", ["riscv64-sv39", "x86-64-la57", "arm64-16k", "arm64-64k", "ppc64-radix-64k"]
)
@pytest.mark.parametrize("advice", [pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE])
def test_every_geometry_packs_pmd_tables_and_agrees(arch: str, advice: int) -> None:
    """Three levels (riscv64-sv39: the PMD tables hang off the pgd), five
    (la57), 16K and 64K pages: a populated run three PMDs into its table
    is packed, read by the TLB fill, moved and written, as a store of rows
    does it."""
    out = []
    for on in (True, False):
        mm = space(on, arch, thp="never")
        a = pt.arch(arch)
        size, base = 6 * a.pmd_size, (1 << 36) + 3 * a.pmd_size
        mm.mmap(size, addr=base, flags=FIX)
        mm.madvise(base, size, advice)
        t = mm.mm_struct.tables
        packed = t.packed_pmd_tables
        rng = np.random.default_rng(3)
        pages = rng.integers(0, size // a.page_size, 3000).astype(np.uint64)
        s = mm.access(np.uint64(base) + pages * np.uint64(a.page_size))
        dst = (1 << 37) + a.pmd_size
        mm.mremap(base, size, size, MOVE, dst)
        mm.access(np.uint64(dst) + np.arange(0, size, 7 * a.page_size, dtype=np.uint64), write=True)
        assert t.check() == []
        frames = mm.frames(dst, size).tolist()
        out.append((packed, (s.walks, s.walk_steps), _move_record(mm), frames, t.live_rows(),
                    t.peak_rows()))  # fmt: skip
    assert out[0][0] == 1 and out[1][0] == 0
    assert out[0][1:] == out[1][1:]


@pytest.mark.parametrize("nent", [0, 3, 1 << 16])
def test_a_table_width_descriptors_cannot_index_is_refused(nent: int) -> None:
    # (a descriptor's run bounds are 16 bits; a row index is a mask)
    with pytest.raises(ValueError, match=r"nents\[3\] must be a power of two in 2\.\.32768"):
        _tables.PageTables([39, 30, 21, 12], [512, 512, 512, nent])
