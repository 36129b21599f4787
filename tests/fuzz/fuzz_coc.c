/* libFuzzer harness of the CoC kernels (sd_coc_fixed_fov, sd_coc_real_lens, sd_coc_disparity),
 * sd_find_nonfinite and sd_copy_scan: strided depth views (gaps, column-major, negative strides) holding
 * any float including NaN and inf (these kernels validate their input themselves), padded
 * output rows, lens parameters and clamps from the whole finite range (the focal length > 0,
 * as the Python layer ensures: with f <= 0 a depth of 0 counts as valid and gives 0/0).
 *
 * Checks: input unchanged, nothing outside the output rows' first W floats written, the
 * reported bad pixel is the first invalid one in row-major order, every valid pixel's output
 * matches the formula evaluated here in double precision, and |out| <= max_coc when clamping;
 * sd_copy_scan's copy holds the view's bits, nothing past it written, and its first non-finite
 * pixel and range (NaN left out) are those found here. */
#include "fuzz_common.h"

static float any_float(fz_in *in)
{
    uint8_t k = fz_u8(in);
    if (k == 0xf0) return NAN;
    if (k == 0xf1) return INFINITY;
    if (k == 0xf2) return -INFINITY;
    in->p--, in->n++; /* give the byte back to fz_wild */
    return fz_wild(in, 20.0f);
}

