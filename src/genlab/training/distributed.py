"""Several processes, one model (spec §8, issue 13): what the loop and the front door need when genlab runs
under ``torchrun`` (or ``genlab train --nproc N``, which starts torchrun).

The distributed engine is PyTorch's own: ``torch.distributed`` with gloo on CPU and nccl on CUDA, its
process group initialised from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``). A :class:`Group` wraps the handful of collectives genlab uses; with one
process every one of them is the identity, so the loop has a single code path.

What a rank does (the loop, ``loop.py``): every rank holds the whole model and optimiser state, draws
the same seeded permutation of the training rows each epoch and trains on its share of every global
batch (:func:`Group.shard`, DistributedSampler's padding and striding); the stepper averages the
gradients of each update across ranks (:meth:`Group.average_`) before it clips and steps, so the ranks'
weights stay identical. Rank 0 alone writes files; records are averaged over ranks; the family's
per-epoch diagnostics run on rank 0 and its record is broadcast, so every rank takes the same
early-stopping and schedule decisions. Collectives time out after ``GENLAB_DIST_TIMEOUT_S`` seconds
(default 1800), so a rank never waits forever for one that died.
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import InvalidInputError

TIMEOUT_ENV = "GENLAB_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0


class PeerError(InvalidInputError):
    """Rank 0 refused the run (bad input); the other ranks stop with the same message, which rank 0 reports."""


def env_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise InvalidInputError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes.") from None


def env_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def _timeout() -> timedelta:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise InvalidInputError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds.") from None
    if not seconds > 0:
        raise InvalidInputError(f"{TIMEOUT_ENV} must be a positive number of seconds; got {raw!r}.")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Group:
    """This process's place among the run's processes; every collective is a no-op when ``world == 1``."""

    rank: int = 0
    world: int = 1
    comm_device: torch.device = torch.device("cpu")  # where the backend wants its tensors (nccl: this rank's GPU)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        return dist.get_backend() if self.world > 1 else None

    # -- the epoch's rows ------------------------------------------------------------------------
    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's rows of the epoch's global ``order``: padded (by repeating its start) to a multiple of
        the world size, then every ``world``-th row from ``rank``. Local batch ``i`` of size b/world is
        then exactly this rank's share of global batch ``i`` of size b."""
        if self.world == 1:
            return order
        pad = -len(order) % self.world
        if pad:
            order = torch.cat([order, order[:pad]])
        return order[self.rank::self.world]

    def local_rows(self, n: int) -> int:
        """How many rows each rank's shard of ``n`` rows holds."""
        return -(-n // self.world)

    def chunk(self, n: int) -> tuple[int, int]:
        """This rank's contiguous part [start, stop) of ``n`` rows (validation: every row once overall); the
        parts differ in size by at most one row."""
        return self.rank * n // self.world, (self.rank + 1) * n // self.world

    # -- collectives -----------------------------------------------------------------------------
    def _to_comm(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.device == self.comm_device else t.to(self.comm_device)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``t`` over ranks (a new tensor on ``t``'s device)."""
        if self.world == 1:
            return t
        buf = self._to_comm(t.detach()).clone()
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return buf.to(t.device)

    def average_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor (same shapes and dtype on every rank) by its mean over ranks, in one all-reduce."""
        if self.world == 1 or not tensors:
            return
        flat = torch.cat([self._to_comm(t.detach()).reshape(-1).float() for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n

    def all_true(self, flag: bool) -> bool:
        """True only if ``flag`` holds on every rank (one tiny all-reduce)."""
        if self.world == 1:
            return flag
        return int(self.sum(torch.tensor([0 if flag else 1], device=self.comm_device))) == 0

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``t`` (same shape and dtype on every rank), in rank order, on ``t``'s device."""
        if self.world == 1:
            return [t]
        mine = self._to_comm(t.detach().contiguous())
        parts = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(parts, mine)
        return [p.to(t.device) for p in parts]

    def broadcast_json(self, obj=None):
        """Rank 0's ``obj`` (anything JSON can carry) on every rank; JSON, not pickle, crosses the wire."""
        if self.world == 1:
            return obj
        data = json.dumps(obj).encode() if self.main else b""
        size = torch.tensor([len(data)], dtype=torch.long, device=self.comm_device)
        dist.broadcast(size, 0)
        buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.comm_device) if self.main
               else torch.empty(int(size), dtype=torch.uint8, device=self.comm_device))
        dist.broadcast(buf, 0)
        return obj if self.main else json.loads(bytes(buf.cpu().numpy()).decode())

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite each tensor with rank 0's."""
        if self.world == 1:
            return
        for t in tensors:
            buf = self._to_comm(t.detach()).clone()
            buf = buf.to(torch.uint8) if buf.dtype == torch.bool else buf
            dist.broadcast(buf, 0)
            t.copy_(buf)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def from_main(self, make):
        """Run ``make()`` on rank 0 and give its (JSON-able) result to every rank. If it raises a user error,
        every rank raises it (the others as :class:`PeerError`, which the CLI leaves to rank 0 to print)."""
        if self.world == 1:
            return make()
        if self.main:
            try:
                value = make()
            except InvalidInputError as exc:
                self.broadcast_json({"error": str(exc)})
                raise
            self.broadcast_json({"value": value})
            return value
        outcome = self.broadcast_json()
        if "error" in outcome:
            raise PeerError(outcome["error"])
        return outcome["value"]


SINGLE = Group()


def setup(device: torch.device) -> Group:
    """This run's group: one process, the process group the caller already started, or one initialised
    from torchrun's environment (nccl when the run is on CUDA, else gloo)."""
    if dist.is_available() and dist.is_initialized():
        return current()
    world = env_world_size()
    if world == 1:
        return SINGLE
    if not dist.is_available():
        raise InvalidInputError(f"WORLD_SIZE={world}, but this PyTorch build has no torch.distributed; run one process.")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_backend_available(backend):
        raise InvalidInputError(f"torchrun started {world} processes on {device.type}, but this PyTorch build has no {backend} "
                                "backend; run one process, or use a build with it.")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise InvalidInputError(f"WORLD_SIZE={world} but {', '.join(missing)} is not set: start the processes with torchrun "
                                "(or `genlab train --nproc N`), which sets them.")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # this process's GPU: nccl's tensors (and current()) live on it
    try:
        dist.init_process_group(backend, timeout=_timeout(), device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"the {backend} process group of {world} processes could not start ({first}); check torchrun's "
                                "--master-addr/--master-port and that every process can reach it.") from None
    atexit.register(_shutdown)  # genlab started the group, so genlab ends it (a live group at exit aborts the process)
    return current()


def _shutdown() -> None:
    if dist.is_initialized():
        try:
            dist.barrier()  # nobody leaves while another rank still talks to it
        except RuntimeError:
            pass  # a peer is gone already: nothing left to wait for
        dist.destroy_process_group()


def current() -> Group:
    """The group of an already-initialised process group (or one process); starts nothing."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        backend = dist.get_backend()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        return Group(dist.get_rank(), dist.get_world_size(), device)
    return SINGLE
