"""Bad input never crashes and never changes state (hypothesis fuzzing)."""

from __future__ import annotations

import errno
from typing import Any

import numpy as np
from helpers import snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pagetab as pt
from pagetab.mm_types import VmaInfo

U64 = 1 << 64
BASE = 1 << 40
TASK_SIZE = pt.arch("x86-64").task_size
ints = st.one_of(
    st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([0, 1, 4095, 4096, 1 << 21, (1 << 47) - 4096, U64 - 1, U64, -1]),
    st.integers(0, 1 << 48).map(lambda x: x & ~4095),
    # pages in and around fresh()'s mappings, and lengths that reach past
    # them: the calls that do work before they fail
    st.integers(0, 2600).map(lambda k: BASE + k * 4096),
    st.integers(1, 3000).map(lambda k: k * 4096),
    # advice, protections and flags the calls take
    st.sampled_from([pt.MADV_DONTNEED, pt.MADV_HUGEPAGE, pt.MADV_NOHUGEPAGE,
                     pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE, pt.PROT_READ | pt.PROT_WRITE,
                     pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, pt.MREMAP_DONTUNMAP | 3]),
)  # fmt: skip
junk = st.one_of(ints, st.none(), st.floats(allow_nan=True), st.text(max_size=3),
                 st.booleans(), st.lists(st.integers(), max_size=2))  # fmt: skip
CALLS = {
    "mmap": 4, "munmap": 2, "mprotect": 3, "madvise": 3, "mremap": 5,
    "frames": 2, "translate": 1, "folios": 2, "set_thp_size": 2, "switch_out": 2,
}  # fmt: skip


