/* Phase timings of the render for profiling builds: compiled with -DSD_PROFILE (for example
 * `meson setup build -Dc_args=-DSD_PROFILE`), every render prints the seconds its phases took to
 * stderr; with -DSD_SLICEPROF as well (it needs SD_PROFILE), a line per slice (level, cells, the
 * cells built by what they hold after the build, box, seconds per step) from sd_render.c. Ordinary
 * builds compile all of it away. */
#ifndef SD_PROF_H
#define SD_PROF_H

enum { PROF_ENTRIES, PROF_SLICES, PROF_ALLOC, PROF_INDEX, PROF_BUILD, PROF_FILL, PROF_SPREAD, PROF_RESOLVE,
       PROF_COMPOSITE, PROF_NORMALISE, PROF_N };

#ifdef SD_PROFILE
#include <stddef.h>
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

#ifdef SD_SLICEPROF
#include <string.h>
/* The phase totals when a slice starts: its steps are the increase. */
typedef struct {
    double before[PROF_N];
} sd_slice_prof;

static inline void sd_slice_prof_start(sd_slice_prof *p) { memcpy(p->before, sd_prof_acc, sizeof p->before); }

/* census: the cells built that hold content, that only nearer slices hide (to fill), and neither */
static void sd_slice_prof_line(const sd_slice_prof *p, int si, float centre, int k, ptrdiff_t cells, int rows,
                               int cols, int holes, const ptrdiff_t census[3])
{
    const double *a = sd_prof_acc, *b = p->before;
    fprintf(stderr,
            "slice %2d c %6.1f k %d cells %8td (content %td hidden %td empty %td) box %4dx%4d holes %d "
            "b %.3f f %.3f s %.3f r %.3f c %.3f\n",
            si, centre, k, cells, census[0], census[1], census[2], rows, cols, holes, a[PROF_BUILD] - b[PROF_BUILD],
            a[PROF_FILL] - b[PROF_FILL], a[PROF_SPREAD] - b[PROF_SPREAD], a[PROF_RESOLVE] - b[PROF_RESOLVE],
            a[PROF_COMPOSITE] - b[PROF_COMPOSITE]);
}
#define SD_SLICE_PROF_START(p) \
    sd_slice_prof p;           \
    ptrdiff_t p##_census[3] = {0, 0, 0}; \
    sd_slice_prof_start(&p)
#define SD_SLICE_PROF_CENSUS(p, r, s) slice_census(r, s, p##_census)
#define SD_SLICE_PROF_LINE(p, ...) sd_slice_prof_line(&p, __VA_ARGS__)
#endif
#else
#define SD_TIC(v) (void)0
#define SD_TOC(i, v) (void)0
#define SD_PROF_REPORT() (void)0
#endif

#ifndef SD_SLICE_PROF_START
#define SD_SLICE_PROF_START(p) (void)0
#define SD_SLICE_PROF_CENSUS(p, r, s) (void)0
#define SD_SLICE_PROF_LINE(p, ...) (void)0
#endif

/* Runs the statement, timed as phase i in profiling builds. */
#define SD_TIMED(i, stmt)       \
    do {                        \
        SD_TIC(sd_t0_);         \
        stmt;                   \
        SD_TOC(i, sd_t0_);      \
    } while (0)

#endif
