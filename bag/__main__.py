"""Command line: `python -m bag deblur INPUT... -o OUTDIR [--checkpoint PATH] [--attention]`.

This file is the package's only script entry point, so it alone in bag/ parses arguments and
prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bag.checkpoint import CheckpointError
from bag.inference import Deblurrer

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def _inputs(paths: list[str]) -> list[Path]:
    """Files as given, and the images inside any folder given."""
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def deblur(args: argparse.Namespace) -> int:
    """Restore every input into OUTDIR as lossless PNG (and attention maps with --attention)."""
    try:
        deblurrer = Deblurrer.from_checkpoint(
            args.checkpoint, device=args.device, tile=args.tile or None
        )
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    inputs = _inputs(args.inputs)
    print(f"{len(inputs)} image(s), {deblurrer.device}, {deblurrer.precision}")
    failures = 0
    for path in inputs:
        try:
            result = deblurrer(path)
        except ValueError as error:
            print(f"skipped {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        target = out / f"{path.stem}.png"
        result.image.save(target)
        if args.attention:
            for k, attention in enumerate(result.attention, start=1):
                levels = (np.clip(attention, 0, 1) * 255 + 0.5).astype(np.uint8)
                Image.fromarray(levels, mode="L").save(out / f"{path.stem}.A{k}.png")
        width, height = result.image.size
        print(f"{path} -> {target} ({width}x{height}, {result.seconds:.2f} s)")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run it."""
    parser = argparse.ArgumentParser(prog="python -m bag", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("deblur", help="restore blurred photos")
    command.add_argument("inputs", nargs="+", help="image files or folders of images")
    command.add_argument("-o", "--output", required=True, help="output folder")
    command.add_argument(
        "--checkpoint", default=None, help="generator .safetensors (default: shipped)"
    )
    command.add_argument("--attention", action="store_true", help="also write A1..A4 as PNG")
    command.add_argument("--device", default="auto", help="auto, cpu or cuda")
    command.add_argument("--tile", type=int, default=512, help="tile size; 0 = no tiling")
    args = parser.parse_args(argv)
    return deblur(args)


if __name__ == "__main__":
    sys.exit(main())
