/* Slice planning: where the layered render cuts the CoC axis (sd_slice_centres: where a slice is
 * chosen) and, per slice, the level it is built on and the cells it builds (sd_slice_plan).
 *
 * The render splits each entry between the two slice centres around its CoC. A flat surface (a
 * wall, a group of lights) is a sharp mode of the CoC histogram; split between two slices it
 * would be filled in and composited twice, and two surfaces at nearby depths sharing one slice
 * cannot occlude each other. So the even grid's nearest centre snaps onto every strong mode. The
 * centres follow the NumPy stage they were first written as, to float tolerance, except that the
 * modes stay within the values they average.
 *
 * A slice's cells are those its content covers and, where nearer slices hide part of it, the
 * hidden ones within the reach of its blur (what is filled in there can be carried into view):
 * per row, from the first to the last of those. Its box, on which the fill's grid is laid, is its
 * content grown by that reach. Its level is the pyramid level most of its light is spread at
 * (sd_level_mostly, judged a little above the radius where its weight is half: SLICE_LEVEL_UP). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sd_core.h"
#include "sd_entries.h"
#include "sd_parallel.h"
#include "sd_pyramid.h"
#include "sd_render.h"
#include "sd_slices.h"
#include "sd_util.h"

/* ---- slice centres ---- */

/* Slices: at most SD_MAX_SLICES + 1 centres, at least MIN_SLICE_PX apart; a histogram bin
 * MODE_BIN_PX wide holding MODE_MIN_SHARE of the coverage (and MODE_MIN_PIXELS) is a mode. */
#define MIN_SLICE_PX 1.0
#define MODE_BIN_PX 0.1
#define MODE_MIN_SHARE 0.001
#define MODE_MIN_PIXELS 50.0
/* More bins than this means a CoC range far beyond any frame (the caller clamps |CoC|). */
#define MAX_MODE_BINS ((ptrdiff_t)1 << 26)

/* Slice centres closer than this (px) are one. */
#define MIN_CENTRE_GAP_PX 1e-3

/* Rows per chunk of the histogram pass (each chunk has its own histogram). */
#define SLICE_CHUNK_ROWS 64

/* numpy.histogram's bin of v for nb equal bins over [lo, hi] with these edges: the estimate is
 * corrected against the edges, so a value on an edge lands exactly where numpy puts it. */
static inline ptrdiff_t hist_bin(double v, double lo, double scale, const double *edges, ptrdiff_t nb)
{
    double fi = (v - lo) * scale;
    ptrdiff_t k = fi <= 0.0 ? 0 : (fi >= (double)nb ? nb - 1 : (ptrdiff_t)fi);
    if (k > 0 && v < edges[k]) k--;
    if (k < nb - 1 && v >= edges[k + 1]) k++;
    return k;
}

typedef struct {
    double w;   /* coverage in the bin */
    double cw;  /* coverage-weighted CoC above the bin's lower edge */
    double ew;  /* coverage of values exactly on the bin's lower edge */
    float mn, mx;
} hbin;

typedef struct {
    ptrdiff_t i;
    double w;
} strong_bin;

