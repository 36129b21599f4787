/* libFuzzer harness of the refine stage's per-pixel passes (csrc/sd_refine_maps.h): the guide's
 * sRGB encoding and integer scaling (and the highlights' indices), disparity in and out (and
 * sd_agreeing, the noisy depth's own values its smoothing agrees with; sd_median_sampled, the
 * median of a selection of them; sd_take_grid, the samples of an image), the noise estimate, the
 * band beside the matte's boundary, and the fills' weighing and normalising (sd_edge_fill and its
 * steps).
 *
 * Frames from 1x1 to 40x40 (or long strips), values ordinary or wild (zeros of both signs,
 * denormals, FLT_MAX, NaN and inf where the Python layer passes them: depth may hold any value).
 * Checks: inputs unchanged, outputs written exactly (buffers of the exact size, so ASan sees any
 * access past them), and each result against a direct computation here: the sRGB formula, the
 * disparity rule, a sort-based median, a brute-force square window, the weighted products and
 * quotients; the whole fill against its steps called one by one. sd_continue_sides (each side
 * of the matte's boundary continued in place, csrc/sd_refine_sides.h): depth outside the band
 * unchanged, inside it either unchanged or its side's continuation (the fill computed here; for a
 * band of 8 px or more, whose fills run on coarser cells: within its side's range), without kept
 * depth exactly where the rule says. sd_matte_ramp (the matte's soft ramp from the colours,
 * csrc/sd_refine_matte.h): the matte unchanged outside its ramp, alpha in [0, 1] and at most
 * grown_max outside the mask, the same bits from linear light as from its encoded guide.
 * sd_cell_means: each cell's weighted mean (1 to 4 channels) and mean weight against sums in double
 * here, each channel's bits those of that channel alone; then sd_enlargement_fits on an
 * enlargement made here, and on it with one pixel moved.
 * sd_blurred_steps (csrc/sd_refine_steps.h): its flags against a brute-force plane fit; sd_step_fill
 * on them: the unstepped pixels unchanged, the stepped ones within the range of the rest. */
#include "fuzz_common.h"
#include "sd_refine_maps.h"
#include "sd_refine_matte.h"
#include "sd_refine_sides.h"
#include "sd_refine_steps.h"

static float any_value(fz_in *in, int wild)
{
    if (!wild) return fz_uniform(in, -0.2f, 2.0f);
    uint8_t k = fz_u8(in);
    if (k == 0xff) return NAN;
    if (k == 0xfe) return INFINITY;
    if (k == 0xfd) return -INFINITY;
    return fz_wild(in, 2.0f);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }
/* The same bits, except that a zero may have either sign: a fill cut to a box and the same fill
 * over a wider one sum their terms from different starts, and a sum of underflowed terms (-0 and
 * +0) takes its sign from the first. */
static int same_or_zero(float a, float b) { return same_bits(a, b) || (a == 0.0f && b == 0.0f); }

static void run_srgb(fz_in *in, int wild)
{
    size_t n = (size_t)fz_range(in, 0, 600);
    float *lin = malloc(sizeof(float) * (n ? n : 1)), *out = malloc(sizeof(float) * (n ? n : 1));
    float *copy = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        lin[i] = any_value(in, wild);
        if (!isfinite(lin[i])) lin[i] = 0.5f; /* the guide's image is checked finite first */
    }
    memcpy(copy, lin, sizeof(float) * n);
    int nt = fz_range(in, -1, 3);
    if (sd_srgb_encode_base(n, lin, out, nt) != SD_OK) FZ_FAIL("base refused");
    for (size_t i = 0; i < n; i++)
        if (!(out[i] >= 0.0031308f && out[i] <= 1.0f)) FZ_FAIL("base %g at %zu", out[i], i);
    if (sd_srgb_encode_finish(n, lin, out, nt) != SD_OK) FZ_FAIL("finish refused");
    if (memcmp(copy, lin, sizeof(float) * n)) FZ_FAIL("input modified");
    for (size_t i = 0; i < n; i++) {
        float x = lin[i] < 0.0f ? 0.0f : lin[i] > 1.0f ? 1.0f : lin[i];
        if (x <= 0.0031308f) {
            if (!same_bits(out[i] + 0.0f, 12.92f * x + 0.0f)) FZ_FAIL("srgb(%g) = %g, want %g", lin[i], out[i], 12.92f * x);
        } else {
            /* the power within 3 ulp, then 1.055 p - 0.055 */
            double want = 1.055 * pow((double)x, 1.0 / 2.4) - 0.055;
            if (!(fabs(out[i] - want) <= 6e-7)) FZ_FAIL("srgb(%g) = %.9g, want %.9g", lin[i], out[i], want);
        }
        if (!(out[i] >= 0.0f && out[i] <= 1.0000001f)) FZ_FAIL("srgb(%g) = %g outside [0, 1]", lin[i], out[i]);
    }
    if (sd_srgb_encode_base(n, NULL, out, nt) != SD_ERR_ARG) FZ_FAIL("NULL accepted");
    /* the highlights' indices (sd_count_above, sd_list_above) over the values, any of them (NaN
     * too), in chunks of 1 to 64: against a plain scan */
    for (size_t i = 0; i < n; i++) copy[i] = any_value(in, wild);
    float thr = fz_uniform(in, -0.5f, 2.5f);
    size_t chunk = (size_t)fz_range(in, 1, 64), nchunks = (n + chunk - 1) / chunk, total = 0, at = 0;
    size_t *counts = malloc(sizeof(size_t) * (nchunks ? nchunks : 1));
    if (sd_count_above(n, copy, thr, chunk, counts, nt) != SD_OK) FZ_FAIL("count_above refused");
    for (size_t c = 0; c < nchunks; c++) { /* counts to each chunk's start */
        size_t k = counts[c];
        counts[c] = total;
        total += k;
    }
    int64_t *idx = malloc(sizeof(int64_t) * (total ? total : 1));
    if (sd_list_above(n, copy, thr, chunk, counts, idx, nt) != SD_OK) FZ_FAIL("list_above refused");
    for (size_t i = 0; i < n; i++)
        if (copy[i] > thr && (at >= total || idx[at++] != (int64_t)i)) FZ_FAIL("index %zu above %g not listed", i, thr);
    if (at != total) FZ_FAIL("%zu indices listed, %zu above", total, at);
    if (sd_count_above(n, copy, thr, 0, counts, nt) != SD_ERR_ARG) FZ_FAIL("chunk 0 accepted");
    free(counts); free(idx);
    free(lin); free(out); free(copy);

    size_t m = (size_t)fz_range(in, 1, 300);
    int bytes = fz_range(in, 0, 3);
    uint16_t *src = malloc(sizeof(uint16_t) * m);
    float *f = malloc(sizeof(float) * m);
    for (size_t i = 0; i < m; i++) src[i] = (uint16_t)(fz_u8(in) << 8 | fz_u8(in));
    sd_status st = sd_unorm_to_float(m, src, bytes, f, nt); /* uint8: the first m of the 2m bytes */
    if (bytes != 1 && bytes != 2) {
        if (st != SD_ERR_ARG) FZ_FAIL("unorm_to_float took %d bytes", bytes);
    } else {
        const uint8_t *b = (const uint8_t *)src;
        for (size_t i = 0; i < m; i++) {
            float want = bytes == 2 ? (float)src[i] * (float)(1.0 / 65535.0) : (float)b[i] * (float)(1.0 / 255.0);
            if (!same_bits(f[i], want) || !(f[i] >= 0.0f && f[i] <= 1.0f)) FZ_FAIL("unorm %zu -> %g", i, f[i]);
        }
    }
    free(src); free(f);
}

