"""Inference: `Deblurrer` restores images of any size, tiled with image-level normalisation."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bag.checkpoint import load_generator
from bag.imageio import load_image, to_pil
from bag.layers.norm import NormStatistics
from bag.model import Generator, GeneratorOutput

# The shipped generator: inside an installed package (pyproject.toml's bag.shipped), else in the
# checkout's checkpoints/ beside bag/ (a checkout, or an editable install).
_INSTALLED_CHECKPOINT = Path(__file__).resolve().parent / "shipped" / "generator.safetensors"
DEFAULT_CHECKPOINT = (
    _INSTALLED_CHECKPOINT
    if _INSTALLED_CHECKPOINT.is_file()
    else Path(__file__).resolve().parent.parent / "checkpoints" / "generator.safetensors"
)
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MIN_SIDE = 16  # smaller inputs are padded by edge replication, restored, and cropped back


@dataclass(frozen=True, eq=False)
class DeblurResult:
    """A restored image, its attention maps at the network's resolution, and the timing.

    Everything is numpy float32 in [0, 1], as `bag.imageio.load_image` returns the input: the
    image is not rounded to 8 bits, so metrics and 16-bit exports see the network's own values
    (`to_pil()` / `to_uint8()` give the 8-bit image for saving or display). The maps are kept
    as the network computes them, one value per 4 x 4 block of the input; upsampling them to
    the input's size is the caller's choice (`attention_at_input_size()`), since it multiplies
    their memory by 16 and most uses (display, statistics, tiling) do not need it.
    """

    image: np.ndarray  # RGB float32 (H, W, 3) in [0, 1], the size of the (EXIF-oriented) input
    attention: tuple[np.ndarray, ...]  # A1..A4, float32 (ceil(H/4), ceil(W/4)) in [0, 1]
    seconds: float  # wall time of the forward pass(es), synchronised on CUDA
    tiles: int  # tiles per pass (1 = one untiled pass)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the input and of the restored image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def to_uint8(self) -> np.ndarray:
        """The restored image as uint8 (H, W, 3), rounded (what `to_pil()` saves)."""
        return np.asarray(self.to_pil())

    def to_pil(self) -> Image.Image:
        """The restored image as an 8-bit RGB PIL image, rounded, e.g. to save as PNG."""
        return to_pil(self.image)

    def attention_at_input_size(self) -> tuple[np.ndarray, ...]:
        """A1..A4 upsampled bilinearly to float32 (H, W) in [0, 1], one value per pixel."""
        return tuple(upsample_attention(a, *self.size) for a in self.attention)


def upsample_attention(attention: np.ndarray, height: int, width: int) -> np.ndarray:
    """(ceil(H/4), ceil(W/4)) -> float32 (H, W) in [0, 1]: each value covers a 4x4 input block."""
    quarter = torch.from_numpy(np.ascontiguousarray(attention, dtype=np.float32))[None, None]
    full = F.interpolate(quarter, scale_factor=4, mode="bilinear", align_corners=False)
    return full[0, 0, :height, :width].clamp(0, 1).numpy()


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_precision(device: torch.device) -> str:
    """fp32 on CUDA; bf16 on CPUs with native bf16 (AVX512-BF16), else fp32.

    Measured with bench/inference.py on compact models: on a 2-core CPU bf16 is about 1.4x
    faster than fp32 and within 0.05/255 of it; on an H200 fp32 was already the fastest
    (1280x720 in 7.6 ms, bf16 9.1 ms, fp16 8.9 ms), so reduced precision buys nothing there.
    """
    if device.type == "cpu" and torch.cpu._is_avx512_bf16_supported():
        return "bfloat16"
    return "float32"


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` shared."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def _ramp(size: int, left: int, right: int) -> torch.Tensor:
    """Blending weights along one tile axis: linear ramps over the overlaps with its neighbours."""
    t = torch.arange(size, dtype=torch.float32) + 0.5
    weight = torch.ones(size)
    if left > 0:
        weight = torch.minimum(weight, t / left)
    if right > 0:
        weight = torch.minimum(weight, (size - t) / right)
    return weight.clamp_min(1e-3)


class Deblurrer:
    """Restores photos with a BAG generator, on CPU or CUDA, tiled when they are large.

    An image of at most `max_untiled_pixels` is restored in one untiled pass; only a larger one
    is tiled (`tile` x `tile` pixels, `overlap` shared), which bounds the memory of a pass.
    Tiled inference normalises every tile with statistics of the whole image, handed to the
    generator as `NormStatistics` (InstanceNorm would otherwise normalise each tile by its own
    statistics and tiles would not match the untiled result). The statistics come from one
    untiled pass over the image, downscaled to at most `statistics_pixels` when it is larger:
    exact up to that size, an estimate above.
    (Re-measuring them over the tiles with the estimated statistics does not converge: errors
    in early layers are amplified by later ones.)

    `metadata` is what the checkpoint records (epoch, metrics, recipe); `from_checkpoint` sets
    it, and a Deblurrer built around a generator in memory has {} unless given one.
    """

    def __init__(
        self,
        generator: Generator,
        device: str | torch.device = "auto",
        tile: int | None = 512,
        overlap: int = 64,
        precision: str = "auto",
        max_pixels: int = 50_000_000,
        statistics_pixels: int = 4_000_000,
        max_untiled_pixels: int = 4_000_000,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if tile is not None and (tile < 64 or tile % 4):
            raise ValueError(f"tile must be a multiple of 4 and at least 64, got {tile}")
        if tile is not None and not 0 <= overlap < tile // 2:
            raise ValueError(f"overlap must be in [0, tile/2), got {overlap} for tile {tile}")
        self.device = resolve_device(device)
        self.precision = default_precision(self.device) if precision == "auto" else precision
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {list(PRECISIONS)}")
        self.generator = generator.to(self.device).eval()
        self.tile = tile
        self.overlap = overlap - overlap % 4
        self.max_pixels = max_pixels
        self.statistics_pixels = statistics_pixels
        # Below this size the statistics pass that tiling needs would already be the untiled
        # result (it runs at up to statistics_pixels), so tiles would only repeat the work.
        self.max_untiled_pixels = max_untiled_pixels
        self.metadata: dict[str, Any] = dict(metadata or {})

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str | torch.device = "auto", **kwargs
    ) -> Deblurrer:
        """Load a generator checkpoint (None: the one shipped in checkpoints/)."""
        generator, metadata = load_generator(DEFAULT_CHECKPOINT if path is None else path)
        return cls(generator, device=device, metadata=metadata, **kwargs)

    def _autocast(self):
        if self.precision == "float32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def _memory_format(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last input on CPU, else `x` unchanged.

        oneDNN's convolutions and the channels-last GroupNorm kernel behind InstanceNorm skip
        the layout reorders that the default (NCHW) layout costs there: 0.61-0.69x the time in
        fp32, 0.81-0.89x in bf16 at 1280x720 (bench/inference.py). Every layer keeps the
        input's layout, so the weights need not be converted and the generator stays shared;
        converting them too bought nothing measurable. CUDA keeps the default layout.
        """
        if self.device.type == "cpu":
            # A clone, not .contiguous(): an (H, W, 3) array's permuted view already counts as
            # channels-last for a batch of one, yet its batch stride makes layers fall back
            # to NCHW (the reflection padding first).
            return x.clone(memory_format=torch.channels_last)
        return x

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def __call__(self, image: Image.Image | np.ndarray | str | Path) -> DeblurResult:
        """Restore one image (PIL, uint8/uint16/float array or path); see `DeblurResult`."""
        array = load_image(image, max_pixels=self.max_pixels)
        height, width = array.shape[:2]
        x = torch.from_numpy(array).permute(2, 0, 1)[None].to(self.device)  # (1, 3, H, W)
        if height < MIN_SIDE or width < MIN_SIDE:
            pad_h, pad_w = max(0, MIN_SIDE - height), max(0, MIN_SIDE - width)
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        self._synchronize()
        start = time.perf_counter()
        output, tiles = self.restore(x)
        self._synchronize()
        seconds = time.perf_counter() - start
        restored = output.image[0, :, :height, :width].permute(1, 2, 0).float().clamp(0, 1)
        # Maps of a padded tiny input are cropped to the input's own quarter-size grid.
        quarter_h, quarter_w = math.ceil(height / 4), math.ceil(width / 4)
        attention = tuple(
            a[0, 0, :quarter_h, :quarter_w].float().clamp(0, 1).cpu().numpy()
            for a in output.attention
        )
        return DeblurResult(restored.cpu().numpy(), attention, seconds, tiles)

    @torch.no_grad()
    def restore(self, x: torch.Tensor) -> tuple[GeneratorOutput, int]:
        """Restore (1, 3, H, W) in [0, 1] on this device; return the output and the tile count.

        Attention maps stay at the network's resolution (1, 1, ceil(H/4), ceil(W/4)).
        """
        x = self._memory_format(x)
        height, width = x.shape[-2:]
        untiled = (
            self.tile is None
            or height * width <= self.max_untiled_pixels
            or max(height, width) <= self.tile
        )
        if untiled:
            with self._autocast():
                output = self.generator(x)
            return GeneratorOutput(output.image.float(), [a.float() for a in output.attention]), 1
        # Pad to a multiple of 4 once, as the generator would, so that tiles align with its grid.
        pad_h, pad_w = (-height) % 4, (-width) % 4
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        statistics = self._statistics(padded)
        image, attention, tiles = self._tiled_pass(padded, statistics)
        quarter_h, quarter_w = math.ceil(height / 4), math.ceil(width / 4)
        return (
            GeneratorOutput(
                image[..., :height, :width], [a[..., :quarter_h, :quarter_w] for a in attention]
            ),
            tiles,
        )

    def _statistics(self, x: torch.Tensor) -> NormStatistics:
        """InstanceNorm statistics from one pass over a copy of at most `statistics_pixels`."""
        height, width = x.shape[-2:]
        scale = min(1.0, math.sqrt(self.statistics_pixels / (height * width)))
        small = x
        if scale < 1:
            size = (max(8, round(height * scale / 4) * 4), max(8, round(width * scale / 4) * 4))
            small = F.interpolate(x, size=size, mode="area")
        recorder = NormStatistics()
        with self._autocast():
            self.generator(small, norm_statistics=recorder)
        return recorder.frozen()

    def _tiled_pass(
        self, x: torch.Tensor, statistics: NormStatistics | None
    ) -> tuple[torch.Tensor, list[torch.Tensor], int]:
        """Overlapping tiles of `x` (1, 3, H, W), H and W multiples of 4, blended linearly.

        Every tile is normalised with `statistics` (None: each by its own, which is wrong).
        """
        height, width = x.shape[-2:]
        tile_h, tile_w = min(self.tile, height), min(self.tile, width)
        rows = _tile_starts(height, tile_h, self.overlap)
        cols = _tile_starts(width, tile_w, self.overlap)
        image = torch.zeros(1, 3, height, width, device=x.device)
        weights = torch.zeros(1, 1, height, width, device=x.device)
        attention: list[torch.Tensor] = []
        attention_weights = torch.zeros(1, 1, height // 4, width // 4, device=x.device)
        for i, y in enumerate(rows):
            for j, x0 in enumerate(cols):
                with self._autocast():
                    tile = x[..., y : y + tile_h, x0 : x0 + tile_w]
                    output = self.generator(tile, norm_statistics=statistics)
                # Ramps span the overlap with each neighbour; no ramp at the image border.
                top = rows[i - 1] + tile_h - y if i > 0 else 0
                bottom = y + tile_h - rows[i + 1] if i + 1 < len(rows) else 0
                left = cols[j - 1] + tile_w - x0 if j > 0 else 0
                right = x0 + tile_w - cols[j + 1] if j + 1 < len(cols) else 0
                window = _ramp(tile_h, top, bottom)[:, None] * _ramp(tile_w, left, right)[None]
                window = window.to(x.device)[None, None]  # (1, 1, tile_h, tile_w)
                image[..., y : y + tile_h, x0 : x0 + tile_w] += output.image.float() * window
                weights[..., y : y + tile_h, x0 : x0 + tile_w] += window
                if not output.attention:
                    continue
                small = F.avg_pool2d(window, 4)  # (1, 1, tile_h/4, tile_w/4)
                if not attention:
                    attention = [torch.zeros_like(attention_weights) for _ in output.attention]
                region = (
                    ...,
                    slice(y // 4, (y + tile_h) // 4),
                    slice(x0 // 4, (x0 + tile_w) // 4),
                )
                for total, a in zip(attention, output.attention, strict=True):
                    total[region] += a.float() * small
                attention_weights[region] += small
        attention = [a / attention_weights for a in attention]
        return image / weights, attention, len(rows) * len(cols)
