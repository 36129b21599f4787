/* Pyramid stage: the planes the scatter (sd_scatter.c) spreads into, one per level, and their
 * resolve into the light of every frame cell.
 *
 * Each level's plane holds difference rows: a span of a footprint is four writes (two per
 * anti-aliased end), and a prefix sum along the row turns the differences into light. A large
 * CoC is spread on a coarser level (see SD_R_MAX) and the resolve upsamples every level into
 * the next finer one, down to the base level. Mass is exact at every step: the 2x bilinear
 * upsampling with edge clamping keeps every parent's mass, and what was spread past the frame's
 * edges lands in the planes' margins and is folded back in (the frame continues as its mirror
 * image, sd_border.h). Only the rows and columns a spread touched are resolved and cleared. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_border.h"
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_util.h"

void sd_pyr_mark(sd_pyramid *p, int k, int r0, int r1, int c0, int c1)
{
    r0 = imax(r0, 0);
    r1 = imin(r1, p->lev[k].rows);
    c0 = imax(c0, 0);
    c1 = imin(c1, p->lev[k].cols + 2);
    if (r0 >= r1 || c0 >= c1) return;
    if (p->dirty_y0[k] >= p->dirty_y1[k]) {
        p->dirty_y0[k] = r0; p->dirty_y1[k] = r1; p->dirty_x0[k] = c0; p->dirty_x1[k] = c1;
        return;
    }
    p->dirty_y0[k] = imin(p->dirty_y0[k], r0);
    p->dirty_y1[k] = imax(p->dirty_y1[k], r1);
    p->dirty_x0[k] = imin(p->dirty_x0[k], c0);
    p->dirty_x1[k] = imax(p->dirty_x1[k], c1);
}

sd_pyramid *sd_pyr_new(int H, int W, float max_coc, int nthreads)
{
    sd_pyramid *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->H = H;
    p->W = W;
    p->rcap = sd_radius_cap(H, W);
    float R = sd_radius(max_coc, p->rcap);
    p->nlev = sd_levels_for(R);
    int K = p->nlev - 1;
    /* Planes nest exactly (each twice the next coarser one), so the clamped bilinear upsampling
     * keeps mass; the top level's margin covers the farthest reach, and doubling covers the rest. */
    int bs = 1 << K;
    int nky = (H + bs - 1) / bs, nkx = (W + bs - 1) / bs;
    int mK = (int)ceilf(R / (float)bs) + 3;
    p->rlo = malloc(sizeof(float) * (size_t)H);
    p->rhi = malloc(sizeof(float) * (size_t)H);
    if (!p->rlo || !p->rhi) { sd_pyr_free(p); return NULL; }
    for (int k = 0; k < p->nlev; k++) {
        sd_plane *l = &p->lev[k];
        int s = 1 << (K - k);
        l->o = mK * s;
        l->rows = (nky + 2 * mK) * s;
        l->cols = (nkx + 2 * mK) * s;
        l->ny = (H + (1 << k) - 1) >> k;
        l->nx = (W + (1 << k) - 1) >> k;
        l->stride = (ptrdiff_t)(l->cols + 2) * 4;
        l->buf = sd_big_calloc_sparse((size_t)l->rows * (size_t)l->stride, sizeof(float), nthreads);
        l->xl = malloc(sizeof(int) * 2 * (size_t)l->rows);
        l->blocks = calloc((size_t)l->rows, sizeof(uint64_t));
        if (!l->buf || !l->xl || !l->blocks) { sd_pyr_free(p); return NULL; }
        l->xr = l->xl + l->rows;
        l->bshift = 0;
        while (((l->cols + 2 + (1 << l->bshift) - 1) >> l->bshift) > 64) l->bshift++;
        for (int y = 0; y < l->rows; y++) {
            l->xl[y] = l->cols + 2;
            l->xr[y] = 0;
        }
    }
    size_t nwant = 0;
    for (int k = 0; k < p->nlev; k++) nwant += (size_t)p->lev[k].rows;
    p->want = malloc(sizeof *p->want * 2 * nwant);
    if (!p->want) { sd_pyr_free(p); return NULL; }
    for (size_t i = 0; i < nwant; i++) { /* no columns yet */
        p->want[2 * i] = INT_MAX;
        p->want[2 * i + 1] = 0;
    }
    for (int k = 0; k + 1 < p->nlev; k++) { /* the upsampling's columns (upsample_add) */
        sd_plane *l = &p->lev[k];
        int pc = p->lev[k + 1].cols;
        l->up_x = malloc(sizeof(int) * 2 * (size_t)l->cols);
        l->up_w = malloc(sizeof(float) * 2 * (size_t)l->cols);
        if (!l->up_x || !l->up_w) { sd_pyr_free(p); return NULL; }
        for (int x = 0; x < l->cols; x++) {
            float wx;
            sd_lerp_cell(x, 0.5f, pc, &l->up_x[2 * x], &l->up_x[2 * x + 1], &wx);
            l->up_w[2 * x] = 0.25f * (1 - wx);
            l->up_w[2 * x + 1] = 0.25f * wx;
        }
    }
    return p;
}

