"""The data sets of a training recipe (bag.training.TrainConfig): the training set with its
sampler and loader for each process, and the fixed validation set with the scores a generator
gets on it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bag.data import GoProDataset, PairedFolder, SyntheticPairs, open_pairs
from bag.metrics import psnr, ssim
from bag.model import Generator
from bag.sources import default_sources, read_photos
from bag.synthesis import BlurSettings
from bag.training import EpochSampler, TrainConfig

# The synthetic validation set is the same for every run, so runs can be compared.
VALIDATION_SEED = 12345
VALIDATION_DEAD_LEAVES = 4
VALIDATION_DEAD_LEAVES_SIZE = 384
Pairs = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TrainingData:
    """A run's training set, the sampler that shards it, and what config.json records of it."""

    dataset: Dataset
    sampler: EpochSampler
    steps_per_epoch: int
    recipe: dict[str, Any]

    @property
    def crops_follow_the_epoch(self) -> bool:
        """Folder datasets draw their crops from (seed, index, epoch) through set_epoch;
        synthetic items need no epoch (the sampler's indices carry it)."""
        return not isinstance(self.dataset, SyntheticPairs)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (1-based) the next pass over the loader yields."""
        self.sampler.set_epoch(epoch)
        if self.crops_follow_the_epoch:
            self.dataset.set_epoch(epoch)


def training_data(
    config: TrainConfig,
    photos: list[Path],
    held_out: list[Path],
    rank: int = 0,
    world_size: int = 1,
) -> TrainingData:
    """The training set of `config` for process `rank` of `world_size`: `config.data` (either
    folder layout), else synthetic blur on the built-in sources plus `photos` (the training
    share of config.sources; `held_out` is only counted). ValueError if it cannot be made.

    Items are pure functions of (seed, index); the sampler picks each epoch's indices from
    (seed, epoch) and shards them over the processes.
    """
    if config.data:
        dataset = open_pairs(
            config.data,
            "train",
            blur_version=config.blur_version,
            crop=config.crop,
            seed=config.seed,
        )
        steps = config.steps_per_epoch or len(dataset) // (config.batch_size * world_size)
        if steps < 1:
            raise ValueError(f"{config.data} has fewer pairs than one batch per process")
        sampler = EpochSampler(
            len(dataset),
            steps,
            config.batch_size,
            config.seed,
            fresh=False,
            rank=rank,
            world_size=world_size,
        )
        return TrainingData(dataset, sampler, steps, pairs_recipe(dataset))
    if config.steps_per_epoch < 1:
        raise ValueError("synthetic data needs --steps-per-epoch of at least 1")
    steps = config.steps_per_epoch
    sources = default_sources(
        np.random.default_rng(config.seed),
        num_dead_leaves=config.num_dead_leaves,
        size=config.dead_leaves_size,
        greyscale_photos=config.greyscale_photos,
    )
    user_images = read_photos(photos)
    per_epoch = steps * config.batch_size * world_size
    blur = config.blur_settings()
    # Copies of a reused pair lie `window` items apart: whole steps of all processes (so the
    # process that rendered a pair fetches its copies), about 256 items or one epoch. It must
    # not depend on the worker count, which may change on resume; a worker that did not render
    # a pair renders it again (the same pair: items are functions of the index).
    step_items = config.batch_size * world_size
    window = step_items * math.ceil(min(256, per_epoch) / step_items)
    dataset = SyntheticPairs(
        sources + user_images,
        crop=config.crop,
        length=config.epochs * per_epoch,
        seed=config.seed,
        settings=blur,
        reuse=config.synthesis_reuse,
        window=window,
    )
    sampler = EpochSampler(
        len(dataset),
        steps,
        config.batch_size,
        config.seed,
        fresh=True,
        rank=rank,
        world_size=world_size,
    )
    recipe = {
        "kind": "synthetic",
        "built_in_sources": len(sources),
        "dead_leaves": config.num_dead_leaves,
        "greyscale_photos": config.greyscale_photos,
        "user_folders": list(config.sources),
        "user_images": len(user_images),
        "held_out_images": len(held_out),
        "blur": dataclasses.asdict(blur),
    }
    return TrainingData(dataset, sampler, steps, recipe)


def training_loader(config: TrainConfig, data: TrainingData, pin_memory: bool) -> DataLoader:
    """The loader of `data` with config.num_workers workers (-1: min(8, cpu_count - 1)).

    Workers are forked: they must not change the items (those are functions of the index) and
    run OpenCV on one thread.
    """
    workers = config.num_workers
    if workers < 0:
        workers = min(8, (os.cpu_count() or 2) - 1)
    if workers > 0:
        # Set once here and inherited: cv2.setNumThreads inside a forked worker deadlocks (the
        # parent's thread pool does not survive the fork). torch runs each worker on one thread.
        import cv2

        cv2.setNumThreads(1)
    return DataLoader(
        data.dataset,
        batch_size=config.batch_size,
        sampler=data.sampler,
        num_workers=workers,
        # Folder datasets take each epoch's crops through set_epoch, which must reach the
        # workers: they are started afresh each epoch. Synthetic workers persist.
        persistent_workers=workers > 0 and not data.crops_follow_the_epoch,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG untouched
    )


def pairs_recipe(dataset: GoProDataset | PairedFolder) -> dict[str, Any]:
    """What config.json records of a folder of pairs."""
    if isinstance(dataset, GoProDataset):
        return {
            "kind": "gopro",
            "root": str(dataset.root),
            "split": dataset.split,
            "blur_version": dataset.blur_version,
            "pairs": len(dataset),
        }
    return {"kind": "paired", "root": str(dataset.root), "pairs": len(dataset)}


@dataclass(frozen=True)
class ValidationSet:
    """The fixed validation pairs [(blurred, sharp)], each (1, 3, H, W) in [0, 1], what
    config.json records of them, and the blurred inputs' own scores (the baseline)."""

    pairs: Pairs
    recipe: dict[str, Any]
    blurred_scores: dict[str, float]


