"""Plain convolution stack for the "Plain" ablation (paper Table 1)."""

from __future__ import annotations

import torch
from torch import nn

from bag.layers.dense_block import conv_norm_relu
from bag.layers.norm import NormSequential, NormStatistics


class PlainBlock(nn.Module):
    """`num_layers` 3x3 conv + norm + ReLU layers at constant width, no skip connections."""

    def __init__(self, channels: int, num_layers: int, norm: str) -> None:
        super().__init__()
        self.layers = NormSequential(
            *(conv_norm_relu(channels, channels, norm) for _ in range(num_layers))
        )

    def forward(
        self, x: torch.Tensor, norm_statistics: NormStatistics | None = None
    ) -> torch.Tensor:
        """(B, channels, h, w) -> the same shape; `norm_statistics`: see NormStatistics."""
        return self.layers(x, norm_statistics)
