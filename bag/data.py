"""Datasets of (blurred, sharp) pairs as dicts of CHW float32 tensors in [0, 1].

- `SyntheticPairs`: blur synthesized on the fly from sharp source images (seeded per index).
- `PairedFolder`: ROOT/blur/*, ROOT/sharp/* with matching names (and ROOT/extent/ if present,
  as written by train/synthesize.py).
- `GoProDataset`: the GoPro layout ROOT/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png.
- `detect_layout` and `open_pairs`: which of the two folder layouts a folder holds, one rule
  for training and evaluation alike.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from bag.imageio import load_image
from bag.sources import IMAGE_SUFFIXES
from bag.synthesis import BlurSettings, fit_image, synthesize_crop

_DEFAULT_BLUR = BlurSettings()

EXTENT_PNG_SCALE = 100.0
"""ROOT/extent/*.png hold round(blur_extent * 100) as 16-bit PNG (0.01 px steps, up to 655 px)."""


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1] (16-bit kept, alpha dropped over
    white, EXIF orientation applied); ValueError with a clear message if unreadable."""
    return load_image(path)


def read_extent(path: str | Path) -> np.ndarray:
    """Read a blur-extent PNG written by train/synthesize.py as float32 (H, W) pixels."""
    with Image.open(path) as image:
        values = np.asarray(image)
    return values.astype(np.float32) / EXTENT_PNG_SCALE


def write_extent(path: str | Path, extent: np.ndarray) -> None:
    """Write a (H, W) blur extent in pixels as a 16-bit PNG of round(extent * 100)."""
    values = np.clip(np.round(extent * EXTENT_PNG_SCALE), 0, 65535).astype(np.uint16)
    Image.fromarray(values).save(path)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) or (H, W) float array -> (C, H, W) float32 tensor."""
    if image.ndim == 2:
        image = image[..., None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


def _image_files(folder: Path) -> dict[str, Path]:
    """Image files in a folder keyed by stem (ValueError on two files with the same stem)."""
    files: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
            if file.stem in files:
                raise ValueError(
                    f"{folder}: two images named {file.stem}.* "
                    f"({files[file.stem].name}, {file.name})"
                )
            files[file.stem] = file
    return files


def _match_pairs(blur_dir: Path, sharp_dir: Path) -> list[tuple[Path, Path]]:
    """(blurred, sharp) files with the same name stem; ValueError if none or any unmatched."""
    for folder in (blur_dir, sharp_dir):
        if not folder.is_dir():
            raise ValueError(f"{folder}: folder not found")
    blurred, sharp = _image_files(blur_dir), _image_files(sharp_dir)
    if not blurred:
        raise ValueError(f"{blur_dir}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    if not sharp:
        raise ValueError(f"{sharp_dir}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    only_blurred = sorted(set(blurred) - set(sharp))
    only_sharp = sorted(set(sharp) - set(blurred))
    if only_blurred or only_sharp:
        parts = []
        if only_blurred:
            parts.append(f"no sharp image for {_some(only_blurred)} in {blur_dir}")
        if only_sharp:
            parts.append(f"no blurred image for {_some(only_sharp)} in {sharp_dir}")
        raise ValueError("unmatched file names: " + "; ".join(parts))
    return [(blurred[stem], sharp[stem]) for stem in sorted(blurred)]


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _aligned_crop(
    arrays: list[np.ndarray], crop: int | None, rng: np.random.Generator, name: str
) -> list[np.ndarray]:
    """The same random crop x crop window of every array (all share H and W)."""
    height, width = arrays[0].shape[:2]
    for array in arrays[1:]:
        if array.shape[:2] != (height, width):
            raise ValueError(
                f"{name}: blurred and sharp sizes differ ({width}x{height} vs "
                f"{array.shape[1]}x{array.shape[0]})"
            )
    if crop is None:
        return arrays
    if height < crop or width < crop:
        # Too small for the crop: reflect-pad (all arrays alike, so they stay aligned).
        arrays = [fit_image(array, crop, crop, (0, 0)) for array in arrays]
        height, width = arrays[0].shape[:2]
    top = int(rng.integers(0, height - crop + 1))
    left = int(rng.integers(0, width - crop + 1))
    return [array[top : top + crop, left : left + crop] for array in arrays]


class SyntheticPairs(Dataset):
    """Pairs blurred on the fly (`synthesize_blur`) from random crops of sharp source images.

    Item i is a pure function of (seed, i), whatever the worker count, sharding or resume:
    it picks a source, takes a random crop with a margin (with random flips, 90-degree
    rotations and a downscale by 0.6..1 when `augment`), synthesizes the blur and returns the
    centre: {"blurred": (3, crop, crop), "sharp": (3, crop, crop), "blur_extent": (1, crop, crop)}.

    With `reuse` R > 1, synthesis (most of the data cost) is shared: each rendered pair serves R
    items, each seen under a different one of the 8 flips and 90-degree rotations (motion blur
    stays motion blur under them). The R copies of a pair lie `window` items apart, so a batch
    holds distinct pairs; a process renders each pair once while it keeps the last `window`
    pairs. Make `window` a multiple of batch size x processes, so that every copy of a pair is
    fetched by the process that rendered it; a loader worker that fetches a copy it did not
    render renders the same pair again (a cost, never a different item).
    """

    def __init__(
        self,
        sources: Sequence[np.ndarray],
        crop: int,
        length: int,
        seed: int,
        settings: BlurSettings = _DEFAULT_BLUR,
        augment: bool = True,
        reuse: int = 1,
        window: int = 512,
    ) -> None:
        if len(sources) == 0:
            raise ValueError("SyntheticPairs needs at least one source image")
        for index, source in enumerate(sources):
            if (
                source.ndim != 3
                or source.shape[-1] != 3
                or not np.issubdtype(source.dtype, np.floating)
            ):
                raise ValueError(
                    f"source {index} must be a float (H, W, 3) RGB array in [0, 1], got "
                    f"{source.dtype} {source.shape}"
                )
        if crop < 8 or length < 1:
            raise ValueError(f"need crop >= 8 and length >= 1, got crop={crop}, length={length}")
        if not 1 <= reuse <= len(_DIHEDRAL) or window < 1:
            raise ValueError(f"need 1 <= reuse <= 8 and window >= 1, got {reuse}, {window}")
        self.sources = list(sources)
        self.crop = crop
        self.length = length
        self.seed = seed
        self.settings = settings
        self.augment = augment
        self.reuse = reuse
        self.window = window
        self._rendered: OrderedDict[int, dict[str, torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        if self.reuse == 1:
            return self._render(index)
        # Items of block b = [b*R*w, (b+1)*R*w) are R copies of pairs b*w .. b*w + w - 1.
        block, offset = divmod(index, self.reuse * self.window)
        copy, slot = divmod(offset, self.window)
        pair = block * self.window + slot
        item = self._rendered.get(pair)
        if item is None:
            item = self._render(pair)
            self._rendered[pair] = item
            if len(self._rendered) > self.window:
                self._rendered.popitem(last=False)
        # Each pair's copies take distinct transforms, in an order of its own.
        order = np.random.default_rng([self.seed, pair, 8]).permutation(len(_DIHEDRAL))
        turns, flip = _DIHEDRAL[order[copy]]
        return {key: _dihedral(value, turns, flip) for key, value in item.items()}

    def _render(self, index: int) -> dict[str, torch.Tensor]:
        """Synthesize pair `index` (a pure function of (seed, index))."""
        rng = np.random.default_rng([self.seed, index])
        source = self.sources[int(rng.integers(len(self.sources)))]
        window = self.crop + 2 * self.settings.margin_px
        scale = float(rng.uniform(0.6, 1.0)) if self.augment else 1.0
        # Cut a window that becomes `window` pixels after the downscale (a smaller one from a
        # source that is too small), then let synthesize_crop pad or upscale what is missing.
        height, width = source.shape[:2]
        span = min(math.ceil(window / scale), height, width)
        top = int(rng.integers(0, height - span + 1))
        left = int(rng.integers(0, width - span + 1))
        patch = source[top : top + span, left : left + span]
        if self.augment:
            size = max(self.crop, round(span * scale))
            if size < span:
                patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
            patch = np.rot90(patch, int(rng.integers(4)))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
        patch = np.ascontiguousarray(patch, dtype=np.float32)
        sample = synthesize_crop(patch, rng, self.crop, self.settings)
        return {
            "blurred": _to_tensor(sample.blurred),
            "sharp": _to_tensor(sample.sharp),
            "blur_extent": _to_tensor(sample.blur_extent),
        }


# The 8 symmetries of a square: (quarter turns, horizontal flip).
_DIHEDRAL = [(turns, flip) for flip in (False, True) for turns in range(4)]


def _dihedral(tensor: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """(C, H, W) tensor rotated by `turns` quarter turns, then flipped left-right if `flip`."""
    tensor = torch.rot90(tensor, turns, dims=(1, 2))
    return (tensor.flip(2) if flip else tensor).contiguous()


class PairedFolder(Dataset):
    """ROOT/blur/* and ROOT/sharp/* with matching names (extension aside, so a.jpg pairs with
    a.png): {"blurred", "sharp", "name" = the blurred file's name}.

    With `crop`, a random aligned crop (deterministic per (seed, index, epoch); call
    `set_epoch` each epoch for fresh crops); without, the full image. If ROOT/extent/ exists
    (train/synthesize.py writes it) items also hold "blur_extent" (1, H, W) in pixels.
    """

    def __init__(self, root: str | Path, crop: int | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{self.root}: dataset folder not found")
        self.pairs = _match_pairs(self.root / "blur", self.root / "sharp")
        self.extents: list[Path] | None = None
        extent_dir = self.root / "extent"
        if extent_dir.is_dir():
            self.extents = [extent_dir / f"{blurred.stem}.png" for blurred, _ in self.pairs]
            missing = [path.name for path in self.extents if not path.is_file()]
            if missing:
                raise ValueError(f"{extent_dir}: no extent map for {_some(missing)}")
        self.crop = crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the crops of this epoch (crops are a function of seed, index and epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        blurred_path, sharp_path = self.pairs[index]
        arrays = [read_image(blurred_path), read_image(sharp_path)]
        if self.extents is not None:
            arrays.append(read_extent(self.extents[index]))
        rng = np.random.default_rng([self.seed, index, self.epoch])
        arrays = _aligned_crop(arrays, self.crop, rng, blurred_path.name)
        item: dict[str, torch.Tensor | str] = {
            "blurred": _to_tensor(arrays[0]),
            "sharp": _to_tensor(arrays[1]),
            "name": blurred_path.name,
        }
        if self.extents is not None:
            item["blur_extent"] = _to_tensor(arrays[2])
        return item


class GoProDataset(Dataset):
    """GoPro layout ROOT/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png.

    Items: {"blurred", "sharp", "name" = "<sequence>/<file>"}; `blur_version` picks "blur"
    (averaged in sRGB, the usual choice) or "blur_gamma" (averaged in linear light). Random
    aligned crops as in PairedFolder when `crop` is given.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        blur_version: str = "blur",
        crop: int | None = None,
        seed: int = 0,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if blur_version not in ("blur", "blur_gamma"):
            raise ValueError(f"blur_version must be 'blur' or 'blur_gamma', got {blur_version!r}")
        self.root = Path(root)
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise ValueError(
                f"{split_dir}: not found; expected the GoPro layout "
                "ROOT/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png"
            )
        sequences = sorted(p for p in split_dir.iterdir() if p.is_dir())
        if not sequences:
            raise ValueError(f"{split_dir}: no sequence folders found")
        self.pairs: list[tuple[Path, Path, str]] = []
        for sequence in sequences:
            for blurred, sharp in _match_pairs(sequence / blur_version, sequence / "sharp"):
                self.pairs.append((blurred, sharp, f"{sequence.name}/{blurred.name}"))
        self.split = split
        self.blur_version = blur_version
        self.crop = crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the crops of this epoch (crops are a function of seed, index and epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        blurred_path, sharp_path, name = self.pairs[index]
        rng = np.random.default_rng([self.seed, index, self.epoch])
        blurred, sharp = _aligned_crop(
            [read_image(blurred_path), read_image(sharp_path)], self.crop, rng, name
        )
        return {"blurred": _to_tensor(blurred), "sharp": _to_tensor(sharp), "name": name}


LAYOUTS = ("gopro", "paired")


def detect_layout(root: str | Path, split: str = "test") -> str:
    """ "gopro" or "paired": the layout of the image pairs under `root`, for the GoPro `split`.

    "gopro" if some ROOT/<split>/<sequence>/sharp/ exists, else "paired" if ROOT/blur/ and
    ROOT/sharp/ do; ValueError if neither. GoPro comes first, so a folder holding both layouts
    is read as GoPro by training and evaluation alike: train.py always read such a folder so,
    and a run recorded with it must resume on the same data.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: dataset folder not found")
    split_dir = root / split
    if split_dir.is_dir() and any(
        (sequence / "sharp").is_dir() for sequence in split_dir.iterdir()
    ):
        return "gopro"
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        return "paired"
    raise ValueError(
        f"{root} is neither a GoPro root (ROOT/{split}/<sequence>/blur|blur_gamma|sharp) "
        "nor a paired folder (ROOT/blur, ROOT/sharp)"
    )


def open_pairs(
    root: str | Path,
    split: str = "test",
    layout: str = "auto",
    blur_version: str = "blur",
    crop: int | None = None,
    seed: int = 0,
) -> GoProDataset | PairedFolder:
    """The pairs under `root` in `layout` ("auto": `detect_layout`); `split` and `blur_version`
    apply to GoPro only, `crop` and `seed` as in the datasets. ValueError if they cannot be read.
    """
    if layout == "auto":
        layout = detect_layout(root, split)
    if layout == "gopro":
        return GoProDataset(root, split=split, blur_version=blur_version, crop=crop, seed=seed)
    if layout == "paired":
        return PairedFolder(root, crop=crop, seed=seed)
    raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
