/* Scatter stage: every source spreads its light over the aperture scaled to its |CoC| with
 * total weight exactly 1 (sd_scatter in sd_core.h), into the planes of the pyramid
 * (sd_pyramid.c), whose cost per source does not grow with the blur radius.
 *
 * A source's CoC becomes a footprint (sd_footprint_make, sd_aperture.c): horizontal spans, each
 * written as four entries of a per-row difference buffer (anti-aliased ends) that the resolve's
 * prefix sum turns into light. A large CoC is spread on a coarser level (see SD_R_MAX): there
 * 2^k x 2^k blocks of sources are merged at their light centroid. Neighbours that share a
 * footprint (a flat surface) are spread as one run.
 *
 * Threads: level rows are cut into bands at least twice as tall as the farthest a source
 * reaches (bands too short for that, into column tiles as wide); even bands run in parallel, and
 * each odd band once both its even neighbours are done, so no two threads touch the same cell at
 * once and every cell sums its even band's light before its odd band's: the result, bit for bit,
 * does not depend on the thread count. */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sd_alloc.h"
#include "sd_aperture.h"
#include "sd_core.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_util.h"

/* Adds v * (overlap of [a, b] with each cell) to a difference row of `cols` cells (entries
 * 0..cols+1). The plane's margins make clamping a no-op; it only guards memory. */
static inline void add_span(float *row, int cols, float a, float b, const float *v)
{
    if (a < 0.0f) a = 0.0f;
    if (b > (float)cols) b = (float)cols;
    if (!(b > a)) return;
    int ia = (int)a, ib = (int)b;
    float ew[4];
    sd_span_end_weights(ia, ib, a - (float)ia, b - (float)ib, 1.0f, ew);
    float *pa = row + 4 * ia, *pb = row + 4 * ib;
    for (int c = 0; c < 4; c++) {
        pa[c] += ew[0] * v[c];
        pa[4 + c] += ew[1] * v[c];
        pb[c] += ew[2] * v[c];
        pb[4 + c] += ew[3] * v[c];
    }
}

/* A row of sources waiting to be spread at one level: their light and their footprints' keys
 * (radius and sub-cell centre; the centre quantised to 1/16 cell, far below what a blur shows,
 * so that the merged blocks of a flat surface share one footprint), and the plane cell holding
 * each centre. */
#define QP 16.0f
/* A row whose sources do not all share one radius has its radii rounded to 2^-QR_LOG2 = 1/128
 * cell (from a radius of 2 cells on, to 1/256 to 1/128 of the radius), so that the neighbours on
 * a smooth depth gradient share footprints and spread in runs instead of each planning its own
 * (the error, at most 1/256 of the radius or of a cell, is far below what a blur shows). In the
 * render, a dim source (light r + g + b at most SD_DIM_LIGHT per frame pixel of its cell: no
 * highlight; sd_pyr_src's dim_light) is rounded to twice that step, because an error of its
 * radius shows in proportion to its light: on a slanted plane the runs get about twice as long,
 * and the ground-truth scores move by at most 0.03 dB. The rounding depends on each source alone,
 * so the result does not depend on the direction rows are read in (a scene turned by 180 degrees
 * renders turned); a row of one radius keeps it exactly, so a uniform blur spreads exactly the
 * aperture's shape. */
#define QR_LOG2 7

/* Rounds the radii (keys > 0) of sources [0, n) of a row with light v (n x 4) unless they are
 * all equal; dim is dim_light times the frame pixels in a cell of the row's level (< 0: none
 * is dim). */
static void round_radii(float *R, const float *v, int n, float dim)
{
    float first = -1.0f;
    int mixed = 0;
    for (int i = 0; i < n && !mixed; i++)
        if (R[i] > 0.0f) {
            if (first < 0.0f) first = R[i];
            else mixed = R[i] != first;
        }
    if (!mixed) return;
    int i = 0;
#if defined(__GNUC__)
    /* 4 sources at a time as the lanes of vectors: the loop below, the same arithmetic */
    const sd_cell4 half = {0.5f, 0.5f, 0.5f, 0.5f};
    for (; i + 4 <= n; i += 4) {
        sd_cell4 r4 = sd_cell_load(R + i), a, b, c;
        for (int j = 0; j < 4; j++) {
            const float *q = v + 4 * (ptrdiff_t)(i + j);
            a[j] = fabsf(q[0]);
            b[j] = fabsf(q[1]);
            c[j] = fabsf(q[2]);
        }
        sd_mask4 pos = r4 > 0.0f, dimm = (a + b) + c <= dim;
        sd_mask4 lg = (sd_mask4)(dimm & (QR_LOG2 - 1)) | (sd_mask4)(~dimm & QR_LOG2); /* comparisons: 0 or -1 */
        sd_mask4 bits;
        memcpy(&bits, &r4, sizeof bits);
        sd_mask4 e = ((bits >> 23) & 0xff) - 127;
        sd_mask4 wide = (e >= 1) & (e < 100);
        /* the small radii's step 2^-lg cell and its inverse, as floats from their bits */
        sd_mask4 sb = (wide & (e - lg + 127) << 23) | (~wide & (127 - lg) << 23);
        sd_mask4 ib = (wide & (lg - e + 127) << 23) | (~wide & (127 + lg) << 23);
        sd_cell4 step, inv;
        memcpy(&step, &sb, sizeof step);
        memcpy(&inv, &ib, sizeof inv);
        sd_cell4 x = (sd_cell4)(pos & (sd_mask4)(r4 * inv + half)); /* 0 in the lanes kept as they are */
        sd_mask4 t = __builtin_convertvector(x, sd_mask4);
        t -= -(sd_mask4)(x < __builtin_convertvector(t, sd_cell4)); /* sd_ifloor: one less where x < t */
        sd_cell4 r = __builtin_convertvector(t, sd_cell4) * step;
        sd_mask4 big = r > 0.5f;
        sd_cell4 rr = (sd_cell4)((big & (sd_mask4)r) | (~big & (sd_mask4)(half + step)));
        r4 = (sd_cell4)((pos & (sd_mask4)rr) | (~pos & (sd_mask4)r4));
        memcpy(R + i, &r4, sizeof r4);
    }
#endif
    for (; i < n; i++)
        if (R[i] > 0.0f) {
            const float *q = v + 4 * (ptrdiff_t)i;
            int lg = fabsf(q[0]) + fabsf(q[1]) + fabsf(q[2]) <= dim ? QR_LOG2 - 1 : QR_LOG2;
            /* steps of 2^-lg cell, or of 2^-(lg+1) to 2^-lg of the radius once that is coarser:
             * from R = 2^e on (2^e <= R < 2^(e+1), e >= 1), 2^(e-lg). The step is a power of two,
             * built from R's exponent bits (frexpf and ldexpf are library calls, and this runs
             * for every source), so dividing by it is the exact multiplication by its inverse. */
            uint32_t bits;
            memcpy(&bits, &R[i], sizeof bits);
            int e = (int)((bits >> 23) & 0xffu) - 127; /* R >= 2^e; subnormals read as tiny */
            float qr = (float)(1 << lg), step = 1.0f / qr, inv = qr;
            if (e >= 1 && e < 100) {
                uint32_t sb = (uint32_t)(e - lg + 127) << 23, ib = (uint32_t)(lg - e + 127) << 23;
                memcpy(&step, &sb, sizeof step);
                memcpy(&inv, &ib, sizeof inv);
            }
            float r = (float)sd_ifloor(R[i] * inv + 0.5f) * step;
            R[i] = r > 0.5f ? r : 0.5f + step; /* stays a real footprint */
        }
}
typedef struct {
    float *v;          /* n x 4 */
    float *R, *fx, *fy;
    int *cx, *cy, *inv;
    int n;
    float dim;         /* round_radii's dim for the level being spread */
    sd_footprint_table *fps; /* the footprint cache */
    int own_fps;       /* whether fps was made for this row (else the caller's) */
} rowsrc_t;

