"""The scenes shipped with the package (no download needed): a small sample scene and the four
thin-lens ground-truth scenes."""
import json
import lzma
import os

import numpy as np

_PATH = os.path.join(os.path.dirname(__file__), "data", "sample.npz")
_GT_DIR = os.path.join(os.path.dirname(__file__), "data", "cycles_reference")
GROUND_TRUTH_SCENES = ("lights", "occluder", "portrait", "slant")


def load_sample():
    """The small portrait scene shipped with the package (no download needed).

    Returns
    -------
    dict
        ``image``: (H, W, 3) uint8, sRGB-encoded (lights clip at 255: see render's
        `highlights`); ``depth``: (H, W) float32 planar depth in metres (stored as 16-bit
        millimetres); ``matte``: (H, W) float32 subject alpha in [0, 1]; ``lens``: a dict of
        ThinLens arguments; ``aperture``: a dict of Aperture arguments; ``description``: str.

    Examples
    --------
    >>> import synthdof
    >>> s = synthdof.load_sample()
    >>> s["image"].dtype, s["image"].shape[2], s["depth"].shape == s["image"].shape[:2]
    (dtype('uint8'), 3, True)
    >>> out = synthdof.render(s["image"], s["depth"], matte=s["matte"],
    ...                       lens=synthdof.ThinLens(**s["lens"]),
    ...                       aperture=synthdof.Aperture(**s["aperture"]))
    >>> out.dtype == s["image"].dtype and out.shape == s["image"].shape
    True
    """
    with np.load(_PATH) as z:
        meta = json.loads(str(z["meta"]))
        return {
            "image": z["image"].copy(),
            "depth": z["depth_mm"].astype(np.float32) / np.float32(1000.0),
            "matte": z["matte"].astype(np.float32) / np.float32(255.0),
            "lens": meta["lens"],
            "aperture": meta["aperture"],
            "description": meta["description"],
        }


def load_ground_truth(name):
    """One of the thin-lens ground-truth scenes shipped with the package.

    Blender 3.4.1 Cycles renders (768x512, emission-only materials) of one 3-D scene seen through
    a pinhole (all in focus) and through a thin lens with a finite aperture (1024 samples per
    pixel): the reference the renderer is scored against.

    - ``"portrait"``: a head with about 160 thin hair strands and a checkered body at 2 m, a brick
      wall at 5 m, small bright lights at about 4.6 m; 85 mm f/1.4, circular aperture.
    - ``"lights"``: a checker card in focus at 2 m, 60 bright lights at about 8 m over a dark wall
      at 10 m; 85 mm f/1.8, 6 blades (a vertex of each hexagon points up).
    - ``"slant"``: a checkered ground plane from about 1 m to 30 m, posts, sky; focus 3 m, f/2.
    - ``"occluder"``: a person at 2.5 m behind a thin railing at 1.1 m, a leafy wall with lights
      at 6 m; f/1.4: the blurred railing turns translucent over the sharp subject.

    Parameters
    ----------
    name : str
        One of ``"lights"``, ``"occluder"``, ``"portrait"``, ``"slant"``.

    Returns
    -------
    dict
        (H, W, 3) float32 arrays in linear light (values may exceed 1: the lights reach 40-120):
        ``pinhole`` (the all-in-focus input), ``lens`` (the thin-lens render:
        the truth), ``blender_defocus`` (Blender's compositor Defocus node fed the exact CoC);
        (H, W) float32 ``depth`` (planar, metres, not anti-aliased) and ``alpha`` (the subject's
        fractional coverage); ``meta``: a dict with ``focal_length_mm``, ``f_number``,
        ``focus_distance_m``, ``sensor_width_mm`` (horizontal), ``width``, ``height``,
        ``aperture_blades`` (0 = circle), ``aperture_rotation_rad`` and
        ``t_blender_defocus_s`` (the Defocus node's time on a 2-core machine).

    Examples
    --------
    >>> import synthdof
    >>> g = synthdof.load_ground_truth("portrait")
    >>> m = g["meta"]
    >>> lens = synthdof.ThinLens(focal_length_mm=m["focal_length_mm"], f_number=m["f_number"],
    ...                          focus_distance=m["focus_distance_m"],
    ...                          sensor_width_mm=m["sensor_width_mm"])
    >>> out = synthdof.render(g["pinhole"], g["depth"], matte=g["alpha"], lens=lens)
    >>> out.shape == g["lens"].shape
    True
    """
    if name not in GROUND_TRUTH_SCENES:
        raise ValueError(f"name: no ground-truth scene {name!r}; there are {', '.join(GROUND_TRUTH_SCENES)}")
    return _read_ground_truth(os.path.join(_GT_DIR, f"{name}.npz"))


def _read_ground_truth(path):
    """The arrays of a scene file written by python/tools/make_ground_truth.py, as float32."""
    with np.load(path) as z:
        out = {k: _unpack(z[k], *v) for k, v in json.loads(str(z["layout"])).items()}
        out["meta"] = json.loads(str(z["meta"]))
    return out


def _unpack(stream, dtype, shape):
    """Inverse of make_ground_truth.pack: byte planes -> row differences -> rows -> array."""
    dtype = np.dtype(dtype)
    planes = np.frombuffer(lzma.decompress(stream.tobytes()), np.uint8).reshape(dtype.itemsize, -1)
    words = np.ascontiguousarray(planes.T).view(f"<u{dtype.itemsize}").reshape(-1, shape[1])
    words = np.cumsum(words, axis=1, dtype=words.dtype)  # wraps around as the differences did
    a = words.view(dtype)
    if len(shape) == 3:  # stored channels first
        a = np.moveaxis(a.reshape(shape[2], shape[0], shape[1]), 0, 2)
    return np.ascontiguousarray(a.reshape(shape), dtype=np.float32)
