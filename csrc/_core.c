/* The only file that knows about Python: checks arrays, releases the GIL around the C kernels
 * and turns their status codes into exceptions. User-facing argument checking with friendly
 * messages lives in python/synthdof; the checks here keep the C core safe whatever it is given. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define NPY_TARGET_VERSION NPY_1_22_API_VERSION /* PyDataMem_SetHandler (the array pool) */
#include <numpy/arrayobject.h>
#include <float.h>
#include <math.h>
#include "sd_alloc.h"
#include "sd_core.h"
#include "sd_refine_maps.h"
#include "sd_refine_matte.h"
#include "sd_refine_sides.h"
#include "sd_refine_steps.h"

/* ---- helpers --------------------------------------------------------------------------- */

/* A float32 array of ndim in [lo, hi], native byte order, element-aligned strides. */
static PyArrayObject *as_f32(PyObject *o, const char *name, int lo, int hi, int writeable)
{
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy array, got %s", name, Py_TYPE(o)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != NPY_FLOAT32 || !PyArray_ISNOTSWAPPED(a)) {
        PyErr_Format(PyExc_TypeError, "%s: expected native float32", name);
        return NULL;
    }
    if (PyArray_NDIM(a) < lo || PyArray_NDIM(a) > hi) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d to %d dimensions, got %d", name, lo, hi, PyArray_NDIM(a));
        return NULL;
    }
    for (int i = 0; i < PyArray_NDIM(a); i++) {
        if (PyArray_STRIDE(a, i) % (npy_intp)sizeof(float) != 0) {
            PyErr_Format(PyExc_ValueError, "%s: strides must be multiples of 4 bytes", name);
            return NULL;
        }
        if (PyArray_DIM(a, i) < 1) {
            PyErr_Format(PyExc_ValueError, "%s: must not be empty", name);
            return NULL;
        }
    }
    if (!PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s: data must be aligned to 4 bytes", name);
        return NULL;
    }
    if (writeable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: array is read-only", name);
        return NULL;
    }
    return a;
}

static PyArrayObject *as_f32_contig(PyObject *o, const char *name, int lo, int hi, int writeable)
{
    PyArrayObject *a = as_f32(o, name, lo, hi, writeable);
    if (a && !PyArray_IS_C_CONTIGUOUS(a)) {
        PyErr_Format(PyExc_ValueError, "%s: must be C-contiguous", name);
        return NULL;
    }
    return a;
}

static ptrdiff_t fstride(PyArrayObject *a, int i) { return (ptrdiff_t)(PyArray_STRIDE(a, i) / (npy_intp)sizeof(float)); }

/* Views (H, W) or (H, W, C) as up to 4 channels. */
static int cview_of(PyArrayObject *a, const char *name, sd_cview *v)
{
    int nch = PyArray_NDIM(a) == 3 ? (int)PyArray_DIM(a, 2) : 1;
    if (nch < 1 || nch > 4) {
        PyErr_Format(PyExc_ValueError, "%s: the core takes 1 to 4 channels, got %d", name, nch);
        return -1;
    }
    if (nch > 1 && PyArray_STRIDE(a, 2) != (npy_intp)sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "%s: channels must be adjacent in memory", name);
        return -1;
    }
    v->data = (const float *)PyArray_DATA(a);
    v->row = fstride(a, 0);
    v->pix = fstride(a, 1);
    v->nch = nch;
    return 0;
}

static int same_hw(PyArrayObject *a, PyArrayObject *b, const char *an, const char *bn)
{
    if (PyArray_DIM(a, 0) != PyArray_DIM(b, 0) || PyArray_DIM(a, 1) != PyArray_DIM(b, 1)) {
        PyErr_Format(PyExc_ValueError, "%s: size %ldx%ld does not match %s %ldx%ld", bn,
                     (long)PyArray_DIM(b, 0), (long)PyArray_DIM(b, 1), an, (long)PyArray_DIM(a, 0),
                     (long)PyArray_DIM(a, 1));
        return -1;
    }
    if (PyArray_DIM(a, 0) > INT_MAX / 8 || PyArray_DIM(a, 1) > INT_MAX / 8) {
        PyErr_Format(PyExc_ValueError, "%s: image too large", an);
        return -1;
    }
    return 0;
}

/* Byte range [lo, hi) an array's elements can touch. */
static void extent(PyArrayObject *a, char **lo, char **hi)
{
    char *p = PyArray_BYTES(a), *l = p, *h = p;
    for (int i = 0; i < PyArray_NDIM(a); i++) {
        npy_intp span = (PyArray_DIM(a, i) - 1) * PyArray_STRIDE(a, i);
        if (span < 0) l += span; else h += span;
    }
    *lo = l;
    *hi = h + PyArray_ITEMSIZE(a);
}

/* Conservative: any shared byte range counts as overlap. */
static int no_overlap(PyArrayObject *out, PyArrayObject *in, const char *in_name)
{
    char *a0, *a1, *b0, *b1;
    if (!in) return 0;
    extent(out, &a0, &a1);
    extent(in, &b0, &b1);
    if (a0 < b1 && b0 < a1) {
        PyErr_Format(PyExc_ValueError, "out: must not overlap %s", in_name);
        return -1;
    }
    return 0;
}

/* no_overlap for an array a call replaces in place (named as the call names it). */
static int apart(PyArrayObject *io, const char *io_name, PyArrayObject *in, const char *in_name)
{
    char *a0, *a1, *b0, *b1;
    extent(io, &a0, &a1);
    extent(in, &b0, &b1);
    if (a0 < b1 && b0 < a1) {
        PyErr_Format(PyExc_ValueError, "%s: must not overlap %s", io_name, in_name);
        return -1;
    }
    return 0;
}

/* Signals are checked between layers with the GIL taken back for a moment. */
static int check_signals(void *ctx)
{
    (void)ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    int r = PyErr_CheckSignals();
    PyGILState_Release(g);
    return r != 0;
}

static PyObject *raise_status(sd_status st, const char *what, int H, int W)
{
    switch (st) {
    case SD_OK: Py_RETURN_NONE;
    case SD_ERR_NOMEM: { /* the image size tells the scale; the failed request, where recorded, the need */
        size_t failed = sd_alloc_failed_bytes();
        if (failed)
            return PyErr_Format(PyExc_MemoryError, "%s: out of memory for a %dx%d image (%zu pixels): a request "
                                "of %zu bytes failed (one float plane of the image is %zu bytes)", what, W, H,
                                (size_t)W * (size_t)H, failed, sizeof(float) * (size_t)W * (size_t)H);
        return PyErr_Format(PyExc_MemoryError, "%s: out of memory for a %dx%d image (%zu pixels; one "
                            "float plane of it is %zu bytes)", what, W, H, (size_t)W * (size_t)H,
                            sizeof(float) * (size_t)W * (size_t)H);
    }
    case SD_ERR_INTERRUPTED:
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        return NULL;
    case SD_ERR_VALUE: PyErr_Format(PyExc_ValueError, "%s: value out of range", what); return NULL;
    default: PyErr_Format(PyExc_ValueError, "%s: inconsistent arguments", what); return NULL;
    }
}

static int parse_aperture(PyObject *spans_o, double vmin, double vmax, sd_aperture *ap)
{
    PyArrayObject *s = as_f32_contig(spans_o, "aperture", 3, 3, 0);
    if (!s) return -1;
    /* the shape lies in the unit circle's bounding square: anything else is not an aperture */
    if (PyArray_DIM(s, 2) != 2 || PyArray_DIM(s, 1) > SD_MAX_SPANS || !(vmax > vmin) ||
        !(vmin >= -1.001) || !(vmax <= 1.001)) {
        PyErr_SetString(PyExc_ValueError, "aperture: malformed span table");
        return -1;
    }
    if (sd_find_nonfinite((int)PyArray_DIM(s, 0), (int)PyArray_DIM(s, 1) * 2,
                          (sd_cview){PyArray_DATA(s), PyArray_DIM(s, 1) * 2, 1, 1}, 1) >= 0) {
        PyErr_SetString(PyExc_ValueError, "aperture: span table is not finite");
        return -1;
    }
    const float *sp = PyArray_DATA(s);
    for (npy_intp i = 0; i < PyArray_SIZE(s); i++)
        if (sp[i] < -1.001f || sp[i] > 1.001f) {
            PyErr_SetString(PyExc_ValueError, "aperture: span table leaves [-1, 1]");
            return -1;
        }
    ap->nrows = (int)PyArray_DIM(s, 0);
    ap->nspans = (int)PyArray_DIM(s, 1);
    ap->spans = (const float *)PyArray_DATA(s);
    ap->vmin = (float)vmin;
    ap->vmax = (float)vmax;
    return 0;
}

/* ---- circle of confusion ---------------------------------------------------------------- */

