/* Entries stage, the input of the layered render: what every pixel shows, split by surface.
 *
 * A pixel on the subject's silhouette (hair, a soft edge) shows two surfaces at once: the matte
 * says I = a F + (1 - a) O. Blurring it with one CoC would either smear the subject into the
 * background or drag the background's light onto the subject, so it becomes two entries: the
 * subject part a F at the subject's CoC and the rest (1 - a) O at the surroundings' CoC. Depth
 * maps blur across the silhouette too, so neither CoC is read at the pixel itself: the subject's
 * is continued from its confident interior and the surroundings' colour and CoC from the
 * confident outside (push-pull fills, sd_fill.c); near isolated highlights (lights) the rest
 * takes no more of the continued colour than the pixel shows, so a light beside the edge is not
 * continued under it (bound_rest). A pixel on a depth edge without a matte (a
 * light in front of a wall) is split by its colours instead (depth-edge unmixing, sd_unmix.c).
 *
 * The fills run on a box around the fractional pixels, not on the whole frame (see
 * ENTRY_FILL_MARGIN_PX). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_entries.h"
#include "sd_fill.h"
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_unmix.h"
#include "sd_util.h"

/* The confident part of a matte: the first of these levels that selects any pixel (level 2:
 * any coverage at all). */
static const float CONF_LEVEL[3] = {0.95f, 0.5f, 0.0f};
#define NO_LEVEL 3
/* The fills are only read where the matte is fractional (elsewhere a part is either exactly
 * the pixel or empty), so each runs on the bounding box of the fractional pixels grown by this
 * margin instead of the whole frame: push-pull continues values from their surroundings, and
 * what lies farther away barely moves the result next to the confident pixels the fractional
 * ones sit against. The box starts on a multiple of ENTRY_FILL_ALIGN_PX so that its pyramid
 * cells up to that size are those of the whole frame: a box merely 64-aligned moved the filled
 * CoC ten times more (up to 0.4 px instead of 0.04 px on the 12 MP benchmark scene). Define
 * SD_FILL_MARGIN huge to fill the whole frame. (The render's fill of a slice's holes has its own
 * margin and alignment, in cells of the slice: SLICE_FILL_MARGIN_CELLS in sd_layer.c.) */
#ifndef SD_FILL_MARGIN
#define SD_FILL_MARGIN 64
#endif
#define ENTRY_FILL_MARGIN_PX SD_FILL_MARGIN
#define ENTRY_FILL_ALIGN_PX 256

/* Vectorised row reductions where OpenMP's simd is available (see also sd_parallel.h). */
#ifdef _OPENMP
#define SIMD_MINMAX_COUNT(mn, mx, n) SD_PRAGMA(omp simd reduction(min : mn) reduction(max : mx) reduction(+ : n))
#else
#define SIMD_MINMAX_COUNT(mn, mx, n)
#endif

/* Rows per unit of work of the assembly pass (each keeps its extras in its own buffer). */
#define CHUNK_ROWS 32

typedef struct {
    int x0, y0, x1, y1; /* half-open; empty when x0 >= x1 */
} rect;

static inline int conf(float v, int level)
{
    return level >= 2 ? v > 0.0f : v >= CONF_LEVEL[level];
}

/* ---- the fills ---- */

static rect grow_rect(rect b, int H, int W)
{
    if (b.x0 >= b.x1) return b;
    long long m = ENTRY_FILL_MARGIN_PX;
    long long x0 = (long long)b.x0 - m, y0 = (long long)b.y0 - m;
    long long x1 = (long long)b.x1 + m, y1 = (long long)b.y1 + m;
    x0 = x0 < 0 ? 0 : x0 / ENTRY_FILL_ALIGN_PX * ENTRY_FILL_ALIGN_PX;
    y0 = y0 < 0 ? 0 : y0 / ENTRY_FILL_ALIGN_PX * ENTRY_FILL_ALIGN_PX;
    rect r = {(int)x0, (int)y0, (int)(x1 > W ? W : x1), (int)(y1 > H ? H : y1)};
    return r;
}

/* A push-pull fill of a box, sampled where it is needed (at the pixels that are not confident,
 * whose own weight is 0, the fill is the interpolation of its coarse levels). */
typedef struct {
    sd_fillpyr p;
    float *ws;
    float v0[4]; /* a box of a single pixel: its own value, if it has weight */
    int w0;
    int own_ws;  /* ws was allocated by run_fill (else it is part of the caller's block) */
} boxfill;

/* Frees what run_fill allocated for b. */
static void boxfill_free(boxfill *b)
{
    if (b->own_ws) sd_big_free(b->ws);
    b->ws = NULL;
    b->own_ws = 0;
}

/* The fill at pixel (x, y) of the box: nch values. */
static inline void boxfill_at(const boxfill *b, int nch, int x, int y, float *out)
{
    if (b->p.n < 2) {
        for (int c = 0; c < nch; c++) out[c] = b->w0 ? b->v0[c] : 0.0f;
        return;
    }
    if (nch == 4) sd_fill_sample4(&b->p, x, y, out);
    else sd_fill_sample(&b->p, x, y, out);
}

