/*
 * The host probe: the real kernel's mremap on this machine, measured.
 *
 * probe_map() maps an anonymous region at a chosen address inside a window
 * reserved with PROT_NONE (MAP_FIXED_NOREPLACE, so nothing else is ever
 * replaced) and populates it; probe_move() times one
 * mremap(MAYMOVE|FIXED) with CLOCK_MONOTONIC around the syscall alone;
 * probe_verify() checks every page of the moved region (written tags, or
 * the zero page via /proc/self/pagemap when readable). probe_spin_start()
 * runs threads of this process spinning on other CPUs, so the mm is live
 * there and every flush of a move must reach them. Linux only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define PROBE_TAG 0x7061676574616200ULL /* "pagetab" */

/* POP_FRESH: mapped, nothing touched, no THP (each first write is a 4K fault) */
enum { POP_NONE = 0, POP_ZERO = 1, POP_WRITE = 2, POP_THP = 3, POP_FRESH = 4 };

/* Reserve [*base, *base + len) aligned to align; 0 or -errno. */
static int probe_reserve(size_t len, size_t align, uintptr_t *base)
{
    char *p = mmap(NULL, len + align, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    /* hand the window back: the caller maps into it with NOREPLACE */
    munmap(p, len + align);
    *base = a;
    return 0;
}

static uint64_t page_tag(uintptr_t region, size_t page_index)
{
    return PROBE_TAG ^ ((uint64_t)region << 1) ^ (uint64_t)page_index;
}

/* Map and populate [addr, addr + len); 0 or -errno. */
static int probe_map(uintptr_t addr, size_t len, int populate)
{
    long psz = sysconf(_SC_PAGESIZE);
    void *p = mmap((void *)addr, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (p != (void *)addr) {
        munmap(p, len);
        return -EEXIST;
    }
    if (populate == POP_NONE)
        return 0;
    if (madvise(p, len, populate == POP_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
        return -errno;
    if (populate == POP_FRESH)
        return 0;
    if (populate == POP_ZERO) {
        if (madvise(p, len, MADV_POPULATE_READ))
            return -errno;
        return 0;
    }
    for (size_t i = 0; i < len / (size_t)psz; i++)
        *(volatile uint64_t *)((char *)p + i * (size_t)psz) = page_tag(addr, i);
    return 0;
}

/* One mremap, timed: the syscall's time in ns, or -errno (-EFAULT if the
 * mapping did not end up at ``at``). */
static int64_t probe_mremap(uintptr_t addr, size_t old_len, size_t new_len, int flags,
                            uintptr_t at)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    void *r = mremap((void *)addr, old_len, new_len, flags, (void *)at);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (r == MAP_FAILED)
        return -errno;
    if (r != (void *)at)
        return -EFAULT;
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

/* One mremap(MAYMOVE|FIXED); the syscall's time in ns, or -errno. */
static int64_t probe_move(uintptr_t from, uintptr_t to, size_t len)
{
    return probe_mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
}

/* One mremap(addr, old_len, new_len, 0): a resize in place (the new_address
 * argument is ignored without MREMAP_FIXED); ns, or -errno (-EFAULT if the
 * mapping moved). */
static int64_t probe_resize(uintptr_t addr, size_t old_len, size_t new_len)
{
    return probe_mremap(addr, old_len, new_len, 0, addr);
}

/* The calls that unmap or change a range, as the concurrent model's movers
 * (pagetab/mmu_gather.py): what probe_unmap_call times. */
enum { UNMAP_MADV_DONTNEED = 0, UNMAP_MPROTECT_READ = 1, UNMAP_MUNMAP = 2 };

/* One madvise(MADV_DONTNEED), mprotect(PROT_READ) or munmap of
 * [addr, addr + len), timed around the syscall alone; ns or -errno. */
static int64_t probe_unmap_call(int call, uintptr_t addr, size_t len)
{
    struct timespec a, b;
    int rc;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (call == UNMAP_MADV_DONTNEED)
        rc = madvise((void *)addr, len, MADV_DONTNEED);
    else if (call == UNMAP_MPROTECT_READ)
        rc = mprotect((void *)addr, len, PROT_READ);
    else if (call == UNMAP_MUNMAP)
        rc = munmap((void *)addr, len);
    else
        return -EINVAL;
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc)
        return -errno;
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

/* Time MADV_POPULATE_READ (zero page) of a mapped region; ns or -errno. */
static int64_t probe_populate_read(uintptr_t addr, size_t len)
{
    struct timespec a, b;
    if (madvise((void *)addr, len, MADV_NOHUGEPAGE))
        return -errno;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = madvise((void *)addr, len, MADV_POPULATE_READ);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc)
        return -errno;
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

/*
 * Time n loads, one byte at addr + off[i] each (random offsets make every
 * load a TLB miss and a page walk in a large region); ns or -errno. The
 * sum goes to a volatile so the loads are not optimised away.
 */
static int64_t probe_access(uintptr_t addr, const uint64_t *off, int64_t n)
{
    struct timespec a, b;
    volatile uint64_t sink;
    uint64_t sum = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int64_t i = 0; i < n; i++)
        sum += *(volatile const uint8_t *)(addr + off[i]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    sink = sum;
    (void)sink;
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

/*
 * Check every page of [addr, addr + len), which was populated at `origin`:
 * written tags where populate wrote them; for the zero page, every page
 * present in /proc/self/pagemap with the PFN of page 0 (when PFNs are
 * visible, i.e. as root) and reading as zero. Returns the number of bad
 * pages, or -errno; *checked gets the pages checked.
 */
static int64_t probe_verify(uintptr_t addr, size_t len, uintptr_t origin, int populate,
                            int64_t *checked)
{
    long psz = sysconf(_SC_PAGESIZE);
    size_t n = len / (size_t)psz;
    int64_t bad = 0;
    *checked = 0;
    if (populate == POP_WRITE || populate == POP_THP) {
        for (size_t i = 0; i < n; i++) {
            if (*(volatile uint64_t *)(addr + i * (size_t)psz) != page_tag(origin, i))
                bad++;
        }
        *checked = (int64_t)n;
        return bad;
    }
    if (populate != POP_ZERO)
        return 0;
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (fd < 0)
        return -errno;
    enum { CHUNK = 4096 };
    uint64_t *buf = malloc(CHUNK * sizeof(uint64_t));
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    uint64_t zero_pfn = 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        off_t off = (off_t)((addr / (size_t)psz + i) * sizeof(uint64_t));
        ssize_t got = pread(fd, buf, m * sizeof(uint64_t), off);
        if (got != (ssize_t)(m * sizeof(uint64_t))) {
            bad = -EIO;
            break;
        }
        for (size_t k = 0; k < m; k++) {
            uint64_t e = buf[k];
            uint64_t pfn = e & ((1ULL << 55) - 1);
            if (!(e >> 63)) {       /* not present: the move lost it */
                bad++;
                continue;
            }
            if (i == 0 && k == 0)
                zero_pfn = pfn;
            if (pfn != zero_pfn)    /* 0 when PFNs are hidden: still equal */
                bad++;
        }
    }
    free(buf);
    close(fd);
    *checked = bad < 0 ? 0 : (int64_t)n;
    return bad;
}

/* A number from a "Key:   value kB" line of /proc/self/status, or -1. */
static long probe_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* A counter of /proc/vmstat, or -1. */
static long probe_vmstat(const char *key)
{
    FILE *f = fopen("/proc/vmstat", "r");
    char name[128];
    long v;
    if (!f)
        return -1;
    while (fscanf(f, "%127s %ld", name, &v) == 2) {
        if (!strcmp(name, key)) {
            fclose(f);
            return v;
        }
    }
    fclose(f);
    return -1;
}

/*
 * Other threads of this process, each pinned to one CPU and spinning in
 * user space until probe_spin_stop(): the mm runs on those CPUs (not lazy),
 * as an application's threads would while the mover works.
 */
enum { PROBE_MAX_SPIN = 64 };
static pthread_t probe_spin_tid[PROBE_MAX_SPIN];
static int probe_spin_n;
static volatile int probe_spin_go;
static volatile int probe_spin_ready;

static void *probe_spin_main(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&probe_spin_ready, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&probe_spin_go, __ATOMIC_ACQUIRE))
        ;
    return NULL;
}

/* Pin the calling thread to `cpu`; 0 or -errno. */
static int probe_pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    return -rc;
}

/* Start n spinning threads pinned to cpus[0..n); returns once all run.
 * 0 or -errno (then none is left running). */
static int probe_spin_start(int n, const int *cpus)
{
    if (n < 0 || n > PROBE_MAX_SPIN || probe_spin_n)
        return -EINVAL;
    probe_spin_go = 1;
    probe_spin_ready = 0;
    for (int i = 0; i < n; i++) {
        pthread_attr_t attr;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[i], &set);
        pthread_attr_init(&attr);
        int rc = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
        if (!rc)
            rc = pthread_create(&probe_spin_tid[i], &attr, probe_spin_main, NULL);
        pthread_attr_destroy(&attr);
        if (rc) {
            __atomic_store_n(&probe_spin_go, 0, __ATOMIC_RELEASE);
            for (int j = 0; j < i; j++)
                pthread_join(probe_spin_tid[j], NULL);
            return -rc;
        }
        probe_spin_n = i + 1;
    }
    while (__atomic_load_n(&probe_spin_ready, __ATOMIC_SEQ_CST) < n)
        sched_yield();
    return 0;
}

