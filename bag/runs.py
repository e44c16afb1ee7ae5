"""A training run's folder as the app and the scripts read it: the epoch snapshots
(`epoch-NNN.safetensors`) and the validation log (`metrics.jsonl`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SNAPSHOT_NAME = re.compile(r"^epoch-(\d+)\.safetensors$")


@dataclass(frozen=True)
class Snapshot:
    """One epoch snapshot file of a training run."""

    epoch: int
    path: Path


def find_snapshots(directory: str | Path) -> tuple[Snapshot, ...]:
    """Snapshots named epoch-NNN.safetensors in `directory`, by epoch; () if there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        return ()
    found = []
    for path in directory.iterdir():
        match = SNAPSHOT_NAME.match(path.name)
        if match and path.is_file():
            found.append(Snapshot(int(match.group(1)), path))
    return tuple(sorted(found, key=lambda s: s.epoch))


def read_metrics(path: str | Path) -> list[dict]:
    """Validation records of metrics.jsonl with an "epoch", the last one of each epoch, sorted.

    Blank or malformed lines are skipped (a log being written may end with a partial line).
    """
    path = Path(path)
    if not path.is_file():
        return []
    by_epoch: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), (int, float)):
            by_epoch[int(record["epoch"])] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]
