"""train/train.py and bag/training.py: the files a run writes, resume equivalence, CLI overrides,
the learning-rate schedules and the epoch sampler."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image
from safetensors.torch import load_file

from bag.checkpoint import load_generator
from bag.data import SyntheticPairs
from bag.model import GeneratorConfig
from bag.sources import split_photos
from bag.synthesis import BlurSettings
from bag.training import EpochSampler, TrainConfig, learning_rate

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "train" / "train.py"
SMOKE = TrainConfig.smoke()
LOSSES = ("g_total", "content", "adversarial", "critic", "gp")
SCORES = ("val_psnr", "val_ssim", "val_psnr_blurred", "val_ssim_blurred")


def train_command(out: Path, *flags: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--preset", "smoke", "--out", str(out), *flags]


def run_train(out: Path, *flags: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        train_command(out, *flags), capture_output=True, text=True, env=env, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def without_timing(records: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "samples_per_second")} for r in records
    ]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One uninterrupted smoke run, the reference for the other tests."""
    out = tmp_path_factory.mktemp("smoke")
    return out, run_train(out)


def test_smoke_run_writes_every_file(smoke_run):
    out, result = smoke_run
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "smoke"
    assert TrainConfig.from_dict(config["train"]) == SMOKE
    assert config["world_size"] == 1 and config["steps_per_epoch"] == SMOKE.steps_per_epoch
    assert config["data"]["kind"] == "synthetic" and config["validation"]["size"] == SMOKE.val_size

    records = read_metrics(out)
    assert [r["epoch"] for r in records] == list(range(1, SMOKE.epochs + 1))
    assert [r["step"] for r in records] == [
        epoch * SMOKE.steps_per_epoch for epoch in range(1, SMOKE.epochs + 1)
    ]
    for record in records:
        assert set(record["losses"]) == set(LOSSES)
        values = [*record["losses"].values(), *(record[k] for k in SCORES), record["lr"]]
        assert all(math.isfinite(v) for v in values), record
        assert record["seconds"] > 0 and record["samples_per_second"] > 0
        assert 0 < record["val_ssim"] <= 1
    # The validation set is fixed: the blurred inputs score the same every epoch.
    assert len({r["val_psnr_blurred"] for r in records}) == 1

    snapshots = sorted((out / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snapshots] == [
        f"epoch-{epoch:03d}.safetensors" for epoch in range(1, SMOKE.epochs + 1)
    ]
    for record, path in zip(records, snapshots, strict=True):
        generator, metadata = load_generator(path)
        assert generator.config == SMOKE.generator
        assert metadata["epoch"] == record["epoch"]
        assert metadata["val_psnr"] == pytest.approx(record["val_psnr"])
    final = load_file(out / "generator.safetensors")
    # Snapshots are stored in half precision (they only feed the attention-evolution view).
    assert_same_tensors(
        {name: tensor.half() for name, tensor in final.items()}, load_file(snapshots[-1])
    )
    first = load_file(snapshots[0])
    assert any(not torch.equal(first[name], final[name]) for name in final), "nothing trained"

    state = torch.load(out / "resume.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == SMOKE.epochs and state["step"] == records[-1]["step"]
    assert_same_tensors(state["generator"], final)
    assert without_timing(state["metrics"]) == without_timing(records)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert "Training finished" in result.stdout


def test_stopped_and_resumed_run_is_bit_identical(smoke_run, tmp_path):
    reference, _ = smoke_run
    out = tmp_path / "run"
    stopped = run_train(out, "--stop-after-epoch", "1")
    assert "resume with --resume" in stopped.stdout
    assert len(read_metrics(out)) == 1 and not (out / "generator.safetensors").exists()
    resumed = run_train(out, "--resume")
    assert "resuming after epoch 1" in resumed.stdout
    assert_same_tensors(
        load_file(out / "generator.safetensors"), load_file(reference / "generator.safetensors")
    )
    state = torch.load(out / "resume.pt", weights_only=True)
    reference_state = torch.load(reference / "resume.pt", weights_only=True)
    assert_same_tensors(state["critic"], reference_state["critic"])
    assert without_timing(read_metrics(out)) == without_timing(read_metrics(reference))
    sessions = json.loads((out / "config.json").read_text())["sessions"]
    assert [s["start_epoch"] for s in sessions] == [0, 1]
    assert "--stop-after-epoch 1" in sessions[0]["command"] and "--resume" in sessions[1]["command"]


def test_finished_run_extended_with_more_epochs(smoke_run, tmp_path):
    # A second stage: the finished run goes on for 2 more epochs at another crop size; the
    # cosine schedule over the longer run restarts warm, and config.json keeps both commands.
    reference, _ = smoke_run
    out = tmp_path / "extended"
    shutil.copytree(reference, out)
    result = run_train(out, "--resume", "--epochs", str(SMOKE.epochs + 2), "--crop", "48")
    assert "crop changed from 32 to 48" in result.stdout
    records = read_metrics(out)
    assert without_timing(records[: SMOKE.epochs]) == without_timing(read_metrics(reference))
    assert [r["epoch"] for r in records] == list(range(1, SMOKE.epochs + 3))
    assert records[SMOKE.epochs]["lr"] > records[SMOKE.epochs - 1]["lr"]
    assert records[-1]["lr"] < records[SMOKE.epochs]["lr"]
    assert (out / "snapshots" / f"epoch-{SMOKE.epochs + 2:03d}.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["crop"] == 48 and config["train"]["epochs"] == SMOKE.epochs + 2
    assert [s["start_epoch"] for s in config["sessions"]] == [0, SMOKE.epochs]
    assert "--crop 48" in config["sessions"][1]["command"]
    assert (
        config["sessions"][0] == json.loads((reference / "config.json").read_text())["sessions"][0]
    )


def test_run_from_before_sessions_keeps_its_command(smoke_run, tmp_path):
    reference, _ = smoke_run
    out = tmp_path / "older"
    shutil.copytree(reference, out)
    config = json.loads((out / "config.json").read_text())
    # As config.json was written before sessions were recorded: the last one at the top level.
    (first,) = config.pop("sessions")
    config["command"], config["git_commit"] = first["command"], first["git_commit"]
    (out / "config.json").write_text(json.dumps(config))
    run_train(out, "--resume", "--epochs", str(SMOKE.epochs + 1))
    sessions = json.loads((out / "config.json").read_text())["sessions"]
    assert sessions[0] == {"command": config["command"], "git_commit": config["git_commit"]}
    assert sessions[1]["start_epoch"] == SMOKE.epochs


def test_data_workers_give_the_same_run(smoke_run, tmp_path):
    # Workers run with one-thread pools; the items, and so the weights, must not change.
    reference, _ = smoke_run
    out = tmp_path / "workers"
    run_train(out, "--num-workers", "2")
    assert_same_tensors(
        load_file(out / "generator.safetensors"), load_file(reference / "generator.safetensors")
    )
    assert json.loads((out / "config.json").read_text())["train"]["num_workers"] == 2


def test_reused_synthesis_gives_the_same_run_with_workers_and_after_resume(tmp_path):
    # With reuse the copies of a pair must reach the worker that rendered it; the items, and
    # so the weights, do not depend on the workers or on a stop and resume.
    flags = ("--synthesis-reuse", "4", "--epochs", "2")
    run_train(tmp_path / "serial", *flags, "--num-workers", "0")
    run_train(tmp_path / "workers", *flags, "--num-workers", "2", "--stop-after-epoch", "1")
    run_train(tmp_path / "workers", "--resume", "--num-workers", "2")
    assert_same_tensors(
        load_file(tmp_path / "serial" / "generator.safetensors"),
        load_file(tmp_path / "workers" / "generator.safetensors"),
    )
    assert without_timing(read_metrics(tmp_path / "serial")) == without_timing(
        read_metrics(tmp_path / "workers")
    )


def test_stop_after_minutes_ends_a_session_at_an_epoch(tmp_path):
    out = tmp_path / "run"
    result = run_train(out, "--stop-after-minutes", "0.0001")
    assert "stopped after epoch 1 (--stop-after-minutes)" in result.stdout
    assert len(read_metrics(out)) == 1 and not (out / "generator.safetensors").exists()
    run_train(out, "--resume")
    assert [r["epoch"] for r in read_metrics(out)] == list(range(1, SMOKE.epochs + 1))


def test_photo_folders_train_and_a_held_out_share_validates(tmp_path):
    rng = np.random.default_rng(0)
    folders = [tmp_path / "set-a", tmp_path / "set-b"]
    for folder in folders:
        folder.mkdir()
        for index in range(10):
            photo = (rng.random((60, 70, 3)) * 255).astype(np.uint8)
            Image.fromarray(photo).save(folder / f"{index}.png")
    out = tmp_path / "run"
    run_train(out, "--sources", *map(str, folders), "--val-holdout", "0.3", "--epochs", "1")
    config = json.loads((out / "config.json").read_text())
    training, held_out = split_photos(folders, 0.3)
    assert config["train"]["sources"] == [str(folder) for folder in folders]
    assert config["data"]["user_images"] == len(training) and held_out
    assert config["data"]["held_out_images"] == len(held_out)
    assert config["validation"]["photos"] == "held out of sources"
    assert config["validation"]["held_out_photos"] == len(held_out)
    # Validation scores differ from a run validated on the built-in set.
    built_in = tmp_path / "built-in"
    run_train(built_in, "--sources", *map(str, folders), "--epochs", "1")
    assert read_metrics(out)[0]["val_psnr_blurred"] != read_metrics(built_in)[0]["val_psnr_blurred"]
    result = run_train(tmp_path / "bad", "--val-holdout", "0.3", check=False)
    assert result.returncode == 2 and "give --sources too" in result.stderr


def test_killed_run_resumes_to_the_same_weights(smoke_run, tmp_path):
    reference, _ = smoke_run
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        train_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 120
    while not (out / "resume.pt").exists() and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)  # while it ends epoch 1's files or trains epoch 2
    assert process.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "generator.safetensors").exists()
    assert "resuming after epoch" in run_train(out, "--resume").stdout
    assert_same_tensors(
        load_file(out / "generator.safetensors"), load_file(reference / "generator.safetensors")
    )
    assert without_timing(read_metrics(out)) == without_timing(read_metrics(reference))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_run_and_resume_ends_with_the_same_weights(smoke_run, tmp_path, signum):
    # What a scheduler or a Space sends (SIGTERM), or Ctrl-C: the run stops at the next step,
    # keeps its last complete epoch, says so, and --resume ends as an uninterrupted run.
    reference, _ = smoke_run
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        train_command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while not (out / "resume.pt").exists() and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signum)  # while it ends epoch 1's files or trains epoch 2
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, "not stopped by the signal: " + stdout + stderr
    assert f"note: {signal.Signals(signum).name} stopped training" in stdout
    assert "Training stopped (resume with --resume)" in stdout and "Traceback" not in stderr
    kept = len(read_metrics(out))
    assert 1 <= kept < SMOKE.epochs and not (out / "generator.safetensors").exists()
    state = torch.load(out / "resume.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == kept and state["step"] == kept * SMOKE.steps_per_epoch
    assert f"resuming after epoch {kept}" in run_train(out, "--resume").stdout
    assert_same_tensors(
        load_file(out / "generator.safetensors"), load_file(reference / "generator.safetensors")
    )
    assert without_timing(read_metrics(out)) == without_timing(read_metrics(reference))


def test_a_second_signal_does_what_the_signal_would_have_done():
    script = load_script("train/train.py")
    # Python's own SIGINT handler, whatever an earlier test of the suite left installed.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = script.StopRequest()
    try:
        signal.raise_signal(signal.SIGTERM)  # the first one only asks
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # the handler from before, put back and called
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        stop.restore()
        signal.signal(signal.SIGINT, outer)


def test_overrides_on_the_command_line_reach_the_run(tmp_path):
    out = tmp_path / "run"
    flags = ("--epochs", "1", "--crop", "40", "--batch-size", "3", "--amp", "--growth-rate", "6")
    run_train(out, *flags)
    config = TrainConfig.from_dict(json.loads((out / "config.json").read_text())["train"])
    expected = dataclasses.replace(
        SMOKE,
        epochs=1,
        crop=40,
        batch_size=3,
        amp=True,
        generator=dataclasses.replace(SMOKE.generator, growth_rate=6),
    )
    assert config == expected
    generator, _ = load_generator(out / "generator.safetensors")
    assert generator.config.growth_rate == 6
    (record,) = read_metrics(out)
    assert all(math.isfinite(v) for v in record["losses"].values())  # bf16 autocast on CPU


def test_refuses_to_overwrite_a_run_without_resume(smoke_run):
    out, _ = smoke_run
    result = run_train(out, check=False)
    assert result.returncode == 2 and "already holds a run" in result.stderr


def test_parser_maps_every_flag_to_a_config_field():
    script = load_script("train/train.py")
    parser = script.build_parser()
    args = parser.parse_args(
        ["--preset", "smoke", "--out", "x", "--lr", "3e-4", "--betas", "0.5", "0.99",
         "--no-compile", "--content-loss", "l1", "--model", "compact", "--no-spatial-attention"]
    )  # fmt: skip
    config = script.resolve_config(args, script.PRESETS[args.preset]())
    assert config == dataclasses.replace(
        SMOKE,
        lr=3e-4,
        betas=(0.5, 0.99),
        compile=False,
        content_loss="l1",
        generator=dataclasses.replace(GeneratorConfig.compact(), spatial_attention=False),
    )
    args = parser.parse_args(["--out", "x", "--lr-schedule", "step"])
    with pytest.raises(ValueError, match="lr_schedule"):
        script.resolve_config(args, TrainConfig.demo())
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--epochs", "three"])


def test_train_config_round_trips_and_checks_values():
    for config in (TrainConfig.demo(), TrainConfig.paper_gopro(), TrainConfig.smoke()):
        assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig.paper_gopro().generator == GeneratorConfig.paper()
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="content_loss"):
        TrainConfig(content_loss="vgg")
    with pytest.raises(ValueError, match="adversarial_weight"):
        TrainConfig(critic_steps=0)