/* The surroundings' fill continues the surface behind the subject's soft edge; a light beside
 * the edge is no part of that surface. A level-1 cell of the surroundings' fill brighter than
 * REST_HIGHLIGHT_OVER_MEAN times the mean of the cells around it (the 3 x 3 blocks of
 * REST_HIGHLIGHT_BLOCK x REST_HIGHLIGHT_BLOCK cells around its own, about 48 px) is an isolated
 * highlight. Fractional pixels within REST_LIT_REACH blocks of one get their rest bounded by
 * two more fills around them (bounding_fills, bound_rest). */
#define REST_HIGHLIGHT_OVER_MEAN 4.0f
#define REST_HIGHLIGHT_BLOCK 8
#define REST_LIT_REACH 2

/* Blocks of a fill's level 1 (2 REST_HIGHLIGHT_BLOCK frame pixels a side, from the fill box's
 * origin) within REST_LIT_REACH blocks of an isolated highlight. */
typedef struct {
    int bh, bw;
    unsigned char *near; /* NULL: no highlight anywhere */
} lit_blocks;

/* Finds the isolated highlights of level 1 of fp (weights 0 or 1). With drop, they get no
 * weight (the fill without them); with lb, the blocks near them are marked there. Returns 0 on
 * OOM. */
static int find_highlights(sd_fillpyr *fp, int drop, lit_blocks *lb)
{
    const int h1 = fp->H[1], w1 = fp->W[1], B = REST_HIGHLIGHT_BLOCK, D = REST_LIT_REACH;
    const int bh = (h1 + B - 1) / B, bw = (w1 + B - 1) / B;
    const size_t nb = (size_t)bh * (size_t)bw;
    double *sum = calloc(nb * 4, sizeof(double));
    unsigned char *lit = calloc(nb, 1);
    if (!sum || !lit) {
        free(sum); free(lit);
        return 0;
    }
    double *cnt = sum + nb, *sum3 = cnt + nb, *cnt3 = sum3 + nb; /* per block, and over the 3 x 3 around it */
    const float *v = fp->v[1];
    float *w = fp->w[1];
    for (int y = 0; y < h1; y++)
        for (int x = 0; x < w1; x++) {
            ptrdiff_t o = (ptrdiff_t)y * w1 + x, b = (ptrdiff_t)(y / B) * bw + x / B;
            if (!(w[o] > 0.0f)) continue;
            sum[b] += (double)v[4 * o] + v[4 * o + 1] + v[4 * o + 2];
            cnt[b] += 1.0;
        }
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            double s = 0.0, c = 0.0;
            for (int j = imax(by - 1, 0); j <= imin(by + 1, bh - 1); j++)
                for (int i = imax(bx - 1, 0); i <= imin(bx + 1, bw - 1); i++) {
                    s += sum[(ptrdiff_t)j * bw + i];
                    c += cnt[(ptrdiff_t)j * bw + i];
                }
            sum3[(ptrdiff_t)by * bw + bx] = s;
            cnt3[(ptrdiff_t)by * bw + bx] = c;
        }
    int any = 0;
    for (int y = 0; y < h1; y++) {
        for (int x = 0; x < w1; x++) {
            ptrdiff_t o = (ptrdiff_t)y * w1 + x, b = (ptrdiff_t)(y / B) * bw + x / B;
            float lum = v[4 * o] + v[4 * o + 1] + v[4 * o + 2];
            if (!(w[o] > 0.0f) || !(lum > 0.0f)) continue;
            if (!((double)lum * cnt3[b] > REST_HIGHLIGHT_OVER_MEAN * sum3[b])) continue;
            lit[b] = 1;
            any = 1;
            if (drop) w[o] = 0.0f;
        }
    }
    free(sum);
    if (lb) {
        lb->bh = bh;
        lb->bw = bw;
        lb->near = NULL;
    }
    if (!lb || !any) {
        free(lit);
        return 1;
    }
    unsigned char *near = calloc(nb, 1);
    if (!near) {
        free(lit);
        return 0;
    }
    for (int j = 0; j < bh; j++)
        for (int i = 0; i < bw; i++)
            if (lit[(ptrdiff_t)j * bw + i])
                for (int jj = imax(j - D, 0); jj <= imin(j + D, bh - 1); jj++)
                    for (int ii = imax(i - D, 0); ii <= imin(i + D, bw - 1); ii++) near[(ptrdiff_t)jj * bw + ii] = 1;
    free(lit);
    lb->near = near;
    return 1;
}

