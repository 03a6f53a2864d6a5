"""Drift of a new day against the training history: the population stability index (PSI).

Why PSI: it is the measure operations teams already read (0.1 "some shift", 0.25 "act"), it is
bounded by the number of bins rather than by the sample size (a two-sample test on ~1,000 points
per day rejects for differences too small to matter), and it is cheap. Two views per channel, each
binned on the history's quantiles: the values themselves (level and spread) and the first
differences (how fast the signal moves: a change of shape or noise that keeps the level). The day's
drift is the largest PSI over series, channels and the two views; ``drifted`` is that value against
params ``nightly.drift_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capmix.data.canonical import SERIES_COL

__all__ = ["DriftReport", "drift_report", "psi"]

#: Share given to an empty bin, so that a bin one side never fills does not make PSI infinite.
EMPTY_BIN = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` on the reference's quantile bins."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size < bins or cur.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1) / cur.size
    p, q = np.maximum(p, EMPTY_BIN), np.maximum(q, EMPTY_BIN)
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True)
class DriftReport:
    """PSI per (series, channel, view) and the verdict."""

    threshold: float
    values: dict[str, float] = field(default_factory=dict)  # "series/channel/view" -> PSI

    @property
    def max_psi(self) -> float:
        finite = [v for v in self.values.values() if np.isfinite(v)]
        return max(finite) if finite else float("nan")

    @property
    def drifted(self) -> bool:
        return bool(np.isfinite(self.max_psi) and self.max_psi > self.threshold)

    @property
    def worst(self) -> str:
        finite = {k: v for k, v in self.values.items() if np.isfinite(v)}
        return max(finite, key=finite.get) if finite else ""


def drift_report(reference: pd.DataFrame, day: pd.DataFrame, channels: list[str], bins: int,
                 threshold: float) -> DriftReport:
    """PSI of every series of ``day`` against the same series in ``reference`` (the training window).

    A series the reference does not hold yet has no drift to measure and is left out."""
    values: dict[str, float] = {}
    for name, cur in day.groupby(SERIES_COL, sort=True):
        ref = reference[reference[SERIES_COL] == name]
        if ref.empty:
            continue
        for ch in channels:
            r, c = ref[ch].to_numpy(dtype=np.float64), cur[ch].to_numpy(dtype=np.float64)
            values[f"{name}/{ch}/value"] = psi(r, c, bins)
            values[f"{name}/{ch}/diff"] = psi(np.diff(r), np.diff(c), bins)
    return DriftReport(threshold=threshold, values=values)
