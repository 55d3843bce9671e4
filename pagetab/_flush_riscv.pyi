"""Type stubs for the riscv flush family (see _flush_riscv.pyx)."""

from typing import Any

from ._flush import FlushRule

class RiscvRule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...
