"""synthdof.refine: network and sensor depth made render-ready (analytic cases and the ground truth)."""
import numpy as np
import pytest

import synthdof
from conftest import GT_SCENES, load_scorer


def two_surfaces(H=64, W=96, edge=48):
    """Left half a red near surface (2 m), right half a blue far one (6 m), split at column `edge`."""
    image = np.zeros((H, W, 3), np.float32)
    image[:, :edge] = (0.6, 0.1, 0.1)
    image[:, edge:] = (0.1, 0.1, 0.6)
    depth = np.full((H, W), 6.0, np.float32)
    depth[:, :edge] = 2.0
    return image, depth


def blur_rows(x, radius):
    k = np.ones(2 * radius + 1) / (2 * radius + 1)
    p = np.pad(x, ((0, 0), (radius, radius)), mode="edge")
    return np.stack([np.convolve(r, k, "valid") for r in p]).astype(np.float32)


def test_hole_is_filled_from_its_own_surface():
    image, depth = two_surfaces()
    holey = depth.copy()
    holey[20:40, 40:48] = np.nan  # on the near surface, touching the edge
    holey[5:9, 60:70] = 0.0  # on the far surface
    holey[50:52, 10:12] = -1.0
    holey[30:32, 70:72] = 1e-45  # denormal: 1 / depth overflows
    out, m = synthdof.refine(image, holey)
    assert m is None
    assert np.isfinite(out).all() and (out > 0).all()
    np.testing.assert_allclose(out[20:40, 40:48], 2.0, rtol=0.02)
    np.testing.assert_allclose(out[5:9, 60:70], 6.0, rtol=0.02)
    np.testing.assert_allclose(out[50:52, 10:12], 2.0, rtol=0.02)
    np.testing.assert_allclose(out[30:32, 70:72], 6.0, rtol=0.02)
    valid = np.isfinite(holey) & (holey > 1e-30)
    np.testing.assert_array_equal(out[valid], depth[valid])  # exact valid depth untouched


def test_holes_of_a_large_frame_are_filled_on_cells_from_their_own_surface():
    # from a short side of 1400 px the holes are filled on cells (refine's _fill_on_cells): the
    # same surfaces kept apart as on the pixels, a sensor's invalid band beside the step and
    # scattered dropouts included, and the same bits on 1 and 2 threads
    from synthdof import _refine

    H, W, edge = 1400, 1600, 801  # the step inside a cell: its centre pixel in the band, its depth beyond
    assert min(H, W) // _refine.HOLE_CELL_SHORT_SIDE >= 2  # the case runs on cells
    image, depth = two_surfaces(H, W, edge)
    image[:, :edge, 1] += np.linspace(0, 0.2, edge, dtype=np.float32)  # a shaded near surface
    holey = depth.copy()
    holey[:, edge - 4:edge] = np.nan  # the near side's 4 px beside the step, as stereo leaves it
    holey[np.random.default_rng(2).random(depth.shape) < 0.1] = 0.0  # scattered dropouts
    holey[600:700, 100:300] = np.inf  # a large hole inside the near surface
    outs = [synthdof.refine(image, holey, num_threads=nt)[0] for nt in (1, 2)]
    np.testing.assert_array_equal(outs[0], outs[1])
    out = outs[0]
    valid = np.isfinite(holey) & (holey > 0)
    np.testing.assert_array_equal(out[valid], depth[valid])  # valid depth untouched
    np.testing.assert_allclose(out[~valid], depth[~valid], rtol=0.02)  # every hole from its own side
    np.testing.assert_allclose(out[:, edge - 4:edge], 2.0, rtol=0.02)


def test_a_hole_walled_in_by_edges_is_filled_too():
    image = np.full((64, 64, 3), 0.2, np.float32)
    image[20:26, 20:26] = 1.0  # a bright patch whose depth is all missing
    depth = np.full((64, 64), 3.0, np.float32)
    depth[20:26, 20:26] = np.nan
    out, _ = synthdof.refine(image, depth)
    np.testing.assert_allclose(out[20:26, 20:26], 3.0, rtol=0.01)
    noisy = (depth * (1 + 0.02 * np.random.default_rng(1).standard_normal(depth.shape))).astype(np.float32)
    out, _ = synthdof.refine(image, noisy)  # the same through the noise smoothing
    assert np.isfinite(out).all() and np.abs(out[20:26, 20:26] / 3.0 - 1).max() < 0.05


def test_user_invalid_mask_is_filled_too():
    image, depth = two_surfaces()
    wrong = depth.copy()
    wrong[10:20, 60:70] = 0.5  # a sensor's known-bad pixels holding garbage
    out, _ = synthdof.refine(image, wrong, invalid=wrong == 0.5)
    np.testing.assert_allclose(out[10:20, 60:70], 6.0, rtol=0.02)


