"""Building blocks of the BAG generator, one block per file."""

from bag.layers.dense_block import DenseBlock
from bag.layers.norm import InstanceNorm, StatisticsRecorder, norm_layer
from bag.layers.plain_block import PlainBlock
from bag.layers.residual_block import ResidualBlock
from bag.layers.spatial_attention import SpatialAttention

__all__ = [
    "DenseBlock",
    "InstanceNorm",
    "PlainBlock",
    "ResidualBlock",
    "SpatialAttention",
    "StatisticsRecorder",
    "norm_layer",
]
