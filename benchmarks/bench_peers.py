"""Time the Debian peers on the synthetic scene and compare them with synthdof.

GEGL `gegl:lens-blur` (the `gegl` command; `apt-get install gegl`): a disk-shaped variable blur
whose per-pixel radius is `radius` x the aux image. We feed it the scene's CoC radius map
(|CoC| / 2, divided by its maximum, as a linear float OpenEXR on the aux pad, linear-mask=true)
and the linear image (float OpenEXR); the result is written as .npy. The time is the wall-clock
time of the `gegl` process; the same command without the blur (load + save only) is timed too
and subtracted for the "op only" figure.
    GEGL_THREADS=N gegl -o OUT.npy -- gegl:load path=IMG.exr \
        gegl:lens-blur radius=RMAX linear-mask=true aux=[ gegl:load path=MASK.exr ]

Blender compositor Defocus node (`apt-get install blender`), headless: see
peers/blender_defocus.py. Fed the same CoC radius map on its Z input (use_zbuffer off), hexagon
bokeh, 1920x1080 by default. Its own timer measures each compositor run; a run with the node
bypassed is subtracted for the "node only" figure. With --blender-gt it is also run on the
ground-truth scenes and its output compared with the `blender_defocus` arrays stored there
(the same node, rendered when the ground truth was made): this checks the setup.

synthdof.render's time on the same scene is taken from results/render.json when that was measured
with the installed C core (else it is measured here). Ratios are peer time / synthdof time on the
same input and thread count, so > 1 means synthdof is faster. GEGL's op is a plain disk scatter
without occlusion handling, so it is compared with both synthdof.render (the full renderer,
hexagon) and synthdof.scatter with a disk aperture (the like-for-like kernel). Peers that are not
installed are skipped with a message.

    python benchmarks/bench_peers.py                   # GEGL at 12 MP, Blender at 1920x1080
    python benchmarks/bench_peers.py --gegl-size 1008x756 --blender-size 640x360 --repeats 1
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import benchlib
import scene
from peers import exr

THREADS = (1, 2)
GEGL_MAX_RUN_S = 240.0   # a single GEGL run longer than this: no more repeats at that size


def _wall(cmd, env=None, timeout=900):
    benchlib.wait_quiet()
    f = benchlib.Foreign().start()
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return dt, f.stop() / (dt * (os.cpu_count() or 1))


def _depth_and_coc(s, kind):
    """The scene's depth as `kind` gives it (scene.depth_variant) and the lens's CoC of it: the peers
    are fed that CoC, synthdof that depth."""
    if kind == "planes":
        return s["depth"], s["coc"]
    depth = scene.depth_variant(s["depth"], kind)
    return depth, s["lens"].coc(depth)


def _synthdof_times(s, threads, repeats, kind="planes", scatter_aperture=None):
    """synthdof.render on scene s with depth `kind` (for the exact planes taken from
    results/render.json when that was measured on the same scene with the installed core), and
    synthdof.scatter of that depth's CoC (with scatter_aperture)."""
    import synthdof
    depth, coc = _depth_and_coc(s, kind)
    out = {}
    for nt in threads:
        rec = benchlib.recorded_render_time([s["meta"]["width"], s["meta"]["height"]], nt) \
            if s["meta"]["max_coc"] == 100.0 and kind == "planes" else None
        if rec is not None:
            out["render", nt] = rec
        else:
            t = benchlib.timeit(lambda: synthdof.render(s["image"], depth, matte=s["matte"], lens=s["lens"],
                                                        aperture=s["aperture"], num_threads=nt), repeats)
            out["render", nt] = t["median"]
        if scatter_aperture is not None:
            t = benchlib.timeit(lambda: synthdof.scatter(s["image"], coc, aperture=scatter_aperture,
                                                         num_threads=nt), repeats)
            out["scatter", nt] = t["median"]
    return out


# ---------------------------------------------------------------- GEGL

