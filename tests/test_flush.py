"""The flush rules' two halves agree: every family of pagetab.flush has a C
rule in _flush, with the same parameters, and every profile's rule builds."""

from __future__ import annotations

import pytest

import pagetab as pt
from pagetab import _flush
from pagetab.flush import Arm64Flush, FlushRules, X86Flush, flush_families


def test_every_family_has_a_c_rule_with_the_same_parameters() -> None:
    families = flush_families()  # tests may register toy families of their own
    assert {"x86", "arm64", "ppc64", "riscv"} <= set(families)
    for name, cls in families.items():
        rules = cls()
        c_rule = _flush.rule_class(cls.rule)(rules.params())
        # the C struct, read back, holds what the dataclass gave it
        assert c_rule.params() == rules.params(), name


def test_every_profile_builds_its_rule_and_prices_its_operations() -> None:
    for name in pt.archs():
        a = pt.arch(name)
        assert isinstance(a.flush, FlushRules)
        mm = pt.AddressSpace(a)
        assert type(mm.tlbs.flush) is _flush.rule_class(a.flush.rule)
        assert mm.tlbs.flush.params() == a.flush.params()
        for event in a.flush.op_costs.values():
            assert a.cost(event) >= 0


def test_flush_operations_are_named_by_the_c_struct() -> None:
    mm = pt.AddressSpace("arm64-4k", cpus=2)
    ops = mm.tlbs.flush_range(0, 1 << 40, (1 << 40) + 8 * 4096)
    assert list(ops) == list(_flush.OP_NAMES)
    # 8 pages under MAX_DVM_OPS: one TLBI per page between two DSBs
    assert ops["tlbi_page"] == 8 and ops["dsb"] == 2 and ops["flush_calls"] == 1


def test_bad_rule_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        _flush.rule_class("x86")({"invlpgb": False})  # every field of the C struct is required
    with pytest.raises(ValueError, match=r"X86Flush\.ceiling"):
        X86Flush(ceiling=-1)
    with pytest.raises(TypeError, match=r"Arm64Flush\.range"):
        Arm64Flush(range=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush must be one of"):
        pt.arch("x86-64").replace(flush="x86")
    with pytest.raises(TypeError, match="already"):

        class Again(X86Flush):  # a second class may not claim a family
            pass


def test_each_family_module_registers_its_rule() -> None:
    import importlib

    for name in ("x86", "arm64", "ppc64", "riscv"):
        module = importlib.import_module(f"pagetab._flush_{name}")
        assert _flush.FLUSH_RULES[name].__module__ == module.__name__
        assert _flush.rule_class(name) is _flush.FLUSH_RULES[name]
    with pytest.raises(ValueError, match="no flush rule 'mips'"):
        _flush.rule_class("mips")
    with pytest.raises(TypeError, match="not a FlushRule subclass"):
        _flush.register_rule("toy", dict)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already"):
        _flush.register_rule("x86", _flush.rule_class("arm64"))
