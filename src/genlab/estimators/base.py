"""The shared base of the scikit-learn style estimators: validate, build ``module_``, call the training loop, convert
NumPy <-> torch and undo the data scaling on the way out. No modelling maths lives here."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .._modelfile import TensorSpec, jsonable, spec
from .._modelfile import write as write_model
from .._params import Param, check_number, check_params
from .._validation import check_array, check_labels, resolve_seed
from ..data.scaling import Scaling
from ..data.split import train_validation_split
from ..errors import InvalidInputError
from ..models import GenerativeModule
from ..training import ArrayRows, TensorData, TrainConfig, distributed, is_file_backed, resolve_device, train

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


def _init_from(cls) -> None:
    """Give ``cls`` the ``__init__`` its ``_params`` table declares: ``_positional`` names first (positional or keyword),
    the rest keyword-only, each with its declared default; it stores every argument as given (scikit-learn's rule:
    checking happens in ``fit``). The signature is a real one (``inspect.signature``, ``help()``, ``get_params``)."""
    table, positional = cls._params, cls._positional
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=table[n].default) for n in positional]
    parameters += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=p.default) for n, p in table.items()
                   if n not in positional]
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:  # as Python words it for a written-out __init__
            raise TypeError(f"{type(self).__name__}.__init__() {exc}") from None
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    __init__.__doc__ = f"{cls.__name__}'s parameters, stored as given and checked by fit (see the class docstring)."
    cls.__init__ = __init__


def _with_added_fields(skeleton: GenerativeModule, module: dict):
    """The stored module config, with the fields a file written before them lacks set to their defaults: a config
    field added later defaults to what models were built with before it existed (a rule for every module config)."""
    stored = module.get("config")
    if not isinstance(stored, dict) or module.get("class") != type(skeleton).__name__:
        return stored
    added = {f.name: f.default for f in dataclasses.fields(skeleton.config)
             if f.name not in stored and f.default is not dataclasses.MISSING}
    return {**jsonable(added), **stored}


class DeclaredEstimator(BaseEstimator):
    """An estimator whose parameters are its ``_params`` table: declaring the table (and ``_positional``) is all a
    class does for its constructor, its validation (:meth:`_validated_params`), the CLI options and TOML keys; the
    training parameters come from :func:`genlab._params.training_params`, declared once."""

    _params: ClassVar[dict[str, Param]] = {}
    _positional: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls._params and "__init__" not in cls.__dict__:  # a subclass gets its own (its name in help and messages)
            _init_from(cls)

    def _validated_params(self) -> dict[str, Any]:
        return check_params(self.get_params(), self._params)


class SavedModel:
    """A fitted model that ``save`` writes as ``model.json`` + ``model.safetensors`` (:mod:`genlab._modelfile`, read back
    by :func:`genlab.load`). A class provides the four persistence hooks that module describes and ``_check_fitted``."""

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` + ``model.safetensors`` into folder ``path``; see :func:`genlab.load`. Under torchrun only
        rank 0 writes (every rank holds the same model)."""
        self._check_fitted()
        return write_model(self, path) if distributed.current().main else Path(path)

    def _upgrade_tensors(self, tensors: dict[str, torch.Tensor], version: int) -> dict[str, torch.Tensor]:
        return tensors


