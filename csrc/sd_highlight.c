/* Highlights seen past blurred nearer content: a step of the layered render (sd_render.c), run
 * per slice between its resolve and its composite.
 *
 * Each point of a light's disk is seen through one point of the aperture. Where a nearer
 * occluder crosses those rays the disk loses a strip, the occluder's own outline scaled into the
 * disk by g = c_L / (c_L - c_O) (c_L the light's signed CoC, c_O the occluder's), and keeps its
 * full brightness everywhere else. The composite dims a slice by the nearer slices' blurred
 * coverage instead: right for a surface (each point of its blur averages over the whole
 * aperture), wrong for a light much smaller than its blur, whose whole disk then comes out as dim
 * as the occluder is translucent (a light beside a railing's blurred bar loses a quarter of its
 * peak). The render knows what the lens needs for those rays: the ray from a light at s
 * through pixel p of its disk crosses the plane of a nearer surface of CoC c_O where the pinhole
 * image shows s + g (p - s), g = (c_L - c_O) / c_L.
 *
 * So a slice's isolated highlights (a cell brighter than four times the mean of its blur's
 * neighbourhood, as for the window border, sd_window.c) whose blur reaches a nearer slice that is
 * blurred relative to them (sd_highlight_find) have their excess over that mean drawn again, a
 * disk per cell at full resolution, with the visibility of each ray in place of the composite's
 * (sd_highlight_composite, before the slice's composite: it adds the difference). A ray is hidden
 * by the entries of its own pixel that hide the slice, in proportion to how sharp they are
 * relative to the light (for them s + g (p - s) is about p), and by the content of each blurred
 * nearer slice at the point where it crosses that slice's CoC. The disk keeps its full
 * brightness beside the occluder and loses the light the lens loses; cells whose blur reaches
 * past the frame's edges are left to the border's treatment. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_aperture.h"
#include "sd_entries.h"
#include "sd_highlight.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_render.h"
#include "sd_slices.h"
#include "sd_util.h"

/* Disks of a smaller radius (frame pixels) keep their peak under any coverage: left alone. */
#define HIGHLIGHT_MIN_RADIUS 2.0f
/* The neighbourhood's mean is taken on blocks of half the blur's radius, at least this many
 * cells wide: one pass over the cells, whatever the radius. */
#define HIGHLIGHT_BLOCK_MIN 8
/* How sharp a nearer surface is relative to a light, by |g| = |c_L / (c_L - c_O)|: fully from
 * SHARP_SCALE_FULL, not at all below SHARP_SCALE_NONE. */
#define SHARP_SCALE_FULL 0.8f
#define SHARP_SCALE_NONE 0.5f

/* One isolated highlight cell: its excess light, centre (frame pixels), CoC and radius, the
 * rows its footprint covers ([top, bot], the frame rows [y0, y1)) and 1 / its area. */
typedef struct sd_hl_source {
    float light[3];
    float cx, cy, coc, R, top, bot, inv_area;
    int y0, y1;
} sd_hl_source;

/* How much a nearer surface of CoC co hides a light of CoC cl where it covers a pixel. */
static inline float sharp_weight(float cl, float co)
{
    float a = fabsf(cl), d = fabsf(cl - co);
    if (a >= SHARP_SCALE_FULL * d) return 1.0f;
    if (a <= SHARP_SCALE_NONE * d) return 0.0f;
    return (a / d - SHARP_SCALE_NONE) / (SHARP_SCALE_FULL - SHARP_SCALE_NONE);
}

/* The smaller and the larger of two numbers that are not NaN (fminf and fmaxf are library calls
 * where NaNs must be handled: a call per pixel of a highlight's disk). */
static inline float min_finite(float a, float b) { return a < b ? a : b; }
static inline float max_finite(float a, float b) { return a > b ? a : b; }

/* The light (r + g + b) of cell x of row l. */
static inline float cell_light(const float *l, int x) { return l[4 * x] + l[4 * x + 1] + l[4 * x + 2]; }

/* Adds the light of cells [xa, xb) of row l to *sum, in order, and raises *top to their
 * brightest (four cells a step: the loop's own instructions were a third of the means'). */
