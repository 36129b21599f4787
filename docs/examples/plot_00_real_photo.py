"""
A real photograph: two apertures, two focus planes
==================================================

scikit-image ships the Middlebury *motorcycle*: the left view of a stereo pair (741 x 500) and
the disparity the stereo match measured, in pixels, with holes (``inf``) where it failed.
``synthdof.refine`` fills the holes and aligns the disparity's edges with the photograph's;
``synthdof.coc_from_disparity`` turns disparity into blur (``K`` px of blur diameter per px of
disparity, so ``K`` plays the aperture), and ``synthdof.render`` spreads every pixel over a
hexagonal aperture in linear light.
"""
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

import synthdof

left, _, disparity = data.stereo_motorcycle()
refined, _ = synthdof.refine(left, disparity, disparity=True)
image = synthdof.srgb_to_linear(left)

TANK = np.s_[185:225, 400:455]    # the motorcycle's tank (rows, columns)
SHELF = np.s_[190:270, 615:675]   # a box on the shelf behind the front wheel
renders = {}
for where, box in (("tank", TANK), ("shelf", SHELF)):
    focus = float(np.median(refined[box]))
    for K in (0.3, 0.9):          # a small and a large aperture
        coc = synthdof.coc_from_disparity(refined, K=K, focus_disparity=focus)
        out = synthdof.render(image, coc=coc, aperture=synthdof.Aperture(blades=6))
        renders[where, K] = (synthdof.linear_to_srgb(out), float(np.percentile(np.abs(coc), 99)))

# %%
# The photograph, the measured disparity (holes in red), and the four renders.

valid = np.isfinite(disparity)
lo, hi = np.percentile(disparity[valid], [1, 99])
shown = plt.get_cmap("magma")(np.clip((np.where(valid, disparity, lo) - lo) / (hi - lo), 0, 1))[..., :3]
shown[~valid] = (1, 0, 0)

fig, ax = plt.subplots(2, 3, figsize=(12, 5.4))
ax[0, 0].imshow(left)
ax[0, 0].set_title("photograph")
ax[1, 0].imshow(shown)
ax[1, 0].set_title(f"measured disparity ({100 * (~valid).mean():.0f} % holes, red)")
for col, where in ((1, "tank"), (2, "shelf")):
    for row, K in ((0, 0.3), (1, 0.9)):
        img, blur = renders[where, K]
        ax[row, col].imshow(np.clip(img, 0, 1))
        ax[row, col].set_title(f"focus on the {where}, K = {K} (blur up to {blur:.0f} px)")
for a in ax.flat:
    a.axis("off")
fig.tight_layout()

# %%
# Before and after ``refine``: the disparity as measured and as filled.

fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
ax[0].imshow(shown)
ax[0].set_title("measured")
ax[1].imshow(np.clip((refined - lo) / (hi - lo), 0, 1), cmap="magma")
ax[1].set_title("synthdof.refine(image, disparity, disparity=True)")
for a in ax:
    a.axis("off")
fig.tight_layout()
