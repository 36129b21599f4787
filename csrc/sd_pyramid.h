/* Pyramid stage: the difference-buffer planes the scatter writes into, one per level, and their
 * resolve (prefix sums, upsampling, folding the margins back in) in sd_pyramid.c; the spread of
 * sources into them (sd_pyr_spread) is the scatter stage, sd_scatter.c. The layered render
 * (sd_render.c) uses the functions only; the structures are shared by sd_pyramid.c and
 * sd_scatter.c. */
#ifndef SD_PYRAMID_H
#define SD_PYRAMID_H

#include <stddef.h>
#include "sd_aperture.h"
#include "sd_core.h"
#include "sd_util.h"

#define SD_PYR_MAX_LEVELS 20
/* Top part of an octave (in log2 radius) that crossfades up a level, and 2^-FADE: where in a
 * level's top radius the crossfade starts. */
#define SD_PYR_FADE 0.25f
#define SD_PYR_FADE_START 0.8408964f

/* A level of the pyramid: difference rows over the frame at this level plus a margin wide
 * enough that nothing spread from inside the frame leaves the plane. Level coordinate 0 is
 * plane cell `o` on both axes. */
typedef struct {
    float *buf;        /* rows x (cols + 2) x 4 floats */
    int rows, cols, o;
    int ny, nx;        /* cells of the frame at this level: ceil(H / 2^k), ceil(W / 2^k) */
    ptrdiff_t stride;  /* floats per row */
    int *xl, *xr;      /* per row, the cells [xl, xr) that may be nonzero (empty: xl >= xr) */
    uint64_t *blocks;  /* per row, bit b: cells [b << bshift, (b + 1) << bshift) may be nonzero (a
                        * footprint's span, or what the resolve put there): the rest of the row is
                        * exactly 0 after the resolve, however far [xl, xr) reaches */
    int bshift;        /* 2^bshift cells a bit: the row's cols + 2 cells in at most 64 bits */
    /* below the top level: per column x, the two cells of the next coarser level its 2x bilinear
     * upsampling reads (up_x[2x], up_x[2x + 1]) and a quarter of their weights (up_w) */
    int *up_x;
    float *up_w;
} sd_plane;

typedef struct sd_pyramid {
    int nlev, H, W;
    float rcap;        /* radii are clamped to this: a blur wider than the frame */
    sd_plane lev[SD_PYR_MAX_LEVELS];
    /* per level, the plane rows [dirty_y0, dirty_y1) and columns [dirty_x0, dirty_x1) that may
     * be nonzero */
    int dirty_y0[SD_PYR_MAX_LEVELS], dirty_y1[SD_PYR_MAX_LEVELS];
    int dirty_x0[SD_PYR_MAX_LEVELS], dirty_x1[SD_PYR_MAX_LEVELS];
    float *rlo, *rhi;  /* per source row of the current spread: its radius range */
    int base;          /* level of the last resolve */
    /* the frame rows [live_y0, live_y1) and columns [live_x0, live_x1) at the base level that
     * hold its result */
    int live_y0, live_y1, live_x0, live_x1;
    int *want; /* per plane row of every level, level after level: the columns [want[2 r],
                * want[2 r + 1]) sd_pyr_want marked for sd_pyr_prefault (NULL once that is done) */
} sd_pyramid;

/* The bits of a row's blocks [b0, b1] (0 <= b0 <= b1 < 64). */
static inline uint64_t sd_block_bits(int b0, int b1)
{
    return (~(uint64_t)0 >> (63 - b1)) & (~(uint64_t)0 << b0);
}

/* Row `row` of the plane may be nonzero in cells [x0, x1) too. */
static inline void sd_plane_touch(sd_plane *l, int row, int x0, int x1)
{
    x0 = x0 > 0 ? x0 : 0;
    x1 = x1 < l->cols + 2 ? x1 : l->cols + 2;
    if (x0 >= x1) return;
    if (x0 < l->xl[row]) l->xl[row] = x0;
    if (x1 > l->xr[row]) l->xr[row] = x1;
    l->blocks[row] |= sd_block_bits(x0 >> l->bshift, (x1 - 1) >> l->bshift);
}

