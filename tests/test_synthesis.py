"""Synthetic motion blur: zero motion, extent where things move, determinism, centring, sizes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bag.sources import dead_leaves
from bag.synthesis import BlurSample, BlurSettings, synthesize_blur, synthesize_crop

STILL = BlurSettings(still_probability=1.0, max_layers=0)
NO_NOISE = (0.0, 0.0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A 96x96 textured sharp image (dead leaves: edges everywhere)."""
    return dead_leaves((96, 96), np.random.default_rng(0), min_radius=2.0)


def camera_only(length: float, **changes) -> BlurSettings:
    """Straight-ish camera path of exactly `length` px, no rotation, zoom, layers or noise."""
    fields = dict(
        camera_path_px=(length, length),
        still_probability=0.0,
        max_rotation_deg=0.0,
        max_zoom=0.0,
        max_layers=0,
        noise_std=NO_NOISE,
    )
    fields.update(changes)
    return BlurSettings(**fields)


def gradient_energy(image: np.ndarray) -> float:
    gray = image.mean(axis=-1)
    return float((np.diff(gray, axis=0) ** 2).mean() + (np.diff(gray, axis=1) ** 2).mean())


def test_zero_motion_gives_back_the_sharp_image(image):
    exact = synthesize_blur(
        image,
        np.random.default_rng(1),
        BlurSettings(still_probability=1.0, max_layers=0, noise_std=NO_NOISE),
    )
    assert isinstance(exact, BlurSample)
    np.testing.assert_allclose(exact.blurred, image, atol=1e-5)
    assert not exact.blur_extent.any()

    noisy = synthesize_blur(
        image,
        np.random.default_rng(1),
        BlurSettings(still_probability=1.0, max_layers=0, noise_std=(0.01, 0.01)),
    )
    residual = noisy.blurred - image
    assert 0.003 < residual.std() < 0.02  # noise only: mild, zero-mean
    assert abs(residual.mean()) < 0.002
    assert not noisy.blur_extent.any()


def test_zero_length_camera_path_is_still(image):
    settings = camera_only(0.0)
    sample = synthesize_blur(image, np.random.default_rng(2), settings)
    np.testing.assert_allclose(sample.blurred, image, atol=1e-5)
    assert not sample.blur_extent.any()


def test_outputs_are_float_images_and_sharp_is_the_input(image):
    for seed in range(6):
        sample = synthesize_blur(image, np.random.default_rng(seed))
        assert sample.blurred.shape == sample.sharp.shape == image.shape
        assert sample.blur_extent.shape == image.shape[:2]
        for array in sample:
            assert array.dtype == np.float32
        assert 0.0 <= sample.blurred.min() and sample.blurred.max() <= 1.0
        assert sample.blur_extent.min() >= 0.0
        # The middle sub-frame is the identity: GoPro's sharp frame is the middle one.
        assert np.array_equal(sample.sharp, image)


def test_extent_is_zero_where_nothing_moved(image):
    """Still camera, one moving layer: extent 0 outside the layer, and pixels away from its
    path keep their sharp values."""
    settings = BlurSettings(
        still_probability=1.0,
        max_layers=1,
        layer_path_px=(12.0, 12.0),
        layer_radius=(0.15, 0.15),
        noise_std=NO_NOISE,
    )
    moving_layers = 0
    for seed in range(8):
        sample = synthesize_blur(image, np.random.default_rng(seed), settings)
        moved = sample.blur_extent > 0
        if not moved.any():
            continue  # this draw had no layer (layers are uniform in 0..max_layers)
        moving_layers += 1
        assert 0.02 < moved.mean() < 0.6  # only the blob moved, not the whole frame
        # Inside the blob each point travelled about the layer's 12 px (plus a rotation).
        assert 8.0 < np.median(sample.blur_extent[moved]) < 20.0
        # Far from the blob (farther than its path), the image is untouched.
        reach = cv2.dilate(moved.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
        far = ~reach
        assert far.mean() > 0.1
        np.testing.assert_allclose(sample.blurred[far], image[far], atol=1e-5)
        # ... and near it, it changed (the layer really moved).
        assert np.abs(sample.blurred - image)[moved].mean() > 0.005
    assert moving_layers >= 3


@pytest.mark.parametrize("wobble", [0.0, 1.5])
def test_extent_grows_with_path_length(image, wobble):
    means = []
    for length in (4.0, 12.0, 36.0):
        sample = synthesize_blur(
            image, np.random.default_rng(3), camera_only(length, path_wobble=wobble)
        )
        extent = sample.blur_extent
        # Pure translation: every point travels the same path, as long as the camera's.
        assert extent.max() - extent.min() < 1e-3
        assert 0.9 * length <= extent.mean() <= length + 1e-3
        means.append(float(extent.mean()))
    assert means == sorted(means)


def test_rotation_makes_the_extent_vary_across_the_image(image):
    settings = camera_only(10.0, max_rotation_deg=5.0)
    extents = [
        synthesize_blur(image, np.random.default_rng(s), settings).blur_extent for s in range(4)
    ]
    assert max(float(e.max() - e.min()) for e in extents) > 1.0


def test_seeded_synthesis_is_deterministic(image):
    first = synthesize_blur(image, np.random.default_rng(7))
    again = synthesize_blur(image, np.random.default_rng(7))
    other = synthesize_blur(image, np.random.default_rng(8))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first.blurred, other.blurred)


