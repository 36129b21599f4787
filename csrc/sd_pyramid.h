/* Internal interface of the spreading pyramid (sd_spread.c), shared with the layered render. */
#ifndef SD_PYRAMID_H
#define SD_PYRAMID_H

#include "sd_core.h"

/* Largest radius (pixels) spread at one level; a larger CoC goes to a coarser level, where a
 * 2^k x 2^k block of sources is merged into one and spread with radius R / 2^k, so the cost per
 * source never exceeds ~2 R_MAX rows whatever the blur. The coarse result is upsampled back;
 * its edge softness (~2^k px) stays below a tenth of the radius. */
#define SD_R_MAX 24.0f

typedef struct sd_pyramid sd_pyramid;

/* Difference-buffer pyramid for an H x W frame and CoC diameters up to max_coc. NULL on OOM. */
sd_pyramid *sd_pyr_new(int H, int W, float max_coc);
void sd_pyr_free(sd_pyramid *p);
void sd_pyr_clear(sd_pyramid *p, int nthreads);

/* Spread the sources of frame rows [row0, row1) of src (up to 4 channels, missing ones read as
 * 0) with the per-pixel signed CoC. Only the plane rows this can reach are touched, and only
 * those are cleared and resolved later, so a slice that holds a band of the frame costs that
 * band. */
void sd_pyr_spread(sd_pyramid *p, sd_cview src, const float *coc, ptrdiff_t coc_row,
                   const sd_aperture *ap, int row0, int row1, int nthreads);

/* Prefix-sum every level and fold the coarse levels into level 0; afterwards
 * sd_pyr_row(p, y) points at W RGBA values of row y for y in [y0, y1) of sd_pyr_active (rows
 * outside it hold nothing). sd_pyr_clear must be called before the next spread. */
void sd_pyr_resolve(sd_pyramid *p, int nthreads);
void sd_pyr_active(const sd_pyramid *p, int *y0, int *y1);
float *sd_pyr_row(sd_pyramid *p, int y);

#endif