static void pyr_free(sd_pyramid *p, int zeroed)
{
    if (!p) return;
    for (int k = 0; k < p->nlev; k++) {
        if (zeroed) sd_big_free_zeroed(p->lev[k].buf);
        else sd_big_free(p->lev[k].buf);
        free(p->lev[k].xl);
        free(p->lev[k].blocks);
        free(p->lev[k].up_x);
        free(p->lev[k].up_w);
    }
    free(p->rlo);
    free(p->rhi);
    free(p->want);
    free(p);
}

void sd_pyr_free(sd_pyramid *p) { pyr_free(p, 0); }

void sd_pyr_release(sd_pyramid *p, int nthreads)
{
    if (!p) return;
    sd_pyr_clear(p, nthreads); /* only what was written is nonzero: the next user need not zero it */
    pyr_free(p, 1);
}

int sd_pyr_levels(const sd_pyramid *p) { return p->nlev; }

void sd_pyr_clear(sd_pyramid *p, int nthreads)
{
    int nt = sd_threads(nthreads);
    for (int k = 0; k < p->nlev; k++) {
        sd_plane *l = &p->lev[k];
        int r0 = p->dirty_y0[k], r1 = p->dirty_y1[k];
        if (r0 < r1) {
            SD_PARALLEL_FOR_DYN(sd_threads_for(nt, (ptrdiff_t)(r1 - r0) * l->cols))
            for (int y = r0; y < r1; y++) {
                /* the row's cells outside its set blocks are still 0 */
                int b = l->xl[y] >> l->bshift, a, e;
                while (l->xl[y] < l->xr[y] && sd_block_run(l->blocks[y], l->bshift, &b, l->xr[y], &a, &e)) {
                    a = imax(a, l->xl[y]);
                    memset(l->buf + (ptrdiff_t)y * l->stride + 4 * a, 0, sizeof(float) * 4 * (size_t)(e - a));
                }
                l->xl[y] = l->cols + 2;
                l->xr[y] = 0;
                l->blocks[y] = 0;
            }
        }
        p->dirty_y0[k] = p->dirty_y1[k] = p->dirty_x0[k] = p->dirty_x1[k] = 0;
    }
    p->live_y0 = p->live_y1 = p->live_x0 = p->live_x1 = 0;
}

void sd_pyr_active(const sd_pyramid *p, int *y0, int *y1, int *x0, int *x1)
{
    *y0 = p->live_y0;
    *y1 = p->live_y1;
    *x0 = p->live_x0;
    *x1 = p->live_x1;
}

float *sd_pyr_row(sd_pyramid *p, int y)
{
    const sd_plane *l = &p->lev[p->base];
    return l->buf + (ptrdiff_t)(y + l->o) * l->stride + 4 * l->o;
}

