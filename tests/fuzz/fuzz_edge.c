/* libFuzzer harness of the refine stage's kernels, sd_edge_filter and sd_guided_upsample.
 *
 * sd_edge_filter (the domain-transform filter): frames from
 * 1x1 to long thin strips, 1 to 16 channels, 0 to 8 guide channels (or none), sigmas from tiny
 * to huge, 1 to 16 iterations, values ordinary or wild.
 *
 * Checks: the guide unchanged, nothing past the data written (exact allocations), invalid
 * arguments refused with SD_ERR_ARG / SD_ERR_VALUE; for ordinary values a finite result inside
 * the input's range per channel (every step is a convex combination of two neighbours), and a
 * constant channel kept constant. */
#include "fuzz_common.h"
#include "sd_refine_maps.h"

/* sd_guided_upsample: an h x w map with weights (some zero, some wild), a K-channel guide at
 * both resolutions, H x W >= h x w. Checks: inputs unchanged, every output written, refused
 * arguments; for ordinary values the output lies within the valid samples' range, its found
 * map is 1 or 0, 0 exactly where the output is 0 for want of a sample, and those pixels are
 * counted in the unreached count. In the linear mode the
 * guide is linear light from -0.5 to 4 with highlight terms for most of its values over 1 (some
 * left out on purpose: they gain nothing), and the output has the bits of the guide mode given
 * the whole frame encoded (sd_srgb_encode_base + _finish) with those terms added. With a need
 * mask (bytes 0, 1 or any), the pixels it leaves out are not written and the others have the
 * bits of the call without it; the unreached count is of those it asks for. */
