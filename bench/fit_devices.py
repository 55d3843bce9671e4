"""Fit the cross-device model and write the shipped device files.

``pagetab.device_model`` is fitted to every published figure that names a
device (pagetab/data/published.json) and to the test host's calibration
cases; each device of pagetab/data/devices gets its factors, its figures as
fitted, and their held-out predictions. Prints every held-out prediction.
Run it after changing the data or the model, then review and commit the
files it rewrites; tests/test_published.py checks that the shipped files
are what this fit gives.

Usage: python bench/fit_devices.py [--check]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pagetab import device_model

DEVICES = {
    "kalesh2020-arm64-5.4": {
        "arch": "arm64-4k",
        "description": "the arm64 device of Kalesh Singh's 2020 mremap series "
        "(Linux 5.4; the device is not named)",
    },
    "kalesh2020-x86-5.4": {
        "arch": "x86-64",
        "description": "the x86-64 machine of Kalesh Singh's 2020 mremap series "
        "(Linux 5.4; not named)",
    },
    "joel2018-arm64-4.9": {
        "arch": "arm64-4k",
        "description": "the arm64 device of Joel Fernandes' 2018 fast-mremap patch "
        "(Linux 4.9 by his later mails; not named)",
    },
    "joel2018-x86": {
        "arch": "x86-64",
        "description": "the x86-64 machine of Joel Fernandes' 2018 fast-mremap patch "
        "(kernel and machine not stated)",
    },
    "aneesh2021-ppc64": {
        "arch": "ppc64-radix-64k",
        "description": "the powerpc64 radix machine of Aneesh Kumar K.V's 2021 "
        "HAVE_MOVE_PMD series (not named)",
    },
}

ROOT = Path(__file__).resolve().parent.parent / "pagetab" / "data" / "devices"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true", help="compare, do not write")
    args = p.parse_args()
    console = Console()
    docs = device_model.device_documents(DEVICES)
    t = Table(title="published figures: fitted, and held out (lofo: the device's factors "
              "from its other figures; loso: its whole source held out)")  # fmt: skip
    for col in ("figure", "mode", "published us", "predicted us", "error", "within 2x"):
        t.add_column(
            col, justify="left" if col in ("figure", "mode") else "right", no_wrap=col == "figure"
        )
    for doc in docs.values():
        for r in doc["fit"] + doc["held_out"]:
            ratio = r["predicted_ns"] / r["measured_ns"]
            t.add_row(r["case"], r["mode"], f"{r['measured_ns'] / 1e3:,.1f}",
                      f"{r['predicted_ns'] / 1e3:,.1f}", f"{r['error']:+.1%}",
                      "yes" if 0.5 <= ratio <= 2 else "NO")  # fmt: skip
    console.print(t)
    held = [r for doc in docs.values() for r in doc["held_out"]]
    ok = sum(0.5 <= r["predicted_ns"] / r["measured_ns"] <= 2 for r in held)
    console.print(f"held out within 2x: {ok} of {len(held)}")
    for name, doc in docs.items():
        path = ROOT / f"{name}.json"
        f = doc["factors"]
        what = (f"speed x{f['speed']:.3g}, memory x{f['memory']:.3g}, "
                f"flush x{f['flush']:.3g}")  # fmt: skip
        if args.check:
            same = path.exists() and json.loads(path.read_text()) == doc
            print(f"{name}: {'up to date' if same else 'STALE'} ({what})")
        else:
            path.write_text(json.dumps(doc, indent=1) + "\n")
            print(f"wrote {path.name}: {what}")


if __name__ == "__main__":
    main()
