"""Declared hyper-parameters: one table per estimator drives validation in ``fit``, the
``genlab train`` options and the TOML config, so the three can never disagree."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidInputError

Kind = Literal["int", "float", "str", "bool", "ints", "floats", "seed"]


@dataclass(frozen=True)
class Param:
    kind: Kind
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None  # inclusive lower bound for numbers
    high: float | None = None  # exclusive upper bound for numbers
    none_ok: bool = False
    above: float | None = None  # exclusive lower bound for numbers
    bool_ok: bool = False  # an "int" that also takes False / True as 0 / 1 (verbose=False, as scikit-learn users pass)
    default: Any = None  # the constructor's default (estimators' __init__ is built from their tables: estimators/base.py)
    what: str | None = None  # replaces the generated description in messages ("a positive integer (it is recorded)")
    error: type[InvalidInputError] = InvalidInputError  # what check() raises (DataError for data sources)
    length: int | None = None  # "floats" / "ints": exactly this many (Adam's betas: 2)

    def describe(self) -> str:
        if self.what is not None:
            return self.what
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        what = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
                "ints": "a list of positive integers", "floats": "a list of numbers", "seed": "a non-negative integer"}[self.kind]
        if self.length is not None:
            what = what.replace("a list of", f"a list of {self.length}")
        if self.low is not None:
            what += f" >= {self.low:g}"
        if self.above is not None:
            what += f" > {self.above:g}"
        if self.high is not None:
            what += f" and < {self.high:g}"
        return what + (" (or None)" if self.none_ok else "") + (" or a bool" if self.bool_ok else "")

    def from_cli(self, value: Any) -> Any:
        """A command-line value: the word "none" is None where the parameter takes None and "none" is not a choice
        of its own (``--scaling none`` stays the string)."""
        return None if value == "none" and self.none_ok and "none" not in (self.choices or ()) else value

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` normalised (lists to tuples, ints to floats), or raise InvalidInputError."""
        if value is None and (self.none_ok or self.kind == "seed"):
            return None
        bad = self.error(f"{name} must be {self.describe()}; got {value!r}.")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind in ("int", "seed"):
            if isinstance(value, bool) and self.bool_ok:
                return int(value)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                if self.kind == "seed" and type(value).__name__ == "Generator":
                    return value
                raise bad
            value = int(value)
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
                raise bad
            value = float(value)
        elif self.kind == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return value
        elif self.kind == "ints":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise bad
            value = tuple(value)
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in value):
                raise bad
            return tuple(int(v) for v in value)
        elif self.kind == "floats":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise bad
            value = tuple(value)
            if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v for v in value):
                raise bad
            value = tuple(float(v) for v in value)
            if any((self.low is not None and v < self.low) or (self.high is not None and v >= self.high) for v in value):
                raise bad
            if self.length is not None and len(value) != self.length:
                raise bad
            return value
        low = 0 if self.kind == "seed" else self.low
        if (low is not None and value < low) or (self.high is not None and value >= self.high) \
                or (self.above is not None and value <= self.above):
            raise bad
        return value


def check_number(name: str, value: Any, *, kind: Literal["int", "float"] = "int", low: float | None = None,
                 high: float | None = None, above: float | None = None, none_ok: bool = False, what: str | None = None,
                 error: type[InvalidInputError] = InvalidInputError) -> Any:
    """Check one int or float argument outside a parameter table and return it as a plain ``int`` / ``float``.

    ``low`` is an inclusive lower bound, ``above`` an exclusive one, ``high`` an exclusive upper bound; bools are
    refused, NumPy scalars accepted, None passes through when ``none_ok``. A bad value raises ``error`` with the
    message "NAME must be WHAT; got VALUE." where ``what`` defaults to the generated description ("an integer >= 1"):

        n = check_number("n_samples", n_samples, low=1, what="a positive integer")
    """
    return Param(kind, "", low=low, high=high, above=above, none_ok=none_ok, what=what, error=error).check(name, value)


def check_params(params: dict[str, Any], table: dict[str, Param]) -> dict[str, Any]:
    """Validate every declared parameter; returns the normalised values."""
    return {name: table[name].check(name, value) for name, value in params.items() if name in table}


