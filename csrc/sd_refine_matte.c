/* Refine stage: the alpha of a segmentation mask's soft ramp from the image's colours
 * (synthdof.refine's refine_matte).
 *
 * Why in C: each ramp pixel walks straight across the edge, pixel by pixel, until it meets a
 * confidently inside (outside) pixel, up to `reach` steps; NumPy made every step a pass of fancy
 * indexing over all ramp pixels (reach = 2 edge_width steps: the cost grew with the radius), and
 * the guide's sRGB encoding had to exist for the whole frame although the walks read only the
 * pixels beside the edge. Here each pixel stops at its own first hit and encodes only the colours
 * it reads. The arithmetic is the NumPy expressions' float32 arithmetic in the same order
 * (positions in double, as NumPy promoted int64 + float32), so the result is the same to the bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sd_parallel.h"
#include "sd_refine_maps.h"
#include "sd_refine_matte.h"

static inline int in_ramp(float v, const sd_matte_params *p) { return v > p->matte_out && v < p->matte_in; }

/* Pixels per block of a row whose ramp pixels are looked for together. */
#define RAMP_BLOCK 32

/* Whether any of n matte values lies in the ramp (lo, hi). */
static inline int any_in_ramp(const float *restrict m, int n, float lo, float hi)
{
    int any = 0;
#ifdef _OPENMP
#pragma omp simd reduction(| : any)
#endif
    for (int x = 0; x < n; x++) any |= (m[x] > lo) & (m[x] < hi);
    return any;
}

/* A pixel's three colour values as the guide holds them. */
static inline void colour_at(const float *colour, int linear, ptrdiff_t i, float c[3])
{
    for (int k = 0; k < 3; k++) c[k] = linear ? sd_srgb_encode_one(colour[i * 3 + k]) : colour[i * 3 + k];
}

/* Whether a ramp pixel is a ridge: above or below both its neighbours along a row or a column
 * by more than ridge_step (thin soft structure no resized mask has). */
static inline int is_ridge(const float *m, int H, int W, int y, int x, float step)
{
    float c = m[(ptrdiff_t)y * W + x];
    float a[2] = {m[(ptrdiff_t)(y > 0 ? y - 1 : 0) * W + x], m[(ptrdiff_t)y * W + (x > 0 ? x - 1 : 0)]};
    float b[2] = {m[(ptrdiff_t)(y < H - 1 ? y + 1 : H - 1) * W + x], m[(ptrdiff_t)y * W + (x < W - 1 ? x + 1 : W - 1)]};
    int ridge = 0;
    for (int k = 0; k < 2; k++)
        ridge |= (c - a[k] > step && c - b[k] > step) || (a[k] - c > step && b[k] - c > step);
    return ridge;
}

/* The colour of the first pixel straight across the edge (sign * the unit gradient (ny, nx),
 * k = 1 .. reach steps, positions rounded half to even) that is confidently inside (sign +1) or
 * outside (sign -1); 0 if none lies within reach (c untouched). */
static int side_colour(const float *matte, const float *colour, int linear, int H, int W, int y, int x, float ny,
                       float nx, int sign, const sd_matte_params *p, float c[3])
{
    for (int k = 1; k <= p->reach; k++) {
        float sk = (float)(sign * k);
        double fy = rint((double)y + (double)(sk * ny)), fx = rint((double)x + (double)(sk * nx));
        /* clipped to the frame; NaN (a gradient from non-finite neighbours) as NumPy casts it: 0 */
        ptrdiff_t py = !(fy >= 0.0) ? 0 : fy > (double)(H - 1) ? H - 1 : (ptrdiff_t)fy;
        ptrdiff_t px = !(fx >= 0.0) ? 0 : fx > (double)(W - 1) ? W - 1 : (ptrdiff_t)fx;
        float v = matte[py * W + px];
        if (sign > 0 ? v >= p->matte_in : v <= p->matte_out) {
            colour_at(colour, linear, py * W + px, c);
            return 1;
        }
    }
    return 0;
}

/* The alpha of one ramp pixel from its colour; *ok: the colour lies on the line between the
 * sides (then *agrees: within alpha_agrees of the matte's value). */
static float ramp_alpha(const float *matte, const float *colour, int linear, int H, int W, int y, int x,
                        const sd_matte_params *p, int *ok, int *agrees)
{
    const float *m = matte;
    float gy = 0.0f, gx = 0.0f;
    for (int d = 1; d <= 2; d++) { /* the gradient over a 5-pixel stencil */
        gy += m[(ptrdiff_t)(y + d < H - 1 ? y + d : H - 1) * W + x] - m[(ptrdiff_t)(y - d > 0 ? y - d : 0) * W + x];
        gx += m[(ptrdiff_t)y * W + (x + d < W - 1 ? x + d : W - 1)] - m[(ptrdiff_t)y * W + (x - d > 0 ? x - d : 0)];
    }
    float norm = hypotf(gy, gx);
    float F[3] = {NAN, NAN, NAN}, B[3] = {NAN, NAN, NAN};
    if (norm > 0.0f) {
        float ny = gy / norm, nx = gx / norm;
        side_colour(matte, colour, linear, H, W, y, x, ny, nx, 1, p, F);
        side_colour(matte, colour, linear, H, W, y, x, ny, nx, -1, p, B);
    }
    float I[3];
    colour_at(colour, linear, (ptrdiff_t)y * W + x, I);
    float n2 = 0.0f, dot = 0.0f;
    for (int k = 0; k < 3; k++) {
        float d = F[k] - B[k];
        n2 += d * d;
        dot += (I[k] - B[k]) * d;
    }
    float t0 = dot / (n2 < 1e-12f ? 1e-12f : n2); /* NaN where no side was found */
    float t = t0 < 0.0f ? 0.0f : t0 > 1.0f ? 1.0f : t0;
    float a = m[(ptrdiff_t)y * W + x];
    *ok = n2 > p->min_contrast2 && t0 > -p->off_line && t0 < 1.0f + p->off_line;
    *agrees = *ok && fabsf(t - a) < p->alpha_agrees;
    /* off the line: beyond the subject's colour the mask's side, else the mask's own value */
    float alpha = *ok ? t : t0 > 1.0f ? (a >= 0.5f ? 1.0f : 0.0f) : a;
    /* the colours may give the mask's outside coverage but never make it confidently subject */
    return a < 0.5f ? (alpha < p->grown_max ? alpha : p->grown_max) : alpha;
}

