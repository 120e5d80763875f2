"""Engine v2 (issue 12): the loop owns the optimisation step — stepper, optimisers, weight decay on
weights only, clipping, schedules (checkpointed, exact on resume for every family), precision,
TensorBoard, flush-to-zero on every thread, and the families' monitors."""

import ast
import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import sparse
from torch import nn

import genlab
from conftest import assert_user_error, run
from genlab import GAN, VAE, Autoencoder, InvalidInputError, MultVAE
from genlab.data.protocol import fold_in_split
from genlab.models import (
    AutoencoderConfig,
    AutoencoderModule,
    Batch,
    GANConfig,
    GANModule,
    GenerativeModule,
    MultVAEConfig,
    MultVAEModule,
    VAEConfig,
    VAEModule,
)
from genlab.training import SparseRows, TensorData, TrainConfig, build_optimizers, make_stepper, train
from genlab.training.checkpoint import MANIFEST, LoopState, list_checkpoints, load_checkpoint, save_checkpoint
from genlab.training.stepper import SkipBatch, lr_scale

SRC = Path(genlab.__file__).parent


def test_no_family_calls_backward_or_an_optimiser_step():
    for path in (SRC / "models").glob("*.py"):
        text = path.read_text()
        assert ".backward(" not in text and ".step(" not in text, path.name


def test_no_function_in_the_loop_is_longer_than_sixty_lines():
    for path in (SRC / "training").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}:{node.name}"


# -- flush-to-zero ---------------------------------------------------------------------------------
def test_flush_to_zero_reaches_every_pool_thread_and_is_restored():
    # a fresh process whose OpenMP pool exists before training starts (any torch call creates it)
    script = textwrap.dedent("""
        import json, torch
        torch.set_num_threads(2)
        x = torch.randn(512, 512); x @ x
        from genlab.training.denormals import flush_denormals, pool_thread_states
        out = {"before": pool_thread_states()}
        with flush_denormals():
            out["inside"] = pool_thread_states()
            t = torch.full((1 << 20,), 1e-30); t.mul_(1e-10)  # a parallel kernel: denormal results on every chunk
            out["denormals_left"] = int((t != 0).sum())
        out["after"] = pool_thread_states()
        torch.set_flush_denormal(True)  # the caller's own setting on its thread is given back too
        with flush_denormals():
            pass
        out["caller_kept"] = pool_thread_states()
        print(json.dumps(out))
    """)
    out = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
    assert len(out["inside"]) == 2
    assert not any(out["before"].values()) and all(out["inside"].values()) and not any(out["after"].values())
    assert out["denormals_left"] == 0  # without FTZ on the worker, its half of the tensor stays denormal
    assert out["caller_kept"] == {"0": True, "1": False}


