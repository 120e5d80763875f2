"""Run directories: what ``genlab train`` (model runs) and ``genlab recommend fit`` (recommendation runs) write,
and how they are read back. ``config`` the settings and ``config.toml``, ``directory`` creating a run folder safely
and telling the kinds apart, ``model`` model runs, ``recommend`` recommendation runs."""

from .config import RunSettings, command_settings, data_fingerprint, read_config, split_settings
from .directory import last_checkpoint, require_kind, run_directory, run_kind, write_array
from .model import label_kwargs, open_run, resume_run, train_run, write_figures

__all__ = ["RunSettings", "command_settings", "data_fingerprint", "label_kwargs", "last_checkpoint", "open_run", "read_config",
           "require_kind", "resume_run", "run_directory", "run_kind", "split_settings", "train_run", "write_array", "write_figures"]