def run_gegl(size, threads, repeats, synthdof_repeats, kind="planes", verbose=True):
    exe = benchlib.which("gegl")
    if not exe:
        msg = "GEGL not installed (apt-get install gegl): gegl:lens-blur skipped"
        print("  " + msg)
        return dict(peer="gegl:lens-blur", skipped=msg)
    import synthdof
    W, H = size
    s = scene.cached_scene(W, H)
    _, coc = _depth_and_coc(s, kind)
    rad = np.abs(coc) / 2.0
    rmax = float(rad.max())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_gegl_") as d:
        img_p, mask_p, out_p = (os.path.join(d, n) for n in ("img.exr", "mask.exr", "out.npy"))
        exr.write_exr(img_p, s["image"])
        exr.write_exr(mask_p, rad / rmax)
        blur = [exe, "-o", out_p, "--", "gegl:load", f"path={img_p}", "gegl:lens-blur", f"radius={rmax:.6f}",
                "linear-mask=true", "aux=[", "gegl:load", f"path={mask_p}", "]"]
        nop = [exe, "-o", out_p, "--", "gegl:load", f"path={img_p}"]
        check = None
        for nt in threads:
            env = dict(os.environ, GEGL_THREADS=str(nt))
            t_nop = sorted(_wall(nop, env)[0] for _ in range(2))[0]
            times, loads = [], []
            for i in range(repeats):
                dt, load = _wall(blur, env)
                times.append(dt)
                loads.append(load)
                if verbose:
                    print(f"  gegl:lens-blur {W}x{H} {kind} threads={nt} run {i + 1}: {dt:.2f} s", flush=True)
                if dt > GEGL_MAX_RUN_S:
                    break
            if check is None:
                g = np.load(out_p)[:, :, :3].astype(np.float32)
                ref = synthdof.scatter(s["image"], coc, aperture=synthdof.Aperture(blades=0))
                check = dict(finite=bool(np.isfinite(g).all()),
                             flux_vs_input=float(g.sum(dtype=np.float64) / s["image"].sum(dtype=np.float64)),
                             mean_abs_diff_vs_scatter=float(np.abs(g - ref).mean()),
                             mean_input=float(s["image"].mean()))
            t = benchlib.summary(times)
            rows.append(dict(threads=nt, median_s=t["median"], min_s=t["min"], runs=len(times), overhead_s=t_nop,
                             op_s=t["median"] - t_nop, foreign_load=float(np.mean(loads))))
    sd = _synthdof_times(s, threads, synthdof_repeats, kind, scatter_aperture=synthdof.Aperture(blades=0))
    for r in rows:
        nt = r["threads"]
        r.update(synthdof_render_s=sd["render", nt], synthdof_scatter_disk_s=sd["scatter", nt],
                 ratio_render=r["median_s"] / sd["render", nt], ratio_scatter=r["median_s"] / sd["scatter", nt],
                 ratio_render_op=r["op_s"] / sd["render", nt], ratio_scatter_op=r["op_s"] / sd["scatter", nt])
    return dict(peer="gegl:lens-blur", size=[W, H], depth=kind, max_radius=rmax, rows=rows, check=check,
                version="gegl " + (_version(["dpkg-query", "-W", "-f", "${Version}", "gegl"]) or "?"))


# ---------------------------------------------------------------- Blender

def _blender(exe, img, radius, threads, repeats, bokeh, angle, out=None):
    """Run peers/blender_defocus.py; img (H, W, 3) linear, radius (H, W) px. Returns its JSON."""
    H, W = radius.shape
    with tempfile.TemporaryDirectory(prefix="bench_blender_") as d:
        rgba = np.concatenate([img, np.ones((H, W, 1), np.float32)], 2)[::-1]
        z = np.repeat(radius[:, :, None], 4, 2)[::-1].copy()
        z[:, :, 3] = 1.0
        np.save(os.path.join(d, "img.npy"), np.ascontiguousarray(rgba, dtype="<f4"))
        np.save(os.path.join(d, "rad.npy"), np.ascontiguousarray(z, dtype="<f4"))
        jp = os.path.join(d, "t.json")
        cmd = [exe, "-b", "--factory-startup", "-t", str(threads), "--python",
               os.path.join(benchlib.HERE, "peers", "blender_defocus.py"), "--",
               "--image", os.path.join(d, "img.npy"), "--radius", os.path.join(d, "rad.npy"), "--json", jp,
               "--bokeh", bokeh, "--angle", str(angle), "--repeats", str(repeats)]
        if out:
            cmd += ["--out", os.path.join(d, "out.exr")]
        wall, load = _wall(cmd)
        with open(jp) as f:
            res = json.load(f)
        res.update(process_s=wall, foreign_load=load)
        if out:
            o = exr.read_exr(os.path.join(d, "out.exr"))
            res["output"] = np.stack([o["R"], o["G"], o["B"]], 2)
        return res


BOKEH = {0: "CIRCLE", 3: "TRIANGLE", 4: "SQUARE", 5: "PENTAGON", 6: "HEXAGON", 7: "HEPTAGON", 8: "OCTAGON"}


