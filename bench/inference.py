"""Inference benchmark at 1280x720: the default call against a plain fp32 forward, each precision
and layout, the share of the bf16 matmul peak, tiled vs untiled, 12 MP memory, one Explain click.

    .venv/bin/python bench/inference.py [--checkpoint PATH] [--device cpu|cuda] [--json OUT]

Targets (issue 15), all ratios measured in this one run: `Deblurrer.from_checkpoint()`'s default
call at most 0.5x a plain fp32 forward of the same generator; the bf16 network pass at least 40 %
of the bf16 matmul peak; a 12 MP photo under 3 GB peak; an Explain click at its default settings
under 10 s. The timed variants run in interleaved rounds and each keeps its median, so that a
machine that slows down part-way slows all of them alike. Reads a real blurred photo from
../shared/data when it is there (else a smooth pattern), synchronises CUDA before reading the
clock, and measures the 12-megapixel peak in a fresh subprocess (peak RSS on CPU, max allocated
on CUDA).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bag import Deblurrer, DeblurResult, Generator, GeneratorConfig, load_generator
from bag.attribution import AttributionSettings, explain_patch
from bag.imageio import load_image
from bag.inference import DEFAULT_CHECKPOINT

ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared" / "data"


def test_image(height: int, width: int) -> tuple[np.ndarray, str]:
    """A real blurred photo resized to (height, width) if available, else a smooth pattern."""
    import cv2

    candidates = sorted((SHARED / "gopro" / "blur").glob("GOPR*.png"))
    if candidates:
        image = load_image(candidates[0])
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), candidates[0].name
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    pattern = np.stack([np.sin(40 * x), np.cos(30 * y), np.sin(25 * x * y)], -1) * 0.4 + 0.5
    return pattern.astype(np.float32), "synthetic pattern"


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; else what `platform` says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load(checkpoint: str | None):
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if path.exists():
        return load_generator(path)[0], str(path)
    torch.manual_seed(0)
    return Generator(GeneratorConfig.compact()), "random compact (no checkpoint found)"


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two float images in [0, 1] after 8-bit rounding, in levels."""
    return float(np.abs(np.round(a * 255) - np.round(b * 255)).mean())


def conv_flops(generator: Generator, x: torch.Tensor) -> float:
    """Multiply-adds x 2 of every convolution of one forward of `x` (what the peers count)."""
    total = 0.0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.weight.shape[2] * module.weight.shape[3]
        if isinstance(module, nn.ConvTranspose2d):  # each input value meets every output tap
            total += 2 * inputs[0].numel() * module.out_channels * kernel / module.groups
        else:
            total += 2 * output.numel() * module.in_channels * kernel / module.groups

    hooks = [
        m.register_forward_hook(count)
        for m in generator.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    with torch.no_grad():
        generator(x)
    for hook in hooks:
        hook.remove()
    return total


def matmul_peak(device: torch.device, dtype: torch.dtype, repeats: int = 3) -> float:
    """Best FLOP/s of square matrix products (1024..4096) in `dtype`: what the cores can do."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)
        for _ in range(repeats):
            start = _now(device)
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (_now(device) - start))
    return best


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def interleaved(
    variants: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds of each variant over `repeats` rounds (one warm-up call each first)."""
    for run in variants.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = _now(device)
            run()
            times[name].append(_now(device) - start)
    return {name: statistics.median(t) for name, t in times.items()}


def memory_12mp(checkpoint: str | None, device: str) -> float:
    """Peak memory (MB) of restoring a 4000x3000 photo with the default Deblurrer, fresh process."""
    code = (
        "import sys, resource, numpy as np, torch;"
        "sys.argv = ['x']; from inference import load, test_image; from bag import Deblurrer;"
        f"g, _ = load({checkpoint!r}); d = Deblurrer(g, device={device!r});"
        "image, _ = test_image(3000, 4000);"
        "r = d(image); assert r.size == (3000, 4000);"
        "cuda = torch.cuda.max_memory_allocated() / 2**20 if d.device.type == 'cuda' else 0;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cuda)"
    )
    # `python -c` imports from its working directory: this folder, for `inference`.
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        check=True,
    )
    rss, cuda = map(float, out.stdout.split())
    return cuda if device.startswith("cuda") else rss


def forward(
    network: nn.Module, inputs: torch.Tensor, dtype: torch.dtype | None
) -> Callable[[], torch.Tensor]:
    """A call of `network` (a generator, or one compiled) on `inputs` under `dtype` autocast
    (None: none), returning the image (1, 3, H, W) in [0, 1]."""

    def run() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(inputs.device.type, dtype, enabled=dtype is not None):
            return network(inputs).image

    return run


