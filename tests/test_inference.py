"""Deblurrer: input types and modes, sizes, tiling, limits."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bag import Deblurrer, Generator, GeneratorConfig, save_generator
from bag.imageio import load_image
from bag.inference import upsample_attention


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
    assert result.image.shape == (37, 53, 3) and result.image.dtype == np.float32
    assert 0 <= result.image.min() and result.image.max() <= 1 and result.size == (37, 53)
    assert result.to_pil().size == (53, 37) and result.to_pil().mode == "RGB"
    assert result.to_uint8().shape == (37, 53, 3) and result.to_uint8().dtype == np.uint8
    assert len(result.attention) == 4
    for a, full in zip(result.attention, result.attention_at_input_size(), strict=True):
        assert a.shape == (10, 14) and a.dtype == np.float32  # ceil(37/4), ceil(53/4)
        assert full.shape == (37, 53) and full.dtype == np.float32
        assert 0 <= a.min() and a.max() <= 1 and 0 <= full.min() and full.max() <= 1
    assert result.seconds > 0 and result.tiles == 1
    assert not hasattr(result, "input")  # the caller has its input; the result does not echo it


def test_upsampled_attention_keeps_the_network_values():
    """Bilinear x4: each 4x4 block keeps its network value, up to a slight smoothing."""
    rng = np.random.default_rng(0)
    quarter = rng.uniform(0, 1, (6, 9)).astype(np.float32)
    full = upsample_attention(quarter, 24, 36)
    assert full.shape == (24, 36)
    blocks = full.reshape(6, 4, 9, 4).mean(axis=(1, 3))
    # Inside the map, each block's mean is (0.125, 0.75, 0.125) of its value and neighbours'.
    rows = 0.125 * quarter[:-2] + 0.75 * quarter[1:-1] + 0.125 * quarter[2:]
    smoothed = 0.125 * rows[:, :-2] + 0.75 * rows[:, 1:-1] + 0.125 * rows[:, 2:]
    np.testing.assert_allclose(blocks[1:-1, 1:-1], smoothed, atol=1e-6)
    np.testing.assert_allclose(upsample_attention(np.full((3, 3), 0.3), 10, 9), 0.3, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (3, 40), (15, 15)])
def test_tiny_images_are_padded_and_cropped(deblurrer, size):
    result = deblurrer(_photo(*size))
    assert result.image.shape == (*size, 3)
    assert all(a.shape == (-(-size[0] // 4), -(-size[1] // 4)) for a in result.attention)
    assert all(a.shape == size for a in result.attention_at_input_size())


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
        assert result.image.shape == (24, 30, 3)


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
    assert result.size == (44, 20)


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
    tiled = Deblurrer(
        generator, device="cpu", tile=128, overlap=48, precision="float32", max_untiled_pixels=0
    )(image)
    assert tiled.tiles > 4
    assert np.abs(tiled.image - untiled.image).mean() < 1.0 / 255
    for a, b in zip(tiled.attention, untiled.attention, strict=True):
        assert a.shape == b.shape == (75, 105)
        assert np.abs(a - b).mean() < 0.01


def test_an_image_within_the_untiled_budget_takes_one_pass():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig.tiny())
    image = _photo(150, 210, seed=2)  # 31,500 pixels
    untiled = Deblurrer(generator, device="cpu", tile=None, precision="float32")(image)
    options = dict(device="cpu", tile=64, overlap=16, precision="float32")
    within = Deblurrer(generator, max_untiled_pixels=31_500, **options)(image)
    assert within.tiles == 1
    assert np.array_equal(within.image, untiled.image)
    above = Deblurrer(generator, max_untiled_pixels=31_499, **options)(image)
    assert above.tiles > 1


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
    assert deblurrer(_photo(16, 16)).size == (16, 16)
    in_memory = Deblurrer(deblurrer.generator, device="cpu")
    assert in_memory.metadata == {}
    assert Deblurrer(deblurrer.generator, device="cpu", metadata={"a": 1}).metadata == {"a": 1}


def test_reduced_precision_stays_close():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(base_channels=8, growth_rate=8))
    image = _photo(61, 83)
    full = Deblurrer(generator, device="cpu", precision="float32")(image)
    half = Deblurrer(generator, device="cpu", precision="bfloat16")(image)
    assert np.abs(full.image - half.image).mean() < 0.5 / 255
    for a, b in zip(full.attention, half.attention, strict=True):
        assert np.abs(a - b).mean() < 0.01


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_cpu_runs_the_network_channels_last(precision):
    """On CPU the network runs channels-last (faster there) and its weights stay as they are."""
    generator = Generator(GeneratorConfig.tiny())
    seen = []
    generator.encoder.register_forward_hook(
        lambda module, inputs, output: seen.append(
            (output.is_contiguous(), output.is_contiguous(memory_format=torch.channels_last))
        )
    )
    result = Deblurrer(generator, device="cpu", precision=precision)(_photo(40, 52))
    assert result.size == (40, 52)
    assert seen == [(False, True)]
    assert all(p.is_contiguous() for p in generator.parameters())


def test_channels_last_tiles_match_the_untiled_pass():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(base_channels=4, growth_rate=4))
    image = _photo(150, 230, seed=3)
    options = dict(device="cpu", precision="bfloat16")
    untiled = Deblurrer(generator, tile=None, **options)(image)
    tiled = Deblurrer(generator, tile=96, overlap=32, max_untiled_pixels=0, **options)(image)
    assert tiled.tiles > 4
    assert np.abs(tiled.image - untiled.image).mean() < 1.0 / 255


def test_channels_last_fp32_matches_the_plain_forward():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(base_channels=4, growth_rate=4)).eval()
    image = _photo(61, 83, seed=2)
    result = Deblurrer(generator, device="cpu", tile=None, precision="float32")(image)
    with torch.no_grad():
        plain = generator(torch.from_numpy(image).permute(2, 0, 1)[None]).image
    plain = plain[0].permute(1, 2, 0).numpy()
    assert np.abs(result.image - plain).max() <= 0.5 / 255 + 1e-6  # only the 8-bit rounding
