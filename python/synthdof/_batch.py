"""Dataset generation: a manifest of inputs x seeded lens samples, resumable, run in this process
or on a Dask cluster (`synthdof batch`, see docs/cli.md for the config format).

Each output is one task, identified by "<input name>_<sample index>". Its lens parameters are
drawn from a generator seeded with (seed, input name, sample index, parameter), so a task's
parameters depend neither on the order in which tasks run, nor on the other inputs, nor on
the other parameters' specs. A task is finished when its image exists and metadata.jsonl holds
its record; a rerun skips finished tasks and redoes the rest."""
import hashlib
import json
import math
import os
import re
import socket
import sys
import time
import zlib

import numpy as np

METADATA = "metadata.jsonl"

LENS_DEFAULTS = {"focal_length_mm": 50.0, "f_number": 2.0, "focus": "auto", "sensor_width_mm": 36.0,
                 "blades": 0, "rotation": 0.0, "model": "fixed_fov", "K": None}
# the order fixes each parameter's generator stream
_PARAMS = ("focal_length_mm", "f_number", "focus", "sensor_width_mm", "blades", "rotation", "K")
FORMATS = {"png": (".png", 8), "png16": (".png", 16), "tiff": (".tif", None), "exr": (".exr", None),
           "npy": (".npy", None)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class BatchError(ValueError):
    """A problem with the batch configuration or its inputs, reported without a traceback."""


# -- scene helpers shared with `synthdof render` ------------------------------------------------

def load_scene(image, depth, matte=None, *, depth_scale=None, disparity=False):
    """(image, depth-or-disparity map, matte or None) from files, checked for matching sizes."""
    from ._io import _read_depth, _read_image, _read_matte

    img = _read_image(image, 3, "image")
    d = _read_depth(depth, depth_scale, disparity, "depth")
    if d.shape != img.shape[:2]:
        raise ValueError(f"depth: {depth} is {d.shape[1]}x{d.shape[0]} pixels but the image {image} is "
                         f"{img.shape[1]}x{img.shape[0]}")
    m = None
    if matte is not None:
        m = _read_matte(matte, "matte")
        if m.shape != img.shape[:2]:
            raise ValueError(f"matte: {matte} is {m.shape[1]}x{m.shape[0]} pixels but the image {image} is "
                             f"{img.shape[1]}x{img.shape[0]}")
    return img, d, m


def _median_on_matte(d, matte):
    """Median disparity of the confidently matted pixels (matte-weighted if none reach 0.5)."""
    sel = matte >= 0.5
    if sel.any():
        return float(np.median(d[sel].astype(np.float64)))
    if not (matte > 0).any():
        raise ValueError("matte: is zero everywhere; nothing to focus on")
    v = d.astype(np.float64).ravel()
    w = matte.astype(np.float64).ravel()
    o = np.argsort(v)
    cw = np.cumsum(w[o])
    return float(v[o][np.searchsorted(cw, 0.5 * cw[-1])])


def scene_coc(depth, matte, params, *, disparity=False, disparity_scale=1.0):
    """Signed CoC map and the resolved focus for one lens parameter set.

    params: focal_length_mm, f_number, focus (metres or "auto"), sensor_width_mm, model, K.
    Depth mode: a ThinLens; focus "auto" = focus_from_matte. Disparity mode (d = S / z with
    S = disparity_scale): c = K (d_f - d) with K = ThinLens.coc_scale(W) / S unless given, and
    d_f = S / focus, or the median disparity on the matte for "auto".
    Returns (coc, lens or None, info dict)."""
    from ._lens import ThinLens, coc_from_disparity, focus_from_matte

    W = depth.shape[1]
    focus = params.get("focus", "auto")
    auto = isinstance(focus, str)
    if auto and focus != "auto":
        raise ValueError(f"focus: expected metres or 'auto', got {focus!r}")
    if auto and matte is None:
        raise ValueError("focus: 'auto' focuses on the subject matte; give a matte or a focus distance in metres")
    model = params.get("model", "fixed_fov")
    if not disparity:
        zf = focus_from_matte(depth, matte) if auto else float(focus)
        lens = ThinLens(params["focal_length_mm"], params["f_number"], zf, params["sensor_width_mm"], model=model)
        coc = lens.coc(depth, W)
        return coc, lens, {"focus_distance": zf}
    if model != "fixed_fov":
        raise ValueError("model: disparity input follows the fixed-field-of-view lens (c = K (d_f - d)); "
                         "use model 'fixed_fov'")
    S = float(disparity_scale)
    if not (S > 0 and math.isfinite(S)):
        raise ValueError(f"disparity_scale: must be finite and > 0, got {disparity_scale!r}")
    K = params.get("K")
    if K is None:
        K = ThinLens(params["focal_length_mm"], params["f_number"], 1.0, params["sensor_width_mm"]).coc_scale(W) / S
    fd = _median_on_matte(depth, matte) if auto else S / float(focus)
    coc = coc_from_disparity(depth, K=float(K), focus_disparity=fd)
    return coc, None, {"focus_disparity": fd, "K": float(K),
                       "focus_distance": (S / fd) if fd > 0 else float("inf")}


FLOAT_EXT = (".exr", ".tif", ".tiff", ".npy")


def render_scene(img, depth, matte, lens, coc, aperture, *, float_out=False, num_threads=None):
    """render() with a lens (depth input) or a CoC map (disparity input). float_out: integer
    (sRGB) input is decoded and rendered to float32 linear light with the same highlight
    recovery render() applies to it, so float outputs keep light above 1; otherwise the
    result has the input's dtype."""
    from ._color import srgb_to_linear
    from ._render import AUTO_HIGHLIGHT_GAIN, render

    highlights = "auto"
    if float_out and img.dtype.kind == "u":
        img, highlights = srgb_to_linear(img), AUTO_HIGHLIGHT_GAIN
    if lens is not None:
        return render(img, depth, matte=matte, lens=lens, aperture=aperture, highlights=highlights,
                      num_threads=num_threads)
    return render(img, coc=coc, matte=matte, aperture=aperture, highlights=highlights, num_threads=num_threads)


def coc_stats(coc):
    a = np.abs(coc)
    p = np.percentile(coc, [1, 50, 99])
    return {"min": float(coc.min()), "max": float(coc.max()), "p01": float(p[0]), "median": float(p[1]),
            "p99": float(p[2]), "abs_max": float(a.max()), "in_focus_share": float((a <= 1.0).mean())}


# -- configuration ------------------------------------------------------------------------------

def _load_config_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"config: file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    if path.lower().endswith(".toml"):
        try:
            import tomllib
        except ImportError:
            raise BatchError("config: TOML needs Python 3.11 or later; write the config as JSON")
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except Exception as e:  # noqa: BLE001
            raise BatchError(f"config: {path} is not valid TOML: {e}") from e
    try:
        return json.loads(raw.decode("utf-8"))
    except Exception as e:  # noqa: BLE001
        raise BatchError(f"config: {path} is not valid JSON: {e}") from e


def _check_spec(name, spec, *, integer=False, allow_auto=False):
    """Validate a parameter spec: a value, [lo, hi] (uniform), or one of
    {"uniform": [lo, hi]}, {"log_uniform": [lo, hi]}, {"choice": [...]}."""
    where = f"lens.{name}"
    if spec is None and name == "K":
        return spec
    if isinstance(spec, str):
        if allow_auto and spec == "auto":
            return spec
        raise BatchError(f"{where}: expected a number" + (" or 'auto'" if allow_auto else "") + f", got {spec!r}")
    if isinstance(spec, bool):
        raise BatchError(f"{where}: expected a number, got {spec!r}")
    if isinstance(spec, (int, float)):
        return spec
    if isinstance(spec, list):
        if integer:
            spec = {"choice": spec}
        elif len(spec) == 2:
            spec = {"uniform": spec}
        else:
            raise BatchError(f"{where}: a list must be [lo, hi] (uniform); use {{\"choice\": [...]}} for a set")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise BatchError(f"{where}: expected a value, [lo, hi], or one of uniform / log_uniform / choice, got {spec!r}")
    (kind, arg), = spec.items()
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise BatchError(f"{where}: choice needs a non-empty list")
        for v in arg:
            _check_spec(name, v, integer=False, allow_auto=allow_auto)
            if integer and not isinstance(v, int):
                raise BatchError(f"{where}: choices must be integers, got {v!r}")
        return spec
    if kind not in ("uniform", "log_uniform") or integer:
        raise BatchError(f"{where}: unknown spec {kind!r} (expected uniform, log_uniform or choice)")
    if (not isinstance(arg, list) or len(arg) != 2 or
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arg)):
        raise BatchError(f"{where}: {kind} needs [lo, hi]")
    lo, hi = float(arg[0]), float(arg[1])
    if not lo <= hi or (kind == "log_uniform" and lo <= 0):
        raise BatchError(f"{where}: {kind} needs lo <= hi" + (" and lo > 0" if kind == "log_uniform" else ""))
    return {kind: [lo, hi]}


