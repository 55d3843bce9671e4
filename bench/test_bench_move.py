"""Groups move-pte, move-pmd, move-pud: simulated whole-region mremap.

CI runs these once (--benchmark-disable) as correctness checks; run with
``--benchmark-enable`` (and ``--huge`` for 256 GiB) to time them.
``python bench/move_speed.py`` prints the figures beside the kernel's.
"""

from __future__ import annotations

from typing import Any

import pytest

from pagetab.native import PingPong

GIB = 1 << 30
PATHS = {
    "move-pte": ("linux-4.19", 4096),
    "move-pmd": ("linux-5.0", 2 << 20),
    "move-pud": ("linux-5.11", 0),
}


@pytest.mark.parametrize("gib", [1, 16, 256])
@pytest.mark.parametrize("group", list(PATHS))
def test_move(benchmark: Any, huge: bool, group: str, gib: int) -> None:
    if gib == 256 and not huge:
        pytest.skip("256 GiB needs --huge (bench/move_speed.py measures it)")
    benchmark.group = group
    policy, off = PATHS[group]
    pp = PingPong(gib * GIB, off, policy, cpus=4, write=True, touch=4)
    st = benchmark.pedantic(pp.move, rounds=5, iterations=1)
    pages = gib * GIB // 4096
    if group == "move-pte":
        assert st.ptes_moved == pages
    elif group == "move-pmd":
        assert st.normal_pmds_moved == pages // 512
    else:
        assert st.normal_puds_moved == gib
    assert st.unsafe_windows == 0
