"""BAG Explorer: Blur-Attention-GAN (Li et al., arXiv 2008.08526) for motion deblurring."""

from bag.checkpoint import CheckpointError, load_generator, save_generator
from bag.discriminator import PatchDiscriminator
from bag.inference import Deblurrer, DeblurResult
from bag.model import Generator, GeneratorConfig, GeneratorOutput, count_parameters
from bag.synthesis import BlurSample, BlurSettings, synthesize_blur

__all__ = [
    "BlurSample",
    "BlurSettings",
    "CheckpointError",
    "DeblurResult",
    "Deblurrer",
    "Generator",
    "GeneratorConfig",
    "GeneratorOutput",
    "PatchDiscriminator",
    "count_parameters",
    "load_generator",
    "save_generator",
    "synthesize_blur",
]