def run_blender(size, threads, repeats, synthdof_repeats, max_coc, kind="planes", verbose=True):
    """Blender's Defocus node on the scene of `size` (max |CoC| of the exact planes = max_coc px,
    hexagon), fed the CoC of depth `kind`."""
    exe = benchlib.which("blender")
    if not exe:
        msg = "Blender not installed (apt-get install blender): Defocus node skipped"
        print("  " + msg)
        return dict(peer="blender Defocus", skipped=msg)
    W, H = size
    s = scene.cached_scene(W, H, max_coc=max_coc)
    _, coc = _depth_and_coc(s, kind)
    rad = np.abs(coc) / 2.0
    rows = []
    for nt in threads:
        r = _blender(exe, s["image"], rad, nt, repeats, BOKEH[s["aperture"].blades], 0.0, out=(nt == threads[0]))
        if "output" in r:
            o = r.pop("output")
            check = dict(finite=bool(np.isfinite(o).all()),
                         flux_vs_input=float(o.sum(dtype=np.float64) / s["image"].sum(dtype=np.float64)))
        med = float(np.median(r["defocus_times"]))
        byp = float(np.median(r["bypass_times"]))
        rows.append(dict(threads=nt, median_s=med, min_s=min(r["defocus_times"]), runs=len(r["defocus_times"]),
                         overhead_s=byp, op_s=med - byp, process_s=r["process_s"], foreign_load=r["foreign_load"],
                         execution_mode=r.get("execution_mode")))
        if verbose:
            print(f"  blender Defocus {W}x{H} {kind} threads={nt}: median {med:.2f} s per compositor run "
                  f"(bypass {byp:.2f} s; process {r['process_s']:.1f} s)", flush=True)
    sd = _synthdof_times(s, threads, synthdof_repeats, kind)
    for r in rows:
        nt = r["threads"]
        r.update(synthdof_render_s=sd["render", nt], ratio_render=r["median_s"] / sd["render", nt],
                 ratio_render_op=r["op_s"] / sd["render", nt])
    return dict(peer="blender Defocus", size=[W, H], depth=kind, max_coc=float(np.abs(coc).max()),
                bokeh=BOKEH[s["aperture"].blades], rows=rows, check=check, version=_version([exe, "--version"]))


