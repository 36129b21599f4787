/* synthdof C core: plain C11, no Python headers.
 *
 * Conventions shared by every kernel:
 *  - images are float32, addressed by a base pointer plus a row stride and a pixel stride,
 *    both counted in floats (so NumPy views with any float-aligned strides work unchanged);
 *  - pixel (x, y) covers [x, x+1) x [y, y+1) in "edge coordinates", its centre is (x+0.5, y+0.5);
 *  - the frame continues beyond its edges as its mirror image: light spread past a border is
 *    folded back in, so a constant image stays constant and no energy is lost (the render's
 *    default takes the frame as a window instead, see sd_render);
 *  - every entry point returns an sd_status; none allocates memory it does not free.
 */
#ifndef SD_CORE_H
#define SD_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SD_OK = 0,
    SD_ERR_NOMEM = 1,       /* an allocation failed */
    SD_ERR_VALUE = 2,       /* an input value is out of its domain (see the kernel's comment) */
    SD_ERR_INTERRUPTED = 3, /* the caller's check callback asked to stop */
    SD_ERR_ARG = 4          /* inconsistent sizes or strides */
} sd_status;

/* Called between large steps (layers, levels) from the calling thread only; returns nonzero to
 * abort the kernel with SD_ERR_INTERRUPTED. May be NULL. */
typedef struct {
    int (*check)(void *ctx);
    void *ctx;
} sd_cancel;

/* A strided read-only view of up to 4 channels. */
typedef struct {
    const float *data;
    ptrdiff_t row, pix; /* strides in floats */
    int nch;            /* 1..4 */
} sd_cview;

/* A strided writable view of up to 4 channels. */
typedef struct {
    float *data;
    ptrdiff_t row, pix;
    int nch;
} sd_view;

/* Aperture shape as a table of horizontal spans. Row i samples the shape at
 * v_i = vmin + (i + 0.5) * (vmax - vmin) / nrows, v pointing down the image, in units of the
 * radius (half the CoC diameter); each row holds nspans (left, right) pairs in the same units,
 * empty spans have left == right. This is the shape for light behind the focal plane (positive
 * CoC); in front of it the lens shows the shape rotated by 180 degrees. */
#define SD_MAX_SPANS 4
typedef struct {
    int nrows, nspans;
    const float *spans; /* nrows * nspans * 2 floats */
    float vmin, vmax;
} sd_aperture;

/* ---- circle of confusion (sd_coc.c) ----
 * On SD_ERR_VALUE *bad is set to the flat index (y * W + x) of the first offending pixel. */
sd_status sd_coc_fixed_fov(int H, int W, const float *depth, ptrdiff_t drow, ptrdiff_t dpix,
                           double scale, double inv_focus, double max_coc, float *out,
                           ptrdiff_t orow, int nthreads, ptrdiff_t *bad);
sd_status sd_coc_real_lens(int H, int W, const float *depth, ptrdiff_t drow, ptrdiff_t dpix,
                           double scale, double focus, double focal_length, double max_coc,
                           float *out, ptrdiff_t orow, int nthreads, ptrdiff_t *bad);
sd_status sd_coc_disparity(int H, int W, const float *disp, ptrdiff_t drow, ptrdiff_t dpix,
                           double K, double focus_disp, double max_coc, float *out,
                           ptrdiff_t orow, int nthreads, ptrdiff_t *bad);
/* Index of the first non-finite value in a view (or -1), the same for any thread count. */
ptrdiff_t sd_find_nonfinite(int H, int W, sd_cview v, int nthreads);
/* Copies a one-channel view (any strides) to the packed H x W map out (NULL: no copy) and scans it
 * in the same pass: returns the first non-finite value's flat index (y W + x) or -1, and sets *lo,
 * *hi to the smallest and largest values (NaN left out; +inf and -inf if none). The same for any
 * thread count. */
ptrdiff_t sd_copy_scan(int H, int W, sd_cview v, float *out, float *lo, float *hi, int nthreads);
/* The largest |v| of an H x W map with rows `row` floats apart (NaN left out; 0 if none). */
float sd_max_abs(int H, int W, const float *v, ptrdiff_t row, int nthreads);

/* ---- scatter (sd_scatter.c) and gather (sd_gather.c) ---- */

/* Energy-preserving scatter: every source pixel spreads its value over the aperture scaled to
 * diameter |coc| with total weight exactly 1 (up to float rounding). dst may not overlap src. */
sd_status sd_scatter(int H, int W, sd_cview src, const float *coc, ptrdiff_t coc_row,
                     const sd_aperture *ap, sd_view dst, int nthreads, const sd_cancel *cancel);

/* Gather: every output pixel is the aperture-weighted mean of the input around it, the aperture
 * scaled to the output pixel's own |coc|. */
