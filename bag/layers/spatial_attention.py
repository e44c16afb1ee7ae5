"""Spatial Attention Unit (SAU) of the blur-attention module (paper eq. 3)."""

from __future__ import annotations

import torch
from torch import nn


class SpatialAttention(nn.Module):
    """A = sigmoid(conv7x7([max_c(F), mean_c(F)])): one weight in [0, 1] per position."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat(
            [x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1
        )  # (B, 2, h, w)
        return torch.sigmoid(self.conv(pooled).float())  # (B, 1, h, w)
