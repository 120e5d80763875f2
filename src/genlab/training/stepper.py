"""The optimisation step, owned by the loop (spec §8): optimisers built from a family's
:class:`~genlab.models.base.OptimizerSpec` and the run's configuration, and the ``step(name, loss)``
a family's ``train_step`` calls. Precision, gradient scaling, clipping, the non-finite policy and
the learning-rate schedule live here once, for every family.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import clip_grads_with_norm_, get_total_norm
from torch.nn.utils.parametrize import is_parametrized

from ..errors import InvalidInputError
from ..models.base import OptimizerSpec
from .distributed import SINGLE, Group

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
PRECISIONS = ("32", "bf16", "16-mixed")
FUSED_DEVICES = ("cpu", "cuda")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16-mixed": torch.float16}
_WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


class SkipBatch(Exception):
    """Raised by the stepper when ``nonfinite="skip"`` and a loss or gradient is not finite."""


def weight_parameters(module: nn.Module) -> set[int]:
    """ids of the weight matrices and kernels of linear and convolutional layers: what
    ``weight_decay_on="weights"`` decays (the ρ‖W‖² of the lectures). Biases, normalisation scales
    and free parameters such as a learned output variance are left alone."""
    ids = set()
    for m in module.modules():
        if isinstance(m, _WEIGHT_LAYERS):
            weight = m.parametrizations.weight.original if is_parametrized(m, "weight") else m.weight
            ids.add(id(weight))
    return ids


def build_optimizers(module: nn.Module, specs: dict[str, OptimizerSpec], config) -> dict[str, torch.optim.Optimizer]:
    """One optimiser per entry of ``specs`` (a family's ``optimizer_specs()``), of ``config.optimizer``'s kind.

    The family's lr and betas win over the configuration's; every parameter group remembers its
    ``base_lr`` so that the schedule can scale it."""
    weights = weight_parameters(module) if config.weight_decay_on == "weights" else None
    optimizers = {}
    for name, spec in specs.items():
        params = [p for p in spec.params if p.requires_grad]
        lr = float(config.lr if spec.lr is None else spec.lr)
        if weights is None or not config.weight_decay:
            groups = [{"params": params, "weight_decay": config.weight_decay}]
        else:
            groups = [{"params": [p for p in params if id(p) in weights], "weight_decay": config.weight_decay},
                      {"params": [p for p in params if id(p) not in weights], "weight_decay": 0.0}]
            groups = [g for g in groups if g["params"]]
        kwargs = {"momentum": config.momentum} if config.optimizer == "sgd" else {"betas": spec.betas or (0.9, 0.999)}
        # one fused kernel per update instead of ~6 passes over every parameter: Adam's step for W1 takes 0.38 ms
        # instead of 1.9 ms on CPU (benchmarks/RESULTS.md); the fused kernels exist for CPU and CUDA
        fused = bool(params) and all(p.device.type in FUSED_DEVICES and p.dtype == torch.float32 for p in params)
        optimizer = OPTIMIZERS[config.optimizer](groups, lr=lr, fused=fused or None, **kwargs)
        for group in optimizer.param_groups:
            group["base_lr"] = lr
        optimizers[name] = optimizer
    return optimizers


def engine_signature(config, optimizers: dict[str, torch.optim.Optimizer], world_size: int = 1) -> dict:
    """What a checkpoint's optimiser state depends on: resuming under other settings is refused. The number
    of processes is part of it when it is more than one (each rank's data order and noise depend on it)."""
    signature = {"optimizer": config.optimizer, "momentum": config.momentum, "weight_decay": config.weight_decay,
                 "weight_decay_on": config.weight_decay_on, "precision": config.precision,
                 "lr": {name: opt.param_groups[0]["base_lr"] for name, opt in optimizers.items()}}
    if world_size > 1:
        signature["world_size"] = world_size
    return signature


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    if precision == "16-mixed" and device.type != "cuda":
        raise InvalidInputError(f"precision='16-mixed' (float16 with a gradient scaler) needs a CUDA device; this run is on "
                                f"{device.type}. Use precision='bf16' or '32'.")


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """float16 needs loss scaling so that small gradients survive; bfloat16 has float32's range and does not."""
    return torch.amp.GradScaler(device.type) if precision == "16-mixed" else None


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """The forward passes of a step in the run's precision (a no-op for "32")."""
    if precision == "32":
        yield
        return
    with torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision]):
        yield


