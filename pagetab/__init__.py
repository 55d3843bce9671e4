"""pagetab: simulate Linux page tables and how mremap(2) and UFFDIO_MOVE move them.

See README.md for the two commands that install and run it, and the
documentation site in docs/ (``mkdocs serve``) for the user guide, the API
reference and how the simulator is checked against the real kernel.
"""

from ._version import __version__
from .arch import (
    Arch,
    CalibrationWarning,
    Cost,
    FlushRules,
    Level,
    TlbArraySpec,
    TlbSpec,
    arch,
    archs,
)
from .compaction import GcResult, GcResults, compare_gc, gc_moves, run_gc
from .constants import *  # noqa: F403  (Linux's constants, by their Linux names)
from .constants import ZERO_FRAME
from .contention import (
    ContendResult,
    ContendResults,
    ThreadResult,
    ThreadSpec,
    compare_concurrent,
    run_concurrent,
)
from .experiment import MoveResult, Results, compare, run_move, sweep
from .mm_types import File
from .policy import FLUSH_MODES, Policy, policies, policy
from .record import RecordError, RecordResult, record
from .replay import (
    Difference,
    KindTotal,
    ReplayedCall,
    ReplayResult,
    ReplayResults,
    compare_replay,
    example_trace,
    example_traces,
    replay,
)
from .space import AddressSpace
from .stats import COUNTER_INFO, LOCK_INFO, OP_INFO, AccessStats, CounterInfo, MoveStats
from .trace_import import import_perf_trace, import_strace
from .tracefile import Header, TraceReader, TraceWriter, read_trace
from .vma import InvariantError

__all__ = [
    "COUNTER_INFO",
    "FLUSH_MODES",
    "LOCK_INFO",
    "OP_INFO",
    "ZERO_FRAME",
    "AccessStats",
    "AddressSpace",
    "Arch",
    "CalibrationWarning",
    "ContendResult",
    "ContendResults",
    "Cost",
    "CounterInfo",
    "Difference",
    "File",
    "FlushRules",
    "GcResult",
    "GcResults",
    "Header",
    "InvariantError",
    "KindTotal",
    "Level",
    "MoveResult",
    "MoveStats",
    "Policy",
    "RecordError",
    "RecordResult",
    "ReplayResult",
    "ReplayResults",
    "ReplayedCall",
    "Results",
    "ThreadResult",
    "ThreadSpec",
    "TlbArraySpec",
    "TlbSpec",
    "TraceReader",
    "TraceWriter",
    "__version__",
    "arch",
    "archs",
    "compare",
    "compare_concurrent",
    "compare_gc",
    "compare_replay",
    "example_trace",
    "example_traces",
    "gc_moves",
    "import_perf_trace",
    "import_strace",
    "policies",
    "policy",
    "read_trace",
    "record",
    "replay",
    "run_concurrent",
    "run_gc",
    "run_move",
    "sweep",
]
