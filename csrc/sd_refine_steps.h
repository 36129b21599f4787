/* Internal interface of refine's test for depth steps blurred across (sd_refine_steps.c), called
 * from the binding for python/synthdof/_refine.py. */
#ifndef SD_REFINE_STEPS_H
#define SD_REFINE_STEPS_H

#include <stddef.h>
#include <stdint.h>

#include "sd_core.h"

/* Output rows per task: each task sums its rows' windows from scratch, so the bits do not depend
 * on the thread count. */
#define SD_STEPS_BLOCK_ROWS 64
/* A flagged pixel also lies on a ramp: strictly between its two neighbours along a row or a column,
 * each this fraction of the mean slope of a ramp across the whole window or more away. */
#define SD_STEPS_RAMP_SLOPE 0.5

/* flag (H, W) = 1 where the disparity q (H, W) lies on a step that was blurred across. The test
 * runs on qc, q's means over (h, w) cells (sd_cell_means' cells; qc may be q itself when h = H and
 * w = W): over the (2r+1)^2 cells around a pixel's cell (clipped at the frame) the least-squares
 * plane leaves a residual whose root mean square exceeds tau * qc (a plane, such as a slanted
 * floor, leaves none: disparity is linear in the image's coordinates), and the pixel's own q
 * lies strictly between lo and hi of the way from those cells' smallest qc to their largest (a
 * sharp step's pixels lie at its ends; a blurred one's in between), or strictly between lo_s and
 * hi_s (a shoulder of the blur) beside such a pixel along a row or a column; and either lies on a
 * ramp (SD_STEPS_RAMP_SLOPE: a small light at a depth between two others and a curved surface
 * beside a sharp step do not). *count: the flagged pixels; *jumps: the pairs of neighbours
 * along a row or a column whose q differ by more than `jump` of the second's (sharp steps: depth
 * that has many of them against its flagged pixels is a renderer's or a sensor's, not blurred).
 * q and qc finite and > 0 (else SD_ERR_VALUE), r >= 1, 0 <= lo_s <= lo <= hi <= hi_s <= 1,
 * jump >= 0. */
sd_status sd_blurred_steps(int H, int W, const float *q, int h, int w, const float *qc, int r, double tau, double lo,
                           double hi, double lo_s, double hi_s, double jump, uint8_t *flag, size_t *count,
                           size_t *jumps, int nthreads);

/* out (H, W) = q, and at each stepped pixel the mean q of the cell (sd_cell_means' (h, w) cells,
 * over their pixels not stepped) that is nearest in place and colour: the least
 * (d / sigma_s)^2 / 2 + (sum over RGB of |colour difference| / sigma_r)^2 / 2 among the cells
 * within `radius` cells along both axes that hold such pixels (d: pixels from the pixel to the
 * cell's centre; a cell's colour is its pixels' mean, encoded once); q itself where none does.
 * colour (H, W, 3): sRGB in [0, 1], or linear light (linear != 0), encoded as the guide is. out may
 * be q. Costs are compared exactly; of equal ones the first found is taken, the cells searched by
 * their least cost to the pixel's cell (then by offset), which makes the result independent of
 * threads. */
sd_status sd_step_fill(int H, int W, const float *q, const uint8_t *stepped, const float *colour, int linear, int h,
                       int w, int radius, double sigma_s, double sigma_r, float *out, int nthreads);

#endif
