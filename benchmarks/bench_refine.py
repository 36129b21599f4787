"""Time synthdof.refine on the synthetic 12 MP scene with the depth and matte users have.

Five inputs, each degraded from the scene's exact depth and matte in a fixed, seeded way (the
recipes of benchmarks/score_gt.py --inputs, written out here so the benchmark stands alone, and
one more):

  net      a monocular network: depth area-downsampled 4x, bilinear back up, Gaussian sigma
           1.5 px; matte = a segmentation mask (alpha > 0.5) area-downsampled 2x, bilinear up
  eighth   a phone: depth area-downsampled 8x and given at that size (504x378 for 4032x3024),
           the same segmentation matte
  sensor   stereo / time-of-flight: depth x (1 + 2 % Gaussian noise), 1 % of pixels in small
           NaN clusters and a 4 px NaN band left of every depth step; the exact matte
  holes    the sensor's holes without its noise (a clean depth with invalid pixels: stereo on
           a textured scene, a renderer's depth with invalid sky); the exact matte
  resized  the phone's 1/8 depth resized bilinearly to the photo's size, as a pipeline that
           aligns the maps first gives it (refine finds the samples again); the segmentation matte

Every configuration runs in a fresh Python process: it loads the scene from the cache
(benchmarks/results/cache), makes the inputs, calls refine once while recording each call of
every C core function (synthdof._core) to split the time between the C core and Python, then
times `--repeats` further calls of refine and of render on refine's output.

Reported per configuration:
  refine median / min     wall-clock seconds of refine
  render median           seconds of render(image, refined depth, matte=refined matte) (the
                          scene's lens and hexagon), timed separately
  refine + render         the sum of the two medians
  C core s / calls        seconds in synthdof._core's functions during the first call, and how
                          many calls
  NumPy s                 the rest of the first call (Python and NumPy array work)
  other load              share of all cores other processes used during the timed refine calls
and derived: time(edge_width 128) / time(edge_width 8) on the net input (the filter radius must
not change the cost) and the thread speed-up.

    python benchmarks/bench_refine.py                           # 12 MP, 5 repeats
    python benchmarks/bench_refine.py --size 1008x756 --repeats 2   # smoke check
    python benchmarks/bench_refine.py --profile net             # cProfile of one refine call
    python benchmarks/bench_refine.py --against DIR --repeats 3  # against another build (see compare)
"""
import argparse
import cProfile
import json
import os
import pstats
import sys
import time

import numpy as np

import benchlib
import scene
from scene import area_down, bilinear_up, gaussian

THREADS = (2, 1)
INPUTS = ("net", "eighth", "sensor", "holes", "resized")
EDGE_WIDTHS = ("auto", 8, 32, 128)
TARGET_S = 0.3  # refine at 12 MP on 2 threads (issue: depth at full and at 1/8 resolution)


# ---------------------------------------------------------------- degraded inputs

def segmentation_matte(alpha):
    """A segmentation network's mask: the subject (alpha > 0.5) at half resolution, bilinear up."""
    mask = (alpha > 0.5).astype(np.float32)
    return np.clip(bilinear_up(area_down(mask, 2), alpha.shape), 0.0, 1.0)


def degraded_inputs(depth, alpha, kind, seed=7):
    """(depth, matte) as a network, a phone or a sensor gives them (see the module docstring)."""
    if kind == "net":
        d = gaussian(bilinear_up(area_down(depth, 4), depth.shape), 1.5)
        return np.maximum(d, np.float32(1e-3)), segmentation_matte(alpha)
    if kind == "eighth":
        return area_down(depth, 8), segmentation_matte(alpha)
    if kind == "resized":
        return bilinear_up(area_down(depth, 8), depth.shape), segmentation_matte(alpha)
    if kind in ("sensor", "holes"):
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal(depth.shape, dtype=np.float32)  # (drawn for both: the same holes)
        d = depth * (1 + np.float32(0.02) * noise) if kind == "sensor" else depth.copy()
        holes = gaussian((rng.random(depth.shape, dtype=np.float32) < 0.002).astype(np.float32), 1.0) > 0.05
        step = np.abs(np.diff(np.log(depth), axis=1)) > 0.05        # between x and x + 1
        shadow = np.zeros(depth.shape, bool)
        for k in range(4):                                           # the 4 px left of each step
            shadow[:, :step.shape[1] - k] |= step[:, k:]
        d[holes | shadow] = np.nan
        return d, alpha
    raise ValueError(f"unknown input kind {kind!r}: expected one of {INPUTS}")


