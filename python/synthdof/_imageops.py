"""Image operations of the diagnostics: luminance, tone curve, box and Gaussian filters,
distances, push-pull fill, up- and downscaling, local maxima. NumPy and the package's own
kernels only."""
import numpy as np

from ._kernels import gather

_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def _luma(x):
    return x @ _LUMA


def _tone(x):
    """Compressive encoding for structure measures: 0 -> 0, 1 -> 1, bright lights (10-100)
    stay bright but do not swamp everything else."""
    return (np.log1p(16.0 * np.maximum(x, 0.0)) / np.log1p(16.0)).astype(np.float32)


def _box1(x, r, axis):
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(x, pad, mode="symmetric"), axis=axis, dtype=np.float64)
    hi = [slice(None)] * x.ndim
    lo = [slice(None)] * x.ndim
    hi[axis] = slice(2 * r + 1, 2 * r + 1 + n)
    lo[axis] = slice(0, n)
    return ((c[tuple(hi)] - c[tuple(lo)]) * (1.0 / (2 * r + 1))).astype(np.float32)


def _box(x, r):
    """Mean over a (2r+1)^2 window, mirrored borders."""
    r = int(r)
    if r <= 0:
        return np.asarray(x, np.float32)
    return _box1(_box1(x, r, 0), r, 1)


def _smooth(x, r):
    """Three box passes: a cheap Gaussian-like window of radius about r."""
    for _ in range(3):
        x = _box(x, max(1, int(round(r / 1.7))))
    return x


def _dilate1(m, diagonal):
    o = m.copy()
    o[1:] |= m[:-1]
    o[:-1] |= m[1:]
    o[:, 1:] |= m[:, :-1]
    o[:, :-1] |= m[:, 1:]
    if diagonal:
        o[1:, 1:] |= m[:-1, :-1]
        o[1:, :-1] |= m[:-1, 1:]
        o[:-1, 1:] |= m[1:, :-1]
        o[:-1, :-1] |= m[1:, 1:]
    return o


def _distance(mask, nmax):
    """Distance in pixels (octagonal, within ~8 % of Euclidean) from the True pixels of `mask`,
    up to nmax; farther pixels get nmax + 1, and so does everything if mask is empty."""
    nmax = int(nmax)
    d = np.full(mask.shape, nmax + 1, np.float32)
    if not mask.any():
        return d
    d[mask] = 0
    cur = mask.copy()
    for k in range(1, nmax + 1):
        nxt = _dilate1(cur, diagonal=(k % 2 == 0))
        d[nxt & ~cur] = k
        cur = nxt
        if cur.all():
            break
    return d


def _const_map(shape, v):
    return np.full(shape, np.float32(v), np.float32)


def _upsample(x, s, H, W):
    """Bilinear upsampling by an integer factor s (pixel centres aligned) to (H, W)."""
    h, w = x.shape[:2]

    def coords(n, m):
        t = np.clip((np.arange(n) + 0.5) / s - 0.5, 0.0, m - 1.0)
        i0 = np.minimum(t.astype(np.int64), m - 1)
        i1 = np.minimum(i0 + 1, m - 1)
        return i0, i1, (t - i0).astype(np.float32)

    y0, y1, fy = coords(H, h)
    x0, x1, fx = coords(W, w)
    ex = (slice(None),) + (None,) * (x.ndim - 2)
    top = x[y0][:, x0] * (1 - fx)[ex] + x[y0][:, x1] * fx[ex]
    bot = x[y1][:, x0] * (1 - fx)[ex] + x[y1][:, x1] * fx[ex]
    fy = fy[(slice(None), None) + (None,) * (x.ndim - 2)]
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def _gather_coarse(img, c):
    """gather(img, c), with the large CoCs done on a copy downscaled by s (blur of 8 s pixels
    and more is smooth at that scale): the same result within a few per cent, several times
    faster. Pixels with CoC under 2 s are gathered at full size."""
    big = c[c >= 3.0]
    s = int(np.clip(np.floor(float(np.median(big)) / 8.0), 1, 4)) if big.size else 1
    if s == 1:
        return gather(img, c)
    H, W = c.shape
    ph, pw = (-H) % s, (-W) % s
    pad2 = ((0, ph), (0, pw))
    ip = np.pad(img, pad2 + ((0, 0),) * (img.ndim - 2), mode="edge")
    cp = np.pad(c, pad2, mode="edge")
    coarse = gather(_downscale(ip, s), _downscale(cp, s) / s)
    out = _upsample(coarse, s, H + ph, W + pw)[:H, :W]
    small = c < 2 * s
    if small.any():
        fine = gather(img, np.where(small, c, 0.0).astype(np.float32))
        out = np.where(small[(...,) + (None,) * (img.ndim - 2)], fine, out)
    return np.ascontiguousarray(out, np.float32)


