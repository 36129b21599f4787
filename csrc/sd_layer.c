/* A slice's layer: its share of every entry gathered onto the cells of its level
 * (sd_layer_build), and what nearer slices hide of it filled in from its surroundings or a
 * background plate (sd_layer_fill: where a hole is filled). Both run once per slice, called by
 * the layered render (sd_render.c) on the cells the slice planning chose (sd_slices.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_entries.h"
#include "sd_fill.h"
#include "sd_highlight.h"
#include "sd_layer.h"
#include "sd_parallel.h"
#include "sd_render.h"
#include "sd_util.h"

/* A slice's fill runs on its hidden cells' bounding box grown by this many cells, its origin a
 * multiple of SLICE_FILL_ALIGN_CELLS cells from the slice box's (see sd_layer_fill). These
 * count cells of the slice's level, unlike the entries' fill box (ENTRY_FILL_ALIGN_PX in
 * sd_entries.c), which counts frame pixels. */
#define SLICE_FILL_MARGIN_CELLS 64
#define SLICE_FILL_ALIGN_CELLS 64

/* What the fill brings back is kept by the filled coverage: not at all below FILL_KEEP_FROM
 * (sparse specks, such as distant lights, would be smeared into a glow), fully from
 * FILL_KEEP_FULL (a surface carries on behind what hides it), smoothly in between. */
#define FILL_KEEP_FROM 0.25f
#define FILL_KEEP_FULL 0.75f

/* A cell's CoC is its content's coverage-weighted mean; content with less coverage than this
 * takes the slice's centre. */
#define MIN_CELL_COVERAGE 1e-8f

/* Cell rows a thread builds in full, without the quick pass (see sd_layer_build), after a row
 * whose cells mostly hold content. */
#define QUICK_REST 3

static inline float smoothstep(float e0, float e1, float x)
{
    float t = (x - e0) / (e1 - e0);
    t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    return t * t * (3.0f - 2.0f * t);
}

/* One entry's share of a cell: light, coverage-weighted CoC, centroid; and of its pixel's hole. */
static inline void take_entry(const sd_slice *s, const float *q, float c, float px, float py, float *acc, float *h)
{
    float t = sd_slice_weight(s, c);
    if (t > 0.0f) {
        for (int k = 0; k < 4; k++) acc[k] += t * q[k];
        acc[4] += t * q[3] * c;
        acc[5] += t * q[3];
        float e = t * (fabsf(q[0]) + fabsf(q[1]) + fabsf(q[2]) + fabsf(q[3]));
        acc[6] += e;
        acc[7] += e * px;
        acc[8] += e * py;
    }
    *h += sd_slice_hides(s, c, q[3]);
}

/* The frame pixels of the slice's box (its cells times their pixels): how much a pass over its
 * cells' entries costs. */
static ptrdiff_t slice_box_pixels(const sd_slice *s)
{
    return ((ptrdiff_t)(s->cy1 - s->cy0) * (s->cx1 - s->cx0)) << (2 * s->k);
}

/* Level 0: a pixel's main entry (CoC c, colour m; a NaN c: none) as a cell's light l, coverage
 * wa, coverage-weighted CoC wc and hidden fraction h, before any extra entries are added. */
static inline void fine_main(const sd_slice *s, float c, const float *m, float *l, float *wa, float *wc, float *h)
{
    int has_main = c == c; /* the pixel itself, fully covered */
    float t = sd_slice_weight(s, c), f = sd_slice_hides(s, c, 1.0f);
    l[0] = has_main ? t * m[0] : 0.0f;
    l[1] = has_main ? t * m[1] : 0.0f;
    l[2] = has_main ? t * m[2] : 0.0f;
    l[3] = has_main ? t : 0.0f;
    *wa = has_main ? t : 0.0f;
    *wc = has_main ? t * c : 0.0f;
    *h = has_main ? f : 0.0f;
}

/* Level 0: a cell's light, CoC and hidden fraction from fine_main's sums (and the extras'). */
static inline void fine_store(float *lay, float *lc, float *ho, const float *l, float wa, float wc, float h,
                              float mid)
{
    for (int ch = 0; ch < 4; ch++) lay[ch] = l[ch];
    *lc = wa > MIN_CELL_COVERAGE ? wc / wa : mid;
    *ho = h > 1.0f ? 1.0f : h;
}

/* Level 0, one pixel: its main entry and its extras [*q, qe) (those at column x; *q moves past
 * them) gathered into cell i. */
static inline void fine_pixel(sd_render_ctx *r, const sd_slice *s, const float *irow, int x, int y, ptrdiff_t i,
                              ptrdiff_t *q, ptrdiff_t qe)
{
    const sd_entries *e = r->e;
    float l[4], wa, wc, h;
    fine_main(s, e->coc[(ptrdiff_t)y * r->W + x], irow + (ptrdiff_t)x * e->img.pix, l, &wa, &wc, &h);
    for (; *q < qe && e->x[*q] == x; (*q)++) {
        const float *xq = e->xrgba + 4 * *q;
        float xc = e->xcoc[*q], xt = sd_slice_weight(s, xc);
        for (int ch = 0; ch < 4; ch++) l[ch] += xt * xq[ch];
        wa += xt * xq[3];
        wc += xt * xq[3] * xc;
        h += sd_slice_hides(s, xc, xq[3]);
    }
    fine_store(r->layer + 4 * i, r->lcoc + i, r->hole + i, l, wa, wc, h, s->mid);
}

#if defined(__GNUC__)
/* sd_slice_weight of 4 CoCs as the lanes of a vector: the same arithmetic, the same bits (a NaN
 * CoC, no main entry: 0). */
static inline sd_cell4 slice_weight4(const sd_slice *s, sd_cell4 c)
{
    const float mid = s->mid, over = 1.0f / (1.0f - 2.0f * SD_SLICE_SNAP);
    const sd_cell4 one = {1.0f, 1.0f, 1.0f, 1.0f};
    sd_mask4 ge = c >= mid;
    sd_cell4 tent = (sd_cell4)((ge & (sd_mask4)(1.0f - (c - mid) * s->shi)) |
                               (~ge & (sd_mask4)(1.0f - (mid - c) * s->slo)));
    sd_cell4 u = (tent - SD_SLICE_SNAP) * over;
    sd_mask4 lt1 = u < 1.0f;
    return (sd_cell4)((u > 0.0f) & ((lt1 & (sd_mask4)u) | (~lt1 & (sd_mask4)one)));
}

