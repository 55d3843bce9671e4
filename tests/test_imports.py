"""The package's modules import each other in layers, without a cycle.

The import graph is read from the sources (``ast`` for .py, a regex for
the ``import``/``cimport`` lines of .pyx and .pxd), so the check needs
nothing built. Every import that can run counts, including one inside a
function, and so does one under ``if TYPE_CHECKING:``: an annotation that
needs a module above is an upward dependency too. A subpackage's modules
are named with dots ("cli._main"); its ``__init__.py`` is the subpackage's
own name ("cli").
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pagetab

PACKAGE = "pagetab"
# the package being tested: the source tree or an installed wheel (which
# ships the .pyx and .pxd sources beside the modules)
SOURCE = Path(pagetab.__file__).resolve().parent

#: lowest first: a module may import only from its own layer or those
#: below. Every module of the package must be listed (a new one has to be
#: placed); a listed one may be missing (the layout is a target).
LAYERS = [
    ["constants", "argcheck", "units", "_version", "tracefile", "trace_import", "trace_layout"],
    ["costs_data", "flush", "policy"],
    ["arch"],  # with calibration loading
    # the page tables: the store and its walker, then the kernel's files
    # built on it, then the Python object that owns the store
    ["_pgtable"],
    ["_huge_memory"],
    ["_memory", "_mprotect", "_inspect"],
    ["_persist"],
    ["_tables"],
    ["_tlb"],
    ["_flush", "_flush_x86", "_flush_arm64", "_flush_ppc64", "_flush_riscv"],
    ["_access"],
    ["_move", "_uffd", "_contend"],
    ["cost", "timeline", "stats"],
    ["_mm_types"],  # the mm's and the VMA's typed fields, and the lazy record
    ["_mremap"],  # mremap's common case in C, on those fields
    ["mm_types"],  # the mm as data: the kernel's files below operate on it
    ["vma"],
    ["memory"],
    ["userfaultfd"],
    ["mmap", "mprotect", "madvise", "mremap", "fork", "mmu_gather"],
    ["persist"],
    ["space"],
    ["plot", "scenario", "results", "parallel"],
    ["experiment"],
    ["reproduce", "compaction", "contention", "replay"],
    ["host", "_probe", "oracle", "record"],
    ["native"],
    ["calibrate"],
    ["device_model"],  # the cross-device model, fitted through calibrate's cases
    # the command line: shared helpers, then the subcommands ("cli.*": every
    # module of pagetab/cli without a leading underscore), then what reads
    # the registry they fill
    ["cli._registry", "cli._argtypes", "cli._output"],
    ["cli._options"],
    ["cli._moves"],
    ["cli.*"],
    ["cli._parser"],
    ["cli._main"],
    ["cli"],
    ["__main__", "__init__", "docs_check"],
]
LAYER = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def layer(name: str) -> int | None:
    """``name``'s layer: its own entry, or its subpackage's "pkg.*" entry
    (modules without a leading underscore); None if it has no place."""
    if name in LAYER:
        return LAYER[name]
    package, _, last = name.rpartition(".")
    return LAYER.get(f"{package}.*") if package and not last.startswith("_") else None


Edge = tuple[str, str, str]  # (importer, imported, "file:line")


def modules(source: Path = SOURCE, prefix: str = "") -> dict[str, list[Path]]:
    """Module name -> its source files (a .pyx and its .pxd are one module),
    the subpackages' modules included (``prefix``: the subpackage's dotted
    name and a dot)."""
    out: dict[str, list[Path]] = {}
    for p in sorted(source.iterdir()):
        if p.is_dir() and (p / "__init__.py").exists():
            out.update(modules(p, f"{prefix}{p.name}."))
        elif p.suffix in (".py", ".pyx", ".pxd"):
            name = prefix[:-1] if prefix and p.stem == "__init__" else prefix + p.stem
            out.setdefault(name, []).append(p)
    return out


def _package_of(importer: str, is_init: bool) -> str:
    """The dotted package (below pagetab; "" for pagetab) that ``importer``'s
    relative imports start from."""
    return importer if is_init and importer != "__init__" else importer.rpartition(".")[0]


def _target(
    dotted: str, level: int, names: list[str], known: set[str], package: str = ""
) -> Iterator[str]:
    """The package modules an import statement loads, or nothing if it is
    not of this package. ``dotted`` is the module after ``from`` (or after
    ``import``), ``level`` its leading dots, ``names`` what it imports,
    ``package`` the importer's package (below pagetab; "" for pagetab)."""
    if level == 0:
        if dotted != PACKAGE and not dotted.startswith(PACKAGE + "."):
            return
        dotted = dotted[len(PACKAGE) + 1 :]
    else:
        parts = package.split(".") if package else []
        if level - 1 > len(parts):
            raise AssertionError(f"relative import beyond the package: {'.' * level}{dotted}")
        base = ".".join(parts[: len(parts) - (level - 1)])
        dotted = ".".join(p for p in (base, dotted) if p)
    # `from X import n`: X.n if that is a module (`from . import x`); else X,
    # or in a subpackage the longest module X starts with; "__init__" for
    # the package itself (`import pagetab`, or a name of its __init__)
    targets = []
    for n in names or [""]:
        sub = f"{dotted}.{n}" if dotted else n
        if n and sub in known:
            targets.append(sub)
        elif not dotted:
            targets.append("__init__")
        else:
            parts = dotted.split(".")
            while len(parts) > 1 and ".".join(parts) not in known:
                parts.pop()
            targets.append(".".join(parts))
    yield from dict.fromkeys(targets)


