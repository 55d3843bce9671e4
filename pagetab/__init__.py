"""pagetab: simulate Linux page tables and how mremap(2) and UFFDIO_MOVE move them.

See README.md for the two commands that install and run it, and the
documentation site in docs/ (``mkdocs serve``) for the user guide, the API
reference and how the simulator is checked against the real kernel.
"""

from ._version import __version__
from .arch import Arch, Cost, FlushRules, Level, TlbArraySpec, TlbSpec, arch, archs
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
from .space import AddressSpace
from .stats import AccessStats, MoveStats
from .vma import InvariantError

__all__ = [
    "FLUSH_MODES",
    "ZERO_FRAME",
    "AccessStats",
    "AddressSpace",
    "Arch",
    "ContendResult",
    "ContendResults",
    "Cost",
    "File",
    "FlushRules",
    "GcResult",
    "GcResults",
    "InvariantError",
    "Level",
    "MoveResult",
    "MoveStats",
    "Policy",
    "Results",
    "ThreadResult",
    "ThreadSpec",
    "TlbArraySpec",
    "TlbSpec",
    "__version__",
    "arch",
    "archs",
    "compare",
    "compare_concurrent",
    "compare_gc",
    "gc_moves",
    "policies",
    "policy",
    "run_concurrent",
    "run_gc",
    "run_move",
    "sweep",
]
