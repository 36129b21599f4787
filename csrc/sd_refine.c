/* Refine stage: the domain-transform recursive filter (Gastal & Oliveira, "Domain Transform for
 * Edge-Aware Image and Video Processing", SIGGRAPH 2011), used by synthdof.refine to continue
 * depth and colours along surfaces without crossing image and matte edges.
 *
 * Why this filter: its cost is a fixed number of multiply-adds per pixel and channel whatever the
 * spatial sigma (a first-order recursion per row and per column), it has no halo at edges the
 * guide shows, and every row (horizontal pass) and column (vertical pass) is independent, so rows
 * and column blocks split between threads give the same bits for any thread count. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sd_alloc.h"
#include "sd_parallel.h"
#include "sd_refine.h"
#include "sd_refine_maps.h"
#include "sd_util.h"

/* Columns per block of the vertical pass: a block's rows are read and written in order, so the
 * recursion runs down the image with unit-stride inner loops. */
#define COL_BLOCK 64
/* Neighbour pairs per chunk of the guide's differences (pair_coefficients). */
#define PAIR_CHUNK 256
/* Rows per group of the horizontal pass (see pass_rows). */
#define ROW_GROUP 8

/* Feedback coefficient a^(domain step) of the first pass for every neighbour pair: pairs along
 * rows (H x (W-1), horizontal) or along columns ((H-1) x W, vertical). The domain step between
 * two neighbours is 1 + (sigma_s / sigma_r) * sum of |guide difference| over the guide's
 * channels. Each later pass halves the sigma, which squares the coefficient (square_all). */
/* e^x in float arithmetic alone, for the coefficients' exponents (x <= 0): the same bits on
 * every machine (no library call, whose vector and FMA variants may differ in the last bit), and
 * it vectorises (selections by integer masks: a float comparison would keep the loop scalar).
 * x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, Cody & Waite), e^r by the polynomial of
 * Cephes' expf (at most 1.4 ulp from e^x here), times 2^k built in the exponent bits. Beyond
 * [-87, 0] (e^x under float's smallest normal), -inf and NaN give 0: a coefficient that stops
 * the recursion. */
static inline float exp_nonpositive(float x)
{
    uint32_t ux;
    memcpy(&ux, &x, sizeof ux);
    /* -0 to -87 have the sign bit and bits up to -87's; +0 counts too */
    uint32_t mask = 0u - (uint32_t)(((ux >= 0x80000000u) & (ux <= 0xC2AE0000u)) | (ux == 0u));
    ux = (ux & mask) | (0x80000000u & ~mask); /* -0 outside the range, so k stays in range */
    memcpy(&x, &ux, sizeof x);
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float k = (x * 1.44269504088896341f + magic) - magic;
    float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = (p * r) * r + r + 1.0f;
    uint32_t scale_bits = ((uint32_t)((int32_t)k + 127) << 23) & mask;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return e * scale;
}

/* The guide's differences summed over its K channels for one row of neighbour pairs. */
static void guide_steps(int cols, int K, const float *restrict g, ptrdiff_t step, float *restrict c)
{
    for (int x = 0; x < cols; x++) {
        float d = 0.0f;
        for (int k = 0; k < K; k++) d += fabsf(g[(ptrdiff_t)x * K + step + k] - g[(ptrdiff_t)x * K + k]);
        c[x] = d;
    }
}

static void pair_coefficients(int H, int W, const float *guide, int K, double ratio, double log_a,
                              int vertical, float *coef, int nt)
{
    int rows = vertical ? H - 1 : H, cols = vertical ? W : W - 1;
    ptrdiff_t step = vertical ? (ptrdiff_t)W * K : K;
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < rows; y++) {
        float *c = coef + (ptrdiff_t)y * cols;
        const float *g = guide + (ptrdiff_t)y * W * K;
        /* the guide's differences first: the exponentials vectorise */
        if (K == 3) { /* an RGB guide, refine's: each channel's difference as one vector of the
                       * row's floats, then the pixels' sums in the same order */
            for (int x0 = 0; x0 < cols; x0 += PAIR_CHUNK) {
                int m = cols - x0 < PAIR_CHUNK ? cols - x0 : PAIR_CHUNK;
                float diff[3 * PAIR_CHUNK];
                const float *a = g + (ptrdiff_t)x0 * 3, *b = a + step;
                SD_SIMD
                for (int i = 0; i < 3 * m; i++) diff[i] = fabsf(b[i] - a[i]);
                for (int x = 0; x < m; x++) c[x0 + x] = (diff[3 * x] + diff[3 * x + 1]) + diff[3 * x + 2];
            }
        } else {
            guide_steps(cols, K, g, step, c);
        }
        SD_SIMD
        for (int x = 0; x < cols; x++) c[x] = exp_nonpositive((float)(log_a * (1.0 + ratio * (double)c[x])));
    }
}

static void square_all(float *coef, size_t n, int nt)
{
    ptrdiff_t nchunks = (ptrdiff_t)((n + SD_FLAT_CHUNK - 1) / SD_FLAT_CHUNK);
    SD_PARALLEL_FOR(sd_threads_for(nt, (ptrdiff_t)n))
    for (ptrdiff_t c = 0; c < nchunks; c++) {
        float *restrict v = coef + c * SD_FLAT_CHUNK;
        ptrdiff_t left = (ptrdiff_t)n - c * SD_FLAT_CHUNK, m = left < SD_FLAT_CHUNK ? left : SD_FLAT_CHUNK;
        SD_SIMD
        for (ptrdiff_t i = 0; i < m; i++) v[i] *= v[i];
    }
}

