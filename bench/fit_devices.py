"""Fit the shipped device calibrations to the published measurements.

Each device of pagetab/data/devices is fitted by least squares
(calibrate.fit_device) to the published timings of one device in
pagetab/data/published.json; costs the data cannot tell apart keep their
sourced values. Run it after changing the data or the model, then review
and commit the files it rewrites; tests/test_published.py checks that the
shipped files are what this fit gives.

Usage: python bench/fit_devices.py [--check]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pagetab import calibrate

DEVICES: dict[str, dict[str, Any]] = {
    "kalesh2020-arm64-5.4": {
        "arch": "arm64-4k",
        "entries": ["kalesh2020-arm64-1g-pte", "kalesh2020-arm64-1g-pmd",
                    "kalesh2020-arm64-1g-pud"],
        "keys": ("pte_move", "pmd_move", "pud_move"),
        "description": "the arm64 device of Kalesh Singh's 2020 mremap series "
        "(Linux 5.4; the device is not named)",
    },
    "kalesh2020-x86-5.4": {
        "arch": "x86-64",
        "entries": ["kalesh2020-x86-1g-pmd", "kalesh2020-x86-1g-pud"],
        "keys": ("pmd_move", "pud_move"),
        "description": "the x86-64 machine of Kalesh Singh's 2020 mremap series "
        "(Linux 5.4; not named)",
    },
    "joel2018-arm64-4.9": {
        "arch": "arm64-4k",
        "entries": ["joel2018-arm64-1g-pte-before", "joel2018-arm64-1g-pmd-after-noperpmdflush"],
        "keys": ("pte_move", "pmd_move"),
        "description": "the arm64 device of Joel Fernandes' 2018 fast-mremap patch "
        "(Linux 4.9 by his later mails; not named)",
    },
}  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent / "pagetab" / "data" / "devices"


def fitted() -> dict[str, dict[str, Any]]:
    """Every device's calibration document, fitted now."""
    return {
        name: calibrate.fit_device(name, d["arch"], d["entries"], d["keys"], d["description"])
        for name, d in DEVICES.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true", help="compare, do not write")
    args = p.parse_args()
    for name, doc in fitted().items():
        path = ROOT / f"{name}.json"
        errs = ", ".join(f"{r['case']} {r['error']:+.1%}" for r in doc["fit"])
        if args.check:
            same = path.exists() and json.loads(path.read_text()) == doc
            print(f"{name}: {'up to date' if same else 'STALE'} ({errs})")
        else:
            path.write_text(json.dumps(doc, indent=1) + "\n")
            print(f"wrote {path.name}: {doc['costs']} ({errs})")


if __name__ == "__main__":
    main()
