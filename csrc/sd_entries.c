/* Input stage of the layered render: what every pixel shows, split by surface, and the depth
 * slices the CoC axis is cut into.
 *
 * A pixel on the subject's silhouette (hair, a soft edge) shows two surfaces at once: the matte
 * says I = a F + (1 - a) O. Blurring it with one CoC would either smear the subject into the
 * background or drag the background's light onto the subject, so it becomes two entries: the
 * subject part a F at the subject's CoC and the rest (1 - a) O at the surroundings' CoC. Depth
 * maps blur across the silhouette too, so neither CoC is read at the pixel itself: the subject's
 * is continued from its confident interior and the surroundings' colour and CoC from the
 * confident outside (push-pull fills).
 *
 * Depth maps are rarely anti-aliased either: a pixel half covered by a light in front of a wall
 * carries one of the two depths, and spread with the wrong CoC it leaves a soft rim around the
 * light's disk. Where a pixel's neighbours hold a surface whose CoC differs by more than a pixel,
 * the share of that surface is estimated from the colours (the pixel as a mix of the two sides'
 * means) and moved to an entry at that surface's CoC.
 *
 * The render cuts the CoC axis into slices and splits each entry between the two nearest
 * centres. A flat surface (a wall, a group of lights) is a sharp mode of the CoC histogram;
 * split between two slices it would be filled in and composited twice, and two surfaces at
 * nearby depths sharing one slice cannot occlude each other. So the even grid's nearest centre
 * snaps onto every strong mode.
 *
 * This is a port of the NumPy stage it replaces (_layers and _slice_centres in
 * python/synthdof/_render.py), to float tolerance, except where noted at the code: the fills run
 * on a box around the fractional pixels, and the slice modes stay within the values they
 * average. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_entries.h"
#include "sd_fill.h"
#include "sd_core.h"
#include "sd_parallel.h"

/* The confident part of a matte: the first of these levels that selects any pixel (0: any
 * coverage at all). */
static const float CONF_LEVEL[3] = {0.95f, 0.5f, 0.0f};
#define NO_LEVEL 3
/* Neighbours whose CoC differs by more than this mark a depth edge. */
#define EDGE_MARGIN_PX 1.0f
/* Only pixels the rest covers (almost) fully are unmixed: elsewhere the matte already splits. */
#define FULL_ALPHA 0.999f

/* Slices: at most SD_MAX_SLICES + 1 centres, at least MIN_SLICE_PX apart; a histogram bin
 * MODE_BIN_PX wide holding MODE_MIN_SHARE of the coverage (and MODE_MIN_PIXELS) is a mode. */
#define MIN_SLICE_PX 1.0
#define MODE_BIN_PX 0.1
#define MODE_MIN_SHARE 0.001
#define MODE_MIN_PIXELS 50.0
/* More bins than this means a CoC range far beyond any frame (the caller clamps |CoC|). */
#define MAX_MODE_BINS ((ptrdiff_t)1 << 26)

/* The fills are only read where the matte is fractional (elsewhere a part is either exactly
 * the pixel or empty), so each runs on the bounding box of the fractional pixels grown by this
 * margin instead of the whole frame: push-pull continues values from their surroundings, and
 * what lies farther away barely moves the result next to the confident pixels the fractional
 * ones sit against. The box starts on a multiple of FILL_ALIGN so that its pyramid cells up to
 * that size are those of the whole frame: a box merely 64-aligned moved the filled CoC ten times
 * more (up to 0.4 px instead of 0.04 px on the 12 MP benchmark scene). Define SD_FILL_MARGIN
 * huge to fill the whole frame. */
#ifndef SD_FILL_MARGIN
#define SD_FILL_MARGIN 64
#endif
#define FILL_ALIGN 256

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

/* The subject's premultiplied colour is what is left of the pixel once the surroundings' share
 * (1 - a) * other is taken off, kept within [0, pixel] so neither part holds negative light; the
 * rest is the remainder, so the two add up to the pixel. */
static inline void split_parts(const float *px, float oma, const float *oth, float s[3], float r[3])
{
    for (int k = 0; k < 3; k++) {
        float v = px[k];
        float t = v - oma * oth[k];
        float hi = v >= 0.0f ? v : 0.0f;
        t = t > 0.0f ? t : 0.0f;
        t = t < hi ? t : hi;
        s[k] = t;
        r[k] = v - t;
    }
}

static inline int nonzero4(const float *q)
{
    return q[0] != 0.0f || q[1] != 0.0f || q[2] != 0.0f || q[3] != 0.0f;
}

/* ---- the fills ------------------------------------------------------------------------- */

typedef struct {
    int H, W;
    sd_cview img;
    const float *coc, *matte;
    int nt;
} frame;