static inline void run_light(const float *l, int xa, int xb, float *sum, float *top)
{
    float s = *sum, t = *top;
    int x = xa;
    for (; x + 3 < xb; x += 4) {
        float a = cell_light(l, x), b = cell_light(l, x + 1), c = cell_light(l, x + 2), d = cell_light(l, x + 3);
        s += a;
        s += b;
        s += c;
        s += d;
        t = a > t ? a : t;
        t = b > t ? b : t;
        t = c > t ? c : t;
        t = d > t ? d : t;
    }
    for (; x < xb; x++) {
        float a = cell_light(l, x);
        s += a;
        t = a > t ? a : t;
    }
    *sum = s;
    *top = t;
}

/* Per block row of g: whether its means are wanted (near[by], within reach of a block row with a
 * bright row) and whether its blocks' light is (near[bh + by], within twice the reach: the means
 * sum over those). */
static void near_bright(const sd_hl_blocks *g, int rows, const unsigned char *bright, unsigned char *near)
{
    const int bh = g->bh, n = g->reach;
    for (int by = 0; by < bh; by++) {
        int lit = 0;
        for (int y = by * g->B; y < imin((by + 1) * g->B, rows) && !lit; y++) lit = bright[y];
        if (!lit) continue;
        for (int j = imax(by - 2 * n, 0); j < imin(by + 2 * n + 1, bh); j++) {
            near[bh + j] = 1;
            if (j >= by - n && j <= by + n) near[j] = 1;
        }
    }
}

float *sd_highlight_means(const float *layer, int rows, int cols, int c0, const int *x0, const int *x1,
                          const ptrdiff_t *off, const unsigned char *bright, float radius, int nt, sd_hl_blocks *g,
                          float **peak_out)
{
    const int w = imax(sd_iceil(radius), 1), B = imax(w / 2, HIGHLIGHT_BLOCK_MIN);
    *g = (sd_hl_blocks){B, (rows + B - 1) / B, (cols + B - 1) / B, (w + B - 1) / B};
    const int bh = g->bh, bw = g->bw;
    const size_t nb = (size_t)bh * (size_t)bw;
    double *blk = calloc(nb, sizeof(double));
    float *mean = malloc(nb * sizeof(float)), *peak = calloc(2 * nb, sizeof(float)); /* then the peaks' colours */
    unsigned char *near = calloc(2 * (size_t)bh, 1);
    if (!blk || !mean || !peak || !near) {
        free(blk);
        free(mean);
        free(peak);
        free(near);
        return NULL;
    }
    if (bright) near_bright(g, rows, bright, near);
    else memset(near, 1, 2 * (size_t)bh);
    SD_PARALLEL_FOR_DYN(nt)
    for (int by = 0; by < bh; by++) {
        if (!near[bh + by]) continue; /* no mean wanted reads its light */
        double *brow = blk + (ptrdiff_t)by * bw;
        float *prow = peak + (ptrdiff_t)by * bw;
        for (int y = by * B; y < imin((by + 1) * B, rows); y++) {
            const float *l = layer + 4 * off[y];
            for (int bx = (x0[y] - c0) / B; bx * B + c0 < x1[y]; bx++) {
                float sum = 0.0f, top = prow[bx];
                run_light(l, imax(x0[y], c0 + bx * B), imin(x1[y], c0 + (bx + 1) * B), &sum, &top);
                brow[bx] += (double)sum;
                prow[bx] = top;
            }
        }
    }
    /* the sums over each block's neighbourhood: along the rows, then down the columns */
    double *across = malloc(nb * sizeof(double));
    if (!across) {
        free(blk);
        free(mean);
        free(peak);
        free(near);
        return NULL;
    }
    const int n = g->reach;
    /* the passes over the blocks (not their cells) take one thread unless the blocks are many:
     * a few blocks are summed before a sleeping second thread would wake */
    const int nt_blocks = sd_threads_for(nt, (ptrdiff_t)nb);
    SD_PARALLEL_FOR(nt_blocks)
    for (int by = 0; by < bh; by++) {
        const double *b = blk + (ptrdiff_t)by * bw;
        double *a = across + (ptrdiff_t)by * bw, sum = 0.0;
        for (int i = 0; i < imin(n, bw); i++) sum += b[i];
        for (int bx = 0; bx < bw; bx++) {
            if (bx + n < bw) sum += b[bx + n];
            a[bx] = sum;
            if (bx - n >= 0) sum -= b[bx - n];
        }
    }
    SD_PARALLEL_FOR(nt_blocks)
    for (int by = 0; by < bh; by++) {
        float *m = mean + (ptrdiff_t)by * bw;
        if (!near[by]) { /* no cell within reach is brighter than white: none is a highlight */
            for (int bx = 0; bx < bw; bx++) m[bx] = INFINITY;
            continue;
        }
        for (int bx = 0; bx < bw; bx++) {
            int ya, yb, xa, xb;
            double area = sd_hl_around(g, rows, cols, by, bx, &ya, &yb, &xa, &xb), sum = 0.0;
            for (int j = ya; j < yb; j++) sum += across[(ptrdiff_t)j * bw + bx];
            m[bx] = (float)(sum / area);
        }
    }
    /* the colour of the peak of each block that may hold a highlight (few: a second look) */
    SD_PARALLEL_FOR_DYN(nt_blocks)
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            ptrdiff_t b = (ptrdiff_t)by * bw + bx;
            if (!(peak[b] > SD_HIGHLIGHT_OVER_MEAN * mean[b])) continue;
            for (int y = by * B; y < imin((by + 1) * B, rows) && peak[nb + b] == 0.0f; y++) {
                const float *l = layer + 4 * off[y];
                for (int x = imax(x0[y], c0 + bx * B); x < imin(x1[y], c0 + (bx + 1) * B); x++) {
                    const float *q = l + 4 * x;
                    if (q[0] + q[1] + q[2] != peak[b]) continue;
                    peak[nb + b] = q[3] > 0.0f ? peak[b] / q[3] : INFINITY;
                    break;
                }
            }
        }
    free(across);
    free(blk);
    free(near);
    *peak_out = peak;
    return mean;
}

