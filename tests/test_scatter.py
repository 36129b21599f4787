"""scatter and gather against the slow NumPy reference (tests/reference.py) and against analytic
results: the shape, size and orientation of a defocused point, energy, flat fields, smoothness in
the CoC, determinism and the channel split."""
import numpy as np
import pytest
from scipy import ndimage as ndi

import synthdof
from reference import ref_gather, ref_scatter

# Largest CoC spread on the full-resolution grid (radius 8.4 px); larger ones use coarser levels.
LEVEL0_COC = 16.0
APERTURES = [(0, 0.0), (6, 0.0), (5, 0.3)]
AP_IDS = ["disk", "hexagon", "pentagon-rot0.3"]


def full(shape, c):
    return np.full(shape, c, np.float32)


def delta_image(c, aperture=None, margin=21):
    """A single unit pixel at the centre of an odd square canvas big enough for diameter |c|.
    Returns (output, centre index)."""
    n = int(abs(c) * 1.2) + margin
    n += 1 - n % 2
    img = np.zeros((n, n), np.float32)
    img[n // 2, n // 2] = 1.0
    return synthdof.scatter(img, full(img.shape, c), aperture=aperture), n // 2


def half_max_radius(o, centre, plateau, angle, step=0.02):
    """Distance from the centre (array index coordinates, pixel centres at integers) along
    `angle` (counter-clockwise, image y up) to where the bilinearly interpolated output first
    drops below half the plateau."""
    t = np.arange(0.0, o.shape[0] / 2 - 1, step)
    p = ndi.map_coordinates(o.astype(np.float64), [centre - t * np.sin(angle), centre + t * np.cos(angle)],
                            order=1)
    k = int(np.nonzero(p < 0.5 * plateau)[0][0])
    return t[k - 1] + (p[k - 1] - 0.5 * plateau) / (p[k - 1] - p[k]) * step


def plateau_of(o, centre, radius):
    yy, xx = np.mgrid[:o.shape[0], :o.shape[1]]
    return o[np.hypot(yy - centre, xx - centre) < radius]


# ---- against the reference ------------------------------------------------------------------------
# The reference computes exact area coverage (16 x 16 samples per pixel: < 0.5 % of a pixel's
# weight). The kernel anti-aliases per pixel row instead: each row gets the shape's span at the
# middle of its strip times the strip height, so at the top and bottom of a shape, and along
# slanted polygon edges, up to ~0.3 of a pixel's coverage moves to its horizontal neighbour.
# Within one footprint that moves up to ~13 % of the weight (hexagon of diameter 2-4 px) by at
# most one pixel. Hence: tight bounds on what that cannot change (totals, means, blurred
# images), and loose bounds per pixel.

@pytest.mark.parametrize("blades,rotation", APERTURES, ids=AP_IDS)
def test_scatter_matches_reference_level0(blades, rotation, small_rng):
    H, W = 20, 23
    img = small_rng.random((H, W, 3)).astype(np.float32)
    coc = small_rng.uniform(-LEVEL0_COC, LEVEL0_COC, (H, W)).astype(np.float32)
    ref = ref_scatter(img, coc, blades, rotation)
    out = synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades, rotation))
    d = np.abs(out - ref)
    assert out.sum() == pytest.approx(ref.sum(), rel=1e-5)
    assert d.mean() <= 0.025 * ref.mean()          # measured 1.1-1.6 %
    assert d.max() <= 0.08 * ref.max()             # measured 3.8-4.6 %
    # the differences only move weight to neighbouring pixels: a 3x3 box hides most of them
    box = lambda a: ndi.uniform_filter(a, (3, 3, 0), mode="reflect")
    assert np.abs(box(out) - box(ref)).max() <= 0.02 * ref.max()


@pytest.mark.parametrize("blades,rotation", APERTURES, ids=AP_IDS)
def test_gather_matches_reference_level0(blades, rotation, small_rng):
    H, W = 19, 22
    img = small_rng.random((H, W, 2)).astype(np.float32)
    coc = small_rng.uniform(-LEVEL0_COC, LEVEL0_COC, (H, W)).astype(np.float32)
    ref = ref_gather(img, coc, blades, rotation)
    out = synthdof.gather(img, coc, aperture=synthdof.Aperture(blades, rotation))
    d = np.abs(out - ref)
    assert d.mean() <= 0.012 * ref.mean()          # measured 0.4-0.6 %
    assert d.max() <= 0.08 * ref.max()


