"""A trace's addresses moved into a smaller address space (replay's
``translate``).

A program recorded on x86-64 maps near the top of a 128 TiB user space
(mmap area and stack at 0x7f..., a PIE executable and its heap at 0x55...);
riscv64 Sv39 has 256 GiB. ``Layout`` places the recording's regions into
the target's space, lowest first and in order, keeping each address's
offset within its 1 GiB (so a move's alignments, and with them the PTE,
PMD and PUD paths it takes, are those recorded): every run of adjacent
GiBs the trace touches keeps its shape, and the gaps between runs shrink
to one free GiB. ``translate_event`` rewrites every address of an event:
faults, the VMAs and present pages of ``maps``, and the address arguments,
results and userfaultfd structures of the system calls replay runs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from .constants import (
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    UFFDIO_COPY,
    UFFDIO_MOVE,
    UFFDIO_REGISTER,
    UFFDIO_UNREGISTER,
    UFFDIO_ZEROPAGE,
)

__all__ = ["SPAN_SHIFT", "Layout", "addresses", "spans"]

#: regions are placed whole GiBs at a time (a PUD on x86-64 and 4K arm64/riscv)
SPAN_SHIFT = 30
#: the argument positions that are addresses, by system call (mremap's new
#: address only with MREMAP_FIXED or MREMAP_DONTUNMAP: see _args)
_ADDRESS_ARGS = {"mmap": (0,), "munmap": (0,), "mprotect": (0,), "madvise": (0,),
                 "mremap": (0,), "brk": (0,)}  # fmt: skip
#: the calls whose result is an address
_ADDRESS_RESULTS = ("mmap", "mremap", "brk")
#: the userfaultfd structure's address fields, by ioctl command
_MEM_ADDRESSES = {UFFDIO_REGISTER: (0,), UFFDIO_UNREGISTER: (0,), UFFDIO_MOVE: (0, 1),
                  UFFDIO_COPY: (0, 1), UFFDIO_ZEROPAGE: (0,)}  # fmt: skip


def _args(ev: dict[str, Any]) -> tuple[int, ...]:
    """The positions of ``ev``'s address arguments."""
    nr = ev["nr"]
    if nr == "mremap" and len(ev["a"]) > 4 and ev["a"][3] & (MREMAP_FIXED | MREMAP_DONTUNMAP):
        return (0, 4)
    return _ADDRESS_ARGS.get(nr, ())


def _kernel_row(row: list[Any]) -> bool:
    """A VMA row of the kernel's, not the program's: [vsyscall], above
    every user address, stays where it is (replay maps none)."""
    return len(row) > 4 and row[4] == "[vsyscall]"


#: the calls whose address argument starts a range of their length argument
_RANGES = {"mmap": 1, "munmap": 1, "mprotect": 1, "madvise": 1}


def spans(ev: dict[str, Any]) -> Iterable[int]:
    """Every GiB (address >> SPAN_SHIFT) an event names or covers: the
    GiBs inside a mapping or a call's range too, so that a region larger
    than two GiBs stays whole when placed."""
    for addr in addresses(ev):
        yield addr >> SPAN_SHIFT
    for lo, hi in _covered(ev):
        if 0 < hi - lo < 1 << 47:
            yield from range(lo >> SPAN_SHIFT, ((hi - 1) >> SPAN_SHIFT) + 1)


def _covered(ev: dict[str, Any]) -> Iterable[tuple[int, int]]:
    """The address ranges [lo, hi) an event maps or acts on."""
    k = ev["k"]
    if k == "maps":
        for row in ev["vmas"]:
            if not _kernel_row(row):
                yield int(row[0]), int(row[1])
    elif k == "sys":
        a, r, nr = ev["a"], ev.get("r"), ev["nr"]
        if nr in _RANGES and len(a) > 1 and a[0] and a[1]:
            yield int(a[0]), int(a[0]) + int(a[1])
        if nr == "mmap" and r is not None and r > 0 and len(a) > 1:
            yield int(r), int(r) + int(a[1])
        if nr == "mremap" and len(a) > 2:
            yield int(a[0]), int(a[0]) + int(a[1])
            if r is not None and r > 0:
                yield int(r), int(r) + int(a[2])