/* The left-to-right and right-to-left recursions of n <= ROW_GROUP rows stepped side by side:
 * each row's recursion is a chain of dependent steps, and interleaving the rows of a group lets
 * the processor overlap their chains (each row's arithmetic is unchanged). */
static inline void hgroup(int W, int C, int n, float *rows, const float *c0, float a_const)
{
    ptrdiff_t rowlen = (ptrdiff_t)W * C;
    for (int x = 1; x < W; x++)
        for (int r = 0; r < n; r++) {
            float a = c0 ? c0[(ptrdiff_t)r * (W - 1) + x - 1] : a_const;
            float *cur = rows + (ptrdiff_t)r * rowlen + (ptrdiff_t)x * C, *prev = cur - C;
            for (int k = 0; k < C; k++) cur[k] += a * (prev[k] - cur[k]);
        }
    for (int x = W - 2; x >= 0; x--)
        for (int r = 0; r < n; r++) {
            float a = c0 ? c0[(ptrdiff_t)r * (W - 1) + x] : a_const;
            float *cur = rows + (ptrdiff_t)r * rowlen + (ptrdiff_t)x * C, *next = cur + C;
            for (int k = 0; k < C; k++) cur[k] += a * (next[k] - cur[k]);
        }
}

/* One horizontal pass (left to right, then right to left) over every row, in groups of
 * ROW_GROUP rows. */
static void pass_rows(int H, int W, int C, float *data, const float *coef, float a_const, int nt)
{
    int ngroups = (H + ROW_GROUP - 1) / ROW_GROUP;
    SD_PARALLEL_FOR(nt)
    for (int b = 0; b < ngroups; b++) {
        int y0 = b * ROW_GROUP, n = H - y0 < ROW_GROUP ? H - y0 : ROW_GROUP;
        float *rows = data + (ptrdiff_t)y0 * W * C;
        const float *c0 = coef ? coef + (ptrdiff_t)y0 * (W - 1) : NULL;
        switch (C) { /* the channel counts refine uses, with the channel loop unrolled */
        case 1: hgroup(W, 1, n, rows, c0, a_const); break;
        case 2: hgroup(W, 2, n, rows, c0, a_const); break;
        case 3: hgroup(W, 3, n, rows, c0, a_const); break;
        case 4: hgroup(W, 4, n, rows, c0, a_const); break;
        default: hgroup(W, C, n, rows, c0, a_const); break;
        }
    }
}

/* One step of the vertical recursion along a row segment of n pixels: cur += a * (prev - cur),
 * a per pixel (coef) or constant. Inlined with C a constant (vstep_rows) so that the channel
 * loop unrolls and the pixel loop vectorises. */
static inline void vstep(float *restrict cur, const float *restrict prev, const float *restrict coef,
                         float a_const, int n, int C)
{
    if (coef) {
        SD_SIMD
        for (int x = 0; x < n; x++)
            for (int k = 0; k < C; k++) cur[x * C + k] += coef[x] * (prev[x * C + k] - cur[x * C + k]);
    } else {
        SD_SIMD
        for (int i = 0; i < n * C; i++) cur[i] += a_const * (prev[i] - cur[i]);
    }
}

/* The down and up recursions of one block of columns [x0, x1). */
static inline void vblock(int H, int W, int C, float *data, const float *coef, float a_const, int x0, int x1)
{
    ptrdiff_t rowlen = (ptrdiff_t)W * C;
    for (int y = 1; y < H; y++) {
        float *cur = data + (ptrdiff_t)y * rowlen + (ptrdiff_t)x0 * C;
        vstep(cur, cur - rowlen, coef ? coef + (ptrdiff_t)(y - 1) * W + x0 : NULL, a_const, x1 - x0, C);
    }
    for (int y = H - 2; y >= 0; y--) {
        float *cur = data + (ptrdiff_t)y * rowlen + (ptrdiff_t)x0 * C;
        vstep(cur, cur + rowlen, coef ? coef + (ptrdiff_t)y * W + x0 : NULL, a_const, x1 - x0, C);
    }
}

/* One vertical pass (top to bottom, then bottom to top) in blocks of columns. */
static void pass_cols(int H, int W, int C, float *data, const float *coef, float a_const, int nt)
{
    int nblocks = (W + COL_BLOCK - 1) / COL_BLOCK;
    SD_PARALLEL_FOR(nt)
    for (int b = 0; b < nblocks; b++) {
        int x0 = b * COL_BLOCK, x1 = x0 + COL_BLOCK < W ? x0 + COL_BLOCK : W;
        switch (C) { /* the channel counts refine uses, with the channel loop unrolled */
        case 1: vblock(H, W, 1, data, coef, a_const, x0, x1); break;
        case 2: vblock(H, W, 2, data, coef, a_const, x0, x1); break;
        case 3: vblock(H, W, 3, data, coef, a_const, x0, x1); break;
        case 4: vblock(H, W, 4, data, coef, a_const, x0, x1); break;
        default: vblock(H, W, C, data, coef, a_const, x0, x1); break;
        }
    }
}

