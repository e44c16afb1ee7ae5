"""Where the app finds its files, and the sizes and limits it works within."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "generator.safetensors"
DEFAULT_SNAPSHOTS = ROOT / "checkpoints" / "snapshots"
DEFAULT_METRICS = ROOT / "checkpoints" / "metrics.jsonl"
DEFAULT_MODEL_CARD = ROOT / "checkpoints" / "README.md"
DEFAULT_EXAMPLES = ROOT / "assets"
DEFAULT_EXAMPLES_CACHE = Path(".gradio", "cached_examples")

ATTENTION_MAX_SIDE = 1024  # attention pictures are shown at most this large (stats: full size)
EXPLAIN_VIEW_MAX_SIDE = 1280  # the clickable images of the Explain tab
EVOLUTION_MAX_SIDE = 512  # default size the evolution view runs at (keeps it interactive)
GRID_CELL_MAX_SIDE = 256  # cells of the epochs x modules grid
GRID_MAX_ROWS = 12  # more snapshots than this: the grid shows an even subset (slider: all)
OUTPUT_MAX_AGE_S = 3600  # per-request output folders older than this are removed
SESSION_TTL_S = 3600  # a session's decoded photo and maps are dropped after an idle hour
PIXEL_BUDGET = 4_000_000  # interactive requests above this are downscaled (one untiled pass)
QUEUE_MAX_SIZE = 16  # requests waiting for the model worker; more are refused as "busy"
