"""Random thin-lens test scenes, described as plain data (no Blender needed here).

    describe(seed, width=384, height=256) -> dict

A scene is a person-like subject (head, body, hair strands; sometimes glasses with see-through
lenses and a held object in front of the body) in front of a background wall, on a ground plane,
seen by a level camera at the origin looking along +y (z up). Around it, at random: small bright
lights behind the subject, thin occluders between the camera and the subject, a slanted ground,
a textured or smooth wall at a large or a similar depth. The lens (focal length, sensor width,
f-number, blades and their rotation), the frame's orientation and the focus plane are drawn too.

Every draw comes from one numpy Generator seeded with `seed`, in a fixed order, so a seed names
one scene on any machine. render_scene.py builds the description in Blender.
"""
import math

import numpy as np

# Sensor widths (mm) of full frame, APS-C and Micro Four Thirds bodies.
SENSORS = (36.0, 23.5, 17.3)
# Blade counts Cycles draws as polygons (0 = a circle).
BLADES = (0, 0, 0, 5, 6, 7, 8, 9)
# How often a scene holds each kind of content. "natural" is the mix of seeds 0-139 and 200-219;
# "balanced" draws the cases a diagnostic gets wrong most easily more often (near occluders, no
# highlights, a wall close behind the subject, a smooth wall, the focus off the subject). The
# draws are the same in number and order under both, so a (seed, mix) pair names one scene.
MIXES = {
    "natural": {"glasses": 0.3, "held": 0.35, "similar": 0.2, "textured_wall": 0.65, "lights": 0.6,
                "occluders": 0.3, "focus": (0.75, 0.85, 0.93)},
    "balanced": {"glasses": 0.3, "held": 0.4, "similar": 0.3, "textured_wall": 0.55, "lights": 0.45,
                 "occluders": 0.55, "focus": (0.6, 0.72, 0.86)},
}


def _colour(rng, lo=0.03, hi=0.8):
    """A random linear-light colour (not too saturated: real surfaces reflect all channels)."""
    base = rng.uniform(lo, hi)
    tint = rng.uniform(0.55, 1.0, 3)
    return [float(base * t) for t in tint]


def _material(rng, textured, pix):
    """An emission-only material: a procedural texture between two colours whose features are
    4-30 pixels across where it is seen (pix: metres per pixel there), or a smooth ramp over a
    few hundred pixels. scale = features per metre of world position."""
    c1, c2 = _colour(rng), _colour(rng)
    if not textured:
        return {"kind": "smooth", "color1": c1, "color2": c2, "scale": float(1.0 / (pix * rng.uniform(150, 400)))}
    kind = str(rng.choice(["checker", "noise", "brick", "voronoi", "stripes"]))
    return {"kind": kind, "color1": c1, "color2": c2, "scale": float(1.0 / (pix * rng.uniform(4.0, 30.0)))}


