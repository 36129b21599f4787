"""The two spreading kernels: energy-preserving scatter and its cheap gather counterpart."""

from . import _core
from ._aperture import as_aperture
from ._validate import arrays_from_pool, as_image, as_map, prepare_out, resolve_threads


def _spread(kernel, image, coc, aperture, out, num_threads):
    nt = resolve_threads(num_threads)
    img, _ = as_image(image, "image", threads=nt)
    c = as_map(coc, "coc", img.shape[:2], threads=nt)
    ap = as_aperture(aperture)
    out = prepare_out(out, img.shape, [("image", image), ("coc", coc)])
    src = img if img.ndim == 3 else img[:, :, None]
    dst = out if out.ndim == 3 else out[:, :, None]
    for c0 in range(0, src.shape[2], 4):  # the core takes up to 4 channels at a time
        kernel(src[:, :, c0:c0 + 4], c, *ap._args(), dst[:, :, c0:c0 + 4], nt)
    return out


@arrays_from_pool  # its result reuses the pages a freed one left
def scatter(image, coc, *, aperture=None, out=None, num_threads=None):
    """Spread every pixel over the aperture shape with diameter ``|coc|`` and total weight exactly 1.

    The energy-preserving core of the renderer (no occlusion logic): a single bright pixel comes
    out as a flat, hard-edged disk or polygon whose sum equals the input, so highlights keep their
    brightness. Edges are anti-aliased (a sub-pixel change of CoC changes the output smoothly).

    Borders: light spread past an edge is folded back in (the frame continues as its mirror
    image), so the total is kept exactly and, for shapes symmetric about the image axes (disks,
    regular polygons with an even number of blades at rotation 0), a constant image stays
    constant up to the border. An asymmetric shape (3, 5, 7 blades) is mirrored by the fold, so a
    constant image deviates within ``|coc| / 2`` of an edge (up to ~2 % for 5 blades, ~10 % for 3).

    Cost does not grow with the radius: radii above ~20 px (CoC above ~40) are spread on a
    2^k-times coarser grid, merged 2^k x 2^k blocks at a time, and upsampled; edges then soften by
    about 2^k px (under a tenth of the radius) and, on frames whose size is not a multiple of
    2^k, a constant image may deviate by up to ~2e-3 (relative).

    Parameters
    ----------
    image : array_like
        (H, W) or (H, W, C): float16/32/64 is linear light, uint8/uint16 sRGB (decoded first).
    coc : array_like
        (H, W) signed CoC diameter in pixels, finite (the sign only turns asymmetric apertures
        by 180 degrees).
    aperture : Aperture, optional
        The shape (default: a disk).
    out : ndarray, optional
        float32 array of the image's shape to write into.
    num_threads : int, optional
        Threads (default: all cores); the result does not depend on it.

    Returns
    -------
    ndarray
        float32 of the image's shape, linear light.

    Raises
    ------
    TypeError
        If an argument has the wrong type (the message names it).
    ValueError
        If the shapes disagree or coc holds NaN or inf.

    See Also
    --------
    gather : the cheap, not energy-preserving counterpart.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> img = np.zeros((21, 21), np.float32)
    >>> img[10, 10] = 100.0
    >>> out = synthdof.scatter(img, np.full((21, 21), 9.0, np.float32))
    >>> round(float(out.sum()), 3), round(float(out[10, 10]), 3)  # kept, spread over ~64 px
    (100.0, 1.554)
    """
    return _spread(_core.scatter, image, coc, aperture, out, num_threads)


@arrays_from_pool  # its result reuses the pages a freed one left
def gather(image, coc, *, aperture=None, out=None, num_threads=None):
    """Each output pixel is the mean of the input over the aperture shape of its *own* ``|coc|``.

    The cheap counterpart of scatter, for previews and comparison: it is not energy-preserving
    where the CoC changes (a sharp highlight next to a blurred region leaks into it).

    Parameters
    ----------
    image, coc, aperture, out, num_threads
        As for scatter.

    Returns
    -------
    ndarray
        float32 of the image's shape, linear light.

    Raises
    ------
    TypeError
        If an argument has the wrong type (the message names it).
    ValueError
        If the shapes disagree or coc holds NaN or inf.

    See Also
    --------
    scatter : the energy-preserving spread.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> img = np.tile(np.float32([0.0, 1.0]), (8, 4))  # vertical stripes, 1 px wide
    >>> out = synthdof.gather(img, np.full((8, 8), 6.0, np.float32))
    >>> bool(abs(float(out[4, 4]) - 0.5) < 0.05)  # averaged out
    True
    """
    return _spread(_core.gather, image, coc, aperture, out, num_threads)