int sd_level_mostly(float R)
{
    float up;
    int k = sd_level_of(R, &up);
    return up > 0.5f && k < SD_PYR_MAX_LEVELS - 1 ? k + 1 : k;
}

/* ---- resolve: prefix sums, upsampling, folding the margins back in ---- */

static void prefix_rows(sd_plane *l, int r0, int r1, int nthreads)
{
    int nt = sd_threads_for(sd_threads(nthreads), (ptrdiff_t)(r1 - r0) * l->cols);
    SD_PARALLEL_FOR_DYN(nt)
    for (int y = r0; y < r1; y++) {
        float *r = l->buf + (ptrdiff_t)y * l->stride;
        /* Each run of set blocks from 0: between two runs no span lies, the light is exactly 0
         * (the sums of the differences before it would only leave their rounding there), and
         * the cells stay 0. */
        int b = l->xl[y] >> l->bshift, a, e;
        while (l->xl[y] < l->xr[y] && sd_block_run(l->blocks[y], l->bshift, &b, l->xr[y], &a, &e)) {
            float acc[4] = {0, 0, 0, 0};
            for (int x = imax(a, l->xl[y]); x < e; x++)
                for (int c = 0; c < 4; c++) { acc[c] += r[4 * x + c]; r[4 * x + c] = acc[c]; }
        }
    }
}

/* Adds the 2x bilinear upsampling of coarse (resolved) into fine, which is exactly twice its
 * size: each child gets a quarter of the interpolated parent density; sampling is clamped at
 * the plane's ends, which keeps every parent's total. Fine rows [r0, r1), columns [c0, c1). */
static void upsample_add(const sd_plane *coarse, sd_plane *fine, int r0, int r1, int nthreads)
{
    int nt = sd_threads_for(sd_threads(nthreads), (ptrdiff_t)(r1 - r0) * fine->cols);
    const int *px = fine->up_x;
    const float *pw = fine->up_w;
    SD_PARALLEL_FOR_DYN(nt)
    for (int fy = r0; fy < r1; fy++) {
        float *dst = fine->buf + (ptrdiff_t)fy * fine->stride;
        int y0, y1;
        float wy;
        sd_lerp_cell(fy, 0.5f, coarse->rows, &y0, &y1, &wy);
        const float *q0 = coarse->buf + (ptrdiff_t)y0 * coarse->stride;
        const float *q1 = coarse->buf + (ptrdiff_t)y1 * coarse->stride;
        /* the children of the parents' nonzero cells, under the bilinear kernel: those of each
         * run of the parents' set blocks (elsewhere the parents are 0) */
        int pl = imin(coarse->xl[y0], coarse->xl[y1]), pr = imax(coarse->xr[y0], coarse->xr[y1]);
        if (pl >= pr) continue;
        uint64_t bits = coarse->blocks[y0] | coarse->blocks[y1];
        int b = pl >> coarse->bshift, a, e, done = 0;
        while (sd_block_run(bits, coarse->bshift, &b, pr, &a, &e)) {
            /* (each child once: two runs' children may meet) */
            int c0 = imax(imax(2 * imax(a, pl) - 2, 0), done), c1 = imin(2 * e + 2, fine->cols);
            done = imax(done, c1);
            sd_plane_touch(fine, fy, c0, c1);
            for (int fx = c0; fx < c1; fx++) {
                int x0 = px[2 * fx], x1 = px[2 * fx + 1];
                /* (0.25 (1 - wx)) (1 - wy) and so on, wx's factor from the table */
                float w00 = pw[2 * fx] * (1 - wy), w01 = pw[2 * fx + 1] * (1 - wy);
                float w10 = pw[2 * fx] * wy, w11 = pw[2 * fx + 1] * wy;
                sd_cell_add_bilinear(dst + 4 * fx, q0 + 4 * x0, q0 + 4 * x1, q1 + 4 * x0, q1 + 4 * x1, w00, w01, w10,
                                     w11);
            }
        }
    }
}

/* Frame cells [*a0, *a1) that hold something once the dirty cells [u0, u1) (frame coordinates,
 * possibly beyond both ends) are folded into a frame of n cells. */
