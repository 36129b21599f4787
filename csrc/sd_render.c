/* Depth-ordered layered compositing of scattered slices (see sd_render in sd_core.h).
 *
 * The CoC axis is cut into slices; every entry (sd_entries.h) is split linearly between the two
 * slice centres around its CoC. Near to far, each slice gathers its content, fills in what nearer
 * slices hide of it, is scattered with every entry's own CoC and composited under what is already
 * there. A slice whose content is mostly blurred by more than ~20 px (radius) is built, filled and
 * scattered on a coarser grid (2^k x 2^k pixels a cell, the level most of its light would be
 * spread at anyway): a blur that wide holds no finer detail, and it keeps the cost of the wide
 * slices at a fraction of the frame. Compositing stays at full resolution, because what hides a
 * slice (a sharp subject in front of a blurred wall) has detail down to the pixel. Every step only
 * visits the rows and columns a slice's content, or its blur, reaches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_core.h"
#include "sd_entries.h"
#include "sd_fill.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_prof.h"
#include "sd_util.h"

static inline float smoothstep(float e0, float e1, float x)
{
    float t = (x - e0) / (e1 - e0);
    t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    return t * t * (3.0f - 2.0f * t);
}

/* A slice's fill runs on its hidden cells' bounding box grown by this many cells, aligned to
 * FILL_ALIGN cells (see fill_slice). */
#define FILL_MARGIN 64
#define FILL_ALIGN 64

/* Coarsest grid a slice is built on (cells of 32 x 32 pixels: blurs over ~600 px wide). */
#define MAX_SLICE_LEVEL 5

/* Interval of CoC c between the descending slice centres: 0 above cent[0], i for
 * cent[i] < c <= cent[i-1], n at or below cent[n-1]. Slice s draws on intervals s and s+1. */
static inline int interval_of(const float *cent, int n, float c)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int m = (lo + hi) >> 1;
        if (cent[m] >= c) lo = m + 1;
        else hi = m;
    }
    return lo;
}

static inline int has_light(const float *q) { return q[0] != 0.0f || q[1] != 0.0f || q[2] != 0.0f || q[3] != 0.0f; }

typedef struct {
    int y0, y1, x0, x1; /* frame rows and columns [y0, y1) x [x0, x1) */
} box_t;

static inline int box_empty(box_t b) { return b.y0 >= b.y1 || b.x0 >= b.x1; }

typedef struct {
    float lo, mid, hi; /* the slice's tent */
    float slo, shi;    /* its slopes on either side (0 towards an infinite neighbour) */
    int has_occ;
    float c1, s12;     /* occluders: CoC below c1, the ramp 1 / (c1 - c2) up to full at c2 */
    int k;             /* level */
    int cy0, cy1, cx0, cx1; /* the bounding box of the cells built */
    const int *kx0, *kx1;   /* per cell row cy, the cells [kx0[cy], kx1[cy]) built */
    const ptrdiff_t *roff;  /* ... stored back to back: cell (cx, cy) is element roff[cy] + cx */
    int holes;              /* whether nearer slices hide part of it */
} slice_t;

typedef struct {
    int H, W, ns, ni, nt;
    const sd_entries *e;
    const float *cent;
    const sd_aperture *ap;
    const float *plate;
    /* where each bin (see bin_of) has entries: per (bin, row) columns [x0, x1) and radius range */
    int *ix0, *ix1;
    float *irlo, *irhi;
    /* the current slice at its level: cells of 2^k x 2^k frame pixels */
    float *layer;  /* cells x 4: mean premultiplied colour + coverage per frame pixel */
    float *lcoc;   /* cells: coverage-weighted CoC of the content */
    float *hole;   /* cells: mean fraction hidden by nearer slices */
    float *pos;    /* cells x 2: light centroid offset from the cell centre, in cells (k > 0) */
    float *fillws;
    sd_pyramid *pyr;
    /* full-resolution accumulation */
    sd_view out;   /* accumulates the visible premultiplied colour ... */
    float *acc;    /* ... and this its coverage */
    float *last;   /* the share of it of the latest slice with coverage here */
    unsigned char *stamp; /* that slice's index + 1 (0: none) */
    float *rowbuf; /* per thread: a row of a coarse slice, vertically then fully interpolated */
    int *cx0, *cx1, *dx0, *dx1; /* per frame row: the slice's content columns, grown by its reach */
    slice_t *plan;              /* every slice, planned before the first is built */
    ptrdiff_t *ncells;          /* ... the cells each builds */
    int *kx0, *kx1;             /* per slice and cell row of its level: the cells built */
    int *gx0, *gx1;             /* the same relative to the fill's grid */
    ptrdiff_t *roff, *groff;    /* row offsets of the cells in the slice buffers (per slice), in the fill's grid */
    int *colidx;   /* per frame column: the coarse cell left of it and its interpolation weight */
    float *colw;
    ptrdiff_t rowbuf_stride;
} rctx;

/* The CoC axis in 2 ns + 1 bins: 2 i for the open interval cent[i] < c < cent[i-1] (interval_of
 * is i), 2 i + 1 for c exactly at cent[i]. Slice s holds bins [2 s, 2 s + 3) and is hidden by
 * bins from 2 s + 4 on. An entry exactly at a centre has no share in the neighbouring slices, and
 * those are where the flat surfaces are (the centres snap onto the modes): counting them in the
 * neighbours' boxes would build, fill and spread a wall's worth of empty cells twice more. */
