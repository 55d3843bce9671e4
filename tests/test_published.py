"""The shipped data file of published measurements, and their simulation."""

from __future__ import annotations

import statistics

import pytest

import pagetab as pt
from pagetab.arch import devices
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
            assert sim["device"] in devices(sim["arch"]), e["id"]  # who measured it
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


def test_devices_are_checked() -> None:
    a = pt.arch("arm64-4k", device="kalesh2020-arm64-5.4")
    assert a.name == "arm64-4k@kalesh2020-arm64-5.4"
    assert "for the device kalesh2020-arm64-5.4" in a.costs["pmd_move"].source
    v = pt.arch("arm64-4k-linux-4.9", device="joel2018-arm64-4.9")  # a variant of arm64-4k
    assert v.flush == pt.arch("arm64-4k-linux-4.9").flush and v.cost("pte_move") > 100
    with pytest.raises(ValueError, match=r"valid: .*joel2018-arm64-4\.9"):
        pt.arch("arm64-4k", device="pixel-9")
    with pytest.raises(ValueError, match="is for arm64 profiles, not x86-64; valid: "):
        pt.arch("x86-64", device="kalesh2020-arm64-5.4")
    with pytest.raises(ValueError, match="not both"):
        pt.arch("arm64-4k", calibration="x.json", device="kalesh2020-arm64-5.4")


def test_every_entry_says_whether_it_is_fitted_or_held_out() -> None:
    from pagetab.reproduce import reproduce_anchors

    anchored = {a.id for a in reproduce_anchors()}
    for e in published_entries():
        assert e["role"] in ("fit", "held-out", "not-used") and e["role_note"], e["id"]
        assert (e["role"] == "fit") == (e.get("simulate") is not None), e["id"]
        assert (e["role"] == "held-out") == (e["id"] in anchored), e["id"]
    ids = {e["id"] for e in published_entries()}
    assert {"stoakes2025-bigheap-realloc-raptorlake", "riel2025-invlpgb-tlb-flush2-milan",
            "oberman2025-hugetlb-unshare-fork-exit"} <= ids  # fmt: skip


def test_anchors_are_predicted_from_the_simulation() -> None:
    from pagetab.reproduce import reproduce_anchors, uffd_move_shares

    rows = {(a.id, a.quantity): a for a in reproduce_anchors()}
    fixed = rows["stoakes2025-bigheap-realloc-raptorlake", "realloc rate, fixed / before"]
    # on x86 0b5be138ce00 leaves no lookup: the move is linux-6.16's again
    assert fixed.simulated == pytest.approx(1.0) and fixed.holds
    # the shares come from the move's own breakdown: batching the flushes
    # leaves the lookups as the larger part (50944692052b's ">70%")
    before, after = uffd_move_shares("linux-6.17"), uffd_move_shares("linux-6.18")
    assert sum(before.values()) == pytest.approx(1.0)
    assert before["tlb flush"] > before["folio lookups"]
    assert after["folio lookups"] > after["tlb flush"]
    flush = rows[
        "lokesh2025-uffd-move-flush-share",
        "ptep_clear_flush share of move_pages_pte, per-page flushes",
    ]
    assert flush.simulated == before["tlb flush"] and flush.relation == ">"
