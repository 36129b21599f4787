"""sRGB transfer function (IEC 61966-2-1) and the integer image rule.

Integer images (uint8, uint16) are taken as sRGB-encoded: divided by 255 or 65535 and decoded
to linear light. Float images are taken as linear light already, and may exceed 1."""
import numpy as np

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _checked(x, name):
    if isinstance(x, (str, bytes)) or (isinstance(x, np.ndarray) and x.dtype.kind not in "fu"):
        kind = type(x).__name__ if not isinstance(x, np.ndarray) else x.dtype
        raise TypeError(f"{name}: expected a float, uint8 or uint16 array, got {kind}")
    try:
        a = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - anything NumPy cannot read is the caller's input
        raise TypeError(f"{name}: cannot be read as an array ({e})") from None
    if a.dtype.kind not in "fu" or (a.dtype.kind == "u" and a.dtype not in _SCALE):
        raise TypeError(f"{name}: expected a float, uint8 or uint16 array, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def srgb_to_linear(x):
    """Decode sRGB-encoded values to linear light.

    Parameters
    ----------
    x : array_like
        sRGB-encoded values: float in [0, 1], or uint8/uint16 (divided by 255 or 65535 first).

    Returns
    -------
    ndarray
        float32 linear light, of x's shape.

    Raises
    ------
    TypeError
        If x is not a float, uint8 or uint16 array.
    ValueError
        If a float x holds NaN or inf.

    Examples
    --------
    >>> import numpy as np
    >>> from synthdof import srgb_to_linear
    >>> srgb_to_linear(np.array([0, 255], np.uint8))
    array([0., 1.], dtype=float32)
    >>> float(srgb_to_linear(0.5))  # mid-grey in sRGB is about a fifth of the light
    0.21404114365577698
    """
    x = _checked(x, "x")
    if x.dtype in _SCALE:
        x = x.astype(np.float32) / np.float32(_SCALE[x.dtype])
    else:
        x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x, dtype=None):
    """Encode linear light as sRGB.

    Parameters
    ----------
    x : array_like
        Linear light (float; values outside [0, 1] are clipped), or uint8/uint16.
    dtype : {None, uint8, uint16}, optional
        None (default) gives float32 in [0, 1]; uint8 or uint16 gives rounded integers.

    Returns
    -------
    ndarray
        The sRGB-encoded values, of x's shape.

    Raises
    ------
    TypeError
        If x is not a float, uint8 or uint16 array.
    ValueError
        If x holds NaN or inf, or dtype is another type.

    Examples
    --------
    >>> import numpy as np
    >>> from synthdof import linear_to_srgb
    >>> linear_to_srgb(np.array([0.0, 0.2140411, 4.0]), np.uint8)
    array([  0, 127, 255], dtype=uint8)
    """
    x = np.clip(_checked(x, "x").astype(np.float32), 0.0, 1.0)
    if dtype is not None and np.dtype(dtype) not in _SCALE:
        raise ValueError(f"dtype: expected uint8 or uint16 (or None for float), got {np.dtype(dtype)}")
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)
    if dtype is None:
        return y.astype(np.float32)
    dt = np.dtype(dtype)
    return np.round(y * _SCALE[dt]).astype(dt)
