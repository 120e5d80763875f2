"""The training loop: metrics, early stopping, checkpoints, exact resume, non-finite guard."""

import json
import math

import numpy as np
import pytest
import torch

from genlab import Autoencoder, InvalidInputError
from genlab.models import Batch, GenerativeModule
from genlab.training import NonFiniteLossError, TensorData, TrainConfig, resolve_device, train
from genlab.training.checkpoint import list_checkpoints


def _flat(digits, n=256):
    return digits[0][:n].reshape(n, -1)


def test_metrics_jsonl_has_one_record_per_epoch(digits, tmp_path):
    X = _flat(digits)
    ae = Autoencoder(4, epochs=3, batch_size=64, random_state=0).fit(X, run_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert lines == ae.history_
    assert {"loss", "val_loss", "step", "time", "samples_per_s"} <= set(lines[0])
    assert lines[-1]["loss"] < lines[0]["loss"]


def test_checkpoints_keep_last_n_and_manifest(digits, tmp_path):
    X = _flat(digits)
    Autoencoder(4, epochs=5, batch_size=64, random_state=0).fit(X, run_dir=tmp_path)
    names = list_checkpoints(tmp_path / "checkpoints")
    assert len(names) == 3 and names == sorted(names)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.safetensors")) == names
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_resume_continues_exactly(digits, tmp_path, arch):
    X = digits[0][:300]
    straight = Autoencoder(4, arch=arch, epochs=4, batch_size=64, random_state=3).fit(X, run_dir=tmp_path / "a")
    Autoencoder(4, arch=arch, epochs=2, batch_size=64, random_state=3).fit(X, run_dir=tmp_path / "b")
    resumed = Autoencoder(4, arch=arch, epochs=4, batch_size=64, random_state=3).fit(X, run_dir=tmp_path / "b", resume=True)
    for (k, v), (_, w) in zip(straight.module_.state_dict().items(), resumed.module_.state_dict().items()):
        assert torch.equal(v, w), k
    assert [r["loss"] for r in straight.history_] == [r["loss"] for r in resumed.history_]


def test_resume_without_checkpoint_is_a_clear_error(digits, tmp_path):
    with pytest.raises(InvalidInputError, match="no complete checkpoint"):
        Autoencoder(4, epochs=1).fit(_flat(digits), run_dir=tmp_path, resume=True)


def test_early_stopping_stops_and_restores_best(digits):
    X = _flat(digits, 400)
    ae = Autoencoder(4, epochs=200, lr=0.05, early_stopping=True, patience=2, batch_size=64, random_state=0).fit(X)
    assert ae.stopped_early_ and len(ae.history_) < 200
    best = min(r["val_loss"] for r in ae.history_)
    assert ae.history_[ae.best_epoch_ - 1]["val_loss"] == best
    assert len(ae.history_) == ae.best_epoch_ + 2


class _ExplodesAtStep(GenerativeModule):
    """A linear model whose loss turns NaN from a given step on."""

    def __init__(self, bad_step):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.bad_step, self.steps = bad_step, 0

    def objective(self, batch, generator=None):
        self.steps += self.training
        loss = (self.linear(batch.x) - batch.x).pow(2).sum(1).mean()
        return {"loss": loss * (math.nan if self.steps >= self.bad_step else 1.0)}


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = TensorData(torch.randn(64, 2))
    config = TrainConfig(epochs=4, batch_size=16)  # 4 steps per epoch
    with pytest.raises(NonFiniteLossError, match="step 7 .epoch 2"):
        train(_ExplodesAtStep(bad_step=7), data, None, config, seed=0, run_dir=tmp_path)
    assert list_checkpoints(tmp_path / "checkpoints") == ["step-000000004.safetensors"]


class _BadAtSteps(GenerativeModule):
    """A linear model; at the given steps its loss (``where="loss"``) or only its gradient goes NaN."""

    def __init__(self, bad_steps, where):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.bad_steps, self.where, self.steps = set(bad_steps), where, 0
        self.linear.weight.register_hook(lambda g: g * math.nan if self._bad() and self.where == "gradient" else g)

    def _bad(self):
        return self.training and self.steps in self.bad_steps

    def objective(self, batch, generator=None):
        self.steps += self.training
        loss = (self.linear(batch.x) - batch.x).pow(2).sum(1).mean()
        return {"loss": loss * (math.nan if self._bad() and self.where == "loss" else 1.0)}


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_nonfinite_batches_are_skipped_when_asked(where):
    data = TensorData(torch.randn(64, 2, generator=torch.Generator().manual_seed(0)))
    module = _BadAtSteps({3, 6}, where)
    result = train(module, data, None, TrainConfig(epochs=3, batch_size=16, nonfinite="skip"), seed=0)
    assert [r["skipped_batches"] for r in result.history] == [1, 1, 0]
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert all(bool(torch.isfinite(p).all()) for p in module.parameters())
    with pytest.raises(NonFiniteLossError, match="step [34] .epoch 1"):  # the default stops (a gradient: at the next step)
        train(_BadAtSteps({3}, where), data, None, TrainConfig(epochs=3, batch_size=16), seed=0)


def test_nonfinite_option_through_the_estimators(digits):
    ae = Autoencoder(4, epochs=1, batch_size=64, nonfinite="skip", random_state=0).fit(_flat(digits, 200))
    assert ae.history_[0]["skipped_batches"] == 0
    with pytest.raises(InvalidInputError, match="nonfinite"):
        Autoencoder(4, nonfinite="ignore").fit(_flat(digits, 200))


def test_progress_prints_plain_lines_off_a_terminal(digits, capsys):
    Autoencoder(4, epochs=2, batch_size=64, verbose=1, random_state=0).fit(_flat(digits))
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "samples/s" in err and "\r" not in err


def test_device_resolution():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(InvalidInputError, match="device"):
        resolve_device("tpu")


def test_training_is_model_agnostic():
    """The loop drives any GenerativeModule; here one that just learns a mean."""

    class Mean(GenerativeModule):
        def __init__(self):
            super().__init__()
            self.mu = torch.nn.Parameter(torch.zeros(3))

        def objective(self, batch: Batch, generator=None):
            return {"loss": (batch.x - self.mu).pow(2).sum(1).mean()}

    module = Mean()
    x = torch.tensor([[1.0, 2.0, 3.0]]).repeat(64, 1) + 0.01 * torch.randn(64, 3)
    train(module, TensorData(x), None, TrainConfig(epochs=200, batch_size=64, lr=0.05), seed=0)
    np.testing.assert_allclose(module.mu.detach().numpy(), [1, 2, 3], atol=0.05)


def test_progress_bar_on_a_terminal():
    import io

    from genlab.models.vae import VAEModule
    from genlab.training.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    progress = Progress(2, 100, verbose=1, stream=screen, groups=VAEModule.record_groups)  # a VAE's kl_dim_j are one group
    progress.step(100)
    progress.end_epoch({"epoch": 1, "step": 4, "loss": 1.5, "kl_dim_0": 0.1, "val_loss": 1.7, "time": 0.1, "samples_per_s": 1000})
    progress.close()
    shown = screen.getvalue()
    assert "epoch 1/2" in shown and "sample/s" in shown and "loss 1.5" in shown and "val_loss 1.7" in shown
    assert "kl_dim_0" not in shown


class _BatchNormModel(GenerativeModule):
    """Linear → BatchNorm → Linear; used to see that a skipped batch leaves the running statistics alone."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(), torch.nn.Linear(8, 2))

    def objective(self, batch, generator=None):
        return {"loss": (self.net(batch.x) - batch.x.nan_to_num()).pow(2).sum(1).mean()}


def test_a_skipped_batch_leaves_batch_norm_statistics_alone():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    x[5, 0] = math.nan  # one poisoned row: its batch's forward pass would put NaN into running_mean/var
    module = _BatchNormModel()
    result = train(module, TensorData(x), None, TrainConfig(epochs=2, batch_size=16, nonfinite="skip"), seed=0)
    assert [r["skipped_batches"] for r in result.history] == [1, 1]
    assert all(bool(torch.isfinite(b).all()) for b in module.buffers() if b.is_floating_point())
    assert bool(torch.isfinite(module.eval().net(torch.randn(4, 2))).all())
