"""Pictures of maps: colormapped heatmaps on a fixed [0, 1] scale, overlays, colour bars, boxes,
the epochs x modules attention grid and the validation curves.

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
from PIL import Image, ImageDraw

COLORMAPS = ("inferno", "viridis", "magma", "turbo", "gray")  # offered in the app
MODULE_NAMES = ("A1", "A2", "A3", "A4")


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


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor, so small crops show crisp pixels."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def colormap_table(colormap: str) -> np.ndarray:
    """The 256-entry uint8 RGB lookup table (256, 3) of a matplotlib colormap."""
    colours = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, 256))[:, :3]
    return to_uint8(colours)


def heatmap(values: np.ndarray, colormap: str = "inferno") -> np.ndarray:
    """float (H, W) on the fixed scale [0, 1] (values outside are clipped) -> uint8 (H, W, 3)."""
    index = (np.clip(np.nan_to_num(values), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return colormap_table(colormap)[index]


def overlay(
    image: np.ndarray,
    values: np.ndarray,
    colormap: str = "inferno",
    opacity: float | np.ndarray = 0.6,
) -> np.ndarray:
    """Blend the heatmap of `values` (H, W) in [0, 1] over `image` (H, W, 3); uint8 out.

    `opacity` is one number or a per-pixel (H, W) map, in [0, 1].
    """
    base = to_uint8(image).astype(np.float32)
    heat = heatmap(values, colormap).astype(np.float32)
    alpha = np.clip(np.asarray(opacity, dtype=np.float32), 0.0, 1.0)
    if alpha.ndim == 2:
        alpha = alpha[..., None]  # (H, W, 1): broadcast over RGB
    return (base * (1.0 - alpha) + heat * alpha + 0.5).astype(np.uint8)


def weighted_overlay(
    image: np.ndarray, values: np.ndarray, colormap: str = "inferno", max_opacity: float = 0.85
) -> np.ndarray:
    """`overlay` with a per-pixel opacity of max_opacity * sqrt(value): pixels with no
    attribution show the image unchanged."""
    opacity = max_opacity * np.sqrt(np.clip(np.nan_to_num(values), 0.0, 1.0))
    return overlay(image, values, colormap, opacity)


def draw_box(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    colour: tuple[int, int, int] = (0, 255, 255),
    thickness: int = 2,
) -> np.ndarray:
    """Copy of uint8 `image` with the rectangle (left, top, right, bottom) drawn, right/bottom
    exclusive; the outline is drawn just outside the box so the boxed pixels stay visible."""
    picture = Image.fromarray(to_uint8(image))
    left, top, right, bottom = box
    ImageDraw.Draw(picture).rectangle(
        (left - thickness, top - thickness, right + thickness - 1, bottom + thickness - 1),
        outline=colour,
        width=thickness,
    )
    return np.asarray(picture)


def figure_to_array(figure: Figure, dpi: int = 100) -> np.ndarray:
    """Render a matplotlib figure to uint8 (H, W, 3)."""
    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def colorbar(
    colormap: str = "inferno", label: str = "attention (fixed scale 0 to 1)", width: int = 640
) -> np.ndarray:
    """A horizontal colour bar with ticks at 0, 0.25, ..., 1 as uint8 (H, W, 3)."""
    figure = Figure(figsize=(width / 100, 0.85))
    axes = figure.add_axes((0.03, 0.55, 0.94, 0.3))
    gradient = np.linspace(0.0, 1.0, 256)[None]
    axes.imshow(gradient, aspect="auto", cmap=colormap, vmin=0.0, vmax=1.0, extent=(0, 1, 0, 1))
    axes.set_yticks([])
    axes.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0])
    axes.tick_params(labelsize=9)
    axes.set_xlabel(label, fontsize=9, labelpad=2)
    return figure_to_array(figure)


def attention_grid(
    maps: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str],
    colormap: str = "inferno",
    cell_width: float = 2.4,
) -> np.ndarray:
    """Grid of maps (rows x modules), all on the shared scale [0, 1], with one colour bar.

    `maps[r][m]` is float (H, W) in [0, 1]; returns uint8 (H, W, 3).
    """
    rows, cols = len(maps), len(maps[0])
    height, width = maps[0][0].shape
    cell_height = cell_width * height / width
    figure = Figure(figsize=(cols * cell_width + 1.3, rows * cell_height + 0.9))
    grid = figure.add_gridspec(
        rows,
        cols + 1,
        width_ratios=[1.0] * cols + [0.06],
        left=0.09,
        right=0.93,
        top=1.0 - 0.45 / (rows * cell_height + 0.9),
        bottom=0.3 / (rows * cell_height + 0.9),
        wspace=0.04,
        hspace=0.06,
    )
    image = None
    for r in range(rows):
        for c in range(cols):
            axes = figure.add_subplot(grid[r, c])
            image = axes.imshow(maps[r][c], cmap=colormap, vmin=0.0, vmax=1.0)
            axes.set_xticks([])
            axes.set_yticks([])
            if r == 0:
                axes.set_title(MODULE_NAMES[c] if c < len(MODULE_NAMES) else f"A{c + 1}")
            if c == 0:
                axes.set_ylabel(row_labels[r], fontsize=10)
    bar_axes = figure.add_subplot(grid[:, cols])
    figure.colorbar(image, cax=bar_axes, label="attention (shared scale 0 to 1)")
    return figure_to_array(figure)


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
