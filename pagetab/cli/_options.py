"""The options several subcommands take, each defined once so that it is
spelled, typed and explained the same in every subcommand.

``add_option`` keeps an option's old spellings working without showing
them in ``--help``; ``OLD_SPELLINGS`` lists them (the tests run each).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..arch import Arch, archs, devices
from ..arch import arch as arch_profile
from ..mm_types import MAX_CPUS
from ..policy import policies
from ..replay import example_trace
from ..scenario import ALIGNS
from . import _argtypes
from ._registry import UsageError

__all__ = [
    "DEFAULT_ARCHS",
    "OLD_SPELLINGS",
    "add_alignment",
    "add_arch",
    "add_baseline",
    "add_calibration",
    "add_cpus",
    "add_debug",
    "add_device",
    "add_fail_unsafe",
    "add_format",
    "add_option",
    "add_outputs",
    "add_plot",
    "add_policy",
    "add_populate",
    "add_repeats",
    "add_size",
    "calibration_file",
    "priced_archs",
    "shipped_file",
]

#: the archs the subcommands that take several run on by default
DEFAULT_ARCHS = ["x86-64", "arm64-4k"]
#: canonical spelling -> the old ones still accepted (hidden from --help)
OLD_SPELLINGS = {"--dst-align": ("--align",)}


def add_option(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """``parser.add_argument(name, **kwargs)``, plus ``name``'s old spellings
    (``OLD_SPELLINGS``): the same option, hidden from ``--help``.

    Each old spelling is an argument of its own, with the same destination,
    type and choices, so that a usage error names the spelling typed.
    """
    action = parser.add_argument(name, **kwargs)
    for old in OLD_SPELLINGS.get(name, ()):
        # SUPPRESS as the default: the canonical option's default stands
        parser.add_argument(
            old,
            **{
                **kwargs,
                "dest": action.dest,
                "default": argparse.SUPPRESS,
                "help": argparse.SUPPRESS,
            },
        )


def add_size(
    parser: argparse.ArgumentParser,
    default: str,
    *,
    many: bool,
    what: str = "region size",
    parse: Callable[[str], Any] | None = None,
    example: str = "",
) -> None:
    """``--size``: one size or (``many``) a list and ranges.

    Parameters
    ----------
    parser:
        The subcommand's parser.
    default:
        The default, as it would be typed ("1G,64G").
    many:
        Take a comma list and doubling ranges (1G,64G or 1G..256G).
    what:
        What the size is, for the help.
    parse:
        The argparse type, if not the one ``many`` implies.
    example:
        Example values for the help, if not the ones ``many`` implies.
    """
    parse = parse or (_argtypes.sizes if many else _argtypes.size)
    example = example or ("e.g. 1G,64G or 1G..256G" if many else "e.g. 4K, 2M, 1G")
    parser.add_argument(
        "--size",
        type=parse,
        default=parse(default),
        help=f"{what}{'(s)' if many else ''} ({example}; default {default})",
    )


def _names(
    parser: argparse.ArgumentParser,
    option: str,
    valid: Callable[[], list[str]],
    default: str | list[str] | None,
    what: str,
) -> None:
    """``--arch`` or ``--policy``: one of ``valid()`` (``default`` a str), or
    a comma list of them or 'all' (``default`` a list, or None for all);
    ``what`` names them in the help ("archs")."""
    if isinstance(default, str):
        parser.add_argument(
            option, choices=valid(), default=default, help=f"one of the {what} (default {default})"
        )
        return
    shown = "the default" if default is None else f"default {','.join(default)}"
    parser.add_argument(
        option,
        type=_argtypes.names(valid, option.removeprefix("--")),
        default=valid() if default is None else list(default),
        help=f"comma list or 'all' of the {what} ({shown})",
    )


def add_arch(parser: argparse.ArgumentParser, default: str | list[str]) -> None:
    """``--arch``: one profile (``default`` a str) or a list (``default`` a list)."""
    _names(parser, "--arch", archs, default, "archs")


def add_policy(
    parser: argparse.ArgumentParser,
    default: str | list[str] | None,
    valid: Callable[[], list[str]] = policies,
    what: str = "policies",
) -> None:
    """``--policy``: one policy (``default`` a str) or a list (a list, or None
    for all); ``valid`` and ``what`` narrow and name the policies allowed."""
    _names(parser, "--policy", valid, default, what)


def add_baseline(parser: argparse.ArgumentParser, default: str) -> None:
    """``--baseline``: the policy the ratios are taken against."""
    parser.add_argument(
        "--baseline",
        default=default,
        choices=policies(),
        help=f"the policy ratios are taken against (default {default})",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: price with a device calibration."""
    parser.add_argument(
        "--device",
        choices=sorted(devices()),
        help="price with a device calibration fitted to published measurements "
        "(pagetab archs lists them; applies to the archs it was fitted for and their variants)",
    )


def add_calibration(parser: argparse.ArgumentParser) -> None:
    """``--calibration``: price with a file ``pagetab calibrate`` wrote."""
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="price with a calibration written by pagetab calibrate (example:host-calibration: "
        "the one of the machine the shipped recordings were made on)",
    )


