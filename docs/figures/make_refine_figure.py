"""Draw docs/figures/motorcycle.png: a real photograph through synthdof.refine and synthdof.render.

The photograph is the Middlebury motorcycle that scikit-image ships (the left view of a stereo
pair, 741 x 500, and its disparity in pixels, inf where the stereo match failed). Panels:

    photograph | disparity as given (holes in red) | disparity after refine
    focus on the tank, small aperture | focus on the tank, large aperture | focus on the shelf

    python docs/figures/make_refine_figure.py [--out docs/figures/motorcycle.png]

Needs scikit-image, matplotlib and Pillow (pip install ".[test]").
"""
import argparse
import io
import os
import sys

import numpy as np

import synthdof

HERE = os.path.dirname(os.path.abspath(__file__))
TANK = np.s_[185:225, 400:455]    # the motorcycle's tank (rows, columns of the left view)
SHELF = np.s_[190:270, 615:675]   # a cardboard box on the shelf behind the front wheel
SMALL_K, LARGE_K = 0.3, 0.9       # blur diameter in px per px of disparity: two apertures
MAX_PNG_BYTES = 400_000


def disparity_colours(disparity, lo, hi):
    """Disparity as colours (near = bright), holes in red."""
    from matplotlib import colormaps
    valid = np.isfinite(disparity)
    t = np.clip((np.where(valid, disparity, lo) - lo) / (hi - lo), 0.0, 1.0)
    rgb = colormaps["magma"](t)[..., :3]
    rgb[~valid] = (1.0, 0.0, 0.0)
    return rgb


def render_panels(left, refined):
    """Three renders: (title, sRGB float image)."""
    image = synthdof.srgb_to_linear(left)
    aperture = synthdof.Aperture(blades=6)
    panels = []
    for where, box, K in (("tank", TANK, SMALL_K), ("tank", TANK, LARGE_K), ("shelf", SHELF, LARGE_K)):
        focus = float(np.median(refined[box]))
        coc = synthdof.coc_from_disparity(refined, K=K, focus_disparity=focus)
        out = synthdof.render(image, coc=coc, aperture=aperture)
        # the blur most of the frame reaches (99th percentile of |CoC|)
        panels.append((f"focus on the {where}, blur up to {np.percentile(np.abs(coc), 99):.0f} px",
                       synthdof.linear_to_srgb(out)))
    return panels


def figure(out_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage import data

    left, _, disparity = data.stereo_motorcycle()
    refined, _ = synthdof.refine(left, disparity, disparity=True)
    valid = np.isfinite(disparity)
    lo, hi = float(disparity[valid].min()), float(disparity[valid].max())
    panels = [("photograph (left view)", left / 255.0),
              (f"disparity as given: {100 * (~valid).mean():.0f} % holes (red)", disparity_colours(disparity, lo, hi)),
              ("synthdof.refine(image, disparity, disparity=True)", disparity_colours(refined, lo, hi))]
    panels += render_panels(left, refined)

    fig, axes = plt.subplots(2, 3, figsize=(12.0, 5.6), dpi=100)
    for ax, (title, img) in zip(axes.flat, panels):
        ax.imshow(np.clip(img, 0.0, 1.0), interpolation="lanczos")
        ax.set_title(title, fontsize=9.5)
        ax.axis("off")
    fig.subplots_adjust(left=0.005, right=0.995, top=0.955, bottom=0.005, wspace=0.02, hspace=0.09)
    save_small_png(fig, out_path, MAX_PNG_BYTES)


def save_small_png(fig, out_path, max_bytes):
    """Save a matplotlib figure as a 256-colour PNG (and close it); refuse one over max_bytes."""
    import matplotlib.pyplot as plt
    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    plt.close(fig)
    buf.seek(0)
    # a 256-colour palette keeps the file small; dithering hides the banding of the blurs
    Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.FLOYDSTEINBERG).save(out_path, optimize=True)
    size = os.path.getsize(out_path)
    print(f"wrote {out_path} ({size / 1000:.0f} KB)")
    if size > max_bytes:
        raise SystemExit(f"{out_path}: {size} bytes, more than {max_bytes}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "motorcycle.png"))
    a = p.parse_args(argv)
    figure(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
