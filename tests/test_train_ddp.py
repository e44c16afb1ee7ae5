"""train/train.py under torchrun: two CPU processes (gloo) train like one process with the
combined batch, and only rank 0 writes the run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bag.checkpoint import load_generator
from bag.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train" / "train.py"
SMOKE = TrainConfig.smoke()


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_two_processes_train_like_one_with_the_combined_batch(tmp_path):
    assert SMOKE.batch_size % 2 == 0
    per_process = str(SMOKE.batch_size // 2)
    distributed = run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(SCRIPT), "--preset", "smoke", "--out", str(tmp_path / "ddp"),
         "--batch-size", per_process]
    )  # fmt: skip
    single = run(
        [sys.executable, str(SCRIPT), "--preset", "smoke", "--out", str(tmp_path / "single")]
    )

    # Written once, by rank 0.
    ddp = tmp_path / "ddp"
    config = json.loads((ddp / "config.json").read_text())
    assert config["world_size"] == 2 and config["global_batch_size"] == SMOKE.batch_size
    lines = (ddp / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, SMOKE.epochs + 1))
    assert len(list((ddp / "snapshots").glob("*.safetensors"))) == SMOKE.epochs
    assert distributed.stdout.count("Training finished") == 1

    # Same batches, same penalty draws, gradients averaged over processes: the same training
    # up to float rounding (summation order). The first epoch's losses agree to float32
    # precision; Adam then amplifies the rounding a little (it rescales every parameter's tiny
    # gradient to a full step), so the final networks agree closely, not exactly. For scale:
    # another seed changes the restored image by about 0.1.
    ddp_records = [json.loads(line) for line in lines]
    single_records = [
        json.loads(line)
        for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()
    ]
    for name, value in single_records[0]["losses"].items():
        assert ddp_records[0]["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    ddp_generator, _ = load_generator(ddp / "generator.safetensors")
    single_generator, _ = load_generator(tmp_path / "single" / "generator.safetensors")
    image = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ddp_generator(image).image - single_generator(image).image).abs().max() < 5e-3
    assert "Training finished" in single.stdout
