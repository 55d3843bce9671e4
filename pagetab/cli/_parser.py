"""The registry as text: the argparse parser, the ``pagetab --help`` text
and the docs' list of subcommands."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any, NoReturn

from .._version import __version__
from ._options import add_debug
from ._registry import SECTIONS, Subcommand, registered

__all__ = ["build_parser", "help_text", "subcommands_markdown"]

_INTRO = """\
The ``pagetab`` command (also ``python -m pagetab``): what does this
move cost, on which arch, under which policy, and is it safe?

Subcommands (``pagetab SUBCOMMAND --help`` for each):
"""

_OUTRO = """\
Sizes take 4K/2M/1G/1T suffixes, lists (1G,64G) and doubling ranges
(1G..256G). Exit status: 0 success, 1 failure (an unsafe move with
--fail-unsafe, no host probe, a missing optional library, an output file
that cannot be written; or an internal error, a bug: --debug prints its
traceback), 2 bad usage.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print the one-line usage error and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _by_section() -> dict[str, list[Subcommand]]:
    """The registered subcommands under each section that has any."""
    out: dict[str, list[Subcommand]] = {}
    for sub in registered():
        out.setdefault(SECTIONS[sub.section], []).append(sub)
    return out


def _default(sub: Subcommand) -> str:
    return " (the default)" if sub.default else ""


def help_text() -> str:
    """The text of ``pagetab --help`` above the options (and the docstring
    of ``pagetab.cli``): every subcommand with its one-line help.

    Returns
    -------
    str
        The text, one subcommand a line, under its section's heading.
    """
    width = max(len(s.name) for s in registered()) + 2
    lines = [_INTRO]
    for heading, subs in _by_section().items():
        lines.append(f"  {heading}:")
        lines += [f"    {s.name:<{width}}{s.help}{_default(s)}" for s in subs]
        lines.append("")
    return "\n".join(lines) + "\n" + _OUTRO


def build_parser() -> argparse.ArgumentParser:
    """The ``pagetab`` command line: a subparser per registered subcommand.

    Returns
    -------
    argparse.ArgumentParser
        The parser; the chosen subcommand's name is in ``command``.
    """
    p = _Parser(
        prog="pagetab",
        description=help_text().replace("``", ""),  # (the docstring's reST quotes)
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pagetab {__version__}")
    # no help= per subparser: help_text() lists them already, once
    sub = p.add_subparsers(
        dest="command", parser_class=_Parser, metavar="SUBCOMMAND", help="one of those above"
    )
    for s in registered():
        q = sub.add_parser(s.name, description=s.description)
        s.arguments(q)
        add_debug(q)
    return p


def _options_of(sub: Subcommand) -> list[str]:
    """The options ``pagetab NAME --help`` shows for ``sub``, in its order
    (without -h and --debug, which every subcommand has)."""
    parser = _Recorder(add_help=False)
    sub.arguments(parser)
    return [(a.option_strings or [a.dest])[0] for a in parser.added
            if a.help != argparse.SUPPRESS]  # fmt: skip


class _Recorder(argparse.ArgumentParser):
    """A parser that keeps the actions ``add_argument`` returns (argparse
    has no public list of them; the subcommands add no argument groups)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.added: list[argparse.Action] = []

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.added.append(action)
        return action


def subcommands_markdown() -> str:
    """The docs' list of subcommands (docs/guide/experiments.md), as Markdown.

    Returns
    -------
    str
        Under each section's heading, a bullet per subcommand: its name,
        description and options (their canonical spellings).
    """
    out = []
    for heading, subs in _by_section().items():
        out.append(f"**{heading[0].upper()}{heading[1:]}**\n")
        for s in subs:
            options = ", ".join(f"`{o}`" for o in _options_of(s))
            text = f"- `pagetab {s.name}`{_default(s)}: {s.description}" + (
                f" Options: {options}." if options else ""
            )
            out.append(
                textwrap.fill(
                    text, 76, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False
                )
            )
        out.append("")
    return "\n".join(out)