/* Stop and join the spinning threads. */
static void probe_spin_stop(void)
{
    __atomic_store_n(&probe_spin_go, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < probe_spin_n; i++)
        pthread_join(probe_spin_tid[i], NULL);
    probe_spin_n = 0;
}


/*
 * userfaultfd's ABI (include/uapi/linux/userfaultfd.h), spelled out so the
 * probe builds with headers older than UFFDIO_MOVE (6.8).
 */
struct probe_uffdio_api { uint64_t api, features, ioctls; };
struct probe_uffdio_register { uint64_t start, len, mode, ioctls; };
struct probe_uffdio_move { uint64_t dst, src, len, mode; int64_t move; };
#define PROBE_UFFD_API 0xAAULL
#define PROBE_UFFD_USER_MODE_ONLY 1
#define PROBE_UFFD_FEATURE_MOVE (1ULL << 10)
#define PROBE_UFFDIO_API 0xC018AA3FUL      /* _IOWR(0xAA, 0x3F, 24 bytes) */
#define PROBE_UFFDIO_REGISTER 0xC020AA00UL /* _IOWR(0xAA, 0x00, 32 bytes) */
#define PROBE_UFFDIO_MOVE 0xC028AA05UL     /* _IOWR(0xAA, 0x05, 40 bytes) */
#define PROBE_UFFDIO_REGISTER_MODE_MISSING 1ULL

