"""Residual blocks for ablation Model 1 (paper Table 1)."""

from __future__ import annotations

import torch
from torch import nn

from bag.layers.norm import NormSequential, NormStatistics, norm_layer


class ResidualBlock(nn.Module):
    """`num_blocks` ResNet blocks (3x3 conv, norm, ReLU, 3x3 conv, norm, plus identity)."""

    def __init__(self, channels: int, num_blocks: int, norm: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            NormSequential(
                nn.Conv2d(channels, channels, 3, padding=1),
                norm_layer(channels, norm),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 3, padding=1),
                norm_layer(channels, norm),
            )
            for _ in range(num_blocks)
        )

    def forward(
        self, x: torch.Tensor, norm_statistics: NormStatistics | None = None
    ) -> torch.Tensor:
        """(B, channels, h, w) -> the same shape; `norm_statistics`: see NormStatistics."""
        for block in self.blocks:
            x = x + block(x, norm_statistics)
        return x
