/* Composite stage and the render's driver (sd_render in sd_core.h): depth-ordered compositing of
 * scattered slices.
 *
 * The CoC axis is cut into slices; every entry (sd_entries.c) goes to the slice centre it lies
 * near, or is split linearly between the two around its CoC in the middle of their gap
 * (sd_slices.c, sd_slice_weight). Near to far, each slice gathers its content, fills
 * in what nearer slices hide of it (sd_layer.c), is scattered with every entry's own CoC
 * (sd_scatter.c) and composited under what is already there (composite, here). A slice whose
 * content is mostly blurred by more than ~20 px (radius) is built, filled and scattered on a
 * coarser grid (2^k x 2^k pixels a cell, the level most of its light would be spread at
 * anyway): a blur that wide holds no finer detail, and it keeps the cost of the wide slices at a
 * fraction of the frame. Compositing stays at full resolution, because what hides a slice (a
 * sharp subject in front of a blurred wall) has detail down to the pixel. Every step only visits
 * the rows and columns a slice's content, or its blur, reaches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_core.h"
#include "sd_entries.h"
#include "sd_fill.h"
#include "sd_highlight.h"
#include "sd_layer.h"
#include "sd_parallel.h"
#include "sd_prof.h"
#include "sd_pyramid.h"
#include "sd_render.h"
#include "sd_slices.h"
#include "sd_util.h"
#include "sd_window.h"

/* The composite marks each pixel with the latest slice that covered it as that slice's index
 * + 2 (and checks index + 1) in a byte: at most this many slices. */
#define MAX_STAMPED_SLICES 250
_Static_assert(SD_MAX_SLICES + 1 <= MAX_STAMPED_SLICES, "slice stamps do not fit in a byte");

/* A pixel with less coverage than this (a hole nothing filled) keeps its accumulated colour as
 * it is instead of being divided by it. */
#define MIN_PIXEL_COVERAGE 1e-6f

/* The horizontal interpolation of a level-k slice onto the frame's columns [sb.x0, sb.x1): the
 * coarse cell left of each column and its weight, in r->colidx and r->colw (the same for every
 * row). */
void sd_render_columns(sd_render_ctx *r, int k, sd_box sb)
{
    if (k == 0) return;
    int bs = 1 << k, nx = (r->W + bs - 1) >> k;
    float s = 1.0f / (float)bs;
    for (int x = sb.x0; x < sb.x1; x++) {
        int x1;
        sd_lerp_cell(x, s, nx, &r->colidx[x], &x1, &r->colw[x]);
        /* the last cell interpolates from the one before it with weight 1 */
        if (r->colidx[x] >= nx - 1) {
            r->colidx[x] = nx - 1 > 0 ? nx - 2 : 0;
            r->colw[x] = nx > 1 ? 1.0f : 0.0f;
        }
    }
}

