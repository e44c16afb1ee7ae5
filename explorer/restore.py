"""The Restore tab: upload (or pick an example), restore, compare before/after with a slider,
download the lossless PNG and the attention maps, and PSNR/SSIM against an optional sharp
reference. `restore_photo` fills the session that the other tabs read."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from bag.attention import load_attention, model_resolution, save_attention, summarize_attention
from bag.metrics import psnr, ssim
from bag.visualize import to_uint8
from explorer.config import ATTENTION_MAX_SIDE
from explorer.context import MODEL_EVENTS, Context, gpu
from explorer.files import Files, frame_note, safe_stem
from explorer.model import Model
from explorer.state import Session, fit_budget

NO_REFERENCE = "Add the sharp reference (optional, above) to measure PSNR and SSIM."
EXAMPLE_NOTE = " *(example: computed once, then cached)*"


def example_table(examples_dir: Path) -> tuple[list[list[str | None]], str]:
    """Example rows [blurred, sharp reference or None] from assets/, and a provenance note.

    The note says which photos are also training sources (examples.json, written by
    tools/make_examples.py), so nobody mistakes a training photo for a held-out one.
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


def quality_report(sharp: np.ndarray, name: str, blurred: np.ndarray, restored: np.ndarray) -> str:
    """PSNR/SSIM of input and result (uint8, as downloaded) against `sharp`, as Markdown."""
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


@dataclass(frozen=True)
class Restored:
    """What one restore shows: files for the slider and downloads, texts, and the session."""

    slider: tuple[str, str]  # (blurred PNG, restored PNG)
    restored_file: str
    attention_file: str  # .npz of A1..A4 (see bag.attention.save_attention)
    info: str
    quality: str
    session: Session


def restore_photo(
    model: Model, files: Files, image: Any, reference: Any = None, budget: int = 4_000_000
) -> Restored:
    """Restore an upload (a Gradio file payload); a bad reference is reported, not fatal."""
    deblurrer = model.deblurrer()
    array, source, name = files.decode(image, deblurrer.max_pixels)
    array, note = fit_budget(array, budget)
    notes = [text for text in (frame_note(source, name), note) if text]
    result = deblurrer(array)
    # Statistics and the maps shown are those of the full-size maps (one value a pixel); the
    # file also keeps the network's own maps, which a cached example's session is rebuilt from.
    full = result.attention_at_input_size()
    summary = summarize_attention(full, ATTENTION_MAX_SIDE, network=result.attention)
    session = Session.from_result(array, result, summary.stats, source, name, note)
    folder = files.new_output_dir()
    stem = safe_stem(name)
    blurred_path, restored_path = folder / f"{stem}-input.png", folder / f"{stem}-restored.png"
    Image.fromarray(to_uint8(array)).save(blurred_path, compress_level=3)
    Image.fromarray(session.restored).save(restored_path, compress_level=3)
    attention_path = save_attention(folder / f"{stem}-attention.npz", summary)
    height, width = session.size
    tiles = f" in {result.tiles} tiles" if result.tiles > 1 else ""
    info = (
        f"**{width} x {height} px** restored on **{deblurrer.device.type.upper()}** "
        f"in **{deblurrer.precision}** in **{result.seconds:.2f} s**{tiles}."
    ) + "".join(f"\n\n{text}" for text in notes)
    return Restored(
        (str(blurred_path), str(restored_path)),
        str(restored_path),
        str(attention_path),
        info,
        reference_quality(files, reference, session),
        session,
    )


def reference_quality(files: Files, reference: Any, session: Session) -> str:
    """The PSNR/SSIM table for an optional reference, or why there is none."""
    if files.payload_path(reference) is None:
        return NO_REFERENCE
    try:
        sharp, _, name = files.decode(reference, None, "a sharp reference")
    except gr.Error as error:
        gr.Warning("The sharp reference could not be used; the photo was restored anyway.")
        return f"The sharp reference could not be used ({error.message}): no PSNR/SSIM."
    if session.note:
        return "The photo was downscaled before restoring: no PSNR/SSIM against the reference."
    return quality_report(sharp, name, session.image, session.restored)


def session_from_files(files: Files, image: Any, slider: Any, attention: Any) -> Session | None:
    """The session of a cached example, rebuilt from its files (None when any is missing)."""
    paths = [files.payload_path(p) for p in (image, *(slider or (None, None)), attention)]
    if any(p is None for p in paths):
        return None
    (source, name), (blurred, _), (restored, _), (maps, _) = paths
    summary = load_attention(maps)
    decoded = np.asarray(Image.open(blurred).convert("RGB"), dtype=np.float32) / 255.0
    picture = np.asarray(Image.open(restored).convert("RGB"))
    # Files of an older cache have no network maps: recover them from the shown ones.
    attention = summary.network or model_resolution(summary.maps, summary.full_size)
    return Session(source, name, decoded, picture, attention, summary.stats)