static inline const float *px_at(const frame *f, int y, int x)
{
    return f->img.data + (ptrdiff_t)y * f->img.row + (ptrdiff_t)x * f->img.pix;
}

/* (y, x) moved onto the frame's nearest pixel: the frame continues as its edge. */
static inline void clamp_to_frame(const frame *f, int *y, int *x)
{
    *y = *y < 0 ? 0 : (*y >= f->H ? f->H - 1 : *y);
    *x = *x < 0 ? 0 : (*x >= f->W ? f->W - 1 : *x);
}

static rect grow_rect(rect b, int H, int W)
{
    if (b.x0 >= b.x1) return b;
    long long m = SD_FILL_MARGIN;
    long long x0 = (long long)b.x0 - m, y0 = (long long)b.y0 - m;
    long long x1 = (long long)b.x1 + m, y1 = (long long)b.y1 + m;
    x0 = x0 < 0 ? 0 : x0 / FILL_ALIGN * FILL_ALIGN;
    y0 = y0 < 0 ? 0 : y0 / FILL_ALIGN * FILL_ALIGN;
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
} boxfill;

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

/* Push-pull fill over rectangle *r of the CoC (nch 1) or of colour + CoC (nch 4) from where the
 * part (subject, or the rest: 1 - matte) is confident at `level`. Its first level is pulled
 * straight from the frame (no copy of the box's input). If r holds no confident pixel at all,
 * the fill runs on the whole frame (*r updated). */
static sd_status run_fill(const frame *f, rect *r, int nch, int subject, int level, boxfill *out)
{
    memset(out, 0, sizeof *out);
    const float t = CONF_LEVEL[level < 2 ? level : 1];
    const float sg = subject ? 1.0f : -1.0f, off = subject ? 0.0f : 1.0f;
    for (;;) {
        const rect rr = *r;
        const int cw = rr.x1 - rr.x0, ch = rr.y1 - rr.y0;
        if (cw == 1 && ch == 1) { /* nothing to fill from but the pixel itself */
            float a = off + sg * f->matte[(ptrdiff_t)rr.y0 * f->W + rr.x0];
            const float *p = px_at(f, rr.y0, rr.x0);
            float c = f->coc[(ptrdiff_t)rr.y0 * f->W + rr.x0];
            out->p.n = 1;
            out->w0 = level < 2 ? a >= t : a > 0.0f;
            if (nch == 1) out->v0[0] = c;
            else { out->v0[0] = p[0]; out->v0[1] = p[1]; out->v0[2] = p[2]; out->v0[3] = c; }
            if (out->w0) return SD_OK;
            if (cw < f->W || ch < f->H) { r->x0 = 0; r->y0 = 0; r->x1 = f->W; r->y1 = f->H; continue; }
            return SD_OK;
        }
        out->ws = malloc(sizeof(float) * sd_fill_ws_floats(ch, cw, nch));
        if (!out->ws) return SD_ERR_NOMEM;
        sd_fillpyr *fp = &out->p;
        sd_fill_layout(fp, out->ws, ch, cw, nch);
        const int h1 = fp->H[1], w1 = fp->W[1];
        unsigned char *rowany = malloc((size_t)h1);
        if (!rowany) {
            free(out->ws);
            out->ws = NULL;
            return SD_ERR_NOMEM;
        }
        /* level 1: means over the confident pixels of each 2 x 2 block of the box (weights 0/1) */
        SD_PARALLEL_FOR(f->nt)
        for (int y = 0; y < h1; y++) {
            int any = 0;
            for (int x = 0; x < w1; x++) {
                double sv[4] = {0, 0, 0, 0};
                int n = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int yy = 2 * y + dy, xx = 2 * x + dx;
                        if (yy >= ch || xx >= cw) continue;
                        ptrdiff_t i = (ptrdiff_t)(yy + rr.y0) * f->W + xx + rr.x0;
                        float a = off + sg * f->matte[i]; /* a, or 1 - a exactly */
                        if (!(level < 2 ? a >= t : a > 0.0f)) continue;
                        n++;
                        if (nch == 1) {
                            sv[0] += f->coc[i];
                        } else {
                            const float *p = px_at(f, yy + rr.y0, xx + rr.x0);
                            sv[0] += p[0]; sv[1] += p[1]; sv[2] += p[2]; sv[3] += f->coc[i];
                        }
                    }
                ptrdiff_t o = (ptrdiff_t)y * w1 + x;
                fp->w[1][o] = n > 0 ? 1.0f : 0.0f;
                for (int c = 0; c < nch; c++) fp->v[1][o * nch + c] = n > 0 ? (float)(sv[c] / n) : 0.0f;
                any |= n > 0;
            }
            rowany[y] = (unsigned char)any;
        }
        int any = 0;
        for (int y = 0; y < h1; y++) any |= rowany[y];
        free(rowany);
        if (!any && (cw < f->W || ch < f->H)) {
            /* nothing confident near the pixels that need it: continue from the whole frame */
            free(out->ws);
            out->ws = NULL;
            r->x0 = 0; r->y0 = 0; r->x1 = f->W; r->y1 = f->H;
            continue;
        }
        sd_fill_finish(fp, f->nt);
        return SD_OK;
    }
}

