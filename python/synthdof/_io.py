"""Image, depth and matte files.

The core package needs NumPy only; the file formats use well-kept libraries installed with the
`io` extra (`pip install "synthdof[io]"`), each imported only when a file needs it:

  PNG, JPEG, BMP, WebP   Pillow (16-bit colour PNG through imagecodecs: Pillow keeps 8 bits)
  TIFF                   tifffile (float32 linear light, or 8/16-bit)
  OpenEXR                the OpenEXR package (imageio is tried when it is missing)
  .npy                   NumPy

Integer pixels are sRGB-encoded and float pixels are linear light, the rule the rest of the
package follows, so `render(read_image(path), ...)` needs no conversion."""
import os

import numpy as np

from ._color import linear_to_srgb, srgb_to_linear

_PIL_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".ppm", ".pgm", ".pnm")
_TIFF_EXT = (".tif", ".tiff")
_EXR_EXT = (".exr",)
_NPY_EXT = (".npy",)

# Default depth scale of integer depth files: 16-bit codes are millimetres.
DEPTH_SCALE_UINT16 = 0.001


def _missing(what, module, extra="io"):
    return ImportError(f"{what} needs the '{module}' package: pip install \"synthdof[{extra}]\"")


def _ext(path):
    return os.path.splitext(os.fspath(path))[1].lower()


def _check_readable(path, name):
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{name}: file not found: {p}")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{name}: is a directory, not a file: {p}")
    return p


# -- readers ---------------------------------------------------------------------------------

def _png_header(path):
    """(bit depth, colour type) from a PNG's IHDR chunk, or None when it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_pil(path, name):
    hdr = _png_header(path)
    if hdr is not None and hdr[0] == 16 and hdr[1] in (2, 4, 6):  # 16-bit colour or grey+alpha
        try:
            import imagecodecs
        except ImportError:
            raise _missing("reading a 16-bit colour PNG (Pillow keeps only 8 bits of it)", "imagecodecs")
        with open(path, "rb") as f:
            data = f.read()
        try:
            return np.asarray(imagecodecs.png_decode(data))
        except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file
            raise ValueError(f"{name}: cannot decode PNG {path}: {e}") from e
    try:
        from PIL import Image
    except ImportError:
        raise _missing(f"reading {_ext(path)} files", "pillow")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "1":
                im = im.convert("L")
            elif mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "PA":
                im = im.convert("RGBA")
            a = np.asarray(im)
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise ValueError(f"{name}: cannot read image {path}: {e}") from e
    if a.dtype.kind in "iu" and a.dtype != np.uint8 and mode.startswith("I;16"):
        a = a.astype(np.uint16)
    return a


def _read_tiff(path, name):
    try:
        import tifffile
    except ImportError:
        raise _missing("reading TIFF files", "tifffile")
    try:
        a = tifffile.imread(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name}: cannot read TIFF {path}: {e}") from e
    return np.asarray(a)


def _openexr():
    """The OpenEXR module when installed, else None (imageio is the fallback)."""
    try:
        import OpenEXR
    except ImportError:
        return None
    return OpenEXR


def _exr_channels(path, name):
    """{channel name: (H, W) float32} of the first part of an OpenEXR file."""
    OpenEXR = _openexr()
    if OpenEXR is None:
        try:
            import imageio.v3 as iio
        except ImportError:
            raise _missing("reading OpenEXR files", "openexr")
        try:
            a = np.asarray(iio.imread(path), dtype=np.float32)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{name}: cannot read EXR {path} (install the OpenEXR package: "
                             f"pip install \"synthdof[io]\"): {e}") from e
        if a.ndim == 2:
            return {"Y": a}
        return {c: a[:, :, i] for i, c in enumerate("RGBA"[:a.shape[2]])}
    try:
        with OpenEXR.File(path, separate_channels=True) as f:
            return {k: np.asarray(v.pixels, dtype=np.float32) for k, v in f.channels().items()}
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name}: cannot read EXR {path}: {e}") from e


def _read_exr(path, name):
    ch = _exr_channels(path, name)
    base = {k.rsplit(".", 1)[-1]: v for k, v in ch.items()}
    rgb = [c for c in "RGB" if c in base]
    if len(rgb) == 3:
        planes = [base[c] for c in "RGB"] + ([base["A"]] if "A" in base else [])
        return np.stack(planes, -1)
    if len(ch) == 1:
        return next(iter(ch.values()))
    for key in ("Y", "Z", "R"):
        if key in base:
            return base[key]
    raise ValueError(f"{name}: EXR {path} has channels {sorted(ch)}; expected R, G, B[, A], Y or Z")


def _read_any(path, name):
    p = _check_readable(path, name)
    ext = _ext(p)
    if ext in _NPY_EXT:
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{name}: cannot read .npy file {p}: {e}") from e
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{name}: {p} does not hold a single array")
        return a
    if ext in _TIFF_EXT:
        return _read_tiff(p, name)
    if ext in _EXR_EXT:
        return _read_exr(p, name)
    if ext in _PIL_EXT or ext == "":
        return _read_pil(p, name)
    raise ValueError(f"{name}: unsupported file type {ext!r} ({p}); expected PNG, JPEG, TIFF, EXR or .npy")


def read_image(path, *, channels=None):
    """Read an image file as a NumPy array, (H, W) or (H, W, C).

    Integer files (8/16-bit PNG, JPEG, 8/16-bit TIFF) come back as uint8/uint16 sRGB-encoded
    values; float files (float TIFF, OpenEXR, float .npy) as float32 linear light: the encoding
    rule of render() and scatter(), so the array can be passed on as it is. A .npy file is returned
    as stored (floats as float32).

    channels: None keeps the file's channels; 3 returns RGB (grey repeated, alpha dropped).
    Raises FileNotFoundError for a missing file and ValueError naming the path for a file that
    cannot be decoded; ImportError names the extra to install when a format's library is absent."""
    return _read_image(path, channels, "path")


