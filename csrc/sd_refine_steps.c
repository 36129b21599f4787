/* Refine stage: where full-resolution depth has a step blurred across it (a network's depth:
 * the background beside a near object takes depth between the two), the pixels in between are
 * found here and filled again from each surface (python/synthdof/_refine.py, with the edge-aware
 * fill of sd_refine.c).
 *
 * Why this test: a network blurs depth steps into ramps a few pixels wide. A slanted plane is a
 * ramp too, but its disparity is exactly linear in the image's coordinates, so a local plane fit
 * leaves no residual there; a blurred step bends and leaves one. A renderer's or a good sensor's
 * sharp step bends as well, but its pixels take one side's value or the other's, never one in
 * between, so the second test leaves lights, strands and sharp rims as they are.
 *
 * Sums in double over windows clipped at the frame: rows first (a running sum per row), then
 * down the columns of each block of SD_STEPS_BLOCK_ROWS output rows (a running sum restarted per
 * block), so every output's bits depend only on the input. O(1) per pixel in r for the sums; the
 * window's extremes take O(r) per pixel down the columns (contiguous, vectorised) and O(1) along
 * the rows. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sd_parallel.h"
#include "sd_refine_maps.h"
#include "sd_refine_steps.h"
#include "sd_util.h"

/* Sum of k and of k^2 over the integers k in [a, b]. */
static inline double sum_k(int a, int b) { return 0.5 * ((double)a + b) * ((double)b - a + 1); }
static inline double sum_kk(int a, int b)
{
    double s = 0.0;
    /* sum_{k=1}^{n} k^2 = n (n + 1) (2n + 1) / 6, for each side of 0 */
    if (b > 0) s += (double)b * (b + 1) * (2.0 * b + 1) / 6.0;
    if (a < 0) s += (double)(-a) * (-a + 1) * (-2.0 * a + 1) / 6.0;
    return s;
}

/* One row's window sums along x: s0 = sum q, s1 = sum (x' - x) q, s2 = sum q^2 over x' in
 * [x - r, x + r] clipped; mn, mx its extremes (van Herk / Gil-Werman: prefix and suffix extremes of
 * segments of 2r + 1, three comparisons a pixel). pre/suf: 2 W floats of scratch. */
static void row_sums(int W, const float *q, int r, double *s0, double *s1, double *s2, float *mn, float *mx,
                     float *pre, float *suf)
{
    double a = 0.0, b = 0.0, c = 0.0; /* sum q, sum x' q, sum q^2 over the window */
    int hi = r < W - 1 ? r : W - 1;
    for (int x = 0; x <= hi; x++) {
        a += q[x];
        b += (double)x * q[x];
        c += (double)q[x] * q[x];
    }
    for (int x = 0; x < W; x++) {
        s0[x] = a;
        s1[x] = b - (double)x * a;
        s2[x] = c;
        int in = x + r + 1, out = x - r;
        if (in < W) {
            a += q[in];
            b += (double)in * q[in];
            c += (double)q[in] * q[in];
        }
        if (out >= 0) {
            a -= q[out];
            b -= (double)out * q[out];
            c -= (double)q[out] * q[out];
        }
    }
    /* extremes: segments of n = 2r + 1 starting at 0; the window [x - r, x + r] spans the suffix of
     * one segment and the prefix of the next. The minima use pre/suf first, then the maxima. */
    int n = 2 * r + 1;
    for (int pass = 0; pass < 2; pass++) {
        float *dst = pass ? mx : mn;
        for (int s = 0; s < W; s += n) {
            int e = s + n < W ? s + n : W;
            pre[s] = q[s];
            for (int x = s + 1; x < e; x++) pre[x] = pass ? fmaxf(pre[x - 1], q[x]) : fminf(pre[x - 1], q[x]);
            suf[e - 1] = q[e - 1];
            for (int x = e - 2; x >= s; x--) suf[x] = pass ? fmaxf(suf[x + 1], q[x]) : fminf(suf[x + 1], q[x]);
        }
        for (int x = 0; x < W; x++) {
            int l = x - r > 0 ? x - r : 0, h = x + r < W - 1 ? x + r : W - 1;
            /* l and h lie in the same segment or in neighbouring ones */
            float v = suf[l], w = pre[h];
            if (l / n == h / n) { /* one segment: [l, h] is all of it only at its ends; scan */
                v = q[l];
                for (int k = l + 1; k <= h; k++) v = pass ? fmaxf(v, q[k]) : fminf(v, q[k]);
                w = v;
            }
            dst[x] = pass ? fmaxf(v, w) : fminf(v, w);
        }
    }
}

