/* Depth-ordered layered compositing of scattered slices (see sd_render_layers in sd_core.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"

/* Triangle membership of CoC c in the slice centred at mid between neighbours lo < mid < hi
 * (an infinite neighbour keeps weight 1 on that side). */
static inline float tent(float lo, float mid, float hi, float c)
{
    if (c >= mid) {
        if (c >= hi) return 0.0f;
        return isinf(hi) ? 1.0f : (hi - c) / (hi - mid);
    }
    if (c <= lo) return 0.0f;
    return isinf(lo) ? 1.0f : (c - lo) / (mid - lo);
}

static inline float smoothstep(float e0, float e1, float x)
{
    float t = (x - e0) / (e1 - e0);
    t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    return t * t * (3.0f - 2.0f * t);
}

typedef struct {
    float *layer; /* H x W x 4: this slice's premultiplied content */
    float *lcoc;  /* H x W: its CoC */
    float *hole;  /* H x W: pinhole coverage of content that occludes this slice */
    float *val;   /* H x W x 4: push-pull input (content per visible fraction) */
    float *wgt;   /* H x W: push-pull weight (visible fraction) */
    float *fill;  /* H x W x 4: push-pull output */
    float *rowr;  /* H: per row, the largest blur radius of the slice's content (-1: none) */
    char *rowh;   /* H: per row, whether anything hides part of the slice */
} slice_bufs;

/* Gathers slice s's content from every entry set and the coverage of what hides it; returns
 * whether the slice holds anything and (via *any_hole) whether anything hides part of it. */
static int build_slice(int H, int W, const sd_layer_entries *sets, int nsets, const float *centres,
                       int nslices, int s, slice_bufs *b, int nt, int *any_hole)
{
    float mid = centres[s];
    float hi = s > 0 ? centres[s - 1] : INFINITY;
    float lo = s + 1 < nslices ? centres[s + 1] : -INFINITY;
    /* occluders: entries in slices s+2 and nearer, the ramp of their membership */
    int has_occ = s + 2 < nslices;
    float c1 = has_occ ? centres[s + 1] : 0.0f, c2 = has_occ ? centres[s + 2] : 0.0f;
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        int row_holes = 0;
        float row_r = -1.0f;
        for (int x = 0; x < W; x++) {
            ptrdiff_t i = (ptrdiff_t)y * W + x;
            float r[4] = {0, 0, 0, 0}, wc = 0.0f, wa = 0.0f, h = 0.0f;
            for (int e = 0; e < nsets; e++) {
                float c = sets[e].coc[i];
                const float *q = sets[e].rgba + 4 * i;
                float t = tent(lo, mid, hi, c);
                if (t > 0.0f) {
                    for (int k = 0; k < 4; k++) r[k] += t * q[k];
                    wc += t * q[3] * c;
                    wa += t * q[3];
                }
                if (has_occ && c < c1) h += q[3] * (c <= c2 ? 1.0f : (c1 - c) / (c1 - c2));
            }
            h = h > 1.0f ? 1.0f : h;
            for (int k = 0; k < 4; k++) b->layer[4 * i + k] = r[k];
            b->lcoc[i] = wa > 1e-8f ? wc / wa : mid;
            b->hole[i] = h;
            if (r[3] > 0.0f && 0.5f * fabsf(b->lcoc[i]) > row_r) row_r = 0.5f * fabsf(b->lcoc[i]);
            row_holes |= h > 0.0f;
        }
        b->rowr[y] = row_r;
        b->rowh[y] = (char)row_holes;
    }
    *any_hole = 0;
    for (int y = 0; y < H; y++) *any_hole |= b->rowh[y];
    for (int y = 0; y < H; y++)
        if (b->rowr[y] >= 0.0f) return 1;
    return 0;
}

