/* Internal interface of a slice's layer (sd_layer.c), a step of the layered render. */
#ifndef SD_LAYER_H
#define SD_LAYER_H

#include "sd_render.h"

/* Gathers slice s's content and the fraction nearer slices hide of it over its cells, into
 * r->layer, r->lcoc, r->hole and (level > 0) r->pos. */
void sd_layer_build(sd_render_ctx *r, const sd_slice *s);

/* Continues the slice's surfaces behind what hides them (push-pull, sd_fill.c), or takes the
 * background plate's colour there: adds the filled light and coverage to r->layer (SD_ERR_NOMEM:
 * out of memory). */
sd_status sd_layer_fill(sd_render_ctx *r, const sd_slice *s);

#endif
