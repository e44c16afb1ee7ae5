"""Generator checkpoints: safetensors weights + JSON metadata (config inside), atomic writes."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from bag.model import Generator, GeneratorConfig

FORMAT = "bag-generator"
FORMAT_VERSION = "1"
_MAX_HEADER_BYTES = 100_000_000


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of another format or does not match its config."""


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def save_generator(
    generator: nn.Module,
    path: str | Path,
    metadata: dict[str, Any],
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `generator`'s weights, config and `metadata` (JSON-serialisable) to `path`.

    `dtype` (e.g. torch.float16) stores floating-point weights at lower precision, for small
    snapshots; loading casts them back to float32. The file is written next to its destination
    and renamed into place, so a crash never leaves a half-written checkpoint behind.
    """
    generator = unwrap(generator)
    if not isinstance(generator, Generator):
        raise TypeError(f"expected a bag Generator, got {type(generator).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in generator.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(generator.config.to_dict()),
        "metadata": json.dumps(metadata),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_file(path: Path) -> None:
    """Raise CheckpointError unless `path` is a complete safetensors file."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"checkpoint {path}: not a safetensors file ({size} bytes)")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > _MAX_HEADER_BYTES:
            raise CheckpointError(f"checkpoint {path}: not a safetensors file")
        raw = handle.read(header_size)
    if len(raw) < header_size:
        raise CheckpointError(f"checkpoint {path}: truncated (the header is incomplete)")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {path}: not a safetensors file") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path}: not a safetensors file")
    data_size = max(
        (entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
        default=0,
    )
    if size < 8 + header_size + data_size:
        raise CheckpointError(
            f"checkpoint {path}: truncated ({size} bytes, expected {8 + header_size + data_size})"
        )


def read_metadata(path: str | Path) -> tuple[GeneratorConfig, dict[str, Any]]:
    """The config and metadata stored in a generator checkpoint, without loading weights."""
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: unreadable safetensors file ({error})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path}: not a BAG generator checkpoint (format {header.get('format')!r})"
        )
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format version {header.get('format_version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})"
        )
    try:
        config = GeneratorConfig.from_dict(json.loads(header["config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: invalid stored config ({error})") from None
    return config, metadata


def load_generator(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Generator, dict[str, Any]]:
    """Rebuild the generator stored in `path` (in eval mode) and return it with its metadata."""
    path = Path(path)
    config, metadata = read_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as error:
        raise CheckpointError(f"checkpoint {path}: unreadable weights ({error})") from None
    generator = Generator(config)
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(
        name for name in set(expected) & set(tensors) if expected[name].shape != tensors[name].shape
    )
    if missing or unexpected or wrong_shape:
        problems = []
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if names:
                problems.append(
                    f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                )
        raise CheckpointError(
            f"checkpoint {path}: weights do not match the stored config ({'; '.join(problems)})"
        )
    generator.load_state_dict(tensors)
    return generator.to(device).eval(), metadata