static void run_disparity(fz_in *in, int wild)
{
    size_t n = (size_t)fz_range(in, 1, 500);
    int is_disp = fz_u8(in) & 1, masked = fz_u8(in) & 1, nt = fz_range(in, -1, 3);
    float *d = malloc(sizeof(float) * n), *q = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
    float *o = malloc(sizeof(float) * n);
    uint8_t *inv = malloc(n);
    for (size_t i = 0; i < n; i++) {
        d[i] = any_value(in, wild);
        inv[i] = fz_u8(in) < 30;
    }
    size_t nvalid = 12345, want = 0;
    if (sd_disparity_in(n, d, masked ? inv : NULL, is_disp, q, w, &nvalid, nt) != SD_OK) FZ_FAIL("refused");
    for (size_t i = 0; i < n; i++) {
        float v = is_disp ? d[i] : 1.0f / d[i];
        int ok = isfinite(d[i]) && d[i] > 0.0f && isfinite(v) && !(masked && inv[i]);
        want += (size_t)ok;
        float wq = ok ? v : 0.0f;
        if (!same_bits(q[i], wq) || w[i] != (ok ? 1.0f : 0.0f)) FZ_FAIL("depth %g -> %g, %g", d[i], q[i], w[i]);
    }
    if (nvalid != want) FZ_FAIL("%zu valid, counted %zu", nvalid, want);
    if (sd_disparity_out(n, q, is_disp, o, nt) != SD_OK) FZ_FAIL("out refused");
    for (size_t i = 0; i < n; i++) {
        float v = q[i] > FLT_MIN ? q[i] : FLT_MIN;
        float want_o = is_disp ? v : 1.0f / v;
        if (!same_bits(o[i], want_o)) FZ_FAIL("disparity %g -> %g, want %g", q[i], o[i], want_o);
        if (!(o[i] > 0.0f) || !isfinite(o[i])) FZ_FAIL("result %g not finite and positive", o[i]);
    }
    if (sd_disparity_in(n, d, NULL, 0, q, w, NULL, nt) != SD_ERR_ARG) FZ_FAIL("NULL count accepted");
    /* sd_agreeing: q (the input's disparity, 0 where invalid) against a smoothing of it (any
     * values, d reused), kept 2 exactly where valid and within the limit */
    float limit = wild ? any_value(in, 1) : fz_uniform(in, 0.0f, 0.1f);
    uint8_t *kept = malloc(n);
    if (sd_agreeing(n, d, q, w, limit, kept, nt) != SD_OK) FZ_FAIL("agreeing refused");
    for (size_t i = 0; i < n; i++) {
        int want_k = w[i] > 0.0f && fabsf(d[i] - q[i]) / q[i] <= limit;
        if (kept[i] != (want_k ? 2 : 0)) FZ_FAIL("kept %d for %g against %g (limit %g)", kept[i], d[i], q[i], limit);
    }
    if (sd_agreeing(n, d, q, NULL, limit, kept, nt) != SD_ERR_ARG) FZ_FAIL("agreeing: NULL weight accepted");
    free(kept);
    /* sd_median_sampled: of d (or |d - q| / q) at every step-th value where w > 0 (or all),
     * against a sort here: the middle value or the two middle ones' float32 sum halved, NaN where
     * one is NaN or none is selected */
    size_t step = (size_t)fz_range(in, 1, 9), m = 0;
    int use_ref = fz_u8(in) & 1, use_weight = fz_u8(in) & 1, any_nan = 0;
    float *sel = malloc(sizeof(float) * n), median = 0.0f;
    for (size_t i = 0; i < n; i += step) {
        if (use_weight && !(w[i] > 0.0f)) continue;
        float x = use_ref ? fabsf(d[i] - q[i]) / q[i] : d[i];
        any_nan |= x != x;
        sel[m++] = x;
    }
    if (sd_median_sampled(n, step, d, use_ref ? q : NULL, use_weight ? w : NULL, &median, nt) != SD_OK)
        FZ_FAIL("median refused");
    if (any_nan || !m) {
        if (median == median) FZ_FAIL("median %g of %zu values (NaN among them: %d)", median, m, any_nan);
    } else {
        qsort(sel, m, sizeof(float), cmp_float);
        float want_m = m % 2 ? sel[m / 2] : (sel[m / 2 - 1] + sel[m / 2]) / 2.0f;
        if (!(median == want_m) && !(median != median && want_m != want_m))
            FZ_FAIL("median %.9g of %zu values, want %.9g", median, m, want_m);
    }
    if (sd_median_sampled(n, 0, d, NULL, NULL, &median, nt) != SD_ERR_ARG) FZ_FAIL("median: step 0 accepted");
    free(sel);
    /* sd_take_grid: d as an (rows, n / rows, 1) image, q's values as rows and columns (some
     * outside: refused) */
    int rows = fz_range(in, 1, (int)n), cols = (int)(n / (size_t)rows), gh = fz_range(in, 1, 6), gw = fz_range(in, 1, 6);
    int64_t ys[6], xs[6];
    int outside = 0;
    for (int j = 0; j < gh; j++) outside |= (ys[j] = fz_range(in, -1, rows)) < 0 || ys[j] >= rows;
    for (int i = 0; i < gw; i++) outside |= (xs[i] = fz_range(in, -1, cols)) < 0 || xs[i] >= cols;
    float grid[36];
    sd_status gst = sd_take_grid(rows, cols, 1, d, gh, ys, gw, xs, grid, nt);
    if (outside) {
        if (gst != SD_ERR_VALUE) FZ_FAIL("take_grid took a row or column outside");
    } else {
        if (gst != SD_OK) FZ_FAIL("take_grid refused");
        for (int j = 0; j < gh; j++)
            for (int i = 0; i < gw; i++)
                if (!same_bits(grid[j * gw + i], d[ys[j] * cols + xs[i]])) FZ_FAIL("take_grid at %d, %d", j, i);
    }
    free(d); free(q); free(w); free(o); free(inv);
}

static void run_noise(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 40), W = fz_range(in, 1, 40), nt = fz_range(in, -1, 3);
    size_t n = (size_t)H * (size_t)W;
    float *q = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
    float *vals = malloc(sizeof(float) * n);
    uint8_t holes = fz_u8(in);
    int row_step = fz_range(in, 1, 4);
    for (size_t i = 0; i < n; i++) {
        q[i] = wild ? fabsf(any_value(in, 1)) : fz_uniform(in, 0.5f, 1.5f);
        if (q[i] != q[i]) q[i] = 1.0f; /* disparity is never NaN */
        w[i] = fz_u8(in) < holes ? 0.0f : 1.0f;
    }
    size_t m = 0;
    int has_nan = 0;
    for (int y = 1; y + 1 < H; y += row_step)
        for (int x = 1; x + 1 < W; x++) {
            float acc = 0.0f;
            int ok = 1;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    acc += q[(y + dy) * W + x + dx];
                    ok &= w[(y + dy) * W + x + dx] >= 1.0f;
                }
            if (!ok) continue;
            float c = q[y * W + x];
            float r = fabsf(c - acc / 9.0f) / fmaxf(fabsf(c), 1e-30f);
            has_nan |= r != r;
            vals[m++] = r;
        }
    double median = 0.0; /* NaN with a NaN; 0 counted for no value; an even count's in double */
    if (m && has_nan) {
        median = NAN;
    } else if (m) {
        qsort(vals, m, sizeof(float), cmp_float);
        median = m % 2 ? vals[m / 2] : ((double)vals[m / 2 - 1] + (double)vals[m / 2]) / 2.0;
    }
    /* thresholds at the median, beside it (one ulp either way), at a value and at random */
    double thresholds[5] = {median, nextafter(median, -INFINITY), nextafter(median, INFINITY),
                            m ? vals[fz_range(in, 0, (int)m - 1)] : 0.0, fz_uniform(in, -0.01f, 0.05f)};
    for (int t = 0; t < 5; t++) {
        if (thresholds[t] != thresholds[t]) continue;
        int above = -1;
        size_t count = 0;
        if (sd_noise_above(H, W, q, w, thresholds[t], row_step, &above, &count, nt) != SD_OK) FZ_FAIL("refused");
        if (sd_noise_above(H, W, q, w, thresholds[t], 0, &above, &count, nt) != SD_ERR_ARG) FZ_FAIL("row step 0 taken");
        if (count != m) FZ_FAIL("count %zu, want %zu", count, m);
        if (above != (median > thresholds[t]))
            FZ_FAIL("above %d for median %.17g and threshold %.17g (of %zu)", above, median, thresholds[t], m);
    }
    free(q); free(w); free(vals);
}