/* sd_slice_hides of 4 entries of coverage 1 and CoCs c as the lanes of a vector: the same bits
 * (+0 where nothing nearer, a NaN CoC included; at most 1). */
static inline sd_cell4 slice_hides4(const sd_slice *s, sd_cell4 c)
{
    const float c1 = s->has_occ ? s->c1 : -INFINITY;
    const sd_cell4 one = {1.0f, 1.0f, 1.0f, 1.0f};
    sd_cell4 f = (sd_cell4)((c < c1) & (sd_mask4)((c1 - c) * s->s12));
    sd_mask4 f1 = f < 1.0f;
    return (sd_cell4)((f1 & (sd_mask4)f) | (~f1 & (sd_mask4)one));
}

/* fine_main and fine_store of pixels [x, x + 4) of a row as the lanes of vectors (the same
 * arithmetic: the same bits); returns x + 4. irow, crow: the row's image and CoC; lay, lc, ho:
 * the row's cells. */
static inline int fine_main4(const sd_slice *s, const float *irow, ptrdiff_t pix, const float *restrict crow, int x,
                             float *restrict lay, float *restrict lc, float *restrict ho)
{
    const float mid = s->mid;
    const sd_cell4 mid4 = {mid, mid, mid, mid};
    sd_cell4 c = sd_cell_load(crow + x), m0, m1, m2;
    for (int j = 0; j < 4; j++) {
        const float *p = irow + (ptrdiff_t)(x + j) * pix;
        m0[j] = p[0];
        m1[j] = p[1];
        m2[j] = p[2];
    }
    sd_mask4 has = c == c; /* a NaN CoC: no main entry (t and f are 0 there already) */
    sd_cell4 t = slice_weight4(s, c), f = slice_hides4(s, c);
    /* +0 without a main entry, as fine_main's choices give it (t m is -0 for a negative m) */
    sd_cell4 l0 = (sd_cell4)(has & (sd_mask4)(t * m0)), l1 = (sd_cell4)(has & (sd_mask4)(t * m1));
    sd_cell4 l2 = (sd_cell4)(has & (sd_mask4)(t * m2)), wc = (sd_cell4)(has & (sd_mask4)(t * c));
    for (int j = 0; j < 4; j++) {
        float *o = lay + 4 * (ptrdiff_t)(x + j);
        o[0] = l0[j];
        o[1] = l1[j];
        o[2] = l2[j];
        o[3] = t[j];
    }
    sd_mask4 some = t > MIN_CELL_COVERAGE;
    sd_cell4 cc = (sd_cell4)((some & (sd_mask4)(wc / t)) | (~some & (sd_mask4)mid4));
    memcpy(lc + x, &cc, sizeof cc);
    memcpy(ho + x, &f, sizeof f); /* fine_store's bound of 1 holds already */
    return x + 4;
}
#endif

/* Level 0, frame row y: a row's main entries go first, in one loop without the extras'
 * bookkeeping, then the pixels with extras are gathered again with them (a matte's edge: few).
 * sl: the slice, a copy the stores cannot alias. Compiled a second time for AVX2 where the
 * toolchain can (SD_ROW_CLONES): the same arithmetic, the same bits, in about 14 % less time. */
SD_ROW_CLONES static void build_fine_row(sd_render_ctx *r, sd_slice sl, int y)
{
    const sd_slice *s = &sl;
    const sd_entries *e = r->e;
    int W = r->W;
    ptrdiff_t pix = e->img.pix;
    int xs = s->cell_x0[y], xe = s->cell_x1[y];
    const float *irow = e->img.data + (ptrdiff_t)y * e->img.row;
    const float *restrict crow = e->coc + (ptrdiff_t)y * W;
    ptrdiff_t o = s->cell_off[y];
    float *restrict lay = r->layer + 4 * o, *restrict lc = r->lcoc + o, *restrict ho = r->hole + o;
    int x = xs;
#if defined(__GNUC__)
    while (x + 4 <= xe) x = fine_main4(s, irow, pix, crow, x, lay, lc, ho);
#endif
    for (; x < xe; x++) {
        float l[4], wa, wc, h;
        fine_main(s, crow[x], irow + (ptrdiff_t)x * pix, l, &wa, &wc, &h);
        fine_store(lay + 4 * x, lc + x, ho + x, l, wa, wc, h, s->mid);
    }
    ptrdiff_t q = e->row_start[y], qe = e->row_start[y + 1];
    while (q < qe && e->x[q] < xs) q++;
    while (q < qe && e->x[q] < xe) fine_pixel(r, s, irow, e->x[q], y, o + e->x[q], &q, qe);
    r->bright[y] = (unsigned char)sd_any_bright(lay + 4 * xs, xe - xs); /* the row still in cache */
}

/* Level 0: every pixel is its own cell. */
static void build_fine(sd_render_ctx *r, const sd_slice *s)
{
    SD_PARALLEL_FOR_DYN(sd_threads_for(r->nt, slice_box_pixels(s)))
    for (int y = s->cy0; y < s->cy1; y++) build_fine_row(r, *s, y);
}

/* quick_row's terms of a frame row's n pixels of CoC crow: lrow[i] whether the pixel's main
 * entry has a share of the slice, hrow[i] the fraction of it the entry hides, by the arithmetic
 * of sd_slice_weight and sd_slice_hides (the same bits). A NaN CoC (no main entry) fails every
 * comparison: no share, nothing hidden. With GNU C, 4 pixels at a time as vectors, the choices as
 * masks: GCC keeps the scalar loop's choices as branches (a comparison may trap, to it). */
static void quick_terms(const sd_slice *s, const float *restrict crow, int n, float *restrict hrow,
                        unsigned char *restrict lrow)
{
    int i = 0;
#if defined(__GNUC__)
    for (; i + 4 <= n; i += 4) {
        sd_cell4 c = sd_cell_load(crow + i), f = slice_hides4(s, c);
        sd_mask4 lit = slice_weight4(s, c) > 0.0f;
        memcpy(hrow + i, &f, sizeof f);
        for (int j = 0; j < 4; j++) lrow[i + j] = (unsigned char)(lit[j] & 1);
    }
#endif
    for (; i < n; i++) {
        float c = crow[i], f = sd_slice_hides(s, c, 1.0f);
        lrow[i] = sd_slice_weight(s, c) > 0.0f;
        hrow[i] = f > 1.0f ? 1.0f : f;
    }
}

