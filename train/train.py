"""Train a BAG generator against a WGAN-GP PatchGAN critic (paper §4.1), on one process or many.

Presets (every TrainConfig field is also a flag: --crop 128, --amp/--no-amp, --betas 0.5 0.999):
  demo          the recipe of the shipped checkpoints: compact generator, synthetic blur on the
                built-in sharp sources, Charbonnier + FFT content loss, short cosine schedule
  paper-gopro   the paper's recipe on GoPro (needs --data GOPRO_ROOT): paper-size generator,
                Adam 1e-4, batch 1, 256 crops, 300 epochs (linear decay over the last 150),
                5 critic updates per generator update, L = L_GAN + 100 * perceptual
  smoke         a few seconds on a CPU (tiny model and crops), for tests

  python train/train.py --preset demo --out runs/demo
  python train/train.py --out runs/demo --resume            # continue after a crash or a stop
  python train/train.py --preset paper-gopro --data GOPRO_Large --out runs/paper
  torchrun --nproc_per_node 2 train/train.py --preset smoke --out runs/smoke-ddp

Writes into --out: config.json, metrics.jsonl (one line per finished epoch),
snapshots/epoch-NNN.safetensors (generator only), generator.safetensors (the final generator)
and resume.pt (optimiser and critic state for --resume). Every file is written to a temporary
name and renamed, so killing the process at any moment loses at most the epoch in progress.
Randomness is a function of (seed, epoch), so a resumed run ends with the same weights, bit for
bit on a CPU, as one that was never interrupted.

SIGTERM (what a scheduler or a Space sends) and Ctrl-C stop training at the next optimiser
step; --resume then continues from the last complete epoch. A second signal stops at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# DataLoader workers are forked copies of this process, each with OpenMP and BLAS thread pools
# as wide as the machine: on a 16-core GPU machine 14 workers x 16 busy-waiting threads made
# 36 samples/s, one thread each made 360. So every pool starts with one thread, unless the user
# set OMP_NUM_THREADS, and set_up_processes gives torch's pool back to training on a CPU.
# (Spawned workers would not need this, but each gets a pickled copy of every source image:
# 8.5 s to the first batch and +450 MB here with 4 workers, against 0.3 s when forked.)
THREADS_SET_BY_USER = "OMP_NUM_THREADS" in os.environ
if not THREADS_SET_BY_USER:
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bag.checkpoint import save_generator  # noqa: E402
from bag.losses import (  # noqa: E402
    VGGWeightsUnavailable,
    attention_loss,
    critic_loss,
    generator_adversarial_loss,
    gradient_penalty,
)
from bag.model import GeneratorConfig, GeneratorOutput, count_parameters  # noqa: E402
from bag.run_files import (  # noqa: E402
    RESUME_FORMAT,
    RESUME_VERSION,
    ResumeStateError,
    append_metrics,
    git_commit,
    metrics_lines,
    read_resume_state,
    save_resume_state,
    write_atomic,
)
from bag.sources import split_photos  # noqa: E402
from bag.training import (  # noqa: E402
    Models,
    Processes,
    TrainConfig,
    build_models,
    content_loss_fn,
    learning_rate,
    memory_format,
    set_up_processes,
)
from bag.training_data import (  # noqa: E402
    TrainingData,
    ValidationSet,
    training_data,
    training_loader,
    validation_scores,
    validation_set,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "demo": TrainConfig.demo,
    "paper-gopro": TrainConfig.paper_gopro,
    "smoke": TrainConfig.smoke,
}
MODELS = {
    "tiny": GeneratorConfig.tiny,
    "compact": GeneratorConfig.compact,
    "paper": GeneratorConfig.paper,
}
LOSS_NAMES = ("g_total", "content", "adversarial", "critic", "gp")


# ----------------------------------------------------------------------------- command line


def add_dataclass_flags(group: argparse._ArgumentGroup, cls: type, skip: tuple = ()) -> None:
    """One flag per field of `cls` (--field-name); defaults stay unset so presets fill them."""
    presets = {name: make() for name, make in PRESETS.items()}
    for item in dataclasses.fields(cls):
        if item.name in skip:
            continue
        values = {
            name: getattr(preset.generator if cls is GeneratorConfig else preset, item.name)
            for name, preset in presets.items()
        }
        example = values["demo"]
        options: dict[str, Any] = {
            "default": argparse.SUPPRESS,
            "help": ", ".join(f"{name} {value!r}" for name, value in values.items()),
        }
        if isinstance(example, bool):
            options["action"] = argparse.BooleanOptionalAction
        elif item.name == "sources":  # any number of folders
            options.update(nargs="+", metavar="FOLDER")
        elif isinstance(example, tuple):
            options.update(type=type(example[0]), nargs=len(example))
        else:
            options["type"] = type(example)
        group.add_argument("--" + item.name.replace("_", "-"), **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=PRESETS, default=None, help="recipe (default: demo)")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last complete epoch (its config.json is the "
        "base; flags given here override it); starts afresh if --out holds no run yet",
    )
    parser.add_argument(
        "--stop-after-epoch",
        type=int,
        default=0,
        metavar="N",
        help="exit after finishing epoch N, resumable with --resume (to split a long run)",
    )
    parser.add_argument(
        "--stop-after-minutes",
        type=float,
        default=0,
        metavar="M",
        help="exit after the last epoch that ends within M minutes of this session's start "
        "(judged by the epoch before it), resumable with --resume",
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        default=argparse.SUPPRESS,
        help="generator size preset; the generator flags below override single fields",
    )
    add_dataclass_flags(
        parser.add_argument_group("recipe (TrainConfig fields; help lists each preset's value)"),
        TrainConfig,
        skip=("generator",),
    )
    add_dataclass_flags(
        parser.add_argument_group("generator architecture (GeneratorConfig fields)"),
        GeneratorConfig,
    )
    return parser


def resolve_config(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """`base` with the fields given on the command line replaced."""
    given = vars(args)
    generator = MODELS[given["model"]]() if "model" in given else base.generator
    generator = dataclasses.replace(
        generator,
        **{f.name: given[f.name] for f in dataclasses.fields(GeneratorConfig) if f.name in given},
    )
    overrides = {
        f.name: given[f.name]
        for f in dataclasses.fields(TrainConfig)
        if f.name in given and f.name != "generator"
    }
    for name in ("betas", "sources"):
        if name in overrides:
            overrides[name] = tuple(overrides[name])
    return dataclasses.replace(base, generator=generator, **overrides)


def read_config(
    args: argparse.Namespace, parser: argparse.ArgumentParser, resuming: bool
) -> tuple[str, TrainConfig, TrainConfig, list[dict]]:
    """(preset, base, config, sessions): `base` is the preset's recipe, or the saved one when
    resuming; `config` is `base` with the flags on top; `sessions` are the run's earlier
    sessions, each with its command and commit."""
    out, config_path = args.out, args.out / "config.json"
    preset, sessions = args.preset or "demo", []
    if resuming and config_path.is_file():
        try:
            saved = json.loads(config_path.read_text())
            base, preset = TrainConfig.from_dict(saved["train"]), saved["preset"]
            sessions = list(saved.get("sessions") or [])
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            parser.error(f"{config_path} is not a config this script wrote ({error})")
        if not sessions:  # older run directories kept only the last session, at the top level
            sessions = [{key: saved[key] for key in ("command", "git_commit") if key in saved}]
        if args.preset not in (None, preset):
            parser.error(f"{out} holds a {preset} run; --resume continues it (drop --preset)")
    else:
        base = PRESETS[preset]()
        if not args.resume and ((out / "resume.pt").exists() or (out / "metrics.jsonl").exists()):
            parser.error(
                f"{out} already holds a run: pass --resume to continue it, or another --out"
            )
    try:
        config = resolve_config(args, base)
    except ValueError as error:
        parser.error(str(error))
    if preset == "paper-gopro" and not config.data:
        parser.error("the paper-gopro preset trains on GoPro: pass --data GOPRO_ROOT")
    if not config.data and config.steps_per_epoch < 1:
        parser.error("synthetic data needs --steps-per-epoch of at least 1")
    return preset, base, config, sessions


# ----------------------------------------------------------------------------- set-up


@dataclass(frozen=True)
class Run:
    """What every step of this session reads."""

    out: Path
    preset: str
    config: TrainConfig
    processes: Processes
    data: TrainingData


class StopRequest:
    """SIGTERM (what a scheduler or a Space sends) and SIGINT (Ctrl-C) ask training to stop at
    the next optimiser step; a second signal does what it would have done without this.

    Installed before the DataLoader workers fork, so they inherit it and a Ctrl-C that reaches
    the whole process group does not kill them under the loader.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._previous = {
            number: signal.signal(number, self._handle)
            for number in (signal.SIGTERM, signal.SIGINT)
        }

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:
            self.restore()
            signal.raise_signal(signum)
            return
        self.signum = signum

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def requested(self, processes: Processes) -> int:
        """The signal that asked to stop, 0 if none; under torchrun the processes agree (the
        largest over them), so that all stop at the same step."""
        if processes.control is None:
            return self.signum
        flag = torch.tensor([self.signum])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=processes.control)
        return int(flag.item())


