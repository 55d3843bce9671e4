"""Calibration against the host kernel, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pagetab as pt
from pagetab import calibrate, host

OK, WHY = host.available()
needs_host = pytest.mark.skipif(not OK, reason=f"host probe unavailable: {WHY}")
MIB = 1 << 20


@needs_host
def test_calibration_fits_and_predicts(tmp_path: Path) -> None:
    out = tmp_path / "cal.json"
    train = [calibrate.Case(s, o) for s in (64 * MIB, 512 * MIB) for o in (4096, 2 * MIB)]
    train += [calibrate.Case(1 << 30, 0)]
    data = calibrate.calibrate(out, repeats=3, cases=train, verbose=False)
    assert set(data["costs"]) == set(calibrate.FITTED)
    assert all(v >= 0 for v in data["costs"].values())
    prof = pt.arch("x86-64", calibration=str(out))
    assert prof.name == "x86-64@calibrated"
    assert prof.cost("pte_move") == pytest.approx(data["costs"]["pte_move"])
    assert "calibrated on" in prof.costs["pte_move"].source
    # the bulk of the fitted cases is explained (the PUD case is microseconds of noise)
    errs = sorted(abs(r["error"]) for r in data["fit"])
    assert errs[len(errs) // 2] < 0.25
    report = calibrate.validate(prof, repeats=3, cases=[calibrate.Case(256 * MIB, 2 * MIB)],
                                verbose=False)  # fmt: skip
    assert abs(report[0]["error"]) < 0.5


def test_bad_calibration_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a pagetab calibration"):
        pt.arch("x86-64", calibration=str(bad))
    bad.write_text(json.dumps({"arch": "arm64-4k", "costs": {"pte_move": 1.0}}))
    with pytest.raises(ValueError, match="calibrated for"):
        pt.arch("x86-64", calibration=str(bad))
    bad.write_text(json.dumps({"arch": "x86-64", "costs": {"bogus": 1.0}}))
    with pytest.raises(ValueError, match="unknown costs"):
        pt.arch("x86-64", calibration=str(bad))
    bad.write_text(json.dumps({"arch": "x86-64", "costs": {"pte_move": -1}}))
    with pytest.raises(ValueError, match=">= 0"):
        pt.arch("x86-64", calibration=str(bad))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pagetab", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_cli_usage_errors_exit_2() -> None:
    for args in (["--gib", "0"], ["--arch", "vax"], ["frobnicate"], ["host", "--repeats", "0"]):
        r = run_cli(*args)
        assert r.returncode == 2 and "usage" in r.stderr, args


@needs_host
def test_cli_host_and_calibrate(tmp_path: Path) -> None:
    r = run_cli("host", "--repeats", "3")
    assert r.returncode == 0 and "move-pud" in r.stdout
    out = tmp_path / "c.json"
    r = run_cli("calibrate", "--out", str(out), "--repeats", "2")
    assert r.returncode == 0 and "held out" in r.stdout and out.exists()


def test_cli_listing_and_move() -> None:
    r = run_cli("archs")
    assert r.returncode == 0 and all(a in r.stdout for a in pt.archs())
    r = run_cli("policies")
    assert r.returncode == 0 and "eb66ae030829" in r.stdout
    r = run_cli("move", "--size", "64M", "--align", "page", "--policy", "linux-4.19", "--json")
    assert r.returncode == 0
    st = json.loads(r.stdout)
    assert st["ptes_moved"] == 64 * MIB // 4096 and st["estimated_ns"] > 0
    r = run_cli("move", "--size", "8M", "--policy", "fast-mremap-v2", "--fail-unsafe")
    assert r.returncode == 1 and "unsafe_entries" in r.stdout
    r = run_cli("move", "--size", "1Q")
    assert r.returncode == 2 and "--size" in r.stderr
    r = run_cli("reproduce")
    assert r.returncode == 0 and "about 34x" in r.stdout


def test_parse_size() -> None:
    from pagetab.__main__ import parse_size

    assert parse_size("4K") == 4096 and parse_size("1g") == 1 << 30 and parse_size("2MB") == 2 << 20
    assert parse_size("8192") == 8192
