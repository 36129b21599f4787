#!/usr/bin/env python3
"""Calibrate synthdof.diagnose on generated thin-lens scenes and report on a held-out split.

    python benchmarks/diagnostics_calibration.py score DIR [DIR ...] --json OUT.json
    python benchmarks/diagnostics_calibration.py report CALIB.json HELDOUT.json [--markdown]

`score` judges, in every scene of the directories (benchmarks/groundtruth/generate.py output, or
../shared/gt), the thin-lens truth, synthdof's render and renders with injected faults, each
with the scene's true depth, matte, lens and aperture unless said otherwise, and stores every
mode's score with how visible the fault is (PSNR against the truth, on the whole frame and in
the silhouette band of ../shared/gt/score.py):

  truth          the thin-lens render
  synthdof       synthdof.render on the exact inputs
  dilated        the matte dilated by 3 px decides what is sharp (inside it everything gets the
                 subject's CoC), as a segmentation that spills over the background does
  eroded         the matte eroded by 3 px: the subject's edge gets the background's CoC
  pasted         synthdof's render with the sharp image pasted back through the matte dilated
                 by 3 px
  gaussian       one Gaussian behind the matte, sigma a quarter of the background CoC (linear
                 light), the subject pasted back with the matte
  wrong focus    rendered with the focus on the wall (scenes focused on the subject: the
                 scene's focus_on, else a subject CoC under 1.5 px) or on the subject (the
                 others), judged with the intended lens
  near pushed    scenes with content in front of the focal plane: its depth pushed to the wall's,
                 so its blur no longer veils what is behind it
  flattened      the depth map puts everything behind the subject 15 % behind it (a depth
                 network's flat output); the truth judged with that depth (similar_depth only)
  net depth      ../shared/gt/score.py's `net` recipe (depth area-downsampled 4x, bilinear back
                 up, Gaussian sigma 1.5 px; matte from a 2x-downsampled segmentation), no
                 refinement, rendered and judged with those inputs (what a user has)

`report` prints, per render and mode, the share of scenes flagged (with the thresholds in
synthdof._diagnosis.THRESHOLDS, or --thresholds JSON) on each split.
"""
import argparse
import functools
import glob
import json
import multiprocessing
import os
import sys
import time

import numpy as np
from scipy import ndimage

import synthdof
try:
    from synthdof._diagnose import _diagnose_renders
except ImportError:  # an older synthdof (the tables' "before" column): one diagnose per render
    def _diagnose_renders(image, renders, **kw):
        return [synthdof.diagnose(image, r, **kw) for r in renders]
from synthdof._diagnosis import MODES, THRESHOLDS

import score_gt  # noqa: E402 (beside this script: the `net` recipe of the ground-truth scorer)


# The modes each fault is meant to trigger; a fault counts as caught when one of them flags it.
# A matte grown over near content that cuts the subject (a railing bar) leaves that content
# sharp: foreground bleed, not a halo.
EXPECTED = {"dilated": ("halo", "foreground_bleed"), "eroded": ("halo",),
            "pasted": ("halo", "foreground_bleed"), "gaussian": ("gaussian_look",),
            "wrong focus": ("wrong_subject",), "near pushed": ("foreground_bleed",),
            "flattened": ("similar_depth",), "net depth": ("halo",)}
DILATE = 3
# An error under 1 % RMS of the sRGB range (40 dB) is not visible at these sizes, however much
# larger than the exact render's it is.
VISIBLE_DB = 40.0


def disk(r):
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r + 0.5


def srgb(x):
    return synthdof.linear_to_srgb(np.clip(x, 0.0, 1.0))


def psnr(a, b, mask=None):
    d = (srgb(a) - srgb(b)) ** 2
    if mask is not None:
        d = d[mask]
    return float(10 * np.log10(1.0 / max(float(d.mean()), 1e-12))) if d.size else float("nan")


def band_mask(depth, alpha, coc):
    """score.py's silhouette band: around the subject, as wide as the background CoC."""
    hard = alpha > 0.5
    c = np.abs(coc)
    rmax = int(np.ceil(np.percentile(c[~hard], 90) / 2)) + 2 if (~hard).any() else 3
    return ndimage.binary_dilation(hard, disk(rmax)) & ndimage.binary_dilation(~hard, disk(2))


