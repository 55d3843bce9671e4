"""Type stubs for the Cython move engine (see _move.pyx)."""

from ._tables import PageTables
from ._tlb import Tlbs

LOCK_CLASSES: tuple[str, ...]
COUNTER_NAMES: tuple[str, ...]
FLUSH_MODE: dict[str, int]

def move_page_tables(
    pt: PageTables,
    old_addr: int,
    new_addr: int,
    length: int,
    orig_old_addr: int,
    split_pte: bool,
    split_pmd: bool,
    move_pmd: bool,
    move_pud: bool,
    flush: str,
    dirty_flush_locked: bool,
    batch: bool,
    need_rmap_locks: bool,
    has_anon: bool,
    free_lo: int = 0,
    free_hi: int = 0,
    tlbs: Tlbs | None = None,
    caller: int = 0,
) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]: ...
