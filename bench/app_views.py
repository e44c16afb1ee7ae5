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
pattern, at 1280x720. Each measurement is repeated and the median kept.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from inference import test_image  # bench/inference.py, beside this script

from bag import load_generator
from bag.attention import attention_evolution
from bag.attribution import AttributionSettings, explain_patch
from bag.inference import DEFAULT_CHECKPOINT
from bag.runs import find_snapshots
from explorer.explain_settings import EXPLAIN_BUDGET_S, LIMITS, Clock, resolve

ROOT = Path(__file__).resolve().parent.parent

EVOLUTION_MAX_SIDE = 512  # the app's default (explorer.config.EVOLUTION_MAX_SIDE)


def median_seconds(run, repeats: int) -> float:
    """Median wall-clock seconds of `repeats` calls of `run` (after one warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    settings = AttributionSettings()
    height, width = image.shape[:2]

    evolution = median_seconds(
        lambda: attention_evolution(image, snapshots, max_side=EVOLUTION_MAX_SIDE), args.repeats
    )
    explain = median_seconds(
        lambda: explain_patch(lambda x: generator(x).image, image, (width / 2, height / 2)),
        args.repeats,
    )
    clock = Clock()
    largest = {name: high for name, (_, high) in LIMITS.items()}
    request = resolve((height, width), width / 2, height / 2, largest, "edges", clock)
    worst = median_seconds(
        lambda: explain_patch(lambda x: generator(x).image, image, request.point, request.settings),
        args.repeats,
    )
    report = {
        "image": f"{source} ({width}x{height})",
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "evolution": {
            "snapshots": len(snapshots),
            "max_side": EVOLUTION_MAX_SIDE,
            "median_seconds": round(evolution, 2),
            "target_seconds": 15,
        },
        "explain": {
            "settings": {
                "patch_size": settings.patch_size,
                "crop_size": settings.crop_size,
                "steps": settings.steps,
            },
            "median_seconds": round(explain, 2),
            "target_seconds": 10,
        },
        "explain_slowest_allowed": {
            "asked": largest,
            "used": {
                "patch_size": request.settings.patch_size,
                "crop_size": request.settings.crop_size,
                "steps": request.settings.steps,
            },
            "expected_seconds": round(clock.expected(request.settings, request.crop_pixels), 2),
            "median_seconds": round(worst, 2),
            "target_seconds": EXPLAIN_BUDGET_S,
        },
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