/* Frame rows [r0, r1) holding the slice's content, and the farthest its blur reaches. */
static void content_rows(const slice_bufs *b, int H, int *r0, int *r1, float *reach)
{
    *r0 = H;
    *r1 = 0;
    *reach = 0.0f;
    for (int y = 0; y < H; y++) {
        if (b->rowr[y] < 0.0f) continue;
        if (y < *r0) *r0 = y;
        *r1 = y + 1;
        if (b->rowr[y] > *reach) *reach = b->rowr[y];
    }
}

/* Continues the slice's surfaces behind what hides them: push-pull of the content seen per
 * visible fraction, kept only where the filled coverage is substantial, so a surface (a wall
 * behind a head, a body behind a railing) carries on while sparse specks (distant lights) are
 * not smeared into a glow. With a plate, its colour is used for what is filled in. */
static sd_status fill_slice(int H, int W, int y0, int y1, slice_bufs *b, const float *plate, int nt)
{
    ptrdiff_t i0 = (ptrdiff_t)y0 * W, n = (ptrdiff_t)(y1 - y0) * W;
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t i = i0; i < i0 + n; i++) {
        float vis = 1.0f - b->hole[i];
        float inv = vis > 1e-3f ? 1.0f / vis : 0.0f;
        b->wgt[i] = vis > 1e-3f ? vis : 0.0f;
        for (int k = 0; k < 4; k++) b->val[4 * i + k] = b->layer[4 * i + k] * inv;
    }
    (void)H;
    sd_status st = sd_pushpull(y1 - y0, W, 4, b->val + 4 * i0, b->wgt + i0, b->fill + 4 * i0, nt);
    if (st != SD_OK) return st;
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t i = i0; i < i0 + n; i++) {
        float h = b->hole[i];
        if (h <= 0.0f) continue;
        const float *f = b->fill + 4 * i;
        float fa = f[3] > 1.0f ? 1.0f : f[3];
        float g = smoothstep(0.25f, 0.75f, fa);
        if (g <= 0.0f) continue;
        float sc = fa > 1e-6f ? g / fa : 0.0f;
        for (int k = 0; k < 3; k++) b->layer[4 * i + k] += h * (plate ? plate[3 * i + k] * g : f[k] * sc);
        b->layer[4 * i + 3] += h * g;
    }
    return SD_OK;
}

