# cython: language_level=3
"""What the other threads of a process see while one of them moves page
tables: a deterministic discrete-event simulation in C.

The mover's side is a traced move (``_move.move_page_tables(...,
trace=True)``), or a zap's or protection change's timeline
(``mmu_gather.gather_trace``), already priced in Python: when each extent
of the old range was moved (or cleared, or made read-only:
``region_fate``), when the page-table lock covering it was dropped, when
each flush_tlb_range was issued, and when the system call returned. How
the call holds mmap_lock is its ``mover_lock``. The
application threads each run an access stream on their own CPU through
their own TLBs (``_tlb``), in time order with the mover's flushes:

* a TLB hit costs the hit; a miss walks the page tables as they were at
  that moment (before its extent moved, an old-range page's entry is the
  one that now sits at old + delta in the moved tables; after, there is
  none), and a walk that finds nothing is a page fault;
* a fault takes mmap_lock for read, or since Linux 6.4 the VMA's lock
  (``lock_vma_under_rcu``), falling back to mmap_lock when the VMA is
  write-locked: mremap and mprotect hold mmap_lock for write from their
  start to their end (munmap until it has detached the VMAs; madvise and
  UFFDIO_MOVE only for read: ``mover_lock``) and write-lock the VMAs they
  change (``vma_start_write``), so such a fault waits until the call
  returns, and a write-locking mover waits for the faults holding the lock
  for read when it starts (a waiting writer also holds back later
  readers, as the rwsem does);
* a fault outside the moved VMA then takes a page-table lock (the PMD
  table's to install a PTE table or a huge page, else the PTE table's) and
  spins while the mover holds it: the traced holds, keyed by the tables
  they cover (``mover_hold``);
* each flush is replayed on the threads' TLBs by the arch's own rule
  (``_flush``) at its time: entries it removes are walked again, and where
  the rule sends IPIs (x86, riscv) each receiving CPU runs the handler
  (``flush_tlb_func``: interrupt entry and exit and its own INVLPGs or full
  flush) then: inside an access it adds to its latency, between accesses
  it delays the next, and a CPU still in an earlier handler takes it after
  that one while the mover waits (``flush_tlb_mm_range`` waits for them);
* a TLB hit on an old-range page whose extent has moved and whose flush
  has not reached this CPU is a stale access; when the page-table lock
  covering it was already dropped, it is an unsafe one (the page could be
  freed under it: the 2018 fast-mremap review).

No Python objects in the loop; the GIL is released.
"""

from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from pagetab._flush cimport FlushOps, Tlbs, tlb_flush_gather
from pagetab._move cimport LOCK_ID_MM, LOCK_ID_PMD, LOCK_ID_PTE, LOCK_ID_SHIFT
from pagetab._pgtable cimport E_WRITE, leaf_class, pgtables, pt_read
from pagetab._tables cimport PageTables
from pagetab._tlb cimport CLS_CONT, TLB_LAZY, TLB_RUNNING, TlbState, insert_inline, lookup_inline

cnp.import_array()

cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


cdef enum:
    MAX_THREADS = 255
    HIST_LINEAR = 64         # 1 ns buckets below 64 ns
    HIST_SUB = 32            # then 32 buckets per power of two (~3%)
    HIST_OCTAVES = 40
    HIST_BUCKETS = HIST_LINEAR + HIST_OCTAVES * HIST_SUB
    PAT_RANDOM = 0           # contention.PATTERNS's order
    PAT_SEQUENTIAL = 1

# What the mover's call does to a region's pages (contend_region.fate;
# contention.MOVERS maps each call to one)
cpdef enum region_fate:
    FATE_KEPT = 0            # nothing: a region the call leaves alone
    FATE_MOVED = 1           # mremap: entries moved by delta
    FATE_ZAPPED = 2          # madvise(MADV_DONTNEED): entries cleared, the VMA kept
    FATE_UNMAPPED = 3        # munmap: the VMA gone from the start, entries cleared
    FATE_PROTECTED = 4       # mprotect(PROT_READ): entries made read-only

# How the mover holds mmap_lock (contend_config.mmap_lock; contention.MOVERS
# maps each call to one)
cpdef enum mover_lock:
    LOCK_WRITE = 0           # for write from start to return (mremap, mprotect)
    LOCK_DOWNGRADE = 1       # for write until its traced events start, then read (munmap)
    LOCK_READ = 2            # for read, or the VMA's lock for read (madvise)

# a through_move thread's bound when its accesses take no time
cdef int64_t MAX_ACCESSES = 1LL << 32


