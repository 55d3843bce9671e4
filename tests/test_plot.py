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
    res = pt.compare([2 << 20], ["x86-64"], pt.policies())
    fig, ax = plt.subplots()
    res.plot(ax=ax)
    colours = [
        tuple(line.get_color()) for line in ax.lines if not line.get_label().startswith("unsafe")
    ]  # (the red x of unsafe moves)
    assert len(colours) == len(pt.policies()) > 10
    assert len(set(colours)) == len(colours)  # linux-4.9 and batched-ptl were both blue
    plt.close(fig)


def test_the_command_line_refuses_an_unknown_plot_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(["compare", "--size", "2M", "--plot", str(tmp_path / "x.txt")])
    assert e.value.code == 2 and "extension must be one of" in capsys.readouterr().err
    assert main(["compare", "--size", "2M,4M", "--arch", "x86-64", "--policy", "linux-6.18",
                 "--plot", str(tmp_path / "x.pdf")]) == 0  # fmt: skip
    assert (tmp_path / "x.pdf").read_bytes()[:4] == b"%PDF"
