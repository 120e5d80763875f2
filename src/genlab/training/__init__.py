"""The training engine: one loop for every model family."""

from .loop import DEVICES, NonFiniteLossError, SparseRows, TensorData, TrainConfig, TrainResult, resolve_device, train, write_metrics

__all__ = [
    "DEVICES", "NonFiniteLossError", "SparseRows", "TensorData",
    "TrainConfig", "TrainResult", "resolve_device", "train", "write_metrics"]
