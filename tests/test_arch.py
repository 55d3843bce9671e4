"""Architecture profiles: geometry as in the kernel headers named in each source."""

import dataclasses

import pytest

import pagetab as pt

# name: (page size, level names, shifts, entries, PMD_SIZE, PUD_SIZE)
GEOMETRY = {
    "x86-64": (4096, ("pgd", "pud", "pmd", "pte"), (39, 30, 21, 12), (512,) * 4, 2 << 20, 1 << 30),
    "x86-64-la57": (
        4096,
        ("pgd", "p4d", "pud", "pmd", "pte"),
        (48, 39, 30, 21, 12),
        (512,) * 5,
        2 << 20,
        1 << 30,
    ),
    "arm64-4k": (
        4096,
        ("pgd", "pud", "pmd", "pte"),
        (39, 30, 21, 12),
        (512,) * 4,
        2 << 20,
        1 << 30,
    ),
    "arm64-16k": (
        16384,
        ("pgd", "pud", "pmd", "pte"),
        (47, 36, 25, 14),
        (2, 2048, 2048, 2048),
        32 << 20,
        64 << 30,
    ),
    "arm64-64k": (65536, ("pgd", "pmd", "pte"), (42, 29, 16), (64, 8192, 8192), 512 << 20, 4 << 40),
    "ppc64-radix-64k": (
        65536,
        ("pgd", "pud", "pmd", "pte"),
        (39, 30, 21, 16),
        (8192, 512, 512, 32),
        2 << 20,
        1 << 30,
    ),
    # the RISC-V privileged specification: Sv39 (3 levels, the pgd's entries
    # map 1 GiB and act as the pud), Sv48, Sv57; 9 bits per level, 4K pages
    "riscv64-sv39": (4096, ("pgd", "pmd", "pte"), (30, 21, 12), (512,) * 3, 2 << 20, 1 << 30),
    "riscv64-sv48": (4096, ("pgd", "pud", "pmd", "pte"), (39, 30, 21, 12), (512,) * 4,
                     2 << 20, 1 << 30),
    "riscv64-sv57": (4096, ("pgd", "p4d", "pud", "pmd", "pte"), (48, 39, 30, 21, 12),
                     (512,) * 5, 2 << 20, 1 << 30),
}  # fmt: skip


def test_registry_lists_every_profile() -> None:
    assert pt.archs()[: len(GEOMETRY)] == list(GEOMETRY)
    variants = {"x86-64-invlpgb": "x86-64", "arm64-4k-linux-4.9": "arm64-4k",
                "arm64-4k-bbml2": "arm64-4k", "arm64-4k-tlbirange": "arm64-4k",
                "riscv64-sv48-ipi": "riscv64-sv48",
                "riscv64-sv48-svinval": "riscv64-sv48"}  # fmt: skip
    assert pt.archs()[len(GEOMETRY) :] == list(variants)
    for name, base in variants.items():
        assert pt.arch(name).levels == pt.arch(base).levels


@pytest.mark.parametrize("name", list(GEOMETRY))
def test_geometry(name: str) -> None:
    page, names, shifts, entries, pmd, pud = GEOMETRY[name]
    a = pt.arch(name)
    assert a.page_size == page
    assert tuple(lv.name for lv in a.levels) == names
    assert tuple(lv.shift for lv in a.levels) == shifts
    assert tuple(lv.entries for lv in a.levels) == entries
    assert a.pmd_size == pmd
    assert a.pud_size == pud
    assert a.pmd.huge
    assert a.level("pte").table_bytes == entries[-1] * 8


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"x86-64.*arm64-4k"):
        pt.arch("sparc")
    with pytest.raises(TypeError):
        pt.arch(3)  # type: ignore[arg-type]


def test_replace_makes_a_variant_and_validates() -> None:
    a = pt.arch("arm64-4k")
    b = a.replace(name="arm64-4k-nosplit", split_pmd_lock=False)
    assert b.name == "arm64-4k-nosplit" and not b.split_pmd_lock and a.split_pmd_lock
    with pytest.raises(ValueError, match="unknown Arch field"):
        a.replace(nonsense=1)
    bad = (pt.Level("pgd", 39, 512), pt.Level("pte", 12, 512))
    with pytest.raises(ValueError, match="spans"):
        a.replace(levels=bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.page_shift = 13  # type: ignore[misc]
