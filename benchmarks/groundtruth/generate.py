#!/usr/bin/env python3
"""Render random thin-lens ground-truth scenes with Blender Cycles.

    python benchmarks/groundtruth/generate.py OUT_DIR --seeds 0-39 [--samples 256] [--size 384x256]
                                              [--mix natural|balanced] [--jobs 1] [--threads 0]
                                              [--no-peer] [--describe]

Each seed names one scene (scenes.describe); each scene is written as OUT_DIR/scene_<seed>.npz in
the format of ../shared/gt (see README.md beside this file). Seeds are given as a list and ranges:
`--seeds 0-9 42 100-104`. --mix names how often each kind of content is drawn (scenes.MIXES; a
seed names a different scene under each mix). --describe prints what each seed holds without rendering.

Blender: Debian's `blender` on PATH (run headless: blender -b), or else a Python that can
`import bpy` (PyPI's bpy). --jobs N runs N Blender processes side by side, each on its share of
the seeds; --threads sets Cycles' threads per process (0 = all cores).
"""
import argparse
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from scenes import MIXES, describe, summary  # noqa: E402


def parse_seeds(items):
    """['0-3', '7'] -> [0, 1, 2, 3, 7]"""
    out = []
    for it in items:
        a, _, b = it.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def blender_command(blender=None):
    """The command that runs render_scene.py: Blender headless, or a Python with bpy."""
    exe = blender or shutil.which("blender")
    script = os.path.join(HERE, "render_scene.py")
    if exe:
        return [exe, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "--python", script, "--"]
    try:
        import bpy  # noqa: F401
    except ImportError as e:
        raise SystemExit("no Blender found: install Debian's blender package (apt-get install blender "
                         "python3-numpy) or PyPI's bpy, or pass --blender PATH") from e
    return [sys.executable, script]


def render(out_dir, seeds, *, samples=256, pinhole_samples=64, size="384x256", jobs=1, threads=0,
           peer=True, blender=None, quiet=False, mix="natural"):
    """Render the scenes of seeds into out_dir (Blender subprocesses); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    base = blender_command(blender) + ["--out", os.path.abspath(out_dir), "--samples", str(samples),
                                       "--pinhole-samples", str(pinhole_samples), "--size", size,
                                       "--threads", str(threads), "--mix", mix] + ([] if peer else ["--no-peer"])
    env = dict(os.environ)
    if base[0] != sys.executable and os.path.realpath(base[0]).startswith("/usr/bin/"):
        # Debian's blender embeds Debian's Python (home /usr); without this, a Python found
        # first on PATH (pyenv, a virtualenv) becomes its home and numpy is not found
        env["PYTHONHOME"] = "/usr"
    procs = []
    for j in range(jobs):
        mine = seeds[j::jobs]
        if mine:
            procs.append(subprocess.Popen(base + ["--seeds"] + [str(s) for s in mine], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, env=env))

    def relay(p):
        # each process's output read as it comes (Blender prints a line per tile: an unread
        # pipe would fill and stall it)
        for line in p.stdout:
            if not quiet and (line.startswith("scene ") or "Traceback" in line
                              or ("Error" in line and "Not freed memory" not in line)):
                print(line.rstrip(), flush=True)

    readers = [threading.Thread(target=relay, args=(p,)) for p in procs]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    failed = any(p.wait() != 0 for p in procs)
    if failed:
        raise SystemExit("Blender failed (see the messages above)")
    return [os.path.join(out_dir, f"scene_{s:04d}.npz") for s in seeds]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="groundtruth_scenes")
    ap.add_argument("--seeds", nargs="+", default=["0-3"])
    ap.add_argument("--samples", type=int, default=256, help="thin-lens samples per pixel")
    ap.add_argument("--pinhole-samples", type=int, default=64, help="pinhole samples (anti-aliasing, matte)")
    ap.add_argument("--size", default="384x256", help="landscape WxH (portrait scenes swap it)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-peer", action="store_true", help="skip Blender's Defocus node (the peer)")
    ap.add_argument("--mix", default="natural", choices=sorted(MIXES), help="content frequencies (scenes.MIXES)")
    ap.add_argument("--blender", help="Blender executable (default: blender on PATH, else bpy)")
    ap.add_argument("--describe", action="store_true", help="print the scenes, render nothing")
    a = ap.parse_args()
    seeds = parse_seeds(a.seeds)
    w, h = (int(v) for v in a.size.split("x"))
    if a.describe:
        for s in seeds:
            print(f"{s:5d}  {summary(describe(s, w, h, a.mix))}")
        return
    t0 = time.perf_counter()
    render(a.out, seeds, samples=a.samples, pinhole_samples=a.pinhole_samples, size=a.size, jobs=a.jobs,
           threads=a.threads, peer=not a.no_peer, blender=a.blender, mix=a.mix)
    print(f"{len(seeds)} scenes in {time.perf_counter() - t0:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
