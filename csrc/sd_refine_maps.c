/* Refine stage, the per-pixel passes around the filters (sd_refine.c): the guide's sRGB
 * encoding, depth to disparity and back, the noise estimate, the band beside the matte's
 * boundary, and the weighing and normalising of the fills.
 *
 * Why in C: each is one or two elementwise passes over 12 MP planes, which NumPy makes as a chain
 * of full-size temporaries (a mask, a product, a where, a cast); one fused pass reads each input
 * once. Every function computes exactly what the NumPy expressions it replaces computed (the same
 * float32 operations in the same order), so refine's output is unchanged to the bit. All are
 * split by rows or by fixed chunks, so the result does not depend on the thread count. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sd_alloc.h"
#include "sd_parallel.h"
#include "sd_refine.h"
#include "sd_refine_maps.h"
#include "sd_util.h"

/* Below this linear value sRGB is linear (IEC 61966-2-1); the float32 constants NumPy uses when
 * a float32 array meets these Python floats. */
#define SRGB_KNEE 0.0031308f

/* The encoding's selections by integer masks on the values' bits: a float comparison (it may
 * raise the invalid flag) keeps a loop scalar. float_bits / bits_float: a float's bits and back;
 * above_mask: all bits set where the float of bits u exceeds the non-negative float of bits t
 * (+inf too, NaN not), negative_mask where it is below 0 (not -0, not NaN), nan_mask where it is
 * NaN. */
static inline uint32_t float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float bits_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline uint32_t above_mask(uint32_t u, uint32_t t) { return 0u - (uint32_t)(u - (t + 1u) < 0x7F800000u - t); }
static inline uint32_t negative_mask(uint32_t u) { return 0u - (uint32_t)(u - 0x80000001u < 0x7F800000u); }
static inline uint32_t nan_mask(uint32_t u) { return 0u - (uint32_t)((u & 0x7FFFFFFFu) > 0x7F800000u); }

/* x < 0 ? 0 : x > 1 ? 1 : x (NaN stays) */
static inline float clip01(float x)
{
    uint32_t u = float_bits(x), lo = negative_mask(u), hi = above_mask(u, float_bits(1.0f));
    return bits_float((u & ~(lo | hi)) | (float_bits(1.0f) & hi));
}

/* the base of the power for a clipped value x: x > SRGB_KNEE ? x : SRGB_KNEE */
static inline float knee_base(float x)
{
    uint32_t u = float_bits(x), m = above_mask(u, float_bits(SRGB_KNEE));
    return bits_float((u & m) | (float_bits(SRGB_KNEE) & ~m));
}

/* the encoding of a clipped value x with the power p of its base:
 * x <= SRGB_KNEE ? 12.92 x : 1.055 p - 0.055 */
static inline float knee_select(float x, float p)
{
    uint32_t u = float_bits(x), power = above_mask(u, float_bits(SRGB_KNEE)) | nan_mask(u);
    return bits_float((float_bits(12.92f * x) & ~power) | (float_bits(1.055f * p - 0.055f) & power));
}

sd_status sd_srgb_encode_base(size_t n, const float *lin, float *base, int nthreads)
{
    if (!lin || !base) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * SD_FLAT_CHUNK, i1 = i0 + SD_FLAT_CHUNK < n ? i0 + SD_FLAT_CHUNK : n;
        SD_SIMD
        for (size_t i = i0; i < i1; i++) {
            base[i] = knee_base(clip01(lin[i]));
        }
    }
    return SD_OK;
}

/* 2^(5e/12) for e = -9 .. 0, float32 of the exact value: the exponent's share of x^(5/12). */
static const float POW_5_12_OF_TWO[10] = {0.0743254447f, 0.0992125657f, 0.132432887f, 0.176776695f, 0.235968578f,
                                          0.314980262f,  0.420448208f,  0.561231024f, 0.749153538f, 1.0f};

/* x^(1/2.4) = x^(5/12) for x in [SRGB_KNEE, 1] (the base), in float arithmetic alone: the same
 * bits on every machine (a library's or NumPy's vectorised pow differs between processors in
 * the last bits), and it vectorises (selections by integer masks). x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)): 2^(5e/12) from the table, m^(5/12) = e^(5/12 log m) with Cephes' logf
 * polynomial and e^y's Taylor series to y^6 (|y| < 0.145). Within 3 ulp of the exact value. */
static inline float pow_5_12(float x)
{
    uint32_t ux;
    memcpy(&ux, &x, sizeof ux);
    int32_t e = (int32_t)(ux >> 23) - 127;
    uint32_t mbits = (ux & 0x007fffffu) | 0x3f800000u; /* m in [1, 2) */
    uint32_t big = mbits > 0x3fb504f3u;               /* m > sqrt(2): halve it */
    mbits -= big << 23;
    e += (int32_t)big;
    e = e < -9 ? -9 : e > 0 ? 0 : e; /* the base lies in [2^-9, 1] */
    float m;
    memcpy(&m, &mbits, sizeof m);
    float z = m - 1.0f, zz = z * z;
    float l = 7.0376836292e-2f;
    l = l * z - 1.1514610310e-1f;
    l = l * z + 1.1676998740e-1f;
    l = l * z - 1.2420140846e-1f;
    l = l * z + 1.4249322787e-1f;
    l = l * z - 1.6668057665e-1f;
    l = l * z + 2.0000714765e-1f;
    l = l * z - 2.4999993993e-1f;
    l = l * z + 3.3333331174e-1f;
    l = (l * z * zz - 0.5f * zz) + z; /* log(m) */
    float y = l * (5.0f / 12.0f);
    float t = y * (1.0f / 720.0f) + (1.0f / 120.0f);
    t = t * y + (1.0f / 24.0f);
    t = t * y + (1.0f / 6.0f);
    t = t * y + 0.5f;
    t = t * y + 1.0f;
    t = t * y + 1.0f; /* e^y */
    return t * POW_5_12_OF_TWO[e + 9];
}

static inline float encode_one(float lin)
{
    float x = clip01(lin);
    return knee_select(x, pow_5_12(knee_base(x)));
}

