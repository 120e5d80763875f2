"""One writer per run directory (spec §8, issue 16).

``RUN_DIR/.genlab.lock`` holds the writer's host, PID, command and start time, and the writer holds
an exclusive ``flock`` on it for as long as it runs. The kernel releases that lock when the process
dies, however it dies, so a lock left behind by a killed writer is *stale*: the next writer takes it
over and warns, naming the process that left it. A second live writer gets one line naming the
holder (an :class:`~genlab.errors.InvalidInputError`, exit 2 from the CLI) and changes nothing.
Readers (sample, encode) take no lock; report and compare write report.html, so they take it.

``flock`` is local to one machine: two hosts sharing a run directory over NFS are not kept apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from .errors import InvalidInputError

LOCK_NAME = ".genlab.lock"


def _holder(text: str) -> dict:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except ValueError:
        return {}


def _describe(info: dict) -> str:
    started = info.get("started")
    since = f", since {time.strftime('%H:%M:%S', time.localtime(started))}" if isinstance(started, (int, float)) else ""
    return f"`{info.get('command', 'genlab')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}{since})"


@contextlib.contextmanager
def run_lock(run_dir: str | Path, command: str) -> Iterator[None]:
    """Hold the run's write lock for the duration of the block; see the module docstring."""
    path = Path(run_dir) / LOCK_NAME
    if not Path(run_dir).is_dir():
        raise InvalidInputError(f"{run_dir} is not a run directory (no such folder).")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            raise InvalidInputError(f"{run_dir} is being written by {_describe(_holder(text))}; wait for it to finish "
                                    "(one writer per run).") from None
        try:  # the file we locked may have been removed by a writer that just finished: lock the current one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
    if previous:
        warnings.warn(f"{path}: taking over the lock left by {_describe(previous)}, which is no longer running.",
                      RuntimeWarning, stacklevel=3)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "command": command, "started": time.time(),
            "python": sys.executable}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    os.fsync(fd)
    try:
        yield
    finally:
        os.ftruncate(fd, 0)  # an empty lock file is a free one
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # our file, not a later writer's (the folder may have been swapped)
                path.unlink()
        os.close(fd)
