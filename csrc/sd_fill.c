/* Push-pull hole filling: a weighted image pyramid is pulled down (weighted means), then pushed
 * back up, each level keeping its own values where it has weight and taking the bilinear
 * interpolation of the coarser filled level where it has none. Cost O(pixels). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_fill.h"
#include "sd_parallel.h"
#include "sd_util.h"

#define RELAX_SWEEPS 4

/* A few red-black Gauss-Seidel sweeps of the membrane equation on the unknown part: each cell
 * becomes w * own + (1 - w) * (mean of its 4 neighbours). Push-pull alone takes the filled value
 * from blocky coarse averages, which lets a distant bright region bias the fill right next to
 * the known boundary; relaxing the coarse levels makes the fill follow the boundary values
 * (harmonic), at O(pixels) cost. Red-black order keeps it deterministic under threads.
 *
 * RELAX_ROWS runs the sweeps over each row's cells not fully known (ux0/ux1, or NULL: every
 * cell), rows in parallel: ROW relaxes cells x = xs, xs + 2, ... < xe of row y, whose neighbour
 * rows are ym and yp (the row itself at the grid's edges). A macro, not a function taking the
 * row's step: OpenMP outlines the parallel loop before inlining, which would leave the step an
 * indirect call per row (1-2 % of a render). */
#define RELAX_ROWS(H, W, ux0, ux1, nt, ...)                                                   \
    for (int sweep_ = 0; sweep_ < RELAX_SWEEPS; sweep_++)                                    \
        for (int colour = 0; colour < 2; colour++) {                                         \
            SD_PARALLEL_FOR_CHUNKS(nt)                                                       \
            for (int y = 0; y < (H); y++) {                                                  \
                int ym = y > 0 ? y - 1 : y, yp = y + 1 < (H) ? y + 1 : y;                    \
                int xs = (ux0) ? (ux0)[y] : 0, xe = (ux0) ? (ux1)[y] : (W);                  \
                if (xs >= xe) continue;                                                      \
                xs += ((xs + y + colour) & 1);                                               \
                __VA_ARGS__                                                                  \
            }                                                                                \
        }

static inline void relax_n(float *v, const float *wt, int H, int W, int nch, const int *ux0, const int *ux1,
                           int nt)
{
    nt = sd_threads_for(nt, (ptrdiff_t)H * W);
    RELAX_ROWS(H, W, ux0, ux1, nt, {
        for (int x = xs; x < xe; x += 2) {
            ptrdiff_t i = (ptrdiff_t)y * W + x;
            float w = wt[i];
            w = w > 1.0f ? 1.0f : (w > 0.0f ? w : 0.0f);
            if (w >= 1.0f) continue;
            int xm = x > 0 ? x - 1 : x, xp = x + 1 < W ? x + 1 : x;
            ptrdiff_t a = ((ptrdiff_t)ym * W + x) * nch, b = ((ptrdiff_t)yp * W + x) * nch;
            ptrdiff_t c = ((ptrdiff_t)y * W + xm) * nch, d = ((ptrdiff_t)y * W + xp) * nch;
            for (int ch = 0; ch < nch; ch++) {
                float m = 0.25f * (v[a + ch] + v[b + ch] + v[c + ch] + v[d + ch]);
                v[i * nch + ch] = w * v[i * nch + ch] + (1.0f - w) * m;
            }
        }
    })
}

/* A level's row of blocks (see sd_fill_mask): the next run of set blocks at or after block *b,
 * as cells [*x0, *x1) clipped to [lo, hi); 0 when there is none. */
static inline int next_run(const unsigned char *row, int nb, int cells, int *b, int lo, int hi, int *x0, int *x1)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    int i = *b;
    for (uint64_t w; i + 8 <= nb; i += 8) { /* 8 blocks at a time while all are clear */
        memcpy(&w, row + i, sizeof w);
        if (w) break;
    }
    while (i < nb && !row[i]) i++;
    if (i >= nb || i * cells >= hi) return 0;
    int j = i + 1;
    for (uint64_t w; j + 8 <= nb; j += 8) { /* ... and while all are set (no zero byte) */
        memcpy(&w, row + j, sizeof w);
        if ((w - ones) & ~w & highs) break;
    }
    while (j < nb && row[j]) j++;
    *b = j;
    *x0 = imax(i * cells, lo);
    *x1 = imin(j * cells, hi);
    return 1;
}

/* A level's blocks: the row of blocks that holds cell row y, its block count and cells per block. */
typedef struct {
    const unsigned char *on;
    int bw, cells;
} level_mask;

/* The blocks `on` of m (NULL: none) as level `level` reads them. */
static level_mask level_blocks(const sd_fill_mask *m, const unsigned char *on, int level)
{
    level_mask l = {NULL, 0, 0};
    if (on) {
        l.on = on;
        l.bw = m->bw;
        l.cells = SD_FILL_BLOCK >> level;
    }
    return l;
}

