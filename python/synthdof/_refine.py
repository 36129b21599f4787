"""refine(): turn a network's or a sensor's depth and a segmentation matte into render-ready maps."""
import numbers

import numpy as np

from . import _core
from ._validate import (_array, _check_dtype, arrays_from_pool, as_image, as_matte, check_size, packed_float32,
                        resolve_threads)

# Matte values at or beyond these count as confidently outside / inside the subject; the pixels
# between them (a segmentation mask's soft ramp) get their alpha from their colour.
MATTE_OUT, MATTE_IN = 0.02, 0.98
# The colour line is trusted only where the two sides' colours differ by this much (sRGB units,
# Euclidean over RGB, 0.02 per channel): below it a pixel's alpha is ill-conditioned.
MIN_SIDE_CONTRAST = 0.035
# refine_matte='auto' keeps the matte when at least this share of its ramp pixels lies within
# ALPHA_AGREES of the alpha their colours give: alpha mattes and rendered coverage agree for
# 0.64-1.0 of their ramp pixels on the ground-truth scenes (0.40 for one with striped posts),
# segmentation masks upsampled from a lower resolution for 0.07-0.33.
ALPHA_AGREES = 0.1
AGREEING_SHARE = 0.5
# A colour this far beyond either side's (in units of the line between them) is not a blend of
# the two: the pixel keeps the mask's value (beyond the background's: a hair strand darker than
# both sides, which the line would erase) or side (beyond the subject's: the background beside
# the edge is unlike the background farther out, as on a checkered floor).
OFF_LINE = 0.25
# Alpha given to pixels outside the mask (below 0.5) stays under the render's confident level
# (0.95), so that their subject part takes the subject's CoC from its confident interior rather
# than the depth of the background they lie on. Both on ../shared/gt: net portrait band 28.49 ->
# 29.53 dB, slant 38.42 -> 37.65 (its posts' stripes run along their edges); 40 generated
# scenes' net and lowres band +0.32 dB on average.
GROWN_MAX = 0.9
# refine_matte='auto' also keeps a matte whose ramp a segmentation mask could not have: thin
# soft structure (hair strands, glasses, rods: a ramp pixel above or below both its neighbours
# in a row or a column by RIDGE_STEP) on RIDGE_SHARE of its ramp pixels, or a ramp narrower
# than MASK_RAMP_PX pixels per boundary pixel (a renderer's antialiasing). On 44 rendered
# mattes the ridges are 0.20-0.45 of the ramp where there is hair, the ramp 1.15-1.78 px wide
# where there is none; on their segmentation masks (1/2 and 1/4 resolution, grown by 2 px,
# blurred) the ridges are 0-0.063 and the ramp 2.28 px or wider.
RIDGE_STEP = 0.05
RIDGE_SHARE = 0.12
MASK_RAMP_PX = 2.0
# Edge-stopping of the hole fill: a guide step of this size (sRGB units summed over channels)
# doubles the distance across it, so fills stay on the surface the image shows.
FILL_SIGMA_R = 0.1
# Normalised fills whose weight falls below this are redone with a 4x wider reach (a hole or a
# band wider than the filter's reach); a guided fill stops widening when a widening filled none of
# them (edges wall them in, and the weight across an edge does not grow with the reach).
MIN_FILL_WEIGHT = 1e-4
FILTER_ITERATIONS = 3
# An unguided fill widens its reach 4x up to this many times: 4^9 spans any frame.
UNGUIDED_WIDENINGS = 9
# The reach (pixels) from which a hole that edges wall in on every side is continued unguided.
NEAREST_REACH = 2.0
# Holes in a frame whose short side spans this many cells of 2 pixels or more are filled on those
# cells (_fill_on_cells): at 4032 x 3024, cells of 4 px.
HOLE_CELL_SHORT_SIDE = 700
# Fills run on the box of the pixels that read them grown by this many sigmas of the filter:
# the weight of what lies farther is below 1e-3 of the nearest.
REACH_SIGMAS = 6
# A pixel beside the matte's boundary keeps its own disparity when it lies within this fraction
# of its side's continuation: sharp depth (a renderer's, a good sensor's) is left as it is, and
# only depth pulled towards the other side is replaced. 0.5 % of disparity is about half a pixel
# of CoC on a subject in focus at 2 m with an 85 mm f/1.4 lens (0.02 left a visible blur).
SIDE_TOLERANCE = 0.005
# Depth given at full resolution and kept as it is (a renderer's, a clean network's) is replaced
# beside the boundary only where it is blurred across it: where a share of BLURRED_SHARE or more
# of the pixels within RING_PX of the boundary around it are pulled at least BLUR_PULL of the way
# towards the other side's depth (on the ground truth's network and phone depth 0.39-0.61 of
# them are, of its rendered depth 0-0.04: lights, strands), or where the pixel itself lies
# nearer the other side's depth than its own. Lights, hair and the curved rim of a head in sharp
# depth keep their depth.
RING_PX = 2
BLUR_PULL = 0.25
BLURRED_SHARE = 0.25
# Depth pulled beyond the other side's (more than BEYOND_PULL of the way) is not a blend of the
# two: it is another surface, such as a rod or a wire in front of the subject that the matte
# leaves out, and keeps its depth (on 40 generated scenes with such occluders, exact inputs
# through refine moved by up to 13 dB without this).
BEYOND_PULL = 1.5
# A full-resolution map counts as a bilinear enlargement of a smaller one when this share of its
# second differences lies at the smaller one's sample centres (of any other map about
# 2 / factor does).
RESIZE_SHARE = 0.9
RESIZE_LINES = 64
# The share of the bend whose pixels are tested first against every factor (_may_hold).
HEAVY_SHARE = 0.75
# Linear light above 1 (a light, a specular highlight) is clipped in the guide; the upsampling's
# guide adds this much per doubling above it, so that a light beside a white surface is not
# given that surface's depth (a 40x light beside a near white bar took the bar's depth and lost
# 1.5 % of the occluder scene's light behind the bar's blur).
HIGHLIGHT_PER_STOP = 0.25
# Depth whose pixel-to-pixel scatter (median relative deviation from its 3x3 mean) exceeds this is
# noisy (a stereo or time-of-flight sensor) and is smoothed along the surfaces the image shows;
# a renderer's or a network's depth is far below it and is not touched.
NOISE_LEVEL = 0.003
# The noise test reads about this many rows of a taller map (a median of millions of deviations at
# 12 MP is as good as of all; every row of the ground-truth and held-out scenes, 384-768 px).
NOISE_ROWS = 512
# Noisy depth at full resolution is averaged onto cells of band / NOISE_SIGMA_CELLS pixels (where
# that is 2 or more), smoothed there with a sigma of NOISE_SIGMA_CELLS cells and upsampled like a
# phone's depth: the smoothing varies little from pixel to pixel, and on the pixel grid a 12 MP
# frame cost the filter (and the whole frame's guide) 0.3 s. The upsampling snaps the edges to
# the image's.
NOISE_SIGMA_CELLS = 8
# A cell whose disparity spreads more than this many times the median cell's is a blend of
# surfaces (see refine); the noise alone, over the 16 or more pixels of a cell, stays within
# about 1.5 times the median.
MIXED_SPREAD = 2.5
# Noisy depth that the smoothing left within this many robust sigmas of the noise counts as the
# input's own beside the matte's boundary, where it lies beyond both sides (see refine).
NOISY_KEPT_SIGMAS = 5
# The upsampling compares colours only where the samples in reach disagree by more than
# UPSAMPLE_AGREE of their disparity (their range, or their distance from their plane): 0.5 % is
# about half a pixel of CoC on a subject in focus at 2 m with an 85 mm f/1.4 lens. Noisy depth
# smoothed on cells keeps residual noise of that order in textured areas, where the colours would
# pick noise, and is compared only beyond NOISY_AGREE (on the 12 MP scene, sensor input: 14 % of
# the windows compared at 0.5 %, 6 % at 1 %).
UPSAMPLE_AGREE = 0.005
NOISY_AGREE = 0.01
# sharpen_steps: a step in full-resolution depth that was blurred across (a network's) bends the
# disparity, which a plane (a slanted floor) never does: where the least-squares plane over the
# window of 2 band + 1 pixels leaves a residual above STEP_RESIDUAL of the disparity (RMS), and the
# pixel lies strictly between STEP_BETWEEN of the way from the window's smallest disparity to its
# largest (a sharp step's pixels lie at its ends), or between STEP_SHOULDER beside such a pixel
# (the blur's shoulder: left out, it keeps up to a tenth of its pull), the pixel takes the depth
# of the cell within STEP_FILL_REACH bands nearest to it in place (sigma: a band) and colour
# (FILL_SIGMA_R), from that cell's pixels off the steps. Test and fill run on cells of
# band / STEP_CELL_DIV pixels, and on at most about STEP_MAX_CELLS cells (a narrow band on a large
# frame would make millions). Set on ../shared/gt and generated scenes 700-723; held out, scenes
# 800-815 (see refine's docstring).
STEP_RESIDUAL = 0.01
STEP_BETWEEN = (0.15, 0.85)
STEP_SHOULDER = (0.05, 0.95)
# Depth whose sharp steps (neighbours STEP_JUMP or more apart in disparity) number STEP_SHARP_RATIO
# times its flagged pixels (of its own, not filled) or more is a renderer's or a good sensor's: its
# ramps are surfaces and it is left as it is. Network depth: 0.96-1.78 on ../shared/gt and scenes
# 700-723, 1.04-1.98 on the held-out 800-815, 1.15 on the 12 MP benchmark scene; rendered depth of
# the same scenes 3.25 and more (mostly hundreds); skimage's stereo motorcycle 4.34.
STEP_JUMP = 0.02
STEP_SHARP_RATIO = 2.5
STEP_FILL_REACH = 2.0
STEP_CELL_DIV = 3
STEP_MAX_CELLS = 1 << 20