def _read_image(path, channels, name):
    if channels not in (None, 3):
        raise ValueError(f"channels: expected None or 3, got {channels!r}")
    a = _read_any(path, name)
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    if a.dtype.kind == "b":
        a = a.astype(np.uint8) * np.uint8(255)
    if channels == 3:
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        elif a.ndim == 3 and a.shape[2] in (1, 2):
            a = np.repeat(a[:, :, :1], 3, axis=2)
        elif a.ndim == 3 and a.shape[2] >= 3:
            a = a[:, :, :3]
        else:
            raise ValueError(f"{name}: {os.fspath(path)} holds an array of shape {a.shape}, not an image")
        a = np.ascontiguousarray(a)
    return a


def _single_channel(a, name, path):
    """A (H, W) map from a one-channel array, or from channels that all hold the same values
    (a grey map saved as RGB); colour data is refused."""
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] >= 1:
        c = a.shape[2]
        if c in (2, 4):
            a = a[:, :, :c - 1]  # drop alpha
        if all(np.array_equal(a[:, :, 0], a[:, :, k]) for k in range(1, a.shape[2])):
            return a[:, :, 0]
        raise ValueError(f"{name}: {path} has {a.shape[2]} different colour channels; expected a "
                         f"single-channel map")
    raise ValueError(f"{name}: {path} holds an array of shape {a.shape}; expected (H, W)")


def read_depth(path, *, scale=None, disparity=False):
    """Read a depth map (or a disparity map) as float32 (H, W).

    The result is the stored value times `scale`:
      float files (.npy, float TIFF, OpenEXR: channel Z, Y or R): scale defaults to 1, so
        depth files hold metres;
      16-bit integer files (PNG, TIFF): scale defaults to 0.001, millimetre codes (Kinect,
        RealSense and most RGB-D sets; TUM RGB-D uses scale=1/5000);
      8-bit files hold too few levels for metric depth: scale must be given.

    disparity=True: the file holds disparity (inverse depth), returned as disparity, not turned
      into depth. Integer files are normalised to [0, 1] by default (scale = 1/255 or 1/65535), the
      form relative-depth networks (MiDaS, DPT, Depth Anything) are saved in; KITTI's 16-bit
      disparity PNGs use scale=1/256 (pixels). Relative disparity d is known only up to a scale
      (and, for affine-invariant models, a shift), so it does not give metres: pass it to
      coc_from_disparity(d, K=..., focus_disparity=...), where K sets the blur strength (a
      CoC diameter of K * (d_focus - d) pixels). When the metric scale S is known (d = S / z),
      disparity_to_depth(d, scale=S) gives depth in metres.

    Depth must be > 0 where it is rendered; zeros (sensor holes) are returned as they are.
    Multi-channel files are accepted when every colour channel holds the same values."""
    return _read_depth(path, scale, disparity, "path")


