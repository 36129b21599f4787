"""Failure-mode diagnostics for shallow depth-of-field renders (diagnose, Diagnosis). The
comparison with a reference render (compare) is in _metrics.py, fitting the lens that best
reproduces a reference (fit_lens) in _fit_lens.py, the image operations they share in
_imageops.py.

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
import numpy as np

from ._aperture import as_aperture
from ._diagnosis import DESCRIPTIONS, MODES, THRESHOLDS, Diagnosis  # noqa: F401 - MODES etc. re-exported
from ._imageops import (_box, _const_map, _distance, _fill, _gather_coarse, _local_max, _luma, _ramp, _smooth,
                        _tone)
from ._kernels import scatter
from ._lens import ThinLens
from ._validate import as_image, as_map, as_matte

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
    a, W = ctx.a, ctx.W
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


# --- the diagnosis ---------------------------------------------------------------------------

def diagnose(image, rendered, *, depth=None, matte=None, lens=None, coc=None, aperture=None):
    """Where and how badly a shallow depth-of-field render fails, mode by mode.

    Modes (names in MODES; definitions and thresholds in docs/diagnostics.md): halo,
    gaussian_look, wrong_subject, foreground_bleed, similar_depth. A mode is judged only when the
    inputs and the picture hold evidence for it (halo needs the matte and the CoC, gaussian_look
    highlights in the blur, similar_depth no render at all...); the others are listed in
    .skipped with the reason.

    Parameters
    ----------
    image : array_like
        (H, W, 3) the all-in-focus input. Float arrays are linear light (values above 1 are
        bright light), uint8/uint16 are sRGB-encoded, as everywhere in synthdof.
    rendered : array_like
        (H, W, 3) the render to judge (any method: synthdof's, a phone's, another library's).
    depth : array_like, optional
        (H, W) planar depth in metres, with lens: the CoC each pixel should get.
    matte : array_like, optional
        (H, W) subject alpha in [0, 1].
    lens : ThinLens, optional
        With depth.
    coc : array_like, optional
        Instead of depth and lens: (H, W) signed CoC diameter in pixels.
    aperture : Aperture, optional
        The shape the render should show (default: a disk), for the highlight shapes.

    Returns
    -------
    Diagnosis
        scores, flags, maps, details, skipped, report().

    Raises
    ------
    TypeError
        If an argument has the wrong type (the message names it).
    ValueError
        If a shape disagrees with the image's or depth is not > 0 everywhere.

    See Also
    --------
    compare : metrics against a reference render.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> s = synthdof.load_sample()
    >>> lens = synthdof.ThinLens(**s["lens"])
    >>> good = synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=lens)
    >>> flat = np.broadcast_to(s["image"].mean((0, 1), keepdims=True).astype(np.uint8), s["image"].shape)
    >>> d_good = synthdof.diagnose(s["image"], good, depth=s["depth"], matte=s["matte"], lens=lens)
    >>> d_flat = synthdof.diagnose(s["image"], flat, depth=s["depth"], matte=s["matte"], lens=lens)
    >>> bool(d_flat.scores["halo"] > d_good.scores["halo"])
    True
    >>> print(d_good.report().splitlines()[0])
    mode                score thresh  verdict   details
    """
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


