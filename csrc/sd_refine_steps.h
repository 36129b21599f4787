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

/* flag (H, W) = 1 where the disparity q (H, W) lies on a step that was blurred across. The test
 * runs on qc, q's means over (h, w) cells (sd_cell_means' cells; qc may be q itself when h = H and
 * w = W): over the (2r+1)^2 cells around a pixel's cell (clipped at the frame) the least-squares
 * plane leaves a residual whose root mean square exceeds tau * qc (a plane, such as a slanted
 * floor, leaves none: disparity is linear in the image's coordinates), and the pixel's own q
 * lies strictly between lo and hi of the way from those cells' smallest qc to their largest (a
 * sharp step's pixels lie at its ends; a blurred one's in between). *count: the flagged pixels.
 * q and qc finite and > 0 (else SD_ERR_VALUE), r >= 1, 0 <= lo <= hi <= 1. */
sd_status sd_blurred_steps(int H, int W, const float *q, int h, int w, const float *qc, int r, double tau, double lo,
                           double hi, uint8_t *flag, size_t *count, int nthreads);

#endif
