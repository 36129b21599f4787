"""Failure-mode diagnostics for shallow depth-of-field renders, comparison with a reference
render, and fitting the lens that best reproduces a reference.

    d = synthdof.diagnose(image, rendered, depth=depth, matte=matte, lens=lens)
    print(d.report())            # scores, flags, what each mode measures
    d.maps["halo"]               # where it happens
    m = synthdof.compare(rendered, reference, matte=matte, coc=coc)
    p = synthdof.fit_lens(image, depth, reference, matte=matte)

Everything is measured from the data: the all-in-focus input says what detail exists, the CoC
map (from depth + lens, or given) says how much of it each pixel should lose, the matte says
what the subject is. The definitions and thresholds, with the experiments that set them, are in
docs/diagnostics.md.
"""
import base64
import html
import io

import numpy as np

from ._aperture import as_aperture
from ._color import linear_to_srgb
from ._kernels import gather, scatter
from ._lens import ThinLens
from ._validate import as_image, as_map, as_matte, positive

MODES = ("halo", "gaussian_look", "wrong_subject", "foreground_bleed", "similar_depth")

# A mode is flagged when its score reaches its threshold (chosen on the ground-truth scenes and
# their faulty renders; see docs/diagnostics.md for the separation tables).
THRESHOLDS = {
    "halo": 0.4,
    "gaussian_look": 0.4,
    "wrong_subject": 0.5,
    "foreground_bleed": 0.5,
    "similar_depth": 0.5,
}

DESCRIPTIONS = {
    "halo": "edge halo at the subject silhouette: input detail or subject colour left in the blur "
            "just outside it, or the subject's edge blurred just inside it",
    "gaussian_look": "flat, shapeless blur: highlights that should become hard-edged disks of the "
                     "CoC's size keeping their light come out as dim, soft smudges",
    "wrong_subject": "the focal plane is not on the matted subject (lens or render), or the matte "
                     "and the depth disagree on what is near",
    "foreground_bleed": "content nearer than the focal plane left sharp, its blur missing over the "
                        "subject, or in-focus content outside the subject blurred",
    "similar_depth": "subject and background too close in depth (or in blur) to separate convincingly",
}

# --- pixel-level helpers (NumPy and the package's own kernels only) ---------------------------

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


# --- inputs -----------------------------------------------------------------------------------

def _inputs(image, rendered, depth, matte, lens, coc):
    img, _ = as_image(image, "image", channels=3, allow_gray=False)
    ren, _ = as_image(rendered, "rendered", channels=3, allow_gray=False)
    H, W = img.shape[:2]
    if ren.shape != img.shape:
        raise ValueError(f"rendered: shape {ren.shape} does not match the image's {img.shape}")
    z = None
    if depth is not None:
        z = as_map(depth, "depth", (H, W))
        if (z <= 0).any():
            raise ValueError("depth: must be > 0 everywhere")
    a = None if matte is None else as_matte(matte, (H, W))
    if lens is not None and not isinstance(lens, ThinLens):
        raise TypeError(f"lens: expected a synthdof.ThinLens, got {type(lens).__name__}")
    if coc is not None:
        c = as_map(coc, "coc", (H, W))
    elif z is not None and lens is not None:
        c = lens.coc(z, W)
    else:
        c = None
    return img, ren, z, a, c


# --- the measures -----------------------------------------------------------------------------

