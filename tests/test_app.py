"""The Gradio app: builds without launching; served on a free port, its named endpoints answer
through gradio_client with outputs of the right size, count and range; bad inputs give clear
errors and leave the app working; main() honours its options and environment variables."""

from __future__ import annotations

import json

import cv2
import gradio as gr
import httpx
import numpy as np
import pytest
from conftest import APP_MAX_PIXELS, build_test_demo, save_png, smooth_photo
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from bag import Deblurrer
from bag.attention import load_attention
from explorer.model import Model
from explorer.restore import example_table


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory):
    return save_png(tmp_path_factory.mktemp("inputs") / "photo.png", smooth_photo(37, 53))


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_build_demo_builds_without_loading_a_model(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("build_demo must not load a model")

    monkeypatch.setattr(Deblurrer, "from_checkpoint", refuse)
    demo = app.build_demo(
        checkpoint_path=tmp_path / "absent.safetensors",
        snapshots_dir=tmp_path / "no-snapshots",
        metrics_path=tmp_path / "no-metrics.jsonl",
        model_card_path=tmp_path / "no-card.md",
        examples_dir=tmp_path,
    )
    assert isinstance(demo, gr.Blocks)
    public = {
        d["api_name"]
        for d in demo.get_config_file()["dependencies"]
        if d.get("api_visibility", "public") == "public" and d.get("api_name")
    }
    assert {"restore", "evolution", "explain"} <= public


def test_named_endpoints_are_listed(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/restore", "/evolution", "/explain"} <= set(endpoints)


def test_restore_returns_lossless_result_and_attention_of_the_same_pass(
    client, photo_path, app_deblurrer
):
    slider, restored, attention, info, quality = client.predict(
        handle_file(str(photo_path)), None, api_name="/restore"
    )
    blurred_view, restored_view = slider
    assert _pixels(blurred_view).shape == _pixels(restored_view).shape == (37, 53, 3)
    assert np.array_equal(_pixels(blurred_view), _pixels(photo_path))
    assert Image.open(restored).format == "PNG"
    expected = app_deblurrer(photo_path)
    assert np.array_equal(_pixels(restored), expected.to_uint8())  # lossless download
    assert np.array_equal(_pixels(restored_view), _pixels(restored))
    summary = load_attention(attention)
    assert len(summary.maps) == 4 and summary.full_size == (37, 53)
    for saved, direct in zip(summary.maps, expected.attention_at_input_size(), strict=True):
        assert saved.shape == (37, 53) and 0 <= saved.min() and saved.max() <= 1
        assert np.abs(saved - direct).max() < 1e-3  # same forward pass, float16 storage
    assert "53 x 37 px" in info and "CPU" in info and "float32" in info and " s" in info
    assert "PSNR" in quality  # the hint to add a reference


def test_restore_with_a_sharp_reference_reports_psnr_and_ssim(client, photo_path, tmp_path):
    sharp = save_png(tmp_path / "sharp.png", smooth_photo(37, 53, seed=3))
    *_, quality = client.predict(
        handle_file(str(photo_path)), handle_file(str(sharp)), api_name="/restore"
    )
    rows = {line.split("|")[1].strip(): line for line in quality.splitlines() if "|" in line}
    assert {"blurred input", "restored", "change"} <= set(rows)
    psnr_blurred = float(rows["blurred input"].split("|")[2])
    assert 10 < psnr_blurred < 60
    wrong_size = save_png(tmp_path / "small.png", smooth_photo(20, 20))
    *_, quality = client.predict(
        handle_file(str(photo_path)), handle_file(str(wrong_size)), api_name="/restore"
    )
    assert "no PSNR/SSIM" in quality


def test_evolution_runs_every_snapshot_on_a_downscaled_copy(client, tmp_path):
    image = save_png(tmp_path / "wide.png", smooth_photo(60, 100))
    grid, epoch_view, slider, details, note = client.predict(
        handle_file(str(image)), 64, "viridis", api_name="/evolution"
    )
    assert details["epochs"] == [1, 2, 3]
    assert details["size"] == [38, 64] and details["original_size"] == [60, 100]
    for name in ("mean", "share_above_half"):
        values = np.array(details[name])
        assert values.shape == (3, 4) and values.min() >= 0 and values.max() <= 1
    grid_shape, epoch_shape = _pixels(grid).shape, _pixels(epoch_view).shape
    assert grid_shape[0] > epoch_shape[0]  # three rows of epochs against one
    assert slider["value"] == 3 and slider["minimum"] == 1
    assert "3 snapshots" in note and "64 x 38" in note


def test_explain_attributes_the_clicked_patch(client, tmp_path):
    image = save_png(tmp_path / "explain.png", smooth_photo(48, 64))
    *pictures, summary, details = client.predict(
        handle_file(str(image)), 60, 10, 8, 32, 4, "edges", api_name="/explain"
    )
    assert len(pictures) == 4
    for path in pictures:
        assert _pixels(path).shape == (384, 384, 3)  # the 32 px crop, enlarged 12x
    left, top, right, bottom = details["patch"]
    assert (left, top, right, bottom) == (56, 6, 64, 14)  # clamped to the right border
    crop_left, crop_top, crop_right, crop_bottom = details["crop"]
    assert crop_left <= left and right <= crop_right and crop_right - crop_left == 32
    for key in ("ig_diffusion_index", "lam_diffusion_index"):
        assert 0 <= details[key] <= 100
    assert np.isfinite(details["ig_completeness_gap"]) and details["steps"] == 4
    assert "diffusion index" in summary and "edges" in summary


def test_explain_rejects_an_unknown_target(client, photo_path):
    with pytest.raises(AppError, match="target"):
        client.predict(handle_file(str(photo_path)), 5, 5, 8, 32, 4, "colour", api_name="/explain")


def _not_an_image(folder):
    path = folder / "notes.png"
    path.write_text("these are notes, not pixels")
    return path


def _truncated(folder):
    path = save_png(folder / "full.png", smooth_photo(64, 64))
    data = path.read_bytes()
    cut = folder / "truncated.png"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _empty_file(folder):
    path = folder / "empty.png"
    path.write_bytes(b"")
    return path


def _too_large(folder):
    path = folder / "large.png"
    Image.new("RGB", (600, 400), (90, 120, 150)).save(path)  # 240 000 > APP_MAX_PIXELS
    assert 600 * 400 > APP_MAX_PIXELS
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_an_image, "not an image file"),
        (_truncated, "corrupt or truncated"),
        (_empty_file, "not an image file"),
        (_too_large, "megapixels"),
        (lambda folder: None, "Upload a blurred photo first"),
    ],
    ids=["text-file", "truncated-png", "empty-file", "too-large", "no-upload"],
)
def test_bad_input_gives_a_clear_error_and_the_app_keeps_working(
    client, photo_path, tmp_path, make, message
):
    path = make(tmp_path)
    with pytest.raises(AppError, match=message) as error:
        client.predict(handle_file(str(path)) if path else None, None, api_name="/restore")
    assert "/tmp/" not in str(error.value)  # the user's file name, not a server path
    slider, *_ = client.predict(handle_file(str(photo_path)), None, api_name="/restore")
    assert _pixels(slider[1]).shape == (37, 53, 3)