/* A row of n sources, with the footprint table fps (NULL: a table of its own). */
static int rowsrc_alloc(rowsrc_t *r, int n, sd_footprint_table *fps)
{
    r->v = malloc(sizeof(float) * 4 * (size_t)n);
    r->R = malloc(sizeof(float) * 3 * (size_t)n);
    r->cx = malloc(sizeof(int) * 3 * (size_t)n);
    r->own_fps = !fps;
    r->fps = fps ? fps : sd_footprint_table_new();
    r->n = n;
    if (!r->v || !r->R || !r->cx || !r->fps) {
        free(r->v); free(r->R); free(r->cx);
        if (r->own_fps) sd_footprint_table_free(r->fps);
        r->v = NULL; r->R = NULL; r->cx = NULL; r->fps = NULL;
        return -1;
    }
    r->fx = r->R + n;
    r->fy = r->R + 2 * (ptrdiff_t)n;
    r->cy = r->cx + n;
    r->inv = r->cx + 2 * (ptrdiff_t)n;
    return 0;
}

static void rowsrc_free(rowsrc_t *r)
{
    free(r->v);
    free(r->R);
    free(r->cx);
    if (r->own_fps) sd_footprint_table_free(r->fps);
}

/* Source i of the row: light v (NULL: none), centre (cx, cy) in plane coordinates, radius R. */
static inline void rowsrc_set(rowsrc_t *r, int i, const float *v, float cx, float cy, float R, int inverted)
{
    float *d = r->v + 4 * (ptrdiff_t)i;
    if (!v) {
        d[0] = d[1] = d[2] = d[3] = 0.0f;
        r->cx[i] = sd_ifloor(cx);
        r->cy[i] = sd_ifloor(cy);
        r->R[i] = -1.0f; /* no light: fits in any run */
        return;
    }
    for (int c = 0; c < 4; c++) d[c] = v[c];
    float bx = (float)sd_ifloor(cx), by = (float)sd_ifloor(cy);
    float fx = (float)sd_ifloor((cx - bx) * QP + 0.5f) * (1.0f / QP);
    float fy = (float)sd_ifloor((cy - by) * QP + 0.5f) * (1.0f / QP);
    if (fx >= 1.0f) { fx -= 1.0f; bx += 1.0f; }
    if (fy >= 1.0f) { fy -= 1.0f; by += 1.0f; }
    r->cx[i] = (int)bx;
    r->cy[i] = (int)by;
    r->fx[i] = fx;
    r->fy[i] = fy;
    r->R[i] = R > 0.5f ? R : 0.0f; /* at most half a cell: one footprint, the cell itself */
    r->inv[i] = R > 0.5f ? inverted : 0;
}

/* D[i] += c0 v[i] + c1 v[i-1] for cells i = 0..len (v is 0 outside [0, len)): one end of the
 * spans of `len` neighbouring sources that share a footprint, anti-aliased over two cells. */
static inline void run_end(float *restrict D, const float *restrict v, int len, float c0, float c1)
{
    sd_cell_add(D, v, c0); /* the ends as vectors: GCC keeps the plain loops scalar there */
    for (int q = 1; q < len; q++) {
        float *restrict d = D + 4 * q;
        const float *restrict a = v + 4 * q, *restrict b = v + 4 * (q - 1);
        for (int c = 0; c < 4; c++) d[c] += c0 * a[c] + c1 * b[c];
    }
    sd_cell_add(D + 4 * len, v + 4 * (len - 1), c1);
}

