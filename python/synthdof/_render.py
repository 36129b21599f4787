"""render(): occlusion-aware, depth-ordered synthetic depth of field."""
import numbers

import numpy as np

from . import _core
from ._aperture import as_aperture
from ._color import linear_to_srgb
from ._lens import ThinLens
from ._validate import arrays_from_pool, as_image, as_map, as_matte, prepare_out, resolve_threads

# Highlight recovery for clipped integer input: linear gain at the clip level (see render()).
AUTO_HIGHLIGHT_GAIN = 6.0


def _highlight_gain(highlights, encoding):
    if highlights is None or highlights is False or highlights == "off":
        return 1.0
    if isinstance(highlights, str):
        if highlights != "auto":
            raise ValueError(f"highlights: expected 'auto', 'off' or a gain >= 1, got {highlights!r}")
        return AUTO_HIGHLIGHT_GAIN if encoding is not None else 1.0
    if isinstance(highlights, bool) or not isinstance(highlights, numbers.Real):
        raise TypeError(f"highlights: expected 'auto', 'off' or a number, got {type(highlights).__name__}")
    g = float(highlights)
    if not np.isfinite(g) or g < 1.0:
        raise ValueError(f"highlights: a gain must be finite and >= 1, got {highlights!r}")
    return g


def recover_highlights(linear, gain, clip=1.0):
    """Scale up pixels at the clip level, which stored less light than they received.

    The gain ramps in with the brightest channel from 90 % to 100 % of `clip` (in linear light)
    and is `gain` at the clip level, so unclipped pixels are untouched.

    Parameters
    ----------
    linear : ndarray
        (H, W, C) linear light.
    gain : float
        Gain at the clip level (>= 1).
    clip : float, optional
        The clip level in linear light (default 1).

    Returns
    -------
    ndarray
        float32 of linear's shape.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> synthdof.recover_highlights(np.array([[[0.5, 0.5, 0.5], [1.0, 1.0, 0.2]]]), 6.0)
    array([[[0.5, 0.5, 0.5],
            [6. , 6. , 1.2]]], dtype=float32)
    """
    peak = linear.max(axis=2, keepdims=True)
    t = np.clip((peak / clip - 0.9) / 0.1, 0.0, 1.0)
    return (linear * (1.0 + (gain - 1.0) * t * t)).astype(np.float32)


# the core's SD_BORDER_* codes
_BORDERS = {"window": 0, "mirror": 1}