@dataclass
class RestoreTab:
    """The Restore tab's components."""

    input_image: gr.Image
    reference_image: gr.Image
    button: gr.Button
    comparison: gr.ImageSlider
    info: gr.Markdown
    quality: gr.Markdown
    restored_file: gr.File
    attention_file: gr.File
    left_column: gr.Column

    @property
    def outputs(self) -> list[gr.components.Component]:
        """The /restore endpoint's outputs, in its documented order."""
        return [self.comparison, self.restored_file, self.attention_file, self.info, self.quality]

    def show(self, done: Restored | None, example: bool = False) -> dict:
        """Component updates for a result (None: cleared); plain values, as /restore returns
        them and the examples cache stores them."""
        if done is None:
            cleared = dict.fromkeys([self.comparison, self.restored_file, self.attention_file])
            return cleared | {self.info: "", self.quality: ""}
        return {
            self.comparison: done.slider,
            self.restored_file: done.restored_file,
            self.attention_file: done.attention_file,
            self.info: done.info + (EXAMPLE_NOTE if example else ""),
            self.quality: done.quality,
        }


def _image_input(label: str, height: int, elem_id: str) -> gr.Image:
    return gr.Image(
        label=label,
        type="filepath",
        image_mode=None,  # keep 16-bit and RGBA files intact for bag.imageio
        sources=["upload", "clipboard"],
        height=height,
        elem_id=elem_id,
    )


def build_restore_tab() -> RestoreTab:
    """The tab's components (inside an open gr.Tab); examples are added by `add_examples`."""
    with gr.Row(equal_height=False, elem_id="restore-row"):
        with gr.Column(scale=2, min_width=320, elem_id="restore-inputs") as left_column:
            input_image = _image_input("Blurred photo", 340, "input-image")
            with gr.Accordion(
                "Sharp reference (optional, after the photo): PSNR / SSIM", open=False
            ):
                reference_image = _image_input("Sharp reference, same size", 220, "reference-image")
            button = gr.Button("Restore", variant="primary", size="lg", elem_id="restore-button")
        with gr.Column(scale=3, min_width=400, elem_id="restore-results"):
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
    return RestoreTab(
        input_image,
        reference_image,
        button,
        comparison,
        info,
        quality,
        restored_file,
        attention_file,
        left_column,
    )


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


def wire_restore_tab(
    tab: RestoreTab, context: Context, examples_dir: Path, cache_dir: Path, then: dict
) -> None:
    """Restore (and /restore), the examples, and the reset on a new upload. Each of them
    changes the session; `then` (event keyword arguments) redraws the other tabs after it."""
    outputs = [*tab.outputs, context.session]

    def on_restore(image: Any, reference: Any) -> dict:
        done = restore_photo(context.model, context.files, image, reference, context.pixel_budget)
        return tab.show(done) | {context.session: done.session}

    tab.button.click(
        gpu(on_restore),
        inputs=[tab.input_image, tab.reference_image],
        outputs=outputs,
        api_name="restore",
        preprocess=False,
        **MODEL_EVENTS,
    ).then(**then)

    def on_new_upload() -> dict:
        return tab.show(None) | {tab.reference_image: None, context.session: None}

    for trigger in (tab.input_image.upload, tab.input_image.clear):
        trigger(
            on_new_upload, outputs=[tab.reference_image, *outputs], api_visibility="private"
        ).then(**then)

    rows, note = example_table(examples_dir)
    if not rows:
        return

    def on_example(image: Any, reference: Any) -> dict:
        done = restore_photo(context.model, context.files, image, reference, context.pixel_budget)
        return tab.show(done, example=True)

    def adopt(image: Any, slider: Any, attention: Any) -> dict:
        return {context.session: session_from_files(context.files, image, slider, attention)}

    # Examples go under the Restore button. Their outputs are cached (per weights) after the
    # first use; a cached result carries no session, so `adopt` rebuilds it from the files.
    with tab.left_column, gr.Column(elem_id="restore-examples"):
        cache = str(cache_dir / context.model.fingerprint())
        with _environment("GRADIO_EXAMPLES_CACHE", cache):
            examples = gr.Examples(
                examples=rows,
                inputs=[tab.input_image, tab.reference_image],
                outputs=tab.outputs,
                fn=on_example,
                cache_examples=True,
                cache_mode="lazy",
                preprocess=False,
                label=f"Examples: {note}",
                examples_per_page=6,
            )
    examples.cache_event.then(
        adopt,
        inputs=[tab.input_image, tab.comparison, tab.attention_file],
        outputs=[context.session],
        preprocess=False,
        api_visibility="private",
    ).then(**then)
