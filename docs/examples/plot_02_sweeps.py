"""
f-number and focus sweeps
=========================

The CoC diameter is :math:`c = \\frac{f^2 W}{N s}\\left(\\frac{1}{z_f} - \\frac{1}{z}\\right)` pixels:
it halves each time the f-number *N* doubles, and moving the focus distance :math:`z_f` moves
the plane that stays sharp. The sample scene: a subject at 2 m, a brick wall at 5 m, lights
at about 4.6 m, an 85 mm lens on a full-frame sensor.
"""
import matplotlib.pyplot as plt

import synthdof

s = synthdof.load_sample()
image, depth, matte = s["image"], s["depth"], s["matte"]
f_mm, zf = s["lens"]["focal_length_mm"], s["lens"]["focus_distance"]
width = image.shape[1]

fig, ax = plt.subplots(1, 4, figsize=(14, 2.8))
for a, N in zip(ax, (1.4, 2.8, 5.6, 11)):
    lens = synthdof.ThinLens(focal_length_mm=f_mm, f_number=N, focus_distance=zf)
    a.imshow(synthdof.render(image, depth, matte=matte, lens=lens, aperture=synthdof.Aperture(blades=6)))
    a.set_title(f"f/{N}: wall CoC {lens.coc_at(5.0, width):.1f} px")
    a.axis("off")
fig.tight_layout()

# %%
# Focus on the subject (2 m), between subject and wall, and on the wall (5 m), at f/1.4.

fig, ax = plt.subplots(1, 3, figsize=(12, 2.9))
for a, z in zip(ax, (2.0, 3.0, 5.0)):
    lens = synthdof.ThinLens(focal_length_mm=f_mm, f_number=1.4, focus_distance=z)
    a.imshow(synthdof.render(image, depth, matte=matte, lens=lens))
    a.set_title(f"focus {z} m: subject CoC {lens.coc_at(2.0, width):+.1f} px")
    a.axis("off")
fig.tight_layout()
