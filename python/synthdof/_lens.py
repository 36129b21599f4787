"""Circle of confusion: thin-lens models, disparity conventions and focusing on a matte."""
import numpy as np

from . import _core
from ._validate import as_map, as_matte, finite, positive, prepare_out, resolve_threads

MODELS = ("fixed_fov", "real_lens")


class ThinLens:
    """A thin lens focused at `focus_distance` metres.

    `coc(depth)` gives the signed circle-of-confusion *diameter in pixels*: negative in front of
    the focal plane, positive behind it, zero on it.

    model="fixed_fov" (default): c = f^2 W / (N s) * (1/z_f - 1/z). The field of view stays fixed
      while focusing, which is what path tracers (Blender Cycles, Mitsuba) render and what the
      ground truth in this project's tests measures (light disks at 0.97-0.99 of this diameter).
    model="real_lens": c = f^2 / (N (z_f - f)) * (z - z_f) / z * W / s. The sensor sits at the
      image distance of the focal plane, so the image magnification changes with focus ("focus
      breathing"), as in a physical camera; about f / (z_f - f) larger (4 % at 85 mm, 2 m).

    f = focal_length_mm, N = f_number, s = sensor_width_mm (the sensor width the image width W maps
    to), z_f = focus_distance, z = depth (planar depth along the optical axis, metres).
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
        """A in c = A (1/z_f - 1/z) for an image `width` pixels wide (fixed_fov model); with
        disparity d = 1/z this is the K of coc_from_disparity."""
        f = self.focal_length_mm / 1000.0
        s = self.sensor_width_mm / 1000.0
        return f * f * float(width) / (self.f_number * s)

    def coc(self, depth, width=None, *, max_coc=None, out=None, num_threads=None):
        """Signed CoC diameter in pixels, float32 (H, W). `width` is the image width in pixels the
        sensor width maps to (default: depth.shape[1]); `max_coc` clamps |c|."""
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
        """Signed CoC diameter (pixels) at depth(s) z, in double precision (NumPy, no checks)."""
        z = np.asarray(z, dtype=np.float64)
        A = self.coc_scale(width)
        if self.model == "fixed_fov":
            return A * (1.0 / self.focus_distance - 1.0 / z)
        f = self.focal_length_mm / 1000.0
        zf = self.focus_distance
        return A / (zf - f) * (z - zf) / z


def coc_from_disparity(disparity, *, K, focus_disparity, max_coc=None, out=None, num_threads=None):
    """Signed CoC diameter c = K (focus_disparity - d) in pixels, negative for nearer content
    (larger disparity), the same sign convention as ThinLens.coc.

    K is a *diameter* scale in pixels per unit disparity. Tools that define the blur *radius* as
    r = K' |d - d_f| (BokehMe's K, for instance) use K = 2 K'. With d = 1/z in 1/metres,
    K = ThinLens.coc_scale(width) reproduces the fixed-field-of-view thin lens exactly."""
    d = as_map(disparity, "disparity", finite=False)
    K = finite(K, "K")
    fd = finite(focus_disparity, "focus_disparity")
    mc = None if max_coc is None else positive(max_coc, "max_coc")
    out = prepare_out(out, d.shape, [("disparity", disparity)])
    _core.coc_disparity(d, K, fd, mc or 0.0, out, resolve_threads(num_threads))
    return out


def depth_to_disparity(depth, *, scale=1.0):
    """d = scale / depth (scale = 1: inverse depth in 1/metres). Depth must be finite and > 0."""
    z = as_map(depth, "depth")
    if (z <= 0).any():
        raise ValueError("depth: must be > 0 everywhere")
    return (np.float32(positive(scale, "scale")) / z).astype(np.float32)


def disparity_to_depth(disparity, *, scale=1.0):
    """z = scale / disparity. Disparity must be finite and > 0."""
    d = as_map(disparity, "disparity")
    if (d <= 0).any():
        raise ValueError("disparity: must be > 0 everywhere to convert to depth")
    return (np.float32(positive(scale, "scale")) / d).astype(np.float32)


def focus_from_matte(depth, matte):
    """Focus distance (metres) that puts the matted subject in focus: the median depth of the
    confidently matted pixels (matte >= 0.5; all matted pixels weighted by the matte if there are
    none), taken in inverse depth, the space in which blur is linear."""
    z = as_map(depth, "depth")
    if (z <= 0).any():
        raise ValueError("depth: must be > 0 everywhere")
    a = as_matte(matte, z.shape)
    sel = a >= 0.5
    if sel.any():
        inv = 1.0 / z[sel].astype(np.float64)
        return float(1.0 / np.median(inv))
    if not (a > 0).any():
        raise ValueError("matte: is zero everywhere; nothing to focus on")
    inv = 1.0 / z.astype(np.float64).ravel()
    w = a.astype(np.float64).ravel()
    order = np.argsort(inv)
    cw = np.cumsum(w[order])
    return float(1.0 / inv[order][np.searchsorted(cw, 0.5 * cw[-1])])
