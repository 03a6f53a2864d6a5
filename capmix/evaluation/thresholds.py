"""From scores to decisions (METHOD.md section 6): oracle sweep, validation threshold, UCR protocol.

The two threshold protocols are deliberately separate functions and must be reported
under their own names:

* ``oracle_threshold`` is the paper's protocol. It picks the threshold with the test
  labels, so its F1 is an upper bound for comparison with the paper's tables and is
  **not** a deployable result.
* ``validation_threshold`` uses training-period scores only and is what production uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from capmix.evaluation.metrics import (
    KINDS,
    anomalous_runs,
    as_labels,
    as_scores,
    check_same_length,
    prf,
    run_max,
    score_counts,
    window_labels,
)

Kind = Literal["rpa", "pa", "pw"]

#: The paper's sweep: tau in -3.00, -2.99, ..., 2.99 on z-scored test scores.
TAU_MIN, TAU_MAX, TAU_STEP = -3.00, 3.00, 0.01
TAU_DECIMALS = 2
TAUS: np.ndarray = np.round(np.arange(TAU_MIN, TAU_MAX, TAU_STEP), TAU_DECIMALS)

#: 3-sigma rule for the deployable threshold.
DEFAULT_VALIDATION_Z = 3.0

#: UCR archive rule (METHOD.md section 6, the KDD Cup 2021's): a hit lies within this many points of
#: the labelled anomaly's first or last point.
UCR_MARGIN_POINTS = 100
#: The authors' reference-code rule (secondary column only).
UCR_WIDEN_POINTS = 100  # labels are widened by this many points on each side
UCR_MIN_TOLERANCE_POINTS = 100  # the hit tolerance is at least this many points
UCR_MAX_TIES = 10  # more windows than this sharing the top score => no prediction


@dataclass(frozen=True)
class ThresholdResult:
    """Best threshold of the oracle sweep (tau in z units) and what it achieves."""

    tau: float
    f1: float
    precision: float
    recall: float
    predictions: np.ndarray  # bool, z > tau


@dataclass(frozen=True)
class UCRResult:
    """Outcome of the UCR protocol on one series."""

    hit: bool
    predicted_window: int | None
    rpa_f1: float


@dataclass(frozen=True)
class UCRArchiveResult:
    """The UCR archive's rule on one series: the top-scoring location and whether it is a hit."""

    hit: bool
    location: int | None  #: 0-based point of the test part; None = no prediction (too many ties)


