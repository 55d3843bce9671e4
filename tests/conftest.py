"""Shared fixtures: every AddressSpace a test makes is check()ed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pagetab as pt


@pytest.fixture(scope="session", autouse=True)
def _mapped_files_read() -> None:
    """Once per session, before the recording fixtures record: see
    ``helpers.read_mapped_files``."""
    from helpers import read_mapped_files, recording_unavailable

    if not recording_unavailable():
        read_mapped_files()


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
