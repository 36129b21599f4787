"""File I/O: round trips against the writing libraries themselves, the sRGB rule against the IEC
formula, and the documented depth / disparity / matte conventions."""
import subprocess
import sys
import zlib

import numpy as np
import pytest

import synthdof

PIL = pytest.importorskip("PIL.Image")


def srgb_encode_ref(x):
    """IEC 61966-2-1 encoding, written out independently of the package."""
    x = np.clip(np.asarray(x, np.float64), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def srgb_decode_ref(v):
    v = np.asarray(v, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def test_core_import_needs_numpy_only():
    code = ("import sys, synthdof\n"
            "bad = [m for m in ('PIL', 'tifffile', 'imageio', 'OpenEXR', 'imagecodecs', 'matplotlib', "
            "'dask', 'distributed', 'tqdm') if m in sys.modules]\n"
            "print(bad)\nsys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3), (7, 9, 4), (7, 9, 2)])
def test_png8_roundtrip_exact(tmp_path, small_rng, shape):
    a = small_rng.integers(0, 256, shape).astype(np.uint8)
    p = tmp_path / "a.png"
    synthdof.write_image(p, a)
    np.testing.assert_array_equal(synthdof.read_image(p), a)
    with PIL.open(p) as im:  # and Pillow itself sees the same pixels
        np.testing.assert_array_equal(np.asarray(im), a)


def test_png16_grey_and_colour(tmp_path, small_rng):
    pytest.importorskip("imagecodecs")
    for shape in [(5, 6), (5, 6, 3), (5, 6, 4)]:
        a = small_rng.integers(0, 65536, shape).astype(np.uint16)
        p = tmp_path / f"a{len(shape)}.png"
        synthdof.write_image(p, a)
        head = p.read_bytes()[:26]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16  # a genuine 16-bit PNG
        back = synthdof.read_image(p)
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back, a)
    # a 16-bit RGB PNG assembled here by hand (filter 0 rows) is read at full precision, where
    # Pillow alone would keep only the high byte
    a = small_rng.integers(0, 65536, (4, 5, 3)).astype(np.uint16)
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(4))

    def chunk(t, d):
        return len(d).to_bytes(4, "big") + t + d + (zlib.crc32(t + d) & 0xFFFFFFFF).to_bytes(4, "big")

    ihdr = (5).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes([16, 2, 0, 0, 0])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    p = tmp_path / "hand.png"
    p.write_bytes(png)
    np.testing.assert_array_equal(synthdof.read_image(p), a)
    with PIL.open(p) as im:
        np.testing.assert_array_equal(np.asarray(im), (a >> 8).astype(np.uint8))


def test_float_to_png_is_srgb_encoded(tmp_path):
    x = np.linspace(-0.2, 1.3, 64, dtype=np.float32).reshape(8, 8)
    lin = np.stack([x, x[::-1], x.T], -1)
    synthdof.write_image(tmp_path / "e8.png", lin)
    np.testing.assert_array_equal(synthdof.read_image(tmp_path / "e8.png"),
                                  np.round(srgb_encode_ref(lin) * 255).astype(np.uint8))
    pytest.importorskip("imagecodecs")
    synthdof.write_image(tmp_path / "e16.png", lin, bits=16)
    got = synthdof.read_image(tmp_path / "e16.png").astype(np.int64)
    ref = np.round(srgb_encode_ref(lin) * 65535).astype(np.int64)
    assert np.abs(got - ref).max() <= 1  # float32 rounding of the encoding


def test_float_tiff_roundtrip_keeps_range(tmp_path, small_rng):
    tifffile = pytest.importorskip("tifffile")
    a = (small_rng.standard_normal((6, 7, 3)) * 20).astype(np.float32)  # negative and > 1
    p = tmp_path / "a.tif"
    synthdof.write_image(p, a)
    np.testing.assert_array_equal(tifffile.imread(p), a)
    back = synthdof.read_image(p)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, a)
    u = small_rng.integers(0, 65536, (6, 7)).astype(np.uint16)
    synthdof.write_image(tmp_path / "u.tif", u)
    np.testing.assert_array_equal(synthdof.read_image(tmp_path / "u.tif"), u)


