"""render(): occlusion-aware, depth-ordered synthetic depth of field."""
import numbers

import numpy as np

from . import _core
from ._aperture import as_aperture
from ._color import linear_to_srgb
from ._lens import ThinLens
from ._validate import as_image, as_map, as_matte, positive, prepare_out, resolve_threads

# Slices are spaced evenly along the CoC axis (the axis along which blur, and so the visibility of
# ordering mistakes, is linear): at most this many, and never closer than MIN_SLICE_PX.
MAX_SLICES = 24
MIN_SLICE_PX = 1.0
# A CoC histogram bin (this wide) holding this share of the coverage (and pixels) is a flat
# surface that gets a slice centre of its own.
MODE_BIN_PX = 0.1
# Neighbours whose CoC differs by more than this mark a depth edge (see _unmix_depth_edges).
EDGE_MARGIN_PX = 1.0
MODE_MIN_SHARE = 0.001
MODE_MIN_PIXELS = 50.0
# Highlight recovery for clipped integer input: linear gain at the clip level (see render()).
AUTO_HIGHLIGHT_GAIN = 6.0


def _fill(values, weight, nt):
    """Push-pull fill of (H, W, n) values where weight < 1."""
    v = np.ascontiguousarray(values, dtype=np.float32)
    if v.ndim == 2:
        v = v[:, :, None]
    out = np.empty_like(v)
    _core.pushpull(v, np.ascontiguousarray(weight, dtype=np.float32), out, nt)
    return out


def _confident(alpha, levels):
    """Weight map of the pixels above the first threshold in `levels` that selects any."""
    for t in levels:
        m = alpha >= t if t > 0 else alpha > 0
        if m.any():
            return m.astype(np.float32)
    return None


_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _unmix_depth_edges(rgba, coc, margin=EDGE_MARGIN_PX):
    """Splits pixels on depth edges between the two surfaces they show.

    Depth maps are rarely anti-aliased: a pixel half covered by a bright light in front of a
    wall carries the wall's depth, and spread with the wall's CoC it grows a soft rim around the
    light's disk. For a pixel whose 8 neighbours include a surface whose CoC differs by more than
    `margin` px, the fraction b of that other surface is estimated by projecting the pixel's
    colour onto the line between the two sides' mean colours (I = b N + (1 - b) F), and that part
    moves to an extra entry at the other surface's CoC; the pixel's own entry keeps the rest, so
    the light is unchanged. Only fully covered pixels (alpha 1) are considered.
    Returns (rgba, coc, extra_rgba, extra_coc) or None when no pixel needs it."""
    H, W = coc.shape
    if H < 3 or W < 3:
        return None
    cp = np.pad(coc, 1, mode="edge")
    lo = np.full_like(coc, np.inf)
    hi = np.full_like(coc, -np.inf)
    for dy, dx in _OFFSETS:
        nb = cp[1 + dy:1 + dy + H, 1 + dx:1 + dx + W]
        np.minimum(lo, nb, out=lo)
        np.maximum(hi, nb, out=hi)
    cand = ((lo < coc - margin) | (hi > coc + margin)) & (rgba[:, :, 3] >= 0.999)
    ys, xs = np.nonzero(cand)
    if ys.size == 0:
        return None
    col = np.pad(rgba[:, :, :3] / np.maximum(rgba[:, :, 3:], 1e-6), ((1, 1), (1, 1), (0, 0)), mode="edge")
    full = np.pad(rgba[:, :, 3] >= 0.999, 1, mode="edge")
    cpix = coc[ys, xs]
    own = col[ys + 1, xs + 1]
    nbc = np.stack([cp[ys + 1 + dy, xs + 1 + dx] for dy, dx in _OFFSETS], 1)         # (K, 8)
    nbcol = np.stack([col[ys + 1 + dy, xs + 1 + dx] for dy, dx in _OFFSETS], 1)      # (K, 8, 3)
    valid = np.stack([full[ys + 1 + dy, xs + 1 + dx] for dy, dx in _OFFSETS], 1)     # fully this set's
    near = valid & (nbc < (cpix - margin)[:, None])
    far = valid & (nbc > (cpix + margin)[:, None])
    same = valid & ~near & ~far
    # the other side: nearer neighbours first (a light, a railing), else farther ones
    other = np.where(near.any(1)[:, None], near, far)
    n_o = other.sum(1)
    n_s = same.sum(1)
    ok = (n_o > 0) & (n_s > 0)
    O = (nbcol * other[:, :, None]).sum(1) / np.maximum(n_o, 1)[:, None]
    S = (nbcol * same[:, :, None]).sum(1) / np.maximum(n_s, 1)[:, None]
    c_other = (nbc * other).sum(1) / np.maximum(n_o, 1)
    d = O - S
    dd = (d * d).sum(1)
    ok &= dd > (0.05 * np.maximum(np.abs(O).sum(1), np.abs(S).sum(1))) ** 2  # sides must differ
    b = np.clip(((own - S) * d).sum(1) / np.maximum(dd, 1e-20), 0.0, 1.0) * ok
    move = np.minimum(b[:, None] * O, own)            # never more light than the pixel has
    if not (b > 0).any():
        return None
    rgba = rgba.copy()
    rgba[ys, xs, :3] -= move
    rgba[ys, xs, 3] -= b
    extra = np.zeros_like(rgba)
    extra[ys, xs, :3] = move
    extra[ys, xs, 3] = b
    ecoc = coc.copy()
    ecoc[ys, xs] = c_other
    return rgba, coc, extra, ecoc