@pytest.mark.parametrize("c", [0.3, 1.0, 1.5, 2.5, 4.0, 7.3, 11.2, -5.5, 16.0])
@pytest.mark.parametrize("blades,rotation", APERTURES, ids=AP_IDS)
def test_single_footprint_against_reference(c, blades, rotation):
    n = 21
    img = np.zeros((n, n), np.float32)
    img[10, 10] = 1.0
    coc = full(img.shape, c)
    ref = ref_scatter(img, coc, blades, rotation)
    out = synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades, rotation)).astype(np.float64)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.abs(out - ref).sum() <= 0.15        # weight moved within the boundary pixels
    # centroid: the shape's centroid sits on the pixel centre for symmetric shapes (disk, hexagon)
    yy, xx = np.mgrid[:n, :n]
    for o in (out, ref):
        cy, cx = (o * yy).sum(), (o * xx).sum()
        if blades != 5:
            assert (cy, cx) == pytest.approx((10.0, 10.0), abs=1e-4)
    # second moment about the centre: R^2/4 per axis for a disk, 5R^2/24 for a hexagon
    m2 = (out * ((yy - 10.0) ** 2 + (xx - 10.0) ** 2)).sum()
    m2_ref = (ref * ((yy - 10.0) ** 2 + (xx - 10.0) ** 2)).sum()
    assert m2 == pytest.approx(m2_ref, rel=0.06, abs=0.05)


@pytest.mark.parametrize("blades", [0, 6])
@pytest.mark.parametrize("kind", ["points", "dense"])
def test_scatter_large_coc_against_reference(blades, kind, small_rng):
    """CoC 20-60 px goes through the coarse levels (blocks of sources merged at their centroid,
    spread on a 4-8x coarser grid and upsampled): edges soften, so compare loosely."""
    H, W = 64, 72
    if kind == "points":
        img = np.zeros((H, W, 3), np.float32)
        ys, xs = small_rng.integers(0, H, 10), small_rng.integers(0, W, 10)
        img[ys, xs] = small_rng.uniform(10, 100, (10, 3))
        coc = small_rng.choice(np.array([20, 27.5, -33, 41, -52, 60], np.float32), (H, W))
    else:
        img = (4 * ndi.gaussian_filter(small_rng.random((H, W, 3)), (3, 3, 0))).astype(np.float32)
        img[small_rng.integers(0, H, 15), small_rng.integers(0, W, 15)] = 30.0
        coc = small_rng.choice(np.array([20, -24, 33, -45, 60], np.float32), (H, W))
    ref = ref_scatter(img, coc, blades, 0.0, S=8)
    out = synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades))
    assert out.sum() == pytest.approx(ref.sum(), rel=1e-5)
    psnr = 10 * np.log10(ref.max() ** 2 / np.mean((out - ref) ** 2))
    assert psnr > 33  # measured 39-45 dB
    g = lambda a: ndi.gaussian_filter(a, (3, 3, 0), mode="reflect")
    assert np.abs(g(out) - g(ref)).max() <= 0.03 * g(ref).max()  # measured 0.8 %


def sparse_points(rng, H, W, n, columns):
    """n points at random rows and at random columns of `columns`, CoC from 2 to 60 px (every
    pyramid level)."""
    img = np.zeros((H, W, 3), np.float32)
    coc = np.zeros((H, W), np.float32)
    ys, xs = rng.integers(0, H, n), rng.choice(columns, n)
    img[ys, xs] = rng.uniform(1, 50, (n, 3))
    coc[ys, xs] = rng.choice(np.array([2, -5, 9, 17, -33, 47, 60], np.float32), n)
    return img, coc, ys, xs


