"""The cross-device model: shared costs, per-device factors, held-out predictions."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import pytest

import pagetab as pt
from pagetab import device_model as dm
from pagetab.arch import DEFAULT_DEVICES, apply_device, device_doc, devices
from pagetab.experiment import move_stats
from pagetab.reproduce import cold_ns, published_ratios, reproduce_published


@pytest.fixture(scope="module")
def figs() -> list[dm.Figure]:
    return dm.figures()


@pytest.fixture(scope="module")
def shipped() -> dict[str, dict[str, object]]:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "fit_devices.py"
    spec = importlib.util.spec_from_file_location("fit_devices", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fit_devices"] = mod
    spec.loader.exec_module(mod)
    return dm.device_documents(mod.DEVICES)


def test_shipped_device_files_are_what_the_fit_gives(shipped: dict[str, object]) -> None:
    # a change of data or model that moves a device makes its file stale:
    # python bench/fit_devices.py rewrites them
    assert set(devices()) == set(shipped)
    for name, doc in shipped.items():
        text = resources.files("pagetab").joinpath(f"data/devices/{name}.json").read_text()
        assert json.loads(text) == json.loads(json.dumps(doc)), name


def test_each_device_has_fewer_free_factors_than_figures(figs: list[dm.Figure]) -> None:
    m = dm.fit(figs)
    for d in m.speed:
        n = sum(f.device == d for f in figs)
        free = 1 + (m.memory[d] != m.speed[d])  # memory is tied to speed where not free
        assert free < n, (d, free, n)
    assert m.memory["kalesh2020-arm64-5.4"] != m.speed["kalesh2020-arm64-5.4"]


def test_a_device_its_figures_cannot_identify_is_refused(figs: list[dm.Figure]) -> None:
    # one Kalesh x86 figure left: its speed factor would fit it exactly
    one = [f for f in figs if f.id != "kalesh2020-x86-1g-pmd"]
    with pytest.raises(ValueError, match=r"device kalesh2020-x86-5\.4: 1 figure\(s\) for its "
                       r"speed factor: not identifiable"):  # fmt: skip
        dm.fit(one)
    dm.fit(one, spare=0)  # a validation fit may predict from one figure


def test_the_model_prices_as_the_simulator_does(figs: list[dm.Figure]) -> None:
    # two paths to one number: the model's groups times its factors, and
    # the profile apply_device makes, priced by the simulator as published
    # moves are timed (cold, once)
    m = dm.fit(figs)
    by_id = {f.id: f for f in figs}
    rows = [r for r in reproduce_published() if "@" in r.profile]
    assert rows
    for r in rows:
        device = r.profile.split("@")[1]
        f = by_id[r.id]
        assert r.simulated_us == pytest.approx(
            m.predict_ns(f, m.speed[device], m.memory[device]) / 1e3, rel=1e-9
        ), (r.id, device)


def test_fit_recovers_a_device_priced_by_the_simulator(figs: list[dm.Figure]) -> None:
    # a made-up arm64 device: its three figures priced by the simulator
    # under factors the fit is not told; the fit finds them again
    truth = {**device_doc("kalesh2020-arm64-5.4")["factors"], "speed": 3.0, "memory": 0.5}
    doc = {**device_doc("kalesh2020-arm64-5.4"), "factors": truth}
    entries = {e.id: e for e in figs if e.device == "kalesh2020-arm64-5.4"}
    fake = []
    for f in entries.values():
        sim = next(e["simulate"] for e in _published() if e["id"] == f.id)
        prof = apply_device(dm.sourced(sim["arch"]), doc, "fake")
        size = next(e["size_bytes"] for e in _published() if e["id"] == f.id)
        st = move_stats(size, prof, sim["policy"], dst_align=sim["dst_align"], cpus=1, touch=0)
        ns = st.estimated_ns + cold_ns(prof, st, size)
        fake.append(dataclasses.replace(f, device="fake-arm64", measured_ns=ns))
    m = dm.fit([f for f in figs if f.device != "kalesh2020-arm64-5.4"] + fake)
    # shared costs move with the other devices; the product speed*k_pte is what a PTE pays
    assert m.speed["fake-arm64"] * m.shared["k_pte"] == pytest.approx(
        truth["speed"] * truth["k_pte"], rel=0.15
    )
    assert m.memory["fake-arm64"] == pytest.approx(truth["memory"], rel=0.25)


def test_a_held_out_prediction_does_not_see_its_figure(figs: list[dm.Figure]) -> None:
    held = "kalesh2020-x86-1g-pud"
    changed = [dataclasses.replace(f, measured_ns=f.measured_ns * 10) if f.id == held else f
               for f in figs]  # fmt: skip

    def predicted(fs: list[dm.Figure], mode: str) -> float:
        return next(p.predicted_us for p in dm.validate(fs) if p.id == held and p.mode == mode)

    for mode in ("lofo", "loso"):
        assert predicted(changed, mode) == pytest.approx(predicted(figs, mode), rel=1e-6)
    # while the in-sample fit follows it
    assert predicted(changed, "fit") > 1.5 * predicted(figs, "fit")


def test_every_published_figure_is_held_out_both_ways(figs: list[dm.Figure]) -> None:
    preds = dm.validate(figs)
    pub = {f.id for f in figs if f.device != dm.REFERENCE}
    for mode in ("fit", "lofo", "loso"):
        assert {p.id for p in preds if p.mode == mode} == pub, mode
    # x86 and ppc64 predict their held-out figures within 2x but for one
    # (Kalesh's x86 PUD path from his PMD path alone); what misses is printed
    misses = {(p.id, p.mode) for p in preds if p.mode != "fit" and not p.within_target}
    assert not {m for m in misses if "ppc64" in m[0]}
    assert {m for m in misses if "x86" in m[0]} == {("kalesh2020-x86-1g-pud", "lofo")}


def test_default_profiles_agree_with_their_isa_ratios_or_say_why() -> None:
    ratios = published_ratios()
    assert {r.device for r in ratios} >= {"kalesh2020-arm64-5.4", "aneesh2021-ppc64"}
    for r in ratios:
        assert r.agrees or r.note, (r.slow, r.fast, r.profile, r.published, r.simulated)
        assert not (r.agrees and r.note), f"stale note: {r.slow} / {r.fast}"
    # the arm64 ratios the issue names: 8x, 19x, 150x
    arm = {(r.slow.rsplit("-", 1)[1], r.fast.rsplit("-", 1)[1]): r for r in ratios
           if r.device == "kalesh2020-arm64-5.4"}  # fmt: skip
    assert set(arm) == {("pte", "pmd"), ("pmd", "pud"), ("pte", "pud")}
    assert all(r.agrees for r in arm.values())


def test_default_devices_price_the_built_in_profiles() -> None:
    for family, device in DEFAULT_DEVICES.items():
        for name in pt.archs():
            a = pt.arch(name)
            if a.flush.family == family:
                dev = pt.arch(name, device=device)
                assert a.costs == dev.costs and a.cold_call == dev.cold_call, name
    # x86-64 keeps the test host's own figures
    assert "device" not in pt.arch("x86-64").costs["pte_move"].source


def test_a_malformed_device_document_is_refused() -> None:
    doc = device_doc("aneesh2021-ppc64")
    bad = {**doc, "factors": {**doc["factors"], "speed": 0}}
    with pytest.raises(ValueError, match="bad-doc: needs factors speed, memory, flush"):
        apply_device(pt.arch("ppc64-radix-64k"), bad, "bad-doc")


def _published() -> list[dict[str, object]]:
    from pagetab.reproduce import published_entries

    return published_entries()
