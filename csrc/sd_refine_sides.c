/* Refine stage: each side of the matte's boundary continued across the band beside it
 * (synthdof.refine's `edge_width` band), so that depth never mixes across the silhouette.
 *
 * Why in C: the step is a handful of fills (sd_edge_fill) glued by a dozen elementwise
 * expressions over the band's bounding box (several megapixels at 12 MP); in NumPy each
 * expression was a full-size temporary, and together they cost as much as the fills. Here they
 * are two fused passes. The arithmetic is the NumPy expressions' float32 arithmetic in the same
 * order, so the result is the same to the bit. */
#include <math.h>
#include <string.h>

#include "sd_alloc.h"
#include "sd_parallel.h"
#include "sd_refine_maps.h"
#include "sd_refine_sides.h"

/* The side fills and the blur share are unguided: the sigma_r they pass is never used. */
#define UNGUIDED_SIGMA_R 1.0

/* The two sides' continuations: what sd_edge_fill gives for each (values q, weights w_fg and
 * w_bg, unguided, sigma band, wanted where near), with both sides in one filter of 4 channels
 * while both have pixels left (the filter's channels never mix and each is computed as alone, so
 * the bits are the two fills'); a side left alone widens on its own. fg and bg: zeroed. */
static sd_status fill_sides(int H, int W, const float *q, ptrdiff_t qrow, const float *w_fg, const float *w_bg,
                            const uint8_t *near, ptrdiff_t mrow, const sd_sides_params *p, float *fg, float *bg,
                            int nt)
{
    size_t n = (size_t)H * (size_t)W;
    uint8_t *todo_fg = sd_big_alloc(n, 1, nt), *todo_bg = sd_big_alloc(n, 1, nt);
    float *buf = sd_big_alloc(n * 4, sizeof(float), nt);
    sd_status st = SD_ERR_NOMEM;
    if (!todo_fg || !todo_bg || !buf) goto done;
    size_t left_fg = 0;
    for (int y = 0; y < H; y++) {
        const uint8_t *nr = near + (ptrdiff_t)y * mrow;
        memcpy(todo_fg + (ptrdiff_t)y * W, nr, (size_t)W);
        memcpy(todo_bg + (ptrdiff_t)y * W, nr, (size_t)W);
        for (int x = 0; x < W; x++) left_fg += nr[x] != 0;
    }
    size_t left_bg = left_fg;
    st = SD_OK;
    double reach = 1.0; /* 4^k, as sd_edge_fill widens */
    for (int k = 0; k < p->widenings && (left_fg || left_bg); k++, reach *= 4.0) {
        const double sigma = (double)p->band * reach;
        if (left_fg && left_bg) {
            SD_PARALLEL_FOR(nt)
            for (int y = 0; y < H; y++) { /* sd_fill_weigh's products, both sides */
                const float *v = q + (ptrdiff_t)y * qrow, *wf = w_fg + (ptrdiff_t)y * W, *wb = w_bg + (ptrdiff_t)y * W;
                float *o = buf + (ptrdiff_t)y * W * 4;
                for (int x = 0; x < W; x++) {
                    o[4 * x] = v[x] * wf[x];
                    o[4 * x + 1] = wf[x];
                    o[4 * x + 2] = v[x] * wb[x];
                    o[4 * x + 3] = wb[x];
                }
            }
            if ((st = sd_edge_filter(H, W, 4, buf, NULL, 0, sigma, UNGUIDED_SIGMA_R, p->iterations, nt)) != SD_OK)
                goto done;
            size_t lf = 0, lb = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : lf, lb)
#endif
            for (int y = 0; y < H; y++) { /* sd_fill_take for each side */
                const float *f = buf + (ptrdiff_t)y * W * 4;
                uint8_t *tf = todo_fg + (ptrdiff_t)y * W, *tb = todo_bg + (ptrdiff_t)y * W;
                float *of = fg + (ptrdiff_t)y * W, *ob = bg + (ptrdiff_t)y * W;
                for (int x = 0; x < W; x++) {
                    if (tf[x]) {
                        if (f[4 * x + 1] > p->min_weight) {
                            of[x] = f[4 * x] / f[4 * x + 1];
                            tf[x] = 0;
                        } else {
                            lf++;
                        }
                    }
                    if (tb[x]) {
                        if (f[4 * x + 3] > p->min_weight) {
                            ob[x] = f[4 * x + 2] / f[4 * x + 3];
                            tb[x] = 0;
                        } else {
                            lb++;
                        }
                    }
                }
            }
            left_fg = lf;
            left_bg = lb;
        } else {
            int one_fg = left_fg != 0;
            const float *w = one_fg ? w_fg : w_bg;
            if ((st = sd_fill_weigh(H, W, 1, q, qrow, w, W, buf, nt)) != SD_OK) goto done;
            if ((st = sd_edge_filter(H, W, 2, buf, NULL, 0, sigma, UNGUIDED_SIGMA_R, p->iterations, nt)) != SD_OK)
                goto done;
            if ((st = sd_fill_take(H, W, 1, buf, one_fg ? todo_fg : todo_bg, p->min_weight, one_fg ? fg : bg,
                                   one_fg ? &left_fg : &left_bg, nt)) != SD_OK)
                goto done;
        }
    }
