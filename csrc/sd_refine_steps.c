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
#include <stdlib.h>
#include <string.h>

#include "sd_parallel.h"
#include "sd_refine_steps.h"

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

sd_status sd_blurred_steps(int H, int W, const float *q, int h, int w, const float *qc, int r, double tau, double lo,
                           double hi, uint8_t *flag, size_t *count, int nthreads)
{
    if (H < 1 || W < 1 || h < 1 || w < 1 || h > H || w > W || !q || !qc || !flag || !count || r < 1 ||
        !(tau >= 0.0) || !(lo >= 0.0) || !(hi >= lo) || !(hi <= 1.0))
        return SD_ERR_ARG;
    *count = 0;
    size_t n = (size_t)H * (size_t)W, nc = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++)
        if (!(q[i] > 0.0f && q[i] <= 3.4028235e38f)) return SD_ERR_VALUE; /* NaN, inf, 0 or negative */
    for (size_t i = 0; i < nc; i++)
        if (!(qc[i] > 0.0f && qc[i] <= 3.4028235e38f)) return SD_ERR_VALUE;
    if (r > h + w) r = h + w; /* wider windows are the frame */
    int nt = sd_threads(nthreads);
    /* the cells' statistics, and each pixel's cell (rows [j H / h, (j + 1) H / h), as sd_cell_means) */
    uint8_t *bent = malloc(nc);
    float *mn = malloc(nc * sizeof(float)), *mx = malloc(nc * sizeof(float));
    int *cy = malloc((size_t)H * sizeof(int)), *cx = malloc((size_t)W * sizeof(int));
    sd_status st = bent && mn && mx && cy && cx ? window_stats(h, w, qc, r, tau, bent, mn, mx, nt) : SD_ERR_NOMEM;
    if (st == SD_OK) {
        for (int j = 0; j < h; j++)
            for (int y = (int)((long long)j * H / h); y < (int)((long long)(j + 1) * H / h); y++) cy[y] = j;
        for (int i = 0; i < w; i++)
            for (int x = (int)((long long)i * W / w); x < (int)((long long)(i + 1) * W / w); x++) cx[x] = i;
        size_t total = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : total)
#endif
        for (int y = 0; y < H; y++) {
            const float *qy = q + (size_t)y * W;
            size_t c = (size_t)cy[y] * (size_t)w, flagged = 0;
            uint8_t *fy = flag + (size_t)y * W;
            for (int x = 0; x < W; x++) {
                size_t k = c + (size_t)cx[x];
                double d = (double)qy[x] - mn[k], range = (double)mx[k] - mn[k];
                int f = bent[k] && range > 0.0 && d > lo * range && d < hi * range;
                fy[x] = (uint8_t)f;
                flagged += (size_t)f;
            }
            total += flagged;
        }
        *count = total;
    }
    free(bent);
    free(mn);
    free(mx);
    free(cy);
    free(cx);
    return st;
}