/* The footprint's span ends as offsets into a plane of `stride` floats a row. */
static void footprint_offsets(sd_footprint *fp, ptrdiff_t stride)
{
    for (int n = 0; n < fp->n; n++) {
        const sd_fp_span *q = &fp->s[n];
        ptrdiff_t row = (ptrdiff_t)q->dj * stride;
        fp->e[n].off[0] = row + 4 * (ptrdiff_t)q->ia;
        fp->e[n].off[1] = row + 4 * (ptrdiff_t)q->ib;
    }
    fp->off_stride = stride;
}

/* sd_plane_touch of every row the footprint writes from cell (x0, y0), for a run of len
 * sources, when all its cells are known to lie inside the plane: no clamping, one row after
 * the other (the rows' bounds in one vectorised pass instead of a test and a store per span). */
static inline void widen_rows(sd_plane *p, const sd_footprint *fp, int x0, int y0, int len)
{
    int nrows = fp->jhi - fp->jlo + 1, tail = x0 + len + 1, sh = p->bshift;
    int *restrict l = p->xl + y0 + fp->jlo, *restrict r = p->xr + y0 + fp->jlo;
    const int *restrict ia = fp->row_ia, *restrict ib = fp->row_ib;
    for (int j = 0; j < nrows; j++) {
        int a = x0 + ia[j], b = tail + ib[j];
        l[j] = a < l[j] ? a : l[j];
        r[j] = b > r[j] ? b : r[j];
    }
    /* the blocks of the footprint's widest row, for every row: blocks are wide, and a superset
     * only costs the resolve and the composite a few cells of 0 */
    uint64_t bits = sd_block_bits((x0 + fp->ilo) >> sh, (x0 + len + fp->ihi) >> sh);
    uint64_t *restrict m = p->blocks + y0 + fp->jlo;
    for (int j = 0; j < nrows; j++) m[j] |= bits;
}

/* Spreads `len` sources with light v (len x 4) that share one footprint (radius R, orientation,
 * centre (fx, fy) inside its cell) and occupy consecutive cells from plane cell (x0, y0). */
SD_CLONES static void spread_run(sd_plane *p, const sd_aperture *ap, sd_footprint_table *fps, const float *v, int len,
                                  int x0, int y0, float R, float fx, float fy, int inv)
{
    sd_footprint *fp = sd_footprint_get(fps, ap, R, fx, fy, inv);
    const sd_fp_span *sp = fp->s;
    if (y0 + fp->jlo < 0 || y0 + fp->jhi >= p->rows || x0 + fp->ilo < 0 || x0 + fp->ihi + len > p->cols + 1) {
        /* near the plane's edge (the margins make this rare): every span checked */
        for (int n = 0; n < fp->n; n++) {
            const sd_fp_span *q = &sp[n];
            int row = y0 + q->dj;
            if (row < 0 || row >= p->rows) continue; /* margins make this a no-op; it guards memory */
            float *D = p->buf + (ptrdiff_t)row * p->stride;
            int xa = x0 + q->ia, xb = x0 + q->ib;
            sd_plane_touch(p, row, xa, xb + len + 1);
            if (xa >= 0 && xb + len <= p->cols + 1) {
                const float *ew = fp->e[n].ew;
                run_end(D + 4 * (ptrdiff_t)xa, v, len, ew[0], ew[1]);
                run_end(D + 4 * (ptrdiff_t)xb, v, len, ew[2], ew[3]);
                continue;
            }
            for (int i = 0; i < len; i++) { /* clamp span by span */
                float vv[4];
                for (int c = 0; c < 4; c++) vv[c] = v[4 * i + c] * q->w;
                float base = (float)(x0 + i);
                add_span(D, p->cols, base + q->a, base + q->b, vv);
            }
        }
        return;
    }
    /* Wholly inside the plane from here on: every row's cells [xa, xb + len + 1) lie within
     * [0, cols + 2), so the touch needs no clamping. Each span's ends are offsets from the run's
     * first cell, made once per footprint and plane layout. */
    widen_rows(p, fp, x0, y0, len);
    if (fp->off_stride != p->stride) footprint_offsets(fp, p->stride);
    float *at = p->buf + (ptrdiff_t)y0 * p->stride + 4 * (ptrdiff_t)x0;
    const sd_fp_end *e = fp->e;
    int nsp = fp->n; /* in a local: the stores into the plane cannot change it */
    if (len == 1) { /* a source of its own (a CoC no neighbour shares): run_end's arithmetic, bare */
        /* the light in a local: each end's cells go as one vector instead of being reloaded
         * after every store */
        float lv[4] = {v[0], v[1], v[2], v[3]};
        for (int n = 0; n < nsp; n++) sd_span_ends_add(at + e[n].off[0], at + e[n].off[1], e[n].ew, lv);
        return;
    }
    for (int n = 0; n < nsp; n++) {
        run_end(at + e[n].off[0], v, len, e[n].ew[0], e[n].ew[1]);
        run_end(at + e[n].off[1], v, len, e[n].ew[2], e[n].ew[3]);
    }
}

/* Spreads a gathered row: runs of neighbours with the same footprint go together. */
static void spread_row(sd_plane *p, const sd_aperture *ap, rowsrc_t *r)
{
    int i = 0, n = r->n;
    round_radii(r->R, r->v, n, r->dim);
    while (i < n) {
        if (r->R[i] < 0.0f) { i++; continue; }
        int j = i + 1, last = i;
        while (j < n && r->cx[j] == r->cx[i] + (j - i) && r->cy[j] == r->cy[i]) {
            if (r->R[j] >= 0.0f) {
                if (r->R[j] != r->R[i] || r->inv[j] != r->inv[i] || r->fx[j] != r->fx[i] || r->fy[j] != r->fy[i])
                    break;
                last = j;
            }
            j++;
        }
        spread_run(p, ap, r->fps, r->v + 4 * (ptrdiff_t)i, last + 1 - i, r->cx[i], r->cy[i], r->R[i], r->fx[i],
                   r->fy[i], r->inv[i]);
        i = last + 1;
    }
}

