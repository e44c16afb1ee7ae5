"""Serving the app: the page's theme and CSS, the launch options shared by main(), the tests
and the screenshot script, and `main()` (command-line options, each also an environment
variable). The model is loaded here, never at import."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

import gradio as gr

from bag import CheckpointError, Deblurrer
from explorer.config import (
    DEFAULT_CHECKPOINT,
    DEFAULT_EXAMPLES,
    DEFAULT_METRICS,
    DEFAULT_SNAPSHOTS,
    QUEUE_MAX_SIZE,
)
from explorer.demo import build_demo

# On a narrow (phone) screen the two Restore columns stack: `display: contents` lets the
# results come right after the Restore button, before the examples table.
CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#restore-info p {font-size: 0.95rem;}
.map-image img {image-rendering: auto;}
.small-note p {font-size: 0.85rem; opacity: 0.8;}
@media (max-width: 767px) {
  #restore-row {flex-direction: column;}
  #restore-inputs {display: contents;}
  #restore-results {order: 1;}
  #restore-examples {order: 2;}
}
"""


def launch_options() -> dict[str, Any]:
    """Keyword arguments for `demo.launch` shared by main(), tests and the screenshot script."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="amber"),
        "css": CSS,
        "show_error": True,
        "max_file_size": "64mb",
        "allowed_paths": [str(DEFAULT_EXAMPLES)],
        "footer_links": ["api", "settings"],
    }


def configure_queue(demo: gr.Blocks, max_size: int = QUEUE_MAX_SIZE) -> gr.Blocks:
    """The app's queue: every event one worker, the model events one shared worker (see
    explorer.context.MODEL_EVENTS), and at most `max_size` requests waiting in all.

    Gradio serves each concurrency group on its own, so a slow model request holds only the
    model worker: the other tabs' redraws keep running, and model requests wait their turn in
    order. A full queue refuses a new request at once, which the page shows as "This
    application is currently busy. Please try again." (gradio_client raises QueueError), so
    waits cannot grow without bound.
    """
    return demo.queue(default_concurrency_limit=1, max_size=max_size)


def stop_on_sigterm(demo: gr.Blocks) -> None:
    """Make SIGTERM (what a Space, a container or a service manager sends) close `demo`.

    Python's default handler ends the process at once, and Ctrl-C's path in Gradio closes the
    server but not the page's open event streams, which it then waits on: both leave the
    uploads and the served results on disk. `demo.close()` ends the streams, so the server
    stops, Gradio deletes what it cached (the last step of `delete_cache`), and the app's own
    output folder goes at exit (explorer.files).
    """

    def close(signum: int, frame: Any) -> None:
        demo.close()

    signal.signal(signal.SIGTERM, close)


# (flag, type, environment variable, default, help): every option can also be set by its
# environment variable, which is how a Space configures the app.
OPTIONS = (
    ("--checkpoint", Path, "BAG_CHECKPOINT", DEFAULT_CHECKPOINT, "generator checkpoint"),
    ("--snapshots", Path, "BAG_SNAPSHOTS", DEFAULT_SNAPSHOTS, "folder of epoch snapshots"),
    ("--metrics", Path, "BAG_METRICS", DEFAULT_METRICS, "training log metrics.jsonl"),
    ("--device", str, "BAG_DEVICE", "auto", "auto (CUDA when present), cpu or cuda"),
    ("--host", str, "GRADIO_SERVER_NAME", "127.0.0.1", "address; 0.0.0.0 for all interfaces"),
    ("--port", int, "GRADIO_SERVER_PORT", 7860, "port"),
)


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The command line of `python app.py`, with environment-variable defaults."""
    parser = argparse.ArgumentParser(description="Serve the BAG Explorer Gradio app.")
    for flag, kind, variable, default, text in OPTIONS:
        value = os.environ.get(variable) or default
        parser.add_argument(
            flag, type=kind, default=kind(value), help=f"{text} (env {variable}; default {default})"
        )
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve the app: load the checkpoint, build the demo, launch it."""
    parser, args = parse_args(argv)
    try:
        deblurrer = Deblurrer.from_checkpoint(args.checkpoint, device=args.device)
    except CheckpointError as error:
        parser.exit(1, f"error: {error}\n")
    demo = build_demo(
        deblurrer,
        checkpoint_path=args.checkpoint,
        snapshots_dir=args.snapshots,
        metrics_path=args.metrics,
    )
    stop_on_sigterm(demo)
    configure_queue(demo).launch(server_name=args.host, server_port=args.port, **launch_options())
