"""Where the epoch records go: ``metrics.jsonl`` in the run directory, and TensorBoard event files
under ``RUN_DIR/tensorboard/`` when asked (torch.utils.tensorboard; the ``tensorboard`` package is
the optional extra ``genlab[tensorboard]``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .._fileio import atomic_write_text
from ..errors import InvalidInputError

NOT_SCALARS = ("epoch",)


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """(Re)write ``run_dir/metrics.jsonl`` atomically: one JSON object per record."""
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def append_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class TensorBoard:
    """Every numeric record entry as a scalar per epoch, and the family's preview images as one grid
    per epoch (``samples``)."""

    def __init__(self, run_dir: Path, first_epoch: int = 1):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InvalidInputError("tensorboard=True needs the tensorboard package: pip install 'genlab[tensorboard]' "
                                    "(make installs it).") from None
        # purge_step: on resume, events of epochs at or after the one we continue with are hidden
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=first_epoch if first_epoch > 1 else None)

    def write(self, record: dict, images: torch.Tensor | None) -> None:
        epoch = record["epoch"]
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(key, value, epoch)
        if images is not None:
            self.writer.add_images("samples", _to_unit_range(images.detach().float().cpu()), epoch, dataformats="NCHW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Model-unit images to [0, 1] for display, by the grid's own minimum and maximum; small images
    (8×8 digits) are enlarged by whole pixels to about 32 pixels so that they can be seen."""
    low, high = images.min(), images.max()
    images = (images - low) / (high - low).clamp(min=1e-8)
    factor = max(1, 32 // max(images.shape[-2:]))
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)  # nearest neighbour