/* Radii (lo, hi] that give level k any weight (slightly widened: used to skip rows only). */
static inline void level_span(int k, int base, float *lo, float *hi)
{
    *hi = 1.001f * SD_R_MAX * ldexpf(1.0f, k);
    *lo = k <= base ? -1.0f : 0.999f * SD_R_MAX * exp2f((float)k - 1.0f - SD_PYR_FADE);
}


/* Width (in cells of the level) of the column tiles sources are spread in; at least 2 SD_REACH + 2,
 * so that tiles two apart never write the same cell. */
#define SPREAD_TILE 256
_Static_assert(SPREAD_TILE >= 2 * SD_REACH + 2, "column tiles narrower than two reaches");

/* The light of source cell (x, y), times scale, as 4 channels. */
static inline void load_cell(const sd_pyr_src *s, int x, int y, float scale, float *v)
{
    const float *q = s->src.data +
                     (s->roff ? (s->roff[y] + x) * s->src.pix : (ptrdiff_t)y * s->src.row + (ptrdiff_t)x * s->src.pix);
    for (int c = 0; c < 4; c++) v[c] = c < s->src.nch ? scale * q[c] : 0.0f;
}

/* Whether source cell (x, y) holds no light at all (its channels all zero). */
static inline int cell_unlit(const sd_pyr_src *s, int x, int y)
{
    const float *q = s->src.data +
                     (s->roff ? (s->roff[y] + x) * s->src.pix : (ptrdiff_t)y * s->src.row + (ptrdiff_t)x * s->src.pix);
    for (int c = 0; c < s->src.nch; c++)
        if (q[c] != 0.0f) return 0;
    return 1;
}

typedef struct {
    const sd_pyr_src *s;
    int base, col0, col1, row0, row1;
    float rcap;
    const sd_aperture *ap;
} spread_ctx;

/* Columns [x0, x1) of base row y that hold sources. */
static inline void row_span(const spread_ctx *c, int y, int *x0, int *x1)
{
    *x0 = c->col0;
    *x1 = c->col1;
    if (c->s->rx0) {
        *x0 = imax(*x0, c->s->rx0[y]);
        *x1 = imin(*x1, c->s->rx1[y]);
    }
}

/* Level weight with the common case (a radius spread at level 0) first. */
static inline float weight_at(float R, int k, int base)
{
    if (R <= SD_R_MAX * SD_PYR_FADE_START) return k == base ? 1.0f : 0.0f;
    return sd_level_weight(R, k, base);
}

/* How many of the n cells from q (4 floats each, side by side) hold no light, every channel +0
 * or -0, counted from the first: 8 cells at a time as one OR of the floats' bits (a vector OR
 * where a slice's row is mostly dark), the rest as sd_nonzero4 tests. */
static inline int unlit_run(const float *q, int n)
{
    int i = 0;
    /* the first 8 one by one: where slices interleave (a noisy depth) most runs end there */
    for (; i < n && i < 8; i++)
        if (sd_nonzero4(q + 4 * (ptrdiff_t)i)) return i;
    for (; i + 8 <= n; i += 8) {
        uint32_t bits = 0;
        for (int j = 0; j < 32; j++) {
            uint32_t b;
            memcpy(&b, q + 4 * (ptrdiff_t)i + j, sizeof b);
            bits |= b;
        }
        if (bits & 0x7fffffffu) break;
    }
    while (i < n && !sd_nonzero4(q + 4 * (ptrdiff_t)i)) i++;
    return i;
}

/* One row of base-grid sources at their cell centres (the common case: no centroids, no
 * merging), gathered and spread in runs that share a radius. */
static void spread_row_cells(const spread_ctx *c, sd_plane *pl, int k, int by, int bx0, int bx1, rowsrc_t *rs)
{
    const sd_pyr_src *s = c->s;
    const float *cr = s->coc + sd_pyr_cell(s, 0, by);
    const float *src = s->src.data + (s->roff ? s->roff[by] * s->src.pix : (ptrdiff_t)by * s->src.row);
    ptrdiff_t pix = s->src.pix;
    int nch = s->src.nch, any = 0;
    float rscale = 1.0f / (float)(1 << k);
    for (int bx = bx0; bx < bx1; bx++) {
        int i = bx - bx0;
        float *v = rs->v + 4 * (ptrdiff_t)i;
        const float *q = src + (ptrdiff_t)bx * pix;
        if (nch == 4 && !sd_nonzero4(q)) {
            /* no light (most of a slice's cells where the depth is noisy): w q below, w being
             * finite and >= 0, is q itself, zeros' signs included; its radius is never read.
             * So for the whole run of such cells from here (cells side by side: pix == 4). */
            int len = pix == 4 ? unlit_run(q, bx1 - bx) : 1;
            memcpy(v, q, 4 * sizeof *v * (size_t)len);
            for (int j = i; j < i + len; j++) {
                rs->R[j] = -1.0f;
                rs->inv[j] = 0;
            }
            bx += len - 1;
            continue;
        }
        float cc = cr[bx];
        float R = sd_radius(cc, c->rcap);
        float w = weight_at(R, k, c->base) * s->scale;
        if (nch == 4) {
            for (int ch = 0; ch < 4; ch++) v[ch] = w * q[ch];
        } else {
            for (int ch = 0; ch < 4; ch++) v[ch] = ch < nch ? w * q[ch] : 0.0f;
        }
        int lit = v[0] != 0.0f || v[1] != 0.0f || v[2] != 0.0f || v[3] != 0.0f;
        float Rk = R * rscale;
        rs->R[i] = !lit ? -1.0f : (Rk > 0.5f ? Rk : 0.0f); /* at most half a cell: the cell itself */
        rs->inv[i] = Rk > 0.5f && cc < 0.0f;
        any |= lit;
    }
    if (!any) return;
    int n = bx1 - bx0, i = 0, o = pl->o;
    round_radii(rs->R, rs->v, n, rs->dim);
    while (i < n) {
        if (rs->R[i] < 0.0f) { i++; continue; }
        int j = i + 1, last = i;
        for (; j < n; j++) {
            if (rs->R[j] < 0.0f) continue;
            if (rs->R[j] != rs->R[i] || rs->inv[j] != rs->inv[i]) break;
            last = j;
        }
        spread_run(pl, c->ap, rs->fps, rs->v + 4 * (ptrdiff_t)i, last + 1 - i, bx0 + i + o, by + o, rs->R[i], 0.5f,
                   0.5f, rs->inv[i]);
        i = last + 1;
    }
}