@pytest.mark.parametrize("shape", [(5, 8), (5, 8, 3), (5, 8, 4)])
def test_exr_roundtrip(tmp_path, small_rng, shape):
    OpenEXR = pytest.importorskip("OpenEXR")
    a = (small_rng.random(shape) * 100).astype(np.float32)
    p = tmp_path / "a.exr"
    synthdof.write_image(p, a)
    np.testing.assert_array_equal(synthdof.read_image(p), a)
    with OpenEXR.File(str(p), separate_channels=True) as f:
        ch = {k: np.array(v.pixels) for k, v in f.channels().items()}
    names = {2: ["Y"], 3: list("RGB"), 4: list("RGBA")}[len(shape) if len(shape) == 2 else shape[2]]
    assert sorted(ch) == sorted(names)
    if len(shape) == 3:
        np.testing.assert_array_equal(ch["G"], a[:, :, 1])


def test_uint8_to_exr_is_decoded_to_linear(tmp_path):
    pytest.importorskip("OpenEXR")
    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([v, v.T, 255 - v], -1)
    synthdof.write_image(tmp_path / "a.exr", rgb)
    np.testing.assert_allclose(synthdof.read_image(tmp_path / "a.exr"), srgb_decode_ref(rgb / 255.0),
                               rtol=2e-6, atol=1e-7)


def test_npy_roundtrip(tmp_path, small_rng):
    a = small_rng.random((4, 3, 3)).astype(np.float64)
    synthdof.write_image(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a)
    back = synthdof.read_image(tmp_path / "a.npy")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, a.astype(np.float32))


def test_read_image_channels3(tmp_path, small_rng):
    g = small_rng.integers(0, 256, (4, 5)).astype(np.uint8)
    synthdof.write_image(tmp_path / "g.png", g)
    np.testing.assert_array_equal(synthdof.read_image(tmp_path / "g.png", channels=3), np.stack([g] * 3, -1))
    rgba = small_rng.integers(0, 256, (4, 5, 4)).astype(np.uint8)
    synthdof.write_image(tmp_path / "c.png", rgba)
    np.testing.assert_array_equal(synthdof.read_image(tmp_path / "c.png", channels=3), rgba[:, :, :3])


def test_read_depth_png16_millimetres_and_scale(tmp_path, small_rng):
    codes = small_rng.integers(1, 65536, (6, 5)).astype(np.uint16)
    p = tmp_path / "d.png"
    synthdof.write_image(p, codes)
    d = synthdof.read_depth(p)
    assert d.dtype == np.float32 and d.shape == (6, 5)
    np.testing.assert_allclose(d, codes / 1000.0, rtol=1e-7)
    np.testing.assert_allclose(synthdof.read_depth(p, scale=1 / 5000), codes / 5000.0, rtol=1e-7)  # TUM


def test_read_depth_float_files_are_metres(tmp_path, small_rng):
    z = (small_rng.random((6, 5)) * 10 + 0.5).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    np.testing.assert_array_equal(synthdof.read_depth(tmp_path / "z.npy"), z)
    np.testing.assert_allclose(synthdof.read_depth(tmp_path / "z.npy", scale=2.0), 2 * z, rtol=1e-7)
    OpenEXR = pytest.importorskip("OpenEXR")
    # a Blender-style EXR with a single Z channel, written with OpenEXR directly
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Z": z}) as f:
        f.write(str(tmp_path / "z.exr"))
    np.testing.assert_array_equal(synthdof.read_depth(tmp_path / "z.exr"), z)