def test_one_pixel_image_is_restored(client, tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 30, 60)).save(path)
    slider, restored, attention, info, _ = client.predict(
        handle_file(str(path)), None, api_name="/restore"
    )
    assert _pixels(restored).shape == (1, 1, 3)
    assert load_attention(attention).maps[0].shape == (1, 1)
    assert "1 x 1 px" in info


def test_sixteen_bit_png_keeps_its_full_range(client, tmp_path):
    ramp = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    colour = np.stack([ramp, ramp[::-1], np.full_like(ramp, 30000)], axis=-1)
    path = tmp_path / "sixteen.png"
    cv2.imwrite(str(path), colour[..., ::-1])  # OpenCV writes BGR
    slider, restored, *_ = client.predict(handle_file(str(path)), None, api_name="/restore")
    expected = np.round(colour / 65535 * 255).astype(np.uint8)
    assert np.abs(_pixels(slider[0]).astype(int) - expected).max() <= 1  # not truncated
    assert _pixels(restored).shape == (40, 48, 3)


def test_rgba_png_is_composited_over_white(client, tmp_path):
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:, 20:, 3] = 255  # right half opaque red, left half fully transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    slider, restored, *_ = client.predict(handle_file(str(path)), None, api_name="/restore")
    shown = _pixels(slider[0])
    assert (shown[:, :20] == 255).all() and (shown[:, 20:] == (255, 0, 0)).all()
    assert _pixels(restored).shape == (30, 40, 3)


