"""Resumable training state in safetensors: tensors as tensors, everything else as JSON metadata.

Nothing here unpickles: optimiser state is split into its tensors and its JSON-able scalars, RNG
states are uint8 tensors. A checkpoint becomes visible only after it is complete (temporary
file, fsync, rename) and listed in ``manifest.json``; older ones beyond ``keep`` are removed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .._fileio import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError, ModelFileError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class LoopState:
    """Where training is: completed epochs, steps, the epoch records so far, early-stopping memory."""

    epoch: int = 0
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    best_value: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    step_in_epoch: int = 0  # > 0: saved inside an epoch, after this many of its steps
    lr_scale: float = 1.0  # the plateau schedule's multiplier so far
    plateau_bad_epochs: int = 0
    engine: dict = field(default_factory=dict)  # the optimiser settings the state belongs to (stepper.engine_signature)


def _optimizer_to_flat(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slot in sd["state"].items():
        for key, value in slot.items():
            if torch.is_tensor(value):
                tensors[f"optim/{name}/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(name: str, optimizer: torch.optim.Optimizer, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    prefix = f"optim/{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, slot = key[len(prefix):].split("/", 1)
            state.setdefault(int(idx), {})[slot] = value
    for key, value in meta["scalars"].items():
        idx, slot = key.split("/", 1)
        state.setdefault(int(idx), {})[slot] = value
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    directory: Path,
    module: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    rngs: dict[str, torch.Generator],
    state: LoopState,
    *,
    best_weights: dict[str, torch.Tensor] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    scaler: torch.amp.GradScaler | None = None,
    keep: int = 3,
) -> Path:
    """Write one complete checkpoint atomically, list it in the manifest, prune old ones. ``extra``
    holds the loop's own tensors (inside an epoch: the data order and the terms so far)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    optim_meta = {}
    for name, opt in optimizers.items():
        flat, optim_meta[name] = _optimizer_to_flat(name, opt)
        tensors.update(flat)
    for name, gen in rngs.items():
        tensors[f"rng/{name}"] = gen.get_state()
    for k, v in (best_weights or {}).items():
        tensors[f"best/{k}"] = v.detach().cpu().contiguous()
    for k, v in (extra or {}).items():
        tensors[f"extra/{k}"] = v.detach().cpu().contiguous()
    meta = {
        "format_version": FORMAT_VERSION,
        "state": state.__dict__,
        "optimizers": optim_meta,
        "scaler": None if scaler is None else scaler.state_dict(),  # float16 loss scale and its growth counter
    }
    name = f"step-{state.global_step + state.step_in_epoch:09d}.safetensors"
    path = directory / name
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata={"genlab_checkpoint": json.dumps(meta)}))
    complete = [n for n in list_checkpoints(directory) if n != name] + [name]
    atomic_write_text(directory / MANIFEST, json.dumps({"complete": complete}, indent=1))
    for old in complete[:-keep] if keep > 0 else []:
        (directory / old).unlink(missing_ok=True)
    if keep > 0 and len(complete) > keep:
        atomic_write_text(directory / MANIFEST, json.dumps({"complete": complete[-keep:]}, indent=1))
    return path


def list_checkpoints(directory: Path) -> list[str]:
    """Names of complete checkpoints, oldest first (from the manifest; files that vanished are skipped)."""
    try:
        names = json.loads((directory / MANIFEST).read_text())["complete"]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{directory / MANIFEST} is not a valid checkpoint manifest ({exc}).") from None
    return [n for n in names if isinstance(n, str) and (directory / n).is_file()]


def _loop_state(raw) -> LoopState:
    """The loop state from JSON, with every field's type checked (a wrong one raises TypeError)."""
    state = LoopState(**raw)
    counters = (state.epoch, state.global_step, state.best_epoch, state.bad_epochs, state.step_in_epoch, state.plateau_bad_epochs)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counters):
        raise TypeError("loop counters must be non-negative integers")
    for value in (state.best_value, state.lr_scale):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError("best_value and lr_scale must be numbers")
    if not isinstance(state.history, list) or not all(isinstance(r, dict) for r in state.history):
        raise TypeError("history must be a list of records")
    if not isinstance(state.engine, dict):
        raise TypeError("engine must be a mapping")
    return state


def load_checkpoint(
    path: Path,
    module: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    rngs: dict[str, torch.Generator],
    scaler: torch.amp.GradScaler | None = None,
    engine: dict | None = None,
) -> tuple[LoopState, dict[str, torch.Tensor] | None, dict[str, torch.Tensor]]:
    """Restore module, optimisers, RNGs and the float16 loss scaler in place; return the loop state,
    the best weights (if any) and the loop's extra tensors. ``engine``: the optimiser settings of
    this run; a checkpoint written under others is refused before anything is loaded."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("genlab_checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if raw_meta is None:
            raise ModelFileError(f"{path} is not a genlab checkpoint (no genlab metadata).")
        meta = json.loads(raw_meta)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"checkpoint {path} could not be read ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(f"checkpoint {path} has format version {version}; this genlab reads {FORMAT_VERSION}.")
    saved = (meta.get("state") or {}).get("engine") if isinstance(meta.get("state"), dict) else None
    if engine is not None and isinstance(saved, dict) and saved and saved.get("world_size", 1) != engine.get("world_size", 1):
        was, now = saved.get("world_size", 1), engine.get("world_size", 1)
        raise InvalidInputError(f"the checkpoint in {path.parent} was trained by {was} process{'es' if was != 1 else ''} and this "
                                f"run has {now}; resume it with the same number (genlab train --resume RUN --nproc {was}"
                                f"{', or without --nproc' if was == 1 else ''}): each process's data order and noise continue "
                                "from where that process stopped.")
    if engine is not None and isinstance(saved, dict) and saved and saved != engine:
        differ = [f"{k}={saved.get(k)!r} (now {engine.get(k)!r})" for k in sorted(set(saved) | set(engine))
                  if saved.get(k) != engine.get(k)]
        raise InvalidInputError(f"the checkpoint in {path.parent} was trained with {', '.join(differ)}; resume with the run's own "
                                "settings (a changed optimiser cannot continue its state).")
    model_sd = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:  # any inconsistency in the file — names, shapes, dtypes, JSON types — is the file's fault
        if any(v.is_floating_point() and not bool(torch.isfinite(v).all()) for v in model_sd.values()):
            raise ValueError("non-finite weights")
        module.load_state_dict(model_sd, strict=True)
        for name, opt in optimizers.items():
            _optimizer_from_flat(name, opt, meta["optimizers"][name], tensors)  # load_state_dict moves to device
        for name, gen in rngs.items():
            gen.set_state(tensors[f"rng/{name}"])
        state = _loop_state(meta["state"])
        if scaler is not None:
            if not isinstance(meta.get("scaler"), dict):
                raise KeyError("the float16 loss scaler (this run was not trained with precision='16-mixed')")
            scaler.load_state_dict(meta["scaler"])
        if state.step_in_epoch and not {"extra/order", "extra/kept"} <= tensors.keys():
            raise KeyError("the data order of the interrupted epoch")
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ModelFileError(f"checkpoint {path} does not match this model or is damaged ({type(exc).__name__}: {exc}).") from None
    best = {k[len("best/"):]: v for k, v in tensors.items() if k.startswith("best/")} or None
    extra = {k[len("extra/"):]: v for k, v in tensors.items() if k.startswith("extra/")}
    return state, best, extra
