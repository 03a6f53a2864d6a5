"""Tests for capmix.evaluation.metrics: METHOD.md section 7 vectors, edge cases, aggregation, windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capmix.evaluation.metrics import (
    Counts,
    EventCounts,
    auc_scores,
    micro_f1,
    micro_prf,
    n_events,
    n_windows,
    prf,
    score_counts,
    weighted_f1,
    window_labels,
)


def bits(s: str) -> np.ndarray:
    return np.array([int(c) for c in s], dtype=np.int8)


# METHOD.md section 7, computed by Merlion 1.1.1: gt, pred, RPA, PA, PW (P, R, F1)
VECTORS = [
    ("00110010", "01010100", (0.3333, 0.5, 0.4), (0.5, 0.6667, 0.5714), (0.3333, 0.3333, 0.3333)),
    ("11001", "01110", (0.3333, 0.5, 0.4), (0.5, 0.6667, 0.5714), (0.3333, 0.3333, 0.3333)),
    ("0000", "0110", (0, 0, 0), (0, 0, 0), (0, 0, 0)),
    ("0111000110", "0001000000", (1.0, 0.5, 0.6667), (1.0, 0.6, 0.75), (1.0, 0.2, 0.3333)),
    ("0111000110", "1111111111", (0.2857, 1.0, 0.4444), (0.5, 1.0, 0.6667), (0.5, 1.0, 0.6667)),
]


@pytest.mark.parametrize("gt,pred,rpa,pa,pw", VECTORS)
def test_method_vectors(gt, pred, rpa, pa, pw):
    scores = score_counts(bits(gt), bits(pred)).scores()
    for kind, expected in (("rpa", rpa), ("pa", pa), ("pw", pw)):
        assert tuple(round(v, 4) for v in scores[kind]) == pytest.approx(expected, abs=1e-12), kind


def test_summed_rows_1_and_4_rpa_is_half():
    total = score_counts(bits(VECTORS[0][0]), bits(VECTORS[0][1])) + score_counts(
        bits(VECTORS[3][0]), bits(VECTORS[3][1]))
    assert total.rpa == Counts(2, 2, 2)
    assert prf(total.rpa) == (0.5, 0.5, 0.5)
    assert micro_prf([score_counts(bits(VECTORS[i][0]), bits(VECTORS[i][1])) for i in (0, 3)]) == (0.5, 0.5, 0.5)


def test_counts_of_row_5():
    c = score_counts(bits("0111000110"), bits("1111111111"))
    assert c == EventCounts(rpa=Counts(2, 5, 0), pa=Counts(5, 5, 0), pw=Counts(5, 5, 0))


def test_all_normal_no_prediction():
    c = score_counts(np.zeros(7), np.zeros(7))
    assert c == EventCounts()
    assert all(v == (0.0, 0.0, 0.0) for v in c.scores().values())


def test_all_anomalous():
    c = score_counts(np.ones(6), bits("000100"))
    assert c.rpa == Counts(1, 0, 0) and c.pa == Counts(6, 0, 0) and c.pw == Counts(1, 0, 5)
    assert c.scores()["rpa"] == (1.0, 1.0, 1.0)


def test_empty_predictions_and_empty_series():
    c = score_counts(bits("0110"), np.zeros(4, dtype=bool))
    assert c.rpa == Counts(0, 0, 1) and c.pa == Counts(0, 0, 2) and c.pw == Counts(0, 0, 2)
    assert prf(c.rpa) == (0.0, 0.0, 0.0)
    assert score_counts([], []) == EventCounts()


def test_anomaly_at_both_ends():
    c = score_counts(bits("1100011"), bits("0000001"))
    assert c.rpa == Counts(1, 0, 1) and c.pa == Counts(2, 0, 2)


def test_bool_and_float_labels_accepted():
    a = score_counts(np.array([0.0, 1.0, 1.0]), np.array([False, True, False]))
    assert a.rpa == Counts(1, 0, 0)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="length 3.*length 4"):
        score_counts(bits("010"), bits("0100"))


def test_non_binary_labels_raise():
    with pytest.raises(ValueError, match="only 0 and 1"):
        score_counts(np.array([0, 2, 1]), bits("010"))
    with pytest.raises(ValueError, match="1-D"):
        score_counts(np.zeros((2, 2)), np.zeros((2, 2)))


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown metric kind"):
        EventCounts().get("f2")  # type: ignore[arg-type]


def test_n_events():
    assert n_events(bits("0111000110")) == 2
    assert n_events(bits("1100011")) == 2
    assert n_events(np.zeros(5)) == 0
    assert n_events(np.ones(5)) == 1


def test_weighted_f1_eq13():
    assert weighted_f1([0.5, 1.0, 0.2], [1, 3, 0]) == pytest.approx((0.5 + 3.0) / 4)
    assert weighted_f1([0.5, 0.7], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="length"):
        weighted_f1([0.5], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        weighted_f1([float("nan")], [1])


def test_micro_f1_differs_from_weighted():
    c1 = score_counts(bits("00110010"), bits("01010100"))
    c4 = score_counts(bits("0111000110"), bits("0001000000"))
    assert micro_f1([c1, c4]) == 0.5
    eq13 = weighted_f1([c1.scores()["rpa"][2], c4.scores()["rpa"][2]], [2, 2])
    assert eq13 == pytest.approx((0.4 + 2 / 3) / 2)


def test_auc_scores():
    pr, roc = auc_scores([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert pr == 1.0 and roc == 1.0
    pr, roc = auc_scores([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(pr) and math.isnan(roc)
    pr, roc = auc_scores([1, 1], [0.1, 0.2])
    assert math.isnan(pr) and math.isnan(roc)
    with pytest.raises(ValueError, match="NaN"):
        auc_scores([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="length"):
        auc_scores([0, 1], [0.1])


def test_window_labels_stride_equals_window():
    # W = s = 3: any point in the window
    y = bits("000010000001")
    assert window_labels(y, 3, 3).tolist() == [0, 1, 0, 1]


def test_window_labels_first_stride_points():
    # W = 4, s = 2, T = 11 -> n = (11-4)//2 + 1 = 4 windows, segments [0,2) [2,4) [4,6) [6,8)
    y = bits("00010000011")
    assert n_windows(11, 4, 2) == 4
    assert window_labels(y, 4, 2).tolist() == [0, 1, 0, 0]
    # anomaly only in points not covered by any window's first s points (tail) -> not seen
    assert window_labels(bits("00000000011"), 4, 2).tolist() == [0, 0, 0, 0]


def test_window_labels_short_series_and_bad_args():
    assert window_labels(bits("01"), 4, 2).tolist() == []
    with pytest.raises(ValueError, match="stride"):
        window_labels(bits("0101"), 2, 0)


def test_window_labels_matches_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        T = int(rng.integers(1, 60))
        W = int(rng.integers(1, 12))
        s = int(rng.integers(1, W + 1))
        y = (rng.random(T) < 0.15).astype(int)
        n = max(0, (T - W) // s + 1) if T >= W else 0
        expected = [int(y[i * s:i * s + s].any()) for i in range(n)]
        assert window_labels(y, W, s).tolist() == expected


def _naive_counts(gt: np.ndarray, pred: np.ndarray) -> EventCounts:
    """Readable loop reference for score_counts."""
    tp_e = fn_e = tp_pa = fn_pa = 0
    i = 0
    while i < len(gt):
        j = i
        while j < len(gt) and gt[j] == gt[i]:
            j += 1
        if gt[i] == 1:
            if pred[i:j].any():
                tp_e += 1
                tp_pa += j - i
            else:
                fn_e += 1
                fn_pa += j - i
        i = j
    fp = int(((pred == 1) & (gt == 0)).sum())
    tp = int(((pred == 1) & (gt == 1)).sum())
    fn = int(((pred == 0) & (gt == 1)).sum())
    return EventCounts(Counts(tp_e, fp, fn_e), Counts(tp_pa, fp, fn_pa), Counts(tp, fp, fn))


def test_score_counts_matches_naive_loop():
    rng = np.random.default_rng(1)
    for _ in range(200):
        T = int(rng.integers(1, 80))
        gt = (rng.random(T) < rng.random()).astype(int)
        pred = (rng.random(T) < rng.random()).astype(int)
        assert score_counts(gt, pred) == _naive_counts(gt, pred)
