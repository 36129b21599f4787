"""The small sample scene shipped with the package (no download needed)."""
import json
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(__file__), "data", "sample.npz")


def load_sample():
    """The sample portrait scene as a dict:

    image  (H, W, 3) uint8, sRGB-encoded (lights clip at 255: see render's `highlights`)
    depth  (H, W) float32 planar depth in metres (stored as 16-bit millimetres)
    matte  (H, W) float32 subject alpha in [0, 1]
    lens   dict of ThinLens arguments; aperture dict of Aperture arguments
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