# The run's configuration: crosses into C once.
cdef struct contend_config:
    int nthreads
    int nregions
    int mover_cpu
    bint per_vma_locks           # Linux 6.4+: faults in other VMAs skip mmap_lock
    bint dontunmap               # MREMAP_DONTUNMAP: the old range stays, empty
    int mmap_lock                # a mover_lock
    bint moving                  # a move happens (False: the baseline run)
    bint split_pte               # USE_SPLIT_PTE_PTLOCKS: a lock per PTE table
    bint split_pmd               # USE_SPLIT_PMD_PTLOCKS: a lock per PMD table
    double move_at_ns            # when the mover makes its call
    double move_ns               # the system call's duration, from entry to return
    double events_at_ns          # where the traced events start within it
    # costs (ns)
    double tlb_l1_hit
    double tlb_l2_hit
    double walk_step
    double fault                 # read fault (the zero page) or populate of one leaf
    double write_fault           # write fault: a fresh page
    double segv                  # a fault on an address no VMA maps
    double ipi_handler           # a flush IPI's handler on the receiving CPU, beyond its flushes
    double ipi_send              # the sender's priced wait for one receiver (the "ipi" cost)
    uint64_t seed


cdef struct contend_thread:
    int cpu
    int write
    int pattern                  # PAT_RANDOM or PAT_SEQUENTIAL
    int region
    int64_t accesses             # at least this many
    int through_move             # and on until mremap returns (a thread that keeps running)
    int64_t stride               # bytes between sequential accesses
    uint64_t span                # bytes of the region it touches, from its start (0: all)
    double think_ns              # between one access's end and the next's start
    double work_ns               # the program's own work inside each access (a timer)


cdef struct contend_region:
    uint64_t lo
    uint64_t hi
    int64_t delta                # moved: where an old address's entry sits after the move
    int fate                     # a region_fate: what the mover's call does to it
    int vma_locked               # a VMA the mover write-locks (vma_start_write)
    int anon_vma                 # its VMA has an anon_vma (else the first write fault needs mmap_lock)
    int fault_shift              # the leaf a fault maps here (page or PMD size)


# One thread's results. The field names are the names Python sees.
cdef struct thread_stats:
    int64_t accesses
    int64_t during_move          # accesses issued while the move ran
    int64_t l1_hits
    int64_t l2_hits
    int64_t walks                # TLB refills: hardware page walks
    int64_t walk_steps
    int64_t faults
    int64_t segv
    int64_t blocked              # faults that waited for mmap_lock or the VMA lock
    int64_t ptl_waits            # faults that spun on a page-table lock the mover held
    int64_t ipis                 # flush IPIs received
    int64_t stale_hits           # TLB hits on a translation the mover had cleared
    int64_t unsafe_hits          # ... after the page-table lock covering it was dropped
    double blocked_ns
    double ptl_wait_ns
    double ipi_ns
    double busy_ns               # the accesses' latencies and the IPI handlers between them
    double max_ns
    double max_during_ns
    double end_ns                # when its last access ended


cdef struct contend_result:
    double mover_start_ns        # when the mover's call started (a writer: got mmap_lock)
    double mover_end_ns          # when it returned
    double mover_ipi_wait_ns     # its flushes' extra wait for CPUs still in an earlier handler
    int64_t flushes
    int64_t ipis_sent
    double mover_flush_change_ns # its flushes as they ran less as in the move alone
                                 # (negative: IPIs spared a sleeping thread's lazy CPU)


# A page-table lock the mover held, by the tables it covers: key is
# KEY_PTE | (address >> PMD shift) for a PTE table's lock, KEY_PMD |
# (address >> PUD shift) for a PMD table's, KEY_MM for mm->page_table_lock
# (and for every lock without split locks); times as the extents'.
cdef struct mover_hold:
    uint64_t key
    double start
    double end


#: int64 words of FlushOps (the flush operations, in OP_NAMES order)
cdef int OPS_WORDS = sizeof(FlushOps) // sizeof(int64_t)

#: a TLB entry's frame tag: a page faulted in after the mover's call cleared
#: its entry (a hit on it is no stale one)
cdef uint64_t POST_CHANGE = 1ULL << 61  # inside F_FRAME (_tlb.pxd)
cdef uint64_t KEY_MM = LOCK_ID_MM
cdef uint64_t KEY_PTE = (<uint64_t>LOCK_ID_PTE) << LOCK_ID_SHIFT
cdef uint64_t KEY_PMD = (<uint64_t>LOCK_ID_PMD) << LOCK_ID_SHIFT


cdef inline double hold_end(const mover_hold *h, int64_t n, uint64_t key,
                            double t) noexcept nogil:
    """When the hold of lock ``key`` that covers time ``t`` ends (holds
    sorted by key and start, disjoint per key), or -1 when none does."""
    cdef int64_t a = 0, b = n, m
    while a < b:
        m = (a + b) >> 1
        if h[m].key < key or (h[m].key == key and h[m].start <= t):
            a = m + 1
        else:
            b = m
    # a - 1: the last hold at or before (key, t)
    if a > 0 and h[a - 1].key == key and h[a - 1].start <= t < h[a - 1].end:
        return h[a - 1].end
    return -1


cdef extern from "Python.h":
    # raw (no exception check here): run() returns -2 and simulate reraises
    int check_signals "PyErr_CheckSignals" ()

#: event-loop steps between two checks for a signal (Ctrl-C)
cdef int64_t SIGNAL_CHECK_MASK = (1 << 16) - 1


