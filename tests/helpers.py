"""Helpers shared by the tests."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pagetab as pt

#: the programs the recording tests run
PROGRAMS = Path(__file__).parent / "programs"

ALL_ARCHS = pt.archs()


def snapshot(mm: pt.AddressSpace) -> tuple[Any, ...]:
    """Everything observable about a space, to prove an error changed nothing."""
    vmas = mm.vmas()
    frames = [b"".join(a.tobytes() for a in mm.tables.folio_orders(v.start, v.end))
              for v in vmas]  # fmt: skip
    anon = tuple(v.anon_vma for v in mm.mm_struct.vmas)
    return (
        tuple(vmas),
        tuple(frames),
        mm.page_table_bytes,
        tuple(mm.tables.live_rows()),
        anon,
        mm.tables.next_frame,
        tuple(sorted(mm.thp_sizes.items())),
        tuple(mm.mm_cpumask),
        tuple(mm.lazy_cpus),
    )


def results(text: str) -> Any:
    """What a ``--json`` output or ``--json-out`` file holds (a results
    document): its ``results``, after checking the document's metadata."""
    import json

    doc = json.loads(text)
    assert doc["meta"]["schema"] == "pagetab-results/1" and doc["meta"]["pagetab"]
    return doc["results"]


def csv_records(text: str) -> list[dict[str, str]]:
    """The records of a CSV output (its ``#`` metadata lines skipped)."""
    import csv

    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


def recording_unavailable() -> str:
    from pagetab.record import RecordError, check_recording

    try:
        check_recording()
    except RecordError as e:
        return str(e)
    return ""


_WHY_NOT = recording_unavailable()
_RECORDABLE = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT or "ok")


def read_mapped_files() -> None:
    """Read whole every file this interpreter maps (its libraries): the
    recorded programs map the same ones. After the page cache was dropped,
    readahead leaves PG_readahead on some of their cached pages, and a
    fault maps none of those around it (mm/filemap.c
    ``next_uptodate_folio``), which mincore, and so a replay, cannot see; a
    read(2) of the page clears the mark."""
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5].startswith("/"):
                paths.add(parts[5])
    for path in sorted(paths):
        try:
            with open(path, "rb") as g:
                while g.read(1 << 20):
                    pass
        except OSError:
            pass


def needs_recording(test: Callable[..., None]) -> Callable[..., None]:
    """A test that records a program on this kernel: skipped where it cannot
    record, and marked ``recording`` (the sanitizer run leaves those out:
    under its preload the recorded program is instrumented too). Each runs
    after ``read_mapped_files``."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        read_mapped_files()
        test(*args, **kwargs)

    marked: Callable[..., None] = pytest.mark.recording(_RECORDABLE(run))
    return marked
