"""userfaultfd's ioctls that move and fill pages (fs/userfaultfd.c, mm/userfaultfd.c).

``mm.userfaultfd(features)`` is userfaultfd(2) plus the UFFDIO_API handshake;
the ``Userfaultfd`` it returns registers ranges (UFFDIO_REGISTER /
UFFDIO_UNREGISTER: VMAs split and merge around them, registered VMAs merge
only with VMAs of the same userfaultfd) and moves pages (UFFDIO_MOVE,
Linux 6.8; the rules followed are those of 6.9 and later, as this
machine's kernel checks them: per-VMA locking's ENOENT for a missing VMA,
zero-page PTEs moved). It fills missing pages as a handler does
(UFFDIO_COPY, UFFDIO_ZEROPAGE: mfill_atomic, checked against this machine's
kernel in tests/test_uffd.py), unpriced.

Not simulated, and refused with NotImplementedError: the fault that a
MISSING-mode registration turns into a userfault (a handler thread would
have to resolve it; a UFFDIO_COPY whose source needs one too), a fill of
shared memory (shmem), swap entries (pagetab has no swap).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _tables, _uffd
from .argcheck import as_uint, check_int
from .constants import (
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    UFFD_FEATURE_EVENT_REMAP,
    UFFD_FEATURE_MOVE,
    UFFDIO_COPY_MODE_DONTWAKE,
    UFFDIO_COPY_MODE_WP,
    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
    UFFDIO_MOVE_MODE_DONTWAKE,
    UFFDIO_REGISTER_MODE_MINOR,
    UFFDIO_REGISTER_MODE_MISSING,
    UFFDIO_REGISTER_MODE_WP,
    UFFDIO_ZEROPAGE_MODE_DONTWAKE,
)
from .cost import uffd_move_cost, uffd_move_cost_range
from .memory import populate_vma
from .mm_types import VM_UFFD_FLAGS, VM_UFFD_MISSING, VM_UFFD_WP, MmStruct, Vma, new_anon_vma
from .timeline import MoveTrace, concat
from .vma import find_vma, merge_around, overlapping, split_vma

__all__ = [
    "FEATURES",
    "UffdFillError",
    "UffdMoveError",
    "UffdMoveStats",
    "Userfaultfd",
    "mremap_userfaultfd_prep",
    "new_userfaultfd",
    "vma_has_uffd_without_event_remap",
]

CALL = "UFFDIO_MOVE"
FEATURES = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_MOVE
_MODES = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR
_MOVE_MODES = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE


class UffdMoveError(OSError):
    """UFFDIO_MOVE's failure: ``errno`` as the ioctl sets it, ``move`` the
    value the kernel writes back (bytes moved before the error, with
    errno EAGAIN, or -errno when nothing moved)."""

    def __init__(self, code: int, move: int, what: str) -> None:
        super().__init__(code, f"{CALL}: {what}")
        self.move = move
        #: Userfaultfd.move_many: the calls before this one (all complete)
        #: and the bytes they moved
        self.calls_done = 0
        self.bytes_before = 0


class UffdFillError(OSError):
    """UFFDIO_COPY's or UFFDIO_ZEROPAGE's failure: ``errno`` as the ioctl
    sets it, ``copy`` what the kernel writes back into the structure's
    copy (zeropage) field: the bytes filled before an error stopped it
    (errno EAGAIN), -errno when nothing was, and 0 when the arguments were
    refused before the fill began (that field untouched)."""

    def __init__(self, code: int, copy: int, call: str, what: str) -> None:
        super().__init__(code, f"{call}: {what}")
        self.copy = copy


@dataclass
class UffdMoveStats:
    """What one UFFDIO_MOVE did (counters named by the C struct in _uffd.pyx)."""

    bytes_moved: int = 0
    #: UFFDIO_MOVE calls made (``move_many`` makes many)
    calls: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    flush_ops: dict[str, int] = field(default_factory=dict)
    #: the kernel's time for it by the arch's costs, its breakdown and interval
    estimated_ns: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    estimated_ns_range: tuple[float, float] = (0.0, 0.0)
    #: the error of the call that stopped, if one did
    error: UffdMoveError | None = None
    #: its events in order, priced (with ``MmStruct.trace_moves``), else None
    trace: MoveTrace | None = None

    def add(self, st: dict[str, Any]) -> None:
        for k, v in st.items():
            if k == "flush_ops":
                for op, n in v.items():
                    self.flush_ops[op] = self.flush_ops.get(op, 0) + int(n)
            else:
                self.counters[k] = self.counters.get(k, 0) + int(v)


class Userfaultfd:
    """A userfaultfd of one mm, after UFFDIO_API with ``features``
    (``new_userfaultfd`` makes one)."""

    def __init__(self, mm: MmStruct, ident: int, features: int) -> None:
        self.mm = mm
        self.id = ident
        self.features = features
        #: mmap_changing: remap events queued and not yet read
        self.pending_events: list[tuple[int, int, int]] = []
        #: the last move's record
        self.last_move: UffdMoveStats | None = None

    # UFFDIO_REGISTER / UFFDIO_UNREGISTER --------------------------------

    def _range(self, call: str, start: Any, length: Any) -> tuple[int, int]:
        """validate_range: page aligned, not empty, inside the user range."""
        start = as_uint("start", start, call)
        length = as_uint("len", length, call)
        mm = self.mm
        if start % mm.page_size or length % mm.page_size or length == 0:
            raise OSError(errno.EINVAL, f"{call}: unaligned or empty range")
        if start < mm.arch.mmap_min_addr or start >= mm.arch.task_size \
                or length > mm.arch.task_size - start:  # fmt: skip
            raise OSError(errno.EINVAL, f"{call}: range outside the user address space")
        return start, start + length

    def register(self, start: int, length: int, mode: int) -> None:
        """UFFDIO_REGISTER: every VMA in [start, start + length) becomes this
        userfaultfd's (split at the ends, merged with registered neighbours)."""
        call = "UFFDIO_REGISTER"
        with self.mm.mmap_lock:
            mode = as_uint("mode", mode, call)
            if mode == 0 or mode & ~_MODES:
                raise OSError(errno.EINVAL, f"{call}: mode {mode:#x} (valid bits {_MODES:#x})")
            start, end = self._range(call, start, length)
            vmas = list(overlapping(self.mm, start, end))
            if not vmas:
                raise OSError(errno.EINVAL, f"{call}: nothing mapped in the range")
            if mode & UFFDIO_REGISTER_MODE_MINOR:
                # vma_can_userfault: MINOR only for shmem and hugetlb
                raise OSError(errno.EINVAL, f"{call}: MINOR mode needs shmem or hugetlbfs")
            for v in vmas:
                if v.file is not None:
                    # vma_can_userfault: anonymous memory, shmem or hugetlbfs only
                    raise OSError(errno.EINVAL, f"{call}: {v.start:#x} maps a regular file")
            for v in vmas:
                if v.uffd and v.uffd != self.id:
                    raise OSError(errno.EBUSY, f"{call}: {v.start:#x} has another userfaultfd")
            flags = (VM_UFFD_MISSING if mode & UFFDIO_REGISTER_MODE_MISSING else 0) | (
                VM_UFFD_WP if mode & UFFDIO_REGISTER_MODE_WP else 0
            )
            self._relabel(start, end, self.id, flags)

    def unregister(self, start: int, length: int) -> None:
        """UFFDIO_UNREGISTER: the VMAs in the range lose their registration."""
        call = "UFFDIO_UNREGISTER"
        with self.mm.mmap_lock:
            start, end = self._range(call, start, length)
            vmas = list(overlapping(self.mm, start, end))
            if not vmas:
                raise OSError(errno.EINVAL, f"{call}: nothing mapped in the range")
            self._relabel(start, end, 0, 0)

    def _relabel(self, start: int, end: int, ident: int, flags: int) -> None:
        """vma_modify_flags_uffd over the VMAs of [start, end)."""
        mm = self.mm
        vmas = list(overlapping(mm, start, end))
        first, last = max(start, vmas[0].start), min(end, vmas[-1].end)
        split_vma(mm, first)
        split_vma(mm, last)
        for v in overlapping(mm, first, last):
            v.uffd = ident
            v.flags = (v.flags & ~VM_UFFD_FLAGS) | flags
        merge_around(mm, first, last)

    # UFFDIO_COPY / UFFDIO_ZEROPAGE -------------------------------------

    def copy(self, dst: int, src: int, length: int, mode: int = 0) -> int:
        """UFFDIO_COPY: fill the missing pages of [dst, dst + length) with
        copies of [src, src + length), page by page in order (``src`` may be
        unaligned; a source page not yet faulted in is read-faulted, as
        copy_from_user does). Returns ``length`` when every page was filled;
        else raises UffdFillError (see there). NotImplementedError, before
        anything changes, where a source page would need a userfault (an
        absent page of a MISSING-registered VMA: the ioctl would wait for a
        handler) or the destination is shared memory (shmem's page-cache
        fill is not simulated)."""
        with self.mm.mmap_lock:
            return self._mfill("UFFDIO_COPY", dst, src, length, mode)

    def zeropage(self, start: int, length: int, mode: int = 0) -> int:
        """UFFDIO_ZEROPAGE: map the zero page at each missing page of
        [start, start + length). As ``copy`` otherwise."""
        with self.mm.mmap_lock:
            return self._mfill("UFFDIO_ZEROPAGE", start, None, length, mode)

    def _mfill(self, call: str, dst: Any, src: Any, length: Any, mode: Any) -> int:
        """userfaultfd_copy / userfaultfd_zeropage, then mfill_atomic."""
        mm = self.mm
        ps = mm.page_size
        if self.pending_events:  # mmap_changing
            raise UffdFillError(errno.EAGAIN, -errno.EAGAIN, call,
                                "a remap event has not been read yet")  # fmt: skip
        dst = as_uint("dst", dst, call)
        length = as_uint("len", length, call)
        mode = as_uint("mode", mode, call)

        def refuse(what: str) -> UffdFillError:
            return UffdFillError(errno.EINVAL, 0, call, what)

        if src is not None:
            # validate_unaligned_range: any source address, a page-multiple length
            src = as_uint("src", src, call)
            a = mm.arch
            if length % ps or length == 0 or src < a.mmap_min_addr or src >= a.task_size \
                    or length > a.task_size - src:  # fmt: skip
                raise refuse("src range unaligned in length, empty or outside user space")
        try:
            self._range(call, dst, length)
        except OSError as e:
            raise refuse(str(e.strerror)) from None
        modes = UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP if src is not None \
            else UFFDIO_ZEROPAGE_MODE_DONTWAKE  # fmt: skip
        if mode & ~modes:
            raise refuse(f"unknown mode bits {mode & ~modes:#x}")
        pages = length // ps
        if src is not None:  # (before anything changes)
            self._check_sources(call, src, pages)
        # mfill_atomic: the destination VMA (uffd_mfill_lock prepares a
        # private one's anon_vma as soon as it finds it)
        v = find_vma(mm, dst)
        if v is None:
            raise UffdFillError(errno.ENOENT, -errno.ENOENT, call, f"no VMA at {dst:#x}")
        if v.shared and v.file is None and v.uffd:
            raise NotImplementedError(f"{call} into shared anonymous memory (shmem's "
                                      "shmem_mfill_atomic_pte) is not simulated")  # fmt: skip
        if not v.shared and v.anon_vma is None:
            v.anon_vma = new_anon_vma()
        if dst + length > v.end or not v.uffd:  # validate_dst_vma
            raise UffdFillError(errno.ENOENT, -errno.ENOENT, call,
                                "the range is not inside one registered VMA")  # fmt: skip
        if mode & UFFDIO_COPY_MODE_WP and src is not None and not v.flags & VM_UFFD_WP:
            raise UffdFillError(errno.EINVAL, -errno.EINVAL, call,
                                "UFFDIO_COPY_MODE_WP without a WP registration")  # fmt: skip
        if v.file is not None:  # neither anonymous nor shmem
            raise UffdFillError(errno.EINVAL, -errno.EINVAL, call, "dst maps a regular file")
        readable, writable = v.prot != PROT_NONE, bool(v.prot & PROT_WRITE)
        err = done = 0
        for k in range(pages):
            frames = (-1, -1)
            if src is not None:
                got = self._source(src + k * ps)
                if got is None:
                    err = errno.EFAULT  # copy_from_user failed with faults allowed
                    break
                frames = got
            err, _ = _uffd.mfill_pte(mm.tables, dst + k * ps, src is None, readable, writable,
                                     *frames)  # fmt: skip
            if err:
                break
            done += ps
        if done == length:
            return int(length)
        if done:
            raise UffdFillError(errno.EAGAIN, done, call,
                                f"stopped after {done} bytes: {errno.errorcode[err]}")  # fmt: skip
        raise UffdFillError(err, -err, call, f"{errno.errorcode[err]} at {dst:#x}")

    def _check_sources(self, call: str, src: int, pages: int) -> None:
        """NotImplementedError, before anything changes, where a source page
        would need a userfault to be read (absent in a MISSING-registered
        VMA), up to the first one that is not readable (the copy stops there)."""
        mm, ps = self.mm, self.mm.page_size
        first, last = src // ps, (src + pages * ps - 1) // ps
        for p in range(first, last + 1):
            v = find_vma(mm, p * ps)
            if v is None or not v.prot & PROT_READ:
                return
            if v.flags & VM_UFFD_MISSING and mm.tables.translate(p * ps) < 0:
                raise NotImplementedError(f"{call}: the source page at {p * ps:#x} is "
                                          "missing in a MISSING-registered VMA: reading "
                                          "it waits for a userfault handler")  # fmt: skip

    def _source(self, addr: int) -> tuple[int, int] | None:
        """copy_from_user of the page at ``addr``: the frames of the one or
        two pages it reads, read-faulted in where absent (the zero page, or
        a page-cache page); None where one is not readable (EFAULT)."""
        mm, ps = self.mm, self.mm.page_size
        frames = [-1, -1]
        # the page of its first byte and, if unaligned, that of its last
        for i, page in enumerate(range(addr // ps, (addr + ps - 1) // ps + 1)):
            at = page * ps
            v = find_vma(mm, at)
            if v is None or not v.prot & PROT_READ:
                return None
            if mm.tables.translate(at) < 0:  # (-1: nothing mapped there)
                populate_vma(mm, v, at, at + ps, False)
            frames[i] = int(mm.tables.translate(at))
        return frames[0], frames[1]

    def read_events(self) -> list[tuple[int, int, int]]:
        """Read the queued UFFD_EVENT_REMAP events (from, to, len): what the
        handler thread does; UFFDIO_MOVE fails with EAGAIN until then."""
        with self.mm.mmap_lock:
            out, self.pending_events = self.pending_events, []
            return out

    # UFFDIO_MOVE ---------------------------------------------------------

    def move(self, dst: int, src: int, length: int, mode: int = 0) -> int:
        """UFFDIO_MOVE: move the pages of [src, src + length) to dst.

        Returns ``length`` when everything moved. Otherwise raises
        UffdMoveError: errno EAGAIN with ``move`` the bytes moved before an
        error stopped it, or the error itself (EINVAL, ENOENT, EEXIST,
        EBUSY, ENOMEM) with ``move`` = -errno when nothing moved.
        ``last_move`` records the counters."""
        with self.mm.mmap_lock:
            return self._move(dst, src, length, mode)

    def _fail(self, code: int, what: str) -> UffdMoveError:
        return UffdMoveError(code, -code, what)

    def _move(self, dst: Any, src: Any, length: Any, mode: Any) -> int:
        mm = self.mm
        rules = mm.policy.uffd_move
        if not rules or not self.features & UFFD_FEATURE_MOVE:
            # no UFFDIO_MOVE in this kernel, or not asked for at UFFDIO_API
            raise UffdMoveError(errno.EINVAL, 0, f"no UFFDIO_MOVE under {mm.policy.name} "
                                "or without UFFD_FEATURE_MOVE")  # fmt: skip
        if self.pending_events:
            raise self._fail(errno.EAGAIN, "a remap event has not been read yet")
        dst = as_uint("dst", dst, CALL)
        src = as_uint("src", src, CALL)
        length = as_uint("len", length, CALL)
        mode = as_uint("mode", mode, CALL)
        for what, at in (("dst", dst), ("src", src)):
            try:
                self._range(CALL, at, length)
            except OSError as e:
                raise self._fail(errno.EINVAL, f"{what}: {e.strerror}") from None
        if mode & ~_MOVE_MODES:
            raise self._fail(errno.EINVAL, f"unknown mode bits {mode:#x}")
        if rules == "6.8":
            # move_pages() under mmap_lock (adef440691ba): a missing VMA is EINVAL
            sv, dv = find_vma(mm, src), find_vma(mm, dst)
            for what, v, at in (("src", sv, src), ("dst", dv, dst)):
                if v is None or v.shared or at + length > v.end:
                    raise self._fail(errno.EINVAL, f"no private VMA holds {what} + len")
            assert sv is not None and dv is not None
            self._validate_move_areas(sv, dv)
            if dv.anon_vma is None:
                dv.anon_vma = new_anon_vma()  # anon_vma_prepare(dst_vma), last in 6.8
        else:
            # move_pages() with per-VMA locks (uffd_move_lock, 6.9+)
            dv = find_vma(mm, dst)
            if dv is None:
                raise self._fail(errno.ENOENT, f"no VMA at dst {dst:#x}")
            if not dv.shared and dv.anon_vma is None:
                dv.anon_vma = new_anon_vma()  # anon_vma_prepare(dst_vma)
            sv = find_vma(mm, src)
            if sv is None:
                raise self._fail(errno.ENOENT, f"no VMA at src {src:#x}")
            if sv.shared or src + length > sv.end:
                raise self._fail(errno.EINVAL, "src is shared or its VMA ends before src + len")
            if dv.shared or dst + length > dv.end:
                raise self._fail(errno.EINVAL, "dst is shared or its VMA ends before dst + len")
            self._validate_move_areas(sv, dv)
        calls = np.array([[dst, src, length]], dtype=np.uint64)
        stats = self._run(calls, 1, bool(mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES))
        if stats.error is not None:
            raise stats.error
        return int(length)

    def move_many(self, calls: Any, mode: int = 0) -> int:
        """UFFDIO_MOVE calls in a row, as a GC thread makes them: ``calls``
        is rows of (dst, src, len), all with ``mode``. Each call does what
        ``move`` does; the VMA checks run over all of them at once (no call
        changes a VMA), the moves in one C loop. Returns the bytes moved.

        The first call that fails raises its UffdMoveError, as ``move``
        would, with ``calls_done`` (the calls before it, all complete) and
        ``bytes_before`` (what they moved) set. ``last_move`` records the
        counters of every call made, priced with one ioctl each."""
        with self.mm.mmap_lock:
            arr = np.asarray(calls)
            if arr.ndim != 2 or arr.shape[1] != 3 or not (
                    arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):  # fmt: skip
                raise ValueError(f"calls must be rows of (dst, src, len) ints, not an array "
                                 f"of shape {arr.shape} and dtype {arr.dtype}")  # fmt: skip
            if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFFFFFFFFFF):
                raise ValueError("calls: dst, src and len must be in 0..2**64-1")
            arr = np.ascontiguousarray(arr, dtype=np.uint64)
            n = len(arr)
            good, dst_vmas = self._checked_prefix(arr, as_uint("mode", mode, CALL))
            holes = bool(mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)
            stats = self._run(arr, good, holes) if good else None
            if stats is not None:
                # anon_vma_prepare(dst_vma) of each call made (nothing in the
                # moves themselves reads it)
                for v in {id(v): v for v in dst_vmas[: stats.calls]}.values():
                    if v.anon_vma is None:
                        v.anon_vma = new_anon_vma()
            err = stats.error if stats is not None else None
            done = stats.calls - (err is not None) if stats is not None else 0
            if err is None and good < n:
                try:
                    d, sr, ln = arr[good].tolist()
                    self._move(d, sr, ln, mode)  # raises the call's error
                except UffdMoveError as e:
                    err = e
                else:  # pragma: no cover - the checks above are _move's
                    raise AssertionError(f"move_many: call {good} passed _move's checks")
            total = int(arr[:done, 2].sum()) if done else 0
            if err is not None:
                err.calls_done, err.bytes_before = done, total
                raise err
            return total

    def _checked_prefix(self, calls: np.ndarray[Any, Any], mode: int) -> tuple[int, list[Vma]]:
        """How many calls from the first pass every check ``_move`` makes
        before it moves anything (the VMAs do not change between them), and
        their destination VMAs."""
        mm = self.mm
        rules = mm.policy.uffd_move
        if (
            not rules
            or not self.features & UFFD_FEATURE_MOVE
            or self.pending_events
            or mode & ~_MOVE_MODES
        ):
            return 0, []  # fmt: skip
        dst, src, ln = calls[:, 0], calls[:, 1], calls[:, 2]
        ps, a = np.uint64(mm.page_size), mm.arch
        lo, top = np.uint64(a.mmap_min_addr), np.uint64(a.task_size)
        ok = ((dst | src | ln) % ps == 0) & (ln > 0) & (ln <= top)
        for at in (dst, src):
            ok &= (at >= lo) & (at < top) & (ln <= top - np.minimum(at, top))
        vs = mm.vmas
        if not vs:
            return 0, []  # no VMA holds any of them
        starts = np.array([v.start for v in vs], dtype=np.uint64)
        ends = np.array([v.end for v in vs], dtype=np.uint64)
        bad_vma = np.array([v.shared or not v.anonymous or not v.prot & PROT_WRITE for v in vs],
                           dtype=bool)  # fmt: skip
        prot = np.array([v.prot for v in vs], dtype=np.int64)
        mine = np.array([v.uffd == self.id for v in vs], dtype=bool)
        last = len(vs) - 1
        di = np.minimum(np.searchsorted(ends, dst, side="right"), last)
        si = np.minimum(np.searchsorted(ends, src, side="right"), last)
        ok &= (starts[di] <= dst) & (dst < ends[di]) & (starts[si] <= src) & (src < ends[si])
        ok &= ~bad_vma[di] & ~bad_vma[si] & (prot[di] == prot[si]) & mine[di]
        for at, vi in ((dst, di), (src, si)):
            ok &= ln <= ends[vi] - np.minimum(at, ends[vi])
        good = len(ok) if ok.all() else int(np.argmin(ok))
        return good, [vs[i] for i in di[:good].tolist()]

    def _validate_move_areas(self, sv: Vma, dv: Vma) -> None:
        if sv.prot != dv.prot:
            raise self._fail(errno.EINVAL, "src and dst VMAs differ in protection")
        if not sv.prot & PROT_WRITE:
            raise self._fail(errno.EINVAL, "the VMAs are not writable")
        if dv.uffd != self.id:
            raise self._fail(errno.EINVAL, "dst is not registered with this userfaultfd")
        if not sv.anonymous or not dv.anonymous:
            # validate_move_areas: "Only allow moving across anonymous vmas"
            raise self._fail(errno.EINVAL, "src or dst maps a file")

    def _run(self, calls: np.ndarray[Any, Any], stop: int, holes: bool) -> UffdMoveStats:
        """Calls 0 .. stop - 1 of ``calls`` (checked) in C (``_uffd.move_calls``),
        each large folio met split (``_split_folio``) and the call resumed;
        their record, priced with one ioctl per call made, becomes
        ``last_move``. Its ``error`` is the error of the call that stopped."""
        mm = self.mm
        policy = mm.policy
        stats = UffdMoveStats()
        i, off = 0, 0
        logs = []
        rules = {"allow_holes": holes, "batch": policy.uffd_move_batch,
                 "move_zero": policy.uffd_move == "6.9",
                 "anon_vma_lock": policy.uffd_move_anon_vma_lock}  # fmt: skip
        while True:
            i, off, err, st, log = _uffd.move_calls(mm.tables, mm.tlbs, mm.cpu, calls, i, off,
                                                    stop, rules, mm.trace_moves)  # fmt: skip
            stats.add(st)
            logs.append(log)
            if err != _uffd.NEED_SPLIT:
                break
            stats.add(self._split_folio(int(calls[i, 1]) + off))
        stats.calls = i + (err != 0)
        stats.bytes_moved = int(calls[:i, 2].sum()) + off
        if err:
            code = errno.errorcode.get(err, str(err))
            length = int(calls[i, 2])
            stats.error = (UffdMoveError(errno.EAGAIN, off, f"moved {off} of {length} bytes, "
                                         f"then {code}") if off
                           else self._fail(err, f"{code} before any page moved"))  # fmt: skip
        a = mm.arch
        stats.estimated_ns, stats.breakdown = uffd_move_cost(a, stats.counters, stats.flush_ops,
                                                             stats.calls)  # fmt: skip
        stats.estimated_ns_range = uffd_move_cost_range(a, stats.counters, stats.flush_ops,
                                                        stats.calls)  # fmt: skip
        # (a round whose trace ran out of memory: none at all)
        if mm.trace_moves and logs and all(x is not None for x in logs):
            stats.trace = concat([x for x in logs if x is not None], a)
        self.last_move = stats
        return stats

    def _split_folio(self, addr: int) -> dict[str, Any]:
        """split_folio of the large folio mapped at ``addr``: its pages are
        found as the rmap walk finds them, in every VMA of the same anon_vma
        at the address their page index gives there (linear_page_index), so
        pages that mremap carried elsewhere split too. No EBUSY: a folio
        mapped by another process or pinned (folio_maybe_mapped_shared,
        folio_maybe_dma_pinned) cannot arise without fork and GUP, which
        pagetab does not simulate."""
        mm = self.mm
        pt, shift = mm.tables, mm.page_shift
        level, entry = pt.entry(addr)
        order = (entry & _tables.ORDER) >> _tables.ORDER_SHIFT
        frame = pt.translate(addr)
        head = frame & ~((1 << order) - 1)
        v = find_vma(mm, addr)
        assert v is not None and order and level == len(mm.arch.levels) - 1
        first = v.pgoff_at(addr, shift) - (frame - head)  # the folio's page index
        cands = []
        for w in mm.vmas:
            if w.anon_vma != v.anon_vma or w.shared:
                continue
            lo = max(w.start, w.start + ((first - w.pgoff) << shift))
            hi = min(w.end, w.start + ((first + (1 << order) - w.pgoff) << shift))
            if lo < hi:
                cands.append(np.arange(lo, hi, 1 << shift, dtype=np.uint64))
        addrs = np.concatenate(cands) if cands else np.zeros(0, dtype=np.uint64)
        return _uffd.split_folio(pt, mm.tlbs, mm.cpu, addrs, head, order,
                                 mm.policy.split_zeropage)  # fmt: skip


def mremap_userfaultfd_prep(mm: MmStruct, new: Vma, old_start: int, new_start: int,
                            length: int) -> None:  # fmt: skip
    """After mremap moved a registered VMA: with UFFD_FEATURE_EVENT_REMAP the
    new VMA stays registered and a remap event is queued (UFFDIO_MOVE fails
    with EAGAIN until it is read); without it the new VMA loses the
    registration (userfaultfd_reset_ctx)."""
    if not new.uffd:
        return
    if not vma_has_uffd_without_event_remap(mm, new):
        mm.userfaultfds[new.uffd].pending_events.append((old_start, new_start, length))
        return
    new.uffd = 0  # userfaultfd_reset_ctx
    new.flags &= ~VM_UFFD_FLAGS


def vma_has_uffd_without_event_remap(mm: MmStruct, v: Vma) -> bool:
    """Whether ``v`` is registered with a userfaultfd that lacks
    UFFD_FEATURE_EVENT_REMAP (include/linux/userfaultfd_k.h)."""
    return bool(v.uffd) and not mm.userfaultfds[v.uffd].features & UFFD_FEATURE_EVENT_REMAP


def new_userfaultfd(mm: MmStruct, features: int) -> Userfaultfd:
    """userfaultfd(2) and UFFDIO_API with ``features``: a new userfaultfd of
    ``mm`` (its id one above the highest so far)."""
    check_int("userfaultfd: features", features, 0)
    if features & ~FEATURES:
        raise NotImplementedError(
            f"userfaultfd: features {features & ~FEATURES:#x} are not "
            "simulated (UFFD_FEATURE_MOVE and UFFD_FEATURE_EVENT_REMAP are)"
        )
    if features & UFFD_FEATURE_MOVE and not mm.policy.uffd_move:
        raise OSError(errno.EINVAL, f"UFFDIO_API: no UFFD_FEATURE_MOVE under "
                      f"{mm.policy.name} (UFFDIO_MOVE is Linux 6.8+)")  # fmt: skip
    ident = max(mm.userfaultfds, default=0) + 1
    ctx = Userfaultfd(mm, ident, features)
    mm.userfaultfds[ident] = ctx
    return ctx
