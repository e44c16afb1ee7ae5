"""Sharp training images that need no download: scikit-image's photos, procedural dead leaves,
and folders of the user's own photos. All returned as float32 RGB (H, W, 3) in [0, 1]."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bag.imageio import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _read_only(*photos: np.ndarray) -> tuple[np.ndarray, ...]:
    """The cached photos, protected from callers that would write into them."""
    for photo in photos:
        photo.setflags(write=False)
    return photos


@functools.lru_cache(maxsize=1)
def _skimage_photos_uint8() -> tuple[np.ndarray, ...]:
    import skimage.data

    # Only the natural colour photos bundled with the package (no microscopy, space, drawings,
    # and nothing that the package would have to download). The right motorcycle view is left
    # out: it nearly repeats the left one.
    left, _, _ = skimage.data.stereo_motorcycle()
    return _read_only(
        skimage.data.astronaut(),
        skimage.data.chelsea(),
        skimage.data.coffee(),
        skimage.data.rocket(),
        left,
    )


@functools.lru_cache(maxsize=1)
def _skimage_greyscale_uint8() -> tuple[np.ndarray, ...]:
    import skimage.data

    # The 512x512 greyscale photos and natural textures bundled with the package. The smaller
    # ones (coins, page, text) are left out: crops of them would need upscaling, i.e. softening.
    return _read_only(
        skimage.data.camera(),
        skimage.data.brick(),
        skimage.data.grass(),
        skimage.data.gravel(),
        skimage.data.moon(),
    )


def skimage_greyscale_photos() -> list[np.ndarray]:
    """scikit-image's greyscale photos and textures (camera, brick, grass, gravel, moon) as
    grey RGB, float32 (H, W, 3) in [0, 1]: more natural edges and textures than the five colour
    photos hold."""
    return [
        np.repeat(photo[..., None].astype(np.float32) / 255.0, 3, axis=-1)
        for photo in _skimage_greyscale_uint8()
    ]


def skimage_photos() -> list[np.ndarray]:
    """The natural colour photos shipped inside scikit-image (astronaut, chelsea, coffee,
    rocket, motorcycle), float32 (H, W, 3) in [0, 1]."""
    return [photo.astype(np.float32) / 255.0 for photo in _skimage_photos_uint8()]


@functools.lru_cache(maxsize=1)
def _photo_colours() -> np.ndarray:
    """(4096, 3) uint8 natural colours: half drawn from the skimage photos' pixels, half
    random hues at the saturations and brightnesses typical of photos (the five photos alone
    are mostly orange and blue)."""
    rng = np.random.default_rng(0)
    pixels = np.concatenate([photo.reshape(-1, 3) for photo in _skimage_photos_uint8()])
    from_photos = pixels[rng.choice(len(pixels), 2048, replace=False)]
    hsv = np.stack(
        [
            rng.uniform(0, 180, 2048),  # OpenCV hue range
            255 * rng.beta(1.2, 2.5, 2048),
            255 * rng.beta(2.0, 1.6, 2048),
        ],
        axis=-1,
    ).astype(np.uint8)
    from_hues = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
    return np.concatenate([from_photos, from_hues])


def _power_law_radii(
    rng: np.random.Generator, count: int, min_radius: float, max_radius: float
) -> np.ndarray:
    """Radii with density proportional to r^-3 on [min_radius, max_radius] (inverse CDF)."""
    low, high = min_radius**-2, max_radius**-2
    return (low - rng.random(count) * (low - high)) ** -0.5


def _texture(rng: np.random.Generator, shape: tuple[int, int], colour: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 fill in [0, 255] around `colour`: a gradient, stripes or noise."""
    h, w = shape
    other = _photo_colours()[rng.integers(len(_photo_colours()))].astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0.0, math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)  # (h, w)
    kind = rng.integers(3)
    if kind == 0:  # linear gradient to another natural colour
        mix = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    elif kind == 1:  # stripes, sharp or soft
        period = rng.uniform(3.0, 24.0)
        wave = 0.5 + 0.5 * np.sin(along * (2.0 * math.pi / period) + rng.uniform(0, 7))
        hardness = rng.uniform(1.0, 6.0)
        mix = np.clip((wave - 0.5) * hardness + 0.5, 0.0, 1.0) * rng.uniform(0.3, 1.0)
    else:  # smooth coloured noise
        noise = rng.standard_normal((h, w)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(0.5, 3.0))
        mix = np.clip(0.5 + noise * (rng.uniform(0.3, 1.0) / max(float(noise.std()), 1e-6)), 0, 1)
        mix *= rng.uniform(0.2, 0.8)
    mix = mix[..., None]
    return colour.astype(np.float32) * (1.0 - mix) + other * mix


