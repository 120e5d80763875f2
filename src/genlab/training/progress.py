"""Progress display: a tqdm bar on a terminal, plain log lines elsewhere, nothing when quiet."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

HIDDEN = ("epoch", "step", "time", "samples_per_s")


def format_terms(record: dict, *, brief: bool = False, groups: tuple[str, ...] = ()) -> str:
    """The record's loss terms as text, without the per-coordinate series of ``groups`` (key prefixes); ``brief``: the
    first three training terms and the validation loss."""
    terms = [k for k in record if k not in HIDDEN and not (groups and k.startswith(groups))]
    if brief:
        terms = [k for k in terms if not k.startswith("val_")][:3] + [k for k in terms if k == "val_loss"]
    return "  ".join(f"{k} {record[k]:.4g}" for k in terms)


class Progress:
    """Shows epoch, step, throughput and the last epoch's losses; reads no tensors itself."""

    def __init__(self, epochs: int, samples_per_epoch: int, *, verbose: int, stream=None, groups: tuple[str, ...] = ()):
        self.epochs, self.samples_per_epoch, self.verbose, self.groups = epochs, samples_per_epoch, verbose, groups
        self.stream = stream or sys.stderr
        self.bar = None
        if verbose and self.stream.isatty():
            self.bar = tqdm(total=epochs * samples_per_epoch, file=self.stream, unit="sample", unit_scale=True, dynamic_ncols=True)

    def start(self, epochs_done: int) -> None:
        if self.bar is not None:
            self.bar.update(epochs_done * self.samples_per_epoch - self.bar.n)

    def step(self, n_samples: int) -> None:
        if self.bar is not None:
            self.bar.update(n_samples)

    def end_epoch(self, record: dict) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {record['epoch']}/{self.epochs}")
            self.bar.set_postfix_str(format_terms(record, brief=True, groups=self.groups), refresh=True)
        elif self.verbose:
            print(
                f"epoch {record['epoch']}/{self.epochs}  step {record['step']}  "
                f"{record['samples_per_s']:.0f} samples/s  {format_terms(record, groups=self.groups)}",
                file=self.stream, flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
