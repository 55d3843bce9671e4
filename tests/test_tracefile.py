"""The trace format: streams, versions, and errors that name the line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pagetab.tracefile import FORMAT, VERSION, Header, TraceWriter, read_trace

HOST = {"kernel": "6.18.0", "arch": "x86_64", "cpu_model": "test", "page_size": 4096,
        "thp": "never", "thp_sizes": {}, "cpus": 2}  # fmt: skip


def _event(i: int) -> dict[str, object]:
    return {"k": "sys", "t": i, "pid": 1, "tid": 1, "cpu": 0, "nr": "munmap", "a": [i, 4096],
            "r": 0, "d": 100}  # fmt: skip


def write(path: Path, n: int) -> None:
    with TraceWriter(path, Header("tracefs", "kernel", ["prog"], HOST)) as w:
        for i in range(n):
            w.write(_event(i))


def lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().splitlines(keepends=True)


def rewrite(path: Path, text: list[str]) -> None:
    with gzip.open(path, "wt") as f:
        f.write("".join(text))


def test_round_trip_streams_every_event(tmp_path: Path) -> None:
    p = tmp_path / "t.gz"
    write(p, 1000)
    r = read_trace(p)
    assert r.header.host == HOST and r.header.command == ["prog"]
    got = list(r)
    assert [e["a"][0] for e in got] == list(range(1000))
    assert lines(p)[0].startswith(f'{{"format":"{FORMAT}","version":{VERSION}')


def test_a_trace_cut_short_is_refused_at_its_end(tmp_path: Path) -> None:
    p = tmp_path / "t.gz"
    write(p, 10)
    rewrite(p, lines(p)[:-1])  # no footer
    with pytest.raises(ValueError, match="line 12: the trace ends without its footer"):
        list(read_trace(p))


def test_a_truncated_gzip_stream_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "t.gz"
    write(p, 5000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"line \d+: (unreadable|not JSON)"):
        list(read_trace(p))


def test_corrupt_lines_are_named(tmp_path: Path) -> None:
    p = tmp_path / "t.gz"
    write(p, 3)
    text = lines(p)
    rewrite(p, [*text[:2], '{"k": "sys", "t": 1\n', *text[3:]])
    with pytest.raises(ValueError, match="line 3: not JSON"):
        list(read_trace(p))
    rewrite(p, [*text[:2], '{"k": "bogus", "t": 1, "pid": 1, "tid": 1}\n', *text[3:]])
    with pytest.raises(ValueError, match="line 3: unknown event kind 'bogus'"):
        list(read_trace(p))
    rewrite(p, [*text[:2], '{"k": "fault", "t": 1, "pid": 1, "tid": 1}\n', *text[3:]])
    with pytest.raises(ValueError, match="line 3: fault event lacks a, w"):
        list(read_trace(p))
    rewrite(p, [*text[:2], *text[3:]])  # one event gone: the footer's count disagrees
    with pytest.raises(ValueError, match="the footer counts 3 events, the file has 2"):
        list(read_trace(p))


def test_headers_of_other_formats_and_versions_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "t.gz"
    write(p, 1)
    text = lines(p)
    rewrite(p, [text[0].replace(f'"version":{VERSION}', '"version":99'), *text[1:]])
    with pytest.raises(ValueError, match="line 1: version 99"):
        read_trace(p)
    rewrite(p, ['{"format": "other"}\n', *text[1:]])
    with pytest.raises(ValueError, match="line 1: not a pagetab-trace trace"):
        read_trace(p)
    p.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="line 1: unreadable"):
        read_trace(p)


def test_a_writer_that_dies_leaves_no_footer(tmp_path: Path) -> None:
    p = tmp_path / "t.gz"
    with pytest.raises(RuntimeError):
        with TraceWriter(p, Header("tracefs", "kernel", [], HOST)) as w:
            w.write(_event(0))
            raise RuntimeError("the recorder died")
    with pytest.raises(ValueError, match="without its footer"):
        list(read_trace(p))
