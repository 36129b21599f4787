/* libFuzzer harness of sd_render, the layered render of an image with its CoC map, an optional
 * subject matte and an optional background plate (sd_core.h).
 *
 * Inputs: frames of 1 to 48 pixels a side, or long thin strips (100 to 200 by 1 to 6, either
 * way round); the image through a strided view (gaps between pixels and rows, 3 channels inside
 * 4-float pixels, column-major, negative strides); CoC maps of one of the kinds below, of either
 * sign; no matte or an all-0, all-1, fractional (with denormals, 1 - ulp, values at the
 * confidence levels), soft-disk or binary matte; no plate, a plate of the image's own colours
 * or an independent one; every aperture table fz_aperture_make builds; a strided output view of
 * 3 or 4 channels; cancellation after a fuzzer-chosen number of checks. Bulk pixel data comes
 * from the fuzzer's bytes or, for large frames, from a generator seeded by them.
 *
 * The CoC map is clamped to +-(2 max(H, W) + 4), as render() does before it calls the core;
 * FUZZ_RAW_COC=1 in the environment passes it unclamped (sd_render must then still be memory
 * safe and may only fail with SD_ERR_VALUE, the slicing's answer to a CoC range beyond its
 * histogram; the result checks below that depend on the clamp are skipped).
 *
 * Checks, besides the sanitizers':
 *  - the image, CoC map, matte and plate are unchanged; nothing outside the output view's first
 *    3 channels is written (the gaps of the strided view and channel 3 hold guard values) and
 *    every output element is written (unless cancelled);
 *  - the status: SD_OK for valid input; SD_ERR_INTERRUPTED exactly when the fuzzer's check
 *    count is reached. sd_render checks once after slicing and once per slice, so a complete
 *    render makes 1 + nslices checks (nslices from sd_slice_centres, called here directly), and
 *    an interrupted one stops at the check that said stop;
 *  - finite output for ordinary inputs: every image and plate value within +-1e6 (any CoC,
 *    clamped or not, any matte). Light that large summed over a 48 x 48 frame in up to 25 slices
 *    and divided by a coverage above 1e-6 stays far inside the float range; beyond that (values
 *    near FLT_MAX) sums of two neighbours overflow in any blur, so only memory safety is checked;
 *  - the input stage (sd_entries_build): a pixel's entries add up to the pixel (rgb) and to 1
 *    (coverage), each coverage lies in [0, 1], extras are in row order, at most three entries a
 *    pixel, and every entry's CoC lies within the CoC map's range (the fills and the edge
 *    unmixing only average CoCs); sd_slice_centres gives 1 to SD_MAX_SLICES + 1 finite,
 *    strictly descending centres;
 *  - layout: the same render from a contiguous copy of the image into a contiguous output is bit
 *    for bit the same (strides only address memory), and an all-0 matte renders exactly as no
 *    matte (the core drops a matte without coverage);
 *  - analytic results, see the comments at the checks: a constant image renders as that constant
 *    (with no matte or an all-0 one, any CoC map, no plate or a plate of the same colour, a shape
 *    that covers its centre); an image in focus (every |CoC| <= 1 over a range of at most 1 px,
 *    any matte) comes back unchanged; with one CoC everywhere and no matte the output is a
 *    weighted mean of the image. */
#include "fuzz_common.h"
#include "sd_entries.h"
#include "sd_slices.h"

enum { CK_ZERO, CK_TINY, CK_UNIFORM, CK_RANDOM, CK_GRADIENT, CK_EDGES, CK_HUGE, CK_LEVELS, CK_N };
static const char *const CK_NAME[CK_N] = {"zero", "tiny", "uniform", "random", "gradient", "edges", "huge", "levels"};
enum { MK_NONE, MK_ZERO, MK_ONE, MK_FRAC, MK_SOFT, MK_BINARY, MK_N };
static const char *const MK_NAME[MK_N] = {"none", "zero", "one", "fractional", "soft", "binary"};
enum { IK_CONSTANT, IK_ORDINARY, IK_LIGHTS, IK_SIGNED, IK_WILD, IK_N };
static const char *const IK_NAME[IK_N] = {"constant", "ordinary", "lights", "signed", "wild"};

/* ---- bulk data: the fuzzer's own bytes, or a generator seeded by them ------------------- */