static void run_band(fz_in *in)
{
    int H = fz_range(in, 1, 40), W = fz_range(in, 1, 40), r = fz_range(in, -1, 45), nt = fz_range(in, -1, 3);
    uint8_t kind = fz_u8(in);
    if (kind == 0xfe) H = fz_range(in, 1, 2), W = fz_range(in, 100, 900);
    size_t n = (size_t)H * (size_t)W;
    float *m = malloc(sizeof(float) * n), *m2 = malloc(sizeof(float) * n);
    uint8_t *side = malloc(n), *near = malloc(n);
    int cy = fz_range(in, 0, H), cx = fz_range(in, 0, W), ry = fz_range(in, 0, H), rx = fz_range(in, 0, W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float inside = abs(y - cy) <= ry / 2 && abs(x - cx) <= rx / 2 ? 1.0f : 0.0f;
            m[y * W + x] = kind & 1 ? fz_unit(in) : inside;
            m2[y * W + x] = kind & 2 ? (fz_u8(in) == 7 ? NAN : fz_unit(in)) : inside;
        }
    int box[4] = {-7, -7, -7, -7};
    int two = kind & 4;
    sd_status st = sd_band_near(H, W, m, two ? m2 : NULL, r, side, near, box, nt);
    if (r < 0) {
        if (st != SD_ERR_ARG) FZ_FAIL("radius %d accepted", r);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d", (int)st);
    int by0 = H, by1 = -1, bx0 = W, bx1 = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            int s = m[i] >= 0.5f && (two ? m2[i] : m[i]) >= 0.5f;
            if (side[i] != s) FZ_FAIL("side %d at %d,%d", side[i], y, x);
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int want = 0;
            for (int v = y - r < 0 ? 0 : y - r; v <= y + r && v < H && !want; v++)
                for (int u = x - r < 0 ? 0 : x - r; u <= x + r && u < W; u++)
                    if (side[(size_t)v * W + u] != side[(size_t)y * W + x]) {
                        want = 1;
                        break;
                    }
            if (near[(size_t)y * W + x] != want) FZ_FAIL("near %d at %d,%d (radius %d)", near[(size_t)y * W + x], y, x, r);
            if (want) {
                if (y < by0) by0 = y;
                if (y > by1) by1 = y;
                if (x < bx0) bx0 = x;
                if (x > bx1) bx1 = x;
            }
        }
    if (box[0] != by0 || box[1] != by1 || box[2] != bx0 || box[3] != bx1)
        FZ_FAIL("box %d %d %d %d, want %d %d %d %d", box[0], box[1], box[2], box[3], by0, by1, bx0, bx1);
done:
    free(m); free(m2); free(side); free(near);
}

static void run_fill(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 30), W = fz_range(in, 1, 30), C = fz_range(in, 1, 4), nt = fz_range(in, -1, 3);
    int pad = fz_range(in, 0, 5); /* values' rows are a box cut from wider ones */
    ptrdiff_t vrow = (ptrdiff_t)(W + pad) * C, wrow = W + pad;
    size_t nv = (size_t)(H - 1) * (size_t)vrow + (size_t)W * C, nw = (size_t)(H - 1) * (size_t)wrow + (size_t)W;
    size_t n = (size_t)H * (size_t)W;
    float *v = malloc(sizeof(float) * nv), *w = malloc(sizeof(float) * nw);
    float *buf = malloc(sizeof(float) * n * (size_t)(C + 1)), *out = malloc(sizeof(float) * n * (size_t)C);
    uint8_t *todo = malloc(n), *todo0 = malloc(n);
    for (size_t i = 0; i < nv; i++) v[i] = any_value(in, wild);
    for (size_t i = 0; i < nw; i++) w[i] = fz_u8(in) & 1 ? fz_unit(in) : 0.0f;
    if (sd_fill_weigh(H, W, C, v, vrow, w, wrow, buf, nt) != SD_OK) FZ_FAIL("weigh refused");
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *o = buf + ((size_t)y * W + x) * (size_t)(C + 1);
            float wt = w[y * wrow + x];
            for (int k = 0; k < C; k++)
                if (!same_bits(o[k], v[y * vrow + x * C + k] * wt) && !(o[k] != o[k]))
                    FZ_FAIL("weighed %g at %d,%d,%d", o[k], y, x, k);
            if (!same_bits(o[C], wt)) FZ_FAIL("weight %g at %d,%d", o[C], y, x);
        }
    if (sd_fill_weigh(H, W, C, v, (ptrdiff_t)W * C - 1, w, wrow, buf, nt) != SD_ERR_ARG) FZ_FAIL("short rows");
    for (size_t i = 0; i < n * (size_t)(C + 1); i++)
        if (fz_u8(in) & 1) buf[i] = any_value(in, wild);
    for (size_t i = 0; i < n; i++) todo0[i] = todo[i] = fz_u8(in) & 1;
    for (size_t i = 0; i < n * (size_t)C; i++) out[i] = FZ_GUARD;
    float min_w = fz_uniform(in, 0.0f, 0.5f);
    size_t left = 99;
    if (sd_fill_take(H, W, C, buf, todo, W, min_w, out, (ptrdiff_t)W * C, &left, nt) != SD_OK) FZ_FAIL("take refused");
    size_t want_left = 0;
    for (size_t i = 0; i < n; i++) {
        float den = buf[i * (size_t)(C + 1) + C];
        int take = todo0[i] && den > min_w;
        if (todo[i] != (todo0[i] && !take)) FZ_FAIL("todo %d at %zu", todo[i], i);
        want_left += todo[i];
        for (int k = 0; k < C; k++) {
            float o = out[i * (size_t)C + k], want = take ? buf[i * (size_t)(C + 1) + k] / den : FZ_GUARD;
            if (!same_bits(o, want) && !(o != o && want != want)) FZ_FAIL("took %g, want %g at %zu", o, want, i);
        }
    }
    if (left != want_left) FZ_FAIL("left %zu, want %zu", left, want_left);
    free(v); free(w); free(buf); free(out); free(todo); free(todo0);
}

/* sd_fill_boxes against the rule: every todo pixel in exactly one box that reaches `margin` pixels
 * beyond it (or the frame's edge), the boxes apart and inside the frame, under half its area. */
