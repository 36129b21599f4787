/* Aperture stage: the shape's spans at a height, the strips a shape of radius R covers, and a
 * source's footprint (sd_aperture.c), which is where a pixel's CoC becomes the weighted spans
 * the scatter writes. Shared by the scatter (sd_scatter.c) and the gather (sd_gather.c).
 *
 * The evaluation runs for every source row the gather reads and every footprint the scatter
 * plans, so it lives here as inline functions. */
#ifndef SD_APERTURE_H
#define SD_APERTURE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "sd_core.h"

/* Largest radius (pixels) spread at one pyramid level; a larger CoC goes to a coarser level, where a
 * 2^k x 2^k block of sources is merged into one and spread with radius R / 2^k, so the cost per
 * source never exceeds ~2 R_MAX rows whatever the blur. The coarse result is upsampled back;
 * its edge softness (~2^k px) stays below a tenth of the radius. */
#define SD_R_MAX 24.0f
/* Rows a footprint can reach above or below its own: SD_R_MAX + 1 (the largest radius a
 * footprint is made for), rounded up, plus the sub-cell centre and anti-aliased ends. */
#define SD_REACH ((int)SD_R_MAX + 3)
/* Most rows one footprint covers. */
#define SD_AP_MAX_ROWS (2 * SD_REACH + 2)

/* The spans of the unit aperture at one height. */
typedef struct {
    float l[SD_MAX_SPANS], r[SD_MAX_SPANS];
} sd_spans;

/* Spans of the unit aperture at height v (image-down, radius units); inverted = rotated 180. */
static inline void sd_ap_eval(const sd_aperture *ap, float v, int inverted, sd_spans *s)
{
    if (inverted) v = -v;
    int n = ap->nrows;
    float t = (v - ap->vmin) / (ap->vmax - ap->vmin) * (float)n - 0.5f;
    if (t < 0.0f) t = 0.0f;
    if (t > (float)(n - 1)) t = (float)(n - 1);
    int i = (int)t;
    if (i > n - 2) i = n - 2 < 0 ? 0 : n - 2;
    float f = t - (float)i;
    const float *a = ap->spans + (ptrdiff_t)i * ap->nspans * 2;
    const float *b = (n > 1) ? a + ap->nspans * 2 : a;
    for (int k = 0; k < ap->nspans; k++) {
        float l = a[2 * k] + f * (b[2 * k] - a[2 * k]);
        float r = a[2 * k + 1] + f * (b[2 * k + 1] - a[2 * k + 1]);
        if (inverted) { float tmp = l; l = -r; r = -tmp; }
        s->l[k] = l;
        s->r[k] = r > l ? r : l;
    }
}

/* The rows of a shape of radius R centred at height cy: row j covers [j, j + 1), and the shape
 * spans [top, bot]. */
typedef struct {
    const sd_aperture *ap;
    float cy, R, top, bot;
    int inverted;
    int j0, j1; /* the rows it touches: [j0, j1], at most SD_AP_MAX_ROWS */
} sd_ap_strips;

static inline void sd_ap_strips_init(sd_ap_strips *st, const sd_aperture *ap, float cy, float R, int inverted)
{
    float vlo = inverted ? -ap->vmax : ap->vmin;
    float vhi = inverted ? -ap->vmin : ap->vmax;
    st->ap = ap;
    st->cy = cy;
    st->R = R;
    st->inverted = inverted;
    st->top = cy + R * vlo;
    st->bot = cy + R * vhi;
    st->j0 = (int)floorf(st->top);
    st->j1 = (int)ceilf(st->bot) - 1;
    if (st->j1 - st->j0 + 1 > SD_AP_MAX_ROWS) st->j1 = st->j0 + SD_AP_MAX_ROWS - 1;
}

/* The strip of row j inside the shape: returns its height (<= 0: none, *s is then not set) and
 * the shape's spans (in pixels, relative to the centre's column) at the strip's middle. Rows are
 * sampled at the middle of their strip and weighted by its height, so horizontal edges are
 * anti-aliased as well as vertical ones. */
static inline float sd_ap_strip(const sd_ap_strips *st, int j, sd_spans *s)
{
    float t0 = (float)j > st->top ? (float)j : st->top;
    float t1 = (float)(j + 1) < st->bot ? (float)(j + 1) : st->bot;
    float h = t1 - t0;
    if (h <= 0.0f) return h;
    sd_ap_eval(st->ap, (0.5f * (t0 + t1) - st->cy) / st->R, st->inverted, s);
    return h;
}

/* The difference-row weights of a span [a, b] (cells ia = floor(a), ib = floor(b), fractions fa,
 * fb) of weight w: a's two cells (ia, ia + 1), then b's (ib, ib + 1), whose prefix sum is w times
 * each cell's overlap with the span. A span within one or two cells has its ends' entries merged
 * into the overlaps themselves: its weight w is up to 1 / (b - a), and entries of that size
 * would cancel in the prefix sum to a few ulps of w, not of the light (a sliver of an aperture:
 * a source's total off by 10 % in float). */
static inline void sd_span_end_weights(int ia, int ib, float fa, float fb, float w, float ew[4])
{
    if (ib == ia) { /* one cell: its overlap b - a, taken back in the next */
        float o = (fb - fa) * w;
        ew[0] = o;
        ew[1] = -o;
        ew[2] = ew[3] = 0.0f;
    } else if (ib == ia + 1) { /* two cells: 1 - fa and fb, the second's entry their difference */
        ew[0] = (1.0f - fa) * w;
        ew[1] = ((fa - 1.0f) + fb) * w;
        ew[2] = 0.0f;
        ew[3] = -fb * w;
    } else {
        ew[0] = (1.0f - fa) * w;
        ew[1] = fa * w;
        ew[2] = -(1.0f - fb) * w;
        ew[3] = -fb * w;
    }
}