def _read_depth(path, scale, disparity, name):
    a = _read_any(path, name)
    p = os.fspath(path)
    if a.dtype.kind == "b" or a.dtype.kind not in "fiu":
        raise ValueError(f"{name}: {p} holds {a.dtype} data; expected a numeric depth map")
    if _ext(p) in _EXR_EXT and a.ndim == 3:
        a = a[:, :, 0]
    a = _single_channel(a, name, p)
    if a.dtype.kind in "iu":
        if disparity:
            default = 1.0 / float(np.iinfo(a.dtype).max) if a.dtype.kind == "u" else None
        else:
            default = DEPTH_SCALE_UINT16 if a.dtype in (np.uint16, np.int32, np.uint32, np.int16) else None
        if scale is None and default is None:
            raise ValueError(f"scale: {p} holds {a.dtype} codes with no standard metric meaning; give "
                             f"the metres per code (scale=, --depth-scale)" + ("" if disparity else
                             ", or read it as normalised disparity (disparity=True, --disparity)"))
        s = default if scale is None else scale
    else:
        s = 1.0 if scale is None else scale
    s = float(s)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"scale: must be finite and > 0, got {scale!r}")
    return (a.astype(np.float64) * s).astype(np.float32)


def read_matte(path):
    """Read a subject matte as float32 (H, W) in [0, 1].

    The alpha channel of a grey+alpha or RGBA file (a cut-out of the subject), else the single
    grey channel; integer codes are divided by their maximum (255 or 65535), floats kept."""
    return _read_matte(path, "path")


def _read_matte(path, name):
    a = _read_any(path, name)
    p = os.fspath(path)
    if a.ndim == 3 and a.shape[2] in (2, 4):
        a = a[:, :, -1]
    a = _single_channel(a, name, p)
    if a.dtype.kind == "b":
        return a.astype(np.float32)
    if a.dtype.kind == "u":
        return (a.astype(np.float64) / float(np.iinfo(a.dtype).max)).astype(np.float32)
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    raise ValueError(f"{name}: {p} holds {a.dtype} data; expected a matte in [0, 1] or 8/16-bit codes")


# -- writers ---------------------------------------------------------------------------------

def _as_writable(image):
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy array, got {type(image).__name__}")
    a = image
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] > 4) or a.size == 0:
        raise ValueError(f"image: expected (H, W) or (H, W, 1..4), got shape {image.shape}")
    if not (a.dtype.kind == "f" or a.dtype in (np.uint8, np.uint16)):
        raise TypeError(f"image: unsupported dtype {a.dtype} (expected float, uint8 or uint16)")
    return a


def _to_bits(a, bits):
    """Integer codes of `bits` bits: float (linear) is sRGB-encoded, integers are rescaled."""
    dt = np.uint8 if bits == 8 else np.uint16
    if a.dtype.kind == "f":
        return linear_to_srgb(a, dt)
    if a.dtype == dt:
        return a
    if dt == np.uint16:  # 8 -> 16 bits
        return a.astype(np.uint16) * np.uint16(257)
    return np.round(a.astype(np.float32) / 257.0).astype(np.uint8)


