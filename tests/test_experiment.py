"""run_move, compare and sweep (pagetab.experiment), with their outputs."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import pagetab as pt
from pagetab.experiment import Results, compare, run_move, sweep
from pagetab.scenario import parse_populate

M, G = 1 << 20, 1 << 30


def test_run_move_reports_the_move() -> None:
    r = run_move(64 * M, arch="x86-64", policy="linux-5.0", dst_align="pmd", cpus=2)
    assert r.counters["normal_pmds_moved"] == 32 and r.counters["ptes_moved"] == 0
    # CPU 1 touched it: an IPI for each PMD's flush and for the unmap's
    # flush of the freed source PMD table
    assert r.counters["flush_calls"] == 32 and r.counters["unmap_flushes"] == 1
    assert r.flush_ops["ipi"] == 32 + 1
    # priced from counts derived by hand: 32 PTE tables move by their PMD
    # entries (two PMD locks and the anon_vma lock each); each 512-page
    # flush is above the INVLPG ceiling: a full flush here and, after an IPI,
    # one on CPU 1; the destination (2 MiB past a PUD boundary, in a fresh
    # PGD entry) needs a PUD table and a PMD table. Then the source's unmap
    # frees its PMD table: one flush of [base, base + 4 KiB) at PUD stride,
    # one INVLPG here and, after an IPI, one on CPU 1
    c = pt.arch("x86-64").cost
    expected = {
        "syscall": c("mremap_call"),
        "entry moves": 32 * c("pmd_move"),
        "folio lookups": 0.0,
        "table alloc": 2 * c("table_alloc"),
        "locks": 64 * c("ptl_lock") + 32 * c("rmap_lock"),
        "tlb flush": 32 * (c("flush_call") + 2 * c("full_flush"))
        + c("flush_call")
        + 2 * c("invlpg")
        + c("invlpg_flush"),
        "ipi": (32 + 1) * c("ipi"),
    }
    assert r.safe and r.breakdown == pytest.approx(expected)
    assert r.estimated_ns == pytest.approx(sum(expected.values()))
    assert r.sim_wall_ns > 0 and r.setup_wall_ns > 0 and r.peak_page_table_bytes > 0
    r = run_move(64 * M, arch="x86-64", policy="linux-5.0", dst_align="page", cpus=1)
    assert r.counters["ptes_moved"] == 64 * M // 4096 and r.flush_ops["ipi"] == 0


def test_unsafe_policies_show_windows() -> None:
    r = run_move(8 * M, policy="fast-mremap-v2", cpus=4, touch=2048)
    assert not r.safe and r.unsafe_entries > 0 and r.unsafe_windows > 0


@pytest.mark.parametrize(
    ("populate", "ptes", "huge"),
    [
        ("write", 4096, 0),
        ("read", 4096, 0),
        ("thp", 4096, 8),
        ("sparse", 256, 0),
        ({"write": 0.5, "thp": 0.25}, 3072, 2),
        ("write:0.25", 1024, 0),
    ],
)
def test_populate_kinds_and_mixes(populate: object, ptes: int, huge: int) -> None:
    # PTE moves (destination misaligned by a page) count the present entries,
    # THPs split first; touching from 4 CPUs faults nothing in
    r = run_move(16 * M, policy="linux-6.8", populate=populate, dst_align="page", cpus=4)  # type: ignore[arg-type]
    assert r.counters["ptes_moved"] == ptes
    assert r.counters["huge_pmds_split"] == huge  # a misaligned THP is split first


def test_arch_overrides_change_costs_or_fields() -> None:
    base = run_move(8 * M, policy="linux-5.0", cpus=2)
    dear = run_move(8 * M, policy="linux-5.0", cpus=2, ipi=base.estimated_ns)
    assert dear.estimated_ns > 2 * base.estimated_ns
    named = run_move(8 * M, policy="linux-5.0", cpus=2, name="x86-64-test")
    assert named.arch == "x86-64-test"
    with pytest.raises(ValueError, match="cost event"):
        run_move(8 * M, bogus=1)
    # a typo of an argument is named as one, not as an unknown Arch field
    # (sweep's max_workers was "unknown Arch field(s) ['max_workers']")
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['max_workers'\]"):
        pt.sweep(sizes=[2 << 20], archs=["x86-64"], policies=["linux-6.8"], max_workers=0)
    # an override of another arch's cost event says whose it is
    with pytest.raises(ValueError, match=r"tlbi_page is a cost event of arm64-4k.*not of x86-64"):
        run_move(2 << 20, "x86-64", "linux-6.8", tlbi_page=5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"size": 4095}, ValueError),
        ({"size": "1G"}, TypeError),
        ({"populate": "lots"}, ValueError),
        ({"populate": {"write": 0.8, "read": 0.5}}, ValueError),
        ({"dst_align": "2m"}, ValueError),
        ({"dst_align": 12}, ValueError),
        ({"policy": "linux-9"}, ValueError),
        ({"arch": "vax"}, ValueError),
        ({"cpus": 0}, ValueError),
        ({"touch": -1}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    args = {"size": 8 * M, **kwargs}
    with pytest.raises(error):
        run_move(**args)  # type: ignore[arg-type]


def test_parse_populate() -> None:
    assert parse_populate("thp") == {"thp": 1.0}
    assert parse_populate("write:0.5,read:0.5") == {"write": 0.5, "read": 0.5}
    with pytest.raises(ValueError, match="fraction"):
        parse_populate("write:x")
    with pytest.raises(TypeError):
        parse_populate(3)  # type: ignore[arg-type]


def test_compare_ratios_and_outputs(tmp_path: Path) -> None:
    res = compare([8 * M, 16 * M], ["x86-64", "arm64-4k"], ["linux-4.19", "linux-5.0"], cpus=2)
    assert len(res) == 8 and isinstance(res, Results)
    for r in res:
        assert r.ratio is not None and (r.ratio == 1.0) == (r.policy == "linux-4.19")
        if r.policy == "linux-5.0":
            assert r.ratio > 1  # PMD moves beat PTE moves
    rows = list(csv.DictReader(io.StringIO(res.to_csv(tmp_path / "r.csv"))))
    assert len(rows) == 8 and (tmp_path / "r.csv").read_text().startswith("arch,policy,size")
    assert {r["policy"] for r in rows} == {"linux-4.19", "linux-5.0"}
    data = json.loads(res.to_json(tmp_path / "r.json"))
    assert data == json.loads((tmp_path / "r.json").read_text())
    assert data[0]["ptes_moved"] == 8 * M // 4096 and "ns_tlb_flush" in data[0]
    text = res.table()
    # the heading, its rule, a row per move
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["arch", "size", "policy"] and len(lines) == 10
    pd = pytest.importorskip("pandas")
    frame = res.to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 8


def test_compare_marks_unsafe_rows() -> None:
    res = compare(8 * M, "x86-64", ["linux-4.19", "fast-mremap-v2"], cpus=4)
    lines = res.table().splitlines()[2:]  # past the heading and its rule
    assert "UNSAFE" not in lines[0] and res[0].safe
    assert lines[1].endswith("UNSAFE") and not res[1].safe


def test_compare_progress_callback() -> None:
    seen: list[tuple[int, int]] = []
    compare(
        [4 * M], ["x86-64"], ["linux-4.19", "linux-5.0"], progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 2), (2, 2)]


def test_a_long_move_reports_its_progress_and_the_same_results() -> None:
    # a 4 GiB mix (THP, PTEs, sparse) populated a PUD-aligned piece at a time
    # for the progress bar: the same page tables and move as in one go
    calls: list[tuple[int, int]] = []
    kw = {"arch": "x86-64", "policy": "linux-6.18", "populate": "write:0.5,thp:0.25,sparse:0.25",
          "dst_align": "page", "touch": 64}  # fmt: skip
    with_bar = pt.run_move(4 << 30, progress=lambda d, t: calls.append((d, t)), **kw)
    plain = pt.run_move(4 << 30, **kw)
    wall = ("sim_wall_ns", "setup_wall_ns")
    assert {k: v for k, v in with_bar.row().items() if k not in wall} == {
        k: v for k, v in plain.row().items() if k not in wall}  # fmt: skip
    done = [d for d, _ in calls]
    assert len(calls) >= 4 and done == sorted(done) and calls[-1] == (4 << 30, 4 << 30)


def test_calibration_reports_each_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    from pagetab import calibrate

    monkeypatch.setattr(calibrate, "measure", lambda case, repeats, threads=1: 1000.0)
    seen: list[tuple[int, int]] = []
    keys = [(c, 1) for c in calibrate.TRAINING[:3]]
    got = calibrate.measure_rounds(keys, 1, rounds=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 6) for i in range(1, 7)] and set(got.values()) == {1000.0}


def test_sweep_in_processes_matches_compare() -> None:
    grid = ([4 * M, 8 * M], ["x86-64", "ppc64-radix-64k"], ["linux-4.19", "linux-6.8"])
    serial = compare(*grid, cpus=2)
    par = sweep(*grid, cpus=2)
    assert len(par) == 8
    for a, b in zip(serial, par, strict=True):
        assert (a.arch, a.size, a.policy) == (b.arch, b.size, b.policy)
        assert a.counters == b.counters and a.estimated_ns == b.estimated_ns


def test_sweep_any_executor_and_validation() -> None:
    with ThreadPoolExecutor(2) as ex:
        res = sweep([4 * M], "arm64-4k", "all", executor=ex, cpus=1)
    assert [r.policy for r in res] == pt.policies()
    with pytest.raises(ValueError, match="policy"):
        sweep([4 * M], "x86-64", ["linux-9"])
    with pytest.raises(ValueError, match="multiple of 65536"):
        sweep([4 * M + 4096], "ppc64-radix-64k", "linux-6.8")
    with pytest.raises(ValueError, match="must not be empty"):
        sweep([], "x86-64", "all")
    with pytest.raises(TypeError, match="Executor"):
        sweep([4 * M], "x86-64", "all", executor=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="baseline"):
        compare([4 * M], "x86-64", "linux-5.0", baseline=3)  # type: ignore[arg-type]


def test_sweep_on_a_dask_cluster() -> None:
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        res = sweep(
            [4 * M, 8 * M],
            "x86-64",
            ["linux-4.19", "linux-5.0"],
            executor=client.get_executor(),
            cpus=2,
        )
    assert len(res) == 4 and all(r.estimated_ns > 0 for r in res)
    assert {r.policy for r in res if r.ratio is not None and r.ratio > 1} == {"linux-5.0"}


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = compare([4 * M, 8 * M], "x86-64", ["linux-4.19", "fast-mremap-v2"], cpus=2)
    out = tmp_path / "p.png"
    res.plot(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_the_package_exports_the_experiment_api() -> None:
    assert pt.run_move is run_move and pt.compare is compare and pt.sweep is sweep
    assert pt.Results is Results


def test_sweep_takes_arch_variants() -> None:
    fast_ipi = pt.arch("x86-64").with_costs(ipi=1.0).replace(name="x86-64-cheap-ipi")
    res = sweep([4 * M], ["x86-64", fast_ipi], "linux-5.0", cpus=4)
    by_arch = {r.arch: r.estimated_ns for r in res}
    assert by_arch["x86-64-cheap-ipi"] < by_arch["x86-64"]
