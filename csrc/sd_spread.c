/* Aperture-shaped scatter and gather whose cost does not grow with the blur radius.
 *
 * Scatter writes each source as horizontal spans into a per-row difference buffer (four
 * writes per span, anti-aliased ends) and a prefix sum along the row turns the differences into
 * coverage. The number of rows a source touches is 2R, so a large CoC is spread on a coarser
 * level of a pyramid (see SD_R_MAX) and upsampled back. Mass is exact at every step: spans are
 * normalised by their own discrete area, border overflow is mirrored back in, and the 2x
 * bilinear upsampling with edge clamping keeps every parent's mass.
 *
 * Threads: level rows are cut into bands at least twice as tall as the farthest a source
 * reaches; even bands run in parallel, then odd bands, so no two threads touch the same row and
 * the summation order (hence the result, bit for bit) does not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"

#define FADE 0.25f          /* top part of an octave (in log2 radius) that crossfades up a level */
#define MAX_LEVELS 20
#define REACH ((int)SD_R_MAX + 3) /* rows a source can reach above or below its own */
#define MAX_ROWS (2 * REACH + 2)

/* ------------------------------------------------------------------------------------------ */
/* aperture evaluation                                                                         */

typedef struct {
    float l[SD_MAX_SPANS], r[SD_MAX_SPANS];
} spans_t;

/* Spans of the unit aperture at height v (image-down, radius units); inverted = rotated 180. */
static inline void ap_eval(const sd_aperture *ap, float v, int inverted, spans_t *s)
{
    if (inverted) v = -v;
    int n = ap->nrows;
    float t = (v - ap->vmin) / (ap->vmax - ap->vmin) * (float)n - 0.5f;
    if (t < 0.0f) t = 0.0f;
    if (t > (float)(n - 1)) t = (float)(n - 1);
    int i = (int)t;
    if (i > n - 2) i = n - 2 < 0 ? 0 : n - 2;
    float f = t - (float)i;
    const float *a = ap->spans + (ptrdiff_t)i * ap->nspans * 2;
    const float *b = (n > 1) ? a + ap->nspans * 2 : a;
    for (int k = 0; k < ap->nspans; k++) {
        float l = a[2 * k] + f * (b[2 * k] - a[2 * k]);
        float r = a[2 * k + 1] + f * (b[2 * k + 1] - a[2 * k + 1]);
        if (inverted) { float tmp = l; l = -r; r = -tmp; }
        s->l[k] = l;
        s->r[k] = r > l ? r : l;
    }
}

static inline void ap_extent(const sd_aperture *ap, int inverted, float *lo, float *hi)
{
    *lo = inverted ? -ap->vmax : ap->vmin;
    *hi = inverted ? -ap->vmin : ap->vmax;
}

/* ------------------------------------------------------------------------------------------ */
/* mirrored borders                                                                            */

