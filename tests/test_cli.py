"""The pagetab command: every subcommand, its exit status and outputs,
and fuzzed command lines (exit 0, or 2 with one usage line; never an
internal error)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import hypothesis.strategies as st
import pytest
from helpers import csv_records, results
from hypothesis import HealthCheck, given, settings

import pagetab as pt
from pagetab.cli import main, parse_size, parse_sizes

M, G = 1 << 20, 1 << 30
SUBCOMMANDS = [
    "compare",
    "sweep",
    "move",
    "archs",
    "policies",
    "reproduce",
    "host",
    "calibrate",
    "gc",
    "contend",
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagetab", *args], capture_output=True, text=True, check=False
    )


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main() in this process; SystemExit (argparse) becomes the status."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_on_every_subcommand(sub: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([sub, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: pagetab {sub}")


def test_top_level_help_and_module_entry() -> None:
    r = run_cli("--help")
    assert r.returncode == 0 and all(s in r.stdout for s in SUBCOMMANDS)


def test_compare_table_json_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "compare",
        "--size",
        "8M,16M",
        "--arch",
        "x86-64,arm64-4k",
        "--policy",
        "all",
        "--cpus",
        "2",
    ]
    code, out, _ = run([*argv, "--csv", str(tmp_path / "c.csv")], capsys)
    assert code == 0
    assert (
        out.count("UNSAFE") == 3 * 2 * 2
    )  # linux-4.9, linux-4.18, fast-mremap-v2; 2 sizes, 2 archs
    assert "vs linux-4.19" in out and all(p in out for p in pt.policies())
    rows = csv_records((tmp_path / "c.csv").read_text())
    assert len(rows) == 2 * 2 * len(pt.policies())
    code, out, _ = run([*argv, "--json", "--baseline", "linux-5.0"], capsys)
    data = results(out)
    assert code == 0 and len(data) == len(rows)
    assert all(r["ratio"] == 1.0 for r in data if r["policy"] == "linux-5.0")
    code, _, _ = run([*argv, "--fail-unsafe"], capsys)
    assert code == 1
    code, _, _ = run(["compare", "--size", "8M", "--policy", "linux-5.0", "--fail-unsafe"], capsys)
    assert code == 0


def test_default_command_is_compare(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--size", "4M", "--arch", "ppc64-radix-64k", "--json"], capsys)
    assert code == 0 and {r["arch"] for r in results(out)} == {"ppc64-radix-64k"}


def test_sweep_writes_csv_json_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    csv_, js, png = tmp_path / "s.csv", tmp_path / "s.json", tmp_path / "s.png"
    r = run_cli(
        "sweep",
        "--size",
        "4M..16M",
        "--arch",
        "x86-64",
        "--policy",
        "linux-4.19,linux-5.0",
        "--csv",
        str(csv_),
        "--json-out",
        str(js),
        "--plot",
        str(png),
        "--jobs",
        "2",
        "--progress",
    )
    assert r.returncode == 0, r.stderr
    assert len(csv_records(csv_.read_text())) == 3 * 2
    assert {d["size"] for d in results(js.read_text())} == {4 * M, 8 * M, 16 * M}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "sweep: 6 moves" in r.stdout


def test_move_details(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["move", "--size", "64M", "--align", "page", "--policy", "linux-4.19", "--json"], capsys
    )
    assert code == 0
    d = results(out)
    assert d["ptes_moved"] == 64 * M // 4096 and d["estimated_ns"] > 0
    code, out, _ = run(
        ["move", "--size", "8M", "--policy", "fast-mremap-v2", "--fail-unsafe"], capsys
    )
    assert code == 1 and "UNSAFE" in out and "normal_pmds_moved" in out
    code, out, _ = run(
        [
            "move",
            "--arch",
            "arm64-64k",
            "--size",
            "1G",
            "--align",
            "pud",
            "--populate",
            "read",
            "--policy",
            "linux-5.11",
        ],
        capsys,
    )
    assert code == 0 and "normal_puds_moved" in out


@pytest.mark.parametrize("sub", ["archs", "policies", "reproduce"])
def test_listings(sub: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([sub], capsys)
    assert code == 0 and out.strip()
    code, out, _ = run([sub, "--json"], capsys)
    data = results(out)
    assert code == 0 and data
    if sub == "archs":
        assert [d["name"] for d in data] == pt.archs() and all(d["source"] for d in data)
    if sub == "policies":
        assert [d["name"] for d in data] == pt.policies()
        assert any("eb66ae030829" in d["source"] for d in data)
    if sub == "reproduce":
        assert any(round(d["published"] or 0) == 34 for d in data["findings"])
        kalesh = {d["id"]: d for d in data["published"]}["kalesh2020-arm64-1g-pud"]
        assert kalesh["published_us"] == pytest.approx(59.3957) and kalesh["simulated_us"] > 0


def test_unknown_subcommand_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    # not taken for the default subcommand: `pagetab defrag --help` printed
    # compare's help and exited 0
    for argv in (["defrag", "--help"], ["defrag"], ["4M"]):
        code, out, err = run(argv, capsys)
        assert code == 2 and not out and len(err.strip().splitlines()) == 1, (argv, err)
        assert f"invalid choice: '{argv[0]}'" in err and all(s in err for s in SUBCOMMANDS)
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and out.startswith("usage: pagetab [-h] [--version] SUBCOMMAND")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["compare", "--size", "1Q"], "--size"),
        (["compare", "--size", "8G..1G"], "--size"),
        (["compare", "--size", "-4K"], "--size"),
        (["compare", "--arch", "vax"], "--arch"),
        (["compare", "--policy", "linux-9"], "--policy"),
        (["move", "--cpus", "0"], "--cpus"),
        (["move", "--populate", "lots"], "--populate"),
        (["sweep", "--jobs", "x"], "--jobs"),
        (["move", "--align", "2m"], "--align"),
        (["frobnicate"], "frobnicate"),
        (["host", "--repeats", "0"], "--repeats"),
        (["move", "--size", "6K", "--arch", "arm64-16k"], "16384"),
        (["sweep", "--size", "4K..64K", "--arch", "x86-64,arm64-64k"], "65536"),
        (["host", "--size", "3M"], "--size"),
        (["move", "--size", "6K", "--arch", "arm64-16k", "--debug"], "16384"),
        # each failed before: exit 1 "internal error", "invalid _host_size
        # value", "expected one argument", silently 2M and 4M, accepted
        (["gc", "--size", "3K"], "--size 3K"),
        (["host", "--size", "0"], "> 0"),
        (["move", "--size", "-1G"], "> 0"),
        (["compare", "--size", "2M..6M"], "not to 6M"),
        (["compare", "--arch", "x86-64,,arm64-4k"], "empty arch"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2 and option in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("sub", ["move", "compare", "sweep", "contend", "gc", "replay"])
def test_every_pricing_subcommand_takes_a_calibration(
    sub: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # pagetab calibrate's file was readable by replay alone
    cal = ["--calibration", "example:host-calibration"]
    what = ["example:threaded_moves"] if sub == "replay" else ["--size", "2M", "--arch", "x86-64"]
    code, out, err = run([sub, *what, "--policy", "linux-6.18", *cal, "--json"], capsys)
    assert code == 0, err
    rows = results(out)
    rows = rows if isinstance(rows, list) else [rows]
    assert rows and all(r["arch"] == "x86-64@calibrated" for r in rows), rows[0]
    # another arch's calibration, and a file that is none, are usage errors
    if sub != "replay":
        code, _, err = run([sub, "--size", "2M", "--arch", "arm64-4k", *cal], capsys)
        assert code == 2 and "calibrated for 'x86-64', not 'arm64-4k'" in err, err
    code, _, err = run([sub, *what, "--calibration", "example:nope"], capsys)
    assert code == 2 and "unknown example trace 'nope'" in err, err


def test_host_refuses_a_region_the_machine_cannot_hold(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `pagetab host --size 1T` used to map 1 TiB in the real kernel whatever
    # the machine had: a zero-page region costs 2 GiB of page tables per TiB
    # there, and as much in the simulator
    from pagetab import host

    monkeypatch.setattr(host, "mem_available", lambda: 6 << 30)
    code, _, err = run(["host", "--size", "1T"], capsys)
    assert code == 2 and "needs 4.0 GiB" in err and "6.0 GiB available" in err, err
    with pytest.raises(ValueError, match=r"needs 4\.0 GiB for its pages"):
        host.check_fits(4 << 30, "write")
    host.check_fits(256 << 30, "zero")  # 1 GiB of tables: fits in half of 6 GiB
    host.check_fits(1 << 40, "none")  # nothing populated: nothing needed


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["move", "--size", "4M"], "pagetab.experiment.run_move"),
        (["compare", "--size", "4M", "--policy", "linux-5.0"], "pagetab.experiment.compare"),
        (["sweep", "--size", "4M", "--policy", "linux-5.0"], "pagetab.experiment.sweep"),
        (["archs"], "pagetab.cli.archs.arch"),
    ],
)
@pytest.mark.parametrize("error", [ValueError, TypeError])
def test_internal_error_is_exit_1_not_bad_usage(
    argv: list[str],
    target: str,
    error: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # valid arguments: a ValueError or TypeError from inside is a bug
    def broken(*args: object, **kwargs: object) -> None:
        raise error("simulated\nbug")

    monkeypatch.setattr(target, broken)
    code, _, err = run(argv, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"internal error: {error.__name__}: simulated bug" in err and "--debug" in err
    assert "Traceback" not in err
    code, _, err = run([*argv, "--debug"], capsys)
    assert code == 1 and err.startswith("Traceback (most recent call last):"), err
    assert "in broken" in err and err.strip().endswith(f"{error.__name__}: simulated\nbug")


def test_unwritable_output_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "compare",
            "--size",
            "4M",
            "--policy",
            "linux-5.0",
            "--csv",
            str(tmp_path / "no" / "such" / "dir.csv"),
        ],
        capsys,
    )
    assert code == 1 and "failed" in err


def test_parse_sizes() -> None:
    assert parse_size("4K") == 4096 and parse_size("1g") == G and parse_size("2MB") == 2 * M
    assert parse_size("8192") == 8192 and parse_size("1T") == 1 << 40
    assert parse_sizes("1G..8G") == [G, 2 * G, 4 * G, 8 * G]
    assert parse_sizes("4K,1G..2G,4K") == [4096, G, 2 * G]


_TEXT = st.text(alphabet="0123456789KMGTkmgt.,-x ", max_size=8)
_OPTION_VALUES = {
    # valid sizes stay small; the rest cannot parse (no digits)
    "--size": st.sampled_from(["4K", "2M", "8M", "16M", "4M..16M", "0", "1Q"])
    | st.text(alphabet="KMGT.,-x ", max_size=6),
    "--arch": st.sampled_from([*pt.archs(), "all", "vax", ""]),
    "--policy": st.sampled_from([*pt.policies(), "linux-4.19,linux-5.0", "nope"]),
    "--populate": st.sampled_from(
        ["write", "read", "thp", "sparse", "write:0.5,thp:0.5", "write:2", "x:1"]
    )
    | _TEXT,
    "--align": st.sampled_from(["pud", "pmd", "page", "1m"]),
    "--src-align": st.sampled_from(["pud", "pmd", "page", "huge"]),
    "--cpus": st.sampled_from(["1", "4", "256", "257", "0", "-1", "two"]),
    "--baseline": st.sampled_from(["linux-4.19", "linux-6.8", "bogus"]),
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(sub=st.sampled_from(["compare", "move"]), data=st.data())
def test_fuzzed_command_lines_exit_cleanly(
    sub: str, data: st.DataObject, capsys: pytest.CaptureFixture[str]
) -> None:
    opts = data.draw(st.lists(st.sampled_from(sorted(_OPTION_VALUES)), max_size=5, unique=True))
    # small unless the fuzzer replaces it; --debug: an internal error prints its traceback
    argv = [sub, "--size", "4M", "--json", "--debug"]
    for o in opts:
        if sub == "move" and o in ("--baseline",):
            continue
        value = data.draw(_OPTION_VALUES[o])
        if sub == "move" and o in ("--arch", "--policy") and "," in value:
            value = value.split(",")[0]
        argv += [o, value]
    code, out, err = run(argv, capsys)
    # a valid command line moves (exit 0), anything else is bad usage (exit
    # 2, one line); an internal error (exit 1, a traceback) is a bug
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith(f"pagetab {sub}: error: "), (argv, err)
    else:
        assert not err, (argv, err)
        results(out)


def test_compare_shows_the_single_cpu_move_beside(capsys: pytest.CaptureFixture[str]) -> None:
    # published measurements are single-threaded: the default comparison
    # prices the same moves with one CPU in mm_cpumask too
    argv = ["compare", "--size", "64M", "--arch", "x86-64", "--policy", "linux-5.0"]
    code, out, _ = run([*argv, "--cpus", "4"], capsys)
    assert code == 0 and "1 CPU us" in out
    code, out, _ = run([*argv, "--cpus", "4", "--json"], capsys)
    (row,) = results(out)
    one = pt.run_move(64 << 20, "x86-64", "linux-5.0", cpus=1)
    assert row["estimated_ns_1cpu"] == pytest.approx(one.estimated_ns)
    assert row["estimated_ns"] > row["estimated_ns_1cpu"]  # the flush IPIs to 3 other CPUs
    code, out, _ = run([*argv, "--cpus", "1", "--json"], capsys)
    assert "estimated_ns_1cpu" not in results(out)[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"pagetab {pt.__version__}"
    # the one place it is written is what the installed metadata says
    from importlib.metadata import version

    assert version("pagetab") == pt.__version__


def test_contend_table_json_files_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["contend", "--size", "64M", "--arch", "x86-64", "--policy",
            "linux-4.19,fast-mremap-v2,linux-6.8", "--threads", "2", "--where", "inside",
            "--span", "2M", "--accesses", "5000"]  # fmt: skip
    code, out, _ = run([*argv, "--csv", str(tmp_path / "c.csv")], capsys)
    assert code == 0
    assert out.count("UNSAFE") == 1 and "2xinside" in out and "per-vma" in out
    rows = csv_records((tmp_path / "c.csv").read_text())
    assert [r["policy"] for r in rows] == ["linux-4.19", "fast-mremap-v2", "linux-6.8"]
    assert int(rows[1]["unsafe_hits"]) > 0 and int(rows[0]["unsafe_hits"]) == 0
    code, out, _ = run([*argv, "--json"], capsys)
    assert code == 0 and results(out)[2]["locking"] == "per-vma"
    code, out, _ = run([*argv, "--json", "--accesses", "1", "--think-ns", "50",
                        "--through-move"], capsys)  # fmt: skip
    assert code == 0 and all(r["accesses"] > 2 for r in results(out))
    code, _, err = run(["contend", "--size", "64M", "--threads", "3", "--cpus", "2"], capsys)
    assert code == 2 and "3 threads need 4 CPUs" in err
    code, _, err = run(["contend", "--size", "64M", "--span", "1G", "--where", "inside"], capsys)
    assert code == 2 and "span" in err


def test_json_output_is_json_even_where_a_figure_is_nan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # JSON has no NaN or Infinity: such a figure is null (the gc command's
    # latencies of an empty histogram were NaN)
    from pagetab.results import json_text

    def strict(text: str) -> object:
        def refuse(name: str) -> None:
            raise ValueError(f"not JSON: {name}")

        return json.loads(text, parse_constant=refuse)

    assert strict(json_text({"a": float("nan"), "b": [1.5, float("-inf")], "c": (2,)})) == {
        "a": None, "b": [1.5, None], "c": [2]}  # fmt: skip
    assert main(["gc", "--json"]) == 0
    strict(capsys.readouterr().out)


def test_sweep_jobs_are_capped_at_what_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # --jobs 100000 started that many workers for two moves
    from concurrent.futures import ThreadPoolExecutor

    import pagetab.cli.sweep as sweep_cli

    asked: list[int] = []

    class Recording(ThreadPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            asked.append(max_workers)
            super().__init__(max_workers)

    monkeypatch.setattr(sweep_cli, "ProcessPoolExecutor", Recording)
    argv = ["sweep", "--size", "2M", "--arch", "x86-64", "--policy", "linux-6.8,linux-6.18",
            "--jobs", "100000", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    import os

    assert asked == [min(2, len(os.sched_getaffinity(0)))]  # two moves, one worker per CPU


def test_outputs_go_to_stdout_with_a_dash_and_carry_the_tables_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--csv -` wrote a file named "-"; the table's "1 CPU us" was in --json only
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--size", "2M", "--arch", "x86-64", "--policy", "linux-6.18"]
    code, out, _ = run([*argv, "--csv", "-", "--json-out", str(tmp_path / "o.json")], capsys)
    assert code == 0 and not (tmp_path / "-").exists()
    rows = csv_records(out[out.index("arch,policy") :])
    saved = results((tmp_path / "o.json").read_text())
    assert len(rows) == len(saved) == 1
    one = saved[0]["estimated_ns_1cpu"]
    assert float(rows[0]["estimated_ns_1cpu"]) == one < saved[0]["estimated_ns"]


def test_a_narrow_terminal_folds_cells_and_keeps_every_digit() -> None:
    # at 80 columns rich had cut every cell to "x8…"
    from rich.console import Console

    from pagetab.results import rich_table

    head = ["arch", "size", "policy", "ptes", "est. us", "est. range us"]
    row = ["arm64-4k", "1G", "linux-4.19", "262144", "3797.9", "1242.6-9015.3"]
    con = Console(width=40, force_terminal=True, no_color=True, file=io.StringIO())
    con.print(rich_table(head, [row], right_from=3))
    text = con.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text
    flat = re.sub(r"\s+", "", re.sub(r"\x1b\[[0-9;]*m", "", text))
    for cell in ("262144", "3797.9", "1242.6-9015.3"):
        # each number's digits in order, whatever lines it folded over
        assert re.search(".*?".join(map(re.escape, cell)), flat), cell
