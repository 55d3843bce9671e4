"""The store's range walker (walk_page_range in _pgtable), through the walks
built on it: frames, folio_orders, count_mapped, populate, zap,
change_prot and free_pgtables on ranges that start and end inside tables,
cross PMD and PUD boundaries and run over holes at every level.

The store has a tiny geometry (8 entries a table: a PTE table maps 8
pages, a PMD 32 KiB, a PUD 256 KiB), so that a few hundred pages hold
every kind of boundary. Each walk's answer is compared with a plain
Python model of the pages computed from ``frames`` over the whole region
(itself checked page by page against ``translate`` and ``entry``, which
use the point walker ``pt_walk``, not the range walker).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from pagetab import _tables
from pagetab._tables import PageTables

PAGE = 1 << 12
SHIFTS = [21, 18, 15, 12]  # pgd, pud, pmd, pte
NENTS = [8, 8, 8, 8]
PMD = 1 << 15
PUD = 1 << 18
PGD = 1 << 21
END = 4 << 20  # the region: two pgd entries, 16 PUDs, 1024 pages
NPAGES = END // PAGE


def build() -> PageTables:
    """Huge leaves at PUD and PMD level, PTE tables full, partial and
    split, contiguous blocks, and holes of every size."""
    t = PageTables(SHIFTS, NENTS)
    t.cont_ptes = 4
    w, r = _tables.POP_WRITE, _tables.POP_READ
    # PUD 0: PTEs, a hole of pages 20..26 across the PMD boundary at 24
    t.populate(0, 20 * PAGE, w, True, True)
    t.populate(27 * PAGE, 64 * PAGE, w, True, True)
    # PUD 1: four PMD THPs, two huge zero pages, two none PMDs
    t.populate(PUD, PUD + 4 * PMD, w, True, True, PUD, 2 * PUD)
    t.populate(PUD + 4 * PMD, PUD + 6 * PMD, r, True, True, PUD, 2 * PUD)
    # PUD 2: a PUD leaf; PUD 3: none
    t.set_leaf(1, 2 * PUD)
    # PUD 4: zero pages, then order-2 folios (folded into contiguous
    # blocks) beside a THP split by a zap of one of its pages
    t.populate(4 * PUD, 4 * PUD + 5 * PAGE, r, True, True)
    t.populate(4 * PUD + PMD, 4 * PUD + 3 * PMD, w, True, True,
               orders=1 << 2, vm_start=4 * PUD, vm_end=5 * PUD)  # fmt: skip
    t.populate(4 * PUD + 4 * PMD, 4 * PUD + 5 * PMD, w, True, True, 4 * PUD, 5 * PUD)
    t.zap(4 * PUD + 4 * PMD + 3 * PAGE, 4 * PUD + 4 * PMD + 4 * PAGE)
    # PUDs 5-7 none; the second pgd entry: a run across a PMD boundary
    # and one page at its very end
    t.populate(3 * PUD + PGD + PAGE, 3 * PUD + PGD + 10 * PAGE, w, True, True)
    t.populate(END - PAGE, END, w, True, True)
    assert t.check() == []
    return t


@dataclass
class Model:
    """Per page of the region: frame (-1 none), folio order, entry level."""

    frames: np.ndarray
    orders: np.ndarray
    levels: np.ndarray  # the level of the leaf mapping the page, -1 none

    def mapped(self) -> np.ndarray:
        return self.frames != -1


def model(t: PageTables) -> Model:
    frames, orders = t.folio_orders(0, END)
    assert np.array_equal(frames, t.frames(0, END))
    levels = np.full(NPAGES, -1)
    for p in range(NPAGES):
        lev, e = t.entry(p * PAGE)
        assert frames[p] == t.translate(p * PAGE)  # the point walker agrees
        if frames[p] != -1:
            levels[p] = lev
            assert e & _tables.PRESENT
    return Model(frames, orders, levels)


def copy(t: PageTables) -> PageTables:
    c = PageTables(SHIFTS, NENTS)
    c.restore(t.dump())
    c.cont_ptes = t.cont_ptes
    return c


@pytest.fixture(scope="module")
def tables() -> PageTables:
    return build()


@pytest.fixture(scope="module")
def before(tables: PageTables) -> Model:
    return model(tables)


def edges() -> list[int]:
    """Page numbers at and beside every table boundary (and the region's)."""
    out = set()
    for span in (PMD, PUD, PGD):
        for b in range(0, END + 1, span):
            out.update(p for p in (b // PAGE - 1, b // PAGE, b // PAGE + 1) if 0 <= p <= NPAGES)
    return sorted(out)


def ranges(n: int, seed: int) -> list[tuple[int, int]]:
    """``n`` page ranges [a, b): ends at table boundaries and beside them,
    or anywhere; the whole region; a single page; never an empty range."""
    rng = random.Random(seed)
    points = edges()
    # and a page short of a huge leaf (a PMD THP, the PUD leaf) at each end
    out = [(0, NPAGES), (NPAGES - 1, NPAGES), (23, 25), (60, 70), (64, 71), (65, 72), (128, 191),
           (129, 192)]  # fmt: skip
    while len(out) < n:
        a, b = (rng.choice(points) if rng.random() < 0.6 else rng.randrange(NPAGES + 1)
                for _ in range(2))  # fmt: skip
        if a != b:
            out.append((min(a, b), max(a, b)))
    return out


def test_the_layout_has_every_case(before: Model) -> None:
    lv = before.levels
    assert {1, 2, 3} <= set(lv.tolist()) and (lv == -1).any()
    # a none entry at every level above the PTEs, and none PTEs
    assert (lv[3 * PUD // PAGE : 4 * PUD // PAGE] == -1).all()  # a none PUD
    assert (lv[PGD // PAGE : PGD // PAGE + 3 * PUD // PAGE] == -1).all()  # a none pgd entry's part
    assert (lv[(PUD + 6 * PMD) // PAGE : 2 * PUD // PAGE] == -1).all()  # none PMDs
    assert (lv[20:27] == -1).all()  # none PTEs across a PMD boundary
    assert (before.frames == 0).any()  # zero pages, huge and small
    assert (before.orders == 2).any()  # mTHP folios
    assert ((lv == 3) & (before.orders == 3)).any()  # the split THP's PTEs


@pytest.mark.parametrize("seed", range(3))
def test_frames_and_orders_of_any_range(tables: PageTables, before: Model, seed: int) -> None:
    for a, b in ranges(150, seed):
        frames, orders = tables.folio_orders(a * PAGE, b * PAGE)
        assert np.array_equal(frames, before.frames[a:b]), (a, b)
        assert np.array_equal(orders, before.orders[a:b]), (a, b)
        assert np.array_equal(tables.frames(a * PAGE, b * PAGE), frames), (a, b)


def test_count_mapped_of_any_range(tables: PageTables, before: Model) -> None:
    mapped = before.mapped()
    for a, b in ranges(300, 10):
        assert tables.count_mapped(a * PAGE, b * PAGE) == mapped[a:b].sum(), (a, b)


@pytest.mark.parametrize("seed", range(2))
def test_zap_of_any_range(tables: PageTables, before: Model, seed: int) -> None:
    for a, b in ranges(80, 20 + seed):
        t = copy(tables)
        assert t.zap(a * PAGE, b * PAGE) == before.mapped()[a:b].sum(), (a, b)
        after = t.frames(0, END)
        want = before.frames.copy()
        want[a:b] = -1  # huge leaves cut by the range are split, keeping their frames
        assert np.array_equal(after, want), (a, b)
        assert t.check() == []


def leaves(m: Model, a: int, b: int) -> int:
    """The leaves mapping pages a..b-1 once every huge leaf the range cuts
    is split (into leaves of the next level, split again where cut): a
    page's is the largest leaf, at its level or below, that the range
    covers whole (a PTE at the last)."""
    seen = set()
    for p in np.flatnonzero(m.levels[a:b] != -1) + a:
        for lev in range(int(m.levels[p]), 4):
            span = 1 << (SHIFTS[lev] - 12)  # pages
            head = p - p % span
            if lev == 3 or (head >= a and head + span <= b):
                seen.add((lev, head))
                break
    return len(seen)


@pytest.mark.parametrize("seed", range(2))
def test_change_prot_of_any_range(tables: PageTables, before: Model, seed: int) -> None:
    w, r = _tables.WRITE, _tables.READ
    for a, b in ranges(80, 30 + seed):
        t = copy(tables)
        assert t.change_prot(a * PAGE, b * PAGE, True, False, False) == leaves(before, a, b)
        assert np.array_equal(t.frames(0, END), before.frames), (a, b)
        for p in np.flatnonzero(before.mapped()):
            _, e = t.entry(int(p) * PAGE)
            _, e0 = tables.entry(int(p) * PAGE)
            if a <= p < b:
                assert e & r and not e & w, (a, b, p)
            else:
                assert e & (r | w) == e0 & (r | w), (a, b, p)
        assert t.check() == []


def tables_needed(m: Model) -> list[int]:
    """Tables per level that the mapped pages need: one at level l per
    level-(l-1) span holding a page mapped at level l or below."""
    out = [1]
    for lev in range(1, 4):
        spans = {p >> (SHIFTS[lev - 1] - 12) for p in np.flatnonzero(m.levels >= lev)}
        out.append(len(spans))
    return out


@pytest.mark.parametrize("seed", range(2))
def test_free_pgtables_after_zap(tables: PageTables, before: Model, seed: int) -> None:
    assert tables.live_rows() == tables_needed(before)  # no empty table to begin with
    for a, b in ranges(60, 40 + seed):
        t = copy(tables)
        t.zap(a * PAGE, b * PAGE)
        t.free_pgtables(a * PAGE, b * PAGE, 0, 0)
        assert t.live_rows() == tables_needed(model(t)), (a, b)
        assert t.check() == []


def test_free_pgtables_keeps_tables_outside_floor_and_ceiling(tables: PageTables) -> None:
    # PUD 0 has 8 PTE tables: with [floor, ceiling) = [PMD, PUD - PMD) the
    # first and the last one span beyond it, and so does its PMD table
    t = copy(tables)
    t.zap(0, PUD)
    t.free_pgtables(0, PUD, PMD, PUD - PMD)
    assert t.live_rows()[3] == tables.live_rows()[3] - 6
    assert [t.entry(a)[0] for a in (0, PMD, PUD - PMD)] == [3, 2, 3]
    t.free_pgtables(0, PUD, 0, PUD)
    assert t.entry(0)[0] == 1 and t.live_rows()[3] == tables.live_rows()[3] - 8
    assert t.check() == []


def test_populate_of_any_range(tables: PageTables, before: Model) -> None:
    for a, b in ranges(80, 50):
        t = copy(tables)
        reached, installed = t.populate(a * PAGE, b * PAGE, _tables.POP_READ, True, False)
        holes = ~before.mapped()[a:b]
        assert (reached, installed) == (b * PAGE, holes.sum()), (a, b)
        want = before.frames.copy()
        want[a:b][holes] = 0  # the zero page where nothing was mapped
        assert np.array_equal(t.frames(0, END), want), (a, b)
        assert t.check() == []


def test_populate_stops_where_a_table_cannot_be_had(tables: PageTables, before: Model) -> None:
    # the none PUD 3 needs a PMD and a PTE table: with room for one, the
    # fault stops at the first page, leaving what came before populated
    t = copy(tables)
    t.limit_bytes = t.table_bytes + 8 * 8
    reached, installed = t.populate(3 * PUD - 2 * PAGE, 3 * PUD + PAGE, _tables.POP_READ, True,
                                    False)  # fmt: skip
    assert reached == 3 * PUD and installed == 0  # PUD 2 is a leaf already
    assert t.live_rows()[2] == tables.live_rows()[2] + 1  # the PMD table was made
    assert t.check() == []


def test_an_address_space_across_a_pud_boundary() -> None:
    """The same walks on x86-64's real geometry, through AddressSpace:
    munmap (zap, free_pgtables) and mprotect (change_prot) of ranges
    that cross the 1 GiB PUD boundary inside PTE tables, over holes."""
    import pagetab as pt

    g, m = 1 << 30, 1 << 21
    lo, hi = g - 2 * m - 3 * PAGE, g + 2 * m + 5 * PAGE
    mm = pt.AddressSpace("x86-64", cpus=1)
    flags = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    mm.mmap(hi - lo, addr=lo, flags=flags)
    for a, b in ((lo, g - m + 7 * PAGE), (g - 9 * PAGE, g + m + 3 * PAGE), (hi - PAGE, hi)):
        mm.madvise(a, b - a, pt.MADV_POPULATE_WRITE)
    frames = mm.frames(lo, hi - lo)
    assert (frames == -1).any() and (frames > 0).any()
    tables = mm.mm_struct.tables
    assert tables.count_mapped(lo, hi) == (frames != -1).sum()
    a, b = g - m - 5 * PAGE, g + 11 * PAGE
    mm.mprotect(a, b - a, pt.PROT_READ)
    assert np.array_equal(mm.frames(lo, hi - lo), frames)
    for p in range(lo, hi, PAGE):
        e = tables.entry(p)[1]
        if frames[(p - lo) // PAGE] != -1:
            assert bool(e & _tables.WRITE) == (not a <= p < b), hex(p)
    mm.munmap(g - 3 * PAGE, m)
    want = frames.copy()
    want[(g - 3 * PAGE - lo) // PAGE : (g - 3 * PAGE + m - lo) // PAGE] = -1
    assert np.array_equal(mm.frames(lo, hi - lo), want)
    assert tables.count_mapped(lo, hi) == (want != -1).sum()
    mm.check()