cdef bint signal_pending() noexcept nogil:
    """Whether a signal's Python handler raised (Ctrl-C: KeyboardInterrupt);
    its exception is then set, for ``reraise``."""
    cdef int rc
    with gil:
        rc = check_signals()
    return rc != 0


cdef void free_bitmaps(uint8_t **bits, uint8_t **tbits, int n) noexcept nogil:
    """Free the first ``n`` regions' fault bitmaps (on every way out of run)."""
    cdef int i
    for i in range(n):
        free(bits[i])
        free(tbits[i])


cdef int reraise() except -1:
    """Propagate the exception that is set (a -1 return with it set)."""
    return -1


cdef inline int hist_index(double ns) noexcept nogil:
    cdef int64_t x
    cdef int e
    if ns < HIST_LINEAR:
        return <int>ns if ns > 0 else 0
    x = <int64_t>ns
    e = 63 - __builtin_clzll(<unsigned long long>x)
    if e - 6 >= HIST_OCTAVES:
        return HIST_BUCKETS - 1
    return HIST_LINEAR + (e - 6) * HIST_SUB + <int>((x >> (e - 5)) & (HIST_SUB - 1))


def bucket_upper_ns():
    """Each histogram bucket's upper bound in ns (a latency ``v`` falls in
    the first bucket whose bound exceeds it)."""
    out = np.empty(HIST_BUCKETS, dtype=np.float64)
    cdef int i, e, sub
    for i in range(HIST_BUCKETS):
        if i < HIST_LINEAR:
            out[i] = i + 1
        else:
            e = (i - HIST_LINEAR) // HIST_SUB + 6
            sub = (i - HIST_LINEAR) % HIST_SUB
            out[i] = <double>((<int64_t>(HIST_SUB + sub + 1)) << (e - 5))
    return out


cdef inline uint64_t splitmix(uint64_t *x) noexcept nogil:
    x[0] += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline int64_t find_extent(const uint64_t *lo, const uint64_t *hi, int64_t n,
                                uint64_t addr) noexcept nogil:
    """The extent holding ``addr`` (sorted, disjoint), or -1."""
    cdef int64_t a = 0, b = n, m
    while a < b:
        m = (a + b) >> 1
        if hi[m] <= addr:
            a = m + 1
        else:
            b = m
    if a < n and lo[a] <= addr:
        return a
    return -1


cdef inline int walk_class(pgtables *pt, TlbState *s, uint64_t addr, int *steps,
                           uint64_t *entry) noexcept nogil:
    """The hardware page walk (no page-walk cache): the leaf's size class
    or -1, and the levels it read."""
    cdef int reached, pte = pt.nlev - 1
    cdef uint64_t e = pt_read(pt, addr, pte, &reached)
    steps[0] = reached + 1
    entry[0] = e
    return leaf_class(e, reached, pte, CLS_CONT if s.nclass > CLS_CONT else 0)


cdef inline void close_access(int j, thread_stats *o, int64_t *hist, double at, double lat,
                              bint during) noexcept nogil:
    """Record thread ``j``'s access that started at ``at`` and took ``lat``
    (none yet: ``lat`` < 0)."""
    cdef int pos
    if lat < 0:
        return
    o.busy_ns += lat
    if lat > o.max_ns:
        o.max_ns = lat
    pos = hist_index(lat)
    hist[(2 * j) * HIST_BUCKETS + pos] += 1
    if during:
        hist[(2 * j + 1) * HIST_BUCKETS + pos] += 1
        if lat > o.max_during_ns:
            o.max_during_ns = lat
    o.end_ns = at + lat


