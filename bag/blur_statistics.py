"""Blur statistics of a blurred/sharp pair, measured per patch, so that synthetic blur can be
compared with real blur (GoPro pairs) by the same estimator.

Two statistics over non-overlapping square patches (32x32 pixels by default):
- the best-fitting linear motion length: the length of the straight motion kernel (over a bank
  of lengths and directions) that, applied to the sharp patch, comes closest to the blurred one;
- the gradient energy ratio: mean squared gradient of the blurred patch over that of the sharp
  one (1 for an unblurred patch, falling towards 0 as blur grows); no kernel model needed.

Patches with too little texture to tell (flat sky, walls) are left out (NaN) of both.
Images are float arrays in [0, 1], (H, W, 3) RGB or (H, W) grey.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Kernel lengths tried (pixels travelled); 0 is "no blur". Denser where blur is short.
DEFAULT_LENGTHS = (0, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64)
DEFAULT_ANGLES = 12  # directions in [0, 180) degrees
MIN_TEXTURE = 2e-4  # mean squared gradient of the sharp patch below which it is left out


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A straight-line motion kernel of `length` pixels at `angle_deg`, summing to 1.

    Points along the segment are splatted bilinearly, so any real length works; length < 1 is
    the identity (a single 1).
    """
    if length < 1:
        return np.ones((1, 1), np.float32)
    size = 2 * math.ceil(length / 2 + 1) + 1
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    angle = math.radians(angle_deg)
    for t in np.linspace(-length / 2, length / 2, max(2, math.ceil(length * 4))):
        x, y = centre + t * math.cos(angle), centre - t * math.sin(angle)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    return kernel / kernel.sum()


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image @ np.array([0.299, 0.587, 0.114], np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _patch_means(values: np.ndarray, patch: int) -> np.ndarray:
    """(H, W) -> (H // patch, W // patch) means of non-overlapping patches."""
    rows, cols = values.shape[0] // patch, values.shape[1] // patch
    cut = values[: rows * patch, : cols * patch]
    return cut.reshape(rows, patch, cols, patch).mean(axis=(1, 3))


def _gradient_energy(grey: np.ndarray, patch: int) -> np.ndarray:
    dx = np.diff(grey, axis=1, append=grey[:, -1:])
    dy = np.diff(grey, axis=0, append=grey[-1:, :])
    return _patch_means(dx * dx + dy * dy, patch)


def _check_pair(blurred: np.ndarray, sharp: np.ndarray, patch: int) -> tuple[np.ndarray, ...]:
    blurred, sharp = _grey(blurred), _grey(sharp)
    if blurred.shape != sharp.shape:
        raise ValueError(f"blurred and sharp differ in size: {blurred.shape} vs {sharp.shape}")
    if min(blurred.shape) < patch:
        raise ValueError(f"images of {blurred.shape} are smaller than one {patch}-pixel patch")
    return blurred, sharp


def gradient_energy_ratio(
    blurred: np.ndarray, sharp: np.ndarray, patch: int = 32, min_texture: float = MIN_TEXTURE
) -> np.ndarray:
    """(H // patch, W // patch) blurred-to-sharp gradient energy per patch; NaN where flat."""
    blurred, sharp = _check_pair(blurred, sharp, patch)
    sharp_energy = _gradient_energy(sharp, patch)
    ratio = _gradient_energy(blurred, patch) / np.maximum(sharp_energy, 1e-12)
    return np.where(sharp_energy >= min_texture, ratio, np.nan)


def best_motion_length(
    blurred: np.ndarray,
    sharp: np.ndarray,
    patch: int = 32,
    lengths: tuple[float, ...] = DEFAULT_LENGTHS,
    angles: int = DEFAULT_ANGLES,
    min_texture: float = MIN_TEXTURE,
) -> np.ndarray:
    """(H // patch, W // patch) length (pixels) of the best-fitting straight motion kernel.

    For every kernel of the bank the sharp image is blurred whole (so patches see their
    neighbours' light), and each patch keeps the length whose result has the smallest mean
    squared difference from the blurred image. NaN where the sharp patch is too flat to tell.
    """
    blurred, sharp = _check_pair(blurred, sharp, patch)
    rows, cols = blurred.shape[0] // patch, blurred.shape[1] // patch
    best_error = np.full((rows, cols), np.inf, np.float64)
    best_length = np.zeros((rows, cols), np.float64)
    for length in lengths:
        for index in range(angles if length >= 1 else 1):
            kernel = motion_kernel(length, 180.0 * index / angles)
            estimate = cv2.filter2D(sharp, -1, kernel, borderType=cv2.BORDER_REFLECT)
            error = _patch_means((estimate - blurred) ** 2, patch)
            better = error < best_error
            best_error[better] = error[better]
            best_length[better] = length
    flat = _gradient_energy(sharp, patch) < min_texture
    return np.where(flat, np.nan, best_length)