def test_still_probability_reaches_the_training_blur():
    """--blur-still-probability decides how many training crops keep a sharp background."""
    source = np.random.default_rng(0).random((96, 96, 3), dtype=np.float32)

    def sharp_fractions(probability: float) -> list[float]:
        settings = TrainConfig(blur_still_probability=probability).blur_settings()
        pairs = SyntheticPairs([source], crop=48, length=12, seed=3, settings=settings)
        return [float((pairs[i]["blur_extent"] == 0).float().mean()) for i in range(len(pairs))]

    assert max(sharp_fractions(0.0)) == 0  # the camera always moves: no pixel is sharp
    assert float(np.median(sharp_fractions(1.0))) > 0.5  # only the foreground layers move
    # A run from before the field existed resumes with the old recipe's value.
    old = {k: v for k, v in TrainConfig.demo().to_dict().items() if k != "blur_still_probability"}
    assert TrainConfig.from_dict(old).blur_settings().still_probability == 0.1
    with pytest.raises(ValueError, match="blur_still_probability"):
        TrainConfig(blur_still_probability=1.5)


def test_calibrated_blur_reaches_the_training_blur_only():
    config = TrainConfig(calibrated_blur=True, blur_still_probability=0.2)
    settings = config.blur_settings()
    calibrated = BlurSettings.calibrated()
    assert settings.camera_path_px == calibrated.camera_path_px != BlurSettings().camera_path_px
    assert settings.sub_frames == calibrated.sub_frames
    assert settings.still_probability == 0.2
    assert settings.srgb_average_probability == config.blur_srgb_probability
    assert TrainConfig().blur_settings().camera_path_px == BlurSettings().camera_path_px


