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
 * reaches (bands too short for that, into column tiles as wide); even bands run in parallel, and
 * each odd band once both its even neighbours are done, so no two threads touch the same cell at
 * once and every cell sums its even band's light before its odd band's: the result, bit for bit,
 * does not depend on the thread count. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_util.h"

#define FADE 0.25f          /* top part of an octave (in log2 radius) that crossfades up a level */
#define FADE_START 0.8408964f /* 2^-FADE: where in a level's top radius the crossfade starts */
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
    int *xl, *xr;      /* per row, the cells [xl, xr) that may be nonzero (empty: xl >= xr) */
} plane_t;

/* Row `row` of the plane may be nonzero in cells [x0, x1) too. */
static inline void touch(plane_t *l, int row, int x0, int x1)
{
    x0 = x0 > 0 ? x0 : 0;
    x1 = x1 < l->cols + 2 ? x1 : l->cols + 2;
    if (x0 >= x1) return;
    if (x0 < l->xl[row]) l->xl[row] = x0;
    if (x1 > l->xr[row]) l->xr[row] = x1;
}

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

/* Plans are kept in a small table per thread, a slot per footprint key (a plan depends on its
 * key alone, so which plans happen to be kept changes nothing but time): neighbours of a noisy
 * depth map rarely share a footprint with the one just before, but a row has few distinct ones. */
#define PLAN_SLOTS_LOG2 6
#define PLAN_SLOTS (1 << PLAN_SLOTS_LOG2)

static inline unsigned plan_slot(float R, float fx, float fy, int inv)
{
    uint32_t a, b, c;
    memcpy(&a, &R, sizeof a);
    memcpy(&b, &fx, sizeof b);
    memcpy(&c, &fy, sizeof c);
    uint32_t h = a ^ (b * 0x85ebca6bu) ^ (c * 0xc2b2ae35u) ^ (uint32_t)inv;
    h ^= h >> 15;
    return (h * 0x9e3779b1u) >> (32 - PLAN_SLOTS_LOG2);
}

/* A row of sources waiting to be spread at one level: their light and their footprints' keys
 * (radius and sub-cell centre; the centre quantised to 1/16 cell, far below what a blur shows,
 * so that the merged blocks of a flat surface share one footprint), and the plane cell holding
 * each centre. */
#define QP 16.0f
/* A row whose sources do not all share one radius has its radii rounded to 1/QR cell (from a
 * radius of 2 cells on, to 1/(2 QR) to 1/QR of the radius), so that the neighbours on a smooth
 * depth gradient share footprints and spread in runs instead of each planning its own (the
 * error, at most 1/256 of the radius or of a cell, is far below what a blur shows). The rounding
 * depends on each radius alone, so the result does not depend on the direction rows are read
 * in (a scene turned by 180 degrees renders turned); a row of one radius keeps it exactly, so a
 * uniform blur spreads exactly the aperture's shape. */
#define QR 128.0f

/* Rounds the radii (keys > 0) of sources [0, n) of a row unless they are all equal. */
static void round_radii(float *R, int n)
{
    float first = -1.0f;
    int mixed = 0;
    for (int i = 0; i < n && !mixed; i++)
        if (R[i] > 0.0f) {
            if (first < 0.0f) first = R[i];
            else mixed = R[i] != first;
        }
    if (!mixed) return;
    for (int i = 0; i < n; i++)
        if (R[i] > 0.0f) {
            /* steps of 1/QR cell, or of 1/(2 QR) to 1/QR of the radius once that is coarser */
            int e;
            (void)frexpf(R[i], &e);
            float step = e > 1 ? ldexpf(1.0f / QR, e - 1) : 1.0f / QR;
            float q = (float)sd_ifloor(R[i] / step + 0.5f) * step;
            R[i] = q > 0.5f ? q : 0.5f + 1.0f / QR; /* stays a real footprint */
        }
}
typedef struct {
    float *v;          /* n x 4 */
    float *R, *fx, *fy;
    int *cx, *cy, *inv;
    int n;
    plan_t *plans;     /* PLAN_SLOTS */
} rowsrc_t;

static int rowsrc_alloc(rowsrc_t *r, int n)
{
    r->v = malloc(sizeof(float) * 4 * (size_t)n);
    r->R = malloc(sizeof(float) * 3 * (size_t)n);
    r->cx = malloc(sizeof(int) * 3 * (size_t)n);
    r->plans = malloc(sizeof(plan_t) * PLAN_SLOTS);
    r->n = n;
    if (!r->v || !r->R || !r->cx || !r->plans) {
        free(r->v); free(r->R); free(r->cx); free(r->plans);
        r->v = NULL; r->R = NULL; r->cx = NULL; r->plans = NULL;
        return -1;
    }
    for (int i = 0; i < PLAN_SLOTS; i++) r->plans[i].valid = 0;
    r->fx = r->R + n;
    r->fy = r->R + 2 * (ptrdiff_t)n;
    r->cy = r->cx + n;
    r->inv = r->cx + 2 * (ptrdiff_t)n;
    return 0;
}

static void rowsrc_free(rowsrc_t *r)
{
    free(r->v);
    free(r->R);
    free(r->cx);
    free(r->plans);
}

