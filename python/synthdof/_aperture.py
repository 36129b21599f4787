"""Aperture shapes, handed to the C core as a table of horizontal spans."""
import numbers

import numpy as np

from ._validate import finite

_ROWS = 1024      # table rows over the shape's height; linear interpolation between them
_MAX_SPANS = 4    # spans per row the core accepts (a ring needs 2)
_MAX_BLADES = 128


class Aperture:
    """The shape a defocused point takes: a disk or a regular polygon.

    Blade convention (Blender Cycles'): vertices at angles rotation + 180/n + k 360/n degrees, so
    6 blades at rotation 0 give hexagons with a vertex pointing straight up and one straight down.
    A CoC of diameter c scales the shape so its circumscribed circle has diameter c. Light behind
    the focal plane (c > 0) shows the shape as given; in front of it (c < 0) the lens shows it
    rotated by 180 degrees, as a real lens does (visible with odd blade counts).

    Parameters
    ----------
    blades : int, optional
        0 (default) for a disk, or 3 to 128 for a regular polygon of that many sides.
    rotation : float, optional
        Turn of the polygon in radians, counter-clockwise in the image (default 0).

    Raises
    ------
    TypeError
        If blades is not an int.
    ValueError
        If blades is 1, 2, negative or over 128, or rotation is not finite.

    See Also
    --------
    Aperture.from_image : a custom shape from a kernel image.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> hexagon = synthdof.Aperture(blades=6)
    >>> hexagon
    Aperture(blades=6, rotation=0)
    >>> point = np.zeros((31, 31, 3), np.float32)
    >>> point[15, 15] = 1.0
    >>> disk = synthdof.scatter(point, np.full((31, 31), 20.0, np.float32), aperture=hexagon)
    >>> round(float(disk.sum()), 4)  # the light is kept, spread over a hexagon 20 px across
    3.0
    """

    def __init__(self, blades=0, rotation=0.0):
        if isinstance(blades, bool) or not isinstance(blades, numbers.Integral):
            raise TypeError(f"blades: expected an int, got {type(blades).__name__}")
        blades = int(blades)
        if blades in (1, 2) or blades < 0 or blades > _MAX_BLADES:
            raise ValueError(f"blades: must be 0 (circle) or 3..{_MAX_BLADES}, got {blades}")
        self.blades = blades
        self.rotation = finite(rotation, "rotation")
        self._mask = None
        if blades == 0:
            self._table_circle()
        else:
            self._table_polygon()

    @classmethod
    def from_image(cls, kernel):
        """A custom shape from a 2-D kernel image.

        Pixels at or above half the maximum are inside. The larger side of the shape's bounding
        box maps to the CoC diameter. Each row may hold up to 4 separate spans (rings, hearts,
        stars); brightness variation inside the shape is not used.

        Parameters
        ----------
        kernel : ndarray
            2-D image of the shape, row 0 at the top, as the shape appears for light behind the
            focal plane; values finite and >= 0.

        Returns
        -------
        Aperture

        Raises
        ------
        TypeError
            If kernel is not a NumPy array of numbers.
        ValueError
            If kernel is not 2-D, is empty, holds negative or non-finite values, or is zero
            everywhere.

        Examples
        --------
        >>> import numpy as np
        >>> import synthdof
        >>> y, x = np.mgrid[-20:21, -20:21]
        >>> ring = ((x * x + y * y <= 400) & (x * x + y * y >= 200)).astype(float)
        >>> synthdof.Aperture.from_image(ring)
        Aperture.from_image(<41x41 mask>)
        """
        if not isinstance(kernel, np.ndarray):
            raise TypeError(f"kernel: expected a numpy array, got {type(kernel).__name__}")
        if kernel.ndim != 2 or kernel.size == 0:
            raise ValueError(f"kernel: expected a non-empty 2-D array, got shape {kernel.shape}")
        if kernel.dtype.kind not in "fiub":
            raise TypeError(f"kernel: unsupported dtype {kernel.dtype}")
        k = kernel.astype(np.float64)
        if not np.isfinite(k).all() or (k < 0).any():
            raise ValueError("kernel: values must be finite and >= 0")
        if k.max() <= 0:
            raise ValueError("kernel: is zero everywhere")
        mask = k >= 0.5 * k.max()
        ys, xs = np.nonzero(mask)
        mask = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        self = cls.__new__(cls)
        self.blades, self.rotation, self._mask = -1, 0.0, mask
        self._table_mask(mask)
        return self

    def __repr__(self):
        if self._mask is not None:
            return f"Aperture.from_image(<{self._mask.shape[0]}x{self._mask.shape[1]} mask>)"
        return f"Aperture(blades={self.blades}, rotation={self.rotation:g})"

    # -- span tables --------------------------------------------------------------------------
    def _rows(self, vmin, vmax):
        self.vmin, self.vmax = float(vmin), float(vmax)
        return vmin + (np.arange(_ROWS) + 0.5) * (vmax - vmin) / _ROWS

    def _table_circle(self):
        v = self._rows(-1.0, 1.0)
        h = np.sqrt(np.maximum(0.0, 1.0 - v * v))
        self.spans = np.ascontiguousarray(np.stack([-h, h], -1)[:, None, :], dtype=np.float32)

    def vertices(self):
        """The polygon's vertices on the unit circle.

        Returns
        -------
        ndarray
            (blades, 2) float64: x to the right, y down the image.

        Examples
        --------
        >>> import synthdof
        >>> synthdof.Aperture(blades=4).vertices().round(3)
        array([[ 0.707, -0.707],
               [-0.707, -0.707],
               [-0.707,  0.707],
               [ 0.707,  0.707]])
        """
        n = self.blades
        th = self.rotation + np.pi / n + 2 * np.pi * np.arange(n) / n
        return np.stack([np.cos(th), -np.sin(th)], -1)

    def _table_polygon(self):
        P = self.vertices()
        v = self._rows(P[:, 1].min(), P[:, 1].max())
        Q = np.roll(P, -1, axis=0)
        lo = np.full(v.shape, np.inf)
        hi = np.full(v.shape, -np.inf)
        for (x0, y0), (x1, y1) in zip(P, Q):
            if y0 == y1:
                continue
            t = (v - y0) / (y1 - y0)
            ok = (t >= 0) & (t <= 1)
            x = x0 + t * (x1 - x0)
            lo = np.where(ok, np.minimum(lo, x), lo)
            hi = np.where(ok, np.maximum(hi, x), hi)
        hi = np.where(np.isfinite(hi), hi, 0.0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        self.spans = np.ascontiguousarray(np.stack([lo, np.maximum(lo, hi)], -1)[:, None, :], dtype=np.float32)

    def _table_mask(self, mask):
        h, w = mask.shape
        side = max(h, w)
        # the mask's pixel grid in radius units: side pixels span [-1, 1]
        px = 2.0 / side
        x_edges = (np.arange(w + 1) - w / 2.0) * px
        v = self._rows(-h / 2.0 * px, h / 2.0 * px)
        rows = np.clip(((v / px) + h / 2.0).astype(int), 0, h - 1)
        spans = np.zeros((_ROWS, _MAX_SPANS, 2))
        for i, r in enumerate(rows):
            m = np.concatenate([[False], mask[r], [False]]).astype(np.int8)
            d = np.diff(m)
            starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
            if len(starts) > _MAX_SPANS:  # merge the surplus into the last span
                starts = np.concatenate([starts[:_MAX_SPANS - 1], starts[_MAX_SPANS - 1:_MAX_SPANS]])
                ends = np.concatenate([ends[:_MAX_SPANS - 1], ends[-1:]])
            last = 0.0
            for k in range(_MAX_SPANS):
                if k < len(starts):
                    spans[i, k] = x_edges[starts[k]], x_edges[ends[k]]
                    last = x_edges[ends[k]]
                else:
                    spans[i, k] = last, last  # empty span parked at the row's right end
        self.spans = np.ascontiguousarray(spans, dtype=np.float32)

    def _args(self):
        return self.spans, self.vmin, self.vmax


def as_aperture(aperture):
    if aperture is None:
        return Aperture()
    if not isinstance(aperture, Aperture):
        raise TypeError(f"aperture: expected a synthdof.Aperture, got {type(aperture).__name__}")
    return aperture