/* One level's pass over the sources: level k of the pyramid, whose cells merge 2^sh x 2^sh base
 * cells; radii (lo, hi] give it any weight (level_span). */
typedef struct {
    int k, sh;
    float lo, hi;
    float inv;    /* 1 / 2^sh: base cells to level cells */
    float o;      /* the plane's margin: level cell (0, 0) is plane cell (o, o) */
    float rscale; /* 1 / 2^k: frame pixels to level cells */
    float whi;    /* hi, or no bound on the top level (sd_level_of stops there) */
} level_pass;

/* Source i of the row from base cell (bx, by) itself (sh == 0, the cell's light centroid given
 * by pos); returns whether it has light. */
static int cell_source(const spread_ctx *c, const level_pass *lp, int bx, int by, rowsrc_t *rs, int i)
{
    const sd_pyr_src *s = c->s;
    float ccx = (float)bx + 0.5f + lp->o, ccy = (float)by + 0.5f + lp->o;
    if (cell_unlit(s, bx, by)) { /* its light times any weight is 0: as below, without the weight */
        rowsrc_set(rs, i, NULL, ccx, ccy, 0.0f, 0);
        return 0;
    }
    float cc = s->coc[sd_pyr_cell(s, bx, by)];
    float R = sd_radius(cc, c->rcap);
    float w = weight_at(R, lp->k, c->base);
    float v[4] = {0, 0, 0, 0};
    if (w > 0.0f) load_cell(s, bx, by, s->scale * w, v);
    if (v[0] == 0.0f && v[1] == 0.0f && v[2] == 0.0f && v[3] == 0.0f) {
        rowsrc_set(rs, i, NULL, ccx, ccy, 0.0f, 0);
        return 0;
    }
    if (s->pos) {
        const float *q = s->pos + 2 * sd_pyr_cell(s, bx, by);
        ccx += q[0];
        ccy += q[1];
    }
    rowsrc_set(rs, i, v, ccx, ccy, R * lp->rscale, cc < 0.0f);
    return 1;
}

/* Sources bx0..bx1-1 of base row by from the cells themselves (sh == 0), as cell_source gives
 * them; a run of cells side by side without light is set in one pass (most of a coarse slice's
 * row holds none). Returns whether any has light. */
static int cell_sources(const spread_ctx *c, const level_pass *lp, int by, int bx0, int bx1, rowsrc_t *rs)
{
    const sd_pyr_src *s = c->s;
    int side = s->src.nch == 4 && s->src.pix == 4, any = 0, cy = sd_ifloor((float)by + 0.5f + lp->o);
    const float *src = s->src.data + (s->roff ? s->roff[by] * s->src.pix : (ptrdiff_t)by * s->src.row);
    for (int bx = bx0; bx < bx1; bx++) {
        const float *q = src + 4 * (ptrdiff_t)bx;
        if (!side || sd_nonzero4(q)) {
            any |= cell_source(c, lp, bx, by, rs, bx - bx0);
            continue;
        }
        int len = unlit_run(q, bx1 - bx), i0 = bx - bx0;
        memset(rs->v + 4 * (ptrdiff_t)i0, 0, 4 * sizeof *rs->v * (size_t)len);
        for (int j = 0; j < len; j++) { /* rowsrc_set's unlit source at the cell's centre */
            rs->cx[i0 + j] = sd_ifloor((float)(bx + j) + 0.5f + lp->o);
            rs->cy[i0 + j] = cy;
            rs->R[i0 + j] = -1.0f;
        }
        bx += len - 1;
    }
    return any;
}

/* Source i of the row from the level's sources in block (bx, by) of the level, base rows
 * [y0, y1) and columns [x0, x1), merged: their light at its centroid, their light-weighted
 * radius; returns whether it has light. */
