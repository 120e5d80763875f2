"""The lectures' theory claims, checked numerically against genlab's own modules, nets and estimators.

* ELBO identities on probabilistic PCA, where log p(x) and the posterior are closed form;
* the hand-derived sensitivities of the (conditional) GAN and the conditional VAE against autograd
  (lecture 002, eqs 68.94, 68.139-68.151, 68.173);
* transposed convolution as zero-insertion followed by a mirrored-filter convolution, strided
  convolution as a subsampled stride-1 convolution, for the layers genlab's conv nets build;
* the minimax generator loss saturates, the non-saturating one does not;
* the JS estimate saturates at log 2 on disjoint supports while a Lipschitz critic measures W1;
* the 8-3-8 autoencoder, a 2-D VAE's codes, and attribute vectors on digits.

Slower statistical versions (more seeds, more settings) are in benchmarks/lecture_theory.py.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

import genlab
import genlab.latent as latent
from genlab.models import Batch, GANConfig, GANModule, VAEConfig, VAEModule
from genlab.models.losses import gaussian_kl, minimax_g, nonsaturating_g
from genlab.models.vae import importance_weighted_log_likelihood
from genlab.nets import MLP, ConvDecoder, ConvEncoder, DCGANDiscriminator, DCGANGenerator
from genlab.training import TensorData, TrainConfig, train

LOG2 = math.log(2.0)


# -- helpers: a tape of an MLP's linear layers, and the lecture's backward recursion -------------------------------
class Tape:
    """Records each ``nn.Linear``'s input y and output z (the pre-activation) during forward passes; z keeps its
    gradient, so autograd's sensitivities ∂loss/∂z can be read after ``backward``."""

    def __init__(self, net: nn.Module):
        self.linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        self.activations = [m for m in getattr(net, "layers", []) if not isinstance(m, nn.Linear)]
        self.inputs, self.outputs = [], []
        self._handles = [m.register_forward_hook(self._record) for m in self.linears]

    def _record(self, module, args, out):
        self.inputs.append(args[0])
        out.retain_grad()
        self.outputs.append(out)

    def close(self):
        for h in self._handles:
            h.remove()


def activation_slope(act: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """f'(z) for the activations genlab's MLPs use here."""
    if isinstance(act, nn.ReLU):
        return (z > 0).to(z.dtype)
    if isinstance(act, nn.LeakyReLU):
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, act.negative_slope))
    if isinstance(act, nn.Tanh):
        return 1.0 - torch.tanh(z) ** 2
    raise TypeError(f"no slope for {act}")


def backward_by_hand(tape: Tape, delta: torch.Tensor):
    """The lecture's recursion from the sensitivity ``delta`` (n, out) at the last pre-activation of one forward
    pass: δ_ℓ = f'(z_ℓ) ⊙ (W_ℓ δ_{ℓ+1}) (68.142/68.144), weight gradients y_ℓ δ_{ℓ+1}ᵀ summed over the batch (68.151/68.153),
    and the input sensitivity W_1 δ_2. The lecture's W is nn.Linear's weight transposed, so W δ is ``delta @ weight``
    in row form. Returns (sensitivities per layer, weight gradients, input sensitivity)."""
    n_layers = len(tape.linears)
    deltas = [None] * n_layers
    deltas[-1] = delta
    for i in range(n_layers - 1, 0, -1):
        deltas[i - 1] = activation_slope(tape.activations[i - 1], tape.outputs[i - 1]) * (deltas[i] @ tape.linears[i].weight)
    weight_grads = [d.T @ y for d, y in zip(deltas, tape.inputs[:n_layers])]
    return deltas, weight_grads, deltas[0] @ tape.linears[0].weight


# -- 1. ELBO identities on probabilistic PCA -------------------------------------------------------------------------
D_PPCA, K_PPCA, SIGMA2 = 5, 2, 0.3
# genlab's fixed-variance likelihood builds log σ² (and so 1/σ²) in float32 even in a float64 module, so the float64
# identities below hold to ~6e-8 of the squared-error term (a few 1e-6 nats here) rather than to rounding error
TOL = dict(rtol=1e-7, atol=2e-5)


