/* Depth-edge unmixing (part of the entries stage, sd_entries.c).
 *
 * Depth maps are rarely anti-aliased: a pixel half covered by a light in front of a wall
 * carries one of the two depths, and spread with the wrong CoC it leaves a soft rim around the
 * light's disk. Where a pixel's neighbours hold a surface whose CoC differs by more than a pixel
 * (or than the depth map's own noise: sd_edge_margin), the share of that surface is estimated
 * from the colours (the pixel as a mix of the two sides' means) and moved to an entry at that
 * surface's CoC. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "sd_entries.h"
#include "sd_parallel.h"
#include "sd_unmix.h"
#include "sd_util.h"

/* Neighbours whose CoC differs by more than this mark a depth edge (at least). */
#define EDGE_MARGIN_PX 1.0f
/* ... and a depth edge must stand out of the depth's own noise: the margin is at least this many
 * times the median |CoC difference| of horizontal neighbours (on every EDGE_NOISE_ROW_STEP-th
 * row), per range of CoC (SD_EDGE_RANGES equal ranges between the smallest and largest CoC: a
 * sensor's or a network's noise grows towards the camera). Of Gaussian noise of deviation s that
 * median is 0.95 s, so the margin is about 4 s, which the difference of two neighbours on one
 * surface (deviation 1.4 s) exceeds for under 1 % of them; unmixed, such pixels were split by
 * their texture's colours into entries at noise CoCs. Exact depth (planes, or slopes under 1/4 px
 * a pixel) has medians far below 1/4 px and keeps 1 px. */
#define EDGE_NOISE_FACTOR 4.0f
#define EDGE_NOISE_ROW_STEP 8
/* A range with fewer sampled pairs than this, or than this share of them, does not take its own
 * median but its neighbours' margins (see sd_edge_margin): a range that only the pixels across
 * depth edges fall in (their CoCs between the surfaces') holds mostly real steps, whose median is
 * not the noise. */
#define EDGE_RANGE_MIN_PAIRS 256
#define EDGE_RANGE_MIN_SHARE (1.0 / (4 * SD_EDGE_RANGES))
/* The medians' resolution: a difference's float bits above bit 20 (an eighth of an octave). */
#define EDGE_KEY_SHIFT 20
#define EDGE_KEYS (1 << (31 - EDGE_KEY_SHIFT))

/* |c[x+1] - c[x]| as its histogram key (non-negative floats order as their bits), -1 where it is
 * not finite. */
static inline int diff_key(const float *row, int x)
{
    float d = fabsf(row[x + 1] - row[x]);
    uint32_t b;
    memcpy(&b, &d, sizeof b);
    return d <= FLT_MAX ? (int)(b >> EDGE_KEY_SHIFT) : -1;
}

/* The margin from the lower median key of n differences counted in h (the key's middle value). */
static float margin_of(const uint32_t *h, size_t n)
{
    size_t k = (n - 1) / 2, below = 0;
    int key = 0;
    while (below + h[key] <= k) below += h[key++];
    uint32_t bits = (uint32_t)key << EDGE_KEY_SHIFT | 1u << (EDGE_KEY_SHIFT - 1);
    float median;
    memcpy(&median, &bits, sizeof median);
    float m = EDGE_NOISE_FACTOR * median;
    return m > EDGE_MARGIN_PX ? m : EDGE_MARGIN_PX;
}

