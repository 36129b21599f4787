"""Time synthdof.render on the synthetic 12 MP scene and on the 768x512 ground-truth scenes.

Every configuration runs in a fresh Python process (so the memory numbers belong to that one
call): it loads the scene from the cache (benchmarks/results/cache), calls the function once
under tracemalloc to measure memory, then times `--repeats` further calls.

Reported per configuration:
  median_s / min_s   wall-clock seconds of the timed calls
  py_peak_mb         peak of Python/NumPy allocations during the first call (tracemalloc; the
                     C core's own scratch buffers are not traced)
  rss_peak_mb        peak resident set size during the first call minus the resident size just
                     before it (getrusage ru_maxrss): everything the call added, C scratch included,
                     output array included
  first / steady     on the most threads, per configuration: the first call over the median of
                     the calls after it, in each of --first-runs fresh processes (the first call
                     is one call of one process, and varies far more than a median of calls);
                     reported as the median of those ratios and their range, with the median
                     first call
Depth kinds (scene.depth_variant; same image, matte and lens): planes (the exact planar depth
the slice centres snap onto), slant (wall and ground one plane tilted both ways), net (a
network's: area 4x down, bilinear up, Gaussian 1.5 px), noise (depth x (1 + 1 % noise)). Each is
timed in its own fresh process on 2 and 1 threads, and all four are timed again interleaved in
one process (planes, slant, net, noise, planes, ...), whose ratios to planes hold even when
the machine is loaded (the load hits every kind alike).

and derived:
  depth / planes     each depth kind's time over the exact planes' (interleaved run)
  render / scatter   render time over the plain scatter kernel's on the same image, CoC, aperture
  radius ratio       render time at max CoC 200 px over max CoC 20 px (same scene, f-number scaled)
  thread speed-up    1-thread time over 2-thread time
  gt scenes          render time of each ground-truth scene (synthdof.load_ground_truth), and the
                     recorded time of Blender's Defocus node on it (meta t_blender_defocus_s) over synthdof's

    python benchmarks/bench_render.py                       # 12 MP, 5 repeats, every depth kind
    python benchmarks/bench_render.py --size 1008x756 --repeats 2   # smoke check
"""
import argparse
import json
import os
import sys
import time
import tracemalloc

import numpy as np

import benchlib
import scene

THREADS = (1, 2)


# ---------------------------------------------------------------- worker (fresh process)