def _edge_fill(values, weight, guide, sigma_s, sigma_r, nt, need=None):
    """Normalised edge-aware convolution: each channel of `values` (H, W, C) averaged with
    `weight` (H, W) over the surface the guide shows; widened where no weight is in reach of a
    pixel in `need` (default: all). Returns the filled (H, W, C) values (0 where not needed)."""
    H, W = weight.shape
    C = values.shape[2]
    out = np.zeros((H, W, C), np.float32)
    todo = np.ones((H, W), bool) if need is None else np.array(need, bool, order="C")
    # filters values * weight and weight, out = their ratio where the weight exceeds MIN_FILL_WEIGHT,
    # with the reach 4x wider each time while pixels are left (unguided, until it spans any frame)
    left = _core.edge_fill(values, weight, guide, float(sigma_s), float(sigma_r), FILTER_ITERATIONS,
                           4 if guide is not None else UNGUIDED_WIDENINGS, MIN_FILL_WEIGHT, todo, out, nt)
    if left and guide is not None and weight.any():
        # enclosed by edges on every side (a hole inside a small bright patch): across an edge
        # the weight does not grow with the radius, so these continue their nearest surroundings
        # unguided (from a reach of NEAREST_REACH pixels, widened as needed)
        rest = _edge_fill(values, weight, None, NEAREST_REACH, sigma_r, nt, need=todo)
        out[todo] = rest[todo]
    return out


