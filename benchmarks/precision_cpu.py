"""What precision="bf16" costs or gains on this CPU (issue 12), each run in its own fresh process.

Two workloads, float32 against bfloat16 autocast, interleaved (32, bf16, bf16, 32, ...), median of
the per-repeat ratios of wall time: W1 (MLP VAE 784-512-512-16, dynamic binarisation, batch 100,
10 epochs on mnist-5k's 4000 training digits) and a convolutional autoencoder (channels 32-64,
latent 16, batch 100, 5 epochs). Quality: the final training loss of each (a bf16 matmul rounds
its inputs to 8 bits of mantissa).

    python benchmarks/precision_cpu.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "W1 VAE (mlp)": "genlab.VAE(16, hidden=(512, 512), binarize='dynamic', batch_size=100, epochs=10, validation_fraction=0, "
                    "random_state=seed, precision=precision)",
    "conv AE": "genlab.Autoencoder(16, arch='conv', batch_size=100, epochs=5, validation_fraction=0, random_state=seed, "
               "precision=precision)",
}


def worker(workload: str, precision: str, seed: int) -> dict:
    import genlab

    X, _ = genlab.datasets.load("mnist-5k", split="train")
    est = eval(WORKLOADS[workload], {"genlab": genlab, "seed": seed, "precision": precision})  # noqa: S307 - our own table
    start = time.perf_counter()
    est.fit(X)
    return {"wall": time.perf_counter() - start, "loss": est.history_[-1]["loss"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", nargs=3, metavar=("WORKLOAD", "PRECISION", "SEED"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], int(args.worker[2]))))
        return
    rows = []
    for workload in WORKLOADS:
        runs = {"32": [], "bf16": []}
        for r in range(args.repeats):
            for precision in (("32", "bf16") if r % 2 == 0 else ("bf16", "32")):
                cmd = [sys.executable, __file__, "--worker", workload, precision, str(r)]
                runs[precision].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            print(workload, r, {p: round(v[-1]["wall"], 2) for p, v in runs.items()}, flush=True)
        ratio = statistics.median(a["wall"] / b["wall"] for a, b in zip(runs["32"], runs["bf16"]))
        loss = {p: statistics.mean(x["loss"] for x in v) for p, v in runs.items()}
        wall = {p: statistics.median(x["wall"] for x in v) for p, v in runs.items()}
        rows.append(f"| {workload} | {wall['32']:.2f} | {wall['bf16']:.2f} | **{ratio:.2f}×** | {loss['32']:.3f} | {loss['bf16']:.3f} |")
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
    bf16_hw = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()) or "none"
    block = f"""
## precision="bf16" on this CPU (issue 12)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu} (bf16 instructions: {bf16_hw}), {torch.get_num_threads()} torch threads, torch {torch.__version__}  
*Command:* `python benchmarks/precision_cpu.py --repeats {args.repeats}`  
*Work:* each run a fresh process, interleaved; speed-up = float32 wall / bf16 wall (median of per-repeat ratios).

| workload | float32 fit (s) | bf16 fit (s) | bf16 speed-up | final loss float32 | final loss bf16 |
|---|---:|---:|---:|---:|---:|
""" + "\n".join(rows) + "\n"
    print(block)
    with open(__file__.rsplit("/", 1)[0] + "/RESULTS.md", "a") as f:
        f.write(block)


if __name__ == "__main__":
    main()