class Stepper:
    """``step(names, loss) -> bool``: zero the named optimisers' gradients, back-propagate ``loss``
    (scaled under float16) into their parameters only, unscale, check finiteness (``nonfinite="skip"``),
    clip each optimiser's gradients to ``grad_clip`` (global norm), and step. Returns whether the
    update was taken (under float16 the scaler skips steps whose gradients overflowed).

    Under several processes (``group``), the gradients and the loss are averaged across ranks right after
    backward, before anything looks at them: unscaling, the non-finite check and clipping then see the
    same numbers on every rank, so every rank takes the same decision and the same step."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], *, grad_clip: float | None, skip_nonfinite: bool,
                 scaler: torch.amp.GradScaler | None, device: torch.device, log_norms: tuple[str, ...] = (),
                 group: Group = SINGLE):
        self.optimizers, self.grad_clip, self.skip_nonfinite, self.scaler = optimizers, grad_clip, skip_nonfinite, scaler
        self.device, self.group = device, group
        self.params = {name: [p for g in opt.param_groups for p in g["params"]] for name, opt in optimizers.items()}
        self.log_norms = set(log_norms)
        self.grad_norms: dict[str, torch.Tensor] = {}
        self.last_loss = torch.zeros(())
        self.lr_scale = 1.0

    def forget_lr_scale(self) -> None:
        """The groups' lrs came from elsewhere (a checkpoint): the next ``set_lr_scale`` writes them."""
        self.lr_scale = math.nan

    def set_lr_scale(self, scale: float) -> None:
        """The schedule's multiplier for the coming steps: every group's lr becomes base_lr × scale."""
        if scale == self.lr_scale:
            return
        self.lr_scale = scale
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * scale  # (checkpoints from before schedules lack it)

    def __call__(self, names: str | tuple[str, ...], loss: torch.Tensor) -> bool:
        names = (names,) if isinstance(names, str) else tuple(names)
        params = [p for name in names for p in self.params[name]]
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        if self.skip_nonfinite and self.scaler is not None and not self.group.all_true(bool(torch.isfinite(loss.detach()))):
            raise SkipBatch  # before the scaler sees this step: its unscale_/update bookkeeping stays consistent
        with torch.autocast(self.device.type, enabled=False):  # backward outside autocast (PyTorch's AMP recipe)
            (loss if self.scaler is None else self.scaler.scale(loss)).backward(inputs=params)
        if self.group.world > 1:
            loss = self._average(params, loss)
        self.last_loss = loss.detach()
        if self.scaler is not None:
            for name in names:
                self.scaler.unscale_(self.optimizers[name])
        norms = {name: self._clip(name) for name in names}
        if self.skip_nonfinite:
            self._refuse_nonfinite(names, loss, norms)
        if self.scaler is None:
            for name in names:
                self.optimizers[name].step()
            return True
        scale = self.scaler.get_scale()  # one host sync per step, float16 only
        for name in names:
            self.scaler.step(self.optimizers[name])
        self.scaler.update()
        return self.scaler.get_scale() >= scale

    def _average(self, params: list[torch.Tensor], loss: torch.Tensor) -> torch.Tensor:
        """Every rank's gradients become their mean over ranks (one all-reduce, loss included); returns the mean
        loss. Each rank's loss is the mean over an equal share of the global batch, so the mean of the ranks'
        gradients is the gradient of the global batch's mean loss. A parameter the loss did not reach gets a
        zero gradient (it may be reached on another rank)."""
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        mean_loss = loss.detach().float().reshape(1).clone()
        self.group.average_([p.grad for p in params] + [mean_loss])
        return mean_loss[0]

    def _clip(self, name: str) -> torch.Tensor | None:
        """Clip one optimiser's gradients to the global norm ``grad_clip``; the norm before clipping."""
        if self.grad_clip is None and name not in self.log_norms and not self.skip_nonfinite:
            return None
        grads = [p.grad for p in self.params[name] if p.grad is not None]
        norm = get_total_norm(grads, foreach=True) if grads else torch.zeros((), device=self.device)
        if self.grad_clip is not None and grads:
            clip_grads_with_norm_(self.params[name], self.grad_clip, norm, foreach=True)
        if name in self.log_norms:
            self.grad_norms[name] = norm.detach()
        return norm

    def _refuse_nonfinite(self, names, loss: torch.Tensor, norms: dict[str, torch.Tensor | None]) -> None:
        """``nonfinite="skip"``: one host sync; gradients are left zeroed and the batch is skipped. Under
        float16 the loss was checked before backward, and overflowing gradients are the scaler's to handle."""
        if self.scaler is not None:
            return
        checks = [torch.isfinite(loss.detach()).reshape(1)] + [torch.isfinite(n).reshape(1) for n in norms.values() if n is not None]
        if not bool(torch.cat(checks).all()):
            for name in names:
                self.optimizers[name].zero_grad(set_to_none=True)
            raise SkipBatch


def lr_scale(schedule: str, step: int, *, total_steps: int, steps_per_epoch: int, warmup_steps: int, decay: float,
             step_epochs: int, plateau_scale: float) -> float:
    """The learning-rate multiplier for the ``step``-th update of the run (0-based), by global batch
    step, so that every optimiser of a family (a GAN's two, with k_d ≠ k_g) follows the same curve.

    Linear warm-up over ``warmup_steps``, then constant; cosine to 0 at the last step (Loshchilov &
    Hutter 2017); ×``decay`` every ``step_epochs`` epochs; or the plateau multiplier the loop keeps."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, max(0, step - warmup_steps) / span)
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return warm * decay ** ((step // steps_per_epoch) // step_epochs)
    if schedule == "plateau":
        return warm * plateau_scale
    return warm
