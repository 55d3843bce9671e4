"""Run the same operations on the host kernel (pagetab.oracle) and on an
AddressSpace, and compare results and final page states."""

from __future__ import annotations

import dataclasses
import errno
import random
from typing import Any

import pagetab as pt
from pagetab.fork import file_copies
from pagetab.memory import fault_around, populate_vma
from pagetab.oracle import FramedPageState, PageState, run_ops

BASE = 1 << 36  # the simulated window: PUD aligned, inside every arch (Sv39: 256 GiB)
PAGE = 4096


def host_thp_mode() -> str:
    """The host's transparent_hugepage/enabled setting (the bracketed word)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return "never"
    return text[text.index("[") + 1 : text.index("]")]


def host_thp_sizes() -> dict[int, str]:
    """The host's hugepages-<size>kB/enabled settings for anonymous memory."""
    out = {}
    for o in range(2, 10):
        try:
            with open(f"/sys/kernel/mm/transparent_hugepage/hugepages-{4 << o}kB/enabled") as f:
                text = f.read()
        except OSError:
            continue
        out[PAGE << o] = text[text.index("[") + 1 : text.index("]")]
    return out


Result = tuple[Any, ...]


def simulate(ops: list[tuple[Any, ...]], window: int, policy: str = "linux-6.18",
             folios: bool = False,
             frame_ids: bool = False) -> tuple[list[Result], list[PageState]]:  # fmt: skip
    """The same operations on AddressSpace("x86-64"), in run_ops' terms,
    with the host's THP settings (``folios``: with each page's folio order;
    ``frame_ids``: with each page's frame id), under a policy with the host's
    (6.9+) UFFDIO_MOVE rules."""
    mm = pt.AddressSpace("x86-64", thp=host_thp_mode(), policy=policy,
                         thp_sizes=host_thp_sizes())  # fmt: skip
    tags: dict[int, int] = {}
    results: list[tuple[Any, ...]] = []
    uffd: list[Any] = []
    files: dict[int, pt.File] = {}
    for op in ops:
        kind, a = op[0], op[1:]
        before = mm.frames(BASE, window) if files else None
        try:
            _file_op(mm, files, tags, kind, a, results)
            if kind.startswith("uffd") and not uffd:
                uffd.append(mm.userfaultfd(pt.UFFD_FEATURE_MOVE))
            if kind == "uffd_register":
                uffd[0].register(BASE + a[0], a[1], a[2])
                results.append(("ok", 0))
                continue
            if kind in ("uffd_copy", "uffd_zeropage"):
                results.append(_fill(mm, uffd[0], tags, kind, a))
                continue
            if kind == "uffd_move":
                try:
                    results.append(("ok", uffd[0].move(BASE + a[0], BASE + a[1], a[2], a[3])))
                except OSError as e:
                    results.append(("err", e.errno or 0, getattr(e, "move", 0)))
                continue
            if kind == "fork":  # the ops after it run in the child
                mm, files = _fork(mm, files)
                uffd.clear()
                results.append(("ok", 0))
                continue
            if kind == "mmap":
                off, length, prot, flags = a
                if not flags & pt.MAP_FIXED:
                    flags |= pt.MAP_FIXED_NOREPLACE
                results.append(("ok", mm.mmap(length, BASE + off, prot, flags) - BASE))
            elif kind == "munmap":
                mm.munmap(BASE + a[0], a[1])
                results.append(("ok", 0))
            elif kind == "mprotect":
                mm.mprotect(BASE + a[0], a[1], a[2])
                results.append(("ok", 0))
            elif kind == "madvise":
                mm.madvise(BASE + a[0], a[1], a[2])
                results.append(("ok", 0))
            elif kind == "mremap":
                off, old, new, flags, noff = a
                results.append(("ok", mm.mremap(BASE + off, old, new, flags, BASE + noff) - BASE))
            elif kind == "write":
                addr = BASE + a[0]
                v = mm.find_vma(addr)
                # /proc/self/mem writes with FOLL_FORCE: check_vma_flags lets
                # them COW any private mapping, refuses shared read-only ones
                # (and past a shmem object's end: SIGBUS)
                beyond = v is not None and v.cache is not None and addr >= v.object_end(12)
                if v is None or beyond or (v.shared and not v.prot & pt.PROT_WRITE):
                    results.append(("err", errno.EIO))
                    continue
                # /proc/self/mem writes with FOLL_FORCE: they fault the page
                # in for writing even where the mapping is not writable
                page = addr & ~(PAGE - 1)
                populate_vma(mm, v, page, page + PAGE, True)
                f = mm.translate(addr)
                assert f is not None
                mm.tables.write_frames([f])  # the store itself
                tags[f] = a[1]
                results.append(("ok", 0))
        except OSError as e:
            results.append(("err", e.errno or 0))
        if before is not None:
            _copied_tags(mm, tags, before, window)
    mm.check()
    frames, orders = mm.tables.folio_orders(BASE, BASE + window)
    states = []
    for k in range(window // PAGE):
        v = mm.find_vma(BASE + k * PAGE)
        prot = -1 if v is None else v.prot
        f = int(frames[k])
        if f < 0:
            states.append(PageState(prot, False, False, 0))
        else:
            state = PageState(prot, True, f == pt.ZERO_FRAME, tags.get(f, 0),
                              int(orders[k]) if folios else -1)  # fmt: skip
            if frame_ids:
                state = FramedPageState(*dataclasses.astuple(state), frame=f)
            states.append(state)
    return results, states


def _fill(mm: pt.AddressSpace, u: Any, tags: dict[int, int], kind: str,
          a: tuple[Any, ...]) -> Result:  # fmt: skip
    """UFFDIO_COPY or UFFDIO_ZEROPAGE on ``mm``, in run_ops' terms; each
    copied page takes its source page's tag at the moment it was copied
    (pages in order: an overlapping copy reads pages it filled itself)."""
    if kind == "uffd_copy":
        dst, src, length, mode = a
        call = lambda: u.copy(BASE + dst, BASE + src, length, mode)  # noqa: E731
    else:
        dst, length, mode = a
        src, call = -1, lambda: u.zeropage(BASE + dst, length, mode)
    try:
        done = call()
        out: Result = ("ok", done)
    except pt.userfaultfd.UffdFillError as e:
        done = e.copy if e.errno == errno.EAGAIN else 0
        out = ("err", e.errno or 0, e.copy)
    for k in range(0, done if src >= 0 else 0, PAGE):
        sf = mm.translate(BASE + src + k)  # (the tag is the page's first 8 bytes)
        df = mm.translate(BASE + dst + k)
        assert df is not None
        tags[df] = tags.get(sf, 0) if sf is not None and src % PAGE == 0 else 0
    return out


def _file_op(mm: pt.AddressSpace, files: dict[int, pt.File], tags: dict[int, int], kind: str,
             a: tuple[Any, ...], results: list[Result]) -> None:  # fmt: skip
    """The oracle's file operations ("file", "mmap_file", "read") on ``mm``;
    the others are left to the caller (OSError propagates)."""
    if kind == "file":
        idx, size, writable = a[:3]
        files[idx] = pt.File(f"file{idx}", size, bool(writable))
        results.append(("ok", 0))
    elif kind == "mmap_file":
        off, length, prot, flags, idx, offset = a
        if not flags & pt.MAP_FIXED:
            flags |= pt.MAP_FIXED_NOREPLACE
        at = mm.mmap(length, BASE + off, prot, flags, file=files[idx], offset=offset)
        results.append(("ok", at - BASE))
    elif kind == "read":
        # /proc/self/mem reads: a GUP read fault where nothing is mapped
        # (do_read_fault with fault-around in a file VMA), EIO past a
        # shared object's or file's end (SIGBUS) and where nothing is mapped
        addr = BASE + a[0]
        v = mm.find_vma(addr)
        if v is None or (v.cache is not None and addr >= v.object_end(PAGE.bit_length() - 1)):
            results.append(("err", errno.EIO))
            return
        page = addr & ~(PAGE - 1)
        if mm.translate(addr) is None:
            if v.file is not None:
                fault_around(mm.mm_struct, v, page)
            else:
                populate_vma(mm.mm_struct, v, page, page + PAGE, False)
        f = mm.translate(addr)
        results.append(("ok", tags.get(f, 0) if f is not None and f != pt.ZERO_FRAME else 0))


def _copied_tags(mm: pt.AddressSpace, tags: dict[int, int], before: Any, window: int) -> None:
    """A private copy of a file page made by an operation (do_cow_fault: a
    populate or a write) holds what the page cache's page held."""
    after = mm.frames(BASE, window)
    for k in (after != before).nonzero()[0]:
        f = int(after[k])
        v = mm.find_vma(BASE + int(k) * PAGE)
        if f <= 0 or f in tags or v is None or v.file is None or v.shared:
            continue
        cached = int(v.file.frames[v.pgoff_at(BASE + int(k) * PAGE, 12)])
        if f != cached and cached in tags:
            tags[f] = tags[cached]


def same_frames(states: list[PageState]) -> list[int]:
    """Which present pages share a frame: for each page, the index of the
    first page mapping its frame (-1 when not present), so that host PFNs
    and simulated frame ids compare (FramedPageState)."""
    first: dict[int, int] = {}
    return [first.setdefault(getattr(s, "frame", -1), k) if s.present else -1
            for k, s in enumerate(states)]  # fmt: skip


def compare_frames(ops: list[tuple[Any, ...]], window: int) -> str | None:
    """``compare`` with which pages share a frame too (host PFNs: root)."""
    hres, hstates = run_ops(ops, window=window, frames=True)
    sres, sstates = simulate(ops, window, frame_ids=True)
    for i, (h, s) in enumerate(zip(hres, sres, strict=True)):
        if _outside(h, window) != _outside(s, window):
            return f"op {i} {ops[i]}: host {h}, simulated {s}"
    hsame, ssame = same_frames(hstates), same_frames(sstates)
    for k, (h, s) in enumerate(zip(hstates, sstates, strict=True)):
        if (h.prot, h.present, h.zero, h.tag) != (s.prot, s.present, s.zero, s.tag):
            return f"page {k} ({k * PAGE:#x}): host {h}, simulated {s}"
        if hsame[k] != ssame[k]:
            return (f"page {k} ({k * PAGE:#x}): shares a frame with page {hsame[k]} on the "
                    f"host, with page {ssame[k]} simulated")  # fmt: skip
    return None


def apply_op(mm: pt.AddressSpace, op: tuple[Any, ...], fixed: bool = False) -> Any:
    """Run one op of ``random_ops`` on ``mm`` (writes through ``access``);
    ``fixed`` makes every mmap MAP_FIXED."""
    kind, a = op[0], op[1:]
    if kind == "mmap":
        off, length, prot, flags = a
        return mm.mmap(length, BASE + off, prot, flags | (pt.MAP_FIXED if fixed else 0))
    if kind == "write":
        return mm.access([BASE + a[0]], write=True).faults
    if kind == "mremap":
        off, old, new, flags, noff = a
        return mm.mremap(BASE + off, old, new, flags, BASE + noff)
    return getattr(mm, kind)(BASE + a[0], *a[1:])


def random_ops(rng: random.Random, window: int, n: int, uffd: bool = False,
               fork: bool = False) -> list[tuple[Any, ...]]:  # fmt: skip
    """A random sequence over a small window, biased to interesting cases
    (``uffd``: userfaultfd registrations, WP mode so that faults stay
    ordinary, and UFFDIO_MOVE calls too; ``fork``: forks, after which the
    child goes on)."""
    pmd = 2 << 20
    ops: list[tuple[Any, ...]] = []
    rw, anon = pt.PROT_READ | pt.PROT_WRITE, pt.MAP_ANONYMOUS

    def off(span: int = 0) -> int:
        unit = rng.choice([PAGE, PAGE, 16 * PAGE, pmd])
        return rng.randrange(0, max(window - span, unit), unit) // PAGE * PAGE

    def length() -> int:
        return rng.choice([PAGE, 2 * PAGE, 16 * PAGE, 256 * PAGE, pmd, 2 * pmd])

    for _ in range(n):
        r = rng.random()
        if uffd and rng.random() < 0.3:
            ln = length()
            if rng.random() < 0.35:
                ops.append(("uffd_register", off(ln), ln, pt.UFFDIO_REGISTER_MODE_WP))
            else:
                mode = rng.choice([0, 0, pt.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES])
                ops.append(("uffd_move", off(ln), off(ln), ln, mode))
            continue
        if r < 0.3 or not ops:
            ln = length()
            kind = rng.choice([pt.MAP_PRIVATE, pt.MAP_PRIVATE, pt.MAP_SHARED])
            fixed = pt.MAP_FIXED if rng.random() < 0.3 else 0
            ops.append(
                ("mmap", off(ln), ln, rng.choice([rw, rw, pt.PROT_READ]), kind | anon | fixed)
            )
        elif r < 0.45:
            ln = length()
            ops.append(("madvise", off(ln), ln, rng.choice(
                [pt.MADV_POPULATE_WRITE, pt.MADV_POPULATE_READ, pt.MADV_DONTNEED,
                 pt.MADV_HUGEPAGE, pt.MADV_NOHUGEPAGE])))  # fmt: skip
        elif r < 0.55:
            ops.append(("write", off(PAGE), rng.getrandbits(63) | 1))
        elif r < 0.65:
            ln = length()
            ops.append(("mprotect", off(ln), ln, rng.choice([pt.PROT_NONE, pt.PROT_READ, rw])))
        elif r < 0.72:
            ln = length()
            ops.append(("munmap", off(ln), ln))
        elif fork and r < 0.75:
            ops.append(("fork",))
        else:
            old = length()
            new = rng.choice([old, old, length()])
            flags = rng.choice([pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED] * 3 + [
                pt.MREMAP_MAYMOVE, 0, pt.MREMAP_MAYMOVE | pt.MREMAP_DONTUNMAP])  # fmt: skip
            ops.append(("mremap", off(old), old, new, flags, off(new)))
    return ops


def _fork(mm: pt.AddressSpace,
          files: dict[int, pt.File]) -> tuple[pt.AddressSpace, dict[int, pt.File]]:  # fmt: skip
    """The child of ``mm`` and its files: the copies its VMAs map, or, for a
    file no VMA maps, a new File of the same size (its page cache holds the
    same bytes)."""
    child = mm.fork()
    copies = file_copies(mm.mm_struct, child.mm_struct)
    return child, {i: copies.get(id(f)) or pt.File(f.name, f.size, f.writable)
                   for i, f in files.items()}  # fmt: skip


def _outside(r: tuple[Any, ...], window: int) -> tuple[Any, ...]:
    """Addresses a kernel chose outside the window differ between processes."""
    return ("ok", -1) if r[0] == "ok" and not 0 <= r[1] < window else r


def compare(ops: list[tuple[Any, ...]], window: int, folios: bool = False) -> str | None:
    """None if host and simulation agree, else a description of the first
    difference (``folios``: each present page's folio order too)."""
    hres, hstates = run_ops(ops, window=window, folios=folios)
    sres, sstates = simulate(ops, window, folios=folios)
    hres = [_outside(r, window) for r in hres]
    sres = [_outside(r, window) for r in sres]
    for i, (h, s) in enumerate(zip(hres, sres, strict=True)):
        if h != s:
            return f"op {i} {ops[i]}: host {h}, simulated {s}"
    for k, (h, s) in enumerate(zip(hstates, sstates, strict=True)):
        if h != s:
            return f"page {k} ({k * PAGE:#x}): host {h}, simulated {s}"
    return None


def random_uffd_ops(rng: random.Random, window: int) -> list[tuple[Any, ...]]:
    """A UFFDIO_MOVE scenario: a source mapping, populated in part (written
    pages, the zero page, THPs), a destination registered (WP mode) in
    whole or in part and sometimes populated, then moves of whole ranges,
    sub-ranges, unaligned ranges and ranges with holes, mixed with random
    operations."""
    pmd = 2 << 20
    rw, anon = pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    half = window // 2
    size = rng.choice([16 * PAGE, 256 * PAGE, pmd, 2 * pmd - 2 * PAGE])
    src = rng.choice([0, PAGE, 16 * PAGE, pmd])
    dst = half + rng.choice([0, PAGE, 16 * PAGE, pmd])
    ops: list[tuple[Any, ...]] = [("mmap", src, size, rw, anon)]
    how = rng.choice(["write", "read", "some", "none"])
    # THPs of every kind: when UFFDIO_MOVE splits one, the kernel (6.12+)
    # maps its never-written subpages to the shared zero page
    if rng.random() < 0.4:
        ops.append(("madvise", src, size, pt.MADV_HUGEPAGE))
    if how in ("write", "read"):
        adv = pt.MADV_POPULATE_WRITE if how == "write" else pt.MADV_POPULATE_READ
        ops.append(("madvise", src, size, adv))
    elif how == "some":
        for _ in range(rng.randrange(1, 6)):
            ops.append(("write", src + rng.randrange(0, size, PAGE), rng.getrandbits(63) | 1))
    ops.append(("mmap", dst, size, rng.choice([rw, rw, rw, pt.PROT_READ]), anon))
    reg = size if rng.random() < 0.8 else size // 2 // PAGE * PAGE or PAGE
    ops.append(("uffd_register", dst, reg, pt.UFFDIO_REGISTER_MODE_WP))
    if rng.random() < 0.2:
        ops.append(("write", dst + rng.randrange(0, size, PAGE), rng.getrandbits(63) | 1))
    for _ in range(rng.randrange(1, 4)):
        if rng.random() < 0.25:
            ops += random_ops(rng, window, 1)
        lo = rng.choice([0, 0, PAGE, 16 * PAGE]) % size
        ln = rng.choice([size - lo, size - lo, PAGE, 16 * PAGE, pmd])
        mode = rng.choice([0, 0, pt.UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES])
        ops.append(("uffd_move", dst + lo, src + lo, ln, mode))
    return ops


def random_file_ops(rng: random.Random, window: int, n: int) -> list[tuple[Any, ...]]:
    """A random sequence with file mappings: two tmpfs files (one
    read-write, one read-only, one of them not a whole number of pages),
    mapped MAP_PRIVATE or MAP_SHARED at page offsets, with reads (fault-
    around), writes, populates, mprotect, munmap, mremap and anonymous
    mappings between them."""
    pmd = 2 << 20
    rw = pt.PROT_READ | pt.PROT_WRITE
    sizes = [rng.choice([64 * PAGE, 300 * PAGE + 123, pmd, pmd + 40 * PAGE]) for _ in range(2)]
    ops: list[tuple[Any, ...]] = [("file", 0, sizes[0], 1), ("file", 1, sizes[1], 0)]

    def off(span: int = 0) -> int:
        unit = rng.choice([PAGE, PAGE, 16 * PAGE, pmd])
        return rng.randrange(0, max(window - span, unit), unit) // PAGE * PAGE

    def length() -> int:
        return rng.choice([PAGE, 3 * PAGE, 16 * PAGE, 100 * PAGE, pmd])

    for _ in range(n):
        r = rng.random()
        if r < 0.3 or len(ops) < 3:
            ln = length()
            idx = rng.randrange(2)
            kind = rng.choice([pt.MAP_PRIVATE, pt.MAP_PRIVATE, pt.MAP_SHARED])
            prot = rng.choice([rw, rw, pt.PROT_READ])
            fixed = pt.MAP_FIXED if rng.random() < 0.3 else 0
            offset = rng.choice([0, 0, PAGE, 16 * PAGE, 37 * PAGE])
            ops.append(("mmap_file", off(ln), ln, prot, kind | fixed, idx, offset))
        elif r < 0.45:
            ops.append(("read", off(PAGE) + rng.randrange(0, PAGE, 8)))
        elif r < 0.55:
            ops.append(("write", off(PAGE), rng.getrandbits(63) | 1))
        elif r < 0.63:
            ln = length()
            ops.append(("madvise", off(ln), ln, rng.choice(
                [pt.MADV_POPULATE_WRITE, pt.MADV_POPULATE_READ, pt.MADV_DONTNEED])))  # fmt: skip
        elif r < 0.7:
            ln = length()
            ops.append(("mprotect", off(ln), ln, rng.choice([pt.PROT_NONE, pt.PROT_READ, rw])))
        elif r < 0.75:
            ln = length()
            ops.append(("munmap", off(ln), ln))
        elif r < 0.8:
            ln = length()
            ops.append(("mmap", off(ln), ln, rw, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS))
        else:
            old = length()
            new = rng.choice([old, old, length()])
            flags = rng.choice([pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED] * 3 + [
                pt.MREMAP_MAYMOVE, 0, pt.MREMAP_MAYMOVE | pt.MREMAP_DONTUNMAP])  # fmt: skip
            ops.append(("mremap", off(old), old, new, flags, off(new)))
    return ops


def random_multi_vma_uffd_ops(rng: random.Random, window: int) -> list[tuple[Any, ...]]:
    """A pure move (MREMAP_FIXED, same size) over two to four VMAs, some
    with gaps between them, populated in part, one of them (or part of one,
    or none) registered with a userfaultfd in WP mode: remap_move's
    vma_multi_allowed rules, then a write into each moved range."""
    rw, anon = pt.PROT_READ | pt.PROT_WRITE, pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    half = window // 2
    ops: list[tuple[Any, ...]] = []
    at, spans = rng.choice([0, PAGE, 16 * PAGE]), []
    for k in range(rng.randrange(2, 5)):
        ln = rng.choice([PAGE, 4 * PAGE, 16 * PAGE, 64 * PAGE])
        # neighbours differ in protection so that they never merge
        ops.append(("mmap", at, ln, rw if k % 2 == 0 else pt.PROT_READ, anon))
        if rng.random() < 0.6:
            ops.append(("madvise", at, ln, rng.choice(
                [pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE])))  # fmt: skip
        spans.append((at, ln))
        at += ln + rng.choice([0, 0, PAGE, 8 * PAGE])
    if rng.random() < 0.8:
        s, ln = rng.choice(spans)
        part = ln if rng.random() < 0.7 else max(PAGE, ln // 2 // PAGE * PAGE)
        ops.append(("uffd_register", s, part, pt.UFFDIO_REGISTER_MODE_WP))
    first, last = spans[0], spans[-1]
    start = first[0] + rng.choice([0, 0, 0, PAGE]) % first[1]
    end = rng.choice([last[0] + last[1], last[0] + last[1], spans[rng.randrange(len(spans))][0]
                      + PAGE, last[0] + last[1] + 4 * PAGE])  # fmt: skip
    end = max(end, start + PAGE)
    dst = half + rng.choice([0, PAGE, 16 * PAGE])
    ops.append(("mremap", start, end - start, end - start, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED,
                dst))  # fmt: skip
    for s, _ in spans:  # where each VMA would be, had it moved
        ops.append(("write", dst + max(s - start, 0), rng.getrandbits(63) | 1))
    return ops


def random_fill_ops(rng: random.Random, window: int) -> list[tuple[Any, ...]]:
    """UFFDIO_COPY and UFFDIO_ZEROPAGE: a source VMA with tagged pages (some
    never touched), destination VMAs of each protection, registered in
    MISSING and/or WP mode (or not), some pages already there, then fills
    with random offsets, lengths (past a VMA's end too), unaligned sources,
    modes (WP, unknown bits) and overlaps. A source never lies absent in a
    MISSING-registered VMA (the kernel would wait for a handler), and no
    store goes into one."""
    rw = pt.PROT_READ | pt.PROT_WRITE
    anon = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
    ops: list[tuple[Any, ...]] = [("mmap", 0, 32 * PAGE, rng.choice([rw, rw, pt.PROT_READ]), anon)]
    for k in range(32):
        r = rng.random()
        if r < 0.5:
            ops.append(("write", k * PAGE, rng.getrandbits(63) | 1))
        elif r < 0.6:
            ops.append(("madvise", k * PAGE, PAGE, pt.MADV_POPULATE_READ))
    dsts = []
    for i in range(rng.randrange(1, 4)):
        at, ln = 64 * PAGE + i * 48 * PAGE, rng.choice([4, 16, 32]) * PAGE
        ops.append(("mmap", at, ln, rng.choice([rw, rw, pt.PROT_READ, pt.PROT_NONE]), anon))
        for _ in range(rng.randrange(0, 3)):  # pages already there
            ops.append(("madvise", at + rng.randrange(ln // PAGE) * PAGE, PAGE,
                        rng.choice([pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE])))  # fmt: skip
        missing, wp = pt.UFFDIO_REGISTER_MODE_MISSING, pt.UFFDIO_REGISTER_MODE_WP
        mode = rng.choice([0, missing, wp, missing | wp])
        if mode:
            ops.append(("uffd_register", at, ln, mode))
        dsts.append((at, ln, mode))
    for _ in range(rng.randrange(1, 6)):
        at, ln, _mode = rng.choice(dsts)
        dst = at + rng.randrange(ln // PAGE) * PAGE
        length = rng.choice([1, 1, 2, 4, 8]) * PAGE
        if rng.random() < 0.2:
            length = rng.choice([0, PAGE + 8])
        fill_mode = rng.choice([0, 0, 0, 1, 2, 4])
        if rng.random() < 0.3:
            ops.append(("uffd_zeropage", dst, length, fill_mode & 1 if rng.random() < 0.8
                        else fill_mode))  # fmt: skip
            continue
        src = rng.randrange(0, 28) * PAGE + rng.choice([0, 0, 0, 8])
        if rng.random() < 0.1:
            src = 40 * PAGE  # unmapped: EFAULT
        elif rng.random() < 0.15:
            src = dst - PAGE if dst - PAGE >= at else dst  # overlapping, inside dst's VMA
            if _mode & pt.UFFDIO_REGISTER_MODE_MISSING:
                continue  # (its absent pages would wait for a handler)
        ops.append(("uffd_copy", dst, src, length, fill_mode))
    return ops