sd_status sd_edge_filter(int H, int W, int C, float *data, const float *guide, int K, double sigma_s,
                         double sigma_r, int iterations, int nthreads)
{
    if (H < 1 || W < 1 || C < 1 || C > SD_EDGE_MAX_CH || K < 0 || K > SD_EDGE_MAX_GUIDE || !data ||
        (K > 0 && !guide) || iterations < 1 || iterations > 16)
        return SD_ERR_ARG;
    if (!(sigma_s > 0.0) || !(sigma_r > 0.0) || !isfinite(sigma_s) || !isfinite(sigma_r)) return SD_ERR_VALUE;
    if (K == 0) guide = NULL;
    int nt = sd_threads(nthreads);
    /* The n passes' sigmas halve from one to the next and add up (in variance) to sigma_s. */
    double s0 = sigma_s * sqrt(3.0) * pow(2.0, iterations - 1) / sqrt(pow(4.0, iterations) - 1.0);
    double log_a = -sqrt(2.0) / s0;
    if (!guide) { /* every domain step is 1: one coefficient per pass */
        for (int i = 0; i < iterations; i++) {
            float a = (float)exp(log_a * pow(2.0, i));
            if (W > 1) pass_rows(H, W, C, data, NULL, a, nt);
            if (H > 1) pass_cols(H, W, C, data, NULL, a, nt);
        }
        return SD_OK;
    }
    size_t nh = (size_t)H * (size_t)(W > 1 ? W - 1 : 0), nv = (size_t)(H > 1 ? H - 1 : 0) * (size_t)W;
    float *ch = nh ? sd_big_alloc(nh, sizeof(float), nt) : NULL;
    float *cv = nv ? sd_big_alloc(nv, sizeof(float), nt) : NULL;
    if ((nh && !ch) || (nv && !cv)) {
        sd_big_free(ch);
        sd_big_free(cv);
        return SD_ERR_NOMEM;
    }
    double ratio = sigma_s / sigma_r;
    if (nh) pair_coefficients(H, W, guide, K, ratio, log_a, 0, ch, nt);
    if (nv) pair_coefficients(H, W, guide, K, ratio, log_a, 1, cv, nt);
    for (int i = 0; i < iterations; i++) {
        if (i > 0) {
            square_all(ch, nh, nt);
            square_all(cv, nv, nt);
        }
        if (nh) pass_rows(H, W, C, data, ch, 0.0f, nt);
        if (nv) pass_cols(H, W, C, data, cv, 0.0f, nt);
    }
    sd_big_free(ch);
    sd_big_free(cv);
    return SD_OK;
}

/* Spatial reach of the joint upsampling, in low-resolution samples: a tent of this radius, so
 * each output pixel weighs the 4 x 4 samples around it. */
#define UPSAMPLE_RADIUS 2.0f
/* Samples in reach that agree to the fraction `agree` need no colour weights: inside a surface,
 * even a slanted one, the weights could move the result by less than that (SD_UPSAMPLE_AGREE,
 * 0.5 % of disparity, is about half a pixel of CoC on a subject in focus at 2 m, 85 mm f/1.4).
 * Nor do 16 samples that lie on a plane to that fraction (a slanted surface, whose range is
 * wider): there the colour weights could only move the result off the plane, to the disparity of
 * a neighbouring sample, while the tents alone give the plane's value at the pixel. */
/* Most output pixels summed side by side (see sd_guided_upsample). */
#define UPSAMPLE_RUN 16
/* Runs of up to half this many pixels are summed in half this many lanes, runs of up to this many
 * in this many, longer ones in UPSAMPLE_RUN (the lanes past a run's end are computed and never
 * stored): loops of a constant count fill the vectors without a remainder. */
#define UPSAMPLE_LANES 8

/* Where each output row (or column) reads the samples: the first of its 4 samples (j0, may lie
 * outside the map) and the tent weights of the 4, computed once per row and per column (the
 * same float expressions the per-pixel loop used). */
typedef struct {
    int first;
    float wt[4];
} tent_taps;

static void tent_axis(int n_out, int n_lo, tent_taps *taps)
{
    const float scale = (float)n_lo / (float)n_out;
    for (int o = 0; o < n_out; o++) {
        float v = ((float)o + 0.5f) * scale - 0.5f; /* the pixel centre in sample coordinates */
        taps[o].first = (int)floorf(v) - 1;
        for (int t = 0; t < 4; t++) taps[o].wt[t] = 1.0f - fabsf(v - (float)(taps[o].first + t)) / UPSAMPLE_RADIUS;
    }
}

/* Inlined into each of its callers' compilations (upsample_row's AVX2 one too), even where the
 * compiler finds it too long. */
#if defined(__GNUC__)
#define SD_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define SD_ALWAYS_INLINE static inline
#endif

/* fminf and fmaxf as the C library computes them on x86-64 (the other argument where one is NaN,
 * the first where the two compare equal, as -0 and +0 do), as selections the loops can
 * vectorise: the library's calls kept them scalar. Never both NaN here. */
static inline float fmin_sel(float x, float y) { return ((x <= y) | (y != y)) ? x : y; }
static inline float fmax_sel(float x, float y) { return ((x >= y) | (y != y)) ? x : y; }

/* All bits set where x > 0 (+inf too), none where not (NaN too), and x kept or made +0 by such a
 * mask: integer selections, which vectorise where a float comparison keeps a loop scalar. */
static inline uint32_t positive_mask(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return 0u - (uint32_t)(u - 1u < 0x7F800000u);
}

static inline float keep_if(float x, uint32_t mask)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u &= mask;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* x where mask has all bits set, y where it has none. */
static inline float pick_bits(uint32_t mask, float x, float y)
{
    uint32_t a, b;
    memcpy(&a, &x, sizeof a);
    memcpy(&b, &y, sizeof b);
    a = (a & mask) | (b & ~mask);
    memcpy(&x, &a, sizeof x);
    return x;
}

