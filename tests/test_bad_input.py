"""Input handling of every public function, table-driven.

ACCEPTED: unusual but valid inputs (views, negative strides, Fortran order, big-endian, other
dtypes, tiny images) give the same result as the contiguous native float32 call.
REJECTED: invalid inputs raise TypeError/ValueError (MemoryError for absurd sizes) whose message
names the offending argument. Every call checks that no input array was modified."""
import os
import re

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from synthdof import (Aperture, ThinLens, coc_from_disparity, depth_to_disparity, disparity_to_depth,
                      focus_from_matte, gather, linear_to_srgb, render, scatter, srgb_to_linear)

H, W = 12, 17
NCPU = os.cpu_count() or 1
LENS = ThinLens(85, 1.4, 2.0)
LENS_REAL = ThinLens(85, 1.4, 2.0, model="real_lens")


def _inputs():
    rng = np.random.default_rng(99)
    depth = rng.uniform(1.0, 8.0, (H, W)).astype(np.float32)
    return {
        "img": (rng.random((H, W, 3)) * 2).astype(np.float32),
        "gray": rng.random((H, W)).astype(np.float32),
        "u8": rng.integers(0, 256, (H, W, 3)).astype(np.uint8),
        "u16": rng.integers(0, 65536, (H, W, 3)).astype(np.uint16),
        "depth": depth,
        "coc": rng.uniform(-9, 9, (H, W)).astype(np.float32),
        "matte": np.clip(rng.uniform(-0.5, 1.5, (H, W)), 0, 1).astype(np.float32),
        "disp": (1.0 / depth).astype(np.float32),
        "kernel": (np.hypot(*np.mgrid[-10:11, -10:11]) <= 10).astype(np.float32),
        # larger arrays whose strided views are the (H, W[, 3]) inputs
        "big_img": (rng.random((2 * H, 2 * W, 4)) * 2).astype(np.float32),
        "big_map": rng.uniform(1.0, 8.0, (2 * H, 3 * W)).astype(np.float32),
    }


def call(fn, *args, **kwargs):
    """fn(*args, **kwargs), asserting afterwards (also when it raises) that no writeable array
    argument other than `out` was modified."""
    arrays = [a for a in list(args) + [v for k, v in kwargs.items() if k != "out"]
              if isinstance(a, np.ndarray) and a.flags.writeable]  # (read-only views: huge())
    before = [a.copy() for a in arrays]
    try:
        return fn(*args, **kwargs)
    finally:
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b, err_msg="an input array was modified")


def be(a):
    """The same values stored big-endian."""
    return a.astype(a.dtype.newbyteorder(">"))


def rev(a):
    """A negative-stride view holding the same values as `a` (reversed twice, once in memory)."""
    return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]


def wide(a, big):
    """A non-contiguous view (every other row and column of `big`) holding a's values."""
    big = big[: 2 * a.shape[0], : 2 * a.shape[1]].copy()
    view = big[::2, ::2]
    view[...] = a
    return view


