/* The frame as a window onto a larger scene (the render's default border, sd_render in sd_core.h).
 *
 * A lens loses the part of a disk that falls past the frame's edge and receives light from the
 * scene beyond it. The pyramid's mirrored margins (sd_border.h) already do both for a scene that
 * continues as the frame's mirror image: what leaves the frame is dropped and the mirror image's
 * light comes in, which is the same light folded back. What a plausible continuation must not
 * hold is a copy of every isolated highlight near the edge (a light on the border would land on
 * its own mirrored half and come out twice as bright). So the continuation beyond the edge is
 * the mirror image with its isolated highlights cut down: a cell of a slice brighter than four
 * times the mean of its own blur's neighbourhood (the (2r + 1)^2 cells around it, r its radius)
 * keeps only the mean in the mirror. A texture's bright parts stay within that unless they cover
 * less than a quarter of the neighbourhood; a light much smaller than its blur does not (twice
 * the mean took the bright squares of high-contrast textures at the edge for highlights and
 * darkened the continuation). The excess of those cells is spread on its own (a second
 * pyramid) and what it puts past the frame's edges is taken out of the slice's margins before
 * they are folded back: the highlight's light that leaves the frame is lost, its mirror image
 * never comes in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_pyramid.h"
#include "sd_render.h"
#include "sd_util.h"
#include "sd_window.h"

/* A cell brighter than this many times the mean of its blur's neighbourhood is an isolated
 * highlight. */
#define HIGHLIGHT_OVER_MEAN 4.0f

typedef struct {
    int y0, y1, x0, x1;
} rect;

/* The cells of `b` the slice built (their bounding box; empty if none). */
static rect built_in(const sd_slice *s, rect b)
{
    rect u = {0, 0, 0, 0}; /* empty until a row with cells is found */
    int found = 0;
    for (int y = b.y0; y < b.y1; y++) {
        int a = imax(s->cell_x0[y], b.x0), e = imin(s->cell_x1[y], b.x1);
        if (a >= e) continue;
        if (!found) u = (rect){y, y + 1, a, e};
        found = 1;
        u.y1 = y + 1;
        u.x0 = imin(u.x0, a);
        u.x1 = imax(u.x1, e);
    }
    return u;
}

static int rect_empty(rect b) { return b.y0 >= b.y1 || b.x0 >= b.x1; }

static rect intersect(rect a, rect b)
{
    rect u = {imax(a.y0, b.y0), imin(a.y1, b.y1), imax(a.x0, b.x0), imin(a.x1, b.x1)};
    return u;
}

/* Writes the excess of every built cell of band `b` into r->xlayer (zero where a cell is no
 * isolated highlight or its blur does not reach past the frame's edge); `box` is the slice's
 * box, g the band's neighbourhood width. Returns whether any cell has an excess, -1 on OOM. */
