/* Internal interface of the refine stage's continuation of each side of the matte's boundary
 * (sd_refine_sides.c), called from the binding for python/synthdof/_refine.py. */
#ifndef SD_REFINE_SIDES_H
#define SD_REFINE_SIDES_H

#include <stddef.h>
#include <stdint.h>

#include "sd_core.h"

/* The tuning of sd_continue_sides (the constants of _refine.py, which names them alike). */
typedef struct {
    int band;            /* edge_width in pixels: sigma of the side fills; 3 band of the blur share */
    float tolerance;     /* SIDE_TOLERANCE: depth within this fraction of its side's continuation stays */
    int ring_px;         /* RING_PX: the ring beside the boundary whose blur is counted */
    float blur_pull;     /* BLUR_PULL: a pixel pulled this far towards the other side counts as blurred */
    float beyond_pull;   /* BEYOND_PULL: pulled beyond this, kept depth is another surface and stays */
    float blurred_share; /* BLURRED_SHARE: kept depth is replaced where this share of its ring is blurred */
    float min_weight;    /* MIN_FILL_WEIGHT */
    int iterations;      /* FILTER_ITERATIONS of the domain-transform filter */
    int widenings;       /* how many times an unguided fill may widen its reach 4x */
} sd_sides_params;

/* Within an H x W box, in place: depth (disparity q, rows qrow floats apart) beside the matte's
 * boundary (near) that strays from its own side's continuation by more than tolerance is replaced
 * by it. The continuation of each side is the unguided normalised fill (sd_edge_fill, sigma band)
 * of the pixels of that side that are not near; side = the subject's side. `kept` depth (the
 * input's own values) is replaced only where it is blurred across the boundary: where the share of
 * blurred pixels of the ring (pixels of the band with a pixel of the other side within ring_px; blurred:
 * pulled at least blur_pull of the way towards the other side's continuation), filled with sigma
 * 3 band, is at least blurred_share, or where the pixel is pulled more than half the way; never
 * where it is pulled beyond beyond_pull (an occluder in front of both sides). The three masks
 * (nonzero: true) have rows mrow bytes apart. The fills run on cells of band / 4 pixels (see
 * sd_refine_sides.c); for a band under 8 pixels on the pixels themselves, where the result is
 * what _refine.py's NumPy expressions computed, bit for bit (tests/test_refine_maps.py holds them
 * as the reference). The same bits for any thread count. */
sd_status sd_continue_sides(int H, int W, float *q, ptrdiff_t qrow, const uint8_t *side, const uint8_t *near,
                            const uint8_t *kept, ptrdiff_t mrow, const sd_sides_params *p, int nthreads);

#endif