#if defined(__GNUC__)
/* quick_row's sums for 4 whole cells of bs pixels each, from the row's terms t and l at the first
 * cell's first pixel, as the lanes of a vector: each cell its pixels' terms in order, the scalar
 * loop's arithmetic (the same bits). */
static inline void quick_cells4(const float *t, const unsigned char *l, int bs, float *hs, unsigned char *any)
{
    sd_cell4 h = sd_cell_load(hs);
    for (int p = 0; p < bs; p++) {
        sd_cell4 a = {t[p], t[bs + p], t[2 * bs + p], t[3 * bs + p]};
        h += a;
    }
    memcpy(hs, &h, sizeof h);
    for (int j = 0; j < 4; j++)
        for (int p = 0; p < bs; p++) any[j] |= l[bs * j + p];
}
#endif

/* Cell row cy of a slice at level k > 0, before its cells are built: per cell cx, any[cx] whether
 * it holds anything of the slice (an entry with a share of it, or any extra entry: those take
 * the full path), and hs[cx] the hidden fraction of its pixels summed as the full path sums it
 * where it holds none (the same terms in the same order: row by row, left to right). Most cells
 * of a slice with holes lie under nearer content and hold none of it; this pass spares them the
 * full path's per-entry work. Each frame row's terms are taken first, in one loop over its
 * pixels, into hrow and lrow (as wide as the row's pixels); xp: per frame row of the cell row,
 * the first extra entry at or after the row's first cell. Returns how many cells hold any. */
static int quick_row(const sd_render_ctx *r, const sd_slice *s, int cy, const ptrdiff_t *xp, float *hs,
                     unsigned char *any, float *restrict hrow, unsigned char *restrict lrow)
{
    const sd_entries *e = r->e;
    int k = s->k, bs = 1 << k, cs = s->cell_x0[cy], ce = s->cell_x1[cy];
    int y0 = cy << k, y1 = imin(y0 + bs, r->H), px0 = cs << k, px1 = imin(ce << k, r->W);
    for (int cx = cs; cx < ce; cx++) {
        hs[cx] = 0.0f;
        any[cx] = 0;
    }
    for (int y = y0; y < y1; y++) {
        const float *restrict crow = e->coc + (ptrdiff_t)y * r->W + px0;
        int n = px1 - px0;
        quick_terms(s, crow, n, hrow, lrow);
        int cx = cs;
#if defined(__GNUC__)
        if (k <= 2) /* (bs a constant in each call, so that its loops unroll) */
            for (; cx + 4 <= ce && ((cx + 4) << k) - px0 <= n; cx += 4) {
                int i = (cx << k) - px0;
                if (k == 1) quick_cells4(hrow + i, lrow + i, 2, hs + cx, any + cx);
                else quick_cells4(hrow + i, lrow + i, 4, hs + cx, any + cx);
            }
#endif
        for (; cx < ce; cx++) {
            int i0 = (cx << k) - px0, i1 = imin(i0 + bs, n);
            float h = hs[cx];
            unsigned char lit = 0;
            for (int i = i0; i < i1; i++) {
                h += hrow[i];
                lit |= lrow[i];
            }
            hs[cx] = h;
            any[cx] |= lit;
        }
        for (ptrdiff_t q = xp[y - y0]; q < e->row_start[y + 1] && e->x[q] < px1; q++) any[e->x[q] >> k] = 1;
    }
    int lit = 0;
    for (int cx = cs; cx < ce; cx++) lit += any[cx];
    return lit;
}

/* Level k > 0: cell (cx, cy)'s light, CoC, hidden fraction and light centroid from the full
 * path's sums acc (see take_entry) and hsum. */
static inline void store_cell(sd_render_ctx *r, const sd_slice *s, int cy, int cx, const float *acc, float hsum,
                              float inv_area, float inv_bs)
{
    const float bs = (float)(1 << s->k);
    ptrdiff_t c = s->cell_off[cy] + cx;
    for (int ch = 0; ch < 4; ch++) r->layer[4 * c + ch] = acc[ch] * inv_area;
    r->lcoc[c] = acc[5] > MIN_CELL_COVERAGE ? acc[4] / acc[5] : s->mid;
    r->hole[c] = hsum * inv_area;
    float mx = ((float)cx + 0.5f) * bs, my = ((float)cy + 0.5f) * bs;
    /* the light's centroid, kept inside the cell (light so bright its weights overflow has
     * none: the cell centre) */
    float px = acc[6] > 0.0f ? (acc[7] / acc[6] - mx) * inv_bs : 0.0f;
    float py = acc[6] > 0.0f ? (acc[8] / acc[6] - my) * inv_bs : 0.0f;
    r->pos[2 * c] = px >= -0.5f && px <= 0.5f ? px : 0.0f;
    r->pos[2 * c + 1] = py >= -0.5f && py <= 0.5f ? py : 0.0f;
}

#if defined(__GNUC__)
/* Whether no pixel of frame rows [y0, y1) before column xe has an extra entry from xp on (xp:
 * per row, the next one). */
static inline int no_extras_before(const sd_entries *e, const ptrdiff_t *xp, int y0, int y1, int xe)
{
    for (int y = y0; y < y1; y++) {
        ptrdiff_t q = xp[y - y0];
        if (q < e->row_start[y + 1] && e->x[q] < xe) return 0;
    }
    return 1;
}

/* Level k > 0, the full path for cells cx .. cx + 3 of cell row cy, all bs pixels wide and
 * without extra entries: a cell per lane, its pixels in the full path's order and with its
 * arithmetic (the same bits: take_entry of a main entry, whose coverage is 1, and an add of +0
 * where it takes nothing, which leaves a sum that starts at +0 as it is). The four cells' chains
 * of additions run side by side instead of one after the other. */
