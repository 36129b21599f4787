/* Refine stage: each side of the matte's boundary continued across the band beside it
 * (synthdof.refine's `edge_width` band), so that depth never mixes across the silhouette.
 *
 * Why in C: the step is a handful of unguided normalised fills glued by a dozen elementwise
 * expressions over the band's bounding box (several megapixels at 12 MP); in NumPy each
 * expression was a full-size temporary, and together they cost as much as the fills.
 *
 * Why on a coarser grid: the fills run on the band's box grown by 6 sigmas (their reach), and
 * their sigma is the band's width, so on the pixel grid their cost grew with edge_width (the box
 * at 128 px spans most of a 12 MP frame). A fill this wide varies little from pixel to pixel:
 * its sums are taken on cells of band / SIDES_SIGMA_CELLS pixels (the box's weighted values and
 * weights summed per cell), filtered there with the sigma that, with the cells' box and the
 * bilinear interpolation back, gives the same spread, and interpolated only at the band's
 * pixels; the work on the pixel grid is one pass over the box and the band's pixels. For a band
 * under 2 SIDES_SIGMA_CELLS pixels a cell is a pixel, and the result is the fills' on the pixel
 * grid to the bit (the NumPy expressions' float32 arithmetic in the same order). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sd_alloc.h"
#include "sd_parallel.h"
#include "sd_refine_maps.h"
#include "sd_refine_sides.h"
#include "sd_util.h"

/* The side fills and the blur share are unguided: the sigma_r they pass is never used. */
#define UNGUIDED_SIGMA_R 1.0
/* A fill's sigma in cells on the coarser grid (at least): 4 cells keep the interpolation's error
 * a small fraction of the sides' own variation (a build may set it smaller to see what coarser
 * cells cost: benchmarks/README.md, refine round 5). */
#ifndef SIDES_SIGMA_CELLS
#define SIDES_SIGMA_CELLS 4
#endif

/* Where a pixel reads the coarse grid: the cell at or before its centre and the fraction towards
 * the next one (0 at the grid's ends and for cells of one pixel). */
typedef struct {
    int i;
    float t;
} cell_tap;

typedef struct {
    int f, hc, wc;       /* pixels per cell side, cells down and across */
    cell_tap *ty, *tx;   /* per row and per column of the box */
} coarse_grid;

static void cell_taps(int n, int f, int nc, cell_tap *taps)
{
    for (int x = 0; x < n; x++) {
        if (f == 1) {
            taps[x].i = x;
            taps[x].t = 0.0f;
            continue;
        }
        /* cell c's centre lies at pixel c f + (f - 1) / 2 */
        float u = ((float)x - 0.5f * (float)(f - 1)) / (float)f;
        int i = (int)floorf(u);
        float t = u - (float)i;
        if (i < 0) i = 0, t = 0.0f;
        if (i >= nc - 1) i = nc - 1, t = 0.0f;
        taps[x].i = i;
        taps[x].t = t;
    }
}

/* The filter's sigma on the grid for a fill of sigma s on pixels: the cells' box (variance
 * (f^2 - 1) / 12) and the bilinear interpolation back (f^2 / 6 on average over the phases) take
 * their share of the variance. */
static double cell_sigma(double s, int f)
{
    if (f == 1) return s;
    double extra = ((double)f * f - 1.0) / 12.0 + (double)f * f / 6.0;
    return sqrt(s * s - extra) / (double)f;
}

/* Bilinear between a cell's value p00, the next along the row p01, and the two below them, along
 * the row first. */
static inline float bilinear(const float *p00, const float *p01, const float *p10, const float *p11, float tx, float ty)
{
    float a = *p00 + tx * (*p01 - *p00), b = *p10 + tx * (*p11 - *p10);
    return a + ty * (b - a);
}

/* A pair of channels (c, c + 1) of a plane of C channels on the grid, at the pixel with taps ty,
 * tx: bilinear between the cells around it (for cells of one pixel: the cell's values themselves). */
