"""Type stubs for mremap's C path (see _mremap.pyx)."""

from typing import Any

from ._mm_types import mm_struct

def mremap_whole_vma(
    mm: mm_struct, addr: Any, old_size: Any, new_size: Any, flags: Any, new_addr: Any
) -> int | None: ...
