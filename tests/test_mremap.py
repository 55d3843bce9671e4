"""mremap(2): semantics and errno rules, as in man-pages mremap(2) and mm/mremap.c
(check_mremap_params, check_prep_vma, remap_move)."""

from __future__ import annotations

import errno
from collections.abc import Callable

import numpy as np
import pytest
from helpers import snapshot

import pagetab as pt

K, M, G = 1 << 10, 1 << 20, 1 << 30
MM = Callable[..., pt.AddressSpace]
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
SHARED = pt.MAP_SHARED | pt.MAP_ANONYMOUS
MOVE = pt.MREMAP_MAYMOVE
FIXED = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
BASE = 1 << 40


def populated(mm: pt.AddressSpace, length: int, addr: int = BASE, flags: int = FIX) -> int:
    a = mm.mmap(length, addr=addr, flags=flags)
    mm.madvise(a, length, pt.MADV_POPULATE_WRITE)
    return a


def test_shrink_in_place(mm: pt.AddressSpace) -> None:
    a = populated(mm, 64 * K)
    f = mm.frames(a, 64 * K)
    assert mm.mremap(a, 64 * K, 16 * K) == a
    assert (mm.frames(a, 16 * K) == f[:4]).all()
    assert [(v.start, v.end) for v in mm.vmas()] == [(a, a + 16 * K)]
    assert mm.last_move is not None and not mm.last_move.moved


def test_grow_in_place_when_free(mm: pt.AddressSpace) -> None:
    a = populated(mm, 16 * K)
    assert mm.mremap(a, 16 * K, 64 * K) == a
    assert [(v.start, v.end) for v in mm.vmas()] == [(a, a + 64 * K)]
    assert (mm.frames(a + 16 * K, 48 * K) == -1).all()


def test_grow_needs_maymove_when_blocked(mm: pt.AddressSpace) -> None:
    a = populated(mm, 16 * K)
    mm.mmap(4 * K, addr=a + 16 * K, flags=FIX, prot=pt.PROT_READ)  # blocks growth
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        mm.mremap(a, 16 * K, 64 * K)
    assert e.value.errno == errno.ENOMEM and snapshot(mm) == before
    f = mm.frames(a, 16 * K)
    b = mm.mremap(a, 16 * K, 64 * K, MOVE)
    assert b != a
    assert (mm.frames(b, 16 * K) == f).all() and (mm.frames(b + 16 * K, 48 * K) == -1).all()
    assert mm.find_vma(a) is None
    assert mm.last_move is not None and mm.last_move.ptes_moved == 4


def test_fixed_unmaps_the_target(mm: pt.AddressSpace) -> None:
    a = populated(mm, 16 * K)
    t = populated(mm, 32 * K, addr=BASE + G)
    f = mm.frames(a, 16 * K)
    tail = mm.frames(t + 16 * K, 16 * K)
    assert mm.mremap(a, 16 * K, 16 * K, FIXED, t) == t
    assert (mm.frames(t, 16 * K) == f).all()
    assert (mm.frames(t + 16 * K, 16 * K) == tail).all()  # the rest of the target stays
    assert mm.find_vma(a) is None


def test_dontunmap_private_leaves_source_mapped_and_empty(mm: pt.AddressSpace) -> None:
    a = populated(mm, 2 * M)
    f = mm.frames(a, 2 * M)
    b = mm.mremap(a, 2 * M, 2 * M, MOVE | pt.MREMAP_DONTUNMAP)
    assert b != a
    assert (mm.frames(b, 2 * M) == f).all()
    assert mm.find_vma(a) is not None and (mm.frames(a, 2 * M) == -1).all()
    mm.madvise(a, 4 * K, pt.MADV_POPULATE_READ)
    assert mm.translate(a) == pt.ZERO_FRAME  # faults in fresh (zero) pages


def test_dontunmap_shared_keeps_the_data(mm: pt.AddressSpace) -> None:
    a = mm.mmap(64 * K, flags=SHARED)
    mm.madvise(a, 64 * K, pt.MADV_POPULATE_WRITE)
    f = mm.frames(a, 64 * K)
    b = mm.mremap(a, 64 * K, 64 * K, MOVE | pt.MREMAP_DONTUNMAP)
    assert (mm.frames(b, 64 * K) == f).all() and (mm.frames(a, 64 * K) == -1).all()
    mm.madvise(a, 64 * K, pt.MADV_POPULATE_READ)
    assert (mm.frames(a, 64 * K) == f).all()  # same shmem pages behind both


