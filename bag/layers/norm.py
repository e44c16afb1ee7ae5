"""Normalisation layers: an InstanceNorm that tiled inference feeds with image-level statistics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class StatisticsRecorder:
    """Accumulates the per-channel mean and variance of every InstanceNorm input it is given."""

    def __init__(self) -> None:
        self.sums: dict[InstanceNorm, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def add(self, layer: InstanceNorm, x: torch.Tensor) -> None:
        """Add the input `x` (B, C, h, w) of `layer` (sums in float64: images can be large)."""
        x = x.double()
        total, total_sq, count = self.sums.get(layer, (0.0, 0.0, 0))
        self.sums[layer] = (
            total + x.sum(dim=(2, 3)),
            total_sq + x.square().sum(dim=(2, 3)),
            count + x.shape[-2] * x.shape[-1],
        )

    def statistics(self) -> dict[InstanceNorm, tuple[torch.Tensor, torch.Tensor]]:
        """Mean and (biased) variance per layer, each (B, C) float32."""
        result = {}
        for layer, (total, total_sq, count) in self.sums.items():
            mean = total / count
            var = (total_sq / count - mean.square()).clamp_min(0)
            result[layer] = (mean.float(), var.float())
        return result


class InstanceNorm(nn.Module):
    """Affine InstanceNorm2d whose statistics can be supplied from outside (for tiled inference).

    With `statistics` unset it is exactly `nn.InstanceNorm2d(affine=True)` (same parameter
    names). Tiled inference sets `statistics` to the statistics of the whole image, so that
    every tile is normalised as it would be in one untiled pass.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.statistics: tuple[torch.Tensor, torch.Tensor] | None = None
        self.recorder: StatisticsRecorder | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.statistics is None and self.recorder is None:
            # Per-image statistics: GroupNorm with one channel per group is InstanceNorm, and
            # its fused kernel (statistics accumulated in float32 for bf16/fp16 inputs) makes a
            # bf16 CPU training step 1.45x faster than the op-by-op version below
            # (bench/training.py).
            return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)
        # Statistics in float32 even under bf16/fp16 autocast: variances lose too much otherwise.
        xf = x.float()
        if self.recorder is not None:
            self.recorder.add(self, xf)
        if self.statistics is None:
            var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        else:
            mean = self.statistics[0][:, :, None, None]  # (B, C, 1, 1)
            var = self.statistics[1][:, :, None, None]
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def norm_layer(channels: int, norm: str) -> nn.Module:
    """InstanceNorm (the paper's choice) or BatchNorm (ablation Model 2)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return InstanceNorm(channels)