/* Push-pull fill over rectangle *r of the CoC (nch 1) or of colour + CoC (nch 4) from where the
 * part (subject, or the rest: 1 - matte) is confident at `level`. Its first level is pulled
 * straight from the frame (no copy of the box's input). If r holds no confident pixel at all,
 * the fill runs on the whole frame (*r updated), or, without whole_if_none, none is made (ws
 * NULL). For the surroundings (nch 4), `drop` leaves out their isolated highlights and `lb` (or
 * NULL) gets the blocks near them (find_highlights). The workspace is `ws` (at least
 * sd_fill_ws_floats of r and nch; only without whole_if_none) or, when ws is NULL, the pooled
 * scratch (sd_alloc.h): a fill's workspace is as large as a third of its box's frame, and
 * memory freed to the C library would be fresh pages again on the next call. */
/* What run_fill's level 1 reads: the box rr (ch x cw) of frame f, and the confidence test of
 * matte value m (a = off + sg m: a, or 1 - a exactly; confident from t, or above 0 at level 2). */
typedef struct {
    const sd_frame *f;
    rect rr;
    int ch, cw, level;
    float t, sg, off;
} level1_box;

/* Row y of run_fill's level 1 (w1 cells, nch = 1 or 4 channels: the CoC, or colour and CoC): the
 * mean of the confident pixels of each 2 x 2 block, summed in double in the order (0, 0), (1, 0),
 * (0, 1), (1, 1), and weight 1 where there is one (0 elsewhere). Returns whether the row has any. */
static inline int level1_row(const level1_box *L, int y, int w1, int nch, float *wrow, float *vrow)
{
    const sd_frame *f = L->f;
    const int ny = 2 * y + 1 < L->ch ? 2 : 1;
    int any = 0;
    for (int x = 0; x < w1; x++) {
        const int nx = 2 * x + 1 < L->cw ? 2 : 1;
        double sv[4] = {0, 0, 0, 0};
        int n = 0;
        for (int dy = 0; dy < ny; dy++)
            for (int dx = 0; dx < nx; dx++) {
                int yy = 2 * y + dy + L->rr.y0, xx = 2 * x + dx + L->rr.x0;
                ptrdiff_t i = (ptrdiff_t)yy * f->W + xx;
                float a = L->off + L->sg * f->matte[i];
                if (!(L->level < 2 ? a >= L->t : a > 0.0f)) continue;
                n++;
                if (nch == 1) {
                    sv[0] += f->coc[i];
                } else {
                    const float *p = sd_frame_px(f, yy, xx);
                    sv[0] += p[0]; sv[1] += p[1]; sv[2] += p[2]; sv[3] += f->coc[i];
                }
            }
        wrow[x] = n > 0 ? 1.0f : 0.0f;
        for (int c = 0; c < nch; c++) vrow[(ptrdiff_t)x * nch + c] = n > 0 ? (float)(sv[c] / n) : 0.0f;
        any |= n > 0;
    }
    return any;
}

static sd_status run_fill(const sd_frame *f, rect *r, int nch, int subject, int level, boxfill *out, int drop,
                          lit_blocks *lb, int whole_if_none, float *ws)
{
    memset(out, 0, sizeof *out);
    const float t = CONF_LEVEL[level < 2 ? level : 1];
    const float sg = subject ? 1.0f : -1.0f, off = subject ? 0.0f : 1.0f;
    for (;;) {
        const rect rr = *r;
        const int cw = rr.x1 - rr.x0, ch = rr.y1 - rr.y0;
        if (cw == 1 && ch == 1) { /* nothing to fill from but the pixel itself */
            float a = off + sg * f->matte[(ptrdiff_t)rr.y0 * f->W + rr.x0];
            const float *p = sd_frame_px(f, rr.y0, rr.x0);
            float c = f->coc[(ptrdiff_t)rr.y0 * f->W + rr.x0];
            out->p.n = 1;
            out->w0 = level < 2 ? a >= t : a > 0.0f;
            if (nch == 1) out->v0[0] = c;
            else { out->v0[0] = p[0]; out->v0[1] = p[1]; out->v0[2] = p[2]; out->v0[3] = c; }
            if (out->w0) return SD_OK;
            if (whole_if_none && (cw < f->W || ch < f->H)) {
                r->x0 = 0; r->y0 = 0; r->x1 = f->W; r->y1 = f->H;
                continue;
            }
            return SD_OK;
        }
        out->ws = ws ? ws : sd_big_alloc(sd_fill_ws_floats(ch, cw, nch), sizeof(float), f->nt);
        if (!out->ws) return SD_ERR_NOMEM;
        out->own_ws = !ws;
        sd_fillpyr *fp = &out->p;
        sd_fill_layout(fp, out->ws, ch, cw, nch);
        const int h1 = fp->H[1], w1 = fp->W[1];
        unsigned char *rowany = malloc((size_t)h1);
        if (!rowany) {
            boxfill_free(out);
            return SD_ERR_NOMEM;
        }
        /* level 1: means over the confident pixels of each 2 x 2 block of the box (weights 0/1) */
        const level1_box L1 = {f, rr, ch, cw, level, t, sg, off};
        SD_PARALLEL_FOR(f->nt)
        for (int y = 0; y < h1; y++) {
            float *wrow = fp->w[1] + (ptrdiff_t)y * w1, *vrow = fp->v[1] + (ptrdiff_t)y * w1 * nch;
            rowany[y] = (unsigned char)(nch == 1 ? level1_row(&L1, y, w1, 1, wrow, vrow)
                                                 : level1_row(&L1, y, w1, 4, wrow, vrow));
        }
        int any = 0;
        for (int y = 0; y < h1; y++) any |= rowany[y];
        free(rowany);
        if (!any && !whole_if_none) { /* the caller does without */
            boxfill_free(out);
            memset(out, 0, sizeof *out);
            return SD_OK;
        }
        if (!any && (cw < f->W || ch < f->H)) {
            /* nothing confident near the pixels that need it: continue from the whole frame */
            boxfill_free(out);
            r->x0 = 0; r->y0 = 0; r->x1 = f->W; r->y1 = f->H;
            continue;
        }
        if ((drop || lb) && !find_highlights(fp, drop, lb)) return SD_ERR_NOMEM; /* the caller frees out */
        sd_fill_finish(fp, NULL, f->nt);
        return SD_OK;
    }
}