static void check_boxes(int H, int W, const uint8_t *todo, int margin, int boxes[][4], int nb)
{
    double area = 0.0;
    for (int b = 0; b < nb; b++) {
        const int *bx = boxes[b];
        if (bx[0] < 0 || bx[1] > H || bx[2] < 0 || bx[3] > W || bx[0] >= bx[1] || bx[2] >= bx[3])
            FZ_FAIL("box %d: rows %d-%d, columns %d-%d of %dx%d", b, bx[0], bx[1], bx[2], bx[3], H, W);
        area += (double)(bx[1] - bx[0]) * (bx[3] - bx[2]);
        for (int c = b + 1; c < nb; c++)
            if (bx[0] < boxes[c][1] && boxes[c][0] < bx[1] && bx[2] < boxes[c][3] && boxes[c][2] < bx[3])
                FZ_FAIL("boxes %d and %d overlap", b, c);
    }
    if (nb && !(area * 2.0 < (double)H * W)) FZ_FAIL("boxes cover %g of %d pixels", area, H * W);
    for (int y = 0; y < H && nb; y++)
        for (int x = 0; x < W; x++) {
            if (!todo[(size_t)y * W + x]) continue;
            int in = 0;
            for (int b = 0; b < nb; b++) {
                const int *bx = boxes[b];
                if (y < bx[0] || y >= bx[1] || x < bx[2] || x >= bx[3]) continue;
                in++;
                int lo_y = y - margin > 0 ? y - margin : 0, hi_y = y + margin + 1 < H ? y + margin + 1 : H;
                int lo_x = x - margin > 0 ? x - margin : 0, hi_x = x + margin + 1 < W ? x + margin + 1 : W;
                if (bx[0] > lo_y || bx[1] < hi_y || bx[2] > lo_x || bx[3] < hi_x)
                    FZ_FAIL("box %d does not reach %d px beyond %d,%d", b, margin, y, x);
            }
            if (in != 1) FZ_FAIL("todo pixel %d,%d in %d boxes", y, x, in);
        }
}

/* sd_edge_fill against its steps called one by one here (weigh, filter, take, widen; on the
 * boxes around the pixels left where sd_fill_boxes gives any, checked against its rule). */
static void run_edge_fill(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 40), W = fz_range(in, 1, 40), C = fz_range(in, 1, 4), nt = fz_range(in, -1, 3);
    int K = fz_range(in, 0, 3), widen = fz_range(in, 0, 17);
    double sigma_s = 0.2 + 20.0 * fz_unit(in), sigma_r = 0.01 + fz_unit(in);
    size_t n = (size_t)H * (size_t)W;
    float *v = malloc(sizeof(float) * n * (size_t)C), *w = malloc(sizeof(float) * n);
    float *g = malloc(sizeof(float) * n * 3), *buf = malloc(sizeof(float) * n * (size_t)(C + 1));
    float *out = malloc(sizeof(float) * n * (size_t)C), *ref = malloc(sizeof(float) * n * (size_t)C);
    float *gb = malloc(sizeof(float) * n * 3);
    int(*boxes)[4] = malloc(sizeof(int[4]) * SD_FILL_MAX_BOXES);
    uint8_t *todo = malloc(n), *rtodo = malloc(n);
    uint8_t holes = fz_u8(in);
    for (size_t i = 0; i < n * (size_t)C; i++) v[i] = wild ? fz_wild(in, 2.0f) : fz_uniform(in, 0.1f, 2.0f);
    for (size_t i = 0; i < n; i++) w[i] = fz_u8(in) < holes ? 0.0f : 1.0f;
    for (size_t i = 0; i < n * 3; i++) g[i] = fz_unit(in);
    for (size_t i = 0; i < n; i++) todo[i] = rtodo[i] = fz_u8(in) & 1;
    for (size_t i = 0; i < n * (size_t)C; i++) out[i] = ref[i] = 0.0f;
    size_t left = 0, rleft = 0;
    sd_status st = sd_edge_fill(H, W, C, v, (ptrdiff_t)W * C, w, W, K ? g : NULL, K, sigma_s, sigma_r, 3, widen,
                                1e-4f, todo, out, &left, nt);
    if (widen < 1 || widen > 16) {
        if (st != SD_ERR_ARG) FZ_FAIL("widenings %d accepted", widen);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("edge_fill status %d", (int)st);
    for (size_t i = 0; i < n; i++) rleft += rtodo[i];
    for (int k = 0; k < widen && rleft; k++) {
        size_t before = rleft;
        double sigma = sigma_s * pow(4.0, k);
        int margin = sd_fill_margin(sigma, H, W), nb = sd_fill_boxes(H, W, rtodo, margin, boxes);
        check_boxes(H, W, rtodo, margin, boxes, nb);
        if (!nb) {
            if (sd_fill_weigh(H, W, C, v, (ptrdiff_t)W * C, w, W, buf, 1) != SD_OK) FZ_FAIL("weigh");
            if (sd_edge_filter(H, W, C + 1, buf, K ? g : NULL, K, sigma, sigma_r, 3, 1) != SD_OK) FZ_FAIL("filter");
            if (sd_fill_take(H, W, C, buf, rtodo, W, 1e-4f, ref, (ptrdiff_t)W * C, &rleft, 1) != SD_OK)
                FZ_FAIL("take");
        } else {
            rleft = 0;
            for (int b = 0; b < nb; b++) {
                int y0 = boxes[b][0], x0 = boxes[b][2], h = boxes[b][1] - y0, bw = boxes[b][3] - x0;
                size_t l;
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < bw * K; x++) gb[(size_t)y * bw * K + x] = g[((size_t)(y0 + y) * W + x0) * K + x];
                if (sd_fill_weigh(h, bw, C, v + ((size_t)y0 * W + x0) * C, (ptrdiff_t)W * C, w + (size_t)y0 * W + x0, W,
                                  buf, 1) != SD_OK)
                    FZ_FAIL("weigh");
                if (sd_edge_filter(h, bw, C + 1, buf, K ? gb : NULL, K, sigma, sigma_r, 3, 1) != SD_OK) FZ_FAIL("filter");
                if (sd_fill_take(h, bw, C, buf, rtodo + (size_t)y0 * W + x0, W, 1e-4f, ref + ((size_t)y0 * W + x0) * C,
                                 (ptrdiff_t)W * C, &l, 1) != SD_OK)
                    FZ_FAIL("take");
                rleft += l;
            }
        }
        if (K && k > 0 && rleft == before) break; /* guided: walled in, no further widening */
    }
    if (left != rleft || memcmp(todo, rtodo, n)) FZ_FAIL("%zu left, want %zu", left, rleft);
    for (size_t i = 0; i < n * (size_t)C; i++)
        if (!same_bits(out[i], ref[i]) && !(out[i] != out[i] && ref[i] != ref[i]))
            FZ_FAIL("filled %g, want %g at %zu", out[i], ref[i], i);
done:
    free(v); free(w); free(g); free(gb); free(boxes); free(buf); free(out); free(ref); free(todo); free(rtodo);
}

/* sd_continue_sides on a box cut from wider rows: masks of random sides and bands, kept depth
 * none, all or some, values ordinary or wild; bands under 8 px (the fills on the pixels: the
 * continuation computed here, bit for bit) and wider (the fills on cells of band / 4 px: a
 * replaced pixel takes a weighted mean of its side's depth beyond the band, within its range). */
