/* Circle-of-confusion maps: signed diameter in pixels, negative in front of the focal plane. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_util.h"

static inline float clamp_coc(double c, double max_coc)
{
    if (max_coc > 0) {
        if (c > max_coc) c = max_coc;
        if (c < -max_coc) c = -max_coc;
    }
    return (float)c;
}

/* One row of a CoC map: BODY of every pixel's depth z, 0 where VALID fails; returns whether any
 * failed. No branch per pixel (an invalid depth's value is computed, then replaced by 0), so the
 * divisions run as vectors; compiled a second time for AVX2 where the toolchain can (SD_CLONES):
 * the same arithmetic, 4 doubles at a time. k holds the model's constants. */
#define SD_COC_ROW(NAME, BODY, VALID)                                                            \
    SD_CLONES static int NAME(const float *restrict d, ptrdiff_t dpix, int W, float *restrict o, \
                              double max_coc, const double *k)                                   \
    {                                                                                            \
        const double k0 = k[0], k1 = k[1], k2 = k[2];                                            \
        (void)k2;                                                                                \
        int bad = 0;                                                                             \
        for (int x = 0; x < W; x++) {                                                            \
            double z = d[(ptrdiff_t)x * dpix];                                                   \
            int ok = (VALID);                                                                    \
            float c = clamp_coc(BODY, max_coc);                                                  \
            o[x] = ok ? c : 0.0f;                                                                \
            bad |= !ok;                                                                          \
        }                                                                                        \
        return bad;                                                                              \
    }

#ifdef _OPENMP
#define SD_PRAGMA_CRITICAL _Pragma("omp critical(sd_coc_bad)")
#else
#define SD_PRAGMA_CRITICAL
#endif

/* The map, row by row. A row with an invalid depth is walked again for its first; the smallest
 * flat index over the rows wins, so the reported pixel does not depend on the thread count. */
static sd_status coc_map(int (*row)(const float *, ptrdiff_t, int, float *, double, const double *),
                         const double *k, int H, int W, const float *depth, ptrdiff_t drow, ptrdiff_t dpix,
                         double max_coc, float *out, ptrdiff_t orow, int nthreads, ptrdiff_t *bad)
{
    ptrdiff_t first_bad = -1;
    SD_PARALLEL_FOR(sd_threads(nthreads))
    for (int y = 0; y < H; y++) {
        const float *d = depth + (ptrdiff_t)y * drow;
        float *o = out + (ptrdiff_t)y * orow;
        if (!row(d, dpix, W, o, max_coc, k)) continue;
        int x = 0; /* the first invalid one, a pixel at a time */
        while (!row(d + (ptrdiff_t)x * dpix, dpix, 1, o + x, max_coc, k)) x++;
        ptrdiff_t idx = (ptrdiff_t)y * W + x;
        SD_PRAGMA_CRITICAL
        { if (first_bad < 0 || idx < first_bad) first_bad = idx; }
    }
    if (first_bad >= 0) { if (bad) *bad = first_bad; return SD_ERR_VALUE; }
    return SD_OK;
}

/* c = A (1/z_f - 1/z): what a fixed-field-of-view thin lens (Cycles, Mitsuba) renders. */
SD_COC_ROW(fixed_fov_row, k0 * (k1 - 1.0 / z), isfinite(z) && z > 0.0)
/* c = f^2 / (N (z_f - f)) (z - z_f) / z, scaled to pixels: sensor at the image distance. */
SD_COC_ROW(real_lens_row, k0 * (z - k1) / z, isfinite(z) && z > k2)
/* c = K (d_f - d): larger disparity is nearer, so nearer than focus gives a negative CoC. */
SD_COC_ROW(disparity_row, k0 * (k1 - z), isfinite(z))

sd_status sd_coc_fixed_fov(int H, int W, const float *depth, ptrdiff_t drow, ptrdiff_t dpix,
                           double scale, double inv_focus, double max_coc, float *out,
                           ptrdiff_t orow, int nthreads, ptrdiff_t *bad)
{
    const double k[3] = {scale, inv_focus, 0.0};
    return coc_map(fixed_fov_row, k, H, W, depth, drow, dpix, max_coc, out, orow, nthreads, bad);
}

sd_status sd_coc_real_lens(int H, int W, const float *depth, ptrdiff_t drow, ptrdiff_t dpix,
                           double scale, double focus, double focal_length, double max_coc,
                           float *out, ptrdiff_t orow, int nthreads, ptrdiff_t *bad)
{
    const double k[3] = {scale, focus, focal_length};
    return coc_map(real_lens_row, k, H, W, depth, drow, dpix, max_coc, out, orow, nthreads, bad);
}

sd_status sd_coc_disparity(int H, int W, const float *depth, ptrdiff_t drow, ptrdiff_t dpix,
                           double K, double focus_disp, double max_coc, float *out,
                           ptrdiff_t orow, int nthreads, ptrdiff_t *bad)
{
    const double k[3] = {K, focus_disp, 0.0};
    return coc_map(disparity_row, k, H, W, depth, drow, dpix, max_coc, out, orow, nthreads, bad);
}

/* Whether a float is NaN or infinite, from its bits: all exponent bits set. A branch-free test
 * lets the row scan vectorise; the exact place is only looked for in a row that has one. */