static inline int bin_of(const float *cent, int iv, float c)
{
    return iv > 0 && c == cent[iv - 1] ? 2 * iv - 1 : 2 * iv;
}

/* interval_of, starting from a guess (neighbouring pixels mostly share their interval). */
static inline int interval_near(const float *cent, int n, float c, int i)
{
    while (i > 0 && !(cent[i - 1] >= c)) i--;
    while (i < n && cent[i] >= c) i++;
    return i;
}

/* Per (bin, row): the columns and radii of the entries (one pass over every entry). */
static void index_intervals(rctx *r)
{
    const sd_entries *e = r->e;
    int H = r->H, W = r->W, ni = r->ni, nt = r->nt;
    SD_PARALLEL_FOR_DYN(nt)
    for (int y = 0; y < H; y++) {
        for (int i = 0; i < ni; i++) {
            ptrdiff_t j = (ptrdiff_t)i * H + y;
            r->ix0[j] = W;
            r->ix1[j] = 0;
            r->irlo[j] = INFINITY;
            r->irhi[j] = -INFINITY;
        }
        const float *crow = e->coc + (ptrdiff_t)y * W;
        int iv = 0;
        for (int x = 0; x < W;) {
            float c = crow[x];
            if (c != c) { /* no main entry: its extras follow */
                x++;
                continue;
            }
            iv = interval_near(r->cent, r->ns, c, iv);
            int bin = bin_of(r->cent, iv, c);
            /* the run of pixels in the same bin, at once (neighbours mostly share theirs) */
            float alo = fabsf(c), ahi = alo;
            int xe = x + 1;
            if (bin & 1)
                while (xe < W && crow[xe] == c) xe++;
            else {
                float above = iv > 0 ? r->cent[iv - 1] : INFINITY, below = iv < r->ns ? r->cent[iv] : -INFINITY;
                for (; xe < W && crow[xe] < above && crow[xe] > below; xe++) {
                    float a = fabsf(crow[xe]);
                    alo = a < alo ? a : alo;
                    ahi = a > ahi ? a : ahi;
                }
            }
            ptrdiff_t j = (ptrdiff_t)bin * H + y;
            float Rlo = 0.5f * alo, Rhi = 0.5f * ahi;
            if (x < r->ix0[j]) r->ix0[j] = x;
            r->ix1[j] = xe;
            if (Rlo < r->irlo[j]) r->irlo[j] = Rlo;
            if (Rhi > r->irhi[j]) r->irhi[j] = Rhi;
            x = xe;
        }
        for (ptrdiff_t q = e->row_start[y]; q < e->row_start[y + 1]; q++) {
            if (!has_light(e->xrgba + 4 * q)) continue;
            float c = e->xcoc[q];
            int x = e->x[q];
            ptrdiff_t j = (ptrdiff_t)bin_of(r->cent, interval_of(r->cent, r->ns, c), c) * H + y;
            float R = 0.5f * fabsf(c);
            if (x < r->ix0[j]) r->ix0[j] = x;
            if (x + 1 > r->ix1[j]) r->ix1[j] = x + 1;
            if (R < r->irlo[j]) r->irlo[j] = R;
            if (R > r->irhi[j]) r->irhi[j] = R;
        }
    }
}

/* Per row, the columns [x0, x1) of the entries of bins [i0, i1) (empty: x0 >= x1); returns
 * their bounding box (empty if none) and radius range. */
static box_t intervals_rows(const rctx *r, int i0, int i1, int *x0, int *x1, float *rlo, float *rhi)
{
    box_t b = {r->H, 0, r->W, 0};
    *rlo = INFINITY;
    *rhi = -INFINITY;
    for (int y = 0; y < r->H; y++) {
        int a = r->W, e = 0;
        for (int i = imax(i0, 0); i < imin(i1, r->ni); i++) {
            ptrdiff_t j = (ptrdiff_t)i * r->H + y;
            if (r->ix0[j] >= r->ix1[j]) continue;
            a = imin(a, r->ix0[j]);
            e = imax(e, r->ix1[j]);
            *rlo = r->irlo[j] < *rlo ? r->irlo[j] : *rlo;
            *rhi = r->irhi[j] > *rhi ? r->irhi[j] : *rhi;
        }
        x0[y] = a;
        x1[y] = e;
        if (a < e) {
            b.y0 = imin(b.y0, y);
            b.y1 = y + 1;
            b.x0 = imin(b.x0, a);
            b.x1 = imax(b.x1, e);
        }
    }
    return b;
}

/* The ranges x0/x1 over rows [b.y0, b.y1) grown by m columns and m rows (into d0/d1, rows
 * [b.y0 - m, b.y1 + m) clipped to the frame); returns their bounding box. */
static box_t grow_rows(const rctx *r, box_t b, int m, const int *x0, const int *x1, int *d0, int *d1)
{
    box_t g = {imax(b.y0 - m, 0), imin(b.y1 + m, r->H), r->W, 0};
    SD_PARALLEL_FOR(r->nt)
    for (int y = g.y0; y < g.y1; y++) {
        int a = r->W, e = 0;
        for (int t = imax(y - m, b.y0); t < imin(y + m + 1, b.y1); t++)
            if (x0[t] < x1[t]) {
                a = imin(a, x0[t]);
                e = imax(e, x1[t]);
            }
        d0[y] = a < e ? imax(a - m, 0) : r->W;
        d1[y] = a < e ? imin(e + m, r->W) : 0;
    }
    for (int y = g.y0; y < g.y1; y++)
        if (d0[y] < d1[y]) {
            g.x0 = imin(g.x0, d0[y]);
            g.x1 = imax(g.x1, d1[y]);
        }
    return g;
}

