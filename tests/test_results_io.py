"""How result collections show themselves in a REPL and a notebook: the
summary table, not ``<pagetab.experiment.Results object at 0x...>``."""

from __future__ import annotations

import html
import re

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