static inline void cell_pair(const coarse_grid *g, const float *plane, int C, const cell_tap *ty, const cell_tap *tx,
                             int c, float *v0, float *v1)
{
    const float *p00 = plane + (ptrdiff_t)ty->i * g->wc * C + (ptrdiff_t)tx->i * C + c;
    if (g->f == 1) {
        *v0 = p00[0];
        *v1 = p00[1];
        return;
    }
    const float *p10 = ty->t > 0.0f ? p00 + (ptrdiff_t)g->wc * C : p00;
    const float *p01 = tx->t > 0.0f ? p00 + C : p00, *p11 = tx->t > 0.0f ? p10 + C : p10;
    *v0 = bilinear(p00, p01, p10, p11, tx->t, ty->t);
    *v1 = bilinear(p00 + 1, p01 + 1, p10 + 1, p11 + 1, tx->t, ty->t);
}

/* The end of the run of pixels from x on that share x's cell (cells of f pixels), at most x1. */
static inline int cell_run_end(int x, int f, int x1)
{
    int e = (x / f + 1) * f;
    return e < x1 ? e : x1;
}

/* A row of cell sums made means (cells of more than one pixel), zeroed before (a cell of one
 * pixel takes 0 + its value: the value, as sd_fill_weigh's products; the values are never -0). */
static inline void cells_begin(const coarse_grid *g, float *row, int C)
{
    memset(row, 0, sizeof(float) * (size_t)g->wc * (size_t)C);
}
static inline void cells_end(const coarse_grid *g, float *row, int C)
{
    if (g->f == 1) return;
    const float inv_area = 1.0f / (float)(g->f * g->f);
    for (int i = 0; i < g->wc * C; i++) row[i] *= inv_area;
}


/* A row's flags: whether a pixel beyond the band (not near) lies on the subject's side (*fg) or
 * the other (*bg), whether any is kept (each ORed in); returns whether any pixel is near. */
static inline int row_sides(int W, const uint8_t *restrict s, const uint8_t *restrict nr, const uint8_t *restrict k,
                            int *fg, int *bg, int *kept)
{
    int f = 0, b = 0, kk = 0, n = 0;
#ifdef _OPENMP
#pragma omp simd reduction(| : f, b, kk, n)
#endif
    for (int x = 0; x < W; x++) {
        int sure = nr[x] == 0, on = s[x] != 0;
        f |= on & sure;
        b |= (!on) & sure;
        kk |= k[x] != 0;
        n |= !sure;
    }
    *fg |= f, *bg |= b, *kept |= kk;
    return n;
}

/* A row of the band's box: todo (both sides' fills) where near; returns how many are near. */
static inline size_t band_todo(int n, const uint8_t *restrict nr, uint8_t *restrict tf, uint8_t *restrict tb)
{
    size_t count = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : count)
#endif
    for (int x = 0; x < n; x++) {
        uint8_t t = nr[x] != 0;
        tf[x] = tb[x] = t;
        count += t;
    }
    return count;
}

/* A row of the band's box: todo (the blurred share's fill) where near and kept; returns how many
 * are todo. */
static inline size_t kept_todo(int n, const uint8_t *restrict nr, const uint8_t *restrict k, uint8_t *restrict t)
{
    size_t count = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : count)
#endif
    for (int x = 0; x < n; x++) {
        uint8_t v = (nr[x] != 0) & (k[x] != 0);
        t[x] = v;
        count += v;
    }
    return count;
}

/* Each cell's means of (q w_fg, w_fg, q w_bg, w_bg): w_fg 1 on the subject's side beyond the band
 * (not near), w_bg 1 on the other side beyond it. */
