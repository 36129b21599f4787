"""diagnose on the generated thin-lens scenes checked into the repository
(benchmarks/groundtruth/samples): the truth unflagged, injected faults caught, a Gaussian
judged without highlights, a polygon not taken for a disk, a subject out of focus by choice
not taken for a fault. Runs from a plain clone. The rates over 163 calibration and 40 held-out
scenes are in docs/diagnostics.md (benchmarks/diagnostics_calibration.py)."""
import json
from pathlib import Path

import numpy as np
import pytest

import synthdof
from conftest import SceneCalls

ndimage = pytest.importorskip("scipy.ndimage")

SAMPLES = Path(__file__).resolve().parents[1] / "benchmarks" / "groundtruth" / "samples"
NAMES = ["scene_0010", "scene_0051", "scene_0053"]


class Scene(SceneCalls):
    def __init__(self, name):
        with np.load(SAMPLES / f"{name}.npz") as z:
            self.meta = json.loads(str(z["meta"]))
            self.image = z["pinhole"].astype(np.float32)
            self.depth = z["depth"].astype(np.float32)
            self.matte = np.clip(z["alpha"].astype(np.float32), 0, 1)
            self.truth = z["lens"].astype(np.float32)
        m = self.meta
        self.lens = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], m["focus_distance_m"], m["sensor_width_mm"])
        self.aperture = synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"])
        self.coc = self.lens.coc(self.depth)
        self.c_background = float(np.median(np.abs(self.coc[self.matte < 0.01])))



@pytest.fixture(scope="module")
def scene():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = Scene(name)
        return cache[name]

    return get


def _gaussian_behind_matte(s, image=None):
    img = s.image if image is None else image
    b = np.stack([ndimage.gaussian_filter(img[:, :, i], s.c_background / 4) for i in range(3)], 2)
    a = s.matte[:, :, None]
    return (a * img + (1 - a) * b).astype(np.float32)


def _disk(r):
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r + 0.5


@pytest.mark.parametrize("name", NAMES)
def test_truth_is_not_flagged(scene, name):
    s = scene(name)
    d = s.diagnose(s.truth)
    assert d.flags == set(), d.report()
    assert {"halo", "gaussian_look", "wrong_subject", "similar_depth"} <= set(d.scores)


def test_similar_depth_scene_scores_higher(scene):
    """scene_0051's wall stands 1.1-1.4x the subject's distance, the others' 1.8-6x."""
    assert scene("scene_0051").meta["scene"]["background"]["similar_depth"]
    sim = scene("scene_0051").diagnose(scene("scene_0051").truth).scores["similar_depth"]
    for name in ("scene_0010", "scene_0053"):
        assert scene(name).diagnose(scene(name).truth).scores["similar_depth"] < sim - 0.3


@pytest.mark.parametrize("name", NAMES)
def test_gaussian_flagged(scene, name):
    s = scene(name)
    d = s.diagnose(_gaussian_behind_matte(s))
    assert "gaussian_look" in d.flags, d.report()
    assert d.details["gaussian_look"]["edge_profile"] > 0.7


def test_gaussian_judged_without_highlights(scene):
    """The lights clipped away: no highlight to judge, the blurred wall's edges do it."""
    s = scene("scene_0010")
    flat = np.minimum(s.image, 0.85)
    good = synthdof.render(flat, s.depth, matte=s.matte, lens=s.lens, aperture=s.aperture)
    kw = dict(depth=s.depth, matte=s.matte, lens=s.lens, aperture=s.aperture)
    d_good = synthdof.diagnose(flat, good, **kw)
    d_bad = synthdof.diagnose(flat, _gaussian_behind_matte(s, flat), **kw)
    for d in (d_good, d_bad):
        assert "highlight_pixels" not in d.details["gaussian_look"]
    assert "gaussian_look" in d_bad.flags and "gaussian_look" not in d_good.flags
    assert d_good.details["gaussian_look"]["edge_profile"] < 0.3 < 0.7 < d_bad.details["gaussian_look"]["edge_profile"]


def test_polygon_is_not_a_gaussian(scene):
    """scene_0051's lens has 6 blades: its truth judged as if the aperture were a disk, and a
    disk render judged with the hexagon, stay far from a Gaussian."""
    s = scene("scene_0051")
    assert s.meta["aperture_blades"] == 6
    d = s.diagnose(s.truth, aperture=None)
    assert "gaussian_look" not in d.flags
    assert abs(d.details["gaussian_look"]["edge_profile"]) < 0.3
    disk = s.render(aperture=None)
    d = s.diagnose(disk)
    assert "gaussian_look" not in d.flags
    assert abs(d.details["gaussian_look"]["edge_profile"]) < 0.3


@pytest.mark.parametrize("name", ["scene_0010", "scene_0053"])  # 0051's wall is too close to show it
def test_dilated_matte_flagged(scene, name):
    s = scene(name)
    ad = ndimage.grey_dilation(s.matte, footprint=_disk(3))
    cs = float(np.median(s.coc[s.matte > 0.98]))
    bad = s.render(coc=np.where(ad >= 0.5, cs, s.coc).astype(np.float32), matte=ad)
    assert "halo" in s.diagnose(bad).flags