float sd_srgb_encode_one(float lin) { return encode_one(lin); }

/* The finishing step on lin[i0, i1) (inout holds the base there). */
static inline void finish_span(size_t i0, size_t i1, const float *restrict lin, float *restrict inout)
{
    SD_SIMD
    for (size_t i = i0; i < i1; i++) inout[i] = pow_5_12(inout[i]);
    SD_SIMD
    for (size_t i = i0; i < i1; i++) {
        inout[i] = knee_select(clip01(lin[i]), inout[i]);
    }
}

sd_status sd_srgb_encode_finish(size_t n, const float *lin, float *inout, int nthreads)
{
    if (!lin || !inout) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * SD_FLAT_CHUNK, i1 = i0 + SD_FLAT_CHUNK < n ? i0 + SD_FLAT_CHUNK : n;
        finish_span(i0, i1, lin, inout);
    }
    return SD_OK;
}

/* compiled a second time for AVX2 (SD_CLONES): the guided upsampling encodes its pixels here */
SD_CLONES void sd_srgb_encode_run(size_t n, const float *restrict lin, float *restrict out)
{
    SD_SIMD
    for (size_t i = 0; i < n; i++) out[i] = encode_one(lin[i]);
}

sd_status sd_unorm_to_float(size_t n, const void *src, int bytes, float *out, int nthreads)
{
    if (!src || !out || (bytes != 1 && bytes != 2)) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    /* float32(1 / max) times the value, as NumPy's image * np.float32(1 / max) */
    const float scale = bytes == 1 ? (float)(1.0 / 255.0) : (float)(1.0 / 65535.0);
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * SD_FLAT_CHUNK, i1 = i0 + SD_FLAT_CHUNK < n ? i0 + SD_FLAT_CHUNK : n;
        if (bytes == 1) {
            const uint8_t *s = src;
            SD_SIMD
            for (size_t i = i0; i < i1; i++) out[i] = (float)s[i] * scale;
        } else {
            const uint16_t *s = src;
            SD_SIMD
            for (size_t i = i0; i < i1; i++) out[i] = (float)s[i] * scale;
        }
    }
    return SD_OK;
}

/* All bits set where x is finite and > 0, none elsewhere. */
static inline uint32_t positive_finite_mask(float x) { return 0u - (uint32_t)(float_bits(x) - 1u < 0x7F7FFFFFu); }

/* sd_disparity_in over [i0, i1), inlined with `invalid` given or not and is_disparity constant:
 * selections by masks, which vectorise. Returns the valid pixels. */
static inline size_t disparity_span(size_t i0, size_t i1, const float *restrict depth, const uint8_t *restrict invalid,
                                    int is_disparity, float *restrict q, float *restrict weight)
{
    size_t count = 0;
    SD_SIMD_SUM(count)
    for (size_t i = i0; i < i1; i++) {
        const float d = depth[i], v = is_disparity ? d : 1.0f / d;
        /* a depth so small (denormal) that its disparity overflows is no depth either */
        uint32_t ok = positive_finite_mask(d) & positive_finite_mask(v);
        if (invalid) ok &= 0u - (uint32_t)(invalid[i] == 0);
        q[i] = bits_float(float_bits(v) & ok);
        weight[i] = bits_float(0x3F800000u & ok); /* 1 or 0 */
        count += ok & 1u;
    }
    return count;
}

sd_status sd_disparity_in(size_t n, const float *depth, const uint8_t *invalid, int is_disparity, float *q,
                          float *weight, size_t *nvalid, int nthreads)
{
    if (!depth || !q || !weight || !nvalid) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    (void)nt; /* unused without OpenMP */
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    size_t count = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : count)
#endif
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * SD_FLAT_CHUNK, i1 = i0 + SD_FLAT_CHUNK < n ? i0 + SD_FLAT_CHUNK : n;
        if (is_disparity)
            count += invalid ? disparity_span(i0, i1, depth, invalid, 1, q, weight)
                             : disparity_span(i0, i1, depth, NULL, 1, q, weight);
        else
            count += invalid ? disparity_span(i0, i1, depth, invalid, 0, q, weight)
                             : disparity_span(i0, i1, depth, NULL, 0, q, weight);
    }
    *nvalid = count;
    return SD_OK;
}

sd_status sd_disparity_out(size_t n, const float *q, int is_disparity, float *out, int nthreads)
{
    if (!q || !out) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    const float tiny = 1.17549435e-38f; /* FLT_MIN: the result stays finite and positive */
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * SD_FLAT_CHUNK, i1 = i0 + SD_FLAT_CHUNK < n ? i0 + SD_FLAT_CHUNK : n;
        SD_SIMD
        for (size_t i = i0; i < i1; i++) {
            float v = q[i];
            v = v > tiny || v != v ? v : tiny; /* np.maximum: NaN stays NaN */
            out[i] = is_disparity ? v : 1.0f / v;
        }
    }
    return SD_OK;
}

sd_status sd_agreeing(size_t n, const float *q, const float *q_in, const float *weight, float limit, uint8_t *kept,
                      int nthreads)
{
    if (!q || !q_in || !weight || !kept) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * SD_FLAT_CHUNK, i1 = i0 + SD_FLAT_CHUNK < n ? i0 + SD_FLAT_CHUNK : n;
        /* every pixel divided (where weight is 0, q_in may be 0: the quotient is not used), and the
         * tests as masks, which vectorise */
        SD_SIMD
        for (size_t i = i0; i < i1; i++) {
            const float r = fabsf(q[i] - q_in[i]) / q_in[i];
            kept[i] = (uint8_t)(2u & (0u - (uint32_t)(weight[i] > 0.0f)) & (0u - (uint32_t)(r <= limit)));
        }
    }
    return SD_OK;
}

sd_status sd_count_above(size_t n, const float *v, float threshold, size_t chunk, size_t *counts, int nthreads)
{
    if (!v || !counts || chunk < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    ptrdiff_t nchunks = (ptrdiff_t)((n + chunk - 1) / chunk);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n, k = 0;
        SD_SIMD_SUM(k)
        for (size_t i = i0; i < i1; i++) k += v[i] > threshold;
        counts[c] = k;
    }
    return SD_OK;
}