def test_blurred_step_beside_the_matte_becomes_a_step_again():
    image, depth = two_surfaces()
    matte = np.zeros(depth.shape, np.float32)
    matte[:, :48] = 1.0
    blurred = 1.0 / blur_rows(1.0 / depth, 4)  # a network's edge: 9 px wide, in disparity
    assert abs(blurred[0, 50] - 6.0) > 0.5  # the background beside the subject took its depth
    out, m = synthdof.refine(image, blurred, matte=matte, edge_width=6)  # wider than the blur
    np.testing.assert_array_equal(m, matte)  # a hard matte has no ramp to re-estimate
    np.testing.assert_allclose(out[:, :48], 2.0, rtol=0.01)
    np.testing.assert_allclose(out[:, 48:], 6.0, rtol=0.01)


def test_sharpen_steps_makes_a_blurred_rod_a_step_and_leaves_exact_depth_alone():
    # a near bar (2 m) 8 px wide in front of a far wall (6 m), no matte: a network blurs its edges
    image, depth = two_surfaces()
    image[:] = (0.1, 0.1, 0.6)
    image[:, 44:52] = (0.6, 0.1, 0.1)
    depth[:] = 6.0
    depth[:, 44:52] = 2.0
    depth[:, :20] = 5.0 + np.linspace(0, 1, 20, dtype=np.float32)  # a slanted part meeting the wall
    blurred = 1.0 / blur_rows(1.0 / depth, 3)
    plain, _ = synthdof.refine(image, blurred, edge_width=4, sharpen_steps=False)
    sharp, _ = synthdof.refine(image, blurred, edge_width=4, sharpen_steps=True)
    np.testing.assert_array_equal(plain, blurred)  # off: nothing away from a matte changes
    rim = np.zeros(depth.shape, bool)
    rim[:, [43, 44, 51, 52]] = True  # the ramps' ends may keep a little of the blur
    err_plain = np.abs(1 / plain - 1 / depth)[:, 24:][~rim[:, 24:]]
    err_sharp = np.abs(1 / sharp - 1 / depth)[:, 24:][~rim[:, 24:]]
    assert err_plain.max() > 0.05 and err_sharp.max() < 0.01 * err_plain.max() + 1e-6
    # the slanted part is a plane in disparity only approximately, and where it meets the flat
    # wall (a crease, not a step) it bends too: 8 px from there it is left as it is
    np.testing.assert_array_equal(sharp[:, :12], blurred[:, :12])
    exact, _ = synthdof.refine(image, depth, edge_width=4, sharpen_steps=True)
    np.testing.assert_array_equal(exact, depth)
    with pytest.raises(TypeError, match="sharpen_steps"):
        synthdof.refine(image, depth, sharpen_steps="yes")


def test_sharp_depth_beside_the_matte_keeps_its_lights_and_curved_rim():
    # A renderer's depth: a round subject whose disparity falls towards its rim (a head), on a
    # wall with small lights in front of it right beside the silhouette. Depth this sharp agrees
    # with the matte, so nothing in it is replaced, though the rim and the lights stray far from
    # the depth continued from beyond the band.
    H, W = 96, 128
    yy, xx = np.mgrid[:H, :W]
    r = np.hypot(yy - 48, xx - 64) / 30
    inside = r < 1
    disp = np.where(inside, 0.5 - 0.05 * r ** 4, 0.2).astype(np.float32)  # 10 % nearer at the centre
    image = np.where(inside[..., None], (0.8, 0.6, 0.5), (0.3, 0.4, 0.3)).astype(np.float32)
    for y, x in ((48, 96), (46, 97), (17, 60), (80, 40)):  # beside the rim (4 of them within 3 px)
        disp[y:y + 2, x:x + 2] = 0.3
        image[y:y + 2, x:x + 2] = 5.0
    matte = inside.astype(np.float32)
    assert abs(disp[48, 95] / 0.5 - 1) > 0.09  # the rim lies far from the centre's depth
    out, m = synthdof.refine(image, 1 / disp, matte=matte, edge_width=6)
    np.testing.assert_array_equal(m, matte)
    np.testing.assert_allclose(1 / out, disp, rtol=1e-6)
    # the same depth blurred across the silhouette is continued from each side, lights or not
    blurred = blur_rows(disp, 3)
    out, _ = synthdof.refine(image, 1 / blurred, matte=matte, edge_width=6, sharpen_steps=False)
    row = 1 / out[48]
    np.testing.assert_allclose(row[95:100], 0.2, rtol=0.01)  # no longer pulled by the subject
    assert abs(blurred[48, 95] / 0.2 - 1) > 0.1
    # with the steps sharpened first, the pixel the subject pulled is continued from the wall, and
    # the light's blurred pixels keep at most the blur they had (towards the light, not the subject)
    out, _ = synthdof.refine(image, 1 / blurred, matte=matte, edge_width=6)
    row = 1 / out[48]
    assert abs(row[95] / 0.2 - 1) < 0.01
    assert (np.abs(row[95:100] - 0.2) <= np.abs(blurred[48, 95:100] - 0.2) + 1e-6).all()