static void run_sides(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 40), W = fz_range(in, 1, 40), nt = fz_range(in, -1, 3), pad = fz_range(in, 0, 4);
    sd_sides_params p;
    p.band = fz_u8(in) & 1 ? fz_range(in, 0, 7) : fz_range(in, 8, 40);
    p.tolerance = fz_u8(in) & 1 ? 0.005f : fz_unit(in);
    p.ring_px = fz_range(in, 0, 3);
    p.blur_pull = fz_unit(in);
    p.beyond_pull = 1.0f + fz_unit(in);
    p.blurred_share = fz_unit(in);
    p.min_weight = 1e-4f;
    p.iterations = fz_range(in, 1, 4);
    p.widenings = fz_range(in, 1, 9);
    uint8_t kept_mode = fz_u8(in) % 3;
    ptrdiff_t qrow = W + pad, mrow = W + fz_range(in, 0, 4);
    size_t nq = (size_t)(H - 1) * (size_t)qrow + (size_t)W, nm = (size_t)(H - 1) * (size_t)mrow + (size_t)W;
    size_t n = (size_t)H * (size_t)W;
    float *q = malloc(sizeof(float) * nq), *qc = malloc(sizeof(float) * nq);
    float *wf = malloc(sizeof(float) * n), *wb = malloc(sizeof(float) * n), *buf = malloc(sizeof(float) * n * 2);
    float *fg = calloc(n, sizeof(float)), *bg = calloc(n, sizeof(float));
    uint8_t *side = malloc(nm), *near = malloc(nm), *kept = malloc(nm), *todo = malloc(n);
    for (size_t i = 0; i < nq; i++) qc[i] = q[i] = wild ? any_value(in, 1) : fz_uniform(in, 0.05f, 2.0f);
    for (size_t i = 0; i < nm; i++) {
        uint8_t b = fz_u8(in);
        side[i] = b & 1;
        near[i] = (b >> 1) & 1;
        kept[i] = kept_mode == 2 ? ((b >> 2) & 3) % 3 : kept_mode; /* 2: kept only beyond both sides */
    }
    sd_status st = sd_continue_sides(H, W, q, qrow, side, near, kept, mrow, &p, nt);
    for (int y = 0; y < H; y++)
        for (ptrdiff_t x = 0; x < (y < H - 1 ? qrow : W); x++) {
            size_t i = (size_t)y * (size_t)qrow + (size_t)x;
            if ((x >= W || !near[(size_t)y * mrow + x] || st != SD_OK) && !same_bits(q[i], qc[i]))
                FZ_FAIL("q modified at %d,%d outside the band", y, (int)x);
        }
    if (p.band < 1 || p.iterations > 16) {
        if (st != SD_ERR_ARG) FZ_FAIL("band %d accepted", p.band);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("continue_sides status %d", (int)st);
    /* each side's weight, and the range of its depth beyond the band */
    int any_fg = 0, any_bg = 0, finite = 1;
    float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x, m = (size_t)y * mrow + x;
            float v = qc[(size_t)y * qrow + x];
            wf[i] = side[m] && !near[m];
            wb[i] = !side[m] && !near[m];
            any_fg |= wf[i] > 0.0f;
            any_bg |= wb[i] > 0.0f;
            finite &= isfinite(v);
            if (!near[m]) {
                int k = side[m] ? 0 : 1;
                lo[k] = v < lo[k] ? v : lo[k];
                hi[k] = v > hi[k] ? v : hi[k];
            }
        }
    if (p.band >= 8) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t m = (size_t)y * mrow + x, i = (size_t)y * qrow + x;
                if (same_bits(q[i], qc[i]) || (q[i] != q[i] && qc[i] != qc[i])) continue;
                int k = side[m] ? 0 : 1;
                float slack = 1e-4f * fmaxf(fabsf(lo[k]), fabsf(hi[k])) + 1e-37f; /* denormals: absolute */
                if (!(k ? any_bg : any_fg)) FZ_FAIL("replaced at %d,%d with no pixel of its side", y, x);
                if (finite && !(q[i] >= lo[k] - slack && q[i] <= hi[k] + slack) && q[i] != 0.0f)
                    FZ_FAIL("continuation %g at %d,%d outside its side's [%g, %g]", q[i], y, x, lo[k], hi[k]);
            }
        goto done;
    }
    /* each side's continuation, as the function's fills compute it */
    float *conts[2] = {fg, bg}, *weights[2] = {wf, wb};
    for (int k = 0; k < 2; k++) {
        size_t left;
        for (int y = 0; y < H; y++) memcpy(todo + (size_t)y * W, near + (size_t)y * mrow, (size_t)W);
        left = 0;
        for (size_t i = 0; i < n; i++) left += todo[i];
        /* on the whole box (sd_edge_fill would cut boxes around a sparse band) */
        for (int j = 0; j < p.widenings && left; j++) {
            if (sd_fill_weigh(H, W, 1, qc, qrow, weights[k], W, buf, 1) != SD_OK ||
                sd_edge_filter(H, W, 2, buf, NULL, 0, p.band * pow(4.0, j), 1.0, p.iterations, 1) != SD_OK ||
                sd_fill_take(H, W, 1, buf, todo, W, p.min_weight, conts[k], W, &left, 1) != SD_OK)
                FZ_FAIL("fill");
        }
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x, m = (size_t)y * mrow + x;
            float qv = qc[(size_t)y * qrow + x], cont = side[m] ? fg[i] : bg[i], o = q[(size_t)y * qrow + x];
            int replaced = near[m] && (side[m] ? any_fg : any_bg) && fabsf(qv - cont) > p.tolerance * fabsf(cont);
            if (!same_bits(o, qv) && !same_or_zero(o, cont) && !(o != o && qv != qv))
                FZ_FAIL("out %g at %d,%d is neither q %g nor the continuation %g", o, y, x, qv, cont);
            if (!replaced && !same_bits(o, qv) && !(o != o && qv != qv))
                FZ_FAIL("out %g at %d,%d replaces q %g outside the rule", o, y, x, qv);
            if (replaced && !kept[m] && !same_or_zero(o, cont))
                FZ_FAIL("out %g at %d,%d, want the continuation %g", o, y, x, cont);
        }
done:
    free(q); free(qc); free(wf); free(wb); free(buf); free(fg); free(bg); free(side); free(near); free(kept);
    free(todo);
}

/* sd_matte_ramp on a random matte (values at and between the confident levels, wild ones
 * too) and colours, in auto and forced mode, from the guide and from linear light. */