static inline int fold_index(int i, int n)
{
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* Calls BODY with (pa, pb), 0 <= pa <= pb <= n, for every piece of [a, b] on the mirrored line. */
#define FOR_FOLDED(a_, b_, n_, pa, pb, BODY)                                         \
    do {                                                                             \
        float n__ = (float)(n_), per__ = 2.0f * n__;                                 \
        float a__ = (a_), b__ = (b_);                                                \
        if (a__ >= 0.0f && b__ <= n__) {                                             \
            float pa = a__, pb = b__;                                                \
            BODY;                                                                    \
            break;                                                                   \
        }                                                                            \
        float sh__ = floorf(a__ / per__) * per__;                                    \
        a__ -= sh__; b__ -= sh__;                                                    \
        while (a__ < b__) {                                                          \
            if (a__ >= per__) { a__ -= per__; b__ -= per__; continue; }              \
            if (a__ < n__) {                                                         \
                float e__ = b__ < n__ ? b__ : n__;                                   \
                float pa = a__, pb = e__;                                            \
                BODY;                                                                \
                a__ = e__;                                                           \
            } else {                                                                 \
                float e__ = b__ < per__ ? b__ : per__;                               \
                float pa = per__ - e__, pb = per__ - a__;                            \
                BODY;                                                                \
                a__ = e__;                                                           \
            }                                                                        \
        }                                                                            \
    } while (0)

/* Adds v * (overlap of [a, b] with each cell) to a difference row of `cols` cells (entries
 * 0..cols+1). The plane's margins make clamping a no-op; it only guards memory. */
static inline void add_span(float *row, int cols, float a, float b, const float *v)
{
    if (a < 0.0f) a = 0.0f;
    if (b > (float)cols) b = (float)cols;
    if (!(b > a)) return;
    int ia = (int)a, ib = (int)b;
    float fa = a - (float)ia, fb = b - (float)ib;
    float *pa = row + 4 * ia, *pb = row + 4 * ib;
    for (int c = 0; c < 4; c++) {
        pa[c] += (1.0f - fa) * v[c];
        pa[4 + c] += fa * v[c];
        pb[c] -= (1.0f - fb) * v[c];
        pb[4 + c] -= fb * v[c];
    }
}

/* ------------------------------------------------------------------------------------------ */
/* one source                                                                                  */

/* A level of the pyramid: difference rows over the frame at this level plus a margin wide
 * enough that nothing spread from inside the frame leaves the plane. Level coordinate 0 is
 * plane cell `o` on both axes. */
typedef struct {
    float *buf;        /* rows x (cols + 2) x 4 floats */
    int rows, cols, o;
    int ny, nx;        /* cells of the frame at this level: ceil(H / 2^k), ceil(W / 2^k) */
    ptrdiff_t stride;  /* floats per row */
} plane_t;

/* The footprint of one source as a list of weighted spans relative to the source's cell: it
 * depends only on the radius, the orientation and the sub-cell position of the centre, so the
 * many sources of a flat surface (one CoC) share one plan. */
#define MAX_OPS (MAX_ROWS * SD_MAX_SPANS)
typedef struct {
    int dj[MAX_OPS];         /* row offset from floor(cy) */
    float a[MAX_OPS], b[MAX_OPS]; /* span ends relative to floor(cx) */
    float w[MAX_OPS];        /* strip height / footprint area */
    int n;
    float R, fx, fy;         /* what the plan was made for */
    int inverted, valid;
} plan_t;

/* Plans the aperture of radius R centred at (fx, fy) inside cell (0, 0), total weight exactly 1.
 * Rows are sampled at the middle of their strip inside the shape and weighted by the strip
 * height, so horizontal edges are anti-aliased as well as vertical ones. */
static void make_plan(plan_t *pl, const sd_aperture *ap, float fx, float fy, float R, int inverted)
{
    pl->R = R; pl->fx = fx; pl->fy = fy; pl->inverted = inverted; pl->valid = 1; pl->n = 0;
    if (!(R > 0.5f)) { /* the whole shape lies inside the source cell */
        pl->dj[0] = 0; pl->a[0] = 0.0f; pl->b[0] = 1.0f; pl->w[0] = 1.0f; pl->n = 1;
        return;
    }
    float Rc = R > SD_R_MAX + 1.0f ? SD_R_MAX + 1.0f : R; /* never reached by construction */
    float vlo, vhi;
    ap_extent(ap, inverted, &vlo, &vhi);
    float top = fy + Rc * vlo, bot = fy + Rc * vhi;
    int j0 = (int)floorf(top), j1 = (int)ceilf(bot) - 1;
    if (j1 - j0 + 1 > MAX_ROWS) j1 = j0 + MAX_ROWS - 1;
    double S = 0.0;
    for (int j = j0; j <= j1; j++) {
        float t0 = (float)j > top ? (float)j : top;
        float t1 = (float)(j + 1) < bot ? (float)(j + 1) : bot;
        float h = t1 - t0;
        if (h <= 0.0f) continue;
        spans_t sp;
        ap_eval(ap, (0.5f * (t0 + t1) - fy) / Rc, inverted, &sp);
        for (int k = 0; k < ap->nspans; k++) {
            if (!(sp.r[k] > sp.l[k])) continue;
            int n = pl->n++;
            pl->dj[n] = j;
            pl->a[n] = fx + Rc * sp.l[k];
            pl->b[n] = fx + Rc * sp.r[k];
            pl->w[n] = h;
            S += (double)h * (pl->b[n] - pl->a[n]);
        }
    }
    if (!(S > 1e-12)) { /* degenerate shape: keep the energy in the source cell */
        pl->dj[0] = 0; pl->a[0] = 0.0f; pl->b[0] = 1.0f; pl->w[0] = 1.0f; pl->n = 1;
        return;
    }
    for (int n = 0; n < pl->n; n++) pl->w[n] = (float)(pl->w[n] / S);
}

/* Spreads value v over the aperture of radius R centred at (cx, cy) (plane coordinates). */
static void splat(const plane_t *p, const sd_aperture *ap, plan_t *pl, float cx, float cy, float R,
                  int inverted, const float *v)
{
    float bx = floorf(cx), by = floorf(cy);
    float fx = cx - bx, fy = cy - by;
    if (!pl->valid || pl->R != R || pl->inverted != inverted || pl->fx != fx || pl->fy != fy)
        make_plan(pl, ap, fx, fy, R, inverted);
    int jb = (int)by;
    for (int n = 0; n < pl->n; n++) {
        int j = jb + pl->dj[n];
        if (j < 0 || j >= p->rows) continue; /* margins make this a no-op; it guards memory */
        float vv[4];
        for (int c = 0; c < 4; c++) vv[c] = v[c] * pl->w[n];
        add_span(p->buf + (ptrdiff_t)j * p->stride, p->cols, bx + pl->a[n], bx + pl->b[n], vv);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* levels                                                                                      */

/* Nominal level of radius R and the weight that crossfades to the next level up. */
static inline int level_of(float R, float *w_up)
{
    *w_up = 0.0f;
    if (R <= SD_R_MAX * 0.8408964f) return 0; /* 2^-FADE */
    float x = log2f(R / SD_R_MAX);
    int k = x <= 0.0f ? 0 : (int)ceilf(x);
    float f = (x - ((float)k - FADE)) / FADE;
    if (f > 0.0f) *w_up = f < 1.0f ? f : 1.0f;
    return k;
}

static inline float level_weight(float R, int k)
{
    float up;
    int n = level_of(R, &up);
    if (n == k) return 1.0f - up;
    if (n + 1 == k) return up;
    return 0.0f;
}

/* Number of levels needed for radii up to R. */
static int levels_for(float R)
{
    float up;
    int k = level_of(R, &up);
    if (up > 0.0f) k++;
    if (k >= MAX_LEVELS) k = MAX_LEVELS - 1;
    return k + 1;
}

struct sd_pyramid {
    int nlev, H, W;
    float rcap;        /* radii are clamped to this: a blur wider than the frame */
    plane_t lev[MAX_LEVELS];
    int d0[MAX_LEVELS], d1[MAX_LEVELS]; /* plane rows that may be nonzero: [d0, d1) */
    int a0, a1;        /* frame rows holding the resolved result */
};

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static void mark_rows(sd_pyramid *p, int k, int r0, int r1)
{
    r0 = imax(r0, 0);
    r1 = imin(r1, p->lev[k].rows);
    if (r0 >= r1) return;
    if (p->d0[k] >= p->d1[k]) { p->d0[k] = r0; p->d1[k] = r1; return; }
    p->d0[k] = imin(p->d0[k], r0);
    p->d1[k] = imax(p->d1[k], r1);
}

static float radius_cap(int H, int W) { return 0.5f * (float)(H > W ? H : W) + 1.0f; }

sd_pyramid *sd_pyr_new(int H, int W, float max_coc)
{
    sd_pyramid *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->H = H;
    p->W = W;
    p->rcap = radius_cap(H, W);
    float R = 0.5f * max_coc < p->rcap ? 0.5f * max_coc : p->rcap;
    p->nlev = levels_for(R);
    int K = p->nlev - 1;
    /* Planes nest exactly (each twice the next coarser one), so the clamped bilinear upsampling
     * keeps mass; the top level's margin covers the farthest reach, and doubling covers the rest. */
    int bs = 1 << K;
    int nky = (H + bs - 1) / bs, nkx = (W + bs - 1) / bs;
    int mK = (int)ceilf(R / (float)bs) + 3;
    for (int k = 0; k < p->nlev; k++) {
        plane_t *l = &p->lev[k];
        int s = 1 << (K - k);
        l->o = mK * s;
        l->rows = (nky + 2 * mK) * s;
        l->cols = (nkx + 2 * mK) * s;
        l->ny = (H + (1 << k) - 1) >> k;
        l->nx = (W + (1 << k) - 1) >> k;
        l->stride = (ptrdiff_t)(l->cols + 2) * 4;
        l->buf = calloc((size_t)l->rows * (size_t)l->stride, sizeof(float));
        if (!l->buf) { sd_pyr_free(p); return NULL; }
    }
    return p;
}

void sd_pyr_free(sd_pyramid *p)
{
    if (!p) return;
    for (int k = 0; k < p->nlev; k++) free(p->lev[k].buf);
    free(p);
}

void sd_pyr_clear(sd_pyramid *p, int nthreads)
{
    int nt = sd_threads(nthreads);
    for (int k = 0; k < p->nlev; k++) {
        plane_t *l = &p->lev[k];
        int r0 = p->d0[k], r1 = p->d1[k];
        SD_PARALLEL_FOR(nt)
        for (int y = r0; y < r1; y++) memset(l->buf + (ptrdiff_t)y * l->stride, 0, sizeof(float) * (size_t)l->stride);
        p->d0[k] = p->d1[k] = 0;
    }
    p->a0 = p->a1 = 0;
}

void sd_pyr_active(const sd_pyramid *p, int *y0, int *y1)
{
    *y0 = p->a0;
    *y1 = p->a1;
}

float *sd_pyr_row(sd_pyramid *p, int y)
{
    const plane_t *l = &p->lev[0];
    return l->buf + (ptrdiff_t)(y + l->o) * l->stride + 4 * l->o;
}

typedef struct {
    sd_cview src;
    const float *coc;
    ptrdiff_t coc_row;
    int H, W;
    float rcap;
    const sd_aperture *ap;
} spread_ctx;

static inline void load_px(const sd_cview *s, int x, int y, float *v)
{
    const float *q = s->data + (ptrdiff_t)y * s->row + (ptrdiff_t)x * s->pix;
    for (int c = 0; c < 4; c++) v[c] = c < s->nch ? q[c] : 0.0f;
}

/* Spreads the level-k sources of frame rows [r0, r1) (level cells) into plane k. */
static void spread_rows(const spread_ctx *c, const plane_t *pl, int k, int r0, int r1)
{
    int bs = 1 << k;
    float inv = 1.0f / (float)bs, o = (float)pl->o;
    plan_t plan;
    plan.valid = 0;
    for (int by = r0; by < r1; by++) {
        for (int bx = 0; bx < pl->nx; bx++) {
            if (k == 0) {
                float cc = c->coc[(ptrdiff_t)by * c->coc_row + bx];
                float R = fminf(0.5f * fabsf(cc), c->rcap);
                float w = level_weight(R, 0);
                if (w <= 0.0f) continue;
                float v[4];
                load_px(&c->src, bx, by, v);
                if (v[0] == 0.0f && v[1] == 0.0f && v[2] == 0.0f && v[3] == 0.0f) continue;
                for (int ch = 0; ch < 4; ch++) v[ch] *= w;
                splat(pl, c->ap, &plan, (float)bx + 0.5f + o, (float)by + 0.5f + o, R, cc < 0.0f, v);
                continue;
            }
            /* merge the block's members of this level into one source at their light centroid */
            double sv[4] = {0, 0, 0, 0}, so = 0, sx = 0, sy = 0, sr = 0, ss = 0;
            int y1 = (by + 1) * bs < c->H ? (by + 1) * bs : c->H;
            int x1 = (bx + 1) * bs < c->W ? (bx + 1) * bs : c->W;
            for (int y = by * bs; y < y1; y++) {
                const float *cr = c->coc + (ptrdiff_t)y * c->coc_row;
                for (int x = bx * bs; x < x1; x++) {
                    float cc = cr[x];
                    float R = fminf(0.5f * fabsf(cc), c->rcap);
                    float w = level_weight(R, k);
                    if (w <= 0.0f) continue;
                    float v[4];
                    load_px(&c->src, x, y, v);
                    double e = fabs(v[0]) + fabs(v[1]) + fabs(v[2]) + fabs(v[3]);
                    if (e == 0.0) continue;
                    double ow = w * e;
                    for (int ch = 0; ch < 4; ch++) sv[ch] += (double)w * v[ch];
                    so += ow;
                    sx += ow * (x + 0.5);
                    sy += ow * (y + 0.5);
                    sr += ow * R;
                    ss += ow * (cc < 0.0f ? -1.0 : 1.0);
                }
            }
            if (so <= 0.0) continue;
            float v[4] = {(float)sv[0], (float)sv[1], (float)sv[2], (float)sv[3]};
            splat(pl, c->ap, &plan, (float)(sx / so) * inv + o, (float)(sy / so) * inv + o, (float)(sr / so) * inv,
                  ss < 0.0, v);
        }
    }
}

void sd_pyr_spread(sd_pyramid *p, sd_cview src, const float *coc, ptrdiff_t coc_row,
                   const sd_aperture *ap, int row0, int row1, int nthreads)
{
    spread_ctx c = {src, coc, coc_row, p->H, p->W, p->rcap, ap};
    int nt = sd_threads(nthreads);
    row0 = imax(row0, 0);
    row1 = imin(row1, p->H);
    if (row0 >= row1) return;
    for (int k = 0; k < p->nlev; k++) {
        const plane_t *pl = &p->lev[k];
        int y0 = row0 >> k, y1 = imin((row1 + (1 << k) - 1) >> k, pl->ny);
        mark_rows(p, k, y0 + pl->o - REACH, y1 + pl->o + REACH);
        /* bands start at y0 and depend only on the rows spread, never on the thread count */
        int band = 2 * REACH + 2;
        int nb = (y1 - y0 + band - 1) / band;
        if (nb < 3) { /* too short to split */
            spread_rows(&c, pl, k, y0, y1);
            continue;
        }
        for (int phase = 0; phase < 2; phase++) {
            SD_PARALLEL_FOR_DYN(nt)
            for (int b = phase; b < nb; b += 2) {
                int r0 = y0 + b * band, r1 = imin(r0 + band, y1);
                spread_rows(&c, pl, k, r0, r1);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* resolve: prefix sums, upsampling, folding the margins back in                               */

static void prefix_rows(plane_t *l, int r0, int r1, int nthreads)
{
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int y = r0; y < r1; y++) {
        float *r = l->buf + (ptrdiff_t)y * l->stride;
        float acc[4] = {0, 0, 0, 0};
        for (int x = 0; x < l->cols; x++)
            for (int c = 0; c < 4; c++) { acc[c] += r[4 * x + c]; r[4 * x + c] = acc[c]; }
    }
}

/* Adds the 2x bilinear upsampling of coarse (resolved) into fine, which is exactly twice its
 * size: each child gets a quarter of the interpolated parent density; sampling is clamped at
 * the plane's ends, which keeps every parent's total. */
static void upsample_add(const plane_t *coarse, plane_t *fine, int r0, int r1, int nthreads)
{
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int fy = r0; fy < r1; fy++) {
        float *dst = fine->buf + (ptrdiff_t)fy * fine->stride;
        float py = 0.5f * ((float)fy + 0.5f) - 0.5f;
        if (py < 0.0f) py = 0.0f;
        if (py > (float)(coarse->rows - 1)) py = (float)(coarse->rows - 1);
        int y0 = (int)py, y1 = y0 + 1 < coarse->rows ? y0 + 1 : y0;
        float wy = py - (float)y0;
        const float *r0 = coarse->buf + (ptrdiff_t)y0 * coarse->stride;
        const float *r1 = coarse->buf + (ptrdiff_t)y1 * coarse->stride;
        for (int fx = 0; fx < fine->cols; fx++) {
            float px = 0.5f * ((float)fx + 0.5f) - 0.5f;
            if (px < 0.0f) px = 0.0f;
            if (px > (float)(coarse->cols - 1)) px = (float)(coarse->cols - 1);
            int x0 = (int)px, x1 = x0 + 1 < coarse->cols ? x0 + 1 : x0;
            float wx = px - (float)x0;
            float w00 = 0.25f * (1 - wx) * (1 - wy), w01 = 0.25f * wx * (1 - wy);
            float w10 = 0.25f * (1 - wx) * wy, w11 = 0.25f * wx * wy;
            for (int c = 0; c < 4; c++)
                dst[4 * fx + c] += w00 * r0[4 * x0 + c] + w01 * r0[4 * x1 + c] + w10 * r1[4 * x0 + c] +
                                   w11 * r1[4 * x1 + c];
        }
    }
}

/* Mirrors what landed in the level-0 margins back into the frame (the frame continues as its
 * mirror image, so its light beyond an edge belongs to the pixel it mirrors). */
static void fold_margins(plane_t *l, int H, int W, int d0, int d1, int y0, int y1, int nthreads)
{
    int nt = sd_threads(nthreads);
    for (int j = d0; j < d1; j++) { /* rows, serial: several margin rows may share a target */
        int y = j - l->o;
        if (y >= 0 && y < H) continue;
        float *src = l->buf + (ptrdiff_t)j * l->stride;
        float *dst = l->buf + (ptrdiff_t)(fold_index(y, H) + l->o) * l->stride;
        for (int i = 0; i < 4 * l->cols; i++) dst[i] += src[i];
    }
    SD_PARALLEL_FOR(nt)
    for (int y = y0; y < y1; y++) {
        float *r = l->buf + (ptrdiff_t)(y + l->o) * l->stride;
        for (int i = 0; i < l->cols; i++) {
            int x = i - l->o;
            if (x >= 0 && x < W) continue;
            float *d = r + 4 * (fold_index(x, W) + l->o);
            for (int c = 0; c < 4; c++) d[c] += r[4 * i + c];
        }
    }
}

void sd_pyr_resolve(sd_pyramid *p, int nthreads)
{
    int K = p->nlev - 1;
    prefix_rows(&p->lev[K], p->d0[K], p->d1[K], nthreads);
    for (int k = K; k > 0; k--) {
        prefix_rows(&p->lev[k - 1], p->d0[k - 1], p->d1[k - 1], nthreads);
        if (p->d0[k] < p->d1[k]) {
            /* children of the coarse rows [d0, d1) under the 2x bilinear kernel */
            int r0 = imax(2 * p->d0[k] - 1, 0), r1 = imin(2 * p->d1[k] + 1, p->lev[k - 1].rows);
            upsample_add(&p->lev[k], &p->lev[k - 1], r0, r1, nthreads);
            mark_rows(p, k - 1, r0, r1);
        }
    }
    /* frame rows holding the result: the dirty rows inside the frame, plus those the margins
     * fold onto */
    plane_t *l = &p->lev[0];
    int d0 = p->d0[0], d1 = p->d1[0];
    if (d0 >= d1) { p->a0 = p->a1 = 0; return; }
    int y0 = imax(d0 - l->o, 0), y1 = imin(d1 - l->o, p->H);
    if (d0 - l->o < 0) { y0 = 0; y1 = imax(y1, imin(l->o - d0, p->H)); }
    if (d1 - l->o > p->H) { y1 = p->H; y0 = imin(y0, imax(p->H - (d1 - l->o - p->H), 0)); }
    if (y0 >= y1) { y0 = 0; y1 = p->H; } /* everything folded: be safe */
    fold_margins(l, p->H, p->W, d0, d1, y0, y1, nthreads);
    mark_rows(p, 0, y0 + l->o, y1 + l->o);
    p->a0 = y0;
    p->a1 = y1;
}

/* ------------------------------------------------------------------------------------------ */
/* public scatter                                                                              */

static float max_abs(int H, int W, const float *coc, ptrdiff_t row)
{
    float m = 0.0f;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float a = fabsf(coc[(ptrdiff_t)y * row + x]);
            if (a > m) m = a;
        }
    return m;
}

sd_status sd_scatter(int H, int W, sd_cview src, const float *coc, ptrdiff_t coc_row,
                     const sd_aperture *ap, sd_view dst, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || src.nch < 1 || src.nch > 4 || dst.nch != src.nch || ap->nrows < 1)
        return SD_ERR_ARG;
    sd_pyramid *p = sd_pyr_new(H, W, max_abs(H, W, coc, coc_row));
    if (!p) return SD_ERR_NOMEM;
    sd_pyr_spread(p, src, coc, coc_row, ap, 0, H, nthreads);
    if (cancel && cancel->check && cancel->check(cancel->ctx)) { sd_pyr_free(p); return SD_ERR_INTERRUPTED; }
    sd_pyr_resolve(p, nthreads);
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        int live = y >= p->a0 && y < p->a1;
        const float *r = sd_pyr_row(p, y);
        float *o = dst.data + (ptrdiff_t)y * dst.row;
        for (int x = 0; x < W; x++)
            for (int c = 0; c < dst.nch; c++) o[(ptrdiff_t)x * dst.pix + c] = live ? r[4 * x + c] : 0.0f;
    }
    sd_pyr_free(p);
    return SD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* gather                                                                                      */

/* Row integrals from prefix sums kept in two parts, so that a short span of a long row is not
 * the difference of two large float sums: a double base every GBLK cells and a float running
 * sum that restarts there. */
#define GBLK 64
typedef struct {
    float *loc;        /* H rows x (W + 1) x 4: sum from the start of the cell's block */
    double *base;      /* H rows x (W / GBLK + 1) x 4: sum up to each block start */
    int H, W;
    ptrdiff_t stride, bstride;
} gplane_t;

static inline double prefix_at(const float *loc, const double *base, int x, int c)
{
    return base[4 * (x / GBLK) + c] + (double)loc[4 * x + c];
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
static inline void row_integral(const gplane_t *g, int y, float a, float b, float *acc, float wgt)
{
    int fy = fold_index(y, g->H);
    const float *loc = g->loc + (ptrdiff_t)fy * g->stride;
    const double *base = g->base + (ptrdiff_t)fy * g->bstride;
    FOR_FOLDED(a, b, g->W, pa, pb, row_integral_in(loc, base, g->W, pa, pb, acc, wgt));
}

/* Aperture-weighted mean of plane g around (cx, cy) with radius R, added to acc times wgt. */
static void gather_one(const gplane_t *g, const sd_aperture *ap, float cx, float cy, float R,
                       int inverted, float wgt, float *acc)
{
    if (!(R > 0.5f)) { /* the whole shape lies inside this cell */
        row_integral(g, (int)floorf(cy), floorf(cx), floorf(cx) + 1.0f, acc, wgt);
        return;
    }
    if (R > SD_R_MAX + 1.0f) R = SD_R_MAX + 1.0f;
    float vlo, vhi;
    ap_extent(ap, inverted, &vlo, &vhi);
    float top = cy + R * vlo, bot = cy + R * vhi;
    int j0 = (int)floorf(top), j1 = (int)ceilf(bot) - 1;
    if (j1 - j0 + 1 > MAX_ROWS) j1 = j0 + MAX_ROWS - 1;
    float sum[4] = {0, 0, 0, 0};
    double S = 0.0;
    for (int j = j0; j <= j1; j++) {
        float t0 = (float)j > top ? (float)j : top;
        float t1 = (float)(j + 1) < bot ? (float)(j + 1) : bot;
        float h = t1 - t0;
        if (h <= 0.0f) continue;
        spans_t s;
        ap_eval(ap, (0.5f * (t0 + t1) - cy) / R, inverted, &s);
        for (int k = 0; k < ap->nspans; k++) {
            if (s.r[k] <= s.l[k]) continue;
            S += (double)h * (s.r[k] - s.l[k]) * R;
            row_integral(g, j, cx + R * s.l[k], cx + R * s.r[k], sum, h);
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
    float rcap = radius_cap(H, W);
    float Rmax = 0.5f * max_abs(H, W, coc, coc_row);
    int nlev = levels_for(Rmax < rcap ? Rmax : rcap);
    int nt = sd_threads(nthreads);
    gplane_t g[MAX_LEVELS];
    float *img[MAX_LEVELS];
    memset(g, 0, sizeof g);
    memset(img, 0, sizeof img);
    sd_status st = SD_OK;
    /* level images (box-downsampled, mirrored at odd ends) and their row prefix sums */
    for (int k = 0; k < nlev && st == SD_OK; k++) {
        int h = k == 0 ? H : (g[k - 1].H + 1) / 2, w = k == 0 ? W : (g[k - 1].W + 1) / 2;
        g[k].H = h; g[k].W = w; g[k].stride = (ptrdiff_t)(w + 1) * 4;
        g[k].bstride = (ptrdiff_t)(w / GBLK + 2) * 4;
        img[k] = malloc(sizeof(float) * 4 * (size_t)h * (size_t)w);
        g[k].loc = malloc(sizeof(float) * (size_t)h * (size_t)g[k].stride);
        g[k].base = malloc(sizeof(double) * (size_t)h * (size_t)g[k].bstride);
        if (!img[k] || !g[k].loc || !g[k].base) { st = SD_ERR_NOMEM; break; }
        float *im = img[k];
        if (k == 0) {
            SD_PARALLEL_FOR(nt)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) load_px(&src, x, y, im + 4 * ((ptrdiff_t)y * w + x));
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
                if (x % GBLK == 0)
                    for (int c = 0; c < 4; c++) { tot[c] += run[c]; run[c] = 0.0f; pb[4 * (x / GBLK) + c] = tot[c]; }
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
                float R = fminf(0.5f * fabsf(cc), rcap), up, acc[4] = {0, 0, 0, 0};
                int k = level_of(R, &up);
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