/* Output columns [x, x + n) whose windows start at the same sample column `first`: every row
 * splits into the same runs. */
typedef struct {
    int x, n, first;
} column_run;

/* What every output row of sd_guided_upsample reads and writes (see there). */
typedef struct {
    int h, w, W, K, ww, nruns, wx_stride;
    const float *lo, *lo_weight, *guide_lo, *guide, *wx, *range;
    const uint8_t *fast; /* per window: its samples need no colour weights */
    const uint8_t *need; /* the pixels to compute (NULL: all) */
    const sd_linear_guide *linear;
    const tent_taps *ty;
    const column_run *runs;
    const int *run_at; /* the run of each output column */
    float inv_r;
    float *out, *out_found;
} upsample_rows;

/* One output row's: its number, row tents, column sums and weights, its windows' ranges and
 * whether they need the colours, its outputs, and the next highlight term its runs may need
 * (linear guide). */
typedef struct {
    int y;
    const tent_taps *cy;
    const float *colsum, *colwt, *range;
    const uint8_t *fast;
    float *out, *found;
    size_t next_highlight;
} upsample_row_at;

/* The L1 distances over K guide channels between the lanes [0, lanes) of a run (gc: channel by
 * channel, the pixels side by side) and one sample's guide colour gl, and each lane's nearest so
 * far; inlined with K and lanes constants. */
SD_ALWAYS_INLINE void guide_distances(int lanes, int K, const float (*restrict gc)[UPSAMPLE_RUN],
                                   const float *restrict gl, float *restrict dist, float *restrict nearest)
{
    SD_SIMD
    for (int r = 0; r < lanes; r++) {
        float d = 0.0f;
        for (int c = 0; c < K; c++) d += fabsf(gc[c][r] - gl[c]);
        dist[r] = d;
        nearest[r] = d < nearest[r] ? d : nearest[r];
    }
}