static PyObject *coc_common(PyObject *args, int kind)
{
    PyObject *d_o, *o_o;
    double p1, p2, p3 = 0.0, max_coc;
    int nt;
    int ok = kind == 1 ? PyArg_ParseTuple(args, "OddddOi", &d_o, &p1, &p2, &p3, &max_coc, &o_o, &nt)
                       : PyArg_ParseTuple(args, "OdddOi", &d_o, &p1, &p2, &max_coc, &o_o, &nt);
    if (!ok) return NULL;
    const char *name = kind == 2 ? "disparity" : "depth";
    PyArrayObject *d = as_f32(d_o, name, 2, 2, 0), *o = d ? as_f32_contig(o_o, "out", 2, 2, 1) : NULL;
    if (!o || same_hw(d, o, name, "out") || no_overlap(o, d, name)) return NULL;
    int H = (int)PyArray_DIM(d, 0), W = (int)PyArray_DIM(d, 1);
    const float *dp = PyArray_DATA(d);
    ptrdiff_t dr = fstride(d, 0), dc = fstride(d, 1), bad = -1;
    float *op = PyArray_DATA(o);
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    if (kind == 0) st = sd_coc_fixed_fov(H, W, dp, dr, dc, p1, p2, max_coc, op, W, nt, &bad);
    else if (kind == 1) st = sd_coc_real_lens(H, W, dp, dr, dc, p1, p2, p3, max_coc, op, W, nt, &bad);
    else st = sd_coc_disparity(H, W, dp, dr, dc, p1, p2, max_coc, op, W, nt, &bad);
    Py_END_ALLOW_THREADS
    if (st == SD_ERR_VALUE) {
        PyObject *z = PyFloat_FromDouble(dp[(bad / W) * dr + (bad % W) * dc]);
        if (!z) return NULL;
        PyErr_Format(PyExc_ValueError, "%s: invalid value %R at row %ld, column %ld (%s)", name,
                     z, (long)(bad / W), (long)(bad % W),
                     kind == 0 ? "must be finite and > 0"
                               : kind == 1 ? "must be finite and greater than the focal length" : "must be finite");
        Py_DECREF(z);
        return NULL;
    }
    return raise_status(st, name, H, W);
}

static PyObject *py_coc_fixed_fov(PyObject *self, PyObject *args) { (void)self; return coc_common(args, 0); }
static PyObject *py_coc_real_lens(PyObject *self, PyObject *args) { (void)self; return coc_common(args, 1); }
static PyObject *py_coc_disparity(PyObject *self, PyObject *args) { (void)self; return coc_common(args, 2); }

/* ---- scatter / gather ------------------------------------------------------------------- */

static PyObject *spread_common(PyObject *args, int gather)
{
    PyObject *s_o, *c_o, *a_o, *o_o;
    double vmin, vmax;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOddOi", &s_o, &c_o, &a_o, &vmin, &vmax, &o_o, &nt)) return NULL;
    PyArrayObject *s = as_f32(s_o, "image", 2, 3, 0);
    PyArrayObject *c = s ? as_f32_contig(c_o, "coc", 2, 2, 0) : NULL;
    PyArrayObject *o = c ? as_f32(o_o, "out", 2, 3, 1) : NULL;
    if (!o || same_hw(s, c, "image", "coc") || same_hw(s, o, "image", "out")) return NULL;
    if (no_overlap(o, s, "image") || no_overlap(o, c, "coc")) return NULL;
    sd_aperture ap;
    sd_cview sv, ov_c;
    if (parse_aperture(a_o, vmin, vmax, &ap) || cview_of(s, "image", &sv) || cview_of(o, "out", &ov_c)) return NULL;
    if (ov_c.nch != sv.nch) {
        PyErr_SetString(PyExc_ValueError, "out: channel count differs from image");
        return NULL;
    }
    int H = (int)PyArray_DIM(s, 0), W = (int)PyArray_DIM(s, 1);
    if (sd_find_nonfinite(H, W, (sd_cview){PyArray_DATA(c), W, 1, 1}, nt) >= 0) {
        PyErr_SetString(PyExc_ValueError, "coc: contains NaN or inf");
        return NULL;
    }
    sd_view ov = {(float *)ov_c.data, ov_c.row, ov_c.pix, ov_c.nch};
    sd_cancel cancel = {check_signals, NULL};
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = gather ? sd_gather(H, W, sv, PyArray_DATA(c), W, &ap, ov, nt, &cancel)
                : sd_scatter(H, W, sv, PyArray_DATA(c), W, &ap, ov, nt, &cancel);
    Py_END_ALLOW_THREADS
    return raise_status(st, gather ? "gather" : "scatter", H, W);
}

static PyObject *py_scatter(PyObject *self, PyObject *args) { (void)self; return spread_common(args, 0); }
static PyObject *py_gather(PyObject *self, PyObject *args) { (void)self; return spread_common(args, 1); }

/* ---- layered render ---------------------------------------------------------------------- */

/* An optional (H, W[, C]) float32 C-contiguous map matching out's size, or NULL for None. */
static int optional_map(PyObject *o_in, PyArrayObject *out, const char *name, int nch, const float **p)
{
    *p = NULL;
    if (o_in == Py_None) return 0;
    PyArrayObject *a = as_f32_contig(o_in, name, nch > 1 ? 3 : 2, nch > 1 ? 3 : 2, 0);
    if (!a || same_hw(out, a, "out", name) || no_overlap(out, a, name)) return -1;
    if (nch > 1 && PyArray_DIM(a, 2) != nch) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d channels", name, nch);
        return -1;
    }
    *p = PyArray_DATA(a);
    return 0;
}

static PyObject *py_render(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *i_o, *c_o, *m_o, *p_o, *a_o, *o_o;
    double vmin, vmax;
    int nt, border;
    if (!PyArg_ParseTuple(args, "OOOOOddiOi", &i_o, &c_o, &m_o, &p_o, &a_o, &vmin, &vmax, &border, &o_o, &nt))
        return NULL;
    if (border != SD_BORDER_WINDOW && border != SD_BORDER_MIRROR) {
        PyErr_SetString(PyExc_ValueError, "border: expected 0 (window) or 1 (mirror)");
        return NULL;
    }
    PyArrayObject *img = as_f32(i_o, "image", 3, 3, 0);
    PyArrayObject *c = img ? as_f32_contig(c_o, "coc", 2, 2, 0) : NULL;
    PyArrayObject *o = c ? as_f32(o_o, "out", 3, 3, 1) : NULL;
    if (!o || same_hw(img, c, "image", "coc") || same_hw(img, o, "image", "out")) return NULL;
    if (no_overlap(o, img, "image") || no_overlap(o, c, "coc")) return NULL;
    sd_cview iv, ov_c;
    if (cview_of(img, "image", &iv) || cview_of(o, "out", &ov_c)) return NULL;
    if (iv.nch != 3 || ov_c.nch != 3) {
        PyErr_SetString(PyExc_ValueError, "image: expected 3 channels (and out too)");
        return NULL;
    }
    const float *matte, *plate;
    if (optional_map(m_o, o, "matte", 1, &matte) || optional_map(p_o, o, "background", 3, &plate)) return NULL;
    sd_aperture ap;
    if (parse_aperture(a_o, vmin, vmax, &ap)) return NULL;
    int H = (int)PyArray_DIM(o, 0), W = (int)PyArray_DIM(o, 1);
    if (sd_find_nonfinite(H, W, (sd_cview){PyArray_DATA(c), W, 1, 1}, nt) >= 0) {
        PyErr_SetString(PyExc_ValueError, "coc: contains NaN or inf");
        return NULL;
    }
    sd_view ov = {(float *)ov_c.data, ov_c.row, ov_c.pix, 3};
    sd_cancel cancel = {check_signals, NULL};
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_render(H, W, iv, PyArray_DATA(c), matte, plate, &ap, border, ov, nt, &cancel);
    Py_END_ALLOW_THREADS
    return raise_status(st, "render", H, W);
}

/* ---- refine ------------------------------------------------------------------------------ */

static PyObject *py_edge_filter(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *d_o, *g_o;
    double sigma_s, sigma_r;
    int iterations, nt;
    if (!PyArg_ParseTuple(args, "OOddii", &d_o, &g_o, &sigma_s, &sigma_r, &iterations, &nt)) return NULL;
    PyArrayObject *d = as_f32_contig(d_o, "data", 3, 3, 1);
    if (!d) return NULL;
    const float *guide = NULL;
    int K = 0;
    if (g_o != Py_None) {
        PyArrayObject *g = as_f32_contig(g_o, "guide", 3, 3, 0);
        if (!g || same_hw(d, g, "data", "guide") || no_overlap(d, g, "guide")) return NULL;
        guide = PyArray_DATA(g);
        K = (int)PyArray_DIM(g, 2);
    }
    int H = (int)PyArray_DIM(d, 0), W = (int)PyArray_DIM(d, 1), C = (int)PyArray_DIM(d, 2);
    if (C > 16 || K > 8) {
        PyErr_Format(PyExc_ValueError, "data: at most 16 channels and 8 guide channels, got %d and %d", C, K);
        return NULL;
    }
    if (!(sigma_s > 0.0) || !(sigma_r > 0.0) || !isfinite(sigma_s) || !isfinite(sigma_r) || iterations < 1 ||
        iterations > 16) {
        PyErr_SetString(PyExc_ValueError, "sigma_s, sigma_r: must be finite and > 0 (iterations 1 to 16)");
        return NULL;
    }
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_edge_filter(H, W, C, PyArray_DATA(d), guide, K, sigma_s, sigma_r, iterations, nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "edge_filter", H, W);
}

