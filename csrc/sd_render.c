/* Depth-ordered layered compositing of scattered slices (see sd_render_layers in sd_core.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"

sd_status sd_render_layers(int H, int W, const sd_layer_entries *sets, int nsets,
                           const float *centres, int nslices, const sd_aperture *ap,
                           sd_view out, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || nsets < 1 || nslices < 1 || out.nch < 3 || ap->nrows < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    float max_coc = 0.0f;
    for (int s = 0; s < nsets; s++)
        for (ptrdiff_t i = 0; i < (ptrdiff_t)H * W; i++) {
            float a = fabsf(sets[s].coc[i]);
            if (a > max_coc) max_coc = a;
        }
    sd_pyramid *pyr = sd_pyr_new(H, W, max_coc);
    size_t n = (size_t)H * (size_t)W;
    float *acc = calloc(n * 4, sizeof(float)); /* visible premultiplied colour + coverage */
    float *occ = calloc(n, sizeof(float));     /* coverage of slices two or more steps nearer */
    float *prev = calloc(n, sizeof(float));    /* coverage of the slice just nearer */
    if (!pyr || !acc || !occ || !prev) {
        sd_pyr_free(pyr); free(acc); free(occ); free(prev);
        return SD_ERR_NOMEM;
    }
    sd_status st = SD_OK;
    /* Near to far. A slice is hidden by the summed coverage of the slices at least two steps
     * nearer: summed, because each pixel's light is split between two neighbouring slices (so a
     * surface's two halves together must hide what is behind it, which a product of partial
     * "over" coverages would not); and not by its immediate neighbour, because a surface whose
     * CoC straddles two slices must not hide itself. Occlusion thus sets in across CoC gaps of one
     * slice spacing and is complete at two. */
    for (int s = nslices - 1; s >= 0; s--) {
        float mid = centres[s];
        float hi = s > 0 ? centres[s - 1] : INFINITY;
        float lo = s + 1 < nslices ? centres[s + 1] : -INFINITY;
        sd_pyr_clear(pyr, nt);
        for (int e = 0; e < nsets; e++) {
            sd_cview v = {sets[e].rgba, (ptrdiff_t)W * 4, 4, 4};
            sd_pyr_spread(pyr, v, sets[e].coc, W, ap, lo, mid, hi, nt);
        }
        sd_pyr_resolve(pyr, nt);
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const float *l = sd_pyr_row(pyr, y);
            ptrdiff_t i0 = (ptrdiff_t)y * W;
            float *a = acc + 4 * i0, *oc = occ + i0, *pv = prev + i0;
            for (int x = 0; x < W; x++) {
                float vis = 1.0f - oc[x];
                vis = vis < 0.0f ? 0.0f : vis;
                for (int c = 0; c < 4; c++) a[4 * x + c] += vis * l[4 * x + c];
                float A = l[4 * x + 3];
                oc[x] += pv[x];
                pv[x] = A > 0.0f ? A : 0.0f;
            }
        }
        if (cancel && cancel->check && cancel->check(cancel->ctx)) { st = SD_ERR_INTERRUPTED; break; }
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
    free(occ);
    free(prev);
    free(acc);
    sd_pyr_free(pyr);
    return st;
}
