"""page_table_limit (ENOMEM and the kernel's move-back) and save/load."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import pagetab as pt
from pagetab import _tables

K, M, G = 1 << 12, 1 << 20, 1 << 30
MM = Callable[..., pt.AddressSpace]
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
BASE = 1 << 40


def test_populate_stops_at_the_limit(make_mm: MM) -> None:
    mm = make_mm("x86-64", page_table_limit=64 * 1024)
    mm.mmap(64 * M, addr=BASE, flags=FIX)
    with pytest.raises(OSError) as e:
        mm.madvise(BASE, 64 * M, pt.MADV_POPULATE_WRITE)
    assert e.value.errno == errno.ENOMEM
    assert mm.page_table_bytes <= 64 * 1024
    f = mm.frames(BASE, 64 * M)
    assert (f[: 14 * 512] > 0).all() and (f[-512:] == -1).all()  # it stopped part way


@pytest.mark.parametrize("shared", [False, True])
def test_access_stops_at_the_limit(make_mm: MM, shared: bool) -> None:
    # a fault that cannot get page-table memory raises (the kernel would
    # OOM-kill); it must not retry forever
    mm = make_mm("x86-64", page_table_limit=16 * 1024)
    flags = (pt.MAP_SHARED if shared else pt.MAP_PRIVATE) | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    mm.mmap(64 * M, addr=BASE, flags=flags)
    with pytest.raises(MemoryError):
        mm.access(BASE + np.arange(0, 64 * M, 2 * M, dtype=np.uint64), write=True)
    assert mm.page_table_bytes <= 16 * 1024


@pytest.mark.parametrize("policy", ["linux-4.19", "linux-5.0", "linux-6.8", "batched-ptl"])
def test_failed_move_puts_the_entries_back(make_mm: MM, policy: str) -> None:
    mm = make_mm("x86-64", policy=policy)
    mm.mmap(32 * M, addr=BASE, flags=FIX)
    mm.madvise(BASE, 32 * M, pt.MADV_POPULATE_WRITE)
    f = mm.frames(BASE, 32 * M)
    used = mm.page_table_bytes
    mm.tables.limit_bytes = used + 8 * 4096  # room for 8 new tables, the move needs 17+
    mm.page_table_limit = mm.tables.limit_bytes
    with pytest.raises(OSError) as e:
        mm.mremap(BASE, 32 * M, 32 * M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, BASE + G + 4096)
    assert e.value.errno == errno.ENOMEM
    assert np.array_equal(mm.frames(BASE, 32 * M), f)  # moved back, as the kernel does
    assert mm.find_vma(BASE + G + 4096) is None and mm.page_table_bytes == used
    # a failed call leaves last_move as it was (here: no move yet); a record
    # of the part moved before the move-back would describe a move that
    # did not happen
    assert mm.last_move is None


def test_limit_arguments() -> None:
    with pytest.raises(ValueError):
        pt.AddressSpace(page_table_limit=0)
    with pytest.raises(TypeError):
        pt.AddressSpace(page_table_limit=1.5)  # type: ignore[arg-type]


def test_save_and_load_round_trip(make_mm: MM, tmp_path: Path) -> None:
    mm = make_mm("arm64-16k", thp="always", cpus=2, policy="batched-ptl")
    a = mm.mmap(256 * M)
    mm.madvise(a, 256 * M, pt.MADV_POPULATE_WRITE)
    s = mm.mmap(4 * M, flags=pt.MAP_SHARED | pt.MAP_ANONYMOUS)
    mm.madvise(s, 2 * M, pt.MADV_POPULATE_READ)
    mm.mprotect(a + 64 * M, 32 * M, pt.PROT_READ)
    path = tmp_path / "mm.npz"
    mm.save(path)
    m2 = pt.AddressSpace.load(path)
    assert m2.vmas() == mm.vmas() and m2.page_table_bytes == mm.page_table_bytes
    assert m2.arch == mm.arch and m2.policy == mm.policy and m2.thp == "always"
    for v in mm.vmas():
        assert np.array_equal(m2.frames(v.start, v.length), mm.frames(v.start, v.length))
    # both go on identically: the same next frames, the same moves
    for x in (mm, m2):
        x.madvise(s + 2 * M, 2 * M, pt.MADV_POPULATE_WRITE)
        # (the part below the mprotect: one VMA, as batched-ptl, a 6.8, needs)
        x.mremap(a, 64 * M, 64 * M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, 1 << 45)
    assert np.array_equal(m2.frames(1 << 45, 64 * M), mm.frames(1 << 45, 64 * M))
    assert np.array_equal(m2.frames(s, 4 * M), mm.frames(s, 4 * M))
    m2.check()


def test_written_pages_survive_a_save_and_a_format_1_file_counts_all(tmp_path: Path) -> None:
    mm = pt.AddressSpace("x86-64", thp="never")
    a = mm.mmap(64 * K)
    mm.madvise(a, 64 * K, pt.MADV_POPULATE_WRITE)  # faulted, still zero-filled
    mm.access([a + 4 * K, a + 9 * K], write=True)  # two pages written
    written = mm.tables.written_frames()
    assert written.tolist() == [mm.translate(a + 4 * K), mm.translate(a + 9 * K)]
    mm.save(tmp_path / "v2.npz")
    assert pt.AddressSpace.load(tmp_path / "v2.npz").tables.written_frames().tolist() == (
        written.tolist())  # fmt: skip
    # a version 1 file (no bitmap, VMAs without a userfaultfd column):
    # nothing says which pages are zero-filled, so all count as written
    with np.load(tmp_path / "v2.npz") as z:
        data = {k: z[k] for k in z.files if k not in ("tables_written", "tables_written_lost")}
    meta = json.loads(str(data["meta"]))
    data["meta"] = np.array(json.dumps({**meta, "version": 1}))
    data["vma"] = data["vma"][:, :8]
    np.savez(tmp_path / "v1.npz", **data)
    old = pt.AddressSpace.load(tmp_path / "v1.npz")
    assert old.vmas() == mm.vmas()
    assert old.tables.written_frames().tolist() == list(range(1, mm.tables.next_frame))


def test_loading_foreign_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(ValueError, match="not a pagetab save file"):
        pt.AddressSpace.load(bad)
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="corrupted or foreign"):
        pt.AddressSpace.load(bad)


def _pte_frame_past_the_allocator(d: dict[str, np.ndarray]) -> None:
    d["tables_rows3"][0, 5] ^= np.uint64(1 << 40)  # a frame number far past next_frame


def _allocator_rewound(d: dict[str, np.ndarray]) -> None:
    d["tables_next_frame"][0] = 5  # the mapped frames would be handed out again


def _frame_mapped_twice(d: dict[str, np.ndarray]) -> None:
    d["tables_rows3"][0, 6] = d["tables_rows3"][0, 5]


def _pmd_entry_to_a_missing_table(d: dict[str, np.ndarray]) -> None:
    d["tables_rows2"][0, 0] = np.uint64((99 << _tables.FRAME_SHIFT) | _tables.PRESENT)


def _live_table_on_the_free_list(d: dict[str, np.ndarray]) -> None:
    d["tables_free3"] = np.array([1], dtype=np.int64)


def _pages_outside_every_vma(d: dict[str, np.ndarray]) -> None:
    d["vma"][0, 1] -= 4096  # the VMA ends a page early; its last page stays mapped


def _written_frame_never_allocated(d: dict[str, np.ndarray]) -> None:
    bits = np.zeros(int(d["tables_next_frame"][0]) // 8 + 2, dtype=np.uint8)
    bits[-1] = 1  # a frame past the allocator
    d["tables_written"] = bits


def _negative_vma_start(data: dict[str, np.ndarray]) -> None:
    # (an OverflowError from the typed VMA, not a ValueError, until it was checked)
    data["vma"] = data["vma"].copy()
    data["vma"][0, 0] = -4096


def _packed_frames_past_the_allocator(d: dict[str, np.ndarray]) -> None:
    d["tables_packed"][0, 0] += np.uint64(1 << 40)  # a run of frames far past next_frame


def _packed_run_mapped_twice(d: dict[str, np.ndarray]) -> None:
    d["tables_packed"][1] = d["tables_packed"][0]  # two tables map the same frames


def _packed_run_past_its_table(d: dict[str, np.ndarray]) -> None:
    d["tables_packed"][0, 1] = np.uint64((1 << 32) | (513 << 16))  # entries 0..512 of 512


def _packed_table_freed_twice(d: dict[str, np.ndarray]) -> None:
    d["tables_packed_free"] = np.array([0], dtype=np.int64)  # a live packed table


def _unknown_version(d: dict[str, np.ndarray]) -> None:
    meta = json.loads(str(d["meta"]))
    d["meta"] = np.array(json.dumps({**meta, "version": 99}))


#: corruptions of PTE rows need a store that keeps its tables as rows
_ROWS = (_pte_frame_past_the_allocator, _frame_mapped_twice, _live_table_on_the_free_list)


@pytest.mark.parametrize(
    "corrupt",
    [_pte_frame_past_the_allocator, _allocator_rewound, _frame_mapped_twice,
     _pmd_entry_to_a_missing_table, _live_table_on_the_free_list, _pages_outside_every_vma,
     _written_frame_never_allocated, _unknown_version, _negative_vma_start,
     _packed_frames_past_the_allocator, _packed_run_mapped_twice, _packed_run_past_its_table,
     _packed_table_freed_twice],
    ids=lambda f: f.__name__.strip("_"),
)  # fmt: skip
def test_loading_a_corrupted_file(
    tmp_path: Path,
    make_mm: MM,
    corrupt: Callable[[dict[str, np.ndarray]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGETAB_PACK", "0" if corrupt in _ROWS else "1")
    mm = make_mm("x86-64")
    # a page off the PMD boundary: runs cut at both ends, so the PMD table
    # is not uniform and its PTE tables' descriptors stay in use
    mm.mmap(4 * M, addr=BASE + 4 * K, flags=FIX | pt.MAP_POPULATE)
    good = tmp_path / "good.npz"
    mm.save(good)
    with np.load(good) as z:
        data = {k: z[k] for k in z.files}
    pt.AddressSpace.load(good).check()  # the file as saved loads
    corrupt(data)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    with pytest.raises(ValueError, match="corrupted or foreign"):
        pt.AddressSpace.load(bad)


@pytest.mark.parametrize(
    ("word", "value"),
    [(1, 600 << 16), (1, 1 << 41 | 2 << 16), (0, 7 << 12), (0, 1 << 60)],
    ids=["run_past_its_table", "stray_bits", "no_flags", "frames_past_the_allocator"],
)
def test_loading_a_corrupted_packed_pmd_table(
    tmp_path: Path, make_mm: MM, monkeypatch: pytest.MonkeyPatch, word: int, value: int
) -> None:
    monkeypatch.setenv("PAGETAB_PACK", "1")
    mm = make_mm("x86-64")
    mm.mmap(4 * M, addr=BASE, flags=FIX | pt.MAP_POPULATE)
    assert mm.tables.packed_pmd_tables == 1
    good = tmp_path / "good.npz"
    mm.save(good)
    with np.load(good) as z:
        data = {k: z[k] for k in z.files}
    pt.AddressSpace.load(good).check()
    data["tables_packed_pmd"][0, word] = np.uint64(value)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match="corrupted or foreign"):
        pt.AddressSpace.load(tmp_path / "bad.npz")


def test_custom_profiles_cannot_be_saved(make_mm: MM, tmp_path: Path) -> None:
    mm = make_mm(pt.arch("x86-64").with_costs(pte_move=1.0))
    with pytest.raises(NotImplementedError, match="registered"):
        mm.save(tmp_path / "x.npz")


def test_save_writes_the_path_given_and_load_reads_it(tmp_path: Path) -> None:
    # mm.save("s.pt") wrote s.pt.npz, and load("s.pt") then failed
    mm = pt.AddressSpace("x86-64")
    mm.mmap(1 << 20, 1 << 40, flags=pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED)
    mm.save(tmp_path / "s.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]
    assert pt.AddressSpace.load(tmp_path / "s.pt").vmas() == mm.vmas()
    with pytest.raises(FileNotFoundError):
        pt.AddressSpace.load(tmp_path / "missing.pt")
    # a pickle is refused as not a save file, with no hint to allow pickles
    import pickle

    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a pagetab save file") as e:
        pt.AddressSpace.load(tmp_path / "p.pkl")
    assert "pickle" not in str(e.value)
