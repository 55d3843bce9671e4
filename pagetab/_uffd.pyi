from typing import Any

import numpy as np
import numpy.typing as npt

from pagetab._flush import Tlbs
from pagetab._tables import PageTables

NEED_SPLIT: int

def move_calls(
    tables: PageTables,
    tlbs: Tlbs,
    caller: int,
    calls: npt.NDArray[np.uint64],
    first: int,
    offset: int,
    stop: int,
    rules: dict[str, bool],
    trace: bool = ...,
) -> tuple[
    int, int, int, dict[str, Any], tuple[npt.NDArray[np.void], npt.NDArray[np.int64]] | None
]: ...
def split_folio(
    tables: PageTables,
    tlbs: Tlbs,
    caller: int,
    addrs: npt.NDArray[np.uint64],
    head: int,
    order: int,
    zero_unused: bool,
) -> dict[str, Any]: ...
def mfill_pte(
    tables: PageTables,
    addr: int,
    zeropage: bool,
    readable: bool,
    writable: bool,
    src_a: int = ...,
    src_b: int = ...,
) -> tuple[int, int]: ...