static void side_sums(const coarse_grid *g, int H, int W, const float *q, ptrdiff_t qrow, const uint8_t *side,
                      const uint8_t *near, ptrdiff_t mrow, float *sums, int nt)
{
    SD_PARALLEL_FOR(nt)
    for (int cy = 0; cy < g->hc; cy++) {
        float *o = sums + (ptrdiff_t)cy * g->wc * 4;
        cells_begin(g, o, 4);
        int y1 = (cy + 1) * g->f < H ? (cy + 1) * g->f : H;
        for (int y = cy * g->f; y < y1; y++) {
            const float *qr = q + (ptrdiff_t)y * qrow;
            const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow;
            for (int x = 0; x < W;) { /* a cell's run at a time, its sums in registers */
                float *c = o + (ptrdiff_t)(x / g->f) * 4, s0 = c[0], s1 = c[1], s2 = c[2], s3 = c[3];
                for (int e = cell_run_end(x, g->f, W); x < e; x++) {
                    const float wf = s[x] && !nr[x] ? 1.0f : 0.0f, wb = !s[x] && !nr[x] ? 1.0f : 0.0f;
                    s0 += qr[x] * wf;
                    s1 += wf;
                    s2 += qr[x] * wb;
                    s3 += wb;
                }
                c[0] = s0, c[1] = s1, c[2] = s2, c[3] = s3;
            }
        }
        cells_end(g, o, 4);
    }
}

/* Each cell's means of (blurred ring, ring): a ring pixel counts as blurred where it is pulled
 * from its side's continuation (fg, bg) at least blur_pull of the way towards the other side's,
 * and not beyond beyond_pull. The ring (ring_box rows [0], [1]), columns [2], [3], rows its width
 * apart) holds the band's pixels with a pixel of the other side within ring_px; cells beyond it
 * sum nothing. */
static void ring_sums(const coarse_grid *g, int H, const float *q, ptrdiff_t qrow, const uint8_t *side,
                      const uint8_t *near, ptrdiff_t mrow, const uint8_t *ring, const int ring_box[4],
                      const float *fg, const float *bg, int W, int both, const sd_sides_params *p, float *sums, int nt)
{
    const float tol = p->tolerance;
    const int ry0 = ring_box[0], ry1 = ring_box[1], rx0 = ring_box[2], rx1 = ring_box[3], rw = rx1 - rx0;
    (void)H;
    memset(sums, 0, sizeof(float) * (size_t)g->hc * (size_t)g->wc * 2);
    const int cy0 = ry0 / g->f, cy1 = (ry1 - 1) / g->f + 1;
    SD_PARALLEL_FOR(nt)
    for (int cy = cy0; cy < cy1; cy++) {
        float *o = sums + (ptrdiff_t)cy * g->wc * 2;
        int y0 = cy * g->f > ry0 ? cy * g->f : ry0, y1 = (cy + 1) * g->f < ry1 ? (cy + 1) * g->f : ry1;
        for (int y = y0; y < y1; y++) {
            const float *qr = q + (ptrdiff_t)y * qrow, *f = fg + (ptrdiff_t)y * W, *b = bg + (ptrdiff_t)y * W;
            const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow;
            const uint8_t *rg = ring + (ptrdiff_t)(y - ry0) * rw - rx0;
            for (int x = rx0; x < rx1;) { /* a cell's run at a time, its sums in registers */
                float *c = o + (ptrdiff_t)(x / g->f) * 2, s0 = c[0], s1 = c[1];
                for (int e = cell_run_end(x, g->f, rx1); x < e; x++) {
                    if (!(rg[x] && nr[x])) continue; /* (adds 0) */
                    float cont = s[x] ? f[x] : b[x], gap = (s[x] ? b[x] : f[x]) - cont;
                    int ok = both && fabsf(gap) > tol * fabsf(cont);
                    float pull = ok ? (qr[x] - cont) / gap : 0.0f;
                    s0 += pull >= p->blur_pull && pull <= p->beyond_pull ? 1.0f : 0.0f;
                    s1 += 1.0f;
                }
                c[0] = s0, c[1] = s1;
            }
        }
        cells_end(g, o, 2);
    }
}

/* The normalised fill of channel pairs (value times weight, weight) of `sums` (hc x wc x 2 npairs)
 * at the pixels of todo[pair] (cleared as they are filled; left[pair] counts those left): with the
 * fill's sigma, widened 4x while pixels are left, as sd_edge_fill widens; a pair with no pixels left
 * is no longer filtered (the filter's channels never mix: the others' bits are the same). out[pair]
 * gets value / weight where the interpolated weight exceeds min_weight, 0 at the todo pixels no
 * widening reaches (the only pixels of out it writes or that are read). The todo pixels lie in
 * nbox (rows [0], [1]), columns [2], [3]), the band's box. */
