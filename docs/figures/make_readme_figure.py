"""Draw docs/figures/readme.png, the README's figure: a real photograph before and after synthdof.

The Middlebury motorcycle that scikit-image ships, its measured stereo disparity filled by
synthdof.refine, rendered focused on the tank with a hexagonal aperture (the lower right panel of
docs/figures/motorcycle.png, side by side with the photograph).

    python docs/figures/make_readme_figure.py [--out docs/figures/readme.png]

Needs scikit-image, matplotlib and Pillow (pip install ".[docs]").
"""
import argparse
import os
import sys

import numpy as np

import synthdof
from make_refine_figure import LARGE_K, TANK, save_small_png

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_PNG_BYTES = 200_000


def figure(out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    left, _, disparity = data.stereo_motorcycle()
    refined, _ = synthdof.refine(left, disparity, disparity=True)
    coc = synthdof.coc_from_disparity(refined, K=LARGE_K, focus_disparity=float(np.median(refined[TANK])))
    out = synthdof.render(synthdof.srgb_to_linear(left), coc=coc, aperture=synthdof.Aperture(blades=6))
    fig, ax = plt.subplots(1, 2, figsize=(8.0, 2.85), dpi=100)
    for a, img, title in ((ax[0], left / 255.0, "photograph with its stereo disparity"),
                          (ax[1], synthdof.linear_to_srgb(out), "synthdof: refine + render, focus on the tank")):
        a.imshow(np.clip(img, 0.0, 1.0), interpolation="lanczos")
        a.set_title(title, fontsize=9.5)
        a.axis("off")
    fig.subplots_adjust(left=0.005, right=0.995, top=0.92, bottom=0.005, wspace=0.02)
    save_small_png(fig, out_path, MAX_PNG_BYTES)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "readme.png"))
    figure(p.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
