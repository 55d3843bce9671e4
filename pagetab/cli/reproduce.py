"""``pagetab reproduce``: the 2018 review thread's findings and the
published timings, each beside its simulation."""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import asdict
from typing import Any

from ..arch import device_doc, devices
from ..reproduce import (
    Anchor,
    Finding,
    Published,
    Ratio,
    published_ratios,
    reproduce_2018,
    reproduce_anchors,
    reproduce_published,
)
from ._options import add_format
from ._output import interval, print_json, say, table
from ._registry import subcommand


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def _error(x: float | None) -> str:
    return "-" if x is None else f"{x:+.0%}"


def _record(x: Finding | Published | Ratio | Anchor) -> dict[str, Any]:
    """A row as JSON: its fields, its error, whether a ratio agrees and
    whether an anchor holds."""
    out = {**asdict(x), "error": x.error}
    if isinstance(x, Ratio):
        out["agrees"] = x.agrees
    if isinstance(x, Anchor):
        out["holds"] = x.holds
    return out


#: the parts of the report, in the order printed
PARTS = ("findings", "published", "ratios", "anchors", "held-out")


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--part", choices=PARTS, action="append",
                        help="print only this part (repeatable): the 2018 thread's findings, "
                        "the published timings, their ratios under the default profiles, the "
                        "published figures that are not one move's time, or the cross-device "
                        "model's held-out predictions (default: all)")  # fmt: skip
    add_format(parser, csv=False)


def _findings(found: list[Finding]) -> None:
    """The 2018 thread's findings."""
    rows = [
        [
            f.case,
            f"{f.simulated:.1f}x",
            "-" if f.published is None else f"{f.published:.0f}x",
            _error(f.error),
            f"{f.claim} [{f.source}]",
        ]
        for f in found
    ]
    table(None, ["case", "simulated", "published", "error", "claim [source]"], rows, left=[4])


def _published(published: list[Published]) -> None:
    """The published timings under each profile."""
    rows = [
        [
            p.id,
            p.profile,
            p.path,
            _us(p.published_us),
            interval(p.low_us, p.high_us, ",.0f"),
            _us(p.simulated_us),
            interval(p.simulated_low_us, p.simulated_high_us, ",.1f"),
            _error(p.error),
            "own" if p.fitted else ("other" if p.simulated_us is not None else "-"),
            p.simulated_as,
        ]
        for p in published
    ]
    table(
        "published timings (us): each simulated single-CPU, timed once after populating, with "
        "the arch profile as shipped and as each device of its family; 'own': priced as the "
        "device that measured it, 'other': as another device (the model's shared factors were "
        "fitted to every figure: its held-out predictions are the last table)",
        [
            "id",
            "priced with",
            "path",
            "published",
            "range",
            "simulated",
            "sim. range",
            "error",
            "device",
            "simulated as",
        ],
        rows,
        left=[1, 2, 9],
    )


def _ratios(ratios: list[Ratio]) -> None:
    """Published ratios under the default profiles."""
    notes = [r.note for r in ratios if r.note]
    rows = [[r.slow, r.fast, r.profile, f"{r.published:.1f}x", f"{r.simulated:.1f}x",
             _error(r.error), "yes" if r.agrees else "no",
             f"[{notes.index(r.note) + 1}]" if r.note else ""] for r in ratios]  # fmt: skip
    table("published ratios (two timings of one device) under the ISA's default profile: "
          "each agrees within 15% or the profile says why not",
          ["slower", "faster", "priced with", "published", "simulated", "error", "agrees",
           "why not"], rows, left=[1, 2])  # fmt: skip
    for i, note in enumerate(notes, 1):
        say("\n".join(textwrap.wrap(f"[{i}] {note}", 100, subsequent_indent="    ")))


def _anchors(anchors: list[Anchor]) -> None:
    """The published figures that are not one move's time."""
    rows = [[a.id, a.quantity, f"{a.relation} {a.published:.3g}",
             "-" if a.simulated is None else f"{a.simulated:.3g}", _error(a.error),
             {True: "yes", False: "NO", None: "-"}[a.holds], a.how] for a in anchors]  # fmt: skip
    table("published figures that are not one move's time, predicted (never fitted) with "
          "the default profiles", ["entry", "quantity", "published", "simulated", "error",
          "holds", "simulated as"], rows, left=[1, 6])  # fmt: skip


def _held_out(held: list[dict[str, Any]]) -> None:
    """The cross-device model's held-out predictions."""
    rows = [[r["case"], r["mode"], _us(r["measured_ns"] / 1e3),
             _us(r["predicted_ns"] / 1e3), _error(r["error"]),
             "yes" if 0.5 <= r["predicted_ns"] / r["measured_ns"] <= 2 else "NO",
             r["factors_from"]] for r in held]  # fmt: skip
    ok = sum(r[5] == "yes" for r in rows)
    table(f"the cross-device model's held-out predictions (pagetab.device_model; lofo: the "
          f"device's factors from its other figures, loso: its whole source held out): "
          f"{ok} of {len(rows)} within 2x",
          ["figure", "held out", "published us", "predicted us", "error", "within 2x",
           "factors from"], rows, left=[1, 6])  # fmt: skip


@subcommand(
    "reproduce",
    help="the 2018 review thread's findings beside the published numbers",
    description="List the 2018 review thread's findings, the published timings and their "
    "ratios, each beside the simulator's figure and its error, and the cross-device "
    "model's predictions of every published timing held out from its fit.",
    section="data",
    arguments=_format,
)
def run(args: argparse.Namespace) -> int:
    """Print the parts asked for (all by default)."""
    parts = args.part or list(PARTS)
    data: dict[str, Any] = {}
    if "findings" in parts:
        data["findings"] = reproduce_2018()
    if "published" in parts:
        data["published"] = reproduce_published()
    if "ratios" in parts:
        data["ratios"] = published_ratios()
    if "anchors" in parts:
        data["anchors"] = reproduce_anchors()
    if "held-out" in parts:
        data["held_out"] = [{"device": d, **r} for d in devices()
                            for r in device_doc(d)["held_out"]]  # fmt: skip
    if args.json:
        print_json({k: v if k == "held_out" else [_record(x) for x in v]
                    for k, v in data.items()})  # fmt: skip
        return 0
    if "findings" in data:
        _findings(data["findings"])
    if "published" in data:
        _published(data["published"])
    if "ratios" in data:
        _ratios(data["ratios"])
    if "anchors" in data:
        _anchors(data["anchors"])
    if "held_out" in data:
        _held_out(data["held_out"])
    return 0