def _sharpen_steps(q, weight, band, colour, linear, nt, own=None):
    """q (in place) with the pixels on depth steps blurred across (see STEP_RESIDUAL) given the
    depth of the nearest cell of their surface (in place and colour), and those pixels' mask.
    `weight`: ones of q's shape (a plane refine has at hand, or None). `own`: where q is the
    input's own (not a filled hole), if not everywhere: only there do flagged pixels count as
    evidence of blur (a hole's fill is smooth whatever the input)."""
    cell = max(1, band // STEP_CELL_DIV, int(np.ceil(np.sqrt(q.size / STEP_MAX_CELLS))))
    if cell > 1:
        cells, _, _ = _cell_means(q, weight, cell, nt)
        radius = max(1, round(band / cell))
    else:
        cells, radius = q, band
    stepped = np.empty(q.shape, bool)
    n, jumps = _core.blurred_steps(q, cells, radius, STEP_RESIDUAL, STEP_BETWEEN, STEP_SHOULDER, STEP_JUMP, stepped, nt)
    if own is not None and n:
        n = int(np.count_nonzero(stepped & own))
    if jumps >= STEP_SHARP_RATIO * n:  # sharp depth: its few ramps are surfaces, not blur
        stepped[:] = False
    elif n:
        reach = int(np.ceil(STEP_FILL_REACH * band / cell))
        _core.step_fill(q, stepped, colour, linear, cells.shape, reach, float(band), FILL_SIGMA_R, q, nt)
    return q, stepped


def _band(matte, given, radius, margin, nt):
    """The subject's side (where both the refined and the given matte are >= 0.5), the pixels
    with a pixel of the other side within `radius` (a square window), and their bounding box
    grown by `margin` pixels as slices (None if there are none): the fills only run where their
    result is read, plus the reach they continue from."""
    H, W = matte.shape
    side, near = np.empty((H, W), bool), np.empty((H, W), bool)
    y0, y1, x0, x1 = _core.band_near(np.ascontiguousarray(matte), np.ascontiguousarray(given), int(radius),
                                     side, near, nt)
    if y1 < y0:
        return side, near, None
    return side, near, (slice(max(0, y0 - margin), min(H, y1 + margin + 1)),
                        slice(max(0, x0 - margin), min(W, x1 + margin + 1)))


def _near_other_side(side, radius, nt=1):
    """Pixels with a pixel of the other side within `radius` (a square window)."""
    near = np.empty(side.shape, bool)
    _core.band_near(side.astype(np.float32), None, int(radius), np.empty_like(near), near, nt)
    return near


def _noisy(q, weight, nt):
    """Whether the median of |q - its 3x3 mean| / q over pixels whose 3x3 neighbourhood is all
    valid exceeds NOISE_LEVEL (one pass: only the median's side of it is needed), on every k-th
    row of a map taller than NOISE_ROWS (about NOISE_ROWS rows)."""
    return _core.noise_above(q, weight, NOISE_LEVEL, nt, max(1, q.shape[0] // NOISE_ROWS))[0]


def _knots(n, scale):
    """Positions (pixels) of the sample centres of a map enlarged `scale` times to n pixels."""
    x = (np.arange(int(np.ceil(n / scale)) + 1) + 0.5) * scale - 0.5
    return x[x <= n - 1]


def _enlargement(d, axis):
    """The factor (3 or more) by which `d` was bilinearly enlarged along `axis`: the largest whose
    sample centres hold RESIZE_SHARE of the map's second differences (a linear interpolation
    bends only there); 0 if it does not bend along `axis`, None if no factor holds them."""
    n = d.shape[axis]
    bend = np.abs(np.diff(d, 2, axis=axis)).sum(axis=1 - axis)  # at pixels 1 .. n - 2
    total = bend.sum()
    if total <= 0:
        return 0.0  # linear along this axis: any factor
    # a factor of 3 or more bends the map at 2 pixels of every 3 at most: a map whose bends
    # need more pixels than that to hold RESIZE_SHARE of them is no such enlargement
    heavy = np.cumsum(np.sort(bend)[::-1])
    if np.searchsorted(heavy, RESIZE_SHARE * total) > 2 * n / 3 + 2:
        return None
    # the largest such factor: the sample centres of a third of it hold those of its multiples too
    for scale in _may_hold(bend, n, heavy, total, sorted({n / m for m in range(2, n // 3 + 1)} | set(range(3, 17)),
                                                        reverse=True)):
        x = _knots(n, scale)
        at = np.zeros(n, bool)  # the pixels on either side of each sample centre
        at[np.floor(x).astype(np.intp)] = True
        at[np.minimum(np.ceil(x).astype(np.intp), n - 1)] = True
        if bend[at[1:-1]].sum() >= RESIZE_SHARE * total:
            return scale
    return None


def _may_hold(bend, n, heavy, total, scales):
    """The scales whose sample centres may hold RESIZE_SHARE of the bend: those beside which the
    heaviest pixels holding HEAVY_SHARE of it hold at least RESIZE_SHARE - (1 - HEAVY_SHARE) (the
    rest of the pixels cannot make up more). All scales at once, for those pixels alone (a Python
    loop over the 2 300 factors of a 12 MP map took 0.08 s); the test counts a pixel as beside a
    centre within rounding, so it never drops a scale that holds the share."""
    top = np.argsort(bend)[::-1][:np.searchsorted(heavy, HEAVY_SHARE * total) + 1]
    p = top.astype(np.float64) + 1  # bend[i] lies at pixel i + 1
    s = np.asarray(scales, np.float64)[:, None]
    k = np.maximum(np.rint((p + 0.5) / s - 0.5), 0)  # the nearest sample centre: they lie >= 3 px apart
    x = (k + 0.5) * s - 0.5
    beside = (np.abs(x - p) < 1 + 1e-9) & (x <= n - 1 + 1e-9)
    held = beside.astype(np.float64) @ bend[top]
    need = (RESIZE_SHARE - (1 - HEAVY_SHARE)) * total * (1 - 1e-9)
    return [scale for scale, h in zip(scales, held) if h >= need]


def _knot_rows(d, sy, sx, rows):
    """Rows `rows` of `d` at the sample centres of an enlargement by (sy, sx), in float64: each
    value extrapolated from the two pixels below its centre, along the rows, then down the
    columns (only the rows of `d` that those need are read)."""
    H, W = d.shape
    ky = _knots(H, sy)[rows]
    iy = np.clip(np.floor(ky).astype(np.intp), 1, H - 1)
    kx = _knots(W, sx)
    ix = np.clip(np.floor(kx).astype(np.intp), 1, W - 1)

    def at_columns(r):
        a, b = np.take(r, ix, 1), np.take(r, ix - 1, 1)
        return a + (kx - ix)[None, :] * (a - b)
    a, b = at_columns(d[iy].astype(np.float64)), at_columns(d[iy - 1].astype(np.float64))
    return a + (ky - iy)[:, None] * (a - b)


def _resized_from(d, nt):
    """The lower-resolution map that `d` is a bilinear enlargement of (a phone's or a network's
    depth resized to the photograph), or None: taken back to its samples, it is upsampled
    guided by the image instead (on the ground truth, depth at 1/6 resolution given as is scores
    1.2 dB above the same resized). Only a map that the samples reproduce counts."""
    H, W = d.shape
    if min(H, W) < 9:
        return None
    # the factors from RESIZE_LINES rows and columns (a resize bends every line at the same
    # places), so that a map that is no resize costs little; the whole map is checked below
    rows = d[::max(1, H // RESIZE_LINES)].astype(np.float64)
    cols = d[:, ::max(1, W // RESIZE_LINES)].astype(np.float64)
    if not (np.isfinite(rows).all() and np.isfinite(cols).all()):
        return None
    sy, sx = _enlargement(cols, 0), _enlargement(rows, 1)
    if sy is None or sx is None or sy == sx == 0 or not np.isfinite(d).all():
        return None
    sy, sx = sy or sx, sx or sy
    small = _knot_rows(d, sy, sx, np.arange(_knots(H, sy).size))
    # every pixel against the enlargement of the samples, in C (the float64 NumPy test took 0.6 s
    # at 12 MP; the same arithmetic, so the same decision, and it stops at the first row off)
    if not _core.enlargement_fits(np.ascontiguousarray(d, np.float32), small, float(sy), float(sx),
                                  1e-4 * float(np.abs(d).max()), nt):
        return None
    return np.ascontiguousarray(small, np.float32)


def _highlights(linear, nt):
    """(over, add): the flat indices of the linear values above 1, ascending, and what the guide
    gains there, HIGHLIGHT_PER_STOP per doubling (the guide itself is clipped there): a light
    beside white paint is another surface, not the same."""
    over = _core.indices_above(linear, 1.0, nt)  # (without a frame-sized mask)
    return over, np.float32(HIGHLIGHT_PER_STOP) * np.log2(linear.reshape(-1)[over])


def _grid_colours(guide, h, w, nt):
    """The guide's colour at the centre of each sample of an (h, w) map covering the image."""
    H, W = guide.shape[:2]
    ys = np.clip(np.rint((np.arange(h) + 0.5) * H / h - 0.5).astype(np.int64), 0, H - 1)
    xs = np.clip(np.rint((np.arange(w) + 0.5) * W / w - 0.5).astype(np.int64), 0, W - 1)
    out = np.empty((h, w, 3), np.float32)
    _core.take_grid(guide, ys, xs, out, nt)  # (a fancy index's copy, on the threads)
    return out


def _sampled_guide(guide, h, w, nt, *, linear=False, colours=None):
    """The guide's colour at the centre of each sample of an (h, w) map covering the image (or
    `colours`, in the guide's terms, where given), as the upsampling compares it, and the
    highlights of the frame (None unless `linear`): with `linear` the guide is the linear image,
    the samples are encoded here (with their highlights) and the kernel encodes the few pixels it
    reads, as _srgb_guide would (the whole frame's guide is made only if a later stage needs it)."""
    guide_lo = _grid_colours(guide, h, w, nt) if colours is None else colours
    if not linear:
        return guide_lo, None
    lin_lo = guide_lo
    guide_lo = _srgb_guide(lin_lo, nt)
    over, add = _highlights(lin_lo, nt)
    guide_lo.reshape(-1)[over] += add
    return guide_lo, _highlights(guide, nt)


def _upsample(q, weight, guide, sampled, nt, agree=UPSAMPLE_AGREE, *, need=None, out=None):
    """Joint upsampling of the (h, w) disparity to the guide's (H, W): each pixel averages the
    4 x 4 samples around it, weighted down where a sample's colour differs from the pixel's, so
    depth edges and thin structures land where the image has them. `sampled` is _sampled_guide's
    (guide_lo, highlights): with highlights the guide is the linear image. Returns (q, weight,
    unreached): weight 1, or 0 where no valid sample is in reach (filled afterwards like any
    hole), and how many pixels that is (weight None where that is none). Where the samples in
    reach agree to the fraction `agree` (their range, or their distance from their plane) the
    colours are not compared. With `need` (H, W) bool only those pixels are computed, into `out`
    (the others keep what they held)."""
    H, W = guide.shape[:2]
    guide_lo, highlights = sampled
    out = np.empty((H, W), np.float32) if out is None else out
    args = (np.ascontiguousarray(q), np.ascontiguousarray(weight), guide_lo, guide, highlights, FILL_SIGMA_R, out)
    # the map of reached pixels only where some are not (a second pass then: a 12 MP map of ones
    # written and read back costs more than the pass where, as mostly, every pixel is reached)
    unreached = _core.guided_upsample(*args, None, nt, agree, need)
    if not unreached:
        return out, None, 0
    found = np.ones((H, W), np.float32) if need is not None else np.empty((H, W), np.float32)
    _core.guided_upsample(*args, found, nt, agree, need)
    return out, found, unreached


def _fill_on_cells(q, weight, holes, source, linear, cell, nt):
    """Fills the holes (weight 0, `holes`) of q, in place, on cells of `cell` pixels (a frame
    whose short side spans HOLE_CELL_SHORT_SIDE of them or more): each cell's mean over its valid
    pixels, the cells with none filled along the surfaces their colours show (the fill's reach of
    the frame), then upsampled guided by the image at the holes, as depth of a lower resolution
    is. A cell's colour is its valid pixels' mean colour, where its depth comes from (its centre
    pixel may lie in the hole, on the other surface), or its centre pixel's where it has none.
    The fill on the pixels costs a 12 MP frame 0.6 s and the whole frame's guide. `source` is the
    guide, or the linear image when `linear`."""
    H, W = q.shape
    qc, wc, _ = _cell_means(q, weight, cell, nt)
    h, w = qc.shape
    some = wc > 0
    colours = np.empty((h, w, 3), np.float32)
    _core.cell_means(np.ascontiguousarray(source), weight, colours, np.empty((h, w), np.float32), None, nt)
    # the cells without a valid pixel take their centre pixel's colour (they are few: copying the
    # other cells' means by a mask instead took 37 ms at 12 MP)
    none = ~some
    colours[none] = _grid_colours(source, h, w, nt)[none]
    sampled = _sampled_guide(source, h, w, nt, linear=linear, colours=colours)
    if not some.all():
        fill = _edge_fill(qc[..., None], wc, sampled[0], max(H, W) / 32 * w / W, FILL_SIGMA_R, nt, need=none)
        qc = np.where(some, qc, fill[..., 0]).astype(np.float32)
    _upsample(qc, np.ones((h, w), np.float32), source, sampled, nt, need=holes, out=q)


def _cell_means(q, weight, f, nt):
    """The disparity's weighted means over cells of about f x f pixels (weight None: all 1), the
    mean weights, and each cell's spread (weighted standard deviation over the mean)."""
    H, W = q.shape
    h, w = max(1, round(H / f)), max(1, round(W / f))
    qc, wc, spread = (np.empty((h, w), np.float32) for _ in range(3))
    _core.cell_means(q, weight, qc, wc, spread, nt)
    return qc, wc, spread


def _refine_matte(colour, linear, matte, reach, mode, nt):
    """Alpha of the soft ramp from each pixel's colour between its subject and background
    colours (I = a F + (1 - a) B, solved for a along the line from B to F; F and B the nearest
    confidently inside and outside pixels straight across the edge, along the matte's gradient,
    within `reach`: the nearest ones, not a mean over the neighbourhood, since a striped or
    checkered surface mixes into its edge pixels the colour right beside them); elsewhere the
    matte. mode 'auto' re-estimates a segmentation mask's ramp and keeps an alpha matte (a
    matting model's, a renderer's coverage): one whose ramp has the thin or narrow structure no
    resized mask has (see RIDGE_SHARE), or that already agrees with the colours. `colour` is the
    guide, or the linear image when `linear` (its few pixels read are encoded in C: the whole
    frame's guide is not needed). One C pass (csrc/sd_refine_matte.c)."""
    out = np.empty(matte.shape, np.float32)
    _core.matte_ramp(np.ascontiguousarray(matte), colour, linear,
                     (MATTE_OUT, MATTE_IN, MIN_SIDE_CONTRAST ** 2, OFF_LINE, GROWN_MAX, ALPHA_AGREES, AGREEING_SHARE,
                      RIDGE_STEP, RIDGE_SHARE, MASK_RAMP_PX, int(reach), mode == "auto"), out, nt)
    return out


def _continue_sides(q, side, near, band, kept, nt):
    """Within `band` pixels of the matte's boundary (`near`), depth that strays from its own
    side's continuation (from beyond the band) by more than SIDE_TOLERANCE is replaced by it;
    `kept` depth (the input's own values) only where it is blurred across the boundary (the
    share of the RING_PX ring pulled BLUR_PULL towards the other side is BLURRED_SHARE or more,
    or the pixel itself is pulled more than half the way) and not pulled beyond BEYOND_PULL (an
    occluder in front of both sides). In place (q is returned); one C pass around the fills, which
    run on cells of band / 4 pixels (csrc/sd_refine_sides.c)."""
    _core.continue_sides(q, side, near, kept, int(band), SIDE_TOLERANCE, RING_PX, BLUR_PULL, BEYOND_PULL,
                         BLURRED_SHARE, MIN_FILL_WEIGHT, FILTER_ITERATIONS, UNGUIDED_WIDENINGS, nt)
    return q


def _guide_source(image, nt):
    """(guide, linear): for integer input the guide (sRGB already, scaled to [0, 1]: no round
    trip through linear light) and None; for float input None and the linear image, whose
    guide (_srgb_guide) is made only when a stage filters the whole frame with it."""
    if isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16):
        if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise ValueError(f"image: expected shape (H, W, 3), got {image.shape}")
        check_size(image, "image")
        out = np.empty(image.shape, np.float32)
        _core.unorm_to_float(np.ascontiguousarray(image), out, nt)  # value / 255 or 65535
        return out, None
    img, _ = as_image(image, "image", channels=3, allow_gray=False, threads=nt)
    return None, np.ascontiguousarray(img)


def _srgb_guide(linear, nt):
    """The image as the filters compare it: sRGB-encoded in [0, 1], so that dark and bright
    edges count alike."""
    out = np.empty(linear.shape, np.float32)
    # linear_to_srgb's arithmetic in C, its power within 3 ulp and the same on every processor
    # (NumPy's vectorised float32 power differs between them in the last bits)
    _core.srgb_encode_base(linear, out, nt)
    _core.srgb_encode_finish(linear, out, nt)
    return out


def _edge_width(edge_width, shape):
    if isinstance(edge_width, str):
        if edge_width != "auto":
            raise ValueError(f"edge_width: expected 'auto' or a number of pixels, got {edge_width!r}")
        return max(2, int(round(max(shape) / 128)))
    if isinstance(edge_width, bool) or not isinstance(edge_width, numbers.Real) or not np.isfinite(edge_width) \
            or edge_width < 0:
        raise ValueError(f"edge_width: expected 'auto' or a finite number of pixels >= 0, got {edge_width!r}")
    return int(round(edge_width))


@arrays_from_pool  # its 12 MP planes reuse freed pages instead of faulting in fresh ones
def refine(image, depth, *, matte=None, invalid=None, disparity=False, edge_width="auto",
           refine_matte="auto", sharpen_steps=True, num_threads=None):
    """Turn a network's or a sensor's depth (and a segmentation matte) into render-ready maps.

    Depth from a monocular network, a phone or a stereo / time-of-flight sensor differs from
    the depth a renderer writes: it may have a lower resolution than the photograph, holes
    (NaN, inf, 0 or negative values), and edges that blur across the subject's silhouette, so
    that the background right beside the subject takes on the subject's depth (and renders as a
    sharp halo). `refine` works in disparity (1 / depth):

    1. depth given at a lower resolution is upsampled to the image's, guided by the image
       (each pixel weighs the samples around it by how alike their colours are);
    2. invalid pixels are filled from valid ones on the same surface (an edge-aware fill guided
       by the image, so a hole next to a near object takes the surface it lies on); noisy depth
       (a sensor's) is smoothed along the surfaces the image shows, on cells of `edge_width` / 8
       pixels where that is 2 or more (then upsampled as in 1: the edges land where the image
       has them; structures thinner than a cell keep less of their own depth);
    3. depth given at full resolution whose steps are blurred across (a network's: a rod in
       front of a wall takes a ramp of depths between the two) has the pixels on those ramps
       given the depth of the nearby patch of their own surface (``sharpen_steps``);
    4. with a matte, the soft ramp of a segmentation mask gets its alpha from the colours
       (each pixel's position between its local subject and background colours, where it is a
       blend of the two; outside the mask at most 0.9), and in a band of `edge_width` pixels
       on each side of the matte's boundary the depth is continued from beyond the band on
       the same side: the subject's side from the subject, the background's
       from the background, so depth never mixes across the silhouette. Depth given at full
       resolution and clean is replaced only where it is blurred across the boundary: sharp
       depth (a renderer's) keeps its lights, strands and curved rims.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        The photograph: uint8/uint16 sRGB or float linear light. It guides the fills.
    depth : ndarray, shape (h, w)
        Depth (any positive unit), or disparity with ``disparity=True``, at the image's
        resolution or lower with the same aspect ratio. NaN, inf, 0, negative and denormal values mark
        invalid pixels.
    matte : ndarray, shape (H, W), optional
        Subject alpha or segmentation mask in [0, 1].
    invalid : ndarray of bool, shape (h, w), optional
        Further pixels of `depth` to treat as invalid (a sensor's confidence mask).
    disparity : bool, default False
        `depth` holds disparity (larger is nearer, e.g. a network's relative inverse depth);
        the result is disparity too.
    refine_matte : {'auto', True, False}, default 'auto'
        Re-estimate the alpha of the matte's soft ramp from the colours. 'auto' does so for a
        segmentation mask's ramp (wide and smooth) and keeps an alpha matte's: one with thin
        soft structure such as hair strands, a ramp under 2 pixels wide (antialiasing), or a
        ramp that already agrees with the colours (half or more of its pixels within 0.1).
    edge_width : 'auto' or float, default 'auto'
        Width in image pixels of the band beside the matte's boundary whose depth is replaced;
        'auto' is 1/128 of the image's longer side (6 px at 768 wide, 31 px at 4032), and at
        least k pixels for depth given at (or resized from) 1/k of the image's width. 0 turns
        the band off.
    sharpen_steps : bool, default True
        Sharpen depth steps away from the matte that were blurred across, for depth given at
        full resolution and not noisy. Where disparity bends over a window of 2 `edge_width` + 1
        pixels (a plane, such as a slanted floor, does not) and a pixel lies on a ramp between
        the two sides' values (a sharp step's pixels do not), the pixel takes the depth of the
        nearby patch of its surface nearest in place and colour. Depth with many sharp steps
        against such ramps (a renderer's, a good sensor's) is left as it is. A near object
        thinner than the blur keeps the blurred, too far depth of its middle. On network-like
        depth of 16 held-out rendered scenes PSNR rose by 0.66 dB on average (band +0.32 dB).
    num_threads : int, optional
        Threads for the filters (default: all cores); the result does not depend on it.

    Returns
    -------
    depth : ndarray of float32, shape (H, W)
        Finite, positive depth (or disparity) at the image's resolution.
    matte : ndarray of float32, shape (H, W) or None
        The refined matte (None when none was given).

    Raises
    ------
    ValueError
        If a shape does not fit the image, or `depth` holds no valid pixel.

    Examples
    --------
    A depth map with a hole, refined and rendered:

    >>> import numpy as np, synthdof
    >>> image = np.full((32, 48, 3), 0.5, np.float32)
    >>> depth = np.full((32, 48), 3.0, np.float32)
    >>> depth[10:14, 20:30] = np.nan
    >>> d, m = synthdof.refine(image, depth)
    >>> bool(np.isfinite(d).all()), round(float(d[12, 25]), 4)
    (True, 3.0)
    """
    nt = resolve_threads(num_threads)
    guide, linear = _guide_source(image, nt)
    H, W = (guide if guide is not None else linear).shape[:2]

    def full_guide():  # the whole frame's guide, made once and only for the stages that filter with it
        nonlocal guide
        if guide is None:
            guide = _srgb_guide(linear, nt)
        return guide
    d = _array(depth, "depth")
    _check_dtype(d, "depth", allow_int=False)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"depth: expected a non-empty 2-D (h, w) array, got shape {d.shape}")
    check_size(d, "depth")
    h, w = d.shape
    if h > H or w > W or abs(h / w - H / W) > 2.0 / min(h, w):
        raise ValueError(f"depth: shape {d.shape} is neither the image's {(H, W)} nor a smaller one of "
                         "the same aspect ratio")
    d = packed_float32(d, nt)
    bad = None
    if invalid is not None:
        bad = _array(invalid, "invalid")
        if bad.shape != d.shape:
            raise ValueError(f"invalid: shape {bad.shape} does not match depth's {d.shape}")
        bad = np.ascontiguousarray(bad, bool)
    if (h, w) == (H, W) and (bad is None or not bad.any()):
        small = _resized_from(d, nt)
        if small is not None:
            d = small
            h, w = d.shape
    # disparity (1 / depth) with weight 1 where valid (finite, > 0, not marked invalid), 0 elsewhere
    q, weight = np.empty(d.shape, np.float32), np.empty(d.shape, np.float32)
    valid = _core.disparity_in(d, bad, bool(disparity), q, weight, nt)
    if valid == 0:
        raise ValueError("depth: no valid pixel (all NaN, inf, zero or negative)")
    missing = d.size - valid  # the pixels of weight 0 (the rest have 1): holes to fill
    a = None if matte is None else as_matte(matte, (H, W), threads=nt)
    band = _edge_width(edge_width, (H, W))
    if isinstance(edge_width, str) and w < W:
        # depth at 1/k of the image's resolution does not place the boundary finer than k pixels
        band = max(band, int(np.ceil(W / w)))
    if refine_matte not in ("auto", True, False):
        raise ValueError(f"refine_matte: expected 'auto', True or False, got {refine_matte!r}")
    if not isinstance(sharpen_steps, (bool, np.bool_)):
        raise TypeError(f"sharpen_steps: expected True or False, got {sharpen_steps!r}")

    noisy = _noisy(q, weight, nt)  # at the resolution given: a phone's noise is tested on its samples
    q_in, w_in = q, weight
    cell = band // NOISE_SIGMA_CELLS
    if noisy and (h, w) == (H, W) and cell >= 2:
        q, weight, spread = _cell_means(q, weight, cell, nt)
        h, w = q.shape
        # a cell across a depth edge holds a blend of two surfaces, which the smoothing would carry
        # along the surface its guide sample shows: cells whose spread exceeds MIXED_SPREAD times
        # the typical cell's (the noise's) are holes, filled from the cells beside them
        weight[spread > MIXED_SPREAD * np.float32(_core.median(spread, None, weight, 1, nt))] = 0
    if (h, w) != (H, W):
        # the linear image, its pixels encoded where the upsampling reads them; for integer input
        # the guide is the image (no highlights: nothing above 1)
        source = linear if guide is None else guide
        sampled = _sampled_guide(source, h, w, nt, linear=guide is None)
        if noisy:  # smoothed on the samples, with the full-resolution smoothing's reach
            sigma = max(1.0, max(2.0, band) * w / W)
            q = _edge_fill(q[..., None], weight, sampled[0], sigma, FILL_SIGMA_R, nt)[..., 0]
            weight = np.ones((h, w), np.float32)  # the smoothing leaves no hole
        q, weight, missing = _upsample(q, weight, source, sampled, nt, NOISY_AGREE if noisy else UPSAMPLE_AGREE)
    elif noisy:
        smooth = _edge_fill(q[..., None], weight, full_guide(), max(2.0, band), FILL_SIGMA_R, nt)
        q = smooth[..., 0]
        missing = 0  # the smoothing leaves no hole
    # kept: the pixels whose depth is the input's own (not upsampled, smoothed or filled)
    if q_in.shape != (H, W):
        kept = np.zeros((H, W), bool)
    elif not noisy:
        kept = w_in > 0
    else:
        # noisy depth the smoothing agrees with (within NOISY_KEPT_SIGMAS robust sigmas of the
        # noise) keeps its own depth beside the boundary where it lies beyond both sides: a rod in
        # front of the subject that the matte leaves out
        # the noise's scale from every 31st pixel: the median of |q - q_in| / q_in where valid
        sigma = 1.4826 * np.float32(_core.median(q, q_in, w_in, 31, nt))
        kept = np.empty(q.shape, np.uint8)  # 2 where the smoothing agrees
        _core.agreeing(q, q_in, w_in, float(np.float32(NOISY_KEPT_SIGMAS * sigma)), kept, nt)
    if missing:  # (a 12 MP pass and its test only where there are any)
        holes = weight < 1
        cell = min(H, W) // HOLE_CELL_SHORT_SIDE
        # weight is 0 or 1 here (the input's validity, or the upsampling's reach): the fill
        # replaces the holes, in place (q is this call's own array)
        if cell >= 2:
            _fill_on_cells(q, weight, holes, linear if guide is None else guide, guide is None, cell, nt)
        else:
            fill = _edge_fill(q[..., None], weight, full_guide(), max(H, W) / 32, FILL_SIGMA_R, nt, need=holes)[..., 0]
            # (putmask is the fastest of NumPy's masked copies where the holes are scattered: 23 ms
            # at 12 MP against 80)
            np.putmask(q, holes, fill)

    if sharpen_steps and q_in.shape == (H, W) and not noisy and band > 0:
        # before the matte's band: a pixel of a step filled here no longer counts as the input's own
        colour = guide if guide is not None else linear
        q, stepped = _sharpen_steps(q, None if missing else weight, band, colour, guide is None, nt,
                                    own=w_in > 0 if missing else None)
        kept &= ~stepped
    m = None
    if a is not None:
        if refine_matte is False:
            m = a.copy()
        else:  # the walks read few pixels: the linear image serves unless the guide exists already
            m = _refine_matte(guide if guide is not None else linear, guide is None, a, max(4, 2 * band),
                              refine_matte, nt)
        if band > 0:
            side, near, box = _band(m, a, band, int(REACH_SIGMAS * band) + 1, nt)
            if box is not None:  # q is this call's own array (never the caller's): replaced in place
                _continue_sides(q[box], side[box], near[box], band, kept[box], nt)
    # in place as well: a fresh 12 MP result costs more in page faults than the pass itself
    q = np.ascontiguousarray(q)
    _core.disparity_out(q, disparity, q, nt)  # at least float32's tiny; 1 / q for depth
    return q, m