# -- optimisers ------------------------------------------------------------------------------------
class _Probe(GenerativeModule):
    """A linear layer whose loss has zero gradient: any change to the weights is the optimiser's own doing."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)
        nn.init.constant_(self.layer.weight, 1.0)
        nn.init.constant_(self.layer.bias, 1.0)

    def objective(self, batch, generator=None):
        return {"loss": 0.0 * self.layer(batch.x).sum()}


@pytest.mark.parametrize("where, bias_after", [("all", 0.5), ("weights", 1.0)])
def test_weight_decay_can_spare_the_biases(where, bias_after):
    module = _Probe()
    step = make_stepper(module, TrainConfig(optimizer="sgd", lr=1.0, weight_decay=0.5, weight_decay_on=where))
    module.train_step(Batch(torch.ones(4, 3)), step)
    # SGD: w <- w - lr * (grad + λ w) = (1 - 0.5) w
    assert torch.allclose(module.layer.weight, torch.full((2, 3), 0.5))
    assert torch.allclose(module.layer.bias, torch.full((2,), bias_after))


def test_optimizer_kinds_and_family_learning_rates():
    module = GANModule(GANConfig(input_shape=(2,), hidden=(8,), lr_g=1e-4, lr_d=3e-4, betas=(0.5, 0.9)))
    opts = build_optimizers(module, module.optimizer_specs(), TrainConfig(lr=1.0))
    assert opts["generator"].param_groups[0]["lr"] == 1e-4 and opts["discriminator"].param_groups[0]["lr"] == 3e-4
    assert opts["generator"].param_groups[0]["betas"] == (0.5, 0.9)
    sgd = build_optimizers(module, module.optimizer_specs(), TrainConfig(optimizer="sgd", momentum=0.9))
    assert isinstance(sgd["generator"], torch.optim.SGD) and sgd["generator"].param_groups[0]["momentum"] == 0.9
    adamw = build_optimizers(module, module.optimizer_specs(), TrainConfig(optimizer="adamw", weight_decay=0.01))
    assert isinstance(adamw["discriminator"], torch.optim.AdamW)


def test_gan_learning_rate_defaults_reach_the_loop():
    assert GAN()._train_config().lr == 1e-3 and GAN(arch="conv")._train_config().lr == 2e-4
    assert GAN(lr=0.01)._train_config().lr == 0.01


def test_gradient_clipping_bounds_each_optimisers_global_norm():
    torch.manual_seed(0)
    module = AutoencoderModule(AutoencoderConfig(input_shape=(6,), latent_dim=2, hidden=(8,)))
    batch = Batch(100 * torch.randn(16, 6))  # large inputs, large gradients
    ref = make_stepper(module, TrainConfig(optimizer="sgd", lr=0.0))
    ref("model", module.objective(batch)["loss"])
    raw = torch.cat([p.grad.flatten() for p in module.parameters()]).norm()
    assert raw > 10
    clipped = make_stepper(module, TrainConfig(optimizer="sgd", lr=0.0, grad_clip=0.5))
    clipped("model", module.objective(batch)["loss"])
    norm = torch.cat([p.grad.flatten() for p in module.parameters()]).norm()
    assert norm == pytest.approx(0.5, rel=1e-4)


def test_the_gan_logs_gradient_norms_before_clipping(digits):
    gan = GAN(hidden=(16,), epochs=1, batch_size=64, grad_clip=1e-3, random_state=0).fit(digits[0][:256])
    assert gan.history_[0]["d_grad_norm"] > 1e-3 and gan.history_[0]["g_grad_norm"] > 1e-3


# -- schedules -------------------------------------------------------------------------------------
def test_schedule_shapes():
    common = dict(total_steps=100, steps_per_epoch=10, decay=0.1, step_epochs=3, plateau_scale=1.0)
    assert [lr_scale("constant", s, warmup_steps=4, **common) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cosine = [lr_scale("cosine", s, warmup_steps=0, **common) for s in range(100)]
    assert cosine[0] == 1.0 and cosine[50] == pytest.approx(0.5) and cosine[-1] < 1e-3 and cosine == sorted(cosine, reverse=True)
    step = [lr_scale("step", s, warmup_steps=0, **common) for s in (0, 29, 30, 59, 60)]
    assert step == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])
    assert lr_scale("plateau", 50, warmup_steps=0, **{**common, "plateau_scale": 0.01}) == 0.01


class _Worsening(GenerativeModule):
    """Its loss grows by one every step: no epoch improves on the first."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.register_buffer("t", torch.zeros(()))

    def objective(self, batch, generator=None):
        return {"loss": self.w.pow(2).sum() + self.t}

    def train_step(self, batch, step, generator=None, stream=None):
        terms = super().train_step(batch, step, generator, stream)
        self.t += 1
        return terms


def test_plateau_schedule_decays_after_patience_epochs_without_improvement():
    result = train(_Worsening(), TensorData(torch.zeros(20, 1)), None,
                   TrainConfig(epochs=4, batch_size=10, lr=0.1, lr_schedule="plateau", lr_patience=1, lr_decay=0.5), seed=0)
    assert [r["lr_model"] for r in result.history] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_plateau_needs_a_monitor_and_a_gan_has_none(digits):
    for kwargs in (dict(early_stopping=True), dict(lr_schedule="plateau")):
        with pytest.raises(InvalidInputError, match="needs a record that measures progress.*d_loss and g_loss"):
            GAN(epochs=1, **kwargs).fit(digits[0][:64])


FAMILY_MODULES = {
    "ae": lambda: AutoencoderModule(AutoencoderConfig(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,))),
    "vae": lambda: VAEModule(VAEConfig(input_shape=(1, 8, 8), latent_dim=3, hidden=(16,))),
    "gan": lambda: GANModule(GANConfig(input_shape=(64,), latent_dim=4, hidden=(16,), lr_g=1e-3, lr_d=1e-3, d_steps=2)),
    "multvae": lambda: MultVAEModule(MultVAEConfig(n_items=64, hidden=(16,), latent_dim=4)),
}


def _family_data(family, digits):
    """(training, validation) data; Mult-VAE validates on fold-in/held-out rows, as its estimator does."""
    x = torch.from_numpy(digits[0][:200])
    if family == "gan":
        return TensorData(x.reshape(200, -1)), None
    if family == "multvae":
        rows = sparse.csr_matrix((digits[0][:260].reshape(260, -1) > 0.5).astype(np.float32))
        fold_in, heldout = fold_in_split(rows[200:], fraction=0.2, random_state=0)
        return TensorData(SparseRows(rows[:200])), TensorData(SparseRows(fold_in), SparseRows(heldout))
    return TensorData(x), None