/*
 * A userfaultfd with UFFD_FEATURE_MOVE: the fd or -errno. Without
 * CAP_SYS_PTRACE and vm.unprivileged_userfaultfd=0 only a user-mode-only
 * one is allowed, which is enough: the probe's moves never fault.
 */
static int probe_uffd_open(void)
{
#ifdef __NR_userfaultfd
    int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && (errno == EPERM || errno == EACCES))
        fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | PROBE_UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return -errno;
    struct probe_uffdio_api api = { PROBE_UFFD_API, PROBE_UFFD_FEATURE_MOVE, 0 };
    if (ioctl(fd, PROBE_UFFDIO_API, &api)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
#else
    return -ENOSYS;
#endif
}

/*
 * One compaction cycle as a userfaultfd GC does it, on the region `moving`
 * (mapped and written by probe_map(moving, len, POP_WRITE)):
 * mremap(MAYMOVE|FIXED|DONTUNMAP) of it to `from`, UFFDIO_REGISTER (MISSING)
 * of the emptied `moving`, then UFFDIO_MOVE of each run: runs[3i] pages
 * into `from`, runs[3i + 1] into `moving`, runs[3i + 2] pages long.
 * ns[0] = the mremap, ns[1] = every UFFDIO_MOVE (one clock around the
 * loop, so n calls add no 2n clock reads), ns[2] = pages moved whose tag
 * is not the one written at their source (must be 0). 0 or -errno.
 */
static int probe_gc_cycle(uintptr_t moving, uintptr_t from, size_t len, const int64_t *runs,
                          int64_t n, int64_t *ns)
{
    long psz = sysconf(_SC_PAGESIZE);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    void *r = mremap((void *)moving, len, len,
                     MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, (void *)from);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (r == MAP_FAILED)
        return -errno;
    ns[0] = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    int fd = probe_uffd_open();
    if (fd < 0)
        return fd;
    struct probe_uffdio_register reg = { moving, len, PROBE_UFFDIO_REGISTER_MODE_MISSING, 0 };
    if (ioctl(fd, PROBE_UFFDIO_REGISTER, &reg)) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rc = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int64_t i = 0; i < n; i++) {
        struct probe_uffdio_move m = {
            moving + (uint64_t)runs[3 * i + 1] * (uint64_t)psz,
            from + (uint64_t)runs[3 * i] * (uint64_t)psz,
            (uint64_t)runs[3 * i + 2] * (uint64_t)psz, 0, 0 };
        if (ioctl(fd, PROBE_UFFDIO_MOVE, &m)) {
            rc = -errno;
            break;
        }
        if (m.move != (int64_t)m.len) {
            rc = -EIO;
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    close(fd);
    if (rc)
        return rc;
    ns[1] = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < runs[3 * i + 2]; k++) {
            uintptr_t at = moving + (uint64_t)(runs[3 * i + 1] + k) * (uint64_t)psz;
            if (*(volatile uint64_t *)at != page_tag(moving, (size_t)(runs[3 * i] + k)))
                bad++;
        }
    ns[2] = bad;
    return 0;
}