static int by_weight(const void *pa, const void *pb)
{
    const strong_bin *a = pa, *b = pb;
    if (a->w != b->w) return a->w > b->w ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

static int by_value(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : (a > b);
}

/* Whether any entry with coverage has a CoC in [A, B) (closed: [A, B]), by walking every one. */
static int any_in_scan(const sd_entries *e, double A, double B, int closed)
{
    ptrdiff_t np = (ptrdiff_t)e->H * e->W;
    for (ptrdiff_t i = 0; i < np; i++) {
        double c = e->coc[i];
        if (c >= A && (c < B || (closed && c <= B))) return 1; /* a NaN (no main entry) fails */
    }
    for (ptrdiff_t i = 0; i < e->n; i++) {
        double c = e->xcoc[i];
        if (e->xrgba[4 * i + 3] > 0.0f && c >= A && (c < B || (closed && c <= B))) return 1;
    }
    return 0;
}

/* The same from the fine histogram: its bins' extreme values decide it unless both ends fall in
 * one bin that holds values on both sides of the interval. */
static int any_in(const sd_entries *e, const hbin *h, const double *edges, ptrdiff_t nb, double lo,
                  double scale, double A, double B, int closed)
{
    ptrdiff_t ka = hist_bin(A, lo, scale, edges, nb), kb = hist_bin(B, lo, scale, edges, nb);
#define BELOW_B(v) ((double)(v) < B || (closed && (double)(v) <= B))
    if (ka == kb) {
        const hbin *q = &h[ka];
        if (!(q->mn <= q->mx)) return 0;
        if ((double)q->mn >= A && BELOW_B(q->mn)) return 1;
        if ((double)q->mx >= A && BELOW_B(q->mx)) return 1;
        if ((double)q->mx < A || !BELOW_B(q->mn)) return 0;
        return any_in_scan(e, A, B, closed);
    }
    if (h[ka].mn <= h[ka].mx && (double)h[ka].mx >= A) return 1;
    for (ptrdiff_t k = ka + 1; k < kb; k++)
        if (h[k].mn <= h[k].mx) return 1;
    return h[kb].mn <= h[kb].mx && BELOW_B(h[kb].mn);
#undef BELOW_B
}

/* Widens [*pmn, *pmx] to the CoC of every entry with coverage (rgba NULL: the main entries, NaN
 * for none). Blocks whose whole CoC range lies inside already are skipped without reading their
 * coverage. */
static void coc_range(const float *coc, const float *rgba, ptrdiff_t n, float *pmn, float *pmx)
{
    float fmn = *pmn, fmx = *pmx;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += 256) {
        ptrdiff_t i1 = i0 + 256 < n ? i0 + 256 : n;
        float bmn = coc[i0], bmx = coc[i0];
        SD_SIMD_MINMAX(bmn, bmx)
        for (ptrdiff_t i = i0; i < i1; i++) {
            bmn = coc[i] < bmn ? coc[i] : bmn;
            bmx = coc[i] > bmx ? coc[i] : bmx;
        }
        if (bmn >= fmn && bmx <= fmx) continue;
        for (ptrdiff_t i = i0; i < i1; i++) {
            float c = coc[i];
            if ((c < fmn || c > fmx) && (!rgba || rgba[4 * i + 3] > 0.0f)) {
                if (c < fmn) fmn = c;
                if (c > fmx) fmx = c;
            }
        }
    }
    *pmn = fmn;
    *pmx = fmx;
}

/* The fine histogram of the CoC of every entry with coverage: nb bins over [lo, hi]. */
typedef struct {
    hbin *h;
    double *edges; /* nb + 1 */
    ptrdiff_t nb;
    double lo, scale;
} histogram;

static inline void hbin_clear(hbin *h, ptrdiff_t nb)
{
    for (ptrdiff_t b = 0; b < nb; b++) h[b] = (hbin){0.0, 0.0, 0.0, INFINITY, -INFINITY};
}

/* A run of entries of equal CoC (a flat surface, a row of the ground plane), summed before it
 * touches its bin of hk; total sums the coverage of the runs flushed. */
typedef struct {
    const histogram *hs;
    hbin *hk;
    float rc;  /* the run's CoC (NaN: none yet) */
    double rw; /* its coverage */
    double total;
} hist_run;

static inline void run_flush(hist_run *r)
{
    if (r->rw > 0.0) {
        const histogram *hs = r->hs;
        ptrdiff_t k = hist_bin((double)r->rc, hs->lo, hs->scale, hs->edges, hs->nb);
        hbin *q = &r->hk[k];
        q->w += r->rw;
        q->cw += ((double)r->rc - hs->edges[k]) * r->rw;
        if (k > 0 && (double)r->rc == hs->edges[k]) q->ew += r->rw;
        if (r->rc < q->mn) q->mn = r->rc;
        if (r->rc > q->mx) q->mx = r->rc;
        r->total += r->rw;
    }
}

static inline void run_add(hist_run *r, float c, float w)
{
    if (!(w > 0.0f)) return;
    if (c != r->rc) {
        run_flush(r);
        r->rc = c;
        r->rw = 0.0;
    }
    r->rw += (double)w;
}

