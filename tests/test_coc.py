"""Circle-of-confusion maps against a float64 NumPy evaluation of the thin-lens formulas, the
disparity convention, and focusing on a matte (synthetic and on the Cycles ground truth)."""
import numpy as np
import pytest

import synthdof
from reference import ref_coc_fixed_fov, ref_coc_real_lens

LENSES = [
    dict(focal_length_mm=85.0, f_number=1.4, focus_distance=2.0),
    dict(focal_length_mm=50.0, f_number=2.8, focus_distance=3.7, sensor_width_mm=23.5),
    dict(focal_length_mm=24.0, f_number=1.8, focus_distance=0.45, sensor_width_mm=6.17),
    dict(focal_length_mm=200.0, f_number=4.0, focus_distance=12.0, sensor_width_mm=36.0),
]
IDS = ["85mm-f1.4", "50mm-apsc", "phone", "200mm"]


def _kw(lens):
    return (lens["focal_length_mm"], lens["f_number"], lens["focus_distance"],
            lens.get("sensor_width_mm", 36.0))


def random_depth(rng, zf, shape=(37, 53)):
    """Depths from well in front of to far behind the focal plane (log-uniform)."""
    return np.exp(rng.uniform(np.log(zf / 3), np.log(zf * 30), shape)).astype(np.float32)


