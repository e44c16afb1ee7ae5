"""Carry a run's resume state through git in parts small enough for any host.

A long run is trained in parts over several sessions; between parts its resume state must live
in the repository, where no file may exceed 10 MB (Hugging Face Spaces refuse a push whose
history holds one). `split` cuts a file into numbered parts of at most --part-mb megabytes and
writes a manifest with the size and SHA-256 of the whole and of every part; `join` puts the
file back only if every part and the whole match the manifest, through a temporary file.

  python train/resume_parts.py split runs/long/resume.pt checkpoints/long-run/resume
  python train/resume_parts.py join checkpoints/long-run/resume runs/long/resume.pt

Any other file of a run directory (metrics.jsonl, config.json, snapshots) is small enough to be
copied as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from bag.run_files import write_atomic

MANIFEST = "manifest.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(source: Path, folder: Path, part_bytes: int) -> list[Path]:
    """Write `source` as parts `folder`/NAME.partNNN plus the manifest; returns the parts."""
    data = source.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{source.name}.part*"):
        stale.unlink()
    parts = []
    for index, start in enumerate(range(0, max(len(data), 1), part_bytes)):
        part = folder / f"{source.name}.part{index:03d}"
        part.write_bytes(data[start : start + part_bytes])
        parts.append(part)
    manifest = {
        "file": source.name,
        "bytes": len(data),
        "sha256": sha256(data),
        "parts": [{"name": p.name, "sha256": sha256(p.read_bytes())} for p in parts],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return parts


def join(folder: Path, target: Path) -> None:
    """Reassemble the file described by `folder`/manifest.json at `target`; ValueError if any
    part is missing or altered."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: no manifest (was the state split with this script?)")
    manifest = json.loads(manifest_path.read_text())
    chunks = []
    for part in manifest["parts"]:
        path = folder / part["name"]
        if not path.is_file():
            raise ValueError(f"{path}: part missing")
        chunk = path.read_bytes()
        if sha256(chunk) != part["sha256"]:
            raise ValueError(f"{path}: part altered or truncated (checksum differs)")
        chunks.append(chunk)
    data = b"".join(chunks)
    if len(data) != manifest["bytes"] or sha256(data) != manifest["sha256"]:
        raise ValueError(f"{folder}: the joined parts are not the file that was split")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    split_parser = commands.add_parser("split", help="cut a file into parts")
    split_parser.add_argument("source", type=Path)
    split_parser.add_argument("folder", type=Path)
    split_parser.add_argument("--part-mb", type=float, default=9.0, help="largest part, MB")
    join_parser = commands.add_parser("join", help="put a split file back together")
    join_parser.add_argument("folder", type=Path)
    join_parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            if not args.source.is_file():
                raise ValueError(f"{args.source}: no such file")
            if args.part_mb * 1_000_000 < 1:
                raise ValueError(f"--part-mb must be positive, got {args.part_mb}")
            parts = split(args.source, args.folder, int(args.part_mb * 1_000_000))
            print(f"{args.source} -> {len(parts)} parts in {args.folder}")
        else:
            join(args.folder, args.target)
            print(f"{args.folder} -> {args.target}")
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