# ----------------------------------------------------------------------------- training steps


def critic_step(
    run: Run, models: Models, sharp: torch.Tensor, fake: torch.Tensor, penalty_rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's config.critic_steps updates on this batch, the restored images `fake`
    (B, 3, H, W) held fixed: their mean Wasserstein loss and gradient penalty (0 without any)."""
    config, processes = run.config, run.processes
    batch_size, device = sharp.shape[0], processes.device
    critic_sum = torch.zeros((), device=device)
    penalty_sum = torch.zeros((), device=device)
    models.critic.requires_grad_(True)
    for _ in range(config.critic_steps):
        with processes.autocast():
            wasserstein = critic_loss(
                models.critic_train(sharp).float(), models.critic_train(fake).float()
            )
            penalty = torch.zeros((), device=device)
            if config.gp_weight:
                # Interpolation weights: one draw for the global batch, sliced per process.
                eps = torch.rand(
                    batch_size * processes.world_size, generator=penalty_rng, device=device
                )
                eps = eps[processes.rank * batch_size : (processes.rank + 1) * batch_size]
                penalty = gradient_penalty(models.critic_train, sharp, fake, eps=eps).float()
        models.critic_optimizer.zero_grad(set_to_none=True)
        (wasserstein + config.gp_weight * penalty).backward()
        models.critic_optimizer.step()
        critic_sum += wasserstein.detach()
        penalty_sum += penalty.detach()
    updates = max(config.critic_steps, 1)
    return critic_sum / updates, penalty_sum / updates


def generator_step(
    run: Run,
    models: Models,
    output: GeneratorOutput,
    sharp: torch.Tensor,
    blur_extent: torch.Tensor | None,
    content_loss: Callable[..., torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One generator update from `output` (its forward pass on the batch): the total, content
    and adversarial losses. The critic is called unwrapped and frozen: no gradients for it.
    `blur_extent` (B, 1, H, W) pixels, of synthetic data, supervises the last attention map."""
    config, device = run.config, run.processes.device
    models.critic.requires_grad_(False)
    restored = output.image  # (B, 3, H, W) float32 in [0, 1]
    with run.processes.autocast():
        content = content_loss(restored, sharp)
        adversarial = torch.zeros((), device=device)
        if config.adversarial_weight:
            adversarial = generator_adversarial_loss(models.critic(restored).float())
        total = config.content_weight * content + config.adversarial_weight * adversarial
        if config.attention_weight and output.attention and blur_extent is not None:
            total = total + config.attention_weight * attention_loss(
                output.attention[-1], blur_extent.to(device), config.attention_scale_px
            )
    models.generator_optimizer.zero_grad(set_to_none=True)
    total.backward()
    models.generator_optimizer.step()
    return total, content, adversarial


def train_step(
    run: Run, models: Models, batch: dict, content_loss: Callable, penalty_rng: torch.Generator
) -> torch.Tensor:
    """One optimiser step on `batch`: the critic's updates, then the generator's. Returns the
    (5,) losses of LOSS_NAMES, still on the device (reading them would sync it)."""
    device, layout = run.processes.device, memory_format(run.config)
    blurred = batch["blurred"].to(device, non_blocking=True, memory_format=layout)
    sharp = batch["sharp"].to(device, non_blocking=True, memory_format=layout)
    with run.processes.autocast():
        output = models.generator_train(blurred)
    critic, penalty = critic_step(run, models, sharp, output.image.detach(), penalty_rng)
    total, content, adversarial = generator_step(
        run, models, output, sharp, batch.get("blur_extent"), content_loss
    )
    return torch.stack([total, content, adversarial, critic, penalty]).detach()


@dataclass(frozen=True)
class EpochResult:
    """What an epoch's steps leave for its validation and files."""

    epoch: int
    step: int  # optimiser steps of the run after this epoch's
    lr: float  # of the epoch's last step
    loss_sums: torch.Tensor  # (5,) LOSS_NAMES summed over the epoch's steps on this process
    started: float  # time.perf_counter() at the start of the epoch
    train_seconds: float
    stopped_by: int  # the signal that stopped the epoch before its end, 0 if none


def train_epoch(
    run: Run,
    models: Models,
    loader: DataLoader,
    content_loss: Callable,
    epoch: int,
    step: int,
    stop: StopRequest,
) -> EpochResult:
    """The optimiser steps of epoch `epoch`, the run being at global step `step`."""
    config, processes = run.config, run.processes
    started = time.perf_counter()
    run.data.set_epoch(epoch)
    # The gradient penalty's weights come from a generator seeded by (seed, epoch), as the data.
    epoch_seed = int(np.random.SeedSequence((config.seed, epoch)).generate_state(1)[0])
    penalty_rng = torch.Generator(processes.device).manual_seed(epoch_seed)
    models.generator_train.train()
    models.critic_train.train()
    loss_sums = torch.zeros(len(LOSS_NAMES), device=processes.device)
    progress = tqdm(
        total=run.data.steps_per_epoch,
        desc=f"epoch {epoch}/{config.epochs}",
        disable=not processes.is_main,
        leave=False,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )
    lr, stopped_by = 0.0, 0
    for batch in loader:
        lr = learning_rate(config, step, run.data.steps_per_epoch)
        for optimizer in (models.generator_optimizer, models.critic_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = lr
        losses = train_step(run, models, batch, content_loss, penalty_rng)
        step += 1
        loss_sums += losses
        progress.update()
        if processes.is_main and progress.n % config.log_every == 0:  # the only per-step sync
            values = losses.tolist()
            progress.set_postfix_str(
                f"G {values[0]:.4f} content {values[1]:.4f} adv {values[2]:+.3f} "
                f"critic {values[3]:+.3f} gp {values[4]:.3f} lr {lr:.2e}"
            )
        # A signal stops here and saves nothing new: resume.pt keeps the last complete epoch
        # and --resume trains this epoch again from its start, so a resumed run stays bit
        # identical with the state it has always saved. Saving mid-epoch would need the
        # loader's position, the penalty generator's state and the partial loss sums and
        # timings in resume.pt: a new format, which an older train.py would take for a
        # complete epoch. What is lost is at most the steps of one epoch. Under torchrun the
        # check is a collective, so it runs every log_every steps (on every process alike).
        if processes.control is None or progress.n % config.log_every == 0:
            stopped_by = stop.requested(processes)
        if stopped_by:
            break
    progress.close()
    seconds = time.perf_counter() - started
    return EpochResult(epoch, step, lr, loss_sums, started, seconds, stopped_by)


def mean_losses(run: Run, models: Models, loss_sums: torch.Tensor) -> list[float]:
    """The epoch's mean losses per step, averaged over the processes under torchrun, where a
    checksum per process also proves that all hold the same weights."""
    world_size = run.processes.world_size
    if world_size > 1:
        dist.all_reduce(loss_sums)
        loss_sums /= world_size
        parameters = [*models.generator.parameters(), *models.critic.parameters()]
        checksum = torch.stack([p.detach().double().sum() for p in parameters]).sum()[None]
        checksums = [torch.zeros_like(checksum) for _ in range(world_size)]
        dist.all_gather(checksums, checksum)
        if any(not torch.equal(c, checksums[0]) for c in checksums):
            raise RuntimeError("the processes' weights differ: gradients were not synchronised")
    return (loss_sums / run.data.steps_per_epoch).tolist()


# ----------------------------------------------------------------------------- run directory


def load_resume_state(path: Path) -> dict[str, Any]:
    """The state in `path`, or SystemExit with one sentence saying why not and what to do."""
    try:
        return read_resume_state(path)
    except ResumeStateError as error:
        advice = "restore it from a copy, or start the run again with another --out"
        raise SystemExit(f"error: {error}; {advice}") from None


def start_session(
    run: Run,
    models: Models,
    validation: ValidationSet,
    records: list[dict],
    sessions: list[dict],
    start_epoch: int,
    argv: list[str] | None,
) -> None:
    """config.json (the recipe, data and every session's command and commit) and metrics.jsonl
    as of the last complete epoch, then one line saying what trains."""
    config, processes = run.config, run.processes
    session = {
        "command": " ".join(["train/train.py", *(sys.argv[1:] if argv is None else argv)]),
        "git_commit": git_commit(REPO_ROOT),
        "start_epoch": start_epoch,
    }
    run_config = {
        "preset": run.preset,
        "train": config.to_dict(),
        "data": run.data.recipe,
        "validation": validation.recipe,
        "steps_per_epoch": run.data.steps_per_epoch,
        "world_size": processes.world_size,
        "global_batch_size": config.batch_size * processes.world_size,
        "device": str(processes.device),
        "precision": "bfloat16" if processes.amp else "float32",
        "parameters": {
            "generator": count_parameters(models.generator),
            "critic": count_parameters(models.critic),
        },
        "torch": torch.__version__,
        # A run may be continued with other flags (--resume --epochs 26 --crop 192): every
        # session's command and commit, so the whole run can be reproduced.
        "sessions": [*sessions, session],
    }
    (run.out / "snapshots").mkdir(parents=True, exist_ok=True)
    write_atomic(run.out / "config.json", (json.dumps(run_config, indent=2) + "\n").encode())
    write_atomic(run.out / "metrics.jsonl", metrics_lines(records))
    print(
        f"{f'resuming after epoch {start_epoch}' if start_epoch else 'training'}: {run.preset}, "
        f"{run_config['parameters']['generator']:,} generator parameters, {processes.device}, "
        f"{run_config['precision']}, {processes.world_size} process(es), "
        f"{run.data.steps_per_epoch} steps/epoch, {config.epochs} epochs -> {run.out}"
    )


def save_epoch(
    run: Run,
    models: Models,
    validation: ValidationSet,
    records: list[dict],
    result: EpochResult,
    means: list[float],
) -> None:
    """Rank 0 after an epoch: validation, the snapshot (at the end also the generator) and
    resume.pt, then the epoch's line in metrics.jsonl, which says all of them are written."""
    config, epoch, world_size = run.config, result.epoch, run.processes.world_size
    scores = validation_scores(
        models.generator, validation.pairs, run.processes.device, run.processes.autocast()
    )
    seconds = time.perf_counter() - result.started
    samples = run.data.steps_per_epoch * config.batch_size * world_size
    record = {
        "epoch": epoch,
        "step": result.step,
        "losses": dict(zip(LOSS_NAMES, means, strict=True)),
        **scores,
        **validation.blurred_scores,
        "lr": result.lr,
        "seconds": seconds,
        "samples_per_second": samples / result.train_seconds,
    }
    metadata = {
        "epoch": epoch,
        "epochs": config.epochs,
        "step": result.step,
        "preset": run.preset,
        **scores,
        **validation.blurred_scores,
        "validation": validation.recipe,
        "data": run.data.recipe["kind"],
        "seed": config.seed,
    }
    if epoch % config.snapshot_every == 0 or epoch in (1, config.epochs):
        # Snapshots feed the attention-evolution view: half precision keeps them small.
        snapshot = run.out / "snapshots" / f"epoch-{epoch:03d}.safetensors"
        save_generator(models.generator, snapshot, metadata, dtype=torch.float16)
    if epoch == config.epochs:
        save_generator(models.generator, run.out / "generator.safetensors", metadata)
    records.append(record)
    state = {
        "format": RESUME_FORMAT,
        "version": RESUME_VERSION,
        "epoch": epoch,
        "step": result.step,
        "generator": models.generator.state_dict(),
        "critic": models.critic.state_dict(),
        "generator_optimizer": models.generator_optimizer.state_dict(),
        "critic_optimizer": models.critic_optimizer.state_dict(),
        "metrics": records,
        "config": config.to_dict(),
    }
    save_resume_state(run.out / "resume.pt", state)
    append_metrics(run.out / "metrics.jsonl", record)
    blurred = validation.blurred_scores
    tqdm.write(
        f"epoch {epoch}/{config.epochs}  step {result.step}  content {means[1]:.4f}  "
        f"adv {means[2]:+.3f}  critic {means[3]:+.3f}  gp {means[4]:.3f}  "
        f"val PSNR {scores['val_psnr']:.2f} dB (blurred {blurred['val_psnr_blurred']:.2f})  "
        f"SSIM {scores['val_ssim']:.4f} ({blurred['val_ssim_blurred']:.4f})  "
        f"lr {result.lr:.2e}  {seconds:.0f} s  {record['samples_per_second']:.1f} samples/s"
    )


def out_of_time(
    minutes: float, processes: Processes, session_start: float, epoch_start: float
) -> bool:
    """Whether another epoch as long as the last one would end past the session's `minutes`;
    rank 0 decides for every process."""
    now = time.perf_counter()
    over = (now - session_start) + (now - epoch_start) > 60 * minutes
    decision = torch.tensor([float(over)], device=processes.device)
    if processes.world_size > 1:
        dist.broadcast(decision, src=0)
    return bool(decision.item())


def format_seconds(seconds: float) -> str:
    """'12.3 s' under a minute, else 'h:mm:ss'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def print_summary(
    run: Run, records: list[dict], validation: ValidationSet, session_start: float
) -> None:
    finished = bool(records) and records[-1]["epoch"] >= run.config.epochs
    print(
        f"\n{'Training finished' if finished else 'Training stopped (resume with --resume)'}: "
        f"{records[-1]['epoch'] if records else 0}/{run.config.epochs} epochs, "
        f"{records[-1]['step'] if records else 0} steps, "
        f"{format_seconds(sum(r['seconds'] for r in records))} in all "
        f"({format_seconds(time.perf_counter() - session_start)} in this session)"
    )
    if records:
        best, last = max(records, key=lambda r: r["val_psnr"]), records[-1]
        print(
            f"  validation ({validation.recipe['kind']}, {validation.recipe['size']} images):\n"
            f"    final (epoch {last['epoch']}): PSNR {last['val_psnr']:.2f} dB, "
            f"SSIM {last['val_ssim']:.4f}\n"
            f"    best  (epoch {best['epoch']}): PSNR {best['val_psnr']:.2f} dB, "
            f"SSIM {best['val_ssim']:.4f}\n"
            f"    blurred input:    PSNR {last['val_psnr_blurred']:.2f} dB, "
            f"SSIM {last['val_ssim_blurred']:.4f}"
        )
    print(
        f"  outputs in {run.out}: config.json, metrics.jsonl, snapshots/, resume.pt"
        + (", generator.safetensors" if finished else "")
    )


def print_changes(base: TrainConfig, config: TrainConfig, start_epoch: int) -> None:
    """Notes on what this session changes in a resumed run."""
    for item in dataclasses.fields(TrainConfig):
        before, after = getattr(base, item.name), getattr(config, item.name)
        if before != after:
            print(f"note: {item.name} changed from {before!r} to {after!r} for this session")
    if start_epoch > config.epochs:
        print(f"note: the run already has {start_epoch} epochs, more than --epochs {config.epochs}")


def stop_message(signum: int, epoch: int, step: int, finished_epoch: bool) -> str:
    """What a stop by signal `signum` kept, and what --resume does next."""
    name = signal.Signals(signum).name
    if finished_epoch:
        return f"note: {name} stopped training after epoch {epoch}, every file written"
    kept = f"epoch {epoch - 1}" if epoch > 1 else "nothing yet"
    return (
        f"note: {name} stopped training in epoch {epoch}, after step {step}; the run directory "
        f"keeps {kept}, and --resume trains epoch {epoch} again from its start"
    )


# ----------------------------------------------------------------------------- main


def train(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    stop: StopRequest,
    argv: list[str] | None,
) -> int:
    """The whole session; returns the process's exit status (128 + signal after a stop)."""
    resuming = args.resume and (args.out / "resume.pt").is_file()
    preset, base, config, sessions = read_config(args, parser, resuming)
    processes = set_up_processes(config, set_threads=not THREADS_SET_BY_USER)
    if config.amp and not processes.amp and processes.is_main:
        print("note: this CPU has no native bf16; training in float32 (--no-amp to silence)")
    try:  # the photos of --sources, split once into training and held-out (validation) photos
        photos, held_out = split_photos(config.sources, config.val_holdout)
    except ValueError as error:
        parser.error(str(error))
    try:
        data = training_data(config, photos, held_out, processes.rank, processes.world_size)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    run = Run(args.out, preset, config, processes, data)
    loader = training_loader(config, data, pin_memory=processes.use_cuda)
    state = load_resume_state(args.out / "resume.pt") if resuming else None
    models = build_models(config, processes, state)
    try:
        content_loss = content_loss_fn(config, processes.device)
    except VGGWeightsUnavailable as error:
        raise SystemExit(f"error: {error}") from None
    start_epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    records: list[dict] = list(state["metrics"]) if state else []
    validation = ValidationSet([], {}, {})
    if processes.is_main:
        try:
            validation = validation_set(config, held_out)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
        start_session(run, models, validation, records, sessions, start_epoch, argv)
        if state:
            print_changes(base, config, start_epoch)

    session_start, stopped_by = time.perf_counter(), 0
    last_epoch = min(config.epochs, args.stop_after_epoch or config.epochs)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        result = train_epoch(run, models, loader, content_loss, epoch, step, stop)
        if result.stopped_by:
            stopped_by = result.stopped_by
            if processes.is_main:
                print(stop_message(stopped_by, epoch, result.step, finished_epoch=False))
            break
        means = mean_losses(run, models, result.loss_sums)
        step = result.step
        if processes.is_main:
            save_epoch(run, models, validation, records, result, means)
        if processes.world_size > 1:
            dist.barrier()
        if epoch == last_epoch:
            break
        stopped_by = stop.requested(processes)  # a signal during validation or saving
        if stopped_by:
            if processes.is_main:
                print(stop_message(stopped_by, epoch, step, finished_epoch=True))
            break
        if args.stop_after_minutes and out_of_time(
            args.stop_after_minutes, processes, session_start, result.started
        ):
            if processes.is_main:
                print(f"note: stopped after epoch {epoch} (--stop-after-minutes)")
            break

    if processes.is_main:
        print_summary(run, records, validation, session_start)
    if processes.world_size > 1:
        dist.destroy_process_group()
    return 128 + stopped_by if stopped_by else 0


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop = StopRequest()
    try:
        status = train(args, parser, stop, argv)
    finally:
        stop.restore()
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
