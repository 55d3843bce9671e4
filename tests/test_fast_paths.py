"""mremap's fast path (a whole VMA moved into a hole, mremap.move_whole_vma)
must give exactly what the general path gives: results, errnos, VMAs,
frames, page tables, and every counter of the move, on every arch and
policy, with and without a page-table limit (which exercises the
failed-move path). The general path is had by making the fast path's
test, mremap.whole_vma_into_hole, answer no."""

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
def general_path() -> Iterator[None]:
    """mremap without its fast path."""
    with mock.patch.object(mremap, "whole_vma_into_hole", return_value=-1):
        yield


@contextlib.contextmanager
def fast_path_counted() -> Iterator[mock.MagicMock]:
    """mremap as it is, counting the moves that take the fast path."""
    with mock.patch.object(mremap, "move_whole_vma", wraps=mremap.move_whole_vma) as spy:
        yield spy


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
    limit = rng.choice([None, None, 24 << 12, 64 << 12])
    window = 64 << 20
    fast, general = (pt.AddressSpace(arch, cpus=2, policy=policy, page_table_limit=limit)
                     for _ in range(2))  # fmt: skip
    ops = random_ops(rng, window, 60)
    # whole-VMA moves into holes (the fast path's case) beside the window,
    # PTE-, PMD- and PUD-path targets, under the limit some fail part way
    m, g = 1 << 20, 1 << 30
    at = g
    for _ in range(6):
        size = rng.choice([64 << 10, 2 * m, 8 * m, 12 * m + (64 << 10)])
        to = rng.choice([2 * g, 3 * g + 4096, 4 * g + 2 * m, 5 * g + m])
        ops += [("mmap", at, size, 3, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS),
                ("madvise", at, size, rng.choice([pt.MADV_POPULATE_WRITE,
                                                  pt.MADV_POPULATE_READ])),
                ("mremap", at, size, size, 3, to),
                ("mremap", to, size, size, 3, at + g // 2),
                ("munmap", at + g // 2, size)]  # fmt: skip
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
                taken += spy.call_count
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
def test_move_under_a_limit_matches_general_path(policy: str, to: int) -> None:
    spaces, outcomes = [], []
    for fast in (True, False):
        mm = pt.AddressSpace("x86-64", policy=policy)
        mm.mmap(32 << 20, addr=BASE, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
        mm.madvise(BASE, 32 << 20, pt.MADV_POPULATE_WRITE)
        mm.tables.limit_bytes = mm.page_table_limit = mm.page_table_bytes + 8 * 4096
        with fast_path_counted() if fast else general_path() as spy:
            try:
                outcomes.append(mm.mremap(BASE, 32 << 20, 32 << 20, 3, to))
            except OSError as e:
                outcomes.append(e.errno)
        if fast:
            assert spy.call_count == 1
        mm.check()
        spaces.append(mm)
    fast, general = spaces
    assert outcomes[0] == outcomes[1]
    # the PTE path needs 17 new tables and fails; PMD moves need 2 or 3
    assert (outcomes[0] == errno.ENOMEM) == (to % (2 << 20) != 0 or not pt.policy(policy).move_pmd)
    assert _moves(fast) == _moves(general)
    assert fast.vmas() == general.vmas()
    assert fast.page_table_bytes == general.page_table_bytes
    assert (fast.frames(BASE, 32 << 20) == general.frames(BASE, 32 << 20)).all()