def test_large_paths_blur_and_small_ones_barely(image):
    sharp_energy = gradient_energy(image)
    big = synthesize_blur(image, np.random.default_rng(4), camera_only(30.0))
    small = synthesize_blur(image, np.random.default_rng(4), camera_only(1.0))
    assert gradient_energy(big.blurred) < 0.3 * sharp_energy
    assert gradient_energy(small.blurred) > 0.5 * sharp_energy


DOTS = ((24, 24), (30, 70), (72, 44))  # (y, x) of single bright pixels, far apart


def dots_image() -> np.ndarray:
    image = np.zeros((96, 96, 3), np.float32)
    for y, x in DOTS:
        image[y, x] = 1.0
    return image


def streak_centroids(blurred: np.ndarray) -> list[np.ndarray]:
    """Intensity-weighted centroid (y, x) of the streak around each dot (within 20 px)."""
    gray = blurred.mean(axis=-1)
    centroids = []
    for y, x in DOTS:
        window = gray[y - 20 : y + 21, x - 20 : x + 21]
        ys, xs = np.mgrid[y - 20 : y + 21, x - 20 : x + 21]
        centroids.append(np.array([(window * ys).sum(), (window * xs).sum()]) / window.sum())
    return centroids


def test_blur_is_centred_on_the_sharp_frame():
    """The middle sub-frame is the sharp one: a straight, even streak is centred on its dot
    (a path starting at the sharp frame would put the centre half a path away), and a
    curved streak still passes through it."""
    image = dots_image()
    for seed in range(4):
        straight = camera_only(16.0, path_wobble=0.0, gamma=1.0)
        sample = synthesize_blur(image, np.random.default_rng(seed), straight)
        for (y, x), centroid in zip(DOTS, streak_centroids(sample.blurred), strict=True):
            assert np.hypot(*(centroid - (y, x))) < 0.3
            assert sample.blurred[y, x].max() < 0.3  # spread out: a streak, not a dot

        curved = camera_only(16.0, path_wobble=1.5, gamma=1.0)
        sample = synthesize_blur(image, np.random.default_rng(seed), curved)
        streak = sample.blurred.mean(axis=-1)
        for y, x in DOTS:
            peak = streak[y - 20 : y + 21, x - 20 : x + 21].max()
            assert streak[y - 1 : y + 2, x - 1 : x + 2].max() > 0.25 * peak


def test_linear_light_averaging_differs_from_srgb_averaging(image):
    linear = synthesize_blur(image, np.random.default_rng(5), camera_only(20.0))
    srgb = synthesize_blur(image, np.random.default_rng(5), camera_only(20.0, gamma=1.0))
    # Averaging in linear light brightens blurred edges (mean of x^2.2 then ^1/2.2 >= mean x).
    assert linear.blurred.mean() > srgb.blurred.mean() + 0.005


def test_srgb_average_probability_mixes_the_two_averagings(image):
    def brightening(probability: float, seed: int) -> float:
        settings = camera_only(20.0, srgb_average_probability=probability)
        sample = synthesize_blur(image, np.random.default_rng(seed), settings)
        return float(sample.blurred.mean() - sample.sharp.mean())

    linear = [brightening(0.0, seed) for seed in range(8)]
    srgb = [brightening(1.0, seed) for seed in range(8)]
    mixed = [brightening(0.5, seed) for seed in range(8)]
    assert min(linear) > max(srgb) + 0.005  # linear light always brightens, sRGB does not
    assert any(abs(m - b) < 1e-3 for m, b in zip(mixed, srgb, strict=True))
    assert any(m > max(srgb) + 0.005 for m in mixed)
    with pytest.raises(ValueError, match="srgb_average_probability"):
        BlurSettings(srgb_average_probability=1.5)


def test_default_blur_sizes_cover_real_camera_shake():
    """The defaults must reach GoPro-size blur (tens of px), not only a few px."""
    image = dead_leaves((64, 64), np.random.default_rng(1))
    means = [
        float(synthesize_blur(image, np.random.default_rng(seed)).blur_extent.mean())
        for seed in range(60)
    ]
    assert 5.0 < np.median(means) < 25.0
    assert np.percentile(means, 90) > 25.0
    assert np.percentile(means, 10) < 5.0
    assert max(means) < 80.0


def test_synthesize_crop_sizes_and_small_images(image):
    sample = synthesize_crop(image, np.random.default_rng(0), 40)
    assert sample.blurred.shape == sample.sharp.shape == (40, 40, 3)
    assert sample.blur_extent.shape == (40, 40)
    # The sharp crop is a crop of the image (found in it exactly).
    found = cv2.matchTemplate(image, sample.sharp, cv2.TM_SQDIFF)
    assert found.min() < 1e-6

    tiny = image[:20, :30]
    sample = synthesize_crop(tiny, np.random.default_rng(0), (32, 24))
    assert sample.blurred.shape == (32, 24, 3)
    assert sample.blur_extent.shape == (32, 24)


def test_invalid_inputs_are_refused(image):
    with pytest.raises(ValueError, match="odd"):
        BlurSettings(sub_frames=10)
    with pytest.raises(ValueError, match="camera_path_px"):
        BlurSettings(camera_path_px=(10.0, 2.0))
    with pytest.raises(ValueError, match="float"):
        synthesize_blur((image * 255).astype(np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        synthesize_blur(image[..., 0], np.random.default_rng(0))