def _write_png_like(path, a, bits, ext):
    if ext in (".jpg", ".jpeg") and bits == 16:
        raise ValueError("bits: JPEG holds 8 bits per channel")
    q = np.ascontiguousarray(_to_bits(a, bits))
    if q.dtype == np.uint16 and q.ndim == 3:
        if ext != ".png":
            raise ValueError(f"bits: 16-bit colour needs PNG or TIFF, not {ext}")
        try:
            import imagecodecs
        except ImportError:
            raise _missing("writing a 16-bit colour PNG", "imagecodecs")
        data = imagecodecs.png_encode(q)
        with open(path, "wb") as f:
            f.write(data)
        return
    try:
        from PIL import Image
    except ImportError:
        raise _missing(f"writing {ext} files", "pillow")
    im = Image.fromarray(q)  # L, LA, RGB, RGBA, or 16-bit grey (I;16)
    if ext in (".jpg", ".jpeg"):
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        im.save(path, quality=95)
    else:
        im.save(path, format=_PIL_FORMAT.get(ext))


_PIL_FORMAT = {".png": "PNG", ".bmp": "BMP", ".webp": "WEBP", ".gif": "GIF", ".ppm": "PPM",
               ".pgm": "PPM", ".pnm": "PPM"}


def _write_tiff(path, a, bits):
    try:
        import tifffile
    except ImportError:
        raise _missing("writing TIFF files", "tifffile")
    if bits is not None:
        a = _to_bits(a, bits)
    elif a.dtype.kind == "f":
        a = a.astype(np.float32)
    photometric = "rgb" if a.ndim == 3 and a.shape[2] in (3, 4) else "minisblack"
    extra = {"extrasamples": ["unassalpha"]} if a.ndim == 3 and a.shape[2] == 4 else {}
    if a.ndim == 3 and a.shape[2] == 2:
        photometric, extra = "minisblack", {"extrasamples": ["unassalpha"]}
    tifffile.imwrite(path, np.ascontiguousarray(a), photometric=photometric,
                     compression="zlib", **extra)


def _write_exr(path, a):
    lin = srgb_to_linear(a) if a.dtype.kind == "u" else np.asarray(a, dtype=np.float32)
    names = {2: ["Y"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}
    if lin.ndim == 3 and lin.shape[2] == 2:
        raise ValueError("image: OpenEXR output takes 1, 3 or 4 channels")
    OpenEXR = _openexr()
    if OpenEXR is None:
        try:
            import imageio.v3 as iio
        except ImportError:
            raise _missing("writing OpenEXR files", "openexr")
        iio.imwrite(path, lin)
        return
    if lin.ndim == 2:
        chans = {"Y": np.ascontiguousarray(lin)}
    else:
        chans = {n: np.ascontiguousarray(lin[:, :, i]) for i, n in enumerate(names[lin.shape[2]])}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, chans) as f:
        f.write(os.fspath(path))


def write_image(path, image, *, bits=None):
    """Write an image, the format chosen by the file extension.

    PNG (and JPEG, 8 bits only): integer arrays are written as they are (uint8 -> 8-bit,
      uint16 -> 16-bit); float arrays are linear light and are sRGB-encoded to 8 bits, or 16 with
      bits=16 (values outside [0, 1] clip). bits=8/16 also rescales integer input.
    TIFF: float arrays as float32 linear light (nothing clips), integers as they are; bits=8/16
      sRGB-encodes floats to integers instead.
    OpenEXR: float32 linear light (uint8/uint16 input is decoded from sRGB first); channels Y,
      RGB or RGBA.
    .npy: the array as it is.

    image: (H, W), or (H, W, C) with C = 1..4 (2 = grey + alpha, 4 = RGBA)."""
    a = _as_writable(image)
    if bits not in (None, 8, 16):
        raise ValueError(f"bits: expected None, 8 or 16, got {bits!r}")
    p = os.fspath(path)
    ext = _ext(p)
    d = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"path: directory does not exist: {d}")
    if ext in _NPY_EXT:
        np.save(p, np.asarray(image))
    elif ext in _TIFF_EXT:
        _write_tiff(p, a, bits)
    elif ext in _EXR_EXT:
        _write_exr(p, a)
    elif ext in _PIL_EXT:
        if bits is None:
            bits = 16 if a.dtype == np.uint16 else 8
        _write_png_like(p, a, bits, ext)
    else:
        raise ValueError(f"path: unsupported file type {ext!r}; expected .png, .jpg, .tif, .exr or .npy")
    return p