static int block_source(const spread_ctx *c, const sd_pyramid *p, const level_pass *lp, int bx, int by, int y0,
                        int y1, int x0, int x1, rowsrc_t *rs, int i)
{
    const sd_pyr_src *s = c->s;
    /* centroid sums in double: the weights may be tiny (denormal light) or huge */
    float sv[4] = {0, 0, 0, 0}, rmin = INFINITY, rmax = -INFINITY;
    double so = 0, sx = 0, sy = 0, sr = 0, ss = 0;
    for (int y = y0; y < y1; y++) {
        if (!(p->rhi[y - c->row0] > lp->lo && p->rlo[y - c->row0] <= lp->hi)) continue;
        const float *cr = s->coc + sd_pyr_cell(s, 0, y);
        int ra, rb; /* this row's own sources (rows may be stored only that wide) */
        row_span(c, y, &ra, &rb);
        ra = imax(ra, x0);
        rb = imin(rb, x1);
        for (int x = ra; x < rb; x++) {
            float cc = cr[x];
            float R = sd_radius(cc, c->rcap);
            /* a radius outside the level's span has no weight here: skip the cell's light */
            if (!(R > lp->lo && R <= lp->whi)) continue;
            if (cell_unlit(s, x, y)) continue; /* adds nothing below, whatever its weight */
            float w = sd_level_weight(R, lp->k, c->base);
            if (w <= 0.0f) continue;
            float v[4];
            load_cell(s, x, y, s->scale * w, v);
            double e = (double)fabsf(v[0]) + fabsf(v[1]) + fabsf(v[2]) + fabsf(v[3]);
            if (e == 0.0) continue;
            float px = (float)x + 0.5f, py = (float)y + 0.5f;
            if (s->pos) {
                const float *q = s->pos + 2 * sd_pyr_cell(s, x, y);
                px += q[0];
                py += q[1];
            }
            for (int ch = 0; ch < 4; ch++) sv[ch] += v[ch];
            so += e;
            sx += e * px;
            sy += e * py;
            sr += e * R;
            ss += cc < 0.0f ? -e : e;
            rmin = R < rmin ? R : rmin;
            rmax = R > rmax ? R : rmax;
        }
    }
    if (!(so > 0.0)) {
        rowsrc_set(rs, i, NULL, (float)bx + 0.5f + lp->o, (float)by + 0.5f + lp->o, 0.0f, 0);
        return 0;
    }
    /* a block of one radius keeps it exactly (its weighted mean would round); a centroid outside
     * the block (weights overflowing) falls back to the block's centre */
    float Rm = rmin == rmax ? rmin : (float)(sr / so);
    float mx = (float)(sx / so) * lp->inv, my = (float)(sy / so) * lp->inv;
    if (!(mx >= (float)bx && mx <= (float)(bx + 1))) mx = (float)bx + 0.5f;
    if (!(my >= (float)by && my <= (float)(by + 1))) my = (float)by + 0.5f;
    if (!(Rm >= rmin && Rm <= rmax)) Rm = rmin;
    rowsrc_set(rs, i, sv, mx + lp->o, my + lp->o, Rm * lp->rscale, ss < 0.0);
    return 1;
}

/* Spreads the level-k sources of level rows [r0, r1) into plane k: cells of the base grid
 * directly at k == base, else merged 2^(k-base) x 2^(k-base) blocks at their light centroid. */
static void spread_rows(const spread_ctx *c, sd_pyramid *p, int k, int r0, int r1, rowsrc_t *rs)
{
    sd_plane *pl = &p->lev[k];
    const sd_pyr_src *s = c->s;
    int sh = k - c->base, bs = 1 << sh;
    level_pass lp = {k, sh, 0.0f, 0.0f, 1.0f / (float)bs, (float)pl->o, 1.0f / (float)(1 << k), 0.0f};
    level_span(k, c->base, &lp.lo, &lp.hi);
    lp.whi = k < SD_PYR_MAX_LEVELS - 1 ? lp.hi : INFINITY;
    rs->dim = s->dim_light > 0.0f ? ldexpf(s->dim_light, 2 * k) : -1.0f;
    /* Column tiles, each spread over all the band's rows before the next: a source writes the
     * 2R rows around its own, and a tile keeps those rows' stretch of the plane in cache. */
    for (int t0 = c->col0; t0 < c->col1; t0 += SPREAD_TILE << sh) {
        int t1 = imin(t0 + (SPREAD_TILE << sh), c->col1);
        for (int by = r0; by < r1; by++) {
            int y0 = imax(by << sh, c->row0), y1 = imin((by + 1) << sh, c->row1);
            float rl = INFINITY, rh = -INFINITY;
            int ux0 = t1, ux1 = t0; /* the columns of the tile the block row's sources span */
            for (int y = y0; y < y1; y++) {
                rl = rl < p->rlo[y - c->row0] ? rl : p->rlo[y - c->row0];
                rh = rh > p->rhi[y - c->row0] ? rh : p->rhi[y - c->row0];
                int a, b;
                row_span(c, y, &a, &b);
                a = imax(a, t0);
                b = imin(b, t1);
                if (a < b) { ux0 = imin(ux0, a); ux1 = imax(ux1, b); }
            }
            if (!(rh > lp.lo && rl <= lp.hi) || ux0 >= ux1) continue; /* no source of this level here */
            int bx0 = ux0 >> sh, bx1 = (ux1 + bs - 1) >> sh;
            rs->n = bx1 - bx0;
            if (sh == 0 && !s->pos) {
                spread_row_cells(c, pl, k, by, bx0, bx1, rs);
                continue;
            }
            int any = 0;
            if (sh == 0)
                any = cell_sources(c, &lp, by, bx0, bx1, rs);
            else
                for (int bx = bx0; bx < bx1; bx++) {
                    int x0 = imax(bx << sh, ux0), x1 = imin((bx + 1) << sh, ux1);
                    any |= block_source(c, p, &lp, bx, by, y0, y1, x0, x1, rs, bx - bx0);
                }
            if (any) spread_row(pl, c->ap, rs);
        }
    }
}

/* How many rows of level k's plane sources with radii up to rmax (frame pixels) write beyond
 * their own (a footprint never exceeds SD_R_MAX + 1 cells, see sd_footprint_make). */
static int level_reach(float rmax, int k)
{
    float rk = ldexpf(rmax, -k);
    return imin(sd_iceil(rk < SD_R_MAX + 1.0f ? rk : SD_R_MAX + 1.0f) + 3, SD_REACH);
}

