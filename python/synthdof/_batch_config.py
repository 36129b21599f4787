"""Batch configuration: validation of a config file or dict, the seeded lens draws, and the
plan of tasks (see docs/cli.md for the format)."""
import hashlib
import json
import math
import os
import re
import zlib

import numpy as np


LENS_DEFAULTS = {"focal_length_mm": 50.0, "f_number": 2.0, "focus": "auto", "sensor_width_mm": 36.0,
                 "blades": 0, "rotation": 0.0, "model": "fixed_fov", "K": None}
# the order fixes each parameter's generator stream
_PARAMS = ("focal_length_mm", "f_number", "focus", "sensor_width_mm", "blades", "rotation", "K")
FORMATS = {"png": (".png", 8), "png16": (".png", 16), "tiff": (".tif", None), "exr": (".exr", None),
           "npy": (".npy", None)}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class BatchError(ValueError):
    """A problem with a batch configuration, its inputs or its output folder, reported on the
    command line as one line without a traceback.

    Examples
    --------
    >>> try:
    ...     load_config({"inputs": []})
    ... except BatchError as e:
    ...     print(e)
    inputs: expected a non-empty list of {name, image, depth[, matte]} entries
    """


def _load_config_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"config: file not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    if path.lower().endswith(".toml"):
        try:
            import tomllib
        except ImportError:
            raise BatchError("config: TOML needs Python 3.11 or later; write the config as JSON") from None
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
    """The lens parameters of sample `index` of input `name`.

    Each parameter is drawn from its own generator seeded with (seed, crc32(name), index,
    parameter number), so it depends neither on the order of the tasks nor on the other inputs or
    parameters.

    Parameters
    ----------
    lens_spec : dict
        The normalised ``lens`` of a config (from `load_config`).
    seed : int
        The config's seed.
    name : str
        The input's name.
    index : int
        The sample's index.

    Returns
    -------
    dict
        One value per lens parameter, and the model.

    Examples
    --------
    >>> spec = load_config({"inputs": [{"sample": True}], "lens": {"f_number": [1.4, 4]}})["lens"]
    >>> a = sample_lens(spec, 7, "sample", 0)
    >>> a == sample_lens(spec, 7, "sample", 0), 1.4 <= a["f_number"] <= 4
    (True, True)
    """
    out = {}
    for j, p in enumerate(_PARAMS):
        rng = np.random.default_rng([int(seed), _name_key(name), int(index), j])
        out[p] = _draw(lens_spec[p], rng)
    out["model"] = lens_spec["model"]
    return out


def load_config(config):
    """Read and validate a batch config.

    Parameters
    ----------
    config : str, os.PathLike or dict
        A file (JSON, or TOML on Python >= 3.11) whose relative input paths are resolved against
        its folder, or a dict (paths relative to the current folder). See docs/cli.md.

    Returns
    -------
    dict
        The normalised config: inputs, samples_per_input, seed, lens, output.

    Raises
    ------
    FileNotFoundError
        The config file or an input file does not exist.
    BatchError
        The config is malformed; the message names the key.

    Examples
    --------
    >>> cfg = load_config({"inputs": [{"sample": True}], "samples_per_input": 2})
    >>> cfg["samples_per_input"], cfg["output"]
    (2, {'format': 'png', 'save_coc': False})
    """
    if isinstance(config, dict):
        return _normalise(config, os.getcwd())
    path = os.fspath(config)
    return _normalise(_load_config_file(path), os.path.dirname(os.path.abspath(path)))


def _normalise(cfg, base):
    if not isinstance(cfg, dict):
        raise BatchError("config: expected an object at the top level")
    unknown = set(cfg) - {"inputs", "samples_per_input", "seed", "lens", "output", "refine"}
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
        bad = set(e) - {"name", "image", "depth", "matte", "depth_scale", "disparity", "disparity_scale", "sample",
                        "refine"}
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
                 "disparity_scale": float(e.get("disparity_scale", 1.0)),
                 "refine": e.get("refine", cfg.get("refine", False))}
            if not isinstance(n["refine"], bool):
                raise BatchError(f"{where}.refine: expected true or false, got {n['refine']!r}")
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
    """Every task of a config, in manifest order.

    Parameters
    ----------
    cfg : dict
        A config from `load_config`.

    Returns
    -------
    list of dict
        One dict per output: id ("<input>_<kkkk>"), input, sample, seed, lens, output file name,
        bits, coc_output (or None) and task_hash, a hash of everything that determines the
        output.

    Examples
    --------
    >>> tasks = plan(load_config({"inputs": [{"sample": True}], "samples_per_input": 2}))
    >>> [t["output"] for t in tasks]
    ['sample_0000.png', 'sample_0001.png']
    """
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