def test_read_depth_8bit_needs_a_scale(tmp_path, small_rng):
    p = tmp_path / "d8.png"
    codes = small_rng.integers(1, 256, (4, 4)).astype(np.uint8)
    synthdof.write_image(p, codes)
    with pytest.raises(ValueError, match="scale"):
        synthdof.read_depth(p)
    np.testing.assert_allclose(synthdof.read_depth(p, scale=0.05), codes * 0.05, rtol=1e-6)


def test_read_disparity_normalised_and_kitti(tmp_path, small_rng):
    c8 = small_rng.integers(0, 256, (4, 6)).astype(np.uint8)
    synthdof.write_image(tmp_path / "d8.png", c8)
    np.testing.assert_allclose(synthdof.read_depth(tmp_path / "d8.png", disparity=True), c8 / 255.0, rtol=1e-6)
    c16 = small_rng.integers(0, 65536, (4, 6)).astype(np.uint16)
    synthdof.write_image(tmp_path / "d16.png", c16)
    np.testing.assert_allclose(synthdof.read_depth(tmp_path / "d16.png", disparity=True), c16 / 65535.0,
                               rtol=1e-6)
    np.testing.assert_allclose(synthdof.read_depth(tmp_path / "d16.png", disparity=True, scale=1 / 256),
                               c16 / 256.0, rtol=1e-6)


def test_read_depth_grey_saved_as_rgb_but_not_colour(tmp_path, small_rng):
    g = small_rng.integers(1, 256, (4, 5)).astype(np.uint8)
    synthdof.write_image(tmp_path / "g.png", np.stack([g] * 3, -1))
    np.testing.assert_allclose(synthdof.read_depth(tmp_path / "g.png", disparity=True), g / 255.0, rtol=1e-6)
    c = small_rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)
    synthdof.write_image(tmp_path / "c.png", c)
    with pytest.raises(ValueError, match="colour channels"):
        synthdof.read_depth(tmp_path / "c.png", disparity=True)


def test_read_matte_alpha_grey_and_16bit(tmp_path, small_rng):
    rgba = small_rng.integers(0, 256, (4, 5, 4)).astype(np.uint8)
    synthdof.write_image(tmp_path / "cut.png", rgba)
    np.testing.assert_allclose(synthdof.read_matte(tmp_path / "cut.png"), rgba[:, :, 3] / 255.0, rtol=1e-6)
    g = small_rng.integers(0, 65536, (4, 5)).astype(np.uint16)
    synthdof.write_image(tmp_path / "m16.png", g)
    m = synthdof.read_matte(tmp_path / "m16.png")
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, g / 65535.0, rtol=1e-6)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        synthdof.read_image(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="junk.png"):
        synthdof.read_image(tmp_path / "junk.png")
    (tmp_path / "a.xyz").write_bytes(b"0")
    with pytest.raises(ValueError, match="unsupported file type"):
        synthdof.read_image(tmp_path / "a.xyz")
    with pytest.raises(FileNotFoundError, match="directory"):
        synthdof.write_image(tmp_path / "missing" / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError, match="image"):
        synthdof.write_image(tmp_path / "a.png", np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="bits"):
        synthdof.write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8), bits=12)
    with pytest.raises(ValueError, match="channels"):
        synthdof.read_image(tmp_path / "junk.png", channels=4)
    with pytest.raises(ValueError, match="scale"):
        np.save(tmp_path / "z.npy", np.ones((2, 2), np.float32))
        synthdof.read_depth(tmp_path / "z.npy", scale=-1)


def test_read_image_feeds_render_with_the_integer_rule(tmp_path):
    s = synthdof.load_sample()
    img = s["image"][:64, :96]
    synthdof.write_image(tmp_path / "i.png", img)
    back = synthdof.read_image(tmp_path / "i.png")
    lens = synthdof.ThinLens(**s["lens"])
    a = synthdof.render(back, s["depth"][:64, :96], lens=lens)
    b = synthdof.render(img, s["depth"][:64, :96], lens=lens)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