/* Fills hs->h (cleared) from every entry and returns the total coverage in *total. One pass,
 * in fixed chunks of rows whose histograms are added up in order, so the sums do not depend on
 * the thread count. */
static sd_status fill_histogram(const sd_entries *e, const histogram *hs, double *total, int nthreads)
{
    const int H = e->H, W = e->W;
    const ptrdiff_t nb = hs->nb;
    hbin *h = hs->h;
    /* at most ~32 MB of partial histograms: fewer, taller chunks for a very wide CoC range */
    ptrdiff_t maxchunks = ((ptrdiff_t)32 << 20) / ((ptrdiff_t)sizeof(hbin) * nb);
    int crows = SLICE_CHUNK_ROWS;
    if (maxchunks < 1) maxchunks = 1;
    while ((H + crows - 1) / crows > maxchunks) crows *= 2;
    const int nchunk = (H + crows - 1) / crows;
    hbin *ph = malloc(sizeof(hbin) * (size_t)nb * (size_t)nchunk);
    double *ptot = malloc(sizeof(double) * (size_t)(nchunk + 1));
    if (!ph || !ptot) {
        free(ph); free(ptot);
        return SD_ERR_NOMEM;
    }
    SD_PARALLEL_FOR_DYN(sd_threads(nthreads))
    for (int k = 0; k <= nchunk; k++) { /* chunk nchunk: the extras, straight into h */
        hist_run run = {hs, k < nchunk ? ph + (ptrdiff_t)k * nb : h, NAN, 0.0, 0.0};
        if (k < nchunk) {
            hbin_clear(run.hk, nb);
            ptrdiff_t i0 = (ptrdiff_t)k * crows * W;
            ptrdiff_t i1 = (ptrdiff_t)(k + 1 < nchunk ? (k + 1) * crows : H) * W;
            for (ptrdiff_t i = i0; i < i1; i++) run_add(&run, e->coc[i], e->coc[i] == e->coc[i] ? 1.0f : 0.0f);
        } else {
            for (ptrdiff_t i = 0; i < e->n; i++) run_add(&run, e->xcoc[i], e->xrgba[4 * i + 3]);
        }
        run_flush(&run);
        ptot[k] = run.total;
    }
    double t = 0.0;
    for (int k = 0; k < nchunk; k++) { /* in order: the sums are the same for any thread count */
        const hbin *hk = ph + (ptrdiff_t)k * nb;
        for (ptrdiff_t b = 0; b < nb; b++) {
            if (!(hk[b].w > 0.0)) continue;
            h[b].w += hk[b].w;
            h[b].cw += hk[b].cw;
            h[b].ew += hk[b].ew;
            if (hk[b].mn < h[b].mn) h[b].mn = hk[b].mn;
            if (hk[b].mx > h[b].mx) h[b].mx = hk[b].mx;
        }
        t += ptot[k];
    }
    t += ptot[nchunk];
    free(ph);
    free(ptot);
    *total = t;
    return SD_OK;
}

/* Moves the nearest of the ns even centres asc (spacing step) onto every strong mode of the
 * histogram, the heaviest first; equal ones the smaller CoC first (numpy's argsort left their
 * order unspecified). A centre takes one mode, and only one within half a spacing. */
