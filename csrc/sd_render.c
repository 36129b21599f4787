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
    int content = 0, holes = 0;
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        int row_content = 0, row_holes = 0;
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
            row_content |= r[3] > 0.0f;
            row_holes |= h > 0.0f;
        }
        if (row_content) content = 1; /* benign race: every writer stores 1 */
        if (row_holes) holes = 1;
    }
    *any_hole = holes;
    return content;
}

/* Continues the slice's surfaces behind what hides them: push-pull of the content seen per
 * visible fraction, kept only where the filled coverage is substantial, so a surface (a wall
 * behind a head, a body behind a railing) carries on while sparse specks (distant lights) are
 * not smeared into a glow. With a plate, its colour is used for what is filled in. */
static sd_status fill_slice(int H, int W, slice_bufs *b, const float *plate, int nt)
{
    ptrdiff_t n = (ptrdiff_t)H * W;
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t i = 0; i < n; i++) {
        float vis = 1.0f - b->hole[i];
        float inv = vis > 1e-3f ? 1.0f / vis : 0.0f;
        b->wgt[i] = vis > 1e-3f ? vis : 0.0f;
        for (int k = 0; k < 4; k++) b->val[4 * i + k] = b->layer[4 * i + k] * inv;
    }
    sd_status st = sd_pushpull(H, W, 4, b->val, b->wgt, b->fill, nt);
    if (st != SD_OK) return st;
    SD_PARALLEL_FOR(nt)
    for (ptrdiff_t i = 0; i < n; i++) {
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
                    malloc(n * 4 * sizeof(float)), malloc(n * sizeof(float)), malloc(n * 4 * sizeof(float))};
    sd_status st = SD_OK;
    if (!pyr || !acc || !occ || !prev || !b.layer || !b.lcoc || !b.hole || !b.val || !b.wgt || !b.fill)
        st = SD_ERR_NOMEM;
    /* Near to far. A slice is hidden by the summed coverage of the slices at least two steps
     * nearer: summed, because each pixel's light is split between two neighbouring slices (so a
     * surface's two halves together must hide what is behind it, which a product of partial
     * "over" coverages would not); and not by its immediate neighbour, because a surface whose
     * CoC straddles two slices must not hide itself. Occlusion thus sets in across CoC gaps of one
     * slice spacing and is complete at two; the same occluders define the holes that are filled. */
    for (int s = nslices - 1; s >= 0 && st == SD_OK; s--) {
        int any_hole = 0;
        int content = build_slice(H, W, sets, nsets, centres, nslices, s, &b, nt, &any_hole);
        if (content && any_hole) st = fill_slice(H, W, &b, plate, nt);
        if (st != SD_OK) break;
        if (content) {
            sd_pyr_clear(pyr, nt);
            sd_cview v = {b.layer, (ptrdiff_t)W * 4, 4, 4};
            sd_pyr_spread(pyr, v, b.lcoc, W, ap, 1.0f, 0.0f, -1.0f, nt);
            sd_pyr_resolve(pyr, nt);
        }
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const float *l = content ? sd_pyr_row(pyr, y) : NULL;
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
    free(b.layer); free(b.lcoc); free(b.hole); free(b.val); free(b.wgt); free(b.fill);
    free(occ);
    free(prev);
    free(acc);
    sd_pyr_free(pyr);
    return st;
}