def addresses(ev: dict[str, Any]) -> Iterable[int]:
    """Every user address an event names (0, a null hint, excepted)."""
    k = ev["k"]
    if k == "fault":
        yield int(ev["a"])
    elif k == "maps":
        for row in ev["vmas"]:
            if not _kernel_row(row):
                yield int(row[0])
                yield int(row[1]) - 1
        for run in ev.get("present") or []:
            yield int(run[0])
    elif k == "sys":
        a = ev["a"]
        for i in _args(ev):
            if i < len(a) and a[i]:
                yield int(a[i])
        r = ev.get("r")
        if ev["nr"] in _ADDRESS_RESULTS and r is not None and r > 0:
            yield int(r)
        mem = ev.get("mem")
        if ev["nr"] == "ioctl" and mem and len(a) > 1:
            for i in _MEM_ADDRESSES.get(a[1], ()):
                if mem[i]:
                    yield int(mem[i])


class Layout:
    """Where each GiB of a recording goes in a target space of
    ``task_size`` bytes (see the module docstring); ``spans`` are the
    recording's GiB numbers (address >> SPAN_SHIFT) that its events name.

    Raises
    ------
    ValueError
        The recording's regions do not fit below ``task_size``.
    """

    def __init__(self, spans: Iterable[int], task_size: int) -> None:
        used = sorted(set(spans))
        self.starts: list[int] = []  # each run's first recorded GiB
        self.deltas: list[int] = []  # and what is added to its addresses
        at = 1  # GiB 0 stays free (mmap_min_addr and NULL)
        prev = None
        for s in used:
            if prev is None or s != prev + 1:
                if prev is not None:
                    at += 1  # one free GiB between runs
                self.starts.append(s)
                self.deltas.append((at - s) << SPAN_SHIFT)
            at += 1
            prev = s
        self.size = at << SPAN_SHIFT  # the top of the last region placed
        if self.size > task_size:
            raise ValueError(f"the trace's {len(used)} GiB of mappings, each run of them with "
                             f"a GiB between, need {self.size >> SPAN_SHIFT} GiB; the target "
                             f"has {task_size >> SPAN_SHIFT}")  # fmt: skip

    def __call__(self, addr: int) -> int:
        """``addr`` in the target (its run's shift; before the first run,
        the first run's)."""
        i = max(bisect.bisect_right(self.starts, addr >> SPAN_SHIFT) - 1, 0)
        return addr + self.deltas[i] if self.deltas else addr

    def translate_event(self, ev: dict[str, Any]) -> dict[str, Any]:
        """``ev`` with every address moved (a new dict; ``ev`` is kept)."""
        k = ev["k"]
        if k == "fault":
            return {**ev, "a": self(int(ev["a"]))}
        if k == "maps":
            vmas = [r if _kernel_row(r) else [self(int(r[0])), self(int(r[1]) - 1) + 1, *r[2:]]
                    for r in ev["vmas"]]  # fmt: skip
            present = [[self(int(r[0])), self(int(r[1]) - 1) + 1, *r[2:]]
                       for r in ev.get("present") or []]  # fmt: skip
            return {**ev, "vmas": vmas, "present": present}
        if k != "sys":
            return ev
        out = dict(ev)
        a = list(ev["a"])
        for i in _args(ev):
            if i < len(a) and a[i]:
                a[i] = self(int(a[i]))
        out["a"] = a
        r = ev.get("r")
        if ev["nr"] in _ADDRESS_RESULTS and r is not None and r > 0:
            out["r"] = self(int(r))
        mem = ev.get("mem")
        if ev["nr"] == "ioctl" and mem and len(a) > 1:
            m = list(mem)
            for i in _MEM_ADDRESSES.get(a[1], ()):
                if m[i]:
                    m[i] = self(int(m[i]))
            out["mem"] = m
        return out