static sd_status snap_to_modes(const histogram *hs, double total, double *asc, int ns, double step)
{
    const hbin *h = hs->h;
    const double *edges = hs->edges;
    const ptrdiff_t nb = hs->nb;
    double thr = MODE_MIN_SHARE * total;
    if (thr < MODE_MIN_PIXELS) thr = MODE_MIN_PIXELS;
    ptrdiff_t nstrong = 0;
    for (ptrdiff_t k = 0; k < nb; k++) nstrong += h[k].w >= thr;
    strong_bin *sb = malloc(sizeof(strong_bin) * (size_t)(nstrong > 0 ? nstrong : 1));
    if (!sb) return SD_ERR_NOMEM;
    nstrong = 0;
    for (ptrdiff_t k = 0; k < nb; k++)
        if (h[k].w >= thr) sb[nstrong++] = (strong_bin){k, h[k].w};
    qsort(sb, (size_t)nstrong, sizeof *sb, by_weight);
    unsigned char taken[SD_MAX_SLICES + 1] = {0};
    for (ptrdiff_t s = 0; s < nstrong; s++) {
        ptrdiff_t i = sb[s].i;
        /* the mean CoC over [edges[i], edges[i + 1]] (both edges count), kept within the values
         * it averages: a flat surface's mode is its CoC exactly, so no entry falls outside the
         * outermost centres by a rounding error */
        double sw = h[i].w, scw = h[i].cw, vmin = h[i].mn, vmax = h[i].mx;
        if (i + 1 < nb && h[i + 1].ew > 0.0) {
            sw += h[i + 1].ew;
            scw += (edges[i + 1] - edges[i]) * h[i + 1].ew;
            vmax = edges[i + 1];
        }
        double mode = edges[i] + scw / sw;
        mode = mode < vmin ? vmin : (mode > vmax ? vmax : mode);
        int j = 0;
        for (int k = 1; k < ns; k++)
            if (fabs(asc[k] - mode) < fabs(asc[j] - mode)) j = k;
        if (taken[j] || fabs(asc[j] - mode) > 0.5 * step) continue;
        asc[j] = mode;
        taken[j] = 1;
    }
    free(sb);
    return SD_OK;
}

/* A CoC range beyond MAX_MODE_BINS bins is SD_ERR_VALUE. */
sd_status sd_slice_centres(const sd_entries *e, float *centres, int *n, int nthreads)
{
    if (!e || !centres || !n || e->H < 1 || e->W < 1 || !e->coc || e->n < 0 ||
        (e->n > 0 && (!e->xrgba || !e->xcoc)))
        return SD_ERR_ARG;
    const ptrdiff_t np = (ptrdiff_t)e->H * e->W;
    /* the CoC range of everything with coverage */
    float fmn = INFINITY, fmx = -INFINITY;
    coc_range(e->coc, NULL, np, &fmn, &fmx);
    if (e->n > 0) coc_range(e->xcoc, e->xrgba, e->n, &fmn, &fmx);
    if (!(fmn <= fmx)) { /* nothing covers anything */
        centres[0] = 0.0f;
        *n = 1;
        return SD_OK;
    }
    const double lo = fmn, hi = fmx;
    double span = ceil((hi - lo) / MIN_SLICE_PX);
    int ns = (int)(span < SD_MAX_SLICES ? span : SD_MAX_SLICES) + 1;
    if (hi - lo < MIN_CENTRE_GAP_PX) ns = 1; /* one surface, as far as any blur can tell */
    double asc[SD_MAX_SLICES + 1];
    /* numpy.linspace: start + k * step, the last one exactly hi */
    if (ns == 1) {
        asc[0] = lo;
    } else {
        double step = (hi - lo) / (ns - 1);
        for (int k = 0; k < ns; k++) asc[k] = k * step + lo;
        asc[ns - 1] = hi;
    }
    if (ns <= 2) {
        for (int k = 0; k < ns; k++) centres[k] = (float)asc[ns - 1 - k];
        *n = ns;
        return SD_OK;
    }
    const double step = asc[1] - asc[0];
    double nbd = ceil((hi - lo) / MODE_BIN_PX);
    if (nbd > (double)MAX_MODE_BINS) return SD_ERR_VALUE;
    histogram hs;
    hs.nb = nbd < 1.0 ? 1 : (ptrdiff_t)nbd;
    hs.lo = lo;
    hs.edges = malloc(sizeof(double) * (size_t)(hs.nb + 1));
    hs.h = malloc(sizeof(hbin) * (size_t)hs.nb);
    if (!hs.edges || !hs.h) {
        free(hs.edges); free(hs.h);
        return SD_ERR_NOMEM;
    }
    {
        double bstep = (hi - lo) / (double)hs.nb;
        for (ptrdiff_t k = 0; k <= hs.nb; k++) hs.edges[k] = (double)k * bstep + lo;
        hs.edges[hs.nb] = hi;
    }
    hbin_clear(hs.h, hs.nb);
    hs.scale = (double)hs.nb / (hi - lo);
    double total = 0.0;
    sd_status st = fill_histogram(e, &hs, &total, nthreads);
    if (st == SD_OK) st = snap_to_modes(&hs, total, asc, ns, step);
    if (st != SD_OK) {
        free(hs.edges); free(hs.h);
        return st;
    }
    qsort(asc, (size_t)ns, sizeof(double), by_value);
    int m = 0;
    for (int k = 0; k < ns; k++) /* centres closer than that would make slices of no width */
        if (m == 0 || asc[k] - asc[m - 1] >= MIN_CENTRE_GAP_PX) asc[m++] = asc[k];
    /* drop centres whose tent holds nothing: neither interval beside them has an entry */
    unsigned char has[SD_MAX_SLICES + 1] = {0};
    for (int j = 0; j + 1 < m; j++)
        has[j] = (unsigned char)any_in(e, hs.h, hs.edges, hs.nb, lo, hs.scale, asc[j], asc[j + 1], j + 2 == m);
    free(hs.edges);
    free(hs.h);
    int out = 0;
    for (int j = m - 1; j >= 0; j--) {
        int left = j > 0 && has[j - 1], right = j + 1 < m && has[j];
        if (left || right) centres[out++] = (float)asc[j];
    }
    if (out == 0) centres[out++] = (float)asc[0]; /* cannot happen: lo itself is an entry */
    *n = out;
    return SD_OK;
}