@pytest.mark.parametrize("W", [23, 37, 61, 131, 517])
def test_separate_stretches_of_light(W):
    """Points far apart: the pyramid resolves each stretch of a row that footprints reach on
    its own (sd_plane's blocks), however narrow the gaps between stretches (a cell, on small
    planes). The light is kept, it matches the reference, and where no footprint reaches (nor
    its mirror image past an edge) at most rounding remains."""
    rng = np.random.default_rng(W)
    H = 57
    img, coc, ys, xs = sparse_points(rng, H, W, max(3, H * W // 400), np.arange(W))
    out = synthdof.scatter(img, coc, aperture=synthdof.Aperture(6))
    np.testing.assert_allclose(out.sum((0, 1), dtype=np.float64), img.sum((0, 1), dtype=np.float64), rtol=1e-5)
    ref = ref_scatter(img, coc, 6, 0.0, S=8)
    assert 10 * np.log10(ref.max() ** 2 / np.mean((out - ref) ** 2)) > 33
    yy, xx = np.mgrid[:H, :W]
    reached = np.zeros((H, W), bool)
    for y, x in zip(ys, xs):
        r = 0.75 * abs(float(coc[y, x])) + 4
        for my in (y, -1 - y, 2 * H - 1 - y):
            for mx in (x, -1 - x, 2 * W - 1 - x):
                reached |= (yy - my) ** 2 + (xx - mx) ** 2 <= r * r
    assert (~reached).any()
    assert np.abs(out[~reached]).max() <= 1e-6 * out.max()


def test_gap_between_stretches_is_exactly_dark():
    """Two clusters of points at either end of the rows: the running sums of the row's
    differences start again after the gap, so the gap holds exactly 0, not the rounding the
    clusters' many overlapping spans leave in a running sum (2^-24 of their light). (Rows enough
    that every level is spread in bands of rows: a level of too few rows is spread in column
    tiles, whose rows count as reached across all the tiles.)"""
    H, W = 300, 700
    img, coc, _, _ = sparse_points(np.random.default_rng(1), H, W, 400,
                                   np.r_[np.arange(60, 150), np.arange(W - 150, W - 60)])
    out = synthdof.scatter(img, coc, aperture=synthdof.Aperture(6))
    # the clusters' light reaches 0.75 x 60 + 4 px past them; coarse cells of 32 px on top
    gap = out[:, 150 + 49 + 64:W - 150 - 49 - 64]
    assert gap.size > 0 and (gap == 0).all()
    np.testing.assert_allclose(out.sum((0, 1), dtype=np.float64), img.sum((0, 1), dtype=np.float64), rtol=1e-5)


# ---- the shape of a defocused point ---------------------------------------------------------------

@pytest.mark.parametrize("c", [6, 12, 30, 60, 100, -45])
def test_delta_spreads_to_flat_disk_of_right_size(c):
    o, m = delta_image(c)
    R = abs(c) / 2
    assert o.sum(dtype=np.float64) == pytest.approx(1.0, rel=1e-5)
    inner = plateau_of(o, m, 0.6 * R)
    plateau = float(np.median(inner))
    assert inner.std() <= 1e-4 * inner.mean()  # flat: no bright rim or centre
    assert plateau * np.pi * R * R == pytest.approx(1.0, rel=0.015)  # the flat value is 1 / area
    radii = np.array([half_max_radius(o, m, plateau, a) for a in np.linspace(0, 2 * np.pi, 32, endpoint=False)])
    assert abs(radii.mean() - R) <= 0.5
    # every direction within 1 px; at c = 100 (an 8x coarser grid whose edge ramp is ~8 px wide)
    # the contour wobbles by up to 1.05 px, so 1.25 px there
    tol = 1.0 if abs(c) <= 60 else 1.25
    assert np.abs(radii - R).max() <= tol


def test_delta_outside_is_dark():
    o, m = delta_image(12)
    yy, xx = np.mgrid[:o.shape[0], :o.shape[1]]
    # (prefix sums leave float rounding residue, ~1e-9, past the edge)
    assert np.abs(o[np.hypot(yy - m, xx - m) > 6 + 1.5]).max() <= 1e-6 * o.max()


@pytest.mark.parametrize("c", [16, 40])
def test_hexagon_orientation(c):
    """6 blades, rotation 0 (Cycles' convention): a vertex up and one down, so the vertical
    extent is c and the horizontal one (flat sides) c cos 30; rotating by 30 degrees swaps them."""
    for rotation, (v_ext, h_ext) in ((0.0, (c, c * np.cos(np.pi / 6))), (np.pi / 6, (c * np.cos(np.pi / 6), c))):
        o, m = delta_image(c, synthdof.Aperture(6, rotation))
        pl = float(np.median(o[m - 3:m + 4, m - 3:m + 4]))
        up, down = half_max_radius(o, m, pl, np.pi / 2), half_max_radius(o, m, pl, -np.pi / 2)
        left, right = half_max_radius(o, m, pl, np.pi), half_max_radius(o, m, pl, 0.0)
        assert up == pytest.approx(down, abs=1e-3) and left == pytest.approx(right, abs=1e-3)
        assert up + down == pytest.approx(v_ext, abs=0.5)
        assert left + right == pytest.approx(h_ext, abs=0.5)


def test_square_aperture_is_exact():
    """4 blades: an axis-aligned square of side c / sqrt 2. With side 9 centred on a pixel centre
    its edges fall on pixel edges: exactly 81 pixels of 1/81."""
    o, m = delta_image(9 * np.sqrt(2), synthdof.Aperture(4))
    sq = o[m - 4:m + 5, m - 4:m + 5]
    np.testing.assert_allclose(sq, 1 / 81, rtol=1e-4)
    assert np.abs(o).sum() - sq.sum() < 1e-6


@pytest.mark.parametrize("c", [14, 40])
def test_pentagon_near_is_far_rotated_180(c):
    ap = synthdof.Aperture(5)
    far, m = delta_image(c, ap)
    near, _ = delta_image(-c, ap)
    np.testing.assert_allclose(near[::-1, ::-1], far, atol=1e-5 * far.max())
    assert np.abs(near - far).max() > 0.5 * far.max()  # and a pentagon is not centrally symmetric
    # rotation 0 puts a vertex at 180 degrees: far (c > 0) reaches R to the left, R cos 36 to the right
    pl = float(np.median(far[m - 2:m + 3, m - 2:m + 3]))
    R = c / 2
    assert half_max_radius(far, m, pl, np.pi) == pytest.approx(R, abs=0.5)
    assert half_max_radius(far, m, pl, 0.0) == pytest.approx(R * np.cos(np.pi / 5), abs=0.5)


def test_aperture_rotation_turns_the_shape():
    ap0, ap1 = synthdof.Aperture(5, 0.0), synthdof.Aperture(5, 0.4)
    o0, m = delta_image(30, ap0)
    o1, _ = delta_image(30, ap1)
    # o0 turned 0.4 rad counter-clockwise (as seen, y up) matches o1; turned clockwise it does not
    l1 = lambda a, b: np.abs(a - b).sum() / b.sum()
    ccw = ndi.rotate(o0.astype(np.float64), np.degrees(0.4), reshape=False, order=1)
    cw = ndi.rotate(o0.astype(np.float64), -np.degrees(0.4), reshape=False, order=1)
    assert l1(ccw, o1) < 0.08      # measured 0.037 (edge resampling)
    assert l1(cw, o1) > 0.15       # measured 0.20
    assert l1(o0, o1) > 0.15


def test_aperture_vertices_follow_the_blade_convention():
    v = synthdof.Aperture(6).vertices()
    # image coordinates (y down): a vertex straight up (0, -1) and one straight down (0, 1)
    assert any(np.allclose(p, (0, -1), atol=1e-12) for p in v)
    assert any(np.allclose(p, (0, 1), atol=1e-12) for p in v)
    np.testing.assert_allclose(np.hypot(v[:, 0], v[:, 1]), 1.0)


def test_from_image_disk_matches_circle():
    yy, xx = np.mgrid[:301, :301]
    mask = (np.hypot(yy - 150, xx - 150) <= 150.5).astype(np.float32)
    ap = synthdof.Aperture.from_image(mask)
    for c in (7, 30, -60):
        a, _ = delta_image(c, ap)
        b, _ = delta_image(c)
        assert np.abs(a - b).sum() < 0.01          # measured <= 0.004 of the unit total
        assert np.abs(a - b).max() < 0.08 * b.max()


def test_from_image_uses_the_mask_shape():
    # a wide rectangle mask: the larger side maps to the diameter, so c = 20 gives 20 x 10 px
    mask = np.zeros((50, 100))
    mask[:, :] = 1.0
    o, m = delta_image(20, synthdof.Aperture.from_image(mask))
    # widths from the profiles through the middle (edges fall on pixel centres: half pixels)
    assert o[m].sum() / o.max() == pytest.approx(20.0, abs=0.05)
    assert o[:, m].sum() / o.max() == pytest.approx(10.0, abs=0.05)
    assert o.sum() == pytest.approx(1.0, rel=1e-5)


# ---- flat fields and energy -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 128), (128, 64), (64, 64)])
@pytest.mark.parametrize("c", [0.5, 3.0, 15.0, 40.0, -70.0, 200.0])
@pytest.mark.parametrize("blades", [0, 4, 6])
def test_constant_image_stays_constant_divisible_sizes(shape, c, blades):
    img = np.full(shape + (3,), 0.7, np.float32)
    ap = synthdof.Aperture(blades)
    s = synthdof.scatter(img, full(shape, c), aperture=ap)
    g = synthdof.gather(img, full(shape, c), aperture=ap)
    assert np.abs(s - 0.7).max() <= 1e-4
    assert np.abs(g - 0.7).max() <= 1e-4


@pytest.mark.parametrize("shape", [(67, 45), (45, 17), (3, 200), (65, 65), (1, 1), (1, 9)])
@pytest.mark.parametrize("c", [0.5, 3.0, 9.5, 15.0, 25.0, -34.0])
@pytest.mark.parametrize("blades", [0, 6])
def test_constant_image_stays_constant_other_sizes(shape, c, blades):
    # other sizes, CoC up to 34 px (full-resolution and 2x levels)
    img = np.full(shape, 0.7, np.float32)
    ap = synthdof.Aperture(blades)
    assert np.abs(synthdof.scatter(img, full(shape, c), aperture=ap) - 0.7).max() <= 1e-4
    assert np.abs(synthdof.gather(img, full(shape, c), aperture=ap) - 0.7).max() <= 1e-4


@pytest.mark.parametrize("blades", [0, 5, 6])
@pytest.mark.parametrize("cmax", [4.0, 16.0, 100.0])
def test_energy_preserved(blades, cmax, small_rng):
    H, W = 83, 131
    img = (small_rng.random((H, W, 3)) ** 3 * 10).astype(np.float32)
    coc = small_rng.uniform(-cmax, cmax, (H, W)).astype(np.float32)
    out = synthdof.scatter(img, coc, aperture=synthdof.Aperture(blades))
    np.testing.assert_allclose(out.sum((0, 1), dtype=np.float64), img.sum((0, 1), dtype=np.float64), rtol=1e-5)
    assert out.min() >= -1e-6 * img.max()


def test_sharp_pixels_stay_put(small_rng):
    img = small_rng.random((30, 40, 3)).astype(np.float32)
    coc = small_rng.uniform(-0.9, 0.9, (30, 40)).astype(np.float32)  # all within one pixel
    np.testing.assert_allclose(synthdof.scatter(img, coc), img, rtol=1e-6, atol=1e-6)


def test_gather_leaks_scatter_does_not():
    """A sharp highlight next to a blurred region: gather lets the blurred pixels pull the highlight
    in (more light out than in); scatter keeps both the total and the highlight's place."""
    H, W = 64, 96
    img = np.full((H, W), 0.1, np.float32)
    img[32, 47] = 100.0
    coc = np.zeros((H, W), np.float32)
    coc[:, 48:] = 20.0
    total = img.sum(dtype=np.float64)
    s = synthdof.scatter(img, coc)
    g = synthdof.gather(img, coc)
    assert s.sum(dtype=np.float64) == pytest.approx(total, rel=1e-5)
    assert g.sum(dtype=np.float64) > 1.05 * total
    assert s[:, 49:].max() < 0.11            # the sharp highlight does not spread into the blur
    assert g[:, 48:].max() > 0.3             # gather smears it over the blurred side


# ---- smoothness in the CoC --------------------------------------------------------------------------

@pytest.mark.parametrize("c", [0.6, 1.0, 2.37, 5.0, 8.41, 12.0, 16.8, 16.83, 24.0, 33.6, 47.0, 67.25, 100.3])
def test_subpixel_coc_change_is_smooth(c):
    n = 181
    img = np.zeros((n, n), np.float32)
    img[90, 90] = 1.0
    a = synthdof.scatter(img, full(img.shape, c))
    b = synthdof.scatter(img, full(img.shape, c + 0.01))
    l1 = np.abs(a - b).sum(dtype=np.float64)
    # growing a disk's diameter by dc moves ~2 dc / R of the weight: L1 rate 2/R per unit of c
    R = c / 2
    assert l1 <= 0.01 * 2.5 / R
    if c + 0.01 > 1.0:  # a shape inside its own pixel (c <= 1) leaves the output unchanged
        assert l1 > 0
    else:
        assert l1 == 0


def test_subpixel_coc_change_random_image(small_rng):
    img = small_rng.random((64, 80, 3)).astype(np.float32)
    coc = small_rng.uniform(-50, 50, (64, 80)).astype(np.float32)
    a = synthdof.scatter(img, coc)
    b = synthdof.scatter(img, coc + np.float32(0.01))
    assert 0 < np.abs(a - b).max() <= 0.05 * img.max()
    assert np.abs(a - b).mean() <= 2e-3 * img.mean()


# ---- determinism, threads, channels -----------------------------------------------------------------

@pytest.fixture(scope="module")
def big_random():
    rng = np.random.default_rng(7)
    H, W = 300, 220
    img = (rng.random((H, W, 3)) ** 4 * 5).astype(np.float32)
    coc = rng.uniform(-80, 80, (H, W)).astype(np.float32)
    return img, coc


@pytest.mark.skipif(not synthdof.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("fn", [synthdof.scatter, synthdof.gather], ids=["scatter", "gather"])
@pytest.mark.parametrize("blades", [0, 5])
def test_thread_count_invariance(fn, blades, big_random):
    img, coc = big_random
    ap = synthdof.Aperture(blades)
    one = fn(img, coc, aperture=ap, num_threads=1)
    two = fn(img, coc, aperture=ap, num_threads=2)
    three = fn(img, coc, aperture=ap, num_threads=3)  # more threads than cores is allowed
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)


@pytest.mark.parametrize("fn", [synthdof.scatter, synthdof.gather], ids=["scatter", "gather"])
def test_run_to_run_determinism(fn, big_random):
    img, coc = big_random
    a = fn(img, coc)
    b = fn(img, coc)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("C", range(1, 8))
@pytest.mark.parametrize("fn", [synthdof.scatter, synthdof.gather], ids=["scatter", "gather"])
def test_channel_counts_agree_with_per_channel_calls(C, fn, small_rng):
    H, W = 50, 61
    img = small_rng.random((H, W, C)).astype(np.float32)
    small = small_rng.uniform(-12, 12, (H, W)).astype(np.float32)
    large = small_rng.uniform(-80, 80, (H, W)).astype(np.float32)
    # full-resolution path: channels never interact, results are bit-identical
    out = fn(img, small)
    assert out.shape == img.shape and out.dtype == np.float32
    per = np.stack([fn(np.ascontiguousarray(img[:, :, k]), small) for k in range(C)], -1)
    np.testing.assert_array_equal(out, per)
    # coarse levels merge a block's sources at their light centroid, taken over the channels of
    # a group of 4: per-channel calls differ slightly (0.4 % of the peak measured) ...
    out = fn(img, large)
    per = np.stack([fn(np.ascontiguousarray(img[:, :, k]), large) for k in range(C)], -1)
    assert np.abs(out - per).max() <= 0.02 * out.max()
    # ... but a call equals its groups of 4 channels called separately, bit for bit
    groups = np.concatenate([fn(np.ascontiguousarray(img[:, :, g:g + 4]), large) for g in range(0, C, 4)], -1)
    np.testing.assert_array_equal(out, groups)


def test_gray_image_shape_kept(small_rng):
    img = small_rng.random((20, 23)).astype(np.float32)
    coc = small_rng.uniform(-LEVEL0_COC, LEVEL0_COC, (20, 23)).astype(np.float32)
    out = synthdof.scatter(img, coc)
    assert out.shape == (20, 23)
    np.testing.assert_allclose(out, synthdof.scatter(img[:, :, None], coc)[:, :, 0], rtol=0, atol=0)
    ref = ref_scatter(img, coc)
    assert np.abs(out - ref).mean() <= 0.025 * ref.mean()


def test_out_argument_is_filled_and_returned(small_rng):
    img = small_rng.random((20, 23, 3)).astype(np.float32)
    coc = small_rng.uniform(-30, 30, (20, 23)).astype(np.float32)
    out = np.full_like(img, np.nan)
    for fn in (synthdof.scatter, synthdof.gather):
        r = fn(img, coc, out=out)
        assert r is out
        np.testing.assert_array_equal(out, fn(img, coc))