# ---------------------------------------------------------------- worker (fresh process)

def _record_filter_calls():
    """Wrap every function of synthdof._core (refine calls several: the edge-aware fill, the
    guided upsampling, the side continuation, ...) so that each call's seconds are recorded;
    returns (calls list, restore function). Calls nested in a wrapped call are not counted twice."""
    from synthdof import _core
    inner = {name: f for name, f in vars(_core).items() if callable(f) and not isinstance(f, type)}
    calls, depth = [], [0]

    def wrap(name, f):
        def timed(*args, **kwargs):
            depth[0] += 1
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    calls.append(dict(name=name, s=time.perf_counter() - t))
        return timed

    for name, f in inner.items():
        setattr(_core, name, wrap(name, f))

    def restore():
        for name, f in inner.items():
            setattr(_core, name, f)
    return calls, restore


def _worker(payload):
    import synthdof
    nt, repeats, kind = payload["threads"], payload["repeats"], payload["input"]
    edge_width = payload.get("edge_width", "auto")
    s = scene.load_scene_dir(payload["scene"])
    img, lens, ap = s["image"], s["lens"], s["aperture"]
    depth, matte = degraded_inputs(s["depth"], s["matte"], kind)
    del s
    refine = lambda: synthdof.refine(img, depth, matte=matte, edge_width=edge_width, num_threads=nt)
    if payload.get("cpu"):  # --against: CPU and wall seconds of each call, back to back
        refine()
        cpu, wall = [], []
        for _ in range(repeats):
            c, t = time.process_time(), time.perf_counter()
            refine()
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - t)
        print(json.dumps(dict(input=kind, threads=nt, cpu=cpu, wall=wall, package=os.path.dirname(synthdof.__file__),
                              core=synthdof._core.__file__)))
        return

    benchlib.wait_quiet()
    calls, restore = _record_filter_calls()
    t = time.perf_counter()
    d, m = refine()
    first = time.perf_counter() - t
    restore()
    c_s = None if calls is None else sum(c["s"] for c in calls)
    ok = bool(np.isfinite(d).all() and (d > 0).all())
    t_refine = benchlib.timeit(refine, repeats, warmup=0)
    res = dict(input=kind, threads=nt, edge_width=edge_width, depth_shape=list(depth.shape),
               first_s=first, median_s=t_refine["median"], min_s=t_refine["min"], times=t_refine["times"],
               foreign_load=t_refine["foreign_load"], filter_s=c_s, filter_calls=None if calls is None else len(calls),
               numpy_s=None if c_s is None else first - c_s, filter_call_list=calls, finite_positive=ok)
    if payload.get("render", True):
        render = lambda: synthdof.render(img, d, matte=m, lens=lens, aperture=ap, num_threads=nt)
        t_render = benchlib.timeit(render, repeats, warmup=1)
        res.update(render_median_s=t_render["median"], render_foreign_load=t_render["foreign_load"],
                   refine_render_s=t_refine["median"] + t_render["median"])
    print(json.dumps(res))


def profile(size, kind, nt, top=25):
    """cProfile of one refine call (after a warm-up call) on the given input."""
    import synthdof
    W, H = size
    s = scene.cached_scene(W, H)
    depth, matte = degraded_inputs(s["depth"], s["matte"], kind)
    synthdof.refine(s["image"], depth, matte=matte, num_threads=nt)
    pr = cProfile.Profile()
    pr.enable()
    synthdof.refine(s["image"], depth, matte=matte, num_threads=nt)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


# ---------------------------------------------------------------- against another build