@pytest.mark.parametrize("lens", LENSES, ids=IDS)
def test_fixed_fov_matches_float64(lens, small_rng):
    z = random_depth(small_rng, lens["focus_distance"])
    c = synthdof.ThinLens(**lens).coc(z)
    assert c.dtype == np.float32 and c.shape == z.shape
    ref = ref_coc_fixed_fov(z, *_kw(lens), width=z.shape[1])
    np.testing.assert_allclose(c, ref, rtol=2e-6, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("lens", LENSES, ids=IDS)
def test_real_lens_matches_float64(lens, small_rng):
    f = lens["focal_length_mm"] / 1000
    z = random_depth(small_rng, lens["focus_distance"])
    z = np.maximum(z, np.float32(1.05 * f))
    c = synthdof.ThinLens(**lens, model="real_lens").coc(z)
    ref = ref_coc_real_lens(z, *_kw(lens), width=z.shape[1])
    np.testing.assert_allclose(c, ref, rtol=2e-6, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("lens", LENSES, ids=IDS)
def test_real_lens_is_fixed_fov_times_breathing_factor(lens, small_rng):
    # (z - zf)/z / (zf - f) = zf (1/zf - 1/z) / (zf - f): the ratio is zf / (zf - f) everywhere
    f = lens["focal_length_mm"] / 1000
    zf = lens["focus_distance"]
    z = np.maximum(random_depth(small_rng, zf), np.float32(1.05 * f))
    fixed = synthdof.ThinLens(**lens).coc(z).astype(np.float64)
    real = synthdof.ThinLens(**lens, model="real_lens").coc(z).astype(np.float64)
    np.testing.assert_allclose(real, fixed * zf / (zf - f), rtol=1e-5, atol=1e-4)


def test_coc_at_is_the_float64_formula(small_rng):
    for model, ref in (("fixed_fov", ref_coc_fixed_fov), ("real_lens", ref_coc_real_lens)):
        lens = synthdof.ThinLens(85, 1.4, 2.0, model=model)
        z = random_depth(small_rng, 2.0).astype(np.float64)
        np.testing.assert_allclose(lens.coc_at(z, 640), ref(z, 85, 1.4, 2.0, 36.0, 640), rtol=1e-12)


@pytest.mark.parametrize("model", ["fixed_fov", "real_lens"])
def test_sign_convention_and_zero_at_focus(model):
    lens = synthdof.ThinLens(85, 1.4, 2.5, model=model)  # 2.5 is exact in float32
    z = np.array([[0.5, 1.0, 2.0, 2.4999, 2.5, 2.5001, 3.0, 10.0, 1e4]], np.float32)
    c = lens.coc(z, 768)
    assert (c[0, :4] < 0).all(), "in front of the focal plane the CoC is negative"
    assert c[0, 4] == 0.0
    assert (c[0, 5:] > 0).all(), "behind the focal plane the CoC is positive"
    assert (np.diff(c[0]) > 0).all(), "CoC grows monotonically with depth"
    # near infinity it approaches A / z_f (fixed_fov) or A / (z_f - f) (real_lens)
    A = lens.coc_scale(768)
    limit = A / 2.5 if model == "fixed_fov" else A / (2.5 - 0.085)
    assert c[0, -1] == pytest.approx(limit * (1 - 2.5 / 1e4), rel=1e-5)


def test_zero_at_inexact_focus_distance():
    lens = synthdof.ThinLens(50, 2.0, 1.7)
    c = lens.coc(np.full((3, 4), 1.7, np.float32), 4000)
    assert np.abs(c).max() < 1e-3  # only the float32 rounding of 1.7 remains


def test_known_value_85mm():
    # 85 mm f/1.4 focused at 2 m, 36 mm sensor on 768 px, object at 5 m:
    # c = 0.085^2 * 768 / (1.4 * 0.036) * (1/2 - 1/5) = 33.029 px
    lens = synthdof.ThinLens(85, 1.4, 2.0)
    c = lens.coc(np.full((2, 768), 5.0, np.float32))
    assert c[0, 0] == pytest.approx(0.085 ** 2 * 768 / (1.4 * 0.036) * 0.3, rel=1e-6)
    assert c[0, 0] == pytest.approx(33.0286, abs=1e-3)


@pytest.mark.parametrize("model", ["fixed_fov", "real_lens"])
def test_max_coc_clamps_both_signs(model, small_rng):
    z = random_depth(small_rng, 2.0)
    free = synthdof.ThinLens(85, 1.4, 2.0, model=model).coc(z, 768)
    assert free.max() > 10 and free.min() < -10
    expect = np.clip(free, -10, 10)
    np.testing.assert_array_equal(synthdof.ThinLens(85, 1.4, 2.0, model=model, max_coc=10).coc(z, 768), expect)
    # the call's max_coc overrides the lens's
    np.testing.assert_array_equal(
        synthdof.ThinLens(85, 1.4, 2.0, model=model, max_coc=3).coc(z, 768, max_coc=10), expect)
    np.testing.assert_array_equal(synthdof.ThinLens(85, 1.4, 2.0, model=model).coc(z, 768, max_coc=10), expect)


def test_width_argument_scales_linearly(small_rng):
    z = random_depth(small_rng, 2.0, (20, 30))
    lens = synthdof.ThinLens(85, 1.4, 2.0)
    default = lens.coc(z)  # width = depth.shape[1] = 30
    np.testing.assert_allclose(lens.coc(z, 30), default, rtol=0, atol=0)
    np.testing.assert_allclose(lens.coc(z, 4000), default * (4000 / 30), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lens.coc(z, width=1234.5), ref_coc_fixed_fov(z, 85, 1.4, 2.0, 36, 1234.5),
                               rtol=2e-6, atol=1e-4)


def test_sensor_width_and_f_number_scale_inversely(small_rng):
    z = random_depth(small_rng, 2.0)
    base = synthdof.ThinLens(85, 1.4, 2.0, 36.0).coc(z, 768)
    np.testing.assert_allclose(synthdof.ThinLens(85, 2.8, 2.0, 36.0).coc(z, 768), base / 2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(synthdof.ThinLens(85, 1.4, 2.0, 18.0).coc(z, 768), base * 2, rtol=1e-5, atol=1e-5)


def test_coc_from_disparity_reproduces_the_lens(small_rng):
    lens = synthdof.ThinLens(85, 1.4, 2.0)
    z = random_depth(small_rng, 2.0)
    W = z.shape[1]
    d = synthdof.depth_to_disparity(z)
    np.testing.assert_allclose(d, 1.0 / z.astype(np.float64), rtol=1e-6)
    c = synthdof.coc_from_disparity(d, K=lens.coc_scale(W), focus_disparity=1.0 / lens.focus_distance)
    np.testing.assert_allclose(c, lens.coc(z), rtol=1e-5, atol=1e-4)


def test_coc_from_disparity_formula_and_sign(small_rng):
    d = small_rng.uniform(-2, 5, (11, 13)).astype(np.float32)  # any finite disparity is allowed
    c = synthdof.coc_from_disparity(d, K=7.5, focus_disparity=1.25)
    np.testing.assert_allclose(c, 7.5 * (1.25 - d.astype(np.float64)), rtol=1e-6, atol=1e-5)
    assert (c[d > 1.25] < 0).all()  # larger disparity = nearer = negative CoC
    clamped = synthdof.coc_from_disparity(d, K=7.5, focus_disparity=1.25, max_coc=4.0)
    np.testing.assert_allclose(clamped, np.clip(c, -4, 4), rtol=0, atol=0)


def test_depth_disparity_round_trip(small_rng):
    z = random_depth(small_rng, 2.0)
    d = synthdof.depth_to_disparity(z, scale=3.0)
    np.testing.assert_allclose(d, 3.0 / z.astype(np.float64), rtol=1e-6)
    np.testing.assert_allclose(synthdof.disparity_to_depth(d, scale=3.0), z, rtol=1e-6)
    assert d.dtype == np.float32


def test_coc_out_and_threads(small_rng):
    z = random_depth(small_rng, 2.0, (130, 77))
    lens = synthdof.ThinLens(85, 1.4, 2.0)
    out = np.empty_like(z)
    r = lens.coc(z, out=out, num_threads=1)
    assert r is out
    np.testing.assert_array_equal(lens.coc(z, num_threads=2), out)
    out2 = np.empty_like(z)
    assert synthdof.coc_from_disparity(1 / z, K=3.0, focus_disparity=0.5, out=out2) is out2


@pytest.mark.parametrize("model", ["fixed_fov", "real_lens", "disparity"])
def test_invalid_depth_reports_the_first_in_row_order(model, small_rng):
    """The rows are computed as vectors and only a row with an invalid value is searched: the
    error names the first invalid pixel in row order, for any thread count and layout (a strided
    view), and every valid pixel of a map with none matches the float64 reference."""
    z = random_depth(small_rng, 2.0, (61, 300))
    bad = {(40, 7): np.nan, (12, 250): 0.0, (12, 251): -np.inf, (59, 0): np.inf}
    for (y, x), v in bad.items():
        z[y, x] = v
    lens = synthdof.ThinLens(85, 1.4, 2.0, model=model if model != "disparity" else "fixed_fov")
    if model == "disparity":
        def call(a, nt):
            return synthdof.coc_from_disparity(a, K=3.0, focus_disparity=0.5, num_threads=nt)
        first = "(12, 251)"  # 0 is a valid disparity; -inf is the first invalid one
        first_value = "-inf"
    else:
        def call(a, nt):
            return lens.coc(a, num_threads=nt)
        first, first_value = "(12, 250)", "0.0"
    row, col = first.strip("()").split(", ")
    wide = np.zeros((61, 600), np.float32)
    wide[:, ::2] = z
    for a in (z, wide[:, ::2]):
        for nt in (1, 2, 3):
            with pytest.raises(ValueError, match=rf"invalid value {first_value} at row {row}, column {col}"):
                call(a, nt)
    ok = np.where(np.isfinite(z) & (z > 0), z, np.float32(2.0))
    wide[:, ::2] = ok
    c = call(ok, 2)
    np.testing.assert_array_equal(call(wide[:, ::2], 3), c)
    np.testing.assert_array_equal(call(ok, 1), c)
    kw = dict(focal_length_mm=85.0, f_number=1.4, focus_distance=2.0)
    ref = (3.0 * (0.5 - ok.astype(np.float64)) if model == "disparity" else
           (ref_coc_fixed_fov if model == "fixed_fov" else ref_coc_real_lens)(ok, *_kw(kw), width=ok.shape[1]))
    np.testing.assert_allclose(c, ref, rtol=2e-6, atol=1e-5 * np.abs(ref).max())


# ---- focus_from_matte --------------------------------------------------------------------------

def _two_plane_scene(rng, z_subject=1.6, z_back=7.0, shape=(90, 120)):
    H, W = shape
    yy, xx = np.mgrid[:H, :W]
    r = np.hypot(yy - H / 2, (xx - W / 2) * 0.8)
    matte = np.clip(25.0 - r, 0, 1).astype(np.float32)  # a disk with a 1-px soft edge
    depth = np.where(r < 25.0, z_subject, z_back).astype(np.float32)
    depth *= (1 + 0.002 * rng.standard_normal(shape)).astype(np.float32)  # sensor-like noise
    return depth, matte


def test_focus_from_matte_two_planes(small_rng):
    depth, matte = _two_plane_scene(small_rng)
    assert synthdof.focus_from_matte(depth, matte) == pytest.approx(1.6, rel=2e-3)


def test_focus_from_matte_ignores_a_blended_edge(small_rng):
    # a network depth map that blends across the silhouette: the confident interior still decides
    from scipy.ndimage import uniform_filter
    depth, matte = _two_plane_scene(small_rng)
    blended = uniform_filter(depth, 7, mode="reflect")
    assert synthdof.focus_from_matte(blended, matte) == pytest.approx(1.6, rel=5e-3)


def test_focus_from_matte_only_fractional_matte():
    # no pixel reaches 0.5: the matte-weighted median (in inverse depth) is used
    depth = np.full((10, 10), 9.0, np.float32)
    matte = np.zeros((10, 10), np.float32)
    depth[2:5, 2:5] = 1.2
    matte[2:5, 2:5] = 0.4    # 9 px of weight 3.6
    depth[6:8, 6:8] = 3.0
    matte[6:8, 6:8] = 0.2    # 4 px of weight 0.8
    assert synthdof.focus_from_matte(depth, matte) == pytest.approx(1.2, rel=1e-6)


def test_focus_from_matte_is_the_median_in_inverse_depth():
    depth = np.array([[1.0, 2.0, 4.0]], np.float32)
    matte = np.ones_like(depth)
    # the median of 1/z = {1, 0.5, 0.25} is 0.5 -> 2 m
    assert synthdof.focus_from_matte(depth, matte) == pytest.approx(2.0, rel=1e-7)


@pytest.mark.parametrize("scene", ["portrait", "lights", "occluder", "slant"])
def test_focus_from_matte_on_ground_truth(scene, load_gt):
    g = load_gt(scene)
    zf = g["meta"]["focus_distance_m"]
    f = synthdof.focus_from_matte(g["depth"], g["alpha"])
    # A subject has depth: the confidently matted pixels span 1.89-2.04 m in portrait (head and
    # body), 2.38-2.54 m in occluder, 2.95-3.00 m in slant, exactly 2 m in lights (a flat card).
    # The median (1.968, 2.454, 2.959, 2.0 m) lies inside that span, as does the focus distance the
    # scenes were rendered with; both are within 5 % of each other.
    lo, hi = np.percentile(g["depth"][g["alpha"] >= 0.5], [2, 98])
    assert lo <= f <= hi
    assert f == pytest.approx(zf, rel=0.05)
    # and the matted subject's CoC at that focus is small: the subject is (nearly) sharp
    lens = synthdof.ThinLens(g["meta"]["focal_length_mm"], g["meta"]["f_number"], f,
                             g["meta"]["sensor_width_mm"])
    c = lens.coc(g["depth"])
    assert np.median(np.abs(c[g["alpha"] >= 0.5])) < 1.0