static int band_excess(sd_render_ctx *r, const sd_slice *s, rect b, rect box, int g, int ny, int nx)
{
    rect t = {imax(b.y0 - g, box.y0), imin(b.y1 + g, box.y1), imax(b.x0 - g, box.x0), imin(b.x1 + g, box.x1)};
    int tw = t.x1 - t.x0 + 1;
    /* summed-area table of the cells' light (colour summed over channels) over t */
    double *P = sd_big_calloc((size_t)(t.y1 - t.y0 + 1) * (size_t)tw, sizeof(double), r->nt);
    if (!P) return -1;
    for (int y = t.y0; y < t.y1; y++) {
        const double *up = P + (ptrdiff_t)(y - t.y0) * tw;
        double *row = P + (ptrdiff_t)(y - t.y0 + 1) * tw, acc = 0.0;
        int a = imax(s->cell_x0[y], t.x0), e = imin(s->cell_x1[y], t.x1);
        const float *l = r->layer + 4 * s->cell_off[y];
        for (int x = t.x0; x < t.x1; x++) {
            if (x >= a && x < e) acc += (double)l[4 * x] + l[4 * x + 1] + l[4 * x + 2];
            row[x - t.x0 + 1] = up[x - t.x0 + 1] + acc;
        }
    }
    float scale = 1.0f / (float)(1 << s->k), rcap = r->pyr->rcap;
    for (int y = b.y0; y < b.y1; y++) {
        int a = imax(s->cell_x0[y], b.x0), e = imin(s->cell_x1[y], b.x1);
        ptrdiff_t off = s->cell_off[y];
        for (int x = a; x < e; x++) {
            const float *l = r->layer + 4 * (off + x);
            float *d = r->xlayer + 4 * (off + x);
            float R = sd_radius(r->lcoc[off + x], rcap) * scale, f = 0.0f;
            float edge = fminf(fminf((float)x + 0.5f, (float)(nx - x) - 0.5f), fminf((float)y + 0.5f, (float)(ny - y) - 0.5f));
            float lum = l[0] + l[1] + l[2];
            if (R > 0.5f && edge < R + 2.0f && lum > 0.0f) { /* its blur reaches past the edge */
                int w = imin(imax(sd_iceil(R), 1), g);
                int ya = imax(y - w, t.y0) - t.y0, yb = imin(y + w + 1, t.y1) - t.y0;
                int xa = imax(x - w, t.x0) - t.x0, xb = imin(x + w + 1, t.x1) - t.x0;
                double sum = P[(ptrdiff_t)yb * tw + xb] - P[(ptrdiff_t)ya * tw + xb] - P[(ptrdiff_t)yb * tw + xa] +
                             P[(ptrdiff_t)ya * tw + xa];
                float mean = (float)(sum / ((double)(yb - ya) * (double)(xb - xa)));
                if (mean >= 0.0f && lum > HIGHLIGHT_OVER_MEAN * mean) f = 1.0f - mean / lum; /* cut to the mean */
            }
            for (int c = 0; c < 4; c++) d[c] = f * l[c];
        }
    }
    sd_big_free(P);
    /* A highlight the edge cuts is continued beyond it as its mirror image as far as it plausibly
     * reaches: taken as a disk, a light whose cut (its chord along the edge) is c cells long and
     * which reaches h cells into the frame reaches c^2 / (4 h) cells past the edge at the middle
     * of the cut. The cells of each line that start at the edge and are no farther in than the
     * disk reaches past it on that line are not taken out. */
    int bw = b.x1 - b.x0;
    unsigned char *cont = calloc((size_t)(b.y1 - b.y0) * (size_t)bw, 1);
    int *run = malloc(sizeof(int) * (size_t)(imax(b.y1 - b.y0, bw) + 1));
    if (!cont || !run) {
        free(cont);
        free(run);
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) { /* lines along rows (left, right edges), then columns */
        int n0 = pass ? b.x0 : b.y0, n1 = pass ? b.x1 : b.y1;   /* the lines */
        int m0 = pass ? b.y0 : b.x0, m1 = pass ? b.y1 : b.x1;   /* positions along a line */
        int mn = pass ? ny : nx;
        for (int from = 0; from < 2; from++) {
            if (from == 0 ? m0 != 0 : m1 != mn) continue; /* the lines do not reach this edge */
            for (int i = n0; i < n1; i++) { /* each line's run of highlight cells from the edge */
                int t = 0;
                for (; t < m1 - m0; t++) {
                    int j = from == 0 ? m0 + t : m1 - 1 - t;
                    int y = pass ? j : i, x = pass ? i : j;
                    if (x < s->cell_x0[y] || x >= s->cell_x1[y] || !sd_nonzero4(r->xlayer + 4 * (s->cell_off[y] + x)))
                        break;
                }
                run[i - n0] = t;
            }
            for (int i = n0; i < n1;) { /* each cut: consecutive lines with a run */
                if (!run[i - n0]) { i++; continue; }
                int e = i, h = 0;
                for (; e < n1 && run[e - n0]; e++) h = imax(h, run[e - n0]);
                /* the disk's centre lies `in` cells inside the edge (negative: past it), so a
                 * line reaching `run` cells in reaches run - 2 in past it */
                float c = (float)(e - i), in = 0.5f * ((float)h - c * c / (4.0f * (float)h));
                for (int q = i; q < e; q++) {
                    float reach = (float)run[q - n0] - 2.0f * in;
                    for (int t = 0; t < run[q - n0] && (float)t < reach; t++) {
                        int j = from == 0 ? m0 + t : m1 - 1 - t;
                        int y = pass ? j : q, x = pass ? q : j;
                        cont[(ptrdiff_t)(y - b.y0) * bw + (x - b.x0)] = 1;
                    }
                    /* a light reaching farther past the edge than it shows: its edge cell is
                     * continued that many times more (a negative excess adds to the fold) */
                    int j = from == 0 ? m0 : m1 - 1, y = pass ? j : q, x = pass ? q : j;
                    float more = fminf(reach, (float)g) - (float)run[q - n0];
                    if (more > 0.0f) {
                        ptrdiff_t o = s->cell_off[y] + x;
                        for (int ch = 0; ch < 4; ch++) r->xlayer[4 * o + ch] = -more * r->layer[4 * o + ch];
                        cont[(ptrdiff_t)(y - b.y0) * bw + (x - b.x0)] = 2;
                    }
                }
                i = e;
            }
        }
    }
    free(run);
    int any = 0;
    for (int y = b.y0; y < b.y1; y++) {
        int a = imax(s->cell_x0[y], b.x0), e = imin(s->cell_x1[y], b.x1);
        for (int x = a; x < e; x++) {
            float *d = r->xlayer + 4 * (s->cell_off[y] + x);
            unsigned char cf = cont[(ptrdiff_t)(y - b.y0) * bw + (x - b.x0)];
            if (cf == 1) d[0] = d[1] = d[2] = d[3] = 0.0f;
            else any |= sd_nonzero4(d);
        }
    }
    free(cont);
    return any;
}

