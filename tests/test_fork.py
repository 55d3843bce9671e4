"""fork's copy of an address space (pagetab.fork, AddressSpace.fork): what
is copied and what the child faults in again is checked against this
machine's kernel in test_conformance_host.py; here, that the two spaces are
independent afterwards and what a child does not inherit."""

from __future__ import annotations

import pagetab as pt

BASE = 1 << 36
ANON = pt.MAP_PRIVATE | pt.MAP_ANONYMOUS | pt.MAP_FIXED


def test_parent_and_child_go_their_own_ways() -> None:
    mm = pt.AddressSpace("x86-64")
    mm.mmap(4 << 20, addr=BASE, flags=ANON)
    mm.madvise(BASE, 4 << 20, pt.MADV_POPULATE_WRITE)
    before = mm.frames(BASE, 4 << 20).copy()
    child = mm.fork()
    child.check()
    assert (child.frames(BASE, 4 << 20) == before).all()
    child.munmap(BASE, 2 << 20)
    child.mremap(BASE + (2 << 20), 2 << 20, 2 << 20, pt.MREMAP_MAYMOVE | pt.MREMAP_FIXED,
                 BASE + (1 << 30))  # fmt: skip
    assert [(v.start, v.length) for v in mm.vmas()] == [(BASE, 4 << 20)]
    assert (mm.frames(BASE, 4 << 20) == before).all()
    assert [(v.start, v.length) for v in child.vmas()] == [(BASE + (1 << 30), 2 << 20)]
    mm.check()
    child.check()


def test_a_child_has_no_userfaultfd_registration() -> None:
    # dup_userfaultfd without UFFD_FEATURE_EVENT_FORK: the child's VMAs are
    # not registered, and it has no userfaultfd
    mm = pt.AddressSpace("x86-64")
    mm.mmap(2 << 20, addr=BASE, flags=ANON)
    u = mm.userfaultfd(pt.UFFD_FEATURE_MOVE)
    u.register(BASE, 2 << 20, pt.UFFDIO_REGISTER_MODE_MISSING)
    child = mm.fork()
    assert [v.uffd for v in mm.vmas()] == [u.id]
    assert [v.uffd for v in child.vmas()] == [0]
    assert child.userfaultfds == []


def test_a_fork_keeps_the_policy_and_limits() -> None:
    mm = pt.AddressSpace("arm64-4k", cpus=3, policy="linux-6.8", page_table_limit=1 << 20)
    child = mm.fork()
    assert (child.arch.name, child.policy.name, child.cpus) == ("arm64-4k", "linux-6.8", 3)
    assert child.page_table_limit == 1 << 20


def test_tables_only_uncopied_vmas_used_are_gone_in_the_child() -> None:
    # two neighbouring file mappings (a library's segments) share a PTE
    # table; fork copies neither, so the child has no table for them (each
    # had been freed with the other as its boundary, keeping the table)
    mm = pt.AddressSpace("x86-64")
    f = pt.File("lib.so", 8 << 12)
    at = BASE + (1 << 30)
    mm.mmap(4 << 12, addr=at, prot=pt.PROT_READ, flags=pt.MAP_PRIVATE | pt.MAP_FIXED, file=f)
    mm.mmap(4 << 12, addr=at + (4 << 12), prot=pt.PROT_READ | pt.PROT_EXEC,
            flags=pt.MAP_PRIVATE | pt.MAP_FIXED, file=f, offset=4 << 12)  # fmt: skip
    mm.madvise(at, 8 << 12, pt.MADV_POPULATE_READ)
    child = mm.fork()
    assert (child.frames(at, 8 << 12) == -1).all()
    assert child.page_table_bytes == 0 < mm.page_table_bytes
