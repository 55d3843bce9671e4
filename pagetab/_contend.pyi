"""Type stubs for the concurrent model's C core (see _contend.pyx)."""

from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ._flush import Tlbs
from ._tables import PageTables

THREAD_DTYPE: np.dtype[Any]
RESULT_DTYPE: np.dtype[Any]
THREAD_SPEC_DTYPE: np.dtype[Any]
REGION_DTYPE: np.dtype[Any]
HOLD_DTYPE: np.dtype[Any]
HISTOGRAM_BUCKETS: int

class region_fate(IntEnum):
    FATE_KEPT = 0
    FATE_MOVED = 1
    FATE_ZAPPED = 2
    FATE_UNMAPPED = 3
    FATE_PROTECTED = 4

class mover_lock(IntEnum):
    LOCK_WRITE = 0
    LOCK_DOWNGRADE = 1
    LOCK_READ = 2

def bucket_upper_ns() -> npt.NDArray[np.float64]: ...
def simulate(
    tables: PageTables,
    tlbs: Tlbs,
    config: dict[str, Any],
    threads: npt.NDArray[Any],
    regions: npt.NDArray[Any],
    ext_lo: npt.NDArray[np.uint64],
    ext_hi: npt.NDArray[np.uint64],
    ext_moved: npt.NDArray[np.float64],
    ext_unlocked: npt.NDArray[np.float64],
    fl_at: npt.NDArray[np.float64],
    fl_lo: npt.NDArray[np.uint64],
    fl_hi: npt.NDArray[np.uint64],
    fl_stride: npt.NDArray[np.int64],
    fl_freed: npt.NDArray[np.uint8],
    fl_ops: npt.NDArray[np.int64],
    holds: npt.NDArray[Any],
    remote_ns: npt.NDArray[np.float64],
    interrupts: npt.NDArray[np.uint8],
    sender_ns: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], Any]: ...
