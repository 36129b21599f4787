/* Internal interface of the frame-as-a-window border (sd_window.c), a step of the layered render. */
#ifndef SD_WINDOW_H
#define SD_WINDOW_H

#include "sd_pyramid.h"
#include "sd_render.h"

/* The isolated highlights of slice s near the frame's edges, spread on their own into r->xpyr
 * (made on first use): *drop is that pyramid, resolved without folding, for the slice's resolve
 * to take out of its margins, or NULL when the slice has none. */
sd_status sd_window_excess(sd_render_ctx *r, const sd_slice *s, const sd_pyramid **drop);

#endif
