"""Metrics of a render against a reference render: SSIM, PSNR, the silhouette band and
compare()."""
import numpy as np

from ._color import linear_to_srgb
from ._imageops import _box, _distance, _gauss, _gauss_taps, _luma
from ._validate import as_image, as_map, as_matte

def ssim(a, b, *, sigma=1.5):
    """Mean structural similarity of two images in [0, 1].

    Wang et al. 2004 with a Gaussian window truncated at 3.5 sigma, K1 = 0.01, K2 = 0.03,
    population covariances, a window's radius left out at the borders, channels averaged.
    NumPy only; matches skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1).

    Parameters
    ----------
    a, b : array_like
        (H, W) or (H, W, C) images with values in [0, 1] (sRGB-encoded, as SSIM is reported).
    sigma : float, optional
        The window's standard deviation in pixels (default 1.5).

    Returns
    -------
    float
        1 for identical images.

    Raises
    ------
    ValueError
        If the images are smaller than the window (11 pixels a side for sigma 1.5).

    Examples
    --------
    >>> import numpy as np
    >>> from synthdof._metrics import ssim
    >>> x = np.random.default_rng(1).random((32, 32))
    >>> ssim(x, x)
    1.0
    >>> bool(ssim(x, 0.5 * x + 0.25) < 1.0)
    True
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    C1, C2 = 0.01 ** 2, 0.03 ** 2
    r = len(_gauss_taps(sigma)) // 2
    if min(a.shape[:2]) < 2 * r + 1:
        raise ValueError(f"images must be at least {2 * r + 1} pixels a side for SSIM, got {a.shape[:2]}")
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[:, :, ch], b[:, :, ch]
        ux, uy = _gauss(x, sigma), _gauss(y, sigma)
        vx = _gauss(x * x, sigma) - ux * ux
        vy = _gauss(y * y, sigma) - uy * uy
        vxy = _gauss(x * y, sigma) - ux * uy
        S = ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2))
        vals.append(S[r:S.shape[0] - r, r:S.shape[1] - r].mean())
    return float(np.mean(vals))


def _ssim_best(a, b):
    """scikit-image's SSIM when it is installed (same settings), else ssim()."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return ssim(a, b), "synthdof"
    v = structural_similarity(a, b, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
    return float(v), "skimage"


def _psnr(a, b, mask=None):
    d = (a - b) ** 2
    if mask is not None:
        d = d[mask]
    if d.size == 0:
        return float("nan")
    mse = float(np.mean(d, dtype=np.float64))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def silhouette_band(matte, coc=None, *, margin=2):
    """The two sides of the subject's silhouette where halos and bleed live.

    Outside: non-subject pixels (matte < 0.5) within |coc|/2 + margin pixels of the subject, so
    the band is as wide as the blur of the background there. Inside: subject pixels within
    r + margin of the outside, r the mean |coc|/2 of the background nearby (how far the
    background's blur can reach into a subject it should not cross). Without coc the width is
    margin + 1 % of the image width.

    Parameters
    ----------
    matte : array_like
        (H, W) subject alpha in [0, 1].
    coc : array_like, optional
        (H, W) CoC diameter in pixels.
    margin : int, optional
        Pixels added to each side (default 2).

    Returns
    -------
    inside, outside : ndarray
        (H, W) bool.

    Examples
    --------
    >>> import numpy as np
    >>> from synthdof._metrics import silhouette_band
    >>> matte = np.zeros((9, 200), np.float32)
    >>> matte[:, :100] = 1.0
    >>> inside, outside = silhouette_band(matte)   # 2 + 1 % of 200 = 4 px either side
    >>> np.nonzero(inside[4])[0], np.nonzero(outside[4])[0]
    (array([96, 97, 98, 99]), array([100, 101, 102, 103]))
    """
    a = as_matte(matte, np.shape(matte))
    H, W = a.shape
    subj = a >= 0.5
    if coc is None:
        r_out = np.full((H, W), 0.01 * W, np.float32)
        r_in = r_out
    else:
        c = np.abs(as_map(coc, "coc", (H, W)))
        r_out = c / 2
        # the background's blur radius near each subject pixel: a local mean of it over the
        # surroundings, wide enough to reach the subject's inside
        reach = int(np.ceil(float(np.percentile(r_out[~subj], 90)))) + margin if (~subj).any() else margin
        wbg = (~subj).astype(np.float32)
        num = _box(r_out * wbg, reach)
        den = _box(wbg, reach)
        r_in = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    nmax = int(np.ceil(max(float(r_out.max()), float(r_in.max())))) + margin + 1
    d_out = _distance(subj, nmax)
    d_in = _distance(~subj, nmax)
    outside = ~subj & (d_out <= r_out + margin)
    inside = subj & (d_in <= r_in + margin)
    return inside, outside


def compare(rendered, reference, *, matte=None, coc=None):
    """Metrics of a render against a reference render of the same scene (a path-traced thin
    lens, a real camera's shot), as the shallow depth-of-field literature reports them.

    Parameters
    ----------
    rendered, reference : array_like
        (H, W, 3), float = linear light, uint8/uint16 = sRGB.
    matte : array_like, optional
        (H, W) subject alpha, for the silhouette band.
    coc : array_like, optional
        (H, W) CoC diameter in pixels, which sets the band's width (see silhouette_band).

    Returns
    -------
    dict
        psnr, ssim: on sRGB-encoded values clipped to [0, 1] (SSIM from scikit-image when it is
        installed, else the NumPy ssim() with the same settings; ssim_impl says which; NaN for
        images under 11 pixels a side); flux_ratio: total linear light, rendered / reference
        (energy kept: 1.0); highlight_peak_ratio: mean linear level (channel mean) over the
        reference's brightest 0.1 % pixels, rendered / reference (highlights kept as bright
        disks: 1.0; a Gaussian gives ~0.4). With a matte also: band_psnr (both sides of the
        silhouette band), inside_psnr and outside_psnr (each side alone), inside_error and
        outside_error (mean signed error of the sRGB luminance on each side; inside: the
        subject's edge, where background bleeds in; outside: the surroundings, where halos sit;
        > 0 = rendered brighter than the reference) and band_pixels (inside, outside).

    Raises
    ------
    TypeError
        If an argument has the wrong type (the message names it).
    ValueError
        If the shapes disagree.

    See Also
    --------
    diagnose : failure modes without a reference.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> ref = np.random.default_rng(2).random((32, 32, 3), dtype=np.float32)
    >>> m = synthdof.compare(1.1 * ref, ref)
    >>> round(m["flux_ratio"], 3), round(m["highlight_peak_ratio"], 3), bool(m["psnr"] > 20)
    (1.1, 1.1, True)
    """
    ren, _ = as_image(rendered, "rendered", channels=3, allow_gray=False)
    ref, _ = as_image(reference, "reference", channels=3, allow_gray=False)
    if ren.shape != ref.shape:
        raise ValueError(f"rendered: shape {ren.shape} does not match the reference's {ref.shape}")
    H, W = ref.shape[:2]
    sr = linear_to_srgb(ren).astype(np.float64)
    sf = linear_to_srgb(ref).astype(np.float64)
    out = {"psnr": float(_psnr(sr, sf))}
    if min(H, W) >= 11:
        out["ssim"], out["ssim_impl"] = _ssim_best(sr, sf)
    else:   # smaller than the SSIM window
        out["ssim"], out["ssim_impl"] = float("nan"), None
    tot = float(ref.sum(dtype=np.float64))
    out["flux_ratio"] = float(ren.sum(dtype=np.float64)) / tot if tot > 0 else float("nan")
    lr, lf = ren.mean(2), ref.mean(2)
    hl = lf >= np.percentile(lf, 99.9)
    peak = float(lf[hl].mean())
    out["highlight_peak_ratio"] = float(lr[hl].mean()) / peak if peak > 0 else float("nan")
    if matte is not None:
        a = as_matte(matte, (H, W))
        c = None if coc is None else as_map(coc, "coc", (H, W))
        inside, outside = silhouette_band(a, c)
        band = inside | outside
        out["band_psnr"] = float(_psnr(sr, sf, band))
        out["inside_psnr"] = float(_psnr(sr, sf, inside))
        out["outside_psnr"] = float(_psnr(sr, sf, outside))
        ey = _luma(sr.astype(np.float32)) - _luma(sf.astype(np.float32))
        out["inside_error"] = float(ey[inside].mean()) if inside.any() else float("nan")
        out["outside_error"] = float(ey[outside].mean()) if outside.any() else float("nan")
        out["band_pixels"] = (int(inside.sum()), int(outside.sum()))
    elif coc is not None:
        as_map(coc, "coc", (H, W))
    return out
