"""Type stubs for the flush rules (see _flush.pyx)."""

from typing import Any

from ._tlb import TlbArrays

OP_NAMES: tuple[str, ...]

class FlushRule:
    def __init__(self, params: dict[str, Any]) -> None: ...
    def params(self) -> dict[str, Any]: ...

FLUSH_RULES: dict[str, type[FlushRule]]

def register_rule(name: str, cls: type[FlushRule]) -> None: ...
def rule_class(name: str) -> type[FlushRule]: ...

class Tlbs(TlbArrays):
    flush: FlushRule
    def __init__(self, ncpu: int, geometry: dict[str, Any], rule: FlushRule) -> None: ...
    def flush_range(
        self, caller: int, start: int, end: int, stride_shift: int = -1, freed_tables: bool = False
    ) -> dict[str, int]: ...
    def flush_tlb_batched_pending(self, caller: int) -> dict[str, int] | None: ...
