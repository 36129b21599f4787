"""
Near vs far bokeh
=================

The ground-truth *occluder* scene: a railing at 1.1 m in front of a person at 2.5 m, a leafy
wall with small lights at 6 m. Focused on the person, the railing is blurred in front of the
subject (its CoC is negative) and turns translucent over it, while the lights behind become
disks; focused on the railing, the person and the wall blur behind it. The signed CoC map shows
which side of the focal plane each pixel is on.
"""
import matplotlib.pyplot as plt
import numpy as np

import synthdof

g = synthdof.load_ground_truth("occluder")
m = g["meta"]
sl = np.s_[::2, ::2]  # half size keeps the example fast; the CoC halves with the width
image, depth, matte = g["pinhole"][sl], g["depth"][sl], g["alpha"][sl]

fig, ax = plt.subplots(2, 3, figsize=(13, 6))
ax[0, 0].imshow(synthdof.linear_to_srgb(np.clip(image, 0, 1)))
ax[0, 0].set_title("all-in-focus input")
ax[1, 0].imshow(depth, cmap="viridis")
ax[1, 0].set_title("depth (m)")
for col, (where, z) in enumerate((("person", m["focus_distance_m"]), ("railing", 1.1)), start=1):
    lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"], focus_distance=z,
                             sensor_width_mm=m["sensor_width_mm"])
    out = synthdof.render(image, depth, matte=matte, lens=lens)
    coc = lens.coc(depth)
    lim = float(np.abs(coc).max())
    ax[0, col].imshow(synthdof.linear_to_srgb(np.clip(out, 0, 1)))
    ax[0, col].set_title(f"focus on the {where} ({z:.1f} m), f/{m['f_number']}")
    ax[1, col].imshow(coc, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax[1, col].set_title(f"CoC: blue in front, red behind, |c| ≤ {lim:.0f} px")
for a in ax.flat:
    a.axis("off")
fig.tight_layout()