def dead_leaves(
    size: int | tuple[int, int],
    rng: np.random.Generator,
    min_radius: float = 3.0,
    max_radius: float | None = None,
    texture_probability: float = 0.3,
    coverage: float = 4.0,
) -> np.ndarray:
    """A dead-leaves image (occluding random shapes, radii ~ r^-3): float32 (H, W, 3) in [0, 1].

    `size` is a side or (h, w). Shapes are discs, ellipses and rotated rectangles (so edges,
    corners and curves all occur) with colours drawn from natural photos; a share of the
    larger ones carry a gradient, stripes or noise texture. `coverage` is the expected number
    of shapes over each pixel (4: about 2% of the background shows through). `max_radius`
    defaults to half the shorter side; a `min_radius` of 3 px keeps it from looking like
    confetti. Edges are anti-aliased, so the image is sharp but not aliased.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if height < 8 or width < 8:
        raise ValueError(f"dead_leaves size must be at least 8x8, got {size}")
    max_radius = max_radius if max_radius is not None else min(height, width) / 2.0
    if not 0 < min_radius <= max_radius:
        raise ValueError(f"need 0 < min_radius <= max_radius, got {min_radius}, {max_radius}")
    # Mean area of a shape with radius density ~ r^-3 on [a, b]: 2 pi a^2 b^2 ln(b/a) / (b^2 - a^2).
    a, b = min_radius, max_radius
    mean_area = 2 * math.pi * a * a * b * b * math.log(b / a) / max(b * b - a * a, 1e-9)
    count = int(math.ceil(coverage * height * width / max(mean_area, 1e-9)))

    colours = _photo_colours()
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = colours[rng.integers(len(colours))]
    radii = _power_law_radii(rng, count, min_radius, max_radius)
    # Centres may lie a little outside the image so the borders are covered like the middle.
    centres_x = rng.uniform(-0.1 * width, 1.1 * width, count)
    centres_y = rng.uniform(-0.1 * height, 1.1 * height, count)
    kinds = rng.choice(3, count, p=(0.5, 0.3, 0.2))  # disc, ellipse, rectangle
    aspects = np.exp(rng.uniform(-0.8, 0.8, count))
    angles = rng.uniform(0.0, 180.0, count)
    colour_indices = rng.integers(len(colours), size=count)
    textured = (rng.random(count) < texture_probability) & (radii >= 6)
    texture_seeds = rng.integers(2**63, size=count)
    shift = 4  # sub-pixel precision of cv2 drawing (coordinates scaled by 16)
    scale = 1 << shift
    for i in range(count):  # painter's order: later shapes occlude earlier ones
        radius = float(radii[i])
        centre = (int(centres_x[i] * scale), int(centres_y[i] * scale))
        if kinds[i] == 1:
            axes = (int(radius * aspects[i] * scale), int(radius / aspects[i] * scale))
        else:
            axes = (int(radius * scale), int(radius * scale))
        reach = radius * max(aspects[i], 1 / aspects[i]) * (1.5 if kinds[i] == 2 else 1.0) + 2
        x0, y0 = max(0, int(centres_x[i] - reach)), max(0, int(centres_y[i] - reach))
        x1, y1 = (
            min(width, int(centres_x[i] + reach) + 2),
            min(height, int(centres_y[i] + reach) + 2),
        )
        if x1 <= x0 or y1 <= y0:
            continue
        if textured[i]:
            target = np.zeros((y1 - y0, x1 - x0), np.uint8)
            offset = (x0 * scale, y0 * scale)
            colour: tuple[int, ...] = (255,)
        else:
            target, offset = canvas, (0, 0)
            colour = tuple(int(c) for c in colours[colour_indices[i]])
        local_centre = (centre[0] - offset[0], centre[1] - offset[1])
        if kinds[i] == 2:
            box = (
                (local_centre[0] / scale, local_centre[1] / scale),
                (2 * radius * aspects[i], 2 * radius / aspects[i]),
                float(angles[i]),
            )
            corners = np.round(cv2.boxPoints(box) * scale).astype(np.int32)
            cv2.fillPoly(target, [corners], colour, cv2.LINE_AA, shift)
        else:
            cv2.ellipse(
                target, local_centre, axes, float(angles[i]), 0, 360, colour, -1, cv2.LINE_AA, shift
            )
        if textured[i]:
            alpha = target.astype(np.float32)[..., None] / 255.0
            fill = _texture(
                np.random.default_rng(texture_seeds[i]), target.shape, colours[colour_indices[i]]
            )
            region = canvas[y0:y1, x0:x1]
            region[:] = np.clip(region * (1.0 - alpha) + fill * alpha + 0.5, 0, 255)
    return canvas.astype(np.float32) / 255.0


def folder_files(path: str | Path) -> list[Path]:
    """The image files of a folder (not recursive), sorted by name.

    Raises ValueError if it is not a folder or holds no images.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def is_held_out(file: str | Path, share: float) -> bool:
    """Whether a photo belongs to the held-out `share` of its folder's photos.

    Decided by a hash of the folder and file names alone, so a photo stays on the same side of
    the split whatever else is in the folders, in what order they are given, or where they lie.
    """
    path = Path(file)
    digest = hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def split_photos(folders: Sequence[str | Path], share: float) -> tuple[list[Path], list[Path]]:
    """The image files of `folders` as (training, held out), `share` of them held out."""
    if not 0 <= share < 1:
        raise ValueError(f"the held-out share must be in [0, 1), got {share}")
    training, held_out = [], []
    for folder in folders:
        for file in folder_files(folder):
            (held_out if is_held_out(file, share) else training).append(file)
    return training, held_out