def fresh() -> pt.AddressSpace:
    mm = pt.AddressSpace("x86-64", cpus=2, thp="always",
                         thp_sizes={64 << 10: "always", 16 << 10: "always"})  # fmt: skip
    flags = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    mm.mmap(4 << 20, addr=BASE, flags=flags)
    mm.madvise(BASE, 4 << 20, pt.MADV_POPULATE_WRITE)
    # 1 MiB of 64K and 16K folios (no PMD fits), from 4 KiB past a 64K boundary
    mm.mmap(1 << 20, addr=BASE + (6 << 20) + 4096, flags=flags)
    mm.madvise(BASE + (6 << 20) + 4096, 1 << 20, pt.MADV_POPULATE_WRITE)
    mm.mmap(64 << 10, addr=BASE + (8 << 20), flags=pt.MAP_SHARED | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    return mm


def keeps_partial_work(vmas: list[VmaInfo], call: str, args: list[Any], err: int) -> bool:
    """Whether Linux keeps the work done before this error, ``vmas`` being
    the space's VMAs before the call (an OSError comes after the arguments
    were accepted as integers)."""
    if call == "mremap":
        # old_size 0 with MREMAP_FIXED: unmapping the target took the source
        return err == errno.EFAULT and args[1] == 0
    if call not in ("mprotect", "madvise"):
        return False
    addr, end = args[0], args[0] + -(-args[1] // 4096) * 4096
    if addr % 4096 or end >= U64:
        return False  # EINVAL before any work: an unaligned or wrapping range
    first = next((v for v in vmas if v.start <= addr < v.end), None)
    if call == "mprotect":
        # do_mprotect_pkey changes VMA by VMA from the one at addr and
        # reports ENOMEM at the first hole; the changes before it stay
        return err == errno.ENOMEM and first is not None and end <= TASK_SIZE
    if args[2] in (pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE):
        # faults in VMA by VMA and stops at the first it cannot fault (a
        # hole: ENOMEM; a protection: EINVAL; past a shared object: EFAULT);
        # work was done only if the VMA at addr could be faulted in (fresh()'s
        # shared object is as long as its mapping: nothing lies past it)
        if first is None:
            return False
        if args[2] == pt.MADV_POPULATE_WRITE:
            faultable = bool(first.prot & pt.PROT_WRITE)
        else:
            faultable = first.prot != pt.PROT_NONE
        return faultable and err in (errno.ENOMEM, errno.EINVAL, errno.EFAULT)
    # DONTNEED, (NO)HUGEPAGE: every mapped part is done, then ENOMEM for the holes
    return err == errno.ENOMEM and any(v.start < end and addr < v.end for v in vmas)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(sorted(CALLS)), data=st.data())
def test_any_arguments_give_a_clean_error_or_work(call: str, data: st.DataObject) -> None:
    mm = fresh()
    n = CALLS[call]
    # integers only half the time: junk rarely lets all of a call's arguments through
    args = data.draw(
        st.lists(junk, min_size=n, max_size=n) | st.lists(ints, min_size=n, max_size=n)
    )
    before = snapshot(mm)
    vmas = mm.vmas()
    try:
        getattr(mm, call)(*args)
    except OSError as e:
        assert e.errno in (errno.EINVAL, errno.ENOMEM, errno.EEXIST, errno.EFAULT,
                           errno.EPERM, errno.EBADF, errno.EOPNOTSUPP)  # fmt: skip
        # only the failures Linux lets stop part way may have changed something
        if not keeps_partial_work(vmas, call, args, e.errno):
            assert snapshot(mm) == before, (call, args, e)
    except (TypeError, ValueError, NotImplementedError):
        assert snapshot(mm) == before
    mm.check()


_PAGES = st.integers(0, 2600).map(lambda k: BASE + k * 4096)  # around fresh()'s mappings


_ARG = {
    "mprotect": st.sampled_from([pt.PROT_NONE, pt.PROT_READ, pt.PROT_READ | pt.PROT_WRITE, 8]),
    "madvise": st.sampled_from([pt.MADV_DONTNEED, pt.MADV_HUGEPAGE, pt.MADV_NOHUGEPAGE,
                                pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE, 99]),
}  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=st.sampled_from(sorted(_ARG)),
    addr=_PAGES | _PAGES.map(lambda a: a + 512),
    length=st.integers(0, 3000).map(lambda k: k * 4096) | st.integers(1, 1 << 24),
    data=st.data(),
)
def test_mprotect_and_madvise_keep_only_what_linux_keeps(
    call: str, addr: int, length: int, data: st.DataObject
) -> None:
    # plausible arguments, so that the calls do work before they fail; a
    # read-only VMA after an emptied range stops MADV_POPULATE_WRITE part way
    mm = fresh()
    mm.madvise(BASE + (1 << 20), 3 << 20, pt.MADV_DONTNEED)
    mm.mprotect(BASE + (2 << 20), 1 << 20, pt.PROT_READ)
    args = [addr, length, data.draw(_ARG[call])]
    before = snapshot(mm)
    vmas = mm.vmas()
    try:
        getattr(mm, call)(*args)
    except OSError as e:
        if not keeps_partial_work(vmas, call, args, e.errno):
            assert snapshot(mm) == before, (call, args, e)
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
        "lazy_cpus": data.draw(st.sampled_from([0, 1]) | junk),
    }  # fmt: skip
    if isinstance(kwargs["size"], int) and kwargs["size"] > 1 << 22:
        kwargs["size"] = 1 << 22  # valid sizes stay small: this is about errors
    try:
        r = run_move(**kwargs)
    except (TypeError, ValueError, NotImplementedError):
        return
    assert r.estimated_ns >= 0 and r.size == kwargs["size"]


