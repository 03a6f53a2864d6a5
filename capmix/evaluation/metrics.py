"""Evaluation metrics (METHOD.md sections 6-7): RPA, PA and PW counts, aggregation, AUCs.

Everything is vectorised over points: series can hold tens of millions of points, so the
only per-item work is per anomalous *run*, and even that is done with numpy reductions.

RPA (revised point-adjusted) follows Merlion 1.1.1's ``accumulate_tsad_score``: each
anomalous ground-truth run is one event (TP if any of its points is predicted, else FN),
while every predicted point inside a normal run is one FP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from capmix.windows import n_windows, window_labels  # noqa: F401  (re-exported for evaluation code)

Kind = Literal["rpa", "pa", "pw"]
KINDS: tuple[str, ...] = ("rpa", "pa", "pw")


# ----------------------------------------------------------------------------- validation
def as_labels(y: object, name: str = "y_true") -> np.ndarray:
    """Return ``y`` as a 1-D bool array; raise ValueError if it is not 0/1 (user data errors)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per point), got shape {arr.shape}; "
                         "flatten it or pass one series at a time")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric 0/1 labels, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        bad = np.unique(arr[(arr != 0) & (arr != 1)])[:5]
        raise ValueError(f"{name} must contain only 0 and 1, found e.g. {bad.tolist()}; "
                         "binarise the labels first (e.g. y > 0)")
    return arr.astype(bool)


def as_scores(s: object, name: str = "scores") -> np.ndarray:
    """Return ``s`` as a 1-D float64 array; raise ValueError on NaN/inf (they break any ranking)."""
    arr = np.asarray(s, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one score per point/window), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN/inf values; "
                         "fix the scorer or impute them before evaluating")
    return arr


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise ValueError when two per-point arrays do not line up."""
    if len(a) != len(b):
        raise ValueError(f"{name_a} has length {len(a)} but {name_b} has length {len(b)}; "
                         "they must describe the same points (same granularity, same series)")


# ----------------------------------------------------------------------------- runs
def anomalous_runs(y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and one-past-end indices of the maximal runs of 1s in a bool label vector."""
    edges = np.diff(np.concatenate(([0], y_true.view(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def run_max(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` over each run ``[starts[k], ends[k])`` (runs non-empty, disjoint, sorted)."""
    if len(starts) == 0:
        return np.empty(0, dtype=values.dtype)
    idx = np.empty(2 * len(starts), dtype=np.intp)
    idx[0::2], idx[1::2] = starts, ends
    if idx[-1] == len(values):  # reduceat needs in-range indices; the last segment runs to the end
        idx = idx[:-1]
    return np.maximum.reduceat(values, idx)[0::2]


def n_events(y_true: object) -> int:
    """Number of anomaly events (maximal anomalous runs): the weight of a series in Eq. 13."""
    return len(anomalous_runs(as_labels(y_true))[0])


# ----------------------------------------------------------------------------- counts
def prf(counts: "Counts") -> tuple[float, float, float]:
    """Precision, recall, F1 with the Merlion conventions (0 on empty denominators)."""
    tp, fp, fn = counts.tp, counts.fp, counts.fn
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 0.0 if p == 0 or r == 0 else 2 * p * r / (p + r)
    return float(p), float(r), float(f1)


@dataclass(frozen=True)
class Counts:
    """TP/FP/FN of one metric kind; ``+`` sums them (micro aggregation over series)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def prf(self) -> tuple[float, float, float]:
        return prf(self)


@dataclass(frozen=True)
class EventCounts:
    """RPA, PA and PW counts of one series (or, summed, of several)."""

    rpa: Counts = Counts()
    pa: Counts = Counts()
    pw: Counts = Counts()

    def __add__(self, other: "EventCounts") -> "EventCounts":
        return EventCounts(self.rpa + other.rpa, self.pa + other.pa, self.pw + other.pw)

    def get(self, kind: Kind) -> Counts:
        """Counts of one metric kind by name ('rpa', 'pa' or 'pw')."""
        if kind not in KINDS:
            raise ValueError(f"unknown metric kind {kind!r}; use one of {KINDS}")
        return getattr(self, kind)

    def scores(self) -> dict[str, tuple[float, float, float]]:
        """``{kind: (precision, recall, f1)}`` for the three kinds."""
        return {k: prf(self.get(k)) for k in KINDS}


def score_counts(y_true: object, y_pred: object) -> EventCounts:
    """RPA, PA and PW counts of binary predictions against point (or window) labels, in one pass."""
    gt = as_labels(y_true, "y_true")
    pred = as_labels(y_pred, "y_pred")
    check_same_length(gt, pred, "y_true", "y_pred")
    starts, ends = anomalous_runs(gt)
    hit = run_max(pred, starts, ends) if len(starts) else np.zeros(0, dtype=bool)
    lengths = ends - starts
    fp = int(np.count_nonzero(pred & ~gt))
    tp_pw = int(np.count_nonzero(pred & gt))
    n_anom = int(lengths.sum())
    tp_rpa = int(np.count_nonzero(hit))
    tp_pa = int(lengths[hit].sum())
    return EventCounts(
        rpa=Counts(tp_rpa, fp, len(starts) - tp_rpa),
        pa=Counts(tp_pa, fp, n_anom - tp_pa),
        pw=Counts(tp_pw, fp, n_anom - tp_pw),
    )


# ----------------------------------------------------------------------------- aggregation
def weighted_f1(per_series_f1: object, n_events_per_series: object) -> float:
    """Paper Eq. 13: mean of per-series F1 weighted by their event counts (0.0 if no events at all)."""
    f1 = as_scores(per_series_f1, "per_series_f1")
    w = as_scores(n_events_per_series, "n_events")
    check_same_length(f1, w, "per_series_f1", "n_events")
    if np.any(w < 0):
        raise ValueError("n_events must be non-negative event counts")
    total = w.sum()
    return 0.0 if total == 0 else float(np.dot(f1, w) / total)


def micro_prf(counts: Iterable[EventCounts], kind: Kind = "rpa") -> tuple[float, float, float]:
    """Precision, recall, F1 of the summed counts of several series (what the reference code prints)."""
    return prf(sum(counts, EventCounts()).get(kind))


def micro_f1(counts: Iterable[EventCounts], kind: Kind = "rpa") -> float:
    """F1 of the summed counts of several series."""
    return micro_prf(counts, kind)[2]


# ----------------------------------------------------------------------------- threshold-free
def auc_scores(y_true: object, scores: object) -> tuple[float, float]:
    """(AUC-PR, AUC-ROC) of continuous scores; (nan, nan) when only one class is present."""
    gt = as_labels(y_true, "y_true")
    s = as_scores(scores, "scores")
    check_same_length(gt, s, "y_true", "scores")
    if gt.all() or not gt.any():
        return float("nan"), float("nan")
    return float(average_precision_score(gt, s)), float(roc_auc_score(gt, s))
