"""Sharp sources and datasets: dead leaves, folders, SyntheticPairs, PairedFolder, GoPro layout,
and train/synthesize.py writing a folder PairedFolder reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bag.data import (
    GoProDataset,
    PairedFolder,
    SyntheticPairs,
    detect_layout,
    open_pairs,
    read_extent,
    read_image,
)
from bag.sources import (
    dead_leaves,
    default_sources,
    folder_images,
    is_held_out,
    skimage_greyscale_photos,
    skimage_photos,
    split_photos,
)
from bag.synthesis import BlurSettings

REPO = Path(__file__).resolve().parents[1]


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def random_rgb(rng: np.random.Generator, height: int = 24, width: int = 32) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- sources


def test_skimage_photos_are_rgb_float_photos():
    photos = skimage_photos()
    assert len(photos) >= 4
    for photo in photos:
        assert photo.dtype == np.float32 and photo.ndim == 3 and photo.shape[-1] == 3
        assert min(photo.shape[:2]) >= 256
        assert 0.0 <= photo.min() and photo.max() <= 1.0
        assert photo.std() > 0.05  # a real picture, not a flat field


def test_dead_leaves_are_seeded_varied_and_have_edges():
    first = dead_leaves((128, 96), np.random.default_rng(3))
    assert first.shape == (128, 96, 3) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert np.array_equal(first, dead_leaves((128, 96), np.random.default_rng(3)))
    assert not np.array_equal(first, dead_leaves((128, 96), np.random.default_rng(4)))
    # Many distinct colours (occluding shapes + textures), strong edges and flat regions.
    colours = np.unique((first * 255).round().astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200
    gradient = np.abs(np.diff(first.mean(axis=-1), axis=1))
    assert (gradient > 0.1).mean() > 0.01  # edges
    assert (gradient < 0.005).mean() > 0.3  # flat insides
    assert dead_leaves(40, np.random.default_rng(0)).shape == (40, 40, 3)


def test_dead_leaves_sizes_follow_a_power_law():
    """Small shapes dominate, large ones still occur: flat patches of many sizes."""
    image = dead_leaves((256, 256), np.random.default_rng(0), texture_probability=0.0)
    quantized = (image * 255).round().astype(np.int32)
    keys = quantized[..., 0] * 65536 + quantized[..., 1] * 256 + quantized[..., 2]
    _, counts = np.unique(keys, return_counts=True)
    assert counts.max() > 2000  # some shape covers a large area
    assert (counts < 100).sum() > 50  # and many small ones exist


def test_folder_images_reads_and_downscales(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "b.png", random_rgb(rng, 40, 80))
    write_png(tmp_path / "a.jpg", random_rgb(rng, 30, 30))
    (tmp_path / "notes.txt").write_text("not an image")
    images = folder_images(tmp_path)
    assert [image.shape for image in images] == [(30, 30, 3), (40, 80, 3)]  # sorted by name
    assert all(image.dtype == np.float32 for image in images)
    assert folder_images(tmp_path, max_side=40)[1].shape == (20, 40, 3)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        folder_images(empty)
    with pytest.raises(ValueError, match="not a folder"):
        folder_images(tmp_path / "missing")


def test_held_out_photos_are_chosen_by_name_alone(tmp_path):
    names = [f"photo-{i:03d}.png" for i in range(200)]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for name in names:
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / folder / name)
    training, held_out = split_photos([tmp_path / "a", tmp_path / "b"], 0.1)
    assert len(training) + len(held_out) == 400 and not set(training) & set(held_out)
    assert 20 <= len(held_out) <= 60  # about a tenth
    # The same photos whatever the order of the folders or what else is given with them.
    _, alone = split_photos([tmp_path / "b"], 0.1)
    assert set(alone) == {path for path in held_out if path.parent.name == "b"}
    _, reordered = split_photos([tmp_path / "b", tmp_path / "a"], 0.1)
    assert set(reordered) == set(held_out)
    # A larger share holds out a superset; 0 holds out nothing.
    assert set(held_out) <= set(split_photos([tmp_path / "a", tmp_path / "b"], 0.3)[1])
    assert split_photos([tmp_path / "a"], 0.0)[1] == []
    with pytest.raises(ValueError, match="held-out share"):
        split_photos([tmp_path / "a"], 1.0)
    assert is_held_out(tmp_path / "a" / names[0], 0.1) == is_held_out(
        Path("elsewhere") / "a" / names[0], 0.1
    )


def test_skimage_greyscale_photos_are_grey_rgb_and_join_the_sources_on_request():
    photos = skimage_greyscale_photos()
    assert len(photos) == 5
    for photo in photos:
        assert photo.shape == (512, 512, 3) and photo.dtype == np.float32
        assert (photo[..., 0] == photo[..., 2]).all() and photo.std() > 0.05
    sources = default_sources(np.random.default_rng(0), 1, 48, greyscale_photos=True)
    assert len(sources) == len(skimage_photos()) + 5 + 1
    photos[0][0, 0] = 2.0  # a copy: the cached originals stay as they were
    assert skimage_greyscale_photos()[0].max() <= 1.0


def test_default_sources_adds_dead_leaves():
    sources = default_sources(np.random.default_rng(0), num_dead_leaves=2, size=48)
    assert len(sources) == len(skimage_photos()) + 2
    assert sources[-1].shape == (48, 48, 3)


def test_read_image_handles_16_bit_and_rgba(tmp_path):
    sixteen = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "gray16.png")
    gray = read_image(tmp_path / "gray16.png")
    assert gray.shape == (24, 32, 3) and gray.dtype == np.float32
    np.testing.assert_allclose(gray[..., 0], sixteen / 65535.0, atol=1e-6)  # not truncated

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_allclose(read_image(tmp_path / "rgba.png")[0, 0], [200 / 255, 0, 0])


# ----------------------------------------------------------------------------- SyntheticPairs


@pytest.fixture(scope="module")
def sources() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [dead_leaves((80, 100), rng), dead_leaves((70, 70), rng), dead_leaves((40, 30), rng)]


SMALL_BLUR = BlurSettings(camera_path_px=(2.0, 12.0), layer_path_px=(2.0, 8.0))


def test_synthetic_pairs_items(sources):
    dataset = SyntheticPairs(sources, crop=48, length=10, seed=1, settings=SMALL_BLUR)
    assert len(dataset) == 10
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"blurred", "sharp", "blur_extent"}
        assert item["blurred"].shape == item["sharp"].shape == (3, 48, 48)
        assert item["blur_extent"].shape == (1, 48, 48)
        for tensor in item.values():
            assert tensor.dtype == torch.float32
        assert 0.0 <= item["blurred"].min() and item["blurred"].max() <= 1.0
        assert item["blur_extent"].min() >= 0.0
    with pytest.raises(IndexError):
        dataset[10]


def test_synthetic_pairs_item_is_a_function_of_seed_and_index(sources):
    dataset = SyntheticPairs(sources, crop=32, length=8, seed=5, settings=SMALL_BLUR)
    forward = [dataset[i] for i in range(8)]
    # Another instance, visited in another order (as another worker or a resumed run would).
    other = SyntheticPairs(sources, crop=32, length=8, seed=5, settings=SMALL_BLUR)
    for index in reversed(range(8)):
        for key, tensor in other[index].items():
            assert torch.equal(tensor, forward[index][key])
    assert not torch.equal(forward[0]["sharp"], forward[1]["sharp"])
    reseeded = SyntheticPairs(sources, crop=32, length=8, seed=6, settings=SMALL_BLUR)
    assert not torch.equal(reseeded[0]["blurred"], forward[0]["blurred"])


def test_synthetic_pairs_without_augment_crops_the_sources(sources):
    """Without augmentation the sharp item is an unaltered crop of one source."""
    dataset = SyntheticPairs(sources[:1], crop=24, length=3, seed=0, augment=False)
    source = torch.from_numpy(sources[0]).permute(2, 0, 1)
    for index in range(3):
        sharp = dataset[index]["sharp"]
        windows = source.unfold(1, 24, 1).unfold(2, 24, 1)  # (3, h', w', 24, 24)
        difference = (windows - sharp[:, None, None]).abs().amax(dim=(0, 3, 4))
        assert difference.min() < 1e-6


def test_reused_pairs_are_dihedral_copies_spread_over_windows(sources):
    """reuse=4: items of a block are 4 distinct flips/rotations of the same rendered pairs, the
    copies of a pair `window` items apart; items stay pure functions of (seed, index)."""
    reused = SyntheticPairs(sources, 32, 24, seed=5, settings=SMALL_BLUR, reuse=4, window=3)
    plain = SyntheticPairs(sources, 32, 24, seed=5, settings=SMALL_BLUR)
    items = [reused[i] for i in range(24)]
    for block in (0, 1):
        for slot in range(3):
            pair = plain[block * 3 + slot]  # the rendered pair behind the copies
            copies = [items[block * 12 + copy * 3 + slot] for copy in range(4)]
            seen = set()
            for copy in copies:
                matches = [
                    (turns, flip)
                    for turns in range(4)
                    for flip in (False, True)
                    if all(
                        torch.equal(
                            copy[key],
                            torch.rot90(pair[key], turns, (1, 2)).flip(2)
                            if flip
                            else torch.rot90(pair[key], turns, (1, 2)),
                        )
                        for key in pair
                    )
                ]
                assert matches, "a copy is not a flip/rotation of its pair"
                seen.add(matches[0])
            assert len(seen) == 4  # four different views of one pair
    # Neighbouring items (one batch) come from different pairs.
    assert not torch.equal(items[0]["sharp"], items[1]["sharp"])
    # Visited backwards by a fresh instance (another worker, a resumed run): the same items.
    other = SyntheticPairs(sources, 32, 24, seed=5, settings=SMALL_BLUR, reuse=4, window=3)
    for index in reversed(range(24)):
        assert all(torch.equal(other[index][k], items[index][k]) for k in items[index])
    with pytest.raises(ValueError, match="reuse"):
        SyntheticPairs(sources, 32, 24, seed=5, reuse=9)


def test_synthetic_pairs_refuses_bad_sources():
    with pytest.raises(ValueError, match="at least one"):
        SyntheticPairs([], crop=32, length=4, seed=0)
    with pytest.raises(ValueError, match="float"):
        SyntheticPairs([np.zeros((40, 40, 3), np.uint8)], crop=32, length=4, seed=0)


# ----------------------------------------------------------------------------- PairedFolder


def make_paired(root: Path, names: list[str], size=(24, 32)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    sharp = {}
    for name in names:
        sharp[name] = random_rgb(rng, *size)
        write_png(root / "sharp" / name, sharp[name])
        write_png(root / "blur" / name, random_rgb(rng, *size))
    return sharp


def test_paired_folder_full_images_and_crops(tmp_path):
    sharp = make_paired(tmp_path, ["b.png", "a.png", "c.png"])
    dataset = PairedFolder(tmp_path)
    assert len(dataset) == 3
    item = dataset[0]
    assert item["name"] == "a.png"
    assert item["blurred"].shape == item["sharp"].shape == (3, 24, 32)
    assert item["blurred"].dtype == torch.float32
    np.testing.assert_allclose(item["sharp"].permute(1, 2, 0).numpy(), sharp["a.png"] / 255.0)
    assert "blur_extent" not in item

    cropped = PairedFolder(tmp_path, crop=16, seed=3)
    first = cropped[1]
    assert first["sharp"].shape == (3, 16, 16)
    # Aligned: the sharp crop sits in the sharp image where the blurred crop sits in the blur.
    full = dataset[1]
    windows = full["sharp"].unfold(1, 16, 1).unfold(2, 16, 1)
    difference = (windows - first["sharp"][:, None, None]).abs().amax(dim=(0, 3, 4))
    top, left = np.unravel_index(int(difference.argmin()), difference.shape)
    assert difference.min() < 1e-6
    assert torch.equal(first["blurred"], full["blurred"][:, top : top + 16, left : left + 16])
    assert torch.equal(cropped[1]["sharp"], first["sharp"])  # deterministic per (seed, index)
    crops = set()
    for epoch in range(6):
        cropped.set_epoch(epoch)
        crops.add(cropped[1]["sharp"].numpy().tobytes())
    assert len(crops) > 1  # fresh crops each epoch

    padded = PairedFolder(tmp_path, crop=40)[0]  # larger than the images: reflect-padded
    assert padded["blurred"].shape == (3, 40, 40)


def test_paired_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        PairedFolder(tmp_path / "missing")
    (tmp_path / "blur").mkdir()
    with pytest.raises(ValueError, match="sharp.*not found"):
        PairedFolder(tmp_path)
    (tmp_path / "sharp").mkdir()
    with pytest.raises(ValueError, match="no images"):
        PairedFolder(tmp_path)

    make_paired(tmp_path, ["a.png", "b.png"])
    write_png(tmp_path / "blur" / "only-blurred.png", random_rgb(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="unmatched.*only-blurred"):
        PairedFolder(tmp_path)
    (tmp_path / "blur" / "only-blurred.png").unlink()

    write_png(tmp_path / "blur" / "a.png", random_rgb(np.random.default_rng(1), 10, 10))
    with pytest.raises(ValueError, match="sizes differ"):
        PairedFolder(tmp_path)[0]


# ----------------------------------------------------------------------------- GoPro layout


def make_gopro(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, sequences in (("train", ["GOPR0001_00", "GOPR0002_00"]), ("test", ["GOPR0003_00"])):
        for sequence in sequences:
            for frame in ("000001.png", "000002.png"):
                for version in ("blur", "blur_gamma", "sharp"):
                    write_png(root / split / sequence / version / frame, random_rgb(rng))


def test_gopro_layout(tmp_path):
    make_gopro(tmp_path)
    train = GoProDataset(tmp_path, split="train")
    assert len(train) == 4
    item = train[2]
    assert item["name"] == "GOPR0002_00/000001.png"
    assert item["blurred"].shape == item["sharp"].shape == (3, 24, 32)
    expected = read_image(tmp_path / "train/GOPR0002_00/blur/000001.png")
    np.testing.assert_array_equal(item["blurred"].permute(1, 2, 0).numpy(), expected)

    gamma = GoProDataset(tmp_path, split="train", blur_version="blur_gamma")[2]
    expected = read_image(tmp_path / "train/GOPR0002_00/blur_gamma/000001.png")
    np.testing.assert_array_equal(gamma["blurred"].permute(1, 2, 0).numpy(), expected)
    assert torch.equal(gamma["sharp"], item["sharp"])
    cropped = GoProDataset(tmp_path, split="train", blur_version="blur_gamma", crop=16)[2]
    assert cropped["blurred"].shape == cropped["sharp"].shape == (3, 16, 16)
    assert len(GoProDataset(tmp_path)) == 2  # test split by default


def test_gopro_errors(tmp_path):
    with pytest.raises(ValueError, match="GoPro layout"):
        GoProDataset(tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        GoProDataset(tmp_path, split="val")
    with pytest.raises(ValueError, match="blur_version"):
        GoProDataset(tmp_path, blur_version="gamma")
    (tmp_path / "test").mkdir()
    with pytest.raises(ValueError, match="no sequence"):
        GoProDataset(tmp_path)
    make_gopro(tmp_path)
    (tmp_path / "test/GOPR0003_00/sharp/000002.png").unlink()
    with pytest.raises(ValueError, match="unmatched.*000002"):
        GoProDataset(tmp_path)
    for frame in (tmp_path / "train/GOPR0001_00/blur_gamma").iterdir():
        frame.unlink()
    (tmp_path / "train/GOPR0001_00/blur_gamma").rmdir()
    with pytest.raises(ValueError, match="blur_gamma.*not found"):
        GoProDataset(tmp_path, split="train", blur_version="blur_gamma")
    assert len(GoProDataset(tmp_path, split="train")) == 4


def test_one_layout_rule_with_gopro_first(tmp_path):
    rng = np.random.default_rng(1)
    paired = tmp_path / "paired"
    for version in ("blur", "sharp"):
        write_png(paired / version / "a.png", random_rgb(rng))
    assert detect_layout(paired, "train") == detect_layout(paired, "test") == "paired"
    assert isinstance(open_pairs(paired, "train"), PairedFolder)
    both = tmp_path / "both"
    make_gopro(both)
    assert detect_layout(both, "train") == "gopro"
    for version in ("blur", "sharp"):  # a paired folder on top of the GoPro root
        write_png(both / version / "a.png", random_rgb(rng))
    assert detect_layout(both, "train") == detect_layout(both, "test") == "gopro"
    assert len(open_pairs(both, "train", blur_version="blur_gamma", crop=16)) == 4
    assert len(open_pairs(both, "test", layout="paired")) == 1  # unless the caller chooses
    (paired / "test" / "no-sequence").mkdir(parents=True)  # a split folder alone is not GoPro
    assert detect_layout(paired, "test") == "paired"
    with pytest.raises(ValueError, match="neither a GoPro root .* nor a paired folder"):
        detect_layout(tmp_path, "test")
    with pytest.raises(ValueError, match="dataset folder not found"):
        detect_layout(tmp_path / "missing")
    with pytest.raises(ValueError, match="layout must be"):
        open_pairs(paired, layout="pairs")


# ----------------------------------------------------------------------------- synthesize.py


def run_synthesize(out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "train" / "synthesize.py"), "--out", str(out)]
    command += ["--count", "3", "--size", "32", "--seed", "4", "--num-dead-leaves", "1", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_synthesize_script_writes_a_paired_folder(tmp_path):
    out = tmp_path / "synthetic"
    result = run_synthesize(out, "--max-layers", "1")
    assert result.returncode == 0, result.stderr
    names = ["0000.png", "0001.png", "0002.png"]
    for folder in ("blur", "sharp", "extent"):
        assert sorted(p.name for p in (out / folder).iterdir()) == names
    settings = json.loads((out / "settings.json").read_text())
    assert settings["count"] == 3 and settings["blur"]["max_layers"] == 1
    assert settings["extent_png_scale"] == 100.0

    dataset = PairedFolder(out)
    assert len(dataset) == 3
    item = dataset[0]
    assert item["blurred"].shape == item["sharp"].shape == (3, 32, 32)
    assert item["blur_extent"].shape == (1, 32, 32)
    extent = read_extent(out / "extent" / "0000.png")
    assert extent.dtype == np.float32 and extent.shape == (32, 32)

    # The same command writes the same files (sample i depends on (seed, i) only) ...
    again = run_synthesize(tmp_path / "again", "--max-layers", "1")
    assert again.returncode == 0, again.stderr
    for folder in ("blur", "sharp", "extent"):
        for name in names:
            assert (out / folder / name).read_bytes() == (
                tmp_path / "again" / folder / name
            ).read_bytes()
    # ... and it refuses to mix into a folder that holds a previous set.
    refused = run_synthesize(out)
    assert refused.returncode != 0
    assert "not empty" in refused.stderr