/* Whether entries of bins [i0, ni) lie inside the rows' ranges [d0, d1) over rows of b. */
static int intervals_meet(const rctx *r, int i0, box_t b, const int *d0, const int *d1)
{
    for (int i = imax(i0, 0); i < r->ni; i++)
        for (int y = b.y0; y < b.y1; y++) {
            ptrdiff_t j = (ptrdiff_t)i * r->H + y;
            if (r->ix0[j] < d1[y] && r->ix1[j] > d0[y] && r->ix0[j] < r->ix1[j]) return 1;
        }
    return 0;
}

/* tent(lo, mid, hi, c) with the slopes precomputed. */
static inline float slice_weight(const slice_t *s, float c)
{
    float t = c >= s->mid ? 1.0f - (c - s->mid) * s->shi : 1.0f - (s->mid - c) * s->slo;
    return t > 0.0f ? t : 0.0f;
}

/* Hidden fraction of its pixel that an entry of CoC c and coverage a contributes to the slice. */
static inline float slice_hides(const slice_t *s, float c, float a)
{
    if (!s->has_occ || !(c < s->c1)) return 0.0f;
    float f = (s->c1 - c) * s->s12;
    return a * (f < 1.0f ? f : 1.0f);
}

/* One entry's share of a cell: light, coverage-weighted CoC, centroid; and of its pixel's hole. */
static inline void take_entry(const slice_t *s, const float *q, float c, float px, float py, float *acc, float *h)
{
    float t = slice_weight(s, c);
    if (t > 0.0f) {
        for (int k = 0; k < 4; k++) acc[k] += t * q[k];
        acc[4] += t * q[3] * c;
        acc[5] += t * q[3];
        float e = t * (fabsf(q[0]) + fabsf(q[1]) + fabsf(q[2]) + fabsf(q[3]));
        acc[6] += e;
        acc[7] += e * px;
        acc[8] += e * py;
    }
    *h += slice_hides(s, c, q[3]);
}

/* Level 0: every pixel is its own cell. */
static void build_slice_fine(rctx *r, const slice_t *s)
{
    const sd_entries *e = r->e;
    int W = r->W;
    SD_PARALLEL_FOR_DYN(r->nt)
    for (int y = s->cy0; y < s->cy1; y++) {
        ptrdiff_t q = e->row_start[y], qe = e->row_start[y + 1];
        int xs = s->kx0[y], xe = s->kx1[y];
        while (q < qe && e->x[q] < xs) q++;
        const float *irow = e->img.data + (ptrdiff_t)y * e->img.row;
        for (int x = xs; x < xe; x++) {
            ptrdiff_t p = (ptrdiff_t)y * W + x;
            float c = e->coc[p];
            float l[4] = {0, 0, 0, 0}, wa = 0.0f, wc = 0.0f, h = 0.0f;
            if (c == c) { /* the main entry: the pixel itself, fully covered */
                const float *m = irow + (ptrdiff_t)x * e->img.pix;
                float t = slice_weight(s, c);
                l[0] = t * m[0];
                l[1] = t * m[1];
                l[2] = t * m[2];
                l[3] = t;
                wa = t;
                wc = t * c;
                h = slice_hides(s, c, 1.0f);
            }
            for (; q < qe && e->x[q] == x; q++) {
                const float *xq = e->xrgba + 4 * q;
                float xc = e->xcoc[q], xt = slice_weight(s, xc);
                for (int ch = 0; ch < 4; ch++) l[ch] += xt * xq[ch];
                wa += xt * xq[3];
                wc += xt * xq[3] * xc;
                h += slice_hides(s, xc, xq[3]);
            }
            ptrdiff_t i = s->roff[y] + x;
            float *d = r->layer + 4 * i;
            for (int ch = 0; ch < 4; ch++) d[ch] = l[ch];
            r->lcoc[i] = wa > 1e-8f ? wc / wa : s->mid;
            r->hole[i] = h > 1.0f ? 1.0f : h;
        }
    }
}

