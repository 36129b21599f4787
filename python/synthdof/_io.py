"""Image, depth and matte files.

The core package needs NumPy only; the file formats use well-kept libraries installed with the
`io` extra (`pip install "synthdof[io]"`), each imported only when a file needs it:

  PNG, JPEG, BMP, WebP   Pillow (16-bit colour PNG through imagecodecs: Pillow keeps 8 bits)
  TIFF                   tifffile (float32 linear light, or 8/16-bit)
  OpenEXR                the OpenEXR package (imageio is tried when it is missing)
  .npy                   NumPy

Integer pixels are sRGB-encoded and float pixels are linear light, the rule the rest of the
package follows, so `render(read_image(path), ...)` needs no conversion."""
import errno
import os
import re
import secrets
import signal

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

    invalid : {'raise', 'keep'}, optional
        'keep' returns NaN, inf and negative values as they are (a sensor's holes, for
        `refine` to fill) instead of raising.

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


def _read_depth(path, scale, disparity, name, check=True):
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
        _check_values(out, name, p, "disparity" if disparity else "depth", 0.0 if not disparity else None, None)
    return out


def _check_values(a, name, path, what, lo, hi):
    """Raise ValueError naming the file and the first pixel of `a` that is not finite or lies
    outside [lo, hi] (None: unbounded)."""
    bad = ~np.isfinite(a)
    if lo is not None:
        bad |= a < lo
    if hi is not None:
        bad |= a > hi
    if bad.any():
        y, x = np.unravel_index(int(np.argmax(bad)), a.shape)
        rng = "finite" + ("" if lo is None else f" and >= {lo:g}" if hi is None else f" and in [{lo:g}, {hi:g}]")
        raise ValueError(f"{name}: {path} holds {what} value {float(a[y, x])!r} at row {y}, column {x} "
                         f"({int(bad.sum())} such pixels; {what} values must be {rng})")


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
_SIZE_RATIO = {".npy": 1.0, ".bmp": 1.0, ".ppm": 1.0, ".pgm": 1.0, ".pnm": 1.0, ".tif": 0.5,
               ".tiff": 0.5, ".exr": 0.5, ".png": 0.5, ".gif": 0.3, ".jpg": 0.1, ".jpeg": 0.1,
               ".webp": 0.1}
_WRITE_EXT = tuple(_SIZE_RATIO)