static void build_cells4(sd_render_ctx *r, const sd_slice *s, int cy, int cx, float inv_area, float inv_bs)
{
    const sd_entries *e = r->e;
    const int k = s->k, bs = 1 << k, y0 = cy << k, y1 = imin(y0 + bs, r->H);
    const sd_cell4 zero = {0.0f, 0.0f, 0.0f, 0.0f}, one = {1.0f, 1.0f, 1.0f, 1.0f};
    const sd_mask4 magnitude = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff}; /* fabsf's bits */
    sd_cell4 acc[9], hsum = zero;
    for (int a = 0; a < 9; a++) acc[a] = zero;
    const ptrdiff_t pix = e->img.pix;
    for (int y = y0; y < y1; y++) {
        const float *crow = e->coc + (ptrdiff_t)y * r->W, *irow = e->img.data + (ptrdiff_t)y * e->img.row;
        const float py = (float)y + 0.5f;
        for (int i = 0; i < bs; i++) {
            sd_cell4 c, q0, q1, q2, px;
            for (int j = 0; j < 4; j++) {
                int x = ((cx + j) << k) + i;
                const float *p = irow + (ptrdiff_t)x * pix;
                c[j] = crow[x];
                q0[j] = p[0];
                q1[j] = p[1];
                q2[j] = p[2];
                px[j] = (float)x + 0.5f;
            }
            sd_cell4 t = slice_weight4(s, c); /* a NaN CoC, no main entry: no share */
            sd_mask4 take = t > 0.0f;
            sd_cell4 tq3 = t * one; /* t q[3], the main entry's coverage being 1 */
            sd_cell4 en = t * ((((sd_cell4)((sd_mask4)q0 & magnitude) + (sd_cell4)((sd_mask4)q1 & magnitude)) +
                                (sd_cell4)((sd_mask4)q2 & magnitude)) + one);
            acc[0] += (sd_cell4)(take & (sd_mask4)(t * q0));
            acc[1] += (sd_cell4)(take & (sd_mask4)(t * q1));
            acc[2] += (sd_cell4)(take & (sd_mask4)(t * q2));
            acc[3] += (sd_cell4)(take & (sd_mask4)tq3);
            acc[4] += (sd_cell4)(take & (sd_mask4)(tq3 * c));
            acc[5] += (sd_cell4)(take & (sd_mask4)tq3);
            acc[6] += (sd_cell4)(take & (sd_mask4)en);
            acc[7] += (sd_cell4)(take & (sd_mask4)(en * px));
            acc[8] += (sd_cell4)(take & (sd_mask4)(en * py));
            /* the pixel's hidden fraction: its main entry's (an h of 0 plus it, at most 1 already) */
            hsum += slice_hides4(s, c);
        }
    }
    for (int j = 0; j < 4; j++) {
        float a[9];
        for (int q = 0; q < 9; q++) a[q] = acc[q][j];
        store_cell(r, s, cy, cx + j, a, hsum[j], inv_area, inv_bs);
    }
}
#endif

/* Per thread of sd_layer_build at level k > 0: quick_row's sums (hs, any: per cell of a row;
 * NULL: every cell takes the full path), its frame row terms (qrow, qlit) and how many more cell
 * rows skip the quick pass. */
typedef struct {
    float *hs, *qrow;
    unsigned char *any, *qlit;
    int skip;
} build_scratch;

/* Level k > 0, cell row cy (q: the calling thread's scratch). Compiled a second time for AVX2
 * where the toolchain can (SD_ROW_CLONES): the same arithmetic, the same bits, in about 11 % less
 * time. */
SD_ROW_CLONES static void build_cell_row(sd_render_ctx *r, const sd_slice *s, int cy, build_scratch *q)
{
    const sd_entries *e = r->e;
    int H = r->H, W = r->W, k = s->k, bs = 1 << k;
    float inv_area = 1.0f / (float)(bs * bs), inv_bs = 1.0f / (float)bs;
    int y0 = cy << k, y1 = imin(y0 + bs, H);
    ptrdiff_t xp[1 << SD_MAX_SLICE_LEVEL]; /* per frame row of the cell row: the next extra entry */
    int cs = s->cell_x0[cy], ce = s->cell_x1[cy];
    for (int y = y0; y < y1; y++) {
        ptrdiff_t p = e->row_start[y], pe = e->row_start[y + 1];
        while (p < pe && e->x[p] < (cs << k)) p++;
        xp[y - y0] = p;
    }
    float *hs = q->hs ? q->hs - cs : NULL;
    unsigned char *any = q->any ? q->any - cs : NULL;
    /* Rows of mostly content gain nothing from the quick pass: after one, a thread's next
     * QUICK_REST rows take the full path (which path a cell takes never changes its bits). */
    int quick = q->hs && q->skip == 0;
    if (quick && 4 * quick_row(r, s, cy, xp, hs, any, q->qrow, q->qlit) > 3 * (ce - cs))
        q->skip = QUICK_REST;
    else if (!quick && q->hs)
        q->skip--;
    for (int cx = cs; cx < ce; cx++) {
        int x0 = cx << k, x1 = imin(x0 + bs, W);
        if (quick && !any[cx]) { /* none of the slice here: only the hidden fraction */
            ptrdiff_t c = s->cell_off[cy] + cx;
            for (int ch = 0; ch < 4; ch++) r->layer[4 * c + ch] = 0.0f;
            r->lcoc[c] = s->mid;
            r->hole[c] = hs[cx] * inv_area;
            r->pos[2 * c] = r->pos[2 * c + 1] = 0.0f;
            continue;
        }
#if defined(__GNUC__)
        if (cx + 4 <= ce && (cx + 4) << k <= W && (!quick || (any[cx + 1] && any[cx + 2] && any[cx + 3])) &&
            no_extras_before(e, xp, y0, y1, (cx + 4) << k)) {
            build_cells4(r, s, cy, cx, inv_area, inv_bs);
            cx += 3;
            continue;
        }
#endif
        float acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, hsum = 0.0f;
        for (int y = y0; y < y1; y++) {
            ptrdiff_t p = xp[y - y0], pe = e->row_start[y + 1];
            for (int x = x0; x < x1; x++) {
                float h = 0.0f, px = (float)x + 0.5f, py = (float)y + 0.5f;
                float mq[4], mc;
                if (sd_main_entry(e, x, y, mq, &mc)) take_entry(s, mq, mc, px, py, acc, &h);
                for (; p < pe && e->x[p] == x; p++) take_entry(s, e->xrgba + 4 * p, e->xcoc[p], px, py, acc, &h);
                hsum += h > 1.0f ? 1.0f : h;
            }
            xp[y - y0] = p;
        }
        store_cell(r, s, cy, cx, acc, hsum, inv_area, inv_bs);
    }
    r->bright[cy] = (unsigned char)sd_any_bright(r->layer + 4 * (s->cell_off[cy] + cs), ce - cs);
}