# every family with every schedule — but a GAN declares no monitor, so plateau is refused for it (tested above)
CASES = [(f, s) for f in FAMILY_MODULES for s in ("constant", "cosine", "step", "plateau") if (f, s) != ("gan", "plateau")]


@pytest.mark.parametrize("family, schedule", CASES)
def test_four_epochs_straight_equal_two_then_resume_for_every_family_and_schedule(family, schedule, digits, tmp_path):
    data, val = _family_data(family, digits)
    optimizer = dict(optimizer="sgd", momentum=0.9) if family == "ae" else dict(optimizer="adam")
    config = TrainConfig(epochs=4, batch_size=64, lr_schedule=schedule, warmup_steps=3, lr_step_epochs=1, lr_patience=1,
                         lr_decay=0.5, grad_clip=5.0, keep_checkpoints=4, device="cpu", **optimizer)

    def fresh():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return FAMILY_MODULES[family]()

    straight = fresh()
    train(straight, data, val, config, seed=5, run_dir=tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    ckpts = tmp_path / "resumed" / "checkpoints"  # keep what a run stopped after epoch 2 would have left
    names = list_checkpoints(ckpts)
    (ckpts / MANIFEST).write_text(json.dumps({"complete": names[:2]}))
    resumed = fresh()
    train(resumed, data, val, config, seed=5, run_dir=tmp_path / "resumed", resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = lambda run: [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    drop = lambda r: {k: v for k, v in r.items() if k not in ("time", "samples_per_s")}  # noqa: E731
    assert [drop(r) for r in lines("straight")] == [drop(r) for r in lines("resumed")]
    if schedule in ("cosine", "step"):  # (whether plateau fires depends on the losses; its rule is tested above)
        lrs = [r[next(k for k in r if k.startswith("lr_"))] for r in lines("straight")]
        assert len(set(lrs)) > 1  # the schedule really moved the learning rate


def test_float16_scaler_state_is_checkpointed(tmp_path):
    module = _Probe()
    step = make_stepper(module)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=7)
    scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    scaler.update(123.0)  # a non-default scale, as after overflows
    save_checkpoint(tmp_path, module, step.optimizers, {}, LoopState(), scaler=scaler)
    restored = torch.amp.GradScaler("cpu")
    load_checkpoint(tmp_path / list_checkpoints(tmp_path)[-1], _Probe(), make_stepper(_Probe()).optimizers, {}, restored)
    assert restored.state_dict() == scaler.state_dict() and restored.get_scale() == 123.0


# -- precision -------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: Autoencoder(3, arch="conv", channels=(4, 8), epochs=2, batch_size=64, precision="bf16", random_state=0),
    lambda: VAE(3, hidden=(16,), epochs=2, batch_size=64, precision="bf16", random_state=0),
    lambda: GAN(arch="conv", channels=(4, 8), epochs=2, batch_size=64, precision="bf16", random_state=0),
])
def test_bf16_trains_every_family_on_cpu_and_keeps_float32_weights(make, digits):
    est = make().fit(digits[0][:256])
    assert all(math.isfinite(v) for r in est.history_ for k, v in r.items() if isinstance(v, float))
    assert all(p.dtype == torch.float32 for p in est.module_.parameters())
    assert np.isfinite(est.sample(4, random_state=0)).all()


def test_bf16_multvae_trains(digits):
    X = sparse.csr_matrix((digits[0][:300].reshape(300, -1) > 0.5).astype(np.float32))
    rec = MultVAE(hidden=(16,), latent_dim=4, epochs=2, batch_size=64, precision="bf16", random_state=0).fit(X)
    assert math.isfinite(rec.history_[-1]["loss"])


def test_float16_needs_cuda_and_bad_values_are_one_line_errors(digits, capsys, tmp_path):
    with pytest.raises(InvalidInputError, match="16-mixed.*needs a CUDA device"):
        VAE(2, epochs=1, precision="16-mixed", device="cpu").fit(digits[0][:64])
    for bad, words in [(("--precision", "fp8"), ("precision", "fp8")),
                       (("--momentum", "0.9"), ("momentum", "sgd")), (("--grad-clip", "-1"), ("grad_clip", "> 0")),
                       (("--lr-schedule", "bogus"), ("lr-schedule", "bogus")), (("--precision", "16-mixed"), ("CUDA",))]:
        code, _, err = run(capsys, "train", "vae", "--data", "digits", "--epochs", "1", "--device", "cpu",
                           "--out", tmp_path / "bad", *bad)
        assert_user_error(code, err, *words)
        assert not (tmp_path / "bad").exists()
    code, _, err = run(capsys, "train", "gan", "--data", "digits", "--early-stopping", "--out", tmp_path / "gan")
    assert_user_error(code, err, "early_stopping=True", "d_loss and g_loss")


