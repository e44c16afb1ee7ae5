"""Sizing study: matched short training runs, then held-out gain against CPU minutes.

Every run trains for the same wall-clock budget on the same data (the 580 training photos of
../shared/data/train with 6 % of them held out as validation, plus the built-in sources) at a
constant learning rate after a short warmup, with one line of validation per 100 steps; only
one thing changes from the baseline (the demo recipe). A run stops after the last epoch that
fits its budget (`--stop-after-minutes`), then its last snapshot is evaluated on the held-out
synthetic set (Kodak24 + McMaster) and the real GoPro pairs. The learning rate is constant, so
a run is extended by asking for more minutes: it resumes where it stopped.

  python train/study.py --out runs/study --minutes 10            # every run, then the table
  python train/study.py --out runs/study --minutes 30 --only baseline   # extend one to 30 min
  python train/study.py --out runs/study --table-only --png checkpoints/figures/study.png

Run nothing else heavy beside it: the runs are timed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PHOTOS = [
    DATA / "train" / name for name in ("bsds500-train", "bsds500-test", "sun-hays80", "urban100")
]

# name -> flags on top of the common ones; the baseline is the demo recipe.
RUNS = {
    "baseline": [],
    "no-critic": ["--adversarial-weight", "0", "--critic-steps", "0"],
    "fft-0.01": ["--frequency-weight", "0.01"],
    "width-24": ["--base-channels", "24", "--growth-rate", "32"],
    "crop-192": ["--crop", "192", "--batch-size", "8"],
    "lr-1e-3": ["--lr", "1e-3"],
    "a4-off": ["--attention-weight", "0"],
    "a4-scale-24": ["--attention-scale-px", "24"],
    "width-12": ["--base-channels", "12", "--growth-rate", "16"],
    "crop-256": ["--crop", "256", "--batch-size", "4"],
}
COMMON = [
    "--preset", "demo",
    "--sources", *map(str, PHOTOS),
    "--val-holdout", "0.06",
    "--epochs", "1000",
    "--steps-per-epoch", "100",
    "--lr-schedule", "linear-decay",
    "--decay-epochs", "0",
    "--warmup-steps", "100",
    "--snapshot-every", "1",
    "--val-size", "16",
    # Synthesis in the training process: its cost counts in every run's minutes, and no data
    # worker competes with the training threads for the two cores.
    "--num-workers", "0",
]  # fmt: skip


def minutes_trained(run: Path) -> float:
    """Minutes of the run's finished epochs (0 if it has none)."""
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return sum(json.loads(line)["seconds"] for line in lines) / 60


def train(name: str, out: Path, minutes: float) -> None:
    """Train run `name` until it has `minutes` of finished epochs (resuming what it has)."""
    run = out / name
    done = minutes_trained(run)
    if done > minutes - 1:
        print(f"{name}: {done:.1f} minutes trained, nothing to add")
        return
    command = [sys.executable, str(REPO / "train" / "train.py"), "--out", str(run)]
    command += ["--resume"] if done else []
    command += [*COMMON, *RUNS[name], "--stop-after-minutes", f"{minutes - done:.2f}"]
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    with open(out / f"{name}.log", "a") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)


def evaluate(name: str, out: Path) -> None:
    """Held-out synthetic and GoPro reports of the run's last snapshot (eval/epoch-NNN-*.json)."""
    run = out / name
    snapshots = sorted((run / "snapshots").glob("epoch-*.safetensors"))
    if not snapshots:
        print(f"{name}: no finished epoch to evaluate")
        return
    script = str(REPO / "train" / "evaluate.py")
    (run / "eval").mkdir(exist_ok=True)
    spread = str(REPO / "train" / "attention_spread.py")
    for report, command in (
        ("heldout", [script, "--synthetic-from", str(DATA / "sharp"), "--seed", "0"]),
        ("gopro", [script, "--data", str(DATA / "gopro")]),
        ("attention-real", [spread, "--photos", str(DATA / "real-blur")]),
    ):
        path = run / "eval" / f"{snapshots[-1].stem}-{report}.json"
        if not path.is_file():
            command = [sys.executable, *command, "--checkpoint", str(snapshots[-1])]
            subprocess.run([*command, "--json", str(path)], check=True, capture_output=True)


