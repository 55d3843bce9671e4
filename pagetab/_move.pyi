"""Type stubs for the move engine (see _move.pyx and _move.pxd)."""

from typing import Any

import numpy as np
import numpy.typing as npt

from ._flush import Tlbs
from ._tables import PageTables

FLUSH_MODE: dict[str, int]
MOVE_DTYPE: np.dtype[np.void]
EVENT_DTYPE: np.dtype[np.void]
EVENT_KINDS: tuple[str, ...]
FLUSH_KINDS: tuple[str, ...]
MM_FLUSH_END: int
PGT_ENTRIES: tuple[str, ...]
LOCK_ID_SHIFT: int
LOCK_ID_MM: int
LOCK_ID_PTE: int
LOCK_ID_PMD: int
LOCK_ID_RMAP: int

class PagetableMoveControl:
    old_addr: int
    new_addr: int
    old_end: int
    len_in: int
    need_rmap_locks: bool
    has_anon: bool
    has_file: bool
    free_lo: int
    free_hi: int
    caller: int
    def __init__(self, config: dict[str, Any]) -> None: ...
    @property
    def config(self) -> dict[str, Any]: ...
    def start(
        self,
        old_addr: int,
        new_addr: int,
        len_in: int,
        *,
        need_rmap_locks: bool,
        has_anon: bool,
        caller: int,
        free_lo: int = 0,
        free_hi: int = 0,
        uffd_no_table_moves: bool = False,
        has_file: bool = False,
    ) -> None: ...
    def try_realign_addr(
        self, old_vma_start: int, old_prev_end: int, new_vma_start: int, new_prev_end: int
    ) -> bool: ...

def move_page_tables(
    tables: PageTables, tlbs: Tlbs, pmc: PagetableMoveControl, trace: bool = False
) -> tuple[
    int,
    npt.NDArray[np.int64],
    tuple[npt.NDArray[np.void], npt.NDArray[np.int64]] | None,
]: ...
def finish_flush(
    tlbs: Tlbs,
    caller: int,
    lo: int,
    hi: int,
    stride_shift: int,
    freed_tables: bool,
    words: npt.NDArray[np.int64],
    trace: bool = False,
    batched: bool = False,
) -> npt.NDArray[np.int64] | None: ...
