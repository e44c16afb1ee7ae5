"""bag.attention, bag.attribution, bag.runs and bag.visualize: attention stats and files,
snapshots, metrics, attribution, and the app's pictures (explorer.pictures)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from bag import Generator, GeneratorConfig, save_generator
from bag.attention import (
    attention_evolution,
    attention_stats,
    load_attention,
    save_attention,
    summarize_attention,
)
from bag.attribution import (
    AttributionSettings,
    Box,
    attribution_map,
    crop_boxes,
    diffusion_index,
    explain_patch,
    gaussian_blur,
    gini,
    patch_objective,
)
from bag.runs import find_snapshots, read_metrics
from bag.visualize import colormap_table, heatmap, shrink, validation_curves
from explorer.pictures import attention_grid, draw_box, overlay, weighted_overlay


def test_attention_stats_mean_and_share_above_half():
    first = np.array([[0.0, 0.25], [0.75, 1.0]], dtype=np.float32)
    second = np.full((3, 5), 0.5, dtype=np.float32)  # exactly 0.5 is not "above"
    stats = attention_stats([first, second])
    assert stats[0].mean == pytest.approx(0.5)
    assert stats[0].share_above_half == pytest.approx(0.5)
    assert stats[1].mean == pytest.approx(0.5)
    assert stats[1].share_above_half == 0.0


def test_attention_summary_round_trip_shrinks_maps_but_keeps_full_size_stats(tmp_path):
    rng = np.random.default_rng(0)
    maps = [rng.random((300, 200)).astype(np.float32) for _ in range(4)]
    summary = summarize_attention(maps, max_side=100)
    assert all(m.shape == (100, 67) for m in summary.maps)
    assert summary.full_size == (300, 200)
    assert summary.stats == attention_stats(maps)  # measured before shrinking
    loaded = load_attention(save_attention(tmp_path / "a.npz", summary))
    assert loaded.full_size == (300, 200)
    assert loaded.stats == summary.stats
    for before, after in zip(summary.maps, loaded.maps, strict=True):
        assert np.abs(before - after).max() < 1e-3  # float16 storage
        assert after.min() >= 0 and after.max() <= 1
    assert loaded.network == ()


def test_attention_file_keeps_the_network_maps_and_reads_files_without_them(tmp_path):
    rng = np.random.default_rng(1)
    network = [rng.random((10, 14)).astype(np.float32) for _ in range(4)]
    full = [rng.random((37, 53)).astype(np.float32) for _ in range(4)]
    summary = summarize_attention(full, max_side=30, network=network)
    loaded = load_attention(save_attention(tmp_path / "a.npz", summary))
    assert len(loaded.network) == 4
    for before, after in zip(network, loaded.network, strict=True):
        assert after.shape == (10, 14) and np.abs(before - after).max() < 1e-3
    with np.load(tmp_path / "a.npz") as data:  # a file of the earlier format
        np.savez(tmp_path / "old.npz", **{k: data[k] for k in data.files if k != "network_maps"})
    old = load_attention(tmp_path / "old.npz")
    assert old.network == () and old.stats == loaded.stats


def test_load_attention_rejects_other_files(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("not numpy")
    with pytest.raises(ValueError, match="not an attention file"):
        load_attention(path)


def test_heatmap_uses_a_fixed_scale_not_the_map_range():
    table = colormap_table("viridis")
    constant = heatmap(np.full((2, 3), 0.2), "viridis")
    assert (constant == table[51]).all()  # 0.2 * 255, not stretched to the top colour
    ramp = heatmap(np.array([[-1.0, 0.0, 1.0, 2.0]]), "viridis")
    assert (ramp[0, 0] == table[0]).all() and (ramp[0, 1] == table[0]).all()
    assert (ramp[0, 2] == table[255]).all() and (ramp[0, 3] == table[255]).all()


def test_overlay_opacity_blends_between_image_and_heatmap():
    image = np.full((4, 4, 3), 0.5, dtype=np.float32)
    values = np.linspace(0, 1, 16).reshape(4, 4)
    assert (overlay(image, values, "magma", 0.0) == 128).all()
    assert (overlay(image, values, "magma", 1.0) == heatmap(values, "magma")).all()


def test_weighted_overlay_leaves_unattributed_pixels_unchanged():
    image = np.full((2, 2, 3), 0.5, dtype=np.float32)
    values = np.array([[0.0, 1.0], [0.25, 1.0]])
    blended = weighted_overlay(image, values, "magma", max_opacity=1.0)
    assert (blended[0, 0] == 128).all()  # no attribution: the image
    assert (blended[0, 1] == heatmap(values, "magma")[0, 1]).all()  # full: the heatmap
    half = overlay(image, values, "magma", 0.5)  # sqrt(0.25) = 0.5
    assert (blended[1, 0] == half[1, 0]).all()


def test_draw_box_outlines_outside_the_box_only():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    boxed = draw_box(image, (5, 6, 10, 12), (255, 0, 0), thickness=1)
    assert (boxed[6:12, 5:10] == 0).all()  # the boxed pixels stay visible
    assert (boxed[5, 4:11] == (255, 0, 0)).all() and (boxed[12, 4:11] == (255, 0, 0)).all()
    assert (image == 0).all()  # the input is not modified


def test_gini_and_diffusion_index_extremes():
    assert gini(np.ones(100)) == pytest.approx(0.0, abs=1e-9)
    one_hot = np.zeros(100)
    one_hot[7] = 1
    assert gini(one_hot) == pytest.approx(0.99, abs=1e-6)
    spread = np.ones((8, 8, 3))
    point = np.zeros((8, 8, 3))
    point[3, 3] = (1.0, -2.0, 0.5)
    assert diffusion_index(spread) == pytest.approx(100.0, abs=1e-6)
    assert diffusion_index(point) < 2.0
    assert attribution_map(point).max() == 1.0 and attribution_map(point)[3, 3] == 1.0


@pytest.mark.parametrize(
    ("point", "size", "patch", "crop"),
    [
        ((50, 40), (100, 120), Box(42, 32, 58, 48), Box(18, 8, 82, 72)),
        ((0, 0), (100, 120), Box(0, 0, 16, 16), Box(0, 0, 64, 64)),
        ((119, 99), (100, 120), Box(104, 84, 120, 100), Box(56, 36, 120, 100)),
        ((10, 5), (20, 30), Box(2, 0, 18, 16), Box(0, 0, 30, 20)),  # image smaller than crop
    ],
)
def test_crop_boxes_centre_and_clamp(point, size, patch, crop):
    assert crop_boxes(point, size, patch_size=16, crop_size=64) == (patch, crop)


def test_gaussian_blur_identity_at_zero_and_keeps_constants():
    x = torch.rand(1, 3, 12, 17)
    assert torch.equal(gaussian_blur(x, 0.0), x)
    constant = torch.full((1, 3, 12, 17), 0.3)
    assert torch.allclose(gaussian_blur(constant, 4.0), constant, atol=1e-6)
    blurred = gaussian_blur(x, 2.0)
    assert blurred.shape == x.shape and blurred.std() < x.std()


def test_patch_objective_edges_is_zero_on_flat_output_and_positive_on_detail():
    patch = Box(2, 2, 6, 6)
    flat = torch.full((1, 3, 8, 8), 0.5)
    detail = torch.rand(1, 3, 8, 8)
    assert patch_objective(flat, patch, "edges").item() == pytest.approx(0.0, abs=1e-2)
    assert patch_objective(detail, patch, "edges").item() > 1.0
    assert patch_objective(flat, patch, "intensity").item() == pytest.approx(0.5 * 3 * 16)


def _linear_model() -> torch.nn.Module:
    """A fixed 3x3 convolution: attribution of a linear model is exactly known."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    conv.requires_grad_(False)
    return conv