const float *sd_render_row(const sd_render_ctx *r, sd_pyramid *p, int k, sd_box sb, int y, int *xa, int *xb)
{
    *xa = sb.x1;
    *xb = sb.x0;
    if (k == 0) {
        sd_pyr_row_span(p, y, xa, xb);
        *xa = imax(*xa, sb.x0);
        *xb = imin(*xb, sb.x1);
        return sd_pyr_row(p, y);
    }
    int bs = 1 << k;
    int ny = (r->H + bs - 1) >> k, nx = (r->W + bs - 1) >> k;
    float s = 1.0f / (float)bs, area = s * s;
    float *vrow = r->rowbuf + (ptrdiff_t)sd_thread_id() * r->rowbuf_stride;
    int y0, y1;
    float wy;
    sd_lerp_cell(y, s, ny, &y0, &y1, &wy);
    const float *r0 = sd_pyr_row(p, y0), *r1 = sd_pyr_row(p, y1);
    int a0, a1, b0, b1;
    sd_pyr_row_span(p, y0, &a0, &a1);
    sd_pyr_row_span(p, y1, &b0, &b1);
    int ca = a0 < a1 ? a0 : b0, cb = a0 < a1 ? a1 : b1;
    if (a0 < a1 && b0 < b1) {
        ca = imin(a0, b0);
        cb = imax(a1, b1);
    }
    /* the pixels below cover cells up to two either side of the lit ones */
    int c0 = imax(ca - 2, 0), c1 = imin(cb + 2, nx);
    for (int c = c0; c < c1; c++)
        for (int ch = 0; ch < 4; ch++) vrow[4 * c + ch] = area * ((1.0f - wy) * r0[4 * c + ch] + wy * r1[4 * c + ch]);
    if (ca < cb) { /* pixels whose interpolation reaches a lit cell */
        *xa = imax((ca - 1) * bs + (bs >> 1), sb.x0);
        *xb = imin((cb + 1) * bs - (bs >> 1), sb.x1);
        *xa = imax(*xa - 1, sb.x0);
        *xb = imin(*xb + 1, sb.x1);
    }
    return vrow;
}

/* One pixel of the composite: light l (RGBA) under what is nearer (see composite). */
static inline void composite_pixel(const float *l, float *o, float *a, float *ls, unsigned char *st, unsigned char me,
                                   unsigned char before)
{
    float occ = *a - (*st == before ? *ls : 0.0f);
    float vis = 1.0f - occ;
    vis = vis > 0.0f ? vis : 0.0f;
    for (int c = 0; c < 3; c++) o[c] += vis * l[c];
    float va = vis * l[3];
    *a += va;
    if (l[3] > 0.0f) {
        *ls = va;
        *st = me;
    }
}

#if defined(__GNUC__)
/* composite_pixel of pixels x .. x + 3, their light l0..l3 (RGBA, a pixel per lane): the same
 * arithmetic as the lanes of vectors, its two choices as masks (the same bits; a noisy depth's
 * speckle of slices made them unpredictable branches). */
static inline void composite4(sd_cell4 l0, sd_cell4 l1, sd_cell4 l2, sd_cell4 l3, float *o, ptrdiff_t op,
                              float *a, float *ls, unsigned char *st, unsigned char me, unsigned char before)
{
    sd_cell4 av = sd_cell_load(a), lv = sd_cell_load(ls);
    sd_mask4 prev = {st[0] == before, st[1] == before, st[2] == before, st[3] == before};
    sd_cell4 occ = av - (sd_cell4)(-prev & (sd_mask4)lv); /* -prev: comparisons of ints are 0 or 1 here */
    sd_cell4 vis = 1.0f - occ;
    vis = (sd_cell4)((vis > 0.0f) & (sd_mask4)vis);
    for (int j = 0; j < 4; j++) {
        float *q = o + (ptrdiff_t)j * op;
        q[0] += vis[j] * l0[j];
        q[1] += vis[j] * l1[j];
        q[2] += vis[j] * l2[j];
    }
    sd_cell4 va = vis * l3;
    av += va;
    memcpy(a, &av, sizeof av);
    sd_mask4 lit = l3 > 0.0f;
    lv = (sd_cell4)((lit & (sd_mask4)va) | (~lit & (sd_mask4)lv));
    memcpy(ls, &lv, sizeof lv);
    for (int j = 0; j < 4; j++)
        if (lit[j]) st[j] = me;
}
#endif

/* The blocks of the resolved slice's base rows that frame row y reads (sd_pyr_row_blocks: the
 * rest of those rows is exactly 0), 2^*shift cells each; frame cell x is plane cell x + *o. */
static uint64_t frame_row_blocks(const sd_render_ctx *r, int k, int y, int *shift, int *o)
{
    if (k == 0) return sd_pyr_row_blocks(r->pyr, y, shift, o);
    int bs = 1 << k, ny = (r->H + bs - 1) >> k, y0, y1;
    float wy;
    sd_lerp_cell(y, 1.0f / (float)bs, ny, &y0, &y1, &wy);
    return sd_pyr_row_blocks(r->pyr, y0, shift, o) | sd_pyr_row_blocks(r->pyr, y1, shift, o);
}

