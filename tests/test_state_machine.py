"""A hypothesis state machine: random operation sequences driven through one
AddressSpace per policy preset (on a sampled arch), checking every invariant
after every step and that policies do not change the semantics: results,
errnos, VMAs and frames agree across all presets at every step.

Two named exceptions, as in the kernel. First, a pure move (MREMAP_FIXED,
old_size == new_size) whose range is not one VMA moves each VMA in turn
from Linux 6.17 (multi_vma_move) and is EFAULT, changing nothing, before:
the older presets then make the same moves one VMA at a time and must
reach the same result and state. A VMA registered with a userfaultfd
(every space has one, with UFFD_FEATURE_EVENT_REMAP, so that registered
VMAs keep their registration through moves under every preset) moves only
alone there (vma_multi_allowed, d50dabff4d1f): the one-at-a-time moves
stop where 6.17 stops. (Remap events came in 4.11 and anonymous WP
registration in 5.7: the older presets accept here what their kernels
would refuse, so that all see the same operations.) Second, a policy that moves PTEs one by one
(linux-4.18, linux-4.19) leaves the emptied PTE table behind where the
source stays mapped (MREMAP_DONTUNMAP), so a later fault there maps a 4K
page; a policy that moves the whole table leaves the PMD empty, and the
fault may install a THP. Third, a policy that reclaims the PTE tables
MADV_DONTNEED empties whole (pt_reclaim, 6.16 on x86-64) leaves their PMD
entries empty too, so a later fault there may install a THP where the
others, whose empty tables remain, fault 4K pages. The machine records
those PMD blocks (and follows them when later moves carry their pages
elsewhere); there, and only there, the policies that leave an empty PMD
may map pages the others do not. Every other page must agree across all
policies at every step. Frame numbers
themselves diverge once a THP was allocated on one side and a 4K page on
the other, so frames are compared by identity (which pages share a frame,
which map the zero page) across groups, and exactly within each.
See test_move_engine.py::test_dontunmap_source_faults_follow_the_table_left.
"""

from __future__ import annotations

import errno

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import pagetab as pt

BASE = 1 << 40
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED


def _identities(f: np.ndarray) -> np.ndarray:
    """Frames as identities: each real frame becomes 1 + the index of the
    first page mapping it; absent (-1) and the zero page (0) stay."""
    out = f.copy()
    real = np.flatnonzero(f > pt.ZERO_FRAME)
    if real.size:
        _, first, inverse = np.unique(f[real], return_index=True, return_inverse=True)
        out[real] = real[first][inverse] + 1
    return out