static int run_upsample(fz_in *in)
{
    int h = fz_range(in, 1, 24), w = fz_range(in, 1, 24);
    int H = h * fz_range(in, 1, 5) + fz_range(in, -1, 3), W = w * fz_range(in, 1, 5) + fz_range(in, -1, 3);
    int K = fz_range(in, 0, 9);
    uint8_t mode = fz_u8(in);
    int wild = mode & 1, linear = (mode >> 2) & 1;
    double sigma_r = (mode >> 1) & 1 ? (double)fz_wild(in, 1.0f) : 0.01 + fz_unit(in);
    /* the agreement that skips the colours: refine's two, any other, or wild */
    double agree = !((mode >> 3) & 1) ? SD_UPSAMPLE_AGREE : (mode >> 4) & 1 ? (double)fz_wild(in, 0.05f)
                                                                         : 0.05 * fz_unit(in);
    int Hc = H > 0 ? H : 1, Wc = W > 0 ? W : 1, Kc = K > 0 ? K : 1;
    size_t n = (size_t)h * (size_t)w, N = (size_t)Hc * (size_t)Wc;
    float *lo = malloc(sizeof(float) * n), *lw = malloc(sizeof(float) * n);
    float *gl = malloc(sizeof(float) * n * (size_t)Kc), *g = malloc(sizeof(float) * N * (size_t)Kc);
    float *out = malloc(sizeof(float) * N), *ow = malloc(sizeof(float) * N);
    float *loc = malloc(sizeof(float) * n);
    /* the linear mode's: its highlight list, the encoded guide and the guide mode's output */
    int64_t *over = malloc(sizeof(int64_t) * N * (size_t)Kc);
    float *add = malloc(sizeof(float) * N * (size_t)Kc), *enc = malloc(sizeof(float) * N * (size_t)Kc);
    float *gcopy = malloc(sizeof(float) * N * (size_t)Kc);
    float *ref = malloc(sizeof(float) * N), *refw = malloc(sizeof(float) * N);
    float *nout = malloc(sizeof(float) * N), *nw = malloc(sizeof(float) * N);
    uint8_t *need = malloc(N);
    if (!lo || !lw || !gl || !g || !out || !ow || !loc || !over || !add || !enc || !gcopy || !ref || !refw || !nout ||
        !nw || !need)
        goto done;
    float vmin = INFINITY, vmax = -INFINITY;
    int moderate = 1;
    for (size_t i = 0; i < n; i++) {
        lo[i] = wild ? fz_wild(in, 5.0f) : fz_uniform(in, 0.01f, 2.0f);
        lw[i] = (fz_u8(in) & 3) ? 1.0f : 0.0f;
        if (!(fabsf(lo[i]) <= 1e6f)) moderate = 0;
        if (lw[i] > 0.0f && lo[i] < vmin) vmin = lo[i];
        if (lw[i] > 0.0f && lo[i] > vmax) vmax = lo[i];
    }
    for (size_t i = 0; i < n * (size_t)Kc; i++) gl[i] = fz_unit(in);
    static const float special[] = {1.0f, 0.0031308f, 0.0f, -0.0f, 4.0f, 1.0000001f, 0.99999994f};
    size_t nover = 0;
    for (size_t i = 0; i < N * (size_t)Kc; i++) {
        uint8_t pick = linear ? fz_u8(in) : 1;
        g[i] = !linear ? fz_unit(in) : pick < 16 ? special[pick % 7] : fz_uniform(in, -0.5f, 4.0f);
        enc[i] = g[i];
        if (linear && g[i] > 1.0f && (pick & 7)) {
            over[nover] = (int64_t)i;
            add[nover++] = 0.25f * log2f(g[i]);
        }
    }
    memcpy(gcopy, g, sizeof(float) * N * (size_t)Kc);
    /* a mask, mostly unset or mostly set, from a hash of the pixel's index (not the input's bytes,
     * which run out on most frames), set to any nonzero byte */
    const int masked = (mode >> 5) & 1, sparse = (mode >> 6) & 1;
    const uint32_t seed = masked ? fz_u32(in) : 0;
    for (size_t i = 0; i < N; i++) {
        uint32_t v = ((uint32_t)i + seed) * 2654435761u;
        need[i] = (uint8_t)((v >> 28) < (sparse ? 2u : 12u) ? 1u + ((v >> 8) & 0xfeu) : 0u);
    }
    for (size_t i = 0; i < N; i++) out[i] = ow[i] = ref[i] = refw[i] = nout[i] = nw[i] = FZ_GUARD;
    memcpy(loc, lo, sizeof(float) * n);
    int nthreads = fz_range(in, -1, 3);
    sd_linear_guide lin = {over, add, nover};

    size_t unreached = (size_t)-1, ref_unreached = 0;
    sd_status st =
        sd_guided_upsample(h, w, lo, lw, gl, H, W, g, K, linear ? &lin : NULL, sigma_r, agree, NULL, out, ow,
                           &unreached, nthreads);

    if (memcmp(loc, lo, sizeof(float) * n) || memcmp(gcopy, g, sizeof(float) * N * (size_t)Kc))
        FZ_FAIL("input modified");
    if (H < h || W < w || K < 1 || K > 8) {
        if (st != SD_ERR_ARG) FZ_FAIL("status %d for %dx%d -> %dx%d, K %d (want SD_ERR_ARG)", (int)st, h, w, H, W, K);
        goto done;
    }
    if (!(sigma_r > 0.0) || !isfinite(sigma_r) || !(agree >= 0.0) || !isfinite(agree)) {
        if (st != SD_ERR_VALUE) FZ_FAIL("status %d for sigma_r %g, agree %g (want SD_ERR_VALUE)", (int)st, sigma_r, agree);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d for %dx%d -> %dx%d", (int)st, h, w, H, W);
    if (linear) {
        size_t NK = N * (size_t)K;
        if (sd_srgb_encode_base(NK, g, enc, 1) != SD_OK || sd_srgb_encode_finish(NK, g, enc, 1) != SD_OK)
            FZ_FAIL("encoding refused");
        for (size_t k = 0; k < nover; k++) enc[over[k]] += add[k];
        if (sd_guided_upsample(h, w, lo, lw, gl, H, W, enc, K, NULL, sigma_r, agree, NULL, ref, refw, &ref_unreached,
                               nthreads) != SD_OK)
            FZ_FAIL("guide mode refused what the linear mode took");
        if (memcmp(ref, out, sizeof(float) * N) || memcmp(refw, ow, sizeof(float) * N) || ref_unreached != unreached)
            FZ_FAIL("linear mode differs from the encoded guide's");
    }
    size_t zeros = 0;
    for (size_t i = 0; i < N; i++) {
        if (out[i] == FZ_GUARD || ow[i] == FZ_GUARD) FZ_FAIL("output %zu not written", i);
        if (ow[i] != 0.0f && ow[i] != 1.0f) FZ_FAIL("found %g at %zu (not 0 or 1)", ow[i], i);
        zeros += ow[i] == 0.0f;
        if (ow[i] == 0.0f && out[i] != 0.0f) FZ_FAIL("not found but output %.9g at %zu", out[i], i);
        if (!moderate) continue;
        if (ow[i] > 0.0f) {
            float tol = 1e-5f * (fabsf(vmin) + fabsf(vmax)) + 1e-30f;
            if (!(out[i] >= vmin - tol && out[i] <= vmax + tol))
                FZ_FAIL("output %.9g at %zu outside the valid samples' range [%g, %g]", out[i], i, vmin, vmax);
        }
    }
    if (zeros != unreached) FZ_FAIL("%zu pixels not found, %zu reported", zeros, unreached);
    if (masked) {
        size_t need_unreached = (size_t)-1, want = 0;
        if (sd_guided_upsample(h, w, lo, lw, gl, H, W, g, K, linear ? &lin : NULL, sigma_r, agree, need, nout, nw,
                               &need_unreached, nthreads) != SD_OK)
            FZ_FAIL("refused with a need mask");
        for (size_t i = 0; i < N; i++) {
            if (!need[i]) {
                if (nout[i] != FZ_GUARD || nw[i] != FZ_GUARD) FZ_FAIL("pixel %zu written though not needed", i);
                continue;
            }
            if (memcmp(&nout[i], &out[i], sizeof(float)) || memcmp(&nw[i], &ow[i], sizeof(float)))
                FZ_FAIL("needed pixel %zu: %.9g, without the mask %.9g", i, nout[i], out[i]);
            want += ow[i] == 0.0f;
        }
        if (need_unreached != want) FZ_FAIL("%zu needed pixels not found, %zu reported", want, need_unreached);
    }
done:
    free(lo); free(lw); free(gl); free(g); free(out); free(ow); free(loc);
    free(over); free(add); free(enc); free(gcopy); free(ref); free(refw); free(nout); free(nw); free(need);
    return 0;
}

static int run(fz_in *in)
{
    if (fz_u8(in) & 1) return run_upsample(in);
    int H = fz_range(in, 1, 48), W = fz_range(in, 1, 48);
    uint8_t big = fz_u8(in);
    if (big == 0xfe) H = fz_range(in, 1, 3), W = fz_range(in, 200, 1500);
    if (big == 0xfd) W = fz_range(in, 1, 3), H = fz_range(in, 200, 1500);
    int C = fz_range(in, 1, 16), K = fz_range(in, -1, 8);
    uint8_t mode = fz_u8(in);
    int wild_v = mode & 1, wild_g = (mode >> 1) & 1, const_ch = (mode >> 2) & 1;
    double sigma_s = (mode >> 3) & 1 ? (double)fz_wild(in, 50.0f) : 0.1 + 100.0 * fz_unit(in);
    double sigma_r = (mode >> 4) & 1 ? (double)fz_wild(in, 1.0f) : 0.01 + fz_unit(in);
    int iters = fz_range(in, 0, 17);
    size_t n = (size_t)H * (size_t)W;
    int Kc = K > 0 ? K : 1;
    float *d = malloc(sizeof(float) * n * (size_t)C), *g = malloc(sizeof(float) * n * (size_t)Kc);
    float *gc = malloc(sizeof(float) * n * (size_t)Kc);
    if (!d || !g || !gc) goto done;
    int moderate = 1;
    float lo[16], hi[16];
    for (int c = 0; c < 16; c++) { lo[c] = INFINITY; hi[c] = -INFINITY; }
    float cval = fz_uniform(in, -3.0f, 3.0f);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            float x = (const_ch && c == 0) ? cval : wild_v ? fz_wild(in, 10.0f) : fz_uniform(in, -2.0f, 2.0f);
            d[i * (size_t)C + c] = x;
            if (!(fabsf(x) <= 1e6f)) moderate = 0;
            if (x < lo[c]) lo[c] = x;
            if (x > hi[c]) hi[c] = x;
        }
    for (size_t i = 0; i < n * (size_t)Kc; i++) {
        float x = wild_g ? fz_wild(in, 1.0f) : fz_unit(in);
        g[i] = x;
        if (!(fabsf(x) <= 1e6f)) moderate = 0;
    }
    memcpy(gc, g, sizeof(float) * n * (size_t)Kc);
    int nthreads = fz_range(in, -1, 3);

    sd_status st = sd_edge_filter(H, W, C, d, K > 0 ? g : NULL, K, sigma_s, sigma_r, iters, nthreads);

    if (memcmp(gc, g, sizeof(float) * n * (size_t)Kc)) FZ_FAIL("guide modified");
    int bad_arg = K < 0 || iters < 1 || iters > 16;
    int bad_val = !(sigma_s > 0.0) || !(sigma_r > 0.0) || !isfinite(sigma_s) || !isfinite(sigma_r);
    if (bad_arg) {
        if (st != SD_ERR_ARG) FZ_FAIL("status %d for K %d, iterations %d (want SD_ERR_ARG)", (int)st, K, iters);
        goto done;
    }
    if (bad_val) {
        if (st != SD_ERR_VALUE) FZ_FAIL("status %d for sigmas %g, %g (want SD_ERR_VALUE)", (int)st, sigma_s, sigma_r);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d for %dx%dx%d", (int)st, H, W, C);
    if (!moderate) goto done;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            float o = d[i * (size_t)C + c];
            float tol = 1e-5f * (fabsf(lo[c]) + fabsf(hi[c])) + 1e-30f;
            if (!isfinite(o)) FZ_FAIL("non-finite output at %zu, %d", i, c);
            if (o < lo[c] - tol || o > hi[c] + tol)
                FZ_FAIL("output %.9g at %zu, %d outside the input's range [%g, %g]", o, i, c, lo[c], hi[c]);
            if (const_ch && c == 0 && fabsf(o - cval) > 1e-5f * (fabsf(cval) + 1e-30f))
                FZ_FAIL("constant channel %.9g became %.9g at %zu", cval, o, i);
        }
done:
    free(d); free(g); free(gc);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    return run(&in);
}
