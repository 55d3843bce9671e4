"""CPUs of mm_cpumask that are not running the process: lazy TLB mode
(x86 skips their flush IPIs unless the policy's flush_lazy) and CPUs that
switched to another process (they leave mm_cpumask)."""

from __future__ import annotations

import pytest

import pagetab as pt

G, M = 1 << 30, 1 << 20
FIXED = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
SRC, DST = 1 << 40, 1 << 41


def space(arch: str, flush_lazy: bool) -> pt.AddressSpace:
    mm = pt.AddressSpace(arch, cpus=4, policy=pt.policy("linux-6.8").replace(flush_lazy=flush_lazy))
    mm.mmap(4 * M, SRC, flags=FIXED)
    mm.madvise(SRC, 4 * M, pt.MADV_POPULATE_WRITE)
    for cpu in (1, 2, 3):
        mm.access([SRC + cpu * 4096], cpu=cpu)
    return mm


def move(mm: pt.AddressSpace) -> pt.MoveStats:
    mm.mremap(SRC, 4 * M, 4 * M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, DST)
    assert mm.last_move is not None
    return mm.last_move


# the two moves' flushes, then the unmap's flush of the freed source tables,
# which reaches lazy CPUs under either setting (flush_freed_lazy): under
# flush_lazy the lazy CPU left the mask at its second IPI
@pytest.mark.parametrize(("flush_lazy", "ipis", "skipped"), [(False, 2 + 2, 2), (True, 4 + 1, 0)])
def test_x86_lazy_cpus_get_ipis_only_under_flush_lazy(flush_lazy: bool, ipis: int,
                                                      skipped: int) -> None:  # fmt: skip
    mm = space("x86-64", flush_lazy)
    mm.switch_out(2)  # lazy
    mm.switch_out(3, lazy=False)  # another process: leaves mm_cpumask
    assert mm.mm_cpumask == [0, 1, 2] and mm.lazy_cpus == [2]
    st = move(mm)  # two whole-PMD moves, one flush each, to CPUs 1 and 2
    assert st.flush_calls == 2 and st.unmap_flushes == 1
    assert (st.flush_ops["ipi"], st.flush_ops["lazy_skipped"]) == (ipis, skipped)
    # no stale translation survives on any CPU: the lazy one flushes when it
    # loads the mm again, the one that left flushed when it left
    assert mm.tlbs.count_range(SRC, SRC + 4 * M) == 0  # on every CPU
    mm.access([DST], cpu=2)  # it runs the process again
    assert mm.lazy_cpus == [] and 2 in mm.mm_cpumask


def test_lazy_cpus_change_nothing_where_flushes_are_broadcast_or_fenced() -> None:
    # arm64 broadcasts TLBIs (no IPIs); riscv fences every hart of the mask
    for arch in ("arm64-4k", "riscv64-sv48"):
        stats = []
        for lazy in (False, True):
            mm = space(arch, False)
            if lazy:
                mm.switch_out(2)
            stats.append(move(mm).flush_ops)
        assert stats[0] == stats[1], arch


def test_run_move_lazy_cpus() -> None:
    run = [pt.run_move(G, "x86-64", "linux-6.8", cpus=4, lazy_cpus=k, dst_align="pmd", touch=0)
           for k in (0, 2)]  # fmt: skip
    # 512 PMD flushes, then the freed tables' flush, which IPIs lazy CPUs too
    assert [r.flush_ops["ipi"] for r in run] == [3 * 512 + 3, 512 + 3]
    assert run[1].flush_ops["lazy_skipped"] == 2 * 512 and run[1].lazy_cpus == 2
    assert run[1].estimated_ns < run[0].estimated_ns
    lazy_ipi = pt.run_move(G, "x86-64", pt.policy("linux-6.8").replace(flush_lazy=True),
                           cpus=4, lazy_cpus=2, dst_align="pmd", touch=0)  # fmt: skip
    # the first IPI sends a lazy CPU to init_mm, the second finds another
    # mm loaded and clears its mask bit (6.14+): two IPIs each, not 512
    assert lazy_ipi.flush_ops["ipi"] == 512 + 2 * 2 + 1


def test_bad_lazy_arguments() -> None:
    mm = space("x86-64", False)
    with pytest.raises(ValueError, match="makes the system calls"):
        mm.switch_out(0)
    with pytest.raises(ValueError, match="cpu"):
        mm.switch_out(4)
    with pytest.raises(TypeError):
        mm.switch_out(1, lazy="yes")  # type: ignore[arg-type]
    assert mm.lazy_cpus == [] and mm.mm_cpumask == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="lazy_cpus"):
        pt.run_move(G, cpus=2, lazy_cpus=2)
    with pytest.raises(ValueError, match=r"cpus must be in 1\.\.256"):
        pt.run_move(G, cpus=0)
    fresh = pt.AddressSpace("x86-64", cpus=4)
    with pytest.raises(ValueError, match="not running this process"):
        fresh.switch_out(3)
    assert fresh.mm_cpumask == [0] and fresh.lazy_cpus == []
    with pytest.raises(TypeError):
        pt.policy("linux-6.8").replace(flush_lazy=1)


def test_switch_mm_runs_a_cpu_without_an_access() -> None:
    mm = pt.AddressSpace("x86-64", cpus=3)
    mm.switch_mm(2)
    assert mm.mm_cpumask == [0, 2] and mm.lazy_cpus == []
    mm.switch_out(2, lazy=True)
    assert mm.lazy_cpus == [2]
    mm.switch_mm(2)  # back from lazy TLB mode
    assert mm.lazy_cpus == [] and mm.mm_cpumask == [0, 2]
    with pytest.raises(ValueError, match="switch_mm: cpu"):
        mm.switch_mm(3)
    with pytest.raises(TypeError):
        mm.switch_mm(True)
    assert mm.mm_cpumask == [0, 2]
