"""Per-patch blur statistics: the estimators recover known blur and refuse bad input."""

import cv2
import numpy as np
import pytest

from bag.blur_statistics import best_motion_length, gradient_energy_ratio, motion_kernel
from bag.sources import dead_leaves


@pytest.fixture(scope="module")
def sharp() -> np.ndarray:
    return dead_leaves((160, 224), np.random.default_rng(3))


@pytest.mark.parametrize("length, angle", [(3.0, 0.0), (11.5, 37.0), (40.0, 120.0)])
def test_motion_kernel_sums_to_one_and_spans_its_length(length, angle):
    kernel = motion_kernel(length, angle)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    ys, xs = np.nonzero(kernel > 1e-4)
    span = np.hypot(xs.max() - xs.min(), ys.max() - ys.min())
    assert length - 1 <= span <= length + 2.5


def test_identity_kernel_for_no_motion():
    assert motion_kernel(0.0, 45.0).tolist() == [[1.0]]


@pytest.mark.parametrize("length", [6, 16, 32])
def test_best_motion_length_recovers_a_known_linear_blur(sharp, length):
    blurred = cv2.filter2D(sharp, -1, motion_kernel(length, 30.0), borderType=cv2.BORDER_REFLECT)
    lengths = best_motion_length(blurred, sharp)
    assert lengths.shape == (160 // 32, 224 // 32)
    assert np.nanmedian(lengths) == length


def test_sharp_pair_measures_no_blur_and_ratio_one(sharp):
    assert np.nanmax(best_motion_length(sharp, sharp)) == 0
    np.testing.assert_allclose(gradient_energy_ratio(sharp, sharp), 1.0, equal_nan=True)


def test_gradient_energy_ratio_falls_with_blur(sharp):
    ratios = [
        np.nanmedian(gradient_energy_ratio(cv2.filter2D(sharp, -1, motion_kernel(n, 0.0)), sharp))
        for n in (4, 12, 30)
    ]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0


def test_flat_patches_are_left_out():
    flat = np.full((64, 96, 3), 0.5, np.float32)
    assert np.isnan(best_motion_length(flat, flat)).all()
    assert np.isnan(gradient_energy_ratio(flat, flat)).all()


def test_mismatched_or_tiny_pairs_are_refused(sharp):
    with pytest.raises(ValueError, match="differ in size"):
        best_motion_length(sharp, sharp[:-1])
    with pytest.raises(ValueError, match="smaller than one 32-pixel patch"):
        gradient_energy_ratio(sharp[:20], sharp[:20])