/* Gathers the slice's content and the hidden fraction over its cells. */
static void build_slice(rctx *r, const slice_t *s)
{
    if (s->k == 0) {
        build_slice_fine(r, s);
        return;
    }
    const sd_entries *e = r->e;
    int H = r->H, W = r->W, k = s->k, bs = 1 << k;
    float inv_area = 1.0f / (float)(bs * bs), inv_bs = 1.0f / (float)bs;
    SD_PARALLEL_FOR_DYN(r->nt)
    for (int cy = s->cy0; cy < s->cy1; cy++) {
        int y0 = cy << k, y1 = imin(y0 + bs, H);
        ptrdiff_t xp[1 << MAX_SLICE_LEVEL]; /* per frame row of the cell row: the next extra entry */
        int cs = s->kx0[cy], ce = s->kx1[cy];
        for (int y = y0; y < y1; y++) {
            ptrdiff_t q = e->row_start[y], qe = e->row_start[y + 1];
            while (q < qe && e->x[q] < (cs << k)) q++;
            xp[y - y0] = q;
        }
        for (int cx = cs; cx < ce; cx++) {
            int x0 = cx << k, x1 = imin(x0 + bs, W);
            float acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, hsum = 0.0f;
            for (int y = y0; y < y1; y++) {
                ptrdiff_t q = xp[y - y0], qe = e->row_start[y + 1];
                for (int x = x0; x < x1; x++) {
                    float h = 0.0f, px = (float)x + 0.5f, py = (float)y + 0.5f;
                    float mq[4], mc;
                    if (sd_main_entry(e, x, y, mq, &mc)) take_entry(s, mq, mc, px, py, acc, &h);
                    for (; q < qe && e->x[q] == x; q++) take_entry(s, e->xrgba + 4 * q, e->xcoc[q], px, py, acc, &h);
                    hsum += h > 1.0f ? 1.0f : h;
                }
                xp[y - y0] = q;
            }
            ptrdiff_t c = s->roff[cy] + cx;
            for (int ch = 0; ch < 4; ch++) r->layer[4 * c + ch] = acc[ch] * inv_area;
            r->lcoc[c] = acc[5] > 1e-8f ? acc[4] / acc[5] : s->mid;
            r->hole[c] = hsum * inv_area;
            float mx = ((float)cx + 0.5f) * (float)bs, my = ((float)cy + 0.5f) * (float)bs;
            /* the light's centroid, kept inside the cell (light so bright its weights overflow
             * has none: the cell centre) */
            float px = acc[6] > 0.0f ? (acc[7] / acc[6] - mx) * inv_bs : 0.0f;
            float py = acc[6] > 0.0f ? (acc[8] / acc[6] - my) * inv_bs : 0.0f;
            r->pos[2 * c] = px >= -0.5f && px <= 0.5f ? px : 0.0f;
            r->pos[2 * c + 1] = py >= -0.5f && py <= 0.5f ? py : 0.0f;
        }
    }
}

/* Mean of the background plate over cell (cx, cy) of level k. */
/* Mean of the background plate over the frame pixels of cell (cx, cy) of level k (the hidden
 * fraction it is weighted with already counts only those). */
static void plate_mean(const rctx *r, int k, int cx, int cy, float *m)
{
    int y1 = imin((cy + 1) << k, r->H), x1 = imin((cx + 1) << k, r->W);
    int n = (y1 - (cy << k)) * (x1 - (cx << k));
    m[0] = m[1] = m[2] = 0.0f;
    for (int y = cy << k; y < y1; y++)
        for (int x = cx << k; x < x1; x++)
            for (int c = 0; c < 3; c++) m[c] += r->plate[3 * ((ptrdiff_t)y * r->W + x) + c];
    for (int c = 0; c < 3; c++) m[c] /= (float)(n > 0 ? n : 1);
}

/* Continues the slice's surfaces behind what hides them: push-pull of the content seen per
 * visible fraction, kept only where the filled coverage is substantial, so a surface (a wall
 * behind a head, a body behind a railing) carries on while sparse specks (distant lights) are
 * not smeared into a glow. With a plate, its colour is used for what is filled in. */
static void fill_slice(rctx *r, const slice_t *s)
{
    int k = s->k;
    /* the hidden cells' bounding box [hy0, hy1) x [hx0, hx1), from each cell row's span */
    int *h0 = r->dx0, *h1 = r->dx1; /* free once the slices are planned */
    SD_PARALLEL_FOR_CHUNKS(r->nt)
    for (int cy = s->cy0; cy < s->cy1; cy++) {
        int a = s->kx1[cy], b = s->kx0[cy];
        const float *hr = r->hole + s->roff[cy];
        for (int cx = s->kx0[cy]; cx < s->kx1[cy]; cx++)
            if (hr[cx] > 0.0f) {
                a = cx < a ? cx : a;
                b = cx + 1;
            }
        h0[cy - s->cy0] = a;
        h1[cy - s->cy0] = b;
    }
    int hy0 = s->cy1, hy1 = s->cy0, hx0 = s->cx1, hx1 = s->cx0;
    for (int cy = s->cy0; cy < s->cy1; cy++)
        if (h0[cy - s->cy0] < h1[cy - s->cy0]) {
            hy0 = imin(hy0, cy);
            hy1 = cy + 1;
            hx0 = imin(hx0, h0[cy - s->cy0]);
            hx1 = imax(hx1, h1[cy - s->cy0]);
        }
    if (hy0 >= hy1) return; /* nothing hidden after all */
    /* The fill's grid: that box grown by FILL_MARGIN cells, within the slice's box, its origin a
     * multiple of FILL_ALIGN cells from the slice box's so that its coarse cells are the same
     * whatever the crop. Farther cells hardly move the fill of the hidden ones; cells outside
     * the rows' ranges were not built: seen and empty, to the fill. */
    int gy0 = s->cy0 + imax(hy0 - FILL_MARGIN - s->cy0, 0) / FILL_ALIGN * FILL_ALIGN;
    int gx0 = s->cx0 + imax(hx0 - FILL_MARGIN - s->cx0, 0) / FILL_ALIGN * FILL_ALIGN;
    int gy1 = imin(hy1 + FILL_MARGIN, s->cy1), gx1 = imin(hx1 + FILL_MARGIN, s->cx1);
    int rows = gy1 - gy0, cols = gx1 - gx0;
    for (int cy = gy0; cy < gy1; cy++) {
        int a = imax(s->kx0[cy], gx0), b = imin(s->kx1[cy], gx1);
        r->gx0[cy - gy0] = a < b ? a - gx0 : 0;
        r->gx1[cy - gy0] = a < b ? b - gx0 : 0;
        r->groff[cy - gy0] = s->roff[cy] + gx0;
    }
    sd_fillpyr f;
    if (rows > 1 || cols > 1)
        sd_fill_build(&f, r->fillws, rows, cols, 4, r->layer, 0, NULL, r->hole, 0, r->gx0, r->gx1, r->groff, r->nt);
    else
        f.n = 1;
    SD_PARALLEL_FOR_DYN(r->nt)
    for (int cy = hy0; cy < hy1; cy++) {
        /* the row's hidden cells, and the coarse fill interpolated over them */
        int xa = h0[cy - s->cy0], xb = h1[cy - s->cy0];
        float *ups = r->rowbuf + (ptrdiff_t)sd_thread_id() * r->rowbuf_stride;
        if (xa < xb && f.n > 1) sd_fill_sample4_row(&f, xa - gx0, xb - gx0, cy - gy0, ups);
        for (int cx = xa; cx < xb; cx++) {
            ptrdiff_t i = s->roff[cy] + cx;
            float h = r->hole[i];
            if (h <= 0.0f) continue;
            float *l = r->layer + 4 * i;
            float vis = 1.0f - h, w = vis > 1e-3f ? vis : 0.0f, up[4];
            if (f.n > 1)
                for (int c = 0; c < 4; c++) up[c] = ups[4 * (cx - xa) + c];
            else
                for (int c = 0; c < 4; c++) up[c] = w > 0.0f ? l[c] / w : 0.0f;
            float fv[4];
            for (int c = 0; c < 4; c++) fv[c] = (w > 0.0f ? l[c] : 0.0f) + (1.0f - w) * up[c];
            float fa = fv[3] > 1.0f ? 1.0f : fv[3];
            float g = smoothstep(0.25f, 0.75f, fa);
            if (g <= 0.0f) continue;
            float sc = fa > 1e-6f ? g / fa : 0.0f;
            if (r->plate) {
                float m[3];
                plate_mean(r, k, cx, cy, m);
                for (int c = 0; c < 3; c++) l[c] += h * m[c] * g;
            } else {
                for (int c = 0; c < 3; c++) l[c] += h * fv[c] * sc;
            }
            l[3] += h * g;
        }
    }
}

