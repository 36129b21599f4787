/* Internal interface of the push-pull fill (sd_fill.c), shared with the layered render. */
#ifndef SD_FILL_H
#define SD_FILL_H

#include <stddef.h>
#include "sd_util.h"

#define SD_FILL_MAX_LEVELS 32

/* A cell visible by less than this counts as hidden (no weight): its premultiplied colour
 * divided by so small a fraction would mostly be rounding error. */
#define SD_FILL_MIN_VISIBLE 1e-3f

/* The coarse levels (1 and up) of a push-pull pyramid over an H x W grid, in a caller-owned
 * workspace: after sd_fill_build, level 1 holds the filled values everywhere, and the fill of a
 * level-0 cell is sd_fill_sample's bilinear interpolation of it. */
typedef struct {
    int n, nch;
    int H[SD_FILL_MAX_LEVELS], W[SD_FILL_MAX_LEVELS];
    float *v[SD_FILL_MAX_LEVELS]; /* H * W * nch normalised values (level 0: unused) */
    float *w[SD_FILL_MAX_LEVELS]; /* H * W weights in [0, 1] */
} sd_fillpyr;

/* Where a caller needs the fill: blocks of SD_FILL_BLOCK x SD_FILL_BLOCK level-0 cells (the
 * same blocks hold half as many cells per side at level 1, a quarter at level 2), a byte per
 * block, bw blocks per row. The push and the relaxation of level j (1 or 2) run only on the blocks
 * set in on[j]; the other levels run everywhere. The fill is the unmasked one wherever the cells
 * it is read at lie SD_FILL_PUSH_MARGIN blocks inside on[1], and those inside SD_FILL_PUSH_MARGIN2
 * blocks inside on[2] (the relaxation's sweeps and the push's interpolation carry values that far). */
#define SD_FILL_BLOCK 8
#define SD_FILL_PUSH_MARGIN 3
#define SD_FILL_PUSH_MARGIN2 5
/* pulled (or NULL: every block) holds the blocks whose cells are pulled at levels 1 and 2. Every
 * other block must be uniform at level 0: its cells all seen and empty (outside the rows' ranges:
 * weight 1, value 0; empty set for it) or all without weight (hidden: weight 0; empty clear).
 * Such a block's pull is then the same at every level, so its level-3 cell is set to that and its
 * level-1 and level-2 cells are left undefined. The push and the relaxation read levels 1 and 2
 * no farther than a block outside on[2], so pulled must hold on[2] grown by a block. */
typedef struct {
    const unsigned char *on[3]; /* on[1], on[2]: per block */
    const unsigned char *pulled, *empty;
    int bw;
} sd_fill_mask;

/* Floats of workspace sd_fill_build needs for an H x W grid of nch channels. */
size_t sd_fill_ws_floats(int H, int W, int nch);

/* Level 0 is given either as normalised values with weights (hole == NULL: value, weight) or, for
 * the render, as premultiplied values with the fraction hidden (weight == NULL: value holds
 * colour times visible fraction, hole the hidden fraction; fractions visible below
 * SD_FILL_MIN_VISIBLE count as no weight). Rows of value are vrow floats apart, of weight/hole
 * mrow. With hole and nch == 4, rx0/rx1 (or NULL) limit row y to cells [rx0[y], rx1[y]): the
 * others count as seen and empty; roff (or NULL) then places cell (x, y) at element roff[y] + x
 * of hole (times nch of value), the rows stored back to back. mask (or NULL: everywhere) limits
 * levels 1 and 2 to the blocks a caller reads the fill in (nch == 4 only). */
void sd_fill_build(sd_fillpyr *f, float *ws, int H, int W, int nch, const float *value, ptrdiff_t vrow,
                   const float *weight, const float *hole, ptrdiff_t mrow, const int *rx0, const int *rx1,
                   const ptrdiff_t *roff, const sd_fill_mask *mask, int nthreads);

/* sd_fill_build in two halves, for a caller that pulls level 1 itself: the levels laid out in
 * the workspace, then (after f->v[1] and f->w[1] are written) the coarser levels pulled and the
 * fill pushed back down to level 1. */
void sd_fill_layout(sd_fillpyr *f, float *ws, int H, int W, int nch);
void sd_fill_finish(sd_fillpyr *f, const sd_fill_mask *mask, int nthreads);

/* The coarse levels' fill at level-0 cell (x, y), nch values (n >= 2 levels only). */
void sd_fill_sample(const sd_fillpyr *f, int x, int y, float *out);
void sd_fill_sample4(const sd_fillpyr *f, int x, int y, float *out); /* nch == 4 */
/* sd_fill_sample4 cell by cell along row y (nch == 4, n >= 2 levels), for a caller that needs
 * only some of a row's cells: sd_fill_row_at(&row, x, out) after sd_fill_row_of(f, y). */
typedef struct {
    const float *ra, *rb; /* the two level-1 rows around row y, and the weight of rb */
    float wy;
    int cW;
} sd_fill_row;

static inline sd_fill_row sd_fill_row_of(const sd_fillpyr *f, int y)
{
    int ya, yb, cW = f->W[1];
    float wy;
    sd_lerp_half(y, f->H[1], &ya, &yb, &wy);
    sd_fill_row r = {f->v[1] + 4 * (ptrdiff_t)ya * cW, f->v[1] + 4 * (ptrdiff_t)yb * cW, wy, cW};
    return r;
}

/* The largest of channel 3 over the 4 level-1 cells sd_fill_row_at interpolates at x: a bound of
 * what it gives in that channel (bilinear weights lie in [0, 1]), less costly to take. */
static inline float sd_fill_row_max3(const sd_fill_row *r, int x)
{
    int xa, xb;
    float wx;
    sd_lerp_half(x, r->cW, &xa, &xb, &wx);
    float a = r->ra[4 * xa + 3], b = r->ra[4 * xb + 3], e = r->rb[4 * xa + 3], g = r->rb[4 * xb + 3];
    a = a > b ? a : b;
    e = e > g ? e : g;
    return a > e ? a : e;
}

static inline void sd_fill_row_at(const sd_fill_row *r, int x, float *restrict out)
{
    int xa, xb;
    float wx;
    sd_lerp_half(x, r->cW, &xa, &xb, &wx);
    sd_cell_bilerp(out, r->ra + 4 * xa, r->ra + 4 * xb, r->rb + 4 * xa, r->rb + 4 * xb, wx, r->wy);
}

#endif
