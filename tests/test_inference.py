"""Deblurrer: input types and modes, sizes, tiling, limits."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bag import Deblurrer, Generator, GeneratorConfig, save_generator
from bag.imageio import load_image


@pytest.fixture(scope="module")
def deblurrer():
    torch.manual_seed(0)
    return Deblurrer(Generator(GeneratorConfig.tiny()), device="cpu", precision="float32")


def _photo(height, width, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(9 * x + 3 * y), np.cos(7 * y), np.sin(5 * x * y + 1)], -1) * 0.4 + 0.5
    return (base + 0.05 * rng.standard_normal((height, width, 3))).clip(0, 1).astype(np.float32)


def test_output_matches_input_size_and_ranges(deblurrer):
    result = deblurrer(_photo(37, 53))
    assert result.image.size == (53, 37) and result.image.mode == "RGB"
    assert len(result.attention) == 4
    for a in result.attention:
        assert a.shape == (37, 53) and a.dtype == np.float32
        assert 0 <= a.min() and a.max() <= 1
    assert result.seconds > 0 and result.tiles == 1


@pytest.mark.parametrize("size", [(1, 1), (3, 40), (15, 15)])
def test_tiny_images_are_padded_and_cropped(deblurrer, size):
    result = deblurrer(_photo(*size))
    assert result.image.size == (size[1], size[0])
    assert all(a.shape == size for a in result.attention)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1", "RGB"])
def test_every_image_mode(deblurrer, mode, tmp_path):
    rgb = Image.fromarray((_photo(24, 30) * 255).astype(np.uint8))
    if mode == "I;16":
        image = Image.fromarray((_photo(24, 30)[..., 0] * 65535).astype(np.uint16))
    elif mode == "P":
        image = rgb.convert("P")
    else:
        image = rgb.convert(mode)
    for source in (image, _saved(image, tmp_path / f"x.{'tif' if mode == 'CMYK' else 'png'}")):
        result = deblurrer(source)
        assert result.image.size == (30, 24) and result.image.mode == "RGB"


def _saved(image, path):
    image.save(path)
    return path


def test_modes_convert_as_documented():
    gray = Image.fromarray(np.full((8, 8), 100, np.uint8), mode="L")
    np.testing.assert_allclose(load_image(gray), 100 / 255, atol=1e-6)
    transparent = np.zeros((8, 8, 4), np.uint8)  # fully transparent black -> white
    np.testing.assert_allclose(load_image(transparent), 1.0)
    sixteen = np.full((4, 4, 3), 257 * 3 + 1, np.uint16)
    np.testing.assert_allclose(load_image(sixteen), (257 * 3 + 1) / 65535, rtol=1e-6)


def test_sixteen_bit_colour_png_is_not_truncated(tmp_path):
    import cv2

    data = np.full((6, 7, 3), 1000, np.uint16)  # 1000/65535: 3.9 levels of 8 bits
    data[..., 0] = 40000
    cv2.imwrite(str(tmp_path / "deep.png"), data)  # BGR on disk
    loaded = load_image(tmp_path / "deep.png")
    np.testing.assert_allclose(loaded[0, 0], [1000 / 65535, 1000 / 65535, 40000 / 65535], rtol=1e-5)


def test_exif_orientation_is_applied(deblurrer, tmp_path):
    image = Image.fromarray((_photo(20, 44) * 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    result = deblurrer(tmp_path / "rotated.jpg")
    assert result.image.size == (20, 44)


def test_bad_inputs_raise_clear_value_errors(deblurrer, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        deblurrer(tmp_path / "notes.txt")
    buffer = io.BytesIO()
    Image.fromarray((_photo(64, 64) * 255).astype(np.uint8)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:300])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        deblurrer(tmp_path / "cut.png")
    with pytest.raises(ValueError, match="no such file"):
        deblurrer(tmp_path / "absent.png")
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        deblurrer(np.full((9, 9, 3), 3.0, np.float32))
    with pytest.raises(ValueError, match="unsupported input"):
        deblurrer(12)


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    small = Deblurrer(Generator(GeneratorConfig.tiny()), device="cpu", max_pixels=10_000)
    Image.new("RGB", (200, 100)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="limit of 0.0 megapixels"):
        small(tmp_path / "big.png")
    with pytest.raises(ValueError, match="megapixels"):
        small(np.zeros((101, 100, 3), np.uint8))


def test_tiled_matches_untiled():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(base_channels=4, growth_rate=4))
    with torch.no_grad():  # a strong residual, so that tiling errors would show
        generator.decoder[-1].weight.mul_(10)
    image = _photo(300, 420, seed=1)
    untiled = Deblurrer(generator, device="cpu", tile=None, precision="float32")(image)
    tiled = Deblurrer(generator, device="cpu", tile=128, overlap=48, precision="float32")(image)
    assert tiled.tiles > 4
    difference = np.abs(np.asarray(tiled.image, np.float32) - np.asarray(untiled.image, np.float32))
    assert difference.mean() < 1.0  # in 8-bit levels
    for a, b in zip(tiled.attention, untiled.attention, strict=True):
        assert np.abs(a - b).mean() < 0.01


def test_tiling_needs_image_level_statistics():
    """Without image-level statistics (every tile normalised alone) tiles would not match."""
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(base_channels=4, growth_rate=4))
    with torch.no_grad():
        generator.decoder[-1].weight.mul_(10)
    image = _photo(300, 420, seed=1)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    deblurrer = Deblurrer(generator, device="cpu", tile=128, overlap=48, precision="float32")
    untiled = deblurrer.generator(x).image
    local, _, _ = deblurrer._tiled_pass(x, None)
    shared, _, _ = deblurrer._tiled_pass(x, deblurrer._statistics(x))
    assert (shared - untiled).abs().mean() < (local - untiled).abs().mean() / 3


def test_from_checkpoint(tmp_path):
    save_generator(Generator(GeneratorConfig.tiny()), tmp_path / "g.safetensors", {"epoch": 1})
    deblurrer = Deblurrer.from_checkpoint(tmp_path / "g.safetensors", device="cpu")
    assert deblurrer.metadata == {"epoch": 1}
    assert deblurrer.device == torch.device("cpu")
    assert deblurrer(_photo(16, 16)).image.size == (16, 16)


def test_reduced_precision_stays_close():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig.tiny())
    image = _photo(40, 48)
    full = Deblurrer(generator, device="cpu", precision="float32")(image)
    half = Deblurrer(generator, device="cpu", precision="bfloat16")(image)
    difference = np.abs(np.asarray(full.image, np.float32) - np.asarray(half.image, np.float32))
    assert difference.mean() < 1.0
