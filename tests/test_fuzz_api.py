"""Bad input never crashes and never changes state (hypothesis fuzzing)."""

from __future__ import annotations

import errno

import numpy as np
from helpers import snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pagetab as pt

U64 = 1 << 64
BASE = 1 << 40
ints = st.one_of(
    st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([0, 1, 4095, 4096, 1 << 21, (1 << 47) - 4096, U64 - 1, U64, -1]),
    st.integers(0, 1 << 48).map(lambda x: x & ~4095),
)
junk = st.one_of(ints, st.none(), st.floats(allow_nan=True), st.text(max_size=3),
                 st.booleans(), st.lists(st.integers(), max_size=2))  # fmt: skip
CALLS = {
    "mmap": 4, "munmap": 2, "mprotect": 3, "madvise": 3, "mremap": 5,
    "frames": 2, "translate": 1,
}  # fmt: skip


def fresh() -> pt.AddressSpace:
    mm = pt.AddressSpace("x86-64", cpus=2, thp="always")
    flags = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    mm.mmap(4 << 20, addr=BASE, flags=flags)
    mm.madvise(BASE, 4 << 20, pt.MADV_POPULATE_WRITE)
    mm.mmap(64 << 10, addr=BASE + (8 << 20), flags=pt.MAP_SHARED | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    return mm


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(sorted(CALLS)), data=st.data())
def test_any_arguments_give_a_clean_error_or_work(call: str, data: st.DataObject) -> None:
    mm = fresh()
    args = data.draw(st.lists(junk, min_size=CALLS[call], max_size=CALLS[call]))
    before = snapshot(mm)
    try:
        getattr(mm, call)(*args)
    except OSError as e:
        assert e.errno in (errno.EINVAL, errno.ENOMEM, errno.EEXIST, errno.EFAULT,
                           errno.EPERM, errno.EBADF, errno.EOPNOTSUPP)  # fmt: skip
        # only calls Linux lets stop part way may have changed something:
        # mprotect and madvise before a hole, and mremap(old_size=0,
        # MREMAP_FIXED) whose target unmapping took the source with it
        partial = call in ("mprotect", "madvise") or (
            call == "mremap" and e.errno == errno.EFAULT and args[1] == 0
        )
        if not partial:
            assert snapshot(mm) == before
    except (TypeError, ValueError, NotImplementedError):
        assert snapshot(mm) == before
    mm.check()


@settings(max_examples=200, deadline=None)
@given(addrs=st.one_of(
    st.lists(st.integers(0, U64 - 1), max_size=20),
    st.lists(st.integers(BASE, BASE + (9 << 20)), max_size=50),
), cpu=st.integers(-2, 3), write=st.booleans())  # fmt: skip
def test_access_with_any_addresses(addrs: list[int], cpu: int, write: bool) -> None:
    mm = fresh()
    try:
        stats = mm.access(np.array(addrs, dtype=np.uint64), cpu=cpu, write=write)
    except ValueError:
        assert not 0 <= cpu < 2
        return
    assert stats.accesses == len(addrs)
    assert stats.l1_hits + stats.l2_hits + stats.walks >= stats.accesses - stats.segv
    mm.check()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_run_move_with_any_arguments(data: st.DataObject) -> None:
    from pagetab.experiment import run_move

    kwargs = {
        "size": data.draw(st.sampled_from([4096, 1 << 21, 3 << 20, 4095, 0, -1]) | junk),
        "arch": data.draw(st.sampled_from(pt.archs()) | junk),
        "policy": data.draw(st.sampled_from(pt.policies()) | junk),
        "populate": data.draw(st.sampled_from(["write", "thp", "sparse", "read:0.5"]) | junk
                              | st.dictionaries(st.text(max_size=6), junk, max_size=2)),
        "src_align": data.draw(st.sampled_from(["pud", "pmd", "page"]) | junk),
        "dst_align": data.draw(st.sampled_from(["pud", "pmd", "page"]) | junk),
        "cpus": data.draw(st.sampled_from([1, 2]) | junk),
        "touch": data.draw(st.sampled_from([0, 16]) | junk),
    }  # fmt: skip
    if isinstance(kwargs["size"], int) and kwargs["size"] > 1 << 22:
        kwargs["size"] = 1 << 22  # valid sizes stay small: this is about errors
    try:
        r = run_move(**kwargs)
    except (TypeError, ValueError, NotImplementedError):
        return
    assert r.estimated_ns >= 0 and r.size == kwargs["size"]
