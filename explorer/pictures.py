"""The app's pictures: heatmap overlays, boxes, enlarged crops, the colour bar and the
epochs x modules grid of attention maps. Plain numpy in and out (maps float (H, W) in [0, 1],
pictures uint8 (H, W, 3)); matplotlib through `Figure` objects, no pyplot state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from bag.attention import MODULE_NAMES
from bag.visualize import figure_to_array, heatmap, to_uint8

COLORMAPS = ("inferno", "viridis", "magma", "turbo", "gray")  # offered in the app


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor, so small crops show crisp pixels."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


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
