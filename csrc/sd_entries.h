/* Internal interface of the entries stage (sd_entries.c, with the depth-edge unmixing of
 * sd_unmix.c): what every pixel shows, split by surface, the input of the layered render. */
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

/* Ranges of CoC with a depth-edge margin of their own (sd_edge_margin). */
#define SD_EDGE_RANGES 32

/* The inputs of the entries stage: the image (3 channels), its CoC and matte (H*W contiguous;
 * matte may be NULL), and the thread count. */
typedef struct {
    int H, W;
    sd_cview img;
    const float *coc, *matte;
    int nt;
    /* the CoC difference that marks a depth edge, per range of CoC (sd_edge_margin_at) */
    float edge_margin[SD_EDGE_RANGES], edge_lo, edge_scale;
    int edge_uniform; /* whether every range's margin is edge_margin[0] */
} sd_frame;

/* The range of CoC c (the first for a CoC below the smallest, or a NaN; the last for one above
 * the largest). */
static inline int sd_edge_range(const sd_frame *f, float c)
{
    float t = (c - f->edge_lo) * f->edge_scale;
    return t > 0.0f ? (t < (float)(SD_EDGE_RANGES - 1) ? (int)t : SD_EDGE_RANGES - 1) : 0;
}

/* The depth-edge margin of a pixel of CoC c. */
static inline float sd_edge_margin_at(const sd_frame *f, float c) { return f->edge_margin[sd_edge_range(f, c)]; }

static inline const float *sd_frame_px(const sd_frame *f, int y, int x)
{
    return f->img.data + (ptrdiff_t)y * f->img.row + (ptrdiff_t)x * f->img.pix;
}

/* A pixel px that the matte covers by a (oma = 1 - a), with `oth` the colour of what lies
 * around the subject: the subject's premultiplied colour s is what is left of the pixel once the
 * surroundings' share oma * oth is taken off, kept within [0, pixel] so neither part holds
 * negative light; the rest r is the remainder, so the two add up to the pixel. */
static inline void sd_split_parts(const float *px, float oma, const float *oth, float s[3], float r[3])
{
    for (int k = 0; k < 3; k++) {
        float v = px[k];
        float t = v - oma * oth[k];
        float hi = v >= 0.0f ? v : 0.0f;
        t = t > 0.0f ? t : 0.0f;
        t = t < hi ? t : hi;
        s[k] = t;
        r[k] = v - t;
    }
}

/* Splits the image into entries (see the comment in sd_entries.c for the model). img has 3
 * channels and must outlive e; coc and matte are H*W contiguous; matte may be NULL (no
 * subject). On success *e owns its buffers (sd_entries_free); on failure nothing is left
 * allocated. */
sd_status sd_entries_build(int H, int W, sd_cview img, const float *coc, const float *matte, int nthreads,
                           sd_entries *e);
void sd_entries_free(sd_entries *e);

#endif
