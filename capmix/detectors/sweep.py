"""Whole-series, non-negative candidate scores on a geometric window sweep.

The period-tied candidates of :mod:`capmix.detectors.classic` are robust z-scores of the TEST part
against training statistics. This module builds the other family, the one a label-free KDD Cup
2021 entry used (ideas only, our own code): every score is computed over the WHOLE series
(training part + scored part), is non-negative, and is compared with its own peaks anywhere in the
series by :func:`capmix.detectors.confidence.peak_ratio` (top peak / next peak, the training part
included). A shape or a level that the training part already reaches therefore never counts as
confident, and the scores need no normalisation: a ratio of two peaks of one score is unit-free.

Windows come from a geometric sweep (``sweep_windows``), not from the estimated period: a wrong
period estimate cannot push every window off the anomaly's scale.

Kinds (``w`` = window, statistics centred on the point, then smoothed by a centred moving mean of
``w`` and tapered to zero over the series' first and last ``(1 + taper) w`` points, where rolling
windows and joins are truncated):

* ``ptp``, ``ptp_diff``, ``ptp_acc``: rolling peak-to-peak of the signal, its first and its
  second differences (level, slope and curvature bursts);
* ``std_acc``: rolling std of the second differences (noise bursts);
* ``ptp_inv``, ``std_acc_inv``: ``mean / max(stat, floor * mean)``: high where the signal or its
  noise goes flat (dropouts, frozen sensors);
* ``small_diff``, ``large_diff``: share of the window whose absolute first difference is at most
  (above) the series' ``small_quantile`` of it (a stuck or a jittering stretch);
* ``cross_diff``: share of sign changes of the first difference (oscillation frequency);
* ``mp_novelty``: z-normalised AB-join distance of each scored subsequence to its nearest TRAINING
  subsequence (over the training part: each one's distance to its nearest other one); ``np_novelty``: the same divided by that neighbour's own nearest-neighbour distance
  within training (a local-density ratio: far, relative to how unusual the neighbour already is);
* ``mp_outlier``, ``np_outlier``: the same with the self-join of the whole series (discords,
  tolerant of a drift between training and test).

The join scores are multiplied by an activity weight that vanishes on near-constant stretches,
where z-normalisation inflates distances of pure noise. Joins run on block means of at most
``max_join_points`` points (linear-time statistics always run at full resolution).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from capmix.detectors.classic import aggregate, expand
from capmix.detectors.confidence import peak_ratio
from capmix.detectors.matrix_profile import stump

__all__ = ["ROLL_KINDS", "JOIN_KINDS", "NOVELTY_KINDS", "activity_weight", "candidate_ratio", "edge_taper", "sweep_candidates",
           "sweep_windows", "whole_scores"]

ROLL_KINDS = ("ptp", "ptp_diff", "ptp_acc", "ptp_inv", "small_diff", "large_diff", "cross_diff",
              "std_acc", "std_acc_inv")
JOIN_KINDS = ("mp_novelty", "np_novelty", "mp_outlier", "np_outlier")


def sweep_windows(min_window: int, max_window: int, growth: float) -> list[int]:
    """Geometric window sizes ``min_window * growth**k`` up to ``max_window`` (distinct ints)."""
    if min_window < 2 or max_window < min_window or growth <= 1.0:
        raise ValueError(f"window sweep needs 2 <= min_window <= max_window and growth > 1, "
                         f"got {min_window}, {max_window}, {growth}")
    k = int(np.floor(np.log(max_window / min_window) / np.log(growth) + 1e-9)) + 1
    return sorted({int(min_window * growth**i) for i in range(k)})


def edge_taper(n: int, window: int, taper: float) -> np.ndarray:
    """Weights: 0 on the first/last ``window`` points, a linear ramp over the next ``taper * window``."""
    ramp = max(1, int(round(taper * window)))
    i = np.arange(n, dtype=np.float64)
    up = np.clip((i - window + 1) / ramp, 0.0, 1.0)
    return np.minimum(up, up[::-1])


def _centred(series: pd.Series, window: int) -> pd.core.window.Rolling:
    return series.rolling(max(2, window), center=True, min_periods=1)


def activity_weight(ptp: np.ndarray, window: int, lower: float = 0.25, upper: float = 0.75,
                    const: float = 0.05, min_mean: float = 0.5) -> np.ndarray:
    """In [0, 1]: 0 where the rolling peak-to-peak is below ``lower`` x its mean (ramping to 1 at
    ``upper`` x), and 0 within ``window`` of a stretch below ``const`` x the mean (a flat line); all 0
    when the mean weight is below ``min_mean`` (a mostly quiet series: joins there measure noise)."""
    mean = float(np.mean(ptp))
    if mean <= 0:
        return np.zeros_like(ptp)
    w = np.clip((ptp - lower * mean) / ((upper - lower) * mean), 0.0, 1.0)
    flat = pd.Series((ptp <= const * mean).astype(np.float64))
    w[_centred(flat, 2 * window).max().to_numpy() > 0] = 0.0
    return w if w.mean() >= min_mean else np.zeros_like(w)


def _roll(x: np.ndarray, window: int, kinds: Sequence[str], small_quantile: float,
          inv_floor: float) -> dict[str, np.ndarray]:
    d = np.diff(x, prepend=x[0])
    a = np.diff(d, prepend=d[0])
    out: dict[str, np.ndarray] = {}

    def ptp(v: np.ndarray) -> np.ndarray:
        r = _centred(pd.Series(v), window)
        return (r.max() - r.min()).to_numpy()

    def share(cond: np.ndarray) -> np.ndarray:
        return _centred(pd.Series(cond.astype(np.float64)), window).mean().to_numpy()

    def inv(v: np.ndarray) -> np.ndarray:
        m = float(np.mean(v))
        return m / np.maximum(v, inv_floor * m) if m > 0 else np.zeros_like(v)

    need = set(kinds)
    if need & {"ptp", "ptp_inv"}:
        p = ptp(x)
        out["ptp"], out["ptp_inv"] = p, inv(p)
    if "ptp_diff" in need:
        out["ptp_diff"] = ptp(d)
    if "ptp_acc" in need:
        out["ptp_acc"] = ptp(a)
    if need & {"std_acc", "std_acc_inv"}:
        s = _centred(pd.Series(a), window).std(ddof=0).to_numpy()
        out["std_acc"], out["std_acc_inv"] = s, inv(s)
    if need & {"small_diff", "large_diff"}:
        ad = np.abs(d)
        q = float(np.quantile(ad, small_quantile))
        out["small_diff"], out["large_diff"] = share(ad <= q), share(ad > q)
    if "cross_diff" in need:
        out["cross_diff"] = share(np.concatenate([[False], d[1:] * d[:-1] < 0]))
    return {k: v for k, v in out.items() if k in need}


def _profile(a: np.ndarray, m: int, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Matrix profile distances and nearest-neighbour indices (self-join, or AB-join to ``b``)."""
    out = stump(a, m, b)
    p = np.asarray(out[:, 0], dtype=np.float64)
    p[~np.isfinite(p)] = 0.0
    return p, np.asarray(out[:, 1], dtype=np.int64)


