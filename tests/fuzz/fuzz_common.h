/* Shared helpers of the libFuzzer harnesses: a byte reader, value palettes that reach the
 * corners of the float range (finite only: the Python layer rejects NaN/inf before the core),
 * exactly sized strided buffers (so AddressSanitizer sees any access past a view), guard
 * values in the gaps of a strided view, and aperture span tables. */
#ifndef SD_FUZZ_COMMON_H
#define SD_FUZZ_COMMON_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- byte reader ------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n;
} fz_in;

static uint8_t fz_u8(fz_in *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static uint32_t fz_u32(fz_in *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = (v << 8) | fz_u8(in);
    return v;
}

/* Integer in [lo, hi]. */
static int fz_range(fz_in *in, int lo, int hi)
{
    uint32_t span = (uint32_t)(hi - lo) + 1u;
    uint32_t v = span > 256 ? ((uint32_t)fz_u8(in) << 8 | fz_u8(in)) : fz_u8(in);
    return lo + (int)(v % span);
}

/* Uniform-ish in [lo, hi]. */
static float fz_unit(fz_in *in) { return (float)(fz_u8(in) << 8 | fz_u8(in)) / 65535.0f; }
static float fz_uniform(fz_in *in, float lo, float hi) { return lo + (hi - lo) * fz_unit(in); }

/* A finite float from a palette that covers zeros of both signs, denormals, tiny, ordinary,
 * large and huge magnitudes, and the largest finite float. */
static float fz_wild(fz_in *in, float ordinary_scale)
{
    uint8_t k = fz_u8(in);
    float s = (k & 0x80) ? -1.0f : 1.0f;
    switch (k & 0x0f) {
    case 0: return s * 0.0f;
    case 1: return s * 1e-45f;            /* smallest denormal */
    case 2: return s * 1e-38f * fz_unit(in);
    case 3: return s * 1e-6f * fz_unit(in);
    case 4: return s * 0.5f;
    case 5: return s * (float)fz_range(in, 1, 8);
    case 6: return s * 1e3f * fz_unit(in);
    case 7: return s * 1e6f * fz_unit(in);
    case 8: return s * 1e30f;
    case 9: return s * FLT_MAX;
    case 10: { /* raw bit pattern, kept finite */
        uint32_t b = fz_u32(in);
        float f;
        memcpy(&f, &b, sizeof f);
        return isfinite(f) ? f : s * 3.0f;
    }
    default: return s * ordinary_scale * fz_unit(in);
    }
}

/* ---- strided buffers -------------------------------------------------------------------- */

/* A (H, W, nch) view inside an exactly sized allocation; the floats between the view's
 * elements hold a guard value. Layouts: row-major or column-major, gaps between pixels and
 * rows, and negative strides on either axis. */
typedef struct {
    float *buf, *base;
    size_t n;
    ptrdiff_t row, pix;
    int H, W, nch;
} fz_buf;

#define FZ_GUARD (-7.77e33f)

static int fz_buf_make(fz_buf *b, fz_in *in, int H, int W, int nch, int minstride)
{
    uint8_t f = fz_u8(in);
    int gap_pix = (f & 0x03) == 3 ? (f >> 2 & 3) + 1 : 0; /* mostly dense pixels */
    int gap_row = (f & 0x10) ? (f >> 5 & 3) + 1 : 0;
    int colmajor = (f & 0x80) != 0 && (f & 0x40) != 0;
    int neg = fz_u8(in) & 3; /* bit 0: rows run backwards, bit 1: pixels run backwards */
    int ps = nch > minstride ? nch : minstride;
    ptrdiff_t row, pix;
    if (!colmajor) {
        pix = ps + gap_pix;
        row = (ptrdiff_t)W * pix + gap_row;
    } else {
        row = ps + gap_pix;
        pix = (ptrdiff_t)H * row + gap_row;
    }
    size_t n = (size_t)((H - 1) * row + (W - 1) * pix + nch);
    b->buf = malloc(n * sizeof(float));
    if (!b->buf) return -1;
    for (size_t i = 0; i < n; i++) b->buf[i] = FZ_GUARD;
    b->base = b->buf;
    if (neg & 1) { b->base += (H - 1) * row; row = -row; }
    if (neg & 2) { b->base += (W - 1) * pix; pix = -pix; }
    b->n = n;
    b->row = row;
    b->pix = pix;
    b->H = H;
    b->W = W;
    b->nch = nch;
    return 0;
}

static float *fz_at(const fz_buf *b, int y, int x) { return b->base + (ptrdiff_t)y * b->row + (ptrdiff_t)x * b->pix; }

/* Checks that nothing but the view's own elements changed (they are marked by a temporary
 * mask) and returns the number of guard floats that were overwritten. */
static size_t fz_buf_guard_damage(const fz_buf *b)
{
    unsigned char *in_view = calloc(b->n, 1);
    if (!in_view) abort();
    for (int y = 0; y < b->H; y++)
        for (int x = 0; x < b->W; x++)
            for (int c = 0; c < b->nch; c++) in_view[fz_at(b, y, x) + c - b->buf] = 1;
    size_t bad = 0;
    for (size_t i = 0; i < b->n; i++)
        if (!in_view[i] && b->buf[i] != FZ_GUARD) bad++;
    free(in_view);
    return bad;
}

static void fz_buf_free(fz_buf *b) { free(b->buf); b->buf = b->base = NULL; }

static sd_cview fz_cview(const fz_buf *b) { return (sd_cview){b->base, b->row, b->pix, b->nch}; }
static sd_view fz_view(const fz_buf *b) { return (sd_view){b->base, b->row, b->pix, b->nch}; }

/* FUZZ_VERBOSE=1 in the environment prints a replayed input's parameters. */
static int fz_verbose(void)
{
    static int v = -1;
    if (v < 0) v = getenv("FUZZ_VERBOSE") != NULL;
    return v;
}

static void fz_dump(const char *name, const float *a, size_t n)
{
    if (!fz_verbose()) return;
    fprintf(stderr, "%s[%zu] =", name, n);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %.9g", a[i]);
    fputc('\n', stderr);
}

static void fz_dump_aperture(const sd_aperture *ap)
{
    if (!fz_verbose()) return;
    fprintf(stderr, "aperture: nrows %d nspans %d v [%.9g, %.9g]\n", ap->nrows, ap->nspans, ap->vmin, ap->vmax);
    fz_dump("spans", ap->spans, (size_t)ap->nrows * (size_t)ap->nspans * 2);
}

#define FZ_FAIL(...)                                  \
    do {                                              \
        fprintf(stderr, "fuzz check failed: " __VA_ARGS__); \
        fputc('\n', stderr);                          \
        abort();                                      \
    } while (0)

/* ---- apertures ---------------------------------------------------------------------------- */

typedef struct {
    sd_aperture ap;
    float *spans;
    int symmetric; /* mirror-symmetric about both axes (the circle) */
} fz_aperture;

/* Polygon of n blades (n = 0: circle) turned by rot: vertices at rot + pi/n + 2 pi k/n,
 * counter-clockwise with y up, i.e. (cos t, -sin t) in image coordinates (y down). Each row
 * holds the polygon's horizontal extent at the row's centre height, in the first span; the
 * other spans are empty at the right end. */
static void fz_polygon_table(fz_aperture *a, int nrows, int nspans, int blades, float rot)
{
    float *s = a->spans;
    if (blades == 0) {
        a->ap.vmin = -1.0f;
        a->ap.vmax = 1.0f;
    } else {
        float lo = 1.0f, hi = -1.0f;
        for (int k = 0; k < blades; k++) {
            double t = rot + M_PI / blades + 2.0 * M_PI * k / blades;
            float y = (float)-sin(t);
            if (y < lo) lo = y;
            if (y > hi) hi = y;
        }
        if (!(hi > lo)) { lo = -1.0f; hi = 1.0f; }
        a->ap.vmin = lo;
        a->ap.vmax = hi;
    }
    for (int i = 0; i < nrows; i++) {
        double v = a->ap.vmin + (i + 0.5) * (a->ap.vmax - a->ap.vmin) / nrows;
        double l = 0.0, r = 0.0;
        if (blades == 0) {
            double h = 1.0 - v * v;
            h = h > 0.0 ? sqrt(h) : 0.0;
            l = -h;
            r = h;
        } else {
            double lo = INFINITY, hi = -INFINITY;
            for (int k = 0; k < blades; k++) {
                double t0 = rot + M_PI / blades + 2.0 * M_PI * k / blades;
                double t1 = t0 + 2.0 * M_PI / blades;
                double x0 = cos(t0), y0 = -sin(t0), x1 = cos(t1), y1 = -sin(t1);
                if (y0 == y1) continue;
                double t = (v - y0) / (y1 - y0);
                if (t < 0.0 || t > 1.0) continue;
                double x = x0 + t * (x1 - x0);
                if (x < lo) lo = x;
                if (x > hi) hi = x;
            }
            if (isfinite(lo) && isfinite(hi)) { l = lo; r = hi > lo ? hi : lo; }
        }
        float *row = s + (ptrdiff_t)i * nspans * 2;
        row[0] = (float)l;
        row[1] = (float)r;
        for (int k = 1; k < nspans; k++) row[2 * k] = row[2 * k + 1] = (float)r;
    }
}

/* Builds a valid aperture: a circle or polygon, random monotone spans inside [-1, 1] (up to
 * SD_MAX_SPANS per row, empty ones allowed), or a random binary mask's row runs (as
 * Aperture.from_image makes them). Returns -1 on allocation failure. */
static int fz_aperture_make(fz_aperture *a, fz_in *in)
{
    uint8_t kind = fz_u8(in) % 4;
    int nrows = fz_range(in, 1, 64);
    if (fz_u8(in) == 0xff) nrows = 1024; /* the size the Python layer uses */
    int nspans = fz_range(in, 1, SD_MAX_SPANS);
    a->spans = malloc(sizeof(float) * 2 * (size_t)nrows * (size_t)nspans);
    if (!a->spans) return -1;
    a->ap.nrows = nrows;
    a->ap.nspans = nspans;
    a->ap.spans = a->spans;
    a->symmetric = kind == 0;
    if (kind == 0 || kind == 1) {
        int blades = kind == 0 ? 0 : fz_range(in, 3, 16);
        float rot = fz_uniform(in, -7.0f, 7.0f);
        fz_polygon_table(a, nrows, nspans, blades, rot);
    } else if (kind == 2) {
        float v0 = fz_uniform(in, -1.0f, 0.999f);
        float v1 = fz_uniform(in, v0, 1.0f);
        if (!(v1 > v0)) v1 = nextafterf(v0, 2.0f);
        a->ap.vmin = v0;
        a->ap.vmax = v1;
        for (int i = 0; i < nrows; i++) {
            float x = -1.0f, *row = a->spans + (ptrdiff_t)i * nspans * 2;
            for (int k = 0; k < 2 * nspans; k++) {
                x += fz_unit(in) * (1.0f - x) * (fz_u8(in) & 1 ? 1.0f : 0.0f);
                row[k] = x;
            }
        }
    } else {
        /* mask of mh x mw cells, side = max: spans are runs of set cells in radius units */
        int mh = fz_range(in, 1, 12), mw = fz_range(in, 1, 12);
        int side = mh > mw ? mh : mw;
        float px = 2.0f / (float)side;
        uint16_t bits[12];
        for (int r = 0; r < mh; r++) bits[r] = (uint16_t)(fz_u8(in) << 8 | fz_u8(in));
        a->ap.vmin = -0.5f * (float)mh * px;
        a->ap.vmax = 0.5f * (float)mh * px;
        for (int i = 0; i < nrows; i++) {
            float v = a->ap.vmin + ((float)i + 0.5f) * (a->ap.vmax - a->ap.vmin) / (float)nrows;
            int r = (int)(v / px + 0.5f * (float)mh);
            if (r < 0) r = 0;
            if (r > mh - 1) r = mh - 1;
            float *row = a->spans + (ptrdiff_t)i * nspans * 2, last = 0.0f;
            int k = 0, c = 0;
            while (c < mw && k < nspans) {
                while (c < mw && !(bits[r] >> c & 1)) c++;
                if (c >= mw) break;
                int c0 = c;
                while (c < mw && (bits[r] >> c & 1)) c++;
                if (k == nspans - 1) { /* the surplus merges into the last span */
                    int e = mw;
                    while (e > c && !(bits[r] >> (e - 1) & 1)) e--;
                    c = e;
                }
                row[2 * k] = ((float)c0 - 0.5f * (float)mw) * px;
                row[2 * k + 1] = last = ((float)c - 0.5f * (float)mw) * px;
                k++;
            }
            for (; k < nspans; k++) row[2 * k] = row[2 * k + 1] = last;
        }
    }
    return 0;
}

/* Whether the shape covers a neighbourhood of its centre (so every source keeps part of its
 * light on its own pixel): the rows around v = 0 hold a span reaching past +-margin. */
static int fz_aperture_covers_centre(const fz_aperture *a, float margin)
{
    const sd_aperture *ap = &a->ap;
    if (!(ap->vmin < -margin && ap->vmax > margin)) return 0;
    for (int i = 0; i < ap->nrows; i++) {
        float v0 = ap->vmin + (float)i * (ap->vmax - ap->vmin) / (float)ap->nrows;
        float v1 = ap->vmin + (float)(i + 1) * (ap->vmax - ap->vmin) / (float)ap->nrows;
        if (v1 < -margin || v0 > margin) continue;
        int ok = 0;
        const float *row = ap->spans + (ptrdiff_t)i * ap->nspans * 2;
        for (int k = 0; k < ap->nspans; k++)
            if (row[2 * k] < -margin && row[2 * k + 1] > margin) ok = 1;
        if (!ok) return 0;
    }
    return 1;
}

static void fz_aperture_free(fz_aperture *a) { free(a->spans); a->spans = NULL; }

/* ---- cancellation ---------------------------------------------------------------------- */

typedef struct {
    int calls, stop_at; /* stop_at < 0: never */
} fz_cancel_ctx;

static int fz_check(void *ctx)
{
    fz_cancel_ctx *c = ctx;
    return c->stop_at >= 0 && c->calls++ >= c->stop_at;
}

#endif