def _ppca(orthogonal_columns: bool, seed: int = 0):
    """Decoder weights W (d, k) and bias b of a linear-Gaussian model p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((D_PPCA, K_PPCA))
    if orthogonal_columns:  # WᵀW diagonal: the exact posterior is then diagonal, inside the VAE's family of q
        W = np.linalg.qr(W)[0] * np.array([2.0, 0.7])
    return W, rng.standard_normal(D_PPCA)


def _ppca_vae(W, b) -> VAEModule:
    """genlab's VAE module with a one-layer (linear) encoder and decoder, the decoder set to (W, b)."""
    module = VAEModule(VAEConfig(input_shape=(D_PPCA,), latent_dim=K_PPCA, hidden=(), likelihood="gaussian",
                                 variance="fixed", sigma2=SIGMA2)).double()
    set_linear(module.decoder, W, b)
    return module


def set_linear(mlp: nn.Module, weight, bias) -> None:
    """Set the one nn.Linear of ``mlp`` to (weight, bias)."""
    (layer,) = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight))
        layer.bias.copy_(torch.as_tensor(bias))


def _posterior(W, b, x):
    """Exact p(z|x) of the linear-Gaussian model: mean (n, k) and covariance (k, k)."""
    M = W.T @ W + SIGMA2 * np.eye(K_PPCA)
    return (x - b) @ np.linalg.solve(M, W.T).T, SIGMA2 * np.linalg.inv(M)


def _log_px(W, b, x):
    """Closed-form log p(x) = log N(x; b, WWᵀ + σ²I)."""
    return multivariate_normal(b, W @ W.T + SIGMA2 * np.eye(D_PPCA)).logpdf(x)


def _elbo_exact(module: VAEModule, x: torch.Tensor) -> torch.Tensor:
    """genlab's ELBO terms with the expectation over q taken exactly: with a linear decoder log p(x|z) is quadratic
    in ε, and the 2k points ±√k·e_j have the mean (0) and second moment (I) of N(0, I), so their average is exact."""
    eye = math.sqrt(K_PPCA) * torch.eye(K_PPCA, dtype=x.dtype)
    eps = torch.cat([eye, -eye])[:, None, :].expand(-1, len(x), -1)  # (2k, n, k)
    rec, kl_dims, _ = module.elbo_terms(x, None, None, 2 * K_PPCA, eps=eps)
    return -(rec + kl_dims.sum(dim=1))


def _kl_diagonal_to_full(mu_q, var_q, mean, cov):
    """KL(N(mu_q, diag var_q) ‖ N(mean, cov)) per row."""
    inv = np.linalg.inv(cov)
    diff = mean - mu_q
    return 0.5 * (var_q @ np.diag(inv) + np.einsum("ni,ij,nj->n", diff, inv, diff) - K_PPCA
                  + np.linalg.slogdet(cov)[1] - np.log(var_q).sum(axis=1))


def test_log_px_is_the_elbo_plus_the_kl_to_the_true_posterior_for_any_gaussian_q():
    W, b = _ppca(orthogonal_columns=False)  # correlated posterior: no diagonal q is exact
    module = _ppca_vae(W, b)
    rng = np.random.default_rng(1)
    set_linear(module.encoder, 0.5 * rng.standard_normal((2 * K_PPCA, D_PPCA)), 0.5 * rng.standard_normal(2 * K_PPCA))
    x = rng.standard_normal((6, D_PPCA)) + b
    xt = torch.from_numpy(x)
    with torch.no_grad():
        elbo = _elbo_exact(module, xt).numpy()
        post = module.encode(xt)
    mu_q, var_q = post.mu.numpy(), post.logvar.exp().numpy()
    # the reconstruction term against its closed form E_q log N(x; Wz + b, σ²I), constants included
    expected_rec = -0.5 * (D_PPCA * math.log(2 * math.pi * SIGMA2)
                           + (((x - b - mu_q @ W.T) ** 2).sum(1) + var_q @ (W ** 2).sum(0)) / SIGMA2)
    np.testing.assert_allclose(elbo, expected_rec - gaussian_kl(post.mu, post.logvar).sum(1).numpy(), **TOL)
    kl_to_posterior = _kl_diagonal_to_full(mu_q, var_q, *_posterior(W, b, x))
    np.testing.assert_allclose(elbo + kl_to_posterior, _log_px(W, b, x), **TOL)
    assert (kl_to_posterior > 0.05).all()  # q is far from the posterior: the bound is strictly below log p(x)