/* ---- per-slice planning ---- */

/* The blur's reach (2R, generously: the footprint's radius is R) is grown by this many pixels
 * more when looking for nearer content that hides part of a slice: the footprints' anti-aliased
 * ends and the sub-cell centres of a coarse level's merged sources reach a little farther. */
#define OCCLUDER_SLACK_PX 8

/* A slice is built a level coarser once the radius where its weight is half lies above 0.77 of its
 * level's largest radius (SD_R_MAX 2^k) instead of 0.92 (sd_level_mostly's cut): its sources there
 * are within 0.4 octave of the next level, into which they fade from 0.84 on, and on the coarser
 * grid it builds, fills and spreads a quarter of the cells. The 12 MP render took 6-11 % less time
 * (1 thread); held-out ground-truth scenes, enlarged so that their blur reaches those levels, moved
 * by at most 0.06 dB of PSNR (benchmarks/README.md, "Slices a level coarser"). */
#define SLICE_LEVEL_UP 1.2f

/* Interval of CoC c between the descending slice centres: 0 above cent[0], i for
 * cent[i] < c <= cent[i-1], n at or below cent[n-1]. Slice s draws on intervals s and s+1. */
static inline int interval_of(const float *cent, int n, float c)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int m = (lo + hi) >> 1;
        if (cent[m] >= c) lo = m + 1;
        else hi = m;
    }
    return lo;
}

/* The CoC axis in 2 ns + 1 bins: 2 i for the open interval cent[i] < c < cent[i-1] (interval_of
 * is i), 2 i + 1 for c exactly at cent[i]. Slice s holds bins [2 s, 2 s + 3) and is hidden by
 * bins from 2 s + 4 on. An entry exactly at a centre has no share in the neighbouring slices, and
 * those are where the flat surfaces are (the centres snap onto the modes): counting them in the
 * neighbours' boxes would build, fill and spread a wall's worth of empty cells twice more. */
static inline int coc_bin(const float *cent, int iv, float c)
{
    return iv > 0 && c == cent[iv - 1] ? 2 * iv - 1 : 2 * iv;
}

/* interval_of, starting from a guess (neighbouring pixels mostly share their interval). */
static inline int interval_near(const float *cent, int n, float c, int i)
{
    while (i > 0 && !(cent[i - 1] >= c)) i--;
    while (i < n && cent[i] >= c) i++;
    return i;
}

