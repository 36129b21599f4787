"""
Circle vs blades
================

The aperture's shape is the shape of every out-of-focus light: a circle for an open iris, a
polygon for a lens stopped down with ``blades`` straight blades. Behind the focal plane the
disk is the aperture as it is; in front of it, the image is inverted, so an odd polygon points
the other way (``scatter`` of a single bright pixel shows the kernel itself). The scene: the
ground-truth *lights* (bright lights at 8 m behind a card in focus at 2 m, 85 mm f/1.8), whose
lights are far brighter than 1 in linear light, as real lights are, so they keep their shape.
"""
import matplotlib.pyplot as plt
import numpy as np

import synthdof

g = synthdof.load_ground_truth("lights")
m = g["meta"]
lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
                         focus_distance=m["focus_distance_m"], sensor_width_mm=m["sensor_width_mm"])
renders = {blades: synthdof.render(g["pinhole"], g["depth"], matte=g["alpha"], lens=lens,
                                   aperture=synthdof.Aperture(blades=blades))
           for blades in (0, 5, 6, 8)}

fig, ax = plt.subplots(2, 4, figsize=(13, 4.8))
for col, (blades, out) in enumerate(renders.items()):
    name = "circle" if blades == 0 else f"{blades} blades"
    shown = synthdof.linear_to_srgb(np.clip(out, 0, 1))
    ax[0, col].imshow(shown)
    ax[0, col].set_title(name)
    ax[1, col].imshow(shown[:170, :250])  # the lights at the top left
    ax[1, col].set_title(f"{name}: top left, enlarged")
for a in ax.flat:
    a.axis("off")
fig.tight_layout()

# %%
# The kernels: one bright pixel scattered with a CoC of +41 px (behind the focal plane) and
# -41 px (in front of it). Each sums to 1: the energy of the pixel is kept.

point = np.zeros((61, 61), np.float32)
point[30, 30] = 1.0
cases = [(0, 41.0, "circle"), (6, 41.0, "6 blades"), (5, 41.0, "5 blades, behind"),
         (5, -41.0, "5 blades, in front")]
fig, ax = plt.subplots(1, 4, figsize=(12, 3.3))
for a, (blades, c, title) in zip(ax, cases):
    k = synthdof.scatter(point, np.full(point.shape, c, np.float32), aperture=synthdof.Aperture(blades=blades))
    a.imshow(k, cmap="magma")
    a.set_title(f"{title}: sum {k.sum():.6f}", fontsize=9)
    a.axis("off")
fig.tight_layout()