# Temporary files are ".<target name>.synthdof-<pid>-<random>.tmp" beside their target: hidden,
# and never ending in an image extension, so scripts listing "*.png" cannot pick one up.
TEMP_RE = re.compile(r"^\.(?P<target>.+)\.synthdof-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


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


def _check_format(path, shape, dtype, bits, name):
    """Everything about writing an image of this shape and dtype to `path` that can be known
    before the pixels exist: the extension, the bits, the channels, the library. Returns the
    bits to write (a PNG-like file's default resolved)."""
    if bits not in (None, 8, 16):
        raise ValueError(f"bits: expected None, 8 or 16, got {bits!r}")
    ext = _ext(path)
    if ext not in _WRITE_EXT:
        raise ValueError(f"{name}: unsupported file type {ext!r} ({os.fspath(path)}); expected .png, .jpg, "
                         f".tif, .exr or .npy")
    colour = len(shape) == 3 and shape[2] > 1
    if ext in _PIL_FORMAT:
        if bits is None:
            bits = 16 if dtype == np.uint16 else 8
        if ext in (".jpg", ".jpeg") and bits == 16:
            raise ValueError("bits: JPEG holds 8 bits per channel")
        if bits == 16 and colour:
            if ext != ".png":
                raise ValueError(f"bits: 16-bit colour needs PNG or TIFF, not {ext}")
            _require("imagecodecs", "writing a 16-bit colour PNG")
        else:
            _require("PIL", f"writing {ext} files", "pillow")
        return bits
    if ext in _TIFF_EXT:
        _require("tifffile", "writing TIFF files")
    elif ext in _EXR_EXT:
        if len(shape) == 3 and shape[2] == 2:
            raise ValueError(f"{name}: OpenEXR output takes 1, 3 or 4 channels")
        if _openexr() is None:
            _require("imageio", "writing OpenEXR files", "openexr")
    return bits


def _require(module, what, package=None):
    import importlib.util
    if importlib.util.find_spec(module) is None:
        raise _missing(what, package or module)


def expected_file_size(path, shape, dtype, bits=None):
    """Bytes an image of `shape` and `dtype` is expected to take in `path`'s format (an upper
    estimate for the uncompressed formats, a typical size for the compressed ones).

    Parameters
    ----------
    path : str or os.PathLike
        The output file; only its extension is used.
    shape : tuple of int
        The image's shape, (H, W) or (H, W, C).
    dtype : numpy.dtype
        The dtype passed to `write_image`.
    bits : {None, 8, 16}, optional
        As for `write_image`.

    Returns
    -------
    int
        The expected size in bytes.

    Examples
    --------
    >>> import numpy as np
    >>> expected_file_size("a.npy", (100, 200, 3), np.float32)
    240128
    """
    ext = _ext(path)
    if ext in _NPY_EXT:
        item = np.dtype(dtype).itemsize
    elif ext in _PIL_FORMAT:
        item = 2 if bits == 16 or (bits is None and np.dtype(dtype) == np.uint16) else 1
    elif ext in _TIFF_EXT and bits is not None:
        item = bits // 8
    else:
        item = 4  # float32 (TIFF, EXR)
    raw = int(np.prod(shape, dtype=np.int64)) * item
    return int(raw * _SIZE_RATIO.get(ext, 1.0)) + 128 * (ext in _NPY_EXT)


def check_output(path, shape, dtype, *, bits=None, name="path", space=True):
    """Check, before a render, that an image of `shape` and `dtype` can be written to `path`.

    The folder must exist and take a new file (a probe file is created and removed, which also
    catches read-only file systems), the extension and `bits` must suit the image, the format's
    library must be installed, and, where the platform reports free space (``os.statvfs``), the
    expected size (`expected_file_size`) must fit.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    shape : tuple of int
        The image's shape, (H, W) or (H, W, C).
    dtype : numpy.dtype
        The dtype that will be passed to `write_image`.
    bits : {None, 8, 16}, optional
        As for `write_image`.
    name : str, optional
        The argument named in error messages (e.g. ``"--output"``).
    space : bool, optional
        Check the free space (False when the caller checks it for several files at once).

    Returns
    -------
    int
        The expected size of the file in bytes.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    OSError
        The folder takes no new file (permissions, a read-only file system) or has too little
        free space (errno ENOSPC).
    ValueError
        The extension is unknown or does not suit the image (16-bit JPEG, 2-channel EXR, ...).
    ImportError
        The format's library is missing.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> d = tempfile.mkdtemp()
    >>> check_output(os.path.join(d, "out.npy"), (4, 5), np.float32)
    208
    >>> check_output(os.path.join(d, "out.xyz"), (4, 5), np.float32)
    Traceback (most recent call last):
    ...
    ValueError: path: unsupported file type '.xyz' (...); expected .png, .jpg, .tif, .exr or .npy
    """
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name}: directory does not exist: {folder}")
    _check_format(p, tuple(shape), np.dtype(dtype), bits, name)
    if os.path.isdir(p):
        raise IsADirectoryError(f"{name}: is a directory, not a file: {p}")
    probe = _temp_path(p)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except OSError as e:
        raise OSError(e.errno, f"{name}: cannot create files in {folder}: {e.strerror}") from None
    os.remove(probe)
    size = expected_file_size(p, shape, dtype, bits)
    if space:
        check_free_space(folder, size, name)
    return size


