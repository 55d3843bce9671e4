"""Type stubs for the flush rules (see _flush.pyx)."""

from typing import Any

from ._tlb import TlbArrays

OP_NAMES: tuple[str, ...]

class FlushRule:
    def __init__(self, params: dict[str, Any]) -> None: ...
    def params(self) -> dict[str, Any]: ...

class X86Rule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...

class Arm64Rule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...

class Ppc64RadixRule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...

FLUSH_RULES: dict[str, type[FlushRule]]

class Tlbs(TlbArrays):
    flush: FlushRule
    def __init__(self, ncpu: int, geometry: dict[str, Any], rule: FlushRule) -> None: ...
    def flush_range(
        self, caller: int, start: int, end: int, stride_shift: int = -1
    ) -> dict[str, int]: ...

class RiscvRule(FlushRule):
    def __init__(self, params: dict[str, Any]) -> None: ...