/* composite's frame row y. Compiled a second time for AVX2 where the toolchain can
 * (SD_ROW_CLONES): the same arithmetic, the same bits, in about 12 % less time there. */
SD_ROW_CLONES static void composite_row(const sd_render_ctx *r, int k, sd_box sb, int y, unsigned char me,
                                        unsigned char before)
{
    int W = r->W;
    ptrdiff_t i0 = (ptrdiff_t)y * W;
    float *o = r->out.data + (ptrdiff_t)y * r->out.row, *a = r->acc + i0, *ls = r->last + i0;
    ptrdiff_t op = r->out.pix;
    unsigned char *st = r->stamp + i0;
    /* this row of the slice's light (per frame pixel at level 0, per cell above), and the
     * columns where it has any */
    int xa, xb;
    const float *L = sd_render_row(r, r->pyr, k, sb, y, &xa, &xb);
    /* Only the pixels that read a cell of the rows' set blocks: light exactly 0 leaves a
     * pixel as it is (a ring of content, such as a depth blurred across a silhouette leaves
     * in the slices between the two sides, lights two stretches of a row, not the inside). */
    int sh, po;
    uint64_t bits = frame_row_blocks(r, k, y, &sh, &po);
    int b = imax(((xa >> k) - 1 + po) >> sh, 0), ca, ce, done = xa;
    while (xa < xb && sd_block_run(bits, sh, &b, ((xb - 1) >> k) + 2 + po, &ca, &ce)) {
        /* cells [ca, ce) of the plane: the pixels interpolating them, one cell either side
         * (each pixel once: two runs' pixels may meet) */
        int x0 = imax(imax((ca - po - 1) * (1 << k), xa), done), x1 = imin((ce - po + 1) * (1 << k), xb);
        done = imax(done, x1);
        int x = x0;
        if (k == 0) {
#if defined(__GNUC__)
            for (; x + 4 <= x1; x += 4) {
                sd_cell4 l0, l1, l2, l3;
                for (int j = 0; j < 4; j++) {
                    const float *q = L + 4 * (ptrdiff_t)(x + j);
                    l0[j] = q[0];
                    l1[j] = q[1];
                    l2[j] = q[2];
                    l3[j] = q[3];
                }
                composite4(l0, l1, l2, l3, o + (ptrdiff_t)x * op, op, a + x, ls + x, st + x, me, before);
            }
#endif
            for (; x < x1; x++)
                composite_pixel(L + 4 * x, o + (ptrdiff_t)x * op, a + x, ls + x, st + x, me, before);
        } else {
            const int *xi = r->colidx;
            const float *xw = r->colw;
#if defined(__GNUC__)
            for (; x + 4 <= x1; x += 4) {
                sd_cell4 l0, l1, l2, l3;
                for (int j = 0; j < 4; j++) {
                    const float *v0 = L + 4 * xi[x + j];
                    float w = xw[x + j];
                    l0[j] = (1.0f - w) * v0[0] + w * v0[4];
                    l1[j] = (1.0f - w) * v0[1] + w * v0[5];
                    l2[j] = (1.0f - w) * v0[2] + w * v0[6];
                    l3[j] = (1.0f - w) * v0[3] + w * v0[7];
                }
                composite4(l0, l1, l2, l3, o + (ptrdiff_t)x * op, op, a + x, ls + x, st + x, me, before);
            }
#endif
            for (; x < x1; x++) {
                const float *v0 = L + 4 * xi[x];
                float w = xw[x], l[4];
                for (int c = 0; c < 4; c++) l[c] = (1.0f - w) * v0[c] + w * v0[4 + c];
                composite_pixel(l, o + (ptrdiff_t)x * op, a + x, ls + x, st + x, me, before);
            }
        }
    }
}

