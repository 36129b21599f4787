/* Push-pull hole filling: a weighted image pyramid is pulled down (weighted means), then pushed
 * back up, each level keeping its own values where it has weight and taking the bilinear
 * interpolation of the coarser filled level where it has none. Cost O(pixels). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_parallel.h"

#define MAX_LEVELS 32

typedef struct {
    float *v; /* H x W x nch, normalised values */
    float *w; /* H x W weights in [0, 1] */
    int H, W;
} flevel;

#define RELAX_SWEEPS 4

/* A few red-black Gauss-Seidel sweeps of the membrane equation on the unknown part: each cell
 * becomes w * own + (1 - w) * (mean of its 4 neighbours). Push-pull alone takes the filled value
 * from blocky coarse averages, which lets a distant bright region bias the fill right next to
 * the known boundary; relaxing at every level makes the fill follow the boundary values
 * (harmonic), at O(pixels) cost. Red-black order keeps it deterministic under threads. */
static void relax(float *v, const float *own, const float *wt, int H, int W, int nch, int nt)
{
    for (int it = 0; it < RELAX_SWEEPS; it++)
        for (int colour = 0; colour < 2; colour++) {
            SD_PARALLEL_FOR(nt)
            for (int y = 0; y < H; y++) {
                int ym = y > 0 ? y - 1 : y, yp = y + 1 < H ? y + 1 : y;
                for (int x = (y + colour) & 1; x < W; x += 2) {
                    ptrdiff_t i = (ptrdiff_t)y * W + x;
                    float w = wt[i];
                    w = w > 1.0f ? 1.0f : (w > 0.0f ? w : 0.0f);
                    if (w >= 1.0f) continue;
                    int xm = x > 0 ? x - 1 : x, xp = x + 1 < W ? x + 1 : x;
                    ptrdiff_t a = ((ptrdiff_t)ym * W + x) * nch, b = ((ptrdiff_t)yp * W + x) * nch;
                    ptrdiff_t c = ((ptrdiff_t)y * W + xm) * nch, d = ((ptrdiff_t)y * W + xp) * nch;
                    for (int ch = 0; ch < nch; ch++) {
                        float m = 0.25f * (v[a + ch] + v[b + ch] + v[c + ch] + v[d + ch]);
                        v[i * nch + ch] = w * own[i * nch + ch] + (1.0f - w) * m;
                    }
                }
            }
        }
}

sd_status sd_pushpull(int H, int W, int nch, const float *value, const float *weight, float *out,
                      int nthreads)
{
    if (H < 1 || W < 1 || nch < 1) return SD_ERR_ARG;
    int nt = sd_threads(nthreads);
    flevel L[MAX_LEVELS];
    memset(L, 0, sizeof L);
    int n = 0;
    sd_status st = SD_OK;
    L[0].H = H; L[0].W = W;
    L[0].v = (float *)value; /* read only at level 0 */
    L[0].w = (float *)weight;
    n = 1;
    while ((L[n - 1].H > 1 || L[n - 1].W > 1) && n < MAX_LEVELS) {
        flevel *p = &L[n - 1], *c = &L[n];
        c->H = (p->H + 1) / 2; c->W = (p->W + 1) / 2;
        c->v = malloc(sizeof(float) * (size_t)c->H * (size_t)c->W * (size_t)nch);
        c->w = malloc(sizeof(float) * (size_t)c->H * (size_t)c->W);
        n++;
        if (!c->v || !c->w) { st = SD_ERR_NOMEM; break; }
        SD_PARALLEL_FOR(nt)
        for (int y = 0; y < c->H; y++)
            for (int x = 0; x < c->W; x++) {
                double sw = 0.0, sv[64];
                int m = nch < 64 ? nch : 64;
                for (int k = 0; k < m; k++) sv[k] = 0.0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int yy = 2 * y + dy, xx = 2 * x + dx;
                        if (yy >= p->H || xx >= p->W) continue;
                        ptrdiff_t i = (ptrdiff_t)yy * p->W + xx;
                        float w = p->w[i];
                        if (!(w > 0.0f)) continue;
                        sw += w;
                        for (int k = 0; k < m; k++) sv[k] += (double)w * p->v[i * nch + k];
                    }
                ptrdiff_t o = (ptrdiff_t)y * c->W + x;
                c->w[o] = sw > 1.0 ? 1.0f : (float)sw;
                for (int k = 0; k < m; k++) c->v[o * nch + k] = sw > 0.0 ? (float)(sv[k] / sw) : 0.0f;
            }
    }
    if (st == SD_OK) {
        /* push: level k-1 = own where weighted, else the interpolated coarse level */
        for (int k = n - 1; k > 0; k--) {
            flevel *c = &L[k], *f = &L[k - 1];
            float *dst = k - 1 == 0 ? out : f->v;
            SD_PARALLEL_FOR(nt)
            for (int y = 0; y < f->H; y++) {
                float py = 0.5f * ((float)y + 0.5f) - 0.5f;
                if (py < 0.0f) py = 0.0f;
                if (py > (float)(c->H - 1)) py = (float)(c->H - 1);
                int y0 = (int)py, y1 = y0 + 1 < c->H ? y0 + 1 : y0;
                float wy = py - (float)y0;
                for (int x = 0; x < f->W; x++) {
                    float px = 0.5f * ((float)x + 0.5f) - 0.5f;
                    if (px < 0.0f) px = 0.0f;
                    if (px > (float)(c->W - 1)) px = (float)(c->W - 1);
                    int x0 = (int)px, x1 = x0 + 1 < c->W ? x0 + 1 : x0;
                    float wx = px - (float)x0;
                    ptrdiff_t i = (ptrdiff_t)y * f->W + x;
                    float w = f->w[i];
                    w = w > 1.0f ? 1.0f : (w > 0.0f ? w : 0.0f);
                    for (int ch = 0; ch < nch; ch++) {
                        float a = c->v[((ptrdiff_t)y0 * c->W + x0) * nch + ch];
                        float b = c->v[((ptrdiff_t)y0 * c->W + x1) * nch + ch];
                        float d = c->v[((ptrdiff_t)y1 * c->W + x0) * nch + ch];
                        float e = c->v[((ptrdiff_t)y1 * c->W + x1) * nch + ch];
                        float up = (1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * d + wx * e);
                        dst[i * nch + ch] = w * f->v[i * nch + ch] + (1.0f - w) * up;
                    }
                }
            }
            if (k - 1 > 0) relax(dst, f->v, f->w, f->H, f->W, nch, nt); /* level 0: a pixel off at most */
        }
        if (n == 1) { /* a single pixel: nothing to fill from but itself */
            for (int ch = 0; ch < nch; ch++) out[ch] = weight[0] > 0.0f ? value[ch] : 0.0f;
        }
    }
    for (int k = 1; k < n; k++) { free(L[k].v); free(L[k].w); }
    return st;
}