/* The image's light is summed over blocks of FRAME_BLOCK x FRAME_BLOCK pixels (r->frame_light). */
#define FRAME_BLOCK 4
_Static_assert(FRAME_BLOCK % 4 == 0, "a block's row of pixels is read as vectors of 4 floats");

/* Makes r->frame_light, once per render: a summed-area table of the image's light (r + g + b)
 * over blocks of FRAME_BLOCK pixels, (bh + 1) x (bw + 1), entry (by, bx) the blocks above and
 * left of it. Returns 0, or -1 on OOM. */
static int frame_light(sd_render_ctx *r)
{
    if (r->frame_light) return 0;
    const int H = r->H, W = r->W, B = FRAME_BLOCK, bh = (H + B - 1) / B, bw = (W + B - 1) / B, tw = bw + 1;
    const sd_cview img = r->e->img;
    double *P = calloc((size_t)(bh + 1) * (size_t)tw, sizeof(double));
    if (!P) return -1;
    /* the blocks whose pixels are 3 * B contiguous floats a row are summed as vectors */
    const int vec_blocks = img.pix == 3 ? W / B : 0;
    SD_PARALLEL_FOR(r->nt)
    for (int by = 0; by < bh; by++) {
        double *row = P + (ptrdiff_t)(by + 1) * tw + 1;
        const int y0 = by * B, y1 = imin((by + 1) * B, H);
        int bx = 0;
#if defined(__GNUC__)
        for (; bx < vec_blocks; bx++) {
            sd_cell4 v = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int y = y0; y < y1; y++) {
                const float *p = img.data + (ptrdiff_t)y * img.row + (ptrdiff_t)(3 * B) * bx;
                for (int i = 0; i < 3 * B; i += 4) v += sd_cell_load(p + i);
            }
            row[bx] = (double)(v[0] + v[1] + v[2] + v[3]);
        }
#endif
        for (; bx < bw; bx++) {
            float sum = 0.0f;
            for (int y = y0; y < y1; y++) {
                const float *p = img.data + (ptrdiff_t)y * img.row;
                for (int x = bx * B; x < imin((bx + 1) * B, W); x++) {
                    const float *q = p + (ptrdiff_t)x * img.pix;
                    sum += q[0] + q[1] + q[2];
                }
            }
            row[bx] = (double)sum;
        }
    }
    for (int by = 1; by <= bh; by++) {
        double *row = P + (ptrdiff_t)by * tw, acc = 0.0;
        const double *up = row - tw;
        for (int bx = 1; bx <= bw; bx++) {
            acc += row[bx];
            row[bx] = up[bx] + acc;
        }
    }
    r->frame_light = P;
    return 0;
}