def _exact_posterior_encoder(module: VAEModule, W, b) -> None:
    """Set the linear encoder to the exact posterior of a model whose W has orthogonal columns: μ(x) = M⁻¹Wᵀ(x − b),
    log σ² = log(σ²/diag M) with M = WᵀW + σ²I — a linear map of x, so a one-layer encoder represents it."""
    A = np.linalg.solve(W.T @ W + SIGMA2 * np.eye(K_PPCA), W.T)  # (k, d)
    _, cov = _posterior(W, b, b[None])
    weight = np.vstack([A, np.zeros((K_PPCA, D_PPCA))])
    set_linear(module.encoder, weight, np.concatenate([-A @ b, np.log(np.diag(cov))]))


def test_elbo_equals_log_px_when_q_is_the_true_posterior():
    W, b = _ppca(orthogonal_columns=True)
    module = _ppca_vae(W, b)
    _exact_posterior_encoder(module, W, b)
    x = np.random.default_rng(2).standard_normal((6, D_PPCA)) * 1.5 + b
    xt = torch.from_numpy(x)
    with torch.no_grad():
        elbo = _elbo_exact(module, xt).numpy()
        # every importance weight p(x, z)/q(z|x) is then p(x) itself: the estimate is exact for any K and any draw
        iwae = importance_weighted_log_likelihood(module, xt, None, 3, torch.Generator().manual_seed(0)).numpy()
        post = module.encode(xt)
    np.testing.assert_allclose(post.mu.numpy(), _posterior(W, b, x)[0], rtol=1e-12)
    np.testing.assert_allclose(elbo, _log_px(W, b, x), **TOL)
    np.testing.assert_allclose(iwae, _log_px(W, b, x), **TOL)
    # the same through the estimator (float32): score_samples is log p(x) with even one importance sample
    vae = genlab.VAE(K_PPCA, hidden=(), likelihood="gaussian", sigma2=SIGMA2, epochs=1, validation_fraction=0,
                     random_state=0).fit(x.astype(np.float32))
    assert vae.scaling_.is_identity
    set_linear(vae.module_.decoder, W, b)
    _exact_posterior_encoder(vae.module_, W, b)
    np.testing.assert_allclose(vae.score_samples(x.astype(np.float32), n_importance=1), _log_px(W, b, x), rtol=1e-5)


# -- 2. hand-derived sensitivities against autograd ------------------------------------------------------------------
def assert_same(actual, expected):
    """Equal to float64 rounding (assert_close's default atol would hide errors in gradients of order 1e-4)."""
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-13)


def test_softmax_output_sensitivity_is_prediction_minus_label_and_backpropagates_by_the_recursion():
    """(68.139)-(68.140) at the two-class softmax output of Example 68.6's discriminator (ReLU MLP), then
    (68.142) through its hidden layers and (68.151) for its weights."""
    torch.manual_seed(0)
    net = MLP(6, (8, 5), 2, activation="relu").double()
    x = torch.randn(8, 6, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])  # class 0 "real" (γ = [1, 0]), class 1 "fake" (γ = [0, 1])
    tape = Tape(net)
    z = net(x)
    F.cross_entropy(z, labels, reduction="sum").backward()  # −Σ γ(q) ln γ̂(q)
    tape.close()
    gamma_hat, gamma = torch.softmax(z.detach(), dim=1), F.one_hot(labels, 2).double()
    delta = tape.outputs[-1].grad
    assert_same(delta, gamma_hat - gamma)
    assert_same(delta[:4], torch.stack([gamma_hat[:4, 0] - 1, gamma_hat[:4, 1]], dim=1))  # real rows
    assert_same(delta[4:], torch.stack([gamma_hat[4:, 0], gamma_hat[4:, 1] - 1], dim=1))  # fake rows
    deltas, weight_grads, _ = backward_by_hand(tape, gamma_hat - gamma)
    for layer, out, d, g in zip(tape.linears, tape.outputs, deltas, weight_grads):
        assert_same(out.grad, d)
        assert_same(layer.weight.grad, g)
        assert_same(layer.bias.grad, d.sum(dim=0))  # the lecture's −θ bias has gradient −δ


def _tiny_gan(**overrides) -> GANModule:
    torch.manual_seed(0)
    config = dict(input_shape=(6,), latent_dim=3, hidden=(8, 5), loss="nonsaturating", output="tanh", ema=0.0)
    return GANModule(GANConfig(**{**config, **overrides})).double()


