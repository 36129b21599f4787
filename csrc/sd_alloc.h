/* Large zeroed buffers for the kernels' scratch planes. A 12-megapixel render touches over half
 * a gigabyte of scratch memory, and faulting it in costs more than the arithmetic. On Linux big
 * buffers are mapped directly, faulted in by all threads at once where they are read before
 * written, and only where touched otherwise; elsewhere this is calloc.
 *
 * Freed big buffers are kept, up to a limit, for the next call to take: memory the process
 * hands back may be handed on by the system (a virtual machine's free-page reporting returns it
 * to the host), and getting it back then costs far more than zeroing it again. */
#ifndef SD_ALLOC_H
#define SD_ALLOC_H

#include <stddef.h>

/* n * size zeroed bytes; nthreads may share the work of faulting the pages in or zeroing. */
void *sd_big_calloc(size_t n, size_t size, int nthreads);
/* sd_big_calloc for a buffer of which a call may touch only a part (a pyramid's planes: what
 * its spreads reach): a fresh mapping's pages are faulted in where they are first touched, not
 * all at once, so the part never touched costs neither time nor resident memory. */
void *sd_big_calloc_sparse(size_t n, size_t size, int nthreads);
/* Faults bytes [off, off + len) of p (from sd_big_calloc_sparse) in writable now, the threads
 * sharing the work, where p's mapping was made for it; a no-op for a buffer taken from the kept
 * ones (its pages are in where its last user touched them) and off Linux. For the part of a sparse
 * buffer its caller knows it will touch: faulting pages in all at once costs a fraction of what
 * faulting them one at a time as the kernels first write them does (two threads faulting into one
 * process wait for each other). */
void sd_big_prefault(void *p, size_t off, size_t len, int nthreads);
/* Whether sd_big_prefault would fault anything of p in: p is a sparse buffer mapped afresh. */
int sd_big_unfaulted(const void *p);
/* n * size bytes of undefined content, for a buffer written before it is read (a fresh
 * mapping's pages fault in where they are first written). */
void *sd_big_alloc(size_t n, size_t size, int nthreads);
void sd_big_free(void *p);
/* p (from sd_big_calloc / sd_big_alloc / this, or NULL) resized to bytes: the first
 * min(old, new) bytes kept, the rest undefined; NULL (p untouched) if there is no memory. */
void *sd_big_realloc(void *p, size_t bytes, int nthreads);
/* The largest sd_big_calloc / sd_big_alloc request (bytes) that failed since the last call (0:
 * none), read and cleared: for the message of an out-of-memory error. */
size_t sd_alloc_failed_bytes(void);
/* sd_big_free of a buffer the caller has left all zero: a later sd_big_calloc need not zero it. */
void sd_big_free_zeroed(void *p);

/* The most bytes of freed buffers kept for reuse (default SD_SCRATCH_DEFAULT); a lower limit
 * releases what is over it at once, 0 releases everything. Returns the bytes kept now. */
size_t sd_scratch_limit(size_t bytes);
size_t sd_scratch_kept(void);

/* A 12 MP refine and the render of its result keep 1.0-1.3 GB between them: with 1 GiB each call
 * took the other's buffers and faulted in fresh ones (render 6-8 % more CPU time). */
#define SD_SCRATCH_DEFAULT ((size_t)2 << 30)

#endif