def describe(seed, width=384, height=256, mix="natural"):
    """The scene of one seed: camera, lens, subject, props and background (a JSON-able dict).
    mix names the content's frequencies (MIXES)."""
    p = MIXES[mix]
    rng = np.random.default_rng(seed)
    portrait = bool(rng.random() < 0.3)
    W, H = (min(width, height), max(width, height)) if portrait else (max(width, height), min(width, height))
    focal = float(rng.choice([24.0, 35.0, 50.0, 50.0, 85.0, 85.0, 105.0, 135.0]))
    sensor = float(rng.choice(SENSORS))
    sensor_h = sensor * H / W
    # subject distance: the frame's height spans 0.5-1.4 m at the subject (head and shoulders to
    # half the body), as portraits are framed
    framed = float(rng.uniform(0.5, 1.4))
    z_s = float(np.clip(framed * focal / sensor_h, 0.6, 12.0))
    half_w = 0.5 * sensor / focal * z_s      # half the frame's width at the subject (m)
    half_h = 0.5 * sensor_h / focal * z_s

    def pix(z):
        return sensor / focal * z / W          # metres per pixel at distance z
    # the subject stands off centre a little; the head's centre is at a third from the top
    x_s = float(rng.uniform(-0.35, 0.35) * half_w)
    z_head = float(half_h * rng.uniform(0.05, 0.4))
    head_r = float(rng.uniform(0.09, 0.12))
    subject = {
        "distance": z_s,
        "head": {"center": [x_s, z_s, z_head], "radius": head_r,
                 "squash": [float(rng.uniform(0.8, 0.95)), float(rng.uniform(0.85, 1.0)), 1.0],
                 "material": _material(rng, bool(rng.random() < 0.7), pix(z_s))},
        # the body: from just under the head down past the frame's bottom
        "body": {"center": [x_s, z_s + 0.05, z_head - 0.75 * head_r - 1.0],
                 "size": [float(rng.uniform(0.35, 0.55)), 0.25, 2.0],
                 "material": _material(rng, True, pix(z_s))},
    }
    # hair: thin strands from the top and sides of the head, bending outwards and down
    n_hair = int(rng.choice([0, 40, 120, 250]))
    strands = []
    for _ in range(n_hair):
        theta = float(rng.uniform(-1.4, 1.4))            # angle from the top, in the image plane
        out = float(rng.uniform(0.15, 0.6)) * head_r      # how far it sticks out past the head
        length = float(rng.uniform(0.6, 1.6)) * head_r
        p0 = [x_s + head_r * 0.95 * math.sin(theta), z_s + float(rng.uniform(-0.3, 0.3)) * head_r,
              z_head + head_r * 0.95 * math.cos(theta)]
        p1 = [p0[0] + (out + 0.3 * length) * math.sin(theta) * 0.8, p0[1],
              p0[2] + out * math.cos(theta) - 0.3 * length * (1 - math.cos(theta))]
        p2 = [p1[0] + 0.4 * length * math.sin(theta) + float(rng.normal(0, 0.1)) * head_r, p0[1],
              p1[2] - 0.6 * length * abs(math.sin(theta)) + float(rng.normal(0, 0.1)) * head_r]
        strands.append({"points": [p0, p1, p2], "radius": float(rng.uniform(0.00025, 0.0009))})
    subject["hair"] = {"strands": strands, "color": _colour(rng, 0.05, 0.6)}
    # glasses: two rims (thin tori) with see-through lenses, part of the subject
    if rng.random() < p["glasses"]:
        subject["glasses"] = {"center": [x_s, z_s - 0.95 * head_r, z_head + 0.1 * head_r],
                              "radius": 0.3 * head_r, "spacing": 0.75 * head_r,
                              "rim": float(rng.uniform(0.002, 0.004)),
                              "opacity": float(rng.uniform(0.15, 0.5)),
                              "tint": _colour(rng, 0.3, 0.9), "rim_color": _colour(rng, 0.02, 0.3)}
    # a held object: a cylinder (mug, bottle) in front of the body, part of the subject
    if rng.random() < p["held"]:
        r = float(rng.uniform(0.03, 0.06))
        subject["held"] = {"center": [x_s + float(rng.uniform(-0.15, 0.15)), z_s - float(rng.uniform(0.15, 0.35)),
                                      z_head - head_r - float(rng.uniform(0.15, 0.35))],
                           "radius": r, "height": float(rng.uniform(2.0, 4.0)) * r,
                           "material": _material(rng, bool(rng.random() < 0.5), pix(z_s))}
    # background wall: far, or at a similar depth (10-40 % behind the subject)
    similar = bool(rng.random() < p["similar"])
    z_b = z_s * float(rng.uniform(1.1, 1.4) if similar else rng.uniform(1.8, 6.0))
    textured_bg = bool(rng.random() < p["textured_wall"])
    background = {"distance": z_b, "material": _material(rng, textured_bg, pix(z_b)), "similar_depth": similar}
    # ground: level or slanted (rising or falling away), with a texture
    ground = {"height": float(-rng.uniform(1.2, 1.7)), "slope_deg": float(rng.choice([0.0, rng.uniform(-8, 12)])),
              "material": _material(rng, bool(rng.random() < 0.7), pix(z_s))}
    # small bright lights behind the subject (street lights, fairy lights), in front of the wall
    lights = []
    if rng.random() < p["lights"]:
        n = int(rng.integers(3, 40))
        for _ in range(n):
            zl = float(rng.uniform(z_s + 0.3 * (z_b - z_s), z_b - 0.05))
            hw = 0.5 * sensor / focal * zl
            hh = 0.5 * sensor_h / focal * zl
            lights.append({"center": [float(rng.uniform(-hw, hw)), zl, float(rng.uniform(-0.6 * hh, hh))],
                           "radius": float(rng.uniform(0.4, 1.5) * pix(zl)),
                           "color": [1.0, float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.3, 0.9))],
                           "strength": float(rng.uniform(20.0, 100.0))})
    # thin occluders near the camera (branches, railing bars, a leaf), not part of the subject
    occluders = []
    if rng.random() < p["occluders"]:
        z_o = z_s * float(rng.uniform(0.3, 0.65))
        hw = 0.5 * sensor / focal * z_o
        hh = 0.5 * sensor_h / focal * z_o
        for _ in range(int(rng.integers(1, 4))):
            vertical = bool(rng.random() < 0.5)
            thick = float(rng.uniform(0.004, 0.03) * hw)
            pos = float(rng.uniform(-0.9, 0.9))
            occluders.append({"center": [pos * hw if vertical else 0.0, z_o + float(rng.uniform(-0.05, 0.05)) * z_o,
                                         0.0 if vertical else pos * hh],
                              "size": [thick, thick, 3 * hh] if vertical else [3 * hw, thick, thick],
                              "tilt_deg": float(rng.uniform(-20, 20)),
                              "material": _material(rng, False, pix(z_o))})
    # lens: the f-number from the background blur it gives (3-40 px at this width, log-uniform)
    A_per_N = (focal / 1000.0) ** 2 * W / (sensor / 1000.0)
    blur_bg = float(np.exp(rng.uniform(np.log(3.0), np.log(40.0))))
    f_number = A_per_N * abs(1.0 / z_s - 1.0 / z_b) / blur_bg
    f_number = float(np.clip(round(f_number * 10) / 10, 1.0, 16.0))
    blades = int(rng.choice(BLADES))
    rotation = float(rng.uniform(0, 2 * math.pi)) if blades else 0.0
    # focus: on the subject's face (most scenes), or elsewhere (behind, in front, on the wall)
    u = rng.random()
    on_subject, on_wall, behind = p["focus"]
    if u < on_subject:
        focus, focus_on = z_s - 0.8 * head_r, "subject"
    elif u < on_wall:
        focus, focus_on = z_b, "background"
    elif u < behind:
        focus, focus_on = z_s * float(rng.uniform(1.15, 1.5)), "behind subject"
    else:
        focus, focus_on = z_s * float(rng.uniform(0.6, 0.85)), "in front of subject"

    def coc(z):
        return float(A_per_N / f_number * abs(1.0 / focus - 1.0 / z))
    return {
        "seed": int(seed), "width": int(W), "height": int(H),
        # the natural mix goes unnamed: the descriptions stored before there were mixes stay valid
        **({"mix": mix} if mix != "natural" else {}),
        "lens": {"focal_length_mm": focal, "sensor_width_mm": sensor, "f_number": f_number,
                 "focus_distance_m": float(focus), "aperture_blades": blades, "aperture_rotation_rad": rotation},
        "focus_on": focus_on, "coc_subject_px": coc(z_s), "coc_wall_px": coc(z_b),
        "subject": subject, "background": background, "ground": ground, "lights": lights, "occluders": occluders,
    }


def summary(d):
    """One line saying what a scene holds (for logs and the README's table)."""
    s, ln = d["subject"], d["lens"]
    parts = [f"{d['width']}x{d['height']}", f"{ln['focal_length_mm']:.0f}mm/{ln['sensor_width_mm']:.1f}",
             f"f/{ln['f_number']:.1f}", f"blades {ln['aperture_blades']}", f"focus {d['focus_on']}",
             f"CoC subject {d['coc_subject_px']:.1f} px, wall {d['coc_wall_px']:.1f} px",
             f"subject {s['distance']:.2f} m", f"wall {d['background']['distance']:.2f} m"
             + (" (similar)" if d["background"]["similar_depth"] else ""),
             "textured" if d["background"]["material"]["kind"] != "smooth" else "smooth",
             f"hair {len(s['hair']['strands'])}"]
    parts += [k for k in ("glasses", "held") if k in s]
    if d["lights"]:
        parts.append(f"lights {len(d['lights'])}")
    if d["occluders"]:
        parts.append(f"occluders {len(d['occluders'])}")
    if d["ground"]["slope_deg"]:
        parts.append(f"slope {d['ground']['slope_deg']:.0f} deg")
    return ", ".join(parts)