def summary(name: str, out: Path) -> dict | None:
    """The run's numbers: minutes, steps, validation and held-out gains."""
    run = out / name
    lines = (
        (run / "metrics.jsonl").read_text().splitlines()
        if (run / "metrics.jsonl").is_file()
        else []
    )
    if not lines:
        return None
    records = [json.loads(line) for line in lines]
    config = json.loads((run / "config.json").read_text())
    row = {
        "name": name,
        "flags": " ".join(RUNS[name]) or "(demo recipe)",
        "parameters": config["parameters"]["generator"],
        "steps": records[-1]["step"],
        "minutes": sum(r["seconds"] for r in records) / 60,
        "samples_per_second": records[-1]["samples_per_second"],
        "curve": [
            (
                sum(r["seconds"] for r in records[: i + 1]) / 60,
                r["val_psnr"] - r["val_psnr_blurred"],
            )
            for i, r in enumerate(records)
        ],
    }
    row["val_gain"] = row["curve"][-1][1]
    last = f"epoch-{records[-1]['epoch']:03d}"
    for report in ("heldout", "gopro"):
        path = run / "eval" / f"{last}-{report}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            row[report] = data["mean"]["psnr_gain"]
            row[f"{report}_worst"] = min(image["psnr_gain"] for image in data["images"])
            if data.get("attention"):
                row["a4_auroc_per_image"] = data["attention"]["auroc_per_image_mean"][-1]
    path = run / "eval" / f"{last}-attention-real.json"
    if path.is_file():
        row["a4_std_real"] = json.loads(path.read_text())["mean_std"][-1]
    return row


def print_table(rows: list[dict]) -> None:
    print(
        "| run | change | params | steps | minutes | samples/s | val gain (dB) "
        "| held-out gain (worst) | A4 AUROC per image | GoPro gain (worst) | A4 std, real photos |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        held = f"{r['heldout']:+.2f} ({r['heldout_worst']:+.2f})" if "heldout" in r else ""
        gopro = f"{r['gopro']:+.2f} ({r['gopro_worst']:+.2f})" if "gopro" in r else ""
        print(
            f"| {r['name']} | `{r['flags']}` | {r['parameters']:,} | {r['steps']} "
            f"| {r['minutes']:.1f} | {r['samples_per_second']:.1f} | {r['val_gain']:+.2f} "
            f"| {held} | {r.get('a4_auroc_per_image', float('nan')):.3f} | {gopro} "
            f"| {r.get('a4_std_real', float('nan')):.3f} |"
        )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    for r in rows:
        minutes, gains = zip(*r["curve"], strict=True)
        axis.plot(minutes, gains, marker=".", label=r["name"])
    axis.set_xlabel("CPU minutes (2 cores)")
    axis.set_ylabel("validation gain over blurred (dB)")
    axis.set_title("Matched runs: validation on held-out training photos")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="study directory (one run each)")
    parser.add_argument("--minutes", type=float, default=11.0, help="wall-clock budget per run")
    parser.add_argument("--only", nargs="+", choices=list(RUNS), help="these runs only")
    parser.add_argument("--table-only", action="store_true", help="train nothing, print the table")
    parser.add_argument("--png", type=Path, help="write the gain-against-minutes plot here")
    args = parser.parse_args(argv)
    names = args.only or list(RUNS)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for name in names:
            train(name, args.out, args.minutes)
            evaluate(name, args.out)
    rows = [row for row in (summary(name, args.out) for name in names) if row]
    print_table(rows)
    if args.png:
        plot(rows, args.png)


if __name__ == "__main__":
    main()
