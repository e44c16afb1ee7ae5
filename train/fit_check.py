"""How fast does a generator learn at all? Train it on a small fixed set of synthetic pairs and
watch its PSNR gain on those pairs and on unseen ones, with and without the decoder's
InstanceNorm.

A network that cannot beat the identity on 336 pairs it sees over and over is limited by its
design or its optimisation, not by data or training length. This check found why the shipped
recipe learned so slowly: with an InstanceNorm just before the output, the residual's energy is
fixed per image (see GeneratorConfig.decoder_norm). Both generators start from the same
weights (the decoder norms aside) and see the same batches; the loss is the demo recipe's
content loss (Charbonnier + 0.1 x FFT L1) at a constant learning rate after a short warmup.

  python train/fit_check.py --photos ../shared/data/train/bsds500-train --steps 300 \\
      --json checkpoints/eval/fit-check.json

Run nothing else heavy beside it; it takes about 8 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bag.data import SyntheticPairs
from bag.losses import charbonnier_loss, frequency_loss
from bag.metrics import psnr
from bag.model import Generator, GeneratorConfig
from bag.sources import folder_files, read_photos
from bag.synthesis import BlurSettings


def make_pairs(photos: list[np.ndarray], count: int, crop: int, seed: int) -> dict:
    """`count` pairs of the calibrated blur: {"blurred", "sharp"}, each (count, 3, crop, crop)."""
    dataset = SyntheticPairs(photos, crop, count, seed=seed, settings=BlurSettings.calibrated())
    items = [dataset[index] for index in range(count)]
    return {key: torch.stack([item[key] for item in items]) for key in ("blurred", "sharp")}


@torch.no_grad()
def mean_gain(generator: Generator, pairs: dict, batch: int = 16) -> float:
    """Mean over images of PSNR(restored) - PSNR(blurred), dB."""
    generator.eval()
    gains = []
    for start in range(0, len(pairs["blurred"]), batch):
        blurred = pairs["blurred"][start : start + batch]
        sharp = pairs["sharp"][start : start + batch]
        restored = generator(blurred).image
        images = [t.permute(0, 2, 3, 1).numpy() for t in (restored, blurred, sharp)]  # NHWC
        for r, b, s in zip(*images, strict=True):
            gains.append(psnr(r, s) - psnr(b, s))
    generator.train()
    return float(np.mean(gains))


def fit(
    config: GeneratorConfig,
    initial: dict[str, torch.Tensor],
    train: dict,
    unseen: dict,
    steps: int,
    every: int,
    lr: float,
) -> list[dict]:
    """Train a generator of `config` from `initial` on `train`; gains every `every` steps."""
    generator = Generator(config)
    generator.load_state_dict({k: v for k, v in initial.items() if k in generator.state_dict()})
    optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(0)
    amp = torch.autocast("cpu", dtype=torch.bfloat16)
    curve = []
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, step / 50)
        index = torch.randint(0, len(train["blurred"]), (16,), generator=batches)
        sharp = train["sharp"][index]
        with amp:
            restored = generator(train["blurred"][index]).image.float()
        loss = charbonnier_loss(restored, sharp) + 0.1 * frequency_loss(restored, sharp)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == steps:
            seen = {key: value[:64] for key, value in train.items()}
            curve.append(
                {
                    "step": step,
                    "gain_seen": mean_gain(generator, seen),
                    "gain_unseen": mean_gain(generator, unseen),
                }
            )
            print(
                f"  step {step:4d}: gain on seen pairs {curve[-1]['gain_seen']:+.2f} dB, "
                f"unseen {curve[-1]['gain_unseen']:+.2f} dB",
                flush=True,
            )
    return curve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="sharp photos")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=50, help="steps between measurements")
    parser.add_argument("--pairs", type=int, default=336, help="training pairs")
    parser.add_argument("--unseen", type=int, default=64, help="pairs kept for measuring")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tiny", action="store_true", help="the test-sized generator")
    parser.add_argument("--json", type=Path, help="write both curves here")
    args = parser.parse_args(argv)
    try:
        files = [file for folder in args.photos for file in folder_files(folder)]
    except ValueError as error:
        parser.error(str(error))
    torch.manual_seed(0)
    photos = read_photos(files)
    pairs = make_pairs(photos, args.pairs + args.unseen, args.crop, seed=1)
    train = {key: value[: args.pairs] for key, value in pairs.items()}
    unseen = {key: value[args.pairs :] for key, value in pairs.items()}
    paper = GeneratorConfig.tiny() if args.tiny else GeneratorConfig.compact()
    initial = Generator(paper).state_dict()
    curves = {}
    for decoder_norm in (True, False):
        print(f"decoder_norm={decoder_norm}:")
        config = dataclasses.replace(paper, decoder_norm=decoder_norm)
        curves[f"decoder_norm={decoder_norm}"] = fit(
            config, initial, train, unseen, args.steps, args.every, args.lr
        )
    if args.json:
        report = {
            "command": "python train/fit_check.py "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "photos": len(files),
            "generator": paper.to_dict(),
            "curves": curves,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
