"""Every command output the docs show is generated: a block marked

    <!-- output: pagetab ARGS... -->
    ```text
    ...
    ```

is what ``python -m pagetab ARGS`` prints (stdout), run from the repository
root. ``PAGETAB_UPDATE_DOCS=1 python -m pytest tests/test_docs_outputs.py``
rewrites the blocks from the commands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"<!-- output: (?P<cmd>pagetab [^\n]+?) -->\n```text\n(?P<out>.*?)```", re.S)
#: wall-clock figures, masked on both sides
WALL = re.compile(r"\b\d[\d,.]* ?(?:s|ms) wall\b")
#: a table column of the simulator's own time, masked on both sides
WALL_COLUMN = "sim ms"


def mask(text: str) -> str:
    """``text`` with its wall-clock figures masked: WALL matches, and the
    cell of each row under a ``WALL_COLUMN`` header (right-aligned: the
    token ending where the header ends)."""
    out, end = [], None
    for line in WALL.sub("<wall>", text).splitlines():
        if WALL_COLUMN in line:
            end = line.index(WALL_COLUMN) + len(WALL_COLUMN)
        elif not line.strip():
            end = None
        elif end is not None and len(line) >= end and not line[end - 1].isspace():
            line = re.sub(r"\s*\S+$", " <wall>", line[:end]) + line[end:]
        out.append(line)
    return "\n".join(out)


BLOCKS = [(p, m["cmd"]) for p in PAGES if p.exists() for m in BLOCK.finditer(p.read_text())]


def run(cmd: str) -> str:
    argv = shlex.split(cmd)[1:]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "pagetab", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    # 1 is a replay's "differences found"; anything else, or nothing printed,
    # is a command the docs must not show as its output
    assert proc.returncode in (0, 1) and proc.stdout.strip(), (cmd, proc.returncode, proc.stderr)
    out = proc.stdout
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


@pytest.mark.skipif(not BLOCKS, reason="no generated blocks beside the tests")
@pytest.mark.parametrize(("page", "cmd"), BLOCKS, ids=[f"{p.name}:{c[:60]}" for p, c in BLOCKS])
def test_the_docs_show_what_the_command_prints(page: Path, cmd: str) -> None:
    got = run(cmd)
    if os.environ.get("PAGETAB_UPDATE_DOCS"):
        text = page.read_text()
        m = next(m for m in BLOCK.finditer(text) if m["cmd"] == cmd)
        page.write_text(text[: m.start("out")] + got + text[m.end("out") :])
        return
    shown = next(m["out"] for m in BLOCK.finditer(page.read_text()) if m["cmd"] == cmd)
    assert mask(shown) == mask(got)


def test_the_wall_column_is_masked_and_nothing_else() -> None:
    table = "x\n  a   sim ms   b\n  1     2.43   3\n  2   101.00   4\n\n  9   8.00   7\n"
    same = table.replace("2.43", "9.99").replace("101.00", "  1.00")  # right-aligned
    assert mask(table) == mask(same)
    assert mask(table) != mask(table.replace("   3", "   5"))
    assert "8.00" in mask(table)  # a row after a blank line is not under the header


def test_blocks_are_found() -> None:
    if not (ROOT / "docs").exists():
        pytest.skip("docs/ is not beside the tests")
    assert any("replay" in c for _, c in BLOCKS)