class _Ctx:
    """Shared intermediate maps for one diagnosis."""

    def __init__(self, img, ren, z, a, c, lens):
        self.img, self.ren, self.z, self.a, self.c, self.lens = img, ren, z, a, c, lens
        H, W = img.shape[:2]
        self.H, self.W = H, W
        self.tI = _tone(img)
        self.tR = _tone(ren)
        # the input's fine detail: what a 3-pixel blur removes
        self.P = _smooth(img, 1.5)
        self.tP = _tone(self.P)
        self.hard = None if a is None else a >= 0.5
        if c is not None:
            self._veil()
            self._expected_blur()

    def _veil(self):
        """Light of the non-subject content in front of the focal plane (CoC < -2 px), spread
        over its own disk: its coverage alpha and colour over everything behind it."""
        c, img = self.c, self.img
        near = c < -2.0
        if self.a is not None:
            near &= self.a < 0.5
        self.near = near
        if not near.any():
            self.veil_alpha = np.zeros(c.shape, np.float32)
            self.veil_colour = np.zeros_like(img)
            return
        src = np.concatenate([img * near[:, :, None], near[:, :, None].astype(np.float32)], 2)
        v = scatter(np.ascontiguousarray(src), np.where(near, c, 0.0).astype(np.float32))
        al = np.clip(v[:, :, 3], 0.0, 1.0)
        self.veil_alpha = al
        self.veil_colour = v[:, :, :3] / np.maximum(v[:, :, 3:], 1e-6)

    def _expected_blur(self):
        """E: what the surroundings should look like: the input continued behind the subject and
        near content (push-pull fill), averaged over each pixel's own CoC disk. An in-focus
        subject hides nothing of the blurred background next to its edge (the lens sees behind
        it), so E leaves it out. E_all: the input as it is, subject included, averaged the same
        way (what a blur blind to the subject gives)."""
        img, c = self.img, self.c
        ac = np.abs(c).astype(np.float32)
        w = ~self.near
        if self.a is not None:
            w = w & (self.a < 0.02)
        w = w.astype(np.float32)
        filled = _fill(img, w)
        cf = np.abs(_fill(c[:, :, None], w)[:, :, 0]) if w.any() else ac
        self.c_bg = np.where(w > 0, ac, cf).astype(np.float32)
        self.E = _gather_coarse(filled, self.c_bg)
        self.E_all = _gather_coarse(img, ac)
        self.tE = _tone(self.E)
        self.tEa = _tone(self.E_all)

    # -- per-pixel terms; a region's value is sum(num) / (sum(den) + floor * count) ---------
    def deficit_terms(self):
        """beta = <R - E, I - E> / <I - E, I - E>: 0 = blurred as the CoC says, 1 = left as
        sharp as the input (where blur is expected)."""
        dI = self.tI - self.tE
        return ((self.tR - self.tE) * dI).sum(2), (dI * dI).sum(2)

    def excess_terms(self):
        """gamma = <I - R, I - P> / <I - P, I - P>: 0 = input detail kept, 1 = lost as by a
        3 px blur or more (where sharpness is expected)."""
        dP = self.tI - self.tP
        return ((self.tI - self.tR) * dP).sum(2), (dP * dP).sum(2)

    def leak_terms(self):
        """lambda = <R - E, E_all - E> / <E_all - E, E_all - E>: the share of the subject's light
        spilled into its blurred surroundings (1 = as much as a blur blind to the subject)."""
        dS = self.tEa - self.tE
        return ((self.tR - self.tE) * dS).sum(2), (dS * dS).sum(2)


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


def _local_max(x, r):
    """Max over a (2r+1)^2 window (edge-padded)."""
    r = int(r)
    return x if r <= 0 else _max1(_max1(x, r, 0), r, 1)


