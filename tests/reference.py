"""Slow pure-NumPy references for the spreading kernels, written from the definitions (not from
the C code), for small images only.

Footprint of a source pixel (x, y) with signed CoC c: the aperture shape scaled to radius
R = |c| / 2, centred on the pixel centre (x + 0.5, y + 0.5) and turned by 180 degrees when c < 0.
The weight it gives target pixel (i, j) is the area of [i, i+1) x [j, j+1) inside the shape,
estimated by supersampling (S x S points per pixel), then normalised so the footprint sums to 1.
Targets outside the frame are mirrored back in (-1 -> 0, -2 -> 1, W -> W - 1, ...).
"""
from functools import lru_cache

import numpy as np


def mirror_index(i, n):
    """Index of the frame pixel that pixel i of the mirror-extended line shows."""
    i = np.asarray(i)
    p = 2 * n
    i = np.mod(i, p)
    return np.where(i < n, i, p - 1 - i)


def polygon_vertices(blades, rotation):
    """Unit-circumradius polygon vertices in image coordinates (x right, y down): angles
    rotation + pi/n + 2 pi k/n measured counter-clockwise with y up."""
    th = rotation + np.pi / blades + 2.0 * np.pi * np.arange(blades) / blades
    return np.stack([np.cos(th), -np.sin(th)], axis=-1)


def inside_unit_shape(u, v, blades=0, rotation=0.0):
    """Boolean mask of points (u, v) (unit radius, image coordinates) inside the shape."""
    if blades == 0:
        return u * u + v * v <= 1.0
    P = polygon_vertices(blades, rotation)
    Q = np.roll(P, -1, axis=0)
    inside = np.ones(np.broadcast(u, v).shape, dtype=bool)
    # convex polygon: on the same side of every edge as the centre (the origin)
    for (x0, y0), (x1, y1) in zip(P, Q):
        cross_pt = (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0)
        cross_o = (x1 - x0) * (0.0 - y0) - (y1 - y0) * (0.0 - x0)
        inside &= cross_pt * cross_o >= 0.0
    return inside


def footprint(cx, cy, c, blades=0, rotation=0.0, S=16):
    """(j0, i0, weights) of the shape of diameter |c| centred at (cx, cy) on the unbounded pixel
    grid: weights[jj, ii] belongs to pixel (i0 + ii, j0 + jj), sums to 1."""
    R = 0.5 * abs(float(c))
    sign = -1.0 if c < 0 else 1.0
    i0, i1 = int(np.floor(cx - R)) - 1, int(np.ceil(cx + R)) + 1
    j0, j1 = int(np.floor(cy - R)) - 1, int(np.ceil(cy + R)) + 1
    xs = i0 + (np.arange((i1 - i0) * S) + 0.5) / S
    ys = j0 + (np.arange((j1 - j0) * S) + 0.5) / S
    if R > 0:
        u = sign * (xs[None, :] - cx) / R
        v = sign * (ys[:, None] - cy) / R
        ins = inside_unit_shape(u, v, blades, rotation).astype(np.float64)
        w = ins.reshape(j1 - j0, S, i1 - i0, S).sum(axis=(1, 3))
    else:
        w = np.zeros((j1 - j0, i1 - i0))
    if w.sum() == 0.0:  # shape smaller than the sampling: all in the pixel holding the centre
        w[int(np.floor(cy)) - j0, int(np.floor(cx)) - i0] = 1.0
    return j0, i0, w / w.sum()


@lru_cache(maxsize=4096)
def _footprint_at_origin(c, blades, rotation, S):
    j0, i0, w = footprint(0.5, 0.5, c, blades, rotation, S)
    w.setflags(write=False)
    return j0, i0, w


def _shifted_footprint(x, y, c, blades, rotation, S):
    """Footprint of source pixel (x, y): the one of pixel (0, 0) moved by whole pixels (the
    sample grid moves with it, so this is exact)."""
    j0, i0, w = _footprint_at_origin(float(c), int(blades), float(rotation), int(S))
    return j0 + y, i0 + x, w


def _split(image):
    a = np.asarray(image, dtype=np.float64)
    return (a[:, :, None] if a.ndim == 2 else a), a.ndim == 2


def ref_scatter(image, coc, blades=0, rotation=0.0, S=16):
    """Every pixel spreads its value over its footprint; light leaving the frame is mirrored."""
    img, gray = _split(image)
    H, W, C = img.shape
    out = np.zeros((H, W, C))
    for y in range(H):
        for x in range(W):
            if not img[y, x].any():
                continue
            j0, i0, w = _shifted_footprint(x, y, coc[y, x], blades, rotation, S)
            jj = mirror_index(np.arange(j0, j0 + w.shape[0]), H)
            ii = mirror_index(np.arange(i0, i0 + w.shape[1]), W)
            np.add.at(out, (jj[:, None], ii[None, :]), w[:, :, None] * img[y, x][None, None, :])
    return out[:, :, 0] if gray else out


def ref_gather(image, coc, blades=0, rotation=0.0, S=16):
    """Every output pixel is the footprint-weighted mean of the mirror-extended input around it,
    the footprint taken with the output pixel's own CoC."""
    img, gray = _split(image)
    H, W, C = img.shape
    out = np.zeros((H, W, C))
    for y in range(H):
        for x in range(W):
            j0, i0, w = _shifted_footprint(x, y, coc[y, x], blades, rotation, S)
            jj = mirror_index(np.arange(j0, j0 + w.shape[0]), H)
            ii = mirror_index(np.arange(i0, i0 + w.shape[1]), W)
            out[y, x] = np.einsum("ab,abc->c", w, img[jj[:, None], ii[None, :]])
    return out[:, :, 0] if gray else out


def ref_coc_fixed_fov(z, f_mm, N, zf, s_mm, width):
    """c = f^2 W / (N s) (1/z_f - 1/z), float64."""
    f, s = f_mm / 1000.0, s_mm / 1000.0
    return f * f * width / (N * s) * (1.0 / zf - 1.0 / np.asarray(z, np.float64))


def ref_coc_real_lens(z, f_mm, N, zf, s_mm, width):
    """c = f^2 / (N (z_f - f)) (z - z_f) / z * W / s, float64."""
    f, s = f_mm / 1000.0, s_mm / 1000.0
    z = np.asarray(z, np.float64)
    return f * f / (N * (zf - f)) * (z - zf) / z * width / s
