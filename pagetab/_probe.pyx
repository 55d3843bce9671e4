# cython: language_level=3
"""Thin wrapper over csrc/probe.c: the real kernel's mremap, measured."""

from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from posix.unistd cimport close

cdef extern from "probe.c":
    int POP_NONE, POP_ZERO, POP_WRITE, POP_THP, POP_FRESH
    int PROBE_READ, PROBE_FAULT, PROBE_FAULT_NEW
    int probe_reserve(size_t length, size_t align, uintptr_t *base) nogil
    int probe_map(uintptr_t addr, size_t length, int populate) nogil
    int64_t probe_move(uintptr_t src, uintptr_t dst, size_t length) nogil
    int64_t probe_resize(uintptr_t addr, size_t old_length, size_t new_length) nogil
    int64_t probe_populate_read(uintptr_t addr, size_t length) nogil
    int UNMAP_MADV_DONTNEED, UNMAP_MPROTECT_READ, UNMAP_MUNMAP
    int64_t probe_unmap_call(int call, uintptr_t addr, size_t length) nogil
    int64_t probe_access(uintptr_t addr, const uint64_t *off, int64_t n) nogil
    int64_t probe_verify(uintptr_t addr, size_t length, uintptr_t origin, int populate,
                         int64_t *checked) nogil
    long probe_status_kb(const char *key)
    long probe_vmstat(const char *key)
    int probe_pin_self(int cpu) nogil
    int probe_spin_start(int n, const int *cpus) nogil
    void probe_spin_stop() nogil
    int probe_uffd_open() nogil
    int probe_contend(uintptr_t src, uintptr_t dst, size_t length, int mover_cpu,
                      int reader_cpu, uintptr_t rlo, size_t rlen, int mode, int64_t warm_ns,
                      int64_t *lat, int64_t cap, int64_t *out) nogil
    int probe_gc_cycle(uintptr_t moving, uintptr_t src, size_t length, const int64_t *runs,
                       int64_t n, int64_t *ns) nogil

POPULATE = {"none": POP_NONE, "zero": POP_ZERO, "write": POP_WRITE, "thp": POP_THP,
            "fresh": POP_FRESH}
#: what the other thread of ``contend`` does: random reads, or a first write
#: to each page in turn (faults), its VMA's anon_vma prepared by one write
#: before the move ("fault") or not ("fault-new")
CONTEND_MODES = {"read": PROBE_READ, "fault": PROBE_FAULT, "fault-new": PROBE_FAULT_NEW}


def reserve(size_t length, size_t align):
    """A free, aligned window of ``length`` bytes (its start); OSError on failure."""
    cdef uintptr_t base = 0
    cdef int rc = probe_reserve(length, align, &base)
    if rc < 0:
        raise OSError(-rc, "probe: cannot reserve a window")
    return base


def map_region(uintptr_t addr, size_t length, str populate):
    """mmap MAP_FIXED_NOREPLACE at ``addr`` and populate; OSError on failure."""
    cdef int mode = POPULATE[populate]
    cdef int rc
    with nogil:
        rc = probe_map(addr, length, mode)
    if rc < 0:
        raise OSError(-rc, f"probe: mapping {length:#x} bytes at {addr:#x}")


def move(uintptr_t src, uintptr_t dst, size_t length):
    """One mremap(MAYMOVE|FIXED); nanoseconds spent in the syscall."""
    cdef int64_t ns
    with nogil:
        ns = probe_move(src, dst, length)
    if ns < 0:
        raise OSError(-ns, "probe: mremap failed")
    return ns


def resize(uintptr_t addr, size_t old_length, size_t new_length):
    """One mremap(addr, old_length, new_length, 0), in place; nanoseconds
    spent in the syscall."""
    cdef int64_t ns
    with nogil:
        ns = probe_resize(addr, old_length, new_length)
    if ns < 0:
        raise OSError(-ns, "probe: mremap (in place) failed")
    return ns


def populate_read(uintptr_t addr, size_t length):
    """MADV_POPULATE_READ of a mapped region; nanoseconds."""
    cdef int64_t ns
    with nogil:
        ns = probe_populate_read(addr, length)
    if ns < 0:
        raise OSError(-ns, "probe: MADV_POPULATE_READ failed")
    return ns


#: the calls ``unmap_call`` times
UNMAP_CALLS = {"madvise": UNMAP_MADV_DONTNEED, "mprotect": UNMAP_MPROTECT_READ,
               "munmap": UNMAP_MUNMAP}


def unmap_call(str call, uintptr_t addr, size_t length):
    """One madvise(MADV_DONTNEED), mprotect(PROT_READ) or munmap of a mapped
    range (``call``: a key of UNMAP_CALLS); nanoseconds spent in the syscall."""
    cdef int c = UNMAP_CALLS[call]
    cdef int64_t ns
    with nogil:
        ns = probe_unmap_call(c, addr, length)
    if ns < 0:
        raise OSError(-ns, f"probe: {call} failed")
    return ns


