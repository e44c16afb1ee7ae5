"""The app's tab functions as plain functions, without a server: Restore fills the session once
(and the other tabs reuse it), the pixel budget, a bad reference, animated files, the attention
words and contrast stretch, click coordinates, bounded Explain settings, the model card."""

from __future__ import annotations

import signal

import gradio as gr
import numpy as np
import pytest
from conftest import save_png, smooth_photo
from PIL import Image

import explorer.files
import explorer.server
from bag.attention import attention_stats
from bag.attribution import AttributionSettings
from explorer.about import model_card
from explorer.attention import attention_view
from explorer.config import QUEUE_MAX_SIZE
from explorer.explain import explain_point, select_point
from explorer.explain_settings import EXPLAIN_BUDGET_S, Clock, resolve
from explorer.files import Files
from explorer.model import Model
from explorer.restore import restore_photo, session_from_files
from explorer.state import Session, current_image


@pytest.fixture
def files(tmp_path):
    return Files(readable_dirs=(tmp_path.resolve(),))


@pytest.fixture
def model(app_deblurrer):
    return Model(app_deblurrer, None, "cpu")


def _payload(path) -> dict:
    return {"path": str(path), "orig_name": path.name}


def test_restore_fills_the_session_and_the_other_tabs_reuse_its_decoded_input(
    model, files, tmp_path, monkeypatch
):
    photo = save_png(tmp_path / "photo.png", smooth_photo(37, 53))
    done = restore_photo(model, files, _payload(photo))
    session = done.session
    assert session.size == (37, 53) and session.restored.shape == (37, 53, 3)
    assert session.restored.dtype == np.uint8 and session.name == "photo.png"
    assert [a.shape for a in session.attention] == [(10, 14)] * 4  # model resolution
    direct = model.deblurrer()(session.image)  # the network's own maps, with no round trip
    assert all(map(np.array_equal, session.attention, direct.attention))
    assert np.array_equal(np.asarray(Image.open(done.restored_file)), session.restored)
    assert "53 x 37 px" in done.info and done.quality.startswith("Add the sharp reference")

    def refuse(*args, **kwargs):
        raise AssertionError("the upload was decoded again")

    monkeypatch.setattr(explorer.files, "load_image", refuse)
    image, note = current_image(files, _payload(photo), session, 10**8, 10**8)
    assert image is session.image and note == ""
    other = save_png(tmp_path / "other.png", smooth_photo(37, 53))
    with pytest.raises(AssertionError, match="decoded again"):
        current_image(files, _payload(other), session, 10**8, 10**8)


def test_a_photo_over_the_pixel_budget_is_downscaled_and_the_app_says_so(model, files, tmp_path):
    photo = save_png(tmp_path / "photo.png", smooth_photo(37, 53))
    done = restore_photo(model, files, _payload(photo), budget=1000)
    height, width = done.session.size
    assert height * width <= 1000 and abs(width / height - 53 / 37) < 0.1
    assert "Downscaled from 53 x 37" in done.info and "bag deblur" in done.info
    assert done.session.note  # the other tabs know the photo was downscaled


def test_a_bad_reference_is_reported_and_the_photo_is_restored_anyway(model, files, tmp_path):
    photo = save_png(tmp_path / "photo.png", smooth_photo(37, 53))
    notes = tmp_path / "sharp.png"
    notes.write_text("not pixels")
    with pytest.warns(UserWarning, match="reference"):
        done = restore_photo(model, files, _payload(photo), _payload(notes))
    assert "sharp reference could not be used" in done.quality
    assert "not an image file" in done.quality and str(tmp_path) not in done.quality
    assert done.session.restored.shape == (37, 53, 3)


def test_an_animated_gif_says_which_frame_was_restored(model, files, tmp_path):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    path = tmp_path / "moving.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    done = restore_photo(model, files, _payload(path))
    assert "animated GIF with 2 frames" in done.info and "first frame" in done.info
    still = save_png(tmp_path / "still.png", smooth_photo(30, 40))
    assert "animated" not in restore_photo(model, files, _payload(still)).info


def test_a_cached_example_rebuilds_the_same_session_from_its_files(model, files, tmp_path):
    photo = save_png(tmp_path / "photo.png", smooth_photo(37, 53))
    done = restore_photo(model, files, _payload(photo))
    folder = files.output_root
    slider = [{"path": p} for p in done.slider]
    rebuilt = session_from_files(
        Files(readable_dirs=(tmp_path.resolve(), folder.resolve())),
        _payload(photo),
        slider,
        {"path": done.attention_file},
    )
    assert np.array_equal(rebuilt.restored, done.session.restored)
    assert np.abs(rebuilt.image - done.session.image).max() <= 0.5 / 255 + 1e-6
    for again, first in zip(rebuilt.attention, done.session.attention, strict=True):
        assert again.shape == first.shape and np.abs(again - first).max() < 1e-3  # float16
    assert session_from_files(files, _payload(photo), None, None) is None


def _session(maps: list[np.ndarray], height: int = 40, width: int = 64) -> Session:
    image = np.full((height, width, 3), 0.5, np.float32)
    full = [np.kron(a, np.ones((4, 4), np.float32))[:height, :width] for a in maps]
    return Session("x", "x.png", image, (image * 255).astype(np.uint8), tuple(maps),
                   attention_stats(full))  # fmt: skip