def _highlight_terms(ctx, aperture):
    """Highlights of the input (bright spots: at least 0.9 in linear light and 3x their
    surroundings) against what the CoC predicts for them. Only highlights whose whole disk lies
    clear of the subject, of content in front (and its blur) and of the frame's border are
    judged. Returns (H_R, H_pred, zone) or None: H_pred = those highlights spread over their
    CoC disks (the aperture's shape), H_R = the render's light above the predicted render
    without them, zone = where their light should land."""
    L = _luma(ctx.img)
    H, W = L.shape
    cb = ctx.c_bg
    blocked = ctx.near | (ctx.veil_alpha > 0.02)
    if ctx.a is not None:
        blocked |= ctx.a > 0.02
    src = (L >= 0.9) & (L >= 3.0 * _box(L, 8)) & ~blocked & (cb >= 4.0)
    if not src.any():
        return None
    # the whole bright spot around each source pixel, and a pixel of margin
    spot = (L >= 0.9) & (_local_max(src.astype(np.float32), 4) > 0)
    grow = _local_max(spot.astype(np.float32), 1) > 0
    # only compact spots (under half their disk across) make disks of a clear shape: spots
    # that survive an erosion by a quarter of the CoC are left out, whole
    rho = max(1, int(round(float(np.median(cb[src])) / 4)))
    core_of_wide = ~(_local_max((~spot).astype(np.float32), rho) > 0)
    if core_of_wide.any():
        wide = _local_max(core_of_wide.astype(np.float32), 2 * rho + 4) > 0
        src &= ~wide
        if not src.any():
            return None
        grow &= ~wide
    # clear of what blocks: nothing blocked within the largest disk's radius (+ margin); near
    # content hides part of the lens from light behind it well beyond its visible veil, so its
    # own blur radius is added
    reach = float(cb[src].max()) + 6.0
    if ctx.near.any():
        reach += float(np.abs(ctx.c[ctx.near]).max())
    near_block = scatter(blocked.astype(np.float32), _const_map((H, W), reach)) > 1e-6
    yy, xx = np.mgrid[0:H, 0:W]
    to_border = np.minimum(np.minimum(yy, H - 1 - yy), np.minimum(xx, W - 1 - xx))
    clear = grow & ~near_block & (to_border > cb / 2 + 3)
    if not clear.any():
        return None
    w = (~blocked).astype(np.float32)
    base = _luma(_fill(ctx.img, w))
    nohl = _fill(base[:, :, None], w * (~clear))[:, :, 0]
    plain = _fill(base[:, :, None], w * (~grow))[:, :, 0]   # without any highlight
    pred = scatter(np.ascontiguousarray(np.stack([base, nohl, plain], 2)), cb, aperture=aperture)
    h_pred = np.maximum(pred[:, :, 0] - pred[:, :, 1], 0.0)
    h_r = _luma(ctx.ren) - pred[:, :, 1]
    # where the disks stand out: at least half as bright again as the scene behind them
    zone = (h_pred > 0.02 * h_pred.max()) & (h_pred > 0.5 * np.maximum(pred[:, :, 2], 0.0))
    return h_r, h_pred, zone


# --- the failure modes ------------------------------------------------------------------------
#
# Each returns (score in [0, 1], map (H, W) in [0, 1], details) or (None, reason) when the inputs
# or the picture hold no evidence for it. A region's value is a ratio of summed terms over the
# pixels that hold evidence (so pixels with more detail count more): VISIBLE is the detail a pixel
# needs (squared differences in the tone encoding, summed over channels: about 2 % contrast),
# FAINT the lower bar used for the subject's own texture, which is judged whatever its contrast.

VISIBLE = 1e-3
FAINT = 1e-5


def _region(num, den, mask, floor, min_pixels=30):
    """sum(num) / sum(den) over the pixels of mask whose den exceeds floor (the ones that hold
    evidence), and how many they are; NaN when fewer than min_pixels do."""
    sel = mask & (den > floor)
    n = int(sel.sum())
    if n < min_pixels:
        return float("nan"), n
    return float(num[sel].sum(dtype=np.float64) / den[sel].sum(dtype=np.float64)), n


def _pixel_map(num, den, mask, floor, r=1):
    """The region ratio of _region, taken over a (2r+1)^2 window around each pixel of mask."""
    mf = mask.astype(np.float32)
    n = _box(np.where(mask, num, 0.0).astype(np.float32), r)
    d = _box(np.where(mask, den, 0.0).astype(np.float32), r) + floor * _box(mf, r)
    return np.where(mask, np.clip(n / np.maximum(d, 1e-12), 0.0, 1.0), 0.0).astype(np.float32)