def _layers(img, coc, matte, nt):
    """Premultiplied RGBA entry sets with their CoC maps.

    Without a matte the image is one set. With a matte each pixel I = a F + (1 - a) O is split
    into its subject part (a F, at the subject's CoC) and the rest ((1 - a) O, at the CoC of the
    surroundings): the subject's CoC comes from its confident interior and the rest's from the
    confident outside, so a depth map that blurs across the silhouette does not smear the edge,
    and O at fractional pixels (hair) is continued from the visible background around them.
    What each depth slice hides is filled in later, slice by slice, by the core."""
    H, W = coc.shape
    if matte is None:
        rgba = np.concatenate([img, np.ones((H, W, 1), np.float32)], 2)
        return _with_unmixed_edges([], rgba, coc)
    a = matte
    w_subj = _confident(a, (0.95, 0.5, 0.0))
    if w_subj is None:  # an empty matte: nothing is subject
        return _layers(img, coc, None, nt)
    w_other = _confident(1.0 - a, (0.95, 0.5, 0.0))
    c_subj = _fill(coc, w_subj, nt)[:, :, 0]
    if w_other is not None:  # colour and CoC of the surroundings share one fill
        filled = _fill(np.concatenate([img, coc[:, :, None]], 2), w_other, nt)
        other, c_other = filled[:, :, :3], np.ascontiguousarray(filled[:, :, 3])
    else:
        other, c_other = np.zeros_like(img), c_subj.copy()
    a3 = a[:, :, None]
    # the two parts always add up to the pixel exactly (so nothing changes where nothing blurs)
    subj_pm = np.clip(img - (1.0 - a3) * other, 0.0, np.maximum(img, 0.0))
    subject = np.concatenate([subj_pm, a3], 2)
    rest = np.concatenate([img - subj_pm, (1.0 - a3)], 2)
    subject_set = (np.ascontiguousarray(subject, dtype=np.float32), np.ascontiguousarray(c_subj))
    return _with_unmixed_edges([subject_set], rest.astype(np.float32), np.ascontiguousarray(c_other))


def _with_unmixed_edges(sets, rgba, coc):
    split = _unmix_depth_edges(rgba, coc)
    if split is None:
        return sets + [(np.ascontiguousarray(rgba, dtype=np.float32), coc)]
    r, c, e, ec = split
    return sets + [(np.ascontiguousarray(r, dtype=np.float32), c),
                   (np.ascontiguousarray(e, dtype=np.float32), np.ascontiguousarray(ec, dtype=np.float32))]


def _slice_centres(sets):
    """Slice centres along the CoC axis, from the largest (farthest) to the smallest.

    An even grid (at most MAX_SLICES, at least MIN_SLICE_PX apart) whose nearest centre is moved
    onto every strong mode of the CoC histogram (a fronto-parallel surface: a wall, a card, a
    group of lights), so that a flat surface lies in one slice instead of being split between
    two, and distinct surfaces at nearby depths fall in distinct slices. Centres whose tent holds
    nothing are dropped (their neighbours then meet)."""
    cs, ws = [], []
    for rgba, c in sets:
        m = rgba[:, :, 3] > 0
        cs.append(c[m].ravel())
        ws.append(rgba[:, :, 3][m].ravel())
    allc = np.concatenate(cs).astype(np.float64)
    allw = np.concatenate(ws).astype(np.float64)
    if allc.size == 0:
        return np.zeros(1, np.float32)
    lo, hi = float(allc.min()), float(allc.max())
    n = int(min(MAX_SLICES, np.ceil((hi - lo) / MIN_SLICE_PX))) + 1
    asc = np.linspace(lo, hi, n)
    if n > 2:
        step = asc[1] - asc[0]
        # strong modes: fine bins holding a noticeable share of the coverage
        nb = max(1, int(np.ceil((hi - lo) / MODE_BIN_PX)))
        hist, edges = np.histogram(allc, bins=nb, range=(lo, hi), weights=allw)
        strong = np.nonzero(hist >= max(MODE_MIN_SHARE * allw.sum(), MODE_MIN_PIXELS))[0]
        taken = np.zeros(n, bool)
        for i in strong[np.argsort(hist[strong])[::-1]]:
            sel = (allc >= edges[i]) & (allc <= edges[i + 1])
            mode = float(np.average(allc[sel], weights=allw[sel]))
            j = int(np.argmin(np.abs(asc - mode)))
            if taken[j] or abs(asc[j] - mode) > 0.5 * step:
                continue
            asc[j] = mode
            taken[j] = True
        asc = np.unique(asc)
        counts, _ = np.histogram(allc, bins=asc)  # counts[j] covers [asc[j], asc[j+1]]
        left = np.concatenate([[0], counts])
        right = np.concatenate([counts, [0]])
        asc = asc[(left + right) > 0]
    return np.ascontiguousarray(asc[::-1], dtype=np.float32)