static inline unsigned nonfinite_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* The first non-finite value of row y of v (its pixel's flat index y W + x), or -1. */
static ptrdiff_t row_nonfinite(int W, sd_cview v, int y)
{
    const float *r = v.data + (ptrdiff_t)y * v.row;
    unsigned bad = 0;
    if (v.pix == v.nch) { /* packed pixels: one run of floats */
        ptrdiff_t n = (ptrdiff_t)W * v.nch;
        SD_SIMD_OR(bad)
        for (ptrdiff_t i = 0; i < n; i++) bad |= nonfinite_bits(r[i]);
    } else {
        for (int x = 0; x < W; x++)
            for (int c = 0; c < v.nch; c++) bad |= nonfinite_bits(r[(ptrdiff_t)x * v.pix + c]);
    }
    if (bad)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < v.nch; c++)
                if (!isfinite(r[(ptrdiff_t)x * v.pix + c])) return (ptrdiff_t)y * W + x;
    return -1;
}

ptrdiff_t sd_find_nonfinite(int H, int W, sd_cview v, int nthreads)
{
    enum { MAXB = 64 }; /* row blocks, each scanned in order up to its first bad row */
    ptrdiff_t first[MAXB];
    int nb = H < MAXB ? H : MAXB;
    SD_PARALLEL_FOR_DYN(sd_threads(nthreads))
    for (int b = 0; b < nb; b++) {
        first[b] = -1;
        for (int y = (int)((long long)H * b / nb); y < (int)((long long)H * (b + 1) / nb) && first[b] < 0; y++)
            first[b] = row_nonfinite(W, v, y);
    }
    for (int b = 0; b < nb; b++) /* the first block with one holds the first */
        if (first[b] >= 0) return first[b];
    return -1;
}

/* One row's run of n packed values: copied (o non-NULL), their range and any non-finite one. */
static inline void scan_run(int n, const float *restrict r, float *restrict o, float *lo, float *hi, unsigned *bad)
{
    float l = *lo, h = *hi;
    unsigned b = *bad;
    if (o) {
        SD_SIMD_MINMAX_OR(l, h, b)
        for (int x = 0; x < n; x++) {
            float f = r[x];
            o[x] = f;
            b |= nonfinite_bits(f);
            l = f < l ? f : l; /* a NaN compares false: left out */
            h = f > h ? f : h;
        }
    } else {
        SD_SIMD_MINMAX_OR(l, h, b)
        for (int x = 0; x < n; x++) {
            float f = r[x];
            b |= nonfinite_bits(f);
            l = f < l ? f : l;
            h = f > h ? f : h;
        }
    }
    *lo = l, *hi = h, *bad = b;
}

ptrdiff_t sd_copy_scan(int H, int W, sd_cview v, float *out, float *lo, float *hi, int nthreads)
{
    /* Bands of rows, a multiple of 16 high, in any order; in a band whose pixels are not adjacent
     * (a transposed view: a resizer's output) tiles of 64 columns, so that each of a tile's
     * columns is read a cache line of 16 rows at a time while its 16 output rows stay cached. */
    enum { MAXB = 256, TILE = 16, TILE_COLS = 64 };
    ptrdiff_t first[MAXB];
    float blo[MAXB], bhi[MAXB];
    int band = ((H + MAXB - 1) / MAXB + TILE - 1) / TILE * TILE, nb = (H + band - 1) / band;
    SD_PARALLEL_FOR_DYN(sd_threads_for(sd_threads(nthreads), (ptrdiff_t)H * W))
    for (int b = 0; b < nb; b++) {
        int y0 = b * band, y1 = y0 + band < H ? y0 + band : H;
        float l = INFINITY, h = -INFINITY;
        unsigned bad = 0;
        if (v.pix == 1) {
            for (int y = y0; y < y1; y++)
                scan_run(W, v.data + (ptrdiff_t)y * v.row, out ? out + (ptrdiff_t)y * W : NULL, &l, &h, &bad);
        } else {
            for (int ty = y0; ty < y1; ty += TILE)
                for (int tx = 0; tx < W; tx += TILE_COLS) {
                    int ny = y1 - ty < TILE ? y1 - ty : TILE, nx = W - tx < TILE_COLS ? W - tx : TILE_COLS;
                    for (int y = ty; y < ty + ny; y++) {
                        const float *r = v.data + (ptrdiff_t)y * v.row + (ptrdiff_t)tx * v.pix;
                        float *o = out ? out + (ptrdiff_t)y * W + tx : NULL;
                        for (int x = 0; x < nx; x++) {
                            float f = r[(ptrdiff_t)x * v.pix];
                            if (o) o[x] = f;
                            bad |= nonfinite_bits(f);
                            l = f < l ? f : l;
                            h = f > h ? f : h;
                        }
                    }
                }
        }
        first[b] = -1;
        for (int y = y0; bad && y < y1 && first[b] < 0; y++) first[b] = row_nonfinite(W, v, y);
        blo[b] = l;
        bhi[b] = h;
    }
    ptrdiff_t found = -1;
    float l = INFINITY, h = -INFINITY;
    for (int b = 0; b < nb; b++) { /* in band order: the first band with one holds the first */
        if (found < 0) found = first[b];
        l = blo[b] < l ? blo[b] : l;
        h = bhi[b] > h ? bhi[b] : h;
    }
    *lo = l;
    *hi = h;
    return found;
}

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

int sd_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int sd_default_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
