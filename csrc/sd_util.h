/* Small inline helpers shared by the kernels. */
#ifndef SD_UTIL_H
#define SD_UTIL_H

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* floor and ceil of a float in int range: without SSE4.1 (the baseline x86-64 the package is
 * built for), floorf is a library call, far too slow for a per-source step. */
static inline int sd_ifloor(float x)
{
    int i = (int)x;
    return i - (x < (float)i);
}

static inline int sd_iceil(float x)
{
    int i = (int)x;
    return i + (x > (float)i);
}

/* The innermost spreading loop, compiled a second time for AVX2 + FMA and picked at load time
 * where the toolchain supports it (GCC's function multi-versioning on x86-64 Linux): the
 * package itself is built for the baseline x86-64, never for the build machine. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SD_CLONES
#endif

#endif
