/* Internal interface of the layered render (sd_render.c): its state, shared with the stages it
 * runs per slice: the slice planning (sd_slices.c) and the slice's layer (sd_layer.c). */
#ifndef SD_RENDER_H
#define SD_RENDER_H

#include <stddef.h>
#include "sd_core.h"
#include "sd_entries.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"

/* Coarsest grid a slice is built on (cells of 32 x 32 pixels: blurs over ~600 px wide). */
#define SD_MAX_SLICE_LEVEL 5

typedef struct {
    int y0, y1, x0, x1; /* frame rows and columns [y0, y1) x [x0, x1) */
} sd_box;

static inline int sd_box_empty(sd_box b) { return b.y0 >= b.y1 || b.x0 >= b.x1; }

typedef struct {
    float lo, mid, hi; /* the slice's tent */
    float slo, shi;    /* its slopes on either side (0 towards an infinite neighbour) */
    int has_occ;
    float c1, s12;     /* occluders: CoC below c1, the ramp 1 / (c1 - c2) up to full at c2 */
    int k;             /* level */
    int cy0, cy1, cx0, cx1; /* the bounding box of the cells built */
    const int *cell_x0, *cell_x1; /* per cell row cy, the cells [cell_x0[cy], cell_x1[cy]) built */
    const ptrdiff_t *cell_off;    /* ... stored back to back: cell (cx, cy) is element cell_off[cy] + cx */
    int holes;                    /* whether nearer slices hide part of it */
    int fill_reach;               /* pixels from any cell not wholly hidden beyond which a hidden cell's
                                     fill cannot show (the slice's reach and the blur of what hides it;
                                     see fill_blocks in sd_layer.c) */
} sd_slice;

/* An entry within SD_SLICE_SNAP of the spacing from a slice's centre goes to that slice alone;
 * between two centres the share crossfades over the middle half of the gap. Every entry is spread
 * with its own CoC whichever slice holds it, so this only makes the compositing order a quarter
 * of a spacing coarser; but the pixels of a noisy surface, scattered around the centre snapped
 * onto its mode, carry light in one slice instead of two, and the scatter skips a cell without
 * light. (The slices' boxes still span both intervals around their centres (sd_slices.c): the
 * hole fills run on them, and boxes narrowed to the shares moved the fills: -2.6 dB on the
 * occluder scene with a network's depth.) */
#define SD_SLICE_SNAP 0.25f

/* The share of a slice whose tent (1 at its centre, 0 at the neighbouring centres) is t. */
static inline float sd_slice_share(float t)
{
    t = (t - SD_SLICE_SNAP) * (1.0f / (1.0f - 2.0f * SD_SLICE_SNAP));
    return t > 0.0f ? (t < 1.0f ? t : 1.0f) : 0.0f;
}

/* The tent of slice s at CoC c (its slopes precomputed). */
static inline float sd_slice_tent(const sd_slice *s, float c)
{
    return c >= s->mid ? 1.0f - (c - s->mid) * s->shi : 1.0f - (s->mid - c) * s->slo;
}

/* The share of an entry of CoC c that goes to slice s. */
static inline float sd_slice_weight(const sd_slice *s, float c) { return sd_slice_share(sd_slice_tent(s, c)); }

/* Hidden fraction of its pixel that an entry of CoC c and coverage a contributes to slice s. */
static inline float sd_slice_hides(const sd_slice *s, float c, float a)
{
    if (!s->has_occ || !(c < s->c1)) return 0.0f;
    float f = (s->c1 - c) * s->s12;
    return a * (f < 1.0f ? f : 1.0f);
}

