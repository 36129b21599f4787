/* Small inline helpers shared by the kernels. */
#ifndef SD_UTIL_H
#define SD_UTIL_H

#include <stdint.h>
#include <string.h>

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* floor and ceil of a float in int range: without SSE4.1 (the baseline x86-64 the package is
 * built for), floorf is a library call, far too slow for a per-source step. */
static inline int sd_ifloor(float x)
{
    int i = (int)x;
    return i - (x < (float)i);
}

static inline int sd_iceil(float x)
{
    int i = (int)x;
    return i + (x > (float)i);
}

/* A bilinear lookup on a grid of n cells: the position of pixel i's centre on it is
 * (i + 0.5) * scale - 0.5 cells (scale 1/2 for a grid twice as coarse), clamped to [0, n - 1]
 * (the grid continues as its edge cells); *i0 is the cell at or before it, *i1 the next one (the
 * same at the end) and *w the weight of *i1. */
static inline void sd_lerp_cell(int i, float scale, int n, int *i0, int *i1, float *w)
{
    float p = ((float)i + 0.5f) * scale - 0.5f;
    p = p < 0.0f ? 0.0f : (p > (float)(n - 1) ? (float)(n - 1) : p);
    *i0 = (int)p;
    *i1 = *i0 + 1 < n ? *i0 + 1 : *i0;
    *w = p - (float)*i0;
}

/* sd_lerp_cell(i, 0.5f, n, ...), the same three values: inside [1, 2n - 2] the position is
 * i / 2 - 1/4 exactly, so the cell is (i - 1) / 2 and the weight 1/4 or 3/4 by i's parity; only
 * the edge cells need the float clamp. */
static inline void sd_lerp_half(int i, int n, int *i0, int *i1, float *w)
{
    if (i >= 1 && i <= 2 * n - 2) {
        *i0 = (i - 1) >> 1;
        *i1 = *i0 + 1;
        *w = (i & 1) ? 0.25f : 0.75f;
        return;
    }
    sd_lerp_cell(i, 0.5f, n, i0, i1, w);
}

/* One cell's 4 channels: d[c] += w a[c] (sd_cell_add), and d[c] += w0 a[c] + w1 b[c] + w2 e[c]
 * + w3 g[c], summed in that order (sd_cell_add_bilinear); sd_span_ends_add, the fill's steps
 * and sd_cell_relax below. With GNU C as vectors (loaded and stored by memcpy): GCC keeps the plain loops scalar
 * where a store might alias the next loads. The arithmetic is the same either way. */
#if defined(__GNUC__)
typedef float sd_cell4 __attribute__((vector_size(16)));
static inline sd_cell4 sd_cell_load(const float *p)
{
    sd_cell4 x;
    memcpy(&x, p, sizeof x);
    return x;
}
static inline void sd_cell_add(float *restrict d, const float *restrict a, float w)
{
    sd_cell4 x = sd_cell_load(d) + w * sd_cell_load(a);
    memcpy(d, &x, sizeof x);
}
static inline void sd_cell_add_bilinear(float *restrict d, const float *a, const float *b, const float *e,
                                        const float *g, float w0, float w1, float w2, float w3)
{
    sd_cell4 x = sd_cell_load(d) +
                 (w0 * sd_cell_load(a) + w1 * sd_cell_load(b) + w2 * sd_cell_load(e) + w3 * sd_cell_load(g));
    memcpy(d, &x, sizeof x);
}
/* One source's span in one row, each end anti-aliased over two cells: da[c] += w[0] l[c],
 * da[4 + c] += w[1] l[c], then db[c] += w[2] l[c], db[4 + c] += w[3] l[c] (the ends may share a
 * cell: b's after a's). Each end's two cells as one 8-float vector. */
