"""The refine stage's per-pixel C passes (csrc/sd_refine_maps.c) against the NumPy expressions
they replace, which serve as the slow reference: every one must give the same bits."""
import warnings

import numpy as np
import pytest

from synthdof import _core
from synthdof._color import linear_to_srgb

rng = np.random.default_rng(17)


def bits(x):
    x = np.asarray(x)
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint8)


def assert_same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(bits(a), bits(b))


def odd_floats(shape):
    """Values around sRGB's knee, 0 and 1, outside [0, 1], tiny and huge."""
    special = np.array([0.0, 1.0, 0.0031308, np.nextafter(np.float32(0.0031308), np.float32(1)), -0.5, 1.5,
                        1e-30, 3e38, 1e-8, 0.5], np.float32)
    x = rng.random(shape, dtype=np.float32) * 1.2 - 0.1
    flat = x.reshape(-1)
    flat[: special.size] = special[: flat.size]
    return x


def srgb_in_double(lin):
    x = np.clip(lin.astype(np.float64), 0.0, 1.0)
    return np.where(x <= np.float32(0.0031308), np.float32(12.92) * lin.clip(0, 1),
                    1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("nt", [1, 2])
def test_srgb_guide_matches_the_formula_in_double(nt):
    lin = odd_floats((37, 53, 3))
    out = np.empty_like(lin)
    _core.srgb_encode_base(lin, out, nt)
    _core.srgb_encode_finish(lin, out, nt)
    ref = srgb_in_double(lin)
    # the power within 3 ulp, then 1.055 p - 0.055 (which loses a bit near the knee)
    np.testing.assert_allclose(out, ref, rtol=0, atol=6e-7)
    linear = lin.clip(0, 1) <= np.float32(0.0031308)
    np.testing.assert_array_equal(out[linear], (np.float32(12.92) * lin.clip(0, 1))[linear])
    np.testing.assert_allclose(out, linear_to_srgb(lin), rtol=0, atol=6e-7)


def test_srgb_guide_power_over_every_float_of_a_range():
    """Every float32 from 0.5 to 0.5 + 2^-6 (131072 of them) within 3 ulp of x^(1/2.4)."""
    x = (np.float32(0.5) + np.arange(1 << 17, dtype=np.float32) * np.float32(2.0 ** -24)).astype(np.float32)
    out = np.empty_like(x)
    _core.srgb_encode_base(x, out, 1)
    _core.srgb_encode_finish(x, out, 1)
    p = (out.astype(np.float64) + 0.055) / 1.055  # the power, up to the last step's rounding
    ref = x.astype(np.float64) ** (1 / 2.4)
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert np.abs(p - ref).max() <= 4 * ulp.max()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_unorm_to_float_matches_numpy(dtype):
    top = np.iinfo(dtype).max
    img = rng.integers(0, top + 1, (29, 31, 3)).astype(dtype)
    img.reshape(-1)[:2] = (0, top)
    out = np.empty(img.shape, np.float32)
    _core.unorm_to_float(img, out, 2)
    assert_same_bits(out, (img * np.float32(1.0 / top)).astype(np.float32))


def reference_disparity(d, invalid, disparity):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = d if disparity else (np.float32(1.0) / d).astype(np.float32)
    valid = np.isfinite(d) & (d > 0) & np.isfinite(v)  # a denormal depth's 1 / depth overflows
    if invalid is not None:
        valid &= ~invalid
    q = np.where(valid, v, 0.0).astype(np.float32)
    return q, valid.astype(np.float32)


@pytest.mark.parametrize("disparity", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_disparity_in_matches_numpy(disparity, with_mask):
    d = (rng.random((40, 70), dtype=np.float32) * 10).astype(np.float32)
    d.reshape(-1)[:8] = (np.nan, np.inf, -np.inf, 0.0, -0.0, -3.0, 1e-45, 3e38)
    invalid = rng.random(d.shape) < 0.1 if with_mask else None
    q, w = np.empty_like(d), np.empty_like(d)
    n = _core.disparity_in(d, invalid, disparity, q, w, 2)
    rq, rw = reference_disparity(d, invalid, disparity)
    assert_same_bits(q, rq)
    assert_same_bits(w, rw)
    assert n == int(rw.sum())


@pytest.mark.parametrize("disparity", [False, True])
def test_disparity_out_matches_numpy(disparity):
    q = rng.random((33, 45), dtype=np.float32)
    q.reshape(-1)[:4] = (0.0, 1e-40, -2.0, 3e38)
    out = np.empty_like(q)
    _core.disparity_out(q, disparity, out, 2)
    ref = np.maximum(q, np.float32(np.finfo(np.float32).tiny))
    ref = ref if disparity else (1.0 / ref).astype(np.float32)
    assert_same_bits(out, ref)
    _core.disparity_out(q, disparity, q, 2)  # in place, as refine calls it
    assert_same_bits(q, ref)
    big = np.ones((34, 45), np.float32)
    with pytest.raises(ValueError, match="overlap"):  # out shifted a row against q
        _core.disparity_out(big[:33], disparity, big[1:], 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_agreeing_matches_numpy(threads):
    # kept = 2 where the input's own disparity (weight > 0) lies within `limit` of the smoothed one,
    # relative to its own; float32 arithmetic as NumPy's, the limit rounded to float32 first
    q_in = rng.random((300, 1000), dtype=np.float32) + np.float32(0.1)
    q = (q_in * (1 + np.float32(0.03) * rng.standard_normal(q_in.shape, dtype=np.float32))).astype(np.float32)
    weight = (rng.random(q.shape) > 0.1).astype(np.float32)
    q_in[weight == 0] = 0.0  # invalid: disparity_in's 0
    q.reshape(-1)[:2] = q_in.reshape(-1)[:2] * np.float32(1.02)  # on the limit
    limit = 0.02
    kept = np.full(q.shape, 7, np.uint8)
    _core.agreeing(q, q_in, weight, limit, kept, threads)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.where((weight > 0) & (np.abs(q - q_in) / q_in <= np.float32(limit)), 2, 0).astype(np.uint8)
    np.testing.assert_array_equal(kept, ref)
    assert 0.2 < (kept == 2).mean() < 0.8
    _core.agreeing(q, q_in, weight, 1e300, kept, threads)  # past float32's range: every valid pixel
    np.testing.assert_array_equal(kept, np.where(weight > 0, 2, 0))
    with pytest.raises(ValueError, match="limit"):
        _core.agreeing(q, q_in, weight, float("nan"), kept, threads)
    with pytest.raises(ValueError, match="q_in"):
        _core.agreeing(q, q_in[1:], weight, limit, kept, threads)
    with pytest.raises(ValueError, match="kept"):
        _core.agreeing(q, q_in, weight, limit, kept[:, ::2], threads)
    kept.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.agreeing(q, q_in, weight, limit, kept, threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_indices_above_matches_flatnonzero(threads):
    # refine's highlights: the flat indices over 1 of a linear image, over chunks of 4096 values
    img = rng.random((200, 700, 3), dtype=np.float32) * np.float32(1.05)
    img.reshape(-1)[::997] = np.nan
    img.reshape(-1)[5::1999] = np.inf
    img.reshape(-1)[7::3001] = np.float32(1.0)  # not above
    for v, thr in ((img, 1.0), (img[:3, :5], 1.0), (img.reshape(-1)[:4097], 0.5), (img.reshape(-1)[:65537], 0.5),
                   (img[0], 2.0)):
        got = _core.indices_above(np.ascontiguousarray(v), thr, threads)
        want = np.flatnonzero(v.reshape(-1) > np.float32(thr))
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    assert _core.indices_above(img, 1.0, threads).size > 10_000
    assert _core.indices_above(img[0], 2.0, threads).size == np.isposinf(img[0]).sum() == 2  # its infinities
    with pytest.raises(ValueError, match="threshold"):
        _core.indices_above(img, float("nan"), threads)
    with pytest.raises(ValueError, match="threshold"):
        _core.indices_above(img, 0.1, threads)  # not a float32 value
    with pytest.raises((TypeError, ValueError), match="values"):
        _core.indices_above(img.astype(np.float64), 1.0, threads)


def reference_median(v, ref, weight, step):
    """refine's NumPy: the median of v (or |v - ref| / ref) at every step-th value where weight > 0."""
    sel = slice(None, None, step)
    ok = np.ones(v.size, bool)[sel] if weight is None else weight.reshape(-1)[sel] > 0
    x = v.reshape(-1)[sel][ok]
    if ref is not None:
        r = ref.reshape(-1)[sel][ok]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x = np.abs(x - r) / r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's median of nothing
        return np.float32(np.median(x)) if x.size else np.float32(np.nan)


@pytest.mark.parametrize("threads", [1, 2])
def test_median_matches_numpy(threads):
    # refine's noise scale and the cells' typical spread: NumPy's median of a selection, to the bit
    v = (rng.random((301, 999), dtype=np.float32) * np.float32(3) - np.float32(1)).astype(np.float32)
    few = np.array([0.0, -0.0, 1.0, 1.0, 2.0, -1.0, 1e-40, 3e38, -3e38, 0.5], np.float32)  # ties, +-0, tiny, huge
    ties = rng.choice(few, v.shape).astype(np.float32)
    ref = rng.random(v.shape, dtype=np.float32) + np.float32(0.5)
    weight = (rng.random(v.shape) > 0.3).astype(np.float32)
    cases = []
    for values in (v, ties):
        for step in (1, 2, 31, 4096, v.size):
            cases += [(values, None, None, step), (values, None, weight, step), (values, ref, weight, step)]
    cases += [(v[:1, :1], None, None, 1), (v[:1, :2], None, None, 1), (v[0], None, weight[0], 7)]
    for values, r, w, step in cases:
        got = np.float32(_core.median(values, r, w, step, threads))
        want = reference_median(values, r, w, step)
        assert bits(got) == bits(want) or (got == want == 0), (step, got, want)  # NumPy's own zero's sign varies
    assert np.float32(_core.median(v, None, weight, 1, threads)) != np.float32(_core.median(v, None, None, 1, threads))
    nan = v.copy()
    nan[100, 102] = np.nan  # flat index 100002: among every 2nd value, not every 4th
    assert np.isnan(_core.median(nan, None, None, 1, threads))  # as NumPy's: NaN if one is NaN
    assert np.isnan(_core.median(nan, None, None, 2, threads))
    assert _core.median(nan, None, None, 4, threads) == reference_median(nan, None, None, 4)  # not sampled
    assert np.isnan(_core.median(v, None, np.zeros_like(weight), 1, threads))  # none selected
    with pytest.raises(ValueError, match="step"):
        _core.median(v, None, None, 0, threads)
    with pytest.raises(ValueError, match="ref"):
        _core.median(v, ref[1:], None, 1, threads)
    with pytest.raises(ValueError, match="weight"):
        _core.median(v, None, weight[:, :5], 1, threads)
    with pytest.raises((TypeError, ValueError), match="values"):
        _core.median(v.astype(np.float64), None, None, 1, threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_take_grid_matches_fancy_index(threads):
    # the guide's samples for the upsampling: src[ys][:, xs], any rows and columns (repeats too)
    src = rng.random((120, 170, 3), dtype=np.float32)
    for ys, xs in ((np.arange(0, 120, 4), np.arange(2, 170, 4)), (np.array([119, 0, 0, 5]), np.array([169])),
                   (np.arange(120), np.arange(170))):
        ys, xs = ys.astype(np.int64), xs.astype(np.int64)
        out = np.full((ys.size, xs.size, 3), np.nan, np.float32)
        _core.take_grid(src, ys, xs, out, threads)
        assert_same_bits(out, src[np.ix_(ys, xs)])
    out = np.empty((2, 2, 3), np.float32)
    for ys, xs in (([0, 120], [0, 1]), ([-1, 0], [0, 1]), ([0, 1], [0, 170])):
        with pytest.raises(ValueError, match="ys, xs"):
            _core.take_grid(src, np.array(ys, np.int64), np.array(xs, np.int64), out, threads)
    with pytest.raises(ValueError, match="ys"):
        _core.take_grid(src, np.array([0, 1], np.int32), np.array([0, 1], np.int64), out, threads)
    with pytest.raises(ValueError, match="out"):
        _core.take_grid(src, np.array([0, 1, 2], np.int64), np.array([0, 1], np.int64), out, threads)
    inside = src.reshape(-1)[:12].reshape(2, 2, 3)
    with pytest.raises(ValueError, match="overlap"):
        _core.take_grid(src, np.array([0, 1], np.int64), np.array([0, 1], np.int64), inside, threads)


def reference_noise(q, weight, row_step=1):
    ok = weight >= 1
    inner = ok[1:-1, 1:-1].copy()
    acc = np.zeros_like(q[1:-1, 1:-1])
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            acc += q[dy:dy + q.shape[0] - 2, dx:dx + q.shape[1] - 2]
            inner &= ok[dy:dy + q.shape[0] - 2, dx:dx + q.shape[1] - 2]
    inner[np.arange(inner.shape[0]) % row_step != 0] = False  # only every row_step-th inner row
    if not inner.any():
        return 0.0, 0
    c = q[1:-1, 1:-1][inner]
    dev = np.sort(np.abs(c - acc[inner] / 9) / np.maximum(np.abs(c), 1e-30)).astype(np.float64)
    n = dev.size
    if np.isnan(dev).any():
        return float("nan"), n
    # of an even count the mean of the middle two in double (it cannot overflow)
    return float(dev[n // 2] if n % 2 else (dev[n // 2 - 1] + dev[n // 2]) / 2), n


def assert_noise_decisions(q, weight, row_step=1):
    """noise_above against a sort's median at thresholds on it, beside it (a float's and a double's
    ulp either way) and around it."""
    median, count = reference_noise(q, weight, row_step)
    m = np.float32(median)
    for t in (median, float(np.nextafter(m, np.float32(-1))), float(np.nextafter(m, np.float32(1))),
              float(np.nextafter(median, -1.0)), float(np.nextafter(median, 2.0)), 0.0, -1.0, 0.003, 1e9):
        for nt in (1, 2):
            got = _core.noise_above(q, weight, t, nt, row_step) if row_step > 1 else _core.noise_above(q, weight, t, nt)
            assert got == (median > t, count)


@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (3, 3), (4, 4), (5, 6), (41, 57), (120, 97), (40, 600)])
@pytest.mark.parametrize("holes", [0.0, 0.05, 0.9])
def test_noise_above_matches_numpy_median(shape, holes):
    q = (0.5 + rng.random(shape, dtype=np.float32)).astype(np.float32)
    q *= (1 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    weight = (rng.random(shape) >= holes).astype(np.float32)
    q[weight == 0] = 0.0
    assert_noise_decisions(q, weight)
    for row_step in (2, 3, 7):  # every row_step-th inner row only
        assert_noise_decisions(q, weight, row_step)


def test_noise_above_of_a_flat_map_of_ties_and_of_an_even_count():
    q = np.ones((30, 40), np.float32)
    assert_noise_decisions(q, np.ones_like(q))
    q = np.where(rng.random((30, 40)) < 0.5, 1.0, 2.0).astype(np.float32)  # many equal values
    assert_noise_decisions(q, np.ones_like(q))
    q = (1 + 0.01 * rng.standard_normal((6, 6))).astype(np.float32)  # 16 values: the two middle ones straddle
    assert reference_noise(q, np.ones_like(q))[1] % 2 == 0
    assert_noise_decisions(q, np.ones_like(q))
    # 4 deviations near float's largest (inner pixels of 1e-30 beside a border of 3.6e8 and more):
    # the middle pair's float32 sum overflows, their mean in double does not
    q = np.full((4, 4), 3.6e8, np.float32)
    q[0, 3] = q[3, 0] = 3.7e8
    q[1:3, 1:3] = 1e-30
    median, count = reference_noise(q, np.ones_like(q))
    assert count == 4 and 1e38 < median < 3.4e38
    assert_noise_decisions(q, np.ones_like(q))
    with pytest.raises(ValueError, match="threshold"):
        _core.noise_above(q, np.ones_like(q), float("nan"), 1)
    with pytest.raises(ValueError, match="row_step"):
        _core.noise_above(q, np.ones_like(q), 0.003, 1, 0)


def reference_band(matte, given, radius):
    def any_within(mask, axis):
        n = mask.shape[axis]
        c = np.cumsum(mask, axis=axis, dtype=np.int32)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        hi = np.minimum(np.arange(n) + radius + 1, n)
        lo = np.maximum(np.arange(n) - radius, 0)
        return (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) > 0

    side = np.minimum(matte, given) >= 0.5
    near = np.where(side, any_within(any_within(~side, 1), 0), any_within(any_within(side, 1), 0))
    return side, near


@pytest.mark.parametrize("radius", [0, 1, 3, 17, 200])
@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (33, 1), (64, 90)])
def test_band_near_matches_running_sums(radius, shape):
    given = np.zeros(shape, np.float32)
    given[shape[0] // 4: 3 * shape[0] // 4 + 1, shape[1] // 3: 2 * shape[1] // 3 + 1] = 1.0
    matte = np.clip(given + 0.6 * rng.standard_normal(shape).astype(np.float32), 0, 1)
    for second in (given, None):
        side, near = np.empty(shape, bool), np.empty(shape, bool)
        box = _core.band_near(matte, second, radius, side, near, 2)
        rs, rn = reference_band(matte, matte if second is None else second, radius)
        np.testing.assert_array_equal(side, rs)
        np.testing.assert_array_equal(near, rn)
        ys, xs = np.nonzero(rn)
        assert box == ((ys.min(), ys.max(), xs.min(), xs.max()) if ys.size else (shape[0], -1, shape[1], -1))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_band_near_box_spans_all_column_blocks(threads):
    # the column pass runs in blocks of 256 columns and a thread may run several: the box is the
    # extremes over all of them (a lower subject on the left, a higher one on the right)
    matte = np.zeros((60, 1100), np.float32)
    matte[40:57, 10:40] = 1
    matte[3:6, 1000:1050] = 1
    matte[20:25, 500:520] = 1
    side, near = np.empty(matte.shape, bool), np.empty(matte.shape, bool)
    box = _core.band_near(matte, None, 2, side, near, threads)
    ys, xs = np.nonzero(reference_band(matte, matte, 2)[1])
    assert box == (ys.min(), ys.max(), xs.min(), xs.max()) == (1, 58, 8, 1051)


@pytest.mark.parametrize("threads", [1, 2])
def test_band_near_over_blocks_that_hold_one_side_for_a_while(threads):
    # blocks of 256 columns whose window of rows holds one side only skip their counts, and count
    # afresh where both come back: subjects that start and stop down the rows, in some blocks only,
    # one across a block's edge, a speckled one, against the running sums
    matte = np.zeros((300, 800), np.float32)
    matte[20:60, 10:100] = 1
    matte[150:152, 240:270] = 1  # across the first blocks' edge
    matte[100:290, 520:700] = 1
    matte[200:230, 300:310] = 0.7
    speckle = rng.random((300, 800)) < 0.002
    matte[:, 720:][speckle[:, 720:]] = 1
    for radius in (0, 2, 17, 64):
        side, near = np.empty(matte.shape, bool), np.empty(matte.shape, bool)
        box = _core.band_near(matte, None, radius, side, near, threads)
        rs, rn = reference_band(matte, matte, radius)
        np.testing.assert_array_equal(side, rs)
        np.testing.assert_array_equal(near, rn)
        ys, xs = np.nonzero(rn)
        assert box == ((ys.min(), ys.max(), xs.min(), xs.max()) if radius else (300, -1, 800, -1))


def test_near_other_side_of_a_mask():
    from synthdof._refine import _near_other_side

    side = rng.random((50, 70)) < 0.3
    for radius in (1, 2, 9):
        np.testing.assert_array_equal(_near_other_side(side, radius, 2),
                                      reference_band(side.astype(np.float32), side.astype(np.float32), radius)[1])


def reference_edge_fill(values, weight, guide, sigma_s, sigma_r, widenings, need):
    """The NumPy loop the C fill replaces: weigh, filter (the C filter), normalise, widen (guided:
    until a widening fills nothing)."""
    H, W = weight.shape
    C = values.shape[2]
    out = np.zeros((H, W, C), np.float32)
    todo = need.copy()
    weighted = np.empty((H, W, C + 1), np.float32)
    weighted[..., :C] = values * weight[..., None]
    weighted[..., C] = weight
    for k in range(widenings):
        buf = weighted.copy()
        _core.edge_filter(buf, guide, float(sigma_s * 4 ** k), float(sigma_r), 3, 1)
        den = buf[..., C]
        ok = todo & (den > 1e-4)
        out[ok] = buf[ok, :C] / den[ok, None]
        todo &= ~ok
        if not todo.any() or (guide is not None and k > 0 and not ok.any()):
            break
    return out, todo


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("guided", [False, True])
def test_edge_fill_matches_the_numpy_loop(C, guided):
    H, W = 47, 63
    big = rng.random((H + 10, W + 7, C), dtype=np.float32)
    values = big[3:3 + H, 2:2 + W]  # rows strided, as a box cut from a map
    weight = (rng.random((H + 2, W), dtype=np.float32) * (rng.random((H + 2, W)) < 0.3))[1:-1]
    weight[:, 20:] = 0  # a wide hole: the fill must widen
    guide = rng.random((H, W, 3), dtype=np.float32) if guided else None
    need = rng.random((H, W)) < 0.8
    ref_out, ref_todo = reference_edge_fill(values, weight, guide, 1.5, 0.1, 4, need)
    for nt in (1, 2):
        out, todo = np.zeros((H, W, C), np.float32), need.copy()
        left = _core.edge_fill(values, weight, guide, 1.5, 0.1, 3, 4, 1e-4, todo, out, nt)
        assert_same_bits(out, ref_out)
        np.testing.assert_array_equal(todo, ref_todo)
        assert left == int(ref_todo.sum())


@pytest.mark.parametrize("guided", [False, True])
def test_edge_fill_of_a_few_pixels_runs_on_boxes_around_them(guided):
    """A few pixels to fill (a sensor's walled-in pixels, a few holes) are filled on boxes 6 sigmas
    around them instead of the whole frame: what lies farther weighs under 1e-3 of the nearest, so
    the result is the whole frame's to that, and the same pixels are filled."""
    H, W = 180, 240
    values = rng.random((H, W, 1), dtype=np.float32)
    weight = np.ones((H, W), np.float32)
    need = np.zeros((H, W), bool)
    for y, x in ((20, 30), (25, 200), (150, 120)):  # three holes far apart: three boxes
        weight[y - 4:y + 5, x - 6:x + 7] = 0
        need[y - 4:y + 5, x - 6:x + 7] = True
    guide = rng.random((H, W, 3), dtype=np.float32) * 0.05 if guided else None
    ref_out, ref_todo = reference_edge_fill(values, weight, guide, 1.5, 0.1, 4, need)
    assert not ref_todo.any()
    for nt in (1, 2):
        out, todo = np.zeros((H, W, 1), np.float32), need.copy()
        assert _core.edge_fill(values, weight, guide, 1.5, 0.1, 3, 4, 1e-4, todo, out, nt) == 0
        np.testing.assert_array_equal(todo, ref_todo)
        assert (out[~need] == 0).all()
        np.testing.assert_allclose(out[need], ref_out[need], rtol=0, atol=2e-3)
        if nt == 1:
            first = out
        else:
            assert_same_bits(out, first)


def highlighted_guide(lin):
    """The whole frame's guide as refine made it before the upsampling read the linear image:
    the sRGB encoding, plus HIGHLIGHT_PER_STOP per doubling over 1, in float32 as NumPy adds it."""
    from synthdof._refine import HIGHLIGHT_PER_STOP

    guide = np.empty_like(lin)
    _core.srgb_encode_base(lin, guide, 1)
    _core.srgb_encode_finish(lin, guide, 1)
    over = lin > 1
    guide[over] = guide[over] + np.float32(HIGHLIGHT_PER_STOP) * np.log2(lin[over])
    return guide


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("lo_shape, shape", [((12, 17), (96, 136)), ((9, 13), (31, 47)), ((5, 4), (5, 4))])
def test_guided_upsample_of_the_linear_image_has_the_bits_of_its_encoded_guide(nt, lo_shape, shape):
    from synthdof._refine import FILL_SIGMA_R, _highlights

    (h, w), (H, W) = lo_shape, shape
    lin = odd_floats((H, W, 3))
    lin[lin < 1e30] *= 4  # a third of the values over 1, some far over
    lin.reshape(-1)[10:14] = [1.0, np.nextafter(np.float32(1), np.float32(2)), 3e38, 2.0]
    q = rng.uniform(0.1, 1.0, (h, w)).astype(np.float32)  # no two samples agree: every window reads colours
    weight = (rng.random((h, w)) > 0.1).astype(np.float32)
    guide = highlighted_guide(lin)
    guide_lo = np.ascontiguousarray(guide[rng.integers(0, H, h)][:, rng.integers(0, W, w)])

    def upsample(g, highlights):
        out, found = np.empty((H, W), np.float32), np.empty((H, W), np.float32)
        _core.guided_upsample(q, weight, guide_lo, g, highlights, FILL_SIGMA_R, out, found, nt)
        return out, found

    over, add = _highlights(lin, nt)
    assert over.size > lin.size // 5
    ref = upsample(guide, None)
    for got, want in zip(upsample(lin, (over, add)), ref):
        assert_same_bits(got, want)
    # the highlight terms matter: left out, the result differs
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert not np.array_equal(upsample(lin, empty)[0], ref[0])


@pytest.mark.parametrize("nt", [1, 2])
def test_guided_upsample_reports_the_pixels_no_sample_reached(nt):
    from synthdof._refine import FILL_SIGMA_R

    h, w, H, W = 20, 24, 80, 96
    q = rng.uniform(0.1, 1.0, (h, w)).astype(np.float32)
    weight = np.ones((h, w), np.float32)
    weight[4:12, 6:15] = 0  # wider than a window: the pixels in its middle have no valid sample
    guide = rng.random((H, W, 3), dtype=np.float32)
    guide_lo = np.ascontiguousarray(guide[2::4, 2::4])
    out, found = np.full((H, W), 7, np.float32), np.full((H, W), 7, np.float32)
    unreached = _core.guided_upsample(q, weight, guide_lo, guide, None, FILL_SIGMA_R, out, found, nt)
    # a pixel is reached where a valid sample lies within the tent's reach (2 samples) of its centre
    ys, xs = (np.arange(H) + 0.5) * h / H - 0.5, (np.arange(W) + 0.5) * w / W - 0.5
    near_y = np.abs(ys[:, None] - np.arange(h)[None, :]) < 2
    near_x = np.abs(xs[:, None] - np.arange(w)[None, :]) < 2
    reached = (near_y.astype(int) @ weight @ near_x.T.astype(int)) > 0
    assert 0 < unreached == (~reached).sum()
    np.testing.assert_array_equal(found, reached.astype(np.float32))
    assert (out[~reached] == 0).all() and (out[reached] > 0).all()
    # without the map (refine asks for it only where a pixel is unreached): the same count and values
    out2 = np.full((H, W), 7, np.float32)
    assert _core.guided_upsample(q, weight, guide_lo, guide, None, FILL_SIGMA_R, out2, None, nt) == unreached
    assert_same_bits(out2, out)
    assert _core.guided_upsample(q, np.ones_like(weight), guide_lo, guide, None, FILL_SIGMA_R, out2, None, nt) == 0


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("linear", [False, True])
def test_guided_upsample_computes_only_the_pixels_it_is_asked_for(nt, linear):
    from synthdof._refine import FILL_SIGMA_R, UPSAMPLE_AGREE, _highlights

    h, w, H, W = 20, 24, 80, 96
    q = rng.uniform(0.1, 1.0, (h, w)).astype(np.float32)
    q[:, 11:] *= 3  # a depth edge: windows there weigh the colours
    weight = np.ones((h, w), np.float32)
    weight[4:12, 6:15] = 0  # and pixels no valid sample reaches
    guide = rng.uniform(0, 2 if linear else 1, (H, W, 3)).astype(np.float32)
    guide_lo = np.ascontiguousarray(guide[2::4, 2::4])
    highlights = _highlights(guide, 1) if linear else None
    whole, whole_found = np.empty((H, W), np.float32), np.empty((H, W), np.float32)
    _core.guided_upsample(q, weight, guide_lo, guide, highlights, FILL_SIGMA_R, whole, whole_found, nt)
    need = rng.random((H, W)) < 0.05
    need[30:50, 20:60] = True  # a block across the edge and the unreached pixels
    need[:, 95] = True  # the last column: a run's end at the frame's
    out, found = np.full((H, W), 7, np.float32), np.full((H, W), 7, np.float32)
    unreached = _core.guided_upsample(q, weight, guide_lo, guide, highlights, FILL_SIGMA_R, out, found, nt,
                                      UPSAMPLE_AGREE, need)
    assert_same_bits(out[need], whole[need])
    assert_same_bits(found[need], whole_found[need])
    assert (out[~need] == 7).all() and (found[~need] == 7).all()  # the rest as they were
    assert 0 < unreached == (whole_found[need] == 0).sum()
    none = np.zeros((H, W), bool)
    assert _core.guided_upsample(q, weight, guide_lo, guide, highlights, FILL_SIGMA_R, out, None, nt,
                                 UPSAMPLE_AGREE, none) == 0
    with pytest.raises(ValueError, match="need"):
        _core.guided_upsample(q, weight, guide_lo, guide, highlights, FILL_SIGMA_R, out, None, nt,
                              UPSAMPLE_AGREE, need[:-1])


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", [(1, 1), (3, 70), (70, 3), (37, 53), (4500, 3)])
@pytest.mark.parametrize("layout", ["c", "transposed", "reversed", "every_other_column"])
def test_copy_scan_matches_numpy(nt, shape, layout):
    base = odd_floats((shape[1], shape[0]) if layout == "transposed" else
                      (shape[0], 2 * shape[1]) if layout == "every_other_column" else shape)
    view = {"c": base, "transposed": base.T, "reversed": base[::-1, ::-1],
            "every_other_column": base[:, ::2]}[layout]
    assert view.shape == shape
    for bad in [None, (shape[0] // 2, shape[1] - 1), (shape[0] - 1, 0)]:
        v = view.copy()
        if bad is not None:
            v[bad] = np.nan if bad[1] else -np.inf
        v = {"c": v, "transposed": np.asfortranarray(v), "reversed": v[::-1, ::-1].copy()[::-1, ::-1],
             "every_other_column": np.repeat(v, 2, axis=1)[:, ::2]}[layout]
        packed = np.full(shape, 7, np.float32)
        first, lo, hi = _core.copy_scan(v, None if layout == "c" else packed, nt)
        if layout != "c":
            assert_same_bits(packed, np.ascontiguousarray(v))
        nonfinite = np.flatnonzero(~np.isfinite(v))
        assert first == (nonfinite[0] if nonfinite.size else -1)
        if np.isnan(v).all():
            continue
        assert (lo, hi) == (np.nanmin(v), np.nanmax(v))
    with pytest.raises(ValueError, match="out"):
        _core.copy_scan(view, np.empty((shape[0] + 1, shape[1]), np.float32), nt)
    with pytest.raises(ValueError, match="out"):
        _core.copy_scan(base, base, nt)


def test_guided_upsample_refuses_bad_highlights():
    q, lin = np.ones((3, 4), np.float32), np.full((6, 8, 3), 2.0, np.float32)
    out = np.empty((6, 8), np.float32)
    add = np.ones(3, np.float32)
    for highlights, error in [((np.array([0, 2, 1]), add), "ascend"), ((np.array([0, 1, 144]), add), "ascend"),
                              ((np.array([-1, 0, 1]), add), "ascend"), ((np.array([0, 1]), add), "add"),
                              ((np.array([0, 1, 2], np.int32), add), "int64"),
                              ((np.array([0, 1, 2]), add.astype(np.float64)), "float32")]:
        with pytest.raises(ValueError, match=error):
            _core.guided_upsample(q, q, lin[:3, :4].copy(), lin, highlights, 0.1, out, out.copy(), 1)
    with pytest.raises(TypeError, match="highlights"):
        _core.guided_upsample(q, q, lin[:3, :4].copy(), lin, [np.arange(3), add], 0.1, out, out.copy(), 1)


def test_bad_arguments_are_refused():
    f = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="out"):
        _core.srgb_encode_base(np.zeros((4, 5, 3), np.float32), np.zeros((4, 5), np.float32), 1)
    with pytest.raises(ValueError, match="overlap"):
        _core.srgb_encode_finish(f, f, 1)
    with pytest.raises(TypeError, match="image"):
        _core.unorm_to_float(np.zeros((4, 5), np.int16), f, 1)
    with pytest.raises(ValueError, match="invalid"):
        _core.disparity_in(f, np.zeros((4, 5), np.float32), False, f.copy(), f.copy(), 1)
    with pytest.raises(ValueError, match="near"):
        _core.band_near(f, None, 2, np.zeros((4, 5), bool), np.zeros((4, 6), bool), 1)
    with pytest.raises(ValueError, match="radius"):
        _core.band_near(f, None, -1, np.zeros((4, 5), bool), np.zeros((4, 5), bool), 1)
    with pytest.raises(ValueError, match="out"):
        _core.edge_fill(np.zeros((4, 5, 2), np.float32), f, None, 1.0, 1.0, 3, 4, 1e-4, np.ones((4, 5), bool),
                        np.zeros((4, 5, 3), np.float32), 1)
    with pytest.raises(ValueError, match="todo"):
        _core.edge_fill(np.zeros((4, 5, 1), np.float32), f, None, 1.0, 1.0, 3, 4, 1e-4, np.ones((4, 5), np.int32),
                        np.zeros((4, 5, 1), np.float32), 1)
    with pytest.raises(ValueError, match="widenings"):
        _core.edge_fill(np.zeros((4, 5, 1), np.float32), f, None, 1.0, 1.0, 3, 0, 1e-4, np.ones((4, 5), bool),
                        np.zeros((4, 5, 1), np.float32), 1)


def reference_continue_sides(q, side, near, band, kept, nt):
    """The NumPy expressions the C pass replaces (around the same fills)."""
    from synthdof._refine import (BEYOND_PULL, BLUR_PULL, BLURRED_SHARE, RING_PX, SIDE_TOLERANCE, _edge_fill,
                                  _near_other_side)

    sure = ~near
    fg = _edge_fill(q[..., None], (side & sure).astype(np.float32), None, band, 1.0, nt, need=near)[..., 0]
    bg = _edge_fill(q[..., None], (~side & sure).astype(np.float32), None, band, 1.0, nt, need=near)[..., 0]
    cont, other = np.where(side, fg, bg), np.where(side, bg, fg)
    reached = np.where(side, (side & sure).any(), (~side & sure).any())
    pulled = np.abs(q - cont) > SIDE_TOLERANCE * np.abs(cont)
    if kept.any():
        gap = other - cont
        ok = (~side & sure).any() & (side & sure).any() & (np.abs(gap) > SIDE_TOLERANCE * np.abs(cont))
        with np.errstate(divide="ignore", invalid="ignore"):
            pull = np.where(ok, (q - cont) / np.where(ok, gap, 1), 0)
        between = pull <= BEYOND_PULL
        ring = _near_other_side(side, RING_PX)
        blurred = _edge_fill(((pull >= BLUR_PULL) & between).astype(np.float32)[..., None], ring.astype(np.float32),
                             None, 3 * band, 1.0, nt, need=near & kept)[..., 0]
        pulled &= ~kept | (between & ((blurred >= BLURRED_SHARE) | (pull > 0.5)))
    return np.where(near & reached & pulled, cont, q).astype(np.float32)


def sides_case(H, W, band, kept_kind, subject="disk"):
    """A blurred two-depth map around a subject (the matte's side), its band, and a box of them."""
    from synthdof._refine import _band

    yy, xx = np.mgrid[:H, :W]
    if subject == "disk":
        matte = (np.hypot(yy - H * 0.45, xx - W * 0.55) < min(H, W) * 0.3).astype(np.float32)
    elif subject == "all":
        matte = np.ones((H, W), np.float32)
    else:  # ragged: many pieces of 9 x 9 pixels
        matte = np.kron(rng.random((H // 9 + 1, W // 9 + 1)) < 0.5, np.ones((9, 9)))[:H, :W].astype(np.float32)
    q = np.where(matte > 0.5, 0.5, 0.1).astype(np.float32)
    q = q + rng.normal(0, 0.004, (H, W)).astype(np.float32)
    # blur the depth across the boundary for some columns (what the kept test looks for)
    q[:, : W // 2] = (q[:, : W // 2] + np.roll(q[:, : W // 2], 3, axis=1)) / 2
    q[H // 2, :] = 1.5  # a rod in front of both sides: beyond them, kept depth keeps it
    side, near, box = _band(matte, matte, band, int(6 * band) + 1, 1)
    kept = {"none": np.zeros((H, W), bool), "all": np.ones((H, W), bool),
            "some": rng.random((H, W)) < 0.6}[kept_kind]
    return q, side, near, kept, box


@pytest.mark.parametrize("kept_kind", ["none", "all", "some"])
@pytest.mark.parametrize("subject", ["disk", "ragged", "all"])
def test_continue_sides_matches_the_numpy_expressions(kept_kind, subject):
    from synthdof._refine import _continue_sides

    q, side, near, kept, box = sides_case(61, 83, 3, kept_kind, subject)
    if box is None:  # one side only: nothing is near the other (refine skips the step)
        assert subject == "all"
        box = (slice(0, 61), slice(0, 83))
        near = np.zeros_like(side)
        near[20:30, 10:40] = True
    else:
        assert box != (slice(0, 61), slice(0, 83)) or subject == "ragged"
    args = (side[box], near[box], 3, kept[box])  # strided views, as refine passes them
    ref = reference_continue_sides(q[box], *args, 1)
    assert (ref != q[box]).any() or subject == "all"  # the case replaces depth
    for nt in (1, 2):
        q_in = q.copy()
        assert_same_bits(_continue_sides(q_in[box], *args, nt), ref)  # in place, in rows wider than the box
        outside = np.ones(q.shape, bool)
        outside[box] = False
        assert_same_bits(q_in[outside], q[outside])


@pytest.mark.parametrize("kept_kind", ["none", "some"])
def test_continue_sides_of_a_wide_band_fills_on_cells(kept_kind):
    """A band of 8 px or more fills on cells of band / 4 px (sigma 4 cells at most): the result is the
    pixel fills' to a fraction of the sides' own variation, depth outside the band is untouched,
    and 1 and 2 threads agree to the bit."""
    from synthdof._refine import _continue_sides

    q, side, near, kept, box = sides_case(200, 260, 20, kept_kind)
    q += np.float32(0.002) * np.arange(260, dtype=np.float32) * side  # a slanted subject: the reach shows
    args = (side[box], near[box], 20, kept[box])
    ref = reference_continue_sides(q[box], *args, 1)
    outs = []
    for nt in (1, 2):
        q_in = q.copy()
        outs.append(_continue_sides(q_in[box], *args, nt))
        outside = np.ones(q.shape, bool)
        outside[box] = False
        assert_same_bits(q_in[outside], q[outside])
    assert_same_bits(outs[0], outs[1])
    out, band, q0 = outs[0], near[box], q[box]
    assert_same_bits(out[~band], q0[~band])
    replaced, ref_replaced = out != q0, ref != q0
    assert ref_replaced.mean() > 0.05  # the case replaces depth
    assert (replaced != ref_replaced).mean() < 0.015  # a sigma 20 % off: 0.02
    both = replaced & ref_replaced
    np.testing.assert_allclose(out[both], ref[both], rtol=0.04)  # a sigma 20 % off: 0.09


def test_continue_sides_refuses_bad_arguments():
    f = np.zeros((4, 5), np.float32)
    m = np.zeros((4, 5), bool)
    args = lambda **kw: [kw.get(k, v) for k, v in dict(q=f, side=m, near=m, kept=m, band=2, tol=0.005, ring=2,
                                                       pull=0.25, beyond=1.5, share=0.25, minw=1e-4, it=3, wid=9,
                                                       nt=1).items()]
    with pytest.raises(ValueError, match="near"):
        _core.continue_sides(*args(near=np.zeros((4, 6), bool)))
    with pytest.raises(ValueError, match="kept"):
        _core.continue_sides(*args(kept=np.zeros((4, 10), bool)[:, ::2]))
    with pytest.raises(ValueError, match="band"):
        _core.continue_sides(*args(band=0))
    with pytest.raises(ValueError, match="q: must not overlap side"):
        _core.continue_sides(*args(side=f.view(np.uint8)[:, :5]))
    with pytest.raises(ValueError, match="q"):  # replaced in place
        _core.continue_sides(*args(q=np.broadcast_to(np.float32(1), (4, 5))))
    with pytest.raises(ValueError, match="tolerance"):
        _core.continue_sides(*args(tol=float("nan")))


def reference_refine_matte(guide, matte, reach, mode):
    """The NumPy expressions the C pass (csrc/sd_refine_matte.c) replaces: the colour walks of
    every ramp pixel one step at a time, the mask test and the alpha."""
    from synthdof._refine import (AGREEING_SHARE, ALPHA_AGREES, GROWN_MAX, MASK_RAMP_PX, MATTE_IN, MATTE_OUT,
                                  MIN_SIDE_CONTRAST, OFF_LINE, RIDGE_SHARE, RIDGE_STEP)

    H, W = matte.shape
    ramp = (matte > MATTE_OUT) & (matte < MATTE_IN)
    ys, xs = np.nonzero(ramp)
    out = matte.copy()
    if ys.size == 0:
        return out
    if mode == "auto":
        c = matte[ys, xs]
        ridge = np.zeros(ys.shape, bool)
        for a, b in ((matte[np.maximum(ys - 1, 0), xs], matte[np.minimum(ys + 1, H - 1), xs]),
                     (matte[ys, np.maximum(xs - 1, 0)], matte[ys, np.minimum(xs + 1, W - 1)])):
            ridge |= ((c - a > RIDGE_STEP) & (c - b > RIDGE_STEP)) | ((a - c > RIDGE_STEP) & (b - c > RIDGE_STEP))
        inside = matte > 0.5
        crossings = np.count_nonzero(inside[1:] != inside[:-1]) + np.count_nonzero(inside[:, 1:] != inside[:, :-1])
        if np.mean(ridge) >= RIDGE_SHARE or not ys.size >= MASK_RAMP_PX * crossings:
            return out
    gy = np.zeros(ys.shape, np.float32)
    gx = np.zeros(ys.shape, np.float32)
    for d in (1, 2):
        gy += matte[np.minimum(ys + d, H - 1), xs] - matte[np.maximum(ys - d, 0), xs]
        gx += matte[ys, np.minimum(xs + d, W - 1)] - matte[ys, np.maximum(xs - d, 0)]
    norm = np.hypot(gy, gx)
    ok = norm > 0
    ny, nx = np.where(ok, gy / np.where(ok, norm, 1), 0), np.where(ok, gx / np.where(ok, norm, 1), 0)
    sides = []
    for sign, test in ((1, lambda v: v >= MATTE_IN), (-1, lambda v: v <= MATTE_OUT)):
        c = np.full(ys.shape + (3,), np.nan, np.float32)
        todo = ok.copy()
        for k in range(1, reach + 1):
            py = np.clip(np.rint(ys + sign * k * ny).astype(np.intp), 0, H - 1)
            px = np.clip(np.rint(xs + sign * k * nx).astype(np.intp), 0, W - 1)
            hit = todo & test(matte[py, px])
            c[hit] = guide[py[hit], px[hit]]
            todo &= ~hit
        sides.append(c)
    F, B = sides
    I = guide[ys, xs]
    d = F - B
    n2 = np.einsum("ij,ij->i", d, d)
    with np.errstate(invalid="ignore"):
        t0 = np.einsum("ij,ij->i", I - B, d) / np.maximum(n2, 1e-12)
        t = np.clip(t0, 0.0, 1.0)
        ok = (n2 > MIN_SIDE_CONTRAST ** 2) & (t0 > -OFF_LINE) & (t0 < 1 + OFF_LINE)
    a = matte[ys, xs]
    if mode == "auto" and ok.any() and np.mean(np.abs(t[ok] - a[ok]) < ALPHA_AGREES) >= AGREEING_SHARE:
        return out
    alpha = np.where(ok, t, np.where(t0 > 1, (a >= 0.5).astype(np.float32), a))
    out[ys, xs] = np.where(a < 0.5, np.minimum(alpha, GROWN_MAX), alpha)
    return out


def matte_case(H, W, kind):
    """An image of a subject on a background (striped, flat, or with colours equal on both sides)
    and a matte: a segmentation mask (a blurred hard mask), an alpha matte with strands, or the
    colours' own alpha (which agrees with them)."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[:H, :W]
    hard = (np.hypot(yy - H * 0.5, (xx - W * 0.45) * 1.3) < min(H, W) * 0.32).astype(np.float32)
    true_alpha = gaussian_filter(hard, 0.7)
    fg = np.stack([0.8 + 0.1 * np.sin(xx / 3), 0.3 + 0.0 * xx, 0.2 + 0.05 * (yy % 4)], -1)
    bg = np.stack([0.1 + 0.05 * (xx % 7 < 3), 0.5 + 0.2 * np.cos(yy / 5), 0.6 + 0.0 * yy], -1)
    if kind == "ties":  # quantised colours: exact ties between a pixel and a side (zero products)
        fg, bg = np.round(fg * 8) / 8, np.round(bg * 8) / 8
    lin = (true_alpha[..., None] * fg + (1 - true_alpha[..., None]) * bg).astype(np.float32)
    if kind == "ties":
        lin = np.round(lin * 8) / 8
    if kind == "alpha":
        matte = true_alpha.copy()
        matte[H // 3:2 * H // 3:3, W // 4] = 0.6  # strands: ridges along a column
    else:
        grown = np.hypot(yy - H * 0.5, (xx - W * 0.45) * 1.3) < min(H, W) * 0.32 + 2  # a mask grown by 2 px
        matte = gaussian_filter(grown.astype(np.float32), 1.5)
    matte[:3, :] = 0.5  # a ramp at the frame's edge: clipped stencils and walks
    return np.ascontiguousarray(lin, np.float32), matte.astype(np.float32)


@pytest.mark.parametrize("kind", ["mask", "ties", "alpha"])
@pytest.mark.parametrize("mode", ["auto", True])
@pytest.mark.parametrize("reach", [0, 4, 12])
def test_matte_ramp_matches_the_numpy_walks(kind, mode, reach):
    from synthdof._refine import _refine_matte

    lin, matte = matte_case(57, 71, kind)
    guide = linear_to_srgb(lin).astype(np.float32)
    _core.srgb_encode_base(lin, guide, 1)
    _core.srgb_encode_finish(lin, guide, 1)
    ref = reference_refine_matte(guide, matte, reach, mode)
    if kind == "mask" and reach == 12:
        assert (ref != matte).any()  # the case re-estimates the ramp
    for nt in (1, 2):
        assert_same_bits(_refine_matte(guide, False, matte, reach, mode, nt), ref)
        assert_same_bits(_refine_matte(lin, True, matte, reach, mode, nt), ref)  # encoded on reading


@pytest.mark.parametrize("alpha_first", [True, False])
def test_matte_ramp_keeps_an_agreeing_matte_only_when_the_whole_ramp_agrees(alpha_first):
    """An alpha matte that agrees with its colours above a mask that does not, stacked with more or
    fewer mask rows: the pass may stop computing alphas once the whole ramp is certain to agree
    (csrc/sd_refine_matte.c), and must give the NumPy walks' result either way, kept or not."""
    from synthdof._refine import _refine_matte

    kept = []
    for mask_rows in (20, 57, 120, 240):
        lin_a, m_a = matte_case(57, 71, "alpha")
        lin_m, m_m = matte_case(mask_rows, 71, "mask")
        parts = [(lin_a, m_a), (lin_m, m_m)] if alpha_first else [(lin_m, m_m), (lin_a, m_a)]
        lin = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
        matte = np.ascontiguousarray(np.concatenate([p[1] for p in parts]))
        guide = np.empty_like(lin)
        _core.srgb_encode_base(lin, guide, 1)
        _core.srgb_encode_finish(lin, guide, 1)
        ref = reference_refine_matte(guide, matte, 8, "auto")
        kept.append(bool((ref == matte).all()))
        for nt in (1, 2):
            assert_same_bits(_refine_matte(guide, False, matte, 8, "auto", nt), ref)
            assert_same_bits(_refine_matte(lin, True, matte, 8, "auto", nt), ref)
    assert kept[0] and not kept[-1]  # both outcomes: the alpha's share decides, not where it lies


def test_matte_ramp_refuses_bad_arguments():
    f = np.zeros((4, 5), np.float32)
    c = np.zeros((4, 5, 3), np.float32)
    params = (0.02, 0.98, 0.035 ** 2, 0.25, 0.9, 0.1, 0.5, 0.05, 0.12, 2.0, 4, True)
    with pytest.raises(ValueError, match="colour"):
        _core.matte_ramp(f, np.zeros((4, 6, 3), np.float32), False, params, np.zeros((4, 5), np.float32), 1)
    with pytest.raises(ValueError, match="colour"):
        _core.matte_ramp(f, np.zeros((4, 5, 4), np.float32), False, params, np.zeros((4, 5), np.float32), 1)
    with pytest.raises(ValueError, match="reach"):
        _core.matte_ramp(f, c, False, params[:10] + (-1, True), np.zeros((4, 5), np.float32), 1)
    with pytest.raises(ValueError, match="overlap"):
        _core.matte_ramp(f, c, False, params, f, 1)


@pytest.mark.parametrize("shape, cells", [((37, 53), (9, 13)), ((64, 48), (8, 6)), ((5, 7), (5, 7)), ((9, 1), (2, 1))])
def test_cell_means_are_weighted_means_over_the_cells(shape, cells):
    q = (rng.random(shape, dtype=np.float32) * 3 + 0.1).astype(np.float32)
    weight = np.where(rng.random(shape) < 0.3, 0.0, rng.random(shape) + 0.2).astype(np.float32)
    weight[: shape[0] // 3, : shape[1] // 3] = 0  # cells with no weight at all
    H, W = shape
    h, w = cells
    want_q, want_w, want_s = (np.zeros(cells, np.float32) for _ in range(3))
    for j in range(h):
        for i in range(w):
            rows, cols = slice(j * H // h, (j + 1) * H // h), slice(i * W // w, (i + 1) * W // w)
            wq, ww = weight[rows, cols].astype(np.float64), q[rows, cols].astype(np.float64)
            want_q[j, i] = mean = (wq * ww).sum() / wq.sum() if wq.sum() > 0 else 0.0
            want_w[j, i] = wq.mean()
            if wq.sum() > 0:
                want_s[j, i] = np.sqrt((wq * (ww - mean) ** 2).sum() / wq.sum()) / abs(mean)
    first_q = None
    for nt in (1, 2, 3):
        got_q, got_w, got_s = (np.full(cells, np.nan, np.float32) for _ in range(3))
        _core.cell_means(q, weight, got_q, got_w, got_s if nt > 1 else None, nt)
        np.testing.assert_allclose(got_q, want_q, rtol=1e-6, atol=0)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-6, atol=0)
        if nt > 1:
            np.testing.assert_allclose(got_s, want_s, rtol=1e-5, atol=1e-7)
        if nt == 1:
            first_q = got_q
        else:  # the same bits for any thread count
            assert_same_bits(got_q, first_q)
    with pytest.raises(ValueError, match="out_q"):
        _core.cell_means(q, weight, np.empty((H + 1, w), np.float32), np.empty((H + 1, w), np.float32), None, 1)


@pytest.mark.parametrize("nt", [1, 2])
def test_cell_means_of_colours_are_each_channels_means(nt):
    H, W, h, w = 41, 58, 10, 14
    colour = rng.random((H, W, 3), dtype=np.float32)
    weight = (rng.random((H, W)) < 0.6).astype(np.float32)
    weight[:9, :9] = 0  # a cell with no weight: 0, as one channel's
    got, got_w = np.full((h, w, 3), np.nan, np.float32), np.full((h, w), np.nan, np.float32)
    _core.cell_means(colour, weight, got, got_w, None, nt)
    for c in range(3):
        one, one_w = np.empty((h, w), np.float32), np.empty((h, w), np.float32)
        _core.cell_means(np.ascontiguousarray(colour[..., c]), weight, one, one_w, None, nt)
        assert_same_bits(got[..., c], one)
        assert_same_bits(got_w, one_w)
    # against the means in double here
    for j, i in [(0, 0), (3, 5), (h - 1, w - 1)]:
        rows, cols = slice(j * H // h, (j + 1) * H // h), slice(i * W // w, (i + 1) * W // w)
        wt = weight[rows, cols].astype(np.float64)[..., None]
        want = (wt * colour[rows, cols]).sum((0, 1)) / wt.sum() if wt.sum() else np.zeros(3)
        np.testing.assert_allclose(got[j, i], want, rtol=1e-6)
    # weight None is a weight of 1 everywhere, to the bit
    ones_q, ones_w = np.empty((h, w, 3), np.float32), np.empty((h, w), np.float32)
    _core.cell_means(colour, np.ones((H, W), np.float32), ones_q, ones_w, None, nt)
    none_q, none_w = np.empty((h, w, 3), np.float32), np.empty((h, w), np.float32)
    _core.cell_means(colour, None, none_q, none_w, None, nt)
    assert_same_bits(none_q, ones_q)
    assert_same_bits(none_w, ones_w)
    with pytest.raises(ValueError, match="out_spread"):
        _core.cell_means(colour, weight, got, got_w, np.empty((h, w), np.float32), nt)
    with pytest.raises(ValueError, match="out_q"):
        _core.cell_means(colour, weight, np.empty((h, w, 2), np.float32), got_w, None, nt)


def _numpy_enlargement(small, H, W, sy, sx):
    """refine's former float64 NumPy enlargement of `small` to (H, W), the reference."""
    h, w = small.shape
    ys = np.clip((np.arange(H) + 0.5) / sy - 0.5, 0, h - 1)
    xs = np.clip((np.arange(W) + 0.5) / sx - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(np.intp), np.floor(xs).astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    rows = small[y0] * (1 - fy) + small[y1] * fy
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape, scales", [((60, 90), (6.0, 6.0)), ((61, 47), (3.0, 4.7)), ((9, 200), (1.0, 7.5))])
def test_enlargement_fits_decides_as_the_float64_numpy_test(nt, shape, scales):
    H, W = shape
    sy, sx = scales
    small = rng.uniform(0.2, 5.0, (int(np.ceil(H / sy)), int(np.ceil(W / sx))))
    d = np.ascontiguousarray(_numpy_enlargement(small, H, W, sy, sx), np.float32)
    d[H // 2, W // 3] *= np.float32(1.00003)  # an error the float32 rounding alone does not make
    err = np.abs(_numpy_enlargement(small, H, W, sy, sx) - d.astype(np.float64)).max()
    # the same arithmetic: fits at exactly the largest error, not a float64 step below it
    assert _core.enlargement_fits(d, small, sy, sx, err, nt) is True
    assert _core.enlargement_fits(d, small, sy, sx, np.nextafter(err, 0), nt) is False
    d[-1, -1] += np.float32(10 * err)
    assert _core.enlargement_fits(d, small, sy, sx, err, nt) is False
    with pytest.raises(ValueError, match="sy, sx"):
        _core.enlargement_fits(d, small, 0.5, sx, err, nt)
    with pytest.raises(ValueError, match="small"):
        _core.enlargement_fits(d, small.astype(np.float32), sy, sx, err, nt)


def test_packed_float32_copies_a_strided_view_on_the_core():
    from synthdof._validate import packed_float32

    a = rng.random((70, 45), dtype=np.float32)
    for view in (a.T, a[::-1], a[:, ::2]):
        got = packed_float32(view, 2)
        assert got.flags.c_contiguous and got.dtype == np.float32
        assert_same_bits(got, np.ascontiguousarray(view))
    assert packed_float32(a, 2) is a
    assert packed_float32(a.astype(np.float64).T, 2).dtype == np.float32


def on_ramp(q, gap):
    """Pixels strictly between both neighbours along a row or a column, each more than gap away."""
    ramp = np.zeros(q.shape, bool)
    a, b = q[:, :-2] - q[:, 1:-1], q[:, 1:-1] - q[:, 2:]
    ramp[:, 1:-1] |= ((a > gap) & (b > gap)) | ((a < -gap) & (b < -gap))
    a, b = q[:-2] - q[1:-1], q[1:-1] - q[2:]
    ramp[1:-1] |= ((a > gap) & (b > gap)) | ((a < -gap) & (b < -gap))
    return ramp


def blurred_steps_reference(q, cells, r, tau, lo, hi, lo_s=None, hi_s=None):
    """Each pixel's cell window (clipped at the frame) fitted by np.linalg.lstsq: flag where the
    residual's RMS exceeds tau x the cell's disparity, the pixel lies on a ramp (strictly between
    its neighbours along a row or a column, each half the window's mean slope away) and between lo
    and hi of the window's range, or between lo_s and hi_s beside such a pixel (4-neighbours);
    also how near each residual lies to its threshold (relative)."""
    lo_s = lo if lo_s is None else lo_s
    hi_s = hi if hi_s is None else hi_s
    H, W = q.shape
    h, w = cells.shape
    cy = np.repeat(np.arange(h), np.diff((np.arange(h + 1) * H) // h))
    cx = np.repeat(np.arange(w), np.diff((np.arange(w + 1) * W) // w))
    flag = np.zeros((H, W), bool)
    shoulder = np.zeros((H, W), bool)
    margin = np.full((H, W), np.inf)
    for j in range(h):
        for i in range(w):
            ys, xs = np.mgrid[max(0, j - r):min(h, j + r + 1), max(0, i - r):min(w, i + r + 1)]
            v = cells[ys, xs].astype(np.float64).ravel()
            cols = [np.ones(v.size)]
            if ys.shape[0] > 1:
                cols.append((ys - j).ravel().astype(np.float64))
            if xs.shape[1] > 1:
                cols.append((xs - i).ravel().astype(np.float64))
            A = np.stack(cols, 1)
            beta = np.linalg.lstsq(A, v, rcond=None)[0]
            res = float(((v - A @ beta) ** 2).sum())
            thr = tau * tau * float(cells[j, i]) ** 2 * v.size
            mn, mx = v.min(), v.max()
            at = (cy[:, None] == j) & (cx[None, :] == i)
            d = q[at].astype(np.float64) - mn
            gap = np.float32(0.5 * (mx - mn) / ((2 * r + 1) * H / h))
            ramp = on_ramp(q, gap)[at]
            between = (mx > mn) & (d > lo * (mx - mn)) & (d < hi * (mx - mn)) & ramp
            wide = (mx > mn) & (d > lo_s * (mx - mn)) & (d < hi_s * (mx - mn)) & ramp
            flag[at] = between & (res > thr)
            shoulder[at] = wide & ~between & (res > thr)
            margin[at] = np.where(wide, abs(res - thr) / max(thr, 1e-30), np.inf)
    beside = np.zeros_like(flag)
    beside[1:] |= flag[:-1]
    beside[:-1] |= flag[1:]
    beside[:, 1:] |= flag[:, :-1]
    beside[:, :-1] |= flag[:, 1:]
    # a near-threshold decision may spread to the shoulders beside it
    near = margin < 1e-6
    spread = np.zeros_like(near)
    spread[1:] |= near[:-1]
    spread[:-1] |= near[1:]
    spread[:, 1:] |= near[:, :-1]
    spread[:, :-1] |= near[:, 1:]
    margin[shoulder & spread] = 0.0
    return flag | (shoulder & beside), margin


@pytest.mark.parametrize("cell", [1, 3])
def test_blurred_steps_match_a_least_squares_fit_per_window(cell):
    # a slanted plane, a sharp step, a blurred step and a bump, with a little texture
    H, W = 45, 61
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    q = 0.2 + 0.004 * x + 0.002 * y
    q = q + np.where(x > 40, 0.3, 0.0) + 0.25 / (1 + np.exp(-(y - 20) / 1.5)) * (x < 30)
    q = (q * (1 + 0.002 * rng.standard_normal((H, W)))).astype(np.float32)
    if cell > 1:
        cells = np.empty((H // cell, W // cell), np.float32)
        _core.cell_means(q, np.ones_like(q), cells, np.empty_like(cells), np.empty_like(cells), 2)
    else:
        cells = q
    want, margin = blurred_steps_reference(q, cells, 2, 0.01, 0.15, 0.85, 0.05, 0.95)
    for nt in (1, 2):
        flag = np.empty((H, W), bool)
        n = _core.blurred_steps(q, cells, 2, 0.01, (0.15, 0.85), (0.05, 0.95), 0.05, flag, nt)[0]
        differ = flag != want
        assert not (differ & (margin > 1e-6)).any()
        assert n == flag.sum() and 20 < n < H * W // 3


def test_blurred_steps_leave_planes_and_sharp_steps_alone():
    H, W = 200, 150  # several blocks of rows
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    plane = (0.1 + 0.003 * x + 0.001 * y).astype(np.float32)
    sharp = np.where((x > 70) | (y < 30), plane + 0.5, plane).astype(np.float32)
    for q in (plane, sharp):
        flag = np.ones((H, W), bool)
        n, jumps = _core.blurred_steps(q, q, 4, 0.01, (0.15, 0.85), (0.05, 0.95), 0.05, flag, 2)
        assert n == 0 and not flag.any()
        # the sharp step's jumps: one per row at column 70, one per column at row 30 (and overlap)
        assert jumps == (0 if q is plane else int((np.abs(np.diff(q, axis=1)) > 0.05 * q[:, 1:]).sum()
                                                  + (np.abs(np.diff(q, axis=0)) > 0.05 * q[1:]).sum()))
        assert q is plane or jumps > H
    blurred = (0.1 + 0.5 / (1 + np.exp(-(x - 70.5) / 2.0))).astype(np.float32)
    flags = [np.empty((H, W), bool) for _ in range(3)]
    counts = [_core.blurred_steps(blurred, blurred, 4, 0.01, (0.15, 0.85), (0.05, 0.95), 0.05, f, nt)[0]
              for f, nt in zip(flags, (1, 2, 3))]
    assert counts[0] == counts[1] == counts[2] > 0
    assert (flags[0] == flags[1]).all() and (flags[0] == flags[2]).all()
    cols = np.flatnonzero(flags[0].any(0))
    assert cols.min() >= 64 and cols.max() <= 77  # the ramp's middle only


def test_blurred_steps_reject_what_they_cannot_take():
    q = np.ones((8, 9), np.float32)
    flag = np.empty((8, 9), bool)
    for bad in (np.nan, np.inf, 0.0, -1.0):
        qb = q.copy()
        qb[3, 4] = bad
        with pytest.raises(ValueError, match="finite and > 0"):
            _core.blurred_steps(qb, qb, 2, 0.01, (0.15, 0.85), (0.05, 0.95), 0.05, flag, 1)
    with pytest.raises(ValueError, match="radius"):
        _core.blurred_steps(q, q, 0, 0.01, (0.15, 0.85), (0.05, 0.95), 0.05, flag, 1)
    for between, shoulder in (((0.9, 0.1), (0.05, 0.95)), ((0.15, 0.85), (0.2, 0.95)), ((0.15, 0.85), (0.05, 1.5))):
        with pytest.raises(ValueError, match="lo_s <= lo <= hi <= hi_s"):
            _core.blurred_steps(q, q, 2, 0.01, between, shoulder, 0.05, flag, 1)
    with pytest.raises(ValueError, match="cells"):
        _core.blurred_steps(q, np.ones((9, 9), np.float32), 2, 0.01, (0.15, 0.85), (0.05, 0.95), 0.05, flag, 1)


def step_fill_reference(q, stepped, colour, cells, reach, sigma_s, sigma_r):
    """Each stepped pixel takes the mean q of the candidate cell of least cost (place and colour;
    the cell's colour: its unstepped pixels' mean sRGB-encoded) by a direct search in double."""
    from synthdof._color import linear_to_srgb

    H, W = q.shape
    h, w = cells
    cy = np.repeat(np.arange(h), np.diff((np.arange(h + 1) * H) // h))
    cx = np.repeat(np.arange(w), np.diff((np.arange(w + 1) * W) // w))
    cq = np.full((h, w), -1.0)
    cc = np.zeros((h, w, 3))
    for j in range(h):
        for i in range(w):
            at = (cy[:, None] == j) & (cx[None, :] == i) & ~stepped
            if at.any():
                cq[j, i] = q[at].astype(np.float64).mean()
                cc[j, i] = linear_to_srgb(colour[at].astype(np.float64).mean(0).astype(np.float32))
    pix = linear_to_srgb(colour).astype(np.float64)
    out = q.copy()
    costs = np.full((H, W), np.inf)
    for y, x in zip(*np.nonzero(stepped)):
        j, i = cy[y], cx[x]
        best = []
        for jj in range(max(0, j - reach), min(h, j + reach + 1)):
            for ii in range(max(0, i - reach), min(w, i + reach + 1)):
                if cq[jj, ii] < 0:
                    continue
                dy = (jj + 0.5) * H / h - 0.5 - y
                dx = (ii + 0.5) * W / w - 0.5 - x
                dc = np.abs(cc[jj, ii] - pix[y, x]).sum()
                best.append((0.5 * (dx * dx + dy * dy) / sigma_s**2 + 0.5 * (dc / sigma_r) ** 2, cq[jj, ii]))
        if best:
            best.sort(key=lambda b: b[0])
            out[y, x] = best[0][1]
            # a near tie may go either way within rounding
            costs[y, x] = best[1][0] - best[0][0] if len(best) > 1 else np.inf
    return out, costs


@pytest.mark.parametrize("cell", [1, 3])
def test_step_fill_takes_the_nearest_cell_in_place_and_colour(cell):
    H, W = 30, 42
    y, x = np.mgrid[0:H, 0:W]
    colour = np.where((x > 20)[..., None], [0.1, 0.2, 0.7], [0.7, 0.2, 0.1]).astype(np.float32)
    colour = (colour * (1 + 0.2 * rng.random((H, W, 1)))).astype(np.float32)
    q = np.where(x > 20, 0.5, 0.2).astype(np.float32) + (0.01 * y).astype(np.float32)
    stepped = (np.abs(x - 20.5) < 4) | (rng.random((H, W)) < 0.05)
    h, w = H // cell, W // cell
    want, gap = step_fill_reference(q, stepped, colour, (h, w), 3, 4.0, 0.1)
    for nt in (1, 2):
        out = np.empty_like(q)
        _core.step_fill(q, stepped, colour, True, (h, w), 3, 4.0, 0.1, out, nt)
        ok = np.isclose(out, want, rtol=1e-6, atol=0) | (gap < 1e-9)
        assert ok.all()
        np.testing.assert_array_equal(out[~stepped], q[~stepped])
    inplace = q.copy()
    _core.step_fill(inplace, stepped, colour, True, (h, w), 3, 4.0, 0.1, inplace, 2)
    np.testing.assert_array_equal(inplace, out)
    # each side of the colour edge takes its own side's depth
    band = stepped & (np.abs(x - 20.5) < 4)
    assert (np.abs(out[band] - np.where(x[band] > 20, 0.5, 0.2) - 0.01 * y[band]) < 0.03 + 0.01 * cell).all()
