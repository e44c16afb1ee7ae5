"""App-view benchmark: time of the Training-evolution view and of one Explain click.

    PYTHONPATH=. .venv/bin/python bench/app_views.py [--checkpoint PATH] [--snapshots DIR]
        [--json OUT]

(PYTHONPATH=.: from the repository root, so that the app package `explorer` imports.)

Targets (issue: the app): the evolution view (every shipped snapshot on a 1280x720 photo, at the
app's default downscale) under 15 s, and an attribution with the app's default settings under
10 s, both on 2 CPU cores. Also the slowest click the Explain tab allows: every slider at its
maximum, which `explorer.explain_settings.resolve` bounds (fewer path steps) to what it expects
to take under 10 s, run as the tab runs it, with the expected and the measured time. The photo
is bench/inference.py's: a real GoPro frame from ../shared/data when it is there, else a smooth
pattern, at 1280x720. The three run in interleaved rounds (bench/inference.py's `interleaved`)
and each keeps its median.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import torch
from inference import interleaved, test_image  # bench/inference.py, beside this script

from bag import load_generator
from bag.attention import attention_evolution
from bag.attribution import AttributionSettings, explain_patch
from bag.inference import DEFAULT_CHECKPOINT
from bag.runs import find_snapshots
from explorer.explain_settings import EXPLAIN_BUDGET_S, LIMITS, Clock, resolve

ROOT = Path(__file__).resolve().parent.parent

EVOLUTION_MAX_SIDE = 512  # the app's default (explorer.config.EVOLUTION_MAX_SIDE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--snapshots", type=Path, default=ROOT / "checkpoints" / "snapshots")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    image, source = test_image(720, 1280)
    snapshots = find_snapshots(args.snapshots)
    if not snapshots:
        raise SystemExit(f"error: no epoch-NNN.safetensors snapshots in {args.snapshots}")
    generator, _ = load_generator(args.checkpoint)
    generator.eval()
    height, width = image.shape[:2]
    clock = Clock()
    largest = {name: high for name, (_, high) in LIMITS.items()}
    request = resolve((height, width), width / 2, height / 2, largest, "edges", clock)

    def restored(x: torch.Tensor) -> torch.Tensor:
        return generator(x).image

    seconds = interleaved(
        {
            "evolution": lambda: attention_evolution(image, snapshots, max_side=EVOLUTION_MAX_SIDE),
            "explain": lambda: explain_patch(restored, image, (width / 2, height / 2)),
            "slowest": lambda: explain_patch(restored, image, request.point, request.settings),
        },
        args.repeats,
        torch.device("cpu"),
    )
    report = {
        "image": f"{source} ({width}x{height})",
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "evolution": {
            "snapshots": len(snapshots),
            "max_side": EVOLUTION_MAX_SIDE,
            "median_seconds": round(seconds["evolution"], 2),
            "target_seconds": 15,
        },
        "explain": {
            "settings": dataclasses.asdict(AttributionSettings()),
            "median_seconds": round(seconds["explain"], 2),
            "target_seconds": 10,
        },
        "explain_slowest_allowed": {
            "asked": largest,
            "used": dataclasses.asdict(request.settings),
            "expected_seconds": round(clock.expected(request.settings, request.crop_pixels), 2),
            "median_seconds": round(seconds["slowest"], 2),
            "target_seconds": EXPLAIN_BUDGET_S,
        },
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