sd_status sd_edge_margin(sd_frame *f)
{
    for (int r = 0; r < SD_EDGE_RANGES; r++) f->edge_margin[r] = EDGE_MARGIN_PX;
    f->edge_uniform = 1;
    f->edge_lo = 0.0f;
    f->edge_scale = 0.0f;
    const int W = f->W;
    if (W < 2) return SD_OK;
    float lo = INFINITY, hi = -INFINITY;
    for (int y = 0; y < f->H; y += EDGE_NOISE_ROW_STEP) {
        const float *row = f->coc + (ptrdiff_t)y * W;
        for (int x = 0; x + 1 < W; x++)
            if (diff_key(row, x) >= 0) {
                lo = row[x] < lo ? row[x] : lo;
                hi = row[x] > hi ? row[x] : hi;
            }
    }
    if (!(lo <= hi)) return SD_OK; /* no finite pair */
    /* (a range of CoCs wider than float's largest is one range: no finite scale) */
    float span = hi - lo;
    f->edge_lo = lo;
    f->edge_scale = span > 0.0f && span <= FLT_MAX ? (float)SD_EDGE_RANGES / span : 0.0f;
    uint32_t *hist = calloc((size_t)(SD_EDGE_RANGES + 1) * EDGE_KEYS, sizeof(uint32_t));
    if (!hist) return SD_ERR_NOMEM;
    uint32_t *all = hist + (size_t)SD_EDGE_RANGES * EDGE_KEYS;
    size_t n[SD_EDGE_RANGES] = {0}, total = 0;
    for (int y = 0; y < f->H; y += EDGE_NOISE_ROW_STEP) {
        const float *row = f->coc + (ptrdiff_t)y * W;
        for (int x = 0; x + 1 < W; x++) {
            int key = diff_key(row, x);
            if (key < 0) continue;
            int r = sd_edge_range(f, row[x]);
            hist[(size_t)r * EDGE_KEYS + key]++;
            all[key]++;
            n[r]++;
            total++;
        }
    }
    unsigned char own[SD_EDGE_RANGES];
    int any_own = 0;
    for (int r = 0; r < SD_EDGE_RANGES; r++) {
        own[r] = n[r] >= EDGE_RANGE_MIN_PAIRS && (double)n[r] >= EDGE_RANGE_MIN_SHARE * (double)total;
        if (own[r]) f->edge_margin[r] = margin_of(hist + (size_t)r * EDGE_KEYS, n[r]);
        any_own |= own[r];
    }
    float whole = margin_of(all, total);
    for (int r = 0; r < SD_EDGE_RANGES; r++) {
        if (own[r]) continue;
        /* A range without enough pairs of its own takes the margins of the nearest ranges that
         * have them, linearly in between (a sensor's or a network's noise changes smoothly with
         * the CoC): the whole frame's median is mostly the largest surface's, which a sparse
         * stretch of a noisier one (the near end of a ground plane) took as its own. */
        int a = r, b = r;
        while (a >= 0 && !own[a]) a--;
        while (b < SD_EDGE_RANGES && !own[b]) b++;
        if (!any_own) f->edge_margin[r] = whole;
        else if (a < 0) f->edge_margin[r] = f->edge_margin[b];
        else if (b >= SD_EDGE_RANGES) f->edge_margin[r] = f->edge_margin[a];
        else f->edge_margin[r] = f->edge_margin[a] + (f->edge_margin[b] - f->edge_margin[a]) * (float)(r - a) / (float)(b - a);
    }
    for (int r = 1; r < SD_EDGE_RANGES; r++) f->edge_uniform &= f->edge_margin[r] == f->edge_margin[0];
    free(hist);
    return SD_OK;
}

/* Where the margin is set by the depth's noise (above EDGE_MARGIN_PX), one neighbour beyond it
 * makes a side only if it lies beyond this many margins; otherwise it takes two. A pixel with a
 * single neighbour just beyond the margin is far more often the tail of that noise than a depth
 * edge: of Gaussian noise, 4.5 % of the pixels had one, 0.85 % have a side by this rule. A real
 * edge's pixels see three neighbours across it (a straight edge), or one far beyond the noise. */
#define NOISE_SIDE_ALONE 2.0f

/* Whether the 8 neighbours' CoCs nb (those with use[k] set, or all where use is NULL) make a
 * nearer side (*near) and a farther one (*far) of a pixel of CoC c by NOISE_SIDE_ALONE's rule,
 * where the margin m is the noise's. */
