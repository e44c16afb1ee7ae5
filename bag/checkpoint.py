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


# The second half of each message: what the user can do about it.
_PASS_A_GENERATOR = "pass a generator .safetensors file that train/train.py or save_generator wrote"
_COPY_AGAIN = "the file is incomplete: copy or download it again"


def _not_a_file(path: Path) -> CheckpointError:
    """The error for a path that is not a regular file: missing, or a folder."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.safetensors"))
        hint = f"pass a file inside it, such as {path / inside[0]}" if inside else _PASS_A_GENERATOR
        return CheckpointError(f"checkpoint {path} is a folder, not a file; {hint}")
    return CheckpointError(f"checkpoint {path}: no such file; {_PASS_A_GENERATOR}")


def _check_file(path: Path) -> None:
    """Raise CheckpointError unless `path` is a complete safetensors file."""
    if not path.is_file():
        raise _not_a_file(path)
    not_safetensors = CheckpointError(
        f"checkpoint {path} is not a safetensors file; {_PASS_A_GENERATOR}"
    )
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if size == 0:
                raise CheckpointError(f"checkpoint {path} is empty (0 bytes); {_COPY_AGAIN}")
            if len(head) < 8:
                raise not_safetensors
            (header_size,) = struct.unpack("<Q", head)
            if header_size > _MAX_HEADER_BYTES:
                raise not_safetensors
            raw = handle.read(header_size)
    except OSError as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({error.strerror}); check its permissions"
        ) from None
    try:
        header = json.loads(raw)
        data_size = max(
            (entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
            default=0,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
        # A short read of the header fails to parse too: tell truncation from another format.
        if len(raw) < header_size and raw.lstrip().startswith(b"{"):
            raise CheckpointError(
                f"checkpoint {path} is truncated (the header is incomplete); {_COPY_AGAIN}"
            ) from None
        raise not_safetensors from None
    if size < 8 + header_size + data_size:
        raise CheckpointError(
            f"checkpoint {path} is truncated ({size} bytes of {8 + header_size + data_size}); "
            f"{_COPY_AGAIN}"
        )


def read_metadata(path: str | Path) -> tuple[GeneratorConfig, dict[str, Any]]:
    """The config and metadata stored in a generator checkpoint, without loading weights."""
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} is an unreadable safetensors file ({error}); {_PASS_A_GENERATOR}"
        ) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is a safetensors file but not a BAG generator checkpoint "
            f"(format {header.get('format')!r}); {_PASS_A_GENERATOR}"
        )
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {header.get('format_version')!r}, which this "
            f"code does not read (it reads version {FORMAT_VERSION}); load it with the version "
            "of bag-explorer that wrote it"
        )
    try:
        config = GeneratorConfig.from_dict(json.loads(header["config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} holds an invalid config ({error}); {_PASS_A_GENERATOR}"
        ) from None
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
        raise CheckpointError(
            f"checkpoint {path} has unreadable weights ({error}); {_COPY_AGAIN}"
        ) from None
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
            f"checkpoint {path}: its weights do not match the stored config "
            f"({'; '.join(problems)}), so it was altered or written by other code; "
            f"{_PASS_A_GENERATOR}"
        )
    generator.load_state_dict(tensors)
    return generator.to(device).eval(), metadata
