/* Gather stage: every output pixel is the aperture-weighted mean of the input around it, the
 * aperture scaled to the pixel's own |CoC| (sd_gather in sd_core.h). The cheap counterpart of
 * the scatter, for previews and comparison; the render does not use it.
 *
 * Each level of a box-downsampled pyramid keeps row prefix sums, so a span of the aperture costs
 * two lookups whatever its length, and a large radius is read on a coarser level (the levels and
 * their crossfade are the scatter's, sd_pyramid.h). Beyond the frame the rows and spans are
 * mirrored (sd_border.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_aperture.h"
#include "sd_border.h"
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_util.h"

/* The mean is taken over the very ends integrated; a span narrower than this (px) adds nothing
 * but the rounding of its ends, which its own tiny weight would blow up (an aperture of slivers
 * only falls back to the pixel below). */
#define MIN_SPAN_PX 1e-3f

/* Pixel (x, y) of a view of up to 4 channels, times scale, as 4 channels (the missing ones 0). */
static inline void load_px(const sd_cview *s, int x, int y, float scale, float *v)
{
    const float *q = s->data + (ptrdiff_t)y * s->row + (ptrdiff_t)x * s->pix;
    for (int c = 0; c < 4; c++) v[c] = c < s->nch ? scale * q[c] : 0.0f;
}

/* Row integrals from prefix sums kept in two parts, so that a short span of a long row is not
 * the difference of two large float sums: a double base every PREFIX_BLOCK cells and a float running
 * sum that restarts there. */
#define PREFIX_BLOCK 64
typedef struct {
    float *loc;        /* H rows x (W + 1) x 4: sum from the start of the cell's block */
    double *base;      /* H rows x (W / PREFIX_BLOCK + 1) x 4: sum up to each block start */
    int H, W;
    ptrdiff_t stride, bstride;
} prefix_plane;

static inline double prefix_at(const float *loc, const double *base, int x, int c)
{
    return base[4 * (x / PREFIX_BLOCK) + c] + (double)loc[4 * x + c];
}

static inline void row_integral_in(const float *loc, const double *base, int W, float pa, float pb, float *acc,
                                   float wgt)
{
    int ia = (int)pa, ib = (int)pb;
    if (ia >= W) ia = W - 1;
    if (ib >= W) ib = W - 1;
    float fa = pa - (float)ia, fb = pb - (float)ib;
    for (int c = 0; c < 4; c++) {
        double a0 = prefix_at(loc, base, ia, c), a1 = prefix_at(loc, base, ia + 1, c);
        double b0 = prefix_at(loc, base, ib, c), b1 = prefix_at(loc, base, ib + 1, c);
        acc[c] += wgt * (float)((b0 - a0) + fb * (b1 - b0) - fa * (a1 - a0));
    }
}

/* Integral of row y over [a, b] (edge coordinates, mirrored beyond the ends), 4 channels. */
static inline void row_integral(const prefix_plane *g, int y, float a, float b, float *acc, float wgt)
{
    int fy = sd_fold_index(y, g->H);
    const float *loc = g->loc + (ptrdiff_t)fy * g->stride;
    const double *base = g->base + (ptrdiff_t)fy * g->bstride;
    SD_FOR_FOLDED(a, b, g->W, pa, pb, row_integral_in(loc, base, g->W, pa, pb, acc, wgt));
}

/* Aperture-weighted mean of plane g around (cx, cy) with radius R, added to acc times wgt. */
static void gather_one(const prefix_plane *g, const sd_aperture *ap, float cx, float cy, float R,
                       int inverted, float wgt, float *acc)
{
    if (!(R > 0.5f)) { /* the whole shape lies inside this cell */
        row_integral(g, (int)floorf(cy), floorf(cx), floorf(cx) + 1.0f, acc, wgt);
        return;
    }
    if (R > SD_R_MAX + 1.0f) R = SD_R_MAX + 1.0f;
    sd_ap_strips st;
    sd_ap_strips_init(&st, ap, cy, R, inverted);
    float sum[4] = {0, 0, 0, 0};
    double S = 0.0;
    for (int j = st.j0; j <= st.j1; j++) {
        sd_spans s;
        float h = sd_ap_strip(&st, j, &s);
        if (h <= 0.0f) continue;
        for (int k = 0; k < ap->nspans; k++) {
            float pa = cx + R * s.l[k], pb = cx + R * s.r[k];
            if (!(pb - pa >= MIN_SPAN_PX)) continue;
            S += (double)h * (pb - pa);
            row_integral(g, j, pa, pb, sum, h);
        }
    }
    if (!(S > 1e-12)) { /* degenerate: the pixel itself */
        row_integral(g, (int)floorf(cy), floorf(cx), floorf(cx) + 1.0f, acc, wgt);
        return;
    }
    float sc = wgt / (float)S;
    for (int c = 0; c < 4; c++) acc[c] += sc * sum[c];
}