class PoliciesAgree(RuleBasedStateMachine):
    """Every preset policy sees the same operations; all must agree."""

    @initialize(
        arch=st.sampled_from(pt.archs()),
        thp=st.sampled_from(["always", "madvise"]),
        mthp=st.sampled_from([{}, {2: "always"}, {4: "always", 3: "madvise"}]),
    )
    def setup(self, arch: str, thp: str, mthp: dict[int, str]) -> None:
        self.arch = pt.arch(arch)
        # large folios too (orders from 16K on 4K pages), as the space allows
        sizes = {self.arch.page_size << o: m for o, m in mthp.items()
                 if self.arch.page_size << o < self.arch.pmd_size}  # fmt: skip
        self.spaces = [pt.AddressSpace(arch, cpus=2, thp=thp, policy=p, thp_sizes=sizes)
                       for p in pt.policies()]  # fmt: skip
        self.uffds = [mm.userfaultfd(pt.UFFD_FEATURE_EVENT_REMAP) for mm in self.spaces]
        self.page = self.arch.page_size
        self.pmd = self.arch.pmd_size
        self.window = 8 * self.pmd
        # [start, end) ranges where the table shapes of the two groups may
        # differ: PMD blocks under a MREMAP_DONTUNMAP source, and wherever
        # later moves carried their pages
        self.excused: list[tuple[int, int]] = []

    def _addr(self, data: st.DataObject, span: int = 0) -> int:
        unit = data.draw(st.sampled_from([self.page, self.pmd]))
        n = max((self.window - span) // unit, 1)
        return BASE + data.draw(st.integers(0, n - 1)) * unit

    def _len(self, data: st.DataObject) -> int:
        return data.draw(st.sampled_from([1, 2, 16]).map(lambda k: k * self.page)
                         | st.sampled_from([1, 2]).map(lambda k: k * self.pmd))  # fmt: skip

    def _all(self, call: str, *args: int) -> tuple[str, object]:
        """The call on every space; all outcomes must agree. Returns it."""
        outcomes: list[tuple[str, object]] = []
        for mm in self.spaces:
            try:
                outcomes.append(("ok", getattr(mm, call)(*args)))
            except OSError as e:
                outcomes.append(("err", e.errno))
        assert all(o == outcomes[0] for o in outcomes), (call, args, outcomes)
        return outcomes[0]

    def _mremap(self, src: int, old: int, new: int, flags: int, dst: int) -> None:
        if flags & pt.MREMAP_FIXED and old == new and not self._in_one_vma(src, old):
            self._multi_vma_move(src, old, flags, dst)
            return
        result, at = self._all("mremap", src, old, new, flags, dst)
        if result == "ok":
            assert isinstance(at, int)
            self._moved(src, old, new, flags, at)

    def _in_one_vma(self, start: int, length: int) -> bool:
        v = self.spaces[0].find_vma(start)
        return v is not None and v.start <= start and start + length <= v.end

    def _multi_vma_move(self, src: int, length: int, flags: int, dst: int) -> None:
        """The second named difference: a pure move whose range is not one
        VMA moves each VMA in turn since 6.17 (multi_vma_move, remap_move)
        and is EFAULT before, with nothing changed. The older presets then
        make the same moves one VMA at a time, which every kernel allows,
        up to where 6.17 stops at a registered VMA, and must reach the same
        result and state."""
        end = src + length
        vmas = [v for v in self.spaces[0].vmas() if v.start < end and v.end > src]
        pieces = [(max(v.start, src), min(v.end, end)) for v in vmas]
        # vma_multi_allowed of each VMA as remap_move meets it (the VMAs do
        # not change before then): a registered one only alone (first, and
        # reaching the range's end)
        armed = [bool(v.uffd) for v in vmas]
        new = [mm for mm in self.spaces if mm.policy.multi_vma_move]
        outcomes = []
        moved: int | None = None  # parts moved, as the one-at-a-time moves found
        for mm in self.spaces:
            before = mm.vmas()
            try:
                outcomes.append(("ok", mm.mremap(src, length, length, flags, dst)))
                assert mm in new, "a pre-6.17 preset moved several VMAs"
            except OSError as e:
                outcomes.append(("err", e.errno))
                assert mm.vmas() == before or mm in new  # (6.17: VMAs before a failure moved)
                if mm not in new and e.errno == errno.EFAULT:  # (else: the arguments' error)
                    outcomes[-1], moved = self._one_at_a_time(mm, pieces, armed, src, end,
                                                              flags, dst)  # fmt: skip
        assert all(o == outcomes[0] for o in outcomes), ("mremap", src, length, outcomes)
        if moved is None:  # every preset moved, or none (the arguments' error)
            moved = len(pieces) if outcomes[0][0] == "ok" else 0
        last_end = pieces[0][0] if pieces else src
        target = dst
        for i, (lo, hi) in enumerate(pieces[:moved]):
            target += lo - last_end if i else 0
            last_end = hi
            self._moved(lo, hi - lo, hi - lo, flags, target)
            target += hi - lo

    @staticmethod
    def _one_at_a_time(mm: pt.AddressSpace, pieces: list[tuple[int, int]], armed: list[bool],
                       src: int, end: int, flags: int,
                       dst: int) -> tuple[tuple[str, object], int]:  # fmt: skip
        """remap_move by hand: each VMA's part moved alone, the gaps kept,
        stopping (EFAULT) at a registered VMA that is not alone. Returns the
        outcome and how many parts moved."""
        if not pieces or pieces[0][0] > src:
            return ("err", errno.EFAULT), 0
        target, last_end = dst, pieces[0][0]
        for i, (lo, hi) in enumerate(pieces):
            if armed[i] and (i or hi < end):
                return ("err", errno.EFAULT), i
            target += lo - last_end if i else 0
            last_end = hi
            try:
                target = mm.mremap(lo, hi - lo, hi - lo, flags, target) + (hi - lo)
            except OSError as e:
                return ("err", e.errno), i
        return ("ok", dst), len(pieces)

    def _moved(self, src: int, old: int, new: int, flags: int, at: int) -> None:
        """Follow the excused blocks through a move that went through."""
        moved = min(old, new)
        if at != src and moved:  # the pages moved: what they were excused for moves along
            shift = at - src
            self.excused += [(max(s, src) + shift, min(e, src + moved) + shift)
                             for s, e in self.excused if s < src + moved and src < e]  # fmt: skip
        if flags & pt.MREMAP_DONTUNMAP:
            mask = self.pmd - 1
            self.excused.append((src & ~mask, (src + old + mask) & ~mask))

    @rule(data=st.data(), shared=st.booleans(), prot=st.sampled_from([1, 3]))
    def mmap(self, data: st.DataObject, shared: bool, prot: int) -> None:
        length = self._len(data)
        flags = (pt.MAP_SHARED if shared else pt.MAP_PRIVATE) | pt.MAP_ANONYMOUS | pt.MAP_FIXED
        self._all("mmap", length, self._addr(data, length), prot, flags)

    @rule(data=st.data(), advice=st.sampled_from([pt.MADV_POPULATE_WRITE, pt.MADV_POPULATE_READ,
                                                  pt.MADV_DONTNEED, pt.MADV_HUGEPAGE]))  # fmt: skip
    def madvise(self, data: st.DataObject, advice: int) -> None:
        length = self._len(data)
        self.madvise_at(self._addr(data, length), length, advice)

    def madvise_at(self, addr: int, length: int, advice: int) -> None:
        result, _ = self._all("madvise", addr, length, advice)
        if advice == pt.MADV_DONTNEED and result == "ok":
            # the third named divergence: the PMD blocks whose tables it empties whole
            mask = self.pmd - 1
            lo, hi = (addr + mask) & ~mask, (addr + length) & ~mask
            if lo < hi:
                self.excused.append((lo, hi))

    @rule(data=st.data())
    def written_then_hugepage(self, data: st.DataObject) -> None:
        # a private region written in 4K pages, then given MADV_HUGEPAGE: the
        # set-up under which a later MREMAP_DONTUNMAP and a fault at its
        # source reach the named divergence (rare from the single rules)
        length = data.draw(st.sampled_from([self.pmd, 2 * self.pmd]))
        addr = BASE + data.draw(st.integers(0, 8 - length // self.pmd)) * self.pmd
        self._all("mmap", length, addr, pt.PROT_READ | pt.PROT_WRITE, FIX)
        self._all("madvise", addr, length, pt.MADV_NOHUGEPAGE)  # 4K pages under thp=always too
        self._all("madvise", addr, length, pt.MADV_POPULATE_WRITE)
        self._all("madvise", addr, length, pt.MADV_HUGEPAGE)

    @rule(data=st.data())
    def dontunmap_then_fault(self, data: st.DataObject) -> None:
        # a PMD block of a mapping moved with MREMAP_DONTUNMAP, then a write
        # fault at the source: where the named divergence arises
        pmd = self.pmd
        blocks = [b for v in self.spaces[0].vmas()
                  for b in range(-(-v.start // pmd) * pmd, v.end - pmd + 1, pmd)]  # fmt: skip
        if not blocks:
            return
        src = data.draw(st.sampled_from(blocks))
        dst = BASE + (64 + data.draw(st.integers(0, 7))) * pmd
        flags = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED | pt.MREMAP_DONTUNMAP
        self._mremap(src, pmd, pmd, flags, dst)
        at = src + data.draw(st.integers(0, pmd // self.page - 1)) * self.page
        self._all("madvise", at, self.page, pt.MADV_POPULATE_WRITE)

    @rule(data=st.data(), prot=st.sampled_from([0, 1, 3]))
    def mprotect(self, data: st.DataObject, prot: int) -> None:
        length = self._len(data)
        self._all("mprotect", self._addr(data, length), length, prot)

    @rule(data=st.data())
    def munmap(self, data: st.DataObject) -> None:
        length = self._len(data)
        self._all("munmap", self._addr(data, length), length)

    def _uffd(self, call: str, *args: int) -> None:
        """A UFFDIO_ call on every space's userfaultfd; all must agree."""
        outcomes: list[tuple[str, int]] = []
        for u in self.uffds:
            try:
                getattr(u, call)(*args)
                outcomes.append(("ok", 0))
            except OSError as e:
                outcomes.append(("err", e.errno))
        assert all(o == outcomes[0] for o in outcomes), (call, args, outcomes)

    @rule(data=st.data(), register=st.booleans())
    def uffd_register(self, data: st.DataObject, register: bool) -> None:
        length = self._len(data)
        addr = self._addr(data, length)
        if register:
            self._uffd("register", addr, length, pt.UFFDIO_REGISTER_MODE_WP)
        else:
            self._uffd("unregister", addr, length)

    @rule(data=st.data())
    def registered_multi_vma_move(self, data: st.DataObject) -> None:
        # two to four VMAs in a row (alternating protection, so they do not
        # merge), some with gaps, one registered, then a pure move over
        # them: where vma_multi_allowed decides (rare from the single rules)
        page, at = self.page, BASE + 32 * self.pmd
        spans = []
        for k in range(data.draw(st.integers(2, 4))):
            length = data.draw(st.sampled_from([1, 4, 16])) * page
            prot = pt.PROT_READ | pt.PROT_WRITE if k % 2 == 0 else pt.PROT_READ
            self._all("mmap", length, at, prot, FIX)
            self._all("madvise", at, length, pt.MADV_POPULATE_READ)
            spans.append((at, length))
            at += length + data.draw(st.sampled_from([0, page]))
        s, length = data.draw(st.sampled_from(spans))
        self._uffd("register", s, length, pt.UFFDIO_REGISTER_MODE_WP)
        start = spans[0][0] + data.draw(st.sampled_from([0, page])) % spans[0][1]
        end = max(data.draw(st.sampled_from([at, spans[-1][0] + page])), start + page)
        self._mremap(start, end - start, end - start, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED,
                     BASE + 64 * self.pmd)  # fmt: skip

    @rule(data=st.data(), flags=st.sampled_from([3, 3, 1, 0, 5, 7]))
    def mremap(self, data: st.DataObject, flags: int) -> None:
        old = self._len(data)
        new = old if flags & 4 else self._len(data)
        src = self._addr(data, old)
        self._mremap(src, old, new, flags, self._addr(data, new) + 64 * self.pmd)

    @invariant()
    def agree_and_sound(self) -> None:
        if not hasattr(self, "spaces"):
            return
        first = self.spaces[0]
        for mm in self.spaces:
            mm.check()
            assert mm.vmas() == first.vmas()
        vmas = first.vmas()
        if not vmas:
            return

        # the table shapes each named divergence can give: PTE-by-PTE moves,
        # table moves, table moves with DONTNEED's table reclaim
        def shape(mm: pt.AddressSpace) -> tuple[bool, bool]:
            return mm.policy.move_pmd, mm.policy.pt_reclaim and mm.arch.supports_pt_reclaim

        keys = sorted({shape(mm) for mm in self.spaces})
        groups = [[mm for mm in self.spaces if shape(mm) == k] for k in keys]
        frames = [
            [np.concatenate([mm.frames(v.start, v.length) for v in vmas]) for mm in g]
            for g in groups
        ]
        for fs in frames:  # the same frame numbers within a group
            assert all((f == fs[0]).all() for f in fs)
        orders = [
            [np.concatenate([mm.tables.folio_orders(v.start, v.end)[1] for v in vmas]) for mm in g]
            for g in groups
        ]
        for os_ in orders:  # and the same folios
            assert all((o == os_[0]).all() for o in os_)
        addrs = np.concatenate([np.arange(v.start, v.end, self.page, dtype=np.int64) for v in vmas])
        excused = np.zeros(addrs.size, dtype=bool)
        for s, e in self.excused:
            excused |= (addrs >= s) & (addrs < e)
        # across groups: frames by identity, folios exactly, but where excused;
        # there a group that leaves more PMDs empty maps at least what one
        # before it does (a THP where the other faulted 4K pages)
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                fa, fb = frames[a][0], frames[b][0]
                differ = (_identities(fa) != _identities(fb)) | (orders[a][0] != orders[b][0])
                assert not (differ & ~excused).any(), (
                    "policies disagree at", keys[a], keys[b],
                    [hex(x) for x in addrs[differ & ~excused][:4]],
                )  # fmt: skip
                lost = excused & (fa >= 0) & (fb < 0)
                assert not lost.any(), ("unexplained divergence at",
                                        [hex(x) for x in addrs[lost][:4]])  # fmt: skip


TestPoliciesAgree = PoliciesAgree.TestCase
TestPoliciesAgree.settings = settings(max_examples=200, stateful_step_count=12, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def _diverged_machine() -> PoliciesAgree:
    """The named divergence, step by step: 4K pages written, MADV_HUGEPAGE,
    a MREMAP_DONTUNMAP move, a fault at the source (a THP where the tables
    moved, one 4K page where the PTEs did), then a plain move of the moved
    pages."""
    m = PoliciesAgree()
    m.setup(arch="x86-64", thp="madvise", mthp={})
    size = 4 << 20
    m._all("mmap", size, BASE, pt.PROT_READ | pt.PROT_WRITE, FIX)
    m._all("madvise", BASE, size, pt.MADV_POPULATE_WRITE)
    m._all("madvise", BASE, size, pt.MADV_HUGEPAGE)
    flags = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
    m._mremap(BASE, size, size, flags | pt.MREMAP_DONTUNMAP, BASE + (1 << 30))
    m._all("madvise", BASE, 4096, pt.MADV_POPULATE_WRITE)
    present = [int((mm.frames(BASE, 2 << 20) >= 0).sum()) for mm in m.spaces]
    assert present == [1 if not mm.policy.move_pmd else 512 for mm in m.spaces]
    m.agree_and_sound()
    m._mremap(BASE + (1 << 30), size, size, flags, BASE + (2 << 30))
    m.agree_and_sound()
    return m


def test_named_divergence_is_excused_where_it_happened() -> None:
    m = _diverged_machine()
    assert m.excused == [(BASE, BASE + (4 << 20))]
    # a fault elsewhere after the divergence is still compared, and agrees
    m._all("madvise", BASE + (2 << 30), 4096, pt.MADV_DONTNEED)
    m._all("madvise", BASE + (2 << 30), 4096, pt.MADV_POPULATE_WRITE)
    m.agree_and_sound()


@pytest.mark.parametrize(
    ("where", "which"),
    [
        (BASE + (2 << 30), True),  # outside the excused block, table-moving side
        (BASE + (2 << 30) + (3 << 20), False),  # outside, PTE-by-PTE side
        (BASE, True),  # inside, but the table-moving side lost the 4K page's twin
    ],
)
def test_later_divergences_are_still_caught(where: int, which: bool) -> None:
    # comparisons go on after the named divergence: a page dropped by one
    # group only is reported (simulating a policy bug)
    m = _diverged_machine()
    for mm in m.spaces:
        if mm.policy.move_pmd == which:
            mm.madvise(where, 4096, pt.MADV_DONTNEED)
    with pytest.raises(AssertionError, match=r"disagree|unexplained"):
        m.agree_and_sound()


@pytest.mark.parametrize("mutate", [False, True])
def test_registered_multi_vma_move_is_checked(monkeypatch: pytest.MonkeyPatch,
                                              mutate: bool) -> None:  # fmt: skip
    # a pure move over two VMAs, the second registered: 6.17+ moves the
    # first and fails (EFAULT) at the second, as the one-at-a-time moves of
    # the older presets do; a kernel rule dropped is caught
    if mutate:
        monkeypatch.setattr("pagetab.mremap.vma_multi_allowed", lambda vma: True)
    m = PoliciesAgree()
    m.setup(arch="x86-64", thp="madvise", mthp={})
    page = 4096
    m._all("mmap", 4 * page, BASE, pt.PROT_READ | pt.PROT_WRITE, FIX)
    m._all("mmap", 4 * page, BASE + 4 * page, pt.PROT_READ, FIX)
    m._all("madvise", BASE, 8 * page, pt.MADV_POPULATE_READ)
    m._uffd("register", BASE + 4 * page, 4 * page, pt.UFFDIO_REGISTER_MODE_WP)
    flags = pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED
    if mutate:
        with pytest.raises(AssertionError, match="mremap"):
            m._mremap(BASE, 8 * page, 8 * page, flags, BASE + (1 << 30))
        return
    m._mremap(BASE, 8 * page, 8 * page, flags, BASE + (1 << 30))
    m.agree_and_sound()
    assert [(v.start, v.end) for v in m.spaces[-1].vmas()] == [
        (BASE + 4 * page, BASE + 8 * page),
        (BASE + (1 << 30), BASE + (1 << 30) + 4 * page),
    ]


def test_dontneed_reclaim_divergence_is_excused_where_it_happened() -> None:
    """The third named divergence, step by step: 4K pages written, emptied
    by MADV_DONTNEED, MADV_HUGEPAGE, a fault (a THP where the emptied PTE
    table was reclaimed, one 4K page where it stays)."""
    m = PoliciesAgree()
    m.setup(arch="x86-64", thp="madvise", mthp={})
    size = 2 << 20
    m._all("mmap", size, BASE, pt.PROT_READ | pt.PROT_WRITE, FIX)
    m._all("madvise", BASE, size, pt.MADV_POPULATE_WRITE)
    m.madvise_at(BASE, size, pt.MADV_DONTNEED)
    m._all("madvise", BASE, size, pt.MADV_HUGEPAGE)
    m._all("madvise", BASE, 4096, pt.MADV_POPULATE_WRITE)
    reclaims = [mm.policy.pt_reclaim for mm in m.spaces]
    present = [int((mm.frames(BASE, size) >= 0).sum()) for mm in m.spaces]
    assert present == [512 if r else 1 for r in reclaims] and any(reclaims)
    m.agree_and_sound()
    assert m.excused == [(BASE, BASE + size)]
    # outside the emptied block the policies are still compared: a page
    # faulted by the reclaiming presets alone is reported
    m._all("mmap", 4096, BASE + (4 << 20), pt.PROT_READ | pt.PROT_WRITE, FIX)
    for mm in m.spaces:
        if mm.policy.pt_reclaim:
            mm.madvise(BASE + (4 << 20), 4096, pt.MADV_POPULATE_WRITE)
    with pytest.raises(AssertionError, match="disagree"):
        m.agree_and_sound()
