"""Type stubs for the typed bases of the mm and the VMA (see _mm_types.pxd)."""

from typing import Any

from ._flush import Tlbs
from ._move import PagetableMoveControl
from ._tables import PageTables
from .arch import Arch
from .policy import Policy
from .stats import MoveStats

class vm_area_struct:
    start: int
    end: int
    prot: int
    shared: bool
    flags: int
    pgoff: int
    anon_vma: int | None
    shm: Any
    uffd: int
    file: Any
    def __init__(
        self,
        start: int,
        end: int,
        prot: int,
        shared: bool,
        flags: int = 0,
        pgoff: int = 0,
        anon_vma: int | None = None,
        shm: Any = None,
        uffd: int = 0,
        file: Any = None,
    ) -> None: ...

class mm_struct:
    @property
    def arch(self) -> Arch: ...
    @property
    def page_shift(self) -> int: ...
    @property
    def page_size(self) -> int: ...
    @property
    def pmd_mask(self) -> int: ...
    @property
    def task_size(self) -> int: ...
    @property
    def mmap_min_addr(self) -> int: ...
    @property
    def pte_table_bytes(self) -> int: ...
    @property
    def tables(self) -> PageTables: ...
    @property
    def tlbs(self) -> Tlbs: ...
    vmas: list[Any]
    policy: Policy
    pmc: PagetableMoveControl
    cpu: int
    trace_moves: bool
    max_map_count: int
    page_table_limit: int | None
    last_move: MoveStats | None
    def __init__(self, arch: Arch, tables: PageTables, tlbs: Tlbs) -> None: ...