/* The blocks level k (1 or 2) is pushed and relaxed on (see sd_fill_mask; on NULL: everywhere). */
static level_mask mask_of(const sd_fill_mask *m, int level)
{
    return level_blocks(m, m && level >= 1 && level <= 2 ? m->on[level] : NULL, level);
}

/* The blocks level k (1 to 3) is pulled on (on NULL: everywhere): only with a level 3, whose
 * cells (a block each) stand for the blocks not pulled below it. The caller gives a mask for 4
 * channels only. */
static level_mask pulled_of(const sd_fill_mask *m, const sd_fillpyr *f, int level)
{
    return level_blocks(m, m && f->n >= 4 && level >= 1 && level <= 3 ? m->pulled : NULL, level);
}

/* relax4's cells x = xs, xs + 2, ... < xe of a row (xs of the sweep's colour). */
static inline void relax4_span(float *vr, const float *va, const float *vb, const float *wr, int W, int xs, int xe)
{
    for (int x = xs; x < xe; x += 2) {
        float w = wr[x];
        if (w >= 1.0f) continue;
        w = w > 0.0f ? w : 0.0f;
        int xm = x > 0 ? x - 1 : x, xp = x + 1 < W ? x + 1 : x;
        sd_cell_relax(vr + 4 * x, va + 4 * x, vb + 4 * x, vr + 4 * xm, vr + 4 * xp, w);
    }
}

/* relax_n for 4 channels, the same steps in the same order: each row's cells addressed from
 * its own and its neighbours' row starts, the weight's clamp to [0, 1] folded into the test that
 * skips known cells (relax_n's loop kept every index computation and clamp per cell). With a
 * mask, only the cells of its set blocks (a cell's update reads its neighbours alone, so the
 * others' order does not matter). */
static void relax4(float *v, const float *wt, int H, int W, const int *ux0, const int *ux1, level_mask m, int nt)
{
    /* a masked grid's work is its blocks': a sweep over a few blocks is over before a sleeping
     * second thread would wake */
    ptrdiff_t work = (ptrdiff_t)H * W;
    if (m.on) {
        ptrdiff_t on = 0, nb = (ptrdiff_t)((H + m.cells - 1) / m.cells) * m.bw;
        for (ptrdiff_t i = 0; i < nb; i++) on += m.on[i] != 0;
        work = on * m.cells * m.cells;
    }
    nt = sd_threads_for(nt, work);
    RELAX_ROWS(H, W, ux0, ux1, nt, {
        const float *wr = wt + (ptrdiff_t)y * W;
        float *vr = v + 4 * (ptrdiff_t)y * W;
        const float *va = v + 4 * (ptrdiff_t)ym * W, *vb = v + 4 * (ptrdiff_t)yp * W;
        if (!m.on) {
            relax4_span(vr, va, vb, wr, W, xs, xe);
        } else {
            const unsigned char *mr = m.on + (ptrdiff_t)(y / m.cells) * m.bw;
            int b = xs / m.cells, a, e;
            while (next_run(mr, m.bw, m.cells, &b, xs, xe, &a, &e)) {
                a += (a + y + colour) & 1;
                relax4_span(vr, va, vb, wr, W, a, e);
            }
        }
    })
}

/* relax_n for 1 channel (the entries' fill of the subject's CoC), the same steps in the same
 * order, each row addressed as relax4 addresses it. */
static void relax1(float *v, const float *wt, int H, int W, const int *ux0, const int *ux1, int nt)
{
    nt = sd_threads_for(nt, (ptrdiff_t)H * W);
    RELAX_ROWS(H, W, ux0, ux1, nt, {
        const float *wr = wt + (ptrdiff_t)y * W;
        float *vr = v + (ptrdiff_t)y * W;
        const float *va = v + (ptrdiff_t)ym * W, *vb = v + (ptrdiff_t)yp * W;
        for (int x = xs; x < xe; x += 2) {
            float w = wr[x];
            if (w >= 1.0f) continue;
            w = w > 0.0f ? w : 0.0f;
            int xm = x > 0 ? x - 1 : x, xp = x + 1 < W ? x + 1 : x;
            float m = 0.25f * (va[x] + vb[x] + vr[xm] + vr[xp]);
            vr[x] = w * vr[x] + (1.0f - w) * m;
        }
    })
}

/* The channel counts the core uses get loops of a known length (unrolled, vectorised). */
static void relax(float *v, const float *wt, int H, int W, int nch, const int *ux0, const int *ux1, level_mask m,
                  int nt)
{
    if (nch == 4) relax4(v, wt, H, W, ux0, ux1, m, nt);
    else if (nch == 1) relax1(v, wt, H, W, ux0, ux1, nt);
    else relax_n(v, wt, H, W, nch, ux0, ux1, nt);
}