def test_attention_tab_names_a_nearly_constant_map_and_can_stretch_it():
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (10, 1))
    rng = np.random.default_rng(0)
    nearly_one = (0.98 + 0.01 * rng.random((10, 16))).astype(np.float32)
    view = attention_view(_session([ramp, ramp, ramp, nearly_one]))
    assert "A4 is nearly constant" in view.table and "A1 is nearly constant" not in view.table
    assert view.heatmaps[0].shape == (40, 64, 3)
    assert "0.98" in view.labels[3] and view.labels[3].startswith("Stretch A4")
    flat = view.heatmaps[3].reshape(-1, 3).astype(int)
    stretched = attention_view(_session([ramp] * 3 + [nearly_one]), stretched=(0, 0, 0, 1))
    wide = stretched.heatmaps[3].reshape(-1, 3).astype(int)
    assert np.ptp(wide, axis=0).max() > 4 * max(1, np.ptp(flat, axis=0).max())
    assert np.array_equal(stretched.heatmaps[0], view.heatmaps[0])  # only A4 changed
    assert attention_view(None).table.startswith("Restore an image")


def test_a_click_on_the_shrunk_view_maps_to_image_pixels_and_is_clamped():
    maps = [np.zeros((25, 500), np.float32)] * 4
    session = _session(maps, height=100, width=2000)  # shown 1280 x 64
    x, y, restored, original = select_point(session, (640, 32), 16, 64)
    assert (x, y) == (1000, 50) and restored.shape == original.shape == (64, 1280, 3)
    assert not np.array_equal(restored, np.full_like(restored, 127))  # a box was drawn
    assert select_point(session, (5000, 999), 16, 64)[:2] == (1999, 99)
    with pytest.raises(gr.Error, match="Restore an image first"):
        select_point(None, (1, 1), 16, 64)


def test_explain_settings_are_clamped_with_a_note_and_bounded_in_time():
    controls = {"patch_size": 0, "crop_size": 128, "steps": 8}
    request = resolve((48, 64), 500, -3, controls, "edges", Clock())
    assert request.point == (63, 0) and request.settings.patch_size == 4
    notes = " ".join(request.notes)
    assert "x 500 is outside 0..63: used 63" in notes and "patch size 0" in notes
    assert request.crop == (48, 64)  # the crop cannot exceed the image
    heavy = {"patch_size": 16, "crop_size": 256, "steps": 128}
    clock = Clock()
    bounded = resolve((1000, 1000), 500, 500, heavy, "edges", clock)
    assert clock.expected(bounded.settings, bounded.crop_pixels) <= EXPLAIN_BUDGET_S
    assert bounded.settings.steps < 128 and "to stay under" in " ".join(bounded.notes)
    with pytest.raises(gr.Error, match="target"):
        resolve((48, 64), 1, 1, controls, "colour", clock)
    with pytest.raises(gr.Error, match="Click a point"):
        resolve((48, 64), None, 1, controls, "edges", clock)


def test_the_clock_learns_from_measured_clicks():
    clock = Clock(seconds_per_work=1.0)
    settings = AttributionSettings(steps=9)  # 20 path points
    assert clock.expected(settings, 10**6) == pytest.approx(20.0)
    clock.measured(settings, 10**6, 60.0)  # three times slower than expected
    assert clock.expected(settings, 10**6) == pytest.approx(40.0)


def test_explain_reports_what_it_adjusted(app_deblurrer):
    image = smooth_photo(48, 64)
    controls = {"patch_size": 8, "crop_size": 32, "steps": 4}
    request = resolve((48, 64), 90, 10, controls, "edges", Clock())
    shown = explain_point(app_deblurrer.generator, app_deblurrer.device, image, request)
    assert "*Adjusted:* x 90 is outside 0..63: used 63" in shown.summary
    assert shown.details["adjusted"] == list(request.notes) and len(shown.pictures) == 4


def test_the_model_card_is_shown_under_one_heading(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\n\n# BAG compact: model card\nText.\n")
    text = model_card(card)
    assert text.startswith("# BAG compact: model card") and "## Model card" not in text
    card.write_text("No heading here.\n")
    assert model_card(card).startswith("## Model card\nNo heading")
    assert "No model card found" in model_card(tmp_path / "missing.md")


def test_main_limits_the_queue(app_files, monkeypatch):
    import app

    queued = {}

    def fake_queue(self, **kwargs):
        queued.update(kwargs)
        return self

    handlers = {}
    monkeypatch.setattr(gr.Blocks, "queue", fake_queue)
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: None)
    monkeypatch.setattr(explorer.server.signal, "signal", lambda sig, f: handlers.update({sig: f}))
    app.main(["--checkpoint", str(app_files.checkpoint), "--device", "cpu"])
    assert queued["max_size"] == QUEUE_MAX_SIZE and queued["default_concurrency_limit"] == 1
    closed = []
    monkeypatch.setattr(gr.Blocks, "close", lambda self, **kwargs: closed.append(self))
    handlers[signal.SIGTERM](signal.SIGTERM, None)  # SIGTERM closes the demo main() served
    assert len(closed) == 1
