"""refine and render on a real photograph: the Middlebury motorcycle that scikit-image ships
(the left view of a stereo pair and its disparity, inf where the stereo match failed: 7 % of the
pixels, in 3,366 holes beside every near edge, on chrome and on untextured walls)."""
import numpy as np
import pytest
from scipy import ndimage
from skimage import data

import synthdof

# A box on the motorcycle's tank, below its cable and inside its outline (rows, columns of the
# 500 x 741 left view): the focus.
TANK = np.s_[185:225, 400:455]
# Blur per unit of disparity: the back wall (disparity ~10-20 against the tank's ~53) renders
# with a CoC of 25-35 px.
K = 0.8
RING_PX = 8  # valid pixels this close to a hole are its surroundings


@pytest.fixture(scope="module")
def motorcycle():
    left, _, disparity = data.stereo_motorcycle()
    refined, matte = synthdof.refine(left, disparity, disparity=True)
    assert matte is None
    return left, disparity, refined


def hole_surroundings(disparity):
    """Per hole region (8-connected invalid pixels): (its pixels' slice and mask, the sorted
    valid disparities within RING_PX pixels of it)."""
    invalid = ~np.isfinite(disparity)
    labels, _ = ndimage.label(invalid, structure=np.ones((3, 3)))
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        box = tuple(slice(max(s.start - RING_PX, 0), s.stop + RING_PX) for s in box)
        region = labels[box] == i
        ring = ndimage.binary_dilation(region, iterations=RING_PX) & ~invalid[box]
        yield box, region, np.sort(disparity[box][ring])


def test_the_photo_has_holes_and_the_renderer_refuses_them(motorcycle):
    left, disparity, _ = motorcycle
    invalid = ~np.isfinite(disparity)
    assert 0.05 < invalid.mean() < 0.1
    with pytest.raises(ValueError, match="disparity"):
        synthdof.coc_from_disparity(disparity, K=K, focus_disparity=50.0)
    depth = (1.0 / disparity).astype(np.float32)  # 0 in the holes
    lens = synthdof.ThinLens(focal_length_mm=50.0, f_number=2.0, focus_distance=1 / 50.0)
    with pytest.raises(ValueError, match="refine"):  # the message says what to do
        synthdof.render(left, depth, lens=lens)


def test_refined_disparity_is_finite_and_keeps_the_valid_pixels(motorcycle):
    _, disparity, refined = motorcycle
    assert refined.shape == disparity.shape and refined.dtype == np.float32
    assert np.isfinite(refined).all() and (refined > 0).all()
    valid = np.isfinite(disparity)
    # a stereo disparity this clean is not noisy: refine leaves it as it is
    np.testing.assert_allclose(refined[valid], disparity[valid], rtol=0.01)


def test_every_hole_takes_a_value_of_its_surroundings(motorcycle):
    _, disparity, refined = motorcycle
    outside = 0
    for box, region, ring in hole_surroundings(disparity):
        filled = refined[box][region]
        outside += int(np.count_nonzero((filled < ring[0] * 0.99) | (filled > ring[-1] * 1.01)))
    assert outside == 0


def test_holes_continue_a_surface_instead_of_mixing_two(motorcycle):
    # A hole between the motorcycle and the wall must take one side's disparity, not their
    # average. Measure how far each filled pixel lies from the nearest disparity present around
    # its hole: an isotropic normalised Gaussian fill (sigma 2-8 px) leaves 8.8-12 % of the hole
    # pixels more than 5 % away from every surrounding disparity; a surface-following fill far fewer.
    _, disparity, refined = motorcycle
    gaps = []
    for box, region, ring in hole_surroundings(disparity):
        filled = refined[box][region]
        i = np.clip(np.searchsorted(ring, filled), 1, ring.size - 1)
        nearest = np.minimum(np.abs(filled - ring[i - 1]), np.abs(filled - ring[i]))
        gaps.append(nearest / np.maximum(ring[i - 1], ring[0]))
    gaps = np.concatenate(gaps)
    assert gaps.size == np.count_nonzero(~np.isfinite(disparity))
    assert np.mean(gaps > 0.05) < 0.06


def high_frequency_energy(image):
    """Per-pixel energy of the luminance minus its 3x3 mean (fine detail)."""
    y = image.mean(axis=2)
    return (y - ndimage.uniform_filter(y, 3)) ** 2


def test_render_keeps_the_motorcycle_sharp_and_blurs_the_garage(motorcycle):
    left, _, refined = motorcycle
    focus = float(np.median(refined[TANK]))
    assert 50.0 < focus < 56.0  # the tank's own disparity
    coc = synthdof.coc_from_disparity(refined, K=K, focus_disparity=focus)
    image = synthdof.srgb_to_linear(left)
    out = synthdof.render(image, coc=coc)
    assert out.shape == image.shape and np.isfinite(out).all()
    # energy: the render moves light, it neither makes nor loses it
    assert abs(out.sum(dtype=np.float64) / image.sum(dtype=np.float64) - 1.0) < 0.01
    in_focus = ndimage.binary_erosion(np.abs(coc) < 1.0, iterations=3)
    background = np.abs(coc) > 16.0
    assert in_focus.sum() > 5000 and background.sum() > 100_000
    e_in, e_out = high_frequency_energy(image), high_frequency_energy(out)
    kept_in_focus = e_out[in_focus].sum() / e_in[in_focus].sum()
    kept_background = e_out[background].sum() / e_in[background].sum()
    assert kept_in_focus > 0.9, kept_in_focus
    assert kept_background < 0.1, kept_background
    # the tank itself is rendered as it was
    np.testing.assert_allclose(out[TANK], image[TANK], atol=0.02)


def test_focus_on_the_shelf_blurs_the_motorcycle_in_front(motorcycle):
    left, _, refined = motorcycle
    image = synthdof.srgb_to_linear(left)
    box = np.s_[190:270, 615:675]  # the cardboard box on the shelf behind the front wheel
    focus = float(np.median(refined[box]))
    assert 18.0 < focus < 24.0
    coc = synthdof.coc_from_disparity(refined, K=K, focus_disparity=focus)
    assert np.abs(coc[TANK]).min() > 20.0  # the tank lies well in front of the focal plane
    out = synthdof.render(image, coc=coc)
    e_in, e_out = high_frequency_energy(image), high_frequency_energy(out)
    assert e_out[TANK].sum() / e_in[TANK].sum() < 0.1
    assert e_out[box].sum() / e_in[box].sum() > 0.8
