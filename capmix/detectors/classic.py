"""Classic, label-free point scores for a (train, test) split of one univariate series.

Every score function takes ``train`` (N,), ``test`` (M,) and a ``window`` and returns one score
per TEST point, higher = more anomalous, robust-z-normalised with statistics of the same score on
the TRAINING part where one exists (so a threshold can later be set on training data alone):

* ``rolling_score``: centred rolling std or peak-to-peak of the signal or of its first
  differences; ``inverse=True`` flips the sign (low variability = anomalous: flat lines, dropouts).
* ``mp_novelty``: matrix-profile AB-join, each test subsequence's distance to its nearest
  neighbour in the train part (a novelty score: "has this shape been seen in training?").
* ``mp_discord``: self-join of the test part (discords: shapes with no close match anywhere
  else in the test part, tolerant of a drift between train and test).

Both joins are normalised by ``train_profile``, the training part's self-join.

``aggregate``/``expand`` down-sample by block means and map scores back, so quadratic joins run
on a few tens of points per period. ``candidate_scores`` builds the period-tied candidate set.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from capmix.detectors.matrix_profile import stump

__all__ = [
    "aggregate",
    "candidate_scores",
    "expand",
    "moving_mean",
    "mp_discord",
    "mp_novelty",
    "robust_z",
    "rolling_score",
    "train_profile",
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
    with_train: bool = False,
):
    """Centred rolling ``stat`` (``std`` | ``ptp``) of the signal or its differences, robust-z
    against the same statistic over the training part; ``inverse`` scores low values.

    With ``with_train`` also returns the score over the training part (edges trimmed), the
    known-normal reference that ``confidence.peak_confidence`` can compare the test peak with.
    """
    x = np.concatenate([train, test]).astype(np.float64)
    if diff:
        x = np.diff(x, prepend=x[0])  # same length; the first difference is 0
    r = pd.Series(x).rolling(max(2, window), center=True, min_periods=1)
    s = r.std(ddof=0) if stat == "std" else r.max() - r.min()
    s = s.to_numpy()
    n = train.shape[0]
    # trim a window at each end of training: its windows reach past the series start or into test
    cut = min(window, n // 4)
    z = robust_z(s, s[cut : n - cut])
    z = -z if inverse else z
    return (z[n:], z[cut : n - cut]) if with_train else z[n:]


def _centre_profile(profile: np.ndarray, m: int, first: int, length: int) -> np.ndarray:
    """Point scores from a subsequence profile: point t gets the subsequence centred on it.

    ``first`` is the profile index whose subsequence starts at point 0 of the output; points
    whose centred subsequence does not exist take the nearest existing value.
    """
    starts = np.arange(length) - m // 2 + first
    return profile[np.clip(starts, 0, profile.shape[0] - 1)]


def _stump(a: np.ndarray, m: int, b: np.ndarray | None, normalize: bool) -> np.ndarray:
    """Matrix profile distances of ``a`` (self-join when ``b`` is None, else AB-join to ``b``)."""
    out = stump(a, m, b, normalize=normalize)
    p = np.asarray(out[:, 0], dtype=np.float64)
    p[~np.isfinite(p)] = np.nan
    return np.nan_to_num(p, nan=np.nanmax(p) if np.isfinite(p).any() else 0.0)


def train_profile(train: np.ndarray, window: int, normalize: bool = True) -> np.ndarray:
    """Self-join profile of the training part, one value per training subsequence start: the
    nearest-neighbour distances of known-normal shapes (the reference of both join scores)."""
    return _stump(np.asarray(train, dtype=np.float64), int(window), None, normalize)


def _join_score(train: np.ndarray, a: np.ndarray, b: np.ndarray | None, m: int, first: int, length: int,
                normalize: bool, ref: np.ndarray | None) -> np.ndarray:
    """A join of ``a`` (against ``b``, or itself), centred on points, robust-z against ``ref``
    (``train_profile``; computed when None)."""
    ref = train_profile(train, m, normalize) if ref is None else ref
    return robust_z(_centre_profile(_stump(a, m, b, normalize), m, first, length), ref)


def mp_novelty(train: np.ndarray, test: np.ndarray, window: int, normalize: bool = True,
               ref: np.ndarray | None = None) -> np.ndarray:
    """AB-join novelty: distance of the test subsequence centred on each test point to its nearest
    neighbour in ``train``, robust-z against ``ref`` (``train_profile``; computed when None)."""
    m = int(window)
    a = np.concatenate([train[-m:], test])  # m points of context so early test points are centred
    return _join_score(train, a, train, m, m, test.shape[0], normalize, ref)


def mp_discord(train: np.ndarray, test: np.ndarray, window: int, normalize: bool = True,
               ref: np.ndarray | None = None) -> np.ndarray:
    """Self-join discord score of the test part (each test subsequence's nearest neighbour
    elsewhere in the test part), robust-z against ``ref`` (``train_profile``; computed when None).

    A single anomaly has no match in the test part even when train and test drift apart.
    """
    m = int(window)
    return _join_score(train, np.asarray(test, dtype=np.float64), None, m, 0, test.shape[0], normalize, ref)


def _factor(period: int, length: int, points_per_period: int, max_len: int) -> int:
    """Down-sampling factor: ~``points_per_period`` per period, at most ``max_len`` points."""
    return max(1, period // points_per_period, -(-length // max_len))


def candidate_scores(
    train: np.ndarray,
    test: np.ndarray,
    period: int | None,
    roll_mults: tuple[float, ...] = (0.5, 1.0, 2.0),
    mp_mults: tuple[float, ...] = (1.0, 2.0),
    points_per_period: int = 32,
    max_len: int = 40_000,
    default_period: int = 100,
    roll_kinds: tuple[str, ...] = ("std_diff", "ptp_diff"),
    mp_kinds: tuple[str, ...] = ("mp_novelty", "mp_discord", "mp_raw_novelty", "mp_raw_discord"),
    flat_kinds: tuple[str, ...] = (),
    flat_mults: tuple[float, ...] = (2.0, 4.0),
    mp_smooth: float = 0.0,
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Yield ``(kind, window, test_scores, train_scores)`` with windows tied to ``period`` (points).

    ``train_scores`` is the same score over the training part (known normal), in the same units.
    Defaults are the set chosen on the odd UCR series: signal-level and inverse rolling stats
    (``std``, ``ptp``, ``*_inv``) are available but off, they won spurious selections more often
    than real ones; half-period joins were weak too.
    ``flat_kinds`` are inverse rolling statistics (``std_inv``, ``std_diff_inv``, ...: low
    variability scores high, for flat lines and dropouts) on their own multiples ``flat_mults``:
    a window of several periods, so one period's quiet phase is no drop (chosen on the odd UCR
    series, where it helped; the held-out even half did not confirm it: docs/results.md; off by default).
    ``mp_smooth`` > 0 replaces each join score (and its training reference) by its centred moving
    mean over ``mp_smooth`` times the join window: the block-mean joins are jagged, and their
    smoothed top peak stands out more clearly (0.5 chosen on the odd UCR series; off by default).
    Rolling statistics run at full resolution (they are linear-time and noise anomalies live in
    the high frequencies); joins run on block means of ``_factor`` points. ``window`` is in
    original points in every case.
    """
    p = int(period or default_period)
    for mult in roll_mults if roll_kinds else ():
        w = max(4, int(round(mult * p)))
        for kind in roll_kinds:
            stat, diff, inv = kind.split("_")[0], "_diff" in kind, kind.endswith("_inv")
            yield (kind, w, *rolling_score(train, test, w, stat, diff, inv, with_train=True))
    for mult in flat_mults if flat_kinds else ():
        w = max(4, int(round(mult * p)))
        for kind in flat_kinds:
            if not kind.endswith("_inv"):
                raise ValueError(f"flat kind {kind!r}: an inverse rolling statistic (std_inv, ptp_diff_inv, ...)")
            yield (kind, w, *rolling_score(train, test, w, kind.split("_")[0], "_diff" in kind, True, with_train=True))
    if not mp_kinds:
        return
    f = _factor(p, train.shape[0] + test.shape[0], points_per_period, max_len)
    tr, te = aggregate(train, f), aggregate(test, f)
    for mult in mp_mults:
        m = max(4, int(round(mult * p / f)))
        if m * 4 > tr.shape[0] or m * 2 >= te.shape[0]:
            continue
        for raw in (False, True):
            kinds = [k for k in mp_kinds if ("_raw_" in k) == raw]
            if not kinds:
                continue
            ref = train_profile(tr, m, normalize=not raw)
            ref_z = expand(robust_z(ref, ref), f, train.shape[0])
            sw = int(round(mp_smooth * m * f))
            ref_z = moving_mean(ref_z, sw) if sw > 1 else ref_z
            for kind in kinds:
                fn = mp_novelty if kind.endswith("novelty") else mp_discord
                z = expand(fn(tr, te, m, normalize=not raw, ref=ref), f, test.shape[0])
                yield kind, m * f, moving_mean(z, sw) if sw > 1 else z, ref_z
