"""Which public names lack a docstring (the docs build and the tests fail on any)."""

from __future__ import annotations

import inspect

__all__ = ["missing_docstrings"]


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
        if not inspect.getdoc(obj):
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
                if not (getattr(fn, "__doc__", None) or "").strip():
                    out.append(f"pagetab.{name}.{attr}")
    return out
