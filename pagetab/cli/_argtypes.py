"""argparse types: each turns a word of the command line into a value, or
into a one-line usage error (exit status 2) naming what was wrong."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from ..mm_types import MAX_CPUS
from ..plot import check_plot_path
from ..scenario import parse_populate
from ..units import parse_size, parse_sizes

__all__ = [
    "at_least_one",
    "bounded",
    "cpus",
    "fraction",
    "names",
    "non_negative",
    "plot_path",
    "populate",
    "positive",
    "size",
    "sizes",
]

T = TypeVar("T")


def _arg(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError becomes the usage error."""

    def typed(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    # argparse names the type in some messages
    typed.__name__ = parse.__name__
    return typed


size, sizes = _arg(parse_size), _arg(parse_sizes)


def _checked_populate(text: str) -> str:
    parse_populate(text)  # the ValueError is the message
    return text


#: a populate mix such as write:0.5,thp:0.5, kept as written
populate = _arg(_checked_populate)


def names(valid: Callable[[], list[str]], what: str) -> Callable[[str], list[str]]:
    """A comma list of names (or "all"), each checked against ``valid()``.

    Parameters
    ----------
    valid:
        Returns the valid names (called when a word is parsed).
    what:
        What a name is, for the error message ("arch", "policy").

    Returns
    -------
    Callable
        The argparse type: text to a list of names.
    """

    def parse(text: str) -> list[str]:
        if text == "all":
            return valid()
        listed = [n.strip() for n in text.split(",")]
        if "" in listed:
            raise argparse.ArgumentTypeError(f"empty {what} in {text!r}")
        bad = [n for n in listed if n not in valid()]
        if bad or not listed:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or repr(text)}; valid: all, {', '.join(valid())}"
            )
        return listed

    return parse


def bounded(
    convert: Callable[[str], T], ok: Callable[[T], bool], what: str, kind: str
) -> Callable[[str], T]:
    """An argparse type: ``convert`` the text, then require ``ok``.

    Parameters
    ----------
    convert:
        Text to value (``int``, ``float``); its ValueError is a usage error.
    ok:
        Whether a converted value is allowed.
    what:
        The allowed values, for the message (">= 1").
    kind:
        What ``convert`` reads, for the message ("an integer").

    Returns
    -------
    Callable
        The argparse type.
    """

    def parse(text: str) -> T:
        try:
            x = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not ok(x):
            raise argparse.ArgumentTypeError(f"must be {what}, not {x}")
        return x

    return parse


positive = bounded(int, lambda n: n >= 1, ">= 1", "an integer")
fraction = bounded(float, lambda x: 0 < x <= 1, "a fraction in (0, 1]", "a number")
at_least_one = bounded(float, lambda x: x >= 1, ">= 1", "a number")
non_negative = bounded(float, lambda x: x >= 0, ">= 0", "a number")


def cpus(text: str) -> int:
    """CPUs of the simulated machine: 1..MAX_CPUS, as ``pagetab.AddressSpace`` takes."""
    n = positive(text)
    if n > MAX_CPUS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_CPUS}, not {n}")
    return n


def _plot_path(text: str) -> str:
    """A plot file whose extension names a format (``plot.PLOT_FORMATS``)."""
    check_plot_path(text)
    return text


plot_path = _arg(_plot_path)