def _worker(payload):
    import synthdof
    kind, nt, repeats = payload["kind"], payload["threads"], payload["repeats"]
    if kind == "gt":
        z = synthdof.load_ground_truth(payload["name"])
        meta = z["meta"]
        img = np.ascontiguousarray(z["pinhole"], dtype=np.float32)
        depth = np.ascontiguousarray(z["depth"], dtype=np.float32)
        matte = np.ascontiguousarray(z["alpha"], dtype=np.float32)
        lens = synthdof.ThinLens(focal_length_mm=meta["focal_length_mm"], f_number=meta["f_number"],
                                 focus_distance=meta["focus_distance_m"], sensor_width_mm=meta["sensor_width_mm"])
        ap = synthdof.Aperture(blades=meta["aperture_blades"], rotation=meta["aperture_rotation_rad"])
        extra = dict(t_blender_defocus_s=meta.get("t_blender_defocus_s"), width=img.shape[1], height=img.shape[0],
                     max_coc=float(np.abs(lens.coc(depth)).max()))
    else:
        s = scene.load_scene_dir(payload["scene"])
        img, matte, ap, meta = s["image"], s["matte"], s["aperture"], s["meta"]
        depth = scene.depth_variant(s["depth"], payload.get("depth", "planes"))
        target = payload.get("max_coc", meta["max_coc"])
        lens = synthdof.ThinLens(focal_length_mm=meta["focal_length_mm"],
                                 f_number=meta["f_number"] * meta["max_coc"] / target,
                                 focus_distance=meta["focus_distance_m"], sensor_width_mm=meta["sensor_width_mm"])
        coc = lens.coc(depth)
        extra = dict(max_coc=float(np.abs(coc).max()))
    if kind == "interleaved":
        return _interleaved(img, matte, lens, ap, s["depth"], nt, repeats)
    if kind == "scatter":
        fn = lambda: synthdof.scatter(img, coc, aperture=ap, num_threads=nt)
    else:
        fn = lambda: synthdof.render(img, depth, matte=matte, lens=lens, aperture=ap, num_threads=nt)

    benchlib.wait_quiet()
    rss0 = benchlib.rss_bytes()
    peak0 = benchlib.peak_rss_bytes()
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    py_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the peak is only attributable to the call if it rose above the peak before it
    peak1 = benchlib.peak_rss_bytes()
    rss_peak = peak1 - rss0 if peak1 > peak0 else None
    ok = bool(np.isfinite(out).all())
    flux = float(out.sum(dtype=np.float64) / img.sum(dtype=np.float64))
    del out
    t = benchlib.timeit(fn, repeats, warmup=0)
    res = dict(kind=kind, threads=nt, first_s=first, median_s=t["median"], min_s=t["min"], times=t["times"],
               py_peak_mb=benchlib.mb(py_peak), rss_peak_mb=None if rss_peak is None else benchlib.mb(rss_peak),
               rss_over_input=None if rss_peak is None else rss_peak / img.nbytes,
               rss_before_mb=benchlib.mb(rss0), peak_before_mb=benchlib.mb(peak0),
               input_mb=benchlib.mb(img.nbytes), finite=ok, flux=flux, foreign_load=t["foreign_load"], **extra)
    print(json.dumps(res))


def _interleaved(img, matte, lens, ap, exact_depth, nt, repeats):
    """Every depth kind rendered in turn, `repeats` rounds after one untimed round: the ratios of
    their medians to the exact planes' see the same load."""
    import synthdof
    depths = {k: scene.depth_variant(exact_depth, k) for k in scene.DEPTH_KINDS}
    times = {k: [] for k in depths}
    foreign = []
    out = np.empty(img.shape, np.float32)
    for r in range(repeats + 1):
        for k, d in depths.items():
            f = benchlib.Foreign().start()
            t = time.perf_counter()
            synthdof.render(img, d, matte=matte, lens=lens, aperture=ap, num_threads=nt, out=out)
            dt = time.perf_counter() - t
            if r > 0:
                times[k].append(dt)
                foreign.append((f.stop(), dt))
    med = {k: float(np.median(v)) for k, v in times.items()}
    res = dict(kind="interleaved", threads=nt, median_s=med, times=times,
               over_planes={k: med[k] / med["planes"] for k in med},
               foreign_load=sum(f for f, _ in foreign) / (sum(t for _, t in foreign) * (os.cpu_count() or 1)))
    print(json.dumps(res))


# ---------------------------------------------------------------- driver