static inline void noise_sides(const float *nb, const unsigned char *use, float c, float m, int *near, int *far)
{
    int n_near = 0, n_far = 0, alone_near = 0, alone_far = 0;
    for (int k = 0; k < 8; k++) {
        if (use && !use[k]) continue;
        n_near += nb[k] < c - m;
        n_far += nb[k] > c + m;
        alone_near |= nb[k] < c - NOISE_SIDE_ALONE * m;
        alone_far |= nb[k] > c + NOISE_SIDE_ALONE * m;
    }
    *near = n_near >= 2 || alone_near;
    *far = n_far >= 2 || alone_far;
}

/* The two sides' mean colours must differ by this fraction of the brighter one's magnitude
 * (L1) for their shares to be told apart: less is noise, and the projection would be too. */
#define SIDES_MIN_CONTRAST 0.05

/* (y, x) moved onto the frame's nearest pixel: the frame continues as its edge. */
static inline void clamp_to_frame(const sd_frame *f, int *y, int *x)
{
    *y = *y < 0 ? 0 : (*y >= f->H ? f->H - 1 : *y);
    *x = *x < 0 ? 0 : (*x >= f->W ? f->W - 1 : *x);
}

/* Whether the rest fully covers pixel (y, x). */
static inline int rest_covers(const sd_frame *f, int y, int x)
{
    return !f->matte || 1.0f - f->matte[(ptrdiff_t)y * f->W + x] >= SD_FULL_ALPHA;
}

/* The colour of the rest (per unit coverage) at pixel (y, x), which it fully covers. */
static inline void rest_colour(const sd_frame *f, int y, int x, float col[3])
{
    const float *p = sd_frame_px(f, y, x);
    if (!f->matte) {
        col[0] = p[0]; col[1] = p[1]; col[2] = p[2];
        return;
    }
    float oma = 1.0f - f->matte[(ptrdiff_t)y * f->W + x];
    /* covered by the rest means confident outside: the surroundings there are the pixel */
    float s[3], r[3];
    sd_split_parts(p, oma, p, s, r);
    for (int k = 0; k < 3; k++) col[k] = r[k] / oma;
}

/* Whether the rest fully covers pixel (y, x), and its colour there (per unit coverage). */
static inline int rest_full(const sd_frame *f, int y, int x, float col[3])
{
    if (!rest_covers(f, y, x)) return 0;
    rest_colour(f, y, x, col);
    return 1;
}

/* Depth-edge unmixing of the fully covered rest pixel (y, x) with colour own and CoC c: the
 * other side is the neighbours whose CoC differs by more than the margin (nearer ones first: a
 * light, a railing), the same side the others (only those not next to the other side
 * themselves, where there are any: a light's anti-aliased rim is a ring of mixed pixels, and as
 * its own reference it would keep most of the light at the wall's CoC); I = b N + (1 - b) F
 * gives the other side's share b by projecting the colour onto the line between the two sides'
 * means. Neighbours the matte splits belong to neither side. Returns whether anything moves
 * (b > 0); never more light moves than the pixel has. A pixel with b = 0 is left alone:
 * rewriting it too would move negative light to an entry at CoC 0. */
