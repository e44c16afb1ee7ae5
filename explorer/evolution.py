"""The Training evolution tab: the attention maps of the current photo under every epoch
snapshot of the run (computed by bag.attention.attention_evolution on a downscaled copy), an
epoch slider, the epochs x modules grid, and the validation curves of metrics.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from bag.attention import AttentionEvolution, attention_evolution
from bag.runs import find_snapshots, read_metrics
from bag.visualize import shrink, validation_curves
from explorer.config import EVOLUTION_MAX_SIDE, GRID_CELL_MAX_SIDE, GRID_MAX_ROWS
from explorer.context import MODEL_EVENTS, Context, gpu
from explorer.pictures import COLORMAPS, attention_grid
from explorer.state import Session

HELP = """
The attention maps of **the current input image** as produced by every saved **epoch
snapshot** of the training run, on one shared 0 to 1 scale, next to the validation curves of
that run. To stay interactive on a CPU this view runs on a **downscaled copy** of the image
(longest side set below; 512 px by default), so maps are coarser than in the Attention tab.
"""


def epoch_picture(result: AttentionEvolution, epoch: float, colormap: str) -> np.ndarray:
    """The four maps of the snapshot nearest to `epoch`, in one row with a colour bar."""
    index = result.nearest(epoch)
    cells = [[shrink(a, 384) for a in result.maps[index]]]
    return attention_grid(cells, [f"epoch {result.epochs[index]}"], colormap, cell_width=3.2)


def curves(records: list[dict], epoch: int | None) -> Any:
    """The validation-curve figure, or None when there is no log."""
    return validation_curves(records, epoch) if records else None


@dataclass(frozen=True)
class EvolutionView:
    """What one evolution run shows."""

    grid: np.ndarray  # uint8 (H, W, 3): epochs x modules
    epoch_view: np.ndarray  # the last epoch's four maps
    note: str
    details: dict


def evolution_view(result: AttentionEvolution, colormap: str) -> EvolutionView:
    """Grid (at most GRID_MAX_ROWS evenly spaced epochs), last epoch, note and numbers."""
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
    return EvolutionView(grid, epoch_picture(result, result.epochs[-1], colormap), note, details)


@dataclass
class EvolutionTab:
    """The Training evolution tab's components."""

    side: gr.Slider
    colormap: gr.Dropdown
    button: gr.Button
    note: gr.Markdown
    epoch: gr.Slider
    epoch_view: gr.Image
    curves: gr.Plot
    grid: gr.Image
    details: gr.JSON
    result: gr.State  # this tab's own: the last AttentionEvolution, for the epoch slider
    snapshots_dir: Path
    records: list[dict]  # metrics.jsonl, read once when the page is built

    def reset(self) -> dict:
        """A new photo: the maps of the previous one are cleared."""
        return dict.fromkeys([self.grid, self.epoch_view, self.details, self.result])


def build_evolution_tab(snapshots_dir: Path, metrics_path: Path) -> EvolutionTab:
    """The tab's components, inside an open gr.Tab."""
    snapshots = find_snapshots(snapshots_dir)
    gr.Markdown(HELP)
    with gr.Row():
        side = gr.Slider(
            128, 1024, value=EVOLUTION_MAX_SIDE, step=32, label="Longest side for this view (px)"
        )
        colormap = gr.Dropdown(list(COLORMAPS), value="inferno", label="Colormap")
        button = gr.Button(
            f"Compute for the current image ({len(snapshots)} snapshots)",
            variant="primary",
            interactive=bool(snapshots),
            elem_id="evolution-button",
        )
    note = gr.Markdown(
        label="note", value="" if snapshots else f"*No epoch snapshots found in `{snapshots_dir}`.*"
    )
    epoch = gr.Slider(
        minimum=snapshots[0].epoch if snapshots else 0,
        maximum=snapshots[-1].epoch if len(snapshots) > 1 else 1,
        value=snapshots[-1].epoch if snapshots else 0,
        step=1,
        label="Epoch (nearest snapshot is shown)",
        interactive=False,
    )
    epoch_view = gr.Image(label="Attention at the chosen epoch", format="png", interactive=False)
    gr.Markdown(f"**Validation curves** of the training run (`{metrics_path.name}`)")
    records = read_metrics(metrics_path)
    plot = gr.Plot(value=curves(records, None), format="png", show_label=False)
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
    with gr.Accordion("Numbers (mean and share > 0.5 per epoch and module)", open=False):
        details = gr.JSON(label="numbers")
    result = gr.State(None)
    return EvolutionTab(
        side,
        colormap,
        button,
        note,
        epoch,
        epoch_view,
        plot,
        grid,
        details,
        result,
        snapshots_dir,
        records,
    )


def wire_evolution_tab(tab: EvolutionTab, context: Context) -> None:
    """The button (and /evolution) runs every snapshot; the slider picks one epoch."""

    def on_compute(
        image: Any,
        current: Session | None,
        max_side: int,
        colormap: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio injects a progress bar)
    ) -> dict:
        snapshots = find_snapshots(tab.snapshots_dir)
        if not snapshots:
            raise gr.Error(f"No epoch snapshots (epoch-NNN.safetensors) in {tab.snapshots_dir}.")
        array, _ = context.image(image, current)
        colormap = colormap if colormap in COLORMAPS else "inferno"

        def report(done: int, total: int) -> None:
            progress(done / total, desc=f"snapshot {done} of {total}")

        result = attention_evolution(
            array,
            snapshots,
            max_side=int(np.clip(max_side, 64, 2048)),
            device=context.model.deblurrer().device,
            progress=report,
        )
        if not result.epochs:
            raise gr.Error("No snapshot could be used: " + "; ".join(result.skipped))
        shown = evolution_view(result, colormap)
        first, last = result.epochs[0], result.epochs[-1]
        slider = gr.Slider(
            minimum=first, maximum=max(last, first + 1), value=last, step=1,
            interactive=len(result.epochs) > 1,
        )  # fmt: skip
        return {
            tab.grid: shown.grid,
            tab.epoch_view: shown.epoch_view,
            tab.epoch: slider,
            tab.details: shown.details,
            tab.note: shown.note,
            tab.result: result,
        }

    def on_epoch(result: AttentionEvolution | None, epoch: float, colormap: str) -> dict:
        if result is None:
            return {tab.epoch_view: None, tab.curves: curves(tab.records, None)}
        shown = result.epochs[result.nearest(epoch)]
        picture = epoch_picture(result, shown, colormap)
        return {tab.epoch_view: picture, tab.curves: curves(tab.records, shown)}

    tab.button.click(
        gpu(on_compute),
        inputs=[context.input_image, context.session, tab.side, tab.colormap],
        outputs=[tab.grid, tab.epoch_view, tab.epoch, tab.details, tab.note, tab.result],
        api_name="evolution",
        preprocess=False,
        **MODEL_EVENTS,
    )
    for trigger in (tab.epoch.change, tab.colormap.change):
        trigger(
            on_epoch,
            inputs=[tab.result, tab.epoch, tab.colormap],
            outputs=[tab.epoch_view, tab.curves],
            api_visibility="private",
            trigger_mode="always_last",
        )