def validation_set(config: TrainConfig, held_out: list[Path]) -> ValidationSet:
    """At most val_size pairs of `config.val_data` (GoPro: its test split), else a synthetic
    set with the default blur on `held_out` (the photos of config.sources kept out of training,
    when val_holdout is set) or on built-in sources. ValueError if it cannot be made.
    """
    if config.val_data:
        dataset = open_pairs(
            config.val_data, "test", blur_version=config.blur_version, seed=VALIDATION_SEED
        )
        recipe = pairs_recipe(dataset)
        # At most val_size pairs, spread evenly over the (sorted) dataset.
        indices = np.unique(np.linspace(0, len(dataset) - 1, config.val_size).round().astype(int))
    else:
        if config.val_holdout and not held_out:
            raise ValueError(
                f"--val-holdout {config.val_holdout} holds out none of the photos in --sources: "
                "raise it"
            )
        if config.val_holdout:
            sources = read_photos(held_out)
        else:
            rng = np.random.default_rng(VALIDATION_SEED)
            sources = default_sources(
                rng, num_dead_leaves=VALIDATION_DEAD_LEAVES, size=VALIDATION_DEAD_LEAVES_SIZE
            )
        dataset = SyntheticPairs(
            sources,
            crop=config.val_crop,
            length=config.val_size,
            seed=VALIDATION_SEED,
            augment=False,
        )
        indices = np.arange(config.val_size)
        recipe = {
            "kind": "synthetic",
            "seed": VALIDATION_SEED,
            "crop": config.val_crop,
            "photos": "held out of sources" if config.val_holdout else "built-in",
            "held_out_photos": len(sources) if config.val_holdout else 0,
            "dead_leaves": 0 if config.val_holdout else VALIDATION_DEAD_LEAVES,
            "blur": dataclasses.asdict(BlurSettings()),
        }
    pairs = []
    for index in indices:
        item = dataset[int(index)]
        pairs.append((item["blurred"][None], item["sharp"][None]))
    recipe["size"] = len(pairs)
    blurred_scores = {
        "val_psnr_blurred": float(np.mean([psnr(_hwc(b), _hwc(s)) for b, s in pairs])),
        "val_ssim_blurred": float(np.mean([ssim(_hwc(b), _hwc(s)) for b, s in pairs])),
    }
    return ValidationSet(pairs, recipe, blurred_scores)


@torch.no_grad()
def validation_scores(
    generator: Generator, pairs: Pairs, device: torch.device, autocast: AbstractContextManager
) -> dict[str, float]:
    """Mean PSNR/SSIM of the restored validation images (untiled, one image at a time);
    `autocast` is the context the generator runs in (a torch.autocast, or nullcontext)."""
    was_training = generator.training
    generator.eval()
    scores = []
    for blurred, sharp in pairs:
        with autocast:
            restored = generator(blurred.to(device)).image.float()
        scores.append((psnr(_hwc(restored), _hwc(sharp)), ssim(_hwc(restored), _hwc(sharp))))
    generator.train(was_training)
    return {
        "val_psnr": float(np.mean([s[0] for s in scores])),
        "val_ssim": float(np.mean([s[1] for s in scores])),
    }


def _hwc(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float64 array."""
    return image[0].permute(1, 2, 0).double().cpu().numpy()
