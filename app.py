"""BAG Explorer, the Gradio app: restore a blurred photo, look at the four blur-attention maps,
watch them evolve over training, and ask which input pixels made a patch sharp.

Wiring only: every computation lives in `bag/`. The model is loaded in `main()` (or lazily on
the first request when `build_demo()` is given none), never at import.

    python app.py                      # http://127.0.0.1:7860, shipped checkpoint
    python app.py --checkpoint other.safetensors --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder as gradio_upload_folder
from PIL import Image

from bag import CheckpointError, Deblurrer, count_parameters
from bag.explain import (
    AttentionEvolution,
    AttributionSettings,
    attention_evolution,
    attribution_map,
    crop_boxes,
    explain_patch,
    find_snapshots,
    load_attention,
    read_metrics,
    save_attention,
    summarize_attention,
)
from bag.imageio import load_image
from bag.metrics import psnr, ssim
from bag.visualize import (
    COLORMAPS,
    MODULE_NAMES,
    attention_grid,
    colorbar,
    draw_box,
    enlarge,
    fit_size,
    heatmap,
    overlay,
    shrink,
    to_uint8,
    validation_curves,
    weighted_overlay,
)

try:  # On Hugging Face ZeroGPU Spaces, `spaces.GPU` attaches a GPU for the call.
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(function: Callable) -> Callable:
        """No-op stand-in for `spaces.GPU` when the `spaces` package is absent."""
        return function


ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "generator.safetensors"
DEFAULT_SNAPSHOTS = ROOT / "checkpoints" / "snapshots"
DEFAULT_METRICS = ROOT / "checkpoints" / "metrics.jsonl"
DEFAULT_MODEL_CARD = ROOT / "checkpoints" / "README.md"
DEFAULT_EXAMPLES = ROOT / "assets"

ATTENTION_MAX_SIDE = 1024  # attention pictures are shown at most this large (stats: full size)
EXPLAIN_VIEW_MAX_SIDE = 1280  # the clickable images of the Explain tab
EVOLUTION_MAX_SIDE = 512  # default size the evolution view runs at (keeps it interactive)
GRID_CELL_MAX_SIDE = 256  # cells of the epochs x modules grid
GRID_MAX_ROWS = 12  # more snapshots than this: the grid shows an even subset (slider: all)
OUTPUT_MAX_AGE_S = 3600  # per-request output folders older than this are removed

PAPER = (
    "Li, Yang, Lam, Zhuo and Li, *Blur-Attention: A boosting mechanism for non-uniform "
    "blurred image restoration*, Neurocomputing; "
    "[arXiv:2008.08526](https://arxiv.org/abs/2008.08526)"
)

HEADER = f"""
# BAG Explorer: motion deblurring you can look inside
Blur-Attention-GAN ({PAPER}) removes non-uniform motion blur with four spatial
**blur-attention** modules. Upload a blurred photo (or pick an example) and press
**Restore**; then open the other tabs to see *where* the model attends, how that changed
during training, and *which input pixels* produced a patch of the result.
"""

ATTENTION_HELP = """
**A1..A4 are the spatial attention maps of the four blur-attention modules**, from the same
forward pass that produced the restoration. Each value in [0, 1] is a weight the module
multiplies its features with at that place (the model works at 1/4 resolution; maps are
upsampled). All maps share one fixed scale, 0 to 1, so they can be compared with each other
and across images. They are what the model *weights*, not a measured blur map.
"""

EVOLUTION_HELP = """
The attention maps of **the current input image** as produced by every saved **epoch
snapshot** of the training run, on one shared 0 to 1 scale, next to the validation curves of
that run. To stay interactive on a CPU this view runs on a **downscaled copy** of the image
(longest side set below; 512 px by default), so maps are coarser than in the Attention tab.
"""

EXPLAIN_HELP = """
**Click a point on the restored image.** The app attributes the restored patch around it
back to the input pixels with [captum](https://captum.ai):
**Integrated Gradients** from a Gaussian-blurred copy of the input (the baseline), and the
**progressive-blur path** of LAM (Gu & Dong, CVPR 2021), which integrates gradients while
the input goes from heavily blurred to sharp. The model runs on a **crop** around the patch
(cyan box: patch, orange box: crop), so this explains the model applied to that crop.
The **diffusion index** (LAM: 100 x (1 - Gini of the attribution map)) is high when the
patch draws on many pixels of the crop and low when it uses only a few nearby.

**Attention is not attribution.** The Attention tab shows weights the model computes inside
itself; this tab measures, with gradients, which input pixels *caused* this output patch.
"""

CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#restore-info p {font-size: 0.95rem;}
.map-image img {image-rendering: auto;}
.small-note p {font-size: 0.85rem; opacity: 0.8;}
"""

LIMITS = """
### Limits
- The shipped checkpoint is sized for CPUs (see "Loaded model" above and the model card
  below): smaller than the paper's 11.6 M-parameter network and trained on a small budget,
  so expect less than the paper's 29.4 dB on GoPro. The model card has the measured numbers.
- It removes **motion blur** of the kind it was trained on. It does not fix defocus blur,
  noise, compression artefacts or saturated highlights, and it can leave residual blur on
  very large motions.
- Attention maps are internal weights of the network. They often light up around moving,
  blurred structure, but they are not a calibrated blur detector.
- Attribution is computed on a crop with a fixed number of path steps: the gap between the
  summed attribution and the change of the objective (shown in the Explain tab) tells how
  accurate the integral is.
- Very large photos are restored in overlapping tiles (same result within a small
  tolerance); the pixel limit is shown in the error message when an image is too large.
"""


def launch_options() -> dict[str, Any]:
    """Keyword arguments for `demo.launch` shared by main(), tests and the screenshot script."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="amber"),
        "css": CSS,
        "show_error": True,
        "max_file_size": "64mb",
        "allowed_paths": [str(DEFAULT_EXAMPLES)],
        "footer_links": ["api", "settings"],
    }


def example_table(examples_dir: Path) -> tuple[list[list[str | None]], str]:
    """Example rows [blurred, sharp reference or None] from assets/, and a provenance note.

    The note says which photos are also training sources (examples.json, written by
    train/make_examples.py), so nobody mistakes a training photo for a held-out one.
    """
    manifest_path = examples_dir / "examples.json"
    records = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            records = {r["blurred"]: r for r in manifest.get("examples", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            records = {}
    rows, seen, unseen = [], [], []
    for blurred in sorted(examples_dir.glob("example-*.png")):
        name = blurred.stem.removeprefix("example-")
        sharp = examples_dir / f"sharp-{name}.png"
        rows.append([str(blurred), str(sharp) if sharp.is_file() else None])
        if blurred.name in records:
            (seen if records[blurred.name].get("training_source") else unseen).append(name)
    note = "synthetic motion blur on scikit-image photos, with the sharp original"
    if seen:
        note += f"; {', '.join(seen)}: training photos (new blur)"
    if unseen:
        note += f"; {', '.join(unseen)}: not used in training"
    return rows, note


def _readable(error: Exception, path: str, name: str) -> str:
    """The error text with the server's temporary path replaced by the uploaded file name."""
    return str(error).replace(path, name)


def _strip_front_matter(text: str) -> str:
    """Markdown without a leading YAML front matter block (--- ... ---)."""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4 :].lstrip("\n")
    return text


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration of a block."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