TRAINING_PARAMS: dict[str, Param] = {
    "epochs": Param("int", "passes over the training data", low=1),
    "batch_size": Param("int", "samples per gradient step", low=1),
    "lr": Param("float", "learning rate", low=0),
    "weight_decay": Param("float", "weight decay λ: adds λ·w to each gradient (adam, sgd; a penalty (λ/2)‖w‖²), or AdamW's "
                          "decoupled decay", low=0),
    "weight_decay_on": Param("str", "what weight decay applies to: all parameters, or only the weights of linear and conv "
                             "layers (not biases or normalisation scales)", choices=("all", "weights")),
    "optimizer": Param("str", "adam, adamw (decoupled weight decay) or sgd (with momentum)", choices=("adam", "adamw", "sgd")),
    "momentum": Param("float", "SGD momentum (optimizer='sgd' only)", low=0, high=1),
    "lr_schedule": Param("str", "learning-rate schedule: constant, cosine (to 0 at the last step), step (×lr_decay every "
                         "lr_step_epochs) or plateau (×lr_decay after lr_patience epochs without improvement)",
                         choices=("constant", "cosine", "step", "plateau")),
    "warmup_steps": Param("int", "steps of linear learning-rate warm-up before the schedule", low=0),
    "lr_decay": Param("float", "factor of the step and plateau schedules", above=0, high=1),
    "lr_step_epochs": Param("int", "step schedule: epochs between decays (None: a third of the epochs)", low=1, none_ok=True),
    "lr_patience": Param("int", "plateau schedule: epochs without improvement before the learning rate decays", low=1),
    "grad_clip": Param("float", "clip each optimiser's gradients to this global norm (None: no clipping)", above=0,
                       none_ok=True),
    "precision": Param("str", "32 (float32), bf16 (bfloat16 autocast, CPU or CUDA) or 16-mixed (float16 autocast with a "
                       "gradient scaler, CUDA only)", choices=("32", "bf16", "16-mixed")),
    "validation_fraction": Param("float", "share of samples held out for validation (0 disables)", low=0, high=1),
    "early_stopping": Param("bool", "stop when the validation loss stops improving, keep the best weights"),
    "patience": Param("int", "epochs without improvement before early stopping", low=1),
    "scaling": Param("str", "map data to the model's range and back: auto (uint8 as pixels, others only if needed), minmax, "
                     "center (subtract the per-feature mean of the training data, after uint8 pixels go to [0, 1]), none",
                     choices=("auto", "minmax", "center", "none")),
    "device": Param("str", "where to train", choices=("auto", "cpu", "cuda", "mps")),
    "verbose": Param("int", "0 silent, 1 progress", low=0, bool_ok=True),
    "random_state": Param("seed", "seed for initialisation, data order and noise (None: fresh)"),
    "tensorboard": Param("bool", "write TensorBoard event files under RUN_DIR/tensorboard (needs the tensorboard package)"),
    "checkpoint_steps": Param("int", "with a run directory, also checkpoint every N steps inside epochs (None: epoch ends only)",
                              low=1, none_ok=True),
    "nonfinite": Param("str", "a NaN/Inf loss or gradient: stop the run (the last good checkpoint stays) or skip the batch",
                       choices=("stop", "skip")),
}

#: The options of the training engine itself (spec §8): every estimator trained by the loop has them, with these defaults.
ENGINE_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam", "momentum": 0.0, "weight_decay_on": "all", "lr_schedule": "constant", "warmup_steps": 0,
    "lr_decay": 0.1, "lr_step_epochs": None, "lr_patience": 5, "grad_clip": None, "precision": "32", "tensorboard": False,
}
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 50, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0, "validation_fraction": 0.1, "early_stopping": False,
    "patience": 10, "scaling": "auto", "device": "auto", "verbose": 0, "random_state": None, "checkpoint_steps": None,
    "nonfinite": "stop", **ENGINE_DEFAULTS,
}
TRAINING_PARAMS = {name: dataclasses.replace(p, default=TRAINING_DEFAULTS[name]) for name, p in TRAINING_PARAMS.items()}


def training_params(*, only: tuple[str, ...] | None = None, **defaults: Any) -> dict[str, Param]:
    """The training parameters an estimator declares (all of them, or ``only`` those), with its own ``defaults`` where
    they differ from :data:`TRAINING_DEFAULTS` (a GAN's batch of 64, Mult-VAE's 100 epochs)."""
    unknown = set(defaults) - set(TRAINING_PARAMS)
    if unknown:
        raise ValueError(f"not training parameters: {sorted(unknown)}")
    names = TRAINING_PARAMS if only is None else only
    return {n: dataclasses.replace(TRAINING_PARAMS[n], default=defaults[n]) if n in defaults else TRAINING_PARAMS[n]
            for n in names}
