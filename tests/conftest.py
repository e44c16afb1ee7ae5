"""Shared fixtures.

App fixtures (tests/test_app.py, tests/test_browser.py): a tiny random generator checkpoint,
three tiny epoch snapshots, a fake metrics.jsonl and model card, one small example pair, and
the app served on a free local port in a background thread. Nothing here reads the shipped
checkpoints, so the tests pass before (and regardless of) training.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from bag import Deblurrer, Generator, GeneratorConfig, save_generator

REPO = Path(__file__).resolve().parents[1]
APP_MAX_PIXELS = 200_000  # the served app's pixel limit, low so "too large" is cheap to test


@dataclass(frozen=True)
class AppFiles:
    """Paths of the stand-in files the app is built on in tests."""

    checkpoint: Path
    snapshots: Path
    metrics: Path
    model_card: Path
    examples: Path
    examples_cache: Path


def load_script(relative: str) -> ModuleType:
    """A script of the checkout (e.g. "tools/curves.py") imported by its file path, as its stem.

    Scripts are not part of the installed package; loading them by path leaves sys.path alone.
    """
    path = REPO / relative
    loaded = sys.modules.get(path.stem)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses and pickle look a class's module up here
    spec.loader.exec_module(module)
    return module


def smooth_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like float32 RGB (H, W, 3) in [0, 1] with a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(9 * x + 3 * y), np.cos(7 * y), np.sin(5 * x * y + 1)], -1)
    noisy = base * 0.4 + 0.5 + 0.03 * rng.standard_normal((height, width, 3))
    return noisy.clip(0, 1).astype(np.float32)


def save_png(path: Path, image: np.ndarray) -> Path:
    """Write float RGB in [0, 1] as an 8-bit PNG and return the path."""
    Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def app_files(tmp_path_factory: pytest.TempPathFactory) -> AppFiles:
    """Tiny checkpoint, snapshots of epochs 1..3, metrics log, model card and one example."""
    root = tmp_path_factory.mktemp("app")
    snapshots = root / "snapshots"
    snapshots.mkdir()
    for epoch in (1, 2, 3):
        torch.manual_seed(epoch)
        save_generator(
            Generator(GeneratorConfig.tiny()),
            snapshots / f"epoch-{epoch:03d}.safetensors",
            {"epoch": epoch},
        )
    (snapshots / "notes.txt").write_text("not a snapshot")
    torch.manual_seed(0)
    checkpoint = save_generator(
        Generator(GeneratorConfig.tiny()), root / "generator.safetensors", {"epoch": 3}
    )
    metrics = root / "metrics.jsonl"
    lines = [
        {
            "epoch": epoch,
            "step": 500 * epoch,
            "val_psnr": 24.0 + epoch,
            "val_ssim": 0.7 + 0.03 * epoch,
            "val_psnr_blurred": 23.5,
            "val_ssim_blurred": 0.72,
            "lr": 1e-4,
            "seconds": 10.0 * epoch,
        }
        for epoch in (1, 2, 3)
    ]
    metrics.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    model_card = root / "README.md"
    model_card.write_text("---\nlicense: mit\n---\n# Test model card\nTiny random weights.\n")
    examples = root / "assets"
    examples.mkdir()
    sharp = smooth_photo(40, 56, seed=1)
    save_png(examples / "example-test.png", np.clip(sharp * 0.9 + 0.05, 0, 1))
    save_png(examples / "sharp-test.png", sharp)
    return AppFiles(checkpoint, snapshots, metrics, model_card, examples, root / "cache")


@pytest.fixture(scope="session")
def app_deblurrer(app_files: AppFiles) -> Deblurrer:
    """The tiny model the served app runs, on CPU in float32 with a low pixel limit."""
    return Deblurrer.from_checkpoint(
        app_files.checkpoint, device="cpu", precision="float32", max_pixels=APP_MAX_PIXELS
    )


def build_test_demo(app_files: AppFiles, deblurrer: Deblurrer):
    """The app's Blocks on the stand-in files (not launched)."""
    import app

    return app.build_demo(
        deblurrer,
        snapshots_dir=app_files.snapshots,
        metrics_path=app_files.metrics,
        model_card_path=app_files.model_card,
        examples_dir=app_files.examples,
        examples_cache_dir=app_files.examples_cache,
    )


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(demo, app_files: AppFiles, max_size: int | None = None) -> str:
    """Queue `demo` as main() does (one model worker, a limited queue; `max_size` replaces the
    limit) and serve it on a free local port; its URL."""
    import app

    app.configure_queue(demo, **({} if max_size is None else {"max_size": max_size}))
    options = app.launch_options() | {"allowed_paths": [str(app_files.examples)]}
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **options,
    )
    return url


@pytest.fixture(scope="session")
def app_url(app_files: AppFiles, app_deblurrer: Deblurrer):
    """The app served on a free local port for the whole session; yields its URL."""
    demo = build_test_demo(app_files, app_deblurrer)
    yield serve(demo, app_files)
    demo.close()
