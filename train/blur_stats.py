"""Compare synthetic blur with real blur: the same per-patch statistics on both, plotted together.

Real side: blurred/sharp pairs (paired folders ROOT/blur, ROOT/sharp, e.g. ../shared/data/gopro).
Synthetic side: training crops exactly as train/train.py draws them (SyntheticPairs over sharp
photos, with the training blur: BlurSettings with the flags below). Both are measured by
bag.blur_statistics over 32x32 patches: the best-fitting straight motion length and the
blurred-to-sharp gradient energy ratio (flat patches left out). Flags named like the
BlurSettings fields override single fields (--camera-path-px 6 28).

  python train/blur_stats.py --pairs ../shared/data/gopro \\
      --photos ../shared/data/train/urban100 ../shared/data/train/sun-hays80 \\
      --calibrated --with-default \\
      --png checkpoints/figures/blur-stats.png --json checkpoints/eval/blur-stats.json

Prints, per side, the median and 90th percentile of the motion length, the shares of nearly
sharp patches (length <= 2 px) and of long blur (over 22 px), then the same for each pair.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from bag.blur_statistics import best_motion_length, gradient_energy_ratio
from bag.data import PairedFolder, SyntheticPairs
from bag.sources import folder_files, read_photos
from bag.synthesis import BlurSettings
from bag.training import TrainConfig

NEARLY_SHARP_PX = 2.0
LONG_PX = 22.0  # the real pairs' 90th percentile: longer blur is rare in them


def to_hwc(image) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) float32 array."""
    return image.permute(1, 2, 0).numpy().astype(np.float32)


