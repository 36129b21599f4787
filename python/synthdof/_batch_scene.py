"""Scene helpers shared by `synthdof render` and `synthdof batch`: load an image with its depth
(or disparity) and matte, turn lens parameters into a CoC map, render it."""
import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._lens import median_on_matte

# output formats that keep float32 linear light (8/16-bit input is decoded for them)
FLOAT_EXT = (".exr", ".tif", ".tiff", ".npy")


@dataclass
class Scene:
    """One input of a render: pixels, depth or disparity, matte, and where they came from.

    Parameters
    ----------
    image : numpy.ndarray
        (H, W, 3) uint8, uint16 (sRGB) or float32 (linear light).
    depth : numpy.ndarray
        (H, W) float32 depth in metres, or disparity when `disparity` is True.
    matte : numpy.ndarray or None
        (H, W) float32 in [0, 1], or None.
    disparity : bool, optional
        `depth` holds disparity d = `disparity_scale` / z.
    disparity_scale : float, optional
        S in d = S / z.
    depth_path : str or None, optional
        The file the depth was read from (named in errors about its values).
    load_seconds : float, optional
        Time spent reading the files.

    Examples
    --------
    >>> import numpy as np
    >>> s = Scene(np.zeros((2, 3, 3), np.uint8), np.ones((2, 3), np.float32), None)
    >>> s.size
    '3x2'
    """

    image: np.ndarray
    depth: np.ndarray
    matte: Optional[np.ndarray]
    disparity: bool = False
    disparity_scale: float = 1.0
    depth_path: Optional[str] = None
    load_seconds: float = 0.0

    @property
    def size(self):
        """The image size as "WxH"."""
        return f"{self.image.shape[1]}x{self.image.shape[0]}"


def load_scene(image, depth, matte=None, *, depth_scale=None, disparity=False, refine=False, num_threads=None):
    """Read an image, its depth (or disparity) map and matte, checked for matching sizes.

    Parameters
    ----------
    image, depth : str or os.PathLike
        The image (read as RGB) and the depth or disparity file (see `read_depth`).
    matte : str or os.PathLike, optional
        The subject matte (see `read_matte`).
    depth_scale : float, optional
        `scale` of `read_depth`.
    disparity : bool, optional
        The depth file holds disparity.
    refine : bool, optional
        Pass the depth (which may then be smaller than the image and hold holes) and the matte
        through `synthdof.refine` (see there).
    num_threads : int, optional
        Threads for `refine`.

    Returns
    -------
    tuple
        (image, depth-or-disparity map, matte or None) as returned by the readers.

    Raises
    ------
    FileNotFoundError, ValueError
        From the readers (naming the file), or when the sizes differ.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from synthdof import write_image
    >>> d = tempfile.mkdtemp()
    >>> _ = write_image(os.path.join(d, "i.png"), np.zeros((2, 3, 3), np.uint8))
    >>> np.save(os.path.join(d, "z.npy"), np.ones((2, 3), np.float32))
    >>> img, z, m = load_scene(os.path.join(d, "i.png"), os.path.join(d, "z.npy"))
    >>> img.shape, z.shape, m
    ((2, 3, 3), (2, 3), None)
    """
    from ._io import _read_depth, _read_image, _read_matte

    img = _read_image(image, 3, "image")
    d = _read_depth(depth, depth_scale, disparity, "depth", check=not refine,
                    hint="; refine (--refine) fills holes from the surface around them")
    if d.shape != img.shape[:2] and not refine:
        raise ValueError(f"depth: {depth} is {d.shape[1]}x{d.shape[0]} pixels but the image {image} is "
                         f"{img.shape[1]}x{img.shape[0]} (refine, --refine, upsamples smaller depth)")
    m = None
    if matte is not None:
        m = _read_matte(matte, "matte")
        if m.shape != img.shape[:2]:
            raise ValueError(f"matte: {matte} is {m.shape[1]}x{m.shape[0]} pixels but the image {image} is "
                             f"{img.shape[1]}x{img.shape[0]}")
    if refine:
        from ._refine import refine as refine_maps
        try:
            d, m = refine_maps(img, d, matte=m, disparity=disparity, num_threads=num_threads)
        except ValueError as e:
            raise ValueError(f"{e} ({depth})") from None
    return img, d, m