static int fill_levels(int H, int W, int *hs, int *ws)
{
    int n = 1;
    hs[0] = H;
    ws[0] = W;
    while ((hs[n - 1] > 1 || ws[n - 1] > 1) && n < SD_FILL_MAX_LEVELS) {
        hs[n] = (hs[n - 1] + 1) / 2;
        ws[n] = (ws[n - 1] + 1) / 2;
        n++;
    }
    return n;
}

size_t sd_fill_ws_floats(int H, int W, int nch)
{
    int hs[SD_FILL_MAX_LEVELS], ws[SD_FILL_MAX_LEVELS];
    int n = fill_levels(H, W, hs, ws);
    size_t t = 0;
    for (int k = 1; k < n; k++) t += (size_t)hs[k] * (size_t)ws[k] * (size_t)(nch + 1);
    return t;
}

/* Level-0 weight of a cell and its value times that weight, in either input convention. */
static inline float weight0(const float *weight, const float *hole, ptrdiff_t i)
{
    if (hole) {
        float vis = 1.0f - hole[i];
        return vis > SD_FILL_MIN_VISIBLE ? vis : 0.0f;
    }
    return weight[i];
}

/* Level-1 cell (x, y) from premultiplied 4-channel values and hidden fractions (see
 * sd_fill_build), its children taken in a fixed order: (2x, 2y), (2x + 1, 2y), (2x, 2y + 1),
 * (2x + 1, 2y + 1). */
static inline void pull_premult4_cell(const float *value, ptrdiff_t vrow, const float *hole, ptrdiff_t mrow, int H,
                                      int W, const int *rx0, const int *rx1, const ptrdiff_t *roff, int x, int y,
                                      float *cv, float *cw)
{
    int ya = 2 * y, yb = 2 * y + 1 < H ? 2 * y + 1 : -1;
    int xa = 2 * x, xb = 2 * x + 1 < W ? 2 * x + 1 : -1;
    float sw = 0.0f, sv[4] = {0, 0, 0, 0};
    for (int dy = 0; dy < 2; dy++) {
        int yy = dy ? yb : ya;
        if (yy < 0) continue;
        for (int dx = 0; dx < 2; dx++) {
            int xx = dx ? xb : xa;
            if (xx < 0) continue;
            if (rx0 && (xx < rx0[yy] || xx >= rx1[yy])) { sw += 1.0f; continue; } /* seen, empty */
            ptrdiff_t i = roff ? roff[yy] + xx : (ptrdiff_t)yy * mrow + xx;
            float vis = 1.0f - hole[i];
            if (!(vis > SD_FILL_MIN_VISIBLE)) continue;
            const float *q = roff ? value + 4 * i : value + (ptrdiff_t)yy * vrow + 4 * (ptrdiff_t)xx;
            sw += vis;
            for (int c = 0; c < 4; c++) sv[c] += q[c];
        }
    }
    float inv = sw > 0.0f ? 1.0f / sw : 0.0f;
    *cw = sw > 1.0f ? 1.0f : sw;
    for (int c = 0; c < 4; c++) cv[c] = sv[c] * inv;
}

/* Level-1 cells [x0, x1) of row y seen and empty: weight 1, value 0. */
static inline void seen_empty_cells(float *cv, float *cw, int cw_, int y, int x0, int x1)
{
    for (int x = x0; x < x1; x++) {
        ptrdiff_t o = (ptrdiff_t)y * cw_ + x;
        cw[o] = 1.0f;
        for (int c = 0; c < 4; c++) cv[4 * o + c] = 0.0f;
    }
}

/* Row y of level 1 from premultiplied 4-channel values and hidden fractions (see
 * sd_fill_build), its cells [xa, xb). */