def _joins(x: np.ndarray, n_train: int, window: int, kinds: Sequence[str], max_points: int,
           min_join_window: int, weight: np.ndarray) -> dict[str, np.ndarray]:
    """Join scores of the whole series, point-centred, at block-mean resolution when long."""
    n = x.shape[0]
    f = max(1, -(-n // max_points))
    m = int(round(window / f))
    if m < min_join_window:
        return {}
    xs, nt = aggregate(x, f), n_train // f
    if nt < 2 * m or xs.shape[0] - nt < 2 * m:
        return {}
    out: dict[str, np.ndarray] = {}

    def place(profile: np.ndarray, offset: int) -> np.ndarray:
        # subsequence j covers points [j, j+m) of the block series: point t gets the one centred on it
        full = np.zeros(xs.shape[0])
        full[offset + m // 2: offset + m // 2 + profile.shape[0]] = profile
        return expand(full, f, n) * weight

    if {"mp_novelty", "np_novelty"} & set(kinds):
        train_p, train_nn = _profile(xs[:nt], m, None)
        p, nn = _profile(xs[nt:], m, xs[:nt])
        with np.errstate(divide="ignore", invalid="ignore"):
            np_test = np.nan_to_num(p / train_p[nn], nan=0.0, posinf=0.0)
            np_train = np.nan_to_num(train_p / train_p[train_nn], nan=0.0, posinf=0.0)
        # the training part scores its subsequences against the OTHER training subsequences: the
        # level known-normal data reaches, the unit of the output (``candidate_ratio`` leaves it
        # out of the competition)
        out["mp_novelty"] = place(np.r_[train_p, np.zeros(nt - train_p.shape[0]), p], 0)
        out["np_novelty"] = place(np.r_[np_train, np.zeros(nt - np_train.shape[0]), np_test], 0)
    if {"mp_outlier", "np_outlier"} & set(kinds):
        p, nn = _profile(xs, m, None)
        out["mp_outlier"] = place(p, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["np_outlier"] = place(np.nan_to_num(p / p[nn], nan=0.0, posinf=0.0), 0)
    return {k: v for k, v in out.items() if k in kinds}


def whole_scores(x: np.ndarray, n_train: int, window: int, kinds: Sequence[str] = ROLL_KINDS + JOIN_KINDS,
                 small_quantile: float = 0.1, inv_floor: float = 0.1, ratio_cap: float = 10.0,
                 taper: float = 3.0, max_join_points: int = 20_000,
                 min_join_window: int = 8) -> dict[str, np.ndarray]:
    """Every requested kind's non-negative score over the whole series ``x`` (training first).

    ``ratio_cap`` bounds the ``np_*`` ratios (a neighbour at distance ~0 would make any ratio
    infinite); ``taper`` sets the edge ramp (``edge_taper``); joins whose window is below
    ``min_join_window`` block points are skipped.
    """
    unknown = set(kinds) - set(ROLL_KINDS + JOIN_KINDS)
    if unknown:
        raise ValueError(f"unknown sweep kinds {sorted(unknown)}; choose from {ROLL_KINDS + JOIN_KINDS}")
    x = np.asarray(x, dtype=np.float64)
    roll_kinds = [k for k in kinds if k in ROLL_KINDS]
    join_kinds = [k for k in kinds if k in JOIN_KINDS]
    # the joins' activity weight needs the signal's peak-to-peak: computed once with the rest
    out = _roll(x, window, roll_kinds + (["ptp"] if join_kinds else []), small_quantile, inv_floor)
    if join_kinds:
        weight = activity_weight(out["ptp"] if "ptp" in roll_kinds else out.pop("ptp"), window)
        out.update(_joins(x, n_train, window, join_kinds, max_join_points, min_join_window, weight))
    mask = edge_taper(x.shape[0], window, taper)
    for k, v in out.items():
        v = np.minimum(v, ratio_cap) if k.startswith("np_") else v
        out[k] = _centred(pd.Series(v), window).mean().to_numpy() * mask
    return out


NOVELTY_KINDS = ("mp_novelty", "np_novelty")


def candidate_ratio(kind: str, window: int, scores: np.ndarray, train_scores: np.ndarray) -> float:
    """The selection signal of one candidate: ``peak_ratio`` with the exclusion of its window. The
    novelty kinds compete only within the scored part: their training part is a self-join (nearest
    OTHER training subsequence), a different question from the join against training, and a
    one-off normal training shape would outrank every test anomaly."""
    return peak_ratio(scores, int(window), None if kind in NOVELTY_KINDS else train_scores)


def sweep_candidates(train: np.ndarray, test: np.ndarray, windows: Sequence[int],
                     kinds: Sequence[str] = ROLL_KINDS + JOIN_KINDS, min_train_windows: int = 10,
                     **options) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Yield ``(kind, window, test_scores, train_scores)`` for every window of the sweep that the
    training part holds ``min_train_windows`` times (``options`` go to ``whole_scores``)."""
    x = np.concatenate([np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)])
    n = train.shape[0]
    for w in windows:
        if w * min_train_windows > n:
            continue
        for kind, s in whole_scores(x, n, int(w), kinds, **options).items():
            yield kind, int(w), s[n:], s[:n]
