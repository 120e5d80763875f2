"""The training engine: one loop for every model family, which owns the optimisation step."""

from .data import SparseRows, TensorData
from .denormals import flush_denormals
from .loop import DEVICES, NonFiniteLossError, TrainConfig, TrainResult, make_stepper, resolve_device, train
from .records import write_metrics
from .stepper import OPTIMIZERS, PRECISIONS, Stepper, build_optimizers

__all__ = [
    "DEVICES", "NonFiniteLossError", "OPTIMIZERS", "PRECISIONS", "SparseRows", "Stepper", "TensorData",
    "TrainConfig", "TrainResult", "build_optimizers", "flush_denormals", "make_stepper", "resolve_device", "train",
    "write_metrics"]
