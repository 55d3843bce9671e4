"""Helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import pagetab as pt

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