def scene_coc(depth, matte, params, *, disparity=False, disparity_scale=1.0, depth_path=None):
    """Signed CoC map and the resolved focus for one set of lens parameters.

    Depth mode: a `ThinLens`; focus "auto" = `focus_from_matte`. Disparity mode (d = S / z with
    S = `disparity_scale`): c = K (d_f - d) with K = ``ThinLens.coc_scale(W) / S`` unless given,
    and d_f = S / focus, or the median disparity on the matte for "auto".

    Parameters
    ----------
    depth : numpy.ndarray
        (H, W) depth in metres, or disparity.
    matte : numpy.ndarray or None
        (H, W) subject matte (needed for focus "auto").
    params : dict
        focal_length_mm, f_number, focus (metres or "auto"), sensor_width_mm, and optionally
        model ("fixed_fov" or "real_lens") and K.
    disparity : bool, optional
        `depth` holds disparity.
    disparity_scale : float, optional
        S in d = S / z.
    depth_path : str, optional
        The depth file, named in errors about its values.

    Returns
    -------
    coc : numpy.ndarray
        (H, W) float32 signed CoC diameters in pixels.
    lens : ThinLens or None
        The lens (None in disparity mode).
    info : dict
        focus_distance, and for disparity focus_disparity and K.

    Raises
    ------
    ValueError
        Bad parameters, focus "auto" without a matte, or depth values the lens cannot take (the
        message names `depth_path` when given).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([[1.0, 2.0, 4.0]], np.float32)
    >>> params = {"focal_length_mm": 50, "f_number": 2, "focus": 2.0, "sensor_width_mm": 36}
    >>> coc, lens, info = scene_coc(z, None, params)
    >>> float(coc[0, 1]), info
    (0.0, {'focus_distance': 2.0})
    """
    from ._lens import ThinLens, coc_from_disparity, focus_from_matte

    W = depth.shape[1]
    focus = params.get("focus", "auto")
    auto = isinstance(focus, str)
    if auto and focus != "auto":
        raise ValueError(f"focus: expected metres or 'auto', got {focus!r}")
    if auto and matte is None:
        raise ValueError("focus: 'auto' focuses on the subject matte; give a matte or a focus distance in metres")
    model = params.get("model", "fixed_fov")
    try:
        if not disparity:
            zf = focus_from_matte(depth, matte) if auto else float(focus)
            lens = ThinLens(params["focal_length_mm"], params["f_number"], zf, params["sensor_width_mm"],
                            model=model)
            return lens.coc(depth, W), lens, {"focus_distance": zf}
        if model != "fixed_fov":
            raise ValueError("model: disparity input follows the fixed-field-of-view lens (c = K (d_f - d)); "
                             "use model 'fixed_fov'")
        S = float(disparity_scale)
        if not (S > 0 and math.isfinite(S)):
            raise ValueError(f"disparity_scale: must be finite and > 0, got {disparity_scale!r}")
        K = params.get("K")
        if K is None:
            K = ThinLens(params["focal_length_mm"], params["f_number"], 1.0,
                         params["sensor_width_mm"]).coc_scale(W) / S
        fd = median_on_matte(depth, matte) if auto else S / float(focus)
        coc = coc_from_disparity(depth, K=float(K), focus_disparity=fd)
    except ValueError as e:
        msg = str(e)
        if depth_path is not None and msg.startswith(("depth:", "disparity:")):
            raise ValueError(f"{msg} in {os.fspath(depth_path)}") from None
        raise
    return coc, None, {"focus_disparity": fd, "K": float(K),
                       "focus_distance": (S / fd) if fd > 0 else float("inf")}


def render_scene(img, depth, matte, lens, coc, aperture, *, float_out=False, num_threads=None):
    """`render` with a lens (depth input) or a CoC map (disparity input).

    Parameters
    ----------
    img : numpy.ndarray
        (H, W, 3) image.
    depth : numpy.ndarray
        (H, W) depth (used with `lens`).
    matte : numpy.ndarray or None
        Subject matte.
    lens : ThinLens or None
        With a lens the depth is rendered; without, `coc`.
    coc : numpy.ndarray
        (H, W) signed CoC map (used when `lens` is None).
    aperture : Aperture
        The aperture shape.
    float_out : bool, optional
        Integer (sRGB) input is decoded and rendered to float32 linear light with the same
        highlight recovery `render` applies to it, so float outputs keep light above 1;
        otherwise the result has the input's dtype.
    num_threads : int, optional
        Threads of the render.

    Returns
    -------
    numpy.ndarray
        The rendered (H, W, 3) image.

    Raises
    ------
    MemoryError
        The render's memory could not be allocated (the message names the image size).

    Examples
    --------
    >>> import numpy as np
    >>> from synthdof import Aperture
    >>> img = np.full((8, 8, 3), 0.5, np.float32)
    >>> coc = np.full((8, 8), 3.0, np.float32)
    >>> out = render_scene(img, None, None, None, coc, Aperture())
    >>> out.shape, bool(np.allclose(out, 0.5, atol=1e-4))
    ((8, 8, 3), True)
    """
    from ._color import srgb_to_linear
    from ._render import AUTO_HIGHLIGHT_GAIN, render

    highlights = "auto"
    if float_out and img.dtype.kind == "u":
        img, highlights = srgb_to_linear(img), AUTO_HIGHLIGHT_GAIN
    try:
        if lens is not None:
            return render(img, depth, matte=matte, lens=lens, aperture=aperture, highlights=highlights,
                          num_threads=num_threads)
        return render(img, coc=coc, matte=matte, aperture=aperture, highlights=highlights,
                      num_threads=num_threads)
    except MemoryError as e:
        raise MemoryError(_memory_message(e, img.shape)) from None


def _memory_message(e, shape):
    """The core's message (which names the bytes it asked for) with the image size added."""
    said = str(e).strip()
    size = f"a {shape[1]}x{shape[0]} image"
    if not said:
        return f"out of memory rendering {size}"
    return said if f"{shape[1]}x{shape[0]}" in said else f"{said} (rendering {size})"


def coc_stats(coc):
    """Summary statistics of a signed CoC map, as stored in the batch records.

    Parameters
    ----------
    coc : numpy.ndarray
        Signed CoC diameters in pixels.

    Returns
    -------
    dict
        min, max, p01, median, p99, abs_max, and in_focus_share (the share of pixels with
        |CoC| <= 1).

    Examples
    --------
    >>> import numpy as np
    >>> coc_stats(np.array([-2.0, 0.5, 4.0]))["in_focus_share"]
    0.3333333333333333
    """
    a = np.abs(coc)
    p = np.percentile(coc, [1, 50, 99])
    return {"min": float(coc.min()), "max": float(coc.max()), "p01": float(p[0]), "median": float(p[1]),
            "p99": float(p[2]), "abs_max": float(a.max()), "in_focus_share": float((a <= 1.0).mean())}
