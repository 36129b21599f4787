/* Internal interface of the refine stage's per-pixel passes (sd_refine_maps.c), called from the
 * binding for python/synthdof/_refine.py. Flat arrays are C-contiguous; every function returns
 * SD_ERR_ARG for a NULL pointer or an impossible size, and gives the same bits for any thread
 * count. */
#ifndef SD_REFINE_MAPS_H
#define SD_REFINE_MAPS_H

#include <stddef.h>
#include <stdint.h>

#include "sd_core.h"

/* The guide's sRGB encoding of n linear values, in two steps: base = max(clip(lin, 0, 1),
 * 0.0031308); finish turns it in place into 12.92 x below the knee and 1.055 base^(1/2.4) - 0.055
 * above it (the power within 3 ulp, the same bits on every machine). */
sd_status sd_srgb_encode_base(size_t n, const float *lin, float *base, int nthreads);
sd_status sd_srgb_encode_finish(size_t n, const float *lin, float *inout, int nthreads);
/* One value's encoding, the same bits as the two steps give it (for the few pixels a stage reads). */
float sd_srgb_encode_one(float lin);
/* n values' encoding into out, the same bits, in the calling thread (a few pixels of a row). */
void sd_srgb_encode_run(size_t n, const float *restrict lin, float *restrict out);

/* n unsigned integers of `bytes` (1 or 2) bytes each as float32 in [0, 1] (value / 255 or 65535). */
sd_status sd_unorm_to_float(size_t n, const void *src, int bytes, float *out, int nthreads);

/* Disparity from n depth values: valid where finite, > 0 and not invalid[i] (invalid may be NULL);
 * q = 1 / depth (or depth itself when is_disparity) and weight = 1 where valid, both 0 where not;
 * *nvalid counts the valid pixels. */
sd_status sd_disparity_in(size_t n, const float *depth, const uint8_t *invalid, int is_disparity, float *q,
                          float *weight, size_t *nvalid, int nthreads);
/* The result from n disparities: max(q, FLT_MIN), then 1 / that unless is_disparity (out may be q). */
sd_status sd_disparity_out(size_t n, const float *q, int is_disparity, float *out, int nthreads);

/* kept[i] = 2 where weight[i] > 0 and |q - q_in| / q_in <= limit (float32 arithmetic), else 0:
 * noisy depth's own values that its smoothing q agrees with, of n pixels. */
sd_status sd_agreeing(size_t n, const float *q, const float *q_in, const float *weight, float limit, uint8_t *kept,
                      int nthreads);

/* The flat indices of the n values above threshold, ascending (NaN is not above anything), in two
 * passes over chunks of `chunk` values: counts[c] = how many of chunk c's are above it (ceil(n /
 * chunk) counts); then, given starts[c] = the sum of the counts before chunk c (the caller's
 * running sum), out (as long as all counts together) = the indices, chunk c's from out[starts[c]]. */
sd_status sd_count_above(size_t n, const float *v, float threshold, size_t chunk, size_t *counts, int nthreads);
sd_status sd_list_above(size_t n, const float *v, float threshold, size_t chunk, const size_t *starts, int64_t *out,
                        int nthreads);

/* out (h, w, C) = src (H, W, C) at rows ys[j] and columns xs[i] (each within the image, else
 * SD_ERR_VALUE): the image's values where a map of h x w samples reads them. */
sd_status sd_take_grid(int H, int W, int C, const float *src, int h, const int64_t *ys, int w, const int64_t *xs,
                       float *out, int nthreads);

/* *median = NumPy's median of the values v[i] for i = 0, step, 2 step, ... < n whose weight[i] > 0
 * (weight may be NULL), or with ref (may be NULL) of |v[i] - ref[i]| / ref[i] (float32
 * arithmetic): the middle value, or the two middle values' float32 sum halved; NaN where one is
 * NaN or there are none. Exact (a radix selection on the floats' bits). */
sd_status sd_median_sampled(size_t n, size_t step, const float *v, const float *ref, const float *weight,
                            float *median, int nthreads);

/* Whether the (H, W) map d is, within tolerance at every pixel, the bilinear enlargement of the
 * (h, w) map small (float64) by the factors (sy, sx) (>= 1): each pixel (y, x) reads small at
 * ((y + 0.5) / sy - 0.5, (x + 0.5) / sx - 0.5), clamped to the map, from its 2 x 2 samples,
 * rows first; all in double, in the order of _refine.py's NumPy expressions (the same decision
 * to the bit). *fits = 1 where |enlargement - d| <= tolerance everywhere, 0 where a pixel exceeds
 * it (the rows stop at the first). d finite. */
sd_status sd_enlargement_fits(int H, int W, const float *d, int h, int w, const double *small, double sy, double sx,
                              double tolerance, int *fits, int nthreads);

/* The first of n pixels in cell i of `cells` cells along an axis (n for i = cells): cell i spans
 * [sd_cell_edge(i), sd_cell_edge(i + 1)). sd_cell_means' cells, which the steps' test and fill
 * (sd_refine_steps.c) share. */
static inline int sd_cell_edge(int i, int n, int cells) { return (int)((long long)i * n / cells); }
/* edges[i] = sd_cell_edge(i, n, cells) for i = 0 .. cells: the bounds once, where a loop would
 * divide for every row. */
void sd_cell_edges(int n, int cells, int *edges);