def read_photos(files: Sequence[Path], max_side: int | None = None) -> list[np.ndarray]:
    """Decode image files as float32 (H, W, 3) in [0, 1] (EXIF-rotated, RGB).

    Images whose longer side exceeds `max_side` are downscaled (area averaging), which also
    makes slightly soft photos sharper.
    """
    images = []
    for file in files:
        image = load_image(file)
        longest = max(image.shape[:2])
        if max_side is not None and longest > max_side:
            factor = max_side / longest
            new_size = (
                max(1, round(image.shape[1] * factor)),
                max(1, round(image.shape[0] * factor)),
            )
            image = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
        images.append(np.ascontiguousarray(image, dtype=np.float32))
    return images


def folder_images(path: str | Path, max_side: int | None = None) -> list[np.ndarray]:
    """Every image in a folder (not recursive, sorted by name), float32 (H, W, 3) in [0, 1];
    see `read_photos`. Raises ValueError if the folder has no images."""
    return read_photos(folder_files(path), max_side)


def default_sources(
    rng: np.random.Generator,
    num_dead_leaves: int = 24,
    size: int | tuple[int, int] = (512, 512),
    greyscale_photos: bool = False,
) -> list[np.ndarray]:
    """The built-in sharp sources: scikit-image's colour photos (and its greyscale ones if
    `greyscale_photos`) plus `num_dead_leaves` dead-leaves images of `size` (side or (h, w))
    drawn from `rng`."""
    photos = skimage_photos() + (skimage_greyscale_photos() if greyscale_photos else [])
    return photos + [dead_leaves(size, rng) for _ in range(num_dead_leaves)]
