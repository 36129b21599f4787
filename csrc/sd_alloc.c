/* See sd_alloc.h. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* mmap, madvise */
#endif
#include <stdint.h>
#include <stdlib.h>
#include "sd_alloc.h"
#include "sd_parallel.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Below this a buffer comes from calloc: too small for huge pages to matter. */
#define BIG_BYTES ((size_t)4 << 20)
/* Room before the returned pointer for the mapping's length (keeps 64-byte alignment). */
#define HEADER 64

void *sd_big_calloc(size_t n, size_t size, int nthreads)
{
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (bytes >= BIG_BYTES && bytes <= SIZE_MAX - HEADER) {
        size_t len = bytes + HEADER;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(m, len, MADV_HUGEPAGE); /* a hint: without it the pages are only smaller */
#endif
#ifdef MADV_POPULATE_WRITE
        /* Fault the pages in now, writable, a slice per thread: a buffer that is read before it
         * is written would otherwise map the shared zero page first and then copy it page by
         * page. */
        size_t chunk = (size_t)32 << 20;
        long nchunks = (long)((len + chunk - 1) / chunk);
        int nt = sd_threads(nthreads);
        SD_PARALLEL_FOR(nt)
        for (long i = 0; i < nchunks; i++) {
            size_t off = (size_t)i * chunk, l = len - off < chunk ? len - off : chunk;
            (void)madvise((char *)m + off, l, MADV_POPULATE_WRITE);
        }
#else
        (void)nthreads;
#endif
        *(size_t *)m = len;
        return (char *)m + HEADER;
    }
    /* small buffers carry a header too, so that sd_big_free can tell the two apart */
    char *p = calloc(1, bytes + HEADER);
    if (!p) return NULL;
    *(size_t *)p = 0;
    return p + HEADER;
#else
    (void)nthreads;
    return calloc(n ? n : 1, size ? size : 1);
#endif
}

void sd_big_free(void *p)
{
    if (!p) return;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    char *m = (char *)p - HEADER;
    size_t len = *(size_t *)m;
    if (len) munmap(m, len);
    else free(m);
#else
    free(p);
#endif
}
