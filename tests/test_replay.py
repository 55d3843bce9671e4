"""Replay: a trace rebuilt call by call, compared with what the kernel did."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import PROGRAMS, needs_recording

from pagetab.replay import UFFDIO_MOVE, replay
from pagetab.tracefile import Header, TraceWriter

HOST = {"kernel": "6.18.0", "arch": "x86_64", "cpu_model": "test", "page_size": 4096,
        "thp": "never", "thp_sizes": {}, "cpus": 2}  # fmt: skip
M = 1 << 20
STACK = (0x7FFF_F000_0000, 0x7FFF_F002_1000)
A = 0x7F00_0000_0000  # where the "kernel" put the mapping
B = 0x7F00_4000_0000  # and where mremap moved it (PMD-aligned, so whole PMDs move)


def sys_ev(t: int, nr: str, a: list[int], r: int | None, d: int | None = 1000, tid: int = 10,
           **more: Any) -> dict[str, Any]:  # fmt: skip
    return {"k": "sys", "t": t, "pid": 10, "tid": tid, "cpu": 0, "nr": nr, "a": a, "r": r,
            "d": d, **more}  # fmt: skip


def maps(t: int, when: str, vmas: list[list[Any]], present: list[list[int]]) -> dict[str, Any]:
    return {"k": "maps", "t": t, "pid": 10, "tid": 10, "cpu": None, "when": when,
            "vmas": vmas, "present": present}  # fmt: skip


def program(path: Path, final_present: list[list[int]], moved_to: int = B) -> Path:
    """A process that maps 4 MiB, writes it from two threads, moves it with
    mremap(MREMAP_MAYMOVE) (the kernel chose ``moved_to``) and exits."""
    with TraceWriter(path, Header("tracefs", "kernel", ["prog"], HOST)) as w:
        w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], [[STACK[1] - 4096, STACK[1], 0]]))
        w.write(sys_ev(1, "mmap", [0, 4 * M, 3, 0x22, -1, 0], A))
        for i in range(1024):
            tid = 10 if i < 512 else 11  # a second thread writes the upper half
            w.write({"k": "fault", "t": 2 + i, "pid": 10, "tid": tid, "cpu": 1, "a": A + i * 4096,
                     "w": 1, "u": 1})  # fmt: skip
        w.write(sys_ev(2000, "mremap", [A, 4 * M, 4 * M, 1, 0], moved_to, d=5000))
        w.write(sys_ev(3000, "munmap", [moved_to + 2 * M, 2 * M], 0))
        w.write(sys_ev(3001, "munmap", [A, 4096], 0))  # nothing there any more: still 0
        w.write(maps(4000, "exit", [[*STACK, "rw-p", 0, "[stack]"],
                                    [moved_to, moved_to + 2 * M, "rw-p", 0, ""]],
                     final_present))  # fmt: skip
    return path


def test_a_faithful_trace_replays_exactly(tmp_path: Path) -> None:
    final = [[STACK[1] - 4096, STACK[1], 0], [B, B + 2 * M, 0]]
    res = replay(program(tmp_path / "t.gz", final), "x86-64", "linux-6.18", cpus=2)
    assert res.exact, res.differences
    assert res.faults == 1024 and res.processes == 1
    mremap = next(c for c in res.calls if c.name == "mremap")
    # the kernel chose B: the replay asked for it, so the move is two whole PMDs
    assert mremap.replayed == B and mremap.translated.startswith("destination chosen")
    assert mremap.counters["normal_pmds_moved"] == 2
    assert mremap.recorded_ns == 5000 and mremap.estimated_ns and mremap.estimated_ns > 0
    # the second thread ran on its own CPU: both are in mm_cpumask, so the move flushes both
    assert mremap.counters.get("flush_calls", 0) >= 1
    assert res.kinds["mremap"].priced == 1 and res.kinds["mmap"].priced == 0


def test_a_call_pays_for_what_its_own_thread_faulted_before_it(tmp_path: Path) -> None:
    # thread 10 faulted 512 pages (2 MiB) before its mremap, thread 11 as
    # many: the call's cold price is the calibration's at 2 MiB (half way,
    # in log2, between its 1 MiB and 4 MiB figures: 2500 ns), not at 4 MiB
    # nor at 0; it is part of the estimate, and the munmap right after pays
    # none
    import json
    from importlib import resources

    doc = json.loads(resources.files("pagetab").joinpath(
        "data/traces/host-calibration.json").read_text())  # fmt: skip
    final = [[STACK[1] - 4096, STACK[1], 0], [B, B + 2 * M, 0]]
    trace = program(tmp_path / "t.gz", final)
    estimates = []
    for cold in (None, {"faulted_bytes": [0, M, 4 * M], "median_ns": [1e3, 2e3, 5e3]}):
        if cold is None:
            doc.pop("cold_call", None)
        else:
            doc["cold_call"] = cold
        cal = tmp_path / "cal.json"
        cal.write_text(json.dumps(doc))
        res = replay(trace, "x86-64", "linux-6.18", cpus=2, calibration=str(cal))
        mremap = next(c for c in res.calls if c.name == "mremap")
        assert mremap.cold_ns == (0.0 if cold is None else pytest.approx(2500.0))
        assert res.kinds["mremap"].cold_ns == mremap.cold_ns
        estimates.append(mremap.estimated_ns)
    assert estimates[1] == pytest.approx(estimates[0] + 2500.0)


def test_userfaultfd_fills_replay(tmp_path: Path) -> None:
    # a handler's UFFDIO_ZEROPAGE and UFFDIO_COPY (the structures from the
    # uprobe): results and filled pages replayed; a COPY onto a page it
    # already filled is EEXIST in both
    from pagetab import constants as C

    reg = A + 4 * M
    with TraceWriter(tmp_path / "t.gz", Header("tracefs", "kernel", ["prog"], HOST)) as w:
        w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], [[STACK[1] - 4096, STACK[1], 0]]))
        w.write(sys_ev(1, "mmap", [A, 8 * M, 3, 0x32, -1, 0], A))
        w.write({"k": "fault", "t": 2, "pid": 10, "tid": 10, "cpu": 0, "a": A, "w": 1, "u": 1})
        w.write(sys_ev(3, "userfaultfd", [0x80800], 5))
        w.write(sys_ev(4, "ioctl", [5, C.UFFDIO_API, 0], 0, mem=[0xAA, 0, 0]))
        w.write(sys_ev(5, "ioctl", [5, C.UFFDIO_REGISTER, 0], 0,
                       mem=[reg, 4 * M, C.UFFDIO_REGISTER_MODE_MISSING, 0]))  # fmt: skip
        w.write(sys_ev(6, "ioctl", [5, C.UFFDIO_ZEROPAGE, 0], 0, mem=[reg, 8192, 0, 8192]))
        w.write(sys_ev(7, "ioctl", [5, C.UFFDIO_COPY, 0], 0, mem=[reg + 8192, A, 4096, 0, 4096]))
        w.write(sys_ev(8, "ioctl", [5, C.UFFDIO_COPY, 0], -17, mem=[reg, A, 4096, 0, -17]))
        present = [[STACK[1] - 4096, STACK[1], 0], [A, A + 4096, 0], [reg, reg + 3 * 4096, 0]]
        w.write(maps(9, "exit", [[*STACK, "rw-p", 0, "[stack]"], [A, reg, "rw-p", 0, ""],
                                 [reg, A + 8 * M, "rw-p", 0, ""]], present))  # fmt: skip
    res = replay(tmp_path / "t.gz", "x86-64", "linux-6.18", cpus=2)
    assert res.exact, res.differences
    assert res.kinds["UFFDIO_COPY"].calls == 2 and res.kinds["UFFDIO_ZEROPAGE"].calls == 1
    assert res.kinds["UFFDIO_COPY"].priced == 0  # replayed, not priced
    assert not res.skipped


def test_an_in_place_growth_pays_the_resize_curve(tmp_path: Path) -> None:
    # 256 pages faulted (1 MiB), then mremap growing in place: the
    # calibration's in-place curve at 1 MiB (200 ns), not the move's (1000)
    import json
    from importlib import resources

    doc = json.loads(resources.files("pagetab").joinpath(
        "data/traces/host-calibration.json").read_text())  # fmt: skip
    doc["cold_call"] = {"faulted_bytes": [0, M, 4 * M], "median_ns": [1e3, 2e3, 5e3],
                        "resize_median_ns": [500.0, 700.0, 1300.0]}  # fmt: skip
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(doc))
    with TraceWriter(tmp_path / "t.gz", Header("tracefs", "kernel", ["prog"], HOST)) as w:
        w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], [[STACK[1] - 4096, STACK[1], 0]]))
        w.write(sys_ev(1, "mmap", [A, M, 3, 0x32, -1, 0], A))
        for i in range(256):
            w.write({"k": "fault", "t": 2 + i, "pid": 10, "tid": 10, "cpu": 0, "a": A + i * 4096,
                     "w": 1, "u": 1})  # fmt: skip
        w.write(sys_ev(300, "mremap", [A, M, 2 * M, 0, 0], A))
        w.write(maps(400, "exit", [[*STACK, "rw-p", 0, "[stack]"], [A, A + 2 * M, "rw-p", 0, ""]],
                     [[STACK[1] - 4096, STACK[1], 0], [A, A + M, 0]]))  # fmt: skip
    res = replay(tmp_path / "t.gz", "x86-64", "linux-6.18", cpus=1, calibration=str(cal))
    assert res.exact, res.differences
    call = next(c for c in res.calls if c.name == "mremap")
    assert call.replayed == A and call.cold_ns == pytest.approx(200.0)


def test_a_page_the_kernel_had_and_the_replay_not_is_listed(tmp_path: Path) -> None:
    final = [[STACK[1] - 4096, STACK[1], 0], [B, B + 2 * M + 4096, 0]]
    res = replay(program(tmp_path / "t.gz", final), "x86-64", "linux-6.18")
    assert not res.exact
    (d,) = res.differences
    assert d.what == "present anonymous pages at exit" and "1 not in pagetab" in d.recorded


def test_a_result_that_differs_is_listed(tmp_path: Path) -> None:
    # the recording says the second munmap failed; pagetab returns 0
    p = tmp_path / "t.gz"
    with TraceWriter(p, Header("tracefs", "kernel", ["prog"], HOST)) as w:
        w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], []))
        w.write(sys_ev(1, "mmap", [0, M, 3, 0x22, -1, 0], A))
        w.write(sys_ev(2, "munmap", [A + 1, M], -22))  # EINVAL: unaligned, both agree
        w.write(sys_ev(3, "mprotect", [A, M, 1], -12))  # the "kernel" said ENOMEM
        w.write(maps(4, "exit", [[*STACK, "rw-p", 0, "[stack]"], [A, A + M, "r--p", 0, ""]], []))
    res = replay(p, "x86-64", "linux-6.18")
    assert [(d.what, d.recorded, d.replayed) for d in res.differences] == [
        ("mprotect result", -12, 0)
    ]


def test_the_layout_at_exit_is_compared(tmp_path: Path) -> None:
    final = [[STACK[1] - 4096, STACK[1], 0], [B, B + 2 * M, 0]]
    p = program(tmp_path / "t.gz", final, moved_to=B)
    res = replay(p, "x86-64", "linux-6.18")
    assert res.exact
    # the same trace, but a munmap the replay did not see: the layouts differ
    p2 = tmp_path / "t2.gz"
    from pagetab.tracefile import read_trace

    r = read_trace(p)
    with TraceWriter(p2, r.header) as w:
        for ev in r:
            if ev["k"] == "sys" and ev["nr"] == "munmap" and ev["a"][0] == B + 2 * M:
                continue
            w.write(ev)
    res2 = replay(p2, "x86-64", "linux-6.18")
    # the upper half is still mapped and written in pagetab: its pages differ too
    assert [d.what for d in res2.differences] == [
        "VMAs at exit",
        "present anonymous pages at exit",
    ]


def test_another_page_size_needs_translate(tmp_path: Path) -> None:
    p = program(tmp_path / "t.gz", [])
    with pytest.raises(ValueError, match="4096-byte pages and arm64-64k has 65536-byte"):
        replay(p, "arm64-64k", "linux-6.18")


def test_bad_arguments(tmp_path: Path) -> None:
    p = program(tmp_path / "t.gz", [])
    with pytest.raises(ValueError, match="cpus must be an int from 1"):
        replay(p, "x86-64", "linux-6.18", cpus=0)
    with pytest.raises(ValueError, match="unknown arch"):
        replay(p, "vax", "linux-6.18")
    with pytest.raises(ValueError, match="thp 'sometimes'"):
        replay(p, "x86-64", "linux-6.18", thp="sometimes")


# -- recorded on this machine's kernel ----------------------------------------------


@pytest.fixture(scope="module")
def gc_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pagetab.host import uffd_available
    from pagetab.record import record

    ok, why = uffd_available()
    if not ok:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("rec") / "gc.ptrace.gz"
    res = record([sys.executable, str(PROGRAMS / "uffd_gc.py"), "16", "3"], out)
    assert res.exit_code == 0 and res.lost == 0
    return out


@needs_recording
def test_record_captures_the_gc_s_calls_exactly(gc_trace: Path) -> None:
    from pagetab.tracefile import read_trace

    r = read_trace(gc_trace)
    assert r.header.source == "tracefs" and r.header.timing == "kernel"
    assert r.header.host["page_size"] == os.sysconf("SC_PAGE_SIZE")
    evs = list(r)
    moves = [e for e in evs if e.get("nr") == "ioctl" and e["a"][1] == UFFDIO_MOVE]
    # the program: 4096 pages; cycle c moves runs of 4 << c pages, every other run
    assert len(moves) == 512 + 256 + 128
    first = moves[0]["mem"]
    assert first[2] == 4 * 4096 and first[3] == 2  # len, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
    assert moves[1]["mem"][0] - first[0] == 4 * 4096  # compacted: dst advances by a run
    assert moves[1]["mem"][1] - first[1] == 8 * 4096  # src skips the dead run
    remaps = [e for e in evs if e.get("nr") == "mremap"]
    assert [e["a"][3] for e in remaps] == [7, 7, 7]  # MAYMOVE | FIXED | DONTUNMAP
    assert all(e["d"] > 0 for e in remaps)
    kinds = {e["k"] for e in evs}
    assert {"sys", "fault", "maps", "exit"} <= kinds
    assert [e["when"] for e in evs if e["k"] == "maps"] == ["exec", "exit"]


#: file pages the kernel maps around a fault beyond what the page cache's
#: residency explains (its large folios and readahead marks, which no trace
#: shows): at most one fault-around window's worth (16 pages) in a run
FILE_PAGE_SLACK = 16


@needs_recording
def test_the_recorded_gc_replays_exactly(gc_trace: Path) -> None:
    # every call's result, the VMAs at exit and the anonymous pages at exit
    # are the kernel's; file pages may differ by what the page cache decides
    res = replay(gc_trace, "x86-64", "linux-6.18", cpus=2)
    other = [d for d in res.differences if d.what != "present file pages at exit"]
    assert not other, other
    for d in res.differences:
        missing = int(str(d.recorded).split(", ")[1].split()[0])
        extra = int(str(d.replayed).split(", ")[1].split()[0])
        assert missing + extra <= FILE_PAGE_SLACK, d
    assert res.kinds["UFFDIO_MOVE"].calls == 896 and res.kinds["mremap"].calls == 3
    assert not [s for s in res.skipped if "userfaultfd" in s]


@needs_recording
def test_record_cli_reports_the_exit_status(tmp_path: Path) -> None:
    from pagetab.cli import main

    assert main(["record", "-o", str(tmp_path / "t.gz"), "--", "sh", "-c", "exit 3"]) == 3
    assert main(["record", "-o", str(tmp_path / "t.gz"), "--", str(tmp_path / "none")]) == 127


def test_the_chrome_trace_holds_each_move_s_locks_and_flushes(tmp_path: Path) -> None:
    import json

    final = [[STACK[1] - 4096, STACK[1], 0], [B, B + 2 * M, 0]]
    res = replay(program(tmp_path / "t.gz", final), "x86-64", "linux-6.18", cpus=2,
                 timeline=True)  # fmt: skip
    out = tmp_path / "trace.json"
    res.write_chrome_trace(out)
    doc = json.loads(out.read_text())
    evs = doc["traceEvents"]
    mremap = next(c for c in res.calls if c.name == "mremap")
    call = next(e for e in evs if e.get("cat") == "call" and e["name"] == "mremap")
    assert call["ts"] == 2000 / 1e3 and call["dur"] == pytest.approx(mremap.estimated_ns / 1e3)
    kernel = next(e for e in evs if e.get("cat") == "recorded")
    assert kernel["dur"] == 5.0 and kernel["tid"] == call["tid"] + 1000
    flushes = [e for e in evs if e.get("cat") == "flush"]
    assert len(flushes) == mremap.counters["flush_calls"] + mremap.counters["unmap_flushes"]
    locks = [e for e in evs if e.get("cat") == "lock"]
    # whole-PMD moves: the PMD-level lock pairs of move_normal_pmd, one per PMD moved
    assert len(locks) >= mremap.counters["normal_pmds_moved"]
    # every span lies inside its call
    for e in flushes + locks:
        assert call["ts"] <= e["ts"] and e["ts"] + e["dur"] <= call["ts"] + call["dur"] + 1e-9
    names = {e["args"]["name"] for e in evs if e["ph"] == "M"}
    assert "CPU 1000: recorded kernel time" not in names and any("recorded" in n for n in names)
    with pytest.raises(ValueError, match="timeline=True"):
        replay(program(tmp_path / "u.gz", final), "x86-64", "linux-6.18").chrome_trace()


STRACE = """\
4242  1700000000.000100 mmap(NULL, 4194304, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000 <0.000010>
4242  1700000000.000200 mremap(0x7f0000000000, 4194304, 8388608, MREMAP_MAYMOVE) = 0x7f0040000000 <0.000020>
4242  1700000000.000300 munmap(0x7f0040000000, 8388608) = 0 <0.000008>
4242  1700000000.000400 munmap(0x7f0040000001, 4096) = -1 EINVAL (Invalid argument) <0.000001>
4242  1700000000.000500 exit_group(0)   = ?
4242  1700000000.000600 +++ exited with 0 +++
"""  # noqa: E501


def test_an_imported_strace_replays_from_an_empty_space(tmp_path: Path) -> None:
    from pagetab.cli import main

    src = tmp_path / "prog.strace"
    src.write_text(STRACE)
    out = tmp_path / "t.gz"
    assert main(["import", str(src), "-o", str(out)]) == 0
    res = replay(out, "x86-64", "linux-6.18")
    assert res.exact, res.differences
    assert [(c.name, c.replayed) for c in res.calls] == [
        ("mmap", 0x7F0000000000),
        ("mremap", 0x7F0040000000),
        ("munmap", 0),
        ("munmap", -22),
    ]
    assert not res.comparable  # strace's times are ptrace's
    assert res.summary()[1]["total_error_pct"] is None
    assert "process started from an empty address space (imported trace)" in res.translated
    src.write_text(STRACE.replace("MREMAP_MAYMOVE", "MREMAP_SOMETIMES"))
    assert main(["import", str(src), "-o", str(out)]) == 1


def test_compare_replay_on_a_dask_cluster_matches_replays_one_by_one(tmp_path: Path) -> None:
    from pagetab.replay import compare_replay

    final = [[STACK[1] - 4096, STACK[1], 0], [B, B + 2 * M, 0]]
    traces = [program(tmp_path / "a.gz", final), program(tmp_path / "b.gz", final, moved_to=B)]
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)  # fmt: skip
    with cluster, distributed.Client(cluster) as client:
        res = compare_replay(traces, ["x86-64", "arm64-4k"], ["linux-4.19", "linux-6.18"],
                             executor=client.get_executor(), cpus=2)  # fmt: skip
    assert len(res) == 8 and all(r.exact for r in res)
    for r in res:
        alone = replay(r.trace, r.arch, r.policy, cpus=2)
        assert r.estimated_ns == alone.estimated_ns and r.kinds.keys() == alone.kinds.keys()
        assert r.calls == []  # keep_calls=False: only totals travel back
    # linux-4.19 has no whole-PMD moves on x86-64 (HAVE_MOVE_PMD came in 4.20): slower
    assert {r.policy for r in res if r.ratio is not None and r.ratio < 1} == {"linux-4.19"}
    rows = res.rows()
    assert rows[0]["trace"] == "a.gz" and rows[0]["mremap_calls"] == 1
    with pytest.raises(ValueError, match=r"baseline 'linux-5\.0' is not among"):
        compare_replay(traces, "x86-64", ["linux-6.18"], baseline="linux-5.0")
    with pytest.raises(ValueError, match="unknown policy"):
        compare_replay(traces, "x86-64", ["linux-9.99"])


def test_fault_around_maps_only_the_page_cache_s_pages() -> None:
    # filemap_map_pages maps only cached (uptodate) pages; the faulting page
    # is read in. Pages 0-15 of the file, 3, 5 and 9 cached; fault at page 4.
    mm = pt_space()
    f = _file("lib.so", 64 * 4096)
    f.set_cached([(3, 4), (5, 6), (9, 10)], 12)
    a = mm.mmap(64 * 4096, addr=1 << 30, prot=1, flags=0x12, file=f)  # MAP_PRIVATE|MAP_FIXED
    mm.access([a + 4 * 4096])
    present = [i for i in range(64) if mm.translate(a + i * 4096) is not None]
    assert present == [3, 4, 5, 9]
    assert f.cached is not None and f.cached[4]  # read in by the fault
    g = _file("all.so", 64 * 4096)  # no residency known: all cached
    b = mm.mmap(64 * 4096, addr=1 << 31, prot=1, flags=0x12, file=g)
    mm.access([b + 4 * 4096])
    assert [i for i in range(64) if mm.translate(b + i * 4096) is not None] == list(range(16))
    with pytest.raises(ValueError, match="cached run end"):
        f.set_cached([(3, 99)], 12)


def test_fault_around_maps_a_large_folio_whole_where_it_fits() -> None:
    # 6.18's filemap_map_folio_range: a large folio the window reaches is
    # mapped whole if inside the VMA, inside one PTE table and wholly below
    # the file's last page; else only the window's part
    def present(policy: str, mapped_from: int, pages: int, fault: int, at: int = 0,
                size: int = 600 * 4096 + 100) -> list[int]:  # fmt: skip
        import pagetab as pt

        mm = pt.AddressSpace("x86-64", cpus=1, policy=policy)
        f = _file("data", size)
        # folios [0, 64), [64, 96) and [544, 576)
        f.set_folios([(64, 96), (0, 64), (544, 576)], 12)
        a = mm.mmap(pages * 4096, addr=(1 << 30) + at * 4096, prot=1, flags=0x11,
                    file=f, offset=mapped_from * 4096)  # fmt: skip
        mm.access([a + (fault - mapped_from) * 4096])
        return [mapped_from + i for i in range(pages) if mm.translate(a + i * 4096) is not None]

    full = 601
    assert present("linux-6.18", 0, full, 0) == list(range(64))  # the window is 0-15
    assert present("linux-6.18", 0, full, 70) == list(range(64, 96))
    assert present("linux-6.17", 0, full, 0) == list(range(16))
    # cut by the VMA's start (a mapping from page 8): the window only
    assert present("linux-6.18", 8, 40, 28) == list(range(24, 40))
    # across a PTE table (page 0 placed 480 pages into one): the window only
    assert present("linux-6.18", 0, full, 5, at=480) == list(range(16))
    # wholly below the file's last page: whole; holding it (SIGBUS past
    # i_size must stay): the window only
    assert present("linux-6.18", 0, 577, 545, size=576 * 4096 + 100) == list(range(544, 576))
    assert present("linux-6.18", 0, 576, 545, size=575 * 4096 + 100) == list(range(544, 560))


def test_large_folios_must_be_aligned_powers_of_two() -> None:
    f = _file("data", 64 * 4096)
    for runs, match in (([(0, 3)], "2\\*\\*order"), ([(2, 6)], "multiple"),
                        ([(0, 1)], "2\\*\\*order"), ([(0, 8), (4, 8)], "2\\*\\*order|overlaps"),
                        ([(0, 8), (0, 4)], "overlaps"), ([(64, 72)], "folio end")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            f.set_folios(runs, 12)
    assert f.folios is None  # a refused call changes nothing
    f.set_folios([(8, 16), (0, 8)], 12)
    assert f.folios is not None and f.folios.tolist() == [[0, 8], [8, 16]]


def pt_space() -> Any:
    import pagetab as pt

    return pt.AddressSpace("x86-64", cpus=1)


def _file(name: str, size: int) -> Any:
    import pagetab as pt

    return pt.File(name, size)


def test_the_cli_prints_each_priced_call(capsys: pytest.CaptureFixture[str]) -> None:
    import pagetab as pt
    from pagetab.cli import main

    trace = pt.example_trace("grow_bytearray")
    main(["replay", trace, "--calls"])
    out = capsys.readouterr().out
    res = replay(trace)
    rows = [line for line in out.splitlines()
            if line.split()[2:3] == ["mremap"] and line.split()[1].isdigit()]  # fmt: skip
    assert len(rows) == res.kinds["mremap"].calls == len(res.errors("mremap"))
    first = next(c for c in res.calls if c.name == "mremap")
    assert (
        f"{first.recorded_ns / 1e3:,.1f}" in rows[0]
        and f"{first.estimated_ns / 1e3:,.1f}" in rows[0]
    )
    assert main(["replay", trace, trace, "--plot", "x.png"]) == 2  # one trace only


@pytest.fixture(scope="module")
def grow_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pagetab.record import record

    out = tmp_path_factory.mktemp("rec") / "grow.ptrace.gz"
    res = record([sys.executable, str(PROGRAMS / "grow_bytearray.py"), "1200"], out)
    assert res.exit_code == 0 and res.lost == 0
    return out


@needs_recording
def test_each_mremap_flushes_as_often_as_the_kernel(grow_trace: Path) -> None:
    # the kernel's own tlb:tlb_flush events during each recorded mremap
    # against pagetab's flush_calls: the moves' flushes, and the flush of
    # unmap_region's tlb_finish_mmu when the move freed the old tables
    res = replay(grow_trace, "x86-64", "linux-6.18")
    calls = [c for c in res.calls if c.name == "mremap"]
    assert len(calls) > 30
    assert [c.recorded_flushes for c in calls] == [
        c.counters.get("flush_calls", 0) + c.counters.get("unmap_flushes", 0) for c in calls
    ]
    assert any(c.counters.get("tables_freed", 0) for c in calls)


def test_the_unmap_after_a_move_flushes_the_freed_tables() -> None:
    import pagetab as pt

    mm = pt.AddressSpace("x86-64", cpus=2, policy="linux-6.18")
    src, dst = 1 << 32, (1 << 33) + 4096  # PTE by PTE: the destination is not PMD-aligned
    mm.mmap(8 * M, addr=src, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(src, 8 * M, pt.MADV_POPULATE_WRITE)
    mm.trace_moves = True
    mm.mremap(src, 8 * M, 8 * M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, dst)
    st = mm.last_move
    # 4 PTE tables (released by the engine as they empty) and the PMD table
    # above them (free_pgtables); a 4 KiB-offset destination splits each
    # source PMD's PTEs in two move_ptes extents
    assert st is not None and st.tables_freed == 5 and st.move_ptes_calls == 8
    trace = st.trace
    assert trace is not None
    flushes = trace.flushes()
    assert st.flush_calls == st.move_ptes_calls and st.unmap_flushes == 1
    assert len(flushes) == st.move_ptes_calls + 1
    last = flushes[-1]
    # pte_free_tlb at each freed table's address, at PMD stride (cleared_pmds)
    # (the PMD table's address, 4 GiB, is src: it adds nothing to the range);
    # flush_tlb_func issues INVLPG at each stride from lo while below hi
    assert (last.lo, last.hi, last.locks_held) == (src, src + 3 * (2 * M) + 4096, 0)
    assert last.ops["invlpg"] == 4 and "full_flush" not in last.ops
    assert st.flush_unlocked == 0 and st.safe
    # the timeline prices the extra flush as the estimate does: it holds all
    # but the call's fixed cost and the table allocations
    off = st.breakdown["syscall"] + st.breakdown["table alloc"]
    assert sum(trace.durations_ns) == pytest.approx(st.estimated_ns - off)


# -- the other threads (replay(..., concurrent=N)) ------------------------------------


def test_the_other_threads_pay_for_each_threaded_move() -> None:
    # tests/programs/threaded_moves.py: the main thread moves 16 MiB four
    # times on the PMD path, then four times PTE by PTE (one page off),
    # while one thread has faulted inside the region and one outside it
    from pagetab.replay import example_trace

    res = replay(example_trace("threaded_moves"), "x86-64", "linux-6.18", concurrent=8)
    assert res.exact
    moves = res.concurrent
    assert len(moves) == 8 and [m.t for m in moves] == sorted(m.t for m in moves)
    pmd, pte = moves[:4], moves[4:]
    for m in moves:
        assert m.size == 16 << 20 and m.present == 4096
        assert m.result is not None and len(m.result.threads) == 2
        assert m.result.src_align == str(m.old_addr % (1 << 30))
        assert m.result.dst_align == str(m.new_addr % (1 << 30))
    # the first move leaves from where the inside thread faulted; the next
    # starts where nobody faulted
    assert sorted(moves[0].places) == ["inside", "outside"]
    assert moves[1].places == ("outside", "outside")
    # the model ran the recorded path: whole PMDs flush once per PMD table
    # page at most, PTE by PTE once per extent
    assert all((m.new_addr - m.old_addr) % (2 << 20) == 0 for m in pmd)
    assert all((m.new_addr - m.old_addr) % (2 << 20) in (4096, (2 << 20) - 4096) for m in pte)
    assert max(m.result.flushes for m in pmd if m.result) < min(
        m.result.flushes for m in pte if m.result
    )
    # the threads reading outside are flushed too (IPIs), and pay for it
    assert all(m.result.ipis_sent > 0 and m.result.stall_ns > 0 for m in moves if m.result)


def test_only_the_largest_threaded_moves_are_kept() -> None:
    from pagetab.replay import example_trace

    res = replay(example_trace("threaded_moves"), "x86-64", "linux-6.18", concurrent=3)
    assert len(res.concurrent) == 3  # of 8, all the same size: the first three
    assert [m.t for m in res.concurrent] == [
        m.t
        for m in replay(
            example_trace("threaded_moves"), "x86-64", "linux-6.18", concurrent=8
        ).concurrent[:3]
    ]
    # one thread: no move had anyone else to pay for it
    single = replay(example_trace("grow_bytearray"), "x86-64", "linux-6.18", concurrent=3)
    assert single.concurrent == [] and single.kinds["mremap"].calls > 10


def two_threads_wrote(w: TraceWriter) -> None:
    """The start of a trace: a 4 MiB region at A, its first half written by
    thread 10, its second by thread 11."""
    w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], [[STACK[1] - 4096, STACK[1], 0]]))
    w.write(sys_ev(1, "mmap", [0, 4 * M, 3, 0x22, -1, 0], A))
    for i in range(1024):
        w.write({"k": "fault", "t": 2 + i, "pid": 10, "tid": 10 if i < 512 else 11,
                 "cpu": 1, "a": A + i * 4096, "w": 1, "u": 1})  # fmt: skip


def test_a_thread_that_exited_pays_for_no_later_move(tmp_path: Path) -> None:
    # thread 11 writes half the region; a move while it lives has it as a
    # reader, a move after its exit(2) has nobody else
    def trace(exit_first: bool) -> Path:
        path = tmp_path / f"exit{int(exit_first)}.gz"
        with TraceWriter(path, Header("tracefs", "kernel", ["prog"], HOST)) as w:
            two_threads_wrote(w)
            if exit_first:
                w.write(sys_ev(1500, "exit", [0], None, d=None, tid=11))
            w.write(sys_ev(2000, "mremap", [A, 4 * M, 4 * M, 1, 0], B, d=5000))
        return path

    alive = replay(trace(False), "x86-64", "linux-6.18", concurrent=1)
    assert [m.places for m in alive.concurrent] == [("inside",)]
    gone = replay(trace(True), "x86-64", "linux-6.18", concurrent=1)
    assert gone.concurrent == []


def test_concurrent_needs_a_count(capsys: pytest.CaptureFixture[str]) -> None:
    from pagetab.cli import main
    from pagetab.replay import example_trace

    with pytest.raises(ValueError, match="concurrent"):
        replay(example_trace("threaded_moves"), concurrent=-1)
    assert main(["replay", "example:threaded_moves", "--concurrent", "-1"]) == 2
    assert "--concurrent must be >= 0" in capsys.readouterr().err


@needs_recording
def test_a_threaded_program_recorded_here_replays_with_its_threads(tmp_path: Path) -> None:
    from pagetab.record import record

    out = tmp_path / "threads.ptrace.gz"
    res = record([sys.executable, str(PROGRAMS / "threaded_moves.py"), "8", "4"], out)
    assert res.exit_code == 0 and res.lost == 0
    rep = replay(out, "x86-64", "linux-6.18", concurrent=16)
    other = [d for d in rep.differences if d.what != "present file pages at exit"]
    assert not other, other
    assert rep.kinds["mremap"].calls == 4
    # each move had the two other threads; the first leaves where one faulted
    moves = [m for m in rep.concurrent if m.call == "mremap"]
    assert [len(m.places) for m in moves] == [2, 2, 2, 2]
    assert sorted(moves[0].places) == ["inside", "outside"]
    # the unmaps made while other threads ran are the model's movers too
    unmaps = [m for m in rep.concurrent if m.call == "munmap"]
    assert unmaps and all(m.result is not None and m.result.mover == "munmap" for m in unmaps)


# -- fork without exec ------------------------------------------------------------


def test_a_forked_child_replays_from_its_parent_s_copy() -> None:
    # tests/programs/fork_child.py: the child starts from fork's copy of the
    # parent (written private pages copied; untouched, shared and file
    # mappings not), writes, moves and unmaps, and exits; its VMAs and
    # present pages at exit are the kernel's, and so are the parent's
    from pagetab.replay import example_trace

    res = replay(example_trace("fork_child"), "x86-64", "linux-6.18")
    assert res.processes == 2
    assert res.exact, res.differences
    assert not [s for s in res.skipped if "fork" in s]
    assert any("fork" in t for t in res.translated)
    assert res.kinds["mremap"].calls == 2  # one in each process


@needs_recording
def test_a_fork_recorded_here_replays_exactly(tmp_path: Path) -> None:
    from pagetab.record import record

    out = tmp_path / "fork.ptrace.gz"
    res = record([sys.executable, str(PROGRAMS / "fork_child.py"), "2"], out)
    assert res.exit_code == 0 and res.lost == 0
    rep = replay(out, "x86-64", "linux-6.18")
    assert rep.processes == 2
    other = [d for d in rep.differences if d.what != "present file pages at exit"]
    assert not other, other
    for d in rep.differences:
        missing = int(str(d.recorded).split(", ")[1].split()[0])
        extra = int(str(d.replayed).split(", ")[1].split()[0])
        assert missing + extra <= FILE_PAGE_SLACK, d


@needs_recording
def test_a_file_mapped_with_an_unaligned_length_replays_its_page_cache(tmp_path: Path) -> None:
    # the mmap's length is not a page multiple; the replay must still know
    # the file (and so which of its pages were cached) to map around faults
    # only what the kernel could
    from pagetab.record import record

    out = tmp_path / "cached.ptrace.gz"
    data = tmp_path / "data"
    res = record([sys.executable, str(PROGRAMS / "partly_cached.py"), str(data)], out)
    assert res.exit_code == 0 and res.lost == 0
    rep = replay(out, "x86-64", "linux-6.18")
    assert not rep.differences, rep.differences
    assert not [t for t in rep.translated if "path or size" in t and str(data) in t]


@needs_recording
def test_large_page_cache_folios_are_recorded_and_mapped_whole(tmp_path: Path) -> None:
    # one large write(2) caches the file in large folios; 6.18 maps a folio
    # whole around a read fault where it fits (tests/programs/large_folios.py)
    from pagetab.record import record
    from pagetab.tracefile import read_trace

    out, data = tmp_path / "folios.ptrace.gz", tmp_path / "data"
    res = record([sys.executable, str(PROGRAMS / "large_folios.py"), str(data)], out)
    assert res.exit_code == 0 and res.lost == 0
    # without the whole-folio rule the replay maps only the windows: the
    # kernel mapped more only if the file is in large folios
    old = replay(out, "x86-64", "linux-6.17")
    if not old.differences:
        pytest.skip(f"{data.parent}'s file system cached the file in small folios")
    assert [d.what for d in old.differences] == ["present file pages at exit"]
    files = next(e for e in read_trace(out) if e["k"] == "maps")["files"]
    folios = files[str(data)].get("folios", [])
    assert folios and all(hi - lo >= 2 and lo % (hi - lo) == 0 for lo, hi in folios)
    rep = replay(out, "x86-64", "linux-6.18")
    assert not rep.differences, rep.differences


def test_a_file_mmap_is_found_at_exit_by_its_rounded_length() -> None:
    from pagetab.record import file_of

    rows = [[0x10000, 0x3A000, "r--s", 0, "/data", 0x29064]]
    assert file_of(rows, 0x10000, 0x29064, 0, 4096) == rows[0]
    assert file_of(rows, 0x10000, 0x29064, 4096, 4096) is None  # another offset
    assert file_of(rows, 0x10000, 0x28000, 0, 4096) is None  # a shorter mapping


# -- another address space (translate) -------------------------------------------


@pytest.mark.parametrize("name", ["grow_bytearray", "uffd_gc"])
def test_a_trace_moves_into_a_smaller_address_space_with_its_alignments(name: str) -> None:
    # x86-64's 128 TiB layout into riscv64 Sv39's 256 GiB: refused without
    # translate; with it, replayed as on Sv48 (as large as x86-64's), where
    # nothing is translated: the same results, and every move's counters
    # the same, since each address keeps its offset within its GiB
    from pagetab.replay import example_trace

    trace = example_trace(name)
    with pytest.raises(ValueError, match="translate"):
        replay(trace, "riscv64-sv39", "linux-6.18")
    small = replay(trace, "riscv64-sv39", "linux-6.18", translate=True)
    large = replay(trace, "riscv64-sv48", "linux-6.18")
    assert [d.what for d in small.differences] == [d.what for d in large.differences]
    assert any("GiB" in t for t in small.translated)
    assert not any("GiB" in t for t in large.translated)
    for kind in ("mremap", "UFFDIO_MOVE"):
        if kind in large.kinds:
            assert small.kinds[kind].counters == large.kinds[kind].counters, kind
    moved = [c for c in small.calls if c.counters]
    assert moved and [c.counters for c in moved] == [c.counters for c in large.calls
                                                     if c.counters]  # fmt: skip
    assert all(c.replayed < (256 << 30) for c in small.calls if c.name == "mmap")


def test_a_layout_keeps_each_gib_s_offsets_and_runs() -> None:
    from pagetab.trace_layout import Layout

    g = 1 << 30
    lay = Layout([0x7F00, 0x7F01, 0x7F05, 0x5500], 256 * g)
    # three runs, lowest first, each GiB after GiB 0 and a free GiB between
    assert lay(0x5500 * g + 12345) == 1 * g + 12345
    assert lay(0x7F00 * g + 4096) == 3 * g + 4096
    assert lay(0x7F01 * g) == 4 * g  # adjacent GiBs stay adjacent
    assert lay(0x7F05 * g + (2 << 20)) == 6 * g + (2 << 20)
    with pytest.raises(ValueError, match="need 7 GiB; the target has 6"):
        Layout([0x7F00, 0x7F01, 0x7F05, 0x5500], 6 * g)


def test_a_region_of_many_gibs_stays_whole_when_moved() -> None:
    # only a mapping's first and last GiB were placed: a 4 GiB one came out
    # as 3 GiB, its middle GiBs shifted onto whatever was placed there
    from pagetab.trace_layout import Layout, spans

    g = 1 << 30
    lo = 0x7F00 * g + (2 << 20)
    ev = {"k": "maps", "vmas": [[lo, lo + 4 * g, "rw-p", 0, ""]], "present": []}
    lay = Layout(spans(ev), 256 * g)
    for off in (0, g, 2 * g + 4096, 4 * g - 4096):
        assert lay(lo + off) - lay(lo) == off
    call = {"k": "sys", "nr": "munmap", "a": [lo, 3 * g], "r": 0}
    assert set(spans(call)) == {0x7F00, 0x7F01, 0x7F02, 0x7F03}


def test_a_child_that_execs_before_its_parents_clone_returns_keeps_its_space(
    tmp_path: Path,
) -> None:
    # the child's exec maps came first; the parent's clone (without
    # CLONE_VM) returned after: the child is not replaced by a copy
    child = 11
    with TraceWriter(tmp_path / "t.gz", Header("tracefs", "kernel", ["prog"], HOST)) as w:
        w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], [[STACK[1] - 4096, STACK[1], 0]]))
        w.write(sys_ev(1, "mmap", [A, M, 3, 0x32, -1, 0], A))
        w.write({"k": "maps", "t": 2, "pid": child, "tid": child, "cpu": None, "when": "exec",
                 "vmas": [[*STACK, "rw-p", 0, "[stack]"]], "present": []})  # fmt: skip
        w.write(sys_ev(3, "clone", [0x1200011, 0, 0, 0, 0, 0], child))
        w.write({"k": "maps", "t": 4, "pid": child, "tid": child, "cpu": None, "when": "exit",
                 "vmas": [[*STACK, "rw-p", 0, "[stack]"]], "present": []})  # fmt: skip
    res = replay(tmp_path / "t.gz", "x86-64", "linux-6.18", cpus=1)
    # (a copy of the parent would have A's mapping at the child's exit)
    assert not [d for d in res.differences if d.pid == child], res.differences


def _fake_proc(monkeypatch: pytest.MonkeyPatch, pagemap: dict[int, int],
               flags: dict[int, int], kpageflags: bool = True) -> list[int]:  # fmt: skip
    """/proc/PID/pagemap and /proc/kpageflags as dicts (index: 64-bit word);
    returns the fds still open."""
    import importlib

    rec = importlib.import_module("pagetab.record")  # (pt.record is the function)
    opened: list[int] = []

    def fake_open(path: str, mode: int) -> int:
        if path.endswith("kpageflags") and not kpageflags:
            raise PermissionError(13, "Permission denied", path)
        fd = 900 + len(opened) * 2 + (1 if path.endswith("kpageflags") else 0)
        opened.append(fd)
        return fd

    def fake_pread(fd: int, n: int, off: int) -> bytes:
        table = flags if fd % 2 else pagemap
        return b"".join(int(table.get(off // 8 + k, 0)).to_bytes(8, "little")
                        for k in range(n // 8))  # fmt: skip

    monkeypatch.setattr(rec.os, "open", fake_open)
    monkeypatch.setattr(rec.os, "pread", fake_pread)
    monkeypatch.setattr(rec.os, "close", opened.remove)
    return opened


def test_a_folio_mapped_in_part_is_recorded_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # a 32-page folio (head frame 1024) mapped for its first 16 pages in one
    # VMA and whole in another: recorded once, as [0, 32)
    from pagetab.record import KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, page_cache_folios

    p, lo, lo2 = 4096, 0x7F00_0000_0000, 0x7F00_0020_0000
    vmas = [[lo, lo + 16 * p, "r--p", 0, "/data", 64 * p],
            [lo2, lo2 + 32 * p, "r--s", 0, "/data", 64 * p]]  # fmt: skip
    present = (1 << 63) | (1 << 61)
    pagemap = {lo // p + i: present | (1024 + i) for i in range(16)}
    pagemap |= {lo2 // p + i: present | (1024 + i) for i in range(32)}
    flags = {1024 + i: 1 << (KPF_COMPOUND_TAIL if i else KPF_COMPOUND_HEAD) for i in range(32)}
    flags[1056] = 1 << KPF_COMPOUND_HEAD  # the next folio begins
    opened = _fake_proc(monkeypatch, pagemap, flags)
    assert page_cache_folios(1, vmas[:1], p) == {"/data": [[0, 32]]}
    assert page_cache_folios(1, vmas, p) == {"/data": [[0, 32]]}
    assert opened == []
    # no /proc/kpageflags (not root): nothing known, no descriptor left open
    opened = _fake_proc(monkeypatch, pagemap, flags, kpageflags=False)
    assert page_cache_folios(1, vmas, p) == {} and opened == []


def test_finish_fault_maps_a_cold_or_written_folio_whole() -> None:
    # 6.18's finish_fault (19773df031bc): the page fault-around did not map
    # comes with its whole folio where it fits, unless an entry is taken
    import pagetab as pt

    def space(policy: str, around: int = 64 << 10) -> Any:
        mm = pt.AddressSpace("x86-64", cpus=1, policy=policy)
        mm.fault_around_bytes = around
        return mm

    def present(mm: Any, a: int, n: int) -> list[int]:
        return [i for i in range(n) if mm.translate(a + i * 4096) is not None]

    # a cold folio: none of [0, 32) cached; a read at page 5 reads it whole
    for policy, want in (("linux-6.18", list(range(32))), ("linux-6.17", [5])):
        mm = space(policy)
        f = _file("data", 128 * 4096)
        f.set_cached([(64, 128)], 12)
        f.set_folios([(0, 32)], 12)
        a = mm.mmap(128 * 4096, addr=1 << 30, prot=1, flags=0x11, file=f)
        mm.access([a + 5 * 4096])
        assert present(mm, a, 128) == want, policy
        assert f.cached is not None and f.cached[:32].all()  # read in as one folio either way
    # no fault-around: finish_fault's i_size test is one page laxer than
    # fault-around's (a folio ending at the file's end maps whole)
    mm = space("linux-6.18", around=4096)
    f = _file("end", 32 * 4096)
    f.set_folios([(0, 32)], 12)
    a = mm.mmap(32 * 4096, addr=1 << 30, prot=1, flags=0x11, file=f)
    mm.access([a + 5 * 4096])
    assert present(mm, a, 32) == list(range(32))
    # an entry of the folio already mapped: the fallback maps the page alone
    mm = space("linux-6.18", around=4096)
    g = _file("taken", 64 * 4096)
    g.set_folios([(0, 32)], 12)
    a = mm.mmap(64 * 4096, addr=1 << 30, prot=1, flags=0x11, file=g)
    mm.madvise(a + 7 * 4096, 4096, pt.MADV_POPULATE_READ)
    mm.access([a + 5 * 4096])
    assert present(mm, a, 64) == [5, 7]
    # a shared write fault maps the folio whole, writable
    for policy, want in (("linux-6.18", list(range(32))), ("linux-6.17", [3])):
        mm = space(policy)
        h = pt.File("shared", 64 * 4096, writable=True)
        h.set_folios([(0, 32)], 12)
        a = mm.mmap(64 * 4096, addr=1 << 30, prot=3, flags=0x11, file=h)
        mm.access([a + 3 * 4096], write=True)
        assert present(mm, a, 64) == want, policy
        stats = mm.access([a + (i << 12) for i in want], write=True)
        assert stats.faults == 0  # each mapped writable


def test_a_pmd_sized_page_cache_folio_is_refused_before_anything_changes() -> None:
    import pagetab as pt

    for policy in ("linux-6.17", "linux-6.18"):
        mm = pt.AddressSpace("x86-64", cpus=1, policy=policy)
        f = _file("huge", 1024 * 4096)
        f.set_cached([(0, 512)], 12)
        f.set_folios([(0, 512)], 12)
        a = mm.mmap(1024 * 4096, addr=1 << 30, prot=1, flags=0x11, file=f)
        with pytest.raises(NotImplementedError, match="PMD-sized page-cache folio"):
            mm.access([a + 5 * 4096])
        assert f.cached is not None and not f.cached[512:].any()
        assert all(mm.translate(a + i * 4096) is None for i in range(1024))


def test_folios_must_be_ints() -> None:
    f = _file("data", 64 * 4096)
    for runs in ([(0.0, 8)], [("8", "16")], [(True, 2)]):
        with pytest.raises(TypeError, match=r"folio (start|end) must be an int"):
            f.set_folios(runs, 12)  # type: ignore[list-item]


@pytest.mark.parametrize(("call", "args"), [("madvise", [A, 4 * M, 4]), ("munmap", [A, 4 * M]),
                                            ("mprotect", [A, 4 * M, 1])])  # fmt: skip
def test_the_other_threads_pay_for_a_zap_or_a_write_protection(
    tmp_path: Path, call: str, args: list[int]
) -> None:
    # thread 11 wrote half of the region: madvise(MADV_DONTNEED), munmap or
    # mprotect(PROT_READ) of it by thread 10 is the concurrent model's mover
    def trace(args: list[int]) -> Path:
        path = tmp_path / f"{call}{args[-1]}.gz"
        with TraceWriter(path, Header("tracefs", "kernel", ["prog"], HOST)) as w:
            two_threads_wrote(w)
            w.write(sys_ev(2000, call, args, 0, d=5000))
        return path

    res = replay(trace(args), "x86-64", "linux-6.18", concurrent=1)
    [m] = res.concurrent
    assert (m.call, m.places, m.present, m.size, m.old_addr) == (call, ("inside",), 1024, 4 * M, A)
    assert m.result is not None and m.result.mover == call and m.result.flushes >= 1
    assert m.row()["call"] == call
    if call == "mprotect":
        # one that leaves the pages writable is no mover of the model's
        assert replay(trace([A, 4 * M, 3]), "x86-64", "linux-6.18", concurrent=1).concurrent == []


def test_the_other_threads_pay_for_a_threaded_uffdio_move(tmp_path: Path) -> None:
    # thread 11 wrote the source; thread 10 moves it into a registered
    # region with one UFFDIO_MOVE: the concurrent model's mover "uffdio_move"
    from pagetab import constants as C

    reg = A + 4 * M
    with TraceWriter(tmp_path / "t.gz", Header("tracefs", "kernel", ["prog"], HOST)) as w:
        w.write(maps(0, "exec", [[*STACK, "rw-p", 0, "[stack]"]], [[STACK[1] - 4096, STACK[1], 0]]))
        w.write(sys_ev(1, "mmap", [A, 8 * M, 3, 0x32, -1, 0], A))
        for i in range(512):
            w.write({"k": "fault", "t": 2 + i, "pid": 10, "tid": 11, "cpu": 1,
                     "a": A + i * 4096, "w": 1, "u": 1})  # fmt: skip
        w.write(sys_ev(600, "userfaultfd", [0x80800], 5))
        w.write(sys_ev(601, "ioctl", [5, C.UFFDIO_API, 0], 0,
                       mem=[0xAA, C.UFFD_FEATURE_MOVE, 0]))  # fmt: skip
        w.write(sys_ev(602, "ioctl", [5, C.UFFDIO_REGISTER, 0], 0,
                       mem=[reg, 4 * M, C.UFFDIO_REGISTER_MODE_MISSING, 0]))  # fmt: skip
        w.write(sys_ev(603, "ioctl", [5, UFFDIO_MOVE, 0], 0, mem=[reg, A, 2 * M, 0, 2 * M]))
    res = replay(tmp_path / "t.gz", "x86-64", "linux-6.18", cpus=2, concurrent=2)
    assert res.kinds["UFFDIO_MOVE"].calls == 1
    [m] = res.concurrent
    assert (m.call, m.old_addr, m.new_addr, m.size, m.present) == ("uffdio_move", A, reg,
                                                                   2 * M, 512)  # fmt: skip
    assert m.places == ("inside",)
    assert m.result is not None and m.result.mover == "uffdio_move" and m.result.flushes >= 1