def test_a_rod_in_front_of_the_subject_that_the_matte_leaves_out_keeps_its_depth():
    # exact depth: a thin rod at 0.5 m crosses the subject (2 m) and the wall (6 m); the matte
    # is the subject's alone. The rod lies beyond both sides' depths, not between them: it is
    # no blend across the silhouette and is not continued from either side.
    image, depth = two_surfaces()
    matte = (depth < 3).astype(np.float32)
    image[30:33] = (0.9, 0.9, 0.9)
    depth[30:33] = 0.5
    matte[30:33] = 0.0
    out, m = synthdof.refine(image, depth, matte=matte, edge_width=6)
    np.testing.assert_array_equal(m, matte)
    np.testing.assert_array_equal(out, depth)


def test_a_light_beside_a_white_surface_keeps_its_own_depth_when_upsampled():
    # a light (40x white, 5 m) two pixels from a near white bar (1 m) on a dark wall (6 m),
    # depth at 1/4 resolution: clipped to white, the light and the bar look alike; the light
    # keeps its own samples' depth instead of taking the bar's
    H, W = 64, 96
    image = np.full((H, W, 3), 0.05, np.float32)
    image[:, 36:44] = 0.85
    image[30:36, 46:51] = 40.0
    small = np.full((H // 4, W // 4), 6.0, np.float32)
    small[:, 9:11] = 1.0
    small[7:9, 11:13] = 5.0  # the samples on the light (at pixels 30 and 34, 46 and 50)
    out, _ = synthdof.refine(image, small)
    np.testing.assert_allclose(out[32:35, 46:50], 5.0, rtol=0.05)
    np.testing.assert_allclose(out[:, 37:43], 1.0, rtol=0.01)


def test_segmentation_ramp_takes_its_alpha_from_the_colours():
    image, _ = two_surfaces()
    # the true boundary is at 48: a pixel a quarter covered by the subject at column 48
    image[:, 48] = 0.25 * image[0, 0] + 0.75 * image[0, -1]
    seg = np.zeros(image.shape[:2], np.float32)
    seg[:, :45] = 1.0
    seg[:, 45:52] = np.linspace(1, 0, 9)[1:-1]  # a wide soft ramp as a low-res mask gives
    depth = np.where(np.arange(96) < 48, 2.0, 6.0).astype(np.float32)[None].repeat(64, 0)
    _, m = synthdof.refine(image, depth, matte=seg, edge_width=4)  # sides searched within 2 x 4 px
    np.testing.assert_allclose(m[:, 45:48], 1.0, atol=0.02)
    np.testing.assert_allclose(m[:, 48], 0.25, atol=0.02)
    np.testing.assert_allclose(m[:, 49:52], 0.0, atol=0.02)


def test_an_alpha_matte_that_agrees_with_the_colours_is_kept():
    image, depth = two_surfaces()
    F, B = image[0, 0].copy(), image[0, -1].copy()
    alpha = np.zeros(depth.shape, np.float32)
    alpha[:, :46] = 1.0
    alpha[:, 46:50] = (0.8, 0.6, 0.3, 0.1)  # a soft edge, as a matting model gives
    image[:, 46:50] = alpha[:, 46:50, None] * F + (1 - alpha[:, 46:50, None]) * B
    _, m = synthdof.refine(image, depth, matte=alpha)
    np.testing.assert_array_equal(m, alpha)
    _, m = synthdof.refine(image, depth, matte=alpha, refine_matte=False)
    np.testing.assert_array_equal(m, alpha)
    # forced, the re-estimate from the colours finds the same alpha (to 0.03: the colours are
    # compared sRGB-encoded, where a linear blend is slightly bent)
    _, m = synthdof.refine(image, depth, matte=alpha, refine_matte=True)
    np.testing.assert_allclose(m, alpha, atol=0.03)


def hairy_subject(H=64, W=96):
    """A subject (left of column 40) with 1-px hair strands of alpha 0.4 reaching 12 px into
    the background, their colour (dark) unlike both sides'; and the alpha, exact coverage."""
    image, depth = two_surfaces(H, W, edge=40)
    alpha = np.zeros((H, W), np.float32)
    alpha[:, :40] = 1.0
    alpha[:, 40] = 0.5
    for y in range(4, H - 4, 4):
        alpha[y, 41:53] = 0.4
    hair = np.array((0.02, 0.02, 0.02), np.float32)
    strand = alpha[..., None] * hair + (1 - alpha[..., None]) * image
    image = np.where((np.arange(W) > 40)[None, :, None], strand, image).astype(np.float32)
    return image, depth, alpha


def test_auto_keeps_an_alpha_matte_with_strands_and_re_estimates_a_mask():
    # the strands' colour is neither side's: the colour line disagrees with their alpha, but a
    # mask (resized from a lower resolution, no strands) has no such thin soft structure
    image, depth, alpha = hairy_subject()
    _, m = synthdof.refine(image, depth, matte=alpha)
    np.testing.assert_array_equal(m, alpha)
    seg = np.zeros_like(alpha)
    seg[:, :38] = 1.0
    seg[:, 38:43] = (0.8, 0.6, 0.4, 0.2, 0.05)  # a hard mask enlarged: smooth and wide
    _, m = synthdof.refine(image, depth, matte=seg, edge_width=4)
    rows = np.arange(64) % 4 != 0  # those without a strand: re-estimated from the colours
    np.testing.assert_allclose(m[rows, 38:40], 1.0, atol=0.02)
    np.testing.assert_allclose(m[rows, 40:43], 0.0, atol=0.02)


def _srgb_to_linear(c):
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def test_a_mask_of_dark_strands_keeps_them_and_its_coverage_error_falls():
    # skin (left of column 40) on brick, strands of alpha 0.7 reaching 12 px out, darker than
    # both: the segmentation mask (alpha > 0.5 at half resolution, enlarged) blurs them to
    # 0.38. Their colour is no blend of skin and brick: the colour line would set them to 0;
    # they keep the mask's coverage, while the rows without strands get a sharp edge
    H, W = 64, 96
    skin, brick, hair = (_srgb_to_linear(c) for c in ((0.8, 0.6, 0.5), (0.5, 0.2, 0.15), (0.05, 0.04, 0.03)))
    alpha = np.zeros((H, W), np.float32)
    alpha[:, :40] = 1.0
    strands = np.zeros((H, W), bool)
    strands[4:H - 4:8, 40:52] = True
    alpha[strands] = 0.7
    fg = np.where((np.arange(W) < 40)[None, :, None], skin, hair)
    image = (alpha[..., None] * fg + (1 - alpha[..., None]) * brick).astype(np.float32)
    small = (alpha > 0.5).astype(np.float32).reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3))
    seg = bilinear_enlarged(small, 2)
    _, m = synthdof.refine(image, np.full((H, W), 3.0, np.float32), matte=seg)
    assert seg[strands].min() > 0.05 and np.abs(seg - alpha)[strands].mean() > 0.3
    np.testing.assert_array_equal(m[strands], seg[strands])
    plain = (seg[:, 44:] <= 0.02).all(axis=1)  # rows the strands' blur does not reach
    assert plain.sum() >= 16
    np.testing.assert_allclose(m[plain][:, 38:40], 1.0, atol=0.02)
    np.testing.assert_allclose(m[plain][:, 40:43], 0.0, atol=0.02)
    ramp = (seg > 0.02) & (seg < 0.98)
    assert np.abs(m - alpha)[ramp].mean() < np.abs(seg - alpha)[ramp].mean() - 0.02


