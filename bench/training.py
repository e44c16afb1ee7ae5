"""Training throughput benchmark: samples per second of the data path alone, of the training step
alone, and of both together, before and after the two speed-ups of the training issue.

    .venv/bin/python bench/training.py [--crop 128] [--batch-size 16] [--steps 12] [--json OUT]

- data path: `SyntheticPairs` on the training photos of ../shared/data/train (the built-in
  sources when it is absent), every sample synthesized (reuse 1) or each synthesized pair
  serving 4 samples (reuse 4, `--synthesis-reuse 4` in train/train.py);
- training step: generator + critic update of the demo recipe (bf16 autocast where the CPU has
  it) on a fixed batch, with InstanceNorm op by op (before) or as the fused GroupNorm kernel
  that bag.layers.InstanceNorm now uses (after);
- end to end: both in one process, as `train/train.py --num-workers 0` runs them.

All in one run, on the threads torch has (run nothing else heavy beside it); ratios are what
holds between machines.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from bag.data import SyntheticPairs
from bag.discriminator import PatchDiscriminator
from bag.layers import InstanceNorm
from bag.losses import (
    attention_loss,
    charbonnier_loss,
    critic_loss,
    frequency_loss,
    generator_adversarial_loss,
    gradient_penalty,
)
from bag.model import Generator
from bag.sources import default_sources, read_photos, split_photos
from bag.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent

PHOTOS = ROOT.parent / "shared" / "data" / "train"


class OpByOpInstanceNorm(InstanceNorm):
    """The InstanceNorm of the shipped run: statistics and affine map as separate ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, correction=0)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def op_by_op(generator: Generator) -> Generator:
    """A copy of `generator` with every InstanceNorm computed op by op (same weights)."""
    slow = copy.deepcopy(generator)
    for module in slow.modules():
        if isinstance(module, InstanceNorm):
            module.__class__ = OpByOpInstanceNorm
    return slow


def sources() -> tuple[list[np.ndarray], str]:
    if PHOTOS.is_dir():
        folders = sorted(path for path in PHOTOS.iterdir() if path.is_dir())
        training, _ = split_photos(folders, 0.06)
        return read_photos(training), f"{len(training)} photos of {PHOTOS}"
    return default_sources(np.random.default_rng(0)), "built-in sources"


def data_rate(dataset: SyntheticPairs, count: int) -> float:
    start = time.perf_counter()
    for index in range(count):
        dataset[index]
    return count / (time.perf_counter() - start)


class Step:
    """One training step of the demo recipe (critic update, then generator update)."""

    def __init__(self, generator: Generator, config: TrainConfig, amp: bool) -> None:
        torch.manual_seed(0)
        self.generator = generator
        self.critic = PatchDiscriminator(
            base_channels=config.critic_channels, num_layers=config.critic_layers
        )
        self.g_optimizer = torch.optim.AdamW(generator.parameters(), lr=1e-4)
        self.c_optimizer = torch.optim.AdamW(self.critic.parameters(), lr=1e-4)
        self.config = config
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext()

    def __call__(self, batch: dict[str, torch.Tensor]) -> None:
        blurred, sharp, config = batch["blurred"], batch["sharp"], self.config
        with self.autocast:
            output = self.generator(blurred)
            fake = output.image.detach()
            self.critic.requires_grad_(True)
            eps = torch.rand(blurred.shape[0])
            loss = critic_loss(self.critic(sharp).float(), self.critic(fake).float())
            loss = loss + config.gp_weight * gradient_penalty(self.critic, sharp, fake, eps=eps)
        self.c_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.c_optimizer.step()
        self.critic.requires_grad_(False)
        with self.autocast:
            restored = output.image
            total = charbonnier_loss(restored, sharp)
            total = total + config.frequency_weight * frequency_loss(restored, sharp)
            total = total + config.adversarial_weight * generator_adversarial_loss(
                self.critic(restored).float()
            )
            total = total + config.attention_weight * attention_loss(
                output.attention[-1], batch["blur_extent"], config.attention_scale_px
            )
        self.g_optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.g_optimizer.step()


def collate(dataset: SyntheticPairs, start: int, size: int) -> dict[str, torch.Tensor]:
    items = [dataset[index] for index in range(start, start + size)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def step_rate(step: Step, batch: dict[str, torch.Tensor], steps: int) -> float:
    step(batch)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    return steps * batch["blurred"].shape[0] / (time.perf_counter() - start)


def end_to_end_rate(step: Step, dataset: SyntheticPairs, batch_size: int, steps: int) -> float:
    step(collate(dataset, 0, batch_size))  # warm-up (and the first pairs rendered)
    start = time.perf_counter()
    for index in range(1, steps + 1):
        step(collate(dataset, index * batch_size, batch_size))
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    parser.add_argument("--reuse", type=int, default=4, help="synthesis reuse of the 'after'")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    config = TrainConfig(crop=args.crop, batch_size=args.batch_size)
    amp = torch.cpu._is_avx512_bf16_supported()
    images, described = sources()
    length = 10**6

    def dataset(reuse: int) -> SyntheticPairs:
        # A window of one batch reaches the steady state (one render per `reuse` samples) after
        # `reuse` batches; train.py's window is larger, which costs the same per sample.
        settings = config.blur_settings()
        return SyntheticPairs(
            images, args.crop, length, 0, settings, reuse=reuse, window=args.batch_size
        )

    count = args.steps * args.batch_size
    results = {
        "machine": {"threads": torch.get_num_threads(), "bf16": amp, "torch": torch.__version__},
        "setup": {"crop": args.crop, "batch_size": args.batch_size, "sources": described},
        "data_samples_per_second": {
            "reuse 1": data_rate(dataset(1), count),
            f"reuse {args.reuse}": data_rate(dataset(args.reuse), count),
        },
    }
    torch.manual_seed(0)
    generator = Generator(config.generator)
    batch = collate(dataset(1), 0, args.batch_size)
    results["step_samples_per_second"] = {
        "InstanceNorm op by op (before)": step_rate(
            Step(op_by_op(generator), config, amp), batch, args.steps
        ),
        "InstanceNorm fused (after)": step_rate(Step(generator, config, amp), batch, args.steps),
    }
    results["end_to_end_samples_per_second"] = {
        "before (op by op, reuse 1)": end_to_end_rate(
            Step(op_by_op(generator), config, amp), dataset(1), args.batch_size, args.steps
        ),
        f"after (fused, reuse {args.reuse})": end_to_end_rate(
            Step(generator, config, amp), dataset(args.reuse), args.batch_size, args.steps
        ),
    }
    for section, values in results.items():
        print(f"{section}:")
        for name, value in values.items():
            print(f"  {name:34s} {value:.1f}" if isinstance(value, float) else f"  {name}: {value}")
    before, after = results["end_to_end_samples_per_second"].values()
    print(f"end to end: {after / before:.2f}x the samples per second")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
