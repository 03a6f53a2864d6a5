"""How clearly one peak stands out in a score series, and picking the most confident candidate.

The UCR archive asks for ONE location per series, so among several candidate scores the useful one
is the one whose highest peak stands alone: after masking +-exclusion around the top peak, the
next-highest value should be far below it. ``peak_confidence`` measures that gap relative to the
top peak's height above the score's typical level (median), which makes it invariant to any
positive affine rescaling of the score: candidates normalised differently compare fairly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["peak_confidence", "peak_ratio", "select_candidate", "top_peaks"]


def _clean(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.isfinite(s), s, -np.inf)


def top_peaks(scores: np.ndarray, exclusion: int, k: int = 5) -> list[tuple[int, float]]:
    """Up to ``k`` (index, value) peaks, highest first, each masking +-``exclusion`` around it."""
    s = _clean(scores).copy()
    out = []
    for _ in range(k):
        i = int(np.argmax(s))
        if not np.isfinite(s[i]):
            break
        out.append((i, float(s[i])))
        s[max(0, i - exclusion) : i + exclusion + 1] = -np.inf
    return out


def peak_confidence(
    scores: np.ndarray, exclusion: int, reference: np.ndarray | None = None, ref_quantile: float = 0.999
) -> float:
    """(top - second) / (top - median): 0 when the second peak (outside +-exclusion of the top)
    is as high as the top, near 1 when the top stands alone far above the usual level.

    ``reference`` is the same score over known-normal data (the training part): its
    ``ref_quantile`` (not the max, which one odd training stretch would set) counts as a
    competing peak, so a peak no higher than what normal data already reaches gets a confidence
    <= 0 (negative values are kept: they still rank candidates). The median is the
    baseline, so the measure does not depend on the score's units or offset.
    """
    s = _clean(scores)
    finite = s[np.isfinite(s)]
    peaks = top_peaks(s, exclusion, 2)
    if not peaks or finite.size == 0:
        return 0.0
    top = peaks[0][1]
    second = peaks[1][1] if len(peaks) > 1 else -np.inf
    if reference is not None and np.isfinite(reference).any():
        ref = np.asarray(reference, dtype=np.float64)
        second = max(second, float(np.quantile(ref[np.isfinite(ref)], ref_quantile)))
    height = top - float(np.median(finite))
    if height <= 0 or not np.isfinite(second):
        return 0.0
    return float((top - second) / height)


def peak_ratio(scores: np.ndarray, exclusion: int, reference: np.ndarray | None = None) -> float:
    """top / second for NON-NEGATIVE scores: the highest local peak of ``scores`` over the next one,
    where the next one is the highest local peak outside +-``exclusion`` of the top or anywhere in
    ``reference`` (the same score over the training part; a level normal data reaches is no
    anomaly). A local peak is the maximum within +-``exclusion // 2``, so the top's own shoulders
    never count as the second. 1 means "no peak stands out"; below 1 the training part has a higher
    peak; 0 when the score is nowhere positive or nothing but the top is. The ratio is invariant to rescaling, not to an
    offset, so it is meant for scores whose zero means "nothing unusual" (:mod:`capmix.detectors.sweep`).
    """
    s = _clean(scores)
    if s.size == 0:
        return 0.0
    half = max(1, exclusion // 2)
    local = pd.Series(s).rolling(2 * half + 1, center=True, min_periods=1).max().to_numpy()
    peaks = np.where(s >= local, s, -np.inf)
    i = int(np.argmax(peaks))
    top = float(peaks[i])
    if not np.isfinite(top) or top <= 0:
        return 0.0
    peaks[max(0, i - exclusion): i + exclusion + 1] = -np.inf
    second = float(peaks.max())
    if reference is not None and np.isfinite(reference).any():
        second = max(second, float(np.max(np.asarray(reference, dtype=np.float64)[np.isfinite(reference)])))
    # nothing else positive: a lone non-zero stretch is usually an artefact (a join weighted to
    # zero elsewhere), not a confident peak
    return top / second if second > 0 else 0.0


def select_candidate(candidates: Sequence[tuple], exclusion: int | None = None) -> tuple[int, list[float]]:
    """Index of the most confident candidate and every candidate's confidence.

    Candidates are ``(kind, window, scores)`` or ``(kind, window, scores, train_scores)``; the
    exclusion zone is ``max(window, exclusion)`` so a wide window's own broad peak does not count
    as a second peak.
    """
    conf = [
        peak_confidence(c[2], max(int(c[1]), int(exclusion or 0)), c[3] if len(c) > 3 else None)
        for c in candidates
    ]
    return int(np.argmax(conf)), conf
