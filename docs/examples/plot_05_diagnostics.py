"""
Diagnostics: each failure mode's map
====================================

``synthdof.diagnose(image, rendered, depth=, matte=, lens=)`` scores a render for the classic
portrait-mode failures, each in [0, 1], flags those above their threshold and returns a map of
where each one is. Here each failure is made on purpose on the ground-truth scenes (the
occluder at half size) and shown beside the same map for synthdof's correct render:

- **halo**: the matte dilated by 2 px, so a rim of sharp background sticks to the subject;
- **gaussian_look**: the whole frame blurred with a Gaussian and the subject pasted back
  (lights become dim smudges instead of disks);
- **wrong_subject**: the focus on the railing instead of the person behind it;
- **foreground_bleed**: the railing given the background's depth, so it is blurred as background.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage

import synthdof


def scene(name, step):
    g = synthdof.load_ground_truth(name)
    m = g["meta"]
    sl = np.s_[::step, ::step]
    return dict(image=g["pinhole"][sl], depth=g["depth"][sl], matte=g["alpha"][sl],
                lens=synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
                                       focus_distance=m["focus_distance_m"], sensor_width_mm=m["sensor_width_mm"]),
                aperture=synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"]))


def render(s, **kw):
    args = dict(matte=s["matte"], lens=s["lens"], aperture=s["aperture"])
    args.update(kw)
    return synthdof.render(s["image"], kw.pop("depth", s["depth"]), **{k: v for k, v in args.items() if k != "depth"})


def diagnose(s, out):
    return synthdof.diagnose(s["image"], out, depth=s["depth"], matte=s["matte"], lens=s["lens"],
                             aperture=s["aperture"])


portrait, occluder = scene("portrait", 1), scene("occluder", 2)
coc = portrait["lens"].coc(portrait["depth"])
sigma = float(np.percentile(np.abs(coc), 90)) / 4
a = portrait["matte"][..., None]
gaussian = a * portrait["image"] + (1 - a) * ndimage.gaussian_filter(portrait["image"], (sigma, sigma, 0))
far_railing = np.where(occluder["depth"] < 1.6, 6.0, occluder["depth"]).astype(np.float32)
m = occluder["lens"]
rail_focus = synthdof.ThinLens(focal_length_mm=m.focal_length_mm, f_number=m.f_number, focus_distance=1.1,
                               sensor_width_mm=m.sensor_width_mm)
faults = [
    ("halo", portrait, render(portrait, matte=ndimage.grey_dilation(portrait["matte"], size=5))),
    ("gaussian_look", portrait, gaussian.astype(np.float32)),
    ("wrong_subject", occluder, render(occluder, lens=rail_focus)),
    ("foreground_bleed", occluder, render(occluder, depth=far_railing)),
]
correct = {id(portrait): diagnose(portrait, render(portrait)), id(occluder): diagnose(occluder, render(occluder))}


def overlay(ax, out, d, mode):
    ax.imshow(synthdof.linear_to_srgb(np.clip(out, 0, 1)))
    if mode in d.maps:
        mp = d.maps[mode]
        ax.imshow(np.ma.masked_less_equal(mp, 0.05 * (mp.max() or 1)), cmap="autumn", alpha=0.7, vmin=0)
        flag = "flagged" if mode in d.flags else "not flagged"
        ax.set_title(f"{mode} map: score {d.scores[mode]:.2f}, {flag}", fontsize=9)
    else:
        ax.set_title(f"{mode}: not judged", fontsize=9)


fig, ax = plt.subplots(len(faults), 3, figsize=(13, 2.55 * len(faults)))
for row, (mode, s, out) in zip(ax, faults):
    d = diagnose(s, out)
    row[0].imshow(synthdof.linear_to_srgb(np.clip(out, 0, 1)))
    row[0].set_title(f"faulty render: {mode}", fontsize=9)
    overlay(row[1], out, d, mode)
    overlay(row[2], render(s), correct[id(s)], mode)
    row[2].set_title("correct render, " + row[2].get_title(), fontsize=9)
    print(f"{mode:17s} fault {d.scores.get(mode, float('nan')):.2f} flagged {mode in d.flags}; "
          f"correct {correct[id(s)].scores.get(mode, float('nan')):.2f}")
for x in ax.flat:
    x.axis("off")
fig.tight_layout()
