"""The subcommands, each registered once by its own module.

A subcommand module calls ``subcommand(...)`` on its ``run`` function;
the parser, the dispatch in ``main``, ``pagetab --help``, the package's
docstring and the docs' list of subcommands are all read from here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SECTIONS", "Subcommand", "UsageError", "registered", "subcommand"]

#: section key -> heading; subcommands are listed by section, in this order,
#: then by name
SECTIONS = {
    "simulate": "simulated moves",
    "data": "the simulator's profiles, policies and published results",
    "host": "this machine's kernel",
}

Run = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]


class UsageError(Exception):
    """A command-line value that argparse cannot check alone (exit status 2).

    A subcommand raises it from ``run`` before any work; ``main`` prints it
    on one line.
    """


@dataclass(frozen=True)
class Subcommand:
    """One ``pagetab`` subcommand.

    Attributes
    ----------
    name:
        The word on the command line (and the name of its module).
    help:
        One line for ``pagetab --help`` and the docs' list.
    description:
        The paragraph at the top of ``pagetab NAME --help``.
    section:
        A key of ``SECTIONS``: where the lists place it.
    arguments:
        Adds the subcommand's options to its parser.
    run:
        Runs it on the parsed arguments; returns the exit status (0 or 1).
    default:
        Whether a command line without a subcommand runs this one.
    """

    name: str
    help: str
    description: str
    section: str
    arguments: Arguments
    run: Run
    default: bool = False


_REGISTRY: dict[str, Subcommand] = {}


def subcommand(
    name: str,
    *,
    help: str,
    description: str,
    section: str,
    arguments: Arguments,
    default: bool = False,
) -> Callable[[Run], Run]:
    """Register the decorated ``run`` function as the subcommand ``name``.

    Parameters
    ----------
    name, help, description, section, arguments, default:
        The fields of ``Subcommand``.

    Returns
    -------
    Callable
        A decorator that registers ``run`` and returns it unchanged.

    Raises
    ------
    ValueError
        If ``name`` is registered already, ``section`` is not a key of
        ``SECTIONS``, or a second subcommand claims to be the default.
    """

    def register(run: Run) -> Run:
        if name in _REGISTRY:
            raise ValueError(f"subcommand {name!r} is registered twice")
        if section not in SECTIONS:
            raise ValueError(f"subcommand {name!r}: unknown section {section!r}")
        if default and any(s.default for s in _REGISTRY.values()):
            raise ValueError(f"subcommand {name!r}: there is a default subcommand already")
        _REGISTRY[name] = Subcommand(name, help, description, section, arguments, run, default)
        return run

    return register


def registered() -> list[Subcommand]:
    """Every registered subcommand, by section (``SECTIONS``' order), then name.

    Returns
    -------
    list of Subcommand
        What the modules of ``pagetab.cli`` registered (importing
        ``pagetab.cli`` imports them all).
    """
    order = list(SECTIONS)
    return sorted(_REGISTRY.values(), key=lambda s: (order.index(s.section), s.name))
