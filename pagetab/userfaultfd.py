"""userfaultfd as far as UFFDIO_MOVE needs it (fs/userfaultfd.c, mm/userfaultfd.c).

``mm.userfaultfd(features)`` is userfaultfd(2) plus the UFFDIO_API handshake;
the ``Userfaultfd`` it returns registers ranges (UFFDIO_REGISTER /
UFFDIO_UNREGISTER: VMAs split and merge around them, registered VMAs merge
only with VMAs of the same userfaultfd) and moves pages (UFFDIO_MOVE,
Linux 6.8; the rules followed are those of 6.9 and later, as this
machine's kernel checks them: per-VMA locking's ENOENT for a missing VMA,
zero-page PTEs moved).

Not simulated, and refused with NotImplementedError: the fault that a
MISSING-mode registration turns into a userfault (a handler thread would
have to resolve it), swap entries (pagetab has no swap).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _tables, _uffd
from .argcheck import as_uint
from .constants import (
    PROT_WRITE,
    UFFD_FEATURE_EVENT_REMAP,
    UFFD_FEATURE_MOVE,
    UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
    UFFDIO_MOVE_MODE_DONTWAKE,
    UFFDIO_REGISTER_MODE_MINOR,
    UFFDIO_REGISTER_MODE_MISSING,
    UFFDIO_REGISTER_MODE_WP,
)
from .cost import uffd_move_cost, uffd_move_cost_range
from .vma import (
    VM_UFFD_FLAGS,
    VM_UFFD_MISSING,
    VM_UFFD_WP,
    Vma,
    find_vma,
    merge_around,
    new_anon_vma,
    overlapping,
    split_vma,
)

if TYPE_CHECKING:
    from .space import AddressSpace

__all__ = ["UffdMoveError", "UffdMoveStats", "Userfaultfd", "mremap_userfaultfd_prep"]

CALL = "UFFDIO_MOVE"
FEATURES = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_MOVE
_MODES = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR


class UffdMoveError(OSError):
    """UFFDIO_MOVE's failure: ``errno`` as the ioctl sets it, ``move`` the
    value the kernel writes back (bytes moved before the error, with
    errno EAGAIN, or -errno when nothing moved)."""

    def __init__(self, code: int, move: int, what: str) -> None:
        super().__init__(code, f"{CALL}: {what}")
        self.move = move


@dataclass
class UffdMoveStats:
    """What one UFFDIO_MOVE did (counters named by the C struct in _uffd.pyx)."""

    bytes_moved: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    flush_ops: dict[str, int] = field(default_factory=dict)
    #: the kernel's time for it by the arch's costs, its breakdown and interval
    estimated_ns: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    estimated_ns_range: tuple[float, float] = (0.0, 0.0)

    def add(self, st: dict[str, Any]) -> None:
        for k, v in st.items():
            if k == "flush_ops":
                for op, n in v.items():
                    self.flush_ops[op] = self.flush_ops.get(op, 0) + int(n)
            else:
                self.counters[k] = self.counters.get(k, 0) + int(v)


class Userfaultfd:
    """A userfaultfd of one AddressSpace, after UFFDIO_API with ``features``."""

    def __init__(self, mm: AddressSpace, ident: int, features: int) -> None:
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
        with self.mm.lock:
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
                if v.uffd and v.uffd != self.id:
                    raise OSError(errno.EBUSY, f"{call}: {v.start:#x} has another userfaultfd")
            flags = (VM_UFFD_MISSING if mode & UFFDIO_REGISTER_MODE_MISSING else 0) | (
                VM_UFFD_WP if mode & UFFDIO_REGISTER_MODE_WP else 0
            )
            self._relabel(start, end, self.id, flags)

    def unregister(self, start: int, length: int) -> None:
        """UFFDIO_UNREGISTER: the VMAs in the range lose their registration."""
        call = "UFFDIO_UNREGISTER"
        with self.mm.lock:
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

    def read_events(self) -> list[tuple[int, int, int]]:
        """Read the queued UFFD_EVENT_REMAP events (from, to, len): what the
        handler thread does; UFFDIO_MOVE fails with EAGAIN until then."""
        with self.mm.lock:
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
        with self.mm.lock:
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
        if mode & ~(UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE):
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
        return self._move_pages(dst, src, length, bool(mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES),
                                rules == "6.9")  # fmt: skip

    def _validate_move_areas(self, sv: Vma, dv: Vma) -> None:
        if sv.prot != dv.prot:
            raise self._fail(errno.EINVAL, "src and dst VMAs differ in protection")
        if not sv.prot & PROT_WRITE:
            raise self._fail(errno.EINVAL, "the VMAs are not writable")
        if dv.uffd != self.id:
            raise self._fail(errno.EINVAL, "dst is not registered with this userfaultfd")

    def _move_pages(self, dst: int, src: int, length: int, holes: bool, zero: bool) -> int:
        """move_pages()' loop, PMD extent by PMD extent; bytes moved.
        ``zero``: zero-page PTEs and the huge zero page move (6.9+); before,
        they are EBUSY (5d4747a6cc8e)."""
        mm = self.mm
        pt, a = mm.tables, mm.arch
        pmd_level = len(a.levels) - 2
        pmd = a.pmd_size
        policy = mm.policy
        batch = policy.uffd_move_batch
        stats = UffdMoveStats()
        moved, err = 0, 0
        end = src + length
        leaf = _tables.LEAF
        while src < end:
            level, entry = pt.entry(src)
            if level < pmd_level:  # no PMD table (mm_find_pmd)
                if not holes:
                    err = errno.ENOENT
                    break
                if not _uffd.alloc_table(pt, src, pmd_level):
                    err = errno.ENOMEM
                    break
            if not _uffd.alloc_table(pt, dst, pmd_level):
                err = errno.ENOMEM
                break
            dlevel, dentry = pt.entry(dst)
            if dlevel == pmd_level and dentry & leaf:  # a THP at the destination
                err = errno.EEXIST
                break
            dst_pmd_none = dlevel == pmd_level and dentry == 0
            level, entry = pt.entry(src)
            if level == pmd_level and entry & leaf:  # a THP (or the huge zero page)
                if not zero and entry & _tables.ZERO:
                    err = errno.EBUSY
                    break
                if src % pmd or dst % pmd or end - src < pmd or not dst_pmd_none:
                    # split_huge_pmd, then this address again
                    split = _uffd.split_huge_pmd(pt, mm.tlbs, mm.cpu, src)
                    if split is None:
                        err = errno.ENOMEM
                        break
                    stats.add(split)
                    continue
                stats.add(_uffd.move_pages_huge_pmd(pt, mm.tlbs, mm.cpu, dst, src))
                src, dst, moved = src + pmd, dst + pmd, moved + pmd
                continue
            if level == pmd_level and entry == 0:  # no PTE table
                if not holes:
                    err = errno.ENOENT
                    break
            if not _uffd.alloc_table(pt, src, pmd_level + 1) or not _uffd.alloc_table(
                pt, dst, pmd_level + 1
            ):
                err = errno.ENOMEM
                break
            n = min(pmd - src % pmd, pmd - dst % pmd, end - src) >> mm.page_shift
            done, err, st = _uffd.move_pages_pte(pt, mm.tlbs, mm.cpu, dst, src, n, holes, batch,
                                                 zero)  # fmt: skip
            stats.add(st)
            src += done << mm.page_shift
            dst += done << mm.page_shift
            moved += done << mm.page_shift
            if err:
                break
        stats.bytes_moved = moved
        stats.estimated_ns, stats.breakdown = uffd_move_cost(a, stats.counters, stats.flush_ops)
        stats.estimated_ns_range = uffd_move_cost_range(a, stats.counters, stats.flush_ops)
        self.last_move = stats
        if moved == length:
            return length
        if moved:
            raise UffdMoveError(errno.EAGAIN, moved, f"moved {moved} of {length} bytes, then "
                                f"{errno.errorcode.get(err, err)}")  # fmt: skip
        raise self._fail(err, f"{errno.errorcode.get(err, err)} before any page moved")


def mremap_userfaultfd_prep(mm: AddressSpace, new: Vma, old_start: int, new_start: int,
                            length: int) -> None:  # fmt: skip
    """After mremap moved a registered VMA: with UFFD_FEATURE_EVENT_REMAP the
    new VMA stays registered and a remap event is queued (UFFDIO_MOVE fails
    with EAGAIN until it is read); without it the new VMA loses the
    registration (userfaultfd_reset_ctx)."""
    if not new.uffd:
        return
    if not vma_has_uffd_without_event_remap(mm, new):
        mm._userfaultfds[new.uffd].pending_events.append((old_start, new_start, length))
        return
    new.uffd = 0  # userfaultfd_reset_ctx
    new.flags &= ~VM_UFFD_FLAGS


def vma_has_uffd_without_event_remap(mm: AddressSpace, v: Vma) -> bool:
    """Whether ``v`` is registered with a userfaultfd that lacks
    UFFD_FEATURE_EVENT_REMAP (include/linux/userfaultfd_k.h)."""
    return bool(v.uffd) and not mm._userfaultfds[v.uffd].features & UFFD_FEATURE_EVENT_REMAP
