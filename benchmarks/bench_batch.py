"""Frames per second of `synthdof batch` with --workers 1 against --workers 2 (and more).

Inputs: the synthetic scene (benchmarks/scene.py) at --size, written once as an 8-bit sRGB PNG,
a 16-bit depth PNG in millimetres and an 8-bit matte PNG, rendered --frames times with lenses
drawn from a fixed seed (8-bit PNG output, as a dataset run writes it). Each run is a fresh
`python -m synthdof batch` process into an empty folder; the runs of the worker counts alternate
(--rounds times), so that other load on the machine falls on each alike.

Throughput is taken from the moments the records appear in metadata.jsonl (polled every 20 ms):
(frames - 1) / (time of the last record - time of the first), which leaves out the start (Python,
Dask's cluster, the first load) that a long batch does not repeat. Also reported: the run's
total wall time and CPU seconds (all its processes).

What the package sets: --workers 1 renders in the batch process with all cores' threads (the
file writing overlaps the next render on a thread); --workers N > 1 starts N single-threaded
Dask worker processes and renders each task with cores / N threads, so the machine is never
oversubscribed.

    python benchmarks/bench_batch.py                        # 2016x1512, 12 frames, 2 rounds
    python benchmarks/bench_batch.py --size 4032x3024 --frames 8 --workers 1 2
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import benchlib
import scene


def write_inputs(folder, size, frames):
    import synthdof
    W, H = size
    s = scene.cached_scene(W, H)
    srgb = np.clip(synthdof.linear_to_srgb(s["image"]), 0, 1)
    synthdof.write_image(os.path.join(folder, "scene.png"), np.round(srgb * 255).astype(np.uint8))
    synthdof.write_image(os.path.join(folder, "scene_depth.png"),
                         np.round(np.clip(s["depth"] * 1000, 1, 65535)).astype(np.uint16))
    synthdof.write_image(os.path.join(folder, "scene_matte.png"), np.round(s["matte"] * 255).astype(np.uint8))
    cfg = {"inputs": [{"name": "scene", "image": "scene.png", "depth": "scene_depth.png",
                       "matte": "scene_matte.png", "depth_scale": 0.001}],
           "samples_per_input": frames, "seed": 13,
           "lens": {"focal_length_mm": 85, "f_number": {"log_uniform": [1.4, 4.0]}, "focus": "auto",
                    "blades": 6},
           "output": {"format": "png"}}
    path = os.path.join(folder, "batch.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def run_once(config, workers, frames):
    out = tempfile.mkdtemp(prefix="bench_batch_")
    records = os.path.join(out, "metadata.jsonl")
    cmd = [sys.executable, "-m", "synthdof", "batch", config, "-o", out, "--workers", str(workers), "--quiet"]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen, stamps = 0, []
    while proc.poll() is None:
        if os.path.exists(records):
            with open(records) as f:
                n = sum(1 for line in f if line.strip())
            stamps += [time.perf_counter() - t0] * (n - seen)
            seen = n
        time.sleep(0.02)
    total = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    err = proc.stderr.read().decode(errors="replace")
    with open(records) as f:
        n = sum(1 for line in f if line.strip())
    stamps += [total] * (n - seen)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0 or n != frames:
        raise SystemExit(f"batch --workers {workers} failed (exit {proc.returncode}, "
                         f"{n}/{frames} frames): {err[-500:]}")
    fps = (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else float("nan")
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return dict(workers=workers, frames=n, fps=fps, total_s=total, first_frame_s=stamps[0], cpu_s=cpu)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="2016x1512", help="WxH of the scene (default 2016x1512)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", default=os.path.join(benchlib.RESULTS, "batch.json"))
    a = ap.parse_args(argv)
    size = tuple(int(v) for v in a.size.lower().split("x"))
    machine = benchlib.machine()
    folder = tempfile.mkdtemp(prefix="bench_batch_inputs_")
    try:
        config = write_inputs(folder, size, a.frames)
        runs = []
        for r in range(a.rounds):
            for w in a.workers:
                res = run_once(config, w, a.frames)
                res.update(round=r, loadavg=os.getloadavg()[0])
                runs.append(res)
                print(f"  round {r} --workers {w}: {res['fps']:.3f} frames/s (total {res['total_s']:.1f} s, "
                      f"first frame at {res['first_frame_s']:.1f} s, CPU {res['cpu_s']:.1f} s), "
                      f"load average {res['loadavg']:.1f}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    best = {w: max(x["fps"] for x in runs if x["workers"] == w) for w in a.workers}
    base = best[a.workers[0]]
    rows = [dict(workers=w, fps=best[w], ratio=best[w] / base) for w in a.workers]
    print(f"\nsynthdof batch, {size[0]}x{size[1]}, {a.frames} frames, best of {a.rounds} rounds "
          f"(cores: {os.cpu_count()})")
    print(benchlib.table(rows, [("workers", "--workers", "{}"), ("fps", "frames/s", "{:.3f}"),
                                ("ratio", "/ first", "{:.2f}x")]))
    benchlib.write_json(a.json, dict(benchmark="batch", size=list(size), frames=a.frames, machine=machine,
                                     runs=runs, best_fps=best))


if __name__ == "__main__":
    main()