def _halo(ctx):
    if ctx.a is None or ctx.c is None:
        return None, "needs matte and depth + lens (or coc)"
    a, W = ctx.a, ctx.W
    rim_w = max(2, int(round(W / 200)))
    blurred = ~ctx.near & (ctx.veil_alpha < 0.05) & (ctx.c_bg >= 3.0)
    out = (a <= 0.002) & blurred
    if not out.any():
        return None, "no blurred surroundings next to the subject"
    dout = _distance(a > 0.002, int(max(rim_w, np.ceil(ctx.c_bg[out].max() / 2))) + 1)
    rim = out & (dout <= rim_w)
    spill = out & (dout <= np.maximum(rim_w, ctx.c_bg / 2))
    din = _distance(a < 0.98, 2 * rim_w + 1)
    inside = (a >= 0.98) & (din <= 2 * rim_w) & (np.abs(ctx.c) < 1.5) & (ctx.veil_alpha < 0.05)
    bn, bd = ctx.deficit_terms()
    ln, ld = ctx.leak_terms()
    gn, gd = ctx.excess_terms()
    beta, _ = _region(bn, bd, rim, VISIBLE)
    lam, _ = _region(ln, ld, spill, VISIBLE)
    gam, _ = _region(gn, gd, inside, VISIBLE)
    terms = {"stranded_detail": beta, "subject_spill": lam, "edge_blurred": gam}
    score = max([0.0] + [v for v in terms.values() if np.isfinite(v)])
    m = np.maximum.reduce([_pixel_map(bn, bd, rim, VISIBLE), _pixel_map(ln, ld, spill, VISIBLE),
                           _pixel_map(gn, gd, inside, VISIBLE)])
    return min(1.0, score), m, terms


def _gaussian_look(ctx, aperture):
    if ctx.c is None:
        return None, "needs depth + lens (or coc)"
    t = _highlight_terms(ctx, aperture)
    if t is None:
        return None, ("no highlights in the blurred parts of the image, clear of the subject, near "
                      "content and the border, to judge the blur's shape")
    h_r, h_pred, zone = t
    if not zone.any():
        return None, "highlights too small to judge"
    r = 0.5 * float(np.median(ctx.c_bg[zone]))
    lm = _local_max(h_pred, max(2, int(round(r / 3))))
    plateau = zone & (h_pred >= 0.75 * lm) & (h_pred > 0.02 * h_pred.max())
    if plateau.sum() < 8:
        return None, "highlights too small or too hidden to judge"
    dist = _distance(~plateau, int(r) + 2)
    core = plateau & (dist >= 0.5 * r)
    outer = plateau & (dist <= max(1.0, 0.3 * r))
    if core.sum() < 4 or outer.sum() < 4:
        return None, "highlights too small or too hidden to judge"
    q_core = float(h_r[core].sum() / h_pred[core].sum())
    q_outer = float(h_r[outer].sum() / h_pred[outer].sum())
    q_all = float(h_r[zone].sum() / h_pred[zone].sum())
    # light missing from the disks' outer part, or piled up in their centres instead (log2)
    raw = max(-np.log2(max(q_outer, 1e-3)), np.log2(max(q_core, 1e-3) / max(q_outer, 1e-3)))
    # the map: how far each disk pixel's light is from the prediction, in log2 (either way)
    ratio = np.maximum(h_r, 1e-3 * h_pred) / np.maximum(h_pred, 1e-9)
    m = np.where(plateau, np.clip(np.abs(np.log2(np.maximum(ratio, 1e-3))), 0.0, 1.0), 0.0)
    terms = {"core_level": q_core, "rim_level": q_outer, "light_kept": q_all,
             "highlight_pixels": int(plateau.sum())}
    return float(np.clip(raw, 0.0, 1.0)), _box(m.astype(np.float32), 1), terms


def _wrong_subject(ctx):
    if ctx.a is None:
        return None, "needs matte"
    a = ctx.a
    subj = a >= 0.98
    if subj.sum() < 16:
        subj = a >= 0.5
    if subj.sum() < 16:
        return None, "matte holds almost no subject"
    terms = {}
    maps = []
    # the lens: the focal plane should lie on the subject
    if ctx.c is not None:
        cs = float(np.median(ctx.c[subj]))
        terms["subject_coc_px"] = cs
        terms["lens_off_subject"] = _ramp(abs(cs), 1.5, 4.5)
        maps.append(np.where(subj, _ramp(np.abs(ctx.c), 1.5, 4.5), 0.0).astype(np.float32))
    # the render: the subject should keep the input's detail (where nothing veils it)
    din = _distance(~subj, 2)
    judge = subj & (din >= 2)
    if ctx.c is not None:
        judge &= ctx.veil_alpha < 0.05
    gn, gd = ctx.excess_terms()
    g, _ = _region(gn, gd, judge, FAINT)
    if np.isfinite(g):
        terms["subject_blurred"] = g
        terms["render_off_subject"] = _ramp(g, 0.15, 0.5)
        maps.append(_pixel_map(gn, gd, judge, FAINT, r=2))
    # the depth: most of the rest of the picture should not lie in front of the subject
    if ctx.z is not None or ctx.c is not None:
        rest = a < 0.02
        if rest.any():
            if ctx.z is not None:
                inv = 1.0 / ctx.z
                nearer = inv > 1.05 * float(np.median(inv[subj]))
            else:
                nearer = ctx.c < float(np.median(ctx.c[subj])) - 1.0
            frac = float(nearer[rest].mean())
            terms["share_in_front"] = frac
            terms["depth_disagrees"] = _ramp(frac, 0.5, 0.8)
            maps.append(np.where(rest & nearer, terms["depth_disagrees"], 0.0).astype(np.float32))
    parts = [terms[k] for k in ("lens_off_subject", "render_off_subject", "depth_disagrees") if k in terms]
    if not parts:
        return None, "needs depth + lens (or coc), or a subject with detail"
    return max(parts), np.maximum.reduce(maps), terms