def shipped_file(name: str | None, what: str) -> str | None:
    """A file named on the command line: ``example:NAME`` is one shipped
    with pagetab (``pt.example_trace``: recordings and their calibration);
    UsageError, prefixed by ``what``, if there is none such."""
    if name is not None and name.startswith("example:"):
        try:
            return example_trace(name.removeprefix("example:"))
        except ValueError as e:
            raise UsageError(f"{what}: {e}") from None
    return name


def calibration_file(name: str | None) -> str | None:
    """``--calibration``'s file (``shipped_file``)."""
    return shipped_file(name, "--calibration")


def priced_archs(args: argparse.Namespace) -> None:
    """With ``--calibration`` or ``--device``, replace ``args.arch`` (a
    name or a list of them) by the profiles priced so; UsageError naming
    the option if one cannot be (another arch's calibration, a file that
    is not one)."""
    calibration = calibration_file(getattr(args, "calibration", None))
    device = getattr(args, "device", None)
    if calibration is None and device is None:
        return
    names = args.arch if isinstance(args.arch, list) else [args.arch]
    try:
        priced: list[Arch] = [arch_profile(n, calibration=calibration, device=device)
                              for n in names]  # fmt: skip
    except (ValueError, OSError) as e:
        opt = "--calibration" if calibration else f"--device {device}"
        raise UsageError(f"{opt}: {e}") from None  # (a calibration's error names its file)
    args.arch = priced if isinstance(args.arch, list) else priced[0]


def add_populate(parser: argparse.ArgumentParser) -> None:
    """``--populate``: how the region is populated before the move."""
    parser.add_argument(
        "--populate",
        type=_argtypes.populate,
        default="write",
        help="write, read (zero page), thp, sparse (1 page in 16 written), or a mix "
        "such as write:0.5,thp:0.5 (default write)",
    )


def add_alignment(parser: argparse.ArgumentParser, *, source: bool) -> None:
    """``--dst-align`` (old spelling ``--align``) and, with ``source``,
    ``--src-align``."""
    add_option(
        parser,
        "--dst-align",
        choices=ALIGNS,
        default="pmd",
        help="destination alignment: pud, pmd (whole-table moves where the policy "
        "has them) or page (PTE by PTE) (default pmd)",
    )
    if source:
        parser.add_argument(
            "--src-align", choices=ALIGNS, default="pud", help="source alignment (default pud)"
        )


def add_cpus(parser: argparse.ArgumentParser, default: int | None, shown: str = "") -> None:
    """``--cpus``: the simulated CPUs running the process (``shown``: the
    default as the help says it, when ``default`` is None)."""
    parser.add_argument(
        "--cpus",
        type=_argtypes.cpus,
        default=default,
        metavar=f"1..{MAX_CPUS}",
        help=f"CPUs that run the process and hold its translations (default {shown or default})",
    )


def add_repeats(parser: argparse.ArgumentParser) -> None:
    """``--repeats``: how often the host kernel measures each case."""
    parser.add_argument(
        "--repeats",
        type=_argtypes.positive,
        default=5,
        help="measurements of each case; the median is kept (default 5)",
    )


#: what ``--format`` may print on standard output
FORMATS = ("table", "json", "csv", "markdown")


def add_format(parser: argparse.ArgumentParser, *, csv: bool = True) -> None:
    """``--format`` (what standard output gets) and ``--json``, its
    shorthand; ``csv`` where the subcommand's results are records."""
    kinds = [k for k in FORMATS if csv or k != "csv"]
    parser.add_argument(
        "--format",
        choices=kinds,
        default="table",
        help="print the results as a table, JSON (with their metadata, units and "
        + ("descriptions), CSV (the records, metadata in # lines) " if csv else "descriptions) ")
        + "or a Markdown table (default table)",
    )
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


def add_fail_unsafe(parser: argparse.ArgumentParser) -> None:
    """``--fail-unsafe``: exit status 1 when a move is unsafe."""
    parser.add_argument("--fail-unsafe", action="store_true", help="exit 1 if any move is unsafe")


#: what ``--plot`` draws for a grid of moves (compare, sweep)
TIME_PLOT = "estimated time against size, log-log, one line per arch and policy"


def add_outputs(parser: argparse.ArgumentParser, plot: str | None = TIME_PLOT) -> None:
    """``--csv``, ``--json-out``, ``--progress`` and, where the subcommand
    plots, ``--plot``, whose help says what it draws (``plot``; None: no
    ``--plot``)."""
    parser.add_argument(
        "--csv", metavar="FILE", help="also write the results as CSV (-: to stdout)"
    )
    parser.add_argument(
        "--json-out", metavar="FILE", help="also write the results as JSON (-: to stdout)"
    )
    if plot is not None:
        add_plot(parser, plot)
    add_progress(parser)


def add_plot(parser: argparse.ArgumentParser, what: str) -> None:
    """``--plot FILE``, whose help says what it draws."""
    parser.add_argument(
        "--plot",
        metavar="FILE",
        type=_argtypes.plot_path,
        help=f"also plot {what} (.png, .pdf, .svg, ...: the extension names the format)",
    )


def add_progress(parser: argparse.ArgumentParser) -> None:
    """``--progress``/``--no-progress``: a progress bar (default: on a terminal)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )


def add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug``: print an internal error's traceback."""
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an internal error"
    )
