"""Bit-identity check for refactors: renders a fixed set of scenes and compares SHA-256 hashes of
the outputs with a stored reference.

    python benchmarks/check_identical.py --record    # on the commit before the change
    python benchmarks/check_identical.py             # after it: exit 1 on any difference

Cases (each with 1 and 2 threads; a difference between the two is reported as well):
- scene12        the 12 MP benchmark scene (benchmarks/scene.py): image, depth, matte, lens,
                 hexagonal aperture
- gt_<name>      the ground-truth scenes (synthdof.load_ground_truth), rendered as
                 score_gt.py renders them
- smooth12       the 12 MP scene with its depth blurred (continuous depth, no steps), no matte
- scene12_<kind> the 12 MP scene with the continuous depths of bench_render.py (scene.depth_variant:
                 slant, net, noise), matte and hexagonal aperture as scene12
- coc_u8         a 1 MP scene from a signed CoC map with uint8 input and a background plate
- scatter/gather the two public kernels on the 1 MP scene (5 blades: asymmetric shape)
- diagnose, compare, fit_lens   the diagnostics on a small scene (their maps and numbers)
- refine12_<input>  synthdof.refine on the 12 MP scene's degraded depth and matte: net, eighth
                 and sensor as benchmarks/bench_refine.py makes them, lowres as score_gt.py does
- refine_<scene>_<recipe>  synthdof.refine on each ground-truth scene's net, lowres and sensor
                 inputs (score_gt.py --inputs)

    python benchmarks/check_identical.py --only refine   # the cases whose name starts so

The hashes are of the exact bytes of the outputs, so they hold for one machine and compiler:
record the reference on the same machine with the unchanged code first. The reference goes to
benchmarks/results/identical.json unless --ref says otherwise.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# the thread counts as asked even on a busy machine (by default fewer run beside busy processes)
os.environ.setdefault("OMP_DYNAMIC", "false")

import synthdof  # noqa: E402
from benchlib import RESULTS, gt_scenes  # noqa: E402
from scene import cached_scene, depth_variant, make_scene  # noqa: E402

THREADS = (1, 2)
# Depth blur for the continuous-depth case: wide enough that no depth step survives.
SMOOTH_SIGMA_PX = 12.0


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def digest_obj(obj):
    """Hash of arrays and numbers nested in dicts/lists (diagnostics results)."""
    h = hashlib.sha256()

    def walk(x):
        if isinstance(x, dict):
            for k in sorted(x):
                h.update(repr(k).encode())
                walk(x[k])
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif isinstance(x, np.ndarray):
            h.update(digest(x).encode())
        elif isinstance(x, (float, np.floating)):
            h.update(np.float64(x).tobytes())
        else:
            h.update(repr(x).encode())
    walk(obj)
    return h.hexdigest()


def blur(depth, sigma):
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(depth.astype(np.float32), sigma, mode="nearest").astype(np.float32)


def refine_cases(s):
    """Yield (name, function of num_threads returning a hash) for synthdof.refine."""
    import score_gt
    from bench_refine import degraded_inputs
    inputs = {k: degraded_inputs(s["depth"], s["matte"], k) for k in ("net", "eighth", "sensor")}
    inputs["lowres"] = score_gt.realistic_inputs(dict(depth=s["depth"], alpha=s["matte"]), "lowres")
    for kind, (depth, matte) in inputs.items():
        yield f"refine12_{kind}", (lambda depth=depth, matte=matte: lambda nt: digest(*synthdof.refine(
            s["image"], depth, matte=matte, num_threads=nt)))()
    for score, name, g, _meta, _lens, _ap in gt_scenes():
        for recipe in ("net", "lowres", "sensor"):
            depth, matte = score.realistic_inputs(g, recipe)
            yield f"refine_{name}_{recipe}", (lambda g=g, depth=depth, matte=matte: lambda nt: digest(
                *synthdof.refine(g["pinhole"], depth, matte=matte, num_threads=nt)))()


def cases(quick, only=""):
    """Yield (name, function of num_threads returning a hash)."""
    s = cached_scene() if not quick else cached_scene(1008, 756)
    yield from refine_cases(s)
    if only.startswith("refine"):
        return  # the rest would be prepared for nothing
    yield "scene12", lambda nt: digest(synthdof.render(
        s["image"], s["depth"], matte=s["matte"], lens=s["lens"], aperture=s["aperture"], num_threads=nt))
    for kind in ("slant", "net", "noise"):
        depth = depth_variant(s["depth"], kind)
        yield f"scene12_{kind}", (lambda depth=depth: lambda nt: digest(synthdof.render(
            s["image"], depth, matte=s["matte"], lens=s["lens"], aperture=s["aperture"], num_threads=nt)))()
    smooth = blur(s["depth"], SMOOTH_SIGMA_PX)
    yield "smooth12", lambda nt: digest(synthdof.render(
        s["image"], smooth, lens=s["lens"], aperture=s["aperture"], num_threads=nt))
    for _score, name, g, _meta, lens, ap in gt_scenes():
        yield f"gt_{name}", (lambda g=g, lens=lens, ap=ap: lambda nt: digest(synthdof.render(
            g["pinhole"], g["depth"], matte=g["alpha"], lens=lens, aperture=ap, num_threads=nt)))()

    m = make_scene(1152, 864, seed=3, blades=5)
    u8 = (np.clip(synthdof.linear_to_srgb(m["image"]), 0, 1) * 255 + 0.5).astype(np.uint8)
    plate = np.ascontiguousarray(m["image"][::-1])
    yield "coc_u8", lambda nt: digest(synthdof.render(
        u8, coc=m["coc"], matte=m["matte"], aperture=m["aperture"], background=plate, num_threads=nt))
    yield "scatter", lambda nt: digest(synthdof.scatter(m["image"], m["coc"], aperture=m["aperture"],
                                                        num_threads=nt))
    yield "gather", lambda nt: digest(synthdof.gather(m["image"], m["coc"], aperture=m["aperture"],
                                                      num_threads=nt))

    d = make_scene(384, 288, seed=5)
    ren = synthdof.render(d["image"], d["depth"], matte=d["matte"], lens=d["lens"], aperture=d["aperture"])
    ref = synthdof.render(d["image"], d["depth"], matte=d["matte"], lens=d["lens"],
                          aperture=synthdof.Aperture(blades=5))

    def diag(nt):
        r = synthdof.diagnose(d["image"], ren, depth=d["depth"], matte=d["matte"], lens=d["lens"],
                              aperture=d["aperture"])
        return digest_obj([r.scores, r.maps, r.details, r.skipped])
    yield "diagnose", diag
    yield "compare", lambda nt: digest_obj(synthdof.compare(ren, ref, matte=d["matte"], coc=d["coc"]))

    def fit(nt):
        r = synthdof.fit_lens(d["image"], d["depth"], ref, matte=d["matte"])
        return digest_obj(r if isinstance(r, dict) else vars(r))
    yield "fit_lens", fit


def run(quick, only=""):
    out = {}
    for name, fn in cases(quick, only):
        if not name.startswith(only):
            continue
        for nt in THREADS:
            t = time.perf_counter()
            out[f"{name}/t{nt}"] = fn(nt)
            print(f"  {name:10s} threads={nt}  {out[f'{name}/t{nt}'][:16]}  ({time.perf_counter() - t:.1f} s)",
                  flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", action="store_true", help="store the hashes as the reference")
    ap.add_argument("--ref", default=os.path.join(RESULTS, "identical.json"), help="reference file")
    ap.add_argument("--quick", action="store_true", help="a 1 MP benchmark scene instead of 12 MP")
    ap.add_argument("--only", default="", metavar="PREFIX",
                    help="only the cases whose name starts with PREFIX (e.g. refine, gt_)")
    a = ap.parse_args(argv)
    if a.quick:
        a.ref = a.ref.replace(".json", "_quick.json")
    print(f"synthdof {synthdof._core.__file__} (OpenMP {synthdof.openmp_enabled()})")
    got = run(a.quick, a.only)
    bad = [k for k in got if k.endswith("/t2") and got[k] != got[k[:-1] + "1"]]
    for k in bad:
        print(f"THREADS DIFFER: {k[:-3]} (1 vs 2 threads)")
    if a.record:
        os.makedirs(os.path.dirname(a.ref), exist_ok=True)
        if a.only and os.path.exists(a.ref):  # keep the other cases' hashes
            with open(a.ref) as f:
                got = {**json.load(f), **got}
        with open(a.ref, "w") as f:
            json.dump(got, f, indent=1, sort_keys=True)
        print(f"recorded {len(got)} hashes in {a.ref}")
        return 1 if bad else 0
    with open(a.ref) as f:
        want = {k: v for k, v in json.load(f).items() if k.startswith(a.only)}
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    for k in diff:
        print(f"DIFFERS: {k}  reference {str(want.get(k))[:16]}  now {str(got.get(k))[:16]}")
    n = len(got)
    print(f"{n - len(diff)}/{n} hashes identical to {a.ref}" + ("" if diff or bad else ": output bit-identical"))
    return 1 if diff or bad else 0


if __name__ == "__main__":
    sys.exit(main())