static sd_status fill_on_grid(const coarse_grid *g, int W, const int nbox[4], int npairs, const float *sums,
                              double sigma, const sd_sides_params *p, uint8_t **todo, size_t *left, float **out, int nt)
{
    const int C = 2 * npairs;
    size_t ncell = (size_t)g->hc * (size_t)g->wc;
    float *buf = sd_big_alloc(ncell * (size_t)C, sizeof(float), nt);
    if (!buf) return SD_ERR_NOMEM;
    double reach = 1.0; /* 4^k: exact, so sigma * reach is the product sd_edge_fill forms */
    for (int k = 0; k < p->widenings; k++, reach *= 4.0) {
        int active[2], na = 0; /* the pairs with pixels left, in order */
        for (int j = 0; j < npairs; j++)
            if (left[j]) active[na++] = j;
        if (!na) break;
        const int CA = 2 * na;
        if (na == npairs) {
            memcpy(buf, sums, sizeof(float) * ncell * (size_t)C);
        } else {
            const int j = active[0];
            for (size_t i = 0; i < ncell; i++) {
                buf[2 * i] = sums[i * (size_t)C + 2 * j];
                buf[2 * i + 1] = sums[i * (size_t)C + 2 * j + 1];
            }
        }
        sd_status st = sd_edge_filter(g->hc, g->wc, CA, buf, NULL, 0, cell_sigma(sigma * reach, g->f),
                                      UNGUIDED_SIGMA_R, p->iterations, nt);
        if (st != SD_OK) {
            sd_big_free(buf);
            return st;
        }
        size_t l0 = 0, l1 = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : l0, l1)
#endif
        for (int y = nbox[0]; y < nbox[1]; y++) {
            const cell_tap *ty = &g->ty[y];
            for (int a = 0; a < na; a++) {
                const int j = active[a];
                uint8_t *t = todo[j] + (ptrdiff_t)y * W;
                float *o = out[j] + (ptrdiff_t)y * W;
                size_t l = 0;
                for (int x = nbox[2]; x < nbox[3]; x++) {
                    if (!t[x]) { /* to the next todo pixel (todo holds 0 and 1): most are done */
                        const uint8_t *next = memchr(t + x, 1, (size_t)(nbox[3] - x));
                        if (!next) break;
                        x = (int)(next - t);
                    }
                    float num, den;
                    cell_pair(g, buf, CA, ty, &g->tx[x], 2 * a, &num, &den);
                    if (den > p->min_weight) {
                        o[x] = num / den;
                        t[x] = 0;
                    } else {
                        if (k == 0) o[x] = 0.0f; /* unless a widening reaches it */
                        l++;
                    }
                }
                if (a == 0)
                    l0 += l;
                else
                    l1 += l;
            }
        }
        left[active[0]] = l0;
        if (na > 1) left[active[1]] = l1;
    }
    sd_big_free(buf);
    return SD_OK;
}