sd_status sd_list_above(size_t n, const float *v, float threshold, size_t chunk, const size_t *starts, int64_t *out,
                        int nthreads)
{
    if (!v || !starts || !out || chunk < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    ptrdiff_t nchunks = (ptrdiff_t)((n + chunk - 1) / chunk);
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t at = starts[c], i0 = (size_t)c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        if (c + 1 < nchunks && starts[c + 1] == at) continue; /* none above in this chunk */
        for (size_t i = i0; i < i1; i++)
            if (v[i] > threshold) out[at++] = (int64_t)i;
    }
    return SD_OK;
}

/* ---- a resize's test ------------------------------------------------------------------- */

/* Where output position o of n reads a map of m samples enlarged by scale: the sample at or
 * before it, the next (the same at the end) and the next one's weight (NumPy's float64
 * clip((o + 0.5) / scale - 0.5, 0, m - 1), floor, minimum(i0 + 1, m - 1), and the difference). */
static void enlargement_taps(int n, int m, double scale, int *i0, int *i1, double *f)
{
    for (int o = 0; o < n; o++) {
        double p = ((double)o + 0.5) / scale - 0.5;
        p = p > 0.0 ? p : 0.0;
        p = p < (double)(m - 1) ? p : (double)(m - 1);
        i0[o] = (int)floor(p);
        i1[o] = i0[o] + 1 < m ? i0[o] + 1 : m - 1;
        f[o] = p - (double)i0[o];
    }
}

sd_status sd_enlargement_fits(int H, int W, const float *d, int h, int w, const double *small, double sy, double sx,
                              double tolerance, int *fits, int nthreads)
{
    if (H < 1 || W < 1 || h < 1 || w < 1 || !d || !small || !fits) return SD_ERR_ARG;
    if (!(sy >= 1.0) || !(sx >= 1.0) || !isfinite(sy) || !isfinite(sx) || isnan(tolerance)) return SD_ERR_VALUE;
    int nt = sd_threads(nthreads);
    int *y0 = malloc(sizeof(int) * 2 * (size_t)H), *x0 = malloc(sizeof(int) * 2 * (size_t)W);
    double *fy = malloc(sizeof(double) * (size_t)H), *fx = malloc(sizeof(double) * (size_t)W);
    double *rows = malloc(sizeof(double) * (size_t)w * (size_t)nt); /* each thread's row between two sample rows */
    if (!y0 || !x0 || !fy || !fx || !rows) {
        free(y0);
        free(x0);
        free(fy);
        free(fx);
        free(rows);
        return SD_ERR_NOMEM;
    }
    int *y1 = y0 + H, *x1 = x0 + W;
    enlargement_taps(H, h, sy, y0, y1, fy);
    enlargement_taps(W, w, sx, x0, x1, fx);
    int missed = 0; /* a pixel off: the rows left stop (any order finds one, if there is one) */
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        if (sd_flag_raised(&missed)) continue;
        double *r = rows + (ptrdiff_t)sd_thread_id() * w;
        const double *a = small + (ptrdiff_t)y0[y] * w, *b = small + (ptrdiff_t)y1[y] * w;
        const double gy = 1.0 - fy[y], ty = fy[y];
        for (int i = 0; i < w; i++) r[i] = a[i] * gy + b[i] * ty;
        const float *dr = d + (ptrdiff_t)y * W;
        int bad = 0;
        for (int x = 0; x < W; x++) {
            double v = r[x0[x]] * (1.0 - fx[x]) + r[x1[x]] * fx[x];
            bad |= fabs(v - (double)dr[x]) > tolerance;
        }
        if (bad) sd_raise_flag(&missed);
    }
    *fits = !missed;
    free(y0);
    free(x0);
    free(fy);
    free(fx);
    free(rows);
    return SD_OK;
}

/* ---- grid samples ----------------------------------------------------------------------- */

sd_status sd_take_grid(int H, int W, int C, const float *src, int h, const int64_t *ys, int w, const int64_t *xs,
                       float *out, int nthreads)
{
    if (H < 1 || W < 1 || C < 1 || h < 1 || w < 1 || !src || !ys || !xs || !out) return SD_ERR_ARG;
    for (int j = 0; j < h; j++)
        if (ys[j] < 0 || ys[j] >= H) return SD_ERR_VALUE;
    for (int i = 0; i < w; i++)
        if (xs[i] < 0 || xs[i] >= W) return SD_ERR_VALUE;
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int j = 0; j < h; j++) {
        const float *row = src + (ptrdiff_t)ys[j] * W * C;
        float *o = out + (ptrdiff_t)j * w * C;
        for (int i = 0; i < w; i++)
            for (int c = 0; c < C; c++) o[(ptrdiff_t)i * C + c] = row[(ptrdiff_t)xs[i] * C + c];
    }
    return SD_OK;
}

/* ---- medians ---------------------------------------------------------------------------- */

/* Samples per chunk of the median's gathering pass (the chunks split between threads). */
#define MEDIAN_CHUNK 4096
/* Buckets of a radix pass of the selection: 16 of a key's 32 bits. */
#define MEDIAN_BUCKETS 65536

/* A float's bits as an unsigned key in the floats' order (-0 just below +0); 0 is only a NaN's
 * (all bits set), which the gathering never stores: it marks a sample left out. */