def test_the_mask_s_outside_gains_coverage_but_never_becomes_confident():
    # the mask's edge lies a pixel inside the subject's: the pixel it left out (0.4) has the
    # subject's colour and gains its coverage up to 0.9, below the render's confident level, so
    # the render takes its subject CoC from the subject's interior, not from its own depth
    image, depth = two_surfaces()
    seg = np.zeros(depth.shape, np.float32)
    seg[:, :46] = 1.0
    seg[:, 46:50] = (0.8, 0.4, 0.2, 0.05)  # the subject (columns < 48) reaches 47
    _, m = synthdof.refine(image, depth, matte=seg, edge_width=4)
    np.testing.assert_allclose(m[:, 46], 1.0, atol=0.02)
    np.testing.assert_allclose(m[:, 47], 0.9)
    np.testing.assert_allclose(m[:, 48:50], 0.0, atol=0.02)


def test_low_resolution_depth_is_upsampled_to_the_image():
    image, depth = two_surfaces(H=64, W=96)
    small = depth[::4, ::4]
    out, _ = synthdof.refine(image, small)
    assert out.shape == (64, 96)
    np.testing.assert_allclose(out[:, :40], 2.0, rtol=1e-5)
    np.testing.assert_allclose(out[:, 56:], 6.0, rtol=1e-5)