/* Levels of the two confident maps (NO_LEVEL: nothing has coverage) and the box of the
 * fractional pixels, the only ones whose parts read a fill. */
static sd_status scan_matte(const sd_frame *f, int *lev_s, int *lev_o, rect *frac)
{
    const int H = f->H, W = f->W;
    unsigned char *flags = malloc((size_t)H);
    int *xr = malloc(sizeof(int) * 2 * (size_t)H);
    if (!flags || !xr) {
        free(flags); free(xr);
        return SD_ERR_NOMEM;
    }
    SD_PARALLEL_FOR(f->nt)
    for (int y = 0; y < H; y++) {
        const float *m = f->matte + (ptrdiff_t)y * W;
        float mn = m[0], mx = m[0];
        int nf = 0;
        SIMD_MINMAX_COUNT(mn, mx, nf)
        for (int x = 0; x < W; x++) {
            float a = m[x];
            mn = a < mn ? a : mn;
            mx = a > mx ? a : mx;
            nf += (a > 0.0f) & (a < 1.0f);
        }
        /* 1 - a falls as a grows: the rest is largest where the matte is smallest */
        float omx = 1.0f - mn;
        flags[y] = (unsigned char)((mx >= CONF_LEVEL[0]) | (mx >= CONF_LEVEL[1]) << 1 | (mx > 0.0f) << 2 |
                                   (omx >= CONF_LEVEL[0]) << 3 | (omx >= CONF_LEVEL[1]) << 4 | (omx > 0.0f) << 5);
        int x0 = 0, x1 = W - 1;
        if (nf) {
            while (!(m[x0] > 0.0f && m[x0] < 1.0f)) x0++;
            while (!(m[x1] > 0.0f && m[x1] < 1.0f)) x1--;
        } else {
            x0 = W; x1 = -1;
        }
        xr[2 * y] = x0;
        xr[2 * y + 1] = x1;
    }
    unsigned fl = 0;
    rect b = {W, H, 0, 0};
    for (int y = 0; y < H; y++) {
        fl |= flags[y];
        if (xr[2 * y + 1] < xr[2 * y]) continue;
        if (xr[2 * y] < b.x0) b.x0 = xr[2 * y];
        if (xr[2 * y + 1] + 1 > b.x1) b.x1 = xr[2 * y + 1] + 1;
        if (y < b.y0) b.y0 = y;
        b.y1 = y + 1;
    }
    free(flags); free(xr);
    *lev_s = fl & 1 ? 0 : (fl & 2 ? 1 : (fl & 4 ? 2 : NO_LEVEL));
    *lev_o = fl & 8 ? 0 : (fl & 16 ? 1 : (fl & 32 ? 2 : NO_LEVEL));
    rect none = {0, 0, 0, 0};
    *frac = b.x0 < b.x1 ? b : none;
    return SD_OK;
}

/* ---- assembly ---- */

typedef struct {
    int *x;
    float *rgba, *coc;
    ptrdiff_t n, cap;
    int err;         /* out of memory */
    int miss_s;      /* a subject CoC was needed outside the subject fill's box */
    int miss_o;      /* a surroundings' value was needed outside the other fill's box */
} xbuf;

static int push_extra(xbuf *b, int x, const float q[4], float c)
{
    if (b->n == b->cap) {
        ptrdiff_t cap = b->cap ? 2 * b->cap : 1024;
        int *nx = realloc(b->x, sizeof(int) * (size_t)cap);
        if (!nx) return 0;
        b->x = nx;
        float *nr = realloc(b->rgba, sizeof(float) * 4 * (size_t)cap);
        if (!nr) return 0;
        b->rgba = nr;
        float *nc = realloc(b->coc, sizeof(float) * (size_t)cap);
        if (!nc) return 0;
        b->coc = nc;
        b->cap = cap;
    }
    b->x[b->n] = x;
    memcpy(b->rgba + 4 * b->n, q, 4 * sizeof(float));
    b->coc[b->n] = c;
    b->n++;
    return 1;
}

