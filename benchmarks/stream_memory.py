"""Data larger than memory (issue 13, item 2): what one epoch of `genlab train ae` on a uint8 `.npy` costs in
anonymous memory when the file is memory-mapped and read a batch at a time, and whether streaming costs
throughput against the in-memory path on a set that fits.

* **memory** — ``genlab train ae --data big.npy --epochs 1`` on a ``--rows`` × 8192 uint8 file (default
  400,000 rows: 3.3 GB; its float32 copy would be 13 GB). A sampler reads RssAnon of the command's whole
  process tree every 20 ms (pages of the mapped file, which the kernel can drop, are RssFile and do not
  count). Run twice: with glibc's default malloc and with ``MALLOC_MMAP_THRESHOLD_=1048576`` (a fixed
  threshold: large blocks are returned to the system when freed instead of fragmenting the heap).
* **throughput** — the same autoencoder on ``--fit-rows`` × 8192 (default 60,000: 490 MB) through the
  Python API, the array loaded into memory (``np.load``) or mapped (``np.load(mmap_mode="r")``), 2 epochs,
  samples/s of the second epoch from the history. Fresh processes, interleaved (memory, mapped, memory,
  mapped, ...), median of ``--rounds``; reported as mapped / in-memory.

    python benchmarks/stream_memory.py                    # ~10 minutes on 2 cores; needs ~4 GB of disk
    python benchmarks/stream_memory.py --rows 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

D = 8192
NET = ["--hidden", "64", "--latent-dim", "8", "--batch-size", "256"]


def _write(path: Path, rows: int) -> None:
    import numpy as np

    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, D))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 10_000):
        stop = min(rows, start + 10_000)
        out[start:stop] = rng.integers(0, 256, size=(stop - start, D), dtype=np.uint8)
    out.flush()


def _tree_anon(pid: int) -> int:
    """RssAnon (bytes) of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _memory(path: Path, out: Path, env: dict) -> dict:
    start = time.perf_counter()
    job = subprocess.Popen([sys.executable, "-m", "genlab", "train", "ae", "--data", str(path), "--epochs", "1", *NET,
                            "--seed", "0", "--quiet", "--out", str(out)], env={**os.environ, **env},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while job.poll() is None:
        peak = max(peak, _tree_anon(job.pid))
        time.sleep(0.02)
    _, err = job.communicate()
    if job.returncode:
        raise SystemExit(f"genlab train failed: {err}")
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return {"peak_anon_gb": round(peak / 2**30, 3), "wall_s": round(time.perf_counter() - start, 1),
            "epoch_s": round(record["time"], 1), "samples_per_s": round(record["samples_per_s"])}


PROBE = """
import sys, numpy as np, genlab
X = np.load(sys.argv[1], mmap_mode="r") if sys.argv[2] == "mapped" else np.load(sys.argv[1])
est = genlab.Autoencoder(latent_dim=8, hidden=(64,), epochs=2, batch_size=256, random_state=0, device="cpu").fit(X)
print(est.history_[-1]["samples_per_s"])
"""


def _throughput(path: Path, how: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROBE, str(path), how], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--fit-rows", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        big, small = tmp / "big.npy", tmp / "small.npy"
        _write(big, args.rows)
        print(f"file: {args.rows} x {D} uint8 = {big.stat().st_size / 2**30:.2f} GiB (float32: {args.rows * D * 4 / 2**30:.1f} GiB)")
        for label, env in (("default malloc", {}), ("MALLOC_MMAP_THRESHOLD_=1048576", {"MALLOC_MMAP_THRESHOLD_": "1048576"})):
            result = _memory(big, tmp / f"run-{len(env)}", env)
            print(f"memory, {label}: {json.dumps(result)}")
        big.unlink()
        _write(small, args.fit_rows)
        speeds: dict[str, list[float]] = {"memory": [], "mapped": []}
        for _ in range(args.rounds):
            for how in speeds:
                speeds[how].append(_throughput(small, how))
        med = {how: statistics.median(v) for how, v in speeds.items()}
        rounded = {k: [round(x) for x in v] for k, v in speeds.items()}
        print(f"throughput ({args.fit_rows} x {D}, samples/s, epoch 2): " + json.dumps(rounded))
        print(f"mapped / in-memory = {med['mapped'] / med['memory']:.3f} (medians {med['mapped']:.0f} / {med['memory']:.0f})")


if __name__ == "__main__":
    main()
