"""The ground-truth generator (benchmarks/groundtruth): seeded scene descriptions, the scenes
checked into the repository (format and physics), and a re-render of one with Blender.

CI installs Blender (.ci/blender.sh); elsewhere the re-render is skipped when no `blender` is on
PATH, and fails instead when CI is set.
"""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import synthdof

GEN = Path(__file__).resolve().parents[1] / "benchmarks" / "groundtruth"
sys.path.insert(0, str(GEN))
import generate  # noqa: E402
import scenes  # noqa: E402

SAMPLES = sorted((GEN / "samples").glob("scene_*.npz"))
META_KEYS = {"focal_length_mm", "f_number", "focus_distance_m", "sensor_width_mm", "width", "height",
             "aperture_blades", "aperture_rotation_rad", "seed", "samples", "scene"}


def load(path):
    with np.load(path) as z:
        d = {k: z[k] for k in z.files if k != "meta"}
        d["meta"] = json.loads(str(z["meta"]))
    return d


def srgb_psnr(a, b):
    d = synthdof.linear_to_srgb(np.clip(a, 0, 1)) - synthdof.linear_to_srgb(np.clip(b, 0, 1))
    return 10 * np.log10(1.0 / float(np.mean(np.square(d, dtype=np.float64))))


def test_a_seed_names_one_scene():
    a = scenes.describe(123)
    assert json.loads(json.dumps(a)) == a == scenes.describe(123)
    assert scenes.describe(124) != a
    assert generate.parse_seeds(["3-5", "9"]) == [3, 4, 5, 9]


def test_seeds_draw_every_kind_of_scene_the_issue_lists():
    ds = [scenes.describe(s) for s in range(100, 148)]  # the calibration seeds
    count = {
        "hair": sum(bool(d["subject"]["hair"]["strands"]) for d in ds),
        "glasses": sum("glasses" in d["subject"] for d in ds),
        "held": sum("held" in d["subject"] for d in ds),
        "occluders": sum(bool(d["occluders"]) for d in ds),
        "lights": sum(bool(d["lights"]) for d in ds),
        "no lights": sum(not d["lights"] for d in ds),
        "similar depth": sum(d["background"]["similar_depth"] for d in ds),
        "smooth wall": sum(d["background"]["material"]["kind"] == "smooth" for d in ds),
        "textured wall": sum(d["background"]["material"]["kind"] != "smooth" for d in ds),
        "slanted ground": sum(d["ground"]["slope_deg"] != 0 for d in ds),
        "portrait frame": sum(d["height"] > d["width"] for d in ds),
        "polygon aperture": sum(d["lens"]["aperture_blades"] > 0 for d in ds),
        "circular aperture": sum(d["lens"]["aperture_blades"] == 0 for d in ds),
        "focus off the subject": sum(d["focus_on"] != "subject" for d in ds),
    }
    assert min(count.values()) >= 3, count
    assert len({d["lens"]["focal_length_mm"] for d in ds}) >= 4
    assert len({d["lens"]["sensor_width_mm"] for d in ds}) == 3


def test_the_balanced_mix_draws_the_hard_cases_more_often():
    """Seeds 140-199 (calibration) and 300-323 (held out) are drawn with mix="balanced": more
    near occluders, scenes without lights, walls close behind the subject, focus off the
    subject; the same seed under the natural mix is another scene, and says so."""
    seeds = range(140, 200)
    nat = [scenes.describe(s) for s in seeds]
    bal = [scenes.describe(s, mix="balanced") for s in seeds]
    assert all("mix" not in d for d in nat) and all(d["mix"] == "balanced" for d in bal)

    def count(ds, f):
        return sum(bool(f(d)) for d in ds)
    for f in (lambda d: d["occluders"], lambda d: not d["lights"], lambda d: d["background"]["similar_depth"],
              lambda d: d["focus_on"] != "subject"):
        assert count(bal, f) > count(nat, f)
    assert scenes.describe(150, mix="balanced") == scenes.describe(150, mix="balanced")