def test_sources_of_older_runs_load_as_a_tuple():
    old = {**TrainConfig.demo().to_dict(), "sources": "/photos"}
    assert TrainConfig.from_dict(old).sources == ("/photos",)
    assert TrainConfig.from_dict({**old, "sources": ""}).sources == ()
    with pytest.raises(ValueError, match="val_holdout"):
        TrainConfig(sources=("/photos",), val_holdout=1.0)


def test_paper_schedule_holds_then_decays_linearly_to_zero():
    config = TrainConfig.paper_gopro()  # 300 epochs, decay over the last 150, no warmup
    steps = 10
    rates = [learning_rate(config, step, steps) for step in range(300 * steps)]
    assert set(rates[: 150 * steps]) == {config.lr}
    decay = rates[150 * steps :]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert decay[0] == pytest.approx(config.lr) and 0 < decay[-1] < config.lr / 1000
    assert decay[75 * steps] == pytest.approx(config.lr / 2)


def test_cosine_schedule_warms_up_then_falls_to_zero():
    config = dataclasses.replace(TrainConfig.demo(), epochs=4, warmup_steps=20)
    steps = 50
    rates = [learning_rate(config, step, steps) for step in range(4 * steps)]
    assert rates[0] == pytest.approx(config.lr / 20) and rates[19] == pytest.approx(config.lr)
    assert all(a < b for a, b in zip(rates[:20], rates[1:20], strict=False))
    after = rates[19:]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))
    assert rates[-1] < config.lr * 1e-3