def unaligned(a):
    """A float32 array with a's values whose data starts one byte past an aligned address."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    v = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    v[...] = a
    assert not v.flags.aligned
    return v


def huge(ndim3):
    """A broadcast view of 10^6 x 10^6 (x 3) float32 that uses 4 bytes of memory."""
    base = np.ones(1, np.float32)
    shape = (10 ** 6, 10 ** 6, 3) if ndim3 else (10 ** 6, 10 ** 6)
    return as_strided(base, shape=shape, strides=(0,) * len(shape), writeable=False)


def _same(a, b, rtol=0.0):
    if isinstance(a, Aperture):
        np.testing.assert_array_equal(a.spans, b.spans)
        assert (a.vmin, a.vmax) == (b.vmin, b.vmax)
    elif isinstance(a, float):
        assert a == b
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        if rtol:
            np.testing.assert_allclose(a, b, rtol=rtol)
        else:
            np.testing.assert_array_equal(a, b)


# id -> (variant(I), reference(I)[, rtol]); the reference is the plain contiguous native float32
# call, and results must be identical unless an rtol is given
ACCEPTED = {
    # scatter / gather
    "scatter-image-noncontiguous": (lambda I: call(scatter, wide(I["img"], I["big_img"][:, :, :3]), I["coc"]),
                                    lambda I: scatter(I["img"], I["coc"])),
    "scatter-image-negative-strides": (lambda I: call(scatter, rev(I["img"]), I["coc"]),
                                       lambda I: scatter(I["img"], I["coc"])),
    "scatter-image-fortran": (lambda I: call(scatter, np.asfortranarray(I["img"]), I["coc"]),
                              lambda I: scatter(I["img"], I["coc"])),
    "scatter-image-channels-reversed": (lambda I: call(scatter, np.ascontiguousarray(I["img"][:, :, ::-1])[:, :, ::-1],
                                                       I["coc"]),
                                        lambda I: scatter(I["img"], I["coc"])),
    "scatter-image-unaligned": (lambda I: call(scatter, unaligned(I["img"]), I["coc"]),
                                lambda I: scatter(I["img"], I["coc"])),
    "gather-image-fortran": (lambda I: call(gather, np.asfortranarray(I["img"]), I["coc"]),
                             lambda I: gather(I["img"], I["coc"])),
    "scatter-image-channel-slice": (lambda I: call(scatter, I["big_img"][:H, :W, 1:4], I["coc"]),
                                    lambda I: scatter(np.ascontiguousarray(I["big_img"][:H, :W, 1:4]), I["coc"])),
    "scatter-image-bigendian": (lambda I: call(scatter, be(I["img"]), I["coc"]),
                                lambda I: scatter(I["img"], I["coc"])),
    "scatter-image-float64": (lambda I: call(scatter, I["img"].astype(np.float64), I["coc"]),
                              lambda I: scatter(I["img"], I["coc"])),
    "scatter-image-float16": (lambda I: call(scatter, I["img"].astype(np.float16), I["coc"]),
                              lambda I: scatter(I["img"].astype(np.float16).astype(np.float32), I["coc"])),
    "scatter-image-uint8-is-srgb": (lambda I: call(scatter, I["u8"], I["coc"]),
                                    lambda I: scatter(srgb_to_linear(I["u8"]), I["coc"])),
    "scatter-image-uint16-is-srgb": (lambda I: call(scatter, I["u16"], I["coc"]),
                                     lambda I: scatter(srgb_to_linear(I["u16"]), I["coc"])),
    "scatter-gray": (lambda I: call(scatter, I["gray"], I["coc"]),
                     lambda I: scatter(I["gray"][:, :, None], I["coc"])[:, :, 0]),
    # a 1x1 frame folds all its light back into its pixel (the float sum may round by an ulp)
    "scatter-1x1": (lambda I: call(scatter, I["img"][:1, :1], np.full((1, 1), 30.0, np.float32)),
                    lambda I: I["img"][:1, :1].copy(), 1e-6),
    "scatter-coc-noncontiguous": (lambda I: call(scatter, I["img"], wide(I["coc"], I["big_map"])),
                                  lambda I: scatter(I["img"], I["coc"])),
    "scatter-coc-negative-strides": (lambda I: call(scatter, I["img"], rev(I["coc"])),
                                     lambda I: scatter(I["img"], I["coc"])),
    "scatter-coc-fortran-float64": (lambda I: call(scatter, I["img"], np.asfortranarray(I["coc"], np.float64)),
                                    lambda I: scatter(I["img"], I["coc"])),
    "scatter-coc-bigendian": (lambda I: call(scatter, I["img"], be(I["coc"])),
                              lambda I: scatter(I["img"], I["coc"])),
    "scatter-numpy-int-threads": (lambda I: call(scatter, I["img"], I["coc"], num_threads=np.int64(1)),
                                  lambda I: scatter(I["img"], I["coc"])),
    "scatter-threads-minus-one": (lambda I: call(scatter, I["img"], I["coc"], num_threads=-1),
                                  lambda I: scatter(I["img"], I["coc"], num_threads=1)),
    "scatter-threads-all-but": (lambda I: call(scatter, I["img"], I["coc"], num_threads=-NCPU),
                                lambda I: scatter(I["img"], I["coc"], num_threads=1)),
    "scatter-threads-huge-clamped": (lambda I: call(scatter, I["img"], I["coc"], num_threads=10 ** 6),
                                     lambda I: scatter(I["img"], I["coc"], num_threads=1)),
    "gather-image-negative-strides": (lambda I: call(gather, rev(I["img"]), I["coc"]),
                                      lambda I: gather(I["img"], I["coc"])),
    "gather-image-bigendian-coc-view": (lambda I: call(gather, be(I["img"]), wide(I["coc"], I["big_map"])),
                                        lambda I: gather(I["img"], I["coc"])),
    "gather-uint8": (lambda I: call(gather, I["u8"], I["coc"]),
                     lambda I: gather(srgb_to_linear(I["u8"]), I["coc"])),
    # ThinLens.coc and the disparity helpers
    "coc-depth-noncontiguous": (lambda I: call(LENS.coc, wide(I["depth"], I["big_map"])),
                                lambda I: LENS.coc(I["depth"])),
    "coc-depth-negative-strides": (lambda I: call(LENS.coc, rev(I["depth"])),
                                   lambda I: LENS.coc(I["depth"])),
    "coc-depth-fortran": (lambda I: call(LENS_REAL.coc, np.asfortranarray(I["depth"])),
                          lambda I: LENS_REAL.coc(I["depth"])),
    "coc-depth-bigendian": (lambda I: call(LENS.coc, be(I["depth"])),
                            lambda I: LENS.coc(I["depth"])),
    "coc-depth-float64": (lambda I: call(LENS.coc, I["depth"].astype(np.float64)),
                          lambda I: LENS.coc(I["depth"])),
    "coc-depth-float16": (lambda I: call(LENS.coc, I["depth"].astype(np.float16)),
                          lambda I: LENS.coc(I["depth"].astype(np.float16).astype(np.float32))),
    "coc-depth-1x1": (lambda I: call(LENS.coc, I["depth"][:1, :1], 768),
                      lambda I: LENS.coc(np.ascontiguousarray(I["depth"][:1, :1]), 768)),
    "coc-width-int-like": (lambda I: call(LENS.coc, I["depth"], np.int32(768)),
                           lambda I: LENS.coc(I["depth"], 768.0)),
    "thinlens-numpy-scalars": (lambda I: call(ThinLens(np.float32(85), np.int64(2), np.float64(2.0)).coc, I["depth"]),
                               lambda I: ThinLens(85.0, 2.0, 2.0).coc(I["depth"])),
    "coc-disparity-view": (lambda I: call(coc_from_disparity, wide(I["disp"], I["big_map"]), K=110.0,
                                          focus_disparity=0.5),
                           lambda I: coc_from_disparity(I["disp"], K=110.0, focus_disparity=0.5)),
    "coc-disparity-bigendian-float64": (lambda I: call(coc_from_disparity, be(I["disp"].astype(np.float64)),
                                                       K=np.float32(110.0), focus_disparity=np.float64(0.5)),
                                        lambda I: coc_from_disparity(I["disp"], K=110.0, focus_disparity=0.5)),
    "depth-to-disparity-fortran": (lambda I: call(depth_to_disparity, np.asfortranarray(I["depth"])),
                                   lambda I: depth_to_disparity(I["depth"])),
    "disparity-to-depth-reversed": (lambda I: call(disparity_to_depth, rev(I["disp"]), scale=2),
                                    lambda I: disparity_to_depth(I["disp"], scale=2.0)),
    # focus_from_matte
    "focus-views-and-float64": (lambda I: call(focus_from_matte, rev(I["depth"]), I["matte"].astype(np.float64)),
                                lambda I: focus_from_matte(I["depth"], I["matte"])),
    "focus-bigendian-fortran": (lambda I: call(focus_from_matte, be(I["depth"]), np.asfortranarray(I["matte"])),
                                lambda I: focus_from_matte(I["depth"], I["matte"])),
    # Aperture
    "aperture-numpy-ints": (lambda I: call(Aperture, np.int64(6), np.float32(0.25)),
                            lambda I: Aperture(6, float(np.float32(0.25)))),
    "aperture-from-bool-kernel": (lambda I: call(Aperture.from_image, I["kernel"] > 0),
                                  lambda I: Aperture.from_image(I["kernel"])),
    "aperture-from-uint8-kernel": (lambda I: call(Aperture.from_image, (I["kernel"] * 255).astype(np.uint8)),
                                   lambda I: Aperture.from_image(I["kernel"])),
    "aperture-from-kernel-view": (lambda I: call(Aperture.from_image, rev(I["kernel"]).astype(np.float64)),
                                  lambda I: Aperture.from_image(I["kernel"])),
    # render
    "render-image-view-depth-bigendian": (
        lambda I: call(render, wide(I["img"], I["big_img"][:, :, :3]), be(I["depth"]), lens=LENS),
        lambda I: render(I["img"], I["depth"], lens=LENS)),
    "render-matte-fortran-float64": (
        lambda I: call(render, I["img"], rev(I["depth"]), matte=np.asfortranarray(I["matte"], np.float64), lens=LENS),
        lambda I: render(I["img"], I["depth"], matte=I["matte"], lens=LENS)),
    "render-image-float64-coc": (lambda I: call(render, I["img"].astype(np.float64), coc=rev(I["coc"])),
                                 lambda I: render(I["img"], coc=I["coc"])),
    "render-uint8": (lambda I: call(render, I["u8"], coc=I["coc"], highlights="off"),
                     lambda I: linear_to_srgb(render(srgb_to_linear(I["u8"]), coc=I["coc"]), np.uint8)),
    "render-1x1": (lambda I: call(render, I["img"][:1, :1], np.full((1, 1), 5.0, np.float32), lens=LENS),
                   lambda I: I["img"][:1, :1].copy(), 1e-5),
    "render-image-fortran": (lambda I: call(render, np.asfortranarray(I["img"]), coc=I["coc"]),
                             lambda I: render(I["img"], coc=I["coc"])),
    "render-matte-none": (lambda I: call(render, I["img"], I["depth"], matte=None, lens=LENS, num_threads=1),
                          lambda I: render(I["img"], I["depth"], lens=LENS)),
    # sRGB helpers
    "srgb-to-linear-view-bigendian": (lambda I: call(srgb_to_linear, be(rev(I["gray"]))),
                                      lambda I: srgb_to_linear(I["gray"])),
    "linear-to-srgb-float64-view": (lambda I: call(linear_to_srgb, wide(I["gray"], I["big_map"]).astype(np.float64)),
                                    lambda I: linear_to_srgb(I["gray"])),
    "srgb-uint8-round-trip": (lambda I: call(linear_to_srgb, srgb_to_linear(I["u8"]), np.uint8),
                              lambda I: I["u8"].copy()),
}


@pytest.mark.parametrize("case", list(ACCEPTED), ids=list(ACCEPTED))
def test_accepted(case):
    variant, reference, *rtol = ACCEPTED[case]
    I = _inputs()
    got = variant(I)
    _same(got, reference(_inputs()), *rtol)
    # the variant's own inputs (views into I) were checked by call(); the originals too
    for k, v in _inputs().items():
        np.testing.assert_array_equal(I[k], v)


def test_uint8_render_returns_uint8():
    I = _inputs()
    out = render(I["u8"], coc=I["coc"])
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    assert render(I["u16"], coc=I["coc"]).dtype == np.uint16


def test_render_1x1_with_matte_and_threads():
    # the smallest frame through every branch (matte split, fill, slices)
    img = np.array([[[0.2, 0.4, 0.8]]], np.float32)
    out = render(img, np.full((1, 1), 3.0, np.float32), matte=np.ones((1, 1), np.float32), lens=LENS,
                 num_threads=2)
    np.testing.assert_allclose(out, img, rtol=1e-5)


# id -> (call(I), exception type(s), argument name the message must contain)
def _scatter(**kw):
    def f(I):
        args = dict(image=I["img"], coc=I["coc"])
        args.update({k: (v(I) if callable(v) else v) for k, v in kw.items()})
        image = args.pop("image")
        return call(scatter, image, **args)
    return f


def _render(**kw):
    def f(I):
        args = dict(image=I["img"], depth=I["depth"], lens=LENS)
        args.update({k: (v(I) if callable(v) else v) for k, v in kw.items()})
        image = args.pop("image")
        return call(render, image, **args)
    return f


def _nan_at(key, value=np.nan, pos=(3, 4)):
    def f(I):
        a = I[key].copy()
        a[pos] = value
        return a
    return f


TE, VE = TypeError, ValueError
REJECTED = {
    # ThinLens constructor
    "lens-f-number-zero": (lambda I: ThinLens(85, 0, 2.0), VE, "f_number"),
    "lens-f-number-negative": (lambda I: ThinLens(85, -1.4, 2.0), VE, "f_number"),
    "lens-f-number-nan": (lambda I: ThinLens(85, float("nan"), 2.0), VE, "f_number"),
    "lens-f-number-string": (lambda I: ThinLens(85, "1.4", 2.0), TE, "f_number"),
    "lens-focus-zero": (lambda I: ThinLens(85, 1.4, 0.0), VE, "focus_distance"),
    "lens-focus-negative": (lambda I: ThinLens(85, 1.4, -2.0), VE, "focus_distance"),
    "lens-focus-inf": (lambda I: ThinLens(85, 1.4, float("inf")), VE, "focus_distance"),
    "lens-focal-length-zero": (lambda I: ThinLens(0, 1.4, 2.0), VE, "focal_length_mm"),
    "lens-focal-length-bool": (lambda I: ThinLens(True, 1.4, 2.0), TE, "focal_length_mm"),
    "lens-sensor-zero": (lambda I: ThinLens(85, 1.4, 2.0, 0.0), VE, "sensor_width_mm"),
    "lens-sensor-negative": (lambda I: ThinLens(85, 1.4, 2.0, -36), VE, "sensor_width_mm"),
    "lens-unknown-model": (lambda I: ThinLens(85, 1.4, 2.0, model="pinhole"), VE, "model"),
    "lens-model-none": (lambda I: ThinLens(85, 1.4, 2.0, model=None), VE, "model"),
    "lens-max-coc-zero": (lambda I: ThinLens(85, 1.4, 2.0, max_coc=0), VE, "max_coc"),
    "lens-real-focus-inside-focal-length": (lambda I: ThinLens(85, 1.4, 0.08, model="real_lens"), VE,
                                            "focus_distance"),
    # ThinLens.coc
    "coc-depth-list": (lambda I: call(LENS.coc, I["depth"].tolist()), TE, "depth"),
    "coc-depth-string": (lambda I: call(LENS.coc, "depth.png"), TE, "depth"),
    "coc-depth-3d": (lambda I: call(LENS.coc, I["img"]), VE, "depth"),
    "coc-depth-1d": (lambda I: call(LENS.coc, I["depth"][0]), VE, "depth"),
    "coc-depth-empty": (lambda I: call(LENS.coc, np.zeros((0, 5), np.float32)), VE, "depth"),
    "coc-depth-complex": (lambda I: call(LENS.coc, I["depth"].astype(np.complex64)), TE, "depth"),
    "coc-depth-bool": (lambda I: call(LENS.coc, I["depth"] > 2), TE, "depth"),
    "coc-depth-object": (lambda I: call(LENS.coc, I["depth"].astype(object)), TE, "depth"),
    "coc-depth-int": (lambda I: call(LENS.coc, I["depth"].astype(np.int32)), TE, "depth"),
    "coc-depth-nan": (lambda I: call(LENS.coc, _nan_at("depth")(I)), VE, "depth"),
    "coc-depth-inf": (lambda I: call(LENS.coc, _nan_at("depth", np.inf)(I)), VE, "depth"),
    "coc-depth-zero": (lambda I: call(LENS.coc, _nan_at("depth", 0.0)(I)), VE, "depth"),
    "coc-depth-negative": (lambda I: call(LENS.coc, _nan_at("depth", -1.0)(I)), VE, "depth"),
    "coc-real-depth-at-focal-length": (lambda I: call(LENS_REAL.coc,
                                                      _nan_at("depth", np.nextafter(np.float32(0.085), 0))(I)),
                                       VE, "depth"),
    "coc-real-depth-inside-focal-length": (lambda I: call(LENS_REAL.coc, _nan_at("depth", 0.05)(I)), VE, "depth"),
    "coc-width-zero": (lambda I: call(LENS.coc, I["depth"], 0), VE, "width"),
    "coc-width-nan": (lambda I: call(LENS.coc, I["depth"], float("nan")), VE, "width"),
    "coc-max-coc-negative": (lambda I: call(LENS.coc, I["depth"], max_coc=-3), VE, "max_coc"),
    "coc-out-wrong-shape": (lambda I: call(LENS.coc, I["depth"], out=np.empty((W, H), np.float32)), VE, "out"),
    "coc-out-wrong-dtype": (lambda I: call(LENS.coc, I["depth"], out=np.empty((H, W), np.float64)), TE, "out"),
    "coc-out-aliases-depth": (lambda I: call(LENS.coc, I["depth"], out=I["depth"]), VE, "out"),
    "coc-threads-zero": (lambda I: call(LENS.coc, I["depth"], num_threads=0), VE, "num_threads"),
    "coc-threads-float": (lambda I: call(LENS.coc, I["depth"], num_threads=2.0), TE, "num_threads"),
    "coc-huge-depth": (lambda I: call(LENS.coc, huge(False)), MemoryError, "depth"),
    # coc_from_disparity and conversions
    "disp-K-nan": (lambda I: call(coc_from_disparity, I["disp"], K=float("nan"), focus_disparity=0.5), VE, "K"),
    "disp-K-string": (lambda I: call(coc_from_disparity, I["disp"], K="10", focus_disparity=0.5), TE, "K"),
    "disp-K-none": (lambda I: call(coc_from_disparity, I["disp"], K=None, focus_disparity=0.5), TE, "K"),
    "disp-focus-inf": (lambda I: call(coc_from_disparity, I["disp"], K=10.0, focus_disparity=np.inf), VE,
                       "focus_disparity"),
    "disp-focus-array": (lambda I: call(coc_from_disparity, I["disp"], K=10.0, focus_disparity=I["disp"]), TE,
                         "focus_disparity"),
    "disp-nan": (lambda I: call(coc_from_disparity, _nan_at("disp")(I), K=10.0, focus_disparity=0.5), VE,
                 "disparity"),
    "disp-wrong-ndim": (lambda I: call(coc_from_disparity, I["img"], K=10.0, focus_disparity=0.5), VE, "disparity"),
    "disp-out-read-only": (lambda I: call(coc_from_disparity, I["disp"], K=10.0, focus_disparity=0.5,
                                          out=np.broadcast_to(np.float32(0), (H, W))), VE, "out"),
    "depth-to-disp-zero": (lambda I: call(depth_to_disparity, _nan_at("depth", 0.0)(I)), VE, "depth"),
    "depth-to-disp-nan": (lambda I: call(depth_to_disparity, _nan_at("depth")(I)), VE, "depth"),
    "depth-to-disp-scale-zero": (lambda I: call(depth_to_disparity, I["depth"], scale=0), VE, "scale"),
    "disp-to-depth-negative": (lambda I: call(disparity_to_depth, _nan_at("disp", -0.1)(I)), VE, "disparity"),
    "disp-to-depth-complex": (lambda I: call(disparity_to_depth, I["disp"] + 0j), TE, "disparity"),
    # focus_from_matte
    "focus-matte-above-one": (lambda I: call(focus_from_matte, I["depth"], _nan_at("matte", 1.5)(I)), VE, "matte"),
    "focus-matte-negative": (lambda I: call(focus_from_matte, I["depth"], _nan_at("matte", -0.1)(I)), VE, "matte"),
    "focus-matte-nan": (lambda I: call(focus_from_matte, I["depth"], _nan_at("matte")(I)), VE, "matte"),
    "focus-matte-zero": (lambda I: call(focus_from_matte, I["depth"], np.zeros((H, W), np.float32)), VE, "matte"),
    "focus-matte-shape": (lambda I: call(focus_from_matte, I["depth"], I["matte"][:, :-1]), VE, "matte"),
    "focus-matte-none": (lambda I: call(focus_from_matte, I["depth"], None), TE, "matte"),
    "focus-depth-negative": (lambda I: call(focus_from_matte, _nan_at("depth", -2.0)(I), I["matte"]), VE, "depth"),
    # Aperture
    "aperture-blades-1": (lambda I: Aperture(1), VE, "blades"),
    "aperture-blades-2": (lambda I: Aperture(2), VE, "blades"),
    "aperture-blades-minus-1": (lambda I: Aperture(-1), VE, "blades"),
    "aperture-blades-million": (lambda I: Aperture(10 ** 6), VE, "blades"),
    "aperture-blades-float": (lambda I: Aperture(6.0), TE, "blades"),
    "aperture-blades-bool": (lambda I: Aperture(True), TE, "blades"),
    "aperture-rotation-nan": (lambda I: Aperture(6, float("nan")), VE, "rotation"),
    "aperture-rotation-string": (lambda I: Aperture(6, "0"), TE, "rotation"),
    "kernel-list": (lambda I: call(Aperture.from_image, I["kernel"].tolist()), TE, "kernel"),
    "kernel-3d": (lambda I: call(Aperture.from_image, I["img"]), VE, "kernel"),
    "kernel-empty": (lambda I: call(Aperture.from_image, np.zeros((0, 3))), VE, "kernel"),
    "kernel-zero": (lambda I: call(Aperture.from_image, np.zeros((5, 5))), VE, "kernel"),
    "kernel-negative": (lambda I: call(Aperture.from_image, I["kernel"] - 0.5), VE, "kernel"),
    "kernel-nan": (lambda I: call(Aperture.from_image, _nan_at("kernel")(I)), VE, "kernel"),
    "kernel-complex": (lambda I: call(Aperture.from_image, I["kernel"].astype(complex)), TE, "kernel"),
    "kernel-object": (lambda I: call(Aperture.from_image, I["kernel"].astype(object)), TE, "kernel"),
    # scatter / gather
    "scatter-image-list": (_scatter(image=lambda I: I["img"].tolist()), TE, "image"),
    "scatter-image-1d": (_scatter(image=lambda I: I["img"][0, 0]), VE, "image"),
    "scatter-image-4d": (_scatter(image=lambda I: I["img"][None]), VE, "image"),
    "scatter-image-zero-channels": (_scatter(image=lambda I: I["img"][:, :, :0]), VE, "image"),
    "scatter-image-empty": (_scatter(image=lambda I: I["img"][:0], coc=lambda I: I["coc"][:0]), VE, "image"),
    "scatter-image-complex": (_scatter(image=lambda I: I["img"].astype(np.complex64)), TE, "image"),
    "scatter-image-bool": (_scatter(image=lambda I: I["img"] > 1), TE, "image"),
    "scatter-image-int32": (_scatter(image=lambda I: I["img"].astype(np.int32)), TE, "image"),
    "scatter-image-object": (_scatter(image=lambda I: I["img"].astype(object)), TE, "image"),
    "scatter-image-nan": (_scatter(image=_nan_at("img")), VE, "image"),
    "scatter-image-inf": (_scatter(image=_nan_at("img", -np.inf)), VE, "image"),
    "scatter-coc-nan": (_scatter(coc=_nan_at("coc")), VE, "coc"),
    "scatter-coc-inf": (_scatter(coc=_nan_at("coc", np.inf)), VE, "coc"),
    "scatter-coc-size-mismatch": (_scatter(coc=lambda I: I["coc"][:, 1:]), VE, "coc"),
    "scatter-coc-3d": (_scatter(coc=lambda I: I["img"]), VE, "coc"),
    "scatter-coc-none": (_scatter(coc=None), TE, "coc"),
    "scatter-coc-scalar": (_scatter(coc=5.0), TE, "coc"),
    "scatter-aperture-int": (_scatter(aperture=6), TE, "aperture"),
    "scatter-out-wrong-shape": (_scatter(out=np.empty((H, W), np.float32)), VE, "out"),
    "scatter-out-float64": (_scatter(out=np.empty((H, W, 3), np.float64)), TE, "out"),
    "scatter-out-bigendian": (_scatter(out=np.empty((H, W, 3), ">f4")), TE, "out"),
    "scatter-out-read-only": (_scatter(out=lambda I: np.broadcast_to(np.float32(0), (H, W, 3))), VE, "out"),
    "scatter-out-noncontiguous": (_scatter(out=np.empty((H, W, 6), np.float32)[:, :, ::2]), VE, "out"),
    "scatter-out-is-image": (_scatter(out=lambda I: I["img"]), VE, "out"),
    "scatter-out-overlaps-image": (_scatter(image=lambda I: I["big_img"][:H, :W, :3].copy(order="C"),
                                            out=lambda I: I["big_img"][:H, :W, :3]), VE, "out"),
    "scatter-threads-zero": (_scatter(num_threads=0), VE, "num_threads"),
    "scatter-threads-too-negative": (_scatter(num_threads=-(NCPU + 1)), VE, "num_threads"),
    "scatter-threads-bool": (_scatter(num_threads=True), TE, "num_threads"),
    "scatter-threads-string": (_scatter(num_threads="2"), TE, "num_threads"),
    "scatter-huge-image": (lambda I: call(scatter, huge(True), huge(False)), MemoryError, "image"),
    "gather-coc-nan": (lambda I: call(gather, I["img"], _nan_at("coc")(I)), VE, "coc"),
    "gather-out-is-coc": (lambda I: call(gather, I["gray"], I["coc"], out=I["coc"]), VE, "out"),
    # render
    "render-gray-image": (_render(image=lambda I: I["gray"]), VE, "image"),
    "render-four-channels": (_render(image=lambda I: I["big_img"][:H, :W]), VE, "image"),
    "render-image-nan": (_render(image=_nan_at("img")), VE, "image"),
    "render-image-string": (_render(image="photo.jpg"), TE, "image"),
    "render-depth-missing": (_render(depth=None), VE, "depth"),
    "render-depth-and-coc": (_render(coc=lambda I: I["coc"]), VE, "depth"),
    "render-depth-nan": (_render(depth=_nan_at("depth")), VE, "depth"),
    "render-depth-zero": (_render(depth=_nan_at("depth", 0.0)), VE, "depth"),
    "render-depth-bool": (_render(depth=lambda I: I["depth"] > 3), TE, "depth"),
    "render-depth-size": (_render(depth=lambda I: I["depth"][1:]), VE, "depth"),
    "render-real-lens-depth-at-f": (_render(depth=_nan_at("depth", 0.07), lens=LENS_REAL), VE, "depth"),
    "render-lens-missing": (_render(lens=None), VE, "lens"),
    "render-lens-dict": (_render(lens={"focal_length_mm": 85}), TE, "lens"),
    "render-coc-inf": (_render(depth=None, lens=None, coc=_nan_at("coc", np.inf)), VE, "coc"),
    "render-matte-above-one": (_render(matte=_nan_at("matte", 1.01)), VE, "matte"),
    "render-matte-nan": (_render(matte=_nan_at("matte")), VE, "matte"),
    "render-matte-3d": (_render(matte=lambda I: I["img"]), VE, "matte"),
    "render-matte-complex": (_render(matte=lambda I: I["matte"].astype(complex)), TE, "matte"),
    "render-background-shape": (_render(background=lambda I: I["img"][1:]), VE, "background"),
    "render-background-nan": (_render(background=_nan_at("img")), VE, "background"),
    "render-aperture-string": (_render(aperture="hexagon"), TE, "aperture"),
    "render-highlights-word": (_render(highlights="bright"), VE, "highlights"),
    "render-highlights-below-one": (_render(highlights=0.5), VE, "highlights"),
    "render-highlights-nan": (_render(highlights=float("nan")), VE, "highlights"),
    "render-highlights-list": (_render(highlights=[2.0]), TE, "highlights"),
    "render-out-wrong-dtype": (_render(out=np.empty((H, W, 3), np.float64)), TE, "out"),
    "render-out-wrong-shape": (_render(out=np.empty((H, W, 4), np.float32)), VE, "out"),
    "render-out-is-image": (_render(out=lambda I: I["img"]), VE, "out"),
    "render-out-read-only": (_render(out=lambda I: np.broadcast_to(np.float32(0), (H, W, 3))), VE, "out"),
    "render-threads-too-negative": (_render(num_threads=-(NCPU + 1)), VE, "num_threads"),
    "render-huge-image": (lambda I: call(render, huge(True), huge(False), lens=LENS), MemoryError, "image"),
}


@pytest.mark.parametrize("case", list(REJECTED), ids=list(REJECTED))
def test_rejected(case):
    fn, exc, name = REJECTED[case]
    I = _inputs()
    with pytest.raises(exc, match=re.escape(name)) as info:
        fn(I)
    # the message starts with the argument's name
    assert str(info.value).startswith(name), str(info.value)
    for k, v in _inputs().items():
        np.testing.assert_array_equal(I[k], v)