/* at[p] = the cell that holds pixel p, for the n pixels along an axis. */
static void cell_table(int n, int cells, int *at)
{
    for (int i = 0; i < cells; i++)
        for (int p = sd_cell_edge(i, n, cells); p < sd_cell_edge(i + 1, n, cells); p++) at[p] = i;
}

/* Whether all n values are finite and > 0 (not NaN, inf, 0 or negative), in chunks. */
static int all_positive_finite(const float *v, size_t n, int nt)
{
    int bad = 0;
    ptrdiff_t chunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : bad)
#endif
    for (ptrdiff_t c = 0; c < chunks; c++) {
        size_t a = (size_t)c * SD_FLAT_CHUNK, b = a + SD_FLAT_CHUNK < n ? a + SD_FLAT_CHUNK : n;
        /* on the bits: a finite float > 0 is 1 .. 0x7f7fffff (an integer test vectorises where
         * float comparisons with NaN in reach may not) */
        uint32_t chunk_bad = 0;
        SD_SIMD_OR(chunk_bad)
        for (size_t i = a; i < b; i++) {
            uint32_t u;
            memcpy(&u, v + i, sizeof u);
            chunk_bad |= (uint32_t)(u - 1u >= 0x7f7fffffu);
        }
        bad |= chunk_bad != 0;
    }
    return !bad;
}

/* The plane fit's residual over a window whose offsets span [ax, bx] x [ay, by] around its pixel,
 * from the window's sums t0 = sum q, tx = sum dx q, ty = sum dy q, t2 = sum q^2: t2 less the
 * fitted plane's share (the normal equations solved in closed form; a window one pixel wide along
 * an axis fits no slope along it). */
static inline double plane_residual(int ax, int bx, int ay, int by, double t0, double tx, double ty, double t2)
{
    double nx = (double)bx - ax + 1, ny = (double)by - ay + 1, N = nx * ny;
    double sx = sum_k(ax, bx) * ny, sy = sum_k(ay, by) * nx;
    double sxx = sum_kk(ax, bx) * ny, syy = sum_kk(ay, by) * nx, sxy = sum_k(ax, bx) * sum_k(ay, by);
    /* centred: the plane's mean term removed, a 2x2 system in the slopes remains */
    double cxx = sxx - sx * sx / N, cyy = syy - sy * sy / N, cxy = sxy - sx * sy / N;
    double bx_ = tx - sx * t0 / N, by_ = ty - sy * t0 / N;
    double fit = t0 * t0 / N;
    int use_x = bx > ax, use_y = by > ay;
    double det = cxx * cyy - cxy * cxy;
    if (use_x && use_y && det > 0.0)
        fit += (cyy * bx_ * bx_ - 2.0 * cxy * bx_ * by_ + cxx * by_ * by_) / det;
    else if (use_x && cxx > 0.0)
        fit += bx_ * bx_ / cxx;
    else if (use_y && cyy > 0.0)
        fit += by_ * by_ / cyy;
    return t2 - fit;
}

/* Over the (H, W) map q: bent = 1 where the window's plane fit leaves a residual above tau * q (the
 * window's own pixel), and the window's extremes in mn, mx. */