class ExplorerApp:
    """State shared by the event handlers of one demo: the model, paths and output folder."""

    def __init__(
        self,
        deblurrer: Deblurrer | None,
        checkpoint_path: Path | None,
        snapshots_dir: Path,
        metrics_path: Path,
        device: str,
        readable_dirs: tuple[Path, ...] = (),
    ) -> None:
        self._deblurrer = deblurrer
        self._checkpoint_path = checkpoint_path
        self._device = device
        self._lock = threading.Lock()
        self.snapshots_dir = snapshots_dir
        self.metrics_path = metrics_path
        self.output_root = Path(tempfile.mkdtemp(prefix="bag-explorer-"))
        atexit.register(shutil.rmtree, self.output_root, ignore_errors=True)
        # Inputs are read only from Gradio's upload folder and these folders: a request can
        # name any server path in a file payload, and Gradio checks only some payloads.
        self.readable_dirs = (
            Path(gradio_upload_folder()).resolve(),
            self.output_root.resolve(),
            *readable_dirs,
        )

    # Plumbing -------------------------------------------------------------------------------

    def payload_path(self, payload: Any) -> tuple[str, str] | None:
        """(server path, original name) of an un-preprocessed file payload; None if empty.

        Raises gr.Error for a path outside the folders this app reads from.
        """
        if not isinstance(payload, dict) or not payload.get("path"):
            return None
        path = str(payload["path"])
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(folder) for folder in self.readable_dirs):
            raise gr.Error("This file was not uploaded to this app.")
        return path, str(payload.get("orig_name") or resolved.name)

    def slider_paths(self, slider: Any) -> tuple[str, str] | None:
        """(blurred, restored) server paths of an un-preprocessed ImageSlider value, or None."""
        if not isinstance(slider, (list, tuple)) or len(slider) != 2:
            return None
        blurred, restored = (self.payload_path(p) for p in slider)
        if blurred is None or restored is None:
            return None
        return blurred[0], restored[0]

    def deblurrer(self) -> Deblurrer:
        """The model, loaded on first use when none was given."""
        with self._lock:
            if self._deblurrer is None:
                try:
                    self._deblurrer = Deblurrer.from_checkpoint(
                        self._checkpoint_path, device=self._device
                    )
                except CheckpointError as error:
                    raise gr.Error(f"The model could not be loaded: {error}") from None
            return self._deblurrer

    def model_fingerprint(self) -> str:
        """Short hash of the weights (or of the checkpoint file) to key the examples cache."""
        digest = hashlib.sha256()
        if self._deblurrer is not None:
            for name, tensor in self._deblurrer.generator.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        else:
            path = self._checkpoint_path or DEFAULT_CHECKPOINT
            stat = path.stat() if path.is_file() else None
            digest.update(f"{path}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}")
        return digest.hexdigest()[:16]

    def model_description(self) -> str:
        """One paragraph on the loaded model (size, config, training metadata), as Markdown."""
        if self._deblurrer is None:
            path = self._checkpoint_path or DEFAULT_CHECKPOINT
            return f"`{path.name}`, loaded on the first request."
        generator = self._deblurrer.generator
        metadata = getattr(self._deblurrer, "metadata", {}) or {}
        config = ", ".join(f"{k}={v}" for k, v in generator.config.to_dict().items())
        text = f"**{count_parameters(generator) / 1e6:.2f} M parameters** ({config})"
        if "epoch" in metadata:
            text += f", epoch {metadata['epoch']}"
            if "epochs" in metadata:
                text += f" of {metadata['epochs']}"
        if "preset" in metadata:
            text += f", training preset `{metadata['preset']}`"
        if isinstance(metadata.get("val_psnr"), (int, float)):
            text += f"; validation PSNR {metadata['val_psnr']:.2f} dB"
            if isinstance(metadata.get("val_psnr_blurred"), (int, float)):
                text += f" (blurred inputs: {metadata['val_psnr_blurred']:.2f} dB)"
        device = self._deblurrer.device.type.upper()
        return text + f". Running on **{device}** in **{self._deblurrer.precision}**."

    def new_output_dir(self) -> Path:
        """A fresh folder for one request's files; folders older than an hour are removed."""
        now = time.time()
        for old in self.output_root.iterdir():
            if old.is_dir() and now - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.output_root / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def read_input(self, payload: Any, what: str = "a blurred photo") -> tuple[np.ndarray, str]:
        """A file payload as float RGB (H, W, 3) in [0, 1] and its name, or a clear gr.Error."""
        found = self.payload_path(payload)
        if found is None:
            raise gr.Error(f"Upload {what} first (or pick an example).")
        path, name = found
        try:
            return load_image(path, max_pixels=self.deblurrer().max_pixels), name
        except ValueError as error:
            raise gr.Error(_readable(error, path, name)) from None

    # Restore --------------------------------------------------------------------------------

    def restore(self, image: Any, reference: Any = None) -> tuple:
        """Restore an upload: slider pair, restored PNG, attention .npz, info and quality text."""
        found = self.payload_path(image)
        if found is None:
            raise gr.Error("Upload a blurred photo first (or pick an example).")
        path, name = found
        deblurrer = self.deblurrer()
        try:
            result = deblurrer(path)
        except ValueError as error:
            raise gr.Error(_readable(error, path, name)) from None
        folder = self.new_output_dir()
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)[:60]
        stem = stem or "image"
        blurred_path = folder / f"{stem}-input.png"
        restored_path = folder / f"{stem}-restored.png"
        Image.fromarray(to_uint8(result.input)).save(blurred_path, compress_level=3)
        result.image.save(restored_path, compress_level=3)
        summary = summarize_attention(result.attention, ATTENTION_MAX_SIDE)
        attention_path = save_attention(folder / f"{stem}-attention.npz", summary)
        height, width = result.input.shape[:2]
        tiles = f" in {result.tiles} tiles" if result.tiles > 1 else ""
        info = (
            f"**{width} x {height} px** restored on **{deblurrer.device.type.upper()}** "
            f"in **{deblurrer.precision}** in **{result.seconds:.2f} s**{tiles}."
        )
        return (
            (str(blurred_path), str(restored_path)),
            str(restored_path),
            str(attention_path),
            info,
            self.quality(reference, result.input, np.asarray(result.image)),
        )

    def quality(self, reference: Any, blurred: np.ndarray, restored: np.ndarray) -> str:
        """PSNR/SSIM of input and result against an optional sharp reference, as Markdown."""
        if self.payload_path(reference) is None:
            return "Add the sharp reference (optional, above) to measure PSNR and SSIM."
        sharp, name = self.read_input(reference, "a sharp reference")
        if sharp.shape != blurred.shape:
            gr.Warning("The sharp reference must have the same size as the blurred photo.")
            return (
                f"Reference `{name}` is {sharp.shape[1]} x {sharp.shape[0]} px but the photo is "
                f"{blurred.shape[1]} x {blurred.shape[0]} px: no PSNR/SSIM."
            )
        restored = restored.astype(np.float32) / 255.0  # the 8-bit PNG the user downloads
        before = (psnr(blurred, sharp), ssim(blurred, sharp))
        after = (psnr(restored, sharp), ssim(restored, sharp))
        return (
            f"| against `{name}` | PSNR (dB) | SSIM |\n|---|---|---|\n"
            f"| blurred input | {before[0]:.2f} | {before[1]:.4f} |\n"
            f"| restored | {after[0]:.2f} | {after[1]:.4f} |\n"
            f"| change | {after[0] - before[0]:+.2f} | {after[1] - before[1]:+.4f} |"
        )

    def restore_example(self, image: Any, reference: Any = None) -> tuple:
        """`restore` for the examples, whose outputs are cached after first use."""
        slider, restored, attention, info, quality = self.restore(image, reference)
        return (
            slider,
            restored,
            attention,
            info + " *(example: computed once, then cached)*",
            quality,
        )

    # Attention ------------------------------------------------------------------------------

    def show_result(self, slider: Any, attention_file: Any, colormap: str, opacity: float) -> tuple:
        """Attention heatmaps, overlays, colour bar and stats table for a restore result."""
        found = self.payload_path(attention_file)
        paths = self.slider_paths(slider)
        if found is None or paths is None:
            empty = (None,) * 8
            return (*empty, colorbar(colormap), "Restore an image to see its attention maps.")
        summary = load_attention(found[0])
        pictures, bar, table = self.attention_pictures(summary, paths[0], colormap, opacity)
        return (*pictures, bar, table)

    def attention_pictures(
        self, summary: Any, input_path: str, colormap: str, opacity: float
    ) -> tuple[list, np.ndarray, str]:
        """4 heatmaps + 4 overlays (uint8), the colour bar, and the stats table (Markdown)."""
        bar = colorbar(colormap)
        if not summary.maps:
            return [None] * 8, bar, "This model has no spatial attention (SAU off)."
        height, width = summary.maps[0].shape
        image = np.asarray(Image.open(input_path).convert("RGB").resize((width, height)))
        heatmaps = [heatmap(a, colormap) for a in summary.maps]
        overlays = [overlay(image, a, colormap, opacity) for a in summary.maps]
        rows = "\n".join(
            f"| {name} | {s.mean:.3f} | {100 * s.share_above_half:.1f} % |"
            for name, s in zip(MODULE_NAMES, summary.stats, strict=False)
        )
        full_h, full_w = summary.full_size
        note = f"Statistics over all {full_w} x {full_h} pixels" + (
            f"; pictures shown at {width} x {height}."
            if (height, width) != (full_h, full_w)
            else "."
        )
        table = f"| map | mean | share > 0.5 |\n|---|---|---|\n{rows}\n\n{note}"
        return heatmaps + overlays, bar, table

    # Explain tab views ----------------------------------------------------------------------

    def explain_views(self, slider: Any) -> tuple:
        """A new restore result: the Explain tab's clickable restored image and the input
        (shrunk for display, no boxes yet), and the now stale explanations and evolution
        cleared (x, y, 4 pictures, summary, numbers; grid, epoch view, numbers, state)."""
        paths = self.slider_paths(slider)
        views = (None, None) if paths is None else (self._view(paths[1]), self._view(paths[0]))
        return (*views, None, None, None, None, None, None, "", None, None, None, None, None)

    @staticmethod
    def _view(path: str) -> np.ndarray:
        """An 8-bit RGB picture of a saved PNG, shrunk to EXPLAIN_VIEW_MAX_SIDE."""
        picture = Image.open(path).convert("RGB")
        height, width = fit_size(picture.height, picture.width, EXPLAIN_VIEW_MAX_SIDE)
        if (height, width) != (picture.height, picture.width):
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(picture)

    def select_point(
        self, slider: Any, patch_size: int, crop_size: int, event: gr.SelectData
    ) -> tuple:
        """A click on the restored view -> full-resolution (x, y) and both views with boxes."""
        paths = self.slider_paths(slider)
        if paths is None or not event.index:
            raise gr.Error("Restore an image first, then click a point on the restored image.")
        restored_view, input_view = self._view(paths[1]), self._view(paths[0])
        with Image.open(paths[1]) as full:
            full_w, full_h = full.size
        scale = full_w / restored_view.shape[1]
        x = min(full_w - 1, max(0, int(event.index[0] * scale)))
        y = min(full_h - 1, max(0, int(event.index[1] * scale)))
        patch, crop = crop_boxes((x, y), (full_h, full_w), int(patch_size), int(crop_size))

        def on_view(box: Any) -> tuple[int, int, int, int]:
            return tuple(int(round(v / scale)) for v in box.as_tuple())

        thickness = max(2, restored_view.shape[1] // 400)
        restored_view = draw_box(restored_view, on_view(patch), (0, 255, 255), thickness)
        input_view = draw_box(input_view, on_view(crop), (255, 160, 0), thickness)
        input_view = draw_box(input_view, on_view(patch), (0, 255, 255), thickness)
        return x, y, restored_view, input_view

    # Explain (attribution) -------------------------------------------------------------------

    def explain(
        self,
        image: Any,
        x: float,
        y: float,
        patch_size: int = 16,
        crop_size: int = 128,
        steps: int = 32,
        target: str = "edges",
    ) -> tuple:
        """Attribute the restored patch at (x, y): crops with boxes, IG and LAM maps, summary."""
        array, _ = self.read_input(image)
        if x is None or y is None:
            raise gr.Error("Click a point on the restored image (or enter x and y).")
        if target not in ("edges", "intensity"):
            raise gr.Error('target must be "edges" or "intensity".')
        settings = AttributionSettings(
            patch_size=int(np.clip(patch_size, 4, 64)),
            crop_size=int(np.clip(crop_size, 32, 256)),
            steps=int(np.clip(steps, 4, 128)),
            target=target,
        )
        deblurrer = self.deblurrer()
        generator = deblurrer.generator
        try:
            result = explain_patch(
                lambda batch: generator(batch).image,
                array,
                (float(x), float(y)),
                settings,
                device=deblurrer.device,
            )
        except ValueError as error:
            raise gr.Error(str(error)) from None
        box = result.patch_in_crop.as_tuple()
        factor = max(1, 384 // max(result.input_crop.shape[:2]))

        def picture(image: np.ndarray) -> np.ndarray:
            return enlarge(draw_box(to_uint8(image), box, (0, 255, 255), 1), factor)

        ig_map = attribution_map(result.integrated_gradients)
        lam_map = attribution_map(result.progressive_blur)
        crop = result.crop
        summary = (
            f"Patch **{result.patch.right - result.patch.left} px** at "
            f"**({result.patch.left}, {result.patch.top})**, crop "
            f"{crop.right - crop.left} x {crop.bottom - crop.top} px from "
            f"({crop.left}, {crop.top}), target **{settings.target}**, {settings.steps} steps, "
            f"blur sigma {settings.blur_sigma:g} px, **{result.seconds:.1f} s**.\n\n"
            f"| method | diffusion index | completeness gap |\n|---|---|---|\n"
            f"| Integrated Gradients (blurred baseline) | {result.ig_diffusion_index:.1f} | "
            f"{result.ig_gap:.3g} |\n"
            f"| LAM progressive blur | {result.lam_diffusion_index:.1f} | "
            f"{result.lam_gap:.3g} |\n\n"
            f"Objective change from the blurred input to the input: "
            f"{result.objective_change:.4g}. Maps show |attribution| summed over RGB, scaled "
            "to their own maximum; colour and opacity grow with it (the input shows through "
            "where it is 0)."
        )
        details = {
            "patch": list(result.patch.as_tuple()),
            "crop": list(crop.as_tuple()),
            "target": settings.target,
            "steps": settings.steps,
            "blur_sigma": settings.blur_sigma,
            "ig_diffusion_index": result.ig_diffusion_index,
            "lam_diffusion_index": result.lam_diffusion_index,
            "objective_change": result.objective_change,
            "ig_completeness_gap": result.ig_gap,
            "lam_completeness_gap": result.lam_gap,
            "seconds": result.seconds,
        }
        return (
            picture(result.input_crop),
            picture(result.restored_crop),
            picture(weighted_overlay(result.input_crop, ig_map, "inferno")),
            picture(weighted_overlay(result.input_crop, lam_map, "inferno")),
            summary,
            details,
        )

    # Training evolution ----------------------------------------------------------------------

    def evolution(
        self,
        image: Any,
        max_side: int = EVOLUTION_MAX_SIDE,
        colormap: str = "inferno",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio injects a progress bar)
    ) -> tuple:
        """Attention of the current image from every epoch snapshot: grid, last epoch, stats."""
        snapshots = find_snapshots(self.snapshots_dir)
        if not snapshots:
            raise gr.Error(f"No epoch snapshots (epoch-NNN.safetensors) in {self.snapshots_dir}.")
        array, _ = self.read_input(image)
        colormap = colormap if colormap in COLORMAPS else "inferno"

        def report(done: int, total: int) -> None:
            progress(done / total, desc=f"snapshot {done} of {total}")

        result = attention_evolution(
            array,
            snapshots,
            max_side=int(np.clip(max_side, 64, 2048)),
            device=self.deblurrer().device,
            progress=report,
        )
        if not result.epochs:
            raise gr.Error("No snapshot could be used: " + "; ".join(result.skipped))
        rows = np.unique(np.linspace(0, len(result.epochs) - 1, GRID_MAX_ROWS).round().astype(int))
        cells = [[shrink(a, GRID_CELL_MAX_SIDE) for a in result.maps[r]] for r in rows]
        grid = attention_grid(cells, [f"epoch {result.epochs[r]}" for r in rows], colormap)
        small_h, small_w = result.image.shape[:2]
        note = (
            f"Ran {len(result.epochs)} snapshots on a **{small_w} x {small_h}** copy of the "
            f"{result.original_size[1]} x {result.original_size[0]} input in "
            f"**{result.seconds:.1f} s**."
        )
        if len(rows) < len(result.epochs):
            note += f" The grid shows {len(rows)} evenly spaced epochs; the slider has all."
        if result.skipped:
            note += " Skipped: " + "; ".join(result.skipped)
        stats = result.stats()
        details = {
            "epochs": list(result.epochs),
            "size": [small_h, small_w],
            "original_size": list(result.original_size),
            "mean": [[s.mean for s in epoch] for epoch in stats],
            "share_above_half": [[s.share_above_half for s in epoch] for epoch in stats],
            "seconds": result.seconds,
        }
        last = result.epochs[-1]
        slider = gr.Slider(
            minimum=result.epochs[0],
            maximum=max(last, result.epochs[0] + 1),
            value=last,
            step=1,
            interactive=len(result.epochs) > 1,
        )
        return grid, self.epoch_picture(result, last, colormap), slider, details, note, result

    def epoch_picture(self, result: AttentionEvolution, epoch: float, colormap: str) -> np.ndarray:
        """The four maps of the snapshot nearest to `epoch`, in one row with a colour bar."""
        index = int(np.argmin([abs(e - epoch) for e in result.epochs]))
        cells = [[shrink(a, 384) for a in result.maps[index]]]
        return attention_grid(cells, [f"epoch {result.epochs[index]}"], colormap, cell_width=3.2)

    def show_epoch(self, result: AttentionEvolution | None, epoch: float, colormap: str) -> tuple:
        """Slider moved: that epoch's maps and the curves with the epoch marked."""
        records = read_metrics(self.metrics_path)
        if result is None:
            return None, self.curves(records, None)
        index = int(np.argmin([abs(e - epoch) for e in result.epochs]))
        shown = result.epochs[index]
        return self.epoch_picture(result, shown, colormap), self.curves(records, shown)

    @staticmethod
    def curves(records: list[dict], epoch: int | None) -> Any:
        """The validation-curve figure, or None when there is no log."""
        return validation_curves(records, epoch) if records else None


def map_row(kind: str, label: str) -> list[gr.Image]:
    """A row of four lossless image outputs, one per attention map, with ids `{kind}-A1`..."""
    with gr.Row():
        return [
            gr.Image(
                label=label.format(name=name),
                format="png",
                interactive=False,
                elem_id=f"{kind}-{name}",
                elem_classes=["map-image"],
            )
            for name in MODULE_NAMES
        ]


def build_demo(
    deblurrer: Deblurrer | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    snapshots_dir: str | Path = DEFAULT_SNAPSHOTS,
    metrics_path: str | Path = DEFAULT_METRICS,
    model_card_path: str | Path = DEFAULT_MODEL_CARD,
    examples_dir: str | Path = DEFAULT_EXAMPLES,
    examples_cache_dir: str | Path = Path(".gradio", "cached_examples"),
    device: str = "auto",
) -> gr.Blocks:
    """The app as a gr.Blocks, without launching it. With no `deblurrer`, the checkpoint at
    `checkpoint_path` (default: the shipped one) is loaded on the first request.

    Example outputs are cached lazily under `examples_cache_dir`/<hash of the weights>, so
    new weights never show results cached from old ones.
    """
    app = ExplorerApp(
        deblurrer,
        Path(checkpoint_path) if checkpoint_path else None,
        Path(snapshots_dir),
        Path(metrics_path),
        device,
        readable_dirs=(Path(examples_dir).resolve(), Path(examples_cache_dir).resolve()),
    )
    examples, examples_note = example_table(Path(examples_dir))
    records = read_metrics(metrics_path)
    snapshots = find_snapshots(snapshots_dir)
    card_path = Path(model_card_path)
    card = (
        _strip_front_matter(card_path.read_text(encoding="utf-8"))
        if card_path.is_file()
        else f"*No model card found at `{card_path}`.*"
    )
    model_events = {"concurrency_id": "model", "concurrency_limit": 1}

    with gr.Blocks(
        title="BAG Explorer", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(HEADER)
        with gr.Tabs():
            with gr.Tab("Restore", id="restore"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=320) as left_column:
                        input_image = gr.Image(
                            label="Blurred photo",
                            type="filepath",
                            image_mode=None,  # keep 16-bit and RGBA files intact for bag.imageio
                            sources=["upload", "clipboard"],
                            height=340,
                            elem_id="input-image",
                        )
                        with gr.Accordion(
                            "Sharp reference (optional, after the photo): PSNR / SSIM", open=False
                        ):
                            reference_image = gr.Image(
                                label="Sharp reference, same size",
                                type="filepath",
                                image_mode=None,
                                sources=["upload", "clipboard"],
                                height=220,
                                elem_id="reference-image",
                            )
                        restore_button = gr.Button(
                            "Restore", variant="primary", size="lg", elem_id="restore-button"
                        )
                    with gr.Column(scale=3, min_width=400):
                        comparison = gr.ImageSlider(
                            label="Blurred | Restored (drag the handle)",
                            format="png",
                            type="filepath",
                            max_height=560,
                            interactive=False,
                            elem_id="comparison",
                        )
                        info = gr.Markdown(label="info", elem_id="restore-info")
                        quality = gr.Markdown(label="quality", elem_id="restore-quality")
                        with gr.Row():
                            restored_file = gr.File(
                                label="Restored image (lossless PNG)",
                                interactive=False,
                                elem_id="restored-file",
                            )
                            attention_file = gr.File(
                                label="Attention maps A1..A4 (.npz, float16)",
                                interactive=False,
                                elem_id="attention-file",
                            )
                restore_outputs = [comparison, restored_file, attention_file, info, quality]
                # Examples go under the Restore button; they need the outputs, made above.
                with left_column:
                    if examples:
                        with _environment(
                            "GRADIO_EXAMPLES_CACHE",
                            str(Path(examples_cache_dir, app.model_fingerprint())),
                        ):
                            gr.Examples(
                                examples=examples,
                                inputs=[input_image, reference_image],
                                outputs=restore_outputs,
                                fn=app.restore_example,
                                cache_examples=True,
                                cache_mode="lazy",
                                preprocess=False,
                                label=f"Examples: {examples_note}",
                                examples_per_page=6,
                            )

            with gr.Tab("Attention", id="attention"):
                gr.Markdown(ATTENTION_HELP)
                with gr.Row():
                    colormap = gr.Dropdown(
                        list(COLORMAPS), value="inferno", label="Colormap", scale=1
                    )
                    opacity = gr.Slider(
                        0.0, 1.0, value=0.6, step=0.05, label="Overlay opacity", scale=2
                    )
                bar = gr.Image(
                    value=colorbar("inferno"),
                    show_label=False,
                    interactive=False,
                    format="png",
                    height=70,
                    container=False,
                    elem_id="attention-colorbar",
                    buttons=[],
                )
                heatmaps = map_row("heatmap", "{name} heatmap")
                overlays = map_row("overlay", "{name} over the input")
                stats = gr.Markdown("Restore an image to see its attention maps.")

            with gr.Tab("Training evolution", id="evolution"):
                gr.Markdown(EVOLUTION_HELP)
                with gr.Row():
                    evolution_side = gr.Slider(
                        128,
                        1024,
                        value=EVOLUTION_MAX_SIDE,
                        step=32,
                        label="Longest side for this view (px)",
                    )
                    evolution_colormap = gr.Dropdown(
                        list(COLORMAPS), value="inferno", label="Colormap"
                    )
                    evolution_button = gr.Button(
                        f"Compute for the current image ({len(snapshots)} snapshots)",
                        variant="primary",
                        interactive=bool(snapshots),
                        elem_id="evolution-button",
                    )
                evolution_note = gr.Markdown(
                    label="note",
                    value="" if snapshots else f"*No epoch snapshots found in `{snapshots_dir}`.*",
                )
                epoch = gr.Slider(
                    minimum=snapshots[0].epoch if snapshots else 0,
                    maximum=snapshots[-1].epoch if len(snapshots) > 1 else 1,
                    value=snapshots[-1].epoch if snapshots else 0,
                    step=1,
                    label="Epoch (nearest snapshot is shown)",
                    interactive=False,
                )
                epoch_view = gr.Image(
                    label="Attention at the chosen epoch", format="png", interactive=False
                )
                gr.Markdown(
                    f"**Validation curves** of the training run (`{Path(metrics_path).name}`)"
                )
                curves = gr.Plot(value=app.curves(records, None), format="png", show_label=False)
                if not records:
                    gr.Markdown(f"*No validation log found at `{metrics_path}`.*")
                gr.Markdown("**Epochs x modules**, all on the shared 0 to 1 scale")
                grid = gr.Image(
                    label="epochs x modules",
                    show_label=False,
                    format="png",
                    interactive=False,
                    elem_id="evolution-grid",
                )
                with gr.Accordion(
                    "Numbers (mean and share > 0.5 per epoch and module)", open=False
                ):
                    evolution_details = gr.JSON(label="numbers")
                evolution_state = gr.State(None)

            with gr.Tab("Explain", id="explain"):
                gr.Markdown(EXPLAIN_HELP)
                with gr.Row():
                    explain_restored = gr.Image(
                        label="Restored: click a point",
                        interactive=False,
                        format="png",
                        elem_id="explain-restored",
                    )
                    explain_input = gr.Image(
                        label="Input: crop (orange) and patch (cyan)",
                        interactive=False,
                        format="png",
                        elem_id="explain-input",
                    )
                with gr.Row(equal_height=False):
                    x = gr.Number(label="x (px)", precision=0, minimum=0, min_width=100)
                    y = gr.Number(label="y (px)", precision=0, minimum=0, min_width=100)
                    target = gr.Radio(
                        ["edges", "intensity"],
                        value="edges",
                        label="Explained quantity",
                        info="edges: the detail in the patch (as LAM); intensity: its pixel sum",
                        scale=2,
                    )
                    explain_button = gr.Button(
                        "Explain this point", variant="primary", elem_id="explain-button"
                    )
                with gr.Row():
                    patch_size = gr.Slider(4, 64, value=16, step=4, label="Patch size (px)")
                    crop_size = gr.Slider(32, 256, value=128, step=16, label="Crop size (px)")
                    steps = gr.Slider(4, 128, value=32, step=4, label="Path steps (per method)")
                with gr.Row():
                    crop_input = gr.Image(
                        label="Input crop", format="png", interactive=False, buttons=["fullscreen"]
                    )
                    crop_restored = gr.Image(
                        label="Output on the crop",
                        format="png",
                        interactive=False,
                        buttons=["fullscreen"],
                    )
                    ig_view = gr.Image(
                        label="IG, blurred baseline",
                        format="png",
                        interactive=False,
                        buttons=["fullscreen", "download"],
                        elem_id="ig-map",
                    )
                    lam_view = gr.Image(
                        label="LAM, blur path",
                        format="png",
                        interactive=False,
                        buttons=["fullscreen", "download"],
                        elem_id="lam-map",
                    )
                explain_summary = gr.Markdown(label="summary")
                with gr.Accordion("Numbers", open=False):
                    explain_details = gr.JSON(label="numbers")

            with gr.Tab("About", id="about"):
                gr.Markdown(
                    f"## The paper\n{PAPER}.\n\nThis is an independent open implementation "
                    "(no official code exists). Attribution follows Gu & Dong, *Interpreting "
                    "Super-Resolution Networks with Local Attribution Maps*, CVPR 2021, with "
                    "[captum](https://captum.ai) Integrated Gradients.\n\n"
                    f"## Loaded model\n{app.model_description()}\n" + LIMITS
                )
                gr.Markdown("## Model card\n" + card)

        # Wiring -----------------------------------------------------------------------------
        explain_inputs = [input_image, x, y, patch_size, crop_size, steps, target]
        explain_outputs = [
            crop_input,
            crop_restored,
            ig_view,
            lam_view,
            explain_summary,
            explain_details,
        ]
        restore_button.click(
            gpu(app.restore),
            inputs=[input_image, reference_image],
            outputs=restore_outputs,
            api_name="restore",
            preprocess=False,
            **model_events,
        )
        attention_inputs = [comparison, attention_file, colormap, opacity]
        attention_outputs = [*heatmaps, *overlays, bar, stats]
        for trigger in (attention_file.change, colormap.change, opacity.release):
            trigger(
                app.show_result,
                inputs=attention_inputs,
                outputs=attention_outputs,
                preprocess=False,
                api_visibility="private",
            )
        attention_file.change(
            app.explain_views,
            inputs=[comparison],
            outputs=[
                *(explain_restored, explain_input, x, y),
                *explain_outputs,
                *(grid, epoch_view, evolution_details, evolution_state),
            ],
            preprocess=False,
            api_visibility="private",
        )
        # A new upload makes every result (and an example's reference) stale.
        for trigger in (input_image.upload, input_image.clear):
            trigger(
                lambda: (None, None, None, None, "", ""),
                outputs=[reference_image, *restore_outputs],
                api_visibility="private",
            )

        explain_restored.select(
            app.select_point,
            inputs=[comparison, patch_size, crop_size],
            outputs=[x, y, explain_restored, explain_input],
            preprocess=False,
            api_visibility="private",
        ).success(
            gpu(app.explain),
            inputs=explain_inputs,
            outputs=explain_outputs,
            preprocess=False,
            api_name="explain_clicked_point",
            api_visibility="private",
            **model_events,
        )
        explain_button.click(
            gpu(app.explain),
            inputs=explain_inputs,
            outputs=explain_outputs,
            api_name="explain",
            preprocess=False,
            **model_events,
        )

        evolution_button.click(
            gpu(app.evolution),
            inputs=[input_image, evolution_side, evolution_colormap],
            outputs=[grid, epoch_view, epoch, evolution_details, evolution_note, evolution_state],
            api_name="evolution",
            preprocess=False,
            **model_events,
        )
        for trigger in (epoch.change, evolution_colormap.change):
            trigger(
                app.show_epoch,
                inputs=[evolution_state, epoch, evolution_colormap],
                outputs=[epoch_view, curves],
                api_visibility="private",
                trigger_mode="always_last",
            )
    return demo


def main(argv: list[str] | None = None) -> None:
    """Serve the app: load the checkpoint, build the demo, launch it."""
    parser = argparse.ArgumentParser(description="Serve the BAG Explorer Gradio app.")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=os.environ.get("BAG_CHECKPOINT") or DEFAULT_CHECKPOINT,
        help="generator checkpoint (env BAG_CHECKPOINT; default: the shipped one)",
    )
    parser.add_argument(
        "--snapshots",
        type=Path,
        default=os.environ.get("BAG_SNAPSHOTS") or DEFAULT_SNAPSHOTS,
        help="folder of epoch-NNN.safetensors snapshots (env BAG_SNAPSHOTS)",
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        default=os.environ.get("BAG_METRICS") or DEFAULT_METRICS,
        help="training log metrics.jsonl (env BAG_METRICS)",
    )
    parser.add_argument(
        "--device",
        default=os.environ.get("BAG_DEVICE", "auto"),
        help="auto (CUDA when present), cpu or cuda (env BAG_DEVICE)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (env GRADIO_SERVER_NAME); 0.0.0.0 for all interfaces",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (env GRADIO_SERVER_PORT)",
    )
    args = parser.parse_args(argv)
    try:
        deblurrer = Deblurrer.from_checkpoint(args.checkpoint, device=args.device)
    except CheckpointError as error:
        parser.exit(1, f"error: {error}\n")
    demo = build_demo(
        deblurrer,
        checkpoint_path=args.checkpoint,
        snapshots_dir=args.snapshots,
        metrics_path=args.metrics,
    )
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, **launch_options()
    )


if __name__ == "__main__":
    main()
