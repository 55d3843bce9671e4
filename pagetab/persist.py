"""Saving and loading an address space (numpy ``.npz`` files).

Page tables, VMAs, shared-memory objects and frame numbering are saved
exactly; TLBs are not (a loaded space starts with cold TLBs and its
system-call CPU in mm_cpumask). Only registered arch profiles and policy
presets can be saved by name.
"""

from __future__ import annotations

import json
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from .arch import arch as lookup_arch
from .arch import archs
from .policy import policies
from .policy import policy as lookup_policy
from .vma import Shm, Vma

if TYPE_CHECKING:
    from .space import AddressSpace

__all__ = ["SAVE_VERSION", "load", "save"]

SAVE_VERSION = 1


def save(mm: AddressSpace, path: Any) -> None:
    """Write the whole simulated state of ``mm`` to ``path``."""
    a = mm.arch
    registered = lookup_arch(a.name) if a.name in archs() else None
    if registered is None or registered != a or registered.costs != a.costs:
        raise NotImplementedError(f"save: arch {a.name!r} is not a registered "
                                  "profile (custom profiles cannot be saved yet)")  # fmt: skip
    if mm.policy.name not in policies() or lookup_policy(mm.policy.name) != mm.policy:
        raise NotImplementedError(f"save: policy {mm.policy.name!r} is not a preset")
    vs = mm._vmas
    if any(v.uffd for v in vs):
        raise NotImplementedError("save: userfaultfd registrations cannot be saved yet")
    shms = list({id(v.shm): v.shm for v in vs if v.shm is not None}.values())
    index = {id(x): i for i, x in enumerate(shms)}
    meta = {"format": "pagetab", "version": SAVE_VERSION, "arch": a.name,
            "policy": mm.policy.name, "thp": mm.thp, "cpus": mm.cpus,
            "max_map_count": mm.max_map_count, "page_table_limit": mm.page_table_limit,
            "cpu": mm.cpu,
            "thp_sizes": {str(k): v for k, v in mm.thp_sizes.items()}}  # fmt: skip
    arrays: dict[str, Any] = {f"tables_{k}": v for k, v in mm.tables.dump().items()}
    arrays["vma"] = np.array(
        [[v.start, v.end, v.prot, v.shared, v.flags, v.pgoff,
          -1 if v.anon_vma is None else v.anon_vma,
          -1 if v.shm is None else index[id(v.shm)]] for v in vs],
        dtype=np.int64).reshape(-1, 8)  # fmt: skip
    for i, x in enumerate(shms):
        arrays[f"shm{i}"] = x.frames
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)


def load(cls: type[AddressSpace], path: Any) -> AddressSpace:
    """An address space of class ``cls`` from a file written by ``save``;
    ValueError if the file is not one, or is inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"load: {path} is not a pagetab save file ({e})") from None
    try:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != "pagetab":
            raise ValueError("not a pagetab save file")
        if meta.get("version") != SAVE_VERSION:
            raise ValueError(f"save format version {meta.get('version')} is not supported")
        mm = cls(meta["arch"], cpus=meta["cpus"], thp=meta["thp"],
                 max_map_count=meta["max_map_count"], policy=meta["policy"],
                 page_table_limit=meta["page_table_limit"],
                 thp_sizes={int(k): v for k, v in meta.get("thp_sizes", {}).items()})  # fmt: skip
        mm.tables.restore({k[len("tables_"):]: v for k, v in data.items()
                           if k.startswith("tables_")})  # fmt: skip
        shms: dict[int, Shm] = {}
        for row in np.asarray(data["vma"], dtype=np.int64).reshape(-1, 8).tolist():
            start, end, prot, shared, flags, pgoff, anon, shm = row
            obj = None
            if shm != -1:
                if shm not in shms:
                    frames = np.asarray(data[f"shm{shm}"], dtype=np.int64)
                    shms[shm] = Shm(frames.size)
                    shms[shm].frames[:] = frames
                obj = shms[shm]
            mm._vmas.append(Vma(start, end, prot, bool(shared), flags, pgoff,
                                None if anon == -1 else anon, obj))  # fmt: skip
        mm.cpu = int(meta.get("cpu", 0))
        mm.tlbs.set_cpu(mm.cpu)
        mm.check()
    # InvariantError (mm.check) is an AssertionError
    except (KeyError, TypeError, AssertionError, ValueError, IndexError) as e:
        raise ValueError(f"load: {path} is corrupted or foreign: {e}") from None
    return mm