def _foreground_bleed(ctx):
    if ctx.c is None:
        return None, "needs depth + lens (or coc)"
    c, a = ctx.c, ctx.a
    terms, maps = {}, []
    sharp = (np.abs(c) < 1.5) & ~ctx.near
    # 1. the blur of near content should veil what lies behind it
    al = ctx.veil_alpha[:, :, None]
    expect = _tone((1.0 - al) * ctx.img + al * ctx.veil_colour) - ctx.tI
    got = ctx.tR - ctx.tI
    vn, vd = (got * expect).sum(2), (expect * expect).sum(2)
    veiled = sharp & (ctx.veil_alpha >= 0.1)
    rho, _ = _region(vn, vd, veiled, VISIBLE)
    if np.isfinite(rho):
        terms["veil_kept"] = rho
        terms["veil_missing"] = _ramp(rho, 0.7, 0.3)
        maps.append(np.where(veiled, np.clip(1.0 - vn / np.maximum(vd, VISIBLE), 0.0, 1.0), 0.0))
    # 2. near content itself should be blurred by its CoC
    near = ctx.near & (c <= -3.0)
    if near.any():
        # expected there: the near content's own spread light over what lies behind it, blurred
        # (clipped at white: a light next to near content shows in the truth through the gaps
        # of the near content's blur, which this two-layer expectation does not model)
        tX = np.minimum(_tone(al * ctx.veil_colour + (1.0 - al) * ctx.E), 1.0)
        dI = np.minimum(ctx.tI, 1.0) - tX
        nn, nd = ((np.minimum(ctx.tR, 1.0) - tX) * dI).sum(2), (dI * dI).sum(2)
        b, _ = _region(nn, nd, near, VISIBLE)
        if np.isfinite(b):
            terms["near_left_sharp"] = b
            terms["near_sharp"] = _ramp(b, 0.2, 0.5)
            maps.append(_pixel_map(nn, nd, near, VISIBLE))
    # 3. in-focus content outside the subject should stay sharp (under the veil of nearer
    # content where that spreads over it: a continuous surface in front of the focal plane)
    focus = sharp & (ctx.veil_alpha < 0.5)
    if a is not None:
        focus &= _distance(a > 0.02, 3) > 2
    dP = ctx.tI - ctx.tP
    gn, gd = ((expect + ctx.tI - ctx.tR) * dP).sum(2), (dP * dP).sum(2)
    g, _ = _region(gn, gd, focus, VISIBLE)
    if np.isfinite(g):
        terms["focus_blurred"] = g
        terms["in_focus_blurred"] = _ramp(g, 0.2, 0.5)
        maps.append(_pixel_map(gn, gd, focus, VISIBLE))
    parts = [terms[k] for k in ("veil_missing", "near_sharp", "in_focus_blurred") if k in terms]
    if not parts:
        return None, "nothing in front of or at the focal plane outside the subject"
    return max(parts), np.maximum.reduce([m.astype(np.float32) for m in maps]), terms


