"""The VAE-GAN family (Larsen et al., ICML 2016): where each loss's gradient goes, that training learns, save/load
and the command line. The contract suite (test_contract.py) covers it too, through its tiny entry."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab import VAEGAN, InvalidInputError, families
from genlab.cli import main
from genlab.models import VAEGANConfig, VAEGANModule
from genlab.models.base import Batch
from genlab.models.losses import gaussian_kl
from genlab.training import make_stepper

GAMMA = 0.5  # not 1, so that the test sees γ weigh the decoder's reconstruction term


def _grads(loss, params):
    """∂loss/∂params, zeros where the loss does not reach a parameter."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _norm(grads) -> float:
    return float(torch.sqrt(sum((g**2).sum() for g in grads)))


def _close(a, b) -> bool:
    return all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(a, b))


@pytest.mark.parametrize("feature_variance", ["unit", "data"])
def test_each_network_is_updated_from_its_own_loss_only(digits, feature_variance):
    """Algorithm 1 of the paper: encoder ∇(KL + L_llike), decoder ∇(γ·L_llike + GAN), discriminator ∇(GAN) — checked
    against autograd on the paper's losses, with the terms that must not arrive shown to be non-zero otherwise."""
    torch.manual_seed(0)
    module = VAEGANModule(VAEGANConfig((1, 8, 8), 3, hidden=(16,), d_hidden=(12, 10), feature_layer=1, gamma=GAMMA,
                                       feature_variance=feature_variance)).train()
    x = torch.from_numpy(digits[0][:32])
    groups = _groups(module)
    assert sum(len(p) for p in groups.values()) == len(list(module.parameters()))  # every parameter in exactly one group

    # the paper's losses, written out from the module's pieces, with the noise train_step will draw
    reference = copy.deepcopy(module)
    eps, z_prior = reference.draw_noise(len(x), torch.Generator().manual_seed(1))
    post = reference.encode(x)
    x_rec, x_prior = reference.decode(post.mu + torch.exp(0.5 * post.logvar) * eps), reference.decode(z_prior)
    (f_real, d_real), (f_rec, d_rec), (_, d_prior) = (reference.discriminate(v) for v in (x, x_rec, x_prior))
    target = f_real.detach()
    var = target.var(dim=0) + 1e-4 if feature_variance == "data" else torch.ones(())
    kl = gaussian_kl(post.mu, post.logvar).sum(dim=1).mean()
    llike = (0.5 * (target - f_rec).pow(2) / var).sum(dim=1).mean()  # −log N(D_l(x); D_l(x̃), Σ) up to a constant
    d_fake = torch.cat([d_rec, d_prior])
    gan_g = F.softplus(-d_fake).mean()  # nonsaturating: the decoder maximises log D(fake)
    gan_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()  # −[log D(x) + log(1 − D(fake))]
    ref = _groups(reference)

    calls = []
    stepper = make_stepper(module)

    def step(names, loss):
        calls.append(names)
        return stepper(names, loss)

    terms = module.train_step(Batch(x), step, torch.Generator().manual_seed(1))
    assert calls == ["encoder", "decoder", "discriminator"]
    assert torch.allclose(terms["kl"], kl) and torch.isfinite(terms["loss"])
    got = {name: [p.grad for p in params] for name, params in groups.items()}

    assert _close(got["encoder"], _grads(kl + llike, ref["encoder"]))
    assert _norm(_grads(gan_g, ref["encoder"])) > 1e-4  # the GAN loss would reach the encoder through z: it is cut off
    assert _close(got["decoder"], _grads(GAMMA * llike + gan_g, ref["decoder"]))
    assert _norm(_grads(llike, ref["decoder"])) > 1e-4 and _norm(_grads(gan_g, ref["decoder"])) > 1e-4  # both terms arrive
    assert _close(got["discriminator"], _grads(gan_d, ref["discriminator"]))
    assert _norm(_grads(llike, ref["discriminator"])) > 1e-4  # L_llike would reach D's weights: D's optimiser never sees it


