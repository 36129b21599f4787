/* libFuzzer harness of sd_pushpull: frame sizes from 1x1 to long thin strips, 1 to 8 channels,
 * weights in [0, 1] (mostly 0 or 1, as the renderer's masks are) or anywhere in the finite
 * range, values ordinary or wild.
 *
 * Checks: inputs unchanged, nothing past the output written (exact allocations), finite output
 * for ordinary values, output equal to the input where the weight is 1 or more, and 0 when no
 * weight exists anywhere (sd_core.h: "Where no weight exists at all, out is 0"); with weights
 * in [0, 1] every output lies within the range of the weighted input values. */
#include "fuzz_common.h"

static int run(fz_in *in)
{
    int H = fz_range(in, 1, 64), W = fz_range(in, 1, 64);
    uint8_t big = fz_u8(in);
    if (big == 0xfe) H = fz_range(in, 1, 3), W = fz_range(in, 200, 2000);
    if (big == 0xfd) W = fz_range(in, 1, 3), H = fz_range(in, 200, 2000);
    int nch = fz_range(in, 1, 8);
    uint8_t mode = fz_u8(in);
    int wild_w = mode & 1, wild_v = (mode >> 1) & 1, binary = (mode >> 2) & 1;
    size_t n = (size_t)H * (size_t)W;
    float *v = malloc(sizeof(float) * n * (size_t)nch), *w = malloc(sizeof(float) * n);
    float *out = malloc(sizeof(float) * n * (size_t)nch);
    float *vc = malloc(sizeof(float) * n * (size_t)nch), *wc = malloc(sizeof(float) * n);
    if (!v || !w || !out || !vc || !wc) goto done;
    int moderate = 1, any_w = 0, in01 = 1;
    float lo[8], hi[8];
    for (int c = 0; c < 8; c++) { lo[c] = INFINITY; hi[c] = -INFINITY; }
    for (size_t i = 0; i < n; i++) {
        float wi = wild_w ? fz_wild(in, 1.0f) : binary ? (float)(fz_u8(in) & 1) : fz_unit(in);
        w[i] = wi;
        if (wi > 0.0f) any_w = 1;
        if (!(wi >= 0.0f && wi <= 1.0f)) in01 = 0;
        for (int c = 0; c < nch; c++) {
            float x = wild_v ? fz_wild(in, 10.0f) : fz_uniform(in, -2.0f, 2.0f);
            v[i * nch + c] = x;
            if (!(fabsf(x) <= 1e6f)) moderate = 0;
            if (wi > 0.0f) {
                if (x < lo[c]) lo[c] = x;
                if (x > hi[c]) hi[c] = x;
            }
        }
    }
    for (size_t i = 0; i < n * (size_t)nch; i++) out[i] = FZ_GUARD;
    memcpy(vc, v, sizeof(float) * n * (size_t)nch);
    memcpy(wc, w, sizeof(float) * n);
    int nthreads = fz_range(in, -1, 3);

    sd_status st = sd_pushpull(H, W, nch, v, w, out, nthreads);

    if (memcmp(vc, v, sizeof(float) * n * (size_t)nch) || memcmp(wc, w, sizeof(float) * n)) FZ_FAIL("input modified");
    if (st != SD_OK) FZ_FAIL("status %d for %dx%dx%d", (int)st, H, W, nch);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < nch; c++) {
            float o = out[i * nch + c], x = v[i * nch + c];
            int y = (int)(i / (size_t)W), xx = (int)(i % (size_t)W);
            if (o == FZ_GUARD) FZ_FAIL("output (%d, %d, %d) not written, %dx%d", y, xx, c, H, W);
            if (!moderate) continue;
            if (!isfinite(o)) FZ_FAIL("non-finite output at (%d, %d, %d), %dx%d", y, xx, c, H, W);
            if (w[i] >= 1.0f && o != x)
                FZ_FAIL("weight %g at (%d, %d, %d) but output %.9g != value %.9g, %dx%d", w[i], y, xx, c, o, x, H, W);
            if (!any_w && o != 0.0f) FZ_FAIL("no weight anywhere but output %.9g at (%d, %d, %d)", o, y, xx, c);
            if (any_w && in01) {
                float tol = 1e-5f * (fabsf(lo[c]) + fabsf(hi[c])) + 1e-30f;
                if (o < lo[c] - tol || o > hi[c] + tol)
                    FZ_FAIL("output %.9g at (%d, %d, %d) outside the weighted values' range [%g, %g], %dx%d", o, y, xx,
                            c, lo[c], hi[c], H, W);
            }
        }
done:
    free(v); free(w); free(out); free(vc); free(wc);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    return run(&in);
}