def test_genlab_one_logit_discriminator_has_the_two_class_softmax_sensitivity():
    """genlab's D emits one logit d; softmax([d, 0]) is (σ(d), 1 − σ(d)), so (68.140)'s first entry must be what
    autograd gives at d for the discriminator loss: D(x) − 1 on real rows and D(G(z)) on fake rows."""
    module = _tiny_gan(loss="minimax")
    n = 5
    real = torch.randn(n, 6, dtype=torch.float64)
    with torch.no_grad():
        fake = module.generate(torch.randn(n, 3, dtype=torch.float64))
    tape = Tape(module.discriminator)
    module.discriminator_terms(Batch(real), fake, None, None)["d_loss"].backward()
    tape.close()
    last = len(tape.linears) - 1
    d_real, d_fake = tape.outputs[last], tape.outputs[2 * last + 1]  # D's last layer, on the real pass then the fake one
    two_class = lambda d: torch.softmax(torch.cat([d, torch.zeros_like(d)], dim=1), dim=1)  # noqa: E731
    assert_same(n * d_real.grad, (two_class(d_real.detach()) - torch.tensor([1.0, 0.0]).double())[:, :1])
    assert_same(n * d_fake.grad, (two_class(d_fake.detach()) - torch.tensor([0.0, 1.0]).double())[:, :1])
    assert_same(n * d_real.grad, torch.sigmoid(d_real.detach()) - 1)
    assert_same(n * d_fake.grad, torch.sigmoid(d_fake.detach()))


def _generator_sensitivities_by_hand(module: GANModule, tape_g: Tape, tape_d: Tape, data_features: int):
    """The generator phase of (68.143)-(68.153), all for ln γ̂(1) = ln D(G(z)) (the fakes labelled real): δ at D's
    output −∂ln γ̂(1)/∂d = σ(d) − 1, back through D (68.142), across to G's output pre-activation by
    δ_{L_g,g} = −f'(z_{L_g,g}) ⊙ (W̄_{1,d} δ_{2,d}) with W̄ the data rows of W_{1,d} (68.150, 68.173), then back
    through G (68.144). Returns (G's sensitivities, G's weight gradients, G's input sensitivity, D's input sensitivity)."""
    d = tape_d.outputs[-1].detach()
    _, _, d_input = backward_by_hand(tape_d, torch.sigmoid(d) - 1)  # W_{1,d} δ_{2,d}, (n, data + label features)
    w_bar = d_input[:, :data_features]  # [I 0]: only the data part reaches G
    z_out = tape_g.outputs[-1]
    delta_out = -activation_slope(module.output_activation, z_out.detach()) * w_bar
    deltas, weight_grads, g_input = backward_by_hand(tape_g, delta_out)
    return deltas, weight_grads, g_input, d_input


def test_discriminator_input_sensitivity_transfers_to_the_generator():
    """(68.150): the generator's boundary sensitivity from D's, checked against autograd of genlab's non-saturating
    generator loss −mean ln D(G(z)); and dL/dz from D's input gradient pushed back through G equals autograd of
    the composite."""
    module = _tiny_gan()
    n = 4
    z = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    tape_g, tape_d = Tape(module.generator), Tape(module.discriminator)
    fake = module.generate(z)
    loss = module.generator_loss(fake, None)
    loss.backward()
    tape_g.close()
    tape_d.close()
    deltas, weight_grads, z_sensitivity, _ = _generator_sensitivities_by_hand(module, tape_g, tape_d, 6)
    # the hand quantities are derivatives of Σ ln γ̂(1) = −n · loss
    for layer, out, d, g in zip(tape_g.linears, tape_g.outputs, deltas, weight_grads):
        assert_same(-n * out.grad, d)
        assert_same(-n * layer.weight.grad, g)
    assert_same(-n * z.grad, z_sensitivity)
    assert float(z.grad.abs().max()) > 1e-5  # not a comparison of zeros (the check above is to 1e-13)

    x = fake.detach().requires_grad_(True)
    (d_input_grad,) = torch.autograd.grad(module.generator_loss(x, None), x)  # D's sensitivity at its input
    z2 = z.detach().requires_grad_(True)
    (through_g,) = torch.autograd.grad(module.generate(z2), z2, grad_outputs=d_input_grad)
    assert_same(through_g, z.grad)