def gaussian_behind_matte(img, matte, sigma):
    b = np.stack([ndimage.gaussian_filter(img[:, :, i], sigma) for i in range(3)], 2)
    return (matte[:, :, None] * img + (1 - matte[:, :, None]) * b).astype(np.float32)


def load(path):
    with np.load(path) as z:
        g = {k: z[k].astype(np.float32) for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    return g, meta


def scene_cases(g, m, renders=None):
    """[(name, rendered, diagnose kwargs)] for one scene (renders: {name: image} made before)."""
    img, depth, a = g["pinhole"], g["depth"], np.clip(g["alpha"], 0, 1)
    lens = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], m["focus_distance_m"], m["sensor_width_mm"])
    ap = synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"])
    c = lens.coc(depth)
    bg = a < 0.02
    subj = a > 0.98
    cs = float(np.median(c[subj])) if subj.any() else 0.0
    cbg = float(np.median(np.abs(c[bg]))) if bg.any() else 0.0
    exact = dict(depth=depth, matte=a, lens=lens, aperture=ap)

    def render(**kw):
        kw.setdefault("matte", a)
        kw.setdefault("num_threads", 1)  # scenes are scored side by side, one per process
        if "coc" in kw:
            return synthdof.render(img, aperture=ap, **kw)
        return synthdof.render(img, kw.pop("depth", depth), lens=kw.pop("lens", lens), aperture=ap, **kw)

    def made(name, make):
        return renders[name] if renders is not None and name in renders else make()

    ours = made("synthdof", render)
    cases = [("truth", g["lens"], exact), ("synthdof", ours, exact)]
    ad = ndimage.grey_dilation(a, footprint=disk(DILATE))
    cases.append(("dilated", made("dilated", lambda: render(coc=np.where(ad >= 0.5, cs, c).astype(np.float32),
                                                            matte=ad)), exact))
    ae = ndimage.grey_erosion(a, footprint=disk(DILATE))
    # the pixels the eroded matte lost take the CoC of the nearest background pixel
    _, (iy, ix) = ndimage.distance_transform_edt(~bg, return_indices=True)
    lost = (a >= 0.02) & (ae < 0.5)
    cases.append(("eroded", made("eroded", lambda: render(coc=np.where(lost, c[iy, ix], c).astype(np.float32),
                                                          matte=ae)), exact))
    cases.append(("pasted", (ad[:, :, None] * img + (1 - ad[:, :, None]) * ours).astype(np.float32), exact))
    if cbg > 0.5:
        cases.append(("gaussian", gaussian_behind_matte(img, a, cbg / 4), exact))
    z_wall = float(np.percentile(depth[bg], 90)) if bg.any() else float(depth.max())
    z_subj = float(np.median(depth[subj])) if subj.any() else float(np.median(depth))
    focus_on = m.get("scene", {}).get("focus_on")
    on_subject = focus_on == "subject" if focus_on else abs(cs) < 1.5
    wrong = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], z_wall if on_subject else z_subj,
                              m["sensor_width_mm"])
    cases.append(("wrong focus", made("wrong focus", lambda: render(lens=wrong)), exact))
    near = (c < -2.0) & (a < 0.5)
    if near.sum() >= 50:
        cases.append(("near pushed", made("near pushed", lambda: render(
            depth=np.where(near, z_wall, depth).astype(np.float32))), exact))
    flat = np.where(bg & (depth > z_subj), 1.15 * z_subj, depth).astype(np.float32)
    cases.append(("flattened", g["lens"], dict(exact, depth=flat)))
    zn, seg = score_gt.realistic_inputs(g, "net")
    cases.append(("net depth", made("net depth", lambda: render(depth=zn, matte=seg)),
                  dict(depth=zn, matte=seg, lens=lens, aperture=ap)))
    return cases, c, dict(coc_subject=cs, coc_background=cbg, near_pixels=int(near.sum()))