/* Levels of the two confident maps (NO_LEVEL: nothing has coverage) and the box of the
 * fractional pixels, the only ones whose parts read a fill. */
static sd_status scan_matte(const frame *f, int *lev_s, int *lev_o, rect *frac)
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

/* ---- assembly -------------------------------------------------------------------------- */

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

typedef struct {
    const frame *f;
    int lev_s, lev_o;     /* confident levels of the subject and of the rest (NO_LEVEL: none) */
    rect rs, ro;          /* boxes of the two fills */
    boxfill fs, fo;       /* their results: subject CoC; surroundings' colour + CoC */
    sd_entries *e;
    ptrdiff_t *rowcnt;    /* H: extras per row */
    int unmix;            /* the frame is large enough to look for depth edges */
} build_ctx;

/* A share moved off a depth edge: taken from the pixel's rest, given to an extra entry. */
typedef struct {
    int x;
    float c;           /* CoC of the other side */
    double move[3], b; /* colour and coverage moved */
} unmixed;

/* Whether the rest fully covers pixel (y, x), and its colour there (per unit coverage). */
static inline int rest_full(const build_ctx *B, int y, int x, float col[3])
{
    const frame *f = B->f;
    const float *p = px_at(f, y, x);
    if (!f->matte) {
        col[0] = p[0]; col[1] = p[1]; col[2] = p[2];
        return 1;
    }
    float oma = 1.0f - f->matte[(ptrdiff_t)y * f->W + x];
    if (!(oma >= FULL_ALPHA)) return 0;
    /* covered by the rest means confident outside: the surroundings there are the pixel */
    float s[3], r[3];
    split_parts(p, oma, p, s, r);
    for (int k = 0; k < 3; k++) col[k] = r[k] / oma;
    return 1;
}

/* Depth-edge unmixing of the fully covered rest pixel (y, x) with colour own and CoC c: the
 * other side is the neighbours whose CoC differs by more than the margin (nearer ones first: a
 * light, a railing), the same side the others (only those not next to the other side themselves,
 * where there are any: a light's anti-aliased rim is a ring of mixed pixels, and as its own
 * reference it would keep most of the light at the wall's CoC); I = b N + (1 - b) F gives the other side's
 * share b by projecting the colour onto the line between the two sides' means. Neighbours the
 * matte splits belong to neither side. Returns whether anything moves (b > 0); never more light
 * moves than the pixel has. A pixel with b = 0 is left alone (the NumPy version rewrote those
 * too, which moved negative light to an entry at CoC 0 whenever some other pixel had b > 0). */
