/* Phase timings of the render for profiling builds: compiled with -DSD_PROFILE (for example
 * `meson setup build -Dc_args=-DSD_PROFILE`), every render prints the seconds its phases took to
 * stderr; with -DSD_SLICEPROF as well (it needs SD_PROFILE), a line per slice (level, cells, box,
 * seconds per step) from sd_render.c. Ordinary builds compile all of it away. */
#ifndef SD_PROF_H
#define SD_PROF_H

enum { PROF_ENTRIES, PROF_SLICES, PROF_ALLOC, PROF_INDEX, PROF_BUILD, PROF_FILL, PROF_SPREAD, PROF_RESOLVE,
       PROF_COMPOSITE, PROF_NORMALISE, PROF_N };

#ifdef SD_PROFILE
#include <stdio.h>
#include <time.h>

static double sd_prof_acc[PROF_N];

static inline double sd_prof_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sd_prof_report(void)
{
    static const char *names[PROF_N] = {"entries", "slices", "alloc", "index", "build",
                                        "fill", "spread", "resolve", "composite", "normalise"};
    double total = 0.0;
    for (int i = 0; i < PROF_N; i++) total += sd_prof_acc[i];
    fprintf(stderr, "sd_render:");
    for (int i = 0; i < PROF_N; i++) {
        fprintf(stderr, " %s %.3f", names[i], sd_prof_acc[i]);
        sd_prof_acc[i] = 0.0;
    }
    fprintf(stderr, " (sum %.3f s)\n", total);
}

#define SD_TIC(v) double v = sd_prof_now()
#define SD_TOC(i, v) (sd_prof_acc[i] += sd_prof_now() - (v))
#define SD_PROF_REPORT() sd_prof_report()
#else
#define SD_TIC(v) (void)0
#define SD_TOC(i, v) (void)0
#define SD_PROF_REPORT() (void)0
#endif

#endif