static void run_matte(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 24), W = fz_range(in, 1, 24), nt = fz_range(in, -1, 3);
    sd_matte_params p = {0.02f, 0.98f, 0.035f * 0.035f, 0.25f, 0.9f, 0.1f, 0.5, 0.05f, 0.12, 2.0, 0, 0};
    p.reach = fz_range(in, -1, 30);
    p.mode_auto = fz_u8(in) & 1;
    size_t n = (size_t)H * (size_t)W;
    float *m = malloc(sizeof(float) * n), *mc = malloc(sizeof(float) * n), *lin = malloc(sizeof(float) * n * 3);
    float *guide = malloc(sizeof(float) * n * 3), *lc = malloc(sizeof(float) * n * 3);
    float *out = malloc(sizeof(float) * n), *out2 = malloc(sizeof(float) * n);
    static const float levels[] = {0.0f, 0.02f, 0.5f, 0.98f, 1.0f};
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t k = fz_u8(in);
        m[i] = k < 64 ? levels[k % 5] : k < 128 || !wild ? fz_unit(in) : any_value(in, 1);
        finite &= m[i] >= 0.0f && m[i] <= 1.0f;
    }
    for (size_t i = 0; i < n * 3; i++) lin[i] = fz_u8(in) & 1 ? fz_unit(in) : fz_uniform(in, -0.1f, 3.0f);
    memcpy(mc, m, sizeof(float) * n);
    memcpy(lc, lin, sizeof(float) * n * 3);
    if (sd_srgb_encode_base(n * 3, lin, guide, 1) != SD_OK || sd_srgb_encode_finish(n * 3, lin, guide, 1) != SD_OK)
        FZ_FAIL("encode refused");
    sd_status st = sd_matte_ramp(H, W, m, guide, 0, &p, out, nt);
    sd_status st2 = sd_matte_ramp(H, W, m, lin, 1, &p, out2, nt);
    if (memcmp(m, mc, sizeof(float) * n) || memcmp(lin, lc, sizeof(float) * n * 3)) FZ_FAIL("input modified");
    if (p.reach < 0) {
        if (st != SD_ERR_ARG || st2 != SD_ERR_ARG) FZ_FAIL("reach %d accepted", p.reach);
        goto done;
    }
    if (st != SD_OK || st2 != SD_OK) FZ_FAIL("matte_ramp status %d %d", (int)st, (int)st2);
    for (size_t i = 0; i < n; i++) {
        if (!same_bits(out[i], out2[i])) FZ_FAIL("from linear light %g, from the guide %g at %zu", out2[i], out[i], i);
        int ramp = m[i] > p.matte_out && m[i] < p.matte_in;
        if (!ramp && !same_bits(out[i], m[i])) FZ_FAIL("out %g outside the ramp, matte %g at %zu", out[i], m[i], i);
        if (ramp && finite && !(out[i] >= 0.0f && out[i] <= 1.0f)) FZ_FAIL("alpha %g at %zu", out[i], i);
        if (ramp && m[i] < 0.5f && !(out[i] <= p.grown_max)) FZ_FAIL("alpha %g outside the mask at %zu", out[i], i);
    }
done:
    free(m); free(mc); free(lin); free(guide); free(lc); free(out); free(out2);
}

/* sd_enlargement_fits on an (H, W) map made here as the bilinear enlargement of a random (h, w)
 * map by factors from 1 to 3 times the sizes' ratio (computed as the kernel's documentation
 * says, rounded to float): it fits; one pixel moved by 10 tolerances does not, by half a
 * tolerance it still does; the same answer on any thread count; bad arguments refused. */
static void run_enlargement(fz_in *in, int H, int W, int h, int w, int nt)
{
    double sy = (double)H / h * (1.0 + 2.0 * fz_unit(in)), sx = (double)W / w * (1.0 + 2.0 * fz_unit(in));
    sy = sy < 1.0 ? 1.0 : sy;
    sx = sx < 1.0 ? 1.0 : sx;
    double *small = malloc(sizeof(double) * (size_t)h * (size_t)w);
    float *d = malloc(sizeof(float) * (size_t)H * (size_t)W);
    if (!small || !d) goto done;
    for (int i = 0; i < h * w; i++) small[i] = (double)fz_uniform(in, 0.1f, 10.0f);
    double dmax = 0.0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double py = fmin(fmax((y + 0.5) / sy - 0.5, 0.0), h - 1.0), px = fmin(fmax((x + 0.5) / sx - 0.5, 0.0), w - 1.0);
            int y0 = (int)floor(py), x0 = (int)floor(px), y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double fy = py - y0, fx = px - x0;
            double a = small[y0 * w + x0] * (1.0 - fy) + small[y1 * w + x0] * fy;
            double b = small[y0 * w + x1] * (1.0 - fy) + small[y1 * w + x1] * fy;
            d[y * W + x] = (float)(a * (1.0 - fx) + b * fx);
            dmax = fmax(dmax, fabs((double)d[y * W + x]));
        }
    double tol = 1e-4 * dmax;
    int fits = -1, fits1 = -1;
    if (sd_enlargement_fits(H, W, d, h, w, small, sy, sx, tol, &fits, nt) != SD_OK || fits != 1)
        FZ_FAIL("an enlargement %dx%d -> %dx%d (%g, %g) does not fit (%d)", h, w, H, W, sy, sx, fits);
    int at = fz_range(in, 0, H * W - 1);
    float keep = d[at];
    d[at] = (float)(keep + 10.0 * tol);
    if (sd_enlargement_fits(H, W, d, h, w, small, sy, sx, tol, &fits, nt) != SD_OK || fits != 0)
        FZ_FAIL("a pixel 10 tolerances off fits");
    if (sd_enlargement_fits(H, W, d, h, w, small, sy, sx, tol, &fits1, 1) != SD_OK || fits1 != fits)
        FZ_FAIL("another answer on one thread");
    d[at] = (float)(keep + 0.5 * tol);
    if ((double)d[at] - keep <= 0.9 * tol &&
        (sd_enlargement_fits(H, W, d, h, w, small, sy, sx, tol, &fits, nt) != SD_OK || fits != 1))
        FZ_FAIL("a pixel half a tolerance off does not fit");
    if (sd_enlargement_fits(H, W, d, h, w, small, 0.5, sx, tol, &fits, nt) != SD_ERR_VALUE) FZ_FAIL("sy 0.5 accepted");
    if (sd_enlargement_fits(H, W, d, h, w, small, sy, NAN, tol, &fits, nt) != SD_ERR_VALUE) FZ_FAIL("sx NaN accepted");
    if (sd_enlargement_fits(H, W, NULL, h, w, small, sy, sx, tol, &fits, nt) != SD_ERR_ARG) FZ_FAIL("NULL accepted");
done:
    free(small);
    free(d);
}

