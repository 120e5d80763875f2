"""``genlab train --nproc N``: the same command, run by N processes that torchrun starts.

This is torchrun itself (``torch.distributed.run``: its argument parser, its standalone rendezvous on a
free local port, its elastic agent), called in-process so that genlab can report the way it always does:
the workers print their own progress and their one-line errors, torchrun's own log lines are kept
quiet, and the command's exit status is rank 0's (2 for bad input, 1 for a failure, 130 interrupted).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from .errors import InvalidInputError

QUIET_LOGGERS = ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher")
#: Where the workers leave their one-line user errors for the launcher to print once (torchrun may stop
#: rank 0 before it prints, when another rank met the same bad input first).
ERROR_DIR_ENV = "GENLAB_ERROR_DIR"


def report_user_error(line: str, rank: int) -> bool:
    """Under ``--nproc``, leave ``line`` for the launcher (True); otherwise the caller prints it."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not folder:
        return False
    with open(os.path.join(folder, f"rank{rank}"), "w", encoding="utf-8") as f:
        f.write(line)
    return True


def strip_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = i + 1 < len(argv)
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise InvalidInputError(f"--nproc must be a positive number of processes; got {nproc}.")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise InvalidInputError("--nproc starts torchrun itself; this command already runs under torchrun, so leave --nproc out.")


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``genlab *argv`` in ``nproc`` processes on this machine under torchrun; returns the exit status."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # the cores are shared out between the processes (torchrun alone would give each one thread)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    args = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "genlab", *argv])
    with tempfile.TemporaryDirectory(prefix="genlab-errors-") as errors:
        os.environ[ERROR_DIR_ENV] = errors
        try:
            torchrun.run(args)
        except ChildFailedError as exc:
            return _report(exc.failures, Path(errors), nproc)
        except (SignalException, KeyboardInterrupt):
            return 130
        finally:
            os.environ.pop(ERROR_DIR_ENV, None)
    return 0


def _report(failures: dict, errors: Path, nproc: int) -> int:
    """Print the workers' one-line user error once (rank 0's, else the lowest rank's); the exit status."""
    lines = sorted(errors.iterdir(), key=lambda f: int(f.name.removeprefix("rank")))
    if lines:
        print(lines[0].read_text(encoding="utf-8"), file=sys.stderr)
        return 2
    exited = sorted((rank, f.exitcode) for rank, f in failures.items() if f.exitcode > 0)
    if exited:
        return exited[0][1]
    rank, failure = min(failures.items())
    if failure.signal_name() in ("SIGINT", "SIGTERM"):
        return 130
    print(f"genlab: process {rank} of {nproc} was killed ({failure.signal_name()}); a run keeps its last checkpoint: "
          "continue it with `genlab train --resume RUN_DIR --nproc N`.", file=sys.stderr)
    return 1
