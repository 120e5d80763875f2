"""How the command line reports what went wrong: bad input (exit 2), the machine — a full disk, no
permission, a read-only file system — (exit 3, with what the run kept and how to continue), and
Ctrl-C (exit 130, with how to resume)."""

from __future__ import annotations

import errno
from pathlib import Path

from ..errors import InvalidInputError
from ..runs import last_checkpoint

USER_ERRORS = (InvalidInputError, FileNotFoundError, IsADirectoryError, NotADirectoryError)
#: The machine, not the input: a full disk or quota, no permission, a read-only file system. Exit 3.
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (the disk quota is full)",
                      errno.EROFS: "make it writable or choose another place", errno.EACCES: "fix its permissions or choose another place",
                      errno.EPERM: "fix its permissions or choose another place"}
EXIT_ENVIRONMENT = 3


def _run_of(args) -> Path | None:
    """The run directory a command writes, if any (train --out / --resume, evaluate RUN)."""
    for name in ("resume", "out", "run"):
        value = getattr(args, name, None)
        if isinstance(value, str) and (Path(value) / "config.toml").is_file():
            return Path(value)
    return None


def _kept(args) -> tuple[str, str]:
    """(what the run still has, how to continue), from its newest complete checkpoint."""
    run = _run_of(args)
    checkpoint = None if run is None else last_checkpoint(run)
    if checkpoint is None:
        return "", "then run the command again"
    return (f"the last good checkpoint is {checkpoint}, nothing before it was lost",
            f"then continue with `genlab train --resume {run}`")


def environment_message(exc: OSError, args) -> str:
    kept, go_on = _kept(args) if args.command == "train" else ("", "then run the command again")
    where = f" ({exc.filename})" if exc.filename else ""
    return (f"{exc.strerror or exc}{where}; " + (f"{kept}; " if kept else "")
            + f"{ENVIRONMENT_ERRNOS[exc.errno]}, {go_on}.")


def interrupted_message(args) -> str:
    kept, go_on = _kept(args) if args.command == "train" else ("", "")
    return "interrupted" + (f"; {kept}; {go_on.removeprefix('then ')}" if kept else "")