static void run_cells(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 40), W = fz_range(in, 1, 40), nt = fz_range(in, -1, 3);
    int h = fz_range(in, 1, H), w = fz_range(in, 1, W);
    int K = (fz_u8(in) & 3) ? 1 : fz_range(in, 2, 4); /* mostly refine's disparity, else colours */
    size_t n = (size_t)H * (size_t)W, m = (size_t)h * (size_t)w;
    float *q = malloc(sizeof(float) * n * (size_t)K), *wt = malloc(sizeof(float) * n);
    float *oq = malloc(sizeof(float) * m * (size_t)K), *ow = malloc(sizeof(float) * m);
    float *cq = malloc(sizeof(float) * n * (size_t)K), *cw = malloc(sizeof(float) * n), *os = malloc(sizeof(float) * m);
    float *q1 = malloc(sizeof(float) * n), *o1 = malloc(sizeof(float) * m), *w1 = malloc(sizeof(float) * m);
    int spread = fz_u8(in) & 1;
    for (size_t i = 0; i < n * (size_t)K; i++) {
        float v = any_value(in, wild);
        q[i] = isfinite(v) ? v : 1.0f; /* refine's disparity is finite */
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t k = fz_u8(in);
        wt[i] = k < 64 ? 0.0f : k < 192 ? 1.0f : (float)k / 255.0f;
    }
    memcpy(cq, q, sizeof(float) * n * (size_t)K);
    memcpy(cw, wt, sizeof(float) * n);
    if (spread && K > 1) { /* the spread is a disparity map's only */
        if (sd_cell_means(H, W, K, q, wt, h, w, oq, ow, os, nt) != SD_ERR_ARG) FZ_FAIL("spread of %d channels accepted", K);
        spread = 0;
    }
    if (sd_cell_means(H, W, K, q, wt, h, w, oq, ow, spread ? os : NULL, nt) != SD_OK)
        FZ_FAIL("cell_means refused %dx%dx%d -> %dx%d", H, W, K, h, w);
    if (memcmp(cq, q, sizeof(float) * n * (size_t)K) || memcmp(cw, wt, sizeof(float) * n)) FZ_FAIL("input modified");
    for (int c = 0; c < K; c++) {
        /* each channel has the bits of that channel alone */
        for (size_t i = 0; i < n; i++) q1[i] = q[i * (size_t)K + (size_t)c];
        if (sd_cell_means(H, W, 1, q1, wt, h, w, o1, w1, NULL, nt) != SD_OK) FZ_FAIL("one channel refused");
        for (size_t i = 0; i < m; i++)
            if (memcmp(&o1[i], &oq[i * (size_t)K + (size_t)c], sizeof(float)) || memcmp(&w1[i], &ow[i], sizeof(float)))
                FZ_FAIL("channel %d of %d at cell %zu: %g, alone %g", c, K, i, oq[i * (size_t)K + (size_t)c], o1[i]);
    }
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++)
            for (int c = 0; c < K; c++) {
                int y0 = j * H / h, y1 = (j + 1) * H / h, x0 = i * W / w, x1 = (i + 1) * W / w;
                double a = 0.0, b = 0.0, lo = INFINITY, hi = -INFINITY;
                if (y1 <= y0 || x1 <= x0) FZ_FAIL("empty cell %d %d", j, i);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        float v = q[((size_t)y * W + x) * K + c], g = wt[y * W + x];
                        a += (double)g * (double)v;
                        b += (double)g;
                        if (g > 0.0f) lo = fmin(lo, v), hi = fmax(hi, v);
                    }
                float wq = b > 0.0 ? (float)(a / b) : 0.0f, ww = (float)(b / ((double)(y1 - y0) * (x1 - x0)));
                float got = oq[((size_t)j * w + i) * K + c];
                /* the same sums in another order: within float's rounding of the weighted mean, which
                 * lies in the range of the cell's weighted values */
                if (b > 0.0 && !(got >= (float)lo && got <= (float)hi)) FZ_FAIL("mean %g outside [%g, %g]", got, lo, hi);
                if (!(fabsf(got - wq) <= 1e-5f * fmaxf(fabsf(wq), (float)fmax(fabs(lo), fabs(hi))) + 1e-30f))
                    FZ_FAIL("cell %d %d channel %d mean %g, want %g", j, i, c, got, wq);
                if (!(fabsf(ow[j * w + i] - ww) <= 1e-6f)) FZ_FAIL("cell %d %d weight %g, want %g", j, i, ow[j * w + i], ww);
                /* the relative spread: finite, >= 0, at most the range over |mean| */
                float sp = spread ? os[j * w + i] : 0.0f;
                if (!(sp >= 0.0f && sp <= 3e38f)) FZ_FAIL("cell %d %d spread %g", j, i, sp);
                if (spread && got != 0.0f && b > 0.0 && !(sp <= 1.0001 * (hi - lo) / fabs(got) + 1e-6))
                    FZ_FAIL("cell %d %d spread %g beyond the range %g", j, i, sp, (hi - lo) / fabs(got));
            }
    if (sd_cell_means(H, W, K, q, wt, H + 1, w, oq, ow, NULL, nt) != SD_ERR_ARG) FZ_FAIL("more cells than rows accepted");
    if (sd_cell_means(H, W, K, NULL, wt, h, w, oq, ow, NULL, nt) != SD_ERR_ARG) FZ_FAIL("NULL accepted");
    if (sd_cell_means(H, W, 0, q, wt, h, w, oq, ow, NULL, nt) != SD_ERR_ARG) FZ_FAIL("0 channels accepted");
    if (sd_cell_means(H, W, SD_CELL_MAX_CHANNELS + 1, q, wt, h, w, oq, ow, NULL, nt) != SD_ERR_ARG)
        FZ_FAIL("too many channels accepted");
    free(q); free(wt); free(oq); free(ow); free(cq); free(cw); free(os); free(q1); free(o1); free(w1);
    run_enlargement(in, H, W, h, w, nt);
}

/* sd_blurred_steps against a brute-force window here: each cell window's extremes and its plane
 * fit (the 3x3 normal equations solved by Cramer's rule, sums in long double); a flag may differ
 * only where the residual lies within 1e-6 of its threshold. A flagged pixel lies on a ramp. */
