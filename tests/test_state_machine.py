"""A hypothesis state machine: random operation sequences driven through one
AddressSpace per policy preset (on a sampled arch), checking every invariant
after every step and that policies do not change the semantics: results,
errnos, VMAs and frames agree across all presets at every step.

One named exception, as in the kernel: a policy that moves PTEs one by one
(linux-4.18, linux-4.19) leaves the emptied PTE table behind where the
source stays mapped (MREMAP_DONTUNMAP), so a later fault there maps a 4K
page; a policy that moves the whole table leaves the PMD empty, and the
fault may install a THP. Once the frames of the two groups differ that way
(checked: a PMD block fully present in one, not in the other), frames are
compared within each group only (frame numbers diverge from then on).
See test_move_engine.py::test_dontunmap_source_faults_follow_the_table_left.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import pagetab as pt

BASE = 1 << 40


class PoliciesAgree(RuleBasedStateMachine):
    """Every preset policy sees the same operations; all must agree."""

    @initialize(arch=st.sampled_from(pt.archs()), thp=st.sampled_from(["always", "madvise"]))
    def setup(self, arch: str, thp: str) -> None:
        self.arch = pt.arch(arch)
        self.spaces = [pt.AddressSpace(arch, cpus=2, thp=thp, policy=p) for p in pt.policies()]
        self.page = self.arch.page_size
        self.pmd = self.arch.pmd_size
        self.window = 8 * self.pmd
        self.diverged = False  # the named exception above has happened

    def _addr(self, data: st.DataObject, span: int = 0) -> int:
        unit = data.draw(st.sampled_from([self.page, self.pmd]))
        n = max((self.window - span) // unit, 1)
        return BASE + data.draw(st.integers(0, n - 1)) * unit

    def _len(self, data: st.DataObject) -> int:
        return data.draw(st.sampled_from([1, 2, 16]).map(lambda k: k * self.page)
                         | st.sampled_from([1, 2]).map(lambda k: k * self.pmd))  # fmt: skip

    def _all(self, call: str, *args: int) -> None:
        outcomes = []
        for mm in self.spaces:
            try:
                outcomes.append(("ok", getattr(mm, call)(*args)))
            except OSError as e:
                outcomes.append(("err", e.errno))
        assert all(o == outcomes[0] for o in outcomes), (call, args, outcomes)

    @rule(data=st.data(), shared=st.booleans(), prot=st.sampled_from([1, 3]))
    def mmap(self, data: st.DataObject, shared: bool, prot: int) -> None:
        length = self._len(data)
        flags = (pt.MAP_SHARED if shared else pt.MAP_PRIVATE) | pt.MAP_ANONYMOUS | pt.MAP_FIXED
        self._all("mmap", length, self._addr(data, length), prot, flags)

    @rule(data=st.data(), advice=st.sampled_from([pt.MADV_POPULATE_WRITE, pt.MADV_POPULATE_READ,
                                                  pt.MADV_DONTNEED, pt.MADV_HUGEPAGE]))  # fmt: skip
    def madvise(self, data: st.DataObject, advice: int) -> None:
        length = self._len(data)
        self._all("madvise", self._addr(data, length), length, advice)

    @rule(data=st.data(), prot=st.sampled_from([0, 1, 3]))
    def mprotect(self, data: st.DataObject, prot: int) -> None:
        length = self._len(data)
        self._all("mprotect", self._addr(data, length), length, prot)

    @rule(data=st.data())
    def munmap(self, data: st.DataObject) -> None:
        length = self._len(data)
        self._all("munmap", self._addr(data, length), length)

    @rule(data=st.data(), flags=st.sampled_from([3, 3, 1, 0, 5]))
    def mremap(self, data: st.DataObject, flags: int) -> None:
        old = self._len(data)
        new = old if flags & 4 else self._len(data)
        src = self._addr(data, old)
        self._all("mremap", src, old, new, flags, self._addr(data, new) + 64 * self.pmd)

    @invariant()
    def agree_and_sound(self) -> None:
        if not hasattr(self, "spaces"):
            return
        first = self.spaces[0]
        for mm in self.spaces:
            mm.check()
            assert mm.vmas() == first.vmas()
        groups = [[mm for mm in self.spaces if mm.policy.move_pmd == g] for g in (False, True)]
        for v in first.vmas():
            frames = [[mm.frames(v.start, v.length) for mm in g] for g in groups]
            for fs in frames:
                assert all((f == fs[0]).all() for f in fs)
            if not self.diverged and not (frames[0][0] == frames[1][0]).all():
                self.diverged = True
                assert self._thp_versus_ptes(v.start, frames[0][0], frames[1][0]), v

    def _thp_versus_ptes(self, start: int, a: np.ndarray, b: np.ndarray) -> bool:
        """Some PMD block is fully present in one group's frames and not in
        the other's (a THP where the other faulted 4K pages)."""
        per = self.pmd // self.page
        first = (-(start // self.page)) % per
        for k in range(first, a.size - per + 1, per):
            pa, pb = (a[k : k + per] >= 0).all(), (b[k : k + per] >= 0).all()
            if pa != pb:
                return True
        return False


TestPoliciesAgree = PoliciesAgree.TestCase
TestPoliciesAgree.settings = settings(max_examples=200, stateful_step_count=12, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
