"""Training losses: WGAN-GP adversarial terms, VGG19 perceptual loss, and pixel content losses.

Images are (B, 3, H, W) float tensors in [0, 1] everywhere in this module.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"

# torchvision's VGG19 ("configuration E") feature extractor: output channels of each 3x3
# convolution, "M" for a 2x2 max-pool. Each convolution is followed by a ReLU, so module
# indices match torchvision's `vgg19().features` and its "features.N.*" state_dict keys.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
_VGG19_LAYOUT += (512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

# ImageNet statistics the torchvision VGG weights were trained with, (1, 3, 1, 1).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

_ALTERNATIVES = (
    "use --content-loss charbonnier (or l1), which needs no pretrained weights, or provide "
    "torchvision's VGG19 ImageNet weights (vgg19-dcbb9e9d.pth, from "
    f"{VGG19_URL}) as a local .pth or .safetensors file"
)


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad critic(x_hat)||_2 - 1)^2], the norm per sample over C, H, W.

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1) per sample (pass `eps` of
    shape (B,) or (B, 1, 1, 1), or a `generator` for the draw, to make it reproducible).
    `real` and `fake` are detached: the penalty trains the critic only. A critic that outputs a
    score map (B, 1, h, w) is reduced to one score per sample by its MEAN over the map, the same
    reduction `critic_loss` uses, so the penalty constrains exactly the function whose
    real-minus-fake difference estimates the Wasserstein distance. The gradient is built with
    create_graph=True so the penalty can be back-propagated. The weight (10 in the paper) is the
    caller's to apply.
    """
    batch = real.shape[0]
    if eps is None:
        eps = torch.rand(batch, 1, 1, 1, generator=generator, device=real.device, dtype=real.dtype)
    eps = eps.reshape(batch, *([1] * (real.dim() - 1))).to(real)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat).reshape(batch, -1).mean(dim=1)  # (B,)
    (gradients,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    # Samples are independent, so d(sum of scores)/d x_hat[b] = d score[b] / d x_hat[b].
    norms = gradients.reshape(batch, -1).norm(2, dim=1)  # (B,): over all of C, H, W
    return ((norms - 1.0) ** 2).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss, minimised by the critic: mean fake score minus mean real score."""
    return fake_scores.mean() - real_scores.mean()


def generator_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss: minus the critic's mean score of the restored images."""
    return -fake_scores.mean()


def l1_loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference."""
    return F.l1_loss(restored, sharp)


def charbonnier_loss(
    restored: torch.Tensor, sharp: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """Mean of sqrt(d^2 + eps^2) - eps (a smooth L1), shifted by eps so identical images give 0.

    The shift is a constant, so the gradient is that of the usual Charbonnier loss.
    """
    difference = restored - sharp
    return (torch.sqrt(difference * difference + eps * eps) - eps).mean()


def frequency_loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the 2-D real FFTs' real and imaginary parts (MIMO-UNet, DeepRFT).

    Computed in float32 even under autocast: half-precision FFTs are inaccurate, and on CUDA
    limited to power-of-two sizes.
    """
    with torch.autocast(device_type=restored.device.type, enabled=False):
        restored_fft = torch.fft.rfft2(restored.float(), dim=(-2, -1))  # (B, C, H, W//2+1)
        sharp_fft = torch.fft.rfft2(sharp.float(), dim=(-2, -1))
        return (torch.view_as_real(restored_fft) - torch.view_as_real(sharp_fft)).abs().mean()


def vgg19_features(num_layers: int = 15) -> nn.Sequential:
    """The first `num_layers` modules of torchvision's VGG19 `features` (random weights).

    The default 15 ends at conv3_3 (before its ReLU), the 7th convolution: the paper's layer.
    Module indices equal torchvision's, so "features.N.*" weights load after dropping the prefix.
    """
    modules: list[nn.Module] = []
    in_channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [
                nn.Conv2d(in_channels, item, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
            ]
            in_channels = item
    if not 1 <= num_layers <= len(modules):
        raise ValueError(f"num_layers must be in 1..{len(modules)}, got {num_layers}")
    return nn.Sequential(*modules[:num_layers])


class VGGWeightsUnavailable(RuntimeError):
    """VGG19 ImageNet weights could not be loaded; the message says what was tried and the fix."""


def _read_state_dict(weights: str | Path | None) -> dict[str, torch.Tensor]:
    """Read a state_dict from a local .pth / .safetensors file, or through torch.hub if None."""
    if weights is None:
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        tried = f"downloading {VGG19_URL} through torch.hub (cache: {hub_dir})"
        try:
            return torch.hub.load_state_dict_from_url(
                VGG19_URL, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
        except Exception as error:
            raise VGGWeightsUnavailable(
                f"Could not load VGG19 weights for the perceptual loss: tried {tried} and got "
                f"{type(error).__name__}: {error}. To fix: {_ALTERNATIVES}."
            ) from error
    path = Path(weights)
    tried = f"reading the local file {path}"
    try:
        if not path.is_file():
            raise FileNotFoundError("no such file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"expected a state_dict, found {type(state).__name__}")
        return state
    except Exception as error:
        raise VGGWeightsUnavailable(
            f"Could not load VGG19 weights for the perceptual loss: tried {tried} and got "
            f"{type(error).__name__}: {error}. To fix: {_ALTERNATIVES}."
        ) from error


def load_vgg19_features(weights: str | Path | None = None, num_layers: int = 15) -> nn.Sequential:
    """VGG19 `features[:num_layers]` with ImageNet weights, frozen and in eval mode.

    `weights`: a torchvision-format state_dict ("features.N.weight" keys; plain "N.weight" keys
    are accepted too) in a .pth file (loaded with weights_only=True) or a .safetensors file; or
    None to fetch torchvision's file through torch.hub, which uses the local hub cache when the
    file is already there. Raises VGGWeightsUnavailable on any failure.
    """
    state = _read_state_dict(weights)
    features = vgg19_features(num_layers)
    own_keys = set(features.state_dict())
    selected = {}
    for key, value in state.items():
        name = key.removeprefix("features.")
        if name in own_keys:
            selected[name] = value
    source = VGG19_URL if weights is None else str(weights)
    missing = sorted(own_keys - set(selected))
    if missing:
        raise VGGWeightsUnavailable(
            f"{source} is not a torchvision VGG19 state_dict: missing {', '.join(missing)}. "
            f"To fix: {_ALTERNATIVES}."
        )
    try:
        features.load_state_dict(selected)
    except RuntimeError as error:
        raise VGGWeightsUnavailable(
            f"{source} does not match VGG19's layer shapes: {error}. To fix: {_ALTERNATIVES}."
        ) from error
    features.requires_grad_(False)
    return features.eval()


class PerceptualLoss(nn.Module):
    """MSE between VGG19 features (default: up to conv3_3) of restored and sharp images in [0, 1].

    Inputs are ImageNet-normalised inside. The features are frozen; the sharp image is the
    target, so no gradient flows into it. `features` defaults to `load_vgg19_features(weights)`.
    """

    def __init__(self, features: nn.Sequential | None = None, weights: str | Path | None = None):
        super().__init__()
        if features is None:
            features = load_vgg19_features(weights)
        features.requires_grad_(False)
        self.features = features.eval()
        self.register_buffer(
            "mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Keep the frozen feature extractor in eval mode whatever the caller's mode."""
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
        """Mean squared difference of the feature maps of `restored` and `sharp`."""
        restored_features = self.features((restored - self.mean) / self.std)
        with torch.no_grad():
            sharp_features = self.features((sharp - self.mean) / self.std)
        return F.mse_loss(restored_features, sharp_features)


def attention_loss(
    attention: torch.Tensor, blur_extent: torch.Tensor, scale_px: float = 8.0
) -> torch.Tensor:
    """BCE between an attention map (B, 1, h, w) and min(blur extent / scale_px, 1).

    `blur_extent` (B, 1, H, W) in pixels is average-pooled to the map's resolution (h, w) =
    (ceil(H/4), ceil(W/4)). Computed in float32 (autocast-safe).
    """
    target = F.adaptive_avg_pool2d(blur_extent.float(), attention.shape[-2:])
    target = (target / scale_px).clamp(0, 1)
    # Written out: F.binary_cross_entropy refuses to run under CUDA autocast.
    probability = attention.float().clamp(1e-6, 1 - 1e-6)
    return -(target * probability.log() + (1 - target) * (1 - probability).log()).mean()
