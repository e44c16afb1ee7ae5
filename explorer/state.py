"""The per-session state every tab reads: what Restore decoded and produced for the current
photo. Restore fills it (one `gr.State` per browser session); Attention, Explain and Training
evolution read it instead of decoding the upload again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bag import DeblurResult
from bag.attention import AttentionStats
from bag.visualize import shrink
from explorer.files import Files


@dataclass(frozen=True)
class Session:
    """One restored photo: the decoded input, the result and the attention maps."""

    source: str  # server path of the upload it came from (a later request names the same file)
    name: str  # the file name the user uploaded
    image: np.ndarray  # the decoded model input, float32 (H, W, 3) in [0, 1]
    restored: np.ndarray  # the restored image as downloaded, uint8 (H, W, 3)
    attention: tuple[np.ndarray, ...]  # A1..A4, float32 (ceil(H/4), ceil(W/4)) in [0, 1]
    stats: tuple[AttentionStats, ...]  # measured on the full-size maps, one per module
    note: str = ""  # what the app changed before restoring (e.g. a downscale), or ""

    @classmethod
    def from_result(
        cls,
        image: np.ndarray,
        result: DeblurResult,
        stats: tuple[AttentionStats, ...],
        source: str,
        name: str,
        note: str = "",
    ) -> Session:
        """Keep the decoded input `image` and its `Deblurrer` result (maps at model resolution,
        as the network made them); `stats` are those of the full-size maps."""
        return cls(
            source=source,
            name=name,
            image=image,
            restored=result.to_uint8(),
            attention=result.attention,
            stats=stats,
            note=note,
        )

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the input (and of the restored image)."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def fit_budget(image: np.ndarray, budget: int) -> tuple[np.ndarray, str]:
    """`image` (H, W, 3) downscaled to at most `budget` pixels, and a sentence saying so ("" if
    it fits): interactive requests share one model worker, so one photo must not hold it long."""
    height, width = image.shape[:2]
    if height * width <= budget:
        return image, ""
    side = math.floor(max(height, width) * math.sqrt(budget / (height * width)))
    small = np.clip(shrink(image, side), 0.0, 1.0)
    return small, (
        f"Downscaled from {width} x {height} to {small.shape[1]} x {small.shape[0]} px, this "
        f"app's limit of {budget / 1e6:g} megapixels per request; `bag deblur` (the command "
        "line) and `bag.Deblurrer` restore the full size."
    )


def current_image(
    files: Files, payload: Any, session: Session | None, max_pixels: int, budget: int
) -> tuple[np.ndarray, str]:
    """The photo a request names, as float RGB (H, W, 3), and the downscale note ("" if none).

    The session's decoded input when it was made from that same upload (the usual case in
    the browser); otherwise (an API call, or no Restore yet) the file is decoded here, with
    the same pixel budget Restore applies, so coordinates mean the same in every tab.
    """
    found = files.payload_path(payload)
    if session is not None and found is not None and session.source == found[0]:
        return session.image, session.note
    array, _, _ = files.decode(payload, max_pixels)
    return fit_budget(array, budget)
