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
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

# DataLoader workers are forked copies of this process, each with OpenMP and BLAS thread pools
# as wide as the machine: on a 16-core GPU machine 14 workers x 16 busy-waiting threads made
# 36 samples/s, one thread each made 360. So every pool starts with one thread, unless the user
# set OMP_NUM_THREADS, and main() gives torch's pool back to the training process on a CPU.
# (Spawned workers would not need this, but each gets a pickled copy of every source image:
# 8.5 s to the first batch and +450 MB here with 4 workers, against 0.3 s when forked.)
THREADS_SET_BY_USER = "OMP_NUM_THREADS" in os.environ
if not THREADS_SET_BY_USER:
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as `python train/train.py`

from bag.checkpoint import save_generator  # noqa: E402
from bag.data import GoProDataset, PairedFolder, SyntheticPairs  # noqa: E402
from bag.discriminator import PatchDiscriminator  # noqa: E402
from bag.losses import (  # noqa: E402
    PerceptualLoss,
    VGGWeightsUnavailable,
    attention_loss,
    charbonnier_loss,
    critic_loss,
    frequency_loss,
    generator_adversarial_loss,
    gradient_penalty,
    l1_loss,
)
from bag.metrics import psnr, ssim  # noqa: E402
from bag.model import Generator, GeneratorConfig, count_parameters  # noqa: E402
from bag.sources import default_sources, read_photos, split_photos  # noqa: E402
from bag.synthesis import BlurSettings  # noqa: E402
from bag.training import EpochSampler, TrainConfig, learning_rate  # noqa: E402

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
# The synthetic validation set is the same for every run, so runs can be compared.
VALIDATION_SEED = 12345
VALIDATION_DEAD_LEAVES = 4
VALIDATION_DEAD_LEAVES_SIZE = 384
RESUME_FORMAT = "bag-train-resume"
RESUME_VERSION = 1
LOSS_NAMES = ("g_total", "content", "adversarial", "critic", "gp")


# ----------------------------------------------------------------------------- command line


def add_dataclass_flags(group: argparse._ArgumentGroup, cls: type, skip: tuple = ()) -> None:
    """One flag per field of `cls` (--field-name); defaults stay unset so presets fill them."""
    presets = {name: make() for name, make in PRESETS.items()}
    for item in dataclasses.fields(cls):
        if item.name in skip:
            continue
        if cls is GeneratorConfig:
            values = {
                name: getattr(preset.generator, item.name) for name, preset in presets.items()
            }
        else:
            values = {name: getattr(preset, item.name) for name, preset in presets.items()}
        example = values["demo"]
        defaults = ", ".join(f"{name} {value!r}" for name, value in values.items())
        flag = "--" + item.name.replace("_", "-")
        if isinstance(example, bool):
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=defaults,
            )
        elif item.name == "sources":  # any number of folders
            group.add_argument(
                flag, nargs="+", metavar="FOLDER", default=argparse.SUPPRESS, help=defaults
            )
        elif isinstance(example, tuple):
            group.add_argument(
                flag,
                type=type(example[0]),
                nargs=len(example),
                default=argparse.SUPPRESS,
                help=defaults,
            )
        else:
            group.add_argument(flag, type=type(example), default=argparse.SUPPRESS, help=defaults)


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


# ----------------------------------------------------------------------------- data


def open_folder(root: str, split: str, crop: int | None, config: TrainConfig, seed: int):
    """A GoPro root (ROOT/<split>/<sequence>/...) or a paired folder (ROOT/blur, ROOT/sharp)."""
    path = Path(root)
    if (path / split).is_dir():
        dataset = GoProDataset(
            path, split=split, blur_version=config.blur_version, crop=crop, seed=seed
        )
        return dataset, {
            "kind": "gopro",
            "root": str(path),
            "split": split,
            "blur_version": config.blur_version,
            "pairs": len(dataset),
        }
    if (path / "blur").is_dir() and (path / "sharp").is_dir():
        dataset = PairedFolder(path, crop=crop, seed=seed)
        return dataset, {"kind": "paired", "root": str(path), "pairs": len(dataset)}
    raise SystemExit(
        f"error: {path} is neither a GoPro root (with {split}/<sequence>/blur, sharp) "
        "nor a paired folder (with blur/ and sharp/)"
    )