def _highlight_gain(highlights, encoding):
    if highlights is None or highlights is False or highlights == "off":
        return 1.0
    if isinstance(highlights, str):
        if highlights != "auto":
            raise ValueError(f"highlights: expected 'auto', 'off' or a gain >= 1, got {highlights!r}")
        return AUTO_HIGHLIGHT_GAIN if encoding is not None else 1.0
    if isinstance(highlights, bool) or not isinstance(highlights, numbers.Real):
        raise TypeError(f"highlights: expected 'auto', 'off' or a number, got {type(highlights).__name__}")
    g = float(highlights)
    if not np.isfinite(g) or g < 1.0:
        raise ValueError(f"highlights: a gain must be finite and >= 1, got {highlights!r}")
    return g


def recover_highlights(linear, gain, clip=1.0):
    """Scale up pixels at the clip level, which stored less light than they received: the gain
    ramps in with the brightest channel from 90 % to 100 % of `clip` (in linear light) and is
    `gain` at the clip level, so unclipped pixels are untouched."""
    peak = linear.max(axis=2, keepdims=True)
    t = np.clip((peak / clip - 0.9) / 0.1, 0.0, 1.0)
    return (linear * (1.0 + (gain - 1.0) * t * t)).astype(np.float32)


def render(image, depth=None, *, coc=None, matte=None, lens=None, aperture=None, background=None,
           highlights="auto", num_threads=None, out=None):
    """Synthetic depth of field: blur the scene in depth, not the flat image.

    image: (H, W, 3). Float input is linear light (values above 1 are bright light, kept as is);
      uint8/uint16 input is sRGB-encoded: it is decoded to linear light, rendered, and encoded back
      to the same dtype.
    depth: (H, W) planar depth in metres (finite, > 0), with `lens` (a ThinLens); or instead
      coc=: (H, W) signed CoC diameter in pixels (negative in front of the focal plane), for
      disparity-based pipelines (see coc_from_disparity).
    matte: (H, W) subject alpha in [0, 1] from any matting or segmentation model. It decides what
      is subject: the subject layer is composited with it, so hair and fine edges blend
      fractionally, and the subject's own CoC is taken from its confident interior (so depth maps
      that blur across the silhouette do not smear the edge).
    aperture: an Aperture (default: circle).
    background: optional (H, W, 3) linear plate of what lies behind the subject (from an
      inpainting model); by default the hidden background is filled from its surroundings.
    highlights: "auto" (default) recovers clipped highlights of integer input with a gain of
      AUTO_HIGHLIGHT_GAIN at the clip level; float input is used as is. A number sets the gain
      (1 = off), "off" disables it.

    Returns (H, W, 3) float32 linear light (or the input's integer dtype, sRGB-encoded)."""
    img, enc = as_image(image, "image", channels=3, allow_gray=False)
    H, W = img.shape[:2]
    if coc is not None:
        if depth is not None:
            raise ValueError("depth: give either depth (with lens) or coc, not both")
        c = as_map(coc, "coc", (H, W))
    else:
        if depth is None:
            raise ValueError("depth: required (or pass coc=)")
        if lens is None:
            raise ValueError("lens: required with depth (a synthdof.ThinLens)")
        if not isinstance(lens, ThinLens):
            raise TypeError(f"lens: expected a synthdof.ThinLens, got {type(lens).__name__}")
        d = as_map(depth, "depth", (H, W), finite=False)
        c = lens.coc(d, W, num_threads=num_threads)
    # a blur wider than twice the frame looks the same as one that wide (and keeps the slice
    # arithmetic finite for absurd inputs)
    cap = np.float32(2 * max(H, W) + 4)
    if np.abs(c).max() > cap:
        c = np.clip(c, -cap, cap)
    a = None if matte is None else as_matte(matte, (H, W))
    ap = as_aperture(aperture)
    bg = None
    if background is not None:
        bg, _ = as_image(background, "background", channels=3, allow_gray=False)
        if bg.shape != img.shape:
            raise ValueError(f"background: shape {bg.shape} does not match the image's {img.shape}")
    gain = _highlight_gain(highlights, enc)
    nt = resolve_threads(num_threads)
    out_dtype = np.float32 if enc is None else enc
    inputs = [("image", image), ("depth", depth), ("coc", coc), ("matte", matte), ("background", background)]
    out = prepare_out(out, (H, W, 3), inputs, dtype=out_dtype)
    if gain > 1.0:
        img = recover_highlights(img, gain)
    sets = _layers(img, c, a, nt)
    centres = _slice_centres(sets)
    result = out if enc is None else np.empty((H, W, 3), np.float32)
    plate = None if bg is None else np.ascontiguousarray(bg)
    _core.render_layers(sets, centres, *ap._args(), plate, result, nt)
    if enc is not None:
        out[...] = linear_to_srgb(result, enc)
    return out
