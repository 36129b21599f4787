"""The command line, driven through subprocess as a user runs it: outputs are compared with the
same renders made through the Python API, errors must be one clear line and a non-zero status,
and the batch must be reproducible, resumable and give the same images on a Dask LocalCluster."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import synthdof
from synthdof import _batch

pytest.importorskip("PIL.Image")

H, W = 96, 144  # a crop of the sample scene keeps every render quick


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "synthdof", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A crop of the sample scene (around the subject) written in several file formats."""
    d = tmp_path_factory.mktemp("scene")
    s = synthdof.load_sample()
    y0, x0 = 110, 120
    img = np.ascontiguousarray(s["image"][y0:y0 + H, x0:x0 + W])
    depth = np.ascontiguousarray(s["depth"][y0:y0 + H, x0:x0 + W])
    matte = np.ascontiguousarray(s["matte"][y0:y0 + H, x0:x0 + W])
    mm = np.round(depth * 1000).astype(np.uint16)
    m8 = np.round(matte * 255).astype(np.uint8)
    synthdof.write_image(d / "img.png", img)
    np.save(d / "depth.npy", depth)
    synthdof.write_image(d / "depth_mm.png", mm)
    synthdof.write_image(d / "matte.png", m8)
    synthdof.write_image(d / "small.png", img[:40, :50])
    (d / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return {"dir": d, "img": img, "depth": depth, "mm": mm, "matte8": m8, "lens": s["lens"]}


def read_png(p):
    from PIL import Image
    with Image.open(p) as im:
        return np.asarray(im)


def test_demo_writes_the_sample_render(tmp_path):
    out = tmp_path / "demo.png"
    r = run("demo", "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = read_png(out)
    s = synthdof.load_sample()
    assert got.shape == s["image"].shape and got.dtype == np.uint8
    ref = synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=synthdof.ThinLens(**s["lens"]),
                          aperture=synthdof.Aperture(**s["aperture"]))
    np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(got, s["image"])  # the background is blurred


def test_console_script_is_installed(scene, tmp_path):
    exe = Path(sys.executable).with_name("synthdof")
    if not exe.exists():
        exe = shutil.which("synthdof")
        if exe is None:
            pytest.skip("no synthdof console script beside this Python")
    d = scene["dir"]
    r = subprocess.run([str(exe), "render", str(d / "img.png"), "--depth", str(d / "depth.npy"), "--focus", "5",
                        "--f-number", "2.8", "-o", str(tmp_path / "d.tif")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = synthdof.read_image(tmp_path / "d.tif")
    assert got.dtype == np.float32  # a float format keeps linear light
    np.testing.assert_array_equal(synthdof.linear_to_srgb(got, np.uint8),
                                  synthdof.render(scene["img"], scene["depth"], lens=synthdof.ThinLens(50, 2.8, 5.0)))


def test_render_npy_and_png16_depth_match_the_api(scene, tmp_path):
    d = scene["dir"]
    lens = dict(scene["lens"])
    common = ["--focal-length", lens["focal_length_mm"], "--f-number", lens["f_number"], "--sensor-width",
              lens["sensor_width_mm"], "--blades", 6, "--rotation", 0.3]
    r = run("render", d / "img.png", "--depth", d / "depth.npy", "--focus", 2.0, *common, "-o", tmp_path / "a.png")
    assert r.returncode == 0, r.stderr
    ap = synthdof.Aperture(blades=6, rotation=0.3)
    ref = synthdof.render(scene["img"], scene["depth"], lens=synthdof.ThinLens(**dict(lens, focus_distance=2.0)),
                          aperture=ap)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), ref)
    # 16-bit millimetre depth, 8-bit matte, focus on the matte
    r = run("render", d / "img.png", "--depth", d / "depth_mm.png", "--matte", d / "matte.png", "--focus", "auto",
            *common, "-o", tmp_path / "b.png")
    assert r.returncode == 0, r.stderr
    z = scene["mm"].astype(np.float32) / 1000
    m = scene["matte8"].astype(np.float32) / 255
    zf = synthdof.focus_from_matte(z, m)
    ref = synthdof.render(scene["img"], z, matte=m, lens=synthdof.ThinLens(**dict(lens, focus_distance=zf)),
                          aperture=ap)
    np.testing.assert_array_equal(read_png(tmp_path / "b.png"), ref)
    assert f"focus {zf:.3g} m" in r.stdout


def test_float_output_keeps_recovered_highlights(tmp_path):
    pytest.importorskip("OpenEXR")
    s = synthdof.load_sample()
    synthdof.write_image(tmp_path / "i.png", s["image"])
    np.save(tmp_path / "z.npy", s["depth"])
    args = ["render", tmp_path / "i.png", "--depth", tmp_path / "z.npy", "--focus", 2.0, "--focal-length", 85,
            "--f-number", 1.4]
    r = run(*args, "-o", tmp_path / "o.exr")
    assert r.returncode == 0, r.stderr
    r = run(*args, "-o", tmp_path / "o.png")
    assert r.returncode == 0, r.stderr
    lin = synthdof.read_image(tmp_path / "o.exr")
    png = synthdof.read_image(tmp_path / "o.png")
    assert lin.dtype == np.float32 and png.dtype == np.uint8
    np.testing.assert_array_equal(synthdof.linear_to_srgb(lin, np.uint8), png)
    # the sample's clipped lights were scaled up before blurring: their disks keep light above 1
    assert lin.max() > 1.5 and (s["image"] == 255).any()


def test_render_disparity_with_K(scene, tmp_path):
    d = scene["dir"]
    disp = (0.5 / scene["depth"]).astype(np.float32)  # disparity with scale S = 0.5
    np.save(tmp_path / "disp.npy", disp)
    r = run("render", d / "img.png", "--depth", tmp_path / "disp.npy", "--disparity", "--K", 40, "--focus", 2.0,
            "--disparity-scale", 0.5, "-o", tmp_path / "c.npy", "--save-coc", tmp_path / "coc.npy")
    assert r.returncode == 0, r.stderr
    coc = synthdof.coc_from_disparity(disp, K=40.0, focus_disparity=0.25)
    np.testing.assert_allclose(np.load(tmp_path / "coc.npy"), coc, rtol=1e-6, atol=1e-6)
    got = np.load(tmp_path / "c.npy")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(synthdof.linear_to_srgb(got, np.uint8), synthdof.render(scene["img"], coc=coc))
    # without K the lens gives it: K = f^2 W / (N s) / S reproduces the metric thin lens
    r = run("render", d / "img.png", "--depth", tmp_path / "disp.npy", "--disparity", "--disparity-scale", 0.5,
            "--focus", 2.0, "--focal-length", 85, "--f-number", 1.4, "-o", tmp_path / "e.npy",
            "--save-coc", tmp_path / "coc2.npy")
    assert r.returncode == 0, r.stderr
    want = synthdof.ThinLens(85, 1.4, 2.0).coc_at(scene["depth"], W)
    np.testing.assert_allclose(np.load(tmp_path / "coc2.npy"), want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("case, expect", [
    ("missing_image", "not found"),
    ("missing_depth", "not found"),
    ("unreadable", "junk.png"),
    ("size_mismatch", "144x96"),
    ("matte_mismatch", "matte"),
    ("auto_without_matte", "--matte"),
    ("bad_focus", "--focus"),
    ("depth8_without_scale", "--depth-scale"),
    ("K_without_disparity", "--disparity"),
    ("missing_out_dir", "directory does not exist"),
])
def test_render_errors(scene, tmp_path, case, expect):
    d = scene["dir"]
    out = tmp_path / "o.png"
    args = {
        "missing_image": [d / "nope.png", "--depth", d / "depth.npy", "--focus", 2, "-o", out],
        "missing_depth": [d / "img.png", "--depth", d / "nope.npy", "--focus", 2, "-o", out],
        "unreadable": [d / "junk.png", "--depth", d / "depth.npy", "--focus", 2, "-o", out],
        "size_mismatch": [d / "small.png", "--depth", d / "depth.npy", "--focus", 2, "-o", out],
        "matte_mismatch": [d / "img.png", "--depth", d / "depth.npy", "--matte", d / "small.png", "-o", out],
        "auto_without_matte": [d / "img.png", "--depth", d / "depth.npy", "-o", out],
        "bad_focus": [d / "img.png", "--depth", d / "depth.npy", "--focus", "near", "-o", out],
        "depth8_without_scale": [d / "img.png", "--depth", d / "matte.png", "--focus", 2, "-o", out],
        "K_without_disparity": [d / "img.png", "--depth", d / "depth.npy", "--K", 3, "--focus", 2, "-o", out],
        "missing_out_dir": [d / "img.png", "--depth", d / "depth.npy", "--focus", 2, "-o", tmp_path / "x" / "o.png"],
    }[case]
    r = run("render", *args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("synthdof: error:") and expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_usage_errors_exit_2(tmp_path):
    r = run("render", "img.png", cwd=tmp_path)  # --depth and -o missing
    assert r.returncode == 2 and "--depth" in r.stderr
    r = run("frobnicate", cwd=tmp_path)
    assert r.returncode == 2


# -- batch ----------------------------------------------------------------------------------

def write_config(path, scene, **over):
    d = scene["dir"]
    cfg = {
        "inputs": [{"name": "a", "image": str(d / "img.png"), "depth": str(d / "depth_mm.png"),
                    "matte": str(d / "matte.png")},
                   {"name": "b", "image": "img.npy", "depth": "depth.npy"}],
        "samples_per_input": 2,
        "seed": 11,
        "lens": {"focal_length_mm": [50, 100], "f_number": {"log_uniform": [1.4, 4.0]},
                 "focus": {"uniform": [1.5, 3.0]}, "blades": {"choice": [0, 5, 6]}, "rotation": [0.0, 1.0]},
        "output": {"format": "png", "save_coc": True},
    }
    cfg.update(over)
    # input b: relative paths, resolved against the config file's directory
    np.save(path.parent / "img.npy", synthdof.srgb_to_linear(scene["img"]))
    np.save(path.parent / "depth.npy", scene["depth"])
    path.write_text(json.dumps(cfg))
    return cfg


def records(outdir):
    with open(outdir / "metadata.jsonl") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def test_batch_renders_records_and_resumes(scene, tmp_path):
    cfg_path = tmp_path / "batch.json"
    write_config(cfg_path, scene)
    out = tmp_path / "out"
    r = run("batch", cfg_path, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "4 rendered, 0 already done" in r.stdout
    recs = records(out)
    assert sorted(recs) == ["a_0000", "a_0001", "b_0000", "b_0001"]
    for rec in recs.values():
        L = rec["lens"]
        assert 50 <= L["focal_length_mm"] <= 100 and 1.4 <= L["f_number"] <= 4.0
        assert 1.5 <= L["focus_distance"] <= 3.0 and rec["aperture"]["blades"] in (0, 5, 6)
        assert 0 <= rec["aperture"]["rotation"] <= 1.0
        assert rec["seed"] == 11 and (rec["width"], rec["height"]) == (W, H)
        assert set(rec["timings"]) == {"load_s", "render_s", "write_s"}
        # the record describes the image: re-render it through the API from the recorded lens
        z = scene["mm"] / np.float32(1000) if rec["input"] == "a" else scene["depth"]
        lens = synthdof.ThinLens(L["focal_length_mm"], L["f_number"], L["focus_distance"], L["sensor_width_mm"])
        coc = np.load(out / rec["coc_output"])
        np.testing.assert_array_equal(coc, lens.coc(z))
        assert rec["coc"]["min"] == pytest.approx(float(coc.min()))
        assert rec["coc"]["max"] == pytest.approx(float(coc.max()))
        ap = synthdof.Aperture(**rec["aperture"])
        if rec["input"] == "a":
            ref = synthdof.render(scene["img"], z, matte=scene["matte8"] / np.float32(255), lens=lens, aperture=ap)
        else:
            ref = synthdof.linear_to_srgb(synthdof.render(synthdof.srgb_to_linear(scene["img"]), z, lens=lens,
                                                          aperture=ap), np.uint8)
        np.testing.assert_array_equal(read_png(out / rec["output"]), ref)
    # parameters are drawn per (seed, input, sample): the same in a fresh plan, new for a new seed
    cfg = _batch.load_config(cfg_path)
    assert [t["lens"]["f_number"] for t in _batch.plan(cfg)] == [recs[i]["lens"]["f_number"] for i in sorted(recs)]
    assert len({recs[i]["lens"]["f_number"] for i in recs}) == 4

    # an interrupted run: one output lost, the last record torn in half
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    (out / "b_0001.png").unlink()
    text = (out / "metadata.jsonl").read_text().splitlines(keepends=True)
    last = [ln for ln in text if '"a_0001"' in ln][0]
    (out / "metadata.jsonl").write_text("".join(ln for ln in text if ln is not last) + last[:40])
    r = run("batch", cfg_path, "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "2 rendered, 2 already done" in r.stdout
    recs2 = records(out)  # every line parses again
    assert sorted(recs2) == sorted(recs)
    for name, t in mtimes.items():
        if name not in ("b_0001.png", "a_0001.png"):
            assert (out / name).stat().st_mtime_ns == t, f"{name} was redone"
    for rid in recs:
        assert recs2[rid]["lens"] == recs[rid]["lens"]
    r = run("batch", cfg_path, "-o", out, "-q")
    assert r.returncode == 0 and "0 rendered, 4 already done" in r.stdout

    # the same output directory refuses outputs drawn from other parameters
    write_config(cfg_path, scene, seed=12)
    r = run("batch", cfg_path, "-o", out, "-q")
    assert r.returncode == 1 and "other parameters" in r.stderr


def test_batch_on_dask_local_cluster_matches_serial(scene, tmp_path):
    pytest.importorskip("dask.distributed")
    cfg_path = tmp_path / "batch.json"
    write_config(cfg_path, scene, output={"format": "npy"})
    r = run("batch", cfg_path, "-o", tmp_path / "serial", "-q")
    assert r.returncode == 0, r.stderr
    r = run("batch", cfg_path, "-o", tmp_path / "dask", "--workers", 2, "-q")
    assert r.returncode == 0, r.stderr
    assert "4 rendered" in r.stdout
    a, b = records(tmp_path / "serial"), records(tmp_path / "dask")
    assert sorted(a) == sorted(b)
    pids = {rec["pid"] for rec in b.values()}
    assert os.getpid() not in pids and len(pids) >= 1
    for rid in a:
        assert a[rid]["lens"] == b[rid]["lens"] and a[rid]["aperture"] == b[rid]["aperture"]
        np.testing.assert_array_equal(np.load(tmp_path / "serial" / a[rid]["output"]),
                                      np.load(tmp_path / "dask" / b[rid]["output"]))


def test_run_task_reuses_the_input_it_loaded_last_until_a_file_changes(scene, tmp_path):
    """A Dask worker's tasks arrive one at a time: each loads its input unless the process
    loaded the same input (unchanged files) for the task before."""
    from synthdof._batch import load_config, load_task_scene, plan, run_task

    cfg_path = tmp_path / "batch.json"
    write_config(cfg_path, scene, output={"format": "npy"})
    tasks = [t for t in plan(load_config(str(cfg_path))) if t["input"]["name"] == "a"]
    outs = [tmp_path / name for name in ("first", "second", "fresh", "changed")]
    for d in outs:
        d.mkdir()
    first = run_task(tasks[0], str(outs[0]), num_threads=1)
    second = run_task(tasks[1], str(outs[1]), num_threads=1)
    assert first["timings"]["load_s"] > 0 and second["timings"]["load_s"] == 0
    fresh = run_task(tasks[1], str(outs[2]), num_threads=1, scene=load_task_scene(tasks[1]["input"], 1))
    np.testing.assert_array_equal(np.load(outs[1] / second["output"]), np.load(outs[2] / fresh["output"]))
    matte = scene["dir"] / "matte.png"
    st = os.stat(matte)
    os.utime(matte, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten: loaded again
    changed = run_task(tasks[1], str(outs[3]), num_threads=1)
    assert changed["timings"]["load_s"] > 0


@pytest.mark.parametrize("mutate, expect", [
    (lambda c: c.update(inputs=[{"name": "x", "image": "nope.png", "depth": "depth.npy"}]), "not found"),
    (lambda c: c["lens"].update(f_number={"gamma": [1, 2]}), "lens.f_number"),
    (lambda c: c.update(samples_per_input=0), "samples_per_input"),
    (lambda c: c["inputs"][1].update(name="a"), "used twice"),
    (lambda c: c["lens"].update(focus="auto"), "has none"),
    (lambda c: c.update(output={"format": "gif"}), "output.format"),
])
def test_batch_config_errors(scene, tmp_path, mutate, expect):
    cfg_path = tmp_path / "batch.json"
    cfg = write_config(cfg_path, scene)
    mutate(cfg)
    cfg_path.write_text(json.dumps(cfg))
    r = run("batch", cfg_path, "-o", tmp_path / "out", "-q")
    assert r.returncode == 1 and expect in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_batch_missing_config(tmp_path):
    r = run("batch", tmp_path / "none.json", "-o", tmp_path / "out")
    assert r.returncode == 1 and "not found" in r.stderr