static uint8_t *gen_bytes(uint32_t seed, size_t n)
{
    uint8_t *b = malloc(n);
    if (!b) return NULL;
    uint64_t s = 0x9e3779b97f4a7c15ull ^ seed;
    for (size_t i = 0; i < n; i++) { /* xorshift64* */
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        b[i] = (uint8_t)((s * 0x2545f4914f6cdd1dull) >> 56);
    }
    return b;
}

/* ---- CoC maps ---------------------------------------------------------------------------- */

static float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void make_coc(float *coc, int H, int W, int kind, float scale, float cap, fz_in *in, fz_in *bulk)
{
    size_t n = (size_t)H * (size_t)W;
    switch (kind) {
    case CK_ZERO:
        for (size_t i = 0; i < n; i++) coc[i] = (fz_u8(bulk) & 1) ? -0.0f : 0.0f;
        break;
    case CK_TINY: /* everything within half a pixel of its own: the cell itself */
        for (size_t i = 0; i < n; i++) {
            uint8_t k = fz_u8(bulk);
            float s = (k & 0x80) ? -1.0f : 1.0f;
            switch (k % 6) {
            case 0: coc[i] = s * 0.0f; break;
            case 1: coc[i] = s * 1e-45f; break;
            case 2: coc[i] = s * 1e-38f * fz_unit(bulk); break;
            case 3: coc[i] = s * 1e-6f * fz_unit(bulk); break;
            case 4: coc[i] = s * 0.5f * fz_unit(bulk); break;
            default: coc[i] = s * nextafterf(1.0f, 0.0f) * (0.99f + 0.01f * fz_unit(bulk)); break;
            }
        }
        break;
    case CK_UNIFORM: {
        float v = fz_wild(in, scale);
        for (size_t i = 0; i < n; i++) coc[i] = v;
        break;
    }
    case CK_RANDOM:
        for (size_t i = 0; i < n; i++) coc[i] = fz_wild(bulk, scale);
        break;
    case CK_GRADIENT: { /* a slanted plane (or a bowl), optionally noisy */
        float a = fz_uniform(in, -scale, scale);
        float g = scale / (float)(H > W ? H : W) * fz_uniform(in, 0.0f, 4.0f);
        float gx = fz_uniform(in, -g, g), gy = fz_uniform(in, -g, g);
        float q = (fz_u8(in) & 3) == 0 ? fz_uniform(in, -g, g) / (float)(H > W ? H : W) : 0.0f;
        float noise = (fz_u8(in) & 3) == 0 ? fz_uniform(in, 0.0f, 2.0f) : 0.0f;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float dx = (float)x - 0.5f * (float)W, dy = (float)y - 0.5f * (float)H;
                float v = a + gx * dx + gy * dy + q * (dx * dx + dy * dy);
                if (noise > 0.0f) v += noise * (fz_unit(bulk) - 0.5f);
                coc[(size_t)y * W + x] = v;
            }
        break;
    }
    case CK_EDGES: { /* a background with disks, boxes and lights at other depths */
        float bg = (fz_u8(in) & 1) ? fz_wild(in, scale) : fz_uniform(in, -scale, scale);
        for (size_t i = 0; i < n; i++) coc[i] = bg;
        int nshapes = fz_range(in, 1, 4);
        for (int s = 0; s < nshapes; s++) {
            uint8_t k = fz_u8(in);
            float v = (k & 1) ? fz_wild(in, scale) : fz_uniform(in, -scale, scale);
            float cx = fz_uniform(in, -0.2f, 1.2f) * (float)W, cy = fz_uniform(in, -0.2f, 1.2f) * (float)H;
            float rx = fz_uniform(in, 0.0f, 0.7f) * (float)W, ry = fz_uniform(in, 0.0f, 0.7f) * (float)H;
            int box = (k >> 1) & 1, light = ((k >> 2) & 3) == 0, soft = ((k >> 4) & 3) == 0;
            if (light) rx = ry = fz_uniform(in, 0.3f, 1.5f);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float dx = ((float)x + 0.5f - cx) / (rx > 0.3f ? rx : 0.3f);
                    float dy = ((float)y + 0.5f - cy) / (ry > 0.3f ? ry : 0.3f);
                    float d = box ? fmaxf(fabsf(dx), fabsf(dy)) : sqrtf(dx * dx + dy * dy);
                    float *c = &coc[(size_t)y * W + x];
                    if (d <= 1.0f) {
                        *c = v;
                    } else if (soft && d <= 1.5f) { /* blurred edge (in double: v - *c may exceed FLT_MAX) */
                        double b = (double)*c + ((double)v - *c) * (1.5 - d) * 2.0;
                        *c = (float)(b > FLT_MAX ? FLT_MAX : b < -FLT_MAX ? -FLT_MAX : b);
                    }
                }
        }
        break;
    }
    case CK_HUGE:
        for (size_t i = 0; i < n; i++) {
            uint8_t k = fz_u8(bulk);
            float s = (k & 0x80) ? -1.0f : 1.0f;
            switch (k % 7) {
            case 0: coc[i] = s * 1e30f; break;
            case 1: coc[i] = s * FLT_MAX; break;
            case 2: coc[i] = s * 1e6f * fz_unit(bulk); break;
            case 3: coc[i] = s * cap; break;
            case 4: coc[i] = s * nextafterf(cap, 0.0f); break;
            case 5: coc[i] = 0.0f; break;
            default: coc[i] = s * scale * fz_unit(bulk); break;
            }
        }
        break;
    default: { /* a few depth levels: strong modes of the histogram, in blocks or scattered */
        float lv[6];
        int nl = fz_range(in, 2, 6);
        for (int k = 0; k < nl; k++) lv[k] = (fz_u8(in) & 3) ? fz_uniform(in, -scale, scale) : fz_wild(in, scale);
        int block = fz_range(in, 1, 8);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint32_t h = (uint32_t)(y / block) * 2654435761u ^ (uint32_t)(x / block) * 40503u;
                int k = block > 1 ? (int)((h >> 7) % (uint32_t)nl) : fz_u8(bulk) % nl;
                coc[(size_t)y * W + x] = lv[k];
            }
        break;
    }
    }
    if (fz_u8(in) % 5 == 0) /* all in front of the focal plane */
        for (size_t i = 0; i < n; i++) coc[i] = -coc[i];
}

