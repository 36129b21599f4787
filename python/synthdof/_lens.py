"""Circle of confusion: thin-lens models, disparity conventions and focusing on a matte."""
import numpy as np

from . import _core
from ._validate import arrays_from_pool, as_map, as_matte, finite, positive, prepare_out, resolve_threads

MODELS = ("fixed_fov", "real_lens")


class ThinLens:
    """A thin lens focused at `focus_distance` metres.

    `coc(depth)` gives the signed circle-of-confusion *diameter in pixels*: negative in front of
    the focal plane, positive behind it, zero on it. With f = focal_length_mm, N = f_number,
    s = sensor_width_mm (the sensor width the image width W maps to), z_f = focus_distance and
    z = depth (planar depth along the optical axis, metres):

    - model="fixed_fov" (default): c = f^2 W / (N s) * (1/z_f - 1/z). The field of view stays
      fixed while focusing, which is what path tracers (Blender Cycles, Mitsuba) render and what
      the ground truth in this project's tests measures (light disks at 0.97-0.99 of this
      diameter).
    - model="real_lens": c = f^2 / (N (z_f - f)) * (z - z_f) / z * W / s. The sensor sits at the
      image distance of the focal plane, so the image magnification changes with focus ("focus
      breathing"), as in a physical camera; about f / (z_f - f) larger (4 % at 85 mm, 2 m).

    Parameters
    ----------
    focal_length_mm, f_number, focus_distance : float
        Focal length (mm), f-number and focus distance (metres), all > 0.
    sensor_width_mm : float, optional
        Sensor width in mm that the image width maps to (default 36, full frame).
    model : {"fixed_fov", "real_lens"}, optional
        See above (default "fixed_fov").
    max_coc : float, optional
        Clamp ``|CoC|`` to this many pixels (default: no clamp).

    Raises
    ------
    ValueError
        If a number is not finite and > 0, the model is unknown, or (real_lens) the focus
        distance does not exceed the focal length.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> lens = synthdof.ThinLens(focal_length_mm=85, f_number=1.8, focus_distance=2.0)
    >>> lens.coc(np.array([[1.0, 2.0, 12.0]], np.float32), width=4000).round(1)
    array([[-223. ,    0. ,  185.8]], dtype=float32)
    """

    def __init__(self, focal_length_mm, f_number, focus_distance, sensor_width_mm=36.0, *,
                 model="fixed_fov", max_coc=None):
        self.focal_length_mm = positive(focal_length_mm, "focal_length_mm")
        self.f_number = positive(f_number, "f_number")
        self.focus_distance = positive(focus_distance, "focus_distance")
        self.sensor_width_mm = positive(sensor_width_mm, "sensor_width_mm")
        if model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, got {model!r}")
        self.model = model
        self.max_coc = None if max_coc is None else positive(max_coc, "max_coc")
        f = self.focal_length_mm / 1000.0
        if model == "real_lens" and self.focus_distance <= f:
            raise ValueError(f"focus_distance: must exceed the focal length ({f} m) for the real-lens model, "
                             f"got {self.focus_distance}")

    def __repr__(self):
        return (f"ThinLens(focal_length_mm={self.focal_length_mm:g}, f_number={self.f_number:g}, "
                f"focus_distance={self.focus_distance:g}, sensor_width_mm={self.sensor_width_mm:g}, "
                f"model={self.model!r})")

    def coc_scale(self, width):
        """The blur scale A in c = A (1/z_f - 1/z) pixels (fixed_fov model).

        With disparity d = 1/z this is the K of coc_from_disparity.

        Parameters
        ----------
        width : float
            Image width in pixels.

        Returns
        -------
        float

        Examples
        --------
        >>> import synthdof
        >>> round(synthdof.ThinLens(50, 2.0, 1.0).coc_scale(1000), 6)
        34.722222
        """
        f = self.focal_length_mm / 1000.0
        s = self.sensor_width_mm / 1000.0
        return f * f * float(width) / (self.f_number * s)

    @arrays_from_pool  # its map reuses the pages a freed one left
    def coc(self, depth, width=None, *, max_coc=None, out=None, num_threads=None):
        """Signed CoC diameter in pixels of every pixel of a depth map.

        Parameters
        ----------
        depth : array_like
            (H, W) planar depth in metres, finite and > 0.
        width : float, optional
            Image width in pixels that the sensor width maps to (default: depth.shape[1]).
        max_coc : float, optional
            Clamp ``|c|`` to this many pixels (default: the lens's max_coc).
        out : ndarray, optional
            (H, W) float32 array to write into.
        num_threads : int, optional
            Threads (default: all cores).

        Returns
        -------
        ndarray
            (H, W) float32, negative in front of the focal plane.

        Raises
        ------
        ValueError
            If depth holds a value that is not finite and > 0 (the message names the pixel).

        Examples
        --------
        >>> import numpy as np
        >>> import synthdof
        >>> lens = synthdof.ThinLens(85, 1.8, 2.0)
        >>> lens.coc(np.full((2, 3), 2.0, np.float32))
        array([[0., 0., 0.],
               [0., 0., 0.]], dtype=float32)
        """
        d = np.asarray(depth) if isinstance(depth, np.ndarray) else depth
        d = as_map(d, "depth", finite=False)  # the kernel reports the first bad pixel
        if width is None:
            width = d.shape[1]
        width = positive(width, "width")
        mc = self.max_coc if max_coc is None else positive(max_coc, "max_coc")
        out = prepare_out(out, d.shape, [("depth", depth)])
        nt = resolve_threads(num_threads)
        A = self.coc_scale(width)
        if self.model == "fixed_fov":
            _core.coc_fixed_fov(d, A, 1.0 / self.focus_distance, mc or 0.0, out, nt)
        else:
            f = self.focal_length_mm / 1000.0
            _core.coc_real_lens(d, A / (self.focus_distance - f), self.focus_distance, f,
                                mc or 0.0, out, nt)
        return out

    def coc_at(self, z, width):
        """Signed CoC diameter in pixels at depth(s) z, in double precision (NumPy, no checks).

        Parameters
        ----------
        z : float or array_like
            Depth(s) in metres.
        width : float
            Image width in pixels.

        Returns
        -------
        float or ndarray
            float64.

        Examples
        --------
        >>> import synthdof
        >>> round(float(synthdof.ThinLens(85, 1.8, 2.0).coc_at(4.0, 4000)), 3)
        111.497
        """
        z = np.asarray(z, dtype=np.float64)
        A = self.coc_scale(width)
        if self.model == "fixed_fov":
            return A * (1.0 / self.focus_distance - 1.0 / z)
        f = self.focal_length_mm / 1000.0
        zf = self.focus_distance
        return A / (zf - f) * (z - zf) / z


