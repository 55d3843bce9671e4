"""Native beside simulated: groups populate, move-pte, move-pmd, move-pud, access.

Each test times the simulated operation with pytest-benchmark and, where
the host probe can, runs the real one at the same size, storing both in
``extra_info`` (saved with --benchmark-json). ``bench/native_vs_sim.py``
--from-json prints the ratio table from that file. 1 GiB always; 16, 64
and 256 GiB with --huge (zero-page regions need no memory, but take seconds
to populate natively: about 30 s at 256 GiB).
"""

from __future__ import annotations

from typing import Any

import pytest

from pagetab import host
from pagetab.native import PATHS, compare_access, compare_move, compare_populate, sim_move_times

GIB = 1 << 30


@pytest.mark.parametrize("gib", [1, 16, 64, 256])
@pytest.mark.parametrize("group", ["populate", *PATHS, "access"])
def test_native_vs_sim(benchmark: Any, huge: bool, group: str, gib: int) -> None:
    if gib > 1 and not huge:
        pytest.skip("16 GiB and more need --huge (bench/native_vs_sim.py measures them)")
    benchmark.group = group
    size = gib * GIB
    if group == "populate":
        c = benchmark.pedantic(compare_populate, args=(size, 1), rounds=1, iterations=1)
    elif group == "access":
        c = benchmark.pedantic(compare_access, args=(size, 200_000, 1), rounds=1, iterations=1)
    else:
        benchmark.pedantic(sim_move_times, args=(size, PATHS[group], 3), rounds=1, iterations=1)
        c = compare_move(group, size, repeats=3)
    benchmark.extra_info.update(size=size, sim_ns=c.sim_ns, native_ns=c.native_ns, ratio=c.ratio)
    assert c.sim_ns > 0
    if host.available()[0]:
        assert c.native_ns is not None and c.native_ns > 0