/* Gathers the slice's content and the hidden fraction over its cells. */
void sd_layer_build(sd_render_ctx *r, const sd_slice *s)
{
    if (s->k == 0) {
        build_fine(r, s);
        return;
    }
    int k = s->k, nt = sd_threads_for(r->nt, slice_box_pixels(s));
    /* per thread, per cell of a row: the hidden fraction summed (quick_row) and whether the cell
     * holds any of the slice (NULL: every cell takes the full path) */
    int wc = imax(s->cx1 - s->cx0, 1), wp = wc << k; /* cells, pixels of a row */
    float *qsum = malloc((2 * sizeof(float) + 2) * (size_t)nt * (size_t)wp);
    float *qrow = qsum ? qsum + (size_t)nt * (size_t)wc : NULL;
    unsigned char *qany = qsum ? (unsigned char *)(qrow + (size_t)nt * (size_t)wp) : NULL;
    unsigned char *qlit = qsum ? qany + (size_t)nt * (size_t)wc : NULL;
    build_scratch scratch[SD_MAX_THREADS];
    for (int t = 0; t < nt; t++) {
        ptrdiff_t c = (ptrdiff_t)t * wc, p = (ptrdiff_t)t * wp;
        scratch[t] = qsum ? (build_scratch){qsum + c, qrow + p, qany + c, qlit + p, 0} : (build_scratch){0};
    }
    SD_PARALLEL_FOR_DYN(nt)
    for (int cy = s->cy0; cy < s->cy1; cy++) build_cell_row(r, s, cy, &scratch[sd_thread_id()]);
    free(qsum);
}

/* Mean of the background plate over the frame pixels of cell (cx, cy) of level k (the hidden
 * fraction it is weighted with already counts only those). */
static void plate_mean(const sd_render_ctx *r, int k, int cx, int cy, float *m)
{
    int y1 = imin((cy + 1) << k, r->H), x1 = imin((cx + 1) << k, r->W);
    int n = (y1 - (cy << k)) * (x1 - (cx << k));
    m[0] = m[1] = m[2] = 0.0f;
    for (int y = cy << k; y < y1; y++)
        for (int x = cx << k; x < x1; x++)
            for (int c = 0; c < 3; c++) m[c] += r->plate[3 * ((ptrdiff_t)y * r->W + x) + c];
    for (int c = 0; c < 3; c++) m[c] /= (float)(n > 0 ? n : 1);
}

/* Whether cell x of row y of the fill's grid (rows of it) is built and hidden in part. */
static inline int hidden_at(const sd_render_ctx *r, int y, int x, int rows)
{
    if (y < 0 || y >= rows || x < r->fill_x0[y] || x >= r->fill_x1[y]) return 0;
    return r->hole[r->fill_off[y] + x] > 0.0f;
}

/* Whether cell x of fill row y (rows of them) is an isolated highlight where the mean around is
 * m that touches no hidden cell. */
static inline int lone_light(const sd_render_ctx *r, int y, int x, int rows, float m)
{
    return sd_is_highlight(r->layer + 4 * (r->fill_off[y] + x), m) && !hidden_at(r, y, x, rows) &&
           !hidden_at(r, y - 1, x, rows) && !hidden_at(r, y + 1, x, rows) && !hidden_at(r, y, x - 1, rows) &&
           !hidden_at(r, y, x + 1, rows);
}

/* What the fill continues behind an occluder is the slice's surface, not a light beside the
 * occluder's edge (it came out as a glow along the edge): an isolated highlight that touches no
 * hidden cell gives the fill only the mean light of the rest of the cells around it (at its own
 * coverage); one the occluder cuts is continued as it is. Only the cells within twice the blur's
 * radius of the hidden cells' box [hy0, hy1) x [hx0, hx1) (fill grid rows and columns) are
 * looked at: farther lights hardly reach the fill of the hidden cells, and only where a light
 * outshines the frame around it (sd_highlight_frame; the fill's grid starts at cell (oy, ox) of
 * the slice's level). Their light is kept in *kept_out (the cells of each row's span in t0, t1,
 * row after row) for restore_lights. Returns 0, or -1 on OOM. */