@st.composite
def valid_run(draw: st.DrawFn) -> dict[str, Any]:
    """run_move arguments that are all valid (small regions)."""
    arch = draw(st.sampled_from(pt.archs()))
    a = pt.arch(arch)
    kinds = st.sampled_from(["write", "read", "thp", "sparse"])
    align = st.sampled_from(["pud", "pmd", "page"]) | st.integers(0, 64).map(
        lambda k: k * a.page_size
    )
    cpus = draw(st.integers(1, 3))
    return {
        "size": draw(st.integers(1, (4 << 20) // a.page_size)) * a.page_size,
        "arch": arch,
        "policy": draw(st.sampled_from(pt.policies())),
        "populate": draw(
            kinds
            | st.dictionaries(kinds, st.sampled_from([0.25, 0.5]), min_size=1, max_size=2)
            | st.tuples(kinds, st.sampled_from([0.5, 1])).map(lambda t: f"{t[0]}:{t[1]}")
        ),
        "src_align": draw(align),
        "dst_align": draw(align),
        "cpus": cpus,
        "lazy_cpus": draw(st.integers(0, cpus - 1)),
        "touch": draw(st.integers(0, 64)),
        "seed": draw(st.integers(0, 3)),
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kwargs=valid_run())
def test_run_move_with_valid_arguments_works(kwargs: dict[str, Any]) -> None:
    # a valid configuration must move, never raise
    from pagetab.experiment import run_move

    r = run_move(**kwargs)
    assert (r.arch, r.policy, r.size, r.cpus) == (
        kwargs["arch"], kwargs["policy"], kwargs["size"], kwargs["cpus"])  # fmt: skip
    page = pt.arch(kwargs["arch"]).page_size
    c = r.counters
    assert c["ptes_moved"] <= kwargs["size"] // page and r.estimated_ns > 0


UFFD_CALLS = {"register": 3, "unregister": 2, "move": 4, "move_many": 2}
MOVE_ERRNOS = (errno.EINVAL, errno.ENOENT, errno.EEXIST, errno.EBUSY, errno.EAGAIN, errno.ENOMEM)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=st.sampled_from(sorted(UFFD_CALLS)), data=st.data())
def test_userfaultfd_calls_with_any_arguments(call: str, data: st.DataObject) -> None:
    # fresh()'s written pages (and folios) moved into a registered mapping
    mm = fresh()
    mm.policy = "linux-6.18"
    dst = BASE + (9 << 20)  # reachable by ints' pages
    mm.mmap(1 << 20, addr=dst, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    u.register(dst, 1 << 20, pt.UFFDIO_REGISTER_MODE_WP)
    n = UFFD_CALLS[call]
    args = data.draw(
        st.lists(junk, min_size=n, max_size=n) | st.lists(ints, min_size=n, max_size=n)
    )
    # plausible moves too, so that they reach the pages: into the registered
    # megabyte, out of fresh()'s written pages and folios
    src = st.integers(0, 1000).map(lambda k: BASE + k * 4096) | st.integers(0, 240).map(
        lambda k: BASE + (6 << 20) + 4096 + k * 4096)  # fmt: skip
    near = st.tuples(st.integers(0, 190).map(lambda k: dst + k * 4096), src,
                     st.sampled_from([1, 2, 16, 64]).map(lambda k: k * 4096))  # fmt: skip
    if call == "move" and data.draw(st.booleans(), label="plausible"):
        args = [*data.draw(near), data.draw(st.sampled_from([0, 1, 2, 3, 4]))]
    if call == "move_many":
        args[0] = data.draw(st.lists(st.tuples(ints, ints, ints) | near, max_size=4) | junk,
                            label="calls")  # fmt: skip
        args[1] = data.draw(st.sampled_from([0, 2]) | junk, label="mode")
    before = snapshot(mm)
    try:
        getattr(u, call)(*args)
    except pt.userfaultfd.UffdMoveError as e:
        assert e.errno in MOVE_ERRNOS
        if e.errno != errno.EAGAIN and e.calls_done == 0:
            # nothing moved (the destination's anon_vma and tables may be new)
            assert snapshot(mm)[:2] == before[:2], (call, args, e)
    except OSError as e:
        assert e.errno in (errno.EINVAL, errno.EBUSY, errno.ENOMEM)
        assert snapshot(mm) == before, (call, args, e)
    except (TypeError, ValueError, NotImplementedError):
        assert snapshot(mm) == before
    mm.check()