def measure(blurred: np.ndarray, sharp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid (non-flat) patches' motion lengths and gradient energy ratios of one pair."""
    lengths = best_motion_length(blurred, sharp).ravel()
    ratios = gradient_energy_ratio(blurred, sharp).ravel()
    keep = np.isfinite(lengths) & np.isfinite(ratios)
    return lengths[keep], ratios[keep]


def describe(lengths: np.ndarray, ratios: np.ndarray) -> dict:
    """Summary numbers of a set of patches."""
    return {
        "patches": int(lengths.size),
        "length_median_px": float(np.median(lengths)),
        "length_p90_px": float(np.percentile(lengths, 90)),
        "nearly_sharp_share": float(np.mean(lengths <= NEARLY_SHARP_PX)),
        "long_share": float(np.mean(lengths > LONG_PX)),
        "energy_ratio_median": float(np.median(ratios)),
    }


def real_pairs(folders: list[Path]) -> tuple[dict, np.ndarray, np.ndarray]:
    per_pair, all_lengths, all_ratios = {}, [], []
    for folder in folders:
        for item in PairedFolder(folder):
            lengths, ratios = measure(to_hwc(item["blurred"]), to_hwc(item["sharp"]))
            per_pair[f"{folder.name}/{item['name']}"] = describe(lengths, ratios)
            all_lengths.append(lengths)
            all_ratios.append(ratios)
    return per_pair, np.concatenate(all_lengths), np.concatenate(all_ratios)


def synthetic_pairs(
    photos: list[np.ndarray], settings: BlurSettings, count: int, crop: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches of `count` training crops, and the true mean blur extent of each crop."""
    dataset = SyntheticPairs(photos, crop=crop, length=count, seed=seed, settings=settings)
    lengths, ratios, extents = [], [], []
    for index in range(count):
        item = dataset[index]
        patch_lengths, patch_ratios = measure(to_hwc(item["blurred"]), to_hwc(item["sharp"]))
        lengths.append(patch_lengths)
        ratios.append(patch_ratios)
        extents.append(float(item["blur_extent"].mean()))
    return np.concatenate(lengths), np.concatenate(ratios), np.array(extents)


def plot(sides: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for label, (lengths, ratios) in sides.items():
        # Cumulative shares: the length estimator is discrete (its kernel bank), a histogram of
        # it would be a comb.
        for axis, values in ((left, lengths), (right, np.log10(np.clip(ratios, 1e-3, 10)))):
            ordered = np.sort(values)
            axis.step(
                ordered, np.arange(1, ordered.size + 1) / ordered.size, where="post", label=label
            )
    left.set_xlabel("best-fitting straight motion length (px) per 32x32 patch")
    left.set_ylabel("share of patches at or below")
    right.set_xlabel("log10 gradient energy ratio, blurred / sharp, per patch")
    for axis, corner in ((left, "lower right"), (right, "upper left")):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc=corner)
    figure.tight_layout()
    figure.savefig(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=Path, nargs="+", required=True, help="paired folders (real)"
    )
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="sharp photo folders")
    parser.add_argument("--count", type=int, default=60, help="synthetic training crops measured")
    parser.add_argument("--crop", type=int, default=256, help="side of each synthetic crop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibrated",
        action="store_true",
        help="start from the calibrated training blur (train.py --calibrated-blur)",
    )
    for item in dataclasses.fields(BlurSettings):
        example = getattr(BlurSettings(), item.name)
        flag = "--" + item.name.replace("_", "-")
        kind, nargs = (float, 2) if isinstance(example, tuple) else (type(example), None)
        parser.add_argument(flag, type=kind, nargs=nargs, help="overrides the training blur")
    parser.add_argument(
        "--with-default",
        action="store_true",
        help="also measure the demo recipe's default training blur, for comparison",
    )
    parser.add_argument("--png", type=Path, help="write the two plots here")
    parser.add_argument("--json", type=Path, help="write the summary numbers here")
    args = parser.parse_args(argv)
    # The training blur of train.py (the demo recipe's), with the flags given on top.
    overrides = {
        item.name: tuple(value) if isinstance(value, list) else value
        for item in dataclasses.fields(BlurSettings)
        if (value := getattr(args, item.name)) is not None
    }
    try:
        settings = TrainConfig(calibrated_blur=args.calibrated).blur_settings()
        settings = dataclasses.replace(settings, **overrides)
    except ValueError as error:
        parser.error(str(error))

    per_pair, real_lengths, real_ratios = real_pairs(args.pairs)
    sides = {f"real pairs ({real_lengths.size} patches)": (real_lengths, real_ratios)}
    report: dict = {"real": describe(real_lengths, real_ratios)}
    compared = {"synthetic": settings}
    if args.with_default:
        compared["synthetic_default"] = TrainConfig().blur_settings()
    photos = read_photos([file for folder in args.photos for file in folder_files(folder)])
    for side, blur in compared.items():
        lengths, ratios, extents = synthetic_pairs(photos, blur, args.count, args.crop, args.seed)
        report[side] = {**describe(lengths, ratios), "true_extent_mean_px": float(extents.mean())}
        label = "default" if side == "synthetic_default" or not args.calibrated else "calibrated"
        sides[f"synthetic, {label} training blur ({lengths.size})"] = (lengths, ratios)
    report |= {
        "pairs": per_pair,
        "blur_settings": dataclasses.asdict(settings),
        "synthetic_crops": {"count": args.count, "crop": args.crop, "seed": args.seed},
        "photos": [str(folder) for folder in args.photos],
    }
    rows = [(side, report[side]) for side in ["real", *compared]] + list(per_pair.items())
    for name, numbers in rows:
        print(
            f"{name:30s} {numbers['patches']:6d} patches  "
            f"length median {numbers['length_median_px']:2.0f} px, "
            f"p90 {numbers['length_p90_px']:2.0f} px  "
            f"nearly sharp {numbers['nearly_sharp_share']:4.0%}  "
            f"over {LONG_PX:.0f} px {numbers['long_share']:4.0%}  "
            f"energy ratio median {numbers['energy_ratio_median']:.3f}"
        )
    if args.png:
        plot(sides, args.png)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