def test_the_checked_in_scenes_are_there():
    assert len(SAMPLES) >= 3, f"expected the generated scenes in {GEN / 'samples'}"


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_checked_in_scene_format_and_physics(path):
    g = load(path)
    m = g["meta"]
    assert META_KEYS <= set(m)
    H, W = m["height"], m["width"]
    assert g["pinhole"].shape == g["lens"].shape == g["blender_defocus"].shape == (H, W, 3)
    assert g["depth"].shape == g["alpha"].shape == (H, W)
    assert g["pinhole"].dtype == g["depth"].dtype == g["alpha"].dtype == np.float32
    assert g["lens"].dtype == g["blender_defocus"].dtype == np.float16
    d = scenes.describe(m["seed"], max(W, H), min(W, H), mix=m["scene"].get("mix", "natural"))
    assert d == m["scene"]
    # the depth is the scene's: the subject where the matte is full, the wall the farthest
    z, a = g["depth"], g["alpha"]
    assert 0.0 <= a.min() and a.max() <= 1.0
    # (the upper quartile: the body; a held object before it can fill much of the matte)
    zs = float(np.percentile(z[a > 0.99], 75))
    assert abs(zs / d["subject"]["distance"] - 1) < 0.1
    assert abs(float(z.max()) / d["background"]["distance"] - 1) < 0.01
    # the matte: fractional only at the edges and the hair, the subject's share of the frame
    assert 0.05 < float((a > 0.5).mean()) < 0.7
    # the lens moves light around but keeps it (up to what the pinhole never saw)
    flux = float(g["lens"].astype(np.float64).sum() / g["pinhole"].astype(np.float64).sum())
    assert 0.97 < flux < 1.03
    # the thin-lens render agrees with synthdof's far more than with the sharp image
    lens = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], m["focus_distance_m"], m["sensor_width_mm"])
    ap = synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"])
    ours = synthdof.render(g["pinhole"], z, matte=a, lens=lens, aperture=ap)
    truth = g["lens"].astype(np.float32)
    assert srgb_psnr(ours, truth) > srgb_psnr(g["pinhole"], truth) + 3.0


def _blender_or_skip():
    if shutil.which("blender") is None:
        if os.environ.get("CI"):
            pytest.fail("blender is not installed: .ci/blender.sh should have installed it")
        pytest.skip("blender is not installed (apt-get install blender python3-numpy)")


def test_rerender_matches_the_checked_in_scene(tmp_path):
    """The generator, run now at 16 samples, reproduces a checked-in scene rendered at 256: the
    same geometry (depth, matte), the same sharp image, and a thin-lens image equal up to the
    noise of 16 samples."""
    _blender_or_skip()
    ref = load(SAMPLES[0])
    m = ref["meta"]
    size = f"{max(m['width'], m['height'])}x{min(m['width'], m['height'])}"
    (path,) = generate.render(str(tmp_path), [m["seed"]], samples=16, pinhole_samples=16, size=size,
                              peer=False, quiet=True)
    new = load(path)
    assert new["meta"]["scene"] == m["scene"]
    assert set(new) == {"pinhole", "depth", "alpha", "lens", "meta"}
    same_depth = np.isclose(new["depth"], ref["depth"], rtol=1e-4)
    assert same_depth.mean() > 0.995
    assert np.abs(new["alpha"] - ref["alpha"]).mean() < 0.005
    assert srgb_psnr(new["pinhole"], ref["pinhole"]) > 35.0
    assert srgb_psnr(new["lens"].astype(np.float32), ref["lens"].astype(np.float32)) > 28.0
    # and the comparison can fail: the pinhole image is far from the thin-lens one
    assert srgb_psnr(new["pinhole"], ref["lens"].astype(np.float32)) < 28.0