/* guided_upsample's highlights: None, or (over, add) for a linear-light guide of n values: over
 * the ascending flat indices in [0, n) (1-D int64), add as many float32 values (either may be
 * empty). 0 when valid (linear set, or left NULL for None), -1 with an exception. */
static int highlights_of(PyObject *o, npy_intp n, sd_linear_guide *linear, int *is_linear)
{
    *is_linear = 0;
    if (o == Py_None) return 0;
    PyObject *over_o, *add_o;
    if (!PyTuple_Check(o) || !PyArg_ParseTuple(o, "OO", &over_o, &add_o)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "highlights: expected None or a tuple (over, add)");
        return -1;
    }
    if (!PyArray_Check(over_o) || !PyArray_Check(add_o)) {
        PyErr_SetString(PyExc_TypeError, "highlights: over and add must be numpy arrays");
        return -1;
    }
    PyArrayObject *over = (PyArrayObject *)over_o, *add = (PyArrayObject *)add_o;
    if (PyArray_TYPE(over) != NPY_INT64 || !PyArray_ISNOTSWAPPED(over) || PyArray_NDIM(over) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(over) || !PyArray_ISALIGNED(over)) {
        PyErr_SetString(PyExc_ValueError, "highlights: over must be a C-contiguous 1-D native int64 array");
        return -1;
    }
    if (PyArray_TYPE(add) != NPY_FLOAT32 || !PyArray_ISNOTSWAPPED(add) || PyArray_NDIM(add) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(add) || !PyArray_ISALIGNED(add) || PyArray_DIM(add, 0) != PyArray_DIM(over, 0)) {
        PyErr_SetString(PyExc_ValueError,
                        "highlights: add must be a C-contiguous 1-D native float32 array as long as over");
        return -1;
    }
    const int64_t *idx = PyArray_DATA(over);
    npy_intp m = PyArray_DIM(over, 0);
    for (npy_intp k = 0; k < m; k++)
        if (idx[k] < 0 || idx[k] >= (int64_t)n || (k > 0 && idx[k] <= idx[k - 1])) {
            PyErr_SetString(PyExc_ValueError, "highlights: over must ascend strictly within the guide's flat indices");
            return -1;
        }
    linear->over = idx;
    linear->add = PyArray_DATA(add);
    linear->n = (size_t)m;
    *is_linear = 1;
    return 0;
}

/* A C-contiguous bool or uint8 array of ndim dimensions (a mask). */
static PyArrayObject *as_mask(PyObject *o, const char *name, int ndim, int writeable)
{
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy array, got %s", name, Py_TYPE(o)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if ((PyArray_TYPE(a) != NPY_BOOL && PyArray_TYPE(a) != NPY_UINT8) || PyArray_NDIM(a) != ndim ||
        !PyArray_IS_C_CONTIGUOUS(a) || PyArray_SIZE(a) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: expected a non-empty C-contiguous %d-D bool or uint8 array", name, ndim);
        return NULL;
    }
    if (writeable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: array is read-only", name);
        return NULL;
    }
    return a;
}

static PyObject *py_guided_upsample(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *l_o, *lw_o, *gl_o, *g_o, *hl_o, *o_o, *ow_o, *n_o = Py_None;
    double sigma_r, agree = SD_UPSAMPLE_AGREE;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOOOdOOi|dO", &l_o, &lw_o, &gl_o, &g_o, &hl_o, &sigma_r, &o_o, &ow_o, &nt, &agree,
                          &n_o))
        return NULL;
    PyArrayObject *lo = as_f32_contig(l_o, "depth", 2, 2, 0);
    PyArrayObject *lw = lo ? as_f32_contig(lw_o, "weight", 2, 2, 0) : NULL;
    PyArrayObject *gl = lw ? as_f32_contig(gl_o, "guide_lo", 3, 3, 0) : NULL;
    PyArrayObject *g = gl ? as_f32_contig(g_o, "guide", 3, 3, 0) : NULL;
    PyArrayObject *o = g ? as_f32_contig(o_o, "out", 2, 2, 1) : NULL, *ow = NULL;
    if (!o || (ow_o != Py_None && !(ow = as_f32_contig(ow_o, "out_found", 2, 2, 1))) ||
        same_hw(lo, lw, "depth", "weight") || same_hw(lo, gl, "depth", "guide_lo") || same_hw(o, g, "out", "guide") ||
        (ow && same_hw(o, ow, "out", "out_found")))
        return NULL;
    if (no_overlap(o, lo, "depth") || no_overlap(o, lw, "weight") || no_overlap(o, gl, "guide_lo") ||
        no_overlap(o, g, "guide") ||
        (ow && (no_overlap(ow, lo, "depth") || no_overlap(ow, lw, "weight") || no_overlap(ow, gl, "guide_lo") ||
                no_overlap(ow, g, "guide") || no_overlap(ow, o, "out"))))
        return NULL;
    int h = (int)PyArray_DIM(lo, 0), w = (int)PyArray_DIM(lo, 1), H = (int)PyArray_DIM(o, 0), W = (int)PyArray_DIM(o, 1);
    int K = (int)PyArray_DIM(g, 2);
    PyArrayObject *need = NULL;
    if (n_o != Py_None && (!(need = as_mask(n_o, "need", 2, 0)) || same_hw(o, need, "out", "need") ||
                           no_overlap(o, need, "need") || (ow && no_overlap(ow, need, "need"))))
        return NULL;
    if (PyArray_DIM(gl, 2) != K || K > 8 || H < h || W < w) {
        PyErr_SetString(PyExc_ValueError, "guide: channels differ (at most 8) or the output is smaller than depth");
        return NULL;
    }
    if (!(sigma_r > 0.0) || !isfinite(sigma_r)) {
        PyErr_SetString(PyExc_ValueError, "sigma_r: must be finite and > 0");
        return NULL;
    }
    if (!(agree >= 0.0) || !isfinite(agree)) {
        PyErr_SetString(PyExc_ValueError, "agree: must be finite and >= 0");
        return NULL;
    }
    sd_linear_guide linear = {NULL, NULL, 0};
    int is_linear;
    if (highlights_of(hl_o, PyArray_SIZE(g), &linear, &is_linear)) return NULL;
    sd_status st;
    size_t unreached = 0;
    Py_BEGIN_ALLOW_THREADS
    st = sd_guided_upsample(h, w, PyArray_DATA(lo), PyArray_DATA(lw), PyArray_DATA(gl), H, W, PyArray_DATA(g), K,
                            is_linear ? &linear : NULL, sigma_r, agree, need ? PyArray_DATA(need) : NULL, PyArray_DATA(o),
                            ow ? PyArray_DATA(ow) : NULL, &unreached, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "guided_upsample", H, W);
    return PyLong_FromSize_t(unreached);
}

/* out holds as many elements as in (any shapes) and does not overlap it. */
static int same_size(PyArrayObject *in, PyArrayObject *out, const char *in_name, const char *out_name)
{
    if (PyArray_SIZE(in) != PyArray_SIZE(out)) {
        PyErr_Format(PyExc_ValueError, "%s: %ld elements, %s has %ld", out_name, (long)PyArray_SIZE(out), in_name,
                     (long)PyArray_SIZE(in));
        return -1;
    }
    return 0;
}

static PyObject *py_srgb_encode(PyObject *self, PyObject *args, int finish)
{
    (void)self;
    PyObject *l_o, *o_o;
    int nt;
    if (!PyArg_ParseTuple(args, "OOi", &l_o, &o_o, &nt)) return NULL;
    PyArrayObject *l = as_f32_contig(l_o, "linear", 1, 4, 0);
    PyArrayObject *o = l ? as_f32_contig(o_o, "out", 1, 4, 1) : NULL;
    if (!o || same_size(l, o, "linear", "out") || no_overlap(o, l, "linear")) return NULL;
    size_t n = (size_t)PyArray_SIZE(l);
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = finish ? sd_srgb_encode_finish(n, PyArray_DATA(l), PyArray_DATA(o), nt)
                : sd_srgb_encode_base(n, PyArray_DATA(l), PyArray_DATA(o), nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "srgb_encode", 1, (int)(n > INT_MAX ? INT_MAX : n));
}

