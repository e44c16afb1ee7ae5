"""Contract tests of the generator and its blocks: shapes, ranges, gradients, presets, ablations."""

import dataclasses

import pytest
import torch

from bag import Generator, GeneratorConfig, count_parameters
from bag.layers import DenseBlock, InstanceNorm, NormStatistics, SpatialAttention

ABLATIONS = {
    "plain": dict(block="plain", spatial_attention=False),
    "model1": dict(block="residual", spatial_attention=False),
    "model2": dict(norm="batch", spatial_attention=False),
    "model3": dict(spatial_attention=False),
    "model4": dict(multi_level_residual=False),
    "bag": dict(),
}


@pytest.mark.parametrize("size", [(8, 8), (13, 17), (31, 9), (64, 48)])
def test_shapes_and_ranges_for_odd_sizes(size):
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig.tiny()).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = generator(x)
    assert out.image.shape == x.shape
    assert 0 <= out.image.min() and out.image.max() <= 1
    assert len(out.attention) == 4
    for a in out.attention:
        assert a.shape == (2, 1, -(-size[0] // 4), -(-size[1] // 4))
        assert 0 <= a.min() and a.max() <= 1


def test_rejects_too_small_and_wrong_channels():
    generator = Generator(GeneratorConfig.tiny())
    with pytest.raises(ValueError, match="at least 8x8"):
        generator(torch.rand(1, 3, 7, 20))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        generator(torch.rand(1, 4, 16, 16))


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig.tiny())
    out = generator(torch.rand(2, 3, 20, 24))
    (out.image.mean() + sum(a.mean() for a in out.attention)).backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_parameter_counts_of_presets():
    assert 10_000_000 <= count_parameters(Generator(GeneratorConfig.paper())) <= 13_000_000
    compact = count_parameters(Generator(GeneratorConfig.compact()))
    assert 300_000 <= compact <= 2_000_000
    assert count_parameters(Generator(GeneratorConfig.tiny())) < 50_000


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_variants(name):
    torch.manual_seed(0)
    config = dataclasses.replace(GeneratorConfig.tiny(), **ABLATIONS[name])
    generator = Generator(config).eval()
    with torch.no_grad():
        out = generator(torch.rand(1, 3, 18, 22))
    assert out.image.shape == (1, 3, 18, 22)
    assert len(out.attention) == (4 if config.spatial_attention else 0)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bool(norms) == (config.norm == "batch")


def test_multi_level_residual_changes_the_function():
    torch.manual_seed(0)
    multi = Generator(GeneratorConfig.tiny()).eval()
    ordinary = Generator(dataclasses.replace(GeneratorConfig.tiny(), multi_level_residual=False))
    ordinary.load_state_dict(multi.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(multi(x).image, ordinary.eval()(x).image)


def test_decoder_without_norm_shares_the_weights_and_keeps_the_features_scale():
    torch.manual_seed(0)
    config = GeneratorConfig.tiny()
    normed = Generator(config).eval()
    plain = Generator(dataclasses.replace(config, decoder_norm=False)).eval()
    # The same parameters but the decoder's two norms: a state dict moves across, minus those.
    decoder_norms = {k for k in normed.state_dict() if k.startswith(("decoder.1.", "decoder.4."))}
    assert decoder_norms and set(plain.state_dict()) == set(normed.state_dict()) - decoder_norms
    plain.load_state_dict({k: v for k, v in normed.state_dict().items() if k not in decoder_norms})
    features = torch.rand(1, config.width, 5, 6)
    with torch.no_grad():
        # With the norms, halving the trunk features changes (almost) nothing in the decoder
        # output (only the bias paths); without them, the residual follows the features' scale.
        assert torch.allclose(normed.decoder(features), normed.decoder(features / 2), atol=1e-3)
        assert not torch.allclose(plain.decoder(features), plain.decoder(features / 2), atol=1e-3)
    # A config written before the field existed loads as the paper's decoder.
    old = {k: v for k, v in config.to_dict().items() if k != "decoder_norm"}
    assert GeneratorConfig.from_dict(old).decoder_norm is True


def test_config_validation_and_round_trip():
    config = GeneratorConfig.compact()
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="block"):
        GeneratorConfig(block="transformer")
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({**config.to_dict(), "depth": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.base_channels = 3


def test_dense_block_keeps_width_and_sees_all_earlier_outputs():
    block = DenseBlock(in_channels=8, growth_rate=5, num_layers=3, norm="instance")
    assert [layer[0].in_channels for layer in block.layers] == [8, 13, 18]
    assert block.fusion[0].in_channels == 23
    assert block(torch.rand(1, 8, 9, 11)).shape == (1, 8, 9, 11)


def test_spatial_attention_is_eq3():
    torch.manual_seed(0)
    sau = SpatialAttention()
    x = torch.randn(2, 6, 10, 12)
    pooled = torch.cat([x.max(1, keepdim=True).values, x.mean(1, keepdim=True)], 1)
    expected = torch.sigmoid(
        torch.nn.functional.conv2d(pooled, sau.conv.weight, sau.conv.bias, padding=3)
    )
    torch.testing.assert_close(sau(x), expected)


def norm_and_reference(channels: int, seed: int) -> tuple[InstanceNorm, torch.nn.Module]:
    """Our InstanceNorm with random affine weights, and torch's with the same weights."""
    torch.manual_seed(seed)
    ours, reference = InstanceNorm(channels), torch.nn.InstanceNorm2d(channels, affine=True)
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def test_instance_norm_matches_torch_and_uses_supplied_statistics():
    ours, reference = norm_and_reference(5, seed=0)
    x = torch.randn(2, 5, 7, 9)
    torch.testing.assert_close(ours(x), reference(x))
    given = NormStatistics({ours: (torch.zeros(2, 5), torch.ones(2, 5) - ours.eps)})
    affine = x * ours.weight[:, None, None] + ours.bias[:, None, None]
    torch.testing.assert_close(ours(x, given), affine)
    recorder = NormStatistics()  # records: normalises as without statistics, and keeps them
    torch.testing.assert_close(ours(x, recorder), reference(x))
    mean, var = recorder.moments[ours]
    torch.testing.assert_close(mean, x.mean(dim=(2, 3)))
    torch.testing.assert_close(var, x.var(dim=(2, 3), correction=0))
    with pytest.raises(ValueError, match="another generator"):
        InstanceNorm(5)(x, recorder.frozen())


@pytest.mark.parametrize("name", ["plain", "model1", "bag", "no_decoder_norm"])
def test_norm_statistics_reach_every_instance_norm(name):
    """Tiling's statistics are an argument of forward: every block hands them to its norms."""
    options = ABLATIONS.get(name, dict(decoder_norm=False))
    torch.manual_seed(0)
    generator = Generator(dataclasses.replace(GeneratorConfig.tiny(), **options)).eval()
    with torch.no_grad():  # a strong residual, so that the normalisation shows in the image
        generator.decoder[-1].weight.mul_(10)
    x, crop = torch.rand(1, 3, 40, 48), (..., slice(8, 32), slice(12, 36))
    recorder = NormStatistics()
    with torch.no_grad():
        plain = generator(x)
        recorded = generator(x, norm_statistics=recorder)
        replayed = generator(x, norm_statistics=recorder.frozen())
        tile = generator(x[crop], norm_statistics=recorder.frozen())
        alone = generator(x[crop])
    norms = {m for m in generator.modules() if isinstance(m, InstanceNorm)}
    assert set(recorder.moments) == norms
    for out in (recorded, replayed):
        torch.testing.assert_close(out.image, plain.image, atol=1e-5, rtol=0)
    # A crop normalised with the image's statistics is not normalised by its own.
    assert (tile.image - alone.image).abs().mean() > 1e-3


def test_instance_norm_gradients_match_torch_and_bf16_stays_close():
    # The per-image path is the fused GroupNorm kernel: same values and gradients as
    # nn.InstanceNorm2d, and under bf16 autocast its statistics stay accurate.
    ours, reference = norm_and_reference(6, seed=1)
    x = (torch.randn(3, 6, 11, 13) * 4 + 2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    upstream = torch.randn(3, 6, 11, 13)
    (ours(x) * upstream).sum().backward()
    (reference(x_ref) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reduced = ours(x.detach().bfloat16())
    assert reduced.dtype == torch.bfloat16
    assert (reduced.float() - reference(x.detach())).abs().mean() < 0.02
