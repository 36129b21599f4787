/* Large zeroed buffers for the kernels' scratch planes. A 12-megapixel render touches over a
 * gigabyte of fresh scratch memory; in 4 KiB pages that is a quarter of a million page faults,
 * which cost more than the arithmetic. Where the system offers transparent huge pages (Linux),
 * big buffers are mapped directly and marked for them; elsewhere this is calloc. */
#ifndef SD_ALLOC_H
#define SD_ALLOC_H

#include <stddef.h>

/* n * size zeroed bytes; nthreads may share the work of faulting the pages in. */
void *sd_big_calloc(size_t n, size_t size, int nthreads);
void sd_big_free(void *p);

#endif
