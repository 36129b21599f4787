"""Time synthdof.scatter at uniform CoC: is the cost independent of the blur radius?

On a 12 MP (4032x3024) RGB float32 image (random texture + a few hundred bright points) at
uniform CoC 10, 50 and 100 px, disk and hexagon apertures, 1 and 2 threads. Reports the median
and minimum of the repeats per configuration, time(100)/time(10) per aperture and thread count
(radius independence: should stay well under 2), and the speed-up from 1 to 2 threads.

    python benchmarks/bench_scatter.py                       # full size, 5 repeats
    python benchmarks/bench_scatter.py --size 640x480 --repeats 2   # smoke check
"""
import argparse
import sys

import numpy as np

import benchlib
import scene
import synthdof

COCS = (10.0, 50.0, 100.0)
APERTURES = {"disk": dict(blades=0), "hexagon": dict(blades=6)}
THREADS = (1, 2)


def test_image(width, height, seed=0, n_points=300):
    """Random colour texture (linear, ~0.05-0.6) plus `n_points` single-pixel lights of 10-50."""
    rng = np.random.default_rng(seed)
    img = scene.texture(height, width, rng, base=(0.3, 0.3, 0.3), cell=max(8.0, width / 40.0),
                        checker=max(2, width // 64))
    ys = rng.integers(0, height, n_points)
    xs = rng.integers(0, width, n_points)
    img[ys, xs] = rng.uniform(10.0, 50.0, (n_points, 1)) * rng.uniform(0.6, 1.0, (n_points, 3))
    return np.ascontiguousarray(img, dtype=np.float32)


def run(size=scene.FULL_SIZE, repeats=5, cocs=COCS, threads=THREADS, apertures=APERTURES, verbose=True):
    W, H = size
    img = test_image(W, H)
    out = np.empty_like(img)
    rows = []
    for ap_name, ap_kw in apertures.items():
        ap = synthdof.Aperture(**ap_kw)
        for nt in threads:
            for c in cocs:
                coc = np.full((H, W), c, np.float32)
                t = benchlib.timeit(lambda: synthdof.scatter(img, coc, aperture=ap, out=out, num_threads=nt),
                                    repeats)
                # sanity: energy is preserved (mirror borders fold light back in)
                rel = abs(float(out.sum(dtype=np.float64)) / float(img.sum(dtype=np.float64)) - 1.0)
                row = dict(aperture=ap_name, threads=nt, coc=c, median_s=t["median"], min_s=t["min"],
                           mpix_per_s=W * H / 1e6 / t["median"], flux_error=rel, times=t["times"],
                           foreign_load=t["foreign_load"])
                rows.append(row)
                if verbose:
                    print(f"  {ap_name:8s} threads={nt} coc={c:5.0f}: median {t['median']:.3f} s "
                          f"(min {t['min']:.3f})", flush=True)
    # derived numbers
    by = {(r["aperture"], r["threads"], r["coc"]): r for r in rows}
    lo, hi = min(cocs), max(cocs)
    ratios, speedups = [], []
    for ap_name in apertures:
        for nt in threads:
            ratios.append(dict(aperture=ap_name, threads=nt,
                               ratio=by[ap_name, nt, hi]["median_s"] / by[ap_name, nt, lo]["median_s"],
                               ratio_min=by[ap_name, nt, hi]["min_s"] / by[ap_name, nt, lo]["min_s"]))
        if len(threads) > 1:
            t1, tn = min(threads), max(threads)
            for c in cocs:
                speedups.append(dict(aperture=ap_name, coc=c, threads=tn,
                                     speedup=by[ap_name, t1, c]["median_s"] / by[ap_name, tn, c]["median_s"],
                                     speedup_min=by[ap_name, t1, c]["min_s"] / by[ap_name, tn, c]["min_s"]))
    return dict(benchmark="scatter", size=[W, H], repeats=repeats, rows=rows,
                radius_ratio=dict(hi=hi, lo=lo, rows=ratios), thread_speedup=speedups,
                machine=benchlib.machine())


def report(res):
    W, H = res["size"]
    lo, hi = res["radius_ratio"]["lo"], res["radius_ratio"]["hi"]
    print(f"\nsynthdof.scatter, {W}x{H} RGB float32, uniform CoC, median of {res['repeats']} (min)")
    print("(other load: share of the cores that other processes used during the timed calls)")
    print(benchlib.table(res["rows"], [
        ("aperture", "aperture", "{}"), ("threads", "threads", "{}"), ("coc", "CoC px", "{:.0f}"),
        ("median_s", "median s", "{:.3f}"), ("min_s", "min s", "{:.3f}"), ("mpix_per_s", "MP/s", "{:.1f}"),
        ("flux_error", "|flux-1|", "{:.1e}"), ("foreign_load", "other load", "{:.0%}")]))
    print(f"\nradius independence: time(CoC {hi:.0f}) / time(CoC {lo:.0f})")
    print(benchlib.table(res["radius_ratio"]["rows"], [
        ("aperture", "aperture", "{}"), ("threads", "threads", "{}"), ("ratio", "of medians", "{:.2f}"),
        ("ratio_min", "of minima", "{:.2f}")]))
    if res["thread_speedup"]:
        print("\nthread speed-up: time(1 thread) / time(2 threads)")
        print(benchlib.table(res["thread_speedup"], [
            ("aperture", "aperture", "{}"), ("coc", "CoC px", "{:.0f}"), ("speedup", "of medians", "{:.2f}"),
            ("speedup_min", "of minima", "{:.2f}")]))


def main(argv=None):
    p = argparse.ArgumentParser(description="Time synthdof.scatter at uniform CoC 10/50/100 px.")
    p.add_argument("--size", type=scene.parse_size, default=scene.FULL_SIZE, help="WxH (default 4032x3024)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=f"{benchlib.RESULTS}/scatter.json")
    a = p.parse_args(argv)
    res = run(a.size, a.repeats)
    report(res)
    benchlib.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
