/* libFuzzer harness of sd_pushpull: frame sizes from 1x1 to long thin strips, 1 to 8 channels,
 * weights in [0, 1] (mostly 0 or 1, as the renderer's masks are) or anywhere in the finite
 * range, values ordinary or wild.
 *
 * Checks: inputs unchanged, nothing past the output written (exact allocations), finite output
 * for ordinary values, output equal to the input where the weight is 1 or more, and 0 when no
 * weight exists anywhere (sd_core.h: "Where no weight exists at all, out is 0"); with weights
 * in [0, 1] every output lies within the range of the weighted input values.
 *
 * An input that starts with 'M' tests instead the render's fill pyramid (sd_fill_build of
 * csrc/sd_fill.h: premultiplied 4-channel values with hidden fractions, rows limited to spans
 * stored back to back) with a mask (sd_fill_mask) against the same call without one: blocks of
 * need chosen by the bytes, on[1], on[2] and pulled grown from them as the mask's rules ask (a
 * plain box dilation here), the blocks left out of the pull found uniform by a scan of their
 * cells. Every level-0 cell of a block of need must get the bits of the unmasked fill; the
 * masked workspace starts as NaN, so a read of a cell the masked pull left undefined shows. */
#include "fuzz_common.h"
#include "sd_fill.h"

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

static int imin_(int a, int b) { return a < b ? a : b; }

/* Blocks within rad blocks (across and down) of a set block of src: the mask's dilation, by
 * brute force. */
static void box_dilate(const unsigned char *src, unsigned char *dst, int bw, int bh, int rad)
{
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            unsigned char v = 0;
            for (int j = y - rad; j <= y + rad && !v; j++)
                for (int i = x - rad; i <= x + rad && !v; i++)
                    if (j >= 0 && j < bh && i >= 0 && i < bw && src[j * bw + i]) v = 1;
            dst[y * bw + x] = v;
        }
}