sd_status sd_window_excess(sd_render_ctx *r, const sd_slice *s, const sd_pyramid **drop)
{
    *drop = NULL;
    int k = s->k, bs = 1 << k;
    int ny = (r->H + bs - 1) >> k, nx = (r->W + bs - 1) >> k;
    /* the band whose blur can reach past the edges: the largest radius at this level */
    float Rmax = fminf(0.5f * r->max_coc, r->pyr->rcap) / (float)bs;
    int g = imin(sd_iceil(Rmax) + 3, imax(ny, nx));
    int by = imin(g, ny), bx = imin(g, nx);
    int ylo = by, yhi = imax(ny - g, by);
    rect bands[4] = {{0, by, 0, nx}, {yhi, ny, 0, nx}, {ylo, yhi, 0, bx}, {ylo, yhi, imax(nx - g, bx), nx}};
    rect box = {s->cy0, s->cy1, s->cx0, s->cx1};
    int has[4] = {0, 0, 0, 0}, any = 0;
    for (int i = 0; i < 4; i++) {
        rect b = built_in(s, intersect(bands[i], box));
        if (rect_empty(b)) continue;
        int h = band_excess(r, s, b, box, g, ny, nx);
        if (h < 0) return SD_ERR_NOMEM;
        has[i] = h;
        bands[i] = b;
        any |= h;
    }
    if (!any) return SD_OK;
    if (!r->xpyr) {
        r->xpyr = sd_pyr_new(r->H, r->W, r->max_coc, r->nt); /* the same geometry as r->pyr */
        if (!r->xpyr) return SD_ERR_NOMEM;
    }
    sd_pyr_clear(r->xpyr, r->nt);
    sd_pyr_src src = {{r->xlayer, 0, 4, 4}, (float)(bs * bs), r->lcoc, k > 0 ? r->pos : NULL, 0,
                      s->cell_x0, s->cell_x1, s->cell_off, SD_DIM_LIGHT};
    for (int i = 0; i < 4; i++) {
        if (!has[i]) continue;
        sd_status st = sd_pyr_spread(r->xpyr, k, &src, r->ap, r->fps, bands[i].y0, bands[i].y1, bands[i].x0,
                                     bands[i].x1, r->nt);
        if (st != SD_OK) return st;
    }
    sd_pyr_resolve_border(r->xpyr, k, 0, NULL, r->nt);
    *drop = r->xpyr;
    return SD_OK;
}
