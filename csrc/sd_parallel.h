/* Thread helpers shared by the kernels: OpenMP when the build has it, serial loops otherwise. */
#ifndef SD_PARALLEL_H
#define SD_PARALLEL_H

#ifdef _OPENMP
#include <omp.h>
#define SD_PRAGMA(x) _Pragma(#x)
#define SD_PARALLEL_FOR(nt) SD_PRAGMA(omp parallel for num_threads(nt) schedule(static))
#define SD_PARALLEL_FOR_DYN(nt) SD_PRAGMA(omp parallel for num_threads(nt) schedule(dynamic, 1))
#define SD_SIMD SD_PRAGMA(omp simd)
#else
#define SD_PARALLEL_FOR(nt)
#define SD_PARALLEL_FOR_DYN(nt)
#define SD_SIMD
#endif

/* At least one thread; at most a few per processor (results do not depend on the count, and an
 * absurd request must not exhaust the process's stacks). */
static inline int sd_threads(int nthreads)
{
    if (nthreads < 1) return 1;
#ifdef _OPENMP
    int cap = 4 * omp_get_num_procs();
    if (nthreads > cap) return cap;
#else
    if (nthreads > 1) return 1;
#endif
    return nthreads;
}

#endif