@pytest.mark.parametrize("fresh", [True, False])
def test_sampler_shards_exactly_like_one_big_batch(fresh):
    steps, batch, items = 5, 4, 1000 if fresh else 7

    def epoch_indices(epoch: int, world: int) -> list[list[int]]:
        samplers = [
            EpochSampler(items, steps, batch // world, 0, fresh, rank=rank, world_size=world)
            for rank in range(world)
        ]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        return [list(sampler) for sampler in samplers]

    (single,) = epoch_indices(2, 1)
    first, second = epoch_indices(2, 2)
    merged = []
    for step in range(steps):  # step s of the big batch = rank 0's step s + rank 1's step s
        merged += first[2 * step : 2 * step + 2] + second[2 * step : 2 * step + 2]
    assert merged == single
    assert epoch_indices(2, 1) == [single]  # a pure function of (seed, epoch, rank)
    (epoch_1,) = epoch_indices(1, 1)
    assert epoch_1 != single
    if fresh:  # fresh draws: no index is ever reused
        assert not set(single) & set(epoch_1)
    else:  # seeded permutations: each pass over the data sees every item once
        run = epoch_1 + single
        passes = [run[start : start + items] for start in range(0, len(run) - items + 1, items)]
        assert all(sorted(p) == list(range(items)) for p in passes)
        assert len({tuple(p) for p in passes}) == len(passes)


THREADS_PROBE = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("train_script", sys.argv[1])
module = sys.modules["train_script"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import torch
print(os.environ["OMP_NUM_THREADS"], os.environ.get("MKL_NUM_THREADS"), torch.get_num_threads())
"""


@pytest.mark.parametrize(("user_value", "expected"), [(None, "1 1 1"), ("2", "2 None 2")])
def test_thread_pools_start_narrow_unless_the_user_set_them(user_value, expected):
    # Forked data workers inherit the pools; the script narrows them before torch is imported.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    if user_value:
        env["OMP_NUM_THREADS"] = user_value
    result = subprocess.run(
        [sys.executable, "-c", THREADS_PROBE, str(SCRIPT)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert result.stdout.strip() == expected


def _damaged_pickle(data: bytes) -> bytes:
    """The same zip archive with its pickle replaced by noise: the archive reads, the state not."""
    source, damaged = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(damaged, "w") as archive:
        for info in source.infolist():
            noise = info.filename.endswith("data.pkl")
            archive.writestr(info, b"\x80\x02noise" if noise else source.read(info))
    return damaged.getvalue()


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda data: b"", "is empty"),
        (_damaged_pickle, "is damaged ("),
        (lambda data: data[: len(data) // 2], "is truncated or was not written by torch.save"),
        (lambda data: b"not a resume state\n", "is truncated or was not written by torch.save"),
        (lambda data: None, "is not a resume state of train/train.py"),
    ],
    ids=["empty", "damaged", "truncated", "text", "other-torch-file"],
)
def test_a_bad_resume_state_ends_in_one_sentence(tmp_path, spoil, message):
    script = load_script("train/train.py")
    path = tmp_path / "resume.pt"
    state = {"format": script.RESUME_FORMAT, "version": script.RESUME_VERSION, "step": 3}
    script.save_resume_state(path, state)
    assert script.load_resume_state(path)["step"] == 3
    spoiled = spoil(path.read_bytes())
    if spoiled is None:
        torch.save({"weights": torch.zeros(2)}, path)  # a torch file, but not this script's
    else:
        path.write_bytes(spoiled)
    with pytest.raises(SystemExit) as stop:
        script.load_resume_state(path)
    text = str(stop.value.code)
    assert text.startswith(f"error: {path} ") and message in text
    assert "restore it from a copy, or start the run again with another --out" in text
