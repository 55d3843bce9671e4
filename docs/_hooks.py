"""mkdocs hook: the build fails when a public name has no docstring.

mkdocstrings renders what it finds and stays silent about what is missing;
this hook makes a missing docstring a build error, for every name of
``pagetab.__all__`` and every public method and property of its classes
(``pagetab.docs_check.missing_docstrings``, which the tests run too).
"""

from __future__ import annotations

from typing import Any

from mkdocs.exceptions import PluginError


def on_pre_build(config: Any) -> None:
    from pagetab.docs_check import missing_docstrings

    missing = missing_docstrings()
    if missing:
        raise PluginError("public names without a docstring: " + ", ".join(missing))
