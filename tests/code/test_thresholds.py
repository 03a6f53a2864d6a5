"""Tests for capmix.evaluation.thresholds: oracle sweep vs naive loop, validation threshold, UCR protocol."""

from __future__ import annotations

import numpy as np
import pytest

from capmix.evaluation.metrics import score_counts
from capmix.evaluation.thresholds import (
    TAUS,
    oracle_threshold,
    ucr_protocol,
    validation_threshold,
    widen_labels,
    zscore,
)


def _naive_oracle(scores: np.ndarray, gt: np.ndarray, metric: str) -> tuple[float, float]:
    """One score_counts call per tau: the readable reference for the vectorised sweep."""
    z = zscore(np.asarray(scores, dtype=float))
    best_tau, best_f1 = None, -1.0
    for tau in TAUS:
        f1 = score_counts(gt, z > tau).scores()[metric][2]
        if f1 > best_f1:
            best_tau, best_f1 = float(tau), f1
    return best_tau, best_f1


def test_tau_grid():
    assert len(TAUS) == 600
    assert TAUS[0] == -3.0 and TAUS[-1] == 2.99 and TAUS[300] == 0.0


@pytest.mark.parametrize("metric", ["rpa", "pa", "pw"])
def test_oracle_matches_naive_loop(metric):
    rng = np.random.default_rng(42)
    for case in range(30):
        T = int(rng.integers(5, 150))
        gt = (rng.random(T) < rng.uniform(0.0, 0.4)).astype(int)
        if case % 3 == 0:  # block anomalies with higher scores
            scores = rng.normal(size=T) + 2.0 * gt
        elif case % 3 == 1:  # coarse scores: many ties
            scores = rng.integers(0, 4, size=T).astype(float)
        else:
            scores = rng.random(T)
        res = oracle_threshold(scores, gt, metric=metric)
        tau, f1 = _naive_oracle(scores, gt, metric)
        assert res.tau == tau and res.f1 == f1, (case, metric)
        p, r, f = score_counts(gt, res.predictions).scores()[metric]
        assert (res.precision, res.recall, res.f1) == (p, r, f)
        assert np.array_equal(res.predictions, zscore(scores) > res.tau)


def test_oracle_perfect_separation():
    gt = np.array([0] * 20 + [1] * 3 + [0] * 20)
    scores = np.where(gt == 1, 5.0, 0.0) + np.linspace(0, 0.01, len(gt))
    res = oracle_threshold(scores, gt)
    assert res.f1 == 1.0 and res.precision == 1.0 and res.recall == 1.0
    assert res.predictions.tolist() == (gt == 1).tolist()


def test_oracle_edge_cases():
    # constant scores: z = 0 everywhere; any tau < 0 predicts all -> lowest tau kept on ties
    res = oracle_threshold(np.full(10, 0.3), np.array([0] * 5 + [1] * 5))
    assert res.tau == -3.0 and res.recall == 1.0
    # no anomalies: F1 = 0 for every tau -> first tau
    res = oracle_threshold(np.arange(10.0), np.zeros(10))
    assert res.tau == -3.0 and res.f1 == 0.0