/* ---- mattes ------------------------------------------------------------------------------ */

static void make_matte(float *m, int H, int W, int kind, fz_in *in, fz_in *bulk)
{
    size_t n = (size_t)H * (size_t)W;
    if (kind == MK_ZERO || kind == MK_ONE) {
        for (size_t i = 0; i < n; i++) m[i] = kind == MK_ONE ? 1.0f : 0.0f;
        return;
    }
    if (kind == MK_FRAC) {
        for (size_t i = 0; i < n; i++) {
            switch (fz_u8(bulk) % 10) {
            case 0: m[i] = 0.0f; break;
            case 1: m[i] = 1.0f; break;
            case 2: m[i] = 1e-45f; break;
            case 3: m[i] = nextafterf(1.0f, 0.0f); break;
            case 4: m[i] = 0.95f + 1e-7f * (float)(fz_u8(bulk) % 3 - 1); break;
            case 5: m[i] = 0.5f + 6e-8f * (float)(fz_u8(bulk) % 3 - 1); break;
            case 6: m[i] = 0.001f * fz_unit(bulk); break;
            default: m[i] = fz_unit(bulk); break;
            }
        }
        return;
    }
    /* a disk (soft: a ramp across its rim, as mattes of hair are), optionally speckled */
    float cx = fz_uniform(in, -0.2f, 1.2f) * (float)W, cy = fz_uniform(in, -0.2f, 1.2f) * (float)H;
    float r = fz_uniform(in, 0.0f, 0.8f) * (float)(H > W ? H : W);
    float soft = kind == MK_SOFT ? fz_uniform(in, 0.2f, 8.0f) : 0.0f;
    int speckle = fz_u8(in) & 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float d = hypotf((float)x + 0.5f - cx, (float)y + 0.5f - cy);
            float a;
            if (kind == MK_SOFT) a = clampf((r - d) / soft + 0.5f, 0.0f, 1.0f);
            else a = d <= r ? 1.0f : 0.0f;
            if (speckle) {
                uint8_t b = fz_u8(bulk);
                if (kind == MK_BINARY) a = (b & 7) == 0 ? 1.0f - a : a;
                else if (a > 0.0f && a < 1.0f) a *= fz_unit(bulk);
            }
            m[(size_t)y * W + x] = a;
        }
}

/* ---- colours ----------------------------------------------------------------------------- */

/* A constant colour's channel: 0, a power of two (the ratio colour / coverage is then exact
 * through every step that treats colour and coverage alike), or any ordinary value. */