static inline uint32_t order_key(float f)
{
    uint32_t u = float_bits(f);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static inline float key_value(uint32_t k) { return bits_float((k & 0x80000000u) ? k & 0x7FFFFFFFu : ~k); }

/* The key of rank r (from 0) among the nonzero keys of keys[0 .. m), given hi = the counts of
 * their upper 16 bits; lo: MEDIAN_BUCKETS counts of scratch. Exact: the bucket of rank r by its
 * upper bits, then its keys' lower bits. */
static uint32_t key_of_rank(const uint32_t *keys, size_t m, const size_t *hi, size_t r, size_t *lo)
{
    size_t below = 0, b = 0;
    while (below + hi[b] <= r) below += hi[b++];
    memset(lo, 0, sizeof(size_t) * MEDIAN_BUCKETS);
    for (size_t i = 0; i < m; i++)
        if (keys[i] && keys[i] >> 16 == b) lo[keys[i] & 0xFFFFu]++;
    size_t l = 0;
    while (below + lo[l] <= r) below += lo[l++];
    return (uint32_t)(b << 16 | l);
}

sd_status sd_median_sampled(size_t n, size_t step, const float *v, const float *ref, const float *weight,
                            float *median, int nthreads)
{
    if (!v || !median || step < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    size_t m = n ? (n - 1) / step + 1 : 0; /* samples 0, step, 2 step, ... */
    *median = NAN;                         /* of none, as NumPy's */
    if (!m) return SD_OK;
    uint32_t *keys = malloc(sizeof(uint32_t) * m);
    size_t *hi = calloc(MEDIAN_BUCKETS, sizeof(size_t)), *lo = malloc(sizeof(size_t) * MEDIAN_BUCKETS);
    if (!keys || !hi || !lo) {
        free(keys);
        free(hi);
        free(lo);
        return SD_ERR_NOMEM;
    }
    ptrdiff_t nchunks = (ptrdiff_t)((m + MEDIAN_CHUNK - 1) / MEDIAN_CHUNK);
    size_t count = 0;
    int has_nan = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : count) reduction(| : has_nan)
#endif
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        size_t s0 = (size_t)c * MEDIAN_CHUNK, s1 = s0 + MEDIAN_CHUNK < m ? s0 + MEDIAN_CHUNK : m;
        for (size_t s = s0; s < s1; s++) {
            size_t i = s * step;
            keys[s] = 0;
            if (weight && !(weight[i] > 0.0f)) continue;
            /* NumPy's |v - ref| / ref in float32 */
            float x = ref ? fabsf(v[i] - ref[i]) / ref[i] : v[i];
            if (x != x) {
                has_nan = 1;
                continue;
            }
            keys[s] = order_key(x);
            count++;
        }
    }
    (void)nt; /* unused without OpenMP */
    if (count && !has_nan) {
        for (size_t s = 0; s < m; s++)
            if (keys[s]) hi[keys[s] >> 16]++;
        /* the middle value, or the two middle values' mean as NumPy takes it: their float32 sum
         * halved */
        float a = key_value(key_of_rank(keys, m, hi, (count - 1) / 2, lo));
        *median = count % 2 ? a : (a + key_value(key_of_rank(keys, m, hi, count / 2, lo))) / 2.0f;
    }
    free(keys);
    free(hi);
    free(lo);
    return SD_OK;
}

/* ---- cell means ------------------------------------------------------------------------- */

void sd_cell_edges(int n, int cells, int *edges)
{
    for (int i = 0; i <= cells; i++) edges[i] = sd_cell_edge(i, n, cells);
}

/* The sums over one row of cells, from pixel row y's K channels (K a constant where inlined): per
 * cell the weighted sum of each channel, the weight, and (K = 1) the weighted squares. Each
 * cell's row sum is added to its running sum as a whole (the same order whatever K). */
static inline void cell_row_sums(int K, int w, const int *x0, const float *restrict qr, const float *restrict wr,
                                 double *restrict sq, double *restrict sw, double *restrict sqq)
{
    for (int i = 0; i < w; i++) {
        double a[SD_CELL_MAX_CHANNELS] = {0.0}, b = 0.0, c = 0.0;
        for (int x = x0[i]; x < x0[i + 1]; x++) {
            const double wt = wr ? (double)wr[x] : 1.0;
            for (int k = 0; k < K; k++) {
                double wq = wt * (double)qr[(ptrdiff_t)x * K + k];
                a[k] += wq;
                if (K == 1) c += wq * (double)qr[x];
            }
            b += wt;
        }
        for (int k = 0; k < K; k++) sq[(ptrdiff_t)i * K + k] += a[k];
        sw[i] += b;
        if (K == 1) sqq[i] += c;
    }
}

sd_status sd_cell_means(int H, int W, int K, const float *q, const float *weight, int h, int w, float *out_q,
                        float *out_w, float *out_spread, int nthreads)
{
    if (H < 1 || W < 1 || h < 1 || w < 1 || h > H || w > W || K < 1 || K > SD_CELL_MAX_CHANNELS || !q || !out_q ||
        !out_w || (out_spread && K != 1))
        return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    int *x0 = malloc(sizeof(int) * ((size_t)w + 1));
    const size_t per_thread = (2 * (size_t)K + 1) * (size_t)w;
    double *acc = malloc(sizeof(double) * per_thread * (size_t)nt);
    if (!x0 || !acc) {
        free(x0);
        free(acc);
        return SD_ERR_NOMEM;
    }
    /* cell i spans columns [i W / w, (i + 1) W / w): its centre lies where the upsampling puts
     * sample i (sd_guided_upsample's (i + 0.5) W / w), within half a pixel */
    sd_cell_edges(W, w, x0);
    SD_PARALLEL_FOR(nt)
    for (int j = 0; j < h; j++) {
        /* sums in double: a mean of values near float's largest does not overflow */
        double *sq = acc + (ptrdiff_t)sd_thread_id() * (ptrdiff_t)per_thread, *sw = sq + (ptrdiff_t)K * w,
               *sqq = sw + w;
        int y0 = sd_cell_edge(j, H, h), y1 = sd_cell_edge(j + 1, H, h);
        for (size_t i = 0; i < per_thread; i++) sq[i] = 0.0;
        for (int y = y0; y < y1; y++) {
            const float *qr = q + (ptrdiff_t)y * W * K, *wr = weight ? weight + (ptrdiff_t)y * W : NULL;
            if (K == 1) /* inlined with the channels constant */
                cell_row_sums(1, w, x0, qr, wr, sq, sw, sqq);
            else if (K == 3)
                cell_row_sums(3, w, x0, qr, wr, sq, sw, sqq);
            else
                cell_row_sums(K, w, x0, qr, wr, sq, sw, sqq);
        }
        for (int i = 0; i < w; i++) {
            double n = (double)(y1 - y0) * (double)(x0[i + 1] - x0[i]);
            const ptrdiff_t o = (ptrdiff_t)j * w + i;
            for (int k = 0; k < K; k++) out_q[o * K + k] = sw[i] > 0.0 ? (float)(sq[(ptrdiff_t)i * K + k] / sw[i]) : 0.0f;
            out_w[o] = (float)(sw[i] / n);
            if (out_spread) { /* the weighted standard deviation over |mean| (0 where that is 0) */
                double mean = sw[i] > 0.0 ? sq[i] / sw[i] : 0.0;
                double var = sw[i] > 0.0 ? sqq[i] / sw[i] - mean * mean : 0.0;
                double sd = var > 0.0 ? sqrt(var) : 0.0;
                out_spread[o] = mean != 0.0 ? (float)fmin(sd / fabs(mean), 3e38) : 0.0f;
            }
        }
    }
    free(x0);
    free(acc);
    return SD_OK;
}

