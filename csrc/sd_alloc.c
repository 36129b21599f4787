/* See sd_alloc.h. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* mmap, madvise */
#endif
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_parallel.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Under AddressSanitizer a kept buffer, and the part of a reused one beyond what its user asked
 * for, are poisoned: a kernel or a NumPy array (python/synthdof/_validate.py pooled_arrays) that
 * reads or writes past its buffer, or uses one it freed, is reported as with malloc's memory. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SD_ASAN 1
#endif
#ifdef SD_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Below this a buffer comes from calloc: too small to be worth a mapping of its own. */
#define BIG_BYTES ((size_t)4 << 20)
/* Room before the returned pointer for the mapping's length (0: a calloc'ed small buffer), the
 * bytes from the returned pointer on that are zero when its user returns it zeroed, and the bytes
 * asked for (what sd_big_realloc keeps); 64 keeps the mappings' 64-byte alignment. */
#define HEADER 64

#if defined(__linux__) && defined(MAP_ANONYMOUS)
/* Freed mappings kept for reuse. The lock is held only to pick or place a slot. */
#define SLOTS 64
static struct {
    void *m;
    size_t len;
    size_t zero; /* the first this many bytes after the header are zero: a user that left its buffer
                  * all zero has left only the bytes it asked for, and the mapping may be longer */
} kept[SLOTS];
static size_t kept_bytes, kept_limit = SD_SCRATCH_DEFAULT;
static atomic_flag kept_lock = ATOMIC_FLAG_INIT;

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&kept_lock, memory_order_acquire)) sd_relax_cpu();
}
static void unlock(void) { atomic_flag_clear_explicit(&kept_lock, memory_order_release); }

/* A kept mapping of at least len bytes and at most twice that, or NULL: the smallest, and of
 * those one zero over len when want_zero (else one that is not, to save the zero ones). *zero:
 * its zero bytes after the header. */
static void *take_kept(size_t len, int want_zero, size_t *got, size_t *zero)
{
    lock();
    int best = -1;
    size_t need = len - HEADER;
    for (int i = 0; i < SLOTS; i++) {
        if (!kept[i].m || kept[i].len < len || kept[i].len / 2 > len) continue;
        if (best < 0 || kept[i].len < kept[best].len ||
            (kept[i].len == kept[best].len &&
             ((kept[i].zero >= need) == want_zero) > ((kept[best].zero >= need) == want_zero)))
            best = i;
    }
    void *m = NULL;
    if (best >= 0) {
        m = kept[best].m;
        *got = kept[best].len;
        *zero = kept[best].zero;
        kept_bytes -= kept[best].len;
        kept[best].m = NULL;
    }
    unlock();
    return m;
}

/* Keeps mapping m of len bytes, zero over its first `zero` bytes after the header, if the limit
 * allows; else unmaps it. */
static void keep(void *m, size_t len, size_t zero)
{
    lock();
    int slot = -1;
    if (kept_bytes + len <= kept_limit)
        for (int i = 0; i < SLOTS && slot < 0; i++)
            if (!kept[i].m) slot = i;
    if (slot >= 0) {
        POISON((char *)m + HEADER, len - HEADER);
        kept[slot].m = m;
        kept[slot].len = len;
        kept[slot].zero = zero;
        kept_bytes += len;
    }
    unlock();
    if (slot < 0) {
        UNPOISON(m, len);
        munmap(m, len);
    }
}

size_t sd_scratch_limit(size_t bytes)
{
    void *drop[SLOTS];
    size_t dlen[SLOTS];
    int nd = 0;
    lock();
    kept_limit = bytes;
    /* release the largest first until what is kept fits */
    while (kept_bytes > kept_limit) {
        int big = -1;
        for (int i = 0; i < SLOTS; i++)
            if (kept[i].m && (big < 0 || kept[i].len > kept[big].len)) big = i;
        drop[nd] = kept[big].m;
        dlen[nd++] = kept[big].len;
        kept_bytes -= kept[big].len;
        kept[big].m = NULL;
    }
    size_t now = kept_bytes;
    unlock();
    for (int i = 0; i < nd; i++) {
        UNPOISON(drop[i], dlen[i]);
        munmap(drop[i], dlen[i]);
    }
    return now;
}

size_t sd_scratch_kept(void)
{
    lock();
    size_t now = kept_bytes;
    unlock();
    return now;
}
#else
size_t sd_scratch_limit(size_t bytes)
{
    (void)bytes;
    return 0;
}
size_t sd_scratch_kept(void) { return 0; }
#endif

#if defined(__linux__) && defined(MAP_ANONYMOUS)
/* Zeroes (zero) or faults in writable (!zero, where the system can) bytes [p, p + len). */
static void zero_or_fault(char *p, size_t len, int zero)
{
    if (zero) memset(p, 0, len);
#ifdef MADV_POPULATE_WRITE
    else (void)madvise(p, len, MADV_POPULATE_WRITE);
#endif
}

/* zero_or_fault, an 8 MiB slice at a time shared among the threads. */
static void by_slices(char *p, size_t len, int zero, int nthreads)
{
    size_t chunk = (size_t)8 << 20;
    if (len <= chunk) { /* no team of threads for one slice */
        zero_or_fault(p, len, zero);
        return;
    }
    long nchunks = (long)((len + chunk - 1) / chunk);
    (void)nthreads; /* without OpenMP */
    SD_PARALLEL_FOR(sd_threads(nthreads))
    for (long i = 0; i < nchunks; i++) {
        size_t off = (size_t)i * chunk;
        zero_or_fault(p + off, len - off < chunk ? len - off : chunk, zero);
    }
}
#endif

