"""Attribution of an output patch with captum: Integrated Gradients from a blurred baseline and
the LAM progressive-blur path (Gu & Dong, CVPR 2021), LAM's diffusion index, and what one
attribution costs (so a caller can bound its settings and say how long it will take).

Attribution says which input pixels caused a chosen output, measured with gradients after the
fact; an attention map (bag.attention) is a weight the model computes. They answer different
questions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients


@dataclass(frozen=True)
class Box:
    """A pixel rectangle; right and bottom are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom)."""
        return (self.left, self.top, self.right, self.bottom)

    def shifted(self, dx: int, dy: int) -> Box:
        """The same box moved by (dx, dy)."""
        return Box(self.left + dx, self.top + dy, self.right + dx, self.bottom + dy)


def crop_boxes(
    point: tuple[float, float], size: tuple[int, int], patch_size: int, crop_size: int
) -> tuple[Box, Box]:
    """The patch centred on `point` (x, y) and the crop around it, both clamped to the image.

    `size` is (H, W). Returns (patch in image pixels, crop in image pixels); the crop is
    centred on the patch where the image borders allow.
    """
    height, width = size
    x, y = point
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"the point must have finite coordinates, got ({x}, {y})")
    patch_w, patch_h = min(patch_size, width), min(patch_size, height)
    left = min(max(int(round(x)) - patch_w // 2, 0), width - patch_w)
    top = min(max(int(round(y)) - patch_h // 2, 0), height - patch_h)
    patch = Box(left, top, left + patch_w, top + patch_h)
    crop_w, crop_h = min(max(crop_size, patch_w), width), min(max(crop_size, patch_h), height)
    crop_left = min(max(left + patch_w // 2 - crop_w // 2, 0), width - crop_w)
    crop_top = min(max(top + patch_h // 2 - crop_h // 2, 0), height - crop_h)
    return patch, Box(crop_left, crop_top, crop_left + crop_w, crop_top + crop_h)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with edge replication; sigma 0 returns x."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # (C, 1, 1, k)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)  # (C, 1, k, 1)
    blurred = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(blurred, vertical, groups=channels)


def patch_objective(
    output: torch.Tensor, patch: Box, target: Literal["edges", "intensity"]
) -> torch.Tensor:
    """The scalar per image (B,) that attribution explains, from output (B, 3, h, w).

    "edges" (LAM's choice): the summed gradient magnitude of the output inside the patch,
    i.e. how much detail the model put there. "intensity": the sum of the patch's values.
    """
    if target == "intensity":
        return output[:, :, patch.top : patch.bottom, patch.left : patch.right].sum(dim=(1, 2, 3))
    dy = output[:, :, 1:, :-1] - output[:, :, :-1, :-1]  # (B, 3, h-1, w-1)
    dx = output[:, :, :-1, 1:] - output[:, :, :-1, :-1]
    magnitude = torch.sqrt(dx * dx + dy * dy + 1e-8)
    return magnitude[:, :, patch.top : patch.bottom, patch.left : patch.right].sum(dim=(1, 2, 3))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all equal, near 1 when one dominates."""
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel()) + 1e-12
    count = flat.size
    index = np.arange(1, count + 1)
    return float(np.sum((2 * index - count - 1) * flat) / (count * np.sum(flat)))


def attribution_map(attribution: np.ndarray) -> np.ndarray:
    """|attribution| summed over channels, scaled so its maximum is 1: (h, w, 3) -> (h, w)."""
    magnitude = np.abs(attribution).sum(axis=-1)
    peak = float(magnitude.max())
    return (magnitude / peak if peak > 0 else magnitude).astype(np.float32)


def diffusion_index(attribution: np.ndarray) -> float:
    """LAM's diffusion index (1 - Gini of the attribution map) x 100: high = spread widely."""
    return (1.0 - gini(attribution_map(attribution))) * 100.0


@dataclass(frozen=True)
class AttributionSettings:
    """How a patch is explained."""

    patch_size: int = 16  # side of the explained output patch, pixels
    crop_size: int = 128  # side of the input crop the model is run on
    steps: int = 32  # path points, for each of the two methods
    blur_sigma: float = 8.0  # Gaussian sigma (pixels) of the baseline / the start of the path
    target: Literal["edges", "intensity"] = "edges"  # see `patch_objective`
    batch_size: int = 8  # path points per forward/backward pass


def path_points(settings: AttributionSettings) -> int:
    """Forward + backward passes of one attribution: steps + 1 path points for each method."""
    return 2 * (settings.steps + 1)


def attribution_work(settings: AttributionSettings, crop_pixels: int) -> float:
    """Megapixel path points of one attribution on a crop of `crop_pixels`: its time is about
    proportional to this (the model's cost grows with the pixels it runs on)."""
    return crop_pixels * path_points(settings) / 1e6


