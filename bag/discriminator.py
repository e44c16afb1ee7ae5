"""PatchGAN critic for WGAN-GP training: a map of unbounded scores, one per 70x70 patch."""

from __future__ import annotations

import torch
from torch import nn

KERNEL_SIZE = 4
PADDING = 1
NEGATIVE_SLOPE = 0.2


def receptive_field(num_layers: int = 3) -> int:
    """Receptive field, in input pixels, of one output score of `PatchDiscriminator(num_layers)`."""
    # Layer strides from input to output: num_layers strided convs, then two stride-1 convs.
    strides = [2] * num_layers + [1, 1]
    size = 1
    for stride in reversed(strides):
        size = (size - 1) * stride + KERNEL_SIZE
    return size


class PatchDiscriminator(nn.Module):
    """PatchGAN critic (pix2pix NLayerDiscriminator without normalisation and without sigmoid).

    With the default `num_layers=3`: 4x4 convolutions 3->64->128->256 with stride 2, 256->512
    with stride 1 and 512->1 with stride 1, LeakyReLU 0.2 between them. Each output score sees a
    70x70 input patch. There is no BatchNorm because the WGAN-GP gradient penalty is defined per
    sample and BatchNorm would couple the samples of a batch; there is no sigmoid because a
    Wasserstein critic outputs unbounded scores.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.num_layers = num_layers
        layers: list[nn.Module] = []
        channels = in_channels
        for index in range(num_layers):
            out_channels = base_channels * min(2**index, 8)
            layers += [
                nn.Conv2d(channels, out_channels, KERNEL_SIZE, stride=2, padding=PADDING),
                nn.LeakyReLU(NEGATIVE_SLOPE),
            ]
            channels = out_channels
        out_channels = base_channels * min(2**num_layers, 8)
        layers += [
            nn.Conv2d(channels, out_channels, KERNEL_SIZE, stride=1, padding=PADDING),
            nn.LeakyReLU(NEGATIVE_SLOPE),
            nn.Conv2d(out_channels, 1, KERNEL_SIZE, stride=1, padding=PADDING),
        ]
        self.layers = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        """Side, in input pixels, of the square patch that one output score depends on."""
        return receptive_field(self.num_layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score map (B, 1, h, w) for images (B, C, H, W) in [0, 1]; higher means more real.

        With the default 3 layers h = H/8 - 2 (H a multiple of 8), so H and W must be >= 24.
        """
        return self.layers(image * 2.0 - 1.0)