/* Source i of the row: light v (NULL: none), centre (cx, cy) in plane coordinates, radius R. */
static inline void rowsrc_set(rowsrc_t *r, int i, const float *v, float cx, float cy, float R, int inverted)
{
    float *d = r->v + 4 * (ptrdiff_t)i;
    if (!v) {
        d[0] = d[1] = d[2] = d[3] = 0.0f;
        r->cx[i] = sd_ifloor(cx);
        r->cy[i] = sd_ifloor(cy);
        r->R[i] = -1.0f; /* no light: fits in any run */
        return;
    }
    for (int c = 0; c < 4; c++) d[c] = v[c];
    float bx = (float)sd_ifloor(cx), by = (float)sd_ifloor(cy);
    float fx = (float)sd_ifloor((cx - bx) * QP + 0.5f) * (1.0f / QP);
    float fy = (float)sd_ifloor((cy - by) * QP + 0.5f) * (1.0f / QP);
    if (fx >= 1.0f) { fx -= 1.0f; bx += 1.0f; }
    if (fy >= 1.0f) { fy -= 1.0f; by += 1.0f; }
    r->cx[i] = (int)bx;
    r->cy[i] = (int)by;
    r->fx[i] = fx;
    r->fy[i] = fy;
    r->R[i] = R > 0.5f ? R : 0.0f; /* at most half a cell: one footprint, the cell itself */
    r->inv[i] = R > 0.5f ? inverted : 0;
}

/* D[i] += c0 v[i] + c1 v[i-1] for cells i = 0..len (v is 0 outside [0, len)): one end of the
 * spans of `len` neighbouring sources that share a footprint, anti-aliased over two cells. */
static inline void run_end(float *restrict D, const float *restrict v, int len, float c0, float c1)
{
    for (int c = 0; c < 4; c++) D[c] += c0 * v[c];
    int m = 4 * (len - 1);
    float *restrict d = D + 4;
    const float *restrict a = v + 4, *restrict b = v;
    SD_SIMD
    for (int i = 0; i < m; i++) d[i] += c0 * a[i] + c1 * b[i];
    for (int c = 0; c < 4; c++) D[4 * len + c] += c1 * v[4 * (len - 1) + c];
}

/* Spreads `len` sources with light v (len x 4) that share one footprint (radius R, orientation,
 * centre (fx, fy) inside its cell) and occupy consecutive cells from plane cell (x0, y0). */
SD_CLONES static void spread_run(plane_t *p, const sd_aperture *ap, plan_t *plans, const float *v, int len,
                                  int x0, int y0, float R, float fx, float fy, int inv)
{
    plan_t *pl = &plans[plan_slot(R, fx, fy, inv)];
    if (!pl->valid || pl->R != R || pl->inverted != inv || pl->fx != fx || pl->fy != fy)
        make_plan(pl, ap, fx, fy, R, inv);
    for (int n = 0; n < pl->n; n++) {
        int row = y0 + pl->dj[n];
        if (row < 0 || row >= p->rows) continue; /* margins make this a no-op; it guards memory */
        float *D = p->buf + (ptrdiff_t)row * p->stride;
        float a = pl->a[n], b = pl->b[n], w = pl->w[n];
        int ia = sd_ifloor(a), ib = sd_ifloor(b);
        int xa = x0 + ia, xb = x0 + ib;
        float fa = a - (float)ia, fb = b - (float)ib;
        touch(p, row, xa, xb + len + 1);
        if (xa >= 0 && xb + len <= p->cols + 1) {
            run_end(D + 4 * (ptrdiff_t)xa, v, len, (1.0f - fa) * w, fa * w);
            run_end(D + 4 * (ptrdiff_t)xb, v, len, -(1.0f - fb) * w, -fb * w);
            continue;
        }
        for (int q = 0; q < len; q++) { /* at the plane's edge: clamp span by span */
            float vv[4];
            for (int c = 0; c < 4; c++) vv[c] = v[4 * q + c] * w;
            float base = (float)(x0 + q);
            add_span(D, p->cols, base + a, base + b, vv);
        }
    }
}

