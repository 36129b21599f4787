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
import copy

import numpy as np

from ._aperture import as_aperture
from ._diagnosis import DESCRIPTIONS, MODES, THRESHOLDS, Diagnosis  # noqa: F401 - MODES etc. re-exported
from ._imageops import (_box, _const_map, _distance, _fill, _gather_coarse, _gauss, _local_max, _luma, _ramp,
                        _smooth, _step, _tone)
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
        self.cache = {}   # maps that depend on the inputs only, shared by with_render copies
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

    def with_render(self, ren):
        """The same inputs (and their intermediate maps) with another render to judge."""
        other = copy.copy(self)
        other.ren, other.tR = ren, _tone(ren)
        return other

    def _veil(self):
        """Light of the non-subject content in front of the focal plane (CoC < -2 px), spread
        over its own disk: its coverage alpha and colour over everything behind it."""
        c, img = self.c, self.img
        near = c < -2.0
        if self.a is not None:
            near &= self.a < 0.5
            # the subject's own fractional edge (its hair, its rim) carries the subject's depth
            # and belongs to its layer, however near the subject is; a partly covered pixel is
            # near content only when it lies clearly in front of the subject next to it
            part = near & (self.a >= 0.02)
            solid = self.a >= 0.98
            if part.any() and solid.any():
                c_subject = _fill(c[:, :, None], solid.astype(np.float32))[:, :, 0]
                near &= ~part | (c < c_subject - 2.0)
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
        it), so E leaves it out of the background; the subject is laid back over it, spread by
        its own CoC (an in-focus subject stays as it is, one out of focus blurs over its
        surroundings). E_all: the input as it is, subject included, averaged over each pixel's
        own CoC disk (what a blur blind to the subject gives)."""
        img, c = self.img, self.c
        ac = np.abs(c).astype(np.float32)
        w = ~self.near
        if self.a is not None:
            w = w & (self.a < 0.02)
        w = w.astype(np.float32)
        # what lies hidden is continued from its surroundings clipped at white: small bright
        # lights (10-100x white) would otherwise dominate the averages and light the hidden
        # background up
        wm = w[:, :, None]
        filled = (wm * img + (1.0 - wm) * _fill(np.minimum(img, 1.0), w)).astype(np.float32)
        cf = np.abs(_fill(c[:, :, None], w)[:, :, 0]) if w.any() else ac
        self.c_bg = np.where(w > 0, ac, cf).astype(np.float32)
        self.E = _gather_coarse(filled, self.c_bg)
        if self.a is not None and (self.a > 0.002).any():
            # the subject over it, spread by its own CoC: a subject out of focus blurs over its
            # surroundings by its own blur, which is no halo
            sa = np.where(self.a > 0.002, self.a, 0.0).astype(np.float32)
            sub_img = img
            if self.near.any():
                # the subject goes on behind near content that cuts its matte (a railing, a
                # branch): the lens sees it past their blur, so its layer is continued there
                seen = (~self.near).astype(np.float32)
                hidden_a = np.clip(_fill(self.a[:, :, None], seen)[:, :, 0], 0.0, 1.0)
                sa = np.where(self.near & (hidden_a > 0.002), hidden_a, sa).astype(np.float32)
                sub_img = np.where(self.near[:, :, None], _fill(img, seen * (self.a >= 0.98)), img)
            # (the depth is not anti-aliased: the subject's fractional edge pixels take the CoC
            # of the solid subject nearby, not the background's)
            solid = ((self.a >= 0.98) & ~self.near).astype(np.float32)
            cs = np.where(solid > 0, c, _fill(c[:, :, None], solid)[:, :, 0]) if solid.any() else c
            lay = scatter(np.ascontiguousarray(np.concatenate([sub_img * sa[:, :, None], sa[:, :, None]], 2)),
                          np.where(sa > 0, cs, 0.0).astype(np.float32))
            cover = np.clip(lay[:, :, 3:], 0.0, 1.0)
            # where the spread parts of the subject overlap (a held object before the body) their
            # light adds to more than full coverage: it is averaged instead
            self.E = ((1.0 - cover) * self.E + lay[:, :, :3] / np.maximum(lay[:, :, 3:], 1.0)).astype(np.float32)
        self.E_all = _gather_coarse(img, ac)
        self.tE = _tone(self.E)
        self.tEa = _tone(self.E_all)

    # -- per-pixel terms; a region's value is sum(num) / (sum(den) + floor * count) ---------
    # The blur measures clip the tone encoding at white: the disks of small bright lights are
    # what the highlight measure judges; in these, a light's disk a pixel off (or its sampling
    # noise) would outweigh the texture and edges they are about.
    def deficit_terms(self):
        """beta = <R - E, I - E> / <I - E, I - E>: 0 = blurred as the CoC says, 1 = left as
        sharp as the input (where blur is expected)."""
        tE = np.minimum(self.tE, 1.0)
        dI = np.minimum(self.tI, 1.0) - tE
        return ((np.minimum(self.tR, 1.0) - tE) * dI).sum(2), (dI * dI).sum(2)

    def excess_terms(self):
        """gamma = <I - R, I - P> / <I - P, I - P>: 0 = input detail kept, 1 = lost as by a
        3 px blur or more (where sharpness is expected)."""
        dP = self.tI - self.tP
        return ((self.tI - self.tR) * dP).sum(2), (dP * dP).sum(2)

    def leak_terms(self):
        """lambda = <R - E, E_all - E> / <E_all - E, E_all - E>: the share of the subject's light
        spilled into its blurred surroundings (1 = as much as a blur blind to the subject)."""
        tE = np.minimum(self.tE, 1.0)
        dS = np.minimum(self.tEa, 1.0) - tE
        return ((np.minimum(self.tR, 1.0) - tE) * dS).sum(2), (dS * dS).sum(2)


def _cached(ctx, predict, aperture):
    """predict(ctx, aperture), computed once per inputs (it does not look at the render)."""
    key = (predict.__name__, repr(aperture))
    if key not in ctx.cache:
        ctx.cache[key] = predict(ctx, aperture)
    return ctx.cache[key]


def _highlight_terms(ctx, aperture):
    """(H_R, H_pred, zone) or None; see _highlight_prediction."""
    p = _cached(ctx, _highlight_prediction, aperture)
    if p is None:
        return None
    without, h_pred, zone = p
    return _luma(ctx.ren) - without, h_pred, zone


def _lights(L):
    """Small bright lights in luminance L: at least 0.9 in linear light and 3x their 17x17
    surroundings."""
    return (L >= 0.9) & (L >= 3.0 * _box(L, 8))


def _highlight_prediction(ctx, aperture):
    """Highlights of the input (bright spots: at least 0.9 in linear light and 3x their
    surroundings) against what the CoC predicts for them. Only highlights whose whole disk lies
    clear of the subject, of content in front (and its blur) and of the frame's border are
    judged. Returns (without, H_pred, zone) or None: H_pred = those highlights spread over their
    CoC disks (the aperture's shape), without = the predicted render without them (the render's
    light above it is H_R), zone = where their light should land."""
    L = _luma(ctx.img)
    H, W = L.shape
    cb = ctx.c_bg
    blocked = ctx.near | (ctx.veil_alpha > 0.02)
    if ctx.a is not None:
        blocked |= ctx.a > 0.02
    src = _lights(L) & ~blocked & (cb >= 4.0)
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
    # where the disks stand out: at least half as bright again as the scene behind them
    zone = (h_pred > 0.02 * h_pred.max()) & (h_pred > 0.5 * np.maximum(pred[:, :, 2], 0.0))
    return pred[:, :, 1], h_pred, zone


def _edge_terms(ctx, aperture):
    """Per-pixel terms of the edge measure and its zone, or None; see _edge_prediction."""
    p = _cached(ctx, _edge_prediction, aperture)
    if p is None:
        return None
    tD, dG, zone = p
    return (_tone(_luma(ctx.ren)) - tD) * dG, dG * dG, zone


def _edge_prediction(ctx, aperture):
    """The blurred background's shape away from highlights: step edges and texture of the
    input, in parts blurred by at least 3 px and clear of the subject, of near content (and its
    veil), of depth steps and of the frame's border by the local blur radius + 2 px. D: the input (the subject
    and near content removed, continued behind them) spread over each pixel's CoC in the
    aperture's shape; G: the same blurred by a Gaussian of the same spread (sigma = c/4, the
    disk's own second moment). A disk blurs a step into a ramp of its diameter; a Gaussian into
    a steeper centre with long tails. Per-pixel terms of beta = <R - D, G - D> / <G - D, G - D>
    in the tone encoding of luminance (0 = the aperture's blur, 1 = a Gaussian's), and the zone;
    or None."""
    cb = ctx.c_bg
    blocked = ctx.near | (ctx.veil_alpha > 0.02)
    if ctx.a is not None:
        blocked |= ctx.a > 0.02
    # a depth step in the surroundings (a bar before the wall) hides what lies behind its nearer
    # side, which the lens sees past: beside it neither blur of the input is what the lens shows
    # (a thin bar in focus across a smooth wall read as a Gaussian's blur). A small bright light
    # hides next to nothing, and its disk is what the blur's shape shows best: its edge is kept
    light = _lights(_luma(ctx.img))
    step = (_step(cb) > EDGE_DEPTH_STEP) & ~(_local_max(light.astype(np.float32), 2) > 0)
    H, W = cb.shape
    zone = cb >= EDGE_MIN_COC
    if not zone.any():
        return None
    reach = float(cb[zone].max()) / 2 + 2
    yy, xx = np.mgrid[0:H, 0:W]
    to_border = np.minimum(np.minimum(yy, H - 1 - yy), np.minimum(xx, W - 1 - xx))
    zone &= (_distance(blocked | step, int(reach) + 1) > cb / 2 + 2) & (to_border > cb / 2 + 2)
    if zone.sum() < 30:
        return None
    w = (~blocked).astype(np.float32)
    base = _luma(_fill(ctx.img, w))
    D = scatter(np.ascontiguousarray(base[:, :, None]), cb, aperture=aperture)[:, :, 0]
    # the Gaussian with a spread that varies with the pixel's CoC: levels 20 % apart, blended
    # in log sigma
    sig = np.maximum(cb / 4.0, 0.5)
    lo, hi = float(sig[zone].min()), float(sig[zone].max())
    n = max(1, int(np.ceil(np.log(hi / lo) / np.log(1.2))))
    levels = lo * (hi / lo) ** (np.arange(n + 1) / max(n, 1))
    blurred = np.stack([_gauss(base, float(sl)) for sl in levels], 0).astype(np.float32)
    t = np.clip(np.log(np.clip(sig, lo, hi) / lo) / np.log(max(hi / lo, 1.0000001)) * n, 0, n)
    k0 = np.minimum(t.astype(np.int64), max(n - 1, 0))
    f = (t - k0).astype(np.float32) if n > 0 else np.zeros_like(t, np.float32)
    k1 = np.minimum(k0 + 1, n)
    G = np.take_along_axis(blurred, k0[None], 0)[0] * (1 - f) + np.take_along_axis(blurred, k1[None], 0)[0] * f
    tD = _tone(D)
    return tD, _tone(G) - tD, zone


# --- the failure modes ------------------------------------------------------------------------
#
# Each returns (score in [0, 1], map (H, W) in [0, 1], details) or (None, reason) when the inputs
# or the picture hold no evidence for it. A region's value is a ratio of summed terms over the
# pixels that hold evidence (so pixels with more detail count more): VISIBLE is the detail a pixel
# needs (squared differences in the tone encoding, summed over channels: about 2 % contrast),
# FAINT the lower bar used for the subject's own texture, which is judged whatever its contrast.

VISIBLE = 1e-3
FAINT = 1e-5
# the edge measure: a Gaussian's blur differs from a disk's by a few per cent of an edge's
# contrast, so its pixels count from the faint level, and it needs many of them
EDGE_VISIBLE = FAINT
EDGE_PIXELS = 200
EDGE_MIN_COC = 3.0
# ... away from depth steps of more than this between neighbouring pixels (px of CoC)
EDGE_DEPTH_STEP = 1.0


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


def _judge_region(terms, maps, ratio_name, score_name, num, den, mask, floor, *, low=0.2, r=1):
    """Where mask holds evidence (_region), record the ratio as terms[ratio_name], its score
    ramped from low to 0.5 as terms[score_name], and its per-pixel map in maps."""
    ratio, _ = _region(num, den, mask, floor)
    if np.isfinite(ratio):
        terms[ratio_name] = ratio
        terms[score_name] = _ramp(ratio, low, 0.5)
        maps.append(_pixel_map(num, den, mask, floor, r=r))


def _halo(ctx):
    if ctx.a is None or ctx.c is None:
        return None, "needs matte and depth + lens (or coc)"
    a, W = ctx.a, ctx.W
    rim_w = max(2, int(round(W / 200)))
    blurred = ~ctx.near & (ctx.veil_alpha < 0.05) & (ctx.c_bg >= 3.0)
    out = (a <= 0.002) & blurred
    if not out.any():
        # a sharp background behind a subject out of focus: a depth map that blends the two
        # across the silhouette still renders the subject's edge with the wrong blur
        blend, band = _depth_edge_blend(ctx, rim_w)
        if not np.isfinite(blend):
            return None, "no blurred surroundings next to the subject, and no depth step at its edge"
        return min(1.0, _ramp(blend, *BLEND_RAMP)), band, {"depth_edge_blend": blend}
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
    blend, band = _depth_edge_blend(ctx, rim_w)
    # a subject's edge rendered with the background's blur (a matte too small) moves its light
    # across the silhouette: it is lost inside (edge_blurred) and lands outside (subject_spill).
    # Each alone has other causes (a subject slightly out of focus spills, fine texture softened
    # by a CoC under 1.5 px), both at once are that displacement: the pair counts by the smaller
    # of the two, doubled
    displaced = JOINT_SCALE * min(lam / SPILL_SCALE, gam) if np.isfinite(lam) and np.isfinite(gam) else np.nan
    terms = {"stranded_detail": beta, "subject_spill": lam, "edge_blurred": gam, "edge_displaced": displaced,
             "depth_edge_blend": blend}
    # the subject's spill is the least sure of these (it compares two blurs of the same input, and
    # the subject's own slight defocus adds to it): it counts from SPILL_SCALE times the threshold
    parts = [beta, lam / SPILL_SCALE, gam, displaced, _ramp(blend, *BLEND_RAMP) if np.isfinite(blend) else np.nan]
    score = max([0.0] + [v for v in parts if np.isfinite(v)])
    m = np.maximum.reduce([_pixel_map(bn, bd, rim, VISIBLE), _pixel_map(ln, ld, spill, VISIBLE) / SPILL_SCALE,
                           _pixel_map(gn, gd, inside, VISIBLE), band])
    return min(1.0, score), m, terms


# halo: the subject spill counts at SPILL_SCALE x the threshold; the depth map's blend across the
# silhouette is mapped by ramp(blend, *BLEND_RAMP)
SPILL_SCALE = 2.0
# ... and the two together (edge_displaced) count from half the threshold each
JOINT_SCALE = 2.0
BLEND_RAMP = (0.15, 0.35)
# ... counting the deviation fully where the depth steps at the silhouette by under a quarter of
# the interior-to-background step, not at all from half of it (the exact depth of 163 generated
# scenes steps by 0.58 or more, score.py's `net` depth by 0.18 or less)
SILHOUETTE_STEP = (0.5, 0.25)


def _depth_edge_blend(ctx, rim_w):
    """How far the depth map blends subject and background across the silhouette: over the
    subject's edge band (matte >= 0.5, within 2 rim widths of its edge), |c - c_in| / |c_out - c_in|,
    c_in the CoC of the subject's interior nearby (4-6 rim widths in), c_out the background's
    beyond the edge (4-6 rim widths out), where they differ by 3 px or more and the depth does
    not step at the silhouette nearby. 0 = a step at the silhouette (as renderers' depth is),
    about 0.5 = a ramp centred on it (a network's depth, a depth map upsampled from low
    resolution): any render of it leaves the subject's edge blurred and the background next to
    it sharper, a halo. Returns (value or NaN, map)."""
    a, c = ctx.a, ctx.c
    sub = a >= 0.5
    n = 6 * rim_w + 1
    din = _distance(~sub, n)
    dout = _distance(sub, n)
    band = sub & (din <= 2 * rim_w)
    core = sub & (din > 4 * rim_w) & (din <= 6 * rim_w)
    beyond = (a <= 0.002) & (dout > 4 * rim_w) & (dout <= 6 * rim_w)
    empty = np.zeros(a.shape, np.float32)
    if core.sum() < 30 or beyond.sum() < 30:
        return float("nan"), empty
    c3 = c[:, :, None].astype(np.float32)
    c_in = _fill(c3, core.astype(np.float32))[:, :, 0]
    c_out = _fill(c3, beyond.astype(np.float32))[:, :, 0]
    step = np.abs(c_out - c_in)
    sel = band & (step >= 3.0) & (ctx.veil_alpha < 0.05)
    if sel.sum() < 30:
        return float("nan"), empty
    # a real subject's depth steps to the background's at its silhouette, however far its own
    # depth runs on towards the background inside it (a rounded head close to the wall, a body
    # whose sides recede to it): there the CoC inside is the subject's own, not a blend. A
    # blended depth map has no such step (its CoC changes by under a fifth of the step from one
    # pixel to the next; the exact depth's by over half): the deviation counts where the depth's
    # own step at the silhouette nearby (the largest CoC difference between neighbours across it)
    # is small against the step from the interior to the background
    across = _local_max(_step(c, across=sub), 1)
    sil = (sub & (din <= 1)).astype(np.float32)
    jump = _fill(across[:, :, None], sil)[:, :, 0]
    blended = _ramp(jump / np.maximum(step, 1e-6), *SILHOUETTE_STEP)
    dev = np.abs(c - c_in) * blended
    m = np.where(sel, _ramp(dev / np.maximum(step, 1e-6), *BLEND_RAMP), 0.0).astype(np.float32)
    return float(dev[sel].sum() / step[sel].sum()), m


def _gaussian_look(ctx, aperture):
    if ctx.c is None:
        return None, "needs depth + lens (or coc)"
    terms, parts, maps = {}, [], []
    reason = ("no highlights in the blurred parts of the image, clear of the subject, near content and "
              "the border, to judge the blur's shape")
    t = _highlight_terms(ctx, aperture)
    if t is not None:
        h = _highlight_shape(ctx, *t)
        if isinstance(h, str):
            reason = h
        else:
            parts.append(h[0])
            maps.append(h[1])
            terms.update(h[2])
    e = _edge_terms(ctx, aperture)
    if e is not None:
        en, ed, ezone = e
        b, npx = _region(en, ed, ezone, EDGE_VISIBLE, EDGE_PIXELS)
        if np.isfinite(b):
            terms["edge_profile"] = b
            terms["edge_pixels"] = npx
            parts.append(float(np.clip(b, 0.0, 1.0)))
            maps.append(_pixel_map(en, ed, ezone, EDGE_VISIBLE))
    if not parts:
        return None, reason + "; no step edges or texture there either"
    return max(parts), np.maximum.reduce(maps), terms


def _highlight_shape(ctx, h_r, h_pred, zone):
    """The highlight measure: (score, map, terms), or the reason it cannot be judged."""
    if not zone.any():
        return "highlights too small to judge"
    r = 0.5 * float(np.median(ctx.c_bg[zone]))
    lm = _local_max(h_pred, max(2, int(round(r / 3))))
    plateau = zone & (h_pred >= 0.75 * lm) & (h_pred > 0.02 * h_pred.max())
    if plateau.sum() < 8:
        return "highlights too small or too hidden to judge"
    dist = _distance(~plateau, int(r) + 2)
    core = plateau & (dist >= 0.5 * r)
    outer = plateau & (dist <= max(1.0, 0.3 * r))
    if core.sum() < 4 or outer.sum() < 4:
        return "highlights too small or too hidden to judge"
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
    return float(np.clip(raw / HIGHLIGHT_SCALE, 0.0, 1.0)), _box(m.astype(np.float32), 1), terms


# gaussian_look: the highlight measure counts at HIGHLIGHT_SCALE x the threshold (a polygon's
# light judged as a disk's, or the disks' sampling noise, moves it by up to ~0.5; the edge
# measure separates disks from Gaussians far better where there is anything to blur)
HIGHLIGHT_SCALE = 2.0


def _before_farther_part(c, part, where):
    """Pixels of `where` whose own blur reach (a square of radius |c|/2 + 1) holds a pixel of
    `part` lying behind them by more than NEARER_BY px of CoC: the edge of a nearer part out of
    focus (a held object before the body, a sliver of near content the unsmoothed depth gives a
    subject pixel). The lens sees past such an edge the farther part the input hides there, so
    the render's sharpness there says nothing about its focus."""
    out = np.zeros(c.shape, bool)
    if not where.any():
        return out
    radius = np.ceil(np.abs(c) / 2.0).astype(np.int64) + 1
    r_max = int(radius[where].max())
    # only the box around `where` and its reach matters
    ys, xs = np.nonzero(where)
    y0, y1 = max(0, ys.min() - r_max), min(c.shape[0], ys.max() + r_max + 1)
    x0, x1 = max(0, xs.min() - r_max), min(c.shape[1], xs.max() + r_max + 1)
    box = (slice(y0, y1), slice(x0, x1))
    cb, wb, rb = c[box], where[box], radius[box]
    farthest = np.where(part[box], cb, -np.inf).astype(np.float32)
    ob = out[box]
    for r in range(1, r_max + 1):
        farthest = _local_max(farthest, 1)   # now the max over a (2r+1)^2 square
        sel = wb & (rb == r)
        if sel.any():
            ob[sel] = farthest[sel] > cb[sel] + NEARER_BY
    return out


# a part of the subject counts as before another when their CoCs differ by more than this (px):
# a held object 0.7 px nearer than the body already hides it in the input and shows it in the
# thin-lens truth along its edge; excluding steps of 0.5 px and more over 99 generated scenes
# cost no wrong-focus catch made on other evidence than such an edge (docs/diagnostics.md)
NEARER_BY = 0.5


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
    # where the lens puts its focal plane is the user's choice (a subject deliberately out of
    # focus is no fault): the subject's CoC is reported, and the render is judged against it
    if ctx.c is not None:
        terms["subject_coc_px"] = float(np.median(ctx.c[subj]))
    din = _distance(~subj, 2)
    judge = subj & (din >= 2)
    if ctx.c is not None:
        judge &= ctx.veil_alpha < 0.05
    # the render: where the lens keeps the subject sharp, it should keep the input's detail
    sharp = judge if ctx.c is None else judge & (np.abs(ctx.c) < 1.5)
    if ctx.c is not None:
        # (but not under the blur of the subject's own nearer parts out of focus, a held object
        # or the body before a face in focus: the lens spreads them over it)
        front = (a >= 0.5) & (ctx.c < -1.5)
        if front.any():
            sharp &= scatter(front.astype(np.float32), np.where(front, ctx.c, 0.0).astype(np.float32)) < 0.05
    gn, gd = ctx.excess_terms()
    _judge_region(terms, maps, "subject_blurred", "render_off_subject", gn, gd, sharp, FAINT, low=0.15, r=2)
    # ... and where the lens blurs it, the render should not leave it sharp
    if ctx.c is not None:
        soft = judge & (np.abs(ctx.c) >= 3.0)
        soft &= ~_before_farther_part(ctx.c, a >= 0.5, soft)
        bn, bd = ctx.deficit_terms()
        _judge_region(terms, maps, "subject_left_sharp", "render_sharp_subject", bn, bd, soft, VISIBLE, r=2)
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
    parts = [terms[k] for k in ("render_off_subject", "render_sharp_subject", "depth_disagrees") if k in terms]
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
    # (wherever the veil's change shows, however thin the veil: a small bright light out of focus
    # covers little of what lies behind it, 1-5 %, but outshines it there)
    veiled = sharp & (ctx.veil_alpha >= VEIL_MIN)
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
        _judge_region(terms, maps, "near_left_sharp", "near_sharp", nn, nd, near, VISIBLE)
    # 3. in-focus content outside the subject should stay sharp (under the veil of nearer
    # content where that spreads over it: a continuous surface in front of the focal plane)
    focus = sharp & (ctx.veil_alpha < 0.5)
    if a is not None:
        focus &= _distance(a > 0.02, 3) > 2
    # (against the input spread over its own CoC: a disk of 1.5 px already takes half the
    # contrast of the finest texture, which is no fault)
    dP = ctx.tI - ctx.tP
    own = _tone((1.0 - al) * ctx.E_all + al * ctx.veil_colour)
    gn, gd = ((own - ctx.tR) * dP).sum(2), (dP * dP).sum(2)
    _judge_region(terms, maps, "focus_blurred", "in_focus_blurred", gn, gd, focus, VISIBLE)
    parts = [terms[k] for k in ("veil_missing", "near_sharp", "in_focus_blurred") if k in terms]
    if not parts:
        return None, "nothing in front of or at the focal plane outside the subject"
    return max(parts), np.maximum.reduce([m.astype(np.float32) for m in maps]), terms


# foreground_bleed: the veil is judged where near content covers at least this share of a pixel
# (and its expected change is visible)
VEIL_MIN = 0.02


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
    return _judge(_Ctx(img, ren, z, a, c, lens), as_aperture(aperture))


def _diagnose_renders(image, renders, *, depth=None, matte=None, lens=None, coc=None, aperture=None):
    """diagnose() of several renders of the same inputs, the inputs' maps computed once (for
    calibration runs)."""
    img, ren, z, a, c = _inputs(image, renders[0], depth, matte, lens, coc)
    ap = as_aperture(aperture)
    ctx = _Ctx(img, ren, z, a, c, lens)
    out = []
    for r in renders:
        _, rr, _, _, _ = _inputs(image, r, None, None, None, None)
        out.append(_judge(ctx.with_render(rr), ap))
    return out


def _judge(ctx, ap):
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
    return Diagnosis(scores, maps, details, skipped, ctx.img)


