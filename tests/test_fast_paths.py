"""mremap's fast path (a whole VMA moved into a hole, in C:
_mremap.mremap_whole_vma) must give exactly what the general path gives:
results, errnos, VMAs, frames, page tables, and every counter of the
move, on every arch and policy. The general path is had by making the
fast path decline (return None), as it does for every call it does not
handle."""

from __future__ import annotations

import contextlib
import errno
import random
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from oracle_diff import BASE, apply_op, random_ops

import pagetab as pt
from pagetab import mremap


@contextlib.contextmanager
def general_path() -> Iterator[list[int]]:
    """mremap without its fast path."""
    with mock.patch.object(mremap, "mremap_whole_vma", return_value=None):
        yield []


@contextlib.contextmanager
def fast_path_counted() -> Iterator[list[int]]:
    """mremap as it is; yields the list of the moves the fast path took."""
    real = mremap.mremap_whole_vma
    taken: list[int] = []

    def spy(*args: Any) -> int | None:
        got = real(*args)
        if got is not None:
            taken.append(got)
        return got

    with mock.patch.object(mremap, "mremap_whole_vma", spy):
        yield taken


def _moves(mm: pt.AddressSpace) -> dict[str, Any] | None:
    if mm.last_move is None:
        return None
    d = mm.last_move.as_dict()
    del d["wall_ns"]
    return d


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_matches_general_path(seed: int) -> None:
    rng = random.Random(seed)
    arch = rng.choice(pt.archs())
    policy = rng.choice(pt.policies())
    window = 64 << 20
    fast, general = (pt.AddressSpace(arch, cpus=2, policy=policy)
                     for _ in range(2))  # fmt: skip
    ops = random_ops(rng, window, 60)
    # whole-VMA moves into holes (the fast path's case) beside the window,
    # PTE-, PMD- and PUD-path targets
    m, g = 1 << 20, 1 << 30
    at = g
    for _ in range(6):
        size = rng.choice([64 << 10, 2 * m, 8 * m, 12 * m + (64 << 10)])
        # (beside the source too, where its tables and the new range meet;
        # offsets a page on every page size)
        to = rng.choice([2 * g, 3 * g + (64 << 10), 4 * g + 2 * m, 5 * g + m, at + 16 * m,
                         at + 18 * m + (64 << 10), at - 14 * m])  # fmt: skip
        back = rng.choice([at + g // 2, at + 2 * m])
        ops += [("mmap", at, size, 3, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS),
                ("madvise", at, size, rng.choice([pt.MADV_POPULATE_WRITE,
                                                  pt.MADV_POPULATE_READ])),
                # (or emptied: its tables stay, for free_pgtables to find)
                *[("madvise", at, size, pt.MADV_DONTNEED)] * (rng.random() < 0.3),
                ("mremap", at, size, size, 3, to),
                ("mremap", to, size, size, 3, back),
                ("munmap", back, size)]  # fmt: skip
    taken = 0
    for op in ops:
        outcomes = []
        for mm in (fast, general):
            path = fast_path_counted() if mm is fast else general_path()
            with path as spy:
                try:
                    outcomes.append(("ok", apply_op(mm, op, fixed=True)))
                except OSError as e:
                    outcomes.append(("err", e.errno))
                except MemoryError:
                    outcomes.append(("err", "MemoryError"))
            if mm is fast:
                taken += len(spy)
        assert outcomes[0] == outcomes[1], (op, outcomes)
        assert _moves(fast) == _moves(general), op
        assert fast.vmas() == general.vmas(), op
        assert fast.page_table_bytes == general.page_table_bytes, op
        fast.check()
    assert taken > 0, "no move took the fast path: the comparison proved nothing"
    assert (fast.frames(BASE, window) == general.frames(BASE, window)).all()
    for v in fast.vmas():
        assert (fast.frames(v.start, v.length) == general.frames(v.start, v.length)).all()


@pytest.mark.parametrize("policy", pt.policies())
@pytest.mark.parametrize("to", [(1 << 41) + 4096, (1 << 41) + (2 << 20)])
def test_a_move_under_a_limit_takes_the_general_path(policy: str, to: int) -> None:
    # under a page-table limit a move may fail part way, which only the
    # general path undoes: the fast path declines, and the failed move
    # leaves the source as it was
    mm = pt.AddressSpace("x86-64", policy=policy)
    mm.mmap(32 << 20, addr=BASE, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(BASE, 32 << 20, pt.MADV_POPULATE_WRITE)
    mm.tables.limit_bytes = mm.page_table_limit = mm.page_table_bytes + 8 * 4096
    frames = mm.frames(BASE, 32 << 20)
    with fast_path_counted() as taken:
        try:
            outcome = mm.mremap(BASE, 32 << 20, 32 << 20, 3, to)
        except OSError as e:
            outcome = e.errno
    assert taken == []
    mm.check()
    # the PTE path needs 17 new tables and fails; PMD moves need 2 or 3
    assert (outcome == errno.ENOMEM) == (to % (2 << 20) != 0 or not pt.policy(policy).move_pmd)
    at = BASE if outcome == errno.ENOMEM else to
    assert [(v.start, v.length) for v in mm.vmas()] == [(at, 32 << 20)]
    assert (mm.frames(at, 32 << 20) == frames).all()


def test_the_fast_paths_record_is_kept_until_the_next_move() -> None:
    # the C path keeps its record as the engine's struct and makes the
    # MoveStats when last_move is read: it must be the move's, whatever
    # happens to the space before it is read
    g = 1 << 30
    mm = pt.AddressSpace("x86-64", policy="linux-6.8")
    mm.mmap(g, addr=BASE, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(BASE, g, pt.MADV_POPULATE_READ)
    with fast_path_counted() as taken:
        mm.mremap(BASE, g, g, 3, BASE + 4 * g)
        mm.policy = "linux-4.18"  # the record names the policy the move ran under
        with pytest.raises(OSError) as e:  # a failed call leaves the record
            mm.mremap(BASE + 4 * g, g, g, 3, BASE + 4 * g + (g >> 1))
        assert e.value.errno == errno.EINVAL
    assert taken == [BASE + 4 * g]
    st = mm.last_move
    assert st is not None and st is mm.last_move
    assert (st.policy, st.old_addr, st.new_addr, st.old_len) == ("linux-6.8", BASE,
                                                                 BASE + 4 * g, g)  # fmt: skip
    # one PUD entry moved: nothing was left to zap or free, so no unmap flush
    assert (st.normal_puds_moved, st.moved_bytes, st.unmap_flushes) == (1, g, 0)
    with fast_path_counted() as taken:  # the next move's record replaces it
        mm.mremap(BASE + 4 * g, g, g, 3, BASE)
    assert taken == [BASE] and mm.last_move is not st
    assert mm.last_move is not None and mm.last_move.policy == "linux-4.18"
