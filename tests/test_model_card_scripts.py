"""The scripts behind the model card: the validation-curve table and the side-by-side figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import save_png, smooth_photo
from PIL import Image

from bag import Generator, GeneratorConfig, save_generator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

import curves  # noqa: E402
import make_figure  # noqa: E402


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
