"""Group populate: mmap + MADV_POPULATE_WRITE of large x86-64 regions.

The simulated page tables must be within 5% of what this machine's kernel
allocates for a region of the same size (VmPTE growth, measured in the
same run with the host probe; skipped without it). ``python bench/scale.py``
prints the figures (and the peak RSS); here pytest-benchmark times it and
checks the result.
"""

import os

import pytest

import pagetab as pt
from pagetab import host

GIB = 1 << 30


def populate(size: int) -> pt.AddressSpace:
    mm = pt.AddressSpace("x86-64")
    a = mm.mmap(size)
    mm.madvise(a, size, pt.MADV_POPULATE_WRITE)
    return mm


@pytest.mark.benchmark(group="populate")
@pytest.mark.parametrize("gib", [1, 16, 64, 256])
def test_populate_write(benchmark, huge: bool, gib: int) -> None:  # type: ignore[no-untyped-def]
    if gib == 256 and not huge:
        pytest.skip("256 GiB needs --huge (bench/scale.py always measures it)")
    mm = benchmark.pedantic(populate, args=(gib * GIB,), rounds=3 if gib < 64 else 1)
    assert mm.rss_pages == gib * GIB // 4096
    # the simulated arch has 4K pages: only a 4K-page kernel compares
    if host.available()[0] and os.sysconf("SC_PAGE_SIZE") == 4096:
        _, kernel = host.populate_tables(gib * GIB)
        assert abs(mm.page_table_bytes - kernel) / kernel < 0.05, (mm.page_table_bytes, kernel)
