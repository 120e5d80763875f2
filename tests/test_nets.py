"""Contracts of genlab.nets: shapes for any image size, hand-computed unpooling, the adjoint."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from genlab.nets import (
    ACTIVATIONS,
    MLP,
    AverageUnpool,
    BedOfNailsUnpool,
    ConvDecoder,
    ConvEncoder,
    DCGANDiscriminator,
    DCGANGenerator,
    MaxUnpool,
    NearestUnpool,
    make_activation,
)


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def _grid(rows) -> torch.Tensor:
    """A (1, 1, h, w) float tensor from a nested list."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# --- activations -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_builds_a_fresh_module(name):
    first, second = make_activation(name), make_activation(name)
    assert isinstance(first, nn.Module) and first is not second
    assert first(torch.zeros(2, 3)).shape == (2, 3)


def test_leaky_relu_slope_is_0_2():
    assert make_activation("leaky_relu")(torch.tensor([-1.0])).item() == pytest.approx(-0.2)


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="relu.*tanh|tanh.*relu"):
        make_activation("swishy")


# --- MLP -------------------------------------------------------------------------------------


def test_mlp_without_hidden_is_one_linear():
    net = MLP(8, (), 3)
    assert _count(net, nn.Linear) == 1
    assert [type(m) for m in net.layers] == [nn.Linear]
    assert net(torch.zeros(5, 8)).shape == (5, 3)


def test_mlp_layers_in_order_with_batch_norm_and_dropout():
    net = MLP(10, (6, 4), 2, activation="tanh", batch_norm=True, dropout=0.5)
    kinds = [type(m) for m in net.layers]
    block = [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout]
    assert kinds == block + block + [nn.Linear]
    assert [m.out_features for m in net.layers if isinstance(m, nn.Linear)] == [6, 4, 2]


def test_mlp_has_no_batch_norm_or_dropout_unless_asked():
    net = MLP(10, (6, 4), 2)
    assert _count(net, nn.BatchNorm1d) == 0 and _count(net, nn.Dropout) == 0


def test_mlp_output_activation_is_applied():
    net = MLP(4, (5,), 3, output_activation="sigmoid")
    assert isinstance(net.layers[-1], nn.Sigmoid)
    out = net(torch.randn(7, 4) * 100)
    assert torch.all((out >= 0) & (out <= 1))


def test_mlp_flattens_image_input():
    net = MLP(3 * 5 * 4, (7,), 2)
    x = torch.randn(6, 3, 5, 4)
    torch.testing.assert_close(net(x), net(x.reshape(6, -1)))


def test_mlp_rejects_wrong_width_and_bad_arguments():
    with pytest.raises(ValueError, match="12 features"):
        MLP(10, (), 2)(torch.zeros(3, 12))
    with pytest.raises(ValueError, match="hidden"):
        MLP(10, (4, 0), 2)
    with pytest.raises(ValueError, match="dropout"):
        MLP(10, (4,), 2, dropout=1.0)
    with pytest.raises(ValueError, match="activation"):
        MLP(10, (), 2, activation="nope")


# --- transposed convolution is the adjoint of convolution, not its inverse --------------------

ADJOINT_CASES = [
    # (in_channels, out_channels, (h, w), kernel, stride, padding)
    (1, 1, (8, 8), (3, 3), (1, 1), (1, 1)),
    (2, 3, (9, 7), (4, 4), (2, 2), (1, 1)),
    (3, 2, (10, 10), (3, 3), (2, 2), (0, 0)),
    (2, 4, (11, 6), (3, 5), (2, 1), (1, 2)),  # non-square kernel, stride and padding
    (1, 2, (13, 13), (5, 5), (3, 3), (2, 2)),
]


