"""Arrays to pictures for the library and the scripts: resizing, heatmaps on a fixed [0, 1]
scale, figures rendered to arrays, and the validation curves of a training run (the app's
own pictures, overlays, boxes and grids, are in explorer/pictures.py).

Images here are numpy arrays: maps are float (H, W) in [0, 1], pictures are uint8 (H, W, 3).
Matplotlib is used through `Figure` objects (no pyplot state), so drawing is thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float (H, W[, 3]) in [0, 1] -> uint8, rounded; uint8 input is returned unchanged."""
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize float (H, W) or (H, W, C) with area averaging down and bilinear up (float32)."""
    if array.shape[:2] == (height, width):
        return array.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    tensor = tensor[None, None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)[None]
    shrinking = height <= array.shape[0] and width <= array.shape[1]
    if shrinking:
        resized = F.interpolate(tensor, size=(height, width), mode="area")
    else:
        resized = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    resized = resized[0, 0] if array.ndim == 2 else resized[0].permute(1, 2, 0)
    return resized.numpy()


def fit_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the longest side is at most `max_side` (never enlarged)."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink(array: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale float (H, W[, C]) so that its longest side is at most `max_side`."""
    return resize(array, *fit_size(array.shape[0], array.shape[1], max_side))


def colormap_table(colormap: str) -> np.ndarray:
    """The 256-entry uint8 RGB lookup table (256, 3) of a matplotlib colormap."""
    colours = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, 256))[:, :3]
    return to_uint8(colours)


def heatmap(values: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """float (H, W) on the fixed scale [0, 1] (values outside are clipped) -> uint8 (H, W, 3)."""
    index = (np.clip(np.nan_to_num(values), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return colormap_table(colormap)[index]


def figure_to_array(figure: Figure, dpi: int = 100) -> np.ndarray:
    """Render a matplotlib figure to uint8 (H, W, 3)."""
    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def validation_curves(
    records: Sequence[dict], marked_epoch: int | None = None, width_inches: float = 9.0
) -> Figure:
    """PSNR and SSIM per epoch from metrics.jsonl records, with the blurred-input baseline.

    Each record holds "epoch", "val_psnr", "val_ssim" and optionally "val_psnr_blurred" /
    "val_ssim_blurred". `marked_epoch` draws a vertical line (the epoch shown elsewhere).
    """
    figure = Figure(figsize=(width_inches, 3.2), layout="constrained")
    panels = (("val_psnr", "PSNR (dB)"), ("val_ssim", "SSIM"))
    for index, (key, title) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if points:
            epochs, values = zip(*points, strict=True)
            axes.plot(epochs, values, marker="o", markersize=3, label="restored (BAG)")
        baseline = [
            (r["epoch"], r[f"{key}_blurred"])
            for r in records
            if r.get(f"{key}_blurred") is not None
        ]
        if baseline:
            epochs, values = zip(*baseline, strict=True)
            axes.plot(epochs, values, linestyle="--", color="gray", label="blurred input")
        if marked_epoch is not None:
            axes.axvline(marked_epoch, color="tab:red", linewidth=1, alpha=0.6, label="shown epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(f"validation {title}")
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return figure