/* The fills that bound the rest of the fractional pixels near highlights in one tile of the
 * frame: the surroundings without the highlights over rb, the subject's colour + CoC over rc
 * (ws NULL: none; see bound_rest). */
typedef struct {
    rect rb, rc;
    boxfill robust, subject;
} bound_tile;

typedef struct {
    const sd_frame *f;
    int lev_s, lev_o;     /* confident levels of the subject and of the rest (NO_LEVEL: none) */
    rect rs, ro;          /* boxes of the two fills */
    boxfill fs, fo;       /* their results: subject CoC; surroundings' colour + CoC */
    lit_blocks lit;       /* fo's blocks near isolated highlights */
    bound_tile *tiles;    /* the fills that bound the rest near them, per BOUND_TILE_PX tile ... */
    float *tiles_ws;      /* ... their workspaces, one block */
    int *tile_of;         /* ... tiles_y x tiles_x: the tile's index in tiles, -1 for none */
    int tiles_y, tiles_x, ntiles;
    sd_entries *e;
    ptrdiff_t *rowcnt;    /* H: extras per row */
    int unmix;            /* the frame is large enough to look for depth edges */
} build_ctx;

/* Whether pixel (x, y) of the surroundings' fill box lies in a block near a highlight. */
static inline int near_lit(const build_ctx *B, int x, int y)
{
    const int S = 2 * REST_HIGHLIGHT_BLOCK;
    if (!B->lit.near || x < B->ro.x0 || y < B->ro.y0) return 0;
    int by = (y - B->ro.y0) / S, bx = (x - B->ro.x0) / S;
    return by < B->lit.bh && bx < B->lit.bw && B->lit.near[(ptrdiff_t)by * B->lit.bw + bx];
}

/* The bounding fills run per tile of BOUND_TILE_PX x BOUND_TILE_PX frame pixels holding
 * fractional pixels near highlights, over those pixels' box grown by BOUND_MARGIN_PX (its origin
 * a multiple of BOUND_MARGIN_PX): lights lie scattered, so one box around all of them would
 * fill most of the subject's. */
#define BOUND_TILE_PX 128
#define BOUND_MARGIN_PX 64

/* The two fills that bound the rest of the fractional pixels near highlights: the surroundings
 * without their isolated highlights, and the subject's colour continued from its confident
 * interior, per tile. */
static sd_status bounding_fills(build_ctx *B)
{
    const sd_frame *f = B->f;
    const int T = BOUND_TILE_PX, M = BOUND_MARGIN_PX;
    const int ty = (f->H + T - 1) / T, tx = (f->W + T - 1) / T;
    rect *need = malloc(sizeof(rect) * (size_t)ty * (size_t)tx);
    B->tile_of = malloc(sizeof(int) * (size_t)ty * (size_t)tx);
    if (!need || !B->tile_of) {
        free(need);
        return SD_ERR_NOMEM;
    }
    B->tiles_y = ty;
    B->tiles_x = tx;
    for (int i = 0; i < ty * tx; i++) {
        need[i] = (rect){f->W, f->H, 0, 0};
        B->tile_of[i] = -1;
    }
    int n = 0;
    for (int y = B->ro.y0; y < B->ro.y1; y++) {
        const float *m = f->matte + (ptrdiff_t)y * f->W;
        for (int x = B->ro.x0; x < B->ro.x1; x++) {
            float a = m[x];
            if (!(a > 0.0f && a < 1.0f) || conf(1.0f - a, B->lev_o) || !near_lit(B, x, y)) continue;
            int t = (y / T) * tx + x / T;
            if (B->tile_of[t] < 0) B->tile_of[t] = n++;
            need[t].x0 = imin(need[t].x0, x);
            need[t].x1 = imax(need[t].x1, x + 1);
            need[t].y0 = imin(need[t].y0, y);
            need[t].y1 = imax(need[t].y1, y + 1);
        }
    }
    B->tiles = n ? calloc((size_t)n, sizeof(bound_tile)) : NULL;
    if (n && !B->tiles) {
        free(need);
        return SD_ERR_NOMEM;
    }
    B->ntiles = n;
    /* every tile's two workspaces in one block of the pooled scratch */
    const int nfill = B->lev_s != NO_LEVEL ? 2 : 1;
    size_t total = 0;
    for (int t = 0; t < ty * tx; t++) {
        if (B->tile_of[t] < 0) continue;
        bound_tile *bt = &B->tiles[B->tile_of[t]];
        rect g = {imax(need[t].x0 - M, 0) / M * M, imax(need[t].y0 - M, 0) / M * M, imin(need[t].x1 + M, f->W),
                  imin(need[t].y1 + M, f->H)};
        bt->rb = bt->rc = g;
        total += (size_t)nfill * sd_fill_ws_floats(g.y1 - g.y0, g.x1 - g.x0, 4);
    }
    free(need);
    B->tiles_ws = n ? sd_big_alloc(total, sizeof(float), f->nt) : NULL;
    if (n && !B->tiles_ws) return SD_ERR_NOMEM;
    sd_status st = SD_OK;
    float *ws = B->tiles_ws;
    for (int i = 0; i < n && st == SD_OK; i++) {
        bound_tile *bt = &B->tiles[i];
        size_t fl = sd_fill_ws_floats(bt->rb.y1 - bt->rb.y0, bt->rb.x1 - bt->rb.x0, 4);
        st = run_fill(f, &bt->rb, 4, 0, B->lev_o, &bt->robust, 1, NULL, 0, ws);
        if (st == SD_OK && nfill == 2) st = run_fill(f, &bt->rc, 4, 1, B->lev_s, &bt->subject, 0, NULL, 0, ws + fl);
        ws += (size_t)nfill * fl;
    }
    return st;
}

