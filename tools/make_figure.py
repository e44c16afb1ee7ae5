"""Side-by-side figure for the model card: blurred / restored / sharp / A4, one row per image.

Each row shows a crop of the image (the same window in every column) so that details stay
visible; the crop is centred on the place where A4 is highest on average, or on the image centre
with --center. Images without a sharp reference (real blurred photos) get an empty third cell.
PSNR against the sharp image is written under the blurred and restored cells.

  python tools/make_figure.py --checkpoint checkpoints/generator.safetensors \
      --pairs ../shared/data/gopro --photos ../shared/data/real-blur/street-07.png \
      --out checkpoints/figures/real.png

Images are read in place and only the figure is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from bag.data import PairedFolder
from bag.imageio import load_image
from bag.inference import Deblurrer
from bag.metrics import psnr
from bag.visualize import heatmap


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: shipped model")
    parser.add_argument("--pairs", type=Path, action="append", default=[], help="DIR/blur, sharp")
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="blurred photos")
    parser.add_argument("--crop", type=int, default=320, help="side of the shown window, pixels")
    parser.add_argument("--center", action="store_true", help="window at the image centre")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    return parser.parse_args(argv)


def window(attention: np.ndarray, crop: int, center: bool) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop x crop window where `attention` is highest."""
    height, width = attention.shape
    size_h, size_w = min(crop, height), min(crop, width)
    if center:
        return (height - size_h) // 2, (width - size_w) // 2, size_h, size_w
    # Mean attention of every window through a summed-area table, on a coarse grid of origins.
    table = np.pad(attention.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    tops = np.arange(0, height - size_h + 1, 8)
    lefts = np.arange(0, width - size_w + 1, 8)
    sums = (
        table[tops[:, None] + size_h, lefts[None] + size_w]
        - table[tops[:, None], lefts[None] + size_w]
        - table[tops[:, None] + size_h, lefts[None]]
        + table[tops[:, None], lefts[None]]
    )
    row, column = np.unravel_index(np.argmax(sums), sums.shape)
    return int(tops[row]), int(lefts[column]), size_h, size_w


def rows(args: argparse.Namespace) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, blurred, sharp or None) for every requested image, (H, W, 3) floats in [0, 1]."""
    found = []
    for root in args.pairs:
        for item in PairedFolder(root):
            blurred, sharp = (item[key].permute(1, 2, 0).numpy() for key in ("blurred", "sharp"))
            found.append((Path(item["name"]).stem, blurred, sharp))
    found += [(photo.stem, load_image(photo), None) for photo in args.photos]
    if not found:
        raise SystemExit("error: no images: give --pairs DIR and/or --photos FILE ...")
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    deblurrer = Deblurrer.from_checkpoint(args.checkpoint, device="cpu")
    items = rows(args)
    figure = Figure(figsize=(4 * 3.0, len(items) * 3.15))
    titles = ("blurred", "restored", "sharp", "A4 (0 to 1)")
    for index, (name, blurred, sharp) in enumerate(items):
        result = deblurrer(blurred)
        restored = result.to_uint8().astype(np.float64) / 255.0  # the 8-bit image a user saves
        a4 = result.attention_at_input_size()[3]  # (H, W), aligned with the image crop
        top, left, size_h, size_w = window(a4, args.crop, args.center)
        crop = np.s_[top : top + size_h, left : left + size_w]
        cells = [blurred[crop], restored[crop], None if sharp is None else sharp[crop]]
        cells.append(heatmap(a4)[crop])
        notes = ["", "", "no sharp reference" if sharp is None else "", ""]
        if sharp is not None:
            notes[0] = f"PSNR {psnr(blurred, sharp):.2f} dB (whole image)"
            notes[1] = f"PSNR {psnr(restored, sharp):.2f} dB (whole image)"
        for column, (cell, note) in enumerate(zip(cells, notes, strict=True)):
            axes = figure.add_subplot(len(items), 4, index * 4 + column + 1)
            axes.set_xticks([])
            axes.set_yticks([])
            if cell is not None:
                axes.imshow(cell, interpolation="nearest")
            else:
                axes.set_facecolor("#eeeeee")
            if index == 0:
                axes.set_title(titles[column], fontsize=11)
            if column == 0:
                axes.set_ylabel(f"{name}\n({blurred.shape[1]}x{blurred.shape[0]})", fontsize=9)
            axes.set_xlabel(note, fontsize=8)
    figure.tight_layout()
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(items)} images, {args.crop}-pixel windows)")


if __name__ == "__main__":
    main()
