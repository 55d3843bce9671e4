"""Helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import pagetab as pt

ALL_ARCHS = pt.archs()


def snapshot(mm: pt.AddressSpace) -> tuple[Any, ...]:
    """Everything observable about a space, to prove an error changed nothing."""
    vmas = mm.vmas()
    frames = [mm.frames(v.start, v.length).tobytes() for v in vmas]
    anon = tuple(v.anon_vma for v in mm._vmas)
    return (
        tuple(vmas),
        tuple(frames),
        mm.page_table_bytes,
        tuple(mm.tables.live_rows()),
        anon,
        mm.tables.next_frame,
    )
