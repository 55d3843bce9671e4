"""The documentation: every Python example in README.md and docs/ runs as
written, the API reference lists every public name, every public name has
a docstring, and the example notebook executes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import pagetab as pt
from pagetab.docs_check import missing_docstrings

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [
    (page, i, code)
    for page in PAGES
    if page.exists()
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]


@pytest.mark.skipif(not BLOCKS, reason="README.md and docs/ are not beside the tests")
@pytest.mark.parametrize(
    ("page", "index", "code"),
    BLOCKS or [(ROOT, 0, "")],
    ids=[f"{p.relative_to(ROOT)}:{i}" for p, i, _ in BLOCKS] or ["none"],
)
def test_examples_run(
    page: Path, index: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no skip when matplotlib, pandas or dask is missing: the test extra
    # installs them, so a missing one is a failure
    monkeypatch.chdir(tmp_path)  # the examples write files
    exec(compile(code, f"{page}:{index}", "exec"), {})


def test_the_examples_are_found() -> None:
    if not (ROOT / "docs").exists():
        pytest.skip("docs/ is not beside the tests")
    assert len(BLOCKS) >= 6, [f"{p.name}:{i}" for p, i, _ in BLOCKS]
    assert COMMANDS


COMMANDS = [
    (page, line[2:].split())
    for page in PAGES
    if page.exists()
    for line in page.read_text().splitlines()
    if line.startswith("$ pagetab ")
]


@pytest.mark.parametrize(
    ("page", "argv"), COMMANDS or [(ROOT, [])], ids=[" ".join(a) for _, a in COMMANDS] or ["none"]
)
def test_commands_shown_run(
    page: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # the pagetab commands whose output a page shows run as shown
    if not argv:
        pytest.skip("docs/ is not beside the tests")
    from pagetab.cli import main

    assert main(argv[1:]) == 0, (page, argv)
    assert capsys.readouterr().out


def test_every_public_name_has_a_docstring() -> None:
    assert missing_docstrings() == []


def test_the_api_reference_lists_every_public_name() -> None:
    api = ROOT / "docs" / "reference" / "api.md"
    if not api.exists():
        pytest.skip("docs/ is not beside the tests")
    listed = set(re.findall(r"^\s+- (\w+)$", api.read_text(), re.M))
    assert set(pt.__all__) - {"__version__"} <= listed


def test_the_notebook_executes() -> None:
    nb_path = ROOT / "docs" / "examples" / "story-2018.ipynb"
    if not nb_path.exists():
        pytest.skip("docs/ is not beside the tests")
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # the story's points, as the notebook prints them
    assert "fast-mremap-v2  unsafe entries  262144" in text
    assert "linux-5.0       unsafe entries       0" in text
    # and its chart (the Agg backend it once chose shows nothing in a notebook)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "image/png" in o.get("data", {})]  # fmt: skip
    assert shown, "the notebook's chart is not in its outputs"


def test_the_docstring_check_sees_through_generated_docstrings() -> None:
    # dataclasses and NamedTuples write a signature where a class has no
    # docstring; the check must not take that for one
    from dataclasses import dataclass
    from typing import NamedTuple

    from pagetab.docs_check import _own_doc

    @dataclass
    class Bare:
        a: int

    class Row(NamedTuple):
        a: int

    assert _own_doc(Bare, "Bare") == "" and _own_doc(Row, "Row") == ""
    assert _own_doc(pt.AddressSpace.munmap, "munmap").startswith("munmap(2)")


def test_the_readme_contend_tables_are_what_the_script_prints() -> None:
    # the README's tables come from bench/contend_answer.py --markdown (60 s
    # for 1 and 64 GiB); its 1 GiB rows and the 512 MiB grid, regenerated
    # here in seconds, must be the README's own lines
    import subprocess
    import sys

    script = ROOT / "bench" / "contend_answer.py"
    readme = ROOT / "README.md"
    if not script.exists() or not readme.exists():
        pytest.skip("bench/ and README.md are not beside the tests")
    argv = [sys.executable, str(script), "--sizes", "1G", "--markdown"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and not ln.startswith("| arch")]
    lines = set(readme.read_text().splitlines())
    assert len(rows) >= 20 and [r for r in rows if r not in lines] == []


def test_every_public_class_documents_its_fields_and_parameters() -> None:
    # numpy's docs give each class its Parameters and each attribute a line:
    # a dataclass field's docstring below it (or an Attributes entry), a
    # constructor's arguments in a Parameters section
    import ast
    import dataclasses
    import inspect
    import textwrap

    gaps = {}
    for name in pt.__all__:
        obj = getattr(pt, name)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))
        doc = ast.get_docstring(cls) or ""
        listed = set()
        m = re.search(r"Attributes\n-+\n(.*?)(\n\n[A-Z][a-z]+\n-+|\Z)", doc, re.S)
        if m:
            listed = set(re.findall(r"^(\w+)\s*:", m.group(1), re.M))
        missing = []
        for i, st in enumerate(cls.body):
            if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
                continue
            field = st.target.id
            after = cls.body[i + 1] if i + 1 < len(cls.body) else None
            documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str)  # fmt: skip
            if not field.startswith("_") and not documented and field not in listed:
                missing.append(field)
        if not dataclasses.is_dataclass(obj) and inspect.signature(obj).parameters \
                and "Parameters\n---" not in doc:  # fmt: skip
            missing.append("(a Parameters section)")
        if missing:
            gaps[name] = missing
    assert gaps == {}