@arrays_from_pool  # its result and CoC map reuse the pages the previous call's left
def render(image, depth=None, *, coc=None, matte=None, lens=None, aperture=None, background=None,
           highlights="auto", border="window", num_threads=None, out=None):
    """Synthetic depth of field: blur the scene in depth, not the flat image.

    Parameters
    ----------
    image : array_like
        (H, W, 3). Float input is linear light (values above 1 are bright light, kept as is);
        uint8/uint16 input is sRGB-encoded: it is decoded to linear light, rendered, and encoded
        back to the same dtype.
    depth : array_like, optional
        (H, W) planar depth in metres (finite, > 0), with `lens`.
    coc : array_like, optional
        Instead of depth: (H, W) signed CoC diameter in pixels (negative in front of the focal
        plane), for disparity-based pipelines (see coc_from_disparity).
    matte : array_like, optional
        (H, W) subject alpha in [0, 1] from any matting or segmentation model. It decides what
        is subject: the subject layer is composited with it, so hair and fine edges blend
        fractionally, and the subject's own CoC is taken from its confident interior (so depth
        maps that blur across the silhouette do not smear the edge).
    lens : ThinLens, optional
        Required with depth.
    aperture : Aperture, optional
        The shape of the blur (default: a disk).
    background : array_like, optional
        (H, W, 3) linear plate of what lies behind the subject (from an inpainting model); by
        default the hidden background is filled from its surroundings.
    highlights : {"auto", "off"} or float, optional
        "auto" (default) recovers clipped highlights of integer input with a gain of
        AUTO_HIGHLIGHT_GAIN at the clip level (recover_highlights); float input is used as is.
        A number sets the gain (1 = off), "off" disables it.
    border : {"window", "mirror"}, optional
        What lies beyond the frame's edges. "window" (default): the frame is a window onto a
        larger scene, as a camera's is: light whose blur falls past an edge is lost, and light
        from beyond it comes in, the scene continuing as the frame's mirror image without its
        isolated highlights (a light on the border keeps only the part of its disk inside the
        frame). "mirror": the scene continues as the frame's exact mirror image, so all light is
        kept (a light on the border also receives its mirror image's half).
    num_threads : int, optional
        Threads (default: all cores); the result is the same, bit for bit, for any count.
    out : ndarray, optional
        (H, W, 3) array of the result's dtype to write into.

    Returns
    -------
    ndarray
        (H, W, 3) float32 linear light (or the input's integer dtype, sRGB-encoded).

    Raises
    ------
    TypeError
        If an argument has the wrong type (the message names it).
    ValueError
        If a shape disagrees with the image's, both or neither of depth and coc are given, depth
        comes without lens, or a map holds a bad value (the message names the argument).

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> img = np.full((48, 64, 3), 0.2, np.float32)
    >>> img[10, 50] = 40.0                                    # a light on the far wall
    >>> depth = np.full((48, 64), 10.0, np.float32)
    >>> depth[16:40, 8:28] = 2.0                              # a subject at 2 m
    >>> lens = synthdof.ThinLens(focal_length_mm=200, f_number=1.4, focus_distance=2.0)
    >>> float(lens.coc(depth).max())                         # the wall's blur: 20 px across
    20.317461013793945
    >>> out = synthdof.render(img, depth, lens=lens, aperture=synthdof.Aperture(blades=6))
    >>> out.shape, out.dtype
    ((48, 64, 3), dtype('float32'))
    >>> bool(out[10, 50, 0] < 1.0)                            # the light spread into a disk ...
    True
    >>> bool(abs(out.sum() / img.sum() - 1.0) < 0.01)         # ... and kept
    True
    >>> bool(np.allclose(out[20:36, 12:24], 0.2))             # the subject stays sharp
    True
    """
    nt = resolve_threads(num_threads)
    img, enc = as_image(image, "image", channels=3, allow_gray=False, threads=nt)
    H, W = img.shape[:2]
    # a blur wider than twice the frame looks the same as one that wide (and keeps the slice
    # arithmetic finite for absurd inputs)
    cap = np.float32(2 * max(H, W) + 4)
    if coc is not None:
        if depth is not None:
            raise ValueError("depth: give either depth (with lens) or coc, not both")
        c = as_map(coc, "coc", (H, W), threads=nt)
        if c.max() > cap or c.min() < -cap:  # (no temporary array for the check)
            c = np.clip(c, -cap, cap)
    else:
        if depth is None:
            raise ValueError("depth: required (or pass coc=)")
        if lens is None:
            raise ValueError("lens: required with depth (a synthdof.ThinLens)")
        if not isinstance(lens, ThinLens):
            raise TypeError(f"lens: expected a synthdof.ThinLens, got {type(lens).__name__}")
        d = as_map(depth, "depth", (H, W), finite=False)
        try:
            c = lens.coc(d, W, max_coc=min(lens.max_coc or cap, cap), num_threads=nt)
        except ValueError as e:
            if not str(e).startswith("depth:"):
                raise
            raise ValueError(f"{e}; synthdof.refine(image, depth) fills invalid depth (holes, NaN, "
                             "0) from the surfaces around them") from None
    a = None if matte is None else as_matte(matte, (H, W), threads=nt)
    ap = as_aperture(aperture)
    bg = None
    if background is not None:
        bg, _ = as_image(background, "background", channels=3, allow_gray=False, threads=nt)
        if bg.shape != img.shape:
            raise ValueError(f"background: shape {bg.shape} does not match the image's {img.shape}")
    if border not in _BORDERS:
        raise ValueError(f"border: expected 'window' or 'mirror', got {border!r}")
    gain = _highlight_gain(highlights, enc)
    out_dtype = np.float32 if enc is None else enc
    inputs = [("image", image), ("depth", depth), ("coc", coc), ("matte", matte), ("background", background)]
    out = prepare_out(out, (H, W, 3), inputs, dtype=out_dtype)
    if gain > 1.0:
        img = recover_highlights(img, gain)
    result = out if enc is None else np.empty((H, W, 3), np.float32)
    plate = None if bg is None else np.ascontiguousarray(bg)
    _core.render(img, np.ascontiguousarray(c), a, plate, *ap._args(), _BORDERS[border], result, nt)
    if enc is not None:
        out[...] = linear_to_srgb(result, enc)
    return out
