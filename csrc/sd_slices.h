/* Internal interface of the slice planning (sd_slices.c), a stage of the layered render. */
#ifndef SD_SLICES_H
#define SD_SLICES_H

#include <stddef.h>
#include "sd_core.h"
#include "sd_entries.h"
#include "sd_render.h"

/* Slice centres along the CoC axis, from the largest (farthest) to the smallest; writes at most
 * SD_MAX_SLICES + 1 values to centres and their number to *n (at least 1). */
#define SD_MAX_SLICES 24
sd_status sd_slice_centres(const sd_entries *e, float *centres, int *n, int nthreads);

/* Per (bin of the CoC axis, row): the columns and radii of the render's entries, into
 * r->bin_x0, bin_x1, bin_rlo, bin_rhi (one pass over every entry). */
void sd_slices_index(sd_render_ctx *r);

/* Plans slice si: its tent and level (at most `top`), and the cells to build (per cell row of
 * its level, into row_x0/row_x1 with row offsets row_off, and their bounding box); returns how
 * many cells that is (0: the slice holds nothing). Needs sd_slices_index first. */
ptrdiff_t sd_slice_plan(sd_render_ctx *r, int si, int top, sd_slice *s, int *row_x0, int *row_x1,
                        ptrdiff_t *row_off);

#endif
