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

__all__ = ["peak_confidence", "select_candidate", "top_peaks"]


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


def peak_confidence(scores: np.ndarray, exclusion: int) -> float:
    """(top - second) / (top - median) in [0, 1]: 0 when the second peak (outside +-exclusion of
    the top) is as high as the top, near 1 when the top stands alone far above the usual level.

    The median is the baseline, so a score that is high everywhere or flat gives ~0, and the
    measure does not depend on the score's units or offset.
    """
    s = _clean(scores)
    finite = s[np.isfinite(s)]
    peaks = top_peaks(s, exclusion, 2)
    if len(peaks) < 2 or finite.size == 0:
        return 0.0
    (_, top), (_, second) = peaks
    height = top - float(np.median(finite))
    return float((top - second) / height) if height > 0 else 0.0


def select_candidate(
    candidates: Sequence[tuple[str, int, np.ndarray]], exclusion: int | None = None
) -> tuple[int, list[float]]:
    """Index of the most confident candidate and every candidate's confidence.

    Candidates are ``(kind, window, scores)``; the exclusion zone is ``max(window, exclusion)``
    so a wide window's own broad peak does not count as a second peak.
    """
    conf = [peak_confidence(s, max(int(w), int(exclusion or 0))) for _, w, s in candidates]
    return int(np.argmax(conf)), conf
