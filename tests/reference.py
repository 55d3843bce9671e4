"""A pure-Python reference model of an address space: a dict per page.

Slow and plain on purpose: every mapped page is a dict entry holding its
VMA's attributes (protection, sharing, hugepage advice, vm_pgoff, anon_vma
and a VMA identity) and its contents (not present, the zero page, or a
token naming one page of data). A VMA is a maximal run of consecutive pages
with the same identity. System calls follow the kernel's rules as written
in mm/mmap.c, mm/mprotect.c, mm/madvise.c and mm/mremap.c (Linux 6.17+),
without page tables: it says what the address space looks like, not how
the tables got there.

PMD-sized transparent huge pages are outside the model (the reference runs
with the PMD size never enabled): whether a fault installs a THP depends on
page-table state the model does not keep. PMD THP behaviour is checked
against the real kernel instead (tests/test_conformance_host.py).
Multi-size THP (PTE-mapped large folios, Linux 6.8+) is in: a write fault
on a page that is not present allocates the largest allowed folio whose
naturally aligned block lies inside the VMA and has no page present
(alloc_anon_folio), and each of its pages holds (token, folio id, order)
as its content, so the folio travels with its pages through mremap and
stays (partially mapped) through munmap and MADV_DONTNEED.

Address placement (mremap with MREMAP_MAYMOVE but no MREMAP_FIXED) is
taken from the simulator and checked for validity (aligned, free, in
range), not recomputed.
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import dataclass, replace

import pagetab as pt
from pagetab.mm_types import FAULT_AROUND_BYTES

MAYMOVE, FIXED, DONTUNMAP = pt.MREMAP_MAYMOVE, pt.MREMAP_FIXED, pt.MREMAP_DONTUNMAP
HUGE, NOHUGE = 1, 2  # VM_HUGEPAGE, VM_NOHUGEPAGE
ACCOUNT, NORESERVE = 16, 32  # VM_ACCOUNT, VM_NORESERVE: vm_flags, so they part VMAs
KEPT = HUGE | NOHUGE | ACCOUNT | NORESERVE  # the flags a userfaultfd change keeps
UFFD_WP, UFFD_MISSING = 4, 8  # VM_UFFD_WP, VM_UFFD_MISSING


class Errno(Exception):
    """A system call's error (the reference's own, to keep it apart from OSError)."""

    def __init__(self, code: int) -> None:
        super().__init__(errno.errorcode.get(code, code))
        self.code = code


ZERO = "zero"


@dataclass(frozen=True)
class Page:
    """One mapped page: its VMA's attributes and what it holds."""

    vid: int  # VMA identity
    prot: int
    shm: int | None  # the shmem object (MAP_SHARED), None for private memory
    flags: int  # HUGE / NOHUGE / ACCOUNT / NORESERVE (and userfaultfd bits)
    pgoff: int  # vm_pgoff of this very page (the VMA's pgoff + its index)
    anon: int | None  # anon_vma identity
    content: object = None  # None: not present; ZERO; or a token (private data)
    uffd: int = 0  # the userfaultfd it is registered with (one per reference: 1)


