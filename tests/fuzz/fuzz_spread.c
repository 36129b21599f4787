/* libFuzzer harness of sd_scatter and sd_gather: fuzzer-chosen frame size, channel count,
 * strided source and destination views (gaps, column-major, negative strides), CoC maps from
 * zero to FLT_MAX of either sign, and valid aperture tables.
 *
 * Besides the sanitizers' own checks it verifies that
 *  - the source and CoC are not modified and nothing outside the destination view is written;
 *  - every destination element is written (unless the call was cancelled or rejected);
 *  - with ordinary input values the output is finite;
 *  - scatter keeps each channel's total (the kernel's documented energy preservation);
 *  - gather of a constant image is that constant, and so is scatter with a uniform CoC when the
 *    aperture is a circle (the mirrored borders fold light back with the shape mirrored, so
 *    with a shape that is not mirror-symmetric a constant image changes near the borders). */
#include "fuzz_common.h"

static int run(fz_in *in)
{
    int gather = fz_u8(in) & 1;
    int H = fz_range(in, 1, 64), W = fz_range(in, 1, 64);
    uint8_t big = fz_u8(in);
    if (big == 0xfe) H = fz_range(in, 100, 240), W = fz_range(in, 1, 8);  /* tall: row bands */
    if (big == 0xfd) W = fz_range(in, 100, 240), H = fz_range(in, 1, 8);  /* wide */
    int nch = fz_range(in, 1, 4);
    uint8_t mode = fz_u8(in);
    int constant = mode & 1, uniform_coc = (mode >> 1) & 1, wild_values = (mode >> 2) & 1;
    int bad_args = mode == 0xff; /* channel counts the core must reject */
    float coc_scale = (mode >> 3 & 3) == 0 ? 4.0f : (mode >> 3 & 3) == 1 ? 40.0f : (mode >> 3 & 3) == 2 ? 120.0f : 600.0f;

    fz_buf src, dst;
    fz_aperture ap;
    if (fz_buf_make(&src, in, H, W, nch, 1)) return 0;
    if (fz_buf_make(&dst, in, H, W, nch, 1)) { fz_buf_free(&src); return 0; }
    if (fz_aperture_make(&ap, in)) { fz_buf_free(&src); fz_buf_free(&dst); return 0; }
    int pad = fz_range(in, 0, 3);
    ptrdiff_t coc_row = W + pad;
    size_t ncoc = (size_t)(H - 1) * (size_t)coc_row + (size_t)W;
    float *coc = malloc(sizeof(float) * ncoc);
    float *src_copy = malloc(sizeof(float) * src.n), *coc_copy = malloc(sizeof(float) * ncoc);
    if (!coc || !src_copy || !coc_copy) goto done;
    for (size_t i = 0; i < ncoc; i++) coc[i] = -3.3e33f; /* row padding */

    /* values */
    float cval[4];
    for (int c = 0; c < 4; c++) cval[c] = wild_values ? fz_wild(in, 10.0f) : fz_uniform(in, 0.0f, 4.0f);
    float coc0 = fz_wild(in, coc_scale);
    int moderate = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float *p = fz_at(&src, y, x);
            for (int c = 0; c < nch; c++) {
                p[c] = constant ? cval[c] : wild_values ? fz_wild(in, 10.0f) : fz_uniform(in, 0.0f, 4.0f);
                if (!(fabsf(p[c]) <= 1e6f)) moderate = 0;
            }
            coc[(ptrdiff_t)y * coc_row + x] = uniform_coc ? coc0 : fz_wild(in, coc_scale);
        }
    memcpy(src_copy, src.buf, sizeof(float) * src.n);
    memcpy(coc_copy, coc, sizeof(float) * ncoc);

    if (fz_verbose()) {
        fprintf(stderr, "%s %dx%dx%d mode 0x%02x src row %td pix %td dst row %td pix %td coc_row %td\n",
                gather ? "gather" : "scatter", H, W, nch, mode, src.row, src.pix, dst.row, dst.pix, coc_row);
        for (int y = 0; y < H; y++) fz_dump("coc row", coc + (ptrdiff_t)y * coc_row, (size_t)W);
        fz_dump_aperture(&ap.ap);
    }
    int nthreads = fz_range(in, -1, 3);
    fz_cancel_ctx cctx = {0, fz_u8(in) == 0x5a ? 0 : -1};
    sd_cancel cancel = {fz_check, &cctx};
    sd_cview sv = fz_cview(&src);
    sd_view dv = fz_view(&dst);
    if (bad_args) { sv.nch = 5; dv.nch = 5; }
    sd_status st = gather ? sd_gather(H, W, sv, coc, coc_row, &ap.ap, dv, nthreads, &cancel)
                          : sd_scatter(H, W, sv, coc, coc_row, &ap.ap, dv, nthreads, &cancel);

    if (memcmp(src_copy, src.buf, sizeof(float) * src.n)) FZ_FAIL("source modified");
    if (memcmp(coc_copy, coc, sizeof(float) * ncoc)) FZ_FAIL("coc modified");
    size_t dmg = fz_buf_guard_damage(&dst);
    if (dmg) FZ_FAIL("%zu floats written outside the destination view", dmg);
    if (bad_args) {
        if (st != SD_ERR_ARG) FZ_FAIL("5 channels accepted (status %d)", (int)st);
        goto done;
    }
    if (cctx.stop_at >= 0) {
        if (st != SD_ERR_INTERRUPTED) FZ_FAIL("cancel ignored (status %d)", (int)st);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d for valid input %dx%dx%d", (int)st, H, W, nch);

    double sum_in[4] = {0}, abs_in[4] = {0}, sum_out[4] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *p = fz_at(&src, y, x), *q = fz_at(&dst, y, x);
            for (int c = 0; c < nch; c++) {
                if (q[c] == FZ_GUARD) FZ_FAIL("output (%d, %d, %d) not written", y, x, c);
                if (moderate && !isfinite(q[c]))
                    FZ_FAIL("non-finite output %g at (%d, %d, %d), %dx%d", q[c], y, x, c, H, W);
                sum_in[c] += p[c];
                abs_in[c] += fabs(p[c]);
                sum_out[c] += q[c];
            }
        }
    if (!moderate) goto done;
    for (int c = 0; c < nch; c++) {
        double tol = 1e-3 * abs_in[c] + 1e-30;
        if (!gather && fabs(sum_out[c] - sum_in[c]) > tol)
            FZ_FAIL("scatter total %.9g != input total %.9g (channel %d, %dx%d, coc0 %g)", sum_out[c],
                    sum_in[c], c, H, W, coc0);
    }
    if (constant && (gather || (uniform_coc && ap.symmetric))) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const float *q = fz_at(&dst, y, x);
                /* gather integrates rows through float prefix sums: a span of width w at column x
                 * loses about eps * x * |value| / w (CoC 0 is taken as w = 2e-3) */
                float cabs = fabsf(coc[(ptrdiff_t)y * coc_row + x]);
                float w = cabs < 1.0f ? (cabs > 2e-3f ? cabs : 2e-3f) : 1.0f;
                /* scatter: coarse levels on frames that are not a multiple of 2^k deviate by a
                 * few 1e-3 (documented ~2e-3; square shapes reach 4e-3) */
                float rel = gather ? 1e-3f + 4.0f * FLT_EPSILON * (float)(W + 1) / w : 6e-3f;
                for (int c = 0; c < nch; c++)
                    if (fabsf(q[c] - cval[c]) > rel * fabsf(cval[c]) + 1e-30f)
                        FZ_FAIL("%s of a constant %g gives %.9g at (%d, %d), %dx%d, coc %g",
                                gather ? "gather" : "uniform scatter", cval[c], q[c], y, x, H, W,
                                coc[(ptrdiff_t)y * coc_row + x]);
            }
    }
done:
    free(coc);
    free(src_copy);
    free(coc_copy);
    fz_aperture_free(&ap);
    fz_buf_free(&src);
    fz_buf_free(&dst);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    return run(&in);
}
