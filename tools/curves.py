"""Print a training run's validation curve as a Markdown table, and optionally draw it.

  python tools/curves.py checkpoints/metrics.jsonl --png checkpoints/figures/curves.png

One row per epoch of metrics.jsonl: validation PSNR/SSIM of the restored images beside the
blurred inputs', the mean content loss, the learning rate and the epoch's wall-clock time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bag.runs import read_metrics
from bag.visualize import figure_to_array, validation_curves


def markdown_table(records: list[dict]) -> str:
    """The per-epoch table (Markdown)."""
    lines = [
        "| epoch | step | val PSNR (dB) | gain (dB) | val SSIM | blurred SSIM | content loss "
        "| lr | minutes |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        gain = r["val_psnr"] - r.get("val_psnr_blurred", float("nan"))
        lines.append(
            f"| {r['epoch']} | {r.get('step', '')} | {r['val_psnr']:.2f} | {gain:+.2f} "
            f"| {r['val_ssim']:.4f} | {r.get('val_ssim_blurred', float('nan')):.4f} "
            f"| {r.get('losses', {}).get('content', float('nan')):.4f} | {r.get('lr', 0):.2e} "
            f"| {r.get('seconds', 0) / 60:.1f} |"
        )
    if records and "val_psnr_blurred" in records[-1]:
        lines.append(
            f"\nBlurred validation inputs: PSNR {records[-1]['val_psnr_blurred']:.2f} dB, "
            f"SSIM {records[-1]['val_ssim_blurred']:.4f}. "
            f"Total time {sum(r.get('seconds', 0) for r in records) / 60:.0f} minutes."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="metrics.jsonl of a training run")
    parser.add_argument("--png", type=Path, default=None, help="also draw the curves here")
    args = parser.parse_args(argv)
    records = read_metrics(args.metrics)
    if not records:
        raise SystemExit(f"error: no epoch records in {args.metrics}")
    print(markdown_table(records))
    if args.png is not None:
        from PIL import Image

        args.png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(figure_to_array(validation_curves(records))).save(args.png, optimize=True)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