def test_old_size_zero_duplicates_shared_only(mm: pt.AddressSpace) -> None:
    a = mm.mmap(64 * K, flags=SHARED)
    mm.madvise(a, 64 * K, pt.MADV_POPULATE_WRITE)
    b = mm.mremap(a + 16 * K, 0, 16 * K, MOVE)
    mm.madvise(b, 16 * K, pt.MADV_POPULATE_READ)
    assert (mm.frames(b, 16 * K) == mm.frames(a + 16 * K, 16 * K)).all()
    assert len(mm.vmas()) == 2
    p = populated(mm, 16 * K)
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        mm.mremap(p, 0, 16 * K, MOVE)
    assert e.value.errno == errno.EINVAL and snapshot(mm) == before


def test_grown_shared_mapping_past_its_object_faults(mm: pt.AddressSpace) -> None:
    a = mm.mmap(16 * K, flags=SHARED)
    assert mm.mremap(a, 16 * K, 32 * K) == a
    mm.madvise(a, 16 * K, pt.MADV_POPULATE_READ)
    with pytest.raises(OSError) as e:  # SIGBUS past the shmem object's size
        mm.madvise(a + 16 * K, 4 * K, pt.MADV_POPULATE_READ)
    assert e.value.errno == errno.EFAULT


def test_pure_fixed_move_spans_vmas_and_keeps_gaps(make_mm: MM) -> None:
    mm = make_mm("x86-64", policy="linux-6.17")  # remap_move (d23cb648e365)
    a = populated(mm, 16 * K)
    mm.mprotect(a + 4 * K, 4 * K, pt.PROT_READ)  # three VMAs
    mm.munmap(a + 12 * K, 4 * K)  # and a gap at the end... of [a, a+16K)
    f = mm.frames(a, 12 * K)
    keep = populated(mm, 4 * K, addr=BASE + G + 12 * K)  # target gap keeps its mapping
    kf = mm.frames(keep, 4 * K)
    assert mm.mremap(a, 16 * K, 16 * K, FIXED, BASE + G) == BASE + G
    assert (mm.frames(BASE + G, 12 * K) == f).all()
    assert (mm.frames(keep, 4 * K) == kf).all()
    prots = [(v.start - BASE - G, v.prot) for v in mm.vmas()]
    assert prots == [(0, 3), (4 * K, 1), (8 * K, 3), (12 * K, 3)]
    with pytest.raises(OSError) as e:  # a gap at the start is EFAULT
        mm.mremap(BASE + G - 4 * K, 8 * K, 8 * K, FIXED, BASE + 2 * G)
    assert e.value.errno == errno.EFAULT


def test_resize_cannot_cross_a_vma_end(mm: pt.AddressSpace) -> None:
    a = populated(mm, 16 * K)
    mm.mprotect(a + 8 * K, 8 * K, pt.PROT_READ)
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        mm.mremap(a, 16 * K, 32 * K, MOVE)
    assert e.value.errno == errno.EFAULT and snapshot(mm) == before


def test_moved_unfaulted_vma_merges_with_its_new_neighbour(mm: pt.AddressSpace) -> None:
    a = mm.mmap(16 * K, addr=BASE, flags=FIX)
    b = mm.mmap(16 * K, addr=BASE + G, flags=FIX)
    mm.mremap(b, 16 * K, 16 * K, FIXED, a + 16 * K)
    assert [(v.start, v.end) for v in mm.vmas()] == [(a, a + 32 * K)]
    # a faulted VMA keeps its pgoff, so it does not merge (mm/vma.c)
    c = populated(mm, 16 * K, addr=BASE + 2 * G)
    mm.mremap(c, 16 * K, 16 * K, FIXED, a + 32 * K)
    assert len(mm.vmas()) == 2


