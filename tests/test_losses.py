"""Losses: gradient penalty against analytic values, WGAN terms, content losses, VGG loading."""

import urllib.error

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from bag.discriminator import PatchDiscriminator
from bag.losses import (
    VGG19_URL,
    PerceptualLoss,
    VGGWeightsUnavailable,
    charbonnier_loss,
    critic_loss,
    frequency_loss,
    generator_adversarial_loss,
    gradient_penalty,
    l1_loss,
    load_vgg19_features,
    vgg19_features,
)


class LinearCritic(nn.Module):
    """f(x) = sum(w * x) per sample, output (B, 1, 1, 1): its gradient is w everywhere."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return (x * self.weight).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1)


class QuadraticCritic(nn.Module):
    """f(x) = 0.5 * sum(x^2) per sample: its gradient at x is x itself."""

    def forward(self, x):
        return 0.5 * (x * x).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1)


def _pair(batch=3, shape=(3, 8, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, *shape, generator=g), torch.rand(batch, *shape, generator=g)


def test_gradient_penalty_of_linear_critic_uses_per_sample_norm():
    torch.manual_seed(0)
    weight = torch.randn(3, 8, 6) * 0.3
    real, fake = _pair()
    penalty = gradient_penalty(LinearCritic(weight), real, fake)
    per_sample = (weight.norm() - 1) ** 2
    # The known bug: a norm over channels at each pixel, then averaged over pixels.
    per_pixel = ((weight.norm(dim=0) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(per_sample.item(), rel=1e-5)
    assert abs(per_sample - per_pixel) > 0.1  # so the assertion above tells them apart


def test_gradient_penalty_norm_is_per_sample_not_per_batch():
    real, fake = _pair(batch=4)
    eps = torch.tensor([0.0, 0.3, 0.7, 1.0])
    penalty = gradient_penalty(QuadraticCritic(), real, fake, eps=eps)
    x_hat = eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    whole_batch = (x_hat.norm() - 1) ** 2
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    assert abs(expected - whole_batch) > 0.1


def test_gradient_penalty_averages_a_score_map():
    # A 1x1 convolution gives a (B, 1, H, W) map; averaging it makes the gradient w_c / (H*W)
    # at every pixel, so the per-sample norm is ||w_c|| / sqrt(H*W).
    conv = nn.Conv2d(3, 1, kernel_size=1, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([3.0, -4.0, 12.0]).view(1, 3, 1, 1))  # ||w|| = 13
    real, fake = _pair(shape=(3, 4, 4))
    penalty = gradient_penalty(conv, real, fake)
    assert penalty.item() == pytest.approx((13.0 / 4.0 - 1.0) ** 2, rel=1e-5)


def test_gradient_penalty_eps_is_drawn_per_sample_from_the_generator():
    real, fake = _pair(batch=5)
    first = gradient_penalty(
        QuadraticCritic(), real, fake, generator=torch.Generator().manual_seed(7)
    )
    again = gradient_penalty(
        QuadraticCritic(), real, fake, generator=torch.Generator().manual_seed(7)
    )
    eps = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(7))
    assert torch.unique(eps).numel() == 5
    explicit = gradient_penalty(QuadraticCritic(), real, fake, eps=eps)
    assert first.item() == again.item() == pytest.approx(explicit.item())


def test_gradient_penalty_trains_the_critic_only():
    torch.manual_seed(0)
    critic = PatchDiscriminator(base_channels=4)
    real = torch.rand(2, 3, 32, 32)
    fake = torch.rand(2, 3, 32, 32, requires_grad=True)
    penalty = gradient_penalty(critic, real, fake)
    penalty.backward()
    assert penalty.item() > 0
    # Every weight shapes the input gradient; the last bias does not (the critic is shift-free).
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    assert fake.grad is None


def test_wasserstein_losses():
    real_scores = torch.tensor([[1.0, 3.0]])
    fake_scores = torch.tensor([[-1.0, 0.0]])
    assert critic_loss(real_scores, fake_scores).item() == pytest.approx(-0.5 - 2.0)
    assert generator_adversarial_loss(fake_scores).item() == pytest.approx(0.5)


@pytest.mark.parametrize("loss", [l1_loss, charbonnier_loss, frequency_loss])
def test_content_losses_zero_on_identical_positive_and_differentiable(loss):
    sharp, other = _pair(batch=2, shape=(3, 12, 10))
    assert loss(sharp, sharp.clone()).item() == pytest.approx(0.0, abs=1e-6)
    restored = other.clone().requires_grad_(True)
    value = loss(restored, sharp)
    value.backward()
    assert value.item() > 0.01
    assert torch.isfinite(restored.grad).all() and restored.grad.abs().sum() > 0


def test_charbonnier_is_smooth_l1():
    sharp = torch.zeros(1, 3, 4, 4)
    assert charbonnier_loss(sharp + 0.5, sharp).item() == pytest.approx(0.5, abs=2e-3)
    assert charbonnier_loss(sharp + 1e-4, sharp).item() < 1e-5  # quadratic near zero


def test_frequency_loss_of_constant_offset_and_float32_under_autocast():
    # A constant offset c only changes the DC coefficient, by c*H*W (real part); the mean runs
    # over H * (W//2 + 1) complex coefficients, each counted as 2 reals.
    height, width, offset = 8, 10, 0.25
    sharp = torch.rand(2, 3, height, width)
    expected = offset * height * width / (height * (width // 2 + 1) * 2)
    assert frequency_loss(sharp + offset, sharp).item() == pytest.approx(expected, rel=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = frequency_loss((sharp + offset).bfloat16(), sharp.bfloat16())
    assert value.dtype == torch.float32


def test_vgg19_features_match_torchvision_layout():
    features = vgg19_features()
    assert len(features) == 15
    convs = {i: m for i, m in enumerate(features) if isinstance(m, nn.Conv2d)}
    assert sorted(convs) == [0, 2, 5, 7, 10, 12, 14]  # conv3_3 is the 7th conv, index 14
    assert (convs[14].in_channels, convs[14].out_channels) == (256, 256)
    assert isinstance(features[4], nn.MaxPool2d) and isinstance(features[9], nn.MaxPool2d)
    assert len(vgg19_features(37)) == 37


def _torchvision_state_dict(seed=0):
    """Random VGG19 weights with torchvision's key names, plus unrelated classifier keys."""
    torch.manual_seed(seed)
    state = {f"features.{k}": v for k, v in vgg19_features(16).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_vgg19_features_from_local_file(tmp_path, suffix):
    state = _torchvision_state_dict()
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    reference = vgg19_features()
    own_keys = reference.state_dict().keys()
    reference.load_state_dict({k: state[f"features.{k}"] for k in own_keys})
    loaded = load_vgg19_features(path)
    image = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded(image), reference(image))
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())