# -- the CLI and TensorBoard -----------------------------------------------------------------------
def test_cli_takes_every_engine_option_and_writes_tensorboard(capsys, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--epochs", "3", "--hidden", "32", "--latent-dim", "2",
                       "--precision", "bf16", "--optimizer", "sgd", "--momentum", "0.9", "--weight-decay", "1e-4",
                       "--weight-decay-on", "weights", "--lr-schedule", "cosine", "--warmup-steps", "5", "--grad-clip", "10",
                       "--lr", "0.01", "--tensorboard", "--seed", "0", "--quiet", "--out", out)
    assert code == 0, err
    config = (out / "config.toml").read_text()
    for line in ('precision = "bf16"', 'optimizer = "sgd"', 'lr_schedule = "cosine"', "grad_clip = 10", "tensorboard = true"):
        assert line in config.replace("10.0", "10"), line
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"loss", "val_loss", "elbo", "lr_model", "active_units"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]
    history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([r["loss"] for r in history])
    images = events.Images("samples")
    assert [e.step for e in images] == [1, 2, 3] and images[0].width > 8 and images[0].height > 8


def test_tensorboard_needs_a_run_directory(digits):
    with pytest.raises(InvalidInputError, match="run_dir"):
        VAE(2, epochs=1, tensorboard=True).fit(digits[0][:64])


def test_tensorboard_does_not_change_training(digits, tmp_path):
    a = VAE(2, hidden=(16,), epochs=2, batch_size=64, random_state=0).fit(digits[0][:256], run_dir=tmp_path / "a")
    b = VAE(2, hidden=(16,), epochs=2, batch_size=64, random_state=0, tensorboard=True).fit(digits[0][:256],
                                                                                          run_dir=tmp_path / "b")
    assert [r["loss"] for r in a.history_] == [r["loss"] for r in b.history_]
    assert (tmp_path / "b" / "tensorboard").is_dir() and not (tmp_path / "a" / "tensorboard").exists()


# -- review fixes ----------------------------------------------------------------------------------
def test_resume_inside_the_warm_up_is_exact(digits, tmp_path):
    data = TensorData(torch.from_numpy(digits[0][:200]))  # 4 steps per epoch (64, 64, 64, 8)
    config = TrainConfig(epochs=3, batch_size=64, warmup_steps=3, checkpoint_steps=2, keep_checkpoints=20, device="cpu")

    def fresh():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return FAMILY_MODULES["ae"]()

    straight = fresh()
    train(straight, data, None, config, seed=1, run_dir=tmp_path / "straight")
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    ckpts = tmp_path / "resumed" / "checkpoints"  # stopped after step 2, inside the 3-step warm-up
    (ckpts / MANIFEST).write_text(json.dumps({"complete": ["step-000000002.safetensors"]}))
    resumed = fresh()
    train(resumed, data, None, config, seed=1, run_dir=tmp_path / "resumed", resume=True)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_float16_skip_leaves_the_scaler_usable():
    # a CPU GradScaler stands in for CUDA's (float16 training itself is refused on CPU)
    module = _Probe()
    step = make_stepper(module, TrainConfig(nonfinite="skip"))
    step.scaler = torch.amp.GradScaler("cpu")
    x = torch.ones(4, 3)
    with pytest.raises(SkipBatch):
        step("model", module.layer(x).sum() * float("nan"))
    before = module.layer.weight.detach().clone()
    assert step("model", module.layer(x).pow(2).sum()) is True  # no "unscale_() has already been called", step taken
    assert not torch.equal(before, module.layer.weight)


def test_resuming_with_another_optimiser_is_refused(digits, tmp_path):
    X = digits[0][:200]
    Autoencoder(3, hidden=(16,), epochs=2, batch_size=64, random_state=0).fit(X, run_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="optimizer='adam' \\(now 'sgd'\\)"):
        Autoencoder(3, hidden=(16,), epochs=3, batch_size=64, random_state=0, optimizer="sgd").fit(X, run_dir=tmp_path, resume=True)


def test_a_validation_only_monitor_without_validation_is_refused_before_training():
    X = sparse.random(200, 40, density=0.2, format="csr", random_state=0, dtype=np.float32)
    with pytest.raises(InvalidInputError, match="only a validation split measures"):
        MultVAE(hidden=(8,), latent_dim=2, epochs=1, validation_users=0, lr_schedule="plateau").fit(X)


@pytest.mark.parametrize("family", FAMILY_MODULES)
def test_losses_are_float32_under_bf16_autocast(family, digits):
    module = FAMILY_MODULES[family]().train()
    data, _ = _family_data(family, digits)
    batch = Batch(data.x[:32])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = module.objective(batch, torch.Generator().manual_seed(0))
    assert {name: t.dtype for name, t in terms.items()} == {name: torch.float32 for name in terms}