static inline void pull_premult4_row(const float *value, ptrdiff_t vrow, const float *hole, ptrdiff_t mrow, int H,
                                     int W, const int *rx0, const int *rx1, const ptrdiff_t *roff, float *cv,
                                     float *cw, int cw_, int y, int xa, int xb)
{
    int ya = 2 * y, yb = 2 * y + 1 < H ? 2 * y + 1 : -1;
    /* the cells whose children all lie outside the rows' ranges are seen and empty */
    int in0 = 0, in1 = cw_;
    if (rx0) {
        int a = rx0[ya], b = rx1[ya];
        if (yb >= 0 && rx0[yb] < rx1[yb]) {
            a = a < b ? (a < rx0[yb] ? a : rx0[yb]) : rx0[yb];
            b = rx1[ya] > rx0[ya] ? (b > rx1[yb] ? b : rx1[yb]) : rx1[yb];
        }
        in0 = a < b ? a / 2 : cw_;
        in1 = a < b ? (b + 1) / 2 : cw_;
        seen_empty_cells(cv, cw, cw_, y, xa, imin(in0, xb));
        seen_empty_cells(cv, cw, cw_, y, imax(in1, xa), xb);
    }
    in0 = imax(in0, xa);
    in1 = imin(in1, xb);
    /* the cells whose four children all lie inside both rows' ranges: the same sums in the
     * same order, without a range check per child */
    int f0 = in0, f1 = in0;
    if (rx0 && roff && yb >= 0 && in0 < in1) {
        int lo = rx0[ya] > rx0[yb] ? rx0[ya] : rx0[yb], hi = rx1[ya] < rx1[yb] ? rx1[ya] : rx1[yb];
        f0 = imin(imax((lo + 1) / 2, in0), in1);
        f1 = imax(imin(hi / 2, in1), f0);
    }
    for (int x = in0; x < f0; x++)
        pull_premult4_cell(value, vrow, hole, mrow, H, W, rx0, rx1, roff, x, y, cv + 4 * ((ptrdiff_t)y * cw_ + x),
                           cw + (ptrdiff_t)y * cw_ + x);
    if (f0 < f1) {
        const float *ha = hole + roff[ya], *hb = hole + roff[yb];
        const float *va = value + 4 * roff[ya], *vb = value + 4 * roff[yb];
        for (int x = f0; x < f1; x++) {
            const float *h4[4] = {ha + 2 * x, ha + 2 * x + 1, hb + 2 * x, hb + 2 * x + 1};
            const float *q4[4] = {va + 8 * (ptrdiff_t)x, va + 8 * (ptrdiff_t)x + 4, vb + 8 * (ptrdiff_t)x,
                                  vb + 8 * (ptrdiff_t)x + 4};
            float sw = 0.0f, sv[4] = {0, 0, 0, 0};
            for (int q = 0; q < 4; q++) {
                float vis = 1.0f - *h4[q];
                if (!(vis > SD_FILL_MIN_VISIBLE)) continue;
                sw += vis;
                for (int c = 0; c < 4; c++) sv[c] += q4[q][c];
            }
            ptrdiff_t o = (ptrdiff_t)y * cw_ + x;
            float inv = sw > 0.0f ? 1.0f / sw : 0.0f;
            cw[o] = sw > 1.0f ? 1.0f : sw;
            for (int c = 0; c < 4; c++) cv[4 * o + c] = sv[c] * inv;
        }
    }
    for (int x = imax(f1, in0); x < in1; x++)
        pull_premult4_cell(value, vrow, hole, mrow, H, W, rx0, rx1, roff, x, y, cv + 4 * ((ptrdiff_t)y * cw_ + x),
                           cw + (ptrdiff_t)y * cw_ + x);
}

/* Level 1 from premultiplied 4-channel values and hidden fractions (see sd_fill_build); with
 * pulled (see sd_fill_mask), only the cells of its blocks. */
static void pull_premult4(const float *value, ptrdiff_t vrow, const float *hole, ptrdiff_t mrow, int H, int W,
                          const int *rx0, const int *rx1, const ptrdiff_t *roff, float *cv, float *cw, int ch_,
                          int cw_, level_mask pulled, int nt)
{
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < ch_; y++) {
        if (!pulled.on) {
            pull_premult4_row(value, vrow, hole, mrow, H, W, rx0, rx1, roff, cv, cw, cw_, y, 0, cw_);
            continue;
        }
        const unsigned char *mr = pulled.on + (ptrdiff_t)(y / pulled.cells) * pulled.bw;
        int b = 0, a, e;
        while (next_run(mr, pulled.bw, pulled.cells, &b, 0, cw_, &a, &e))
            pull_premult4_row(value, vrow, hole, mrow, H, W, rx0, rx1, roff, cv, cw, cw_, y, a, e);
    }
}

/* Level 1 from normalised values with weights, for a channel count known at compile time. */
static inline void pull_weighted(const float *value, ptrdiff_t vrow, const float *weight, ptrdiff_t mrow, int H,
                                 int W, int nch, float *cv, float *cw, int ch_, int cw_, int nt)
{
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < ch_; y++) {
        int ya = 2 * y, yb = 2 * y + 1 < H ? 2 * y + 1 : -1;
        for (int x = 0; x < cw_; x++) {
            int xa = 2 * x, xb = 2 * x + 1 < W ? 2 * x + 1 : -1;
            double sw = 0.0, sv[4] = {0, 0, 0, 0}; /* double: weights may be denormal */
            for (int dy = 0; dy < 2; dy++) {
                int yy = dy ? yb : ya;
                if (yy < 0) continue;
                for (int dx = 0; dx < 2; dx++) {
                    int xx = dx ? xb : xa;
                    if (xx < 0) continue;
                    float w = weight[(ptrdiff_t)yy * mrow + xx];
                    if (!(w > 0.0f)) continue;
                    const float *q = value + (ptrdiff_t)yy * vrow + (ptrdiff_t)xx * nch;
                    sw += w;
                    for (int c = 0; c < nch; c++) sv[c] += (double)w * q[c];
                }
            }
            ptrdiff_t o = (ptrdiff_t)y * cw_ + x;
            cw[o] = sw > 1.0 ? 1.0f : (float)sw;
            for (int c = 0; c < nch; c++) cv[o * nch + c] = sw > 0.0 ? (float)(sv[c] / sw) : 0.0f;
        }
    }
}