def test_conditional_gan_sends_only_the_data_part_of_the_input_sensitivity_to_the_generator():
    """(68.173)-(68.174): with the label concatenated to D's input, W_{1,d} has d + C rows and only the leading d
    (W̄ = [I 0]W) carry the sensitivity to G; G's own input is (z, label) and z gets the leading k entries."""
    n_classes, n = 4, 4
    module = _tiny_gan(conditional=True, n_classes=n_classes)
    y = torch.tensor([0, 3, 1, 3])
    onehot = F.one_hot(y, n_classes).double()
    z = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    tape_g, tape_d = Tape(module.generator), Tape(module.discriminator)
    fake = module.generate(z, y)
    module.generator_loss(fake, y).backward()
    tape_g.close()
    tape_d.close()
    assert_same(tape_d.inputs[0][:, 6:], onehot)  # the label is concatenated after the data in D
    assert_same(tape_g.inputs[0][:, 3:], onehot)  # and after z in G
    deltas, weight_grads, g_input, d_input = _generator_sensitivities_by_hand(module, tape_g, tape_d, 6)
    assert d_input.shape == (n, 6 + n_classes)
    assert float(d_input[:, 6:].detach().abs().max()) > 1e-5  # the label rows do carry a sensitivity; it must not reach G
    assert_same(-n * tape_g.outputs[-1].grad, deltas[-1])
    for layer, g in zip(tape_g.linears, weight_grads):
        assert_same(-n * layer.weight.grad, g)
    assert_same(-n * z.grad, g_input[:, :3])


def test_conditional_vae_encoder_boundary_sensitivity_uses_the_leading_rows_of_the_decoder_weights():
    """(68.94)-(68.95): the decoder's input is (z, label), W_{1,d} has P + C rows, and the encoder's output
    receives W̄δ with W̄ = [I_P 0]W_{1,d}: μ rows W̄δ + μ, log-variance rows ½ε e^{a/2} W̄δ + ½(e^a − 1)."""
    torch.manual_seed(0)
    n_classes, k = 4, 3
    module = VAEModule(VAEConfig(input_shape=(6,), latent_dim=k, hidden=(5,), likelihood="gaussian", sigma2=0.5,
                                 n_classes=n_classes)).double()
    x, y = torch.rand(2, 6, dtype=torch.float64), torch.tensor([1, 3])
    post = module.encode(x, y)
    mu, a = post.mu.detach().requires_grad_(), post.logvar.detach().requires_grad_()
    eps = torch.randn(1, 2, k, dtype=torch.float64)
    tape = Tape(module.decoder)
    out, logvar = module.decode_params(module.reparameterize(type(post)(mu, a), 1, None, eps)[0], y)
    (module.negative_log_likelihood(x, out, logvar).sum() + gaussian_kl(mu, a).sum()).backward()
    tape.close()
    assert_same(tape.inputs[0][:, k:], F.one_hot(y, n_classes).double())
    first = tape.linears[0]
    w_bar_delta = tape.outputs[0].grad @ first.weight[:, :k]  # (n, h) @ (h, k): only z's columns
    assert float((tape.outputs[0].grad @ first.weight[:, k:]).detach().abs().max()) > 1e-3  # the label's part, left out
    assert_same(mu.grad, w_bar_delta + mu.detach())
    assert_same(a.grad, 0.5 * eps[0] * torch.exp(0.5 * a.detach()) * w_bar_delta + 0.5 * (torch.exp(a.detach()) - 1))


# -- 3. transposed and strided convolution ---------------------------------------------------------------------------
def transposed_by_upsampling(y, layer: nn.ConvTranspose2d) -> torch.Tensor:
    """ConvTranspose2d as the lecture writes it: insert stride − 1 zeros between input samples (S_dᵀ), pad, and run a
    stride-1 convolution with the spatially mirrored filter whose in/out channels are swapped."""
    (sh, sw), (kh, kw) = layer.stride, layer.kernel_size
    (ph, pw), (oh, ow) = layer.padding, layer.output_padding
    n, c, h, w = y.shape
    up = y.new_zeros(n, c, (h - 1) * sh + 1, (w - 1) * sw + 1)
    up[:, :, ::sh, ::sw] = y
    up = F.pad(up, (kw - 1 - pw, kw - 1 - pw + ow, kh - 1 - ph, kh - 1 - ph + oh))  # genlab's padding is < kernel_size
    mirrored = layer.weight.transpose(0, 1).flip(2, 3)  # (in, out, kh, kw) -> (out, in, kh, kw), w̄_k = w_{−k}
    return F.conv2d(up, mirrored, layer.bias)


