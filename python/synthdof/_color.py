"""sRGB transfer function (IEC 61966-2-1) and the integer image rule.

Integer images (uint8, uint16) are taken as sRGB-encoded: divided by 255 or 65535 and decoded
to linear light. Float images are taken as linear light already, and may exceed 1."""
import numpy as np

_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def srgb_to_linear(x):
    """sRGB-encoded values (float in [0, 1], or uint8/uint16) to linear float32."""
    x = np.asarray(x)
    if x.dtype in _SCALE:
        x = x.astype(np.float32) / np.float32(_SCALE[x.dtype])
    else:
        x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x, dtype=None):
    """Linear light to sRGB-encoded float in [0, 1] (clipped), or to uint8/uint16 if dtype says so."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)
    if dtype is None:
        return y.astype(np.float32)
    dt = np.dtype(dtype)
    return np.round(y * _SCALE[dt]).astype(dt)
