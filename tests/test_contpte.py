"""arm64 contiguous PTEs (Linux 6.9+) and mremap's PTE batching (6.17):
where PTE_CONT is set and cleared, and what a move of large folios costs
in unfolds, folds and batches under linux-6.16 and linux-6.17."""

from __future__ import annotations

import pytest

import pagetab as pt
from pagetab._tables import CONT

K, M = 1 << 10, 1 << 20
FIXED = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED
BASE = 1 << 40


def cont_pages(mm: pt.AddressSpace, addr: int, length: int) -> list[int]:
    """Page indexes of [addr, addr + length) whose PTE has PTE_CONT."""
    return [i for i in range(length // mm.page_size)
            if mm.tables.entry(addr + i * mm.page_size)[1] & CONT]  # fmt: skip


def folios_of(arch: str, policy: str, size: int = 64 * K, length: int = M) -> pt.AddressSpace:
    mm = pt.AddressSpace(arch, policy=policy, thp_sizes={size: "always"})
    mm.mmap(length, BASE, flags=FIXED)
    mm.madvise(BASE, length, pt.MADV_POPULATE_WRITE)
    return mm


@pytest.mark.parametrize(("arch", "policy", "size", "folded"), [
    ("arm64-4k", "linux-6.16", 64 * K, True), ("arm64-4k", "linux-6.17", 128 * K, True),
    ("arm64-4k", "linux-6.17", 32 * K, False),  # smaller than a block (16 x 4K)
    ("arm64-4k", "linux-6.8", 64 * K, False),  # before 6.9
    ("x86-64", "linux-6.17", 64 * K, False),  # no contiguous bit
])  # fmt: skip
def test_faults_fold_whole_blocks(arch: str, policy: str, size: int, folded: bool) -> None:
    mm = folios_of(arch, policy, size)
    assert len(cont_pages(mm, BASE, M)) == (256 if folded else 0)


def test_partial_changes_unfold_only_the_blocks_they_cut() -> None:
    mm = folios_of("arm64-4k", "linux-6.17")
    mm.munmap(BASE + 4 * K, 4 * K)  # cuts block 0
    mm.mprotect(BASE + 64 * K, 64 * K, pt.PROT_READ)  # block 1 whole: stays folded
    mm.mprotect(BASE + 136 * K, 8 * K, pt.PROT_READ)  # cuts block 2
    cont = set(cont_pages(mm, BASE, M))
    assert not cont & set(range(0, 16)) and not cont & set(range(32, 48))
    assert set(range(16, 32)) <= cont and set(range(48, 256)) <= cont
    assert mm.tables.contpte_unfolds == 2
    # the cut block's protections made uniform again: it folds again
    mm.mprotect(BASE + 128 * K, 64 * K, pt.PROT_READ)
    assert set(range(32, 48)) <= set(cont_pages(mm, BASE, M))
    mm.check()


def test_split_thp_is_folded() -> None:
    mm = pt.AddressSpace("arm64-4k", thp="always", policy="linux-6.17")
    mm.mmap(2 * M, BASE, flags=FIXED)
    mm.madvise(BASE, 2 * M, pt.MADV_POPULATE_WRITE)
    mm.munmap(BASE, 64 * K)  # __split_huge_pmd: set_ptes of 512 entries
    assert len(cont_pages(mm, BASE + 64 * K, 2 * M - 64 * K)) == 512 - 16


@pytest.mark.parametrize(
    ("policy", "dst_off", "unfolds", "folds", "batches", "batched", "dst_cont"), [
        ("linux-6.16", M, 16, 16, 0, 0, 256),  # each block unfolded, moved, refolded
        ("linux-6.16", M + 4 * K, 16, 0, 0, 0, 0),  # misaligned: nothing refolds
        ("linux-6.17", M, 0, 0, 16, 256, 256),  # a batch per folio, no unfold
        # misaligned: the destination's PMD boundary ends the first extent one
        # page before the last folio ends, so that batch (15 PTEs) cuts its
        # block, which get_and_clear_full_ptes unfolds; the last PTE moves alone
        ("linux-6.17", M + 4 * K, 1, 0, 16, 255, 0),
        ("linux-6.8", M, 0, 0, 0, 0, 0),
    ])  # fmt: skip
def test_move_of_64k_folios(policy: str, dst_off: int, unfolds: int, folds: int, batches: int,
                            batched: int, dst_cont: int) -> None:  # fmt: skip
    mm = folios_of("arm64-4k", policy)
    frames = mm.frames(BASE, M)
    mm.mremap(BASE, M, M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, BASE + dst_off)
    st = mm.last_move
    assert st is not None
    assert (st.contpte_unfolds, st.contpte_folds, st.pte_batches) == (unfolds, folds, batches)
    assert st.ptes_batched == batched and st.ptes_moved == 256
    assert len(cont_pages(mm, BASE + dst_off, M)) == dst_cont
    assert (mm.frames(BASE + dst_off, M) == frames).all()  # policies change costs only
    # each convert flushes its block: 16 more TLBIs
    assert st.flush_ops["tlbi_page"] == 256 + 16 * (unfolds + folds)
    mm.check()


def test_batching_saves_what_the_converts_cost() -> None:
    # Dev Jain's loop's mremap (1 MiB of 64K folios to src + 1 MiB): the
    # 6.16 move pays 32 converts and their TLBIs; 6.17 pays none
    ns = {}
    for policy in ("linux-6.16", "linux-6.17"):
        mm = folios_of("arm64-4k", policy)
        mm.mremap(BASE, M, M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, BASE + M)
        assert mm.last_move is not None
        ns[policy] = mm.last_move.estimated_ns
        assert mm.last_move.breakdown["entry moves"] > 0
    assert ns["linux-6.16"] > 2 * ns["linux-6.17"]


def test_tlb_caches_a_contiguous_block_as_one_entry() -> None:
    import numpy as np

    pages = np.arange(BASE, BASE + M, 4096, dtype=np.uint64)
    walks = {}
    for policy in ("linux-6.8", "linux-6.17"):
        mm = folios_of("arm64-4k", policy)
        st = mm.access(pages)
        walks[policy] = (st.walks, mm.tlbs.valid_entries(0))
    # 256 pages: one walk and entry each without contpte (the L2 holds them
    # all; the L1's 48 entries the last ones), one per 64K block with it
    assert walks["linux-6.8"][0] == 256 and walks["linux-6.17"] == (16, 32)
    # cutting a block unfolds it: its entry goes, its pages are walked one by one
    mm.munmap(BASE, 4096)
    st = mm.access(pages[1:16])
    assert st.walks == 15
    st = mm.access(pages[16:32])  # the next block is still one entry
    assert st.walks == 0 and st.l1_hits == 16


def test_a_kernel_without_contpte_keeps_no_block_folded() -> None:
    # switching the policy to one without contiguous PTEs unfolds every
    # block: an unmapped page of a former block must fault, not hit the
    # block's TLB entry
    import numpy as np

    mm = folios_of("arm64-4k", "linux-6.17")
    mm.access(np.arange(BASE, BASE + 64 * K, 4096, dtype=np.uint64))
    mm.policy = "linux-6.8"
    assert cont_pages(mm, BASE, M) == []
    mm.munmap(BASE + 4096, 4096)
    assert mm.access([BASE + 4096]).segv == 1


@pytest.mark.parametrize(("arch", "policy", "elided"), [
    ("arm64-4k-bbml2", "linux-6.17", True),  # BBML2-noabort CPU, kernel with 83bbd6be7d17
    ("arm64-4k-bbml2", "linux-6.16", False),  # the same CPU, an older kernel
    ("arm64-4k-tlbirange", "linux-6.17", False),  # the same kernel, a CPU without it
])  # fmt: skip
def test_contpte_convert_skips_its_tlbi_on_bbml2_noabort(arch: str, policy: str,
                                                         elided: bool) -> None:  # fmt: skip
    # a misaligned move of 64K folios under 6.16's rules (no batching:
    # each block unfolded at the source); with the policy's elision
    # forced on 6.17 would batch instead, so the rule is applied to 6.16's
    pol = pt.policy("linux-6.16").replace(contpte_bbml2_elide=pt.policy(policy).contpte_bbml2_elide)
    mm = folios_of(arch, pol)
    frames = mm.frames(BASE, M)
    mm.mremap(BASE, M, M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, BASE + M + 4 * K)
    st = mm.last_move
    assert st is not None and st.contpte_unfolds == 16 and st.contpte_folds == 0
    # FEAT_TLBIRANGE: a block's flush is one range TLBI (16 pages: num 7 at
    # scale 0) between two DSBs; the move's own flushes are the same either way
    converts = {"tlbi_range": 16, "dsb": 32}
    base = pt.AddressSpace(arch, policy=pol.replace(contpte_bbml2_elide=not elided),
                           thp_sizes={64 * K: "always"})  # fmt: skip
    base.mmap(M, BASE, flags=FIXED)
    base.madvise(BASE, M, pt.MADV_POPULATE_WRITE)
    base.mremap(BASE, M, M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, BASE + M + 4 * K)
    assert base.last_move is not None
    for op, n in converts.items():
        with_converts = st.flush_ops[op] if not elided else base.last_move.flush_ops[op]
        without = base.last_move.flush_ops[op] if not elided else st.flush_ops[op]
        if arch == "arm64-4k-bbml2":
            assert with_converts - without == n, op
        else:  # no BBML2: the policy changes nothing
            assert with_converts == without, op
    assert (mm.frames(BASE + M + 4 * K, M) == frames).all()
    mm.check()


def test_the_6_17_preset_elides_on_bbml2_noabort() -> None:
    # linux-6.17's own path (batched moves): the misaligned move unfolds one
    # block (test_move_of_64k_folios); on a BBML2-noabort CPU that unfold
    # issues no TLBI (one range TLBI and two DSBs fewer, FEAT_TLBIRANGE on both)
    st = {}
    for arch in ("arm64-4k-bbml2", "arm64-4k-tlbirange"):
        mm = folios_of(arch, "linux-6.17")
        mm.mremap(BASE, M, M, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED, BASE + M + 4 * K)
        assert mm.last_move is not None and mm.last_move.contpte_unfolds == 1
        st[arch] = mm.last_move.flush_ops
    old, new = st["arm64-4k-tlbirange"], st["arm64-4k-bbml2"]
    diff = {op: old[op] - new[op] for op in new}
    assert {op: n for op, n in diff.items() if n and op != "invalidated_entries"} == {
        "flush_calls": 1, "flush_pages": 16, "tlbi_range": 1, "dsb": 2}  # fmt: skip