static PyObject *py_srgb_encode_base(PyObject *self, PyObject *args) { return py_srgb_encode(self, args, 0); }
static PyObject *py_srgb_encode_finish(PyObject *self, PyObject *args) { return py_srgb_encode(self, args, 1); }

static PyObject *py_unorm_to_float(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *s_o, *o_o;
    int nt;
    if (!PyArg_ParseTuple(args, "OOi", &s_o, &o_o, &nt)) return NULL;
    if (!PyArray_Check(s_o) || (PyArray_TYPE((PyArrayObject *)s_o) != NPY_UINT8 &&
                                PyArray_TYPE((PyArrayObject *)s_o) != NPY_UINT16) ||
        !PyArray_ISNOTSWAPPED((PyArrayObject *)s_o) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)s_o) ||
        !PyArray_ISALIGNED((PyArrayObject *)s_o)) {
        PyErr_SetString(PyExc_TypeError, "image: expected a C-contiguous native uint8 or uint16 array");
        return NULL;
    }
    PyArrayObject *s = (PyArrayObject *)s_o;
    PyArrayObject *o = as_f32_contig(o_o, "out", 1, 4, 1);
    if (!o || same_size(s, o, "image", "out") || no_overlap(o, s, "image")) return NULL;
    size_t n = (size_t)PyArray_SIZE(s);
    int bytes = PyArray_TYPE(s) == NPY_UINT8 ? 1 : 2;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_unorm_to_float(n, PyArray_DATA(s), bytes, PyArray_DATA(o), nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "unorm_to_float", 1, (int)(n > INT_MAX ? INT_MAX : n));
}

static PyObject *py_disparity_in(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *d_o, *i_o, *q_o, *w_o;
    int is_disp, nt;
    if (!PyArg_ParseTuple(args, "OOpOOi", &d_o, &i_o, &is_disp, &q_o, &w_o, &nt)) return NULL;
    PyArrayObject *d = as_f32_contig(d_o, "depth", 2, 2, 0);
    PyArrayObject *inv = NULL;
    if (d && i_o != Py_None && !(inv = as_mask(i_o, "invalid", 2, 0))) return NULL;
    PyArrayObject *q = d ? as_f32_contig(q_o, "q", 2, 2, 1) : NULL;
    PyArrayObject *w = q ? as_f32_contig(w_o, "weight", 2, 2, 1) : NULL;
    if (!w || same_hw(d, q, "depth", "q") || same_hw(d, w, "depth", "weight") ||
        (inv && same_hw(d, inv, "depth", "invalid")) || no_overlap(q, d, "depth") || no_overlap(w, d, "depth") ||
        no_overlap(w, q, "q") || no_overlap(q, inv, "invalid") || no_overlap(w, inv, "invalid"))
        return NULL;
    size_t n = (size_t)PyArray_SIZE(d), nvalid = 0;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_disparity_in(n, PyArray_DATA(d), inv ? PyArray_DATA(inv) : NULL, is_disp, PyArray_DATA(q),
                         PyArray_DATA(w), &nvalid, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "disparity_in", (int)PyArray_DIM(d, 0), (int)PyArray_DIM(d, 1));
    return PyLong_FromSize_t(nvalid);
}

static PyObject *py_disparity_out(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *o_o;
    int is_disp, nt;
    if (!PyArg_ParseTuple(args, "OpOi", &q_o, &is_disp, &o_o, &nt)) return NULL;
    PyArrayObject *q = as_f32_contig(q_o, "q", 2, 2, 0);
    PyArrayObject *o = q ? as_f32_contig(o_o, "out", 2, 2, 1) : NULL;
    /* out may be q itself (each value is read before its own place is written), not part of it */
    if (!o || same_hw(q, o, "q", "out") || (PyArray_DATA(o) != PyArray_DATA(q) && no_overlap(o, q, "q")))
        return NULL;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_disparity_out((size_t)PyArray_SIZE(q), PyArray_DATA(q), is_disp, PyArray_DATA(o), nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "disparity_out", (int)PyArray_DIM(q, 0), (int)PyArray_DIM(q, 1));
}

static PyObject *py_agreeing(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *qi_o, *w_o, *k_o;
    double limit_d;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOdOi", &q_o, &qi_o, &w_o, &limit_d, &k_o, &nt)) return NULL;
    if (isnan(limit_d)) {
        PyErr_SetString(PyExc_ValueError, "limit: must not be NaN");
        return NULL;
    }
    /* float32's nearest, or its infinity beyond its range (a plain cast would be undefined there) */
    float limit = limit_d > FLT_MAX ? INFINITY : limit_d < -FLT_MAX ? -INFINITY : (float)limit_d;
    PyArrayObject *q = as_f32_contig(q_o, "q", 2, 2, 0);
    PyArrayObject *qi = q ? as_f32_contig(qi_o, "q_in", 2, 2, 0) : NULL;
    PyArrayObject *w = qi ? as_f32_contig(w_o, "weight", 2, 2, 0) : NULL;
    PyArrayObject *k = w ? as_mask(k_o, "kept", 2, 1) : NULL;
    if (!k || same_hw(q, qi, "q", "q_in") || same_hw(q, w, "q", "weight") || same_hw(q, k, "q", "kept") ||
        no_overlap(k, q, "q") || no_overlap(k, qi, "q_in") || no_overlap(k, w, "weight"))
        return NULL;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_agreeing((size_t)PyArray_SIZE(q), PyArray_DATA(q), PyArray_DATA(qi), PyArray_DATA(w), limit,
                     PyArray_DATA(k), nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "agreeing", (int)PyArray_DIM(q, 0), (int)PyArray_DIM(q, 1));
}

static PyObject *py_indices_above(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *v_o;
    double thr_d;
    int nt;
    if (!PyArg_ParseTuple(args, "Odi", &v_o, &thr_d, &nt)) return NULL;
    PyArrayObject *v = as_f32_contig(v_o, "values", 1, 3, 0);
    if (!v) return NULL;
    if (!(fabs(thr_d) <= FLT_MAX) || (double)(float)thr_d != thr_d) {
        PyErr_SetString(PyExc_ValueError, "threshold: must be a finite float32 value");
        return NULL;
    }
    enum { CHUNK = 4096 }; /* values per chunk: a chunk's count and its indices are one thread's; small, so
                            * that the listing pass reads little more than the highlights' own chunks */
    size_t n = (size_t)PyArray_SIZE(v), nchunks = (n + CHUNK - 1) / CHUNK, total = 0;
    size_t *counts = malloc((nchunks ? nchunks : 1) * sizeof(size_t));
    if (!counts) return PyErr_NoMemory();
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_count_above(n, PyArray_DATA(v), (float)thr_d, CHUNK, counts, nt);
    Py_END_ALLOW_THREADS
    for (size_t c = 0; st == SD_OK && c < nchunks; c++) { /* each chunk's start in the result */
        size_t k = counts[c];
        counts[c] = total;
        total += k;
    }
    npy_intp dim = (npy_intp)total;
    PyArrayObject *out = st == SD_OK ? (PyArrayObject *)PyArray_SimpleNew(1, &dim, NPY_INT64) : NULL;
    if (out) {
        Py_BEGIN_ALLOW_THREADS
        st = sd_list_above(n, PyArray_DATA(v), (float)thr_d, CHUNK, counts, PyArray_DATA(out), nt);
        Py_END_ALLOW_THREADS
    }
    free(counts);
    if (st != SD_OK) {
        Py_XDECREF(out);
        return raise_status(st, "indices_above", 1, (int)(n > INT_MAX ? INT_MAX : n));
    }
    return (PyObject *)out;
}

/* A 1-D native int64 C-contiguous array (borrowed), or NULL with an exception naming it. */
static PyArrayObject *as_i64_vector(PyObject *o, const char *name)
{
    PyArrayObject *a = (PyArrayObject *)o;
    if (!PyArray_Check(o) || PyArray_TYPE(a) != NPY_INT64 || !PyArray_ISNOTSWAPPED(a) || PyArray_NDIM(a) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || PyArray_DIM(a, 0) < 1 ||
        PyArray_DIM(a, 0) > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: expected a non-empty C-contiguous 1-D native int64 array", name);
        return NULL;
    }
    return a;
}