/* Per (bin, row): the columns and radii of the entries (one pass over every entry). */
void sd_slices_index(sd_render_ctx *r)
{
    const sd_entries *e = r->e;
    int H = r->H, W = r->W, ni = r->ni, nt = r->nt;
    SD_PARALLEL_FOR_DYN(nt)
    for (int y = 0; y < H; y++) {
        for (int i = 0; i < ni; i++) {
            ptrdiff_t j = (ptrdiff_t)i * H + y;
            r->bin_x0[j] = W;
            r->bin_x1[j] = 0;
            r->bin_rlo[j] = INFINITY;
            r->bin_rhi[j] = -INFINITY;
        }
        const float *crow = e->coc + (ptrdiff_t)y * W;
        int iv = 0;
        for (int x = 0; x < W;) {
            float c = crow[x];
            if (c != c) { /* no main entry: its extras follow */
                x++;
                continue;
            }
            iv = interval_near(r->cent, r->ns, c, iv);
            int bin = coc_bin(r->cent, iv, c);
            /* the run of pixels in the same bin, at once (neighbours mostly share theirs) */
            float alo = fabsf(c), ahi = alo;
            int xe = x + 1;
            if (bin & 1)
                while (xe < W && crow[xe] == c) xe++;
            else {
                float above = iv > 0 ? r->cent[iv - 1] : INFINITY, below = iv < r->ns ? r->cent[iv] : -INFINITY;
                for (; xe < W && crow[xe] < above && crow[xe] > below; xe++) {
                    float a = fabsf(crow[xe]);
                    alo = a < alo ? a : alo;
                    ahi = a > ahi ? a : ahi;
                }
            }
            ptrdiff_t j = (ptrdiff_t)bin * H + y;
            float Rlo = 0.5f * alo, Rhi = 0.5f * ahi;
            if (x < r->bin_x0[j]) r->bin_x0[j] = x;
            r->bin_x1[j] = xe;
            if (Rlo < r->bin_rlo[j]) r->bin_rlo[j] = Rlo;
            if (Rhi > r->bin_rhi[j]) r->bin_rhi[j] = Rhi;
            x = xe;
        }
        for (ptrdiff_t q = e->row_start[y]; q < e->row_start[y + 1]; q++) {
            if (!sd_nonzero4(e->xrgba + 4 * q)) continue;
            float c = e->xcoc[q];
            int x = e->x[q];
            ptrdiff_t j = (ptrdiff_t)coc_bin(r->cent, interval_of(r->cent, r->ns, c), c) * H + y;
            float R = 0.5f * fabsf(c);
            if (x < r->bin_x0[j]) r->bin_x0[j] = x;
            if (x + 1 > r->bin_x1[j]) r->bin_x1[j] = x + 1;
            if (R < r->bin_rlo[j]) r->bin_rlo[j] = R;
            if (R > r->bin_rhi[j]) r->bin_rhi[j] = R;
        }
    }
}

/* Per row, the columns [x0, x1) of the entries of bins [i0, i1) (empty: x0 >= x1); returns
 * their bounding box (empty if none) and radius range. */
static sd_box intervals_rows(const sd_render_ctx *r, int i0, int i1, int *x0, int *x1, float *rlo, float *rhi)
{
    sd_box b = {r->H, 0, r->W, 0};
    *rlo = INFINITY;
    *rhi = -INFINITY;
    for (int y = 0; y < r->H; y++) {
        int a = r->W, e = 0;
        for (int i = imax(i0, 0); i < imin(i1, r->ni); i++) {
            ptrdiff_t j = (ptrdiff_t)i * r->H + y;
            if (r->bin_x0[j] >= r->bin_x1[j]) continue;
            a = imin(a, r->bin_x0[j]);
            e = imax(e, r->bin_x1[j]);
            *rlo = r->bin_rlo[j] < *rlo ? r->bin_rlo[j] : *rlo;
            *rhi = r->bin_rhi[j] > *rhi ? r->bin_rhi[j] : *rhi;
        }
        x0[y] = a;
        x1[y] = e;
        if (a < e) {
            b.y0 = imin(b.y0, y);
            b.y1 = y + 1;
            b.x0 = imin(b.x0, a);
            b.x1 = imax(b.x1, e);
        }
    }
    return b;
}

