"""Building blocks of the BAG generator, one block per file."""

from bag.layers.dense_block import DenseBlock
from bag.layers.norm import InstanceNorm, NormSequential, NormStatistics, norm_layer
from bag.layers.plain_block import PlainBlock
from bag.layers.residual_block import ResidualBlock
from bag.layers.spatial_attention import SpatialAttention

__all__ = [
    "DenseBlock",
    "InstanceNorm",
    "NormSequential",
    "NormStatistics",
    "PlainBlock",
    "ResidualBlock",
    "SpatialAttention",
    "norm_layer",
]