/* The image's mean light (r + g + b) per pixel over the frame rows [y0, y1) and columns
 * [x0, x1) (within the frame, not empty), widened to whole blocks of FRAME_BLOCK pixels. */
static double frame_mean(const sd_render_ctx *r, int y0, int y1, int x0, int x1)
{
    const int B = FRAME_BLOCK, tw = (r->W + B - 1) / B + 1;
    const int ya = y0 / B, yb = (y1 + B - 1) / B, xa = x0 / B, xb = (x1 + B - 1) / B;
    const double *P = r->frame_light;
    double sum = P[(ptrdiff_t)yb * tw + xb] - P[(ptrdiff_t)ya * tw + xb] - P[(ptrdiff_t)yb * tw + xa] +
                 P[(ptrdiff_t)ya * tw + xa];
    return sum / ((double)(imin(yb * B, r->H) - ya * B) * (double)(imin(xb * B, r->W) - xa * B));
}

int sd_highlight_frame(sd_render_ctx *r, int k, int oy, int ox, int rows, int cols, const sd_hl_blocks *g,
                       float *mean, const float *peak)
{
    const int bh = g->bh, bw = g->bw, B = g->B;
    const ptrdiff_t nb = (ptrdiff_t)bh * bw;
    int any = 0;
    for (ptrdiff_t b = 0; b < nb && !any; b++) any = peak[b] > SD_HIGHLIGHT_OVER_MEAN * mean[b];
    if (!any) return 0;
    if (frame_light(r) < 0) return -1;
    unsigned char *lit = calloc((size_t)bh, 1); /* per block row: whether a block may still hold one */
    if (!lit) return -1;
    SD_PARALLEL_FOR_DYN(sd_threads_for(r->nt, nb))
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            ptrdiff_t b = (ptrdiff_t)by * bw + bx;
            if (!(peak[b] > SD_HIGHLIGHT_OVER_MEAN * mean[b])) continue; /* no highlight here anyway */
            int ya, yb, xa, xb;
            sd_hl_around(g, rows, cols, by, bx, &ya, &yb, &xa, &xb);
            float top = 0.0f; /* the brightest colour of the peaks of the blocks around that may hold one */
            for (int j = ya; j < yb; j++)
                for (int i = xa; i < xb; i++) {
                    float c = peak[nb + (ptrdiff_t)j * bw + i];
                    top = c > top ? c : top;
                }
            int y0 = (oy + ya * B) << k, y1 = imin((oy + imin(yb * B, rows)) << k, r->H);
            int x0 = (ox + xa * B) << k, x1 = imin((ox + imin(xb * B, cols)) << k, r->W);
            if ((double)top > SD_HIGHLIGHT_OVER_MEAN * frame_mean(r, y0, y1, x0, x1)) lit[by] = 1;
            else mean[b] = INFINITY; /* (each iteration reads only its own block's mean) */
        }
    any = 0;
    for (int by = 0; by < bh; by++) any |= lit[by];
    free(lit);
    return any;
}

static int boxes_meet(sd_box a, sd_box b) { return a.y0 < b.y1 && b.y0 < a.y1 && a.x0 < b.x1 && b.x0 < a.x1; }

/* The share of cell (cx, cy) of slice s (level k, the frame fy x fx cells) that is the excess of
 * an isolated highlight over the mean m around it, if its blur stays inside the frame (the
 * window's and the mirror's border keep theirs) and reaches one of the nn boxes `near`; else 0. */
static float excess_share(const sd_render_ctx *r, const sd_slice *s, const sd_box *near, int nn, int cx, int cy,
                          float m, int fx, int fy)
{
    const int k = s->k, bs = 1 << k;
    ptrdiff_t i = s->cell_off[cy] + cx;
    const float *l = r->layer + 4 * i;
    if (!sd_is_highlight(l, m)) return 0.0f;
    float R = sd_radius(r->lcoc[i], r->pyr->rcap), Rc = R / (float)bs;
    float edge = fminf(fminf((float)cx + 0.5f, (float)(fx - cx) - 0.5f), fminf((float)cy + 0.5f, (float)(fy - cy) - 0.5f));
    if (!(R >= HIGHLIGHT_MIN_RADIUS && edge >= Rc + 2.0f)) return 0.0f;
    int g = sd_iceil(R) + bs;
    sd_box disk = {(cy << k) - g, ((cy + 1) << k) + g, (cx << k) - g, ((cx + 1) << k) + g};
    for (int j = 0; j < nn; j++)
        if (boxes_meet(disk, near[j])) return 1.0f - m / (l[0] + l[1] + l[2]);
    return 0.0f;
}

