"""How result collections show themselves in a REPL and a notebook: the
summary table, not ``<pagetab.experiment.Results object at 0x...>``."""

from __future__ import annotations

import html
import re

import pytest

import pagetab as pt


def test_results_show_their_table_in_a_repl_and_a_notebook() -> None:
    res = pt.compare(sizes=[2 << 20], archs=["x86-64"], policies=["linux-4.19", "linux-6.18"])
    head, rows = res.cells()
    text = repr(res)
    assert text.startswith("Results(2 results, baseline='linux-4.19')\n")
    assert "object at 0x" not in text and all(h in text for h in head)
    page = res._repr_html_()
    # one header cell per column, one row per result, every cell escaped
    assert re.findall(r"<th>(.*?)</th>", page) == [html.escape(h) for h in head]
    got = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", page)]
    assert got[1:] == [[html.escape(str(c)) for c in r] for r in rows]
    gc = pt.compare_gc(64 << 10, policies=["linux-6.8", "linux-6.18"])
    assert repr(gc).startswith(f"GcResults({len(gc)} results, baseline=")
    assert "<table>" in gc._repr_html_()


# -- formats, metadata, units ------------------------------------------------


def _run(capsys, *argv: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    from pagetab.cli import main

    code = main(list(argv))
    return code, capsys.readouterr().out


MOVE = ("--size", "4M", "--arch", "x86-64", "--policy", "linux-5.0,linux-6.18")


def test_format_prints_the_records_as_csv_json_or_markdown(capsys) -> None:  # type: ignore[no-untyped-def]
    from helpers import csv_records, results

    code, out = _run(capsys, "compare", *MOVE, "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    # metadata first, in # lines: schema and version, the command, the host, units
    assert lines[0].startswith("# pagetab-results/1, pagetab ")
    assert lines[1] == "# command: pagetab compare " + " ".join(MOVE) + " --format csv"
    assert lines[2].startswith("# host: ") and "units: " in lines[3]
    assert "ptes_moved=entries" in lines[3] and "estimated_ns=ns" in lines[3]
    rows = csv_records(out)  # then the records alone: no table, no title
    assert [r["policy"] for r in rows] == ["linux-5.0", "linux-6.18"]
    assert all(not ln.startswith(("|", " ")) for ln in lines)
    # --format json is --json: a document with metadata, units and the records
    code, out = _run(capsys, "compare", *MOVE, "--format", "json")
    code2, out2 = _run(capsys, "compare", *MOVE, "--json")
    assert code == code2 == 0
    assert [r["policy"] for r in results(out)] == [r["policy"] for r in results(out2)]
    import json

    doc = json.loads(out)
    assert doc["meta"]["command"][:2] == ["pagetab", "compare"]
    assert doc["meta"]["host"]["kernel"]
    assert doc["columns"]["ptes_moved"] == {"unit": "entries",
                                            "description": "PTEs moved by move_ptes"}  # fmt: skip
    assert doc["columns"]["op_ipi"]["unit"] == "IPIs"
    assert doc["columns"]["lock_ptl_pte"]["unit"] == "acquisitions"
    assert doc["columns"]["ns_tlb_flush"]["unit"] == "ns"
    # markdown: a pipe table, numbers right-aligned
    code, out = _run(capsys, "compare", *MOVE, "--format", "markdown")
    table = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert code == 0 and len(table) == 2 + 2 and table[1].startswith("|:---|:---|:---|---:")
    assert "| linux-6.18 |" in table[3]


def test_every_subcommand_with_records_prints_csv(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from helpers import csv_records

    for argv, n in ((["move", "--size", "2M"], 1),
                    (["contend", "--size", "2M", "--policy", "linux-6.18", "--accesses", "100"], 2),
                    (["gc", "--size", "1M", "--policy", "linux-6.18"], 2),
                    (["archs"], len(pt.archs())), (["policies"], len(pt.policies())),
                    (["replay", "example:grow_bytearray"], 5)):  # fmt: skip
        code, out = _run(capsys, *argv, "--format", "csv")
        assert code == 0, argv
        rows = csv_records(out)
        # the metadata, then the header: no report line between them
        first = next(ln for ln in out.splitlines() if not ln.startswith("#"))
        assert first == ",".join(rows[0]) and first.startswith(("arch,", "name,")), argv
        assert len(rows) >= n if argv[0] in ("contend", "gc", "replay") else len(rows) == n
    # --csv FILE carries the same metadata lines
    code, _ = _run(capsys, "compare", *MOVE, "--csv", str(tmp_path / "c.csv"))
    text = (tmp_path / "c.csv").read_text()
    assert code == 0 and text.startswith("# pagetab-results/1") and len(csv_records(text)) == 2
    # where a subcommand has no records, csv is not offered
    from pagetab.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--format", "csv"])
    assert exit_.value.code == 2 and "invalid choice: 'csv'" in capsys.readouterr().err


def test_counters_have_units_and_descriptions() -> None:
    from pagetab.results import column_info
    from pagetab.stats import COUNTER_NAMES, LOCK_CLASSES, OP_NAMES

    res = pt.compare(sizes=[2 << 20], archs=["x86-64"], policies=["linux-6.18"])
    cols = res.columns()
    for name in COUNTER_NAMES:
        assert cols[name]["unit"] and cols[name]["description"], name
    for name in OP_NAMES:
        info = column_info("op_" + name)
        assert info is not None and info.unit and info.description, name
    for name in LOCK_CLASSES:
        info = column_info("lock_" + name)
        assert info is not None and info.unit == "acquisitions" and info.description
    assert pt.COUNTER_INFO["unsafe_entries"].unit == "entries"
    assert column_info("arch") is None  # a name, not a quantity


def test_gc_columns_are_uffdio_move_s_and_the_command_line_stays_one_line() -> None:
    from pagetab.results import csv_text

    gc = pt.compare_gc(1 << 20, archs=["x86-64"], policies=["linux-6.18"])
    cols = gc.columns()
    assert cols["ns_per_mb"]["unit"] == "ns/MiB"  # not an "ns_" category of the estimate
    assert cols["ptes_moved"]["description"].startswith("UFFDIO_MOVE")  # not move_ptes'
    text = csv_text(gc.rows(), ["pagetab", "gc", "--json-out", "/tmp/a\nb c.json"])
    assert text.splitlines()[1] == "# command: pagetab gc --json-out '/tmp/a\\nb c.json'"