typedef float sd_cell8 __attribute__((vector_size(32)));
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define SD_HAS_SHUFFLEVECTOR 1
#endif
#endif
#ifndef SD_HAS_SHUFFLEVECTOR
#define SD_HAS_SHUFFLEVECTOR 0
#endif
static inline void sd_span_ends_add(float *da, float *db, const float *w, const float *l)
{
    sd_cell4 w4 = sd_cell_load(w), l4 = sd_cell_load(l);
#if SD_HAS_SHUFFLEVECTOR
    sd_cell8 l8 = __builtin_shufflevector(l4, l4, 0, 1, 2, 3, 0, 1, 2, 3);
    sd_cell8 wa = __builtin_shufflevector(w4, w4, 0, 0, 0, 0, 1, 1, 1, 1);
    sd_cell8 wb = __builtin_shufflevector(w4, w4, 2, 2, 2, 2, 3, 3, 3, 3);
#else
    sd_cell8 l8 = {l4[0], l4[1], l4[2], l4[3], l4[0], l4[1], l4[2], l4[3]};
    sd_cell8 wa = {w4[0], w4[0], w4[0], w4[0], w4[1], w4[1], w4[1], w4[1]};
    sd_cell8 wb = {w4[2], w4[2], w4[2], w4[2], w4[3], w4[3], w4[3], w4[3]};
#endif
    sd_cell8 x;
    memcpy(&x, da, sizeof x);
    x += wa * l8;
    memcpy(da, &x, sizeof x);
    memcpy(&x, db, sizeof x);
    x += wb * l8;
    memcpy(db, &x, sizeof x);
}
/* o[c] = (1 - wy) ((1 - wx) a[c] + wx b[c]) + wy ((1 - wx) e[c] + wx g[c]): a bilinear sample
 * of the fill's pyramid (sd_fill.c). */
static inline void sd_cell_bilerp(float *restrict o, const float *a, const float *b, const float *e, const float *g,
                                  float wx, float wy)
{
    sd_cell4 x = (1 - wy) * ((1 - wx) * sd_cell_load(a) + wx * sd_cell_load(b)) +
                 wy * ((1 - wx) * sd_cell_load(e) + wx * sd_cell_load(g));
    memcpy(o, &x, sizeof x);
}
/* d[c] = w d[c] + (1 - w) a[c]: a cell of weight w below 1 blended with what the fill brings. */
static inline void sd_cell_mix(float *restrict d, const float *restrict a, float w)
{
    sd_cell4 x = w * sd_cell_load(d) + (1.0f - w) * sd_cell_load(a);
    memcpy(d, &x, sizeof x);
}
/* The fill's pull of one cell from its four children p[q] with weights wq: each weight made
 * w[q] = max(wq, 0) / s, s their sum from 0 in q's order (or 0 where s is not > 0), then
 * d[c] = the sum over q of (w[q] > 0 ? w[q] p[q][c] : 0), from 0 in q's order (a child without
 * weight adds nothing, whatever its value); returns s. The four divisions go as one vector
 * division (each lane correctly rounded, as a scalar division is), and the weights stay in a
 * register from the loads to the sums (a vector load of four scalar stores waits for them). */
typedef int sd_mask4 __attribute__((vector_size(16)));
static inline float sd_cell_pull_weights(float *restrict d, const float *const p[4], float w0, float w1, float w2,
                                         float w3)
{
    sd_cell4 x = {w0, w1, w2, w3}, zero = {0.0f, 0.0f, 0.0f, 0.0f};
    x = (sd_cell4)((sd_mask4)x & (x > zero)); /* +0 where not > 0, NaN included */
    float s = 0.0f;
    s += x[0];
    s += x[1];
    s += x[2];
    s += x[3];
    x = s > 0.0f ? x / s : zero;
    /* a child whose weight is not > 0 adds +0 (its product masked off), whatever its value */
    sd_mask4 m = x > zero;
    sd_cell4 t = zero;
    for (int q = 0; q < 4; q++) {
        sd_cell4 xq = {x[q], x[q], x[q], x[q]};
        sd_mask4 mq = {m[q], m[q], m[q], m[q]};
        t = t + (sd_cell4)((sd_mask4)(xq * sd_cell_load(p[q])) & mq);
    }
    memcpy(d, &t, sizeof t);
    return s;
}
/* d[c] = w d[c] + (1 - w) (0.25 (a[c] + b[c] + e[c] + g[c])): the fill's relaxation step (the
 * neighbours may be the cell itself at the grid's edges: every read comes before the store). */