/* Composites the resolved slice `si` (frame box `sb`) under what is nearer. A slice resolved on
 * level k is interpolated bilinearly (clamped at the frame's edge cells) to the frame's pixels,
 * a row at a time: down the rows once per row (sd_render_row), then across the columns pixel by
 * pixel as it is composited. What hides the slice is the visible coverage composited so far
 * except the previous slice's (see sd_render_entries): `acc` sums it, `last` remembers the
 * latest slice's share and `stamp` which slice that was, so that pixels the slice leaves dark
 * need no update. */
static void composite(sd_render_ctx *r, int si, int k, sd_box sb)
{
    unsigned char me = (unsigned char)(si + 1), before = (unsigned char)(si + 2);
    sd_render_columns(r, k, sb);
    SD_PARALLEL_FOR_DYN(sd_threads_for(r->nt, (ptrdiff_t)(sb.y1 - sb.y0) * (sb.x1 - sb.x0)))
    for (int y = sb.y0; y < sb.y1; y++) composite_row(r, k, sb, y, me, before);
}

/* The largest |CoC| of any entry or slice centre (a pixel without main entry has NaN, left
 * out): the pyramid is made for it. */
static float largest_coc(const sd_entries *e, const float *cent, int ns, int nt)
{
    float max_coc = sd_max_abs(e->H, e->W, e->coc, e->W, nt);
    for (ptrdiff_t q = 0; q < e->n; q++) max_coc = fabsf(e->xcoc[q]) > max_coc ? fabsf(e->xcoc[q]) : max_coc;
    for (int s = 0; s < ns; s++) max_coc = fabsf(cent[s]) > max_coc ? fabsf(cent[s]) : max_coc;
    return max_coc;
}

/* Indexes the entries and plans every slice, then allocates the slice buffers (as large as the
 * largest slice's cells) and the full-resolution accumulation. Whatever fails, r is left for
 * render_free. */