void sd_pyr_want(sd_pyramid *p, int base, int row0, int row1, const int *x0, const int *x1, int col0, int col1,
                 float rmax)
{
    if (!p->want || base < 0 || base >= p->nlev) return;
    int *want = p->want; /* per plane row: the columns [want[2 r], want[2 r + 1]) */
    for (int k = 0; k < base; k++) want += 2 * p->lev[k].rows;
    for (int k = base; k < p->nlev; want += 2 * p->lev[k].rows, k++) {
        const sd_plane *pl = &p->lev[k];
        float lo, hi;
        level_span(k, base, &lo, &hi);
        if (!(rmax > lo)) break; /* no radius up to rmax reaches this level, nor the coarser ones */
        int sh = k - base, reach = level_reach(rmax, k);
        for (int y = imax(row0, 0); y < row1;) {
            /* the base rows of one row of this level: the hull of their sources' columns */
            int ly = y >> sh, ye = imin((ly + 1) << sh, row1), a = INT_MAX, e = INT_MIN;
            for (; y < ye; y++) {
                int ya = x0 ? imax(x0[y], col0) : col0, yb = x1 ? imin(x1[y], col1) : col1;
                if (ya < yb) { a = imin(a, ya); e = imax(e, yb); }
            }
            if (a >= e) continue;
            /* as the spread marks them (sd_pyr_mark) */
            int c0 = imax((a >> sh) + pl->o - reach, 0);
            int c1 = imin(((e - 1) >> sh) + 1 + pl->o + reach, pl->cols + 2);
            int r1 = imin(ly + pl->o + reach + 1, pl->rows);
            for (int q = imax(ly + pl->o - reach, 0); q < r1; q++) {
                want[2 * q] = imin(want[2 * q], c0);
                want[2 * q + 1] = imax(want[2 * q + 1], c1);
            }
        }
    }
}

void sd_pyr_prefault(sd_pyramid *p, int nthreads)
{
    if (!p->want) return;
    const int *want = p->want;
    for (int k = 0; k < p->nlev; want += 2 * p->lev[k].rows, k++) {
        const sd_plane *pl = &p->lev[k];
        if (!sd_big_unfaulted(pl->buf)) continue; /* its pages are in where the last call wrote */
        const int *w = want;
        /* each row's columns (a few pages): the threads take rows */
        SD_PARALLEL_FOR(sd_threads_for(sd_threads(nthreads), (ptrdiff_t)pl->rows * pl->cols))
        for (int y = 0; y < pl->rows; y++)
            if (w[2 * y] < w[2 * y + 1])
                sd_big_prefault(pl->buf, sizeof(float) * ((size_t)y * (size_t)pl->stride + 4 * (size_t)w[2 * y]),
                                sizeof(float) * 4 * (size_t)(w[2 * y + 1] - w[2 * y]), 1);
    }
    free(p->want);
    p->want = NULL;
}

/* One level's share of a spread: rows [f0, f1) of level k cut into nb bands of `band` rows (or,
 * bycol, into column tiles), its tasks numbered from `first`. */
typedef struct {
    int k, f0, f1, band, nb, bycol, first;
} level_bands;