/* ---- noise estimate --------------------------------------------------------------------- */

/* Inner pixels per block of a row (the block's values and flags stay on the stack). */
#define NOISE_BLOCK 256

sd_status sd_noise_above(int H, int W, const float *q, const float *weight, double threshold, int row_step,
                         int *above, size_t *count, int nthreads)
{
    if (H < 1 || W < 1 || !q || !weight || !above || !count || isnan(threshold) || row_step < 1) return SD_ERR_ARG;
    *above = 0.0 > threshold; /* no pixel: NumPy's median of nothing counted as 0 */
    *count = 0;
    if (H < 3 || W < 3) return SD_OK;
    int nt = sd_threads(nthreads);
    (void)nt; /* unused without OpenMP */
    int h = H - 2, w = W - 2;
    /* (double)r > threshold for a float r is r > thr: the largest float at or below threshold */
    float thr = (float)threshold;
    if ((double)thr > threshold) thr = nextafterf(thr, -INFINITY);
    /* Only the median's side of the threshold matters: the count above it decides, but for an
     * even count whose two middle values straddle it, whose mean is needed: the largest value
     * at or below and the smallest above (max and min, so the sum over threads is exact). */
    size_t n = 0, n_above = 0;
    int has_nan = 0;
    float below_max = -INFINITY, above_min = INFINITY;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : n, n_above) reduction(| : has_nan) \
    reduction(max : below_max) reduction(min : above_min)
#endif
    for (int y = 0; y < h; y++) {
        if (y % row_step) continue;
        float acc[NOISE_BLOCK];
        unsigned char ok[NOISE_BLOCK];
        for (int x0 = 0; x0 < w; x0 += NOISE_BLOCK) {
            int m = w - x0 < NOISE_BLOCK ? w - x0 : NOISE_BLOCK;
            for (int i = 0; i < m; i++) {
                acc[i] = 0.0f;
                ok[i] = 1;
            }
            /* the 3x3 sum in the order NumPy added the shifted planes (dy, then dx), the
             * neighbourhood valid where every weight is >= 1; each pixel's additions in the
             * same order, the pixels side by side */
            for (int dy = 0; dy < 3; dy++)
                for (int dx = 0; dx < 3; dx++) {
                    const float *qr = q + (ptrdiff_t)(y + dy) * W + x0 + dx;
                    const float *wr = weight + (ptrdiff_t)(y + dy) * W + x0 + dx;
                    SD_SIMD
                    for (int i = 0; i < m; i++) {
                        acc[i] += qr[i];
                        ok[i] &= wr[i] >= 1.0f;
                    }
                }
            /* each pixel's deviation, then the counts and extremes as vector reductions (exact in
             * any order: counts, a minimum and a maximum) */
            const float *cr = q + (ptrdiff_t)(y + 1) * W + x0 + 1;
            SD_SIMD
            for (int i = 0; i < m; i++) {
                float c = cr[i], ac = fabsf(c);
                acc[i] = fabsf(c - acc[i] / 9.0f) / (ac > 1e-30f || ac != ac ? ac : 1e-30f);
            }
            size_t nb = 0, na = 0;
            int nan_b = 0;
            float amin = INFINITY, bmax = -INFINITY;
#ifdef _OPENMP
#pragma omp simd reduction(+ : nb, na) reduction(| : nan_b) reduction(min : amin) reduction(max : bmax)
#endif
            for (int i = 0; i < m; i++) {
                const float r = acc[i];
                const int v = ok[i] != 0, up = v & (r > thr), low = v & !(r > thr) & (r == r);
                nb += (size_t)v;
                na += (size_t)up;
                nan_b |= v & (r != r);
                amin = up && r < amin ? r : amin;
                bmax = low && r > bmax ? r : bmax;
            }
            n += nb;
            n_above += na;
            has_nan |= nan_b;
            above_min = amin < above_min ? amin : above_min;
            below_max = bmax > below_max ? bmax : below_max;
        }
    }
    *count = n;
    if (!n) return SD_OK;
    if (has_nan) { /* NumPy's median of values with a NaN is NaN: not above anything */
        *above = 0;
    } else if (n % 2) { /* the middle value is above when more than half are */
        *above = n_above >= (n + 1) / 2;
    } else if (n_above != n / 2) { /* both middle values on one side */
        *above = n_above > n / 2;
    } else { /* the middle values straddle it: the median is their mean (in double: the mean of
              * two floats, however large, does not overflow, so the count decides alone above) */
        *above = ((double)below_max + (double)above_min) / 2.0 > threshold;
    }
    return SD_OK;
}

/* ---- the band beside the matte's boundary ----------------------------------------------- */

#define ANY_SIDE 1u
#define ANY_OTHER 2u
/* Columns per block of the vertical window pass. */
#define BAND_COL_BLOCK 256

/* One row of the side: min(m, m2) >= 0.5. */
static inline void side_row(int n, const float *restrict m, const float *restrict m2, uint8_t *restrict s)
{
    SD_SIMD
    for (int x = 0; x < n; x++) s[x] = (uint8_t)((m[x] >= 0.5f) & (m2[x] >= 0.5f));
}

/* A row of the window's flags added to (sign 1) or taken from (sign -1) the columns' counts of
 * pixels whose row window holds the side (cs) and the other side (co). */
