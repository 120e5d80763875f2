"""Progress display: a tqdm bar on a terminal, plain log lines elsewhere, nothing when quiet."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


def format_terms(record: dict) -> str:
    hidden = ("epoch", "step", "time", "samples_per_s")
    return "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in hidden and not k.startswith("kl_dim_"))


class Progress:
    """Shows epoch, step, throughput and the last epoch's losses; reads no tensors itself."""

    def __init__(self, epochs: int, steps_per_epoch: int, *, verbose: int, stream=None):
        self.epochs, self.steps_per_epoch, self.verbose = epochs, steps_per_epoch, verbose
        self.stream = stream or sys.stderr
        self.bar = None
        if verbose and self.stream.isatty():
            self.bar = tqdm(total=epochs * steps_per_epoch, file=self.stream, unit="step", dynamic_ncols=True)

    def start(self, global_step: int) -> None:
        if self.bar is not None:
            self.bar.update(global_step - self.bar.n)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def end_epoch(self, record: dict) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {record['epoch']}/{self.epochs}")
            self.bar.set_postfix_str(format_terms(record), refresh=True)
        elif self.verbose:
            print(
                f"epoch {record['epoch']}/{self.epochs}  step {record['step']}  "
                f"{record['samples_per_s']:.0f} samples/s  {format_terms(record)}",
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
