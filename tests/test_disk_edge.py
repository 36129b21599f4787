"""The edge of a defocused light against a camera that filters its pixels, written from the
definitions (not from the C code).

A path tracer such as Blender Cycles gives each pixel the scene's light weighted by a pixel filter
around the pixel's centre: Blackman-Harris, 1.5 px wide by default, which Cycles evaluates over
twice that width (film.cpp doubles a Blackman-Harris filter's width), one factor per axis. The
pinhole image is the scene filtered so and sampled at the pixel centres; the thin-lens image is
the scene convolved with the aperture, filtered and sampled the same way. A disk's edge in the
truth is therefore the light's filtered image convolved with the aperture, and the input already
carries the filter: the renderer must not apply it a second time.

Here a light (a disk of radius rho at a sub-pixel position, or a texture) is rasterised S x S
times finer than the pixels, filtered, and sampled at the pixel centres for the input; convolved
with the aperture as well for the truth.
"""
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.signal import fftconvolve

import synthdof
from reference import inside_unit_shape

S = 8  # samples per pixel and axis of the fine grid


def blackman_harris(x, width=1.5):
    """Cycles' pixel filter of `width` pixels: the 4-term Blackman-Harris window over [-width, width]."""
    v = 2.0 * np.pi * (x / (2.0 * width) + 0.5)
    w = 0.35875 - 0.48829 * np.cos(v) + 0.14128 * np.cos(2.0 * v) - 0.01168 * np.cos(3.0 * v)
    return np.where(np.abs(x) < width, w, 0.0)


def filtered(fine):
    """The fine-grid image filtered by the pixel filter (separable, mass-preserving)."""
    f = blackman_harris(np.arange(-1.5 * S, 1.5 * S + 1) / S)
    f /= f.sum()
    return ndi.convolve1d(ndi.convolve1d(fine, f, 0, mode="reflect"), f, 1, mode="reflect")


def at_pixel_centres(fine):
    """The fine grid's value at each pixel centre (the mean of the four samples around it)."""
    c = np.arange(fine.shape[0] // S) * S + S // 2
    return 0.25 * (fine[c][:, c] + fine[c - 1][:, c] + fine[c][:, c - 1] + fine[c - 1][:, c - 1])


def aperture_kernel(c, blades):
    """The aperture of diameter c on the fine grid, sum 1."""
    R = 0.5 * c
    m = int(np.ceil(R * S)) + 1
    u = np.arange(-m, m + 1) / S
    a = inside_unit_shape(u[None, :] / R, u[:, None] / R, blades, 0.0).astype(np.float64)
    return a / a.sum()


def camera(fine, c, blades, filters=1):
    """(pinhole image, thin-lens image) of the fine-grid scene `fine` (light per pixel area);
    filters=2: the thin-lens image filtered a second time, as a render that convolved the aperture
    with the pixel filter would make it."""
    lf = filtered(fine)
    lens = fftconvolve(lf, aperture_kernel(c, blades), mode="same")
    for _ in range(filters - 1):
        lens = filtered(lens)
    return at_pixel_centres(lf), at_pixel_centres(lens)


def light(n, cx, cy, rho, level):
    t = (np.arange(n * S) + 0.5) / S
    return (np.hypot(t[None, :] - cx, t[:, None] - cy) <= rho) * float(level)


def spread(image, c, blades):
    return synthdof.scatter(image.astype(np.float32), np.full(image.shape, c, np.float32),
                            aperture=synthdof.Aperture(blades), num_threads=1).astype(np.float64)


def rim(truth):
    """The disk's rim: where the truth is between 2 % and 98 % of its level, widened by 2 px."""
    level = truth.max()
    return ndi.binary_dilation((truth > 0.02 * level) & (truth < 0.98 * level), iterations=2)


@pytest.mark.parametrize("blades", [0, 6], ids=["disk", "hexagon"])
@pytest.mark.parametrize("c", [13.0, 21.0, 31.0])
@pytest.mark.parametrize("cx,cy,rho,rms_bound,max_bound", [(32.3, 32.6, 4.5, 0.01, 0.035),
                                                          (32.0, 31.8, 2.5, 0.01, 0.035),
                                                          (32.6, 32.2, 1.2, 0.022, 0.1)])
def test_a_lights_disk_edge_is_the_filtered_light_convolved_with_the_aperture(blades, c, cx, cy, rho,
                                                                              rms_bound, max_bound):
    """A light 2.4-9 px wide (the ground-truth scenes' lights are about 9 px), blurred to 13-31
    px: the render keeps the truth's light (within 0.07 %), and across the disk's rim it follows
    the truth, the light's filtered image convolved with the aperture, within 1 % of the disk's
    level RMS and 3.5 % at any pixel (measured 0.11-0.72 % and 0.4-2.6 %); a light 2.4 px wide
    within 2.2 % and 10 % (measured 0.50-1.66 % and 3.1-8.0 %: a footprint's row takes the
    shape's width at the row's middle, which the light no longer averages out). The render's
    footprints average the shape over each whole pixel and add no pixel filter of their own."""
    inp, truth = camera(light(64, cx, cy, rho, 100.0), c, blades)
    out = spread(inp, c, blades)
    assert out.sum() == pytest.approx(truth.sum(), rel=0.002)
    level, band = truth.max(), rim(truth)
    err = ((out - truth) / level)[band]
    assert np.sqrt(np.mean(err ** 2)) <= rms_bound
    assert np.abs(err).max() <= max_bound
