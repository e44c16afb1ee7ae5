"""Evaluate a generator checkpoint: PSNR/SSIM of restored images beside the blurred baseline.

Two sources of data:
  --data DIR               the GoPro layout (DIR/<split>/<sequence>/{blur,blur_gamma,sharp}) or
                           a paired folder (DIR/blur, DIR/sharp); --layout auto detects them
                           as train.py does (bag.data.detect_layout: GoPro first).
  --synthetic-from DIR     a folder of sharp images (searched recursively), each blurred by
                           bag.synthesis.synthesize_blur with a generator seeded from (seed, index);
                           also measures how well each attention map A1..A4 finds the blur.

Conventions (also written into the JSON report):
  PSNR on float RGB in [0, 1] (peak 1); SSIM by scikit-image (RGB, data_range 1, 7x7 uniform
  window, averaged over channels). The restored image is the Deblurrer's 8-bit output. Means
  are the average of the per-image values. Attention agreement: the AUROC of each map (upsampled
  to the image) for separating pixels whose true blur extent exceeds --extent-threshold pixels
  from the others; 1 = perfect, 0.5 = unrelated.

Example:
  python train/evaluate.py --checkpoint checkpoints/generator.safetensors \
      --synthetic-from ../shared/data/sharp --seed 0 --json report.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bag.checkpoint import read_metadata
from bag.data import LAYOUTS, detect_layout, open_pairs
from bag.imageio import load_image, to_pil
from bag.inference import Deblurrer
from bag.metrics import (
    PSNR_CONVENTION,
    SSIM_CONVENTION,
    attention_agreement,
    psnr,
    ssim,
)
from bag.sources import IMAGE_SUFFIXES
from bag.synthesis import BlurSettings, synthesize_blur

DEFAULT_EXTENT_THRESHOLD = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="PSNR/SSIM of a BAG generator against the blurred inputs' own PSNR/SSIM.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="generator .safetensors")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="paired folder or GoPro root")
    source.add_argument(
        "--synthetic-from", type=Path, help="folder of sharp images to blur synthetically"
    )
    parser.add_argument("--layout", choices=("auto", *LAYOUTS), default="auto")
    parser.add_argument("--split", default="test", help="GoPro split to evaluate")
    parser.add_argument(
        "--blur-version",
        choices=("blur", "blur_gamma"),
        default=None,
        help="GoPro blurred frames to use (default: blur)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic blur")
    parser.add_argument(
        "--calibrated-blur",
        action="store_true",
        help="blur with BlurSettings.calibrated() (matched to GoPro) instead of the defaults",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="synthetic samples to make (default: one per image; more cycle through the images "
        "with fresh blur)",
    )
    parser.add_argument(
        "--extent-threshold",
        type=float,
        default=DEFAULT_EXTENT_THRESHOLD,
        help="pixels of true blur extent above which a pixel counts as blurred (synthetic only)",
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first K images")
    parser.add_argument(
        "--tile", type=int, default=None, help="tile size (0: one pass; default: the Deblurrer's)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps ...")
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16", "float16"),
        default="auto",
        help="compute precision (auto: the Deblurrer's measured default for the device)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--save-images", type=Path, default=None, help="save restored PNGs here")
    args = parser.parse_args(argv)
    if args.synthetic_from is not None and args.blur_version is not None:
        parser.error("--blur-version applies to GoPro data (--data), not --synthetic-from")
    for name in ("count", "limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.tile is not None and args.tile < 0:
        parser.error("--tile must be 0 (no tiling) or a positive size")
    return args


def _to_hwc(image) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> float32 numpy (H, W, 3)."""
    return np.ascontiguousarray(image.detach().cpu().float().numpy().transpose(1, 2, 0))


