"""The one training loop. It knows batches, devices, epochs, validation, early stopping,
checkpoints and logging — and nothing about which model it is training (spec §8).

The model supplies ``configure_optimizers`` and ``train_step``/``eval_step``
(:class:`genlab.models.GenerativeModule`). Per-step losses stay on the device; they are read
once per epoch, so the loop adds no host-device synchronisation per step.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .._fileio import atomic_write_text
from ..errors import InvalidInputError, ModelFileError
from ..models.base import Batch, GenerativeModule
from .checkpoint import LoopState, list_checkpoints, load_checkpoint, save_checkpoint
from .progress import Progress, Timer

DEVICES = ("auto", "cpu", "cuda", "mps")


class SparseRows:
    """Rows of a scipy CSR matrix that become dense tensors one batch at a time, so memory grows with
    batch × columns, never rows × columns. Indexed like a tensor: ``rows[idx]``, ``rows[a:b]``, ``len``."""

    def __init__(self, matrix, device: torch.device | str = "cpu"):
        self.matrix = matrix.tocsr().astype(np.float32)
        self.device = torch.device(device)
        self.shape = self.matrix.shape

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        return torch.from_numpy(self.matrix[idx].toarray()).to(self.device)

    def to(self, device) -> SparseRows:
        return SparseRows(self.matrix, device)


class TensorData(NamedTuple):
    """A data set in model units: x (n, ...) and y (n, ...) or None, as tensors (the whole set) or
    :class:`SparseRows` (densified a batch at a time)."""

    x: torch.Tensor | SparseRows
    y: torch.Tensor | SparseRows | None = None


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    early_stopping: bool = False
    patience: int = 10
    device: str = "auto"
    verbose: int = 0
    checkpoint_every: int = 1  # epochs between checkpoints when a run directory is given
    checkpoint_steps: int | None = None  # also checkpoint every this many steps inside epochs
    nonfinite: str = "stop"  # NaN/Inf loss or gradient: "stop" the run, or "skip" the batch (one host sync per step)
    keep_checkpoints: int = 3
    monitor: str | None = None  # record entry that picks the best epoch; None: val_loss, or loss without validation
    maximize: bool = False  # larger monitor values are better (e.g. a ranking metric)
    keep_best: bool = False  # end with the best epoch's weights (always so with early stopping)


@dataclass(frozen=True)
class TrainResult:
    history: list[dict]
    best_epoch: int
    stopped_early: bool


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinity; the last good checkpoint is kept."""


def resolve_device(device: str) -> torch.device:
    """"auto" picks CUDA, then MPS, then CPU; an explicit device must be present."""
    if device not in DEVICES:
        raise InvalidInputError(f"device must be one of {', '.join(DEVICES)}; got {device!r}.")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device='cuda' but no CUDA device is available; use device='auto' or 'cpu'.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("device='mps' but MPS is not available; use device='auto' or 'cpu'.")
    return torch.device(device)


@contextlib.contextmanager
def flush_denormals():
    """Flush denormal floats to zero while training on CPU (Adam moments decaying into denormals
    slow a CPU down by tens of percent, spec §8). torch has no getter, so we restore the default."""
    enabled = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if enabled:
            torch.set_flush_denormal(False)


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch of one sample is dropped (batch-norm cannot train on it)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds


