"""Networks layer: plain ``nn.Module``s (MLP, conv encoder/decoder, conv + pooling encoder and its unpooling
decoder, unpooling, DCGAN blocks).

No losses, optimisers or loops live here; :mod:`genlab.models` composes these.
"""

from .conv import (
    ConvDecoder,
    ConvEncoder,
    conv_output_size,
    conv_spatial_sizes,
    transposed_output_padding,
)
from .conv_pool import PooledCode, PoolingConvEncoder, UnpoolingConvDecoder
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .mlp import ACTIVATIONS, MLP, make_activation
from .unpool import AverageUnpool, BedOfNailsUnpool, MaxUnpool, NearestUnpool

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "AverageUnpool",
    "BedOfNailsUnpool",
    "ConvDecoder",
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MaxUnpool",
    "NearestUnpool",
    "PooledCode",
    "PoolingConvEncoder",
    "UnpoolingConvDecoder",
    "conv_output_size",
    "conv_spatial_sizes",
    "make_activation",
    "transposed_output_padding",
]