static sd_status window_stats(int H, int W, const float *q, int r, double tau, uint8_t *bent, float *mn_out,
                              float *mx_out, int nt)
{
    (void)nt; /* (used by OpenMP's pragma only) */
    int nblocks = (H + SD_STEPS_BLOCK_ROWS - 1) / SD_STEPS_BLOCK_ROWS;
    int fail = 0;
    double tau2 = tau * tau;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(| : fail)
#endif
    for (int b = 0; b < nblocks; b++) {
        int y0 = b * SD_STEPS_BLOCK_ROWS, y1 = y0 + SD_STEPS_BLOCK_ROWS < H ? y0 + SD_STEPS_BLOCK_ROWS : H;
        int ya = y0 - r > 0 ? y0 - r : 0, yb = y1 + r < H ? y1 + r : H; /* rows read */
        size_t rows = (size_t)(yb - ya), Wz = (size_t)W;
        /* per row read: s0, s1, s2 (double), mn, mx (float); the vertical sums (4 doubles) and
         * the row scratch */
        double *hs = malloc(rows * Wz * 3 * sizeof(double) + Wz * 4 * sizeof(double));
        float *hm = malloc(rows * Wz * 2 * sizeof(float) + Wz * 4 * sizeof(float));
        if (!hs || !hm) {
            free(hs);
            free(hm);
            fail = 1;
            continue;
        }
        double *v0 = hs + rows * Wz * 3, *vx = v0 + Wz, *vy = vx + Wz, *v2 = vy + Wz;
        float *pre = hm + rows * Wz * 2, *suf = pre + Wz, *cmn = suf + Wz, *cmx = cmn + Wz;
        for (int y = ya; y < yb; y++) {
            size_t k = (size_t)(y - ya);
            row_sums(W, q + (size_t)y * Wz, r, hs + k * Wz, hs + (rows + k) * Wz, hs + (2 * rows + k) * Wz,
                     hm + k * Wz, hm + (rows + k) * Wz, pre, suf);
        }
        const double *s0 = hs, *s1 = hs + rows * Wz, *s2 = hs + 2 * rows * Wz;
        /* the first output row's window, summed directly; v_y holds sum (y' - y0) s0 */
        int wa = ya, wb = y0 + r < H - 1 ? y0 + r : H - 1; /* its rows, inclusive */
        memset(v0, 0, Wz * 4 * sizeof(double));
        for (int y = wa; y <= wb; y++) {
            size_t k = (size_t)(y - ya) * Wz;
            double dy = (double)(y - y0);
            for (int x = 0; x < W; x++) {
                v0[x] += s0[k + x];
                vx[x] += s1[k + x];
                vy[x] += dy * s0[k + x];
                v2[x] += s2[k + x];
            }
        }
        for (int y = y0; y < y1; y++) {
            int ra = y - r > 0 ? y - r : 0, rb = y + r < H - 1 ? y + r : H - 1;
            if (y > y0) { /* slide: v_y is re-centred on y (sum (y' - y) s0 = previous - v0), then rows in and out */
                for (int x = 0; x < W; x++) vy[x] -= v0[x];
                if (rb == y + r) {
                    size_t k = (size_t)(rb - ya) * Wz;
                    for (int x = 0; x < W; x++) {
                        v0[x] += s0[k + x];
                        vx[x] += s1[k + x];
                        vy[x] += (double)r * s0[k + x];
                        v2[x] += s2[k + x];
                    }
                }
                if (y - r - 1 >= 0) {
                    size_t k = (size_t)(y - r - 1 - ya) * Wz;
                    for (int x = 0; x < W; x++) {
                        v0[x] -= s0[k + x];
                        vx[x] -= s1[k + x];
                        vy[x] -= (double)(-r - 1) * s0[k + x];
                        v2[x] -= s2[k + x];
                    }
                }
            }
            const float *qy = q + (size_t)y * Wz;
            const float *mnr = hm + (size_t)(ra - ya) * Wz, *mxr = hm + (rows + (size_t)(ra - ya)) * Wz;
            /* the window's extremes down the columns, row by row (contiguous) */
            memcpy(cmn, mnr, Wz * sizeof(float));
            memcpy(cmx, mxr, Wz * sizeof(float));
            for (int yy = 1; yy <= rb - ra; yy++) {
                const float *a = mnr + (size_t)yy * Wz, *c = mxr + (size_t)yy * Wz;
                SD_SIMD
                for (int x = 0; x < W; x++) {
                    cmn[x] = cmn[x] < a[x] ? cmn[x] : a[x];
                    cmx[x] = cmx[x] > c[x] ? cmx[x] : c[x];
                }
            }
            memcpy(mn_out + (size_t)y * Wz, cmn, Wz * sizeof(float));
            memcpy(mx_out + (size_t)y * Wz, cmx, Wz * sizeof(float));
            uint8_t *by = bent + (size_t)y * Wz;
            for (int x = 0; x < W; x++) {
                int ax = x - r > 0 ? -r : -x, bx = x + r < W - 1 ? r : W - 1 - x;
                double N = ((double)bx - ax + 1) * ((double)rb - ra + 1);
                double res = plane_residual(ax, bx, ra - y, rb - y, v0[x], vx[x], vy[x], v2[x]);
                by[x] = (uint8_t)(res > tau2 * (double)qy[x] * qy[x] * N);
            }
        }
        free(hs);
        free(hm);
    }
    return fail ? SD_ERR_NOMEM : SD_OK;
}