def score_scene(path, cache_dir=None):
    g, m = load(path)
    cached = os.path.join(cache_dir, os.path.basename(path)) if cache_dir else None
    if cached and os.path.exists(cached):
        with np.load(cached, allow_pickle=True) as z:
            saved = {k: z[k] for k in z.files}
        # the faulty renders do not change when the diagnostics do: only the judging is redone
        cases, c, info = scene_cases(g, m, renders=saved)
    else:
        cases, c, info = scene_cases(g, m)
        if cached:
            np.savez(cached, **{name: r.astype(np.float32) for name, r, _ in cases})
    truth = g["lens"]
    band = band_mask(g["depth"], g["alpha"], c)
    # away from the subject (beyond the background's blur radius + 2 px) and from content in
    # front of the focal plane (beyond its own blur radius + 2 px): the background blur's shape
    far_from = ndimage.distance_transform_edt(g["alpha"] <= 0.02) > info["coc_background"] / 2 + 2
    near = (c < -2.0) & (g["alpha"] < 0.5)
    if near.any():
        far_from &= ndimage.distance_transform_edt(~near) > float(np.abs(c[near]).max()) / 2 + 2
    ours = cases[1][1]
    out = {"scene": os.path.basename(path)[:-4], "info": info,
           "similar_depth": bool(m.get("scene", {}).get("background", {}).get("similar_depth", False)),
           "focus_on": m.get("scene", {}).get("focus_on", ""), "cases": {}}
    # the renders judged with the same inputs share the inputs' maps
    groups = {}
    for name, r, kw in cases:
        groups.setdefault(id(kw), (kw, []))[1].append((name, r))
    judged = {}
    for kw, items in groups.values():
        for (name, r), d in zip(items, _diagnose_renders(g["pinhole"], [r for _, r in items], **kw)):
            judged[name] = (r, d)
    for name, _, _ in cases:
        r, d = judged[name]
        out["cases"][name] = {
            "scores": d.scores, "skipped": sorted(d.skipped),
            "details": {k: {n: (float(v) if np.isscalar(v) else v) for n, v in dd.items()}
                        for k, dd in d.details.items()},
            "psnr": psnr(r, truth), "band": psnr(r, truth, band),
            # the fault's cost against synthdof's own render on the exact inputs (dB)
            "loss": psnr(ours, truth) - psnr(r, truth), "band_loss": psnr(ours, truth, band) - psnr(r, truth, band),
            "far_loss": psnr(ours, truth, far_from) - psnr(r, truth, far_from), "far": psnr(r, truth, far_from),
        }
    return out


def visible(case_name, rec, scene):
    """Whether a fault shows in the picture: it costs at least 1 dB against the truth, compared
    with synthdof's render of the exact inputs, and leaves an error of 1 % RMS or more
    (VISIBLE_DB), in the silhouette band (matte and depth-edge faults), away from the subject
    and from near content (the Gaussian: the background blur's own shape; next to the subject
    its spill is halo's) or in the whole frame (the others); a flattened depth map is a fault of
    the inputs wherever the scene's wall is not close behind the subject by design."""
    c = rec["cases"][case_name]
    if case_name == "flattened":
        return not scene["similar_depth"]
    if case_name in ("dilated", "eroded", "pasted"):
        # a matte's halo: the subject in focus against a background blurred by 3 px or more
        info = scene["info"]
        return (abs(info["coc_subject"]) < 1.5 and info["coc_background"] >= 3.0 and c["band_loss"] >= 1.0
                and c["band"] < VISIBLE_DB)
    if case_name == "net depth":
        return c["band_loss"] >= 1.0 and c["band"] < VISIBLE_DB
    if case_name == "gaussian":
        return c["far_loss"] >= 1.0 and c["far"] < VISIBLE_DB
    return c["loss"] >= 1.0 and c["psnr"] < VISIBLE_DB


def report(recs, thresholds):
    """{case: {mode: (flagged, judged)}} and, per fault, (caught, visible)."""
    table, caught = {}, {}
    for rec in recs:
        for name, c in rec["cases"].items():
            row = table.setdefault(name, {k: [0, 0] for k in MODES})
            for k in MODES:
                if k in c["scores"]:
                    row[k][1] += 1
                    row[k][0] += c["scores"][k] >= thresholds[k]
            if name in EXPECTED and visible(name, rec, rec):
                cc = caught.setdefault(name, [0, 0])
                cc[1] += 1
                cc[0] += any(c["scores"].get(k, 0.0) >= thresholds[k] for k in EXPECTED[name])
    # the truth: no flag at all (a scene built with its wall close behind the subject may have
    # the similar_depth warning, which is due there)
    clean = [0, 0]
    for rec in recs:
        sc = rec["cases"]["truth"]["scores"]
        flagged = {k for k in sc if sc[k] >= thresholds[k]}
        if rec["similar_depth"]:
            flagged.discard("similar_depth")
        clean[1] += 1
        clean[0] += not flagged
    return table, caught, clean


