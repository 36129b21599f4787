"""Image, depth and matte files.

The core package needs NumPy only; the file formats use well-kept libraries installed with the
`io` extra (`pip install "synthdof[io]"`), each imported only when a file needs it:

  PNG, JPEG, BMP, WebP   Pillow (16-bit colour PNG through imagecodecs: Pillow keeps 8 bits)
  TIFF                   tifffile (float32 linear light, or 8/16-bit)
  OpenEXR                the OpenEXR package (imageio is tried when it is missing)
  .npy                   NumPy

Integer pixels are sRGB-encoded and float pixels are linear light, the rule the rest of the
package follows, so `render(read_image(path), ...)` needs no conversion. This module reads;
`_io_write.py` writes (crash-safe) and checks outputs, and its names are re-exported here."""
import os

import numpy as np


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
            raise _missing("reading a 16-bit colour PNG (Pillow keeps only 8 bits of it)", "imagecodecs") from None
        with open(path, "rb") as f:
            data = f.read()
        try:
            return np.asarray(imagecodecs.png_decode(data))
        except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file
            raise ValueError(f"{name}: cannot decode PNG {path}: {e}") from e
    try:
        from PIL import Image
    except ImportError:
        raise _missing(f"reading {_ext(path)} files", "pillow") from None
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
        raise _missing("reading TIFF files", "tifffile") from None
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
            raise _missing("reading OpenEXR files", "openexr") from None
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
    rule of `render` and `scatter`, so the array can be passed on as it is. A .npy file is
    returned as stored (floats as float32).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension picks the format.
    channels : {None, 3}, optional
        None keeps the file's channels; 3 returns RGB (grey repeated, alpha dropped).

    Returns
    -------
    numpy.ndarray
        uint8, uint16 or float32 pixels.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be decoded (the message names the path), or `channels` is not None or 3.
    ImportError
        The format's library is missing; the message names the extra to install.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> _ = write_image(path, np.full((2, 3), 7, np.uint8))
    >>> read_image(path, channels=3).shape
    (2, 3, 3)
    """
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


def read_depth(path, *, scale=None, disparity=False, invalid="raise"):
    """Read a depth map (or a disparity map) as float32 (H, W).

    The result is the stored value times `scale`:

    - float files (.npy, float TIFF, OpenEXR: channel Z, Y or R): `scale` defaults to 1, so
      depth files hold metres;
    - 16-bit integer files (PNG, TIFF): `scale` defaults to 0.001, millimetre codes (Kinect,
      RealSense and most RGB-D sets; TUM RGB-D uses ``scale=1/5000``);
    - 8-bit files hold too few levels for metric depth: `scale` must be given.

    Relative disparity d (MiDaS, DPT, Depth Anything) is known only up to a scale (and, for
    affine-invariant models, a shift), so it does not give metres: pass it to
    ``coc_from_disparity(d, K=..., focus_disparity=...)``, where K sets the blur strength (a CoC
    diameter of K * (d_focus - d) pixels). When the metric scale S is known (d = S / z),
    ``disparity_to_depth(d, scale=S)`` gives depth in metres.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Multi-channel files are accepted when every colour channel holds the same
        values.
    scale : float, optional
        Metres (or disparity units) per stored code; see above for the defaults.
    disparity : bool, optional
        The file holds disparity (inverse depth), returned as disparity. Integer files are
        normalised to [0, 1] by default (scale = 1/255 or 1/65535); KITTI's 16-bit disparity
        PNGs use ``scale=1/256`` (pixels).
    invalid : {'raise', 'keep'}, optional
        'keep' returns NaN, inf and negative values as they are (a sensor's holes, for
        `refine` to fill) instead of raising.

    Returns
    -------
    numpy.ndarray
        float32 (H, W). Depth is >= 0 (zeros, sensor holes, are returned as they are: depth must
        be > 0 only where it is rendered); every value is finite.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be decoded, holds colour or non-numeric data, 8-bit codes without a
        `scale`, or a value that is not finite (or a negative depth); the message names the file
        and the first bad pixel.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "depth_mm.png")
    >>> _ = write_image(path, np.array([[1500, 2000]], np.uint16))
    >>> read_depth(path)
    array([[1.5, 2. ]], dtype=float32)
    """
    if invalid not in ("raise", "keep"):
        raise ValueError(f"invalid: expected 'raise' or 'keep', got {invalid!r}")
    return _read_depth(path, scale, disparity, "path", check=invalid == "raise")


def _read_depth(path, scale, disparity, name, check=True, hint=""):
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
    with np.errstate(invalid="ignore", over="ignore"):
        out = (a.astype(np.float64) * s).astype(np.float32)
    if check:
        _check_values(out, name, p, "disparity" if disparity else "depth", 0.0 if not disparity else None, None,
                      hint)
    return out


def _check_values(a, name, path, what, lo, hi, hint=""):
    """Raise ValueError naming the file and the first pixel of `a` that is not finite or lies
    outside [lo, hi] (None: unbounded), followed by `hint`."""
    bad = ~np.isfinite(a)
    if lo is not None:
        bad |= a < lo
    if hi is not None:
        bad |= a > hi
    if bad.any():
        y, x = np.unravel_index(int(np.argmax(bad)), a.shape)
        rng = "finite" + ("" if lo is None else f" and >= {lo:g}" if hi is None else f" and in [{lo:g}, {hi:g}]")
        raise ValueError(f"{name}: {path} holds {what} value {float(a[y, x])!r} at row {y}, column {x} "
                         f"({int(bad.sum())} such pixels; {what} values must be {rng}){hint}")


def read_matte(path):
    """Read a subject matte as float32 (H, W) in [0, 1].

    The alpha channel of a grey+alpha or RGBA file (a cut-out of the subject), else the single
    grey channel; integer codes are divided by their maximum (255 or 65535), floats kept (values
    within 1e-4 outside [0, 1], rounding of compositing, are clipped to it).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    numpy.ndarray
        float32 (H, W), finite, in [0, 1].

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file cannot be decoded, holds colour data, or (a float file) values that are not
        finite or lie outside [0, 1]; the message names the file and the first bad pixel.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "matte.png")
    >>> _ = write_image(path, np.array([[0, 255]], np.uint8))
    >>> read_matte(path)
    array([[0., 1.]], dtype=float32)
    """
    return _read_matte(path, "path")


# floats this far outside [0, 1] are rounding (premultiplied compositing), clipped, not refused
_MATTE_TOLERANCE = 1e-4


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
        a = a.astype(np.float32)
        _check_values(a, name, p, "matte", -_MATTE_TOLERANCE, 1.0 + _MATTE_TOLERANCE)
        return np.clip(a, 0.0, 1.0, out=a)
    raise ValueError(f"{name}: {p} holds {a.dtype} data; expected a matte in [0, 1] or 8/16-bit codes")


# -- writers ---------------------------------------------------------------------------------

_PIL_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP",
               ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM", ".pnm": "PPM"}
# Bytes a file takes per byte of pixels, for the free-space check before a render: exact for the
# uncompressed formats, a typical ratio for the compressed ones (noisy photos compress least).


# the writing half (imported last: it uses the format tables above)
from ._io_write import (TEMP_RE, _check_format, _image_writer, _kill_hook, _temp_path,  # noqa: E402,F401
                        _write_image, check_free_space, check_output, expected_file_size,
                        write_atomic, write_files_atomic, write_image)
