"""The shipped data file of published measurements, and their simulation."""

from __future__ import annotations

import json
import statistics

import pytest

import pagetab as pt
from pagetab.reproduce import published_entries, reproduce_published


def test_every_entry_is_sourced_and_consistent() -> None:
    entries = published_entries()
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)) >= 12
    for e in entries:
        src = e["source"]
        assert src.get("commit") or src.get("message_id") or src.get("subject"), e["id"]
        assert e["quote"] and e["claims"] is not None, e["id"]
        samples = e.get("samples_us") or []
        if samples and e.get("value_us") is not None:
            # a stated mean must be the mean of the stated samples
            assert statistics.fmean(samples) == pytest.approx(e["value_us"], rel=1e-4), e["id"]
        if (sim := e.get("simulate")) is not None:
            assert sim["arch"] in pt.archs() and sim["policy"] in pt.policies(), e["id"]
            assert sim["dst_align"] in ("page", "pmd", "pud"), e["id"]
            assert e["size_bytes"] > 0 and (samples or e.get("value_us")), e["id"]
        else:
            assert e["not_simulated"], e["id"]


def test_published_figures_as_the_sources_state_them() -> None:
    # spot checks against the commit messages, by hand
    by_id = {e["id"]: e for e in published_entries()}
    assert by_id["kalesh2020-arm64-1g-pmd"]["value_us"] == pytest.approx(1134.3126)
    assert by_id["kalesh2020-x86-1g-pud"]["value_us"] == pytest.approx(15.594)
    assert min(by_id["joel2018-x86-1g-pte-before"]["samples_us"]) == pytest.approx(3449.229)


def test_reproduce_published_simulates_what_it_can() -> None:
    # the rows priced with the arch profiles as shipped
    rows = {p.id: p for p in reproduce_published() if "@" not in p.profile}
    pud = rows["kalesh2020-x86-1g-pud"]
    assert pud.simulated_us is not None and pud.simulated_us > 0 and not pud.fitted
    assert pud.error == pytest.approx(pud.simulated_us / pud.published_us - 1)
    # the same x86 move priced by the same costs: the PUD path is the cheaper
    assert pud.simulated_us < rows["kalesh2020-x86-1g-pmd"].simulated_us
    uffd = rows["lokesh2025-uffd-move-flush-share"]
    assert uffd.simulated_us is None and "UFFDIO_MOVE" in uffd.simulated_as


def test_shipped_devices_are_what_the_fit_gives() -> None:
    # each device file is the least-squares fit to the entries it names:
    # a change of data or model that moves it makes the file stale
    from importlib import resources

    from pagetab import calibrate
    from pagetab.arch import devices

    assert set(devices()) == {"kalesh2020-arm64-5.4", "kalesh2020-x86-5.4", "joel2018-arm64-4.9"}
    for name in devices():
        doc = json.loads(
            resources.files("pagetab").joinpath(f"data/devices/{name}.json").read_text()
        )
        dev = doc["device"]
        refit = calibrate.fit_device(name, doc["arch"], dev["fitted_to"], tuple(doc["costs"]),
                                     dev["description"])  # fmt: skip
        assert refit["costs"] == pytest.approx(doc["costs"]), name
        assert refit["device"] == dev, name  # its notes quote the current cost sources
        # what the data cannot tell apart keeps its sourced value, and says so
        assert set(dev["not_identifiable"]) | set(doc["costs"]) == set(calibrate.MOVE_COSTS)


def test_fitted_figures_are_reproduced_and_cross_source_ones_predicted() -> None:
    rows = reproduce_published()
    fitted = [p for p in rows if p.fitted]
    assert {p.id for p in fitted} >= {"kalesh2020-arm64-1g-pmd", "joel2018-arm64-1g-pte-before"}
    for p in fitted:
        assert p.error is not None and abs(p.error) < 0.15, (p.id, p.profile)
    # the 2020 device's costs predicting the 2018 device's figure: printed as
    # a prediction, with its error, never tuned
    cross = [p for p in rows if p.id == "joel2018-arm64-1g-pte-before"
             and p.profile.endswith("@kalesh2020-arm64-5.4")]  # fmt: skip
    assert len(cross) == 1 and not cross[0].fitted and cross[0].error is not None


def test_devices_are_checked() -> None:
    a = pt.arch("arm64-4k", device="kalesh2020-arm64-5.4")
    assert a.name == "arm64-4k@kalesh2020-arm64-5.4" and "fitted to" in a.costs["pmd_move"].source
    v = pt.arch("arm64-4k-linux-4.9", device="joel2018-arm64-4.9")  # a variant of arm64-4k
    assert v.flush == pt.arch("arm64-4k-linux-4.9").flush and v.cost("pte_move") > 100
    with pytest.raises(ValueError, match=r"valid: joel2018-arm64-4\.9"):
        pt.arch("arm64-4k", device="pixel-9")
    with pytest.raises(ValueError, match="calibrated for 'arm64-4k'"):
        pt.arch("x86-64", device="kalesh2020-arm64-5.4")
    with pytest.raises(ValueError, match="not both"):
        pt.arch("arm64-4k", calibration="x.json", device="kalesh2020-arm64-5.4")


def test_device_ratios_hold_and_cross_source_ones_are_printed_as_predictions() -> None:
    from pagetab.reproduce import reproduce_2018

    found = {f.case: f for f in reproduce_2018()}
    fitted = [f for c, f in found.items() if c.endswith("(fitted)")]
    assert len(fitted) == 5
    for f in fitted:  # the claims hold under the devices' costs
        assert f.error is not None and abs(f.error) < 0.15, f.case
    (cross,) = [f for c, f in found.items() if "predict" in c]
    assert "not fitted" in cross.source and cross.error is not None