/* Spreads a gathered row: runs of neighbours with the same footprint go together. */
static void spread_row(plane_t *p, const sd_aperture *ap, rowsrc_t *r)
{
    int i = 0, n = r->n;
    round_radii(r->R, n);
    while (i < n) {
        if (r->R[i] < 0.0f) { i++; continue; }
        int j = i + 1, last = i;
        while (j < n && r->cx[j] == r->cx[i] + (j - i) && r->cy[j] == r->cy[i]) {
            if (r->R[j] >= 0.0f) {
                if (r->R[j] != r->R[i] || r->inv[j] != r->inv[i] || r->fx[j] != r->fx[i] || r->fy[j] != r->fy[i])
                    break;
                last = j;
            }
            j++;
        }
        spread_run(p, ap, r->plans, r->v + 4 * (ptrdiff_t)i, last + 1 - i, r->cx[i], r->cy[i], r->R[i], r->fx[i],
                   r->fy[i], r->inv[i]);
        i = last + 1;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* levels                                                                                      */

/* Nominal level of radius R (the smallest k with R <= SD_R_MAX 2^k) and the weight that
 * crossfades to the next level up, rising linearly in R over the top FADE (in log2 radius) of
 * the level's octave. No logarithm: this runs for every source of every level. */
static inline int level_of(float R, float *w_up)
{
    *w_up = 0.0f;
    float top = SD_R_MAX;
    int k = 0;
    while (R > top && k < MAX_LEVELS - 1) {
        top *= 2.0f;
        k++;
    }
    float f0 = top * FADE_START;
    if (R > f0) {
        float f = (R - f0) / (top - f0);
        *w_up = f < 1.0f ? f : 1.0f;
    }
    return k;
}

int sd_level_mostly(float R)
{
    float up;
    int k = level_of(R, &up);
    return up > 0.5f && k < MAX_LEVELS - 1 ? k + 1 : k;
}

/* Weight of level k for radius R when every level finer than `base` is folded into `base`. */
static inline float level_weight(float R, int k, int base)
{
    float up;
    int n = level_of(R, &up);
    if (n < base) return k == base ? 1.0f : 0.0f;
    if (n == k) return 1.0f - up;
    if (n + 1 == k) return up;
    return 0.0f;
}

/* Radii (lo, hi] that give level k any weight (slightly widened: used to skip rows only). */
static inline void level_span(int k, int base, float *lo, float *hi)
{
    *hi = 1.001f * SD_R_MAX * ldexpf(1.0f, k);
    *lo = k <= base ? -1.0f : 0.999f * SD_R_MAX * exp2f((float)k - 1.0f - FADE);
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
    int e0[MAX_LEVELS], e1[MAX_LEVELS]; /* plane columns that may be nonzero: [e0, e1) */
    float *rlo, *rhi;  /* per source row of the current spread: its radius range */
    int base;          /* level of the last resolve */
    int a0, a1, b0, b1; /* frame rows and columns (at the base level) holding its result */
};


static void mark(sd_pyramid *p, int k, int r0, int r1, int c0, int c1)
{
    r0 = imax(r0, 0);
    r1 = imin(r1, p->lev[k].rows);
    c0 = imax(c0, 0);
    c1 = imin(c1, p->lev[k].cols + 2);
    if (r0 >= r1 || c0 >= c1) return;
    if (p->d0[k] >= p->d1[k]) {
        p->d0[k] = r0; p->d1[k] = r1; p->e0[k] = c0; p->e1[k] = c1;
        return;
    }
    p->d0[k] = imin(p->d0[k], r0);
    p->d1[k] = imax(p->d1[k], r1);
    p->e0[k] = imin(p->e0[k], c0);
    p->e1[k] = imax(p->e1[k], c1);
}

static float radius_cap(int H, int W) { return 0.5f * (float)(H > W ? H : W) + 1.0f; }

sd_pyramid *sd_pyr_new(int H, int W, float max_coc, int nthreads)
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
    p->rlo = malloc(sizeof(float) * (size_t)H);
    p->rhi = malloc(sizeof(float) * (size_t)H);
    if (!p->rlo || !p->rhi) { sd_pyr_free(p); return NULL; }
    for (int k = 0; k < p->nlev; k++) {
        plane_t *l = &p->lev[k];
        int s = 1 << (K - k);
        l->o = mK * s;
        l->rows = (nky + 2 * mK) * s;
        l->cols = (nkx + 2 * mK) * s;
        l->ny = (H + (1 << k) - 1) >> k;
        l->nx = (W + (1 << k) - 1) >> k;
        l->stride = (ptrdiff_t)(l->cols + 2) * 4;
        l->buf = sd_big_calloc((size_t)l->rows * (size_t)l->stride, sizeof(float), nthreads);
        l->xl = malloc(sizeof(int) * 2 * (size_t)l->rows);
        if (!l->buf || !l->xl) { sd_pyr_free(p); return NULL; }
        l->xr = l->xl + l->rows;
        for (int y = 0; y < l->rows; y++) {
            l->xl[y] = l->cols + 2;
            l->xr[y] = 0;
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
    }
    free(p->rlo);
    free(p->rhi);
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
        plane_t *l = &p->lev[k];
        int r0 = p->d0[k], r1 = p->d1[k];
        if (r0 < r1) {
            SD_PARALLEL_FOR_DYN(nt)
            for (int y = r0; y < r1; y++) {
                if (l->xl[y] < l->xr[y])
                    memset(l->buf + (ptrdiff_t)y * l->stride + 4 * l->xl[y], 0,
                           sizeof(float) * 4 * (size_t)(l->xr[y] - l->xl[y]));
                l->xl[y] = l->cols + 2;
                l->xr[y] = 0;
            }
        }
        p->d0[k] = p->d1[k] = p->e0[k] = p->e1[k] = 0;
    }
    p->a0 = p->a1 = p->b0 = p->b1 = 0;
}

void sd_pyr_active(const sd_pyramid *p, int *y0, int *y1, int *x0, int *x1)
{
    *y0 = p->a0;
    *y1 = p->a1;
    *x0 = p->b0;
    *x1 = p->b1;
}

float *sd_pyr_row(sd_pyramid *p, int y)
{
    const plane_t *l = &p->lev[p->base];
    return l->buf + (ptrdiff_t)(y + l->o) * l->stride + 4 * l->o;
}

static inline void load_px(const sd_cview *s, int x, int y, float scale, float *v)
{
    const float *q = s->data + (ptrdiff_t)y * s->row + (ptrdiff_t)x * s->pix;
    for (int c = 0; c < 4; c++) v[c] = c < s->nch ? scale * q[c] : 0.0f;
}

/* Width (in cells of the level) of the column tiles sources are spread in; at least 2 REACH + 2,
 * so that tiles two apart never write the same cell. */
#define SPREAD_TILE 256
_Static_assert(SPREAD_TILE >= 2 * REACH + 2, "column tiles narrower than two reaches");

/* The light of source cell (x, y), times scale, as 4 channels. */
static inline void load_cell(const sd_pyr_src *s, int x, int y, float scale, float *v)
{
    const float *q = s->src.data +
                     (s->roff ? (s->roff[y] + x) * s->src.pix : (ptrdiff_t)y * s->src.row + (ptrdiff_t)x * s->src.pix);
    for (int c = 0; c < 4; c++) v[c] = c < s->src.nch ? scale * q[c] : 0.0f;
}

typedef struct {
    const sd_pyr_src *s;
    int base, col0, col1, row0, row1;
    float rcap;
    const sd_aperture *ap;
} spread_ctx;

/* Columns [x0, x1) of base row y that hold sources. */
static inline void row_span(const spread_ctx *c, int y, int *x0, int *x1)
{
    *x0 = c->col0;
    *x1 = c->col1;
    if (c->s->rx0) {
        *x0 = imax(*x0, c->s->rx0[y]);
        *x1 = imin(*x1, c->s->rx1[y]);
    }
}

/* Level weight with the common case (a radius spread at level 0) first. */
static inline float weight_at(float R, int k, int base)
{
    if (R <= SD_R_MAX * FADE_START) return k == base ? 1.0f : 0.0f;
    return level_weight(R, k, base);
}

/* One row of base-grid sources at their cell centres (the common case: no centroids, no
 * merging), gathered and spread in runs that share a radius. */
static void spread_row_cells(const spread_ctx *c, plane_t *pl, int k, int by, int bx0, int bx1, rowsrc_t *rs)
{
    const sd_pyr_src *s = c->s;
    const float *cr = s->coc + sd_pyr_cell(s, 0, by);
    const float *src = s->src.data + (s->roff ? s->roff[by] * s->src.pix : (ptrdiff_t)by * s->src.row);
    ptrdiff_t pix = s->src.pix;
    int nch = s->src.nch, any = 0;
    float rscale = 1.0f / (float)(1 << k);
    for (int bx = bx0; bx < bx1; bx++) {
        int i = bx - bx0;
        float cc = cr[bx];
        float R = 0.5f * fabsf(cc);
        R = R < c->rcap ? R : c->rcap;
        float w = weight_at(R, k, c->base) * s->scale;
        float *v = rs->v + 4 * (ptrdiff_t)i;
        const float *q = src + (ptrdiff_t)bx * pix;
        if (nch == 4) {
            for (int ch = 0; ch < 4; ch++) v[ch] = w * q[ch];
        } else {
            for (int ch = 0; ch < 4; ch++) v[ch] = ch < nch ? w * q[ch] : 0.0f;
        }
        int lit = v[0] != 0.0f || v[1] != 0.0f || v[2] != 0.0f || v[3] != 0.0f;
        float Rk = R * rscale;
        rs->R[i] = !lit ? -1.0f : (Rk > 0.5f ? Rk : 0.0f); /* at most half a cell: the cell itself */
        rs->inv[i] = Rk > 0.5f && cc < 0.0f;
        any |= lit;
    }
    if (!any) return;
    int n = bx1 - bx0, i = 0, o = pl->o;
    round_radii(rs->R, n);
    while (i < n) {
        if (rs->R[i] < 0.0f) { i++; continue; }
        int j = i + 1, last = i;
        for (; j < n; j++) {
            if (rs->R[j] < 0.0f) continue;
            if (rs->R[j] != rs->R[i] || rs->inv[j] != rs->inv[i]) break;
            last = j;
        }
        spread_run(pl, c->ap, rs->plans, rs->v + 4 * (ptrdiff_t)i, last + 1 - i, bx0 + i + o, by + o, rs->R[i], 0.5f,
                   0.5f, rs->inv[i]);
        i = last + 1;
    }
}

/* Spreads the level-k sources of level rows [r0, r1) into plane k: cells of the base grid
 * directly at k == base, else merged 2^(k-base) x 2^(k-base) blocks at their light centroid. */
static void spread_rows(const spread_ctx *c, sd_pyramid *p, int k, int r0, int r1, rowsrc_t *rs)
{
    plane_t *pl = &p->lev[k];
    const sd_pyr_src *s = c->s;
    int sh = k - c->base, bs = 1 << sh;
    float inv = 1.0f / (float)bs, o = (float)pl->o, rscale = 1.0f / (float)(1 << k);
    float lo, hi;
    level_span(k, c->base, &lo, &hi);
    /* Column tiles, each spread over all the band's rows before the next: a source writes the
     * 2R rows around its own, and a tile keeps those rows' stretch of the plane in cache. */
    for (int t0 = c->col0; t0 < c->col1; t0 += SPREAD_TILE << sh) {
    int t1 = imin(t0 + (SPREAD_TILE << sh), c->col1);
    for (int by = r0; by < r1; by++) {
        int y0 = imax(by << sh, c->row0), y1 = imin((by + 1) << sh, c->row1);
        float rl = INFINITY, rh = -INFINITY;
        int ux0 = t1, ux1 = t0; /* the columns of the tile the block row's sources span */
        for (int y = y0; y < y1; y++) {
            rl = rl < p->rlo[y - c->row0] ? rl : p->rlo[y - c->row0];
            rh = rh > p->rhi[y - c->row0] ? rh : p->rhi[y - c->row0];
            int a, b;
            row_span(c, y, &a, &b);
            a = imax(a, t0);
            b = imin(b, t1);
            if (a < b) { ux0 = imin(ux0, a); ux1 = imax(ux1, b); }
        }
        if (!(rh > lo && rl <= hi) || ux0 >= ux1) continue; /* no source of this level in these rows */
        int bx0 = ux0 >> sh, bx1 = (ux1 + bs - 1) >> sh;
        rs->n = bx1 - bx0;
        if (sh == 0 && !s->pos) {
            spread_row_cells(c, pl, k, by, bx0, bx1, rs);
            continue;
        }
        int any = 0;
        for (int bx = bx0; bx < bx1; bx++) {
            int i = bx - bx0;
            float ccx = (float)bx + 0.5f + o, ccy = (float)by + 0.5f + o;
            if (sh == 0) {
                float cc = s->coc[sd_pyr_cell(s, bx, by)];
                float R = 0.5f * fabsf(cc);
                R = R < c->rcap ? R : c->rcap;
                float w = level_weight(R, k, c->base);
                float v[4] = {0, 0, 0, 0};
                if (w > 0.0f) load_cell(s, bx, by, s->scale * w, v);
                if (v[0] == 0.0f && v[1] == 0.0f && v[2] == 0.0f && v[3] == 0.0f) {
                    rowsrc_set(rs, i, NULL, ccx, ccy, 0.0f, 0);
                    continue;
                }
                if (s->pos) {
                    const float *q = s->pos + 2 * sd_pyr_cell(s, bx, by);
                    ccx += q[0];
                    ccy += q[1];
                }
                rowsrc_set(rs, i, v, ccx, ccy, R * rscale, cc < 0.0f);
                any = 1;
                continue;
            }
            int x0 = imax(bx << sh, ux0), x1 = imin((bx + 1) << sh, ux1);
            /* centroid sums in double: the weights may be tiny (denormal light) or huge */
            float sv[4] = {0, 0, 0, 0}, rmin = INFINITY, rmax = -INFINITY;
            double so = 0, sx = 0, sy = 0, sr = 0, ss = 0;
            for (int y = y0; y < y1; y++) {
                if (!(p->rhi[y - c->row0] > lo && p->rlo[y - c->row0] <= hi)) continue;
                const float *cr = s->coc + sd_pyr_cell(s, 0, y);
                int ra, rb; /* this row's own sources (rows may be stored only that wide) */
                row_span(c, y, &ra, &rb);
                ra = imax(ra, x0);
                rb = imin(rb, x1);
                for (int x = ra; x < rb; x++) {
                    float cc = cr[x];
                    float R = 0.5f * fabsf(cc);
                    R = R < c->rcap ? R : c->rcap;
                    float w = level_weight(R, k, c->base);
                    if (w <= 0.0f) continue;
                    float v[4];
                    load_cell(s, x, y, s->scale * w, v);
                    double e = (double)fabsf(v[0]) + fabsf(v[1]) + fabsf(v[2]) + fabsf(v[3]);
                    if (e == 0.0) continue;
                    float px = (float)x + 0.5f, py = (float)y + 0.5f;
                    if (s->pos) {
                        const float *q = s->pos + 2 * sd_pyr_cell(s, x, y);
                        px += q[0];
                        py += q[1];
                    }
                    for (int ch = 0; ch < 4; ch++) sv[ch] += v[ch];
                    so += e;
                    sx += e * px;
                    sy += e * py;
                    sr += e * R;
                    ss += cc < 0.0f ? -e : e;
                    rmin = R < rmin ? R : rmin;
                    rmax = R > rmax ? R : rmax;
                }
            }
            if (!(so > 0.0)) {
                rowsrc_set(rs, i, NULL, ccx, ccy, 0.0f, 0);
                continue;
            }
            /* a block of one radius keeps it exactly (its weighted mean would round); a centroid
             * outside the block (weights overflowing) falls back to the block's centre */
            float Rm = rmin == rmax ? rmin : (float)(sr / so);
            float mx = (float)(sx / so) * inv, my = (float)(sy / so) * inv;
            if (!(mx >= (float)bx && mx <= (float)(bx + 1))) mx = (float)bx + 0.5f;
            if (!(my >= (float)by && my <= (float)(by + 1))) my = (float)by + 0.5f;
            if (!(Rm >= rmin && Rm <= rmax)) Rm = rmin;
            rowsrc_set(rs, i, sv, mx + o, my + o, Rm * rscale, ss < 0.0);
            any = 1;
        }
        if (any) spread_row(pl, c->ap, rs);
    }
    }
}

sd_status sd_pyr_spread(sd_pyramid *p, int base, const sd_pyr_src *s, const sd_aperture *ap, int row0, int row1,
                        int col0, int col1, int nthreads)
{
    int nt = sd_threads(nthreads);
    if (base < 0 || base >= p->nlev) return SD_ERR_ARG;
    int ny = p->lev[base].ny, nx = p->lev[base].nx;
    row0 = imax(row0, 0);
    row1 = imin(row1, ny);
    col0 = imax(col0, 0);
    col1 = imin(col1, nx);
    if (row0 >= row1 || col0 >= col1) return SD_OK;
    spread_ctx c = {s, base, col0, col1, row0, row1, p->rcap, ap};
    /* one row of gathered sources per thread, as wide as the widest level's rows */
    rowsrc_t rs[SD_MAX_THREADS];
    int nrs = 0;
    for (; nrs < nt; nrs++)
        if (rowsrc_alloc(&rs[nrs], col1 - col0 + 1)) break;
    if (nrs < nt) {
        for (int i = 0; i < nrs; i++) rowsrc_free(&rs[i]);
        return SD_ERR_NOMEM;
    }
    /* radius range of every source row, so that each level only visits rows it has sources in */
    SD_PARALLEL_FOR_DYN(nt)
    for (int y = row0; y < row1; y++) {
        const float *cr = s->coc + sd_pyr_cell(s, 0, y);
        float lo = INFINITY, hi = -INFINITY;
        int xa, xb;
        row_span(&c, y, &xa, &xb);
        SD_SIMD_MINMAX(lo, hi)
        for (int x = xa; x < xb; x++) {
            float a = fabsf(cr[x]);
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
        }
        /* radii, clamped like the sources' */
        lo = 0.5f * lo < p->rcap ? 0.5f * lo : p->rcap;
        hi = 0.5f * hi < p->rcap ? 0.5f * hi : p->rcap;
        p->rlo[y - row0] = xa < xb ? lo : INFINITY;
        p->rhi[y - row0] = xa < xb ? hi : -INFINITY;
    }
    for (int k = base; k < p->nlev; k++) {
        plane_t *pl = &p->lev[k];
        int sh = k - base;
        int y0 = row0 >> sh, y1 = imin((row1 + (1 << sh) - 1) >> sh, pl->ny);
        int x0 = col0 >> sh, x1 = imin((col1 + (1 << sh) - 1) >> sh, pl->nx);
        /* the level rows that hold sources of this level */
        float lo, hi;
        level_span(k, base, &lo, &hi);
        int f0 = y1, f1 = y0;
        float rmax = 0.0f;
        for (int y = row0; y < row1; y++)
            if (p->rhi[y - row0] > lo && p->rlo[y - row0] <= hi) {
                f0 = imin(f0, y >> sh);
                f1 = imax(f1, (y >> sh) + 1);
                rmax = p->rhi[y - row0] > rmax ? p->rhi[y - row0] : rmax;
            }
        if (f0 >= f1) continue;
        /* the farthest these sources reach, in rows of this level (a footprint never exceeds
         * SD_R_MAX + 1 cells, see make_plan) */
        float rk = ldexpf(rmax, -k);
        int reach = imin(sd_iceil(rk < SD_R_MAX + 1.0f ? rk : SD_R_MAX + 1.0f) + 3, REACH);
        mark(p, k, f0 + pl->o - reach, f1 + pl->o + reach, x0 + pl->o - reach, x1 + pl->o + reach);
        /* bands start at f0 and depend only on the rows spread, never on the thread count */
        int band = 2 * reach + 2;
        int nb = (f1 - f0 + band - 1) / band;
        /* bands too short to split by rows are split by columns, in the column tiles
         * spread_rows uses anyway, so that the result is the same for any thread count */
        int tile = SPREAD_TILE << sh, ntile = (col1 - col0 + tile - 1) / tile;
        int bycol = nb < 3;
        if (bycol && ntile < 3) {
            spread_rows(&c, p, k, f0, f1, &rs[0]);
            continue;
        }
        if (bycol) {
            /* the tiles write the same rows: widen the rows' nonzero ranges up front to all the
             * tiles can reach (so the tiles never change them) */
            for (int y = imax(f0 + pl->o - reach, 0); y < imin(f1 + pl->o + reach, pl->rows); y++)
                touch(pl, y, x0 + pl->o - reach, x1 + pl->o + reach);
            nb = ntile;
        }
        /* Even bands (or tiles) write cells no other even one writes, odd ones likewise; an
         * odd one starts once both even neighbours are done. So every cell gets its even band's light
         * before its odd band's whatever the thread count, and no thread waits at a barrier
         * between the two halves. */
        atomic_int *done = malloc(sizeof(atomic_int) * (size_t)nb);
        if (!done) {
            for (int i = 0; i < nrs; i++) rowsrc_free(&rs[i]);
            return SD_ERR_NOMEM;
        }
        for (int b = 0; b < nb; b++) atomic_init(&done[b], 0);
        int ne = (nb + 1) / 2;
        /* dynamic scheduling hands the tasks out in order: every band an odd one waits for is
         * already being spread */
        SD_PARALLEL_FOR_DYN(nt)
        for (int t = 0; t < nb; t++) {
            int b = t < ne ? 2 * t : 2 * (t - ne) + 1;
            if (b & 1)
                while (!atomic_load_explicit(&done[b - 1], memory_order_acquire) ||
                       (b + 1 < nb && !atomic_load_explicit(&done[b + 1], memory_order_acquire)))
                    sd_relax_cpu();
            if (bycol) {
                spread_ctx ct = c;
                ct.col0 = col0 + b * tile;
                ct.col1 = imin(ct.col0 + tile, col1);
                spread_rows(&ct, p, k, f0, f1, &rs[sd_thread_id()]);
            } else {
                int r0 = f0 + b * band, r1 = imin(r0 + band, f1);
                spread_rows(&c, p, k, r0, r1, &rs[sd_thread_id()]);
            }
            atomic_store_explicit(&done[b], 1, memory_order_release);
        }
        free(done);
    }
    for (int i = 0; i < nrs; i++) rowsrc_free(&rs[i]);
    return SD_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* resolve: prefix sums, upsampling, folding the margins back in                               */

static void prefix_rows(plane_t *l, int r0, int r1, int nthreads)
{
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR_DYN(nt)
    for (int y = r0; y < r1; y++) {
        float *r = l->buf + (ptrdiff_t)y * l->stride;
        float acc[4] = {0, 0, 0, 0};
        for (int x = l->xl[y]; x < l->xr[y]; x++)
            for (int c = 0; c < 4; c++) { acc[c] += r[4 * x + c]; r[4 * x + c] = acc[c]; }
    }
}

/* Adds the 2x bilinear upsampling of coarse (resolved) into fine, which is exactly twice its
 * size: each child gets a quarter of the interpolated parent density; sampling is clamped at
 * the plane's ends, which keeps every parent's total. Fine rows [r0, r1), columns [c0, c1). */
static void upsample_add(const plane_t *coarse, plane_t *fine, int r0, int r1, int nthreads)
{
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR_DYN(nt)
    for (int fy = r0; fy < r1; fy++) {
        float *dst = fine->buf + (ptrdiff_t)fy * fine->stride;
        float py = 0.5f * ((float)fy + 0.5f) - 0.5f;
        if (py < 0.0f) py = 0.0f;
        if (py > (float)(coarse->rows - 1)) py = (float)(coarse->rows - 1);
        int y0 = (int)py, y1 = y0 + 1 < coarse->rows ? y0 + 1 : y0;
        float wy = py - (float)y0;
        const float *q0 = coarse->buf + (ptrdiff_t)y0 * coarse->stride;
        const float *q1 = coarse->buf + (ptrdiff_t)y1 * coarse->stride;
        /* the children of the parents' nonzero cells, under the bilinear kernel */
        int pl = imin(coarse->xl[y0], coarse->xl[y1]), pr = imax(coarse->xr[y0], coarse->xr[y1]);
        if (pl >= pr) continue;
        int c0 = imax(2 * pl - 1, 0), c1 = imin(2 * pr + 1, fine->cols);
        touch(fine, fy, c0, c1);
        for (int fx = c0; fx < c1; fx++) {
            float px = 0.5f * ((float)fx + 0.5f) - 0.5f;
            if (px < 0.0f) px = 0.0f;
            if (px > (float)(coarse->cols - 1)) px = (float)(coarse->cols - 1);
            int x0 = (int)px, x1 = x0 + 1 < coarse->cols ? x0 + 1 : x0;
            float wx = px - (float)x0;
            float w00 = 0.25f * (1 - wx) * (1 - wy), w01 = 0.25f * wx * (1 - wy);
            float w10 = 0.25f * (1 - wx) * wy, w11 = 0.25f * wx * wy;
            for (int c = 0; c < 4; c++)
                dst[4 * fx + c] += w00 * q0[4 * x0 + c] + w01 * q0[4 * x1 + c] + w10 * q1[4 * x0 + c] +
                                   w11 * q1[4 * x1 + c];
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
    plane_t *l = &p->lev[k];
    int d0 = p->d0[k], d1 = p->d1[k], o = l->o;
    for (int j = d0; j < d1; j++) { /* rows, serial: several margin rows may share a target */
        int y = j - o;
        if (y >= 0 && y < l->ny) continue;
        if (l->xl[j] >= l->xr[j]) continue;
        int t = fold_index(y, l->ny) + o;
        float *src = l->buf + (ptrdiff_t)j * l->stride;
        float *dst = l->buf + (ptrdiff_t)t * l->stride;
        for (int i = 4 * l->xl[j]; i < 4 * l->xr[j]; i++) dst[i] += src[i];
        touch(l, t, l->xl[j], l->xr[j]);
    }
    int y0, y1;
    folded_span(d0 - o, d1 - o, l->ny, &y0, &y1);
    int b0 = l->nx, b1 = 0;
    SD_PARALLEL_FOR_DYN(nt)
    for (int y = y0; y < y1; y++) {
        int j = y + o;
        float *r = l->buf + (ptrdiff_t)j * l->stride;
        int xl = l->xl[j], xr = l->xr[j];
        if (xl >= xr) continue;
        for (int i = xl; i < xr; i++) {
            int x = i - o;
            if (x >= 0 && x < l->nx) continue;
            float *d = r + 4 * (fold_index(x, l->nx) + o);
            for (int c = 0; c < 4; c++) d[c] += r[4 * i + c];
        }
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
    p->a0 = y0;
    p->a1 = y1;
    p->b0 = b0;
    p->b1 = b1;
    if (p->a0 >= p->a1 || p->b0 >= p->b1) p->a0 = p->a1 = p->b0 = p->b1 = 0;
    /* the rows folded onto are live now too */
    if (p->a0 < p->a1) mark(p, k, p->a0 + o, p->a1 + o, p->b0 + o, p->b1 + o);
}

/* Frame cells [*x0, *x1) of base row y that hold anything after sd_pyr_resolve. */
void sd_pyr_row_span(const sd_pyramid *p, int y, int *x0, int *x1)
{
    const plane_t *l = &p->lev[p->base];
    int j = y + l->o;
    *x0 = imax(l->xl[j] - l->o, 0);
    *x1 = imin(l->xr[j] - l->o, l->nx);
    if (*x0 >= *x1) { *x0 = 0; *x1 = 0; }
}

void sd_pyr_resolve(sd_pyramid *p, int base, int nthreads)
{
    int K = p->nlev - 1;
    if (base < 0) base = 0;
    if (base > K) base = K;
    p->base = base;
    if (p->d0[K] < p->d1[K]) prefix_rows(&p->lev[K], p->d0[K], p->d1[K], nthreads);
    for (int k = K; k > base; k--) {
        plane_t *f = &p->lev[k - 1];
        if (p->d0[k - 1] < p->d1[k - 1]) prefix_rows(f, p->d0[k - 1], p->d1[k - 1], nthreads);
        if (p->d0[k] < p->d1[k]) {
            /* children of the coarse rows [d0, d1) under the 2x bilinear kernel */
            int r0 = imax(2 * p->d0[k] - 1, 0), r1 = imin(2 * p->d1[k] + 1, f->rows);
            int c0 = imax(2 * p->e0[k] - 1, 0), c1 = imin(2 * p->e1[k] + 1, f->cols);
            upsample_add(&p->lev[k], f, r0, r1, nthreads);
            mark(p, k - 1, r0, r1, c0, c1);
        }
    }
    if (p->d0[base] >= p->d1[base]) { p->a0 = p->a1 = p->b0 = p->b1 = 0; return; }
    fold_margins(p, base, nthreads);
}

/* ------------------------------------------------------------------------------------------ */
/* public scatter                                                                              */

float sd_max_abs(int H, int W, const float *v, ptrdiff_t row, int nthreads)
{
    enum { MAXB = 64 }; /* row blocks: the result is exact, so it does not depend on them */
    float bmax[MAXB];
    int nb = imin(MAXB, H);
    SD_PARALLEL_FOR(sd_threads(nthreads))
    for (int b = 0; b < nb; b++) {
        float lo = 0.0f, hi = 0.0f; /* a NaN compares false: left out */
        for (int y = (int)((long long)H * b / nb); y < (int)((long long)H * (b + 1) / nb); y++) {
            const float *r = v + (ptrdiff_t)y * row;
            SD_SIMD_MINMAX(lo, hi)
            for (int x = 0; x < W; x++) {
                lo = r[x] < lo ? r[x] : lo;
                hi = r[x] > hi ? r[x] : hi;
            }
        }
        bmax[b] = -lo > hi ? -lo : hi;
    }
    float m = 0.0f;
    for (int b = 0; b < nb; b++) m = bmax[b] > m ? bmax[b] : m;
    return m;
}

sd_status sd_scatter(int H, int W, sd_cview src, const float *coc, ptrdiff_t coc_row,
                     const sd_aperture *ap, sd_view dst, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || src.nch < 1 || src.nch > 4 || dst.nch != src.nch || ap->nrows < 1)
        return SD_ERR_ARG;
    sd_pyramid *p = sd_pyr_new(H, W, sd_max_abs(H, W, coc, coc_row, nthreads), nthreads);
    if (!p) return SD_ERR_NOMEM;
    sd_pyr_src s = {src, 1.0f, coc, NULL, coc_row, NULL, NULL, NULL};
    if (sd_pyr_spread(p, 0, &s, ap, 0, H, 0, W, nthreads) != SD_OK) { sd_pyr_free(p); return SD_ERR_NOMEM; }
    if (cancel && cancel->check && cancel->check(cancel->ctx)) { sd_pyr_free(p); return SD_ERR_INTERRUPTED; }
    sd_pyr_resolve(p, 0, nthreads);
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        int live = y >= p->a0 && y < p->a1;
        const float *r = sd_pyr_row(p, y);
        float *o = dst.data + (ptrdiff_t)y * dst.row;
        for (int x = 0; x < W; x++) {
            int on = live && x >= p->b0 && x < p->b1;
            for (int c = 0; c < dst.nch; c++) o[(ptrdiff_t)x * dst.pix + c] = on ? r[4 * x + c] : 0.0f;
        }
    }
    sd_pyr_release(p, nthreads);
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
            /* the mean is taken over the very ends integrated; a sliver narrower than 1/1000 px
             * adds nothing but the rounding of its ends, which its own tiny weight would blow up
             * (an aperture of slivers only falls back to the pixel below) */
            float pa = cx + R * s.l[k], pb = cx + R * s.r[k];
            if (!(pb - pa >= 1e-3f)) continue;
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
    float rcap = radius_cap(H, W);
    float Rmax = 0.5f * sd_max_abs(H, W, coc, coc_row, nthreads);
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
