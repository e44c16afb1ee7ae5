"""train/evaluate.py end to end on a tiny random checkpoint and tiny folders of each layout."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image

from bag import Generator, GeneratorConfig, save_generator
from bag.data import write_extent
from bag.imageio import load_image
from bag.metrics import psnr, ssim
from bag.synthesis import BlurSettings, synthesize_blur
from bag.training import TrainConfig
from bag.training_data import training_data, validation_set

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "evaluate.py"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_generator(Generator(GeneratorConfig.tiny()), path, {"purpose": "test"})
    return path


def _write_image(path: Path, seed: int, size=(36, 28), mode="RGB"):
    """A smooth random image (so SSIM is meaningful) saved as PNG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(5, 4, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    if mode == "RGBA":
        small[..., 3] = 255 - rng.integers(0, 60, size=(5, 4), dtype=np.uint8)
    image = Image.fromarray(small, mode=mode).resize(size, Image.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def _report(tmp_path: Path, *args: str) -> dict:
    report_path = tmp_path / "report.json"
    done = _run(*args, "--device", "cpu", "--json", str(report_path))
    assert done.returncode == 0, done.stderr
    assert "mean" in done.stdout
    return json.loads(report_path.read_text())


def _check_common(report: dict, checkpoint: Path, count: int):
    assert report["checkpoint"] == str(checkpoint)
    assert report["generator_config"] == GeneratorConfig.tiny().to_dict()
    assert report["checkpoint_metadata"]["purpose"] == "test"
    assert "data_range=1.0" in report["conventions"]["ssim"]
    assert len(report["images"]) == report["data"]["count"] == count
    for record in report["images"]:
        assert record["psnr_gain"] == pytest.approx(
            record["restored_psnr"] - record["blurred_psnr"]
        )
        assert -1 <= record["restored_ssim"] <= 1
    mean = report["mean"]
    assert mean["blurred_psnr"] == pytest.approx(
        np.mean([r["blurred_psnr"] for r in report["images"]])
    )


def test_paired_layout_with_rgba_and_extent(tmp_path, checkpoint):
    data = tmp_path / "paired"
    _write_image(data / "blur" / "a.png", 1)
    _write_image(data / "sharp" / "a.png", 2)
    _write_image(data / "blur" / "b.png", 3, mode="RGBA")
    _write_image(data / "sharp" / "b.png", 4, mode="RGBA")
    # An extent folder, as train/synthesize.py writes it: left half still, right half 8 px.
    extent = np.zeros((28, 36), dtype=np.float32)
    extent[:, 18:] = 8.0
    (data / "extent").mkdir()
    for name in ("a", "b"):
        write_extent(data / "extent" / f"{name}.png", extent)
    saved = tmp_path / "saved"
    report = _report(
        tmp_path, "--checkpoint", str(checkpoint), "--data", str(data), "--save-images", str(saved)
    )
    _check_common(report, checkpoint, count=2)
    assert report["data"]["kind"] == "paired" and report["data"]["blur_version"] is None
    for record in report["images"]:
        stem = Path(record["name"]).stem
        blurred = load_image(data / "blur" / f"{stem}.png")
        sharp = load_image(data / "sharp" / f"{stem}.png")
        assert record["blurred_psnr"] == pytest.approx(psnr(blurred, sharp), abs=1e-4)
        assert record["blurred_ssim"] == pytest.approx(ssim(blurred, sharp), abs=1e-4)
        offset = float(blurred.mean() - sharp.mean())
        assert record["blurred_mean_offset"] == pytest.approx(offset, abs=1e-6)
        restored = load_image(saved / f"{stem}_restored.png")
        offset = float(restored.mean() - sharp.mean())
        assert record["restored_mean_offset"] == pytest.approx(offset, abs=1e-6)
        assert (record["height"], record["width"]) == (28, 36)
        assert record["blurred_fraction"] == pytest.approx(0.5)
        assert all(0 <= v <= 1 for v in record["attention_auroc"])
    assert report["attention"]["images_with_both_classes"] == 2
    assert sorted(p.name for p in saved.iterdir()) == ["a_restored.png", "b_restored.png"]


def test_gopro_layout_and_blur_version(tmp_path, checkpoint):
    data = tmp_path / "gopro"
    for seq, seed in (("GOPR0001_00_00", 10), ("GOPR0002_00_00", 20)):
        _write_image(data / "test" / seq / "blur" / "000001.png", seed)
        _write_image(data / "test" / seq / "blur_gamma" / "000001.png", seed + 1)
        _write_image(data / "test" / seq / "sharp" / "000001.png", seed + 2)
    _write_image(data / "train" / "GOPR0003_00_00" / "sharp" / "000001.png", 30)
    _write_image(data / "train" / "GOPR0003_00_00" / "blur" / "000001.png", 31)
    report = _report(
        tmp_path,
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(data),
        "--blur-version",
        "blur_gamma",
    )
    _check_common(report, checkpoint, count=2)
    assert report["data"]["kind"] == "gopro"
    assert report["data"]["blur_version"] == "blur_gamma"
    expected = sorted(
        psnr(
            load_image(seq / "blur_gamma" / "000001.png"), load_image(seq / "sharp" / "000001.png")
        )
        for seq in (data / "test").iterdir()
    )
    measured = sorted(r["blurred_psnr"] for r in report["images"])
    assert measured == pytest.approx(expected, abs=1e-4)
    assert [r["name"] for r in report["images"]] == [
        "GOPR0001_00_00/000001.png",
        "GOPR0002_00_00/000001.png",
    ]
    assert report["attention"] is None and "attention_auroc" not in report["images"][0]


def test_synthetic_from_nested_folder(tmp_path, checkpoint):
    sharp_dir = tmp_path / "sharp"
    _write_image(sharp_dir / "set1" / "a.png", 5, size=(48, 40))
    _write_image(sharp_dir / "b.png", 6, size=(40, 48))
    report = _report(
        tmp_path,
        "--checkpoint",
        str(checkpoint),
        "--synthetic-from",
        str(sharp_dir),
        "--seed",
        "3",
        "--count",
        "3",
        "--extent-threshold",
        "2.5",
        "--precision",
        "float32",
        "--save-images",
        str(tmp_path / "saved"),
    )
    _check_common(report, checkpoint, count=3)
    assert report["data"]["kind"] == "synthetic" and report["data"]["seed"] == 3
    assert report["settings"]["precision"] == "float32"
    names = [r["name"] for r in report["images"]]
    assert names == ["b", "set1/a", "b#1"]  # sorted paths, then a second round with new blur
    paths = [sharp_dir / "b.png", sharp_dir / "set1" / "a.png", sharp_dir / "b.png"]
    for index, (record, path) in enumerate(zip(report["images"], paths, strict=True)):
        # Blur seeded from (seed, index): the script's baseline must match a direct synthesis.
        sample = synthesize_blur(load_image(path), np.random.default_rng([3, index]))
        assert record["blurred_psnr"] == pytest.approx(psnr(sample.blurred, sample.sharp), abs=1e-4)
        fraction = float((sample.blur_extent > 2.5).mean())
        assert record["blurred_fraction"] == pytest.approx(fraction)
        assert len(record["attention_auroc"]) == 4
        assert all(v is None or 0 <= v <= 1 for v in record["attention_auroc"])
        assert len(record["attention_mean_blurred"]) == len(record["attention_mean_sharp"]) == 4
    assert report["images"][0]["blurred_psnr"] != report["images"][2]["blurred_psnr"]
    saved = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {"set1__a_blurred.png", "set1__a_sharp.png", "set1__a_restored.png"} <= saved
    assert len(saved) == 9
    attention = report["attention"]
    assert attention["maps"] == ["A1", "A2", "A3", "A4"]
    assert attention["threshold_px"] == 2.5
    assert len(attention["auroc_pooled"]) == len(attention["mean_attention_sharp"]) == 4
    assert 0 <= attention["images_with_both_classes"] <= 3
    bins = report["gain_by_blur_extent"]
    assert sum(row["images"] for row in bins) == 3
    for row in bins:
        low, high = row["extent_px"]
        gains = [r["psnr_gain"] for r in report["images"] if low <= r["blur_extent_mean_px"] < high]
        assert row["worse"] == sum(g < 0 for g in gains)
        if gains:
            assert row["mean_gain"] == pytest.approx(np.mean(gains))
            assert row["worst_gain"] == pytest.approx(min(gains))


def test_calibrated_blur_makes_the_synthetic_set(tmp_path, checkpoint):
    sharp_dir = tmp_path / "sharp"
    _write_image(sharp_dir / "a.png", 7, size=(56, 48))
    args = ["--checkpoint", str(checkpoint), "--synthetic-from", str(sharp_dir), "--seed", "2"]
    report = _report(tmp_path, *args, "--calibrated-blur")
    assert report["data"]["blur_settings"]["camera_path_px"] == [6.0, 28.0]
    sample = synthesize_blur(
        load_image(sharp_dir / "a.png"), np.random.default_rng([2, 0]), BlurSettings.calibrated()
    )
    assert report["images"][0]["blurred_psnr"] == pytest.approx(
        psnr(sample.blurred, sample.sharp), abs=1e-4
    )


def test_a_folder_with_both_layouts_is_gopro_for_evaluation_and_training(tmp_path, checkpoint):
    # One rule (bag.data.detect_layout, GoPro first) for evaluate.py and train.py alike.
    data = tmp_path / "both"
    for split, seq, seed in (("test", "GOPR0001_00_00", 10), ("train", "GOPR0002_00_00", 20)):
        for version, offset in (("blur", 0), ("blur_gamma", 1), ("sharp", 2)):
            _write_image(data / split / seq / version / "000001.png", seed + offset)
    for version, seed in (("blur", 40), ("sharp", 41)):
        _write_image(data / version / "a.png", seed)
        _write_image(data / version / "b.png", seed + 2)
    report = _report(tmp_path, "--checkpoint", str(checkpoint), "--data", str(data))
    assert report["data"]["kind"] == "gopro" and len(report["images"]) == 1
    config = dataclasses.replace(
        TrainConfig.smoke(), data=str(data), val_data=str(data), steps_per_epoch=0, batch_size=1
    )
    assert training_data(config, [], []).recipe["kind"] == "gopro"  # what train.py trains on
    assert validation_set(config, []).recipe["kind"] == "gopro"  # and validates on
    paired = _report(
        tmp_path, "--checkpoint", str(checkpoint), "--data", str(data), "--layout", "paired"
    )
    assert paired["data"]["kind"] == "paired" and len(paired["images"]) == 2


def test_unknown_layout_is_a_clear_error(tmp_path, checkpoint):
    evaluate = load_script("train/evaluate.py")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit, match="is neither a GoPro root .* nor a paired folder"):
        evaluate.main(
            [
                "--checkpoint",
                str(checkpoint),
                "--data",
                str(tmp_path / "nothing"),
                "--device",
                "cpu",
            ]
        )