void sd_fill_layout(sd_fillpyr *f, float *ws, int H, int W, int nch)
{
    f->nch = nch;
    f->n = fill_levels(H, W, f->H, f->W);
    f->v[0] = NULL;
    f->w[0] = NULL;
    float *p = ws;
    for (int k = 1; k < f->n; k++) {
        size_t cells = (size_t)f->H[k] * (size_t)f->W[k];
        f->v[k] = p;
        p += cells * (size_t)nch;
        f->w[k] = p;
        p += cells;
    }
}

/* Level 1 from level 0 in either input convention, any channel count (see sd_fill_build). */
static void pull_generic(sd_fillpyr *f, int H, int W, const float *value, ptrdiff_t vrow, const float *weight,
                         const float *hole, ptrdiff_t mrow, int nt)
{
    int nch = f->nch, m = nch < 64 ? nch : 64, ch_ = f->H[1], cw = f->W[1];
    float *cv = f->v[1], *cwt = f->w[1];
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < ch_; y++)
        for (int x = 0; x < cw; x++) {
            double sw = 0.0, sv[64]; /* double: weights may be denormal */
            for (int c = 0; c < m; c++) sv[c] = 0.0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    int yy = 2 * y + dy, xx = 2 * x + dx;
                    if (yy >= H || xx >= W) continue;
                    ptrdiff_t i = (ptrdiff_t)yy * mrow + xx;
                    float w = weight0(weight, hole, i);
                    if (!(w > 0.0f)) continue;
                    sw += w;
                    const float *q = value + (ptrdiff_t)yy * vrow + (ptrdiff_t)xx * nch;
                    /* premultiplied input already holds w * value */
                    for (int c = 0; c < m; c++) sv[c] += hole ? (double)q[c] : (double)w * q[c];
                }
            ptrdiff_t o = (ptrdiff_t)y * cw + x;
            cwt[o] = sw > 1.0 ? 1.0f : (float)sw;
            for (int c = 0; c < m; c++) cv[o * nch + c] = sw > 0.0 ? (float)(sv[c] / sw) : 0.0f;
        }
}

/* Level k from level k - 1 (ph x pw): each cell the weighted mean of its up to 4 children, its
 * weight their sum capped at 1. The mean is taken with the weights normalised first (w_i / sum),
 * so that it stays a convex combination, exact to rounding, even for denormal weights. */
static inline void pull_level(const float *pv, const float *pwt, int ph, int pw, float *cv, float *cwt, int ch_,
                              int cw, int nch, int nt)
{
    nt = sd_threads_for(nt, (ptrdiff_t)ch_ * cw);
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < ch_; y++) {
        int ya = 2 * y, yb = 2 * y + 1 < ph ? 2 * y + 1 : 2 * y;
        float my = 2 * y + 1 < ph ? 1.0f : 0.0f; /* the second child row exists */
        for (int x = 0; x < cw; x++) {
            int xa = 2 * x, xb = 2 * x + 1 < pw ? 2 * x + 1 : 2 * x;
            float mx = 2 * x + 1 < pw ? 1.0f : 0.0f;
            ptrdiff_t i[4] = {(ptrdiff_t)ya * pw + xa, (ptrdiff_t)ya * pw + xb, (ptrdiff_t)yb * pw + xa,
                              (ptrdiff_t)yb * pw + xb};
            float w[4] = {pwt[i[0]], pwt[i[1]] * mx, pwt[i[2]] * my, pwt[i[3]] * mx * my}, sw = 0.0f;
            for (int q = 0; q < 4; q++) {
                w[q] = w[q] > 0.0f ? w[q] : 0.0f;
                sw += w[q];
            }
            /* divided, not multiplied by 1 / sw: that overflows for a sum of denormal weights */
            for (int q = 0; q < 4; q++) w[q] = sw > 0.0f ? w[q] / sw : 0.0f;
            ptrdiff_t o = (ptrdiff_t)y * cw + x;
            cwt[o] = sw > 1.0f ? 1.0f : sw;
            for (int c = 0; c < nch; c++) { /* a child without weight adds nothing, whatever its value */
                float t = 0.0f;
                for (int q = 0; q < 4; q++) t += w[q] > 0.0f ? w[q] * pv[i[q] * nch + c] : 0.0f;
                cv[o * nch + c] = t;
            }
        }
    }
}

