"""The host probe: the real kernel's mremap on this machine."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pagetab import host
from pagetab.native import compare_access

OK, WHY = host.available()
needs_host = pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
M, G = 1 << 20, 1 << 30


def test_available_says_why() -> None:
    ok, why = host.available()
    assert isinstance(ok, bool) and (ok or why)


@needs_host
@pytest.mark.parametrize(
    ("populate", "size", "dst"),
    [("zero", 64 * M, "pmd"), ("zero", G, "pud"), ("write", 16 * M, "4k"),
     ("write", 8 * M, "1m"), ("thp", 8 * M, "pmd")],
)  # fmt: skip
def test_real_moves_keep_every_page(populate: str, size: int, dst: str) -> None:
    m = host.measure_move(size, populate, "pud", dst, repeats=3)
    assert len(m.times_ns) == 3 and m.median_ns > 0 and m.min_ns <= m.median_ns
    assert m.bad_pages == 0 and m.pages_checked == 3 * size // 4096
    assert m.vmpte_kb > 0
    assert set(m.per_unit) == {"per_page_ns", "per_pmd_ns", "per_pud_ns"}


@needs_host
def test_misaligned_thp_move_splits_on_the_host() -> None:
    m = host.measure_move(8 * M, "thp", "pud", "4k", repeats=1)
    assert m.bad_pages == 0 and m.thp_split_pmd >= 1


@needs_host
def test_populate_is_timed() -> None:
    times = host.measure_populate(16 * M, repeats=2)
    assert len(times) == 2 and min(times) > 0
    ns, tables = host.populate_tables(16 * M)
    assert ns > 0 and tables > 0
    if os.sysconf("SC_PAGE_SIZE") == 4096:
        # a PTE table per 2 MiB, plus a new table or two above them at most
        assert 8 * 4096 < tables <= 11 * 4096


@needs_host
def test_access_is_timed_and_checks_offsets() -> None:
    offs = np.arange(0, 16 * M, 4096, dtype=np.uint64)
    times = host.measure_access(16 * M, offs, repeats=2)
    assert len(times) == 2 and min(times) > 0
    with pytest.raises(ValueError, match="outside"):
        host.measure_access(16 * M, np.array([16 * M], dtype=np.uint64))


@needs_host
def test_compare_access_runs_both() -> None:
    c = compare_access(16 * M, n=10_000, repeats=1)
    assert c.group == "access" and c.sim_ns > 0 and c.ratio is not None and c.ratio > 0


@needs_host
def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 MiB"):
        host.measure_move(4096)
    with pytest.raises(ValueError, match="populate"):
        host.measure_move(2 * M, populate="sometimes")
    with pytest.raises(ValueError, match="align"):
        host.measure_move(2 * M, dst_align="2m")
    with pytest.raises(ValueError, match="4 GiB"):
        host.measure_move(8 * G, populate="write")
    with pytest.raises(TypeError):
        host.measure_move(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeats"):
        host.measure_move(2 * M, repeats=0)


@needs_host
@pytest.mark.skipif(len(host.pinnable_cpus()) < 2, reason="needs two CPUs to pin threads to")
def test_moves_with_other_threads_running() -> None:
    # the mover pinned to one CPU, another thread of the process spinning on
    # the next: the move still keeps every page, and the affinity comes back
    before = os.sched_getaffinity(0)
    m = host.measure_move(64 << 20, "write", "pud", "pmd", repeats=3, threads=2)
    assert m.threads == 2 and m.bad_pages == 0 and m.pages_checked == 3 * (64 << 20) // 4096
    assert os.sched_getaffinity(0) == before
    with pytest.raises(ValueError, match="may run on"):
        host.measure_move(64 << 20, threads=len(host.pinnable_cpus()) + 1)
    with pytest.raises(TypeError, match="threads"):
        host.measure_move(64 << 20, threads=True)


@needs_host
@pytest.mark.skipif(len(host.pinnable_cpus()) < 2, reason="needs two CPUs to pin threads to")
def test_contended_move_times_the_readers_reads() -> None:
    r = host.measure_contend(256 << 20, "pmd", 4 << 20, repeats=2, warm_ns=1_000_000)
    assert len(r.mover_ns) == 2 and all(ns > 0 for ns in r.mover_ns)
    # the reader ran through the move: it started reads while mremap ran
    # (in one repeat at least: this VM's vCPU can be preempted for the
    # whole of a 30 us move, once in a few hundred runs)
    assert any(len(x) > 0 for x in r.latencies_ns)
    assert 0 < r.percentile(50) <= r.percentile(99)
    with pytest.raises(ValueError, match="reader_size"):
        host.measure_contend(64 << 20, "pmd", 3 << 20, repeats=1)


@needs_host
@pytest.mark.skipif(len(host.pinnable_cpus()) < 2, reason="needs two CPUs to pin threads to")
def test_contended_move_with_a_faulting_thread() -> None:
    # each recorded access of the faulting thread wrote a fresh page: the
    # region it touched is mapped afterwards (checked through the counts)
    r = host.measure_contend(64 << 20, "page", 4 << 20, repeats=2, warm_ns=100_000,
                             mode="fault")  # fmt: skip
    assert r.mode == "fault" and len(r.mover_ns) == 2
    assert all(len(x) <= (4 << 20) // 4096 for x in r.latencies_ns)
    b = host.measure_contend(512 << 20, "page", repeats=1, warm_ns=100_000, mode="fault-new",
                             where="beside")  # fmt: skip
    assert b.reader_size == (512 << 20) - (2 << 20) and b.where == "beside"
    with pytest.raises(ValueError, match="mode must be one of read, fault, fault-new"):
        host.measure_contend(64 << 20, repeats=1, mode="spin")
    with pytest.raises(ValueError, match="needs a fault mode"):
        host.measure_contend(64 << 20, repeats=1, where="beside")
    with pytest.raises(ValueError, match="leaves room"):
        host.measure_contend(1 << 30, repeats=1, mode="fault", where="beside")
    with pytest.raises(ValueError, match="where must be one of"):
        host.measure_contend(64 << 20, repeats=1, where="inside")
