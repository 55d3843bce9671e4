"""AddressSpace: mmap, munmap, mprotect, madvise, frames, THP, shared memory."""

from __future__ import annotations

import errno
from collections.abc import Callable

import numpy as np
import pytest
from helpers import ALL_ARCHS, snapshot

import pagetab as pt

K, M, G = 1 << 10, 1 << 20, 1 << 30
MM = Callable[..., pt.AddressSpace]


@pytest.mark.parametrize("name", ALL_ARCHS)
def test_populate_translate_round_trip(make_mm: MM, name: str) -> None:
    mm = make_mm(name, thp="never")
    a = pt.arch(name)
    length = 3 * a.pmd_size + 5 * a.page_size
    addr = mm.mmap(length)
    assert addr % a.page_size == 0
    npages = length // a.page_size
    assert (mm.frames(addr, length) == -1).all()
    mm.madvise(addr, length, pt.MADV_POPULATE_READ)
    assert (mm.frames(addr, length) == pt.ZERO_FRAME).all()
    mm.madvise(addr, length, pt.MADV_POPULATE_WRITE)
    f = mm.frames(addr, length)
    assert (f > 0).all() and np.unique(f).size == npages
    for i in (0, 1, npages // 2, npages - 1):
        assert mm.translate(addr + i * a.page_size + 17) == f[i]
    assert mm.translate(addr + length) is None
    # tables: one PTE table per PMD extent touched, as the kernel allocates
    first, last = addr // a.pmd_size, (addr + length - 1) // a.pmd_size
    assert mm.tables.live_rows()[-1] == last - first + 1
    mm.munmap(addr, length)
    assert mm.page_table_bytes == 0
    assert mm.tables.live_rows() == [1] + [0] * (len(a.levels) - 1)


def test_page_table_bytes_match_vmpte(mm: pt.AddressSpace) -> None:
    # the kernel: 2056 kB of page tables per GiB of populated 4K pages
    addr = mm.mmap(G, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_POPULATE)
    assert addr % (2 * M) == 0  # THP-aligned placement of PMD-multiple lengths
    assert 512 * 4 * K + 4 * K <= mm.page_table_bytes <= 512 * 4 * K + 3 * 4 * K


def test_table_views_are_zero_copy_and_read_only(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(2 * M, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED, addr=1 << 40)
    mm.madvise(addr, 4 * K, pt.MADV_POPULATE_WRITE)
    pgd = mm.tables.table(0, 0)
    assert pgd.dtype == np.uint64 and pgd.shape == (512,)
    pud_row = int(pgd[(addr >> 39) & 511]) >> 12
    assert pgd[(addr >> 39) & 511] & 1
    with pytest.raises(ValueError):
        pgd[0] = 1
    view = mm.tables.table(1, pud_row)
    before = int(view[(addr >> 30) & 511])
    mm.munmap(addr, 2 * M)
    assert before != 0 and int(view[(addr >> 30) & 511]) == 0  # same memory, seen live


def test_mmap_topdown_placement_and_hint(mm: pt.AddressSpace) -> None:
    a = mm.mmap(8 * K)
    b = mm.mmap(8 * K)
    assert b == a - 8 * K  # top-down, directly below
    assert len(mm.vmas()) == 1  # adjacent private anonymous mappings merge
    assert a + 8 * K == pt.arch("x86-64").mmap_base
    hint = 1 << 40
    c = mm.mmap(4 * K, addr=hint + 5)  # hint is rounded down to a page
    assert c == hint
    d = mm.mmap(4 * K, addr=hint)  # taken: placed elsewhere
    assert d != hint


def test_mmap_fixed_replaces_and_noreplace_refuses(mm: pt.AddressSpace) -> None:
    base = 1 << 40
    mm.mmap(16 * K, addr=base, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.madvise(base, 16 * K, pt.MADV_POPULATE_WRITE)
    old = mm.frames(base, 16 * K)
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        mm.mmap(
            4 * K,
            addr=base + 4 * K,
            flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED_NOREPLACE,
        )
    assert e.value.errno == errno.EEXIST
    assert snapshot(mm) == before
    mm.mmap(
        4 * K,
        addr=base + 4 * K,
        prot=pt.PROT_READ,
        flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED,
    )
    f = mm.frames(base, 16 * K)
    assert f[1] == -1 and (f[[0, 2, 3]] == old[[0, 2, 3]]).all()
    assert [v.prot for v in mm.vmas()] == [3, 1, 3]


def test_vma_split_and_merge_by_mprotect(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(64 * K, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_POPULATE)
    mm.mprotect(addr + 16 * K, 16 * K, pt.PROT_READ)
    assert [(v.start - addr, v.end - addr, v.prot) for v in mm.vmas()] == [
        (0, 16 * K, 3),
        (16 * K, 32 * K, 1),
        (32 * K, 64 * K, 3),
    ]
    _, ent = mm.tables.entry(addr + 16 * K)
    assert not ent & pt._tables.WRITE and ent & pt._tables.READ
    _, ent = mm.tables.entry(addr)
    assert ent & pt._tables.WRITE
    mm.mprotect(addr + 16 * K, 16 * K, pt.PROT_READ | pt.PROT_WRITE)
    assert len(mm.vmas()) == 1
    mm.mprotect(addr, 4 * K, pt.PROT_NONE)
    _, ent = mm.tables.entry(addr)
    assert ent & 1 and not ent & (pt._tables.READ | pt._tables.WRITE)  # present, PROT_NONE


def test_mprotect_stops_at_a_hole_like_linux(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(12 * K)
    mm.munmap(addr + 4 * K, 4 * K)
    with pytest.raises(OSError) as e:
        mm.mprotect(addr, 12 * K, pt.PROT_READ)
    assert e.value.errno == errno.ENOMEM
    assert [v.prot for v in mm.vmas()] == [pt.PROT_READ, 3]  # first VMA changed, as Linux
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        mm.mprotect(addr + 4 * K, 4 * K, pt.PROT_READ)
    assert e.value.errno == errno.ENOMEM and snapshot(mm) == before


def test_munmap_splits_and_frees_only_unshared_tables(mm: pt.AddressSpace) -> None:
    base = 1 << 40
    fixed = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED | pt.MAP_POPULATE
    mm.mmap(6 * M, addr=base, flags=fixed)
    assert mm.tables.live_rows()[3] == 3
    mm.munmap(base + 1 * M, 2 * M)  # leaves [0,1M) and [3M,6M)
    v = mm.vmas()
    assert [(x.start - base, x.end - base) for x in v] == [(0, M), (3 * M, 6 * M)]
    assert v[1].pgoff == (base + 3 * M) >> 12
    # PTE tables of [0,2M) and [2M,4M) still serve a VMA; [4M,6M) untouched
    assert mm.tables.live_rows()[3] == 3
    assert (mm.frames(base + M, 2 * M) == -1).all()
    mm.munmap(base, M)
    assert mm.tables.live_rows()[3] == 2
    mm.munmap(base + 3 * M, 3 * M)
    assert mm.page_table_bytes == 0


def test_thp_always_installs_huge_leaves(make_mm: MM) -> None:
    mm = make_mm("x86-64", thp="always")
    addr = mm.mmap(8 * M)
    assert addr % (2 * M) == 0
    mm.madvise(addr + 4 * K, 4 * K, pt.MADV_POPULATE_WRITE)  # faults the whole PMD
    lev, ent = mm.tables.entry(addr)
    assert lev == 2 and ent & pt._tables.LEAF
    f = mm.frames(addr, 2 * M)
    assert (np.diff(f) == 1).all() and f[0] > 0
    assert mm.tables.live_rows()[3] == 0  # no PTE table for a huge leaf
    # read faults map the huge zero page; a write replaces it with a THP
    mm.madvise(addr + 2 * M, 2 * M, pt.MADV_POPULATE_READ)
    assert (mm.frames(addr + 2 * M, 2 * M) == pt.ZERO_FRAME).all()
    mm.madvise(addr + 2 * M, 4 * K, pt.MADV_POPULATE_WRITE)
    assert (mm.frames(addr + 2 * M, 2 * M) > 0).all()
    # DONTNEED of part of a THP splits it (split_huge_pmd) and keeps the rest
    mm.madvise(addr + 8 * K, 4 * K, pt.MADV_DONTNEED)
    g = mm.frames(addr, 2 * M)
    assert g[2] == -1 and (np.delete(g, 2) == np.delete(f, 2)).all()
    assert mm.tables.live_rows()[3] == 1


def test_thp_madvise_mode_needs_madv_hugepage(make_mm: MM) -> None:
    mm = make_mm("x86-64", thp="madvise")
    addr = mm.mmap(4 * M)
    mm.madvise(addr, 2 * M, pt.MADV_POPULATE_WRITE)
    assert mm.tables.entry(addr)[0] == 3  # 4K pages
    mm.madvise(addr + 2 * M, 2 * M, pt.MADV_HUGEPAGE)
    assert [v.hugepage for v in mm.vmas()] == [False, True]
    mm.madvise(addr + 2 * M, 2 * M, pt.MADV_POPULATE_WRITE)
    assert mm.tables.entry(addr + 2 * M)[0] == 2  # a huge leaf
    mm.madvise(addr + 2 * M, 2 * M, pt.MADV_NOHUGEPAGE)
    mm.madvise(addr + 2 * M, 2 * M, pt.MADV_HUGEPAGE)
    assert len(mm.vmas()) == 2
    mm.mprotect(addr + 3 * M, 4 * K, pt.PROT_READ)  # splits the VMA and the THP
    assert mm.tables.entry(addr + 2 * M)[0] == 3


@pytest.mark.parametrize("name", ["arm64-64k", "arm64-16k", "ppc64-radix-64k"])
def test_thp_on_other_granules(make_mm: MM, name: str) -> None:
    mm = make_mm(name, thp="always")
    a = pt.arch(name)
    addr = mm.mmap(2 * a.pmd_size)
    mm.madvise(addr, 2 * a.pmd_size, pt.MADV_POPULATE_WRITE)
    assert mm.tables.entry(addr)[0] == len(a.levels) - 2
    assert mm.tables.live_rows()[-1] == 0


def test_shared_memory_keeps_frames_in_its_object(mm: pt.AddressSpace) -> None:
    shared = pt.MAP_SHARED | pt.MAP_ANONYMOUS
    addr = mm.mmap(16 * K, flags=shared)
    mm.madvise(addr, 16 * K, pt.MADV_POPULATE_READ)
    f = mm.frames(addr, 16 * K)
    assert (f > 0).all()  # shmem read faults allocate pages: no zero page
    mm.madvise(addr, 8 * K, pt.MADV_DONTNEED)
    assert (mm.frames(addr, 8 * K) == -1).all()
    mm.madvise(addr, 16 * K, pt.MADV_POPULATE_WRITE)
    assert (mm.frames(addr, 16 * K) == f).all()  # the object kept its pages
    other = mm.mmap(16 * K, flags=shared)
    assert other + 16 * K == addr and len(mm.vmas()) == 2  # different objects never merge


def test_private_dontneed_drops_frames(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(16 * K, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_POPULATE)
    f = mm.frames(addr, 16 * K)
    mm.madvise(addr, 16 * K, pt.MADV_DONTNEED)
    mm.madvise(addr, 16 * K, pt.MADV_POPULATE_WRITE)
    assert not set(f) & set(mm.frames(addr, 16 * K))  # fresh frames after a zap


def test_populate_stops_at_a_hole_and_keeps_what_it_did(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(12 * K)
    mm.munmap(addr + 8 * K, 4 * K)
    with pytest.raises(OSError) as e:
        mm.madvise(addr, 12 * K, pt.MADV_POPULATE_WRITE)
    assert e.value.errno == errno.ENOMEM
    assert (mm.frames(addr, 8 * K) > 0).all()
    ro = mm.mmap(4 * K, prot=pt.PROT_READ)
    before = snapshot(mm)
    with pytest.raises(OSError) as e:  # EINVAL since Linux 6.9's FOLL_MADV_POPULATE
        mm.madvise(ro, 4 * K, pt.MADV_POPULATE_WRITE)
    assert e.value.errno == errno.EINVAL and snapshot(mm) == before


def test_populate_read_after_write_keeps_frames(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(8 * K)
    mm.madvise(addr, 4 * K, pt.MADV_POPULATE_WRITE)
    f0 = mm.translate(addr)
    mm.madvise(addr, 8 * K, pt.MADV_POPULATE_READ)
    assert mm.translate(addr) == f0 and mm.translate(addr + 4 * K) == pt.ZERO_FRAME


FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED

ERRORS = [
    ("mmap", (0,), {}, errno.EINVAL),
    ("mmap", (4096,), {"flags": pt.MAP_ANONYMOUS}, errno.EINVAL),
    ("mmap", (4096,), {"flags": pt.MAP_PRIVATE}, errno.EBADF),
    ("mmap", (4096,), {"addr": (1 << 40) + 1, "flags": FIX}, errno.EINVAL),
    ("mmap", (4096,), {"addr": 4096, "flags": FIX}, errno.EPERM),
    ("mmap", (1 << 48,), {}, errno.ENOMEM),
    ("mmap", (8192,), {"addr": (1 << 47) - 4096, "flags": FIX}, errno.ENOMEM),
    ("munmap", (1 << 40, 0), {}, errno.EINVAL),
    ("munmap", ((1 << 40) + 1, 4096), {}, errno.EINVAL),
    ("munmap", ((1 << 47) - 4096, 8192), {}, errno.EINVAL),
    ("mprotect", ((1 << 40) + 1, 4096, 1), {}, errno.EINVAL),
    ("mprotect", (1 << 40, 4096, 0x100), {}, errno.EINVAL),
    ("mprotect", (1 << 41, 4096, 1), {}, errno.ENOMEM),
    ("madvise", ((1 << 40) + 1, 4096, pt.MADV_DONTNEED), {}, errno.EINVAL),
    ("madvise", (1 << 40, 4096, 999), {}, errno.EINVAL),
    ("madvise", (1 << 41, 4096, pt.MADV_POPULATE_READ), {}, errno.ENOMEM),
    ("madvise", (1 << 41, 4096, pt.MADV_HUGEPAGE), {}, errno.ENOMEM),
]


@pytest.mark.parametrize(("call", "args", "kwargs", "code"), ERRORS)
def test_errors_have_linux_errno_and_change_nothing(
    mm: pt.AddressSpace, call: str, args: tuple[int, ...], kwargs: dict[str, int], code: int
) -> None:
    mm.mmap(64 * K, addr=1 << 40, flags=FIX | pt.MAP_POPULATE)
    mm.mmap(4 * M, addr=(1 << 40) + 8 * M, flags=pt.MAP_SHARED | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    before = snapshot(mm)
    with pytest.raises(OSError) as e:
        getattr(mm, call)(*args, **kwargs)
    assert e.value.errno == code, e.value
    assert call in str(e.value)
    assert snapshot(mm) == before


@pytest.mark.parametrize(
    ("call", "args", "exc"),
    [
        ("mmap", ("4096",), TypeError),
        ("mmap", (4096.0,), TypeError),
        ("mmap", (-4096,), ValueError),
        ("mmap", (1 << 64,), ValueError),
        ("munmap", (None, 4096), TypeError),
        ("mprotect", (1 << 40, -1, 1), ValueError),
        ("madvise", (1 << 40, 4096, "x"), TypeError),
        ("frames", (1 << 40, 3), ValueError),
        ("translate", ([],), TypeError),
    ],
)
def test_bad_types_and_values(
    mm: pt.AddressSpace, call: str, args: tuple[object, ...], exc: type[Exception]
) -> None:
    before = snapshot(mm)
    with pytest.raises(exc):
        getattr(mm, call)(*args)
    assert snapshot(mm) == before


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="always, madvise, never"):
        pt.AddressSpace(thp="sometimes")
    with pytest.raises(ValueError, match="valid"):
        pt.AddressSpace(arch="vax")
    with pytest.raises(TypeError):
        pt.AddressSpace(cpus="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pt.AddressSpace(cpus=0)


def test_unsupported_features_say_so(mm: pt.AddressSpace) -> None:
    with pytest.raises(NotImplementedError, match="MADV_FREE"):
        mm.madvise(1 << 40, 4096, pt.MADV_FREE)
    with pytest.raises(NotImplementedError, match="hugetlb"):
        mm.mmap(4096, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_HUGETLB)


def test_check_detects_corruption(mm: pt.AddressSpace) -> None:
    addr = mm.mmap(8 * K, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_POPULATE)
    mm.check()
    mm.mm_struct.vmas[0].end = addr + 4 * K  # a page mapped outside every VMA
    with pytest.raises(pt.InvariantError, match="outside every VMA"):
        mm.check()
    mm.mm_struct.vmas[0].end = addr + 8 * K


def test_max_map_count(make_mm: MM) -> None:
    mm = make_mm("x86-64", max_map_count=2)
    mm.mmap(4 * K, prot=pt.PROT_READ)
    mm.mmap(4 * K, prot=pt.PROT_WRITE)
    mm.mmap(4 * K, prot=pt.PROT_NONE)
    with pytest.raises(OSError) as e:
        mm.mmap(4 * K, prot=pt.PROT_READ)
    assert e.value.errno == errno.ENOMEM


def test_huge_ranges_stay_bounded(mm: pt.AddressSpace) -> None:
    # found by fuzzing: frames() of 16 TiB would allocate a 32 GiB array
    with pytest.raises(ValueError, match="at most"):
        mm.frames(0, 1 << 46)
    big = mm.mmap(64 << 40)  # 64 TiB, three pages populated: check() stays cheap
    for off in (0, 1 << 40, (64 << 40) - 4096):
        mm.madvise(big + off, 4096, pt.MADV_POPULATE_WRITE)
    mm.check()
    assert mm.rss_pages == 3


def test_numpy_integers_are_ints_and_bools_are_not() -> None:
    # each said "must be an int, not int64" (mm.mmap took them already)
    assert pt.AddressSpace(cpus=np.int64(2)).cpus == 2
    assert pt.run_move(np.int64(2 << 20), "x86-64", "linux-6.8").row()["size"] == 2 << 20
    res = pt.compare(np.array([2 << 20]), archs=["x86-64"], policies=["linux-6.8"])
    assert [r["size"] for r in res.rows()] == [2 << 20]
    for bad in (True, np.bool_(True)):
        with pytest.raises(TypeError, match="cpus must be an int, not bool"):
            pt.AddressSpace(cpus=bad)
