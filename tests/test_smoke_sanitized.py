"""Quick calls of every C entry point on awkward inputs: frame sizes 1x1, 1xN, Nx1, 3x200;
CoC zero, tiny, negative, huge and the largest float32; every aperture kind; strided, reversed
and multi-channel images; render with and without a matte, from a CoC map or depth + lens.

They are written to be run under AddressSanitizer/UBSan (.ci/asan.sh), which turns any
out-of-bounds access into a failure, and each also checks a property that follows from the
definitions: scatter keeps every channel's total; a constant image stays constant where the
documentation says so; CoC 0 leaves the image unchanged; a negative CoC shows the aperture
turned by 180 degrees; a footprint stays within its radius; strides, channel splitting and
thread counts do not change the result."""
import numpy as np
import pytest

import synthdof
from synthdof import Aperture

SHAPES = [(1, 1), (1, 7), (7, 1), (1, 64), (64, 1), (3, 200), (200, 3), (5, 5), (17, 33)]


def _ids(shapes):
    return [f"{h}x{w}" for h, w in shapes]


def _apertures():
    ring = np.zeros((15, 15))
    yy, xx = np.mgrid[:15, :15] - 7
    r = np.hypot(yy, xx)
    ring[(r <= 7) & (r >= 4)] = 1.0
    comb = np.zeros((4, 11))
    comb[:, ::2] = 1.0  # 6 runs per row: more than the 4 spans the core takes
    return {
        "circle": Aperture(),
        "tri": Aperture(blades=3),
        "pent-rot": Aperture(blades=5, rotation=0.3),
        "hex": Aperture(blades=6),
        "oct": Aperture(blades=8, rotation=-2.0),
        "ring": Aperture.from_image(ring),
        "comb": Aperture.from_image(comb),
        "dot": Aperture.from_image(np.ones((1, 1))),
        "bar": Aperture.from_image(np.ones((1, 9), np.uint8)),
        "column": Aperture.from_image(np.ones((9, 1), np.float32)),
    }


APERTURES = _apertures()


def _coc(rng, shape, kind):
    h, w = shape
    if kind == "zero":
        return np.zeros(shape, np.float32)
    if kind == "negzero":
        return np.full(shape, -0.0, np.float32)
    if kind == "tiny":
        return rng.choice(np.array([1e-45, -1e-45, 1e-30, -1e-8, 0.3], np.float32), size=shape)
    if kind == "mixed":
        return rng.uniform(-14, 14, shape).astype(np.float32)
    if kind == "large":
        return rng.uniform(-150, 150, shape).astype(np.float32)
    if kind == "huge":
        return rng.choice(np.array([1e6, -1e6, 1e30, -3e38, 5.0], np.float32), size=shape)
    if kind == "fmax":
        return np.full(shape, np.finfo(np.float32).max, np.float32)
    raise AssertionError(kind)


COC_KINDS = ["zero", "negzero", "tiny", "mixed", "large", "huge", "fmax"]