def run(size=scene.FULL_SIZE, repeats=5, threads=THREADS, radius_pair=(20.0, 200.0), gt=True, verbose=True,
        depths=scene.DEPTH_KINDS, first_runs=5):
    W, H = size
    t = time.perf_counter()
    s = scene.cached_scene(W, H)
    sdir = s["dir"]
    if verbose:
        print(f"scene {W}x{H} ready ({time.perf_counter() - t:.1f} s): max |CoC| {s['meta']['max_coc']:.0f} px, "
              f"f/{s['meta']['f_number']:.2f}, hexagon", flush=True)
    del s

    def job(**kw):
        r = benchlib.run_worker("bench_render.py", dict(kw, repeats=repeats))
        r["args"] = kw  # to run it again (the first call's fresh processes)
        if verbose and r["kind"] == "interleaved":
            print("  interleaved, {} threads: ".format(kw["threads"]) + ", ".join(
                f"{k} {v:.3f} s ({r['over_planes'][k]:.2f}x)" for k, v in r["median_s"].items()), flush=True)
        elif verbose:
            label = " ".join(f"{k}={v}" for k, v in kw.items() if k not in ("scene", "name"))
            print(f"  {label}: median {r['median_s']:.3f} s (min {r['min_s']:.3f}), first call {r['first_s']:.3f} s, "
                  f"py peak {r['py_peak_mb']:.0f} MB, rss peak +{r['rss_peak_mb'] or float('nan'):.0f} MB", flush=True)
        return r

    rows = []
    for nt in threads:
        rows.append(dict(job(kind="render", scene=sdir, threads=nt), label="render"))
        rows.append(dict(job(kind="scatter", scene=sdir, threads=nt), label="scatter"))
    for kind in depths:
        if kind != "planes":
            for nt in threads:
                rows.append(dict(job(kind="render", scene=sdir, threads=nt, depth=kind), label=f"render {kind}"))
    interleaved = [job(kind="interleaved", scene=sdir, threads=nt) for nt in threads] if len(depths) > 1 else []
    nt_max = max(threads)
    radius = [dict(job(kind="render", scene=sdir, threads=nt_max, max_coc=c), label=f"render maxCoC {c:.0f}")
              for c in radius_pair]
    rows += radius
    for r in rows:  # the first call, again in fresh processes: one call of one process varies most
        if r["threads"] == nt_max and first_runs > 1:
            more = [benchlib.run_worker("bench_render.py", dict(r["args"], repeats=3)) for _ in range(first_runs - 1)]
            runs = [r] + more
            ratios = [x["first_s"] / x["median_s"] for x in runs]
            r.update(first_runs=len(runs), first_med_s=float(np.median([x["first_s"] for x in runs])),
                     first_over_steady=float(np.median(ratios)), first_over_steady_lo=min(ratios),
                     first_over_steady_hi=max(ratios))
            if verbose:
                print(f"  {r['label']} {nt_max} threads: first / steady {r['first_over_steady']:.2f} "
                      f"(median of {len(runs)} processes, {min(ratios):.2f}-{max(ratios):.2f}), "
                      f"first call {r['first_med_s']:.3f} s", flush=True)

    by = {(r["label"], r["threads"]): r for r in rows}
    derived = dict(
        depth_over_planes={r["threads"]: r["over_planes"] for r in interleaved},
        render_over_scatter={nt: by["render", nt]["median_s"] / by["scatter", nt]["median_s"] for nt in threads},
        radius_ratio=dict(lo=radius_pair[0], hi=radius_pair[1], threads=nt_max,
                          ratio=radius[1]["median_s"] / radius[0]["median_s"]),
        thread_speedup=({k: by[k, min(threads)]["median_s"] / by[k, nt_max]["median_s"]
                         for k in ["render", "scatter"] + [f"render {d}" for d in depths if d != "planes"]}
                        if len(threads) > 1 else {}),
    )
    gt_rows = []
    for name in benchlib.gt_names() if gt else ():
        for nt in threads:
            r = job(kind="gt", name=name, threads=nt)
            r["scene"] = name
            if r.get("t_blender_defocus_s"):
                r["blender_over_synthdof"] = r["t_blender_defocus_s"] / r["median_s"]
            gt_rows.append(r)
    return dict(benchmark="render", size=[W, H], repeats=repeats, rows=rows, derived=derived, gt=gt_rows,
                interleaved=interleaved, machine=benchlib.machine())


