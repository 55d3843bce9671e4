"""Type stubs for the access path (see _access.pyx)."""

from typing import Any

import numpy as np
import numpy.typing as npt

from ._flush import Tlbs
from ._tables import PageTables

HAND_BACK: int
HAND_BACK_COW: int

def access(
    tlbs: Tlbs,
    tables: PageTables,
    addrs: npt.NDArray[np.uint64],
    cpu: int,
    write: bool,
    vmas: dict[str, npt.NDArray[Any]],
    start: int = 0,
) -> tuple[int, dict[str, int], dict[str, int]]: ...