static int unmix_at(const sd_frame *f, int y, int x, const float own[3], float c, sd_unmixed *u)
{
    /* the 8 neighbours (OFF[k]) are cells 1 + (k < 4 ? k : k + 1) of the 3 x 3 block around the
     * pixel, which is the middle of the 5 x 5 block that holds their neighbours too */
    static const int OFF[8][2] = {{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 1}, {1, -1}, {1, 0}, {1, 1}};
    const float m = sd_edge_margin_at(f, c);
    float cmin = c - m, cmax = c + m;
    /* the CoCs of the 5 x 5 block, the frame continuing as its edge (looked up once: each
     * neighbour's own neighbours below overlap) */
    float blk[5][5];
    for (int i = 0; i < 5; i++) {
        int yy = y + i - 2, xx = x - 2;
        clamp_to_frame(f, &yy, &xx);
        const float *row = f->coc + (ptrdiff_t)yy * f->W;
        if (x >= 2 && x + 2 < f->W) {
            for (int j = 0; j < 5; j++) blk[i][j] = row[x - 2 + j];
            continue;
        }
        for (int j = 0; j < 5; j++) {
            int yj = yy, xj = x + j - 2;
            clamp_to_frame(f, &yj, &xj);
            blk[i][j] = row[xj];
        }
    }
    float col[8][3], nbc[8];
    unsigned char kind[8]; /* 0 not fully the rest's, 1 same side, 2 nearer, 3 farther */
    int any_near = 0, any_far = 0;
    for (int k = 0; k < 8; k++) {
        int yy = y + OFF[k][0], xx = x + OFF[k][1];
        clamp_to_frame(f, &yy, &xx);
        nbc[k] = blk[2 + OFF[k][0]][2 + OFF[k][1]];
        if (!rest_covers(f, yy, xx)) {
            kind[k] = 0;
            continue;
        }
        kind[k] = nbc[k] < cmin ? 2 : (nbc[k] > cmax ? 3 : 1);
        any_near |= kind[k] == 2;
        any_far |= kind[k] == 3;
    }
    /* the margin is the depth's noise: the fully covered neighbours (kind > 0) by NOISE_SIDE_ALONE */
    if (m > EDGE_MARGIN_PX) noise_sides(nbc, kind, c, m, &any_near, &any_far);
    if (!any_near && !any_far) return 0;
    int want = any_near ? 2 : 3;
    /* the cells of the 5 x 5 block on the other side, bit 5 i + j */
    uint32_t other = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            other |= (uint32_t)(want == 2 ? blk[i][j] < cmin : blk[i][j] > cmax) << (5 * i + j);
    float so[3] = {0, 0, 0}, ss[3] = {0, 0, 0}, sp[3] = {0, 0, 0}, sc = 0.0f;
    int n_o = 0, n_s = 0, n_p = 0;
    for (int k = 0; k < 8; k++) {
        if (kind[k] != want && kind[k] != 1) continue;
        int yy = y + OFF[k][0], xx = x + OFF[k][1];
        clamp_to_frame(f, &yy, &xx);
        rest_colour(f, yy, xx, col[k]);
        if (kind[k] == want) {
            for (int j = 0; j < 3; j++) so[j] += col[k][j];
            sc += nbc[k];
            n_o++;
        } else {
            for (int j = 0; j < 3; j++) ss[j] += col[k][j];
            n_s++;
            /* a same-side neighbour that touches the other side itself is likely mixed too
             * (a light's rim is a ring of such pixels): the pure ones make the better reference.
             * Its 3 x 3 block in the 5 x 5 one (its own cell, on the same side, adds nothing). */
            uint32_t around = 0x7u * 0x421u << (5 * (1 + OFF[k][0]) + 1 + OFF[k][1]);
            if (!(other & around)) {
                for (int j = 0; j < 3; j++) sp[j] += col[k][j];
                n_p++;
            }
        }
    }
    if (n_s == 0) return 0;
    if (n_p > 0) { /* the pure same-side neighbours, where there are any */
        for (int j = 0; j < 3; j++) ss[j] = sp[j];
        n_s = n_p;
    }
    double O[3], S[3], d[3], dd = 0.0, ao = 0.0, as = 0.0, proj = 0.0;
    for (int j = 0; j < 3; j++) {
        O[j] = (double)so[j] / n_o;
        S[j] = (double)ss[j] / n_s;
        d[j] = O[j] - S[j];
        dd += d[j] * d[j];
        ao += fabs(O[j]);
        as += fabs(S[j]);
    }
    double tol = SIDES_MIN_CONTRAST * (ao > as ? ao : as);
    if (!(dd > tol * tol)) return 0; /* the two sides must differ to tell their shares apart */
    for (int j = 0; j < 3; j++) proj += ((double)own[j] - S[j]) * d[j];
    double b = proj / (dd > 1e-20 ? dd : 1e-20);
    b = b < 0.0 ? 0.0 : (b > 1.0 ? 1.0 : b);
    if (!(b > 0.0)) return 0;
    for (int j = 0; j < 3; j++) {
        double m = b * O[j];
        u->move[j] = m <= (double)own[j] ? m : (double)own[j];
    }
    u->x = x;
    u->b = b;
    u->c = (float)((double)sc / n_o);
    return 1;
}

