"""Environment errors are named (issue 16 item 5): a full disk, a read-only file system and Ctrl-C each
end with one line that says what was kept and how to go on (exit 3 and 130), and the run resumes.

The disk is a real tmpfs of 400 KiB where this process may mount one (root, as on the project's
machines and CI); elsewhere the same test fakes ENOSPC at the checkpoint write and says so."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import genlab.training.checkpoint as checkpoint_module
from conftest import run
from genlab.cli.errors import EXIT_ENVIRONMENT
from genlab.training.checkpoint import list_checkpoints

TRAIN = ("train", "ae", "--data", "digits", "--hidden", "64", "--latent-dim", "4", "--batch-size", "32", "--seed", "0",
         "--quiet", "--checkpoint-steps", "5")


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


def _remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    """A real 400 KiB file system (None where it cannot be mounted)."""
    mount = Path("/tmp") / f"genlab-fs-{uuid.uuid4().hex[:8]}"
    if not _mount(mount, "size=400k"):
        mount.rmdir()
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        mount.rmdir()


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_full_disk_names_the_path_and_the_last_good_checkpoint_and_resume_works(small_fs, tmp_path, capsys, monkeypatch):
    if small_fs is not None:  # a real file system that fills up: a 121 KB checkpoint fits three times, not four
        runs = small_fs / "run"
    else:  # no tmpfs here: ENOSPC is faked at the checkpoint write (the fourth), which is what a full disk raises there
        runs = tmp_path / "run"
        real, calls = checkpoint_module.atomic_write_bytes, []

        def full_after_three(path, data):
            calls.append(path)
            if len(calls) > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real(path, data)

        monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", full_after_three)
    code, _, err = run(capsys, *TRAIN, "--epochs", "3", "--out", runs)
    line = _one_line(err)
    assert code == EXIT_ENVIRONMENT, err
    assert "No space left on device" in line and f"({runs / 'checkpoints'}/step-" in line, line  # the file it was writing
    kept = list_checkpoints(runs / "checkpoints")
    assert kept and f"the last good checkpoint is {runs / 'checkpoints' / kept[-1]}" in line, line
    assert f"genlab train --resume {runs}" in line
    if small_fs is not None:
        _remount(small_fs, "size=20m")
    else:
        monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", real)
    code, _, err = run(capsys, "train", "--resume", runs, "--epochs", "3", "--quiet")
    assert code == 0, err
    assert [json.loads(x)["epoch"] for x in (runs / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert (runs / "model.safetensors").is_file()


def test_a_read_only_run_directory_changes_nothing_and_says_so(tmp_path, capsys):
    mount = Path("/tmp") / f"genlab-ro-{uuid.uuid4().hex[:8]}"
    if not _mount(mount, "size=20m"):  # without a mountable file system, a directory the test cannot make read-only for root
        mount.rmdir()
        pytest.fail("this test needs to mount a tmpfs (root); the project's machines and CI can")
    try:
        runs = mount / "run"
        code, _, err = run(capsys, *TRAIN, "--epochs", "1", "--out", runs)
        assert code == 0, err
        before = {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()}
        _remount(mount, "ro")
        for argv in (("train", "--resume", runs, "--epochs", "2", "--quiet"), ("evaluate", runs)):
            code, _, err = run(capsys, *argv)
            line = _one_line(err)
            assert code == EXIT_ENVIRONMENT and "Read-only file system" in line and str(runs) in line, line
        assert {p: p.read_bytes() for p in runs.rglob("*") if p.is_file()} == before
        code, _, err = run(capsys, "sample", runs, "-n", "4", "--out", tmp_path / "s.npy")  # reading still works
        assert code == 0, err
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        mount.rmdir()


def test_ctrl_c_says_how_to_resume(tmp_path):
    runs = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "genlab", *TRAIN, "--epochs", "500", "--out", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list_checkpoints(runs / "checkpoints") if (runs / "checkpoints").is_dir() else True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = _one_line(err)
    assert "interrupted" in line and "the last good checkpoint is" in line and f"genlab train --resume {runs}" in line, line
    assert list_checkpoints(runs / "checkpoints")
