"""A traced move (AddressSpace.trace_moves, pagetab.timeline): the event log
agrees with the engine's own counters, which it does not share code with,
and lays the move out in time as the estimate prices it."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import pagetab as pt
from pagetab.timeline import LOCK_CLASSES, OP_NAMES

K = 4096
PMD = 2 << 20
CASES = [
    ("x86-64", "linux-4.19", PMD, {}),  # PTE path, flush per extent under the locks
    ("x86-64", "linux-5.0", PMD, {}),  # whole tables, flush per PMD
    ("x86-64", "linux-6.8", 0, {}),  # one PUD
    ("x86-64", "linux-4.9", PMD, {}),  # one flush at the end, after the locks
    ("arm64-4k", "fast-mremap-v2", PMD, {}),  # unsafe: whole tables, one late flush
    ("arm64-4k", "batched-ptl", PMD + K, {}),  # one PMD lock per table page
    ("arm64-4k", "linux-6.16", PMD + K, {64 << 10: "always"}),  # contpte unfolds and folds
    ("ppc64-radix-64k", "linux-5.11", 2 << 20, {}),
    ("x86-64", "linux-6.8", PMD + K, {"thp": True}),  # THPs split on the way
]


def traced(arch: str, policy: str, dst_off: int, thp_sizes: dict[int, Any]) -> pt.MoveStats:
    thp = "always" if thp_sizes.pop("thp", False) else "never"
    mm = pt.AddressSpace(arch, cpus=3, policy=policy, thp=thp, thp_sizes=thp_sizes)
    mm.trace_moves = True
    size = 64 << 20
    a = mm.mmap(size, 1 << 40, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.access(a + np.arange(0, size, 4 * K, dtype=np.uint64), write=True)  # written, some folios
    mm.access(a + np.arange(0, size, 1 << 20, dtype=np.uint64), cpu=2)
    mm.mremap(a, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, (1 << 45) + dst_off)
    assert mm.last_move is not None
    return mm.last_move


@pytest.mark.parametrize(("arch", "policy", "dst_off", "thp_sizes"), CASES)
def test_the_events_add_up_to_the_counters(
    arch: str, policy: str, dst_off: int, thp_sizes: dict[int, Any]
) -> None:
    st = traced(arch, policy, dst_off, dict(thp_sizes))
    tr = st.trace
    assert tr is not None and len(tr) > 0
    kinds = tr.kinds()
    ev = tr.events
    # every lock taken is released, as often per class as the engine counts
    pairs = list(zip(kinds, ev["what"].tolist(), strict=True))
    locks = Counter(LOCK_CLASSES[w] for k, w in pairs if k == "lock")
    unlocks = Counter(LOCK_CLASSES[w] for k, w in pairs if k == "unlock")
    assert locks == unlocks == Counter({k: v for k, v in st.lock_acquired.items() if v})
    holds = tr.lock_holds()
    assert len(holds) == sum(locks.values()) and all(h.end_ns >= h.start_ns for h in holds)
    for cls, longest in st.lock_max_hold.items():
        assert max((h.entries for h in holds if h.lock_class == cls), default=0) == longest
    # entries moved, whole entries moved per kind
    ptes = ev["entries"][np.array(kinds) == "ptes"].sum() if "ptes" in kinds else 0
    assert ptes == st.ptes_moved
    entries = Counter(w for k, w in pairs if k == "entry")
    assert entries[0] == st.normal_pmds_moved and entries[1] == st.huge_pmds_moved
    assert entries[2] == st.normal_puds_moved
    assert kinds.count("split") == st.huge_pmds_split + st.huge_puds_split
    # flushes: as many, the same instructions, the unlocked ones
    # (the unmap's tlb_finish_mmu flush is the last event, "finish", issued
    # with no page-table lock held)
    flushes = tr.flushes()
    assert sum(f.kind == "flush" for f in flushes) == st.flush_calls
    assert sum(f.kind == "finish" for f in flushes) == st.unmap_flushes == 1
    assert tr.kinds()[-1] == "finish" and flushes[-1].locks_held == 0
    assert sum(f.kind == "convert" for f in flushes) == st.contpte_folds + st.contpte_unfolds
    ops: Counter[str] = Counter()
    for f in flushes:
        ops.update(f.ops)
    assert dict(ops) == {k: v for k, v in st.flush_ops.items() if v}
    assert sum(f.locks_held == 0 for f in flushes if f.kind == "flush") == st.flush_unlocked
    # laid end to end, the events take what the estimate gives them: all
    # but the system call's entry and the table allocations
    b = st.breakdown
    assert tr.total_ns == pytest.approx(st.estimated_ns - b["syscall"] - b["table alloc"])
    assert (np.diff(tr.end_ns) >= 0).all()


def test_the_unsafe_window_is_visible_in_time() -> None:
    # fast-mremap-v2 flushes once, after every lock was released: each
    # lock hold ends before the flush starts
    tr = traced("arm64-4k", "fast-mremap-v2", PMD, {}).trace
    assert tr is not None
    flush, unmap = tr.flushes()  # the move's, then the unmap's (freed tables)
    assert (flush.kind, unmap.kind) == ("flush", "finish")
    assert flush.locks_held == 0 and flush.start_ns < unmap.start_ns
    assert max(h.end_ns for h in tr.lock_holds()) <= flush.start_ns
    # linux-5.0 flushes each table under its PMD lock
    tr = traced("arm64-4k", "linux-5.0", PMD, {}).trace
    assert tr is not None
    assert all(f.locks_held == 2 for f in tr.flushes()[:-1])


def test_not_traced_unless_asked() -> None:
    mm = pt.AddressSpace("x86-64")
    a = mm.mmap(4 << 20)
    mm.madvise(a, 4 << 20, pt.MADV_POPULATE_WRITE)
    mm.mremap(a, 4 << 20, 4 << 20, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, 1 << 45)
    assert mm.last_move is not None and mm.last_move.trace is None
    assert len(OP_NAMES) == len(mm.last_move.flush_ops)