def _py_imports(path: Path, known: set[str], package: str = "") -> Iterator[tuple[str, int]]:
    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                for t in _target(alias.name, 0, [], known):
                    yield t, node.lineno
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            for t in _target(node.module or "", node.level, names, known, package):
                yield t, node.lineno
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(), str(path)))


_CYTHON_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<mod>\.*[\w.]*)[ \t]+c?import[ \t]+(?P<names>\([^)]*\)|[^\n#]*)"
    r"|c?import[ \t]+(?P<plain>[^\n#]+))",
    re.M,
)


def _cython_imports(path: Path, known: set[str], package: str = "") -> Iterator[tuple[str, int]]:
    text = path.read_text()
    for m in _CYTHON_IMPORT.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m["plain"] is not None:
            for part in m["plain"].split(","):
                for t in _target(part.split()[0], 0, [], known):
                    yield t, line
            continue
        mod = m["mod"]
        level = len(mod) - len(mod.lstrip("."))
        parts = m["names"].strip().strip("()").split(",")
        names = [p.split()[0] for p in parts if p.strip()]  # "x as y" -> x
        for t in _target(mod.lstrip("."), level, names, known, package):
            yield t, line


def edges(source: Path = SOURCE) -> list[Edge]:
    """Every (importer, imported, where) inside the package."""
    mods = modules(source)
    known = set(mods)
    out = []
    for name, paths in mods.items():
        for p in paths:
            read = _py_imports if p.suffix == ".py" else _cython_imports
            package = _package_of(name, p.stem == "__init__")
            for target, line in read(p, known, package):
                if target != name:
                    out.append((name, target, f"{PACKAGE}/{p.relative_to(source)}:{line}"))
    return out


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Each group of modules that import each other round a cycle (a
    strongly connected component), sorted, with one cycle through its
    first module as [a, b, ..., a]; empty if the graph has no cycle."""
    reach = {n: _reach(graph, n) for n in graph}
    out, placed = [], set()
    for n in sorted(graph):
        if n in placed or n not in reach[n]:
            continue
        group = sorted(m for m in reach[n] if n in reach.get(m, ()))
        placed.update(group)
        # shortest way round: breadth first from n back to n inside the group
        prev: dict[str, str] = {}
        frontier = [n]
        while n not in prev:
            nxt = []
            for a in frontier:
                for b in sorted(graph[a]):
                    if b in group and b not in prev:
                        prev[b] = a
                        nxt.append(b)
            frontier = nxt
        path = [n]
        while len(path) == 1 or path[-1] != n:
            path.append(prev[path[-1]])
        out.append((group, path[::-1]))
    return out


def test_every_module_has_a_layer() -> None:
    listed = [n for names in LAYERS for n in names]
    assert len(listed) == len(set(listed)), "a module is listed twice in LAYERS"
    unplaced = sorted(m for m in modules() if layer(m) is None)
    assert not unplaced, f"modules not placed in LAYERS: {unplaced}"


def test_imports_name_real_modules() -> None:
    known = set(modules())
    bad = [f"{where}: {a} imports {b}, which is not a module here" for a, b, where in edges()
           if b not in known]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_no_import_of_a_higher_layer() -> None:
    placed = [(a, b, where, layer(a), layer(b)) for a, b, where in edges()]
    bad = [
        f"{where}: {a} (layer {la}) imports {b} (layer {lb})"
        for a, b, where, la, lb in placed
        if la is not None and lb is not None and lb > la
    ]
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for a, b, w in edges():
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
        where.setdefault((a, b), w)
    report = []
    for group, cycle in cycles(graph):
        report.append(f"modules in a cycle: {', '.join(group)}; for instance:")
        report += [f"  {where[a, b]}: {a} imports {b}" for a, b in itertools.pairwise(cycle)]
    assert not report, "\n".join(report)


def test_the_reader_sees_what_it_must(tmp_path: Path) -> None:
    """The graph reader and the cycle finder on a made-up package."""
    files = {
        "a.py": "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "from . import b, VERSION\n"
        "if TYPE_CHECKING:\n"
        "    from .c import C\n"
        "else:\n"
        "    from .d import D\n"
        "def f():\n"
        "    import pagetab.e\n"
        "    import pagetab as pt\n",
        "b.py": "",
        "c.py": "from pagetab import a\n",
        "d.py": "",
        "e.pyx": "cimport numpy as cnp\n"
        "from libc.stdint cimport int64_t\n"
        "from pagetab.f cimport (\n    x,\n    y,\n)\n"
        "from pagetab.g import z\n",
        "f.pxd": "from pagetab.b cimport q\n",
        "f.pyx": "",
        "g.py": "",
        "__init__.py": "from .a import f\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    got = sorted((a, b) for a, b, _ in edges(tmp_path))
    assert got == [
        ("__init__", "a"),
        ("a", "__init__"),  # VERSION is a name of the package; `import pagetab`
        ("a", "__init__"),
        ("a", "b"),
        ("a", "c"),  # TYPE_CHECKING imports count: the annotation depends on it
        ("a", "d"),  # the else branch runs
        ("a", "e"),  # inside a function: it runs when called
        ("c", "a"),
        ("e", "f"),
        ("e", "g"),
        ("f", "b"),
    ]
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": {"d2"}, "d2": {"d"}, "e": set()}
    assert cycles(graph) == [
        (["a", "b", "c"], ["a", "b", "c", "a"]),
        (["d", "d2"], ["d", "d2", "d"]),
    ]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_reader_sees_subpackages(tmp_path: Path) -> None:
    """A subpackage's modules, its relative imports, and "pkg.*" layers."""
    (tmp_path / "sub").mkdir()
    files = {
        "a.py": "from .sub import m\nfrom pagetab.sub._h import y\n",
        "b.py": "",
        "sub/__init__.py": "from .m import x\nfrom .. import b\n",
        "sub/m.py": "from ..a import f\nfrom . import _h, VERSION\nfrom pagetab import sub\n",
        "sub/_h.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert sorted(modules(tmp_path)) == ["a", "b", "sub", "sub._h", "sub.m"]
    got = sorted((a, b) for a, b, _ in edges(tmp_path))
    assert got == [
        ("a", "sub._h"),
        ("a", "sub.m"),
        ("sub", "b"),
        ("sub", "sub.m"),
        ("sub.m", "a"),
        ("sub.m", "sub"),  # VERSION is a name of the subpackage
        ("sub.m", "sub"),  # `from pagetab import sub`
        ("sub.m", "sub._h"),
    ]
    assert layer("cli.compare") == LAYER["cli.*"] and layer("cli._nowhere") is None
