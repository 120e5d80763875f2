"""Several processes (issue 13 item 1): real 2-process torchrun runs on CPU with gloo — the same model as
one process with the same global batch, every family, rank 0 alone writing, an exact resume after a
SIGKILL of the whole job, and bad input as one line (exit 2) with no run directory left behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genlab.training import distributed
from genlab.training.checkpoint import list_checkpoints

HERE = Path(__file__).parent
FAMILY_SCRIPT = HERE / "distributed" / "families.py"
ALL = ("ae", "ae_mapped", "ae_conv", "vae", "vae_aggressive", "cvae", "gan", "dcgan", "multvae")


def _torchrun(*args, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _genlab(*args, cwd: Path, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genlab", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def two_process_models(tmp_path_factory) -> Path:
    """Every family trained for 2 epochs by two processes through the Python API (one torchrun job)."""
    out = tmp_path_factory.mktemp("ddp_families")
    done = _torchrun(FAMILY_SCRIPT, out, ",".join(ALL), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_processes_train_the_same_autoencoder_as_one_with_the_same_global_batch(two_process_models):
    sys.path.insert(0, str(FAMILY_SCRIPT.parent))
    try:
        import families
    finally:
        sys.path.pop(0)
    one = families.MODELS["ae"]()  # this process: one rank, batch_size 64 = the two ranks' 32 + 32
    two = load_file(two_process_models / "ae.safetensors")
    state = one.module_.state_dict()
    assert state.keys() == two.keys()
    for k in state:
        assert torch.allclose(state[k], two[k], rtol=1e-4, atol=1e-5), k
    history = json.loads((two_process_models / "ae.json").read_text())["history"]
    assert [r["loss"] for r in history] == pytest.approx([r["loss"] for r in one.history_], rel=1e-4)
    assert [r["val_loss"] for r in history] == pytest.approx([r["val_loss"] for r in one.history_], rel=1e-4)
    mapped = load_file(two_process_models / "ae_mapped.safetensors")  # each rank reading its rows from a mapped file
    assert all(torch.equal(mapped[k], two[k]) for k in two)


@pytest.mark.parametrize("name", ALL)
def test_every_family_trains_under_two_processes_with_identical_weights_on_each(two_process_models, name):
    info = json.loads((two_process_models / f"{name}.json").read_text())
    rank0, rank1 = info["checksums"]
    assert rank0 == rank1  # the ranks' weights (and buffers) are the same numbers
    assert len(info["history"]) == 2 and all(np.isfinite(r["loss"]) for r in info["history"])
    weights = load_file(two_process_models / f"{name}.safetensors")
    assert all(bool(torch.isfinite(v).all()) for v in weights.values() if v.is_floating_point())


def test_the_command_with_nproc_writes_each_file_once(tmp_path):
    done = _genlab("train", "vae", "--data", "digits", "--epochs", "2", "--latent-dim", "4", "--nproc", "2", "--out", "run",
                   "--seed", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote run") == 1  # rank 0 reports; rank 1 says nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder, no second run
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert {"model.json", "model.safetensors", "config.toml", "samples.png"} <= {p.name for p in (tmp_path / "run").iterdir()}
    ckpt = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    tensors = load_file(tmp_path / "run" / "checkpoints" / ckpt)
    assert "extra/rank1/rng_noise" in tensors  # rank 1's own noise continues on resume
    assert not torch.equal(tensors["extra/rank1/rng_noise"], tensors["rng/noise"])


def test_a_killed_two_process_run_resumes_to_the_same_weights(tmp_path):
    args = ["train", "vae", "--data", "digits", "--epochs", "3", "--latent-dim", "4", "--batch-size", "32", "--seed", "5",
            "--checkpoint-steps", "7", "--nproc", "2", "--quiet"]
    straight = _genlab(*args, "--out", "straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]

    job = subprocess.Popen([sys.executable, "-m", "genlab", *args, "--out", "killed"], cwd=tmp_path, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / "killed" / "checkpoints" / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (manifest.exists() and len(list_checkpoints(manifest.parent)) >= 2):
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)  # the launcher, torchrun's agent and both workers, mid-training
    job.wait(timeout=30)
    assert not (tmp_path / "killed" / "model.json").exists(), "the job finished before it was killed"
    newest = list_checkpoints(manifest.parent)[-1]
    assert int(newest[5:14]) < 3 * 26  # digits: 1617 training rows, 26 global batches of 32 per epoch

    resumed = _genlab("train", "--resume", "killed", "--nproc", "2", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in ("straight", "killed"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    history = [json.loads(x)["loss"] for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert history == [json.loads(x)["loss"] for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]

    other = _genlab("train", "--resume", "killed", "--epochs", "4", cwd=tmp_path)  # one process now
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert "trained by 2 processes and this run has 1" in other.stderr


@pytest.mark.parametrize("extra, message", [
    (["--nproc", "0"], "--nproc must be a positive number of processes"),
    (["--nproc", "2", "--batch-size", "127"], "batch_size=127 is the global batch, split evenly over 2 processes"),
    (["--nproc", "2", "--latent-dim", "0"], "latent_dim"),
])
def test_bad_input_under_several_processes_is_one_line_and_leaves_no_run(tmp_path, extra, message):
    done = _genlab("train", "ae", "--data", "digits", "--epochs", "1", *extra, "--out", "run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


def test_nproc_under_torchrun_and_a_world_without_a_rendezvous_are_one_line(tmp_path):
    nested = _genlab("train", "ae", "--data", "digits", "--nproc", "2", "--out", "run", cwd=tmp_path,
                     env={"WORLD_SIZE": "2", "RANK": "0"})
    assert nested.returncode == 2 and "already runs under torchrun" in nested.stderr and nested.stderr.count("\n") == 1
    lonely = _genlab("train", "ae", "--data", "digits", "--out", "run", cwd=tmp_path,
                     env={"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "", "MASTER_PORT": ""})
    assert lonely.returncode == 2 and "MASTER_ADDR, MASTER_PORT is not set" in lonely.stderr, lonely.stderr
    assert lonely.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_a_rank_takes_its_share_of_every_global_batch():
    order = torch.tensor([4, 0, 3, 1, 2])
    ranks = [distributed.Group(rank, 2).shard(order) for rank in range(2)]
    assert ranks[0].tolist() == [4, 3, 2] and ranks[1].tolist() == [0, 1, 4]  # padded by repeating the start
    for b in (2, 4):  # global batch b: local batches of b/2 make up exactly the global batch
        padded = torch.cat([order, order[:1]])
        for i in range(0, 6, b):
            local = torch.cat([r[i // 2:(i + b) // 2] for r in ranks])
            assert sorted(local.tolist()) == sorted(padded[i:i + b].tolist())
    assert [distributed.Group(r, 3).chunk(10) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    single = distributed.SINGLE
    assert single.shard(order) is order and single.broadcast_json({"a": 1}) == {"a": 1} and single.all_true(False) is False


def test_recommend_fit_with_two_processes_writes_one_run_and_evaluates_it(tmp_path):
    from genlab.datasets import make_interactions

    data = make_interactions(400, 120, 4, random_state=0)
    users, items = data.matrix.nonzero()
    (tmp_path / "ratings.csv").write_text("user,item,rating\n" + "".join(f"{u},{i},5\n" for u, i in zip(users, items)))
    done = _genlab("recommend", "fit", "--ratings", "ratings.csv", "--out", "rec", "--epochs", "3", "--hidden", "32",
                   "--latent-dim", "8", "--batch-size", "50", "--seed", "0", "--quiet", "--nproc", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote rec  (") == 1 and "Recall@20" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.csv", "rec"]
    assert [json.loads(x)["epoch"] for x in (tmp_path / "rec" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert {"model", "interactions.npz", "report.html", "metrics.json"} <= {p.name for p in (tmp_path / "rec").iterdir()}
    ease = _genlab("recommend", "fit", "--ratings", "ratings.csv", "--out", "ease", "--model", "ease", "--nproc", "2",
                   cwd=tmp_path)
    assert ease.returncode == 2 and "EASE is one closed-form solve" in ease.stderr and ease.stderr.count("\n") == 1
    assert not (tmp_path / "ease").exists()