@pytest.mark.parametrize(("c_in", "c_out", "size", "kernel", "stride", "padding"), ADJOINT_CASES)
def test_conv_transpose_is_the_adjoint_of_conv(c_in, c_out, size, kernel, stride, padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, c_in, *size, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, *kernel, generator=g, dtype=torch.float64)
    conv_x = F.conv2d(x, weight, stride=stride, padding=padding)
    y = torch.randn(conv_x.shape, generator=g, dtype=torch.float64)
    # the positions a strided conv skips at the end are restored by output_padding
    output_padding = tuple(
        n - ((m - 1) * s - 2 * p + k) for n, m, s, p, k in zip(size, conv_x.shape[2:], stride, padding, kernel, strict=True)
    )
    conv_t_y = F.conv_transpose2d(y, weight, stride=stride, padding=padding, output_padding=output_padding)
    assert conv_t_y.shape == x.shape
    lhs, rhs = (conv_x * y).sum(), (x * conv_t_y).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
    # ... but not the inverse
    round_trip = F.conv_transpose2d(conv_x, weight, stride=stride, padding=padding, output_padding=output_padding)
    assert (round_trip - x).abs().max() > 1.0


# --- conv encoder / decoder ------------------------------------------------------------------

SIZES = [(8, 8), (28, 28), (32, 32), (7, 9), (13, 13)]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_decoder_of_encoder_has_exactly_the_input_shape(size, channels):
    shape = (channels, *size)
    encoder = ConvEncoder(shape, 5, channels=(4, 8))
    decoder = ConvDecoder(5, shape, channels=(8, 4))
    x = torch.rand(3, *shape)
    z = encoder(x)
    assert z.shape == (3, 5)
    assert decoder(z).shape == x.shape
    assert decoder.spatial_sizes == encoder.spatial_sizes[::-1]
    assert decoder.feature_shape == encoder.feature_shape


LAYOUTS = [(3, 2, 2), (5, 2, 1), (3, 1, 2), (4, 2, 3)]  # (kernel_size, stride, number of layers)


@pytest.mark.parametrize(
    ("size", "kernel_size", "stride", "n_layers"),
    # three halvings need at least 8 pixels a side with kernel 4 (8 -> 4 -> 2 -> 1)
    [(size, *layout) for size in SIZES for layout in LAYOUTS if layout[2] < 3 or min(size) >= 8],
)
def test_exact_shapes_for_other_kernels_strides_and_depths(size, kernel_size, stride, n_layers):
    shape = (2, *size)
    channels = (4, 6, 8)[:n_layers]
    kwargs = {"kernel_size": kernel_size, "stride": stride, "hidden": (7,), "batch_norm": True}
    encoder = ConvEncoder(shape, 3, channels=channels, **kwargs)
    decoder = ConvDecoder(3, shape, channels=channels[::-1], **kwargs)
    assert decoder(encoder(torch.rand(4, *shape))).shape == (4, *shape)


def test_encoder_sizes_and_feature_shape():
    encoder = ConvEncoder((1, 28, 28), 2, channels=(32, 64))
    assert encoder.spatial_sizes == [(28, 28), (14, 14), (7, 7)]
    assert encoder.feature_shape == (64, 7, 7)
    assert ConvEncoder((1, 7, 9), 2).spatial_sizes == [(7, 9), (3, 4), (1, 2)]


def test_encoder_accepts_flattened_images():
    encoder = ConvEncoder((3, 8, 8), 4)
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(encoder(x), encoder(x.reshape(2, -1)))


def test_encoder_layers_and_options():
    encoder = ConvEncoder((1, 16, 16), 2, channels=(4, 8), hidden=(10,), activation="elu", batch_norm=True)
    assert _count(encoder, nn.Conv2d) == 2 and _count(encoder, nn.BatchNorm2d) == 2
    assert _count(encoder, nn.Linear) == 2 and _count(encoder, nn.ELU) == 3


def test_decoder_last_layer_has_no_activation():
    decoder = ConvDecoder(3, (1, 8, 8), channels=(8, 4), batch_norm=True)
    assert isinstance(list(decoder.modules())[-1], nn.ConvTranspose2d)
    assert _count(decoder, nn.BatchNorm2d) == 2  # after the projection and the first deconvolution
    assert (decoder(torch.randn(5, 3)) < 0).any()  # raw values, not squashed


