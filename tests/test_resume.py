"""Crash-safe exact resume (issue 7 items 3–4): checkpoints inside epochs and at their ends, for
every family, resume to byte-identical weights and identical optimiser and RNG state — also after a
real SIGKILL during training and during a checkpoint save."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genlab import GAN, VAE, Autoencoder, InvalidInputError
from genlab.training.checkpoint import MANIFEST, list_checkpoints

FAMILIES = {
    "ae": lambda **kw: Autoencoder(4, hidden=(32,), batch_size=64, random_state=3, **kw),
    "vae": lambda **kw: VAE(4, hidden=(32,), batch_size=64, random_state=3, **kw),
    "gan": lambda **kw: GAN(hidden=(32,), batch_size=64, random_state=3, **kw),
}


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    """Model, both optimisers' state and the RNGs, from the run's last checkpoint."""
    return load_file(run_dir / "checkpoints" / list_checkpoints(run_dir / "checkpoints")[-1])


def _assert_same_run(a: Path, b: Path, est_a, est_b, tmp_path: Path) -> None:
    sa, sb = _final_state(a), _final_state(b)
    assert sa.keys() == sb.keys() and any(k.startswith("optim/") for k in sa)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    est_a.save(tmp_path / "model_a")
    est_b.save(tmp_path / "model_b")
    assert (tmp_path / "model_a" / "model.safetensors").read_bytes() == (tmp_path / "model_b" / "model.safetensors").read_bytes()
    assert [r["loss"] for r in est_a.history_] == [r["loss"] for r in est_b.history_]


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_inside_an_epoch_and_at_its_end_is_exact(family, digits, tmp_path):
    X = digits[0][:300]  # 270 training rows: 5 steps per epoch (4 × 64 + 14)
    straight = FAMILIES[family](epochs=3).fit(X, run_dir=tmp_path / "straight")

    # inside an epoch: a run that checkpoints every 2 steps, "killed" right after its step-14
    # checkpoint (epoch 3, 4 of 5 steps done) — the files are exactly what a kill leaves
    FAMILIES[family](epochs=3, checkpoint_steps=2).fit(X, run_dir=tmp_path / "inside")
    ckpts = tmp_path / "inside" / "checkpoints"
    assert list_checkpoints(ckpts) == [f"step-{s:09d}.safetensors" for s in (12, 14, 15)]
    (ckpts / "step-000000015.safetensors").unlink()
    (ckpts / MANIFEST).write_text(json.dumps({"complete": ["step-000000012.safetensors", "step-000000014.safetensors"]}))
    inside = FAMILIES[family](epochs=3, checkpoint_steps=2).fit(X, run_dir=tmp_path / "inside", resume=True)
    _assert_same_run(tmp_path / "straight", tmp_path / "inside", straight, inside, tmp_path)

    # at an epoch's end: 2 epochs, then resume to 3
    FAMILIES[family](epochs=2).fit(X, run_dir=tmp_path / "boundary")
    boundary = FAMILIES[family](epochs=3).fit(X, run_dir=tmp_path / "boundary", resume=True)
    _assert_same_run(tmp_path / "straight", tmp_path / "boundary", straight, boundary, tmp_path)


def test_resuming_to_fewer_epochs_than_were_trained_is_refused(digits, tmp_path):
    X = digits[0][:300]
    FAMILIES["ae"](epochs=3, checkpoint_steps=2).fit(X, run_dir=tmp_path)
    ckpts = tmp_path / "checkpoints"  # make the newest checkpoint one inside epoch 3
    (ckpts / "step-000000015.safetensors").unlink()
    (ckpts / MANIFEST).write_text(json.dumps({"complete": ["step-000000012.safetensors", "step-000000014.safetensors"]}))
    with pytest.raises(InvalidInputError, match="already trained 2 epochs and part of the next; .* at least 3"):
        FAMILIES["ae"](epochs=2).fit(X, run_dir=tmp_path, resume=True)


def _genlab(*args: str) -> list[str]:
    return [sys.executable, "-m", "genlab", *args]


BASE = ("train", "ae", "--data", "digits", "--hidden", "64", "--latent-dim", "4", "--batch-size", "32", "--seed", "0", "--quiet")


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "checkpoints" / MANIFEST).exists():
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


def _straight(tmp_path: Path, epochs: int) -> Path:
    out = tmp_path / "straight"
    done = subprocess.run(_genlab(*BASE, "--epochs", str(epochs), "--out", str(out)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out / "model.safetensors"


def test_sigkill_during_training_then_resume_gives_the_same_model(tmp_path):
    reference = _straight(tmp_path, epochs=30)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_genlab(*BASE, "--epochs", "30", "--checkpoint-steps", "7", "--out", str(run)), stderr=subprocess.PIPE)
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGKILL)  # wherever it is: in a step, inside an epoch, or in a save
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert list_checkpoints(run / "checkpoints")  # the newest complete checkpoint survived
    done = subprocess.run(_genlab("train", "--resume", str(run), "--quiet"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (run / "model.safetensors").read_bytes() == reference.read_bytes()


KILL_DURING_SAVE = """
import os, signal, sys
import genlab.training.checkpoint as ckpt
from genlab.cli import main
real, count = ckpt.atomic_write_bytes, [0]
def dying_write(path, data):
    count[0] += 1
    if count[0] == 3:  # the third checkpoint: half of it reaches a temporary file, then the process is killed
        with open(os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".dying.tmp"), "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
ckpt.atomic_write_bytes = dying_write
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_save_keeps_the_previous_one(tmp_path):
    reference = _straight(tmp_path, epochs=3)
    run = tmp_path / "run"  # 1617 training rows / 32: 51 steps per epoch; checkpoints at steps 20, 40, then 51 (killed)
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, *BASE, "--epochs", "3", "--checkpoint-steps", "20",
                           "--out", str(run)], capture_output=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpts = run / "checkpoints"
    assert list_checkpoints(ckpts) == ["step-000000020.safetensors", "step-000000040.safetensors"]
    assert list(ckpts.glob("*.dying.tmp"))  # the half-written file is there, and ignored
    state = load_file(ckpts / "step-000000040.safetensors")  # the previous checkpoint is intact
    assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())
    done = subprocess.run(_genlab("train", "--resume", str(run), "--quiet"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (run / "model.safetensors").read_bytes() == reference.read_bytes()
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