def test_moving_back_merges_again(mm: pt.AddressSpace) -> None:
    a = populated(mm, 64 * K)
    f = mm.frames(a, 64 * K)
    mm.mremap(a + 16 * K, 16 * K, 16 * K, FIXED, BASE + G)
    assert len(mm.vmas()) == 3
    mm.mremap(BASE + G, 16 * K, 16 * K, FIXED, a + 16 * K)
    assert len(mm.vmas()) == 1 and (mm.frames(a, 64 * K) == f).all()


def test_moved_entries_are_soft_dirty(mm: pt.AddressSpace) -> None:
    a = mm.mmap(8 * K, addr=BASE, flags=FIX)
    mm.madvise(a, 8 * K, pt.MADV_POPULATE_READ)
    assert not mm.tables.entry(a)[1] & pt._tables.SOFTDIRTY
    b = mm.mremap(a, 8 * K, 8 * K, FIXED, BASE + G)
    assert mm.tables.entry(b)[1] & pt._tables.SOFTDIRTY


ERRORS = [
    ((BASE + 1, 4 * K, 4 * K), {}, errno.EINVAL),
    ((BASE, 4 * K, 4 * K, 8), {}, errno.EINVAL),
    ((BASE, 4 * K, 0), {}, errno.EINVAL),
    ((BASE, 4 * K, 4 * K, pt.MREMAP_FIXED, BASE + G), {}, errno.EINVAL),
    ((BASE, 4 * K, 4 * K, pt.MREMAP_DONTUNMAP), {}, errno.EINVAL),
    ((BASE, 4 * K, 8 * K, MOVE | pt.MREMAP_DONTUNMAP), {}, errno.EINVAL),
    ((BASE, 16 * K, 16 * K, FIXED, BASE + 8 * K), {}, errno.EINVAL),
    ((BASE, 4 * K, 4 * K, FIXED, BASE + G + 1), {}, errno.EINVAL),
    ((BASE, 4 * K, 8 * K, FIXED, (1 << 47) - 4 * K), {}, errno.EINVAL),
    ((BASE, 4 * K, 1 << 48), {}, errno.EINVAL),
    ((BASE + 2 * G, 4 * K, 8 * K, MOVE), {}, errno.EFAULT),
    ((BASE, 64 * K, 64 * K, MOVE | pt.MREMAP_DONTUNMAP), {}, errno.EFAULT),
    ((BASE, 16 * K, 64 * K), {}, errno.ENOMEM),
]


@pytest.mark.parametrize(("args", "kwargs", "code"), ERRORS)
def test_errors_have_linux_errno_and_change_nothing(
    mm: pt.AddressSpace, args: tuple[int, ...], kwargs: dict[str, int], code: int
) -> None:
    populated(mm, 16 * K)
    mm.mmap(4 * K, addr=BASE + 16 * K, flags=FIX, prot=pt.PROT_READ)
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        mm.mremap(*args, **kwargs)
    assert e.value.errno == code, e.value
    assert "mremap" in str(e.value) and snapshot(mm) == before


@pytest.mark.parametrize(
    ("args", "exc"),
    [(("x", 4096, 4096), TypeError), ((BASE, -1, 4096), ValueError),
     ((BASE, 4096, 4096, 0, 2.0), TypeError), ((BASE, 4096, 1 << 64), ValueError)],
)  # fmt: skip
def test_bad_types(mm: pt.AddressSpace, args: tuple[object, ...], exc: type[Exception]) -> None:
    populated(mm, 16 * K)
    before = snapshot(mm)
    with pytest.raises(exc):
        mm.mremap(*args)
    assert snapshot(mm) == before


def test_policy_argument_is_validated() -> None:
    with pytest.raises(ValueError, match=r"linux-6\.8"):
        pt.AddressSpace(policy="linux-9.9")
    with pytest.raises(TypeError):
        pt.AddressSpace(policy=5)  # type: ignore[arg-type]


