"""Type stubs for the arm64 flush family (see _flush_arm64.pyx)."""

from typing import Any

from ._flush import FlushRule

class Arm64Rule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...
