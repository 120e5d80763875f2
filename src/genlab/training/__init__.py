"""The training engine: one loop for every model family, which owns the optimisation step."""

from .data import ArrayRows, SparseRows, TensorData, is_file_backed
from .denormals import flush_denormals
from .loop import DEVICES, NonFiniteLossError, TrainConfig, TrainResult, make_stepper, resolve_device, train
from .records import write_metrics
from .stepper import OPTIMIZERS, PRECISIONS, Stepper, build_optimizers

__all__ = [
    "ArrayRows", "DEVICES", "NonFiniteLossError", "OPTIMIZERS", "PRECISIONS", "SparseRows", "Stepper", "TensorData",
    "TrainConfig", "TrainResult", "build_optimizers", "flush_denormals", "is_file_backed", "make_stepper", "resolve_device", "train",
    "write_metrics"]