@pytest.mark.parametrize("make", [
    lambda: ConvEncoder((1, 4, 4), 2, channels=(8, 16, 32, 64)),
    lambda: ConvDecoder(2, (1, 5, 3), channels=(16, 8, 4)),
    lambda: DCGANDiscriminator((1, 3, 3), channels=(8, 16, 32)),
])
def test_too_small_image_raises_and_says_how_to_fix(make):
    with pytest.raises(ValueError, match="too small.*fewer `channels`"):
        make()


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="input_shape"):
        ConvEncoder((28, 28), 2)
    with pytest.raises(ValueError, match="channels"):
        ConvDecoder(2, (1, 8, 8), channels=())
    with pytest.raises(ValueError, match=r"\(n, 1, 8, 8\)"):
        ConvEncoder((1, 8, 8), 2)(torch.zeros(2, 1, 9, 8))


# --- unpooling -------------------------------------------------------------------------------

SPEC_IMAGE = [[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]]


@pytest.mark.parametrize("pool", [
    lambda x: nn.MaxPool2d(2, return_indices=True)(x),
    lambda x: F.max_pool2d(x, 2, return_indices=True),
])
def test_max_unpool_worked_example_from_the_spec(pool):
    pooled, indices = pool(_grid(SPEC_IMAGE))
    torch.testing.assert_close(pooled, _grid([[5, 6], [7, 8]]))
    out = MaxUnpool(2)(_grid([[1, 2], [3, 4]]), indices)
    torch.testing.assert_close(out, _grid([[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]))


def test_max_unpool_odd_size_with_output_size():
    x = torch.randn(2, 3, 5, 7)
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    out = MaxUnpool(2)(pooled, indices, output_size=x.shape)
    assert out.shape == x.shape
    # every pooled maximum is back where it came from; everything else is zero
    assert torch.equal(out[out != 0], x[out != 0]) and (out != 0).sum() == pooled.numel()


def test_nearest_unpool_hand_computed():
    out = NearestUnpool(2)(_grid([[1, 2], [3, 4]]))
    torch.testing.assert_close(out, _grid([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]))


def test_bed_of_nails_unpool_hand_computed():
    out = BedOfNailsUnpool(2)(_grid([[1, 2], [3, 4]]))
    torch.testing.assert_close(out, _grid([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]))


def test_average_unpool_hand_computed_and_window_sums_give_the_input():
    x = _grid([[1, 2], [3, 4]])
    out = AverageUnpool(2)(x)
    q = 0.25
    expected = [[1 * q, 1 * q, 2 * q, 2 * q], [1 * q, 1 * q, 2 * q, 2 * q],
                [3 * q, 3 * q, 4 * q, 4 * q], [3 * q, 3 * q, 4 * q, 4 * q]]
    torch.testing.assert_close(out, _grid(expected))
    torch.testing.assert_close(4 * F.avg_pool2d(out, 2), x)  # sum-pooling recovers the input


@pytest.mark.parametrize("layer", [NearestUnpool, BedOfNailsUnpool, AverageUnpool])
def test_unpool_shapes_for_k3(layer):
    assert layer(3)(torch.zeros(2, 4, 5, 2)).shape == (2, 4, 15, 6)


def test_average_unpool_is_the_adjoint_of_average_pooling():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 9, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close((F.avg_pool2d(x, 3) * y).sum(), (x * AverageUnpool(3)(y)).sum())


def test_unpool_rejects_bad_kernel():
    with pytest.raises(ValueError, match="kernel_size"):
        NearestUnpool(0)


# --- DCGAN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [0, 10])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_dcgan_generator_output_shape(shape, extra):
    generator = DCGANGenerator(16, shape, channels=(16, 8), in_features_extra=extra)
    z = torch.randn(4, 16)
    if extra:
        y = F.one_hot(torch.arange(4), extra).float()
        out = generator(z, y)
        torch.testing.assert_close(out, generator(torch.cat([z, y], dim=1)))  # pre-concatenated too
    else:
        out = generator(z)
    assert out.shape == (4, *shape)


def test_dcgan_generator_follows_the_guidelines():
    generator = DCGANGenerator(8, (1, 28, 28), channels=(32, 16, 8))
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    first_with_weights = next(m for m in generator.modules() if hasattr(m, "weight"))
    assert linears == [first_with_weights]  # only the projection of z
    assert _count(generator, nn.ConvTranspose2d) == 3 and _count(generator, nn.BatchNorm2d) == 3
    assert _count(generator, nn.ReLU) == 3
    assert isinstance(list(generator.modules())[-1], nn.ConvTranspose2d)  # no BN, no activation at the end


@pytest.mark.parametrize("extra", [0, 10])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 7, 9)])
def test_dcgan_discriminator_output_shape(shape, extra):
    discriminator = DCGANDiscriminator(shape, channels=(8, 16), out_features=3, in_channels_extra=extra)
    x = torch.randn(5, *shape)
    if extra:
        y = F.one_hot(torch.arange(5), extra).float()
        out = discriminator(x, y)
        y_maps = y[:, :, None, None].expand(-1, -1, *shape[1:])
        torch.testing.assert_close(out, discriminator(torch.cat([x, y_maps], dim=1)))
    else:
        out = discriminator(x)
    assert out.shape == (5, 3)


