"""Long work stops on a signal: Ctrl-C (KeyboardInterrupt), or any signal
whose Python handler raises, reaches the C loops of the concurrent model,
of populate and of the access path, and the space stays consistent. The
signal here is SIGALRM with a handler of the test's own (pytest keeps
SIGINT); the work asked for would take hours, so returning at all shows
the loop was interrupted."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import pagetab as pt

BASE = 1 << 42


class Alarm(Exception):
    pass


@pytest.fixture
def alarm() -> Iterator[Callable[[float], None]]:
    def handler(*_: Any) -> None:
        raise Alarm()

    old = signal.signal(signal.SIGALRM, handler)
    yield lambda s: signal.setitimer(signal.ITIMER_REAL, s)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def test_the_concurrent_model_stops_on_a_signal(alarm: Callable[[float], None]) -> None:
    # 10**12 accesses: it ran 600 s, deaf to Ctrl-C and SIGALRM
    alarm(0.5)
    with pytest.raises(Alarm):
        pt.run_concurrent(2 << 20, threads={"accesses": 10**12})


def test_the_access_path_stops_on_a_signal_and_leaves_the_space_whole(
    alarm: Callable[[float], None],
) -> None:
    # random writes over 64 GiB, 134 M of them: stopped part way, fewer pages
    # are present than the accesses name (a loop deaf to the signal ran
    # them all, then raised)
    size = 64 << 30
    mm = pt.AddressSpace("x86-64")
    mm.mmap(size, addr=BASE, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
            | pt.MAP_NORESERVE)  # fmt: skip
    addrs = np.random.default_rng(0).integers(BASE, BASE + size, 1 << 24, dtype=np.uint64)
    big = np.tile(addrs, 8)
    named = np.unique(addrs >> np.uint64(12)).size
    alarm(0.3)
    with pytest.raises(Alarm):
        mm.access(big, write=True)
    alarm(0)
    mm.check()
    present = int(np.count_nonzero(mm.frames(BASE, size) >= 0))
    assert 0 < present < named
    # what was written is anonymous memory of a VMA with its anon_vma (fork
    # copies its tables), though the loop stopped before its end
    assert mm.mm_struct.vmas[0].anon_vma is not None
    assert mm.access(addrs[:1000], write=True).accesses == 1000  # and it goes on


def test_populate_stops_on_a_signal_between_gibs(
    alarm: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 TiB of zero-page PTEs: far longer than the alarm; what was faulted
    # before the signal stays, whole GiBs of it (tables as rows: packed,
    # 8 TiB of zero pages take about as long as the alarm)
    monkeypatch.setenv("PAGETAB_PACK", "0")
    mm = pt.AddressSpace("x86-64")
    size = 8 << 40
    mm.mmap(size, addr=BASE, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
            | pt.MAP_NORESERVE)  # fmt: skip
    alarm(0.3)
    with pytest.raises(Alarm):
        mm.madvise(BASE, size, pt.MADV_POPULATE_READ)
    alarm(0)
    mm.check()
    tables = mm.page_table_bytes
    assert 0 < tables < size // 512  # some GiBs, not all
    assert mm.frames(BASE, 1 << 30).min() == 0  # the first GiB: the zero page
