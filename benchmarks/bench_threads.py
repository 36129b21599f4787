"""2 threads against 1 with and without one competing busy process (the normal case on a laptop
or next to another worker): synthdof.render on the scene's exact planes, 1 and 2 threads
alternating in one process, median of `--repeats` each.

Each policy runs in a fresh process (OpenMP reads it when it loads): the package's default
(passive waiting, set by `import synthdof`, and fewer threads than asked while other processes
keep the cores busy), the same with the thread count as asked (OMP_DYNAMIC=false), and GNU
OpenMP's own default spin with the count as asked, for comparison.

    python benchmarks/bench_threads.py                    # 12 MP, 5 repeats
    python benchmarks/bench_threads.py --size 2016x1512 --repeats 3
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import benchlib
import scene

# GNU OpenMP's own default is a spin of 300 000 rounds; setting it explicitly keeps the package
# from choosing passive.
POLICIES = {"package default (passive, gives way)": {},
            "passive, count as asked (OMP_DYNAMIC=false)": {"OMP_DYNAMIC": "false"},
            "GNU default spin, count as asked": {"GOMP_SPINCOUNT": "300000", "OMP_DYNAMIC": "false"}}

CHOSEN = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_DYNAMIC")  # the policies' settings, not the caller's


def _worker(payload):
    import synthdof
    s = scene.load_scene_dir(payload["scene"])
    out = np.empty(s["image"].shape, np.float32)
    times = {1: [], 2: []}
    ran = []  # the threads a call asking for 2 would get just before each one asked for
    for r in range(payload["repeats"] + 1):
        for nt in (1, 2):
            if nt == 2 and r > 0:
                ran.append(synthdof._validate.threads_beside_others(2))
            t = time.perf_counter()
            synthdof.render(s["image"], s["depth"], matte=s["matte"], lens=s["lens"], aperture=s["aperture"],
                            num_threads=nt, out=out)
            if r > 0:
                times[nt].append(time.perf_counter() - t)
    print(json.dumps({**{str(nt): float(np.median(v)) for nt, v in times.items()}, "ran": float(np.mean(ran))}))


def run(size, repeats):
    sdir = scene.cached_scene(*size)["dir"]
    rows = []
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for name, env in POLICIES.items():
                cmd = [sys.executable, os.path.abspath(__file__), "--worker",
                       json.dumps(dict(scene=sdir, repeats=repeats))]
                base = {k: v for k, v in os.environ.items() if k not in CHOSEN}
                load0 = os.getloadavg()[0]
                r = subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, check=True)
                t = json.loads(r.stdout.strip().splitlines()[-1])
                rows.append(dict(busy="1 busy process" if busy else "none", policy=name, t1=t["1"], t2=t["2"],
                                 ratio=t["2"] / t["1"], ran=t["ran"], load=load0))
                print(f"  {rows[-1]['busy']:15s} {name:44s} 1 thread {t['1']:.3f} s, 2 threads {t['2']:.3f} s",
                      flush=True)
        finally:
            if hog:
                hog.kill()
                hog.wait()
    return dict(benchmark="threads", size=list(size), repeats=repeats, rows=rows, machine=benchlib.machine())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=scene.parse_size, default=scene.FULL_SIZE)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=f"{benchlib.RESULTS}/threads.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        _worker(json.loads(a.worker))
        return 0
    res = run(a.size, a.repeats)
    print(f"\nsynthdof.render {a.size[0]}x{a.size[1]}, exact planes: 2 threads against 1 (median of {a.repeats})")
    print(benchlib.table(res["rows"], [("busy", "competing", "{}"), ("policy", "waiting", "{}"),
                                      ("t1", "1 thread s", "{:.3f}"), ("t2", "2 threads s", "{:.3f}"),
                                      ("ratio", "2t / 1t", "{:.2f}"), ("ran", "threads run for 2", "{:.1f}"),
                                      ("load", "load avg", "{:.1f}")]))
    benchlib.write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