def test_main_honours_options_and_environment(app_files, monkeypatch):
    launched = {}

    def fake_launch(self, **kwargs):
        launched.update(kwargs)

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    monkeypatch.setenv("BAG_CHECKPOINT", str(app_files.checkpoint))
    monkeypatch.setenv("BAG_SNAPSHOTS", str(app_files.snapshots))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    app.main(["--device", "cpu"])
    assert launched["server_name"] == "0.0.0.0" and launched["server_port"] == 7999
    app.main(["--device", "cpu", "--host", "127.0.0.1", "--port", "8123"])
    assert launched["server_name"] == "127.0.0.1" and launched["server_port"] == 8123


def test_main_reports_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        app.main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--device", "cpu"])
    assert stop.value.code == 1
    error = capsys.readouterr().err
    assert "missing.safetensors" in error and "Traceback" not in error


def test_about_tab_renders_the_model_card_without_front_matter(app_files, app_deblurrer):
    demo = build_test_demo(app_files, app_deblurrer)
    texts = [
        str(c.get("props", {}).get("value"))
        for c in demo.get_config_file()["components"]
        if c.get("type") == "markdown"
    ]
    about = "\n".join(texts)
    assert "# Test model card" in about and "license: mit" not in about
    assert "arXiv:2008.08526" in about and "M parameters" in about


def test_model_loads_lazily_and_a_bad_checkpoint_is_a_clear_error(app_files, tmp_path):
    lazy = Model(None, app_files.checkpoint, "cpu")
    assert lazy.deblurrer() is lazy.deblurrer()  # loaded once, on first use
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    failing = Model(None, broken, "cpu")
    with pytest.raises(gr.Error, match="could not be loaded"):
        failing.deblurrer()


def test_example_table_pairs_references_and_labels_training_photos(tmp_path):
    for name in ("a", "b"):
        save_png(tmp_path / f"example-{name}.png", smooth_photo(8, 8))
    save_png(tmp_path / "sharp-a.png", smooth_photo(8, 8))
    manifest = {
        "examples": [
            {"blurred": "example-a.png", "training_source": True},
            {"blurred": "example-b.png", "training_source": False},
        ]
    }
    (tmp_path / "examples.json").write_text(json.dumps(manifest))
    rows, note = example_table(tmp_path)
    assert rows == [
        [str(tmp_path / "example-a.png"), str(tmp_path / "sharp-a.png")],
        [str(tmp_path / "example-b.png"), None],
    ]
    assert "a: training photos" in note and "b: not used in training" in note


def test_a_server_path_in_a_raw_payload_is_refused(app_url, tmp_path):
    outside = save_png(tmp_path / "private.png", smooth_photo(20, 20))
    body = {"data": [{"path": str(outside)}, None]}  # no upload, no "meta": skips Gradio's check
    start = httpx.post(f"{app_url}gradio_api/call/restore", json=body, timeout=30)
    event_id = start.json()["event_id"]
    stream = httpx.get(f"{app_url}gradio_api/call/restore/{event_id}", timeout=60).text
    assert "event: error" in stream and "not uploaded to this app" in stream
    assert "event: complete" not in stream  # nothing was restored
