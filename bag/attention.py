"""Attention maps A1..A4 as data: per-map statistics (mean, share above 0.5, range, flatness),
a contrast stretch, copies at the model's resolution, the .npz file the app offers for download,
and the maps one image gets from every epoch snapshot of a run.

An attention map A_k is a weight the model computes (how strongly module k keeps its features
at each place), in [0, 1]; it is not a measured blur map and not an attribution.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bag.checkpoint import CheckpointError, load_generator
from bag.inference import Deblurrer
from bag.runs import Snapshot
from bag.visualize import resize, shrink

MODULE_NAMES = ("A1", "A2", "A3", "A4")
ATTENTION_THRESHOLD = 0.5  # the statistic "share of pixels above" uses this level
FLAT_SPREAD = 0.05  # a map whose 1st..99th percentile range is narrower is "nearly constant"


@dataclass(frozen=True)
class AttentionStats:
    """Summary of one attention map in [0, 1]."""

    mean: float
    share_above_half: float  # fraction of pixels with attention > 0.5
    low: float  # 1st percentile: the range ignores the 1 % most extreme pixels at each end
    high: float  # 99th percentile

    @property
    def flat(self) -> bool:
        """True when the map is nearly constant over the image (a flat square on screen)."""
        return self.high - self.low < FLAT_SPREAD


def attention_stats(maps: Sequence[np.ndarray]) -> tuple[AttentionStats, ...]:
    """Mean, share of pixels above 0.5 and 1st..99th percentile range of each map (H, W)."""
    stats = []
    for a in maps:
        low, high = np.percentile(a, (1.0, 99.0))
        share = float(np.mean(a > ATTENTION_THRESHOLD))
        stats.append(AttentionStats(float(np.mean(a)), share, float(low), float(high)))
    return tuple(stats)


def stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto [0, 1] (clipped), so structure in a narrow range shows."""
    span = max(high - low, 1e-6)
    return np.clip((values - low) / span, 0.0, 1.0).astype(np.float32)


def model_resolution(
    maps: Sequence[np.ndarray], size: tuple[int, int] | None = None
) -> tuple[np.ndarray, ...]:
    """Maps of an (H, W) image -> (ceil(H/4), ceil(W/4)), the size the network computes them at.

    `size` is (H, W) when the maps are not full size (e.g. shrunk for display).
    `DeblurResult.attention_at_input_size` upsamples the network's maps bilinearly; averaging
    4 x 4 blocks gives them back up to a slight smoothing (each value 0.75 itself + 0.125 each
    neighbour, per axis).
    """
    if not maps:
        return ()
    height, width = size or maps[0].shape[:2]
    quarter = (math.ceil(height / 4), math.ceil(width / 4))
    return tuple(np.clip(resize(a, *quarter), 0.0, 1.0) for a in maps)


@dataclass(frozen=True)
class AttentionSummary:
    """Attention maps A1..A4 of one forward pass, shrunk for display, with full-size stats and
    (when known) the network's own maps."""

    maps: tuple[np.ndarray, ...]  # float32 (h, w) in [0, 1], longest side <= the display limit
    stats: tuple[AttentionStats, ...]  # measured on the maps at the input's full resolution
    full_size: tuple[int, int]  # (H, W) of the input
    network: tuple[np.ndarray, ...] = ()  # float32 (ceil(H/4), ceil(W/4)) as computed, or ()


def summarize_attention(
    attention: Sequence[np.ndarray],
    max_side: int = 1024,
    stats: tuple[AttentionStats, ...] | None = None,
    network: Sequence[np.ndarray] = (),
) -> AttentionSummary:
    """Shrink full-resolution maps (H, W) to `max_side`; stats (given or measured) are full-size.

    `network`: the same maps at the network's resolution (`DeblurResult.attention`), kept as
    they are so that a reader of the file gets them back without resampling.
    """
    if not attention:
        return AttentionSummary((), (), (0, 0))
    full_size = tuple(int(s) for s in attention[0].shape[:2])
    maps = tuple(np.clip(shrink(a, max_side), 0.0, 1.0) for a in attention)
    return AttentionSummary(maps, stats or attention_stats(attention), full_size, tuple(network))


