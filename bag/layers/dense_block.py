"""DenseBlock Unit (DBU) of the blur-attention module (paper §3.2)."""

from __future__ import annotations

import torch
from torch import nn

from bag.layers.norm import NormSequential, NormStatistics, norm_layer


def conv_norm_relu(in_channels: int, out_channels: int, norm: str) -> NormSequential:
    """3x3 convolution, normalisation, ReLU: the unit every block here is made of."""
    return NormSequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        norm_layer(out_channels, norm),
        nn.ReLU(inplace=True),
    )


class DenseBlock(nn.Module):
    """`num_layers` densely connected 3x3 layers, then a 3x3 fusion back to `in_channels`.

    Layer k sees the concatenation of the block input and every earlier layer's output and
    adds `growth_rate` channels; the fusion layer maps the whole concatenation
    (`in_channels + num_layers * growth_rate`) back to `in_channels`, so the block keeps the
    trunk width (which the multi-level residual connection needs).
    """

    def __init__(self, in_channels: int, growth_rate: int, num_layers: int, norm: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            conv_norm_relu(in_channels + k * growth_rate, growth_rate, norm)
            for k in range(num_layers)
        )
        self.fusion = conv_norm_relu(in_channels + num_layers * growth_rate, in_channels, norm)

    def forward(
        self, x: torch.Tensor, norm_statistics: NormStatistics | None = None
    ) -> torch.Tensor:
        """(B, in_channels, h, w) -> the same shape; `norm_statistics`: see NormStatistics."""
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1), norm_statistics))
        return self.fusion(torch.cat(features, dim=1), norm_statistics)
