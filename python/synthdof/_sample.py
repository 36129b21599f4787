"""The small sample scene shipped with the package (no download needed)."""
import json
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(__file__), "data", "sample.npz")


def load_sample():
    """The small portrait scene shipped with the package (no download needed).

    Returns
    -------
    dict
        ``image``: (H, W, 3) uint8, sRGB-encoded (lights clip at 255: see render's
        `highlights`); ``depth``: (H, W) float32 planar depth in metres (stored as 16-bit
        millimetres); ``matte``: (H, W) float32 subject alpha in [0, 1]; ``lens``: a dict of
        ThinLens arguments; ``aperture``: a dict of Aperture arguments; ``description``: str.

    Examples
    --------
    >>> import synthdof
    >>> s = synthdof.load_sample()
    >>> s["image"].dtype, s["image"].shape[2], s["depth"].shape == s["image"].shape[:2]
    (dtype('uint8'), 3, True)
    >>> out = synthdof.render(s["image"], s["depth"], matte=s["matte"],
    ...                       lens=synthdof.ThinLens(**s["lens"]),
    ...                       aperture=synthdof.Aperture(**s["aperture"]))
    >>> out.dtype == s["image"].dtype and out.shape == s["image"].shape
    True
    """
    with np.load(_PATH) as z:
        meta = json.loads(str(z["meta"]))
        return {
            "image": z["image"].copy(),
            "depth": z["depth_mm"].astype(np.float32) / np.float32(1000.0),
            "matte": z["matte"].astype(np.float32) / np.float32(255.0),
            "lens": meta["lens"],
            "aperture": meta["aperture"],
            "description": meta["description"],
        }
