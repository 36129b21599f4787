/* Internal interface of the refine stage (sd_refine.c): edge-aware filtering for turning network
 * and sensor depth (and segmentation mattes) into render-ready maps. The public entry point is
 * sd_edge_filter in sd_core.h; this header holds what the tests and fuzz harness need besides. */
#ifndef SD_REFINE_H
#define SD_REFINE_H

#include "sd_core.h"

/* Largest number of channels sd_edge_filter smooths at once, and of guide channels. */
#define SD_EDGE_MAX_CH 16
#define SD_EDGE_MAX_GUIDE 8

#endif