/* The ranges x0/x1 over rows [b.y0, b.y1) grown by m columns and m rows (into d0/d1, rows
 * [b.y0 - m, b.y1 + m) clipped to the frame); returns their bounding box. */
static sd_box grow_rows(const sd_render_ctx *r, sd_box b, int m, const int *x0, const int *x1, int *d0, int *d1)
{
    sd_box g = {imax(b.y0 - m, 0), imin(b.y1 + m, r->H), r->W, 0};
    SD_PARALLEL_FOR(sd_threads_for(r->nt, (ptrdiff_t)(g.y1 - g.y0) * (2 * m + 1)))
    for (int y = g.y0; y < g.y1; y++) {
        int a = r->W, e = 0;
        for (int t = imax(y - m, b.y0); t < imin(y + m + 1, b.y1); t++)
            if (x0[t] < x1[t]) {
                a = imin(a, x0[t]);
                e = imax(e, x1[t]);
            }
        d0[y] = a < e ? imax(a - m, 0) : r->W;
        d1[y] = a < e ? imin(e + m, r->W) : 0;
    }
    for (int y = g.y0; y < g.y1; y++)
        if (d0[y] < d1[y]) {
            g.x0 = imin(g.x0, d0[y]);
            g.x1 = imax(g.x1, d1[y]);
        }
    return g;
}

/* Whether entries of bins [i0, ni) lie inside the rows' ranges [d0, d1) over rows of b. */
static int intervals_meet(const sd_render_ctx *r, int i0, sd_box b, const int *d0, const int *d1)
{
    for (int i = imax(i0, 0); i < r->ni; i++)
        for (int y = b.y0; y < b.y1; y++) {
            ptrdiff_t j = (ptrdiff_t)i * r->H + y;
            if (r->bin_x0[j] < d1[y] && r->bin_x1[j] > d0[y] && r->bin_x0[j] < r->bin_x1[j]) return 1;
        }
    return 0;
}

