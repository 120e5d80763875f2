"""Options the lectures' worked examples need (issue 15, item 1), as parameters: the GAN's separate generator and
discriminator widths and activations, the two-class softmax discriminator head (the same model as the one-logit
head, checked to rounding), the VAE's tanh Gaussian mean, ``scaling="center"``, and the one-line errors around them."""

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import genlab
from conftest import assert_user_error, run
from genlab import GAN, VAE, Autoencoder, InvalidInputError
from genlab.data.scaling import Scaling
from genlab.models import Batch, GANConfig, GANModule

TINY = dict(epochs=1, batch_size=64, random_state=0, verbose=0, device="cpu")
QUICK = ["--epochs", "1", "--batch-size", "64", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def X():
    """200 digits as (200, 1, 8, 8) in [0, 1]."""
    return genlab.datasets.load("digits")[0][:200].copy()


def _module(est, input_shape, n_classes=None):
    """The module an unfitted estimator's parameters build for samples of ``input_shape`` (no training)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return est._make_module(SimpleNamespace(**est._validated_params()), input_shape, n_classes)


def _linear_widths(net) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]


def _activation_types(net) -> set[type]:
    return {type(m) for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU))}


# -- the GAN's two networks -----------------------------------------------------------------------
def test_ex_68_6_networks_are_built_as_the_lecture_states():
    gan = GAN(2, hidden_g=(256, 512, 1024), hidden_d=(1024, 512, 256), activation_d="relu", d_head="softmax", output="tanh")
    module = _module(gan, (1, 28, 28))
    assert _linear_widths(module.generator) == [(2, 256), (256, 512), (512, 1024), (1024, 784)]
    assert _linear_widths(module.discriminator) == [(784, 1024), (1024, 512), (512, 256), (256, 2)]
    assert _activation_types(module.generator) == _activation_types(module.discriminator) == {nn.ReLU}
    assert isinstance(module.output_activation, nn.Tanh)
    x = torch.rand(5, 1, 28, 28)
    assert module.logits(x).shape == (5, 2) and module.real_fake_logit(x).shape == (5,)


def test_hidden_is_the_shorthand_and_the_specific_widths_and_activations_win():
    default = _module(GAN(), (64,))
    assert _linear_widths(default.generator) == [(16, 256), (256, 256), (256, 64)]
    assert _linear_widths(default.discriminator) == [(64, 256), (256, 256), (256, 1)]
    assert _activation_types(default.generator) == {nn.ReLU} and _activation_types(default.discriminator) == {nn.LeakyReLU}
    both = _module(GAN(4, hidden=(32,)), (64,))
    assert _linear_widths(both.generator) == [(4, 32), (32, 64)] and _linear_widths(both.discriminator) == [(64, 32), (32, 1)]
    mixed = _module(GAN(4, hidden=(32,), hidden_d=(8, 8), activation_g="tanh", activation_d="elu"), (64,))
    assert _linear_widths(mixed.generator) == [(4, 32), (32, 64)]  # hidden still shapes G
    assert _linear_widths(mixed.discriminator) == [(64, 8), (8, 8), (8, 1)]
    assert _activation_types(mixed.generator) == {nn.Tanh} and _activation_types(mixed.discriminator) == {nn.ELU}
    only_g = _module(GAN(4, hidden_g=(12,)), (64,))
    assert _linear_widths(only_g.generator) == [(4, 12), (12, 64)] and _linear_widths(only_g.discriminator)[0] == (64, 256)


# -- the softmax head is the logit head -----------------------------------------------------------------
@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _gan_pair(loss, label_smoothing, instance_noise):
    """A softmax-head and a logit-head GAN with the same generator and the same discriminator up to its last layer, whose
    one logit is set to l_real − l_fake of the softmax head's (random, non-zero) two."""
    kw = dict(input_shape=(6,), latent_dim=3, hidden=(5, 4), loss=loss, label_smoothing=label_smoothing,
              instance_noise=instance_noise, ema=0.0)
    torch.manual_seed(0)
    softmax = GANModule(GANConfig(**kw, d_head="softmax"))
    logit = GANModule(GANConfig(**kw, d_head="logit"))
    logit.generator.load_state_dict(softmax.generator.state_dict())
    shared = {k: v for k, v in softmax.discriminator.state_dict().items() if not k.startswith("layers.4.")}
    logit.discriminator.load_state_dict(shared, strict=False)
    with torch.no_grad():
        two, one = softmax.discriminator.layers[4], logit.discriminator.layers[4]  # (4 -> 2) and (4 -> 1)
        one.weight.copy_(two.weight[0:1] - two.weight[1:2])
        one.bias.copy_(two.bias[0:1] - two.bias[1:2])
    return softmax, logit


def _losses_and_grads(module, x, z):
    """Both players' losses on (x, G(z)) and their gradients wrt G and wrt D's layers before the head."""
    module.zero_grad()
    generator = torch.Generator().manual_seed(1)  # the instance noise: the same draws for both modules
    fake = module.generate(z)
    terms = module.discriminator_terms(Batch(x), fake.detach(), None, generator)
    g_loss = module.generator_loss(fake, None)
    d_body = [p for name, p in module.discriminator.named_parameters() if not name.startswith("layers.4.")]
    d_grads = torch.autograd.grad(terms["d_loss"], d_body)
    g_grads = torch.autograd.grad(g_loss, list(module.generator.parameters()) + d_body)
    head = torch.autograd.grad(module.discriminator_terms(Batch(x), fake.detach(), None, torch.Generator().manual_seed(1))["d_loss"],
                               module.discriminator.layers[4].weight)[0]
    return terms, g_loss, d_grads, g_grads, head


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating"])
@pytest.mark.parametrize("label_smoothing, instance_noise", [(1.0, 0.0), (0.9, 0.0), (0.9, 0.3)])
def test_softmax_head_gives_the_logit_heads_losses_and_gradients(loss, label_smoothing, instance_noise, float64):
    softmax, logit = _gan_pair(loss, label_smoothing, instance_noise)
    x, z = torch.randn(16, 6), torch.randn(16, 3)
    np.testing.assert_allclose(softmax.real_fake_logit(x).detach(), logit.real_fake_logit(x).detach(), rtol=1e-12, atol=1e-14)
    s_terms, s_g, s_dgrads, s_ggrads, s_head = _losses_and_grads(softmax, x, z)
    l_terms, l_g, l_dgrads, l_ggrads, l_head = _losses_and_grads(logit, x, z)
    for key in ("d_loss", "d_real", "d_fake", "js_estimate"):
        np.testing.assert_allclose(s_terms[key].item(), l_terms[key].item(), rtol=1e-12, atol=1e-14, err_msg=key)
    np.testing.assert_allclose(s_g.item(), l_g.item(), rtol=1e-12, atol=1e-14)
    assert len(s_dgrads) == len(l_dgrads) == 4 and len(s_ggrads) == len(l_ggrads) == 10
    for a, b in zip(s_dgrads + s_ggrads, l_dgrads + l_ggrads):
        assert a.abs().max() > 0
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    # the head itself: d = (w_real − w_fake)·h, so ∂L/∂w_real = ∂L/∂w = −∂L/∂w_fake
    np.testing.assert_allclose(s_head[0], l_head[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s_head[1], -l_head[0], rtol=1e-10, atol=1e-13)


def test_a_fitted_softmax_head_discriminates_with_the_softmax_of_its_two_logits(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a 1-epoch GAN may trip the divergence warning
        gan = GAN(2, hidden=(16,), d_head="softmax", label_smoothing=0.9, **TINY).fit(X)
    two = gan.module_.logits(torch.from_numpy(gan.scaling_.forward(X[:8]))).detach().double()
    np.testing.assert_allclose(gan.discriminate(X[:8]), torch.softmax(two, dim=1)[:, 0].numpy(), rtol=1e-6)
    assert {"d_loss", "g_loss", "js_estimate"} <= set(gan.history_[-1])


@pytest.mark.parametrize("params, words", [
    (dict(d_head="softmax", loss="wasserstein"), ["d_head='softmax'", "loss='wasserstein'", "d_head='logit'"]),
    (dict(d_head="softmax", loss="hinge"), ["d_head='softmax'", "loss='hinge'"]),
    (dict(d_head="softmax", semi_supervised=True), ["C+1", "d_head"]),
    (dict(arch="conv", hidden_d=(8,)), ["hidden_d", "arch='mlp'"]),
    (dict(arch="conv", activation_g="tanh", activation_d="relu"), ["activation_g, activation_d", "arch='mlp'"]),
    (dict(activation_d="softmax"), ["activation_d must be one of"]),
    (dict(hidden_g=(0,)), ["hidden_g"]),
])
def test_gan_option_errors_are_one_clear_line(params, words, X):
    with pytest.raises(InvalidInputError) as info:
        GAN(**params, **TINY).fit(X, np.zeros(len(X), dtype=int))
    assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), str(info.value)


def test_semi_supervised_gan_keeps_its_c_plus_1_softmax():
    module = _module(GAN(4, hidden=(8,), semi_supervised=True), (64,), n_classes=3)
    assert _linear_widths(module.discriminator)[-1] == (8, 4)  # 3 real classes + fake
    x = torch.rand(5, 64)
    out = module.logits(x)
    assert out.shape == (5, 4)
    torch.testing.assert_close(module.real_fake_logit(x), torch.logsumexp(out[:, :-1], dim=1) - out[:, -1])


# -- the VAE's tanh mean ------------------------------------------------------------------------------
def test_tanh_vae_mean_stays_in_range_and_comes_back_in_data_units(X):
    vae = VAE(2, hidden=(16,), likelihood="gaussian", output_activation="tanh", **TINY).fit(X)
    assert isinstance(vae.module_.output_activation, nn.Tanh)
    assert (vae.scaling_.low, vae.scaling_.high, vae.scaling_.target) == (0.0, 1.0, (-1.0, 1.0))  # [0, 1] pixels -> [-1, 1]
    z = 50 * torch.randn(256, 2, generator=torch.Generator().manual_seed(0))  # far out: the mean saturates but stays inside
    with torch.no_grad():
        mean = vae.module_.decode(z).numpy()
    assert mean.min() >= -1 and mean.max() <= 1 and np.abs(mean).max() > 0.99
    out = vae.inverse_transform(z.numpy())
    np.testing.assert_allclose(out, (mean + 1) / 2, atol=1e-6)  # model [-1, 1] -> data [0, 1]
    assert 0 <= vae.reconstruct(X[:20]).min() and vae.sample(64, random_state=0).max() <= 1
    default = VAE(2, likelihood="gaussian")
    assert isinstance(_module(default, (64,)).output_activation, nn.Identity) and default._output_range() is None


@pytest.mark.parametrize("likelihood", ["bernoulli", "multinomial"])
def test_tanh_needs_a_gaussian_decoder(likelihood, X):
    with pytest.raises(InvalidInputError, match=f"output_activation='tanh'.*likelihood='{likelihood}'") as info:
        VAE(2, likelihood=likelihood, output_activation="tanh", **TINY).fit(X)
    assert "\n" not in str(info.value)


# -- scaling="center" ---------------------------------------------------------------------------------
def test_center_scaling_subtracts_the_mean_and_its_inverse_restores_the_data(X):
    s = Scaling.fit(X, mode="center")
    z = s.forward(X)
    np.testing.assert_allclose(z.reshape(len(X), -1).mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(s.mean, X.reshape(len(X), -1).mean(axis=0), atol=1e-7)
    np.testing.assert_allclose(s.inverse(z), X, atol=1e-6)
    np.testing.assert_allclose(s.inverse(z.reshape(len(X), -1)), X.reshape(len(X), -1), atol=1e-6)  # any shape with d features
    assert Scaling.from_dict(json.loads(json.dumps(s.to_dict()))) == s and not s.is_identity
    np.testing.assert_array_equal(s.display(X), X)  # pictures: the data's own range, before the centring
    pixels = np.round(X * 255).astype(np.uint8)  # uint8: to [0, 1] first, then centred (the lecture's Ex 68.1)
    p = Scaling.fit(pixels, mode="center")
    np.testing.assert_allclose(p.forward(pixels), pixels / 255.0 - (pixels / 255.0).mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(p.inverse(p.forward(pixels)), pixels, atol=1e-4)
    with pytest.raises(InvalidInputError, match="outside \\[0, 1\\]"):
        Scaling.fit(X, mode="center", target=(0.0, 1.0))
    with pytest.raises(InvalidInputError, match="mean over 64 features"):
        s.forward(np.zeros((2, 10), np.float32))
    np.testing.assert_allclose(s.inverse(z.reshape(4, 50, 1, 8, 8)), X.reshape(4, 50, 1, 8, 8), atol=1e-6)  # a grid of samples
    for bad in ({**s.to_dict(), "mean": ["x"]}, {**s.to_dict(), "mean": [float("nan")] * 64}, "x"):  # an edited model file
        with pytest.raises(ValueError):
            Scaling.from_dict(bad)


def test_center_scaling_reads_a_memory_mapped_file_as_the_array(X, tmp_path):
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(Scaling.fit(mapped, mode="center").mean, Scaling.fit(X, mode="center").mean)


def _center_models(X):
    """Fitted Autoencoder (PCA of full rank), Gaussian VAE with the tanh mean, and GAN, all with scaling="center"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [Autoencoder(64, arch="linear", scaling="center", **TINY).fit(X),
                VAE(2, hidden=(16,), likelihood="gaussian", output_activation="tanh", scaling="center", **TINY).fit(X),
                GAN(2, hidden=(16,), scaling="center", **TINY).fit(X)]


def test_center_scaling_in_every_family_outputs_data_units_and_survives_save_and_load(X, tmp_path):
    mean = X.reshape(len(X), -1).mean(axis=0)
    ae, vae, gan = _center_models(X)
    for model in (ae, vae, gan):
        np.testing.assert_allclose(model.scaling_.mean, mean, atol=1e-7)
    np.testing.assert_allclose(ae.reconstruct(X), X, atol=1e-4)  # PCA with every component reconstructs X, in X's units
    z = gan.sample_codes(8, random_state=0)
    with torch.no_grad():
        model_units = gan.module_.generate(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(gan.generate(z), model_units + mean.reshape(1, 8, 8), atol=1e-6)
    with torch.no_grad():
        decoded = vae.module_.decode(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(vae.inverse_transform(z), decoded + mean.reshape(1, 8, 8), atol=1e-6)
    for i, model in enumerate((ae, vae, gan)):
        model.save(tmp_path / str(i))
        loaded = genlab.load(tmp_path / str(i))
        assert loaded.scaling_ == model.scaling_
        np.testing.assert_array_equal(loaded.sample(8, random_state=0), model.sample(8, random_state=0))
    np.testing.assert_array_equal(genlab.load(tmp_path / "1").reconstruct(X[:10]), vae.reconstruct(X[:10]))


@pytest.mark.parametrize("make, words", [
    (lambda: VAE(2, scaling="center", **TINY), ["scaling='center'", "likelihood='bernoulli'", "gaussian"]),
    (lambda: Autoencoder(2, loss="bce", scaling="center", **TINY), ["scaling='center'", "outside [0, 1]"]),
    (lambda: GAN(2, output="sigmoid", scaling="center", **TINY), ["scaling='center'", "outside [0, 1]"]),
])
def test_center_scaling_refuses_models_that_need_data_in_0_1(make, words, X):
    with pytest.raises(InvalidInputError) as info:
        make().fit(X)
    assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), str(info.value)


# -- files written before these options still load ---------------------------------------------------------
@pytest.mark.parametrize("make, added", [
    (lambda: GAN(2, hidden=(16,), **TINY), ("hidden_g", "hidden_d", "activation_g", "activation_d", "d_head")),
    (lambda: VAE(2, hidden=(16,), **TINY), ("output_activation",)),
])
def test_model_files_without_the_new_fields_still_load(make, added, X, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model = make().fit(X)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    for name in added:  # as an older genlab wrote it: no such parameters, config fields or scaling mean
        del meta["params"][name], meta["module"]["config"][name]
    assert "mean" not in meta["fitted"]["scaling_"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    np.testing.assert_array_equal(genlab.load(tmp_path).sample(4, random_state=0), model.sample(4, random_state=0))
    meta["module"]["config"][added[-1]] = "tanh"  # an edited field still has to match what the parameters build
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(genlab.ModelFileError, match="does not match"):
        genlab.load(tmp_path)


# -- the command line and the Python API's unknown keywords ---------------------------------------------------
def test_cli_builds_the_lecture_gan_and_vae(X, tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)  # 200 digits: a quick run
    gan_args = ["--latent-dim", "2", "--hidden-g", "8,16", "--hidden-d", "16,4", "--activation-d", "relu", "--d-head", "softmax"]
    code, _, err = run(capsys, "train", "gan", "--data", tmp_path / "x.npy", *gan_args, *QUICK, "--out", tmp_path / "gan")
    assert code == 0, err
    gan = genlab.load(tmp_path / "gan")
    assert (gan.hidden_g, gan.hidden_d, gan.activation_d, gan.d_head) == ((8, 16), (16, 4), "relu", "softmax")
    assert _linear_widths(gan.module_.generator) == [(2, 8), (8, 16), (16, 64)]
    assert _linear_widths(gan.module_.discriminator) == [(64, 16), (16, 4), (4, 2)]
    assert _activation_types(gan.module_.discriminator) == {nn.ReLU}
    vae_args = ["--latent-dim", "2", "--hidden", "16", "--likelihood", "gaussian", "--output-activation", "tanh", "--scaling", "center"]
    code, _, err = run(capsys, "train", "vae", "--data", tmp_path / "x.npy", *vae_args, *QUICK, "--out", tmp_path / "vae")
    assert code == 0, err
    vae = genlab.load(tmp_path / "vae")
    assert isinstance(vae.module_.output_activation, nn.Tanh) and vae.scaling_.mean.shape == (64,)


@pytest.mark.parametrize("args, words", [
    (["train", "ae", "--hidden-d", "8"], ["unrecognized arguments: --hidden-d"]),
    (["train", "gan", "--d-head", "softmax", "--loss", "wasserstein"], ["d_head='softmax'", "wasserstein"]),
    (["train", "vae", "--output-activation", "tanh"], ["output_activation='tanh'", "bernoulli"]),
    (["train", "vae", "--scaling", "center"], ["scaling='center'", "bernoulli"]),
    (["train", "gan", "--activation-d", "softmax"], ["invalid choice"]),
])
def test_cli_option_errors_exit_2_with_one_line(args, words, tmp_path, capsys):
    code, _, err = run(capsys, *args, "--data", "digits", *QUICK, "--out", tmp_path / "r")
    assert_user_error(code, err, *words)
    assert not (tmp_path / "r").exists()


def test_unknown_keywords_are_type_errors():
    with pytest.raises(TypeError, match="unexpected keyword argument 'hidden_d'"):
        Autoencoder(hidden_d=(8,))
    with pytest.raises(TypeError, match="unexpected keyword argument 'd_head'"):
        VAE(d_head="softmax")


def test_drawing_from_a_multinomial_vae_is_a_one_line_error():
    X = np.random.default_rng(0).integers(0, 3, size=(60, 6)).astype(np.float32)
    vae = VAE(2, hidden=(8,), likelihood="multinomial", epochs=1, random_state=0).fit(X)
    with pytest.raises(InvalidInputError, match="mean=False"):
        vae.sample(3, mean=False)
    assert vae.sample(3).shape == (3, 6)