static float const_channel(fz_in *in)
{
    uint8_t k = fz_u8(in);
    float s = (k & 0x80) ? -1.0f : 1.0f;
    switch (k % 6) {
    case 0: return 0.0f;
    case 1: return s * ldexpf(1.0f, fz_range(in, -20, 19));
    case 2: return fz_uniform(in, 0.0f, 2.0f);
    case 3: return fz_uniform(in, -2.0f, 2.0f);
    case 4: return s * powf(10.0f, fz_uniform(in, -10.0f, 6.0f));
    default: return 1.0f;
    }
}

static float pixel_channel(int kind, fz_in *bulk)
{
    switch (kind) {
    case IK_ORDINARY: return fz_unit(bulk);
    case IK_LIGHTS: {
        uint8_t k = fz_u8(bulk);
        return k < 12 ? 10.0f + 990.0f * fz_unit(bulk) : 0.3f * fz_unit(bulk);
    }
    case IK_SIGNED: return fz_uniform(bulk, -1.0f, 1.0f);
    default: return fz_wild(bulk, 2.0f);
    }
}

/* ---- the render -------------------------------------------------------------------------- */

typedef struct {
    int calls, stop_at; /* stop_at < 0: never; every call counted */
} count_ctx;

static int count_check(void *ctx)
{
    count_ctx *c = ctx;
    int k = c->calls++;
    return c->stop_at >= 0 && k >= c->stop_at;
}

/* Checks of the input stage on the render's own inputs; returns the number of slices (0 when
 * the slicing rejected the CoC range, which only unclamped maps may provoke). */
static int check_entries(int H, int W, sd_cview img, const float *coc, const float *matte, int raw, int moderate,
                         int nthreads)
{
    sd_entries e;
    sd_status st = sd_entries_build(H, W, img, coc, matte, nthreads, &e);
    if (st != SD_OK) FZ_FAIL("sd_entries_build status %d", (int)st);
    if (e.H != H || e.W != W || e.row_start[0] != 0 || e.row_start[H] != e.n || e.n < 0)
        FZ_FAIL("entries: bad header (%d x %d, n %td)", e.H, e.W, e.n);
    float cmin = INFINITY, cmax = -INFINITY;
    for (size_t i = 0; i < (size_t)H * W; i++) {
        cmin = coc[i] < cmin ? coc[i] : cmin;
        cmax = coc[i] > cmax ? coc[i] : cmax;
    }
    /* the fills are convex combinations in float; the unmixed CoC a float mean of up to 8 */
    float ctol = 1e-5f * fmaxf(fabsf(cmin), fabsf(cmax)) + 1e-30f;
    for (int y = 0; y < H; y++) {
        ptrdiff_t q0 = e.row_start[y], q1 = e.row_start[y + 1];
        if (q1 < q0) FZ_FAIL("entries: row_start decreases at row %d", y);
        for (ptrdiff_t q = q0; q < q1; q++) {
            if (e.x[q] < 0 || e.x[q] >= W) FZ_FAIL("entries: extra %td at column %d", q, e.x[q]);
            if (q > q0 && e.x[q] < e.x[q - 1]) FZ_FAIL("entries: extras of row %d out of order", y);
        }
        ptrdiff_t q = q0;
        for (int x = 0; x < W; x++) {
            const float *px = img.data + (ptrdiff_t)y * img.row + (ptrdiff_t)x * img.pix;
            double sum[4] = {0, 0, 0, 0}, mag[4] = {0, 0, 0, 0};
            float ent[4], cc[4], aa[4];
            int ne = 0;
            if (sd_main_entry(&e, x, y, ent, &cc[0])) {
                for (int c = 0; c < 4; c++) { sum[c] += ent[c]; mag[c] += fabs(ent[c]); }
                aa[ne++] = ent[3];
            }
            for (; q < q1 && e.x[q] == x; q++) {
                if (ne == 3) FZ_FAIL("entries: more than three at (%d, %d)", y, x);
                const float *xq = e.xrgba + 4 * q;
                for (int c = 0; c < 4; c++) { sum[c] += xq[c]; mag[c] += fabs(xq[c]); }
                cc[ne] = e.xcoc[q];
                aa[ne++] = xq[3];
            }
            for (int k = 0; k < ne; k++) {
                if (!(aa[k] >= 0.0f && aa[k] <= 1.0f))
                    FZ_FAIL("entries: coverage %.9g at (%d, %d) entry %d of %d", aa[k], y, x, k, ne);
                if (!raw && !(cc[k] >= cmin - ctol && cc[k] <= cmax + ctol))
                    FZ_FAIL("entries: CoC %.9g at (%d, %d) entry %d outside the map's [%.9g, %.9g]", cc[k], y, x, k,
                            cmin, cmax);
            }
            if (fabs(sum[3] - 1.0) > 1e-6) FZ_FAIL("entries: coverage at (%d, %d) adds up to %.9g", y, x, sum[3]);
            if (!moderate) continue; /* parts of values near FLT_MAX may overflow */
            for (int c = 0; c < 3; c++)
                if (fabs(sum[c] - px[c]) > 4.0 * FLT_EPSILON * (mag[c] + fabs(px[c])) + 1e-37)
                    FZ_FAIL("entries: colour %d at (%d, %d) adds up to %.9g, pixel %.9g", c, y, x, sum[c], px[c]);
        }
    }
    float cent[SD_MAX_SLICES + 1];
    int ns = -1;
    st = sd_slice_centres(&e, cent, &ns, nthreads);
    sd_entries_free(&e);
    if (st == SD_ERR_VALUE && raw) return 0;
    if (st != SD_OK) FZ_FAIL("sd_slice_centres status %d", (int)st);
    if (ns < 1 || ns > SD_MAX_SLICES + 1) FZ_FAIL("slices: %d centres", ns);
    fz_dump("centres", cent, (size_t)ns);
    for (int k = 0; k < ns; k++) {
        if (!isfinite(cent[k])) FZ_FAIL("slices: centre %d is %g", k, cent[k]);
        if (k > 0 && !(cent[k] < cent[k - 1]))
            FZ_FAIL("slices: centres %d and %d not descending (%.9g, %.9g)", k - 1, k, cent[k - 1], cent[k]);
    }
    return ns;
}