def test_attribution_of_a_linear_model_is_complete_and_local():
    model = _linear_model()
    rng = np.random.default_rng(0)
    image = rng.random((60, 70, 3)).astype(np.float32)
    settings = AttributionSettings(patch_size=8, crop_size=40, steps=8, target="intensity")
    result = explain_patch(model, image, (35, 30), settings)
    assert result.patch == Box(31, 26, 39, 34) and result.crop == Box(15, 10, 55, 50)
    # Completeness: both path integrals of a linear objective are exact.
    scale = abs(result.objective_change) + 1.0
    assert result.ig_gap / scale < 1e-4 and result.lam_gap / scale < 1e-4
    # Locality: a 3x3 convolution only sees the patch grown by one pixel.
    inside = result.patch_in_crop
    for attribution in (result.integrated_gradients, result.progressive_blur):
        assert attribution.shape == (40, 40, 3)
        outside = np.ones((40, 40), dtype=bool)
        outside[inside.top - 1 : inside.bottom + 1, inside.left - 1 : inside.right + 1] = False
        assert np.abs(attribution[outside]).max() == 0.0
        assert np.abs(attribution[~outside]).max() > 0.0
    # The gradient of a linear model is constant, so every path between the same two end
    # points (blurred input -> input) gives the same attribution.
    assert np.allclose(result.integrated_gradients, result.progressive_blur, atol=1e-6)


