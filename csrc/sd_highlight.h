/* Internal interface of the highlights seen past blurred nearer content (sd_highlight.c), a step
 * of the layered render. */
#ifndef SD_HIGHLIGHT_H
#define SD_HIGHLIGHT_H

#include <stddef.h>
#include "sd_render.h"

/* A cell brighter than SD_HIGHLIGHT_OVER_MEAN times the mean of its blur's neighbourhood is an
 * isolated highlight (sd_window.c uses the same rule), if it is also brighter than white:
 * r + g + b above SD_HIGHLIGHT_MIN_LIGHT per unit of coverage. (An edge's few pixels in a slice
 * of their own, where a blurred depth map spreads an edge over the slices between its two sides,
 * are brighter than four times the mean of a neighbourhood they hardly fill, and are no light.) */
#define SD_HIGHLIGHT_OVER_MEAN 4.0f
#define SD_HIGHLIGHT_MIN_LIGHT 3.0f

/* Whether a cell's premultiplied light + coverage l is brighter than white, which every highlight
 * is: a slice's cell rows without such a cell hold no highlight, and the highlight means need not
 * be taken over them. */
static inline int sd_is_bright(const float *l)
{
    return l[0] + l[1] + l[2] > SD_HIGHLIGHT_MIN_LIGHT * l[3];
}

/* Whether a cell's premultiplied light + coverage l is an isolated highlight where the mean
 * light (r + g + b) around is m. */
static inline int sd_is_highlight(const float *l, float m)
{
    return l[0] + l[1] + l[2] > SD_HIGHLIGHT_OVER_MEAN * m && sd_is_bright(l);
}

/* Whether any of the n cells from l (light + coverage each) is brighter than white. */
static inline int sd_any_bright(const float *l, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++) any |= sd_is_bright(l + 4 * (ptrdiff_t)i);
    return any;
}

/* Whether any of the slice's cell rows [y0, y1) has a cell brighter than white (bright: per cell
 * row, sd_render_ctx's). */
static inline int sd_rows_bright(const unsigned char *bright, int y0, int y1)
{
    for (int y = y0; y < y1; y++)
        if (bright[y]) return 1;
    return 0;
}

/* Blocks of B x B cells of a grid of rows x cols cells (bh x bw of them), and the blocks around
 * each that make its neighbourhood: those within `reach` blocks. */
typedef struct {
    int B, bh, bw, reach;
} sd_hl_blocks;

/* The blocks of block (by, bx)'s neighbourhood, [*ya, *yb) x [*xa, *xb), and its area in cells. */
static inline double sd_hl_around(const sd_hl_blocks *g, int rows, int cols, int by, int bx, int *ya, int *yb,
                                  int *xa, int *xb)
{
    *ya = by - g->reach > 0 ? by - g->reach : 0;
    *xa = bx - g->reach > 0 ? bx - g->reach : 0;
    *yb = by + g->reach + 1 < g->bh ? by + g->reach + 1 : g->bh;
    *xb = bx + g->reach + 1 < g->bw ? bx + g->reach + 1 : g->bw;
    int h = (*yb * g->B < rows ? *yb * g->B : rows) - *ya * g->B;
    int w = (*xb * g->B < cols ? *xb * g->B : cols) - *xa * g->B;
    return (double)h * (double)w;
}

/* The mean light (r + g + b) per cell over each block's neighbourhood (the blocks within radius
 * cells of it; B is half the radius, at least 8) of a grid of rows x cols cells whose row y holds
 * the cells [x0[y], x1[y]) (grid column x - c0) at layer + 4 (off[y] + x); cells not held count
 * as dark. Returns the means (row by * bw + bx) and sets *g and *peak_out (each block's brightest
 * cell's r + g + b: no cell of a block whose peak is at most SD_HIGHLIGHT_OVER_MEAN times its
 * mean is a highlight; then, bh * bw floats on, that cell's colour, r + g + b per unit of
 * coverage, in the blocks whose peak exceeds that, 0 in the others), or NULL on OOM; the caller
 * frees both. With `bright` (per row: whether it holds a cell brighter than white, or NULL: any
 * may), only the blocks within reach of a bright row's get their mean, exactly as without it, and
 * the peak's colour where it exceeds that; the others' mean is infinite (no highlight there), and
 * only the blocks their means sum over are read. */
float *sd_highlight_means(const float *layer, int rows, int cols, int c0, const int *x0, const int *x1,
                          const ptrdiff_t *off, const unsigned char *bright, float radius, int nt, sd_hl_blocks *g,
                          float **peak_out);

/* A cell isolated in its slice may still lie in a part of the frame as bright as it: a surface
 * of one colour brighter than white that the slice holds only a patch of stands out against the
 * slice's empty cells, which count as dark. So a highlight must also outshine the frame around
 * it: a block of the means of sd_highlight_means (g, over a grid of rows x cols cells of level k
 * whose first is cell (oy, ox) of the frame) can hold one only if the colour of a block peak of
 * its neighbourhood (of the blocks that may hold one) exceeds SD_HIGHLIGHT_OVER_MEAN times the
 * image's mean light over the same frame pixels (colour, not light: a light split between two
 * slices is as bright in both; its neighbourhood's: a light's dim rim takes its core's); the
 * mean of the other blocks is made infinite (no cell there is a highlight). A constant image has
 * no highlights. Returns 1 if a block can still hold one, 0 if none, -1 on OOM. */
int sd_highlight_frame(sd_render_ctx *r, int k, int oy, int ox, int rows, int cols, const sd_hl_blocks *g,
                       float *mean, const float *peak);

/* Finds slice si's isolated highlights whose blur reaches nearer content blurred relative to them
 * and lists their excess over their neighbourhood's mean as sources in r->hl (r->nhl of them).
 * Returns 1 if there are any, 0 if none, -1 on OOM. Call once the slice's layer is built and
 * filled, before its composite. */
int sd_highlight_find(sd_render_ctx *r, int si);

/* Adds to r->out, for each pixel of each source's disk, its light times the visibility of the
 * ray from the source through the pixel less the visibility the slice's composite will give it
 * (from r->acc, r->last and r->stamp: call before that composite). */
void sd_highlight_composite(sd_render_ctx *r, int si);

#endif