/* Level k - 1 (fH x fW) from the filled level k: cells of weight below 1 blend their own value
 * with the bilinear interpolation of level k; ux0/ux1 (or NULL) get each row's span of such
 * cells. */
static inline void push_level(const float *cv, int cH, int cW, float *fv, const float *fw, int fH, int fW, int nch,
                              int *ux0, int *ux1, int nt)
{
    nt = sd_threads_for(nt, (ptrdiff_t)fH * fW);
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < fH; y++) {
        int y0, y1;
        float wy;
        sd_lerp_half(y, cH, &y0, &y1, &wy);
        int u0 = fW, u1 = 0;
        for (int x = 0; x < fW; x++) {
            ptrdiff_t i = (ptrdiff_t)y * fW + x;
            float w = fw[i];
            if (w >= 1.0f) continue; /* fully known: keeps its own value */
            w = w > 0.0f ? w : 0.0f;
            int x0, x1;
            float wx;
            sd_lerp_half(x, cW, &x0, &x1, &wx);
            u0 = x < u0 ? x : u0;
            u1 = x + 1;
            const float *a = cv + ((ptrdiff_t)y0 * cW + x0) * nch, *b = cv + ((ptrdiff_t)y0 * cW + x1) * nch;
            const float *d = cv + ((ptrdiff_t)y1 * cW + x0) * nch, *e = cv + ((ptrdiff_t)y1 * cW + x1) * nch;
            for (int c = 0; c < nch; c++) {
                float up = (1 - wy) * ((1 - wx) * a[c] + wx * b[c]) + wy * ((1 - wx) * d[c] + wx * e[c]);
                fv[i * nch + c] = w * fv[i * nch + c] + (1.0f - w) * up;
            }
        }
        if (ux0) {
            ux0[y] = u0;
            ux1[y] = u1;
        }
    }
}

/* pull4's cells [xs, xe) of row y. */
static inline void pull4_span(const float *pv, const float *pwt, int ph, int pw, float *cv, float *cwt, int cw, int y,
                              int xs, int xe)
{
    int ya = 2 * y, yb = 2 * y + 1 < ph ? 2 * y + 1 : 2 * y;
    float my = 2 * y + 1 < ph ? 1.0f : 0.0f; /* the second child row exists */
    const float *wa = pwt + (ptrdiff_t)ya * pw, *wb = pwt + (ptrdiff_t)yb * pw;
    const float *va = pv + 4 * (ptrdiff_t)ya * pw, *vb = pv + 4 * (ptrdiff_t)yb * pw;
    int whole = 2 * y + 1 < ph ? pw / 2 : 0; /* the cells [0, whole) have all four children */
    for (int x = xs; x < xe; x++) {
        int xa = 2 * x, xb = 2 * x + 1 < pw ? 2 * x + 1 : 2 * x;
        ptrdiff_t o = (ptrdiff_t)y * cw + x;
        const float *p4[4] = {va + 4 * (ptrdiff_t)xa, va + 4 * (ptrdiff_t)xb, vb + 4 * (ptrdiff_t)xa,
                              vb + 4 * (ptrdiff_t)xb};
        float sw; /* the weights divided by sw, not multiplied by 1 / sw: that overflows for denormal ones */
        if (x < whole) {
            sw = sd_cell_pull_weights(cv + 4 * o, p4, wa[xa], wa[xb], wb[xa], wb[xb]);
        } else {
            float mx = 2 * x + 1 < pw ? 1.0f : 0.0f;
            sw = sd_cell_pull_weights(cv + 4 * o, p4, wa[xa], wa[xb] * mx, wb[xa] * my, wb[xb] * mx * my);
        }
        cwt[o] = sw > 1.0f ? 1.0f : sw;
    }
}

/* Level 3's cells [xs, xe) of row y, each a block left out of the pull below it (see
 * sd_fill_mask): weight 1 where its cells are seen and empty, else 0; value 0. */
static inline void pull4_uniform(const level_mask *pulled, const unsigned char *empty, float *cv, float *cwt, int cw,
                                 int y, int xs, int xe)
{
    const unsigned char *er = empty + (ptrdiff_t)y * pulled->bw;
    for (int x = xs; x < xe; x++) {
        ptrdiff_t o = (ptrdiff_t)y * cw + x;
        cwt[o] = er[x] ? 1.0f : 0.0f;
        for (int c = 0; c < 4; c++) cv[4 * o + c] = 0.0f;
    }
}

/* pull_level for 4 channels, the same steps in the same order; a cell with all four children
 * takes their weights straight from the two child rows (pull_level's masks are 1 there, and a
 * product with 1 is the weight itself). With pulled (see sd_fill_mask), only the cells of its
 * blocks; at level 3 (empty given) the others are set from empty. */
