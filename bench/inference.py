"""Inference benchmark: speed at 1280x720, reduced-precision error, tiled vs untiled, 12 MP memory.

    .venv/bin/python bench/inference.py [--checkpoint PATH] [--device cpu|cuda] [--json OUT]

Reads a real blurred photo from ../shared/data when it is there (else a synthetic one), times
with torch.cuda.synchronize() on GPU, and measures the 12-megapixel peak memory in a fresh
subprocess (peak RSS on CPU, max allocated on CUDA).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bag import Deblurrer, DeblurResult, Generator, GeneratorConfig, load_generator
from bag.imageio import load_image
from bag.inference import DEFAULT_CHECKPOINT

ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared" / "data"


def test_image(height: int, width: int) -> tuple[np.ndarray, str]:
    """A real blurred photo resized to (height, width) if available, else a smooth pattern."""
    import cv2

    candidates = sorted((SHARED / "gopro" / "blur").glob("GOPR*.png"))
    if candidates:
        image = load_image(candidates[0])
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), candidates[0].name
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    pattern = np.stack([np.sin(40 * x), np.cos(30 * y), np.sin(25 * x * y)], -1) * 0.4 + 0.5
    return pattern.astype(np.float32), "synthetic pattern"


def load(checkpoint: str | None):
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if path.exists():
        return load_generator(path)[0], str(path)
    torch.manual_seed(0)
    return Generator(GeneratorConfig.compact()), "random compact (no checkpoint found)"


def difference(a: DeblurResult, b: DeblurResult) -> float:
    """Mean absolute difference of two restored images as saved (8-bit), in 8-bit levels."""
    return float(np.abs(a.to_uint8().astype(np.float32) - b.to_uint8()).mean())


def timed(deblurrer: Deblurrer, image: np.ndarray, repeats: int):
    deblurrer(image)  # warm-up
    results = [deblurrer(image) for _ in range(repeats)]
    return results[-1], float(np.median([r.seconds for r in results]))


def memory_12mp(checkpoint: str | None, device: str) -> float:
    """Peak memory (MB) of restoring a 4000x3000 photo, in a fresh process."""
    code = (
        "import sys, resource, numpy as np, torch;"
        "sys.argv = ['x']; from inference import load, test_image; from bag import Deblurrer;"
        f"g, _ = load({checkpoint!r}); d = Deblurrer(g, device={device!r});"
        "image, _ = test_image(3000, 4000);"
        "r = d(image); assert r.size == (3000, 4000);"
        "cuda = torch.cuda.max_memory_allocated() / 2**20 if d.device.type == 'cuda' else 0;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cuda)"
    )
    # `python -c` imports from its working directory: this folder, for `inference`.
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        check=True,
    )
    rss, cuda = map(float, out.stdout.split())
    return cuda if device.startswith("cuda") else rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    generator, source = load(args.checkpoint)
    device = Deblurrer(generator, device=args.device).device
    report = {
        "checkpoint": source,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    image, name = test_image(720, 1280)
    report["image"] = name
    precisions = ["float32", "bfloat16"] + (["float16"] if device.type == "cuda" else [])
    reference = None
    for precision in precisions:
        deblurrer = Deblurrer(generator, device=device, tile=None, precision=precision)
        result, seconds = timed(deblurrer, image, args.repeats)
        reference = reference or result
        report[f"seconds_1280x720_{precision}"] = round(seconds, 4)
        report[f"mean_abs_diff_vs_fp32_{precision}"] = round(difference(result, reference), 4)
        print(
            f"1280x720 {precision:9s} {seconds:7.3f} s   |diff| vs fp32 "
            f"{report[f'mean_abs_diff_vs_fp32_{precision}']:.3f}/255"
        )
    report["default_precision"] = Deblurrer(generator, device=device).precision

    large, _ = test_image(1000, 1500)
    untiled = Deblurrer(generator, device=device, tile=None, precision="float32")(large)
    tiled = Deblurrer(generator, device=device, tile=256, overlap=64, precision="float32")(large)
    report["tiled_vs_untiled_1000x1500_tile256"] = round(difference(tiled, untiled), 4)
    report["tiled_vs_untiled_attention"] = round(
        max(
            float(np.abs(a - b).mean())
            for a, b in zip(tiled.attention, untiled.attention, strict=True)
        ),
        5,
    )
    print(
        f"tiled (256 px, {tiled.tiles} tiles) vs untiled, 1000x1500: "
        f"{report['tiled_vs_untiled_1000x1500_tile256']:.3f}/255"
    )
    if not args.skip_memory:
        report["peak_mb_12mp"] = round(memory_12mp(args.checkpoint, str(device)), 1)
        print(f"12 MP photo: peak memory {report['peak_mb_12mp']:.0f} MB")
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