static void *big_alloc_raw(size_t n, size_t size, int nthreads, int zeroed, int sparse)
{
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    if (bytes >= BIG_BYTES && bytes <= SIZE_MAX - HEADER) {
        size_t len = bytes + HEADER, got = 0, zero = 0;
        void *m = take_kept(len, zeroed, &got, &zero);
        if (m) {
            UNPOISON((char *)m + HEADER, bytes); /* the rest stays poisoned */
            /* what the caller gets, where it is not zero yet */
            if (zeroed && zero < bytes) by_slices((char *)m + HEADER + zero, bytes - zero, 1, nthreads);
            ((size_t *)m)[0] = got;
            ((size_t *)m)[1] = zero > bytes ? zero : bytes; /* zero if the caller leaves its bytes so */
            ((size_t *)m)[2] = bytes;
            ((size_t *)m)[3] = 0; /* its pages are in where its last user touched them */
            return (char *)m + HEADER;
        }
        /* No MADV_HUGEPAGE: on a virtual machine that hands freed memory back to its host, a
         * fresh huge page cost 5-20 times the system time of the same bytes in small pages
         * (12 MP render's first call: 4-6.4 s against 0.3-0.6 s), and a sparse buffer's touched
         * rows round up to 2 MiB each. The system's own setting still applies. */
        m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        /* Fault a zeroed buffer's pages in now, writable: one that is read before it is written
         * would otherwise map the shared zero page first and then copy it page by page. A sparse
         * one, and one written before it is read, fault in where they are touched (a slice
         * buffer as large as the largest slice: the others touch less of it). */
        if (zeroed && !sparse) by_slices((char *)m, bytes + HEADER, 0, nthreads);
        ((size_t *)m)[0] = len;
        ((size_t *)m)[1] = len - HEADER;
        ((size_t *)m)[2] = bytes;
        ((size_t *)m)[3] = (size_t)(zeroed && sparse); /* none of its pages is in: sd_big_prefault */
        return (char *)m + HEADER;
    }
    /* small buffers carry a header too, so that sd_big_free can tell the two apart */
    char *p = calloc(1, bytes + HEADER);
    if (!p) return NULL;
    ((size_t *)p)[0] = 0;
    ((size_t *)p)[2] = bytes;
    ((size_t *)p)[3] = 0;
    return p + HEADER;
#else
    (void)nthreads;
    (void)sparse;
    return calloc(n ? n : 1, size ? size : 1);
#endif
}

/* The largest request that failed since it was last read, for the caller's error message. */
static _Atomic size_t failed_bytes;

static void *big_alloc(size_t n, size_t size, int nthreads, int zeroed, int sparse)
{
    void *p = big_alloc_raw(n, size, nthreads, zeroed, sparse);
    if (!p) {
        size_t want = size && n > SIZE_MAX / size ? SIZE_MAX : n * size;
        size_t had = atomic_load(&failed_bytes);
        while (want > had && !atomic_compare_exchange_weak(&failed_bytes, &had, want)) {}
    }
    return p;
}

size_t sd_alloc_failed_bytes(void) { return atomic_exchange(&failed_bytes, (size_t)0); }

void *sd_big_calloc(size_t n, size_t size, int nthreads) { return big_alloc(n, size, nthreads, 1, 0); }
void *sd_big_calloc_sparse(size_t n, size_t size, int nthreads) { return big_alloc(n, size, nthreads, 1, 1); }
void *sd_big_alloc(size_t n, size_t size, int nthreads) { return big_alloc(n, size, nthreads, 0, 0); }

static void big_free(void *p, int zero)
{
    if (!p) return;
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    char *m = (char *)p - HEADER;
    size_t len = ((size_t *)m)[0];
    if (len) keep(m, len, zero ? ((size_t *)m)[1] : 0);
    else free(m);
#else
    (void)zero;
    free(p);
#endif
}

void sd_big_prefault(void *p, size_t off, size_t len, int nthreads)
{
#if defined(__linux__) && defined(MAP_ANONYMOUS) && defined(MADV_POPULATE_WRITE)
    if (!p || !len) return;
    char *m = (char *)p - HEADER;
    size_t bytes = ((size_t *)m)[2];
    if (!((size_t *)m)[3] || off >= bytes) return;
    len = len < bytes - off ? len : bytes - off;
    /* madvise takes whole pages: from the page holding the first byte to the one holding the last */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p + off, e = a + len;
    a -= a % page;
    by_slices((char *)a, e - a, 0, nthreads);
#else
    (void)p; (void)off; (void)len; (void)nthreads;
#endif
}

int sd_big_unfaulted(const void *p)
{
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    return p && ((const size_t *)((const char *)p - HEADER))[3] != 0;
#else
    (void)p;
    return 0;
#endif
}

void sd_big_free(void *p) { big_free(p, 0); }
void sd_big_free_zeroed(void *p) { big_free(p, 1); }

void *sd_big_realloc(void *p, size_t bytes, int nthreads)
{
    if (!p) return sd_big_alloc(bytes, 1, nthreads);
#if defined(__linux__) && defined(MAP_ANONYMOUS)
    size_t had = ((size_t *)((char *)p - HEADER))[2];
    void *q = sd_big_alloc(bytes, 1, nthreads); /* a failure is recorded there */
    if (!q) return NULL;                        /* p stays the caller's, as with realloc */
    memcpy(q, p, had < bytes ? had : bytes);
    sd_big_free(p);
    return q;
#else
    (void)nthreads;
    return realloc(p, bytes ? bytes : 1); /* the buffers are calloc's here */
#endif
}
