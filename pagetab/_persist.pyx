# cython: language_level=3
"""Page contents and saving the store (no kernel file: pagetab's own).

Page contents are one bit per frame, set by a store (``mark_written``,
from the access path), never by a fault alone: a fault maps a
zero-filled page. Their only reader is the folio split (``is_written``
in _uffd: b1f202060afe maps never-written subpages to the zero page).
``dump`` gives the store as plain arrays (every row ever handed out, the
packed PTE tables' descriptors, the free lists, the bitmap) and
``restore`` loads them into a fresh store, then checks the result
(_inspect.check: a corrupt descriptor is refused there).
"""

cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport realloc
from libc.string cimport memcpy, memset

import numpy as np

from pagetab._inspect cimport check
from pagetab._pgtable cimport Pool, d_hi, d_lo, live_tables, pgtables, pool_row, pool_take

cnp.import_array()


cdef void mark_written(pgtables *pt, uint64_t frame) noexcept nogil:
    """A store wrote ``frame`` (grows the bitmap; if it cannot, every
    frame counts as written from then on)."""
    cdef uint64_t need = (frame >> 3) + 1, n
    cdef uint8_t *w
    if need > pt.written_bytes:
        n = pt.written_bytes * 2
        if n < need:
            n = need
        if n < 4096:
            n = 4096
        w = <uint8_t*>realloc(pt.written, n)
        if w == NULL:
            pt.written_lost = True
            return
        memset(w + pt.written_bytes, 0, n - pt.written_bytes)
        pt.written = w
        pt.written_bytes = n
    pt.written[frame >> 3] |= <uint8_t>(1 << (frame & 7))


cdef bint is_written(pgtables *pt, uint64_t frame) noexcept nogil:
    if pt.written_lost:
        return True
    if (frame >> 3) >= pt.written_bytes:
        return False
    return (pt.written[frame >> 3] >> (frame & 7)) & 1


cdef object written_frames(pgtables *pt):
    """The frames a store has written, ascending (a numpy int64 array):
    every frame ever allocated when the bitmap is lost (it could not
    grow, or a save without it was loaded)."""
    cdef cnp.npy_intp n = <cnp.npy_intp>pt.written_bytes
    if pt.written_lost:
        return np.arange(1, pt.next_frame, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer((<char*>pt.written)[:n], dtype=np.uint8),
                         bitorder="little")
    return np.flatnonzero(bits).astype(np.int64)


cdef object write_frames(pgtables *pt, frames):
    """Mark ``frames`` written, as stores to them would."""
    cdef int64_t[::1] fs = np.ascontiguousarray(frames, dtype=np.int64)
    cdef int64_t i
    for i in range(fs.shape[0]):
        if fs[i] <= 0 or <uint64_t>fs[i] >= pt.next_frame:
            raise ValueError(f"frame {fs[i]} was never allocated (1..{pt.next_frame - 1})")
    for i in range(fs.shape[0]):
        mark_written(pt, <uint64_t>fs[i])


cdef object written_bitmap(pgtables *pt):
    """The bitmap itself (a copy, uint8), for dump: one bit per frame."""
    return np.frombuffer((<char*>pt.written)[:pt.written_bytes], dtype=np.uint8).copy() \
        if pt.written_bytes else np.zeros(0, dtype=np.uint8)


cdef void restore_written(pgtables *pt, bitmap, bint lost) except *:
    """Load what ``written_bitmap`` gave (ValueError if a bit names a
    frame never allocated, or the zero page)."""
    cdef const uint8_t[::1] b = np.ascontiguousarray(bitmap, dtype=np.uint8)
    cdef uint8_t *w
    set_ = np.flatnonzero(np.unpackbits(np.asarray(b), bitorder="little"))
    if set_.size and (set_.min() == 0 or <uint64_t>set_.max() >= pt.next_frame):
        raise ValueError("the written-page bitmap names frames never allocated")
    if b.shape[0]:
        w = <uint8_t*>realloc(pt.written, b.shape[0])
        if w == NULL:
            raise MemoryError()
        memcpy(w, &b[0], b.shape[0])
        pt.written = w
        pt.written_bytes = b.shape[0]
    pt.written_lost = lost


cdef object pool_rows(Pool *p):
    """Every row ``p`` ever handed out, as an hw x nent array."""
    cdef int64_t r
    cdef uint64_t[:, ::1] v
    rows = np.empty((p.hw, p.nent), dtype=np.uint64)
    v = rows
    for r in range(p.hw):
        memcpy(&v[r, 0], pool_row(p, r), p.nent * 8)
    return rows


cdef int64_t pmd_run_total(Pool *p) noexcept nogil:
    """The PMD entries the descriptors of ``p`` hold runs of (hi - lo each)."""
    cdef int64_t r, n = 0
    cdef uint64_t *d
    for r in range(p.hw):
        d = pool_row(p, r)
        if d_hi(d) > d_lo(d):
            n += d_hi(d) - d_lo(d)
    return n


