"""The Attention tab: A1..A4 of the current photo as heatmaps and overlays on one fixed 0..1
scale, a colour bar, per-map statistics with a word on nearly constant maps, and an optional
per-map contrast stretch. Reads the session Restore filled; draws with explorer.pictures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr
import numpy as np

from bag.attention import MODULE_NAMES, AttentionStats, stretch
from bag.visualize import fit_size, heatmap, resize
from explorer.config import ATTENTION_MAX_SIDE
from explorer.pictures import COLORMAPS, colorbar, overlay
from explorer.state import Session

HELP = """
**A1..A4 are the spatial attention maps of the four blur-attention modules**, from the same
forward pass that produced the restoration. Each value in [0, 1] is a weight the module
multiplies its features with at that place (the model works at 1/4 resolution; maps are
upsampled). All maps share one fixed scale, 0 to 1, so they can be compared with each other
and across images. They are what the model *weights*, not a measured blur map.
"""
EMPTY = "Restore an image to see its attention maps."


def stretch_label(name: str, stats: AttentionStats | None) -> str:
    """The label of a map's contrast-stretch switch, with the range it stretches."""
    if stats is None:
        return f"Stretch {name} to its own range"
    return f"Stretch {name}: {stats.low:.3f}..{stats.high:.3f} -> 0..1"


def stats_table(session: Session, shown: tuple[int, int], stretched: Sequence[bool]) -> str:
    """Markdown: mean, share > 0.5 and range of each map, and a sentence per flat map."""
    rows, notes = [], []
    for name, s, on in zip(MODULE_NAMES, session.stats, stretched, strict=False):
        scale = " (stretched)" if on else ""
        rows.append(
            f"| {name}{scale} | {s.mean:.3f} | {100 * s.share_above_half:.1f} % | "
            f"{s.low:.3f}..{s.high:.3f} |"
        )
        if s.flat:
            notes.append(
                f"**{name} is nearly constant** over this image ({s.low:.3f}..{s.high:.3f}), so "
                "it shows as one flat colour: this module weights every place about alike here."
                + ("" if on else f" Stretch {name} to see the structure inside that range.")
            )
    full_h, full_w = session.size
    height, width = shown
    note = f"Statistics over all {full_w} x {full_h} pixels" + (
        f"; pictures shown at {width} x {height}." if shown != (full_h, full_w) else "."
    )
    header = "| map | mean | share > 0.5 | range (1st..99th percentile) |\n|---|---|---|---|"
    return "\n\n".join([header + "\n" + "\n".join(rows), *notes, note])


@dataclass(frozen=True)
class AttentionView:
    """The tab's pictures (uint8 (h, w, 3)) and texts for one session."""

    heatmaps: list[np.ndarray | None]
    overlays: list[np.ndarray | None]
    bar: np.ndarray
    table: str
    labels: list[str]  # of the four stretch switches


def attention_view(
    session: Session | None,
    colormap: str = "inferno",
    opacity: float = 0.6,
    stretched: Sequence[bool] = (False,) * 4,
) -> AttentionView:
    """Heatmaps and overlays of the session's maps at display size (longest side 1024)."""
    colormap = colormap if colormap in COLORMAPS else "inferno"
    bar = colorbar(colormap)
    labels = [stretch_label(n, None) for n in MODULE_NAMES]
    if session is None:
        return AttentionView([None] * 4, [None] * 4, bar, EMPTY, labels)
    if not session.attention:
        return AttentionView(
            [None] * 4, [None] * 4, bar, "This model has no spatial attention.", labels
        )
    height, width = fit_size(*session.size, ATTENTION_MAX_SIDE)
    image = resize(session.image, height, width)
    maps = []
    for a, s, on in zip(session.attention, session.stats, stretched, strict=False):
        shown = np.clip(resize(a, height, width), 0.0, 1.0)  # (h, w) from (H/4, W/4)
        maps.append(stretch(shown, s.low, s.high) if on else shown)
    return AttentionView(
        [heatmap(a, colormap) for a in maps],
        [overlay(image, a, colormap, opacity) for a in maps],
        bar,
        stats_table(session, (height, width), stretched),
        [stretch_label(n, s) for n, s in zip(MODULE_NAMES, session.stats, strict=False)],
    )


def _map_row(kind: str, label: str) -> list[gr.Image]:
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


@dataclass
class AttentionTab:
    """The Attention tab's components."""

    colormap: gr.Dropdown
    opacity: gr.Slider
    stretch: list[gr.Checkbox]
    bar: gr.Image
    heatmaps: list[gr.Image]
    overlays: list[gr.Image]
    stats: gr.Markdown

    @property
    def controls(self) -> list[gr.components.Component]:
        """Inputs of a redraw after the session: colormap, opacity, the four switches."""
        return [self.colormap, self.opacity, *self.stretch]

    def show(self, view: AttentionView, new_session: bool = False) -> dict:
        """Component updates for a view; a new session also resets the stretch switches."""
        updates = {self.bar: view.bar, self.stats: view.table}
        updates.update(zip(self.heatmaps, view.heatmaps, strict=True))
        updates.update(zip(self.overlays, view.overlays, strict=True))
        if new_session:
            for box, label in zip(self.stretch, view.labels, strict=True):
                updates[box] = gr.Checkbox(value=False, label=label)
        return updates


def build_attention_tab() -> AttentionTab:
    """The tab's components, inside an open gr.Tab."""
    gr.Markdown(HELP)
    with gr.Row():
        colormap = gr.Dropdown(list(COLORMAPS), value="inferno", label="Colormap", scale=1)
        opacity = gr.Slider(0.0, 1.0, value=0.6, step=0.05, label="Overlay opacity", scale=2)
    with gr.Row():
        switches = [
            gr.Checkbox(value=False, label=stretch_label(n, None), elem_id=f"stretch-{n}")
            for n in MODULE_NAMES
        ]
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
    heatmaps = _map_row("heatmap", "{name} heatmap")
    overlays = _map_row("overlay", "{name} over the input")
    stats = gr.Markdown(EMPTY, elem_id="attention-stats")
    return AttentionTab(colormap, opacity, switches, bar, heatmaps, overlays, stats)


def wire_attention_tab(tab: AttentionTab, session: gr.State) -> None:
    """Redraw when the colormap, the opacity or a stretch switch changes."""

    def redraw(current: Session | None, colormap: str, opacity: float, *stretched: bool) -> dict:
        return tab.show(attention_view(current, colormap, opacity, stretched))

    triggers = [tab.colormap.change, tab.opacity.release] + [b.input for b in tab.stretch]
    for trigger in triggers:
        trigger(
            redraw,
            inputs=[session, *tab.controls],
            outputs=[tab.bar, tab.stats, *tab.heatmaps, *tab.overlays],
            api_visibility="private",
        )
