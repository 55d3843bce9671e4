"""Type stubs for the ppc64 flush family (see _flush_ppc64.pyx)."""

from typing import Any

from ._flush import FlushRule

class Ppc64RadixRule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...
