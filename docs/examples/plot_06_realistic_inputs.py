"""
Realistic inputs: before and after ``refine``
=============================================

Depth from a monocular network is low resolution and smooth across silhouettes; a segmentation
mask has no hair. Rendered as they are, the blurred depth edge leaves a rim of sharp background
around the subject and blurs the subject's edge. ``synthdof.refine(image, depth, matte=)``
upsamples the depth guided by the image, snaps its edges to the photograph's and returns a
matte that follows them. The ground-truth *portrait*: its depth made network-like (1/4
resolution, Gaussian blur) and its matte a hard mask at 1/2 resolution.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

import synthdof

g = synthdof.load_ground_truth("portrait")
m = g["meta"]
lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
                         focus_distance=m["focus_distance_m"], sensor_width_mm=m["sensor_width_mm"])
H, W = g["depth"].shape
net_depth = ndimage.gaussian_filter(g["depth"].reshape(H // 4, 4, W // 4, 4).mean((1, 3)), 1.0)
mask = (g["alpha"] > 0.5).reshape(H // 2, 2, W // 2, 2).mean((1, 3))
mask_full = np.clip(ndimage.zoom(mask, 2, order=1), 0, 1).astype(np.float32)
depth_full = ndimage.zoom(net_depth, 4, order=1).astype(np.float32)

depth_refined, matte_refined = synthdof.refine(g["pinhole"], net_depth.astype(np.float32), matte=mask_full)
renders = {
    "network depth as given": synthdof.render(g["pinhole"], depth_full, matte=mask_full, lens=lens),
    "after refine": synthdof.render(g["pinhole"], depth_refined, matte=matte_refined, lens=lens),
    "exact depth and matte": synthdof.render(g["pinhole"], g["depth"], matte=g["alpha"], lens=lens),
}


def srgb(x):
    return synthdof.linear_to_srgb(np.clip(x, 0, 1))


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((srgb(a) - srgb(b)) ** 2))


crop = np.s_[60:330, 230:560]  # the head and shoulders
fig, ax = plt.subplots(2, 3, figsize=(13, 6.6))
for a, (d, title) in zip(ax[0], ((depth_full, "network-like depth (1/4 res., blurred)"),
                                 (depth_refined, "after refine"), (g["depth"], "exact depth"))):
    a.imshow(d[crop], cmap="viridis_r", vmin=1.8, vmax=5.0)
    a.set_title(title)
for a, (title, out) in zip(ax[1], renders.items()):
    a.imshow(srgb(out)[crop])
    a.set_title(f"{title}: {psnr(out, g['lens']):.2f} dB")
for a in ax.flat:
    a.axis("off")
fig.tight_layout()