/* The (h, w) cells' weighted means of the (H, W, K) map q (h <= H, w <= W; K channels side by
 * side, 1 <= K <= SD_CELL_MAX_CHANNELS): cell (j, i) spans rows [j H / h, (j + 1) H / h) and
 * columns [i W / w, (i + 1) W / w) (integer division); out_q (h, w, K) = the sum of weight x q
 * over the sum of weight (weight NULL: all 1; 0 where that is 0), out_w (h, w) = the mean weight, and out_spread
 * (K = 1 only; may be NULL) the weighted standard deviation over |out_q| (0 where out_q is 0).
 * Each channel's mean has the bits of that channel alone as a map of K = 1. Weights are >= 0
 * and finite, q finite (refine's disparity or colours and their 0/1 weights); sums in double. */
#define SD_CELL_MAX_CHANNELS 8
sd_status sd_cell_means(int H, int W, int K, const float *q, const float *weight, int h, int w, float *out_q,
                        float *out_w, float *out_spread, int nthreads);

/* Whether the median over the (H-2) x (W-2) inner pixels whose 3x3 neighbourhood has weight >= 1
 * everywhere of |q - its 3x3 mean| / max(|q|, 1e-30) (float32, summed as NumPy adds the shifted
 * planes; of an even count the mean of the two middle values in double; 0 if there are none; NaN
 * if one is NaN) exceeds threshold; *count is how many pixels
 * it covers. Only the inner rows 0, row_step, 2 row_step, ... (counted from the first inner row)
 * take part: a median of a few million deviations is as good as of all. */
sd_status sd_noise_above(int H, int W, const float *q, const float *weight, double threshold, int row_step,
                         int *above, size_t *count, int nthreads);

/* side = (matte >= 0.5 and matte2 >= 0.5) (matte2 may be NULL), near = a pixel of the other side
 * lies within `radius` pixels along both axes (a square window, clipped at the frame); box =
 * near's bounding rows [box[0], box[1]] and columns [box[2], box[3]] (box[1] < box[0]: none). */
sd_status sd_band_near(int H, int W, const float *matte, const float *matte2, int radius, uint8_t *side,
                       uint8_t *near, int box[4], int nthreads);

/* out (H, W, C + 1) = each pixel's C values times its weight, then the weight; values' and
 * weight's rows are vrow and wrow floats apart. */
sd_status sd_fill_weigh(int H, int W, int C, const float *values, ptrdiff_t vrow, const float *weight,
                        ptrdiff_t wrow, float *out, int nthreads);
/* For each pixel still in todo whose filtered weight (channel C of `filtered`, (H, W, C + 1))
 * exceeds min_weight: out (H, W, C) = the filtered values / that weight, and the pixel leaves
 * todo. todo's rows are trow bytes apart, out's orow floats. *left counts the pixels still in
 * todo. */
sd_status sd_fill_take(int H, int W, int C, const float *filtered, uint8_t *todo, ptrdiff_t trow, float min_weight,
                       float *out, ptrdiff_t orow, size_t *left, int nthreads);

/* A fill widening after the first runs on boxes around the pixels left in todo, each grown by
 * SD_FILL_REACH_SIGMAS sigmas (the weight of what lies farther is below 1e-3 of the nearest, as
 * refine's REACH_SIGMAS), instead of the whole frame: a sensor's few pixels walled in by edges, a
 * network's few holes. Tiles of SD_FILL_TILE pixels give the boxes. */
#define SD_FILL_REACH_SIGMAS 6
#define SD_FILL_TILE 64
#define SD_FILL_MAX_BOXES 256
/* The boxes (rows [b[0], b[1]), columns [b[2], b[3])) that hold every todo pixel (rows W bytes
 * apart) with `margin` pixels around it, clipped to the frame: each tile's box of its todo pixels
 * grown by margin, overlapping boxes merged (they do not overlap). Returns how many, or 0 where
 * they would cover half the frame or more, or more than SD_FILL_MAX_BOXES tiles hold todo pixels
 * (the frame itself is cheaper then), or none does. */
int sd_fill_boxes(int H, int W, const uint8_t *todo, int margin, int boxes[][4]);

/* The normalised edge-aware fill: for k = 0, 1, ... (at most `widenings` times) while pixels are
 * left in todo, the values times the weights and the weights are filtered by sd_edge_filter
 * (guide may be NULL) with sigma_s * 4^k, and sd_fill_take moves the pixels whose filtered weight
 * exceeds min_weight out of todo with their normalised values in out; a guided fill stops widening
 * after a widening (k >= 1) that moved no pixel. Each step runs on the boxes sd_fill_boxes gives
 * for the pixels left (margin: the reach of sigma_s * 4^k), where there are any: those steps on
 * each box cut from the frame (the guide's too) in turn. *left: pixels still in todo. */
sd_status sd_edge_fill(int H, int W, int C, const float *values, ptrdiff_t vrow, const float *weight, ptrdiff_t wrow,
                       const float *guide, int K, double sigma_s, double sigma_r, int iterations, int widenings,
                       float min_weight, uint8_t *todo, float *out, size_t *left, int nthreads);

/* The margin (pixels) of sd_fill_boxes for a fill of sigma s: SD_FILL_REACH_SIGMAS sigmas, at most
 * past any frame. */
int sd_fill_margin(double sigma, int H, int W);

#endif
