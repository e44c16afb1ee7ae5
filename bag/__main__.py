"""Command line: `bag deblur INPUT... -o OUTDIR` (or `python -m bag deblur ...`).

Each image becomes OUTDIR/<name>.png (lossless) and, with --attention, <name>.A1.png .. A4.png.
The command never replaces a file unless --overwrite is given, refuses an output folder that is
(or is inside) an input folder unless --allow-output-in-input is given, and checks every output
name for collisions before it writes anything. A bad file is reported and the others go on; a
summary ends the run. Exit status: 0 when every image was written or skipped, 1 when any image
failed, 2 for a usage error (nothing written).

This file is the package's only script entry point, so it alone in bag/ parses arguments and
prints.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from bag.checkpoint import CheckpointError
from bag.inference import Deblurrer, DeblurResult
from bag.sources import IMAGE_SUFFIXES

MAPS = 4  # attention maps A1..A4


class UsageError(Exception):
    """A command line that cannot run as given; the message is one sentence."""


@dataclass
class Job:
    """One input image and the files it becomes: the restored image first, then A1..A4."""

    source: Path
    targets: list[Path]


@dataclass
class Report:
    """What happened to each input, for the summary and the exit status."""

    written: list[Job] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one sentence each, naming the file
    failed: list[str] = field(default_factory=list)
    ignored: int = 0  # files in input folders without an image suffix


# ----------------------------------------------------------------------------- arguments


def _device(value: str) -> str:
    """argparse type for --device: auto, cpu, cuda, cuda:N or mps, and present on this machine."""
    if value == "auto":
        return value
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"unknown device {value!r}; use auto, cpu, cuda or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("CUDA is not available here; use --device cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"there is no {value} (this machine has {torch.cuda.device_count()} CUDA devices)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError("MPS is not available here; use --device cpu or auto")
    return value


def _tile(value: str) -> int:
    """argparse type for --tile: 0 (no tiling) or a multiple of 4 of at least 64."""
    try:
        tile = int(value)
    except ValueError:
        tile = -1
    if tile != 0 and (tile < 64 or tile % 4):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a tile size; use 0 (no tiling) or a multiple of 4 of at least 64"
        )
    return tile


def build_parser() -> argparse.ArgumentParser:
    """The `bag` command line."""
    parser = argparse.ArgumentParser(prog="bag", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "deblur",
        help="restore blurred photos",
        description="Restore blurred photos into an output folder as lossless PNG.",
        epilog="Names that begin with '-' go after '--': bag deblur -o out -- -photo.jpg",
    )
    command.add_argument("inputs", nargs="+", help="image files or folders of images")
    command.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    command.add_argument(
        "--checkpoint", type=Path, default=None, help="generator .safetensors (default: shipped)"
    )
    command.add_argument("--attention", action="store_true", help="also write A1..A4 as PNG")
    command.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda or mps")
    command.add_argument("--tile", type=_tile, default=512, help="tile size; 0 = no tiling")
    command.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )
    command.add_argument(
        "--allow-output-in-input",
        action="store_true",
        help="allow an output folder that is an input folder or inside one",
    )
    return parser


# ----------------------------------------------------------------------------- planning


def _name_key(path: Path | str) -> str:
    """A name as a case-insensitive file system compares it (macOS, Windows): a.PNG is a.png."""
    return unicodedata.normalize("NFC", str(path)).casefold()


def gather(names: Sequence[str], report: Report) -> tuple[list[Path], list[Path], list[Path]]:
    """The images to restore (each once, in order), the folders given and the files given.

    A name that is neither a file nor a folder is recorded as failed; the others go on.
    """
    images: list[Path] = []
    folders: list[Path] = []
    files: list[Path] = []
    seen: set[str] = set()
    for name in names:
        path = Path(name)
        if path.is_dir():
            folders.append(path)
            entries = sorted(p for p in path.iterdir() if p.is_file())
            found = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
            report.ignored += len(entries) - len(found)
        elif path.is_file():
            files.append(path)
            found = [path]
        else:
            report.failed.append(f"{path}: no such file or folder")
            continue
        for image in found:
            key = _name_key(image.resolve())
            if key not in seen:  # a file given both by name and through its folder
                seen.add(key)
                images.append(image)
    return images, folders, files


def check_output_folder(out: Path, folders: list[Path], files: list[Path]) -> None:
    """UsageError when `out` is an input folder, inside one, or the folder of an input file."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"the output path {out} is a file, not a folder; choose another -o")
    where = out.resolve()
    for folder in folders:
        inside = folder.resolve()
        if where == inside or inside in where.parents:
            relation = "is the input folder" if where == inside else "is inside the input folder"
            raise UsageError(
                f"the output folder {out} {relation} {folder}; choose another -o, or pass "
                "--allow-output-in-input"
            )
    for file in files:
        if where == file.resolve().parent:
            raise UsageError(
                f"the output folder {out} holds the input {file}; choose another -o, or pass "
                "--allow-output-in-input"
            )


