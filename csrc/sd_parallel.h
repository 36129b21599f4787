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

static inline int sd_threads(int nthreads) { return nthreads < 1 ? 1 : nthreads; }

#endif
