"""What a VAE-GAN epoch costs against a VAE epoch with the same encoder and decoder (conv, latent 16, batch 64,
mnist-5k's 4000 training digits, one torch thread), timed as benchmarks/RESULTS.md asks of a speed claim: each fit
in its own fresh process, the two interleaved (VAE, VAE-GAN, VAE, ...), the ratio of the medians.

    python benchmarks/vaegan_step_cost.py --repeats 3 --epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = """
import sys, time, torch, genlab
torch.set_num_threads(1)
X, _ = genlab.datasets.load("mnist-5k", split="train")
cls = {"vae": genlab.VAE, "vaegan": genlab.VAEGAN}[sys.argv[1]]
est = cls(16, arch="conv", batch_size=64, validation_fraction=0.0, epochs=int(sys.argv[2]), random_state=0)
start = time.process_time()
est.fit(X)
print(time.process_time() - start)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    seconds: dict[str, list[float]] = {"vae": [], "vaegan": []}
    for _ in range(args.repeats):
        for model in seconds:  # a fresh process per fit: no thread pool, FTZ state or cache carried over
            out = subprocess.run([sys.executable, "-c", CHILD, model, str(args.epochs)], capture_output=True, text=True, check=True)
            seconds[model].append(float(out.stdout.strip().splitlines()[-1]))
            print(model, f"{seconds[model][-1]:.2f} CPU s", flush=True)
    ratio = statistics.median(seconds["vaegan"]) / statistics.median(seconds["vae"])
    print(f"VAE-GAN / VAE CPU time per fit: {ratio:.2f}x (medians of {args.repeats}, fresh processes, interleaved)")


if __name__ == "__main__":
    main()
