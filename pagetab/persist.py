"""Saving and loading an address space (numpy ``.npz`` files).

Page tables, VMAs, shared-memory objects, mapped files (name, size,
writability and page cache) and frame numbering are saved exactly, and so
are userfaultfds (their features, their queued remap events, the VMAs
registered with each: ``AddressSpace.userfaultfds`` hands them back after
a load); TLBs are not (a loaded space starts with cold
TLBs and its system-call CPU in mm_cpumask). Only registered arch profiles
and policy presets can be saved by name.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from .arch import arch as lookup_arch
from .arch import archs
from .mm_types import FAULT_AROUND_BYTES, File, MmStruct, Shm, Vma, mm_alloc
from .policy import policies
from .policy import policy as lookup_policy
from .userfaultfd import Userfaultfd

__all__ = ["SAVE_VERSION", "load", "save"]

#: 6: packed PMD tables' descriptors (``tables_packed_pmd``,
#: ``tables_packed_pmd_free``);
#: 5: packed PTE tables' descriptors (``tables_packed``, ``tables_packed_free``);
#: 4: a file's known page-cache residency (``filecached{i}``) and large
#: folios (``filefolios{i}``), where set;
#: 3: VMAs carry their file (a tenth column), files are saved (meta
#: ``files``, their page caches ``file{i}``), and fault_around_bytes;
#: 2: VMAs carry their userfaultfd (a ninth column), userfaultfds are saved;
#: version 1 to 5 files still load
SAVE_VERSION = 6


def save(mm: MmStruct, path: Any) -> None:
    """Write the whole simulated state of ``mm`` to ``path``."""
    a = mm.arch
    registered = lookup_arch(a.name) if a.name in archs() else None
    if registered is None or registered != a or registered.costs != a.costs:
        raise NotImplementedError(f"save: arch {a.name!r} is not a registered "
                                  "profile (custom profiles cannot be saved yet)")  # fmt: skip
    if mm.policy.name not in policies() or lookup_policy(mm.policy.name) != mm.policy:
        raise NotImplementedError(f"save: policy {mm.policy.name!r} is not a preset")
    vs = mm.vmas
    shms = list({id(v.shm): v.shm for v in vs if v.shm is not None}.values())
    index = {id(x): i for i, x in enumerate(shms)}
    files = list({id(v.file): v.file for v in vs if v.file is not None}.values())
    findex = {id(f): i for i, f in enumerate(files)}
    meta = {"format": "pagetab", "version": SAVE_VERSION, "arch": a.name,
            "policy": mm.policy.name, "thp": mm.thp, "cpus": mm.cpus,
            "max_map_count": mm.max_map_count, "page_table_limit": mm.page_table_limit,
            "cpu": mm.cpu,
            "thp_sizes": {str(k): v for k, v in mm.thp_sizes.items()},
            "fault_around_bytes": mm.fault_around_bytes,
            "files": [[f.name, f.size, f.writable] for f in files],
            "userfaultfds": [[u.id, u.features, [list(e) for e in u.pending_events]]
                             for u in mm.userfaultfds.values()]}  # fmt: skip
    arrays: dict[str, Any] = {f"tables_{k}": v for k, v in mm.tables.dump().items()}
    arrays["vma"] = np.array(
        [[v.start, v.end, v.prot, v.shared, v.flags, v.pgoff,
          -1 if v.anon_vma is None else v.anon_vma,
          -1 if v.shm is None else index[id(v.shm)], v.uffd,
          -1 if v.file is None else findex[id(v.file)]] for v in vs],
        dtype=np.int64).reshape(-1, 10)  # fmt: skip
    for i, x in enumerate(shms):
        arrays[f"shm{i}"] = x.frames
    for i, f in enumerate(files):
        arrays[f"file{i}"] = f.frames
        if f.cached is not None:
            arrays[f"filecached{i}"] = f.cached
        if f.folios is not None:
            arrays[f"filefolios{i}"] = f.folios
    arrays["meta"] = np.array(json.dumps(meta))
    if hasattr(path, "write"):
        np.savez_compressed(path, **arrays)
        return
    with open(path, "wb") as out:  # the path given, exactly (numpy would add .npz to a name)
        np.savez_compressed(out, **arrays)


def load(path: Any, check: Callable[[MmStruct], None]) -> MmStruct:
    """The mm in a file written by ``save``, verified with ``check`` (which
    raises an AssertionError or ValueError naming what is wrong); ValueError
    if the file is not one, or is inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, AttributeError):
        # (numpy's own message would suggest allow_pickle for a pickle)
        raise ValueError(f"load: {path} is not a pagetab save file (not a NumPy .npz "
                         "archive)") from None  # fmt: skip
    try:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != "pagetab":
            raise ValueError("not a pagetab save file")
        if meta.get("version") not in (1, 2, 3, 4, 5, SAVE_VERSION):
            raise ValueError(f"save format version {meta.get('version')} is not supported")
        sizes = {int(k): v for k, v in meta.get("thp_sizes", {}).items()}
        mm = mm_alloc(meta["arch"], cpus=meta["cpus"], thp=meta["thp"],
                      max_map_count=meta["max_map_count"], policy=meta["policy"],
                      page_table_limit=meta["page_table_limit"], thp_sizes=sizes)  # fmt: skip
        mm.tables.restore({k[len("tables_"):]: v for k, v in data.items()
                           if k.startswith("tables_")})  # fmt: skip
        for ident, features, events in meta.get("userfaultfds", []):
            u = Userfaultfd(mm, int(ident), int(features))
            u.pending_events = [(int(a), int(b), int(n)) for a, b, n in events]
            mm.userfaultfds[u.id] = u
        mm.fault_around_bytes = int(meta.get("fault_around_bytes", FAULT_AROUND_BYTES))
        shms: dict[int, Shm] = {}
        files: list[File] = []
        for i, (name, size, writable) in enumerate(meta.get("files", [])):
            f = File(str(name), int(size), bool(writable))
            f.attach(mm.tables, mm.page_shift)
            frames = np.asarray(data[f"file{i}"], dtype=np.int64)
            if frames.shape != f.frames.shape:
                raise ValueError(f"file {name!r}: {frames.size} pages saved for its size")
            f.frames[:] = frames
            if f"filecached{i}" in data:
                cached = np.asarray(data[f"filecached{i}"], dtype=np.bool_)
                if cached.shape != f.frames.shape:
                    raise ValueError(f"file {name!r}: {cached.size} cached flags saved for "
                                     "its size")  # fmt: skip
                f.cached = cached.copy()
            if f"filefolios{i}" in data:
                rows = np.asarray(data[f"filefolios{i}"], dtype=np.int64).reshape(-1, 2)
                f.set_folios([(int(lo), int(hi)) for lo, hi in rows.tolist()], mm.page_shift)
            files.append(f)
        columns = {1: 8, 2: 9}.get(meta["version"], 10)
        for row in np.asarray(data["vma"], dtype=np.int64).reshape(-1, columns).tolist():
            start, end, prot, shared, flags, pgoff, anon, shm, *rest = row
            if min(start, end, prot, flags, pgoff) < 0:
                raise ValueError(f"VMA at {start:#x}: a negative address, protection, flag "
                                 "or offset")  # fmt: skip
            uffd = rest[:1]
            fidx = rest[1] if len(rest) > 1 else -1
            if uffd and uffd[0] and uffd[0] not in mm.userfaultfds:
                raise ValueError(f"VMA {start:#x} is registered with userfaultfd {uffd[0]}, "
                                 "which the file does not hold")  # fmt: skip
            obj = None
            if shm != -1:
                if shm not in shms:
                    frames = np.asarray(data[f"shm{shm}"], dtype=np.int64)
                    shms[shm] = Shm(frames.size)
                    shms[shm].frames[:] = frames
                obj = shms[shm]
            v = Vma(start, end, prot, bool(shared), flags, pgoff,
                    None if anon == -1 else anon, obj,
                    file=None if fidx == -1 else files[fidx])  # fmt: skip
            v.uffd = uffd[0] if uffd else 0
            mm.vmas.append(v)
        mm.cpu = int(meta.get("cpu", 0))
        mm.switch_mm(mm.cpu)
        check(mm)
    # InvariantError (mm.check) is an AssertionError
    except (KeyError, TypeError, AssertionError, ValueError, IndexError, OverflowError) as e:
        raise ValueError(f"load: {path} is corrupted or foreign: {e}") from None
    return mm
