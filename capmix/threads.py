"""How many threads a fit or a scoring call uses, and how to keep a busy machine from drowning in them.

torch, the BLAS behind numpy/scikit-learn and numba each start one thread per core by default. On a
machine already busy with other jobs those threads fight for the same cores, and OpenMP's spinning
makes it worse than sharing (bench/bench_threads.py; docs/results.md, "Wall times"). Every
detector's ``fit`` and ``decision_function`` run under :func:`limited_threads`, which follows
``CAPMIX_THREADS``:

* ``all`` (the default): the libraries' own defaults, one thread per core;
* ``auto``: ``cores - round(load)`` threads, at least one, where the load is the 1-minute load
  average or the processes runnable right now, whichever is lower;
* ``<n>``: exactly n.

``auto`` is not the default because the thread count changes floating-point reduction order, so a
model trained on a busy machine would differ (in the 7th digit after one fit, by 1e-3 in the scores
after a training run) from the same training on an idle one: ``dvc repro`` would no longer
reproduce the committed metrics bit for bit. Set ``CAPMIX_THREADS=auto`` (or a number) on a shared
machine. Nested calls (an ensemble fitting its members) keep the outer call's choice.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["DEFAULT_POLICY", "ENV", "available_cores", "limited_threads", "pick_threads"]

ENV = "CAPMIX_THREADS"
DEFAULT_POLICY = "all"  # reproducible results first; see the module docstring
_state = threading.local()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _running_now() -> int | None:
    """Processes runnable at this instant, this one excluded (Linux ``/proc/loadavg``), else None."""
    try:
        with open("/proc/loadavg") as f:
            return max(0, int(f.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return None


def _load() -> float | None:
    """Other work on the machine: the 1-minute load average, or the processes runnable right now
    when fewer (the average lags a minute behind a machine that just went quiet); None if unknown."""
    try:
        avg = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    now = _running_now()
    return avg if now is None else min(avg, float(now))


def pick_threads(policy: str | int | None = None) -> int | None:
    """Thread count for one call: ``policy`` (default: the ``CAPMIX_THREADS`` environment variable,
    else ``DEFAULT_POLICY``) as an int, ``auto`` (free cores by the load) or ``all`` (None: no limit)."""
    policy = str(policy if policy is not None else os.environ.get(ENV, DEFAULT_POLICY)).strip().lower()
    cores = available_cores()
    if policy == "all":
        return None
    if policy == "auto":
        load = _load()
        return cores if load is None else max(1, min(cores, cores - round(load)))
    try:
        n = int(policy)
    except ValueError:
        raise ValueError(f"{ENV}={policy!r}: use auto, all or a positive number of threads") from None
    if n < 1:
        raise ValueError(f"{ENV}={policy!r}: use auto, all or a positive number of threads")
    return n


_CONTROLLER: tuple[int, object] | None = None


def _controller():
    """threadpoolctl's view of the loaded BLAS/OpenMP pools, rebuilt only when modules were imported
    since (a scan of the loaded libraries costs ~1 ms; a streaming scorer calls
    ``decision_function`` per chunk, and a later import such as scikit-learn's may bring a new pool)."""
    global _CONTROLLER
    if _CONTROLLER is None or _CONTROLLER[0] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = (len(sys.modules), ThreadpoolController())
    return _CONTROLLER[1]


@contextmanager
def limited_threads(n: int | None = None) -> Iterator[int | None]:
    """Run the block with ``n`` threads in torch, the BLAS/OpenMP pools and numba (``None``: pick by
    :func:`pick_threads`); the previous settings come back afterwards. Re-entrant: an inner call
    inside an outer one changes nothing."""
    if getattr(_state, "active", False):
        yield getattr(_state, "n", None)
        return
    n = pick_threads() if n is None else n
    if n is None:
        yield None
        return
    import torch

    before = torch.get_num_threads()
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with stumpy and tslearn
        numba = None
    numba_before = numba.get_num_threads() if numba else None
    if numba:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    _state.active, _state.n = True, n
    try:
        torch.set_num_threads(n)
        with _controller().limit(limits=n):
            yield n
    finally:
        torch.set_num_threads(before)
        if numba:
            numba.set_num_threads(numba_before)
        _state.active, _state.n = False, None
