"""What every tab's wiring needs: the model, the files, the session state, the photo input,
the pixel budget, and how model events are queued (one shared worker; `spaces.GPU` on
ZeroGPU Spaces)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from explorer.files import Files
from explorer.model import Model
from explorer.state import Session, current_image

try:  # On Hugging Face ZeroGPU Spaces, `spaces.GPU` attaches a GPU for the call.
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(function: Callable) -> Callable:
        """No-op stand-in for `spaces.GPU` when the `spaces` package is absent."""
        return function


# Every event that runs the model shares one worker: a second request waits in the queue.
MODEL_EVENTS = {"concurrency_id": "model", "concurrency_limit": 1}


@dataclass
class Context:
    """Shared by the tabs of one demo."""

    model: Model
    files: Files
    session: gr.State  # holds a Session (or None before the first Restore)
    input_image: gr.Image
    pixel_budget: int  # interactive requests above this many pixels are downscaled

    def image(self, payload: Any, session: Session | None) -> tuple[np.ndarray, str]:
        """The photo a request names (see `explorer.state.current_image`)."""
        max_pixels = self.model.deblurrer().max_pixels
        return current_image(self.files, payload, session, max_pixels, self.pixel_budget)
