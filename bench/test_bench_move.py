"""Groups move-pte, move-pmd, move-pud: simulated whole-region mremap.

CI runs these once (--benchmark-disable) as correctness checks; run with
``--benchmark-enable`` (and ``--huge`` for 256 GiB) to time them.
``python bench/move_speed.py`` prints the issue-3 figures with the kernel's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pagetab as pt

GIB = 1 << 30
FIX = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
PATHS = {
    "move-pte": ("linux-4.19", 4096),
    "move-pmd": ("linux-5.0", 2 << 20),
    "move-pud": ("linux-5.11", 0),
}


class PingPong:
    """A populated region moved back and forth between two addresses."""

    def __init__(self, gib: int, policy: str, off: int) -> None:
        self.size = gib * GIB
        self.a, self.b = (1 << 45) + off, 1 << 46
        self.mm = pt.AddressSpace("x86-64", cpus=4, policy=policy)
        self.mm.mmap(self.size, addr=self.a, flags=FIX)
        self.mm.madvise(self.a, self.size, pt.MADV_POPULATE_WRITE)
        rng = np.random.default_rng(1)
        for cpu in range(4):  # 4 CPUs in mm_cpumask, warm TLBs
            self.mm.access(self.a + rng.integers(0, self.size, 4096, dtype=np.uint64), cpu=cpu)
        self.at = self.a

    def move(self) -> pt.MoveStats:
        dst = self.b if self.at == self.a else self.a
        self.mm.mremap(self.at, self.size, self.size, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, dst)
        self.at = dst
        st = self.mm.last_move
        assert st is not None
        return st


@pytest.mark.parametrize("gib", [1, 16, 256])
@pytest.mark.parametrize("group", list(PATHS))
def test_move(benchmark: Any, huge: bool, group: str, gib: int) -> None:
    if gib == 256 and not huge:
        pytest.skip("256 GiB needs --huge (bench/move_speed.py measures it)")
    benchmark.group = group
    policy, off = PATHS[group]
    pp = PingPong(gib, policy, off)
    st = benchmark.pedantic(pp.move, rounds=5, iterations=1)
    pages = gib * GIB // 4096
    if group == "move-pte":
        assert st.ptes_moved == pages
    elif group == "move-pmd":
        assert st.normal_pmds_moved == pages // 512
    else:
        assert st.normal_puds_moved == gib
    assert st.unsafe_windows == 0