static int unmix_at(const build_ctx *B, int y, int x, const float own[3], float c, unmixed *u)
{
    static const int OFF[8][2] = {{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 1}, {1, -1}, {1, 0}, {1, 1}};
    const frame *f = B->f;
    float cmin = c - EDGE_MARGIN_PX, cmax = c + EDGE_MARGIN_PX;
    float col[8][3], nbc[8];
    unsigned char kind[8]; /* 0 not fully the rest's, 1 same side, 2 nearer, 3 farther */
    int any_near = 0, any_far = 0;
    for (int k = 0; k < 8; k++) {
        int yy = y + OFF[k][0], xx = x + OFF[k][1];
        clamp_to_frame(f, &yy, &xx);
        nbc[k] = f->coc[(ptrdiff_t)yy * f->W + xx];
        if (!rest_full(B, yy, xx, col[k])) {
            kind[k] = 0;
            continue;
        }
        kind[k] = nbc[k] < cmin ? 2 : (nbc[k] > cmax ? 3 : 1);
        any_near |= kind[k] == 2;
        any_far |= kind[k] == 3;
    }
    if (!any_near && !any_far) return 0;
    int want = any_near ? 2 : 3;
    float so[3] = {0, 0, 0}, ss[3] = {0, 0, 0}, sp[3] = {0, 0, 0}, sc = 0.0f;
    int n_o = 0, n_s = 0, n_p = 0;
    for (int k = 0; k < 8; k++) {
        if (kind[k] == want) {
            for (int j = 0; j < 3; j++) so[j] += col[k][j];
            sc += nbc[k];
            n_o++;
        } else if (kind[k] == 1) {
            for (int j = 0; j < 3; j++) ss[j] += col[k][j];
            n_s++;
            /* a same-side neighbour that touches the other side itself is likely mixed too
             * (a light's rim is a ring of such pixels): the pure ones make the better reference */
            int yk = y + OFF[k][0], xk = x + OFF[k][1], touches = 0;
            for (int q = 0; q < 8 && !touches; q++) {
                int yy = yk + OFF[q][0], xx = xk + OFF[q][1];
                clamp_to_frame(f, &yy, &xx);
                float cq = f->coc[(ptrdiff_t)yy * f->W + xx];
                touches = want == 2 ? cq < cmin : cq > cmax;
            }
            if (!touches) {
                for (int j = 0; j < 3; j++) sp[j] += col[k][j];
                n_p++;
            }
        }
    }
    if (n_s == 0) return 0;
    if (n_p > 0) { /* the pure same-side neighbours, where there are any */
        for (int j = 0; j < 3; j++) ss[j] = sp[j];
        n_s = n_p;
    }
    double O[3], S[3], d[3], dd = 0.0, ao = 0.0, as = 0.0, proj = 0.0;
    for (int j = 0; j < 3; j++) {
        O[j] = (double)so[j] / n_o;
        S[j] = (double)ss[j] / n_s;
        d[j] = O[j] - S[j];
        dd += d[j] * d[j];
        ao += fabs(O[j]);
        as += fabs(S[j]);
    }
    double tol = 0.05 * (ao > as ? ao : as);
    if (!(dd > tol * tol)) return 0; /* the two sides must differ to tell their shares apart */
    for (int j = 0; j < 3; j++) proj += ((double)own[j] - S[j]) * d[j];
    double b = proj / (dd > 1e-20 ? dd : 1e-20);
    b = b < 0.0 ? 0.0 : (b > 1.0 ? 1.0 : b);
    if (!(b > 0.0)) return 0;
    for (int j = 0; j < 3; j++) {
        double m = b * O[j];
        u->move[j] = m <= (double)own[j] ? m : (double)own[j];
    }
    u->x = x;
    u->b = b;
    u->c = (float)((double)sc / n_o);
    return 1;
}

/* The depth edges of row y, in column order. vmn, vmx: scratch of W floats, cand of W bytes. */
static int find_unmixed(const build_ctx *B, int y, float *vmn, float *vmx, unsigned char *cand, unmixed *U)
{
    const frame *f = B->f;
    const int W = f->W, H = f->H;
    const float *crow = f->coc + (ptrdiff_t)y * W;
    const float *cu = f->coc + (ptrdiff_t)(y > 0 ? y - 1 : y) * W;
    const float *cd = f->coc + (ptrdiff_t)(y + 1 < H ? y + 1 : y) * W;
    /* the 3x3 CoC range, separably: a cheap test that rules out almost every pixel (it looks at
     * every neighbour, a superset of the fully covered ones that decide) */
    SD_SIMD
    for (int x = 0; x < W; x++) {
        float lo = crow[x], hi = crow[x];
        lo = cu[x] < lo ? cu[x] : lo; hi = cu[x] > hi ? cu[x] : hi;
        lo = cd[x] < lo ? cd[x] : lo; hi = cd[x] > hi ? cd[x] : hi;
        vmn[x] = lo; vmx[x] = hi;
    }
    SD_SIMD
    for (int x = 1; x < W - 1; x++) {
        float lo = vmn[x - 1] < vmn[x] ? vmn[x - 1] : vmn[x], hi = vmx[x - 1] > vmx[x] ? vmx[x - 1] : vmx[x];
        lo = vmn[x + 1] < lo ? vmn[x + 1] : lo; hi = vmx[x + 1] > hi ? vmx[x + 1] : hi;
        cand[x] = (unsigned char)((lo < crow[x] - EDGE_MARGIN_PX) | (hi > crow[x] + EDGE_MARGIN_PX));
    }
    for (int x = 0; x < W; x += W - 1) { /* the edge columns: their outside neighbour is themselves */
        int xo = x == 0 ? 1 : W - 2;
        float lo = vmn[xo] < vmn[x] ? vmn[xo] : vmn[x], hi = vmx[xo] > vmx[x] ? vmx[xo] : vmx[x];
        cand[x] = (unsigned char)((lo < crow[x] - EDGE_MARGIN_PX) | (hi > crow[x] + EDGE_MARGIN_PX));
    }
    int nu = 0;
    const unsigned char *end = cand + W;
    for (const unsigned char *q = memchr(cand, 1, (size_t)W); q; q = memchr(q + 1, 1, (size_t)(end - q - 1))) {
        int x = (int)(q - cand);
        float col[3];
        if (rest_full(B, y, x, col) && unmix_at(B, y, x, col, crow[x], &U[nu])) nu++;
    }
    return nu;
}

