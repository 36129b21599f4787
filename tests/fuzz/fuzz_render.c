/* libFuzzer harness of sd_render_layers: 1 to 4 entry sets of premultiplied RGBA with their own
 * CoC maps (zero to FLT_MAX of either sign), 1 to 40 slice centres (sorted as the Python layer
 * makes them, or in any order, with duplicates), a strided output view of 3 or 4 channels,
 * valid aperture tables, an optional background plate, and cancellation after a fuzzer-chosen
 * number of slices.
 *
 * The CoC maps and slice centres are clamped to +-(2 max(H, W) + 4) as render() does before it
 * calls the core; FUZZ_RAW_COC=1 in the environment passes them unclamped (sd_render_layers
 * then still has to be memory-safe, but see the note in tests/fuzz/README.md).
 *
 * Coverage (alpha) stays in [0, 1], as the Python layer makes it; colours may be anything finite.
 *
 * Checks: inputs unchanged, nothing outside the output view's first 3 channels written, every
 * output written, finite output for ordinary inputs, and a single opaque set of one colour
 * renders as that colour everywhere (whatever its CoC map; without a plate or with a plate of
 * the same colour; with a shape that covers its centre). */
#include "fuzz_common.h"

#define MAX_SETS 4

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static int run(fz_in *in)
{
    int H = fz_range(in, 1, 48), W = fz_range(in, 1, 48);
    uint8_t big = fz_u8(in);
    if (big == 0xfe) H = fz_range(in, 100, 200), W = fz_range(in, 1, 6);
    int nsets = fz_range(in, 1, MAX_SETS);
    int nslices = fz_range(in, 1, 40);
    uint8_t mode = fz_u8(in);
    int opaque_constant = (mode & 7) == 0; /* single opaque set, one colour */
    int wild = (mode >> 3) & 1;
    int sorted = ((mode >> 4) & 3) != 0;
    float coc_scale = (mode >> 6) == 0 ? 4.0f : (mode >> 6) == 1 ? 30.0f : (mode >> 6) == 2 ? 100.0f : 500.0f;
    if (opaque_constant) nsets = 1;
    int out_nch = (fz_u8(in) & 1) ? 4 : 3;

    size_t n = (size_t)H * (size_t)W;
    sd_layer_entries sets[MAX_SETS];
    float *rgba[MAX_SETS] = {0}, *cocs[MAX_SETS] = {0}, *copies[MAX_SETS] = {0};
    float *centres = NULL, *plate = NULL, *plate_copy = NULL;
    fz_aperture ap = {0};
    fz_buf out = {0};
    if (fz_buf_make(&out, in, H, W, out_nch, 3)) return 0;
    out.nch = out_nch;
    if (fz_aperture_make(&ap, in)) goto done;
    centres = malloc(sizeof(float) * (size_t)nslices);
    if (!centres) goto done;

    float col[3] = {fz_uniform(in, 0.0f, 2.0f), fz_uniform(in, 0.0f, 2.0f), fz_uniform(in, 0.0f, 2.0f)};
    int moderate = 1;
    float cmin = INFINITY, cmax = -INFINITY;
    float cap = (float)(2 * (H > W ? H : W) + 4);
    int raw = getenv("FUZZ_RAW_COC") != NULL;
    for (int s = 0; s < nsets; s++) {
        rgba[s] = malloc(sizeof(float) * 4 * n);
        cocs[s] = malloc(sizeof(float) * n);
        copies[s] = malloc(sizeof(float) * 5 * n);
        if (!rgba[s] || !cocs[s] || !copies[s]) goto done;
        for (size_t i = 0; i < n; i++) {
            float *p = rgba[s] + 4 * i;
            if (opaque_constant) {
                p[0] = col[0]; p[1] = col[1]; p[2] = col[2]; p[3] = 1.0f;
            } else if (wild) { /* any colour (premultiplied or not), coverage in [0, 1] */
                for (int c = 0; c < 3; c++) {
                    p[c] = fz_wild(in, 2.0f);
                    if (!(fabsf(p[c]) <= 1e6f)) moderate = 0;
                }
                p[3] = fz_unit(in);
            } else {
                float a = fz_unit(in);
                if (fz_u8(in) & 1) a = (fz_u8(in) & 1) ? 1.0f : 0.0f;
                p[3] = a;
                for (int c = 0; c < 3; c++) p[c] = a * fz_uniform(in, 0.0f, 3.0f);
            }
            float c = fz_wild(in, coc_scale);
            if (!raw) c = c > cap ? cap : c < -cap ? -cap : c;
            cocs[s][i] = c;
            if (c < cmin) cmin = c;
            if (c > cmax) cmax = c;
        }
        memcpy(copies[s], rgba[s], sizeof(float) * 4 * n);
        memcpy(copies[s] + 4 * n, cocs[s], sizeof(float) * n);
        sets[s].rgba = rgba[s];
        sets[s].coc = cocs[s];
    }
    if (sorted) { /* evenly spaced over the CoC range, descending, as the Python layer does */
        for (int k = 0; k < nslices; k++)
            centres[k] = nslices == 1 ? cmin : cmax - (float)((double)k * ((double)cmax - cmin) / (nslices - 1));
        if (((mode >> 4) & 3) == 2) /* or at fuzzer-chosen values, descending */
            for (int k = 0; k < nslices; k++) {
                float c = fz_wild(in, coc_scale);
                centres[k] = raw ? c : c > cap ? cap : c < -cap ? -cap : c;
            }
        qsort(centres, (size_t)nslices, sizeof(float), cmp_desc);
    } else {
        for (int k = 0; k < nslices; k++) {
            float c = fz_wild(in, coc_scale);
            centres[k] = raw ? c : c > cap ? cap : c < -cap ? -cap : c;
        }
    }
    uint8_t pm = fz_u8(in) % 3; /* 0: no plate, 1: plate of the set's colour, 2: any plate */
    if (pm) {
        plate = malloc(sizeof(float) * 3 * n);
        plate_copy = malloc(sizeof(float) * 3 * n);
        if (!plate || !plate_copy) goto done;
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) {
                plate[3 * i + c] = pm == 1 ? col[c] : wild ? fz_wild(in, 2.0f) : fz_uniform(in, 0.0f, 3.0f);
                if (!(fabsf(plate[3 * i + c]) <= 1e6f)) moderate = 0;
            }
        memcpy(plate_copy, plate, sizeof(float) * 3 * n);
    }
    float *cent_copy = malloc(sizeof(float) * (size_t)nslices);
    if (!cent_copy) goto done;
    memcpy(cent_copy, centres, sizeof(float) * (size_t)nslices);

    if (fz_verbose()) {
        fprintf(stderr, "render %dx%d sets %d slices %d out_nch %d mode 0x%02x plate %d\n", H, W, nsets, nslices,
                out_nch, mode, (int)pm);
        for (int s = 0; s < nsets; s++) {
            fz_dump("rgba", rgba[s], 4 * n);
            fz_dump("coc", cocs[s], n);
        }
        if (plate) fz_dump("plate", plate, 3 * n);
        fz_dump("centres", centres, (size_t)nslices);
        fz_dump_aperture(&ap.ap);
    }
    /* every pixel keeps some of its own light only when the shape covers its centre; with an
     * off-centre shape a pixel may receive nothing and render black */
    int centred = fz_aperture_covers_centre(&ap, 0.25f);
    int nthreads = fz_range(in, -1, 3);
    uint8_t cb = fz_u8(in);
    fz_cancel_ctx cctx = {0, cb < 16 ? cb % (nslices + 1) : -1};
    sd_cancel cancel = {fz_check, &cctx};
    sd_status st = sd_render_layers(H, W, sets, nsets, centres, nslices, &ap.ap, plate, fz_view(&out), nthreads,
                                    &cancel);

    for (int s = 0; s < nsets; s++)
        if (memcmp(copies[s], rgba[s], sizeof(float) * 4 * n) || memcmp(copies[s] + 4 * n, cocs[s], sizeof(float) * n))
            FZ_FAIL("entry set %d modified", s);
    if (memcmp(cent_copy, centres, sizeof(float) * (size_t)nslices)) FZ_FAIL("slice centres modified");
    free(cent_copy);
    if (plate && memcmp(plate_copy, plate, sizeof(float) * 3 * n)) FZ_FAIL("plate modified");
    /* only channels 0..2 of the view may change */
    out.nch = 3;
    size_t dmg = fz_buf_guard_damage(&out);
    out.nch = out_nch;
    if (dmg) FZ_FAIL("%zu floats written outside the output's 3 channels", dmg);
    if (cctx.stop_at >= 0 && cctx.stop_at < nslices) {
        if (st != SD_ERR_INTERRUPTED) FZ_FAIL("cancel ignored (status %d)", (int)st);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d for valid input", (int)st);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *q = fz_at(&out, y, x);
            for (int c = 0; c < 3; c++) {
                if (q[c] == FZ_GUARD) FZ_FAIL("output (%d, %d, %d) not written", y, x, c);
                if (moderate && !isfinite(q[c])) FZ_FAIL("non-finite output at (%d, %d, %d)", y, x, c);
                if (opaque_constant && sorted && pm != 2 && centred && fabsf(q[c] - col[c]) > 1e-3f * col[c] + 1e-6f)
                    FZ_FAIL("opaque constant %g renders as %.9g at (%d, %d), %dx%d, %d slices", col[c], q[c], y,
                            x, H, W, nslices);
            }
        }
done:
    for (int s = 0; s < MAX_SETS; s++) { free(rgba[s]); free(cocs[s]); free(copies[s]); }
    free(centres);
    free(plate);
    free(plate_copy);
    fz_aperture_free(&ap);
    fz_buf_free(&out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    return run(&in);
}