sd_status sd_gather(int H, int W, sd_cview src, const float *coc, ptrdiff_t coc_row,
                    const sd_aperture *ap, sd_view dst, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || src.nch < 1 || src.nch > 4 || dst.nch != src.nch || ap->nrows < 1)
        return SD_ERR_ARG;
    float rcap = sd_radius_cap(H, W);
    int nlev = sd_levels_for(sd_radius(sd_max_abs(H, W, coc, coc_row, nthreads), rcap));
    int nt = sd_threads(nthreads);
    prefix_plane g[SD_PYR_MAX_LEVELS];
    float *img[SD_PYR_MAX_LEVELS];
    memset(g, 0, sizeof g);
    memset(img, 0, sizeof img);
    sd_status st = SD_OK;
    /* level images (box-downsampled, mirrored at odd ends) and their row prefix sums */
    for (int k = 0; k < nlev && st == SD_OK; k++) {
        int h = k == 0 ? H : (g[k - 1].H + 1) / 2, w = k == 0 ? W : (g[k - 1].W + 1) / 2;
        g[k].H = h; g[k].W = w; g[k].stride = (ptrdiff_t)(w + 1) * 4;
        g[k].bstride = (ptrdiff_t)(w / PREFIX_BLOCK + 2) * 4;
        img[k] = malloc(sizeof(float) * 4 * (size_t)h * (size_t)w);
        g[k].loc = malloc(sizeof(float) * (size_t)h * (size_t)g[k].stride);
        g[k].base = malloc(sizeof(double) * (size_t)h * (size_t)g[k].bstride);
        if (!img[k] || !g[k].loc || !g[k].base) { st = SD_ERR_NOMEM; break; }
        float *im = img[k];
        if (k == 0) {
            SD_PARALLEL_FOR(nt)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) load_px(&src, x, y, 1.0f, im + 4 * ((ptrdiff_t)y * w + x));
        } else {
            const float *pi = img[k - 1];
            int ph = g[k - 1].H, pw = g[k - 1].W;
            SD_PARALLEL_FOR(nt)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int ya = 2 * y, yb = 2 * y + 1 < ph ? 2 * y + 1 : ph - 1;
                    int xa = 2 * x, xb = 2 * x + 1 < pw ? 2 * x + 1 : pw - 1;
                    for (int c = 0; c < 4; c++)
                        im[4 * ((ptrdiff_t)y * w + x) + c] =
                            0.25f * (pi[4 * ((ptrdiff_t)ya * pw + xa) + c] + pi[4 * ((ptrdiff_t)ya * pw + xb) + c] +
                                     pi[4 * ((ptrdiff_t)yb * pw + xa) + c] + pi[4 * ((ptrdiff_t)yb * pw + xb) + c]);
                }
        }
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < h; y++) {
            float *pr = g[k].loc + (ptrdiff_t)y * g[k].stride;
            double *pb = g[k].base + (ptrdiff_t)y * g[k].bstride;
            const float *ir = im + 4 * (ptrdiff_t)y * w;
            double tot[4] = {0, 0, 0, 0};
            float run[4] = {0, 0, 0, 0};
            for (int x = 0; x <= w; x++) {
                if (x % PREFIX_BLOCK == 0)
                    for (int c = 0; c < 4; c++) { tot[c] += run[c]; run[c] = 0.0f; pb[4 * (x / PREFIX_BLOCK) + c] = tot[c]; }
                for (int c = 0; c < 4; c++) pr[4 * x + c] = run[c];
                if (x < w)
                    for (int c = 0; c < 4; c++) run[c] += ir[4 * x + c];
            }
        }
    }
    if (st == SD_OK && cancel && cancel->check && cancel->check(cancel->ctx)) st = SD_ERR_INTERRUPTED;
    if (st == SD_OK) {
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            float *o = dst.data + (ptrdiff_t)y * dst.row;
            for (int x = 0; x < W; x++) {
                float cc = coc[(ptrdiff_t)y * coc_row + x];
                float R = sd_radius(cc, rcap), up, acc[4] = {0, 0, 0, 0};
                int k = sd_level_of(R, &up);
                for (int lv = k; lv <= k + 1; lv++) {
                    float wgt = lv == k ? 1.0f - up : up;
                    if (wgt <= 0.0f) continue;
                    int kk = lv < nlev ? lv : nlev - 1;
                    float inv = 1.0f / (float)(1 << kk);
                    gather_one(&g[kk], ap, ((float)x + 0.5f) * inv, ((float)y + 0.5f) * inv, R * inv,
                               cc < 0.0f, wgt, acc);
                }
                for (int c = 0; c < dst.nch; c++) o[(ptrdiff_t)x * dst.pix + c] = acc[c];
            }
        }
    }
    for (int k = 0; k < nlev; k++) { free(img[k]); free(g[k].loc); free(g[k].base); }
    return st;
}