def report(res):
    W, H = res["size"]
    print(f"\nsynthdof.render on the synthetic scene {W}x{H} (hexagon), median of {res['repeats']}")
    print(benchlib.table(res["rows"], [
        ("label", "what", "{}"), ("threads", "threads", "{}"), ("max_coc", "max|CoC|", "{:.0f}"),
        ("median_s", "median s", "{:.3f}"), ("min_s", "min s", "{:.3f}"), ("first_s", "1st call s", "{:.3f}"),
        ("py_peak_mb", "py peak MB", "{:.0f}"), ("rss_peak_mb", "RSS +MB", "{:.0f}"),
        ("input_mb", "image MB", "{:.0f}"),
        ("rss_over_input", "RSS+/image", "{:.2f}"),
        ("flux", "flux", "{:.4f}"), ("foreign_load", "other load", "{:.0%}")]))
    firsts = [r for r in res["rows"] if r.get("first_runs")]
    if firsts:
        print("\nThe first call in a fresh process over the steady calls after it, "
              f"{firsts[0]['first_runs']} processes")
        print(benchlib.table(firsts, [
            ("label", "what", "{}"), ("threads", "threads", "{}"), ("first_med_s", "1st call s (median)", "{:.3f}"),
            ("first_over_steady", "1st / steady (median)", "{:.2f}"), ("first_over_steady_lo", "lowest", "{:.2f}"),
            ("first_over_steady_hi", "highest", "{:.2f}")]))
    d = res["derived"]
    if res.get("interleaved"):
        print("\nEvery depth kind interleaved in one process (median s; ratio to the exact planes)")
        kinds = list(res["interleaved"][0]["median_s"])
        print(benchlib.table([dict(threads=r["threads"], load=r["foreign_load"],
                                   **{k: f"{r['median_s'][k]:.3f} ({r['over_planes'][k]:.2f}x)" for k in kinds})
                              for r in res["interleaved"]],
                             [("threads", "threads", "{}")] + [(k, k, "{}") for k in kinds] +
                             [("load", "other load", "{:.0%}")]))
    for nt, v in d["render_over_scatter"].items():
        print(f"render / scatter ({nt} thread{'s' if int(nt) > 1 else ''}): {v:.2f}")
    rr = d["radius_ratio"]
    print(f"radius independence: time(max CoC {rr['hi']:.0f}) / time(max CoC {rr['lo']:.0f}) "
          f"({rr['threads']} threads): {rr['ratio']:.2f}")
    for k, v in d["thread_speedup"].items():
        print(f"thread speed-up {k}: {v:.2f}")
    if res["gt"]:
        print("\nground-truth scenes (render(pinhole, depth, matte=alpha, lens, aperture))")
        print(benchlib.table(res["gt"], [
            ("scene", "scene", "{}"), ("threads", "threads", "{}"), ("max_coc", "max|CoC|", "{:.0f}"),
            ("median_s", "median s", "{:.3f}"), ("min_s", "min s", "{:.3f}"), ("rss_peak_mb", "RSS +MB", "{:.0f}"),
            ("t_blender_defocus_s", "Blender s", "{:.2f}"), ("blender_over_synthdof", "Blender/us", "{:.1f}"),
            ("foreign_load", "other load", "{:.0%}")]))


def main(argv=None):
    p = argparse.ArgumentParser(description="Time synthdof.render (12 MP scene and ground-truth scenes).")
    p.add_argument("--size", type=scene.parse_size, default=scene.FULL_SIZE, help="WxH (default 4032x3024)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-gt", action="store_true", help="skip the ground-truth scenes")
    p.add_argument("--depths", nargs="+", choices=scene.DEPTH_KINDS, default=list(scene.DEPTH_KINDS),
                   help="depth kinds to time besides the exact planes (default: all)")
    p.add_argument("--first-runs", type=int, default=5,
                   help="fresh processes whose first call is timed, per configuration on the most threads (default 5)")
    p.add_argument("--json", default=f"{benchlib.RESULTS}/render.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        _worker(json.loads(a.worker))
        return 0
    res = run(a.size, a.repeats, gt=not a.no_gt, depths=["planes"] + [k for k in a.depths if k != "planes"],
              first_runs=a.first_runs)
    report(res)
    benchlib.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
