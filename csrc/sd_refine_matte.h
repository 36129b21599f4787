/* Internal interface of the refine stage's matte ramp (sd_refine_matte.c), called from the
 * binding for python/synthdof/_refine.py (_refine_matte). */
#ifndef SD_REFINE_MATTE_H
#define SD_REFINE_MATTE_H

#include "sd_core.h"

/* The tuning of sd_matte_ramp (the constants of _refine.py, which names them alike). */
typedef struct {
    float matte_out, matte_in; /* MATTE_OUT, MATTE_IN: confidently outside / inside */
    float min_contrast2;       /* MIN_SIDE_CONTRAST squared: the sides' colours differ this much */
    float off_line;            /* OFF_LINE: a colour this far beyond either side is no blend */
    float grown_max;           /* GROWN_MAX: alpha outside the mask stays below this */
    float alpha_agrees;        /* ALPHA_AGREES */
    double agreeing_share;     /* AGREEING_SHARE */
    float ridge_step;          /* RIDGE_STEP */
    double ridge_share;        /* RIDGE_SHARE */
    double mask_ramp_px;       /* MASK_RAMP_PX */
    int reach;                 /* pixels walked across the edge to each side's colour */
    int mode_auto;             /* refine_matte='auto' (else True: always re-estimate) */
} sd_matte_params;

/* The matte's soft ramp (matte_out < matte < matte_in) re-estimated from the colours: each ramp
 * pixel's alpha is its colour's position on the line between the nearest confidently inside and
 * outside pixels straight across the edge (along the matte's gradient over a 5-pixel stencil,
 * within reach), where the two differ and the colour lies near the line; beyond the subject's
 * end the mask's side, else the mask's value; outside the mask (< 0.5) at most grown_max. In
 * auto mode the matte is kept as it is when it is no segmentation mask (ridges on ridge_share
 * of its ramp, or fewer than mask_ramp_px ramp pixels per boundary crossing) or when its ramp
 * already agrees with the colours (agreeing_share of the pixels on a line within alpha_agrees).
 * colour (H x W x 3, packed) is the guide, or linear light encoded on reading each pixel (as
 * sd_srgb_encode gives it) when `linear` is set: only the pixels the walks reach are encoded.
 * out (H x W): the result (the matte where nothing changes). Computes what _refine.py's NumPy
 * expressions computed, bit for bit; the same bits for any thread count. */
sd_status sd_matte_ramp(int H, int W, const float *matte, const float *colour, int linear, const sd_matte_params *p,
                        float *out, int nthreads);

#endif