/* Whether q at (y, x) lies strictly between its two neighbours along a row or a column, each at
 * least `gap` away: a blur's ramp does, while a renderer's sharp depth, even a small light at a
 * depth between two others, repeats a neighbour's value on one side, and a curved surface beside a
 * step changes far more slowly than the step's blur would. */
static inline int on_ramp(int H, int W, const float *q, int y, int x, float gap)
{
    size_t k = (size_t)y * W + x;
    float v = q[k];
    if (x > 0 && x < W - 1) {
        float a = q[k - 1] - v, b = v - q[k + 1];
        if ((a > gap && b > gap) || (a < -gap && b < -gap)) return 1;
    }
    if (y > 0 && y < H - 1) {
        float a = q[k - (size_t)W] - v, b = v - q[k + (size_t)W];
        if ((a > gap && b > gap) || (a < -gap && b < -gap)) return 1;
    }
    return 0;
}

/* The flag's values between the passes: a core pixel, a shoulder candidate, and a candidate found
 * beside a core pixel or not (the last two read as 1 and 0 at the end). */
enum { CORE = 1, CANDIDATE = 2, SHOULDER = 3, NOT_SHOULDER = 4 };

sd_status sd_blurred_steps(int H, int W, const float *q, int h, int w, const float *qc, int r, double tau, double lo,
                           double hi, double lo_s, double hi_s, double jump, uint8_t *flag, size_t *count,
                           size_t *jumps, int nthreads)
{
    if (H < 1 || W < 1 || h < 1 || w < 1 || h > H || w > W || !q || !qc || !flag || !count || !jumps || r < 1 ||
        !(tau >= 0.0) || !(lo_s >= 0.0) || !(lo >= lo_s) || !(hi >= lo) || !(hi_s >= hi) || !(hi_s <= 1.0) ||
        !(jump >= 0.0))
        return SD_ERR_ARG;
    *count = 0;
    *jumps = 0;
    size_t n = (size_t)H * (size_t)W, nc = (size_t)h * (size_t)w;
    int nt = sd_threads(nthreads);
    if (!all_positive_finite(q, n, nt) || !all_positive_finite(qc, nc, nt)) return SD_ERR_VALUE;
    if (r > h + w) r = h + w; /* wider windows are the frame */
    /* the cells' statistics, and each pixel's cell (rows [j H / h, (j + 1) H / h), as sd_cell_means) */
    uint8_t *bent = malloc(nc);
    float *mn = malloc(nc * sizeof(float)), *mx = malloc(nc * sizeof(float));
    int *cy = malloc((size_t)H * sizeof(int)), *xe = malloc(((size_t)w + 1) * sizeof(int));
    sd_status st = bent && mn && mx && cy && xe ? window_stats(h, w, qc, r, tau, bent, mn, mx, nt) : SD_ERR_NOMEM;
    if (st == SD_OK) {
        cell_table(H, h, cy);
        sd_cell_edges(W, w, xe); /* (a division per cell and row cost more than the test) */
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const float *qy = q + (size_t)y * W;
            size_t c = (size_t)cy[y] * (size_t)w;
            uint8_t *fy = flag + (size_t)y * W;
            for (int i = 0; i < w; i++) { /* cell by cell: most cells do not bend */
                size_t k = c + (size_t)i;
                int x0 = xe[i], x1 = xe[i + 1];
                double range = (double)mx[k] - mn[k];
                if (!bent[k] || !(range > 0.0)) {
                    memset(fy + x0, 0, (size_t)(x1 - x0));
                    continue;
                }
                /* a ramp across the window's width (2 r + 1 cells of H / h pixels) climbs this
                 * much per pixel on average; SD_STEPS_RAMP_SLOPE of it at least */
                float gap = (float)(SD_STEPS_RAMP_SLOPE * range / ((2.0 * r + 1.0) * H / h));
                for (int x = x0; x < x1; x++) {
                    double d = (double)qy[x] - mn[k];
                    int f = d > lo * range && d < hi * range         ? CORE
                            : d > lo_s * range && d < hi_s * range ? CANDIDATE
                                                                   : 0;
                    fy[x] = (uint8_t)(f && on_ramp(H, W, q, y, x, gap) ? f : 0);
                }
            }
        }
        /* a shoulder: a candidate beside a core pixel (along a row or a column); the candidates
         * change to values other than CORE, so no row sees another's decision */
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            uint8_t *fy = flag + (size_t)y * W;
            const uint8_t *up = y > 0 ? fy - W : NULL, *down = y < H - 1 ? fy + W : NULL;
            for (uint8_t *at = memchr(fy, CANDIDATE, (size_t)W); at; /* (most rows hold none) */
                 at = at + 1 < fy + W ? memchr(at + 1, CANDIDATE, (size_t)(fy + W - at - 1)) : NULL) {
                int x = (int)(at - fy);
                int beside = (x > 0 && fy[x - 1] == CORE) || (x < W - 1 && fy[x + 1] == CORE) ||
                             (up && up[x] == CORE) || (down && down[x] == CORE);
                fy[x] = beside ? SHOULDER : NOT_SHOULDER;
            }
        }
        size_t total = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : total)