static void folded_span(int u0, int u1, int n, int *a0, int *a1)
{
    int lo = imax(u0, 0), hi = imin(u1, n);
    if (lo >= hi) { lo = n; hi = 0; }
    if (u0 < 0) { lo = 0; hi = imax(hi, imin(-u0, n)); }
    if (u1 > n) { hi = n; lo = imin(lo, imax(n - (u1 - n), 0)); }
    if (u0 < -n || u1 > 2 * n) { lo = 0; hi = n; } /* folded more than once */
    *a0 = lo;
    *a1 = hi;
}

/* Mirrors what landed in the margins of level k back into its frame (the frame continues as its
 * mirror image, so its light beyond an edge belongs to the cell it mirrors). */
static void fold_margins(sd_pyramid *p, int k, int nthreads)
{
    int nt = sd_threads(nthreads);
    sd_plane *l = &p->lev[k];
    int d0 = p->dirty_y0[k], d1 = p->dirty_y1[k], o = l->o;
    for (int j = d0; j < d1; j++) { /* rows, serial: several margin rows may share a target */
        int y = j - o;
        if (y >= 0 && y < l->ny) continue;
        if (l->xl[j] >= l->xr[j]) continue;
        int t = sd_fold_index(y, l->ny) + o;
        float *src = l->buf + (ptrdiff_t)j * l->stride;
        float *dst = l->buf + (ptrdiff_t)t * l->stride;
        for (int i = 4 * l->xl[j]; i < 4 * l->xr[j]; i++) dst[i] += src[i];
        sd_plane_touch(l, t, l->xl[j], l->xr[j]);
    }
    int y0, y1;
    folded_span(d0 - o, d1 - o, l->ny, &y0, &y1);
    int b0 = l->nx, b1 = 0;
    ptrdiff_t margin = 0; /* the margin cells the rows hold: what the loop below adds */
    for (int y = y0; y < y1; y++) {
        int xl = l->xl[y + o], xr = l->xr[y + o];
        if (xl < xr) margin += imax(imin(xr, o) - xl, 0) + imax(xr - imax(xl, o + l->nx), 0);
    }
    SD_PARALLEL_FOR_DYN(sd_threads_for(nt, margin))
    for (int y = y0; y < y1; y++) {
        int j = y + o;
        float *r = l->buf + (ptrdiff_t)j * l->stride;
        int xl = l->xl[j], xr = l->xr[j];
        if (xl >= xr) continue;
        /* the row's margin cells, left then right (the frame's own cells stay) */
        uint64_t onto = 0; /* the blocks they land in */
        for (int side = 0; side < 2; side++) {
            int i0 = side ? imax(xl, o + l->nx) : xl, i1 = side ? xr : imin(xr, o);
            for (int i = i0; i < i1; i++) {
                int d0 = sd_fold_index(i - o, l->nx) + o;
                float *d = r + 4 * d0;
                for (int c = 0; c < 4; c++) d[c] += r[4 * i + c];
                onto |= (uint64_t)1 << (d0 >> l->bshift);
            }
        }
        l->blocks[j] |= onto;
        /* what the row holds inside the frame now */
        int f0, f1;
        folded_span(xl - o, xr - o, l->nx, &f0, &f1);
        l->xl[j] = imin(xl, f0 + o);
        l->xr[j] = imax(xr, f1 + o);
    }
    for (int y = y0; y < y1; y++) {
        int j = y + o;
        if (l->xl[j] >= l->xr[j]) continue;
        b0 = imin(b0, imax(l->xl[j] - o, 0));
        b1 = imax(b1, imin(l->xr[j] - o, l->nx));
    }
    p->live_y0 = y0;
    p->live_y1 = y1;
    p->live_x0 = b0;
    p->live_x1 = b1;
    if (p->live_y0 >= p->live_y1 || p->live_x0 >= p->live_x1) p->live_y0 = p->live_y1 = p->live_x0 = p->live_x1 = 0;
    /* the rows folded onto are live now too */
    if (p->live_y0 < p->live_y1) sd_pyr_mark(p, k, p->live_y0 + o, p->live_y1 + o, p->live_x0 + o, p->live_x1 + o);
}

