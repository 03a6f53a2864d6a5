"""Classic, label-free point scores for a (train, test) split of one univariate series.

Every score function takes ``train`` (N,), ``test`` (M,) and a ``window`` and returns one score
per TEST point, higher = more anomalous, robust-z-normalised with statistics of the same score on
the TRAINING part where one exists (so a threshold can later be set on training data alone):

* ``rolling_score``: centred rolling std or peak-to-peak of the signal or of its first
  differences; ``inverse=True`` flips the sign (low variability = anomalous: flat lines, dropouts).
* ``mp_novelty``: matrix-profile AB-join, each test subsequence's distance to its nearest
  neighbour in the train part (a novelty score: "has this shape been seen in training?").
* ``mp_discord``: self-join of train + test, test part (discords: shapes with no close match
  anywhere else in the series, tolerant of a drift between train and test).

``aggregate``/``expand`` down-sample by block means and map scores back, so quadratic joins run
on a few tens of points per period. ``candidate_scores`` builds the period-tied candidate set.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

__all__ = [
    "aggregate",
    "candidate_scores",
    "expand",
    "moving_mean",
    "mp_discord",
    "mp_novelty",
    "robust_z",
    "rolling_score",
]


def moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving mean (shrinking at the edges); ``width <= 1`` returns ``x`` unchanged."""
    if width <= 1:
        return x
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    n, h = x.shape[0], width // 2
    idx = np.arange(n)
    lo, hi = np.clip(idx - h, 0, n), np.clip(idx - h + width, 0, n)
    return (c[hi] - c[lo]) / (hi - lo)


