"""Flush-to-zero on every thread that computes (spec §8).

Adam's first moments for weights that stop receiving gradient (the border pixels of MNIST) decay
geometrically into denormal floats after a few hundred steps, and a CPU computes on denormals tens
of times more slowly. ``torch.set_flush_denormal`` sets the FTZ/DAZ bits of the *calling* thread
only, while torch's intra-op work (elementwise kernels, MKL and oneDNN) runs on an OpenMP thread
pool that usually exists already when ``fit`` starts: any earlier torch call created it, and its
threads keep the state they had. Measured on W1 (benchmarks/RESULTS.md): a calling-thread-only
flag leaves genlab at 0.67× a loop that set the flag at process start.

So the flag is set inside an OpenMP parallel region of the same runtime torch uses: every thread of
the calling thread's pool runs a tiny callback (ctypes, no compiled code) that reads its own state
and sets the flag. Threads created later inherit the creator's floating-point environment (POSIX
``pthread_create``), so they are covered too. On exit each pool thread gets back exactly the state
it had — read with a probe, since torch has no getter. What cannot be restored: a pool thread
created *during* training (the pool grew) keeps FTZ on; other thread pools (a second Python thread
training at the same time, or the inter-op pool) are not touched.

Where torch runs on no OpenMP runtime we can find (no ``/proc``: macOS, Windows), only the calling
thread is set, which is what torch itself offers; where ``set_flush_denormal`` reports that the CPU
has no such control, nothing is changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

_OPENMP_NAMES = ("libgomp", "libiomp", "libomp")  # GNU, Intel and LLVM runtimes all export GOMP_parallel
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_lock = threading.Lock()


def thread_flushes_denormals() -> bool:
    """Whether the calling thread flushes denormals: a product that would be denormal comes out 0."""
    tiny = 1e-300  # a variable, not a literal product: the compiler must not fold it at import time
    return tiny * 1e-10 == 0.0


@functools.lru_cache(maxsize=1)
def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime torch's kernels use, or None.

    A process can hold several: scikit-learn, NumPy or SciPy wheels bring their own renamed copy
    (``libgomp-<hash>.so``), each with its own thread pools. Torch's is the one in torch's own folder,
    else one under its plain soname (a system or conda torch); a vendored copy would set the wrong pool."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    fields = (line.split(maxsplit=5) for line in maps.read_text().splitlines() if "omp" in line)
    paths = {Path(f[5].strip()) for f in fields if len(f) == 6}  # the path is the 6th field and may hold spaces
    paths = [p for p in paths if any(p.name.startswith(name) for name in _OPENMP_NAMES)]
    torch_dir = Path(torch.__file__).resolve().parent
    homes = (torch_dir, torch_dir.parent / "torch.libs")  # aarch64 wheels keep a renamed libgomp in torch.libs
    ours = [p for p in paths if any(h in p.resolve().parents for h in homes)] or [p for p in paths if "-" not in p.name]
    for path in sorted(ours):
        try:
            lib = ctypes.CDLL(str(path))
            lib.GOMP_parallel.argtypes = [_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            lib.GOMP_parallel.restype = None
            lib.omp_get_thread_num.restype = ctypes.c_int
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _on_every_pool_thread(fn) -> None:
    """Run ``fn(thread_number)`` once on each thread of the calling thread's OpenMP pool (the caller is 0)."""
    lib = _openmp_runtime()
    if lib is None:
        fn(0)
        return
    errors: list[BaseException] = []

    def body(_):
        try:
            fn(int(lib.omp_get_thread_num()))
        except BaseException as exc:  # noqa: BLE001 — an exception must not cross the C frame; re-raised below
            errors.append(exc)

    callback = _CALLBACK(body)  # kept alive for the duration of the call
    lib.GOMP_parallel(callback, None, max(1, torch.get_num_threads()), 0)
    if errors:
        raise errors[0]


def pool_thread_states() -> dict[int, bool]:
    """Flush-to-zero state of each thread of the calling thread's OpenMP pool (for tests and benchmarks)."""
    states: dict[int, bool] = {}
    _on_every_pool_thread(lambda i: states.__setitem__(i, thread_flushes_denormals()))
    return states


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[None]:
    """Flush denormals to zero on the calling thread and its whole OpenMP pool; put back each
    thread's own earlier state afterwards."""
    if not enabled or not torch.set_flush_denormal(thread_flushes_denormals()):  # False: this CPU has no FTZ
        yield
        return
    with _lock:
        before: dict[int, bool] = {}

        def enable(i: int) -> None:
            before[i] = thread_flushes_denormals()
            torch.set_flush_denormal(True)

        caller_before = thread_flushes_denormals()
        _on_every_pool_thread(enable)
        before[0] = caller_before
    try:
        yield
    finally:
        with _lock:
            _on_every_pool_thread(lambda i: torch.set_flush_denormal(before.get(i, True)))
