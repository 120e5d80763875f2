"""One writer per run directory (issue 16 item 4), with real concurrent processes: a second writer gets
one line naming the holder and changes nothing, readers need no lock, a lock left by a dead process
is taken over with a warning."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_user_error, run
from genlab._runlock import LOCK_NAME, run_lock
from genlab.errors import InvalidInputError

BASE = ("--hidden", "64", "--latent-dim", "4", "--batch-size", "32", "--seed", "0", "--quiet")


def _genlab(*args) -> list[str]:
    return [sys.executable, "-m", "genlab", *map(str, args)]


def _wait_for_lock(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return json.loads(path.read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the writer never took its lock")


def test_a_second_writer_is_refused_while_readers_go_on(capsys, tmp_path):
    runs = tmp_path / "run"
    subprocess.run(_genlab("train", "ae", "--data", "digits", "--epochs", "1", *BASE, "--out", runs), check=True)
    writer = subprocess.Popen(_genlab("train", "--resume", runs, "--epochs", "80", "--quiet"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        holder = _wait_for_lock(runs / LOCK_NAME, writer)
        assert holder["pid"] == writer.pid and holder["command"] == "genlab train --resume"
        second = subprocess.run(_genlab("train", "--resume", runs, "--epochs", "80", "--quiet"), capture_output=True, text=True)
        assert_user_error(second.returncode, second.stderr, "being written by", f"pid {writer.pid}", "genlab train --resume")
        code, _, err = run(capsys, "evaluate", runs)  # evaluate writes metrics.json: a writer too
        assert_user_error(code, err, "being written by", f"pid {writer.pid}")
        code, _, err = run(capsys, "report", runs)  # and the report writes report.html
        assert_user_error(code, err, "being written by", f"pid {writer.pid}")
        assert not (runs / "report.html").exists()
        code, _, err = run(capsys, "compare", runs, "--out", tmp_path / "compare.html")
        assert_user_error(code, err, "being written by")
        assert not (tmp_path / "compare.html").exists()
        code, out, err = run(capsys, "sample", runs, "-n", "4", "--out", tmp_path / "s.npy")  # a reader
        assert code == 0, err
        assert writer.poll() is None, "the first writer must still be running for this test to mean anything"
    finally:
        out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    epochs = [json.loads(line)["epoch"] for line in (runs / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 81))  # every epoch once: the refused writer wrote nothing
    assert not (runs / LOCK_NAME).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    runs = tmp_path / "run"
    subprocess.run(_genlab("train", "ae", "--data", "digits", "--epochs", "1", *BASE, "--out", runs), check=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (runs / LOCK_NAME).write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "command": "genlab train",
                                              "started": time.time() - 60}))
    resumed = subprocess.run(_genlab("train", "--resume", runs, "--epochs", "2", "--quiet"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "taking over the lock" in resumed.stderr and f"pid {dead.pid}" in resumed.stderr
    assert not (runs / LOCK_NAME).exists()
    assert len((runs / "metrics.jsonl").read_text().splitlines()) == 2


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with run_lock(tmp_path, "first"):
        with pytest.raises(InvalidInputError, match="being written by `first`"):
            with run_lock(tmp_path, "second"):
                pass
    with run_lock(tmp_path, "third"):  # released: free again
        assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == "third"
