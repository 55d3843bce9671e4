"""File-backed mappings (pt.File): MAP_PRIVATE and MAP_SHARED of a regular
file, their faults (the page cache, copy-on-write, fault-around), EOF,
permissions, merges, mremap, mprotect, userfaultfd, save/load, and the
same sequences against this machine's kernel (pagetab.oracle)."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import numpy as np
import pytest
from oracle_diff import compare_frames, random_file_ops

import pagetab as pt
from pagetab import host

P = 4096
PMD = 2 << 20
RW = pt.PROT_READ | pt.PROT_WRITE
PRIV = pt.MAP_PRIVATE | pt.MAP_FIXED
SHARED = pt.MAP_SHARED | pt.MAP_FIXED
A = 1 << 36  # PUD aligned: fault-around blocks line up with the offsets below


def space(**kw: object) -> pt.AddressSpace:
    return pt.AddressSpace("x86-64", **kw)  # type: ignore[arg-type]


def present(mm: pt.AddressSpace, addr: int, pages: int) -> list[int]:
    """The indexes of the present pages of [addr, addr + pages)."""
    return [int(k) for k in np.flatnonzero(mm.frames(addr, pages * P) >= 0)]


# ----------------------------------------------------------------------
# mmap's arguments


def test_mmap_file_arguments_and_errnos() -> None:
    mm = space()
    f = pt.File("data", 8 * P)
    with pytest.raises(OSError) as e:
        mm.mmap(P, flags=pt.MAP_PRIVATE)  # no file, no MAP_ANONYMOUS: as before
    assert e.value.errno == errno.EBADF
    with pytest.raises(OSError) as e:
        mm.mmap(P, flags=pt.MAP_PRIVATE, file=f, offset=100)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        mm.mmap(P, prot=RW, flags=pt.MAP_SHARED, file=f)  # read-only file
    assert e.value.errno == errno.EACCES
    with pytest.raises(OSError) as e:
        mm.mmap(2 * P, flags=pt.MAP_PRIVATE, file=f, offset=(1 << 63) - P)
    assert e.value.errno == errno.EOVERFLOW
    with pytest.raises(ValueError, match="MAP_ANONYMOUS"):
        mm.mmap(P, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS, file=f)
    with pytest.raises(TypeError):
        mm.mmap(P, flags=pt.MAP_PRIVATE, file="data")  # type: ignore[arg-type]
    assert mm.vmas() == []  # nothing changed
    # read-only shared and writable private mappings of a read-only file are fine
    a = mm.mmap(P, prot=pt.PROT_READ, flags=pt.MAP_SHARED, file=f)
    b = mm.mmap(P, prot=RW, flags=pt.MAP_PRIVATE, file=f, offset=3 * P)
    infos = {v.start: v for v in mm.vmas()}
    assert infos[a].file == "data" and infos[a].shared and infos[a].pgoff == 0
    assert infos[b].file == "data" and not infos[b].shared and infos[b].pgoff == 3
    assert str(infos[b]).endswith(" data")
    with pytest.raises(ValueError, match="another AddressSpace"):
        space().mmap(P, flags=pt.MAP_PRIVATE, file=f)
    with pytest.raises(ValueError):
        pt.File("x", -1)


def test_mprotect_write_on_a_shared_read_only_file_is_eacces() -> None:
    mm = space()
    ro, rw = pt.File("ro", 4 * P), pt.File("rw", 4 * P, writable=True)
    mm.mmap(4 * P, A, pt.PROT_READ, SHARED, file=rw)
    mm.mmap(4 * P, A + 4 * P, pt.PROT_READ, SHARED, file=ro)
    with pytest.raises(OSError) as e:
        mm.mprotect(A, 8 * P, RW)
    assert e.value.errno == errno.EACCES
    # the VMA before the refused one keeps its new protection, as in Linux
    assert [(v.start - A, v.prot) for v in mm.vmas()] == [(0, RW), (4 * P, pt.PROT_READ)]
    mm.mprotect(A + 4 * P, 4 * P, pt.PROT_READ | pt.PROT_EXEC)  # no write: allowed
    mm.check()


# ----------------------------------------------------------------------
# faults


def test_read_faults_share_the_page_cache_frame() -> None:
    mm = space()
    f = pt.File("lib", 64 * P)
    a = mm.mmap(64 * P, A, pt.PROT_READ, PRIV, file=f)
    b = mm.mmap(64 * P, A + PMD, RW, PRIV, file=f)
    c = mm.mmap(64 * P, A + 2 * PMD, RW, SHARED, file=pt.File("other", 64 * P, True))
    mm.access([a + 5 * P, b + 5 * P, c + 5 * P])
    assert mm.translate(a + 5 * P) == mm.translate(b + 5 * P) == f.frames[5]
    assert mm.translate(c + 5 * P) != f.frames[5]
    mm.check()


def test_a_private_write_copies_and_the_other_mapping_keeps_the_page_cache() -> None:
    mm = space()
    f = pt.File("lib", 64 * P)
    a = mm.mmap(64 * P, A, RW, PRIV, file=f)
    b = mm.mmap(64 * P, A + PMD, pt.PROT_READ, PRIV, file=f)
    mm.access([a + 5 * P, b + 5 * P])  # read-only page-cache page in both
    cached = int(f.frames[5])
    st = mm.access([a + 5 * P], write=True)  # do_wp_page -> wp_page_copy
    assert st.cow_faults == 1 and st.faults == 1
    assert st.flush_ops["flush_calls"] >= 1  # ptep_clear_flush of the old page
    copy = mm.translate(a + 5 * P)
    assert copy is not None and copy != cached
    assert mm.translate(b + 5 * P) == cached and int(f.frames[5]) == cached
    # a write on a page never mapped: do_cow_fault, a copy at once
    st = mm.access([a + 40 * P], write=True)
    assert st.cow_faults == 0 and st.faults == 1
    assert mm.translate(a + 40 * P) not in (None, int(f.frames[40]))
    assert f.frames[40] >= 0  # the page was read into the page cache to be copied
    # the copy is writable from now on: a second write hits
    assert mm.access([a + 5 * P], write=True).faults == 0
    # the VMA has an anon_vma now (anon_vma_prepare)
    assert mm.find_vma(a) is not None and mm.find_vma(a).anon_vma is not None  # type: ignore[union-attr]
    mm.check()


def test_a_shared_write_is_seen_through_every_mapping() -> None:
    mm = space()
    f = pt.File("db", 32 * P, writable=True)
    a = mm.mmap(32 * P, A, RW, SHARED, file=f)
    b = mm.mmap(32 * P, A + PMD, RW, SHARED, file=f)
    c = mm.mmap(32 * P, A + 2 * PMD, pt.PROT_READ, PRIV, file=f)
    mm.access([a + 3 * P], write=True)
    frame = mm.translate(a + 3 * P)
    assert frame == f.frames[3]
    mm.access([b + 3 * P, c + 3 * P])
    assert mm.translate(b + 3 * P) == mm.translate(c + 3 * P) == frame
    # a write through b to the page read-faulted there: the same frame, no copy
    st = mm.access([b + 4 * P, b + 4 * P], write=False)
    st = mm.access([b + 4 * P], write=True)
    assert st.cow_faults == 0 and mm.translate(b + 4 * P) == f.frames[4]
    mm.check()


def test_fault_around_maps_the_aligned_window_clipped_to_the_vma() -> None:
    mm = space()
    f = pt.File("lib", 256 * P)
    # a VMA of pages 3..40 of the PTE table: the 16-page blocks around a
    # fault at page 20 are pages 16..31, at page 5 pages 3..15 (clipped
    # to the VMA's start), at page 35 pages 32..39 (clipped to its end)
    a = mm.mmap(37 * P, A + 3 * P, pt.PROT_READ, PRIV, file=f, offset=10 * P)
    mm.access([A + 20 * P])
    assert present(mm, A, 64) == list(range(16, 32))
    mm.access([A + 5 * P, A + 35 * P])
    assert present(mm, A, 64) == list(range(3, 40))
    # the page-cache pages mapped are those of pgoff 10 on
    assert mm.translate(a) == f.frames[10]
    mm.check()


def test_fault_around_stops_at_the_pte_table_and_the_file_end() -> None:
    mm = space()
    f = pt.File("short", 20 * P + 100)  # 21 pages: pages 0..20
    mm.mmap(PMD + 64 * P, A + PMD - 8 * P, pt.PROT_READ, PRIV, file=f)
    mm.access([A + PMD - 2 * P])  # the last 8 pages of the first PTE table
    assert present(mm, A + PMD - 16 * P, 32) == list(range(8, 16))
    mm.access([A + PMD + 2 * P])  # pages 8..12 of the file: past it, nothing
    assert present(mm, A + PMD, 32) == list(range(0, 13))
    st = mm.access([A + PMD + 13 * P])  # file page 21: past the end, SIGBUS
    assert st.segv == 1 and st.faults == 0
    mm.check()


def test_fault_around_bytes_is_a_parameter() -> None:
    mm = space(fault_around_bytes=8 * P)
    f = pt.File("lib", 64 * P)
    mm.mmap(64 * P, A, pt.PROT_READ, PRIV, file=f)
    mm.access([A + 9 * P])
    assert present(mm, A, 64) == list(range(8, 16))
    mm.fault_around_bytes = 12 * P  # rounded down to 8 pages
    mm.access([A + 20 * P])
    assert present(mm, A, 64) == [*range(8, 16), *range(16, 24)]
    mm.fault_around_bytes = 0  # one page
    mm.access([A + 40 * P])
    assert present(mm, A, 64)[-1] == 40 and len(present(mm, A, 64)) == 17
    with pytest.raises(ValueError):
        mm.fault_around_bytes = 4 * PMD
    assert space().fault_around_bytes == 65536


def test_write_faults_do_no_fault_around() -> None:
    mm = space()
    f = pt.File("lib", 64 * P, writable=True)
    mm.mmap(64 * P, A, RW, PRIV, file=f)
    mm.mmap(64 * P, A + PMD, RW, SHARED, file=f)
    mm.access([A + 20 * P, A + PMD + 20 * P], write=True)
    assert present(mm, A, 64) == [20]
    assert present(mm, A + PMD, 64) == [20]


def test_populate_read_maps_whole_blocks_and_populate_write_copies() -> None:
    mm = space()
    f = pt.File("lib", 128 * P)
    a = mm.mmap(128 * P, A, RW, PRIV, file=f)
    mm.madvise(a + 20 * P, 2 * P, pt.MADV_POPULATE_READ)
    assert present(mm, a, 128) == list(range(16, 32))
    mm.madvise(a + 40 * P, 30 * P, pt.MADV_POPULATE_READ)
    assert present(mm, a, 128) == [*range(16, 32), *range(32, 80)]
    assert (mm.frames(a + 16 * P, 64 * P) == f.frames[16:80]).all()
    mm.madvise(a, 4 * P, pt.MADV_POPULATE_WRITE)
    got = mm.frames(a, 4 * P)
    assert (got >= 0).all() and not np.isin(got, f.frames).any()
    with pytest.raises(OSError) as e:
        mm.madvise(a + 127 * P, 2 * P, pt.MADV_POPULATE_READ)
    assert e.value.errno == errno.ENOMEM  # unmapped after the VMA
    mm.check()


def test_populate_past_the_end_of_the_file_is_efault() -> None:
    mm = space()
    f = pt.File("short", 10 * P)
    a = mm.mmap(32 * P, A, pt.PROT_READ, PRIV, file=f)
    with pytest.raises(OSError) as e:
        mm.madvise(a, 32 * P, pt.MADV_POPULATE_READ)
    assert e.value.errno == errno.EFAULT
    assert present(mm, a, 32) == list(range(10))  # what came before stays
    # MAP_POPULATE stops at the end of the file, silently
    b = mm.mmap(32 * P, A + PMD, RW, PRIV | pt.MAP_POPULATE, file=f)
    assert present(mm, b, 32) == list(range(10))
    mm.check()


def test_no_thp_in_file_vmas() -> None:
    mm = space(thp="always")
    f = pt.File("big", 2 * PMD)
    a = mm.mmap(2 * PMD, A, RW, PRIV | pt.MAP_POPULATE, file=f)
    mm.madvise(a, 2 * PMD, pt.MADV_HUGEPAGE)
    mm.access([a + PMD + 5 * P], write=True)
    assert {fm.size for fm in mm.folios(a, 2 * PMD)} == {P}
    mm.check()


# ----------------------------------------------------------------------
# VMAs


def test_merge_rules() -> None:
    mm = space()
    f, g = pt.File("f", 64 * P), pt.File("g", 64 * P)
    mm.mmap(4 * P, A, pt.PROT_READ, PRIV, file=f)
    mm.mmap(4 * P, A + 4 * P, pt.PROT_READ, PRIV, file=f, offset=4 * P)  # contiguous: merges
    assert [(v.start - A, v.end - A, v.pgoff) for v in mm.vmas()] == [(0, 8 * P, 0)]
    mm.mmap(4 * P, A + 8 * P, pt.PROT_READ, PRIV, file=f, offset=20 * P)  # pgoff gap
    mm.mmap(4 * P, A + 12 * P, pt.PROT_READ, PRIV, file=g, offset=24 * P)  # another file
    mm.mmap(4 * P, A + 16 * P, pt.PROT_READ, PRIV | pt.MAP_ANONYMOUS)  # anonymous
    assert len(mm.vmas()) == 4
    # a split keeps pgoff in the file; made writable, the part is charged
    # (VM_ACCOUNT), and read-only again it keeps the charge (only a
    # never-faulted anonymous VMA drops it: mprotect_fixup), so it stays
    # apart, as this kernel's /proc/self/maps shows
    mm.mprotect(A + 2 * P, P, RW)
    assert [(v.start - A, v.pgoff) for v in mm.vmas()[:3]] == [(0, 0), (2 * P, 2), (3 * P, 3)]
    mm.mprotect(A + 2 * P, P, pt.PROT_READ)
    assert [(v.start - A, v.end - A, v.pgoff) for v in mm.vmas()[:3]] == [
        (0, 2 * P, 0), (2 * P, 3 * P, 2), (3 * P, 8 * P, 3)]  # fmt: skip
    # munmap in the middle: the part above starts at its own file offset
    mm.munmap(A + 4 * P, P)
    assert [(v.start - A, v.pgoff) for v in mm.vmas()[2:4]] == [(3 * P, 3), (5 * P, 5)]
    mm.check()


def test_mremap_keeps_pgoff_and_frames() -> None:
    mm = space()
    f = pt.File("lib", PMD)
    a = mm.mmap(PMD, A + PMD, pt.PROT_READ, PRIV, file=f)
    mm.madvise(a, PMD, pt.MADV_POPULATE_READ)
    before = mm.frames(a + 16 * P, 64 * P)
    # a move by a PMD: the PTE table moves whole (move_normal_pmd), and the
    # file's i_mmap_rwsem is taken as for every whole-table move
    b = mm.mremap(a + 16 * P, 64 * P, 64 * P, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, A + 4 * PMD)
    assert (mm.frames(b, 64 * P) == before).all()
    assert mm.find_vma(b).pgoff == 16  # type: ignore[union-attr]
    whole = mm.mremap(A + 4 * PMD, 64 * P, 64 * P, pt.MREMAP_MAYMOVE, None)
    assert whole == A + 4 * PMD  # same size: stays
    assert mm.find_vma(a + 80 * P).pgoff == 80  # type: ignore[union-attr]
    # a whole PMD-aligned VMA moved PMD-aligned: its PTE table moves whole
    # (move_normal_pmd), under the file's i_mmap_rwsem
    g = mm.mmap(PMD, A + 12 * PMD, pt.PROT_READ, PRIV, file=f)
    mm.madvise(g, PMD, pt.MADV_POPULATE_READ)
    c = mm.mremap(g, PMD, PMD, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, A + 16 * PMD)
    st = mm.last_move
    assert st is not None and st.normal_pmds_moved == 1 and st.ptes_moved == 0
    assert st.lock_acquired["rmap"] == 1  # the file's i_mmap_rwsem only: no anon_vma
    assert mm.find_vma(c).pgoff == 0  # type: ignore[union-attr]
    assert (mm.frames(c, PMD) == f.frames).all()
    mm.check()


def test_rmap_locks_of_a_private_file_vma_with_copies() -> None:
    mm = space()
    f = pt.File("lib", 2 * PMD)
    a = mm.mmap(2 * PMD, A, RW, PRIV, file=f)
    mm.access([a + 5 * P], write=True)  # an anon_vma now
    mm.mremap(a, 2 * PMD, 2 * PMD, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, A + 8 * PMD)
    st = mm.last_move
    assert st is not None and st.normal_pmds_moved == 1
    assert st.lock_acquired["rmap"] == 2  # i_mmap_rwsem, then the anon_vma lock
    anon = space()
    b = anon.mmap(2 * PMD, A, RW, PRIV | pt.MAP_ANONYMOUS)
    anon.access([b + 5 * P], write=True)
    anon.mremap(b, 2 * PMD, 2 * PMD, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, A + 8 * PMD)
    assert anon.last_move is not None and anon.last_move.lock_acquired["rmap"] == 1


def test_mremap_dontunmap_of_a_file_vma_leaves_the_file_mapped() -> None:
    mm = space()
    f = pt.File("lib", 32 * P)
    a = mm.mmap(32 * P, A, RW, PRIV, file=f)
    mm.access([a + 2 * P])
    mm.access([a + 3 * P], write=True)
    copy = mm.translate(a + 3 * P)
    b = mm.mremap(a, 32 * P, 32 * P, pt.MREMAP_MAYMOVE | pt.MREMAP_DONTUNMAP, None)
    assert mm.translate(b + 3 * P) == copy and mm.translate(b + 2 * P) == f.frames[2]
    assert present(mm, a, 32) == []
    src = mm.find_vma(a)
    assert src is not None and src.file is f and src.pgoff == 0 and src.anon_vma is None
    mm.access([a + 3 * P])  # refaults from the page cache
    assert mm.translate(a + 3 * P) == f.frames[3]
    mm.check()


def test_dontneed_drops_copies_and_refaults_the_page_cache() -> None:
    mm = space()
    f = pt.File("lib", 32 * P)
    a = mm.mmap(32 * P, A, RW, PRIV, file=f)
    mm.access([a + 3 * P], write=True)
    mm.madvise(a, 32 * P, pt.MADV_DONTNEED)
    assert present(mm, a, 32) == []
    mm.access([a + 3 * P])
    assert mm.translate(a + 3 * P) == f.frames[3]
    mm.check()


def test_mprotect_keeps_page_cache_pages_read_only() -> None:
    mm = space()
    f = pt.File("lib", 32 * P)
    a = mm.mmap(32 * P, A, pt.PROT_READ, PRIV, file=f)
    mm.access([a + 3 * P])
    mm.mprotect(a, 32 * P, RW)
    st = mm.access([a + 3 * P], write=True)  # still copy-on-write
    assert st.cow_faults == 1 and mm.translate(a + 3 * P) != f.frames[3]
    mm.mprotect(a, 32 * P, pt.PROT_READ)
    mm.mprotect(a, 32 * P, RW)  # the copy is dirty: writable again at once
    assert mm.access([a + 3 * P], write=True).faults == 0
    mm.check()


def test_userfaultfd_refuses_file_vmas() -> None:
    mm = space(policy="linux-6.18")
    f = pt.File("lib", 32 * P)
    a = mm.mmap(32 * P, A, RW, PRIV, file=f)
    d = mm.mmap(32 * P, A + PMD, RW, PRIV | pt.MAP_ANONYMOUS)
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    with pytest.raises(OSError) as e:
        u.register(a, 32 * P, pt.UFFDIO_REGISTER_MODE_MISSING)
    assert e.value.errno == errno.EINVAL
    u.register(d, 32 * P, pt.UFFDIO_REGISTER_MODE_MISSING)
    with pytest.raises(OSError) as e:
        u.move(d, a, 16 * P)  # src maps a file: validate_move_areas
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        u.move_many([[d, a, 16 * P]])
    assert e.value.errno == errno.EINVAL


def test_save_and_load_keep_files(tmp_path: Path) -> None:
    mm = space(fault_around_bytes=32 * P)
    f, g = pt.File("lib", 64 * P), pt.File("db", 16 * P, writable=True)
    a = mm.mmap(64 * P, A, RW, PRIV, file=f, offset=0)
    b = mm.mmap(16 * P, A + PMD, RW, SHARED, file=g)
    mm.access([a + 3 * P, b + 2 * P])
    mm.access([a + 40 * P, b + 5 * P], write=True)
    path = tmp_path / "s.npz"
    mm.save(path)
    back = pt.AddressSpace.load(path)
    assert back.vmas() == mm.vmas() and back.fault_around_bytes == 32 * P
    for addr in (a, b):
        assert (back.frames(addr, 16 * P) == mm.frames(addr, 16 * P)).all()
    # the loaded files' page caches are shared as before
    c = back.mmap(64 * P, A + 4 * PMD, pt.PROT_READ, PRIV, file=back.find_vma(a).file)  # type: ignore[union-attr]
    back.access([c + 3 * P])
    assert back.translate(c + 3 * P) == mm.translate(a + 3 * P)
    back.check()


def test_save_and_load_keep_what_the_page_cache_holds(tmp_path: Path) -> None:
    # a file's known residency and large folios decide what fault-around
    # maps: a loaded space maps what the saved one would have
    def build() -> tuple[pt.AddressSpace, int]:
        mm = space(policy="linux-6.18")
        f = pt.File("data", 128 * P)
        f.set_cached([(0, 40), (64, 128)], 12)
        f.set_folios([(0, 32), (64, 96)], 12)
        return mm, mm.mmap(128 * P, A, pt.PROT_READ, PRIV, file=f)

    mm, a = build()
    mm.save(tmp_path / "s.npz")
    back = pt.AddressSpace.load(tmp_path / "s.npz")
    for m in (mm, back):
        m.access([a + 2 * P, a + 66 * P])
    want = [i for i in range(128) if mm.translate(a + i * P) is not None]
    assert want == [*range(32), *range(64, 96)]  # whole folios, cached pages only
    assert [i for i in range(128) if back.translate(a + i * P) is not None] == want
    # a corrupt folio is refused
    import zipfile

    mm2, _ = build()
    mm2.save(tmp_path / "t.npz")
    with zipfile.ZipFile(tmp_path / "t.npz") as z:
        data = {n[:-4]: np.load(z.open(n)) for n in z.namelist()}
    data["filefolios0"] = np.array([[0, 24]], dtype=np.int64)  # not a power of two
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="folio"):
        pt.AddressSpace.load(tmp_path / "bad.npz")


# ----------------------------------------------------------------------
# the real kernel


ORACLE, WHY = host.available()
WINDOW = 8 << 20


def _file_cases() -> list[list[tuple[object, ...]]]:
    ro, rw = pt.PROT_READ, RW
    priv, shared = pt.MAP_PRIVATE, pt.MAP_SHARED
    return [
        # fault-around after read faults, at aligned and unaligned VMA starts,
        # with an offset, and clipped at the file's end and the PTE table
        [("file", 0, 64 * P, 0), ("mmap_file", 0, 64 * P, ro, priv, 0, 0), ("read", 20 * P),
         ("read", 3 * P), ("read", 60 * P)],
        [("file", 0, 64 * P, 0), ("mmap_file", 3 * P, 37 * P, ro, priv, 0, 10 * P),
         ("read", 20 * P), ("read", 5 * P), ("read", 35 * P)],
        [("file", 0, 20 * P + 100, 0), ("mmap_file", PMD - 8 * P, 64 * P, ro, priv, 0, 0),
         ("read", PMD - 2 * P), ("read", PMD + 2 * P), ("read", PMD + 13 * P)],
        # two mappings share the page-cache frame; a private write copies
        [("file", 0, 64 * P, 0), ("mmap_file", 0, 64 * P, rw, priv, 0, 0),
         ("mmap_file", PMD, 64 * P, ro, priv, 0, 0), ("read", 5 * P), ("read", PMD + 5 * P),
         ("write", 5 * P, 77), ("write", 40 * P, 78), ("read", PMD + 40 * P)],
        # a shared write is seen through every mapping, private ones included
        [("file", 1, 32 * P, 1), ("mmap_file", 0, 32 * P, rw, shared, 1, 0),
         ("mmap_file", PMD, 32 * P, rw, shared, 1, 0),
         ("mmap_file", 2 * PMD, 32 * P, ro, priv, 1, 0), ("write", 3 * P, 99),
         ("read", PMD + 3 * P), ("read", 2 * PMD + 3 * P), ("write", 2 * PMD + 4 * P, 5),
         ("read", 4 * P)],
        # populate: whole fault-around blocks on reads, copies on writes;
        # EFAULT past the end of the file; MAP_POPULATE stops there
        [("file", 0, 100 * P, 0), ("mmap_file", 0, 128 * P, rw, priv, 0, 0),
         ("madvise", 20 * P, 2 * P, pt.MADV_POPULATE_READ),
         ("madvise", 40 * P, 30 * P, pt.MADV_POPULATE_READ),
         ("madvise", 0, 4 * P, pt.MADV_POPULATE_WRITE),
         ("madvise", 90 * P, 20 * P, pt.MADV_POPULATE_READ),
         ("mmap_file", PMD, 128 * P, ro, priv | pt.MAP_POPULATE, 0, 0)],
        # mremap after read faults and private writes: PMD-aligned (whole
        # table), unaligned (PTEs), into a merge with its neighbour, and
        # DONTUNMAP (the source refaults from the page cache)
        [("file", 0, PMD, 0), ("mmap_file", PMD, PMD, rw, priv, 0, 0),
         ("madvise", PMD, PMD, pt.MADV_POPULATE_READ), ("write", PMD + 7 * P, 3),
         ("mremap", PMD, PMD, PMD, 3, 3 * PMD), ("read", 3 * PMD + 7 * P)],
        [("file", 0, PMD, 0), ("mmap_file", 0, 64 * P, rw, priv, 0, 0), ("read", 20 * P),
         ("write", 21 * P, 8), ("mremap", 16 * P, 16 * P, 16 * P, 3, PMD + 5 * P),
         ("read", 0), ("read", PMD + 6 * P)],
        [("file", 0, 64 * P, 0), ("mmap_file", 0, 16 * P, ro, priv, 0, 0),
         ("mmap_file", 32 * P, 16 * P, ro, priv, 0, 16 * P), ("read", 2 * P),
         ("read", 40 * P), ("mremap", 32 * P, 16 * P, 16 * P, 3, 16 * P),
         ("read", 8 * P)],
        [("file", 0, 32 * P, 0), ("mmap_file", 0, 32 * P, rw, priv, 0, 0), ("read", 2 * P),
         ("write", 3 * P, 11), ("mremap", 0, 32 * P, 32 * P, 7, PMD), ("read", 3 * P)],
        # shared and dontneed, mprotect, munmap in the middle, uffd refusals
        [("file", 1, 32 * P, 1), ("mmap_file", 0, 32 * P, rw, shared, 1, 0),
         ("write", 3 * P, 4), ("madvise", 0, 32 * P, pt.MADV_DONTNEED), ("read", 3 * P),
         ("mprotect", 0, 8 * P, ro), ("munmap", 16 * P, 4 * P), ("read", 24 * P)],
        # a file on a disk filesystem (tmpfs files are shmem, which
        # userfaultfd takes): UFFDIO_REGISTER refuses it
        [("file", 2, 32 * P, 1, 1), ("mmap_file", 0, 32 * P, rw, shared, 2, 0),
         ("mmap_file", PMD, 32 * P, rw, priv, 2, 0),
         ("uffd_register", 0, 8 * P, pt.UFFDIO_REGISTER_MODE_MISSING),
         ("uffd_register", PMD, 8 * P, pt.UFFDIO_REGISTER_MODE_WP)],
        [("file", 0, 32 * P, 0), ("mmap_file", 0, 32 * P, rw, priv, 0, 0),
         ("mmap", PMD, 32 * P, rw, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS),
         ("uffd_register", PMD, 32 * P, pt.UFFDIO_REGISTER_MODE_WP),
         ("uffd_move", PMD, 0, 16 * P, 0)],
        # errnos: EACCES (shared writable of a read-only file, and by
        # mprotect), EINVAL (unaligned offset)
        [("file", 0, 8 * P, 0), ("mmap_file", 0, 8 * P, rw, shared, 0, 0),
         ("mmap_file", 0, 8 * P, ro, shared, 0, 0), ("mprotect", 0, 8 * P, rw),
         ("mmap_file", PMD, 8 * P, ro, priv, 0, 100)],
    ]  # fmt: skip


@pytest.mark.skipif(not ORACLE or not Path("/proc/self/pagemap").exists(),
                    reason=f"host oracle unavailable: {WHY}")  # fmt: skip
@pytest.mark.parametrize("case", range(len(_file_cases())))
def test_file_mappings_agree_with_the_kernel(case: int) -> None:
    ops = _file_cases()[case]
    diff = compare_frames(ops, WINDOW)  # type: ignore[arg-type]
    assert diff is None, f"case {case}: {diff}"


FILE_SEQUENCES = 400


@pytest.mark.skipif(not ORACLE or not Path("/proc/self/pagemap").exists(),
                    reason=f"host oracle unavailable: {WHY}")  # fmt: skip
@pytest.mark.parametrize("chunk", range(4))
def test_random_file_sequences_agree_with_the_kernel(chunk: int) -> None:
    per = FILE_SEQUENCES // 4
    for seed in range(chunk * per, (chunk + 1) * per):
        ops = random_file_ops(random.Random(seed), WINDOW, 14)
        diff = compare_frames(ops, WINDOW)
        assert diff is None, f"seed {seed}: {diff}"