/* Whether an inner pixel x of CoC c has a neighbour in its 3 x 3 block (vmn, vmx: the columns'
 * vertical minima and maxima) whose CoC differs by more than the margin m. */
static inline unsigned char beyond_margin(const float *vmn, const float *vmx, int x, float c, float m)
{
    float lo = vmn[x - 1] < vmn[x] ? vmn[x - 1] : vmn[x], hi = vmx[x - 1] > vmx[x] ? vmx[x - 1] : vmx[x];
    lo = vmn[x + 1] < lo ? vmn[x + 1] : lo;
    hi = vmx[x + 1] > hi ? vmx[x + 1] : hi;
    return (unsigned char)((lo < c - m) | (hi > c + m));
}

/* Compiled a second time for AVX2 where the toolchain can (SD_CLONES): the same arithmetic, the
 * same bits, in about 20 % less time. */
SD_CLONES int sd_unmix_row(const sd_frame *f, int y, float *vmn, float *vmx, unsigned char *cand, sd_unmixed *U)
{
    const int W = f->W, H = f->H;
    const float *crow = f->coc + (ptrdiff_t)y * W;
    const float *cu = f->coc + (ptrdiff_t)(y > 0 ? y - 1 : y) * W;
    const float *cd = f->coc + (ptrdiff_t)(y + 1 < H ? y + 1 : y) * W;
    /* the 3x3 CoC range, separably: a cheap test that rules out almost every pixel (it looks at
     * every neighbour, a superset of the fully covered ones that decide) */
    SD_SIMD
    for (int x = 0; x < W; x++) {
        float lo = crow[x], hi = crow[x];
        lo = cu[x] < lo ? cu[x] : lo; hi = cu[x] > hi ? cu[x] : hi;
        lo = cd[x] < lo ? cd[x] : lo; hi = cd[x] > hi ? cd[x] : hi;
        vmn[x] = lo; vmx[x] = hi;
    }
    if (f->edge_uniform) { /* one margin for every CoC (exact or smooth depth): the loop vectorises */
        const float m = f->edge_margin[0];
        SD_SIMD
        for (int x = 1; x < W - 1; x++) cand[x] = beyond_margin(vmn, vmx, x, crow[x], m);
    } else {
        for (int x = 1; x < W - 1; x++) cand[x] = beyond_margin(vmn, vmx, x, crow[x], sd_edge_margin_at(f, crow[x]));
    }
    for (int x = 0; x < W; x += W - 1) { /* the edge columns: their outside neighbour is themselves */
        int xo = x == 0 ? 1 : W - 2;
        float lo = vmn[xo] < vmn[x] ? vmn[xo] : vmn[x], hi = vmx[xo] > vmx[x] ? vmx[xo] : vmx[x];
        const float m = sd_edge_margin_at(f, crow[x]);
        cand[x] = (unsigned char)((lo < crow[x] - m) | (hi > crow[x] + m));
    }
    int nu = 0;
    const unsigned char *end = cand + W;
    for (const unsigned char *q = memchr(cand, 1, (size_t)W); q; q = memchr(q + 1, 1, (size_t)(end - q - 1))) {
        int x = (int)(q - cand);
        float m = sd_edge_margin_at(f, crow[x]);
        if (m > EDGE_MARGIN_PX) { /* all 8 neighbours: a superset of the fully covered ones unmix_at counts */
            int xl = x > 0 ? x - 1 : x, xr = x + 1 < W ? x + 1 : x;
            float nb[8] = {cu[xl], cu[x], cu[xr], crow[xl], crow[xr], cd[xl], cd[x], cd[xr]};
            int near, far;
            noise_sides(nb, NULL, crow[x], m, &near, &far);
            if (!near && !far) continue;
        }
        float col[3];
        if (rest_full(f, y, x, col) && unmix_at(f, y, x, col, crow[x], &U[nu])) nu++;
    }
    return nu;
}