def _draw(spec, rng):
    if not isinstance(spec, dict):
        return spec
    (kind, arg), = spec.items()
    if kind == "choice":
        return arg[int(rng.integers(len(arg)))]
    lo, hi = arg
    if kind == "uniform":
        return float(rng.uniform(lo, hi))
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _name_key(name):
    return zlib.crc32(name.encode("utf-8"))


def sample_lens(lens_spec, seed, name, index):
    """The lens parameters of sample `index` of input `name`: each parameter drawn from its own
    generator seeded with (seed, crc32(name), index, parameter number)."""
    out = {}
    for j, p in enumerate(_PARAMS):
        rng = np.random.default_rng([int(seed), _name_key(name), int(index), j])
        out[p] = _draw(lens_spec[p], rng)
    out["model"] = lens_spec["model"]
    return out


def load_config(config):
    """Read and validate a batch config: a file (JSON, or TOML on Python >= 3.11) whose relative
    input paths are resolved against its directory, or a dict (paths relative to the current
    directory). Returns the normalised config dict."""
    if isinstance(config, dict):
        return _normalise(config, os.getcwd())
    path = os.fspath(config)
    return _normalise(_load_config_file(path), os.path.dirname(os.path.abspath(path)))


def _normalise(cfg, base):
    if not isinstance(cfg, dict):
        raise BatchError("config: expected an object at the top level")
    unknown = set(cfg) - {"inputs", "samples_per_input", "seed", "lens", "output"}
    if unknown:
        raise BatchError(f"config: unknown keys {sorted(unknown)}")
    inputs = cfg.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BatchError("inputs: expected a non-empty list of {name, image, depth[, matte]} entries")
    seen, norm = set(), []
    for i, e in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(e, dict):
            raise BatchError(f"{where}: expected an object")
        bad = set(e) - {"name", "image", "depth", "matte", "depth_scale", "disparity", "disparity_scale", "sample"}
        if bad:
            raise BatchError(f"{where}: unknown keys {sorted(bad)}")
        if e.get("sample"):
            n = {"name": e.get("name", "sample"), "sample": True}
        else:
            if "image" not in e or "depth" not in e:
                raise BatchError(f"{where}: needs 'image' and 'depth' (or \"sample\": true)")
            n = {"name": e.get("name") or os.path.splitext(os.path.basename(str(e["image"])))[0],
                 "image": os.path.join(base, str(e["image"])), "depth": os.path.join(base, str(e["depth"])),
                 "matte": os.path.join(base, str(e["matte"])) if e.get("matte") else None,
                 "depth_scale": e.get("depth_scale"), "disparity": bool(e.get("disparity", False)),
                 "disparity_scale": float(e.get("disparity_scale", 1.0))}
            for key in ("image", "depth", "matte"):
                if n[key] is not None and not os.path.isfile(n[key]):
                    raise BatchError(f"{where}.{key}: file not found: {n[key]}")
        if not isinstance(n["name"], str) or not _NAME_RE.match(n["name"]):
            raise BatchError(f"{where}.name: {n['name']!r} must be a file-name-safe word (letters, digits, . _ -)")
        if n["name"] in seen:
            raise BatchError(f"{where}.name: {n['name']!r} is used twice")
        seen.add(n["name"])
        norm.append(n)
    k = cfg.get("samples_per_input", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BatchError(f"samples_per_input: expected an integer >= 1, got {k!r}")
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BatchError(f"seed: expected an integer >= 0, got {seed!r}")
    lens_in = cfg.get("lens", {})
    if not isinstance(lens_in, dict):
        raise BatchError("lens: expected an object")
    bad = set(lens_in) - set(LENS_DEFAULTS)
    if bad:
        raise BatchError(f"lens: unknown keys {sorted(bad)} (known: {sorted(LENS_DEFAULTS)})")
    lens = dict(LENS_DEFAULTS, **lens_in)
    for p in _PARAMS:
        lens[p] = _check_spec(p, lens[p], integer=(p == "blades"), allow_auto=(p == "focus"))
    if lens["model"] not in ("fixed_fov", "real_lens"):
        raise BatchError(f"lens.model: expected 'fixed_fov' or 'real_lens', got {lens['model']!r}")
    if lens["focus"] == "auto" or (isinstance(lens["focus"], dict) and "auto" in lens["focus"].get("choice", [])):
        for n in norm:
            if not n.get("sample") and n["matte"] is None:
                raise BatchError(f"lens.focus: 'auto' focuses on the matte, but input {n['name']!r} has none")
    out = cfg.get("output", {})
    if not isinstance(out, dict) or set(out) - {"format", "save_coc"}:
        raise BatchError("output: expected {\"format\": png|png16|tiff|exr|npy, \"save_coc\": bool}")
    fmt = out.get("format", "png")
    if fmt not in FORMATS:
        raise BatchError(f"output.format: expected one of {sorted(FORMATS)}, got {fmt!r}")
    return {"inputs": norm, "samples_per_input": k, "seed": seed, "lens": lens,
            "output": {"format": fmt, "save_coc": bool(out.get("save_coc", False))}}


def plan(cfg):
    """Every task of the config, in manifest order: dicts with id, input, sample, seed, lens,
    output file name and a hash of everything that determines the output."""
    from . import __version__

    ext, bits = FORMATS[cfg["output"]["format"]]
    tasks = []
    for inp in cfg["inputs"]:
        for k in range(cfg["samples_per_input"]):
            tid = f"{inp['name']}_{k:04d}"
            t = {"id": tid, "input": inp, "sample": k, "seed": cfg["seed"],
                 "lens": sample_lens(cfg["lens"], cfg["seed"], inp["name"], k),
                 "output": tid + ext, "bits": bits,
                 "coc_output": (tid + "_coc.npy") if cfg["output"]["save_coc"] else None}
            blob = json.dumps([t, __version__], sort_keys=True).encode()
            t["task_hash"] = hashlib.sha256(blob).hexdigest()[:16]
            tasks.append(t)
    return tasks


# -- running ------------------------------------------------------------------------------------

def _load_task_scene(inp):
    if inp.get("sample"):
        from ._sample import load_sample
        s = load_sample()
        return s["image"], s["depth"], s["matte"], False, 1.0
    img, d, m = load_scene(inp["image"], inp["depth"], inp["matte"], depth_scale=inp["depth_scale"],
                           disparity=inp["disparity"])
    return img, d, m, inp["disparity"], inp["disparity_scale"]


def _atomic_write(outdir, name, write):
    final = os.path.join(outdir, name)
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(outdir, f".{stem}.{os.getpid()}.part{ext}")
    try:
        write(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run_task(task, outdir, num_threads=None, _scene=None):
    """Render one task into outdir and return its metadata record (runs on a Dask worker too:
    outdir and the input files must be reachable there under the same paths)."""
    from . import Aperture, __version__
    from ._io import write_image

    t0 = time.perf_counter()
    if _scene is None:
        _scene = _load_task_scene(task["input"]) + (None,)
    img, d, m, disp, S, load_s = _scene
    t1 = time.perf_counter()
    if load_s is not None:  # loaded (once for several tasks) by the caller
        t0 = t1 - load_s
    lp = task["lens"]
    coc, lens, info = scene_coc(d, m, lp, disparity=disp, disparity_scale=S)
    ap = Aperture(blades=int(lp["blades"]), rotation=float(lp["rotation"]))
    float_out = os.path.splitext(task["output"])[1] in FLOAT_EXT and task["bits"] is None
    out = render_scene(img, d, m, lens, coc, ap, float_out=float_out, num_threads=num_threads)
    t2 = time.perf_counter()
    _atomic_write(outdir, task["output"], lambda p: write_image(p, out, bits=task["bits"]))
    if task["coc_output"]:
        _atomic_write(outdir, task["coc_output"], lambda p: np.save(p, coc))
    t3 = time.perf_counter()
    lens_rec = {"focal_length_mm": float(lp["focal_length_mm"]), "f_number": float(lp["f_number"]),
                "sensor_width_mm": float(lp["sensor_width_mm"]), "model": lp["model"],
                "focus": "auto" if isinstance(lp["focus"], str) else "fixed"}
    lens_rec.update(info)
    return {
        "id": task["id"], "input": task["input"]["name"], "sample": task["sample"], "seed": task["seed"],
        "rng_key": [task["seed"], _name_key(task["input"]["name"]), task["sample"]],
        "output": task["output"], "coc_output": task["coc_output"],
        "width": int(img.shape[1]), "height": int(img.shape[0]),
        "lens": lens_rec, "aperture": {"blades": int(lp["blades"]), "rotation": float(lp["rotation"])},
        "coc": coc_stats(coc),
        "timings": {"load_s": round(t1 - t0, 4), "render_s": round(t2 - t1, 4), "write_s": round(t3 - t2, 4)},
        "host": socket.gethostname(), "pid": os.getpid(), "synthdof": __version__,
        "task_hash": task["task_hash"],
    }


def read_records(outdir):
    """Valid metadata records of outdir (last one per id), skipping a torn last line."""
    path = os.path.join(outdir, METADATA)
    recs = {}
    if not os.path.exists(path):
        return recs
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and "id" in r:
                recs[r["id"]] = r
    return recs


def _resume_state(outdir, tasks):
    """(finished ids, records to keep). Refuses to mix outputs rendered from other parameters."""
    recs = read_records(outdir)
    by_id = {t["id"]: t for t in tasks}
    keep, done = [], set()
    for rid, r in recs.items():
        t = by_id.get(rid)
        if t is not None and r.get("task_hash") != t["task_hash"]:
            raise BatchError(f"output: {outdir} already holds {rid} rendered with other parameters "
                             f"(a different config or synthdof version); use a new output directory")
        if not os.path.exists(os.path.join(outdir, r.get("output", ""))):
            continue
        if t is not None and t["coc_output"] and not os.path.exists(os.path.join(outdir, t["coc_output"])):
            continue
        keep.append(r)
        if t is not None:
            done.add(rid)
    # rewrite the record file with the valid records only (drops a torn line from an interruption)
    path = os.path.join(outdir, METADATA)
    if os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in keep:
                f.write(json.dumps(r, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return done


class _Progress:
    def __init__(self, total, initial, enabled):
        self.bar = None
        self.total, self.n, self.enabled = total, initial, enabled
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            print(f"synthdof batch: {initial}/{total} done before this run", file=sys.stderr)
            return
        self.bar = tqdm(total=total, initial=initial, unit="img", desc="synthdof batch", file=sys.stderr)

    def update(self, tid):
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            print(f"synthdof batch: {self.n}/{self.total} {tid}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _append(f, rec):
    f.write(json.dumps(rec, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())


def run_batch(config, outdir, *, workers=1, scheduler=None, num_threads=None, progress=True, log=None):
    """Render every unfinished task of `config` (a config file or dict, see docs/cli.md) into
    `outdir`: one image per (input, sample) and one JSON record per image in
    outdir/metadata.jsonl; finished outputs are skipped, so an interrupted run resumes.

    workers > 1 starts a Dask LocalCluster of that many single-threaded worker processes;
    scheduler = "tcp://host:port" connects to a running Dask scheduler instead (its workers must
    see the input files and outdir under the same paths). Otherwise tasks run in this process.
    Returns a summary dict (total, skipped, rendered, failed: list of (id, message))."""
    cfg = load_config(config)
    outdir = os.path.abspath(os.fspath(outdir))
    os.makedirs(outdir, exist_ok=True)
    tasks = plan(cfg)
    done = _resume_state(outdir, tasks)
    todo = [t for t in tasks if t["id"] not in done]
    summary = {"total": len(tasks), "skipped": len(done), "rendered": 0, "failed": [], "outdir": outdir}
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if not todo:
        log(f"synthdof batch: all {len(tasks)} outputs already in {outdir}")
        return summary
    if done:
        log(f"synthdof batch: resuming, {len(done)} of {len(tasks)} outputs already done")
    bar = _Progress(len(tasks), len(done), progress)
    with open(os.path.join(outdir, METADATA), "a", encoding="utf-8") as f:
        try:
            if scheduler is None and workers <= 1:
                _run_local(todo, outdir, num_threads, f, bar, summary)
            else:
                _run_dask(todo, outdir, num_threads, f, bar, summary, workers, scheduler)
        finally:
            bar.close()
    return summary


def _run_local(todo, outdir, num_threads, f, bar, summary):
    cache_key, scene = None, None
    for t in todo:
        try:
            key = json.dumps(t["input"], sort_keys=True)
            if key != cache_key:
                tl = time.perf_counter()
                scene, cache_key = _load_task_scene(t["input"]), key
                scene = scene + (time.perf_counter() - tl,)
            rec = run_task(t, outdir, num_threads, _scene=scene)
        except (OSError, ValueError, TypeError, ImportError) as e:
            summary["failed"].append((t["id"], str(e)))
            cache_key = None
            continue
        _append(f, rec)
        summary["rendered"] += 1
        bar.update(t["id"])


def _run_dask(todo, outdir, num_threads, f, bar, summary, workers, scheduler):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("synthdof batch: --workers/--scheduler run on Dask: pip install \"synthdof[dask]\"")
    cluster = None
    if scheduler is not None:
        client = Client(scheduler)
    else:
        if num_threads is None:
            num_threads = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {}
        for t in todo:
            fut = client.submit(run_task, t, outdir, num_threads, key=f"synthdof-{t['id']}-{t['task_hash']}",
                                pure=False)
            futures[fut] = t
        for fut in as_completed(list(futures)):
            t = futures[fut]
            try:
                rec = fut.result()
            except (OSError, ValueError, TypeError, ImportError) as e:
                summary["failed"].append((t["id"], str(e)))
                continue
            _append(f, rec)
            summary["rendered"] += 1
            bar.update(t["id"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
