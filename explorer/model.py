"""The model the app serves: loaded once (in main(), or lazily on the first request), its
description for the About tab, and a fingerprint of its weights that keys the examples cache."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import gradio as gr

from bag import CheckpointError, Deblurrer, count_parameters
from explorer.config import DEFAULT_CHECKPOINT


class Model:
    """A `Deblurrer`, given or loaded from `checkpoint_path` on first use."""

    def __init__(
        self, deblurrer: Deblurrer | None, checkpoint_path: Path | None, device: str = "auto"
    ) -> None:
        self._deblurrer = deblurrer
        self.checkpoint_path = checkpoint_path or DEFAULT_CHECKPOINT
        self._device = device
        self._lock = threading.Lock()

    def deblurrer(self) -> Deblurrer:
        """The model, loaded on first use when none was given."""
        with self._lock:
            if self._deblurrer is None:
                try:
                    self._deblurrer = Deblurrer.from_checkpoint(
                        self.checkpoint_path, device=self._device
                    )
                except CheckpointError as error:
                    raise gr.Error(f"The model could not be loaded: {error}") from None
            return self._deblurrer

    def fingerprint(self) -> str:
        """Short hash of the weights (or of the checkpoint file) to key the examples cache."""
        digest = hashlib.sha256()
        if self._deblurrer is not None:
            for name, tensor in self._deblurrer.generator.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        else:
            path = self.checkpoint_path
            stat = path.stat() if path.is_file() else None
            digest.update(f"{path}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}")
        return digest.hexdigest()[:16]

    def description(self) -> str:
        """One paragraph on the loaded model (size, config, training metadata), as Markdown."""
        if self._deblurrer is None:
            return f"`{self.checkpoint_path.name}`, loaded on the first request."
        generator = self._deblurrer.generator
        metadata = self._deblurrer.metadata
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
