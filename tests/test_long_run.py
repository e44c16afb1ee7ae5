"""train/long_run.py: the long run saved into the repository and restored from it, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import load_script

from bag.checkpoint import load_generator, save_generator
from bag.model import Generator, GeneratorConfig
from bag.run_files import RESUME_FORMAT, RESUME_VERSION, save_resume_state

resume_parts = load_script("train/resume_parts.py")  # long_run imports it by name
long_run = load_script("train/long_run.py")


def make_run(folder: Path, epochs: int) -> None:
    """A run directory as train.py leaves it after `epochs` epochs (contents made up)."""
    (folder / "snapshots").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"train": {"epochs": 80}}))
    rows = [
        {"epoch": e, "step": 400 * e, "val_psnr": 22 + e / 10, "val_psnr_blurred": 22.0,
         "seconds": 330.0}
        for e in range(1, epochs + 1)
    ]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "resume.pt").write_bytes(bytes(range(256)) * 90)
    for e in (1, epochs):
        (folder / "snapshots" / f"epoch-{e:03d}.safetensors").write_bytes(b"w%d" % e)


def test_save_then_restore_gives_the_same_run(tmp_path):
    run, tracked, fresh = tmp_path / "run", tmp_path / "tracked", tmp_path / "fresh"
    make_run(run, epochs=3)
    log = tmp_path / "part1.log"
    log.write_text("training\nepoch 1: 10%\repoch 1: 100%\ndone\n")
    long_run.save(run, tracked, [log], part_bytes=10_000)
    assert len(list((tracked / "resume").glob("resume.pt.part*"))) == 3  # 23,040 bytes
    assert (tracked / "logs" / "part1.log").read_text() == "training\nepoch 1: 100%\ndone\n"
    long_run.restore(tracked, fresh)
    for name in ("resume.pt", "config.json", "metrics.jsonl", "snapshots/epoch-003.safetensors"):
        assert (fresh / name).read_bytes() == (run / name).read_bytes(), name
    assert "3 of 80 epochs, 16 training minutes" in long_run.status(tracked)
    assert "validation gain +0.30 dB" in long_run.status(tracked)


def test_restore_never_replaces_a_run_that_is_further_on(tmp_path):
    run, tracked = tmp_path / "run", tmp_path / "tracked"
    make_run(run, epochs=2)
    long_run.save(run, tracked, [])
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() * 2)  # 4 epochs
    (run / "resume.pt").write_bytes(b"newer")
    long_run.restore(tracked, run)
    assert (run / "resume.pt").read_bytes() == b"newer"


def test_restore_and_save_say_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="no resume.pt"):
        long_run.save(tmp_path / "empty", tmp_path / "tracked", [])
    make_run(tmp_path / "tracked", epochs=1)  # metrics but no saved parts
    with pytest.raises(ValueError, match="no saved resume state"):
        long_run.restore(tmp_path / "tracked", tmp_path / "run")


def test_finish_rebuilds_the_float32_generator_of_an_ended_run(tmp_path):
    tracked, run = tmp_path / "tracked", tmp_path / "run"
    make_run(tracked, epochs=2)
    (tracked / "config.json").write_text(json.dumps({"train": {"epochs": 2}}))
    torch.manual_seed(0)
    trained = Generator(GeneratorConfig(base_channels=4, growth_rate=4, dense_layers=2))
    save_generator(trained, tracked / "snapshots" / "epoch-002.safetensors", {"epoch": 2},
                   dtype=torch.float16)  # fmt: skip
    state = {"format": RESUME_FORMAT, "version": RESUME_VERSION, "epoch": 2,
             "generator": trained.state_dict()}  # fmt: skip
    save_resume_state(tmp_path / "resume.pt", state)
    resume_parts.split(tmp_path / "resume.pt", tracked / "resume", 10_000)
    rebuilt, metadata = load_generator(long_run.finish(tracked, run))
    assert metadata["epoch"] == 2
    for name, weight in trained.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], weight), name  # float32, not the snapshot's

    (tracked / "config.json").write_text(json.dumps({"train": {"epochs": 80}}))
    with pytest.raises(ValueError, match="2 of 80 epochs: the run has not ended"):
        long_run.finish(tracked, run)