done:
    sd_big_free(todo_fg);
    sd_big_free(todo_bg);
    sd_big_free(buf);
    return st;
}

sd_status sd_continue_sides(int H, int W, const float *q, ptrdiff_t qrow, const uint8_t *side, const uint8_t *near,
                            const uint8_t *kept, ptrdiff_t mrow, const sd_sides_params *p, float *out, int nthreads)
{
    if (H < 1 || W < 1 || !q || !side || !near || !kept || !p || !out || qrow < W || mrow < W || p->band < 1 ||
        p->ring_px < 0 || p->iterations < 1 || p->iterations > 16 || p->widenings < 1 || p->widenings > 16)
        return SD_ERR_ARG;
    if (!(p->tolerance >= 0.0f) || !(p->min_weight >= 0.0f) || !isfinite(p->blur_pull) || isnan(p->beyond_pull) ||
        !isfinite(p->blurred_share) || !isfinite(p->tolerance))
        return SD_ERR_VALUE;
    int nt = sd_threads(nthreads);
    size_t n = (size_t)H * (size_t)W;
    float *w_fg = sd_big_alloc(n, sizeof(float), nt), *w_bg = sd_big_alloc(n, sizeof(float), nt);
    float *fg = sd_big_calloc(n, sizeof(float), nt), *bg = sd_big_calloc(n, sizeof(float), nt);
    uint8_t *todo = sd_big_alloc(n, 1, nt);
    float *blurred = NULL;
    uint8_t *ring = NULL, *ring_side = NULL;
    sd_status st = SD_ERR_NOMEM;
    if (!w_fg || !w_bg || !fg || !bg || !todo) goto done;

    /* each side's weight: its pixels beyond the band (not near) */
    int any_fg = 0, any_bg = 0, any_kept = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : any_fg, any_bg, any_kept)
