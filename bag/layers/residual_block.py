"""Residual blocks for ablation Model 1 (paper Table 1)."""

from __future__ import annotations

import torch
from torch import nn

from bag.layers.norm import norm_layer


class ResidualBlock(nn.Module):
    """`num_blocks` ResNet blocks (3x3 conv, norm, ReLU, 3x3 conv, norm, plus identity)."""

    def __init__(self, channels: int, num_blocks: int, norm: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1),
                norm_layer(channels, norm),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 3, padding=1),
                norm_layer(channels, norm),
            )
            for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x