cdef int run(pgtables *pt, TlbState *s, Tlbs tlbs, const contend_config *cfg,
             const contend_thread *th, const contend_region *rg,
             const uint64_t *ext_lo, const uint64_t *ext_hi, const double *ext_moved,
             const double *ext_unlocked, int64_t next,
             const double *fl_at, const uint64_t *fl_lo, const uint64_t *fl_hi,
             const int64_t *fl_stride, const uint8_t *fl_freed, const int64_t *fl_ops,
             int64_t nfl, const mover_hold *holds, int64_t nholds,
             const double *remote_ns, const uint8_t *interrupts, const double *sender_ns,
             thread_stats *out, int64_t *hist, contend_result *res) noexcept nogil:
    """The event loop. Returns 0, or -1 when out of memory. A flush's
    receivers each run the handler (``cfg.ipi_handler``) and its operations
    (``remote_ns`` per FlushOps word) when it made an operation that
    ``interrupts`` them (``interrupts`` per word). The mover pays each flush
    as it runs now: ``sender_ns`` per word it makes beyond (or short of)
    what the move alone made (``fl_ops``, OPS_WORDS per flush)."""
    cdef int i, j, c, nt = cfg.nthreads, cls, steps
    cdef int64_t steps_taken = 0
    cdef double t[MAX_THREADS]
    cdef double read_until[MAX_THREADS]      # holding mmap_lock / a VMA lock for read
    cdef double busy[MAX_THREADS]            # its CPU is in flush IPI handlers until
    cdef double asleep[MAX_THREADS]          # it sleeps on mmap_lock / a VMA lock until
    cdef double asleep_from[MAX_THREADS]     # ... from
    cdef bint lazied[MAX_THREADS]            # its CPU made lazy by that sleep
    cdef bint until_end[MAX_THREADS]         # that sleep lasts until the mover returns
    cdef double open_at[MAX_THREADS]         # the access in progress: its start,
    cdef double open_lat[MAX_THREADS]        # its latency so far (IPIs landing in it add)
    cdef bint open_during[MAX_THREADS]       # and whether it started while the move ran
    cdef int64_t done[MAX_THREADS]
    cdef uint64_t rng[MAX_THREADS]
    cdef uint8_t *bits[MAX_THREADS]          # per region: leaves faulted in by the run
    cdef uint8_t *tbits[MAX_THREADS]         # and PTE tables it installed
    cdef int64_t after[MAX_THREADS]          # bits[j] + after[j]: leaves faulted in after
                                             # their entry was cleared (their own pages)
    cdef double anon_at[MAX_THREADS]         # per region: its VMA has an anon_vma from
    cdef int pte = pt.nlev - 1, reached
    cdef int pmd_entry_shift = pt.shift[pt.nlev - 2], pud_entry_shift = pt.shift[pt.nlev - 3]
    cdef uint64_t key, chunk
    cdef uint64_t nbits
    cdef double now, lat, wait, h, start = INFINITY, end = INFINITY, moved_at, unl
    # shift: the mover's delay (busy receivers; its flushes as they ran)
    cdef double shift = 0, at, d, late, priced, repriced
    cdef int k
    cdef int64_t dk
    cdef bint sent
    cdef int64_t fi = 0, e, page
    cdef bint started = not cfg.moving, gone, needs_lock, miss, readonly, changed
    cdef double wend
    cdef uint64_t addr, vaddr, walk_addr, frame, entry, size, off, fpage
    cdef bint writable
    cdef const contend_thread *x
    cdef const contend_region *r
    cdef FlushOps ops, before
    cdef bint active[MAX_THREADS]
    memset(&ops, 0, sizeof(ops))
    for j in range(cfg.nregions):
        nbits = ((rg[j].hi - rg[j].lo) >> rg[j].fault_shift) // 8 + 1
        bits[j] = <uint8_t*>calloc(2 * nbits, 1)
        after[j] = <int64_t>nbits
        tbits[j] = <uint8_t*>calloc((((rg[j].hi - 1) >> pmd_entry_shift)
                                     - (rg[j].lo >> pmd_entry_shift)) // 8 + 1, 1)
        if bits[j] == NULL or tbits[j] == NULL:
            free_bitmaps(bits, tbits, j + 1)
            return -1
    for j in range(cfg.nregions):
        anon_at[j] = -INFINITY if rg[j].anon_vma != 0 else INFINITY
    for i in range(nt):
        t[i] = 0
        read_until[i] = -INFINITY
        busy[i] = -INFINITY
        asleep[i] = -INFINITY
        asleep_from[i] = -INFINITY
        lazied[i] = False
        until_end[i] = False
        open_at[i] = -INFINITY
        open_lat[i] = -1
        done[i] = 0
        rng[i] = cfg.seed * 0x100000001B3ULL + <uint64_t>i * 0x9E3779B97F4A7C15ULL + 1
        memset(&out[i], 0, sizeof(thread_stats))
    res.flushes = 0
    res.ipis_sent = 0
    while True:
        steps_taken += 1
        if not steps_taken & SIGNAL_CHECK_MASK and signal_pending():
            free_bitmaps(bits, tbits, cfg.nregions)
            return -2  # Ctrl-C (a signal's handler raised): the exception is set
        # the next actor: the mover's start, its next flush, or the thread
        # whose next access comes first (ties: the mover first)
        j = -1
        now = INFINITY
        for i in range(nt):
            active[i] = done[i] < th[i].accesses or (
                th[i].through_move and cfg.moving and done[i] < MAX_ACCESSES
                and not (started and t[i] >= end))
            if active[i] and t[i] < now:
                now = t[i]
                j = i
        if not started and cfg.move_at_ns <= now:
            # mmap_write_lock: wait for the readers in a fault (and for
            # per-VMA locks, vma_start_write for the VMA's readers)
            start = cfg.move_at_ns
            if cfg.mmap_lock != LOCK_READ:
                for i in range(nt):
                    if read_until[i] > start:
                        start = read_until[i]
            end = start + cfg.move_ns
            started = True
            continue
        if started and fi < nfl and start + cfg.events_at_ns + fl_at[fi] + shift <= now:
            at = start + cfg.events_at_ns + fl_at[fi] + shift
            before = ops
            # a thread asleep on a lock leaves its CPU idle, in lazy TLB mode
            # with the mm still loaded (the idle task's enter_lazy_tlb), which
            # the flush may skip (the arch's rule); woken, it runs the mm again
            # (switch_mm_irqs_off catches up on a skipped flush: the entries
            # are gone from the model's TLBs at the flush itself)
            for i in range(nt):
                c = th[i].cpu
                if asleep_from[i] <= at < asleep[i]:
                    if not lazied[i] and s.cpumask[c] and s.lazy[c] == TLB_RUNNING:
                        s.lazy[c] = TLB_LAZY
                        lazied[i] = True
                elif lazied[i]:
                    s.lazy[c] = TLB_RUNNING
                    s.cpumask[c] = 1
                    lazied[i] = False
            # (fl_freed: the unmap's flush of freed page tables)
            tlb_flush_gather(&tlbs.rule, s, &ops, cfg.mover_cpu, fl_lo[fi], fl_hi[fi],
                             <int>fl_stride[fi], fl_freed[fi])
            res.flushes += 1
            # the mover pays the flush it made now, not the one the move
            # alone made (fewer IPIs to a sleeping thread's lazy CPU); each
            # receiving CPU runs the handler and its own flushes
            repriced = 0
            h = cfg.ipi_handler
            sent = False
            for k in range(OPS_WORDS):
                dk = (<const int64_t *>&ops)[k] - (<const int64_t *>&before)[k]
                repriced += (dk - fl_ops[fi * OPS_WORDS + k]) * sender_ns[k]
                if dk:
                    sent = sent or interrupts[k]
                    h += dk * remote_ns[k]
            res.mover_flush_change_ns += repriced
            if sent:
                res.ipis_sent += ops.ipi - before.ipi
                priced = (ops.ipi - before.ipi) * cfg.ipi_send + (h - cfg.ipi_handler)
                # flush_tlb_mm_range waits for every receiver's handler to
                # run: a CPU still in an earlier one takes this one after it,
                # and the mover waits that long more (the send and a ready
                # receiver's wait are in the traced flush's own cost)
                late = 0
                for i in range(nt):
                    # a thread that has finished takes no handler (nothing
                    # of it is timed; its CPU stays in the mask, and the
                    # mover pays its IPI as the move alone did); one running
                    # through the move is there until it ends (one asleep on
                    # a lock has left it idle: a lazy CPU the flush skips)
                    if (active[i] or (th[i].through_move and cfg.moving)) \
                            and s.cpumask[th[i].cpu] and asleep[i] <= at \
                            and s.lazy[th[i].cpu] == TLB_RUNNING:
                        d = at if busy[i] <= at else busy[i]
                        if d - at > late:
                            late = d - at
                        # and at least until its handler is done: the
                        # flush's priced wait (one "ipi" per receiver and
                        # the remote work) may be shorter than the handler
                        if d + h - at - priced > late:
                            late = d + h - at - priced
                        busy[i] = d + h
                        out[i].ipis += 1
                        out[i].ipi_ns += h
                        # the handler takes the CPU from the thread: inside
                        # an access it adds to that access's latency, between
                        # accesses it delays the thread's next one
                        if open_lat[i] >= 0 and d < open_at[i] + open_lat[i]:
                            open_lat[i] += h
                        else:
                            out[i].busy_ns += h
                        t[i] += h
                repriced += late
                res.mover_ipi_wait_ns += late
            # the mover's later events and its end move; so does the wake of
            # a thread asleep until it ends (mmap_lock held for write), with
            # its blocked access and its next one
            shift += repriced
            end += repriced
            for i in range(nt):
                if until_end[i] and asleep[i] > at:
                    asleep[i] += repriced
                    open_lat[i] += repriced
                    out[i].blocked_ns += repriced
                    t[i] += repriced
                    if read_until[i] > at:
                        read_until[i] += repriced
            fi += 1
            continue
        if j < 0:
            break
        # thread j's next access
        x = &th[j]
        r = &rg[x.region]
        size = r.hi - r.lo
        if x.span and x.span < size:
            size = x.span
        if x.pattern == PAT_RANDOM:
            off = splitmix(&rng[j]) % size
        else:
            off = <uint64_t>((done[j] * x.stride) % <int64_t>size)
        addr = (r.lo + off) & ~(<uint64_t>7)
        close_access(j, &out[j], hist, open_at[j], open_lat[j], open_during[j])
        lat = x.work_ns
        now = t[j]
        out[j].accesses += 1
        if started and start <= now < end:
            out[j].during_move += 1
        gone = False
        readonly = False
        moved_at = INFINITY
        unl = INFINITY
        vaddr = addr
        if r.fate != FATE_KEPT and cfg.moving and started and now >= start:
            if now >= end:
                changed = True
            else:
                changed = False
                e = find_extent(ext_lo, ext_hi, next, addr)
                if e >= 0:
                    moved_at = start + cfg.events_at_ns + ext_moved[e] + shift
                    unl = start + cfg.events_at_ns + ext_unlocked[e] + shift
                    changed = now >= moved_at
            if r.fate == FATE_PROTECTED:
                readonly = changed    # the entry is there, read-only
            elif r.fate == FATE_MOVED and now >= end and not cfg.dontunmap:
                # the program goes on at the new address once mremap has
                # returned it
                vaddr = addr + <uint64_t>r.delta
            else:
                gone = changed        # cleared (DONTUNMAP: the old range stays, empty)
        miss = True
        cls = lookup_inline(s, x.cpu, 1, vaddr, x.write, &frame, &writable)
        if cls >= 0:
            lat += cfg.tlb_l1_hit
            out[j].l1_hits += 1
            miss = False
        else:
            cls = lookup_inline(s, x.cpu, 2, vaddr, x.write, &frame, &writable)
            if cls >= 0:
                lat += cfg.tlb_l2_hit
                out[j].l2_hits += 1
                miss = False
        page = <int64_t>((addr - r.lo) >> r.fault_shift)
        if not miss and (gone or (readonly and x.write)) and not (
                gone and (frame & POST_CHANGE)):
            # its PTE is gone (or read-only), its flush has not reached this
            # CPU yet (the entry of a page faulted in since is no stale one)
            out[j].stale_hits += 1
            if now >= unl:
                out[j].unsafe_hits += 1
        if miss:
            lat += cfg.tlb_l2_hit
            out[j].walks += 1
            cls = -1
            # before its extent moved (or with no move at all) an old
            # address's entry is the one now at old + delta
            walk_addr = addr + <uint64_t>r.delta if r.fate == FATE_MOVED and not gone else vaddr
            if not gone:
                cls = walk_class(pt, s, walk_addr, &steps, &entry)
                out[j].walk_steps += steps
                lat += steps * cfg.walk_step
                if readonly:
                    entry &= ~E_WRITE
                if cls >= 0 and x.write and not (entry & E_WRITE):
                    cls = -1          # a write to the zero page: a fault
            fpage = vaddr & ~((<uint64_t>1 << r.fault_shift) - 1)
            if cls >= 0:
                insert_inline(s, x.cpu, vaddr, cls, (walk_addr >> s.page_shift) + 1,
                              (entry & E_WRITE) != 0)
            elif (bits[x.region][page >> 3] >> (page & 7)) & 1 and not (readonly and x.write) \
                    and (not gone or (bits[x.region][after[x.region] + (page >> 3)]
                                      >> (page & 7)) & 1):
                # a leaf this run faulted in, and the mover's call has not
                # cleared since (or faulted in again after it did)
                insert_inline(s, x.cpu, fpage, 0 if r.fault_shift == s.page_shift else 1,
                              ((fpage >> s.page_shift) + 1) | (POST_CHANGE if gone else 0), True)
            else:
                # handle_mm_fault: lock_vma_under_rcu, or mmap_read_lock
                # where the VMA is write-locked or per-VMA locks do not exist,
                # or, for a write, where the VMA has no anon_vma yet
                # (__vmf_anon_prepare: mmap_read_trylock, else retry under it)
                needs_lock = (not cfg.per_vma_locks) or r.vma_locked or (
                    x.write and now + lat < anon_at[x.region])
                # until when the mover holds mmap_lock for write
                if cfg.mmap_lock == LOCK_WRITE:
                    wend = end
                elif cfg.mmap_lock == LOCK_DOWNGRADE:
                    # munmap downgrades once it has detached the VMAs, before
                    # its first table (and flush: no IPI wait delays it)
                    wend = start + cfg.events_at_ns
                else:
                    wend = -INFINITY
                if needs_lock and started and cfg.moving and cfg.move_at_ns <= now + lat < wend:
                    wait = wend - (now + lat)
                    out[j].blocked += 1
                    out[j].blocked_ns += wait
                    asleep_from[j] = now + lat
                    asleep[j] = wend
                    until_end[j] = cfg.mmap_lock == LOCK_WRITE
                    lat += wait
                if cfg.moving and started and now + lat >= start and (
                        r.fate == FATE_UNMAPPED or (r.fate == FATE_PROTECTED and x.write)):
                    # no VMA there (munmap detached it first), or one that
                    # does not allow the write: SIGSEGV
                    out[j].segv += 1
                    lat += cfg.segv
                elif gone and r.fate == FATE_MOVED and not cfg.dontunmap:
                    # no VMA there once mremap returns: SIGSEGV; the program
                    # then finds the page at its new address
                    out[j].segv += 1
                    lat += cfg.segv
                    vaddr = addr + <uint64_t>r.delta
                    cls = walk_class(pt, s, vaddr, &steps, &entry)
                    out[j].walk_steps += steps
                    lat += steps * cfg.walk_step
                    if cls >= 0:
                        insert_inline(s, x.cpu, vaddr, cls, (vaddr >> s.page_shift) + 1,
                                      (entry & E_WRITE) != 0)
                else:
                    if r.fate != FATE_MOVED or cfg.mmap_lock == LOCK_READ:
                        # the fault's page-table lock (in a moved range only
                        # where the mover holds no write lock: UFFDIO_MOVE): the PMD table's to
                        # install a PTE table (pte_alloc) or a huge page, else
                        # the PTE table's (pte_offset_map_lock); spin while
                        # the mover holds it
                        # its PTE table (a region need not start at a table's start)
                        chunk = (addr >> pmd_entry_shift) - (r.lo >> pmd_entry_shift)
                        if r.fault_shift > s.page_shift or not (
                                (tbits[x.region][chunk >> 3] >> (chunk & 7)) & 1):
                            pt_read(pt, addr, pte, &reached)
                        else:
                            reached = pte     # a PTE table this run installed
                        tbits[x.region][chunk >> 3] |= <uint8_t>(1 << (chunk & 7))
                        if reached < pte or r.fault_shift > s.page_shift:
                            key = (KEY_PMD | (addr >> pud_entry_shift)) if cfg.split_pmd \
                                else KEY_MM
                        else:
                            key = (KEY_PTE | (addr >> pmd_entry_shift)) if cfg.split_pte \
                                else KEY_MM
                        wait = -1
                        if started and cfg.moving and now + lat < end:
                            wait = hold_end(holds, nholds, key,
                                            now + lat - start - cfg.events_at_ns - shift)
                        if wait >= 0:
                            wait = start + cfg.events_at_ns + shift + wait - (now + lat)
                            out[j].ptl_waits += 1
                            out[j].ptl_wait_ns += wait
                            lat += wait
                    out[j].faults += 1
                    h = cfg.write_fault if x.write else cfg.fault
                    lat += h
                    if needs_lock:
                        read_until[j] = now + lat
                    if x.write:
                        # prepared when this fault is done: a writer
                        # faulting before then retries under mmap_lock too
                        if now + lat < anon_at[x.region]:
                            anon_at[x.region] = now + lat
                    bits[x.region][page >> 3] |= <uint8_t>(1 << (page & 7))
                    if gone:
                        bits[x.region][after[x.region] + (page >> 3)] |= \
                            <uint8_t>(1 << (page & 7))
                    insert_inline(s, x.cpu, fpage, 0 if r.fault_shift == s.page_shift else 1,
                                  ((fpage >> s.page_shift) + 1) | (POST_CHANGE if gone else 0),
                                  True)
        # recorded when it closes: a flush IPI may still land in it
        open_at[j] = now
        open_lat[j] = lat
        open_during[j] = started and start <= now < end
        done[j] += 1
        t[j] = now + lat + x.think_ns
    for i in range(nt):
        close_access(i, &out[i], hist, open_at[i], open_lat[i], open_during[i])
    res.mover_start_ns = start
    res.mover_end_ns = end
    free_bitmaps(bits, tbits, cfg.nregions)
    return 0


cdef thread_stats _layout
#: one thread's results: the C struct thread_stats as a numpy dtype
THREAD_DTYPE = np.asarray(<thread_stats[:1]>(&_layout)).dtype
cdef contend_result _res_layout
RESULT_DTYPE = np.asarray(<contend_result[:1]>(&_res_layout)).dtype
#: the latency histogram's buckets
HISTOGRAM_BUCKETS = HIST_BUCKETS
cdef contend_thread _th_layout
cdef contend_region _rg_layout
#: a thread's spec and a region as the C structs (Python builds arrays of them)
THREAD_SPEC_DTYPE = np.asarray(<contend_thread[:1]>(&_th_layout)).dtype
REGION_DTYPE = np.asarray(<contend_region[:1]>(&_rg_layout)).dtype
cdef mover_hold _hold_layout
#: a page-table lock hold of the mover's, as the C struct
HOLD_DTYPE = np.asarray(<mover_hold[:1]>(&_hold_layout)).dtype


def simulate(PageTables tables not None, Tlbs tlbs not None, dict config not None,
             cnp.ndarray threads not None, cnp.ndarray regions not None,
             cnp.ndarray ext_lo not None, cnp.ndarray ext_hi not None,
             cnp.ndarray ext_moved not None, cnp.ndarray ext_unlocked not None,
             cnp.ndarray fl_at not None, cnp.ndarray fl_lo not None,
             cnp.ndarray fl_hi not None, cnp.ndarray fl_stride not None,
             cnp.ndarray fl_freed not None, cnp.ndarray fl_ops not None,
             cnp.ndarray holds not None, cnp.ndarray remote_ns not None,
             cnp.ndarray interrupts not None, cnp.ndarray sender_ns not None):
    """Run the threads (THREAD_SPEC_DTYPE) over the regions (REGION_DTYPE)
    against the mover's extents (sorted by address: old range, when each
    moved and when the lock covering it was dropped, ns from the first
    traced event), flushes (time, range, stride shift, whether it is of
    freed page tables: the unmap's tlb_finish_mmu) and page-table lock
    holds (HOLD_DTYPE, sorted by key and start, disjoint per key); what a
    flush costs the CPUs it reaches and the mover (``contention.flush_costs``:
    float64 ns, uint8 flags and float64 ns, one per FlushOps word), with each
    flush's operations in the move alone (``fl_ops``: int64, a row of
    FlushOps words per flush).

    Returns (per-thread stats as THREAD_DTYPE, histograms of shape
    (threads, 2, HISTOGRAM_BUCKETS): every access and those issued during
    the move, result as RESULT_DTYPE). ``tlbs`` is changed (the threads'
    TLBs); ``tables`` is only read.
    """
    cdef contend_config cfg = config
    cdef contend_thread[::1] th = threads
    cdef contend_region[::1] rg = regions
    cdef uint64_t[::1] elo = ext_lo, ehi = ext_hi, flo = fl_lo, fhi = fl_hi
    cdef double[::1] emv = ext_moved, eun = ext_unlocked, fat = fl_at
    cdef int64_t[::1] fst = fl_stride
    cdef uint8_t[::1] ffr = fl_freed
    cdef mover_hold[::1] hl = holds
    cdef double[::1] rns = remote_ns
    cdef uint8_t[::1] rint = interrupts
    cdef double[::1] sns = sender_ns
    cdef int64_t[:, ::1] fops = fl_ops
    cdef int64_t nholds = hl.shape[0]
    cdef int64_t next = elo.shape[0], nfl = flo.shape[0], i
    cdef TlbState *s = &tlbs.s
    cdef contend_result res
    cdef int rc
    if cfg.nthreads != th.shape[0] or not 0 < cfg.nthreads <= MAX_THREADS:
        raise ValueError(f"threads: 1..{MAX_THREADS} specs, config.nthreads their count")
    if cfg.nregions != rg.shape[0] or cfg.nregions < 1:
        raise ValueError("regions: at least one, config.nregions their count")
    if not (ehi.shape[0] == emv.shape[0] == eun.shape[0] == next):
        raise ValueError("extents: one entry per extent in every array")
    if not (fhi.shape[0] == fat.shape[0] == fst.shape[0] == ffr.shape[0] == nfl):
        raise ValueError("flushes: one entry per flush in every array")
    for i in range(nholds):
        if not hl[i].start <= hl[i].end or (i and (hl[i - 1].key, hl[i - 1].end)
                                            > (hl[i].key, hl[i].start)):
            raise ValueError("holds: sorted by key and start, disjoint per key")
    if rns.shape[0] != OPS_WORDS or rint.shape[0] != OPS_WORDS or sns.shape[0] != OPS_WORDS:
        raise ValueError(f"remote_ns, interrupts and sender_ns: one entry per FlushOps word "
                         f"({OPS_WORDS})")
    if fops.shape[0] != nfl or fops.shape[1] != OPS_WORDS:
        raise ValueError(f"fl_ops: a row of {OPS_WORDS} FlushOps words per flush")
    if not 0 <= cfg.mover_cpu < s.ncpu:
        raise ValueError(f"mover_cpu must be in 0..{s.ncpu - 1}")
    if not LOCK_WRITE <= cfg.mmap_lock <= LOCK_READ:
        raise ValueError("config.mmap_lock: not a mover_lock")
    for i in range(cfg.nregions):
        if rg[i].hi <= rg[i].lo or rg[i].fault_shift < s.page_shift or rg[i].fault_shift > 40 \
                or not FATE_KEPT <= rg[i].fate <= FATE_PROTECTED:
            raise ValueError(f"regions[{i}]: empty, or a bad fault_shift or fate")
    for i in range(cfg.nthreads):
        if not 0 <= th[i].cpu < s.ncpu or not 0 <= th[i].region < cfg.nregions \
                or th[i].accesses < 0 or th[i].stride <= 0 or th[i].think_ns < 0 \
                or th[i].work_ns < 0:
            raise ValueError(f"threads[{i}]: cpu, region, accesses, stride, think_ns or "
                             "work_ns out of range")
    stats = np.zeros(cfg.nthreads, dtype=THREAD_DTYPE)
    hist = np.zeros((cfg.nthreads, 2, HIST_BUCKETS), dtype=np.int64)
    cdef thread_stats[::1] out = stats
    cdef int64_t[:, :, ::1] h = hist
    memset(&res, 0, sizeof(res))
    with nogil:
        rc = run(&tables.pgt, s, tlbs, &cfg, &th[0], &rg[0],
                 &elo[0] if next else NULL, &ehi[0] if next else NULL,
                 &emv[0] if next else NULL, &eun[0] if next else NULL, next,
                 &fat[0] if nfl else NULL, &flo[0] if nfl else NULL,
                 &fhi[0] if nfl else NULL, &fst[0] if nfl else NULL,
                 &ffr[0] if nfl else NULL, &fops[0, 0] if nfl else NULL, nfl,
                 &hl[0] if nholds else NULL, nholds, &rns[0], &rint[0], &sns[0], &out[0],
                 &h[0, 0, 0], &res)
    if rc == -2:
        reraise()  # the signal handler's exception (KeyboardInterrupt)
    if rc < 0:
        raise MemoryError("the concurrent run's fault bitmaps")
    result = np.zeros(1, dtype=RESULT_DTYPE)
    cdef contend_result[::1] rv = result
    rv[0] = res
    return stats, hist, result[0]
