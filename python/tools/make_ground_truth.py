"""Writes the compact copy of the four thin-lens ground-truth scenes that ships with the package
(python/synthdof/data/cycles_reference/<scene>.npz, read by synthdof.load_ground_truth).

    python python/tools/make_ground_truth.py DIR     # DIR holds the full-size scenes (float32 .npz)

Each array is stored as an LZMA stream of its byte planes after differencing along each row
(smooth float data: the high bytes of neighbours repeat, so the planes compress well): lossless,
15.8 MB of npz -> 9.8 MB. The pinhole image stays float32: rounded to float16 it would take
1.4 MB instead of 6.2 MB and move the scores by < 0.001 dB, but fit_lens on the occluder scene
reads f/1.58 instead of f/1.49 from it (a change of 2^-18 in every value already flips that fit),
and the renders would no longer be bit-identical to those of the full-size files.
"""
import json
import lzma
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "synthdof", "data", "cycles_reference")
# Stored dtype per array, all lossless: the matte takes 65 values that float16 holds exactly;
# lens and blender_defocus are float16 already.
STORED = {"pinhole": np.float32, "depth": np.float32, "alpha": np.float16,
          "lens": np.float16, "blender_defocus": np.float16}


def pack(a):
    """uint8 LZMA stream of `a`'s rows (channels first) as row differences of its bit patterns."""
    rows = np.moveaxis(a, 2, 0) if a.ndim == 3 else a
    rows = np.ascontiguousarray(rows).reshape(-1, a.shape[1])
    words = rows.view(f"<u{a.dtype.itemsize}").copy()
    words[:, 1:] -= rows.view(words.dtype)[:, :-1]  # wraps around: undone by a cumulative sum
    planes = words.view(np.uint8).reshape(-1, a.dtype.itemsize).T
    return np.frombuffer(lzma.compress(planes.tobytes(), preset=9 | lzma.PRESET_EXTREME), np.uint8)


def _sample_module():
    """python/synthdof/_sample.py of this checkout (it needs NumPy only, not the built package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_sample", os.path.join(HERE, "..", "synthdof", "_sample.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(src):
    sample = _sample_module()
    os.makedirs(OUT, exist_ok=True)
    for name in sample.GROUND_TRUTH_SCENES:
        with np.load(os.path.join(src, f"{name}.npz")) as z:
            arrays = {k: z[k].astype(STORED[k]) for k in STORED}
            meta = str(z["meta"])
        layout = {k: [a.dtype.str, list(a.shape)] for k, a in arrays.items()}
        path = os.path.join(OUT, f"{name}.npz")
        np.savez(path, meta=meta, layout=json.dumps(layout), **{k: pack(a) for k, a in arrays.items()})
        back = sample._read_ground_truth(path)
        for k, a in arrays.items():  # the loader gives back exactly what was stored
            assert np.array_equal(back[k], a.astype(np.float32)), k
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