def test_move_keeps_frames_for_every_populate_kind(make_mm: MM) -> None:
    # (the range is three VMAs, by the MADV_NOHUGEPAGE: a pure move of
    # several VMAs needs 6.17)
    mm = make_mm("x86-64", thp="always", policy="linux-6.17")
    a = mm.mmap(8 * M, addr=BASE, flags=FIX)
    mm.madvise(a, 2 * M, pt.MADV_POPULATE_WRITE)  # THP
    mm.madvise(a + 2 * M, 2 * M, pt.MADV_POPULATE_READ)  # huge zero page
    mm.madvise(a + 4 * M, 2 * M, pt.MADV_NOHUGEPAGE)
    mm.madvise(a + 4 * M, 1 * M, pt.MADV_POPULATE_WRITE)  # 4K pages, half a table
    f = mm.frames(a, 8 * M)
    b = mm.mremap(a, 8 * M, 8 * M, FIXED, BASE + G + 4 * K)  # misaligned: splits THPs
    assert np.array_equal(mm.frames(b, 8 * M), f)
    st = mm.last_move
    assert st is not None and st.huge_pmds_split == 2 and st.huge_pmds_moved == 0


def test_old_size_zero_onto_itself_unmaps_and_faults(make_mm: MM) -> None:
    # old_size 0 does not overlap, so MREMAP_FIXED first unmaps the target,
    # which is the source: the kernel then fails with EFAULT (checked on
    # Linux 6.18 with pagetab.oracle.run_ops; the reference model found it)
    mm = make_mm("x86-64")
    a = mm.mmap(4096, addr=BASE, flags=pt.MAP_SHARED | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    with pytest.raises(OSError) as e:
        mm.mremap(a, 0, 4096, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, a)
    assert e.value.errno == errno.EFAULT and mm.vmas() == []


@pytest.mark.parametrize("size", [4096, 2 << 20])
def test_fixed_move_below_mmap_min_addr_is_eperm(size: int) -> None:
    # vrm_set_new_addr: get_unmapped_area(MAP_FIXED) -> security_mmap_addr
    # refuses an unprivileged process below vm.mmap_min_addr, as mmap does
    # (found by the API fuzzer: the move made a VMA at address 0)
    mm = pt.AddressSpace("x86-64")
    a = mm.mmap(size)
    mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
    before = (mm.vmas(), mm.frames(a, size).tolist())
    for new in (0, mm.arch.mmap_min_addr - 4096):
        with pytest.raises(OSError) as e:
            mm.mremap(a, size, size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, new)
        assert e.value.errno == errno.EPERM
    assert (mm.vmas(), mm.frames(a, size).tolist()) == before
    mm.check()


@pytest.mark.parametrize("registered", [None, 0, 1, 2])
@pytest.mark.parametrize("name", ["linux-6.16", "linux-6.17"])
def test_a_pure_move_of_several_vmas(name: str, registered: int | None) -> None:
    # three 16-page VMAs, 16 pages apart, moved by one pure move (the
    # oracle checks 6.18 against this machine's kernel: test_uffd.py)
    page = 4096
    mm = pt.AddressSpace("x86-64", policy=name)
    base, dst = 1 << 36, (1 << 36) + (1 << 30)
    for k in range(3):
        prot = pt.PROT_READ | pt.PROT_WRITE if k % 2 == 0 else pt.PROT_READ
        mm.mmap(16 * page, addr=base + 32 * k * page, prot=prot,
                flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)  # fmt: skip
    if registered is not None:
        mm.userfaultfd(0).register(base + 32 * registered * page, 16 * page,
                                   pt.UFFDIO_REGISTER_MODE_WP)  # fmt: skip
    before = mm.vmas()
    flags = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
    if name == "linux-6.16" or registered is not None:
        with pytest.raises(OSError) as e:
            mm.mremap(base, 80 * page, 80 * page, flags, dst)
        assert e.value.errno == errno.EFAULT
        # before 6.17 and for a registered first VMA: nothing moved; for a
        # registered later one, the VMAs before it moved and stay moved
        kept = 0 if name == "linux-6.16" else registered or 0
        assert [v.start for v in mm.vmas()] == sorted(
            [v.start for v in before[kept:]] + [dst + 32 * k * page for k in range(kept)]
        )
        moved = mm.last_move.moved_bytes if kept else 0  # type: ignore[union-attr]
        assert moved == 16 * page * kept
    else:
        assert mm.mremap(base, 80 * page, 80 * page, flags, dst) == dst
        assert [v.start for v in mm.vmas()] == [dst + 32 * k * page for k in range(3)]