static PyObject *py_take_grid(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *s_o, *y_o, *x_o, *o_o;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOOi", &s_o, &y_o, &x_o, &o_o, &nt)) return NULL;
    PyArrayObject *src = as_f32_contig(s_o, "src", 3, 3, 0);
    PyArrayObject *ys = src ? as_i64_vector(y_o, "ys") : NULL, *xs = ys ? as_i64_vector(x_o, "xs") : NULL;
    PyArrayObject *out = xs ? as_f32_contig(o_o, "out", 3, 3, 1) : NULL;
    if (!out || no_overlap(out, src, "src")) return NULL;
    int H = (int)PyArray_DIM(src, 0), W = (int)PyArray_DIM(src, 1), C = (int)PyArray_DIM(src, 2);
    int h = (int)PyArray_DIM(ys, 0), w = (int)PyArray_DIM(xs, 0);
    if (PyArray_DIM(out, 0) != h || PyArray_DIM(out, 1) != w || PyArray_DIM(out, 2) != C) {
        PyErr_Format(PyExc_ValueError, "out: shape must be (%d, %d, %d)", h, w, C);
        return NULL;
    }
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_take_grid(H, W, C, PyArray_DATA(src), h, PyArray_DATA(ys), w, PyArray_DATA(xs), PyArray_DATA(out), nt);
    Py_END_ALLOW_THREADS
    if (st == SD_ERR_VALUE) {
        PyErr_SetString(PyExc_ValueError, "ys, xs: every row and column must lie within src");
        return NULL;
    }
    return raise_status(st, "take_grid", H, W);
}

static PyObject *py_enlargement_fits(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *d_o, *s_o;
    double sy, sx, tolerance;
    int nt;
    if (!PyArg_ParseTuple(args, "OOdddi", &d_o, &s_o, &sy, &sx, &tolerance, &nt)) return NULL;
    PyArrayObject *d = as_f32_contig(d_o, "d", 2, 2, 0);
    if (!d) return NULL;
    PyArrayObject *small = (PyArrayObject *)s_o;
    if (!PyArray_Check(s_o) || PyArray_TYPE(small) != NPY_FLOAT64 || !PyArray_ISNOTSWAPPED(small) ||
        PyArray_NDIM(small) != 2 || !PyArray_IS_C_CONTIGUOUS(small) || !PyArray_ISALIGNED(small) ||
        PyArray_SIZE(small) < 1) {
        PyErr_SetString(PyExc_ValueError, "small: expected a non-empty C-contiguous 2-D native float64 array");
        return NULL;
    }
    int H = (int)PyArray_DIM(d, 0), W = (int)PyArray_DIM(d, 1);
    if (PyArray_DIM(d, 0) > INT_MAX / 8 || PyArray_DIM(d, 1) > INT_MAX / 8 || PyArray_DIM(small, 0) > H ||
        PyArray_DIM(small, 1) > W) {
        PyErr_SetString(PyExc_ValueError, "small: larger than d, or d too large");
        return NULL;
    }
    if (!(sy >= 1.0) || !(sx >= 1.0) || !isfinite(sy) || !isfinite(sx) || isnan(tolerance)) {
        PyErr_SetString(PyExc_ValueError, "sy, sx: must be finite and >= 1; tolerance: not NaN");
        return NULL;
    }
    int fits = 0;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_enlargement_fits(H, W, PyArray_DATA(d), (int)PyArray_DIM(small, 0), (int)PyArray_DIM(small, 1),
                             PyArray_DATA(small), sy, sx, tolerance, &fits, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "enlargement_fits", H, W);
    return PyBool_FromLong(fits);
}

static PyObject *py_median(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *v_o, *r_o, *w_o;
    Py_ssize_t step;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOni", &v_o, &r_o, &w_o, &step, &nt)) return NULL;
    PyArrayObject *v = as_f32_contig(v_o, "values", 1, 3, 0), *r = NULL, *w = NULL;
    if (!v || (r_o != Py_None && !(r = as_f32_contig(r_o, "ref", 1, 3, 0))) ||
        (w_o != Py_None && !(w = as_f32_contig(w_o, "weight", 1, 3, 0))) || (r && same_size(v, r, "values", "ref")) ||
        (w && same_size(v, w, "values", "weight")))
        return NULL;
    if (step < 1) {
        PyErr_SetString(PyExc_ValueError, "step: must be >= 1");
        return NULL;
    }
    size_t n = (size_t)PyArray_SIZE(v);
    float median = 0.0f;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_median_sampled(n, (size_t)step, PyArray_DATA(v), r ? PyArray_DATA(r) : NULL, w ? PyArray_DATA(w) : NULL,
                           &median, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "median", 1, (int)(n > INT_MAX ? INT_MAX : n));
    return PyFloat_FromDouble((double)median);
}

static PyObject *py_cell_means(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *w_o, *oq_o, *ow_o, *os_o;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOOOi", &q_o, &w_o, &oq_o, &ow_o, &os_o, &nt)) return NULL;
    PyArrayObject *q = as_f32_contig(q_o, "q", 2, 3, 0), *w = NULL; /* weight None: all 1 */
    if (q && w_o != Py_None && (!(w = as_f32_contig(w_o, "weight", 2, 2, 0)) || same_hw(q, w, "q", "weight")))
        return NULL;
    PyArrayObject *oq = q ? as_f32_contig(oq_o, "out_q", PyArray_NDIM(q), PyArray_NDIM(q), 1) : NULL;
    PyArrayObject *ow = oq ? as_f32_contig(ow_o, "out_weight", 2, 2, 1) : NULL;
    PyArrayObject *os = NULL;
    if (ow && os_o != Py_None && !(os = as_f32_contig(os_o, "out_spread", 2, 2, 1))) return NULL;
    if (!ow || same_hw(oq, ow, "out_q", "out_weight") || no_overlap(oq, q, "q") ||
        no_overlap(oq, w, "weight") || no_overlap(ow, q, "q") || no_overlap(ow, w, "weight") ||
        no_overlap(ow, oq, "out_q") || (os && (same_hw(oq, os, "out_q", "out_spread") || no_overlap(os, q, "q") ||
                                               no_overlap(os, w, "weight") || no_overlap(os, oq, "out_q") ||
                                               no_overlap(os, ow, "out_weight"))))
        return NULL;
    int H = (int)PyArray_DIM(q, 0), W = (int)PyArray_DIM(q, 1);
    int h = (int)PyArray_DIM(oq, 0), w_ = (int)PyArray_DIM(oq, 1);
    int K = PyArray_NDIM(q) == 3 ? (int)PyArray_DIM(q, 2) : 1;
    if (h > H || w_ > W) {
        PyErr_Format(PyExc_ValueError, "out_q: shape (%d, %d) exceeds q's (%d, %d)", h, w_, H, W);
        return NULL;
    }
    if (K < 1 || K > SD_CELL_MAX_CHANNELS || (PyArray_NDIM(q) == 3 && PyArray_DIM(oq, 2) != K)) {
        PyErr_Format(PyExc_ValueError, "out_q: expected q's 1 to %d channels, q has %d", SD_CELL_MAX_CHANNELS, K);
        return NULL;
    }
    if (os && PyArray_NDIM(q) != 2) {
        PyErr_SetString(PyExc_ValueError, "out_spread: only for a map of one channel (q of shape (H, W))");
        return NULL;
    }
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_cell_means(H, W, K, PyArray_DATA(q), w ? PyArray_DATA(w) : NULL, h, w_, PyArray_DATA(oq), PyArray_DATA(ow),
                       os ? PyArray_DATA(os) : NULL, nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "cell_means", H, W);
}

static PyObject *py_noise_above(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *w_o;
    double threshold;
    int nt, row_step = 1;
    if (!PyArg_ParseTuple(args, "OOdi|i", &q_o, &w_o, &threshold, &nt, &row_step)) return NULL;
    PyArrayObject *q = as_f32_contig(q_o, "q", 2, 2, 0);
    PyArrayObject *w = q ? as_f32_contig(w_o, "weight", 2, 2, 0) : NULL;
    if (!w || same_hw(q, w, "q", "weight")) return NULL;
    if (row_step < 1) {
        PyErr_SetString(PyExc_ValueError, "row_step: must be >= 1");
        return NULL;
    }
    if (isnan(threshold)) {
        PyErr_SetString(PyExc_ValueError, "threshold: must not be NaN");
        return NULL;
    }
    int H = (int)PyArray_DIM(q, 0), W = (int)PyArray_DIM(q, 1);
    int above = 0;
    size_t count = 0;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_noise_above(H, W, PyArray_DATA(q), PyArray_DATA(w), threshold, row_step, &above, &count, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "noise_above", H, W);
    return Py_BuildValue("Nn", PyBool_FromLong(above), (Py_ssize_t)count);
}

