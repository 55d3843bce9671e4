"""No module of the package reads another module's private names.

A name with one leading underscore belongs to the module that defines it:
another module may neither import it nor reach it as an attribute
(``mm._vmas``, ``experiment._bases``). The scan reads the sources with
``ast``: for each module, the private names it defines (functions,
classes, module globals, attributes it assigns, class fields and
parameters), then every private attribute or import it uses that it does
not define itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pagetab

SOURCE = Path(pagetab.__file__).resolve().parent
#: the package's modules: ``_move`` and the other extensions are modules,
#: private to the package, not names private to a module
MODULES = {p.stem for p in SOURCE.rglob("*") if p.suffix in (".py", ".pyx")}
#: namedtuple's public API, spelled with an underscore so as not to clash with fields
NAMEDTUPLE = {"_replace", "_asdict", "_fields", "_make"}
#: the standard library's public names spelled with an underscore (os._exit:
#: leave a forked child without running the parent's cleanup)
STDLIB = {"_exit"}


def _private(name: str) -> bool:
    """One leading underscore, not a dunder nor a sunder (``_repr_html_``),
    nor a module of the package or namedtuple's API."""
    return (name.startswith("_") and not name.startswith("__") and not name.endswith("_")
            and name not in MODULES and name not in NAMEDTUPLE and name not in STDLIB)  # fmt: skip


def defined(tree: ast.AST) -> set[str]:
    """The private names a module defines."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.alias) and node.asname:
            out.add(node.asname)
    return {n for n in out if _private(n)}


def foreign(path: Path) -> list[str]:
    """Where ``path`` reads a private name it does not define."""
    tree = ast.parse(path.read_text(), str(path))
    own = defined(tree)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            bad.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                # `from . import _move` loads a module of the package; a name
                # imported from a module (`from .cost import _flush`) is that
                # module's, even when a module of the package has its name
                module = not node.module and a.name in MODULES
                if a.name.startswith("_") and not a.name.startswith("__") and not module:
                    bad.append(f"{path.name}:{node.lineno}: imports {a.name}")
    return bad


def test_no_module_reads_another_modules_private_names() -> None:
    bad = [b for p in sorted(SOURCE.rglob("*.py")) for b in foreign(p)]
    assert not bad, "private names read from outside their module:\n" + "\n".join(bad)


def test_the_scan_sees_what_it_must(tmp_path: Path) -> None:
    """The scan on a made-up module: what it flags and what it lets be."""
    src = tmp_path / "m.py"
    src.write_text(
        "from .other import _hidden, public\n"
        "from . import _move\n"
        "from .cost import _move\n"
        "import numpy as _np\n"
        "class C:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def f(self, other):\n"
        "        return self._mine + other._mine + other._theirs + _np.zeros(1)\n"
        "    def _repr_html_(self):\n"
        "        return self.__class__\n"
    )
    assert foreign(src) == ["m.py:1: imports _hidden", "m.py:3: imports _move",
                            "m.py:9: ._theirs"]  # fmt: skip