def access(uintptr_t addr, size_t length, const uint64_t[::1] offsets):
    """Read one byte at ``addr + offsets[i]`` for every i; nanoseconds.
    ValueError if an offset falls outside [0, length)."""
    cdef int64_t ns, n = offsets.shape[0], i
    for i in range(n):
        if offsets[i] >= length:
            raise ValueError(f"offsets[{i}] = {offsets[i]:#x} is outside the region")
    if n == 0:
        return 0
    with nogil:
        ns = probe_access(addr, &offsets[0], n)
    return ns


def verify(uintptr_t addr, size_t length, uintptr_t origin, str populate):
    """(bad pages, pages checked) of a moved region."""
    cdef int64_t checked = 0, bad
    cdef int mode = POPULATE[populate]
    with nogil:
        bad = probe_verify(addr, length, origin, mode, &checked)
    if bad < 0:
        raise OSError(-bad, "probe: cannot verify the moved pages")
    return bad, checked


def status_kb(str key):
    """A "kB" field of /proc/self/status (VmPTE, VmRSS, ...), or -1."""
    return probe_status_kb(key.encode())


def vmstat(str key):
    """A /proc/vmstat counter (thp_split_pmd, ...), or -1."""
    return probe_vmstat(key.encode())


def pin_self(int cpu):
    """Pin the calling thread to ``cpu``; OSError if the kernel refuses."""
    cdef int rc = probe_pin_self(cpu)
    if rc < 0:
        raise OSError(-rc, f"probe: cannot pin this thread to CPU {cpu}")


def spin_start(cpus):
    """Start one thread of this process spinning on each CPU of ``cpus``
    (pinned); returns once all run. OSError if one cannot be started."""
    cdef int n = len(cpus), i, rc
    cdef int *c = <int*>malloc(max(n, 1) * sizeof(int))
    if c == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            c[i] = cpus[i]
        with nogil:
            rc = probe_spin_start(n, c)
    finally:
        free(c)
    if rc < 0:
        raise OSError(-rc, f"probe: cannot start spinning threads on CPUs {list(cpus)}")


def spin_stop():
    """Stop and join the spinning threads."""
    with nogil:
        probe_spin_stop()



def uffd_check():
    """0 if a userfaultfd with UFFD_FEATURE_MOVE can be opened here, else
    the errno that refused it."""
    cdef int fd = probe_uffd_open()
    if fd < 0:
        return -fd
    close(fd)
    return 0


def gc_cycle(uintptr_t moving, uintptr_t src, size_t length, const int64_t[:, ::1] runs):
    """mremap(DONTUNMAP) of ``moving`` to ``src``, then UFFDIO_MOVE of each
    run (src page, dst page, pages) back: (mremap ns, moves ns, bad pages)."""
    cdef int64_t ns[3]
    cdef int rc
    cdef int64_t n = runs.shape[0]
    cdef const int64_t *p = NULL
    if runs.shape[1] != 3:
        raise ValueError("runs must have 3 columns (src page, dst page, pages)")
    if n:
        p = &runs[0, 0]
    ns[0] = ns[1] = ns[2] = 0
    with nogil:
        rc = probe_gc_cycle(moving, src, length, p, n, ns)
    if rc < 0:
        raise OSError(-rc, "probe: the compaction cycle failed")
    return ns[0], ns[1], ns[2]


def contend(uintptr_t src, uintptr_t dst, size_t length, int mover_cpu, int reader_cpu,
            uintptr_t rlo, size_t rlen, int64_t warm_ns, int64_t[::1] lat, str mode="read"):
    """mremap src -> dst from mover_cpu while a thread on reader_cpu times
    random reads of [rlo, rlo + rlen) (``mode`` "read") or a first write to
    each of its pages in turn ("fault": map it "fresh"): (mremap ns,
    accesses recorded in lat, accesses past its end)."""
    cdef int64_t out[3]
    cdef int rc
    out[0] = out[1] = out[2] = 0  # filled by the probe; zeroed so no path reads garbage
    if mode not in CONTEND_MODES:
        raise ValueError(f"contend: mode must be one of {', '.join(CONTEND_MODES)}, not {mode!r}")
    cdef int m = CONTEND_MODES[mode]
    if lat.shape[0] < 1 or rlen < 8:
        raise ValueError("contend: lat must hold a sample and the read region 8 bytes")
    with nogil:
        rc = probe_contend(src, dst, length, mover_cpu, reader_cpu, rlo, rlen, m, warm_ns,
                           &lat[0], lat.shape[0], out)
    if rc < 0:
        raise OSError(-rc, "probe: contended mremap failed")
    return out[0], out[1], out[2]