def validation_set(
    config: TrainConfig, held_out: list[Path]
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict]:
    """Fixed validation pairs [(blurred, sharp)], each (1, 3, H, W) in [0, 1], and their recipe;
    `held_out` are the photos of --sources kept out of training (used when val_holdout is set)."""
    if config.val_data:
        dataset, recipe = open_folder(config.val_data, "test", None, config, VALIDATION_SEED)
        # At most val_size pairs, spread evenly over the (sorted) dataset.
        indices = np.unique(np.linspace(0, len(dataset) - 1, config.val_size).round().astype(int))
    else:
        if config.val_holdout:
            if not held_out:
                raise SystemExit(
                    f"error: --val-holdout {config.val_holdout} holds out none of the photos "
                    "in --sources: raise it"
                )
            sources = read_photos(held_out)
        else:
            rng = np.random.default_rng(VALIDATION_SEED)
            sources = default_sources(
                rng, num_dead_leaves=VALIDATION_DEAD_LEAVES, size=VALIDATION_DEAD_LEAVES_SIZE
            )
        dataset = SyntheticPairs(
            sources,
            crop=config.val_crop,
            length=config.val_size,
            seed=VALIDATION_SEED,
            augment=False,
        )
        indices = np.arange(config.val_size)
        recipe = {
            "kind": "synthetic",
            "seed": VALIDATION_SEED,
            "crop": config.val_crop,
            "photos": "held out of sources" if config.val_holdout else "built-in",
            "held_out_photos": len(sources) if config.val_holdout else 0,
            "dead_leaves": 0 if config.val_holdout else VALIDATION_DEAD_LEAVES,
            "blur": dataclasses.asdict(BlurSettings()),
        }
    pairs = []
    for index in indices:
        item = dataset[int(index)]
        pairs.append((item["blurred"][None], item["sharp"][None]))
    recipe["size"] = len(pairs)
    return pairs, recipe


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float64 array."""
    return image[0].permute(1, 2, 0).double().cpu().numpy()


@torch.no_grad()
def validate(generator: Generator, pairs, device: torch.device, autocast) -> dict[str, float]:
    """Mean PSNR/SSIM of the restored validation images (untiled, one image at a time)."""
    was_training = generator.training
    generator.eval()
    scores = []
    for blurred, sharp in pairs:
        with autocast:
            restored = generator(blurred.to(device)).image.float()
        scores.append(
            (psnr(to_hwc(restored), to_hwc(sharp)), ssim(to_hwc(restored), to_hwc(sharp)))
        )
    generator.train(was_training)
    return {
        "val_psnr": float(np.mean([s[0] for s in scores])),
        "val_ssim": float(np.mean([s[1] for s in scores])),
    }


# ----------------------------------------------------------------------------- files


def single_threaded_data() -> None:
    """OpenCV on one thread, before any DataLoader worker is forked.

    Many workers with many threads each oversubscribe the cores, and calling
    cv2.setNumThreads inside a forked worker deadlocks (the parent's thread pool does not
    survive the fork), so it is set once in the parent and inherited. torch already runs each
    worker on one thread.
    """
    import cv2

    cv2.setNumThreads(1)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: never a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` (tensors and plain Python values: loads with weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def metrics_lines(records: list[dict]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def git_commit() -> str | None:
    """The repository's commit ('-dirty' if files changed), or None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if status.strip() else "")


