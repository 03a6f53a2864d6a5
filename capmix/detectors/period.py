"""Label-free period estimation for a training series (autocorrelation based).

``estimate_period`` is meant as the single implementation for the package: it detrends, takes
the FFT autocorrelation, skips the lags where the ACF is still falling from lag 0 and returns the
first ACF peak that is nearly as high as the best one (so a multiple of the period is not chosen
over the period itself). ``None`` when the ACF has no clear peak (aperiodic, constant, too short).
"""

from __future__ import annotations

import numpy as np

__all__ = ["acf", "estimate_period"]


def acf(v: np.ndarray, max_lag: int) -> np.ndarray:
    """Biased autocorrelation of a centred 1-D series for lags 0..max_lag (acf[0] = 1)."""
    n = v.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero-padded power of two: no circular wrap
    f = np.fft.rfft(v, size)
    r = np.fft.irfft(f * np.conj(f), size)[: max_lag + 1]
    return r / r[0] if r[0] > 0 else np.zeros(max_lag + 1)


def _detrend(x: np.ndarray, max_period: int) -> np.ndarray:
    """Remove the linear trend and the wander slower than ~3 periods (moving mean), keep shape."""
    t = np.arange(x.shape[0], dtype=np.float64)
    v = x - np.polyval(np.polyfit(t, x, 1), t)
    k = 3 * max_period + 1
    if x.shape[0] > 4 * k:
        # a moving mean over 3*max_period barely touches periods <= max_period but removes drift
        c = np.cumsum(np.concatenate([[0.0], v]))
        h = k // 2
        lo = np.clip(np.arange(v.shape[0]) - h, 0, v.shape[0])
        hi = np.clip(np.arange(v.shape[0]) + h + 1, 0, v.shape[0])
        v = v - (c[hi] - c[lo]) / (hi - lo)
    return v - v.mean()


def _period_1d(x: np.ndarray, min_period: int, max_period: int, min_acf: float) -> int | None:
    """Period of one channel; see ``estimate_period``."""
    x = x[np.isfinite(x)]
    n = x.shape[0]
    max_period = min(max_period, n // 3)
    if max_period <= min_period or np.ptp(x) == 0:
        return None
    r = acf(_detrend(x.astype(np.float64), max_period), max_period + 1)
    # unbiased: the biased ACF's (1 - lag/n) envelope pulls every peak towards shorter lags
    r = r * n / (n - np.arange(r.shape[0]))
    # skip the lag-0 lobe: it ends where the ACF first rises again after falling below one half
    # (noise wiggles high on the lobe are no period; a multi-scale series whose ACF stays positive
    # over its first cycle still ends its lobe at the first trough)
    d = np.diff(r)
    rising = np.flatnonzero((d[:-1] <= 0) & (d[1:] > 0) & (r[1:-1] < 0.5))
    lobe_end = int(rising[0]) + 1 if rising.size else max_period
    start = max(min_period, lobe_end)
    seg = r[start : max_period + 1]
    inner = (seg[1:-1] >= seg[:-2]) & (seg[1:-1] >= seg[2:])
    peaks = np.flatnonzero(inner) + 1 + start
    if peaks.size == 0:
        return None
    best = r[peaks].max()
    if best < min_acf:
        return None
    # first peak at >= 85 % of the best: the fundamental rather than its multiples; then the
    # highest ACF within +-10 % of it, since noise splits a broad peak into early wiggles
    p0 = int(peaks[np.flatnonzero(r[peaks] >= 0.85 * best)[0]])
    lo, hi = max(start, int(0.9 * p0)), min(max_period, int(np.ceil(1.1 * p0)))
    return lo + int(np.argmax(r[lo : hi + 1]))


def estimate_period(
    x: np.ndarray,
    min_period: int = 4,
    max_period: int | None = None,
    min_acf: float = 0.2,
    max_points: int = 200_000,
) -> int | None:
    """Dominant period in points of a (T,) or (T, C) training series, or ``None``.

    ``max_period`` defaults to T // 3 (three cycles are needed to see a repeat). ``min_acf`` is the
    autocorrelation the chosen peak must reach. Series longer than ``max_points`` are estimated on
    their first ``max_points`` points (the period does not need more and it bounds the FFT). For
    several channels the median of the finite per-channel estimates is returned.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    x = x[:max_points]
    max_period = int(max_period or x.shape[0] // 3)
    found = [_period_1d(x[:, c], min_period, max_period, min_acf) for c in range(x.shape[1])]
    found = [p for p in found if p is not None]
    return int(round(float(np.median(found)))) if found else None
