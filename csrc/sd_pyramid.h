/* Internal interface of the spreading pyramid (sd_spread.c), shared with the layered render. */
#ifndef SD_PYRAMID_H
#define SD_PYRAMID_H

#include "sd_core.h"

/* Largest radius (pixels) spread at one level; a larger CoC goes to a coarser level, where a
 * 2^k x 2^k block of sources is merged into one and spread with radius R / 2^k, so the cost per
 * source never exceeds ~2 R_MAX rows whatever the blur. The coarse result is upsampled back;
 * its edge softness (~2^k px) stays below a tenth of the radius. */
#define SD_R_MAX 24.0f

typedef struct sd_pyramid sd_pyramid;

/* Difference-buffer pyramid for an H x W frame and CoC diameters up to max_coc. NULL on OOM. */
sd_pyramid *sd_pyr_new(int H, int W, float max_coc, int nthreads);
void sd_pyr_free(sd_pyramid *p);
/* Zeroes what the last spread touched; must be called before the next spread. */
void sd_pyr_clear(sd_pyramid *p, int nthreads);
/* sd_pyr_free after clearing what was written: the planes go back to the allocator as zero. */
void sd_pyr_release(sd_pyramid *p, int nthreads);
/* The largest |v| of an H x W map with rows `row` floats apart (NaN left out; 0 if none). */
float sd_max_abs(int H, int W, const float *v, ptrdiff_t row, int nthreads);
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
} sd_pyr_src;

/* Index of cell (x, y) of a source grid in its coc array (pos: twice that, src: times pix). */
static inline ptrdiff_t sd_pyr_cell(const sd_pyr_src *s, int x, int y)
{
    return s->roff ? s->roff[y] + x : (ptrdiff_t)y * s->coc_row + x;
}
sd_status sd_pyr_spread(sd_pyramid *p, int base, const sd_pyr_src *s, const sd_aperture *ap, int row0, int row1,
                        int col0, int col1, int nthreads);

/* Prefix-sums every level at or above `base` and folds the coarser ones into it; afterwards
 * sd_pyr_row(p, y) points at the RGBA light (per base cell) of row y of the base level's frame,
 * and only rows [y0, y1) and columns [x0, x1) of sd_pyr_active hold anything. */
void sd_pyr_resolve(sd_pyramid *p, int base, int nthreads);
void sd_pyr_active(const sd_pyramid *p, int *y0, int *y1, int *x0, int *x1);
/* Within that, the frame cells [*x0, *x1) of row y that hold anything. */
void sd_pyr_row_span(const sd_pyramid *p, int y, int *x0, int *x1);
float *sd_pyr_row(sd_pyramid *p, int y);

#endif
