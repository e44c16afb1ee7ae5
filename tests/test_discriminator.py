"""PatchDiscriminator: output shape, no sigmoid/BatchNorm, and a measured 70x70 receptive field."""

import pytest
import torch
from torch import nn

from bag.discriminator import PatchDiscriminator, receptive_field


def test_score_map_shape_and_unbounded_scores():
    torch.manual_seed(0)
    critic = PatchDiscriminator(base_channels=8)
    scores = critic(torch.rand(2, 3, 64, 48))
    # 64 -> 32 -> 16 -> 8 (stride 2), then -> 7 -> 6 (4x4, stride 1, padding 1).
    assert scores.shape == (2, 1, 6, 4)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.Sigmoid) for m in critic.modules())
    scaled = critic(torch.rand(2, 3, 64, 48)) * 1000
    assert scaled.min() < 0 < scaled.max()


def test_default_channels_follow_patchgan():
    critic = PatchDiscriminator()
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)


def _measured_receptive_field(critic: nn.Module, size: int) -> tuple[int, int, int]:
    """Height, width and count of the input pixels one central output score depends on."""
    image = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    scores = critic(image)
    _, _, h, w = scores.shape
    scores[0, 0, h // 2, w // 2].backward()
    touched = image.grad.abs().sum(dim=1)[0] > 0  # (size, size)
    rows = torch.nonzero(touched.any(dim=1)).flatten()
    cols = torch.nonzero(touched.any(dim=0)).flatten()
    # The window must lie inside the image, or zero padding would clip it.
    assert rows.min() > 0 and rows.max() < size - 1 and cols.min() > 0 and cols.max() < size - 1
    height = int(rows.max() - rows.min() + 1)
    width = int(cols.max() - cols.min() + 1)
    return height, width, int(touched.sum())


@pytest.mark.parametrize(("num_layers", "expected"), [(3, 70), (2, 34)])
def test_receptive_field_is_measured_exactly(num_layers, expected):
    torch.manual_seed(0)
    critic = PatchDiscriminator(base_channels=4, num_layers=num_layers).double()
    height, width, count = _measured_receptive_field(critic, size=160)
    assert critic.receptive_field == receptive_field(num_layers) == expected
    assert (height, width) == (expected, expected)
    assert count == expected * expected  # every pixel inside the window matters