def format_seconds(seconds: float) -> str:
    """'12.3 s' under a minute, else 'h:mm:ss'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    out: Path = args.out
    resume_path = out / "resume.pt"
    config_path = out / "config.json"
    metrics_path = out / "metrics.jsonl"

    # Config: the preset, or the saved config when resuming; then the flags on top.
    preset = args.preset or "demo"
    resuming = args.resume and resume_path.is_file()
    sessions: list[dict] = []  # the sessions before this one, each with its command and commit
    if resuming and config_path.is_file():
        saved = json.loads(config_path.read_text())
        try:
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
        if not args.resume and (resume_path.exists() or metrics_path.exists()):
            parser.error(
                f"{out} already holds a run: pass --resume to continue it, or another --out"
            )
    try:
        config = resolve_config(args, base)
    except ValueError as error:
        parser.error(str(error))
    if preset == "paper-gopro" and not config.data:
        parser.error("the paper-gopro preset trains on GoPro: pass --data GOPRO_ROOT")

    # Processes: torchrun sets WORLD_SIZE, RANK and LOCAL_RANK.
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    is_main = rank == 0
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if not THREADS_SET_BY_USER:  # see the top of the file: a CPU run computes on every core
        torch.set_num_threads(1 if use_cuda else len(os.sched_getaffinity(0)))
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world_size > 1:
        dist.init_process_group(
            "nccl" if use_cuda else "gloo", device_id=device if use_cuda else None
        )
    amp = config.amp and (use_cuda or torch.cpu._is_avx512_bf16_supported())
    if config.amp and not amp and is_main:
        print("note: this CPU has no native bf16; training in float32 (--no-amp to silence)")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    # The photos of --sources, split once into training and held-out (validation) photos.
    try:
        training_photos, held_out = split_photos(config.sources, config.val_holdout)
    except ValueError as error:
        parser.error(str(error))
    # Training data. Items are pure functions of (seed, index); the sampler picks each epoch's
    # indices from (seed, epoch) and shards them over the processes.
    if config.data:
        dataset, data_recipe = open_folder(config.data, "train", config.crop, config, config.seed)
        steps_per_epoch = config.steps_per_epoch or len(dataset) // (config.batch_size * world_size)
        if steps_per_epoch < 1:
            raise SystemExit(f"error: {config.data} has fewer pairs than one batch per process")
        sampler = EpochSampler(
            len(dataset),
            steps_per_epoch,
            config.batch_size,
            config.seed,
            fresh=False,
            rank=rank,
            world_size=world_size,
        )
    else:
        if config.steps_per_epoch < 1:
            parser.error("synthetic data needs --steps-per-epoch of at least 1")
        steps_per_epoch = config.steps_per_epoch
        sources = default_sources(
            np.random.default_rng(config.seed),
            num_dead_leaves=config.num_dead_leaves,
            size=config.dead_leaves_size,
            greyscale_photos=config.greyscale_photos,
        )
        user_images = read_photos(training_photos)
        per_epoch = steps_per_epoch * config.batch_size * world_size
        blur = config.blur_settings()
        # Copies of a reused pair lie `window` items apart: whole steps of all processes (so the
        # process that rendered a pair fetches its copies), about 256 items or one epoch. It
        # must not depend on the worker count, which may change on resume; a worker that did not
        # render a pair renders it again (the same pair: items are functions of the index).
        step_items = config.batch_size * world_size
        window = step_items * math.ceil(min(256, per_epoch) / step_items)
        dataset = SyntheticPairs(
            sources + user_images,
            crop=config.crop,
            length=config.epochs * per_epoch,
            seed=config.seed,
            settings=blur,
            reuse=config.synthesis_reuse,
            window=window,
        )
        sampler = EpochSampler(
            len(dataset),
            steps_per_epoch,
            config.batch_size,
            config.seed,
            fresh=True,
            rank=rank,
            world_size=world_size,
        )
        data_recipe = {
            "kind": "synthetic",
            "built_in_sources": len(sources),
            "dead_leaves": config.num_dead_leaves,
            "greyscale_photos": config.greyscale_photos,
            "user_folders": list(config.sources),
            "user_images": len(user_images),
            "held_out_images": len(held_out),
            "blur": dataclasses.asdict(blur),
        }
    num_workers = (
        config.num_workers if config.num_workers >= 0 else min(8, (os.cpu_count() or 2) - 1)
    )
    if num_workers > 0:
        single_threaded_data()
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=num_workers,
        # Folder datasets draw their crops from (seed, index, epoch) through set_epoch, which
        # must reach the workers: they are started afresh each epoch. Synthetic items need no
        # epoch (the sampler's indices carry it), so their workers persist.
        persistent_workers=num_workers > 0 and not config.data,
        pin_memory=use_cuda,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG untouched
    )

    # Models and optimisers; initial weights from the seed, identical on every process.
    torch.manual_seed(config.seed)
    generator = Generator(config.generator)
    critic = PatchDiscriminator(
        base_channels=config.critic_channels, num_layers=config.critic_layers
    )
    optimizer_kwargs = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay}
    state = None
    if resuming:
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        if state.get("format") != RESUME_FORMAT or state.get("version") != RESUME_VERSION:
            raise SystemExit(f"error: {resume_path} is not a resume state of this script")
        generator.load_state_dict(state["generator"])
        critic.load_state_dict(state["critic"])
    generator.to(device, memory_format=memory_format)
    critic.to(device, memory_format=memory_format)
    if world_size > 1 and use_cuda:
        generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(generator)
    generator_optimizer = torch.optim.AdamW(
        generator.parameters(), fused=use_cuda, **optimizer_kwargs
    )
    critic_optimizer = torch.optim.AdamW(critic.parameters(), fused=use_cuda, **optimizer_kwargs)
    if state is not None:
        generator_optimizer.load_state_dict(state["generator_optimizer"])
        critic_optimizer.load_state_dict(state["critic_optimizer"])
    # The modules that train: DDP wrappers (they average gradients over processes), compiled
    # if asked. `generator` and `critic` stay the plain modules that are saved.
    generator_train, critic_train = generator, critic
    if world_size > 1:
        generator_train = DistributedDataParallel(generator)
        critic_train = DistributedDataParallel(critic)
    if config.compile:
        generator_train = torch.compile(generator_train)

    perceptual = None
    if config.content_loss == "perceptual":
        try:
            perceptual = PerceptualLoss(weights=config.vgg_weights or None).to(device)
        except VGGWeightsUnavailable as error:
            raise SystemExit(f"error: {error}") from None

    def content_loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        if perceptual is not None:
            loss = perceptual(restored, sharp).float()
        elif config.content_loss == "charbonnier":
            loss = charbonnier_loss(restored, sharp)
        else:
            loss = l1_loss(restored, sharp)
        if config.frequency_weight:
            loss = loss + config.frequency_weight * frequency_loss(restored, sharp)
        return loss

    # Run directory: config.json and metrics.jsonl as of the last complete epoch.
    start_epoch, step = (state["epoch"], state["step"]) if state else (0, 0)
    records: list[dict] = list(state["metrics"]) if state else []
    validation_pairs, validation_recipe = ([], {})
    if is_main:
        (out / "snapshots").mkdir(parents=True, exist_ok=True)
        validation_pairs, validation_recipe = validation_set(config, held_out)
        blurred_scores = {
            "val_psnr_blurred": float(
                np.mean([psnr(to_hwc(b), to_hwc(s)) for b, s in validation_pairs])
            ),
            "val_ssim_blurred": float(
                np.mean([ssim(to_hwc(b), to_hwc(s)) for b, s in validation_pairs])
            ),
        }
        run_config = {
            "preset": preset,
            "train": config.to_dict(),
            "data": data_recipe,
            "validation": validation_recipe,
            "steps_per_epoch": steps_per_epoch,
            "world_size": world_size,
            "global_batch_size": config.batch_size * world_size,
            "device": str(device),
            "precision": "bfloat16" if amp else "float32",
            "parameters": {
                "generator": count_parameters(generator),
                "critic": count_parameters(critic),
            },
            "torch": torch.__version__,
            # A run may be continued with other flags (--resume --epochs 26 --crop 192): every
            # session's command and commit, so the whole run can be reproduced.
            "sessions": [
                *sessions,
                {
                    "command": " ".join(
                        ["train/train.py", *(sys.argv[1:] if argv is None else argv)]
                    ),
                    "git_commit": git_commit(),
                    "start_epoch": start_epoch,
                },
            ],
        }
        write_atomic(config_path, (json.dumps(run_config, indent=2) + "\n").encode())
        write_atomic(metrics_path, metrics_lines(records))
        print(
            f"{f'resuming after epoch {start_epoch}' if state else 'training'}: {preset}, "
            f"{run_config['parameters']['generator']:,} generator parameters, {device}, "
            f"{run_config['precision']}, {world_size} process(es), {steps_per_epoch} steps/epoch, "
            f"{config.epochs} epochs -> {out}"
        )
    if state and is_main:
        for item in dataclasses.fields(TrainConfig):
            before, after = getattr(base, item.name), getattr(config, item.name)
            if before != after:
                print(f"note: {item.name} changed from {before!r} to {after!r} for this session")
    if state and start_epoch > config.epochs and is_main:
        print(f"note: the run already has {start_epoch} epochs, more than --epochs {config.epochs}")

    session_start = time.perf_counter()
    last_epoch = min(config.epochs, args.stop_after_epoch or config.epochs)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        epoch_start = time.perf_counter()
        sampler.set_epoch(epoch)
        if config.data:
            dataset.set_epoch(epoch)
        # The gradient penalty's interpolation weights: one draw for the global batch from a
        # generator seeded by (seed, epoch), sliced per process, as for the data.
        epoch_seed = int(np.random.SeedSequence((config.seed, epoch)).generate_state(1)[0])
        penalty_rng = torch.Generator(device).manual_seed(epoch_seed)
        generator_train.train()
        critic_train.train()
        loss_sums = torch.zeros(len(LOSS_NAMES), device=device)
        progress = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not is_main,
            leave=False,
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
        )
        for batch in loader:
            lr = learning_rate(config, step, steps_per_epoch)
            for optimizer in (generator_optimizer, critic_optimizer):
                for group in optimizer.param_groups:
                    group["lr"] = lr
            blurred = batch["blurred"].to(device, non_blocking=True, memory_format=memory_format)
            sharp = batch["sharp"].to(device, non_blocking=True, memory_format=memory_format)
            batch_size = blurred.shape[0]
            with autocast:
                output = generator_train(blurred)
                restored = output.image  # (B, 3, H, W) float32 in [0, 1]

            # Critic updates on this batch (the restored images held fixed).
            critic_sum = torch.zeros((), device=device)
            penalty_sum = torch.zeros((), device=device)
            fake = restored.detach()
            critic.requires_grad_(True)
            for _ in range(config.critic_steps):
                with autocast:
                    wasserstein = critic_loss(
                        critic_train(sharp).float(), critic_train(fake).float()
                    )
                    penalty = torch.zeros((), device=device)
                    if config.gp_weight:
                        eps = torch.rand(
                            batch_size * world_size, generator=penalty_rng, device=device
                        )
                        eps = eps[rank * batch_size : (rank + 1) * batch_size]
                        penalty = gradient_penalty(critic_train, sharp, fake, eps=eps).float()
                critic_optimizer.zero_grad(set_to_none=True)
                (wasserstein + config.gp_weight * penalty).backward()
                critic_optimizer.step()
                critic_sum += wasserstein.detach()
                penalty_sum += penalty.detach()

            # Generator update. The critic is called unwrapped and frozen: no gradients for it.
            critic.requires_grad_(False)
            with autocast:
                content = content_loss(restored, sharp)
                adversarial = torch.zeros((), device=device)
                if config.adversarial_weight:
                    adversarial = generator_adversarial_loss(critic(restored).float())
                total = config.content_weight * content + config.adversarial_weight * adversarial
                if config.attention_weight and output.attention and "blur_extent" in batch:
                    total = total + config.attention_weight * attention_loss(
                        output.attention[-1],
                        batch["blur_extent"].to(device),
                        config.attention_scale_px,
                    )
            generator_optimizer.zero_grad(set_to_none=True)
            total.backward()
            generator_optimizer.step()
            step += 1

            critic_steps = max(config.critic_steps, 1)
            losses = torch.stack(
                [total, content, adversarial, critic_sum / critic_steps, penalty_sum / critic_steps]
            ).detach()
            loss_sums += losses
            progress.update()
            if is_main and progress.n % config.log_every == 0:  # the only per-step device sync
                values = losses.tolist()
                progress.set_postfix_str(
                    f"G {values[0]:.4f} content {values[1]:.4f} adv {values[2]:+.3f} "
                    f"critic {values[3]:+.3f} gp {values[4]:.3f} lr {lr:.2e}"
                )
        progress.close()
        train_seconds = time.perf_counter() - epoch_start

        if world_size > 1:
            dist.all_reduce(loss_sums)
            loss_sums /= world_size
            # Every process must hold the same weights; a checksum per process proves it.
            checksum = torch.stack(
                [p.detach().double().sum() for p in [*generator.parameters(), *critic.parameters()]]
            ).sum()[None]
            checksums = [torch.zeros_like(checksum) for _ in range(world_size)]
            dist.all_gather(checksums, checksum)
            if any(not torch.equal(c, checksums[0]) for c in checksums):
                raise RuntimeError("the processes' weights differ: gradients were not synchronised")
        means = (loss_sums / steps_per_epoch).tolist()

        if is_main:
            scores = validate(generator, validation_pairs, device, autocast)
            seconds = time.perf_counter() - epoch_start
            record = {
                "epoch": epoch,
                "step": step,
                "losses": dict(zip(LOSS_NAMES, means, strict=True)),
                **scores,
                **blurred_scores,
                "lr": lr,
                "seconds": seconds,
                "samples_per_second": steps_per_epoch
                * config.batch_size
                * world_size
                / train_seconds,
            }
            metadata = {
                "epoch": epoch,
                "epochs": config.epochs,
                "step": step,
                "preset": preset,
                **scores,
                **blurred_scores,
                "validation": validation_recipe,
                "data": data_recipe["kind"],
                "seed": config.seed,
            }
            if epoch % config.snapshot_every == 0 or epoch in (1, config.epochs):
                # Snapshots feed the attention-evolution view: half precision keeps them small.
                save_generator(
                    generator,
                    out / "snapshots" / f"epoch-{epoch:03d}.safetensors",
                    metadata,
                    dtype=torch.float16,
                )
            if epoch == config.epochs:
                save_generator(generator, out / "generator.safetensors", metadata)
            records.append(record)
            save_resume_state(
                resume_path,
                {
                    "format": RESUME_FORMAT,
                    "version": RESUME_VERSION,
                    "epoch": epoch,
                    "step": step,
                    "generator": generator.state_dict(),
                    "critic": critic.state_dict(),
                    "generator_optimizer": generator_optimizer.state_dict(),
                    "critic_optimizer": critic_optimizer.state_dict(),
                    "metrics": records,
                    "config": config.to_dict(),
                },
            )
            # Appended last: a line in metrics.jsonl means the epoch's files are all written.
            with open(metrics_path, "ab") as handle:
                handle.write(metrics_lines([record]))
                handle.flush()
                os.fsync(handle.fileno())
            tqdm.write(
                f"epoch {epoch}/{config.epochs}  step {step}  content {means[1]:.4f}  "
                f"adv {means[2]:+.3f}  critic {means[3]:+.3f}  gp {means[4]:.3f}  "
                f"val PSNR {scores['val_psnr']:.2f} dB "
                f"(blurred {blurred_scores['val_psnr_blurred']:.2f})  "
                f"SSIM {scores['val_ssim']:.4f} ({blurred_scores['val_ssim_blurred']:.4f})  "
                f"lr {lr:.2e}  {seconds:.0f} s  {record['samples_per_second']:.1f} samples/s"
            )
        if world_size > 1:
            dist.barrier()
        # Stop when another epoch as long as this one would end past the session's budget;
        # rank 0 decides for every process.
        if args.stop_after_minutes and epoch < last_epoch:
            now = time.perf_counter()
            over = (now - session_start) + (now - epoch_start) > 60 * args.stop_after_minutes
            stop = torch.tensor([float(over)], device=device)
            if world_size > 1:
                dist.broadcast(stop, src=0)
            if stop.item():
                if is_main:
                    print(f"note: stopped after epoch {epoch} (--stop-after-minutes)")
                break

    if is_main:
        finished = bool(records) and records[-1]["epoch"] >= config.epochs
        print(
            f"\n{'Training finished' if finished else 'Training stopped (resume with --resume)'}: "
            f"{records[-1]['epoch'] if records else 0}/{config.epochs} epochs, {step} steps, "
            f"{format_seconds(sum(r['seconds'] for r in records))} in all "
            f"({format_seconds(time.perf_counter() - session_start)} in this session)"
        )
        if records:
            best = max(records, key=lambda r: r["val_psnr"])
            last = records[-1]
            print(
                f"  validation ({validation_recipe['kind']}, {validation_recipe['size']} images):\n"
                f"    final (epoch {last['epoch']}): PSNR {last['val_psnr']:.2f} dB, "
                f"SSIM {last['val_ssim']:.4f}\n"
                f"    best  (epoch {best['epoch']}): PSNR {best['val_psnr']:.2f} dB, "
                f"SSIM {best['val_ssim']:.4f}\n"
                f"    blurred input:    PSNR {last['val_psnr_blurred']:.2f} dB, "
                f"SSIM {last['val_ssim_blurred']:.4f}"
            )
        print(
            f"  outputs in {out}: config.json, metrics.jsonl, snapshots/, resume.pt"
            + (", generator.safetensors" if finished else "")
        )
    if world_size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