def test_oracle_errors():
    with pytest.raises(ValueError, match="length"):
        oracle_threshold(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        oracle_threshold(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="only 0 and 1"):
        oracle_threshold(np.zeros(2), np.array([0, 3]))
    with pytest.raises(ValueError, match="unknown metric"):
        oracle_threshold(np.zeros(2), np.zeros(2), metric="f2")  # type: ignore[arg-type]


def test_validation_threshold():
    s = np.array([1.0, 2.0, 3.0, 4.0])
    assert validation_threshold(s) == pytest.approx(2.5 + 3.0 * np.std(s))
    assert validation_threshold(s, z=0.0) == 2.5
    with pytest.raises(ValueError, match="empty"):
        validation_threshold([])
    with pytest.raises(ValueError, match="NaN"):
        validation_threshold([1.0, np.inf])


def test_widen_labels():
    y = np.zeros(10, dtype=bool)
    y[5] = True
    assert widen_labels(y, 2).astype(int).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert widen_labels(y, 0).tolist() == y.tolist()
    assert widen_labels(y, 100).all()


# UCR cases: W = s = 10, T = 1000 -> 100 windows; anomaly on points [500, 520).
# Widened by 100 -> points [400, 620) -> windows b = 40, e = 62, L = 22;
# tolerance: min(40 - 22, 40 - 10) = 18 <= P <= max(62 + 22, 62 + 10) = 84.
T, W, S = 1000, 10, 10


def _labels() -> np.ndarray:
    y = np.zeros(T, dtype=int)
    y[500:520] = 1
    return y


def _scores_peaking_at(p: int) -> np.ndarray:
    s = np.linspace(0.0, 0.1, T // S)
    s[p] = 1.0
    return s


@pytest.mark.parametrize("p,hit", [(18, True), (17, False), (84, True), (85, False), (50, True)])
def test_ucr_hit_rule_boundaries(p, hit):
    res = ucr_protocol(_scores_peaking_at(p), _labels(), W, S)
    assert res.predicted_window == p and res.hit is hit


def test_ucr_min_tolerance_dominates_short_anomaly():
    # no widening, anomaly in window 50 only: b = 50, e = 51, L = 1; 100/s = 10 dominates
    y = np.zeros(T, dtype=int)
    y[505] = 1
    assert ucr_protocol(_scores_peaking_at(40), y, W, S, widen=0).hit
    assert not ucr_protocol(_scores_peaking_at(39), y, W, S, widen=0).hit
    assert ucr_protocol(_scores_peaking_at(61), y, W, S, widen=0).hit
    assert not ucr_protocol(_scores_peaking_at(62), y, W, S, widen=0).hit


def test_ucr_fractional_tolerance():
    # stride 16: 100/16 = 6.25 windows; single anomalous window b = 50, e = 51, W = 64
    y = np.zeros(64 + 99 * 16, dtype=int)
    y[50 * 16] = 1
    s = np.zeros(100)
    for p, hit in ((44, True), (43, False), (57, True), (58, False)):
        s[:] = 0.0
        s[p] = 1.0
        assert ucr_protocol(s, y, 64, 16, widen=0).hit is hit, p


def test_ucr_ties():
    y = _labels()
    s = np.zeros(T // S)
    s[45:55] = 1.0  # 10 tied maxima: still a prediction (first of them)
    res = ucr_protocol(s, y, W, S)
    assert res.predicted_window == 45 and res.hit
    s[55] = 1.0  # 11 tied maxima: no prediction
    res = ucr_protocol(s, y, W, S)
    assert res.predicted_window is None and not res.hit and res.rpa_f1 == 0.0


def test_ucr_rpa_f1():
    # prediction inside the widened anomaly: TP = 1 event, FP = 0 -> F1 = 1
    assert ucr_protocol(_scores_peaking_at(50), _labels(), W, S).rpa_f1 == 1.0
    # prediction outside: TP = 0 -> F1 = 0 (even if it is a tolerance hit)
    res = ucr_protocol(_scores_peaking_at(30), _labels(), W, S)
    assert res.hit and res.rpa_f1 == 0.0


def test_ucr_errors():
    with pytest.raises(ValueError, match="length"):
        ucr_protocol(np.zeros(5), _labels(), W, S)
    with pytest.raises(ValueError, match="no anomaly"):
        ucr_protocol(np.zeros(T // S), np.zeros(T, dtype=int), W, S)
    with pytest.raises(ValueError, match="NaN"):
        ucr_protocol(np.full(T // S, np.nan), _labels(), W, S)


def test_ucr_best_epoch_picks_the_first_epoch_that_hits():
    from capmix.evaluation.evaluate import ucr_best_epoch

    y = _labels()
    epochs = [_scores_peaking_at(10), _scores_peaking_at(50), _scores_peaking_at(52), _scores_peaking_at(90)]
    epoch, res = ucr_best_epoch(epochs, y, W, S, widen=100)
    assert epoch == 2 and res.hit and res.predicted_window == 50 and res.rpa_f1 == 1.0
    epoch, res = ucr_best_epoch([_scores_peaking_at(10), _scores_peaking_at(90)], y, W, S, widen=100)
    assert epoch == 1 and not res.hit  # nothing hits: the first epoch is reported
    with pytest.raises(ValueError, match="empty"):
        ucr_best_epoch([], y, W, S, widen=100)


def test_evaluate_series_adds_the_best_epoch_protocol_only_when_given_epoch_scores():
    from capmix.evaluation.evaluate import aggregate, evaluate_series

    y = _labels()
    final = np.repeat(_scores_peaking_at(10), S)  # the final model misses
    plain = evaluate_series("s", final, y, 0.5, W, S, ucr_widen=100)
    assert plain.ucr_hit is False and plain.ucr_epoch_hit is None and "ucr_best_epoch/hit" not in plain.flat()
    both = evaluate_series("s", final, y, 0.5, W, S, ucr_widen=100,
                           epoch_window_scores=np.stack([_scores_peaking_at(10), _scores_peaking_at(50)]))
    assert both.ucr_hit is False and both.ucr_epoch_hit is True and both.ucr_epoch == 2
    agg = aggregate([plain, both])
    assert agg["ucr/accuracy"] == 0.0 and agg["ucr_best_epoch/accuracy"] == 1.0  # only series that have it


# ----------------------------------------------------------------------------- UCR archive rule
def _one_anomaly(n: int = 1000, start: int = 400, end: int = 419) -> np.ndarray:
    y = np.zeros(n, dtype=np.int8)
    y[start:end + 1] = 1  # first and last anomalous point, inclusive, as the file names give them
    return y


@pytest.mark.parametrize("peak, hit", [(300, True), (299, False), (519, True), (520, False), (410, True)])
def test_ucr_archive_rule_edges_at_start_minus_100_and_end_plus_100(peak, hit):
    from capmix.evaluation.thresholds import ucr_archive_hit

    s = np.zeros(1000)
    s[peak] = 1.0
    r = ucr_archive_hit(s, _one_anomaly())
    assert r.location == peak and r.hit is hit


def test_ucr_archive_rule_takes_the_centre_of_the_first_top_run():
    from capmix.evaluation.thresholds import top_location, ucr_archive_hit

    s = np.zeros(1000)
    s[100:111] = 5.0  # first run, centre 105: far from the anomaly
    s[405:410] = 5.0  # a later run on the anomaly does not count
    assert top_location(s) == 105
    assert not ucr_archive_hit(s, _one_anomaly()).hit


def test_ucr_archive_rule_more_than_ten_tied_runs_is_a_miss():
    from capmix.evaluation.thresholds import ucr_archive_hit

    s = np.zeros(1000)
    s[np.arange(0, 1000, 80)] = 1.0  # 13 separate runs share the top, one of them on the anomaly
    r = ucr_archive_hit(s, _one_anomaly())
    assert r.location is None and not r.hit
    s2 = np.zeros(1000)
    s2[np.arange(400, 1000, 60)] = 1.0  # 10 runs: a prediction, the first run at 400
    assert ucr_archive_hit(s2, _one_anomaly()).hit


def test_ucr_archive_rule_is_stricter_than_the_reference_rule():
    """A window 250 points before a 20-point anomaly: the reference rule's tolerance accepts it."""
    from capmix.evaluation.thresholds import ucr_archive_hit, ucr_protocol
    from capmix.windows import point_scores

    y = _one_anomaly(2000, 1000, 1019)
    W, st = 64, 16
    ws = np.zeros((2000 - W) // st + 1)
    ws[(1000 - 250) // st] = 1.0
    assert ucr_protocol(ws, y, W, st, widen=100).hit
    assert not ucr_archive_hit(point_scores(ws, 2000, W, st), y).hit