class GenerativeEstimator(SavedModel, DeclaredEstimator):
    """Shared front door. A family declares ``_params``, ``_make_module`` and, if it keeps
    fitted arrays, ``_fitted_arrays``; everything else (validation, scaling, seeding, the split,
    the loop, saving) is here once."""

    _fitted_arrays: ClassVar[tuple[str, ...]] = ()
    _has_likelihood: ClassVar[bool] = False  # a decoder distribution p(x|z) that sample(mean=False) draws from
    _scaled: ClassVar[bool] = True  # fit maps the data into the model's range (scaling_); Mult-VAE's counts are not scaled

    # -- hooks for the families ---------------------------------------------------------------
    def _make_module(self, p: SimpleNamespace, input_shape: tuple[int, ...], n_classes: int | None) -> GenerativeModule:
        """The family's module for samples of ``input_shape`` (and ``n_classes`` classes, or None), built from ``p``: the
        parameters as :meth:`_validated_params` checked and normalised them (``p.hidden``, ``p.latent_dim``, ...)."""
        raise NotImplementedError

    def _check_arch_fits(self, p: SimpleNamespace, input_shape: tuple[int, ...]) -> None:
        """Convolutional networks need image-shaped samples (c, h, w)."""
        if getattr(p, "arch", None) == "conv" and len(input_shape) != 3:
            raise InvalidInputError(
                f"arch='conv' needs images (n, channels, height, width); got samples of shape {input_shape}. "
                "Reshape them, e.g. X.reshape(-1, 1, 8, 8), or use arch='mlp'."
            )

    def _output_range(self) -> tuple[float, float] | None:
        """Range the model's outputs can take (None: unbounded); data is scaled into it."""
        return None

    def _fit_module(self, module: GenerativeModule, train_data: TensorData, val_data: TensorData | None,
                    run_dir: Path | None, resume: bool, config: TrainConfig | None = None) -> list[dict]:
        """Learn the module's weights; returns the epoch history. Default: the training loop with this estimator's
        training parameters (``config``: a family's own, e.g. Mult-VAE keeps its best epoch)."""
        result = train(module, train_data, val_data, config or self._train_config(), seed=self.seed_, run_dir=run_dir,
                       resume=resume)
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
    def _train_config(self, **overrides) -> TrainConfig:
        """The loop's configuration from this estimator's validated training parameters (those it declares), then
        ``overrides``."""
        params = self._validated_params()
        own = {f.name: params[f.name] for f in dataclasses.fields(TrainConfig) if f.name in params}
        return TrainConfig(**{**own, **overrides})

    def _build_module(self, input_shape: tuple[int, ...], n_classes: int | None) -> GenerativeModule:
        """The module from the validated parameters; its weights are initialised from the seed without touching the
        caller's global RNG."""
        p = SimpleNamespace(**self._validated_params())
        self._check_arch_fits(p, tuple(input_shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)
            return self._make_module(p, tuple(input_shape), n_classes)

    def fit(self, X, y=None, *, run_dir: str | Path | None = None, resume: bool = False):
        """Fit to ``X`` (n, d) or (n, c, h, w); ``y`` (n,) class labels where the model uses them.

        With ``run_dir``, per-epoch metrics go to ``run_dir/metrics.jsonl`` and checkpoints to
        ``run_dir/checkpoints``; ``resume=True`` continues from the newest checkpoint there.
        Returns ``self``.

        Every estimator trained by the loop goes through these steps: validate the parameters, prepare the data
        (:meth:`_prepare_data`), build the module from the validated parameters, train it (:meth:`_fit_module`),
        then :meth:`_after_fit`.
        """
        params = self._validated_params()
        self.seed_ = resolve_seed(params["random_state"])
        train_data, val_data = self._prepare_data(X, y)
        module = self._build_module(self.input_shape_, self.n_classes_)
        self.history_ = self._fit_module(module, train_data, val_data, None if run_dir is None else Path(run_dir), resume)
        self.module_ = module.eval()
        self._after_fit(train_data.x, train_data.y)
        return self

    def _prepare_data(self, X, y) -> tuple[TensorData, TensorData | None]:
        """Check ``X`` (and ``y``), record the fitted shapes, fit the scaling, split off the validation rows; returns
        the training and validation data as the loop reads them."""
        X = check_array(X)
        y, n_classes = (None, None) if y is None else self._fit_labels(y, len(X))
        if self.validation_fraction > 0 and math.ceil(self.validation_fraction * len(X)) >= len(X):
            raise InvalidInputError(f"validation_fraction={self.validation_fraction} leaves no training samples out of "
                                    f"n_samples={len(X)}; give more samples, or set validation_fraction=0.")
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
        return subset(train_idx), (subset(val_idx) if len(val_idx) else None)

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
        return check_number("n_samples", n_samples, low=1, what="a positive integer")

    def _check_mean(self, mean) -> bool:
        """``sample(mean=...)``: True gives the decoder's mean; False draws x ~ p(x|z), which only a model with
        a likelihood (a VAE) defines."""
        if not isinstance(mean, (bool, np.bool_)):
            raise InvalidInputError(f"mean must be True (the decoder's mean) or False (draw from p(x|z)); got {mean!r}.")
        if not mean and not self._has_likelihood:
            raise InvalidInputError(f"this {type(self).__name__} defines no likelihood p(x|z), so sample(mean=False) (CLI: --draw) "
                                    "has nothing to draw from; a VAE with a Bernoulli or Gaussian decoder does.")
        return bool(mean)

    def code_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per latent coordinate of the distribution the model draws its codes from when
        it samples, each (latent_dim,) float64: the prior N(0, I) unless the family says otherwise (a GAN's uniform
        prior, an autoencoder's fitted mixture). The latent tools sweep and grid codes over it."""
        self._check_fitted()
        k = int(self.module_.config.latent_dim)
        return np.zeros(k), np.ones(k)

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

    # -- persistence (genlab._modelfile calls these; SavedModel.save writes) -----------------------
    def _saved_state(self):
        fitted = {"input_shape_": list(self.input_shape_), "n_features_in_": self.n_features_in_, "n_classes_": self.n_classes_,
                  "seed_": self.seed_, "history_": self.history_}
        if self._scaled:
            fitted["scaling_"] = self.scaling_.to_dict()
        module = {"class": type(self.module_).__name__, "config": jsonable(dataclasses.asdict(self.module_.config))}
        tensors = {f"module/{k}": v for k, v in self.module_.state_dict().items()}
        tensors.update({f"fitted/{name}": getattr(self, name) for name in self._fitted_arrays if hasattr(self, name)})
        return fitted, module, tensors

    def _restore_state(self, fitted: dict, module: dict | None, version: int) -> dict[str, TensorSpec]:
        self.input_shape_ = tuple(int(s) for s in fitted["input_shape_"])
        self.n_features_in_ = int(fitted["n_features_in_"])
        self.n_classes_ = None if fitted["n_classes_"] is None else int(fitted["n_classes_"])
        self.seed_ = int(fitted["seed_"])
        if self._scaled:
            self.scaling_ = Scaling.from_dict(fitted["scaling_"])
        self.history_ = list(fitted["history_"])
        skeleton = self._skeleton()
        if not isinstance(module, dict) or jsonable(dataclasses.asdict(skeleton.config)) != _with_added_fields(skeleton, module):
            raise ValueError("the stored architecture does not match what its parameters build (file edited, or written by an "
                             "incompatible genlab)")
        expected = {f"module/{k}": spec(v) for k, v in skeleton.state_dict().items()}
        return expected | {f"fitted/{name}": (None, None, False) for name in self._fitted_arrays}  # as fit left them

    def _upgrade_tensors(self, tensors: dict[str, torch.Tensor], version: int) -> dict[str, torch.Tensor]:
        state = self._skeleton().upgrade_state({k[len("module/"):]: v for k, v in tensors.items() if k.startswith("module/")},
                                               version)
        return {**{k: v for k, v in tensors.items() if not k.startswith("module/")}, **{f"module/{k}": v for k, v in state.items()}}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        module = self._build_module(self.input_shape_, self.n_classes_)  # checked against the skeleton: now safe to allocate
        module.load_state_dict({k[len("module/"):]: v for k, v in tensors.items() if k.startswith("module/")})
        self.module_ = module.to(resolve_device(self.device)).eval()
        for name in self._fitted_arrays:
            if f"fitted/{name}" in tensors:
                setattr(self, name, tensors[f"fitted/{name}"].numpy())

    def _skeleton(self) -> GenerativeModule:
        """The module these parameters build, on the meta device: shapes only, nothing allocated (an edited size such
        as latent_dim=10**9 is refused before anything is built)."""
        with torch.device("meta"):
            return self._build_module(self.input_shape_, self.n_classes_)
