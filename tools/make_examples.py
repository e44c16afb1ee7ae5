"""Write the app's example inputs to assets/: synthetic motion blur (bag.synthesis) applied to
photos that ship inside scikit-image, with their sharp originals as references.

    python tools/make_examples.py   # assets/example-*.png, assets/sharp-*.png, examples.json

Deterministic: the same seed gives the same files. For each photo, seeds are tried in order
until the mean blur extent lands in a range where the blur is clearly visible but the photo is
still recognisable (a sample with almost no motion makes a poor example).

Honesty note: the colour photos are also training sources of the shipped model (with other
random blur, bag/sources.py); the grayscale photos are not. examples.json records which is
which, and the app labels the examples with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from bag.synthesis import BlurSettings, synthesize_blur

# (skimage.data name, a training source of bag/sources.py?, accepted mean blur extent in px);
# the small text photo gets a milder blur so its letters stay recognisable.
PHOTOS = (
    ("astronaut", True, (10.0, 30.0)),
    ("chelsea", True, (10.0, 30.0)),
    ("coffee", True, (10.0, 30.0)),
    ("camera", False, (10.0, 30.0)),
    ("text", False, (4.0, 10.0)),
)
MAX_SIDE = 640


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo as float32 RGB (H, W, 3) in [0, 1], longest side <= 640."""
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def is_gray(image: np.ndarray) -> bool:
    """True when the three channels are equal (a grayscale photo read as RGB)."""
    return bool(
        np.array_equal(image[..., 0], image[..., 1])
        and np.array_equal(image[..., 0], image[..., 2])
    )


def blurred_example(
    sharp: np.ndarray, seed: int, extent_range: tuple[float, float], tries: int = 50
) -> tuple[np.ndarray, int, float]:
    """The first sample (seeds seed, seed+1, ...) whose mean blur extent is in range."""
    sample = None
    for offset in range(tries):
        sample = synthesize_blur(sharp, np.random.default_rng(seed + offset), BlurSettings())
        extent = float(sample.blur_extent.mean())
        if extent_range[0] <= extent <= extent_range[1]:
            return sample.blurred, seed + offset, extent
    raise RuntimeError(f"no sample with mean blur extent in {extent_range} in {tries} seeds")


def to_png(path: Path, image: np.ndarray, gray: bool) -> None:
    """Save float RGB in [0, 1] as an optimised 8-bit PNG (one channel when `gray`)."""
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels)
    (picture.convert("L") if gray else picture).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets")
    parser.add_argument("--seed", type=int, default=2008)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (name, in_training, extent_range) in enumerate(PHOTOS):
        sharp = photo(name)
        gray = is_gray(sharp)
        blurred, seed, extent = blurred_example(sharp, args.seed + 100 * index, extent_range)
        to_png(args.out / f"example-{name}.png", blurred, gray)
        to_png(args.out / f"sharp-{name}.png", sharp, gray)
        size = (args.out / f"example-{name}.png").stat().st_size / 1024
        print(
            f"{name}: {sharp.shape[1]}x{sharp.shape[0]}, seed {seed}, "
            f"mean blur extent {extent:.1f} px, {size:.0f} KiB"
        )
        records.append(
            {
                "name": name,
                "blurred": f"example-{name}.png",
                "sharp": f"sharp-{name}.png",
                "source": f"skimage.data.{name}()",
                "grayscale": gray,
                "training_source": in_training,
                "seed": seed,
                "mean_blur_extent_px": round(extent, 2),
            }
        )
    manifest = {"made_by": "python tools/make_examples.py", "examples": records}
    (args.out / "examples.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
