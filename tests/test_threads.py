"""One address space shared by several Python threads.

Each public operation holds the space's lock, so concurrent calls behave as
some serial order of the same calls: the order the lock granted them,
which these tests record by taking ``mm.lock`` around each call (it is an
RLock, so the call takes it again inside).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_diff import BASE, apply_op, random_ops

import pagetab as pt

WINDOW = 64 << 20


def _outcome(mm: pt.AddressSpace, op: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return ("ok", apply_op(mm, op))
    except OSError as e:
        return ("err", e.errno)


def _state(mm: pt.AddressSpace) -> tuple[Any, ...]:
    vmas = mm.vmas()
    frames = [mm.frames(v.start, v.length).tobytes() for v in vmas]
    return tuple(vmas), tuple(frames), mm.page_table_bytes, mm.rss_pages


def _run_concurrently(mm: pt.AddressSpace, streams: list[list[tuple[Any, ...]]]
                      ) -> list[tuple[tuple[Any, ...], tuple[str, Any]]]:  # fmt: skip
    """Run each stream in its own thread; returns (op, outcome) in the order
    the space's lock granted them."""
    granted: list[tuple[tuple[Any, ...], tuple[str, Any]]] = []
    start = threading.Barrier(len(streams))
    errors: list[BaseException] = []
    # a space without a lock (an older pagetab) runs the calls unserialized
    lock = getattr(mm, "lock", None) or contextlib.nullcontext()

    def worker(ops: list[tuple[Any, ...]]) -> None:
        try:
            start.wait()
            for op in ops:
                with lock:
                    granted.append((op, _outcome(mm, op)))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(ops,)) for ops in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return granted


def _check_serializable(arch: str, policy: str, streams: list[list[tuple[Any, ...]]]) -> None:
    mm = pt.AddressSpace(arch, cpus=2, policy=policy, thp="always")
    granted = _run_concurrently(mm, streams)
    assert len(granted) == sum(map(len, streams))
    mm.check()
    serial = pt.AddressSpace(arch, cpus=2, policy=policy, thp="always")
    for op, outcome in granted:
        assert _outcome(serial, op) == outcome, op
    serial.check()
    assert _state(mm) == _state(serial)
    assert (mm.frames(BASE, WINDOW) == serial.frames(BASE, WINDOW)).all()


def test_threads_populating_one_space_keep_it_consistent() -> None:
    # three threads each mapping, populating and unmapping 2 GiB, 40 times:
    # unserialized, this corrupted the tables and aborted the interpreter
    mm = pt.AddressSpace("x86-64")
    size = 2 << 30

    def work() -> None:
        for _ in range(40):
            a = mm.mmap(size)
            mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
            mm.munmap(a, size)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mm.check()
    assert mm.vmas() == [] and mm.rss_pages == 0
    assert mm.tables.live_rows() == [1] + [0] * 3  # only the pgd is left


def test_mixed_operations_equal_the_serial_order_the_lock_granted() -> None:
    rng = random.Random(7)
    for arch, policy in (("x86-64", "linux-6.8"), ("arm64-4k", "batched-ptl"),
                         ("ppc64-radix-64k", "linux-4.19")):  # fmt: skip
        streams = [random_ops(rng, WINDOW, 150) for _ in range(4)]
        _check_serializable(arch, policy, streams)


def test_access_from_threads_is_serialized_with_moves() -> None:
    # accesses (the C loop runs without the GIL) racing mremaps of the same
    # region: every access sees the region before or after a move, never
    # a half-moved table
    mm = pt.AddressSpace("x86-64", cpus=4, policy="linux-6.8")
    size = 64 << 20
    a, b = BASE, BASE + (1 << 30)
    mm.mmap(size, addr=a, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
    frames = mm.frames(a, size).copy()
    where = [a]
    stop = threading.Event()
    errors: list[BaseException] = []
    moves: list[int] = []
    faults: list[int] = []

    begin = threading.Barrier(4)

    def mover() -> None:
        try:
            begin.wait()
            i = 0
            while not stop.is_set() or i < 2:
                src, dst = (a, b) if i % 2 == 0 else (b, a)
                with mm.lock:
                    mm.mremap(src, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, dst)
                    where[0] = dst
                moves.append(i)
                i += 1
                time.sleep(0)  # let a reader in
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    def reader(cpu: int) -> None:
        rng = np.random.default_rng(cpu)
        try:
            begin.wait()
            for _ in range(20):
                with mm.lock:
                    base = where[0]
                    offsets = rng.integers(0, size, 5000, dtype=np.uint64)
                    st_ = mm.access(base + offsets, cpu=cpu)
                faults.append(st_.faults + st_.segv)
                time.sleep(0)
        except BaseException as e:
            errors.append(e)

    readers = [threading.Thread(target=reader, args=(c,)) for c in (1, 2, 3)]
    move_thread = threading.Thread(target=mover)
    for t in [move_thread, *readers]:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    move_thread.join()
    assert not errors, errors
    mm.check()
    assert len(moves) >= 2 and len(faults) == 60
    assert sum(faults) == 0  # every read found its page where the last move put it
    assert (mm.frames(where[0], size) == frames).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), threads=st.integers(2, 4),
       arch=st.sampled_from(["x86-64", "arm64-4k", "arm64-64k", "ppc64-radix-64k"]),
       policy=st.sampled_from(pt.policies()))  # fmt: skip
def test_concurrent_random_operations_are_serializable(
    seed: int, threads: int, arch: str, policy: str
) -> None:
    rng = random.Random(seed)
    streams = [random_ops(rng, WINDOW, 40) for _ in range(threads)]
    _check_serializable(arch, policy, streams)