/* ---- footprints (sd_aperture.c) ---- */

/* The footprint of one source as a list of weighted spans relative to the source's cell: it
 * depends only on the radius, the orientation and the sub-cell position of the centre, so the
 * many sources of a flat surface (one CoC) share one footprint. */
#define SD_FOOTPRINT_MAX_SPANS (SD_AP_MAX_ROWS * SD_MAX_SPANS)
typedef struct {
    int dj;       /* row offset from floor(cy) */
    float a, b;   /* span ends relative to floor(cx) */
    float w;      /* strip height / footprint area */
    int ia, ib;   /* each end's first cell: ia = floor(a), ib = floor(b) */
} sd_fp_span;
/* A span as the scatter writes it: each end's first cell as a float offset from its source's
 * cell in a plane of the footprint's `off_stride` floats a row (4 (dj off_stride + ia) and
 * 4 (dj off_stride + ib)), and the weights of that cell and the next (the end anti-aliased over
 * two cells), side by side so that the scatter loads them as one vector: a's two, then b's
 * (negative). */
typedef struct {
    ptrdiff_t off[2];
    float ew[4];
} sd_fp_end;
typedef struct {
    /* What the scatter reads for every source comes first, side by side: on a noisy depth most
     * sources take a footprint of their own from a table of 1024, which is mostly not in cache. */
    int n;
    int jlo, jhi, ilo, ihi; /* the smallest and largest dj, ia and ib of the spans */
    ptrdiff_t off_stride;   /* the plane layout e[].off were made for (0: not made yet) */
    /* per row jlo + j: the smallest ia and the largest ib of its spans (a row without spans:
     * SD_FP_NO_CELL and -SD_FP_NO_CELL), so that the scatter widens each row's nonzero range once
     * per row, all rows in one pass */
    int row_ia[SD_AP_MAX_ROWS], row_ib[SD_AP_MAX_ROWS];
    sd_fp_end e[SD_FOOTPRINT_MAX_SPANS]; /* the spans as the scatter writes them (ends offsets by the scatter) */
    sd_fp_span s[SD_FOOTPRINT_MAX_SPANS];
} sd_footprint;
#define SD_FP_NO_CELL (1 << 28)

/* The aperture of radius R (cells) centred at (fx, fy) inside cell (0, 0), total weight exactly
 * 1. A radius of at most half a cell keeps the whole source in its cell. */
void sd_footprint_make(sd_footprint *fp, const sd_aperture *ap, float fx, float fy, float R, int inverted);

/* Footprints are kept in a small table per thread, a slot per footprint key (a footprint depends
 * on its key alone, so which ones happen to be kept changes nothing but time): neighbours of a
 * noisy depth map rarely share a footprint with the one just before, but a row has few distinct
 * ones. */
/* 1024 slots (13 KB each, 13 MB a thread, of which a render touches the slots its keys hash to):
 * on noisy depth a row's sources hold more distinct radii than 64 slots keep, and a slice's
 * sources hold enough distinct keys that 256 slots often collide (12 MP, 1 % depth noise, 1
 * thread: making footprints took 0.103 s of a render with 256 slots, 0.041 s with 1024, 0.030 s
 * with 2048). */
#define SD_FOOTPRINT_SLOTS_LOG2 10
#define SD_FOOTPRINT_SLOTS (1 << SD_FOOTPRINT_SLOTS_LOG2)

static inline unsigned sd_footprint_slot(float R, float fx, float fy, int inv)
{
    uint32_t a, b, c;
    memcpy(&a, &R, sizeof a);
    memcpy(&b, &fx, sizeof b);
    memcpy(&c, &fy, sizeof c);
    /* multiplicative hashing (MurmurHash3's and Fibonacci's constants) of the key's bits */
    uint32_t h = a ^ (b * 0x85ebca6bu) ^ (c * 0xc2b2ae35u) ^ (uint32_t)inv;
    h ^= h >> 15;
    return (h * 0x9e3779b1u) >> (32 - SD_FOOTPRINT_SLOTS_LOG2);
}

/* A table's keys side by side, apart from the footprints (13 KB each): a lookup reads only the
 * keys, and a slot's footprint is touched when it is made. */
typedef struct {
    float R, fx, fy;
    int inverted, valid;
} sd_footprint_key;
typedef struct {
    sd_footprint_key key[SD_FOOTPRINT_SLOTS];
    sd_footprint fp[SD_FOOTPRINT_SLOTS];
} sd_footprint_table;

/* A footprint table of SD_FOOTPRINT_SLOTS empty slots (NULL without memory; freed by
 * sd_footprint_table_free). What it keeps depends on the footprints' keys and the aperture alone,
 * so one aperture's table may serve any number of spreads. */
sd_footprint_table *sd_footprint_table_new(void);
void sd_footprint_table_free(sd_footprint_table *t);

/* The footprint for this key from table t, made there if its slot holds another one. */
static inline sd_footprint *sd_footprint_get(sd_footprint_table *t, const sd_aperture *ap, float R, float fx,
                                             float fy, int inv)
{
    unsigned i = sd_footprint_slot(R, fx, fy, inv);
    sd_footprint_key *k = &t->key[i];
    if (!k->valid || k->R != R || k->inverted != inv || k->fx != fx || k->fy != fy) {
        sd_footprint_make(&t->fp[i], ap, fx, fy, R, inv);
        *k = (sd_footprint_key){R, fx, fy, inv, 1};
    }
    return &t->fp[i];
}

#endif
