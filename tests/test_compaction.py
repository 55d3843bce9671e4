"""A userfaultfd GC's compaction cycle (pagetab.compaction), its command
and its measurement on this machine's kernel."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import csv_records, results

import pagetab as pt
from pagetab import host
from pagetab.cli import main

K, M = 4096, 1 << 20
PMD_PAGES = 512
UFFD_OK, UFFD_WHY = host.uffd_available()


def test_gc_moves_slide_the_live_runs_down() -> None:
    moves = pt.gc_moves(1 << 16, live=0.3, run_pages=8, order="forward", seed=3)
    src, dst, n = moves.T
    # every live page once, slid down to the number of live pages below it
    assert (dst == np.concatenate([[0], np.cumsum(n)[:-1]])).all()
    assert (src[1:] > src[:-1] + n[:-1]).all()  # a gap between runs
    assert (src >= dst).all() and src[-1] + n[-1] <= 1 << 16
    assert abs(n.sum() / (1 << 16) - 0.3) < 0.02
    assert 8 <= n.mean() < 12  # drawn runs with no gap between them merge
    # ART's order is the same calls, highest address first
    rev = pt.gc_moves(1 << 16, live=0.3, run_pages=8, seed=3)
    assert (rev == moves[::-1]).all()


def test_gc_moves_cut_runs_into_calls() -> None:
    runs = pt.gc_moves(4096, live=0.5, run_pages=40, order="forward", seed=1)
    cut = pt.gc_moves(4096, live=0.5, run_pages=40, ioctl_pages=16, order="forward", seed=1)
    assert cut[:, 2].max() <= 16 and cut[:, 2].sum() == runs[:, 2].sum()
    # the same pages go to the same places
    pages = [np.arange(s, s + n) for s, _, n in runs]
    cut_pages = [np.arange(s, s + n) for s, _, n in cut]
    assert (np.concatenate(pages) == np.concatenate(cut_pages)).all()
    assert (np.concatenate([np.arange(d, d + n) for _, d, n in cut]) == np.arange(
        runs[:, 2].sum())).all()  # fmt: skip
    everything = pt.gc_moves(1000, live=1.0, seed=0)
    assert everything.tolist() == [[0, 0, 1000]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"live": 0}, "live"), ({"live": 1.5}, "live"), ({"run_pages": 0.5}, "run_pages"),
     ({"order": "up"}, "order"), ({"ioctl_pages": 0}, "ioctl_pages"), ({"seed": -1}, "seed")],
)  # fmt: skip
def test_gc_moves_name_a_bad_argument(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pt.gc_moves(1024, **kwargs)  # type: ignore[arg-type]


def pieces(moves: np.ndarray, shift: int = 0) -> int:
    """Runs of a call that stay inside one PMD on both sides: the batches
    of linux-6.18 (one flush each) for pages that are all present."""
    count = 0
    for s, d, n in moves.tolist():
        cuts = {0, n}
        for at in (s, d):
            first = -at % PMD_PAGES
            cuts.update(range(first, n, PMD_PAGES))
        count += len(cuts) - 1
    return count


def test_one_cycle_per_page_and_batched() -> None:
    size = 64 * M
    moves = pt.gc_moves(size // K, live=0.5, run_pages=16, seed=0)
    per_page = pt.run_gc(size, "x86-64", "linux-6.17", cpus=2)
    batched = pt.run_gc(size, "x86-64", "linux-6.18", cpus=2)
    pages = int(moves[:, 2].sum())
    for r in (per_page, batched):
        assert (r.pages_moved, r.ioctls, r.counters["ptes_moved"]) == (pages, len(moves), pages)
        assert r.mremap_ns > 0 and r.uffd_move_ns > 0
        low, high = r.estimated_ns_range
        assert low < r.estimated_ns < high
    assert per_page.counters["flush_calls"] == pages
    assert per_page.counters["pte_locks"] == 2 * pages
    assert batched.counters["flush_calls"] == pieces(moves)
    assert batched.counters["pte_locks"] == 2 * pieces(moves)
    # both CPUs hold translations: per-page flushes each IPI the other one
    assert per_page.flush_ops["ipi"] == pages and batched.flush_ops["ipi"] == pieces(moves)
    assert batched.uffd_move_ns < per_page.uffd_move_ns / 3
    assert batched.ns_per_mb < per_page.ns_per_mb


def test_compare_gc_ratios_against_the_baseline() -> None:
    res = pt.compare_gc(16 * M, ["arm64-4k"], ["linux-6.17", "linux-6.18"], cpus=1, touch=0)
    assert [r.policy for r in res] == ["linux-6.17", "linux-6.18"]
    assert res[0].ratio == pytest.approx(1.0)
    assert res[1].ratio is not None and res[1].ratio > 1
    head, rows = res.cells()
    assert len(rows) == 2 and len(rows[0]) == len(head)
    assert res.rows()[1]["policy"] == "linux-6.18"


def test_a_heap_with_nothing_live() -> None:
    # a one-page heap whose one page is dead more often than not
    empty = [pt.gc_moves(1, live=0.5, seed=seed) for seed in range(20)]
    assert any(m.shape == (0, 3) for m in empty) and all(m[:, 2].sum() <= 1 for m in empty)
    r = next(pt.run_gc(K, "x86-64", seed=seed) for seed in range(20)
             if pt.gc_moves(1, live=0.5, seed=seed).size == 0)  # fmt: skip
    assert (r.ioctls, r.pages_moved, r.uffd_move_ns) == (0, 0, 0.0) and np.isnan(r.ns_per_mb)


def test_run_gc_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="size"):
        pt.run_gc(1000)
    with pytest.raises(ValueError, match="cpus"):
        pt.run_gc(4 * M, cpus=0)
    with pytest.raises(ValueError, match="policy"):
        pt.run_gc(4 * M, policy="linux-9.99")


def test_a_policy_without_uffdio_move_says_so() -> None:
    with pytest.raises(ValueError, match=r"no UFFDIO_MOVE.*valid: linux-6\.8"):
        pt.run_gc(4 * M, policy="linux-5.0")


def test_gc_command_writes_csv_and_json(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    out = f"{tmp_path}/gc"
    argv = ["gc", "--size", "8M", "--arch", "x86-64", "--policy", "linux-6.17,linux-6.18",
            "--csv", f"{out}.csv", "--json-out", f"{out}.json"]  # fmt: skip
    assert main(argv) == 0
    rows = results(open(f"{out}.json").read())
    header = list(csv_records(open(f"{out}.csv").read())[0])
    assert [r["policy"] for r in rows] == ["linux-6.17", "linux-6.18"]
    assert "ns_per_mb" in header and "op_flush_calls" in header
    assert "vs linux-6.17" in capsys.readouterr().out


def test_gc_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gc", "--size", "8M", "--arch", "x86-64", "--json", "--cpus", "1"]) == 0
    rows = results(capsys.readouterr().out)
    assert [r["policy"] for r in rows] == ["linux-6.8", "linux-6.17", "linux-6.18"]
    assert rows[2]["flush_calls"] < rows[1]["flush_calls"]
    assert main(["gc", "--size", "8M", "--arch", "arm64-4k", "--policy", "linux-6.18"]) == 0
    out = capsys.readouterr().out
    assert "us/MiB" in out and "linux-6.18" in out
    for bad in (["--live", "0"], ["--run-pages", "0.5"], ["--policy", "linux-5.0"]):
        with pytest.raises(SystemExit) as exit_:
            main(["gc", *bad])
        assert exit_.value.code == 2


def test_uffd_move_batched_by_version() -> None:
    assert host.uffd_move_batched("6.18.0") and host.uffd_move_batched("7.1.2-rc1")
    assert host.uffd_move_batched("6.18-rc1") and host.uffd_move_batched("6.18.44-fc-v657")
    assert not host.uffd_move_batched("6.17.9") and not host.uffd_move_batched("foo")
    assert not host.uffd_move_batched("6.17-rc1") and not host.uffd_move_batched("5.180")


@pytest.mark.skipif(not UFFD_OK, reason=f"no userfaultfd here: {UFFD_WHY}")
def test_the_kernel_runs_the_same_cycle() -> None:
    moves = pt.gc_moves(2048, live=0.5, run_pages=8, seed=4)
    h = host.measure_gc_cycle(8 * M, moves, repeats=2)
    # every moved page carries the contents written at its source
    assert h.bad_pages == 0 and len(h.moves_ns) == 2 and min(h.moves_ns) > 0
    assert h.pages_moved == moves[:, 2].sum() and h.ioctls == len(moves)
    with pytest.raises(ValueError, match="inside"):
        host.measure_gc_cycle(8 * M, [[2047, 0, 2]])
    with pytest.raises(ValueError, match="rows"):
        host.measure_gc_cycle(8 * M, [1, 2, 3])