/* The lowest set bit of m (nonzero). */
static inline int sd_lowest_bit(uint64_t m)
{
#if defined(__GNUC__)
    return __builtin_ctzll(m);
#else
    int n = 0;
    while (!(m & 1)) { m >>= 1; n++; }
    return n;
#endif
}

/* The next run of a row's set blocks (bits, 2^shift cells each) at or after block *b, as cells
 * [*x0, *x1) with *x1 at most hi; 0 when none starts before hi. */
static inline int sd_block_run(uint64_t bits, int shift, int *b, int hi, int *x0, int *x1)
{
    if (*b >= 64) return 0;
    uint64_t m = bits & (~(uint64_t)0 << *b);
    if (!m) return 0;
    int s = sd_lowest_bit(m);
    if ((s << shift) >= hi) return 0;
    uint64_t unset = ~m & (~(uint64_t)0 << s);
    int e = unset ? sd_lowest_bit(unset) : 64;
    *b = e;
    *x0 = s << shift;
    *x1 = (e << shift) < hi ? e << shift : hi;
    return 1;
}

/* Plane rows [r0, r1) and columns [c0, c1) of level k may be nonzero. */
void sd_pyr_mark(sd_pyramid *p, int k, int r0, int r1, int c0, int c1);

/* The radius a CoC diameter is spread (or gathered) with: half its magnitude, at most rcap (a
 * blur wider than the frame looks no different; a NaN gets rcap too). */
static inline float sd_radius(float coc, float rcap)
{
    float R = 0.5f * fabsf(coc);
    return R < rcap ? R : rcap;
}

/* The radius cap of an H x W frame. */
static inline float sd_radius_cap(int H, int W) { return 0.5f * (float)(H > W ? H : W) + 1.0f; }

/* Nominal level of radius R (the smallest k with R <= SD_R_MAX 2^k) and the weight that
 * crossfades to the next level up, rising linearly in R over the top SD_PYR_FADE (in log2
 * radius) of the level's octave. No logarithm: this runs for every source of every level. */
static inline int sd_level_of(float R, float *w_up)
{
    *w_up = 0.0f;
    float top = SD_R_MAX;
    int k = 0;
    while (R > top && k < SD_PYR_MAX_LEVELS - 1) {
        top *= 2.0f;
        k++;
    }
    float f0 = top * SD_PYR_FADE_START;
    if (R > f0) {
        float f = (R - f0) / (top - f0);
        *w_up = f < 1.0f ? f : 1.0f;
    }
    return k;
}

/* Weight of level k for radius R when every level finer than `base` is folded into `base`. */
static inline float sd_level_weight(float R, int k, int base)
{
    float up;
    int n = sd_level_of(R, &up);
    if (n < base) return k == base ? 1.0f : 0.0f;
    if (n == k) return 1.0f - up;
    if (n + 1 == k) return up;
    return 0.0f;
}

/* Number of levels needed for radii up to R. */
static inline int sd_levels_for(float R)
{
    float up;
    int k = sd_level_of(R, &up);
    if (up > 0.0f) k++;
    if (k >= SD_PYR_MAX_LEVELS) k = SD_PYR_MAX_LEVELS - 1;
    return k + 1;
}

/* Difference-buffer pyramid for an H x W frame and CoC diameters up to max_coc. NULL on OOM. */
sd_pyramid *sd_pyr_new(int H, int W, float max_coc, int nthreads);
void sd_pyr_free(sd_pyramid *p);
/* Zeroes what the last spread touched; must be called before the next spread. */
void sd_pyr_clear(sd_pyramid *p, int nthreads);
/* sd_pyr_free after clearing what was written: the planes go back to the allocator as zero. */
void sd_pyr_release(sd_pyramid *p, int nthreads);
/* Number of levels, and the level most of a source of radius R is spread at: its nominal level
 * (the coarsest whose nominal radius R / 2^k stays at least half of SD_R_MAX), or the next one up
 * once the crossfade to that is past half. */
int sd_pyr_levels(const sd_pyramid *p);
int sd_level_mostly(float R);

/* Sources on the grid of level `base` (cells of 2^base x 2^base frame pixels; the frame is
 * ceil(H / 2^base) x ceil(W / 2^base) cells): src holds each cell's light (up to 4 channels, the
 * missing ones read as 0) times `scale`, coc its signed CoC diameter in frame pixels, pos (NULL:
 * cell centres) the offset of its light centroid from the cell centre in cells (2 floats per cell,
 * row stride 2 * coc_row). Spreads the cells of rows [row0, row1) and columns [col0, col1); a
 * source whose radius belongs to a level finer than `base` is spread at `base`. Only the plane
 * rows and columns this can reach are touched, and only those are cleared and resolved later. */