def _groups(module) -> dict[str, list[torch.nn.Parameter]]:
    return {"encoder": list(module.vae.encoder.parameters()), "decoder": list(module.vae.decoder.parameters()),
            "discriminator": list(module.discriminator.parameters())}


def test_a_short_fit_on_digits_lowers_the_feature_reconstruction_and_reconstructs(digits):
    X = digits[0]
    est = VAEGAN(4, hidden=(64,), d_hidden=(64,), epochs=30, batch_size=64, validation_fraction=0, random_state=0).fit(X[:1200])
    rec = [r["feature_rec"] for r in est.history_]
    assert np.mean(rec[-3:]) < rec[0] - 1.0, rec
    assert est.history_[-1]["pixel_mse"] < est.history_[0]["pixel_mse"]
    assert {"loss", "kl", "feature_rec", "g_loss", "d_loss", "d_real", "d_fake", "active_units", "kl_dim_0"} <= set(est.history_[-1])
    held_out = X[1200:]
    mean_image = ((held_out - X[:1200].mean(axis=0)) ** 2).mean()
    assert ((est.reconstruct(held_out) - held_out) ** 2).mean() < 0.75 * mean_image  # better than the mean digit (0.56 of it when written)
    samples = est.sample(64, random_state=0)
    assert samples.shape == (64, 1, 8, 8) and samples.std(axis=0).mean() > 0.05  # not one image 64 times


def test_save_load_gives_identical_outputs_and_there_is_no_likelihood(digits, tmp_path):
    X = digits[0][:200]
    est = VAEGAN(3, arch="conv", channels=(4, 8), d_channels=(4, 8), epochs=2, batch_size=64, random_state=0).fit(X)
    same = genlab.load(est.save(tmp_path / "model"))
    assert type(same) is VAEGAN and same.get_params() == est.get_params()
    z = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    for name, call in {"transform": lambda m: m.transform(X[:20]), "reconstruct": lambda m: m.reconstruct(X[:20]),
                       "inverse_transform": lambda m: m.inverse_transform(z), "sample": lambda m: m.sample(8, random_state=3)}.items():
        np.testing.assert_array_equal(call(est), call(same), err_msg=name)
    assert est.reconstruct(X[:4]).shape == (4, 1, 8, 8)
    assert not hasattr(est, "score_samples") and not hasattr(est, "elbo") and not families.has(est, "likelihood")
    with pytest.raises(InvalidInputError, match="no likelihood"):
        est.sample(2, mean=False)


def test_parameters_that_cannot_work_are_refused_with_the_fix(digits):
    X = digits[0][:100]
    with pytest.raises(InvalidInputError, match=r"feature_layer=3.*choose 1\.\.2"):
        VAEGAN(2, d_hidden=(8, 8), feature_layer=3, epochs=1).fit(X)
    with pytest.raises(InvalidInputError, match="d_hidden must name at least one layer"):
        VAEGAN(2, d_hidden=(), epochs=1).fit(X)
    with pytest.raises(InvalidInputError, match="early_stopping=True needs a record"):
        VAEGAN(2, hidden=(8,), d_hidden=(8,), epochs=1, early_stopping=True).fit(X)


def test_genlab_train_vaegan_writes_a_run_directory_and_resumes(tmp_path):
    run = tmp_path / "vg"
    assert main(["train", "vaegan", "--data", "digits", "--latent-dim", "2", "--hidden", "16", "--d-hidden", "16", "--gamma", "0.5",
                 "--epochs", "2", "--batch-size", "256", "--seed", "0", "--quiet", "--out", str(run)]) == 0
    names = {p.name for p in run.iterdir()}
    assert {"config.toml", "model.json", "model.safetensors", "metrics.jsonl", "checkpoints", "samples.png",
            "reconstructions.png", "training_curves.png"} <= names
    assert 'model = "vaegan"' in (run / "config.toml").read_text() and "gamma = 0.5" in (run / "config.toml").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("feature_rec" in r and "d_loss" in r for r in records if "epoch" in r)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    model = genlab.load(run)
    assert families.of(model).key == "vaegan" and len(model.history_) == 3 and model.gamma == 0.5