def test_upsampling_keeps_thin_structures_the_image_shows():
    H, W = 64, 96
    image = np.full((H, W, 3), (0.1, 0.1, 0.6), np.float32)
    image[:, 40:44] = (0.9, 0.8, 0.2)  # a thin post, one low-resolution sample wide
    small = np.full((H // 4, W // 4), 6.0, np.float32)
    small[:, 10] = 2.0  # the sample on the post
    out, _ = synthdof.refine(image, small)
    np.testing.assert_allclose(out[:, 40:44], 2.0, rtol=0.02)
    np.testing.assert_allclose(out[:, 30:40], 6.0, rtol=0.02)
    np.testing.assert_allclose(out[:, 45:56], 6.0, rtol=0.02)
    # bilinear upsampling would smear the post over 8 columns, half of them the wall's
    bilinear_at_39 = 6.0 + (2.0 - 6.0) * (1 - abs((39 + 0.5) / 4 - 0.5 - 10))
    assert abs(bilinear_at_39 - 6.0) > 1.0


def bilinear_enlarged(small, k):
    """`small` enlarged k times by linear interpolation between its sample centres (the edge
    samples held), as an image library resizes a map."""
    h, w = small.shape
    ys = np.clip((np.arange(h * k) + 0.5) / k - 0.5, 0, h - 1)
    xs = np.clip((np.arange(w * k) + 0.5) / k - 0.5, 0, w - 1)
    rows = np.stack([np.interp(ys, np.arange(h), small[:, j]) for j in range(w)], 1)
    return np.stack([np.interp(xs, np.arange(w), r) for r in rows]).astype(np.float32)


@pytest.mark.parametrize("k", [4, 6])
def test_depth_resized_to_the_image_is_upsampled_from_its_samples(k):
    # the thin post of the test above, but its low-resolution depth bilinearly resized to the
    # image first (as users often do): refine takes it back to its samples and upsamples those
    # guided by the image, so the post keeps its edges instead of the ramps the resize gave it
    H, W = 16 * k, 24 * k
    image = np.full((H, W, 3), (0.1, 0.1, 0.6), np.float32)
    image[:, 10 * k:11 * k] = (0.9, 0.8, 0.2)
    small = np.full((16, 24), 6.0, np.float32)
    small[:, 10] = 2.0
    resized = bilinear_enlarged(small, k)
    assert abs(resized[0, 10 * k] - 2.0) > 0.5  # the ramp reaches into the post
    out, _ = synthdof.refine(image, resized)
    direct, _ = synthdof.refine(image, small)
    np.testing.assert_allclose(out, direct, rtol=1e-5)
    np.testing.assert_allclose(out[:, 10 * k:11 * k], 2.0, rtol=0.02)
    # a map that only looks smooth (no sample grid) is taken as it is (but for its blurred steps,
    # which sharpen_steps would sharpen)
    smooth = resized + np.float32(0.01) * np.sin(np.arange(W) * 0.7)[None]
    out, _ = synthdof.refine(image, smooth, sharpen_steps=False)
    np.testing.assert_allclose(out, smooth, rtol=1e-6)


def plain_enlargement(d, axis):
    """The factor search of _enlargement without its pruning: every factor from the largest down."""
    from synthdof._refine import RESIZE_SHARE, _knots
    n = d.shape[axis]
    bend = np.abs(np.diff(d, 2, axis=axis)).sum(axis=1 - axis)
    for scale in sorted({n / m for m in range(2, n // 3 + 1)} | set(range(3, 17)), reverse=True):
        x = _knots(n, scale)
        at = np.zeros(n, bool)
        at[np.floor(x).astype(np.intp)] = True
        at[np.minimum(np.ceil(x).astype(np.intp), n - 1)] = True
        if bend[at[1:-1]].sum() >= RESIZE_SHARE * bend.sum():
            return scale
    return None


@pytest.mark.parametrize("k", [3, 4.5, 6, 8, 16])
def test_the_enlargement_search_finds_what_trying_every_factor_finds(k):
    # _enlargement tests the heaviest bends against all factors at once before it tries factors
    # one by one: the factor found must be the one trying every factor finds, for enlargements
    # (of smooth and rough maps) and for maps that are none (blurred, noisy)
    from scipy import ndimage

    from synthdof._refine import _enlargement
    rng = np.random.default_rng(int(k * 10))
    small_h, small_w = 23, 31
    H, W = int(small_h * k), int(small_w * k)
    rough = rng.random((small_h, small_w)).astype(np.float32) + 1
    smooth = np.cumsum(rng.random((small_h, small_w)), 1).astype(np.float32)
    maps = []
    for small in (rough, smooth):
        ys = np.clip((np.arange(H) + 0.5) * small_h / H - 0.5, 0, small_h - 1)
        xs = np.clip((np.arange(W) + 0.5) * small_w / W - 0.5, 0, small_w - 1)
        rows = np.stack([np.interp(ys, np.arange(small_h), small[:, j]) for j in range(small_w)], 1)
        big = np.stack([np.interp(xs, np.arange(small_w), r) for r in rows])
        maps += [big, big + 0.01 * rng.standard_normal(big.shape), ndimage.gaussian_filter(big, 1.5)]
    found = 0
    for d in maps:
        for axis in (0, 1):
            want = plain_enlargement(d, axis)
            assert _enlargement(d, axis) == want
            found += want is not None
    assert found >= 4  # the enlargements are found (on both axes)


def test_depth_at_one_eighth_is_continued_from_each_side_over_eight_pixels():
    # the image cannot tell the two sides apart (both grey): only the matte places the edge,
    # and depth at 1/8 resolution blends them over 8 pixels; the band continued from each side
    # of the matte is as wide as that (the default band at 96 px wide is 2 px)
    image = np.full((64, 96, 3), 0.3, np.float32)
    small = np.full((8, 12), 6.0, np.float32)
    small[:, :6] = 2.0
    matte = np.zeros((64, 96), np.float32)
    matte[:, :48] = 1.0
    # (what lies beyond the band is the upsampling's own blend, within 7 % of each side here)
    out, _ = synthdof.refine(image, small, matte=matte)
    np.testing.assert_allclose(out[:, 40:48], 2.0, rtol=0.03)
    np.testing.assert_allclose(out[:, 48:56], 6.0, rtol=0.08)
    out, _ = synthdof.refine(image, small, matte=matte, edge_width=2)  # as asked
    assert np.abs(out[:, 48:56] / 6.0 - 1).max() > 0.3


def test_noisy_sensor_depth_is_smoothed_along_surfaces_not_across():
    image, depth = two_surfaces()
    rng = np.random.default_rng(3)
    noisy = (depth * (1 + 0.02 * rng.standard_normal(depth.shape))).astype(np.float32)
    out, _ = synthdof.refine(image, noisy)
    for sl, z in ((np.s_[:, :44], 2.0), (np.s_[:, 52:], 6.0)):
        assert np.std(out[sl] / z) < 0.25 * np.std(noisy[sl] / z)
        np.testing.assert_allclose(out[sl].mean(), z, rtol=0.005)
    # the edge stays where the image has it
    assert out[:, 47].max() < 2.2 and out[:, 48].min() > 5.4


def test_clean_depth_is_left_alone():
    image, depth = two_surfaces()
    out, _ = synthdof.refine(image, depth)
    np.testing.assert_array_equal(out, depth)


def test_disparity_in_disparity_out():
    image, depth = two_surfaces()
    disp = (1.0 / depth).astype(np.float32)
    disp[3:6, 70:80] = np.nan
    out, _ = synthdof.refine(image, disp, disparity=True)
    np.testing.assert_allclose(out[3:6, 70:80], 1 / 6.0, rtol=0.02)


def test_threads_do_not_change_a_bit():
    rng = np.random.default_rng(5)
    image = rng.random((70, 90, 3), dtype=np.float32)
    depth = (1 + 5 * rng.random((70, 90))).astype(np.float32)
    depth[rng.random((70, 90)) < 0.05] = np.nan
    matte = np.clip(rng.random((70, 90)) * 1.4 - 0.2, 0, 1).astype(np.float32)
    a = synthdof.refine(image, depth, matte=matte, num_threads=1)
    b = synthdof.refine(image, depth, matte=matte, num_threads=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=np.full((8, 12), np.nan, np.float32)), "depth: no valid pixel"),
    (dict(depth=np.ones((8, 8), np.float32)), "depth: shape"),
    (dict(depth=np.ones((16, 24), np.float32)), "depth: shape"),
    (dict(depth=np.ones((8, 12), np.float32), matte=np.ones((8, 12), np.float32) * 2), "matte: values"),
    (dict(depth=np.ones((8, 12), np.float32), matte=np.full((12, 8), 1.5, np.float32).T),
     r"matte: values must lie in \[0, 1\], got \[1.5, 1.5\]"),
    (dict(depth=np.ones((8, 12), np.float32), matte=np.where(np.eye(12, 8) > 0, np.nan, 0.5).astype(np.float32).T),
     r"matte: contains NaN or inf \(first at index \(0, 0\)\)"),
    (dict(depth=np.ones((8, 12), np.float32), matte=np.ones((4, 6), np.float32)), "matte: shape"),
    (dict(depth=np.ones((8, 12), np.float32), invalid=np.zeros((4, 4), bool)), "invalid: shape"),
    (dict(depth=np.ones((8, 12), np.float32), edge_width=-1), "edge_width"),
    (dict(depth=np.ones((8, 12), np.float32), edge_width="wide"), "edge_width"),
    (dict(depth=np.ones((8, 12), np.float32), refine_matte="yes"), "refine_matte"),
])
def test_bad_input_names_the_argument(kwargs, match):
    image = np.zeros((8, 12, 3), np.float32)
    with pytest.raises(ValueError, match=match):
        synthdof.refine(image, **kwargs)


def test_coc_from_disparity_rejects_holes_and_points_to_refine():
    disp = np.array([[0.2, np.inf, 0.4]], np.float32)
    with pytest.raises(ValueError, match=r"disparity: invalid value inf at row 0, column 1.*refine"):
        synthdof.coc_from_disparity(disp, K=10.0, focus_disparity=0.3)


def test_render_rejects_holes_and_points_to_refine():
    image, depth = two_surfaces()
    depth[3, 4] = np.nan
    lens = synthdof.ThinLens(focal_length_mm=50, f_number=2, focus_distance=2.0)
    with pytest.raises(ValueError, match="depth: .*refine"):
        synthdof.render(image, depth, lens=lens)


# ---- the ground truth with realistic inputs -----------------------------------------------

@pytest.mark.parametrize("scene", GT_SCENES)
def test_exact_inputs_through_refine_are_harmless(scene):
    # the renderer's own depth and alpha: refine may be left on without thinking
    S = load_scorer()
    g, m = S.load(scene)
    plain = S.metrics(S.render_synthdof(g, m), g, m)
    depth, matte = synthdof.refine(g["pinhole"], g["depth"], matte=g["alpha"])
    refined = S.metrics(S.render_synthdof(g, m, depth, matte), g, m)
    for k in ("psnr", "band", "far"):
        assert abs(refined[k] - plain[k]) <= 0.2, (k, refined, plain)
    for k in ("flux", "hl_peak"):
        assert abs(refined[k] / plain[k] - 1) <= 0.005, (k, refined, plain)


# every (recipe, scene) pair meets the bar with refine: band PSNR >= the peer's (Blender
# given the exact CoC) and PSNR >= the peer's - 1 dB
CASES = [(r, s) for r in ("net", "lowres", "sensor") for s in GT_SCENES]


@pytest.mark.parametrize("recipe, scene", CASES)
def test_realistic_inputs_meet_the_bar(recipe, scene):
    S = load_scorer()
    g, m = S.load(scene)
    depth, matte = S.realistic_inputs(g, recipe)
    depth, matte = synthdof.refine(g["pinhole"], depth, matte=matte)
    out = S.render_synthdof(g, m, depth, matte)
    s, peer = S.metrics(out, g, m), S.metrics(g["blender_defocus"], g, m)
    assert 0.97 <= s["flux"] <= 1.03 or abs(s["kept"] - 1) <= 0.01
    assert 0.85 <= s["hl_peak"] <= 1.15
    assert s["band"] >= peer["band"], (s, peer)
    assert s["psnr"] >= peer["psnr"] - 1.0, (s, peer)


# ---- the command line and the batch ----------------------------------------------------------

def _sensor_files(tmp_path):
    """The sample as a user's files: a PNG photo, a cut-out matte, and depth at 1/4 resolution
    with NaN holes, as a sensor gives it."""
    s = synthdof.load_sample()
    synthdof.write_image(tmp_path / "photo.png", s["image"])
    synthdof.write_image(tmp_path / "matte.png", np.round(s["matte"] * 255).astype(np.uint8))
    small = s["depth"].reshape(64, 4, 96, 4).mean(axis=(1, 3)).astype(np.float32)
    small[10:14, 20:30] = np.nan
    small[40, 5] = 0.0
    np.save(tmp_path / "depth.npy", small)
    return s


def _cli(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "synthdof", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_render_refine_takes_sensor_depth(tmp_path):
    s = _sensor_files(tmp_path)
    base = ["render", tmp_path / "photo.png", "--depth", tmp_path / "depth.npy", "--matte",
            tmp_path / "matte.png", "--focal-length", 85, "--f-number", 1.4, "--focus", "auto"]
    r = _cli(*base, "-o", tmp_path / "raw.png")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--refine" in r.stderr, r.stderr
    r = _cli(*base, "--refine", "-o", tmp_path / "out.png", "--save-coc", tmp_path / "coc.npy")
    assert r.returncode == 0, r.stderr
    out = synthdof.read_image(tmp_path / "out.png")
    assert out.shape == s["image"].shape and out.dtype == np.uint8
    coc = np.load(tmp_path / "coc.npy")
    assert coc.shape == s["depth"].shape and np.isfinite(coc).all()
    # the same as refine and render from Python
    d, m = synthdof.refine(s["image"], np.load(tmp_path / "depth.npy"),
                           matte=synthdof.read_matte(tmp_path / "matte.png"))
    lens = synthdof.ThinLens(focal_length_mm=85, f_number=1.4, focus_distance=synthdof.focus_from_matte(d, m))
    np.testing.assert_allclose(coc, lens.coc(d, d.shape[1]), rtol=1e-5, atol=1e-4)


def test_batch_refines_each_input_once(tmp_path, monkeypatch):
    import json

    import synthdof._refine as refine_module

    _sensor_files(tmp_path)
    calls = []
    real = refine_module.refine

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(refine_module, "refine", counting)
    cfg = {"inputs": [{"name": "cam", "image": "photo.png", "depth": "depth.npy", "matte": "matte.png"}],
           "refine": True, "samples_per_input": 3, "seed": 1,
           "lens": {"focal_length_mm": 85, "f_number": [1.4, 4.0], "focus": "auto"}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    synthdof.run_batch(str(tmp_path / "cfg.json"), str(tmp_path / "out"), progress=False)
    assert len(calls) == 1
    assert len(list((tmp_path / "out").glob("cam*.png"))) == 3
    cfg["refine"] = "yes"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(Exception, match="refine"):
        synthdof.run_batch(str(tmp_path / "cfg.json"), str(tmp_path / "out2"), progress=False)


def test_noisy_depth_is_smoothed_on_cells_where_the_band_is_wide():
    # edge_width 32: the noise is averaged onto cells of 4 px, smoothed there and upsampled guided
    # by the image; surfaces come out smooth, and the edge and a post 8 px wide where the image has them
    image, depth = two_surfaces(H=192, W=288, edge=141)  # the edge inside a cell
    image[:, 210:218] = (0.1, 0.6, 0.1)
    depth[:, 210:218] = 3.0
    rng = np.random.default_rng(5)
    noisy = (depth * (1 + 0.02 * rng.standard_normal(depth.shape))).astype(np.float32)
    noisy[rng.random(depth.shape) < 0.01] = np.nan
    out, _ = synthdof.refine(image, noisy, edge_width=32)
    assert np.isfinite(out).all()
    for sl, z in ((np.s_[:, :136], 2.0), (np.s_[:, 146:205], 6.0), (np.s_[:, 223:], 6.0)):
        assert np.nanstd(out[sl] / z) < 0.1 * np.nanstd(noisy[sl] / z)
        np.testing.assert_allclose(out[sl].mean(), z, rtol=0.003)
    assert out[:, 140].max() < 2.1 and out[:, 141].min() > 5.7
    np.testing.assert_allclose(out[:, 211:217], 3.0, rtol=0.03)
    # the same maps with cells of a pixel (the smoothing on the pixel grid) agree with these
    fine, _ = synthdof.refine(image, noisy, edge_width=4)
    np.testing.assert_allclose(out[:, 146:205], fine[:, 146:205], rtol=0.01)


def test_noisy_depth_keeps_a_rod_in_front_of_the_subject_that_the_matte_leaves_out():
    # a sensor's depth of a rod (1 m) crossing the subject (2 m) in front of a wall (6 m): the matte
    # leaves the rod out, so beside the subject's boundary the rod lies on the background's side,
    # but its depth lies beyond both sides and is the sensor's own: kept, not continued
    H, W = 128, 192
    image = np.zeros((H, W, 3), np.float32)
    image[:] = (0.1, 0.1, 0.6)
    depth = np.full((H, W), 6.0, np.float32)
    matte = np.zeros((H, W), np.float32)
    image[32:96, 48:144] = (0.6, 0.1, 0.1)
    depth[32:96, 48:144] = 2.0
    matte[32:96, 48:144] = 1.0
    image[:, 94:100] = (0.1, 0.6, 0.1)
    depth[:, 94:100] = 1.0
    matte[:, 94:100] = 0.0
    rng = np.random.default_rng(9)
    noisy = (depth * (1 + 0.02 * rng.standard_normal(depth.shape))).astype(np.float32)
    out, _ = synthdof.refine(image, noisy, matte=matte, edge_width=8)  # a band wider than the rod
    rod = out[32:96, 95:99]  # where the rod crosses the subject
    assert (np.abs(rod / 1.0 - 1) < 0.05).mean() > 0.95
    # the subject and the wall beside the rod keep their own continuation
    np.testing.assert_allclose(out[40:88, 60:90].mean(), 2.0, rtol=0.01)
    np.testing.assert_allclose(out[5:25, 20:80].mean(), 6.0, rtol=0.01)