static inline void sd_cell_relax(float *d, const float *a, const float *b, const float *e, const float *g, float w)
{
    sd_cell4 m = 0.25f * (sd_cell_load(a) + sd_cell_load(b) + sd_cell_load(e) + sd_cell_load(g));
    sd_cell4 x = w * sd_cell_load(d) + (1.0f - w) * m;
    memcpy(d, &x, sizeof x);
}
#else
static inline void sd_cell_bilerp(float *restrict o, const float *a, const float *b, const float *e, const float *g,
                                  float wx, float wy)
{
    for (int c = 0; c < 4; c++) o[c] = (1 - wy) * ((1 - wx) * a[c] + wx * b[c]) + wy * ((1 - wx) * e[c] + wx * g[c]);
}
static inline void sd_cell_mix(float *restrict d, const float *restrict a, float w)
{
    for (int c = 0; c < 4; c++) d[c] = w * d[c] + (1.0f - w) * a[c];
}
static inline float sd_cell_pull_weights(float *restrict d, const float *const p[4], float w0, float w1, float w2,
                                         float w3)
{
    float w[4] = {w0, w1, w2, w3}, s = 0.0f;
    for (int q = 0; q < 4; q++) {
        w[q] = w[q] > 0.0f ? w[q] : 0.0f;
        s += w[q];
    }
    for (int q = 0; q < 4; q++) w[q] = s > 0.0f ? w[q] / s : 0.0f;
    for (int c = 0; c < 4; c++) {
        float t = 0.0f;
        for (int q = 0; q < 4; q++) t += w[q] > 0.0f ? w[q] * p[q][c] : 0.0f;
        d[c] = t;
    }
    return s;
}
static inline void sd_cell_relax(float *d, const float *a, const float *b, const float *e, const float *g, float w)
{
    float m[4], x[4];
    for (int c = 0; c < 4; c++) m[c] = 0.25f * (a[c] + b[c] + e[c] + g[c]);
    for (int c = 0; c < 4; c++) x[c] = w * d[c] + (1.0f - w) * m[c];
    for (int c = 0; c < 4; c++) d[c] = x[c];
}
static inline void sd_cell_add(float *restrict d, const float *restrict a, float w)
{
    for (int c = 0; c < 4; c++) d[c] += w * a[c];
}
static inline void sd_span_ends_add(float *da, float *db, const float *w, const float *l)
{
    for (int c = 0; c < 4; c++) da[c] += w[0] * l[c];
    for (int c = 0; c < 4; c++) da[4 + c] += w[1] * l[c];
    for (int c = 0; c < 4; c++) db[c] += w[2] * l[c];
    for (int c = 0; c < 4; c++) db[4 + c] += w[3] * l[c];
}
static inline void sd_cell_add_bilinear(float *restrict d, const float *a, const float *b, const float *e,
                                        const float *g, float w0, float w1, float w2, float w3)
{
    float s[4];
    for (int c = 0; c < 4; c++) s[c] = w0 * a[c] + w1 * b[c] + w2 * e[c] + w3 * g[c];
    for (int c = 0; c < 4; c++) d[c] += s[c];
}
#endif

/* Whether premultiplied colour + coverage q holds anything. */
static inline int sd_nonzero4(const float *q)
{
    /* as q[c] != 0 for any c (NaN included), without a branch per channel */
    uint32_t b[4];
    memcpy(b, q, sizeof b);
    return ((b[0] | b[1] | b[2] | b[3]) & 0x7fffffffu) != 0;
}

/* Hot row kernels, compiled a second time for AVX2 + FMA and picked at load time where the
 * toolchain supports it (GCC's function multi-versioning on x86-64 Linux): the package itself is
 * built for the baseline x86-64, never for the build machine. ISO C contracts no multiply-add, so
 * both versions give the same bits. -DSD_NO_CLONES builds the baseline alone (to check that). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(SD_NO_CLONES)
#define SD_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* a row kernel with everything it calls inlined into each version (helpers not cloned themselves
 * would otherwise stay out of line, in the baseline's code) */
#define SD_ROW_CLONES __attribute__((target_clones("arch=x86-64-v3", "default"), flatten))
#else
#define SD_CLONES
#define SD_ROW_CLONES
#endif

/* Whether any of n flags is set. */
static inline int sd_any_set(const uint8_t *restrict v, int n)
{
    uint8_t any = 0;
    for (int k = 0; k < n; k++) any |= v[k];
    return any != 0;
}

/* The first x' >= x (at most end) with t[x'] set: eight bytes at a time past the unset (most). */
static inline int sd_next_set(const uint8_t *t, int x, int end)
{
    for (uint64_t v; x + 8 <= end; x += 8) {
        memcpy(&v, t + x, sizeof v);
        if (v) break;
    }
    while (x < end && !t[x]) x++;
    return x;
}

#endif