CONV_NETS = {  # genlab's conv nets in the configurations their estimators build, plus other kernels and strides
    "decoder 8x8": lambda: ConvDecoder(4, (1, 8, 8), channels=(6, 4)),
    "decoder 7x9 (output_padding 1)": lambda: ConvDecoder(4, (1, 7, 9), channels=(6, 4)),
    "decoder k3 28x28": lambda: ConvDecoder(4, (3, 28, 28), channels=(6, 4), kernel_size=3),
    "decoder k5 s3 10x11": lambda: ConvDecoder(4, (1, 10, 11), channels=(5,), kernel_size=5, stride=3),
    "dcgan generator 8x8": lambda: DCGANGenerator(4, (1, 8, 8), channels=(6, 4)),
    "encoder 8x8": lambda: ConvEncoder((1, 8, 8), 4, channels=(6, 4)),
    "encoder k3 28x28": lambda: ConvEncoder((3, 28, 28), 4, channels=(6, 4), kernel_size=3),
    "encoder k5 s3 10x11": lambda: ConvEncoder((1, 10, 11), 4, channels=(5,), kernel_size=5, stride=3),
    "dcgan discriminator 7x9": lambda: DCGANDiscriminator((1, 7, 9), channels=(6, 4)),
}


@pytest.mark.parametrize("name", list(CONV_NETS))
def test_conv_layers_equal_their_lecture_forms(name):
    """Transposed convolution = zero-insertion upsampling then a mirrored stride-1 convolution; a stride-d
    convolution = the stride-1 convolution kept at every d-th position. Checked on every conv layer of the net."""
    torch.manual_seed(0)
    net = CONV_NETS[name]().double().eval()
    seen = []
    hook = lambda m, args, out: seen.append((m, args[0], out))  # noqa: E731
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(hook) for m in layers]
    with torch.no_grad():
        if isinstance(net, (ConvDecoder, DCGANGenerator)):
            net(torch.randn(3, 4, dtype=torch.float64))
        else:
            net(torch.randn(3, *net.input_shape, dtype=torch.float64))
    for h in handles:
        h.remove()
    assert len(seen) == len(layers) > 0
    for layer, x, out in seen:
        if isinstance(layer, nn.ConvTranspose2d):
            torch.testing.assert_close(transposed_by_upsampling(x, layer), out)
        else:
            (sh, sw) = layer.stride
            dense = F.conv2d(x, layer.weight, layer.bias, stride=1, padding=layer.padding)
            torch.testing.assert_close(dense[:, :, ::sh, ::sw], out)
            assert max(layer.stride) > 1  # genlab's encoders downsample by striding, never stride 1
    if "output_padding" in name:
        assert any(max(layer.output_padding) > 0 for layer, _, _ in seen if isinstance(layer, nn.ConvTranspose2d))


# -- 4. minimax saturation -------------------------------------------------------------------------------------------
def test_minimax_generator_gradient_vanishes_as_d_rejects_fakes_and_nonsaturating_does_not():
    d = torch.tensor([0.0, -2.0, -5.0, -10.0, -20.0], dtype=torch.float64, requires_grad=True)  # D(G(z)) = σ(d) → 0
    (g_minimax,) = torch.autograd.grad(len(d) * minimax_g(d), d)  # per-sample: the losses are batch means
    (g_nonsat,) = torch.autograd.grad(len(d) * nonsaturating_g(d), d)
    D = torch.sigmoid(d.detach())
    torch.testing.assert_close(g_minimax, -D)  # d/dd log(1 − σ(d)) = −σ(d)
    torch.testing.assert_close(g_nonsat, -(1 - D))  # d/dd −log σ(d) = −(1 − σ(d))
    assert (g_minimax.abs().diff() < 0).all() and float(g_minimax[3].abs()) < 1e-4
    assert float((g_nonsat[3:] + 1).abs().max()) < 1e-4