def plan(images: list[Path], out: Path, attention: bool) -> tuple[list[Job], list[str]]:
    """Each image's output files, and every output name claimed twice or that is an input."""
    jobs = []
    claims: dict[str, list[Job]] = {}
    for image in images:
        stem = image.stem  # "..png" -> ".", "x.A1.png" -> "x.A1"
        names = [f"{stem}.png"] + [f"{stem}.A{k}.png" for k in range(1, MAPS + 1) if attention]
        job = Job(image, [out / name for name in names])
        jobs.append(job)
        for target in job.targets:
            claims.setdefault(_name_key(target.name), []).append(job)
    # One line per set of inputs that collide, however many of their names do.
    shared: dict[tuple[Path, ...], list[Path]] = {}
    for key, owners in claims.items():
        if len(owners) > 1:
            target = next(t for t in owners[0].targets if _name_key(t.name) == key)
            shared.setdefault(tuple(job.source for job in owners), []).append(target)
    collisions = []
    for sources, targets in shared.items():
        names = ", ".join(str(s) for s in sources[:-1]) + f" and {sources[-1]}"
        more = f" (and {len(targets) - 1} more names)" if len(targets) > 1 else ""
        collisions.append(f"{names} would all be written to {targets[0]}{more}")
    inputs = {_name_key(image.resolve()) for image in images}
    for job in jobs:
        for target in job.targets:
            if _name_key(target.resolve()) in inputs:
                collisions.append(f"{target} is an input and would be replaced by its result")
    return jobs, collisions


def existing(job: Job) -> str | None:
    """Why `job` is skipped without --overwrite: a sentence naming an output file that exists."""
    present = [t for t in job.targets if t.exists() or t.is_symlink()]
    if not present:
        return None
    more = f" (and {len(present) - 1} more of its outputs)" if len(present) > 1 else ""
    return f"{job.source}: {present[0]} exists{more}; pass --overwrite to replace it"


# ----------------------------------------------------------------------------- writing


def encode(result: DeblurResult, attention: bool) -> list[bytes]:
    """The restored image and (with `attention`) A1..A4 at its size as PNG files, in memory."""
    images = [result.to_pil()]
    if attention:
        maps = result.attention_at_input_size()  # (H, W) each, one value per pixel
        levels = [(np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8) for a in maps]
        images += [Image.fromarray(level) for level in levels]  # 8-bit grayscale
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")  # the format by name: "..png" has no suffix to go by
        encoded.append(buffer.getvalue())
    return encoded


