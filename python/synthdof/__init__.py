"""synthdof: physically based synthetic depth of field from an all-in-focus image, a depth (or
disparity) map and an optional subject matte.

    import synthdof
    lens = synthdof.ThinLens(focal_length_mm=85, f_number=1.4, focus_distance=2.0)
    out = synthdof.render(image, depth, matte=matte, lens=lens,
                          aperture=synthdof.Aperture(blades=6))
"""
import os as _os

# OpenMP threads that wait for work spin by default (GNU OpenMP: 300 000 spins per wait). With
# one other busy process on the cores, a spinning thread takes the time its partner needs, and a
# 12 MP render on 2 threads became several times slower than on 1 (benchmarks/README.md). Idle
# threads therefore sleep, unless the environment chose a policy; it is read when the OpenMP
# runtime loads, so this has to come before the first import of the core.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from . import _core  # noqa: E402
from ._aperture import Aperture
from ._batch import run_batch
from ._color import linear_to_srgb, srgb_to_linear
from ._diagnose import Diagnosis, diagnose
from ._fit_lens import fit_lens
from ._io import read_depth, read_image, read_matte, write_image
from ._kernels import gather, scatter
from ._lens import (ThinLens, coc_from_disparity, depth_to_disparity, disparity_to_depth,
                    focus_from_matte)
from ._metrics import compare
from ._refine import refine
from ._render import recover_highlights, render
from ._sample import load_ground_truth, load_sample

__version__ = "0.1.0"

__all__ = [
    "Aperture", "ThinLens", "coc_from_disparity", "depth_to_disparity", "disparity_to_depth",
    "focus_from_matte", "gather", "linear_to_srgb", "load_ground_truth", "load_sample", "openmp_enabled",
    "scratch_memory",
    "recover_highlights", "refine", "render", "scatter", "srgb_to_linear",
    "read_depth", "read_image", "read_matte", "write_image", "run_batch",
    "Diagnosis", "compare", "diagnose", "fit_lens",
]


def scratch_memory(limit_mb=None):
    """Scratch memory the C core keeps between calls, in bytes.

    A render's large scratch buffers (about 5x the image for a 12 MP render) are kept when it
    returns, up to a limit, so the next call of a similar size reuses them instead of mapping
    fresh memory: on virtual machines that return freed memory to the host, fresh memory costs
    up to a second per gigabyte. The arrays of `refine`, `render`, `scatter`, `gather` and the
    CoC maps (the ones they return too) come from the same pool and go back to it when they are
    freed.

    Parameters
    ----------
    limit_mb : float, optional
        New limit in megabytes (default at import: 2048, or the environment's
        SYNTHDOF_SCRATCH_MB); 0 keeps nothing and releases what is kept now. None (default)
        leaves the limit as it is.

    Returns
    -------
    int
        The bytes kept now.

    Raises
    ------
    ValueError
        If limit_mb is negative or not finite.

    Examples
    --------
    >>> import synthdof
    >>> synthdof.scratch_memory(0)  # release everything kept
    0
    >>> synthdof.scratch_memory(2048)  # keep up to 2 GiB again (the default)
    0
    """
    if limit_mb is None:
        return int(_core.scratch_limit(-1))
    from ._validate import positive
    mb = positive(limit_mb, "limit_mb", allow_zero=True)
    return int(_core.scratch_limit(int(mb * (1 << 20))))


def _scratch_from_env():
    import os
    v = os.environ.get("SYNTHDOF_SCRATCH_MB")
    if v is None or not v.strip():
        return
    try:
        scratch_memory(float(v))
    except (TypeError, ValueError):
        raise ValueError(f"SYNTHDOF_SCRATCH_MB: expected a number of megabytes >= 0, got {v!r}") from None


_scratch_from_env()


def openmp_enabled():
    """Whether the C core was built with OpenMP.

    Returns
    -------
    bool
        True when the kernels can use threads (`num_threads`); otherwise they run on one thread,
        with the same results.

    Examples
    --------
    >>> import synthdof
    >>> synthdof.openmp_enabled() in (True, False)
    True
    """
    return bool(_core.openmp_enabled())