/* Composites the resolved slice `si` (frame box `sb`) under what is nearer. A slice resolved on
 * level k is interpolated bilinearly (clamped at the frame's edge cells) to the frame's pixels,
 * a row at a time. What hides the slice is the visible coverage composited so far except the
 * previous slice's (see sd_render_entries): `acc` sums it, `last` remembers the latest slice's
 * share and `stamp` which slice that was, so that pixels the slice leaves dark need no update. */
static void composite(rctx *r, int si, int k, box_t sb)
{
    int W = r->W, bs = 1 << k;
    int ny = (r->H + bs - 1) >> k, nx = (W + bs - 1) >> k;
    float s = 1.0f / (float)bs, area = s * s;
    unsigned char me = (unsigned char)(si + 1), before = (unsigned char)(si + 2);
    /* the horizontal interpolation is the same for every row: cell and weight per column */
    int *xi = r->colidx;
    float *xw = r->colw;
    if (k > 0)
        for (int x = sb.x0; x < sb.x1; x++) {
            float px = ((float)x + 0.5f) * s - 0.5f;
            px = px < 0.0f ? 0.0f : (px > (float)(nx - 1) ? (float)(nx - 1) : px);
            xi[x] = (int)px;
            xw[x] = px - (float)xi[x];
            if (xi[x] >= nx - 1) { xi[x] = nx - 1 > 0 ? nx - 2 : 0; xw[x] = nx > 1 ? 1.0f : 0.0f; }
        }
    SD_PARALLEL_FOR_DYN(r->nt)
    for (int y = sb.y0; y < sb.y1; y++) {
        ptrdiff_t i0 = (ptrdiff_t)y * W;
        float *o = r->out.data + (ptrdiff_t)y * r->out.row, *a = r->acc + i0, *ls = r->last + i0;
        ptrdiff_t op = r->out.pix;
        unsigned char *st = r->stamp + i0;
        /* this row of the slice's light, per frame pixel, and the columns where it has any */
        const float *L;
        int xa = sb.x1, xb = sb.x0;
        if (k == 0) {
            L = sd_pyr_row(r->pyr, y);
            sd_pyr_row_span(r->pyr, y, &xa, &xb);
            xa = imax(xa, sb.x0);
            xb = imin(xb, sb.x1);
        } else {
            float *tmp = r->rowbuf + (ptrdiff_t)sd_thread_id() * r->rowbuf_stride;
            float *vrow = tmp, *lrow = tmp + 4 * (ptrdiff_t)(nx + 1);
            float py = ((float)y + 0.5f) * s - 0.5f;
            py = py < 0.0f ? 0.0f : (py > (float)(ny - 1) ? (float)(ny - 1) : py);
            int y0 = (int)py, y1 = imin(y0 + 1, ny - 1);
            float wy = py - (float)y0;
            const float *r0 = sd_pyr_row(r->pyr, y0), *r1 = sd_pyr_row(r->pyr, y1);
            int a0, a1, b0, b1;
            sd_pyr_row_span(r->pyr, y0, &a0, &a1);
            sd_pyr_row_span(r->pyr, y1, &b0, &b1);
            int ca = a0 < a1 ? a0 : b0, cb = a0 < a1 ? a1 : b1;
            if (a0 < a1 && b0 < b1) {
                ca = imin(a0, b0);
                cb = imax(a1, b1);
            }
            /* the pixels below cover cells up to two either side of the lit ones */
            int c0 = imax(ca - 2, 0), c1 = imin(cb + 2, nx);
            for (int c = c0; c < c1; c++)
                for (int ch = 0; ch < 4; ch++)
                    vrow[4 * c + ch] = area * ((1.0f - wy) * r0[4 * c + ch] + wy * r1[4 * c + ch]);
            if (ca < cb) { /* pixels whose interpolation reaches a lit cell */
                xa = imax((ca - 1) * bs + (bs >> 1), sb.x0);
                xb = imin((cb + 1) * bs - (bs >> 1), sb.x1);
                xa = imax(xa - 1, sb.x0);
                xb = imin(xb + 1, sb.x1);
            }
            for (int x = xa; x < xb; x++) {
                const float *v0 = vrow + 4 * xi[x];
                float w = xw[x];
                for (int c = 0; c < 4; c++) lrow[4 * x + c] = (1.0f - w) * v0[c] + w * v0[4 + c];
            }
            L = lrow;
        }
        for (int x = xa; x < xb; x++) {
            const float *l = L + 4 * x;
            float occ = a[x] - (st[x] == before ? ls[x] : 0.0f);
            float vis = 1.0f - occ;
            vis = vis > 0.0f ? vis : 0.0f;
            for (int c = 0; c < 3; c++) o[(ptrdiff_t)x * op + c] += vis * l[c];
            float va = vis * l[3];
            a[x] += va;
            if (l[3] > 0.0f) {
                ls[x] = va;
                st[x] = me;
            }
        }
    }
}

