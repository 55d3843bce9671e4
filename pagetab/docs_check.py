"""Which public names lack a docstring (the docs build and the tests fail on any)."""

from __future__ import annotations

import inspect
import re

__all__ = ["missing_docstrings"]


def _own_doc(obj: object, name: str) -> str:
    """``obj``'s own docstring, without what tools write when there is none:
    dataclasses and NamedTuples make "Name(field, ...)", Cython's
    embedsignature puts "name(args)" first; a class does not inherit one."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    first, _, rest = doc.partition("\n")
    if re.fullmatch(rf"{re.escape(name)}\(.*\)(\s*->.*)?", first.strip()):
        doc = rest.strip()  # only a signature on the first line
    return doc


def missing_docstrings() -> list[str]:
    """Every name of ``pagetab.__all__`` (functions and classes) and every
    public method and property a public class defines, without a docstring;
    constants and ``__version__`` need none."""
    import pagetab

    out = []
    for name in pagetab.__all__:
        obj = getattr(pagetab, name)
        if not (inspect.isclass(obj) or callable(obj)):
            continue
        if not _own_doc(obj, name):
            out.append(f"pagetab.{name}")
        if not inspect.isclass(obj):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(member, property | staticmethod | classmethod) or inspect.isfunction(
                member
            ):
                fn = member.fget if isinstance(member, property) else member
                if not _own_doc(fn, attr):
                    out.append(f"pagetab.{name}.{attr}")
    return out