def _evaluate(module: GenerativeModule, data: TensorData, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    """Sample-weighted mean of ``eval_step`` terms over ``data``, with its own fixed noise."""
    module.eval()
    generator = torch.Generator(device=data.x.device).manual_seed(seed)
    sums: dict[str, torch.Tensor] = {}
    n, size = len(data.x), max(batch_size, 256)
    for start, stop in ((s, min(s + size, n)) for s in range(0, n, size)):  # every row: nothing trains here
        y = None if data.y is None else data.y[start:stop]
        for name, value in module.eval_step(Batch(data.x[start:stop], y), generator).items():
            sums[name] = sums.get(name, 0) + value.detach() * (stop - start)
    return {name: total / len(data.x) for name, total in sums.items()}


def train(
    module: GenerativeModule,
    train_data: TensorData,
    val_data: TensorData | None,
    config: TrainConfig,
    *,
    seed: int,
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``module`` in place; with ``run_dir``, log to metrics.jsonl and keep checkpoints.

    ``resume=True`` continues from the newest complete checkpoint in ``run_dir/checkpoints``.
    """
    device = resolve_device(config.device)
    module.to(device)
    optimizers = module.configure_optimizers(config.lr, config.weight_decay)
    rngs = {"data": torch.Generator().manual_seed(seed), "noise": torch.Generator(device=device).manual_seed(seed + 1)}
    ckpt_dir = Path(run_dir) / "checkpoints" if run_dir is not None else None
    state, best_weights, partial = LoopState(), None, {}
    if resume:
        names = list_checkpoints(ckpt_dir) if ckpt_dir is not None else []
        if not names:
            raise InvalidInputError(f"no complete checkpoint in {ckpt_dir}; nothing to resume (start the run again).")
        state, best_weights, partial = load_checkpoint(ckpt_dir / names[-1], module, optimizers, rngs)
        if config.epochs < state.epoch + (1 if state.step_in_epoch else 0):
            raise InvalidInputError(f"this run has already trained {state.epoch} epochs"
                                    f"{' and part of the next' if state.step_in_epoch else ''}; resume with epochs of at least "
                                    f"{state.epoch + (1 if state.step_in_epoch else 0)}.")

    x, y = train_data.x.to(device), None if train_data.y is None else train_data.y.to(device)
    val = None if val_data is None else TensorData(val_data.x.to(device), None if val_data.y is None else val_data.y.to(device))
    bounds = _batches(len(x), config.batch_size)
    if state.step_in_epoch:  # a checkpoint inside an epoch must fit this data and batching
        n_terms = {len(v) for k, v in partial.items() if k.startswith("term/")}
        if len(partial["order"]) != len(x) or state.step_in_epoch >= len(bounds) or n_terms != {len(partial["kept"])}:
            raise ModelFileError(f"the newest checkpoint in {ckpt_dir} does not match this run's data or batch size.")
    batch_sizes = torch.tensor([stop - start for start, stop in bounds], dtype=torch.float32, device=device)

    def stream() -> Batch:  # random extra batches for families with an inner loop (aggressive VAE)
        idx = torch.randint(len(x), (min(config.batch_size, len(x)),), generator=rngs["data"]).to(device)
        return Batch(x[idx], None if y is None else y[idx])

    monitor = config.monitor or ("val_loss" if val is not None else "loss")
    keep_best = config.keep_best or config.early_stopping
    progress = Progress(config.epochs, bounds[-1][1], verbose=config.verbose)
    progress.start(state.epoch)
    stopped_early = False
    if run_dir is not None:  # the metrics file always matches the state we continue from
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        write_metrics(Path(run_dir), state.history)
    try:
        with flush_denormals():
            for epoch in range(state.epoch, config.epochs):
                timer = Timer()
                module.train()
                if state.step_in_epoch:  # resuming inside this epoch: its order and the steps' terms so far
                    order, kept = partial["order"].to(device), partial["kept"].tolist()
                    steps = [{name[len("term/"):]: v[i].to(device) for name, v in partial.items() if name.startswith("term/")}
                             for i in range(len(kept))]
                else:
                    order = torch.randperm(len(x), generator=rngs["data"]).to(device)
                    steps, kept = [], []  # the kept steps' terms stay on the device; reduced once per epoch
                for i in range(state.step_in_epoch, len(bounds)):
                    start, stop = bounds[i]
                    idx = order[start:stop]
                    terms = _step(module, Batch(x[idx], None if y is None else y[idx]), optimizers, rngs["noise"], stream, config)
                    if terms is not None:
                        steps.append(terms)
                        kept.append(i)
                    progress.step(stop - start)
                    if ckpt_dir is not None and config.checkpoint_steps and (state.global_step + i + 1) % config.checkpoint_steps == 0 \
                            and i + 1 < len(bounds) and steps:
                        _save_inside_epoch(ckpt_dir, module, optimizers, rngs, state, i + 1, order, steps, kept, best_weights, config)
                state.step_in_epoch = 0
                if not steps:
                    raise NonFiniteLossError(f"every batch of epoch {epoch + 1} had a non-finite loss or gradient; training stopped. "
                                             "Lower the learning rate or check the data's scale.")
                sizes = batch_sizes[kept]
                n_seen = int(sizes.sum())
                per_step = {name: torch.stack([t[name] for t in steps]) for name in steps[0]}  # name -> (n_kept,)
                sums = {name: (values * sizes).sum() for name, values in per_step.items()}
                _check_finite(per_step["loss"], sums, state.global_step, epoch + 1)
                state.global_step += len(bounds)
                state.epoch = epoch + 1
                record = {"epoch": state.epoch, "step": state.global_step}
                record.update({name: total.item() / n_seen for name, total in sums.items()})
                if config.nonfinite == "skip":
                    record["skipped_batches"] = len(bounds) - len(kept)
                if val is not None:
                    record.update({f"val_{k}": v.item() for k, v in _evaluate(module, val, config.batch_size, seed + 2).items()})
                diagnostics_rng = torch.Generator(device=device).manual_seed(seed + 3)
                record.update(module.end_epoch(val if val is not None else TensorData(x, y), diagnostics_rng))
                record["time"] = timer.elapsed()
                record["samples_per_s"] = n_seen / max(record["time"], 1e-9)
                state.history.append(record)
                progress.end_epoch(record)

                if monitor not in record:
                    raise InvalidInputError(f"monitor {monitor!r} is not among this run's records: {', '.join(record)}.")
                value = -record[monitor] if config.maximize else record[monitor]  # the state keeps "lower is better"
                if value < state.best_value:
                    state.best_value, state.best_epoch, state.bad_epochs = value, state.epoch, 0
                    if keep_best:
                        best_weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    state.bad_epochs += 1
                stop_now = config.early_stopping and state.bad_epochs >= config.patience
                if run_dir is not None:
                    _append_metrics(Path(run_dir), record)
                    if stop_now or state.epoch == config.epochs or state.epoch % max(config.checkpoint_every, 1) == 0:
                        _check_weights_finite(module, state.epoch)
                        save_checkpoint(ckpt_dir, module, optimizers, rngs, state, best_weights=best_weights, keep=config.keep_checkpoints)
                if stop_now:
                    stopped_early = True
                    break
    finally:
        progress.close()
    if keep_best and best_weights is not None:
        module.load_state_dict(copy.deepcopy(best_weights))
    module.eval()
    return TrainResult(state.history, state.best_epoch, stopped_early)


class _NonFiniteGradient(Exception):
    """Raised before an optimiser step whose gradients are not all finite (``nonfinite="skip"``)."""


def _refuse_nonfinite_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        raise _NonFiniteGradient


def _step(module, batch: Batch, optimizers, generator, stream, config: TrainConfig) -> dict[str, torch.Tensor] | None:
    """One ``train_step``. With ``nonfinite="skip"`` a batch whose gradients or loss are not finite
    is left out of the epoch's record (None): the optimiser step that would use them and everything
    after it in that step is not taken, and floating-point buffers (batch-norm statistics) are put
    back. Updates made before it in the same step (a GAN's discriminator steps) are kept."""
    if config.nonfinite != "skip":
        return module.train_step(batch, optimizers, generator, stream)
    buffers = [b for b in module.buffers() if b.is_floating_point()]  # batch-norm statistics see the batch in forward
    saved = [b.clone() for b in buffers]
    hooks = [opt.register_step_pre_hook(_refuse_nonfinite_step) for opt in optimizers.values()]
    try:
        terms = module.train_step(batch, optimizers, generator, stream)
        if bool(torch.isfinite(terms["loss"])):
            return terms
    except _NonFiniteGradient:
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
    finally:
        for hook in hooks:
            hook.remove()
    with torch.no_grad():
        for b, old in zip(buffers, saved):
            b.copy_(old)
    return None


def _save_inside_epoch(ckpt_dir, module, optimizers, rngs, state: LoopState, n_done: int, order: torch.Tensor,
                       steps: list[dict[str, torch.Tensor]], kept: list[int], best_weights, config: TrainConfig) -> None:
    """A checkpoint after ``n_done`` steps of the current epoch: with the epoch's data order and its
    terms so far, resuming from it continues the epoch exactly as if it had not stopped."""
    terms = {f"term/{name}": torch.stack([t[name] for t in steps]) for name in steps[0]}
    _check_finite(terms["term/loss"], {k[5:]: v.sum() for k, v in terms.items()}, state.global_step, state.epoch + 1)
    _check_weights_finite(module, state.epoch + 1)
    inside = copy.copy(state)
    inside.step_in_epoch = n_done
    extra = {"order": order, "kept": torch.tensor(kept, dtype=torch.long), **terms}
    save_checkpoint(ckpt_dir, module, optimizers, rngs, inside, best_weights=best_weights, extra=extra, keep=config.keep_checkpoints)


def _check_finite(step_losses: torch.Tensor, sums: dict[str, torch.Tensor], step0: int, epoch: int) -> None:
    """One sync per epoch: name the first step and the terms that went non-finite."""
    bad_terms = [name for name, total in sums.items() if not math.isfinite(float(total))]
    if bad_terms or not bool(torch.isfinite(step_losses).all()):
        finite = torch.isfinite(step_losses)
        first = int((~finite).nonzero()[0, 0]) if not bool(finite.all()) else 0
        raise NonFiniteLossError(
            f"non-finite {', '.join(bad_terms) or 'loss'} at step {step0 + first + 1} (epoch {epoch}; a non-finite gradient shows "
            "as the next step's loss); training stopped and no checkpoint was written from it. Lower the learning rate, check "
            "the data's scale, or pass nonfinite='skip' to skip such batches."
        )


def _check_weights_finite(module: torch.nn.Module, epoch: int) -> None:
    for name, p in module.state_dict().items():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise NonFiniteLossError(f"weight {name} became non-finite by epoch {epoch}; no checkpoint was written.")


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """(Re)write ``run_dir/metrics.jsonl`` atomically: one JSON object per record."""
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _append_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