cdef dict dump(pgtables *pt):
    """The store as plain arrays: per level ``rows<l>`` (every row ever
    handed out, hw x nent) and ``free<l>`` (the free list); ``packed``
    (every packed PTE table's descriptor ever handed out, hw x 2) and
    ``packed_free``; ``packed_pmd`` and ``packed_pmd_free`` (the same for
    packed PMD tables); ``next_frame``; ``written`` (one bit per frame a
    store wrote) and ``written_lost``."""
    cdef int l
    out = {"next_frame": np.array([pt.next_frame], dtype=np.uint64),
           "written": written_bitmap(pt),
           "written_lost": np.array([pt.written_lost]),
           "nent": np.array([pt.pools[l].nent for l in range(pt.nlev)], dtype=np.int64),
           "shift": np.array([pt.shift[l] for l in range(pt.nlev)], dtype=np.int64),
           "packed": pool_rows(&pt.packed),
           "packed_free": np.array([pt.packed.freelist[k] for k in range(pt.packed.nfree)],
                                   dtype=np.int64),
           "packed_pmd": pool_rows(&pt.packed_pmd),
           "packed_pmd_free": np.array([pt.packed_pmd.freelist[k]
                                       for k in range(pt.packed_pmd.nfree)], dtype=np.int64)}
    for l in range(pt.nlev):
        out[f"rows{l}"] = pool_rows(&pt.pools[l])
        out[f"free{l}"] = np.array([pt.pools[l].freelist[k]
                                    for k in range(pt.pools[l].nfree)], dtype=np.int64)
    return out


cdef object restore_pool(Pool *p, rows_in, free_in, str what, bint root):
    """Load one pool's rows and free list (ValueError naming ``what`` when
    their shape or the free list is wrong)."""
    cdef int64_t r, hw, k, ncap
    cdef uint64_t[:, ::1] v
    cdef int64_t *nf
    rows = np.ascontiguousarray(rows_in, dtype=np.uint64)
    free_rows = np.asarray(free_in, dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] != p.nent or rows.shape[0] < root:
        raise ValueError(f"{what}: rows have the wrong shape {rows.shape}")
    hw = rows.shape[0]
    if free_rows.ndim != 1 or ((free_rows < 0) | (free_rows >= hw)).any() or \
            np.unique(free_rows).size != free_rows.size or (root and 0 in free_rows):
        raise ValueError(f"{what}: bad free list")
    while p.hw < hw:
        if pool_take(p) < 0:
            raise MemoryError("cannot allocate the saved tables")
    v = rows
    for r in range(hw):
        memcpy(pool_row(p, r), &v[r, 0], p.nent * 8)
    ncap = max(64, free_rows.size)
    nf = <int64_t*>realloc(p.freelist, ncap * sizeof(int64_t))
    if nf == NULL:
        raise MemoryError()
    p.freelist = nf
    p.free_cap = ncap
    for k in range(free_rows.size):
        nf[k] = free_rows[k]
    p.nfree = free_rows.size
    p.live = hw - free_rows.size


cdef object restore(pgtables *pt, data):
    """Load what dump() returned into this fresh store (same geometry).

    Raises ValueError naming what does not fit; the result is checked
    structurally (_inspect.check). A save from before packed tables has
    no ``packed``: every table is a row; one from before packed PMD
    tables has no ``packed_pmd``: every PMD table is a row.
    """
    cdef int l
    if pt.pools[0].hw != 1 or any(pt.pools[l].live for l in range(1, pt.nlev)) \
            or pt.packed.live or pt.packed_pmd.live:
        raise ValueError("restore needs a fresh store")
    nent = np.asarray(data["nent"])
    shift = np.asarray(data["shift"])
    if nent.tolist() != [pt.pools[l].nent for l in range(pt.nlev)] or \
            shift.tolist() != [pt.shift[l] for l in range(pt.nlev)]:
        raise ValueError("saved tables have another geometry")
    # the root's row 0 is taken already: it is overwritten, not taken again
    # (and given back as it was if the root's rows do not load)
    pt.pools[0].live = 0
    pt.pools[0].hw = 0
    pt.pools[0].nfree = 0
    try:
        restore_pool(&pt.pools[0], data["rows0"], data["free0"], "level 0", True)
    except BaseException:
        pt.pools[0].live = pt.pools[0].hw = 1
        pt.pools[0].nfree = 0
        raise
    for l in range(1, pt.nlev):
        restore_pool(&pt.pools[l], data[f"rows{l}"], data[f"free{l}"], f"level {l}", False)
    if "packed" in data:
        restore_pool(&pt.packed, data["packed"], data["packed_free"], "packed tables", False)
    if "packed_pmd" in data:
        restore_pool(&pt.packed_pmd, data["packed_pmd"], data["packed_pmd_free"],
                     "packed PMD tables", False)
        # the PTE tables they hold (free descriptors are zero: check() says so)
        pt.packed_pmd_ptes = pmd_run_total(&pt.packed_pmd)
    for l in range(pt.nlev):
        pt.pools[l].peak = live_tables(pt, l)
    pt.next_frame = int(np.asarray(data["next_frame"])[0])
    if "written" in data:
        restore_written(pt, data["written"], bool(np.asarray(data["written_lost"])[0]))
    else:
        # a save from before page contents were tracked: nothing says
        # which pages are zero-filled, so every one counts as written
        pt.written_lost = True
    pt.tables_freed = 0
    problems = check(pt)
    if problems:
        raise ValueError("saved page tables are inconsistent: " + "; ".join(problems[:3]))