def test_missing_or_bad_file_names_the_alternatives(tmp_path):
    with pytest.raises(VGGWeightsUnavailable, match="--content-loss charbonnier") as caught:
        load_vgg19_features(tmp_path / "absent.pth")
    assert "absent.pth" in str(caught.value)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(VGGWeightsUnavailable, match="garbage.pth"):
        load_vgg19_features(garbage)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, wrong)
    with pytest.raises(VGGWeightsUnavailable, match="missing"):
        load_vgg19_features(wrong)
    with pytest.raises(VGGWeightsUnavailable, match="charbonnier"):
        PerceptualLoss(weights=tmp_path / "absent.pth")


def test_unreachable_url_names_the_alternatives(monkeypatch):
    def unreachable(url, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", unreachable)
    with pytest.raises(VGGWeightsUnavailable) as caught:
        load_vgg19_features()
    message = str(caught.value)
    assert VGG19_URL in message and "unreachable" in message
    assert "--content-loss charbonnier (or l1)" in message


def test_url_path_loads_through_torch_hub(monkeypatch):
    state = _torchvision_state_dict(seed=1)
    requested = []

    def cached(url, **kwargs):
        requested.append(url)
        return state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", cached)
    features = load_vgg19_features()
    assert requested == [VGG19_URL]
    assert torch.equal(features[14].weight, state["features.14.weight"])


def test_perceptual_loss_zero_on_identical_positive_otherwise():
    torch.manual_seed(0)
    loss = PerceptualLoss(features=vgg19_features())
    sharp, other = _pair(batch=2, shape=(3, 24, 24))
    assert loss(sharp, sharp.clone()).item() == 0.0
    restored = other.clone().requires_grad_(True)
    value = loss(restored, sharp)
    value.backward()
    assert value.item() > 0
    assert restored.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    loss.train()
    assert not loss.features.training


def test_attention_loss_prefers_maps_that_follow_the_blur():
    from bag.losses import attention_loss

    extent = torch.zeros(1, 1, 16, 16)
    extent[..., :, 8:] = 20.0  # right half blurred by 20 px
    follows = torch.full((1, 1, 4, 4), 0.02)
    follows[..., :, 2:] = 0.98
    opposite = 1 - follows
    assert attention_loss(follows, extent) < 0.1 < attention_loss(opposite, extent)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert attention_loss(follows.bfloat16(), extent).dtype == torch.float32