# similar_depth: a pixel of the subject's surroundings counts as poorly separated when it lies
# less than GAP_LO (fully) to GAP_HI (not at all) behind the subject in relative terms
# (1 - z_subject / z), or when its CoC differs from the subject's by less than BLUR_LO to BLUR_HI
# of the image width.
GAP_LO, GAP_HI = 0.2, 0.4
BLUR_LO, BLUR_HI = 0.005, 0.015


def _similar_depth(ctx):
    if ctx.a is None or (ctx.c is None and ctx.z is None):
        return None, "needs matte and depth + lens (or coc)"
    a, H, W = ctx.a, ctx.H, ctx.W
    subj = a >= 0.5
    if subj.sum() < 16:
        return None, "matte holds almost no subject"
    reach = max(8, int(round(0.04 * W)))
    around = (a < 0.02) & (_distance(subj, reach) <= reach)
    terms, parts = {}, []
    behind = around.copy()
    if ctx.z is not None:
        zs = 1.0 / float(np.median(1.0 / ctx.z[subj]))
        gap = 1.0 - zs / ctx.z
        behind &= gap > 0.0
        if behind.any():
            u_gap = _ramp(gap, GAP_HI, GAP_LO)
            terms["median_gap"] = float(np.median(gap[behind]))
            parts.append(u_gap)
    if ctx.c is not None:
        cs = float(np.median(ctx.c[subj]))
        dc = (ctx.c - cs) / W
        if ctx.z is None:
            behind &= dc > 0.0
        if behind.any():
            terms["median_blur_step"] = float(np.median(dc[behind]))
            parts.append(_ramp(dc, BLUR_HI, BLUR_LO))
    if not behind.any() or not parts:
        return None, "nothing behind the subject around it"
    u = np.maximum.reduce(parts)
    score = float(u[behind].mean())
    terms["share_poorly_separated"] = score
    return score, np.where(behind, u, 0.0).astype(np.float32), terms


# --- the public object and functions ----------------------------------------------------------

class Diagnosis:
    """What diagnose() found.

    scores: {mode: float in [0, 1]} for every mode the inputs allow judging (0 = no sign of the
      failure, 1 = severe); flags: the set of modes whose score reached THRESHOLDS[mode];
      maps: {mode: (H, W) float32 in [0, 1]} locating each judged mode; details: {mode: dict}
      the sub-measures behind each score; skipped: {mode: reason} for modes not judged.
    report() gives a plain-text summary; in Jupyter the object shows as a table with the maps
    drawn over the image (thumbnails need matplotlib)."""

    def __init__(self, scores, maps, details, skipped, image):
        self.scores = scores
        self.maps = maps
        self.details = details
        self.skipped = skipped
        self.thresholds = dict(THRESHOLDS)
        self.flags = {k for k, v in scores.items() if v >= THRESHOLDS[k]}
        self._image = image

    def __repr__(self):
        s = ", ".join(f"{k}={v:.2f}" for k, v in self.scores.items())
        return f"Diagnosis({s}; flags={sorted(self.flags)})"

    def report(self):
        """Plain-text table: each mode's score, threshold, verdict and sub-measures (or why it
        was not judged), then what each flagged mode means."""
        lines = [f"{'mode':18s} {'score':>6s} {'thresh':>6s}  verdict   details"]
        for k in MODES:
            if k in self.scores:
                det = ", ".join(f"{n}={_fmt(v)}" for n, v in self.details.get(k, {}).items())
                verdict = "FLAGGED" if k in self.flags else "ok"
                lines.append(f"{k:18s} {self.scores[k]:6.2f} {THRESHOLDS[k]:6.2f}  {verdict:8s}  {det}")
            else:
                lines.append(f"{k:18s} {'-':>6s} {THRESHOLDS[k]:6.2f}  {'n/a':8s}  "
                             f"not judged: {self.skipped.get(k, '')}")
        for k in MODES:
            if k in self.flags:
                lines.append(f"{k}: {DESCRIPTIONS[k]}")
        return "\n".join(lines)

    def _repr_html_(self):
        rows = []
        for k in MODES:
            thumb = ""
            if k in self.maps:
                png = _overlay_png(self._image, self.maps[k])
                if png is not None:
                    thumb = f'<img src="data:image/png;base64,{png}" style="max-width:240px">'
            if k in self.scores:
                det = ", ".join(f"{n}={_fmt(v)}" for n, v in self.details.get(k, {}).items())
                verdict = "<b>FLAGGED</b>" if k in self.flags else "ok"
                score = f"{self.scores[k]:.2f}"
            else:
                det, verdict, score = self.skipped.get(k, ""), "n/a", "&ndash;"
            rows.append(f"<tr><td><code>{k}</code></td><td>{score}</td><td>{THRESHOLDS[k]:.2f}</td>"
                        f"<td>{verdict}</td><td>{html.escape(det)}"
                        f"</td><td>{thumb}</td></tr>")
        head = ("<tr><th>mode</th><th>score</th><th>threshold</th><th>verdict</th><th>details</th>"
                "<th>where</th></tr>")
        return f"<table>{head}{''.join(rows)}</table>"


