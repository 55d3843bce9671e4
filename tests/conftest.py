"""Shared fixtures: every AddressSpace a test makes is check()ed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pagetab as pt

ALL_ARCHS = pt.archs()


@pytest.fixture
def make_mm() -> Iterator[Callable[..., pt.AddressSpace]]:
    """Factory for AddressSpaces; each is check()ed when the test ends."""
    made: list[pt.AddressSpace] = []

    def make(*args: Any, **kwargs: Any) -> pt.AddressSpace:
        mm = pt.AddressSpace(*args, **kwargs)
        made.append(mm)
        return mm

    yield make
    for mm in made:
        mm.check()


@pytest.fixture
def mm(make_mm: Callable[..., pt.AddressSpace]) -> pt.AddressSpace:
    return make_mm("x86-64")


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