#endif
    for (int y = 0; y < H; y++) {
        const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow, *k = kept + (ptrdiff_t)y * mrow;
        float *wf = w_fg + (ptrdiff_t)y * W, *wb = w_bg + (ptrdiff_t)y * W;
        for (int x = 0; x < W; x++) {
            int sure = !nr[x], fgp = s[x] && sure, bgp = !s[x] && sure;
            wf[x] = fgp ? 1.0f : 0.0f;
            wb[x] = bgp ? 1.0f : 0.0f;
            any_fg |= fgp;
            any_bg |= bgp;
            any_kept |= k[x] != 0;
        }
    }
    /* the continuations, wanted where near; 0 where a fill reaches no pixel of its side */
    size_t left;
    if ((st = fill_sides(H, W, q, qrow, w_fg, w_bg, near, mrow, p, fg, bg, nt)) != SD_OK) goto done;
    const float tol = p->tolerance;
    const int both = any_fg && any_bg;
    if (any_kept) {
        /* the blurred share of the ring: values (pull >= blur_pull) weighted by the ring, filled
         * where near and kept; the weight planes are free again and take the two inputs */
        float *blurred_in = w_fg, *ring_w = w_bg;
        blurred = sd_big_calloc(n, sizeof(float), nt);
        ring = sd_big_alloc(n, 1, nt);
        ring_side = sd_big_alloc(n, 1, nt);
        st = SD_ERR_NOMEM;
        if (!blurred || !ring || !ring_side) goto done;
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const uint8_t *s = side + (ptrdiff_t)y * mrow;
            float *sf = ring_w + (ptrdiff_t)y * W;
            for (int x = 0; x < W; x++) sf[x] = s[x] ? 1.0f : 0.0f;
        }
        int box[4];
        if ((st = sd_band_near(H, W, ring_w, NULL, p->ring_px, ring_side, ring, box, nt)) != SD_OK) goto done;
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < H; y++) {
            const float *qr = q + (ptrdiff_t)y * qrow, *f = fg + (ptrdiff_t)y * W, *b = bg + (ptrdiff_t)y * W;
            const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow, *k = kept + (ptrdiff_t)y * mrow;
            const uint8_t *rg = ring + (ptrdiff_t)y * W;
            float *bi = blurred_in + (ptrdiff_t)y * W, *rw = ring_w + (ptrdiff_t)y * W;
            uint8_t *t = todo + (ptrdiff_t)y * W;
            for (int x = 0; x < W; x++) {
                float cont = s[x] ? f[x] : b[x], gap = (s[x] ? b[x] : f[x]) - cont;
                int ok = both && fabsf(gap) > tol * fabsf(cont);
                float pull = ok ? (qr[x] - cont) / gap : 0.0f;
                bi[x] = pull >= p->blur_pull && pull <= p->beyond_pull ? 1.0f : 0.0f;
                rw[x] = rg[x] ? 1.0f : 0.0f;
                t[x] = nr[x] && k[x];
            }
        }
        st = sd_edge_fill(H, W, 1, blurred_in, W, ring_w, W, NULL, 0, (double)(3 * p->band), UNGUIDED_SIGMA_R,
                          p->iterations, p->widenings, p->min_weight, todo, blurred, &left, nt);
        if (st != SD_OK) goto done;
    }
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        const float *qr = q + (ptrdiff_t)y * qrow, *f = fg + (ptrdiff_t)y * W, *b = bg + (ptrdiff_t)y * W;
        const uint8_t *s = side + (ptrdiff_t)y * mrow, *nr = near + (ptrdiff_t)y * mrow, *k = kept + (ptrdiff_t)y * mrow;
        const float *bl = blurred ? blurred + (ptrdiff_t)y * W : NULL;
        float *o = out + (ptrdiff_t)y * W;
        for (int x = 0; x < W; x++) {
            float cont = s[x] ? f[x] : b[x];
            int reached = s[x] ? any_fg : any_bg;
            int pulled = fabsf(qr[x] - cont) > tol * fabsf(cont);
            if (bl && pulled && k[x]) {
                /* kept depth: replaced only where blurred across the boundary, between the sides */
                float gap = (s[x] ? b[x] : f[x]) - cont;
                int ok = both && fabsf(gap) > tol * fabsf(cont);
                float pull = ok ? (qr[x] - cont) / gap : 0.0f;
                pulled = pull <= p->beyond_pull && (bl[x] >= p->blurred_share || pull > 0.5f);
            }
            o[x] = nr[x] && reached && pulled ? cont : qr[x];
        }
    }
    st = SD_OK;
done:
    sd_big_free(w_fg);
    sd_big_free(w_bg);
    sd_big_free(fg);
    sd_big_free(bg);
    sd_big_free(todo);
    sd_big_free(blurred);
    sd_big_free(ring);
    sd_big_free(ring_side);
    return st;
}
