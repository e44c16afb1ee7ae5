"""Other runtimes for the network pass, against the one the Deblurrer uses: is any worth it?

    .venv/bin/pip install onnx onnxruntime openvino    # optional: each missing one is skipped
    .venv/bin/python bench/runtimes.py [--checkpoint PATH] [--repeats 5] [--json OUT]

At 1280x720 on the CPU, in one run with interleaved repeats (median), each option's seconds for
the generator's forward, as a ratio to PyTorch's bf16 channels-last pass (what
`Deblurrer.from_checkpoint()` runs), with its mean absolute difference from PyTorch's fp32
output in 8-bit levels, and what it costs before the first image (export or compile seconds):
  - torch.compile (inductor) of the same module, bf16 autocast, channels-last input;
  - the graph exported to ONNX (fp32) on ONNX Runtime's CPU provider;
  - the same ONNX graph on OpenVINO, f32 and with its bf16 inference hint.
An exported graph holds one fixed image size and gives up the Deblurrer's image-level
statistics for tiles (InstanceNorm would be recomputed per tile), so it would have to win by a
wide margin to be adopted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from inference import (  # bench/inference.py, beside this script
    cpu_name,
    difference,
    forward,
    interleaved,
    load,
    test_image,
)

HEIGHT, WIDTH = 720, 1280


class ImageOnly(torch.nn.Module):
    """The generator with a plain tensor output, as exporters want it: (1, 3, H, W) in [0, 1]."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x).image


def timed(make: Callable[[], Callable[[], object]]) -> tuple[Callable[[], object], float]:
    """Build a runner with `make` and call it once; returns it and the seconds until the first
    output (export, compile and first call)."""
    start = time.perf_counter()
    run = make()
    run()
    return run, time.perf_counter() - start


def export_onnx(model: torch.nn.Module, x: torch.Tensor, folder: Path) -> Path:
    path = folder / "generator.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["image"])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    generator, source = load(args.checkpoint)
    generator.eval()
    image, photo = test_image(HEIGHT, WIDTH)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    x_cl = x.clone(memory_format=torch.channels_last)
    reference = forward(generator, x, None)()
    runners: dict[str, Callable[[], np.ndarray | torch.Tensor]] = {}
    setup: dict[str, float] = {}
    skipped: list[str] = []

    runners["pytorch bf16 channels-last (the Deblurrer's)"] = forward(
        generator, x_cl, torch.bfloat16
    )
    runners["pytorch fp32"] = forward(generator, x, None)
    compiled = torch.compile(generator)
    name = "torch.compile bf16 channels-last"
    runners[name], setup[name] = timed(lambda: forward(compiled, x_cl, torch.bfloat16))

    with tempfile.TemporaryDirectory() as folder:
        onnx_path = None
        if importlib.util.find_spec("onnx") is None:
            skipped.append("ONNX export (pip install onnx)")
        else:
            start = time.perf_counter()
            onnx_path = export_onnx(ImageOnly(generator), x, Path(folder))
            export_seconds = time.perf_counter() - start
        if onnx_path is not None and importlib.util.find_spec("onnxruntime") is not None:
            import onnxruntime

            def make_ort():
                session = onnxruntime.InferenceSession(
                    str(onnx_path), providers=["CPUExecutionProvider"]
                )
                feed = {"x": x.numpy()}
                return lambda: session.run(None, feed)[0]

            name = "onnxruntime fp32"
            runners[name], seconds = timed(make_ort)
            setup[name] = seconds + export_seconds
        elif onnx_path is not None:
            skipped.append("ONNX Runtime (pip install onnxruntime)")
        if onnx_path is not None and importlib.util.find_spec("openvino") is not None:
            import openvino

            core = openvino.Core()
            for precision in ("f32", "bf16"):

                def make_ov(precision: str = precision):
                    config = {"INFERENCE_PRECISION_HINT": precision}
                    net = core.compile_model(str(onnx_path), "CPU", config)
                    request = net.create_infer_request()
                    return lambda: request.infer({0: x.numpy()})[0].copy()

                name = f"openvino {precision}"
                runners[name], seconds = timed(make_ov)
                setup[name] = seconds + export_seconds
        elif onnx_path is not None:
            skipped.append("OpenVINO (pip install openvino)")

        seconds = interleaved(runners, args.repeats, torch.device("cpu"))
        outputs = {name: run() for name, run in runners.items()}

    def to_unit(a: np.ndarray) -> np.ndarray:  # (1, 3, H, W) -> (H, W, 3), both in [0, 1]
        return np.asarray(a.float() if isinstance(a, torch.Tensor) else a)[0].transpose(1, 2, 0)

    base = next(iter(seconds.values()))
    report = {
        "checkpoint": source,
        "image": f"{photo} ({WIDTH}x{HEIGHT})",
        "device": cpu_name(),
        "threads": torch.get_num_threads(),
        "options": {
            name: {
                "seconds": round(seconds[name], 4),
                "vs_deblurrer_pass": round(seconds[name] / base, 3),
                "mean_abs_diff_vs_fp32_255": round(
                    difference(to_unit(outputs[name]), to_unit(reference)), 4
                ),
                "seconds_before_first_output": round(setup[name], 1) if name in setup else None,
            }
            for name in runners
        },
        "skipped": skipped,
    }
    print(f"{WIDTH}x{HEIGHT} on {report['device']}, {report['threads']} threads")
    for name, row in report["options"].items():
        first = row["seconds_before_first_output"]
        print(
            f"  {name:<46} {row['seconds']:6.3f} s  {row['vs_deblurrer_pass']:5.2f}x  "
            f"|diff| {row['mean_abs_diff_vs_fp32_255']:.3f}/255"
            + (f"  ready after {first:.1f} s" if first is not None else "")
        )
    for what in skipped:
        print(f"  skipped: {what}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