/*
 * The concurrent case: a reader thread pinned to `reader_cpu` reads random
 * 8-byte words of [rlo, rlo + rlen) back to back, timing each read with
 * CLOCK_MONOTONIC, while this thread (pinned to `mover_cpu`) moves
 * [from, from + len) to `to` with mremap(MREMAP_MAYMOVE | MREMAP_FIXED).
 * The reader runs `warm_ns` before the move (not recorded) and records
 * the latency of each read it starts while mremap runs, into lat[0..cap).
 * out[0] = mremap's ns, out[1] = reads recorded, out[2] = reads made
 * during the move beyond `cap` (not recorded). 0 or -errno.
 */
/* The other thread: PROBE_READ times random reads of [lo, lo + len);
 * PROBE_FAULT times a write to each page of it in turn while recording (a
 * fresh region: each a page fault), having written its first page before
 * (so the VMA has its anon_vma); PROBE_FAULT_NEW writes nothing before (its
 * first fault prepares the anon_vma: mm/memory.c __vmf_anon_prepare needs
 * mmap_lock for that). Both spin without touching it until recording. */
enum { PROBE_READ = 0, PROBE_FAULT = 1, PROBE_FAULT_NEW = 2 };

struct probe_reader {
    uintptr_t lo;
    size_t len;
    int cpu;
    int mode;
    int64_t *lat;
    int64_t cap;
    int64_t n;
    int64_t over;
    volatile int go;
    volatile int recording;
    volatile int ready;
};

static inline int64_t probe_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *probe_reader_main(void *arg)
{
    struct probe_reader *r = arg;
    uint64_t x = 0x9E3779B97F4A7C15ULL ^ (uint64_t)r->lo;
    size_t words = r->len / 8;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), next = 0;
    uint64_t sink = 0;
    if (probe_pin_self(r->cpu))
        return NULL;
    if (r->mode == PROBE_FAULT) {
        *(volatile uint64_t *)r->lo = x;
        next = page;
    }
    __atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n(&r->go, __ATOMIC_ACQUIRE)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int rec = __atomic_load_n(&r->recording, __ATOMIC_ACQUIRE);
        if (r->mode != PROBE_READ && (!rec || next + page > r->len))
            continue;  /* touch nothing before the move, or past the region */
        int64_t a = probe_now();
        if (r->mode != PROBE_READ) {
            *(volatile uint64_t *)(r->lo + next) = x;
            next += page;
        } else {
            sink += *(volatile uint64_t *)(r->lo + 8 * (x % words));
        }
        int64_t b = probe_now();
        if (rec) {
            if (r->n < r->cap)
                r->lat[r->n++] = b - a;
            else
                r->over++;
        }
    }
    __atomic_add_fetch(&r->ready, (int)(sink & 0), __ATOMIC_RELAXED);
    return NULL;
}

static int probe_contend(uintptr_t from, uintptr_t to, size_t len, int mover_cpu,
                         int reader_cpu, uintptr_t rlo, size_t rlen, int mode, int64_t warm_ns,
                         int64_t *lat, int64_t cap, int64_t *out)
{
    struct probe_reader r = { rlo, rlen, reader_cpu, mode, lat, cap, 0, 0, 1, 0, 0 };
    pthread_t tid;
    int rc = probe_pin_self(mover_cpu);
    if (rc)
        return rc;
    rc = pthread_create(&tid, NULL, probe_reader_main, &r);
    if (rc)
        return -rc;
    while (!__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE))
        sched_yield();
    int64_t t = probe_now();
    while (probe_now() - t < warm_ns)
        ;
    __atomic_store_n(&r.recording, 1, __ATOMIC_RELEASE);
    int64_t a = probe_now();
    void *m = mremap((void *)from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)to);
    int64_t b = probe_now();
    int e = errno;
    __atomic_store_n(&r.recording, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&r.go, 0, __ATOMIC_RELEASE);
    pthread_join(tid, NULL);
    if (m == MAP_FAILED)
        return -e;
    out[0] = b - a;
    out[1] = r.n;
    out[2] = r.over;
    return 0;
}