static void pull4(const float *pv, const float *pwt, int ph, int pw, float *cv, float *cwt, int ch_, int cw,
                  level_mask pulled, const unsigned char *empty, int nt)
{
    nt = sd_threads_for(nt, (ptrdiff_t)ch_ * cw);
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < ch_; y++) {
        if (!pulled.on) {
            pull4_span(pv, pwt, ph, pw, cv, cwt, cw, y, 0, cw);
            continue;
        }
        const unsigned char *mr = pulled.on + (ptrdiff_t)(y / pulled.cells) * pulled.bw;
        int b = 0, a, e, done = 0;
        while (next_run(mr, pulled.bw, pulled.cells, &b, 0, cw, &a, &e)) {
            if (empty) pull4_uniform(&pulled, empty, cv, cwt, cw, y, done, a);
            pull4_span(pv, pwt, ph, pw, cv, cwt, cw, y, a, e);
            done = e;
        }
        if (empty) pull4_uniform(&pulled, empty, cv, cwt, cw, y, done, cw);
    }
}

static void pull_any(const float *pv, const float *pwt, int ph, int pw, float *cv, float *cwt, int ch_, int cw,
                     int nch, level_mask pulled, const unsigned char *empty, int nt)
{
    if (nch == 4) pull4(pv, pwt, ph, pw, cv, cwt, ch_, cw, pulled, empty, nt);
    else if (nch == 1) pull_level(pv, pwt, ph, pw, cv, cwt, ch_, cw, 1, nt);
    else pull_level(pv, pwt, ph, pw, cv, cwt, ch_, cw, nch, nt);
}

/* push4's cells [xs, xe) of a row: u0/u1 grown to the unknown ones. */
static inline void push4_span(float *vr, const float *wr, const float *r0, const float *r1, int cW, float wy, int xs,
                              int xe, int *u0, int *u1)
{
    for (int x = xs; x < xe; x++) {
        float w = wr[x];
        if (w >= 1.0f) continue; /* fully known: keeps its own value */
        w = w > 0.0f ? w : 0.0f;
        int x0, x1;
        float wx, up[4];
        sd_lerp_half(x, cW, &x0, &x1, &wx);
        *u0 = x < *u0 ? x : *u0;
        *u1 = x + 1;
        sd_cell_bilerp(up, r0 + 4 * x0, r0 + 4 * x1, r1 + 4 * x0, r1 + 4 * x1, wx, wy);
        sd_cell_mix(vr + 4 * x, up, w);
    }
}

/* push_level for 4 channels, the same steps in the same order, each row's cells addressed from
 * its own and its two coarse rows' starts; with a mask, only the cells of its set blocks. */
static void push4(const float *cv, int cH, int cW, float *fv, const float *fw, int fH, int fW, int *ux0, int *ux1,
                  level_mask m, int nt)
{
    nt = sd_threads_for(nt, (ptrdiff_t)fH * fW);
    SD_PARALLEL_FOR_CHUNKS(nt)
    for (int y = 0; y < fH; y++) {
        int y0, y1;
        float wy;
        sd_lerp_half(y, cH, &y0, &y1, &wy);
        const float *wr = fw + (ptrdiff_t)y * fW, *r0 = cv + 4 * (ptrdiff_t)y0 * cW, *r1 = cv + 4 * (ptrdiff_t)y1 * cW;
        float *vr = fv + 4 * (ptrdiff_t)y * fW;
        int u0 = fW, u1 = 0;
        if (!m.on) {
            push4_span(vr, wr, r0, r1, cW, wy, 0, fW, &u0, &u1);
        } else {
            const unsigned char *mr = m.on + (ptrdiff_t)(y / m.cells) * m.bw;
            int b = 0, a, e;
            while (next_run(mr, m.bw, m.cells, &b, 0, fW, &a, &e)) push4_span(vr, wr, r0, r1, cW, wy, a, e, &u0, &u1);
        }
        if (ux0) {
            ux0[y] = u0;
            ux1[y] = u1;
        }
    }
}

static void push_any(const float *cv, int cH, int cW, float *fv, const float *fw, int fH, int fW, int nch, int *ux0,
                     int *ux1, level_mask m, int nt)
{
    if (nch == 4) push4(cv, cH, cW, fv, fw, fH, fW, ux0, ux1, m, nt);
    else if (nch == 1) push_level(cv, cH, cW, fv, fw, fH, fW, 1, ux0, ux1, nt);
    else push_level(cv, cH, cW, fv, fw, fH, fW, nch, ux0, ux1, nt);
}