sd_status sd_pyr_spread(sd_pyramid *p, int base, const sd_pyr_src *s, const sd_aperture *ap,
                        sd_footprint_table *const *tables, int row0, int row1, int col0, int col1, int nthreads)
{
    int nt = sd_threads(nthreads);
    if (base < 0 || base >= p->nlev) return SD_ERR_ARG;
    int ny = p->lev[base].ny, nx = p->lev[base].nx;
    row0 = imax(row0, 0);
    row1 = imin(row1, ny);
    col0 = imax(col0, 0);
    col1 = imin(col1, nx);
    if (row0 >= row1 || col0 >= col1) return SD_OK;
    spread_ctx c = {s, base, col0, col1, row0, row1, p->rcap, ap};
    /* one row of gathered sources per thread, as wide as the widest level's rows */
    rowsrc_t rs[SD_MAX_THREADS];
    int nrs = 0;
    for (; nrs < nt; nrs++)
        if (rowsrc_alloc(&rs[nrs], col1 - col0 + 1, tables ? tables[nrs] : NULL)) break;
    if (nrs < nt) {
        for (int i = 0; i < nrs; i++) rowsrc_free(&rs[i]);
        return SD_ERR_NOMEM;
    }
    /* radius range of every source row, so that each level only visits rows it has sources in */
    SD_PARALLEL_FOR_DYN(sd_threads_for(nt, (ptrdiff_t)(row1 - row0) * (col1 - col0)))
    for (int y = row0; y < row1; y++) {
        const float *cr = s->coc + sd_pyr_cell(s, 0, y);
        float lo = INFINITY, hi = -INFINITY;
        int xa, xb;
        row_span(&c, y, &xa, &xb);
        SD_SIMD_MINMAX(lo, hi)
        for (int x = xa; x < xb; x++) {
            float a = fabsf(cr[x]);
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
        }
        /* radii, clamped like the sources' */
        lo = sd_radius(lo, p->rcap);
        hi = sd_radius(hi, p->rcap);
        p->rlo[y - row0] = xa < xb ? lo : INFINITY;
        p->rhi[y - row0] = xa < xb ? hi : -INFINITY;
    }
    /* Every level's bands, planned first and spread in one parallel loop: the levels write planes
     * of their own, so a thread that finds no band of one level ready takes one of the next, and
     * the threads meet once per spread instead of once per level. */
    level_bands lv[SD_PYR_MAX_LEVELS];
    int nlv = 0, ntask = 0;
    for (int k = base; k < p->nlev; k++) {
        sd_plane *pl = &p->lev[k];
        int sh = k - base;
        int y0 = row0 >> sh, y1 = imin((row1 + (1 << sh) - 1) >> sh, pl->ny);
        int x0 = col0 >> sh, x1 = imin((col1 + (1 << sh) - 1) >> sh, pl->nx);
        /* the level rows that hold sources of this level */
        float lo, hi;
        level_span(k, base, &lo, &hi);
        int f0 = y1, f1 = y0;
        float rmax = 0.0f;
        for (int y = row0; y < row1; y++)
            if (p->rhi[y - row0] > lo && p->rlo[y - row0] <= hi) {
                f0 = imin(f0, y >> sh);
                f1 = imax(f1, (y >> sh) + 1);
                rmax = p->rhi[y - row0] > rmax ? p->rhi[y - row0] : rmax;
            }
        if (f0 >= f1) continue;
        int reach = level_reach(rmax, k); /* the farthest these sources reach */
        sd_pyr_mark(p, k, f0 + pl->o - reach, f1 + pl->o + reach, x0 + pl->o - reach, x1 + pl->o + reach);
        /* bands start at f0 and depend only on the rows spread, never on the thread count */
        level_bands *L = &lv[nlv++];
        *L = (level_bands){k, f0, f1, 2 * reach + 2, 0, 0, ntask};
        L->nb = (f1 - f0 + L->band - 1) / L->band;
        /* bands too short to split by rows are split by columns, in the column tiles
         * spread_rows uses anyway, so that the result is the same for any thread count */
        int tile = SPREAD_TILE << sh, ntile = (col1 - col0 + tile - 1) / tile;
        if (L->nb < 3 && ntile < 3) { /* one band of all the rows */
            L->band = f1 - f0;
            L->nb = 1;
        } else if (L->nb < 3) {
            /* the tiles write the same rows: widen the rows' nonzero ranges up front to all the
             * tiles can reach (so the tiles never change them) */
            for (int y = imax(f0 + pl->o - reach, 0); y < imin(f1 + pl->o + reach, pl->rows); y++)
                sd_plane_touch(pl, y, x0 + pl->o - reach, x1 + pl->o + reach);
            L->bycol = 1;
            L->nb = ntile;
        }
        ntask += L->nb;
    }
    /* Even bands (or tiles) write cells no other even one of their level writes, odd ones
     * likewise; an odd one starts once both even neighbours are done. So every cell gets its
     * even band's light before its odd band's whatever the thread count, and no thread waits at
     * a barrier between the two halves. Tasks: every level's even bands, then the odd ones. */
    atomic_int *done = malloc(sizeof(atomic_int) * (size_t)(ntask ? ntask : 1));
    int *task = malloc(sizeof(int) * (size_t)(ntask ? ntask : 1));
    if (!done || !task) {
        free(done);
        free(task);
        for (int i = 0; i < nrs; i++) rowsrc_free(&rs[i]);
        return SD_ERR_NOMEM;
    }
    int nq = 0;
    for (int odd = 0; odd < 2; odd++)
        for (int l = 0; l < nlv; l++)
            for (int b = odd; b < lv[l].nb; b += 2) task[nq++] = lv[l].first + b;
    for (int t = 0; t < ntask; t++) atomic_init(&done[t], 0);
    /* dynamic scheduling hands the tasks out in order: every band an odd one waits for is
     * already being spread */
    SD_PARALLEL_FOR_DYN(ntask > 1 ? nt : 1)
    for (int q = 0; q < ntask; q++) {
        int t = task[q], l = 0;
        while (l + 1 < nlv && lv[l + 1].first <= t) l++;
        const level_bands *L = &lv[l];
        int b = t - L->first;
        if (b & 1)
            while (!atomic_load_explicit(&done[t - 1], memory_order_acquire) ||
                   (b + 1 < L->nb && !atomic_load_explicit(&done[t + 1], memory_order_acquire)))
                sd_relax_cpu();
        if (L->bycol) {
            int tile = SPREAD_TILE << (L->k - base);
            spread_ctx ct = c;
            ct.col0 = col0 + b * tile;
            ct.col1 = imin(ct.col0 + tile, col1);
            spread_rows(&ct, p, L->k, L->f0, L->f1, &rs[sd_thread_id()]);
        } else {
            int r0 = L->f0 + b * L->band, r1 = imin(r0 + L->band, L->f1);
            spread_rows(&c, p, L->k, r0, r1, &rs[sd_thread_id()]);
        }
        atomic_store_explicit(&done[t], 1, memory_order_release);
    }
    free(done);
    free(task);
    for (int i = 0; i < nrs; i++) rowsrc_free(&rs[i]);
    return SD_OK;
}

sd_status sd_scatter(int H, int W, sd_cview src, const float *coc, ptrdiff_t coc_row,
                     const sd_aperture *ap, sd_view dst, int nthreads, const sd_cancel *cancel)
{
    if (H < 1 || W < 1 || src.nch < 1 || src.nch > 4 || dst.nch != src.nch || ap->nrows < 1)
        return SD_ERR_ARG;
    float max_coc = sd_max_abs(H, W, coc, coc_row, nthreads);
    sd_pyramid *p = sd_pyr_new(H, W, max_coc, nthreads);
    if (!p) return SD_ERR_NOMEM;
    sd_pyr_want(p, 0, 0, H, NULL, NULL, 0, W, sd_radius(max_coc, p->rcap));
    sd_pyr_prefault(p, nthreads);
    sd_pyr_src s = {src, 1.0f, coc, NULL, coc_row, NULL, NULL, NULL, 0.0f};
    if (sd_pyr_spread(p, 0, &s, ap, NULL, 0, H, 0, W, nthreads) != SD_OK) { sd_pyr_free(p); return SD_ERR_NOMEM; }
    if (cancel && cancel->check && cancel->check(cancel->ctx)) { sd_pyr_free(p); return SD_ERR_INTERRUPTED; }
    sd_pyr_resolve(p, 0, nthreads);
    int nt = sd_threads(nthreads);
    SD_PARALLEL_FOR(nt)
    for (int y = 0; y < H; y++) {
        int live = y >= p->live_y0 && y < p->live_y1;
        const float *r = sd_pyr_row(p, y);
        float *o = dst.data + (ptrdiff_t)y * dst.row;
        for (int x = 0; x < W; x++) {
            int on = live && x >= p->live_x0 && x < p->live_x1;
            for (int c = 0; c < dst.nch; c++) o[(ptrdiff_t)x * dst.pix + c] = on ? r[4 * x + c] : 0.0f;
        }
    }
    sd_pyr_release(p, nthreads);
    return SD_OK;
}
