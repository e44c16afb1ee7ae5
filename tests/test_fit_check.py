"""train/fit_check.py: both generators trained from the same start on the same pairs."""

from __future__ import annotations

import json

import numpy as np
from conftest import load_script
from PIL import Image

fit_check = load_script("train/fit_check.py")


def test_fit_check_reports_both_curves(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = (rng.random((41, 57, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(photos / f"p{index}.png")
    report_path = tmp_path / "fit.json"
    fit_check.main(
        ["--photos", str(photos), "--tiny", "--steps", "3", "--every", "2", "--pairs", "6"]
        + ["--unseen", "3", "--crop", "20", "--json", str(report_path)]
    )
    report = json.loads(report_path.read_text())
    assert report["photos"] == 2 and "--steps 3" in report["command"]
    curves = report["curves"]
    assert list(curves) == ["decoder_norm=True", "decoder_norm=False"]
    for curve in curves.values():
        assert [point["step"] for point in curve] == [2, 3]  # every 2 steps and the last
        assert all(np.isfinite(point["gain_unseen"]) for point in curve)
    assert curves["decoder_norm=True"] != curves["decoder_norm=False"]
