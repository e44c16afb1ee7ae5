"""Metrics: PSNR, SSIM, AUROC (ties, degenerate cases) and attention agreement."""

import math

import numpy as np
import pytest

from bag.metrics import attention_agreement, auroc, psnr, ssim


def _image(seed=0, shape=(32, 40, 3)):
    return np.random.default_rng(seed).random(shape)


def test_psnr_identical_is_inf_and_offset_is_known():
    image = _image() * 0.5
    assert psnr(image, image) == math.inf
    # A constant offset of 0.1 gives MSE 0.01, so 10*log10(1/0.01) = 20 dB.
    assert psnr(image + 0.1, image) == pytest.approx(20.0)
    assert psnr(image + 0.01, image) == pytest.approx(40.0)


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(_image(shape=(8, 8, 3)), _image(shape=(8, 9, 3)))


def test_ssim_identical_is_one_and_noise_lowers_it():
    image = _image()
    assert ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + np.random.default_rng(1).normal(0, 0.1, image.shape), 0, 1)
    assert ssim(noisy, image) < 0.95
    assert ssim(noisy, image) == pytest.approx(ssim(image, noisy))


def test_auroc_separated_reversed_random_and_degenerate():
    labels = np.array([0, 0, 0, 1, 1], dtype=bool)
    assert auroc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), labels) == 0.0
    rng = np.random.default_rng(0)
    random_value = auroc(rng.random(20000), rng.random(20000) > 0.5)
    assert abs(random_value - 0.5) < 0.02
    assert math.isnan(auroc(np.arange(4.0), np.zeros(4, dtype=bool)))
    assert math.isnan(auroc(np.arange(4.0), np.ones(4, dtype=bool)))


def test_auroc_ties_count_half_and_match_pair_counting():
    assert auroc(np.ones(6), np.array([0, 1, 0, 1, 0, 1], dtype=bool)) == 0.5
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=200).astype(float)  # many ties
    labels = rng.random(200) > 0.4
    positives, negatives = scores[labels], scores[~labels]
    greater = (positives[:, None] > negatives[None, :]).sum()
    equal = (positives[:, None] == negatives[None, :]).sum()
    expected = (greater + 0.5 * equal) / (positives.size * negatives.size)
    assert auroc(scores, labels) == pytest.approx(expected)


def test_attention_agreement_per_map():
    extent = np.zeros((16, 16))
    extent[:, 8:] = 12.0  # right half moved 12 px
    follows_blur = extent / 12.0
    opposite = 1.0 - follows_blur
    flat = np.full_like(extent, 0.3)
    values = attention_agreement([follows_blur, opposite, flat], extent, threshold_px=5.0)
    assert values == [1.0, 0.0, 0.5]
    assert math.isnan(attention_agreement([flat], extent, threshold_px=20.0)[0])
    with pytest.raises(ValueError, match="differs"):
        attention_agreement([flat[:8]], extent, threshold_px=5.0)