static PyObject *py_band_near(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *m_o, *m2_o, *s_o, *n_o;
    int radius, nt;
    if (!PyArg_ParseTuple(args, "OOiOOi", &m_o, &m2_o, &radius, &s_o, &n_o, &nt)) return NULL;
    PyArrayObject *m = as_f32_contig(m_o, "matte", 2, 2, 0);
    PyArrayObject *m2 = NULL;
    if (m && m2_o != Py_None && !(m2 = as_f32_contig(m2_o, "matte2", 2, 2, 0))) return NULL;
    PyArrayObject *sd = m ? as_mask(s_o, "side", 2, 1) : NULL;
    PyArrayObject *nr = sd ? as_mask(n_o, "near", 2, 1) : NULL;
    if (!nr || (m2 && same_hw(m, m2, "matte", "matte2")) || same_hw(m, sd, "matte", "side") ||
        same_hw(m, nr, "matte", "near") || no_overlap(sd, m, "matte") || no_overlap(sd, m2, "matte2") ||
        no_overlap(nr, m, "matte") || no_overlap(nr, m2, "matte2") || no_overlap(nr, sd, "side"))
        return NULL;
    if (radius < 0) {
        PyErr_SetString(PyExc_ValueError, "radius: must be >= 0");
        return NULL;
    }
    int H = (int)PyArray_DIM(m, 0), W = (int)PyArray_DIM(m, 1), box[4];
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_band_near(H, W, PyArray_DATA(m), m2 ? PyArray_DATA(m2) : NULL, radius, PyArray_DATA(sd),
                      PyArray_DATA(nr), box, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "band_near", H, W);
    return Py_BuildValue("iiii", box[0], box[1], box[2], box[3]);
}

static PyObject *py_blurred_steps(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *c_o, *f_o;
    int r, nt;
    double tau, lo, hi, lo_s, hi_s, jump;
    if (!PyArg_ParseTuple(args, "OOid(dd)(dd)dOi", &q_o, &c_o, &r, &tau, &lo, &hi, &lo_s, &hi_s, &jump, &f_o, &nt))
        return NULL;
    PyArrayObject *q = as_f32_contig(q_o, "q", 2, 2, 0);
    PyArrayObject *c = q ? as_f32_contig(c_o, "cells", 2, 2, 0) : NULL;
    PyArrayObject *f = c ? as_mask(f_o, "flag", 2, 1) : NULL;
    if (!f || same_hw(q, f, "q", "flag") || no_overlap(f, q, "q") || no_overlap(f, c, "cells")) return NULL;
    int H = (int)PyArray_DIM(q, 0), W = (int)PyArray_DIM(q, 1);
    int h = (int)PyArray_DIM(c, 0), w = (int)PyArray_DIM(c, 1);
    if (h > H || w > W) {
        PyErr_Format(PyExc_ValueError, "cells: shape (%d, %d) exceeds q's (%d, %d)", h, w, H, W);
        return NULL;
    }
    if (r < 1) {
        PyErr_SetString(PyExc_ValueError, "radius: must be >= 1");
        return NULL;
    }
    if (!(tau >= 0.0) || !(lo_s >= 0.0) || !(lo >= lo_s) || !(hi >= lo) || !(hi_s >= hi) || !(hi_s <= 1.0) ||
        !(jump >= 0.0)) {
        PyErr_SetString(PyExc_ValueError,
                        "between, shoulder, jump: need tau >= 0, 0 <= lo_s <= lo <= hi <= hi_s <= 1 and jump >= 0");
        return NULL;
    }
    size_t count = 0, jumps = 0;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_blurred_steps(H, W, PyArray_DATA(q), h, w, PyArray_DATA(c), r, tau, lo, hi, lo_s, hi_s, jump,
                          PyArray_DATA(f), &count, &jumps, nt);
    Py_END_ALLOW_THREADS
    if (st == SD_ERR_VALUE) {
        PyErr_SetString(PyExc_ValueError, "q, cells: must be finite and > 0 everywhere");
        return NULL;
    }
    if (st != SD_OK) return raise_status(st, "blurred_steps", H, W);
    return Py_BuildValue("nn", (Py_ssize_t)count, (Py_ssize_t)jumps);
}

static PyObject *py_step_fill(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *s_o, *c_o, *o_o;
    int linear, h, w, radius, nt;
    double sigma_s, sigma_r;
    if (!PyArg_ParseTuple(args, "OOOp(ii)iddOi", &q_o, &s_o, &c_o, &linear, &h, &w, &radius, &sigma_s, &sigma_r, &o_o,
                          &nt))
        return NULL;
    PyArrayObject *q = as_f32_contig(q_o, "q", 2, 2, 0);
    PyArrayObject *sm = q ? as_mask(s_o, "stepped", 2, 0) : NULL;
    PyArrayObject *c = sm ? as_f32_contig(c_o, "colour", 3, 3, 0) : NULL;
    PyArrayObject *o = c ? as_f32_contig(o_o, "out", 2, 2, 1) : NULL;
    /* out may be q itself (each stepped pixel is written after the cells are summed from the rest) */
    if (!o || same_hw(q, sm, "q", "stepped") || same_hw(q, c, "q", "colour") || same_hw(q, o, "q", "out") ||
        (PyArray_DATA(o) != PyArray_DATA(q) && no_overlap(o, q, "q")) || no_overlap(o, sm, "stepped") ||
        no_overlap(o, c, "colour"))
        return NULL;
    if (PyArray_DIM(c, 2) != 3) {
        PyErr_SetString(PyExc_ValueError, "colour: expected 3 channels");
        return NULL;
    }
    int H = (int)PyArray_DIM(q, 0), W = (int)PyArray_DIM(q, 1);
    if (h < 1 || w < 1 || h > H || w > W) {
        PyErr_Format(PyExc_ValueError, "cells: shape (%d, %d) must lie within q's (%d, %d)", h, w, H, W);
        return NULL;
    }
    if (radius < 0 || !(sigma_s > 0.0) || !(sigma_r > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "radius, sigma_s, sigma_r: need radius >= 0 and sigmas > 0");
        return NULL;
    }
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_step_fill(H, W, PyArray_DATA(q), PyArray_DATA(sm), PyArray_DATA(c), linear, h, w, radius, sigma_s, sigma_r,
                      PyArray_DATA(o), nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "step_fill", H, W);
}

static PyObject *py_edge_fill(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *v_o, *w_o, *g_o, *t_o, *o_o;
    double sigma_s, sigma_r, min_weight;
    int iterations, widenings, nt;
    if (!PyArg_ParseTuple(args, "OOOddiidOOi", &v_o, &w_o, &g_o, &sigma_s, &sigma_r, &iterations, &widenings,
                          &min_weight, &t_o, &o_o, &nt))
        return NULL;
    PyArrayObject *v = as_f32(v_o, "values", 3, 3, 0);
    PyArrayObject *w = v ? as_f32(w_o, "weight", 2, 2, 0) : NULL;
    PyArrayObject *t = w ? as_mask(t_o, "todo", 2, 1) : NULL;
    PyArrayObject *o = t ? as_f32_contig(o_o, "out", 3, 3, 1) : NULL;
    if (!o || same_hw(v, w, "values", "weight") || same_hw(v, t, "values", "todo") || same_hw(v, o, "values", "out") ||
        no_overlap(o, v, "values") || no_overlap(o, w, "weight") || no_overlap(o, t, "todo") ||
        no_overlap(t, v, "values") || no_overlap(t, w, "weight"))
        return NULL;
    PyArrayObject *g = NULL;
    if (g_o != Py_None) {
        g = as_f32_contig(g_o, "guide", 3, 3, 0);
        if (!g || same_hw(v, g, "values", "guide") || no_overlap(o, g, "guide") || no_overlap(t, g, "guide"))
            return NULL;
    }
    int H = (int)PyArray_DIM(v, 0), W = (int)PyArray_DIM(v, 1), C = (int)PyArray_DIM(v, 2);
    int K = g ? (int)PyArray_DIM(g, 2) : 0;
    /* rows may be strided (a box cut from a larger map); pixels and channels packed */
    if ((C > 1 && fstride(v, 2) != 1) || fstride(v, 1) != C || fstride(v, 0) < (ptrdiff_t)W * C ||
        fstride(w, 1) != 1 || fstride(w, 0) < W) {
        PyErr_SetString(PyExc_ValueError, "values, weight: pixels and channels must be packed, rows ascending");
        return NULL;
    }
    if (PyArray_DIM(o, 2) != C || C > 15 || K > 8) {
        PyErr_Format(PyExc_ValueError, "out: expected values' %d channels (at most 15, and 8 guide channels)", C);
        return NULL;
    }
    if (!(sigma_s > 0.0) || !(sigma_r > 0.0) || !isfinite(sigma_s) || !isfinite(sigma_r) || iterations < 1 ||
        iterations > 16 || widenings < 1 || widenings > 16) {
        PyErr_SetString(PyExc_ValueError, "sigma_s, sigma_r: must be finite and > 0 (iterations and widenings 1 to 16)");
        return NULL;
    }
    size_t left = 0;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_edge_fill(H, W, C, PyArray_DATA(v), fstride(v, 0), PyArray_DATA(w), fstride(w, 0),
                      g ? PyArray_DATA(g) : NULL, K, sigma_s, sigma_r, iterations, widenings, (float)min_weight,
                      PyArray_DATA(t), PyArray_DATA(o), &left, nt);
    Py_END_ALLOW_THREADS
    if (st != SD_OK) return raise_status(st, "edge_fill", H, W);
    return PyLong_FromSize_t(left);
}