/* One row: main entries into e, extras into b. */
static int build_row(const build_ctx *B, int y, xbuf *b, float *vmn, float *vmx, unsigned char *cand,
                     unmixed *U)
{
    const frame *f = B->f;
    const int W = f->W;
    const float *crow = f->coc + (ptrdiff_t)y * W;
    const float *mrow = f->matte ? f->matte + (ptrdiff_t)y * W : NULL;
    float *ococ = B->e->coc + (ptrdiff_t)y * W;
    const float *prow = f->img.data + (ptrdiff_t)y * f->img.row;
    const ptrdiff_t pix = f->img.pix;
    ptrdiff_t n0 = b->n;
    int nu = B->unmix ? find_unmixed(B, y, vmn, vmx, cand, U) : 0, ui = 0;
    const int in_s = y >= B->rs.y0 && y < B->rs.y1, in_o = y >= B->ro.y0 && y < B->ro.y1;
    const float zero[3] = {0.0f, 0.0f, 0.0f};
    for (int x = 0; x < W; x++) {
        const float *p = prow + (ptrdiff_t)x * pix;
        float o[4]; /* the main entry */
        float c = crow[x];
        float a = mrow ? mrow[x] : 0.0f;
        if (a == 0.0f) {
            /* no subject: the pixel is all rest, as it is (and stays implicit, without reading
             * its colour, unless it sits on a depth edge) */
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
                } else {
                    oth = p; /* only read times oma == 0, else it is a miss */
                    miss_o = 1;
                }
            }
            float subj[4], rest[4];
            split_parts(p, oma, oth, subj, rest);
            subj[3] = a;
            rest[3] = oma;
            if (miss_s && nonzero4(subj)) b->miss_s = 1;
            if (miss_o && (oma != 0.0f || nonzero4(rest))) b->miss_o = 1;
            const float *mq = subj, *xq = rest;
            float mc = c_subj, xc = c_rest;
            if (a < 0.5f) {
                mq = rest; xq = subj;
                mc = c_rest; xc = c_subj;
            }
            memcpy(o, mq, 4 * sizeof(float));
            ococ[x] = mc;
            if (nonzero4(xq) && !push_extra(b, x, xq, xc)) return 0;
        }
        if (ui < nu && U[ui].x == x) {
            /* a depth edge: only fully covered rest pixels, whose main entry is the rest */
            const unmixed *u = &U[ui++];
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
        if (nonzero4(o) && !push_extra(b, x, o, mc)) return 0;
    }
    B->rowcnt[y] = b->n - n0;
    return 1;
}

void sd_entries_free(sd_entries *e)
{
    if (!e) return;
    sd_big_free(e->coc); free(e->row_start); free(e->x); free(e->xrgba); free(e->xcoc);
    memset(e, 0, sizeof *e);
}

/* One attempt: full_s / full_o run that fill on the whole frame; *retry_s / *retry_o report a
 * part that needed a fill outside its box (e is then left empty). */
