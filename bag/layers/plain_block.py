"""Plain convolution stack for the "Plain" ablation (paper Table 1)."""

from __future__ import annotations

import torch
from torch import nn

from bag.layers.dense_block import conv_norm_relu


class PlainBlock(nn.Module):
    """`num_layers` 3x3 conv + norm + ReLU layers at constant width, no skip connections."""

    def __init__(self, channels: int, num_layers: int, norm: str) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *(conv_norm_relu(channels, channels, norm) for _ in range(num_layers))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