def test_subject_out_of_focus_by_choice(scene):
    """Focused on the wall: judged with that lens, the render is right (the subject's blur is
    its own, no halo, no wrong subject); judged with the lens focused on the subject, it is not."""
    s = scene("scene_0010")
    m = s.meta
    wall = synthdof.ThinLens(m["focal_length_mm"], m["f_number"], float(np.percentile(s.depth, 90)),
                             m["sensor_width_mm"])
    r = s.render(lens=wall)
    d = s.diagnose(r, lens=wall)
    assert not {"halo", "wrong_subject"} & d.flags, d.report()
    assert abs(d.details["wrong_subject"]["subject_coc_px"]) > 5
    d = s.diagnose(r)
    assert "wrong_subject" in d.flags
    assert d.details["wrong_subject"]["render_off_subject"] == 1.0


def _wall_lens(s):
    m = s.meta
    return synthdof.ThinLens(m["focal_length_mm"], m["f_number"], float(np.percentile(s.depth, 90)),
                             m["sensor_width_mm"])


def test_blended_depth_edge_is_a_halo_with_the_subject_out_of_focus(scene):
    """Focused on the wall, nothing around the subject is blurred: a depth map blended across
    the silhouette (a network's, the `net` recipe of benchmarks/score_gt.py) still renders the
    subject's edge with the wrong blur, and is flagged; the exact depth is not."""
    from conftest import load_scorer
    s = scene("scene_0010")
    wall = _wall_lens(s)
    z_net, _ = load_scorer().realistic_inputs({"depth": s.depth, "alpha": s.matte}, "net")
    d_exact = s.diagnose(s.render(lens=wall), lens=wall)
    d_net = s.diagnose(s.render(depth=z_net, lens=wall), depth=z_net, lens=wall)
    assert "halo" not in d_exact.flags, d_exact.report()
    assert "halo" in d_net.flags, d_net.report()
    assert d_exact.details["halo"]["depth_edge_blend"] < 0.1 < 0.3 < d_net.details["halo"]["depth_edge_blend"]


@pytest.mark.parametrize("name", NAMES)
def test_subject_in_front_of_the_focal_plane_is_not_near_content(scene, name):
    """Focused on the wall, the subject lies in front of the focal plane; its fractional edge
    (hair, rim) carries its depth but is the subject's, spread by its own blur in the render:
    not content in front of it left sharp."""
    s = scene(name)
    wall = _wall_lens(s)
    d = s.diagnose(s.render(lens=wall), lens=wall)
    assert "foreground_bleed" not in d.flags, d.report()


def test_nearer_part_of_the_subject_out_of_focus_is_no_wrong_subject(scene):
    """scene_0301 (balanced mix): a held object 5 px of CoC before a body in focus. Along the
    object's edge the thin lens sees past its blur the body the input hides there, so the truth
    is sharper there than the input blurred by the CoC: that edge says nothing about the focus.
    The truth and synthdof's render are not flagged; focused on the wall, the render is."""
    s = scene("scene_0301")
    held = (s.matte >= 0.98) & (s.coc < -4.0)
    body = (s.matte >= 0.98) & (np.abs(s.coc) < 2.5)
    assert held.sum() > 300 and body.sum() > 5000
    for r in (s.truth, s.render()):
        d = s.diagnose(r)
        assert "wrong_subject" not in d.flags, d.report()
        assert d.details["wrong_subject"].get("subject_left_sharp", 0.0) < 0.2
    d = s.diagnose(s.render(lens=_wall_lens(s)))
    assert "wrong_subject" in d.flags
    assert d.details["wrong_subject"]["render_off_subject"] == 1.0


def _eroded_render(s, k):
    """The matte eroded by k px decides what is sharp: the subject's lost edge takes the CoC of
    the nearest background pixel (benchmarks/diagnostics_calibration.py's `eroded`)."""
    ae = ndimage.grey_erosion(s.matte, footprint=_disk(k))
    bg = s.matte < 0.02
    _, (iy, ix) = ndimage.distance_transform_edt(~bg, return_indices=True)
    lost = (s.matte >= 0.02) & (ae < 0.5)
    return s.render(coc=np.where(lost, s.coc[iy, ix], s.coc).astype(np.float32), matte=ae)


def test_edge_displaced_needs_both_sides(scene):
    """Half way from the truth to a 3 px eroded matte's render, the subject's edge light is half
    displaced: subject_spill and edge_blurred are each under their flag level (the measures are
    linear in the render), together they flag it. The same blend inside the matte only (the
    edge blurred, nothing spilled) is not flagged."""
    s = scene("scene_0010")
    eroded = _eroded_render(s, 3)
    half = (s.truth + 0.5 * (eroded - s.truth)).astype(np.float32)
    d = s.diagnose(half)
    h = d.details["halo"]
    t = d.thresholds["halo"]
    assert h["subject_spill"] / 2 < t and h["edge_blurred"] < t, d.report()
    assert h["edge_displaced"] >= t and "halo" in d.flags, d.report()
    inside = np.where(s.matte[:, :, None] >= 0.5, half, s.truth).astype(np.float32)
    d = s.diagnose(inside)
    assert d.details["halo"]["edge_blurred"] > 0.2
    assert d.details["halo"]["edge_displaced"] < 0.1 and "halo" not in d.flags, d.report()
    assert s.diagnose(s.truth).details["halo"]["edge_displaced"] < 0.1