def compare(against, size=scene.FULL_SIZE, repeats=3, threads=THREADS, rounds=2, verbose=True):
    """This installation against the synthdof package in the directory `against` (for example
    `pip install --no-deps --target DIR .` of another commit), in alternating fresh processes:
    under other load the ratio of the two is steadier than either time. Per input and thread
    count: the minimum CPU seconds (all threads) and wall seconds of a refine call for each."""
    W, H = size
    sdir = scene.cached_scene(W, H)["dir"]
    rows = []
    for nt in threads:
        for kind in INPUTS:
            runs = {"this": [], "against": []}
            for _ in range(rounds):
                for name, env in (("against", {benchlib.PACKAGE_DIR_ENV: os.path.abspath(against)}), ("this", None)):
                    r = benchlib.run_worker("bench_refine.py", dict(input=kind, threads=nt, repeats=repeats, cpu=True,
                                                                    scene=sdir), timeout=3600, env=env)
                    # the package and its compiled core both from the build asked for (an editable
                    # install's core lives in its build directory, outside the package)
                    for what in ("package", "core"):
                        inside = os.path.commonpath([r[what], os.path.abspath(against)]) == os.path.abspath(against)
                        if inside != (name == "against"):
                            raise RuntimeError(f"the {name!r} worker imported synthdof's {what} from {r[what]}")
                    runs[name].append(r)
            best = {k: (min(c for r in v for c in r["cpu"]), min(t for r in v for t in r["wall"]))
                    for k, v in runs.items()}
            row = dict(input=kind, threads=nt, cpu_against=best["against"][0], cpu_this=best["this"][0],
                       wall_against=best["against"][1], wall_this=best["this"][1],
                       cpu_ratio=best["this"][0] / best["against"][0], wall_ratio=best["this"][1] / best["against"][1])
            rows.append(row)
            if verbose:
                print(f"  {kind} threads={nt}: CPU {row['cpu_against']:.3f} -> {row['cpu_this']:.3f} s "
                      f"({row['cpu_ratio']:.2f}), wall {row['wall_against']:.3f} -> {row['wall_this']:.3f} s "
                      f"({row['wall_ratio']:.2f}), load average {os.getloadavg()[0]:.1f}", flush=True)
    return dict(benchmark="refine-against", against=os.path.abspath(against), size=[W, H], repeats=repeats,
                rounds=rounds, rows=rows, loadavg_at_end=os.getloadavg())


# ---------------------------------------------------------------- driver

def run(size=scene.FULL_SIZE, repeats=5, threads=THREADS, edge_widths=EDGE_WIDTHS, verbose=True):
    W, H = size
    machine = benchlib.machine()  # the load average at the start
    t = time.perf_counter()
    sdir = scene.cached_scene(W, H)["dir"]
    if verbose:
        print(f"scene {W}x{H} ready ({time.perf_counter() - t:.1f} s), load average {os.getloadavg()[0]:.1f}",
              flush=True)

    def job(**kw):
        r = benchlib.run_worker("bench_refine.py", dict(kw, scene=sdir, repeats=repeats), timeout=3600)
        if verbose:
            print(f"  {r['input']} edge_width={r['edge_width']} threads={r['threads']}: refine median "
                  f"{r['median_s']:.3f} s (min {r['min_s']:.3f}, first {r['first_s']:.3f}; C core "
                  f"{r['filter_s'] or float('nan'):.3f} s in {r['filter_calls']} calls), render "
                  f"{r.get('render_median_s', float('nan')):.3f} s, other load {r['foreign_load']:.0%}", flush=True)
        return r

    rows = [job(input=kind, threads=nt) for nt in threads for kind in INPUTS]
    nt_max = max(threads)
    sweep = [r for r in rows if r["input"] == "net" and r["threads"] == nt_max and r["edge_width"] == "auto"]
    sweep += [job(input="net", threads=nt_max, edge_width=e, render=False) for e in edge_widths if e != "auto"]
    by_width = {r["edge_width"]: r["median_s"] for r in sweep}
    by = {(r["input"], r["threads"]): r["median_s"] for r in rows}
    derived = dict(
        radius_ratio=(dict(lo=min(w for w in by_width if w != "auto"), hi=max(w for w in by_width if w != "auto"),
                           threads=nt_max) if len(by_width) > 2 else None),
        thread_speedup=({k: by[k, min(threads)] / by[k, nt_max] for k in INPUTS} if len(threads) > 1 else {}),
        target_s=TARGET_S,
        over_target={k: by[k, nt_max] / TARGET_S for k in INPUTS},
    )
    if derived["radius_ratio"]:
        rr = derived["radius_ratio"]
        rr["ratio"] = by_width[rr["hi"]] / by_width[rr["lo"]]
    return dict(benchmark="refine", size=[W, H], repeats=repeats, rows=rows, sweep=sweep, derived=derived,
                machine=machine, loadavg_at_end=os.getloadavg())