typedef struct {
    sd_cview src;
    float scale;
    const float *coc;
    const float *pos;
    ptrdiff_t coc_row;
    const int *rx0, *rx1; /* NULL, or per base row y the columns [rx0[y], rx1[y]) that hold sources */
    const ptrdiff_t *roff; /* NULL, or cell (x, y) is element roff[y] + x of coc, pos and src (whose
                            * row strides are then unused): rows stored back to back, each only
                            * as wide as its columns [rx0[y], rx1[y]) */
    float dim_light;       /* > 0: a source whose light (channels 0-2 summed) is at most this per
                            * frame pixel has its radius rounded on a grid twice as coarse (see
                            * round_radii in sd_scatter.c); 0: every radius on the fine grid, and
                            * channels never interact (the public scatter) */
} sd_pyr_src;
/* The render's dim_light: no highlight (linear light, r + g + b of at most 1). */
#define SD_DIM_LIGHT 1.0f

/* Index of cell (x, y) of a source grid in its coc array (pos: twice that, src: times pix). */
static inline ptrdiff_t sd_pyr_cell(const sd_pyr_src *s, int x, int y)
{
    return s->roff ? s->roff[y] + x : (ptrdiff_t)y * s->coc_row + x;
}
/* Before the spreads (sd_scatter.c): a spread from level `base` is to come, of sources in rows
 * [row0, row1) and columns [col0, col1), each row y's only in [x0[y], x1[y]) where x0 and x1 are
 * given, with radii up to rmax (frame pixels). sd_pyr_prefault then faults in, where a plane's
 * memory is new (sd_big_prefault), the columns of each plane row that all those spreads can write
 * (their hull), and forgets them. Only the time and the resident memory change: what is not
 * marked faults in when it is first written, what is marked and never written stays resident. */
void sd_pyr_want(sd_pyramid *p, int base, int row0, int row1, const int *x0, const int *x1, int col0, int col1,
                 float rmax);
void sd_pyr_prefault(sd_pyramid *p, int nthreads);
/* The scatter stage (sd_scatter.c). tables (or NULL: tables of the call's own) holds a footprint
 * table (sd_footprint_table_new) per thread of the call, for a caller that spreads many times
 * with one aperture: each thread then makes a footprint once, not once per spread. */
sd_status sd_pyr_spread(sd_pyramid *p, int base, const sd_pyr_src *s, const sd_aperture *ap,
                        sd_footprint_table *const *tables, int row0, int row1, int col0, int col1, int nthreads);

/* Prefix-sums every level at or above `base` and folds the coarser ones into it; afterwards
 * sd_pyr_row(p, y) points at the RGBA light (per base cell) of row y of the base level's frame,
 * and only rows [y0, y1) and columns [x0, x1) of sd_pyr_active hold anything. */
void sd_pyr_resolve(sd_pyramid *p, int base, int nthreads);
/* The same with the margins' treatment chosen: fold = 0 leaves what was spread past the frame's
 * edges in the margins (nothing is live then: the pyramid is only read as `drop` by another);
 * drop (NULL: none), a pyramid of the same geometry resolved at `base` without folding, has what
 * it holds in its margins taken out of p's before they are folded back in. */
void sd_pyr_resolve_border(sd_pyramid *p, int base, int fold, const sd_pyramid *drop, int nthreads);
void sd_pyr_active(const sd_pyramid *p, int *y0, int *y1, int *x0, int *x1);
/* Within that, the frame cells [*x0, *x1) of row y that hold anything. */
void sd_pyr_row_span(const sd_pyramid *p, int y, int *x0, int *x1);
float *sd_pyr_row(sd_pyramid *p, int y);
/* The blocks of base row y that may hold anything (sd_plane's blocks; every other cell of the
 * row is exactly 0), their 2^*shift plane cells each; frame cell x is plane cell x + *o. */
uint64_t sd_pyr_row_blocks(const sd_pyramid *p, int y, int *shift, int *o);

#endif
