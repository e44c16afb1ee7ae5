"""How much each attention map varies across real blurred photos (no ground truth needed).

For every image of a folder (e.g. ../shared/data/real-blur), restore it with the checkpoint and
report each map A1..A4 over the image: its spatial standard deviation, its 5th and 95th
percentiles and its mean. A map whose standard deviation is near 0 is flat: it shows the app's
user nothing. Maps are read at the model's resolution (a quarter of the image side).

  python train/attention_spread.py --checkpoint checkpoints/generator.safetensors \\
      --photos ../shared/data/real-blur --json checkpoints/eval/attention-real.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bag.inference import Deblurrer
from bag.sources import folder_files


def spread(attention: np.ndarray) -> dict[str, float]:
    """Summary of one (h, w) map in [0, 1]."""
    low, high = np.percentile(attention, [5, 95])
    return {
        "std": float(attention.std()),
        "p05": float(low),
        "p95": float(high),
        "mean": float(attention.mean()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True, help="folder of blurred photos")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    try:
        files = folder_files(args.photos)
    except ValueError as error:
        parser.error(str(error))
    deblurrer = Deblurrer.from_checkpoint(args.checkpoint, device=args.device)
    images = {}
    print(f"{'image':28s} " + "  ".join(f"A{k} std (p05..p95)  " for k in range(1, 5)))
    for file in files:
        result = deblurrer(file)
        # Every 4th pixel of the upsampled maps, as the reports of the sizing study were made
        # (result.attention, the network's own values, would read slightly less smooth).
        full = result.attention_at_input_size()
        maps = [spread(attention[::4, ::4]) for attention in full]
        images[file.name] = maps
        print(
            f"{file.name:28s} "
            + "  ".join(f"{m['std']:.3f} ({m['p05']:.2f}..{m['p95']:.2f})" for m in maps)
        )
    mean_std = [float(np.mean([maps[k]["std"] for maps in images.values()])) for k in range(4)]
    print(f"{'mean std':28s} " + "  ".join(f"{value:.3f}{'':14s}" for value in mean_std))
    if args.json:
        report = {"checkpoint": str(args.checkpoint), "images": images, "mean_std": mean_std}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