/* Near isolated highlights, a fractional pixel's rest takes from the surroundings' fill only
 * what the pixel's colour leaves beside the subject's (continued from its confident interior),
 * and at least what the fill without the highlights gives: a light behind a soft edge shows in
 * the pixel and stays in the rest; a light beside the edge does not, and is not continued under
 * it (the rest would take the subject's light and spread it with the background's blur: a glow
 * along the edge). o (the surroundings' colour from the fill) is updated in place. */
static void bound_rest(const build_ctx *B, int x, int y, const float *p, float a, float *o)
{
    if (!B->tile_of) return;
    int t = B->tile_of[(y / BOUND_TILE_PX) * B->tiles_x + x / BOUND_TILE_PX];
    if (t < 0 || !B->tiles[t].robust.ws) return;
    const bound_tile *bt = &B->tiles[t];
    float rob[4], subj[4] = {0, 0, 0, 0};
    boxfill_at(&bt->robust, 4, x - bt->rb.x0, y - bt->rb.y0, rob);
    if (bt->subject.ws) boxfill_at(&bt->subject, 4, x - bt->rc.x0, y - bt->rc.y0, subj);
    float oma = 1.0f - a;
    for (int k = 0; k < 3; k++) {
        float seen = (p[k] - a * subj[k]) / oma; /* the surroundings' colour the pixel implies */
        float v = o[k] < seen ? o[k] : seen;
        o[k] = v > rob[k] ? v : rob[k];
    }
}

