"""What one Explain click will run: the settings and the point, clamped to what the tab allows
(with a sentence for each value that was changed), bounded so that a click stays under
EXPLAIN_BUDGET_S, and its expected time, shown before anything runs."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

import gradio as gr
import numpy as np

from bag.attribution import AttributionSettings, attribution_work

EXPLAIN_BUDGET_S = 10.0  # one click should take at most this long
# Measured: the default settings (128 px crop, 32 steps) took 2.05 s with the shipped model on
# 2 CPU cores (bench/app_views.py, checkpoints/README.md), i.e. seconds per megapixel point.
CPU_SECONDS_PER_WORK = 2.05 / attribution_work(AttributionSettings(), 128 * 128)
LIMITS = {"patch_size": (4, 64), "crop_size": (32, 256), "steps": (4, 128)}


class Clock:
    """Seconds per unit of `attribution_work`, from the last measured clicks (thread-safe)."""

    def __init__(self, seconds_per_work: float = CPU_SECONDS_PER_WORK) -> None:
        self.seconds_per_work = seconds_per_work
        self._lock = threading.Lock()

    def expected(self, settings: AttributionSettings, crop_pixels: int) -> float:
        """Expected seconds of one attribution."""
        return self.seconds_per_work * attribution_work(settings, crop_pixels)

    def measured(self, settings: AttributionSettings, crop_pixels: int, seconds: float) -> None:
        """Learn from a finished click (half the old rate, half the new one)."""
        rate = seconds / max(attribution_work(settings, crop_pixels), 1e-9)
        with self._lock:
            self.seconds_per_work = 0.5 * self.seconds_per_work + 0.5 * rate


@dataclass(frozen=True)
class Request:
    """A click's settings and point after clamping and bounding, and what was changed."""

    settings: AttributionSettings
    point: tuple[int, int]  # (x, y) in image pixels
    crop: tuple[int, int]  # (h, w) of the crop the model runs on
    notes: tuple[str, ...]  # one sentence per value that differs from what was asked

    @property
    def crop_pixels(self) -> int:
        """Pixels of the crop."""
        return self.crop[0] * self.crop[1]


def _clamped(name: str, value: float, low: int, high: int, notes: list[str]) -> int:
    used = int(np.clip(round(value), low, high))
    if used != value:
        notes.append(f"{name.replace('_', ' ')} {value:g} is outside {low}..{high}: used {used}")
    return used


def resolve(
    size: tuple[int, int],
    x: float | None,
    y: float | None,
    controls: dict[str, float],
    target: str,
    clock: Clock,
    budget: float = EXPLAIN_BUDGET_S,
) -> Request:
    """Settings for an (H, W) image from the tab's values (patch_size, crop_size, steps)."""
    if target not in ("edges", "intensity"):
        raise gr.Error('target must be "edges" or "intensity".')
    if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
        raise gr.Error("Click a point on the restored image (or enter x and y).")
    height, width = size
    notes: list[str] = []
    values = {k: _clamped(k, float(controls[k]), *LIMITS[k], notes) for k in LIMITS}
    point = (_clamped("x", x, 0, width - 1, notes), _clamped("y", y, 0, height - 1, notes))
    settings = AttributionSettings(**values, target=target)
    crop = (min(settings.crop_size, height), min(settings.crop_size, width))
    crop_pixels = crop[0] * crop[1]
    while clock.expected(settings, crop_pixels) > budget and settings.steps > LIMITS["steps"][0]:
        settings = replace(settings, steps=settings.steps - 4)
    if settings.steps != values["steps"]:
        notes.append(
            f"path steps {values['steps']} would take about "
            f"{clock.expected(replace(settings, steps=values['steps']), crop_pixels):.0f} s: used "
            f"{settings.steps}, to stay under {budget:g} s"
        )
    return Request(settings, point, crop, tuple(notes))


def estimate_text(request: Request, clock: Clock) -> str:
    """The sentence shown before a click runs: expected time and any adjustment."""
    seconds = clock.expected(request.settings, request.crop_pixels)
    text = f"Expected time for one click: **about {max(seconds, 0.1):.1f} s**"
    crop_h, crop_w = request.crop
    text += f" ({request.settings.steps} path steps per method on a {crop_w} x {crop_h} px crop)."
    return text + "".join(f" Note: {n}." for n in request.notes if "steps" in n)