ptrdiff_t sd_slice_plan(sd_render_ctx *r, int si, int top, sd_slice *s, int *row_x0, int *row_x1, ptrdiff_t *row_off)
{
    const float *cent = r->cent;
    int ns = r->ns, H = r->H, W = r->W;
    s->mid = cent[si];
    s->hi = si > 0 ? cent[si - 1] : INFINITY;
    s->lo = si + 1 < ns ? cent[si + 1] : -INFINITY;
    s->shi = isinf(s->hi) ? 0.0f : 1.0f / (s->hi - s->mid);
    s->slo = isinf(s->lo) ? 0.0f : 1.0f / (s->mid - s->lo);
    s->has_occ = si + 2 < ns;
    s->c1 = s->has_occ ? cent[si + 1] : 0.0f;
    s->s12 = s->has_occ ? 1.0f / (cent[si + 1] - cent[si + 2]) : 0.0f;
    s->k = 0;
    s->holes = 0;
    s->fill_reach = 0;
    s->cell_x0 = row_x0;
    s->cell_x1 = row_x1;
    s->cell_off = row_off;
    s->cy0 = s->cy1 = s->cx0 = s->cx1 = 0;
    float rlo, rhi;
    sd_box cb = intervals_rows(r, 2 * si, 2 * si + 3, r->content_x0, r->content_x1, &rlo, &rhi);
    if (sd_box_empty(cb)) return 0;
    /* The level its content is mostly spread at, judged where the slice's weight is half on the
     * side of smaller |CoC| (or at its smallest radius if that is larger): what is finer has
     * weights below 1/2 here, and most of that is already crossfading to this level. */
    float cl = isinf(s->lo) ? -INFINITY : 0.5f * (s->mid + s->lo);
    float ch = isinf(s->hi) ? INFINITY : 0.5f * (s->mid + s->hi);
    float rh = cl <= 0.0f && ch >= 0.0f ? 0.0f : 0.5f * fminf(fabsf(cl), fabsf(ch));
    s->k = imin(imin(sd_level_mostly(SLICE_LEVEL_UP * fmaxf(rlo, rh)), top), SD_MAX_SLICE_LEVEL);
    /* what is filled in only matters where the slice's blur can carry it */
    float cap = (float)(H > W ? H : W); /* beyond the frame, reach changes nothing */
    int m = (int)ceilf(2.0f * (rhi < cap ? rhi : cap)) + OCCLUDER_SLACK_PX;
    sd_box fb = grow_rows(r, cb, m, r->content_x0, r->content_x1, r->reach_x0, r->reach_x1);
    s->holes = s->has_occ && intervals_meet(r, 2 * si + 4, fb, r->reach_x0, r->reach_x1);
    /* A hidden cell's fill, spread by at most the slice's radius, shows only where what hides it
     * lets light through: within the radius of the nearer content's own blur from its edge. */
    float rnear = 0.0f;
    if (s->holes)
        for (int i = 2 * si + 4; i < r->ni; i++)
            for (int y = fb.y0; y < fb.y1; y++) {
                float v = r->bin_rhi[(ptrdiff_t)i * H + y];
                rnear = v > rnear ? v : rnear;
            }
    s->fill_reach = m + (int)ceilf(rnear < cap ? rnear : cap);
    sd_box bb = s->holes ? fb : cb;
    const int *bx0 = s->holes ? r->reach_x0 : r->content_x0, *bx1 = s->holes ? r->reach_x1 : r->content_x1;
    int bs = 1 << s->k;
    /* the slice's box: its reach (or content) rows and columns, in cells */
    s->cy0 = bb.y0 >> s->k;
    s->cy1 = (bb.y1 + bs - 1) >> s->k;
    s->cx0 = W;
    s->cx1 = 0;
    for (int cy = s->cy0; cy < s->cy1; cy++)
        for (int y = imax(cy << s->k, bb.y0); y < imin((cy + 1) << s->k, bb.y1); y++)
            if (bx0[y] < bx1[y]) {
                s->cx0 = imin(s->cx0, bx0[y] >> s->k);
                s->cx1 = imax(s->cx1, (bx1[y] + bs - 1) >> s->k);
            }
    /* Within the reach, a cell neither holding content nor hidden by nearer slices stays empty
     * and unfilled: to the fill it is seen and empty, as a cell outside the rows' ranges is, and
     * the spread has no light to take from it. So each row's cells run from its first to its
     * last cell of content or of nearer entries within the reach (the box, on which the fill's
     * grid is laid, stays that of the reach). */
    if (s->holes)
        for (int y = bb.y0; y < bb.y1; y++) {
            int ca = r->content_x0[y], ce = r->content_x1[y], a = ca, e = ce;
            if (bx0[y] < bx1[y]) {
                int na = W, ne = 0;
                for (int i = 2 * si + 4; i < r->ni; i++) {
                    ptrdiff_t j = (ptrdiff_t)i * H + y;
                    if (r->bin_x0[j] < r->bin_x1[j]) {
                        na = imin(na, r->bin_x0[j]);
                        ne = imax(ne, r->bin_x1[j]);
                    }
                }
                na = imax(na, bx0[y]);
                ne = imin(ne, bx1[y]);
                if (na < ne) {
                    a = ca < ce ? imin(ca, na) : na;
                    e = ca < ce ? imax(ce, ne) : ne;
                }
            }
            r->reach_x0[y] = a;
            r->reach_x1[y] = e;
        }
    ptrdiff_t cells = 0;
    for (int cy = s->cy0; cy < s->cy1; cy++) {
        int a = W, e = 0;
        for (int y = imax(cy << s->k, bb.y0); y < imin((cy + 1) << s->k, bb.y1); y++)
            if (bx0[y] < bx1[y]) {
                a = imin(a, bx0[y]);
                e = imax(e, bx1[y]);
            }
        row_x0[cy] = a < e ? a >> s->k : 0;
        row_x1[cy] = a < e ? (e + bs - 1) >> s->k : 0;
        row_off[cy] = cells - row_x0[cy];
        cells += row_x1[cy] - row_x0[cy];
    }
    return cells;
}
