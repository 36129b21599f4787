"""synthdof: physically based synthetic depth of field from an all-in-focus image, a depth (or
disparity) map and an optional subject matte.

    import synthdof
    lens = synthdof.ThinLens(focal_length_mm=85, f_number=1.4, focus_distance=2.0)
    out = synthdof.render(image, depth, matte=matte, lens=lens,
                          aperture=synthdof.Aperture(blades=6))
"""
from . import _core
from ._aperture import Aperture
from ._batch import run_batch
from ._color import linear_to_srgb, srgb_to_linear
from ._diagnose import Diagnosis, compare, diagnose, fit_lens
from ._io import read_depth, read_image, read_matte, write_image
from ._kernels import gather, scatter
from ._lens import (ThinLens, coc_from_disparity, depth_to_disparity, disparity_to_depth,
                    focus_from_matte)
from ._render import recover_highlights, render
from ._sample import load_sample

__version__ = "0.1.0"

__all__ = [
    "Aperture", "ThinLens", "coc_from_disparity", "depth_to_disparity", "disparity_to_depth",
    "focus_from_matte", "gather", "linear_to_srgb", "load_sample", "openmp_enabled",
    "recover_highlights", "render", "scatter", "srgb_to_linear",
    "read_depth", "read_image", "read_matte", "write_image", "run_batch",
    "Diagnosis", "compare", "diagnose", "fit_lens",
]


def openmp_enabled():
    """True when the C core was built with OpenMP (threads); otherwise it runs on one thread."""
    return bool(_core.openmp_enabled())
