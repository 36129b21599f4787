/* Thread helpers shared by the kernels: OpenMP when the build has it, serial loops otherwise. */
#ifndef SD_PARALLEL_H
#define SD_PARALLEL_H

#include <stddef.h>

/* Elements per task of the loops over a flat array (one element each would make millions of
 * hand-outs per 12 MP call, with both threads writing the same cache lines). */
#define SD_FLAT_CHUNK 65536

#ifdef _OPENMP
#include <omp.h>
#define SD_PRAGMA(x) _Pragma(#x)
/* Iterations are handed out a few at a time as threads come free, never split up front: beside
 * another busy process one thread may run at half speed, and a fixed half of the work would make
 * the other wait for it. (No loop's result depends on which thread ran an iteration.) */
#define SD_PARALLEL_FOR(nt) SD_PRAGMA(omp parallel for num_threads(nt) schedule(dynamic, 4))
#define SD_PARALLEL_FOR_DYN(nt) SD_PRAGMA(omp parallel for num_threads(nt) schedule(dynamic, 1))
/* rows whose cost varies (a hole on one side of the frame): handed out in chunks of 16 */
#define SD_PARALLEL_FOR_CHUNKS(nt) SD_PRAGMA(omp parallel for num_threads(nt) schedule(dynamic, 16))
#define SD_SIMD SD_PRAGMA(omp simd)
#define SD_SIMD_MINMAX(lo, hi) SD_PRAGMA(omp simd reduction(min : lo) reduction(max : hi))
#define SD_SIMD_OR(flag) SD_PRAGMA(omp simd reduction(| : flag))
#define SD_SIMD_SUM(total) SD_PRAGMA(omp simd reduction(+ : total))
#define SD_SIMD_MINMAX_OR(lo, hi, flag) \
    SD_PRAGMA(omp simd reduction(min : lo) reduction(max : hi) reduction(| : flag))
#else
/* Without OpenMP the loop runs on the calling thread; the thread count is still evaluated (a
 * one-pass loop around the loop that follows), so that it counts as used. */
#define SD_SERIAL_FOR(nt) for (int sd_once_ = ((void)(nt), 1); sd_once_; sd_once_ = 0)
#define SD_PARALLEL_FOR(nt) SD_SERIAL_FOR(nt)
#define SD_PARALLEL_FOR_DYN(nt) SD_SERIAL_FOR(nt)
#define SD_PARALLEL_FOR_CHUNKS(nt) SD_SERIAL_FOR(nt)
#define SD_SIMD
#define SD_SIMD_MINMAX(lo, hi)
#define SD_SIMD_OR(flag)
#define SD_SIMD_SUM(total)
#define SD_SIMD_MINMAX_OR(lo, hi, flag)
#endif

/* Thread counts are capped at this many per processor and in all. */
#define SD_MAX_THREADS 256

/* Index of the calling thread inside a parallel region (0 outside one or without OpenMP). */
static inline int sd_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* A flag that one iteration of a parallel loop raises for the iterations left to skip their work
 * (an early stop: the loop still runs to its end). Read and raised as OpenMP atomics. */
static inline int sd_flag_raised(int *flag)
{
    int v;
#ifdef _OPENMP
#pragma omp atomic read
#endif
    v = *flag;
    return v;
}

static inline void sd_raise_flag(int *flag)
{
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *flag = 1;
}

/* Inside a spin-wait: lets another thread on the same processor run (more threads than
 * processors) and eases the wait otherwise. */
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
static inline void sd_relax_cpu(void) { (void)sched_yield(); }
#else
static inline void sd_relax_cpu(void) {}
#endif

/* A loop over fewer cells than this runs on the calling thread: waking another thread and
 * waiting for it at the loop's end costs more than its share of the work saves, and beside another
 * busy process each such wait may last until the other thread is scheduled again. */
#define SD_MIN_PARALLEL_CELLS ((ptrdiff_t)1 << 17)

/* The threads for a loop over `cells` cells: nt, or 1 when the loop is too small to share (results
 * do not depend on the count). */
static inline int sd_threads_for(int nt, ptrdiff_t cells) { return cells < SD_MIN_PARALLEL_CELLS ? 1 : nt; }

/* At least one thread; at most a few per processor (results do not depend on the count, and an
 * absurd request must not exhaust the process's stacks). */
static inline int sd_threads(int nthreads)
{
    if (nthreads < 1) return 1;
#ifdef _OPENMP
    int cap = 4 * omp_get_num_procs();
    if (cap > SD_MAX_THREADS) cap = SD_MAX_THREADS;
    if (nthreads > cap) return cap;
#else
    if (nthreads > 1) return 1;
#endif
    return nthreads;
}

#endif