sd_status sd_continue_sides(int H, int W, float *q, ptrdiff_t qrow, const uint8_t *side, const uint8_t *near,
                            const uint8_t *kept, ptrdiff_t mrow, const sd_sides_params *p, int nthreads)
{
    if (H < 1 || W < 1 || !q || !side || !near || !kept || !p || qrow < W || mrow < W || p->band < 1 ||
        p->ring_px < 0 || p->iterations < 1 || p->iterations > 16 || p->widenings < 1 || p->widenings > 16)
        return SD_ERR_ARG;
    if (!(p->tolerance >= 0.0f) || !(p->min_weight >= 0.0f) || !isfinite(p->blur_pull) || isnan(p->beyond_pull) ||
        !isfinite(p->blurred_share) || !isfinite(p->tolerance))
        return SD_ERR_VALUE;
    int nt = sd_threads(nthreads);
    size_t n = (size_t)H * (size_t)W;
    coarse_grid g;
    g.f = p->band / SIDES_SIGMA_CELLS > 1 ? p->band / SIDES_SIGMA_CELLS : 1;
    g.hc = (H + g.f - 1) / g.f;
    g.wc = (W + g.f - 1) / g.f;
    size_t ncell = (size_t)g.hc * (size_t)g.wc;
    g.ty = sd_big_alloc((size_t)H, sizeof(cell_tap), nt);
    g.tx = sd_big_alloc((size_t)W, sizeof(cell_tap), nt);
    float *sums = sd_big_alloc(ncell * 4, sizeof(float), nt);
    float *fg = sd_big_alloc(n, sizeof(float), nt), *bg = sd_big_alloc(n, sizeof(float), nt);
    uint8_t *todo_fg = sd_big_alloc(n, 1, nt), *todo_bg = sd_big_alloc(n, 1, nt);
    float *blurred = NULL, *ring_w = NULL;
    uint8_t *ring = NULL, *ring_side = NULL;
    sd_status st = SD_ERR_NOMEM;
    if (!g.ty || !g.tx || !sums || !fg || !bg || !todo_fg || !todo_bg) goto done;
    cell_taps(H, g.f, g.hc, g.ty);
    cell_taps(W, g.f, g.wc, g.tx);

    /* each side's weight: its pixels beyond the band (not near); the band's box (nbox: rows [0],
     * [1]), columns [2], [3])): everything but the sums runs on it */
    int any_fg = 0, any_bg = 0, any_kept = 0, ny0 = H, ny1 = -1, nx0 = W, nx1 = -1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : any_fg, any_bg, any_kept) \
    reduction(min : ny0, nx0) reduction(max : ny1, nx1)
#endif
    for (int y = 0; y < H; y++) {
        const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow, *k = kept + (ptrdiff_t)y * mrow;
        int row_near = row_sides(W, s, nr, k, &any_fg, &any_bg, &any_kept), first = W, last = -1;
        if (row_near) { /* the row's first and last pixel in the band */
            for (first = 0; !nr[first]; first++) {}
            for (last = W - 1; !nr[last]; last--) {}
        }
        if (last >= 0) {
            if (y < ny0) ny0 = y;
            if (y > ny1) ny1 = y;
            if (first < nx0) nx0 = first;
            if (last > nx1) nx1 = last;
        }
    }
    if (ny1 < 0) { /* no band: nothing is replaced */
        st = SD_OK;
        goto done;
    }
    const int nbox[4] = {ny0, ny1 + 1, nx0, nx1 + 1};
    /* the fills are wanted where near (fill_on_grid leaves 0 where a fill reaches no pixel of
     * its side) */
    size_t left_near = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : left_near)
#endif
    for (int y = nbox[0]; y < nbox[1]; y++) {
        const uint8_t *nr = near + (ptrdiff_t)y * mrow;
        uint8_t *tf = todo_fg + (ptrdiff_t)y * W, *tb = todo_bg + (ptrdiff_t)y * W;
        left_near += band_todo(nbox[3] - nbox[2], nr + nbox[2], tf + nbox[2], tb + nbox[2]);
    }
    side_sums(&g, H, W, q, qrow, side, near, mrow, sums, nt);
    {
        uint8_t *todos[2] = {todo_fg, todo_bg};
        size_t lefts[2] = {left_near, left_near};
        float *outs[2] = {fg, bg};
        if ((st = fill_on_grid(&g, W, nbox, 2, sums, (double)p->band, p, todos, lefts, outs, nt)) != SD_OK) goto done;
    }
    const float tol = p->tolerance;
    const int both = any_fg && any_bg;
    if (any_kept) {
        /* the blurred share of the ring (the band's pixels with a pixel of the other side within
         * ring_px, found on the band's box grown by ring_px): values (pull >= blur_pull) weighted
         * by the ring, filled where near and kept */
        const int rbox[4] = {nbox[0] - p->ring_px > 0 ? nbox[0] - p->ring_px : 0,
                             nbox[1] + p->ring_px < H ? nbox[1] + p->ring_px : H,
                             nbox[2] - p->ring_px > 0 ? nbox[2] - p->ring_px : 0,
                             nbox[3] + p->ring_px < W ? nbox[3] + p->ring_px : W};
        const int rh = rbox[1] - rbox[0], rw = rbox[3] - rbox[2];
        size_t nr_ = (size_t)rh * (size_t)rw;
        blurred = sd_big_alloc(n, sizeof(float), nt);
        ring_w = sd_big_alloc(nr_, sizeof(float), nt);
        ring = sd_big_alloc(nr_, 1, nt);
        ring_side = sd_big_alloc(nr_, 1, nt);
        st = SD_ERR_NOMEM;
        if (!blurred || !ring_w || !ring || !ring_side) goto done;
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < rh; y++) {
            const uint8_t *s = side + (ptrdiff_t)(rbox[0] + y) * mrow + rbox[2];
            float *sf = ring_w + (ptrdiff_t)y * rw;
            for (int x = 0; x < rw; x++) sf[x] = s[x] ? 1.0f : 0.0f;
        }
        size_t left_kept = 0;
        uint8_t *todo = todo_fg; /* free again: all its pixels were taken or are left */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : left_kept)