typedef struct {
    int H, W, ns, ni, nt; /* ns slices, ni = 2 ns + 1 bins of the CoC axis */
    const sd_entries *e;
    const float *cent;
    const sd_aperture *ap;
    const float *plate;
    /* where each bin (see coc_bin in sd_slices.c) has entries: per (bin, row) columns [x0, x1) and radius range */
    int *bin_x0, *bin_x1;
    float *bin_rlo, *bin_rhi;
    /* the current slice at its level: cells of 2^k x 2^k frame pixels */
    float *layer;  /* cells x 4: mean premultiplied colour + coverage per frame pixel */
    float *lcoc;   /* cells: coverage-weighted CoC of the content */
    float *hole;   /* cells: mean fraction hidden by nearer slices */
    float *pos;    /* cells x 2: light centroid offset from the cell centre, in cells (k > 0) */
    float *fillws;
    sd_pyramid *pyr;
    /* full-resolution accumulation */
    sd_view out;   /* accumulates the visible premultiplied colour ... */
    float *acc;    /* ... and this its coverage */
    float *last;   /* the share of it of the latest slice with coverage here */
    unsigned char *stamp; /* that slice's index + 1 (0: none; see MAX_STAMPED_SLICES) */
    float *rowbuf; /* per thread: a row of a coarse slice, vertically then fully interpolated */
    int *content_x0, *content_x1; /* per frame row: the slice's content columns ... */
    int *reach_x0, *reach_x1;     /* ... and those grown by its reach */
    sd_slice *plan;              /* every slice, planned before the first is built */
    ptrdiff_t *ncells;          /* ... the cells each builds */
    int *cell_x0, *cell_x1;     /* per slice and cell row of its level: the cells built */
    ptrdiff_t *cell_off;        /* ... and their rows' offsets in the slice buffers */
    unsigned char *bright;      /* per cell row of the current slice: whether a cell is brighter than
                                   white (sd_any_bright), set by its build and its fill */
    int *fill_x0, *fill_x1;     /* the current slice's cells relative to its fill's grid ... */
    ptrdiff_t *fill_off;        /* ... and their rows' offsets in the slice buffers */
    int border;    /* SD_BORDER_WINDOW or SD_BORDER_MIRROR */
    float max_coc; /* the largest |CoC| the pyramids are made for */
    ptrdiff_t max_cells; /* the most cells any slice builds */
    sd_pyramid *xpyr; /* the window's isolated highlights near the edges (sd_window.c), made on first use */
    sd_footprint_table *fps[SD_MAX_THREADS]; /* per thread: the footprints the render's spreads made */
    float *xlayer;    /* ... their light per cell, laid out as layer (in fillws: the two are used one after the other) */
    sd_box *drawn;    /* per slice: the frame box its composite covered (empty: none yet) */
    struct sd_hl_source *hl; /* the current slice's highlights seen past blurred nearer content ... */
    ptrdiff_t nhl, hl_cap;   /* ... how many, and room for (sd_highlight.c) */
    double *frame_light;     /* the image's light over blocks of pixels, made on first use (sd_highlight.c) */
    int *colidx;   /* per frame column: the coarse cell left of it and its interpolation weight */
    float *colw;
    ptrdiff_t rowbuf_stride;
} sd_render_ctx;

/* The horizontal interpolation of a level-k slice onto the frame columns of box sb, kept in
 * r->colidx and r->colw: frame column x takes (1 - colw[x]) of cell colidx[x] of a row from
 * sd_render_row and colw[x] of the next. */
void sd_render_columns(sd_render_ctx *r, int k, sd_box sb);

/* Frame row y of pyramid p (resolved at level k) as RGBA light, and the frame columns [*xa, *xb)
 * of box sb where it has any. At level 0 the pyramid's own row, per frame pixel; above, the
 * calling thread's buffer holding the row interpolated down the rows, per cell, to be
 * interpolated across the columns with sd_render_columns' weights. */
const float *sd_render_row(const sd_render_ctx *r, sd_pyramid *p, int k, sd_box sb, int y, int *xa, int *xb);

/* The layered composite of sd_render over given entries and slice centres (descending, from
 * sd_slice_centres). */
sd_status sd_render_entries(const sd_entries *e, const float *centres, int nslices, const sd_aperture *ap,
                            const float *plate, int border, sd_view out, int nthreads, const sd_cancel *cancel);

#endif