#endif
        for (int y = 0; y < H; y++) {
            uint8_t *fy = flag + (size_t)y * W;
            size_t flagged = 0;
            for (int x = 0; x < W; x++) {
                uint8_t f = fy[x] == CORE || fy[x] == SHOULDER;
                fy[x] = f;
                flagged += f;
            }
            total += flagged;
        }
        *count = total;
        /* sharp steps: neighbours along a row or a column more than `jump` of the second apart */
        size_t njump = 0;
        float fj = (float)jump;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : njump)
#endif
        for (int y = 0; y < H; y++) {
            const float *qy = q + (size_t)y * W, *below = y + 1 < H ? qy + W : NULL;
            size_t nrow = 0;
            SD_SIMD
            for (int x = 0; x < W - 1; x++) nrow += fabsf(qy[x] - qy[x + 1]) > fj * qy[x + 1];
            if (below) {
                SD_SIMD
                for (int x = 0; x < W; x++) nrow += fabsf(qy[x] - below[x]) > fj * below[x];
            }
            njump += nrow;
        }
        *jumps = njump;
    }
    free(bent);
    free(mn);
    free(mx);
    free(cy);
    free(xe);
    return st;
}

/* The fill's search: candidates whose costs are computed together. */
#define SEARCH_LANES 8

/* The costs of SEARCH_LANES candidates (offsets dy, dx from the cell's centre, colour c0..c2) to
 * a pixel at (py, px_) from it with colour px: ks d^2 + kr (L1 colour distance)^2. */