def _fmt(v):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.3g}"


def _overlay_png(image, m, max_side=240):
    """The map in red over a dimmed copy of the image, as base64 PNG (None without matplotlib)."""
    try:
        import matplotlib.image as mpimg
    except ImportError:
        return None
    H, W = m.shape
    step = max(1, int(np.ceil(max(H, W) / max_side)))
    base = linear_to_srgb(image[::step, ::step]) * 0.6
    mm = np.clip(m[::step, ::step], 0.0, 1.0)[:, :, None]
    red = np.array([1.0, 0.1, 0.1], np.float32)
    rgb = np.clip(base * (1.0 - mm) + red * mm, 0.0, 1.0)
    buf = io.BytesIO()
    mpimg.imsave(buf, rgb, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def diagnose(image, rendered, *, depth=None, matte=None, lens=None, coc=None, aperture=None):
    """Where and how badly a shallow depth-of-field render fails, mode by mode.

    image: (H, W, 3) the all-in-focus input; rendered: (H, W, 3) the render to judge (any method:
      synthdof's, a phone's, another library's). Float arrays are linear light (values above 1
      are bright light), uint8/uint16 are sRGB-encoded, as everywhere in synthdof.
    depth: (H, W) planar depth in metres, with lens (a ThinLens): the CoC each pixel should get;
      or coc=: (H, W) signed CoC diameter in pixels directly. matte: (H, W) subject alpha.
    aperture: the Aperture the render should show (default: circle), for the highlight shapes.

    Modes (names in MODES; definitions and thresholds in docs/diagnostics.md):
      halo, gaussian_look, wrong_subject, foreground_bleed, similar_depth.
    A mode is judged only when the inputs and the picture hold evidence for it (halo needs the
    matte and the CoC, gaussian_look highlights in the blur, similar_depth no render at all...);
    the others are listed in .skipped with the reason.

    Returns a Diagnosis (scores, flags, maps, details, skipped, report())."""
    img, ren, z, a, c = _inputs(image, rendered, depth, matte, lens, coc)
    ap = as_aperture(aperture)
    ctx = _Ctx(img, ren, z, a, c, lens)
    found = {
        "halo": _halo(ctx),
        "gaussian_look": _gaussian_look(ctx, ap),
        "wrong_subject": _wrong_subject(ctx),
        "foreground_bleed": _foreground_bleed(ctx),
        "similar_depth": _similar_depth(ctx),
    }
    scores, maps, details, skipped = {}, {}, {}, {}
    for k in MODES:
        r = found[k]
        if r[0] is None:
            skipped[k] = r[1]
            continue
        scores[k] = float(np.clip(r[0], 0.0, 1.0))
        maps[k] = np.clip(r[1], 0.0, 1.0).astype(np.float32)
        details[k] = r[2]
    return Diagnosis(scores, maps, details, skipped, img)


# --- comparison with a reference render ---------------------------------------------------------

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


def ssim(a, b, *, sigma=1.5):
    """Mean structural similarity of two images in [0, 1] ((H, W) or (H, W, C), channels
    averaged): Wang et al. 2004 with a Gaussian window of sigma 1.5 truncated at 3.5 sigma,
    K1 = 0.01, K2 = 0.03, population covariances, a window's radius left out at the borders.
    NumPy only; matches skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)."""
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
    """The two sides of the subject's silhouette where halos and bleed live, as boolean maps
    (inside, outside). Outside: non-subject pixels (matte < 0.5) within |coc|/2 + margin pixels
    of the subject, so the band is as wide as the blur of the background there. Inside: subject
    pixels within r + margin of the outside, r the mean |coc|/2 of the background nearby (how
    far the background's blur can reach into a subject it should not cross). Without coc the
    width is margin + 1 % of the image width."""
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

    rendered, reference: (H, W, 3), float = linear light, uint8/uint16 = sRGB.
    matte: (H, W) subject alpha, for the silhouette band; coc: (H, W) CoC diameter in pixels,
      which sets the band's width (see silhouette_band).

    Returns a dict:
      psnr, ssim: on sRGB-encoded values clipped to [0, 1] (SSIM from scikit-image when it is
        installed, else the NumPy ssim() with the same settings; ssim_impl says which; NaN for
        images under 11 pixels a side);
      flux_ratio: total linear light, rendered / reference (energy kept: 1.0);
      highlight_peak_ratio: mean linear level (channel mean) over the reference's brightest
        0.1 % pixels, rendered / reference (highlights kept as bright disks: 1.0; a Gaussian
        gives ~0.4);
    with a matte also:
      band_psnr: PSNR over both sides of the silhouette band;
      inside_psnr / outside_psnr: each side alone;
      inside_error / outside_error: mean signed error of the sRGB luminance on each side
        (inside: the subject's edge, where background bleeds in; outside: the surroundings,
        where halos sit; > 0 = rendered brighter than the reference)."""
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


# --- fitting the lens to a reference -------------------------------------------------------------

def _downscale(x, s):
    """Mean over s x s blocks (the frame cropped to a multiple of s)."""
    if s == 1:
        return np.ascontiguousarray(x, np.float32)
    H, W = x.shape[:2]
    x = x[:H // s * s, :W // s * s]
    return np.ascontiguousarray(x.reshape(H // s, s, W // s, s, *x.shape[2:]).mean((1, 3)), np.float32)


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
    """The focus distance and f-number with which synthdof.render best reproduces `reference`
    (a real-lens or path-traced shot of the same view as the all-in-focus `image`), for data
    such as EBB! that come without focus information.

    image, reference: (H, W, 3) (float = linear light, uint8/uint16 = sRGB); depth: (H, W)
    planar depth in metres (or any quantity whose inverse is proportional to disparity, with
    `focus_distance` then in the same unit); matte: optional subject alpha, passed to render.

    What is fitted and what is assumed: blur is c = K (d_f - 1/z) pixels (the fixed-field-of-view
    thin lens, ThinLens(model="fixed_fov")), so only the focus disparity d_f and the blur scale
    K can be told from pictures. The f-number is K expressed for the lens given by
    focal_length_mm and sensor_width_mm (defaults: an 85 mm lens on a 36 mm-wide sensor):
    N = f^2 W / (K s). Give the real lens's values to read its true f-number; K and
    focus_disparity do not depend on them. The aperture shape is taken as known (default circle).

    Search, coarse to fine (about 20 renders in all, most of them small):
      1. a per-pixel model on a copy ~192 px wide: the reference against the image blurred by a
         uniform CoC at ~30 levels, summed per disparity bin away from depth edges, scored for
         every (d_f, K) on a dense grid; the three best focus candidates are kept;
      2. the candidates compared with synthdof.render on that copy, the best refined there
         (golden-section search on K, then on d_f);
      3. the focus from fine detail at full size: the same uniform-blur model on the images'
         fine detail, for CoCs up to 8 px (what tells a sharp pixel from a slightly soft one),
         searched along d_f with K fixed;
      4. K again with synthdof.render on a copy ~384 px wide, the focus fixed.
    Error measure: mean squared difference after a compressive tone curve (bright highlights
    count without swamping the rest).

    num_threads: for the renders (default: one thread for the downscaled copies under 200,000
    pixels, where threads cost more than they gain; all cores otherwise).

    Returns a dict: focus_distance (metres), f_number, K (pixels per 1/metre at the full width),
    focus_disparity (1/metre), error (mean squared difference at step 4), lens (a ThinLens with
    the fitted values), and the focal_length_mm and sensor_width_mm used."""
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