static long double det3(long double m[3][3])
{
    return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
           m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

static void run_steps(fz_in *in, int wild)
{
    int H = fz_range(in, 1, 30), W = fz_range(in, 1, 30);
    int h = fz_range(in, 1, H), w = fz_range(in, 1, W), r = fz_range(in, 1, 6);
    double tau = fz_uniform(in, 0.0f, 0.05f), lo = fz_uniform(in, 0.0f, 0.5f), hi = lo + fz_uniform(in, 0.0f, (float)(1.0 - lo));
    hi = hi > 1.0 ? 1.0 : hi;
    double lo_s = lo * fz_unit(in), hi_s = hi + (1.0 - hi) * fz_unit(in), jump = fz_uniform(in, 0.0f, 0.2f);
    hi_s = hi_s > 1.0 ? 1.0 : hi_s < hi ? hi : hi_s;
    size_t n = (size_t)H * W, nc = (size_t)h * w;
    float *q = malloc(n * sizeof(float)), *qc = malloc(nc * sizeof(float));
    uint8_t *flag = malloc(n);
    float base = fz_uniform(in, 0.1f, 2.0f);
    for (size_t i = 0; i < n; i++) { /* steps, ramps and noise around a base */
        uint8_t k = fz_u8(in);
        q[i] = k < 128 ? base : k < 200 ? base * (1.0f + (float)(i % (size_t)W) * 0.05f) : fz_uniform(in, 0.05f, 3.0f);
        if (wild && k == 0xff) q[i] = fz_u8(in) & 1 ? NAN : 0.0f;
    }
    for (size_t i = 0; i < nc; i++) qc[i] = q[(i / (size_t)w) * ((size_t)H / (size_t)h) * W + (i % (size_t)w)];
    int nt = fz_range(in, -1, 3);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= !(q[i] > 0.0f && isfinite(q[i]));
    for (size_t i = 0; i < nc; i++) bad |= !(qc[i] > 0.0f && isfinite(qc[i]));
    size_t count = 0, jumps = 0;
    sd_status st = sd_blurred_steps(H, W, q, h, w, qc, r, tau, lo, hi, lo_s, hi_s, jump, flag, &count, &jumps, nt);
    if (bad) {
        if (st != SD_ERR_VALUE) FZ_FAIL("invalid disparity taken (%d)", (int)st);
        goto done;
    }
    if (st != SD_OK) FZ_FAIL("status %d", (int)st);
    if (sd_blurred_steps(H, W, q, h, w, qc, 0, tau, lo, hi, lo_s, hi_s, jump, flag, &count, &jumps, nt) != SD_ERR_ARG) FZ_FAIL("r 0 taken");
    st = sd_blurred_steps(H, W, q, h, w, qc, r, tau, lo, hi, lo_s, hi_s, jump, flag, &count, &jumps, nt);
    size_t want_count = 0;
    /* per pixel: 1 core, 2 a shoulder candidate, 0 neither; and whether the decision is near its threshold */
    uint8_t *want = calloc(n, 1), *near_thr = calloc(n, 1);
    int rr = r > h + w ? h + w : r;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int j = 0, i = 0;
            while ((long long)(j + 1) * H / h <= y) j++;
            while ((long long)(i + 1) * W / w <= x) i++;
            int ra = j - rr < 0 ? 0 : j - rr, rb = j + rr > h - 1 ? h - 1 : j + rr;
            int ca = i - rr < 0 ? 0 : i - rr, cb = i + rr > w - 1 ? w - 1 : i + rr;
            long double m[3][3] = {{0}}, b[3] = {0}, t2 = 0;
            float mn = qc[(size_t)ra * w + ca], mx = mn;
            for (int yy = ra; yy <= rb; yy++)
                for (int xx = ca; xx <= cb; xx++) {
                    long double v = qc[(size_t)yy * w + xx], f[3] = {1, xx - i, yy - j};
                    mn = fminf(mn, (float)v);
                    mx = fmaxf(mx, (float)v);
                    for (int a = 0; a < 3; a++) {
                        b[a] += f[a] * v;
                        for (int c = 0; c < 3; c++) m[a][c] += f[a] * f[c];
                    }
                    t2 += v * v;
                }
            /* drop the slope of an axis one cell wide */
            int use[3] = {1, cb > ca, rb > ra};
            long double fit = 0;
            if (use[1] && use[2]) {
                long double D = det3(m), beta[3];
                for (int a = 0; a < 3; a++) {
                    long double mm[3][3];
                    memcpy(mm, m, sizeof mm);
                    for (int c = 0; c < 3; c++) mm[c][a] = b[c];
                    beta[a] = det3(mm) / D;
                }
                fit = beta[0] * b[0] + beta[1] * b[1] + beta[2] * b[2];
            } else {
                int a = use[1] ? 1 : use[2] ? 2 : 0;
                if (a) {
                    long double D = m[0][0] * m[a][a] - m[0][a] * m[a][0];
                    long double b0 = (b[0] * m[a][a] - m[0][a] * b[a]) / D, b1 = (m[0][0] * b[a] - m[a][0] * b[0]) / D;
                    fit = b0 * b[0] + b1 * b[a];
                } else {
                    fit = b[0] * b[0] / m[0][0];
                }
            }
            long double N = m[0][0], qv = qc[(size_t)j * w + i];
            long double res = t2 - fit, thr = (long double)tau * tau * qv * qv * N;
            float qp = q[(size_t)y * W + x];
            double d = (double)qp - mn, range = (double)mx - mn;
            /* on a ramp: strictly between both neighbours along a row or a column, each gap away */
            float gap = (float)(SD_STEPS_RAMP_SLOPE * range / ((2.0 * rr + 1.0) * H / h)), v = qp;
            int ramp = 0;
            if (x > 0 && x < W - 1) {
                float a = q[(size_t)y * W + x - 1] - v, b = v - q[(size_t)y * W + x + 1];
                ramp |= (a > gap && b > gap) || (a < -gap && b < -gap);
            }
            if (y > 0 && y < H - 1) {
                float a = q[(size_t)(y - 1) * W + x] - v, b = v - q[(size_t)(y + 1) * W + x];
                ramp |= (a > gap && b > gap) || (a < -gap && b < -gap);
            }
            int between = ramp && range > 0.0 && d > lo * range && d < hi * range;
            int wide = ramp && range > 0.0 && d > lo_s * range && d < hi_s * range;
            size_t k = (size_t)y * W + x;
            want[k] = (uint8_t)(res > thr ? (between ? 1 : wide ? 2 : 0) : 0);
            near_thr[k] = (uint8_t)(wide && fabsl(res - thr) <= 1e-6L * (t2 > 1 ? t2 : 1));
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t k = (size_t)y * W + x;
            int core_beside = 0, close = near_thr[k];
            int nb[4][2] = {{y, x - 1}, {y, x + 1}, {y - 1, x}, {y + 1, x}};
            for (int e = 0; e < 4; e++) {
                int yy = nb[e][0], xx = nb[e][1];
                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                core_beside |= want[(size_t)yy * W + xx] == 1;
                close |= want[k] == 2 && near_thr[(size_t)yy * W + xx];
            }
            int expect = want[k] == 1 || (want[k] == 2 && core_beside);
            int got = flag[k];
            if (got != expect && !close) FZ_FAIL("flag %d at %d,%d, want %d", got, y, x, expect);
            want_count += (size_t)got;
        }
    free(want);
    free(near_thr);
    if (st != SD_OK || count != want_count) FZ_FAIL("count %zu, flags %zu", count, want_count);
    size_t want_jumps = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float v = q[(size_t)y * W + x];
            if (x + 1 < W) want_jumps += fabsf(v - q[(size_t)y * W + x + 1]) > (float)jump * q[(size_t)y * W + x + 1];
            if (y + 1 < H) want_jumps += fabsf(v - q[(size_t)(y + 1) * W + x]) > (float)jump * q[(size_t)(y + 1) * W + x];
        }
    if (jumps != want_jumps) FZ_FAIL("jumps %zu, want %zu", jumps, want_jumps);
    {
        /* sd_step_fill on those flags: unstepped pixels unchanged, stepped ones keep q or take a mean
         * of unstepped pixels (within their range); in place the same bits */
        int linear = fz_u8(in) & 1, reach = fz_range(in, 0, 5);
        float *col = malloc(n * 3 * sizeof(float)), *out = malloc(n * sizeof(float)), *inpl = malloc(n * sizeof(float));
        for (size_t i = 0; i < n * 3; i++) col[i] = fz_uniform(in, -0.1f, linear ? 4.0f : 1.0f);
        double sigma_s = fz_uniform(in, 0.1f, 20.0f), sigma_r = fz_uniform(in, 0.01f, 1.0f);
        if (sd_step_fill(H, W, q, flag, col, linear, h, w, reach, sigma_s, sigma_r, out, nt) != SD_OK)
            FZ_FAIL("step fill refused");
        memcpy(inpl, q, n * sizeof(float));
        if (sd_step_fill(H, W, inpl, flag, col, linear, h, w, reach, sigma_s, sigma_r, inpl, nt) != SD_OK)
            FZ_FAIL("step fill in place refused");
        float lo_q = INFINITY, hi_q = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (!flag[i]) {
                lo_q = fminf(lo_q, q[i]);
                hi_q = fmaxf(hi_q, q[i]);
            }
        for (size_t i = 0; i < n; i++) {
            if (!same_bits(out[i], inpl[i])) FZ_FAIL("in place %g, not %g at %zu", inpl[i], out[i], i);
            if (!flag[i] && !same_bits(out[i], q[i])) FZ_FAIL("unstepped %zu changed", i);
            if (flag[i] && !same_bits(out[i], q[i]) && !(out[i] >= lo_q * (1 - 1e-6f) && out[i] <= hi_q * (1 + 1e-6f)))
                FZ_FAIL("stepped %zu took %g outside [%g, %g]", i, out[i], lo_q, hi_q);
        }
        if (sd_step_fill(H, W, q, flag, col, linear, h, w, -1, sigma_s, sigma_r, out, nt) != SD_ERR_ARG)
            FZ_FAIL("negative reach taken");
        free(col);
        free(out);
        free(inpl);
    }
done:
    free(q);
    free(qc);
    free(flag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    uint8_t which = fz_u8(&in);
    int wild = (which >> 4) & 1;
    switch (which % 9) {
    case 0: run_srgb(&in, wild); break;
    case 1: run_disparity(&in, wild); break;
    case 2: run_noise(&in, wild); break;
    case 3: run_band(&in); break;
    case 4: run_fill(&in, wild); break;
    case 5: run_edge_fill(&in, wild); break;
    case 6: run_sides(&in, wild); break;
    case 7: run_cells(&in, wild); break;
    default: /* the matte, or (which's top three bits set) the blurred-steps test */
        if ((which >> 5) == 7) run_steps(&in, wild);
        else run_matte(&in, wild);
        break;
    }
    return 0;
}