void sd_fill_finish(sd_fillpyr *f, const sd_fill_mask *mask, int nthreads)
{
    int nt = sd_threads(nthreads), nch = f->nch;
    if (nch != 4) mask = NULL; /* only pull4, push4 and relax4 take one */
    /* pull: each level from the one below */
    for (int k = 2; k < f->n; k++) {
        level_mask pm = pulled_of(mask, f, k);
        pull_any(f->v[k - 1], f->w[k - 1], f->H[k - 1], f->W[k - 1], f->v[k], f->w[k], f->H[k], f->W[k], nch, pm,
                 pm.on && k == 3 ? mask->empty : NULL, nt);
    }
    /* push down to level 1: own values where weighted, else the interpolated coarser level */
    for (int k = f->n - 1; k > 1; k--) {
        int fH = f->H[k - 1];
        int *ux0 = malloc(sizeof(int) * 2 * (size_t)fH), *ux1 = ux0 ? ux0 + fH : NULL;
        level_mask m = mask_of(mask, k - 1);
        push_any(f->v[k], f->H[k], f->W[k], f->v[k - 1], f->w[k - 1], fH, f->W[k - 1], nch, ux0, ux1, m, nt);
        relax(f->v[k - 1], f->w[k - 1], fH, f->W[k - 1], nch, ux0, ux1, m, nt); /* without the ranges (no memory), every cell */
        free(ux0);
    }
}

void sd_fill_build(sd_fillpyr *f, float *ws, int H, int W, int nch, const float *value, ptrdiff_t vrow,
                   const float *weight, const float *hole, ptrdiff_t mrow, const int *rx0, const int *rx1,
                   const ptrdiff_t *roff, const sd_fill_mask *mask, int nthreads)
{
    int nt = sd_threads(nthreads);
    sd_fill_layout(f, ws, H, W, nch);
    if (f->n < 2) return;
    if (hole && nch == 4) /* the render's case, in float */
        pull_premult4(value, vrow, hole, mrow, H, W, rx0, rx1, roff, f->v[1], f->w[1], f->H[1], f->W[1],
                      pulled_of(mask, f, 1), nt);
    else if (!hole && nch == 1)
        pull_weighted(value, vrow, weight, mrow, H, W, 1, f->v[1], f->w[1], f->H[1], f->W[1], nt);
    else if (!hole && nch == 4)
        pull_weighted(value, vrow, weight, mrow, H, W, 4, f->v[1], f->w[1], f->H[1], f->W[1], nt);
    else
        pull_generic(f, H, W, value, vrow, weight, hole, mrow, nt);
    sd_fill_finish(f, mask, nt);
}

void sd_fill_sample4(const sd_fillpyr *f, int x, int y, float *out)
{
    sd_fill_row r = sd_fill_row_of(f, y);
    sd_fill_row_at(&r, x, out);
}

void sd_fill_sample(const sd_fillpyr *f, int x, int y, float *out)
{
    int cH = f->H[1], cW = f->W[1], nch = f->nch;
    const float *cv = f->v[1];
    int y0, y1, x0, x1;
    float wy, wx;
    sd_lerp_cell(y, 0.5f, cH, &y0, &y1, &wy);
    sd_lerp_cell(x, 0.5f, cW, &x0, &x1, &wx);
    for (int c = 0; c < nch; c++) {
        float a = cv[((ptrdiff_t)y0 * cW + x0) * nch + c];
        float b = cv[((ptrdiff_t)y0 * cW + x1) * nch + c];
        float d = cv[((ptrdiff_t)y1 * cW + x0) * nch + c];
        float e = cv[((ptrdiff_t)y1 * cW + x1) * nch + c];
        out[c] = (1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * d + wx * e);
    }
}

sd_status sd_pushpull(int H, int W, int nch, const float *value, const float *weight, float *out,
                      int nthreads)
{
    if (H < 1 || W < 1 || nch < 1 || nch > 64) return SD_ERR_ARG;
    if (H == 1 && W == 1) { /* a single pixel: nothing to fill from but itself */
        for (int c = 0; c < nch; c++) out[c] = weight[0] > 0.0f ? value[c] : 0.0f;
        return SD_OK;
    }
    int nt = sd_threads(nthreads);
    float *ws = malloc(sizeof(float) * sd_fill_ws_floats(H, W, nch));
    if (!ws) return SD_ERR_NOMEM;
    sd_fillpyr f;
    sd_fill_build(&f, ws, H, W, nch, value, (ptrdiff_t)W * nch, weight, NULL, W, NULL, NULL, NULL, NULL, nt);
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float up[64];
            sd_fill_sample(&f, x, y, up);
            ptrdiff_t i = (ptrdiff_t)y * W + x;
            float w = weight[i];
            w = w > 1.0f ? 1.0f : (w > 0.0f ? w : 0.0f);
            for (int c = 0; c < nch; c++) out[i * nch + c] = w * value[i * nch + c] + (1.0f - w) * up[c];
        }
    free(ws);
    return SD_OK;
}