static int tame_lights(sd_render_ctx *r, const sd_slice *s, int oy, int ox, int rows, int cols, int hy0, int hy1,
                       int hx0, int hx1, int *t0, int *t1, float **kept_out)
{
    *kept_out = NULL;
    for (int y = 0; y < rows; y++) t0[y] = t1[y] = 0;
    float radius = sd_radius(s->mid, r->pyr->rcap) / (float)(1 << s->k);
    int w = imax(sd_iceil(radius), 1);
    /* the cells looked at, and those around them that the means take in */
    int ly0 = imax(hy0 - 2 * w, 0), ly1 = imin(hy1 + 2 * w, rows), lx0 = imax(hx0 - 2 * w, 0), lx1 = imin(hx1 + 2 * w, cols);
    int gy0 = imax(ly0 - w, 0), gy1 = imin(ly1 + w, rows), gx0 = imax(lx0 - w, 0), gx1 = imin(lx1 + w, cols);
    int gr = gy1 - gy0, gc = gx1 - gx0;
    if (!sd_rows_bright(r->bright, oy + ly0, oy + ly1)) return 0; /* no cell there can be a highlight */
    int *span = malloc(sizeof(int) * 2 * (size_t)gr);
    if (!span) return -1;
    for (int y = gy0; y < gy1; y++) {
        int a = imax(r->fill_x0[y], gx0), e = imin(r->fill_x1[y], gx1);
        span[y - gy0] = a < e ? a : gx0;
        span[gr + y - gy0] = a < e ? e : gx0;
    }
    sd_hl_blocks g;
    float *peak;
    float *mean = sd_highlight_means(r->layer, gr, gc, gx0, span, span + gr, r->fill_off + gy0, r->bright + oy + gy0,
                                     radius, r->nt, &g, &peak);
    free(span);
    if (!mean) return -1;
    int lit = sd_highlight_frame(r, s->k, oy + gy0, ox + gx0, gr, gc, &g, mean, peak);
    if (lit <= 0) { /* none to tame */
        free(mean);
        free(peak);
        return lit;
    }
    const int B = g.B, bw = g.bw;
    size_t nb = (size_t)g.bh * (size_t)bw;
    double *hl = calloc(2 * nb, sizeof(double)), *hn = hl + nb; /* per block: the highlights' light, count */
    if (!hl) {
        free(mean);
        free(peak);
        return -1;
    }
    /* the highlights (per block), and the rows that have lights to tame */
    SD_PARALLEL_FOR_DYN(r->nt)
    for (int by = 0; by < g.bh; by++)
        for (int y = gy0 + by * B; y < imin(gy0 + (by + 1) * B, gy1); y++) {
            int a = r->fill_x1[y], b = r->fill_x0[y];
            const float *mrow = mean + (ptrdiff_t)by * bw;
            const float *l = r->layer + 4 * r->fill_off[y];
            int xs = imax(r->fill_x0[y], gx0), xe = imin(r->fill_x1[y], gx1);
            for (int bx = (xs - gx0) / B; gx0 + bx * B < xe; bx++) {
                if (!(peak[(ptrdiff_t)by * bw + bx] > SD_HIGHLIGHT_OVER_MEAN * mrow[bx])) continue; /* none here */
                for (int x = imax(xs, gx0 + bx * B); x < imin(xe, gx0 + (bx + 1) * B); x++) {
                    const float *q = l + 4 * x;
                    if (!sd_is_highlight(q, mrow[bx])) continue;
                    hl[(ptrdiff_t)by * bw + bx] += (double)q[0] + q[1] + q[2];
                    hn[(ptrdiff_t)by * bw + bx] += 1.0;
                    if (y < ly0 || y >= ly1 || x < lx0 || x >= lx1 || !lone_light(r, y, x, rows, mrow[bx])) continue;
                    a = x < a ? x : a;
                    b = x + 1;
                }
            }
            if (y >= ly0 && y < ly1) {
                t0[y] = a < b ? a : 0;
                t1[y] = a < b ? b : 0;
            }
        }
    /* each such light cut to the mean of the rest of the cells around it (its block's); the
     * light of the cells of each row's span is kept, a row after the other */
    ptrdiff_t nkept = 0;
    for (int y = 0; y < rows; y++) nkept += t1[y] - t0[y];
    float *kept_all = malloc(sizeof(float) * 4 * (size_t)(nkept > 0 ? nkept : 1));
    if (!kept_all) {
        free(mean);
        free(peak);
        free(hl);
        return -1;
    }
    SD_PARALLEL_FOR_CHUNKS(r->nt)
    for (int y = ly0; y < ly1; y++) {
        if (t0[y] >= t1[y]) continue;
        int by = (y - gy0) / B;
        ptrdiff_t before = 0;
        for (int j = 0; j < y; j++) before += t1[j] - t0[j];
        float *l = r->layer + 4 * r->fill_off[y], *kept = kept_all + 4 * (before - t0[y]);
        for (int x = t0[y]; x < t1[y]; x++) {
            int bx = (x - gx0) / B;
            float m = mean[(ptrdiff_t)by * bw + bx];
            if (!lone_light(r, y, x, rows, m)) {
                kept[4 * x + 3] = 0.0f;
                continue;
            }
            int ya, yb, xa, xb;
            double area = sd_hl_around(&g, gr, gc, by, bx, &ya, &yb, &xa, &xb), sum = 0.0, n = 0.0;
            for (int j = ya; j < yb; j++)
                for (int i = xa; i < xb; i++) {
                    sum += hl[(ptrdiff_t)j * bw + i];
                    n += hn[(ptrdiff_t)j * bw + i];
                }
            float rest = n < area ? (float)(((double)m * area - sum) / (area - n)) : 0.0f;
            float *q = l + 4 * x;
            float f = (rest > 0.0f ? rest : 0.0f) * q[3] / (q[0] + q[1] + q[2]);
            f = f < 1.0f ? f : 1.0f;
            for (int c = 0; c < 3; c++) {
                kept[4 * x + c] = q[c];
                q[c] *= f;
            }
            kept[4 * x + 3] = 1.0f; /* restore_lights: put back */
        }
    }
    free(mean);
    free(peak);
    free(hl);
    *kept_out = kept_all;
    return 0;
}

/* Puts back the light tame_lights kept (and frees it; NULL: none kept). */
static void restore_lights(sd_render_ctx *r, int rows, const int *t0, const int *t1, float *kept_all)
{
    if (!kept_all) return;
    ptrdiff_t before = 0;
    for (int y = 0; y < rows; y++) {
        float *l = r->layer + 4 * r->fill_off[y];
        const float *kept = kept_all + 4 * (before - t0[y]);
        for (int x = t0[y]; x < t1[y]; x++)
            if (kept[4 * x + 3] == 1.0f)
                for (int c = 0; c < 3; c++) l[4 * x + c] = kept[4 * x + c];
        before += t1[y] - t0[y];
    }
    free(kept_all);
}

/* dst: the blocks within rad blocks (across and down) of a set block of src (bw x bh); tmp as
 * large, last bw ints. */
static void dilate_blocks(const unsigned char *src, unsigned char *dst, unsigned char *tmp, int *last, int bw, int bh,
                          int rad)
{
    for (int y = 0; y < bh; y++) { /* across: the latest set block at or left of x + rad */
        const unsigned char *s = src + (ptrdiff_t)y * bw;
        unsigned char *d = tmp + (ptrdiff_t)y * bw;
        int seen = -1 - 2 * rad;
        for (int x = 0; x < bw + rad; x++) {
            if (x < bw && s[x]) seen = x;
            if (x >= rad) d[x - rad] = (unsigned char)(x - seen <= 2 * rad);
        }
    }
    for (int x = 0; x < bw; x++) last[x] = -1 - 2 * rad;
    for (int y = 0; y < bh + rad; y++) { /* down, a row at a time: the latest set row per column */
        if (y < bh) {
            const unsigned char *t = tmp + (ptrdiff_t)y * bw;
            for (int x = 0; x < bw; x++) last[x] = t[x] ? y : last[x];
        }
        if (y >= rad) {
            unsigned char *d = dst + (ptrdiff_t)(y - rad) * bw;
            for (int x = 0; x < bw; x++) d[x] = (unsigned char)(y - last[x] <= 2 * rad);
        }
    }
}

