"""The GPU check (issue 12): one command that, on a CUDA machine, trains every family in every precision.

For each of AE (conv), VAE (mlp), GAN (DCGAN) and Mult-VAE, and each precision "32", "bf16",
"16-mixed": train 4 epochs on the GPU (mnist-5k's 4000 digits at batch 100, 160 steps; Mult-VAE on
4000 synthetic users at batch 100), check every recorded loss is finite, then stop-and-resume: a run
of 2 epochs resumed to 4 must end with the uninterrupted run's weights (allclose: GPU kernels need
not be bit-reproducible). Prints samples/s per
family and precision. On a machine without CUDA it says so and exits 0.

    python benchmarks/device_check.py            # < 5 minutes on one GPU
    python benchmarks/device_check.py --cpu      # the same checks on the CPU, for "32" and "bf16" (a dry run)
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

import torch

import genlab

PRECISIONS = ("32", "bf16", "16-mixed")
COMMON = dict(epochs=4, batch_size=100, device="cuda", random_state=0)


def families():
    X, _ = genlab.datasets.load("mnist-5k", split="train")
    ratings = genlab.datasets.make_interactions(4000, 1000, random_state=0).matrix
    return {
        "ae-conv": (lambda p: genlab.Autoencoder(16, arch="conv", validation_fraction=0, precision=p, **COMMON), X),
        "vae-mlp": (lambda p: genlab.VAE(16, hidden=(512, 512), binarize="dynamic", validation_fraction=0, precision=p, **COMMON),
                    X),
        "gan-dcgan": (lambda p: genlab.GAN(arch="conv", precision=p, **COMMON), X),
        # a fixed β schedule: by default it is stretched over the planned epochs, which a 2-epoch run plans differently
        "multvae": (lambda p: genlab.MultVAE(validation_users=0, anneal_steps=100, precision=p, **COMMON), ratings),
    }


def check(name: str, make, data, precision: str, root: Path) -> tuple[float, str]:
    """(samples/s of the uninterrupted run, problem or "")."""
    sync()
    start = time.perf_counter()
    straight = make(precision).fit(data, run_dir=root / f"{name}-{precision}")
    sync()
    seconds = time.perf_counter() - start
    make(precision).set_params(epochs=2).fit(data, run_dir=root / f"{name}-{precision}-stopped")  # stopped after epoch 2 ...
    resumed = make(precision).fit(data, run_dir=root / f"{name}-{precision}-stopped", resume=True)  # ... and resumed to 4
    bad = [f"epoch {r['epoch']} {k}" for r in straight.history_ for k, v in r.items()
           if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        return 0.0, "non-finite " + ", ".join(bad[:3])
    a, b = straight.module_.state_dict(), resumed.module_.state_dict()
    off = [k for k in a if a[k].is_floating_point() and not torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4)]
    if off:
        return 0.0, "resume differs in " + ", ".join(off[:3])
    return data.shape[0] * COMMON["epochs"] / seconds, ""


def sync() -> None:
    if COMMON["device"] == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    precisions = PRECISIONS
    if "--cpu" in sys.argv:
        COMMON["device"], precisions = "cpu", ("32", "bf16")
        print(f"device_check on the CPU (torch {torch.__version__}), precisions {', '.join(precisions)}")
    elif not torch.cuda.is_available():
        print("device_check: no CUDA device here; nothing to check (exit 0).")
        return 0
    else:
        print(f"device_check on {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, data) in families().items():
            cells = []
            for precision in precisions:
                rate, problem = check(name, make, data, precision, Path(tmp))
                failures += bool(problem)
                cells.append(f"{precision}: {'FAIL ' + problem if problem else f'{rate:,.0f} samples/s'}")
            print(f"{name:10s}  " + "   ".join(cells), flush=True)
    print("device_check: all families and precisions passed" if not failures else f"device_check: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