def folder_pairs(args: argparse.Namespace, layout: str) -> tuple[int, Iterator[dict]]:
    """Count and iterator of {'name', 'blurred', 'sharp'} (H, W, 3) arrays from bag.data.

    A paired folder written by train/synthesize.py also has ROOT/extent: its items then carry
    'blur_extent' (H, W) and the attention maps are scored as on --synthetic-from data.
    """
    try:
        dataset = open_pairs(
            args.data, args.split, layout=layout, blur_version=args.blur_version or "blur"
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    count = len(dataset) if args.limit is None else min(len(dataset), args.limit)

    def items() -> Iterator[dict]:
        for index in range(count):
            item = dataset[index]
            pair = {
                "name": str(item["name"]),
                "blurred": _to_hwc(item["blurred"]),
                "sharp": _to_hwc(item["sharp"]),
            }
            if "blur_extent" in item:
                pair["blur_extent"] = item["blur_extent"][0].numpy()  # (H, W) pixels
            yield pair

    return count, items()


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, recursively, sorted by relative path."""
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def blur_settings(args: argparse.Namespace) -> BlurSettings:
    """The synthetic blur: the defaults (the held-out set of the model card) or calibrated."""
    return BlurSettings.calibrated() if args.calibrated_blur else BlurSettings()


def synthetic_pairs(args: argparse.Namespace) -> tuple[int, Iterator[dict]]:
    """Count and iterator of seeded synthetic samples with their true blur extent."""
    root = args.synthetic_from
    if not root.is_dir():
        raise SystemExit(f"error: {root} is not a folder")
    paths = find_images(root)
    if not paths:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    count = len(paths) if args.count is None else args.count
    if args.limit is not None:
        count = min(count, args.limit)

    def items() -> Iterator[dict]:
        for index in range(count):
            path = paths[index % len(paths)]
            rng = np.random.default_rng([args.seed, index])
            sample = synthesize_blur(load_image(path), rng, blur_settings(args))
            name = path.relative_to(root).with_suffix("").as_posix()
            if index >= len(paths):
                name += f"#{index // len(paths)}"
            yield {
                "synthesized": True,
                "name": name,
                "blurred": np.asarray(sample.blurred, dtype=np.float32),
                "sharp": np.asarray(sample.sharp, dtype=np.float32),
                "blur_extent": np.asarray(sample.blur_extent, dtype=np.float32),
            }

    return count, items()


def make_deblurrer(args: argparse.Namespace) -> Deblurrer:
    """The checkpoint's Deblurrer; --tile overrides its tile size (0 = one pass)."""
    options = {} if args.tile is None else {"tile": args.tile or None}
    return Deblurrer.from_checkpoint(
        args.checkpoint, device=args.device, precision=args.precision, **options
    )


def evaluate_one(
    item: dict, deblurrer: Deblurrer, threshold_px: float, save_dir: Path | None
) -> tuple[dict, dict | None]:
    """Metrics of one pair, and (synthetic only) subsampled attention/extent pixels to pool."""
    blurred, sharp = item["blurred"], item["sharp"]
    result = deblurrer(blurred)
    restored = result.to_uint8().astype(np.float32) / 255.0  # the 8-bit image as saved
    attention = result.attention_at_input_size()  # A1..A4 (H, W), pixel for pixel with extent
    record = {
        "name": item["name"],
        "height": int(sharp.shape[0]),
        "width": int(sharp.shape[1]),
        "blurred_psnr": psnr(blurred, sharp),
        "blurred_ssim": ssim(blurred, sharp),
        "restored_psnr": psnr(restored, sharp),
        "restored_ssim": ssim(restored, sharp),
        "seconds": float(result.seconds),
        # Mean brightness minus the sharp image's: a learnt global shift shows up here.
        "blurred_mean_offset": float(blurred.mean() - sharp.mean()),
        "restored_mean_offset": float(restored.mean() - sharp.mean()),
    }
    record["psnr_gain"] = record["restored_psnr"] - record["blurred_psnr"]
    record["ssim_gain"] = record["restored_ssim"] - record["blurred_ssim"]
    pixels = None
    extent = item.get("blur_extent")
    if extent is not None:
        blurred_mask = extent > threshold_px  # (H, W)
        record["blur_extent_mean_px"] = float(extent.mean())
        record["blur_extent_max_px"] = float(extent.max())
        record["blurred_fraction"] = float(blurred_mask.mean())
        if attention:
            record["attention_auroc"] = attention_agreement(attention, extent, threshold_px)
            record["attention_mean_blurred"] = [_masked_mean(a, blurred_mask) for a in attention]
            record["attention_mean_sharp"] = [_masked_mean(a, ~blurred_mask) for a in attention]
            # Every 4th pixel each way (maps come from H/4 x W/4 anyway) keeps pooling cheap.
            grid = (slice(2, None, 4), slice(2, None, 4))
            pixels = {"extent": extent[grid], "attention": [a[grid] for a in attention]}
    if save_dir is not None:
        stem = item["name"]
        if Path(stem).suffix.lower() in IMAGE_SUFFIXES:
            stem = stem[: -len(Path(stem).suffix)]
        stem = stem.replace("/", "__")
        result.to_pil().save(save_dir / f"{stem}_restored.png")
        if item.get("synthesized", False):  # these inputs exist nowhere else
            to_pil(blurred).save(save_dir / f"{stem}_blurred.png")
            to_pil(sharp).save(save_dir / f"{stem}_sharp.png")
    return record, pixels


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def _mean(values: list[float]) -> float:
    """Mean of the finite values (nan if none): undefined AUROCs and inf PSNRs are left out."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarise(records: list[dict]) -> dict:
    """Means over images of every scalar metric."""
    keys = ("blurred_psnr", "blurred_ssim", "restored_psnr", "restored_ssim")
    keys += ("psnr_gain", "ssim_gain", "blurred_mean_offset", "restored_mean_offset", "seconds")
    mean = {key: _mean([r[key] for r in records]) for key in keys}
    if records and "blurred_fraction" in records[0]:
        mean["blurred_fraction"] = _mean([r["blurred_fraction"] for r in records])
        mean["blur_extent_mean_px"] = _mean([r["blur_extent_mean_px"] for r in records])
    return mean


EXTENT_BINS_PX = (0.0, 2.0, 10.0, 20.0, math.inf)  # nearly sharp, light, medium, heavy blur


def gain_by_blur_extent(records: list[dict]) -> list[dict]:
    """PSNR gain per bin of the images' mean true blur extent (synthetic sets only): where a
    model helps and where it harms, e.g. nearly sharp photos that get over-sharpened."""
    rows = []
    for low, high in zip(EXTENT_BINS_PX, EXTENT_BINS_PX[1:], strict=False):
        gains = [r["psnr_gain"] for r in records if low <= r["blur_extent_mean_px"] < high]
        rows.append(
            {
                "extent_px": [low, high],
                "images": len(gains),
                "mean_gain": _mean(gains),
                "worst_gain": min(gains) if gains else float("nan"),
                "worse": sum(g < 0 for g in gains),
            }
        )
    return rows


def summarise_attention(records: list[dict], pooled: list[dict], threshold_px: float) -> dict:
    """Agreement of each map with the true blur: pooled over all images and per image.

    Camera shake often blurs a whole image beyond the threshold, so a per-image AUROC exists
    only for images with pixels on both sides; the pooled AUROC (every 4th pixel each way of
    every image) is defined whenever the set has both, and also credits maps that are higher
    on more blurred images.
    """
    extent = np.concatenate([p["extent"].ravel() for p in pooled])
    blurred = extent > threshold_px
    maps = len(pooled[0]["attention"])
    attention = [np.concatenate([p["attention"][k].ravel() for p in pooled]) for k in range(maps)]
    per_image = [r["attention_auroc"] for r in records]
    return {
        "maps": [f"A{k + 1}" for k in range(maps)],
        "threshold_px": threshold_px,
        "pooled_pixels": int(extent.size),
        "pooled_blurred_fraction": float(blurred.mean()),
        "auroc_pooled": attention_agreement(attention, extent, threshold_px),
        "mean_attention_blurred": [_masked_mean(a, blurred) for a in attention],
        "mean_attention_sharp": [_masked_mean(a, ~blurred) for a in attention],
        "auroc_per_image_mean": [_mean(list(column)) for column in zip(*per_image, strict=True)],
        "images_with_both_classes": sum(math.isfinite(values[0]) for values in per_image),
    }


def _json_safe(value):
    """nan/inf -> None so the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def print_tables(
    records: list[dict], mean: dict, attention: dict | None, by_extent: list[dict] | None
) -> None:
    """The per-image PSNR/SSIM table with its mean, then the attention table if any."""
    width = max([len(r["name"]) for r in records] + [len("mean A, blurred")])
    header = f"{'image':<{width}}  {'size':>9}  {'blurred PSNR':>12} {'SSIM':>6}  "
    header += f"{'restored PSNR':>13} {'SSIM':>6}  {'gain dB':>7} {'SSIM':>7}"
    print(header)
    print("-" * len(header))
    for r in records + [dict(mean, name="mean", height=None, width=None)]:
        size = f"{r['width']}x{r['height']}" if r["height"] else ""
        print(
            f"{r['name']:<{width}}  {size:>9}  {r['blurred_psnr']:>12.2f} {r['blurred_ssim']:>6.3f}"
            f"  {r['restored_psnr']:>13.2f} {r['restored_ssim']:>6.3f}  {r['psnr_gain']:>+7.2f}"
            f" {r['ssim_gain']:>+7.3f}"
        )
    if attention is None or by_extent is None:
        return
    print("\nGain by mean true blur extent")
    for row in by_extent:
        low, high = row["extent_px"]
        span = f"{low:g}-{high:g} px" if math.isfinite(high) else f">= {low:g} px"
        print(
            f"{span:<10} {row['images']:>3} images  mean {row['mean_gain']:+.2f} dB  "
            f"worst {row['worst_gain']:+.2f} dB  {row['worse']} worse"
        )
    threshold = attention["threshold_px"]
    print(f"\nAttention vs true blur: AUROC for blur extent > {threshold:g} px (nan: one class)")
    header = f"{'image':<{width}}  {'blurred %':>9}  "
    header += " ".join(f"{n:>6}" for n in attention["maps"])
    print(header)
    print("-" * len(header))
    rows = [(r["name"], r["blurred_fraction"], r["attention_auroc"]) for r in records]
    rows.append(
        (
            f"mean of {attention['images_with_both_classes']}",
            mean["blurred_fraction"],
            attention["auroc_per_image_mean"],
        )
    )
    rows.append(("pooled", attention["pooled_blurred_fraction"], attention["auroc_pooled"]))
    for name, fraction, values in rows:
        print(f"{name:<{width}}  {100 * fraction:>9.1f}  " + " ".join(f"{v:>6.3f}" for v in values))
    for label, key in (("blurred", "mean_attention_blurred"), ("sharp", "mean_attention_sharp")):
        values = " ".join(f"{v:>6.3f}" for v in attention[key])
        print(f"{'mean A, ' + label:<{width}}  {'':>9}  {values}")


def main(argv: list[str] | None = None) -> dict:
    """Run the evaluation; returns the report (also printed, and written with --json)."""
    args = parse_args(argv)
    config, metadata = read_metadata(args.checkpoint)
    deblurrer = make_deblurrer(args)
    if args.synthetic_from is not None:
        kind, root = "synthetic", args.synthetic_from
        count, items = synthetic_pairs(args)
    else:
        kind = args.layout
        if kind == "auto":  # the rule train.py follows too: GoPro first, then paired
            try:
                kind = detect_layout(args.data, args.split)
            except ValueError as error:
                raise SystemExit(f"error: {error}") from None
        root = args.data
        if kind == "paired" and args.blur_version is not None:
            raise SystemExit("error: --blur-version applies to the GoPro layout only")
        if kind == "gopro" and args.blur_version is None:
            args.blur_version = "blur"
        count, items = folder_pairs(args, kind)
    if count == 0:
        raise SystemExit(f"error: no image pairs found in {root}")
    if args.save_images is not None:
        args.save_images.mkdir(parents=True, exist_ok=True)

    records, pooled = [], []
    progress = tqdm(items, total=count, desc="evaluating", unit="image")
    for item in progress:
        record, pixels = evaluate_one(item, deblurrer, args.extent_threshold, args.save_images)
        records.append(record)
        if pixels is not None:
            pooled.append(pixels)
        progress.set_postfix(psnr=f"{record['restored_psnr']:.2f}")
    mean = summarise(records)
    attention = summarise_attention(records, pooled, args.extent_threshold) if pooled else None
    by_extent = gain_by_blur_extent(records) if pooled else None  # sets with a true blur extent
    print_tables(records, mean, attention, by_extent)

    report = {
        "checkpoint": str(args.checkpoint),
        "generator_config": config.to_dict(),
        "checkpoint_metadata": metadata,
        "data": {
            "kind": kind,
            "root": str(root),
            "split": args.split if kind == "gopro" else None,
            "blur_version": args.blur_version if kind == "gopro" else None,
            "seed": args.seed if kind == "synthetic" else None,
            "count": count,
            "limit": args.limit,
            "blur_settings": (
                dataclasses.asdict(blur_settings(args)) if kind == "synthetic" else None
            ),
        },
        "settings": {
            "device": str(deblurrer.device),
            "precision": deblurrer.precision,
            "tile": deblurrer.tile,
            "overlap": deblurrer.overlap,
        },
        "conventions": {
            "psnr": PSNR_CONVENTION,
            "ssim": SSIM_CONVENTION,
            "restored": "the Deblurrer's 8-bit RGB output divided by 255",
            "mean": "average of per-image values (non-finite values left out)",
            "attention_auroc": "AUROC of each map A1..A4 (upsampled to the image) for pixels "
            "whose true blur extent exceeds threshold_px vs the rest: 1 perfect, 0.5 chance; "
            "per image (null where all pixels fall on one side) and pooled over the set",
        },
        "images": records,
        "mean": mean,
        "attention": attention,
        "gain_by_blur_extent": by_extent,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
        print(f"\nreport written to {args.json}")
    return report


if __name__ == "__main__":
    main()