def aggregate(x: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` points (the last, partial block is averaged too)."""
    if factor <= 1:
        return np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    pad = (-n) % factor
    s = np.add.reduceat(np.asarray(x, dtype=np.float64), np.arange(0, n, factor))
    counts = np.full(s.shape[0], factor, dtype=np.float64)
    counts[-1] = factor - pad
    return s / counts


def expand(scores: np.ndarray, factor: int, length: int) -> np.ndarray:
    """Map block scores back to ``length`` points (each block's score on all its points)."""
    return np.repeat(scores, factor)[:length] if factor > 1 else scores[:length]


def robust_z(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(values - median(ref)) / (1.4826 MAD(ref)); the scale is floored so constant ref is safe."""
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return values
    med = float(np.median(ref))
    mad = 1.4826 * float(np.median(np.abs(ref - med)))
    floor = 1e-6 * max(float(np.std(ref)), abs(med), 1e-12)
    return (values - med) / max(mad, floor)


def rolling_score(
    train: np.ndarray,
    test: np.ndarray,
    window: int,
    stat: str = "std",
    diff: bool = False,
    inverse: bool = False,
) -> np.ndarray:
    """Centred rolling ``stat`` (``std`` | ``ptp``) of the signal or its differences, robust-z
    against the same statistic over the training part; ``inverse`` scores low values."""
    x = np.concatenate([train, test]).astype(np.float64)
    if diff:
        x = np.diff(x, prepend=x[0])  # same length; the first difference is 0
    r = pd.Series(x).rolling(max(2, window), center=True, min_periods=1)
    s = r.std(ddof=0) if stat == "std" else r.max() - r.min()
    s = s.to_numpy()
    n = train.shape[0]
    # skip the first window of training (its rolling window reaches before the series start)
    z = robust_z(s, s[min(window, n // 2) : n])
    return -z[n:] if inverse else z[n:]


def _centre_profile(profile: np.ndarray, m: int, first: int, length: int) -> np.ndarray:
    """Point scores from a subsequence profile: point t gets the subsequence centred on it.

    ``first`` is the profile index whose subsequence starts at point 0 of the output; points
    whose centred subsequence does not exist take the nearest existing value.
    """
    starts = np.arange(length) - m // 2 + first
    return profile[np.clip(starts, 0, profile.shape[0] - 1)]


def _stump(a: np.ndarray, m: int, b: np.ndarray | None, normalize: bool) -> np.ndarray:
    """Matrix profile distances of ``a`` (self-join when ``b`` is None, else AB-join to ``b``)."""
    import stumpy  # local import: only the join scores need it (numba compile on first call)

    if b is None:
        out = stumpy.stump(a, m, normalize=normalize)
    else:
        out = stumpy.stump(a, m, T_B=b, ignore_trivial=False, normalize=normalize)
    p = np.asarray(out[:, 0], dtype=np.float64)
    p[~np.isfinite(p)] = np.nan
    return np.nan_to_num(p, nan=np.nanmax(p) if np.isfinite(p).any() else 0.0)


def mp_novelty(
    train: np.ndarray, test: np.ndarray, window: int, normalize: bool = True, ref: np.ndarray | None = None
) -> np.ndarray:
    """AB-join novelty: distance of the test subsequence centred on each test point to its nearest
    neighbour in ``train``. Normalised by ``ref`` (e.g. the train part of ``mp_discord``'s profile)
    when given, else by the z-normalised distance range 2 sqrt(m)."""
    m = int(window)
    a = np.concatenate([train[-m:], test])  # m points of context so early test points are centred
    p = _centre_profile(_stump(a, m, train, normalize), m, m, test.shape[0])
    if ref is not None:
        return robust_z(p, ref)
    return p / (2.0 * np.sqrt(m)) if normalize else p


def mp_discord(
    train: np.ndarray, test: np.ndarray, window: int, normalize: bool = True, return_train: bool = False
):
    """Self-join discord score of train + test, test part, robust-z against the train part.

    With ``return_train`` also returns the raw train-part profile (a reference for
    ``mp_novelty``: the train subsequences' nearest-neighbour distances)."""
    m, n = int(window), train.shape[0]
    p = _stump(np.concatenate([train, test]), m, None, normalize)
    full = _centre_profile(p, m, 0, n + test.shape[0])
    ref = full[m : n - m] if n > 3 * m else full[:n]
    z = robust_z(full[n:], ref)
    return (z, ref) if return_train else z


def _factor(period: int, length: int, points_per_period: int, max_len: int) -> int:
    """Down-sampling factor: ~``points_per_period`` per period, at most ``max_len`` points."""
    return max(1, period // points_per_period, -(-length // max_len))


def candidate_scores(
    train: np.ndarray,
    test: np.ndarray,
    period: int | None,
    roll_mults: tuple[float, ...] = (0.5, 1.0, 2.0),
    mp_mults: tuple[float, ...] = (0.5, 1.0, 2.0),
    points_per_period: int = 32,
    max_len: int = 40_000,
    default_period: int = 100,
    kinds: tuple[str, ...] = ("roll", "mp_novelty", "mp_discord", "mp_raw"),
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield ``(kind, window, scores)`` candidates with windows tied to ``period`` (points).

    Rolling statistics run at full resolution (they are linear-time and noise anomalies live in
    the high frequencies); joins run on block means of ``_factor`` points. ``window`` is in
    original points in every case.
    """
    p = int(period or default_period)
    if "roll" in kinds:
        for mult in roll_mults:
            w = max(4, int(round(mult * p)))
            for stat in ("std", "ptp"):
                for diff in (False, True):
                    name = f"{stat}{'_diff' if diff else ''}"
                    yield name, w, rolling_score(train, test, w, stat, diff)
                    yield name + "_inv", w, rolling_score(train, test, w, stat, diff, inverse=True)
    if not any(k.startswith("mp") for k in kinds):
        return
    f = _factor(p, train.shape[0] + test.shape[0], points_per_period, max_len)
    tr, te = aggregate(train, f), aggregate(test, f)
    for mult in mp_mults:
        m = max(4, int(round(mult * p / f)))
        if m * 3 > tr.shape[0] or m >= te.shape[0]:
            continue
        ref = None
        if "mp_discord" in kinds:
            z, ref = mp_discord(tr, te, m, return_train=True)
            yield "mp_discord", m * f, expand(z, f, test.shape[0])
        if "mp_novelty" in kinds:
            yield "mp_novelty", m * f, expand(mp_novelty(tr, te, m, ref=ref), f, test.shape[0])
        if "mp_raw" in kinds:
            yield "mp_raw", m * f, expand(mp_novelty(tr, te, m, normalize=False), f, test.shape[0])