static inline void count_window_row(int n, const uint8_t *restrict hw, int sign, int *restrict cs, int *restrict co)
{
    SD_SIMD
    for (int i = 0; i < n; i++) {
        cs[i] += sign * ((hw[i] & ANY_SIDE) != 0);
        co[i] += sign * ((hw[i] & ANY_OTHER) != 0);
    }
}

/* A row's flags over a block of columns added to (sign 1) or taken from (sign -1) the window's
 * counts of rows holding the side and the other side in that block. */
static inline void count_block_row(uint8_t flags, int sign, int *rows_side, int *rows_other)
{
    *rows_side += sign * ((flags & ANY_SIDE) != 0);
    *rows_other += sign * ((flags & ANY_OTHER) != 0);
}

/* One row of near (a pixel of the other side in the square: in a row window the column counts
 * hold), marked in col_any as well; whether the row has any. */
static inline int near_row(int n, const uint8_t *restrict s, const int *restrict cs, const int *restrict co,
                           uint8_t *restrict o, uint8_t *restrict col_any)
{
    int any = 0;
#ifdef _OPENMP
#pragma omp simd reduction(| : any)
#endif
    for (int i = 0; i < n; i++) {
        int own = s[i] != 0; /* the other side's count for a side pixel, the side's for the others */
        uint8_t v = (uint8_t)((own & (co[i] > 0)) | ((!own) & (cs[i] > 0)));
        o[i] = v;
        col_any[i] |= v;
        any |= v;
    }
    return any;
}

sd_status sd_band_near(int H, int W, const float *matte, const float *matte2, int radius, uint8_t *side,
                       uint8_t *near, int box[4], int nthreads)
{
    if (H < 1 || W < 1 || !matte || !side || !near || !box || radius < 0) return SD_ERR_ARG;
    if (!matte2) matte2 = matte;
    int nt = sd_threads(nthreads);
    uint8_t *hwin = sd_big_alloc((size_t)H * (size_t)W, 1, nt);
    int nblocks = (W + BAND_COL_BLOCK - 1) / BAND_COL_BLOCK;
    /* each row's flags over each block of columns (or-ed): a block whose rows in the window hold
     * only one side has no near pixel, and its counts are not kept there */
    uint8_t *block_flags = malloc((size_t)H * (size_t)nblocks);
    if (!hwin || !block_flags) {
        sd_big_free(hwin);
        free(block_flags);
        return SD_ERR_NOMEM;
    }
    int r = radius;
    /* rows: the side, and whether a window of 2r+1 pixels along the row holds a pixel of each */
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        const float *m = matte + (ptrdiff_t)y * W, *m2 = matte2 + (ptrdiff_t)y * W;
        uint8_t *s = side + (ptrdiff_t)y * W, *hw = hwin + (ptrdiff_t)y * W;
        side_row(W, m, m2, s);
        /* run by run: a run's pixels hold their own side, and the other within r of its ends
         * (where the run has a neighbour there) */
        for (int p = 0; p < W;) {
            /* the run's end: the next pixel of the other side (side flags are 0 or 1) */
            const uint8_t *next = memchr(s + p + 1, !s[p], (size_t)(W - p - 1));
            int e = next ? (int)(next - s) : W;
            memset(hw + p, s[p] ? ANY_SIDE : ANY_OTHER, (size_t)(e - p));
            if (p > 0) { /* x - r <= p - 1 */
                int to = e - p > r ? p + r : e;
                memset(hw + p, ANY_SIDE | ANY_OTHER, (size_t)(to - p));
            }
            if (e < W) { /* x + r >= e */
                int from = e - p > r ? e - r : p;
                memset(hw + from, ANY_SIDE | ANY_OTHER, (size_t)(e - from));
            }
            p = e;
        }
        for (int b = 0; b < nblocks; b++) {
            int x0 = b * BAND_COL_BLOCK, n = W - x0 < BAND_COL_BLOCK ? W - x0 : BAND_COL_BLOCK;
            unsigned f = 0;
            SD_SIMD_OR(f)
            for (int i = 0; i < n; i++) f |= hw[x0 + i];
            block_flags[(ptrdiff_t)y * nblocks + b] = (uint8_t)f;
        }
    }
    /* columns: the same along the window of rows, then near = a pixel of the other side within
     * the (2r+1)^2 square */
    int bx0 = W, bx1 = -1, by0 = H, by1 = -1;
    int fail = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : bx0, by0) reduction(max : bx1, by1) reduction(| : fail)
#endif
    for (int b = 0; b < nblocks; b++) {
        int x0 = b * BAND_COL_BLOCK, x1 = x0 + BAND_COL_BLOCK < W ? x0 + BAND_COL_BLOCK : W, n = x1 - x0;
        int *cs = calloc((size_t)n * 2, sizeof(int)), *co = cs ? cs + n : NULL;
        uint8_t *col_any = calloc((size_t)n, 1); /* the columns with a near pixel: the box's */
        if (!cs || !col_any) {
            free(cs);
            free(col_any);
            fail = 1;
            continue;
        }
        /* the window's rows holding each side somewhere in the block; the columns' counts only
         * while both are held (kept: the counts are those of the window's rows) */
        int hi = r < H - 1 ? r : H - 1, rows_side = 0, rows_other = 0, kept = 0;
        for (int y = 0; y <= hi; y++) count_block_row(block_flags[(ptrdiff_t)y * nblocks + b], 1, &rows_side, &rows_other);
        for (int y = 0; y < H; y++) {
            uint8_t *o = near + (ptrdiff_t)y * W + x0;
            if (!rows_side || !rows_other) { /* one side only: no pixel has the other in reach */
                memset(o, 0, (size_t)n);
                kept = 0;
            } else {
                if (!kept) { /* the counts over the window's rows afresh */
                    memset(cs, 0, sizeof(int) * 2 * (size_t)n);
                    int lo = y - r > 0 ? y - r : 0, top = y + r < H - 1 ? y + r : H - 1;
                    for (int yy = lo; yy <= top; yy++) count_window_row(n, hwin + (ptrdiff_t)yy * W + x0, 1, cs, co);
                    kept = 1;
                }
                if (near_row(n, side + (ptrdiff_t)y * W + x0, cs, co, o, col_any)) {
                    if (y < by0) by0 = y;
                    if (y > by1) by1 = y;
                }
            }
            if (y + r + 1 < H) {
                count_block_row(block_flags[(ptrdiff_t)(y + r + 1) * nblocks + b], 1, &rows_side, &rows_other);
                if (kept) count_window_row(n, hwin + (ptrdiff_t)(y + r + 1) * W + x0, 1, cs, co);
            }
            if (y - r >= 0) {
                count_block_row(block_flags[(ptrdiff_t)(y - r) * nblocks + b], -1, &rows_side, &rows_other);
                if (kept) count_window_row(n, hwin + (ptrdiff_t)(y - r) * W + x0, -1, cs, co);
            }
        }
        for (int i = 0; i < n; i++)
            if (col_any[i]) {
                if (x0 + i < bx0) bx0 = x0 + i;
                if (x0 + i > bx1) bx1 = x0 + i;
            }
        free(cs);
        free(col_any);
    }
    sd_big_free(hwin);
    free(block_flags);
    if (fail) return SD_ERR_NOMEM;
    /* the bounding box of near as rows [box0, box1] and columns [box2, box3]; empty: box1 < box0 */
    box[0] = by0;
    box[1] = by1;
    box[2] = bx0;
    box[3] = bx1;
    return SD_OK;
}