sd_status sd_render_layers(int H, int W, const sd_layer_entries *sets, int nsets,
                           const float *centres, int nslices, const sd_aperture *ap,
                           const float *plate, sd_view out, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || nsets < 1 || nslices < 1 || out.nch < 3 || ap->nrows < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    float max_coc = 0.0f;
    for (int s = 0; s < nsets; s++)
        for (ptrdiff_t i = 0; i < (ptrdiff_t)H * W; i++) {
            float a = fabsf(sets[s].coc[i]);
            if (a > max_coc) max_coc = a;
        }
    for (int s = 0; s < nslices; s++)
        if (fabsf(centres[s]) > max_coc) max_coc = fabsf(centres[s]);
    size_t n = (size_t)H * (size_t)W;
    sd_pyramid *pyr = sd_pyr_new(H, W, max_coc);
    float *acc = calloc(n * 4, sizeof(float)); /* visible premultiplied colour + coverage */
    float *occ = calloc(n, sizeof(float));     /* coverage of slices two or more steps nearer */
    float *prev = calloc(n, sizeof(float));    /* coverage of the slice just nearer */
    slice_bufs b = {malloc(n * 4 * sizeof(float)), malloc(n * sizeof(float)), malloc(n * sizeof(float)),
                    malloc(n * 4 * sizeof(float)), malloc(n * sizeof(float)), malloc(n * 4 * sizeof(float)),
                    malloc((size_t)H * sizeof(float)), malloc((size_t)H)};
    sd_status st = SD_OK;
    if (!pyr || !acc || !occ || !prev || !b.layer || !b.lcoc || !b.hole || !b.val || !b.wgt || !b.fill ||
        !b.rowr || !b.rowh)
        st = SD_ERR_NOMEM;
    int p0 = 0, p1 = 0; /* rows where the previous slice left coverage */
    /* Near to far. A slice is hidden by the summed coverage of the slices at least two steps
     * nearer: summed, because each pixel's light is split between two neighbouring slices (so a
     * surface's two halves together must hide what is behind it, which a product of partial
     * "over" coverages would not); and not by its immediate neighbour, because a surface whose
     * CoC straddles two slices must not hide itself. Occlusion thus sets in across CoC gaps of one
     * slice spacing and is complete at two; the same occluders define the holes that are filled. */
    for (int s = nslices - 1; s >= 0 && st == SD_OK; s--) {
        int any_hole = 0;
        int content = build_slice(H, W, sets, nsets, centres, nslices, s, &b, nt, &any_hole);
        int a0 = 0, a1 = 0;
        if (content) {
            int r0, r1;
            float reach;
            content_rows(&b, H, &r0, &r1, &reach);
            /* what is filled in only matters where the slice's blur can carry it */
            float cap = (float)(H > W ? H : W); /* beyond the frame, reach changes nothing */
            int m = (int)ceilf(2.0f * (reach < cap ? reach : cap)) + 8;
            if (any_hole) st = fill_slice(H, W, r0 - m > 0 ? r0 - m : 0, r1 + m < H ? r1 + m : H, &b, plate, nt);
            if (st != SD_OK) break;
            sd_pyr_clear(pyr, nt);
            sd_cview v = {b.layer, (ptrdiff_t)W * 4, 4, 4};
            int f0 = any_hole ? (r0 - m > 0 ? r0 - m : 0) : r0, f1 = any_hole ? (r1 + m < H ? r1 + m : H) : r1;
            sd_pyr_spread(pyr, v, b.lcoc, W, ap, f0, f1, nt);
            sd_pyr_resolve(pyr, nt);
            sd_pyr_active(pyr, &a0, &a1);
        }
        int y0 = a0 < p0 ? a0 : p0, y1 = a1 > p1 ? a1 : p1;
        if (a0 >= a1) { y0 = p0; y1 = p1; }
        if (p0 >= p1) { y0 = a0; y1 = a1; }
        SD_PARALLEL_FOR(nt)
        for (int y = y0; y < y1; y++) {
            const float *l = (y >= a0 && y < a1) ? sd_pyr_row(pyr, y) : NULL;
            ptrdiff_t i0 = (ptrdiff_t)y * W;
            float *a = acc + 4 * i0, *oc = occ + i0, *pv = prev + i0;
            for (int x = 0; x < W; x++) {
                float A = l ? l[4 * x + 3] : 0.0f;
                if (l) {
                    float vis = 1.0f - oc[x];
                    vis = vis < 0.0f ? 0.0f : vis;
                    for (int c = 0; c < 4; c++) a[4 * x + c] += vis * l[4 * x + c];
                }
                oc[x] += pv[x];
                pv[x] = A > 0.0f ? A : 0.0f;
            }
        }
        p0 = a0;
        p1 = a1;
        if (cancel && cancel->check && cancel->check(cancel->ctx)) st = SD_ERR_INTERRUPTED;
    }
    if (st == SD_OK) {
        /* Coverage below 1 (a hole nothing filled) or above 1 (surfaces closer than a slice
         * spacing, blended rather than ordered): renormalise to a full pixel. */
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const float *a = acc + (ptrdiff_t)y * W * 4;
            float *o = out.data + (ptrdiff_t)y * out.row;
            for (int x = 0; x < W; x++) {
                float cov = a[4 * x + 3];
                float inv = cov > 1e-6f ? 1.0f / cov : 1.0f;
                for (int c = 0; c < 3; c++) o[(ptrdiff_t)x * out.pix + c] = a[4 * x + c] * inv;
            }
        }
    }
    free(b.layer); free(b.lcoc); free(b.hole); free(b.val); free(b.wgt); free(b.fill); free(b.rowr); free(b.rowh);
    free(occ);
    free(prev);
    free(acc);
    sd_pyr_free(pyr);
    return st;
}
