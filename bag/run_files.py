"""Writing a training run's folder so that a crash never leaves a partial file: atomic writes,
metrics.jsonl lines, the resume state resume.pt with its checked load, and the code's commit
for config.json. (bag.runs reads the snapshots and metrics back for the app.)
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import torch

RESUME_FORMAT = "bag-train-resume"
RESUME_VERSION = 1


class ResumeStateError(ValueError):
    """A resume state file that cannot be resumed from; the message names the file and why."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def metrics_lines(records: list[dict[str, Any]]) -> bytes:
    """The metrics.jsonl lines of `records`, one JSON object each."""
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one record to metrics.jsonl and wait until it is on disk."""
    with open(path, "ab") as handle:
        handle.write(metrics_lines([record]))
        handle.flush()
        os.fsync(handle.fileno())


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` (tensors and plain Python values: loads with weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def read_resume_state(path: Path) -> dict[str, Any]:
    """The state save_resume_state wrote to `path`, with format RESUME_FORMAT and version
    RESUME_VERSION; ResumeStateError saying why not otherwise.

    weights_only=True: a resume file holds tensors and plain values and can never run code.
    """
    if path.is_dir():
        raise ResumeStateError(f"{path} is a folder, not a resume state file")
    try:
        empty = path.stat().st_size == 0
        is_zip = zipfile.is_zipfile(path)  # torch.save writes a zip archive
    except OSError as error:
        raise ResumeStateError(f"{path} cannot be read ({error.strerror})") from None
    if empty:
        raise ResumeStateError(f"{path} is empty, so the run cannot resume from it")
    if not is_zip:
        raise ResumeStateError(f"{path} is truncated or was not written by torch.save")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # RuntimeError, EOFError, UnpicklingError, ...: all mean damaged
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise ResumeStateError(f"{path} is damaged ({reason})") from None
    if (
        not isinstance(state, dict)
        or state.get("format") != RESUME_FORMAT
        or state.get("version") != RESUME_VERSION
    ):
        raise ResumeStateError(f"{path} is not a resume state of train/train.py")
    return state


def git_commit(folder: Path) -> str | None:
    """The commit of the git checkout holding `folder` ('-dirty' if tracked files changed), or
    None outside a checkout."""

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=folder, capture_output=True, text=True, check=True
        )
        return done.stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")
