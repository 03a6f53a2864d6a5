"""Exact batched DTW of many windows against one reference (METHOD.md §3).

Label revision computes ``DTW(X_a, C_n)`` for every injected window against the
single normal centre ``C_n``; tens of thousands of windows must finish in
seconds, so a Python loop over ``tslearn.metrics.dtw`` (tens to hundreds of
microseconds per pair, mostly call overhead) is not acceptable. This module
runs the same dynamic programme in one numba kernel, parallel over windows and
SIMD-vectorised across windows.

Definition (identical to ``tslearn.metrics.dtw``): the local cost between two
C-dimensional points is their *squared* Euclidean distance, the accumulated
cost is the minimum over warping paths of the summed local costs, and the
returned distance is its square root. The optional Sakoe–Chiba band follows
tslearn's mask exactly, including its widening by the length difference when
the two sequences have different lengths.

The kernel is compiled with ``cache=True``: numba stores the machine code in
``__pycache__`` next to this file, or — when the package directory is not
writable (a read-only, non-editable install) — in its user-wide cache
directory; ``NUMBA_CACHE_DIR`` overrides both. A fresh process therefore loads
the kernel instead of recompiling it. :func:`warmup` lets callers pay the
(one-off) compile or cache load up front.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numba
import numpy as np
from numba import prange

__all__ = ["dtw_to_reference", "warmup"]

# Non-contiguous, read-only or non-float64 windows are converted (and all
# windows checked for NaN/inf) in chunks of about this many bytes of float64,
# so a strided sliding-window view over a long series is never materialised in
# full (N*W*C float64s could be gigabytes), while the O(W) copy per window stays
# negligible next to its O(W1*W2) DP.
_CONVERT_CHUNK_BYTES = 32 * 2**20
_FLOAT64_BYTES = 8

# Work blocks handed to the thread pool per thread: >1 balances load when
# threads are unevenly scheduled, while keeping one buffer allocation per block.
_BLOCKS_PER_THREAD = 4

# Windows advanced in lock-step per DP sweep (see the kernel). Passed to the
# kernel as a runtime argument on purpose: with a compile-time constant, LLVM
# fully unrolls the short lane loops and then does not vectorise them.
# Measured single core (AVX2 code), W=64, ns per DP cell: 1 lane ~1.7;
# 8 lanes (unrolled scalar) ~0.7; 32 lanes C=1 ~0.3, C=3 ~0.8, C=7 ~1.3;
# 16 lanes ~0.43 for C=1; 64 lanes no better.
_LANES = 32

_KERNEL_OPTIONS = {"parallel": True, "nogil": True, "boundscheck": False}

_WARMUP_WINDOWS = 2
_WARMUP_LENGTH = 4


def _jit_kernel(func: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``njit(cache=True)``, degrading to an uncached kernel instead of failing import.

    numba raises at decoration time when no cache location is writable (package
    dir read-only *and* no writable user cache dir, e.g. a locked-down
    container with no HOME); recompiling per process beats not importing.
    """
    try:
        return numba.njit(cache=True, **_KERNEL_OPTIONS)(func)
    except RuntimeError as exc:
        warnings.warn(
            f"numba cannot cache {func.__name__} ({exc}); it will be recompiled in "
            "every process. Set NUMBA_CACHE_DIR to a writable directory to fix this.",
            RuntimeWarning,
            stacklevel=2,
        )
        return numba.njit(**_KERNEL_OPTIONS)(func)


