"""capmix.detectors.matrix_profile: stumpy's joins, right, and compiled once per machine, not per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from capmix.detectors import matrix_profile
from capmix.detectors.matrix_profile import stump

# A fresh process joins, then reports what numba did for stumpy's kernels and the profile's bits.
_CHILD = r"""
import json, sys
import numpy as np
from capmix.detectors.matrix_profile import _stumpy_kernels, stump
rng = np.random.default_rng(0)
out = stump(rng.normal(size=400), 16, rng.normal(size=300))
kernels = _stumpy_kernels()
hits = sum(sum(k.stats.cache_hits.values()) for k in kernels)
misses = sum(sum(k.stats.cache_misses.values()) for k in kernels)
json.dump({"hits": hits, "misses": misses, "profile": out[:, 0].astype(float).tolist()}, sys.stdout)
"""


def _naive_ab(a: np.ndarray, m: int, b: np.ndarray) -> np.ndarray:
    """z-normalised Euclidean distance of each subsequence of ``a`` to its nearest one in ``b``."""
    def subs(x: np.ndarray) -> np.ndarray:
        w = np.lib.stride_tricks.sliding_window_view(x, m)
        return (w - w.mean(1, keepdims=True)) / w.std(1, keepdims=True)

    sa, sb = subs(a), subs(b)
    return np.sqrt(((sa[:, None, :] - sb[None, :, :]) ** 2).sum(-1)).min(1)


def test_ab_join_is_the_nearest_neighbour_distance_into_the_other_series():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=120), rng.normal(size=90)
    out = stump(a, 10, b)
    assert out.shape[0] == a.size - 10 + 1
    np.testing.assert_allclose(out[:, 0].astype(float), _naive_ab(a, 10, b), rtol=1e-6, atol=1e-6)


def test_self_join_excludes_the_trivial_match():
    a = np.sin(np.linspace(0, 12 * np.pi, 300)) + np.random.default_rng(2).normal(0, 0.01, 300)
    out = stump(a, 25)
    assert np.all(out[:, 0].astype(float) > 0)  # a subsequence's own zero distance is not its neighbour
    assert np.all(np.abs(out[:, 1].astype(int) - np.arange(out.shape[0])) >= 25 // 4)


def test_a_second_process_loads_stumpys_kernels_from_disk_instead_of_compiling():
    """The first process may compile (or load what an earlier run saved); the second must load
    every kernel it runs and give the same bits. Without the disk cache it reports no hits."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    runs = [json.loads(subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True,
                                      capture_output=True, text=True, timeout=600).stdout)
            for _ in range(2)]
    second = runs[1]
    assert second["hits"] > 0 and second["misses"] == 0, second | {"profile": "..."}
    assert runs[0]["profile"] == second["profile"]


class _Kernel:
    def __init__(self, error: Exception | None = None):
        self.error, self.cached = error, False

    def enable_caching(self) -> None:
        if self.error:
            raise self.error
        self.cached = True


def test_no_writable_cache_location_warns_and_leaves_the_joins_uncached():
    good, bad = _Kernel(), _Kernel(RuntimeError("no locator available for file"))
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        assert matrix_profile._enable_disk_cache([good, bad, _Kernel()]) == 1
    assert good.cached


def test_plain_functions_under_disable_jit_are_skipped_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert matrix_profile._enable_disk_cache([len, _Kernel()]) == 1