/* The blocks of the fill's grid (SD_FILL_BLOCK cells a side, from the grid's origin) whose hidden
 * cells can show the fill (need): those holding a hidden cell within the slice's fill reach of a
 * cell not wholly hidden (cells outside the rows' spans included: seen and empty). Farther in,
 * the fill spread by the slice's blur lands only on pixels that what hides them covers wholly,
 * even blurred; and
 * where that cover is a noisy surface's speckle of slices, whose coverage sums to a little under
 * 1, such fill showed through it (the wall behind a subject of noisy depth).
 * With on[1], on[2], pulled and empty of m the blocks the fill's levels 1 and 2 must reach for
 * need's cells to get the fill of the whole grid (sd_fill_mask). Returns 1 if some block needs no
 * fill (m and need set), 0 if every block does (the grid's whole fill), -1 out of memory; *buf to
 * be freed. */
static int fill_blocks(const sd_render_ctx *r, const sd_slice *s, int rows, int cols, sd_fill_mask *m,
                       const unsigned char **need, unsigned char **buf)
{
    const int B = SD_FILL_BLOCK;
    int bw = (cols + B - 1) / B, bh = (rows + B - 1) / B;
    size_t nb = (size_t)bw * (size_t)bh;
    unsigned char *p = calloc(11 * nb + sizeof(int) * (size_t)bw, 1);
    *buf = p;
    if (!p) return -1;
    int *last = (int *)p; /* first: calloc's alignment */
    unsigned char *content = p + sizeof(int) * (size_t)bw, *tmp = content + nb, *nd = content + 2 * nb;
    unsigned char *on1 = content + 3 * nb, *on2 = content + 4 * nb, *hidden = content + 5 * nb;
    /* per block: some cell outside the rows' spans, some inside, some inside with a weight in the
     * fill (visible by more than SD_FILL_MIN_VISIBLE); the blocks pulled, those seen and empty */
    unsigned char *out = content + 6 * nb, *in = content + 7 * nb, *weighted = content + 8 * nb;
    unsigned char *pulled = content + 9 * nb, *empty = content + 10 * nb;
    SD_PARALLEL_FOR_CHUNKS(sd_threads_for(r->nt, (ptrdiff_t)rows * cols))
    for (int by = 0; by < bh; by++)
        for (int y = by * B; y < imin(by * B + B, rows); y++) {
            const float *h = r->hole + r->fill_off[y];
            ptrdiff_t row = (ptrdiff_t)by * bw;
            unsigned char *c = content + row, *hb = hidden + row, *wb = weighted + row;
            int x0 = r->fill_x0[y], x1 = r->fill_x1[y];
            if (x0 >= x1) x0 = x1 = cols;
            if (x0 > 0) memset(out + row, 1, (size_t)((x0 - 1) / B + 1)); /* not built: seen, empty */
            if (x1 < cols) memset(out + row + x1 / B, 1, (size_t)((cols - 1) / B - x1 / B + 1));
            if (x0 < x1) memset(in + row + x0 / B, 1, (size_t)((x1 - 1) / B - x0 / B + 1));
            for (int bx = x0 / B; bx * B < x1; bx++) { /* a block's cells of the row at a time */
                int seen = 0, hid = 0, weight = 0;
                for (int x = imax(x0, bx * B); x < imin(x1, bx * B + B); x++) {
                    seen |= !(h[x] >= 1.0f);
                    hid |= !(h[x] <= 0.0f);
                    weight |= 1.0f - h[x] > SD_FILL_MIN_VISIBLE; /* the pull's weight test */
                }
                c[bx] |= (unsigned char)seen;
                hb[bx] |= (unsigned char)hid;
                wb[bx] |= (unsigned char)weight;
            }
        }
    for (size_t i = 0; i < nb; i++) content[i] |= out[i];
    int reach = (s->fill_reach + (1 << s->k) - 1) >> s->k;
    dilate_blocks(content, nd, tmp, last, bw, bh, (reach + B - 1) / B);
    /* a block without hidden cells has nothing to fill: left out, it leaves on[1] and on[2] to the
     * blocks that have (outside the rows' spans, most of a grid laid around a ring) */
    size_t set = 0;
    for (size_t i = 0; i < nb; i++) {
        nd[i] &= hidden[i];
        set += nd[i];
    }
    if (set == nb) return 0;
    dilate_blocks(nd, on1, tmp, last, bw, bh, SD_FILL_PUSH_MARGIN);
    dilate_blocks(on1, on2, tmp, last, bw, bh, SD_FILL_PUSH_MARGIN2);
    /* Beyond a block around on[2], the blocks of one kind (all seen and empty, or all without
     * weight) need not be pulled at levels 1 and 2: on a ring's grid, most of it. */
    dilate_blocks(on2, pulled, tmp, last, bw, bh, 1);
    for (size_t i = 0; i < nb; i++) {
        empty[i] = out[i] && !in[i];
        pulled[i] |= !(empty[i] || (in[i] && !out[i] && !weighted[i]));
    }
    m->on[0] = NULL;
    m->on[1] = on1;
    m->on[2] = on2;
    m->pulled = pulled;
    m->empty = empty;
    m->bw = bw;
    *need = nd;
    return 1;
}

/* Continues the slice's surfaces behind what hides them: push-pull of the content seen per
 * visible fraction, kept only where the filled coverage is substantial, so a surface (a wall
 * behind a head, a body behind a railing) carries on while sparse specks (distant lights) are
 * not smeared into a glow. With a plate, its colour is used for what is filled in. */
