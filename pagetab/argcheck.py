"""Argument checks shared by every public entry point.

One place for "an int, but not a bool" and its friends, so that every call
words its TypeError/ValueError the same way: the argument's name, what it
must be, and what it got.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

__all__ = ["U64", "as_uint", "check_bool", "check_int", "is_int", "sys_error"]

U64 = 1 << 64


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer, Python's or numpy's, and not a bool
    (bool subclasses int; numpy's bool is no Integral)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in [lo, hi]; TypeError or
    ValueError naming ``name`` otherwise."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if lo is not None and value < lo:
        if hi is not None:
            raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")
        raise ValueError(f"{name} must be >= {lo}, not {value}")
    if hi is not None and value > hi:
        if lo is not None:
            raise ValueError(f"{name} must be in {lo}..{hi}, not {value}")
        raise ValueError(f"{name} must be <= {hi}, not {value}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool; TypeError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def as_uint(name: str, value: Any, call: str) -> int:
    """An unsigned long system-call argument: TypeError for non-integers,
    ValueError if negative or wider than 64 bits."""
    if type(value) is int and 0 <= value < U64:
        return value  # the common case, checked first because mremap is hot
    if isinstance(value, bool):
        raise TypeError(f"{call}: {name} must be an int, not bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{call}: {name} must be an int, not {type(value).__name__}") from None
    if v < 0:
        raise ValueError(f"{call}: {name} must be >= 0, not {v}")
    if v >= U64:
        raise ValueError(f"{call}: {name} must fit in 64 bits, not {v:#x}")
    return v


def sys_error(code: int, call: str, what: str) -> OSError:
    """The OSError a system call fails with: Linux's errno ``code``, and a
    message naming the call and what was wrong."""
    return OSError(code, f"{call}: {what}")