@_jit_kernel
def _dtw_batch_kernel(
    windows: np.ndarray,
    reference: np.ndarray,
    dlo: int,
    dhi: int,
    n_blocks: int,
    lanes: int,
) -> np.ndarray:  # pragma: no cover - compiled by numba, covered via the wrapper
    """Squared-cost DTW of each ``windows[n]`` (W1, C) against ``reference`` (W2, C).

    Only cells with ``dlo <= j - i <= dhi`` are reachable (the band); pass a
    range covering the whole matrix for unconstrained DTW.

    Why lanes: the DP of one pair is a serial chain (each cell needs its left
    neighbour), so one pair at a time is bound by min+add latency. Advancing
    ``lanes`` windows in lock-step turns every cell update into an
    element-wise loop over lanes that LLVM vectorises (SIMD min/add), and all
    windows share W1/W2, hence the same band. Each block owns two rolling rows
    of shape ``(W2 + 1, lanes)`` (row ``k = j + 1``; ``k = 0`` is the boundary
    column), allocated once per block, not per window. Row views (``prev[k]``)
    give the vectoriser unit-stride, provably non-negative indices. The
    min/add order per cell is tslearn's, so results are bit-identical.
    """
    n_windows = windows.shape[0]
    w1 = windows.shape[1]
    n_channels = windows.shape[2]
    w2 = reference.shape[0]
    out = np.empty(n_windows, dtype=np.float64)
    n_groups = (n_windows + lanes - 1) // lanes
    groups_per_block = (n_groups + n_blocks - 1) // n_blocks
    inf = np.inf

    for b in prange(n_blocks):
        buf_a = np.empty((w2 + 1, lanes), dtype=np.float64)
        buf_b = np.empty((w2 + 1, lanes), dtype=np.float64)
        x = np.empty((n_channels, lanes), dtype=np.float64)  # row i of each lane
        for g in range(b * groups_per_block, min((b + 1) * groups_per_block, n_groups)):
            n0 = g * lanes
            n_live = min(lanes, n_windows - n0)  # last group may be partial
            prev = buf_a
            cur = buf_b
            # Row "-1": only the origin is reachable.
            prev[0, :] = 0.0
            prev[1:, :] = inf
            for i in range(w1):
                klo = max(1, i + dlo + 1)
                khi = min(w2, i + dhi + 1)
                for lane in range(lanes):
                    src = n0 + min(lane, n_live - 1)  # pad with a live window
                    for c in range(n_channels):
                        x[c, lane] = windows[src, i, c]
                cur[klo - 1, :] = inf  # left of the band / boundary column
                x0 = x[0]
                if n_channels == 1:
                    # Fused cost + update: the hot path of label revision. Deliberate hot-path
                    # copy of the multichannel loop below (one channel needs no per-channel pass).
                    for k in range(klo, khi + 1):
                        diag = prev[k - 1]
                        up = prev[k]
                        left = cur[k - 1]
                        dst = cur[k]
                        r = reference[k - 1, 0]
                        for lane in range(lanes):
                            diff = x0[lane] - r
                            a = diag[lane]
                            u = up[lane]
                            best = a if a < u else u
                            lf = left[lane]
                            best = lf if lf < best else best
                            dst[lane] = diff * diff + best
                else:
                    for k in range(klo, khi + 1):
                        diag = prev[k - 1]
                        up = prev[k]
                        left = cur[k - 1]
                        dst = cur[k]
                        # Channels summed in order from 0.0 (as tslearn does),
                        # straight into the destination row, then the best
                        # predecessor is added: same operations, same rounding.
                        r = reference[k - 1, 0]
                        for lane in range(lanes):
                            diff = x0[lane] - r
                            dst[lane] = diff * diff
                        for c in range(1, n_channels):
                            r = reference[k - 1, c]
                            xc = x[c]
                            for lane in range(lanes):
                                diff = xc[lane] - r
                                dst[lane] += diff * diff
                        for lane in range(lanes):
                            a = diag[lane]
                            u = up[lane]
                            best = a if a < u else u
                            lf = left[lane]
                            best = lf if lf < best else best
                            dst[lane] += best
                if khi < w2:
                    cur[khi + 1, :] = inf  # right of the band: unreachable next row
                prev, cur = cur, prev
            for lane in range(n_live):
                out[n0 + lane] = np.sqrt(prev[w2, lane])
    return out


def _band_offsets(w1: int, w2: int, band: int | None) -> tuple[int, int]:
    """Allowed range of ``j - i`` reproducing tslearn's Sakoe–Chiba mask.

    tslearn widens the band by the length difference on the longer side, so a
    path from (0, 0) to (W1-1, W2-1) always exists.
    """
    if band is None:
        return -w1, w2
    delta = w2 - w1
    return min(0, delta) - band, max(0, delta) + band


def _as_series_3d(x: np.ndarray, name: str, ndim_2d: int) -> np.ndarray:
    """View ``x`` as (..., W, C), adding a channel axis to univariate input."""
    if x.ndim == ndim_2d - 1:
        return x[..., np.newaxis]
    if x.ndim != ndim_2d:
        raise ValueError(
            f"{name} must have {ndim_2d - 1} (univariate) or {ndim_2d} dimensions, "
            f"got shape {x.shape}"
        )
    return x


def _chunk_windows(window_shape: tuple[int, ...]) -> int:
    """Windows per conversion chunk: ~_CONVERT_CHUNK_BYTES, whole lane groups."""
    per_window = max(1, int(np.prod(window_shape)) * _FLOAT64_BYTES)
    return max(_LANES, _CONVERT_CHUNK_BYTES // per_window // _LANES * _LANES)


def _check_finite(x: np.ndarray, name: str) -> None:
    """Reject NaN/inf: tslearn silently drops trailing NaNs, we refuse them.

    Checked chunk by chunk along axis 0 so a strided view is never expanded.
    """
    step = _chunk_windows(x.shape[1:])
    if all(np.isfinite(x[s : s + step]).all() for s in range(0, max(len(x), 1), step)):
        return
    n_nan = sum(int(np.isnan(x[s : s + step]).sum()) for s in range(0, len(x), step))
    n_inf = sum(int(np.isinf(x[s : s + step]).sum()) for s in range(0, len(x), step))
    raise ValueError(
        f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf); "
        "DTW needs finite inputs"
    )