/* One row: main entries into e, extras into b. */
static int build_row(const build_ctx *B, int y, xbuf *b, float *vmn, float *vmx, unsigned char *cand,
                     sd_unmixed *U)
{
    const sd_frame *f = B->f;
    const int W = f->W;
    const float *crow = f->coc + (ptrdiff_t)y * W;
    const float *mrow = f->matte ? f->matte + (ptrdiff_t)y * W : NULL;
    float *ococ = B->e->coc + (ptrdiff_t)y * W;
    const float *prow = f->img.data + (ptrdiff_t)y * f->img.row;
    const ptrdiff_t pix = f->img.pix;
    ptrdiff_t n0 = b->n;
    int nu = B->unmix ? sd_unmix_row(B->f, y, vmn, vmx, cand, U) : 0, ui = 0;
    const int in_s = y >= B->rs.y0 && y < B->rs.y1, in_o = y >= B->ro.y0 && y < B->ro.y1;
    const float zero[3] = {0.0f, 0.0f, 0.0f};
    for (int x = 0; x < W; x++) {
        const float *p = prow + (ptrdiff_t)x * pix;
        float o[4]; /* the main entry */
        float c = crow[x];
        float a = mrow ? mrow[x] : 0.0f;
        if (a == 0.0f || (a == 1.0f && p[0] >= 0.0f && p[1] >= 0.0f && p[2] >= 0.0f)) {
            /* no subject: the pixel is all rest, as it is (and stays implicit, without reading
             * its colour, unless it sits on a depth edge); all subject (confident at any level)
             * without negative light: the split below would give the subject the pixel as it
             * is, at the pixel's own CoC, and the rest nothing, whatever the surroundings' fill */
            ococ[x] = c;
            if (!(ui < nu && U[ui].x == x)) continue;
            o[0] = p[0]; o[1] = p[1]; o[2] = p[2]; o[3] = 1.0f;
        } else {
            float oma = 1.0f - a;
            /* the subject's CoC, continued from its confident interior */
            float c_subj = c;
            int miss_s = 0;
            if (!conf(a, B->lev_s)) {
                if (in_s && x >= B->rs.x0 && x < B->rs.x1) boxfill_at(&B->fs, 1, x - B->rs.x0, y - B->rs.y0, &c_subj);
                else miss_s = 1;
            }
            /* the surroundings' colour and CoC, continued from the confident outside (with no
             * rest left to be confident, the surroundings lie at the subject's CoC) */
            const float *oth = p;
            float c_rest = c, fill_o[4];
            int miss_o = 0;
            if (B->lev_o == NO_LEVEL) {
                oth = zero;
                c_rest = c_subj;
            } else if (!conf(oma, B->lev_o)) {
                if (in_o && x >= B->ro.x0 && x < B->ro.x1) {
                    boxfill_at(&B->fo, 4, x - B->ro.x0, y - B->ro.y0, fill_o);
                    oth = fill_o;
                    c_rest = oth[3];
                    if (B->ntiles && near_lit(B, x, y)) bound_rest(B, x, y, p, a, fill_o);
                } else {
                    oth = p; /* only read times oma == 0, else it is a miss */
                    miss_o = 1;
                }
            }
            float subj[4], rest[4];
            sd_split_parts(p, oma, oth, subj, rest);
            subj[3] = a;
            rest[3] = oma;
            if (miss_s && sd_nonzero4(subj)) b->miss_s = 1;
            if (miss_o && (oma != 0.0f || sd_nonzero4(rest))) b->miss_o = 1;
            const float *mq = subj, *xq = rest;
            float mc = c_subj, xc = c_rest;
            if (a < 0.5f) {
                mq = rest; xq = subj;
                mc = c_rest; xc = c_subj;
            }
            memcpy(o, mq, 4 * sizeof(float));
            ococ[x] = mc;
            if (sd_nonzero4(xq) && !push_extra(b, x, xq, xc)) return 0;
        }
        if (ui < nu && U[ui].x == x) {
            /* a depth edge: only fully covered rest pixels, whose main entry is the rest */
            const sd_unmixed *u = &U[ui++];
            /* b is a share of the pixel; the rest covers only 1 - a of it (at least 0.999) */
            double bm = u->b, sc = bm > (double)o[3] ? (double)o[3] / bm : 1.0;
            float q[4];
            for (int k = 0; k < 3; k++) {
                double mv = u->move[k] * sc;
                o[k] = (float)((double)o[k] - mv);
                q[k] = (float)mv;
            }
            o[3] = (float)((double)o[3] - bm * sc);
            q[3] = (float)(bm * sc);
            if (!push_extra(b, x, q, u->c)) return 0;
        }
        /* the pixel as it is stays implicit; anything else becomes an extra like the others */
        if (o[0] == p[0] && o[1] == p[1] && o[2] == p[2] && o[3] == 1.0f) continue;
        float mc = ococ[x];
        ococ[x] = NAN;
        if (sd_nonzero4(o) && !push_extra(b, x, o, mc)) return 0;
    }
    B->rowcnt[y] = b->n - n0;
    return 1;
}

void sd_entries_free(sd_entries *e)
{
    if (!e) return;
    sd_big_free(e->coc); free(e->row_start); sd_big_free(e->x); sd_big_free(e->xrgba); sd_big_free(e->xcoc);
    memset(e, 0, sizeof *e);
}

/* One attempt: full_s / full_o run that fill on the whole frame; *retry_s / *retry_o report a
 * part that needed a fill outside its box (e is then left empty). */
