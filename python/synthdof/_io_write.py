"""Writing image files: every file the package writes goes to a temporary file beside its
target, is flushed and fsynced, and is renamed over the target only when complete (a failure
leaves the old target untouched); the output checks made before a render (folder, extension,
bits, free space) live here too. Reading is in `_io.py`."""
import errno
import os
import re
import secrets
import signal

import numpy as np

from ._color import linear_to_srgb, srgb_to_linear
from ._io import _EXR_EXT, _NPY_EXT, _PIL_FORMAT, _TIFF_EXT, _ext, _missing, _openexr

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
    try:
        os.remove(probe)
    except FileNotFoundError:  # a batch holding the folder's lock cleaned it up first
        pass
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