/* Takes what pyramid `d` (the same geometry, resolved at the same level without folding) holds in
 * the margins of level k out of p's margins before they are folded: light that left the frame
 * and must not come back as its mirror image. */
static void drop_margins(sd_pyramid *p, const sd_pyramid *d, int k)
{
    sd_plane *l = &p->lev[k];
    const sd_plane *m = &d->lev[k];
    int o = l->o;
    for (int j = d->dirty_y0[k]; j < d->dirty_y1[k]; j++) {
        int xl = m->xl[j], xr = m->xr[j];
        if (xl >= xr) continue;
        int y = j - o, inside = y >= 0 && y < l->ny;
        float *dst = l->buf + (ptrdiff_t)j * l->stride;
        const float *src = m->buf + (ptrdiff_t)j * m->stride;
        for (int i = xl; i < xr; i++) {
            int x = i - o;
            if (inside && x >= 0 && x < l->nx) continue;
            for (int c = 0; c < 4; c++) dst[4 * i + c] -= src[4 * i + c];
        }
        sd_plane_touch(l, j, xl, xr);
        sd_pyr_mark(p, k, j, j + 1, xl, xr);
    }
}

uint64_t sd_pyr_row_blocks(const sd_pyramid *p, int y, int *shift, int *o)
{
    const sd_plane *l = &p->lev[p->base];
    *shift = l->bshift;
    *o = l->o;
    return l->blocks[y + l->o];
}

/* Frame cells [*x0, *x1) of base row y that hold anything after sd_pyr_resolve. */
void sd_pyr_row_span(const sd_pyramid *p, int y, int *x0, int *x1)
{
    const sd_plane *l = &p->lev[p->base];
    int j = y + l->o;
    *x0 = imax(l->xl[j] - l->o, 0);
    *x1 = imin(l->xr[j] - l->o, l->nx);
    if (*x0 >= *x1) { *x0 = 0; *x1 = 0; }
}

void sd_pyr_resolve(sd_pyramid *p, int base, int nthreads) { sd_pyr_resolve_border(p, base, 1, NULL, nthreads); }

void sd_pyr_resolve_border(sd_pyramid *p, int base, int fold, const sd_pyramid *drop, int nthreads)
{
    int K = p->nlev - 1;
    if (base < 0) base = 0;
    if (base > K) base = K;
    p->base = base;
    if (p->dirty_y0[K] < p->dirty_y1[K]) prefix_rows(&p->lev[K], p->dirty_y0[K], p->dirty_y1[K], nthreads);
    for (int k = K; k > base; k--) {
        sd_plane *f = &p->lev[k - 1];
        if (p->dirty_y0[k - 1] < p->dirty_y1[k - 1]) prefix_rows(f, p->dirty_y0[k - 1], p->dirty_y1[k - 1], nthreads);
        if (p->dirty_y0[k] < p->dirty_y1[k]) {
            /* children of the coarse rows [d0, d1) under the 2x bilinear kernel */
            int r0 = imax(2 * p->dirty_y0[k] - 1, 0), r1 = imin(2 * p->dirty_y1[k] + 1, f->rows);
            int c0 = imax(2 * p->dirty_x0[k] - 1, 0), c1 = imin(2 * p->dirty_x1[k] + 1, f->cols);
            upsample_add(&p->lev[k], f, r0, r1, nthreads);
            sd_pyr_mark(p, k - 1, r0, r1, c0, c1);
        }
    }
    if (drop && fold) drop_margins(p, drop, base);
    if (!fold || p->dirty_y0[base] >= p->dirty_y1[base]) { p->live_y0 = p->live_y1 = p->live_x0 = p->live_x1 = 0; return; }
    fold_margins(p, base, nthreads);
}