/* A 2-D bool or uint8 array whose rows may be strided (a box cut from a larger mask), pixels packed. */
static PyArrayObject *as_row_mask(PyObject *o, const char *name)
{
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy array, got %s", name, Py_TYPE(o)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if ((PyArray_TYPE(a) != NPY_BOOL && PyArray_TYPE(a) != NPY_UINT8) || PyArray_NDIM(a) != 2 ||
        PyArray_SIZE(a) < 1 || PyArray_STRIDE(a, 1) != 1 || PyArray_STRIDE(a, 0) < PyArray_DIM(a, 1)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a non-empty 2-D bool or uint8 array, pixels packed, rows ascending",
                     name);
        return NULL;
    }
    return a;
}

static PyObject *py_continue_sides(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *q_o, *s_o, *n_o, *k_o;
    sd_sides_params p;
    double tolerance, blur_pull, beyond_pull, blurred_share, min_weight;
    int nt;
    if (!PyArg_ParseTuple(args, "OOOOididdddiii", &q_o, &s_o, &n_o, &k_o, &p.band, &tolerance, &p.ring_px,
                          &blur_pull, &beyond_pull, &blurred_share, &min_weight, &p.iterations, &p.widenings, &nt))
        return NULL;
    PyArrayObject *q = as_f32(q_o, "q", 2, 2, 1); /* replaced in place */
    PyArrayObject *sd = q ? as_row_mask(s_o, "side") : NULL;
    PyArrayObject *nr = sd ? as_row_mask(n_o, "near") : NULL;
    PyArrayObject *kp = nr ? as_row_mask(k_o, "kept") : NULL;
    if (!kp || same_hw(q, sd, "q", "side") || same_hw(q, nr, "q", "near") || same_hw(q, kp, "q", "kept") ||
        apart(q, "q", sd, "side") || apart(q, "q", nr, "near") || apart(q, "q", kp, "kept"))
        return NULL;
    int H = (int)PyArray_DIM(q, 0), W = (int)PyArray_DIM(q, 1);
    if (fstride(q, 1) != 1 || fstride(q, 0) < W) {
        PyErr_SetString(PyExc_ValueError, "q: pixels must be packed, rows ascending");
        return NULL;
    }
    if (PyArray_STRIDE(nr, 0) != PyArray_STRIDE(sd, 0) || PyArray_STRIDE(kp, 0) != PyArray_STRIDE(sd, 0)) {
        PyErr_SetString(PyExc_ValueError, "side, near, kept: rows must lie equally far apart");
        return NULL;
    }
    if (p.band < 1 || p.ring_px < 0 || p.iterations < 1 || p.iterations > 16 || p.widenings < 1 ||
        p.widenings > 16) {
        PyErr_SetString(PyExc_ValueError, "band: must be >= 1 (ring_px >= 0, iterations and widenings 1 to 16)");
        return NULL;
    }
    if (!(tolerance >= 0.0) || !(min_weight >= 0.0) || !isfinite(tolerance) || !isfinite(blur_pull) ||
        isnan(beyond_pull) || !isfinite(blurred_share)) {
        PyErr_SetString(PyExc_ValueError,
                        "tolerance, blur_pull, beyond_pull, blurred_share, min_weight: must be finite (>= 0)");
        return NULL;
    }
    /* float32 as NumPy rounds a Python float meeting a float32 array */
    p.tolerance = (float)tolerance;
    p.blur_pull = (float)blur_pull;
    p.beyond_pull = (float)beyond_pull;
    p.blurred_share = (float)blurred_share;
    p.min_weight = (float)min_weight;
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_continue_sides(H, W, PyArray_DATA(q), fstride(q, 0), PyArray_DATA(sd), PyArray_DATA(nr),
                           PyArray_DATA(kp), (ptrdiff_t)PyArray_STRIDE(sd, 0), &p, nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "continue_sides", H, W);
}

static PyObject *py_matte_ramp(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *m_o, *c_o, *o_o;
    int linear, nt;
    double matte_out, matte_in, min_contrast2, off_line, grown_max, alpha_agrees, ridge_step;
    sd_matte_params p;
    if (!PyArg_ParseTuple(args, "OOp(ddddddddddip)Oi", &m_o, &c_o, &linear, &matte_out, &matte_in, &min_contrast2,
                          &off_line, &grown_max, &alpha_agrees, &p.agreeing_share, &ridge_step, &p.ridge_share,
                          &p.mask_ramp_px, &p.reach, &p.mode_auto, &o_o, &nt))
        return NULL;
    PyArrayObject *m = as_f32_contig(m_o, "matte", 2, 2, 0);
    PyArrayObject *c = m ? as_f32_contig(c_o, "colour", 3, 3, 0) : NULL;
    PyArrayObject *o = c ? as_f32_contig(o_o, "out", 2, 2, 1) : NULL;
    if (!o || same_hw(m, c, "matte", "colour") || same_hw(m, o, "matte", "out") || no_overlap(o, m, "matte") ||
        no_overlap(o, c, "colour"))
        return NULL;
    if (PyArray_DIM(c, 2) != 3) {
        PyErr_Format(PyExc_ValueError, "colour: expected 3 channels, got %d", (int)PyArray_DIM(c, 2));
        return NULL;
    }
    if (p.reach < 0) {
        PyErr_SetString(PyExc_ValueError, "reach: must be >= 0");
        return NULL;
    }
    /* float32 as NumPy rounds a Python float meeting a float32 array */
    p.matte_out = (float)matte_out;
    p.matte_in = (float)matte_in;
    p.min_contrast2 = (float)min_contrast2;
    p.off_line = (float)off_line;
    p.grown_max = (float)grown_max;
    p.alpha_agrees = (float)alpha_agrees;
    p.ridge_step = (float)ridge_step;
    int H = (int)PyArray_DIM(m, 0), W = (int)PyArray_DIM(m, 1);
    sd_status st;
    Py_BEGIN_ALLOW_THREADS
    st = sd_matte_ramp(H, W, PyArray_DATA(m), PyArray_DATA(c), linear, &p, PyArray_DATA(o), nt);
    Py_END_ALLOW_THREADS
    return raise_status(st, "matte_ramp", H, W);
}

/* ---- misc -------------------------------------------------------------------------------- */

static PyObject *py_find_nonfinite(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *a_o;
    int nt = 1;
    if (!PyArg_ParseTuple(args, "O|i", &a_o, &nt)) return NULL;
    PyArrayObject *a = as_f32(a_o, "array", 2, 3, 0);
    if (!a) return NULL;
    sd_cview v;
    if (PyArray_NDIM(a) == 3 && PyArray_DIM(a, 2) > 4) {
        PyErr_SetString(PyExc_ValueError, "array: at most 4 channels");
        return NULL;
    }
    if (cview_of(a, "array", &v)) return NULL;
    ptrdiff_t r;
    Py_BEGIN_ALLOW_THREADS
    r = sd_find_nonfinite((int)PyArray_DIM(a, 0), (int)PyArray_DIM(a, 1), v, nt);
    Py_END_ALLOW_THREADS
    return PyLong_FromSsize_t(r);
}

/* copy_scan(array, out, nthreads) -> (first, lo, hi): a 2-D map (any float-aligned strides)
 * copied to the C-contiguous out (None: scanned only) in one pass that also finds the first
 * non-finite value's flat index (-1 if none) and the smallest and largest values (NaN left out). */
static PyObject *py_copy_scan(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *a_o, *o_o;
    int nt;
    if (!PyArg_ParseTuple(args, "OOi", &a_o, &o_o, &nt)) return NULL;
    PyArrayObject *a = as_f32(a_o, "array", 2, 2, 0);
    if (!a) return NULL;
    if (PyArray_DIM(a, 0) > INT_MAX / 8 || PyArray_DIM(a, 1) > INT_MAX / 8) {
        PyErr_SetString(PyExc_ValueError, "array: too large");
        return NULL;
    }
    PyArrayObject *o = NULL;
    if (o_o != Py_None) {
        o = as_f32_contig(o_o, "out", 2, 2, 1);
        if (!o || same_hw(a, o, "array", "out") || no_overlap(o, a, "array")) return NULL;
    }
    sd_cview v;
    if (cview_of(a, "array", &v)) return NULL;
    float lo, hi;
    ptrdiff_t first;
    Py_BEGIN_ALLOW_THREADS
    first = sd_copy_scan((int)PyArray_DIM(a, 0), (int)PyArray_DIM(a, 1), v, o ? (float *)PyArray_DATA(o) : NULL, &lo,
                         &hi, nt);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("ndd", (Py_ssize_t)first, (double)lo, (double)hi);
}