/* ---- the fills' weighing and normalising ------------------------------------------------ */

/* One row of sd_fill_weigh; inlined with C a constant so that the channel loop unrolls. */
static inline void weigh_row(int W, int C, const float *restrict v, const float *restrict wt, float *restrict o)
{
    for (int x = 0; x < W; x++) {
        for (int k = 0; k < C; k++) o[(ptrdiff_t)x * (C + 1) + k] = v[(ptrdiff_t)x * C + k] * wt[x];
        o[(ptrdiff_t)x * (C + 1) + C] = wt[x];
    }
}

sd_status sd_fill_weigh(int H, int W, int C, const float *values, ptrdiff_t vrow, const float *weight,
                        ptrdiff_t wrow, float *out, int nthreads)
{
    if (H < 1 || W < 1 || C < 1 || !values || !weight || !out || vrow < (ptrdiff_t)W * C || wrow < W)
        return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        const float *v = values + (ptrdiff_t)y * vrow, *wt = weight + (ptrdiff_t)y * wrow;
        float *o = out + (ptrdiff_t)y * W * (C + 1);
        if (C == 1) /* the fills of one channel (disparity), with the channel loop gone */
            weigh_row(W, 1, v, wt, o);
        else
            weigh_row(W, C, v, wt, o);
    }
    return SD_OK;
}

sd_status sd_fill_take(int H, int W, int C, const float *filtered, uint8_t *todo, ptrdiff_t trow, float min_weight,
                       float *out, ptrdiff_t orow, size_t *left, int nthreads)
{
    if (H < 1 || W < 1 || C < 1 || !filtered || !todo || !out || !left || trow < W || orow < (ptrdiff_t)W * C)
        return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    (void)nt; /* unused without OpenMP */
    size_t count = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : count)
#endif
    for (int y = 0; y < H; y++) {
        const float *f = filtered + (ptrdiff_t)y * W * (C + 1);
        uint8_t *t = todo + (ptrdiff_t)y * trow;
        float *o = out + (ptrdiff_t)y * orow;
        for (int x = 0; x < W; x++) {
            if (!t[x]) continue;
            float den = f[(ptrdiff_t)x * (C + 1) + C];
            if (den > min_weight) {
                for (int k = 0; k < C; k++) o[(ptrdiff_t)x * C + k] = f[(ptrdiff_t)x * (C + 1) + k] / den;
                t[x] = 0;
            } else {
                count++;
            }
        }
    }
    *left = count;
    return SD_OK;
}

int sd_fill_margin(double sigma, int H, int W)
{
    double m = ceil(SD_FILL_REACH_SIGMAS * sigma) + 1.0;
    return m < (double)H + (double)W ? (int)m : H + W;
}

static int boxes_overlap(const int *a, const int *b) { return a[0] < b[1] && b[0] < a[1] && a[2] < b[3] && b[2] < a[3]; }

int sd_fill_boxes(int H, int W, const uint8_t *todo, int margin, int boxes[][4])
{
    if (H < 1 || W < 1 || !todo || margin < 0 || !boxes) return 0;
    int nty = (H + SD_FILL_TILE - 1) / SD_FILL_TILE, ntx = (W + SD_FILL_TILE - 1) / SD_FILL_TILE;
    int nb = 0;
    /* one row of tiles at a time: each tile's rows and columns of todo pixels */
    int *tb = malloc(sizeof(int) * 4 * (size_t)ntx);
    if (!tb) return 0;
    for (int ty = 0; ty < nty && nb >= 0; ty++) {
        for (int i = 0; i < ntx; i++) tb[4 * i] = H, tb[4 * i + 1] = -1, tb[4 * i + 2] = W, tb[4 * i + 3] = -1;
        int y1 = (ty + 1) * SD_FILL_TILE < H ? (ty + 1) * SD_FILL_TILE : H;
        for (int y = ty * SD_FILL_TILE; y < y1; y++) {
            const uint8_t *t = todo + (ptrdiff_t)y * W;
            int x = 0;
            while (x < W) {
                /* 8 pixels at a time where none is in todo (most of a sparse todo) */
                if (x + 8 <= W) {
                    uint64_t eight;
                    memcpy(&eight, t + x, sizeof eight);
                    if (!eight) {
                        x += 8;
                        continue;
                    }
                }
                if (t[x]) {
                    int *b = tb + 4 * (x / SD_FILL_TILE);
                    if (y < b[0]) b[0] = y;
                    b[1] = y;
                    if (x < b[2]) b[2] = x;
                    if (x > b[3]) b[3] = x;
                }
                x++;
            }
        }
        for (int i = 0; i < ntx; i++) {
            int *b = tb + 4 * i;
            if (b[1] < 0) continue;
            if (nb == SD_FILL_MAX_BOXES) { /* todo is not sparse: the whole frame */
                nb = -1;
                break;
            }
            boxes[nb][0] = b[0] - margin > 0 ? b[0] - margin : 0;
            boxes[nb][1] = b[1] + margin + 1 < H ? b[1] + margin + 1 : H;
            boxes[nb][2] = b[2] - margin > 0 ? b[2] - margin : 0;
            boxes[nb][3] = b[3] + margin + 1 < W ? b[3] + margin + 1 : W;
            nb++;
        }
    }
    free(tb);
    if (nb <= 0) return 0;
    /* overlapping boxes merged into their bounding box until none overlap */
    for (int merged = 1; merged;) {
        merged = 0;
        for (int i = 0; i < nb; i++)
            for (int j = i + 1; j < nb; j++) {
                if (!boxes_overlap(boxes[i], boxes[j])) continue;
                if (boxes[j][0] < boxes[i][0]) boxes[i][0] = boxes[j][0];
                if (boxes[j][1] > boxes[i][1]) boxes[i][1] = boxes[j][1];
                if (boxes[j][2] < boxes[i][2]) boxes[i][2] = boxes[j][2];
                if (boxes[j][3] > boxes[i][3]) boxes[i][3] = boxes[j][3];
                memcpy(boxes[j], boxes[nb - 1], sizeof boxes[j]);
                nb--;
                j = i; /* box i grew: test it against all again */
                merged = 1;
            }
    }
    double area = 0.0;
    for (int i = 0; i < nb; i++) area += (double)(boxes[i][1] - boxes[i][0]) * (double)(boxes[i][3] - boxes[i][2]);
    return area * 2.0 < (double)H * (double)W ? nb : 0;
}