def report(res):
    W, H = res["size"]
    cols = [("input", "input", "{}"), ("depth_shape", "depth WxH", "{}"), ("threads", "threads", "{}"),
            ("median_s", "refine s", "{:.3f}"), ("min_s", "min s", "{:.3f}"),
            ("filter_s", "C core s", "{:.3f}"), ("filter_calls", "calls", "{}"), ("numpy_s", "NumPy s", "{:.3f}"),
            ("render_median_s", "render s", "{:.3f}"), ("refine_render_s", "refine+render s", "{:.3f}"),
            ("foreign_load", "other load", "{:.0%}")]
    shape = lambda r: dict(r, depth_shape="x".join(str(v) for v in r["depth_shape"][::-1]))
    print(f"\nsynthdof.refine on the synthetic scene {W}x{H}, median of {res['repeats']} "
          f"(C core / Python and NumPy split from the first call)")
    print(benchlib.table([shape(r) for r in res["rows"]], cols))
    print(f"\nfilter radius (net input, {max(r['threads'] for r in res['rows'])} threads)")
    print(benchlib.table(res["sweep"], [("edge_width", "edge_width", "{}"), ("median_s", "refine s", "{:.3f}"),
                                        ("filter_s", "C core s", "{:.3f}"), ("numpy_s", "NumPy s", "{:.3f}"),
                                        ("foreign_load", "other load", "{:.0%}")]))
    d = res["derived"]
    if d["radius_ratio"]:
        rr = d["radius_ratio"]
        print(f"radius independence: time(edge_width {rr['hi']}) / time(edge_width {rr['lo']}): {rr['ratio']:.2f}")
    for k, v in d["thread_speedup"].items():
        print(f"thread speed-up {k}: {v:.2f}")
    for k, v in d["over_target"].items():
        print(f"{k}: {v:.1f}x the {d['target_s']} s target")
    la = lambda v: "/".join(f"{x:.1f}" for x in v) if v else "?"
    print(f"load average (1/5/15 min) at start {la(res['machine'].get('loadavg_at_start'))}, "
          f"at end {la(res.get('loadavg_at_end'))}")


def main(argv=None):
    p = argparse.ArgumentParser(description="Time synthdof.refine on the 12 MP scene with degraded depth.")
    p.add_argument("--size", type=scene.parse_size, default=scene.FULL_SIZE, help="WxH (default 4032x3024)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    p.add_argument("--profile", choices=INPUTS, help="print a cProfile of one refine call on this input and stop")
    p.add_argument("--against", metavar="DIR", help="time this installation against the synthdof package in DIR "
                   "(alternating processes; CPU and wall seconds per call)")
    p.add_argument("--json", default=f"{benchlib.RESULTS}/refine.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        _worker(json.loads(a.worker))
        return 0
    if a.profile:
        profile(a.size, a.profile, max(a.threads))
        return 0
    if a.against:
        res = compare(a.against, a.size, a.repeats, threads=tuple(a.threads))
        benchlib.write_json(a.json.replace(".json", "_against.json"), res)
        return 0
    res = run(a.size, a.repeats, threads=tuple(a.threads))
    report(res)
    benchlib.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