/* The first of the highlight terms (linear->over, ascending) at flat index i or after. */
static size_t first_highlight(const sd_linear_guide *linear, int64_t i)
{
    size_t a = 0, b = linear->n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (linear->over[m] < i)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* n values of a linear-light guide from flat index i on, as the whole frame's encoded guide would
 * hold them (see sd_guided_upsample): sRGB, plus the caller's highlight term where a value is over
 * 1 and listed. *next: on entry a term at or before the first one at index i or after (a row's
 * runs come in order, so a row looks up its first term once), on return the first one past these
 * values. */
static void encode_guide(const float *lin, ptrdiff_t i, int n, const sd_linear_guide *linear, size_t *next,
                         float *out)
{
    sd_srgb_encode_run((size_t)n, lin + i, out);
    size_t k = *next;
    while (k < linear->n && linear->over[k] < (int64_t)i) k++;
    for (; k < linear->n && linear->over[k] < (int64_t)i + n; k++) {
        const int64_t at = linear->over[k];
        /* a repeated index gains its first term only */
        if (lin[at] > 1.0f && !(k > 0 && linear->over[k - 1] == at)) out[at - i] += linear->add[k];
    }
    *next = k;
}

/* The taps of colour_weighted_run: nj x ni samples from (jlo, ilo) (wy: their rows' tents), in
 * the order of their rows, then columns; inlined with nj and ni 4 for the windows inside the map. */
SD_ALWAYS_INLINE void weigh_taps(const upsample_rows *u, int K, int lanes, int nj, int ni, int jlo, int ilo, int i0,
                                 const float *wy, int xa, const float (*restrict gc)[UPSAMPLE_RUN],
                                 float *restrict num, float *restrict den)
{
    const int w = u->w;
    const float inv_r = u->inv_r;
    float dist[16][UPSAMPLE_RUN], nearest[UPSAMPLE_RUN];
    for (int r = 0; r < lanes; r++) nearest[r] = INFINITY;
    for (int jj = 0; jj < nj; jj++)
        for (int ii = 0; ii < ni; ii++) {
            const float *gl = u->guide_lo + ((ptrdiff_t)(jlo + jj) * w + ilo + ii) * K;
            guide_distances(lanes, K, gc, gl, dist[jj * ni + ii], nearest);
        }
    for (int jj = 0; jj < nj; jj++) {
        if (!(wy[jj] > 0.0f)) continue;
        for (int ii = 0; ii < ni; ii++) {
            const ptrdiff_t k = (ptrdiff_t)(jlo + jj) * w + ilo + ii;
            const float lw = u->lo_weight[k];
            if (!(lw > 0.0f)) continue;
            const float v = u->lo[k], base = wy[jj] * lw;
            const float *wxi = u->wx + (ptrdiff_t)(ilo + ii - i0) * u->wx_stride + xa, *dt = dist[jj * ni + ii];
            SD_SIMD
            for (int r = 0; r < lanes; r++) {
                /* (d - nearest) * inv_r <= 0; a distance of inf or NaN weighs 0 */
                float wt = wxi[r] * base * exp_nonpositive(-((dt[r] - nearest[r]) * inv_r));
                num[r] += wt * v;
                den[r] += wt;
            }
        }
    }
}

/* The sums of a run of n pixels (from column xa; K guide channels) whose window (first sample
 * row row->cy->first, column i0) holds samples that disagree: a sample whose colour differs
 * from the pixel's lies on another surface, and its weight falls by exp(-difference / sigma_r),
 * taken relative to the most alike sample's (the ratio is the same, and no weight underflows
 * where all differ). */
SD_ALWAYS_INLINE void colour_weighted_run(const upsample_rows *u, int K, int lanes, upsample_row_at *row, int xa,
                                          int n, int i0, float *restrict num, float *restrict den)
{
    const tent_taps *cy = row->cy;
    const int w = u->w, W = u->W, j0 = cy->first, y = row->y;
    const int jlo = j0 < 0 ? 0 : j0, jhi = j0 + 4 > u->h ? u->h : j0 + 4;
    const int ilo = i0 < 0 ? 0 : i0, ihi = i0 + 4 > w ? w : i0 + 4;
    float gc[SD_EDGE_MAX_GUIDE][UPSAMPLE_RUN];
    const float *g = u->guide + ((ptrdiff_t)y * W + xa) * K;
    float encoded[UPSAMPLE_RUN * SD_EDGE_MAX_GUIDE];
    if (u->linear) { /* only these pixels of the frame are encoded */
        encode_guide(u->guide, ((ptrdiff_t)y * W + xa) * K, n * K, u->linear, &row->next_highlight, encoded);
        g = encoded;
    }
    for (int r = 0; r < lanes; r++) /* the lanes past the run's end: any finite colour */
        for (int c = 0; c < K; c++) gc[c][r] = r < n ? g[r * K + c] : 0.0f;
    if (jhi - jlo == 4 && ihi - ilo == 4)
        weigh_taps(u, K, lanes, 4, 4, jlo, ilo, i0, cy->wt + (jlo - j0), xa, gc, num, den);
    else
        weigh_taps(u, K, lanes, jhi - jlo, ihi - ilo, jlo, ilo, i0, cy->wt + (jlo - j0), xa, gc, num, den);
}

/* The sums of a run of pixels from column xa whose window's samples agree: the ni column sums
 * from sample column ilo (window column i0) times the column tents; inlined with ni 4 for the
 * windows inside the map. */
SD_ALWAYS_INLINE void tent_sums(const upsample_rows *u, int lanes, int ni, int ilo, int i0, int xa,
                                const float *restrict colsum, const float *restrict colwt, float *restrict num,
                                float *restrict den)
{
    for (int ii = 0; ii < ni; ii++) {
        const float a = colsum[ilo + ii], b = colwt[ilo + ii];
        const float *wxi = u->wx + (ptrdiff_t)(ilo + ii - i0) * u->wx_stride + xa;
        SD_SIMD
        for (int r = 0; r < lanes; r++) {
            num[r] += wxi[r] * a;
            den[r] += wxi[r] * b;
        }
    }
}

/* The output pixels of one run of a row (lanes: its pixels rounded up to a block of lanes) from the
 * row's column sums and the window's range of valid samples. */
SD_ALWAYS_INLINE int sum_run(const upsample_rows *u, int K, int lanes, upsample_row_at *row, const column_run *run)
{
    const int w = u->w, xa = run->x, n = run->n, i0 = run->first;
    const float *restrict colsum = row->colsum, *restrict colwt = row->colwt;
    float num[UPSAMPLE_RUN], den[UPSAMPLE_RUN];
    for (int r = 0; r < lanes; r++) num[r] = den[r] = 0.0f;
    const float lo_v = row->range[2 * (i0 + 2)], hi_v = row->range[2 * (i0 + 2) + 1];
    if (row->fast[i0 + 2]) {
        const int ilo = i0 < 0 ? 0 : i0, ihi = i0 + 4 > w ? w : i0 + 4;
        if (ihi - ilo == 4)
            tent_sums(u, lanes, 4, ilo, i0, xa, colsum, colwt, num, den);
        else
            tent_sums(u, lanes, ihi - ilo, ilo, i0, xa, colsum, colwt, num, den);
    } else {
        colour_weighted_run(u, K, lanes, row, xa, n, i0, num, den);
    }
    /* A weighted mean lies within its samples' range, but float sums of weights near the
     * smallest floats can round past it: clamp to the window's valid samples. Where no weight
     * came (den 0) the quotient is not kept. */
    float mean[UPSAMPLE_RUN], reached[UPSAMPLE_RUN];
    const int whole = n == lanes; /* no lane past the run's end: stored in place */
    float *restrict out = whole ? row->out + xa : mean;
    SD_SIMD
    for (int r = 0; r < lanes; r++) {
        const uint32_t some = positive_mask(den[r]);
        out[r] = keep_if(fmin_sel(fmax_sel(num[r] / den[r], lo_v), hi_v), some);
        reached[r] = keep_if(1.0f, some);
    }
    if (!whole) memcpy(row->out + xa, mean, sizeof(float) * (size_t)n);
    if (row->found) memcpy(row->found + xa, reached, sizeof(float) * (size_t)n);
    int missed = 0;
    for (int r = 0; r < n; r++) missed += reached[r] == 0.0f;
    return missed;
}

/* sum_run inlined with the guide's channels and the run's lanes constants. */
SD_ALWAYS_INLINE int sum_any_run(const upsample_rows *u, upsample_row_at *row, const column_run *run)
{
    if (run->n <= UPSAMPLE_LANES / 2)
        return u->K == 3 ? sum_run(u, 3, UPSAMPLE_LANES / 2, row, run) : sum_run(u, u->K, UPSAMPLE_LANES / 2, row, run);
    if (run->n <= UPSAMPLE_LANES)
        return u->K == 3 ? sum_run(u, 3, UPSAMPLE_LANES, row, run) : sum_run(u, u->K, UPSAMPLE_LANES, row, run);
    return u->K == 3 ? sum_run(u, 3, UPSAMPLE_RUN, row, run) : sum_run(u, u->K, UPSAMPLE_RUN, row, run);
}

/* Output row y (see sd_guided_upsample), with a row of w column sums and weights as scratch,
 * and with need two rows of W (the runs' outputs, of which the pixels needed are copied);
 * returns the pixels no valid sample reached. Compiled a second time for AVX2 (SD_CLONES): the
 * same operations in the same order on wider vectors (ISO C mode contracts no multiply-add). */
SD_CLONES static int upsample_row(const upsample_rows *u, int y, float *restrict colsum, float *restrict colwt,
                                  float *need_out, float *need_found)
{
    const int w = u->w, W = u->W;
    const tent_taps *cy = &u->ty[y];
    const int j0 = cy->first, jlo = j0 < 0 ? 0 : j0, jhi = j0 + 4 > u->h ? u->h : j0 + 4;
    const uint8_t *need = u->need ? u->need + (ptrdiff_t)y * W : NULL;
    if (need && sd_next_set(need, 0, W) == W) return 0; /* nothing to compute in this row */
    /* Each sample column's tent-weighted sums down the row's 4 samples (value times weight, and
     * weight): inside a window whose samples agree the weights are the tents alone, which factor
     * into a row's and a column's, so such a pixel sums 4 columns instead of 16 samples. An
     * invalid sample adds +0 to sums that start at +0 and so are never -0: the bits of leaving it
     * out. */
    for (int i = 0; i < w; i++) colsum[i] = colwt[i] = 0.0f;
    for (int j = jlo; j < jhi; j++) {
        const float wy = cy->wt[j - j0];
        if (!(wy > 0.0f)) continue;
        const float *lwj = u->lo_weight + (ptrdiff_t)j * w, *vj = u->lo + (ptrdiff_t)j * w;
        SD_SIMD
        for (int i = 0; i < w; i++) {
            const float b = wy * lwj[i], a = b * vj[i];
            const uint32_t valid = positive_mask(lwj[i]);
            colsum[i] += keep_if(a, valid);
            colwt[i] += keep_if(b, valid);
        }
    }
    upsample_row_at row = {
        .y = y,
        .cy = cy,
        .colsum = colsum,
        .colwt = colwt,
        .range = u->range + 2 * (ptrdiff_t)(j0 + 2) * u->ww,
        .fast = u->fast + (ptrdiff_t)(j0 + 2) * u->ww,
        .out = u->out + (ptrdiff_t)y * W,
        .found = u->out_found ? u->out_found + (ptrdiff_t)y * W : NULL,
        .next_highlight = u->linear ? first_highlight(u->linear, (int64_t)y * W * u->K) : 0,
    };
    int missed = 0;
    if (!need) {
        for (int k = 0; k < u->nruns; k++) missed += sum_any_run(u, &row, &u->runs[k]);
        return missed;
    }
    float *out = row.out, *found = row.found;
    row.out = need_out;
    row.found = need_found;
    for (int x = sd_next_set(need, 0, W); x < W; x = sd_next_set(need, x, W)) {
        /* the run of the next pixel to compute (past the runs with none), then its pixels needed */
        const column_run *run = &u->runs[u->run_at[x]];
        sum_any_run(u, &row, run);
        for (x = run->x; x < run->x + run->n; x++) {
            if (!need[x]) continue;
            out[x] = need_out[x];
            if (found) found[x] = need_found[x];
            missed += need_found[x] == 0.0f;
        }
    }
    return missed;
}

/* Whether the 4 points of row r (its values v, centred position yr) lie within t of the plane
 * (mean, gx, gy) at the centred columns -1.5 .. 1.5. */
static inline int row_on_plane(const float *v, float yr, float mean, float gx, float gy, float t)
{
    const float cy = gy * yr; /* written out: a loop here keeps the caller's loop scalar */
    return (fabsf(v[0] - ((mean + gx * -1.5f) + cy)) <= t) & (fabsf(v[1] - ((mean + gx * -0.5f) + cy)) <= t) &
           (fabsf(v[2] - ((mean + gx * 0.5f) + cy)) <= t) & (fabsf(v[3] - ((mean + gx * 1.5f) + cy)) <= t);
}

/* For each window of a row whose rows all lie inside the map and whose columns i0 .. i0 + 3 do
 * too (i0 = 0 .. w - 4): whether its 4 x 4 samples lie within tol[i0] of their least-squares
 * plane. v holds the 4 rows (w floats apart), s0 and sy each column's sum down them and that sum
 * weighted by the rows' centred positions (-1.5 .. 1.5). The windows side by side, every point
 * tested (the same result as stopping at the first off the plane). */
static void on_plane(const float *restrict v, int w, const float *restrict s0, const float *restrict sy,
                     const float *restrict tol, uint8_t *restrict plane)
{
    SD_SIMD
    for (int i0 = 0; i0 <= w - 4; i0++) {
        const float *a = s0 + i0, *b = sy + i0;
        /* over the grid's 16 points each centred coordinate's squares sum to 20 */
        const float mean = (((a[0] + a[1]) + a[2]) + a[3]) * (1.0f / 16.0f);
        const float gx = (((-1.5f * a[0] - 0.5f * a[1]) + 0.5f * a[2]) + 1.5f * a[3]) * (1.0f / 20.0f);
        const float gy = (((b[0] + b[1]) + b[2]) + b[3]) * (1.0f / 20.0f);
        const float t = tol[i0];
        plane[i0] = (uint8_t)(row_on_plane(v + i0, -1.5f, mean, gx, gy, t) &
                              row_on_plane(v + w + i0, -0.5f, mean, gx, gy, t) &
                              row_on_plane(v + 2 * (ptrdiff_t)w + i0, 0.5f, mean, gx, gy, t) &
                              row_on_plane(v + 3 * (ptrdiff_t)w + i0, 1.5f, mean, gx, gy, t));
    }
}

sd_status sd_guided_upsample(int h, int w, const float *lo, const float *lo_weight, const float *guide_lo, int H,
                             int W, const float *guide, int K, const sd_linear_guide *linear, double sigma_r,
                             double agree, const uint8_t *need, float *out, float *out_found, size_t *unreached,
                             int nthreads)
{
    if (h < 1 || w < 1 || H < h || W < w || K < 1 || K > SD_EDGE_MAX_GUIDE || !lo || !lo_weight || !guide_lo ||
        !guide || !out || !unreached || (linear && linear->n && (!linear->over || !linear->add)))
        return SD_ERR_ARG;
    if (!(sigma_r > 0.0) || !isfinite(sigma_r) || !(agree >= 0.0) || !isfinite(agree)) return SD_ERR_VALUE;
    int nt = sd_threads(nthreads);
    const float agree_f = (float)agree;
    /* a window's first sample lies in [-2, n - 2]: windows are indexed by first + 2 */
    int wh = h + 1, ww = w + 1;
    tent_taps *ty = malloc(sizeof(tent_taps) * (size_t)H), *tx = malloc(sizeof(tent_taps) * (size_t)W);
    float *scratch = malloc(sizeof(float) * 2 * (size_t)w * (size_t)nt); /* each thread's row of column sums */
    /* the column tents as 4 rows of W and the lanes a run's last block reads past W: wx[t * wx_stride + x] */
    const int wx_stride = W + UPSAMPLE_LANES;
    float *wx = malloc(sizeof(float) * 4 * (size_t)wx_stride);
    float *range = malloc(sizeof(float) * 2 * (size_t)wh * (size_t)ww); /* each window's valid min, max */
    uint8_t *fast = malloc((size_t)wh * (size_t)ww);
    /* each thread's column ranges and sums of a row of windows and the windows' tolerances; whether each
     * column's 4 are valid, and whether each window lies on its plane */
    float *colbuf = malloc(sizeof(float) * (5 * (size_t)w + 1) * (size_t)nt);
    uint8_t *colall = malloc(2 * (size_t)w * (size_t)nt);
    int *row_unreached = malloc(sizeof(int) * (size_t)H);
    column_run *runs = malloc(sizeof(column_run) * (size_t)W);
    int *run_at = malloc(sizeof(int) * (size_t)W);
    /* with need: the windows some pixel to compute reads, and the first output row of each row of windows */
    uint8_t *win_need = need ? calloc((size_t)wh * (size_t)ww, 1) : NULL;
    int *win_row = need ? malloc(sizeof(int) * ((size_t)wh + 1)) : NULL;
    float *need_rows = need ? malloc(sizeof(float) * 2 * (size_t)W * (size_t)nt) : NULL; /* each thread's */
    if (!ty || !tx || !scratch || !wx || !range || !fast || !colbuf || !colall || !row_unreached || !runs || !run_at ||
        (need && (!win_need || !win_row || !need_rows))) {
        free(need_rows);
        free(win_need);
        free(win_row);
        free(run_at);
        free(colall);
        free(colbuf);
        free(fast);
        free(runs);
        free(row_unreached);
        free(range);
        free(ty);
        free(tx);
        free(scratch);
        free(wx);
        return SD_ERR_NOMEM;
    }
    tent_axis(H, h, ty);
    tent_axis(W, w, tx);
    for (int t = 0; t < 4; t++)
        for (int x = 0; x < wx_stride; x++)
            wx[(ptrdiff_t)t * wx_stride + x] = x < W && tx[x].wt[t] > 0.0f ? tx[x].wt[t] : 0.0f;
    /* Pixels of a row whose windows start at the same sample (a run: up to the scale factor of
     * them) are summed side by side as vector lanes. */
    int nruns = 0;
    for (int xa = 0; xa < W;) {
        int xb = xa + 1;
        while (xb < W && xb - xa < UPSAMPLE_RUN && tx[xb].first == tx[xa].first) xb++;
        for (int x = xa; x < xb; x++) run_at[x] = nruns;
        runs[nruns++] = (column_run){xa, xb - xa, tx[xa].first};
        xa = xb;
    }
    if (need) {
        /* the output rows of window row jw are [win_row[jw], win_row[jw + 1]) (a row's first sample
         * row never decreases down the frame); a window is needed where a pixel of its rows needs
         * computing in a run of its columns */
        for (int jw = 0, y = 0; jw <= wh; jw++) {
            while (y < H && ty[y].first + 2 < jw) y++;
            win_row[jw] = y;
        }
        SD_PARALLEL_FOR(nt)
        for (int jw = 0; jw < wh; jw++) {
            uint8_t *nw = win_need + (ptrdiff_t)jw * ww;
            for (int y = win_row[jw]; y < win_row[jw + 1]; y++) {
                const uint8_t *nr = need + (ptrdiff_t)y * W;
                for (int x = sd_next_set(nr, 0, W); x < W; x = sd_next_set(nr, x, W)) {
                    const column_run *run = &runs[run_at[x]];
                    nw[run->first + 2] = 1;
                    x = run->x + run->n;
                }
            }
        }
    }
    /* The range of the valid samples of each 4 x 4 window: where they agree (inside a surface,
     * even a slanted one: most pixels) the colours cannot change the result and their weights are
     * skipped, and every output is clamped to it. Every output pixel of a window shares it. A row
     * of windows takes each sample column's range down its 4 rows first (a minimum and a maximum:
     * the same values in any order), then each window's over its 4 columns; for the plane, each
     * column's sums down the rows where all 4 lie inside the map. */
    SD_PARALLEL_FOR(nt)
    for (int jw = 0; jw < wh; jw++) {
        float *cmin = colbuf + (ptrdiff_t)sd_thread_id() * (5 * w + 1), *cmax = cmin + w, *s0 = cmax + w, *sy = s0 + w;
        uint8_t *all = colall + (ptrdiff_t)sd_thread_id() * 2 * w;
        const int j0 = jw - 2, jlo = j0 < 0 ? 0 : j0, jhi = j0 + 4 > h ? h : j0 + 4, inside = j0 >= 0 && j0 + 4 <= h;
        const uint8_t *wanted = win_need ? win_need + (ptrdiff_t)jw * ww : NULL; /* NULL: every window */
        if (wanted && sd_next_set(wanted, 0, ww) == ww) continue;
        for (int i = 0; i < w; i++) {
            cmin[i] = INFINITY;
            cmax[i] = -INFINITY;
            all[i] = (uint8_t)inside;
        }
        for (int j = jlo; j < jhi; j++) {
            const float *vj = lo + (ptrdiff_t)j * w, *lwj = lo_weight + (ptrdiff_t)j * w;
            SD_SIMD
            for (int i = 0; i < w; i++) { /* a valid sample (weight > 0) moves the column's range */
                const uint32_t valid = positive_mask(lwj[i]);
                cmin[i] = pick_bits(valid, fmin_sel(cmin[i], vj[i]), cmin[i]);
                cmax[i] = pick_bits(valid, fmax_sel(cmax[i], vj[i]), cmax[i]);
            }
            for (int i = 0; i < w; i++) all[i] &= (uint8_t)(lwj[i] > 0.0f);
        }
        if (inside) {
            const float *v0 = lo + (ptrdiff_t)j0 * w, *v1 = v0 + w, *v2 = v1 + w, *v3 = v2 + w;
            SD_SIMD
            for (int i = 0; i < w; i++) {
                s0[i] = ((v0[i] + v1[i]) + v2[i]) + v3[i];
                sy[i] = ((-1.5f * v0[i] - 0.5f * v1[i]) + 0.5f * v2[i]) + 1.5f * v3[i];
            }
        }
        float *tol = sy + w; /* each window's tolerance, by its first column + 2 */
        uint8_t *plane = all + w;
        float *rw = range + 2 * (ptrdiff_t)jw * ww;
        uint8_t *fw = fast + (ptrdiff_t)jw * ww;
        for (int iw = 0; iw < ww; iw++) {
            if (wanted && !wanted[iw]) continue;
            const int i0 = iw - 2, ilo = i0 < 0 ? 0 : i0, ihi = i0 + 4 > w ? w : i0 + 4;
            float vmin = INFINITY, vmax = -INFINITY;
            for (int i = ilo; i < ihi; i++) {
                vmin = fmin_sel(vmin, cmin[i]);
                vmax = fmax_sel(vmax, cmax[i]);
            }
            rw[2 * iw] = vmin;
            rw[2 * iw + 1] = vmax;
            tol[iw] = agree_f * fmax_sel(fabsf(vmin), fabsf(vmax));
            fw[iw] = (uint8_t)(vmax - vmin <= tol[iw]);
        }
        if (inside && w >= 4) {
            on_plane(lo + (ptrdiff_t)j0 * w, w, s0, sy, tol + 2, plane);
            for (int i0 = 0; i0 <= w - 4; i0++) {
                uint8_t *f = fw + i0 + 2;
                if (wanted && !wanted[i0 + 2]) continue;
                if (!*f && all[i0] && all[i0 + 1] && all[i0 + 2] && all[i0 + 3]) *f = plane[i0];
            }
        }
    }
    const upsample_rows u = {
        .h = h,
        .w = w,
        .W = W,
        .K = K,
        .ww = ww,
        .nruns = nruns,
        .wx_stride = wx_stride,
        .lo = lo,
        .lo_weight = lo_weight,
        .guide_lo = guide_lo,
        .guide = guide,
        .wx = wx,
        .range = range,
        .fast = fast,
        .need = need,
        .linear = linear,
        .ty = ty,
        .runs = runs,
        .run_at = run_at,
        .inv_r = sigma_r < 1e-30 ? 1e30f : (float)(1.0 / sigma_r), /* finite: d > 0 here */
        .out = out,
        .out_found = out_found,
    };
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        float *colsum = scratch + (ptrdiff_t)sd_thread_id() * 2 * w;
        float *need_out = need ? need_rows + (ptrdiff_t)sd_thread_id() * 2 * W : NULL;
        row_unreached[y] = upsample_row(&u, y, colsum, colsum + w, need_out, need ? need_out + W : NULL);
    }
    *unreached = 0;
    for (int y = 0; y < H; y++) *unreached += (size_t)row_unreached[y];
    free(colall);
    free(colbuf);
    free(fast);
    free(runs);
    free(run_at);
    free(win_need);
    free(win_row);
    free(need_rows);
    free(row_unreached);
    free(scratch);
    free(wx);
    free(range);
    free(ty);
    free(tx);
    return SD_OK;
}
