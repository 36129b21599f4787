#!/usr/bin/env python3
"""Separation of synthdof.diagnose's scores between correct and faulty renders.

    python benchmarks/diagnostics_separation.py [--scale 1|2] [--markdown]

For every ground-truth scene (synthdof.load_ground_truth) it scores, with the scene's true depth,
matte, lens and aperture: synthdof's render, the thin-lens truth, Blender's Defocus node (the peer), and
renders with known faults:
  gauss sigma=c/4     one Gaussian behind the matte (sigma a quarter of the background CoC,
                      linear light), the subject pasted back with the matte
  gauss sRGB          the same on clipped sRGB values (what 8-bit tools do)
  gauss sigma=c/2     a wider Gaussian
  dilated k px        the matte decides what is sharp: inside the matte dilated by k px (at full
                      size) everything gets the subject's CoC
  pasted 4 px         a correct render with the sharp image pasted back through a 4 px dilated matte
  occluder only: railing focus (judged with the intended lens, and with the railing lens it was
                      made with), railing pushed to 3 m / 6 m (behind the subject at 2.5 m)
and a sweep of synthetic two-plane scenes for similar_depth. The tables in docs/diagnostics.md
come from this script.
"""
import argparse

import numpy as np
from scipy import ndimage

import synthdof
from synthdof._diagnose import MODES, THRESHOLDS

SCENES = ["portrait", "lights", "slant", "occluder"]


def down(x, s):
    if s == 1:
        return x.astype(np.float32)
    H, W = x.shape[:2]
    x = x[:H // s * s, :W // s * s].astype(np.float64)
    return x.reshape(H // s, s, W // s, s, *x.shape[2:]).mean((1, 3)).astype(np.float32)


def disk(r):
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r + 0.5


def gaussian_behind_matte(img, matte, sigma, srgb=False):
    x = synthdof.linear_to_srgb(img) if srgb else img
    b = np.stack([ndimage.gaussian_filter(x[:, :, i], sigma) for i in range(3)], 2)
    out = matte[:, :, None] * x + (1 - matte[:, :, None]) * b
    return synthdof.srgb_to_linear(out) if srgb else out.astype(np.float32)


def scene_rows(name, s):
    z = synthdof.load_ground_truth(name)
    m = z["meta"]
    img = down(z["pinhole"], s)
    depth = (1.0 / down(1.0 / z["depth"].astype(np.float64), s)).astype(np.float32)
    a = np.clip(down(z["alpha"], s), 0, 1)
    lens = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], m["focus_distance_m"], m["sensor_width_mm"])
    ap = synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"])
    c = lens.coc(depth)
    cbg = float(np.median(np.abs(c[a < 0.01])))
    cs = float(np.median(c[a > 0.98]))

    def render(**kw):
        kw.setdefault("matte", a)
        if "coc" in kw:
            return synthdof.render(img, aperture=ap, **kw)
        return synthdof.render(img, kw.pop("depth", depth), lens=kw.pop("lens", lens), aperture=ap, **kw)

    ours = render()
    cases = [("synthdof", ours, lens), ("thin-lens truth", down(z["lens"], s), lens),
             ("Blender Defocus", down(z["blender_defocus"], s), lens),
             ("gauss sigma=c/4", gaussian_behind_matte(img, a, cbg / 4), lens),
             ("gauss sRGB", gaussian_behind_matte(img, a, cbg / 4, srgb=True), lens),
             ("gauss sigma=c/2", gaussian_behind_matte(img, a, cbg / 2), lens)]
    for k in (2, 4, 6):
        ad = ndimage.grey_dilation(a, footprint=disk(max(1, round(k / s))))
        cases.append((f"dilated {k} px", render(coc=np.where(ad >= 0.5, cs, c).astype(np.float32), matte=ad), lens))
    ad = ndimage.grey_dilation(a, footprint=disk(max(1, round(4 / s))))
    cases.append(("pasted 4 px", (ad[:, :, None] * img + (1 - ad[:, :, None]) * ours).astype(np.float32), lens))
    if name == "occluder":
        rail_lens = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], 1.1, m["sensor_width_mm"])
        railfocus = render(lens=rail_lens)
        cases.append(("railing focus", railfocus, lens))
        cases.append(("railing focus, its lens", railfocus, rail_lens))
        rail = (a < 0.5) & (depth < 1.5)
        for zb in (3.0, 6.0):
            cases.append((f"railing at {zb:g} m", render(depth=np.where(rail, zb, depth).astype(np.float32)), lens))
    rows = []
    for label, r, ln in cases:
        d = synthdof.diagnose(img, r, depth=depth, matte=a, lens=ln, aperture=ap)
        rows.append((name, label, d))
    return rows


def similar_depth_rows():
    H, W = 256, 384
    yy, xx = np.mgrid[0:H, 0:W]
    matte = (((yy - 150) ** 2 + (xx - W / 2) ** 2) < 90 ** 2).astype(np.float32)
    img = np.random.default_rng(7).random((H, W, 3)).astype(np.float32) * 0.5
    pairs = [(1.0, 1.5), (1.5, 2.0), (2.0, 2.5), (2.0, 3.0), (3.0, 3.6), (2.0, 5.0), (1.5, 6.0)]
    lenses = [(85, 1.4), (85, 4.0), (50, 1.8), (26, 1.8)]
    out = []
    for f, N in lenses:
        row = []
        for zs, zb in pairs:
            d = np.where(matte > 0.5, zs, zb).astype(np.float32)
            dg = synthdof.diagnose(img, img, depth=d, matte=matte, lens=synthdof.ThinLens(f, N, zs))
            row.append(dg.scores["similar_depth"])
        out.append((f"{f} mm f/{N:g}", row))
    return pairs, out


def fmt(d, mode):
    if mode not in d.scores:
        return "–"
    v = d.scores[mode]
    return f"**{v:.2f}**" if mode in d.flags else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1, help="downscale the scenes by this factor")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in SCENES:
        rows += scene_rows(name, args.scale)
    print(f"scale 1/{args.scale}; thresholds: " + ", ".join(f"{k} {v}" for k, v in THRESHOLDS.items()))
    print("| scene | render | " + " | ".join(MODES) + " |")
    print("|---|---|" + "---:|" * len(MODES))
    for name, label, d in rows:
        print(f"| {name} | {label} | " + " | ".join(fmt(d, m) for m in MODES) + " |")
    pairs, sd = similar_depth_rows()
    print()
    print("| lens (384 px wide) | " + " | ".join(f"{a:g} m / {b:g} m" for a, b in pairs) + " |")
    print("|---|" + "---:|" * len(pairs))
    for label, row in sd:
        print(f"| {label} | " + " | ".join(f"**{v:.2f}**" if v >= THRESHOLDS['similar_depth'] else f"{v:.2f}"
                                         for v in row) + " |")


if __name__ == "__main__":
    main()