@dataclass(frozen=True)
class PatchAttribution:
    """Which input pixels produced an output patch, by two path methods (all on the crop)."""

    patch: Box  # the explained patch, in image pixels
    crop: Box  # the crop the model ran on, in image pixels
    input_crop: np.ndarray  # float32 (h, w, 3) in [0, 1]
    restored_crop: np.ndarray  # the model's output on the crop, float32 (h, w, 3) in [0, 1]
    integrated_gradients: np.ndarray  # float32 (h, w, 3), signed, blurred baseline
    progressive_blur: np.ndarray  # float32 (h, w, 3), signed, LAM path
    objective_change: float  # objective(input) - objective(blurred input)
    ig_gap: float  # |sum of IG - objective_change|, the completeness error of the integral
    lam_gap: float  # the same for the progressive-blur path
    seconds: float

    @property
    def patch_in_crop(self) -> Box:
        """The patch in crop pixels."""
        return self.patch.shifted(-self.crop.left, -self.crop.top)

    @property
    def ig_diffusion_index(self) -> float:
        """Diffusion index of the Integrated Gradients map."""
        return diffusion_index(self.integrated_gradients)

    @property
    def lam_diffusion_index(self) -> float:
        """Diffusion index of the progressive-blur (LAM) map."""
        return diffusion_index(self.progressive_blur)


def _progressive_blur_attribution(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float,
    steps: int,
    batch_size: int,
) -> torch.Tensor:
    """LAM path integral from blur(x, sigma) to x, sigma decreasing linearly to 0: (1, 3, h, w).

    Trapezoidal rule, sum_i (g_{i-1} + g_i) / 2 * (path_i - path_{i-1}) with g the gradient
    of the objective; LAM's reference code uses right endpoints (g_i), which needs about
    twice the steps for the same completeness gap.
    """
    sigmas = np.linspace(sigma, 0.0, steps + 1)
    path = torch.cat([gaussian_blur(x, float(s)) for s in sigmas])  # (steps + 1, 3, h, w)
    gradients = torch.empty_like(path)
    for first in range(0, steps + 1, batch_size):
        points = path[first : first + batch_size].detach().requires_grad_(True)
        (gradients[first : first + batch_size],) = torch.autograd.grad(
            objective(points).sum(), points
        )
    middle = (gradients[1:] + gradients[:-1]) / 2  # (steps, 3, h, w)
    return (middle * (path[1:] - path[:-1])).sum(0, keepdim=True)


def explain_patch(
    model: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    point: tuple[float, float],
    settings: AttributionSettings = AttributionSettings(),
    device: str | torch.device = "cpu",
) -> PatchAttribution:
    """Attribute the output patch at `point` (x, y) of `image` (H, W, 3) in [0, 1].

    `model` maps (B, 3, h, w) in [0, 1] to the restored (B, 3, h, w) (e.g. the generator's
    `.image`). It runs in float32 on a crop of `settings.crop_size` around the patch, so the
    explanation is of the model applied to that crop.
    """
    start = time.perf_counter()
    height, width = image.shape[:2]
    if min(height, width) < 16:
        raise ValueError(f"the image is {width}x{height}; explaining needs at least 16x16 pixels")
    patch, crop = crop_boxes(point, (height, width), settings.patch_size, settings.crop_size)
    local = patch.shifted(-crop.left, -crop.top)
    array = np.ascontiguousarray(image[crop.top : crop.bottom, crop.left : crop.right])
    x = torch.from_numpy(array).float().permute(2, 0, 1)[None].to(device)  # (1, 3, h, w)

    def objective(batch: torch.Tensor) -> torch.Tensor:
        return patch_objective(model(batch), local, settings.target)  # (B,)

    baseline = gaussian_blur(x, settings.blur_sigma)
    with torch.no_grad():
        restored = model(x)
        change = float(objective(x)[0] - objective(baseline)[0])
    integrated = IntegratedGradients(objective).attribute(
        x, baselines=baseline, n_steps=settings.steps, internal_batch_size=settings.batch_size
    )
    progressive = _progressive_blur_attribution(
        objective, x, settings.blur_sigma, settings.steps, settings.batch_size
    )

    def as_image(t: torch.Tensor) -> np.ndarray:
        return t[0].detach().permute(1, 2, 0).float().cpu().numpy()

    return PatchAttribution(
        patch=patch,
        crop=crop,
        input_crop=array.astype(np.float32),
        restored_crop=np.clip(as_image(restored), 0.0, 1.0),
        integrated_gradients=as_image(integrated),
        progressive_blur=as_image(progressive),
        objective_change=change,
        ig_gap=abs(float(integrated.sum()) - change),
        lam_gap=abs(float(progressive.sum()) - change),
        seconds=time.perf_counter() - start,
    )
