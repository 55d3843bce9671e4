"""Plots as matplotlib users expect them: on an Axes the caller gives, or a
new figure; the Axes returned; the file format its extension names, an
unknown one refused before anything is drawn; one colour per policy."""

from __future__ import annotations

from pathlib import Path

import pytest

import pagetab as pt
from pagetab.cli import main
from pagetab.plot import PLOT_FORMATS

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_every_format_offered_is_one_matplotlib_writes() -> None:
    fig = plt.figure()
    assert set(PLOT_FORMATS) <= set(fig.canvas.get_supported_filetypes())
    plt.close(fig)


def test_a_plot_draws_on_the_callers_axes_and_writes_the_format_asked(tmp_path: Path) -> None:
    res = pt.compare([2 << 20, 8 << 20], ["x86-64"], ["linux-4.19", "linux-6.18"])
    fig, ax = plt.subplots()
    assert res.plot(ax=ax) is ax and len(ax.lines) == 2  # one line per policy
    plt.close(fig)
    for ext, magic in (("svg", b"<svg"), ("pdf", b"%PDF"), ("png", b"\x89PNG")):
        out = tmp_path / f"r.{ext}"
        got = res.plot(out)
        assert got is not None and magic in out.read_bytes()[:400], ext
    with pytest.raises(ValueError, match=r"\.png, \.pdf"):
        res.plot(tmp_path / "r.txt")  # was written as PNG data
    assert not (tmp_path / "r.txt").exists()


def test_eleven_policies_get_eleven_colours() -> None:
    res = pt.compare([2 << 20, 4 << 20], ["x86-64"], pt.policies())
    fig, ax = plt.subplots()
    res.plot(ax=ax)
    colours = [
        tuple(line.get_color()) for line in ax.lines if not line.get_label().startswith("unsafe")
    ]  # (the red x of unsafe moves)
    assert len(colours) == len(pt.policies()) > 10
    assert len(set(colours)) == len(colours)  # linux-4.9 and batched-ptl were both blue
    plt.close(fig)


def test_one_size_is_a_bar_per_policy_with_its_range() -> None:
    # a column of unlabelled points before
    res = pt.compare([1 << 30], ["x86-64"], pt.policies())
    fig, ax = plt.subplots()
    res.plot(ax=ax)
    bars = ax.patches
    assert len(bars) == len(pt.policies())
    # top to bottom in policy order, unsafe ones named so
    labels = [
        t.get_text() for t in sorted(ax.get_yticklabels(), key=lambda t: -t.get_position()[1])
    ]
    ordered = sorted(res, key=lambda r: pt.policies().index(r.policy))
    assert labels == [r.policy + ("" if r.safe else " (UNSAFE)") for r in ordered]
    # bars from the top in policy order; lengths are the estimates in us
    widths = [b.get_width() for b in sorted(bars, key=lambda b: -b.get_y())]
    assert widths == pytest.approx([r.estimated_ns / 1e3 for r in ordered])
    assert len({tuple(b.get_facecolor()) for b in bars}) == len(bars) > 10
    # the interval: an error bar from the range's low to its high end
    (errbar,) = [c for c in ax.containers if hasattr(c, "has_xerr") and c.has_xerr]
    segments = errbar.lines[2][0].get_segments()
    spans = sorted((round(seg[0][0], 6), round(seg[1][0], 6)) for seg in segments)
    assert spans == sorted((round(r.estimated_ns_range[0] / 1e3, 6),
                            round(r.estimated_ns_range[1] / 1e3, 6)) for r in ordered)  # fmt: skip
    plt.close(fig)


def test_lines_carry_their_range_as_a_band() -> None:
    res = pt.compare([2 << 20, 8 << 20], ["x86-64"], ["linux-4.19", "linux-6.18"])
    fig, ax = plt.subplots()
    res.plot(ax=ax)
    bands = ax.collections
    assert len(bands) == 2  # one per policy
    for band, pol in zip(bands, ["linux-4.19", "linux-6.18"], strict=True):
        ys = band.get_paths()[0].vertices[:, 1]
        rs = [r for r in res if r.policy == pol]
        assert min(ys) == pytest.approx(min(r.estimated_ns_range[0] for r in rs) / 1e3)
        assert max(ys) == pytest.approx(max(r.estimated_ns_range[1] for r in rs) / 1e3)
    plt.close(fig)


def test_log_axes_label_plain_numbers() -> None:
    # arm64's p99 ticks read 1.055x10^3; a narrow log range labels its minor ticks
    res = pt.compare_concurrent(64 << 20, "arm64-4k", ["linux-5.0", "linux-6.18"],
                                threads=1)  # fmt: skip
    fig, ax = plt.subplots()
    res.plot(ax=ax)
    fig.canvas.draw()
    texts = [t.get_text() for axis in (ax.xaxis, ax.yaxis)
             for t in axis.get_ticklabels(minor=True) + axis.get_ticklabels()]  # fmt: skip
    assert texts and not [t for t in texts if "times" in t or "10^" in t]  # mathtext
    plt.close(fig)


def test_gc_and_move_plot_their_estimates(tmp_path: Path) -> None:
    gc = pt.compare_gc(1 << 20, archs=["x86-64"], policies=["linux-6.8", "linux-6.18"])
    fig, ax = plt.subplots()
    assert gc.plot(ax=ax) is ax and len(ax.patches) == 2
    assert [b.get_width() for b in sorted(ax.patches, key=lambda b: -b.get_y())] == \
        pytest.approx([r.estimated_ns / 1e3 for r in gc])  # fmt: skip
    plt.close(fig)
    r = pt.run_move(1 << 30, policy="linux-6.18")
    fig, ax = plt.subplots()
    r.plot(ax=ax)
    shown = {t.get_text() for t in ax.get_yticklabels()}
    assert shown == {k for k, v in r.breakdown.items() if v}
    assert sum(b.get_width() for b in ax.patches) == pytest.approx(r.estimated_ns / 1e3)
    plt.close(fig)
    for argv, out, magic in ((["gc", "--size", "1M"], "g.svg", b"<svg"),
                             (["move", "--size", "64M"], "m.pdf", b"%PDF")):  # fmt: skip
        assert main([*argv, "--plot", str(tmp_path / out)]) == 0
        assert magic in (tmp_path / out).read_bytes()[:400]


def test_the_command_line_refuses_an_unknown_plot_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["compare", "--size", "2M", "--plot", str(tmp_path / "x.txt")])
    assert e.value.code == 2 and "extension must be one of" in capsys.readouterr().err
    assert main(["compare", "--size", "2M,4M", "--arch", "x86-64", "--policy", "linux-6.18",
                 "--plot", str(tmp_path / "x.pdf")]) == 0  # fmt: skip
    assert (tmp_path / "x.pdf").read_bytes()[:4] == b"%PDF"