sd_status sd_gather(int H, int W, sd_cview src, const float *coc, ptrdiff_t coc_row,
                    const sd_aperture *ap, sd_view dst, int nthreads, const sd_cancel *cancel);

/* ---- push-pull fill (sd_fill.c) ----
 * Fills an image where weight < 1 from the surrounding weighted values, coarse to fine:
 * out = w*v + (1-w)*(smooth interpolation of the neighbourhood). value is (H, W, nch) contiguous
 * float, weight (H, W) in [0, 1]. Where no weight exists at all, out is 0. */
sd_status sd_pushpull(int H, int W, int nch, const float *value, const float *weight, float *out,
                      int nthreads);

/* ---- refine (sd_refine.c) ----
 * Edge-aware smoothing of an (H, W, C) contiguous float image in place (C <= 16) with the
 * domain-transform recursive filter: a Gaussian-like blur of spatial sigma sigma_s (pixels)
 * whose weights fall across edges of the (H, W, K) contiguous guide (K <= 8; K = 0 or guide NULL:
 * no edges, a plain recursive blur), sigma_r the guide difference that doubles the distance.
 * Cost per pixel does not depend on sigma_s. Normalised convolution (values times weights, and
 * the weights, as channels) turns it into an edge-aware fill. */
sd_status sd_edge_filter(int H, int W, int C, float *data, const float *guide, int K, double sigma_s,
                         double sigma_r, int iterations, int nthreads);

/* Joint (guided) upsampling of an h x w map `lo` with weights lo_weight (0: invalid) to H x W
 * (H >= h, W >= w, the same frame): each output pixel averages the 4 x 4 samples around it with
 * a tent of radius 2 samples times exp(-|guide - guide_lo| / sigma_r), the L1 distance over the
 * K guide channels between the pixel's guide (H, W, K) and the guide at each sample (h, w, K):
 * edges and thin structures the image shows stay where it shows them. out_found (may be NULL)
 * is 1 where a valid sample is in reach of the pixel and 0 where none is (out is 0 there;
 * *unreached counts those pixels, so that the caller need not look for them, nor ask for
 * out_found where there are none). With `linear` (else NULL) the guide holds linear
 * light and only the pixels read (where a window's samples disagree) are encoded: each value as
 * sRGB (the bits of sd_srgb_encode_base and _finish) plus, where it exceeds 1, add[k] at its flat
 * index ((y W + x) K + c) over[k] (ascending; a value over 1 not listed gains nothing): the
 * caller's highlight term, so that the whole frame's guide need not exist. guide_lo is as
 * given (the caller encodes those h x w samples). Where the valid samples in reach agree to the
 * fraction `agree` (their range, or their distance from their plane, at most agree times their
 * largest magnitude) the colours are not compared and the tents alone weigh them (refine's
 * SD_UPSAMPLE_AGREE, wider for depth whose noise the caller smoothed). With `need` (H, W; else
 * NULL) only the pixels where it is nonzero are computed, written (out, out_found) and counted
 * in *unreached; the others of out and out_found keep what they held (refine fills the holes of
 * a map in place). */
#define SD_UPSAMPLE_AGREE 0.005
typedef struct {
    const int64_t *over;
    const float *add;
    size_t n;
} sd_linear_guide;
sd_status sd_guided_upsample(int h, int w, const float *lo, const float *lo_weight, const float *guide_lo, int H,
                             int W, const float *guide, int K, const sd_linear_guide *linear, double sigma_r,
                             double agree, const uint8_t *need, float *out, float *out_found, size_t *unreached,
                             int nthreads);

/* ---- layered render (sd_render.c) ----
 * Synthetic depth of field of an image (3 channels, linear light) with its signed CoC map (H, W,
 * contiguous, diameters in pixels) and an optional subject matte (H, W, contiguous, in [0, 1]):
 * the pixels are split into surfaces (sd_entries.h), the CoC axis is cut into soft slices, what
 * nearer slices hide of each slice is filled in from its surroundings (or taken from the optional
 * (H, W, 3) contiguous background plate), each slice is scattered with every entry's own CoC and
 * the slices are composited in depth order; the result is divided by the accumulated coverage.
 * out is (H, W, 3) through a view. */
#define SD_BORDER_WINDOW 0 /* the frame is a window: light past it is lost, its surroundings come in
                            * (continued as its mirror image without its isolated highlights) */
#define SD_BORDER_MIRROR 1 /* the frame continues as its mirror image: all light is kept */
sd_status sd_render(int H, int W, sd_cview img, const float *coc, const float *matte, const float *plate,
                    const sd_aperture *ap, int border, sd_view out, int nthreads, const sd_cancel *cancel);

/* Whether the core was compiled with OpenMP, and how many threads it would use by default. */
int sd_openmp_enabled(void);
int sd_default_threads(void);

#endif
