"""The page: the header, the five tabs, the one per-session state they share, and the redraw
of the other tabs whenever Restore (or an example, or a new upload) changes that state."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from bag import Deblurrer
from explorer.about import PAPER, build_about_tab
from explorer.attention import attention_view, build_attention_tab, wire_attention_tab
from explorer.config import (
    DEFAULT_EXAMPLES,
    DEFAULT_EXAMPLES_CACHE,
    DEFAULT_METRICS,
    DEFAULT_MODEL_CARD,
    DEFAULT_SNAPSHOTS,
    PIXEL_BUDGET,
    SESSION_TTL_S,
)
from explorer.context import Context
from explorer.evolution import build_evolution_tab, wire_evolution_tab
from explorer.explain import build_explain_tab, wire_explain_tab
from explorer.files import Files
from explorer.model import Model
from explorer.restore import build_restore_tab, wire_restore_tab
from explorer.state import Session

HEADER = f"""
# BAG Explorer: motion deblurring you can look inside
Blur-Attention-GAN ({PAPER}) removes non-uniform motion blur with four spatial
**blur-attention** modules. Upload a blurred photo (or pick an example) and press
**Restore**; then open the other tabs to see *where* the model attends, how that changed
during training, and *which input pixels* produced a patch of the result.
"""


def build_demo(
    deblurrer: Deblurrer | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    snapshots_dir: str | Path = DEFAULT_SNAPSHOTS,
    metrics_path: str | Path = DEFAULT_METRICS,
    model_card_path: str | Path = DEFAULT_MODEL_CARD,
    examples_dir: str | Path = DEFAULT_EXAMPLES,
    examples_cache_dir: str | Path = DEFAULT_EXAMPLES_CACHE,
    device: str = "auto",
    pixel_budget: int = PIXEL_BUDGET,
) -> gr.Blocks:
    """The app as a gr.Blocks, without launching it. With no `deblurrer`, the checkpoint at
    `checkpoint_path` (default: the shipped one) is loaded on the first request.

    Example outputs are cached lazily under `examples_cache_dir`/<hash of the weights>, so
    new weights never show results cached from old ones. Photos over `pixel_budget` pixels
    are downscaled before the model sees them (the app says so).
    """
    model = Model(deblurrer, Path(checkpoint_path) if checkpoint_path else None, device)
    examples_dir, examples_cache_dir = Path(examples_dir), Path(examples_cache_dir)
    files = Files(readable_dirs=(examples_dir.resolve(), examples_cache_dir.resolve()))
    with gr.Blocks(
        title="BAG Explorer", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(HEADER)
        session = gr.State(None, time_to_live=SESSION_TTL_S)
        with gr.Tabs():
            with gr.Tab("Restore", id="restore"):
                restore = build_restore_tab()
            with gr.Tab("Attention", id="attention"):
                attention = build_attention_tab()
            with gr.Tab("Training evolution", id="evolution"):
                evolution = build_evolution_tab(Path(snapshots_dir), Path(metrics_path))
            with gr.Tab("Explain", id="explain"):
                explain = build_explain_tab()
            with gr.Tab("About", id="about"):
                build_about_tab(model, Path(model_card_path))

        def redraw(current: Session | None, colormap: str, opacity: float) -> dict:
            """A new session (or none): every tab that shows it starts over, and the slider
            handle goes back to the middle (it would keep where it was dragged before)."""
            view = attention_view(current, colormap, opacity)
            updates = attention.show(view, new_session=True) | explain.reset(current)
            return updates | evolution.reset() | {restore.comparison: gr.update(slider_position=50)}

        then = {
            "fn": redraw,
            "inputs": [session, attention.colormap, attention.opacity],
            "outputs": [
                restore.comparison,
                *(attention.bar, attention.stats, *attention.heatmaps, *attention.overlays),
                *attention.stretch,
                *(explain.restored_view, explain.input_view, explain.x, explain.y),
                *explain.outputs,
                *(evolution.grid, evolution.epoch_view, evolution.details, evolution.result),
            ],
            "api_visibility": "private",
        }
        context = Context(model, files, session, restore.input_image, pixel_budget)
        wire_restore_tab(restore, context, examples_dir, examples_cache_dir, then)
        wire_attention_tab(attention, session)
        wire_evolution_tab(evolution, context)
        wire_explain_tab(explain, context)
    return demo