def _ramp(x, lo, hi):
    """0 at or below lo, 1 at or above hi, linear between (lo > hi gives a falling ramp)."""
    r = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return float(r) if np.ndim(r) == 0 else r.astype(np.float32)


def _fill(img, w):
    """Push-pull continuation of img (H, W, C) into the pixels where w (H, W) in [0, 1] is 0:
    known pixels are kept, holes get a smooth, weighted mean of what surrounds them."""
    img = np.asarray(img, np.float32)
    w = np.clip(np.asarray(w, np.float32), 0.0, 1.0)
    H, W = w.shape
    if H <= 1 and W <= 1 or w.min() >= 1.0:
        return img.copy()
    # pull: 2x2 weighted means (odd sides padded by repeating the edge)
    h2, w2 = (H + 1) // 2, (W + 1) // 2
    pi = np.pad(img * w[:, :, None], ((0, 2 * h2 - H), (0, 2 * w2 - W), (0, 0)), mode="edge")
    pw = np.pad(w, ((0, 2 * h2 - H), (0, 2 * w2 - W)), mode="edge")
    si = pi.reshape(h2, 2, w2, 2, -1).sum((1, 3))
    sw = pw.reshape(h2, 2, w2, 2).sum((1, 3))
    coarse = np.where(sw[:, :, None] > 0, si / np.maximum(sw, 1e-12)[:, :, None], 0.0).astype(np.float32)
    coarse = _fill(coarse, np.minimum(sw, 1.0))
    # push: the coarse level, upsampled, fills in what this level lacks
    up = np.repeat(np.repeat(coarse, 2, 0), 2, 1)[:H, :W]
    up = _box(up, 1)
    return (w[:, :, None] * img + (1.0 - w[:, :, None]) * up).astype(np.float32)


def _max1(x, r, axis):
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    p = np.pad(x, pad, mode="edge")
    o = np.take(p, np.arange(0, n), axis=axis)
    for k in range(1, 2 * r + 1):
        np.maximum(o, np.take(p, np.arange(k, k + n), axis=axis), out=o)
    return o


def _step(x, across=None):
    """Largest |x(p) - x(q)| over each pixel p's 4-neighbours q; with `across` (bool, same
    shape), only over the neighbours that lie on the other side of it."""
    x = np.asarray(x, np.float32)
    out = np.zeros(x.shape, np.float32)
    for axis in (0, 1):
        d = np.abs(np.diff(x, axis=axis))
        if across is not None:
            d = d * (np.diff(across.astype(np.int8), axis=axis) != 0)
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        out[tuple(lo)] = np.maximum(out[tuple(lo)], d)
        out[tuple(hi)] = np.maximum(out[tuple(hi)], d)
    return out


def _local_max(x, r):
    """Max over a (2r+1)^2 window (edge-padded)."""
    r = int(r)
    return x if r <= 0 else _max1(_max1(x, r, 0), r, 1)


def _downscale(x, s):
    """Mean over s x s blocks (the frame cropped to a multiple of s)."""
    if s == 1:
        return np.ascontiguousarray(x, np.float32)
    H, W = x.shape[:2]
    x = x[:H // s * s, :W // s * s]
    return np.ascontiguousarray(x.reshape(H // s, s, W // s, s, *x.shape[2:]).mean((1, 3)), np.float32)


def _gauss_taps(sigma, truncate=3.5):
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter1(x, taps, axis):
    r = len(taps) // 2
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    p = np.pad(x, pad, mode="symmetric")
    out = np.zeros(x.shape, np.float64)
    sl = [slice(None)] * x.ndim
    for i, t in enumerate(taps):
        sl[axis] = slice(i, i + n)
        out += t * p[tuple(sl)]
    return out


def _gauss(x, sigma):
    k = _gauss_taps(sigma)
    return _filter1(_filter1(x, k, 0), k, 1)
