"""The About tab: the paper, the loaded model, the limits, and the model card."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from explorer.model import Model

PAPER = (
    "Li, Yang, Lam, Zhuo and Li, *Blur-Attention: A boosting mechanism for non-uniform "
    "blurred image restoration*, Neurocomputing; "
    "[arXiv:2008.08526](https://arxiv.org/abs/2008.08526)"
)

LIMITS = """
### Limits
- The shipped checkpoint is sized for CPUs (see "Loaded model" above and the model card
  below): smaller than the paper's 11.6 M-parameter network and trained on a small budget,
  so expect less than the paper's 29.4 dB on GoPro. The model card has the measured numbers.
- It removes **motion blur** of the kind it was trained on. It does not fix defocus blur,
  noise, compression artefacts or saturated highlights, and it can leave residual blur on
  very large motions.
- Attention maps are internal weights of the network. They often light up around moving,
  blurred structure, but they are not a calibrated blur detector.
- Attribution is computed on a crop with a fixed number of path steps: the gap between the
  summed attribution and the change of the objective (shown in the Explain tab) tells how
  accurate the integral is.
- Large photos are downscaled to this app's per-request pixel limit (the Restore tab says
  so); the command line `bag deblur` restores them at full size, in overlapping tiles.
"""


def strip_front_matter(text: str) -> str:
    """Markdown without a leading YAML front matter block (--- ... ---)."""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4 :].lstrip("\n")
    return text


def model_card(path: Path) -> str:
    """The model card as Markdown under its own title (one heading, not two), or a note."""
    if not path.is_file():
        return f"## Model card\n*No model card found at `{path}`.*"
    card = strip_front_matter(path.read_text(encoding="utf-8"))
    return card if card.lstrip().startswith("#") else "## Model card\n" + card


def about_text(model: Model) -> str:
    """The paper, the loaded model and the limits, as Markdown."""
    return (
        f"## The paper\n{PAPER}.\n\nThis is an independent open implementation "
        "(no official code exists). Attribution follows Gu & Dong, *Interpreting "
        "Super-Resolution Networks with Local Attribution Maps*, CVPR 2021, with "
        "[captum](https://captum.ai) Integrated Gradients.\n\n"
        f"## Loaded model\n{model.description()}\n" + LIMITS
    )


def build_about_tab(model: Model, model_card_path: Path) -> None:
    """The tab's (static) components, inside an open gr.Tab."""
    gr.Markdown(about_text(model))
    gr.Markdown(model_card(model_card_path), elem_id="model-card")