/* Plans slice si: its tent and level, and the cells to build (per cell row, into r->kx0/kx1,
 * with their bounding box); returns how many cells that is (0: the slice holds nothing). */
static ptrdiff_t plan_slice(rctx *r, int si, int top, slice_t *s, int *kx0, int *kx1, ptrdiff_t *roff)
{
    const float *cent = r->cent;
    int ns = r->ns, H = r->H, W = r->W;
    s->mid = cent[si];
    s->hi = si > 0 ? cent[si - 1] : INFINITY;
    s->lo = si + 1 < ns ? cent[si + 1] : -INFINITY;
    s->shi = isinf(s->hi) ? 0.0f : 1.0f / (s->hi - s->mid);
    s->slo = isinf(s->lo) ? 0.0f : 1.0f / (s->mid - s->lo);
    s->has_occ = si + 2 < ns;
    s->c1 = s->has_occ ? cent[si + 1] : 0.0f;
    s->s12 = s->has_occ ? 1.0f / (cent[si + 1] - cent[si + 2]) : 0.0f;
    s->k = 0;
    s->holes = 0;
    s->kx0 = kx0;
    s->kx1 = kx1;
    s->roff = roff;
    s->cy0 = s->cy1 = s->cx0 = s->cx1 = 0;
    float rlo, rhi;
    box_t cb = intervals_rows(r, 2 * si, 2 * si + 3, r->cx0, r->cx1, &rlo, &rhi);
    if (box_empty(cb)) return 0;
    /* The level its content is mostly spread at, judged where the slice's weight is half on the
     * side of smaller |CoC| (or at its smallest radius if that is larger): what is finer has
     * weights below 1/2 here, and most of that is already crossfading to this level. */
    float cl = isinf(s->lo) ? -INFINITY : 0.5f * (s->mid + s->lo);
    float ch = isinf(s->hi) ? INFINITY : 0.5f * (s->mid + s->hi);
    float rh = cl <= 0.0f && ch >= 0.0f ? 0.0f : 0.5f * fminf(fabsf(cl), fabsf(ch));
    s->k = imin(imin(sd_level_mostly(fmaxf(rlo, rh)), top), MAX_SLICE_LEVEL);
    /* what is filled in only matters where the slice's blur can carry it */
    float cap = (float)(H > W ? H : W); /* beyond the frame, reach changes nothing */
    int m = (int)ceilf(2.0f * (rhi < cap ? rhi : cap)) + 8;
    box_t fb = grow_rows(r, cb, m, r->cx0, r->cx1, r->dx0, r->dx1);
    s->holes = s->has_occ && intervals_meet(r, 2 * si + 4, fb, r->dx0, r->dx1);
    box_t bb = s->holes ? fb : cb;
    const int *bx0 = s->holes ? r->dx0 : r->cx0, *bx1 = s->holes ? r->dx1 : r->cx1;
    int bs = 1 << s->k;
    s->cy0 = bb.y0 >> s->k;
    s->cy1 = (bb.y1 + bs - 1) >> s->k;
    s->cx0 = W;
    s->cx1 = 0;
    ptrdiff_t cells = 0;
    for (int cy = s->cy0; cy < s->cy1; cy++) {
        int a = W, e = 0;
        for (int y = imax(cy << s->k, bb.y0); y < imin((cy + 1) << s->k, bb.y1); y++)
            if (bx0[y] < bx1[y]) {
                a = imin(a, bx0[y]);
                e = imax(e, bx1[y]);
            }
        kx0[cy] = a < e ? a >> s->k : 0;
        kx1[cy] = a < e ? (e + bs - 1) >> s->k : 0;
        roff[cy] = cells - kx0[cy];
        cells += kx1[cy] - kx0[cy];
        if (a < e) {
            s->cx0 = imin(s->cx0, kx0[cy]);
            s->cx1 = imax(s->cx1, kx1[cy]);
        }
    }
    return cells;
}