def blender_gt_check(threads=2, verbose=True):
    """Run the Defocus node on each ground-truth scene exactly as stored there and compare with the
    stored `blender_defocus` output and its recorded time."""
    exe = benchlib.which("blender")
    if not exe:
        msg = "Blender missing: check skipped"
        print("  " + msg)
        return dict(skipped=msg)
    import synthdof
    rows = []
    for name in benchlib.gt_names():
        z = synthdof.load_ground_truth(name)
        m = z["meta"]
        lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
                                 focus_distance=m["focus_distance_m"], sensor_width_mm=m["sensor_width_mm"])
        coc = lens.coc(z["depth"].astype(np.float32))
        img = z["pinhole"].astype(np.float32)
        r = _blender(exe, img, np.abs(coc) / 2.0, threads, 3, BOKEH[m["aperture_blades"]],
                     m["aperture_rotation_rad"], out=True)
        o, ref = r.pop("output"), z["blender_defocus"].astype(np.float32)
        rel = float(np.abs(o - ref).mean() / max(1e-12, float(np.abs(ref).mean())))
        t0 = time.perf_counter()
        synthdof.render(img, z["depth"], matte=z["alpha"], lens=lens,
                        aperture=synthdof.Aperture(blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"]),
                        num_threads=threads)
        t_sd = time.perf_counter() - t0
        row = dict(scene=name, threads=threads, median_s=float(np.median(r["defocus_times"])),
                   recorded_s=m.get("t_blender_defocus_s"), rel_diff_vs_stored=rel, synthdof_s=t_sd)
        row["ratio_render"] = row["median_s"] / t_sd
        rows.append(row)
        if verbose:
            print(f"  blender Defocus on gt {row['scene']}: {row['median_s']:.2f} s "
                  f"(recorded {row['recorded_s']:.2f} s), "
                  f"mean |ours - stored| / mean |stored| = {rel:.4f}", flush=True)
    return dict(rows=rows)


def _version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def _key(peer, kind):
    """The result's key: the exact planes' under the peer's name (as run_all.py reads it), the
    other depth kinds' under peer_kind."""
    return peer if kind == "planes" else f"{peer}_{kind}"


def run(gegl_size=scene.FULL_SIZE, blender_size=(1920, 1080), threads=THREADS, repeats=5, synthdof_repeats=5,
        blender_max_coc=100.0, blender_gt=False, only=None, blender_repeats=3, depths=("planes", "net")):
    res = dict(benchmark="peers", machine=benchlib.machine())
    for kind in depths:
        if only in (None, "gegl"):
            res[_key("gegl", kind)] = run_gegl(gegl_size, threads, repeats, synthdof_repeats, kind)
        if only in (None, "blender"):
            res[_key("blender", kind)] = run_blender(blender_size, threads, blender_repeats, synthdof_repeats,
                                                     blender_max_coc, kind)
    if only in (None, "blender"):
        if blender_gt:
            res["blender_gt"] = blender_gt_check()
    return res


def report(res):
    for key in [k for k in res if k == "gegl" or k.startswith("gegl_")]:
        _report_gegl(res[key])
    for key in [k for k in res if k == "blender" or (k.startswith("blender_") and k != "blender_gt")]:
        _report_blender(res[key])
    _report_blender_gt(res.get("blender_gt"))


def _report_gegl(g):
    if g:
        if "skipped" in g:
            print(f"\ngegl:lens-blur: SKIPPED ({g['skipped']})")
        else:
            W, H = g["size"]
            print(f"\ngegl:lens-blur ({g['version']}) on the {W}x{H} scene, {g['depth']} depth, "
                  f"max radius {g['max_radius']:.1f} px, "
                  f"disk; ratio = GEGL time / synthdof time (> 1: synthdof faster)")
            print(benchlib.table(g["rows"], [
                ("threads", "threads", "{}"), ("runs", "runs", "{}"), ("median_s", "GEGL s", "{:.2f}"),
                ("overhead_s", "load+save s", "{:.2f}"), ("synthdof_render_s", "render s", "{:.2f}"),
                ("synthdof_scatter_disk_s", "scatter s", "{:.2f}"), ("ratio_render", "/render", "{:.1f}"),
                ("ratio_scatter", "/scatter", "{:.1f}"), ("ratio_render_op", "op/render", "{:.1f}"),
                ("ratio_scatter_op", "op/scatter", "{:.1f}"), ("foreign_load", "other load", "{:.0%}")]))
            print(f"check: {g['check']}")


def _report_blender(b):
    if b:
        if "skipped" in b:
            print(f"\nBlender Defocus: SKIPPED ({b['skipped']})")
        else:
            W, H = b["size"]
            print(f"\nBlender Defocus node ({b['version']}) on the {W}x{H} scene, {b['depth']} depth, "
                  f"max |CoC| {b['max_coc']:.0f} px, "
                  f"{b['bokeh'].lower()}; ratio = Blender time / synthdof.render time")
            print(benchlib.table(b["rows"], [
                ("threads", "threads", "{}"), ("runs", "runs", "{}"), ("median_s", "Blender s", "{:.2f}"),
                ("overhead_s", "bypass s", "{:.2f}"), ("synthdof_render_s", "render s", "{:.2f}"),
                ("ratio_render", "/render", "{:.1f}"), ("ratio_render_op", "node/render", "{:.1f}"),
                ("foreign_load", "other load", "{:.0%}")]))
            print(f"check: {b['check']}")


def _report_blender_gt(bg):
    if bg and "rows" in bg:
        print("\nBlender Defocus on the ground-truth scenes (setup check against the stored output)")
        print(benchlib.table(bg["rows"], [
            ("scene", "scene", "{}"), ("median_s", "Blender s", "{:.2f}"), ("recorded_s", "recorded s", "{:.2f}"),
            ("rel_diff_vs_stored", "rel diff", "{:.4f}"), ("synthdof_s", "render s", "{:.2f}"),
            ("ratio_render", "ratio", "{:.1f}")]))


def main(argv=None):
    p = argparse.ArgumentParser(description="Time GEGL lens-blur and Blender's Defocus node against synthdof.")
    p.add_argument("--gegl-size", type=scene.parse_size, default=scene.FULL_SIZE, help="WxH (default 4032x3024)")
    p.add_argument("--blender-size", type=scene.parse_size, default=(1920, 1080), help="WxH (default 1920x1080)")
    p.add_argument("--blender-max-coc", type=float, default=100.0)
    p.add_argument("--repeats", type=int, default=5, help="GEGL runs per configuration (default 5)")
    p.add_argument("--blender-repeats", type=int, default=3, help="Defocus runs per configuration (default 3)")
    p.add_argument("--synthdof-repeats", type=int, default=5)
    p.add_argument("--only", choices=("gegl", "blender"))
    p.add_argument("--threads", type=int, nargs="+", default=list(THREADS), help="thread counts (default 1 2)")
    p.add_argument("--depth", nargs="+", choices=scene.DEPTH_KINDS, default=["planes", "net"],
                   help="depth kinds (scene.depth_variant) the peers' CoC and synthdof's depth come from "
                        "(default planes net)")
    p.add_argument("--blender-gt", action="store_true", help="also check the Blender setup on the ground truth")
    p.add_argument("--json", default=f"{benchlib.RESULTS}/peers.json")
    a = p.parse_args(argv)
    res = run(a.gegl_size, a.blender_size, threads=tuple(a.threads), repeats=a.repeats,
              synthdof_repeats=a.synthdof_repeats, blender_max_coc=a.blender_max_coc,
              blender_gt=a.blender_gt, only=a.only,
              blender_repeats=a.blender_repeats, depths=a.depth)
    report(res)
    benchlib.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
