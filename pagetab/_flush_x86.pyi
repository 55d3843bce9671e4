"""Type stubs for the x86 flush family (see _flush_x86.pyx)."""

from typing import Any

from ._flush import FlushRule

class X86Rule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...
