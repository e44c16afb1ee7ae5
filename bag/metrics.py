"""Evaluation metrics: PSNR, SSIM (scikit-image), AUROC, and attention-map agreement with blur.

Images here are float numpy arrays (H, W, 3) in [0, 1] (RGB), as evaluation scripts hold them.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

SSIM_CONVENTION = (
    "skimage.metrics.structural_similarity on RGB float images in [0, 1]: data_range=1.0, "
    "channel_axis=-1 (SSIM per channel, then averaged), default 7x7 uniform window, "
    "K1=0.01, K2=0.03, sample covariance"
)
PSNR_CONVENTION = "10*log10(1/MSE) over all pixels and RGB channels of float images in [0, 1]"


def _check_pair(restored: np.ndarray, sharp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    restored = np.asarray(restored, dtype=np.float64)
    sharp = np.asarray(sharp, dtype=np.float64)
    if restored.shape != sharp.shape:
        raise ValueError(f"image shapes differ: {restored.shape} vs {sharp.shape}")
    return restored, sharp


def psnr(restored: np.ndarray, sharp: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of float images in [0, 1] (peak 1); inf if identical."""
    restored, sharp = _check_pair(restored, sharp)
    mse = float(np.mean((restored - sharp) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(1.0 / mse))


def ssim(restored: np.ndarray, sharp: np.ndarray) -> float:
    """Structural similarity of RGB float images (H, W, 3) in [0, 1]; see SSIM_CONVENTION."""
    restored, sharp = _check_pair(restored, sharp)
    return float(structural_similarity(restored, sharp, channel_axis=-1, data_range=1.0))


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for boolean `labels` (rank-based, ties count half).

    Equals the probability that a random positive scores above a random negative. Returns nan
    when either class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in size: {scores.size} vs {labels.size}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    # Mid-ranks (1-based) so tied scores share the average of the ranks they span.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mid_ranks = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = mid_ranks[inverse.ravel()]
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def attention_agreement(
    attention_maps: list[np.ndarray], blur_extent: np.ndarray, threshold_px: float
) -> list[float]:
    """AUROC of each attention map (H, W) for separating pixels with blur extent > threshold_px.

    Maps and the extent (pixels travelled during the exposure) are at the same resolution.
    An AUROC of 1 means the map is higher on every blurred pixel than on every sharp one, 0.5
    means no relation, below 0.5 means the map is higher where the image is sharp. nan when all
    pixels fall on one side of the threshold.
    """
    blur_extent = np.asarray(blur_extent)
    blurred = blur_extent > threshold_px
    results = []
    for attention in attention_maps:
        if np.shape(attention) != blur_extent.shape:
            raise ValueError(
                f"attention map shape {np.shape(attention)} differs from blur extent "
                f"shape {blur_extent.shape}"
            )
        results.append(auroc(attention, blurred))
    return results
