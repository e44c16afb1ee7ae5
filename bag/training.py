"""Training recipe: the TrainConfig dataclass with its presets, the learning-rate schedule, the
sampler that makes every epoch's data a pure function of (seed, epoch) on any number of
processes, and what a recipe builds on each process: device and process group, the networks
with their optimisers, the content loss.

The data sets of a recipe are in bag.training_data; the training loop is train/train.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from bag.discriminator import PatchDiscriminator
from bag.losses import PerceptualLoss, charbonnier_loss, frequency_loss, l1_loss
from bag.model import Generator, GeneratorConfig
from bag.synthesis import BlurSettings

LR_SCHEDULES = ("cosine", "linear-decay")
CONTENT_LOSSES = ("perceptual", "charbonnier", "l1")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. The defaults are the `demo` recipe.

    Batch size and steps are per process: under torchrun with N processes an optimiser step
    sees N * batch_size samples.
    """

    generator: GeneratorConfig = field(default_factory=GeneratorConfig.compact)
    # Data: `data` is a GoPro root (ROOT/train/<seq>/{blur,sharp}) or a paired folder
    # (ROOT/blur, ROOT/sharp), GoPro first if it holds both (bag.data.detect_layout);
    # empty = synthetic blur on the built-in sharp sources.
    data: str = ""
    blur_version: str = "blur"  # GoPro only: "blur" or "blur_gamma"
    # Folders of sharp photos added to the built-in sources. `val_holdout` of their photos
    # (chosen by a hash of each file name: see bag.sources.is_held_out) never reach training
    # and become the validation set instead of the built-in one.
    sources: tuple[str, ...] = ()
    val_holdout: float = 0.0
    greyscale_photos: bool = True  # add scikit-image's greyscale photos to the built-in sources
    num_dead_leaves: int = 24  # procedural dead-leaves images among the built-in sources
    dead_leaves_size: int = 512  # side of each dead-leaves image, pixels
    # Share of synthetic training samples averaged in sRGB instead of linear light (see
    # BlurSettings.srgb_average_probability); validation keeps the default blur.
    blur_srgb_probability: float = 0.5
    # Share of synthetic training samples whose camera stands still (only foreground layers
    # move, if any): teaches the generator to leave sharp regions alone. Validation keeps the
    # default blur (BlurSettings.still_probability).
    blur_still_probability: float = 0.1
    # Train on BlurSettings.calibrated() (matched to real GoPro pairs) instead of the defaults;
    # validation keeps the defaults either way, so that runs stay comparable.
    calibrated_blur: bool = False
    # Each synthesized training pair serves this many samples under distinct flips/rotations
    # (SyntheticPairs.reuse): 1 synthesizes every sample; 4 cuts the data cost to a quarter.
    synthesis_reuse: int = 1
    crop: int = 128  # training crops are crop x crop pixels
    batch_size: int = 16
    steps_per_epoch: int = 400  # optimiser steps per epoch; 0 = one pass over --data
    epochs: int = 14
    # Optimisation: AdamW for generator and critic (weight_decay=0 is exactly Adam).
    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # "cosine": warmup then cosine to 0; "linear-decay": the paper's
    warmup_steps: int = 250  # linear warmup from 0 (both schedules)
    decay_epochs: int = 150  # linear-decay: the lr falls linearly to 0 over the last N epochs
    # Losses: L = content_weight * L_C + adversarial_weight * L_GAN, WGAN-GP critic.
    content_loss: str = "charbonnier"  # "perceptual" (VGG19 conv3_3), "charbonnier" or "l1"
    frequency_weight: float = 0.1  # L_C += frequency_weight * FFT L1 loss
    vgg_weights: str = ""  # local VGG19 weights file for the perceptual loss; "" = torch.hub
    content_weight: float = 1.0
    # Weak supervision of the last attention map A4 with the true blur extent of synthetic data
    # (BCE against min(extent / attention_scale_px, 1) at A4's resolution). Not in the paper,
    # whose maps learn only through the restoration loss; 0 turns it off.
    attention_weight: float = 0.05
    attention_scale_px: float = 8.0
    adversarial_weight: float = 0.001
    gp_weight: float = 10.0
    critic_steps: int = 1  # critic updates per generator update (0: no critic, content only)
    critic_channels: int = 32  # PatchDiscriminator base_channels
    critic_layers: int = 3  # PatchDiscriminator num_layers (3: 70x70 patches)
    # Validation every epoch: a fixed synthetic set (seed 12345), or `val_data` (same layouts
    # as `data`; GoPro uses its test split), at most val_size images.
    val_data: str = ""
    val_size: int = 32
    val_crop: int = 256
    # Outputs and runtime.
    snapshot_every: int = 2  # epochs between generator snapshots (the first and last always)
    log_every: int = 25  # steps between progress-bar loss updates (each one syncs the device)
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA if available), "cpu" or "cuda"
    amp: bool = True  # bf16 autocast (CUDA, and CPUs with native bf16)
    channels_last: bool = False
    compile: bool = False  # torch.compile the generator (the checkpoint stays unwrapped)
    num_workers: int = -1  # DataLoader workers; -1 = min(8, cpu_count - 1)

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.content_loss not in CONTENT_LOSSES:
            raise ValueError(
                f"content_loss must be one of {CONTENT_LOSSES}, got {self.content_loss!r}"
            )
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.blur_version not in ("blur", "blur_gamma"):
            raise ValueError(
                f"blur_version must be 'blur' or 'blur_gamma', got {self.blur_version!r}"
            )
        for name in ("epochs", "batch_size", "val_size", "snapshot_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "warmup_steps", "decay_epochs", "critic_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")
        if not 1 <= self.synthesis_reuse <= 8:
            raise ValueError(f"synthesis_reuse must be in 1..8, got {self.synthesis_reuse}")
        if self.crop < 16 or self.val_crop < 16:
            raise ValueError(
                f"crop and val_crop must be at least 16, got {self.crop}, {self.val_crop}"
            )
        if self.critic_steps == 0 and self.adversarial_weight != 0:
            raise ValueError("critic_steps=0 trains no critic: set adversarial_weight to 0 too")
        if self.data and self.sources:
            raise ValueError("sources adds photos to the synthetic data; it cannot go with data")
        if not 0 <= self.val_holdout < 1:
            raise ValueError(f"val_holdout must be in [0, 1), got {self.val_holdout}")
        if self.val_holdout and not self.sources:
            raise ValueError("val_holdout holds out photos of sources: give --sources too")
        if self.val_holdout and self.val_data:
            raise ValueError("val_holdout and val_data are two validation sets: choose one")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas!r}")
        for name in ("blur_srgb_probability", "blur_still_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def blur_settings(self) -> BlurSettings:
        """The synthetic blur of the training samples (validation uses `BlurSettings()`)."""
        return dataclasses.replace(
            BlurSettings.calibrated() if self.calibrated_blur else BlurSettings(),
            srgb_average_probability=self.blur_srgb_probability,
            still_probability=self.blur_still_probability,
        )

    @classmethod
    def demo(cls) -> TrainConfig:
        """The recipe of the shipped checkpoints: compact generator, synthetic blur, short run."""
        return cls()

    @classmethod
    def paper_gopro(cls) -> TrainConfig:
        """The paper's recipe (§4.1) on GoPro's train split, which `data` must point to."""
        return cls(
            generator=GeneratorConfig.paper(),
            crop=256,
            batch_size=1,
            steps_per_epoch=0,
            epochs=300,
            lr=1e-4,
            betas=(0.9, 0.999),
            lr_schedule="linear-decay",
            warmup_steps=0,
            decay_epochs=150,
            content_loss="perceptual",
            frequency_weight=0.0,
            attention_weight=0.0,
            content_weight=100.0,
            adversarial_weight=1.0,
            gp_weight=10.0,
            critic_steps=5,
            critic_channels=64,
            critic_layers=3,
            amp=False,
            snapshot_every=10,
            log_every=100,
        )

    @classmethod
    def smoke(cls) -> TrainConfig:
        """A few seconds on a CPU: tiny model, tiny crops, three short epochs (for tests)."""
        return cls(
            generator=GeneratorConfig.tiny(),
            num_dead_leaves=2,
            dead_leaves_size=96,
            crop=32,
            batch_size=2,
            steps_per_epoch=3,
            epochs=3,
            lr=1e-3,
            warmup_steps=2,
            critic_steps=2,
            critic_channels=8,
            val_size=4,
            val_crop=48,
            log_every=1,
            amp=False,
            num_workers=0,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, JSON-serialisable (the generator config nested)."""
        values = dataclasses.asdict(self)
        values["betas"] = list(self.betas)
        values["sources"] = list(self.sources)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = set(values) - {item.name for item in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        values = dict(values)
        if "generator" in values:
            values["generator"] = GeneratorConfig.from_dict(values["generator"])
        if "betas" in values:
            values["betas"] = tuple(float(beta) for beta in values["betas"])
        if "sources" in values:
            sources = values["sources"]
            if isinstance(sources, str):  # runs from before several folders: one folder or ""
                sources = [sources] if sources else []
            values["sources"] = tuple(str(folder) for folder in sources)
        return cls(**values)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimiser step `step` (0-based) in a run of config.epochs epochs.

    Both schedules start with a linear warmup over `warmup_steps`. "linear-decay" (the paper)
    then holds the rate until the last `decay_epochs` epochs and decays it linearly towards 0;
    "cosine" follows half a cosine from the full rate to 0 over the remaining steps.
    """
    total = config.epochs * steps_per_epoch
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "linear-decay":
        decay_start = max(config.epochs - config.decay_epochs, 0) * steps_per_epoch
        decay_start = max(decay_start, config.warmup_steps)
        if step < decay_start:
            return config.lr
        return config.lr * max(total - step, 0) / max(total - decay_start, 1)
    progress = min((step - config.warmup_steps) / max(total - config.warmup_steps, 1), 1.0)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class EpochSampler(Sampler[int]):
    """Dataset indices for one process, a pure function of (seed, epoch, rank).

    An epoch is `steps` optimiser steps of `batch_size` samples on each of `world_size`
    processes. Step s of process r takes positions [s*B*W + r*B, s*B*W + (r+1)*B) of the
    epoch's order, so N processes with batch B see exactly the batches of one process with
    batch N*B. The order is either fresh indices (`fresh=True`, for datasets whose items are
    random draws: epoch e uses items e*P .. (e+1)*P - 1, P = positions per epoch) or a seeded
    permutation of the `num_items` items (a new one each pass over the data).
    """

    def __init__(
        self,
        num_items: int,
        steps: int,
        batch_size: int,
        seed: int,
        fresh: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_items < 1 or steps < 1:
            raise ValueError(f"need at least one item and one step, got {num_items}, {steps}")
        self.num_items = num_items
        self.steps = steps
        self.batch_size = batch_size
        self.seed = seed
        self.fresh = fresh
        self.rank = rank
        self.world_size = world_size
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (1-based) whose indices the next iteration yields."""
        self.epoch = epoch

    def positions_per_epoch(self) -> int:
        """Samples per epoch over all processes."""
        return self.steps * self.batch_size * self.world_size

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self) -> Iterator[int]:
        per_epoch = self.positions_per_epoch()
        start = (self.epoch - 1) * per_epoch  # position of this epoch in the whole run
        permutations: dict[int, np.ndarray] = {}
        for step in range(self.steps):
            first = step * self.batch_size * self.world_size + self.rank * self.batch_size
            for position in range(start + first, start + first + self.batch_size):
                if self.fresh:
                    yield position
                    continue
                # Pass p over the data is a permutation seeded by (seed, p), so the order does
                # not depend on how passes and epochs line up.
                data_pass, offset = divmod(position, self.num_items)
                if data_pass not in permutations:
                    rng = np.random.default_rng((self.seed, data_pass))
                    permutations[data_pass] = rng.permutation(self.num_items)
                yield int(permutations[data_pass][offset])


# ----------------------------------------------------------------------------- per process


@dataclass(frozen=True)
class Processes:
    """This process's place in a run: one process, or one of torchrun's."""

    world_size: int
    rank: int
    device: torch.device
    amp: bool  # bf16 autocast
    control: Any  # gloo group for small decisions (CPU tensors: no device sync), or None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def use_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> AbstractContextManager:
        """The context the networks run in: bf16 autocast with `amp`, else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()


def set_up_processes(config: TrainConfig, set_threads: bool = True) -> Processes:
    """Device and (under torchrun, which sets WORLD_SIZE, RANK and LOCAL_RANK) process group.

    With `set_threads`, torch computes on every core of a CPU run and on one thread beside a
    GPU. `amp` needs CUDA or a CPU with native bf16.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if set_threads:
        torch.set_num_threads(1 if use_cuda else len(os.sched_getaffinity(0)))
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    control = None
    if world_size > 1:
        dist.init_process_group(
            "nccl" if use_cuda else "gloo", device_id=device if use_cuda else None
        )
        control = dist.new_group(backend="gloo")
    amp = config.amp and (use_cuda or torch.cpu._is_avx512_bf16_supported())
    return Processes(world_size, rank, device, amp, control)


def memory_format(config: TrainConfig) -> torch.memory_format:
    """The layout of the networks' weights and of the batches."""
    return torch.channels_last if config.channels_last else torch.contiguous_format


@dataclass(frozen=True)
class Models:
    """`generator` and `critic` are the plain modules, saved and validated; the `*_train`
    modules are what trains: DDP wrappers (they average gradients over processes), and the
    generator compiled if asked."""

    generator: Generator
    critic: PatchDiscriminator
    generator_train: torch.nn.Module
    critic_train: torch.nn.Module
    generator_optimizer: torch.optim.Optimizer
    critic_optimizer: torch.optim.Optimizer


def build_models(
    config: TrainConfig, processes: Processes, state: dict[str, Any] | None = None
) -> Models:
    """The networks and their AdamW optimisers: initial weights from the seed (the same on
    every process), or the weights and optimiser states of a resume `state`."""
    torch.manual_seed(config.seed)
    generator = Generator(config.generator)
    critic = PatchDiscriminator(
        base_channels=config.critic_channels, num_layers=config.critic_layers
    )
    if state is not None:
        generator.load_state_dict(state["generator"])
        critic.load_state_dict(state["critic"])
    generator.to(processes.device, memory_format=memory_format(config))
    critic.to(processes.device, memory_format=memory_format(config))
    if processes.world_size > 1 and processes.use_cuda:
        generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
    options = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay}
    fused = processes.use_cuda
    generator_optimizer = torch.optim.AdamW(generator.parameters(), fused=fused, **options)
    critic_optimizer = torch.optim.AdamW(critic.parameters(), fused=fused, **options)
    if state is not None:
        generator_optimizer.load_state_dict(state["generator_optimizer"])
        critic_optimizer.load_state_dict(state["critic_optimizer"])
    generator_train, critic_train = generator, critic
    if processes.world_size > 1:
        generator_train = DistributedDataParallel(generator)
        critic_train = DistributedDataParallel(critic)
    if config.compile:
        generator_train = torch.compile(generator_train)
    return Models(
        generator, critic, generator_train, critic_train, generator_optimizer, critic_optimizer
    )


def content_loss_fn(
    config: TrainConfig, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """L_C of the recipe plus frequency_weight x the FFT loss: (restored, sharp), each
    (B, 3, H, W) in [0, 1], -> a scalar. Perceptual: VGGWeightsUnavailable without weights."""
    perceptual = None
    if config.content_loss == "perceptual":
        perceptual = PerceptualLoss(weights=config.vgg_weights or None).to(device)

    def content_loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        if perceptual is not None:
            loss = perceptual(restored, sharp).float()
        elif config.content_loss == "charbonnier":
            loss = charbonnier_loss(restored, sharp)
        else:
            loss = l1_loss(restored, sharp)
        if config.frequency_weight:
            loss = loss + config.frequency_weight * frequency_loss(restored, sharp)
        return loss

    return content_loss
