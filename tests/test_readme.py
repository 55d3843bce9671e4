"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if README.exists() else []


@pytest.mark.skipif(not README.exists(), reason="README.md is not beside the tests")
@pytest.mark.parametrize("index", range(len(BLOCKS)) if BLOCKS else [0])
def test_readme_examples_run(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no skip when matplotlib or pandas is missing (the first block needs
    # both): the test extra installs them, so a missing one is a failure
    monkeypatch.chdir(tmp_path)  # the examples write files
    exec(compile(BLOCKS[index], str(README), "exec"), {})
