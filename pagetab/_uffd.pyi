from typing import Any

from pagetab._flush import Tlbs
from pagetab._tables import PageTables

def move_pages_pte(
    pt: PageTables,
    tlbs: Tlbs,
    caller: int,
    dst: int,
    src: int,
    npages: int,
    allow_holes: bool,
    batch: bool,
    move_zero: bool,
) -> tuple[int, int, dict[str, Any]]: ...
def move_pages_huge_pmd(
    pt: PageTables, tlbs: Tlbs, caller: int, dst: int, src: int
) -> dict[str, Any]: ...
def split_huge_pmd(pt: PageTables, tlbs: Tlbs, caller: int, addr: int) -> dict[str, Any] | None: ...
def alloc_table(pt: PageTables, addr: int, level: int) -> bool: ...