static int run(fz_in *in)
{
    int H = fz_range(in, 1, 48), W = fz_range(in, 1, 48);
    uint8_t big = fz_u8(in);
    if (big == 0xfe) H = fz_range(in, 100, 200), W = fz_range(in, 1, 6); /* tall strip */
    if (big == 0xfd) W = fz_range(in, 100, 200), H = fz_range(in, 1, 6); /* wide strip */
    size_t n = (size_t)H * (size_t)W;
    uint8_t m0 = fz_u8(in), m1 = fz_u8(in);
    int ikind = m0 % IK_N;
    int ckind = (m0 / IK_N) % CK_N;
    int mkind = m1 % MK_N;
    static const float SCALES[5] = {1.0f, 4.0f, 30.0f, 100.0f, 500.0f};
    float coc_scale = SCALES[(m1 / MK_N) % 5];
    int generated = (m1 >> 7) & 1; /* bulk data from a seeded generator */
    int raw = getenv("FUZZ_RAW_COC") != NULL;
    float cap = (float)(2 * (H > W ? H : W) + 4);

    fz_buf img = {0}, out = {0};
    fz_aperture ap = {0};
    float *coc = NULL, *matte = NULL, *plate = NULL, *img_copy = NULL, *coc_copy = NULL, *matte_copy = NULL;
    float *plate_copy = NULL, *dense_img = NULL, *dense_out = NULL;
    uint8_t *gen = NULL;
    int pix4 = fz_u8(in) & 1; /* 3 channels inside 4-float pixels */
    if (fz_buf_make(&img, in, H, W, 3, pix4 ? 4 : 3)) return 0;
    int out_nch = (fz_u8(in) & 1) ? 4 : 3;
    if (fz_buf_make(&out, in, H, W, out_nch, 3)) goto done;
    if (fz_aperture_make(&ap, in)) goto done;

    fz_in gin = {0}, *bulk = in;
    if (generated) {
        size_t nb = 64 * n + 4096;
        gen = gen_bytes(fz_u32(in), nb);
        if (!gen) goto done;
        gin = (fz_in){gen, nb};
        bulk = &gin;
    }

    /* the image */
    float col[3];
    for (int c = 0; c < 3; c++) col[c] = const_channel(in);
    int moderate = 1;
    float lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float *p = fz_at(&img, y, x);
            for (int c = 0; c < 3; c++) {
                p[c] = ikind == IK_CONSTANT ? col[c] : pixel_channel(ikind, bulk);
                if (!(fabsf(p[c]) <= 1e6f)) moderate = 0;
                lo[c] = p[c] < lo[c] ? p[c] : lo[c];
                hi[c] = p[c] > hi[c] ? p[c] : hi[c];
            }
        }

    /* the CoC map */
    coc = malloc(sizeof(float) * n);
    if (!coc) goto done;
    make_coc(coc, H, W, ckind, coc_scale, cap, in, bulk);
    if (!raw)
        for (size_t i = 0; i < n; i++) coc[i] = clampf(coc[i], -cap, cap);
    int uniform = 1;
    float cmin = INFINITY, cmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        uniform &= coc[i] == coc[0];
        cmin = coc[i] < cmin ? coc[i] : cmin;
        cmax = coc[i] > cmax ? coc[i] : cmax;
    }
    /* radii of at most half a pixel, over a CoC range of at most one slice spacing */
    int focus = fmaxf(fabsf(cmin), fabsf(cmax)) <= 1.0f && (double)cmax - (double)cmin <= 1.0;

    /* matte and plate */
    if (mkind != MK_NONE) {
        matte = malloc(sizeof(float) * n);
        if (!matte) goto done;
        make_matte(matte, H, W, mkind, in, bulk);
    }
    int no_subject = 1; /* no matte, or one without coverage anywhere */
    for (size_t i = 0; matte && i < n; i++) no_subject &= matte[i] == 0.0f;
    uint8_t pm = fz_u8(in) % 4; /* 0: none, 1: the image's own colours, 2: ordinary, 3: like the image */
    if (pm) {
        plate = malloc(sizeof(float) * 3 * n);
        if (!plate) goto done;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) {
                    float v = pm == 1 ? fz_at(&img, y, x)[c] : pm == 2 ? fz_uniform(bulk, 0.0f, 1.5f)
                                                                       : pixel_channel(ikind == IK_CONSTANT ? IK_ORDINARY : ikind, bulk);
                    plate[3 * ((size_t)y * W + x) + c] = v;
                    if (!(fabsf(v) <= 1e6f)) moderate = 0;
                }
    }

    img_copy = malloc(sizeof(float) * img.n);
    coc_copy = malloc(sizeof(float) * n);
    matte_copy = matte ? malloc(sizeof(float) * n) : NULL;
    plate_copy = plate ? malloc(sizeof(float) * 3 * n) : NULL;
    if (!img_copy || !coc_copy || (matte && !matte_copy) || (plate && !plate_copy)) goto done;
    memcpy(img_copy, img.buf, sizeof(float) * img.n);
    memcpy(coc_copy, coc, sizeof(float) * n);
    if (matte) memcpy(matte_copy, matte, sizeof(float) * n);
    if (plate) memcpy(plate_copy, plate, sizeof(float) * 3 * n);

    int nthreads = fz_range(in, -1, 3);
    uint8_t cb = fz_u8(in);
    count_ctx cctx = {0, cb < 40 ? cb % 28 : -1};
    sd_cancel cancel = {count_check, &cctx};
    int twice = (fz_u8(in) & 3) == 0 || mkind == MK_ZERO;

    if (fz_verbose()) {
        fprintf(stderr,
                "render %dx%d image %s coc %s (scale %g%s) matte %s plate %d out_nch %d img row %td pix %td out row %td "
                "pix %td generated %d stop_at %d\n",
                H, W, IK_NAME[ikind], CK_NAME[ckind], coc_scale, raw ? ", raw" : "", MK_NAME[mkind], (int)pm, out_nch,
                img.row, img.pix, out.row, out.pix, generated, cctx.stop_at);
        if (ikind == IK_CONSTANT) fz_dump("colour", col, 3);
        for (int y = 0; y < H; y++) {
            float row[3 * 200];
            for (int x = 0; x < W; x++) memcpy(row + 3 * x, fz_at(&img, y, x), 3 * sizeof(float));
            fz_dump("image row", row, 3 * (size_t)W);
        }
        for (int y = 0; y < H; y++) fz_dump("coc row", coc + (size_t)y * W, (size_t)W);
        for (int y = 0; matte && y < H; y++) fz_dump("matte row", matte + (size_t)y * W, (size_t)W);
        for (int y = 0; plate && y < H; y++) fz_dump("plate row", plate + (size_t)y * 3 * W, 3 * (size_t)W);
        fz_dump_aperture(&ap.ap);
    }

    int border = (H + W) & 1 ? SD_BORDER_MIRROR : SD_BORDER_WINDOW; /* both, without a byte of the input */
    sd_status st = sd_render(H, W, fz_cview(&img), coc, matte, plate, &ap.ap, border, fz_view(&out), nthreads, &cancel);

    if (memcmp(img_copy, img.buf, sizeof(float) * img.n)) FZ_FAIL("image modified");
    if (memcmp(coc_copy, coc, sizeof(float) * n)) FZ_FAIL("coc modified");
    if (matte && memcmp(matte_copy, matte, sizeof(float) * n)) FZ_FAIL("matte modified");
    if (plate && memcmp(plate_copy, plate, sizeof(float) * 3 * n)) FZ_FAIL("plate modified");
    out.nch = 3; /* only channels 0..2 of the view may change */
    size_t dmg = fz_buf_guard_damage(&out);
    out.nch = out_nch;
    if (dmg) FZ_FAIL("%zu floats written outside the output's 3 channels", dmg);

    if (raw && st == SD_ERR_VALUE) goto done; /* a CoC range beyond the slicing's histogram */
    int ns = check_entries(H, W, fz_cview(&img), coc, matte, raw, moderate, nthreads);
    if (ns == 0) FZ_FAIL("slicing rejects the CoC range but sd_render gave status %d", (int)st);
    if (cctx.stop_at >= 0 && cctx.stop_at <= ns) {
        if (st != SD_ERR_INTERRUPTED) FZ_FAIL("cancel at check %d of %d ignored (status %d)", cctx.stop_at, ns + 1, (int)st);
        if (cctx.calls != cctx.stop_at + 1) FZ_FAIL("%d checks after a cancel at check %d", cctx.calls, cctx.stop_at);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d for valid input", (int)st);
    if (cctx.calls != ns + 1) FZ_FAIL("%d cancellation checks for %d slices (expected %d)", cctx.calls, ns, ns + 1);

    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *q = fz_at(&out, y, x);
            for (int c = 0; c < 3; c++) {
                if (q[c] == FZ_GUARD) FZ_FAIL("output (%d, %d, %d) not written", y, x, c);
                if (moderate && !isfinite(q[c])) FZ_FAIL("non-finite output %g at (%d, %d, %d)", q[c], y, x, c);
            }
        }

    /* Layout: a contiguous image into a contiguous output (and no matte for an all-0 one). */
    if (twice) {
        dense_img = malloc(sizeof(float) * 3 * n);
        dense_out = malloc(sizeof(float) * 3 * n);
        if (!dense_img || !dense_out) goto done;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) memcpy(dense_img + 3 * ((size_t)y * W + x), fz_at(&img, y, x), 3 * sizeof(float));
        sd_cview dv = {dense_img, 3 * (ptrdiff_t)W, 3, 3};
        sd_view ov = {dense_out, 3 * (ptrdiff_t)W, 3, 3};
        sd_status st2 = sd_render(H, W, dv, coc, mkind == MK_ZERO ? NULL : matte, plate, &ap.ap, border, ov, nthreads,
                                  NULL);
        if (st2 != SD_OK) FZ_FAIL("status %d for the contiguous copy", (int)st2);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (memcmp(dense_out + 3 * ((size_t)y * W + x), fz_at(&out, y, x), 3 * sizeof(float)))
                    FZ_FAIL("contiguous%s render differs at (%d, %d): %.9g %.9g %.9g vs %.9g %.9g %.9g",
                            mkind == MK_ZERO ? ", matte-less" : "", y, x, dense_out[3 * ((size_t)y * W + x)],
                            dense_out[3 * ((size_t)y * W + x) + 1], dense_out[3 * ((size_t)y * W + x) + 2],
                            fz_at(&out, y, x)[0], fz_at(&out, y, x)[1], fz_at(&out, y, x)[2]);
    }
    if (raw || !moderate) goto done;

    /* A constant image renders as that constant. Every entry is then colour = C x coverage (no
     * matte: one entry (C, 1) per pixel; the edge unmixing needs two sides of different colours),
     * and every later step treats the four channels alike: slice weights, the coarse cells'
     * sums, the scatter's weights and difference rows, the fill (its colour is the push-pull of
     * the same cells, scaled by g / coverage; a plate of colour C adds h g C against coverage
     * h g), the bilinear upsampling and the visibility weights. Dividing by the accumulated
     * coverage gives C back wherever that coverage exceeds 1e-6 (below, sd_render leaves the sum
     * undivided): a shape that covers its centre keeps part of every source's light on its own
     * pixel, and the nearest slice to reach a pixel is never hidden. What is left is float
     * rounding. For a power-of-two channel every step but the fill's g / coverage and the final
     * 1 / coverage is the coverage's own arithmetic scaled exactly: 1 ulp (2^-24) observed.
     * Otherwise the difference rows' prefix sums round colour and coverage independently, a few
     * ulps of the row's running sums relative to the pixel's coverage: up to 2.7e-6 observed over
     * the fuzzing corpus. The bound, 1e-4 (~840 ulps), leaves a wide margin for pixels of small
     * coverage; a channel of 0 must stay exactly 0. FUZZ_CONST_STATS=1 prints each input's worst
     * relative error. */
    int centred = fz_aperture_covers_centre(&ap, 0.25f);
    if (ikind == IK_CONSTANT && no_subject && pm <= 1 && centred) {
        double worst = 0.0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *q = fz_at(&out, y, x);
                for (int c = 0; c < 3; c++) {
                    double rel = col[c] != 0.0f ? fabs((double)q[c] - col[c]) / fabs(col[c]) : (q[c] != 0.0f);
                    worst = rel > worst ? rel : worst;
                }
            }
        if (getenv("FUZZ_CONST_STATS"))
            fprintf(stderr, "constant: worst relative error %.3g (%dx%d, coc %s, plate %d, pow2 %d)\n", worst, H, W,
                    CK_NAME[ckind], (int)pm,
                    frexpf(col[0], &(int){0}) == 0.5f && frexpf(col[1], &(int){0}) == 0.5f &&
                        frexpf(col[2], &(int){0}) == 0.5f);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *q = fz_at(&out, y, x);
                for (int c = 0; c < 3; c++)
                    if (!(fabsf(q[c] - col[c]) <= 1e-4f * fabsf(col[c])))
                        FZ_FAIL("constant %.9g renders as %.9g at (%d, %d) channel %d, %dx%d, coc %s, plate %d", col[c],
                                q[c], y, x, c, H, W, CK_NAME[ckind], (int)pm);
            }
    }

    /* In focus: |CoC| <= 1 everywhere is a radius of at most half a pixel, which keeps each
     * source in its own pixel, and a CoC range of at most 1 px means at most 2 slices (nothing
     * occludes, nothing is filled, the plate is unused) and no depth edge to unmix. Whatever the
     * matte, a pixel's entries add up to it and to coverage 1, so the image comes back, up to
     * the rounding of the row prefix sums (a few ulps of the row's absolute sum; denormal light
     * split between two slices loses its last bits, hence the 1e-37 floor). With 3 slices
     * (a range up to 2 px) the farthest is partly visible through pixels between the other two
     * and shows its filled-in colour there: the soft occlusion of sd_render_entries, by design. */
    if (focus) {
        for (int y = 0; y < H; y++) {
            float rowabs[3] = {0, 0, 0};
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) rowabs[c] += fabsf(fz_at(&img, y, x)[c]);
            for (int x = 0; x < W; x++) {
                const float *p = fz_at(&img, y, x), *q = fz_at(&out, y, x);
                for (int c = 0; c < 3; c++)
                    if (!(fabsf(q[c] - p[c]) <= 8.0f * FLT_EPSILON * (rowabs[c] + fabsf(p[c]) * (float)(W + 2)) + 1e-37f))
                        FZ_FAIL("in focus: pixel %.9g renders as %.9g at (%d, %d) channel %d, %dx%d", p[c], q[c], y, x,
                                c, H, W);
            }
        }
    }

    /* One CoC everywhere and no subject: one slice, nothing occluded or filled, so every output
     * pixel is a non-negative mix of image pixels (spread light over spread coverage): within
     * the image's range, up to rounding relative to its largest magnitude. */
    if (uniform && no_subject) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *q = fz_at(&out, y, x);
                for (int c = 0; c < 3; c++) {
                    /* + 1e-30: light below ~1e-33 underflows (to 0) once spread over an area */
                    float tol = 1e-4f * fmaxf(fabsf(lo[c]), fabsf(hi[c])) + 1e-30f;
                    if (!(q[c] >= lo[c] - tol && q[c] <= hi[c] + tol))
                        FZ_FAIL("uniform CoC %g: output %.9g at (%d, %d) channel %d outside the image's [%g, %g]",
                                coc[0], q[c], y, x, c, lo[c], hi[c]);
                }
            }
    }
done:
    free(coc);
    free(matte);
    free(plate);
    free(img_copy);
    free(coc_copy);
    free(matte_copy);
    free(plate_copy);
    free(dense_img);
    free(dense_out);
    free(gen);
    fz_aperture_free(&ap);
    fz_buf_free(&img);
    fz_buf_free(&out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    return run(&in);
}