sd_status sd_edge_fill(int H, int W, int C, const float *values, ptrdiff_t vrow, const float *weight, ptrdiff_t wrow,
                       const float *guide, int K, double sigma_s, double sigma_r, int iterations, int widenings,
                       float min_weight, uint8_t *todo, float *out, size_t *left, int nthreads)
{
    if (H < 1 || W < 1 || C < 1 || C + 1 > SD_EDGE_MAX_CH || !values || !weight || !todo || !out || !left ||
        vrow < (ptrdiff_t)W * C || wrow < W || widenings < 1 || widenings > 16)
        return SD_ERR_ARG;
    size_t n = (size_t)H * (size_t)W, remaining = 0;
    for (size_t i = 0; i < n; i++) remaining += todo[i] != 0;
    *left = remaining;
    if (!remaining) return SD_OK;
    int nt = sd_threads(nthreads);
    if (!guide) K = 0; /* as sd_edge_filter takes it */
    /* scratch from the pool: a fill's 12 MP planes are not faulted in afresh on every call */
    float *buf = sd_big_alloc(n * (size_t)(C + 1), sizeof(float), nt);
    int(*boxes)[4] = malloc(sizeof(int[4]) * SD_FILL_MAX_BOXES);
    float *gbuf = NULL; /* a box's guide, packed */
    sd_status st = SD_ERR_NOMEM;
    if (!buf || !boxes) goto done;
    st = SD_OK;
    double reach = 1.0; /* 4^k: exact, so sigma_s * reach is the product Python formed */
    for (int k = 0; k < widenings && remaining; k++, reach *= 4.0) {
        size_t before = remaining;
        const double sigma = sigma_s * reach;
        int nb = sd_fill_boxes(H, W, todo, sd_fill_margin(sigma, H, W), boxes);
        if (!nb) { /* the whole frame */
            if ((st = sd_fill_weigh(H, W, C, values, vrow, weight, wrow, buf, nt)) != SD_OK) break;
            if ((st = sd_edge_filter(H, W, C + 1, buf, guide, K, sigma, sigma_r, iterations, nt)) != SD_OK) break;
            if ((st = sd_fill_take(H, W, C, buf, todo, W, min_weight, out, (ptrdiff_t)W * C, &remaining, nt)) != SD_OK)
                break;
        } else { /* each box in turn: every pixel left lies in one */
            if (K && !gbuf && !(gbuf = sd_big_alloc(n / 2 * (size_t)K, sizeof(float), nt))) {
                st = SD_ERR_NOMEM;
                break;
            }
            remaining = 0;
            for (int b = 0; b < nb && st == SD_OK; b++) {
                int y0 = boxes[b][0], x0 = boxes[b][2], h = boxes[b][1] - y0, w = boxes[b][3] - x0;
                size_t l = 0;
                if (K)
                    for (int y = 0; y < h; y++)
                        memcpy(gbuf + (ptrdiff_t)y * w * K, guide + ((ptrdiff_t)(y0 + y) * W + x0) * K,
                               sizeof(float) * (size_t)w * (size_t)K);
                if ((st = sd_fill_weigh(h, w, C, values + (ptrdiff_t)y0 * vrow + (ptrdiff_t)x0 * C, vrow,
                                        weight + (ptrdiff_t)y0 * wrow + x0, wrow, buf, nt)) != SD_OK ||
                    (st = sd_edge_filter(h, w, C + 1, buf, K ? gbuf : NULL, K, sigma, sigma_r, iterations, nt)) !=
                        SD_OK ||
                    (st = sd_fill_take(h, w, C, buf, todo + (ptrdiff_t)y0 * W + x0, W, min_weight,
                                       out + ((ptrdiff_t)y0 * W + x0) * C, (ptrdiff_t)W * C, &l, nt)) != SD_OK)
                    break;
                remaining += l;
            }
            if (st != SD_OK) break;
        }
        /* A guided widening that reached none of the pixels left will not reach them wider either:
         * edges wall them in, and the domain step across an edge does not shrink with the reach
         * (sd_edge_filter: 1 + sigma_s / sigma_r |difference|, in units of sigma_s). Each further
         * widening would filter the whole frame again for nothing (a sensor's 12 MP: three times). */
        if (guide && k > 0 && remaining == before) break;
    }
done:
    sd_big_free(buf);
    sd_big_free(gbuf);
    free(boxes);
    *left = remaining;
    return st;
}
