/* Internal interface of the depth-edge unmixing (sd_unmix.c), a step of the entries stage
 * (sd_entries.c). */
#ifndef SD_UNMIX_H
#define SD_UNMIX_H

#include "sd_entries.h"

/* Only pixels the rest covers (almost) fully are unmixed: elsewhere the matte already splits. */
#define SD_FULL_ALPHA 0.999f

/* A share moved off a depth edge: taken from the pixel's rest, given to an extra entry. */
typedef struct {
    int x;
    float c;           /* CoC of the other side */
    double move[3], b; /* colour and coverage moved */
} sd_unmixed;

/* The CoC difference beyond which neighbours lie on the two sides of a depth edge, per range of
 * CoC: 1 px, or more where the CoC map is noisy (see sd_unmix.c); into f's edge_margin, edge_lo
 * and edge_scale. SD_ERR_NOMEM if scratch fails. */
sd_status sd_edge_margin(sd_frame *f);

/* The depth edges of row y (W >= 3, H >= 3), in column order, into U (up to W of them); returns
 * their number. vmn, vmx: scratch of W floats, cand of W bytes. */
int sd_unmix_row(const sd_frame *f, int y, float *vmn, float *vmx, unsigned char *cand, sd_unmixed *U);

#endif