int sd_highlight_find(sd_render_ctx *r, int si)
{
    const sd_slice *s = &r->plan[si];
    const int k = s->k, bs = 1 << k, nt = r->nt;
    const float rcap = r->pyr->rcap;
    if (sd_radius(s->mid, rcap) < HIGHLIGHT_MIN_RADIUS) return 0;
    /* the frame boxes of the nearer slices that hide this one and are blurred relative to it */
    sd_box near[SD_MAX_SLICES + 1];
    int nn = 0;
    sd_box reach = {imax((s->cy0 << k) - (int)rcap, 0), imin((s->cy1 << k) + (int)rcap, r->H),
                    imax((s->cx0 << k) - (int)rcap, 0), imin((s->cx1 << k) + (int)rcap, r->W)};
    float grow = fmaxf(sd_radius(s->lo, rcap), sd_radius(s->hi, rcap)) + 2.0f * (float)bs; /* a disk's reach */
    if (grow < rcap) {
        int g = sd_iceil(grow);
        reach = (sd_box){imax((s->cy0 << k) - g, 0), imin((s->cy1 << k) + g, r->H), imax((s->cx0 << k) - g, 0),
                         imin((s->cx1 << k) + g, r->W)};
    }
    for (int j = si + 2; j < r->ns; j++)
        if (!sd_box_empty(r->drawn[j]) && boxes_meet(r->drawn[j], reach) && sharp_weight(s->mid, r->cent[j]) < 1.0f)
            near[nn++] = r->drawn[j];
    if (!nn) return 0;

    /* the cells whose disks can reach those boxes, [uy0, uy1) x [ux0, ux1); the means are taken
     * over them and the w cells around them, [gy0, gy1) x [gx0, gx1) */
    sd_box u = {r->H, 0, r->W, 0};
    int gpx = sd_iceil(fminf(grow, rcap));
    for (int j = 0; j < nn; j++) {
        u.y0 = imin(u.y0, near[j].y0 - gpx);
        u.y1 = imax(u.y1, near[j].y1 + gpx);
        u.x0 = imin(u.x0, near[j].x0 - gpx);
        u.x1 = imax(u.x1, near[j].x1 + gpx);
    }
    const int uy0 = imax(u.y0 >> k, s->cy0), uy1 = imin((u.y1 + bs - 1) >> k, s->cy1);
    const int ux0 = imax(u.x0 >> k, s->cx0), ux1 = imin((u.x1 + bs - 1) >> k, s->cx1);
    if (uy0 >= uy1 || ux0 >= ux1) return 0;
    if (!sd_rows_bright(r->bright, uy0, uy1)) return 0; /* no cell there can be a highlight */
    const int w = imax(sd_iceil(sd_radius(s->mid, rcap) / (float)bs), 1);
    const int gy0 = imax(uy0 - w, s->cy0), gy1 = imin(uy1 + w, s->cy1);
    const int gx0 = imax(ux0 - w, s->cx0), gx1 = imin(ux1 + w, s->cx1);
    int *cols = malloc(sizeof(int) * 2 * (size_t)(gy1 - gy0));
    if (!cols) return -1;
    for (int cy = gy0; cy < gy1; cy++) {
        int a = imax(s->cell_x0[cy], gx0), e = imin(s->cell_x1[cy], gx1);
        cols[cy - gy0] = a < e ? a : gx0;
        cols[gy1 - gy0 + cy - gy0] = a < e ? e : gx0;
    }
    sd_hl_blocks blocks;
    float *peak;
    float *mean = sd_highlight_means(r->layer, gy1 - gy0, gx1 - gx0, gx0, cols, cols + (gy1 - gy0),
                                     s->cell_off + gy0, r->bright + gy0, sd_radius(s->mid, rcap) / (float)bs, nt,
                                     &blocks, &peak);
    free(cols);
    if (!mean) return -1;
    const int B = blocks.B, bw = blocks.bw;
    int any = sd_highlight_frame(r, k, gy0, gx0, gy1 - gy0, gx1 - gx0, &blocks, mean, peak);
    if (any <= 0) {
        free(mean);
        free(peak);
        return any;
    }
    /* per cell row the columns that have a source */
    const int fy = (r->H + bs - 1) >> k, fx = (r->W + bs - 1) >> k;
    int *ex0 = r->reach_x0, *ex1 = r->reach_x1; /* free once the slice is resolved */
    SD_PARALLEL_FOR_DYN(nt)
    for (int cy = uy0; cy < uy1; cy++) {
        int a = s->cell_x1[cy], b = s->cell_x0[cy];
        const float *mrow = mean + (ptrdiff_t)((cy - gy0) / B) * bw, *prow = peak + (ptrdiff_t)((cy - gy0) / B) * bw;
        int xs = imax(s->cell_x0[cy], ux0), xe = imin(s->cell_x1[cy], ux1);
        for (int bx = xs > gx0 ? (xs - gx0) / B : 0; gx0 + bx * B < xe; bx++) {
            float m = mrow[bx];
            if (!(prow[bx] > SD_HIGHLIGHT_OVER_MEAN * m)) continue; /* no highlight in the block */
            for (int cx = imax(xs, gx0 + bx * B); cx < imin(xe, gx0 + (bx + 1) * B); cx++)
                if (excess_share(r, s, near, nn, cx, cy, m, fx, fy) > 0.0f) {
                    a = cx < a ? cx : a;
                    b = cx + 1;
                }
        }
        ex0[cy - s->cy0] = a;
        ex1[cy - s->cy0] = b;
    }
    /* the sources, in row order */
    r->nhl = 0;
    for (int cy = uy0; cy < uy1; cy++) {
        ptrdiff_t off = s->cell_off[cy];
        const float *mrow = mean + (ptrdiff_t)((cy - gy0) / B) * bw, *prow = peak + (ptrdiff_t)((cy - gy0) / B) * bw;
        for (int cx = ex0[cy - s->cy0]; cx < ex1[cy - s->cy0]; cx++) {
            ptrdiff_t i = off + cx;
            int bx = (cx - gx0) / B;
            if (!(prow[bx] > SD_HIGHLIGHT_OVER_MEAN * mrow[bx])) continue;
            float f = excess_share(r, s, near, nn, cx, cy, mrow[bx], fx, fy);
            if (!(f > 0.0f)) continue;
            if (r->nhl == r->hl_cap) {
                ptrdiff_t cap = r->hl_cap ? 2 * r->hl_cap : 256;
                sd_hl_source *n = realloc(r->hl, sizeof(sd_hl_source) * (size_t)cap);
                if (!n) {
                    free(mean);
                    free(peak);
                    return -1;
                }
                r->hl = n;
                r->hl_cap = cap;
            }
            sd_hl_source *h = &r->hl[r->nhl++];
            const float *l = r->layer + 4 * i;
            float area = (float)(bs * bs);
            for (int c = 0; c < 3; c++) h->light[c] = f * l[c] * area;
            float px = k > 0 ? r->pos[2 * i] : 0.0f, py = k > 0 ? r->pos[2 * i + 1] : 0.0f;
            h->cx = ((float)cx + 0.5f + px) * (float)bs;
            h->cy = ((float)cy + 0.5f + py) * (float)bs;
            h->coc = r->lcoc[i];
            h->R = sd_radius(h->coc, rcap);
            float vlo = h->coc < 0.0f ? -r->ap->vmax : r->ap->vmin, vhi = h->coc < 0.0f ? -r->ap->vmin : r->ap->vmax;
            h->top = h->cy + h->R * vlo;
            h->bot = h->cy + h->R * vhi;
            h->y0 = imax(sd_ifloor(h->top), 0);
            h->y1 = imin(sd_iceil(h->bot), r->H);
            /* the footprint's area: the aperture's rows times their spans' widths */
            double S = 0.0;
            for (int y = h->y0; y < h->y1; y++) {
                float t0 = fmaxf((float)y, h->top), t1 = fminf((float)(y + 1), h->bot);
                if (!(t1 > t0)) continue;
                sd_spans sp;
                sd_ap_eval(r->ap, (0.5f * (t0 + t1) - h->cy) / h->R, h->coc < 0.0f, &sp);
                for (int q = 0; q < r->ap->nspans; q++) S += (double)(t1 - t0) * h->R * (sp.r[q] - sp.l[q]);
            }
            h->inv_area = S > 1e-12 ? (float)(1.0 / S) : 0.0f;
        }
    }
    free(mean);
    free(peak);
    return r->nhl > 0;
}