def write_file(target: Path, data: bytes, overwrite: bool) -> None:
    """Write through a temporary file beside `target`, so that no half-written PNG is left.

    Without `overwrite` the last step is a hard link, which fails if the name appeared since the
    check (no window in which another file could be replaced); where the file system has no hard
    links, a rename after a last check.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".bag-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a restored photo is not
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise
        except OSError:
            if target.exists() or target.is_symlink():
                raise FileExistsError(target) from None
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def run_job(deblurrer: Deblurrer, job: Job, args: argparse.Namespace) -> str | None:
    """Restore and write one image; None, or why it failed (one sentence naming the file)."""
    try:
        result = deblurrer(job.source)
    except ValueError as error:  # load_image's sentence, which names the file
        return str(error)
    except (RuntimeError, MemoryError) as error:  # e.g. out of memory on a large photo
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        return f"{job.source} could not be restored ({reason}); try a smaller --tile"
    created = []
    try:
        for target, data in zip(job.targets, encode(result, args.attention), strict=True):
            write_file(target, data, args.overwrite)
            created.append(target)
    except FileExistsError:
        reason = f"{job.source}: {target} appeared while it ran; run again to see it skipped"
    except OSError as error:
        reason = f"{target} could not be written ({error.strerror}); check the output folder"
    else:
        height, width = result.size
        tqdm.write(f"{job.source} -> {job.targets[0]} ({width}x{height}, {result.seconds:.2f} s)")
        return None
    if not args.overwrite:  # what this job created is new: remove it, leave no partial set
        for path in created:
            path.unlink(missing_ok=True)
    return reason


# ----------------------------------------------------------------------------- the command


def print_summary(report: Report, interrupted: bool = False) -> None:
    """Counts, then each skipped and failed image with its reason."""
    files = sum(len(job.targets) for job in report.written)
    counts = (
        f"{len(report.written)} written ({files} files), {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed"
    )
    print(f"{'interrupted' if interrupted else 'done'}: {counts}")
    for reason in report.skipped:
        print(f"skipped: {reason}")
    for reason in report.failed:
        print(f"failed: {reason}")
    if report.ignored:
        print(f"ignored: {report.ignored} file(s) in input folders without an image suffix")


def deblur(args: argparse.Namespace) -> int:
    """Restore every input into the output folder; see the module docstring for the rules."""
    report = Report()
    images, folders, files = gather(args.inputs, report)
    if not images and not report.failed:
        raise UsageError(
            f"no images found in {', '.join(args.inputs)}; pass image files, or folders that "
            f"hold {', '.join(IMAGE_SUFFIXES)} files"
        )
    if not args.allow_output_in_input:
        check_output_folder(args.output, folders, files)
    jobs, collisions = plan(images, args.output, args.attention)
    if collisions:
        for collision in collisions:
            print(f"bag: collision: {collision}", file=sys.stderr)
        raise UsageError(
            f"{len(collisions)} output name collision(s), so nothing was written; rename the "
            "inputs or restore them into separate folders"
        )
    todo = []
    for job in jobs:
        reason = None if args.overwrite else existing(job)
        if reason:
            report.skipped.append(reason)
        else:
            todo.append(job)
    if not todo:
        print_summary(report)
        return 1 if report.failed else 0
    try:
        deblurrer = Deblurrer.from_checkpoint(
            args.checkpoint, device=args.device, tile=args.tile or None
        )
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"the output folder {args.output} cannot be created ({error.strerror}); "
            "choose another -o"
        ) from None
    print(f"{len(todo)} image(s) on {deblurrer.device} ({deblurrer.precision})")
    interrupted = restore_all(deblurrer, todo, args, report)
    print_summary(report, interrupted)
    return 130 if interrupted else 1 if report.failed else 0


def restore_all(
    deblurrer: Deblurrer, jobs: list[Job], args: argparse.Namespace, report: Report
) -> bool:
    """Run every job into `report`, with a progress bar on stderr; True if interrupted (Ctrl-C)."""
    # disable=None: a bar only on a terminal; a log gets the one line per image instead.
    progress = tqdm(jobs, unit="image", file=sys.stderr, disable=True if len(jobs) < 2 else None)
    try:
        for job in progress:
            reason = run_job(deblurrer, job, args)
            if reason is None:
                report.written.append(job)
            else:
                report.failed.append(reason)
                tqdm.write(f"failed: {reason}", file=sys.stderr)
    except KeyboardInterrupt:
        return True
    finally:
        progress.close()
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run it; the exit status."""
    for stream in (sys.stdout, sys.stderr):  # odd bytes in a file name must not end the run
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        return deblur(args)
    except UsageError as error:
        print(f"bag: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
