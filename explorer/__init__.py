"""BAG Explorer, the Gradio app: one module per tab (restore, attention, evolution, explain,
about), the per-session state they share (state), and the page that wires them (demo).

Tab modules hold plain functions (tested without a server) and the code that builds and wires
their components; every computation they show comes from `bag/`. Imports flow one way:
app.py -> explorer -> bag.
"""

from explorer.demo import build_demo
from explorer.server import configure_queue, launch_options, main

__all__ = ["build_demo", "configure_queue", "launch_options", "main"]
