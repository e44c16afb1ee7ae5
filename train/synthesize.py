"""Write a synthetic paired dataset: sharp crops blurred by bag.synthesis, with true blur extents.

  python train/synthesize.py --sources builtin --out runs/synthetic --count 200 --size 256 --seed 0
  python train/synthesize.py --sources ~/photos --out runs/mine --count 500 --max-layers 1

Writes OUT/blur/NNNN.png and OUT/sharp/NNNN.png (8-bit RGB), OUT/extent/NNNN.png (16-bit
grayscale holding round(blur_extent * 100): the pixels each point travelled during the exposure,
in steps of 0.01 px; read it with bag.data.read_extent) and OUT/settings.json (the command's
arguments, the blur settings and a summary of the extents). The folder loads with
bag.data.PairedFolder, which also returns the extents. Sample i is a function of (seed, i) alone,
as in bag.data.SyntheticPairs: the same command writes the same files.

Every bag.synthesis.BlurSettings field can be set, e.g. --camera-path-px 3 45 --max-layers 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bag.data import EXTENT_PNG_SCALE, SyntheticPairs, write_extent
from bag.imageio import to_pil
from bag.sources import default_sources, folder_images
from bag.synthesis import BlurSettings


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per BlurSettings field (tuples take two numbers), defaulting to the field's."""
    group = parser.add_argument_group("blur settings (bag.synthesis.BlurSettings)")
    for field in dataclasses.fields(BlurSettings):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            group.add_argument(flag, type=float, nargs=2, metavar=("MIN", "MAX"), default=None)
        else:
            group.add_argument(flag, type=type(field.default), default=None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sources",
        default="builtin",
        help="'builtin' (scikit-image photos + dead leaves) or a folder of sharp images",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=100, help="number of pairs")
    parser.add_argument("--size", type=int, default=256, help="side of each square crop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--num-dead-leaves", type=int, default=24, help="dead-leaves images with 'builtin'"
    )
    parser.add_argument(
        "--max-side", type=int, default=None, help="downscale folder images to this longest side"
    )
    parser.add_argument("--no-augment", action="store_true", help="no flips/rotations/rescale")
    parser.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    _add_settings_flags(parser)
    args = parser.parse_args(argv)
    if args.count < 1 or args.size < 8:
        parser.error("--count must be >= 1 and --size >= 8")
    return args


def blur_settings(args: argparse.Namespace) -> BlurSettings:
    overrides = {}
    for field in dataclasses.fields(BlurSettings):
        value = getattr(args, field.name)
        if value is not None:
            overrides[field.name] = tuple(value) if isinstance(value, list) else value
    try:
        return BlurSettings(**overrides)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = blur_settings(args)
    out = Path(args.out)
    folders = {name: out / name for name in ("blur", "sharp", "extent")}
    for folder in folders.values():
        if folder.is_dir() and any(folder.iterdir()) and not args.force:
            raise SystemExit(f"error: {folder} is not empty (use --force to write into it)")
        folder.mkdir(parents=True, exist_ok=True)

    if args.sources == "builtin":
        sources = default_sources(np.random.default_rng(args.seed), args.num_dead_leaves)
    else:
        try:
            sources = folder_images(args.sources, max_side=args.max_side)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    dataset = SyntheticPairs(
        sources,
        crop=args.size,
        length=args.count,
        seed=args.seed,
        settings=settings,
        augment=not args.no_augment,
    )

    digits = max(4, len(str(args.count - 1)))
    mean_extents = []
    for index in tqdm(range(args.count), desc="synthesizing", unit="pair"):
        item = dataset[index]
        name = f"{index:0{digits}d}.png"
        to_pil(item["blurred"].permute(1, 2, 0).numpy()).save(folders["blur"] / name)
        to_pil(item["sharp"].permute(1, 2, 0).numpy()).save(folders["sharp"] / name)
        extent = item["blur_extent"][0].numpy()
        write_extent(folders["extent"] / name, extent)
        mean_extents.append(float(extent.mean()))

    quantiles = np.percentile(mean_extents, [5, 25, 50, 75, 95]).round(2).tolist()
    summary = {
        "count": args.count,
        "size": args.size,
        "seed": args.seed,
        "sources": args.sources,
        "source_images": len(sources),
        "num_dead_leaves": args.num_dead_leaves if args.sources == "builtin" else 0,
        "augment": not args.no_augment,
        "blur": dataclasses.asdict(settings),
        "extent_png_scale": EXTENT_PNG_SCALE,
        "extent_png": "16-bit grayscale PNG of round(blur_extent_px * extent_png_scale)",
        "mean_extent_px_quantiles": dict(
            zip(["5%", "25%", "50%", "75%", "95%"], quantiles, strict=True)
        ),
    }
    (out / "settings.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"wrote {args.count} pairs to {out} (blur/, sharp/, extent/, settings.json); "
        f"mean blur extent per image: median {quantiles[2]} px, "
        f"5-95% {quantiles[0]}-{quantiles[4]} px"
    )


if __name__ == "__main__":
    main()
