"""Type stubs for the Cython TLB model (see _tlb.pyx)."""

from typing import Any

import numpy as np
import numpy.typing as npt

from ._tables import PageTables

OP_NAMES: tuple[str, ...]
KINDS: dict[str, int]

class Tlbs:
    def __init__(
        self,
        ncpu: int,
        arrays: list[tuple[int, int, int, int]],
        class_shifts: list[int],
        pmd_shift: int,
        pwc_ways: int = 0,
        kind: str = "x86",
        x86_ceiling: int = 33,
        x86_invlpgb: bool = False,
        arm_max_dvm_ops: int = 512,
        arm_legacy_limit: int = 0,
        arm_range: bool = False,
        ppc_tlbie_ceiling: int = 33,
        ppc_tlbiel_ceiling: int = 256,
        ppc_thp: bool = True,
    ) -> None: ...
    @property
    def ncpu(self) -> int: ...
    def cpumask(self) -> list[int]: ...
    def set_cpu(self, cpu: int, on: bool = True) -> None: ...
    def flush_range(
        self, caller: int, start: int, end: int, stride_shift: int = -1
    ) -> dict[str, int]: ...
    def flush_all(self, cpu: int) -> None: ...
    def count_range(self, lo: int, hi: int) -> int: ...
    def valid_entries(self, cpu: int) -> int: ...
    def lookup(self, cpu: int, addr: int) -> tuple[int, int | None]: ...
    def access(
        self,
        pt: PageTables,
        addrs: npt.NDArray[np.uint64],
        cpu: int,
        write: bool,
        vmas: dict[str, npt.NDArray[Any]],
        start: int = 0,
    ) -> tuple[int, dict[str, int], dict[str, int]]: ...