def test_dcgan_discriminator_follows_the_guidelines():
    discriminator = DCGANDiscriminator((1, 32, 32), channels=(8, 16, 32))
    pools = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    assert not any(isinstance(m, pools) for m in discriminator.modules())
    assert _count(discriminator, nn.Linear) == 1
    assert _count(discriminator, nn.BatchNorm2d) == 2  # all convolutions but the first
    assert not isinstance(discriminator.convs[1], nn.BatchNorm2d)
    leaky = [m for m in discriminator.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 3 and all(m.negative_slope == 0.2 for m in leaky)


def test_dcgan_spectral_norm_parametrizes_every_layer_and_drops_batch_norm():
    discriminator = DCGANDiscriminator((1, 16, 16), channels=(8, 16), spectral_norm=True)
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3 and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert _count(discriminator, nn.BatchNorm2d) == 0
    assert discriminator(torch.randn(2, 1, 16, 16)).shape == (2, 1)
    plain = DCGANDiscriminator((1, 16, 16), channels=(8, 16))
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_dcgan_weights_initialised_small():
    generator = DCGANGenerator(64, (1, 32, 32), channels=(64, 32))
    weight = generator.decoder.project.layers[0].weight
    assert 0.015 < weight.std().item() < 0.025


def test_dcgan_rejects_labels_it_was_not_built_for():
    with pytest.raises(ValueError, match="in_features_extra=0"):
        DCGANGenerator(4, (1, 8, 8))(torch.randn(2, 4), torch.eye(2))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        DCGANDiscriminator((1, 8, 8), in_channels_extra=3)(torch.randn(2, 1, 8, 8), torch.eye(2))


def test_sparse_input_linear_reads_only_the_stored_entries():
    """SparseInputLinear (Mult-VAE's first layer): the same map for a dense row and for its stored entries, an empty
    row gives the bias, and the gradient reaches only the weight rows of the stored items."""
    from genlab.nets import MLP

    torch.manual_seed(0)
    mlp = MLP(50, (8,), 3, activation="tanh", sparse_input=True)
    first = mlp.layers[0]
    assert first.weight.shape == (50, 8) and float(first.weight.detach().abs().max()) <= 50 ** -0.5
    cols, values = torch.tensor([3, 7, 7, 40]), torch.tensor([1.0, 2.0, 0.5, 1.0])  # row 0: 3, 7; row 1: 7, 40; row 2: —
    offsets = torch.tensor([0, 2, 4])
    dense = torch.zeros(3, 50)
    dense[0, 3], dense[0, 7], dense[1, 7], dense[1, 40] = 1.0, 2.0, 0.5, 1.0
    torch.testing.assert_close(mlp.forward_sparse(cols, offsets, values), mlp(dense))
    torch.testing.assert_close(first.forward_sparse(cols, offsets, values)[2], first.bias)
    first.forward_sparse(cols, offsets, values).sum().backward()
    touched = first.weight.grad.abs().sum(dim=1).nonzero().flatten().tolist()
    assert touched == [3, 7, 40]
    with pytest.raises(TypeError, match="sparse_input=True"):
        MLP(50, (8,), 3).forward_sparse(cols, offsets, values)
