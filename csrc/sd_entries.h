/* Internal interface of the layered render's input stage (sd_entries.c): what every pixel shows,
 * split by surface, and the depth slices the render cuts the CoC axis into. */
#ifndef SD_ENTRIES_H
#define SD_ENTRIES_H

#include <stddef.h>
#include "sd_core.h"

/* Most pixels show one surface: they have a main entry only, the pixel's own colour with full
 * coverage at its CoC, which is not stored again: the main entry of pixel p is img(p) with
 * coverage 1 at CoC coc[p]. Pixels that show two surfaces (fractional matte: subject and what
 * lies behind it; depth edges: a light and the wall beside it) keep all their entries (up to
 * three) as extras in row order, and coc[p] is NaN. Every entry is premultiplied colour plus
 * coverage with its own signed CoC diameter; a pixel's entries add up to the pixel (rgb) and to
 * 1 (alpha). */
typedef struct {
    int H, W;
    sd_cview img;          /* the image (3 channels): the main entries' colour */
    float *coc;            /* H*W: the main entry's CoC, NaN for a pixel with extras only */
    ptrdiff_t n;           /* number of extra entries */
    ptrdiff_t *row_start;  /* H+1: extras of row y are [row_start[y], row_start[y+1]) */
    int *x;                /* n: column of each extra, ascending within a row */
    float *xrgba;          /* n*4 */
    float *xcoc;           /* n */
} sd_entries;

/* The main entry of pixel (x, y) as premultiplied colour + coverage; returns 0 if it has none. */
static inline int sd_main_entry(const sd_entries *e, int x, int y, float *q, float *c)
{
    *c = e->coc[(ptrdiff_t)y * e->W + x];
    if (*c != *c) return 0;
    const float *p = e->img.data + (ptrdiff_t)y * e->img.row + (ptrdiff_t)x * e->img.pix;
    q[0] = p[0];
    q[1] = p[1];
    q[2] = p[2];
    q[3] = 1.0f;
    return 1;
}

/* Splits the image into entries (see the comment in sd_entries.c for the model). img has 3
 * channels and must outlive e; coc and matte are H*W contiguous; matte may be NULL (no
 * subject). On success *e owns its buffers (sd_entries_free); on failure nothing is left
 * allocated. */
sd_status sd_entries_build(int H, int W, sd_cview img, const float *coc, const float *matte, int nthreads,
                           sd_entries *e);
void sd_entries_free(sd_entries *e);

/* Slice centres along the CoC axis, from the largest (farthest) to the smallest; writes at most
 * SD_MAX_SLICES + 1 values to centres and their number to *n (at least 1). */
#define SD_MAX_SLICES 24
sd_status sd_entries_slices(const sd_entries *e, float *centres, int *n, int nthreads);

/* The layered composite of sd_render over given entries and slice centres (sd_render.c). */
sd_status sd_render_entries(const sd_entries *e, const float *centres, int nslices, const sd_aperture *ap,
                            const float *plate, sd_view out, int nthreads, const sd_cancel *cancel);

#endif
