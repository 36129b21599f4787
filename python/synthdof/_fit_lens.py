"""fit_lens(): the focus distance and f-number with which synthdof.render best reproduces a
reference shot."""
import numpy as np

from ._aperture import as_aperture
from ._imageops import _box, _const_map, _downscale, _local_max, _luma, _tone
from ._kernels import scatter
from ._lens import ThinLens
from ._validate import as_image, as_map, as_matte, positive

def _golden(f, lo, hi, iters, cache):
    """Minimum of a unimodal f on [lo, hi] by golden-section search (f values memoised)."""
    g = (np.sqrt(5.0) - 1.0) / 2.0

    def F(x):
        k = round(x, 9)
        if k not in cache:
            cache[k] = f(x)
        return cache[k]

    a, b = lo, hi
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = F(x1), F(x2)
    for _ in range(iters):
        if f1 <= f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - g * (b - a)
            f1 = F(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (b - a)
            f2 = F(x2)
    return (x1, f1) if f1 <= f2 else (x2, f2)


def _blur_table(img, ref, levels, aperture, hp=False):
    """err[k] = per-pixel squared difference of luminance (tone-encoded, 3x3 mean) between
    `ref` and `img` blurred by a uniform CoC of levels[k] pixels; with hp=True the differences
    of their fine detail (the image minus its 3x3 mean) instead."""
    H, W = img.shape[:2]
    li = np.ascontiguousarray(_luma(img))
    tr = _tone(_luma(ref))
    if hp:
        tr = tr - _box(tr, 1)
    err = np.empty((len(levels), H, W), np.float32)
    for k, c in enumerate(levels):
        b = li if c <= 0 else scatter(li, _const_map((H, W), c), aperture=aperture)
        tb = _tone(b)
        if hp:
            tb = tb - _box(tb, 1)
        err[k] = _box((tb - tr) ** 2, 1)
    return err


def _binned(err, disp, weight, edges):
    """T[b, k]: err[k] summed (with weight) over the pixels whose disparity falls in bin b; the
    bins' weighted mean disparities; and their total weight."""
    nb = len(edges) - 1
    b = np.clip(np.searchsorted(edges, disp.ravel(), side="right") - 1, 0, nb - 1)
    w = weight.ravel().astype(np.float64)
    T = np.stack([np.bincount(b, weights=w * e.ravel(), minlength=nb) for e in err], 1)
    wsum = np.bincount(b, weights=w, minlength=nb)
    dmean = np.bincount(b, weights=w * disp.ravel(), minlength=nb) / np.maximum(wsum, 1e-12)
    keep = wsum > 0
    return T[keep], dmean[keep], wsum[keep]


def _table_cost(T, dbin, levels, df, K):
    """The binned per-pixel model: each bin blurred by K |df - d|, clamped to the table."""
    c = np.clip(K * np.abs(df - dbin), 0.0, levels[-1])
    j = np.clip(np.searchsorted(levels, c, side="right") - 1, 0, len(levels) - 2)
    f = (c - levels[j]) / (levels[j + 1] - levels[j])
    rows = np.arange(len(dbin))
    return float(((1.0 - f) * T[rows, j] + f * T[rows, j + 1]).sum())


def _smooth_depth(disp, span, r):
    """Pixels whose disparity varies by less than 5 % of the scene's range within r pixels:
    where a uniform blur models the render (away from depth edges)."""
    rng = _local_max(disp, r) + _local_max(-disp, r)
    return rng < 0.05 * span


def fit_lens(image, depth, reference, *, matte=None, focal_length_mm=85.0, sensor_width_mm=36.0,
             aperture=None, num_threads=None):
    """The focus distance and f-number with which synthdof.render best reproduces a reference.

    For a real-lens or path-traced shot of the same view as the all-in-focus `image`, for data
    such as EBB! that come without focus information.

    What is fitted and what is assumed: blur is c = K (d_f - 1/z) pixels (the fixed-field-of-view
    thin lens, ThinLens(model="fixed_fov")), so only the focus disparity d_f and the blur scale
    K can be told from pictures. The f-number is K expressed for the lens given by
    focal_length_mm and sensor_width_mm: N = f^2 W / (K s). Give the real lens's values to read
    its true f-number; K and focus_disparity do not depend on them. The aperture shape is taken
    as known (default circle).

    Search, coarse to fine (about 20 renders in all, most of them small):

    1. a per-pixel model on a copy ~192 px wide: the reference against the image blurred by a
       uniform CoC at ~30 levels, summed per disparity bin away from depth edges, scored for
       every (d_f, K) on a dense grid; the three best focus candidates are kept;
    2. the candidates compared with synthdof.render on that copy, the best refined there
       (golden-section search on K, then on d_f);
    3. the focus from fine detail at full size: the same uniform-blur model on the images' fine
       detail, for CoCs up to 8 px (what tells a sharp pixel from a slightly soft one), searched
       along d_f with K fixed;
    4. K again with synthdof.render on a copy ~384 px wide, the focus fixed.

    Error measure: mean squared difference after a compressive tone curve (bright highlights
    count without swamping the rest).

    Parameters
    ----------
    image, reference : array_like
        (H, W, 3) (float = linear light, uint8/uint16 = sRGB).
    depth : array_like
        (H, W) planar depth in metres (or any quantity whose inverse is proportional to
        disparity, with focus_distance then in the same unit), > 0 and not constant.
    matte : array_like, optional
        Subject alpha, passed to render.
    focal_length_mm, sensor_width_mm : float, optional
        The lens the f-number is expressed for (defaults: an 85 mm lens on a 36 mm-wide sensor).
    aperture : Aperture, optional
        The shape of the blur (default: a disk).
    num_threads : int, optional
        For the renders (default: one thread for the downscaled copies under 200,000 pixels,
        where threads cost more than they gain; all cores otherwise).

    Returns
    -------
    dict
        focus_distance (metres), f_number, K (pixels per 1/metre at the full width),
        focus_disparity (1/metre), error (mean squared difference at step 4), lens (a ThinLens
        with the fitted values), and the focal_length_mm and sensor_width_mm used.

    Raises
    ------
    TypeError
        If an argument has the wrong type (the message names it).
    ValueError
        If the shapes disagree, depth is not > 0 everywhere or is (nearly) constant.

    Examples
    --------
    >>> import synthdof
    >>> s = synthdof.load_sample()
    >>> truth = synthdof.ThinLens(**s["lens"])
    >>> shot = synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=truth)
    >>> fit = synthdof.fit_lens(s["image"], s["depth"], shot, matte=s["matte"],
    ...                         focal_length_mm=truth.focal_length_mm, sensor_width_mm=truth.sensor_width_mm)
    >>> bool(abs(fit["focus_distance"] / truth.focus_distance - 1) < 0.05)
    True
    >>> bool(abs(fit["f_number"] / truth.f_number - 1) < 0.1)
    True
    """
    from ._render import render

    img, _ = as_image(image, "image", channels=3, allow_gray=False)
    ref, _ = as_image(reference, "reference", channels=3, allow_gray=False)
    H, W = img.shape[:2]
    if ref.shape != img.shape:
        raise ValueError(f"reference: shape {ref.shape} does not match the image's {img.shape}")
    z = as_map(depth, "depth", (H, W))
    if (z <= 0).any():
        raise ValueError("depth: must be > 0 everywhere")
    a = None if matte is None else as_matte(matte, (H, W))
    f_mm = positive(focal_length_mm, "focal_length_mm")
    s_mm = positive(sensor_width_mm, "sensor_width_mm")
    ap = as_aperture(aperture)
    disp = (1.0 / z.astype(np.float64)).astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(disp, [0.5, 99.5]))
    if hi - lo < 1e-6 * hi:
        raise ValueError("depth: is (nearly) constant; the focus cannot be told from blur")
    span = hi - lo
    c_top = 0.2 * W  # the largest blur considered, in pixels at full size

    def level(s):
        return dict(s=s, img=_downscale(img, s), disp=_downscale(disp, s), ref=_downscale(ref, s),
                    a=None if a is None else _downscale(a, s))

    def render_err(L, df, logk):
        K = np.exp(logk) / L["s"]
        c = (K * (df - L["disp"])).astype(np.float32)
        nt = num_threads
        if nt is None and L["img"].shape[0] * L["img"].shape[1] < 200_000:
            nt = 1   # small copies: threads cost more than they gain
        out = render(L["img"], coc=c, matte=L["a"], aperture=ap, num_threads=nt)
        if "tref" not in L:
            L["tref"] = _tone(L["ref"])
        return float(np.mean((_tone(out) - L["tref"]) ** 2))

    # 1. per-pixel uniform-blur model on a small copy, a dense grid of (d_f, K)
    s1 = max(1, int(round(W / 192)))
    L1 = level(s1)
    lv1 = np.unique(np.concatenate([[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
                                    np.geomspace(3.6, max(4.0, c_top / s1), 24)])).astype(np.float32)
    err1 = _blur_table(L1["img"], L1["ref"], lv1, ap)
    w1 = _smooth_depth(L1["disp"], span, 2).astype(np.float32)
    if w1.sum() < 0.05 * w1.size:
        w1[:] = 1.0
    edges = np.linspace(float(L1["disp"].min()), float(L1["disp"].max()) + 1e-9, 257)
    T1, db1, _ = _binned(err1, L1["disp"], w1, edges)
    dfs = np.linspace(lo, hi, 81)
    lks = np.linspace(np.log(0.5 / span), np.log(c_top / span), 61)
    cost = np.array([[_table_cost(T1, db1, lv1, df, np.exp(lk) / s1) for lk in lks] for df in dfs])
    prof = cost.min(1)
    is_min = np.r_[True, prof[1:] <= prof[:-1]] & np.r_[prof[:-1] <= prof[1:], True]
    cand = [i for i in np.argsort(prof) if is_min[i]][:3]
    step = dfs[1] - dfs[0]

    # 2. the candidates checked with the renderer on the small copy; the best one refined
    tried = []
    for i in cand:
        df, lk = float(dfs[i]), float(lks[int(np.argmin(cost[i]))])
        tried.append((render_err(L1, df, lk), df, lk))
    _, df, lk = min(tried)
    lk, _ = _golden(lambda x: render_err(L1, df, x), lk - 0.3, lk + 0.3, 4, {})
    df, _ = _golden(lambda x: render_err(L1, x, lk), df - 2 * step, df + 2 * step, 4, {})

    # 3. the focus from fine detail at full size (blur up to 8 px; beyond, detail is gone)
    lvf = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0], np.float32)
    errf = _blur_table(img, ref, lvf, ap, hp=True)
    ti = _tone(_luma(img))
    detail = _box((ti - _box(ti, 1)) ** 2, 1)
    wf = (_smooth_depth(disp, span, 3) & (detail > 3e-5)).astype(np.float32)
    if wf.sum() >= 100:
        edges = np.linspace(float(disp.min()), float(disp.max()) + 1e-9, 1025)
        Tf, dbf, _ = _binned(errf, disp, wf, edges)
        K = float(np.exp(lk))
        df, _ = _golden(lambda x: _table_cost(Tf, dbf, lvf, x, K), df - 1.5 * step * s1, df + 1.5 * step * s1,
                        24, {})

    # 4. the blur scale with the renderer on a larger copy, the focus fixed
    L2 = level(max(1, int(round(W / 384))))
    lk, e = _golden(lambda x: render_err(L2, df, x), lk - 0.15, lk + 0.15, 6, {})

    K = float(np.exp(lk))
    f = f_mm / 1000.0
    N = f * f * W / (K * s_mm / 1000.0)
    zf = 1.0 / df if df > 0 else float("inf")
    lens = ThinLens(f_mm, N, zf, s_mm) if np.isfinite(zf) else None
    return {"focus_distance": zf, "f_number": N, "K": K, "focus_disparity": float(df), "error": e,
            "lens": lens, "focal_length_mm": f_mm, "sensor_width_mm": s_mm}