GRID = np.round(np.arange(0.1, 1.001, 0.05), 2)  # the candidate thresholds


def sweep(recs, mode, grid=GRID):
    """For each candidate threshold of mode: (threshold, clean renders flagged, judged; visible
    faults of that mode caught, visible). Clean renders: the truth and synthdof's render."""
    rows = []
    for t in grid:
        cf = cn = ff = fn = 0
        for rec in recs:
            for name in ("truth", "synthdof"):
                v = rec["cases"][name]["scores"].get(mode)
                if v is None:
                    continue
                if mode == "similar_depth" and rec["similar_depth"]:
                    # a scene built with its wall close behind the subject: a warning due
                    fn += name == "truth"
                    ff += name == "truth" and v >= t
                    continue
                cn += 1
                cf += v >= t
            for name, ks in EXPECTED.items():
                if ks[0] == mode and name in rec["cases"] and visible(name, rec, rec):
                    fn += 1
                    ff += rec["cases"][name]["scores"].get(mode, 0.0) >= t
        rows.append((float(t), cf, cn, ff, fn))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score")
    s.add_argument("dirs", nargs="+")
    s.add_argument("--json", required=True)
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--cache", help="directory keeping each scene's renders for the next run")
    c = sub.add_parser("sweep", help="clean renders flagged and faults caught per threshold")
    c.add_argument("json")
    r = sub.add_parser("report")
    r.add_argument("jsons", nargs="+")
    r.add_argument("--thresholds")
    r.add_argument("--costs-from", help="another run's JSON over the same renders: take each fault's cost "
                                        "(PSNR losses) from it (a run by an older synthdof records fewer)")
    a = ap.parse_args()
    if a.cmd == "score":
        paths = sorted(p for d in a.dirs for p in glob.glob(os.path.join(d, "*.npz")))
        if a.cache:
            os.makedirs(a.cache, exist_ok=True)
        recs = []
        t0 = time.perf_counter()
        with multiprocessing.Pool(a.jobs) as pool:
            for rec in pool.imap(functools.partial(score_scene, cache_dir=a.cache), paths):
                recs.append(rec)
                flags = {n: sorted(k for k, v in c["scores"].items() if v >= THRESHOLDS[k])
                         for n, c in rec["cases"].items()}
                print(f"{rec['scene']} ({time.perf_counter() - t0:.0f} s): {flags}", flush=True)
        with open(a.json, "w") as f:
            json.dump(recs, f)
        return
    if a.cmd == "sweep":
        recs = json.load(open(a.json))
        for mode in MODES:
            print(mode + ": threshold, clean flagged / judged, visible faults caught / visible")
            print("  " + "  ".join(f"{t:.2f}:{cf}/{cn},{ff}/{fn}" for t, cf, cn, ff, fn in sweep(recs, mode)))
        return
    th = dict(THRESHOLDS)
    if a.thresholds:
        th.update(json.loads(a.thresholds))
    for path in a.jsons:
        recs = json.load(open(path))
        if a.costs_from:
            other = {r["scene"]: r for r in json.load(open(a.costs_from))}
            for rec in recs:
                for name, c in rec["cases"].items():
                    src = other[rec["scene"]]["cases"][name]
                    c.update({k: src[k] for k in ("psnr", "band", "far", "loss", "band_loss", "far_loss")})
                rec["info"] = other[rec["scene"]]["info"]
        table, caught, clean = report(recs, th)
        print(f"## {path}: {len(recs)} scenes; thresholds {th}")
        print(f"truth with no flag at all (but similar_depth where built so): {clean[0]}/{clean[1]}")
        print("| render | " + " | ".join(MODES) + " | caught / visible |")
        print("|---|" + "---:|" * (len(MODES) + 1))
        for name, row in table.items():
            cells = [f"{f}/{n}" if n else "–" for f, n in row.values()]
            cc = caught.get(name)
            print(f"| {name} | " + " | ".join(cells) + f" | {f'{cc[0]}/{cc[1]}' if cc else ''} |")


if __name__ == "__main__":
    sys.exit(main())
