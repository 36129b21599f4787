/* Aperture stage: a source's footprint, the aperture scaled to its radius as weighted spans
 * (see sd_aperture.h for the evaluation of the shape itself). */
#include <stdlib.h>
#include "sd_alloc.h"
#include "sd_aperture.h"
#include "sd_util.h"

/* The whole source in its own cell (a CoC of at most one pixel, or a degenerate shape). */
static void footprint_one_cell(sd_footprint *fp)
{
    fp->s[0].dj = 0;
    fp->s[0].a = 0.0f;
    fp->s[0].b = 1.0f;
    fp->s[0].w = 1.0f;
    fp->n = 1;
}

/* Each span's ends as the scatter writes them, and the bounds of them all. */
static void footprint_ends(sd_footprint *fp)
{
    fp->jlo = fp->ilo = 0x7fffffff;
    fp->jhi = fp->ihi = -0x7fffffff;
    for (int n = 0; n < fp->n; n++) {
        sd_fp_span *q = &fp->s[n];
        float a = q->a, b = q->b, w = q->w;
        int ia = sd_ifloor(a), ib = sd_ifloor(b);
        float fa = a - (float)ia, fb = b - (float)ib;
        q->ia = ia;
        q->ib = ib;
        sd_span_end_weights(ia, ib, fa, fb, w, fp->e[n].ew);
        fp->jlo = q->dj < fp->jlo ? q->dj : fp->jlo;
        fp->jhi = q->dj > fp->jhi ? q->dj : fp->jhi;
        fp->ilo = ia < fp->ilo ? ia : fp->ilo;
        fp->ihi = ib > fp->ihi ? ib : fp->ihi;
    }
    int nrows = fp->n > 0 ? fp->jhi - fp->jlo + 1 : 0;
    for (int j = 0; j < nrows; j++) {
        fp->row_ia[j] = SD_FP_NO_CELL;
        fp->row_ib[j] = -SD_FP_NO_CELL;
    }
    for (int n = 0; n < fp->n; n++) {
        const sd_fp_span *q = &fp->s[n];
        int j = q->dj - fp->jlo;
        fp->row_ia[j] = q->ia < fp->row_ia[j] ? q->ia : fp->row_ia[j];
        fp->row_ib[j] = q->ib > fp->row_ib[j] ? q->ib : fp->row_ib[j];
    }
    fp->off_stride = 0;
}

void sd_footprint_make(sd_footprint *fp, const sd_aperture *ap, float fx, float fy, float R, int inverted)
{
    fp->n = 0;
    if (!(R > 0.5f)) { /* the whole shape lies inside the source cell */
        footprint_one_cell(fp);
        footprint_ends(fp);
        return;
    }
    float Rc = R > SD_R_MAX + 1.0f ? SD_R_MAX + 1.0f : R; /* never reached by construction */
    sd_ap_strips st;
    sd_ap_strips_init(&st, ap, fy, Rc, inverted);
    double S = 0.0;
    for (int j = st.j0; j <= st.j1; j++) {
        sd_spans sp;
        float h = sd_ap_strip(&st, j, &sp);
        if (h <= 0.0f) continue;
        for (int k = 0; k < ap->nspans; k++) {
            if (!(sp.r[k] > sp.l[k])) continue;
            sd_fp_span *q = &fp->s[fp->n++];
            q->dj = j;
            q->a = fx + Rc * sp.l[k];
            q->b = fx + Rc * sp.r[k];
            q->w = h;
            S += (double)h * (q->b - q->a);
        }
    }
    if (!(S > 1e-12)) { /* degenerate shape: keep the energy in the source cell */
        footprint_one_cell(fp);
        footprint_ends(fp);
        return;
    }
    for (int n = 0; n < fp->n; n++) fp->s[n].w = (float)(fp->s[n].w / S);
    footprint_ends(fp);
}

sd_footprint_table *sd_footprint_table_new(void)
{
    /* from the pool: the C library hands a buffer this large back to the system when it is
     * freed, and the next render would fault its pages in again */
    sd_footprint_table *t = sd_big_alloc(1, sizeof *t, 1);
    if (t)
        for (int i = 0; i < SD_FOOTPRINT_SLOTS; i++) t->key[i].valid = 0;
    return t;
}

void sd_footprint_table_free(sd_footprint_table *t) { sd_big_free(t); }
