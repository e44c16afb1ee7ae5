"""The Explain tab: click a point of the restored image; captum attributes the restored patch
around it to the input pixels (bag.attribution computes every number shown here). This module
turns the click into image coordinates, draws the boxes, and formats the result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from bag.attribution import PatchAttribution, attribution_map, crop_boxes
from bag.attribution import explain_patch as attribute_patch
from bag.visualize import fit_size, resize, to_uint8
from explorer.config import EXPLAIN_VIEW_MAX_SIDE
from explorer.context import MODEL_EVENTS, Context, gpu
from explorer.explain_settings import LIMITS, Clock, Request, estimate_text, resolve
from explorer.pictures import draw_box, enlarge, weighted_overlay
from explorer.state import Session

HELP = """
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
PATCH, CROP = (0, 255, 255), (255, 160, 0)  # box colours: cyan patch, orange crop
DEFAULTS = {"patch_size": 16, "crop_size": 128, "steps": 32}  # the sliders' start values


def _view(image: np.ndarray) -> np.ndarray:
    """An 8-bit picture (h, w, 3) of `image` (H, W, 3), longest side EXPLAIN_VIEW_MAX_SIDE."""
    height, width = fit_size(image.shape[0], image.shape[1], EXPLAIN_VIEW_MAX_SIDE)
    if (height, width) == image.shape[:2]:
        return to_uint8(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    return to_uint8(resize(image, height, width))


def views(session: Session | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The clickable restored view and the input view of a session (no boxes yet)."""
    if session is None:
        return None, None
    return _view(session.restored), _view(session.image)


def select_point(
    session: Session | None, index: Any, patch_size: int, crop_size: int
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """A click at `index` (x, y) on the restored view -> image (x, y) and both views boxed."""
    if session is None or not index:
        raise gr.Error("Restore an image first, then click a point on the restored image.")
    restored_view, input_view = views(session)
    full_h, full_w = session.size
    scale = full_w / restored_view.shape[1]
    x = min(full_w - 1, max(0, int(index[0] * scale)))
    y = min(full_h - 1, max(0, int(index[1] * scale)))
    patch, crop = crop_boxes((x, y), (full_h, full_w), int(patch_size), int(crop_size))

    def on_view(box: Any) -> tuple[int, int, int, int]:
        return tuple(int(round(v / scale)) for v in box.as_tuple())

    thickness = max(2, restored_view.shape[1] // 400)
    restored_view = draw_box(restored_view, on_view(patch), PATCH, thickness)
    input_view = draw_box(input_view, on_view(crop), CROP, thickness)
    return x, y, restored_view, draw_box(input_view, on_view(patch), PATCH, thickness)


@dataclass(frozen=True)
class Explanation:
    """What one Explain click shows: four enlarged crops, a summary and the numbers."""

    pictures: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # input, output, IG, LAM
    summary: str
    details: dict


def summary_text(result: PatchAttribution, request: Request) -> str:
    """The Markdown under the maps: where, how, how long, and the two methods' numbers."""
    crop, settings = result.crop, request.settings
    adjusted = "".join(f"\n\n*Adjusted:* {note}." for note in request.notes)
    return (
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
    ) + adjusted


def explanation(result: PatchAttribution, request: Request) -> Explanation:
    """Pictures, summary and numbers of an attribution."""
    settings = request.settings
    box = result.patch_in_crop.as_tuple()
    factor = max(1, 384 // max(result.input_crop.shape[:2]))

    def picture(image: np.ndarray) -> np.ndarray:
        return enlarge(draw_box(to_uint8(image), box, PATCH, 1), factor)

    ig_map = attribution_map(result.integrated_gradients)
    lam_map = attribution_map(result.progressive_blur)
    details = {
        "patch": list(result.patch.as_tuple()),
        "crop": list(result.crop.as_tuple()),
        "target": settings.target,
        "steps": settings.steps,
        "blur_sigma": settings.blur_sigma,
        "ig_diffusion_index": result.ig_diffusion_index,
        "lam_diffusion_index": result.lam_diffusion_index,
        "objective_change": result.objective_change,
        "ig_completeness_gap": result.ig_gap,
        "lam_completeness_gap": result.lam_gap,
        "seconds": result.seconds,
        "adjusted": list(request.notes),
    }
    pictures = (
        picture(result.input_crop),
        picture(result.restored_crop),
        picture(weighted_overlay(result.input_crop, ig_map, "inferno")),
        picture(weighted_overlay(result.input_crop, lam_map, "inferno")),
    )
    return Explanation(pictures, summary_text(result, request), details)


def explain_point(generator: Any, device: Any, image: np.ndarray, request: Request) -> Explanation:
    """Attribute the restored patch at the request's point of `image` (H, W, 3) in [0, 1]."""
    try:
        result = attribute_patch(
            lambda batch: generator(batch).image, image, request.point, request.settings, device
        )
    except ValueError as error:
        raise gr.Error(str(error)) from None
    return explanation(result, request)


def _picture(label: str, elem_id: str | None = None, download: bool = False) -> gr.Image:
    buttons = ["fullscreen", "download"] if download else ["fullscreen"]
    return gr.Image(label=label, format="png", interactive=False, buttons=buttons, elem_id=elem_id)


@dataclass
class ExplainTab:
    """The Explain tab's components."""

    restored_view: gr.Image
    input_view: gr.Image
    x: gr.Number
    y: gr.Number
    target: gr.Radio
    button: gr.Button
    patch_size: gr.Slider
    crop_size: gr.Slider
    steps: gr.Slider
    pictures: list[gr.Image]  # input crop, output crop, IG, LAM
    summary: gr.Markdown
    details: gr.JSON
    estimate: gr.Markdown  # the expected time of a click, before it runs

    @property
    def parameters(self) -> list[gr.components.Component]:
        """The /explain endpoint's inputs after the image, in its documented order."""
        return [self.x, self.y, self.patch_size, self.crop_size, self.steps, self.target]

    @property
    def outputs(self) -> list[gr.components.Component]:
        """The /explain endpoint's outputs, in its documented order."""
        return [*self.pictures, self.summary, self.details]

    def show(self, shown: Explanation | None) -> dict:
        """Component updates for an explanation (None: cleared)."""
        if shown is None:
            updates = dict.fromkeys(self.outputs)
            updates[self.summary] = ""
            return updates
        updates = dict(zip(self.pictures, shown.pictures, strict=True))
        return updates | {self.summary: shown.summary, self.details: shown.details}

    def reset(self, session: Session | None) -> dict:
        """A new session: its views without boxes, and the stale point and maps cleared."""
        restored, original = views(session)
        updates = {self.restored_view: restored, self.input_view: original}
        return updates | {self.x: None, self.y: None} | self.show(None)


def build_explain_tab() -> ExplainTab:
    """The tab's components, inside an open gr.Tab."""
    gr.Markdown(HELP)
    with gr.Row():
        restored_view = _picture("Restored: click a point", "explain-restored")
        input_view = _picture("Input: crop (orange) and patch (cyan)", "explain-input")
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
        button = gr.Button("Explain this point", variant="primary", elem_id="explain-button")
    with gr.Row():
        patch_size, crop_size, steps = (
            gr.Slider(*LIMITS[name], value=DEFAULTS[name], step=step, label=label)
            for name, step, label in (
                ("patch_size", 4, "Patch size (px)"),
                ("crop_size", 16, "Crop size (px)"),
                ("steps", 4, "Path steps (per method)"),
            )
        )
    estimate = gr.Markdown(
        estimate_text(resolve((128, 128), 0, 0, DEFAULTS, "edges", Clock()), Clock())
    )
    with gr.Row():
        pictures = [
            _picture("Input crop"),
            _picture("Output on the crop"),
            _picture("IG, blurred baseline", "ig-map", download=True),
            _picture("LAM, blur path", "lam-map", download=True),
        ]
    summary = gr.Markdown(label="summary")
    with gr.Accordion("Numbers", open=False):
        details = gr.JSON(label="numbers")
    return ExplainTab(
        restored_view,
        input_view,
        x,
        y,
        target,
        button,
        patch_size,
        crop_size,
        steps,
        pictures,
        summary,
        details,
        estimate,
    )


def wire_explain_tab(tab: ExplainTab, context: Context) -> None:
    """A click boxes the point and explains it; the button (and /explain) explains x, y.
    Moving a slider shows the expected time, from a clock that learns from each click."""
    clock = Clock()

    def on_select(
        current: Session | None, patch_size: int, crop_size: int, event: gr.SelectData
    ) -> dict:
        x, y, restored, original = select_point(current, event.index, patch_size, crop_size)
        return {tab.x: x, tab.y: y, tab.restored_view: restored, tab.input_view: original}

    def request(size, x, y, patch_size, crop_size, steps, target) -> Request:
        controls = {"patch_size": patch_size, "crop_size": crop_size, "steps": steps}
        return resolve(size, x, y, controls, target, clock)

    def on_explain(
        image: Any, current: Session | None, x, y, patch_size, crop_size, steps, target
    ) -> dict:
        deblurrer = context.model.deblurrer()
        array, _ = context.image(image, current)
        asked = request(array.shape[:2], x, y, patch_size, crop_size, steps, target)
        shown = explain_point(deblurrer.generator, deblurrer.device, array, asked)
        clock.measured(asked.settings, asked.crop_pixels, shown.details["seconds"])
        return tab.show(shown)

    def on_settings(current: Session | None, patch_size, crop_size, steps) -> str:
        size = current.size if current is not None else (int(crop_size), int(crop_size))
        asked = request(size, 0, 0, patch_size, crop_size, steps, "edges")
        return estimate_text(asked, clock)

    estimate = {
        "fn": on_settings,
        "inputs": [context.session, tab.patch_size, tab.crop_size, tab.steps],
        "outputs": [tab.estimate],
        "api_visibility": "private",
    }
    for slider in (tab.patch_size, tab.crop_size, tab.steps):
        slider.change(**estimate)

    explain = {
        "fn": gpu(on_explain),
        "inputs": [context.input_image, context.session, *tab.parameters],
        "outputs": tab.outputs,
        "preprocess": False,
        **MODEL_EVENTS,
    }
    tab.restored_view.select(
        on_select,
        inputs=[context.session, tab.patch_size, tab.crop_size],
        outputs=[tab.x, tab.y, tab.restored_view, tab.input_view],
        api_visibility="private",
    ).success(**explain, api_name="explain_clicked_point", api_visibility="private").then(
        **estimate
    )
    tab.button.click(**explain, api_name="explain").then(**estimate)