static int run_masked(fz_in *in)
{
    const int B = SD_FILL_BLOCK;
    int H = fz_range(in, 1, 96), W = fz_range(in, 1, 96);
    if (fz_u8(in) == 0xfe) W = fz_range(in, 100, 400);
    int bw = (W + B - 1) / B, bh = (H + B - 1) / B, nb = bw * bh;
    int *rx0 = malloc(sizeof(int) * 2 * (size_t)H), *rx1 = rx0 ? rx0 + H : NULL;
    ptrdiff_t *roff = malloc(sizeof(ptrdiff_t) * (size_t)H);
    unsigned char *blk = calloc(7 * (size_t)nb, 1);
    float *hole = NULL, *value = NULL, *ws0 = NULL, *ws1 = NULL;
    unsigned char *empty = malloc((size_t)nb);
    if (!rx0 || !roff || !blk || !empty) goto done;
    /* the blocks of need: up to 4, chosen first (the cells' bytes may run out) */
    int nneed = fz_range(in, 1, 4), needed[4];
    for (int i = 0; i < nneed; i++) needed[i] = fz_range(in, 0, nb - 1);
    /* each row's span: empty, whole, or chosen; or (disk) the chord of a disk, whose middle is
     * hidden: a ring's grid, seen and empty around, without weight inside */
    ptrdiff_t total = 0;
    uint8_t spans = fz_u8(in);
    int disk = spans >> 7;
    float dx = fz_uniform(in, 0.0f, (float)W), dy = fz_uniform(in, 0.0f, (float)H);
    float dr = fz_uniform(in, 0.0f, 0.7f * (float)(H > W ? H : W)), inner = fz_unit(in);
    for (int y = 0; y < H; y++) {
        int k = (spans & 3) == 3 ? fz_u8(in) % 3 : spans & 3, a = 0, b = W;
        if (k == 1) a = b = 0;
        if (k == 2) {
            a = fz_range(in, 0, W);
            b = fz_range(in, a, W);
        }
        if (disk) {
            float ey = (float)y + 0.5f - dy, c = dr * dr - ey * ey;
            float half = c > 0.0f ? sqrtf(c) : 0.0f;
            a = (int)fminf(fmaxf(dx - half, 0.0f), (float)W);
            b = (int)fminf(fmaxf(dx + half, 0.0f), (float)W);
        }
        if (a >= b) a = b = 0; /* the render's empty row */
        rx0[y] = a;
        rx1[y] = b;
        roff[y] = total - a; /* rows back to back, each exactly as long as its span */
        total += b - a;
    }
    hole = malloc(sizeof(float) * (size_t)(total > 0 ? total : 1));
    value = malloc(sizeof(float) * 4 * (size_t)(total > 0 ? total : 1));
    if (!hole || !value) goto done;
    uint8_t holes = fz_u8(in);
    for (int y = 0; y < H; y++)
        for (int x = rx0[y]; x < rx1[y]; x++) {
            /* hidden fractions as the render makes them: none, whole, just under whole (no weight
             * in the fill), partial; sometimes one kind throughout, so whole blocks come out
             * uniform; in a disk's middle, wholly hidden */
            uint8_t k = (holes & 0x80) ? (uint8_t)(holes & 7) : fz_u8(in) & 7;
            float ex = (float)x + 0.5f - dx, ey = (float)y + 0.5f - dy;
            if (disk && ex * ex + ey * ey < inner * inner * dr * dr) k = (holes & 1) ? 1 : 2;
            static const float kind[8] = {0.0f, 1.0f, 0.9995f, -1.0f, 0.0f, 1.0f, 1.0f - 1e-3f, 0.5f};
            float h = k == 3 ? fz_unit(in) : kind[k];
            ptrdiff_t i = roff[y] + x;
            hole[i] = h;
            for (int c = 0; c < 4; c++) value[4 * i + c] = (1.0f - h) * fz_uniform(in, 0.0f, 2.0f);
        }
    /* per block: some cell outside the spans, some inside, some inside with weight */
    unsigned char *out = blk, *inb = blk + nb, *wt = blk + 2 * nb, *need = blk + 3 * nb;
    unsigned char *on1 = blk + 4 * nb, *on2 = blk + 5 * nb, *pulled = blk + 6 * nb;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int b = (y / B) * bw + x / B;
            if (x < rx0[y] || x >= rx1[y]) {
                out[b] = 1;
                continue;
            }
            inb[b] = 1;
            if (1.0f - hole[roff[y] + x] > SD_FILL_MIN_VISIBLE) wt[b] = 1;
        }
    if (disk) /* one at the disk's middle, whose fill comes from the coarse levels */
        needed[0] = imin_((int)dy / B, bh - 1) * bw + imin_((int)dx / B, bw - 1);
    for (int i = 0; i < nneed; i++) need[needed[i]] = 1;
    box_dilate(need, on1, bw, bh, SD_FILL_PUSH_MARGIN);
    box_dilate(on1, on2, bw, bh, SD_FILL_PUSH_MARGIN2);
    box_dilate(on2, pulled, bw, bh, 1);
    for (int b = 0; b < nb; b++) {
        empty[b] = out[b] && !inb[b];
        int uniform = empty[b] || (inb[b] && !out[b] && !wt[b]);
        if (!uniform) pulled[b] = 1;
    }
    size_t nws = sd_fill_ws_floats(H, W, 4);
    ws0 = malloc(sizeof(float) * (nws ? nws : 1));
    ws1 = malloc(sizeof(float) * (nws ? nws : 1));
    if (!ws0 || !ws1) goto done;
    for (size_t i = 0; i < nws; i++) ws1[i] = NAN;
    int nthreads = fz_range(in, 1, 3);
    sd_fill_mask mask = {{NULL, on1, on2}, pulled, empty, bw};
    sd_fillpyr f0, f1;
    sd_fill_build(&f0, ws0, H, W, 4, value, 0, NULL, hole, 0, rx0, rx1, roff, NULL, nthreads);
    sd_fill_build(&f1, ws1, H, W, 4, value, 0, NULL, hole, 0, rx0, rx1, roff, &mask, nthreads);
    if (f0.n != f1.n) FZ_FAIL("levels %d masked, %d not", f1.n, f0.n);
    if (f0.n >= 2)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                if (!need[(y / B) * bw + x / B]) continue;
                float a[4], b[4];
                sd_fill_sample4(&f0, x, y, a);
                sd_fill_sample4(&f1, x, y, b);
                if (memcmp(a, b, sizeof a))
                    FZ_FAIL("fill at (%d, %d) of %dx%d: masked (%.9g %.9g %.9g %.9g), not (%.9g %.9g %.9g %.9g)", y,
                            x, H, W, b[0], b[1], b[2], b[3], a[0], a[1], a[2], a[3]);
            }
done:
    free(rx0); free(roff); free(blk); free(empty); free(hole); free(value); free(ws0); free(ws1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    if (size && data[0] == 'M') {
        fz_u8(&in);
        return run_masked(&in);
    }
    return run(&in);
}