_STAT_FIELDS = ("mean", "share_above_half", "low", "high")


def save_attention(path: str | Path, summary: AttentionSummary) -> Path:
    """Write a summary as .npz: maps float16 (4, h, w), one array per statistic, full_size,
    and network_maps float16 (4, ceil(H/4), ceil(W/4)) when the summary has them."""
    path = Path(path)
    np.savez_compressed(
        path,
        maps=_stacked(summary.maps),
        network_maps=_stacked(summary.network),
        full_size=np.array(summary.full_size, dtype=np.int64),
        **{
            name: np.array([getattr(s, name) for s in summary.stats], dtype=np.float64)
            for name in _STAT_FIELDS
        },
    )
    return path


def _stacked(maps: tuple[np.ndarray, ...]) -> np.ndarray:
    """(N, h, w) float16 of N maps; (0, 1, 1) for none."""
    return np.stack(maps).astype(np.float16) if maps else np.zeros((0, 1, 1), np.float16)


def _unstacked(maps: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.clip(m.astype(np.float32), 0.0, 1.0) for m in maps)


def load_attention(path: str | Path) -> AttentionSummary:
    """Read a summary written by `save_attention` (no pickles: arrays only).

    Files written before network_maps existed load with `network` = ().
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            maps = _unstacked(data["maps"])
            network = _unstacked(data["network_maps"]) if "network_maps" in data else ()
            columns = [data[name] for name in _STAT_FIELDS]
            stats = tuple(
                AttentionStats(*(float(v) for v in row)) for row in zip(*columns, strict=True)
            )
            full_size = tuple(int(s) for s in data["full_size"])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{Path(path).name}: not an attention file ({error})") from None
    return AttentionSummary(maps, stats, full_size, network)


@dataclass(frozen=True)
class AttentionEvolution:
    """Attention maps of one image produced by each epoch snapshot, at a reduced size."""

    epochs: tuple[int, ...]
    maps: tuple[tuple[np.ndarray, ...], ...]  # [epoch][module]: float32 (h, w) in [0, 1]
    image: np.ndarray  # the downscaled input, float32 (h, w, 3) in [0, 1]
    original_size: tuple[int, int]  # (H, W) before downscaling
    skipped: tuple[str, ...]  # snapshots that could not be used, with the reason
    seconds: float

    def stats(self) -> tuple[tuple[AttentionStats, ...], ...]:
        """Per epoch, the statistics of its four maps."""
        return tuple(attention_stats(maps) for maps in self.maps)

    def nearest(self, epoch: float) -> int:
        """Index of the snapshot whose epoch is nearest to `epoch`."""
        return int(np.argmin([abs(e - epoch) for e in self.epochs]))


def attention_evolution(
    image: np.ndarray,
    snapshots: Sequence[Snapshot],
    max_side: int = 512,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> AttentionEvolution:
    """Run every snapshot on `image` (H, W, 3) in [0, 1] shrunk to `max_side`; collect A1..A4.

    `progress(done, total)` is called after each snapshot. Snapshots that fail to load (or
    that have no attention) are skipped and listed in the result.
    """
    start = time.perf_counter()
    small = np.clip(shrink(image, max_side), 0.0, 1.0)
    epochs, maps, skipped = [], [], []
    for index, snapshot in enumerate(snapshots):
        try:
            generator, metadata = load_generator(snapshot.path)
        except CheckpointError as error:
            skipped.append(f"{snapshot.path.name}: {error}")
        else:
            # One untiled pass: the shrunk image is small, and this is what the user sees.
            result = Deblurrer(generator, device=device, tile=None)(small)
            if result.attention:
                epochs.append(int(metadata.get("epoch", snapshot.epoch)))
                maps.append(result.attention_at_input_size())  # (h, w), as the image
            else:
                skipped.append(f"{snapshot.path.name}: this model has no attention maps")
        if progress is not None:
            progress(index + 1, len(snapshots))
    return AttentionEvolution(
        tuple(epochs),
        tuple(maps),
        small,
        (int(image.shape[0]), int(image.shape[1])),
        tuple(skipped),
        time.perf_counter() - start,
    )