sd_status sd_render_entries(const sd_entries *e, const float *cent, int ns, const sd_aperture *ap,
                            const float *plate, sd_view out, int nthreads, const sd_cancel *cancel)
{
    int H = e->H, W = e->W;
    if (H < 1 || W < 1 || ns < 1 || ns > 250 || out.nch < 3 || ap->nrows < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    size_t n = (size_t)H * (size_t)W;
    /* the largest |CoC| of any entry (a pixel without main entry has NaN, left out) */
    float max_coc = sd_max_abs(H, W, e->coc, W, nt);
    for (ptrdiff_t q = 0; q < e->n; q++) max_coc = fabsf(e->xcoc[q]) > max_coc ? fabsf(e->xcoc[q]) : max_coc;
    for (int s = 0; s < ns; s++) max_coc = fabsf(cent[s]) > max_coc ? fabsf(cent[s]) : max_coc;

    SD_TIC(t_alloc);
    rctx r;
    memset(&r, 0, sizeof r);
    r.H = H; r.W = W; r.ns = ns; r.ni = 2 * ns + 1; r.nt = nt;
    r.e = e; r.cent = cent; r.ap = ap; r.plate = plate;
    size_t nh = (size_t)r.ni * (size_t)H;
    r.ix0 = malloc(nh * sizeof(int));
    r.ix1 = malloc(nh * sizeof(int));
    r.irlo = malloc(nh * sizeof(float));
    r.irhi = malloc(nh * sizeof(float));
    r.cx0 = malloc(sizeof(int) * 6 * (size_t)H);
    r.kx0 = malloc(sizeof(int) * 2 * (size_t)H * (size_t)ns);
    r.roff = malloc(sizeof(ptrdiff_t) * (size_t)H * (size_t)(ns + 1));
    r.plan = malloc(sizeof(slice_t) * (size_t)ns);
    r.ncells = malloc(sizeof(ptrdiff_t) * (size_t)ns);
    r.pyr = sd_pyr_new(H, W, max_coc, nt);
    sd_status st = SD_OK;
    if (!r.ix0 || !r.ix1 || !r.irlo || !r.irhi || !r.cx0 || !r.kx0 || !r.roff || !r.plan || !r.ncells || !r.pyr)
        st = SD_ERR_NOMEM;
    int top = st == SD_OK ? sd_pyr_levels(r.pyr) - 1 : 0;
    ptrdiff_t max_cells = 1;
    size_t max_fill = 1;
    if (st == SD_OK) {
        r.cx1 = r.cx0 + H; r.dx0 = r.cx0 + 2 * (size_t)H; r.dx1 = r.cx0 + 3 * (size_t)H;
        r.gx0 = r.cx0 + 4 * (size_t)H; r.gx1 = r.cx0 + 5 * (size_t)H;
        r.kx1 = r.kx0 + (size_t)H * (size_t)ns;
        r.groff = r.roff + (size_t)H * (size_t)ns;
        SD_TIC(t_index);
        index_intervals(&r);
        SD_TOC(PROF_INDEX, t_index);
        /* the slice buffers hold the largest slice's cells, rows back to back */
        for (int si = 0; si < ns; si++) {
            slice_t *s = &r.plan[si];
            size_t o = (size_t)si * (size_t)H;
            ptrdiff_t cells = r.ncells[si] = plan_slice(&r, si, top, s, r.kx0 + o, r.kx1 + o, r.roff + o);
            if (cells > max_cells) max_cells = cells;
            if (cells > 0 && s->holes) {
                size_t f = sd_fill_ws_floats(s->cy1 - s->cy0, s->cx1 - s->cx0, 4);
                if (f > max_fill) max_fill = f;
            }
        }
    }
    size_t nc = (size_t)max_cells;
    /* the slice buffers are written (over each slice's cells) before they are read */
    r.layer = sd_big_alloc(nc * 4, sizeof(float), nt);
    r.lcoc = sd_big_alloc(nc, sizeof(float), nt);
    r.hole = sd_big_alloc(nc, sizeof(float), nt);
    r.pos = sd_big_alloc(nc * 2, sizeof(float), nt);
    r.fillws = sd_big_alloc(max_fill, sizeof(float), nt);
    r.acc = sd_big_calloc(n, sizeof(float), nt);
    r.out = out;
    r.last = sd_big_calloc(n, sizeof(float), nt);
    r.stamp = sd_big_calloc(n, 1, nt);
    r.rowbuf_stride = 4 * ((ptrdiff_t)W + 2) * 2;
    r.rowbuf = malloc(sizeof(float) * (size_t)r.rowbuf_stride * (size_t)nt);
    r.colidx = malloc(sizeof(int) * (size_t)W);
    r.colw = malloc(sizeof(float) * (size_t)W);
    SD_TOC(PROF_ALLOC, t_alloc);
    if (!r.layer || !r.lcoc || !r.hole || !r.pos || !r.fillws || !r.acc || !r.last || !r.stamp ||
        !r.rowbuf || !r.colidx || !r.colw)
        st = SD_ERR_NOMEM;
    if (st == SD_OK) { /* out accumulates the colour */
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            float *o = out.data + (ptrdiff_t)y * out.row;
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) o[(ptrdiff_t)x * out.pix + c] = 0.0f;
        }
    }
    /* Near to far. A slice is hidden by the coverage already visible of the slices at least two
     * steps nearer: visible coverage, so that the two halves of one surface (each pixel's light
     * is split between two neighbouring slices) together hide what is behind it, while two
     * partly transparent occluders one behind the other (a blurred railing over the soft edge of
     * a subject) hide no more than they show; and not the immediate neighbour, because a surface
     * whose CoC straddles two slices must not hide itself. Occlusion thus sets in across CoC gaps
     * of one slice spacing and is complete at two; the same occluders define the holes that are
     * filled. */
    for (int si = ns - 1; si >= 0 && st == SD_OK; si--) {
        slice_t s = r.plan[si];
        ptrdiff_t cells = r.ncells[si];
        box_t sb = {0, 0, 0, 0};
#ifdef SD_SLICEPROF
        double before[PROF_N]; /* the phase totals so far: this slice's steps are the increase */
        memcpy(before, sd_prof_acc, sizeof before);
#endif
        if (cells > 0) {
            int bs = 1 << s.k;
            SD_TIC(t_build);
            build_slice(&r, &s);
            SD_TOC(PROF_BUILD, t_build);
            SD_TIC(t_fill);
            if (s.holes) fill_slice(&r, &s);
            SD_TOC(PROF_FILL, t_fill);
            SD_TIC(t_spread);
            sd_pyr_clear(r.pyr, nt);
            sd_pyr_src src = {{r.layer, 0, 4, 4}, (float)(bs * bs), r.lcoc, s.k > 0 ? r.pos : NULL, 0,
                              s.kx0, s.kx1, s.roff};
            st = sd_pyr_spread(r.pyr, s.k, &src, ap, s.cy0, s.cy1, s.cx0, s.cx1, nt);
            if (st != SD_OK) break;
            SD_TOC(PROF_SPREAD, t_spread);
            SD_TIC(t_resolve);
            sd_pyr_resolve(r.pyr, s.k, nt);
            SD_TOC(PROF_RESOLVE, t_resolve);
            int a0, a1, b0, b1;
            sd_pyr_active(r.pyr, &a0, &a1, &b0, &b1);
            if (a0 < a1 && b0 < b1) {
                /* frame pixels the interpolation of those cells reaches */
                int g = s.k > 0 ? 1 : 0;
                sb.y0 = imax((a0 - g) * bs, 0);
                sb.y1 = imin((a1 + g) * bs, H);
                sb.x0 = imax((b0 - g) * bs, 0);
                sb.x1 = imin((b1 + g) * bs, W);
            }
        }
        SD_TIC(t_comp);
        if (!box_empty(sb)) composite(&r, si, s.k, sb);
        SD_TOC(PROF_COMPOSITE, t_comp);
#ifdef SD_SLICEPROF
        if (cells > 0) {
            const double *a = sd_prof_acc;
            fprintf(stderr, "slice %2d c %6.1f k %d cells %8td box %4dx%4d holes %d b %.3f f %.3f s %.3f r %.3f c %.3f\n",
                    si, cent[si], s.k, cells, s.cy1 - s.cy0, s.cx1 - s.cx0, s.holes, a[PROF_BUILD] - before[PROF_BUILD],
                    a[PROF_FILL] - before[PROF_FILL], a[PROF_SPREAD] - before[PROF_SPREAD],
                    a[PROF_RESOLVE] - before[PROF_RESOLVE], a[PROF_COMPOSITE] - before[PROF_COMPOSITE]);
        }
#endif
        if (cancel && cancel->check && cancel->check(cancel->ctx)) st = SD_ERR_INTERRUPTED;
    }
    SD_TIC(t_norm);
    if (st == SD_OK) {
        /* Coverage below 1 (a hole nothing filled) or above 1 (surfaces closer than a slice
         * spacing, blended rather than ordered): renormalise to a full pixel. */
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const float *a = r.acc + (ptrdiff_t)y * W;
            float *o = out.data + (ptrdiff_t)y * out.row;
            for (int x = 0; x < W; x++) {
                float cov = a[x];
                float inv = cov > 1e-6f ? 1.0f / cov : 1.0f;
                for (int c = 0; c < 3; c++) o[(ptrdiff_t)x * out.pix + c] *= inv;
            }
        }
    }
    SD_TOC(PROF_NORMALISE, t_norm);
    free(r.ix0); free(r.ix1); free(r.irlo); free(r.irhi); free(r.roff); free(r.kx0); free(r.plan); free(r.ncells);
    sd_big_free(r.layer); sd_big_free(r.lcoc); sd_big_free(r.hole); sd_big_free(r.pos); sd_big_free(r.fillws);
    sd_pyr_release(r.pyr, nt);
    sd_big_free(r.acc); sd_big_free(r.last); sd_big_free(r.stamp);
    free(r.rowbuf); free(r.colidx); free(r.colw); free(r.cx0);
    return st;
}

sd_status sd_render(int H, int W, sd_cview img, const float *coc, const float *matte, const float *plate,
                    const sd_aperture *ap, sd_view out, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || img.nch != 3 || out.nch < 3 || ap->nrows < 1) return SD_ERR_ARG;
    sd_entries e;
    SD_TIC(t_entries);
    sd_status st = sd_entries_build(H, W, img, coc, matte, nthreads, &e);
    SD_TOC(PROF_ENTRIES, t_entries);
    if (st != SD_OK) return st;
    float cent[SD_MAX_SLICES + 1];
    int ns = 0;
    SD_TIC(t_slices);
    st = sd_entries_slices(&e, cent, &ns, nthreads);
    SD_TOC(PROF_SLICES, t_slices);
    if (st == SD_OK && cancel && cancel->check && cancel->check(cancel->ctx)) st = SD_ERR_INTERRUPTED;
    if (st == SD_OK) st = sd_render_entries(&e, cent, ns, ap, plate, out, nthreads, cancel);
    sd_entries_free(&e);
    SD_PROF_REPORT();
    return st;
}
