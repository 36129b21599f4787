/* Aperture stage: a source's footprint, the aperture scaled to its radius as weighted spans
 * (see sd_aperture.h for the evaluation of the shape itself). */
#include "sd_aperture.h"

/* The whole source in its own cell (a CoC of at most one pixel, or a degenerate shape). */
static void footprint_one_cell(sd_footprint *fp)
{
    fp->dj[0] = 0;
    fp->a[0] = 0.0f;
    fp->b[0] = 1.0f;
    fp->w[0] = 1.0f;
    fp->n = 1;
}

void sd_footprint_make(sd_footprint *fp, const sd_aperture *ap, float fx, float fy, float R, int inverted)
{
    fp->R = R; fp->fx = fx; fp->fy = fy; fp->inverted = inverted; fp->valid = 1; fp->n = 0;
    if (!(R > 0.5f)) { /* the whole shape lies inside the source cell */
        footprint_one_cell(fp);
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
            int n = fp->n++;
            fp->dj[n] = j;
            fp->a[n] = fx + Rc * sp.l[k];
            fp->b[n] = fx + Rc * sp.r[k];
            fp->w[n] = h;
            S += (double)h * (fp->b[n] - fp->a[n]);
        }
    }
    if (!(S > 1e-12)) { /* degenerate shape: keep the energy in the source cell */
        footprint_one_cell(fp);
        return;
    }
    for (int n = 0; n < fp->n; n++) fp->w[n] = (float)(fp->w[n] / S);
}
