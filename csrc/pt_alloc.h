/*
 * Memory for the page-table store's row chunks (pagetab/_tables.pyx).
 *
 * Large chunks are mapped 2 MiB aligned and advised MADV_HUGEPAGE, so that
 * random walks over hundreds of MiB of simulated tables do not also miss
 * the host's own TLB on every access. Memory comes back zeroed. Elsewhere
 * (or for small chunks) it is plain calloc.
 */
#ifndef PAGETAB_PT_ALLOC_H
#define PAGETAB_PT_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define PT_HUGE_ALIGN ((size_t)2 << 20)

static void *pt_chunk_alloc(size_t bytes)
{
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (bytes >= PT_HUGE_ALIGN) {
        size_t len = bytes + PT_HUGE_ALIGN;
        char *p = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        uintptr_t a = ((uintptr_t)p + PT_HUGE_ALIGN - 1) & ~(uintptr_t)(PT_HUGE_ALIGN - 1);
        size_t head = (size_t)(a - (uintptr_t)p);
        size_t tail = len - head - bytes;
        if (head)
            munmap(p, head);
        if (tail)
            munmap((char *)a + bytes, tail);
#ifdef MADV_HUGEPAGE
        madvise((void *)a, bytes, MADV_HUGEPAGE);
#endif
        return (void *)a;
    }
#endif
    return calloc(1, bytes);
}

static void pt_chunk_free(void *p, size_t bytes)
{
    if (!p)
        return;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (bytes >= PT_HUGE_ALIGN) {
        munmap(p, bytes);
        return;
    }
#endif
    free(p);
}

#endif /* PAGETAB_PT_ALLOC_H */