/* The fraction of pixel (x, y) its entries hide from a light of CoC cl in slice s, each entry
 * weighted by how sharp it is relative to the light (sharp) or how blurred (!sharp), and by
 * slice tent's share of it (NULL: all of it). */
static float entries_hide(const sd_render_ctx *r, const sd_slice *s, const sd_slice *tent, float cl, int x, int y,
                          int sharp)
{
    const sd_entries *e = r->e;
    float c = e->coc[(ptrdiff_t)y * r->W + x], hide = 0.0f;
    if (c == c) { /* the main entry only */
        float w = sharp ? sharp_weight(cl, c) : 1.0f - sharp_weight(cl, c);
        if (tent) w *= sd_slice_weight(tent, c);
        return sd_slice_hides(s, c, 1.0f) * w;
    }
    ptrdiff_t lo = e->row_start[y], hi = e->row_start[y + 1];
    while (lo < hi) { /* the first extra at column x or after */
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (e->x[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    for (ptrdiff_t q = lo; q < e->row_start[y + 1] && e->x[q] == x; q++) {
        float xc = e->xcoc[q];
        float w = sharp ? sharp_weight(cl, xc) : 1.0f - sharp_weight(cl, xc);
        if (tent) w *= sd_slice_weight(tent, xc);
        hide += sd_slice_hides(s, xc, e->xrgba[4 * q + 3]) * w;
    }
    return hide;
}

/* Bit b set: the rays from light h's disk may cross an entry of blurred slice blurred[b] (of nb),
 * one of its bins (the index of sd_slices_index) holding an entry within the rows and columns the
 * rays meet that slice in; the spans of the aperture lie within amax radii of its centre. Where
 * a ray meets none, the entries it reads are other slices', whose share of this one's tent is 0,
 * so they hide nothing of it: at 1920x1080 over 99.9 % of the rays. */
_Static_assert(SD_MAX_SLICES + 1 <= 32, "a light's blurred slices do not fit in 32 bits");
static uint32_t rays_meet(const sd_render_ctx *r, const sd_hl_source *h, const int *blurred, int nb, float amax)
{
    /* the pixels of the disk, a pixel wider on each side, relative to its centre (as the rays
     * take them, below) */
    float pxlo = (float)(sd_ifloor(h->cx - h->R * amax) - 1) + 0.5f - h->cx;
    float pxhi = (float)(sd_iceil(h->cx + h->R * amax) + 1) + 0.5f - h->cx;
    float pylo = (float)h->y0 + 0.5f - h->cy, pyhi = (float)(h->y1 - 1) + 0.5f - h->cy;
    uint32_t m = 0;
    for (int b = 0; b < nb; b++) {
        float g = (h->coc - r->cent[blurred[b]]) / h->coc;
        float xa = g * pxlo, xb = g * pxhi, ya = g * pylo, yb = g * pyhi;
        if (!(fabsf(xa) + fabsf(xb) + fabsf(ya) + fabsf(yb) < 1e30f)) { /* not finite: every ray */
            m |= 1u << b;
            continue;
        }
        int qx0 = sd_ifloor(h->cx + (xa < xb ? xa : xb)) - 1, qx1 = sd_ifloor(h->cx + (xa < xb ? xb : xa)) + 1;
        int qy0 = imax(sd_ifloor(h->cy + (ya < yb ? ya : yb)) - 1, 0);
        int qy1 = imin(sd_ifloor(h->cy + (ya < yb ? yb : ya)) + 1, r->H - 1);
        int i0 = 2 * blurred[b], i1 = imin(i0 + 3, r->ni); /* slice j's bins: 2 j .. 2 j + 2 */
        for (int y = qy0; y <= qy1 && !(m >> b & 1u); y++)
            for (int i = i0; i < i1; i++) {
                ptrdiff_t j = (ptrdiff_t)i * r->H + y;
                if (r->bin_x0[j] < r->bin_x1[j] && r->bin_x0[j] <= qx1 && r->bin_x1[j] > qx0) {
                    m |= 1u << b;
                    break;
                }
            }
    }
    return m;
}

void sd_highlight_composite(sd_render_ctx *r, int si)
{
    const sd_slice *s = &r->plan[si];
    const int H = r->H, W = r->W;
    const unsigned char before = (unsigned char)(si + 2);
    /* the nearer slices blurred relative to the slice, whose rays are followed */
    int blurred[SD_MAX_SLICES + 1], nb = 0;
    for (int j = si + 2; j < r->ns; j++)
        if (!sd_box_empty(r->drawn[j]) && sharp_weight(s->mid, r->cent[j]) < 1.0f) blurred[nb++] = j;
    int y0 = H, y1 = 0;
    for (ptrdiff_t n = 0; n < r->nhl; n++) {
        y0 = imin(y0, r->hl[n].y0);
        y1 = imax(y1, r->hl[n].y1);
    }
    /* per light, the blurred slices its rays can meet (without memory: all of them) */
    float amax = 0.0f;
    for (ptrdiff_t i = 0; i < (ptrdiff_t)r->ap->nrows * r->ap->nspans * 2; i++)
        amax = fabsf(r->ap->spans[i]) > amax ? fabsf(r->ap->spans[i]) : amax;
    uint32_t *meet = nb > 0 ? malloc(sizeof(uint32_t) * (size_t)(r->nhl > 0 ? r->nhl : 1)) : NULL;
    if (meet) {
        SD_PARALLEL_FOR_DYN(sd_threads_for(r->nt, r->nhl * 1024))
        for (ptrdiff_t n = 0; n < r->nhl; n++) meet[n] = rays_meet(r, &r->hl[n], blurred, nb, amax);
    }
    SD_PARALLEL_FOR_DYN(r->nt)
    for (int y = y0; y < y1; y++) {
        ptrdiff_t i0 = (ptrdiff_t)y * W, op = r->out.pix;
        float *o = r->out.data + (ptrdiff_t)y * r->out.row;
        const float *a = r->acc + i0, *ls = r->last + i0;
        const unsigned char *st = r->stamp + i0;
        for (ptrdiff_t n = 0; n < r->nhl; n++) {
            const sd_hl_source *h = &r->hl[n];
            if (y < h->y0 || y >= h->y1) continue;
            const uint32_t rays = meet ? meet[n] : ~0u;
            float t0 = max_finite((float)y, h->top), t1 = min_finite((float)(y + 1), h->bot);
            if (!(t1 > t0)) continue;
            sd_spans sp;
            sd_ap_eval(r->ap, (0.5f * (t0 + t1) - h->cy) / h->R, h->coc < 0.0f, &sp);
            float wrow = (t1 - t0) * h->inv_area;
            for (int q = 0; q < r->ap->nspans; q++) {
                float xl = h->cx + h->R * sp.l[q], xr = h->cx + h->R * sp.r[q];
                if (!(xr > xl)) continue;
                for (int x = imax(sd_ifloor(xl), 0); x < imin(sd_iceil(xr), W); x++) {
                    float cover = min_finite((float)(x + 1), xr) - max_finite((float)x, xl);
                    if (!(cover > 0.0f)) continue;
                    /* the composite's visibility (as in composite, sd_render.c) */
                    float occ = a[x] - (st[x] == before ? ls[x] : 0.0f);
                    if (!(occ > 0.0f)) continue; /* nothing nearer here: the composite's is right */
                    float vis = 1.0f - occ;
                    vis = vis > 0.0f ? vis : 0.0f;
                    /* what hides the ray from the light to this pixel: sharp content here, and
                     * the blurred nearer slices where the ray crosses them */
                    float hide = entries_hide(r, s, NULL, h->coc, x, y, 1);
                    float px = (float)x + 0.5f - h->cx, py = (float)y + 0.5f - h->cy;
                    for (int b = 0; b < nb && hide < 1.0f; b++) {
                        if (!(rays >> b & 1u)) continue; /* it hides nothing of this one: + 0 */
                        float g = (h->coc - r->cent[blurred[b]]) / h->coc;
                        int qx = sd_ifloor(h->cx + g * px), qy = sd_ifloor(h->cy + g * py);
                        if (qx < 0 || qx >= W || qy < 0 || qy >= H) continue;
                        hide += entries_hide(r, s, &r->plan[blurred[b]], h->coc, qx, qy, 0);
                    }
                    float vis_ray = 1.0f - (hide < 1.0f ? hide : 1.0f);
                    float wgt = (vis_ray - vis) * cover * wrow;
                    for (int c = 0; c < 3; c++) o[(ptrdiff_t)x * op + c] += wgt * h->light[c];
                }
            }
        }
    }
    free(meet);
}