static PyObject *py_openmp_enabled(PyObject *self, PyObject *args)
{
    (void)self; (void)args;
    return PyBool_FromLong(sd_openmp_enabled());
}

static PyObject *py_default_threads(PyObject *self, PyObject *args)
{
    (void)self; (void)args;
    return PyLong_FromLong(sd_default_threads());
}

static PyObject *py_scratch_limit(PyObject *self, PyObject *args)
{
    (void)self;
    long long limit;
    if (!PyArg_ParseTuple(args, "L", &limit)) return NULL;
    size_t kept = limit < 0 ? sd_scratch_kept() : sd_scratch_limit((size_t)limit);
    return PyLong_FromSize_t(kept);
}

/* ---- arrays from the scratch pool ------------------------------------------------------- */

/* A NumPy memory handler whose arrays come from the core's scratch pool (sd_big_alloc: big ones
 * reuse the mappings freed arrays and kernels left, up to the pool's limit, instead of faulting in
 * fresh pages; small ones are calloc's) and go back to it when freed. NumPy keeps the handler in
 * a context variable, so array_pool() sets it for the calling thread only; each array remembers
 * its handler and is freed through it whenever it goes. Zeroing a reused buffer (np.zeros) is
 * shared among the threads the caller set for its thread. */
static _Thread_local int pool_threads = 1;

static void *pool_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return sd_big_alloc(size, 1, pool_threads);
}

static void *pool_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return sd_big_calloc(nelem, elsize, pool_threads);
}

static void *pool_realloc(void *ctx, void *p, size_t size)
{
    (void)ctx;
    return sd_big_realloc(p, size, pool_threads);
}

static void pool_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    (void)size;
    sd_big_free(p);
}

static PyDataMem_Handler pool_handler = {
    "synthdof_scratch_pool", 1, {NULL, pool_malloc, pool_calloc, pool_realloc, pool_free}};

static PyObject *py_array_pool(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *handler;
    int nt;
    if (!PyArg_ParseTuple(args, "Oi", &handler, &nt)) return NULL;
    PyObject *set = NULL;
    if (handler == Py_True) {
        set = PyCapsule_New(&pool_handler, "mem_handler", NULL);
        if (!set) return NULL;
    } else if (handler != Py_None) {
        if (!PyCapsule_IsValid(handler, "mem_handler")) {
            PyErr_SetString(PyExc_TypeError, "handler: expected True, None or a handler array_pool returned");
            return NULL;
        }
        Py_INCREF(handler);
        set = handler;
    }
    PyObject *old = PyDataMem_SetHandler(set); /* NULL: NumPy's default */
    Py_XDECREF(set);
    if (old && handler == Py_True) pool_threads = nt > 1 ? nt : 1; /* by_slices caps it */
    return old;
}

static PyMethodDef methods[] = {
    {"coc_fixed_fov", py_coc_fixed_fov, METH_VARARGS, "coc_fixed_fov(depth, scale, inv_focus, max_coc, out, nthreads)"},
    {"coc_real_lens", py_coc_real_lens, METH_VARARGS, "coc_real_lens(depth, scale, focus, focal_length, max_coc, out, nthreads)"},
    {"coc_disparity", py_coc_disparity, METH_VARARGS, "coc_disparity(disparity, K, focus_disparity, max_coc, out, nthreads)"},
    {"scatter", py_scatter, METH_VARARGS, "scatter(image, coc, spans, vmin, vmax, out, nthreads)"},
    {"gather", py_gather, METH_VARARGS, "gather(image, coc, spans, vmin, vmax, out, nthreads)"},
    {"render", py_render, METH_VARARGS, "render(image, coc, matte, background, spans, vmin, vmax, border, out, nthreads)"},
    {"edge_filter", py_edge_filter, METH_VARARGS, "edge_filter(data, guide, sigma_s, sigma_r, iterations, nthreads): in place"},
    {"guided_upsample", py_guided_upsample, METH_VARARGS, "guided_upsample(lo, lo_weight, guide_lo, guide, highlights, sigma_r, out, out_found, nthreads[, agree[, need]]) -> pixels no sample reached (out_found 0 there, 1 elsewhere; it may be None); highlights None, or (over, add) for a linear-light guide; need None, or the pixels to compute (the others of out and out_found are left as they are)"},
    {"srgb_encode_base", py_srgb_encode_base, METH_VARARGS, "srgb_encode_base(linear, out, nthreads): max(clip(x, 0, 1), 0.0031308)"},
    {"srgb_encode_finish", py_srgb_encode_finish, METH_VARARGS, "srgb_encode_finish(linear, inout, nthreads): sRGB from the base"},
    {"unorm_to_float", py_unorm_to_float, METH_VARARGS, "unorm_to_float(image, out, nthreads): uint8/uint16 / max as float32"},
    {"cell_means", py_cell_means, METH_VARARGS, "cell_means(q, weight, out_q, out_weight, out_spread, nthreads): each cell's weighted mean (q (H, W) or (H, W, K); weight None: all 1), mean weight and relative spread (out_spread may be None; q (H, W) only)"},
    {"disparity_in", py_disparity_in, METH_VARARGS, "disparity_in(depth, invalid, is_disparity, q, weight, nthreads) -> valid pixels"},
    {"agreeing", py_agreeing, METH_VARARGS, "agreeing(q, q_in, weight, limit, kept, nthreads): kept = 2 where |q - q_in| / q_in <= limit"},
    {"take_grid", py_take_grid, METH_VARARGS, "take_grid(src, ys, xs, out, nthreads): out[j, i] = src[ys[j], xs[i]] ((H, W, C) float32, int64 rows and columns)"},
    {"enlargement_fits", py_enlargement_fits, METH_VARARGS, "enlargement_fits(d, small, sy, sx, tolerance, nthreads) -> whether d (H, W float32) is the bilinear enlargement of small (h, w float64) by (sy, sx) within tolerance at every pixel"},
    {"median", py_median, METH_VARARGS, "median(values, ref, weight, step, nthreads) -> NumPy's median (as a float32 value) of values[::step] (or of |values - ref| / ref there; ref may be None) where weight > 0 (weight may be None)"},
    {"indices_above", py_indices_above, METH_VARARGS, "indices_above(values, threshold, nthreads) -> int64 flat indices of the values above threshold, ascending"},
    {"disparity_out", py_disparity_out, METH_VARARGS, "disparity_out(q, is_disparity, out, nthreads)"},
    {"noise_above", py_noise_above, METH_VARARGS, "noise_above(q, weight, threshold, nthreads[, row_step]) -> (median > threshold, count)"},
    {"blurred_steps", py_blurred_steps, METH_VARARGS, "blurred_steps(q, cells, radius, tau, (lo, hi), (lo_s, hi_s), jump, flag, nthreads) -> (count, jumps)"},
    {"step_fill", py_step_fill, METH_VARARGS, "step_fill(q, stepped, colour, linear, (h, w), radius, sigma_s, sigma_r, out, nthreads)"},
    {"band_near", py_band_near, METH_VARARGS, "band_near(matte, matte2, radius, side, near, nthreads) -> (y0, y1, x0, x1)"},
    {"edge_fill", py_edge_fill, METH_VARARGS, "edge_fill(values, weight, guide, sigma_s, sigma_r, iterations, widenings, min_weight, todo, out, nthreads) -> pixels left"},
    {"matte_ramp", py_matte_ramp, METH_VARARGS, "matte_ramp(matte, colour, linear, (matte_out, matte_in, min_side_contrast**2, off_line, grown_max, alpha_agrees, agreeing_share, ridge_step, ridge_share, mask_ramp_px, reach, auto), out, nthreads)"},
    {"continue_sides", py_continue_sides, METH_VARARGS, "continue_sides(q, side, near, kept, band, tolerance, ring_px, blur_pull, beyond_pull, blurred_share, min_weight, iterations, widenings, nthreads): q replaced in place"},
    {"find_nonfinite", py_find_nonfinite, METH_VARARGS, "flat index of the first NaN/inf pixel or -1 (array[, threads])"},
    {"copy_scan", py_copy_scan, METH_VARARGS, "copy_scan(array, out, nthreads) -> (first non-finite flat index or -1, min, max): out None or the C-contiguous copy"},
    {"openmp_enabled", py_openmp_enabled, METH_NOARGS, "whether the core was built with OpenMP"},
    {"default_threads", py_default_threads, METH_NOARGS, "threads the core uses by default"},
    {"array_pool", py_array_pool, METH_VARARGS, "array_pool(handler, nthreads) -> the previous handler: True sets the scratch pool's as the calling thread's NumPy memory handler (zeroing on nthreads threads), None NumPy's default, a returned one that again"},
    {"scratch_limit", py_scratch_limit, METH_VARARGS, "scratch_limit(bytes): most scratch kept between calls (< 0: unchanged); bytes kept"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_core", "synthdof C core binding", -1, methods};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    return PyModule_Create(&moddef);
}
