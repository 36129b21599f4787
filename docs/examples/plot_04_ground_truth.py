"""
Against the thin-lens ground truth
==================================

Four scenes rendered by Blender Cycles through a pinhole (the all-in-focus input) and through a
thin lens (1024 samples per pixel: the truth), shipped with the package
(``synthdof.load_ground_truth``). Beside synthdof's render: Blender's compositor Defocus node fed
the same exact CoC, the usual post-process peer. The error maps are the absolute difference to
the truth in sRGB (averaged over the channels); PSNR over the whole frame.
"""
import matplotlib.pyplot as plt
import numpy as np

import synthdof


def srgb(x):
    return synthdof.linear_to_srgb(np.clip(x, 0, 1))


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((srgb(a) - srgb(b)) ** 2))


scenes = ("portrait", "lights", "slant", "occluder")
fig, ax = plt.subplots(len(scenes), 6, figsize=(18, 2.45 * len(scenes)))
for row, name in zip(ax, scenes):
    g = synthdof.load_ground_truth(name)
    m = g["meta"]
    lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
                             focus_distance=m["focus_distance_m"], sensor_width_mm=m["sensor_width_mm"])
    ours = synthdof.render(g["pinhole"], g["depth"], matte=g["alpha"], lens=lens,
                           aperture=synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"]))
    panels = [(g["pinhole"], f"{name}: pinhole (input)"),
              (ours, f"synthdof, {psnr(ours, g['lens']):.1f} dB"),
              (g["lens"], "thin-lens truth (Cycles)"),
              (g["blender_defocus"], f"Blender Defocus, {psnr(g['blender_defocus'], g['lens']):.1f} dB")]
    for a, (img, title) in zip(row, panels):
        a.imshow(srgb(img))
        a.set_title(title, fontsize=9)
    for a, img, who in ((row[4], ours, "synthdof"), (row[5], g["blender_defocus"], "Blender")):
        a.imshow(np.abs(srgb(img) - srgb(g["lens"])).mean(2), cmap="inferno", vmin=0, vmax=0.15)
        a.set_title(f"|error| {who} (0..0.15)", fontsize=9)
for a in ax.flat:
    a.axis("off")
fig.tight_layout()