@arrays_from_pool  # its map reuses the pages a freed one left
def coc_from_disparity(disparity, *, K, focus_disparity, max_coc=None, out=None, num_threads=None):
    """Signed CoC diameter c = K (focus_disparity - d) in pixels from a disparity map.

    Negative for nearer content (larger disparity), the same sign convention as ThinLens.coc.

    Parameters
    ----------
    disparity : array_like
        (H, W) disparity (or inverse depth), finite.
    K : float
        A *diameter* scale in pixels per unit disparity. Tools that define the blur *radius* as
        r = K' ``|d - d_f|`` (BokehMe's K, for instance) use K = 2 K'. With d = 1/z in 1/metres,
        K = ThinLens.coc_scale(width) reproduces the fixed-field-of-view thin lens exactly.
    focus_disparity : float
        The disparity in focus.
    max_coc : float, optional
        Clamp ``|c|`` to this many pixels.
    out : ndarray, optional
        (H, W) float32 array to write into.
    num_threads : int, optional
        Threads (default: all cores).

    Returns
    -------
    ndarray
        (H, W) float32.

    Raises
    ------
    ValueError
        If disparity holds NaN or inf (the message names the pixel), or K, focus_disparity or
        max_coc is not a finite number.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> synthdof.coc_from_disparity(np.array([[0.25, 0.5, 1.0]], np.float32), K=40.0, focus_disparity=0.5)
    array([[ 10.,   0., -20.]], dtype=float32)
    """
    d = as_map(disparity, "disparity", finite=False)
    K = finite(K, "K")
    fd = finite(focus_disparity, "focus_disparity")
    mc = None if max_coc is None else positive(max_coc, "max_coc")
    out = prepare_out(out, d.shape, [("disparity", disparity)])
    try:
        _core.coc_disparity(d, K, fd, mc or 0.0, out, resolve_threads(num_threads))
    except ValueError as e:
        raise ValueError(f"{e}; synthdof.refine(image, disparity, disparity=True) fills invalid "
                         "disparity from the surfaces around it") from None
    return out


