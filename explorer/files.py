"""Files in and out of the app: which server paths a request may read (Gradio's upload folder
and the app's own folders only), decoding an upload once with clear errors, and a fresh output
folder per request (old ones are removed)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder as gradio_upload_folder
from PIL import Image

from bag.imageio import load_image
from explorer.config import OUTPUT_MAX_AGE_S


def readable(error: Exception, path: str, name: str) -> str:
    """The error text with the server's temporary path replaced by the uploaded file name."""
    return str(error).replace(path, name)


def safe_stem(name: str) -> str:
    """A file-name stem made of letters, digits, - and _ (at most 60), for the app's outputs."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)[:60]
    return stem or "image"


def frame_note(path: str, name: str) -> str:
    """A sentence when the file holds several frames (animated GIF / WebP / PNG), else ""."""
    try:
        with Image.open(path) as opened:
            frames, kind = int(getattr(opened, "n_frames", 1)), opened.format or "image"
    except (OSError, ValueError):
        return ""
    if frames <= 1:
        return ""
    return f"`{name}` is an animated {kind} with {frames} frames: its first frame was restored."


class Files:
    """The folders one demo reads from and writes to."""

    def __init__(self, readable_dirs: tuple[Path, ...] = ()) -> None:
        self.output_root = Path(tempfile.mkdtemp(prefix="bag-explorer-"))
        atexit.register(shutil.rmtree, self.output_root, ignore_errors=True)
        # Inputs are read only from Gradio's upload folder and these folders: a request can
        # name any server path in a file payload, and Gradio checks only some payloads.
        self.readable_dirs = (
            Path(gradio_upload_folder()).resolve(),
            self.output_root.resolve(),
            *readable_dirs,
        )

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

    def decode(
        self, payload: Any, max_pixels: int | None, what: str = "a blurred photo"
    ) -> tuple[np.ndarray, str, str]:
        """A file payload as float RGB (H, W, 3) in [0, 1], its server path and its name.

        Raises a gr.Error that names the user's file (never the server path).
        """
        found = self.payload_path(payload)
        if found is None:
            raise gr.Error(f"Upload {what} first (or pick an example).")
        path, name = found
        try:
            return load_image(path, max_pixels=max_pixels), path, name
        except ValueError as error:
            raise gr.Error(readable(error, path, name)) from None

    def new_output_dir(self) -> Path:
        """A fresh folder for one request's files; folders older than an hour are removed."""
        now = time.time()
        for old in self.output_root.iterdir():
            if old.is_dir() and now - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.output_root / uuid.uuid4().hex
        folder.mkdir()
        return folder