static sd_status render_setup(sd_render_ctx *r, float max_coc)
{
    const int H = r->H, W = r->W, ns = r->ns, nt = r->nt;
    SD_TIC(t_alloc);
    size_t nh = (size_t)r->ni * (size_t)H;
    r->bin_x0 = malloc(nh * sizeof(int));
    r->bin_x1 = malloc(nh * sizeof(int));
    r->bin_rlo = malloc(nh * sizeof(float));
    r->bin_rhi = malloc(nh * sizeof(float));
    r->content_x0 = malloc(sizeof(int) * 6 * (size_t)H);
    r->bright = malloc((size_t)H);
    r->cell_x0 = malloc(sizeof(int) * 2 * (size_t)H * (size_t)ns);
    r->cell_off = malloc(sizeof(ptrdiff_t) * (size_t)H * (size_t)(ns + 1));
    r->plan = malloc(sizeof(sd_slice) * (size_t)ns);
    r->ncells = malloc(sizeof(ptrdiff_t) * (size_t)ns);
    r->pyr = sd_pyr_new(H, W, max_coc, nt);
    r->max_coc = max_coc;
    SD_TOC(PROF_ALLOC, t_alloc);
    if (!r->bin_x0 || !r->bin_x1 || !r->bin_rlo || !r->bin_rhi || !r->content_x0 || !r->bright || !r->cell_x0 ||
        !r->cell_off || !r->plan || !r->ncells || !r->pyr)
        return SD_ERR_NOMEM;
    r->content_x1 = r->content_x0 + H;
    r->reach_x0 = r->content_x0 + 2 * (size_t)H;
    r->reach_x1 = r->content_x0 + 3 * (size_t)H;
    r->fill_x0 = r->content_x0 + 4 * (size_t)H;
    r->fill_x1 = r->content_x0 + 5 * (size_t)H;
    r->cell_x1 = r->cell_x0 + (size_t)H * (size_t)ns;
    r->fill_off = r->cell_off + (size_t)H * (size_t)ns;
    SD_TIMED(PROF_INDEX, sd_slices_index(r));
    int top = sd_pyr_levels(r->pyr) - 1;
    ptrdiff_t max_cells = 1;
    size_t max_fill = 1;
    for (int si = 0; si < ns; si++) {
        sd_slice *s = &r->plan[si];
        size_t o = (size_t)si * (size_t)H;
        ptrdiff_t cells = r->ncells[si] = sd_slice_plan(r, si, top, s, r->cell_x0 + o, r->cell_x1 + o, r->cell_off + o);
        if (cells > max_cells) max_cells = cells;
        if (cells > 0 && s->holes) {
            size_t f = sd_fill_ws_floats(s->cy1 - s->cy0, s->cx1 - s->cx0, 4);
            if (f > max_fill) max_fill = f;
        }
    }
    r->max_cells = max_cells;
    SD_TIC(t_alloc2);
    /* The planes' rows the slices will spread into, faulted in now where the pyramid's memory is
     * new: a 12 MP render's first call faulted them in one by one inside the spreads, 0.24 s of
     * its 0.89 s on 2 threads. A slice's radii are at most its tent's ends'. */
    for (int si = 0; si < ns; si++)
        if (r->ncells[si] > 0) {
            const sd_slice *s = &r->plan[si];
            float c = fabsf(s->lo) > fabsf(s->hi) ? fabsf(s->lo) : fabsf(s->hi);
            sd_pyr_want(r->pyr, s->k, s->cy0, s->cy1, s->cell_x0, s->cell_x1, s->cx0, s->cx1,
                        sd_radius(c, r->pyr->rcap));
        }
    sd_pyr_prefault(r->pyr, nt);
    size_t nc = (size_t)max_cells, n = (size_t)H * (size_t)W;
    /* the slice buffers are written (over each slice's cells) before they are read */
    r->layer = sd_big_alloc(nc * 4, sizeof(float), nt);
    r->lcoc = sd_big_alloc(nc, sizeof(float), nt);
    r->hole = sd_big_alloc(nc, sizeof(float), nt);
    r->pos = sd_big_alloc(nc * 2, sizeof(float), nt);
    /* the fill's workspace also holds the window's excess light (sd_window.c), which is
     * written after the slice's fill is done with it */
    size_t ws = r->border == SD_BORDER_WINDOW && nc * 4 > max_fill ? nc * 4 : max_fill;
    r->fillws = sd_big_alloc(ws, sizeof(float), nt);
    r->xlayer = r->border == SD_BORDER_WINDOW ? r->fillws : NULL;
    r->acc = sd_big_calloc(n, sizeof(float), nt);
    r->last = sd_big_calloc(n, sizeof(float), nt);
    r->stamp = sd_big_calloc(n, 1, nt);
    r->rowbuf_stride = 4 * ((ptrdiff_t)W + 2) * 2;
    r->rowbuf = malloc(sizeof(float) * (size_t)r->rowbuf_stride * (size_t)nt);
    r->drawn = calloc((size_t)r->ns, sizeof(sd_box));
    r->colidx = malloc(sizeof(int) * (size_t)W);
    r->colw = malloc(sizeof(float) * (size_t)W);
    int tables = 1; /* a footprint table per thread, kept for every slice's spread */
    for (int t = 0; t < nt; t++) tables &= (r->fps[t] = sd_footprint_table_new()) != NULL;
    SD_TOC(PROF_ALLOC, t_alloc2);
    if (!r->layer || !r->lcoc || !r->hole || !r->pos || !r->fillws || !r->acc || !r->last || !r->stamp ||
        !r->rowbuf || !r->drawn || !r->colidx || !r->colw || !tables)
        return SD_ERR_NOMEM;
    return SD_OK;
}

