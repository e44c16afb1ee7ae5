"""Carry the long training run through git: restore it into a run directory, train one part,
save it back into the repository.

A run longer than a session (the shipped model's: 4.9 hours) trains in parts of at most
two and a half hours (a session's length). Between parts, everything needed to continue it
lives in train/long-run/: config.json and metrics.jsonl as train.py wrote them, the generator
snapshots, each part's log, and resume.pt cut into parts under 9 MB with a SHA-256 manifest
(train/resume_parts.py), because no file in the repository may exceed 10 MB.

  python train/long_run.py status                  # epochs done, CPU minutes, last validation
  python train/long_run.py part --minutes 140      # restore, train one part, save it back
  python train/long_run.py restore                 # only put the state into runs/long
  python train/long_run.py save --log runs/long/part1.log   # only copy runs/long back
  python train/long_run.py finish                  # the ended run's generator, from resume.pt

`part` runs `train.py --out runs/long --resume --stop-after-minutes M`: the recipe comes from
the saved config.json, so a clean checkout continues exactly the same run. Commit
train/long-run/ after every part. When the run has ended, its generator and chosen snapshots
move to checkpoints/ (`finish` writes the float32 generator from the saved state) and
train/long-run/ leaves the tree.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from resume_parts import join, split

from bag.checkpoint import read_metadata, save_generator
from bag.model import Generator
from bag.run_files import read_resume_state

REPO = Path(__file__).resolve().parents[1]
TRACKED = REPO / "train" / "long-run"
RUN = REPO / "runs" / "long"
RUN_FILES = ("config.json", "metrics.jsonl")


def epochs_done(folder: Path) -> int:
    """Complete epochs recorded in `folder`/metrics.jsonl (0 without one)."""
    metrics = folder / "metrics.jsonl"
    if not metrics.is_file():
        return 0
    return sum(1 for line in metrics.read_text().splitlines() if line.strip())


def restore(tracked: Path, run: Path) -> None:
    """Put the saved state into `run`, unless `run` already holds as many epochs or more."""
    if epochs_done(run) >= epochs_done(tracked):
        return
    if not (tracked / "resume" / "manifest.json").is_file():
        raise ValueError(f"{tracked} holds no saved resume state")
    (run / "snapshots").mkdir(parents=True, exist_ok=True)
    # The resume state first: a run directory is complete only once metrics.jsonl arrives.
    join(tracked / "resume", run / "resume.pt")
    for snapshot in sorted((tracked / "snapshots").glob("*.safetensors")):
        shutil.copy2(snapshot, run / "snapshots" / snapshot.name)
    for name in RUN_FILES:
        shutil.copy2(tracked / name, run / name)


def save(run: Path, tracked: Path, logs: list[Path], part_bytes: int = 9_000_000) -> None:
    """Copy `run`'s state into `tracked`: resume.pt in parts, the other files as they are."""
    if not (run / "resume.pt").is_file():
        raise ValueError(f"{run} holds no resume.pt: nothing to save")
    (tracked / "snapshots").mkdir(parents=True, exist_ok=True)
    split(run / "resume.pt", tracked / "resume", part_bytes)
    for snapshot in sorted((run / "snapshots").glob("*.safetensors")):
        shutil.copy2(snapshot, tracked / "snapshots" / snapshot.name)
    for name in RUN_FILES:
        shutil.copy2(run / name, tracked / name)
    (tracked / "logs").mkdir(exist_ok=True)
    for log in logs:
        # tqdm redraws its bar with carriage returns: keep only the last state of each line.
        # (Bytes: read_text and str.splitlines would turn those into line ends too.)
        text = log.read_bytes().decode(errors="replace").rstrip("\n")
        lines = [line.split("\r")[-1] for line in text.split("\n")]
        (tracked / "logs" / log.name).write_text("\n".join(lines) + "\n")


def finish(tracked: Path, run: Path) -> Path:
    """Write `run`/generator.safetensors (float32) from the saved resume state of an ended run.

    train.py writes the same file after its last epoch; this rebuilds it in a checkout where
    only train/long-run/ survived. The architecture and metadata come from the last epoch's
    snapshot (the same weights in float16, written with the same metadata), the weights from
    resume.pt.
    """
    config = json.loads((tracked / "config.json").read_text())
    done, planned = epochs_done(tracked), config["train"]["epochs"]
    if done < planned:
        raise ValueError(f"{tracked} holds {done} of {planned} epochs: the run has not ended")
    run.mkdir(parents=True, exist_ok=True)
    join(tracked / "resume", run / "resume.pt")
    state = read_resume_state(run / "resume.pt")
    if state["epoch"] != planned:
        raise ValueError(f"resume.pt is from epoch {state['epoch']}, not the last ({planned})")
    config, metadata = read_metadata(tracked / "snapshots" / f"epoch-{planned:03d}.safetensors")
    generator = Generator(config)
    generator.load_state_dict(state["generator"])
    return save_generator(generator, run / "generator.safetensors", metadata)


def status(folder: Path) -> str:
    """One paragraph: epochs done of the planned ones, training minutes, the last validation."""
    metrics = folder / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    rows = [json.loads(line) for line in lines if line.strip()]
    if not rows:
        return f"{folder}: no epoch finished yet"
    done = len(rows)
    config = json.loads((folder / "config.json").read_text())
    minutes = sum(row["seconds"] for row in rows) / 60
    last = rows[-1]
    gain = last["val_psnr"] - last["val_psnr_blurred"]
    best = max(row["val_psnr"] - row["val_psnr_blurred"] for row in rows)
    planned = config["train"]["epochs"]
    return (
        f"{folder}: {done} of {planned} epochs, {minutes:.0f} training minutes, "
        f"step {last['step']}; validation gain {gain:+.2f} dB (best {best:+.2f})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracked", type=Path, default=TRACKED, help="folder in the repository")
    parser.add_argument("--run", type=Path, default=RUN, help="run directory train.py writes")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="what the saved run holds")
    commands.add_parser("restore", help="saved state -> run directory")
    commands.add_parser("finish", help="ended run's generator -> run directory")
    save_parser = commands.add_parser("save", help="run directory -> saved state")
    save_parser.add_argument("--log", type=Path, action="append", default=[], help="part log")
    part_parser = commands.add_parser("part", help="restore, train one part, save")
    part_parser.add_argument("--minutes", type=float, required=True, help="budget of the part")
    args = parser.parse_args(argv)
    try:
        if args.command == "status":
            print(status(args.tracked))
        elif args.command == "restore":
            restore(args.tracked, args.run)
            print(status(args.run))
        elif args.command == "finish":
            print(finish(args.tracked, args.run))
        elif args.command == "save":
            save(args.run, args.tracked, args.log)
            print(status(args.tracked))
        else:
            restore(args.tracked, args.run)
            log = args.run / f"part{epochs_done(args.run):03d}.log"
            command = [sys.executable, str(REPO / "train" / "train.py"), "--out", str(args.run)]
            command += ["--resume", "--stop-after-minutes", str(args.minutes)]
            with log.open("w") as stream:
                code = subprocess.call(command, stdout=stream, stderr=subprocess.STDOUT)
            save(args.run, args.tracked, [log])
            print(status(args.tracked))
            if code:
                raise ValueError(f"train.py exited with status {code}: see {log}")
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