def top_location(point_scores: object, max_ties: int = UCR_MAX_TIES) -> int | None:
    """The single highest-scoring location: the centre of the first contiguous run of points holding
    the top score; ``None`` when more than ``max_ties`` separate runs share it (no prediction)."""
    s = as_scores(point_scores, "point_scores")
    at_top = np.concatenate(([False], s == s.max(), [False]))
    edges = np.flatnonzero(np.diff(at_top.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]  # runs [start, end)
    if len(starts) > max_ties:
        return None
    return int((starts[0] + ends[0] - 1) // 2)


def ucr_archive_hit(point_scores: object, point_labels: object, margin: int = UCR_MARGIN_POINTS,
                    max_ties: int = UCR_MAX_TIES) -> UCRArchiveResult:
    """The UCR archive's rule (METHOD.md section 6): hit iff the top location lies within
    ``[start - margin, end + margin]``, ``start``/``end`` the first and last anomalous point.

    Scores and labels share one coordinate system (the test part, 0-based), so the file names'
    1-based inclusive positions convert by the same offset on both sides.
    """
    s = as_scores(point_scores, "point_scores")
    gt = as_labels(point_labels, "point_labels")
    check_same_length(s, gt, "point_scores", "point_labels")
    anomalous = np.flatnonzero(gt)
    if len(anomalous) == 0:
        raise ValueError("point_labels has no anomaly; the UCR rule needs one labelled anomaly per series")
    loc = top_location(s, max_ties)
    if loc is None:
        return UCRArchiveResult(False, None)
    return UCRArchiveResult(bool(anomalous[0] - margin <= loc <= anomalous[-1] + margin), loc)


def zscore(scores: np.ndarray) -> np.ndarray:
    """z-score with the population std; a constant series maps to all zeros (no division by ~0)."""
    if len(scores) == 0 or np.ptp(scores) == 0:
        return np.zeros_like(scores, dtype=np.float64)
    std = scores.std()
    return (scores - scores.mean()) / std


def _count_above(sorted_values: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """For every tau, how many values are strictly greater (same comparison as ``z > tau``)."""
    return len(sorted_values) - np.searchsorted(sorted_values, taus, side="right")


def _prf_arrays(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vectorised ``metrics.prf`` (same arithmetic, so ties resolve exactly as in a naive loop)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where((p == 0) | (r == 0), 0.0, 2 * p * r / (p + r))
    return p, r, f1


def oracle_threshold(scores: object, y_true: object, metric: Kind = "rpa") -> ThresholdResult:
    """The paper's oracle protocol on one series: best F1 over the tau sweep of z-scored scores.

    Uses the test labels to choose tau, hence NOT deployable; report it as ``oracle``.
    Ties keep the lowest tau. All 600 thresholds are evaluated at once from sorted
    arrays (normal-point z for FP, per-run max z for event/PA hits, anomalous-point z for
    PW), so the cost is a sort, not 600 passes over the series.
    """
    if metric not in KINDS:
        raise ValueError(f"unknown metric {metric!r}; use one of {KINDS}")
    s = as_scores(scores, "scores")
    gt = as_labels(y_true, "y_true")
    check_same_length(s, gt, "scores", "y_true")
    z = zscore(s)

    fp = _count_above(np.sort(z[~gt]), TAUS)
    starts, ends = anomalous_runs(gt)
    if metric == "pw":
        tp = _count_above(np.sort(z[gt]), TAUS)
        fn = int(gt.sum()) - tp
    else:
        peaks = run_max(z, starts, ends)
        order = np.argsort(peaks, kind="stable")
        sorted_peaks = peaks[order]
        hit_runs = _count_above(sorted_peaks, TAUS)
        if metric == "rpa":
            tp, fn = hit_runs, len(starts) - hit_runs
        else:  # pa: a hit run counts all its points; hit runs are the top-``hit_runs`` peaks
            lengths = (ends - starts)[order]
            tail = np.concatenate((np.cumsum(lengths[::-1])[::-1], [0]))  # tail[k] = sum lengths[k:]
            tp = tail[len(starts) - hit_runs]
            fn = int(lengths.sum()) - tp
    p, r, f1 = _prf_arrays(tp, fp, fn)
    best = int(np.argmax(f1))  # first maximum = lowest tau
    tau = float(TAUS[best])
    return ThresholdResult(tau, float(f1[best]), float(p[best]), float(r[best]), z > tau)


def validation_threshold(val_scores: object, z: float = DEFAULT_VALIDATION_Z) -> float:
    """Deployable threshold in raw score units: mean + z * population std of validation scores.

    ``val_scores`` must come from the training period (the validation split), never from
    test data; predict ``score > threshold`` at inference and store the value with the model.
    """
    s = as_scores(val_scores, "val_scores")
    if len(s) == 0:
        raise ValueError("val_scores is empty; score the validation split before thresholding")
    return float(s.mean() + z * s.std())


def widen_labels(point_labels: np.ndarray, widen: int) -> np.ndarray:
    """Mark every point within ``widen`` points of an anomalous point as anomalous."""
    if widen < 0:
        raise ValueError(f"widen must be >= 0, got {widen}")
    n = len(point_labels)
    cum = np.concatenate(([0], np.cumsum(point_labels, dtype=np.int64)))
    t = np.arange(n)
    return cum[np.minimum(t + widen + 1, n)] - cum[np.maximum(t - widen, 0)] > 0


def ucr_protocol(
    window_scores: object,
    point_labels: object,
    window: int,
    stride: int,
    widen: int = UCR_WIDEN_POINTS,
    *,
    tolerance: int = UCR_MIN_TOLERANCE_POINTS,
    max_ties: int = UCR_MAX_TIES,
) -> UCRResult:
    """The authors' reference-code UCR rule (secondary: looser than :func:`ucr_archive_hit`).

    Labels are widened by ``widen`` points each side, then turned into window labels
    (first-``stride``-points convention); ``b``/``e`` are the first and one-past-last
    anomalous window, ``L = e - b``. Hit iff
    ``min(b - L, b - tolerance/stride) <= P <= max(e + L, e + tolerance/stride)``.
    More than ``max_ties`` windows sharing the top score means no prediction (a miss).
    ``rpa_f1`` is the window-level RPA F1 of marking only window ``P``, against the same
    widened window labels that define ``b`` and ``e`` (our choice; METHOD.md leaves it open).
    """
    s = as_scores(window_scores, "window_scores")
    gt = as_labels(point_labels, "point_labels")
    wl = window_labels(widen_labels(gt, widen), window, stride)
    check_same_length(s, wl, "window_scores", f"the windows of point_labels (W={window}, s={stride})")
    anomalous = np.flatnonzero(wl)
    if len(anomalous) == 0:
        raise ValueError("point_labels has no anomaly inside a full window; the UCR protocol "
                         "needs exactly one labelled anomaly per series")
    b, e = int(anomalous[0]), int(anomalous[-1]) + 1
    length = e - b

    top = s.max()
    if np.count_nonzero(s == top) > max_ties:
        return UCRResult(hit=False, predicted_window=None, rpa_f1=0.0)
    p = int(np.argmax(s))
    hit = min(b - length, b - tolerance / stride) <= p <= max(e + length, e + tolerance / stride)
    pred = np.zeros(len(wl), dtype=bool)
    pred[p] = True
    return UCRResult(hit=bool(hit), predicted_window=p, rpa_f1=prf(score_counts(wl, pred).rpa)[2])
