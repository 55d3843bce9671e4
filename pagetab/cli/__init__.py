"""The ``pagetab`` command (also ``python -m pagetab``).

One module per subcommand registers it (``_registry.subcommand``); this
package imports every module whose name has no leading underscore, so a
new subcommand is one new file. This docstring is replaced, below, by the
text of ``pagetab --help``, which lists them all.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..units import parse_size, parse_sizes
from ._main import main
from ._parser import build_parser, help_text, subcommands_markdown
from ._registry import Subcommand, UsageError, registered

__all__ = [
    "Subcommand",
    "UsageError",
    "build_parser",
    "help_text",
    "main",
    "parse_size",
    "parse_sizes",
    "registered",
    "subcommands_markdown",
]


def _import_subcommands() -> None:
    """Import each subcommand module: importing it registers it."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_subcommands()
__doc__ = help_text()
