"""stumpy's matrix profile, with its compiled code kept on disk between processes.

Every matrix-profile score in capmix (the ensemble's join candidates, the sweep's joins, the
``mp`` baseline) goes through :func:`stump`. stumpy's numba kernels are not compiled with
``cache=True``, so every fresh process recompiled them on its first join: 40-50 s on this
project's 2-core machine (18 s more for the non-normalised variant), paid by each ``make run``
with ``detector: ensemble``, each ``capmix score`` and the first request to ``mlflow models
serve``. :func:`stumpy_module` turns numba's own disk cache on for stumpy's kernels (numba's public
``Dispatcher.enable_caching``, on the functions ``stumpy.cache.get_njit_funcs`` lists), so a
later process loads the machine code in well under a second (measured: 48.8 s -> 0.4 s). The
cache lives where capmix's DTW kernel keeps its own (``NUMBA_CACHE_DIR``, else stumpy's
``__pycache__``, else numba's user-wide directory), and numba recompiles by itself when stumpy's
source or the CPU changes. Where no cache location is writable, or a future stumpy no longer
lists its kernels, joins still work and are only recompiled per process, as before.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from types import ModuleType

import numpy as np

__all__ = ["stump", "stumpy_module"]

_LOCK = threading.Lock()
_STATE: dict[str, ModuleType] = {}


def _stumpy_kernels() -> list:
    """stumpy's numba dispatchers, as ``stumpy.cache.get_njit_funcs`` lists them ([] if it cannot)."""
    try:
        listed = importlib.import_module("stumpy.cache").get_njit_funcs()
    except (ImportError, AttributeError):  # a stumpy without the listing: compile per process
        return []
    found = (getattr(importlib.import_module(f"stumpy.{module}"), name, None) for module, name in listed)
    return [f for f in found if f is not None]


def _enable_disk_cache(kernels: list) -> int:
    """Turn on numba's disk cache for these dispatchers; returns how many were switched."""
    enabled = 0
    for func in kernels:
        if not hasattr(func, "enable_caching"):  # NUMBA_DISABLE_JIT: plain Python functions
            continue
        try:
            func.enable_caching()
        except RuntimeError as exc:  # no writable cache location (read-only install, no HOME)
            warnings.warn(
                f"numba cannot cache stumpy's kernels ({exc}); each process recompiles them "
                "(about a minute on 2 cores). Set NUMBA_CACHE_DIR to a writable directory to fix this.",
                RuntimeWarning,
                stacklevel=3,
            )
            return enabled
        enabled += 1
    return enabled


def stumpy_module() -> ModuleType:
    """``stumpy``, imported on first use (only the join scores need it) with its disk cache on."""
    with _LOCK:  # Dask threads may reach their first join together; switch the cache once
        if "stumpy" not in _STATE:
            stumpy = importlib.import_module("stumpy")
            _enable_disk_cache(_stumpy_kernels())
            _STATE["stumpy"] = stumpy
        return _STATE["stumpy"]


def stump(a: np.ndarray, m: int, b: np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
    """stumpy's matrix profile of ``a`` with subsequence length ``m``: a self-join when ``b`` is
    None, else the AB-join of ``a``'s subsequences to ``b``'s (column 0: distances, column 1: the
    nearest neighbour's index)."""
    stumpy = stumpy_module()
    a = np.ascontiguousarray(a, dtype=np.float64)
    if b is None:
        return stumpy.stump(a, m, normalize=normalize)
    return stumpy.stump(a, m, T_B=np.ascontiguousarray(b, dtype=np.float64), ignore_trivial=False,
                        normalize=normalize)
