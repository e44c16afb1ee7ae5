"""Normalisation layers: an InstanceNorm that tiled inference can hand image-level statistics,
the `NormStatistics` it is handed, and the `NormSequential` that passes them along."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class NormStatistics:
    """Per-layer InstanceNorm statistics, passed explicitly to `Generator.forward`.

    Tiled inference normalises every tile with the statistics of the whole image (a tile's own
    statistics differ from the image's, so tiles would not match the untiled result). It runs
    one pass over the image with `NormStatistics()`, which records: every InstanceNorm
    normalises by its own input, as without statistics, and stores that input's mean and
    variance. `frozen()` then gives statistics that every tile's pass normalises with.
    """

    def __init__(
        self, moments: Mapping[nn.Module, tuple[torch.Tensor, torch.Tensor]] | None = None
    ):
        # moments[layer] = (mean, biased variance), each (B, C) float32; None: record them.
        self.recording = moments is None
        self.moments: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = dict(moments or {})

    def frozen(self) -> NormStatistics:
        """Statistics that replay what this one recorded (every layer must have been seen)."""
        return NormStatistics(self.moments)

    def normalize(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`x` (B, C, h, w) float32 minus the mean, over the standard deviation, for `layer`."""
        if self.recording:
            var, mean = torch.var_mean(x, dim=(2, 3), correction=0)  # (B, C) each
            self.moments[layer] = (mean, var)
        elif layer not in self.moments:
            raise ValueError(
                "these NormStatistics have no entry for an InstanceNorm layer: they were "
                "recorded with another generator; record them with this one"
            )
        else:
            mean, var = self.moments[layer]
        return (x - mean[:, :, None, None]) * torch.rsqrt(var[:, :, None, None] + layer.eps)


class InstanceNorm(nn.Module):
    """Affine InstanceNorm2d that can normalise with statistics given to `forward`.

    Without statistics it is exactly `nn.InstanceNorm2d(affine=True)` (same parameter names).
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, statistics: NormStatistics | None = None) -> torch.Tensor:
        """Normalise `x` (B, C, h, w) by its own statistics, or by (or into) `statistics`."""
        if statistics is None:
            # Per-image statistics: GroupNorm with one channel per group is InstanceNorm, and
            # its fused kernel (statistics accumulated in float32 for bf16/fp16 inputs) makes a
            # bf16 CPU training step 1.45x faster than the op-by-op version below
            # (bench/training.py).
            return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)
        # Statistics in float32 even under bf16/fp16 autocast: variances lose too much otherwise.
        y = statistics.normalize(self, x.float())
        y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class NormSequential(nn.Sequential):
    """`nn.Sequential` (same state_dict keys) whose forward hands `statistics` to its norms.

    Without statistics it is `nn.Sequential.forward` itself, so training runs unchanged.
    """

    def forward(self, x: torch.Tensor, statistics: NormStatistics | None = None) -> torch.Tensor:
        if statistics is None:
            return super().forward(x)
        for layer in self:
            takes_statistics = isinstance(layer, (InstanceNorm, NormSequential))
            x = layer(x, statistics) if takes_statistics else layer(x)
        return x


def norm_layer(channels: int, norm: str) -> nn.Module:
    """InstanceNorm (the paper's choice) or BatchNorm (ablation Model 2)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return InstanceNorm(channels)
