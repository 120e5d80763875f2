"""The shared base of the scikit-learn style estimators: validate, build ``module_``, call the training loop, convert
NumPy <-> torch and undo the data scaling on the way out. No modelling maths lives here."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .._params import ENGINE_DEFAULTS, Param, check_params
from .._validation import check_array, check_labels, resolve_seed
from ..data.scaling import Scaling
from ..data.split import train_validation_split
from ..errors import InvalidInputError
from ..models import GenerativeModule
from ..training import ArrayRows, TensorData, TrainConfig, is_file_backed, train

PREDICT_BATCH = 1024

#: The estimators' docstrings share one description of the training options: ``{training}`` in a
#: class docstring becomes this (see :func:`with_training_doc`).
TRAINING_DOC = """\
    epochs, batch_size, lr, weight_decay, weight_decay_on, optimizer, momentum, lr_schedule, warmup_steps, lr_decay,
    lr_step_epochs, lr_patience, grad_clip, precision, tensorboard, early_stopping, patience, validation_fraction,
    scaling, device, verbose, random_state, checkpoint_steps, nonfinite
        Training, shared by every estimator (README, "Training options"; :class:`genlab.training.TrainConfig`):
        optimiser (adam, adamw, sgd), weight decay on all parameters or weights only, learning-rate
        schedule with warm-up, gradient clipping, precision ("32", "bf16", "16-mixed" on CUDA), TensorBoard."""


def with_training_doc(cls):
    """Put :data:`TRAINING_DOC` where the class docstring says ``{training}``."""
    cls.__doc__ = cls.__doc__.replace("    {training}", TRAINING_DOC)
    return cls


def _as_tensor(arr: np.ndarray) -> torch.Tensor:
    """NumPy -> torch without a copy when possible (read-only arrays, e.g. memory-mapped files, are copied)."""
    arr = np.ascontiguousarray(arr)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


class GenerativeEstimator(BaseEstimator):
    """Shared front door. A family declares ``_params``, ``_make_module`` and, if it keeps
    fitted arrays, ``_fitted_arrays``; everything else (validation, scaling, seeding, the split,
    the loop, saving) is here once."""

    _params: ClassVar[dict[str, Param]] = {}
    _fitted_arrays: ClassVar[tuple[str, ...]] = ()
    _has_likelihood: ClassVar[bool] = False  # a decoder distribution p(x|z) that sample(mean=False) draws from

    def _keep_engine_options(self, given: dict[str, Any]) -> None:
        """Store the training-engine options among an ``__init__``'s arguments (``locals()``) as they are,
        as scikit-learn asks; every estimator has them (``ENGINE_DEFAULTS``)."""
        for name in ENGINE_DEFAULTS:
            setattr(self, name, given[name])

    # -- hooks for the families ---------------------------------------------------------------
    def _make_module(self, input_shape: tuple[int, ...], n_classes: int | None) -> GenerativeModule:
        raise NotImplementedError

    def _check_arch_fits(self, input_shape: tuple[int, ...]) -> None:
        """Convolutional networks need image-shaped samples (c, h, w)."""
        if getattr(self, "arch", None) == "conv" and len(input_shape) != 3:
            raise InvalidInputError(
                f"arch='conv' needs images (n, channels, height, width); got samples of shape {input_shape}. "
                "Reshape them, e.g. X.reshape(-1, 1, 8, 8), or use arch='mlp'."
            )

    def _output_range(self) -> tuple[float, float] | None:
        """Range the model's outputs can take (None: unbounded); data is scaled into it."""
        return None

    def _fit_module(self, module: GenerativeModule, train_data: TensorData, val_data: TensorData | None,
                    run_dir: Path | None, resume: bool) -> list[dict]:
        """Learn the module's weights; returns the epoch history. Default: the training loop."""
        result = train(module, train_data, val_data, self._train_config(), seed=self.seed_, run_dir=run_dir, resume=resume)
        self.best_epoch_ = result.best_epoch
        self.stopped_early_ = result.stopped_early
        return result.history

    def _fit_labels(self, y, n_samples: int) -> tuple[np.ndarray, int]:
        """Validated training labels and the number of classes C (labels are 0..C-1)."""
        y = check_labels(y, n_samples)
        return y, int(y.max()) + 1

    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        """Model-specific input preparation after scaling (e.g. fixed binarisation). Default: none."""
        return x

    def _after_fit(self, x_train: torch.Tensor, y_train: torch.Tensor | None) -> None:
        """Fit anything that depends on the trained module (e.g. a code distribution)."""

    # -- fitting -----------------------------------------------------------------------------
    def _validated_params(self) -> dict[str, Any]:
        return check_params(self.get_params(), self._params)

    def _train_config(self, **overrides) -> TrainConfig:
        """The loop's configuration from this estimator's training parameters (those it declares), then ``overrides``."""
        own = {f.name: getattr(self, f.name) for f in fields(TrainConfig) if f.name in self._params}
        return TrainConfig(**{**own, **overrides})

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int | None) -> GenerativeModule:
        # weights are initialised from the seed without touching the caller's global RNG
        self._check_arch_fits(tuple(input_shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            return self._make_module(tuple(input_shape), n_classes)

    def fit(self, X, y=None, *, run_dir: str | Path | None = None, resume: bool = False):
        """Fit to ``X`` (n, d) or (n, c, h, w); ``y`` (n,) class labels where the model uses them.

        With ``run_dir``, per-epoch metrics go to ``run_dir/metrics.jsonl`` and checkpoints to
        ``run_dir/checkpoints``; ``resume=True`` continues from the newest checkpoint there.
        Returns ``self``.
        """
        params = self._validated_params()
        X = check_array(X)
        y, n_classes = (None, None) if y is None else self._fit_labels(y, len(X))
        if self.validation_fraction > 0 and math.ceil(self.validation_fraction * len(X)) >= len(X):
            raise InvalidInputError(f"validation_fraction={self.validation_fraction} leaves no training samples out of "
                                    f"n_samples={len(X)}; give more samples, or set validation_fraction=0.")
        self.seed_ = resolve_seed(params["random_state"])
        self.input_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = math.prod(self.input_shape_)
        self.n_classes_ = n_classes
        self.scaling_ = Scaling.fit(X, mode=self.scaling, target=self._output_range())
        yt = None if y is None else torch.from_numpy(y)
        train_idx, val_idx = train_validation_split(len(X), self.validation_fraction, self.seed_)
        if is_file_backed(X):  # a memory-mapped file (maybe larger than memory) is read and scaled a batch at a time
            to_model = lambda rows: self._preprocess(self.scaling_.forward(rows))  # noqa: E731
            subset = lambda idx: TensorData(ArrayRows(X, to_model, idx), None if yt is None else yt[idx])  # noqa: E731
        else:
            x = _as_tensor(self._preprocess(self.scaling_.forward(X)))
            subset = lambda idx: TensorData(x[idx], None if yt is None else yt[idx])  # noqa: E731
        train_data = subset(train_idx)
        val_data = subset(val_idx) if len(val_idx) else None
        module = self._build_module(self.input_shape_, self.n_classes_)
        self.history_ = self._fit_module(module, train_data, val_data, None if run_dir is None else Path(run_dir), resume)
        self.module_ = module.eval()
        self._after_fit(train_data.x, train_data.y)
        return self

    # -- applying ----------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.module_.parameters()).device

    def _check_X(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_array(X, expected_shape=self.input_shape_, owner=type(self).__name__)
        return self._preprocess(self.scaling_.forward(X))

    def _check_n_samples(self, n_samples) -> int:
        """A fitted model and a positive integer number of samples to draw."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise InvalidInputError(f"n_samples must be a positive integer, got {n_samples!r}.")
        return int(n_samples)

    def _check_mean(self, mean) -> bool:
        """``sample(mean=...)``: True gives the decoder's mean; False draws x ~ p(x|z), which only a model with
        a likelihood (a VAE) defines."""
        if not isinstance(mean, (bool, np.bool_)):
            raise InvalidInputError(f"mean must be True (the decoder's mean) or False (draw from p(x|z)); got {mean!r}.")
        if not mean and not self._has_likelihood:
            raise InvalidInputError(f"a {type(self).__name__} defines no likelihood p(x|z), so sample(mean=False) has nothing to draw "
                                    "from; only a VAE does.")
        return bool(mean)

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise InvalidInputError(f"This {type(self).__name__} is not fitted yet; call fit(X) first.")

    @torch.no_grad()
    def _apply(self, fn, arr) -> np.ndarray:
        """Run ``fn`` on float32 ``arr`` (NumPy, a tensor, or rows read from disk) in batches on the model's
        device; returns NumPy."""
        self.module_.eval()
        device = self._device()
        as_tensor = lambda part: part if torch.is_tensor(part) else _as_tensor(part)  # noqa: E731
        outs = [fn(as_tensor(arr[s:s + PREDICT_BATCH]).to(device)).cpu().numpy() for s in range(0, len(arr), PREDICT_BATCH)]
        return np.concatenate(outs)

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` + ``model.safetensors`` into folder ``path``; see :func:`genlab.load`."""
        from ..io import save_estimator

        self._check_fitted()
        return save_estimator(self, path)