class Reference:
    """The address space as a page dict. Methods mirror AddressSpace's."""

    def __init__(self, page_size: int, task_size: int, thp: str = "never",
                 thp_orders: dict[int, str] | None = None,
                 split_zeropage: bool = False, multi_vma: bool = True) -> None:  # fmt: skip
        """``thp``: the top-level THP mode; ``thp_orders``: {order:
        hugepages-<size>kB/enabled} for PTE-mapped orders (below the PMD's,
        which the reference never enables); ``split_zeropage``: a folio
        split maps the pages no store wrote to the zero page (6.12+);
        ``multi_vma``: a pure move may span several VMAs (6.17+)."""
        self.multi_vma = multi_vma
        self.thp = thp
        self.thp_orders = dict(thp_orders or {})
        self.ps = page_size
        self.shift = page_size.bit_length() - 1
        self.task_size = task_size
        self.pages: dict[int, Page] = {}  # page number -> Page
        self.objects: dict[int, dict[int, int]] = {}  # shm -> {object page: token}
        self.object_pages: dict[int, int] = {}  # shm -> size in pages
        self._ids = itertools.count(1)
        self.split_zeropage = split_zeropage
        self.written: set[object] = set()  # tokens of pages a store wrote

    # helpers ---------------------------------------------------------

    def _new(self) -> int:
        return next(self._ids)

    def _align(self, n: int) -> int:
        return (n + self.ps - 1) & ~(self.ps - 1)

    def _range(self, start: int, end: int) -> range:
        return range(start >> self.shift, end >> self.shift)

    def vmas(self) -> list[tuple[int, int, Page]]:
        """(start page, end page, first page) of every VMA, in order."""
        out: list[tuple[int, int, Page]] = []
        for n in sorted(self.pages):
            p = self.pages[n]
            if out and out[-1][1] == n and out[-1][2].vid == p.vid:
                out[-1] = (out[-1][0], n + 1, out[-1][2])
            else:
                out.append((n, n + 1, p))
        return out

    def _vma_at(self, n: int) -> tuple[int, int] | None:
        """[first, end) page numbers of the VMA holding page n."""
        if n not in self.pages:
            return None
        vid = self.pages[n].vid
        lo = n
        while lo - 1 in self.pages and self.pages[lo - 1].vid == vid:
            lo -= 1
        hi = n + 1
        while hi in self.pages and self.pages[hi].vid == vid:
            hi += 1
        return lo, hi

    def _pieces(self, start: int, end: int) -> list[tuple[int, int]]:
        """[lo, hi) page numbers of each VMA's part inside [start, end), in
        order (taken before anything changes them)."""
        out = []
        n, stop = start >> self.shift, end >> self.shift
        while n < stop:
            if n not in self.pages:
                n += 1
                continue
            _, hi = self._vma_at(n)  # type: ignore[misc]
            out.append((n, min(hi, stop)))
            n = min(hi, stop)
        return out

    def _mergeable(self, a: Page, b: Page) -> bool:
        """is_mergeable_vma + is_mergeable_anon_vma + pgoff contiguity, for
        b's VMA starting right after a's."""
        return (
            a.vid != b.vid
            and a.prot == b.prot
            and a.shm == b.shm
            and a.flags == b.flags
            and a.pgoff + 1 == b.pgoff
            and (a.anon is None or b.anon is None or a.anon == b.anon)
            and a.uffd == b.uffd
        )

    def _merge_at(self, n: int) -> None:
        """Merge the VMA ending at page n - 1 with the one starting at n."""
        a, b = self.pages.get(n - 1), self.pages.get(n)
        if a is None or b is None or not self._mergeable(a, b):
            return
        lo, _ = self._vma_at(n - 1)  # type: ignore[misc]
        _, hi = self._vma_at(n)  # type: ignore[misc]
        anon = a.anon if a.anon is not None else b.anon
        for k in range(lo, hi):
            self.pages[k] = replace(self.pages[k], vid=a.vid, anon=anon)

    def _relabel(self, lo: int, hi: int, **changes: object) -> None:
        """Split [lo, hi) off as its own VMA with some attributes changed."""
        vid = self._new()
        for k in range(lo, hi):
            self.pages[k] = replace(self.pages[k], vid=vid, **changes)  # type: ignore[arg-type]

    def _unmap(self, start: int, end: int) -> None:
        for n in self._range(start, end):
            self.pages.pop(n, None)

    def _free(self, start: int, end: int) -> bool:
        return all(n not in self.pages for n in self._range(start, end))

    def _token(self) -> int:
        return self._new()

    # system calls ----------------------------------------------------

    def mmap(self, length: int, addr: int, prot: int, flags: int) -> int:
        """MAP_FIXED anonymous mappings only (placement is the simulator's
        job; the state machine always fixes the address)."""
        assert flags & pt.MAP_FIXED and flags & pt.MAP_ANONYMOUS
        if length == 0 or addr & (self.ps - 1):
            raise Errno(errno.EINVAL)
        length = self._align(length)
        if addr > self.task_size - length:
            raise Errno(errno.ENOMEM)
        self._unmap(addr, addr + length)
        vid = self._new()
        if flags & pt.MAP_SHARED:
            shm = self._new()
            self.objects[shm] = {}
            self.object_pages[shm] = length >> self.shift
            base = 0
        else:
            shm, base = None, addr >> self.shift
        # do_mmap: VM_NORESERVE for MAP_NORESERVE, else VM_ACCOUNT for a
        # private writable mapping (accountable_mapping)
        vmf = NORESERVE if flags & pt.MAP_NORESERVE else 0
        if shm is None and prot & pt.PROT_WRITE and not vmf:
            vmf = ACCOUNT
        for i, n in enumerate(self._range(addr, addr + length)):
            self.pages[n] = Page(vid, prot, shm, vmf, base + i, None)
        first, last = addr >> self.shift, (addr + length) >> self.shift
        self._merge_at(first)
        self._merge_at(last)
        return addr

    def munmap(self, addr: int, length: int) -> None:
        if addr & (self.ps - 1) or length == 0:
            raise Errno(errno.EINVAL)
        length = self._align(length)
        if length > self.task_size or addr > self.task_size - length:
            raise Errno(errno.EINVAL)
        self._unmap(addr, addr + length)

    def _modify(self, start: int, end: int, change: dict[str, int]) -> None:
        """mprotect_fixup / madvise_update_vma on every VMA piece in
        [start, end) whose attributes change: split it off, change it,
        merge it with its neighbours."""
        pieces = []
        for lo, hi in self._pieces(start, end):
            p = self.pages[lo]
            new = {k: v for k, v in change.items() if getattr(p, k) != v}
            if new:
                self._relabel(lo, hi, **new)
                pieces.append((lo, hi))
        for lo, hi in pieces:
            self._merge_at(lo)
            self._merge_at(hi)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        if addr & (self.ps - 1):
            raise Errno(errno.EINVAL)
        if length == 0:
            return
        end = addr + self._align(length)
        if end > self.task_size:
            raise Errno(errno.ENOMEM)
        n = addr >> self.shift
        if n not in self.pages:
            raise Errno(errno.ENOMEM)
        # up to the first hole; VMAs before it keep the change
        stop = n
        while stop < end >> self.shift and stop in self.pages:
            stop += 1
        for lo, hi in self._pieces(addr, stop << self.shift):
            # mprotect_fixup: charged when a private VMA becomes writable;
            # uncharged read-only only if anonymous and never faulted
            p = self.pages[lo]
            vmf = p.flags
            if prot & pt.PROT_WRITE:
                if not p.prot & pt.PROT_WRITE and p.shm is None \
                        and not vmf & (ACCOUNT | NORESERVE):  # fmt: skip
                    vmf |= ACCOUNT
            elif vmf & ACCOUNT and p.shm is None and p.anon is None:
                vmf &= ~ACCOUNT
            self._modify(lo << self.shift, hi << self.shift, {"prot": prot, "flags": vmf})
        if stop < end >> self.shift:
            raise Errno(errno.ENOMEM)

    def madvise(self, addr: int, length: int, advice: int) -> None:
        if addr & (self.ps - 1):
            raise Errno(errno.EINVAL)
        if length == 0:
            return
        end = addr + self._align(length)
        if advice in (pt.MADV_POPULATE_READ, pt.MADV_POPULATE_WRITE):
            self._populate(addr, end, advice == pt.MADV_POPULATE_WRITE)
            return
        hole = any(n not in self.pages for n in self._range(addr, end))
        if advice == pt.MADV_DONTNEED:
            for n in self._range(addr, end):
                if n in self.pages:
                    self.pages[n] = replace(self.pages[n], content=None)
        else:
            for lo, hi in self._pieces(addr, end):
                old = self.pages[lo].flags
                if advice == pt.MADV_HUGEPAGE:
                    new = (old | HUGE) & ~NOHUGE
                else:
                    new = (old | NOHUGE) & ~HUGE
                self._modify(lo << self.shift, hi << self.shift, {"flags": new})
        if hole:
            raise Errno(errno.ENOMEM)

    def _populate(self, addr: int, end: int, write: bool) -> None:
        """MADV_POPULATE_READ/WRITE: fault page by page; stop at the first
        failure with the kernel's errno (work before it stays)."""
        for n in self._range(addr, end):
            p = self.pages.get(n)
            if p is None:
                raise Errno(errno.ENOMEM)
            if p.prot == pt.PROT_NONE or (write and not p.prot & pt.PROT_WRITE):
                raise Errno(errno.EINVAL)
            if p.shm is not None:
                if p.pgoff >= self.object_pages[p.shm]:
                    raise Errno(errno.EFAULT)  # SIGBUS past the object
                obj = self.objects[p.shm]
                if p.pgoff not in obj:
                    obj[p.pgoff] = self._token()
                self.pages[n] = replace(p, content=obj[p.pgoff])
                if p.content is None and not write:
                    self._fault_around(n)
                continue
            if p.content is None and not write:
                self.pages[n] = replace(p, content=ZERO)  # the zero page
            elif write and p.content in (None, ZERO):
                if p.anon is None:
                    self._set_anon(n)  # anon_vma_prepare: the whole VMA
                o = self._folio_order(n) if p.content is None else 0
                if o:
                    fid, first = self._new(), n & ~((1 << o) - 1)
                    for k in range(first, first + (1 << o)):
                        self.pages[k] = replace(self.pages[k], content=(self._token(), fid, o))
                else:
                    self.pages[n] = replace(self.pages[n], content=self._token())

    def _fault_around(self, n: int) -> None:
        """A read fault on shared page n maps, too, the pages around it that
        its shmem object holds (do_fault_around, filemap_map_pages): the
        fault_around_bytes-aligned block, within n's VMA and the object."""
        nr = max((1 << (FAULT_AROUND_BYTES.bit_length() - 1)) >> self.shift, 1)
        vma = self._vma_at(n)
        p = self.pages[n]
        assert vma is not None and p.shm is not None
        obj = self.objects[p.shm]
        first = n & ~(nr - 1)
        for k in range(max(first, vma[0]), min(first + nr, vma[1])):
            q = self.pages[k]
            if q.content is None and q.pgoff in obj:
                self.pages[k] = replace(q, content=obj[q.pgoff])

    def _folio_order(self, n: int) -> int:
        """alloc_anon_folio's order for a write fault on page n (not
        present): the highest allowed order whose aligned block is all in
        n's VMA and not present; 0 for a small folio."""
        p = self.pages[n]
        if p.shm is not None or p.flags & NOHUGE:
            return 0
        advised = bool(p.flags & HUGE)
        inherit = self.thp == "always" or (advised and self.thp != "never")
        allowed = [o for o, mode in self.thp_orders.items()
                   if mode == "always" or (mode == "madvise" and advised)
                   or (mode == "inherit" and inherit)]  # fmt: skip
        for o in sorted(allowed, reverse=True):
            first = n & ~((1 << o) - 1)
            block = [self.pages.get(k) for k in range(first, first + (1 << o))]
            if all(q is not None and q.vid == p.vid and q.content is None for q in block):
                return o
        return 0

    def _set_anon(self, n: int) -> None:
        lo, hi = self._vma_at(n)  # type: ignore[misc]
        anon = self._new()
        for k in range(lo, hi):
            self.pages[k] = replace(self.pages[k], anon=anon)

    def write(self, addr: int) -> None:
        """A store to one page (the state machine's access): a write fault
        if needed, then the page holds data."""
        self._populate(addr, addr + self.ps, True)
        content = self.pages[addr >> self.shift].content
        self.written.add(content[0] if isinstance(content, tuple) else content)

    # mremap ----------------------------------------------------------

    def mremap(self, old: int, old_size: int, new_size: int, flags: int,
               new_addr: int, placed: int | None) -> int:  # fmt: skip
        """``placed``: where the simulator put a MAYMOVE move it had to
        place itself (checked here, not recomputed)."""
        if flags & ~(MAYMOVE | FIXED | DONTUNMAP) or old & (self.ps - 1):
            raise Errno(errno.EINVAL)
        old_len, new_len = self._align(old_size), self._align(new_size)
        if new_len == 0 or new_len > self.task_size:
            raise Errno(errno.EINVAL)
        if flags & (FIXED | DONTUNMAP):
            if new_addr > self.task_size - new_len or new_addr & (self.ps - 1):
                raise Errno(errno.EINVAL)
            if not flags & MAYMOVE:
                raise Errno(errno.EINVAL)
            if flags & DONTUNMAP and old_len != new_len:
                raise Errno(errno.EINVAL)
            if old + old_len > new_addr and new_addr + new_len > old:
                raise Errno(errno.EINVAL)
        if flags & FIXED and old_len == new_len and self.multi_vma:
            return self._remap_move(old, old_len, new_addr, flags)
        p = self.pages.get(old >> self.shift)
        if p is None:
            raise Errno(errno.EFAULT)
        _, hi = self._vma_at(old >> self.shift)  # type: ignore[misc]
        vma_end = hi << self.shift
        if new_len > old_len or flags & (FIXED | DONTUNMAP):
            if old_len == 0 and p.shm is None:
                raise Errno(errno.EINVAL)
            if min(old_len, new_len) > vma_end - old:
                raise Errno(errno.EFAULT)
        if flags & (FIXED | DONTUNMAP):
            if flags & FIXED:
                self._unmap(new_addr, new_addr + new_len)
                if old >> self.shift not in self.pages:
                    raise Errno(errno.EFAULT)  # the target held the source
            if new_len < old_len:
                self._unmap(old + new_len, old + old_len)
                old_len = new_len
            if not flags & FIXED:
                new_addr = self._check_placed(placed, new_len)
            return self._move(old, old_len, new_len, new_addr, flags)
        if new_len <= old_len:
            self._unmap(old + new_len, old + old_len)
            return old
        delta = new_len - old_len
        if (
            vma_end - old == old_len
            and vma_end + delta <= self.task_size
            and self._free(vma_end, vma_end + delta)
        ):
            # expand in place: the VMA grows, then may merge with the next
            for i, n in enumerate(self._range(vma_end, vma_end + delta)):
                last = self.pages[hi - 1]
                self.pages[n] = replace(last, pgoff=last.pgoff + i + 1, content=None)
            self._merge_at((vma_end + delta) >> self.shift)
            return old
        if not flags & MAYMOVE:
            raise Errno(errno.ENOMEM)
        return self._move(old, old_len, new_len, self._check_placed(placed, new_len), flags)

    def _check_placed(self, placed: int | None, length: int) -> int:
        assert placed is not None, "the simulator failed where the reference placed nothing"
        assert placed & (self.ps - 1) == 0 and placed + length <= self.task_size, hex(placed)
        assert self._free(placed, placed + length), f"placed over a mapping at {placed:#x}"
        return placed

    def _remap_move(self, start: int, length: int, new_addr: int, flags: int) -> int:
        """A pure MREMAP_FIXED move of every VMA piece in the range, gaps kept.
        A VMA registered with the userfaultfd moves only alone: EFAULT first
        in a longer range (nothing moved), or later (the pieces before it
        moved)."""
        pieces = [(lo << self.shift, hi << self.shift)
                  for lo, hi in self._pieces(start, start + length)]  # fmt: skip
        if not pieces or pieces[0][0] > start:
            raise Errno(errno.EFAULT)
        first = self._vma_at(pieces[0][0] >> self.shift)
        assert first is not None
        for i, (lo, hi) in enumerate(pieces):
            if self.pages[lo >> self.shift].uffd and (i or first[1] << self.shift < start + length):
                raise Errno(errno.EFAULT)
            target = new_addr + (lo - start)
            self._unmap(target, target + (hi - lo))
            self._move(lo, hi - lo, hi - lo, target, flags)
        return new_addr

    def _move(self, old: int, old_len: int, new_len: int, new_addr: int, flags: int) -> int:
        """move_vma: the new VMA (copy_vma), the pages, then the source."""
        src = self.pages[old >> self.shift]
        pgoff = src.pgoff
        if src.shm is None and src.anon is None:
            pgoff = new_addr >> self.shift  # copy_vma of an unfaulted anon VMA
        vid = self._new()
        nfirst = new_addr >> self.shift
        for i in range(new_len >> self.shift):
            content = None
            if i < old_len >> self.shift:
                content = self.pages[(old >> self.shift) + i].content
            self.pages[nfirst + i] = replace(src, vid=vid, pgoff=pgoff + i, content=content)
        self._merge_at(nfirst)
        self._merge_at(nfirst + (new_len >> self.shift))
        if src.uffd:
            # mremap_userfaultfd_prep without UFFD_FEATURE_EVENT_REMAP: the new
            # VMA (as merged by copy_vma) loses the registration
            lo, hi = self._vma_at(nfirst)  # type: ignore[misc]
            for k in range(lo, hi):
                q = self.pages[k]
                self.pages[k] = replace(q, uffd=0, flags=q.flags & KEPT)
            self._merge_at(lo)
            self._merge_at(hi)
        if flags & DONTUNMAP:
            for n in self._range(old, old + old_len):
                self.pages[n] = replace(self.pages[n], content=None)
            rng = self._vma_at(old >> self.shift)
            if src.shm is None and rng == (old >> self.shift, (old + old_len) >> self.shift):
                # dontunmap_complete: the source loses its anon_vma
                for n in self._range(old, old + old_len):
                    self.pages[n] = replace(self.pages[n], anon=None)
                self._merge_at(old >> self.shift)
                self._merge_at((old + old_len) >> self.shift)
        elif old_len:
            self._unmap(old, old + old_len)
        return new_addr

    # userfaultfd (one userfaultfd with UFFD_FEATURE_MOVE) ----------------

    def _uffd_range(self, start: int, length: int) -> None:
        """validate_range."""
        if start & (self.ps - 1) or length & (self.ps - 1) or length == 0:
            raise Errno(errno.EINVAL)
        if start < 65536 or start >= self.task_size or length > self.task_size - start:
            raise Errno(errno.EINVAL)

    def uffd_register(self, start: int, length: int, mode: int) -> None:
        """UFFDIO_REGISTER of [start, start + length) with ``mode``."""
        if mode == 0 or mode & ~7:
            raise Errno(errno.EINVAL)
        self._uffd_range(start, length)
        pieces = self._pieces(start, start + length)
        if not pieces or mode & 4:  # nothing mapped; MINOR needs shmem
            raise Errno(errno.EINVAL)
        bits = (UFFD_MISSING if mode & 1 else 0) | (UFFD_WP if mode & 2 else 0)
        for lo, hi in pieces:
            p = self.pages[lo]
            self._modify(lo << self.shift, hi << self.shift,
                         {"uffd": 1, "flags": (p.flags & KEPT) | bits})  # fmt: skip

    def uffd_move(self, dst: int, src: int, length: int, mode: int) -> int:
        """UFFDIO_MOVE (Linux 6.9+ rules); raises MoveErrno(code, move)."""
        for at in (dst, src):
            try:
                self._uffd_range(at, length)
            except Errno:
                raise MoveErrno(errno.EINVAL, -errno.EINVAL) from None
        if mode & ~3:
            raise MoveErrno(errno.EINVAL, -errno.EINVAL)
        d0, s0, n = dst >> self.shift, src >> self.shift, length >> self.shift
        if d0 not in self.pages:
            raise MoveErrno(errno.ENOENT, -errno.ENOENT)
        dv = self.pages[d0]
        if dv.shm is None and dv.anon is None:
            self._set_anon(d0)  # anon_vma_prepare(dst_vma)
        if s0 not in self.pages:
            raise MoveErrno(errno.ENOENT, -errno.ENOENT)
        sv, dv = self.pages[s0], self.pages[d0]
        svma, dvma = self._vma_at(s0), self._vma_at(d0)
        assert svma is not None and dvma is not None
        if sv.shm is not None or s0 + n > svma[1] or dv.shm is not None or d0 + n > dvma[1]:
            raise MoveErrno(errno.EINVAL, -errno.EINVAL)
        if sv.prot != dv.prot or not sv.prot & pt.PROT_WRITE or dv.uffd != 1:
            raise MoveErrno(errno.EINVAL, -errno.EINVAL)
        moved, err = 0, 0
        for i in range(n):
            d, s = self.pages[d0 + i], self.pages[s0 + i]
            if d.content is not None:
                err = errno.EEXIST
                break
            if s.content is None:
                if not mode & 2:  # UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
                    err = errno.ENOENT
                    break
                moved += 1
                continue
            content = s.content
            if isinstance(content, tuple):  # split_folio: every page becomes small
                fid = content[1]
                for k, q in self.pages.items():
                    if isinstance(q.content, tuple) and q.content[1] == fid:
                        token = q.content[0]
                        if self.split_zeropage and token not in self.written:
                            token = ZERO  # never written: the shared zero page
                        self.pages[k] = replace(q, content=token)
                content = self.pages[s0 + i].content
            self.pages[d0 + i] = replace(d, content=content)
            self.pages[s0 + i] = replace(self.pages[s0 + i], content=None)
            moved += 1
        if moved == n:
            return length
        if moved:
            raise MoveErrno(errno.EAGAIN, moved << self.shift)
        raise MoveErrno(err, -err)


class MoveErrno(Errno):
    """UFFDIO_MOVE's error and its ``move`` field."""

    def __init__(self, code: int, move: int) -> None:
        super().__init__(code)
        self.move = move