def depth_to_disparity(depth, *, scale=1.0):
    """Disparity from depth: d = scale / depth.

    Parameters
    ----------
    depth : array_like
        (H, W) depth, finite and > 0.
    scale : float, optional
        Default 1: inverse depth (1/metres for depth in metres).

    Returns
    -------
    ndarray
        (H, W) float32.

    Raises
    ------
    ValueError
        If depth is not finite and > 0 everywhere, or scale is not > 0.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> synthdof.depth_to_disparity(np.array([[0.5, 2.0]]))
    array([[2. , 0.5]], dtype=float32)
    """
    z = as_map(depth, "depth")
    if (z <= 0).any():
        raise ValueError("depth: must be > 0 everywhere")
    return (np.float32(positive(scale, "scale")) / z).astype(np.float32)


def disparity_to_depth(disparity, *, scale=1.0):
    """Depth from disparity: z = scale / disparity.

    Parameters
    ----------
    disparity : array_like
        (H, W) disparity, finite and > 0.
    scale : float, optional
        Default 1.

    Returns
    -------
    ndarray
        (H, W) float32.

    Raises
    ------
    ValueError
        If disparity is not finite and > 0 everywhere, or scale is not > 0.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> synthdof.disparity_to_depth(np.array([[2.0, 0.5]]), scale=3.0)
    array([[1.5, 6. ]], dtype=float32)
    """
    d = as_map(disparity, "disparity")
    if (d <= 0).any():
        raise ValueError("disparity: must be > 0 everywhere to convert to depth")
    return (np.float32(positive(scale, "scale")) / d).astype(np.float32)


def focus_from_matte(depth, matte):
    """The focus distance that puts the matted subject in focus.

    The median depth of the confidently matted pixels (matte >= 0.5; all matted pixels weighted
    by the matte if there are none), taken in inverse depth, the space in which blur is linear.

    Parameters
    ----------
    depth : array_like
        (H, W) planar depth in metres, finite and > 0.
    matte : array_like
        (H, W) subject alpha in [0, 1].

    Returns
    -------
    float
        The focus distance in metres.

    Raises
    ------
    ValueError
        If depth is not finite and > 0 everywhere, or the matte is zero everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> import synthdof
    >>> depth = np.array([[2.0, 2.0, 8.0]], np.float32)
    >>> synthdof.focus_from_matte(depth, np.array([[1.0, 0.9, 0.0]], np.float32))
    2.0
    """
    z = as_map(depth, "depth")
    if (z <= 0).any():
        raise ValueError("depth: must be > 0 everywhere")
    a = as_matte(matte, z.shape)
    return float(1.0 / median_on_matte(1.0 / z.astype(np.float64), a))


def weighted_median(values, weights):
    """The weighted median: the smallest value whose cumulative weight (values in ascending
    order) reaches half the total weight.

    Parameters
    ----------
    values, weights : array_like
        Values and their weights (>= 0, not all zero), of the same size.

    Returns
    -------
    float

    Examples
    --------
    >>> from synthdof._lens import weighted_median
    >>> weighted_median([1.0, 2.0, 3.0], [1.0, 1.0, 5.0])
    3.0
    """
    v = np.asarray(values, np.float64).ravel()
    w = np.asarray(weights, np.float64).ravel()
    order = np.argsort(v)
    cw = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cw, 0.5 * cw[-1])])


def median_on_matte(values, matte):
    """The median of `values` over the confidently matted pixels (matte >= 0.5), or, where no
    pixel reaches 0.5, their median weighted by the matte.

    Parameters
    ----------
    values : ndarray
        (H, W) values, such as disparity or inverse depth (taken in float64).
    matte : ndarray
        (H, W) subject alpha in [0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the matte is zero everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from synthdof._lens import median_on_matte
    >>> median_on_matte(np.array([[1.0, 2.0], [3.0, 9.0]]), np.array([[1.0, 1.0], [1.0, 0.0]]))
    2.0
    """
    values = np.asarray(values)
    matte = np.asarray(matte)
    sel = matte >= 0.5
    if sel.any():
        return float(np.median(values[sel].astype(np.float64)))
    if not (matte > 0).any():
        raise ValueError("matte: is zero everywhere; nothing to focus on")
    return weighted_median(values, matte)