static void render_free(sd_render_ctx *r)
{
    free(r->bin_x0); free(r->bin_x1); free(r->bin_rlo); free(r->bin_rhi);
    free(r->cell_off); free(r->cell_x0); free(r->plan); free(r->ncells);
    sd_big_free(r->layer); sd_big_free(r->lcoc); sd_big_free(r->hole); sd_big_free(r->pos); sd_big_free(r->fillws);
    sd_pyr_release(r->pyr, r->nt);
    sd_pyr_release(r->xpyr, r->nt);
    sd_big_free(r->acc); sd_big_free(r->last); sd_big_free(r->stamp);
    free(r->rowbuf); free(r->drawn); free(r->hl); free(r->frame_light);
    free(r->colidx); free(r->colw); free(r->content_x0); free(r->bright);
    for (int t = 0; t < r->nt; t++) sd_footprint_table_free(r->fps[t]);
}

#ifdef SD_SLICEPROF
/* For the profile's slice line: the cells built that hold content (coverage), that only nearer
 * slices hide (the fill's), and neither (between the first and last of a row's others). */
static void slice_census(const sd_render_ctx *r, const sd_slice *s, ptrdiff_t n[3])
{
    for (int cy = s->cy0; cy < s->cy1; cy++)
        for (int cx = s->cell_x0[cy]; cx < s->cell_x1[cy]; cx++) {
            ptrdiff_t i = s->cell_off[cy] + cx;
            n[r->layer[4 * i + 3] > 0.0f ? 0 : (r->hole[i] > 0.0f ? 1 : 2)]++;
        }
}
#endif

/* Slice si: its layer built and filled, spread with every entry's own CoC and resolved, then
 * composited under what is nearer. */
static sd_status render_slice(sd_render_ctx *r, int si)
{
    const sd_slice *s = &r->plan[si];
    const int H = r->H, W = r->W, nt = r->nt;
    SD_SLICE_PROF_START(prof);
    sd_box sb = {0, 0, 0, 0};
    int highlights = 0;
    ptrdiff_t cells = r->ncells[si];
    if (cells > 0) {
        int bs = 1 << s->k;
        SD_TIMED(PROF_BUILD, sd_layer_build(r, s));
        SD_SLICE_PROF_CENSUS(prof, r, s);
        sd_status st = SD_OK;
        if (s->holes) SD_TIMED(PROF_FILL, st = sd_layer_fill(r, s));
        if (st != SD_OK) return st;
        SD_TIC(t_spread);
        sd_pyr_clear(r->pyr, nt);
        sd_pyr_src src = {{r->layer, 0, 4, 4}, (float)(bs * bs), r->lcoc, s->k > 0 ? r->pos : NULL, 0,
                          s->cell_x0, s->cell_x1, s->cell_off, SD_DIM_LIGHT};
        st = sd_pyr_spread(r->pyr, s->k, &src, r->ap, r->fps, s->cy0, s->cy1, s->cx0, s->cx1, nt);
        if (st != SD_OK) return st;
        SD_TOC(PROF_SPREAD, t_spread);
        const sd_pyramid *drop = NULL;
        if (r->border == SD_BORDER_WINDOW && (st = sd_window_excess(r, s, &drop)) != SD_OK) return st;
        SD_TIMED(PROF_RESOLVE, sd_pyr_resolve_border(r->pyr, s->k, 1, drop, nt));
        int y0, y1, x0, x1;
        sd_pyr_active(r->pyr, &y0, &y1, &x0, &x1);
        if (y0 < y1 && x0 < x1) {
            /* frame pixels the interpolation of those cells reaches */
            int g = s->k > 0 ? 1 : 0;
            sb.y0 = imax((y0 - g) * bs, 0);
            sb.y1 = imin((y1 + g) * bs, H);
            sb.x0 = imax((x0 - g) * bs, 0);
            sb.x1 = imin((x1 + g) * bs, W);
        }
        highlights = sd_highlight_find(r, si);
        if (highlights < 0) return SD_ERR_NOMEM;
    }
    if (highlights) sd_highlight_composite(r, si);
    if (!sd_box_empty(sb)) SD_TIMED(PROF_COMPOSITE, composite(r, si, s->k, sb));
    r->drawn[si] = sb;
    if (cells > 0)
        SD_SLICE_PROF_LINE(prof, si, r->cent[si], s->k, cells, s->cy1 - s->cy0, s->cx1 - s->cx0, s->holes,
                           prof_census);
    return SD_OK;
}