def check_free_space(folder, size, name="path"):
    """Raise OSError (ENOSPC) when the platform reports less than `size` bytes free in `folder`.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder on the file system to check.
    size : int
        Bytes needed.
    name : str, optional
        The argument named in the message.

    Raises
    ------
    OSError
        Less than `size` bytes are available to this user (``errno.ENOSPC``). Platforms without
        ``os.statvfs`` are not checked.

    Examples
    --------
    >>> import tempfile
    >>> check_free_space(tempfile.gettempdir(), 1)
    >>> check_free_space(tempfile.gettempdir(), 2 ** 62, "--output")
    Traceback (most recent call last):
    ...
    OSError: [Errno 28] --output: ... bytes free in ..., ... needed
    """
    if not hasattr(os, "statvfs"):
        return
    st = os.statvfs(os.fspath(folder))
    free = st.f_bavail * st.f_frsize
    if free < size:
        raise OSError(errno.ENOSPC, f"{name}: {free} bytes free in {os.fspath(folder)}, {size} needed")


def _temp_path(final):
    d, base = os.path.split(os.path.abspath(final))
    return os.path.join(d, f".{base}.synthdof-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def write_atomic(path, write, *, name="path"):
    """Write a file through `write(temp_path)` so that `path` is either its old self or complete.

    The data goes to a temporary file in the same folder (named
    ``.<name>.synthdof-<pid>-<hex>.tmp``, never ending in an image extension), is flushed to the
    disk (fsync) and then renamed over `path` in one step. On any failure, an interruption
    included, the temporary file is removed and `path` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    write : callable
        ``write(temp_path)`` writes the complete file to `temp_path` (closing it).
    name : str, optional
        The argument named in error messages.

    Returns
    -------
    str
        `path` as a string.

    Raises
    ------
    OSError
        Writing failed (a full disk, permissions); the message names `path`.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> def write(tmp):
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("complete")
    >>> _ = write_atomic(path, write)
    >>> open(path).read(), sorted(os.listdir(os.path.dirname(path)))
    ('complete', ['notes.txt'])
    """
    return write_files_atomic([(path, write, name)])[0]


def write_files_atomic(files):
    """Write several files crash-safely, all temporary files complete before any is renamed.

    Parameters
    ----------
    files : list of (path, write, name)
        As for `write_atomic`: the target, ``write(temp_path)``, the argument named in errors.

    Returns
    -------
    list of str
        The paths.

    Raises
    ------
    OSError
        A file could not be written: no target has been replaced and no temporary file is left.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> def fails(tmp):
    ...     open(tmp, "w").close()
    ...     raise OSError(28, "No space left on device")
    >>> write_files_atomic([(os.path.join(d, "a.txt"), lambda t: open(t, "w").close(), "a"),
    ...                     (os.path.join(d, "b.txt"), fails, "b")])
    Traceback (most recent call last):
    ...
    OSError: [Errno 28] b: cannot write .../b.txt: No space left on device
    >>> os.listdir(d)
    []
    """
    finals = [os.fspath(p) for p, _, _ in files]
    temps = []
    try:
        for final, (_, write, name) in zip(finals, files):
            tmp = _temp_path(final)
            temps.append(tmp)
            try:
                write(tmp)
                fd = os.open(tmp, os.O_RDWR)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                if isinstance(e, FileNotFoundError):
                    raise
                kept = " (the file there before is unchanged)" if os.path.exists(final) else ""
                msg = f"{name}: cannot write {final}: {e.strerror or e}{kept}"
                raise (OSError(e.errno, msg) if e.errno is not None else OSError(msg)) from None
        for final in finals:
            _kill_hook(final)
        for final, tmp in zip(finals, temps):
            os.replace(tmp, final)
    except BaseException:
        for tmp in temps:
            try:
                os.remove(tmp)
            except OSError:
                pass
        raise
    return finals


def _kill_hook(final):
    # Test hook (private): SYNTHDOF_TEST_KILL_AFTER_TEMP=<file name> makes this process SIGKILL
    # itself once that file's complete temporary file is on disk, before the rename: the state a
    # kill at the worst moment leaves behind. tests/test_crash_safety.py uses it.
    target = os.environ.get("SYNTHDOF_TEST_KILL_AFTER_TEMP")
    if target and os.path.basename(final) == target:
        os.kill(os.getpid(), signal.SIGKILL)


def _write_png_like(path, a, bits, ext):
    q = np.ascontiguousarray(_to_bits(a, bits))
    if q.dtype == np.uint16 and q.ndim == 3:
        import imagecodecs
        data = imagecodecs.png_encode(q)
        with open(path, "wb") as f:
            f.write(data)
        return
    from PIL import Image
    im = Image.fromarray(q)  # L, LA, RGB, RGBA, or 16-bit grey (I;16)
    if ext in (".jpg", ".jpeg"):
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        im.save(path, format="JPEG", quality=95)
    else:
        im.save(path, format=_PIL_FORMAT[ext])


def _write_tiff(path, a, bits):
    import tifffile
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
    OpenEXR = _openexr()
    if OpenEXR is None:
        import imageio.v3 as iio
        iio.imwrite(path, lin, extension=".exr")
        return
    if lin.ndim == 2:
        chans = {"Y": np.ascontiguousarray(lin)}
    else:
        chans = {n: np.ascontiguousarray(lin[:, :, i]) for i, n in enumerate(names[lin.shape[2]])}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    try:
        with OpenEXR.File(header, chans) as f:
            f.write(os.fspath(path))
    except Exception as e:  # noqa: BLE001 - the library reports a failed write (a full disk) as its own type
        raise OSError(str(e)) from None


def _write_npy(path, a):
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to the temporary name
        np.save(f, a)


def write_image(path, image, *, bits=None):
    """Write an image, the format chosen by the file extension, crash-safely.

    - PNG (and JPEG, 8 bits only): integer arrays are written as they are (uint8 -> 8-bit,
      uint16 -> 16-bit); float arrays are linear light and are sRGB-encoded to 8 bits, or 16 with
      ``bits=16`` (values outside [0, 1] clip). ``bits=8/16`` also rescales integer input.
    - TIFF: float arrays as float32 linear light (nothing clips), integers as they are;
      ``bits=8/16`` sRGB-encodes floats to integers instead.
    - OpenEXR: float32 linear light (uint8/uint16 input is decoded from sRGB first); channels Y,
      RGB or RGBA.
    - .npy: the array as it is.

    The file is written to a temporary name in the same folder, flushed to the disk and renamed
    over `path` only when complete (see `write_atomic`): after a failure or a kill, `path` holds
    its old content or none, never a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        The output file; its folder must exist.
    image : numpy.ndarray
        (H, W), or (H, W, C) with C = 1..4 (2 = grey + alpha, 4 = RGBA); float, uint8 or uint16.
    bits : {None, 8, 16}, optional
        Bits per channel of a PNG or TIFF, see above.

    Returns
    -------
    str
        `path` as a string.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    TypeError
        `image` is not a float, uint8 or uint16 array.
    ValueError
        A bad shape, an unknown extension, or bits the format cannot hold.
    ImportError
        The format's library is missing.
    OSError
        Writing failed (the message names `path`, which is left as it was).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "ramp.npy")
    >>> _ = write_image(path, np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3))
    >>> np.load(path).shape
    (2, 3)
    """
    return _write_image(path, image, bits, "path")


def _write_image(path, image, bits, name):
    return write_atomic(path, _image_writer(path, image, bits, name), name=name)


def _image_writer(path, image, bits, name):
    """A `write(temp_path)` function writing `image` in `path`'s format, once everything about
    the write that can be checked beforehand has been."""
    a = _as_writable(image)
    p = os.fspath(path)
    d = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"{name}: directory does not exist: {d}")
    bits = _check_format(p, a.shape, a.dtype, bits, name)
    ext = _ext(p)
    if ext in _NPY_EXT:
        arr = np.asarray(image)
        write = lambda tmp: _write_npy(tmp, arr)  # noqa: E731
    elif ext in _TIFF_EXT:
        write = lambda tmp: _write_tiff(tmp, a, bits)  # noqa: E731
    elif ext in _EXR_EXT:
        write = lambda tmp: _write_exr(tmp, a)  # noqa: E731
    else:
        write = lambda tmp: _write_png_like(tmp, a, bits, ext)  # noqa: E731
    return write
