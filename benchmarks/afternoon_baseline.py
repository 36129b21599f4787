"""The "afternoon" peer: the straightforward layered FFT-convolution renderer anyone can write in
NumPy/SciPy in an afternoon, and the speed synthdof.render has to beat by a wide margin.

Algorithm: quantise the signed CoC into `n_layers` equal bins (default 20) between its minimum
and maximum; for each bin from the farthest (largest signed CoC) to the nearest, take the
pixels that fall in it as a premultiplied RGBA layer (colour x coverage, coverage), convolve it
(real FFTs, scipy.fft, mirror padding) with a disk or hexagon kernel whose diameter is the bin
centre's |CoC| (area-sampled, sum 1), and composite it over what lies behind it
(out = layer + (1 - layer alpha) out); finally divide by the accumulated alpha. No matte
handling, no hidden-background fill: the classic layered approach.

    python benchmarks/afternoon_baseline.py                     # 12 MP scene, vs synthdof.render
    python benchmarks/afternoon_baseline.py --size 1008x756 --repeats 1
    python benchmarks/afternoon_baseline.py --score-gt          # quality on the ground-truth scenes
"""
import argparse
import sys
import time

import numpy as np
import scipy.fft as sfft

import benchlib
import scene


def kernel(diameter, blades=0, rotation=0.0, supersample=5):
    """Area-sampled aperture of the given diameter (circumscribed circle for polygons), odd
    size, sum 1. Polygon vertices follow synthdof.Aperture's convention: angle
    rotation + pi/n + 2 pi k/n, counter-clockwise with image y pointing up."""
    r = max(float(diameter), 1e-3) / 2.0
    n = 2 * int(np.ceil(r + 0.5)) + 1
    c = (n - 1) / 2.0
    s = (np.arange(n * supersample) + 0.5) / supersample - 0.5 - c
    x, y = np.meshgrid(s, -s)                                  # y up
    if blades == 0:
        inside = x * x + y * y <= r * r
    else:
        inside = np.ones_like(x, dtype=bool)
        apothem = r * np.cos(np.pi / blades)
        for k in range(blades):
            # edge between vertices k and k+1: its outward normal is at the mid angle
            phi = rotation + np.pi / blades + 2 * np.pi * (k + 0.5) / blades
            inside &= x * np.cos(phi) + y * np.sin(phi) <= apothem
    k = inside.reshape(n, supersample, n, supersample).mean((1, 3))
    if k.sum() == 0:
        k[n // 2, n // 2] = 1.0
    return (k / k.sum()).astype(np.float32)


def render(image, coc, *, blades=0, rotation=0.0, n_layers=20, workers=1):
    """Layered FFT depth of field. image (H, W, 3) float32 linear, coc (H, W) signed diameter px."""
    img = np.asarray(image, np.float32)
    coc = np.asarray(coc, np.float32)
    H, W = coc.shape
    lo, hi = float(coc.min()), float(coc.max())
    edges = np.linspace(lo, hi, n_layers + 1)
    idx = np.clip(np.searchsorted(edges, coc, side="right") - 1, 0, n_layers - 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    pad = int(np.ceil(max(abs(lo), abs(hi)) / 2.0)) + 2
    shape = (sfft.next_fast_len(H + 2 * pad, real=True), sfft.next_fast_len(W + 2 * pad, real=True))
    acc = np.zeros((H, W, 4), np.float32)                        # premultiplied RGB + alpha
    layer = np.empty((4, H, W), np.float32)
    for li in np.argsort(-centres):                              # far (large signed CoC) to near
        m = idx == li
        if not m.any():
            continue
        mf = m.astype(np.float32)
        layer[:3] = np.moveaxis(img, 2, 0) * mf
        layer[3] = mf
        d = abs(float(centres[li]))
        if d < 1.0:                                              # in focus: no blur
            blurred = layer
        else:
            k = kernel(d, blades, rotation + (np.pi if centres[li] < 0 else 0.0))
            kr = k.shape[0] // 2
            buf = np.zeros((4,) + shape, np.float32)
            buf[:, :H + 2 * pad, :W + 2 * pad] = np.pad(layer, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
            kp = np.zeros(shape, np.float32)
            kp[:k.shape[0], :k.shape[1]] = k
            kp = np.roll(kp, (-kr, -kr), axis=(0, 1))                # centre the kernel at the origin
            F = sfft.rfft2(buf, axes=(1, 2), workers=workers)
            F *= sfft.rfft2(kp, workers=workers)[None]
            blurred = sfft.irfft2(F, s=shape, axes=(1, 2), workers=workers)[:, pad:pad + H, pad:pad + W]
        a = blurred[3][:, :, None]
        acc *= 1.0 - np.clip(a, 0.0, 1.0)
        acc += np.moveaxis(blurred, 0, 2)
    alpha = np.maximum(acc[:, :, 3:4], 1e-6)
    return (acc[:, :, :3] / alpha).astype(np.float32)


# ---------------------------------------------------------------- benchmark

def run(size=scene.FULL_SIZE, repeats=3, threads=(1, 2), n_layers=20, synthdof_repeats=5, verbose=True):
    import synthdof
    W, H = size
    s = scene.cached_scene(W, H)
    img, coc, ap = s["image"], s["coc"], s["aperture"]
    rows = []
    for nt in threads:
        t = benchlib.timeit(lambda: render(img, coc, blades=ap.blades, rotation=ap.rotation,
                                           n_layers=n_layers, workers=nt), repeats, warmup=0)
        rows.append(dict(method="afternoon (layered FFT)", threads=nt, median_s=t["median"], min_s=t["min"],
                         repeats=repeats, foreign_load=t["foreign_load"]))
        if verbose:
            print(f"  afternoon threads={nt}: median {t['median']:.2f} s (min {t['min']:.2f}, {repeats} runs)",
                  flush=True)
        rec = benchlib.recorded_render_time([W, H], nt)
        if rec is not None:  # measured by bench_render.py with the installed core
            t2 = dict(median=rec, min=None, foreign_load=None)
        else:
            t2 = benchlib.timeit(lambda: synthdof.render(img, s["depth"], matte=s["matte"], lens=s["lens"],
                                                         aperture=ap, num_threads=nt), synthdof_repeats)
        rows.append(dict(method="synthdof.render" + (" (render.json)" if rec is not None else ""), threads=nt,
                         median_s=t2["median"], min_s=t2["min"], repeats=synthdof_repeats if rec is None else None,
                         foreign_load=t2["foreign_load"]))
        if verbose:
            where = "from render.json" if rec is not None else f"min {t2['min']:.2f}"
            print(f"  synthdof.render threads={nt}: median {t2['median']:.2f} s ({where})", flush=True)
    speed = {nt: rows[2 * i]["median_s"] / rows[2 * i + 1]["median_s"] for i, nt in enumerate(threads)}
    return dict(benchmark="afternoon", size=[W, H], n_layers=n_layers, max_coc=s["meta"]["max_coc"],
                rows=rows, synthdof_speedup=speed, machine=benchlib.machine())


def score_gt(n_layers=20, workers=2):
    """Quality of the afternoon renderer against the Cycles ground truth, with score_gt.py's metrics."""
    rows = []
    for score, name, g, m, lens, _ in benchlib.gt_scenes():
        coc = lens.coc(g["depth"])
        t = time.perf_counter()
        out = render(g["pinhole"], coc, blades=m["aperture_blades"], rotation=m["aperture_rotation_rad"],
                     n_layers=n_layers, workers=workers)
        dt = time.perf_counter() - t
        for method, o, sec in (("afternoon", out, dt),
                               ("blender_defocus", g["blender_defocus"], m.get("t_blender_defocus_s")),
                               ("synthdof", score.render_synthdof(g, m), None)):
            r = score.metrics(o, g, m)
            rows.append(dict(scene=name, method=method, seconds=sec, **r))
    return rows


def report(res):
    W, H = res["size"]
    print(f"\nafternoon peer vs synthdof.render, {W}x{H} scene, max |CoC| {res['max_coc']:.0f} px, "
          f"{res['n_layers']} layers")
    print(benchlib.table(res["rows"], [("method", "method", "{}"), ("threads", "threads", "{}"),
                                       ("repeats", "runs", "{}"), ("median_s", "median s", "{:.2f}"),
                                       ("min_s", "min s", "{:.2f}"), ("foreign_load", "other load", "{:.0%}")]))
    for nt, v in res["synthdof_speedup"].items():
        print(f"synthdof.render is {v:.1f}x faster than the afternoon peer ({nt} thread{'s' if int(nt) > 1 else ''})")


def main(argv=None):
    p = argparse.ArgumentParser(description="Layered FFT baseline renderer, timed against synthdof.render.")
    p.add_argument("--size", type=scene.parse_size, default=scene.FULL_SIZE, help="WxH (default 4032x3024)")
    p.add_argument("--repeats", type=int, default=3, help="runs of the (slow) baseline (default 3)")
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--json", default=f"{benchlib.RESULTS}/afternoon.json")
    p.add_argument("--score-gt", action="store_true", help="only score quality on the ground-truth scenes")
    a = p.parse_args(argv)
    if a.score_gt:
        rows = score_gt(a.layers)
        print(benchlib.table(rows, [("scene", "scene", "{}"), ("method", "method", "{}"), ("psnr", "psnr", "{:.2f}"),
                                    ("band", "band", "{:.2f}"), ("far", "far", "{:.2f}"), ("flux", "flux", "{:.3f}"),
                                    ("hl_peak", "hl_peak", "{:.3f}"), ("seconds", "sec", "{:.2f}")]))
        benchlib.write_json(a.json.replace(".json", "_gt_quality.json"),
                            dict(benchmark="afternoon_gt_quality", rows=rows))
        return 0
    res = run(a.size, a.repeats, n_layers=a.layers)
    report(res)
    benchlib.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