def _check_real(x: np.ndarray, name: str) -> None:
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")


def _n_blocks(n_windows: int) -> int:
    """Parallel work blocks: a few per thread, never more than lane groups."""
    n_groups = -(-n_windows // _LANES)
    return max(1, min(numba.get_num_threads() * _BLOCKS_PER_THREAD, n_groups))


def _kernel_ready(x: np.ndarray) -> bool:
    """True when ``x`` matches the one compiled signature as it is (no copy).

    numba specialises on dtype, layout, writeability and alignment; anything
    else is converted, so exactly one kernel is ever compiled and cached.
    """
    flags = x.flags
    return (
        x.dtype == np.float64
        and x.dtype.isnative
        and flags.c_contiguous
        and flags.writeable
        and flags.aligned
    )


def dtw_to_reference(
    windows: np.ndarray, reference: np.ndarray, band: int | None = None
) -> np.ndarray:
    """Exact DTW distance of every window to one reference sequence.

    Parameters
    ----------
    windows:
        ``(N, W1, C)``, or ``(N, W1)`` for univariate data. Any float or int
        dtype and any strides (e.g. a ``sliding_window_view``) are accepted;
        non-float64/non-contiguous input is converted chunk by chunk.
    reference:
        ``(W2, C)``, or ``(W2,)`` for univariate data. ``W2`` may differ from ``W1``.
    band:
        Sakoe–Chiba radius (``None`` = unconstrained), with tslearn semantics
        (``global_constraint="sakoe_chiba", sakoe_chiba_radius=band``).

    Returns
    -------
    ``(N,)`` float64 distances equal to ``tslearn.metrics.dtw(windows[n], reference)``.
    """
    windows = np.asarray(windows)
    reference = np.asarray(reference)
    _check_real(windows, "windows")
    _check_real(reference, "reference")
    win3 = _as_series_3d(windows, "windows", 3)
    ref2 = _as_series_3d(reference, "reference", 2)
    if win3.shape[2] != ref2.shape[1]:
        raise ValueError(
            f"channel mismatch: windows have {win3.shape[2]} channel(s) "
            f"(shape {windows.shape}) but reference has {ref2.shape[1]} "
            f"(shape {reference.shape})"
        )
    n_windows, w1, n_channels = win3.shape
    w2 = ref2.shape[0]
    if w2 == 0 or (w1 == 0 and n_windows > 0):
        raise ValueError(
            f"sequences must be non-empty: window length {w1}, reference length {w2}"
        )
    if n_channels == 0:
        raise ValueError("sequences must have at least one channel")
    if band is not None:
        if isinstance(band, bool) or not isinstance(band, (int, np.integer)):
            raise TypeError(f"band must be an int or None, got {type(band).__name__}")
        if band < 0:
            raise ValueError(f"band must be >= 0, got {band}")
        band = int(band)
    _check_finite(ref2, "reference")
    _check_finite(win3, "windows")
    if n_windows == 0:
        return np.empty(0, dtype=np.float64)

    # Always a fresh, writable, aligned float64 copy (it is small): see _kernel_ready.
    ref2 = np.array(ref2, dtype=np.float64, order="C", copy=True)
    dlo, dhi = _band_offsets(w1, w2, band)

    if _kernel_ready(win3):
        return _dtw_batch_kernel(win3, ref2, dlo, dhi, _n_blocks(n_windows), _LANES)

    out = np.empty(n_windows, dtype=np.float64)
    step = _chunk_windows((w1, n_channels))
    for start in range(0, n_windows, step):
        stop = min(start + step, n_windows)
        chunk = np.array(win3[start:stop], dtype=np.float64, order="C", copy=True)
        out[start:stop] = _dtw_batch_kernel(
            chunk, ref2, dlo, dhi, _n_blocks(stop - start), _LANES
        )
    return out


def warmup() -> None:
    """Compile (or load from the on-disk cache) the kernel on tiny inputs.

    All inputs funnel into one float64/C-contiguous/writable signature, so a
    single call covers every later call.
    """
    rng = np.random.default_rng(0)
    windows = rng.standard_normal((_WARMUP_WINDOWS, _WARMUP_LENGTH, 1))
    dtw_to_reference(windows, windows[0])