#endif
        for (int y = nbox[0]; y < nbox[1]; y++) {
            const uint8_t *nr = near + (ptrdiff_t)y * mrow, *k = kept + (ptrdiff_t)y * mrow;
            uint8_t *t = todo + (ptrdiff_t)y * W;
            left_kept += kept_todo(nbox[3] - nbox[2], nr + nbox[2], k + nbox[2], t + nbox[2]);
        }
        int box[4];
        if ((st = sd_band_near(rh, rw, ring_w, NULL, p->ring_px, ring_side, ring, box, nt)) != SD_OK) goto done;
        ring_sums(&g, H, q, qrow, side, near, mrow, ring, rbox, fg, bg, W, both, p, sums, nt);
        uint8_t *todos[1] = {todo};
        size_t lefts[1] = {left_kept};
        float *outs[1] = {blurred};
        if ((st = fill_on_grid(&g, W, nbox, 1, sums, (double)(3 * p->band), p, todos, lefts, outs, nt)) != SD_OK)
            goto done;
    }
    /* the band's depth replaced by its side's continuation where it strays from it */
    SD_PARALLEL_FOR(nt)
    for (int y = nbox[0]; y < nbox[1]; y++) {
        float *qr = q + (ptrdiff_t)y * qrow;
        const float *f = fg + (ptrdiff_t)y * W, *b = bg + (ptrdiff_t)y * W;
        const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow, *k = kept + (ptrdiff_t)y * mrow;
        const float *bl = blurred ? blurred + (ptrdiff_t)y * W : NULL;
        for (int x = nbox[2]; x < nbox[3]; x++) {
            if (!nr[x] && (x = sd_next_set(nr, x, nbox[3])) == nbox[3]) break;
            float cont = s[x] ? f[x] : b[x];
            int reached = s[x] ? any_fg : any_bg;
            int pulled = fabsf(qr[x] - cont) > tol * fabsf(cont);
            if (bl && pulled && k[x]) {
                /* kept depth: replaced only where blurred across the boundary, between the sides */
                float gap = (s[x] ? b[x] : f[x]) - cont;
                int ok = both && fabsf(gap) > tol * fabsf(cont);
                float pull = ok ? (qr[x] - cont) / gap : 0.0f;
                /* kept 2 (noisy depth the smoothing agrees with): kept only beyond both sides */
                pulled = pull <= p->beyond_pull && (k[x] == 2 || bl[x] >= p->blurred_share || pull > 0.5f);
            }
            if (reached && pulled) qr[x] = cont;
        }
    }
    st = SD_OK;
done:
    sd_big_free(g.ty);
    sd_big_free(g.tx);
    sd_big_free(sums);
    sd_big_free(fg);
    sd_big_free(bg);
    sd_big_free(todo_fg);
    sd_big_free(todo_bg);
    sd_big_free(blurred);
    sd_big_free(ring_w);
    sd_big_free(ring);
    sd_big_free(ring_side);
    return st;
}
