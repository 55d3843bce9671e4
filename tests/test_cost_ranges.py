"""The range of every cost, and the interval of every estimate."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from helpers import ALL_ARCHS

import pagetab as pt
from pagetab.cli import main
from pagetab.cost import access_cost, access_cost_range, move_cost, move_cost_range
from pagetab.costs_data import COSTS, Cost
from pagetab.experiment import compare, run_move

M, G = 1 << 20, 1 << 30
BORROWED = ("mremap_call", "mremap_resize_call", "pte_move", "pmd_move", "pud_move", "fault")


@pytest.mark.parametrize("family", sorted(COSTS))
def test_every_cost_has_a_range_its_source_explains(family: str) -> None:
    for event, c in COSTS[family].items():
        assert c.low <= c.ns <= c.high, (family, event)
        if c.ns:
            # a figure of 0 ns (a TLB hit paid in the load itself) may be
            # exact; every other is uncertain and says on what the range rests
            assert c.low < c.high, (family, event)
        assert "range" in c.source or "assumption band" in c.source, (family, event)
        if c.source.startswith("assumption") and c.ns:
            assert "assumption band x0.5-x2" in c.source, (family, event)
        elif c.source.startswith("assumption"):
            # an assumed zero has no multiplicative band: its range says why
            assert c.high > 0 and "range 0-" in c.source, (family, event)
        if c.source.startswith("measured"):
            assert "+-20%" in c.source, (family, event)


def test_assumptions_span_half_to_twice_their_figure() -> None:
    c = COSTS["x86-64"]["ipi"]
    assert (c.low, c.ns, c.high) == (750, 1500, 3000) and c.relative_width == 1.5
    # published ranges: Ingo Molnar's hot and cold cycles at 3 GHz
    assert pt.arch("x86-64").cost_range("invlpg") == (79, 294)
    assert pt.arch("x86-64").cost_range("full_flush") == (84, 122)


@pytest.mark.parametrize("family", ["arm64", "ppc64"])
def test_a_borrowed_measurement_is_wider_than_the_measurement(family: str) -> None:
    # arm64 and ppc64 borrow the x86-64 test host's figures by assumption:
    # the same figure, a visibly wider range
    for event in BORROWED:
        x86, other = COSTS["x86-64"][event], COSTS[family][event]
        assert other.ns == x86.ns
        assert (other.low, other.high) == (x86.low / 2, x86.high * 2)
        assert other.relative_width > x86.relative_width + 1, event


def test_an_estimate_resting_on_assumptions_is_wider() -> None:
    # the same 1 GiB PTE-path move, one CPU: x86-64's rests mostly on the
    # test host's measured per-PTE cost, arm64's on borrowed figures and
    # assumed TLBI and DSB costs
    def width(arch: str) -> float:
        r = run_move(G, arch, "linux-4.19", cpus=1, touch=0)
        low, high = r.estimated_ns_range
        return (high - low) / r.estimated_ns

    assert width("x86-64") < 1 < 1.5 < width("arm64-4k")


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_every_estimate_lies_in_its_interval(arch: str) -> None:
    a = pt.arch(arch)
    size = 4 * a.pmd_size
    for dst in ("page", "pmd"):
        res = compare(size, arch, "all", populate={"write": 0.5, "thp": 0.5}, dst_align=dst,
                      cpus=2, touch=256)  # fmt: skip
        for r in res:
            low, high = r.estimated_ns_range
            assert 0 < low <= r.estimated_ns <= high, (r.policy, dst)
            assert low < high, (r.policy, dst)
    mm = pt.AddressSpace(arch, cpus=2)
    addr = mm.mmap(size)
    st = mm.access(addr + np.arange(0, size, a.page_size, dtype=np.uint64), cpu=1, write=True)
    low, high = st.estimated_ns_range
    assert 0 < low < st.estimated_ns < high
    c = {k: getattr(st, k) for k in ("l1_hits", "l2_hits", "walk_steps", "faults", "cow_faults")}
    assert st.estimated_ns == access_cost(a, c, st.flush_ops)[0]
    assert st.estimated_ns_range == access_cost_range(a, c, st.flush_ops)
    moved = mm.mremap(addr, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, 1 << 36)
    assert moved == 1 << 36 and mm.last_move is not None
    low, high = mm.last_move.estimated_ns_range
    assert (low, high) == move_cost_range(a, mm.last_move)
    assert low <= move_cost(a, mm.last_move)[0] <= high
    clow, chigh = mm.last_move.collateral_ns_range
    assert clow <= mm.last_move.collateral_ns <= chigh


@pytest.mark.parametrize(
    ("low", "ns", "high"),
    [(20, 10, 30), (5, 10, 8), (-1, 0, 1), (0, math.nan, 20), (0, 10, math.inf), (True, 1, 2)],
)
def test_bad_ranges_are_refused(low: float, ns: float, high: float) -> None:
    with pytest.raises(ValueError, match="cost"):
        Cost(ns, "test", low, high)
    with pytest.raises(ValueError, match="cost ipi"):
        pt.arch("x86-64").with_costs(ipi=(low, ns, high))


def test_a_cost_without_a_range_is_its_figure_alone() -> None:
    assert Cost(10.0, "test").range == (10.0, 10.0)
    assert Cost(10.0, "test", 5.0).range == (5.0, 10.0)


def test_bad_overrides_name_the_event() -> None:
    x86 = pt.arch("x86-64")
    for bad in ((1.0, 2.0), (1, "2", 3), "100", -5, math.nan, [1, 2, 3]):
        with pytest.raises(ValueError, match="cost pte_move"):
            x86.with_costs(pte_move=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ppc64-radix-64k: cost dsb must be a Cost"):
        pt.arch("ppc64-radix-64k").replace(costs={**COSTS["ppc64"], "dsb": 160})


def test_with_costs_takes_a_number_or_a_range() -> None:
    x86 = pt.arch("x86-64")
    exact = x86.with_costs(ipi=2000)
    assert exact.cost("ipi") == 2000 and exact.cost_range("ipi") == (2000, 2000)
    ranged = x86.with_costs(ipi=(1000, 2000, 4000))
    assert ranged.cost("ipi") == 2000 and ranged.cost_range("ipi") == (1000, 4000)
    assert ranged.costs["ipi"].source == "override"
    assert ranged.cost_range("pte_move") == x86.cost_range("pte_move")  # the rest as they were
    # through run_move: the same move, only the IPIs' share of the interval moves
    a = run_move(8 * M, policy="linux-5.0", cpus=2, ipi=2000)
    b = run_move(8 * M, policy="linux-5.0", cpus=2, ipi=(1000, 2000, 4000))
    ipis = a.flush_ops["ipi"]
    assert ipis > 0 and a.estimated_ns == b.estimated_ns
    assert b.estimated_ns_range[0] == pytest.approx(a.estimated_ns_range[0] - 1000 * ipis)
    assert b.estimated_ns_range[1] == pytest.approx(a.estimated_ns_range[1] + 2000 * ipis)


def test_results_carry_the_interval(capsys: pytest.CaptureFixture[str]) -> None:
    res = compare(8 * M, "x86-64", ["linux-4.19", "linux-5.0"], cpus=2)
    for r, row in zip(res, res.rows(), strict=True):
        assert (row["estimated_ns_low"], row["estimated_ns_high"]) == r.estimated_ns_range
        assert "estimated_ns_range" not in row
    rows = list(csv.DictReader(io.StringIO(res.to_csv())))
    assert float(rows[0]["estimated_ns_low"]) == res[0].estimated_ns_range[0]
    data = json.loads(res.to_json())
    assert data[1]["estimated_ns_high"] == res[1].estimated_ns_range[1]
    pd = pytest.importorskip("pandas")
    frame = res.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert (frame["estimated_ns_low"] <= frame["estimated_ns"]).all()
    head, cells = res.cells()
    at = head.index("est. range us")
    assert head[at - 1] == "est. us"
    low, high = res[0].estimated_ns_range
    assert cells[0][at] == f"{low / 1e3:.1f}-{high / 1e3:.1f}"
    # the command line: the range beside the estimate, the one-CPU move after it
    assert main(["--size", "8M", "--arch", "x86-64", "--policy", "linux-5.0"]) == 0
    head_line = capsys.readouterr().out.splitlines()[2].split()
    assert head_line[head_line.index("est.") :][:6] == ["est.", "us", "est.", "range", "us", "1"]
    assert main(["move", "--size", "8M"]) == 0
    assert "estimated range" in capsys.readouterr().out


def test_published_timings_show_the_simulated_interval() -> None:
    from pagetab.reproduce import reproduce_published

    for p in reproduce_published():
        if p.simulated_us is None:
            assert p.simulated_low_us is None and p.simulated_high_us is None
        else:
            assert p.simulated_low_us is not None and p.simulated_high_us is not None
            assert p.simulated_low_us < p.simulated_us < p.simulated_high_us, p.id


def test_a_resize_in_place_is_priced_as_a_resize_not_as_a_move() -> None:
    # mremap_at growing into free space or shrinking moves no page table and
    # does none of a move's VMA work: its call costs mremap_resize_call; a
    # call that moved costs mremap_call
    a = pt.arch("x86-64").with_costs(mremap_call=5000.0, mremap_resize_call=300.0)
    mm = pt.AddressSpace(a, cpus=1, policy="linux-6.18")
    base = 1 << 40
    mm.mmap(1 << 20, addr=base, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.mremap(base, 1 << 20, 2 << 20)  # grows in place
    assert mm.last_move is not None and not mm.last_move.moved
    assert mm.last_move.breakdown["syscall"] == 300.0
    mm.mremap(base, 2 << 20, 4096)  # shrinks in place
    assert mm.last_move.breakdown["syscall"] == 300.0
    mm.mmap(4096, addr=base + 4096, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.mremap(base, 4096, 8192, pt.MREMAP_MAYMOVE)  # blocked: moves
    assert mm.last_move.moved and mm.last_move.breakdown["syscall"] == 5000.0