sd_status sd_layer_fill(sd_render_ctx *r, const sd_slice *s)
{
    int k = s->k;
    /* the hidden cells' bounding box [hy0, hy1) x [hx0, hx1), from each cell row's span */
    int *h0 = r->reach_x0, *h1 = r->reach_x1; /* free once the slices are planned */
    SD_PARALLEL_FOR_CHUNKS(sd_threads_for(r->nt, (ptrdiff_t)(s->cy1 - s->cy0) * (s->cx1 - s->cx0)))
    for (int cy = s->cy0; cy < s->cy1; cy++) {
        /* the first and the last hidden cell, each found from its end of the row */
        int a = s->cell_x0[cy], b = s->cell_x1[cy];
        const float *hr = r->hole + s->cell_off[cy];
        while (a < b && !(hr[a] > 0.0f)) a++;
        while (b > a && !(hr[b - 1] > 0.0f)) b--;
        h0[cy - s->cy0] = a < b ? a : s->cell_x1[cy];
        h1[cy - s->cy0] = a < b ? b : s->cell_x0[cy];
    }
    int hy0 = s->cy1, hy1 = s->cy0, hx0 = s->cx1, hx1 = s->cx0;
    for (int cy = s->cy0; cy < s->cy1; cy++)
        if (h0[cy - s->cy0] < h1[cy - s->cy0]) {
            hy0 = imin(hy0, cy);
            hy1 = cy + 1;
            hx0 = imin(hx0, h0[cy - s->cy0]);
            hx1 = imax(hx1, h1[cy - s->cy0]);
        }
    if (hy0 >= hy1) return SD_OK; /* nothing hidden after all */
    /* The fill's grid: that box grown by SLICE_FILL_MARGIN_CELLS cells, within the slice's box, its origin a
     * multiple of SLICE_FILL_ALIGN_CELLS cells from the slice box's so that its coarse cells are
     * the same whatever the crop. Farther cells hardly move the fill of the hidden ones; cells outside
     * the rows' ranges were not built: seen and empty, to the fill. */
    const int M = SLICE_FILL_MARGIN_CELLS, A = SLICE_FILL_ALIGN_CELLS;
    int grid_y0 = s->cy0 + imax(hy0 - M - s->cy0, 0) / A * A;
    int grid_x0 = s->cx0 + imax(hx0 - M - s->cx0, 0) / A * A;
    int grid_y1 = imin(hy1 + M, s->cy1), grid_x1 = imin(hx1 + M, s->cx1);
    int rows = grid_y1 - grid_y0, cols = grid_x1 - grid_x0;
    for (int cy = grid_y0; cy < grid_y1; cy++) {
        int a = imax(s->cell_x0[cy], grid_x0), b = imin(s->cell_x1[cy], grid_x1);
        r->fill_x0[cy - grid_y0] = a < b ? a - grid_x0 : 0;
        r->fill_x1[cy - grid_y0] = a < b ? b - grid_x0 : 0;
        r->fill_off[cy - grid_y0] = s->cell_off[cy] + grid_x0;
    }
    sd_fillpyr f;
    sd_fill_mask mask;
    const unsigned char *need = NULL; /* per block of the grid: whether its hidden cells are filled (NULL: all) */
    unsigned char *blocks = NULL;
    if (rows > 1 || cols > 1) {
        int gaps = fill_blocks(r, s, rows, cols, &mask, &need, &blocks);
        int *tamed = gaps < 0 ? NULL : malloc(sizeof(int) * 2 * (size_t)rows);
        float *kept = NULL;
        if (!tamed || tame_lights(r, s, grid_y0, grid_x0, rows, cols, hy0 - grid_y0, hy1 - grid_y0, hx0 - grid_x0,
                                  hx1 - grid_x0, tamed, tamed + rows, &kept) < 0) {
            free(tamed);
            free(blocks);
            return SD_ERR_NOMEM;
        }
        sd_fill_build(&f, r->fillws, rows, cols, 4, r->layer, 0, NULL, r->hole, 0, r->fill_x0, r->fill_x1, r->fill_off,
                      gaps ? &mask : NULL, r->nt);
        restore_lights(r, rows, tamed, tamed + rows, kept);
        free(tamed);
    } else {
        f.n = 1;
    }
    SD_PARALLEL_FOR_DYN(sd_threads_for(r->nt, (ptrdiff_t)(hy1 - hy0) * (hx1 - hx0)))
    for (int cy = hy0; cy < hy1; cy++) {
        /* the row's hidden cells, and the coarse fill interpolated over them */
        int xa = h0[cy - s->cy0], xb = h1[cy - s->cy0];
        sd_fill_row fr = {NULL, NULL, 0.0f, 0};
        if (xa < xb && f.n > 1) fr = sd_fill_row_of(&f, cy - grid_y0);
        const unsigned char *nrow = need ? need + (ptrdiff_t)((cy - grid_y0) / SD_FILL_BLOCK) * mask.bw : NULL;
        int bright = 0; /* whether a cell filled here became brighter than white */
        for (int cx = xa; cx < xb; cx++) {
            if (nrow && !nrow[(cx - grid_x0) / SD_FILL_BLOCK]) { /* beyond the fill's reach: to the block's end */
                cx = grid_x0 + ((cx - grid_x0) / SD_FILL_BLOCK + 1) * SD_FILL_BLOCK - 1;
                continue;
            }
            ptrdiff_t i = s->cell_off[cy] + cx;
            float h = r->hole[i];
            if (h <= 0.0f) continue; /* nothing hidden: its fill is never sampled */
            float *l = r->layer + 4 * i;
            float vis = 1.0f - h, w = vis > SD_FILL_MIN_VISIBLE ? vis : 0.0f, up[4];
            if (f.n > 1) {
                /* The coverage below is own + (1 - w) up[3], up[3] a convex mix of 4 coarse cells'
                 * coverage. Where that cannot reach FILL_KEEP_FROM, the cell keeps nothing, so its
                 * fill is not interpolated: most hidden cells, behind the thin ring that a depth
                 * blurred across a silhouette leaves in every slice between the two sides. The
                 * margin of 1e-4 is far above the rounding of sums whose terms are all of order
                 * 1 (own > -1 and the bound under 0.25 keep them so). */
                float own = w > 0.0f ? l[3] : 0.0f, m = sd_fill_row_max3(&fr, cx - grid_x0);
                if (own > -1.0f && own + (m > 0.0f ? m : 0.0f) < FILL_KEEP_FROM - 1e-4f) continue;
                sd_fill_row_at(&fr, cx - grid_x0, up);
            } else
                for (int c = 0; c < 4; c++) up[c] = w > 0.0f ? l[c] / w : 0.0f;
            float fv[4];
            for (int c = 0; c < 4; c++) fv[c] = (w > 0.0f ? l[c] : 0.0f) + (1.0f - w) * up[c];
            float fa = fv[3] > 1.0f ? 1.0f : fv[3];
            float g = smoothstep(FILL_KEEP_FROM, FILL_KEEP_FULL, fa);
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
            bright |= sd_is_bright(l);
        }
        if (bright) r->bright[cy] = 1;
    }
    free(blocks);
    return SD_OK;
}
