"""The Blur-Attention-GAN generator (paper §3): config, blur-attention module and generator."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bag.layers import (
    DenseBlock,
    NormSequential,
    NormStatistics,
    PlainBlock,
    ResidualBlock,
    SpatialAttention,
    norm_layer,
)

BLOCKS = ("dense", "residual", "plain")
NORMS = ("instance", "batch")


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a BAG generator; stored in every checkpoint.

    The ablations of the paper's Table 1 are configs, not classes:
    Plain = `block="plain", spatial_attention=False`; Model 1 = `block="residual",
    spatial_attention=False`; Model 2 = `norm="batch", spatial_attention=False`;
    Model 3 = `spatial_attention=False`; Model 4 = `multi_level_residual=False`; BAG = defaults.
    Use `dataclasses.replace(GeneratorConfig.paper(), ...)` to make them.
    """

    base_channels: int = 64  # C: encoder widths are C, 2C, 4C; the trunk width is 4C
    growth_rate: int = 72  # channels added by each densely connected layer
    num_modules: int = 4  # blur-attention modules (A1..A4)
    dense_layers: int = 5  # densely connected layers before the fusion layer
    block: str = "dense"  # "dense" (BAG), "residual" (Model 1) or "plain" (Plain)
    norm: str = "instance"  # "instance" (BAG) or "batch" (Model 2)
    spatial_attention: bool = True  # the SAU; off for Plain and Models 1-3
    multi_level_residual: bool = True  # input of module k+1 = F_out_k + E; else + F_in_k
    # InstanceNorm after the decoder's two transposed convolutions (the paper's reading). Off,
    # the decoder keeps the scale of its input: a per-image normalisation just before the
    # output fixes the residual's energy per image (a sharp photo gets as much change as a
    # blurred one) and erases any uniform scale the attention maps put on the features.
    decoder_norm: bool = True

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        for name in ("base_channels", "growth_rate", "num_modules", "dense_layers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")

    @classmethod
    def paper(cls) -> GeneratorConfig:
        """The paper's size: C=64, growth 72 (about 11.6 M parameters)."""
        return cls(base_channels=64, growth_rate=72)

    @classmethod
    def compact(cls) -> GeneratorConfig:
        """The CPU preset of the shipped checkpoints (about 0.96 M parameters)."""
        return cls(base_channels=16, growth_rate=24)

    @classmethod
    def tiny(cls) -> GeneratorConfig:
        """A few thousand parameters, for tests."""
        return cls(base_channels=4, growth_rate=4, dense_layers=2)

    @property
    def width(self) -> int:
        """Channels of the trunk (the encoder output and every module)."""
        return 4 * self.base_channels

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-serialisable."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GeneratorConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown GeneratorConfig fields: {sorted(unknown)}")
        return cls(**values)


class GeneratorOutput(NamedTuple):
    """What `Generator.forward` returns."""

    image: torch.Tensor  # (B, 3, H, W) in [0, 1]
    attention: list[torch.Tensor]  # A1..A4, each (B, 1, ceil(H/4), ceil(W/4)) in [0, 1]


class BlurAttentionModule(nn.Module):
    """BAM (paper eq. 2): F' = DBU(F_in), A = SAU(F'), F_out = A * F'."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        width = config.width
        if config.block == "dense":
            self.body = DenseBlock(width, config.growth_rate, config.dense_layers, config.norm)
        elif config.block == "residual":
            # As many convolutions as the dense block has (dense_layers + 1, rounded up to pairs).
            self.body = ResidualBlock(width, math.ceil((config.dense_layers + 1) / 2), config.norm)
        else:
            self.body = PlainBlock(width, config.dense_layers + 2, config.norm)
        self.attention = SpatialAttention() if config.spatial_attention else None

    def forward(
        self, x: torch.Tensor, norm_statistics: NormStatistics | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, W, h, w) -> F_out (B, W, h, w) and A (B, 1, h, w), or None without the SAU."""
        features = self.body(x, norm_statistics)  # (B, W, h, w)
        if self.attention is None:
            return features, None
        attention = self.attention(features)  # (B, 1, h, w)
        return features * attention.to(features.dtype), attention


class Generator(nn.Module):
    """Encoder -> four blur-attention modules -> decoder, plus a global skip connection."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c, norm = config.base_channels, config.norm
        self.encoder = NormSequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, c, 7),
            norm_layer(c, norm),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            norm_layer(2 * c, norm),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1),
            norm_layer(4 * c, norm),
            nn.ReLU(inplace=True),
        )
        self.trunk = nn.ModuleList(BlurAttentionModule(config) for _ in range(config.num_modules))
        # The last layer is a stride-1 7x7 convolution (what a stride-1 transposed convolution
        # is) after reflection padding, which avoids dark borders.
        self.decoder = NormSequential(
            nn.ConvTranspose2d(4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1),
            norm_layer(2 * c, norm) if config.decoder_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1),
            norm_layer(c, norm) if config.decoder_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(c, 3, 7),
        )
        # Start close to the identity (output = input): the residual is small at first, which
        # makes short training runs converge much faster and does not block any gradient.
        with torch.no_grad():
            self.decoder[-1].weight.mul_(0.1)
            self.decoder[-1].bias.zero_()

    def forward(
        self, x: torch.Tensor, norm_statistics: NormStatistics | None = None
    ) -> GeneratorOutput:
        """Restore `x` (B, 3, H, W) in [0, 1]; H, W >= 8, any size.

        Every InstanceNorm normalises by its own input unless `norm_statistics` is given: tiled
        inference records them over the whole image, then normalises each tile with them
        (see `bag.layers.NormStatistics`). Training never passes them.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height < 8 or width < 8:
            raise ValueError(f"images must be at least 8x8 pixels, got {height}x{width}")
        # Pad to a multiple of the total stride (4) by reflection; crop back at the end.
        pad_h, pad_w = (-height) % 4, (-width) % 4
        signed = x * 2 - 1  # the network works in [-1, 1]
        if pad_h or pad_w:
            signed = F.pad(signed, (0, pad_w, 0, pad_h), mode="reflect")
        encoded = self.encoder(signed, norm_statistics)  # E: (B, 4C, H/4, W/4)
        features, attention = encoded, []
        for module in self.trunk:
            out, weights = module(features, norm_statistics)
            if weights is not None:
                attention.append(weights[..., : math.ceil(height / 4), : math.ceil(width / 4)])
            features = out + (encoded if self.config.multi_level_residual else features)
        residual = self.decoder(features, norm_statistics)  # (B, 3, H, W)
        restored = (signed.float() + torch.tanh(residual.float())).clamp(-1, 1)
        image = (restored[..., :height, :width] + 1) / 2
        return GeneratorOutput(image=image, attention=attention)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of `module`."""
    return sum(p.numel() for p in module.parameters())