static inline void lane_costs(const float *restrict dy, const float *restrict dx, const float *restrict c0,
                              const float *restrict c1, const float *restrict c2, float py, float px_,
                              const float *restrict px, float ks, float kr, float *restrict cost)
{
    SD_SIMD
    for (int e = 0; e < SEARCH_LANES; e++) {
        float ey = dy[e] - py, ex = dx[e] - px_;
        float dc = fabsf(c0[e] - px[0]) + fabsf(c1[e] - px[1]) + fabsf(c2[e] - px[2]);
        cost[e] = ks * (ex * ex + ey * ey) + kr * dc * dc;
    }
}

/* A cell of the fill's window: its offset and the least spatial cost a pixel can have to it. */
typedef struct {
    float least;
    int dj, di;
} cell_offset;

static int by_least_cost(const void *a, const void *b)
{
    const cell_offset *u = a, *v = b;
    if (u->least != v->least) return u->least < v->least ? -1 : 1;
    if (u->dj != v->dj) return u->dj < v->dj ? -1 : 1;
    return (u->di > v->di) - (u->di < v->di);
}

/* One colour channel as the fill compares it: sRGB already, or encoded from linear light. */
static inline float fill_colour(const float *c, int linear) { return linear ? sd_srgb_encode_one(*c) : *c; }

