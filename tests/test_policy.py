"""Policy: declared once, its engine fields crossing into C by name, each
preset its predecessor plus what its kernel changed."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

import pagetab as pt
from pagetab import _move
from pagetab.mm_types import mremap_config

policy_module = importlib.import_module("pagetab.policy")

#: mremap_config's fields that are the arch's geometry, not the policy's
GEOMETRY = {"pte", "pmd", "pud", "page_shift", "pmd_size", "pud_size", "split_pte",
            "split_pmd", "cont_ptes", "bbml2_noabort"}  # fmt: skip


@pytest.mark.parametrize("name", pt.policies())
def test_engine_fields_are_the_c_structs_policy_fields(name: str) -> None:
    p = pt.policy(name)
    config = _move.PagetableMoveControl(mremap_config(pt.arch("arm64-4k"), p)).config
    assert set(config) - GEOMETRY == set(p.engine_fields())
    for field, value in p.engine_fields().items():
        want = _move.FLUSH_MODE[value] if field == "flush" else value
        assert config[field] == want, field


def test_a_field_the_struct_lacks_is_refused() -> None:
    config = mremap_config(pt.arch("x86-64"), pt.policy("linux-6.8"))
    with pytest.raises((ValueError, TypeError, KeyError)):
        _move.PagetableMoveControl({k: v for k, v in config.items() if k != "realign"})


def test_contpte_off_folds_no_block_in_the_engine() -> None:
    a = pt.arch("arm64-4k")
    on = _move.PagetableMoveControl(mremap_config(a, pt.policy("linux-6.16"))).config
    off = _move.PagetableMoveControl(mremap_config(a, pt.policy("linux-6.8"))).config
    assert on["cont_ptes"] == a.cont_ptes > 0 and off["cont_ptes"] == 0


def test_presets_differ_from_their_predecessor_only_where_the_kernel_changed() -> None:
    # linux-6.18 is linux-6.17 plus UFFDIO_MOVE's batching and whole-folio
    # read faults (fault-around and finish_fault), nothing else
    old, new = pt.policy("linux-6.17"), pt.policy("linux-6.18")
    changed = {f.name for f in dataclasses.fields(new)
               if getattr(old, f.name) != getattr(new, f.name)}  # fmt: skip
    assert changed == {"name", "description", "source", "uffd_move_batch",
                       "fault_around_whole_folio", "finish_fault_whole_folio"}  # fmt: skip
    # and linux-6.19 is linux-6.18 without UFFDIO_MOVE's anon_vma lock
    old, new = new, pt.policy("linux-6.19")
    changed = {f.name for f in dataclasses.fields(new)
               if getattr(old, f.name) != getattr(new, f.name)}  # fmt: skip
    assert changed == {"name", "description", "source", "uffd_move_anon_vma_lock"}


def test_every_field_is_checked_and_documented() -> None:
    for f in dataclasses.fields(pt.Policy):
        if f.type == "bool":
            with pytest.raises(TypeError, match=rf"Policy\.{f.name} must be a bool"):
                pt.Policy("x", **{f.name: 1})
    with pytest.raises(ValueError, match=r"Policy\.uffd_move must be one of"):
        pt.Policy("x", uffd_move="7.0")
    with pytest.raises(TypeError, match=r"Policy\.description must be a str"):
        pt.Policy("x", description=3)  # type: ignore[arg-type]
    # each field has its docstring right below it (read by the docs' API page)
    text = open(policy_module.__file__).read()
    for f in dataclasses.fields(pt.Policy):
        assert f"    {f.name}: " in text and '"""' in text.split(f"    {f.name}: ", 1)[1][:200]


def test_the_default_policy_is_the_newest_mainline_preset() -> None:
    # it was linux-6.8 while newer presets (and this machine's 6.18) existed
    from pagetab.policy import DEFAULT_POLICY

    # a release candidate (linux-6.17-rc1) is older than its release
    mainline = [p for p in pt.policies() if p.startswith("linux-")]

    def version(p: str) -> tuple[int, ...]:
        release, _, rc = p[6:].partition("-rc")
        return (*(int(x) for x in release.split(".")), int(rc) - 100 if rc else 0)

    newest = max(mainline, key=version)
    assert DEFAULT_POLICY == newest
    assert pt.AddressSpace("x86-64").policy.name == newest
    assert pt.run_move(2 << 20).policy == newest
