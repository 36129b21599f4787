"""Regenerates python/synthdof/data/sample.npz from the portrait ground-truth scene (half size).

    python python/tools/make_sample.py PORTRAIT.npz   # the full-size scene (float32 pinhole image)
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) != 2:
    sys.exit(__doc__)
src = sys.argv[1]
z = np.load(src)
meta = json.loads(str(z["meta"]))
pin = z["pinhole"].astype(np.float64)
H, W = pin.shape[:2]
img = pin.reshape(H // 2, 2, W // 2, 2, 3).mean((1, 3))  # box average in linear light
x = np.clip(img, 0, 1)
srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
image = np.round(srgb * 255).astype(np.uint8)
depth = z["depth"][::2, ::2]  # depth is not anti-aliased: take one sample per block
depth_mm = np.round(depth * 1000).astype(np.uint16)
matte = np.round(z["alpha"].reshape(H // 2, 2, W // 2, 2).mean((1, 3)) * 255).astype(np.uint8)
info = {
    "description": "portrait: head with hair and checkered body at 2 m, brick wall at 5 m, small lights",
    "lens": {"focal_length_mm": meta["focal_length_mm"], "f_number": meta["f_number"],
             "focus_distance": meta["focus_distance_m"], "sensor_width_mm": meta["sensor_width_mm"]},
    "aperture": {"blades": meta["aperture_blades"], "rotation": meta["aperture_rotation_rad"]},
}
out = os.path.join(HERE, "..", "synthdof", "data", "sample.npz")
np.savez_compressed(out, image=image, depth_mm=depth_mm, matte=matte, meta=json.dumps(info))
print(out, os.path.getsize(out), "bytes")