sd_status sd_step_fill(int H, int W, const float *q, const uint8_t *stepped, const float *colour, int linear, int h,
                       int w, int radius, double sigma_s, double sigma_r, float *out, int nthreads)
{
    if (H < 1 || W < 1 || h < 1 || w < 1 || h > H || w > W || !q || !stepped || !colour || !out || radius < 0 ||
        !(sigma_s > 0.0) || !(sigma_r > 0.0))
        return SD_ERR_ARG;
    if (radius > h + w) radius = h + w;
    int nt = sd_threads(nthreads);
    size_t nc = (size_t)h * (size_t)w;
    int side = 2 * radius + 1, noff = side * side;
    /* cq: per cell within `radius` cells of a stepped pixel's cell (the others are never read), over
     * its pixels that are not on a step, the mean q and the three linear (or sRGB) channels' means,
     * their colour encoded once; has / need: the cells that hold a stepped pixel / lie within
     * `radius` cells of one (rows_any: along the rows only); acc: each thread's sums of a cell row;
     * xe: the cells' first columns (and W); off: the window's offsets in the search's order;
     * lists: each thread's candidates of one cell; runs: each thread's colours of a cell's row,
     * encoded */
    float *cq = malloc(nc * 4 * sizeof(float));
    uint8_t *need = calloc(nc, 1), *has = calloc(nc, 1), *rows_any = malloc(nc);
    double *acc = malloc((size_t)nt * (size_t)w * 5 * sizeof(double));
    int *xe = malloc(((size_t)w + 1) * sizeof(int));
    cell_offset *off = malloc((size_t)noff * sizeof *off);
    int nlist = (noff + SEARCH_LANES - 1) / SEARCH_LANES * SEARCH_LANES; /* a list's length, padded */
    float *lists = malloc((size_t)nt * (size_t)nlist * 7 * sizeof(float));
    int widest = (W + w - 1) / w + 1; /* a cell's columns, at most */
    float *runs = malloc((size_t)nt * (size_t)widest * 3 * sizeof(float));
    sd_status st = cq && need && has && rows_any && acc && xe && off && lists && runs ? SD_OK : SD_ERR_NOMEM;
    if (st != SD_OK) goto done;
    sd_cell_edges(W, w, xe);
    SD_PARALLEL_FOR(nt)
    for (int j = 0; j < h; j++) {
        uint8_t *hj = has + (size_t)j * w;
        for (int y = sd_cell_edge(j, H, h); y < sd_cell_edge(j + 1, H, h); y++) {
            const uint8_t *sy = stepped + (size_t)y * W;
            for (int i = 0; i < w; i++) hj[i] |= sd_any_set(sy + xe[i], xe[i + 1] - xe[i]);
        }
    }
    /* need: has dilated by the square of `radius` cells, along the rows (into rows_any, through a
     * running count) and then down the columns */
    SD_PARALLEL_FOR(nt)
    for (int j = 0; j < h; j++) {
        const uint8_t *hj = has + (size_t)j * w;
        uint8_t *rj = rows_any + (size_t)j * w;
        int cnt = 0;
        for (int i = 0; i < radius && i < w; i++) cnt += hj[i];
        for (int i = 0; i < w; i++) {
            if (i + radius < w) cnt += hj[i + radius];
            if (i - radius - 1 >= 0) cnt -= hj[i - radius - 1];
            rj[i] = (uint8_t)(cnt > 0);
        }
    }
    SD_PARALLEL_FOR(nt)
    for (int j = 0; j < h; j++) {
        int ja = j - radius > 0 ? j - radius : 0, jb = j + radius < h - 1 ? j + radius : h - 1;
        uint8_t *nj = need + (size_t)j * w;
        for (int jj = ja; jj <= jb; jj++) {
            const uint8_t *rj = rows_any + (size_t)jj * w;
            for (int i = 0; i < w; i++) nj[i] |= rj[i];
        }
    }
    SD_PARALLEL_FOR(nt)
    for (int j = 0; j < h; j++) {
        const uint8_t *nj = need + (size_t)j * w;
        float *c = cq + (size_t)j * w * 4;
        int any = 0;
        for (int i = 0; i < w; i++) {
            any |= nj[i];
            c[4 * i] = -1.0f; /* no pixel off the steps (or not needed): not a candidate */
            c[4 * i + 1] = c[4 * i + 2] = c[4 * i + 3] = 0.0f;
        }
        if (!any) continue;
        double *s = acc + (size_t)sd_thread_id() * w * 5;
        memset(s, 0, (size_t)w * 5 * sizeof(double));
        for (int y = sd_cell_edge(j, H, h); y < sd_cell_edge(j + 1, H, h); y++) {
            const uint8_t *sy = stepped + (size_t)y * W;
            const float *qy = q + (size_t)y * W, *co = colour + (size_t)y * W * 3;
            for (int i = 0; i < w; i++) {
                if (!nj[i]) continue;
                double *t = s + 5 * i, n0 = t[0], s1 = t[1], s2 = t[2], s3 = t[3], s4 = t[4];
                for (int x = xe[i]; x < xe[i + 1]; x++) {
                    if (sy[x]) continue;
                    n0 += 1.0;
                    s1 += qy[x];
                    s2 += co[3 * x];
                    s3 += co[3 * x + 1];
                    s4 += co[3 * x + 2];
                }
                t[0] = n0, t[1] = s1, t[2] = s2, t[3] = s3, t[4] = s4;
            }
        }
        for (int i = 0; i < w; i++) {
            const double *t = s + 5 * i;
            if (!(t[0] > 0.0)) continue;
            c[4 * i] = (float)(t[1] / t[0]);
            for (int ch = 0; ch < 3; ch++) {
                float m = (float)(t[2 + ch] / t[0]);
                c[4 * i + 1 + ch] = fill_colour(&m, linear);
            }
        }
    }
    double ks = 0.5 / (sigma_s * sigma_s), kr = 0.5 / (sigma_r * sigma_r);
    double ch_ = (double)H / h, cw = (double)W / w; /* cell size; cell i's centre (i + 0.5) cw - 0.5 */
    float fks = (float)ks, fkr = (float)kr, fch = (float)ch_, fcw = (float)cw; /* (the search in float) */
    /* the window's cell offsets, nearest first by the least spatial cost any pixel of the centre
     * cell can have to them (a pixel lies within its cell: (|d| - 1) cells at least): the search
     * stops at the first offset whose least cost reaches the best cost found */
    for (int k = 0; k < noff; k++) {
        int dj = k / side - radius, di = k % side - radius;
        double ly = (abs(dj) > 1 ? abs(dj) - 1 : 0) * ch_, lx = (abs(di) > 1 ? abs(di) - 1 : 0) * cw;
        off[k] = (cell_offset){(float)(ks * (lx * lx + ly * ly)), dj, di};
    }
    qsort(off, (size_t)noff, sizeof *off, by_least_cost);
    if (out != q) {
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) /* the unstepped pixels keep q */
            memcpy(out + (size_t)y * W, q + (size_t)y * W, (size_t)W * sizeof(float));
    }
    /* cell by cell: a cell's candidates (a list, in the offsets' order: least cost, the
     * candidate's centre's offset from the cell's centre, and its mean depth and colour) are
     * gathered once for all its stepped pixels; the cells with many stepped pixels bunch along
     * the steps, hence the rows of cells handed out one at a time */
    SD_PARALLEL_FOR_DYN(nt)
    for (int j = 0; j < h; j++) {
        /* the list's fields, each an array: least cost, offset down and across, depth, colour */
        float *least = lists + (size_t)sd_thread_id() * (size_t)nlist * 7, *ldy = least + nlist, *ldx = ldy + nlist,
              *lq = ldx + nlist, *lc0 = lq + nlist, *lc1 = lc0 + nlist, *lc2 = lc1 + nlist;
        int y0 = sd_cell_edge(j, H, h), y1 = sd_cell_edge(j + 1, H, h);
        for (int i = 0; i < w; i++) {
            if (!has[(size_t)j * w + i]) continue;
            int n = 0;
            for (int o = 0; o < noff; o++) {
                int jj = j + off[o].dj, ii = i + off[o].di;
                if (jj < 0 || jj >= h || ii < 0 || ii >= w) continue;
                const float *c = cq + ((size_t)jj * w + ii) * 4;
                if (c[0] < 0.0f) continue;
                least[n] = off[o].least;
                ldy[n] = (float)off[o].dj * fch;
                ldx[n] = (float)off[o].di * fcw;
                lq[n] = c[0];
                lc0[n] = c[1];
                lc1[n] = c[2];
                lc2[n] = c[3];
                n++;
            }
            for (int e = n; e < nlist; e++) /* padding: its least cost ends every search */
                least[e] = INFINITY, ldy[e] = ldx[e] = lq[e] = lc0[e] = lc1[e] = lc2[e] = 0.0f;
            int x0 = xe[i], x1 = xe[i + 1];
            for (int y = y0; y < y1; y++) {
                const uint8_t *sy = stepped + (size_t)y * W;
                if (!sd_any_set(sy + x0, x1 - x0)) continue;
                float *oy = out + (size_t)y * W;
                /* the row's colours in the cell, as the fill compares them (sRGB): x's at run[3 (x - x0)] */
                const float *run = colour + ((size_t)y * W + x0) * 3;
                if (linear) {
                    float *enc = runs + (size_t)sd_thread_id() * (size_t)widest * 3;
                    sd_srgb_encode_run((size_t)(x1 - x0) * 3, run, enc);
                    run = enc;
                }
                /* the pixel's offset from its own cell's centre; a candidate's centre lies whole
                 * cells on */
                float py = (float)(y - (((double)j + 0.5) * ch_ - 0.5));
                for (int x = x0; x < x1; x++) {
                    if (!sy[x]) continue;
                    size_t k = (size_t)y * W + x;
                    const float *px = run + 3 * (x - x0);
                    float best = INFINITY;
                    float value = q[k];
                    float px_ = (float)(x - (((double)i + 0.5) * cw - 0.5));
                    /* SEARCH_LANES candidates' costs at a time (vectorised), then taken in order
                     * up to the first whose least cost reaches the best cost found */
                    for (int e0 = 0; e0 < n && least[e0] < best; e0 += SEARCH_LANES) {
                        float cost[SEARCH_LANES];
                        lane_costs(ldy + e0, ldx + e0, lc0 + e0, lc1 + e0, lc2 + e0, py, px_, px, fks, fkr, cost);
                        for (int e = e0; e < e0 + SEARCH_LANES && least[e] < best; e++)
                            if (cost[e - e0] < best) { /* the first of equal costs in the search's order */
                                best = cost[e - e0];
                                value = lq[e];
                            }
                    }
                    oy[x] = value;
                }
            }
        }
    }
done:
    free(cq);
    free(need);
    free(has);
    free(rows_any);
    free(acc);
    free(xe);
    free(off);
    free(lists);
    free(runs);
    return st;
}