static sd_status build(const frame *f0, int full_s, int full_o, sd_entries *e, int *retry_s, int *retry_o)
{
    frame fr = *f0;
    const frame *f = &fr;
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
        if (B.rs.x0 < B.rs.x1) st = run_fill(f, &B.rs, 1, 1, B.lev_s, &B.fs);
        if (st == SD_OK && B.ro.x0 < B.ro.x1) st = run_fill(f, &B.ro, 4, 0, B.lev_o, &B.fo);
        if (st != SD_OK) goto done;
    }
    B.rowcnt = e->row_start + 1;
    SD_PARALLEL_FOR_DYN(f->nt)
    for (int k = 0; k < nchunk; k++) {
        xbuf *b = &xb[k];
        float *vm = B.unmix ? malloc(sizeof(float) * 2 * (size_t)W) : NULL;
        unsigned char *cand = B.unmix ? malloc((size_t)W) : NULL;
        unmixed *U = B.unmix ? malloc(sizeof(unmixed) * (size_t)W) : NULL;
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
    e->x = malloc(sizeof(int) * nx);
    e->xrgba = malloc(sizeof(float) * 4 * nx);
    e->xcoc = malloc(sizeof(float) * nx);
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
    free(B.fs.ws);
    free(B.fo.ws);
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
    frame f = {H, W, img, coc, matte, sd_threads(nthreads)};
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

/* ---- slice centres --------------------------------------------------------------------- */

/* Slice centres closer than this (px) are one. */
#define MIN_CENTRE_GAP_PX 1e-3

/* Rows per chunk of the histogram pass (each chunk has its own histogram). */
#define SLICE_CHUNK_ROWS 64

/* numpy.histogram's bin of v for nb equal bins over [lo, hi] with these edges: the estimate is
 * corrected against the edges, so a value on an edge lands exactly where numpy puts it. */
static inline ptrdiff_t bin_of(double v, double lo, double scale, const double *edges, ptrdiff_t nb)
{
    double fi = (v - lo) * scale;
    ptrdiff_t k = fi <= 0.0 ? 0 : (fi >= (double)nb ? nb - 1 : (ptrdiff_t)fi);
    if (k > 0 && v < edges[k]) k--;
    if (k < nb - 1 && v >= edges[k + 1]) k++;
    return k;
}

typedef struct {
    double w;   /* coverage in the bin */
    double cw;  /* coverage-weighted CoC above the bin's lower edge */
    double ew;  /* coverage of values exactly on the bin's lower edge */
    float mn, mx;
} hbin;

typedef struct {
    ptrdiff_t i;
    double w;
} strong_bin;

static int by_weight(const void *pa, const void *pb)
{
    const strong_bin *a = pa, *b = pb;
    if (a->w != b->w) return a->w > b->w ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

static int by_value(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : (a > b);
}

/* Whether any entry with coverage has a CoC in [A, B) (closed: [A, B]), by walking every one. */
static int any_in_scan(const sd_entries *e, double A, double B, int closed)
{
    ptrdiff_t np = (ptrdiff_t)e->H * e->W;
    for (ptrdiff_t i = 0; i < np; i++) {
        double c = e->coc[i];
        if (c >= A && (c < B || (closed && c <= B))) return 1; /* a NaN (no main entry) fails */
    }
    for (ptrdiff_t i = 0; i < e->n; i++) {
        double c = e->xcoc[i];
        if (e->xrgba[4 * i + 3] > 0.0f && c >= A && (c < B || (closed && c <= B))) return 1;
    }
    return 0;
}

/* The same from the fine histogram: its bins' extreme values decide it unless both ends fall in
 * one bin that holds values on both sides of the interval. */
static int any_in(const sd_entries *e, const hbin *h, const double *edges, ptrdiff_t nb, double lo,
                  double scale, double A, double B, int closed)
{
    ptrdiff_t ka = bin_of(A, lo, scale, edges, nb), kb = bin_of(B, lo, scale, edges, nb);
#define BELOW_B(v) ((double)(v) < B || (closed && (double)(v) <= B))
    if (ka == kb) {
        const hbin *q = &h[ka];
        if (!(q->mn <= q->mx)) return 0;
        if ((double)q->mn >= A && BELOW_B(q->mn)) return 1;
        if ((double)q->mx >= A && BELOW_B(q->mx)) return 1;
        if ((double)q->mx < A || !BELOW_B(q->mn)) return 0;
        return any_in_scan(e, A, B, closed);
    }
    if (h[ka].mn <= h[ka].mx && (double)h[ka].mx >= A) return 1;
    for (ptrdiff_t k = ka + 1; k < kb; k++)
        if (h[k].mn <= h[k].mx) return 1;
    return h[kb].mn <= h[kb].mx && BELOW_B(h[kb].mn);
#undef BELOW_B
}

/* Widens [*mn, *mx] to the CoC of every entry with coverage. Blocks whose whole CoC range lies
 * inside already are skipped without reading their coverage. */
/* Range of coc[i] over the entries with coverage (rgba NULL: the main entries, NaN for none). */
static void coc_range(const float *coc, const float *rgba, ptrdiff_t n, float *pmn, float *pmx)
{
    float fmn = *pmn, fmx = *pmx;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += 256) {
        ptrdiff_t i1 = i0 + 256 < n ? i0 + 256 : n;
        float bmn = coc[i0], bmx = coc[i0];
        SD_SIMD_MINMAX(bmn, bmx)
        for (ptrdiff_t i = i0; i < i1; i++) {
            bmn = coc[i] < bmn ? coc[i] : bmn;
            bmx = coc[i] > bmx ? coc[i] : bmx;
        }
        if (bmn >= fmn && bmx <= fmx) continue;
        for (ptrdiff_t i = i0; i < i1; i++) {
            float c = coc[i];
            if ((c < fmn || c > fmx) && (!rgba || rgba[4 * i + 3] > 0.0f)) {
                if (c < fmn) fmn = c;
                if (c > fmx) fmx = c;
            }
        }
    }
    *pmn = fmn;
    *pmx = fmx;
}

/* Serial: the interface gives it no thread count, and it is two passes over the entries. A CoC
 * range beyond MAX_MODE_BINS bins is SD_ERR_VALUE. */
sd_status sd_entries_slices(const sd_entries *e, float *centres, int *n, int nthreads)
{
    if (!e || !centres || !n || e->H < 1 || e->W < 1 || !e->coc || e->n < 0 ||
        (e->n > 0 && (!e->xrgba || !e->xcoc)))
        return SD_ERR_ARG;
    const ptrdiff_t np = (ptrdiff_t)e->H * e->W;
    /* the CoC range of everything with coverage */
    float fmn = INFINITY, fmx = -INFINITY;
    coc_range(e->coc, NULL, np, &fmn, &fmx);
    if (e->n > 0) coc_range(e->xcoc, e->xrgba, e->n, &fmn, &fmx);
    if (!(fmn <= fmx)) { /* nothing covers anything */
        centres[0] = 0.0f;
        *n = 1;
        return SD_OK;
    }
    const double lo = fmn, hi = fmx;
    double span = ceil((hi - lo) / MIN_SLICE_PX);
    int ns = (int)(span < SD_MAX_SLICES ? span : SD_MAX_SLICES) + 1;
    if (hi - lo < MIN_CENTRE_GAP_PX) ns = 1; /* one surface, as far as any blur can tell */
    double asc[SD_MAX_SLICES + 1];
    /* numpy.linspace: start + k * step, the last one exactly hi */
    if (ns == 1) {
        asc[0] = lo;
    } else {
        double step = (hi - lo) / (ns - 1);
        for (int k = 0; k < ns; k++) asc[k] = k * step + lo;
        asc[ns - 1] = hi;
    }
    if (ns <= 2) {
        for (int k = 0; k < ns; k++) centres[k] = (float)asc[ns - 1 - k];
        *n = ns;
        return SD_OK;
    }
    const double step = asc[1] - asc[0];
    double nbd = ceil((hi - lo) / MODE_BIN_PX);
    if (nbd > (double)MAX_MODE_BINS) return SD_ERR_VALUE;
    const ptrdiff_t nb = nbd < 1.0 ? 1 : (ptrdiff_t)nbd;
    double *edges = malloc(sizeof(double) * (size_t)(nb + 1));
    hbin *h = malloc(sizeof(hbin) * (size_t)nb);
    if (!edges || !h) {
        free(edges); free(h);
        return SD_ERR_NOMEM;
    }
    {
        double bstep = (hi - lo) / (double)nb;
        for (ptrdiff_t k = 0; k <= nb; k++) edges[k] = (double)k * bstep + lo;
        edges[nb] = hi;
    }
    for (ptrdiff_t k = 0; k < nb; k++) h[k] = (hbin){0.0, 0.0, 0.0, INFINITY, -INFINITY};
    const double scale = (double)nb / (hi - lo);
    double total = 0.0;
    /* One pass over every entry, in fixed chunks of rows whose histograms are added up in order
     * (so the sums do not depend on the thread count); a run of equal CoC (a flat surface, a row
     * of the ground plane) is summed before it touches its bin. */
    const int H = e->H, W = e->W;
    /* at most ~32 MB of partial histograms: fewer, taller chunks for a very wide CoC range */
    ptrdiff_t maxchunks = ((ptrdiff_t)32 << 20) / ((ptrdiff_t)sizeof(hbin) * nb);
    int crows = SLICE_CHUNK_ROWS;
    if (maxchunks < 1) maxchunks = 1;
    while ((H + crows - 1) / crows > maxchunks) crows *= 2;
    const int nchunk = (H + crows - 1) / crows;
    hbin *ph = malloc(sizeof(hbin) * (size_t)nb * (size_t)nchunk);
    double *ptot = malloc(sizeof(double) * (size_t)(nchunk + 1));
    if (!ph || !ptot) {
        free(ph); free(ptot); free(edges); free(h);
        return SD_ERR_NOMEM;
    }
    SD_PARALLEL_FOR_DYN(sd_threads(nthreads))
    for (int k = 0; k <= nchunk; k++) { /* chunk nchunk: the extras */
        hbin *hk = k < nchunk ? ph + (ptrdiff_t)k * nb : h;
        if (k < nchunk)
            for (ptrdiff_t b = 0; b < nb; b++) hk[b] = (hbin){0.0, 0.0, 0.0, INFINITY, -INFINITY};
        double tk = 0.0;
        float rc = NAN;
        double rw = 0.0;
#define FLUSH_RUN()                                                                           \
    do {                                                                                      \
        if (rw > 0.0) {                                                                       \
            ptrdiff_t k_ = bin_of((double)rc, lo, scale, edges, nb);                          \
            hbin *q_ = &hk[k_];                                                               \
            q_->w += rw;                                                                      \
            q_->cw += ((double)rc - edges[k_]) * rw;                                          \
            if (k_ > 0 && (double)rc == edges[k_]) q_->ew += rw;                              \
            if (rc < q_->mn) q_->mn = rc;                                                     \
            if (rc > q_->mx) q_->mx = rc;                                                     \
            tk += rw;                                                                         \
        }                                                                                     \
    } while (0)
#define ADD_ENTRY(cf, wf)                                                                     \
    do {                                                                                      \
        float c_ = (cf), w_ = (wf);                                                           \
        if (!(w_ > 0.0f)) break;                                                              \
        if (c_ != rc) {                                                                       \
            FLUSH_RUN();                                                                      \
            rc = c_;                                                                          \
            rw = 0.0;                                                                         \
        }                                                                                     \
        rw += (double)w_;                                                                     \
    } while (0)
        if (k < nchunk) {
            ptrdiff_t i0 = (ptrdiff_t)k * crows * W;
            ptrdiff_t i1 = (ptrdiff_t)(k + 1 < nchunk ? (k + 1) * crows : H) * W;
            for (ptrdiff_t i = i0; i < i1; i++) ADD_ENTRY(e->coc[i], e->coc[i] == e->coc[i] ? 1.0f : 0.0f);
        } else {
            for (ptrdiff_t i = 0; i < e->n; i++) ADD_ENTRY(e->xcoc[i], e->xrgba[4 * i + 3]);
        }
        FLUSH_RUN();
#undef ADD_ENTRY
#undef FLUSH_RUN
        ptot[k] = tk;
    }
    for (int k = 0; k < nchunk; k++) { /* in order: the sums are the same for any thread count */
        const hbin *hk = ph + (ptrdiff_t)k * nb;
        for (ptrdiff_t b = 0; b < nb; b++) {
            if (!(hk[b].w > 0.0)) continue;
            h[b].w += hk[b].w;
            h[b].cw += hk[b].cw;
            h[b].ew += hk[b].ew;
            if (hk[b].mn < h[b].mn) h[b].mn = hk[b].mn;
            if (hk[b].mx > h[b].mx) h[b].mx = hk[b].mx;
        }
        total += ptot[k];
    }
    total += ptot[nchunk];
    free(ph);
    free(ptot);
    /* strong modes, the heaviest first; equal ones the smaller CoC first (numpy's argsort left
     * their order unspecified) */
    double thr = MODE_MIN_SHARE * total;
    if (thr < MODE_MIN_PIXELS) thr = MODE_MIN_PIXELS;
    ptrdiff_t nstrong = 0;
    for (ptrdiff_t k = 0; k < nb; k++) nstrong += h[k].w >= thr;
    strong_bin *sb = malloc(sizeof(strong_bin) * (size_t)(nstrong > 0 ? nstrong : 1));
    if (!sb) {
        free(edges); free(h);
        return SD_ERR_NOMEM;
    }
    nstrong = 0;
    for (ptrdiff_t k = 0; k < nb; k++)
        if (h[k].w >= thr) sb[nstrong++] = (strong_bin){k, h[k].w};
    qsort(sb, (size_t)nstrong, sizeof *sb, by_weight);
    unsigned char taken[SD_MAX_SLICES + 1] = {0};
    for (ptrdiff_t s = 0; s < nstrong; s++) {
        ptrdiff_t i = sb[s].i;
        /* the mean CoC over [edges[i], edges[i + 1]] (both edges count), kept within the values
         * it averages: a flat surface's mode is its CoC exactly, so no entry falls outside the
         * outermost centres by a rounding error */
        double sw = h[i].w, scw = h[i].cw, vmin = h[i].mn, vmax = h[i].mx;
        if (i + 1 < nb && h[i + 1].ew > 0.0) {
            sw += h[i + 1].ew;
            scw += (edges[i + 1] - edges[i]) * h[i + 1].ew;
            vmax = edges[i + 1];
        }
        double mode = edges[i] + scw / sw;
        mode = mode < vmin ? vmin : (mode > vmax ? vmax : mode);
        int j = 0;
        for (int k = 1; k < ns; k++)
            if (fabs(asc[k] - mode) < fabs(asc[j] - mode)) j = k;
        if (taken[j] || fabs(asc[j] - mode) > 0.5 * step) continue;
        asc[j] = mode;
        taken[j] = 1;
    }
    free(sb);
    qsort(asc, (size_t)ns, sizeof(double), by_value);
    int m = 0;
    for (int k = 0; k < ns; k++) /* centres closer than that would make slices of no width */
        if (m == 0 || asc[k] - asc[m - 1] >= MIN_CENTRE_GAP_PX) asc[m++] = asc[k];
    /* drop centres whose tent holds nothing: neither interval beside them has an entry */
    unsigned char has[SD_MAX_SLICES + 1] = {0};
    for (int j = 0; j + 1 < m; j++)
        has[j] = (unsigned char)any_in(e, h, edges, nb, lo, scale, asc[j], asc[j + 1], j + 2 == m);
    free(edges);
    free(h);
    int out = 0;
    for (int j = m - 1; j >= 0; j--) {
        int left = j > 0 && has[j - 1], right = j + 1 < m && has[j];
        if (left || right) centres[out++] = (float)asc[j];
    }
    if (out == 0) centres[out++] = (float)asc[0]; /* cannot happen: lo itself is an entry */
    *n = out;
    return SD_OK;
}