static sd_status build(const sd_frame *f0, int full_s, int full_o, sd_entries *e, int *retry_s, int *retry_o)
{
    sd_frame fr = *f0;
    const sd_frame *f = &fr;
    const int H = f->H, W = f->W;
    build_ctx B;
    memset(&B, 0, sizeof B);
    B.f = f;
    B.e = e;
    B.lev_s = B.lev_o = NO_LEVEL;
    B.unmix = H >= 3 && W >= 3;
    sd_status st = SD_OK;
    const rect whole = {0, 0, W, H};
    rect frac = {0, 0, 0, 0};
    if (f->matte) {
        st = scan_matte(f, &B.lev_s, &B.lev_o, &frac);
        if (st != SD_OK) return st;
        if (B.lev_s == NO_LEVEL) fr.matte = NULL; /* no coverage anywhere: no subject */
    }
    size_t npix = (size_t)H * (size_t)W;
    e->H = H;
    e->W = W;
    e->img = f->img;
    e->coc = sd_big_alloc(npix, sizeof(float), f->nt); /* build_row writes every pixel */
    e->row_start = malloc(sizeof(ptrdiff_t) * ((size_t)H + 1));
    int nchunk = (H + CHUNK_ROWS - 1) / CHUNK_ROWS;
    xbuf *xb = calloc((size_t)nchunk, sizeof(xbuf));
    if (!e->coc || !e->row_start || !xb) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    if (f->matte) {
        /* At level 2 every part with coverage is confident: nothing fractional needs a fill.
         * The fills stage their inputs in the output arrays, written only afterwards. */
        const rect none = {0, 0, 0, 0};
        B.rs = full_s ? whole : B.lev_s >= 2 ? none : grow_rect(frac, H, W);
        B.ro = full_o ? whole : B.lev_o >= 2 ? none : grow_rect(frac, H, W);
        if (B.rs.x0 < B.rs.x1) st = run_fill(f, &B.rs, 1, 1, B.lev_s, &B.fs, 0, NULL, 1, NULL);
        if (st == SD_OK && B.ro.x0 < B.ro.x1) st = run_fill(f, &B.ro, 4, 0, B.lev_o, &B.fo, 0, &B.lit, 1, NULL);
        if (st == SD_OK && B.lit.near) st = bounding_fills(&B);
        if (st != SD_OK) goto done;
    }
    B.rowcnt = e->row_start + 1;
    SD_PARALLEL_FOR_DYN(f->nt)
    for (int k = 0; k < nchunk; k++) {
        xbuf *b = &xb[k];
        float *vm = B.unmix ? malloc(sizeof(float) * 2 * (size_t)W) : NULL;
        unsigned char *cand = B.unmix ? malloc((size_t)W) : NULL;
        sd_unmixed *U = B.unmix ? malloc(sizeof(sd_unmixed) * (size_t)W) : NULL;
        if (B.unmix && (!vm || !cand || !U)) {
            b->err = 1;
        } else {
            int y1 = (k + 1) * CHUNK_ROWS < H ? (k + 1) * CHUNK_ROWS : H;
            for (int y = k * CHUNK_ROWS; y < y1; y++)
                if (!build_row(&B, y, b, vm, vm ? vm + W : NULL, cand, U)) {
                    b->err = 1;
                    break;
                }
        }
        free(vm);
        free(cand);
        free(U);
    }
    for (int k = 0; k < nchunk; k++) {
        if (xb[k].err) st = SD_ERR_NOMEM;
        *retry_s |= xb[k].miss_s && !full_s; /* with a whole-frame fill nothing can miss */
        *retry_o |= xb[k].miss_o && !full_o;
    }
    if (st != SD_OK || *retry_s || *retry_o) goto done;
    e->row_start[0] = 0;
    for (int y = 0; y < H; y++) e->row_start[y + 1] += e->row_start[y];
    e->n = e->row_start[H];
    size_t nx = e->n > 0 ? (size_t)e->n : 1;
    e->x = sd_big_alloc(nx, sizeof(int), f->nt);
    e->xrgba = sd_big_alloc(4 * nx, sizeof(float), f->nt);
    e->xcoc = sd_big_alloc(nx, sizeof(float), f->nt);
    if (!e->x || !e->xrgba || !e->xcoc) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    for (int k = 0; k < nchunk; k++) {
        ptrdiff_t o = e->row_start[k * CHUNK_ROWS], n = xb[k].n;
        if (n == 0) continue;
        memcpy(e->x + o, xb[k].x, sizeof(int) * (size_t)n);
        memcpy(e->xrgba + 4 * o, xb[k].rgba, sizeof(float) * 4 * (size_t)n);
        memcpy(e->xcoc + o, xb[k].coc, sizeof(float) * (size_t)n);
    }
done:
    if (xb)
        for (int k = 0; k < nchunk; k++) { free(xb[k].x); free(xb[k].rgba); free(xb[k].coc); }
    free(xb);
    boxfill_free(&B.fs);
    boxfill_free(&B.fo);
    free(B.lit.near);
    sd_big_free(B.tiles_ws);
    free(B.tiles);
    free(B.tile_of);
    if (st != SD_OK || *retry_s || *retry_o) sd_entries_free(e);
    return st;
}

sd_status sd_entries_build(int H, int W, sd_cview img, const float *coc, const float *matte, int nthreads,
                           sd_entries *e)
{
    if (!e) return SD_ERR_ARG;
    memset(e, 0, sizeof *e);
    if (H < 1 || W < 1 || !img.data || img.nch != 3 || !coc) return SD_ERR_ARG;
    if ((size_t)H * (size_t)W > SIZE_MAX / (8 * sizeof(float))) return SD_ERR_NOMEM;
    sd_frame f = {H, W, img, coc, matte, sd_threads(nthreads), {0.0f}, 0.0f, 0.0f, 0};
    sd_status st0 = sd_edge_margin(&f);
    if (st0 != SD_OK) return st0;
    int full_s = 0, full_o = 0;
    for (;;) {
        /* The boxes hold every pixel whose parts read a fill, except for negative light under a
         * fully opaque matte (a rest with no coverage but some colour, at the surroundings'
         * CoC): then that fill runs again on the whole frame. */
        int retry_s = 0, retry_o = 0;
        sd_status st = build(&f, full_s, full_o, e, &retry_s, &retry_o);
        if (st != SD_OK || (!retry_s && !retry_o)) return st;
        full_s |= retry_s;
        full_o |= retry_o;
    }
}
