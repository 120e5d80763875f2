"""A run's metrics files: ``metrics.jsonl`` (one record per epoch, written by the training loop) and
``metrics.json`` (written by ``genlab evaluate``), read back for the pages and the commands."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInputError

HISTORY_FILE = "metrics.jsonl"
METRICS_FILE = "metrics.json"
FORMAT, FORMAT_VERSION = "genlab-metrics", 1


def read_history(path: str | Path) -> list[dict]:
    """The per-epoch records of ``metrics.jsonl`` (none if the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_metrics(run_dir: str | Path) -> dict | None:
    """A model run's ``metrics.json`` (None before it is evaluated); a file that is not one is a one-line error."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not valid JSON ({exc}); rerun `genlab evaluate {run_dir}`.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("metrics"), dict):
        raise InvalidInputError(f"{path} is not a genlab metrics file; rerun `genlab evaluate {run_dir}`.")
    return doc