static int run(fz_in *in)
{
    int kind = fz_u8(in) % 3;
    int H = fz_range(in, 1, 40), W = fz_range(in, 1, 40);
    fz_buf d;
    if (fz_buf_make(&d, in, H, W, 1, 1)) return 0;
    int pad = fz_range(in, 0, 3);
    ptrdiff_t orow = W + pad;
    size_t nout = (size_t)(H - 1) * (size_t)orow + (size_t)W;
    float *out = malloc(sizeof(float) * nout), *dc = malloc(sizeof(float) * d.n);
    if (!out || !dc) goto done;
    for (size_t i = 0; i < nout; i++) out[i] = FZ_GUARD;
    uint8_t vmode = fz_u8(in);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            *fz_at(&d, y, x) = (vmode & 1) ? any_float(in) : fz_uniform(in, 0.05f, 200.0f);
    memcpy(dc, d.buf, sizeof(float) * d.n);
    double p1 = fz_wild(in, 1000.0f), p2 = fz_wild(in, 10.0f), p3 = fabsf(fz_wild(in, 0.2f));
    if (!(p3 > 0.0)) p3 = 1e-3; /* a focal length, > 0 as the Python layer ensures */
    double max_coc = (fz_u8(in) & 1) ? 0.0 : fz_wild(in, 100.0f);
    int nthreads = fz_range(in, -1, 3);
    ptrdiff_t bad = -12345;

    sd_status st;
    if (kind == 0) st = sd_coc_fixed_fov(H, W, d.base, d.row, d.pix, p1, p2, max_coc, out, orow, nthreads, &bad);
    else if (kind == 1) st = sd_coc_real_lens(H, W, d.base, d.row, d.pix, p1, p2, p3, max_coc, out, orow, nthreads, &bad);
    else st = sd_coc_disparity(H, W, d.base, d.row, d.pix, p1, p2, max_coc, out, orow, nthreads, &bad);

    if (memcmp(dc, d.buf, sizeof(float) * d.n)) FZ_FAIL("depth modified");
    ptrdiff_t first = -1;
    for (int y = 0; y < H && first < 0; y++)
        for (int x = 0; x < W; x++) {
            double z = *fz_at(&d, y, x);
            int ok = kind == 0 ? (isfinite(z) && z > 0.0) : kind == 1 ? (isfinite(z) && z > p3) : isfinite(z);
            if (!ok) { first = (ptrdiff_t)y * W + x; break; }
        }
    if (first >= 0) {
        if (st != SD_ERR_VALUE || bad != first) FZ_FAIL("first bad pixel %td, reported %td (status %d)", first, bad, (int)st);
    } else if (st != SD_OK) {
        FZ_FAIL("status %d without a bad pixel", (int)st);
    }
    for (int y = 0; y < H; y++)
        for (int i = W; i < W + pad && y < H - 1; i++)
            if (out[(ptrdiff_t)y * orow + i] != FZ_GUARD) FZ_FAIL("row padding written at row %d", y);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float o = out[(ptrdiff_t)y * orow + x];
            if (o == FZ_GUARD) FZ_FAIL("output (%d, %d) not written", y, x);
            double z = *fz_at(&d, y, x);
            int ok = kind == 0 ? (isfinite(z) && z > 0.0) : kind == 1 ? (isfinite(z) && z > p3) : isfinite(z);
            if (!ok) {
                if (o != 0.0f) FZ_FAIL("invalid pixel (%d, %d) gives %g, not 0", y, x, o);
                continue;
            }
            double c = kind == 0 ? p1 * (p2 - 1.0 / z) : kind == 1 ? p1 * (z - p2) / z : p1 * (p2 - z);
            if (max_coc > 0) c = c > max_coc ? max_coc : c < -max_coc ? -max_coc : c;
            if (max_coc > 0 && !(fabsf(o) <= (float)max_coc)) FZ_FAIL("|%g| above max_coc %g", o, max_coc);
            if (isfinite(c) && fabs(c) < 1e38) {
                if (!(fabs((double)o - c) <= 1e-6 * fabs(c) + 1e-38))
                    FZ_FAIL("kind %d z=%.9g p=(%g, %g, %g) max %g: %.9g != %.9g", kind, z, p1, p2, p3, max_coc, o, c);
            }
        }
    /* the non-finite finder on the same view */
    ptrdiff_t nf = sd_find_nonfinite(H, W, fz_cview(&d), 1 + (int)(H % 3)), want = -1;
    for (int y = 0; y < H && want < 0; y++)
        for (int x = 0; x < W; x++)
            if (!isfinite(*fz_at(&d, y, x))) { want = (ptrdiff_t)y * W + x; break; }
    if (nf != want) FZ_FAIL("sd_find_nonfinite %td, expected %td", nf, want);
    /* the copy and scan of the same view, into a packed map with a guard after it (or no copy) */
    int copy = fz_u8(in) & 1;
    float *packed = malloc(sizeof(float) * ((size_t)H * W + 1));
    if (!packed) goto done;
    for (size_t i = 0; i <= (size_t)H * W; i++) packed[i] = FZ_GUARD;
    float lo = 0.0f, hi = 0.0f, want_lo = INFINITY, want_hi = -INFINITY;
    ptrdiff_t cs = sd_copy_scan(H, W, fz_cview(&d), copy ? packed : NULL, &lo, &hi, 1 + (int)(W % 3));
    if (memcmp(dc, d.buf, sizeof(float) * d.n)) FZ_FAIL("sd_copy_scan modified its input");
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float f = *fz_at(&d, y, x), o = packed[(ptrdiff_t)y * W + x];
            if (copy ? memcmp(&f, &o, sizeof f) != 0 : o != FZ_GUARD)
                FZ_FAIL("sd_copy_scan (%d, %d): %g, view %g (copy %d)", y, x, o, f, copy);
            if (f < want_lo) want_lo = f;
            if (f > want_hi) want_hi = f;
        }
    if (packed[(size_t)H * W] != FZ_GUARD) FZ_FAIL("sd_copy_scan wrote past the map");
    if (cs != want) FZ_FAIL("sd_copy_scan first non-finite %td, expected %td", cs, want);
    if (lo != want_lo || hi != want_hi)
        FZ_FAIL("sd_copy_scan range [%g, %g], expected [%g, %g]", lo, hi, want_lo, want_hi);
    free(packed);
done:
    free(out);
    free(dc);
    fz_buf_free(&d);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    return run(&in);
}