def _assert_total_kept(out, img):
    # scatter conserves each channel's total up to float32 rounding
    n = img.shape[2] if img.ndim == 3 else 1
    s_in = img.astype(np.float64).reshape(-1, n).sum(0)
    s_out = out.astype(np.float64).reshape(-1, n).sum(0)
    np.testing.assert_allclose(s_out, s_in, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("kind", COC_KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_scatter_gather_odd_sizes(shape, kind):
    rng = np.random.default_rng(sum(shape) * 31 + COC_KINDS.index(kind))
    img = rng.uniform(0, 1, shape + (3,)).astype(np.float32)
    coc = _coc(rng, shape, kind)
    out = synthdof.scatter(img, coc)
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= -1e-5).all()
    _assert_total_kept(out, img)
    g = synthdof.gather(img, coc)
    assert g.shape == img.shape and g.dtype == np.float32 and np.isfinite(g).all()
    # a mean of values in [0, 1] stays in [0, 1]
    assert g.min() >= -1e-4 and g.max() <= 1 + 1e-4


@pytest.mark.parametrize("kind", ["zero", "negzero", "tiny"])
@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_scatter_without_blur_is_identity(shape, kind):
    rng = np.random.default_rng(7)
    img = rng.uniform(0, 2, shape + (2,)).astype(np.float32)
    coc = _coc(rng, shape, kind)
    coc = np.where(np.abs(coc) <= 1.0, coc, 0.0).astype(np.float32)  # all footprints inside the pixel
    np.testing.assert_allclose(synthdof.scatter(img, coc), img, rtol=1e-5, atol=1e-6)
    # gather integrates rows through running sums restarted every few dozen pixels, which costs
    # a few float32 ulps of such a sum
    np.testing.assert_allclose(synthdof.gather(img, coc), img, rtol=1e-5, atol=2e-5)


HUGE_SHAPES = [(1, 1), (1, 9), (9, 1), (3, 200), (12, 13)]


@pytest.mark.parametrize("ap", ["circle", "hex", "square"])
@pytest.mark.parametrize("c", [40.0, -333.0, 1e6, -1e30, float(np.finfo(np.float32).max)])
@pytest.mark.parametrize("shape", HUGE_SHAPES, ids=_ids(HUGE_SHAPES))
def test_uniform_huge_coc_keeps_constant(shape, c, ap):
    # documented: a constant image with a uniform CoC stays constant, however large the CoC (for
    # shapes symmetric about both axes: the border folds light back mirrored)
    aperture = {"circle": Aperture(), "hex": Aperture(blades=6), "square": Aperture(blades=4)}[ap]
    img = np.full(shape + (3,), 0.25, np.float32) * np.array([1.0, 2.0, 3.0], np.float32)
    coc = np.full(shape, c, np.float32)
    # (coarse levels on frames that are not a multiple of their block size deviate by a few 1e-3)
    np.testing.assert_allclose(synthdof.scatter(img, coc, aperture=aperture), img, rtol=5e-3)
    np.testing.assert_allclose(synthdof.gather(img, coc, aperture=aperture), img, rtol=1e-4)


@pytest.mark.parametrize("name", list(APERTURES))
def test_every_aperture_footprint_stays_within_radius(name):
    ap = APERTURES[name]
    n, c = 41, 17.0
    for sign in (1.0, -1.0):
        img = np.zeros((n, n), np.float32)
        img[n // 2, n // 2] = 1.0
        out = synthdof.scatter(img, np.full((n, n), sign * c, np.float32), aperture=ap)
        assert abs(out.sum() - 1.0) < 1e-5
        ys, xs = np.nonzero(np.abs(out) > 1e-7)
        d = np.hypot(ys + 0.5 - (n // 2 + 0.5), xs + 0.5 - (n // 2 + 0.5))
        # anti-aliased edges reach at most one pixel diagonal past the circumscribed radius; a
        # shape from an image fills its bounding square, whose corners lie sqrt(2) further out
        reach = c / 2 * (np.sqrt(2.0) if ap.blades < 0 else 1.0)
        assert d.max() <= reach + 1.5
        g = synthdof.gather(np.ones((n, n), np.float32), np.full((n, n), sign * c, np.float32), aperture=ap)
        np.testing.assert_allclose(g, 1.0, rtol=1e-4)


@pytest.mark.parametrize("name", ["tri", "pent-rot", "ring", "comb"])
def test_negative_coc_turns_the_aperture(name):
    # The scene turned by 180 degrees with the opposite CoC sign is the same picture turned.
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 1, (23, 30, 3)).astype(np.float32)
    coc = rng.uniform(2, 13, (23, 30)).astype(np.float32)
    ap = APERTURES[name]
    a = synthdof.scatter(img, -coc, aperture=ap)
    b = synthdof.scatter(img[::-1, ::-1], coc[::-1, ::-1], aperture=ap)[::-1, ::-1]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_strided_and_reversed_views_match_contiguous_copies():
    rng = np.random.default_rng(11)
    base = rng.uniform(0, 1, (40, 62, 4)).astype(np.float32)
    coc = rng.uniform(-30, 30, (20, 31)).astype(np.float32)
    views = [base[::2, ::2, :3], base[::-2, 1::2, 1:], base[1::2, ::-2, ::2], base[::2, ::2, 0],
             np.asfortranarray(base[::2, ::2, :3]), base[::2, ::2].transpose(1, 0, 2)[:, :, ::-1].transpose(1, 0, 2)]
    for v in views:
        for kernel in (synthdof.scatter, synthdof.gather):
            np.testing.assert_array_equal(kernel(v, coc), kernel(np.ascontiguousarray(v), coc))


@pytest.mark.parametrize("nch", [1, 2, 4, 5, 8])
def test_channels_are_spread_independently(nch):
    # up to 4 channels go through the core at once, more in groups of 4; at radii below the
    # first coarse level every channel's footprint is its own
    rng = np.random.default_rng(nch)
    img = rng.uniform(0, 1, (9, 14, nch)).astype(np.float32)
    coc = rng.uniform(-12, 12, (9, 14)).astype(np.float32)
    out = synthdof.scatter(img, coc, aperture=APERTURES["hex"])
    for k in range(nch):
        np.testing.assert_allclose(out[:, :, k], synthdof.scatter(img[:, :, k], coc, aperture=APERTURES["hex"]),
                                   rtol=1e-6, atol=1e-7)


def test_thread_count_does_not_change_scatter():
    rng = np.random.default_rng(5)
    img = rng.uniform(0, 1, (260, 21, 3)).astype(np.float32)  # tall enough for parallel row bands
    coc = rng.uniform(-90, 90, (260, 21)).astype(np.float32)
    a = synthdof.scatter(img, coc, num_threads=1)
    np.testing.assert_array_equal(synthdof.scatter(img, coc, num_threads=2), a)
    np.testing.assert_array_equal(synthdof.scatter(img, coc, num_threads=3), a)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.uint8, np.uint16])
def test_input_dtypes(dtype):
    rng = np.random.default_rng(2)
    lin = rng.uniform(0, 1, (6, 11, 3))
    img = (lin * np.iinfo(dtype).max).astype(dtype) if np.dtype(dtype).kind == "u" else lin.astype(dtype)
    coc = rng.uniform(-6, 6, (6, 11)).astype(np.float32)
    out = synthdof.scatter(img, coc)
    _assert_total_kept(out, synthdof.srgb_to_linear(img) if np.dtype(dtype).kind == "u" else img.astype(np.float32))


# ---- render ------------------------------------------------------------------------------

def _matte(shape, rng):
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    m = np.clip(1.5 - np.hypot(yy - h / 2, xx - w / 2) / max(1.0, min(h, w) / 4), 0, 1)
    return m.astype(np.float32)


RENDER_SHAPES = [(1, 1), (1, 9), (9, 1), (3, 200), (16, 21)]


RENDER_CASES = ([(shape, kind) for shape in RENDER_SHAPES for kind in ("zero", "mixed", "huge")]
                + [((1, 9), "tiny"), ((5, 5), "negzero"), ((16, 21), "large"), ((9, 1), "fmax")])


@pytest.mark.parametrize("with_matte", [False, True], ids=["no-matte", "matte"])
@pytest.mark.parametrize("shape,kind", RENDER_CASES, ids=[f"{h}x{w}-{k}" for (h, w), k in RENDER_CASES])
def test_render_constant_image_stays_constant(shape, kind, with_matte):
    # one colour everywhere: whatever the depth layout, every layer shows that colour
    rng = np.random.default_rng(len(kind) + shape[0] * 7 + shape[1])
    colour = np.array([0.2, 0.5, 0.9], np.float32)
    img = np.broadcast_to(colour, shape + (3,)).copy()
    coc = _coc(rng, shape, kind)
    matte = _matte(shape, rng) if with_matte else None
    out = synthdof.render(img, coc=coc, matte=matte, aperture=APERTURES["hex"])
    assert out.shape == shape + (3,) and out.dtype == np.float32
    np.testing.assert_allclose(out, img, rtol=2e-3, atol=1e-5)


@pytest.mark.parametrize("with_matte", [False, True], ids=["no-matte", "matte"])
@pytest.mark.parametrize("shape", RENDER_SHAPES, ids=_ids(RENDER_SHAPES))
def test_render_depth_lens_path(shape, with_matte):
    rng = np.random.default_rng(shape[0] + 100 * shape[1])
    img = (rng.uniform(0, 1, shape + (3,)) * 255).astype(np.uint8)
    depth = rng.uniform(0.5, 20.0, shape).astype(np.float32)
    lens = synthdof.ThinLens(focal_length_mm=85, f_number=1.4, focus_distance=2.0)
    matte = _matte(shape, rng) if with_matte else None
    out = synthdof.render(img, depth, matte=matte, lens=lens, aperture=Aperture(blades=7, rotation=1.0))
    assert out.shape == img.shape and out.dtype == np.uint8
    if matte is None:
        # in focus everywhere: the image comes back (up to the sRGB round trip)
        flat = synthdof.render(img, np.full(shape, 2.0, np.float32), lens=lens, highlights="off")
        assert np.abs(flat.astype(int) - img.astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["circle", "tri", "ring", "comb", "dot"])
def test_render_every_aperture_with_matte_and_background(name):
    rng = np.random.default_rng(9)
    shape = (19, 26)
    img = rng.uniform(0, 1, shape + (3,)).astype(np.float32)
    coc = rng.uniform(-25, 60, shape).astype(np.float32)
    matte = _matte(shape, rng)
    bg = rng.uniform(0, 1, shape + (3,)).astype(np.float32)
    out = synthdof.render(img, coc=coc, matte=matte, aperture=APERTURES[name], background=bg)
    assert np.isfinite(out).all()
    # a render of light in [0, 1] is a weighted mean of such light
    assert out.min() >= -1e-4 and out.max() <= 1 + 1e-3


# ---- CoC maps ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (3, 200)], ids=_ids([(1, 1), (1, 5), (5, 1), (3, 200)]))
@pytest.mark.parametrize("model", ["fixed_fov", "real_lens"])
def test_coc_maps_on_odd_shapes(shape, model):
    rng = np.random.default_rng(shape[1])
    lens = synthdof.ThinLens(focal_length_mm=50, f_number=2.0, focus_distance=3.0, model=model)
    depth = rng.uniform(0.1, 100.0, shape).astype(np.float32)
    c = lens.coc(depth[:, ::-1])  # a reversed view goes to the core as is
    np.testing.assert_allclose(c, lens.coc_at(depth[:, ::-1], shape[1]), rtol=1e-5, atol=1e-4)
    clamped = lens.coc(depth, max_coc=3.0)
    assert np.abs(clamped).max() <= 3.0
    bad = depth.copy()
    bad.flat[-1] = 0.0 if model == "fixed_fov" else 0.01
    with pytest.raises(ValueError, match="depth"):
        lens.coc(bad)
    disp = synthdof.coc_from_disparity(1.0 / depth, K=lens.coc_scale(shape[1]), focus_disparity=1 / 3.0)
    if model == "fixed_fov":
        np.testing.assert_allclose(disp, c[:, ::-1], rtol=1e-4, atol=1e-3)
