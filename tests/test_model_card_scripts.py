"""The scripts behind the model card: the validation-curve table, the side-by-side figure, the
blur statistics of real against synthetic pairs and the sizing study's table."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch
from conftest import load_script, save_png, smooth_photo
from PIL import Image

from bag import Generator, GeneratorConfig, save_generator
from bag.blur_statistics import motion_kernel
from bag.sources import dead_leaves

attention_spread = load_script("train/attention_spread.py")
blur_stats = load_script("train/blur_stats.py")
curves = load_script("tools/curves.py")
make_figure = load_script("tools/make_figure.py")
study = load_script("train/study.py")


def test_curve_table_has_a_row_per_epoch_with_the_gain_over_the_blurred_input(tmp_path, capsys):
    records = [
        {"epoch": e, "step": 10 * e, "val_psnr": 20.0 + e, "val_ssim": 0.5, "lr": 1e-4}
        | {"val_psnr_blurred": 21.0, "val_ssim_blurred": 0.6, "seconds": 60.0}
        for e in (1, 2, 3)
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"partial": ')
    curves.main([str(path), "--png", str(tmp_path / "curves.png")])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "epoch" not in line]
    rows = [row for row in rows if "---" not in row]
    assert [row.split("|")[4].strip() for row in rows] == ["+0.00", "+1.00", "+2.00"]
    assert "Total time 3 minutes" in out
    assert Image.open(tmp_path / "curves.png").size[0] > 100


def test_figure_window_is_where_attention_is_highest():
    attention = np.zeros((100, 200), np.float32)
    attention[60:90, 150:190] = 1.0
    top, left, height, width = make_figure.window(attention, 40, center=False)
    assert (height, width) == (40, 40)
    # Origins lie on an 8-pixel grid: the window holds nearly all of the attended region.
    assert attention[top : top + 40, left : left + 40].sum() >= 0.9 * attention.sum()
    assert make_figure.window(attention, 40, center=True) == (30, 80, 40, 40)
    assert make_figure.window(attention, 500, center=False) == (0, 0, 100, 200)


def test_figure_has_a_row_per_image_with_and_without_reference(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_generator(Generator(GeneratorConfig.tiny()), tmp_path / "g.safetensors", {})
    for folder in ("blur", "sharp"):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
        save_png(tmp_path / "pairs" / folder / "a.png", smooth_photo(37, 53))
    photo = save_png(tmp_path / "photo.png", smooth_photo(41, 29, seed=3))
    out = tmp_path / "figure.png"
    make_figure.main(
        [
            *("--checkpoint", str(checkpoint), "--pairs", str(tmp_path / "pairs")),
            *("--photos", str(photo), "--crop", "24", "--out", str(out)),
        ]
    )
    one_row = Image.open(out).size
    make_figure.main(
        [
            *("--checkpoint", str(checkpoint), "--photos", str(photo)),
            *("--crop", "24", "--out", str(tmp_path / "one.png")),
        ]
    )
    assert one_row[1] > 1.6 * Image.open(tmp_path / "one.png").size[1]  # two rows vs one


def test_blur_stats_measures_real_pairs_and_the_training_blur(tmp_path, capsys):
    # A "real" pair blurred by a known 11-pixel straight motion, and sharp photos to blur.
    sharp = dead_leaves((96, 128), np.random.default_rng(0))
    blurred = cv2.filter2D(sharp, -1, motion_kernel(11, 60.0), borderType=cv2.BORDER_REFLECT)
    for folder, image in (("blur", blurred), ("sharp", sharp)):
        (tmp_path / "pairs" / folder).mkdir(parents=True)
        save_png(tmp_path / "pairs" / folder / "a.png", image)
    (tmp_path / "photos").mkdir()
    save_png(tmp_path / "photos" / "p.png", dead_leaves((160, 160), np.random.default_rng(1)))
    common = ["--pairs", str(tmp_path / "pairs"), "--photos", str(tmp_path / "photos")]
    common += ["--count", "3", "--crop", "64"]
    blur_stats.main([*common, "--json", str(tmp_path / "still.json"), "--still-probability", "1"])
    blur_stats.main([*common, "--json", str(tmp_path / "moving.json"), "--calibrated"])
    still = json.loads((tmp_path / "still.json").read_text())
    moving = json.loads((tmp_path / "moving.json").read_text())
    assert still["real"]["length_median_px"] == 11 and still["real"]["patches"] == 12
    assert still["blur_settings"]["still_probability"] == 1
    assert moving["blur_settings"]["camera_path_px"] == [6.0, 28.0]  # the calibrated blur
    # A still camera leaves most patches sharper than a moving one.
    assert still["synthetic"]["length_median_px"] < moving["synthetic"]["length_median_px"]
    assert "gopro" not in capsys.readouterr().out and "pairs/a.png" in still["pairs"]


def test_study_table_reads_each_run_and_its_evaluation(tmp_path, capsys):
    run = tmp_path / "baseline"
    (run / "eval").mkdir(parents=True)
    records = [
        {"epoch": e, "step": 100 * e, "val_psnr": 21.0 + 0.1 * e, "val_psnr_blurred": 21.0}
        | {"seconds": 120.0, "samples_per_second": 9.5}
        for e in (1, 2)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "config.json").write_text(json.dumps({"parameters": {"generator": 961647}}))
    report = {
        "mean": {"psnr_gain": 0.25},
        "images": [{"psnr_gain": 0.5}, {"psnr_gain": -0.125}],
        "attention": {"auroc_per_image_mean": [0.5, 0.5, 0.5, 0.75]},
    }
    (run / "eval" / "epoch-002-heldout.json").write_text(json.dumps(report))
    spread = {"mean_std": [0.0, 0.0, 0.0, 0.0625]}
    (run / "eval" / "epoch-002-attention-real.json").write_text(json.dumps(spread))
    assert study.minutes_trained(run) == 4.0 and study.minutes_trained(tmp_path / "none") == 0
    study.main(["--out", str(tmp_path), "--table-only", "--only", "baseline", "no-critic"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "| baseline" in line]
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[2:7] == ["961,647", "200", "4.0", "9.5", "+0.20"]
    assert cells[7:] == ["+0.25 (-0.12)", "0.750", "", "0.062"]


def test_attention_spread_reports_each_map_of_each_photo(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_generator(Generator(GeneratorConfig.tiny()), tmp_path / "g.safetensors", {})
    (tmp_path / "photos").mkdir()
    save_png(tmp_path / "photos" / "a.png", smooth_photo(41, 57))
    save_png(tmp_path / "photos" / "b.png", smooth_photo(64, 48, seed=2))
    out = tmp_path / "spread.json"
    attention_spread.main(
        ["--checkpoint", str(checkpoint), "--photos", str(tmp_path / "photos"), "--json", str(out)]
    )
    report = json.loads(out.read_text())
    assert sorted(report["images"]) == ["a.png", "b.png"]
    for maps in report["images"].values():
        assert len(maps) == 4
        for values in maps:
            assert 0 <= values["p05"] <= values["mean"] <= values["p95"] <= 1
    flat, ramp = np.full((8, 8), 0.5), np.tile(np.linspace(0, 1, 8), (8, 1))
    assert attention_spread.spread(flat)["std"] == 0 < attention_spread.spread(ramp)["std"]