def test_explain_patch_on_a_generator_gives_finite_maps_of_the_crop():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig.tiny()).eval()
    image = np.random.default_rng(1).random((50, 90, 3)).astype(np.float32)
    settings = AttributionSettings(patch_size=8, crop_size=32, steps=4, batch_size=3)
    result = explain_patch(lambda x: generator(x).image, image, (80, 45), settings)
    assert result.crop == Box(58, 18, 90, 50)
    assert result.input_crop.shape == result.restored_crop.shape == (32, 32, 3)
    assert np.array_equal(result.input_crop, image[18:50, 58:90])
    assert 0 <= result.restored_crop.min() and result.restored_crop.max() <= 1
    for attribution in (result.integrated_gradients, result.progressive_blur):
        assert np.isfinite(attribution).all() and np.abs(attribution).sum() > 0
    assert 0 <= result.ig_diffusion_index <= 100 and 0 <= result.lam_diffusion_index <= 100
    # A non-linear model: the straight line and the blur path give different attributions.
    assert not np.allclose(result.integrated_gradients, result.progressive_blur, atol=1e-4)
    assert all(p.grad is None for p in generator.parameters())  # input gradients only


def test_explain_patch_refuses_tiny_images_clearly():
    with pytest.raises(ValueError, match="at least 16x16"):
        explain_patch(_linear_model(), np.zeros((8, 40, 3), np.float32), (2, 2))


def _snapshots(directory, epochs):
    directory.mkdir(exist_ok=True)
    for epoch in epochs:
        torch.manual_seed(epoch)
        save_generator(
            Generator(GeneratorConfig.tiny()),
            directory / f"epoch-{epoch:03d}.safetensors",
            {"epoch": epoch},
        )


def test_find_snapshots_sorts_by_epoch_and_ignores_other_files(tmp_path):
    _snapshots(tmp_path, (10, 2))
    (tmp_path / "epoch-x.safetensors").write_text("")
    (tmp_path / "generator.safetensors").write_text("")
    assert [s.epoch for s in find_snapshots(tmp_path)] == [2, 10]
    assert find_snapshots(tmp_path / "missing") == ()


def test_attention_evolution_runs_every_snapshot_and_skips_broken_ones(tmp_path):
    _snapshots(tmp_path, (1, 2, 3))
    (tmp_path / "epoch-004.safetensors").write_bytes(b"truncated")
    image = np.random.default_rng(0).random((60, 100, 3)).astype(np.float32)
    calls = []
    result = attention_evolution(
        image, find_snapshots(tmp_path), max_side=50, progress=lambda *a: calls.append(a)
    )
    assert result.epochs == (1, 2, 3)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(result.skipped) == 1 and "epoch-004" in result.skipped[0]
    assert result.image.shape == (30, 50, 3) and result.original_size == (60, 100)
    for maps in result.maps:
        assert len(maps) == 4
        assert all(m.shape == (30, 50) and 0 <= m.min() and m.max() <= 1 for m in maps)
    assert not np.allclose(result.maps[0][0], result.maps[1][0])  # different weights
    assert len(result.stats()) == 3


def test_read_metrics_skips_bad_lines_and_keeps_the_last_record_per_epoch(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [
        json.dumps({"epoch": 2, "val_psnr": 25.0}),
        "",
        "{not json",
        json.dumps({"epoch": 1, "val_psnr": 24.0}),
        json.dumps({"epoch": 2, "val_psnr": 26.0}),
        json.dumps({"step": 5}),
        '{"epoch": 3, "val_psnr": 2',  # a partial last line
    ]
    path.write_text("\n".join(lines))
    records = read_metrics(path)
    assert [(r["epoch"], r["val_psnr"]) for r in records] == [(1, 24.0), (2, 26.0)]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_validation_curves_and_attention_grid_draw():
    records = [
        {"epoch": e, "val_psnr": 20 + e, "val_ssim": 0.5, "val_psnr_blurred": 20.0} for e in (1, 2)
    ]
    figure = validation_curves(records, marked_epoch=2)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    maps = [[np.full((20, 30), v) for v in (0.0, 0.3, 0.6, 1.0)] for _ in range(2)]
    one_row = attention_grid(maps[:1], ["epoch 1"])
    two_rows = attention_grid(maps, ["epoch 1", "epoch 2"])
    assert one_row.dtype == np.uint8 and one_row.shape[-1] == 3
    assert two_rows.shape[0] > one_row.shape[0] and two_rows.shape[1] == one_row.shape[1]


def test_shrink_keeps_aspect_and_never_enlarges():
    image = np.random.default_rng(0).random((300, 500, 3)).astype(np.float32)
    assert shrink(image, 100).shape == (60, 100, 3)
    assert shrink(image, 1000).shape == image.shape
    flat = np.full((40, 40), 0.25, np.float32)
    assert np.allclose(shrink(flat, 10), 0.25)