/* Coverage below 1 (a hole nothing filled) or above 1 (surfaces closer than a slice spacing,
 * blended rather than ordered): out is renormalised to a full pixel. */
static void normalise(const sd_render_ctx *r)
{
    const int H = r->H, W = r->W;
    const sd_view out = r->out;
    SD_PARALLEL_FOR(r->nt)
    for (int y = 0; y < H; y++) {
        const float *a = r->acc + (ptrdiff_t)y * W;
        float *o = out.data + (ptrdiff_t)y * out.row;
        for (int x = 0; x < W; x++) {
            float cov = a[x];
            float inv = cov > MIN_PIXEL_COVERAGE ? 1.0f / cov : 1.0f;
            for (int c = 0; c < 3; c++) o[(ptrdiff_t)x * out.pix + c] *= inv;
        }
    }
}

sd_status sd_render_entries(const sd_entries *e, const float *cent, int ns, const sd_aperture *ap,
                            const float *plate, int border, sd_view out, int nthreads, const sd_cancel *cancel)
{
    int H = e->H, W = e->W;
    if (H < 1 || W < 1 || ns < 1 || ns > MAX_STAMPED_SLICES || out.nch < 3 || ap->nrows < 1) return SD_ERR_ARG;
    sd_render_ctx r;
    memset(&r, 0, sizeof r);
    r.H = H; r.W = W; r.ns = ns; r.ni = 2 * ns + 1; r.nt = sd_threads(nthreads);
    r.e = e; r.cent = cent; r.ap = ap; r.plate = plate; r.out = out; r.border = border;
    sd_status st = render_setup(&r, largest_coc(e, cent, ns, r.nt));
    if (st == SD_OK) { /* out accumulates the colour */
        SD_PARALLEL_FOR(r.nt)
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
        st = render_slice(&r, si);
        if (st == SD_OK && cancel && cancel->check && cancel->check(cancel->ctx)) st = SD_ERR_INTERRUPTED;
    }
    if (st == SD_OK) SD_TIMED(PROF_NORMALISE, normalise(&r));
    render_free(&r);
    return st;
}

sd_status sd_render(int H, int W, sd_cview img, const float *coc, const float *matte, const float *plate,
                    const sd_aperture *ap, int border, sd_view out, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || img.nch != 3 || out.nch < 3 || ap->nrows < 1) return SD_ERR_ARG;
    if (border != SD_BORDER_WINDOW && border != SD_BORDER_MIRROR) return SD_ERR_ARG;
    sd_entries e;
    sd_status st;
    SD_TIMED(PROF_ENTRIES, st = sd_entries_build(H, W, img, coc, matte, nthreads, &e));
    if (st != SD_OK) return st;
    float cent[SD_MAX_SLICES + 1];
    int ns = 0;
    SD_TIMED(PROF_SLICES, st = sd_slice_centres(&e, cent, &ns, nthreads));
    if (st == SD_OK && cancel && cancel->check && cancel->check(cancel->ctx)) st = SD_ERR_INTERRUPTED;
    if (st == SD_OK) st = sd_render_entries(&e, cent, ns, ap, plate, border, out, nthreads, cancel);
    sd_entries_free(&e);
    SD_PROF_REPORT();
    return st;
}
