"""Windows over a series, the train-fitted scaler and window -> point scores (METHOD.md 1, 6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def n_windows(n_points: int, window: int, stride: int) -> int:
    """Number of full windows; trailing points that do not fill one are dropped."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    return 0 if n_points < window else (n_points - window) // stride + 1


def sliding_windows(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Zero-copy strided view ``(N, W, C)`` of a ``(T, C)`` array; window i = ``x[i*s : i*s+W]``.

    The result is read-only: writing through it would alias several windows.
    """
    if x.ndim != 2:
        raise ValueError(f"expected a (T, C) array, got shape {x.shape}")
    n = n_windows(x.shape[0], window, stride)
    if n == 0:
        raise ValueError(
            f"series has {x.shape[0]} points, fewer than one window ({window}); "
            "use a longer series or a smaller window"
        )
    t_stride, c_stride = x.strides
    return np.lib.stride_tricks.as_strided(
        x, shape=(n, window, x.shape[1]), strides=(stride * t_stride, t_stride, c_stride), writeable=False
    )


def window_labels(labels: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Reference window label: 1 if any anomalous point is in the window's first ``stride`` points.

    With ``stride == window`` this is "any point in the window". One label per stride segment,
    so it is also the label of the segment the window's score is assigned to.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"point labels must be 1-D, got shape {labels.shape}")
    n = n_windows(labels.shape[0], window, stride)
    seg = min(stride, window)  # with stride > window only the window's own points count
    starts = np.arange(n, dtype=np.int64) * stride
    csum = np.concatenate([[0], np.cumsum(labels != 0, dtype=np.int64)])
    return (csum[starts + seg] - csum[starts] > 0).astype(np.int8)


def point_scores(window_scores: np.ndarray, n_points: int, window: int, stride: int) -> np.ndarray:
    """Spread window scores to points: window i scores ``[i*s, (i+1)*s)``; the last one also the tail."""
    window_scores = np.asarray(window_scores)
    n = window_scores.shape[0]
    if n != n_windows(n_points, window, stride):
        raise ValueError(f"{n} window scores do not match {n_points} points (W={window}, s={stride})")
    out = np.repeat(window_scores, stride)
    if out.shape[0] >= n_points:
        return out[:n_points]
    return np.concatenate([out, np.full(n_points - out.shape[0], window_scores[-1], dtype=out.dtype)])


@dataclass
class StandardScaler:
    """Per-channel standardisation fitted on the training part only (population std).

    A constant channel gets std 1, so it maps to 0 instead of dividing by zero.
    """

    mean_: np.ndarray | None = None
    std_: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> StandardScaler:
        self.mean_ = x.mean(axis=0)
        std = x.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, x: np.ndarray, dtype: np.dtype = np.float32) -> np.ndarray:
        if self.mean_ is None:
            raise RuntimeError("scaler is not fitted")
        return ((x - self.mean_) / self.std_).astype(dtype, copy=False)