sd_status sd_matte_ramp(int H, int W, const float *matte, const float *colour, int linear, const sd_matte_params *p,
                        float *out, int nthreads)
{
    if (H < 1 || W < 1 || !matte || !colour || !p || !out || p->reach < 0) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    (void)nt; /* unused without OpenMP */
    size_t n = (size_t)H * (size_t)W;
    /* the ramp, its ridges and the mask's boundary crossings */
    size_t ramp = 0, ridges = 0, crossings = 0;
    int *row_ramp = malloc(sizeof(int) * (size_t)H); /* each row's ramp pixels */
    if (!row_ramp) return SD_ERR_NOMEM;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : ramp, ridges, crossings)
#endif
    for (int y = 0; y < H; y++) {
        const float *m = matte + (ptrdiff_t)y * W;
        int in_row = 0;
        for (int x0 = 0; x0 < W; x0 += RAMP_BLOCK) { /* blocks outside the ramp (most) at once */
            int x1 = x0 + RAMP_BLOCK < W ? x0 + RAMP_BLOCK : W;
            if (!any_in_ramp(m + x0, x1 - x0, p->matte_out, p->matte_in)) continue;
            for (int x = x0; x < x1; x++) {
                if (!in_ramp(m[x], p)) continue;
                in_row++;
                if (p->mode_auto) ridges += (size_t)is_ridge(matte, H, W, y, x, p->ridge_step);
            }
        }
        row_ramp[y] = in_row;
        ramp += (size_t)in_row;
        if (p->mode_auto) {
            for (int x = 0; x + 1 < W; x++) crossings += (m[x] > 0.5f) != (m[x + 1] > 0.5f);
            if (y + 1 < H)
                for (int x = 0; x < W; x++) crossings += (m[x] > 0.5f) != (m[x + W] > 0.5f);
        }
    }
    int keep = ramp == 0;
    if (p->mode_auto && !keep) /* an alpha matte's ramp (thin structure, or narrow): no mask's */
        keep = (double)ridges / (double)ramp >= p->ridge_share || !((double)ramp >= p->mask_ramp_px * (double)crossings);
    if (keep) {
        free(row_ramp);
        memcpy(out, matte, sizeof(float) * n);
        return SD_OK;
    }
    /* The rows' counts so far (of the rows done, a consistent set: summed under one lock) and
     * whether the ramp is certain to agree already: in auto mode, once agreeing / (on_line + the
     * ramp pixels left) reaches agreeing_share, the whole ramp's share (agreeing can only grow,
     * on_line by at most the pixels left) reaches it too, and the matte is kept: the rows left
     * need no alphas. The same result, without computing what is discarded. */
    size_t on_line = 0, agreeing = 0, ramp_left = ramp;
    int certain = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
#endif
    for (int y = 0; y < H; y++) {
        if (sd_flag_raised(&certain)) continue;
        size_t row_on_line = 0, row_agreeing = 0;
        const float *m = matte + (ptrdiff_t)y * W;
        float *o = out + (ptrdiff_t)y * W;
        for (int x0 = 0; x0 < W; x0 += RAMP_BLOCK) {
            int x1 = x0 + RAMP_BLOCK < W ? x0 + RAMP_BLOCK : W;
            if (!any_in_ramp(m + x0, x1 - x0, p->matte_out, p->matte_in)) {
                memcpy(o + x0, m + x0, sizeof(float) * (size_t)(x1 - x0));
                continue;
            }
            for (int x = x0; x < x1; x++) {
                if (!in_ramp(m[x], p)) {
                    o[x] = m[x];
                    continue;
                }
                int ok, agrees;
                o[x] = ramp_alpha(matte, colour, linear, H, W, y, x, p, &ok, &agrees);
                row_on_line += (size_t)ok;
                row_agreeing += (size_t)agrees;
            }
        }
#ifdef _OPENMP
#pragma omp critical(sd_matte_ramp_counts)
#endif
        {
            on_line += row_on_line;
            agreeing += row_agreeing;
            ramp_left -= (size_t)row_ramp[y];
            /* the final test's own division: its rounding is monotone, so the final share rounds
             * to at least this one */
            if (p->mode_auto && agreeing && (double)agreeing / (double)(on_line + ramp_left) >= p->agreeing_share)
                sd_raise_flag(&certain);
        }
    }
    free(row_ramp);
    /* a ramp that already agrees with the colours is an alpha matte's: kept */
    if (certain || (p->mode_auto && on_line && (double)agreeing / (double)on_line >= p->agreeing_share))
        memcpy(out, matte, sizeof(float) * n);
    return SD_OK;
}
