"""The command line's registry: every subcommand module registers itself,
and the help, the dispatch and the docs' list all come from the registry;
each option is spelled one way everywhere, and the old spellings still
work."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import results

import pagetab.cli as cli
from pagetab.cli import build_parser, help_text, main, registered, subcommands_markdown
from pagetab.cli._options import OLD_SPELLINGS

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "docs" / "guide" / "experiments.md"
# each subcommand's module: every module of pagetab/cli without a leading underscore
MODULES = sorted(p.stem for p in Path(cli.__file__).parent.glob("*.py")
                 if not p.stem.startswith("_"))  # fmt: skip


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    """The subcommands' parsers, as ``pagetab`` builds them."""
    p = build_parser()
    # argparse has no public accessor for its subparsers
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_subcommand_module_registers_itself_once() -> None:
    names = [s.name for s in registered()]
    assert sorted(names) == MODULES, "a module of pagetab/cli registers no subcommand, or another"
    for s in registered():
        assert s.run.__module__ == f"pagetab.cli.{s.name}", s.name
        assert s.help and "\n" not in s.help and s.description, s.name
    assert [s.name for s in registered() if s.default] == ["compare"]


def test_the_parser_and_the_help_list_every_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sorted(_subparsers()) == MODULES
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "gc" in MODULES
    for s in registered():
        assert re.search(rf"^    {s.name} +{re.escape(s.help)}", out, re.M), s.name
    assert cli.__doc__ == help_text()


def test_dispatch_runs_the_registered_function(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pagetab.cli._registry as registry

    ran = []
    for s in registered():
        fake = dataclasses.replace(s, run=lambda args, n=s.name: ran.append(n) or 0)
        monkeypatch.setitem(registry._REGISTRY, s.name, fake)
    needs = {"record": ["-o", "t.gz", "--", "true"], "replay": ["t.gz"],
             "import": ["x", "-o", "t.gz"]}  # required arguments  # fmt: skip
    for s in registered():
        assert main([s.name, *needs.get(s.name, [])]) == 0
    assert main([]) == 0  # the default
    assert ran == [*(s.name for s in registered()), "compare"]


def test_the_docs_list_is_the_registry() -> None:
    if not EXPERIMENTS.exists():
        pytest.skip("docs/ is not beside the tests")
    text = EXPERIMENTS.read_text()
    m = re.search(r"<!-- subcommands:.*?-->\n(.*?)<!-- end of subcommands -->", text, re.S)
    assert m, "the generated list's markers are missing from experiments.md"
    assert m[1].strip() == subcommands_markdown().strip()


def test_each_option_is_spelled_one_way() -> None:
    # across subcommands: one visible spelling per destination, one
    # destination per spelling
    spellings: dict[str, set[str]] = defaultdict(set)
    dests: dict[str, set[str]] = defaultdict(set)
    for parser in _subparsers().values():
        for a in parser._actions:
            if a.option_strings and a.help != argparse.SUPPRESS:
                if a.const != "json":  # --json, the shorthand of --format json
                    spellings[a.dest].add(a.option_strings[0])
                for o in a.option_strings:
                    dests[o].add(a.dest)
    assert {d: s for d, s in spellings.items() if len(s) > 1} == {}
    assert {o: d for o, d in dests.items() if len(d) > 1} == {}


def test_old_spellings_are_hidden_from_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name, parser in _subparsers().items():
        shown = parser.format_help()
        for new, olds in OLD_SPELLINGS.items():
            if re.search(rf"{new}\b", shown):
                assert not any(re.search(rf"(?<![\w-]){old}\b", shown) for old in olds), name


@pytest.mark.parametrize(
    "argv",
    [
        ["move", "--size", "64M", "--policy", "linux-4.19"],
        ["compare", "--size", "8M", "--arch", "x86-64", "--policy", "linux-5.0"],
        ["sweep", "--size", "4M..8M", "--arch", "arm64-4k", "--policy", "linux-6.8"],
        ["contend", "--size", "64M", "--arch", "x86-64", "--policy", "linux-6.8",
         "--accesses", "1000"],
    ],
    ids=lambda argv: argv[0],
)  # fmt: skip
@pytest.mark.parametrize(("new", "old"), [(n, o) for n, olds in OLD_SPELLINGS.items()
                                          for o in olds])  # fmt: skip
def test_old_spellings_give_the_same_result(
    argv: list[str], new: str, old: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def result(option: str) -> object:
        assert main([*argv, option, "page", "--json"]) == 0
        data = results(capsys.readouterr().out)
        # the simulator's own wall-clock times differ from run to run
        rows = data if isinstance(data, list) else [data]
        return [{k: v for k, v in r.items() if "wall" not in k} for r in rows]

    got = result(new)
    assert got == result(old)
    assert all(r["dst_align"] == "page" for r in got)  # the option took effect


def test_every_option_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    # --op, --pattern and --seed had no help; the top help showed reST quotes
    for name, parser in _subparsers().items():
        for a in parser._actions:
            if a.option_strings and a.help != argparse.SUPPRESS:
                assert a.help and a.help.strip(), (name, a.option_strings)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    contend = _subparsers()["contend"].format_help()
    assert "complementary CDF" in contend and "estimated time against size" not in contend
