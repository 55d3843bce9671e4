"""Build the Cython core of pagetab.

The compiler directives live here and only here. ``PAGETAB_DEBUG=1`` builds
with bounds and wraparound checks on, which the CI runs the test suite under.
``PAGETAB_SANITIZE=1`` builds with AddressSanitizer and
UndefinedBehaviorSanitizer; Python itself is not instrumented, so the ASan
runtime must be loaded first:

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
        python -m pytest tests/...

(leak detection is off: the interpreter keeps memory alive at exit on
purpose). No -march=native: wheels must run on any x86-64 or aarch64 machine.
"""

import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("PAGETAB_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("PAGETAB_SANITIZE", "") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

# Loops aligned to a cache line: the hot per-entry loops (move_ptes's above
# all) are memory-bound and short, and where the compiler happened to place
# one (across three 32-byte fetch windows in one build, two in another) moved
# the 64 GiB dense PTE-path move by 5-10% between builds of the same loop
CFLAGS = ["-O0", "-g"] if DEBUG else ["-O3", "-falign-loops=64"]
LDFLAGS: list[str] = []
MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    MACROS.append(("PAGETAB_DEBUG", "1"))
else:
    # a `cdef inline` is inlined: GCC's heuristics judge the lock steps of
    # the move engine "cold" and keep them as calls, 25% of a PMD-path move
    MACROS.append(("CYTHON_INLINE", "inline __attribute__((always_inline))"))
if SANITIZE:
    # -fno-sanitize-recover: any undefined behaviour fails the run
    SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    CFLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", *SAN]
    LDFLAGS = SAN


def ext(name: str, sources: list[str]) -> Extension:
    return Extension(
        name,
        sources,
        include_dirs=[np.get_include(), "csrc"],
        define_macros=MACROS,
        extra_compile_args=CFLAGS,
        extra_link_args=LDFLAGS,
    )


# one extension per .pyx: the page-table store and the kernel files built
# on it, then the TLBs, the flush rules (one module per family, each
# registering its rule with _flush), the access path and the engines
MODULES = ["_pgtable", "_huge_memory", "_memory", "_mprotect", "_inspect", "_persist", "_tables",
           "_tlb", "_flush", "_flush_x86", "_flush_arm64", "_flush_ppc64", "_flush_riscv",
           "_access", "_move", "_mm_types", "_mremap", "_uffd", "_contend"]  # fmt: skip
extensions = [ext(f"pagetab.{m}", [f"pagetab/{m}.pyx"]) for m in MODULES]
if sys.platform.startswith("linux"):
    # the host probe (csrc/probe.c) measures the real kernel: Linux only
    extensions.append(ext("pagetab._probe", ["pagetab/_probe.pyx"]))

# Each mode builds in its own tree (generated C, objects and linked
# modules), so that no build links or copies another mode's output.
BUILD = "build/sanitize" if SANITIZE else "build/debug" if DEBUG else "build/release"

# the extensions compile in parallel (the C compile is most of a build's time)
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        build_dir=f"{BUILD}/cython",
        nthreads=JOBS,
    ),
    options={"build": {"build_base": BUILD}, "build_ext": {"parallel": JOBS}},
)
