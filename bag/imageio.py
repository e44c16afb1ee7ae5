"""Reading user images as float RGB arrays: EXIF orientation, colour modes, bit depth, size limit.

Conversions (the output of the model is always RGB):
- L / I;16 / I / F (grayscale): replicated to three channels; convert the restored image back
  with `.convert("L")` if a grayscale result is wanted.
- RGBA / LA / PA / P with transparency: composited over white (the alpha channel is dropped).
- P (palette), CMYK, YCbCr, LAB, HSV: converted to RGB by Pillow.
- 16-bit PNG / TIFF (grayscale or colour) and uint16 arrays: scaled by 1/65535, not truncated.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

_ORIENTATION = 0x0112


def _check_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"{what} is empty ({width}x{height} pixels)")
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"{what} has {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
            f"limit of {max_pixels / 1e6:.1f} megapixels; downscale it first"
        )


def _composite_over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    alpha = alpha[..., None]
    return rgb * alpha + (1.0 - alpha)


def _from_array(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8 / uint16 / float in [0, 1] -> float32 (H, W, 3) in [0, 1]."""
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == np.bool_:
        values = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise ValueError("the image array contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"float images must have values in [0, 1]; this one spans [{low:.3g}, {high:.3g}]"
            )
        values = values.clip(0, 1)
    else:
        raise ValueError(f"unsupported image array dtype {array.dtype}; use uint8, uint16 or float")
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3 or values.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, 1|2|3|4) image array, got {array.shape}")
    channels = values.shape[-1]
    if channels in (2, 4):  # gray+alpha or RGBA
        colour = values[..., :-1] if channels == 4 else np.repeat(values[..., :1], 3, axis=-1)
        values = _composite_over_white(colour, values[..., -1])
    elif channels == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.ascontiguousarray(values, dtype=np.float32)


def _from_pil(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 (H, W, 3) in [0, 1] (see the module docstring)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _from_array(np.asarray(image).astype(np.uint16))
    if mode == "I":
        values = np.asarray(image)
        scale = 65535.0 if values.max(initial=0) > 255 else 255.0
        return _from_array((values.astype(np.float32) / scale).clip(0, 1))
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        scale = 255.0 if values.max(initial=0) > 1 else 1.0
        return _from_array((values / scale).clip(0, 1))
    if mode == "P" and "transparency" in image.info or mode == "PA":
        image = image.convert("RGBA")
    elif mode in ("1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "La"):
        image = image.convert("RGB")
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")
    return _from_array(np.asarray(image))


def _sixteen_bit_colour(path: Path) -> np.ndarray | None:
    """A 16-bit colour PNG/TIFF as float RGB (Pillow would truncate it to 8 bits), else None."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3:
        return None
    if data.shape[-1] == 4:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)
    else:
        data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
    return _from_array(data)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, C) array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return np.rot90(array, 1)[::-1]
    if orientation == 8:
        return np.rot90(array, 1)
    return array


_READABLE = "PNG, JPEG, TIFF, BMP or WebP"


def _unreadable(path: Path, error: OSError | None) -> str:
    """Why Pillow cannot open `path`, from its first bytes, and what to do (one clause each)."""
    if isinstance(error, PermissionError):
        return "permission denied; check the file's permissions"
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as read_error:
        return f"cannot be read ({read_error.strerror})"
    convert = f"convert it to {_READABLE} first"
    if not head:
        return f"not an image file (it is empty); pass a {_READABLE} image"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1"):
        return f"a HEIC photo, a format Pillow cannot read here; {convert}"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return f"an AVIF image, a format Pillow cannot read here; {convert}"
    if head.startswith(b"%PDF"):
        return f"a PDF document, not an image file; {convert}"
    if b"<svg" in head.lower():
        return f"an SVG drawing (vector graphics), not an image file of pixels; {convert}"
    try:
        is_text = b"\0" not in head and bool(head.decode("utf-8").strip())
    except UnicodeDecodeError:  # a multi-byte character cut at 1024 bytes reads as binary
        is_text = False
    if is_text:
        return f"a text file, not an image file; pass a {_READABLE} image"
    return f"not an image file Pillow can read; pass a {_READABLE} image"


def load_image(
    image: Image.Image | np.ndarray | str | Path, max_pixels: int | None = None
) -> np.ndarray:
    """Read a PIL image, numpy array or file path as float32 RGB (H, W, 3) in [0, 1].

    EXIF orientation is applied. The pixel limit is checked from the file header, before the
    image is decoded. Unreadable input raises ValueError with a sentence saying why.
    """
    if isinstance(image, np.ndarray):
        if image.ndim >= 2:
            _check_size(image.shape[1], image.shape[0], max_pixels, "the image")
        return _from_array(image)
    if isinstance(image, (str, Path)):
        path = Path(image)
        if path.is_dir():
            raise ValueError(f"{path} is a folder, not an image file; pass one of the images in it")
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened = Image.open(path)
        except Image.DecompressionBombError as error:
            raise ValueError(f"{path}: {error}") from None
        except OSError as error:
            raise ValueError(f"{path}: {_unreadable(path, error)}") from None
        except Exception:
            raise ValueError(f"{path}: {_unreadable(path, None)}") from None
        with opened:
            _check_size(opened.width, opened.height, max_pixels, str(path.name))
            try:
                orientation = opened.getexif().get(_ORIENTATION, 1)
                if opened.format in ("PNG", "TIFF") and opened.mode in ("RGB", "RGBA"):
                    colour = _sixteen_bit_colour(path)
                    if colour is not None:
                        return np.ascontiguousarray(_orient(colour, orientation))
                opened.load()
                return _from_pil(ImageOps.exif_transpose(opened))
            except (OSError, SyntaxError, ValueError) as error:
                raise ValueError(
                    f"{path}: the image is corrupt or truncated ({error}); export or copy it again"
                ) from None
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels, "the image")
        try:
            return _from_pil(ImageOps.exif_transpose(image))
        except (OSError, SyntaxError) as error:
            raise ValueError(f"the image is corrupt or truncated ({error})") from None
    raise ValueError(
        f"unsupported input of type {type(image).__name__}; pass a PIL image, an array or a path"
    )


def to_pil(image: np.ndarray) -> Image.Image:
    """float (H, W, 3) in [0, 1] -> 8-bit RGB PIL image (rounded, not truncated)."""
    return Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), mode="RGB")