def network_variants(
    generator: Generator, x: torch.Tensor, device: torch.device
) -> dict[str, Callable[[], torch.Tensor]]:
    """One forward of `x` per precision and layout, returning the image (1, 3, H, W) in [0, 1]."""
    channels_last = x.contiguous(memory_format=torch.channels_last)
    generator_cl = copy.deepcopy(generator).to(memory_format=torch.channels_last)
    variants = {
        "fp32 forward": forward(generator, x, None),
        "fp32 forward, channels-last": forward(generator_cl, channels_last, None),
    }
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if dtype == torch.float16 and device.type != "cuda":
            continue
        variants[f"{name} forward"] = forward(generator, x, dtype)
        variants[f"{name} forward, channels-last input"] = forward(generator, channels_last, dtype)
        variants[f"{name} forward, channels-last weights and input"] = forward(
            generator_cl, channels_last, dtype
        )
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-explain", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    generator, source = load(args.checkpoint)
    default = (
        Deblurrer.from_checkpoint(args.checkpoint, device=args.device)
        if args.checkpoint or DEFAULT_CHECKPOINT.exists()
        else Deblurrer(generator, device=args.device)
    )
    device = default.device
    generator = generator.to(device).eval()
    image, name = test_image(720, 1280)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous().to(device)
    report: dict[str, object] = {
        "checkpoint": source,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "image": f"{name} (1280x720)",
        "default_precision": default.precision,
    }

    variants = network_variants(generator, x, device)
    results = {n: run().float().cpu()[0].permute(1, 2, 0).numpy() for n, run in variants.items()}
    default_result: list[DeblurResult] = []
    variants["Deblurrer.from_checkpoint() default call"] = lambda: default_result.append(
        default(image)
    )
    seconds = interleaved(variants, args.repeats, device)
    results["Deblurrer.from_checkpoint() default call"] = default_result[-1].image
    plain = seconds["fp32 forward"]
    reference = results["fp32 forward"]
    print(f"1280x720 on {report['device']}, {report['threads']} threads, median of {args.repeats}")
    timings = {}
    for variant, value in seconds.items():
        diff = difference(results[variant], reference)
        timings[variant] = {
            "seconds": round(value, 4),
            "vs_fp32_forward": round(value / plain, 3),
            "mean_abs_diff_vs_fp32_255": round(diff, 4),
        }
        print(f"  {variant:52s} {value:7.3f} s  {value / plain:5.2f}x  |diff| {diff:.3f}/255")
    report["timings_1280x720"] = timings
    report["default_call_vs_fp32_forward"] = timings["Deblurrer.from_checkpoint() default call"][
        "vs_fp32_forward"
    ]
    report["default_call_target"] = 0.5

    flops = conv_flops(generator, x)
    dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    peak = matmul_peak(device, dtype)
    network = min(
        v for k, v in seconds.items() if k.startswith("bf16" if device.type == "cpu" else "fp16")
    )
    report["conv_gflop_1280x720"] = round(flops / 1e9, 1)
    report[f"matmul_peak_gflops_{str(dtype)[6:]}"] = round(peak / 1e9, 1)
    report["network_share_of_peak"] = round(flops / network / peak, 3)
    report["network_share_target"] = 0.4
    print(
        f"  {flops / 1e9:.0f} GFLOP of convolutions; fastest reduced-precision pass "
        f"{flops / network / 1e9:.0f} GFLOP/s = {report['network_share_of_peak']:.0%} of the "
        f"{str(dtype)[6:]} matmul peak ({peak / 1e9:.0f} GFLOP/s)"
    )

    large, _ = test_image(1000, 1500)
    untiled = Deblurrer(generator, device=device, tile=None, precision="float32")(large)
    tiled = Deblurrer(
        generator, device=device, tile=256, overlap=64, precision="float32", max_untiled_pixels=0
    )(large)
    report["tiled_vs_untiled_1000x1500_tile256"] = round(difference(tiled.image, untiled.image), 4)
    print(
        f"  tiled (256 px, {tiled.tiles} tiles) vs untiled, 1000x1500: "
        f"{report['tiled_vs_untiled_1000x1500_tile256']:.3f}/255"
    )
    if not args.skip_memory:
        report["peak_mb_12mp"] = round(memory_12mp(args.checkpoint, str(device)), 1)
        print(f"  12 MP photo, default Deblurrer: peak memory {report['peak_mb_12mp']:.0f} MB")
    if not args.skip_explain:
        point = (image.shape[1] / 2, image.shape[0] / 2)
        explain = interleaved(
            {"explain": lambda: explain_patch(lambda t: generator(t).image, image, point)},
            max(1, args.repeats // 2),
            device,
        )["explain"]
        report["explain_default_seconds"] = round(explain, 2)
        report["explain_default_settings"] = dataclasses.asdict(AttributionSettings())
        print(f"  Explain click, default settings: {explain:.2f} s (target 10 s)")
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