def test_generator_parameter_gradient_under_minimax_is_exp_d_times_the_nonsaturating_one():
    """For one z the two losses differ only in their slope at the logit, −σ(d) against −σ(−d): every generator
    parameter's gradient is scaled by σ(d)/σ(−d) = e^d, vanishingly small once D confidently rejects the fake."""
    grads = {}
    for loss in ("minimax", "nonsaturating"):
        module = _tiny_gan(loss=loss)
        z = torch.randn(1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():  # shift D's output bias so that D(G(z)) = σ(−12)
            module.discriminator.layers[-1].bias -= module.real_fake_logit(module.generate(z)) + 12.0
        module.generator_loss(module.generate(z), None).backward()
        grads[loss] = torch.cat([p.grad.flatten() for p in module.generator.parameters()])
    assert float(grads["nonsaturating"].norm()) > 1e-2
    torch.testing.assert_close(grads["minimax"], math.exp(-12.0) * grads["nonsaturating"], rtol=1e-9, atol=0)


# -- 5. JS saturation and the Wasserstein critic ---------------------------------------------------------------------
JS_GAN = dict(latent_dim=1, loss="minimax", hidden=(32, 32), output="tanh", scaling="none", g_steps=0, epochs=40,
              batch_size=128, validation_fraction=0.25)


@pytest.mark.parametrize("low", [3.0, 30.0])
def test_js_estimate_of_a_trained_discriminator_saturates_at_log_2_on_disjoint_supports(low):
    """The generator (frozen: g_steps=0) has a tanh output, so its samples lie in (−1, 1); the data lie in
    [low, low + 1]. Near or far, the trained D's held-out JS estimate is log 2 (it cannot tell the distances apart)."""
    X = np.random.default_rng(0).uniform(low, low + 1, size=(2048, 1)).astype(np.float32)
    gan = genlab.GAN(**JS_GAN, random_state=0).fit(X)
    assert np.abs(gan.sample(2000, random_state=1)).max() < 1.0
    js = gan.history_[-1]["val_js_estimate"]
    assert LOG2 - 0.01 < js <= LOG2 + 1e-6  # measured 0.6923-0.6927 over seeds 0-2, both distances


def test_js_estimate_is_near_zero_when_the_data_are_the_generators_own_samples():
    """The control for the test above: the same seed builds the same frozen generator, so p_data = p_G."""
    own = genlab.GAN(**{**JS_GAN, "epochs": 1}, random_state=0).fit(np.zeros((64, 1), np.float32)).sample(2048, random_state=1)
    gan = genlab.GAN(**JS_GAN, random_state=0).fit(own)
    assert abs(gan.history_[-1]["val_js_estimate"]) < 0.05


class Shift(nn.Module):
    """A fixed generator G(z) = z + shift."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift), requires_grad=False)

    def forward(self, z):
        return z + self.shift


def _critic_estimate(mu: float, seed: int) -> float:
    """E D(x) − E D(G(z)) for a critic trained on N(μ, 1) against the fixed G(z) = z, z ~ N(0, 1). Spectral norm in
    every layer (with no gradient penalty) makes the critic 1-Lipschitz, so the estimate is at most W1 = |μ|."""
    torch.manual_seed(seed)
    module = GANModule(GANConfig(input_shape=(1,), latent_dim=1, hidden=(32, 32), loss="wasserstein", gp_weight=0.0,
                                 spectral_norm=True, g_steps=0, ema=0.0, lr_d=2e-3, lr_g=0.0))
    module.generator = Shift(0.0)
    x = mu + torch.randn(4096, 1, generator=torch.Generator().manual_seed(seed))
    train(module, TensorData(x), None, TrainConfig(epochs=20, batch_size=256), seed=seed)
    module.eval()
    e = torch.randn(20000, 1, generator=torch.Generator().manual_seed(100 + seed))
    with torch.no_grad():  # common noise: x = e + μ against G(z) = e, so each pair differs by at most |μ|
        return float(module.logits(e + mu).mean() - module.logits(e).mean())


@pytest.mark.parametrize("mu", [1.0, -3.0])
def test_a_trained_lipschitz_critic_measures_w1(mu):
    estimate = _critic_estimate(mu, seed=0)
    assert 0.93 * abs(mu) <= estimate <= 1.005 * abs(mu)  # measured 0.981-0.994 |μ| over seeds 0-5


# -- 6. the 8-3-8 autoencoder ----------------------------------------------------------------------------------------
def _onehot8_tiled():
    X, _ = genlab.datasets.load("onehot8")
    return X, np.tile(X, (16, 1))  # 16 copies: more steps per epoch, fewer per-epoch overheads


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_8_3_8_with_squared_loss_and_sigmoid_units_reconstructs_every_input(seed):
    """The lectures' network: 8 inputs, 3 sigmoid hidden units, 8 sigmoid outputs, the squared loss on the outputs —
    genlab.Autoencoder(code_activation="sigmoid", output_activation="sigmoid", loss="mse")."""
    X, tiled = _onehot8_tiled()
    ae = genlab.Autoencoder(3, hidden=(), code_activation="sigmoid", output_activation="sigmoid", loss="mse", validation_fraction=0,
                            batch_size=8, lr=0.1, epochs=60, random_state=seed).fit(tiled)
    assert ae.module_.config.output_activation == "sigmoid"
    recon = ae.reconstruct(X)
    assert (recon.argmax(axis=1) == np.arange(8)).all()
    assert ((recon - X) ** 2).sum(axis=1).mean() < 0.1


def test_8_3_8_with_squared_loss_and_linear_outputs_cannot_beat_pca():
    """genlab.Autoencoder(loss="mse") decodes linearly: its 8 reconstructions lie in a 3-D affine subspace, so its
    squared error is at least the rank-3 PCA error of the one-hot vectors, (1 − 1/8)·4/7 = 0.5 per sample, whatever
    the sigmoid codes do. Gradient training reaches that bound (it is degenerate, so the arg-max of each
    reconstruction is right for only some inputs; see benchmarks/lecture_theory.py)."""
    X, tiled = _onehot8_tiled()
    pca_error = -genlab.Autoencoder(3, arch="linear", validation_fraction=0).fit(X).score(X)
    assert pca_error == pytest.approx(0.5, abs=1e-5)
    ae = genlab.Autoencoder(3, hidden=(), code_activation="sigmoid", loss="mse", validation_fraction=0, batch_size=8, lr=0.1,
                            epochs=60, random_state=0).fit(tiled)
    error = -ae.score(X)
    assert error >= pca_error - 1e-4  # the bound
    assert error <= pca_error + 0.05  # and training gets close to it (0.524 after these 960 steps; 0.500 after 2000)


# -- 7 and 8. a VAE's codes on digits ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_split(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)  # Xtr, Xte, ytr, yte


def _digits_vae(latent_dim, Xtr):
    return genlab.VAE(latent_dim, hidden=(128,), epochs=20, batch_size=64, lr=2e-3, validation_fraction=0,
                      random_state=0).fit(Xtr)


def test_2d_vae_codes_separate_the_digits(digits_split):
    Xtr, Xte, ytr, yte = digits_split
    vae = _digits_vae(2, Xtr)
    knn = KNeighborsClassifier(10).fit(vae.transform(Xtr), ytr)
    accuracy = knn.score(vae.transform(Xte), yte)
    assert accuracy > 0.45  # chance is 0.10; measured 0.62-0.69 over seeds 0-4


@pytest.fixture(scope="module")
def vae8(digits_split):
    return _digits_vae(8, digits_split[0])


@pytest.fixture(scope="module")
def pixel_classifier(digits_split):
    Xtr, _, ytr, _ = digits_split
    return LogisticRegression(max_iter=2000).fit(Xtr.reshape(len(Xtr), -1), ytr)  # held-out accuracy 0.97


@pytest.mark.parametrize("digit", [0, 6])
def test_attribute_vector_added_to_codes_adds_the_attribute(digits_split, vae8, pixel_classifier, digit):
    """v = mean code of the digit − mean code of the others (genlab.latent.attribute_vector, on training digits);
    adding it to held-out digits of other classes makes a pixel classifier trained on real digits call them that
    digit, more so for larger steps; random directions of the same length do not."""
    Xtr, Xte, ytr, yte = digits_split
    v = latent.attribute_vector(vae8, Xtr, ytr == digit)
    others = Xte[yte != digit][:80]

    def share(vector):  # per scale (0, 1, 2): the share of moved examples classified as the digit
        moved = np.stack([latent.apply_attribute(vae8, x, vector, scales=(0.0, 1.0, 2.0)) for x in others])  # (m, 3, 1, 8, 8)
        return np.array([(pixel_classifier.predict(moved[:, j].reshape(len(moved), -1)) == digit).mean() for j in range(3)])

    along = share(v)
    rng = np.random.default_rng(0)
    random = [share(r * np.linalg.norm(v) / np.linalg.norm(r)) for r in rng.standard_normal((3, len(v)))]
    assert along[0] <= 0.1 and along[0] < along[1] < along[2]
    assert along[2] >= 0.7  # measured 0.99-1.0 for digits 0 and 6 over VAE seeds 0-4
    assert max(r[2] for r in random) <= 0.4  # measured at most 0.2 (mean of 5 directions)
